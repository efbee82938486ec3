use crate::lazy_queue::LazyQueue;
use crate::sync::{AtomicUsize, Ordering};
use crate::Spill;
use std::fmt;

/// How many slots a pool's first thread has (see [`Spill::ceiling`]): the
/// part of a ceiling they take, when it is that large.
const FIRST_THREAD_SLOTS: usize = 2;

/// A hard ceiling: a pool with `Bounded::new(n)` holds at most `n` idle
/// values in all, its slots included, at every moment, however many threads
/// use it and however many values they hold at once. A value returned when
/// the pool holds `n` is dropped.
///
/// Of the `n`, the pool's first thread keeps up to two in its slots inside
/// the pool, on its fast path (one if `n` is 1), and this spill the rest,
/// `n - 2`, in a lock-free queue that every other thread gets from and
/// returns to (no other thread has a pocket: [`Spill::ceiling`]). So
/// `Bounded::new(1)` keeps one idle value, in the first thread's first
/// slot, and drops every other returned value; `Bounded::new(2)` keeps the
/// first thread's two.
///
/// The ceiling is a limit, not a reservation: the queue grows as values come
/// (crossbeam's `SegQueue`, in blocks of 31) and a count keeps it within
/// its share, so `Bounded::new(usize::MAX)` costs what `Bounded::new(8)`
/// costs until values come.
///
/// ```
/// use mempool_policies::{Bounded, Spill};
///
/// let spill = Bounded::new(4);
/// assert_eq!(spill.ceiling(), Some(4));
/// assert_eq!(spill.capacity(), 2); // the first thread's slots take two
/// assert!(spill.push(Box::new('a')).is_ok());
/// assert!(spill.push(Box::new('b')).is_ok());
/// assert!(spill.push(Box::new('c')).is_err());
/// assert_eq!(spill.len(), 2);
/// ```
pub struct Bounded<T> {
    queue: LazyQueue<Box<T>>,
    /// Values in `queue`, or about to be: a push counts before it pushes, a
    /// pop after it pops, so `queue` never holds more than `capacity`.
    held: AtomicUsize,
    /// The pool-wide ceiling, `n`.
    ceiling: usize,
}

impl<T> Bounded<T> {
    crate::const_unless_loom! {
        /// A spill for a pool that keeps at most `ceiling` idle values in all,
        /// its slots included (see the type's docs for how they are shared).
        ///
        /// # Panics
        ///
        /// If `ceiling` is zero: a pool that keeps nothing idle is no pool.
        /// For a pool that keeps only the first thread's two values, use
        /// [`None`](crate::None).
        ///
        /// ```should_panic
        /// let _ = mempool_policies::Bounded::<u8>::new(0);
        /// ```
        pub fn new(ceiling: usize) -> Self {
            assert!(
                ceiling > 0,
                "spill::Bounded::new(0): a ceiling of 0 keeps nothing; use spill::None \
                 for a pool that keeps only its first thread's two slots"
            );
            Bounded {
                queue: LazyQueue::new(),
                held: AtomicUsize::new(0),
                ceiling,
            }
        }
    }

    /// The most idle values this spill itself keeps: the ceiling less the
    /// first thread's slots.
    ///
    /// ```
    /// assert_eq!(mempool_policies::Bounded::<u8>::new(3).capacity(), 1);
    /// assert_eq!(mempool_policies::Bounded::<u8>::new(1).capacity(), 0);
    /// ```
    pub fn capacity(&self) -> usize {
        self.ceiling - self.ceiling.min(FIRST_THREAD_SLOTS)
    }
}

impl<T> Spill<T> for Bounded<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        let value = self.queue.pop()?;
        self.held.fetch_sub(1, Ordering::Relaxed);
        Some(value)
    }

    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        // Relaxed: the count only bounds the queue's length; the queue
        // itself orders the values it hands over.
        if self.held.fetch_add(1, Ordering::Relaxed) >= self.capacity() {
            self.held.fetch_sub(1, Ordering::Relaxed);
            return Err(value);
        }
        self.queue.push(value);
        Ok(())
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn ceiling(&self) -> Option<usize> {
        Some(self.ceiling)
    }
}

impl<T> Drop for Bounded<T> {
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
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Bounded<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for Bounded<T> {}

impl<T> fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("idle", &self.queue.len())
            .field("ceiling", &self.ceiling)
            .finish()
    }
}
