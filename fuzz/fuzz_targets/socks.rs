//! The SOCKS5 handshake at arbitrary split points; see `weft_fuzz::socks::fuzz_socks`.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_fuzz::socks::fuzz_socks(data);
});
