//! The timer heap: a binary heap of `(deadline, seq)` with lazy cancellation.
//!
//! Deadlines are kept as nanoseconds after the heap was made (16 bytes an entry rather than
//! the 24 of an `Instant` and the sequence number): an idle pooled connection keeps one
//! timer, so at 10,000 connections the heap is one of the larger tables.
//!
//! The live timers are in a map keyed by sequence number; the heap may hold entries of
//! cancelled timers, which are skipped (and popped from the top eagerly, so the top of the heap
//! is always a live timer and [`Timers::next_deadline`] is exact).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rustc_hash::FxHashMap;
use std::time::{Duration, Instant};

/// What a timer does when it fires.
pub(super) enum TimerKind<C> {
    /// A closure (`Ctx::call_later`).
    Call(Box<dyn FnOnce(&mut C)>),
    /// A handler's `timer_fired` (`Ctx::set_timer`).
    Handler(super::HandlerId, u64),
    /// The connect timeout of a connection.
    ConnectTimeout(super::ConnId),
    /// The Happy Eyeballs attempt delay of a connection: time to try its next address.
    AttemptDelay(super::ConnId),
}

/// Capacity from which the tables are shrunk once mostly empty.
const SHRINK_FROM: usize = 1024;

pub(super) struct Timers<C> {
    /// What deadlines are counted from.
    epoch: Instant,
    heap: BinaryHeap<Reverse<(u64, u64)>>,
    /// Keyed by sequence number (ours, never a peer's): a fast hash.
    live: FxHashMap<u64, TimerKind<C>>,
    next_seq: u64,
}

impl<C> Timers<C> {
    pub(super) fn new() -> Self {
        Timers {
            epoch: Instant::now(),
            heap: BinaryHeap::new(),
            live: FxHashMap::default(),
            next_seq: 0,
        }
    }

    pub(super) fn insert(&mut self, deadline: Instant, kind: TimerKind<C>) -> u64 {
        let seq = self.next_seq;
        self.next_seq += 1;
        self.heap.push(Reverse((self.nanos(deadline), seq)));
        self.live.insert(seq, kind);
        seq
    }

    /// Removes a pending timer; `false` if it already fired or was cancelled.
    pub(super) fn cancel(&mut self, seq: u64) -> bool {
        let found = self.live.remove(&seq).is_some();
        if found {
            self.prune();
        }
        found
    }

    /// Whether `seq` is still pending.
    pub(super) fn contains(&self, seq: u64) -> bool {
        self.live.contains_key(&seq)
    }

    pub(super) fn len(&self) -> usize {
        self.live.len()
    }

    /// The sequence number the next timer will get (timers created from now on have a
    /// sequence number at least this).
    pub(super) fn next_seq(&self) -> u64 {
        self.next_seq
    }

    pub(super) fn next_deadline(&self) -> Option<Instant> {
        let &Reverse((nanos, _)) = self.heap.peek()?;
        // `None` only where `Instant` cannot reach 584 years ahead: a timer that never fires.
        self.epoch.checked_add(Duration::from_nanos(nanos))
    }

    /// `at` as nanoseconds after the epoch: 0 for an instant before it (a deadline already
    /// past when the heap was made fires at once, as it would have), and at most
    /// `u64::MAX` (584 years).
    fn nanos(&self, at: Instant) -> u64 {
        let nanos = at.saturating_duration_since(self.epoch).as_nanos();
        u64::try_from(nanos).unwrap_or(u64::MAX)
    }

    /// Pops the earliest timer if it is due at `now` and was created before `seq_limit`.
    pub(super) fn pop_due(&mut self, now: Instant, seq_limit: u64) -> Option<TimerKind<C>> {
        let now = self.nanos(now);
        loop {
            let &Reverse((deadline, seq)) = self.heap.peek()?;
            if deadline > now || seq >= seq_limit {
                return None;
            }
            self.heap.pop();
            if let Some(kind) = self.live.remove(&seq) {
                self.prune();
                return Some(kind);
            }
        }
    }

