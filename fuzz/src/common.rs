//! Helpers shared by the harnesses that use only weft's public API.

use weft::proto::{ClientConnection, Config, Headers, RequestBody, RequestError, RequestHead};

/// A fresh connection that has sent `method / HTTP/1.1` to `fuzz.test`, ready for its
/// response: where the fuzz bodies start.
pub fn sent_request(config: Config, method: &str) -> Result<ClientConnection, RequestError> {
    let mut conn = ClientConnection::new(config);
    let headers = Headers::new();
    let head = RequestHead {
        method,
        target: "/",
        host: "fuzz.test",
        headers: &headers,
    };
    conn.send_request(&head, RequestBody::None, &mut Vec::new())?;
    Ok(conn)
}

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
