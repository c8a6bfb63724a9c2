//! The HTTP client every webhook uses: one ureq agent (its connection pool)
//! per target, a timeout per request, and ureq's errors sorted into the
//! kinds `/metrics` counts.

use std::time::Duration;

use super::stats::ErrorKind;

/// An agent for one webhook target: `timeout` covers a whole request.
pub fn agent(timeout: Duration) -> ureq::Agent {
    ureq::Agent::config_builder()
        .timeout_global(Some(timeout))
        // A non-2xx answer is a reply to read, not an error.
        .http_status_as_error(false)
        .max_idle_connections_per_host(16)
        .user_agent(concat!("ShardPBX/", env!("CARGO_PKG_VERSION")))
        .build()
        .into()
}

/// `n` threads named `name-N`, each running `work` on what `queue` brings
/// until every sender is gone.
pub fn spawn_pool<T: Send + 'static>(
    name: &str,
    n: usize,
    queue: crossbeam_channel::Receiver<T>,
    work: impl Fn(T) + Send + Sync + 'static,
) -> std::io::Result<()> {
    let work = std::sync::Arc::new(work);
    for i in 0..n {
        let (work, queue) = (work.clone(), queue.clone());
        std::thread::Builder::new()
            .name(format!("{name}-{i}"))
            .spawn(move || {
                while let Ok(item) = queue.recv() {
                    work(item);
                }
            })?;
    }
    Ok(())
}

/// A failed request: its kind and what to log and show.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Failure {
    pub kind: ErrorKind,
    pub message: String,
}

impl Failure {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Failure {
        Failure {
            kind,
            message: message.into(),
        }
    }

    /// A reply whose status is not a success.
    pub fn status(code: u16) -> Failure {
        Failure::new(ErrorKind::Status, format!("HTTP status {code}"))
    }
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.kind.as_str(), self.message)
    }
}

impl From<ureq::Error> for Failure {
    fn from(e: ureq::Error) -> Failure {
        let kind = match &e {
            ureq::Error::Timeout(_) => ErrorKind::Timeout,
            ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => ErrorKind::Connect,
            ureq::Error::Io(io) => match io.kind() {
                std::io::ErrorKind::TimedOut | std::io::ErrorKind::WouldBlock => ErrorKind::Timeout,
                std::io::ErrorKind::ConnectionRefused
                | std::io::ErrorKind::ConnectionReset
                | std::io::ErrorKind::ConnectionAborted
                | std::io::ErrorKind::NotConnected
                | std::io::ErrorKind::AddrNotAvailable
                | std::io::ErrorKind::HostUnreachable
                | std::io::ErrorKind::NetworkUnreachable => ErrorKind::Connect,
                _ => ErrorKind::Protocol,
            },
            ureq::Error::StatusCode(_) => ErrorKind::Status,
            _ => ErrorKind::Protocol,
        };
        Failure::new(kind, e.to_string())
    }
}
