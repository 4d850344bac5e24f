//! The plan's unit tests: options in, plan (or usage error) out.

use super::super::args;
use super::*;

/// The files the plans' tests read with `@FILE` (this one and `curl_tests`).
pub(super) fn files(name: &str) -> io::Result<Vec<u8>> {
    match name {
        "form.txt" => Ok(b"a=1\r\nb=2\n".to_vec()),
        "-" => Ok(b"from\nstdin".to_vec()),
        "v.txt" => Ok(b"a b\n".to_vec()),
        "doc.json" => Ok(b"{\"k\":\n1}".to_vec()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "no such file")),
    }
}

pub(super) fn plan(argv: &[&str]) -> Result<Plan, PlanError> {
    let args = args::parse(std::iter::once("weft").chain(argv.iter().copied())).unwrap();
    build(&args, &mut files)
}

pub(super) fn header<'a>(p: &'a Plan, name: &str) -> Vec<&'a str> {
    p.headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn plain_get() {
    let p = plan(&["http://127.0.0.1:8080/x"]).unwrap();
    assert_eq!(p.method, "GET");
    assert_eq!(p.url, "http://127.0.0.1:8080/x");
    assert_eq!(p.headers, vec![("Accept".into(), "*/*".into())]);
    assert_eq!(p.body, BodySource::None);
    assert_eq!(p.user_agent.as_deref(), Some(DEFAULT_USER_AGENT));
    assert_eq!(p.tls, TlsChoice::WebpkiRoots);
    assert_eq!(p.connect_timeout, ConnectTimeout::Default);
    assert_eq!(p.max_time, None);
    assert_eq!(
        p.output,
        OutputOptions {
            progress: true,
            ..OutputOptions::default()
        }
    );
    assert_eq!(
        p.chain,
        ChainPlan {
            parallel: 1,
            ..ChainPlan::default()
        }
    );
}

#[test]
fn missing_scheme_gets_http() {
    assert_eq!(
        plan(&["127.0.0.1:8080/a"]).unwrap().url,
        "http://127.0.0.1:8080/a"
    );
    assert_eq!(plan(&["localhost"]).unwrap().url, "http://localhost");
    assert_eq!(plan(&["https://h/"]).unwrap().url, "https://h/");
    assert_eq!(normalize_url("ftp://h/"), "ftp://h/");
}

#[test]
fn data_sets_post_and_content_type() {
    let p = plan(&["-d", "a=1", "u"]).unwrap();
    assert_eq!(p.method, "POST");
    assert_eq!(p.body, BodySource::Bytes(b"a=1".to_vec()));
    assert_eq!(
        header(&p, "content-type"),
        vec!["application/x-www-form-urlencoded"]
    );
    assert_eq!(header(&p, "accept"), vec!["*/*"]);
}

#[test]
fn data_joined_with_ampersand_and_files_stripped() {
    let p = plan(&["-d", "x=0", "-d", "@form.txt", "--data-raw", "@raw", "u"]).unwrap();
    assert_eq!(p.body, BodySource::Bytes(b"x=0&a=1b=2&@raw".to_vec()));
    let p = plan(&["-d", "@-", "u"]).unwrap();
    assert_eq!(p.body, BodySource::Bytes(b"fromstdin".to_vec()));
}

#[test]
fn data_binary_streams_a_single_file_and_keeps_bytes_otherwise() {
    let p = plan(&["--data-binary", "@big.bin", "u"]).unwrap();
    assert_eq!(p.body, BodySource::File(PathBuf::from("big.bin")));
    assert_eq!(p.method, "POST");
    assert_eq!(
        header(&p, "content-type"),
        vec!["application/x-www-form-urlencoded"]
    );
    let p = plan(&["--data-binary", "@-", "u"]).unwrap();
    assert_eq!(p.body, BodySource::Stdin);
    let p = plan(&["--data-binary", "@form.txt", "-d", "z", "u"]).unwrap();
    assert_eq!(p.body, BodySource::Bytes(b"a=1\r\nb=2\n&z".to_vec()));
    let p = plan(&["--data-binary", "plain", "u"]).unwrap();
    assert_eq!(p.body, BodySource::Bytes(b"plain".to_vec()));
}

#[test]
fn unreadable_data_file_is_a_read_error() {
    let e = plan(&["-d", "@missing", "u"]).unwrap_err();
    let PlanError::Read(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("missing"), "{m}");
    assert_eq!(e.into_outcome().exit_code(), 26);
}

#[test]
fn explicit_method_overrides() {
    let p = plan(&["-X", "PUT", "-d", "a", "u"]).unwrap();
    assert_eq!(p.method, "PUT");
    let p = plan(&["-X", "DELETE", "u"]).unwrap();
    assert_eq!(p.method, "DELETE");
    assert_eq!(p.body, BodySource::None);
    let p = plan(&["-I", "-X", "GET", "u"]).unwrap();
    assert_eq!(p.method, "GET");
    assert!(p.output.head_only);
    assert!(matches!(plan(&["-X", "", "u"]), Err(PlanError::Usage(_))));
}

