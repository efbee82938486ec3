//! The owner slot: one value that only the pool's owner thread takes without
//! a lock or a read-modify-write atomic.
//!
//! This is the only module of the crate with `unsafe` code that the pool's
//! soundness rests on, so its protocol is spelled out here in full.
//!
//! # Protocol
//!
//! The slot has an `owner` (a thread number from
//! [`mempool_policies::thread_id`], or 0 while no thread has claimed it) and a
//! `state`, one of `EMPTY`, `FULL` (both *idle*) or `IN_USE`.
//!
//! 1. `owner` goes from 0 to a thread number once, by compare-and-swap, and
//!    never changes again. Thread numbers are never reused, so after the claim
//!    exactly one thread, alive or not, is the owner.
//! 2. Only the owner thread moves `state` out of an idle state (`FULL` or
//!    `EMPTY`) into `IN_USE`, with a plain store. No other thread ever writes
//!    an idle state over an idle state.
//! 3. Whoever moved `state` to `IN_USE` holds a [`Ticket`]. The ticket, and
//!    nothing else, gives access to the value; it ends with a store of `FULL`
//!    (value kept: [`Ticket::release`]) or `EMPTY` (value moved out by
//!    [`Ticket::take`], or dropped when the ticket is, as when a reset hook
//!    panics), which may happen on another thread if the guard holding the
//!    ticket was sent there.
//! 4. While `state` is idle, only the owner thread touches the value (to fill
//!    an `EMPTY` slot or to trim a `FULL` one), and it does so without leaving
//!    the idle states, so rule 2 still holds.
//!
//! Rules 1 and 2 mean the load-then-store of the fast path cannot race with
//! any other writer: no other thread writes `state` while it is idle, and while
//! it is `IN_USE` the owner thread does not take the fast path. A ticket is
//! therefore exclusive, and the `Release` store that ends it pairs with the
//! `Acquire` load of the next owner `get`, so every write made through one
//! ticket is visible to the holder of the next.
//!
//! Why not a compare-and-swap on every `get`, as a simpler design would? A
//! compare-and-swap is several times the cost of a load and a store, and the
//! whole point of this slot is the nanosecond path. The price is that only the
//! owner thread can ever take or drop this value: a `trim` from another
//! thread cannot reach it, and if the owner thread exits, its idle value stays
//! until the pool is dropped.
//!
//! `owner` and `state` sit on different cache lines: every `get` from every
//! thread reads `owner`, which never changes after the claim, so its line stays
//! shared in all caches; `state` and the value are written by the owner thread
//! on each `get`, and only that thread reads them on the fast path.

use crossbeam_utils::CachePadded;
use mempool_policies::sync::{AtomicU8, AtomicUsize, Ordering};
use std::cell::UnsafeCell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

const EMPTY: u8 = 0;
const FULL: u8 = 1;
const IN_USE: u8 = 2;

/// The fast slot of a pool. See the module docs for the protocol.
pub(crate) struct OwnerSlot<T> {
    /// Thread number of the owner, 0 while unclaimed. Written once.
    owner: AtomicUsize,
    hot: CachePadded<Hot<T>>,
}

/// What the owner thread writes on every get: the value and its state.
/// `repr(C)` with the value first, so that a pointer to `Hot` is a pointer to
/// the value, the same word a boxed value's guard holds: a guard reads its
/// value through one pointer, wherever the value lives.
#[repr(C)]
struct Hot<T> {
    /// Initialized exactly when `state` is `FULL`, or `IN_USE` with a live
    /// ticket.
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicU8,
}

// SAFETY: the slot hands its value to one ticket holder at a time (protocol
// above), and a ticket holder may be on any thread, so sharing the slot only
// ever *sends* the value between threads: `T: Send` is what is needed, as for
// `Mutex<T>`. No `&T` is reachable through `&OwnerSlot<T>` alone.
unsafe impl<T: Send> Sync for OwnerSlot<T> {}

impl<T> OwnerSlot<T> {
    pub(crate) fn new() -> Self {
        OwnerSlot {
            owner: AtomicUsize::new(0),
            hot: CachePadded::new(Hot {
                value: UnsafeCell::new(MaybeUninit::uninit()),
                state: AtomicU8::new(EMPTY),
            }),
        }
    }

    /// The owner's thread number, or 0 while unclaimed.
    #[inline]
    pub(crate) fn owner(&self) -> usize {
        // Relaxed: the number carries no data with it. A stale 0 only sends
        // a thread down the slow path, where `claim` settles it.
        self.owner.load(Ordering::Relaxed)
    }

    /// The fast path: the owner thread takes the idle value.
    #[inline(always)]
    pub(crate) fn take_ticket(&self, caller: usize) -> Option<Ticket<T>> {
        // `owner` first: a thread that is not the owner must not read `state`,
        // whose cache line the owner thread writes on every get.
        if self.owner() == caller && self.hot.state.load(Ordering::Acquire) == FULL {
            // Rule 2: only `caller` leaves an idle state, so nobody can have
            // changed `state` since the load. Relaxed: nothing is published.
            self.hot.state.store(IN_USE, Ordering::Relaxed);
            return Some(Ticket {
                hot: NonNull::from(&*self.hot),
            });
        }
        None
    }

