//! Issue 12, holes 3 and 4, through the real binary: who calls is who
//! authenticated (From cannot name another user; trunks see the verified
//! identity), and what a route matches is what gets dialled (percent
//! escapes, a To that differs from the Request-URI, injected URI syntax and
//! calls from one carrier to another are no way around the dial plan).

mod common;

use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

use common::*;

/// An INVITE sent by hand.
struct Invite<'a> {
    /// Credentials (user, password); None: no digest (a trunk's host).
    auth: Option<(&'a str, &'a str)>,
    from_user: &'a str,
    /// As written in the Request-URI (may hold %-escapes).
    ruri_user: &'a str,
    to_user: &'a str,
    call_id: &'a str,
}

impl Invite<'_> {
    fn text(&self, uac: &Uac, cseq: u32, credentials: Option<&str>) -> String {
        format!(
            "INVITE sip:{ruri}@pbx.test SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: \"Anyone\" <sip:{from}@somewhere.example>;tag=h{cseq}\r\nTo: <sip:{to}@pbx.test>\r\nCall-ID: {cid}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{from}@{me}>\r\nP-Asserted-Identity: <sip:666@evil.example>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
            ruri = self.ruri_user,
            from = self.from_user,
            to = self.to_user,
            cid = self.call_id,
            me = uac.local,
            b = branch(),
            auth = credentials
                .map(|a| format!("Proxy-Authorization: {a}\r\n"))
                .unwrap_or_default(),
        )
    }

    /// Sends it (answering the 407 when it has credentials); the final
    /// response to the last INVITE.
    fn send(&self, _pbx: &Pbx, uac: &Uac) -> Response {
        let mut cseq = 1;
        if let Some((user, pass)) = self.auth {
            uac.send(&self.text(uac, 1, None));
            let ch = self.final_response(uac, 1);
            assert_eq!(ch.code, 407, "{}", ch.raw);
            let auth = digest_auth(
                ch.header("Proxy-Authenticate").unwrap(),
                user,
                pass,
                "INVITE",
                &format!("sip:{}@pbx.test", self.ruri_user),
                1,
            );
            cseq = 2;
            uac.send(&self.text(uac, 2, Some(&auth)));
        } else {
            uac.send(&self.text(uac, 1, None));
        }
        self.final_response(uac, cseq)
    }

    /// The final response to this call's INVITE with `cseq`.
    fn final_response(&self, uac: &Uac, cseq: u32) -> Response {
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Some(text) = uac.recv(Duration::from_millis(500)) {
                let r = Response::parse(&text);
                // Finals of earlier INVITEs come again until ACKed: only this one counts.
                if r.code >= 200
                    && r.header("Call-ID") == Some(self.call_id)
                    && r.header("CSeq")
                        .is_some_and(|c| c.starts_with(&format!("{cseq} ")))
                {
                    return r;
                }
            }
        }
        panic!("no final response to {}", self.call_id);
    }
}

/// A carrier: a raw socket that answers every INVITE with `code` and
/// keeps what it got.
struct Carrier {
    sock: UdpSocket,
}

impl Carrier {
    fn new() -> Carrier {
        let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        Carrier { sock }
    }

    fn port(&self) -> u16 {
        self.sock.local_addr().unwrap().port()
    }

