//! Multipart form bodies against httpbin `/post` and a scripted server that records the bytes.

mod support;

use std::cell::RefCell;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::*;
use support::servers::{Httpbin, TestDir};
use weft::client::{Agent, BodyProducer, HttpAgent, Multipart, Request};
use weft::reactor::Reactor;

/// Runs one request on a fresh agent; returns (status, body) or panics on failure.
fn send(request: Request) -> (u16, Vec<u8>) {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let slot = Rc::new(RefCell::new(None));
    let s = slot.clone();
    HttpAgent::request(
        &agent,
        reactor.ctx(),
        request,
        Box::new(move |ctx, r| {
            let resp = r.expect("response");
            let code = resp.code;
            resp.collect(ctx, 64 << 20, move |_ctx, body| {
                *s.borrow_mut() = Some((code, body.expect("body").body));
            });
        }),
    );
    turn_until(&mut reactor, Duration::from_secs(20), || {
        slot.borrow().is_some()
    });
    slot.borrow_mut().take().unwrap()
}

/// 3 MB of ASCII text (httpbin returns text file contents as they are).
fn big_text() -> Vec<u8> {
    let mut v = Vec::with_capacity(3_000_000);
    let mut i = 0u64;
    while v.len() < 3_000_000 {
        v.extend_from_slice(format!("{i:012} the quick brown fox\n").as_bytes());
        i += 1;
    }
    v.truncate(3_000_000);
    v
}

#[test]
fn httpbin_receives_fields_and_files() {
    let hb = Httpbin::start();
    let dir = TestDir::new("multipart");
    let big = big_text();
    let big_path = dir.write("big.txt", &big);
    let small_path = dir.write("note.json", br#"{"a": 1}"#);
    let form = Multipart::new()
        .text("title", "holiday")
        .text("quote\"d\r\nname", "line one\r\nline two")
        .file("upload", &big_path)
        .unwrap()
        .file("meta", &small_path)
        .unwrap();
    let (code, body) = send(form.attach(Request::new("POST", hb.url("/post"))));
    assert_eq!(code, 200);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["form"]["title"], "holiday");
    assert_eq!(
        json["form"]["quote%22d%0D%0Aname"], "line one\r\nline two",
        "{}",
        json["form"]
    );
    let upload = json["files"]["upload"].as_str().unwrap();
    assert_eq!(upload.len(), big.len());
    assert!(upload.as_bytes() == big);
    assert_eq!(json["files"]["meta"], r#"{"a": 1}"#);
    let ct = json["headers"]["Content-Type"].as_str().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
}

fn head_and_body(raw: &[u8]) -> (String, Vec<u8>) {
    let end = find(raw, b"\r\n\r\n").unwrap() + 4;
    (
        String::from_utf8_lossy(&raw[..end]).into_owned(),
        raw[end..].to_vec(),
    )
}

fn dechunk(mut b: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line = find(b, b"\r\n").unwrap();
        let size =
            usize::from_str_radix(std::str::from_utf8(&b[..line]).unwrap().trim(), 16).unwrap();
        b = &b[line + 2..];
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

fn recording_server() -> ScriptedServer {
    ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"),
        Step::WaitClose,
    ]])
}

#[test]
fn content_length_matches_the_bytes_sent() {
    let dir = TestDir::new("multipart");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let path = dir.write("blob.bin", &data);
    let form = Multipart::new()
        .text("a", "b")
        .file("f", &path)
        .unwrap()
        .bytes("raw", "r.png", "image/png", vec![1, 2, 3])
        .reader("rd", "rd.txt", "text/plain", &b"known length"[..], Some(12));
    let boundary = form.boundary().to_string();
    let srv = recording_server();
    let (code, _) = send(form.attach(Request::new("POST", srv.url("/up"))));
    assert_eq!(code, 200);
    let reqs = srv.requests();
    let (head, body) = head_and_body(&reqs[0].1);
    let declared: usize = head
        .lines()
        .find_map(|l| l.strip_prefix("Content-Length: "))
        .unwrap_or_else(|| panic!("no Content-Length: {head}"))
        .parse()
        .unwrap();
    assert_eq!(declared, body.len());
    assert!(head.contains(&format!(
        "Content-Type: multipart/form-data; boundary={boundary}\r\n"
    )));
    let text = String::from_utf8_lossy(&body);
    assert!(text.starts_with(&format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\nb\r\n"
    )));
    assert!(text.contains(
        "name=\"f\"; filename=\"blob.bin\"\r\nContent-Type: application/octet-stream\r\n\r\n"
    ));
    assert!(find(&body, &data).is_some(), "file bytes present");
    assert!(text.contains("filename=\"r.png\"\r\nContent-Type: image/png\r\n\r\n\x01\x02\x03\r\n"));
    assert!(text.ends_with(&format!("\r\n--{boundary}--\r\n")));
}

#[test]
fn unknown_length_reader_is_sent_chunked() {
    let payload: Vec<u8> = b"streamed ".repeat(10_000);
    let form = Multipart::new().text("k", "v").reader(
        "s",
        "s.txt",
        "text/plain",
        std::io::Cursor::new(payload.clone()),
        None,
    );
    let boundary = form.boundary().to_string();
    let mut producer = Multipart::new()
        .reader("s", "s", "text/plain", &b""[..], None)
        .into_producer();
    assert_eq!(producer.length(), None);
    assert!(!producer.rewind(), "readers cannot be replayed");
    let srv = recording_server();
    let (code, _) = send(form.attach(Request::new("POST", srv.url("/up"))));
    assert_eq!(code, 200);
    let (head, body) = head_and_body(&srv.requests()[0].1);
    assert!(head.contains("Transfer-Encoding: chunked\r\n"), "{head}");
    assert!(!head.contains("Content-Length"), "{head}");
    let body = dechunk(&body);
    let mut want = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"k\"\r\n\r\nv\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"s\"; filename=\"s.txt\"\r\nContent-Type: text/plain\r\n\r\n"
    )
    .into_bytes();
    want.extend_from_slice(&payload);
    want.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    assert!(
        body == want,
        "{}",
        String::from_utf8_lossy(&body[..200.min(body.len())])
    );
}

#[test]
fn boundary_avoids_in_memory_content_and_files_rewind() {
    let first = Multipart::new();
    let b = first.boundary().to_string();
    let form = first.bytes(
        "x",
        "x.bin",
        "application/octet-stream",
        format!("--{b}").into_bytes(),
    );
    assert_ne!(
        form.boundary(),
        b,
        "boundary must change when a part contains it"
    );
    assert_ne!(Multipart::new().boundary(), Multipart::new().boundary());

    let dir = TestDir::new("multipart");
    let path = dir.write("a.txt", "hello");
    let mut producer = Multipart::new().file("a", &path).unwrap().into_producer();
    assert!(producer.rewind());
}
