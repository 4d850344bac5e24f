//! Unit tests of the plans made from curl's transfer options (`--json`, `--data-urlencode`,
//! `-G`, `-T`, `-r`, `-e`, `--fail-with-body`, `-D`, `-O` without a name).

use super::super::args;
use super::tests::{files, header, plan};
use super::*;

fn body(p: &Plan) -> String {
    match &p.body {
        BodySource::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn json_pieces_concatenate_and_set_both_headers() {
    let p = plan(&["--json", "{\"a\":", "--json", "@doc.json", "-d", "x", "u"]).unwrap();
    assert_eq!(p.method, "POST");
    assert_eq!(body(&p), "{\"a\":{\"k\":\n1}&x");
    assert_eq!(header(&p, "content-type"), ["application/json"]);
    assert_eq!(header(&p, "accept"), ["application/json"]);
    let p = plan(&[
        "--json",
        "1",
        "-H",
        "Content-Type: text/x",
        "-H",
        "Accept:",
        "u",
    ])
    .unwrap();
    assert_eq!(header(&p, "content-type"), ["text/x"]);
    assert!(header(&p, "accept").is_empty());
    assert!(matches!(
        plan(&["--json", "@missing", "u"]),
        Err(PlanError::Read(_))
    ));
}

#[test]
fn data_urlencode_forms() {
    let p = plan(&[
        "--data-urlencode",
        "a b",
        "--data-urlencode",
        "=c=d",
        "--data-urlencode",
        "n=é/~",
        "--data-urlencode",
        "@v.txt",
        "--data-urlencode",
        "f@v.txt",
        "u",
    ])
    .unwrap();
    assert_eq!(body(&p), "a%20b&c%3Dd&n=%C3%A9%2F~&a%20b%0A&f=a%20b%0A");
    assert_eq!(
        header(&p, "content-type"),
        ["application/x-www-form-urlencoded"]
    );
    assert!(matches!(
        plan(&["--data-urlencode", "n@missing", "u"]),
        Err(PlanError::Read(_))
    ));
}

#[test]
fn get_moves_the_data_into_every_url() {
    let args = args::parse([
        "weft",
        "-G",
        "-d",
        "a=1",
        "--data-urlencode",
        "b=x y",
        "h/p?z=0#f",
        "h/q",
    ])
    .unwrap();
    let plans = build_all(&args, &mut files).unwrap();
    assert_eq!(plans[0].url, "http://h/p?z=0&a=1&b=x%20y#f");
    assert_eq!(plans[1].url, "http://h/q?a=1&b=x%20y");
    assert_eq!(plans[0].method, "GET");
    assert_eq!(plans[0].body, BodySource::None);
    assert!(header(&plans[0], "content-type").is_empty());
    assert_eq!(plan(&["-G", "-I", "-d", "a", "h"]).unwrap().method, "HEAD");
    assert_eq!(plan(&["-G", "h/x"]).unwrap().url, "http://h/x");
    assert!(matches!(
        plan(&["-G", "-F", "a=1", "h"]),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn upload_file_puts_and_names_the_target() {
    let p = plan(&["-T", "dir/my file.txt", "h/up/"]).unwrap();
    assert_eq!(p.method, "PUT");
    assert_eq!(p.url, "http://h/up/my%20file.txt");
    assert_eq!(p.body, BodySource::File("dir/my file.txt".into()));
    assert_eq!(plan(&["-T", "f", "h"]).unwrap().url, "http://h/f");
    assert_eq!(plan(&["-T", "f", "h/x"]).unwrap().url, "http://h/x");
    let p = plan(&["-T", "-", "-X", "POST", "h/"]).unwrap();
    assert_eq!((p.method.as_str(), p.url.as_str()), ("POST", "http://h/"));
    assert_eq!(p.body, BodySource::Stdin);
    for bad in [&["-T", "f", "-d", "x", "h"][..], &["-T", "f", "-I", "h"]] {
        assert!(matches!(plan(bad), Err(PlanError::Usage(_))), "{bad:?}");
    }
    let args = args::parse(["weft", "-T", "-", "h/1", "h/2"]).unwrap();
    assert!(matches!(
        build_all(&args, &mut files),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn ranges_are_checked() {
    for (given, sent) in [
        ("0-9", "bytes=0-9"),
        ("5", "bytes=5-"),
        ("5-", "bytes=5-"),
        ("-3", "bytes=-3"),
        ("0-1,5-,-2", "bytes=0-1,5-,-2"),
        ("7-7", "bytes=7-7"),
    ] {
        assert_eq!(range_header(given).unwrap(), sent, "{given}");
    }
    let long = "1".repeat(30);
    for bad in [
        "", "-", "a-b", "9-3", "1-2-3", "1-2,", ",", " 1-2", "0x1-", &long,
    ] {
        assert!(
            matches!(range_header(bad), Err(PlanError::Usage(_))),
            "{bad:?}"
        );
    }
    let p = plan(&["-r", "0-9", "h"]).unwrap();
    assert_eq!(header(&p, "range"), ["bytes=0-9"]);
    for bad in [
        &["-r", "0-9", "-C", "5", "-o", "f", "h"][..],
        &["-T", "f", "-C", "-", "-o", "g", "h"],
    ] {
        assert!(matches!(plan(bad), Err(PlanError::Usage(_))), "{bad:?}");
    }
}

#[test]
fn referer_fail_with_body_and_dump_header() {
    let p = plan(&["-e", "http://r/", "h"]).unwrap();
    assert_eq!(header(&p, "referer"), ["http://r/"]);
    assert!(!p.chain.auto_referer);
    let p = plan(&["-e", "http://r/;auto", "h"]).unwrap();
    assert_eq!(header(&p, "referer"), ["http://r/"]);
    assert!(p.chain.auto_referer);
    let p = plan(&["-e", ";auto", "h"]).unwrap();
    assert!(header(&p, "referer").is_empty() && p.chain.auto_referer);
    let p = plan(&["--fail-with-body", "-D", "-", "h"]).unwrap();
    assert!(p.output.fail_on_http_error && p.output.keep_body_on_error);
    assert_eq!(p.output.dump_header, Some("-".into()));
    assert!(matches!(
        plan(&["-f", "--fail-with-body", "h"]),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn remote_name_without_a_name_is_an_output_error() {
    let args = args::parse(["weft", "-O", "http://h/"]).unwrap();
    let e = build_all(&args, &mut files).unwrap_err();
    let outcome = e.into_outcome();
    assert_eq!(outcome.exit_code(), 23);
    assert!(
        outcome
            .message()
            .unwrap()
            .contains("Remote file name has no length")
    );
    let args = args::parse(["weft", "-O", "http://al:secret@h/"]).unwrap();
    let m = build_all(&args, &mut files)
        .unwrap_err()
        .into_outcome()
        .message();
    assert_eq!(
        m.as_deref(),
        Some("Remote file name has no length: -O cannot name a file after http://h/")
    );
}

#[test]
fn next_groups_keep_their_own_options_and_share_the_global_ones() {
    let a = args::parse([
        "weft", "-d", "x", "h/1", "--next", "-s", "-X", "PUT", "h/2", "-:", "h/3",
    ])
    .unwrap();
    assert_eq!(a.next.len(), 2);
    let one = build_all(&a, &mut files).unwrap();
    let two = build_all(&a.next[0], &mut files).unwrap();
    let three = build_all(&a.next[1], &mut files).unwrap();
    assert_eq!(one[0].method, "POST");
    assert_eq!(two[0].method, "PUT");
    assert_eq!(three[0].method, "GET");
    assert!(a.silent && a.next[0].silent && a.next[1].silent);
}
