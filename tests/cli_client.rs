//! The `weft` command's client-layer options (redirects, auth, decoding, forms, cookies,
//! resume, ETags, `-w`, proxies, many URLs in sequence or in parallel, config files), run as a
//! user would against nginx, httpbin, tinyproxy and scripted servers on 127.0.0.1.
#![cfg(feature = "cli")]

mod support;

use std::fs;
use std::process::Output;

use support::scripted::{ScriptedServer, Step, write};
use support::servers::{Httpbin, Nginx, TestDir, Tinyproxy, big_body};

fn weft(args: &[&str]) -> Output {
    support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Runs `weft` and asserts it succeeded; returns stdout as text.
fn ok(args: &[&str]) -> String {
    let out = weft(args);
    assert!(
        out.status.success(),
        "weft {args:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `weft`, asserts it exits with `code`, and returns its stderr.
fn fails(args: &[&str], code: i32) -> String {
    let out = weft(args);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(code), "weft {args:?}: {err}");
    err
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).unwrap_or_else(|e| panic!("{e}: {s}"))
}

#[test]
fn location_follows_redirects_and_reports_them_with_write_out() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/redirect");
    let out = ok(&[
        "-L",
        "-w",
        "\\n%{http_code} %{num_redirects} %{url_effective}",
        &url,
    ]);
    assert_eq!(
        out,
        format!("hello world\n\n200 1 {}", nginx.http_url("/hello.txt"))
    );
    // Without -L the 301 itself is the answer.
    let out = ok(&[
        "-w",
        "%{http_code} %{num_redirects}",
        "-o",
        "/dev/null",
        &url,
    ]);
    assert_eq!(out, "301 0");
    // A loop, and a limit of zero, stop with curl's exit code 47.
    for args in [
        vec!["-L", "--max-redirs", "5"],
        vec!["-L", "--max-redirs", "0"],
    ] {
        let target = if args[2] == "5" {
            "/redirect-loop"
        } else {
            "/redirect"
        };
        let mut all = args.clone();
        let u = nginx.http_url(target);
        all.push(&u);
        let err = fails(&all, 47);
        assert!(err.starts_with("weft: "), "{err}");
    }
}

#[test]
fn user_basic_digest_and_wrong_password() {
    let bin = Httpbin::start();
    let out = ok(&["-u", "al:pw", &bin.url("/basic-auth/al/pw")]);
    assert_eq!(json(&out)["authenticated"], true);
    let out = ok(&[
        "-u",
        "al:pw",
        "--digest",
        &bin.url("/digest-auth/auth/al/pw/SHA-256"),
    ]);
    assert_eq!(json(&out)["user"], "al");
    let out = ok(&[
        "-u",
        "al:pw",
        "--anyauth",
        &bin.url("/digest-auth/auth/al/pw"),
    ]);
    assert_eq!(json(&out)["authenticated"], true);
    // Credentials from the URL's userinfo work too.
    let base = bin.url("/basic-auth/u2/p2");
    let with_userinfo = base.replacen("http://", "http://u2:p2@", 1);
    assert_eq!(json(&ok(&[&with_userinfo]))["user"], "u2");
    // A wrong password is the server's 401: exit 22 with -f.
    let err = fails(&["-f", "-u", "al:nope", &bin.url("/basic-auth/al/pw")], 22);
    assert!(err.contains("401"), "{err}");
}

#[test]
fn credentials_never_follow_a_redirect_to_another_origin() {
    let other = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"),
        Step::Close,
    ]]);
    let first = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(
            format!(
                "HTTP/1.1 302 Found\r\nLocation: {}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
                other.url("/landing")
            )
            .as_bytes(),
        ),
        Step::Close,
    ]]);
    let out = ok(&["-L", "-u", "al:secret", &first.url("/start")]);
    assert_eq!(out, "ok");
    let sent_first = text(&first.requests()[0].1).to_ascii_lowercase();
    let sent_other = text(&other.requests()[0].1).to_ascii_lowercase();
    assert!(sent_first.contains("authorization: basic"), "{sent_first}");
    assert!(!sent_other.contains("authorization"), "{sent_other}");
}

#[test]
fn compressed_decodes_and_reports_decoded_size() {
    let bin = Httpbin::start();
    let out = ok(&[
        "--compressed",
        "-w",
        "\n%{size_download}",
        &bin.url("/gzip"),
    ]);
    let (body, size) = out.rsplit_once('\n').unwrap();
    assert_eq!(json(body)["gzipped"], true);
    assert_eq!(size.parse::<usize>().unwrap(), body.len());
    let out = ok(&["--compressed", &bin.url("/brotli")]);
    assert_eq!(json(&out)["brotli"], true);
    // Without --compressed, nothing is asked for and nothing is decoded.
    let out = weft(&["-H", "Accept-Encoding: gzip", &bin.url("/gzip")]);
    assert_eq!(&out.stdout[..2], b"\x1f\x8b", "raw gzip bytes");
}

