//! `Location` resolution and the redirect policy over a scripted chain of responses. Byte 0
//! picks the settings, then lines: the request URL, then one response per line; see
//! `weft::client::fuzz_redirect`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft::client::fuzz_redirect(data);
});
