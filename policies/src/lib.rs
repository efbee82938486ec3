//! The spill strategies and reset hooks behind the [`mempool`] crate.
//!
//! A `mempool::Pool` keeps its idle values in slots and in its *spill*: a
//! strategy that decides where the other idle values wait and how many are
//! kept. The first thread to use a pool has two slots inside it; with
//! [`PerThread`] (the default), every other thread has two of its own, a
//! *pocket* ([`Spill::pockets`]); with any other strategy, every other
//! thread takes from and gives back to the strategy. This crate defines the
//! [`Spill`] trait, the built-in strategies and the [`Reset`] hook that
//! cleans a value before it is reused.
//!
//! | strategy | keeps | cost of a pop or push | pick it when |
//! |---|---|---|---|
//! | [`PerThread`] | the rest of the values, in a shared overflow, behind a pocket of two values for every thread | a pocket: plain loads and stores on the thread's own cache line | the default: fastest on one thread and on many; memory follows values in use at once |
//! | [`Mutex`] | every value returned | an uncontended lock on a per-thread shard | threads hold many values at once |
//! | [`LockFree`] | every value returned | one lock-free queue operation, shared by all threads | no thread may ever wait on a lock |
//! | [`Bounded`] | at most `n` values | one ring-buffer operation, shared by all threads | memory must have a hard ceiling |
//! | [`None`] | nothing | nothing | only the pool's first thread should reuse values |
//!
//! ```
//! use mempool_policies::{Bounded, Spill};
//!
//! let spill = Bounded::new(3); // a pool's first thread keeps two, this one
//! assert!(spill.push(Box::new(7)).is_ok());
//! assert_eq!(spill.push(Box::new(8)), Err(Box::new(8))); // full: refused
//! assert_eq!(spill.pop(), Some(Box::new(7)));
//! ```
//!
//! [`mempool`]: https://docs.rs/mempool
#![deny(missing_docs)]
// Every unsafe operation in a block of its own, with its `// SAFETY:`
// proof, in unsafe fns too (a crate attribute, not a `[lints]` entry, so
// that the old compiler `.ci/msrv` builds with applies it as well).
#![deny(unsafe_op_in_unsafe_fn)]
#![cfg_attr(docsrs, feature(doc_cfg))]
#![warn(missing_debug_implementations)]

#[cfg(all(loom, not(feature = "loom")))]
compile_error!("the loom models need `--features mempool-policies/loom` beside `--cfg loom`");

/// `const fn` normally, a plain `fn` under `--cfg loom`, whose atomics
/// cannot be made in a constant. Not part of the API.
#[doc(hidden)]
#[macro_export]
macro_rules! const_unless_loom {
    ($(#[$attr:meta])* $vis:vis fn $name:ident $($rest:tt)*) => {
        #[cfg(not(loom))]
        $(#[$attr])*
        $vis const fn $name $($rest)*
        #[cfg(loom)]
        $(#[$attr])*
        $vis fn $name $($rest)*
    };
}

#[doc(hidden)]
pub mod barrier;
mod bounded;
mod lazy_queue;
mod lock_free;
mod mutex;
mod none;
mod per_thread;
#[doc(hidden)]
pub mod pocket;
mod reset;
#[doc(hidden)]
pub mod slot;
mod spill;
#[doc(hidden)]
pub mod sync;
pub mod thread_id;
#[cfg(not(loom))]
mod thread_slots;

pub use crate::bounded::Bounded;
pub use crate::lock_free::LockFree;
pub use crate::mutex::Mutex;
pub use crate::none::None;
pub use crate::per_thread::PerThread;
pub use crate::reset::{NoReset, Reset};
pub use crate::spill::Spill;
