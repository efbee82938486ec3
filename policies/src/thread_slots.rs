//! Per-thread storage that never panics, even while the thread's
//! thread-locals are being destroyed.
//!
//! A pool keeps per-thread state (every thread's pocket, the stats layer's
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
//! thread that ever ran. A `ThreadSlots<T>` keeps one `T` per index, each
//! boxed on its own the first time its index's thread asks (so a value costs
//! memory only for threads that used it), behind buckets of pointers of
//! doubling size, so an index maps to its slot without a lock. A later
//! thread that receives a freed index inherits the slot of the thread that
//! had it, contents and all.
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
//! arithmetic, two dependent loads), too many for a hot path a few dozen
//! instructions long. So each thread keeps a small direct-mapped cache, in a
//! `const` thread-local with no destructor: for a few `ThreadSlots` it used
//! last, the `ThreadSlots`' id and a pointer to this thread's slot in it, and
//! one more entry, the *hot* one, for the `ThreadSlots` a pool's get path
//! reads first (its pockets). A hit is two thread-local loads and a compare.
//! Ids are given out lazily (a `ThreadSlots` is made by a `const fn`) from a
//! global counter, are never reused, and none matches an empty entry; so a
//! matching id means the `ThreadSlots` is `self`, alive, and its slots (which
//! never move or shrink while it lives) still hold this thread's. The cache
//! is emptied when the thread gives its index back, before any other thread
//! can receive that index.
//!
//! This module's `unsafe` blocks: reading through a cached pointer (the
//! argument above), and freeing the buckets and slots it made.

use std::cell::Cell;
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicPtr, AtomicUsize, Ordering};
use std::sync::Mutex;

/// Slots in the first bucket; bucket `k` holds `FIRST << k`.
const FIRST: usize = 8;
/// Buckets: room for `FIRST * (2^BUCKETS - 1)` threads alive at once (about
/// half a million). A thread beyond that gets no slot and uses the shared
/// path, which works, only slower.
const BUCKETS: usize = 16;
/// The id of a `ThreadSlots` that no thread has asked for a slot yet.
const NO_ID: usize = usize::MAX;

/// One `T` per thread alive, made with `T::default()` the first time that
/// thread asks.
pub struct ThreadSlots<T> {
    /// Unique in the process once given (from 1, lazily), `NO_ID` before:
    /// the per-thread cache's tag.
    id: AtomicUsize,
    /// Bucket `k`: `FIRST << k` pointers to slots, each null until its
    /// index's thread asks; the bucket itself null until first needed.
    buckets: [AtomicPtr<AtomicPtr<T>>; BUCKETS],
}

// SAFETY: a `ThreadSlots` hands each thread a `&T` (so `T: Sync` for it to be
// shared) and drops every `T` on whichever thread drops it (`T: Send`); its
// own fields are atomics and pointers to memory it owns.
unsafe impl<T: Send + Sync> Sync for ThreadSlots<T> {}
// SAFETY: as above: moving it moves the `T`s it owns.
unsafe impl<T: Send> Send for ThreadSlots<T> {}

impl<T> ThreadSlots<T> {
    /// A null bucket pointer, for the array's initialiser: each use is a
    /// fresh value (an inline `const` block would say so, but needs Rust
    /// 1.79).
    #[allow(clippy::declare_interior_mutable_const)]
    const NO_BUCKET: AtomicPtr<AtomicPtr<T>> = AtomicPtr::new(ptr::null_mut());

    /// No slots yet: buckets and slots are made on first use.
    pub const fn new() -> Self {
        ThreadSlots {
            id: AtomicUsize::new(NO_ID),
            buckets: [Self::NO_BUCKET; BUCKETS],
        }
    }

    /// This `ThreadSlots`' id for the cache, given out on first use.
    #[cold]
    fn id(&self) -> usize {
        static NEXT_ID: AtomicUsize = AtomicUsize::new(1);
        let id = self.id.load(Ordering::Relaxed);
        if id != NO_ID {
            return id;
        }
        let new = NEXT_ID.fetch_add(1, Ordering::Relaxed);
        match self
            .id
            .compare_exchange(NO_ID, new, Ordering::Relaxed, Ordering::Relaxed)
        {
            Ok(_) => new,
            Err(won) => won,
        }
    }

    /// The pointers of bucket `k`, if it was made.
    fn bucket(&self, k: usize) -> Option<&[AtomicPtr<T>]> {
        let bucket = self.buckets[k].load(Ordering::Acquire);
        // SAFETY: a non-null bucket pointer is the start of a boxed slice of
        // `FIRST << k` pointers that `make_bucket` published with Release
        // and that lives as long as `self`.
        (!bucket.is_null()).then(|| unsafe { std::slice::from_raw_parts(bucket, FIRST << k) })
    }

