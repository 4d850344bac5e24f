//! Handles and the mio tokens they become.
//!
//! A token carries a 32-bit slot index, a 31-bit generation and a listener flag, so an event
//! for a closed connection never reaches a newer one that reuses its slot.

use mio::Token;

/// Token of the cross-thread waker.
pub(super) const WAKER_TOKEN: Token = Token(usize::MAX);
/// Set in the tokens of listeners.
const LISTENER_FLAG: usize = 1 << 63;
/// Generations are 31 bits so they fit in a token next to the 32-bit index and the flag.
pub(super) const GENERATION_MASK: u32 = 0x7FFF_FFFF;

const _: () = assert!(usize::BITS >= 64, "weft's reactor needs a 64-bit target");

/// Handle to a connection. Copyable; generational, so a handle to a closed connection never
/// reaches a newer connection that reuses the slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// `#<slot>.<generation>`, as log lines name connections.
impl std::fmt::Display for ConnId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "#{}.{}", self.index, self.generation)
    }
}

impl ConnId {
    /// A handle that names no connection (generation 0 is never given out).
    pub(crate) const STALE: ConnId = ConnId {
        index: u32::MAX,
        generation: 0,
    };

    /// The reactor slot and generation: owners may index their own tables by slot (dense,
    /// reused) instead of hashing the handle, checking the generation.
    pub(crate) fn slot(self) -> (usize, u32) {
        (self.index as usize, self.generation)
    }
}

/// Handle to a handler (a [`Protocol`](super::Protocol) registered with the reactor).
/// Generational.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HandlerId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// Handle to a pending timer. Cancelling a timer that already fired is a no-op.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TimerId(pub(super) u64);

/// Handle to a listening socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct ListenerId {
    pub(super) index: u32,
    pub(super) generation: u32,
}

/// A generational handle into a [`Slots`](super::slots::Slots).
pub(super) trait SlotId: Copy {
    fn from_parts(index: u32, generation: u32) -> Self;
    fn index(self) -> u32;
    fn generation(self) -> u32;
}

macro_rules! slot_id {
    ($($ty:ident),*) => {$(
        impl SlotId for $ty {
            fn from_parts(index: u32, generation: u32) -> Self {
                $ty { index, generation }
            }
            fn index(self) -> u32 {
                self.index
            }
            fn generation(self) -> u32 {
                self.generation
            }
        }
    )*};
}
slot_id!(ConnId, HandlerId, ListenerId);

pub(super) fn conn_token(id: ConnId) -> Token {
    Token(((id.generation as usize) << 32) | id.index as usize)
}

pub(super) fn listener_token(id: ListenerId) -> Token {
    Token(LISTENER_FLAG | ((id.generation as usize) << 32) | id.index as usize)
}

/// What a readiness token names.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Source {
    Waker,
    Conn(ConnId),
    Listener(ListenerId),
}

pub(super) fn decode_token(token: Token) -> Source {
    if token == WAKER_TOKEN {
        return Source::Waker;
    }
    let raw = token.0;
    let index = raw as u32;
    let generation = ((raw >> 32) as u32) & GENERATION_MASK;
    if raw & LISTENER_FLAG != 0 {
        Source::Listener(ListenerId { index, generation })
    } else {
        Source::Conn(ConnId { index, generation })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_round_trip() {
        let conn = ConnId {
            index: 7,
            generation: GENERATION_MASK,
        };
        assert_eq!(decode_token(conn_token(conn)), Source::Conn(conn));
        let listener = ListenerId {
            index: u32::MAX - 1,
            generation: 3,
        };
        assert_eq!(
            decode_token(listener_token(listener)),
            Source::Listener(listener)
        );
        assert_ne!(listener_token(listener), WAKER_TOKEN);
        assert_eq!(decode_token(WAKER_TOKEN), Source::Waker);
    }
}
