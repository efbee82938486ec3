use crate::sync::ArrayQueue;
use crate::Spill;
use std::fmt;

/// Keeps at most `n` idle values in a lock-free ring buffer; a value returned
/// to a full spill is dropped.
///
/// Pick it when memory must have a hard ceiling: a pool with this spill never
/// holds more than `n + 2` idle values (the `+ 2` are the owner slots), however
/// many threads use it and however many values they hold at once.
///
/// ```
/// use mempool_policies::{Bounded, Spill};
///
/// let spill = Bounded::new(2);
/// assert!(spill.push(Box::new('a')).is_ok());
/// assert!(spill.push(Box::new('b')).is_ok());
/// assert!(spill.push(Box::new('c')).is_err());
/// assert_eq!(spill.len(), 2);
/// assert_eq!(spill.capacity(), 2);
/// ```
pub struct Bounded<T> {
    queue: ArrayQueue<Box<T>>,
}

impl<T> Bounded<T> {
    /// A spill that keeps at most `capacity` idle values.
    ///
    /// # Panics
    ///
    /// If `capacity` is zero: a spill that keeps nothing is [`None`](crate::None).
    ///
    /// ```should_panic
    /// let _ = mempool_policies::Bounded::<u8>::new(0);
    /// ```
    pub fn new(capacity: usize) -> Self {
        assert!(
            capacity > 0,
            "spill::Bounded::new(0) keeps nothing: use spill::None for a pool \
             that keeps no values beyond the owner slots"
        );
        Bounded {
            queue: ArrayQueue::new(capacity),
        }
    }

    /// The most idle values this spill keeps.
    ///
    /// ```
    /// assert_eq!(mempool_policies::Bounded::<u8>::new(3).capacity(), 3);
    /// ```
    pub fn capacity(&self) -> usize {
        self.queue.capacity()
    }
}

impl<T> Spill<T> for Bounded<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        self.queue.pop()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        self.queue.push(value)
    }

    fn len(&self) -> usize {
        self.queue.len()
    }

    fn ceiling(&self) -> Option<usize> {
        Some(self.queue.capacity())
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

impl<T> fmt::Debug for Bounded<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Bounded")
            .field("idle", &self.queue.len())
            .field("capacity", &self.queue.capacity())
            .finish()
    }
}
