//! A slot: one value that one thread (the slot's *own thread*) takes and
//! returns without a lock or a read-modify-write atomic, and that any other
//! thread can still take once it is idle (to reuse it, for `trim`, `decay` or
//! the pool's drop), through an asymmetric barrier.
//!
//! The pool's two owner slots are two of these (their own thread is the
//! pool's owner), and so is each of the two slots of a thread's pocket in
//! [`PerThread`] (their own thread is the one holding the pocket's index in
//! `ThreadSlots`; indices pass from an exited thread to a later one through a
//! mutex, so a pocket has one own thread at a time). This module is the one place whose
//! `unsafe` code rests on this protocol; it is spelled out here in full.
//!
//! [`PerThread`]: crate::PerThread
//!
//! # Protocol
//!
//! A slot has a value cell, a `state`, one of `EMPTY`, `FULL` (both *idle*)
//! or `IN_USE`, and a steal word with the bits `FENCE` (fallback barrier mode,
//! fixed at creation: see `barrier.rs`), `STEALING` (a thief is in) and
//! `TAKEN` (a thief took the value; `state` still says `FULL` until the own
//! thread notices).
//!
//! 1. Only the own thread moves `state` out of an idle state into `IN_USE`,
//!    with a plain store, and then, before it touches the value:
//!    `barrier::light()`, a load of the steal word (`Acquire`; after a `SeqCst`
//!    fence and a second load if it has `FENCE`). If the word has `STEALING`,
//!    the own thread puts the idle state back and gives up this attempt (it
//!    gets a value elsewhere). If it has `TAKEN`, the value is gone: the own
//!    thread stores `EMPTY`, clears the word (no thief can enter while `TAKEN`
//!    is set) and gives up. Else it holds a [`Ticket`].
//! 2. The ticket, and nothing else, gives access to the value; it ends with a
//!    store of `FULL` (value kept: [`Ticket::release`]) or `EMPTY` (value moved
//!    out by [`Ticket::take`], or dropped when the ticket is, as when a reset
//!    hook panics), `Release`, which may happen on another thread if the guard
//!    holding the ticket was sent there.
//! 3. A thief (any thread, the own thread's `trim` included) first sees
//!    `state == FULL` (a hint), then moves the word from clean to `STEALING`
//!    by compare-and-swap (`Acquire`; this fails while another thief is in or
//!    `TAKEN` is set): [`Slot::announce`]. Then it calls `barrier::heavy()`
//!    (one call serves every slot it announced itself to), then loads `state`
//!    (`Acquire`): [`Slot::finish_steal`]. Only if it is `FULL` may it move the
//!    value out, and then it stores the word with `TAKEN`; else it clears
//!    `STEALING`. Both stores are `Release`. A thief never writes `state`.
//!
//! # Why the value is never touched by two threads at once
//!
//! Thieves exclude each other through the compare-and-swap. A thief and a
//! ticket holder: the own thread stores `IN_USE` then loads the steal word;
//! the thief stores `STEALING` then loads `state`. By the barrier pair (see
//! `barrier.rs`) either the own thread sees `STEALING` (and gives up before
//! touching the value), or the thief sees `IN_USE` or a later state. A later
//! `FULL` is the `Release` store that ended a ticket, after which the value is
//! idle and the thief's `Acquire` load makes every write to it visible; a
//! later `EMPTY` means no value. If the own thread gave up on `STEALING` after
//! the thief had already seen the earlier `FULL` and taken the value, the own
//! thread finds `TAKEN` on its next attempt (the thief's `Release` and the own
//! thread's `Acquire` order the thief's read before any new write), and never
//! uses the stale `FULL`. A value is moved out by exactly one of: a ticket's
//! `take`, a ticket's drop, or a thief; `Drop` of the slot reads `state` and
//! `TAKEN` together to know whether a value is there.
//!
//! So the own thread's take is two loads and a store (plus one load of a word
//! that no thread writes while nobody steals, next to the value), its return
//! one store; and an idle value is never stranded: `trim` on any thread drops
//! it, and if the own thread exits, other threads reuse it.

use crate::barrier::{self, FENCE};
use crate::sync::{AtomicU8, Ordering};
use std::cell::UnsafeCell;
use std::fmt;
use std::mem::{ManuallyDrop, MaybeUninit};
use std::ptr::NonNull;

const EMPTY: u8 = 0;
const FULL: u8 = 1;
const IN_USE: u8 = 2;

/// Steal-word bit: a thief is in.
const STEALING: u8 = 2;
/// Steal-word bit: a thief took the value.
const TAKEN: u8 = 4;

