use crate::guard::{OwnedPoolGuard, PoolGuard};
use crate::slots::{Lent, Mine, Slots};
use crate::stats::{Event, NoStats, Stats, StatsLayer};
use crate::{DefaultSpill, NoReset, Reset, Spill};
use mempool_policies::sync::Mutex;
use mempool_policies::{LockFree, PerThread};
use std::fmt;
use std::sync::Arc;

/// Marks a pending take (see `Pool::first_hit`) as the second slot's. The
/// steal word's bits are the low four.
const SECOND: u8 = 0x80;

/// Does nothing, out of line: called where a get goes on to the second
/// slot, it tells the compiler that this path is rare, so that the first
/// slot's hit falls straight through to the caller's code.
#[cold]
#[inline(never)]
fn second_slot_next() {}

/// A thread-safe pool of reusable values.
///
/// The first thread to call [`get`](Pool::get) becomes the pool's *first
/// thread* (its owner): for the pool's whole life, that thread gets and
/// returns up to two values through two *slots* inside the pool, which need
/// no lock and no read-modify-write atomic; a guard returns a value to its
/// slot with one store, whichever thread drops it.
///
/// With the default spill strategy, [`PerThread`](crate::spill::PerThread),
/// every other thread has a *pocket* of its own: two slots of the same kind,
/// found through a per-thread cache, which costs them one thread-local load
/// and a compare more than the first thread. With any other strategy
/// ([`Spill::pockets`] says which), every other thread gets its values from
/// the spill strategy `S`.
///
/// A thread whose slots are in use or empty gets a value from the spill,
/// else from another thread's slots (through an asymmetric barrier: see the
/// crate docs), else from `create`; it keeps the value in one of its slots
/// if one is empty. A returned value is reset by `R`, then goes back to the
/// slot it came from; a value that came from no slot goes to an empty slot
/// of the returning thread, else is offered to the spill, and a value the
/// spill refuses is dropped.
///
/// A value is only ever held by one guard at a time, and values are never
/// shared between threads, which is why a pool is `Sync` as soon as `T` is
/// `Send` (and the hooks are `Send + Sync`).
///
/// The type parameters are the value, the `create` hook, the `reset` hook, the
/// spill strategy and the stats layer. Their defaults make `Pool<T>` a
/// nameable type for a `static` or a struct field, built by [`Pool::new`] with
/// a function pointer, in a `const`:
///
/// ```
/// use mempool::Pool;
///
/// static BUFFERS: Pool<String> = Pool::new(String::new);
///
/// let mut s = BUFFERS.get();
/// s.push_str("hi");
/// assert_eq!(*s, "hi");
/// ```
///
/// Build any other combination with [`Pool::builder`].
///
/// # Size
///
/// Every value lives in a `Box` of its own, so moving it between a slot, the
/// spill and a guard is a pointer copy, and the pool's size does not depend
/// on `T`: a `Pool<T>` is 512 bytes before any
/// use (`size_of`, 64-bit Linux), whatever `T` is. The first thread's two
/// slots take a 128-byte cache line, written by that thread on every get;
/// the first thread's number, read by every thread, and the table of other
/// threads' pockets (16 pointers to buckets made as threads come) share
/// another; the hooks, the default strategy's overflow queue and `decay`'s
/// set-aside queue (a pointer each until used) the rest. Each other thread
/// that uses a pool with the default strategy adds a pocket of 128 bytes
/// (two slots on a cache line of their own) the first time it gets a value,
/// and the first thread with an index in a new bucket adds that bucket (64
/// bytes for the first 8 threads alive at once, then 128, 256...); threads
/// that exit hand their pockets to threads that start later.
///
/// ```
/// if cfg!(all(target_pointer_width = "64", target_os = "linux")) {
///     assert_eq!(std::mem::size_of::<mempool::Pool<Vec<u8>>>(), 512);
///     assert_eq!(std::mem::size_of::<mempool::Pool<[u8; 1 << 20]>>(), 512);
/// }
/// ```
pub struct Pool<T, C = fn() -> T, R = NoReset, S = DefaultSpill<T>, M = NoStats> {
    slots: Slots<T>,
    create: C,
    reset: R,
    spill: S,
    stats: M,
    /// Values that were idle at the last `decay`: reused when the spill has
    /// none, dropped by the next `decay` if still here (Go's victim cache).
    victims: LockFree<T>,
    /// Taken only with a spill that has a ceiling, around each step that
    /// adds to what the ceiling counts (a value kept idle, a value lent into
    /// one of the first thread's slots) and around `decay`'s setting
    /// aside: so that the count it checks stays true until the step is
    /// done. Every other step only takes away from that count.
    ceiling_lock: Mutex<()>,
}

