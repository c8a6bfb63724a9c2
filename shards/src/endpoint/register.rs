//! REGISTER (RFC 3261 10.3): digest auth, the AOR, contact expiries, then the
//! change goes to the store writer; the 200 OK is sent when it is stored.

use crate::transport::Peer;

use crate::registrar::{Binding, BindingChange, BindingOp};
use crate::sip::{Contact, HeaderName, Message, Method, Scheme};
use crate::time::Now;

use super::settings::EndpointSettings;

/// What a REGISTER leads to.
#[derive(Debug, PartialEq)]
pub enum RegisterStep {
    /// Answer at once: code and extra headers.
    Answer(u16, Option<&'static str>, Vec<(&'static str, String)>),
    /// Store this change, then answer 200 with the bindings.
    Store(BindingChange),
}

fn answer(code: u16, reason: Option<&'static str>) -> RegisterStep {
    RegisterStep::Answer(code, reason, Vec::new())
}

/// Builds the binding change of an authenticated REGISTER by `username`.
/// `msg` passed `check()`; the request is not trusted further than that.
pub fn plan(
    settings: &EndpointSettings,
    now: Now,
    msg: &Message<'_>,
    src: Peer,
    username: &str,
) -> RegisterStep {
    let Ok(to) = msg.to() else {
        return answer(400, Some("Bad To"));
    };
    if !matches!(to.uri.scheme, Scheme::Sip | Scheme::Sips) {
        return answer(404, Some("Not a SIP address of record"));
    }
    let user = match to.uri.user_unescaped() {
        Some(u) => String::from_utf8_lossy(&u).into_owned(),
        None => return answer(400, Some("To has no user")),
    };
    let Some(host) = to.uri.host.map(|h| h.to_string().to_ascii_lowercase()) else {
        return answer(400, Some("To has no host"));
    };
    if user != username {
        return answer(403, Some("Not allowed to register this address"));
    }
    let Ok(cseq) = msg.cseq() else {
        return answer(400, Some("Bad CSeq"));
    };
    let call_id = msg.call_id().unwrap_or_default().to_string();
    let aor = format!("sip:{user}@{host}");
    let default_expires = match msg.expires() {
        Ok(Some(e)) => e,
        Ok(None) => settings.registrar_expires,
        Err(_) => return answer(400, Some("Bad Expires")),
    };
    let transport = src.transport().as_str().to_string();
    let user_agent = msg
        .header(HeaderName::UserAgent)
        .map(|v| v.trim().to_string());
    let path: Vec<String> = msg
        .header_values(HeaderName::Path)
        .map(|v| v.trim().to_string())
        .collect();

    let mut ops = Vec::new();
    let mut star = false;
    let mut count = 0;
    for raw in msg.header_values(HeaderName::Contact) {
        count += 1;
        let raw = raw.trim().to_string();
        let Ok(contact) = Contact::parse(&raw) else {
            return answer(400, Some("Bad Contact"));
        };
        let na = match contact {
            Contact::Star => {
                star = true;
                continue;
            }
            Contact::Addr(na) => na,
        };
        let expires = match na.params.value("expires") {
            Some(v) => match v.trim().parse::<u64>() {
                Ok(e) => e.min(u64::from(u32::MAX)) as u32,
                Err(_) => return answer(400, Some("Bad Contact expires")),
            },
            None => default_expires,
        };
        let uri = na.uri.as_str().to_string();
        let instance = na.params.value("+sip.instance").map(str::to_string);
        let reg_id = na.params.value("reg-id").and_then(|v| v.parse().ok());
        if expires == 0 {
            ops.push(BindingOp::Remove {
                uri,
                instance,
                reg_id,
            });
            continue;
        }
        if expires < settings.min_expires {
            return RegisterStep::Answer(
                423,
                None,
                vec![("Min-Expires", settings.min_expires.to_string())],
            );
        }
        if unusable_contact(&na.uri) {
            return answer(400, Some("Contact address not usable"));
        }
        let expires = expires.min(settings.max_expires);
        ops.push(BindingOp::Upsert(Box::new(Binding {
            aor: aor.clone(),
            contact: raw.clone(),
            uri,
            source: src.addr.to_string(),
            transport: transport.clone(),
            conn: src.conn(),
            expires_at: now.unix + u64::from(expires),
            q: na.params.value("q").map(str::to_string),
            instance,
            reg_id,
            user_agent: user_agent.clone(),
            path: path.clone(),
            call_id: call_id.clone(),
            cseq: cseq.seq,
            updated_at: now.unix,
        })));
    }
    if star {
        // RFC 3261 10.3 step 6: `*` alone and with Expires: 0.
        if count != 1 || msg.expires().ok().flatten() != Some(0) {
            return answer(
                400,
                Some("Contact: * needs Expires: 0 and no other contact"),
            );
        }
        ops = vec![BindingOp::RemoveAll];
    }
    // One REGISTER alone past the cap; the writer checks the stored ones.
    let adds = ops
        .iter()
        .filter(|op| matches!(op, BindingOp::Upsert(_)))
        .count();
    if adds > settings.max_contacts_per_aor {
        return answer(403, Some("Too many contacts"));
    }
    debug_assert!(matches!(cseq.method, Method::Register));
    RegisterStep::Store(BindingChange {
        aor,
        call_id,
        cseq: cseq.seq,
        now: now.unix,
        ops,
        max_contacts: settings.max_contacts_per_aor,
    })
}

