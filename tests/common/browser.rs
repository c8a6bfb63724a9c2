//! Debian's Chromium, headless, as a WebRTC phone: `tests/browser/phone.mjs`
//! (Playwright) drives the PBX's own `/phone` page (JsSIP over WSS), with a
//! WAV file as its microphone. Commands and answers are JSON lines.

use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{self, Receiver};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::Pbx;

/// One browser tab on `/phone`, logged in and registering.
pub struct Browser {
    child: Child,
    stdin: ChildStdin,
    lines: Receiver<String>,
    /// Every line the driver printed (events and answers), for messages.
    pub seen: Vec<String>,
}

impl Browser {
    /// Opens `/phone` of `pbx` as `user` (password `secret<user>`), the
    /// microphone playing `wav`; `options` go to the driver (`--raw-audio`,
    /// `--codecs opus`: see `tests/browser/phone.mjs`). Waits until it is
    /// registered.
    pub fn start(pbx: &Pbx, user: &str, wav: &Path, options: &[&str]) -> Browser {
        let driver = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/phone.mjs");
        let modules = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/browser/node_modules");
        assert!(
            Path::new(modules).exists(),
            "tests/browser/node_modules is missing: scripts/install-deps.sh runs npm ci there"
        );
        let mut args = vec![
            driver.to_string(),
            "--base".into(),
            format!("http://{}", pbx.http),
            "--user".into(),
            user.into(),
            "--password".into(),
            format!("secret{user}"),
            "--wav".into(),
            wav.display().to_string(),
            "--idle-ms".into(),
            "120000".into(),
        ];
        args.extend(options.iter().map(ToString::to_string));
        let log = std::fs::File::create(pbx.dir().join(format!("browser-{user}.log"))).unwrap();
        let mut child = Command::new("node")
            .args(&args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("node (scripts/install-deps.sh installs chromium and the driver's modules)");
        let stdin = child.stdin.take().unwrap();
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let mut b = Browser {
            child,
            stdin,
            lines,
            seen: Vec::new(),
        };
        let r = b.cmd(
            json!({"cmd": "wait", "reg": "registered", "timeout_ms": 20000}),
            Duration::from_secs(40),
        );
        assert_eq!(r["ok"], true, "{user} did not register: {:?}", b.seen);
        b
    }

    /// Sends one command; its answer (events on the way are kept in
    /// `seen`). Panics when none comes within `limit`.
    pub fn cmd(&mut self, cmd: Value, limit: Duration) -> Value {
        writeln!(self.stdin, "{cmd}").unwrap();
        self.stdin.flush().unwrap();
        let deadline = Instant::now() + limit;
        loop {
            let left = deadline
                .checked_duration_since(Instant::now())
                .unwrap_or_else(|| panic!("no answer to {cmd}: {:?}", self.seen));
            let line = self
                .lines
                .recv_timeout(left)
                .unwrap_or_else(|_| panic!("no answer to {cmd}: {:?}", self.seen));
            self.seen.push(line.clone());
            let v: Value = serde_json::from_str(&line).unwrap_or(Value::Null);
            if v.get("ok").is_some() {
                return v;
            }
            if v.get("event") == Some(&json!("error")) {
                panic!("the browser driver gave up: {line}");
            }
        }
    }

    /// A command that must succeed (dial, answer, hangup, crash ...).
    pub fn ok(&mut self, cmd: Value) -> Value {
        let r = self.cmd(cmd.clone(), Duration::from_secs(10));
        assert_eq!(r["ok"], true, "{cmd}: {r} {:?}", self.seen);
        r
    }

    /// Waits until the call state is `state` (a word matches `word: ...`).
    pub fn wait_call(&mut self, state: &str, limit: Duration) -> Value {
        let ms = limit.as_millis() as u64;
        let r = self.cmd(
            json!({"cmd": "wait", "call": state, "timeout_ms": ms}),
            limit + Duration::from_secs(5),
        );
        assert_eq!(r["ok"], true, "call not {state}: {r} {:?}", self.seen);
        r
    }

    /// The page's RTP statistics (`getStats()`).
    pub fn stats(&mut self) -> Value {
        let r = self.cmd(json!({"cmd": "stats"}), Duration::from_secs(10));
        assert_eq!(r["ok"], true, "{r}");
        r["stats"].clone()
    }

    /// The strongest frequency in what the page hears (WebAudio), Hz.
    pub fn heard_frequency(&mut self) -> Option<f64> {
        let r = self.cmd(json!({"cmd": "freq"}), Duration::from_secs(10));
        assert_eq!(r["ok"], true, "{r}");
        r["freq"].as_f64()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = writeln!(self.stdin, "{}", json!({"cmd": "quit"}));
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