// A panic in a hook leaves the pool consistent (crate docs, "Panics in
// hooks"): a panicking `create` changes nothing, and a panicking `reset` or
// `retain` drops the value being returned; no value is ever shared, so no
// caller can observe one half-updated through the pool. So a pool may be
// used across `catch_unwind` when its parts may: the same conditions as
// regex-automata's pool (the value `UnwindSafe`, the hooks and the spill
// both `UnwindSafe` and `RefUnwindSafe`).
impl<T, C, R, S, M> std::panic::UnwindSafe for Pool<T, C, R, S, M>
where
    T: std::panic::UnwindSafe,
    C: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    R: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    S: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    M: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
{
}

impl<T, C, R, S, M> std::panic::RefUnwindSafe for Pool<T, C, R, S, M>
where
    T: std::panic::UnwindSafe,
    C: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    R: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    S: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
    M: std::panic::UnwindSafe + std::panic::RefUnwindSafe,
{
}

impl<T, C> Pool<T, C> {
    mempool_policies::const_unless_loom! {
        /// A pool that makes values with `create`, does not reset them, and
        /// keeps extra values in the default spill strategy. A `const fn`
        /// with no bounds: `get` is where `create` must be a `Fn() -> T`,
        /// so a pool fits in a `static` as it is.
        ///
        /// ```
        /// let pool = mempool::Pool::new(|| String::with_capacity(64));
        /// assert!(pool.get().capacity() >= 64);
        ///
        /// static SCRATCH: mempool::Pool<Vec<u8>> = mempool::Pool::new(Vec::new);
        /// SCRATCH.get().push(1);
        /// ```
        pub fn new(create: C) -> Self {
            Pool::from_parts(create, NoReset, PerThread::new(), NoStats)
        }
    }
}

impl<T, C, R, S, M> Pool<T, C, R, S, M> {
    mempool_policies::const_unless_loom! {
        pub(crate) fn from_parts(create: C, reset: R, spill: S, stats: M) -> Self {
            Pool {
                slots: Slots::new(),
                create,
                reset,
                spill,
                stats,
                victims: LockFree::new(),
                ceiling_lock: Mutex::new(()),
            }
        }
    }
}

