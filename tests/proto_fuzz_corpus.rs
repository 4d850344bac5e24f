//! Replays the response fuzz corpus through the fuzz target's logic, so stable CI runs it.

use std::fs;
use std::path::Path;

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
            weft::proto::fuzz_response(&input);
        }
        count += 1;
    }
    assert!(count >= 12, "corpus too small: {count} files");
}

#[test]
fn fuzz_logic_handles_degenerate_inputs() {
    weft::proto::fuzz_response(b"");
    weft::proto::fuzz_response(b"\x00");
    weft::proto::fuzz_response(b"\x01\r\n\r\n\r");
    weft::proto::fuzz_response(&[0u8; 5000]);
    let mut big = b"\x00HTTP/1.1 200 OK\r\n".to_vec();
    big.extend(std::iter::repeat_n(b'a', 10_000));
    weft::proto::fuzz_response(&big);
}