/// One value, taken and returned by its own thread with plain loads and
/// stores, stealable by others. See the module docs for the protocol.
///
/// `repr(C)` with the value first, so that a pointer to the slot is a pointer
/// to the value, the same word a boxed value's guard holds: a guard reads its
/// value through one pointer, wherever the value lives.
#[repr(C)]
pub struct Slot<T> {
    /// Initialized exactly when `state` is `FULL` without `TAKEN`, or
    /// `IN_USE` with a live ticket.
    value: UnsafeCell<MaybeUninit<T>>,
    state: AtomicU8,
    /// `FENCE | STEALING | TAKEN`. In an 8-byte word of its own: the own
    /// thread stores `state` and at once loads this, and with both in one
    /// word the CPU may hold the load until the store drains.
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
// `Mutex<T>`. No `&T` is reachable through `&Slot<T>` alone.
unsafe impl<T: Send> Sync for Slot<T> {}

// A slot hands out its value only through a ticket, which drops the value
// and leaves the slot empty if a panic unwinds through it.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Slot<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for Slot<T> {}

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Slot {
            value: UnsafeCell::new(MaybeUninit::uninit()),
            state: AtomicU8::new(EMPTY),
            word: Apart(AtomicU8::new(barrier::initial_word())),
        }
    }
}

impl<T> Slot<T> {
    /// The own thread takes the idle value (rule 1).
    ///
    /// # Safety
    ///
    /// The calling thread is the slot's own thread: no other thread calls
    /// `take_ticket` or [`fill`](Slot::fill) on this slot while it runs (two
    /// threads that both saw `FULL` would both get a ticket). And the ticket
    /// ends (is released, taken or dropped) before the slot is dropped or
    /// moved: it points into the slot.
    #[inline(always)]
    pub unsafe fn take_ticket(&self) -> Option<Ticket<T>> {
        if self.state.load(Ordering::Acquire) == FULL {
            // Rule 1: only the own thread leaves an idle state, so nobody can
            // have changed `state` since the load. Relaxed: nothing is
            // published.
            self.state.store(IN_USE, Ordering::Relaxed);
            barrier::light();
            let word = self.word.load(Ordering::Acquire);
            if word == 0 || self.no_thief(word, FULL) {
                return Some(Ticket {
                    slot: NonNull::from(self),
                });
            }
        }
        None
    }

    /// Rule 1 when the steal word is not 0, after `state` was moved from
    /// `idle` to `IN_USE`: true if the value may be used; else `state` is
    /// idle again (put back, or `EMPTY` if a thief took the value).
    #[cold]
    #[inline(never)]
    fn no_thief(&self, word: u8, idle: u8) -> bool {
        let mut word = word;
        if word & FENCE != 0 {
            barrier::light_fallback();
            word = self.word.load(Ordering::Acquire);
        }
        if word & TAKEN != 0 {
            // The value is gone. No thief can enter while TAKEN is set, so
            // the own thread is the only writer of both.
            self.state.store(EMPTY, Ordering::Relaxed);
            self.word.store(word & FENCE, Ordering::Release);
            return false;
        }
        if word & STEALING != 0 {
            // Give up without touching the value: the thief may have seen
            // the idle state and be taking it (then it sets TAKEN).
            self.state.store(idle, Ordering::Release);
            return false;
        }
        true
    }

    /// Whether the slot is idle and empty, so that [`fill`](Slot::fill)
    /// would succeed unless a thief is in. Only meaningful on the own thread.
    #[inline]
    pub fn is_empty(&self) -> bool {
        self.state.load(Ordering::Acquire) == EMPTY
    }

    /// The own thread moves `value` out of its box into an empty slot and
    /// takes a ticket for it. Gives the value back if the slot is not empty or a thief is in
    /// (or, in a slot a thief took from, has been since the own thread last
    /// took: that slot keeps refusing values until the own thread takes
    /// again, so that a thread that only returns values does not invite a
    /// heavy barrier per value).
    ///
    /// # Safety
    ///
    /// As for [`take_ticket`](Slot::take_ticket): the calling thread is the
    /// slot's own thread.
    pub unsafe fn fill(&self, value: Box<T>) -> Result<Ticket<T>, Box<T>> {
        if !self.is_empty() {
            return Err(value);
        }
        self.state.store(IN_USE, Ordering::Relaxed);
        barrier::light();
        let word = self.word.load(Ordering::Acquire);
        if word != 0 && !self.no_thief(word, EMPTY) {
            return Err(value);
        }
        // SAFETY: the slot was EMPTY, we are its own thread (the caller's
        // promise: no other thread leaves an idle state), we moved it to IN_USE and saw no thief (rule 1), so this
        // thread is the only one that may touch the value, which is
        // uninitialized: writing it leaks nothing.
        unsafe { (*self.value.get()).write(*value) };
        Ok(Ticket {
            slot: NonNull::from(self),
        })
    }

    /// Thief, first step (rule 3): true if the slot looked full and this
    /// thread is now its only thief. Then the caller must call
    /// `barrier::heavy()` and [`finish_steal`](Slot::finish_steal).
    pub fn announce(&self) -> bool {
        if self.state.load(Ordering::Relaxed) != FULL {
            return false;
        }
        let clean = self.word.load(Ordering::Relaxed) & FENCE;
        self.word
            .compare_exchange(
                clean,
                clean | STEALING,
                Ordering::Acquire,
                Ordering::Relaxed,
            )
            .is_ok()
    }