impl<T, C, R, S, M> Pool<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    /// A value from the pool, in a guard that returns it when dropped.
    ///
    /// On the pool's first thread with its first slot idle, this is a
    /// thread-local read (the thread's number), three loads (the first
    /// thread's number, the slot's state and its steal word; a fourth, the
    /// value's address, comes with the state) and a store; on another thread
    /// with the default strategy and a value idle in its pocket, the same
    /// plus a thread-local read and a compare (the pocket's address, cached
    /// per thread). A nested get takes from the second slot the same way.
    /// That much is inlined into the caller; everything else is one call: a
    /// value from the spill, else an idle value anywhere in the pool, else
    /// `create`.
    ///
    /// # Panics
    ///
    /// If `create` panics; the pool stays usable.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(Vec::<u8>::new).reset(Vec::clear).build();
    /// let mut buf = pool.get();
    /// buf.push(1);
    /// drop(buf);
    /// assert!(pool.get().is_empty()); // the same vector, cleared
    /// ```
    #[inline]
    pub fn get(&self) -> PoolGuard<'_, T, C, R, S, M> {
        let lent = match self.first_hit() {
            Ok(lent) => lent,
            Err(pending) => self.take_cold(pending),
        };
        PoolGuard::new(self, lent)
    }

    /// Like [`get`](Pool::get), but the guard holds an `Arc` of the pool
    /// instead of a borrow, so it is `'static` (and `Send` when `T` is) and
    /// can move to another thread or into a task.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(mempool::Pool::new(Vec::<u8>::new));
    /// let mut buf = pool.get_owned();
    /// std::thread::spawn(move || buf.push(7)).join().unwrap();
    /// assert_eq!(pool.idle(), 1); // returned from the other thread
    /// ```
    pub fn get_owned(self: &Arc<Self>) -> OwnedPoolGuard<T, C, R, S, M> {
        let lent = match self.first_hit() {
            Ok(lent) => lent,
            Err(pending) => self.take_cold(pending),
        };
        OwnedPoolGuard::new(Arc::clone(self), lent)
    }

    /// The inlined part of a get: one of the caller's two slots, if the
    /// caller has slots at hand and one is idle (the second only when the
    /// first is not, so a nested get is a hit too). `Err(pending)`: if not
    /// 0, the slot ([`SECOND`] says which) is marked in use, but its steal
    /// word (the rest of `pending`) says a thief may be about (or the
    /// fallback barrier is on), and the call out of line must settle it
    /// first. Each hit returns on its own, so that the first slot's path
    /// carries nothing of the second's.
    #[inline(always)]
    fn first_hit(&self) -> Result<Lent<T>, u8> {
        let mine = self.slots.mine().ok_or(0)?;
        match mine.begin(0) {
            Some(0) => {
                self.stats.count(Event::SlotHit);
                return Ok(mine.lent(0));
            }
            Some(word) => return Err(word),
            None => second_slot_next(),
        }
        match mine.begin(1) {
            Some(0) => {
                self.stats.count(Event::SlotHit);
                Ok(mine.lent(1))
            }
            Some(word) => Err(word | SECOND),
            None => Err(0),
        }
    }

    /// Every get but a slot hit, out of line.
    #[cold]
    #[inline(never)]
    fn take_cold(&self, pending: u8) -> Lent<T> {
        match self.take_slow(pending, true) {
            Some(lent) => lent,
            None => unreachable!("a get that may create always has a value"),
        }
    }

    /// A get's slow part: the slot of a pending take after all (its steal
    /// word only asked for the fallback fence), either slot, an idle value from
    /// the spill or elsewhere, else (if `create`) a new one. The value then
    /// goes into an empty slot of the caller's if it has one, lent to the
    /// guard; the first get of the pool claims the first thread's slots for
    /// the caller, once it has its value (so that a panic in `create` leaves
    /// them unclaimed).
    fn take_slow(&self, pending: u8, create: bool) -> Option<Lent<T>> {
        if pending != 0 {
            // The same pocket `first_hit` found: nothing changed since.
            let mine = self.slots.mine().expect("the pocket of a pending take");
            let slot = usize::from(pending & SECOND != 0);
            if mine.settle(slot, pending & !SECOND) {
                self.stats.count(Event::SlotHit);
                return Some(mine.lent(slot));
            }
        }
        let pockets = self.spill.pockets() && self.spill.ceiling().is_none();
        let mine = self.slots.find_mine(pockets);
        if let Some(lent) = mine.and_then(Mine::take) {
            self.stats.count(Event::SlotHit);
            return Some(lent);
        }
        let value = match self.reuse(mine) {
            Some(value) => value,
            None if create => self.create_boxed(),
            None => return None,
        };
        // The first get of the pool claims its first slots; one that lost
        // the race looks again, for a pocket.
        let mine = mine.or_else(|| {
            let unclaimed = self.slots.owner() == 0;
            self.slots
                .claim()
                .or_else(|| unclaimed.then(|| self.slots.find_mine(pockets)).flatten())
        });
        Some(match mine {
            Some(mine) => {
                // A value lent from a slot comes back with a store that
                // checks nothing, so under a ceiling it takes its place now.
                // At the ceiling it is lent boxed instead, and its return
                // makes room as any kept value does.
                let lend = |value| mine.lend(value, self.slot_room());
                let lent = match self.spill.ceiling() {
                    Some(ceiling) => self.within_ceiling(ceiling, value, false, lend),
                    None => lend(value),
                };
                lent.unwrap_or_else(|value| Lent::boxed(value, self))
            }
            None => Lent::boxed(value, self),
        })
    }

    /// An idle value from outside the caller's slots: the spill, the values
    /// the last `decay` set aside, or another thread's slots (a heavy
    /// barrier when one looks full).
    fn reuse(&self, mine: Option<Mine<'_, T>>) -> Option<Box<T>> {
        if let Some(value) = self.spill.pop() {
            self.stats.count(Event::SpillHit);
            return Some(value);
        }
        if let Some(value) = self.victims.pop() {
            self.stats.count(Event::SpillHit);
            return Some(value);
        }
        let value = self.slots.steal_one(mine)?;
        self.stats.count(Event::SlotHit);
        Some(value)
    }

    fn create_boxed(&self) -> Box<T> {
        let value = (self.create)();
        self.stats.count(Event::Create);
        Box::new(value)
    }

    /// Takes a value back from a guard. Runs on whichever thread drops it.
    ///
    /// The reset comes first, wherever the value lives, so that the user's
    /// last writes and the reset's sit side by side (the optimiser merges
    /// them); then `retain`, which may refuse the value. If either panics,
    /// the value is dropped (and its slot left empty) during the unwind; the
    /// stats count it as returned and discarded. A value lent by a slot goes
    /// back there with one store; any other takes the call out of line.
    #[inline]
    pub(crate) fn give_back(&self, lent: Lent<T>) {
        let unwinding = DiscardOnUnwind {
            lent,
            stats: &self.stats,
        };
        // SAFETY: the guard that held `lent` held its value alone (its slot
        // lent it, or the guard owned the box), and gives it up here.
        let keep = self.reset.recycle(unsafe { &mut *lent.value.as_ptr() });
        std::mem::forget(unwinding);
        if !keep {
            return self.reject(lent);
        }
        let slot = match lent.slot() {
            Some(slot) => slot,
            // SAFETY: no slot lent it: the guard owned the box, and gives it
            // up here; the pool is the one `Lent::boxed` was given, this one
            // (the guard borrows it or holds an `Arc` of it). Through the
            // lent value rather than `self`, so that a caller keeps no
            // register for the pool across its use of the value.
            None => unsafe {
                let pool = &*lent.pool::<Self>();
                return pool.give_back_boxed(Box::from_raw(lent.value.as_ptr()));
            },
        };
        self.stats.count(Event::Return);
        // SAFETY: the slot that lent the value to the guard, alive while the
        // pool is (as above); the guard ends the lending here and lets go of
        // the value.
        unsafe { (*slot).release() };
    }

    /// `retain` said no: drop the value (a slot's leaves the slot empty).
    #[cold]
    #[inline(never)]
    fn reject(&self, lent: Lent<T>) {
        self.stats.count(Event::Return);
        self.stats.count(Event::Rejected);
        // SAFETY: the guard's value, given up here (see `give_back`).
        unsafe { discard(lent) };
    }

    /// How many of a thread's slots may hold values: two, or the spill's
    /// ceiling if that is smaller (see `Spill::ceiling`).
    fn slot_room(&self) -> usize {
        self.spill.ceiling().map_or(2, |ceiling| ceiling.min(2))
    }

    /// A returned value that no slot lent (already reset): into an empty
    /// slot of the returning thread's, else offered to the spill, else
    /// dropped. `#[cold]`, so that the return of a slot's value falls
    /// through to the caller's code (the usual return with the default
    /// strategy; with others, other threads come here every time, and pay a
    /// jump more than they would).
    #[cold]
    #[inline(never)]
    fn give_back_boxed(&self, value: Box<T>) {
        self.stats.count(Event::Return);
        if let Err(refused) = self.keep_idle(value) {
            self.stats.count(Event::Discarded);
            drop(refused);
        }
    }

    /// Keeps an idle value: in an empty slot of the calling thread's (if the
    /// thread has its slots at hand), else in the spill; hands it back if
    /// the spill refuses it, or if keeping it would break a ceiling.
    fn keep_idle(&self, value: Box<T>) -> Result<(), Box<T>> {
        match self.spill.ceiling() {
            Some(ceiling) => {
                self.within_ceiling(ceiling, value, true, |value| self.keep_here(value))
            }
            None => self.keep_here(value),
        }
    }

    /// `keep_idle` without the ceiling.
    fn keep_here(&self, value: Box<T>) -> Result<(), Box<T>> {
        let value = match self.slots.mine() {
            Some(mine) => match mine.keep(value, self.slot_room()) {
                Ok(()) => return Ok(()),
                Err(value) => value,
            },
            None => value,
        };
        // A spill written by a user may panic in `push`: then the value is
        // gone, and counted as discarded.
        let pushing = CountOnUnwind(&self.stats, Event::Discarded);
        let pushed = self.spill.push(value);
        std::mem::forget(pushing);
        pushed?;
        self.stats.count(Event::Spilled);
        Ok(())
    }

    /// What a ceiling counts: every idle value and every value lent from
    /// the first thread's slots (a pool with a ceiling gives no thread a
    /// pocket). While `ceiling_lock` is held, other threads can only take
    /// away from it.
    fn ceiling_count(&self) -> usize {
        self.slots.first_held() + self.spill.len() + self.victims.len()
    }

    /// Runs `add`, which puts `value` where the ceiling counts it (idle, or
    /// lent from one of the first thread's slots), only if the ceiling
    /// holds afterwards; else hands `value` back. Under `ceiling_lock`, so
    /// no other thread adds in between. At the ceiling, if `replace`, a
    /// value that `decay` set aside makes room, and is dropped (counted as
    /// decayed) only once `add` has kept the new one; below the ceiling,
    /// set-aside values stay until the next `decay`. (Not for a lend: a
    /// set-aside value whose `Drop` panics would unwind through the get and
    /// leave its slot lent to nobody.)
    fn within_ceiling<K>(
        &self,
        ceiling: usize,
        value: Box<T>,
        replace: bool,
        add: impl FnOnce(Box<T>) -> Result<K, Box<T>>,
    ) -> Result<K, Box<T>> {
        let lock = self.ceiling_lock.lock();
        if self.ceiling_count() < ceiling {
            return add(value);
        }
        let stale = match replace.then(|| self.victims.pop()).flatten() {
            Some(stale) => stale,
            None => return Err(value),
        };
        // If `add` panics (a user's spill), `stale` is dropped in the unwind
        // and counted by this; once counted, its own `Drop` may panic.
        let dropping = CountOnUnwind(&self.stats, Event::Decayed(1));
        let added = add(value);
        std::mem::forget(dropping);
        match added {
            Ok(kept) => {
                drop(lock);
                self.stats.count(Event::Decayed(1));
                drop(stale);
                Ok(kept)
            }
            Err(value) => {
                // An unbounded queue: never refuses.
                let _ = self.victims.push(stale);
                Err(value)
            }
        }
    }

    /// A guard's value leaves the pool through `take`.
    pub(crate) fn take_out(&self, lent: Lent<T>) -> T {
        self.stats.count(Event::Taken);
        if let Some(slot) = lent.slot() {
            // SAFETY: as in `give_back`: its slot lent it, and the lending
            // ends here, with the value moving out.
            unsafe { (*slot).vacate() };
        }
        // SAFETY: the box is the guard's alone, and its slot (if any) no
        // longer claims it.
        *unsafe { Box::from_raw(lent.value.as_ptr()) }
    }

    /// Hands a value to the pool, as if a guard holding it were dropped: it
    /// is reset, then kept in an empty slot of the calling thread's, else
    /// offered to the spill. `Err` hands the value back (reset) if the pool
    /// would not keep it: the `retain` hook refused it, or the spill is full
    /// ([`Bounded`](crate::spill::Bounded)) or keeps nothing
    /// ([`None`](crate::spill::None)). A `Result`, as crossbeam's
    /// `ArrayQueue::push` returns, rather than a `bool`: the caller decides
    /// what to do with a value the pool refused (shrink it and try again,
    /// keep it, drop it). The stats count it as returned, and as rejected
    /// or discarded, as a refused guard's value.
    ///
    /// # Panics
    ///
    /// If `reset` (or `retain`) panics; the value is dropped and the pool
    /// stays usable.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(Vec::<u8>::new).reset(Vec::clear).build();
    /// assert!(pool.put(vec![1, 2, 3]).is_ok());
    /// assert_eq!(pool.idle(), 1);
    /// let v = pool.get();
    /// assert!(v.is_empty() && v.capacity() >= 3); // reset, allocation kept
    ///
    /// // A ceiling of 3: the first thread's two slots (none yet: no get
    /// // has come) and one in the spill.
    /// let bounded = mempool::Pool::builder()
    ///     .create(String::new)
    ///     .spill(mempool::spill::Bounded::new(3))
    ///     .build();
    /// assert!(bounded.put(String::from("kept")).is_ok());
    /// assert_eq!(bounded.put(String::from("refused")), Err(String::from("refused")));
    /// ```
    pub fn put(&self, value: T) -> Result<(), T> {
        self.stats.count(Event::Put);
        let mut value = Box::new(value);
        let resetting = CountOnUnwind(&self.stats, Event::Discarded);
        let returning = CountOnUnwind(&self.stats, Event::Return);
        let keep = self.reset.recycle(&mut value);
        std::mem::forget((resetting, returning));
        self.stats.count(Event::Return);
        if !keep {
            self.stats.count(Event::Rejected);
            return Err(*value);
        }
        self.keep_idle(value).map_err(|refused| {
            self.stats.count(Event::Discarded);
            *refused
        })
    }

    /// Makes up to `n` values with `create` and keeps them as a returned
    /// value is kept, so that the first gets find them ready: in empty slots
    /// of the calling thread's, if it has slots at hand (it is the pool's
    /// first thread, or the strategy gives threads pockets and this one got
    /// its pocket on an earlier get), else in the spill. Stops early once a
    /// spill with a ceiling is full (so `create` runs no more than the pool
    /// can keep).
    ///
    /// ```
    /// let pool = mempool::Pool::new(Vec::<u8>::new);
    /// pool.prefill(3);
    /// assert_eq!(pool.idle(), 3);
    ///
    /// let bounded = mempool::Pool::builder()
    ///     .create(Vec::<u8>::new)
    ///     .spill(mempool::spill::Bounded::new(4))
    ///     .build();
    /// bounded.prefill(10);
    /// assert_eq!(bounded.idle(), 2); // the spill's share: no thread has its slots yet
    /// drop(bounded.get()); // this thread is the first: its slots join in
    /// bounded.prefill(10);
    /// assert_eq!(bounded.idle(), 4);
    /// ```
    pub fn prefill(&self, n: usize) {
        for _ in 0..n {
            if let Some(ceiling) = self.spill.ceiling() {
                if self.ceiling_count() >= ceiling {
                    return;
                }
            }
            let value = self.create_boxed();
            self.stats.count(Event::Prefill);
            if let Err(refused) = self.keep_idle(value) {
                self.stats.count(Event::Discarded);
                drop(refused);
                return;
            }
        }
    }

    /// How many idle values the pool holds now, every slot's included.
    /// Exact when no other thread is using the pool.
    ///
    /// ```
    /// let pool = mempool::Pool::new(String::new);
    /// assert_eq!(pool.idle(), 0);
    /// drop(pool.get());
    /// assert_eq!(pool.idle(), 1);
    /// ```
    pub fn idle(&self) -> usize {
        self.slots.idle() + self.spill.len() + self.victims.len()
    }

    /// Drops every idle value the pool holds, in every thread's slots too,
    /// and returns how many it dropped. Works from any thread; values in use
    /// are not touched. The pool stays usable: later gets create values
    /// again.
    ///
    /// Values held by other threads' fast paths are taken out through an
    /// asymmetric barrier (see the crate docs), so `trim` costs a few hundred
    /// nanoseconds on Linux even when there is little to drop. Exact when no
    /// other thread is using the pool.
    ///
    /// ```
    /// let pool = mempool::Pool::new(Vec::<u8>::new);
    /// drop((pool.get(), pool.get()));
    /// assert_eq!(pool.idle(), 2);
    /// std::thread::scope(|s| {
    ///     s.spawn(|| assert_eq!(pool.trim(), 2)); // another thread: all of them
    /// });
    /// assert_eq!(pool.idle(), 0);
    /// ```
    pub fn trim(&self) -> usize {
        // Take every value out first and drop them after: a value's `Drop`
        // may use this pool, and a panicking one must not keep the others
        // alive or the count unrecorded.
        let mut values = self.spill.drain();
        values.extend(self.victims.drain());
        self.slots.steal_all(&mut values);
        let dropped = values.len();
        self.stats.count(Event::Trimmed(dropped));
        // If a value's `Drop` panics, the unwind still drops the others.
        drop(values);
        dropped
    }

    /// An idle value in a guard, or `None` if the pool has none; never calls
    /// `create`. The same guard as [`get`](Pool::get)'s.
    ///
    /// ```
    /// let pool = mempool::Pool::new(Vec::<u8>::new);
    /// assert!(pool.try_get().is_none()); // nothing idle, nothing made
    /// drop(pool.get());
    /// assert!(pool.try_get().is_some());
    /// ```
    pub fn try_get(&self) -> Option<PoolGuard<'_, T, C, R, S, M>> {
        let lent = match self.first_hit() {
            Ok(lent) => lent,
            Err(pending) => self.take_slow(pending, false)?,
        };
        Some(PoolGuard::new(self, lent))
    }

    /// Drops the values that have sat idle since the previous `decay`, and
    /// sets aside the ones idle now, to be dropped by the next call unless a
    /// get takes them first; returns how many it dropped (the first call
    /// drops none). Go's victim cache, run by you instead of a garbage
    /// collector: call it from a timer, and memory goes back to what the
    /// values in use need after a burst.
    ///
    /// Reaches every strategy and every thread's slots, from any thread,
    /// through the same asymmetric barrier as [`trim`](Pool::trim). Values
    /// set aside stay idle and reusable: a get finds them when the spill has
    /// none. With a spill that promises a ceiling
    /// ([`Bounded`](crate::spill::Bounded)), each value returned (or `put`)
    /// while some are set aside takes the place of one, which is dropped then
    /// (counted as decayed), so the ceiling holds across `decay`.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(Vec::<u8>::new).stats().build();
    /// drop((pool.get(), pool.get(), pool.get())); // a burst: three idle
    /// assert_eq!(pool.decay(), 0);                // set aside
    /// drop(pool.get());                           // one is used again
    /// assert_eq!(pool.decay(), 2);                // the other two were idle since
    /// assert_eq!(pool.idle(), 1);
    /// assert_eq!(pool.stats().unwrap().decayed, 2);
    /// ```
    pub fn decay(&self) -> usize {
        // Take both batches out first; drop after: a value's `Drop` may use
        // this pool, and a panicking one must not keep the others alive. The
        // spill's first: a user's strategy may panic in `drain`, and then
        // nothing the pool took out itself is lost uncounted.
        // Under a ceiling, no value may be kept in the room the values set
        // aside leave until they are counted again, as victims.
        let lock = self.spill.ceiling().map(|_| self.ceiling_lock.lock());
        let mut idle = self.spill.drain();
        let stale = self.victims.drain();
        self.slots.steal_all(&mut idle);
        for value in idle {
            // An unbounded queue: never refuses.
            let _ = self.victims.push(value);
        }
        drop(lock);
        let dropped = stale.len();
        self.stats.count(Event::Decayed(dropped));
        drop(stale);
        dropped
    }

    /// A snapshot of the pool's counters, or `None` if the pool was built
    /// without [`stats`](crate::PoolBuilder::stats).
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(String::new).stats().build();
    /// drop(pool.get());
    /// assert_eq!(pool.stats().unwrap().creates, 1);
    /// assert!(mempool::Pool::new(String::new).stats().is_none());
    /// ```
    pub fn stats(&self) -> Option<Stats> {
        self.stats.snapshot(self.idle())
    }

    /// The spill strategy, for inspection.
    ///
    /// ```
    /// let pool = mempool::Pool::builder()
    ///     .create(String::new)
    ///     .spill(mempool::spill::Bounded::new(4))
    ///     .build();
    /// assert_eq!(pool.spill().capacity(), 2); // the first thread's slots keep two
    /// ```
    pub fn spill(&self) -> &S {
        &self.spill
    }
}

