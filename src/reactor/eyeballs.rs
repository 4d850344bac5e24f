//! Happy Eyeballs v2 (RFC 8305): the connect race of a client connection.
//!
//! The resolved addresses are filtered by [`IpFamily`] and interleaved by family (the first
//! family as the resolver gave it, then alternating). One attempt starts; while none has
//! connected, the next starts after the connection-attempt delay, or at once when an attempt
//! fails, and the earlier ones go on. The first to connect wins: its socket becomes the
//! connection's, the others are deregistered and closed. Every attempt's socket is registered
//! under the connection's own token, so a readiness event checks all of them (a handful at
//! most). The connection's connect timeout bounds the whole race.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use mio::{Interest, Registry};

use super::Ctx;
use super::conn::{End, State, race_in};
use super::error::TransportError;
use super::ids::{ConnId, conn_token};
use super::stream::Stream;
use super::timers::{TimerKind, Timers};

/// The connection-attempt delay when none is configured: RFC 8305's recommended 250 ms.
pub const DEFAULT_ATTEMPT_DELAY: Duration = Duration::from_millis(250);

/// Most addresses one connection tries: a resolver's answer can hold thousands, and each
/// attempt is a socket. Taken after interleaving, so both families keep their first ones.
pub const MAX_ATTEMPTS: usize = 32;

/// Which address families a connection may use (curl's `-4` / `-6`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum IpFamily {
    /// IPv4 and IPv6, raced as RFC 8305 says (the default).
    #[default]
    Any,
    /// IPv4 addresses only.
    V4,
    /// IPv6 addresses only.
    V6,
}

impl IpFamily {
    /// Whether `ip` may be connected to.
    pub fn allows(self, ip: IpAddr) -> bool {
        match self {
            IpFamily::Any => true,
            IpFamily::V4 => ip.is_ipv4(),
            IpFamily::V6 => ip.is_ipv6(),
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            IpFamily::Any => "IP",
            IpFamily::V4 => "IPv4",
            IpFamily::V6 => "IPv6",
        })
    }
}

/// The addresses in the order RFC 8305 tries them: those of `family`, the first address's
/// family first, then alternating between the families, each family in the resolver's order.
pub(super) fn interleave(addrs: Vec<SocketAddr>, family: IpFamily) -> VecDeque<SocketAddr> {
    if addrs.len() <= 1 {
        // The common answer (an IP literal, one A record): the list becomes the queue in
        // place, without a second allocation per connect.
        let mut addrs = VecDeque::from(addrs);
        addrs.retain(|a| family.allows(a.ip()));
        return addrs;
    }
    let mut addrs = addrs.into_iter().filter(|a| family.allows(a.ip()));
    let Some(first) = addrs.next() else {
        return VecDeque::new();
    };
    let (mut same, mut other): (VecDeque<_>, VecDeque<_>) =
        addrs.partition(|a| a.is_ipv4() == first.is_ipv4());
    let mut out = VecDeque::with_capacity((1 + same.len() + other.len()).min(MAX_ATTEMPTS));
    out.push_back(first);
    while out.len() < MAX_ATTEMPTS {
        match (other.pop_front(), same.pop_front()) {
            (None, None) => break,
            (a, b) => out.extend(a.into_iter().chain(b)),
        }
    }
    out.truncate(MAX_ATTEMPTS);
    out
}

/// A connection's race, from the resolver's answer until one attempt connects.
pub(super) struct Race {
    /// The host name as given, for naming it in resolve and connect errors.
    pub(super) host: String,
    /// Addresses not tried yet, in the order they will be.
    addrs: VecDeque<SocketAddr>,
    /// Attempts in flight, oldest first; each socket is registered under the connection's token.
    attempts: Vec<(Stream, SocketAddr)>,
    delay: Duration,
    family: IpFamily,
    /// The pending attempt-delay timer.
    timer: Option<u64>,
    /// Attempts started, including those that failed at once.
    tried: usize,
    /// The error of the last attempt that failed, and its address.
    last_error: Option<(io::Error, SocketAddr)>,
}

impl Race {
    pub(super) fn new(host: String, delay: Duration, family: IpFamily) -> Self {
        Race {
            host,
            addrs: VecDeque::new(),
            attempts: Vec::new(),
            delay,
            family,
            timer: None,
            tried: 0,
            last_error: None,
        }
    }

    /// Ends the race: cancels its timer, deregisters and closes the attempts still in
    /// flight, and frees the address and attempt lists.
    fn stop(&mut self, timers: &mut Timers<Ctx>, registry: &Registry) {
        if let Some(timer) = self.timer.take() {
            timers.cancel(timer);
        }
        for (mut sock, _) in std::mem::take(&mut self.attempts) {
            let _ = registry.deregister(&mut sock);
        }
        self.addrs = VecDeque::new();
    }

