//! Feeds arbitrary bytes as a response to a GET or HEAD at arbitrary split points, then EOF.
//! Byte 0 picks the method and the split points; see `weft::proto::fuzz_response`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft::proto::fuzz_response(data);
});
