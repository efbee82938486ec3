//! The owner slot: one value that the pool's owner thread takes and returns
//! without a lock or a read-modify-write atomic, and that any other thread
//! can still take once it is idle (to reuse it, or for `trim`), through an
//! asymmetric barrier.
//!
//! This module and `mempool_policies`' `pocket.rs` are the two places whose
//! `unsafe` code rests on a protocol between threads; `guard.rs` relies on
//! this one. It is spelled out here in full.
//!
//! # Protocol
//!
//! The slot has an `owner` (a thread number from
//! [`mempool_policies::thread_id`], or 0 while no thread has claimed it), a
//! `state`, one of `EMPTY`, `FULL` (both *idle*) or `IN_USE`, and a steal
//! word with the bits `FENCE` (fallback barrier mode, fixed at creation: see
//! `mempool_policies`' `barrier.rs`), `STEALING` (a thief is in) and `TAKEN`
//! (a thief took the value; `state` still says `FULL` until the owner thread
//! notices).
//!
//! 1. `owner` goes from 0 to a thread number once, by compare-and-swap, and
//!    never changes again. Thread numbers are never reused, so after the claim
//!    exactly one thread, alive or not, is the owner.
//! 2. Only the owner thread moves `state` out of an idle state into
//!    `IN_USE`, with a plain store, and then, before it touches the value:
//!    `barrier::light()`, a load of the steal word (`Acquire`; after a `SeqCst`
//!    fence and a second load if it has `FENCE`). If the word has `STEALING`,
//!    the owner puts the idle state back and gives up this attempt (it gets a
//!    value elsewhere). If it has `TAKEN`, the value is gone: the owner stores
//!    `EMPTY`, clears the word (no thief can enter while `TAKEN` is set) and
//!    gives up. Else it holds a [`Ticket`].
//! 3. The ticket, and nothing else, gives access to the value; it ends with a
//!    store of `FULL` (value kept: [`Ticket::release`]) or `EMPTY` (value moved
//!    out by [`Ticket::take`], or dropped when the ticket is, as when a reset
//!    hook panics), `Release`, which may happen on another thread if the guard
//!    holding the ticket was sent there.
//! 4. A thief (any thread, the owner's own `trim` included) first sees
//!    `state == FULL` (a hint), then moves the word from clean to `STEALING`
//!    by compare-and-swap (`Acquire`; this fails while another thief is in or
//!    `TAKEN` is set), then calls `barrier::heavy()`, then loads `state`
//!    (`Acquire`). Only if it is `FULL` does it move the value out, and then
//!    it stores the word with `TAKEN`; else it clears `STEALING`. Both stores
//!    are `Release`. A thief never writes `state`.
//!
//! # Why the value is never touched by two threads at once
//!
//! Thieves exclude each other through the compare-and-swap. A thief and a
//! ticket holder: the owner stores `IN_USE` then loads the steal word; the
//! thief stores `STEALING` then loads `state`. By the barrier pair (see
//! `barrier.rs`) either the owner sees `STEALING` (and gives up before
//! touching the value), or the thief sees `IN_USE` or a later state. A later
//! `FULL` is the `Release` store that ended a ticket, after which the value
//! is idle and the thief's `Acquire` load makes every write to it visible; a
//! later `EMPTY` means no value. If the owner gave up on `STEALING` after the
//! thief had already seen the earlier `FULL` and taken the value, the owner
//! finds `TAKEN` on its next attempt (the thief's `Release` and the owner's
//! `Acquire` order the thief's read before any new write), and never uses
//! the stale `FULL`. A value is moved out by exactly one of: a ticket's
//! `take`, a ticket's drop, or a thief; `Drop` of the slot reads `state` and
//! `TAKEN` together to know whether a value is there.
//!
//! So the owner's fast path stays two loads and a store, plus one load of a
//! word that no thread writes while nobody steals, on the owner's own cache
//! line; and an idle value is never stranded: `trim` on any thread drops it,
//! and if the owner thread exits, other threads reuse it.
//!
//! `owner` and `state` sit on different cache lines: every `get` from every
//! thread reads `owner`, which never changes after the claim, so its line stays
//! shared in all caches; `state`, the steal word and the value are written by
//! the owner thread on each `get`, and only that thread reads them on the fast
//! path.

use crossbeam_utils::CachePadded;
use mempool_policies::sync::barrier::{self, FENCE};
use mempool_policies::sync::{AtomicU8, AtomicUsize, Ordering};
use std::cell::UnsafeCell;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

const EMPTY: u8 = 0;
const FULL: u8 = 1;
const IN_USE: u8 = 2;

/// Steal-word bit: a thief is in.
const STEALING: u8 = 2;
/// Steal-word bit: a thief took the value.
const TAKEN: u8 = 4;

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
    /// Initialized exactly when `state` is `FULL` without `TAKEN`, or
    /// `IN_USE` with a live ticket.
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicU8,
    /// `FENCE | STEALING | TAKEN`. In an 8-byte word of its own: the owner
    /// stores `state` and at once loads this, and with both in one word the
    /// CPU may hold the load until the store drains.
    word: Apart<AtomicU8>,
}

