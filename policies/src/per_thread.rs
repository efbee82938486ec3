use crate::barrier;
use crate::lazy_queue::LazyQueue;
use crate::pocket::Pocket;
use crate::sync::ThreadSlots;
use crate::Spill;
use crossbeam_utils::CachePadded;
use std::fmt;

/// Each thread keeps up to two idle values in a pocket of its own, on a cache
/// line of its own; values beyond that wait in a shared lock-free overflow
/// queue, and a thread whose pocket is empty takes from the overflow, then
/// from another thread's pocket, before the pool creates a value.
///
/// A thread takes from and returns to its own pocket with plain loads and
/// stores: no lock, no read-modify-write atomic, no `SeqCst` fence, on a
/// cache line no other thread writes. That is as cheap as the `thread_local`
/// crate's `ThreadLocal<RefCell<T>>`, which never lets another thread touch
/// a value and so keeps one per thread forever.
///
/// Here other threads may still take idle values out of a pocket: to reuse
/// them instead of creating, for [`trim`](Spill::trim), and when the pool is
/// dropped. They do it through an asymmetric barrier (Linux's `membarrier`,
/// a few hundred nanoseconds, or a `SeqCst` fence on both sides where that is
/// missing): the pocket's own thread pays nothing for it. So memory follows
/// how many values are in use at once, not how many threads ever used the
/// pool: a value is created only when the caller's pocket, the overflow and
/// every other pocket are empty, and the pockets of exited threads go to
/// threads that start later, values and all.
///
/// A thread whose pocket keeps being robbed (it only returns values, as a
/// consumer at the end of a pipeline does) sends its returns to the overflow
/// instead, until it takes values itself again; and a thread that is
/// exiting (a guard kept in a `thread_local!` is returned by its destructor)
/// may have given its pocket up already: its values go to the overflow too.
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
    /// Values returned to a full or robbed pocket, or by a thread without a
    /// pocket.
    overflow: LazyQueue<Box<T>>,
}

/// How many pockets one steal announces itself to at most: each announced
/// pocket's own thread leaves its fast path until the thief is done.
const VICTIMS: usize = 4;

impl<T> PerThread<T> {
    /// A spill with no pockets yet (pockets are made for threads as they
    /// come) and an empty overflow.
    ///
    /// ```
    /// let spill = mempool_policies::PerThread::<Vec<u8>>::new();
    /// assert!(mempool_policies::Spill::is_empty(&spill));
    /// ```
    pub fn new() -> Self {
        PerThread {
            pockets: ThreadSlots::new(),
            overflow: LazyQueue::new(),
        }
    }

    /// The own pocket was empty: take from the overflow, or from another
    /// thread's pocket.
    #[cold]
    fn take_elsewhere(&self, own: Option<&Pocket<T>>) -> Option<Box<T>> {
        if let Some(value) = self.overflow.pop() {
            return Some(value);
        }
        let mut taken = Vec::with_capacity(1);
        self.steal_into(&mut taken, own, VICTIMS, 1, true);
        taken.pop()
    }

    /// Announces a steal to up to `limit` pockets that hold values (all but
    /// `skip`), issues one heavy barrier for all of them, and moves up to
    /// `want` values in all into `out`. `reuse`: the values go to another
    /// thread's use, which marks the pockets robbed.
    fn steal_into(
        &self,
        out: &mut Vec<Box<T>>,
        skip: Option<&Pocket<T>>,
        limit: usize,
        want: usize,
        reuse: bool,
    ) {
        let announced: Vec<&Pocket<T>> = self
            .pockets
            .iter()
            .map(|pocket| &**pocket)
            .filter(|pocket| !skip.is_some_and(|skip| std::ptr::eq(skip, *pocket)))
            .filter(|pocket| pocket.announce())
            .take(limit)
            .collect();
        if announced.is_empty() {
            return;
        }
        barrier::heavy();
        let start = out.len();
        for pocket in announced {
            // Every announced pocket must be withdrawn from, even once we
            // have what we want.
            let still = want.saturating_sub(out.len() - start);
            pocket.steal_announced(out, still, reuse);
        }
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
        let own = self.pockets.get().map(|pocket| &**pocket);
        if let Some(value) = own.and_then(Pocket::take_own) {
            return Some(value);
        }
        self.take_elsewhere(own)
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        // No pocket: the thread is exiting and has given it up.
        let refused = match self.pockets.get() {
            Some(pocket) => match pocket.put_own(value) {
                Ok(()) => return Ok(()),
                Err(value) => value,
            },
            None => value,
        };
        self.overflow.push(refused);
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
        // One heavy barrier for every pocket at once.
        self.steal_into(&mut values, None, usize::MAX, usize::MAX, false);
        values
    }
}

impl<T> Drop for PerThread<T> {
    /// Takes the values out of the pockets and the overflow first, so that
    /// one whose `Drop` panics does not stop the others from being dropped.
    fn drop(&mut self) {
        let mut values: Vec<Box<T>> = std::iter::from_fn(|| self.overflow.pop()).collect();
        for pocket in self.pockets.iter_mut() {
            pocket.take_all(&mut values);
        }
        drop(values);
    }
}

// A strategy hands out whole values and never a reference into itself; a
// panic in a value's `Drop` while it drains leaves the rest to be dropped.
// Nothing a caller can observe is left half-done by unwinding.
impl<T: std::panic::UnwindSafe> std::panic::UnwindSafe for PerThread<T> {}
impl<T: std::panic::UnwindSafe> std::panic::RefUnwindSafe for PerThread<T> {}

impl<T> fmt::Debug for PerThread<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PerThread")
            .field("idle", &self.len())
            .field("overflow", &self.overflow.len())
            .finish()
    }
}
