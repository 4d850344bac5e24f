//! The agent's per-connection and per-request state, stored inline in one array (a slab for
//! connections, an array by id slot for requests) rather than boxed one by one or inline in
//! a hash table.
//!
//! An idle pool of thousands of connections is mostly its connection table, and a burst of
//! requests mostly its request table. A box per entry put each one among the short-lived
//! allocations of the burst (connect races, buffers, callbacks), and a hash table of
//! several hundred bytes a slot is reallocated, copied and freed as it grows: either way
//! the allocator ends up holding holes it does not give back while the pool sits idle. A
//! slab is one large array, grown in place by the allocator (a quarter at a time once large,
//! see [`reserve_for_one`]) and given back once empty (the request array is shrunk in place).

use std::hash::Hash;
use std::marker::PhantomData;

use rustc_hash::FxHashMap;
use slab::Slab;

use crate::client::msg::RequestId;
use crate::reactor::{ConnId, reserve_for_one};

/// Entries keyed by `K`, stored in a slab; a [`SlotIndex`] maps each key (which names a slot
/// and a generation) to its slab position.
pub(super) struct SlabMap<K, V> {
    slots: Slab<V>,
    index: SlotIndex,
    _key: PhantomData<K>,
}

impl<K, V> Default for SlabMap<K, V> {
    fn default() -> Self {
        SlabMap {
            slots: Slab::new(),
            index: SlotIndex::default(),
            _key: PhantomData,
        }
    }
}

/// A key that names a reactor slot and its generation (never 0).
pub(super) trait Slotted {
    fn reactor_slot(&self) -> (usize, u32);
}

impl Slotted for ConnId {
    fn reactor_slot(&self) -> (usize, u32) {
        ConnId::slot(*self)
    }
}

/// An index by the reactor slot a key carries: an array lookup and a generation check where
/// a hash table hashed and probed, on each of the dozen lookups of a connection per request.
/// It takes 8 bytes per reactor slot up to the highest in use: the reactor's own slots are
/// tens of times larger.
#[derive(Default)]
pub(super) struct SlotIndex {
    /// By reactor slot: the generation of the key there (0: none) and its slab position.
    at: Vec<(u32, u32)>,
    /// Entries in `at`.
    len: usize,
    /// Keys whose slot in `at` was taken: an entry kept after the reactor let its slot go
    /// (a connection lost with bytes still stashed for a paused body) and a newer
    /// connection in that slot.
    overflow: FxHashMap<(usize, u32), u32>,
}

impl SlotIndex {
    // Inlined: two tables (connections, requests) share this code, and each of the
    // dozen lookups per request is an array access and a compare.
    #[inline]
    fn find<K: Slotted>(&self, key: &K) -> Option<u32> {
        let (slot, generation) = key.reactor_slot();
        match self.at.get(slot) {
            Some(&(g, at)) if g == generation && g != 0 => Some(at),
            _ if self.overflow.is_empty() => None,
            _ => self.find_overflow(slot, generation),
        }
    }

    /// Out of line and cold: inlined, the key's hash was computed ahead of every lookup in
    /// a loop (the compiler hoists it), though the overflow is almost always empty.
    #[cold]
    #[inline(never)]
    fn find_overflow(&self, slot: usize, generation: u32) -> Option<u32> {
        self.overflow.get(&(slot, generation)).copied()
    }

    /// The position of `key` if it is there; else records `new` for it.
    fn find_or_add<K: Slotted>(&mut self, key: K, new: u32) -> Option<u32> {
        if let Some(at) = self.find(&key) {
            return Some(at);
        }
        let (slot, generation) = key.reactor_slot();
        if slot >= self.at.len() {
            self.at.resize(slot + 1, (0, 0));
        }
        if self.at[slot].0 == 0 {
            self.at[slot] = (generation, new);
            self.len += 1;
        } else {
            self.overflow.insert((slot, generation), new);
        }
        None
    }

    fn remove<K: Slotted>(&mut self, key: &K) -> Option<u32> {
        let (slot, generation) = key.reactor_slot();
        match self.at.get(slot) {
            Some(&(g, at)) if g == generation && g != 0 => {
                self.at[slot] = (0, 0);
                self.len -= 1;
                Some(at)
            }
            _ => self.overflow.remove(&(slot, generation)),
        }
    }

    /// Gives back memory once the index is mostly empty (amortised O(1)).
    fn tidy(&mut self) {
        if self.overflow.is_empty() && self.overflow.capacity() > 0 {
            self.overflow = FxHashMap::default();
        }
        if self.len == 0 {
            if self.at.capacity() > KEPT {
                self.at = Vec::new();
            } else {
                self.at.clear();
            }
            return;
        }
        // Each slot dropped here was pushed once: amortised O(1).
        while self.at.last().is_some_and(|e| e.0 == 0) {
            self.at.pop();
        }
        if self.at.capacity() > KEPT && self.at.len() * 4 < self.at.capacity() {
            self.at.shrink_to(self.at.len() * 2);
        }
    }
}

