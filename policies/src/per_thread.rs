use crate::barrier;
use crate::lazy_queue::LazyQueue;
use crate::pocket::Pocket;
use crate::slot::{Slot, Ticket};
use crate::sync::ThreadSlots;
use crate::Spill;
use crossbeam_utils::CachePadded;
use std::fmt;

/// Each thread keeps up to two idle values in a pocket of its own, on a cache
/// line of its own; values beyond that wait in a shared lock-free overflow
/// queue, and a thread whose pocket is empty takes from the overflow, then
/// from another thread's pocket, before the pool creates a value.
///
/// With this strategy (the default), a pool gives every thread the fast path
/// that other strategies keep for the pool's owner thread: a get takes a value
/// from the thread's own pocket with two loads and a store, and its guard
/// returns it there with one store, even from another thread. No lock, no
/// read-modify-write atomic, no `SeqCst` fence, on a cache line no other
/// thread writes. That is as cheap as the `thread_local` crate's
/// `ThreadLocal<RefCell<T>>`, which never lets another thread touch a value
/// and so keeps one per thread forever.
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
/// Pocket values are kept inline (not boxed): each pocket takes
/// `2 * (size_of::<T>() + 16)` bytes, rounded up to 128, and
/// pockets are made 8, 16, 32... at a time as threads come.
///
/// A slot that was robbed refuses returned values until its own thread takes
/// from it again, so a thread that only returns values (a consumer at the
/// end of a pipeline) sends them to the overflow, where the getting thread
/// finds them without a barrier; and a thread that is exiting (a guard kept
/// in a `thread_local!` is returned by its destructor) may have given its
/// pocket up already: its values go to the overflow too.
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

/// How many slots one steal announces itself to at most: each announced
/// slot's own thread leaves its fast path until the thief is done.
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

    /// The calling thread's pocket; `None` once the thread has given it up
    /// (it is exiting).
    #[inline(always)]
    fn own(&self) -> Option<&Pocket<T>> {
        self.pockets.get_hot().map(|pocket| &**pocket)
    }

    /// An idle value from the calling thread's own pocket, for the pool's
    /// fast path. Not part of the API.
    ///
    /// # Safety
    ///
    /// The ticket points into `self`: it must be released, taken or dropped
    /// before `self` is dropped.
    #[doc(hidden)]
    #[inline(always)]
    pub unsafe fn take_own(&self) -> Option<Ticket<T>> {
        // SAFETY: `ThreadSlots::get_hot` gives the calling thread's own
        // pocket, which no other thread holds as its own while this one does
        // (its index passes to another thread only after this one exits);
        // pockets never move while `self` lives (buckets are boxed), and the
        // ticket ends before `self` is dropped (the caller's promise).
        unsafe { self.own()?.take_ticket() }
    }

    /// Puts `value` in an empty slot of the calling thread's pocket and takes
    /// a ticket for it; gives it back if no slot will have it. Not part of
    /// the API.
    ///
    /// # Safety
    ///
    /// As for [`take_own`](PerThread::take_own).
    #[doc(hidden)]
    pub unsafe fn fill_own(&self, value: Box<T>) -> Result<Ticket<T>, Box<T>> {
        match self.own() {
            // SAFETY: as in `take_own`.
            Some(pocket) => unsafe { pocket.fill(value) },
            None => Err(value),
        }
    }

    /// The own pocket had nothing: take from the overflow, or from another
    /// thread's pocket.
    #[cold]
    fn take_elsewhere(&self, own: Option<&Pocket<T>>) -> Option<Box<T>> {
        if let Some(value) = self.overflow.pop() {
            return Some(value);
        }
        let mut taken = Vec::with_capacity(1);
        self.steal_into(&mut taken, own, VICTIMS, 1);
        taken.pop()
    }

    /// Announces a steal to up to `limit` slots that hold values (in every
    /// pocket but `skip`), issues one heavy barrier for all of them, and
    /// moves up to `want` values in all into `out`.
    fn steal_into(
        &self,
        out: &mut Vec<Box<T>>,
        skip: Option<&Pocket<T>>,
        limit: usize,
        want: usize,
    ) {
        let announced: Vec<&Slot<T>> = self
            .pockets
            .iter()
            .map(|pocket| &**pocket)
            .filter(|pocket| !skip.is_some_and(|skip| std::ptr::eq(skip, *pocket)))
            .flat_map(Pocket::slots)
            .filter(|slot| slot.announce())
            .take(limit)
            .collect();
        if announced.is_empty() {
            return;
        }
        barrier::heavy();
        let start = out.len();
        for slot in announced {
            // Every announced slot must be withdrawn from, even once we have
            // what we want.
            let take = out.len() - start < want;
            // SAFETY: `announce` returned true for every slot in
            // `announced`, the heavy barrier came after the last of them,
            // and each slot is finished once, here.
            out.extend(unsafe { slot.finish_steal(take) }.map(Box::new));
        }
    }
}

impl<T> Default for PerThread<T> {
    fn default() -> Self {
        Self::new()
    }
}

impl<T> Spill<T> for PerThread<T> {
    fn pop(&self) -> Option<Box<T>> {
        let own = self.own();
        // SAFETY: the ticket is taken at once, long before `self` can go.
        if let Some(ticket) = own.and_then(|pocket| unsafe { pocket.take_ticket() }) {
            return Some(Box::new(ticket.take()));
        }
        self.take_elsewhere(own)
    }

    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        // SAFETY: the ticket is released at once, long before `self` can go.
        match unsafe { self.fill_own(value) } {
            Ok(ticket) => ticket.release(),
            // No pocket (the thread is exiting and gave it up), or a full or
            // robbed one.
            Err(value) => self.overflow.push(value),
        }
        Ok(())
    }

    fn len(&self) -> usize {
        self.overflow.len()
            + self
                .pockets
                .iter()
                .map(|pocket| pocket.idle())
                .sum::<usize>()
    }

    fn drain(&self) -> Vec<Box<T>> {
        let mut values: Vec<Box<T>> = (0..self.overflow.len())
            .map_while(|_| self.overflow.pop())
            .collect();
        // One heavy barrier for every slot at once.
        self.steal_into(&mut values, None, usize::MAX, usize::MAX);
        values
    }

    #[inline(always)]
    fn as_per_thread(&self) -> Option<&PerThread<T>> {
        Some(self)
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
