//! What every fuzz harness shares (behind the `fuzzing` feature): the in-crate ones and those
//! in `fuzz/src/` use this one helper, so a corpus input splits the same way in every harness.
//! Also the check of the plain head reader against httparse that the response target runs.

use super::head_scan::{parse_head_prefix, parse_plain};
use super::response::parse_head_httparse;
use super::{Config, Headers};

/// The lengths the fuzz bodies cut their input into, from one seed byte (a xorshift stream,
/// so a corpus input always splits the same way): a quarter of the pieces are one byte long,
/// the others up to `max[0]`, `max[1]` or `max[2]` bytes, a quarter each.
pub fn piece_lengths(seed: u8, max: [u64; 3]) -> impl FnMut() -> usize {
    let mut state = u64::from(seed).wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    move || match next() % 4 {
        0 => 1,
        k => (next() % max[k as usize - 1]) as usize + 1,
    }
}

/// Checks the plain reading of a response head against httparse's, for the fuzz targets and
/// their corpus replay: whenever the plain reader takes `data`, httparse reads the same head
/// (length, status line, fields, framing notes), under the default limits and under a cap of
/// 4 fields. Panics otherwise.
#[doc(hidden)]
pub fn fuzz_plain_head(data: &[u8]) {
    let few = Config {
        max_headers: 4,
        ..Config::default()
    };
    for config in [Config::default(), few] {
        let taken = parse_plain(data, &config, &mut Headers::new());
        if taken.is_some() {
            let plain = parse_head_prefix(data, &config, &mut Headers::new());
            let full = parse_head_httparse(data, &config, &mut Headers::new());
            assert_eq!(plain, full, "{:?}", String::from_utf8_lossy(data));
        }
    }
}