#[test]
fn head_option() {
    let p = plan(&["-I", "u"]).unwrap();
    assert_eq!(p.method, "HEAD");
    assert!(p.output.head_only && p.output.include_head);
    let e = plan(&["-I", "-d", "a", "u"]).unwrap_err();
    assert!(matches!(e, PlanError::Usage(_)));
    assert_eq!(e.into_outcome().exit_code(), 2);
}

#[test]
fn user_content_type_and_accept_win() {
    let p = plan(&[
        "-H",
        "content-type: application/json",
        "-H",
        "Accept: text/plain",
        "-d",
        "{}",
        "u",
    ])
    .unwrap();
    assert_eq!(
        p.headers,
        vec![
            ("content-type".into(), "application/json".into()),
            ("Accept".into(), "text/plain".into()),
        ]
    );
}

#[test]
fn header_parsing() {
    assert_eq!(
        parse_header("X-A:  b c ").unwrap(),
        HeaderArg::Set("X-A".into(), "b c".into())
    );
    assert_eq!(
        parse_header("X-A:b:c").unwrap(),
        HeaderArg::Set("X-A".into(), "b:c".into())
    );
    assert_eq!(
        parse_header("X-A:").unwrap(),
        HeaderArg::Remove("X-A".into())
    );
    assert_eq!(
        parse_header("X-A:   ").unwrap(),
        HeaderArg::Remove("X-A".into())
    );
    assert_eq!(
        parse_header("X-A;").unwrap(),
        HeaderArg::Set("X-A".into(), "".into())
    );
    for bad in ["NoColon", "", ": v", "Bad Name: v", "a;b;", "\tX: v"] {
        assert!(parse_header(bad).is_err(), "{bad:?}");
    }
}

#[test]
fn header_without_colon_is_a_usage_error() {
    let e = plan(&["-H", "NoColon", "u"]).unwrap_err();
    let PlanError::Usage(m) = &e else {
        panic!("{e:?}")
    };
    assert!(m.contains("NoColon"));
    assert_eq!(e.into_outcome().exit_code(), 2);
}

#[test]
fn removing_defaults() {
    let p = plan(&[
        "-H",
        "Accept:",
        "-H",
        "User-Agent:",
        "-H",
        "X-Gone:",
        "-d",
        "a",
        "u",
    ])
    .unwrap();
    assert_eq!(
        p.headers,
        vec![(
            "Content-Type".into(),
            "application/x-www-form-urlencoded".into()
        )]
    );
    assert_eq!(p.user_agent, None);
    let p = plan(&["-H", "Content-Type:", "-d", "a", "u"]).unwrap();
    assert_eq!(header(&p, "content-type"), Vec::<&str>::new());
}

#[test]
fn user_agent_choice() {
    assert_eq!(
        plan(&["-A", "me/1", "u"]).unwrap().user_agent.as_deref(),
        Some("me/1")
    );
    let p = plan(&["-H", "User-Agent: hdr", "u"]).unwrap();
    assert_eq!(p.user_agent, None);
    assert_eq!(header(&p, "user-agent"), vec!["hdr"]);
}

#[test]
fn tls_and_timeouts() {
    let p = plan(&["--cacert", "ca.pem", "u"]).unwrap();
    assert_eq!(p.tls, TlsChoice::CaFile("ca.pem".into()));
    let p = plan(&["-k", "--cacert", "ca.pem", "u"]).unwrap();
    assert_eq!(p.tls, TlsChoice::Insecure);
    let p = plan(&["--connect-timeout", "0.25", "-m", "3", "u"]).unwrap();
    assert_eq!(
        p.connect_timeout,
        ConnectTimeout::Limit(Duration::from_millis(250))
    );
    assert_eq!(p.max_time, Some(Duration::from_secs(3)));
    let p = plan(&["--connect-timeout", "0", "-m", "0", "u"]).unwrap();
    assert_eq!(p.connect_timeout, ConnectTimeout::Unlimited);
    assert_eq!(p.max_time, None);
}

#[test]
fn output_options() {
    let p = plan(&["-i", "-o", "f", "-f", "-v", "--max-filesize", "9", "u"]).unwrap();
    assert_eq!(
        p.output,
        OutputOptions {
            file: Some("f".into()),
            include_head: true,
            head_only: false,
            dump_json: false,
            fail_on_http_error: true,
            verbose: true,
            max_filesize: Some(9),
            resume: None,
            etag_save: None,
            write_out: None,
            progress: false,
            ..OutputOptions::default()
        }
    );
    assert!(plan(&["--dump", "json", "u"]).unwrap().output.dump_json);
}

