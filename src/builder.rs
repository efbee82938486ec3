//! The pool builder.
//!
//! Written by hand rather than with `typed-builder`: each setter here changes
//! a type parameter of the pool (`create` fixes the hook type, `spill` swaps
//! the strategy type, `stats` swaps the stats layer), and `typed-builder`'s
//! setters only fill fields of fixed types. The one thing it would give us,
//! "`build` only once `create` is set", is the `NoCreate` typestate below.

use crate::boxed::{BoxedCreate, BoxedPool, BoxedReset};
use crate::retain::{RetainAll, RetainHook};
use crate::stats::{NoStats, StatsCounters, StatsLayer};
use crate::{DefaultSpill, NoReset, Pool, Reset, Spill};
use std::fmt;
use std::marker::PhantomData;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// Stands for the `create` hook before [`PoolBuilder::create`] is called.
/// `build` needs a real hook, so a builder still holding this one does not
/// compile:
///
/// ```compile_fail
/// let pool = mempool::Pool::<Vec<u8>>::builder().build(); // no `create`
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct NoCreate;

/// Builds a [`Pool`]; made by [`Pool::builder`].
///
/// `create` is required; `reset`, `retain`, `spill`, `stats` and `prefill` are
/// optional.
///
/// ```
/// use mempool::{spill, Pool};
///
/// let pool = Pool::builder()
///     .create(|| Vec::<u8>::with_capacity(1024))
///     .reset(Vec::clear)
///     .spill(spill::Bounded::new(16))
///     .prefill(4)
///     .stats()
///     .build();
/// assert_eq!(pool.idle(), 4);
/// ```
#[must_use = "a builder does nothing until `build` is called"]
pub struct PoolBuilder<
    T,
    C = NoCreate,
    R = NoReset,
    S = DefaultSpill<T>,
    M = NoStats,
    K = RetainAll,
> {
    create: C,
    reset: R,
    spill: S,
    stats: M,
    retain: K,
    prefill: usize,
    value: PhantomData<fn() -> T>,
}

impl<T> Pool<T> {
    /// A builder for a pool of `T`; `T` is fixed by the `create` hook, so it
    /// rarely needs to be written.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(String::new).build();
    /// assert!(pool.get().is_empty());
    /// ```
    pub fn builder() -> PoolBuilder<T> {
        PoolBuilder {
            create: NoCreate,
            reset: NoReset,
            spill: DefaultSpill::default(),
            stats: NoStats,
            retain: RetainAll,
            prefill: 0,
            value: PhantomData,
        }
    }
}

