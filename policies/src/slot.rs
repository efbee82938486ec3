//! A slot: one value that one thread (the slot's *own thread*) takes and
//! returns without a lock or a read-modify-write atomic, and that any other
//! thread can still take once it is idle (to reuse it, for `trim`, `decay` or
//! the pool's drop), through an asymmetric barrier.
//!
//! A pool's slots come in pockets of two (`pocket.rs`): the pool's first
//! thread has one inside the pool, and with a strategy that asks for them
//! ([`Spill::pockets`](crate::Spill::pockets)) every other thread has one on
//! a cache line of its own (its own thread is the one holding the pocket's
//! index in `ThreadSlots`; indices pass from an exited thread to a later one
//! through a mutex, so a pocket has one own thread at a time). This module
//! is the one place whose `unsafe` code rests on this protocol; it is spelled
//! out here in full.
//!
//! # Protocol
//!
//! A slot has a value pointer (every value lives in a `Box` of its own, so
//! that it moves between a slot, the spill and a guard as a pointer), a
//! `state`, one of `EMPTY`, `FULL` (both *idle*) or `IN_USE`, and a steal
//! word with the bits `FENCE` (fallback barrier mode: see `barrier.rs`),
//! `STEALING` (a thief is in), `TAKEN` (a thief took the value; `state` still
//! says `FULL` until the own thread notices) and `UNSET` (the slot has never
//! held a value, and the mode is not known yet: a slot is made by a `const fn`,
//! before the mode can be asked).
//!
//! 1. Only the own thread moves `state` out of an idle state. From `FULL` it
//!    stores `IN_USE` (plain store), then `barrier::light()`, then loads the
//!    steal word (`Acquire`; after a `SeqCst` fence and a second load if it
//!    has `FENCE`). If the word has `STEALING`, the own thread puts `FULL`
//!    back and gives up this attempt (it gets a value elsewhere). If it has
//!    `TAKEN`, the value is gone: the own thread stores `EMPTY`, clears the
//!    word (no thief can enter while `TAKEN` is set) and gives up. Else the
//!    value is lent to it: [`Slot::begin_take`], [`Slot::settle`].
//! 2. From `EMPTY`, the own thread attaches a value: it writes the value
//!    pointer (and, on first use, the word's mode in place of `UNSET`), then
//!    stores `IN_USE` (lending the value at once: [`Slot::lend`]) or `FULL`
//!    (`Release`: keeping it idle, [`Slot::keep`]). No barrier: a thief only
//!    reads the pointer after it saw `FULL` with `Acquire`, which orders the
//!    pointer's write before its read.
//! 3. A lent value goes back with a store of `FULL` ([`Slot::release`]) or,
//!    when it was moved out or dropped, `EMPTY` ([`Slot::vacate`]), both
//!    `Release`, by whichever thread holds it then (a guard may have been
//!    sent to another thread). Nothing else writes `state` while the value
//!    is lent.
//! 4. A thief (any thread, the own thread's `trim` included) first sees
//!    `state == FULL` (a hint), then moves the word from clean to `STEALING`
//!    by compare-and-swap (`Acquire`; this fails while another thief is in,
//!    `TAKEN` or `UNSET` is set): [`Slot::announce`]. Then it calls
//!    `barrier::heavy()` (one call serves every slot it announced itself to),
//!    then loads `state` (`Acquire`): [`Slot::finish_steal`]. Only if it is
//!    `FULL` may it take the value, and then it stores the word with `TAKEN`;
//!    else it clears `STEALING`. Both stores are `Release`. A thief never
//!    writes `state`.
//!
//! # Why a value is never used by two threads at once
//!
//! Thieves exclude each other through the compare-and-swap. A thief and the
//! own thread taking: the own thread stores `IN_USE` then loads the steal
//! word; the thief stores `STEALING` then loads `state`. By the barrier pair
//! (see `barrier.rs`) either the own thread sees `STEALING` (and gives up
//! before it reads the pointer), or the thief sees `IN_USE` or a later
//! state. A later `FULL` is the `Release` store that ended a lending or
//! attached a value (rules 2, 3), after which the value is idle and the
//! thief's `Acquire` load makes every write to it visible; a later `EMPTY`
//! means no value. If the own thread gave up on `STEALING` after the thief had
//! already seen the earlier `FULL` and taken the value, the own thread finds `TAKEN`
//! on its next attempt (the thief's `Release` and the own thread's `Acquire`
//! order the thief's read before any new write), and never uses the stale
//! `FULL`. A thief that announced itself while the slot was `EMPTY` (its
//! hint was stale) sees `EMPTY`, `IN_USE` or a `FULL` that rule 2 or 3
//! published, never the `FULL` of a value the own thread has since taken:
//! that take's word load did not see the thief, so by the barrier pair the
//! thief sees its `IN_USE` or later. A value leaves a slot through exactly
//! one of: the own thread's take (then its borrower ends it with rule 3), a
//! thief, or the slot's drop, which reads `state` and `TAKEN` together.
//!
//! So the own thread's take is two loads and a store (plus one load of a word
//! that no thread writes while nobody steals), its return one store; and an
//! idle value is never stranded: `trim` on any thread drops it, and if the
//! own thread exits, other threads reuse it.

