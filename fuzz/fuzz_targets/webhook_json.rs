//! Webhook JSON answers: the HTTP router's decision (`RouterDecision::parse`)
//! and the HTTP user backend's reply (`user_backend::parse_answer`) never
//! panic on any body, and what they let through is safe to put into SIP: header
//! names are tokens and no value, reason or status can break a message.
//!
//! Input: first byte = which parser and, for the user backend, the HTTP status
//! and whether `password` holds an HA1; the rest is the body.

use shardpbx::webhooks::user_backend::parse_answer;
use shards::routing::http_router::RouterDecision;
use shards::users::{Credential, RemoteAnswer};

fn main() {
    afl::fuzz!(|data: &[u8]| run(data));
}

fn run(data: &[u8]) {
    let Some((&sel, body)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        router(body);
    } else {
        let status = [200, 404, 403, 500][usize::from(sel >> 1) & 3];
        user(status, body, sel & 0x08 != 0);
    }
}

fn no_line_break(s: &str) -> bool {
    !s.contains(['\r', '\n'])
}

fn router(body: &[u8]) {
    match RouterDecision::parse(body) {
        RouterDecision::Forward(f) => {
            assert!(!f.targets.is_empty());
            assert!(f.timeout_secs != Some(0) && f.max_duration_secs != Some(0));
            for (name, value) in &f.headers {
                assert!(
                    !name.is_empty() && name.bytes().all(|b| b.is_ascii_graphic() && b != b':'),
                    "header name {name:?}"
                );
                assert!(no_line_break(value), "header value {value:?}");
            }
        }
        RouterDecision::Reject { status, reason } => {
            assert!((300..=699).contains(&status));
            if let Some(r) = reason {
                assert!(!r.chars().any(char::is_control), "reason {r:?}");
            }
        }
        RouterDecision::Abort { status } => assert!((300..=699).contains(&status)),
        RouterDecision::Spam | RouterDecision::NotHandled | RouterDecision::Failed(_) => {}
    }
}

fn user(status: u16, body: &[u8], password_is_ha1: bool) {
    let text = std::str::from_utf8(body).ok();
    match parse_answer(status, text, "alice", password_is_ha1) {
        Some(RemoteAnswer::Found(r)) => {
            assert_eq!(status, 200);
            if let Credential::Md5Ha1(h) = &r.credential {
                assert_eq!(*h, h.to_ascii_lowercase());
            }
        }
        Some(RemoteAnswer::Forbidden(reason)) => {
            assert_eq!(status, 403);
            assert!(
                !reason.is_empty() && reason.chars().count() <= 100,
                "{reason:?}"
            );
            assert!(!reason.chars().any(char::is_control), "{reason:?}");
            assert_eq!(reason.trim(), reason, "{reason:?}");
        }
        Some(RemoteAnswer::Unknown) => assert_eq!(status, 404),
        Some(RemoteAnswer::Unavailable) => panic!("parse_answer never says Unavailable"),
        None => assert!(status == 200 || status == 500),
    }
}
