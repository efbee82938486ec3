//! A pocket: two [`Slot`]s with one own thread, so that a thread that holds
//! two values at once (a nested call, a parser with two scratch buffers)
//! takes and returns both with plain loads and stores. [`PerThread`] gives
//! each thread one (its own thread is the thread holding the pocket's index
//! in `ThreadSlots`); a pool's owner slot is one too (its own thread is the
//! pool's owner). The protocol, and every `unsafe` proof it rests on, is in
//! `slot.rs`.
//!
//! [`PerThread`]: crate::PerThread

use crate::barrier;
use crate::slot::{Slot, Ticket};
use std::fmt;

/// How many values a pocket holds: enough for a thread that holds two at
/// once.
const SLOTS: usize = 2;

/// Two slots, taken and filled in order: a thread that holds one value at a
/// time keeps it in the first.
pub struct Pocket<T> {
    slots: [Slot<T>; SLOTS],
}

impl<T> Default for Pocket<T> {
    fn default() -> Self {
        Pocket {
            slots: std::array::from_fn(|_| Slot::default()),
        }
    }
}

impl<T> Pocket<T> {
    /// The own thread takes an idle value, from the first full slot.
    ///
    /// # Safety
    ///
    /// The calling thread is the pocket's own thread, and the ticket ends
    /// before the pocket is dropped or moved (see `Slot::take_ticket`).
    #[inline(always)]
    pub unsafe fn take_ticket(&self) -> Option<Ticket<T>> {
        // SAFETY: the caller's promise, passed on.
        unsafe {
            match self.slots[0].take_ticket() {
                Some(ticket) => Some(ticket),
                None => self.slots[1].take_ticket(),
            }
        }
    }

    /// The own thread puts `value` in the first empty slot and takes a ticket
    /// for it; gives it back if no slot will have it.
    ///
    /// # Safety
    ///
    /// As for [`take_ticket`](Pocket::take_ticket).
    pub unsafe fn fill(&self, value: Box<T>) -> Result<Ticket<T>, Box<T>> {
        let mut value = value;
        for slot in &self.slots {
            // SAFETY: the caller's promise, passed on.
            match unsafe { slot.fill(value) } {
                Ok(ticket) => return Ok(ticket),
                Err(refused) => value = refused,
            }
        }
        Err(value)
    }

    /// The slots, for a thief.
    pub fn slots(&self) -> &[Slot<T>] {
        &self.slots
    }

    /// Every value, for an owner of the whole spill (no protocol needed).
    pub fn take_all(&mut self, out: &mut Vec<Box<T>>) {
        for slot in &mut self.slots {
            out.extend(slot.take_mut().map(Box::new));
        }
    }

    /// Whether a slot is idle and empty, so that [`fill`](Pocket::fill)
    /// would succeed unless a thief is in. Only meaningful on the own thread.
    pub fn has_empty(&self) -> bool {
        self.slots.iter().any(Slot::is_empty)
    }

    /// Takes up to `want` idle values from any thread, through one heavy
    /// barrier for both slots (none if neither looks full).
    pub fn steal_into(&self, out: &mut Vec<Box<T>>, want: usize) {
        let announced = self.slots.each_ref().map(Slot::announce);
        if !announced.contains(&true) {
            return;
        }
        barrier::heavy();
        let start = out.len();
        for (slot, announced) in self.slots.iter().zip(announced) {
            if announced {
                let take = out.len() - start < want;
                // SAFETY: `announce` returned true for this slot, the heavy
                // barrier came after both announces, and each announced slot
                // is finished once, here.
                out.extend(unsafe { slot.finish_steal(take) }.map(Box::new));
            }
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
        f.debug_struct("Pocket")
            .field("slots", &self.slots)
            .finish()
    }
}
