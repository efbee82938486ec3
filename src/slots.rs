//! The pool's slots: where each thread's fast path takes and returns values.
//!
//! Every pool has two slots inside it, a pocket of its *first thread* (its
//! *owner*: the first thread that got a value), reached from the pool's own
//! address with no dependent load. With a spill strategy that asks for them
//! ([`Spill::pockets`](crate::Spill::pockets)), every other thread has a
//! pocket too, found through a per-thread cache (one thread-local load and a
//! compare more); with any other strategy, other threads have no slots and
//! go to the strategy. The slot protocol (`mempool_policies::slot`) lets a
//! pocket's *own thread* take and refill its slots with plain loads and
//! stores, and any thread steal their idle values.
//!
//! # Who a pocket's own thread is
//!
//! - The first thread's pocket: the thread whose number is `owner`, a number
//!   from [`mempool_policies::thread_id`], or 0 while no thread has claimed
//!   it. `owner` goes from 0 to a thread number once, by compare-and-swap,
//!   and never changes again. Thread numbers are never reused, so after the
//!   claim exactly one thread, alive or not, is the owner.
//! - Any other pocket: the thread that holds the pocket's index in
//!   `ThreadSlots`, which hands each index to one thread at a time.
//!
//! [`Mine`] is the proof: a pocket whose own thread is the calling thread,
//! made only by the functions here that check it, and not `Send`, so it
//! stays on that thread. The own thread's operations on a pocket are safe
//! methods of `Mine`.
//!
//! `owner` and the first thread's slots sit on different cache lines: every
//! `get` from every thread reads `owner`, which never changes after the
//! claim, so its line stays shared in all caches; the slots' states are
//! written by the owner on every get.

use crossbeam_utils::CachePadded;
use mempool_policies::pocket::Pocket;
use mempool_policies::slot::Slot;
use mempool_policies::sync::{AtomicUsize, Ordering, ThreadSlots};
use mempool_policies::{barrier, thread_id};
use std::marker::PhantomData;
use std::ptr::NonNull;

/// The slots of a pool. See the module docs.
pub(crate) struct Slots<T> {
    /// Thread number of the first thread, 0 while unclaimed. Written once.
    owner: AtomicUsize,
    /// Every other thread's pocket, made when it first needs one, if the
    /// spill asks for pockets.
    pockets: ThreadSlots<CachePadded<Pocket<T>>>,
    /// The first thread's two slots.
    first: CachePadded<Pocket<T>>,
}

/// How many slots one steal for reuse announces itself to at most: each
/// announced slot's own thread leaves its fast path until the thief is done.
const VICTIMS: usize = 4;

/// A pocket whose own thread is the calling thread. See the module docs.
pub(crate) struct Mine<'a, T> {
    pocket: &'a Pocket<T>,
    /// Not `Send` or `Sync`: the proof holds on this thread only.
    here: PhantomData<*const ()>,
}

impl<T> Clone for Mine<'_, T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Mine<'_, T> {}

/// A value lent to a guard: its box, and where the guard gives it back.
///
/// That is the slot that lent it, or, for a value no slot lent (the guard
/// owns its box then), the pool itself, tagged in bit 0 (slots and pools
/// are aligned to 8 bytes or more). So a guard's return needs nothing but
/// these two words: it tests the bit, then stores to the slot, or passes the
/// pool to the call out of line; a caller's code keeps no register for the
/// pool across its own use of the value.
pub(crate) struct Lent<T> {
    pub(crate) value: NonNull<T>,
    home: *const u8,
    slot: PhantomData<*const Slot<T>>,
}

impl<T> Clone for Lent<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Lent<T> {}

impl<T> Lent<T> {
    #[inline(always)]
    fn from_slot(value: NonNull<T>, slot: &Slot<T>) -> Self {
        Lent {
            value,
            home: (slot as *const Slot<T>).cast(),
            slot: PhantomData,
        }
    }

    /// A value no slot lent, of `pool`: the guard owns its box.
    #[inline]
    pub(crate) fn boxed<P>(value: Box<T>, pool: &P) -> Self {
        Lent {
            // SAFETY: `Box::into_raw` never returns null.
            value: unsafe { NonNull::new_unchecked(Box::into_raw(value)) },
            home: (pool as *const P).cast::<u8>().wrapping_add(1),
            slot: PhantomData,
        }
    }

    /// The slot that lent the value, or `None` if none did.
    #[inline(always)]
    pub(crate) fn slot(self) -> Option<*const Slot<T>> {
        (self.home as usize & 1 == 0).then(|| self.home.cast())
    }