    /// Thief, after `barrier::heavy()`: takes the value if the slot is still
    /// full and `take` is true, and withdraws either way.
    ///
    /// # Safety
    ///
    /// The caller's [`announce`](Slot::announce) on this slot returned true,
    /// it has called `barrier::heavy()` since, and this is its one
    /// `finish_steal` for that announce.
    pub unsafe fn finish_steal(&self, take: bool) -> Option<T> {
        let clean = self.word.load(Ordering::Relaxed) & FENCE;
        let value = if take && self.state.load(Ordering::Acquire) == FULL {
            // SAFETY: we hold STEALING (our announce, the caller's promise),
            // issued the heavy barrier since and then saw FULL: by rule 1 the own thread will
            // not use the value (it sees STEALING or TAKEN first), the
            // Acquire load makes the last ticket's writes visible, and TAKEN
            // was clear when we entered, so the value is initialized and ours
            // alone to move out.
            Some(unsafe { (*self.value.get()).assume_init_read() })
        } else {
            None
        };
        let done = if value.is_some() {
            clean | TAKEN
        } else {
            clean
        };
        self.word.store(done, Ordering::Release);
        value
    }

    /// Takes the value with exclusive access (no protocol needed).
    pub fn take_mut(&mut self) -> Option<T> {
        if !self.is_full() {
            return None;
        }
        self.state.store(EMPTY, Ordering::Relaxed);
        // SAFETY: `&mut self` means no ticket or other thread can use the
        // slot, and FULL without TAKEN means the value is initialized; EMPTY
        // now records that it was moved out.
        Some(unsafe { self.value.get_mut().assume_init_read() })
    }

    /// Whether the slot holds an idle value (stale at once under concurrency).
    pub fn is_full(&self) -> bool {
        self.state.load(Ordering::Relaxed) == FULL && self.word.load(Ordering::Relaxed) & TAKEN == 0
    }

    /// A word for `Debug` output.
    fn state_name(&self) -> &'static str {
        if self.word.load(Ordering::Relaxed) & TAKEN != 0 {
            return "empty";
        }
        match self.state.load(Ordering::Relaxed) {
            FULL => "idle",
            IN_USE => "in use",
            _ => "empty",
        }
    }
}

impl<T> Drop for Slot<T> {
    fn drop(&mut self) {
        // IN_USE here means a guard was leaked with `mem::forget`: its value
        // leaks with it, which is safe.
        drop(self.take_mut());
    }
}

impl<T> fmt::Debug for Slot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.state_name())
    }
}

/// Exclusive use of a slot's value, from the move to `IN_USE` until
/// [`release`](Ticket::release), [`take`](Ticket::take) or drop. Not `Clone`:
/// there is one ticket per `IN_USE` period.
///
/// Holds a pointer to the slot, so it must not outlive it: a ticket lives
/// only inside a pool's guard, which borrows the pool or holds an `Arc` of it.
#[derive(Debug)]
pub struct Ticket<T> {
    slot: NonNull<Slot<T>>,
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
    fn slot(&self) -> &Slot<T> {
        // SAFETY: the pointer came from a live `&Slot`, and the ticket does
        // not outlive the slot (see the type's docs).
        unsafe { self.slot.as_ref() }
    }

    /// Whether this is a ticket for `slot`.
    #[inline(always)]
    pub fn is_for(&self, slot: &Slot<T>) -> bool {
        std::ptr::eq(self.slot.as_ptr(), slot)
    }

    /// The value.
    #[inline(always)]
    pub fn value(&self) -> &T {
        // SAFETY: a ticket exists only while the slot is IN_USE with the value
        // initialized, and it is the only way to the value (rule 2); the
        // reference borrows the ticket, which `release`, `take` and `drop`
        // consume, so the value stays initialized and ours while it lives.
        unsafe { (*self.slot().value.get()).assume_init_ref() }
    }

    /// The value, mutably.
    #[inline(always)]
    pub fn value_mut(&mut self) -> &mut T {
        // SAFETY: as in `value`; the ticket is borrowed mutably, so this is the
        // only reference to the value made through it.
        unsafe { (*self.slot().value.get()).assume_init_mut() }
    }

    /// Ends the ticket and keeps the value in the slot for the next take.
    #[inline(always)]
    pub fn release(self) {
        let this = ManuallyDrop::new(self);
        // Release: the next holder, after its Acquire load of FULL, sees
        // every write made to the value through this ticket.
        this.slot().state.store(FULL, Ordering::Release);
    }

    /// Ends the ticket and moves the value out, leaving the slot empty.
    pub fn take(self) -> T {
        let this = ManuallyDrop::new(self);
        // SAFETY: the ticket gives us the initialized value alone; reading it
        // out leaves the memory logically uninitialized, which the EMPTY
        // store records before anybody else can see the slot again. The
        // ticket's own `Drop` does not run (ManuallyDrop), so the value is
        // not dropped as well.
        let value = unsafe { (*this.slot().value.get()).assume_init_read() };
        this.slot().state.store(EMPTY, Ordering::Release);
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
        unsafe { (*self.slot().value.get()).assume_init_drop() };
        self.slot().state.store(EMPTY, Ordering::Release);
    }
}
