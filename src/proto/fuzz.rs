//! What every fuzz harness shares (behind the `fuzzing` feature): the in-crate ones and those
//! in `fuzz/src/` use this one helper, so a corpus input splits the same way in every harness.

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
