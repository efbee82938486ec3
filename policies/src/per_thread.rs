use crate::atomic_slot::AtomicSlot;
use crate::Spill;
use crossbeam_utils::CachePadded;
use std::fmt;
use thread_local::ThreadLocal;

/// Each thread keeps one idle value of its own, on a cache line of its own.
///
/// A pop or push touches only the calling thread's slot, with one atomic swap
/// on a line no other thread writes, so threads never contend and never
/// share a cache line (the `thread_local` crate's `ThreadLocal<RefCell<T>>`
/// packs neighbouring threads' values together, and pays for false sharing).
///
/// Memory is bounded by the number of threads alive at once, not by how many
/// ever used the pool: the slots of exited threads are handed to threads that
/// start later, with their idle value still in them. The other side of that
/// coin: a value idles in the slot of a thread that is alive but no longer
/// uses the pool, and no other thread can take it (only [`trim`](Spill::trim)
/// frees it). With many long-lived threads that take turns, prefer
/// [`Mutex`](crate::Mutex).
///
/// A second value returned by a thread that already has an idle one replaces
/// it, and the older one is dropped.
///
/// ```
/// use mempool_policies::{PerThread, Spill};
///
/// let spill = PerThread::default();
/// assert!(spill.push(Box::new(1)).is_ok());
/// assert_eq!(spill.push(Box::new(2)), Err(Box::new(1))); // one per thread
/// std::thread::scope(|s| {
///     s.spawn(|| assert_eq!(spill.pop(), None)); // another thread's slot
/// });
/// assert_eq!(spill.pop(), Some(Box::new(2)));
/// ```
pub struct PerThread<T: Send> {
    slots: ThreadLocal<CachePadded<AtomicSlot<T>>>,
}

impl<T: Send> PerThread<T> {
    /// A spill with no slots yet; each thread's slot is made the first time
    /// the thread pushes.
    ///
    /// ```
    /// let spill = mempool_policies::PerThread::<Vec<u8>>::new();
    /// assert!(mempool_policies::Spill::is_empty(&spill));
    /// ```
    pub fn new() -> Self {
        PerThread {
            slots: ThreadLocal::new(),
        }
    }
}

impl<T: Send> Default for PerThread<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T: Send> Spill<T> for PerThread<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        // `get`, not `get_or_default`: a thread that only ever pops (it never
        // returns a value) should not cost a slot.
        self.slots.get()?.take()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        match self.slots.get_or_default().replace(Some(value)) {
            Some(older) => Err(older),
            Option::None => Ok(()),
        }
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_full()).count()
    }

    fn trim(&self) -> usize {
        self.slots
            .iter()
            .filter_map(|slot| slot.take())
            .map(drop)
            .count()
    }
}

impl<T: Send> fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerThread")
            .field("idle", &self.len())
            .finish()
    }
}
