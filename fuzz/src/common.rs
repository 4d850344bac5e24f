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

/// How the fuzz bodies cut their input into pieces: the crate's own helper, so the in-crate
/// harnesses and these split a corpus input the same way.
pub use weft::proto::piece_lengths;