    /// INVITEs that came within `limit`, each answered 486.
    fn invites(&self, limit: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let deadline = Instant::now() + limit;
        let mut buf = [0u8; 8192];
        while Instant::now() < deadline {
            let Ok((n, from)) = self.sock.recv_from(&mut buf) else {
                continue;
            };
            let text = String::from_utf8_lossy(&buf[..n]).to_string();
            if text.starts_with("INVITE ") {
                let busy = common::media::sip_response(
                    &text,
                    486,
                    "Busy Here",
                    "cr",
                    "sip:c@127.0.0.1",
                    "",
                );
                self.sock.send_to(busy.as_bytes(), from).unwrap();
                got.push(text);
            }
        }
        got
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Option<&'a str> {
    msg.lines()
        .find(|l| {
            l.to_ascii_lowercase()
                .starts_with(&format!("{}:", name.to_ascii_lowercase()))
        })
        .map(|l| l[name.len() + 1..].trim())
}

/// A PBX with the trunks and routes given (files), and `extra` in [proxy].
fn pbx_with(trunks: &str, routes: &str, users_toml: Option<&str>) -> Pbx {
    let dir = tempfile::tempdir().unwrap();
    let t = dir.path().join("trunks.toml");
    let r = dir.path().join("routes.toml");
    std::fs::write(&t, trunks).unwrap();
    std::fs::write(&r, routes).unwrap();
    let mut opts = PbxOptions {
        proxy_extra: format!(
            "routes_files = [\"{}\"]\ntrunks_files = [\"{}\"]\nmax_ring_time = 5",
            r.display(),
            t.display()
        ),
        ..PbxOptions::default()
    };
    if let Some(u) = users_toml {
        opts.users = Vec::new();
        opts.extra_tables = u.to_string();
    }
    let pbx = Pbx::start(opts);
    std::mem::forget(dir);
    pbx
}

fn wait_last_cdr(pbx: &Pbx, call_id: &str) -> serde_json::Value {
    wait_cdr(pbx, call_id)
}

#[test]
fn the_authenticated_user_is_the_caller() {
    let carrier = Carrier::new();
    let trunks = format!(
        "[trunks.carrier]\ndest = \"sip:127.0.0.1:{}\"\n",
        carrier.port()
    );
    let routes = "[[routes]]\nname = \"out\"\npriority = 10\naction = \"forward\"\nmatch = { \"to.user\" = \"^9(\\\\d+)$\" }\nrewrite = { \"to.user\" = \"{1}\" }\ndest = [\"carrier\"]\n";
    let users = "[[proxy.user_backends]]\ntype = \"memory\"\nusers = [\n  { username = \"1001\", password = \"secret1001\", allowed_caller_ids = [\"200\"] },\n  { username = \"1002\", password = \"secret1002\" },\n]\n";
    let pbx = pbx_with(&trunks, routes, Some(users));
    let uac = Uac::new(pbx.sip);

    // 1001 authenticates and claims to be 1002, plainly or %-escaped: 403.
    for (i, from) in ["1002", "%31002"].iter().enumerate() {
        let cid = format!("spoof-{i}");
        let r = Invite {
            auth: Some(("1001", "secret1001")),
            from_user: from,
            ruri_user: "9555",
            to_user: "9555",
            call_id: &cid,
        }
        .send(&pbx, &uac);
        assert_eq!(r.code, 403, "From {from}: {}", r.raw);
    }
    assert!(
        carrier.invites(Duration::from_millis(300)).is_empty(),
        "nothing reached the carrier"
    );
    assert_eq!(pbx.metric_sum("shardpbx_caller_id_refused_total"), 2);

    // As itself, and as a number it may use: the carrier sees that number
    // at our host, asserted, whatever host, display name or P-Asserted-
    // Identity the phone wrote.
    for (from, cid) in [("1001", "self-1"), ("200", "main-1")] {
        let r = Invite {
            auth: Some(("1001", "secret1001")),
            from_user: from,
            ruri_user: "9555",
            to_user: "9555",
            call_id: cid,
        };
        let carrier_saw = std::thread::scope(|s| {
            let seen = s.spawn(|| carrier.invites(Duration::from_secs(2)));
            assert_eq!(r.send(&pbx, &uac).code, 486);
            seen.join().unwrap()
        });
        let invite = carrier_saw.first().expect("the carrier got the call");
        let from_h = header(invite, "From").unwrap();
        let pai = header(invite, "P-Asserted-Identity").expect("PAI to the trunk");
        let ours = format!("<sip:{from}@{}>", pbx.sip.ip());
        assert!(from_h.starts_with(&ours), "From {from_h}, wanted {ours}");
        assert_eq!(pai, ours);
        assert!(
            !invite.contains("666") && !invite.contains("Anyone"),
            "{invite}"
        );
        let cdr = wait_last_cdr(&pbx, cid);
        assert_eq!(cdr["authUser"], "1001", "{cdr}");
        assert_eq!(cdr["fromNumber"], from, "{cdr}");
    }
}

#[test]
fn what_a_route_matches_is_what_gets_dialled() {
    let carrier = Carrier::new();
    let trunks = format!(
        "[trunks.carrier]\ndest = \"sip:127.0.0.1:{}\"\n",
        carrier.port()
    );
    let routes = "[[routes]]\nname = \"premium-block\"\npriority = 100\naction = \"reject\"\nmatch = { \"request_uri.user\" = \"^900\" }\nreject = { code = 403, reason = \"Premium Blocked\" }\n\n\
                  [[routes]]\nname = \"out\"\npriority = 10\naction = \"forward\"\nmatch = { \"to.user\" = \"^9(.+)$\" }\nrewrite = { \"to.user\" = \"{1}\" }\ndest = [\"carrier\"]\n";
    let pbx = pbx_with(&trunks, routes, None);
    let uac = Uac::new(pbx.sip);
    let me = Some(("1001", "secret1001"));

    // %39%30%30 is 900: blocked like 900 itself.
    for (i, user) in ["900123", "%39%30%30123", "%3900123"].iter().enumerate() {
        let cid = format!("premium-{i}");
        let r = Invite {
            auth: me,
            from_user: "1001",
            ruri_user: user,
            to_user: user,
            call_id: &cid,
        }
        .send(&pbx, &uac);
        assert_eq!(r.code, 403, "{user}: {}", r.raw);
        assert!(r.raw.contains("Premium Blocked"), "{}", r.raw);
    }
    // A To that says 9555 does not send a call for 1002 to the carrier...
    let r = Invite {
        auth: me,
        from_user: "1001",
        ruri_user: "1002",
        to_user: "9555",
        call_id: "to-steer-1",
    }
    .send(&pbx, &uac);
    assert_eq!(r.code, 480, "1002 is not registered: {}", r.raw);
    // ...nor does a To of 1002 keep a 9-number from it; and ;?@ in the
    // number reach the carrier escaped, inside the user part.
    let r = Invite {
        auth: me,
        from_user: "1001",
        ruri_user: "9555%3Bmaddr%3D198.51.100.1%3FX%3D1",
        to_user: "1002",
        call_id: "inject-1",
    };
    let seen = std::thread::scope(|s| {
        let seen = s.spawn(|| carrier.invites(Duration::from_secs(2)));
        assert_eq!(r.send(&pbx, &uac).code, 486);
        seen.join().unwrap()
    });
    let line = seen
        .first()
        .expect("routed to the carrier")
        .lines()
        .next()
        .unwrap()
        .to_string();
    assert_eq!(
        line,
        format!(
            "INVITE sip:555%3Bmaddr%3D198.51.100.1%3FX%3D1@127.0.0.1:{} SIP/2.0",
            carrier.port()
        )
    );
    // Users outside the user grammar: 484, never dialled.
    for (i, user) in ["9555%00", "9555%20", "9%40evil.example"]
        .iter()
        .enumerate()
    {
        let cid = format!("bad-user-{i}");
        let r = Invite {
            auth: me,
            from_user: "1001",
            ruri_user: user,
            to_user: "1002",
            call_id: &cid,
        }
        .send(&pbx, &uac);
        assert_eq!(r.code, 484, "{user}: {}", r.raw);
    }
    assert!(carrier.invites(Duration::from_millis(300)).is_empty());
}

#[test]
fn a_call_from_a_trunk_reaches_only_extensions_and_routes_for_that_trunk() {
    let carrier_b = Carrier::new();
    // Carrier A's calls come from this socket.
    let a = Uac::new("127.0.0.1:9".parse::<SocketAddr>().unwrap()); // server set below
    let a_host = a.local;
    let trunks = format!(
        "[trunks.carrier-a]\ninbound_hosts = [\"{a_host}\"]\n\n[trunks.carrier-b]\ndest = \"sip:127.0.0.1:{}\"\n",
        carrier_b.port()
    );
    let routes = "[[routes]]\nname = \"out\"\npriority = 10\naction = \"forward\"\nmatch = { \"to.user\" = \"^9(\\\\d+)$\" }\nrewrite = { \"to.user\" = \"{1}\" }\ndest = [\"carrier-b\"]\n\n\
                  [[routes]]\nname = \"did-forward\"\npriority = 20\naction = \"forward\"\nmatch = { \"source\" = \"carrier-a\", \"to.user\" = \"^4930(\\\\d+)$\" }\nrewrite = { \"to.user\" = \"0049{1}\" }\ndest = [\"carrier-b\"]\n";
    let pbx = pbx_with(&trunks, routes, None);
    let mut a = a;
    a.server = pbx.sip;

    // From carrier A to a number carrier B serves, through the extensions'
    // route: not forwarded (no route for this source, no such extension).
    let r = Invite {
        auth: None,
        from_user: "+15551234",
        ruri_user: "9555",
        to_user: "9555",
        call_id: "hairpin-1",
    }
    .send(&pbx, &a);
    assert_eq!(r.code, 404, "{}", r.raw);
    assert!(
        carrier_b.invites(Duration::from_millis(300)).is_empty(),
        "no hairpin"
    );
    // A route written for carrier A's calls forwards them.
    let r = Invite {
        auth: None,
        from_user: "+15551234",
        ruri_user: "4930777",
        to_user: "4930777",
        call_id: "did-1",
    };
    let seen = std::thread::scope(|s| {
        let seen = s.spawn(|| carrier_b.invites(Duration::from_secs(2)));
        assert_eq!(r.send(&pbx, &a).code, 486);
        seen.join().unwrap()
    });
    assert!(seen[0].starts_with("INVITE sip:0049777@"), "{}", seen[0]);
    // Carrier A reaches a local extension (480: not registered, not 404).
    let r = Invite {
        auth: None,
        from_user: "+15551234",
        ruri_user: "1002",
        to_user: "1002",
        call_id: "in-1",
    }
    .send(&pbx, &a);
    assert_eq!(r.code, 480, "{}", r.raw);
    // An extension still dials out through the extensions' route.
    let ext = Uac::new(pbx.sip);
    let r = Invite {
        auth: Some(("1001", "secret1001")),
        from_user: "1001",
        ruri_user: "9555",
        to_user: "9555",
        call_id: "ext-out-1",
    };
    let seen = std::thread::scope(|s| {
        let seen = s.spawn(|| carrier_b.invites(Duration::from_secs(2)));
        assert_eq!(r.send(&pbx, &ext).code, 486);
        seen.join().unwrap()
    });
    assert_eq!(seen.len(), 1);
}
