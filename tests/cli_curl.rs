//! The `weft` command's everyday curl options (`--json`, `--fail-with-body`, `-G`,
//! `--data-urlencode`, `-D`, `-r`, `-T`, `-e`, `--next`) and curl's behaviours (every hop's
//! head with `-L`, `-O` without a file name, the timeout message), run as a user would
//! against nginx and httpbin on 127.0.0.1, with the hostile cases (missing and unreadable
//! files, bad ranges, unwritable outputs).
#![cfg(feature = "cli")]

mod support;

use std::io::Write;
use std::process::{Output, Stdio};

use support::servers::{Httpbin, Nginx, TestDir, big_body};

fn weft(args: &[&str]) -> Output {
    support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("weft runs")
}

/// Runs `weft` with `input` on its standard input.
fn weft_with_stdin(args: &[&str], input: &[u8]) -> Output {
    let mut child = support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("weft runs");
    let mut stdin = child.stdin.take().expect("piped stdin");
    stdin.write_all(input).expect("stdin written");
    drop(stdin);
    child.wait_with_output().expect("weft ends")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn check_ok(args: &[&str], out: &Output) -> String {
    assert!(
        out.status.success(),
        "weft {args:?}: {:?}\n{}",
        out.status,
        text(&out.stderr)
    );
    text(&out.stdout)
}

/// Runs `weft` and asserts it succeeded; returns stdout as text.
fn ok(args: &[&str]) -> String {
    check_ok(args, &weft(args))
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
fn json_posts_concatenated_pieces_with_json_headers() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-json");
    let file = dir.write("doc.json", "{\"from\": \"file\"}\n");
    let url = bin.url("/anything");
    let v = json(&ok(&["--json", "{\"a\":", "--json", "[1, 2]}", &url]));
    assert_eq!(v["method"], "POST");
    assert_eq!(v["json"]["a"], serde_json::json!([1, 2]));
    assert_eq!(v["headers"]["Content-Type"], "application/json");
    assert_eq!(v["headers"]["Accept"], "application/json");
    // @FILE is sent as it is (the newline kept); -H wins over the defaults.
    let at_file = format!("@{}", file.display());
    let v = json(&ok(&[
        "--json",
        &at_file,
        "-H",
        "Accept: text/x-mine",
        &url,
    ]));
    assert_eq!(v["data"], "{\"from\": \"file\"}\n");
    assert_eq!(v["headers"]["Accept"], "text/x-mine");
    // @- reads standard input.
    let args = ["--json", "@-", url.as_str()];
    let v = json(&check_ok(
        &args,
        &weft_with_stdin(&args, b"{\"from\":\"stdin\"}"),
    ));
    assert_eq!(v["json"]["from"], "stdin");
    // A missing or unreadable file is curl's read error, 26, and nothing is sent.
    let err = fails(&["--json", "@/nonexistent/weft.json", &url], 26);
    assert!(err.contains("/nonexistent/weft.json"), "{err}");
    fails(&["--json", &format!("@{}", dir.path().display()), &url], 26);
}

#[test]
fn data_urlencode_forms_and_get_moves_data_into_the_query() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-urlencode");
    let file = dir.write("v.txt", "a&b=c d\n");
    let url = bin.url("/anything");
    let v = json(&ok(&[
        "-H",
        "Content-Type: text/plain",
        "--data-urlencode",
        "plain text",
        "--data-urlencode",
        "=x=y",
        "--data-urlencode",
        "name=1+1 ~ok",
        "--data-urlencode",
        &format!("@{}", file.display()),
        "--data-urlencode",
        &format!("f@{}", file.display()),
        "-d",
        "raw=%41",
        &url,
    ]));
    assert_eq!(
        v["data"],
        "plain%20text&x%3Dy&name=1%2B1%20~ok&a%26b%3Dc%20d%0A&f=a%26b%3Dc%20d%0A&raw=%41"
    );
    // Form-encoded by default, so httpbin decodes the fields.
    let v = json(&ok(&["--data-urlencode", "q=fish & chips", &url]));
    assert_eq!(v["form"]["q"], "fish & chips");
    fails(&["--data-urlencode", "n@/nonexistent/weft", &url], 26);

    // -G: the same data goes into the query of a GET, after any query the URL has.
    let v = json(&ok(&[
        "-G",
        "-d",
        "a=1",
        "--data-urlencode",
        "b=x y",
        &bin.url("/get?z=0"),
    ]));
    assert_eq!(v["args"]["a"], "1");
    assert_eq!(v["args"]["b"], "x y");
    assert_eq!(v["args"]["z"], "0");
    assert!(v["headers"].get("Content-Type").is_none(), "{v}");
    // -G -I is a HEAD with the query; -G with -F is refused.
    let head = ok(&["-G", "-I", "-d", "a=1", &bin.url("/get")]);
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    fails(&["-G", "-F", "a=1", &url], 2);
}

