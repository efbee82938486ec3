//! Per-thread storage that never panics, even while the thread's
//! thread-locals are being destroyed.
//!
//! A pool keeps per-thread state (a strategy's pockets, the stats layer's
//! counters) and may be used at any point of a thread's exit: a guard kept in
//! a `thread_local!` is returned by that thread-local's destructor, and
//! nothing orders that destructor against anybody else's. The `thread_local`
//! crate panics there (its `get_or*` asks for a thread id through
//! `LocalKey::with`, which panics once its id guard has been destroyed), and a
//! panic in a thread-local destructor aborts the process. So this module does
//! the same job with one difference: [`ThreadSlots::get`] returns `None` once
//! the calling thread can no longer hold a slot, and callers fall back to
//! something shared.
//!
//! # How
//!
//! Each thread that asks gets a small *index*, the lowest one free, and gives
//! it back when it exits (through a thread-local whose destructor frees it),
//! so indices stay dense: they count the threads alive at once, not every
//! thread that ever ran. A `ThreadSlots<T>` keeps one `T` per index, in
//! buckets of doubling size made on first use, so an index maps to its slot
//! without a lock. A later thread that receives a freed index inherits the
//! slot of the thread that had it, contents and all.
//!
//! The index lives in a `const` thread-local with no destructor, which can be
//! read at any time, even during thread exit. A second thread-local,
//! registered when the index is assigned, frees the index in its destructor
//! and marks the thread as gone; from then on `get` returns `None`. Getting an
//! index needs that destructor registered: `LocalKey::try_with` does it, and
//! says `Err` (never panics) if the thread is too far into its exit.
//!
//! # The per-thread cache
//!
//! Finding a slot from the index costs a dozen instructions (bucket
//! arithmetic, the bucket's `OnceLock`, a bounds check), paid twice per get
//! and return on a hot path that is a few dozen instructions long. So each
//! thread keeps a small direct-mapped cache, in a `const` thread-local with no
//! destructor: for a few `ThreadSlots` it used last, the `ThreadSlots`' id and
//! a pointer to this thread's slot in it. A hit is two thread-local loads and
//! a compare. Ids come from a global counter and are never reused, so a
//! matching id means the `ThreadSlots` is `self`, alive, and its buckets
//! (which never move or shrink while it lives) still hold the slot. The
//! cache is emptied when the thread gives its index back, before any other
//! thread can receive that index. This is the module's one `unsafe` block.

use std::cell::Cell;
use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::fmt;
use std::ptr::NonNull;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Mutex, OnceLock};

/// Slots in the first bucket; bucket `k` holds `FIRST << k`.
const FIRST: usize = 8;
/// Buckets: room for `FIRST * (2^BUCKETS - 1)` threads alive at once (about
/// half a million). A thread beyond that gets no slot and uses the shared
/// path, which works, only slower. Each bucket costs 24 bytes before use.
const BUCKETS: usize = 16;

/// One `T` per thread alive, made with `T::default()` when its bucket is
/// first needed.
pub struct ThreadSlots<T> {
    /// Unique in the process, never 0: the per-thread cache's tag.
    id: usize,
    buckets: [OnceLock<Box<[T]>>; BUCKETS],
}

impl<T> ThreadSlots<T> {
    /// No slots yet: buckets are made on first use.
    pub fn new() -> Self {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        ThreadSlots {
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            buckets: [const { OnceLock::new() }; BUCKETS],
        }
    }

    /// Every slot made so far, of live threads, exited ones and indices not
    /// handed out yet alike (all of them are `T::default()` until used).
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        self.buckets
            .iter()
            .filter_map(OnceLock::get)
            .flat_map(|bucket| bucket.iter())
    }

    /// Every slot made so far, for an owner with exclusive access.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        self.buckets
            .iter_mut()
            .filter_map(OnceLock::get_mut)
            .flat_map(|bucket| bucket.iter_mut())
    }
}

impl<T: Default> ThreadSlots<T> {
    /// The calling thread's slot, or `None` if the thread has no index: it is
    /// exiting and has given its index back, or (beyond about half a million
    /// threads alive at once) there is no room.
    #[inline(always)]
    pub fn get(&self) -> Option<&T> {
        if let Some(slot) = cache::lookup(self.id) {
            // SAFETY: the cache entry was written by `get_slow` on this
            // thread for the ThreadSlots with this id, which is `self` (ids
            // are never reused), and it points to this thread's slot in one
            // of `self`'s buckets; buckets are never freed or moved while
            // `self` lives, and the entry is cleared before this thread's
            // index can pass to another thread. So the pointer is valid for
            // as long as `&self`, and the slot is this thread's.
            return Some(unsafe { slot.cast::<T>().as_ref() });
        }
        self.get_slow()
    }

