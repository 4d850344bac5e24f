//! Downloads to a file: nginx for the real thing (whole file, Range resume), scripted servers
//! for the answers nginx will not give on demand (ignored range, misaligned 206, truncation).

mod support;

use std::cell::RefCell;
use std::fs;
use std::path::Path;
use std::rc::Rc;
use std::time::Duration;

use support::scripted::{ScriptedServer, Step, test_config, turn_until, write};
use support::servers::{Nginx, TestDir, big_body, raw_get};
use weft::client::{
    Agent, Cause, DownloadOptions, Downloaded, Error, Progress, Request, download,
    partial_meta_path, partial_path,
};
use weft::reactor::Reactor;

type Progresses = Rc<RefCell<Vec<Progress>>>;

/// Runs one download on a fresh reactor and agent; returns its result and progress calls.
fn run(
    request: Request,
    path: &Path,
    mut options: DownloadOptions,
) -> (Result<Downloaded, Error>, Vec<Progress>) {
    let mut reactor = Reactor::new().unwrap();
    let agent = Agent::new(reactor.ctx(), test_config());
    let seen: Progresses = Rc::default();
    let s = seen.clone();
    options.progress = Some(Box::new(move |_ctx, p| s.borrow_mut().push(p)));
    let slot = Rc::new(RefCell::new(None));
    let out = slot.clone();
    download(
        reactor.ctx(),
        &agent,
        request,
        path,
        options,
        move |_ctx, r| *out.borrow_mut() = Some(r),
    );
    turn_until(&mut reactor, Duration::from_secs(15), || {
        slot.borrow().is_some()
    });
    let result = slot.borrow_mut().take().unwrap();
    let progress = seen.borrow().clone();
    (result, progress)
}

fn resume() -> DownloadOptions {
    DownloadOptions {
        resume: true,
        ..DownloadOptions::default()
    }
}

fn head(status: &str, fields: &[&str], body: &[u8]) -> Vec<u8> {
    let mut v = format!("HTTP/1.1 {status}\r\n").into_bytes();
    for f in fields {
        v.extend_from_slice(f.as_bytes());
        v.extend_from_slice(b"\r\n");
    }
    v.extend_from_slice(b"\r\n");
    v.extend_from_slice(body);
    v
}

fn request_text(server: &ScriptedServer, i: usize) -> String {
    String::from_utf8_lossy(&server.requests()[i].1).to_ascii_lowercase()
}

/// Writes a partial file for `target` with this content and validator.
fn write_partial(target: &Path, url: &str, content: &[u8], etag: &str) {
    fs::write(partial_path(target).unwrap(), content).unwrap();
    fs::write(
        partial_meta_path(target).unwrap(),
        format!("url {url}\netag {etag}\n"),
    )
    .unwrap();
}

/// A scripted server that answers one request with `response`, and a `f.txt` target whose
/// partial holds "hello" (validator "v1"); runs one resuming download against it.
fn resume_hello(response: Vec<u8>) -> (Result<Downloaded, Error>, TestDir, std::path::PathBuf) {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&response),
        Step::WaitClose,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("f.txt");
    let url = server.url("/f.txt");
    write_partial(&target, &url, b"hello", "\"v1\"");
    let (result, _) = run(Request::get(&url), &target, resume());
    (result, dir, target)
}

fn leftovers(target: &Path) -> (bool, bool, bool) {
    (
        target.exists(),
        partial_path(target).unwrap().exists(),
        partial_meta_path(target).unwrap().exists(),
    )
}

#[test]
fn big_file_from_nginx_with_monotonic_progress() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("big.bin");
    let options = DownloadOptions {
        min_progress_interval: Duration::ZERO,
        ..DownloadOptions::default()
    };
    let (result, progress) = run(Request::get(nginx.http_url("/big.bin")), &target, options);
    let d = result.unwrap();
    let total = big_body().len() as u64;
    assert_eq!(
        (d.bytes, d.resumed_from, d.status, d.complete),
        (total, 0, 200, true)
    );
    assert_eq!(d.path, target);
    assert!(fs::read(&target).unwrap() == big_body(), "content differs");
    assert_eq!(leftovers(&target), (true, false, false), "no partial left");

    assert!(progress.len() >= 2, "{} progress calls", progress.len());
    assert!(progress.windows(2).all(|w| w[0].received <= w[1].received));
    let last = progress.last().unwrap();
    assert_eq!((last.received, last.total), (total, Some(total)));
    assert!(progress.iter().all(|p| p.total == Some(total)));
    assert!(last.rate > 0.0);
}