#[test]
fn form_uploads_fields_and_streamed_files() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-form");
    let up = dir.write("up.txt", "file content\n");
    let note = dir.write("note.txt", "from a file");
    let out = ok(&[
        "-F",
        "name=weft",
        "-F",
        &format!("doc=@{};type=text/x-test", up.display()),
        "-F",
        &format!("note=<{}", note.display()),
        &bin.url("/post"),
    ]);
    let v = json(&out);
    assert_eq!(v["form"]["name"], "weft");
    assert_eq!(v["form"]["note"], "from a file");
    assert_eq!(v["files"]["doc"], "file content\n");
    let ct = v["headers"]["Content-Type"].as_str().unwrap();
    assert!(ct.starts_with("multipart/form-data; boundary="), "{ct}");
    fails(&["-F", "f=@/nonexistent/x", &bin.url("/post")], 26);
}

#[test]
fn cookie_jar_is_written_and_read_back() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-cookies");
    let jar = dir.join("jar.txt");
    let jar_s = jar.to_str().unwrap();
    // /cookies/set answers with Set-Cookie and a redirect to /cookies: the jar serves the hop.
    let out = ok(&["-L", "-c", jar_s, &bin.url("/cookies/set?flavour=oat&n=1")]);
    assert_eq!(json(&out)["cookies"]["flavour"], "oat");
    let saved = fs::read_to_string(&jar).unwrap();
    assert!(saved.contains("\tflavour\toat"), "{saved}");
    // A later run sends them from the file; -b also takes cookies as text.
    let out = ok(&["-b", jar_s, &bin.url("/cookies")]);
    assert_eq!(json(&out)["cookies"]["n"], "1");
    let out = ok(&["-b", "inline=yes", &bin.url("/cookies")]);
    assert_eq!(json(&out)["cookies"]["inline"], "yes");
    // A jar file that does not exist yet is an empty jar.
    let out = ok(&[
        "-b",
        dir.join("none.txt").to_str().unwrap(),
        &bin.url("/cookies"),
    ]);
    assert_eq!(json(&out)["cookies"], serde_json::json!({}));
}

#[test]
fn continue_at_resumes_a_partial_file_from_nginx() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-resume");
    let file = dir.join("big.bin");
    let half = big_body().len() / 2;
    fs::write(&file, &big_body()[..half]).unwrap();
    let out = ok(&[
        "-C",
        "-",
        "-o",
        file.to_str().unwrap(),
        "-w",
        "%{http_code} %{size_download}",
        &nginx.http_url("/big.bin"),
    ]);
    assert_eq!(out, format!("206 {}", big_body().len() - half));
    assert!(fs::read(&file).unwrap() == big_body(), "file differs");
    // Complete already: the server's 416 means there is nothing left to fetch.
    let out = ok(&[
        "-C",
        "-",
        "-o",
        file.to_str().unwrap(),
        "-w",
        "%{http_code}",
        &nginx.http_url("/big.bin"),
    ]);
    assert_eq!(out, "416");
    assert!(fs::read(&file).unwrap() == big_body(), "file differs");
}

#[test]
fn continue_at_rewrites_when_the_range_is_ignored_and_refuses_a_wrong_range() {
    let dir = TestDir::new("weft-cli-resume2");
    let file = dir.join("f.txt");
    let ignored = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 200 OK\r\nContent-Length: 11\r\n\r\nhello world"),
        Step::WaitClose,
    ]]);
    fs::write(&file, "XXXX").unwrap();
    let guard = "If-Range: \"v1\"";
    let path = file.to_str().unwrap();
    ok(&["-C", "-", "-H", guard, "-o", path, &ignored.url("/f")]);
    assert_eq!(fs::read(&file).unwrap(), b"hello world");
    let sent = text(&ignored.requests()[0].1);
    assert!(sent.contains("Range: bytes=4-\r\n"), "{sent}");
    assert!(
        sent.contains(&format!("{guard}\r\n")),
        "the user's If-Range is kept: {sent}"
    );

    let wrong = ScriptedServer::start(vec![vec![
        Step::ExpectRequest,
        write(b"HTTP/1.1 206 Partial Content\r\nContent-Range: bytes 2-4/5\r\nContent-Length: 3\r\n\r\nllo"),
        Step::WaitClose,
    ]]);
    fs::write(&file, "hel").unwrap();
    fails(
        &["-C", "-", "-o", file.to_str().unwrap(), &wrong.url("/f")],
        33,
    );
    assert_eq!(
        fs::read(&file).unwrap(),
        b"hel",
        "the partial file is left alone"
    );
    // -C needs an output file.
    fails(&["-C", "-", &wrong.url("/f")], 2);
}

