//! The socket under a connection: TCP, a Unix domain socket connected by path, or one end of
//! a Unix socket pair that a [`Connector`] hands over instead of a TCP connect (a peer in the
//! same process: no network, no ports).

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::path::Path;

use mio::event::Source;
use mio::net::{TcpStream, UnixStream};
use mio::{Interest, Registry, Token};

/// Replaces the TCP connect of client connections, for tests and fuzzing: the whole client
/// (pool, TLS, wrappers) runs unchanged over a stream whose other end the caller holds.
///
/// Called on the reactor thread for each address a connection tries, after resolution.
/// `None` connects over TCP as usual; `Some(Ok(stream))` uses `stream` (already connected:
/// the connection opens at the next turn); `Some(Err(e))` fails this address as a refused
/// connect would. Any `FnMut(SocketAddr) -> Option<io::Result<UnixStream>>` is a connector:
///
/// ```
/// use std::os::unix::net::UnixStream;
/// use weft::reactor::Reactor;
///
/// let mut reactor = Reactor::new()?;
/// let mut peers = Vec::new();
/// reactor.ctx().set_connector(move |_addr| {
///     let (ours, theirs) = match UnixStream::pair() {
///         Ok(pair) => pair,
///         Err(e) => return Some(Err(e)),
///     };
///     peers.push(theirs); // a real harness would serve requests on it
///     Some(Ok(ours))
/// });
/// # Ok::<(), std::io::Error>(())
/// ```
pub trait Connector: 'static {
    /// The stream to use for a connection to `addr`, or `None` for TCP.
    fn connect(&mut self, addr: SocketAddr) -> Option<io::Result<StdUnixStream>>;
}

impl<F> Connector for F
where
    F: FnMut(SocketAddr) -> Option<io::Result<StdUnixStream>> + 'static,
{
    fn connect(&mut self, addr: SocketAddr) -> Option<io::Result<StdUnixStream>> {
        self(addr)
    }
}

/// A connection's socket.
#[derive(Debug)]
pub(super) enum Stream {
    Tcp(TcpStream),
    /// A Unix socket: connected to a path, or from a [`Connector`] (then the connection's
    /// `peer` holds the address it stands for).
    Local(UnixStream),
}

impl Stream {
    /// Starts a connect to `addr`: through `connector` when it takes the address, else TCP.
    pub(super) fn connect(
        connector: Option<&mut Box<dyn Connector>>,
        addr: SocketAddr,
    ) -> io::Result<Stream> {
        if let Some(result) = connector.and_then(|c| c.connect(addr)) {
            let sock = result?;
            sock.set_nonblocking(true)?;
            return Ok(Stream::Local(UnixStream::from_std(sock)));
        }
        TcpStream::connect(addr).map(Stream::Tcp)
    }

    /// Starts a connect to the Unix socket at `path` (on Linux it completes or fails at
    /// once; the readiness event confirms it as for TCP).
    pub(super) fn connect_unix(path: &Path) -> io::Result<Stream> {
        UnixStream::connect(path).map(Stream::Local)
    }

    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Local(sock) => sock.take_error(),
        }
    }

    /// The TCP peer's address (`NotConnected` while the connect is in progress); `None` for
    /// a local stream, which has no network address.
    pub(super) fn peer_addr(&self) -> io::Result<Option<SocketAddr>> {
        match self {
            Stream::Tcp(s) => s.peer_addr().map(Some),
            Stream::Local(_) => Ok(None),
        }
    }

    pub(super) fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            // Best effort: a socket without it still works, only slower.
            let _ = s.set_nodelay(true);
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Local(sock) => sock.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Local(sock) => sock.write(buf),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl Stream {
    /// The socket as a poller source (registration is rare: no need for a match per method).
    fn source(&mut self) -> &mut dyn Source {
        match self {
            Stream::Tcp(s) => s,
            Stream::Local(sock) => sock,
        }
    }
}

impl Source for Stream {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.source().register(registry, token, interest)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        self.source().reregister(registry, token, interest)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.source().deregister(registry)
    }
}
