//! Pools' stats in a [`prometheus_client`] registry (feature `prometheus`).
//!
//! A [`PoolCollector`] holds the pools a service wants to export, each under
//! a name, and reads their [`Stats`] when Prometheus scrapes: register it in
//! the service's own [`Registry`], next to its other metrics, and encode the
//! registry as usual. Every metric is one family with a sample per pool,
//! labelled `pool="<name>"`:
//!
//! | metric | type | from |
//! |---|---|---|
//! | `mempool_gets_total` | counter | [`Stats::gets`] |
//! | `mempool_slot_hits_total` | counter | [`Stats::slot_hits`] |
//! | `mempool_spill_hits_total` | counter | [`Stats::spill_hits`] |
//! | `mempool_creates_total` | counter | [`Stats::creates`] |
//! | `mempool_prefilled_total` | counter | [`Stats::prefilled`] |
//! | `mempool_returns_total` | counter | [`Stats::returns`] |
//! | `mempool_puts_total` | counter | [`Stats::puts`] |
//! | `mempool_spilled_total` | counter | [`Stats::spilled`] |
//! | `mempool_discarded_total` | counter | [`Stats::discarded`] |
//! | `mempool_taken_total` | counter | [`Stats::taken`] |
//! | `mempool_trimmed_total` | counter | [`Stats::trimmed`] |
//! | `mempool_rejected_total` | counter | [`Stats::rejected`] |
//! | `mempool_decayed_total` | counter | [`Stats::decayed`] |
//! | `mempool_idle` | gauge | [`Stats::idle`] |
//! | `mempool_in_use` | gauge | [`Stats::in_use`] |
//!
//! There is no hit-rate gauge: a ratio of two counters belongs in the query,
//! where it can be taken over any window and summed across instances. The
//! share of gets that reused a value over the last five minutes is
//!
//! ```text
//! 1 - rate(mempool_creates_total[5m]) / rate(mempool_gets_total[5m])
//! ```
//!
//! ```
//! use mempool::prometheus::PoolCollector;
//! use mempool::Pool;
//! use prometheus_client::encoding::text::encode;
//! use prometheus_client::metrics::counter::Counter;
//! use prometheus_client::registry::Registry;
//! use std::sync::Arc;
//!
//! let buffers = Arc::new(Pool::builder().create(Vec::<u8>::new).stats().build());
//! let names = Arc::new(Pool::builder().create(String::new).stats().build());
//!
//! // The service's registry, with a metric of its own.
//! let mut registry = Registry::default();
//! let requests: Counter = Counter::default();
//! registry.register("requests", "Requests served", requests.clone());
//!
//! let pools = PoolCollector::new();
//! pools.add("buffers", &buffers);
//! pools.add("names", &names);
//! pools.register(&mut registry);
//!
//! drop((buffers.get(), buffers.get()));
//! requests.inc();
//!
//! // What a scrape returns: the stats as they are now.
//! let mut text = String::new();
//! encode(&mut text, &registry).unwrap();
//! assert!(text.contains("# TYPE mempool_gets counter\n"));
//! assert!(text.contains("mempool_gets_total{pool=\"buffers\"} 2\n"));
//! assert!(text.contains("mempool_gets_total{pool=\"names\"} 0\n"));
//! assert!(text.contains("mempool_idle{pool=\"buffers\"} 2\n"));
//! assert!(text.contains("requests_total 1\n"));
//! ```

use crate::{Pool, Reset, Spill, Stats, StatsCounters};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, NoLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::registry::Registry;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

/// Reads one pool's stats at scrape time; `None` when there is nothing to
/// export (the pool is gone).
type ReadStats = Box<dyn Fn() -> Option<Stats> + Send + Sync>;

/// A pool to export: its `pool` label and how to read its stats.
struct Entry {
    name: Arc<str>,
    read: ReadStats,
}