#[test]
fn etag_save_then_compare_gives_304() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-etag");
    let etag = dir.join("etag.txt");
    let etag_s = etag.to_str().unwrap();
    let url = nginx.http_url("/hello.txt");
    assert_eq!(ok(&["--etag-save", etag_s, &url]), "hello world\n");
    let saved = fs::read_to_string(&etag).unwrap();
    assert!(
        saved.starts_with('"') && saved.ends_with("\"\n"),
        "{saved:?}"
    );
    let out = ok(&["--etag-compare", etag_s, "-w", "%{http_code}", &url]);
    assert_eq!(out, "304");
    let last = nginx.wait_access_log(2).pop().unwrap();
    assert_eq!(last.status, 304);
}

#[test]
fn write_out_json_describes_the_transfer() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-w");
    let file = dir.join("out.bin");
    let out = ok(&[
        "-o",
        file.to_str().unwrap(),
        "-w",
        "%{json}",
        &nginx.http_url("/big.bin"),
    ]);
    let v = json(&out);
    assert_eq!(v["http_code"], 200);
    assert_eq!(v["http_version"], "1.1");
    assert_eq!(v["method"], "GET");
    assert_eq!(v["size_download"], big_body().len());
    assert_eq!(v["filename_effective"], file.to_str().unwrap());
    assert_eq!(v["exitcode"], 0);
    assert_eq!(v["num_connects"], 1);
    let t = |k: &str| v[k].as_f64().unwrap();
    assert!(t("time_connect") <= t("time_starttransfer"), "{v}");
    assert!(
        t("time_starttransfer") <= t("time_total") && t("time_total") > 0.0,
        "{v}"
    );
    // A failed transfer still writes its variables.
    let port = support::servers::free_port();
    let out = weft(&[
        "-w",
        "%{exitcode} %{http_code}",
        &format!("http://127.0.0.1:{port}/"),
    ]);
    assert_eq!(out.status.code(), Some(7));
    assert_eq!(text(&out.stdout), "7 0");
}

#[test]
fn proxy_option_sends_requests_through_tinyproxy() {
    let nginx = Nginx::start();
    let proxy = Tinyproxy::start(None);
    let out = ok(&["-x", &proxy.url(), &nginx.http_url("/hello.txt")]);
    assert_eq!(out, "hello world\n");
    assert!(proxy.log().contains("hello.txt"), "{}", proxy.log());
    // --noproxy bypasses it.
    let before = proxy.log().matches("hello.txt").count();
    ok(&[
        "-x",
        &proxy.url(),
        "--noproxy",
        "127.0.0.1",
        &nginx.http_url("/hello.txt"),
    ]);
    assert_eq!(proxy.log().matches("hello.txt").count(), before);
}

#[test]
fn many_urls_in_sequence_share_the_pool_and_name_their_files() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-many");
    let out = ok(&[
        "-O",
        "--output-dir",
        dir.path().to_str().unwrap(),
        "-w",
        "%{filename_effective} %{num_connects}\\n",
        &nginx.http_url("/hello.txt"),
        &nginx.http_url("/big.bin"),
    ]);
    let lines: Vec<_> = out.lines().collect();
    assert_eq!(lines[0], format!("{} 1", dir.join("hello.txt").display()));
    assert_eq!(lines[1], format!("{} 0", dir.join("big.bin").display()));
    assert_eq!(fs::read(dir.join("hello.txt")).unwrap(), b"hello world\n");
    assert!(fs::read(dir.join("big.bin")).unwrap() == big_body());
    assert_eq!(nginx.wait_access_log(2).len(), 2);
    assert_eq!(
        nginx.distinct_connections(),
        1,
        "the second reused the first's connection"
    );
}

#[test]
fn parallel_runs_at_most_parallel_max_at_once() {
    let nginx = Nginx::start();
    let urls: Vec<String> = (0..6)
        .map(|i| nginx.http_url(&format!("/slow?i={i}")))
        .collect();
    let mut args = vec!["-Z", "--parallel-max", "2", "-w", "%{http_code}\\n"];
    args.extend(urls.iter().map(String::as_str));
    let out = ok(&args);
    assert_eq!(out.lines().filter(|l| *l == "200").count(), 6, "{out}");
    nginx.wait_access_log(6);
    let conns = nginx.distinct_connections();
    assert!(
        (1..=2).contains(&conns),
        "{conns} connections for --parallel-max 2"
    );
}