#[test]
fn progress_calls_are_rate_limited() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("big.bin");
    let options = DownloadOptions {
        min_progress_interval: Duration::from_secs(60),
        ..DownloadOptions::default()
    };
    let (result, progress) = run(Request::get(nginx.http_url("/big.bin")), &target, options);
    result.unwrap();
    // The first piece, then nothing for 60 s, then the final call.
    assert_eq!(progress.len(), 2, "{progress:?}");
    assert_eq!(progress[1].received, big_body().len() as u64);
}

#[test]
fn resume_against_nginx_appends_the_rest() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("big.bin");
    let url = nginx.http_url("/big.bin");
    let (_, headers, _) = raw_get(nginx.http_addr(), "/big.bin");
    let etag = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("etag"))
        .map(|(_, v)| v.clone())
        .expect("nginx sends an ETag");
    let first = 1 << 20;
    write_partial(&target, &url, &big_body()[..first], &etag);

    let (result, progress) = run(Request::get(&url), &target, resume());
    let d = result.unwrap();
    let total = big_body().len() as u64;
    assert_eq!(
        (d.bytes, d.resumed_from, d.status),
        (total, first as u64, 206)
    );
    assert!(fs::read(&target).unwrap() == big_body(), "content differs");
    assert_eq!(leftovers(&target), (true, false, false));
    assert!(progress.iter().all(|p| p.received >= first as u64));

    let log = nginx.wait_access_log(2);
    let last = log.last().unwrap();
    assert_eq!(last.status, 206);
    assert_eq!(last.body_bytes_sent, total - first as u64);
}

#[test]
fn resume_with_a_changed_validator_restarts_from_zero_on_nginx() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("big.bin");
    let url = nginx.http_url("/big.bin");
    write_partial(&target, &url, b"stale bytes", "\"not-the-etag\"");
    let (result, _) = run(Request::get(&url), &target, resume());
    let d = result.unwrap();
    assert_eq!((d.status, d.resumed_from), (200, 0));
    assert!(fs::read(&target).unwrap() == big_body(), "content differs");
}

#[test]
fn server_ignoring_the_range_restarts_cleanly() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head(
            "200 OK",
            &["Content-Length: 11", "ETag: \"v2\""],
            b"hello world",
        )),
        Step::WaitClose,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("f.txt");
    let url = server.url("/f.txt");
    write_partial(&target, &url, b"XXXXXXXXXXXXXXXXXXXXXXXXXXXXX", "\"v1\"");
    let (result, _) = run(Request::get(&url), &target, resume());
    let d = result.unwrap();
    assert_eq!((d.status, d.resumed_from, d.bytes), (200, 0, 11));
    assert_eq!(fs::read(&target).unwrap(), b"hello world");
    assert_eq!(leftovers(&target), (true, false, false));
    let req = request_text(&server, 0);
    assert!(req.contains("range: bytes=29-\r\n"), "{req}");
    assert!(req.contains("if-range: \"v1\"\r\n"), "{req}");
}

#[test]
fn misaligned_206_fails_and_leaves_the_partial_untouched() {
    let (result, _dir, target) = resume_hello(head(
        "206 Partial Content",
        &["Content-Length: 8", "Content-Range: bytes 3-10/11"],
        b"lo world",
    ));
    let err = result.unwrap_err();
    assert!(
        matches!(err.cause(), Cause::File(m) if m.contains("bytes 3-10/11")),
        "{err}"
    );
    assert_eq!(leftovers(&target), (false, true, true));
    assert_eq!(fs::read(partial_path(&target).unwrap()).unwrap(), b"hello");
}

#[test]
fn truncated_body_keeps_a_resumable_partial_then_resume_completes_it() {
    let body: Vec<u8> = (0..100u8).collect();
    let first = head(
        "200 OK",
        &[
            "Content-Length: 100",
            "Accept-Ranges: bytes",
            "ETag: \"e1\"",
        ],
        &body[..10],
    );
    let second = head(
        "206 Partial Content",
        &[
            "Content-Length: 90",
            "Content-Range: bytes 10-99/100",
            "ETag: \"e1\"",
        ],
        &body[10..],
    );
    let server = ScriptedServer::start(vec![
        vec![Step::ExpectRequest, Step::Write(first), Step::Close],
        vec![Step::ExpectRequest, Step::Write(second), Step::WaitClose],
    ]);
    let dir = TestDir::new("dl");
    let target = dir.join("data.bin");
    let url = server.url("/data.bin");

    let (result, progress) = run(Request::get(&url), &target, resume());
    let err = result.unwrap_err();
    assert_eq!(err.phase(), weft::client::Phase::ResponseFailed, "{err}");
    assert!(matches!(err.cause(), Cause::Protocol(_)), "{err}");
    assert_eq!(leftovers(&target), (false, true, true));
    assert_eq!(
        fs::read(partial_path(&target).unwrap()).unwrap(),
        &body[..10]
    );
    assert_eq!(progress.last().unwrap().received, 10);

    let (result, _) = run(Request::get(&url), &target, resume());
    let d = result.unwrap();
    assert_eq!((d.status, d.resumed_from, d.bytes), (206, 10, 100));
    assert_eq!(fs::read(&target).unwrap(), body);
    assert_eq!(leftovers(&target), (true, false, false));
    let req = request_text(&server, 1);
    assert!(req.contains("range: bytes=10-\r\n"), "{req}");
    assert!(req.contains("if-range: \"e1\"\r\n"), "{req}");
}