    /// The pool of a value no slot lent (`slot()` is `None`), as given to
    /// [`boxed`](Lent::boxed).
    #[inline(always)]
    pub(crate) fn pool<P>(self) -> *const P {
        self.home.wrapping_sub(1).cast()
    }
}

impl<'a, T> Mine<'a, T> {
    /// # Safety
    ///
    /// The calling thread is `pocket`'s own thread (module docs), for as
    /// long as `'a`.
    #[inline(always)]
    unsafe fn new(pocket: &'a Pocket<T>) -> Self {
        Mine {
            pocket,
            here: PhantomData,
        }
    }

    /// The first half of a take from slot `i` (0 or 1): `None` if it is not
    /// full; else the steal word (0: [`lent`](Mine::lent) is ours; else
    /// [`settle`](Mine::settle) decides, before the pocket is touched
    /// again).
    #[inline(always)]
    pub(crate) fn begin(self, i: usize) -> Option<u8> {
        // SAFETY: `Mine` is only ever made for the pocket's own thread.
        unsafe { self.pocket.slots()[i].begin_take() }
    }

    /// Slot `i`'s value, lent, after `begin(i)` returned 0 or `settle(i, _)`
    /// true.
    #[inline(always)]
    pub(crate) fn lent(self, i: usize) -> Lent<T> {
        let slot = &self.pocket.slots()[i];
        // SAFETY: the take of slot `i` succeeded (the caller's use, as
        // documented), by its own thread, and nothing ended it.
        Lent::from_slot(unsafe { slot.value() }, slot)
    }

    /// Whether the take of slot `i`, whose `begin(i)` just saw `word` (not
    /// 0), got the value.
    pub(crate) fn settle(self, i: usize, word: u8) -> bool {
        // SAFETY: own thread, and `word` is what `begin(i)` just returned
        // (as documented).
        unsafe { self.pocket.slots()[i].settle(word) }
    }

    /// An idle value from either slot, lent.
    pub(crate) fn take(self) -> Option<Lent<T>> {
        self.pocket.slots().iter().find_map(|slot| {
            // SAFETY: `Mine` is only ever made for the pocket's own thread.
            let value = unsafe { slot.take() }?;
            Some(Lent::from_slot(value, slot))
        })
    }

    /// Puts `value` in an empty one of the first `slots` slots and lends
    /// it; gives it back if none will have it.
    pub(crate) fn lend(self, value: Box<T>, slots: usize) -> Result<Lent<T>, Box<T>> {
        let mut value = value;
        for slot in self.pocket.slots().iter().take(slots) {
            // SAFETY: as in `take`.
            match unsafe { slot.lend(value) } {
                Ok(value) => return Ok(Lent::from_slot(value, slot)),
                Err(refused) => value = refused,
            }
        }
        Err(value)
    }

    /// Puts `value` in an empty one of the first `slots` slots, idle; gives
    /// it back if none will have it.
    pub(crate) fn keep(self, value: Box<T>, slots: usize) -> Result<(), Box<T>> {
        let mut value = value;
        for slot in self.pocket.slots().iter().take(slots) {
            // SAFETY: as in `take`.
            match unsafe { slot.keep(value) } {
                Ok(()) => return Ok(()),
                Err(refused) => value = refused,
            }
        }
        Err(value)
    }
}

impl<T> Slots<T> {
    mempool_policies::const_unless_loom! {
        pub(crate) fn new() -> Self {
            Slots {
                owner: AtomicUsize::new(0),
                pockets: ThreadSlots::new(),
                first: CachePadded::new(Pocket::new()),
            }
        }
    }

    /// The first thread's number, or 0 while unclaimed.
    #[inline(always)]
    pub(crate) fn owner(&self) -> usize {
        // Relaxed: the number carries no data with it. A stale 0 only sends
        // a thread down the slow path, where `claim` settles it.
        self.owner.load(Ordering::Relaxed)
    }