impl<K: Slotted, V> SlabMap<K, V> {
    #[inline]
    pub(super) fn get(&self, key: &K) -> Option<&V> {
        let at = self.index.find(key)?;
        self.slots.get(at as usize)
    }

    #[inline]
    pub(super) fn get_mut(&mut self, key: &K) -> Option<&mut V> {
        let at = self.index.find(key)?;
        self.slots.get_mut(at as usize)
    }

    /// Adds `value` under `key`, replacing (and dropping) any value already there.
    pub(super) fn insert(&mut self, key: K, value: V) {
        reserve_for_one(&mut self.slots);
        // Positions fit in u32: as many entries would be as many open sockets or requests in
        // flight, far beyond what one reactor can hold.
        let next = self.slots.vacant_key() as u32;
        match self.index.find_or_add(key, next) {
            Some(at) => self.slots[at as usize] = value,
            None => {
                let at = self.slots.insert(value);
                debug_assert_eq!(at as u32, next);
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
        self.index.tidy();
        value
    }

    pub(super) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }
}

#[cfg(test)]
impl<K, V> SlabMap<K, V> {
    /// The slot and generation of every key.
    fn slots(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let at = self.index.at.iter().enumerate();
        at.filter(|(_, e)| e.0 != 0)
            .map(|(slot, e)| (slot, e.0))
            .chain(self.index.overflow.keys().copied())
    }
}

/// Entries below which an emptied table keeps its memory (a steady load does not reallocate).
const KEPT: usize = 64;

/// What an emptied large request table is shrunk to (kept non-zero: a shrink to nothing is
/// a free).
const SHRUNK: usize = 16;

/// The agent's requests, each stored at the slot its [`RequestId`] names (the agent's
/// `RequestIds` gives the slots out and takes them back, so it is the only free list): a
/// lookup is an array access and a generation check, with no index between the id and the
/// entry; a request is written once where it lives and dropped there when it ends.
pub(super) struct ReqTable<V> {
    /// By slot: the generation of the request there (0: none) and the request.
    at: Vec<(u32, Option<V>)>,
    /// Requests stored.
    len: usize,
}

impl<V> Default for ReqTable<V> {
    fn default() -> Self {
        ReqTable {
            at: Vec::new(),
            len: 0,
        }
    }
}

impl<V> ReqTable<V> {
    #[inline]
    pub(super) fn get(&self, id: &RequestId) -> Option<&V> {
        let (slot, generation) = id.slot();
        match self.at.get(slot) {
            Some((g, value)) if *g == generation => value.as_ref(),
            _ => None,
        }
    }

    #[inline]
    pub(super) fn get_mut(&mut self, id: &RequestId) -> Option<&mut V> {
        let (slot, generation) = id.slot();
        match self.at.get_mut(slot) {
            Some((g, value)) if *g == generation => value.as_mut(),
            _ => None,
        }
    }

    /// Stores `value` at `id`'s slot (the id was just given out: its slot is free).
    #[inline]
    pub(super) fn insert(&mut self, id: RequestId, value: V) {
        self.insert_with(id, || value);
    }

    /// Stores the value `make` returns at `id`'s slot: made where it is to live, rather than
    /// made and then moved there (a request is some hundreds of bytes).
    #[inline(always)]
    pub(super) fn insert_with(&mut self, id: RequestId, make: impl FnOnce() -> V) {
        let (slot, generation) = id.slot();
        if slot >= self.at.len() {
            self.grow_to(slot + 1);
        }
        let entry = &mut self.at[slot];
        debug_assert!(entry.1.is_none(), "slot {slot} given out twice");
        if entry.1.is_none() {
            self.len += 1;
        }
        entry.0 = generation;
        entry.1 = Some(make());
    }

    /// Room for `len` slots: a quarter more at a time once large (as the slabs grow, see
    /// [`reserve_for_one`]), so a burst leaves little spare room.
    #[cold]
    fn grow_to(&mut self, len: usize) {
        let capacity = self.at.capacity();
        if len > capacity && capacity >= 1024 {
            self.at.reserve_exact((capacity / 4).max(len - capacity));
        }
        self.at.resize_with(len, || (0, None));
    }

    /// Takes request `id` out.
    pub(super) fn remove(&mut self, id: &RequestId) -> Option<V> {
        let value = self.occupied(id)?.1.take();
        self.emptied();
        value
    }