#[test]
fn truncated_body_without_range_support_leaves_nothing() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head("200 OK", &["Content-Length: 100"], b"0123456789")),
        Step::Close,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("data.bin");
    let (result, _) = run(Request::get(server.url("/d")), &target, resume());
    assert!(result.is_err());
    assert_eq!(leftovers(&target), (false, false, false));
}

#[test]
fn range_not_satisfiable_with_matching_total_means_complete() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head(
            "416 Range Not Satisfiable",
            &["Content-Length: 0", "Content-Range: bytes */12"],
            b"",
        )),
        Step::WaitClose,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("hello.txt");
    let url = server.url("/hello.txt");
    write_partial(&target, &url, b"hello world\n", "\"h\"");
    let (result, progress) = run(Request::get(&url), &target, resume());
    let d = result.unwrap();
    assert_eq!(
        (d.status, d.bytes, d.resumed_from, d.complete),
        (416, 12, 12, true)
    );
    assert_eq!(fs::read(&target).unwrap(), b"hello world\n");
    assert_eq!(leftovers(&target), (true, false, false));
    assert_eq!(progress.last().unwrap().received, 12);
}

#[test]
fn max_size_fails_early_on_content_length_and_while_streaming_chunked() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    for path in ["/big.bin", "/chunked/big.bin"] {
        let target = dir.join("big.bin");
        let options = DownloadOptions {
            max_size: Some(1 << 20),
            ..DownloadOptions::default()
        };
        let (result, _) = run(Request::get(nginx.http_url(path)), &target, options);
        let err = result.unwrap_err();
        assert_eq!(err.cause(), &Cause::BodyTooLarge(1 << 20), "{path}: {err}");
        assert_eq!(leftovers(&target), (false, false, false), "{path}");
    }
}

#[test]
fn http_error_fails_by_default_and_is_saved_when_asked() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("missing.txt");
    let url = nginx.http_url("/missing.txt");
    let (result, _) = run(Request::get(&url), &target, DownloadOptions::default());
    let err = result.unwrap_err();
    assert_eq!(err.cause(), &Cause::HttpStatus(404), "{err}");
    assert_eq!(err.kind(), "http_status");
    assert_eq!(leftovers(&target), (false, false, false));

    let options = DownloadOptions {
        fail_on_http_error: false,
        ..DownloadOptions::default()
    };
    let (result, _) = run(Request::get(&url), &target, options);
    let d = result.unwrap();
    assert_eq!(d.status, 404);
    let saved = fs::read_to_string(&target).unwrap();
    assert!(saved.contains("404"), "{saved}");
}

#[test]
fn missing_directory_is_a_file_error() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let target = dir.join("no/such/dir/hello.txt");
    let (result, _) = run(
        Request::get(nginx.http_url("/hello.txt")),
        &target,
        DownloadOptions::default(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err.cause(), Cause::File(_)), "{err}");
    assert_eq!(err.kind(), "file");
}

#[test]
fn target_without_file_name_is_refused() {
    let nginx = Nginx::start();
    let (result, _) = run(
        Request::get(nginx.http_url("/hello.txt")),
        Path::new("/"),
        DownloadOptions::default(),
    );
    let err = result.unwrap_err();
    assert!(matches!(err.cause(), Cause::File(_)), "{err}");
    assert_eq!(nginx.access_log_entries().len(), 0, "nothing was sent");
}

#[test]
fn symlink_in_place_of_the_partial_is_replaced_not_followed() {
    let nginx = Nginx::start();
    let dir = TestDir::new("dl");
    let victim = dir.write("victim.txt", "precious");
    let target = dir.join("hello.txt");
    std::os::unix::fs::symlink(&victim, partial_path(&target).unwrap()).unwrap();
    let (result, _) = run(
        Request::get(nginx.http_url("/hello.txt")),
        &target,
        DownloadOptions::default(),
    );
    result.unwrap();
    assert_eq!(fs::read(&target).unwrap(), b"hello world\n");
    assert_eq!(fs::read(&victim).unwrap(), b"precious");
    assert!(!fs::symlink_metadata(&target).unwrap().is_symlink());
}

