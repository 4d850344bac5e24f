//! A slab addressed by generational ids: the one place that checks generations.

use std::marker::PhantomData;

use slab::Slab;

use super::ids::SlotId;

/// Past this many entries a full slab grows by a quarter, not by doubling: a slab of
/// 10,000 entries then has at most 2,500 spare slots instead of up to 10,000 (growth stays
/// amortised O(1), and a large array is moved by the allocator's remap, not copied).
const GEOMETRIC_LIMIT: usize = 1024;

/// Makes room for one more entry in `slab`, a quarter more at a time once it is large: the
/// growth policy of every large table of weft (the reactor's and the agent's).
pub(crate) fn reserve_for_one<T>(slab: &mut Slab<T>) {
    let capacity = slab.capacity();
    if slab.len() == capacity && capacity >= GEOMETRIC_LIMIT {
        slab.reserve_exact(capacity / 4);
    }
}

/// An entry that remembers the generation of the id it was stored under.
pub(super) trait Generational {
    fn generation(&self) -> u32;
}

/// Entries of type `T` named by ids of type `K`; a stale id finds nothing.
pub(super) struct Slots<T, K> {
    slab: Slab<T>,
    _ids: PhantomData<K>,
}

impl<T: Generational, K: SlotId> Slots<T, K> {
    pub(super) fn new() -> Self {
        Slots {
            slab: Slab::new(),
            _ids: PhantomData,
        }
    }

    pub(super) fn get(&self, id: K) -> Option<&T> {
        self.slab
            .get(id.index() as usize)
            .filter(|e| e.generation() == id.generation())
    }

    pub(super) fn get_mut(&mut self, id: K) -> Option<&mut T> {
        self.slab
            .get_mut(id.index() as usize)
            .filter(|e| e.generation() == id.generation())
    }

    pub(super) fn contains(&self, id: K) -> bool {
        self.get(id).is_some()
    }

    /// The id the next insert will get, given its generation (for registering a socket
    /// before the entry exists).
    pub(super) fn next_id(&self, generation: u32) -> K {
        K::from_parts(self.slab.vacant_key() as u32, generation)
    }

    pub(super) fn insert(&mut self, entry: T) -> K {
        reserve_for_one(&mut self.slab);
        let generation = entry.generation();
        K::from_parts(self.slab.insert(entry) as u32, generation)
    }

    pub(super) fn remove(&mut self, id: K) -> Option<T> {
        self.get(id)?;
        Some(self.slab.remove(id.index() as usize))
    }

    pub(super) fn ids(&self) -> impl Iterator<Item = (K, &T)> {
        self.slab
            .iter()
            .map(|(index, e)| (K::from_parts(index as u32, e.generation()), e))
    }

    pub(super) fn len(&self) -> usize {
        self.slab.len()
    }

    #[cfg(test)]
    pub(super) fn is_empty(&self) -> bool {
        self.slab.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::reactor::ConnId;

    struct Entry(u32);

    impl Generational for Entry {
        fn generation(&self) -> u32 {
            self.0
        }
    }

    #[test]
    fn a_large_slab_grows_by_a_quarter() {
        let mut slab = Slab::with_capacity(GEOMETRIC_LIMIT);
        for i in 0..GEOMETRIC_LIMIT {
            slab.insert(i);
        }
        let before = slab.capacity();
        reserve_for_one(&mut slab);
        slab.insert(0);
        assert!(slab.capacity() > before);
        assert!(slab.capacity() <= before + before / 4 + 1);
    }

    #[test]
    fn a_small_slab_is_left_to_its_vector() {
        let mut slab: Slab<u8> = Slab::new();
        reserve_for_one(&mut slab);
        assert_eq!(slab.capacity(), 0);
    }

    #[test]
    fn a_large_table_grows_by_a_quarter_and_ids_stay_valid() {
        let mut slots: Slots<Entry, ConnId> = Slots::new();
        let ids: Vec<ConnId> = (1..=10_000).map(|g| slots.insert(Entry(g))).collect();
        assert!(
            slots.slab.capacity() <= 10_000 + 10_000 / 4,
            "capacity {}",
            slots.slab.capacity()
        );
        for (g, id) in (1..=10_000).zip(&ids) {
            assert_eq!(slots.get(*id).map(|e| e.0), Some(g));
        }
        assert!(slots.remove(ids[0]).is_some());
        assert!(slots.get(ids[0]).is_none());
        assert_eq!(slots.len(), 9_999);
    }
}
