//! The agent's per-connection and per-request state, stored inline in a slab rather than
//! boxed one by one or inline in a hash table.
//!
//! An idle pool of thousands of connections is mostly its connection table, and a burst of
//! requests mostly its request table. A box per entry put each one among the short-lived
//! allocations of the burst (connect races, buffers, callbacks), and a hash table of
//! several hundred bytes a slot is reallocated, copied and freed as it grows: either way
//! the allocator ends up holding holes it does not give back while the pool sits idle. A
//! slab is one large array, grown in place by the allocator (a quarter at a time once large,
//! see [`reserve_for_one`]) and given back whole once empty.

use std::hash::Hash;

use rustc_hash::FxHashMap;
use slab::Slab;

use crate::reactor::reserve_for_one;

/// Entries keyed by `K`, stored in a slab; the hash index maps keys to slab positions.
pub(super) struct SlabMap<K, V> {
    slots: Slab<V>,
    index: FxHashMap<K, u32>,
}

impl<K, V> Default for SlabMap<K, V> {
    fn default() -> Self {
        SlabMap {
            slots: Slab::new(),
            index: FxHashMap::default(),
        }
    }
}

impl<K: Copy + Eq + Hash, V> SlabMap<K, V> {
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let &at = self.index.get(key)?;
        self.slots.get(at as usize)
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let &at = self.index.get(key)?;
        self.slots.get_mut(at as usize)
    }

    /// Adds `value` under `key`, replacing (and dropping) any value already there.
    pub(super) fn insert(&mut self, key: K, value: V) {
        if let Some(old) = self.get_mut(&key) {
            *old = value;
            return;
        }
        reserve_for_one(&mut self.slots);
        let at = self.slots.insert(value);
        // Positions fit in u32: as many entries would be as many open sockets or requests
        // in flight, far beyond what one reactor can hold.
        self.index.insert(key, at as u32);
    }

    pub(super) fn remove(&mut self, key: &K) -> Option<V> {
        let at = self.index.remove(key)?;
        let value = self.slots.try_remove(at as usize);
        if self.slots.is_empty() && self.slots.capacity() > KEPT {
            // Nothing left to keep in place: the burst's array goes back to the system.
            self.slots = Slab::new();
        }
        // The index shrinks once a quarter full, so the cost stays amortised O(1).
        if self.index.capacity() > KEPT && self.index.len() * 4 < self.index.capacity() {
            self.index.shrink_to(self.index.len() * 2);
        }
        value
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn keys(&self) -> impl Iterator<Item = &K> {
        self.index.keys()
    }
}

/// Entries below which an emptied table keeps its memory (a steady load does not reallocate).
const KEPT: usize = 64;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_are_found_replaced_and_removed_by_key() {
        let mut map: SlabMap<u64, String> = SlabMap::default();
        map.insert(7, "a".into());
        map.insert(9, "b".into());
        map.insert(7, "c".into());
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&7).map(String::as_str), Some("c"));
        map.get_mut(&9).expect("present").push('!');
        assert_eq!(map.remove(&9).as_deref(), Some("b!"));
        assert_eq!(map.remove(&9), None);
        assert_eq!(map.get(&9), None);
        let keys: Vec<u64> = map.keys().copied().collect();
        assert_eq!(keys, [7]);
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_drained() {
        let mut map: SlabMap<u64, [u8; 256]> = SlabMap::default();
        for i in 0..10_000 {
            map.insert(i, [0; 256]);
        }
        // Grown a quarter at a time: far less spare room than doubling would leave.
        assert!(map.slots.capacity() < 10_000 + 10_000 / 4 + 1);
        for i in 0..9_990 {
            map.remove(&i);
        }
        assert!(
            map.index.capacity() < 100,
            "index kept {}",
            map.index.capacity()
        );
        for i in 9_990..10_000 {
            assert!(map.remove(&i).is_some());
        }
        assert_eq!(map.len(), 0);
        assert_eq!(map.slots.capacity(), 0);
    }
}
