//! The table: timer ordering across transactions, cleanup (no key, alias or
//! timer left behind), the size bound, stale handles, and no panics on odd
//! input (every torture message, truncated and mangled).

use super::*;
use crate::transaction::{Event, Kind, State};

#[test]
fn timers_of_many_transactions_fire_in_deadline_order() {
    let mut h = Harness::with(Config {
        retransmit_2xx: false,
        ..Config::default()
    });
    // Ends: k2 by K at 100+T4, i by I at 400+T4, k by F at T64, j by J at
    // 200+T64, b by B at 300+T64.
    let bye = request("BYE", "z9hG4bKo1");
    let k = h.send_on(0, &bye, true);
    let opt = incoming("OPTIONS", "z9hG4bKo2");
    let Received::Request(j) = h.recv(0, &opt) else {
        panic!()
    };
    let b = h.send_on(300, &request("INVITE", "z9hG4bKo3"), true);
    let inv = incoming("INVITE", "z9hG4bKo4");
    let Received::Request(i) = h.recv(0, &inv) else {
        panic!()
    };
    // k is reliable: Proceeding keeps F only. k2 is UDP: its final arms K.
    let _ = h.recv(50, &response(&bye, 100, ""));
    let bye2 = request("BYE", "z9hG4bKo5");
    let k2 = h.send(50, &bye2);
    let _ = h.recv(100, &response(&bye2, 200, "x"));
    h.respond(200, j, &response(&opt, 200, "x")).unwrap();
    h.respond(350, i, &response(&inv, 486, "x")).unwrap();
    let _ = h.recv(
        400,
        &edit(&edit(&inv, "INVITE sip", "ACK sip"), "1 INVITE", "1 ACK"),
    );
    h.take();
    assert_eq!(h.table.poll_timeout(), Some(100 + T4));
    let mut ends = Vec::new();
    while let Some(at) = h.table.poll_timeout() {
        h.table.handle_timeout(at, &mut h.out);
        for a in h.take_raw() {
            if let Action::Event {
                tx,
                event: Event::Terminated,
            } = a
            {
                ends.push((at, tx));
            }
        }
    }
    assert_eq!(
        ends,
        [
            (100 + T4, k2),
            (400 + T4, i),
            (T64, k),
            (200 + T64, j),
            (300 + T64, b)
        ]
    );
    assert!(h.table.is_empty());
    assert_eq!(h.table.index_sizes(), (0, 0));
}

