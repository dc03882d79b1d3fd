//! The receiver under raw HTTP from misbehaving clients: wrong methods and paths, stalled
//! clients (alone and by the hundred beside a good one), broken and inflating gzip, header
//! floods, pipelined requests and `Expect: 100-continue`. Every socket is on 127.0.0.1 and
//! every read is bounded in time.

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use spectator::testing::aggregator::{Aggregator, Reply};

/// One valid measurement: `test.count{statistic=count}` add 5.
const PAYLOAD: &str = r#"[4,"name","test.count","statistic","count",2,0,1,2,3,0,5]"#;
/// Longest any read waits.
const PATIENCE: Duration = Duration::from_secs(10);

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(PATIENCE)).unwrap();
    s.set_write_timeout(Some(PATIENCE)).unwrap();
    s
}

fn post(body: &str, extra_headers: &str, close: bool) -> Vec<u8> {
    let connection = if close { "Connection: close\r\n" } else { "" };
    format!(
        "POST /api/v4/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\n{extra_headers}{connection}\r\n{body}",
        body.len()
    )
    .into_bytes()
}

/// Reads until the server closes the connection (or PATIENCE passes: a failure).
fn read_all(s: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let t0 = Instant::now();
    let mut buf = [0u8; 8192];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return out,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return out,
            Err(e) => panic!(
                "no end of the answer after {:?}: {e}; got {:?}",
                t0.elapsed(),
                String::from_utf8_lossy(&out)
            ),
        }
    }
}

#[derive(Debug)]
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", self.body))
    }
}

/// Splits a byte stream into the responses it holds (bodies with Content-Length).
fn answers(mut bytes: &[u8]) -> Vec<Answer> {
    let mut out = Vec::new();
    while !bytes.is_empty() {
        let end = bytes
            .windows(4)
            .position(|w| w == b"\r\n\r\n")
            .unwrap_or_else(|| panic!("no end of head in {:?}", String::from_utf8_lossy(bytes)));
        let head = String::from_utf8_lossy(&bytes[..end]).into_owned();
        let mut lines = head.split("\r\n");
        let status: u16 = lines.next().unwrap()[9..12].parse().unwrap();
        let headers: Vec<(String, String)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim().to_string(), v.trim().to_string()))
            .collect();
        let len: usize = headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.parse().unwrap());
        let body = String::from_utf8_lossy(&bytes[end + 4..end + 4 + len]).into_owned();
        bytes = &bytes[end + 4 + len..];
        out.push(Answer {
            status,
            headers,
            body,
        });
    }
    out
}

/// Sends `request` on a new connection and returns the one answer.
fn exchange(addr: SocketAddr, request: &[u8]) -> Answer {
    let mut s = connect(addr);
    s.write_all(request).unwrap();
    let mut got = answers(&read_all(&mut s));
    assert_eq!(got.len(), 1, "{got:?}");
    got.remove(0)
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    enc.write_all(data).unwrap();
    enc.finish().unwrap()
}