/// Aligns its content to 8 bytes, so that it shares no 8-byte word with the
/// field before it.
#[repr(align(8))]
struct Apart<T>(T);

impl<T> std::ops::Deref for Apart<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
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
                word: Apart(AtomicU8::new(barrier::initial_word())),
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
            barrier::light();
            let word = self.hot.word.load(Ordering::Acquire);
            if word == 0 || self.no_thief(word, FULL) {
                return Some(Ticket {
                    hot: NonNull::from(&*self.hot),
                });
            }
        }
        None
    }

    /// Rule 2 when the steal word is not 0, after `state` was moved from
    /// `idle` to `IN_USE`: true if the value may be used; else `state` is
    /// idle again (put back, or `EMPTY` if a thief took the value).
    #[inline(never)]
    fn no_thief(&self, word: u8, idle: u8) -> bool {
        let mut word = word;
        if word & FENCE != 0 {
            barrier::light_fallback();
            word = self.hot.word.load(Ordering::Acquire);
        }
        if word & TAKEN != 0 {
            // The value is gone. No thief can enter while TAKEN is set, so
            // the owner thread is the only writer of both.
            self.hot.state.store(EMPTY, Ordering::Relaxed);
            self.hot.word.store(word & FENCE, Ordering::Release);
            return false;
        }
        if word & STEALING != 0 {
            // Give up without touching the value: the thief may have seen
            // the idle state and be taking it (then it sets TAKEN).
            self.hot.state.store(idle, Ordering::Release);
            return false;
        }
        true
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
        self.owner() == caller && self.hot.state.load(Ordering::Acquire) == EMPTY
    }

    /// The owner thread puts `value` in an empty slot and takes a ticket for
    /// it. Gives the value back if `caller` is not the owner, the slot is not
    /// empty, or a thief is in.
    pub(crate) fn fill(&self, caller: usize, value: T) -> Result<Ticket<T>, T> {
        if !self.is_empty_for(caller) {
            return Err(value);
        }
        self.hot.state.store(IN_USE, Ordering::Relaxed);
        barrier::light();
        let word = self.hot.word.load(Ordering::Acquire);
        if word != 0 && !self.no_thief(word, EMPTY) {
            return Err(value);
        }
        // SAFETY: the slot was EMPTY and `caller` is its owner, and we moved
        // it to IN_USE and saw no thief (rule 2), so this thread is the only
        // one that may touch the value, which is uninitialized: writing it
        // leaks nothing.
        unsafe { (*self.hot.value.get()).write(value) };
        Ok(Ticket {
            hot: NonNull::from(&*self.hot),
        })
    }

    /// Takes the idle value, from any thread (rule 4): for `trim`, or to
    /// reuse it instead of creating. `None` if the slot holds no idle value,
    /// another thief is in, or the owner is using it. Costs a heavy barrier
    /// when the slot looks full.
    pub(crate) fn steal(&self) -> Option<T> {
        if self.hot.state.load(Ordering::Relaxed) != FULL {
            return None;
        }
        let clean = self.hot.word.load(Ordering::Relaxed) & FENCE;
        if self
            .hot
            .word
            .compare_exchange(
                clean,
                clean | STEALING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_err()
        {
            return None;
        }
        barrier::heavy();
        let value = if self.hot.state.load(Ordering::Acquire) == FULL {
            // SAFETY: we hold STEALING, issued the heavy barrier and then saw
            // FULL: by rule 2 the owner will not use the value (it sees
            // STEALING or TAKEN first), the Acquire load makes the last
            // ticket's writes visible, and TAKEN was clear when we entered,
            // so the value is initialized and ours alone to move out.
            Some(unsafe { (*self.hot.value.get()).assume_init_read() })
        } else {
            None
        };
        let done = if value.is_some() {
            clean | TAKEN
        } else {
            clean
        };
        self.hot.word.store(done, Ordering::Release);
        value
    }

    /// Whether the slot holds an idle value (stale at once under concurrency).
    pub(crate) fn is_full(&self) -> bool {
        self.hot.state.load(Ordering::Relaxed) == FULL
            && self.hot.word.load(Ordering::Relaxed) & TAKEN == 0
    }

    /// A word for `Debug` output.
    pub(crate) fn state_name(&self) -> &'static str {
        if self.hot.word.load(Ordering::Relaxed) & TAKEN != 0 {
            return "empty";
        }
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
        if self.is_full() {
            // SAFETY: `&mut self` means no ticket or other thread can use the
            // slot, and FULL without TAKEN means the value is initialized.
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

// A ticket is exclusive use of one `T`, like a `Box<T>`, and unwinds like
// one: its `Drop` drops the value and leaves the slot empty.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Ticket<T> {}
impl<T: std::panic::RefUnwindSafe> std::panic::RefUnwindSafe for Ticket<T> {}

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
