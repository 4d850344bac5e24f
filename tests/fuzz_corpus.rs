//! Replays the checked-in corpora of the `chunked`, `redirect`, `decode` and `client` fuzz targets
//! through the targets' logic, so stable `cargo test` runs them (the `response` corpus has its
//! own test, `proto_fuzz_corpus.rs`). The `chunked`, `redirect` and `decode` harnesses need
//! private items and come with the `fuzzing` feature; the `client` harness uses the public API
//! and lives in `fuzz/src/`, included here by path.
#![cfg(all(feature = "fuzzing", feature = "cookies", feature = "digest"))]

use std::fs;
use std::path::Path;

#[path = "../fuzz/src/client.rs"]
mod client;
#[path = "../fuzz/src/common.rs"]
mod common;

use client::fuzz_client;

/// Every file of `fuzz/corpus/<target>`, sorted by name.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<(String, Vec<u8>)> = fs::read_dir(&dir)
        .expect("corpus directory exists")
        .map(|entry| entry.expect("readable entry").path())
        .filter(|path| path.is_file())
        .map(|path| {
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            (name, fs::read(&path).expect("readable corpus file"))
        })
        .collect();
    files.sort();
    files
}

/// Runs `body` on every corpus file, and on variants with the first `variable` bytes (the
/// targets' settings and split seeds) replaced by each value of `variants`.
fn replay(target: &str, min_files: usize, variants: &[&[u8]], body: fn(&[u8])) {
    let files = corpus(target);
    assert!(
        files.len() >= min_files,
        "{target} corpus too small: {} files",
        files.len()
    );
    for (name, data) in &files {
        eprintln!("{target}/{name}");
        body(data);
        for prefix in variants {
            let mut input = data.clone();
            let n = prefix.len().min(input.len());
            input[..n].copy_from_slice(&prefix[..n]);
            body(&input);
        }
    }
}

#[test]
fn replay_chunked_corpus() {
    // Every combination of limits, each with a few split seeds.
    let variants: Vec<[u8; 2]> = (0..64u8)
        .flat_map(|cfg| [0u8, 1, 0x5a, 0xff].map(|seed| [cfg, seed]))
        .collect();
    let variants: Vec<&[u8]> = variants.iter().map(|v| &v[..]).collect();
    replay("chunked", 12, &variants, weft::proto::fuzz_chunked);
}

#[test]
fn chunked_logic_handles_degenerate_inputs() {
    weft::proto::fuzz_chunked(b"");
    weft::proto::fuzz_chunked(b"\xff");
    weft::proto::fuzz_chunked(b"\xff\x00");
    weft::proto::fuzz_chunked(b"\xff\x00\r");
    weft::proto::fuzz_chunked(&[b'0'; 5000]);
    let mut big = b"\xff\x07fff\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 0xfff));
    big.extend_from_slice(b"\r\n0\r\n\r\n");
    weft::proto::fuzz_chunked(&big);
}

#[test]
fn replay_redirect_corpus() {
    // Every method and downgrade setting, with limits 0, 1 and 10.
    let variants: Vec<[u8; 1]> = (0..16u8)
        .flat_map(|low| [0u8, 1, 10].map(|max| [low | (max << 4)]))
        .collect();
    let variants: Vec<&[u8]> = variants.iter().map(|v| &v[..]).collect();
    replay("redirect", 12, &variants, weft::client::fuzz_redirect);
}

#[test]
fn redirect_logic_handles_degenerate_inputs() {
    weft::client::fuzz_redirect(b"");
    weft::client::fuzz_redirect(b"\x00");
    weft::client::fuzz_redirect(b"\x00not a url\n\x00/x");
    weft::client::fuzz_redirect(b"\xa0http://a.test/\n\n\n\x00");
    weft::client::fuzz_redirect(b"\xa0http://a.test/\n\x00\n\x00\n\x00");
}

#[test]
fn replay_decode_corpus() {
    // Every cap with a few coding limits, all codings offered, several split seeds.
    let variants: Vec<[u8; 3]> = (0..4u8)
        .flat_map(|cap| [0u8, 1, 2, 5].map(move |max| cap | (max << 2)))
        .flat_map(|limits| [0u8, 1, 0x77].map(|seed| [limits, 0, seed]))
        .collect();
    let variants: Vec<&[u8]> = variants.iter().map(|v| &v[..]).collect();
    replay("decode", 12, &variants, weft::client::fuzz_decode);
}

#[test]
fn decode_logic_handles_degenerate_inputs() {
    weft::client::fuzz_decode(b"");
    weft::client::fuzz_decode(b"\x17\x00\x00");
    weft::client::fuzz_decode(b"\x17\x00\x00gzip");
    weft::client::fuzz_decode(b"\x17\x00\x00gzip\n");
    weft::client::fuzz_decode(b"\x17\x00\x00br\n\x00");
    weft::client::fuzz_decode(b"\x17\x00\x00zstd\n\x28\xb5\x2f\xfd");
    weft::client::fuzz_decode(b"\x17\x00\x00deflate\n\x78");
}

#[test]
fn replay_client_corpus() {
    // Wrapper sets from none to all, one to four requests, every body mode, a few split seeds.
    let variants: Vec<[u8; 2]> = [0x00u8, 0x01, 0x03, 0x07, 0x0f, 0x1f, 0x60, 0xff]
        .into_iter()
        .flat_map(|flags| [0u8, 1, 2, 3, 0x55, 0xaa].map(|body| [flags, body]))
        .collect();
    let variants: Vec<&[u8]> = variants.iter().map(|v| &v[..]).collect();
    replay("client", 12, &variants, fuzz_client);
}

#[test]
fn client_logic_handles_degenerate_inputs() {
    fuzz_client(b"");
    fuzz_client(b"\x00");
    // No response at all: every request's connection is closed on it.
    fuzz_client(b"\x60\x00");
    fuzz_client(b"\x60\x00#~##~##~#");
    // Endless redirects to itself, with every wrapper.
    let redirect = b"HTTP/1.1 302 Found\r\nLocation: /\r\nContent-Length: 0\r\n\r\n";
    let mut input = b"\x1f\x00".to_vec();
    for _ in 0..8 {
        input.extend_from_slice(redirect);
        input.extend_from_slice(b"#~#");
    }
    fuzz_client(&input);
}
