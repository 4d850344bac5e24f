//! The `weft` binary's behaviour that needs no network: help, version and usage errors.
#![cfg(feature = "cli")]

use std::process::{Command, Output};

fn weft(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_weft"))
        .args(args)
        .output()
        .expect("the weft binary runs")
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

#[test]
fn help_lists_options_and_exit_codes() {
    let o = weft(&["--help"]);
    assert_eq!(o.status.code(), Some(0));
    let help = String::from_utf8_lossy(&o.stdout);
    for needle in [
        "--request",
        "--header",
        "--data",
        "--data-binary",
        "--include",
        "--head",
        "--output",
        "--insecure",
        "--cacert",
        "--connect-timeout",
        "--max-time",
        "--silent",
        "--show-error",
        "--verbose",
        "--dump",
        "--max-filesize",
        "--fail",
        "Exit status",
        " 28  timeout",
    ] {
        assert!(help.contains(needle), "{needle} missing from --help");
    }
}

#[test]
fn version() {
    let o = weft(&["--version"]);
    assert_eq!(o.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&o.stdout).starts_with("weft "));
}

#[test]
fn missing_url_and_unknown_option_are_usage_errors() {
    assert_eq!(weft(&[]).status.code(), Some(2));
    assert_eq!(
        weft(&["--bogus", "http://127.0.0.1:1/"]).status.code(),
        Some(2)
    );
    assert_eq!(
        weft(&["-m", "soon", "http://127.0.0.1:1/"]).status.code(),
        Some(2)
    );
}

#[test]
fn header_without_colon_is_a_usage_error_with_one_line() {
    let o = weft(&["-H", "NoColon", "http://127.0.0.1:1/"]);
    assert_eq!(o.status.code(), Some(2));
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("weft: "), "{err}");
    assert!(o.stdout.is_empty());
}

#[test]
fn head_with_data_is_a_usage_error() {
    let o = weft(&["-I", "-d", "a=1", "http://127.0.0.1:1/"]);
    assert_eq!(o.status.code(), Some(2));
}

#[test]
fn unreadable_data_file_exits_26() {
    let o = weft(&["-d", "@/nonexistent/weft-data", "http://127.0.0.1:1/"]);
    assert_eq!(o.status.code(), Some(26));
    let err = stderr(&o);
    assert!(
        err.starts_with("weft: ") && err.lines().count() == 1,
        "{err}"
    );
    // -s hides it, -S shows it again.
    let o = weft(&["-s", "-d", "@/nonexistent/weft-data", "http://127.0.0.1:1/"]);
    assert_eq!(o.status.code(), Some(26));
    assert!(o.stderr.is_empty());
    let o = weft(&[
        "-sS",
        "-d",
        "@/nonexistent/weft-data",
        "http://127.0.0.1:1/",
    ]);
    assert_eq!(stderr(&o).lines().count(), 1);
}