use crate::barrier::{self, FENCE};
use crate::sync::{AtomicU8, Ordering, PtrCell};
use std::fmt;
use std::ptr::NonNull;

const EMPTY: u8 = 0;
const FULL: u8 = 1;
const IN_USE: u8 = 2;

/// Steal-word bit: a thief is in.
const STEALING: u8 = 2;
/// Steal-word bit: a thief took the value.
const TAKEN: u8 = 4;
/// Steal-word bit: the slot has never held a value; its mode is not set.
/// (Never set under loom, whose slots start in their mode: see `Slot::new`.)
#[cfg_attr(loom, allow(dead_code))]
const UNSET: u8 = 8;

/// One value, taken and returned by its own thread with plain loads and
/// stores, stealable by others. See the module docs for the protocol.
pub struct Slot<T> {
    /// Written by the own thread on every take, and by a returning guard on
    /// every return.
    state: AtomicU8,
    /// A value from `Box::into_raw`, owned by the slot, exactly when `state`
    /// is `FULL` without `TAKEN`, or `IN_USE`; dangling otherwise, and never
    /// read then.
    value: PtrCell<T>,
    /// `FENCE | STEALING | TAKEN | UNSET`. In an 8-byte word of its own: the
    /// own thread stores `state` and at once loads this, and with both in
    /// one word the CPU may hold the load until the store drains.
    word: Apart<AtomicU8>,
}

/// Aligns its content to 8 bytes, so that it shares no 8-byte word with the
/// field before it.
#[repr(align(8))]
struct Apart<T>(T);

impl<T> std::ops::Deref for Apart<T> {
    type Target = T;
    #[inline(always)]
    fn deref(&self) -> &T {
        &self.0
    }
}

// SAFETY: the slot lends its value to one holder at a time (protocol above),
// and a holder may be on any thread, so sharing the slot only ever *sends*
// the value between threads: `T: Send` is what is needed, as for `Mutex<T>`.
// No `&T` is reachable through `&Slot<T>` alone.
unsafe impl<T: Send> Sync for Slot<T> {}
// SAFETY: a slot owns at most one value, as a `Box<T>` would.
unsafe impl<T: Send> Send for Slot<T> {}

// A slot hands out its value only to a holder, who empties the slot if a
// panic unwinds through it.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Slot<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for Slot<T> {}

impl<T> Slot<T> {
    /// An empty slot.
    #[cfg(not(loom))]
    pub const fn new() -> Self {
        Slot {
            state: AtomicU8::new(EMPTY),
            value: PtrCell::null(),
            word: Apart(AtomicU8::new(UNSET)),
        }
    }

    /// An empty slot. Under loom, whose atomics cannot be made in a
    /// constant, the word starts in its mode (the fallback's), so the models
    /// skip the `UNSET` step: a step of the own thread alone, on a word no
    /// thief can enter (rule 4's compare-and-swap never matches `UNSET`).
    #[cfg(loom)]
    pub fn new() -> Self {
        Slot {
            state: AtomicU8::new(EMPTY),
            value: PtrCell::null(),
            word: Apart(AtomicU8::new(barrier::initial_word())),
        }
    }

