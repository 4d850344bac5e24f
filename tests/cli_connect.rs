//! The `weft` command's connect options, with curl's semantics: `-4` / `-6`,
//! `--happy-eyeballs-timeout-ms`, `--resolve` and `--connect-to`, run as a user would against
//! nginx and httpbin on 127.0.0.1 with host names that exist nowhere (a hanging address is a
//! loopback listener with a full accept queue).
#![cfg(feature = "cli")]

mod support;

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::process::Output;
use std::time::{Duration, Instant};

use support::blackhole::{Blackhole, has_ipv6_loopback, refused_v4};
use support::servers::{Httpbin, Nginx};

fn weft(args: &[&str]) -> (Output, Duration) {
    let started = Instant::now();
    let out = support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("weft runs");
    (out, started.elapsed())
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs `weft`, asserts it exits with `code`; returns its stderr.
fn exits(args: &[&str], code: i32) -> String {
    let (out, _) = weft(args);
    assert_eq!(
        out.status.code(),
        Some(code),
        "weft {args:?}: {}",
        stderr(&out)
    );
    stderr(&out)
}

/// Runs `weft`, asserts it printed nginx's `/hello.txt`; returns how long it took.
fn hello(args: &[&str]) -> Duration {
    let (out, took) = weft(args);
    assert!(out.status.success(), "weft {args:?}: {}", stderr(&out));
    assert_eq!(out.stdout, b"hello world\n", "weft {args:?}");
    took
}

const HOLE_V4: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));

#[test]
fn resolve_sends_a_made_up_host_to_the_given_address_with_its_own_host_field() {
    let httpbin = Httpbin::start();
    let port = httpbin.port();
    let (out, _) = weft(&[
        "--resolve",
        &format!("made.up.test:{port}:127.0.0.1"),
        &format!("http://made.up.test:{port}/headers"),
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        body["headers"]["Host"],
        format!("made.up.test:{port}"),
        "{body}"
    );
}

#[test]
fn happy_eyeballs_timeout_decides_when_the_next_address_is_tried() {
    let nginx = Nginx::start();
    let port = nginx.http_port();
    let Some(_hole) = Blackhole::new(HOLE_V4, port) else {
        eprintln!("no blackhole on 127.0.0.2:{port}: skipped");
        return;
    };
    let resolve = format!("made.up.test:{port}:127.0.0.2,127.0.0.1");
    let url = format!("http://made.up.test:{port}/hello.txt");
    let took = hello(&[
        "--resolve",
        &resolve,
        "--happy-eyeballs-timeout-ms",
        "100",
        "--connect-timeout",
        "20",
        &url,
    ]);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // The default delay (250 ms) also wins long before the connect timeout.
    let took = hello(&["--resolve", &resolve, "--connect-timeout", "20", &url]);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // A delay longer than the connect timeout: the good address is never reached.
    let err = exits(
        &[
            "--resolve",
            &resolve,
            "--happy-eyeballs-timeout-ms",
            "60000",
            "--connect-timeout",
            "1",
            &url,
        ],
        28,
    );
    assert!(err.contains("timed out"), "{err}");
}

#[test]
fn every_address_refused_exits_7_and_says_how_many_were_tried() {
    let dead = refused_v4().port();
    let err = exits(
        &[
            "--resolve",
            &format!("made.up.test:{dead}:127.0.0.1,127.0.0.1"),
            &format!("http://made.up.test:{dead}/"),
        ],
        7,
    );
    assert!(err.contains("all 2 addresses failed"), "{err}");
    assert!(err.contains("refused"), "{err}");
}

#[test]
fn ipv4_and_ipv6_keep_one_family() {
    let nginx = Nginx::start();
    let port = nginx.http_port();
    let url = format!("http://made.up.test:{port}/hello.txt");
    // -4: the IPv6 address is never tried (if it were, the hanging ::1 would hold the
    // connect for the whole minute-long delay).
    let hole = has_ipv6_loopback()
        .then(|| Blackhole::new(IpAddr::V6(Ipv6Addr::LOCALHOST), port))
        .flatten();
    let list = if hole.is_some() {
        "[::1],127.0.0.1"
    } else {
        "127.0.0.1"
    };
    let took = hello(&[
        "-4",
        "--resolve",
        &format!("made.up.test:{port}:{list}"),
        "--happy-eyeballs-timeout-ms",
        "60000",
        "--connect-timeout",
        "20",
        &url,
    ]);
    assert!(took < Duration::from_secs(10), "{took:?}");
    // -6 with IPv4 addresses only: nothing to connect to, as curl's "could not resolve".
    let err = exits(
        &[
            "-6",
            "--resolve",
            &format!("made.up.test:{port}:127.0.0.1"),
            &url,
        ],
        6,
    );
    assert!(err.contains("IPv6"), "{err}");
    exits(&["-6", &nginx.http_url("/hello.txt")], 6);
    // The last of -4 and -6 wins.
    hello(&["-6", "-4", &nginx.http_url("/hello.txt")]);
}

#[test]
fn connect_to_changes_the_destination_but_not_the_host_nor_the_tls_name() {
    let nginx = Nginx::start();
    let httpbin = Httpbin::start();
    let (out, _) = weft(&[
        "--connect-to",
        &format!("made.up.test:80:127.0.0.1:{}", httpbin.port()),
        "http://made.up.test/headers",
    ]);
    assert!(out.status.success(), "{}", stderr(&out));
    let body: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(body["headers"]["Host"], "made.up.test", "{body}");

    let https = nginx.https_port();
    let ca = nginx.ca_pem_path().to_str().unwrap().to_string();
    hello(&[
        "--cacert",
        &ca,
        "--connect-to",
        &format!("localhost:443:127.0.0.1:{https}"),
        "https://localhost/hello.txt",
    ]);
    // The certificate is for localhost: the name checked is still made.up.test.
    exits(
        &[
            "--cacert",
            &ca,
            "--connect-to",
            &format!("made.up.test:443:localhost:{https}"),
            "https://made.up.test/hello.txt",
        ],
        35,
    );
    // Empty HOST1 and PORT1 match any request.
    hello(&[
        "--connect-to",
        &format!("::127.0.0.1:{}", nginx.http_port()),
        "http://made.up.test/hello.txt",
    ]);
}

#[test]
fn malformed_overrides_are_usage_errors() {
    for args in [
        &["--resolve", "made.up.test:80", "http://made.up.test/"][..],
        &["--resolve", "made.up.test:80:nope", "http://made.up.test/"],
        &["--connect-to", "made.up.test:80", "http://made.up.test/"],
        &["--connect-to", "a:b:c:d", "http://made.up.test/"],
        &[
            "--happy-eyeballs-timeout-ms",
            "soon",
            "http://made.up.test/",
        ],
    ] {
        exits(args, 2);
    }
}
