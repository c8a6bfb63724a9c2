//! The one CDR builder: how a call ended ([`Ending`]) and the record of a
//! call that ran (`finished`) or of an INVITE that ended at routing
//! ([`refused`]). Status, hangup reason and direction are the enums of
//! [`crate::cdr`]; nothing here spells them as strings.

use super::model::Call;
use crate::cdr::time_fmt::rfc3339_ms;
use crate::cdr::{CallStatus, Cdr, Direction, HangupReason};
use crate::media::relay::MediaReport;
use crate::sip::Message;

/// How a call ended: the final status code, the status, who hung up.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ending {
    pub code: u16,
    pub status: CallStatus,
    pub hangup: HangupReason,
}

impl Ending {
    pub fn new(code: u16, status: CallStatus, hangup: HangupReason) -> Ending {
        Ending {
            code,
            status,
            hangup,
        }
    }

    /// An answered call hung up by `who` (or by a timer: `BySystem`).
    pub fn completed(hangup: HangupReason) -> Ending {
        Ending::new(200, CallStatus::Completed, hangup)
    }

    pub fn completed_by_system() -> Ending {
        Ending::completed(HangupReason::BySystem)
    }

    /// Nobody answered in time.
    pub fn no_answer() -> Ending {
        Ending::new(408, CallStatus::Missed, HangupReason::NoAnswer)
    }

    /// A ringing call given up: 487, `hangup` says by whom.
    pub fn missed(hangup: HangupReason) -> Ending {
        Ending::new(487, CallStatus::Missed, hangup)
    }

    /// Every callee refused, the best final being `code`: busy and
    /// decline are `rejected`, the rest `failed`.
    pub fn refused(code: u16) -> Ending {
        let hangup = match code {
            486 | 600 | 603 => HangupReason::Rejected,
            _ => HangupReason::Failed,
        };
        Ending::new(code, CallStatus::Failed, hangup)
    }

    /// The first party of a click-to-dial call answered `code` (>= 300).
    pub fn first_party(code: u16) -> Ending {
        match code {
            408 | 480 | 487 => Ending::new(code, CallStatus::Missed, HangupReason::NoAnswer),
            _ => Ending::refused(code),
        }
    }

    /// We could not place the call ourselves (no media ports, a refused
    /// SDP address).
    pub fn failed(code: u16) -> Ending {
        Ending::new(code, CallStatus::Failed, HangupReason::Failed)
    }
}

/// The user part of a SIP URI (`sip:user;p=1@host` -> `user`), as stored
/// in `fromNumber`; empty when there is none.
pub fn number_of(uri: &str) -> String {
    let rest = uri.split_once(':').map_or(uri, |(_, r)| r);
    match rest.split_once('@') {
        Some((user, _)) => user.split(';').next().unwrap_or(user).to_string(),
        None => String::new(),
    }
}

/// The record of a call that ran, ending at `end_ms` (unix ms).
pub(super) fn finished(c: Call, ending: Ending, end_ms: u64, media: Option<MediaReport>) -> Cdr {
    let duration_secs = c.answer_ms.map_or(0, |a| end_ms.saturating_sub(a) / 1000);
    let mut metadata = c.extras.metadata;
    metadata.insert(
        "media".into(),
        (if c.proxied { "proxied" } else { "direct" }).into(),
    );
    if let Some(m) = c.hangup_message {
        metadata.insert("hangupMessage".into(), m.into());
    }
    let mut recorder = Vec::new();
    if let Some(report) = media {
        metadata.insert("tracks".into(), report.stats);
        recorder = report.recorder;
    }
    Cdr {
        call_id: c.caller_call_id,
        start_time: rfc3339_ms(c.start_ms),
        ring_time: c.ring_ms.map(rfc3339_ms),
        answer_time: c.answer_ms.map(rfc3339_ms),
        end_time: rfc3339_ms(end_ms),
        duration_secs,
        caller: c.caller_uri,
        callee: c.callee_uri,
        from_number: c.from_number,
        to_number: c.to_number,
        direction: c.direction,
        status: ending.status,
        status_code: ending.code,
        hangup_reason: ending.hangup,
        sip_trunk_id: c.trunk,
        route_id: c.route,
        auth_user: c.auth_user,
        recorder,
        recording_url: None,
        metadata,
    }
}

/// What the endpoint knows of an INVITE that ended at routing.
pub struct RefusedInvite {
    pub ending: Ending,
    pub direction: Direction,
    pub route: Option<String>,
    pub trunk: Option<String>,
    pub auth_user: Option<String>,
}

/// The record of an INVITE refused (or dropped as spam) at routing, at
/// `at_ms` (unix ms): it never rang.
pub fn refused(invite: &Message<'_>, r: RefusedInvite, at_ms: u64) -> Cdr {
    let caller = invite
        .from()
        .map(|f| f.uri.as_str().to_string())
        .unwrap_or_default();
    let callee = invite
        .to()
        .map(|t| t.uri.as_str().to_string())
        .unwrap_or_default();
    let at = rfc3339_ms(at_ms);
    Cdr {
        call_id: invite.call_id().unwrap_or_default().to_string(),
        start_time: at.clone(),
        ring_time: None,
        answer_time: None,
        end_time: at,
        duration_secs: 0,
        from_number: number_of(&caller),
        to_number: dialled_number(invite),
        caller,
        callee,
        direction: r.direction,
        status: r.ending.status,
        status_code: r.ending.code,
        hangup_reason: r.ending.hangup,
        sip_trunk_id: r.trunk,
        route_id: r.route,
        auth_user: r.auth_user,
        recorder: Vec::new(),
        recording_url: None,
        metadata: Default::default(),
    }
}

/// The user of an INVITE's Request-URI, as stored in `toNumber`.
pub(super) fn dialled_number(invite: &Message<'_>) -> String {
    invite
        .request_uri()
        .ok()
        .and_then(|u| u.user)
        .unwrap_or_default()
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endings_classify_final_codes() {
        assert_eq!(Ending::refused(486).hangup, HangupReason::Rejected);
        assert_eq!(Ending::refused(603).hangup, HangupReason::Rejected);
        assert_eq!(Ending::refused(404).hangup, HangupReason::Failed);
        assert_eq!(Ending::refused(404).status, CallStatus::Failed);
        assert_eq!(Ending::first_party(480).status, CallStatus::Missed);
        assert_eq!(Ending::first_party(480).hangup, HangupReason::NoAnswer);
        assert_eq!(Ending::first_party(486).hangup, HangupReason::Rejected);
        assert_eq!(Ending::no_answer().code, 408);
    }

    #[test]
    fn numbers_are_the_user_part_without_parameters() {
        assert_eq!(number_of("sip:1001@pbx"), "1001");
        assert_eq!(number_of("sip:+1555;npdi@pbx"), "+1555");
        assert_eq!(number_of("sip:pbx"), "");
    }
}