#[test]
fn fail_with_body_writes_the_body_and_exits_22() {
    let nginx = Nginx::start();
    let missing = nginx.http_url("/missing.txt");
    let out = weft(&["--fail-with-body", &missing]);
    assert_eq!(out.status.code(), Some(22), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("404 Not Found"), "body written");
    assert!(text(&out.stderr).contains("404"), "{}", text(&out.stderr));
    // -f writes nothing; the two are mutually exclusive (usage error).
    let out = weft(&["-f", &missing]);
    assert_eq!(out.status.code(), Some(22));
    assert!(out.stdout.is_empty());
    fails(&["-f", "--fail-with-body", &missing], 2);
    // A success is untouched.
    assert_eq!(
        ok(&["--fail-with-body", &nginx.http_url("/hello.txt")]),
        "hello world\n"
    );
}

#[test]
fn dump_header_and_include_show_every_hop() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-dump-header");
    let heads = dir.join("heads.txt");
    let url = nginx.http_url("/redirect");
    let out = ok(&["-L", "-D", heads.to_str().unwrap(), &url]);
    assert_eq!(out, "hello world\n");
    let saved = std::fs::read_to_string(&heads).unwrap();
    assert!(
        saved.starts_with("HTTP/1.1 301 Moved Permanently\r\n"),
        "{saved}"
    );
    assert!(saved.contains("\r\n\r\nHTTP/1.1 200 OK\r\n"), "{saved}");
    assert!(saved.ends_with("\r\n\r\n"), "{saved}");
    // -w's size_header counts every hop's head, as curl does.
    let size: usize = ok(&["-L", "-o", "/dev/null", "-w", "%{size_header}", &url])
        .parse()
        .unwrap();
    assert_eq!(size, saved.len());
    // -D - writes the heads to stdout before the body.
    let out = ok(&["-D", "-", &nginx.http_url("/hello.txt")]);
    assert!(out.starts_with("HTTP/1.1 200 OK\r\n"), "{out}");
    assert!(out.ends_with("\r\n\r\nhello world\n"), "{out}");
    // -i and -I with -L print every hop's head, as curl does.
    for (flag, tail) in [("-i", "hello world\n"), ("-I", "")] {
        let out = ok(&[flag, "-L", &url]);
        assert!(out.starts_with("HTTP/1.1 301 "), "{flag}: {out}");
        let second = out.find("\r\n\r\nHTTP/1.1 200 OK\r\n");
        assert!(second.is_some(), "{flag}: {out}");
        assert!(out.ends_with(&format!("\r\n\r\n{tail}")), "{flag}: {out}");
    }
    // An unwritable -D file is a write error, 23.
    let err = fails(&["-D", "/nonexistent/dir/h.txt", &url], 23);
    assert!(err.contains("/nonexistent/dir/h.txt"), "{err}");
}

