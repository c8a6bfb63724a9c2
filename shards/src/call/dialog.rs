//! A dialog as one side of the B2BUA sees it (RFC 3261 12): its Call-ID,
//! both tags, the peer's URI and target, and the CSeq of each direction.
//! It builds the next request we send in it and decides whether a request
//! from the peer belongs to it ([`Dialog::admit`]): the Call-ID alone is
//! not enough, since webhooks, the console and AMI show it to others.

use crate::transport::Peer;

use crate::sip::{Message, Writer};

/// A dialog as one side of the B2BUA sees it.
#[derive(Clone, Debug, Default)]
pub(super) struct Dialog {
    pub(super) call_id: String,
    pub(super) local_tag: String,
    pub(super) remote_tag: String,
    /// The peer's URI (From of the caller, To of the callee), without tag.
    pub(super) local_uri: String,
    pub(super) remote_uri: String,
    /// Where in-dialog requests go (the peer's Contact).
    pub(super) remote_target: String,
    pub(super) dest: Option<Peer>,
    pub(super) local_cseq: u32,
    /// The CSeq of the peer's last request in this dialog (RFC 3261
    /// 12.2.2): a request must count above it.
    pub(super) remote_cseq: Option<u32>,
}

/// How an in-dialog request relates to the dialog its Call-ID names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum DialogMatch {
    /// Both tags are the dialog's and the CSeq counts up.
    InOrder,
    /// The tags are not this dialog's (481): whoever sent it knows the
    /// Call-ID, not the dialog.
    Unknown,
    /// A CSeq at or below the peer's last one (500).
    OutOfOrder,
}

impl Dialog {
    /// Matches a request from the peer (RFC 3261 12.2.2): its From tag is
    /// the peer's, its To tag ours, its CSeq above the last one. A request
    /// that matches moves the remote CSeq forward.
    pub(super) fn admit(&mut self, msg: &Message<'_>) -> DialogMatch {
        let from_tag = msg.from().ok().and_then(|f| f.tag().map(str::to_string));
        let to_tag = msg.to().ok().and_then(|t| t.tag().map(str::to_string));
        if from_tag.as_deref().unwrap_or_default() != self.remote_tag
            || to_tag.as_deref() != Some(self.local_tag.as_str())
        {
            return DialogMatch::Unknown;
        }
        let Ok(cseq) = msg.cseq() else {
            return DialogMatch::Unknown;
        };
        if self.remote_cseq.is_some_and(|last| cseq.seq <= last) {
            return DialogMatch::OutOfOrder;
        }
        self.remote_cseq = Some(cseq.seq);
        DialogMatch::InOrder
    }

    /// Starts the next request of this dialog (RFC 3261 12.2.1.1): our CSeq
    /// counts up, From/To carry the dialog's tags. The caller adds the rest.
    pub(super) fn next_request<'b>(
        &mut self,
        buf: &'b mut Vec<u8>,
        method: &str,
        via: &str,
        max_forwards: u8,
    ) -> Writer<'b> {
        self.local_cseq += 1;
        let mut w = Writer::request(buf, method, &self.remote_target);
        w.header("Via", via);
        w.header_uint("Max-Forwards", u64::from(max_forwards));
        w.header_parts("From", &[&self.local_uri, ";tag=", &self.local_tag]);
        w.header_parts("To", &[&self.remote_uri, ";tag=", &self.remote_tag]);
        w.header("Call-ID", &self.call_id);
        w.cseq(self.local_cseq, method);
        w
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dialog() -> Dialog {
        Dialog {
            call_id: "c1@test".into(),
            local_tag: "ours".into(),
            remote_tag: "theirs".into(),
            remote_cseq: Some(2),
            ..Dialog::default()
        }
    }

    fn request(from_tag: &str, to_tag: Option<&str>, cseq: u32) -> Vec<u8> {
        let to = to_tag.map(|t| format!(";tag={t}")).unwrap_or_default();
        let from = if from_tag.is_empty() {
            String::new()
        } else {
            format!(";tag={from_tag}")
        };
        format!(
            "BYE sip:a@192.0.2.1 SIP/2.0\r\nVia: SIP/2.0/UDP 192.0.2.2;branch=z9hG4bKx\r\nFrom: <sip:a@x>{from}\r\nTo: <sip:b@y>{to}\r\nCall-ID: c1@test\r\nCSeq: {cseq} BYE\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn admit(d: &mut Dialog, raw: &[u8]) -> DialogMatch {
        d.admit(&Message::parse(raw).unwrap())
    }

    #[test]
    fn both_tags_and_a_rising_cseq_make_a_request_of_the_dialog() {
        let mut d = dialog();
        assert_eq!(
            admit(&mut d, &request("theirs", Some("ours"), 3)),
            DialogMatch::InOrder
        );
        assert_eq!(d.remote_cseq, Some(3));
        assert_eq!(
            admit(&mut d, &request("theirs", Some("ours"), 10)),
            DialogMatch::InOrder
        );
    }

    #[test]
    fn a_known_call_id_with_other_tags_is_not_the_dialog() {
        let mut d = dialog();
        for raw in [
            request("guess", Some("ours"), 3),
            request("theirs", Some("guess"), 3),
            request("theirs", None, 3),
            request("", Some("ours"), 3),
        ] {
            assert_eq!(admit(&mut d, &raw), DialogMatch::Unknown);
        }
        assert_eq!(d.remote_cseq, Some(2), "nothing moved");
    }

    #[test]
    fn a_replayed_or_old_cseq_is_out_of_order_and_moves_nothing() {
        let mut d = dialog();
        assert_eq!(
            admit(&mut d, &request("theirs", Some("ours"), 2)),
            DialogMatch::OutOfOrder
        );
        assert_eq!(
            admit(&mut d, &request("theirs", Some("ours"), 1)),
            DialogMatch::OutOfOrder
        );
        assert_eq!(d.remote_cseq, Some(2));
        // The callee's side starts with no CSeq of the peer: any counts.
        let mut fresh = Dialog {
            remote_cseq: None,
            ..dialog()
        };
        assert_eq!(
            admit(&mut fresh, &request("theirs", Some("ours"), 1)),
            DialogMatch::InOrder
        );
    }

    #[test]
    fn an_rfc_2543_peer_without_a_from_tag_matches_an_empty_tag() {
        let mut d = Dialog {
            remote_tag: String::new(),
            ..dialog()
        };
        assert_eq!(
            admit(&mut d, &request("", Some("ours"), 5)),
            DialogMatch::InOrder
        );
    }
}
