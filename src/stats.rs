//! The optional stats layer: counts what a pool does, costs nothing when off.
//!
//! A pool's fifth type parameter is its stats layer: [`NoStats`] (the default,
//! every hook an empty inline function, so the counting code is not even
//! compiled in) or [`StatsCounters`], chosen with the builder's
//! [`stats`](crate::PoolBuilder::stats).
//!
//! The counters never make threads contend. Each thread counts in a block of
//! its own, on a cache line of its own; the owner thread's hits and the
//! owner slot's returns are counted beside the owner slot, by whoever holds it
//! (one thread at a time, by the slot's protocol). Every counter has a single
//! writer at a time, so an increment is a plain load and store, never a
//! read-modify-write atomic. [`Pool::stats`](crate::Pool::stats) sums the
//! blocks when asked.

use crossbeam_utils::CachePadded;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};
use thread_local::ThreadLocal;

/// A snapshot of what a pool has done since it was built.
///
/// Every counter is exact when read on the only thread that used the pool;
/// with many threads, each is exact once they have joined (while they run, a
/// snapshot may miss their latest increments).
///
/// ```
/// use mempool::Pool;
///
/// let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
/// drop(pool.get());
/// let s = pool.stats().unwrap();
/// assert_eq!((s.gets, s.creates, s.returns, s.idle), (1, 1, 1, 1));
/// println!("{s}");
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
pub struct Stats {
    /// Guards handed out (`get` and `get_owned`).
    pub gets: u64,
    /// Gets served by the owner slot without creating.
    pub owner_hits: u64,
    /// Gets served by a value reused from the spill.
    pub spill_hits: u64,
    /// Values made by the `create` hook, for gets and for prefill.
    pub creates: u64,
    /// Values made by prefill (also counted in `creates`).
    pub prefilled: u64,
    /// Values handed back, by a guard's drop or by `put`.
    pub returns: u64,
    /// Values the spill accepted: returned, put, or prefilled.
    pub spilled: u64,
    /// Values the spill refused, which the pool dropped.
    pub discarded: u64,
    /// Guards consumed by `take`: their values left the pool.
    pub taken: u64,
    /// Idle values dropped by `trim`.
    pub trimmed: u64,
    /// Idle values the pool holds now, owner slot included.
    pub idle: usize,
}

impl Stats {
    /// The share of gets that reused a value instead of creating one, from
    /// 0.0 to 1.0; 0.0 when there were no gets.
    ///
    /// ```
    /// let s = mempool::Stats { gets: 4, owner_hits: 2, spill_hits: 1, creates: 1, ..Default::default() };
    /// assert_eq!(s.hit_rate(), 0.75);
    /// assert_eq!(mempool::Stats::default().hit_rate(), 0.0);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        if self.gets == 0 {
            return 0.0;
        }
        (self.owner_hits + self.spill_hits) as f64 / self.gets as f64
    }
}

impl fmt::Display for Stats {
    /// One line, `key=value` pairs, hit rate first.
    ///
    /// ```
    /// let s = mempool::Stats { gets: 2, owner_hits: 1, creates: 1, ..Default::default() };
    /// assert!(s.to_string().starts_with("hit_rate=50.0% gets=2 owner_hits=1"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hit_rate={:.1}% gets={} owner_hits={} spill_hits={} creates={} prefilled={} \
             returns={} spilled={} discarded={} taken={} trimmed={} idle={}",
            self.hit_rate() * 100.0,
            self.gets,
            self.owner_hits,
            self.spill_hits,
            self.creates,
            self.prefilled,
            self.returns,
            self.spilled,
            self.discarded,
            self.taken,
            self.trimmed,
            self.idle,
        )
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for super::NoStats {}
    impl Sealed for super::StatsCounters {}
}

/// What a pool can record into: [`NoStats`] or [`StatsCounters`]. Sealed; its
/// methods are the pool's hooks and are not meant to be called by users. It
/// appears in bounds, for code generic over a pool's stats layer:
///
/// ```
/// use mempool::{Pool, Reset, Spill, StatsLayer};
///
/// fn gets<T, C: Fn() -> T, R: Reset<T>, S: Spill<T>, M: StatsLayer>(
///     pool: &Pool<T, C, R, S, M>,
/// ) -> Option<u64> {
///     pool.stats().map(|s| s.gets)
/// }
///
/// let on = Pool::builder().create(String::new).stats().build();
/// drop(on.get());
/// assert_eq!(gets(&on), Some(1));
/// assert_eq!(gets(&Pool::new(String::new)), None);
/// ```
pub trait StatsLayer: sealed::Sealed {
    #[doc(hidden)]
    fn owner_hit(&self);
    #[doc(hidden)]
    fn owner_return(&self);
    #[doc(hidden)]
    fn count(&self, event: Event);
    #[doc(hidden)]
    fn snapshot(&self, idle: usize) -> Option<Stats>;
}