#[test]
fn one_handle_timeout_call_fires_everything_due_in_order() {
    let mut h = Harness::new();
    let a = h.send(0, &request("OPTIONS", "z9hG4bKq1"));
    let b = h.send(100, &request("OPTIONS", "z9hG4bKq2"));
    h.take();
    h.table.handle_timeout(600, &mut h.out);
    let sent: Vec<TxId> = h
        .take_raw()
        .into_iter()
        .map(|x| match x {
            Action::Send { tx, .. } => tx,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(sent, [a, b], "E of a (500) before E of b (600)");
    assert_eq!(h.table.poll_timeout(), Some(1600), "both re-armed from now");
}

#[test]
fn terminated_transactions_leave_nothing_behind() {
    let mut h = Harness::new();
    // Every kind, with aliases (2543 ACK key, ACK-for-2xx key).
    let inv = incoming("INVITE", "z9hG4bKc1");
    let Received::Request(s1) = h.recv(0, &inv) else {
        panic!()
    };
    h.respond(0, s1, &response(&inv, 200, "t")).unwrap();
    let legacy = edit(&incoming("INVITE", "x"), ";branch=x", "");
    let Received::Request(s2) = h.recv(0, &legacy) else {
        panic!()
    };
    h.respond(0, s2, &response(&legacy, 404, "t")).unwrap();
    let opt = incoming("OPTIONS", "z9hG4bKc2");
    let Received::Request(s3) = h.recv(0, &opt) else {
        panic!()
    };
    h.respond(0, s3, &response(&opt, 200, "t")).unwrap();
    let c1 = h.send(0, &request("INVITE", "z9hG4bKc3"));
    let c2 = h.send(0, &request("REGISTER", "z9hG4bKc4"));
    assert_eq!(h.table.len(), 5);
    assert_eq!(h.table.index_sizes().0, 7, "5 keys and 2 aliases");
    let log = h.run(u64::MAX);
    let ended: Vec<_> = log.iter().filter(|(_, s)| s == TERMINATED).collect();
    assert_eq!(ended.len(), 5);
    assert!(h.table.is_empty());
    assert_eq!(h.table.index_sizes(), (0, 0));
    assert_eq!(h.table.poll_timeout(), None);
    for tx in [s1, s2, s3, c1, c2] {
        assert_eq!(h.table.state(tx), None);
        assert_eq!(h.table.kind(tx), None);
        assert_eq!(h.table.key(tx), None);
    }
    // Slots are reused under a new generation: old handles stay dead.
    let c3 = h.send(0, &request("INVITE", "z9hG4bKc5"));
    assert!(![s1, s2, s3, c1, c2].contains(&c3));
    assert_eq!(h.table.kind(c3), Some(Kind::ClientInvite));
    assert_eq!(h.table.kind(c1), None);
    assert_eq!(h.table.cancel(0, c1, &mut h.out), Err(TxError::Unknown));
}

#[test]
fn the_table_is_bounded() {
    let mut h = Harness::with(Config {
        max_transactions: 2,
        ..Config::default()
    });
    let a = incoming("OPTIONS", "z9hG4bKf1");
    let Received::Request(ta) = h.recv(0, &a) else {
        panic!()
    };
    let tb = h.send(0, &request("OPTIONS", "z9hG4bKf2"));
    assert_eq!(h.recv(0, &incoming("OPTIONS", "z9hG4bKf3")), Received::Full);
    assert_eq!(
        h.table.send_request(
            0,
            &request("OPTIONS", "z9hG4bKf4"),
            peer(),
            false,
            &mut h.out
        ),
        Err(TxError::Full)
    );
    // Retransmissions of live transactions still work.
    assert_eq!(h.recv(1, &a), Received::Absorbed);
    assert_eq!(h.table.len(), 2);
    h.respond(2, ta, &response(&a, 200, "t")).unwrap();
    h.run(2 + T64);
    assert_eq!(h.table.state(tb), None);
    assert!(h.table.is_empty());
    assert!(matches!(
        h.recv(3 + T64, &incoming("OPTIONS", "z9hG4bKf3")),
        Received::Request(_)
    ));
}

#[test]
fn config_is_normalized() {
    let h = Harness::with(Config {
        t1_ms: 0,
        t2_ms: 0,
        ..Config::default()
    });
    assert_eq!(h.table.config().t1_ms, 1);
    assert_eq!(h.table.config().t2_ms, 1);
    assert_eq!(h.table.config().timeout_ms(), 64);
    let mut h = Harness::with(Config {
        t1_ms: 0,
        t2_ms: 0,
        ..Config::default()
    });
    h.send(0, &request("OPTIONS", "z9hG4bKn1"));
    let log = h.run(1000);
    assert_eq!(
        log.iter().filter(|(_, s)| s.starts_with("send")).count(),
        1 + 63
    );
    assert!(h.table.is_empty());
}

/// Small deterministic generator.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

fn torture_files() -> Vec<Vec<u8>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/sip-torture");
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "dat"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| std::fs::read(p).unwrap())
        .collect()
}

/// Feeds `data` to the table as received (twice), as a response the TU sends
/// and as a request the TU sends. New server transactions go to `txs`.
fn exercise(h: &mut Harness, now: u64, data: &[u8], tx: Option<TxId>, txs: &mut Vec<TxId>) {
    if let Ok(msg) = Message::parse(data) {
        for reliable in [now.is_multiple_of(2), false] {
            if let Received::Request(tx) = h.table.receive(now, &msg, peer(), reliable, &mut h.out)
            {
                txs.push(tx);
            }
        }
    }
    if let Some(tx) = tx {
        let _ = h.table.respond(now, tx, data, &mut h.out);
    }
    let _ = h.table.send_request(now, data, peer(), false, &mut h.out);
    h.table.handle_timeout(now, &mut h.out);
    h.out.clear();
}

