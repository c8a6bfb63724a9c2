//! The call-records REST API against the real binary over real HTTP: list
//! (newest first, pagination), every filter on GET and as a POST search
//! body, 422/400 for bad input, one record by callId, and the recording with
//! HTTP Range (206/416), and the SIP flow of a call (both legs, in order;
//! digest responses redacted; cut with a marker past `max_flow_bytes`).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use common::media::*;
use common::*;
use serde_json::{json, Value};

/// A response of the tiny HTTP client below.
struct Http {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Http {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "not JSON ({e}): {} {}",
                self.status,
                String::from_utf8_lossy(&self.body)
            )
        })
    }
}

/// One request with `Connection: close`; the body as bytes.
fn http(pbx: &Pbx, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> Http {
    let mut s = std::net::TcpStream::connect(pbx.http).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("end of headers");
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status: u16 = lines
        .next()
        .and_then(|l| l.split(' ').nth(1))
        .and_then(|c| c.parse().ok())
        .expect("status line");
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_string(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    let chunked = headers
        .iter()
        .any(|(n, v)| n.eq_ignore_ascii_case("transfer-encoding") && v.contains("chunked"));
    if chunked {
        body = dechunk(&body);
    }
    Http {
        status,
        headers,
        body,
    }
}

fn dechunk(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let eol = data.windows(2).position(|w| w == b"\r\n").unwrap();
        let size_text = String::from_utf8_lossy(&data[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap().trim(), 16).unwrap();
        data = &data[eol + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[size + 2..];
    }
}

struct Console<'a> {
    pbx: &'a Pbx,
    auth: String,
}

impl Console<'_> {
    /// A console client whose token has the `read` scope.
    fn new(pbx: &Pbx) -> Console<'_> {
        Console::with_scopes(pbx, "read")
    }

    fn with_scopes<'a>(pbx: &'a Pbx, scopes: &str) -> Console<'a> {
        Console {
            pbx,
            auth: format!("Bearer {}", api_token(pbx, scopes)),
        }
    }

    fn get(&self, path: &str, extra: &[(&str, &str)]) -> Http {
        let mut h = vec![("Authorization", self.auth.as_str())];
        h.extend_from_slice(extra);
        http(self.pbx, "GET", path, &h, b"")
    }

    fn post(&self, path: &str, body: &str) -> Http {
        http(
            self.pbx,
            "POST",
            path,
            &[
                ("Authorization", self.auth.as_str()),
                ("Content-Type", "application/json"),
            ],
            body.as_bytes(),
        )
    }

    fn list(&self, query: &str) -> (Vec<String>, u64) {
        ids_of(self.get(&format!("/console/call-records{query}"), &[]))
    }

    fn search(&self, body: Value) -> (Vec<String>, u64) {
        ids_of(self.post("/console/call-records", &body.to_string()))
    }

    /// Waits until `n` calls are listed.
    fn wait_for(&self, n: u64) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let r = self.get("/console/call-records", &[]);
            assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
            let v = r.json();
            if v["total"] == n {
                return v;
            }
            assert!(Instant::now() < deadline, "never {n} records: {v}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An INVITE from `from` (digest auth with `pass`) to `sip:{to}@{host}`
/// by hand; returns the final response.
fn invite_to(pbx: &Pbx, from: &str, pass: &str, to: &str, host: &str, call_id: &str) -> Response {
    let uac = Uac::new(pbx.sip);
    let ruri = format!("sip:{to}@{host}");
    let invite = |cseq: u32, auth: Option<String>| {
        format!(
            "INVITE {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch={b};rport\r\nMax-Forwards: 70\r\nFrom: <sip:{from}@pbx.test>;tag=h{cseq}\r\nTo: <{ruri}>\r\nCall-ID: {call_id}\r\nCSeq: {cseq} INVITE\r\nContact: <sip:{from}@{me}>\r\n{auth}Content-Type: application/sdp\r\nContent-Length: 4\r\n\r\nv=0\n",
            me = uac.local,
            b = branch(),
            auth = auth.map(|a| format!("Proxy-Authorization: {a}\r\n")).unwrap_or_default()
        )
    };
    let ch = uac.request(&invite(1, None));
    assert_eq!(ch.code, 407, "{}", ch.raw);
    let auth = digest_auth(
        ch.header("Proxy-Authenticate").unwrap(),
        from,
        pass,
        "INVITE",
        &ruri,
        1,
    );
    uac.send(&invite(2, Some(auth)));
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(text) = uac.recv(Duration::from_secs(1)) {
            let r = Response::parse(&text);
            if r.code >= 200 && r.header("CSeq").is_some_and(|c| c.starts_with("2 ")) {
                return r;
            }
        }
    }
    panic!("no final response to the INVITE");
}

