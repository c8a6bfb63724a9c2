//! JSON views of what the shards report to the control core: a live call as
//! `GET /console/calls/active` lists it, and a SIP dialog as
//! `GET /ami/v1/dialogs` lists it (API.md section 4). The shards hand over
//! plain summaries; how they look on the wire is decided here.

use serde_json::{json, Value};
use shards::call::{CallSummary, DialogSummary};
use shards::cdr::time_fmt::rfc3339_ms;

/// How a call's media flows.
fn media(proxied: bool) -> &'static str {
    if proxied {
        "proxied"
    } else {
        "direct"
    }
}

/// One live call: the listing item of `GET /console/calls/active`.
pub fn call_json(c: &CallSummary) -> Value {
    json!({
        "callId": c.call_id,
        "caller": c.caller,
        "callee": c.callee,
        "direction": c.direction.as_str(),
        "state": if c.ringing { "ringing" } else { "answered" },
        "startTime": rfc3339_ms(c.start_ms),
        "answerTime": c.answer_ms.map(rfc3339_ms),
        "media": media(c.proxied),
        "tracks": [
            {"id": "audio-0", "leg": "caller"},
            {"id": "audio-1", "leg": "callee"},
        ],
        "routeId": c.route,
        "sipTrunkId": c.trunk,
        "shard": c.shard,
    })
}

/// One SIP dialog: the listing item of `GET /ami/v1/dialogs`.
pub fn dialog_json(d: &DialogSummary) -> Value {
    json!({
        "id": format!("{};{};{}", d.call_id, d.local_tag, d.remote_tag),
        "callId": d.call_id,
        "call": d.call,
        "leg": d.leg,
        "state": d.state.as_str(),
        "localTag": d.local_tag,
        "remoteTag": d.remote_tag,
        "localCseq": d.local_cseq,
        "remoteTarget": d.remote_target,
        "remoteAddress": d.remote_address.map(|a| a.to_string()),
        "routeSet": [],
        "ageSecs": d.age_secs,
        "media": media(d.proxied),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_ringing_call() {
        let c = CallSummary {
            call_id: "abc@h".into(),
            caller: "sip:1001@pbx.test".into(),
            callee: "sip:1002@pbx.test".into(),
            direction: shards::cdr::Direction::Internal,
            ringing: true,
            start_ms: 1_000,
            answer_ms: None,
            proxied: true,
            route: None,
            trunk: Some("carrier".into()),
            shard: 1,
        };
        assert_eq!(
            call_json(&c),
            json!({
                "callId": "abc@h", "caller": "sip:1001@pbx.test",
                "callee": "sip:1002@pbx.test", "direction": "internal",
                "state": "ringing", "startTime": "1970-01-01T00:00:01.000Z",
                "answerTime": null, "media": "proxied",
                "tracks": [{"id": "audio-0", "leg": "caller"}, {"id": "audio-1", "leg": "callee"}],
                "routeId": null, "sipTrunkId": "carrier", "shard": 1,
            })
        );
        let answered = CallSummary {
            ringing: false,
            answer_ms: Some(2_500),
            proxied: false,
            ..c
        };
        let v = call_json(&answered);
        assert_eq!(
            (&v["state"], &v["answerTime"], &v["media"]),
            (
                &json!("answered"),
                &json!("1970-01-01T00:00:02.500Z"),
                &json!("direct")
            )
        );
    }

    #[test]
    fn a_dialog() {
        let d = DialogSummary {
            call_id: "b2b-1".into(),
            call: "abc@h".into(),
            leg: "callee",
            state: shards::call::DialogState::Confirmed,
            local_tag: "lt".into(),
            remote_tag: "rt".into(),
            local_cseq: 2,
            remote_target: "sip:1002@192.0.2.7:5060".into(),
            remote_address: Some("192.0.2.7:5060".parse().expect("address")),
            age_secs: 9,
            proxied: false,
        };
        assert_eq!(
            dialog_json(&d),
            json!({
                "id": "b2b-1;lt;rt", "callId": "b2b-1", "call": "abc@h",
                "leg": "callee", "state": "confirmed", "localTag": "lt",
                "remoteTag": "rt", "localCseq": 2,
                "remoteTarget": "sip:1002@192.0.2.7:5060",
                "remoteAddress": "192.0.2.7:5060", "routeSet": [], "ageSecs": 9,
                "media": "direct",
            })
        );
    }
}
