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

use std::collections::hash_map::Entry;
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
        // One hash of the key, whether it is there or not.
        match self.index.entry(key) {
            Entry::Occupied(e) => self.slots[*e.get() as usize] = value,
            Entry::Vacant(e) => {
                reserve_for_one(&mut self.slots);
                // Positions fit in u32: as many entries would be as many open sockets or
                // requests in flight, far beyond what one reactor can hold.
                e.insert(self.slots.insert(value) as u32);
            }
        }
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

/// Where an entry of a [`KeyedSlab`] sits: its slot and the generation of the entry that
/// took it, so a handle kept past its entry's removal finds nothing rather than a newcomer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) struct Handle {
    slot: u32,
    generation: u32,
}

/// Entries found by key once, then by [`Handle`] without hashing: the pool's hosts, whose
/// keys (scheme, host name, port, TLS settings, proxy) cost a hash of strings each lookup,
/// and which the pool looked up several times per request.
pub(super) struct KeyedSlab<K, V> {
    slots: Slab<(K, u32, V)>,
    index: FxHashMap<K, u32>,
    generation: u32,
}

impl<K, V> Default for KeyedSlab<K, V> {
    fn default() -> Self {
        KeyedSlab {
            slots: Slab::new(),
            index: FxHashMap::default(),
            generation: 0,
        }
    }
}

impl<K: Clone + Eq + Hash, V: Default> KeyedSlab<K, V> {
    /// The entry under `key`, made (empty) if there is none.
    pub(super) fn find_or_insert(&mut self, key: &K) -> Handle {
        if let Some(&slot) = self.index.get(key) {
            let generation = self.slots[slot as usize].1;
            return Handle { slot, generation };
        }
        self.generation = self.generation.wrapping_add(1);
        let generation = self.generation;
        // Positions fit in u32, as in `SlabMap`.
        let slot = self.slots.insert((key.clone(), generation, V::default())) as u32;
        self.index.insert(key.clone(), slot);
        Handle { slot, generation }
    }

    /// The value under `key`, made (empty) if there is none (as a map's `entry().or_default()`).
    pub(super) fn entry(&mut self, key: K) -> OrDefault<'_, V> {
        let at = self.find_or_insert(&key);
        OrDefault(&mut self.slots[at.slot as usize].2)
    }

    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let &slot = self.index.get(key)?;
        self.slots.get_mut(slot as usize).map(|e| &mut e.2)
    }

    /// The entry `at` points to, if it is still there.
    pub(super) fn at_mut(&mut self, at: Handle) -> Option<&mut V> {
        match self.slots.get_mut(at.slot as usize) {
            Some(e) if e.1 == at.generation => Some(&mut e.2),
            _ => None,
        }
    }

    /// The entry `at` points to or, should it be gone, the one under `key`.
    pub(super) fn at_or_get_mut(&mut self, at: Handle, key: &K) -> Option<&mut V> {
        if self.at_mut(at).is_some() {
            return self.at_mut(at);
        }
        self.get_mut(key)
    }

    /// Every entry with its handle.
    pub(super) fn iter(&self) -> impl Iterator<Item = (Handle, &V)> {
        self.slots.iter().map(|(slot, e)| {
            let at = Handle {
                slot: slot as u32,
                generation: e.1,
            };
            (at, &e.2)
        })
    }

    pub(super) fn values(&self) -> impl Iterator<Item = &V> {
        self.slots.iter().map(|(_, e)| &e.2)
    }

    pub(super) fn values_mut(&mut self) -> impl Iterator<Item = &mut V> {
        self.slots.iter_mut().map(|(_, e)| &mut e.2)
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    /// Keeps the entries `keep` says yes to; the others' handles find nothing from now on.
    pub(super) fn retain(&mut self, mut keep: impl FnMut(&V) -> bool) {
        let index = &mut self.index;
        self.slots.retain(|_, e| {
            let kept = keep(&e.2);
            if !kept {
                index.remove(&e.0);
            }
            kept
        });
        if self.slots.is_empty() && self.slots.capacity() > KEPT {
            self.slots = Slab::new();
        }
        if self.index.capacity() > KEPT && self.index.len() * 4 < self.index.capacity() {
            self.index.shrink_to(self.index.len() * 2);
        }
    }
}

/// The value of [`KeyedSlab::entry`].
pub(super) struct OrDefault<'a, V>(&'a mut V);

impl<'a, V> OrDefault<'a, V> {
    pub(super) fn or_default(self) -> &'a mut V {
        self.0
    }
}

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
    #[test]
    fn keyed_entries_are_found_by_handle_until_removed() {
        let mut map: KeyedSlab<String, Vec<u32>> = KeyedSlab::default();
        let a = map.find_or_insert(&"a".to_string());
        assert_eq!(map.find_or_insert(&"a".to_string()), a);
        map.entry("b".to_string()).or_default().push(2);
        map.at_mut(a).expect("present").push(1);
        assert_eq!(map.get_mut(&"a".to_string()).map(|v| v.len()), Some(1));
        assert_eq!(map.len(), 2);
        let handles: Vec<Handle> = map.iter().map(|(h, _)| h).collect();
        assert!(handles.contains(&a));
        map.retain(|v| v.first() != Some(&1));
        assert_eq!(map.len(), 1);
        // A stale handle finds nothing, even once its slot holds another entry.
        assert!(map.at_mut(a).is_none());
        assert!(map.get_mut(&"a".to_string()).is_none());
        let c = map.find_or_insert(&"c".to_string());
        assert!(map.at_mut(a).is_none());
        assert!(map.at_mut(c).is_some_and(|v| v.is_empty()));
        assert_eq!(map.values().count(), 2);
        assert_eq!(map.values_mut().count(), 2);
    }

    #[test]
    fn keyed_entries_give_their_memory_back_once_drained() {
        let mut map: KeyedSlab<u64, u64> = KeyedSlab::default();
        for i in 0..1_000 {
            *map.entry(i).or_default() = i;
        }
        map.retain(|_| false);
        assert_eq!(map.len(), 0);
        assert_eq!(map.slots.capacity(), 0);
        assert!(
            map.index.capacity() < 100,
            "index kept {}",
            map.index.capacity()
        );
    }
}
