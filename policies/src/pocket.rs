//! A thread's pocket of idle values: its own thread takes and returns with
//! plain loads and stores, and any other thread may still take the values
//! out (to reuse them, for `trim`, or when the pool is dropped) through an
//! asymmetric barrier.
//!
//! This module and `owner.rs` in the `mempool` crate are the two places whose
//! `unsafe` code rests on the protocol below; it is spelled out in full.
//!
//! # Protocol
//!
//! A pocket has `SLOTS` slots, each a pointer that is null or owns a boxed
//! value; a `busy` mark, written only by the pocket's *own* thread (the thread
//! that holds the pocket's index in `ThreadSlots`; indices pass from an exited
//! thread to a later one through a mutex, so there is one own thread at a
//! time); and a steal word with three bits: `FENCE` (fallback barrier mode,
//! fixed at creation: see `barrier.rs`), `STEALING` (a thief is in) and
//! `ROBBED` (a thief took values for reuse since the own thread last took).
//!
//! *Own thread, every take and return* (`take_own`, `put_own`):
//!
//! 1. store `busy = 1` (`Relaxed`), then `barrier::light()`;
//! 2. load the steal word (`Acquire`). If it is 0, go on. If it has `FENCE`,
//!    issue `barrier::light_fallback()` (a `SeqCst` fence) and load it again.
//!    If it has `STEALING`, touch no slot: a take finds nothing, a return is
//!    refused (the caller sends the value to the shared overflow). A return
//!    is refused on `ROBBED` as well (see "Steal loops" below); a take clears
//!    `ROBBED` and goes on;
//! 3. read and write the slots with plain (`Relaxed`) loads and stores;
//! 4. store `busy = 0` (`Release`).
//!
//! *Thief* (`announce`, then `barrier::heavy()`, then `steal_announced`):
//!
//! 1. skip the pocket if every slot looks empty; else set `STEALING` with
//!    `fetch_or` (`Acquire`). If it was already set, another thief is in:
//!    skip the pocket;
//! 2. `barrier::heavy()` (one for any number of pockets announced);
//! 3. load `busy` (`Acquire`). If it is 1, take nothing. Else swap values out
//!    of the slots, plain loads and stores;
//! 4. clear `STEALING` (and set `ROBBED` if values were taken for reuse) with
//!    `fetch_and`/`fetch_or` (`Release`).
//!
//! # Why no slot is touched by two threads at once
//!
//! Thieves exclude each other through `STEALING` (a read-modify-write). A
//! thief and the own thread: the own thread stores `busy` then loads the
//! steal word; the thief stores `STEALING` then loads `busy`. The barrier
//! pair (see `barrier.rs`) makes it impossible for both loads to return the
//! old value: either the own thread sees `STEALING` and touches nothing, or
//! the thief sees `busy == 1` and takes nothing, or the own thread's whole
//! step 1-4 finished before the thief's load, whose `Acquire` then reads the
//! `Release` store of step 4 (or a later one), so the thief sees every slot
//! write of that step. In the other direction, the thief's `Release` in its
//! step 4 and the own thread's `Acquire` load in step 2 make the thief's slot
//! writes visible to the next own-thread step that proceeds.
//!
//! So at any time at most one thread reads and clears a given non-null slot,
//! and a pointer taken out is owned by its taker alone: rebuilding the `Box`
//! is sound. The own thread fills only slots it saw null while it had the
//! pocket, so no value is overwritten.
//!
//! # Steal loops
//!
//! A thread that only returns values (a consumer at the end of a pipeline)
//! would fill its pocket, be robbed by the thread that only gets, fill it
//! again, and so on: a heavy barrier per value. A thief that takes for reuse
//! sets `ROBBED`; from then on the pocket refuses returns, which go to the
//! shared overflow where the getting thread finds them without a barrier,
//! until the own thread takes from its pocket again (it gets values too, so
//! its pocket is worth keeping).

use crate::barrier::{self, FENCE};
use crate::sync::{AtomicPtr, AtomicU8, Ordering};
use std::fmt;
use std::ptr;

/// How many values a pocket holds: enough for a thread that nests two gets
/// (three on the owner thread, with the owner slot).
const SLOTS: usize = 2;

/// Steal-word bit: a thief is in.
const STEALING: u8 = 2;
/// Steal-word bit: a thief took values for reuse since the own thread last
/// took from this pocket.
const ROBBED: u8 = 4;

/// `repr(C)`, with the slots between `busy` and `word`: the own thread
/// stores `busy` and at once loads `word`, and with the two in one 8-byte word
/// the CPU may hold the load until the store drains (measured: a cycle of get
/// and return took twice as long).
#[repr(C)]
pub(crate) struct Pocket<T> {
    /// 1 while the own thread touches the slots. Written by it alone.
    busy: AtomicU8,
    /// Null, or a pointer from `Box::into_raw` owned by the pocket.
    slots: [AtomicPtr<T>; SLOTS],
    /// `FENCE | STEALING | ROBBED`.
    word: AtomicU8,
}

impl<T> Default for Pocket<T> {
    fn default() -> Self {
        Pocket {
            busy: AtomicU8::new(0),
            word: AtomicU8::new(barrier::initial_word()),
            slots: std::array::from_fn(|_| AtomicPtr::new(ptr::null_mut())),
        }
    }
}

impl<T> Pocket<T> {
    /// The own thread takes a value: from the first full slot (a thread that
    /// holds one value at a time keeps it in slot 0, one load each way).
    #[inline]
    pub(crate) fn take_own(&self) -> Option<Box<T>> {
        self.busy.store(1, Ordering::Relaxed);
        barrier::light();
        let word = self.word.load(Ordering::Acquire);
        let value = if word == 0 || self.may_take(word) {
            // SAFETY: the own thread is busy and saw no thief (protocol,
            // steps 1-2): no other thread touches the slots until step 4.
            unsafe { self.take_slot() }
        } else {
            None
        };
        self.busy.store(0, Ordering::Release);
        value
    }