    /// Every slot made so far, of live threads, exited ones and indices not
    /// handed out yet alike.
    pub fn iter(&self) -> impl Iterator<Item = &T> {
        (0..BUCKETS)
            .filter_map(move |k| self.bucket(k))
            .flatten()
            .filter_map(|slot| {
                let slot = slot.load(Ordering::Acquire);
                // SAFETY: a non-null slot pointer is a box that its index's
                // thread published with Release and that lives as long as
                // `self`.
                (!slot.is_null()).then(|| unsafe { &*slot })
            })
    }

    /// Every slot made so far, for an owner with exclusive access.
    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
        let all: Vec<*mut T> = self.iter().map(|slot| slot as *const T as *mut T).collect();
        // SAFETY: `&mut self` is exclusive, and every pointer is a distinct
        // live box this `ThreadSlots` owns.
        all.into_iter().map(|slot| unsafe { &mut *slot })
    }
}

impl<T: Default> ThreadSlots<T> {
    /// The calling thread's slot, made if needed, or `None` if the thread
    /// has no index: it is exiting and has given its index back, or (beyond
    /// about half a million threads alive at once) there is no room.
    #[inline(always)]
    pub fn get(&self) -> Option<&T> {
        if let Some(slot) = cache::lookup(self.id.load(Ordering::Relaxed)) {
            // SAFETY: the cache entry was written by `get_slow` on this
            // thread for the ThreadSlots with this id, which is `self` (ids
            // are never reused and never match an empty entry), and it points
            // to this thread's slot, a box that lives as long as `self`; the
            // entry is cleared before this thread's index can pass to another
            // thread. So the pointer is valid for as long as `&self`, and the
            // slot is this thread's.
            return Some(unsafe { slot.cast::<T>().as_ref() });
        }
        self.get_slow()
    }

    /// The calling thread's slot if it is in the thread's *hot* entry: a
    /// thread-local load and a compare, for the one `ThreadSlots` a pool's
    /// get reads first. `None` does not mean there is none:
    /// [`get_hot`](ThreadSlots::get_hot) finds it and makes it hot.
    #[inline(always)]
    pub fn hot(&self) -> Option<&T> {
        let slot = cache::hot(self.id.load(Ordering::Relaxed))?;
        // SAFETY: as in `get`: the hot entry obeys the same rules as the
        // four-way entries (written only with a slot `get` returned to this
        // thread, cleared with them).
        Some(unsafe { slot.cast::<T>().as_ref() })
    }

    /// Like [`get`](ThreadSlots::get), and puts the slot in the thread's hot
    /// entry. Each thread has one hot entry: two `ThreadSlots` used by turns
    /// take it from each other.
    #[cold]
    pub fn get_hot(&self) -> Option<&T> {
        let slot = self.get()?;
        cache::store_hot(self.id(), NonNull::from(slot).cast());
        Some(slot)
    }

    #[cold]
    #[inline(never)]
    fn get_slow(&self) -> Option<&T> {
        let slot = self.at(indices::current()?)?;
        cache::store(self.id(), NonNull::from(slot).cast());
        Some(slot)
    }

    /// The slot of index `i`, made if needed; `None` if `i` is past the last
    /// bucket. Only `i`'s thread may ask (it alone makes that slot).
    fn at(&self, i: usize) -> Option<&T> {
        let (k, offset) = locate(i)?;
        let bucket = match self.bucket(k) {
            Some(bucket) => bucket,
            None => self.make_bucket(k),
        };
        let cell = &bucket[offset];
        let mut slot = cell.load(Ordering::Acquire);
        if slot.is_null() {
            // Only index `i`'s thread makes this slot, so nobody races us.
            slot = Box::into_raw(Box::default());
            cell.store(slot, Ordering::Release);
        }
        // SAFETY: a box made above or published earlier, living as long as
        // `self`.
        Some(unsafe { &*slot })
    }

    /// Makes bucket `k`, or takes the one another thread made first.
    #[cold]
    fn make_bucket(&self, k: usize) -> &[AtomicPtr<T>] {
        let made: Box<[AtomicPtr<T>]> = (0..FIRST << k)
            .map(|_| AtomicPtr::new(ptr::null_mut()))
            .collect();
        let made = Box::into_raw(made) as *mut AtomicPtr<T>;
        if let Err(_won) = self.buckets[k].compare_exchange(
            ptr::null_mut(),
            made,
            Ordering::AcqRel,
            Ordering::Acquire,
        ) {
            // SAFETY: `made` is the box made above, never published.
            drop(unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(made, FIRST << k)) });
        }
        self.bucket(k).expect("bucket made")
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