    /// Like [`get`](ThreadSlots::get), for the one `ThreadSlots` a thread
    /// uses most (a pool's pockets): it keeps a cache entry of its own, the
    /// *hot* entry, checked first, so a hit costs a thread-local load, a
    /// compare and a second load, without the index arithmetic of the
    /// four-way cache. Each thread has one hot entry: two `ThreadSlots` used
    /// by turns with `get_hot` take it from each other, and each miss costs a
    /// `get` and two stores.
    #[inline(always)]
    pub fn get_hot(&self) -> Option<&T> {
        if let Some(slot) = cache::hot(self.id) {
            // SAFETY: as in `get`: the hot entry obeys the same rules as the
            // four-way entries (written only with a slot `get` returned to
            // this thread, cleared with them).
            return Some(unsafe { slot.cast::<T>().as_ref() });
        }
        self.get_hot_slow()
    }

    #[cold]
    #[inline(never)]
    fn get_hot_slow(&self) -> Option<&T> {
        let slot = self.get()?;
        cache::store_hot(self.id, NonNull::from(slot).cast());
        Some(slot)
    }

    #[inline(never)]
    fn get_slow(&self) -> Option<&T> {
        let slot = self.at(indices::current()?)?;
        cache::store(self.id, NonNull::from(slot).cast());
        Some(slot)
    }

    /// The slot of index `i`, made if its bucket is not there yet; `None` if
    /// `i` is past the last bucket.
    #[inline]
    pub fn at(&self, i: usize) -> Option<&T> {
        let (bucket, offset) = locate(i)?;
        let slots = self.buckets[bucket].get_or_init(|| make_bucket(bucket));
        Some(&slots[offset])
    }
}

/// Where index `i` lives: bucket `k` holds indices `FIRST * (2^k - 1)` up to
/// `FIRST * (2^(k+1) - 1)`, exclusive.
#[inline]
fn locate(i: usize) -> Option<(usize, usize)> {
    let shifted = i / FIRST + 1; // in bucket k, this is in [2^k, 2^(k+1))
    let bucket = (usize::BITS - 1 - shifted.leading_zeros()) as usize;
    if bucket >= BUCKETS {
        return None;
    }
    Some((bucket, i - FIRST * ((1 << bucket) - 1)))
}

#[cold]
fn make_bucket<T: Default>(bucket: usize) -> Box<[T]> {
    (0..FIRST << bucket).map(|_| T::default()).collect()
}

impl<T> Default for ThreadSlots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> fmt::Debug for ThreadSlots<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ThreadSlots")
            .field("slots", &self.iter().count())
            .finish()
    }
}

mod indices {
    use super::*;

    /// Not assigned yet.
    const UNSET: usize = usize::MAX;
    /// Given back at thread exit: the thread uses the shared path from now on.
    const GONE: usize = usize::MAX - 1;

    /// Indices in use are handed out lowest first, so they stay dense.
    struct Free {
        next: usize,
        returned: BinaryHeap<Reverse<usize>>,
    }

    static FREE: Mutex<Free> = Mutex::new(Free {
        next: 0,
        returned: BinaryHeap::new(),
    });

    fn free_list() -> std::sync::MutexGuard<'static, Free> {
        // Nothing under this lock can panic halfway, so a poisoned lock still
        // guards consistent data.
        FREE.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    thread_local! {
        /// No destructor: readable at any point of the thread's life.
        static INDEX: Cell<usize> = const { Cell::new(UNSET) };
        /// Its destructor gives the index back.
        static RELEASE: Release = const { Release };
    }

    struct Release;

    impl Drop for Release {
        fn drop(&mut self) {
            // Before the index can pass to another thread.
            super::cache::clear();
            let i = INDEX.with(|cell| cell.replace(GONE));
            if i < GONE {
                free_list().returned.push(Reverse(i));
            }
        }
    }

    /// The calling thread's index into every [`ThreadSlots`], or `None`
    /// while the thread has none (it is exiting and gave it back, or asked
    /// too late in its exit to get one). Never panics.
    #[inline]
    pub(super) fn current() -> Option<usize> {
        let i = INDEX.with(Cell::get);
        if i < GONE {
            return Some(i);
        }
        assign(i)
    }

    #[cold]
    fn assign(i: usize) -> Option<usize> {
        if i == GONE {
            return None;
        }
        // Register the destructor first: if the thread is too far into its
        // exit for that, it gets no index rather than one it never frees.
        RELEASE.try_with(|_| ()).ok()?;
        let i = {
            let mut free = free_list();
            match free.returned.pop() {
                Some(Reverse(i)) => i,
                None => {
                    free.next += 1;
                    free.next - 1
                }
            }
        };
        INDEX.with(|cell| cell.set(i));
        Some(i)
    }
}

/// The per-thread cache (see the module docs): `WAYS` entries of (id, slot),
/// the entry for an id at `id % WAYS`, tags and slots in two arrays so that
/// an entry's index scales by 8 in the address itself; and the hot entry of
/// [`ThreadSlots::get_hot`].
mod cache {
    use std::cell::Cell;
    use std::ptr::NonNull;

