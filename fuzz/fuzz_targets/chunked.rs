//! The chunked decoder at arbitrary split points against a reference decoder written from the
//! RFC 9112 grammar. Byte 0 picks the limits, byte 1 the split points; see
//! `weft::proto::fuzz_chunked`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft::proto::fuzz_chunked(data);
});
