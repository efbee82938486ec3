//! A fast, thread-safe pool for reusing allocations.
//!
//! Make an expensive value once (a buffer, a parser's or regex's scratch
//! space, per-request state) and reuse it on every call. The first thread to
//! use a pool becomes its *owner* and gets its values from two slots inside
//! the pool, which take no lock and no read-modify-write atomic: a
//! thread-local read, three atomic loads and one store to get, one store to
//! return. With the default strategy every other thread gets the same kind
//! of path from a pocket of its own (two such slots, found through a
//! per-thread cache). Other *spill strategies* (a lock, a lock-free queue, a
//! ring with a ceiling, nothing) decide how the rest of the idle values are
//! kept and how many; with them, every get but the owner's goes to the
//! strategy.
//!
//! ```
//! use mempool::{spill, Pool, PoolGuard};
//! use std::sync::{Arc, LazyLock};
//!
//! let pool = Pool::builder().create(Vec::<u8>::new).reset(Vec::clear).build();
//! {
//!     let mut buf = pool.get();              // guard: Deref + DerefMut<Target = Vec<u8>>
//!     buf.extend_from_slice(b"hello");
//! }                                          // reset, then kept for reuse
//! assert!(pool.get().is_empty());
//!
//! let pool = Pool::new(|| String::with_capacity(64));          // shorthand, no reset
//! static POOL: LazyLock<Pool<String>> = LazyLock::new(|| Pool::new(String::new)); // nameable with defaults
//!
//! let bounded = Pool::builder().create(Vec::<u8>::new).spill(spill::Bounded::new(32)).prefill(8).build();
//! assert_eq!(bounded.idle(), 8);
//!
//! let shared = Arc::new(Pool::new(Vec::<u8>::new));
//! let g = shared.get_owned();                // 'static guard holding the Arc; Send when T: Send
//! std::thread::spawn(move || drop(g));
//!
//! let v: String = PoolGuard::take(pool.get()); // keep the value; it never returns
//! pool.put(v);                               // hand a value in; reset applies
//! let idle: usize = pool.idle();             // values held now, pockets included
//! let dropped: usize = pool.trim();          // drop every idle value, return how many
//! assert_eq!((idle, dropped, pool.idle()), (1, 1, 0));
//! ```
//!
//! # Spill strategies
//!
//! Chosen with [`PoolBuilder::spill`]; all live in [`spill`]:
//!
//! - [`spill::PerThread`] (the default): each thread keeps up to two idle
//!   values in a pocket on its own cache line, and more in a shared
//!   lock-free overflow; a thread whose pocket is empty takes from the
//!   overflow, then from another thread's pocket, before creating. A get
//!   from the own pocket is plain loads and stores (no read-modify-write, no
//!   fence), and its guard returns the value there with one store, from any
//!   thread; memory follows how many values are in use at once. Every
//!   thread has a path like the owner's.
//! - [`spill::Mutex`]: per-thread shards of `parking_lot` locks around
//!   unbounded stacks.
//! - [`spill::LockFree`]: one shared lock-free queue; no thread ever waits.
//! - [`spill::Bounded`]: a lock-free ring that keeps at most `n` values.
//! - [`spill::None`]: keeps nothing; only the owner slot reuses.
//!
//! With every strategy but `PerThread`, only the owner (the first thread to
//! get) has a fast path; the others go to the strategy. That is what a pool
//! mostly used by one thread, or one that needs a hard ceiling (`Bounded`:
//! at most `n` idle values and the owner slots' two), wants.
//!
//! The default is [`spill::PerThread`] because it was the fastest in the
//! crate's contention benchmarks (2, 4 and 8 threads on one pool, and a thread
//! nesting gets) while keeping memory bounded by the values in use at once;
//! the README's performance section has the numbers.
//!
//! Values must be `Send` ([`Pool::new`] and [`Pool::builder`] ask for it):
//! a pool exists to move values between threads. For values that are not,
//! one thread's `Vec` of spares does the job.
//!
//! # Fast paths that other threads can still reach
//!
//! The owner slots and the default strategy's pockets are taken and refilled
//! by their own thread with plain loads and stores. Other threads still take
//! idle values out of them (to reuse a value instead of creating one, in
//! [`Pool::trim`], and when the pool is dropped) through an *asymmetric
//! barrier*: the thief announces itself and then forces a memory barrier on
//! every running thread of the process (Linux's `membarrier`, a few hundred
//! nanoseconds), while the slot's own thread needs only a compiler fence.
//! Where `membarrier` is missing (other systems, old kernels, seccomp), both
//! sides use a `SeqCst` fence instead, chosen once per process; set
//! `MEMPOOL_BARRIER=fence` to force that. So `trim` on any thread empties
//! the pool, and when a thread exits, its idle values go to the threads
//! that come after it.
//!
//! # Panics in hooks
//!
//! If `create` panics, the `get` that called it panics and the pool is left
//! as it was. If `reset` panics, the value being returned is dropped (never
//! handed out half-reset) and the pool stays usable.
//!
//! # Features
//!
//! Both off by default.
//!
//! - `serde`: [`Stats`] is `Serialize` and `Deserialize`.
//! - `prometheus`: the `prometheus` module, whose `PoolCollector` exports
//!   pools' stats to a `prometheus-client` registry, read at scrape time.
#![deny(missing_docs)]
// Every unsafe operation in a block of its own, with its `// SAFETY:`
// proof, in unsafe fns too (a crate attribute, not a `[lints]` entry, so
// that the old compiler `.ci/msrv` builds with applies it as well).
#![deny(unsafe_op_in_unsafe_fn)]
#![warn(missing_debug_implementations)]
// docs.rs builds with `--cfg docsrs` on nightly, where `doc_cfg` marks the
// items that need a feature.
#![cfg_attr(docsrs, feature(doc_cfg))]

mod boxed;
mod builder;
mod guard;
mod pool;
#[cfg(feature = "prometheus")]
#[cfg_attr(docsrs, doc(cfg(feature = "prometheus")))]
pub mod prometheus;
mod retain;
mod slots;
mod stats;

pub use crate::boxed::{BoxedCreate, BoxedPool, BoxedReset};
pub use crate::builder::{NoCreate, PoolBuilder};
pub use crate::guard::{OwnedPoolGuard, PoolGuard};
pub use crate::pool::Pool;
pub use crate::retain::{RetainAll, RetainHook, Retaining};
pub use crate::stats::{NoStats, Stats, StatsCounters, StatsLayer};
pub use mempool_policies::{NoReset, Reset, Spill};

/// The spill strategies: where a pool keeps its idle values.
/// See [`mempool_policies`] for the trait contract and a comparison.
pub mod spill {
    pub use mempool_policies::{Bounded, LockFree, Mutex, None, PerThread, Spill};
}

/// The spill strategy of [`Pool::new`] and [`Pool::builder`]: see the crate
/// docs for why it is [`spill::PerThread`].
///
/// ```
/// let pool: mempool::Pool<String> = mempool::Pool::new(String::new);
/// let _: &mempool::DefaultSpill<String> = pool.spill();
/// ```
pub type DefaultSpill<T> = spill::PerThread<T>;

/// The README's Rust blocks run as doc tests, so the README stays true. Its
/// Prometheus example needs that feature; CI runs them with all features.
#[cfg(all(doctest, feature = "prometheus"))]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;
