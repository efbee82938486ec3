//! An unbounded lock-free queue that costs a pointer until first used.
//!
//! crossbeam's `SegQueue` keeps its head and tail on cache lines of their
//! own: 256 bytes inline, in every pool, before any value is queued. Most
//! queues in a pool (the overflow of `PerThread`, `decay`'s set-aside values)
//! stay empty for a pool's whole life, so they are made on first push; until
//! then a pop is one load.

use crate::sync::SegQueue;
use std::sync::OnceLock;

pub(crate) struct LazyQueue<T> {
    queue: OnceLock<Box<SegQueue<T>>>,
}

impl<T> LazyQueue<T> {
    pub(crate) const fn new() -> Self {
        LazyQueue {
            queue: OnceLock::new(),
        }
    }

    pub(crate) fn push(&self, value: T) {
        self.queue
            .get_or_init(|| Box::new(SegQueue::new()))
            .push(value);
    }

    #[inline]
    pub(crate) fn pop(&self) -> Option<T> {
        self.queue.get()?.pop()
    }

    pub(crate) fn len(&self) -> usize {
        self.queue.get().map_or(0, |queue| queue.len())
    }
}