    const WAYS: usize = 4;

    struct Entries {
        /// 0 (no `ThreadSlots` has id 0) or the id whose slot is beside it.
        tags: [Cell<usize>; WAYS],
        /// Dangling while the tag is 0: never read then.
        slots: [Cell<NonNull<()>>; WAYS],
        hot_tag: Cell<usize>,
        hot_slot: Cell<NonNull<()>>,
    }

    thread_local! {
        /// No destructor: readable at any point of the thread's life.
        static ENTRIES: Entries = const {
            Entries {
                tags: [const { Cell::new(0) }; WAYS],
                slots: [const { Cell::new(NonNull::dangling()) }; WAYS],
                hot_tag: Cell::new(0),
                hot_slot: Cell::new(NonNull::dangling()),
            }
        };
    }

    /// The slot cached for `id`, if any.
    #[inline(always)]
    pub(super) fn lookup(id: usize) -> Option<NonNull<()>> {
        ENTRIES.with(|entries| {
            let way = id % WAYS;
            (entries.tags[way].get() == id).then(|| entries.slots[way].get())
        })
    }

    pub(super) fn store(id: usize, slot: NonNull<()>) {
        ENTRIES.with(|entries| {
            entries.tags[id % WAYS].set(id);
            entries.slots[id % WAYS].set(slot);
        });
    }

    /// The slot of the hot entry, if it is `id`'s.
    #[inline(always)]
    pub(super) fn hot(id: usize) -> Option<NonNull<()>> {
        ENTRIES.with(|entries| (entries.hot_tag.get() == id).then(|| entries.hot_slot.get()))
    }

    pub(super) fn store_hot(id: usize, slot: NonNull<()>) {
        ENTRIES.with(|entries| {
            entries.hot_tag.set(id);
            entries.hot_slot.set(slot);
        });
    }

    pub(super) fn clear() {
        ENTRIES.with(|entries| {
            for tag in &entries.tags {
                tag.set(0);
            }
            entries.hot_tag.set(0);
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_map_to_distinct_slots_in_order() {
        let mut seen = Vec::new();
        for i in 0..FIRST * 15 {
            seen.push(locate(i).unwrap());
        }
        assert_eq!(seen[0], (0, 0));
        assert_eq!(seen[FIRST - 1], (0, FIRST - 1));
        assert_eq!(seen[FIRST], (1, 0));
        assert_eq!(seen[3 * FIRST], (2, 0));
        assert_eq!(seen[7 * FIRST], (3, 0));
        seen.dedup();
        assert_eq!(seen.len(), FIRST * 15);
        let last = FIRST * ((1 << BUCKETS) - 1);
        assert_eq!(
            locate(last - 1),
            Some((BUCKETS - 1, (FIRST << (BUCKETS - 1)) - 1))
        );
        assert_eq!(locate(last), None);
        assert_eq!(locate(usize::MAX), None);
    }

    /// Two `ThreadSlots` used by turns take the hot entry from each other,
    /// and each still finds this thread's own slot, the one `get` finds.
    #[test]
    fn hot_and_four_way_entries_agree() {
        use std::sync::atomic::AtomicUsize;
        let a = ThreadSlots::<AtomicUsize>::new();
        let b = ThreadSlots::<AtomicUsize>::new();
        for round in 0..10 {
            for (slots, n) in [(&a, 1), (&b, 2)] {
                let hot = slots.get_hot().unwrap();
                assert!(std::ptr::eq(hot, slots.get().unwrap()));
                assert_eq!(hot.load(Ordering::Relaxed), if round == 0 { 0 } else { n });
                hot.store(n, Ordering::Relaxed);
            }
        }
        // Another thread, while this one lives, has a slot of its own.
        let mine = a.get_hot().unwrap() as *const AtomicUsize as usize;
        std::thread::scope(|s| {
            s.spawn(|| {
                let other = a.get_hot().unwrap();
                assert_ne!(other as *const AtomicUsize as usize, mine);
                assert!(std::ptr::eq(other, a.get().unwrap()));
            });
        });
    }

    #[test]
    fn an_exited_threads_index_goes_to_a_later_thread() {
        let first = std::thread::spawn(indices::current)
            .join()
            .unwrap()
            .unwrap();
        // Indices are handed out lowest first, so once `first` is free a new
        // thread gets it or a lower one, never a fresh one above it. Threads
        // of other tests may hold it for a while (and a lower index may have
        // been taken when `first` was given), so keep looking for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reused =
            std::iter::repeat_with(|| std::thread::spawn(indices::current).join().unwrap())
                .take_while(|_| std::time::Instant::now() < deadline)
                .any(|i| i.is_some_and(|i| i <= first));
        assert!(reused, "no later thread got index {first} or a lower one");
    }
}
