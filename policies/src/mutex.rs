use crate::sync::Mutex as Lock;
use crate::{thread_id, Spill};
use crossbeam_utils::CachePadded;
use std::fmt;

/// Keeps every returned value in stacks behind `parking_lot` locks, one stack
/// per shard, with threads spread over the shards by their thread number.
///
/// A thread pushes to and pops from its own shard, so two threads contend only
/// when they share a shard and use it at the same instant; each shard sits on
/// its own cache line, so neighbouring shards do not slow each other down.
/// When its own shard is empty, a pop looks at the other shards before the
/// pool creates a new value (first skipping any that are locked, then, if it
/// skipped one, waiting for it), so a value returned by one thread is found
/// by another: memory follows the number of values in use at once, not the
/// number of threads.
///
/// The stacks are last-in first-out, so the value handed out is the one most
/// recently used, likely still in cache.
///
/// ```
/// use mempool_policies::{Mutex, Spill};
///
/// let spill = Mutex::with_shards(4);
/// spill.push(Box::new(1)).unwrap();
/// std::thread::scope(|s| {
///     // Another thread has another home shard, and still finds the value.
///     s.spawn(|| assert_eq!(spill.pop(), Some(Box::new(1))));
/// });
/// assert!(spill.is_empty());
/// ```
pub struct Mutex<T> {
    shards: Box<[Shard<T>]>,
}

/// One stack of idle values behind its own lock, alone on its cache line.
type Shard<T> = CachePadded<Lock<Vec<Box<T>>>>;

impl<T> Mutex<T> {
    /// A spill with one shard per thread the machine can run at once, times
    /// four (to keep threads that outnumber cores apart), rounded up to a power
    /// of two, at most 64.
    ///
    /// ```
    /// let spill = mempool_policies::Mutex::<u8>::new();
    /// assert!(spill.shards() >= 4);
    /// ```
    pub fn new() -> Self {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        Self::with_shards((cores * 4).next_power_of_two().min(64))
    }

    /// A spill with `shards` shards.
    ///
    /// # Panics
    ///
    /// If `shards` is zero.
    ///
    /// ```
    /// assert_eq!(mempool_policies::Mutex::<u8>::with_shards(3).shards(), 3);
    /// ```
    pub fn with_shards(shards: usize) -> Self {
        assert!(
            shards > 0,
            "spill::Mutex::with_shards(0): a spill needs at least one shard"
        );
        Mutex {
            shards: (0..shards)
                .map(|_| CachePadded::new(Lock::new(Vec::new())))
                .collect(),
        }
    }

    /// How many shards the values are spread over.
    ///
    /// ```
    /// assert_eq!(mempool_policies::Mutex::<u8>::with_shards(8).shards(), 8);
    /// ```
    pub fn shards(&self) -> usize {
        self.shards.len()
    }

    fn home(&self) -> usize {
        thread_id::current() % self.shards.len()
    }
}

impl<T> Default for Mutex<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Spill<T> for Mutex<T> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        let home = self.home();
        if let Some(value) = self.shards[home].lock().pop() {
            return Some(value);
        }
        self.pop_elsewhere(home)
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        self.shards[self.home()].lock().push(value);
        Ok(())
    }

    fn len(&self) -> usize {
        self.shards.iter().map(|shard| shard.lock().len()).sum()
    }

    fn drain(&self) -> Vec<Box<T>> {
        // Take each stack out and let the caller drop the values after the
        // lock is released, so a value whose `Drop` uses the pool cannot
        // deadlock on its shard.
        let mut values = Vec::new();
        for shard in self.shards.iter() {
            let stack = std::mem::take(&mut *shard.lock());
            values.extend(stack);
        }
        values
    }
}

impl<T> Mutex<T> {
    /// The home shard was empty: look at the others, in order from the next
    /// one on. First without waiting for a lock; then, if some shard was
    /// locked, once more waiting for each. Waiting is rare (the caller was
    /// about to create a value) and needed: a thread that only returns values,
    /// as a consumer in a pipeline does, keeps its shard locked much of the
    /// time, and skipping it would create a value for every miss while that
    /// shard piles up idle ones.
    #[cold]
    fn pop_elsewhere(&self, home: usize) -> Option<Box<T>> {
        let n = self.shards.len();
        let others = || (1..n).map(move |step| &self.shards[(home + step) % n]);
        let mut skipped = false;
        for shard in others() {
            match shard.try_lock() {
                Some(mut stack) => {
                    if let Some(value) = stack.pop() {
                        return Some(value);
                    }
                }
                None => skipped = true,
            }
        }
        if !skipped {
            return None;
        }
        others().find_map(|shard| shard.lock().pop())
    }
}

// A strategy hands out whole values and never a reference into itself; a
// panic in a value's `Drop` while it drains leaves the rest to be dropped.
// Nothing a caller can observe is left half-done by unwinding.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for Mutex<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for Mutex<T> {}

impl<T> fmt::Debug for Mutex<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Mutex")
            .field("shards", &self.shards.len())
            .field("idle", &self.len())
            .finish()
    }
}
