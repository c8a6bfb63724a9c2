//! Debian's stunnel in front of (or behind) sipp, which speaks no TLS
//! itself: one service per process, its log in the test's directory.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running stunnel, killed when dropped; `log` is its log file.
pub struct Stunnel {
    child: Child,
    pub log: PathBuf,
}

impl Drop for Stunnel {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stunnel {
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Starts stunnel with one service `[sip]` listening on 127.0.0.1:`accept`
/// (`service`: its other lines), and waits until it listens.
pub fn start(dir: &Path, accept: u16, service: &str) -> Stunnel {
    let conf = dir.join(format!("stunnel-{accept}.conf"));
    let log = dir.join(format!("stunnel-{accept}.log"));
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\nsyslog = no\ndebug = 5\noutput = {}\n[sip]\naccept = 127.0.0.1:{accept}\n{service}\n",
            log.display()
        ),
    )
    .unwrap();
    let bin = ["stunnel4", "stunnel"]
        .into_iter()
        .find(|b| super::which(b).is_ok())
        .expect("stunnel (scripts/install-deps.sh installs stunnel4)");
    let child = Command::new(bin)
        .arg(&conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("stunnel starts");
    let s = Stunnel { child, log };
    let deadline = Instant::now() + Duration::from_secs(5);
    while TcpStream::connect(("127.0.0.1", accept)).is_err() {
        assert!(
            Instant::now() < deadline,
            "stunnel did not listen: {}",
            s.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    s
}