#[test]
fn exit_status_is_the_first_failure_and_every_failure_is_reported() {
    let nginx = Nginx::start();
    let dead = format!("http://127.0.0.1:{}/", support::servers::free_port());
    let out = weft(&[&nginx.http_url("/hello.txt"), &dead, "http://[::1"]);
    assert_eq!(out.status.code(), Some(7), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hello world\n");
    let err = text(&out.stderr);
    assert_eq!(err.lines().count(), 2, "{err}");
    assert!(err.lines().all(|l| l.starts_with("weft: ")), "{err}");
}

#[test]
fn config_file_supplies_options_and_urls() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-k");
    let config = dir.write(
        "weft.conf",
        format!(
            "# two transfers\nsilent\nwrite-out = \"%{{http_code}}\\n\"\nurl = \"{}\"\n{}\n",
            nginx.http_url("/hello.txt"),
            nginx.http_url("/missing")
        ),
    );
    let out = ok(&[
        "-K",
        config.to_str().unwrap(),
        "-o",
        "/dev/null",
        "-o",
        "/dev/null",
    ]);
    assert_eq!(out, "200\n404\n");
    let err = fails(&["-K", dir.join("nope.conf").to_str().unwrap()], 2);
    assert!(err.contains("nope.conf"), "{err}");
}

#[test]
fn no_progress_bar_when_stderr_is_not_a_terminal() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-progress");
    let out = weft(&[
        "-o",
        dir.join("b").to_str().unwrap(),
        &nginx.http_url("/big.bin"),
    ]);
    assert!(out.status.success());
    assert!(out.stderr.is_empty(), "{}", text(&out.stderr));
}

#[test]
fn a_streamed_file_body_is_replayed_through_a_307() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-307");
    let body = dir.write("body.bin", "streamed from disk, sent twice");
    let url = bin.url("/redirect-to?url=/post&status_code=307");
    let out = ok(&[
        "-L",
        "--data-binary",
        &format!("@{}", body.display()),
        "-H",
        "Content-Type: application/octet-stream",
        &url,
    ]);
    let v = json(&out);
    assert_eq!(v["data"], "streamed from disk, sent twice");
    assert_eq!(v["url"], bin.url("/post"));
}

#[test]
fn continue_at_refuses_answers_that_do_not_continue_the_file() {
    let dir = TestDir::new("weft-cli-resume3");
    let file = dir.join("f.txt");
    let answers: [&[u8]; 3] = [
        // 206 without a Content-Range: where the bytes go is unknown.
        b"HTTP/1.1 206 Partial Content\r\nContent-Length: 3\r\n\r\nllo",
        // 416 whose total is not the file's size: the file is not the server's.
        b"HTTP/1.1 416 Range Not Satisfiable\r\nContent-Range: bytes */9\r\nContent-Length: 0\r\n\r\n",
        // Any other status: its body must not be appended to (or replace) the file.
        b"HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found",
    ];
    for answer in answers {
        let server = ScriptedServer::start(vec![vec![
            Step::ExpectRequest,
            write(answer),
            Step::WaitClose,
        ]]);
        fs::write(&file, "hel").unwrap();
        let err = fails(
            &["-C", "-", "-o", file.to_str().unwrap(), &server.url("/f")],
            33,
        );
        assert!(err.contains("resume"), "{err}");
        assert_eq!(fs::read(&file).unwrap(), b"hel", "{err}");
    }
}

#[test]
fn bad_proxy_cookie_file_and_etag_destination_are_typed_failures() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-bad");
    let url = nginx.http_url("/hello.txt");
    // A proxy scheme weft does not speak is refused before anything is sent.
    let err = fails(&["-x", "socks4://127.0.0.1:1", &url], 97);
    assert!(err.contains("proxy"), "{err}");
    // A cookie file that exists but cannot be read as one (a directory) is a read error.
    let err = fails(&["-b", dir.path().to_str().unwrap(), &url], 26);
    assert!(err.contains("cookies"), "{err}");
    // The ETag cannot be saved: the body is still written, the run fails as a write error.
    let nowhere = dir.join("no/such/dir/etag");
    let out = weft(&["--etag-save", nowhere.to_str().unwrap(), &url]);
    assert_eq!(out.status.code(), Some(23), "{}", text(&out.stderr));
    assert_eq!(out.stdout, b"hello world\n");
}
