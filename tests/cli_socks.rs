//! The `weft` command through SOCKS5 proxies (`--socks5`, `--socks5-hostname`, `-x
//! socks5://` and `socks5h://`, `ALL_PROXY`), against microsocks and nginx on 127.0.0.1.
#![cfg(feature = "cli")]

mod support;

use std::process::{Command, Output};

use support::servers::{Microsocks, Nginx, free_port};

fn weft() -> Command {
    support::servers::weft_command(env!("CARGO_BIN_EXE_weft"))
}

fn run(cmd: &mut Command) -> (Option<i32>, String, String) {
    let Output {
        status,
        stdout,
        stderr,
    } = cmd.output().expect("weft runs");
    let text = |b: Vec<u8>| String::from_utf8_lossy(&b).into_owned();
    (status.code(), text(stdout), text(stderr))
}

fn hello(args: &[&str]) {
    let (code, out, err) = run(weft().args(args));
    assert_eq!(code, Some(0), "weft {args:?}: {err}");
    assert_eq!(out, "hello world\n", "weft {args:?}");
}

#[test]
fn socks_options_through_microsocks() {
    let nginx = Nginx::start();
    let proxy = Microsocks::start(None);
    let addr = proxy.addr().to_string();
    let ca = nginx.ca_pem_path().to_str().unwrap().to_owned();
    let https = nginx.https_url("/hello.txt");
    let http = format!("http://localhost:{}/hello.txt", nginx.http_port());
    hello(&["--socks5", &addr, &http]);
    hello(&["--socks5-hostname", &addr, "--cacert", &ca, &https]);
    hello(&["-x", &proxy.url("socks5"), "--cacert", &ca, &https]);
    hello(&["-x", &proxy.url("socks5h"), &http]);

    // The SOCKS options win over -x; a closed SOCKS port fails as curl does (exit 7), which
    // shows the request went to it.
    let closed = format!("127.0.0.1:{}", free_port());
    hello(&["-x", &format!("http://{closed}"), "--socks5", &addr, &http]);
    let (code, _, err) = run(weft().args(["--socks5-hostname", &closed, &http]));
    assert_eq!(code, Some(7), "{err}");

    // ALL_PROXY, and NO_PROXY to bypass it.
    let all = format!("socks5h://{closed}");
    let (code, _, _) = run(weft().env("ALL_PROXY", &all).arg(&http));
    assert_eq!(code, Some(7));
    let (code, out, err) = run(weft()
        .env("ALL_PROXY", &all)
        .env("NO_PROXY", "localhost")
        .arg(&http));
    assert_eq!((code, out.as_str()), (Some(0), "hello world\n"), "{err}");
    let (code, out, err) = run(weft().env("all_proxy", proxy.url("socks5h")).arg(&http));
    assert_eq!((code, out.as_str()), (Some(0), "hello world\n"), "{err}");
}

#[test]
fn socks_credentials_and_a_wrong_password() {
    let nginx = Nginx::start();
    let proxy = Microsocks::start(Some(("weft", "s3cret")));
    let port = proxy.addr().port();
    let http = nginx.http_url("/hello.txt");
    hello(&["--socks5", &format!("weft:s3cret@127.0.0.1:{port}"), &http]);
    hello(&[
        "-x",
        &format!("socks5h://weft:s3cret@127.0.0.1:{port}"),
        &http,
    ]);
    let (code, out, err) = run(weft().args([
        "-sS",
        "-x",
        &format!("socks5h://weft:wrong@127.0.0.1:{port}"),
        &http,
    ]));
    assert_eq!(code, Some(97), "{err}");
    assert_eq!(out, "");
    assert!(
        err.contains(&format!("SOCKS5 proxy socks5h://127.0.0.1:{port}"))
            && err.contains("refused the username and password"),
        "{err}"
    );
    assert!(!err.contains("wrong"), "{err}");
}