#[test]
fn content_disposition_never_chooses_the_file_name() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head(
            "200 OK",
            &[
                "Content-Length: 3",
                "Content-Disposition: attachment; filename=\"../../escape.txt\"",
            ],
            b"abc",
        )),
        Step::WaitClose,
    ]]);
    let root = TestDir::new("dl");
    fs::create_dir_all(root.join("a/b")).unwrap();
    let target = root.join("a/b/mine.txt");
    let (result, _) = run(
        Request::get(server.url("/x")),
        &target,
        DownloadOptions::default(),
    );
    assert_eq!(result.unwrap().path, target);
    assert_eq!(fs::read(&target).unwrap(), b"abc");
    assert!(!root.join("escape.txt").exists());
    assert_eq!(fs::read_dir(root.join("a/b")).unwrap().count(), 1);
}

#[test]
fn close_delimited_body_is_saved_but_marked_incomplete() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head("200 OK", &["Connection: close"], b"until close")),
        Step::Close,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("c.txt");
    let (result, _) = run(
        Request::get(server.url("/c")),
        &target,
        DownloadOptions::default(),
    );
    let d = result.unwrap();
    assert!(!d.complete);
    assert_eq!(fs::read(&target).unwrap(), b"until close");
}

#[test]
fn hostile_content_ranges_fail_without_panic() {
    let answers = [
        "bytes 5-18446744073709551615/*",
        "bytes 5-9/18446744073709551615",
        "bytes 5-7/11",
        "bytes 5-",
        "bytes */5",
    ];
    let scripts = answers
        .iter()
        .map(|cr| {
            vec![
                Step::ExpectRequest,
                write(&head(
                    "206 Partial Content",
                    &["Content-Length: 3", &format!("Content-Range: {cr}")],
                    b"abc",
                )),
                Step::WaitClose,
            ]
        })
        .collect();
    let server = ScriptedServer::start(scripts);
    let dir = TestDir::new("dl");
    let target = dir.join("f.txt");
    let url = server.url("/f.txt");
    for cr in answers {
        write_partial(&target, &url, b"hello", "\"v1\"");
        let (result, _) = run(Request::get(&url), &target, resume());
        let err = result.unwrap_err();
        assert!(matches!(err.cause(), Cause::File(_)), "{cr}: {err}");
        assert_eq!(leftovers(&target), (false, true, true), "{cr}");
        assert_eq!(fs::read(partial_path(&target).unwrap()).unwrap(), b"hello");
    }
}

#[test]
fn chunked_206_shorter_than_its_range_is_not_finalized() {
    let (result, _dir, target) = resume_hello(head(
        "206 Partial Content",
        &["Transfer-Encoding: chunked", "Content-Range: bytes 5-10/*"],
        b"3\r\nabc\r\n0\r\n\r\n",
    ));
    let err = result.unwrap_err();
    assert!(
        matches!(err.cause(), Cause::File(m) if m.contains("expected 11")),
        "{err}"
    );
    assert_eq!(leftovers(&target), (false, true, true));
    assert_eq!(
        fs::read(partial_path(&target).unwrap()).unwrap(),
        b"helloabc"
    );
}

#[test]
fn range_not_satisfiable_with_a_smaller_total_drops_the_partial() {
    let (result, _dir, target) = resume_hello(head(
        "416 Range Not Satisfiable",
        &["Content-Length: 0", "Content-Range: bytes */3"],
        b"",
    ));
    let err = result.unwrap_err();
    assert!(
        matches!(err.cause(), Cause::File(m) if m.contains("has 3")),
        "{err}"
    );
    assert_eq!(leftovers(&target), (false, false, false));
}

#[test]
fn partial_of_another_url_is_not_resumed() {
    let server = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(&head("200 OK", &["Content-Length: 3"], b"new")),
        Step::WaitClose,
    ]]);
    let dir = TestDir::new("dl");
    let target = dir.join("f.txt");
    write_partial(&target, "http://127.0.0.1:1/other", b"old bytes", "\"v1\"");
    let (result, _) = run(Request::get(server.url("/f.txt")), &target, resume());
    assert_eq!(result.unwrap().resumed_from, 0);
    assert_eq!(fs::read(&target).unwrap(), b"new");
    let req = request_text(&server, 0);
    assert!(!req.contains("range:"), "{req}");
    assert_eq!(leftovers(&target), (true, false, false));
}
