use crate::slots::Lent;
use crate::stats::StatsLayer;
use crate::{DefaultSpill, NoReset, Pool, Reset, Spill};
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// A value borrowed from a [`Pool`]; dereferences to it, and gives it back to
/// the pool when dropped.
///
/// Three words: the pool, the value's box and the slot it returns to. `Send` when `T` is `Send` and
/// the pool is `Sync`: a guard may be dropped on another thread than the one
/// that got it. Forgetting a guard (`mem::forget`) leaks its value, and if
/// it came from a slot, that slot stays in use: its thread gets its values
/// elsewhere from then on.
///
/// ```
/// let pool = mempool::Pool::new(Vec::<u8>::new);
/// let mut guard = pool.get();
/// guard.push(1);
/// assert_eq!(&*guard, &[1]);
/// ```
pub struct PoolGuard<'a, T, C = fn() -> T, R = NoReset, S = DefaultSpill<T>, M = crate::NoStats>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    pool: &'a Pool<T, C, R, S, M>,
    /// Held by this guard alone: lent by its home slot, or owned outright.
    lent: Lent<T>,
}

// SAFETY: a guard is exclusive use of one `T` (its value, which no other
// thread touches while the guard holds it) plus a shared borrow of the pool.
// Moving it to another thread moves that use, as moving a `Box<T>` would
// (`T: Send`), and uses the pool from there (`Pool: Sync`); its `Drop` does
// nothing else.
unsafe impl<T: Send, C, R, S, M> Send for PoolGuard<'_, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: Sync,
{
}

// SAFETY: through `&PoolGuard` only `&T` and `&Pool` can be had: sound when
// both may be shared.
unsafe impl<T: Sync, C, R, S, M> Sync for PoolGuard<'_, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: Sync,
{
}

// A guard unwinds like the `Box<T>` it stands for: a panic while it is held
// leaves its value to the guard's drop, which resets it or drops it.
impl<T: std::panic::UnwindSafe, C, R, S, M> std::panic::UnwindSafe for PoolGuard<'_, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: std::panic::RefUnwindSafe,
{
}

impl<'a, T, C, R, S, M> PoolGuard<'a, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    #[inline(always)]
    pub(crate) fn new(pool: &'a Pool<T, C, R, S, M>, lent: Lent<T>) -> Self {
        PoolGuard { pool, lent }
    }

    /// Keeps the value: it leaves the pool for good and is not reset. (An
    /// associated function, so that it cannot shadow a method of `T`.)
    ///
    /// ```
    /// use mempool::{Pool, PoolGuard};
    ///
    /// let pool = Pool::new(|| vec![1u8]);
    /// let v: Vec<u8> = PoolGuard::take(pool.get());
    /// assert_eq!(v, [1]);
    /// assert_eq!(pool.idle(), 0);
    /// ```
    pub fn take(guard: Self) -> T {
        let guard = ManuallyDrop::new(guard);
        // `guard` is never dropped, so its value is given up once, here.
        guard.pool.take_out(guard.lent)
    }

    /// The pool this guard's value goes back to.
    ///
    /// ```
    /// let pool = mempool::Pool::new(String::new);
    /// let guard = pool.get();
    /// assert!(std::ptr::eq(mempool::PoolGuard::pool(&guard), &pool));
    /// ```
    pub fn pool(guard: &Self) -> &'a Pool<T, C, R, S, M> {
        guard.pool
    }
}

impl<T, C, R, S, M> Drop for PoolGuard<'_, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    #[inline]
    fn drop(&mut self) {
        // `drop` runs once, and `take` (the only other place that gives the
        // value up) forgets the guard.
        self.pool.give_back(self.lent);
    }
}

/// A value borrowed from a [`Pool`] behind an [`Arc`]; like [`PoolGuard`] but
/// `'static`. Made by [`Pool::get_owned`].
///
/// ```
/// use std::sync::Arc;
///
/// let pool = Arc::new(mempool::Pool::new(String::new));
/// let guard = pool.get_owned();
/// std::thread::spawn(move || drop(guard)).join().unwrap();
/// assert_eq!(pool.idle(), 1);
/// ```
pub struct OwnedPoolGuard<T, C = fn() -> T, R = NoReset, S = DefaultSpill<T>, M = crate::NoStats>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    // The pool's five type parameters make this type long, not complex.
    #[allow(clippy::type_complexity)]
    pool: ManuallyDrop<Arc<Pool<T, C, R, S, M>>>,
    /// As in `PoolGuard`.
    lent: Lent<T>,
}

