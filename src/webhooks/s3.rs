//! S3 archival, `[callrecord] type = "s3"` (API.md 2.4): a call's
//! recordings and then its CDR JSON go to `{root}/{YYYYMMDD}/` in the
//! bucket, as `PUT` requests presigned with SigV4 (rusty-s3) and sent with
//! the webhook client. With `endpoint` set (MinIO and other S3-compatible
//! servers) the bucket is addressed path-style; without, AWS virtual-host
//! style.

use std::time::Duration;

use rusty_s3::actions::{PutObject, S3Action};
use rusty_s3::{Bucket, BucketError, Credentials, UrlStyle};

use super::client::Failure;
use crate::config::S3CallRecord;

/// How long a presigned URL stays valid: one attempt, with room to spare.
const PRESIGN_FOR: Duration = Duration::from_secs(3600);

/// Where and as whom objects are written.
#[derive(Clone, Debug)]
pub struct S3Archive {
    bucket: Bucket,
    credentials: Option<Credentials>,
    root: String,
}

/// Why `[callrecord]` does not describe a usable bucket.
#[derive(Debug)]
pub enum S3ConfigError {
    /// `callrecord.endpoint` (or the AWS one made from the region) is not a URL.
    Endpoint {
        endpoint: String,
        source: url::ParseError,
    },
    /// `callrecord.bucket` cannot be addressed at that endpoint.
    Bucket(BucketError),
}

impl std::fmt::Display for S3ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            S3ConfigError::Endpoint { endpoint, source } => {
                write!(f, "callrecord.endpoint: {endpoint}: {source}")
            }
            S3ConfigError::Bucket(e) => write!(f, "callrecord.bucket: {e}"),
        }
    }
}

impl std::error::Error for S3ConfigError {}

impl S3Archive {
    pub fn new(cfg: &S3CallRecord) -> Result<S3Archive, S3ConfigError> {
        let (endpoint, style) = match &cfg.endpoint {
            Some(e) => (e.clone(), UrlStyle::Path),
            // us-east-1 keeps the global endpoint AWS's own examples use.
            None if cfg.region == "us-east-1" => (
                "https://s3.amazonaws.com".to_string(),
                UrlStyle::VirtualHost,
            ),
            None => (
                format!("https://s3.{}.amazonaws.com", cfg.region),
                UrlStyle::VirtualHost,
            ),
        };
        let url = url::Url::parse(&endpoint).map_err(|source| S3ConfigError::Endpoint {
            endpoint: endpoint.clone(),
            source,
        })?;
        let bucket = Bucket::new(url, style, cfg.bucket.clone(), cfg.region.clone())
            .map_err(S3ConfigError::Bucket)?;
        let credentials = match (&cfg.access_key, &cfg.secret_key) {
            (Some(k), Some(s)) => Some(Credentials::new(k.clone(), s.clone())),
            _ => None,
        };
        Ok(S3Archive {
            bucket,
            credentials,
            root: cfg.root.clone(),
        })
    }

    /// The object key of `name` for a call of day `yyyymmdd`.
    pub fn key(&self, yyyymmdd: &str, name: &str) -> String {
        // A '/' in a Call-ID must not make a folder of its own.
        let name = name.replace('/', "_");
        if self.root.is_empty() {
            format!("{yyyymmdd}/{name}")
        } else {
            format!("{}/{yyyymmdd}/{name}", self.root)
        }
    }

    /// The presigned URL of a `PUT` of `key`.
    pub fn put_url(&self, key: &str) -> url::Url {
        PutObject::new(&self.bucket, self.credentials.as_ref(), key).sign(PRESIGN_FOR)
    }

    /// Writes one object.
    pub fn put(
        &self,
        agent: &ureq::Agent,
        key: &str,
        content_type: &str,
        data: &[u8],
    ) -> Result<(), Failure> {
        let reply = agent
            .put(self.put_url(key).as_str())
            .header("Content-Type", content_type)
            .send(data)?;
        if reply.status().is_success() {
            Ok(())
        } else {
            Err(Failure::status(reply.status().as_u16()))
        }
    }

    #[cfg(test)]
    fn signed_get(&self, key: &str, expires: Duration, at: &jiff::Timestamp) -> url::Url {
        rusty_s3::actions::GetObject::new(&self.bucket, self.credentials.as_ref(), key)
            .sign_with_time(expires, at)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(endpoint: Option<&str>, root: &str) -> S3CallRecord {
        S3CallRecord {
            bucket: "examplebucket".into(),
            region: "us-east-1".into(),
            endpoint: endpoint.map(String::from),
            access_key: Some("AKIAIOSFODNN7EXAMPLE".into()),
            secret_key: Some("wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY".into()),
            root: root.into(),
            timeout: Duration::from_secs(1),
            keep_local: true,
        }
    }

    /// AWS's published example of a presigned URL (S3 API reference,
    /// "Authenticating Requests: Using Query Parameters (AWS Signature
    /// Version 4)"): GET test.txt of examplebucket on 2013-05-24, valid for
    /// 86400 s.
    #[test]
    fn signs_as_in_the_aws_example() {
        let s3 = S3Archive::new(&cfg(None, "cdr")).unwrap();
        let at = jiff::Timestamp::from_second(1_369_353_600).unwrap();
        let url = s3.signed_get("test.txt", Duration::from_secs(86400), &at);
        assert_eq!(url.host_str(), Some("examplebucket.s3.amazonaws.com"));
        assert_eq!(url.path(), "/test.txt");
        let sig = url
            .query_pairs()
            .find(|(k, _)| k == "X-Amz-Signature")
            .map(|(_, v)| v.into_owned());
        assert_eq!(
            sig.as_deref(),
            Some("aeeed9bbccd4d02ee5c0109b86d86835f995330da4c265957d157751f604d404")
        );
    }

    #[test]
    fn an_endpoint_means_path_style_and_keys_live_under_root_and_day() {
        let s3 = S3Archive::new(&cfg(Some("http://127.0.0.1:9000"), "calls")).unwrap();
        let key = s3.key("20261124", "a/b@x.json");
        assert_eq!(key, "calls/20261124/a_b@x.json");
        let url = s3.put_url(&key);
        assert_eq!(url.host_str(), Some("127.0.0.1"));
        assert!(
            url.path().starts_with("/examplebucket/calls/20261124/a_b"),
            "{url}"
        );
        assert!(
            url.query().unwrap_or("").contains("X-Amz-Signature="),
            "{url}"
        );
        let bare = S3Archive::new(&cfg(Some("http://127.0.0.1:9000"), "")).unwrap();
        assert_eq!(bare.key("20261124", "x.json"), "20261124/x.json");
        let mut eu = cfg(None, "cdr");
        eu.region = "eu-west-1".into();
        let url = S3Archive::new(&eu).unwrap().put_url("k");
        assert_eq!(
            url.host_str(),
            Some("examplebucket.s3.eu-west-1.amazonaws.com")
        );
    }
}