    /// Sockets registered with the poller (for [`Ctx::stats`]).
    pub(super) fn registered(&self) -> usize {
        self.attempts.len()
    }

    /// What the race ends with when nothing connected: the one attempt's own error, or the
    /// last one's with how many addresses were tried.
    fn error(&mut self) -> TransportError {
        let host = &self.host;
        match self.last_error.take() {
            None => TransportError::Dns(format!("{host}: no address to connect to")),
            Some((e, _)) if self.tried <= 1 => TransportError::from_io(&e),
            Some((e, addr)) => TransportError::AllAttemptsFailed {
                tried: self.tried,
                last_addr: addr,
                last: Box::new(TransportError::from_io(&e)),
            },
        }
    }
}

/// How far an attempt's connect went.
pub(super) enum Progress {
    Pending,
    Connected(Option<SocketAddr>),
    Failed(io::Error),
}

pub(super) fn progress(sock: &Stream) -> Progress {
    match sock.take_error() {
        Ok(Some(e)) | Err(e) => return Progress::Failed(e),
        Ok(None) => {}
    }
    match sock.peer_addr() {
        Ok(addr) => Progress::Connected(addr),
        // Still in progress (or a spurious wakeup).
        Err(e) if e.kind() == io::ErrorKind::NotConnected => Progress::Pending,
        Err(e) => Progress::Failed(e),
    }
}

impl Ctx {
    /// Starts the race of a resolved connection over `addrs` (or fails it when none is of
    /// the allowed family).
    pub(super) fn start_race(&mut self, id: ConnId, addrs: Vec<SocketAddr>) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Some(race) = conn.race_mut() else {
            return;
        };
        let resolved = addrs.len();
        race.addrs = interleave(addrs, race.family);
        if race.addrs.is_empty() && resolved > 0 {
            let msg = format!(
                "{}: no {} address among the {resolved} resolved",
                race.host, race.family
            );
            self.finish(id, End::Failed(TransportError::Dns(msg)));
            return;
        }
        self.attempt_next(id);
    }

    /// Starts the next address's attempt (skipping those that fail at once) and arms the
    /// attempt delay if more are left; fails the connection when nothing is left to wait for.
    fn attempt_next(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Some(race) = race_in(&mut conn.dialing) else {
            return;
        };
        if let Some(timer) = race.timer.take() {
            self.timers.cancel(timer);
        }
        while let Some(addr) = race.addrs.pop_front() {
            race.tried += 1;
            let started = Stream::connect(self.connector.as_mut(), addr).and_then(|mut sock| {
                let interest = Interest::READABLE | Interest::WRITABLE;
                self.registry
                    .register(&mut sock, conn_token(id), interest)?;
                Ok(sock)
            });
            match started {
                Ok(sock) => {
                    if race.attempts.capacity() == 0 {
                        // Most races make one attempt: room for one, not the four a first
                        // push reserves (the race is freed once connected, but a burst of
                        // connects holds thousands at once).
                        race.attempts.reserve_exact(1);
                    }
                    race.attempts.push((sock, addr));
                    // What a local stream stands for; a TCP connect reports its own.
                    conn.peer = Some(addr);
                    conn.state = State::Connecting;
                    if !race.addrs.is_empty() {
                        let at = self.now + race.delay;
                        race.timer = Some(self.timers.insert(at, TimerKind::AttemptDelay(id)));
                    }
                    return;
                }
                Err(e) => race.last_error = Some((e, addr)),
            }
        }
        if race.attempts.is_empty() {
            let error = race.error();
            self.finish(id, End::Failed(error));
        }
    }

    /// The attempt delay elapsed with no attempt connected: start the next one.
    pub(super) fn attempt_delay_elapsed(&mut self, id: ConnId) {
        if let Some(race) = self.conns.get_mut(id).and_then(|c| c.race_mut()) {
            race.timer = None;
            self.attempt_next(id);
        }
    }

    /// A readiness event on a connecting connection: an attempt connected (it wins), some
    /// failed (the next starts at once), or nothing yet.
    pub(super) fn connect_ready(&mut self, id: ConnId) {
        let Some(conn) = self.conns.get_mut(id) else {
            return;
        };
        let Some(race) = conn.race_mut() else {
            // A Unix socket: one connect, no race.
            return self.unix_connect_ready(id);
        };
        let mut failed = false;
        let mut winner = None;
        let mut i = 0;
        while i < race.attempts.len() {
            match progress(&race.attempts[i].0) {
                Progress::Pending => i += 1,
                Progress::Failed(e) => {
                    let (mut sock, addr) = race.attempts.remove(i);
                    let _ = self.registry.deregister(&mut sock);
                    race.last_error = Some((e, addr));
                    failed = true;
                }
                Progress::Connected(peer) => {
                    let (sock, addr) = race.attempts.remove(i);
                    winner = Some((sock, peer.unwrap_or(addr)));
                    break;
                }
            }
        }
        let Some((sock, peer)) = winner else {
            if failed {
                self.attempt_next(id);
            }
            return;
        };
        // The race is over, but its box stays until the connection is made (or fails in the
        // TLS handshake): it holds the host name the log lines give.
        race.stop(&mut self.timers, &self.registry);
        sock.set_nodelay();
        conn.sock = Some(sock);
        conn.interest = Some(Interest::READABLE | Interest::WRITABLE);
        conn.peer = Some(peer);
        conn.timing.set_connected(self.now);
        if conn.tls.is_some() {
            conn.state = State::Handshaking;
            self.mark_dirty(id);
        } else {
            self.made(id);
        }
    }
}