/// A contact nobody can be reached at, or that would make us send to many
/// (a reflection tool): an unspecified (0.0.0.0/8, ::), multicast or
/// broadcast address as its host or `maddr`.
fn unusable_contact(uri: &crate::sip::Uri<'_>) -> bool {
    use std::net::IpAddr;
    fn bad(host: &str) -> bool {
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let v4_bad =
            |v4: std::net::Ipv4Addr| v4.octets()[0] == 0 || v4.is_multicast() || v4.is_broadcast();
        match bare.parse::<IpAddr>() {
            Ok(IpAddr::V4(v4)) => v4_bad(v4),
            Ok(IpAddr::V6(v6)) => {
                v6.is_unspecified() || v6.is_multicast() || v6.to_ipv4_mapped().is_some_and(v4_bad)
            }
            Err(_) => false,
        }
    }
    uri.host.is_some_and(|h| bad(&h.to_string())) || uri.params.value("maddr").is_some_and(bad)
}

/// `Contact` values of a 200 OK: every live binding with its time left.
pub fn contact_lines(bindings: &[Binding], now: u64) -> Vec<String> {
    bindings
        .iter()
        .filter(|b| b.expires_at > now)
        .map(|b| {
            let mut v = format!("<{}>;expires={}", b.uri, b.remaining(now));
            if let Some(i) = &b.instance {
                v.push_str(";+sip.instance=");
                v.push_str(i);
            }
            if let Some(r) = b.reg_id {
                v.push_str(&format!(";reg-id={r}"));
            }
            v
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::endpoint::settings::test_settings;

    const NOW: Now = Now {
        unix: 1000,
        mono_ms: 0,
        unix_ms: 1_000_000,
    };

    fn reg(contact: &str, expires: &str) -> Vec<u8> {
        format!(
            "REGISTER sip:pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP 10.0.0.1:5062;branch=z9hG4bKr\r\nFrom: <sip:1001@pbx.test>;tag=1\r\nTo: <sip:1001@pbx.test>\r\nCall-ID: c1\r\nCSeq: 7 REGISTER\r\nMax-Forwards: 70\r\n{contact}{expires}User-Agent: phone\r\nContent-Length: 0\r\n\r\n"
        )
        .into_bytes()
    }

    fn plan_of(raw: &[u8]) -> RegisterStep {
        let msg = Message::parse(raw).unwrap();
        msg.check().unwrap();
        plan(
            &test_settings(),
            NOW,
            &msg,
            "10.0.0.1:5062".parse().unwrap(),
            "1001",
        )
    }

    #[test]
    fn a_contact_becomes_a_binding_with_capped_expiry() {
        let RegisterStep::Store(change) = plan_of(&reg(
            "Contact: <sip:1001@10.0.0.1:5062>;q=0.5\r\n",
            "Expires: 99999\r\n",
        )) else {
            panic!("expected a change")
        };
        assert_eq!(change.aor, "sip:1001@pbx.test");
        assert_eq!(change.cseq, 7);
        let BindingOp::Upsert(b) = &change.ops[0] else {
            panic!()
        };
        assert_eq!(b.expires_at, 1000 + 7200);
        assert_eq!(b.contact, "<sip:1001@10.0.0.1:5062>;q=0.5");
        assert_eq!(b.q.as_deref(), Some("0.5"));
        assert_eq!(b.user_agent.as_deref(), Some("phone"));
        assert_eq!(b.source, "10.0.0.1:5062");
    }

    #[test]
    fn too_brief_gets_423_with_min_expires() {
        let step = plan_of(&reg("Contact: <sip:1001@10.0.0.1>;expires=5\r\n", ""));
        assert_eq!(
            step,
            RegisterStep::Answer(423, None, vec![("Min-Expires", "60".into())])
        );
    }

    #[test]
    fn star_needs_expires_zero() {
        assert!(
            matches!(plan_of(&reg("Contact: *\r\n", "Expires: 0\r\n")), RegisterStep::Store(c) if c.ops == vec![BindingOp::RemoveAll])
        );
        assert!(matches!(
            plan_of(&reg("Contact: *\r\n", "Expires: 60\r\n")),
            RegisterStep::Answer(400, ..)
        ));
    }

    #[test]
    fn expires_zero_removes_and_no_contact_queries() {
        let RegisterStep::Store(c) =
            plan_of(&reg("Contact: <sip:1001@10.0.0.1>;expires=0\r\n", ""))
        else {
            panic!()
        };
        assert!(matches!(c.ops[0], BindingOp::Remove { .. }));
        let RegisterStep::Store(c) = plan_of(&reg("", "")) else {
            panic!()
        };
        assert!(c.ops.is_empty());
    }

    #[test]
    fn another_users_aor_is_forbidden() {
        let msg_raw = reg("Contact: <sip:1001@10.0.0.1>\r\n", "");
        let msg = Message::parse(&msg_raw).unwrap();
        let step = plan(
            &test_settings(),
            NOW,
            &msg,
            "10.0.0.1:5062".parse().unwrap(),
            "1002",
        );
        assert!(matches!(step, RegisterStep::Answer(403, ..)));
    }

    #[test]
    fn unusable_contact_addresses_are_refused() {
        for c in [
            "<sip:1001@0.0.0.0:5060>",
            "<sip:1001@0.1.2.3>",
            "<sip:1001@224.0.0.1:5060>",
            "<sip:1001@239.255.255.250>",
            "<sip:1001@255.255.255.255>",
            "<sip:1001@[::]:5060>",
            "<sip:1001@[ff02::1]>",
            "<sip:1001@[::ffff:224.0.0.9]>",
            "<sip:1001@10.0.0.1;maddr=224.0.0.1>",
        ] {
            assert_eq!(
                plan_of(&reg(&format!("Contact: {c}\r\n"), "")),
                RegisterStep::Answer(400, Some("Contact address not usable"), vec![]),
                "{c}"
            );
        }
        // Ordinary addresses and host names are fine.
        for c in [
            "<sip:1001@10.0.0.1:5062>",
            "<sip:1001@[2001:db8::1]:5060>",
            "<sip:1001@phone.example.com>",
        ] {
            assert!(
                matches!(
                    plan_of(&reg(&format!("Contact: {c}\r\n"), "")),
                    RegisterStep::Store(_)
                ),
                "{c}"
            );
        }
        // Removing such a contact, and `*` with Expires: 0, still work.
        assert!(matches!(
            plan_of(&reg("Contact: <sip:1001@224.0.0.1>;expires=0\r\n", "")),
            RegisterStep::Store(_)
        ));
        assert!(matches!(
            plan_of(&reg("Contact: *\r\n", "Expires: 0\r\n")),
            RegisterStep::Store(c) if c.ops == vec![BindingOp::RemoveAll]
        ));
    }

    #[test]
    fn one_register_with_more_contacts_than_the_cap_is_refused() {
        // test_settings caps at 3.
        let three: String = (0..3)
            .map(|i| format!("Contact: <sip:1001@10.0.0.{i}>\r\n"))
            .collect();
        let RegisterStep::Store(c) = plan_of(&reg(&three, "")) else {
            panic!("three fit")
        };
        assert_eq!(c.max_contacts, 3);
        let four = format!("{three}Contact: <sip:1001@10.0.0.9>\r\n");
        assert_eq!(
            plan_of(&reg(&four, "")),
            RegisterStep::Answer(403, Some("Too many contacts"), vec![])
        );
    }
}