    /// Pops cancelled entries off the top, and rebuilds the heap when most of it is dead.
    fn prune(&mut self) {
        while let Some(&Reverse((_, seq))) = self.heap.peek() {
            if self.live.contains_key(&seq) {
                break;
            }
            self.heap.pop();
        }
        if self.heap.len() > 64 && self.heap.len() > 2 * self.live.len() {
            let live = &self.live;
            self.heap.retain(|Reverse((_, seq))| live.contains_key(seq));
        }
        // A burst's tables (10,000 connect timeouts at once) go back once it has drained,
        // rather than staying at its size under the few timers left (idle connections keep
        // none of their own).
        if self.live.capacity() >= SHRINK_FROM && self.live.len() < self.live.capacity() / 8 {
            self.live.shrink_to(2 * self.live.len());
            let live = &self.live;
            self.heap.retain(|Reverse((_, seq))| live.contains_key(seq));
            self.heap.shrink_to(2 * self.heap.len());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call() -> TimerKind<()> {
        TimerKind::Call(Box::new(|_| {}))
    }

    #[test]
    fn pops_in_deadline_then_creation_order() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        let late = timers.insert(t0 + Duration::from_millis(2), call());
        let a = timers.insert(t0, call());
        let b = timers.insert(t0, call());
        assert_eq!(timers.len(), 3);
        let limit = timers.next_seq();
        let mut order = Vec::new();
        while let Some(_kind) = timers.pop_due(t0 + Duration::from_millis(5), limit) {
            order.push(timers.len());
        }
        assert_eq!(order, vec![2, 1, 0]);
        assert!(!timers.cancel(a) && !timers.cancel(b) && !timers.cancel(late));
    }

    #[test]
    fn top_of_heap_is_always_live() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        let first = timers.insert(t0, call());
        timers.insert(t0 + Duration::from_secs(1), call());
        assert_eq!(timers.next_deadline(), Some(t0));
        assert!(timers.cancel(first));
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
    }

    #[test]
    fn timers_created_during_firing_wait() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        timers.insert(t0, call());
        let limit = timers.next_seq();
        timers.insert(t0, call());
        assert!(timers.pop_due(t0, limit).is_some());
        assert!(timers.pop_due(t0, limit).is_none());
        assert_eq!(timers.len(), 1);
    }

    #[test]
    fn deadlines_come_back_exactly_and_past_ones_fire_at_once_in_order() {
        let before = Instant::now();
        let mut timers = Timers::new();
        let at = Instant::now() + Duration::new(3, 123_456_789);
        timers.insert(at, call());
        assert_eq!(timers.next_deadline(), Some(at));
        // Instants before the heap was made count as its epoch: due at once, in creation
        // order, ahead of the later one.
        let first = timers.insert(before, call());
        let second = timers.insert(before - Duration::from_secs(1), call());
        assert!(timers.next_deadline().is_some_and(|d| d <= Instant::now()));
        let limit = timers.next_seq();
        assert!(timers.pop_due(Instant::now(), limit).is_some());
        assert!(!timers.contains(first) && timers.contains(second));
        assert!(timers.pop_due(Instant::now(), limit).is_some());
        assert!(timers.pop_due(Instant::now(), limit).is_none());
        assert_eq!(timers.next_deadline(), Some(at));
    }

    #[test]
    fn a_deadline_centuries_away_is_kept_without_overflow() {
        let mut timers = Timers::new();
        let now = Instant::now();
        if let Some(far) = now.checked_add(Duration::from_secs(700 * 365 * 24 * 3600)) {
            timers.insert(far, call());
            let next = timers.next_deadline();
            assert!(next.is_none_or(|d| d > now + Duration::from_secs(500 * 365 * 24 * 3600)));
            assert!(timers.pop_due(now, timers.next_seq()).is_none());
        }
    }

    /// 16 bytes a heap entry: one per pooled connection's timer.
    #[test]
    fn heap_entries_stay_small() {
        fn entry_size<T>(_: &BinaryHeap<T>) -> usize {
            std::mem::size_of::<T>()
        }
        let timers: Timers<()> = Timers::new();
        assert_eq!(entry_size(&timers.heap), 16);
    }

    #[test]
    fn a_drained_burst_gives_its_tables_back() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        let kept = timers.insert(t0 + Duration::from_secs(1), call());
        let ids: Vec<u64> = (0..10_000)
            .map(|i| timers.insert(t0 + Duration::from_secs(2 + i), call()))
            .collect();
        assert!(timers.live.capacity() >= 10_000);
        for id in ids {
            assert!(timers.cancel(id));
        }
        assert_eq!(timers.len(), 1);
        assert!(
            timers.live.capacity() < SHRINK_FROM,
            "{}",
            timers.live.capacity()
        );
        assert!(
            timers.heap.capacity() < SHRINK_FROM,
            "{}",
            timers.heap.capacity()
        );
        assert_eq!(timers.next_deadline(), Some(t0 + Duration::from_secs(1)));
        assert!(timers.cancel(kept));
    }

    #[test]
    fn dead_entries_are_compacted() {
        let mut timers = Timers::new();
        let t0 = Instant::now();
        timers.insert(t0, call());
        let ids: Vec<u64> = (0..1000)
            .map(|i| timers.insert(t0 + Duration::from_secs(1 + i), call()))
            .collect();
        for id in ids {
            timers.cancel(id);
        }
        assert_eq!(timers.len(), 1);
        assert!(timers.heap.len() <= 64 + 2);
    }
}
