//! The pool builder.
//!
//! Written by hand rather than with `typed-builder`: each setter here changes
//! a type parameter of the pool (`create` fixes the hook type, `spill` swaps
//! the strategy type, `stats` swaps the stats layer), and `typed-builder`'s
//! setters only fill fields of fixed types. The one thing it would give us,
//! "`build` only once `create` is set", is the `NoCreate` typestate below.

use crate::stats::{NoStats, StatsCounters, StatsLayer};
use crate::{DefaultSpill, NoReset, Pool, Reset, Spill};
use std::fmt;
use std::marker::PhantomData;

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
/// `create` is required; `reset`, `spill`, `stats` and `prefill` are optional.
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
pub struct PoolBuilder<T, C = NoCreate, R = NoReset, S = DefaultSpill<T>, M = NoStats> {
    create: C,
    reset: R,
    spill: S,
    stats: M,
    prefill: usize,
    value: PhantomData<fn() -> T>,
}

impl<T: Send> Pool<T> {
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
            prefill: 0,
            value: PhantomData,
        }
    }
}

impl<T, C, R, S, M> PoolBuilder<T, C, R, S, M> {
    /// The hook that makes a new value when the pool has none to reuse.
    ///
    /// ```
    /// let pool = mempool::Pool::builder().create(|| 41 + 1).build();
    /// assert_eq!(*pool.get(), 42);
    /// ```
    pub fn create<F: Fn() -> T>(self, create: F) -> PoolBuilder<T, F, R, S, M> {
        PoolBuilder {
            create,
            reset: self.reset,
            spill: self.spill,
            stats: self.stats,
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
    pub fn reset<F: Reset<T>>(self, reset: F) -> PoolBuilder<T, C, F, S, M> {
        PoolBuilder {
            create: self.create,
            reset,
            spill: self.spill,
            stats: self.stats,
            prefill: self.prefill,
            value: PhantomData,
        }
    }

    /// The strategy that keeps values beyond the owner slot: one of
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
    pub fn spill<P: Spill<T>>(self, spill: P) -> PoolBuilder<T, C, R, P, M> {
        PoolBuilder {
            create: self.create,
            reset: self.reset,
            spill,
            stats: self.stats,
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
    pub fn stats(self) -> PoolBuilder<T, C, R, S, StatsCounters> {
        PoolBuilder {
            create: self.create,
            reset: self.reset,
            spill: self.spill,
            stats: StatsCounters::default(),
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

impl<T, C, R, S, M> PoolBuilder<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
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
    pub fn build(self) -> Pool<T, C, R, S, M> {
        let pool = Pool::from_parts(self.create, self.reset, self.spill, self.stats);
        pool.prefill(self.prefill);
        pool
    }
}

impl<T, C, R, S: fmt::Debug, M: fmt::Debug> fmt::Debug for PoolBuilder<T, C, R, S, M> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PoolBuilder")
            .field("spill", &self.spill)
            .field("stats", &self.stats)
            .field("prefill", &self.prefill)
            .finish_non_exhaustive()
    }
}