/// A Pbx with a route that rejects calls to 666 with 403.
fn pbx_with_reject_route() -> Pbx {
    let mut pbx = Pbx::start(PbxOptions::default());
    let routes = pbx.dir().join("routes.toml");
    std::fs::write(
        &routes,
        "[[routes]]\nname = \"blocklist\"\npriority = 100\nmatch = { \"to.user\" = \"^666$\" }\naction = \"reject\"\nreject = { code = 403, reason = \"Blocked\" }\n",
    )
    .unwrap();
    let text = std::fs::read_to_string(&pbx.config).unwrap().replace(
        "routes_files = []",
        &format!("routes_files = [\"{}\"]", routes.display()),
    );
    std::fs::write(&pbx.config, text).unwrap();
    pbx.restart();
    pbx
}

/// A completed call from 1001 to the registered `phone`, hung up by the caller.
fn completed_call(pbx: &Pbx, phone: &mut Phone, call_id: &str) {
    let mut caller = Caller::new(pbx, call_id);
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let answer = sdp(phone.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let r = caller.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(r.code, 200, "{}", r.raw);
    assert_eq!(caller.bye().code, 200);
    phone.accept_bye(Duration::from_secs(1));
}

const C1: &str = "c1-404@test";
const C2: &str = "c2-480@test";
const C3: &str = "c3-rejected@test";
const C4: &str = "c4-outbound@test";
const C5: &str = "c5-completed@test";

#[test]
fn list_filter_search_and_fetch_call_records() {
    let pbx = pbx_with_reject_route();
    let console = Console::new(&pbx);
    let before = unix_secs();
    let gap = || std::thread::sleep(Duration::from_millis(30));

    assert_eq!(call_by_hand(&pbx, "9999", C1).code, 404);
    gap();
    assert_eq!(call_by_hand(&pbx, "1002", C2).code, 480);
    gap();
    assert_eq!(call_by_hand(&pbx, "666", C3).code, 403);
    gap();
    assert_eq!(
        invite_to(&pbx, "1002", "secret1002", "5555", "example.com", C4).code,
        404
    );
    gap();
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    completed_call(&pbx, &mut phone, C5);
    let after = unix_secs();

    // The whole list, newest first.
    let all = console.wait_for(5);
    assert_eq!(all["page"], 1);
    assert_eq!(all["per_page"], 50);
    assert!(all.get("pageSize").is_none(), "API.md names it per_page");
    let items = all["items"].as_array().unwrap();
    let ids: Vec<&str> = items
        .iter()
        .map(|c| c["callId"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [C5, C4, C3, C2, C1]);
    let starts: Vec<&str> = items
        .iter()
        .map(|c| c["startTime"].as_str().unwrap())
        .collect();
    assert!(starts.windows(2).all(|w| w[0] > w[1]), "{starts:?}");
    let by_id = |id: &str| items.iter().find(|c| c["callId"] == id).unwrap().clone();
    assert_eq!(by_id(C1)["status"], "failed");
    assert_eq!(by_id(C2)["statusCode"], 480);
    assert_eq!(by_id(C3)["status"], "rejected");
    assert_eq!(by_id(C3)["routeId"], "blocklist");
    assert_eq!(by_id(C4)["direction"], "outbound");
    assert_eq!(by_id(C5)["status"], "completed");

    // Pagination.
    let mut paged = Vec::new();
    for page in 1..=5 {
        let (ids, total) = console.list(&format!("?per_page=1&page={page}"));
        assert_eq!(total, 5);
        assert_eq!(ids.len(), 1, "page {page}");
        paged.extend(ids);
    }
    assert_eq!(paged, [C5, C4, C3, C2, C1]);
    assert_eq!(console.list("?pageSize=1&page=6"), (vec![], 5));
    assert_eq!(
        console.list("?per_page=2&page=3"),
        (vec![C1.to_string()], 5)
    );
    let v = console
        .get("/console/call-records?per_page=2&page=2", &[])
        .json();
    assert_eq!(
        (v["page"].as_u64(), v["per_page"].as_u64()),
        (Some(2), Some(2))
    );

    // Each filter narrows.
    let ids = |list: &[&str]| {
        list.iter()
            .map(std::string::ToString::to_string)
            .collect::<Vec<_>>()
    };
    assert_eq!(console.list("?caller=1002"), (ids(&[C4]), 1));
    assert_eq!(console.list("?caller=1001"), (ids(&[C5, C3, C2, C1]), 4));
    assert_eq!(console.list("?callee=1002"), (ids(&[C5, C2]), 2));
    assert_eq!(console.list("?callee=sip:9999%40pbx.test"), (ids(&[C1]), 1));
    assert_eq!(console.list("?direction=outbound"), (ids(&[C4]), 1));
    assert_eq!(console.list("?direction=internal").1, 4);
    assert_eq!(console.list("?direction=inbound"), (vec![], 0));
    assert_eq!(console.list("?status=failed"), (ids(&[C4, C2, C1]), 3));
    assert_eq!(console.list("?status=rejected"), (ids(&[C3]), 1));
    assert_eq!(console.list("?status=completed"), (ids(&[C5]), 1));
    assert_eq!(console.list("?status=missed"), (vec![], 0));
    assert_eq!(console.list("?q=blocklist"), (ids(&[C3]), 1));
    assert_eq!(console.list("?q=c2-480"), (ids(&[C2]), 1));
    assert_eq!(console.list("?q=example.com"), (ids(&[C4]), 1));
    assert_eq!(console.list("?q=nothing-like-this"), (vec![], 0));
    assert_eq!(
        console.list("?caller=1001&status=failed&per_page=1&page=2"),
        (ids(&[C1]), 2)
    );
    // since inclusive, until exclusive, on startTime.
    let c3_start = by_id(C3)["startTime"].as_str().unwrap().to_string();
    assert_eq!(
        console.list(&format!("?since={c3_start}")),
        (ids(&[C5, C4, C3]), 3)
    );
    assert_eq!(
        console.list(&format!("?until={c3_start}")),
        (ids(&[C2, C1]), 2)
    );
    assert_eq!(console.list(&format!("?since={before}")).1, 5);
    assert_eq!(console.list(&format!("?until={before}")).1, 0);
    assert_eq!(console.list(&format!("?since={}", after + 2)).1, 0);
    assert_eq!(
        console.list(&format!("?since={before}&until={c3_start}&status=failed")),
        (ids(&[C2, C1]), 2)
    );

    // The same filters as a JSON search body.
    assert_eq!(
        console.search(json!({"status": "failed", "caller": "1001"})),
        (ids(&[C2, C1]), 2)
    );
    assert_eq!(
        console.search(json!({"since": c3_start, "direction": "internal"})),
        (ids(&[C5, C3]), 2)
    );
    assert_eq!(
        console.search(json!({"until": before, "q": "c"})),
        (vec![], 0)
    );
    assert_eq!(
        console.search(json!({"q": "BLOCKLIST", "callee": "666"})),
        (ids(&[C3]), 1)
    );
    assert_eq!(
        console.search(json!({"page": 2, "per_page": 3})),
        (ids(&[C2, C1]), 5)
    );
    assert_eq!(console.search(json!({})).1, 5);
    // The alias. The auth layer asks 'write' of it for now (it maps only
    // POST /console/call-records to 'read'), hence this token.
    let writer = Console::with_scopes(&pbx, "read,write");
    assert_eq!(
        ids_of(writer.post(
            "/console/call-records/search",
            &json!({"direction": "outbound"}).to_string()
        )),
        (ids(&[C4]), 1)
    );

    // Bad values: 422 naming the field; a body that is not JSON: 400.
    for (query, field) in [
        ("direction=sideways", "direction"),
        ("status=ok", "status"),
        ("since=yesterday", "since"),
        ("until=2026-13-01T00:00:00Z", "until"),
        ("page=0", "page"),
        ("page=two", "page"),
        ("per_page=501", "per_page"),
        ("per_page=0", "per_page"),
        ("pageSize=1000", "pageSize"),
    ] {
        let r = console.get(&format!("/console/call-records?{query}"), &[]);
        assert_eq!(r.status, 422, "{query}");
        let v = r.json();
        assert_eq!(v["field"], field, "{query}: {v}");
        assert!(v["message"].as_str().unwrap().contains(field), "{v}");
    }
    for (body, field) in [
        (json!({"status": "nope"}), "status"),
        (json!({"direction": 3}), "direction"),
        (json!({"since": "soon"}), "since"),
        (json!({"until": -1}), "until"),
        (json!({"page": "x"}), "page"),
        (json!({"per_page": 9999}), "per_page"),
        (json!({"caller": {"a": 1}}), "caller"),
    ] {
        let r = console.post("/console/call-records", &body.to_string());
        assert_eq!(r.status, 422, "{body}");
        assert_eq!(r.json()["field"], field, "{body}");
    }
    let r = console.post("/console/call-records", "status=failed");
    assert_eq!(r.status, 400);
    assert!(r.json()["error"].is_string());
    assert_eq!(writer.post("/console/call-records/search", "{").status, 400);
    assert_eq!(console.post("/console/call-records", "[1, 2]").status, 422);

    // One record, by its URL-encoded callId.
    let r = console.get("/console/call-records/c2-480%40test", &[]);
    assert_eq!(r.status, 200);
    let one = r.json();
    assert_eq!(one, by_id(C2));
    assert_eq!(one["callId"], C2);
    assert_eq!(one["callee"].as_str().unwrap(), "sip:1002@pbx.test");
    assert_eq!(
        console
            .get("/console/call-records/c5-completed@test", &[])
            .json()["status"],
        "completed"
    );
    let r = console.get("/console/call-records/no-such-call%40test", &[]);
    assert_eq!(r.status, 404);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("no-such-call@test"));
}

#[test]
fn recording_is_served_whole_and_by_range() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[recording]\nenabled = true\n".into(),
        ..PbxOptions::default()
    });
    let console = Console::new(&pbx);
    let mut phone = Phone::register(&pbx, "1002", "secret1002");
    let mut caller = Caller::new(&pbx, "rec@test");
    let offer = sdp(caller.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let answer = sdp(phone.rtp_port(), &[PCMU], "a=sendrecv\r\n");
    let mut invite = String::new();
    let r = caller.call("1002", &offer, || invite = phone.answer(&answer));
    assert_eq!(r.code, 200, "{}", r.raw);
    let phone_sends_to = sdp_audio(invite.split_once("\r\n\r\n").unwrap().1);
    let caller_sends_to = sdp_audio(&caller.answer);
    exchange(
        &caller.rtp,
        caller_sends_to,
        0,
        tone_frames(440.0, 50, ulaw),
        &phone.rtp,
        phone_sends_to,
        0,
        tone_frames(1000.0, 50, ulaw),
        160,
        Duration::from_millis(20),
    );
    caller.bye();
    phone.accept_bye(Duration::from_secs(3));
    assert_eq!(call_by_hand(&pbx, "9999", "norec@test").code, 404);
    console.wait_for(2);

    // The file the CDR names, once the writer closed it.
    let cdr = console.get("/console/call-records/rec%40test", &[]).json();
    let rec = &cdr["recorder"][0];
    let path = pbx.dir().join("data").join(rec["path"].as_str().unwrap());
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::fs::metadata(&path).map(|m| m.len()).ok() != rec["size"].as_u64() {
        assert!(
            Instant::now() < deadline,
            "{} never complete",
            path.display()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let file = std::fs::read(&path).unwrap();
    let size = file.len();
    assert!(size > 8000, "a 1 s call records more than {size} bytes");
    let url = "/console/call-records/rec%40test/recording";

    let r = console.get(url, &[]);
    assert_eq!(r.status, 200);
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    assert_eq!(r.header("Accept-Ranges"), Some("bytes"));
    assert_eq!(r.header("Content-Length"), Some(size.to_string().as_str()));
    assert_eq!(r.header("Content-Range"), None);
    assert_eq!(&r.body[..4], b"RIFF");
    assert!(r.body == file, "the body is the file");

    let r = console.get(url, &[("Range", "bytes=0-43")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes 0-43/{size}").as_str())
    );
    assert_eq!(r.header("Content-Length"), Some("44"));
    assert_eq!(r.header("Content-Type"), Some("audio/wav"));
    assert_eq!(r.body, &file[..44]);
    assert_eq!(&r.body[8..12], b"WAVE");

    let r = console.get(url, &[("Range", "bytes=-100")]);
    assert_eq!(r.status, 206);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes {}-{}/{size}", size - 100, size - 1).as_str())
    );
    assert_eq!(r.body, &file[size - 100..]);

    let r = console.get(url, &[("Range", "bytes=1000-")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &file[1000..]);
    let r = console.get(url, &[("Range", "bytes=100-199")]);
    assert_eq!(r.status, 206);
    assert_eq!(r.body, &file[100..200]);

    let r = console.get(url, &[("Range", "bytes=999999999-")]);
    assert_eq!(r.status, 416);
    assert_eq!(
        r.header("Content-Range"),
        Some(format!("bytes */{size}").as_str())
    );

    // Several ranges: the whole file, 200.
    let r = console.get(url, &[("Range", "bytes=0-1,10-11")]);
    assert_eq!(r.status, 200);
    assert!(r.body == file);

    // No recording, unknown call, file gone: 404.
    let r = console.get("/console/call-records/norec%40test/recording", &[]);
    assert_eq!(r.status, 404);
    assert!(r.json()["message"]
        .as_str()
        .unwrap()
        .contains("no recording"));
    assert_eq!(
        console
            .get("/console/call-records/nope%40test/recording", &[])
            .status,
        404
    );
    std::fs::remove_file(&path).unwrap();
    let r = console.get(url, &[]);
    assert_eq!(r.status, 404);
    assert!(r.json()["message"].as_str().unwrap().contains("gone"));
}

#[test]
fn sip_flow_shows_both_legs_from_invite_to_bye_in_order() {
    let pbx = Pbx::start(PbxOptions::default());
    let console = Console::new(&pbx);
    let mut phone = common::media::Phone::register(&pbx, "1002", "secret1002");
    let mut caller = common::media::Caller::new(&pbx, "flow@test");
    let offer = common::media::sdp(caller.rtp_port(), &[common::media::PCMU], "");
    let answer = common::media::sdp(phone.rtp_port(), &[common::media::PCMU], "");
    assert_eq!(
        caller
            .call("1002", &offer, || {
                phone.answer(&answer);
            })
            .code,
        200
    );
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    // The flow is stored once its linger (late messages) is over.
    let deadline = Instant::now() + Duration::from_secs(10);
    let flow = loop {
        let r = console.get("/console/call-records/flow%40test/sip-flow", &[]);
        if r.status == 200 {
            break r.json();
        }
        assert!(Instant::now() < deadline, "no sip-flow: {}", r.status);
        std::thread::sleep(Duration::from_millis(250));
    };
    assert_eq!(flow["callId"], "flow@test");
    let items = flow["messages"].as_array().unwrap();
    let seen: Vec<(String, String, String)> = items
        .iter()
        .map(|i| {
            let summary = i["summary"].as_str().unwrap();
            // "INVITE sip:..." -> INVITE, "SIP/2.0 200 OK" -> 200
            let what = match summary.strip_prefix("SIP/2.0 ") {
                Some(rest) => rest.split(' ').next().unwrap().to_string(),
                None => summary.split(' ').next().unwrap().to_string(),
            };
            (
                i["leg"].as_str().unwrap().to_string(),
                i["direction"].as_str().unwrap().to_string(),
                what,
            )
        })
        .collect();
    let pos = |leg: &str, dir: &str, what: &str| {
        seen.iter()
            .position(|(l, d, w)| l == leg && d == dir && w == what)
            .unwrap_or_else(|| panic!("no {leg} {dir} {what} in {seen:?}"))
    };
    // The order a B2BUA call takes, leg by leg.
    let invite_in = pos("caller", "in", "INVITE");
    let invite_out = pos("callee", "out", "INVITE");
    let ok_in = pos("callee", "in", "200");
    let ok_out = pos("caller", "out", "200");
    let ack_in = pos("caller", "in", "ACK");
    let bye_in = pos("caller", "in", "BYE");
    let bye_out = pos("callee", "out", "BYE");
    assert!(invite_in < invite_out && invite_out < ok_in && ok_in < ok_out);
    assert!(ok_out < ack_in && ack_in < bye_in && bye_in < bye_out);
    pos("callee", "out", "ACK");
    pos("callee", "in", "180");
    // The callee's 200 for our BYE came after the call ended: kept too.
    assert!(seen[bye_out..]
        .iter()
        .any(|(l, d, w)| l == "callee" && d == "in" && w == "200"));
    let times: Vec<&str> = items.iter().map(|i| i["ts"].as_str().unwrap()).collect();
    let mut sorted = times.clone();
    sorted.sort();
    assert_eq!(times, sorted, "time order");
    assert!(items[invite_in]["raw"]
        .as_str()
        .unwrap()
        .contains("Call-ID: flow@test"));
    assert_eq!(
        console
            .get("/console/call-records/nope%40test/sip-flow", &[])
            .status,
        404
    );
}

/// The stored flow of one answered call from 1001 (who answers a 407) to
/// 1002 under `call_id`, once its linger is over.
fn flow_of_a_call(pbx: &Pbx, console: &Console, call_id: &str) -> Value {
    let mut phone = common::media::Phone::register(pbx, "1002", "secret1002");
    let mut caller = common::media::Caller::new(pbx, call_id);
    let offer = common::media::sdp(caller.rtp_port(), &[common::media::PCMU], "");
    let answer = common::media::sdp(phone.rtp_port(), &[common::media::PCMU], "");
    let r = caller.call("1002", &offer, || {
        phone.answer(&answer);
    });
    assert_eq!(r.code, 200);
    assert_eq!(caller.bye().code, 200);
    assert!(phone.accept_bye(Duration::from_secs(3)));
    let path = format!(
        "/console/call-records/{}/sip-flow",
        call_id.replace('@', "%40")
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = console.get(&path, &[]);
        if r.status == 200 {
            return r.json();
        }
        assert!(Instant::now() < deadline, "no sip-flow: {}", r.status);
        std::thread::sleep(Duration::from_millis(250));
    }
}

#[test]
fn sip_flow_shows_the_authorization_header_but_not_the_digest_response() {
    let pbx = Pbx::start(PbxOptions::default());
    let console = Console::new(&pbx);
    let flow = flow_of_a_call(&pbx, &console, "flow-auth@test");
    let items = flow["messages"].as_array().unwrap();
    let authed = items
        .iter()
        .filter_map(|i| i["raw"].as_str())
        .find(|raw| raw.starts_with("INVITE ") && raw.contains("CSeq: 2 INVITE"))
        .expect("the authenticated INVITE is in the flow");
    assert!(
        authed.contains("Proxy-Authorization: Digest username=\"1001\", realm=\"pbx.test\""),
        "{authed}"
    );
    assert!(authed.contains("response=\"<redacted>\""), "{authed}");
    // No digest response anywhere in what a `read` token gets.
    let text = flow.to_string();
    let after: Vec<&str> = text.split("response=\\\"").skip(1).collect();
    assert!(!after.is_empty(), "{text}");
    for rest in after {
        assert!(
            rest.starts_with("<redacted>"),
            "a response is shown: {rest:.60}"
        );
    }
    assert_eq!(flow["truncated"], false);
}

#[test]
fn a_flow_past_max_flow_bytes_ends_with_a_truncation_marker() {
    let pbx = Pbx::start(PbxOptions {
        extra_tables: "[callrecord]\nmax_flow_bytes = 4096\n".into(),
        ..PbxOptions::default()
    });
    let console = Console::new(&pbx);
    let flow = flow_of_a_call(&pbx, &console, "flow-cap@test");
    assert_eq!(flow["truncated"], true, "{flow}");
    let items = flow["messages"].as_array().unwrap();
    let last = items.last().unwrap();
    assert_eq!(last["method"], "TRUNCATED", "{flow}");
    assert_eq!(last["truncated"], true);
    assert!(items[..items.len() - 1]
        .iter()
        .all(|i| i.get("truncated").is_none()));
    let kept: usize = items.iter().map(|i| i["raw"].as_str().unwrap().len()).sum();
    assert!(kept <= 4096, "{kept} bytes kept");
    assert!(flow["dropped"].as_u64().unwrap() >= 1, "{flow}");
    // The first messages are there, the INVITE first.
    assert!(items[0]["summary"]
        .as_str()
        .unwrap()
        .starts_with("INVITE sip:1002@pbx.test"));
}

/// A 200 list answer: (callIds in order, total).
fn ids_of(r: Http) -> (Vec<String>, u64) {
    assert_eq!(r.status, 200, "{}", String::from_utf8_lossy(&r.body));
    let v = r.json();
    let ids = v["items"]
        .as_array()
        .expect("items")
        .iter()
        .map(|c| c["callId"].as_str().unwrap().to_string())
        .collect();
    (ids, v["total"].as_u64().expect("total"))
}
