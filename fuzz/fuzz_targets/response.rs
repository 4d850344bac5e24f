//! Feeds arbitrary bytes as a response to a GET or HEAD at arbitrary split points, then EOF.
//! Byte 0 picks the method and the split points; see `weft_fuzz::response::fuzz_response` (`fuzz/src/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_fuzz::response::fuzz_response(data);
});