    /// The own thread's take, first half (rule 1): if the slot is `FULL`,
    /// marks it `IN_USE` and returns the steal word. If that is 0, the value
    /// is the caller's ([`value`](Slot::value)); else the caller must
    /// [`settle`](Slot::settle) before anything else touches the slot.
    ///
    /// # Safety
    ///
    /// The calling thread is the slot's own thread: no other thread runs
    /// the own thread's operations on this slot while it runs (two threads
    /// that both saw `FULL` would both take the value).
    #[inline(always)]
    pub unsafe fn begin_take(&self) -> Option<u8> {
        if self.state.load(Ordering::Acquire) != FULL {
            return None;
        }
        // Rule 1: only the own thread leaves an idle state, so nobody can
        // have changed `state` since the load. Relaxed: nothing is published.
        self.state.store(IN_USE, Ordering::Relaxed);
        barrier::light();
        Some(self.word.load(Ordering::Acquire))
    }

    /// The value of a slot whose take succeeded (`begin_take` returned 0, or
    /// `settle` true), lent to the caller until it ends the lending here
    /// (rule 3).
    ///
    /// # Safety
    ///
    /// The caller's take of this slot succeeded and it has not ended the
    /// lending since.
    #[inline(always)]
    pub unsafe fn value(&self) -> NonNull<T> {
        // SAFETY: the take succeeded, so `state` is IN_USE with a live value
        // (the pointer's invariant), written before the FULL this thread
        // read with Acquire, or by this thread itself; no thread writes the
        // pointer while the value is lent.
        unsafe { NonNull::new_unchecked(self.value.read()) }
    }

