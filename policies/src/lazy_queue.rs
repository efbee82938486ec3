//! An unbounded lock-free queue that costs a pointer until first used.
//!
//! crossbeam's `SegQueue` keeps its head and tail on cache lines of their
//! own: 256 bytes inline, in every pool, before any value is queued. Most
//! queues in a pool (the overflow of `PerThread`, `decay`'s set-aside values)
//! stay empty for a pool's whole life, so they are made on first push; until
//! then a pop is one load. And a pointer can start null in a `const fn`.

use crate::sync::SegQueue;
use std::ptr;
// std's atomic even under loom, as std's `OnceLock` was: making the queue
// once is not what the models check, and every loom atomic multiplies the
// interleavings they explore.
use std::sync::atomic::{AtomicPtr, Ordering};

pub(crate) struct LazyQueue<T> {
    /// Null until the first push, then a box that lives as long as `self`.
    queue: AtomicPtr<SegQueue<T>>,
}

// SAFETY: a `LazyQueue` is a `SegQueue` behind a pointer it owns, and
// `SegQueue<T>` is `Send + Sync` when `T: Send`.
unsafe impl<T: Send> Send for LazyQueue<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for LazyQueue<T> {}

impl<T> LazyQueue<T> {
    pub(crate) const fn new() -> Self {
        LazyQueue {
            queue: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// The queue, if made.
    #[inline]
    fn queue(&self) -> Option<&SegQueue<T>> {
        let queue = self.queue.load(Ordering::Acquire);
        // SAFETY: non-null means a box published with Release by `push` (or
        // `make`), freed only by `drop`, so alive as long as `&self`.
        (!queue.is_null()).then(|| unsafe { &*queue })
    }

    #[cold]
    fn make(&self) -> &SegQueue<T> {
        let made = Box::into_raw(Box::new(SegQueue::new()));
        if self
            .queue
            .compare_exchange(ptr::null_mut(), made, Ordering::AcqRel, Ordering::Acquire)
            .is_err()
        {
            // SAFETY: `made` was never published: ours to free.
            drop(unsafe { Box::from_raw(made) });
        }
        self.queue().expect("queue made")
    }

    pub(crate) fn push(&self, value: T) {
        match self.queue() {
            Some(queue) => queue.push(value),
            None => self.make().push(value),
        }
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        self.queue()?.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue().map_or(0, |queue| queue.len())
    }
}

impl<T> Drop for LazyQueue<T> {
    fn drop(&mut self) {
        let queue = self.queue.load(Ordering::Relaxed);
        if !queue.is_null() {
            // SAFETY: the box `make` published, owned by `self` alone now.
            drop(unsafe { Box::from_raw(queue) });
        }
    }
}
