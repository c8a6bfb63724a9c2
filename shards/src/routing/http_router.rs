//! The HTTP router as a shard sees it (API.md 2.1): the JSON a new INVITE
//! asks with, and the decision that comes back. The control core does the
//! HTTP; parsing the answer lives here so every action is a plain test.
//! `AnswerError`: why an answer was unusable (its text is the `Failed` reason).

use std::fmt;

use serde::Deserialize;
use serde_json::{json, Map, Value};

use crate::call::MediaMode;
use crate::sip::{HeaderName, Message};

/// A question for the router; the answer comes back to `shard` as
/// `ShardMsg::RouteAnswer` with the same `token`.
#[derive(Clone, Debug, PartialEq)]
pub struct RouterQuery {
    pub shard: usize,
    pub token: u64,
    pub request: Value,
}

/// How the shard reaches the router.
#[derive(Clone, Debug)]
pub struct RouterLink {
    pub queries: crossbeam_channel::Sender<RouterQuery>,
    /// On a failure: static routes (true) or 503 (false).
    pub fallback_to_static: bool,
    /// How long an INVITE waits for the answer before it counts as failed.
    pub wait_ms: u64,
}

/// `forward`: where and how to dial.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Forward {
    pub targets: Vec<String>,
    pub parallel: bool,
    /// Ring timeout per target, s.
    pub timeout_secs: Option<u64>,
    pub record: Option<bool>,
    pub media_proxy: Option<MediaMode>,
    /// Added to every INVITE sent to a target.
    pub headers: Vec<(String, String)>,
    /// Hang up this long after the answer, s.
    pub max_duration_secs: Option<u64>,
    /// Copied into the CDR's metadata.
    pub extensions: Map<String, Value>,
}

/// What the router decided.
#[derive(Clone, Debug, PartialEq)]
pub enum RouterDecision {
    Forward(Forward),
    Reject {
        status: u16,
        reason: Option<String>,
    },
    Abort {
        status: u16,
    },
    /// No final response at all; the CDR says `spam`.
    Spam,
    /// Static routes, as if there were no router.
    NotHandled,
    /// No usable answer (timeout, connection, status, body): why.
    Failed(String),
}

#[derive(Deserialize)]
struct Raw {
    action: String,
    #[serde(default)]
    targets: Vec<String>,
    strategy: Option<String>,
    record: Option<bool>,
    timeout: Option<u64>,
    media_proxy: Option<String>,
    #[serde(default)]
    headers: Map<String, Value>,
    status: Option<u16>,
    reason: Option<String>,
    max_duration: Option<u64>,
    #[serde(default)]
    extensions: Map<String, Value>,
}

impl RouterDecision {
    /// The decision in a router's 2xx body; `Failed` when it is unusable.
    pub fn parse(body: &[u8]) -> RouterDecision {
        match parse(body) {
            Ok(d) => d,
            Err(why) => RouterDecision::Failed(why.to_string()),
        }
    }
}

/// Why a router's 2xx body is not a usable decision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum AnswerError {
    /// Not the JSON object of API.md 2.1 (serde's message).
    Body(String),
    /// `status` outside 300-699.
    Status(u16),
    /// `forward` without targets.
    NoTargets,
    /// An unknown `strategy`.
    Strategy(String),
    /// An unknown `media_proxy`.
    MediaProxy(String),
    /// `headers.<name>` whose value is not a string.
    HeaderNotString(String),
    /// `headers.<name>` that is not a valid SIP header (name or value).
    HeaderInvalid(String),
    /// An unknown `action`.
    Action(String),
}

impl fmt::Display for AnswerError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AnswerError::Body(e) => write!(f, "body: {e}"),
            AnswerError::Status(s) => {
                write!(f, "status: {s} is not a final error status (300-699)")
            }
            AnswerError::NoTargets => f.write_str("targets: empty for action forward"),
            AnswerError::Strategy(s) => write!(f, "strategy: unknown '{s}'"),
            AnswerError::MediaProxy(m) => write!(f, "media_proxy: unknown '{m}'"),
            AnswerError::HeaderNotString(n) => write!(f, "headers.{n}: not a string"),
            AnswerError::HeaderInvalid(n) => write!(f, "headers.{n}: not a valid SIP header"),
            AnswerError::Action(a) => write!(f, "action: unknown '{a}'"),
        }
    }
}