#[test]
fn odd_input_never_panics() {
    let mut h = Harness::with(Config {
        max_transactions: 500,
        ..Config::default()
    });
    let mut rng = Rng(0x2545_F491_4F6C_DD1D);
    let mut now = 0;
    let mut txs: Vec<TxId> = Vec::new();
    for data in torture_files() {
        for cut in (0..=data.len()).step_by(7) {
            now += 13;
            let tx = txs.get(cut % txs.len().max(1)).copied();
            exercise(&mut h, now, &data[..cut], tx, &mut txs);
        }
        let mut buf = data.clone();
        for _ in 0..100 {
            buf.copy_from_slice(&data);
            for _ in 0..1 + rng.next() % 6 {
                let i = (rng.next() % buf.len() as u64) as usize;
                let r = rng.next();
                buf[i] = if r.is_multiple_of(2) {
                    b"\r\n :;,\"<>[]%\\=\0\xff"[(r >> 8) as usize % 16]
                } else {
                    (r >> 16) as u8
                };
            }
            now += 17;
            if let Ok(msg) = Message::parse(&buf) {
                let r = h.table.receive(now, &msg, peer(), false, &mut h.out);
                if let Received::Request(tx) = r {
                    txs.push(tx);
                }
            }
            let tx = txs.get(rng.next() as usize % txs.len().max(1)).copied();
            exercise(&mut h, now, &buf, tx, &mut txs);
        }
    }
    assert!(h.table.len() <= 500);
    // Everything ends once the TU has answered what waits for it (a server
    // transaction has no timer before its final response).
    h.run(now);
    for tx in txs {
        if let Some(State::Trying | State::Proceeding) = h.table.state(tx) {
            h.respond(now, tx, b"SIP/2.0 500 Server Error\r\n\r\n")
                .unwrap();
        }
    }
    h.run(u64::MAX);
    assert!(h.table.is_empty());
    assert_eq!(h.table.index_sizes(), (0, 0));
}

#[test]
fn a_full_table_evicts_the_longest_lingering_transaction() {
    let mut h = Harness::with(Config {
        max_transactions: 2,
        ..Config::default()
    });
    // Two server transactions answered: both linger (timer J), the first
    // one longest.
    let a = incoming("OPTIONS", "z9hG4bKe1");
    let b = incoming("OPTIONS", "z9hG4bKe2");
    let (Received::Request(ta), Received::Request(tb)) = (h.recv(0, &a), h.recv(0, &b)) else {
        panic!()
    };
    h.respond(1, ta, &response(&a, 200, "t")).unwrap();
    h.respond(2, tb, &response(&b, 200, "t")).unwrap();
    h.take();
    // A new request takes the place of the first one, not a 503.
    let c = incoming("OPTIONS", "z9hG4bKe3");
    let Received::Request(tc) = h.recv(3, &c) else {
        panic!("a lingering transaction should have made room")
    };
    assert_eq!(h.table.evicted(), 1);
    assert_eq!(h.table.state(ta), None);
    assert!(h.table.state(tb).is_some());
    assert!(h.take().iter().any(|a| a.contains("Terminated")));
    // A retransmission of the evicted request is new to the table now.
    assert_eq!(h.table.len(), 2);
    // tc is live (not answered): with tb evicted next, only one can go.
    let d = incoming("OPTIONS", "z9hG4bKe4");
    assert!(matches!(h.recv(4, &d), Received::Request(_)));
    assert_eq!(h.table.evicted(), 2);
    assert!(h.table.state(tc).is_some());
    // Two live transactions: nothing lingers, so the table is full.
    assert_eq!(h.recv(5, &incoming("OPTIONS", "z9hG4bKe5")), Received::Full);
    assert_eq!(h.table.evicted(), 2);
}