/// Exports the stats of named pools to a [`prometheus_client`] [`Registry`],
/// read afresh at every scrape. See the [module docs](self) for the metrics
/// and the hit-rate query.
///
/// Cloning gives another handle to the same set of pools, so pools can be
/// added after the collector was registered. Register one collector per
/// registry: two would export the same metric families twice.
///
/// ```
/// use mempool::prometheus::PoolCollector;
/// use mempool::Pool;
/// use prometheus_client::registry::Registry;
/// use std::sync::Arc;
///
/// let mut registry = Registry::default();
/// let pools = PoolCollector::new();
/// pools.register(&mut registry);
///
/// // Later, wherever pools are made:
/// let pool = Arc::new(Pool::builder().create(String::new).stats().build());
/// pools.add("names", &pool);
/// ```
#[derive(Clone, Default)]
pub struct PoolCollector {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl PoolCollector {
    /// A collector with no pools yet.
    ///
    /// ```
    /// let pools = mempool::prometheus::PoolCollector::new();
    /// assert!(pools.names().is_empty());
    /// ```
    pub fn new() -> Self {
        Self::default()
    }

    /// Exports `pool` under the label `pool="<name>"`, replacing any pool
    /// already added under that name.
    ///
    /// The collector keeps only a weak reference: it does not keep the pool
    /// alive, and once the pool is dropped its samples disappear from
    /// scrapes. The pool must count stats (built with
    /// [`stats`](crate::PoolBuilder::stats)); one that does not is a type
    /// error here.
    ///
    /// ```
    /// use mempool::prometheus::PoolCollector;
    /// use mempool::Pool;
    /// use std::sync::Arc;
    ///
    /// let pools = PoolCollector::new();
    /// let pool = Arc::new(Pool::builder().create(Vec::<u8>::new).stats().build());
    /// pools.add("buffers", &pool);
    /// assert_eq!(pools.names(), ["buffers"]);
    /// ```
    pub fn add<T, C, R, S>(
        &self,
        name: impl Into<String>,
        pool: &Arc<Pool<T, C, R, S, StatsCounters>>,
    ) -> &Self
    where
        T: 'static,
        C: Fn() -> T + 'static,
        R: Reset<T> + 'static,
        S: Spill<T> + 'static,
        Pool<T, C, R, S, StatsCounters>: Send + Sync,
    {
        let pool = Arc::downgrade(pool);
        self.add_fn(name, move || pool.upgrade().and_then(|pool| pool.stats()))
    }

    /// Exports whatever `read` returns under the label `pool="<name>"`,
    /// replacing any pool already added under that name. `read` runs at
    /// every scrape; when it returns `None` the pool has no samples in that
    /// scrape.
    ///
    /// For a pool that is not in an `Arc`, such as a `static`:
    ///
    /// ```
    /// use mempool::prometheus::PoolCollector;
    /// use mempool::{DefaultSpill, NoReset, Pool, StatsCounters};
    /// use std::sync::LazyLock;
    ///
    /// // A `static` pool that counts stats: its type names every parameter.
    /// type Names = Pool<String, fn() -> String, NoReset, DefaultSpill<String>, StatsCounters>;
    /// static NAMES: LazyLock<Names> = LazyLock::new(|| {
    ///     Pool::builder().create(String::new as fn() -> String).stats().build()
    /// });
    ///
    /// let pools = PoolCollector::new();
    /// pools.add_fn("names", || NAMES.stats());
    /// drop(NAMES.get());
    /// assert_eq!(NAMES.stats().unwrap().gets, 1);
    /// ```
    pub fn add_fn<F>(&self, name: impl Into<String>, read: F) -> &Self
    where
        F: Fn() -> Option<Stats> + Send + Sync + 'static,
    {
        let entry = Entry {
            name: Arc::from(name.into()),
            read: Box::new(read),
        };
        let mut entries = self.lock();
        match entries.iter_mut().find(|e| e.name == entry.name) {
            Some(old) => *old = entry,
            None => entries.push(entry),
        }
        drop(entries);
        self
    }

    /// Stops exporting the pool added under `name`; returns whether there
    /// was one.
    ///
    /// ```
    /// let pools = mempool::prometheus::PoolCollector::new();
    /// pools.add_fn("scratch", || None);
    /// assert!(pools.remove("scratch"));
    /// assert!(!pools.remove("scratch"));
    /// ```
    pub fn remove(&self, name: &str) -> bool {
        let mut entries = self.lock();
        let before = entries.len();
        entries.retain(|e| &*e.name != name);
        entries.len() != before
    }