fn plans(argv: &[&str]) -> Result<Vec<Plan>, PlanError> {
    let args = args::parse(std::iter::once("weft").chain(argv.iter().copied())).unwrap();
    build_all(&args, &mut files)
}

fn usage(r: Result<Vec<Plan>, PlanError>) -> String {
    match r {
        Err(PlanError::Usage(m)) => m,
        other => panic!("expected a usage error, got {other:?}"),
    }
}

#[test]
fn one_plan_per_url_with_paired_outputs() {
    let ps = plans(&["-o", "a.out", "h/a", "http://h/dir/b.txt", "--url", "h/c"]).unwrap();
    let got: Vec<_> = ps
        .iter()
        .map(|p| (p.url.as_str(), p.output.file.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            ("http://h/a", Some(PathBuf::from("a.out"))),
            ("http://h/dir/b.txt", None),
            ("http://h/c", None),
        ]
    );
    let ps = plans(&[
        "-O",
        "--output-dir",
        "d",
        "-o",
        "/abs",
        "h/x",
        "h/dir/b.txt",
    ])
    .unwrap();
    assert_eq!(ps[0].output.file, Some(PathBuf::from("/abs")));
    assert_eq!(ps[1].output.file, Some(PathBuf::from("d/b.txt")));
    // curl's exit 23 (an output error), not a usage error.
    for url in ["http://h/", "http://h/a/.."] {
        let e = plans(&["-O", url]).unwrap_err();
        assert!(
            matches!(&e, PlanError::Output(m) if m.contains("no length")),
            "{e:?}"
        );
    }
    assert!(usage(plans(&["-o", "a", "-o", "b", "h/1"])).contains("2 -o options"));
    assert!(usage(plans(&[])).contains("no URL"));
    assert!(usage(plans(&["--data-binary", "@-", "h/1", "h/2"])).contains("one URL"));
}

#[test]
fn remote_names_stay_in_the_directory() {
    assert_eq!(
        remote_name("http://h/a/b.tar.gz?x=1").as_deref(),
        Some("b.tar.gz")
    );
    assert_eq!(remote_name("http://h/a%2Fb").as_deref(), Some("a%2Fb"));
    for none in ["http://h", "http://h/", "http://h/x/", "http://h/.."] {
        assert_eq!(remote_name(none), None, "{none}");
    }
}