    /// Makes `caller` the owner if the slot has none. True if it did.
    pub(crate) fn claim(&self, caller: usize) -> bool {
        self.owner
            .compare_exchange(0, caller, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    }

    /// Whether `caller` owns the slot and the slot is idle and empty, so that
    /// `fill` would succeed.
    pub(crate) fn is_empty_for(&self, caller: usize) -> bool {
        self.owner() == caller && self.hot.state.load(Ordering::Acquire) == EMPTY
    }

    /// The owner thread puts `value` in an empty slot and takes a ticket for
    /// it. Gives the value back if `caller` is not the owner or the slot is
    /// not empty.
    pub(crate) fn fill(&self, caller: usize, value: T) -> Result<Ticket<T>, T> {
        if !self.is_empty_for(caller) {
            return Err(value);
        }
        self.hot.state.store(IN_USE, Ordering::Relaxed);
        // SAFETY: the slot was EMPTY and `caller` is its owner, and we moved
        // it to IN_USE (rule 2: nobody else could have changed it in between),
        // so this thread is the only one that may touch the value, which is
        // uninitialized: writing it leaks nothing.
        unsafe { (*self.hot.value.get()).write(value) };
        Ok(Ticket {
            hot: NonNull::from(&*self.hot),
        })
    }

    /// The owner thread moves the idle value out, if there is one; on any
    /// other thread, or if the value is in use, returns `None`.
    pub(crate) fn trim(&self, caller: usize) -> Option<T> {
        if self.owner() != caller || self.hot.state.load(Ordering::Acquire) != FULL {
            return None;
        }
        // SAFETY: `caller` owns the slot and it is FULL: by rule 2 no other
        // thread can take a ticket or touch the value, and this thread is busy
        // here. The read leaves the value uninitialized, which EMPTY records.
        let value = unsafe { (*self.hot.value.get()).assume_init_read() };
        self.hot.state.store(EMPTY, Ordering::Release);
        Some(value)
    }

    /// Whether the slot holds an idle value (stale at once under concurrency).
    pub(crate) fn is_full(&self) -> bool {
        self.hot.state.load(Ordering::Relaxed) == FULL
    }

    /// A word for `Debug` output.
    pub(crate) fn state_name(&self) -> &'static str {
        match self.hot.state.load(Ordering::Relaxed) {
            FULL => "idle",
            IN_USE => "in use",
            _ => "empty",
        }
    }
}

impl<T> Drop for OwnerSlot<T> {
    fn drop(&mut self) {
        // A load, not `get_mut`: loom's atomics have no `get_mut`.
        if self.hot.state.load(Ordering::Relaxed) == FULL {
            // SAFETY: `&mut self` means no ticket or other thread can use the
            // slot, and FULL means the value is initialized.
            unsafe { self.hot.value.get_mut().assume_init_drop() };
        }
        // IN_USE here means a guard was leaked with `mem::forget`: its value
        // leaks with it, which is safe.
    }
}

/// Exclusive use of the owner slot's value, from the move to `IN_USE` until
/// [`release`](Ticket::release), [`take`](Ticket::take) or drop. Not `Clone`:
/// there is one ticket per `IN_USE` period.
///
/// Holds a pointer into the pool, so it must not outlive the pool: a ticket
/// lives only inside a guard, which borrows the pool or holds an `Arc` of it.
#[derive(Debug)]
pub(crate) struct Ticket<T> {
    hot: NonNull<Hot<T>>,
}

// SAFETY: a ticket is exclusive use of one `T` (protocol above), so moving it
// to another thread moves that use, as moving a `Box<T>` would: sound when
// `T: Send`. The state it writes is atomic.
unsafe impl<T: Send> Send for Ticket<T> {}
// SAFETY: through `&Ticket` only `&T` can be had, as through `&Box<T>`: sound
// when `T: Sync`.
unsafe impl<T: Sync> Sync for Ticket<T> {}

impl<T> Ticket<T> {
    fn hot(&self) -> &Hot<T> {
        // SAFETY: the pointer came from a live `&Hot` in a pool, and the
        // ticket does not outlive the pool (see the type's docs).
        unsafe { self.hot.as_ref() }
    }

    /// The value.
    #[inline(always)]
    pub(crate) fn value(&self) -> &T {
        // SAFETY: a ticket exists only while the slot is IN_USE with the value
        // initialized, and it is the only way to the value (rule 3); the
        // reference borrows the ticket, which `release`, `take` and `drop`
        // consume, so the value stays initialized and ours while it lives.
        unsafe { (*self.hot().value.get()).assume_init_ref() }
    }

    /// The value, mutably.
    #[inline(always)]
    pub(crate) fn value_mut(&mut self) -> &mut T {
        // SAFETY: as in `value`; the ticket is borrowed mutably, so this is the
        // only reference to the value made through it.
        unsafe { (*self.hot().value.get()).assume_init_mut() }
    }

    /// Ends the ticket and keeps the value in the slot for the next get.
    #[inline(always)]
    pub(crate) fn release(self) {
        let this = ManuallyDrop::new(self);
        // Release: the next holder, after its Acquire load of FULL, sees
        // every write made to the value through this ticket.
        this.hot().state.store(FULL, Ordering::Release);
    }

    /// Ends the ticket and moves the value out, leaving the slot empty.
    pub(crate) fn take(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the ticket gives us the initialized value alone; reading it
        // out leaves the memory logically uninitialized, which the EMPTY
        // store records before anybody else can see the slot again. The
        // ticket's own `Drop` does not run (ManuallyDrop), so the value is
        // not dropped as well.
        let value = unsafe { (*this.hot().value.get()).assume_init_read() };
        this.hot().state.store(EMPTY, Ordering::Release);
        value
    }
}

impl<T> Drop for Ticket<T> {
    /// A ticket dropped without `release` or `take` (a reset hook panicked
    /// while it was held) drops the value and leaves the slot empty, so the
    /// pool stays usable and never hands out a half-reset value.
    fn drop(&mut self) {
        // SAFETY: the ticket still holds the initialized value alone (as in
        // `value_mut`); after the drop it is uninitialized, and EMPTY says so.
        unsafe { (*self.hot().value.get()).assume_init_drop() };
        self.hot().state.store(EMPTY, Ordering::Release);
    }
}
