use crate::guard::{Held, OwnedPoolGuard, PoolGuard};
use crate::owner::OwnerSlot;
use crate::stats::{Event, NoStats, Stats, StatsLayer};
use crate::{DefaultSpill, NoReset, Reset, Spill};
use mempool_policies::thread_id;
use mempool_policies::{LockFree, PerThread};
use std::fmt;
use std::sync::Arc;

/// A thread-safe pool of reusable values.
///
/// The first thread to call [`get`](Pool::get) becomes the pool's *owner*:
/// for the pool's whole life, that thread gets and returns up to two values
/// through the *owner slots*, inside the pool, which need no lock and no
/// read-modify-write atomic; the guard returns a value there with one store,
/// whichever thread drops it.
///
/// With the default spill strategy, [`PerThread`](crate::spill::PerThread),
/// every other thread (and the owner while both owner slots are in use) has
/// a pocket of its own: two slots of the same kind, found through a
/// per-thread cache, which costs them one dependent load more than the
/// owner. A thread that holds more values at once, or whose slots are
/// empty, gets one from the strategy's shared overflow, else from another
/// thread's pocket or an idle owner slot, else from `create`.
///
/// With any other strategy, every get but the owner's from its owner slots
/// goes to the spill strategy `S`, and when the spill has nothing, `create`
/// makes a new value.
///
/// A returned value is reset by `R`, then goes back to the slot it came from,
/// or is offered to the spill; a value the spill refuses is dropped.
///
/// A value is only ever held by one guard at a time, and values are never
/// shared between threads, which is why a pool is `Sync` as soon as `T` is
/// `Send` (and the hooks are `Send + Sync`).
///
/// The type parameters are the value, the `create` hook, the `reset` hook, the
/// spill strategy and the stats layer. Their defaults make `Pool<T>` a
/// nameable type for a `static` or a struct field, built by [`Pool::new`] with
/// a function pointer:
///
/// ```
/// use mempool::Pool;
/// use std::sync::LazyLock;
///
/// static BUFFERS: LazyLock<Pool<String>> = LazyLock::new(|| Pool::new(String::new));
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
/// A `Pool<Vec<u8>>` is 768 bytes before any use (`size_of`, 64-bit Linux):
/// the owner slots take two 128-byte cache lines (the owner's number, read
/// by every thread, apart from the two values and their states, written by
/// the owner on every get); the default strategy about
/// 400 bytes (16 buckets of per-thread pockets at 24 bytes each, made when a
/// thread first needs one, and an overflow queue made on first use);
/// `decay`'s set-aside queue 16 bytes until used; and the hooks, here one
/// function pointer; the whole rounded up to the owner slots' 128-byte
/// alignment. Each thread that uses a pool with the default strategy adds a
/// pocket holding two values inline (`2 * (size_of::<T>() + 16)` bytes,
/// rounded up to 128: 128 for a `Vec`), made in buckets of 8, 16,
/// 32... pockets; threads that exit hand theirs to threads that start later.
/// The owner slots hold their values inline too (a larger `T` makes the
/// pool larger); values in a strategy's shared structures are boxed. So for
/// a value type of kilobytes (an array by value), pool a `Box` of it, or a
/// bucket of pockets made for one thread costs 8 times two of them.
///
/// ```
/// if cfg!(all(target_pointer_width = "64", target_os = "linux")) {
///     assert_eq!(std::mem::size_of::<mempool::Pool<Vec<u8>>>(), 768);
/// }
/// ```
pub struct Pool<T, C = fn() -> T, R = NoReset, S = DefaultSpill<T>, M = NoStats> {
    owner: OwnerSlot<T>,
    create: C,
    reset: R,
    spill: S,
    stats: M,
    /// Values that were idle at the last `decay`: reused when the spill has
    /// none, dropped by the next `decay` if still here (Go's victim cache).
    victims: LockFree<T>,
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

impl<T: Send, C: Fn() -> T> Pool<T, C> {
    /// A pool that makes values with `create`, does not reset them, and
    /// keeps extra values in the default spill strategy.
    ///
    /// ```
    /// let pool = mempool::Pool::new(|| String::with_capacity(64));
    /// assert!(pool.get().capacity() >= 64);
    /// ```
    pub fn new(create: C) -> Self {
        Pool::from_parts(create, NoReset, DefaultSpill::default(), NoStats)
    }
}

impl<T, C, R, S, M> Pool<T, C, R, S, M> {
    pub(crate) fn from_parts(create: C, reset: R, spill: S, stats: M) -> Self {
        Pool {
            owner: OwnerSlot::new(),
            create,
            reset,
            spill,
            stats,
            victims: LockFree::new(),
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
    /// On the owner thread with an owner slot idle, this is a thread-local
    /// read (the thread's number), three atomic loads (the owner's number,
    /// the slot's state and its steal word) and an atomic store; on another
    /// thread with the default strategy and a value idle in its pocket, the
    /// same plus a thread-local read (the pocket's address). Otherwise the
    /// value comes from the spill, else from an idle value anywhere in the
    /// pool, else from `create`.
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
        PoolGuard::new(self, self.acquire())
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
        OwnedPoolGuard::new(Arc::clone(self), self.acquire())
    }

    #[inline(always)]
    fn acquire(&self) -> Held<T> {
        // `cached`: no branch for a thread without a number yet; its
        // placeholder matches no owner, so such a thread takes a slower path.
        let caller = thread_id::cached();
        if let Some(ticket) = self.owner.take_ticket(caller) {
            self.stats.owner_hit();
            return Held::Owner(ticket);
        }
        if let Some(per_thread) = self.spill.as_per_thread() {
            if let Some(held) = self.pocket_hit(per_thread) {
                return held;
            }
            return self.acquire_for_pocket(caller);
        }
        self.acquire_slow(caller)
    }

    /// With `PerThread`: an idle value from the calling thread's pocket.
    #[inline(always)]
    fn pocket_hit(&self, per_thread: &PerThread<T>) -> Option<Held<T>> {
        // SAFETY: every caller puts the ticket into a guard, which borrows
        // the pool or holds an `Arc` of it, so it ends before the spill is
        // dropped.
        let ticket = unsafe { per_thread.take_own() }?;
        self.stats.count(Event::SlotHit);
        Some(Held::Pocket(ticket))
    }

    /// With `PerThread`, every get that neither the owner slots nor the
    /// calling thread's pocket could serve: the owner slots' claim or refill,
    /// else a value from anywhere else, kept in a free slot of the pocket if
    /// there is one. Cold: a thread's pocket serves it until it holds three
    /// values at once (the owner: five). Marking the paths off the pocket hit cold (this one,
    /// the per-thread cache's miss, the slot's thief check) lays the hit out
    /// in a straight line, which measured 1.6 against 2.0 ns a cycle
    /// (`benches/examples/ratio.rs`).
    #[cold]
    #[inline(never)]
    fn acquire_for_pocket(&self, cached: usize) -> Held<T> {
        self.acquire_slow(cached)
    }

    /// Puts a value the caller got into a free slot of its pocket, or hands it
    /// out boxed if there is none.
    fn keep_in_pocket(&self, per_thread: &PerThread<T>, value: Box<T>) -> Held<T> {
        // SAFETY: the ticket goes into a guard, which borrows the pool or
        // holds an `Arc` of it, so it ends before the spill is dropped.
        match unsafe { per_thread.fill_own(value) } {
            Ok(ticket) => Held::Pocket(ticket),
            Err(value) => Held::Spilled(value),
        }
    }

    /// Holds a value that came from neither slot: in a free slot of the
    /// calling thread's pocket with `PerThread`, else boxed.
    #[inline(always)]
    fn hold(&self, value: Box<T>) -> Held<T> {
        match self.spill.as_per_thread() {
            Some(per_thread) => self.keep_in_pocket(per_thread, value),
            None => Held::Spilled(value),
        }
    }

    /// Every get but the slots' fast ones: for a pool without `PerThread`,
    /// the usual path of every other thread (a spill pop), so not `#[cold]`.
    /// Out of line all the same: inlined, it made the owner's loop spill
    /// registers (measured: the owner's cycle went from 1.6 to 1.9 ns).
    #[inline(never)]
    fn acquire_slow(&self, cached: usize) -> Held<T> {
        let owner = self.owner.owner();
        if owner != 0
            && cached != thread_id::UNASSIGNED
            && (owner != cached || !self.owner.has_room_for(cached))
        {
            // Another thread owns the slot (the usual case here), or this
            // thread does and is using it (a nested get).
            return self.hold(self.pop_or_create());
        }
        self.acquire_unusual(owner)
    }

    /// The slots are unclaimed, or this may be the owner thread.
    #[cold]
    #[inline(never)]
    fn acquire_unusual(&self, owner: usize) -> Held<T> {
        let caller = thread_id::current();
        if owner == 0 || owner == caller {
            return self.acquire_rare(caller, owner);
        }
        self.hold(self.pop_or_create())
    }

    /// The slots have no owner yet, or the owner thread's are in use or
    /// empty.
    #[cold]
    fn acquire_rare(&self, caller: usize, owner: usize) -> Held<T> {
        if owner == 0 {
            // Nobody owns the slots: get a value first (so that a panic in
            // `create` leaves them as they were), then try to claim them.
            let value = self.pop_or_create();
            if self.owner.claim(caller) {
                return self.fill_owner_slot(caller, value);
            }
            return self.hold(value);
        }
        if self.owner.has_room_for(caller) {
            // An owner slot is empty (never filled yet, or emptied by `take`,
            // `trim` or a panicking reset): fill it.
            return self.fill_owner_slot(caller, self.pop_or_create());
        }
        // The owner is using both slots (a nested get).
        self.hold(self.pop_or_create())
    }

    fn fill_owner_slot(&self, caller: usize, value: Box<T>) -> Held<T> {
        match self.owner.fill(caller, value) {
            Ok(ticket) => Held::Owner(ticket),
            // A thief is looking at the slot right now (rare): the value
            // goes out another way; the slot is refilled on a later get.
            Err(value) => self.hold(value),
        }
    }

    #[inline(always)]
    fn pop_or_create(&self) -> Box<T> {
        match self.reuse() {
            Some(value) => value,
            None => self.create_boxed(),
        }
    }

    #[cold]
    fn create_boxed(&self) -> Box<T> {
        Box::new(self.create())
    }

    /// An idle value from anywhere but the owner's fast path: the spill, the
    /// values the last `decay` set aside, or an owner slot (whose owner may
    /// have exited; a heavy barrier when one looks full).
    #[inline(always)]
    fn reuse(&self) -> Option<Box<T>> {
        if let Some(value) = self.spill.pop() {
            self.stats.count(Event::SpillHit);
            return Some(value);
        }
        self.reuse_elsewhere()
    }

    #[cold]
    fn reuse_elsewhere(&self) -> Option<Box<T>> {
        if let Some(value) = self.victims.pop() {
            self.stats.count(Event::SpillHit);
            return Some(value);
        }
        let mut stolen = Vec::new();
        self.owner.steal_into(&mut stolen, 1);
        let value = stolen.pop()?;
        self.stats.count(Event::SlotHit);
        Some(value)
    }

    #[inline]
    fn create(&self) -> T {
        let value = (self.create)();
        self.stats.count(Event::Create);
        value
    }

    /// Takes a value back from a guard. Runs on whichever thread drops it.
    ///
    /// The reset comes first, wherever the value lives, so that the user's
    /// last writes and the reset's sit side by side (the optimiser merges
    /// them); then `retain`, which may refuse the value. If either panics,
    /// unwinding drops `held`: a boxed value is freed, and an owner ticket
    /// drops its value and leaves the slot empty; the stats count it as
    /// returned and discarded.
    #[inline]
    pub(crate) fn give_back(&self, mut held: Held<T>) {
        let counted = CountIfResetPanics(&self.stats);
        let keep = self.reset.recycle(held.get_mut());
        std::mem::forget(counted);
        if !keep {
            return self.reject(held);
        }
        match held {
            Held::Owner(ticket) => {
                // Counted while the ticket is held: one writer at a time.
                self.stats.owner_return(self.owner.index_of(&ticket));
                ticket.release();
            }
            Held::Pocket(ticket) => {
                self.stats.count(Event::Return);
                ticket.release();
            }
            Held::Spilled(value) => self.give_back_spilled(value),
        }
    }

    /// `retain` said no: drop the value (a slot's leaves the slot empty).
    #[cold]
    #[inline(never)]
    fn reject(&self, held: Held<T>) {
        self.stats.count(Event::Return);
        self.stats.count(Event::Rejected);
        drop(held.into_inner());
    }

    /// Counts a return of a value that is not a slot's, and offers
    /// it to the spill; the value is already reset. Out of line, like
    /// `acquire_slow`, and for the same reason.
    #[inline(never)]
    fn give_back_spilled(&self, value: Box<T>) {
        self.stats.count(Event::Return);
        self.offer(value);
        // A spill with a ceiling (`Bounded`) keeps it across `decay`: while
        // values are set aside, a returned one takes the place of one of
        // them.
        if self.spill.ceiling().is_some() {
            if let Some(stale) = self.victims.pop() {
                self.stats.count(Event::Decayed(1));
                drop(stale);
            }
        }
    }

    /// Offers a reset value to the spill, dropping it if refused.
    #[inline(always)]
    fn offer(&self, value: Box<T>) {
        match self.spill.push(value) {
            Ok(()) => self.stats.count(Event::Spilled),
            Err(refused) => {
                self.stats.count(Event::Discarded);
                drop(refused);
            }
        }
    }

    /// Records that a guard's value left the pool through `take`.
    pub(crate) fn note_taken(&self) {
        self.stats.count(Event::Taken);
    }

    /// Hands a value to the pool, as if a guard holding it were dropped: it
    /// is reset, then offered to the spill (and dropped if refused).
    ///
    /// # Panics
    ///
    /// If `reset` panics; the value is dropped and the pool stays usable.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(Vec::<u8>::new).reset(Vec::clear).build();
    /// pool.put(vec![1, 2, 3]);
    /// assert_eq!(pool.idle(), 1);
    /// let v = pool.get();
    /// assert!(v.is_empty() && v.capacity() >= 3); // reset, allocation kept
    /// ```
    pub fn put(&self, value: T) {
        self.stats.count(Event::Put);
        self.give_back(Held::Spilled(Box::new(value)));
    }

    /// Makes `n` values with `create` and offers them to the spill, so that
    /// the first gets find them ready. Values the spill refuses are dropped.
    ///
    /// ```
    /// let pool = mempool::Pool::new(Vec::<u8>::new);
    /// pool.prefill(3);
    /// assert_eq!(pool.idle(), 3);
    /// ```
    pub fn prefill(&self, n: usize) {
        for _ in 0..n {
            let value = Box::new(self.create());
            self.stats.count(Event::Prefill);
            self.offer(value);
        }
    }

    /// How many idle values the pool holds now, the pockets' and the owner
    /// slots' included. Exact when no other thread is using the pool.
    ///
    /// ```
    /// let pool = mempool::Pool::new(String::new);
    /// assert_eq!(pool.idle(), 0);
    /// drop(pool.get());
    /// assert_eq!(pool.idle(), 1);
    /// ```
    pub fn idle(&self) -> usize {
        self.owner.idle() + self.spill.len() + self.victims.len()
    }

    /// Drops every idle value the pool holds, in every pocket and the owner
    /// slots too, and returns how many it dropped. Works from any thread;
    /// values in use are not touched. The pool stays usable: later gets
    /// create values again.
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
        self.owner.steal_into(&mut values, usize::MAX);
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
        if let Some(ticket) = self.owner.take_ticket(thread_id::cached()) {
            self.stats.owner_hit();
            return Some(PoolGuard::new(self, Held::Owner(ticket)));
        }
        if let Some(per_thread) = self.spill.as_per_thread() {
            if let Some(held) = self.pocket_hit(per_thread) {
                return Some(PoolGuard::new(self, held));
            }
        }
        let value = self.reuse()?;
        // As `get` does: the owner thread refills its empty slot, and the
        // first taker of an unclaimed slot claims it.
        let caller = thread_id::current();
        let owner = self.owner.owner();
        let held = if (owner == 0 && self.owner.claim(caller)) || self.owner.has_room_for(caller) {
            self.fill_owner_slot(caller, value)
        } else {
            self.hold(value)
        };
        Some(PoolGuard::new(self, held))
    }

