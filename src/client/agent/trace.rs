//! What the agent tells the `log` crate: heads at trace level, with credentials masked
//! (`Authorization`, `Proxy-Authorization`, `Cookie`, `Set-Cookie`). Lifecycle events
//! (connect, reuse, close) are logged where they happen, at debug level. With no logger, or
//! the level off, nothing here formats anything.

use crate::proto::ResponseHead;
use crate::reactor::ConnId;

/// Fields whose values are credentials: shown as `<masked>`.
const MASKED: [&str; 4] = [
    "authorization",
    "proxy-authorization",
    "cookie",
    "set-cookie",
];

/// The value to show for field `name`.
fn shown<'a>(name: &str, value: &'a str) -> &'a str {
    if MASKED.iter().any(|m| name.eq_ignore_ascii_case(m)) {
        "<masked>"
    } else {
        value
    }
}

/// Logs the request head about to be written on `conn` (`bytes`: the head as encoded).
pub(super) fn request_head(conn: ConnId, bytes: &[u8]) {
    if !log::log_enabled!(log::Level::Trace) {
        return;
    }
    let text = String::from_utf8_lossy(bytes);
    let mut out = String::with_capacity(text.len());
    for line in text.split("\r\n").take_while(|l| !l.is_empty()) {
        out.push_str("\n> ");
        match line.split_once(':') {
            Some((name, value)) if !name.contains(' ') => {
                out.push_str(name);
                out.push_str(": ");
                out.push_str(shown(name, value.trim_start()));
            }
            _ => out.push_str(line),
        }
    }
    log::trace!("connection {conn}: request head{out}");
}

/// Logs a response head received on `conn`.
pub(super) fn response_head(conn: ConnId, head: &ResponseHead) {
    if !log::log_enabled!(log::Level::Trace) {
        return;
    }
    let mut out = format!("\n< {} {} {}", head.version, head.status, head.reason);
    for (name, value) in head.headers.iter() {
        let value = String::from_utf8_lossy(value);
        out.push_str(&format!("\n< {name}: {}", shown(name, &value)));
    }
    log::trace!("connection {conn}: response head{out}");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn credentials_are_masked_whatever_their_case() {
        assert_eq!(shown("Authorization", "Basic dXNlcjpwYXNz"), "<masked>");
        assert_eq!(shown("PROXY-AUTHORIZATION", "Basic eA=="), "<masked>");
        assert_eq!(shown("cookie", "a=b"), "<masked>");
        assert_eq!(shown("Set-Cookie", "a=b; Path=/"), "<masked>");
        assert_eq!(shown("Accept", "*/*"), "*/*");
    }
}
