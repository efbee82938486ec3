//! The optional stats layer: counts what a pool does, costs nothing when off.
//!
//! A pool's fifth type parameter is its stats layer: [`NoStats`] (the default,
//! every hook an empty inline function, so the counting code is not even
//! compiled in) or [`StatsCounters`], chosen with the builder's
//! [`stats`](crate::PoolBuilder::stats).
//!
//! The counters never make threads contend. Each thread counts in a block of
//! its own, on a cache line of its own (found through a per-thread cache, a
//! few instructions), whatever it counts: a get, a return of a value from
//! any thread's slot, a create. Every counter has a single writer, so an
//! increment is a plain load and store, never a read-modify-write atomic.
//! [`Pool::stats`](crate::Pool::stats) sums the blocks when asked.
//!
//! One exception: a thread that is exiting (a guard kept in a
//! `thread_local!` is returned by its destructor) may have given up its
//! block, and then counts into a shared block with `fetch_add`.

use crossbeam_utils::CachePadded;
use mempool_policies::sync::ThreadSlots;
use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

/// A snapshot of what a pool has done since it was built.
///
/// Every counter is exact when read on the only thread that used the pool;
/// with many threads, each is exact once they have joined (while they run, a
/// snapshot may miss their latest increments). When no thread is using the
/// pool, these hold:
///
/// - `creates + puts == idle + in_use + discarded + rejected + decayed +
///   trimmed + taken`: every value that came in is idle, in a guard, or gone
///   one of five ways;
/// - `gets + puts == returns + taken + in_use`: every guard handed out and
///   every value put was returned, taken, or is still held.
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
///
/// `#[non_exhaustive]`, so that counters can be added without breaking
/// anyone: build one with `Stats::default()` and set its fields.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
#[cfg_attr(feature = "serde", derive(serde::Serialize, serde::Deserialize))]
#[non_exhaustive]
pub struct Stats {
    /// Guards handed out (`get` and `get_owned`).
    pub gets: u64,
    /// Gets served by a slot's value without creating: by one of the calling
    /// thread's slots (the first thread's inside the pool, or its pocket),
    /// or by another thread's idle slot value taken over.
    pub slot_hits: u64,
    /// Gets served by a value reused from the spill.
    pub spill_hits: u64,
    /// Values made by the `create` hook, for gets and for prefill.
    pub creates: u64,
    /// Values made by prefill (also counted in `creates`).
    pub prefilled: u64,
    /// Values handed back, by a guard's drop or by `put` (a value whose reset
    /// panicked included: it is also counted in `discarded`).
    pub returns: u64,
    /// Values handed in by `put` (also counted in `returns`).
    pub puts: u64,
    /// Values the spill accepted: returned, put, or prefilled.
    pub spilled: u64,
    /// Returned values the pool dropped: the spill refused them, or their
    /// reset hook panicked.
    pub discarded: u64,
    /// Guards consumed by `take`: their values left the pool.
    pub taken: u64,
    /// Idle values dropped by `trim`.
    pub trimmed: u64,
    /// Returned values the `retain` hook refused, which the pool dropped.
    pub rejected: u64,
    /// Idle values dropped by `decay`.
    pub decayed: u64,
    /// Idle values the pool holds now, every slot's included.
    pub idle: usize,
    /// Values in guards now: `gets + puts - returns - taken`.
    pub in_use: u64,
}

impl Stats {
    /// The share of gets that reused a value instead of creating one, from
    /// 0.0 to 1.0; 0.0 when there were no gets.
    ///
    /// ```
    /// let mut s = mempool::Stats::default();
    /// (s.gets, s.slot_hits, s.spill_hits, s.creates) = (4, 2, 1, 1);
    /// assert_eq!(s.hit_rate(), 0.75);
    /// assert_eq!(mempool::Stats::default().hit_rate(), 0.0);
    /// ```
    pub fn hit_rate(&self) -> f64 {
        if self.gets == 0 {
            return 0.0;
        }
        (self.slot_hits + self.spill_hits) as f64 / self.gets as f64
    }
}