    /// Drops request `id` where it is (no move out); returns whether it was there.
    #[inline]
    pub(super) fn delete(&mut self, id: &RequestId) -> bool {
        let Some(entry) = self.occupied(id) else {
            return false;
        };
        entry.1 = None;
        self.emptied();
        true
    }

    /// The entry of request `id`, if it is there; its generation is cleared, as the caller
    /// empties it.
    #[inline]
    fn occupied(&mut self, id: &RequestId) -> Option<&mut (u32, Option<V>)> {
        let (slot, generation) = id.slot();
        let entry = self.at.get_mut(slot)?;
        if entry.0 != generation || entry.1.is_none() {
            return None;
        }
        entry.0 = 0;
        Some(entry)
    }

    /// Counts an entry just emptied, and gives memory back if the table is mostly empty.
    #[inline]
    fn emptied(&mut self) {
        self.len -= 1;
        self.tidy();
    }

    /// Gives back memory once the table is mostly empty (amortised O(1): each slot dropped
    /// was pushed once).
    #[inline]
    fn tidy(&mut self) {
        if self.len == 0 || (self.len * 4 < self.at.capacity() && self.at.capacity() > KEPT) {
            self.trim();
        }
    }

    #[cold]
    fn trim(&mut self) {
        if self.len == 0 {
            self.at.clear();
            if self.at.capacity() > KEPT {
                // Shrunk in place rather than freed, as the queues are (see `pop_trimmed`).
                self.at.shrink_to(SHRUNK);
            }
            return;
        }
        while self.at.last().is_some_and(|e| e.1.is_none()) {
            self.at.pop();
        }
        if self.at.capacity() > KEPT && self.at.len() * 4 < self.at.capacity() {
            self.at.shrink_to(self.at.len() * 2);
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The slot and generation of every request.
    pub(super) fn slots(&self) -> impl Iterator<Item = (usize, u32)> + '_ {
        let at = self.at.iter().enumerate();
        at.filter(|(_, e)| e.1.is_some())
            .map(|(slot, e)| (slot, e.0))
    }
}

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
    #[inline]
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
        let mut map: SlabMap<Slot, String> = SlabMap::default();
        let (a, b) = (Slot(7, 1), Slot(9, 1));
        map.insert(a, "a".into());
        map.insert(b, "b".into());
        map.insert(a, "c".into());
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&a).map(String::as_str), Some("c"));
        map.get_mut(&b).expect("present").push('!');
        assert_eq!(map.remove(&b).as_deref(), Some("b!"));
        assert_eq!(map.remove(&b), None);
        assert_eq!(map.get(&b), None);
        let keys: Vec<(usize, u32)> = map.slots().collect();
        assert_eq!(keys, [(7, 1)]);
    }

    #[test]
    fn a_burst_gives_its_memory_back_once_drained() {
        let mut map: SlabMap<Slot, [u8; 256]> = SlabMap::default();
        for i in 0..10_000 {
            map.insert(Slot(i, 1), [0; 256]);
        }
        // Grown a quarter at a time: far less spare room than doubling would leave.
        assert!(map.slots.capacity() < 10_000 + 10_000 / 4 + 1);
        // The highest slots go first: the index is as long as the highest slot in use.
        for i in (10..10_000).rev() {
            map.remove(&Slot(i, 1));
        }
        assert!(
            map.index.at.capacity() < 100,
            "index kept {}",
            map.index.at.capacity()
        );
        for i in 0..10 {
            assert!(map.remove(&Slot(i, 1)).is_some());
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
    /// A key with its own reactor slot and generation.
    #[derive(Clone, Copy, Debug, PartialEq, Eq)]
    struct Slot(usize, u32);

    impl Slotted for Slot {
        fn reactor_slot(&self) -> (usize, u32) {
            (self.0, self.1)
        }
    }

    #[test]
    fn slot_indexed_entries_check_the_generation_and_share_a_slot() {
        let mut map: SlabMap<Slot, &str> = SlabMap::default();
        map.insert(Slot(3, 1), "a");
        map.insert(Slot(0, 1), "b");
        assert_eq!(map.get(&Slot(3, 1)), Some(&"a"));
        // An older or newer generation of the slot is another key.
        assert_eq!(map.get(&Slot(3, 2)), None);
        assert_eq!(map.get(&Slot(9, 1)), None);
        // A newer connection in a slot whose old entry is kept: both are found.
        map.insert(Slot(3, 2), "c");
        assert_eq!(map.len(), 3);
        assert_eq!(map.get(&Slot(3, 1)), Some(&"a"));
        assert_eq!(map.get(&Slot(3, 2)), Some(&"c"));
        map.insert(Slot(3, 2), "d");
        assert_eq!(map.get(&Slot(3, 2)), Some(&"d"));
        assert_eq!(map.remove(&Slot(3, 1)), Some("a"));
        assert_eq!(map.remove(&Slot(3, 1)), None);
        assert_eq!(map.get(&Slot(3, 2)), Some(&"d"));
        *map.get_mut(&Slot(0, 1)).expect("present") = "e";
        assert_eq!(map.remove(&Slot(0, 1)), Some("e"));
        assert_eq!(map.remove(&Slot(3, 2)), Some("d"));
        assert_eq!(map.len(), 0);
        assert!(map.index.at.is_empty() && map.index.overflow.capacity() == 0);
    }

    #[test]
    fn a_stale_request_id_finds_nothing_once_its_slot_is_reused() {
        use crate::client::msg::RequestIds;
        let mut ids = RequestIds::default();
        let mut map: ReqTable<&str> = ReqTable::default();
        let old = ids.take();
        map.insert(old, "old");
        assert_eq!(map.remove(&old), Some("old"));
        ids.give_back(old);
        let new = ids.take();
        assert_eq!(new.slot().0, old.slot().0);
        map.insert(new, "new");
        assert_eq!(map.get(&old), None);
        assert!(map.get_mut(&old).is_none());
        assert_eq!(map.remove(&old), None);
        assert!(!map.delete(&old));
        assert_eq!(map.get(&new), Some(&"new"));
        let slots: Vec<(usize, u32)> = map.slots().collect();
        assert_eq!(slots, [new.slot()]);
        assert!(map.delete(&new));
        assert!(!map.delete(&new));
        assert_eq!((map.len(), map.get(&new)), (0, None));
    }

    #[test]
    fn requests_are_dropped_in_place_and_a_burst_gives_its_memory_back() {
        use crate::client::msg::RequestIds;
        use std::rc::Rc;
        let mut ids = RequestIds::default();
        let mut map: ReqTable<Rc<()>> = ReqTable::default();
        let alive = Rc::new(());
        let taken: Vec<RequestId> = (0..10_000).map(|_| ids.take()).collect();
        for &id in &taken {
            map.insert(id, alive.clone());
        }
        assert_eq!((map.len(), Rc::strong_count(&alive)), (10_000, 10_001));
        // Grown a quarter at a time: far less spare room than doubling would leave.
        assert!(
            map.at.capacity() < 10_000 + 10_000 / 4 + 1,
            "{}",
            map.at.capacity()
        );
        // The newest go first (as the slots are given back, last in first out): the array
        // shrinks with them.
        for &id in taken[10..].iter().rev() {
            assert!(map.delete(&id));
            ids.give_back(id);
        }
        assert_eq!(Rc::strong_count(&alive), 11, "dropped where they were");
        assert!(map.at.capacity() < 100, "kept {}", map.at.capacity());
        // A slot in the middle of the table.
        assert_eq!(
            map.remove(&taken[3]).map(|r| Rc::ptr_eq(&r, &alive)),
            Some(true)
        );
        ids.give_back(taken[3]);
        let again = ids.take();
        assert_eq!(again.slot().0, 3);
        map.insert(again, alive.clone());
        assert!(map.get(&taken[3]).is_none() && map.get(&again).is_some());
        for &id in taken[..10]
            .iter()
            .filter(|&&id| id != taken[3])
            .chain([&again])
        {
            assert!(map.delete(&id));
        }
        assert_eq!(map.len(), 0);
        assert!(map.at.is_empty() && map.at.capacity() <= KEPT);
        assert_eq!(Rc::strong_count(&alive), 1);
        // Shutdown fails requests in submission order: every id's slot is listed.
        let (a, b) = (ids.take(), ids.take());
        map.insert(b, alive.clone());
        map.insert(a, alive.clone());
        let mut slots: Vec<(usize, u32)> = map.slots().collect();
        slots.sort_unstable();
        assert_eq!(slots.len(), 2);
        assert!(slots.contains(&a.slot()) && slots.contains(&b.slot()));
    }

    #[test]
    fn a_slot_index_gives_its_memory_back() {
        let mut map: SlabMap<Slot, u64> = SlabMap::default();
        for i in 0..10_000 {
            map.insert(Slot(i, 1), 0);
        }
        // The high slots go first: the array shrinks with them.
        for i in (10..10_000).rev() {
            map.remove(&Slot(i, 1));
        }
        assert!(
            map.index.at.capacity() < 100,
            "kept {}",
            map.index.at.capacity()
        );
        for i in 0..10 {
            map.remove(&Slot(i, 1));
        }
        assert!(map.index.at.is_empty() && map.index.at.capacity() <= KEPT);
    }
}