fn post_bytes(body: &[u8], extra_headers: &str) -> Vec<u8> {
    let mut req = format!(
        "POST /api/v4/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {}\r\n\
         {extra_headers}Connection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    req.extend_from_slice(body);
    req
}

/// Whether the server has closed `s` (a read sees the end, or a reset).
fn closed_by_server(s: &mut TcpStream, wait: Duration) -> bool {
    s.set_read_timeout(Some(wait)).unwrap();
    let mut buf = [0u8; 1024];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

#[test]
fn other_methods_get_405_and_other_paths_404_with_json() {
    let agg = Aggregator::start().unwrap();
    // A scripted reply is for publishes only: the refused requests below leave it alone.
    agg.script(Reply::Status(503), 1);
    let addr = agg.addr();

    let a = exchange(
        addr,
        b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n",
    );
    assert_eq!(a.status, 405);
    assert_eq!(a.header("allow"), Some("POST"));
    assert_eq!(a.header("content-type"), Some("application/json"));
    let v = a.json();
    assert_eq!(v["type"], "error");
    assert!(
        v["message"][0]
            .as_str()
            .unwrap()
            .contains("POST /api/v4/update"),
        "{v}"
    );

    for method in ["GET", "PUT", "DELETE", "PATCH"] {
        let req =
            format!("{method} /api/v4/update HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        let a = exchange(addr, req.as_bytes());
        assert_eq!(a.status, 405, "{method}");
    }

    let mut req = b"POST /not/the/api HTTP/1.1\r\nHost: x\r\nConnection: close\r\n".to_vec();
    req.extend_from_slice(format!("Content-Length: {}\r\n\r\n{PAYLOAD}", PAYLOAD.len()).as_bytes());
    let a = exchange(addr, &req);
    assert_eq!(a.status, 404);
    let v = a.json();
    assert!(
        v["message"][0].as_str().unwrap().contains("/not/the/api"),
        "{v}"
    );
    let a = exchange(
        addr,
        &post_bytes(PAYLOAD.as_bytes(), "").replace_path("/api/v4/update/x"),
    );
    assert_eq!(a.status, 404);

    // Recorded with their status, nothing accepted.
    let reqs = agg.take_requests();
    assert_eq!(reqs.len(), 7);
    assert!(reqs
        .iter()
        .all(|r| r.accepted.is_empty() && r.payload.is_err()));
    assert_eq!(reqs[0].status, Some(405));
    assert_eq!(
        (reqs[5].path.as_str(), reqs[5].status),
        ("/not/the/api", Some(404))
    );

    // The script is still there for the first real publish.
    assert_eq!(exchange(addr, &post(PAYLOAD, "", true)).status, 503);
    assert_eq!(exchange(addr, &post(PAYLOAD, "", true)).status, 200);
    assert_eq!(agg.accepted_total("test.count"), 5.0);
}

trait ReplacePath {
    fn replace_path(self, path: &str) -> Vec<u8>;
}

impl ReplacePath for Vec<u8> {
    fn replace_path(self, path: &str) -> Vec<u8> {
        let text = String::from_utf8(self).unwrap();
        text.replacen("/api/v4/update", path, 1).into_bytes()
    }
}

#[test]
fn stalled_clients_are_closed_after_the_request_timeout() {
    let timeout = Duration::from_millis(300);
    let agg = Aggregator::builder()
        .request_timeout(timeout)
        .start()
        .unwrap();
    let addr = agg.addr();

    // Half a head; the whole head and half a body; nothing at all.
    let mut half_head = connect(addr);
    half_head
        .write_all(b"POST /api/v4/update HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        .unwrap();
    let mut half_body = connect(addr);
    half_body
        .write_all(b"POST /api/v4/update HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n[4,")
        .unwrap();
    let mut silent = connect(addr);
    let t0 = Instant::now();
    for s in [&mut half_head, &mut half_body, &mut silent] {
        assert!(
            closed_by_server(s, PATIENCE),
            "still open after {:?}",
            t0.elapsed()
        );
    }
    let waited = t0.elapsed();
    assert!(waited >= timeout / 2, "closed too early: {waited:?}");
    assert!(
        waited < Duration::from_secs(5),
        "closed too late: {waited:?}"
    );
    // Counted as the server's connection task ends, just after the socket closed.
    let deadline = Instant::now() + PATIENCE;
    while agg.timed_out_connections() < 3 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(5));
    }
    assert_eq!(agg.timed_out_connections(), 3);
    // None of them counts as a request, and the server still answers.
    assert!(agg.requests().is_empty());
    assert_eq!(exchange(addr, &post(PAYLOAD, "", true)).status, 200);
}

/// Opens `n` connections that each send half a request head and stall.
fn stalled_clients(addr: SocketAddr, n: usize) -> Vec<TcpStream> {
    (0..n)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(b"POST /api/v4/update HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Le")
                .unwrap();
            s
        })
        .collect()
}