/// Cancels what is left of a race: its timer, and the attempts still in flight (each socket
/// deregistered, then closed as it is dropped).
pub(super) fn drop_race(mut race: Race, timers: &mut Timers<Ctx>, registry: &Registry) {
    race.stop(timers, registry);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v4(last: u8) -> SocketAddr {
        SocketAddr::from(([192, 0, 2, last], 80))
    }

    fn v6(last: u16) -> SocketAddr {
        SocketAddr::from(([0x2001, 0xdb8, 0, 0, 0, 0, 0, last], 80))
    }

    #[test]
    fn families_alternate_starting_with_the_first_address_family() {
        let given = vec![v6(1), v6(2), v6(3), v4(1), v4(2)];
        let order: Vec<_> = interleave(given, IpFamily::Any).into();
        assert_eq!(order, [v6(1), v4(1), v6(2), v4(2), v6(3)]);
        let given = vec![v4(1), v4(2), v6(1), v4(3), v6(2), v6(3), v6(4)];
        let order: Vec<_> = interleave(given, IpFamily::Any).into();
        assert_eq!(order, [v4(1), v6(1), v4(2), v6(2), v4(3), v6(3), v6(4)]);
    }

    #[test]
    fn a_huge_answer_is_capped_with_both_families_kept() {
        let mut given: Vec<_> = (0..1000).map(|i| v4((i % 250) as u8)).collect();
        given.extend((0..1000).map(v6));
        let order = interleave(given, IpFamily::Any);
        assert_eq!(order.len(), MAX_ATTEMPTS);
        assert_eq!(
            order.iter().filter(|a| a.is_ipv6()).count(),
            MAX_ATTEMPTS / 2
        );
    }

    #[test]
    fn one_family_keeps_the_resolver_order() {
        let given = vec![v4(3), v4(1), v4(2)];
        assert_eq!(interleave(given.clone(), IpFamily::Any), given);
        assert!(interleave(Vec::new(), IpFamily::Any).is_empty());
    }

    #[test]
    fn the_family_filter_drops_the_other_family() {
        let given = vec![v6(1), v4(1), v6(2), v4(2)];
        assert_eq!(interleave(given.clone(), IpFamily::V4), [v4(1), v4(2)]);
        assert_eq!(interleave(given.clone(), IpFamily::V6), [v6(1), v6(2)]);
        assert!(interleave(vec![v6(1)], IpFamily::V4).is_empty());
        assert_eq!(interleave(vec![v6(1)], IpFamily::Any), [v6(1)]);
        assert_eq!(interleave(vec![v4(1)], IpFamily::V4), [v4(1)]);
        assert!(interleave(Vec::new(), IpFamily::Any).is_empty());
        assert!(IpFamily::V6.allows(v6(9).ip()) && !IpFamily::V6.allows(v4(9).ip()));
    }

    #[test]
    fn the_race_error_names_the_last_failure_and_the_count() {
        let mut race = Race::new("h.test".to_string(), DEFAULT_ATTEMPT_DELAY, IpFamily::Any);
        assert!(matches!(race.error(), TransportError::Dns(m) if m.contains("h.test")));
        race.tried = 1;
        race.last_error = Some((io::ErrorKind::ConnectionRefused.into(), v4(1)));
        assert_eq!(race.error(), TransportError::ConnectionRefused);
        race.tried = 3;
        race.last_error = Some((io::ErrorKind::ConnectionRefused.into(), v6(2)));
        let error = race.error();
        assert_eq!(
            error,
            TransportError::AllAttemptsFailed {
                tried: 3,
                last_addr: v6(2),
                last: Box::new(TransportError::ConnectionRefused),
            }
        );
        assert_eq!(error.last(), &TransportError::ConnectionRefused);
        assert_eq!(
            error.to_string(),
            "all 3 addresses failed; the last, [2001:db8::2]:80: connection refused"
        );
    }
}
