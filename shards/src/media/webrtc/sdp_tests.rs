//! The WebRTC SDP attributes: reading a browser's offer, the bounds, the
//! levels, and writing ours.

use super::{
    parse_remote, write_media, write_session, Fingerprint, IceCreds, LocalParams, ParamsError,
    Role, Setup,
};

const FP: &str = "sha-256 \
    8F:2B:6C:0D:4E:3A:11:22:33:44:55:66:77:88:99:AA:\
    BB:CC:DD:EE:FF:00:01:02:03:04:05:06:07:08:09:0A";

/// The relevant part of a Chromium offer.
fn chrome_offer() -> String {
    format!(
        "v=0\r\no=- 4611731400430051336 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\n\
         a=group:BUNDLE 0\r\na=msid-semantic: WMS\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111 0 8\r\nc=IN IP4 0.0.0.0\r\n\
         a=rtcp:9 IN IP4 0.0.0.0\r\n\
         a=ice-ufrag:EsAw\r\na=ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\r\n\
         a=ice-options:trickle\r\n\
         a=fingerprint:sha-1 11:22:33:44:55:66:77:88:99:00:11:22:33:44:55:66:77:88:99:00\r\n\
         a=fingerprint:{FP}\r\n\
         a=setup:actpass\r\na=mid:0\r\na=sendrecv\r\na=rtcp-mux\r\n\
         a=rtpmap:111 opus/48000/2\r\n"
    )
}

#[test]
fn reads_a_chrome_offer() {
    let p = parse_remote(&chrome_offer()).unwrap();
    assert_eq!(p.creds.ufrag(), "EsAw");
    assert_eq!(p.creds.pwd(), "P2uYro0UCOQ4zxjKXaWCBui1");
    assert_eq!(p.fingerprint, Fingerprint::parse(FP).unwrap());
    assert_eq!(p.setup, Setup::ActPass);
    assert_eq!(p.setup.our_role(), Role::Server);
    assert!(p.rtcp_mux);
    assert_eq!(p.mid.as_deref(), Some("0"));
    assert!(!p.ice_lite);
    // LF line ends too.
    assert_eq!(parse_remote(&chrome_offer().replace("\r\n", "\n")), Ok(p));
}

#[test]
fn session_level_and_overrides() {
    let body = format!(
        "v=0\r\ns=-\r\na=ice-lite\r\na=ice-ufrag:sessionufrag\r\n\
         a=ice-pwd:sessionpwdsessionpwd1234\r\na=fingerprint:{FP}\r\na=setup:passive\r\n\
         m=video 9 UDP/TLS/RTP/SAVPF 96\r\na=ice-ufrag:videoufrag\r\na=mid:v\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=ice-ufrag:audioufrag\r\na=setup:ACTIVE\r\n\
         m=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=mid:second\r\na=rtcp-mux\r\n"
    );
    let p = parse_remote(&body).unwrap();
    // The first audio section's ufrag, the session's pwd and fingerprint.
    assert_eq!(p.creds.ufrag(), "audioufrag");
    assert_eq!(p.creds.pwd(), "sessionpwdsessionpwd1234");
    assert_eq!(p.fingerprint, Fingerprint::parse(FP).unwrap());
    assert_eq!(p.setup, Setup::Active);
    // Nothing of the video or the second audio section.
    assert_eq!(p.mid, None);
    assert!(!p.rtcp_mux);
    assert!(p.ice_lite);
}

#[test]
fn refusals() {
    let offer = chrome_offer();
    let without = |needle: &str| {
        offer
            .lines()
            .filter(|l| !l.contains(needle))
            .map(|l| format!("{l}\n"))
            .collect::<String>()
    };
    assert_eq!(parse_remote(&without("m=audio")), Err(ParamsError::NoAudio));
    assert_eq!(parse_remote(&without("ice-ufrag")), Err(ParamsError::Ufrag));
    assert_eq!(parse_remote(&without("ice-pwd")), Err(ParamsError::Pwd));
    // Only a sha-1 fingerprint: invalid.
    assert_eq!(
        parse_remote(&without("sha-256")),
        Err(ParamsError::Fingerprint)
    );
    // No a=setup: active (RFC 4145).
    assert_eq!(
        parse_remote(&without("setup")).unwrap().setup,
        Setup::Active
    );
    let swap = |from: &str, to: &str| parse_remote(&offer.replace(from, to));
    assert_eq!(
        swap("a=setup:actpass", "a=setup:holdconn"),
        Err(ParamsError::Setup)
    );
    assert_eq!(swap("a=mid:0", "a=mid:a b"), Err(ParamsError::Mid));
    assert_eq!(
        swap("a=mid:0", &format!("a=mid:{}", "m".repeat(65))),
        Err(ParamsError::Mid)
    );
    // Bounds and the ICE character set.
    assert_eq!(
        swap("ice-ufrag:EsAw", "ice-ufrag:EsA"),
        Err(ParamsError::Ufrag)
    );
    assert_eq!(
        swap("ice-ufrag:EsAw", "ice-ufrag:Es-w"),
        Err(ParamsError::Ufrag)
    );
    let long = "u".repeat(257);
    assert_eq!(
        swap("ice-ufrag:EsAw", &format!("ice-ufrag:{long}")),
        Err(ParamsError::Ufrag)
    );
    assert!(swap("ice-ufrag:EsAw", &format!("ice-ufrag:{}", &long[1..])).is_ok());
    let short = "ice-pwd:P2uYro0UCOQ4zxjKXaWCB";
    assert_eq!(
        swap("ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1", short),
        Err(ParamsError::Pwd)
    );
    let bad = "ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1\u{e9}";
    assert_eq!(
        swap("ice-pwd:P2uYro0UCOQ4zxjKXaWCBui1", bad),
        Err(ParamsError::Pwd)
    );
}