    /// Rule 1 when the steal word was not 0, after `state` was moved from
    /// `FULL` to `IN_USE`: true if the value is the caller's after all (the
    /// word only had `FENCE`); else `state` is idle again (`FULL` put back,
    /// or `EMPTY` if a thief took the value).
    ///
    /// # Safety
    ///
    /// `word` is what this thread's [`begin_take`](Slot::begin_take) of this
    /// slot just returned, not 0, and nothing has touched the slot since.
    #[cold]
    #[inline(never)]
    pub unsafe fn settle(&self, word: u8) -> bool {
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
            self.state.store(FULL, Ordering::Release);
            return false;
        }
        true
    }

    /// The own thread's whole take (rule 1): the value, lent, if the slot
    /// was `FULL` and no thief is about.
    ///
    /// # Safety
    ///
    /// As for [`begin_take`](Slot::begin_take).
    pub unsafe fn take(&self) -> Option<NonNull<T>> {
        // SAFETY: the caller's promise, passed on; `settle` gets the word
        // this take returned, at once.
        unsafe {
            let word = self.begin_take()?;
            (word == 0 || self.settle(word)).then(|| self.value())
        }
    }

    /// Whether the slot is idle and empty, so that [`lend`](Slot::lend) and
    /// [`keep`](Slot::keep) would succeed. Only meaningful on the own thread.
    pub fn is_empty(&self) -> bool {
        self.state.load(Ordering::Acquire) == EMPTY
    }

    /// Rule 2, up to the state store: writes the value pointer, and settles
    /// an `UNSET` word; gives the value back if the slot is not `EMPTY`. (A
    /// slot a thief took from looks `FULL` until the own thread takes from it
    /// again, so it refuses values until then: a thread that only returns
    /// values does not invite a heavy barrier per value.)
    ///
    /// # Safety
    ///
    /// As for [`begin_take`](Slot::begin_take).
    unsafe fn attach(&self, value: Box<T>) -> Result<NonNull<T>, Box<T>> {
        if !self.is_empty() {
            return Err(value);
        }
        // SAFETY: `Box::into_raw` never returns null.
        let value = unsafe { NonNull::new_unchecked(Box::into_raw(value)) };
        // SAFETY: the slot is EMPTY and we are its own thread (the caller's
        // promise): no other thread reads or writes the pointer until a
        // FULL or IN_USE store of ours publishes it (rule 4 reads it only
        // after an Acquire FULL; rule 3 only with a lent value).
        unsafe { self.value.write(value.as_ptr()) };
        #[cfg(not(loom))]
        if self.word.load(Ordering::Relaxed) == UNSET {
            // Only the own thread writes an UNSET word (no thief's
            // compare-and-swap matches it), and only here.
            self.word.store(barrier::initial_word(), Ordering::Relaxed);
        }
        Ok(value)
    }

    /// Rule 2: the own thread puts a value in this empty slot and lends it
    /// to the caller at once (`IN_USE`), for a guard that returns it here.
    /// Gives the value back if the slot is not `EMPTY`.
    ///
    /// # Safety
    ///
    /// As for [`begin_take`](Slot::begin_take).
    pub unsafe fn lend(&self, value: Box<T>) -> Result<NonNull<T>, Box<T>> {
        // SAFETY: the caller's promise, passed on.
        let value = unsafe { self.attach(value)? };
        // Relaxed: no thief reads anything on IN_USE.
        self.state.store(IN_USE, Ordering::Relaxed);
        Ok(value)
    }

    /// Rule 2: the own thread puts a value in this empty slot and keeps it
    /// idle (`FULL`). Gives it back if the slot is not `EMPTY`.
    ///
    /// # Safety
    ///
    /// As for [`begin_take`](Slot::begin_take).
    pub unsafe fn keep(&self, value: Box<T>) -> Result<(), Box<T>> {
        // SAFETY: the caller's promise, passed on.
        unsafe { self.attach(value)? };
        // Release: a thief that sees FULL with Acquire sees the pointer.
        self.state.store(FULL, Ordering::Release);
        Ok(())
    }

    /// Rule 3: a lent value comes back to its slot, to be kept. Any thread.
    ///
    /// # Safety
    ///
    /// The caller holds the value this slot lent, ends the lending here, and
    /// does not touch the value afterwards.
    #[inline(always)]
    pub unsafe fn release(&self) {
        // Release: the next taker, after its Acquire load of FULL, sees every
        // write made to the value while it was lent.
        self.state.store(FULL, Ordering::Release);
    }

    /// Rule 3: a lent value was moved out or dropped, and its box freed (or
    /// about to be, by the caller): the slot is empty. Any thread.
    ///
    /// # Safety
    ///
    /// As for [`release`](Slot::release).
    pub unsafe fn vacate(&self) {
        self.state.store(EMPTY, Ordering::Release);
    }

    /// Thief, first step (rule 4): true if the slot looked full and this
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
    pub unsafe fn finish_steal(&self, take: bool) -> Option<Box<T>> {
        let clean = self.word.load(Ordering::Relaxed) & FENCE;
        let taken = if take && self.state.load(Ordering::Acquire) == FULL {
            // SAFETY: we hold STEALING (our announce, the caller's promise),
            // issued the heavy barrier since and then saw FULL: by rule 1 the
            // own thread will not take the value (it sees STEALING or TAKEN
            // first), nobody else writes the pointer while FULL, the Acquire
            // load makes the pointer and the value's last writes visible, and
            // TAKEN was clear when we entered, so the box is live and ours
            // alone to own.
            Some(unsafe { Box::from_raw(self.value.read()) })
        } else {
            None
        };
        let done = if taken.is_some() {
            clean | TAKEN
        } else {
            clean
        };
        self.word.store(done, Ordering::Release);
        taken
    }

    /// Takes the value with exclusive access (no protocol needed).
    pub fn take_mut(&mut self) -> Option<Box<T>> {
        if !self.is_full() {
            return None;
        }
        self.state.store(EMPTY, Ordering::Relaxed);
        // SAFETY: `&mut self` means no holder or other thread can use the
        // slot, and FULL without TAKEN means the pointer is a live box that
        // the slot owns; EMPTY now records that it left.
        Some(unsafe { Box::from_raw(self.value.get_mut()) })
    }

    /// Whether the slot holds a value, idle or lent, judged from one load
    /// of its state (stale at once under concurrency; a value a thief is
    /// taking at that moment may still count).
    pub fn holds_value(&self) -> bool {
        match self.state.load(Ordering::Relaxed) {
            IN_USE => true,
            FULL => self.word.load(Ordering::Relaxed) & TAKEN == 0,
            _ => false,
        }
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

impl<T> Default for Slot<T> {
    fn default() -> Self {
        Self::new()
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
