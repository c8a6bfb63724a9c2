//! Media ports another program holds (real binary, real sockets): a spare
//! pair found held is replaced before any call sees it; when the shard's
//! share has no other pair, the call given the held port ends cleanly (487
//! to the caller, a CDR that says why), and the relay keeps working.

mod common;

use std::net::UdpSocket;
use std::time::Duration;

use common::media::*;
use common::*;

/// An even port `p` with `p..p + 4` free (above the kernel's ephemeral
/// range and the other tests' relay range), `p` held by the socket returned.
fn held_range() -> (u16, UdpSocket) {
    for p in (64_000u16..65_400).step_by(4) {
        let Ok(held) = UdpSocket::bind(("127.0.0.1", p)) else {
            continue;
        };
        let rest: Vec<_> = (p + 1..p + 4)
            .map(|q| UdpSocket::bind(("127.0.0.1", q)))
            .collect();
        if rest.iter().all(Result::is_ok) {
            return (p, held);
        }
    }
    panic!("no four free ports above 64000");
}

#[test]
fn a_call_given_a_port_another_program_holds_ends_with_a_cdr() {
    let (start, _held) = held_range();
    let mut pbx = Pbx::start(PbxOptions {
        proxy_extra: r#"media_proxy = "always""#.into(),
        ..PbxOptions::default()
    });
    // Two pairs: `start` (its RTP port held) and `start + 2`.
    assert!(pbx.stop().success());
    let config = std::fs::read_to_string(&pbx.config).unwrap();
    let config = config.replace(
        "rtp_port_start = 61000\nrtp_port_end = 61998",
        &format!("rtp_port_start = {start}\nrtp_port_end = {}", start + 4),
    );
    assert!(config.contains(&format!("rtp_port_start = {start}")));
    std::fs::write(&pbx.config, config).unwrap();
    pbx.start_again();

    let phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "held-port@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let r = caller.call("1002", &offer, || {
        let invite = phone.wait_request("INVITE", Duration::from_secs(5));
        phone.ring(&invite.expect("the callee got no INVITE"));
    });
    assert_eq!(r.code, 487, "{}", r.raw);
    let c = wait_cdr(&pbx, "held-port@test");
    assert_eq!(c["hangupReason"], "bySystem", "{c}");
    assert_eq!(c["metadata"]["hangupMessage"], "no media port", "{c}");
    // The callee was rung and let go.
    assert!(
        phone
            .wait_request("CANCEL", Duration::from_secs(5))
            .is_some(),
        "the callee was not cancelled"
    );
    assert!(
        pbx.log_text().contains("the call has no media"),
        "{}",
        pbx.log_text()
    );
    // The server is still up and answers.
    let uac = Uac::new(pbx.sip);
    let options = uac.request(&options_request(&uac, "after-held-port"));
    assert_eq!(options.code, 200, "{}", options.raw);
    assert!(pbx.stop().success());
}
