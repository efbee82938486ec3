use crate::lazy_queue::LazyQueue;
use crate::Spill;
use std::fmt;

/// Keeps every returned value in one unbounded lock-free queue shared by all
/// threads.
///
/// No thread ever waits for another, which helps when threads are preempted
/// often (more threads than cores). The price is that every pop and push is
/// an atomic read-modify-write on the queue's shared head or tail, so under
/// heavy contention the cache lines of the queue move between cores.
///
/// ```
/// use mempool_policies::{LockFree, Spill};
///
/// let spill = LockFree::default();
/// spill.push(Box::new(1)).unwrap();
/// spill.push(Box::new(2)).unwrap();
/// assert_eq!(spill.len(), 2);
/// assert_eq!(spill.pop(), Some(Box::new(1)));
/// ```
pub struct LockFree<T> {
    queue: LazyQueue<Box<T>>,
}

impl<T> LockFree<T> {
    crate::const_unless_loom! {
        /// An empty spill.
        ///
        /// ```
        /// let spill = mempool_policies::LockFree::<String>::new();
        /// assert!(mempool_policies::Spill::is_empty(&spill));
        /// ```
        pub fn new() -> Self {
            LockFree {
                queue: LazyQueue::new(),
            }
        }
    }
}

impl<T> Default for LockFree<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Spill<T> for LockFree<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        self.queue.pop()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        self.queue.push(value);
        Ok(())
    }

    fn len(&self) -> usize {
        self.queue.len()
    }
}

impl<T> Drop for LockFree<T> {
    /// Drops the values out of the queue, so that one whose `Drop` panics
    /// does not stop the others from being dropped (crossbeam's queue stops
    /// at the first panic and leaks the rest).
    fn drop(&mut self) {
        drop(self.drain());
    }
}

impl<T> fmt::Debug for LockFree<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LockFree")
            .field("idle", &self.queue.len())
            .finish()
    }
}