#[test]
fn range_asks_for_bytes_and_bad_ranges_are_refused() {
    let nginx = Nginx::start();
    let url = nginx.http_url("/big.bin");
    let out = weft(&["-r", "0-9", &url]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(out.stdout, &big_body()[..10]);
    // A lone number means "from there on"; a suffix is the last bytes.
    let out = weft(&["-r", "4194000", &url]);
    assert_eq!(out.stdout, &big_body()[4_194_000..]);
    let out = weft(&["-r", "-5", &url]);
    assert_eq!(out.stdout, &big_body()[big_body().len() - 5..]);
    for bad in ["abc", "9-3", "-", "1-2-3", "0-1,x", "", "1-2;"] {
        let err = fails(&["-r", bad, &url], 2);
        assert!(err.contains("range"), "{bad}: {err}");
    }
}

/// nginx with a location that answers an upload with its method, URI and body.
fn upload_nginx() -> Nginx {
    Nginx::start_with(
        r#"
        location /up/ {
            client_max_body_size 8m;
            client_body_buffer_size 8m;
            echo_read_request_body;
            echo "$request_method $request_uri";
            echo_request_body;
        }
"#,
    )
}

#[test]
fn upload_file_puts_the_file_streamed() {
    let nginx = upload_nginx();
    let dir = TestDir::new("weft-cli-upload");
    let file = dir.write("report 1.txt", "uploaded\n");
    let path = file.to_str().unwrap();
    // A URL ending in '/' gets the file's name, percent-encoded.
    let out = ok(&["-T", path, &nginx.http_url("/up/")]);
    assert_eq!(out, "PUT /up/report%201.txt\nuploaded\n");
    let out = ok(&["-T", path, &nginx.http_url("/up/named")]);
    assert_eq!(out, "PUT /up/named\nuploaded\n");
    // A 4 MiB file arrives whole.
    let big = dir.write("big.bin", big_body());
    let out = weft(&["-T", big.to_str().unwrap(), &nginx.http_url("/up/b")]);
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(&out.stdout[..10], b"PUT /up/b\n");
    assert!(
        &out.stdout[10..] == big_body(),
        "the uploaded bytes come back"
    );
    // -T - reads standard input (sent chunked); -X changes the method.
    let args = ["-T", "-", "-X", "POST", &nginx.http_url("/up/in")];
    let out = check_ok(&args, &weft_with_stdin(&args, b"from stdin"));
    assert_eq!(out, "POST /up/in\nfrom stdin");
    // A missing file is curl's read error, 26; -T with data is a usage error.
    let err = fails(&["-T", "/nonexistent/weft-up", &nginx.http_url("/up/")], 26);
    assert!(err.contains("/nonexistent/weft-up"), "{err}");
    // A directory fails as it is read: still 26.
    let dir_path = dir.path().to_str().unwrap();
    fails(&["-T", dir_path, &nginx.http_url("/up/d")], 26);
    fails(&["-T", path, "-d", "x", &nginx.http_url("/up/")], 2);
}

#[test]
fn referer_is_sent_and_auto_follows_redirects() {
    let bin = Httpbin::start();
    let v = json(&ok(&["-e", "http://from.test/page", &bin.url("/headers")]));
    assert_eq!(v["headers"]["Referer"], "http://from.test/page");
    // ;auto: each hop's Referer is the URL it came from.
    let start = bin.url("/redirect-to?url=/headers");
    let v = json(&ok(&["-L", "-e", ";auto", &start]));
    assert_eq!(v["headers"]["Referer"], start.as_str());
    let v = json(&ok(&["-L", "-e", "http://from.test/;auto", &start]));
    assert_eq!(v["headers"]["Referer"], start.as_str());
    // Without -L, ';auto' sends the given part only.
    let v = json(&ok(&["-e", "http://from.test/;auto", &bin.url("/headers")]));
    assert_eq!(v["headers"]["Referer"], "http://from.test/");
}

#[test]
fn next_starts_a_group_with_its_own_options() {
    let bin = Httpbin::start();
    let dir = TestDir::new("weft-cli-next");
    let (first, second) = (dir.join("1.json"), dir.join("2.json"));
    let url = bin.url("/anything");
    ok(&[
        "-s",
        "-d",
        "a=1",
        "-H",
        "X-Group: one",
        "-o",
        first.to_str().unwrap(),
        &url,
        "--next",
        "-o",
        second.to_str().unwrap(),
        &url,
    ]);
    let one = json(&std::fs::read_to_string(&first).unwrap());
    let two = json(&std::fs::read_to_string(&second).unwrap());
    assert_eq!(one["method"], "POST");
    assert_eq!(one["headers"]["X-Group"], "one");
    assert_eq!(two["method"], "GET");
    assert!(two["headers"].get("X-Group").is_none(), "{two}");
    // -: is the short form; the exit status is the first failure's.
    let out = weft(&[&bin.url("/status/200"), "-:", "-f", &bin.url("/status/404")]);
    assert_eq!(out.status.code(), Some(22), "{}", text(&out.stderr));
    // A usage error in a later group stops the run before anything is sent.
    let third = dir.join("3.json");
    let err = fails(
        &[
            "-o",
            third.to_str().unwrap(),
            &url,
            "--next",
            "-H",
            "bad",
            &url,
        ],
        2,
    );
    assert!(err.contains("bad"), "{err}");
    assert!(!third.exists());
    // A group without a URL is a usage error too.
    fails(&[&url, "--next"], 2);
}

#[test]
fn remote_name_without_a_file_name_exits_23() {
    let nginx = Nginx::start();
    let dir = TestDir::new("weft-cli-remote-name");
    let err = fails(
        &[
            "-O",
            "--output-dir",
            dir.path().to_str().unwrap(),
            &nginx.http_url("/"),
        ],
        23,
    );
    assert!(err.contains("Remote file name has no length"), "{err}");
}

#[test]
fn timeout_message_gives_milliseconds_and_bytes_as_curl() {
    let nginx = Nginx::start();
    let out = weft(&["-m", "0.3", &nginx.http_url("/slow?s=3")]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(28), "{err}");
    assert!(err.starts_with("weft: Operation timed out after "), "{err}");
    assert!(err.contains(" milliseconds with 0 bytes received"), "{err}");
    assert!(err.contains("/slow?s=3"), "{err}");
    let ms: u64 = err["weft: Operation timed out after ".len()..]
        .split(' ')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{err}"));
    assert!((300..3000).contains(&ms), "{err}");
}

/// On a terminal (`script` from util-linux gives weft one), a `-v` note after a body that
/// does not end a line starts on a line of its own.
#[test]
fn verbose_note_after_a_body_without_newline_starts_a_new_line_on_a_terminal() {
    let bin = Httpbin::start();
    // httpbin decodes the path: "no newline", without a line ending.
    let url = bin.url("/base64/bm8gbmV3bGluZQ==");
    let command = format!("{} -v {url}", env!("CARGO_BIN_EXE_weft"));
    // weft_command clears the proxy variables for script and so for weft.
    let out = support::servers::weft_command("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::null())
        .output()
        .expect("script (util-linux) runs");
    let screen = text(&out.stdout);
    assert!(out.status.success(), "{screen}");
    assert!(
        screen.contains("no newline\r\n* Response complete\r\n"),
        "{screen:?}"
    );
}

#[test]
fn verbose_output_ends_with_a_newline() {
    let nginx = Nginx::start();
    for url in [nginx.http_url("/hello.txt"), "http://127.0.0.1:9/".into()] {
        let out = weft(&["-v", &url]);
        let err = text(&out.stderr);
        assert!(err.ends_with('\n'), "{err:?}");
    }
}
