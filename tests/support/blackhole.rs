//! A loopback address whose connects never complete, for the Happy Eyeballs tests: a listener
//! with a backlog of 0 whose accept queue is filled by connections nobody accepts. The kernel
//! then drops further SYNs, so a connect to it hangs (until the kernel gives up, minutes
//! later). Checked with a probe: [`Blackhole::new`] answers `None` on a kernel that does not
//! behave so, and the tests that need one skip.

use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use socket2::{Domain, Socket, Type};

/// A listening socket that never completes another connect; closed on drop.
pub struct Blackhole {
    addr: SocketAddr,
    _listener: Socket,
    _fillers: Vec<Socket>,
}

impl Blackhole {
    /// A blackhole on `ip:port` (`port` 0: any free port), or `None` if it cannot be bound
    /// or connects to it still complete.
    pub fn new(ip: IpAddr, port: u16) -> Option<Blackhole> {
        let addr = SocketAddr::new(ip, port);
        let domain = Domain::for_address(addr);
        let listener = Socket::new(domain, Type::STREAM, None).ok()?;
        listener.bind(&addr.into()).ok()?;
        listener.listen(0).ok()?;
        let addr = listener.local_addr().ok()?.as_socket()?;
        let mut fillers = Vec::new();
        // Each connect that completes takes a place in the queue; the first that does not
        // shows that the queue is full and SYNs are dropped.
        for _ in 0..8 {
            let probe = Socket::new(domain, Type::STREAM, None).ok()?;
            match probe.connect_timeout(&addr.into(), Duration::from_millis(150)) {
                Ok(()) => fillers.push(probe),
                Err(_) => {
                    return Some(Blackhole {
                        addr,
                        _listener: listener,
                        _fillers: fillers,
                    });
                }
            }
        }
        None
    }

    /// Its address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }
}

/// Whether this machine has IPv6 loopback (`::1` can be bound).
pub fn has_ipv6_loopback() -> bool {
    std::net::TcpListener::bind((Ipv6Addr::LOCALHOST, 0)).is_ok()
}

/// A loopback port on 127.0.0.1 where nothing listens (connects are refused at once).
pub fn refused_v4() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

/// The same on `[::1]`.
pub fn refused_v6() -> SocketAddr {
    let l = std::net::TcpListener::bind("[::1]:0").unwrap();
    l.local_addr().unwrap()
}