    /// Drops the values that have sat idle since the previous `decay`, and
    /// sets aside the ones idle now, to be dropped by the next call unless a
    /// get takes them first; returns how many it dropped (the first call
    /// drops none). Go's victim cache, run by you instead of a garbage
    /// collector: call it from a timer, and memory goes back to what the
    /// values in use need after a burst.
    ///
    /// Reaches every strategy, every thread's pocket and the owner slots, from
    /// any thread, through the same asymmetric barrier as [`trim`](Pool::trim).
    /// Values set aside stay idle and reusable: a get finds them when the
    /// spill has none. With a spill that promises a ceiling
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
        // this pool, and a panicking one must not keep the others alive.
        let stale = self.victims.drain();
        let mut idle = self.spill.drain();
        self.owner.steal_into(&mut idle, usize::MAX);
        for value in idle {
            // An unbounded queue: never refuses.
            let _ = self.victims.push(value);
        }
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
    /// assert_eq!(pool.spill().capacity(), 4);
    /// ```
    pub fn spill(&self) -> &S {
        &self.spill
    }
}

/// Counts a returned value as discarded if its reset hook panics: dropped
/// during the unwind, forgotten when the reset returns. With `NoStats` it is
/// empty and compiles away.
struct CountIfResetPanics<'a, M: StatsLayer>(&'a M);

impl<M: StatsLayer> Drop for CountIfResetPanics<'_, M> {
    #[cold]
    fn drop(&mut self) {
        self.0.count(Event::Return);
        self.0.count(Event::Discarded);
    }
}

impl<T, C, R, S: Spill<T> + fmt::Debug, M> fmt::Debug for Pool<T, C, R, S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let owner = self.owner.owner();
        f.debug_struct("Pool")
            .field("owner_thread", &(owner != 0).then_some(owner))
            .field("owner_slots", &self.owner.slots())
            .field("spill", &self.spill)
            .finish_non_exhaustive()
    }
}