#[test]
fn fingerprint_parse_and_format() {
    let fp = Fingerprint::parse(FP).unwrap();
    assert_eq!(fp.to_string(), FP);
    assert_eq!(Fingerprint::parse(&FP.to_lowercase()), Some(fp));
    assert_eq!(
        Fingerprint::parse(&FP.replace("sha-256", "SHA-256")),
        Some(fp)
    );
    assert_eq!(Fingerprint::parse(&FP.replace("sha-256", "sha-1")), None);
    assert_eq!(Fingerprint::parse(&FP[..FP.len() - 3]), None);
    assert_eq!(Fingerprint::parse(&format!("{FP}:0B")), None);
    assert_eq!(Fingerprint::parse(&FP.replace("8F:", "8F0:")), None);
    assert_eq!(Fingerprint::parse(&FP.replace("8F:", "8G:")), None);
    assert_eq!(Fingerprint::parse("sha-256"), None);
    assert_eq!(Fingerprint::parse(""), None);
    // SHA-256 of "abc".
    let abc = Fingerprint::of_der(b"abc").to_string();
    assert!(abc.starts_with("sha-256 BA:78:16:BF:8F:01:CF:EA"), "{abc}");
}

#[test]
fn random_creds() {
    let mut n = 0u8;
    let mut rng = |b: &mut [u8]| {
        for x in b {
            *x = n;
            n = n.wrapping_add(37);
        }
    };
    let a = IceCreds::random(&mut rng);
    let b = IceCreds::random(&mut rng);
    assert_eq!(a.ufrag().len(), 8);
    assert_eq!(a.pwd().len(), 24);
    assert_ne!(a, b);
    // What we make, we would accept.
    assert_eq!(IceCreds::new(a.ufrag(), a.pwd()), Some(a.clone()));
    assert!(!format!("{a:?}").contains(a.pwd()));
    assert_eq!(IceCreds::new("abc", "0123456789012345678901"), None);
    assert_eq!(IceCreds::new("abcd", "012345678901234567890"), None);
}

#[test]
fn writes_ours() {
    let creds = IceCreds::new("abcdEFGH", "0123456789abcdefghij+/XY").unwrap();
    let fp = Fingerprint::parse(FP).unwrap();
    let mut out = String::new();
    write_session(&mut out);
    assert_eq!(out, "a=ice-lite\r\n");
    let mut out = String::new();
    let local = LocalParams {
        creds: &creds,
        fingerprint: &fp,
        setup: Role::Server.setup(),
        mid: Some("0"),
        candidate: "203.0.113.5:40000".parse().unwrap(),
    };
    write_media(&mut out, &local);
    assert_eq!(
        out,
        format!(
            "a=ice-ufrag:abcdEFGH\r\na=ice-pwd:0123456789abcdefghij+/XY\r\n\
             a=fingerprint:{FP}\r\na=setup:passive\r\na=mid:0\r\na=rtcp-mux\r\n\
             a=candidate:1 1 udp 2130706431 203.0.113.5 40000 typ host\r\n\
             a=end-of-candidates\r\n"
        )
    );
    // IPv6 without brackets; an unsafe mid is left out.
    let mut out = String::new();
    let local = LocalParams {
        setup: Role::Client.setup(),
        mid: Some("0\r\na=evil"),
        candidate: "[2001:db8::5]:40000".parse().unwrap(),
        ..local
    };
    write_media(&mut out, &local);
    assert!(out.contains("a=setup:active\r\n"));
    assert!(!out.contains("a=mid"));
    assert!(out.contains("udp 2130706431 2001:db8::5 40000 typ host\r\n"));
    // What we write, the other end reads back.
    let body = format!("v=0\r\ns=-\r\nm=audio 40000 UDP/TLS/RTP/SAVPF 111\r\n{out}");
    let p = parse_remote(&body).unwrap();
    assert_eq!(
        (p.creds, p.fingerprint, p.setup),
        (creds, fp, Setup::Active)
    );
}
