//! Tests of the command line's parsing (`args.rs`).

use super::*;

fn p(args: &[&str]) -> Result<Args, clap::Error> {
    parse(std::iter::once("weft").chain(args.iter().copied()))
}

#[test]
fn command_is_well_formed() {
    Args::command().debug_assert();
}

#[test]
fn data_options_keep_their_order() {
    let a = p(&[
        "-d",
        "a=1",
        "--data-binary",
        "@f",
        "--data-raw",
        "@x",
        "-d",
        "b",
        "u",
    ])
    .unwrap();
    let kinds: Vec<_> = a
        .data_args
        .iter()
        .map(|d| (d.kind, d.value.as_str()))
        .collect();
    assert_eq!(
        kinds,
        vec![
            (DataKind::Ascii, "a=1"),
            (DataKind::Binary, "@f"),
            (DataKind::Raw, "@x"),
            (DataKind::Ascii, "b"),
        ]
    );
}

#[test]
fn seconds_are_parsed() {
    let a = p(&["--connect-timeout", "1.5", "-m", "2", "u"]).unwrap();
    assert_eq!(a.connect_timeout, Some(Duration::from_millis(1500)));
    assert_eq!(a.max_time, Some(Duration::from_secs(2)));
    let a = p(&["-m", "0", "u"]).unwrap();
    assert_eq!(a.max_time, Some(Duration::ZERO));
    for bad in ["-1", "abc", "inf", "NaN"] {
        let e = p(&["-m", bad, "u"]).unwrap_err();
        assert_eq!(e.exit_code(), 2, "{bad}");
    }
}

#[test]
fn usage_errors_exit_2() {
    assert_eq!(p(&["--nope", "u"]).unwrap_err().exit_code(), 2);
    assert_eq!(p(&["--dump", "xml", "u"]).unwrap_err().exit_code(), 2);
    assert_eq!(
        p(&["--max-filesize", "-3", "u"]).unwrap_err().exit_code(),
        2
    );
}

#[test]
fn flags_are_parsed() {
    let a = p(&[
        "-sSvfikI",
        "-o",
        "out",
        "--cacert",
        "ca.pem",
        "--dump",
        "json",
        "-A",
        "ua",
        "--max-filesize",
        "10",
        "-H",
        "A: b",
        "-H",
        "C: d",
        "-X",
        "PUT",
        "example.test",
    ])
    .unwrap();
    assert!(a.silent && a.show_error && a.verbose && a.fail && a.include && a.insecure);
    assert!(a.head);
    assert_eq!(a.output, vec![PathBuf::from("out")]);
    assert_eq!(a.cacert, Some(PathBuf::from("ca.pem")));
    assert_eq!(a.dump, Some(DumpFormat::Json));
    assert_eq!(a.user_agent.as_deref(), Some("ua"));
    assert_eq!(a.max_filesize, Some(10));
    assert_eq!(a.header, vec!["A: b", "C: d"]);
    assert_eq!(a.request.as_deref(), Some("PUT"));
    assert_eq!(a.urls, vec!["example.test"]);
}

#[test]
fn config_file_lines_become_options() {
    let text = "# comment\n\n--silent\nmax-time = 5\nheader: \"X-A: b c\"\n-o out.txt\n\
                url = \"http://h/1\"\nhttp://h/2\nuser-agent \"q\\\"t\\\\\"\n";
    assert_eq!(
        config_tokens(text).unwrap(),
        vec![
            "--silent",
            "--max-time",
            "5",
            "--header",
            "X-A: b c",
            "-o",
            "out.txt",
            "--url",
            "http://h/1",
            "--url",
            "http://h/2",
            "--user-agent",
            "q\"t\\",
        ]
    );
    assert!(config_tokens("url = \"http://h/1\n").is_err());
}