/// One kind of thing a pool counts outside the owner slot.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Event {
    SpillHit,
    Create,
    Prefill,
    Return,
    Spilled,
    Discarded,
    Taken,
    Trimmed(usize),
}

/// The stats layer that counts nothing; the default. Every hook is an empty
/// inline function, so a pool with it runs exactly the code it would run if
/// stats did not exist.
///
/// ```
/// let pool = mempool::Pool::new(String::new);
/// assert!(pool.stats().is_none());
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoStats;

impl StatsLayer for NoStats {
    #[inline(always)]
    fn owner_hit(&self) {}
    #[inline(always)]
    fn owner_return(&self) {}
    #[inline(always)]
    fn count(&self, _event: Event) {}
    fn snapshot(&self, _idle: usize) -> Option<Stats> {
        None
    }
}

/// The stats layer that counts; chosen with
/// [`PoolBuilder::stats`](crate::PoolBuilder::stats).
///
/// ```
/// let pool = mempool::Pool::builder().create(String::new).stats().build();
/// assert_eq!(pool.stats().unwrap().gets, 0);
/// ```
#[derive(Default)]
pub struct StatsCounters {
    /// Counted by whoever holds the owner slot: one thread at a time.
    owner: CachePadded<OwnerCounts>,
    /// Counted by each thread in its own block.
    threads: ThreadLocal<CachePadded<ThreadCounts>>,
}

#[derive(Default)]
struct OwnerCounts {
    hits: AtomicU64,
    returns: AtomicU64,
}

#[derive(Default)]
struct ThreadCounts {
    spill_hits: AtomicU64,
    creates: AtomicU64,
    prefilled: AtomicU64,
    returns: AtomicU64,
    spilled: AtomicU64,
    discarded: AtomicU64,
    taken: AtomicU64,
    trimmed: AtomicU64,
}

/// Adds `n` to a counter that has one writer at a time. A load and a store,
/// not `fetch_add`: no other thread writes the counter, so no increment can
/// be lost, and readers only need to see a value that was once true.
#[inline(always)]
fn add(counter: &AtomicU64, n: u64) {
    counter.store(counter.load(Ordering::Relaxed) + n, Ordering::Relaxed);
}

fn read(counter: &AtomicU64) -> u64 {
    counter.load(Ordering::Relaxed)
}

impl StatsLayer for StatsCounters {
    #[inline(always)]
    fn owner_hit(&self) {
        add(&self.owner.hits, 1);
    }

    #[inline(always)]
    fn owner_return(&self) {
        add(&self.owner.returns, 1);
    }

    #[inline]
    fn count(&self, event: Event) {
        let t = self.threads.get_or_default();
        let (counter, n) = match event {
            Event::SpillHit => (&t.spill_hits, 1),
            Event::Create => (&t.creates, 1),
            Event::Prefill => (&t.prefilled, 1),
            Event::Return => (&t.returns, 1),
            Event::Spilled => (&t.spilled, 1),
            Event::Discarded => (&t.discarded, 1),
            Event::Taken => (&t.taken, 1),
            Event::Trimmed(n) => (&t.trimmed, n as u64),
        };
        add(counter, n);
    }

    fn snapshot(&self, idle: usize) -> Option<Stats> {
        let mut s = Stats {
            owner_hits: read(&self.owner.hits),
            returns: read(&self.owner.returns),
            idle,
            ..Stats::default()
        };
        for t in self.threads.iter() {
            s.spill_hits += read(&t.spill_hits);
            s.creates += read(&t.creates);
            s.prefilled += read(&t.prefilled);
            s.returns += read(&t.returns);
            s.spilled += read(&t.spilled);
            s.discarded += read(&t.discarded);
            s.taken += read(&t.taken);
            s.trimmed += read(&t.trimmed);
        }
        // Every get is an owner hit, a spill hit or a create; every create
        // that is not a prefill was made for a get.
        s.gets = s.owner_hits + s.spill_hits + s.creates.saturating_sub(s.prefilled);
        Some(s)
    }
}

impl fmt::Debug for StatsCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsCounters")
            .field("owner_hits", &read(&self.owner.hits))
            .field("threads", &self.threads.iter().count())
            .finish()
    }
}
