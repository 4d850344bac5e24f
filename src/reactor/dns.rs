//! Name resolution on helper threads, so a slow resolver never blocks the loop.

use std::io;
use std::net::{SocketAddr, ToSocketAddrs};

use super::ids::ConnId;
use super::remote::Remote;

/// Resolves `name:port` on a new thread and posts the answer to the connection through
/// `remote`. Errs only if the thread cannot be started.
pub(super) fn resolve(remote: Remote, conn: ConnId, name: String, port: u16) -> io::Result<()> {
    std::thread::Builder::new()
        .name("weft-dns".to_string())
        .spawn(move || {
            let result = (name.as_str(), port)
                .to_socket_addrs()
                .map(|addrs| addrs.collect::<Vec<SocketAddr>>());
            // If the reactor is gone there is nobody to tell.
            let _ = remote.call(move |ctx| ctx.dns_resolved(conn, result));
        })
        .map(drop)
}