#[test]
fn two_hundred_stalled_clients_beside_a_good_one() {
    let agg = Aggregator::start().unwrap();
    let stalled = stalled_clients(agg.addr(), 200);
    let t0 = Instant::now();
    let a = exchange(agg.addr(), &post(PAYLOAD, "", true));
    assert_eq!(a.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    assert_eq!(agg.accepted_total("test.count"), 5.0);
    assert_eq!(agg.shed_connections(), 0);
    drop(stalled);
}

#[test]
fn connection_cap_sheds_stalled_clients_and_serves_the_good_one() {
    let cap = 32;
    let agg = Aggregator::builder().max_connections(cap).start().unwrap();
    let mut stalled = stalled_clients(agg.addr(), 200);
    let t0 = Instant::now();
    let a = exchange(agg.addr(), &post(PAYLOAD, "", true));
    assert_eq!(a.status, 200);
    assert!(t0.elapsed() < Duration::from_secs(2), "{:?}", t0.elapsed());
    // The server holds at most `cap` connections: the others were closed, oldest first.
    let deadline = Instant::now() + PATIENCE;
    let mut closed = 0;
    for s in &mut stalled {
        let left = deadline.saturating_duration_since(Instant::now());
        if closed_by_server(
            s,
            left.min(Duration::from_millis(50))
                .max(Duration::from_millis(1)),
        ) {
            closed += 1;
        }
    }
    assert!(
        closed >= 200 - cap,
        "only {closed} of 200 stalled clients closed"
    );
    assert!(agg.shed_connections() >= (200 - cap) as u64);
    // The newest stalled clients are the ones kept.
    assert!(!closed_by_server(
        &mut stalled[199],
        Duration::from_millis(50)
    ));
}

#[test]
fn truncated_gzip_is_a_400_with_a_message() {
    let agg = Aggregator::start().unwrap();
    let z = gzip(PAYLOAD.as_bytes());
    let a = exchange(
        agg.addr(),
        &post_bytes(&z[..z.len() / 2], "Content-Encoding: gzip\r\n"),
    );
    assert_eq!(a.status, 400);
    let v = a.json();
    assert!(v["message"][0].as_str().unwrap().contains("gzip"), "{v}");
    let reqs = agg.requests();
    assert!(reqs[0].payload.as_ref().unwrap_err().contains("gzip"));
    // Whole, the same body is accepted.
    let a = exchange(agg.addr(), &post_bytes(&z, "Content-Encoding: gzip\r\n"));
    assert_eq!(a.status, 200);
}

#[test]
fn bodies_past_the_cap_are_413() {
    let cap = 1 << 20;
    let agg = Aggregator::builder().max_body_bytes(cap).start().unwrap();
    // 8 KiB on the wire that inflate to 8 MiB.
    let bomb = gzip(&vec![b' '; 8 * cap]);
    assert!(bomb.len() < cap / 16);
    let a = exchange(agg.addr(), &post_bytes(&bomb, "Content-Encoding: gzip\r\n"));
    assert_eq!(a.status, 413);
    assert!(a.json()["message"][0]
        .as_str()
        .unwrap()
        .contains("inflates past"));

    // Announced too large: answered before the body is read.
    let mut s = connect(agg.addr());
    s.write_all(
        format!(
            "POST /api/v4/update HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\r\n",
            cap + 1
        )
        .as_bytes(),
    )
    .unwrap();
    let mut head = [0u8; 12];
    s.read_exact(&mut head).unwrap();
    assert_eq!(&head, b"HTTP/1.1 413");

    // Chunked, without a length: cut off at the cap.
    let mut s = connect(agg.addr());
    s.write_all(b"POST /api/v4/update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n")
        .unwrap();
    let chunk = vec![b' '; 64 * 1024];
    let mut answer = Vec::new();
    for _ in 0..(2 * cap / chunk.len()) {
        let mut c = format!("{:x}\r\n", chunk.len()).into_bytes();
        c.extend_from_slice(&chunk);
        c.extend_from_slice(b"\r\n");
        if s.write_all(&c).is_err() {
            break;
        }
    }
    let _ = s.read_to_end(&mut answer);
    // The server closes with the rest of the body unread, so the client may see a reset
    // instead of the answer; what the server answered is recorded either way.
    assert!(
        answer.is_empty() || answer.starts_with(b"HTTP/1.1 413"),
        "{:?}",
        String::from_utf8_lossy(&answer)
    );
    let statuses: Vec<Option<u16>> = agg.requests().iter().map(|r| r.status).collect();
    assert_eq!(statuses, [Some(413); 3]);
    // And the server is fine.
    assert_eq!(exchange(agg.addr(), &post(PAYLOAD, "", true)).status, 200);
}

#[test]
fn header_floods_get_431_and_the_server_keeps_serving() {
    let agg = Aggregator::start().unwrap();
    // Too many headers, then one enormous header: the connection is closed at once (hyper
    // closes it, at most with a 431 first), nothing is taken as a request.
    let many: String = (0..150).map(|i| format!("X-Flood-{i}: {i}\r\n")).collect();
    let huge = format!("X-Huge: {}\r\n", "a".repeat(200 * 1024));
    for flood in [many, huge] {
        let mut s = connect(agg.addr());
        let _ = s.write_all(&post(PAYLOAD, &flood, true));
        let got = read_all(&mut s);
        assert!(
            got.is_empty() || got.starts_with(b"HTTP/1.1 431"),
            "{:?}",
            String::from_utf8_lossy(&got)
        );
    }
    // One header of 60 KiB and 90 headers: within the limits.
    let big = format!("X-Big: {}\r\n", "a".repeat(60 * 1024));
    assert_eq!(exchange(agg.addr(), &post(PAYLOAD, &big, true)).status, 200);
    let ninety: String = (0..90).map(|i| format!("X-Ok-{i}: {i}\r\n")).collect();
    assert_eq!(
        exchange(agg.addr(), &post(PAYLOAD, &ninety, true)).status,
        200
    );
    // Headers that never end: cut off at the head limit, not read forever.
    let mut s = connect(agg.addr());
    s.write_all(b"POST /api/v4/update HTTP/1.1\r\n").unwrap();
    let line = b"X-Again: and again and again and again\r\n".repeat(100);
    let t0 = Instant::now();
    while t0.elapsed() < PATIENCE && s.write_all(&line).is_ok() {}
    assert!(
        t0.elapsed() < PATIENCE,
        "the server read headers for {:?}",
        t0.elapsed()
    );
    assert_eq!(
        agg.requests().len(),
        2,
        "only the requests within the limits"
    );
    assert_eq!(exchange(agg.addr(), &post(PAYLOAD, "", true)).status, 200);
}

#[test]
fn pipelined_requests_are_answered_in_order() {
    let agg = Aggregator::start().unwrap();
    agg.script(Reply::Status(503), 1);
    let bad = r#"[2,"name","bad name",1,0,1,0,1]"#;
    let mut all = post(PAYLOAD, "", false);
    all.extend(post(PAYLOAD, "", false));
    all.extend(post(bad, "", false));
    all.extend(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n");
    all.extend(post(PAYLOAD, "", true));
    let mut s = connect(agg.addr());
    s.write_all(&all).unwrap();
    let got = answers(&read_all(&mut s));
    let statuses: Vec<u16> = got.iter().map(|a| a.status).collect();
    assert_eq!(statuses, [503, 200, 400, 405, 200]);
    assert_eq!(agg.requests().len(), 5);
    assert_eq!(agg.accepted_total("test.count"), 10.0);
}

#[test]
fn a_client_that_shuts_its_side_down_still_gets_its_answer() {
    let agg = Aggregator::start().unwrap();
    let mut s = connect(agg.addr());
    s.write_all(&post(PAYLOAD, "", false)).unwrap();
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let got = answers(&read_all(&mut s));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].status, 200);
}

