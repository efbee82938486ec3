//! A fast, thread-safe pool for reusing allocations.
//!
//! Make an expensive value once (a buffer, a parser's or regex's scratch
//! space, per-request state) and reuse it on every call, from any number of
//! threads. The first thread to use a pool gets two *slots* inside the pool;
//! with the default strategy every other thread gets two of its own, a
//! *pocket*. A get takes a value from the calling thread's first slot (its
//! second, when it nests) with a thread-local read, three loads and a store
//! (no lock, no read-modify-write atomic, no fence), and its guard gives it
//! back with one store; that much inlines into the caller, and everything
//! else is one call out of line.
//! *Spill strategies* (a lock-free overflow, sharded locks, a queue, a
//! ceiling, nothing) keep the other idle values.
//!
//! ```
//! use mempool::{spill, Pool, PoolGuard};
//! use std::sync::Arc;
//!
//! let pool = Pool::builder().create(Vec::<u8>::new).reset(Vec::clear).build();
//! {
//!     let mut buf = pool.get();              // guard: Deref + DerefMut<Target = Vec<u8>>
//!     buf.extend_from_slice(b"hello");
//! }                                          // reset, then kept for reuse
//! assert!(pool.get().is_empty());
//!
//! let pool = Pool::new(|| String::with_capacity(64));   // shorthand, no reset
//! static POOL: Pool<String> = Pool::new(String::new);   // a const fn: a static as it is
//!
//! let bounded = Pool::builder().create(Vec::<u8>::new).spill(spill::Bounded::new(32)).prefill(8).build();
//! assert_eq!(bounded.idle(), 8);             // at most 32 idle, ever, slots included
//!
//! let shared = Arc::new(Pool::new(Vec::<u8>::new));
//! let g = shared.get_owned();                // 'static guard holding the Arc; Send when T: Send
//! std::thread::spawn(move || drop(g));
//!
//! let v: String = PoolGuard::take(pool.get()); // keep the value; it never returns
//! assert!(pool.put(v).is_ok());              // hand a value in; reset applies; Err if refused
//! let idle: usize = pool.idle();             // values held now, every slot's included
//! let dropped: usize = pool.trim();          // drop every idle value, return how many
//! assert_eq!((idle, dropped, pool.idle()), (1, 1, 0));
//! ```
//!
//! # Spill strategies
//!
//! Chosen with [`PoolBuilder::spill`]; all live in [`spill`]:
//!
//! - [`spill::PerThread`] (the default): every thread has a pocket of two
//!   slots on a cache line of its own, in front of a shared lock-free
//!   overflow; a thread whose slots are empty takes from the overflow, then
//!   from another thread's slots, before creating. Memory follows how many
//!   values are in use at once.
//! - [`spill::Mutex`]: per-thread shards of locks (std's, or `parking_lot`'s
//!   with that feature) around unbounded stacks.
//! - [`spill::LockFree`]: one shared lock-free queue; no thread ever waits.
//! - [`spill::Bounded`]: a hard ceiling of `n` idle values in all, the
//!   first thread's slots included.
//! - [`spill::None`]: keeps nothing; only the first thread's slots reuse.
//!
//! A strategy says whether other threads get pockets
//! ([`Spill::pockets`]): with every strategy but `PerThread`, only the first
//! thread has slots, and the others go to the strategy. That is what a pool
//! mostly used by one thread, or one that needs a hard ceiling, wants.
//!
//! The default is [`spill::PerThread`] because it was the fastest in the
//! crate's benchmarks, on one thread and on many, while keeping memory
//! bounded by the values in use at once; the README's performance section
//! has the numbers.
//!
//! A pool is `Sync` when its values are `Send`: it exists to move values
//! between threads. Its constructors have no bounds ([`Pool::new`] is a
//! `const fn`); [`Pool::get`] asks for what it needs.
//!
//! # Fast paths that other threads can still reach
//!
//! Slots are taken and refilled by their own thread with plain loads and
//! stores. Other threads still take idle values out of them (to reuse a
//! value instead of creating one, in [`Pool::trim`] and [`Pool::decay`],
//! and when the pool is dropped) through an *asymmetric barrier*: the thief
//! announces itself and then forces a memory barrier on every running thread
//! of the process (Linux's `membarrier`, a few hundred nanoseconds), while
//! the slot's own thread needs only a compiler fence. Where `membarrier` is
//! missing (other systems, old kernels, seccomp), both sides use a `SeqCst`
//! fence instead, chosen once per process; set `MEMPOOL_BARRIER=fence` to
//! force that. So `trim` on any thread empties the pool, and when a thread
//! exits, its idle values go to the threads that come after it.
//!
//! # Panics in hooks
//!
//! If `create` panics, the `get` that called it panics and the pool is left
//! as it was. If `reset` (or `retain`) panics, the value being returned is
//! dropped (never handed out half-reset) and the pool stays usable.
//!
//! # Fork
//!
//! Forking a process while another of its threads is inside the pool can
//! hang the child, as with any lock in a threaded process: a lock or a
//! queue slot that thread held at the fork stays held in the child, where
//! the thread does not exist (seen with `spill::Mutex`, `spill::LockFree`
//! and `spill::Bounded`). Forking a quiet process works: the child's pools
//! are usable, and `membarrier`'s registration carries over to it. The
//! child's one thread is the forking thread, with its thread-locals, so it
//! keeps that thread's slots.
//!
//! # Embedding: a pool type of your own
//!
//! A library with a pool of its own (regex-automata's has this shape) can
//! keep its types and wrap this crate: a `Pool<T, F = fn() -> T>` with a
//! `const`, unbounded `new`, a `get`, and a guard with `Deref`, `DerefMut`
//! and an associated `put` that gives the value back before the guard goes
//! out of scope. No `unsafe`, and the guard's auto traits, variance and
//! lifetime follow this crate's.
//!
//! ```
//! mod pool {
//!     use std::fmt;
//!
//!     /// Values made by `F`, reused across threads.
//!     pub struct Pool<T, F = fn() -> T>(mempool::Pool<T, F>);
//!
//!     impl<T, F> Pool<T, F> {
//!         /// No bounds, and `const`: `static`s and generic code need none.
//!         pub const fn new(create: F) -> Pool<T, F> {
//!             Pool(mempool::Pool::new(create))
//!         }
//!     }
//!
//!     impl<T: Send, F: Fn() -> T> Pool<T, F> {
//!         pub fn get(&self) -> PoolGuard<'_, T, F> {
//!             PoolGuard(self.0.get())
//!         }
//!     }
//!
//!     /// A value from the pool; it goes back when the guard is dropped.
//!     pub struct PoolGuard<'a, T: Send, F: Fn() -> T>(mempool::PoolGuard<'a, T, F>);
//!
//!     impl<'a, T: Send, F: Fn() -> T> PoolGuard<'a, T, F> {
//!         /// Gives the value back to the pool now.
//!         pub fn put(this: PoolGuard<'_, T, F>) {
//!             drop(this);
//!         }
//!     }
//!
//!     impl<'a, T: Send, F: Fn() -> T> std::ops::Deref for PoolGuard<'a, T, F> {
//!         type Target = T;
//!         fn deref(&self) -> &T {
//!             &self.0
//!         }
//!     }
//!
//!     impl<'a, T: Send, F: Fn() -> T> std::ops::DerefMut for PoolGuard<'a, T, F> {
//!         fn deref_mut(&mut self) -> &mut T {
//!             &mut self.0
//!         }
//!     }
//!
//!     impl<T: fmt::Debug, F> fmt::Debug for Pool<T, F> {
//!         fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
//!             f.debug_tuple("Pool").finish_non_exhaustive()
//!         }
//!     }
//! }
//!
//! struct Cache(Vec<u32>);
//! static CACHES: pool::Pool<Cache> = pool::Pool::new(|| Cache(Vec::with_capacity(64)));
//!
//! let mut cache = CACHES.get();
//! cache.0.push(1);
//! pool::PoolGuard::put(cache);
//! std::thread::spawn(|| assert!(CACHES.get().0.capacity() >= 64)).join().unwrap();
//! ```
//!
//! What an embedder gains and gives up against regex-automata's pool: an
//! idle value is shared across threads (its thread's slots are reachable by
//! others through the barrier), so a thread reuses an exited or idle
//! thread's value instead of creating one, and memory follows the values in
//! use rather than the threads that ever asked; the first thread's value
//! may therefore move to another thread, which regex-automata's owner value
//! never does. `trim`, `decay` and stats come for free. The pool's `Debug`
//! shows its slots' states and its strategy, not the values.
//!
//! # Features
//!
//! All off by default.
//!
//! - `serde`: [`Stats`] is `Serialize` and `Deserialize`.
//! - `prometheus`: the `prometheus` module, whose `PoolCollector` exports
//!   pools' stats to a `prometheus-client` registry, read at scrape time.
//! - `parking_lot`: [`spill::Mutex`] locks `parking_lot`'s mutex instead of
//!   std's.
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