#[test]
fn form_fields() {
    let p = plan(&[
        "-F",
        "a=1",
        "-F",
        "f=@up.bin;type=x/y;filename=n",
        "-F",
        "t=<form.txt",
        "u",
    ])
    .unwrap();
    assert_eq!(p.method, "POST");
    assert!(
        header(&p, "content-type").is_empty(),
        "set with the boundary later"
    );
    let BodySource::Form(fields) = &p.body else {
        panic!("{:?}", p.body)
    };
    assert_eq!(fields[0].value, FormValue::Text("1".into()));
    assert_eq!(
        fields[1].value,
        FormValue::File {
            path: "up.bin".into(),
            content_type: Some("x/y".into()),
            filename: Some("n".into()),
        }
    );
    assert_eq!(fields[2].value, FormValue::Text("a=1\r\nb=2\n".into()));
    for bad in ["noequals", "=v", "f=@", "f=@x;color=red"] {
        assert!(
            matches!(plan(&["-F", bad, "u"]), Err(PlanError::Usage(_))),
            "{bad}"
        );
    }
    assert!(matches!(
        plan(&["-F", "t=<missing", "u"]),
        Err(PlanError::Read(_))
    ));
    assert!(matches!(
        plan(&["-F", "a=1", "-d", "x", "u"]),
        Err(PlanError::Usage(_))
    ));
    assert!(matches!(
        plan(&["-F", "a=1", "-I", "u"]),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn chain_options() {
    let p = plan(&[
        "-L",
        "-u",
        "al:pw:x",
        "--digest",
        "--compressed",
        "-x",
        "http://p:3128",
        "u",
    ])
    .unwrap();
    assert_eq!(p.chain.follow, Some(DEFAULT_MAX_REDIRS));
    let auth = p.chain.auth.as_ref().unwrap();
    assert_eq!((auth.user.as_str(), auth.password.as_str()), ("al", "pw:x"));
    assert_eq!(auth.choice, AuthChoice::Digest);
    assert!(
        !format!("{auth:?}").contains("pw"),
        "Debug hides the password"
    );
    assert!(p.chain.compressed);
    assert_eq!(p.chain.proxy.as_deref(), Some("http://p:3128"));
    assert_eq!(
        plan(&["--max-redirs", "3", "u"]).unwrap().chain.follow,
        None
    );
    assert_eq!(
        plan(&["-L", "--max-redirs", "3", "u"])
            .unwrap()
            .chain
            .follow,
        Some(3)
    );
    assert_eq!(
        plan(&["-L", "--max-redirs", "-1", "u"])
            .unwrap()
            .chain
            .follow,
        Some(u32::MAX)
    );
    assert_eq!(
        plan(&["-u", "x", "--anyauth", "u"])
            .unwrap()
            .chain
            .auth
            .unwrap()
            .choice,
        AuthChoice::Any
    );
    assert_eq!(
        plan(&["-Z", "u"]).unwrap().chain.parallel,
        DEFAULT_PARALLEL_MAX
    );
    assert_eq!(
        plan(&["-Z", "--parallel-max", "3", "u"])
            .unwrap()
            .chain
            .parallel,
        3
    );
    assert_eq!(
        plan(&["--parallel-max", "3", "u"]).unwrap().chain.parallel,
        1
    );
}

#[test]
fn cookies_etags_resume_and_write_out() {
    let p = plan(&["-b", "a=1; b=2", "-b", "jar.txt", "-c", "out.txt", "u"]).unwrap();
    assert_eq!(header(&p, "cookie"), vec!["a=1; b=2"]);
    assert_eq!(p.chain.cookie_files, vec![PathBuf::from("jar.txt")]);
    assert_eq!(p.chain.cookie_jar, Some(PathBuf::from("out.txt")));

    let mut etag_file = |name: &str| match name {
        "e" => Ok(b"\"abc\"\n".to_vec()),
        "empty" => Ok(Vec::new()),
        "fmt" => Ok(b"%{http_code}".to_vec()),
        _ => Err(io::Error::new(io::ErrorKind::NotFound, "none")),
    };
    let args = |v: &[&str]| args::parse(std::iter::once("weft").chain(v.iter().copied())).unwrap();
    let p = build(
        &args(&["--etag-compare", "e", "-w", "@fmt", "u"]),
        &mut etag_file,
    )
    .unwrap();
    assert_eq!(header(&p, "if-none-match"), vec!["\"abc\""]);
    assert_eq!(p.output.write_out.as_deref(), Some("%{http_code}"));
    for quiet in ["empty", "missing"] {
        let p = build(&args(&["--etag-compare", quiet, "u"]), &mut etag_file).unwrap();
        assert!(header(&p, "if-none-match").is_empty(), "{quiet}");
    }
    assert!(matches!(
        build(&args(&["-w", "@missing", "u"]), &mut etag_file),
        Err(PlanError::Read(_))
    ));

    assert_eq!(
        plan(&["-C", "-", "-o", "f", "u"]).unwrap().output.resume,
        Some(Resume::FromFile)
    );
    assert_eq!(
        plan(&["-C", "12", "-o", "f", "u"]).unwrap().output.resume,
        Some(Resume::At(12))
    );
    assert!(matches!(
        plan(&["-C", "x", "-o", "f", "u"]),
        Err(PlanError::Usage(_))
    ));
    assert!(usage(plans(&["-C", "-", "u"])).contains("output file"));
    assert!(matches!(
        plan(&["-C", "-", "-o", "f", "--dump", "json", "u"]),
        Err(PlanError::Usage(_))
    ));
}

#[test]
fn retry_options_make_curls_policy() {
    assert_eq!(plan(&["u"]).unwrap().chain.retry, None);
    assert_eq!(plan(&["--retry", "0", "u"]).unwrap().chain.retry, None);
    let p = plan(&["--retry", "3", "-m", "2", "u"]).unwrap();
    let r = p.chain.retry.unwrap();
    assert_eq!(r.max_retries, 3);
    assert!(r.all_methods && !r.connection_refused && !r.all_errors);
    assert_eq!(r.attempt_timeout, Some(Duration::from_secs(2)));
    assert_eq!(r.max_total, None);
    assert_eq!(
        r.backoff,
        Backoff::Exponential {
            base: Duration::from_secs(1),
            max: Duration::from_secs(600),
            jitter: Jitter::None,
        }
    );
    let p = plan(&[
        "--retry",
        "1",
        "--retry-delay",
        "0.5",
        "--retry-max-time",
        "9",
        "--retry-connrefused",
        "--retry-all-errors",
        "u",
    ])
    .unwrap();
    let r = p.chain.retry.unwrap();
    assert_eq!(r.backoff, Backoff::Fixed(Duration::from_millis(500)));
    assert_eq!(r.max_total, Some(Duration::from_secs(9)));
    assert!(r.connection_refused && r.all_errors);
    // 0 means the default: back off, and no total limit.
    let p = plan(&[
        "--retry",
        "1",
        "--retry-delay",
        "0",
        "--retry-max-time",
        "0",
        "u",
    ]);
    let r = p.unwrap().chain.retry.unwrap();
    assert!(matches!(r.backoff, Backoff::Exponential { .. }));
    assert_eq!(r.max_total, None);
}
