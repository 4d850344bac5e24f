//! Replays the response fuzz corpus through the fuzz target's logic, so stable CI runs it. The
//! harness uses the public API only and lives in `fuzz/src/`, included here by path.
#![cfg(feature = "fuzzing")]

use std::fs;
use std::path::Path;

#[path = "../fuzz/src/common.rs"]
mod common;
#[path = "../fuzz/src/response.rs"]
mod response;

use response::fuzz_response;

#[test]
fn replay_response_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/response");
    let mut count = 0;
    for entry in fs::read_dir(&dir).expect("corpus directory exists") {
        let path = entry.expect("readable entry").path();
        if !path.is_file() {
            continue;
        }
        let data = fs::read(&path).expect("readable corpus file");
        // Every split seed and both methods, not only the one in byte 0.
        for ctl in 0..=u8::MAX {
            let mut input = data.clone();
            if let Some(first) = input.first_mut() {
                *first = ctl;
            }
            fuzz_response(&input);
        }
        count += 1;
    }
    assert!(count >= 12, "corpus too small: {count} files");
}

#[test]
fn fuzz_logic_handles_degenerate_inputs() {
    fuzz_response(b"");
    fuzz_response(b"\x00");
    fuzz_response(b"\x01\r\n\r\n\r");
    fuzz_response(&[0u8; 5000]);
    let mut big = b"\x00HTTP/1.1 200 OK\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000));
    fuzz_response(&big);
}

/// A poor man's fuzzer on stable: random mutations of the corpus through the same logic.
#[test]
fn random_mutations_of_the_corpus() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/response");
    let mut seeds: Vec<Vec<u8>> = fs::read_dir(&dir)
        .expect("corpus directory exists")
        .filter_map(|e| fs::read(e.ok()?.path()).ok())
        .collect();
    seeds.sort();
    let alphabet = b"\r\n0123456789aAfF;:, \t\x00\x7fHTTP/1.chunkedContent-Length";
    let mut state: u64 = 0x2545_F491_4F6C_DD1D;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for i in 0..5000 {
        let mut data = seeds[i % seeds.len()].clone();
        data[0] = next() as u8;
        for _ in 0..1 + next() % 4 {
            let at = 1 + (next() as usize) % data.len();
            let b = alphabet[(next() as usize) % alphabet.len()];
            match next() % 4 {
                0 if at < data.len() => data[at] = b,
                1 => data.insert(at, b),
                2 if at < data.len() => {
                    data.remove(at);
                }
                _ => {
                    let from = 1 + (next() as usize) % data.len();
                    let piece: Vec<u8> = data[from..].iter().take(12).copied().collect();
                    for (k, b) in piece.into_iter().enumerate() {
                        data.insert((at + k).min(data.len()), b);
                    }
                }
            }
        }
        fuzz_response(&data);
    }
}
