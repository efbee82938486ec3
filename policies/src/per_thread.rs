use crate::lazy_queue::LazyQueue;
use crate::Spill;
use std::fmt;

/// Every thread keeps up to two idle values in a pocket of its own, on a
/// cache line of its own; values beyond that wait in a shared lock-free
/// overflow queue, and a thread whose pocket is empty takes from the
/// overflow, then from another thread's pocket, before the pool creates a
/// value.
///
/// This strategy is the overflow queue, and says yes to
/// [`Spill::pockets`]: the pockets themselves are the pool's, as the two
/// slots of its first thread are. With it (the default), a pool gives every
/// thread the fast path of its first thread: a get takes a value from the
/// thread's own pocket with two loads and a store, and its guard returns it
/// there with one store, even from another thread. No lock, no
/// read-modify-write atomic, no `SeqCst` fence, on a cache line no other
/// thread writes. That is as cheap as the `thread_local` crate's
/// `ThreadLocal<RefCell<T>>`, which never lets another thread touch a value
/// and so keeps one per thread forever.
///
/// Here other threads may still take idle values out of a pocket: to reuse
/// them instead of creating, for `trim` and `decay`, and when the pool is
/// dropped, through an asymmetric barrier (Linux's `membarrier`, a few
/// hundred nanoseconds, or a `SeqCst` fence on both sides where that is
/// missing): the pocket's own thread pays nothing for it. So memory follows
/// how many values are in use at once, not how many threads ever used the
/// pool: a value is created only when the caller's pocket, the overflow and
/// every other pocket are empty, and the pockets of exited threads go to
/// threads that start later, values and all.
///
/// A pocket is two slots (three words each) on a 128-byte line, made the
/// first time its thread gets a value; the values themselves are boxed, so
/// a pocket's size does not depend on `T`.
///
/// A slot that was robbed refuses returned values until its own thread takes
/// from it again, so a thread that only returns values (a consumer at the
/// end of a pipeline) sends them to the overflow, where the getting thread
/// finds them without a barrier; and a thread that is exiting (a guard kept
/// in a `thread_local!` is returned by its destructor) may have given its
/// pocket up already: its values go to the overflow too.
///
/// On its own (outside a pool), it is a lock-free queue:
///
/// ```
/// use mempool_policies::{PerThread, Spill};
///
/// let spill = PerThread::new();
/// spill.push(Box::new(1)).unwrap();
/// spill.push(Box::new(2)).unwrap();
/// assert_eq!(spill.pop().map(|b| *b), Some(1));
/// assert_eq!(spill.len(), 1);
/// assert!(spill.pockets());
/// ```
pub struct PerThread<T> {
    /// Values returned to a full or robbed pocket, or by a thread without a
    /// pocket, put, or prefilled.
    overflow: LazyQueue<Box<T>>,
}

impl<T> PerThread<T> {
    crate::const_unless_loom! {
        /// An empty overflow (pockets are the pool's, made for threads as
        /// they come).
        ///
        /// ```
        /// let spill = mempool_policies::PerThread::<Vec<u8>>::new();
        /// assert!(mempool_policies::Spill::is_empty(&spill));
        /// ```
        pub fn new() -> Self {
            PerThread {
                overflow: LazyQueue::new(),
            }
        }
    }
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Spill<T> for PerThread<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        self.overflow.pop()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        self.overflow.push(value);
        Ok(())
    }

    fn len(&self) -> usize {
        self.overflow.len()
    }

    #[inline(always)]
    fn pockets(&self) -> bool {
        true
    }
}

impl<T> Drop for PerThread<T> {
    /// Drops the values out of the queue, so that one whose `Drop` panics
    /// does not stop the others from being dropped (crossbeam's queue stops
    /// at the first panic and leaks the rest).
    fn drop(&mut self) {
        drop(self.drain());
    }
}

// A strategy hands out whole values and never a reference into itself; a
// panic in a value's `Drop` while it drains leaves the rest to be dropped.
// Nothing a caller can observe is left half-done by unwinding.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for PerThread<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for PerThread<T> {}

impl<T> fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerThread")
            .field("overflow", &self.overflow.len())
            .finish()
    }
}