#[test]
fn config_option_is_expanded_in_place() {
    let mut read = |p: &Path| match p.to_str() {
        Some("k.txt") => Ok("-L\nhttp://h/from-file\n".to_string()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
    };
    let argv = ["weft", "-s", "-K", "k.txt", "http://h/arg"]
        .map(OsString::from)
        .to_vec();
    let out = expand_config(argv, &mut read).unwrap();
    assert_eq!(
        out,
        [
            "weft",
            "-s",
            "-L",
            "--url",
            "http://h/from-file",
            "http://h/arg"
        ]
        .map(OsString::from)
    );
    let argv = ["weft", "--config=nope"].map(OsString::from).to_vec();
    assert!(expand_config(argv, &mut read).unwrap_err().contains("nope"));
    let argv = ["weft", "-K"].map(OsString::from).to_vec();
    assert!(expand_config(argv, &mut read).is_err());
}

#[test]
fn new_options_parse() {
    let a = p(&[
        "-L",
        "--max-redirs",
        "-1",
        "-u",
        "a:b",
        "--digest",
        "--compressed",
        "-F",
        "x=1",
        "-b",
        "c=d",
        "-c",
        "jar",
        "-C",
        "-",
        "--etag-save",
        "e",
        "--etag-compare",
        "e2",
        "-w",
        "%{json}",
        "-x",
        "http://p:1",
        "--noproxy",
        "*",
        "-Z",
        "--parallel-max",
        "4",
        "-O",
        "--output-dir",
        "d",
        "--no-progress-meter",
        "u1",
        "u2",
    ])
    .unwrap();
    assert!(a.location && a.digest && a.compressed && a.parallel && a.remote_name);
    assert_eq!(a.max_redirs, Some(-1));
    assert_eq!(a.continue_at.as_deref(), Some("-"));
    assert_eq!(a.parallel_max, Some(4));
    assert_eq!(a.urls, vec!["u1", "u2"]);
    assert_eq!(p(&["--parallel-max", "0", "u"]).unwrap_err().exit_code(), 2);
}

#[test]
fn connect_options_parse_as_curl_has_them() {
    let a = p(&[
        "-4",
        "-6",
        "--happy-eyeballs-timeout-ms",
        "100",
        "--resolve",
        "h.test:80:127.0.0.1,[::1]",
        "--connect-to",
        "h.test:80:127.0.0.1:8080",
        "u",
    ])
    .unwrap();
    assert!(a.ipv6 && !a.ipv4, "the last of -4 and -6 wins");
    assert!(p(&["-6", "-4", "u"]).unwrap().ipv4);
    assert_eq!(a.happy_eyeballs_timeout_ms, Some(100));
    assert_eq!(a.resolve[0].addrs.len(), 2);
    assert_eq!(a.connect_to[0].to_port, Some(8080));
    for bad in [
        &["--resolve", "h.test:80"][..],
        &["--resolve", "h.test:80:not-an-ip"],
        &["--connect-to", "h.test:80:x"],
        &["--happy-eyeballs-timeout-ms", "-1"],
    ] {
        let args: Vec<&str> = bad.iter().copied().chain(["u"]).collect();
        assert_eq!(p(&args).unwrap_err().exit_code(), 2, "{bad:?}");
    }
    let help = Args::command().render_long_help().to_string();
    for opt in [
        "--ipv4",
        "--ipv6",
        "--happy-eyeballs-timeout-ms",
        "--resolve",
        "--connect-to",
    ] {
        assert!(help.contains(opt), "{opt} missing from --help");
    }
}

#[test]
fn socks_options_pick_the_proxy_like_curl() {
    let proxy = |argv: &[&str]| p(argv).unwrap().proxy_url();
    assert_eq!(proxy(&["u"]), None);
    assert_eq!(
        proxy(&["-x", "socks5h://h:1", "u"]).as_deref(),
        Some("socks5h://h:1")
    );
    assert_eq!(
        proxy(&["--socks5", "h:1", "u"]).as_deref(),
        Some("socks5://h:1")
    );
    assert_eq!(
        proxy(&["-x", "http://p:3", "--socks5-hostname", "a:b@h:2", "u"]).as_deref(),
        Some("socks5h://a:b@h:2")
    );
    assert_eq!(
        proxy(&["--socks5", "h:1", "--socks5-hostname", "h:2", "u"]).as_deref(),
        Some("socks5h://h:2")
    );
}

#[test]
fn help_documents_every_option() {
    let help = Args::command().render_long_help().to_string();
    for opt in [
        "--request",
        "--header",
        "--data",
        "--data-binary",
        "--data-raw",
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
        "--fail",
        "--user-agent",
        "--dump",
        "--max-filesize",
        "--location",
        "--max-redirs",
        "--user",
        "--digest",
        "--compressed",
        "--form",
        "--cookie",
        "--cookie-jar",
        "--continue-at",
        "--etag-save",
        "--etag-compare",
        "--write-out",
        "--proxy",
        "--socks5",
        "--socks5-hostname",
        "--parallel",
        "--parallel-max",
        "--config",
        "--remote-name",
        "--output-dir",
        "Exit status",
    ] {
        assert!(help.contains(opt), "{opt} missing from --help");
    }
}

#[test]
fn unix_socket_parses_and_is_documented() {
    let a = p(&["--unix-socket", "/run/docker.sock", "http://localhost/"]).unwrap();
    assert_eq!(
        a.unix_socket.as_deref(),
        Some(Path::new("/run/docker.sock"))
    );
    assert_eq!(p(&["u"]).unwrap().unix_socket, None);
    assert_eq!(p(&["u", "--unix-socket"]).unwrap_err().exit_code(), 2);
    let help = Args::command().render_long_help().to_string();
    assert!(help.contains("--unix-socket"));
}