impl<T, C, R, S, M, K> PoolBuilder<T, C, R, S, M, K> {
    /// The hook that makes a new value when the pool has none to reuse.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(|| 41 + 1).build();
    /// assert_eq!(*pool.get(), 42);
    /// ```
    pub fn create<F: Fn() -> T>(self, create: F) -> PoolBuilder<T, F, R, S, M, K> {
        PoolBuilder {
            create,
            reset: self.reset,
            spill: self.spill,
            stats: self.stats,
            retain: self.retain,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// The hook that cleans a returned value before it is reused; any
    /// `Fn(&mut T)`, such as `Vec::clear`. Without one, values come back as
    /// they were returned.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(String::new).reset(String::clear).build();
    /// pool.get().push('x');
    /// assert!(pool.get().is_empty());
    /// ```
    pub fn reset<F: Reset<T>>(self, reset: F) -> PoolBuilder<T, C, F, S, M, K> {
        PoolBuilder {
            create: self.create,
            reset,
            spill: self.spill,
            stats: self.stats,
            retain: self.retain,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// The strategy that keeps values beyond the threads' slots: one of
    /// [`crate::spill`]'s, or your own [`Spill`].
    ///
    /// ```
    /// let pool = mempool::Pool::builder()
    ///     .create(String::new)
    ///     .spill(mempool::spill::LockFree::default())
    ///     .build();
    /// drop((pool.get(), pool.get()));
    /// assert_eq!(pool.idle(), 2);
    /// ```
    pub fn spill<P: Spill<T>>(self, spill: P) -> PoolBuilder<T, C, R, P, M, K> {
        PoolBuilder {
            create: self.create,
            reset: self.reset,
            spill,
            stats: self.stats,
            retain: self.retain,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// Turns on the stats layer, read with [`Pool::stats`].
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(String::new).stats().build();
    /// drop(pool.get());
    /// assert_eq!(pool.stats().unwrap().gets, 1);
    /// ```
    pub fn stats(self) -> PoolBuilder<T, C, R, S, StatsCounters, K> {
        PoolBuilder {
            create: self.create,
            reset: self.reset,
            spill: self.spill,
            stats: StatsCounters::default(),
            retain: self.retain,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// A check run on every returned value after `reset`: a value for which
    /// it returns `false` is dropped instead of kept (counted in the stats as
    /// `rejected`), whether it came from a slot, the spill or `put`.
    /// For a buffer that grew too large, say. Without one, every value is
    /// kept, at no cost. May be called before or after `reset`.
    ///
    /// If it panics, the value is dropped, as when `reset` panics.
    ///
    /// ```
    /// let pool = mempool::Pool::builder()
    ///     .create(Vec::<u8>::new)
    ///     .reset(Vec::clear)
    ///     .retain(|v: &Vec<u8>| v.capacity() <= 1 << 20)
    ///     .build();
    /// pool.get().reserve(2 << 20); // grows past the limit
    /// assert_eq!(pool.idle(), 0); // dropped on return
    /// pool.get().reserve(1024);
    /// assert_eq!(pool.idle(), 1); // kept
    /// ```
    pub fn retain<F: Fn(&T) -> bool>(self, retain: F) -> PoolBuilder<T, C, R, S, M, F> {
        PoolBuilder {
            create: self.create,
            reset: self.reset,
            spill: self.spill,
            stats: self.stats,
            retain,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// Makes `n` values when the pool is built and offers them to the spill
    /// (see [`Pool::prefill`]).
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(String::new).prefill(2).build();
    /// assert_eq!(pool.idle(), 2);
    /// ```
    pub fn prefill(mut self, n: usize) -> Self {
        self.prefill = n;
        self
    }
}

impl<T, C, R, S, M, K> PoolBuilder<T, C, R, S, M, K>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    K: RetainHook<T, R>,
{
    /// The pool.
    ///
    /// # Panics
    ///
    /// If `create` panics while prefilling.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(|| 0u8).build();
    /// assert_eq!(*pool.get(), 0);
    /// ```
    pub fn build(self) -> Pool<T, C, K::With, S, M> {
        let reset = self.retain.with(self.reset);
        let pool = Pool::from_parts(self.create, reset, self.spill, self.stats);
        pool.prefill(self.prefill);
        pool
    }
}

impl<T, C, R, S, M, K> PoolBuilder<T, C, R, S, M, K>
where
    C: Fn() -> T + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    K: RetainHook<T, R>,
    K::With: Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    /// The pool, with its hooks boxed, so that its type can be written down
    /// (a struct field, a `static`) whatever closures it was built from:
    /// [`BoxedPool<T>`], or `BoxedPool<T, S, M>` with
    /// another strategy or stats on. The price is a call through a pointer
    /// for `reset` (and `retain`) on every return, and for `create` on a miss.
    /// The hooks must be `UnwindSafe` and `RefUnwindSafe` (closures over
    /// plain data are), so that the pool is too.
    ///
    /// # Panics
    ///
    /// If `create` panics while prefilling.
    ///
    /// ```
    /// use mempool::{BoxedPool, Pool};
    ///
    /// struct Parser {
    ///     scratch: BoxedPool<Vec<u8>>,
    /// }
    ///
    /// let limit = 1 << 20;
    /// let parser = Parser {
    ///     scratch: Pool::builder()
    ///         .create(move || Vec::with_capacity(4096))
    ///         .reset(Vec::clear)
    ///         .retain(move |v: &Vec<u8>| v.capacity() <= limit)
    ///         .build_boxed(),
    /// };
    /// parser.scratch.get().push(1);
    /// assert!(parser.scratch.get().is_empty());
    /// ```
    pub fn build_boxed(self) -> BoxedPool<T, S, M> {
        let reset = self.retain.with(self.reset);
        let pool = Pool::from_parts(
            Box::new(self.create) as BoxedCreate<T>,
            BoxedReset::new(reset),
            self.spill,
            self.stats,
        );
        pool.prefill(self.prefill);
        pool
    }
}

impl<T, C, R, S: fmt::Debug, M: fmt::Debug, K> fmt::Debug for PoolBuilder<T, C, R, S, M, K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("spill", &self.spill)
            .field("stats", &self.stats)
            .field("prefill", &self.prefill)
            .finish_non_exhaustive()
    }
}