impl<T, C, R, S, M> Pool<T, C, R, S, M> {
    /// Where a guard's value came from, for its `Debug` output.
    pub(crate) fn origin(&self, lent: Lent<T>) -> &'static str {
        match lent.slot() {
            None => "spill",
            Some(slot) if self.slots.is_first(slot) => "owner slot",
            Some(_) => "pocket",
        }
    }
}

/// Drops a guard's value: empties the slot that lent it (first, so that a
/// value whose `Drop` uses the pool finds the slot free), then frees it.
///
/// # Safety
///
/// `lent` is a guard's, given up by it.
unsafe fn discard<T>(lent: Lent<T>) {
    // SAFETY: the caller's promise: the box is live and the guard's to give
    // up, and its home, if any, lent it and is alive.
    unsafe {
        if let Some(slot) = lent.slot() {
            (*slot).vacate();
        }
        drop(Box::from_raw(lent.value.as_ptr()));
    }
}

/// Counts `event` if a panic unwinds through it (forgotten otherwise).
struct CountOnUnwind<'a, M: StatsLayer>(&'a M, Event);

impl<M: StatsLayer> Drop for CountOnUnwind<'_, M> {
    #[cold]
    fn drop(&mut self) {
        self.0.count(self.1);
    }
}

/// Drops a returned value if its reset or retain hook panics (forgotten
/// when they return), and counts it as returned and discarded.
struct DiscardOnUnwind<'a, T, M: StatsLayer> {
    lent: Lent<T>,
    stats: &'a M,
}

impl<T, M: StatsLayer> Drop for DiscardOnUnwind<'_, T, M> {
    /// Inline, passing its fields by value to the cold part: a `drop` out
    /// of line would take `&mut self`, and the guard would be written to the
    /// stack on every return for it.
    #[inline]
    fn drop(&mut self) {
        discard_on_unwind(self.lent, self.stats);
    }
}

#[cold]
#[inline(never)]
fn discard_on_unwind<T, M: StatsLayer>(lent: Lent<T>, stats: &M) {
    stats.count(Event::Return);
    stats.count(Event::Discarded);
    // SAFETY: the value `give_back` was given, which it gives up by
    // unwinding.
    unsafe { discard(lent) };
}

impl<T, C, R, S: fmt::Debug, M> fmt::Debug for Pool<T, C, R, S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.slots.owner();
        f.debug_struct("Pool")
            .field("owner_thread", &(owner != 0).then_some(owner))
            .field("owner_slots", self.slots.first_slots())
            .field("spill", &self.spill)
            .finish_non_exhaustive()
    }
}
