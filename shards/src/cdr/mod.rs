//! Call detail records in the JSON shape of API.md section 3 (camelCase).
//! Built by the call on its owner shard when it ends, stored in LMDB by the
//! control core's writer, listed by the CLI and (later) the REST API.

pub mod time_fmt;

use serde::{Deserialize, Serialize};

/// One finished call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Cdr {
    /// The caller leg's Call-ID: the call's id everywhere.
    pub call_id: String,
    pub start_time: String,
    pub ring_time: Option<String>,
    pub answer_time: Option<String>,
    pub end_time: String,
    pub duration_secs: u64,
    pub caller: String,
    pub callee: String,
    pub from_number: String,
    pub to_number: String,
    pub direction: Direction,
    pub status: CallStatus,
    pub status_code: u16,
    pub hangup_reason: HangupReason,
    pub sip_trunk_id: Option<String>,
    pub route_id: Option<String>,
    /// The user whose digest credentials placed the call (null for calls
    /// from a trunk's inbound hosts and guests): who pays for it.
    #[serde(default)]
    pub auth_user: Option<String>,
    #[serde(default)]
    pub recorder: Vec<RecorderEntry>,
    pub recording_url: Option<String>,
    #[serde(default)]
    pub metadata: serde_json::Map<String, serde_json::Value>,
}

/// Defines a string enum of the API: serde names, `as_str`, `parse`, Display.
macro_rules! api_enum {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$doc])*
        #[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $($(#[$vdoc])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every value, in the order of the API.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The value as the API spells it.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text,)+
                }
            }

            /// The value the API spells `text`, if any.
            pub fn parse(text: &str) -> Option<$name> {
                match text {
                    $($text => Some($name::$variant),)+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.pad(self.as_str())
            }
        }
    };
}

api_enum! {
    /// Which way a call went (API.md 2.1).
    Direction {
        /// From a trunk.
        Inbound = "inbound",
        /// From an extension to elsewhere (a trunk).
        Outbound = "outbound",
        /// From an extension to a local user.
        Internal = "internal",
    }
}

api_enum! {
    /// How a call ended, in one word (API.md 3).
    CallStatus {
        Completed = "completed",
        Missed = "missed",
        Failed = "failed",
        Rejected = "rejected",
        Spam = "spam",
    }
}

api_enum! {
    /// Who or what ended a call (API.md 3).
    HangupReason {
        ByCaller = "byCaller",
        ByCallee = "byCallee",
        BySystem = "bySystem",
        NoAnswer = "noAnswer",
        Canceled = "canceled",
        Rejected = "rejected",
        Failed = "failed",
    }
}

/// A recording file of a call.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct RecorderEntry {
    pub track_id: String,
    pub path: String,
    pub size: u64,
}

impl Cdr {
    /// Unix ms of `start_time` (0 when unreadable), the store's sort key.
    pub fn start_ms(&self) -> u64 {
        time_fmt::parse_time(&self.start_time).unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn serializes_with_the_api_field_names() {
        let cdr = Cdr {
            call_id: "a84b@10.0.0.5".into(),
            start_time: time_fmt::rfc3339_ms(1_795_475_525_000),
            ring_time: None,
            answer_time: None,
            end_time: time_fmt::rfc3339_ms(1_795_475_592_000),
            duration_secs: 0,
            caller: "sip:1001@pbx.test".into(),
            callee: "sip:1002@pbx.test".into(),
            from_number: "1001".into(),
            to_number: "1002".into(),
            direction: Direction::Internal,
            status: CallStatus::Missed,
            status_code: 487,
            hangup_reason: HangupReason::Canceled,
            sip_trunk_id: None,
            route_id: None,
            auth_user: None,
            recorder: vec![],
            recording_url: None,
            metadata: Default::default(),
        };
        let v = serde_json::to_value(&cdr).unwrap();
        for key in [
            "callId",
            "startTime",
            "ringTime",
            "answerTime",
            "endTime",
            "durationSecs",
            "caller",
            "callee",
            "fromNumber",
            "toNumber",
            "direction",
            "status",
            "statusCode",
            "hangupReason",
            "sipTrunkId",
            "routeId",
            "recorder",
            "recordingUrl",
            "metadata",
        ] {
            assert!(v.get(key).is_some(), "missing {key}");
        }
        assert_eq!(cdr.start_ms(), 1_795_475_525_000);
        assert_eq!(v["status"], "missed");
        assert_eq!(v["hangupReason"], "canceled");
        assert_eq!(v["direction"], "internal");
        let back: Cdr = serde_json::from_value(v).unwrap();
        assert_eq!(back, cdr);
    }

    #[test]
    fn enums_round_trip_their_api_spelling() {
        for s in CallStatus::ALL {
            assert_eq!(CallStatus::parse(s.as_str()), Some(*s));
        }
        for h in HangupReason::ALL {
            assert_eq!(HangupReason::parse(h.as_str()), Some(*h));
        }
        for d in Direction::ALL {
            assert_eq!(Direction::parse(d.as_str()), Some(*d));
        }
        assert_eq!(CallStatus::parse("Completed"), None);
        assert!(serde_json::from_str::<CallStatus>("\"bogus\"").is_err());
    }
}
