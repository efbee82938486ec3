use crate::atomic_slot::AtomicSlot;
use crate::sync::{SegQueue, ThreadSlots};
use crate::Spill;
use crossbeam_utils::CachePadded;
use std::fmt;

/// Each thread keeps up to two idle values in a pocket of its own, on a cache
/// line of its own; values beyond that wait in a shared lock-free overflow
/// queue, and a thread whose pocket is empty takes from the overflow, then
/// from another thread's pocket, before the pool creates a value.
///
/// This is the fastest strategy under contention: while a thread holds at
/// most two values at once (three on the owner thread, with the owner slot),
/// a pop is one atomic swap and a push a plain load and store, on a line no
/// other thread writes, so threads do not contend and do not share cache
/// lines (the `thread_local` crate's `ThreadLocal<RefCell<T>>` packs
/// neighbouring threads' values together and pays for false sharing).
///
/// Memory follows how many values are in use at once, not how many threads
/// ever used the pool: a value is created only when the caller's pocket, the
/// overflow and every other pocket are empty, and the pockets of exited
/// threads go to threads that start later, values and all.
///
/// Why one swap and not none, as `ThreadLocal<RefCell<T>>` manages? Other
/// threads may empty a pocket (to reuse an idle value, or in
/// [`trim`](Spill::trim)), so taking a value out must be atomic. Putting one
/// in need not be: only the pocket's own thread ever fills it.
///
/// A thread that is exiting (a guard kept in a `thread_local!` is returned by
/// its destructor) may have given its pocket up already; its values then go
/// to the overflow.
///
/// ```
/// use mempool_policies::{PerThread, Spill};
///
/// let spill = PerThread::default();
/// for n in 0..3 {
///     spill.push(Box::new(n)).unwrap(); // two in the pocket, one overflows
/// }
/// std::thread::scope(|s| {
///     // Another thread's pocket is empty: it takes from the overflow, then
///     // from ours.
///     s.spawn(|| {
///         assert_eq!(spill.pop(), Some(Box::new(2)));
///         assert!(spill.pop().is_some());
///     });
/// });
/// assert_eq!(spill.len(), 1);
/// ```
pub struct PerThread<T> {
    pockets: ThreadSlots<CachePadded<Pocket<T>>>,
    /// Values returned to a full pocket, or by a thread without a pocket.
    overflow: SegQueue<Box<T>>,
}

/// A thread's idle values. Only that thread fills a slot; any thread may
/// empty one.
struct Pocket<T> {
    slots: [AtomicSlot<T>; 2],
}

impl<T> Default for Pocket<T> {
    fn default() -> Self {
        Pocket {
            slots: [AtomicSlot::new(), AtomicSlot::new()],
        }
    }
}

impl<T> Pocket<T> {
    /// Takes a value, trying the slot filled last first (likely still in
    /// cache). A load before each swap keeps a miss free of atomics' cost.
    #[inline]
    fn take(&self) -> Option<Box<T>> {
        self.slots
            .iter()
            .rev()
            .find_map(|slot| if slot.is_full() { slot.take() } else { None })
    }

    fn len(&self) -> usize {
        self.slots.iter().filter(|slot| slot.is_full()).count()
    }
}

impl<T> PerThread<T> {
    /// A spill with no pockets yet (each thread's pocket is made the first
    /// time the thread returns a value) and an empty overflow.
    ///
    /// ```
    /// let spill = mempool_policies::PerThread::<Vec<u8>>::new();
    /// assert!(mempool_policies::Spill::is_empty(&spill));
    /// ```
    pub fn new() -> Self {
        PerThread {
            pockets: ThreadSlots::new(),
            overflow: SegQueue::new(),
        }
    }

    /// The own pocket was empty: take from the overflow, or from another
    /// thread's pocket.
    #[cold]
    fn take_elsewhere(&self) -> Option<Box<T>> {
        self.overflow
            .pop()
            .or_else(|| self.pockets.iter().find_map(|pocket| pocket.take()))
    }
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Spill<T> for PerThread<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        if let Some(value) = self.pockets.get().and_then(|pocket| pocket.take()) {
            return Some(value);
        }
        self.take_elsewhere()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        // No pocket: the thread is exiting and has given it up.
        let Some(pocket) = self.pockets.get() else {
            self.overflow.push(value);
            return Ok(());
        };
        let [first, second] = &pocket.slots;
        // Only this thread fills its pocket's slots, which is what
        // `fill_if_empty` asks.
        let Err(value) = first
            .fill_if_empty(value)
            .or_else(|value| second.fill_if_empty(value))
        else {
            return Ok(());
        };
        self.overflow.push(value);
        Ok(())
    }

    fn len(&self) -> usize {
        self.overflow.len()
            + self
                .pockets
                .iter()
                .map(|pocket| pocket.len())
                .sum::<usize>()
    }

    fn drain(&self) -> Vec<Box<T>> {
        let mut values: Vec<Box<T>> = (0..self.overflow.len())
            .map_while(|_| self.overflow.pop())
            .collect();
        for pocket in self.pockets.iter() {
            values.extend(std::iter::from_fn(|| pocket.take()).take(2));
        }
        values
    }
}

impl<T> Drop for PerThread<T> {
    /// Drops the values out of the pockets and the overflow first, so that
    /// one whose `Drop` panics does not stop the others from being dropped.
    fn drop(&mut self) {
        drop(self.drain());
    }
}

impl<T> fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerThread")
            .field("idle", &self.len())
            .field("overflow", &self.overflow.len())
            .finish()
    }
}