impl<T> Default for ThreadSlots<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for ThreadSlots<T> {
    fn drop(&mut self) {
        for k in 0..BUCKETS {
            let bucket = *self.buckets[k].get_mut();
            if bucket.is_null() {
                continue;
            }
            // SAFETY: a non-null bucket is the boxed slice `make_bucket`
            // made, of `FIRST << k` pointers, owned by `self` alone now.
            let bucket =
                unsafe { Box::from_raw(ptr::slice_from_raw_parts_mut(bucket, FIRST << k)) };
            for slot in bucket.iter() {
                let slot = slot.load(Ordering::Relaxed);
                if !slot.is_null() {
                    // SAFETY: a non-null slot is the box `at` made, owned by
                    // `self` alone now, freed once here.
                    drop(unsafe { Box::from_raw(slot) });
                }
            }
        }
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
        returned: Vec<usize>,
    }

    static FREE: Mutex<Free> = Mutex::new(Free {
        next: 0,
        returned: Vec::new(),
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
                free_list().returned.push(i);
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
            let lowest = (0..free.returned.len()).min_by_key(|&at| free.returned[at]);
            match lowest {
                Some(at) => free.returned.swap_remove(at),
                None => {
                    free.next += 1;
                    free.next - 1
                }
            }
        };
        INDEX.with(|cell| cell.set(i));
        Some(i)
    }

    #[cfg(test)]
    pub(super) fn for_test() -> Option<usize> {
        current()
    }
}

/// The per-thread cache (see the module docs): `WAYS` entries of (id, slot),
/// the entry for an id at `id % WAYS`, tags and slots in two arrays so that
/// an entry's index scales by 8 in the address itself; and the hot entry.
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

    // Initialisers of the arrays below: each use is a fresh value (an
    // inline `const` block would say so, but needs Rust 1.79).
    #[allow(clippy::declare_interior_mutable_const)]
    const NO_TAG: Cell<usize> = Cell::new(0);
    #[allow(clippy::declare_interior_mutable_const)]
    const NO_SLOT: Cell<NonNull<()>> = Cell::new(NonNull::dangling());

    thread_local! {
        /// No destructor: readable at any point of the thread's life.
        static ENTRIES: Entries = const {
            Entries {
                tags: [NO_TAG; WAYS],
                slots: [NO_SLOT; WAYS],
                hot_tag: NO_TAG,
                hot_slot: NO_SLOT,
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
        let a = ThreadSlots::<AtomicUsize>::new();
        let b = ThreadSlots::<AtomicUsize>::new();
        assert!(a.hot().is_none(), "no id yet: no entry matches");
        for round in 0..10 {
            for (slots, n) in [(&a, 1), (&b, 2)] {
                let hot = match slots.hot() {
                    Some(hot) => hot,
                    None => slots.get_hot().unwrap(),
                };
                assert!(std::ptr::eq(hot, slots.get().unwrap()));
                assert_eq!(hot.load(Ordering::Relaxed), if round == 0 { 0 } else { n });
                hot.store(n, Ordering::Relaxed);
            }
        }
        // Another thread, while this one lives, has a slot of its own.
        let mine = a.get().unwrap() as *const AtomicUsize as usize;
        std::thread::scope(|s| {
            s.spawn(|| {
                assert!(a.hot().is_none(), "another thread's hot entry is its own");
                let other = a.get_hot().unwrap();
                assert_ne!(other as *const AtomicUsize as usize, mine);
                assert!(std::ptr::eq(other, a.hot().unwrap()));
            });
        });
        assert_eq!(a.iter().count(), 2, "a slot for each thread that asked");
    }

    #[test]
    fn an_exited_threads_index_goes_to_a_later_thread() {
        let first = std::thread::spawn(indices::for_test)
            .join()
            .unwrap()
            .unwrap();
        // Indices are handed out lowest first, so once `first` is free a new
        // thread gets it or a lower one, never a fresh one above it. Threads
        // of other tests may hold it for a while (and a lower index may have
        // been taken when `first` was given), so keep looking for a while.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        let reused =
            std::iter::repeat_with(|| std::thread::spawn(indices::for_test).join().unwrap())
                .take_while(|_| std::time::Instant::now() < deadline)
                .any(|i| matches!(i, Some(i) if i <= first));
        assert!(reused, "no later thread got index {first} or a lower one");
    }
}