impl std::error::Error for AnswerError {}

fn parse(body: &[u8]) -> Result<RouterDecision, AnswerError> {
    let raw: Raw = serde_json::from_slice(body).map_err(|e| AnswerError::Body(e.to_string()))?;
    let status = |default: u16| -> Result<u16, AnswerError> {
        match raw.status {
            None => Ok(default),
            Some(s) if (300..=699).contains(&s) => Ok(s),
            Some(s) => Err(AnswerError::Status(s)),
        }
    };
    Ok(match raw.action.as_str() {
        "forward" => {
            if raw.targets.is_empty() {
                return Err(AnswerError::NoTargets);
            }
            let parallel = match raw.strategy.as_deref() {
                None | Some("parallel") => true,
                Some("sequential") => false,
                Some(other) => return Err(AnswerError::Strategy(other.to_string())),
            };
            let media_proxy = match raw.media_proxy.as_deref() {
                None => None,
                Some("auto") => Some(MediaMode::Auto),
                Some("always") => Some(MediaMode::Always),
                Some("none") => Some(MediaMode::None),
                Some("nat") => Some(MediaMode::Nat),
                Some(other) => return Err(AnswerError::MediaProxy(other.to_string())),
            };
            let mut headers = Vec::new();
            for (name, value) in &raw.headers {
                let Some(value) = value.as_str() else {
                    return Err(AnswerError::HeaderNotString(name.clone()));
                };
                if !is_token(name) || value.chars().any(|c| c.is_control() && c != '\t') {
                    return Err(AnswerError::HeaderInvalid(name.clone()));
                }
                headers.push((name.clone(), value.to_string()));
            }
            RouterDecision::Forward(Forward {
                targets: raw.targets,
                parallel,
                timeout_secs: raw.timeout.filter(|t| *t > 0),
                record: raw.record,
                media_proxy,
                headers,
                max_duration_secs: raw.max_duration.filter(|d| *d > 0),
                extensions: raw.extensions,
            })
        }
        "reject" => RouterDecision::Reject {
            status: status(403)?,
            reason: raw
                .reason
                .map(|r| r.chars().filter(|c| !c.is_control()).collect()),
        },
        "abort" => RouterDecision::Abort {
            status: status(500)?,
        },
        "spam" => RouterDecision::Spam,
        "not_handled" => RouterDecision::NotHandled,
        other => return Err(AnswerError::Action(other.to_string())),
    })
}

fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-.!%*_+`'~".contains(&b))
}

/// The request of guide 1.1: credentials are not passed on; a header that
/// occurs several times is joined with ", " in order.
pub fn request_json(
    msg: &Message<'_>,
    source: std::net::SocketAddr,
    direction: &str,
    auth_user: Option<&str>,
) -> Value {
    let mut headers = Map::new();
    for h in msg.headers() {
        if matches!(
            h.name,
            HeaderName::Authorization | HeaderName::ProxyAuthorization
        ) {
            continue;
        }
        // The long form of a compact name, else the name as sent.
        let key = h.name.as_str().to_string();
        let value = h.value().trim().to_string();
        match headers.get_mut(&key) {
            Some(Value::String(old)) => {
                old.push_str(", ");
                old.push_str(&value);
            }
            _ => {
                headers.insert(key, Value::String(value));
            }
        }
    }
    json!({
        "call_id": msg.call_id().unwrap_or_default().trim(),
        "from": msg.header_raw(HeaderName::From).unwrap_or_default().trim(),
        "to": msg.header_raw(HeaderName::To).unwrap_or_default().trim(),
        "source_addr": source.to_string(),
        "direction": direction,
        "method": msg.method().map(|m| m.as_str().to_string()).unwrap_or_default(),
        "uri": msg.request_uri_str().unwrap_or_default(),
        "headers": headers,
        "body": String::from_utf8_lossy(msg.body()),
        "authUser": auth_user,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_action_parses_as_the_guide_writes_it() {
        let d = RouterDecision::parse(br#"{"action": "forward", "targets": ["sip:1001@192.168.1.50:5060", "sip:1002@pbx.com"], "strategy": "sequential", "record": true, "timeout": 30, "media_proxy": "always", "headers": {"X-Call-Reason": "support-ticket-123"}, "max_duration": 600, "extensions": {"ticket": 123}, "unknown": 1}"#);
        let RouterDecision::Forward(f) = d else {
            panic!("{d:?}");
        };
        assert_eq!(f.targets.len(), 2);
        assert!(!f.parallel);
        assert_eq!(
            (f.timeout_secs, f.record, f.media_proxy),
            (Some(30), Some(true), Some(MediaMode::Always))
        );
        assert_eq!(
            f.headers,
            vec![(
                "X-Call-Reason".to_string(),
                "support-ticket-123".to_string()
            )]
        );
        assert_eq!(f.max_duration_secs, Some(600));
        assert_eq!(f.extensions["ticket"], 123);
        let p = RouterDecision::parse(br#"{"action": "forward", "targets": ["sip:a@b"]}"#);
        assert!(matches!(
            p,
            RouterDecision::Forward(Forward { parallel: true, .. })
        ));
        assert_eq!(
            RouterDecision::parse(
                br#"{"action": "reject", "status": 486, "reason": "Busy\r\nHere"}"#
            ),
            RouterDecision::Reject {
                status: 486,
                reason: Some("BusyHere".into())
            }
        );
        assert_eq!(
            RouterDecision::parse(br#"{"action": "reject"}"#),
            RouterDecision::Reject {
                status: 403,
                reason: None
            }
        );
        assert_eq!(
            RouterDecision::parse(br#"{"action": "abort"}"#),
            RouterDecision::Abort { status: 500 }
        );
        assert_eq!(
            RouterDecision::parse(br#"{"action": "spam"}"#),
            RouterDecision::Spam
        );
        assert_eq!(
            RouterDecision::parse(br#"{"action": "not_handled"}"#),
            RouterDecision::NotHandled
        );
    }

    #[test]
    fn unusable_answers_are_failures_that_say_why() {
        let why = |b: &[u8]| match RouterDecision::parse(b) {
            RouterDecision::Failed(w) => w,
            d => panic!("{d:?}"),
        };
        assert!(why(b"<html>").starts_with("body:"));
        assert!(why(br#"{"action": "dance"}"#).contains("action"));
        assert!(why(br#"{"action": "forward", "targets": []}"#).contains("targets"));
        assert!(
            why(br#"{"action": "forward", "targets": ["sip:a@b"], "strategy": "random"}"#)
                .contains("strategy")
        );
        assert!(why(br#"{"action": "forward", "targets": ["sip:a@b"], "headers": {"X-A": "1\r\nVia: evil"}}"#).contains("headers.X-A"));
        assert!(why(
            br#"{"action": "forward", "targets": ["sip:a@b"], "headers": {"Bad Name": "1"}}"#
        )
        .contains("headers"));
        assert!(why(br#"{"action": "reject", "status": 200}"#).contains("status"));
    }

    #[test]
    fn the_request_leaves_credentials_out_and_joins_repeated_headers() {
        let invite = "INVITE sip:200@pbx.com SIP/2.0\r\nVia: SIP/2.0/UDP 1.2.3.4;branch=z9hG4bK1\r\nf: <sip:1001@pbx.com>;tag=a\r\nTo: <sip:200@pbx.com>\r\ni: ab39\r\nCSeq: 2 INVITE\r\nProxy-Authorization: Digest username=\"1001\"\r\nX-Client-ID: 1\r\nX-Client-ID: 2\r\nContent-Length: 3\r\n\r\nv=0";
        let msg = Message::parse(invite.as_bytes()).unwrap();
        let v = request_json(
            &msg,
            "1.2.3.4:5060".parse().unwrap(),
            "internal",
            Some("1001"),
        );
        assert_eq!(v["call_id"], "ab39");
        assert_eq!(v["from"], "<sip:1001@pbx.com>;tag=a");
        assert_eq!(v["to"], "<sip:200@pbx.com>");
        assert_eq!(v["source_addr"], "1.2.3.4:5060");
        assert_eq!(v["direction"], "internal");
        assert_eq!(v["method"], "INVITE");
        assert_eq!(v["uri"], "sip:200@pbx.com");
        assert_eq!(v["body"], "v=0");
        assert_eq!(v["headers"]["X-Client-ID"], "1, 2");
        assert_eq!(v["headers"]["From"], "<sip:1001@pbx.com>;tag=a");
        assert!(v["headers"].get("Proxy-Authorization").is_none());
    }
}