    /// The own thread returns a value; `Err` gives it back when the pocket is
    /// full, a thief is in, or the pocket was robbed.
    #[inline]
    pub(crate) fn put_own(&self, value: Box<T>) -> Result<(), Box<T>> {
        self.busy.store(1, Ordering::Relaxed);
        barrier::light();
        let word = self.word.load(Ordering::Acquire);
        let result = if word == 0 || self.may_put(word) {
            self.fill_slot(value)
        } else {
            Err(value)
        };
        self.busy.store(0, Ordering::Release);
        result
    }

    /// Step 2 when the word is not 0: the fallback fence, then whether a
    /// take may go on. Clears `ROBBED`: this thread takes values too.
    #[inline(never)]
    fn may_take(&self, word: u8) -> bool {
        let word = self.settle(word);
        if word & STEALING != 0 {
            return false;
        }
        if word & ROBBED != 0 {
            self.word.fetch_and(!ROBBED, Ordering::Relaxed);
        }
        true
    }

    /// Step 2 when the word is not 0, for a return.
    #[inline(never)]
    fn may_put(&self, word: u8) -> bool {
        self.settle(word) & (STEALING | ROBBED) == 0
    }

    /// In fallback mode, the fence the heavy barrier stands in for, and the
    /// word read again after it.
    fn settle(&self, word: u8) -> u8 {
        if word & FENCE == 0 {
            return word;
        }
        barrier::light_fallback();
        self.word.load(Ordering::Acquire)
    }

    /// Takes the value of the first full slot.
    ///
    /// # Safety
    ///
    /// The caller has exclusive access to the slots (protocol above).
    unsafe fn take_slot(&self) -> Option<Box<T>> {
        for slot in &self.slots {
            let p = slot.load(Ordering::Relaxed);
            if !p.is_null() {
                slot.store(ptr::null_mut(), Ordering::Relaxed);
                // SAFETY: a non-null slot owns a pointer from
                // `Box::into_raw`; with exclusive access we are the only one
                // to read it before clearing the slot, so the box is ours.
                return Some(unsafe { Box::from_raw(p) });
            }
        }
        None
    }

    /// Puts the value in the first empty slot. Called with exclusive access
    /// (no `unsafe` needed: at worst, without it, a value would leak).
    fn fill_slot(&self, value: Box<T>) -> Result<(), Box<T>> {
        match self
            .slots
            .iter()
            .find(|s| s.load(Ordering::Relaxed).is_null())
        {
            Some(slot) => {
                slot.store(Box::into_raw(value), Ordering::Relaxed);
                Ok(())
            }
            None => Err(value),
        }
    }

    /// Thief, step 1: announces a steal if the pocket looks like it holds a
    /// value and no other thief is in. If true, the caller must call
    /// `barrier::heavy()` and then [`steal_announced`](Self::steal_announced).
    pub(crate) fn announce(&self) -> bool {
        self.len() > 0 && self.word.fetch_or(STEALING, Ordering::Acquire) & STEALING == 0
    }

    /// Thief, steps 3-4, after `barrier::heavy()`: moves up to `max` values
    /// into `out` unless the own thread is busy, then withdraws. `reuse`
    /// says the values go to another thread's use (not to be dropped), which
    /// marks the pocket `ROBBED`.
    pub(crate) fn steal_announced(&self, out: &mut Vec<Box<T>>, max: usize, reuse: bool) {
        let mut took = 0;
        if self.busy.load(Ordering::Acquire) == 0 {
            while took < max {
                // SAFETY: we announced a steal, issued the heavy barrier and
                // saw the own thread idle, so by the protocol it touches no
                // slot until we clear STEALING below, and other thieves are
                // kept out by STEALING.
                match unsafe { self.take_slot() } {
                    Some(value) => out.push(value),
                    None => break,
                }
                took += 1;
            }
        }
        if reuse && took > 0 {
            self.word.fetch_or(ROBBED, Ordering::Relaxed);
        }
        self.word.fetch_and(!STEALING, Ordering::Release);
    }

    /// Every value, for an owner of the whole spill (no protocol needed).
    pub(crate) fn take_all(&mut self, out: &mut Vec<Box<T>>) {
        for slot in &self.slots {
            // Any atomic is exclusive under `&mut`; a swap reads and clears.
            let p = slot.swap(ptr::null_mut(), Ordering::Relaxed);
            if !p.is_null() {
                // SAFETY: with `&mut self` nobody else can reach the slot, and
                // a non-null slot owns a pointer from `Box::into_raw`.
                out.push(unsafe { Box::from_raw(p) });
            }
        }
    }

    /// How many slots look full (exact when no other thread uses the pocket).
    pub(crate) fn len(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count()
    }
}

impl<T> Drop for Pocket<T> {
    fn drop(&mut self) {
        let mut values = Vec::new();
        self.take_all(&mut values);
    }
}

impl<T> fmt::Debug for Pocket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pocket").field("idle", &self.len()).finish()
    }
}

// SAFETY: a pocket owns boxed values and hands them out whole, never `&T`:
// sending or sharing it only ever moves `T`s between threads, so `T: Send` is
// what both need, as for `Mutex<Vec<Box<T>>>`. (Without these impls the raw
// pointers would make the pocket neither; `AtomicPtr<T>` alone would make it
// both, for any `T`.)
unsafe impl<T: Send> Send for Pocket<T> {}
// SAFETY: as above.
unsafe impl<T: Send> Sync for Pocket<T> {}
