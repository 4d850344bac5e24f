//! The whole client (reactor, Agent and pool, redirects, cookies, auth, content decoding, body
//! flow control) over in-memory connections, against scripted responses. Byte 0 picks the
//! wrappers and the number of requests, byte 1 how bodies are read and the split points; the
//! rest is the responses separated by `#~#`; see `weft_fuzz::client::fuzz_client` (`fuzz/src/`).
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    weft_fuzz::client::fuzz_client(data);
});