impl fmt::Display for Stats {
    /// One line, `key=value` pairs, hit rate first.
    ///
    /// ```
    /// let mut s = mempool::Stats::default();
    /// (s.gets, s.slot_hits, s.creates) = (2, 1, 1);
    /// assert!(s.to_string().starts_with("hit_rate=50.0% gets=2 slot_hits=1"));
    /// ```
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "hit_rate={:.1}% gets={} slot_hits={} spill_hits={} creates={} prefilled={} \
             returns={} puts={} spilled={} discarded={} taken={} trimmed={} rejected={} \
             decayed={} idle={} in_use={}",
            self.hit_rate() * 100.0,
            self.gets,
            self.slot_hits,
            self.spill_hits,
            self.creates,
            self.prefilled,
            self.returns,
            self.puts,
            self.spilled,
            self.discarded,
            self.taken,
            self.trimmed,
            self.rejected,
            self.decayed,
            self.idle,
            self.in_use,
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
    fn count(&self, event: Event);
    #[doc(hidden)]
    fn snapshot(&self, idle: usize) -> Option<Stats>;
}

/// One kind of thing a pool counts.
#[doc(hidden)]
#[derive(Clone, Copy, Debug)]
pub enum Event {
    SpillHit,
    /// A get served by one of the calling thread's slots, or by an idle
    /// value taken over from another thread's.
    SlotHit,
    Create,
    Prefill,
    Return,
    Put,
    Spilled,
    Discarded,
    Taken,
    Trimmed(usize),
    Rejected,
    Decayed(usize),
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
    /// Counted by each thread in its own block.
    threads: ThreadSlots<CachePadded<ThreadCounts>>,
    /// Counted with `fetch_add` by threads that have no block of their own
    /// any more (they are exiting).
    shared: CachePadded<ThreadCounts>,
}

#[derive(Default)]
struct ThreadCounts {
    slot_hits: AtomicU64,
    spill_hits: AtomicU64,
    creates: AtomicU64,
    prefilled: AtomicU64,
    returns: AtomicU64,
    puts: AtomicU64,
    spilled: AtomicU64,
    discarded: AtomicU64,
    taken: AtomicU64,
    trimmed: AtomicU64,
    rejected: AtomicU64,
    decayed: AtomicU64,
}

impl ThreadCounts {
    fn counter(&self, event: Event) -> (&AtomicU64, u64) {
        match event {
            Event::SpillHit => (&self.spill_hits, 1),
            Event::SlotHit => (&self.slot_hits, 1),
            Event::Create => (&self.creates, 1),
            Event::Prefill => (&self.prefilled, 1),
            Event::Return => (&self.returns, 1),
            Event::Put => (&self.puts, 1),
            Event::Spilled => (&self.spilled, 1),
            Event::Discarded => (&self.discarded, 1),
            Event::Taken => (&self.taken, 1),
            Event::Trimmed(n) => (&self.trimmed, n as u64),
            Event::Rejected => (&self.rejected, 1),
            Event::Decayed(n) => (&self.decayed, n as u64),
        }
    }

    fn add_to(&self, s: &mut Stats) {
        s.slot_hits += read(&self.slot_hits);
        s.spill_hits += read(&self.spill_hits);
        s.creates += read(&self.creates);
        s.prefilled += read(&self.prefilled);
        s.returns += read(&self.returns);
        s.puts += read(&self.puts);
        s.spilled += read(&self.spilled);
        s.discarded += read(&self.discarded);
        s.taken += read(&self.taken);
        s.trimmed += read(&self.trimmed);
        s.rejected += read(&self.rejected);
        s.decayed += read(&self.decayed);
    }
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
    #[inline]
    fn count(&self, event: Event) {
        match self.threads.get() {
            Some(own) => {
                let (counter, n) = own.counter(event);
                add(counter, n);
            }
            None => {
                let (counter, n) = self.shared.counter(event);
                counter.fetch_add(n, Ordering::Relaxed);
            }
        }
    }

    fn snapshot(&self, idle: usize) -> Option<Stats> {
        let mut s = Stats {
            idle,
            ..Stats::default()
        };
        for t in self.threads.iter() {
            t.add_to(&mut s);
        }
        self.shared.add_to(&mut s);
        // Every get is a slot hit, a spill hit or a create; every create
        // that is not a prefill was made for a get.
        s.gets = s.slot_hits + s.spill_hits + s.creates.saturating_sub(s.prefilled);
        // Saturating: while threads run, a snapshot may see a return before
        // the get it answers.
        s.in_use = (s.gets + s.puts).saturating_sub(s.returns + s.taken);
        Some(s)
    }
}

impl fmt::Debug for StatsCounters {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StatsCounters")
            .field("threads", &self.threads.iter().count())
            .finish()
    }
}
