//! A real S3-compatible server for tests: `moto_server` (PyPI
//! `moto[server]`, which `scripts/install-deps.sh` installs) on a loopback
//! port, with a bucket, read back through the S3 REST API.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub port: u16,
}

impl Moto {
    /// Starts moto_server on `port` and creates `bucket`.
    pub fn start(port: u16, bucket: &str) -> Moto {
        let bin = super::python_tool("MOTO_SERVER", "moto", "moto_server").unwrap_or_else(|| {
            panic!("moto_server not found (not in $MOTO_SERVER, target/moto/bin or PATH): run scripts/install-deps.sh")
        });
        let child = Command::new(bin)
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("moto_server starts");
        let moto = Moto { child, port };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            match ureq::put(&moto.url(&format!("/{bucket}"))).send_empty() {
                Ok(r) if r.status().is_success() => return moto,
                _ if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(200)),
                other => panic!("moto_server not ready: {other:?}"),
            }
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Every key in `bucket`.
    pub fn keys(&self, bucket: &str) -> Vec<String> {
        let Ok(mut r) = ureq::get(&self.url(&format!("/{bucket}?list-type=2"))).call() else {
            return Vec::new();
        };
        let xml = r.body_mut().read_to_string().unwrap_or_default();
        xml.split("<Key>")
            .skip(1)
            .filter_map(|s| s.split("</Key>").next())
            .map(|k| k.replace("&amp;", "&"))
            .collect()
    }

    /// The bytes of one object (moto refuses anonymous reads: the request
    /// is presigned, with credentials moto does not check).
    pub fn object(&self, bucket: &str, key: &str) -> Vec<u8> {
        use rusty_s3::actions::{GetObject, S3Action};
        let endpoint = url::Url::parse(&self.url("")).unwrap();
        let b = rusty_s3::Bucket::new(
            endpoint,
            rusty_s3::UrlStyle::Path,
            bucket.to_string(),
            "us-east-1",
        )
        .unwrap();
        let creds = rusty_s3::Credentials::new("test", "test");
        let url = GetObject::new(&b, Some(&creds), key).sign(Duration::from_secs(600));
        let mut r = ureq::get(url.as_str()).call().expect("object readable");
        r.body_mut()
            .with_config()
            .limit(64 << 20)
            .read_to_vec()
            .expect("object body")
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