#[test]
fn expect_100_continue() {
    let agg = Aggregator::start().unwrap();
    let mut s = connect(agg.addr());
    s.write_all(
        format!(
            "POST /api/v4/update HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            PAYLOAD.len()
        )
        .as_bytes(),
    )
    .unwrap();
    let interim = b"HTTP/1.1 100 Continue\r\n\r\n";
    let mut got = vec![0u8; interim.len()];
    s.read_exact(&mut got).unwrap();
    assert_eq!(got, interim, "{:?}", String::from_utf8_lossy(&got));
    s.write_all(PAYLOAD.as_bytes()).unwrap();
    let a = answers(&read_all(&mut s));
    assert_eq!(a[0].status, 200);
    assert_eq!(agg.accepted_total("test.count"), 5.0);

    // Too large: refused at once, without asking for the body.
    let agg = Aggregator::builder().max_body_bytes(10).start().unwrap();
    let a = exchange(
        agg.addr(),
        format!(
            "POST /api/v4/update HTTP/1.1\r\nHost: x\r\nContent-Length: {}\r\n\
             Expect: 100-continue\r\nConnection: close\r\n\r\n",
            PAYLOAD.len()
        )
        .as_bytes(),
    );
    assert_eq!(a.status, 413);
}

#[test]
fn chunked_bodies_are_accepted() {
    let agg = Aggregator::start().unwrap();
    let (a, b) = PAYLOAD.split_at(10);
    let req = format!(
        "POST /api/v4/update HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\
         Connection: close\r\n\r\n{:x}\r\n{a}\r\n{:x}\r\n{b}\r\n0\r\n\r\n",
        a.len(),
        b.len()
    );
    assert_eq!(exchange(agg.addr(), req.as_bytes()).status, 200);
    assert_eq!(agg.accepted_total("test.count"), 5.0);
}

#[test]
fn garbage_closes_the_connection_and_is_harmless() {
    let agg = Aggregator::start().unwrap();
    let mut s = connect(agg.addr());
    s.write_all(b"\x16\x03\x01 not http at all\r\n\r\n")
        .unwrap();
    let got = read_all(&mut s);
    assert!(
        got.is_empty() || got.starts_with(b"HTTP/1.1 400"),
        "{got:?}"
    );
    assert!(agg.requests().is_empty());
    assert_eq!(exchange(agg.addr(), &post(PAYLOAD, "", true)).status, 200);
}
