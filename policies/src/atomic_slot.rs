//! A cell that holds at most one boxed value: any thread can empty it with
//! one atomic swap, and its one filling thread fills it with a load and a
//! store.

use crate::sync::{AtomicPtr, Ordering};
use std::fmt;
use std::ptr;

/// Holds `Option<Box<T>>` as a single pointer, so that taking the value out
/// is one `swap` and no lock, and filling an empty slot no read-modify-write.
///
/// Invariant: the pointer is either null or came from `Box::into_raw`, and the
/// slot owns that box until a `swap` hands the pointer to someone else.
pub(crate) struct AtomicSlot<T> {
    ptr: AtomicPtr<T>,
}

impl<T> AtomicSlot<T> {
    pub(crate) fn new() -> Self {
        AtomicSlot {
            ptr: AtomicPtr::new(ptr::null_mut()),
        }
    }

    /// Empties the slot, returning its value.
    pub(crate) fn take(&self) -> Option<Box<T>> {
        // Acquire makes the value we take out (written by the thread that
        // filled the slot, with a Release store) visible to us; AcqRel keeps
        // this swap ordered with the other takers' swaps too.
        let old = self.ptr.swap(ptr::null_mut(), Ordering::AcqRel);
        if old.is_null() {
            None
        } else {
            // SAFETY: by the invariant, a non-null pointer in the slot came
            // from `Box::into_raw` and is owned by the slot. The swap removed
            // it from the slot atomically, so no other thread can obtain the
            // same pointer: we are its only owner and may rebuild the box.
            Some(unsafe { Box::from_raw(old) })
        }
    }

    /// Puts `value` in the slot if it is empty, without a read-modify-write,
    /// for a slot that only the calling thread ever fills (other threads may
    /// only empty it): then a slot seen empty stays empty until we store.
    /// Hands the value back if the slot is full.
    ///
    /// Calling this on a slot that another thread may fill at the same time
    /// would lose that thread's value (a leak, not unsoundness): the store
    /// overwrites it. `PerThread` guarantees one filler per slot.
    #[inline]
    pub(crate) fn fill_if_empty(&self, value: Box<T>) -> Result<(), Box<T>> {
        if self.is_full() {
            return Err(value);
        }
        // Release: publishes the value to whichever thread takes it next.
        self.ptr.store(Box::into_raw(value), Ordering::Release);
        Ok(())
    }

    /// Whether the slot holds a value right now (stale as soon as it returns
    /// if other threads use the slot).
    pub(crate) fn is_full(&self) -> bool {
        !self.ptr.load(Ordering::Relaxed).is_null()
    }
}

impl<T> Default for AtomicSlot<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Drop for AtomicSlot<T> {
    fn drop(&mut self) {
        drop(self.take());
    }
}

impl<T> fmt::Debug for AtomicSlot<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AtomicSlot")
            .field("full", &self.is_full())
            .finish()
    }
}

// SAFETY: the slot owns a `Box<T>`, so sending the slot sends the `T`: that
// needs `T: Send`, exactly as for `Box<T>`.
unsafe impl<T: Send> Send for AtomicSlot<T> {}
// SAFETY: through `&AtomicSlot` a thread can only move whole boxes in and out
// (never get a `&T`), so sharing the slot only ever sends values between
// threads: `T: Send` is enough, as for `Mutex<Option<Box<T>>>`.
unsafe impl<T: Send> Sync for AtomicSlot<T> {}

#[cfg(test)]
mod tests {
    use super::AtomicSlot;

    #[test]
    fn fill_and_take() {
        let slot = AtomicSlot::new();
        assert!(!slot.is_full());
        assert_eq!(slot.fill_if_empty(Box::new(1)), Ok(()));
        assert!(slot.is_full());
        assert_eq!(slot.fill_if_empty(Box::new(2)), Err(Box::new(2)));
        assert_eq!(slot.take(), Some(Box::new(1)));
        assert_eq!(slot.take(), None);
    }

    #[test]
    fn drop_frees_the_value() {
        let counted = std::sync::Arc::new(());
        let slot = AtomicSlot::new();
        slot.fill_if_empty(Box::new(counted.clone())).unwrap();
        assert_eq!(std::sync::Arc::strong_count(&counted), 2);
        drop(slot);
        assert_eq!(std::sync::Arc::strong_count(&counted), 1);
    }
}