    /// The names of the pools added, in the order they were first added.
    ///
    /// ```
    /// let pools = mempool::prometheus::PoolCollector::new();
    /// pools.add_fn("b", || None).add_fn("a", || None);
    /// assert_eq!(pools.names(), ["b", "a"]);
    /// ```
    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|e| e.name.to_string()).collect()
    }

    /// Registers a handle to this collector in `registry`: the same as
    /// `registry.register_collector(Box::new(self.clone()))`.
    ///
    /// ```
    /// use prometheus_client::registry::Registry;
    ///
    /// let mut registry = Registry::default();
    /// mempool::prometheus::PoolCollector::new().register(&mut registry);
    /// ```
    pub fn register(&self, registry: &mut Registry) {
        registry.register_collector(Box::new(self.clone()));
    }

    /// The entries, whether or not a reader panicked while they were locked
    /// (a panic in a user's `read` leaves the list itself intact).
    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<Entry>> {
        self.entries.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every pool's stats now, read once per scrape so that all families
    /// show the same moment. Pools whose stats are gone are left out.
    fn snapshot(&self) -> Vec<(Arc<str>, Stats)> {
        self.lock()
            .iter()
            .filter_map(|e| (e.read)().map(|s| (Arc::clone(&e.name), s)))
            .collect()
    }
}

impl fmt::Debug for PoolCollector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolCollector")
            .field("pools", &self.names())
            .finish()
    }
}

/// One exported family: its name (a counter's without `_total`, which the
/// encoder adds), its help text, its type and how to read it off a snapshot.
struct Family {
    name: &'static str,
    help: &'static str,
    kind: MetricType,
    value: fn(&Stats) -> u64,
}

#[rustfmt::skip]
const FAMILIES: &[Family] = &[
    Family { name: "mempool_gets", help: "Guards handed out.", kind: MetricType::Counter, value: |s| s.gets },
    Family { name: "mempool_slot_hits", help: "Gets served by a slot: the calling thread's, or another thread's idle one.", kind: MetricType::Counter, value: |s| s.slot_hits },
    Family { name: "mempool_spill_hits", help: "Gets served by a value reused from the spill.", kind: MetricType::Counter, value: |s| s.spill_hits },
    Family { name: "mempool_creates", help: "Values made by the create hook, prefill included.", kind: MetricType::Counter, value: |s| s.creates },
    Family { name: "mempool_prefilled", help: "Values made by prefill.", kind: MetricType::Counter, value: |s| s.prefilled },
    Family { name: "mempool_returns", help: "Values handed back by a guard or put.", kind: MetricType::Counter, value: |s| s.returns },
    Family { name: "mempool_puts", help: "Values handed in by put.", kind: MetricType::Counter, value: |s| s.puts },
    Family { name: "mempool_spilled", help: "Values the spill accepted.", kind: MetricType::Counter, value: |s| s.spilled },
    Family { name: "mempool_discarded", help: "Returned values dropped: the spill refused them, or their reset panicked.", kind: MetricType::Counter, value: |s| s.discarded },
    Family { name: "mempool_taken", help: "Guards consumed by take.", kind: MetricType::Counter, value: |s| s.taken },
    Family { name: "mempool_trimmed", help: "Idle values dropped by trim.", kind: MetricType::Counter, value: |s| s.trimmed },
    Family { name: "mempool_rejected", help: "Returned values the retain hook refused, dropped.", kind: MetricType::Counter, value: |s| s.rejected },
    Family { name: "mempool_decayed", help: "Idle values dropped by decay.", kind: MetricType::Counter, value: |s| s.decayed },
    Family { name: "mempool_idle", help: "Idle values held now, in every slot and the spill.", kind: MetricType::Gauge, value: |s| s.idle as u64 },
    Family { name: "mempool_in_use", help: "Values in guards now.", kind: MetricType::Gauge, value: |s| s.in_use },
];

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), fmt::Error> {
        let pools = self.snapshot();
        if pools.is_empty() {
            return Ok(());
        }
        for family in FAMILIES {
            let mut metric =
                encoder.encode_descriptor(family.name, family.help, None, family.kind)?;
            for (name, stats) in &pools {
                let labels = [("pool", &**name)];
                let mut sample = metric.encode_family(&labels)?;
                let value = (family.value)(stats);
                match family.kind {
                    MetricType::Counter => {
                        sample.encode_counter::<NoLabelSet, u64, u64>(&value, None)?
                    }
                    _ => sample.encode_gauge(&value)?,
                }
            }
        }
        Ok(())
    }
}
