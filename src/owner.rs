//! The owner slot: up to two values that the pool's owner thread takes and
//! returns without a lock or a read-modify-write atomic, and that any other
//! thread can still take once idle (to reuse them, or for `trim`), through
//! an asymmetric barrier.
//!
//! Every pool has one, inside the pool itself: the first thread to use the
//! pool, the owner, reaches it without the dependent load that finding a
//! per-thread pocket costs, which makes the owner's cycle the fastest in the
//! crate. With [`PerThread`](crate::spill::PerThread), every other thread
//! has a pocket of the same kind; with the other strategies, every other get
//! goes to the spill.
//!
//! # Protocol
//!
//! The slot is a `mempool_policies` [`Pocket`]: two `Slot`s, whose protocol
//! (in `slot.rs`) lets their *own thread* take and return values with plain
//! loads and stores, and any thread steal them when idle. Two, so that an
//! owner holding two values at once (a nested get) keeps both on its fast
//! path. What this module adds is who
//! the own thread is: the slot has an `owner`, a thread number from
//! [`mempool_policies::thread_id`], or 0 while no thread has claimed it.
//! `owner` goes from 0 to a thread number once, by compare-and-swap, and
//! never changes again. Thread numbers are never reused, so after the claim
//! exactly one thread, alive or not, is the owner, and only a caller whose
//! number is `owner` calls the slot's own-thread operations.
//!
//! `owner` and the slots sit on different cache lines: every `get` from every
//! thread reads `owner`, which never changes after the claim, so its line
//! stays shared in all caches; the slots' states and values are written by
//! the owner thread on each `get`, and only that thread reads them on the
//! fast path.

use crossbeam_utils::CachePadded;
use mempool_policies::pocket::Pocket;
use mempool_policies::slot::{Slot, Ticket};
use mempool_policies::sync::{AtomicUsize, Ordering};

/// The fast slot of a pool. See the module docs for the protocol.
pub(crate) struct OwnerSlot<T> {
    /// Thread number of the owner, 0 while unclaimed. Written once.
    owner: AtomicUsize,
    slots: CachePadded<Pocket<T>>,
}

impl<T> OwnerSlot<T> {
    pub(crate) fn new() -> Self {
        OwnerSlot {
            owner: AtomicUsize::new(0),
            slots: CachePadded::new(Pocket::default()),
        }
    }

    /// The owner's thread number, or 0 while unclaimed.
    #[inline]
    pub(crate) fn owner(&self) -> usize {
        // Relaxed: the number carries no data with it. A stale 0 only sends
        // a thread down the slow path, where `claim` settles it.
        self.owner.load(Ordering::Relaxed)
    }

    /// The fast path: the owner thread takes an idle value. The ticket
    /// points into the pool, which it must not outlive (guards see to it).
    #[inline(always)]
    pub(crate) fn take_ticket(&self, caller: usize) -> Option<Ticket<T>> {
        // `owner` first: a thread that is not the owner must not read the
        // slots' states, whose cache line the owner thread writes on every
        // get.
        if self.owner() != caller {
            return None;
        }
        // SAFETY: `caller` is the owner, the slots' one own thread (module
        // docs: thread numbers are unique and `owner` never changes); the
        // ticket goes into a guard, which borrows the pool (or holds an
        // `Arc` of it), so it ends before the slots are dropped, and a pool
        // that is borrowed cannot move.
        unsafe { self.slots.take_ticket() }
    }

    /// Makes `caller` the owner if the slot has none. True if it did.
    pub(crate) fn claim(&self, caller: usize) -> bool {
        self.owner
            .compare_exchange(0, caller, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether `caller` owns the slots and one is idle and empty, so that
    /// `fill` would succeed unless a thief is in.
    pub(crate) fn has_room_for(&self, caller: usize) -> bool {
        self.owner() == caller && self.slots.has_empty()
    }

    /// The owner thread puts `value` in an empty slot and takes a ticket for
    /// it. Gives the value back if `caller` is not the owner, no slot is
    /// empty, or a thief is in.
    pub(crate) fn fill(&self, caller: usize, value: Box<T>) -> Result<Ticket<T>, Box<T>> {
        if self.owner() != caller {
            return Err(value);
        }
        // SAFETY: as in `take_ticket`.
        unsafe { self.slots.fill(value) }
    }

    /// Takes up to `want` idle values, from any thread: for `trim`, or to
    /// reuse one instead of creating. Costs a heavy barrier when a slot looks
    /// full.
    pub(crate) fn steal_into(&self, out: &mut Vec<Box<T>>, want: usize) {
        self.slots.steal_into(out, want);
    }

    /// How many slots hold an idle value (stale at once under concurrency).
    pub(crate) fn idle(&self) -> usize {
        self.slots.idle()
    }

    /// Which of the two slots (0 or 1) a ticket of this owner slot is for.
    #[inline(always)]
    pub(crate) fn index_of(&self, ticket: &Ticket<T>) -> usize {
        usize::from(ticket.is_for(&self.slots()[1]))
    }

    /// The slots, for `Debug` output.
    pub(crate) fn slots(&self) -> &[Slot<T>] {
        self.slots.slots()
    }
}
