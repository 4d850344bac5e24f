//! Name resolution on helper threads, so a slow resolver never blocks the loop.
//!
//! The default is the system resolver (`ToSocketAddrs`); [`Ctx::set_resolver`](super::Ctx::set_resolver)
//! replaces it, for instance with a fixed table in tests.

use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::sync::Arc;

use super::ids::ConnId;
use super::remote::Remote;

/// Turns a host name and port into addresses. Called on a helper thread (never on the
/// reactor thread), once per connection whose host is not an IP literal; the addresses are
/// tried in order.
///
/// Any `Fn(&str, u16) -> io::Result<Vec<SocketAddr>>` that is `Send + Sync` is a resolver:
///
/// ```
/// use std::net::SocketAddr;
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// reactor.ctx().set_resolver(|host: &str, port: u16| {
///     if host == "service.test" {
///         Ok(vec![SocketAddr::from(([127, 0, 0, 1], port))])
///     } else {
///         Err(std::io::Error::new(std::io::ErrorKind::NotFound, "unknown host"))
///     }
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Resolver: Send + Sync + 'static {
    /// The addresses of `host` (no brackets, never an IP literal) for `port`. An error or an
    /// empty list fails the connection with `TransportError::Dns`.
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>>;
}

impl<F> Resolver for F
where
    F: Fn(&str, u16) -> io::Result<Vec<SocketAddr>> + Send + Sync + 'static,
{
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        self(host, port)
    }
}

/// The system resolver (`getaddrinfo` through std's `ToSocketAddrs`): the default.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemResolver;

impl Resolver for SystemResolver {
    fn resolve(&self, host: &str, port: u16) -> io::Result<Vec<SocketAddr>> {
        (host, port).to_socket_addrs().map(|addrs| addrs.collect())
    }
}

/// The resolver a reactor uses (shared with its helper threads).
#[derive(Clone)]
pub(super) struct SharedResolver(pub(super) Arc<dyn Resolver>);

impl Default for SharedResolver {
    fn default() -> Self {
        SharedResolver(Arc::new(SystemResolver))
    }
}

impl fmt::Debug for SharedResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SharedResolver")
    }
}

/// Resolves `name:port` with `resolver` on a new thread and posts the answer to the
/// connection through `remote`. Errs only if the thread cannot be started.
pub(super) fn resolve(
    resolver: SharedResolver,
    remote: Remote,
    conn: ConnId,
    name: String,
    port: u16,
) -> io::Result<()> {
    std::thread::Builder::new()
        .name("weft-dns".to_string())
        .spawn(move || {
            let result = resolver.0.resolve(&name, port);
            // If the reactor is gone there is nobody to tell.
            let _ = remote.call(move |ctx| ctx.dns_resolved(conn, result));
        })
        .map(drop)
}
