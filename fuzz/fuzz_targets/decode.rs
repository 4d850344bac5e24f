//! The content decoders (gzip, deflate, br, zstd) with their caps, at arbitrary split points.
//! Bytes 0-2 pick the limits, the codings offered and the split points, then come the
//! `Content-Encoding` value and the body; see `weft::client::fuzz_decode`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft::client::fuzz_decode(data);
});