    /// The calling thread's pocket, if it is at hand: the first thread's, or
    /// one in the thread's hot cache entry. The get path's first step.
    #[inline(always)]
    pub(crate) fn mine(&self) -> Option<Mine<'_, T>> {
        // `cached`: no branch for a thread without a number yet; its
        // placeholder matches no owner, so such a thread looks further.
        if thread_id::cached() == self.owner() {
            // SAFETY: the caller is the owner, the first pocket's own thread
            // (module docs: numbers are unique and `owner` never changes).
            return Some(unsafe { Mine::new(&self.first) });
        }
        let pocket = self.pockets.hot()?;
        // SAFETY: `hot` gives the calling thread's own slot of `pockets`,
        // whose index no other thread holds while this one does, and the
        // pocket never moves while `self` lives.
        Some(unsafe { Mine::new(pocket) })
    }

    /// The calling thread's pocket, the slow way: the first thread's, or
    /// (if `pockets`) the thread's own, made if needed and put in its hot
    /// cache entry. `None` while no thread owns the first pocket (see
    /// [`claim`](Slots::claim)), without `pockets`, or for a thread that has
    /// given up its index (it is exiting).
    pub(crate) fn find_mine(&self, pockets: bool) -> Option<Mine<'_, T>> {
        let owner = self.owner();
        if owner != 0 && owner == thread_id::current() {
            // SAFETY: as in `mine`.
            return Some(unsafe { Mine::new(&self.first) });
        }
        if owner == 0 || !pockets {
            return None;
        }
        let pocket = self.pockets.get_hot()?;
        // SAFETY: as in `mine`: `get_hot` gives the calling thread's slot.
        Some(unsafe { Mine::new(pocket) })
    }

    /// Makes the calling thread the first thread if there is none yet, and
    /// returns its pocket then. A load first: once claimed, the owner's
    /// line is read by every get and must not be written again.
    pub(crate) fn claim(&self) -> Option<Mine<'_, T>> {
        if self.owner() != 0 {
            return None;
        }
        let caller = thread_id::current();
        self.owner
            .compare_exchange(0, caller, Ordering::Relaxed, Ordering::Relaxed)
            .ok()?;
        // SAFETY: the caller just became the owner (module docs).
        Some(unsafe { Mine::new(&self.first) })
    }

    /// Every pocket made so far, the first thread's last: a thief takes from
    /// the others first, since the first thread is likely the busiest.
    fn all(&self) -> impl Iterator<Item = &Pocket<T>> {
        self.pockets
            .iter()
            .map(|pocket| &**pocket)
            .chain(std::iter::once(&*self.first))
    }

    /// Takes an idle value from another thread's slots, to reuse it: one
    /// heavy barrier for up to four slots that look full, skipping `mine`
    /// (and the first thread's slots unless no other slot looks full).
    pub(crate) fn steal_one(&self, mine: Option<Mine<'_, T>>) -> Option<Box<T>> {
        let mut stolen = Vec::new();
        self.steal(&mut stolen, mine, VICTIMS, 1);
        stolen.pop()
    }

    /// Takes every idle value out of every slot, from any thread (for
    /// `trim` and `decay`), through one heavy barrier.
    pub(crate) fn steal_all(&self, out: &mut Vec<Box<T>>) {
        self.steal(out, None, usize::MAX, usize::MAX);
    }

    /// Announces a steal to up to `limit` slots that look full (in every
    /// pocket but `skip`), issues one heavy barrier for all of them (none if
    /// none looks full), and moves up to `want` values in all into `out`.
    fn steal(&self, out: &mut Vec<Box<T>>, skip: Option<Mine<'_, T>>, limit: usize, want: usize) {
        let skip = skip.map(|mine| mine.pocket as *const Pocket<T>);
        let announced: Vec<&Slot<T>> = self
            .all()
            .filter(|pocket| Some(*pocket as *const Pocket<T>) != skip)
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
            out.extend(unsafe { slot.finish_steal(take) });
        }
    }

    /// How many slots hold an idle value (stale at once under concurrency).
    pub(crate) fn idle(&self) -> usize {
        self.all().map(Pocket::idle).sum()
    }

    /// How many of the first thread's slots hold a value, idle or lent to a
    /// guard: one load of each slot's state, so that a value coming back
    /// to its slot at that moment counts once either way (stale at once
    /// under concurrency).
    pub(crate) fn first_held(&self) -> usize {
        self.first
            .slots()
            .iter()
            .filter(|slot| slot.holds_value())
            .count()
    }

    /// Whether `slot` is one of the first thread's, for `Debug` output.
    pub(crate) fn is_first(&self, slot: *const Slot<T>) -> bool {
        self.first.slots().iter().any(|own| std::ptr::eq(own, slot))
    }

    /// The first thread's slots, for `Debug` output.
    pub(crate) fn first_slots(&self) -> &[Slot<T>; 2] {
        self.first.slots()
    }
}

impl<T> Drop for Slots<T> {
    /// Takes every value out of every slot first, so that one whose `Drop`
    /// panics does not stop the others from being dropped.
    fn drop(&mut self) {
        let mut values = Vec::new();
        self.first.take_all(&mut values);
        for pocket in self.pockets.iter_mut() {
            pocket.take_all(&mut values);
        }
        drop(values);
    }
}
