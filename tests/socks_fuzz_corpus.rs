//! Replays the SOCKS5 fuzz corpus through the fuzz target's logic (every control byte), and
//! random mutations of it, so stable CI runs them. The harness uses the public API only and
//! lives in `fuzz/src/`, included here by path.
#![cfg(feature = "fuzzing")]

use std::fs;
use std::path::Path;

#[path = "../fuzz/src/common.rs"]
#[allow(dead_code)]
mod common;
#[path = "../fuzz/src/socks.rs"]
mod socks;

use socks::fuzz_socks;

fn corpus() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/socks");
    let mut seeds: Vec<Vec<u8>> = fs::read_dir(&dir)
        .expect("corpus directory exists")
        .filter_map(|e| fs::read(e.ok()?.path()).ok())
        .collect();
    seeds.sort();
    seeds
}

#[test]
fn replay_socks_corpus() {
    let seeds = corpus();
    assert!(seeds.len() >= 9, "corpus too small: {}", seeds.len());
    for data in seeds {
        for ctl in 0..=u8::MAX {
            let mut input = data.clone();
            if let Some(first) = input.first_mut() {
                *first = ctl;
            }
            fuzz_socks(&input);
        }
    }
    fuzz_socks(b"");
    fuzz_socks(b"\x00");
}

#[test]
fn random_mutations_of_the_socks_corpus() {
    let seeds = corpus();
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for round in 0..5_000 {
        let mut input = seeds[round % seeds.len()].clone();
        for _ in 0..(next() % 4 + 1) {
            let at = (next() as usize) % (input.len() + 1);
            match next() % 3 {
                0 if at < input.len() => input[at] = next() as u8,
                1 => input.insert(at, next() as u8),
                _ if at < input.len() => {
                    input.remove(at);
                }
                _ => {}
            }
        }
        fuzz_socks(&input);
    }
}
