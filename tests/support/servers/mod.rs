//! Test harness: real servers we did not write (nginx over HTTP and HTTPS, httpbin under
//! gunicorn), started per test on free 127.0.0.1 ports and killed on drop, plus a test CA.
//!
//! Use from an integration test crate `tests/foo.rs` with
//!
//! ```ignore
//! mod support;
//! use support::servers::{Httpbin, Nginx};
//! ```
//!
//! API summary (see each item's docs):
//! - [`Nginx::start`] / [`Nginx::start_with`]: nginx on `http_addr()` and `https_addr()`
//!   (URLs: `http_url(path)`, `https_url(path)` for `localhost`, `https_ip_url(path)`),
//!   `ca()` / `ca_pem_path()` to trust its certificate, `access_log_entries()` /
//!   `wait_access_log(n)` / `distinct_connections()` to count server-side connections,
//!   `error_log()`. Locations are listed on [`Nginx::start`]; `/big.bin` is [`big_body`].
//! - [`Httpbin::start`]: httpbin on `addr()`, `base_url()`, `url(path)`.
//! - [`Tinyproxy::start`]: an HTTP proxy (with CONNECT) on `addr()` / `url()`, optionally
//!   demanding Basic credentials; `log()`.
//! - [`WsEcho::start`]: a WebSocket echo server (python3-websockets) on `url(path)`.
//! - [`Microsocks::start`]: a SOCKS5 proxy on `addr()` / `url(scheme)`, optionally demanding
//!   a username and password; `log()`.
//! - [`TestCa::new`] / [`TestCa::generate`]: CA + server certificate PEM/DER (and PEM files),
//!   `client_config()` for rustls, `leaf()` for any names and validity.
//! - [`tls`]: tiny rustls servers on std threads for the reactor's TLS tests, and the shared
//!   [`tls::server_config`].
//! - [`free_port`], [`raw_get`], [`raw_request`], [`util::parse_response`], [`TestDir`].
//!
//! Start costs (this machine, 2 cores): nginx about 25 ms (includes CA generation and the
//! 4 MiB document root), httpbin about 0.4 s. Start one per test.
//!
//! The servers come from Debian packages installed by `scripts/install-test-deps`
//! (`/usr/sbin/nginx`, and `python3-httpbin` + `python3-gunicorn` run with `/usr/bin/python3`).
pub mod ca;
pub mod httpbin;
pub mod microsocks;
pub mod nginx;
pub mod tinyproxy;
pub mod tls;
pub mod util;
pub mod websocket;

pub use ca::{Leaf, TestCa};
pub use httpbin::Httpbin;
pub use microsocks::Microsocks;
pub use nginx::{LogEntry, Nginx, big_body, big_body_len};
pub use tinyproxy::Tinyproxy;
pub use util::{RawResponse, TestDir, free_port, raw_get, raw_request, weft_command};
pub use websocket::WsEcho;
