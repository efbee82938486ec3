//! The owner slot: one value that the pool's owner thread takes and returns
//! without a lock or a read-modify-write atomic, and that any other thread
//! can still take once it is idle (to reuse it, or for `trim`), through an
//! asymmetric barrier.
//!
//! Pools whose spill strategy is not [`PerThread`](crate::spill::PerThread)
//! use it: they give one thread, the owner, the fast path that `PerThread`
//! gives every thread through its pockets.
//!
//! # Protocol
//!
//! The slot is a `mempool_policies` [`Slot`], whose protocol (in `slot.rs`)
//! lets its *own thread* take and return its value with plain loads and
//! stores, and any thread steal it when idle. What this module adds is who
//! the own thread is: the slot has an `owner`, a thread number from
//! [`mempool_policies::thread_id`], or 0 while no thread has claimed it.
//! `owner` goes from 0 to a thread number once, by compare-and-swap, and
//! never changes again. Thread numbers are never reused, so after the claim
//! exactly one thread, alive or not, is the owner, and only a caller whose
//! number is `owner` calls the slot's own-thread operations.
//!
//! `owner` and the slot sit on different cache lines: every `get` from every
//! thread reads `owner`, which never changes after the claim, so its line
//! stays shared in all caches; the slot's state and value are written by the
//! owner thread on each `get`, and only that thread reads them on the fast
//! path.

use crossbeam_utils::CachePadded;
use mempool_policies::slot::{Slot, Ticket};
use mempool_policies::sync::{AtomicUsize, Ordering};

/// The fast slot of a pool. See the module docs for the protocol.
pub(crate) struct OwnerSlot<T> {
    /// Thread number of the owner, 0 while unclaimed. Written once.
    owner: AtomicUsize,
    slot: CachePadded<Slot<T>>,
}

impl<T> OwnerSlot<T> {
    pub(crate) fn new() -> Self {
        OwnerSlot {
            owner: AtomicUsize::new(0),
            slot: CachePadded::new(Slot::default()),
        }
    }

    /// The owner's thread number, or 0 while unclaimed.
    #[inline]
    pub(crate) fn owner(&self) -> usize {
        // Relaxed: the number carries no data with it. A stale 0 only sends
        // a thread down the slow path, where `claim` settles it.
        self.owner.load(Ordering::Relaxed)
    }

    /// The fast path: the owner thread takes the idle value. The ticket
    /// points into the pool, which it must not outlive (guards see to it).
    #[inline(always)]
    pub(crate) fn take_ticket(&self, caller: usize) -> Option<Ticket<T>> {
        // `owner` first: a thread that is not the owner must not read the
        // slot's state, whose cache line the owner thread writes on every get.
        if self.owner() != caller {
            return None;
        }
        // SAFETY: `caller` is the owner, the slot's one own thread (module
        // docs: thread numbers are unique and `owner` never changes); the
        // ticket goes into a guard, which borrows the pool (or holds an
        // `Arc` of it), so it ends before the slot is dropped, and a pool
        // that is borrowed cannot move.
        unsafe { self.slot.take_ticket() }
    }

    /// Makes `caller` the owner if the slot has none. True if it did.
    pub(crate) fn claim(&self, caller: usize) -> bool {
        self.owner
            .compare_exchange(0, caller, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether `caller` owns the slot and the slot is idle and empty, so that
    /// `fill` would succeed unless a thief is in.
    pub(crate) fn is_empty_for(&self, caller: usize) -> bool {
        self.owner() == caller && self.slot.is_empty()
    }

    /// The owner thread puts `value` in an empty slot and takes a ticket for
    /// it. Gives the value back if `caller` is not the owner, the slot is not
    /// empty, or a thief is in.
    pub(crate) fn fill(&self, caller: usize, value: Box<T>) -> Result<Ticket<T>, Box<T>> {
        if self.owner() != caller {
            return Err(value);
        }
        // SAFETY: as in `take_ticket`.
        unsafe { self.slot.fill(value) }
    }

    /// Takes the idle value, from any thread: for `trim`, or to reuse it
    /// instead of creating. Costs a heavy barrier when the slot looks full.
    pub(crate) fn steal(&self) -> Option<T> {
        self.slot.steal()
    }

    /// Whether the slot holds an idle value (stale at once under concurrency).
    pub(crate) fn is_full(&self) -> bool {
        self.slot.is_full()
    }

    /// A word for `Debug` output.
    pub(crate) fn state_name(&self) -> &'static str {
        self.slot.state_name()
    }
}