// SAFETY: as for `PoolGuard`, with the pool shared through an `Arc`, which
// is `Send` and `Sync` when the pool is both.
unsafe impl<T: Send, C, R, S, M> Send for OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: Send + Sync,
{
}

// SAFETY: as for `PoolGuard`.
unsafe impl<T: Sync, C, R, S, M> Sync for OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: Send + Sync,
{
}

// As for `PoolGuard`.
impl<T: std::panic::UnwindSafe, C, R, S, M> std::panic::UnwindSafe for OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
    Pool<T, C, R, S, M>: std::panic::RefUnwindSafe,
{
}

impl<T, C, R, S, M> OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    pub(crate) fn new(pool: Arc<Pool<T, C, R, S, M>>, lent: Lent<T>) -> Self {
        OwnedPoolGuard {
            pool: ManuallyDrop::new(pool),
            lent,
        }
    }

    /// Keeps the value: it leaves the pool for good and is not reset.
    ///
    /// ```
    /// use std::sync::Arc;
    /// use mempool::{OwnedPoolGuard, Pool};
    ///
    /// let pool = Arc::new(Pool::new(|| 5u32));
    /// assert_eq!(OwnedPoolGuard::take(pool.get_owned()), 5);
    /// ```
    pub fn take(guard: Self) -> T {
        let mut guard = ManuallyDrop::new(guard);
        // SAFETY: `guard` is never dropped, so its `Drop` (the only other code
        // that takes the pool) never runs; we take it once.
        let pool = unsafe { ManuallyDrop::take(&mut guard.pool) };
        pool.take_out(guard.lent)
    }

    /// The pool this guard's value goes back to.
    ///
    /// ```
    /// use std::sync::Arc;
    ///
    /// let pool = Arc::new(mempool::Pool::new(String::new));
    /// let guard = pool.get_owned();
    /// assert!(Arc::ptr_eq(mempool::OwnedPoolGuard::pool(&guard), &pool));
    /// ```
    pub fn pool(guard: &Self) -> &Arc<Pool<T, C, R, S, M>> {
        &guard.pool
    }
}

impl<T, C, R, S, M> Drop for OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    fn drop(&mut self) {
        // SAFETY: `drop` runs once and `take` forgets the guard, so the pool
        // is still there; we take it once.
        let pool = unsafe { ManuallyDrop::take(&mut self.pool) };
        // The value goes back before the Arc is released: the pool may be
        // dropped right after, and it must find the slot idle.
        pool.give_back(self.lent);
        drop(pool);
    }
}

macro_rules! guard_common_impls {
    ($guard:ident $(, $lt:lifetime)?) => {
        impl<$($lt,)? T, C, R, S, M> Deref for $guard<$($lt,)? T, C, R, S, M>
        where
            C: Fn() -> T,
            R: Reset<T>,
            S: Spill<T>,
            M: StatsLayer,
        {
            type Target = T;

            #[inline(always)]
            fn deref(&self) -> &T {
                // SAFETY: the guard holds its value alone (see the field), for
                // as long as the borrow of the guard.
                unsafe { self.lent.value.as_ref() }
            }
        }

        impl<$($lt,)? T, C, R, S, M> DerefMut for $guard<$($lt,)? T, C, R, S, M>
        where
            C: Fn() -> T,
            R: Reset<T>,
            S: Spill<T>,
            M: StatsLayer,
        {
            #[inline(always)]
            fn deref_mut(&mut self) -> &mut T {
                // SAFETY: as in `deref`, borrowed mutably.
                unsafe { self.lent.value.as_mut() }
            }
        }

        impl<$($lt,)? T: fmt::Debug, C, R, S, M> fmt::Debug for $guard<$($lt,)? T, C, R, S, M>
        where
            C: Fn() -> T,
            R: Reset<T>,
            S: Spill<T>,
            M: StatsLayer,
        {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_struct(stringify!($guard))
                    .field("value", &**self)
                    .field("from", &self.pool.origin(self.lent))
                    .finish()
            }
        }
    };
}

guard_common_impls!(PoolGuard, 'a);
guard_common_impls!(OwnedPoolGuard);
