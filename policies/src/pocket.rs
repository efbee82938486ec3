//! A pocket: two [`Slot`]s with one own thread, so that a thread that holds
//! two values at once (a nested call, a parser with two scratch buffers)
//! takes and returns both with plain loads and stores. A pool's first thread
//! has one inside the pool; with a strategy that asks for them, every other
//! thread has one of its own (its own thread is the thread holding the
//! pocket's index in `ThreadSlots`). The protocol, and every `unsafe` proof
//! it rests on, is in `slot.rs`; the own thread's operations are the slots'
//! own, called by the pool for the slot it means.

use crate::slot::Slot;
use std::fmt;

/// Two slots. A get tries the first one inline and the second one out of
/// line, so a thread that holds one value at a time keeps it in the first.
pub struct Pocket<T> {
    slots: [Slot<T>; 2],
}

impl<T> Default for Pocket<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Pocket<T> {
    crate::const_unless_loom! {
        /// Two empty slots.
        pub fn new() -> Self {
            Pocket {
                slots: [Slot::new(), Slot::new()],
            }
        }
    }

    /// Both slots: a get tries them inline, first then second; a thief
    /// looks at both, and a guard's slot is told apart by its address.
    #[inline(always)]
    pub fn slots(&self) -> &[Slot<T>; 2] {
        &self.slots
    }

    /// Every value, for an owner of the whole pool (no protocol needed).
    pub fn take_all(&mut self, out: &mut Vec<Box<T>>) {
        for slot in &mut self.slots {
            out.extend(slot.take_mut());
        }
    }

    /// How many slots hold an idle value (exact when no other thread uses
    /// the pocket).
    pub fn idle(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_full()).count()
    }
}

impl<T> fmt::Debug for Pocket<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(&self.slots).finish()
    }
}
