use crate::stats::StatsLayer;
use crate::{DefaultSpill, NoReset, Pool, Reset, Spill};
use mempool_policies::slot::Ticket;
use std::fmt;
use std::mem::ManuallyDrop;
use std::ops::{Deref, DerefMut};
use std::sync::Arc;

/// Where a guard's value lives: in one of the pool's two owner slots, in a
/// slot of a thread's pocket (`PerThread`), or boxed on its own.
pub(crate) enum Held<T> {
    Owner(Ticket<T>),
    Pocket(Ticket<T>),
    Spilled(Box<T>),
}

impl<T> Held<T> {
    #[inline(always)]
    pub(crate) fn get(&self) -> &T {
        match self {
            Held::Owner(ticket) | Held::Pocket(ticket) => ticket.value(),
            Held::Spilled(value) => value,
        }
    }

    #[inline(always)]
    pub(crate) fn get_mut(&mut self) -> &mut T {
        match self {
            Held::Owner(ticket) | Held::Pocket(ticket) => ticket.value_mut(),
            Held::Spilled(value) => value,
        }
    }

    pub(crate) fn into_inner(self) -> T {
        match self {
            Held::Owner(ticket) | Held::Pocket(ticket) => ticket.take(),
            Held::Spilled(value) => *value,
        }
    }
}

/// A value borrowed from a [`Pool`]; dereferences to it, and gives it back to
/// the pool when dropped.
///
/// `Send` when `T` is `Send` and the pool is `Sync`: a guard may be dropped on
/// another thread than the one that got it. Forgetting a guard
/// (`mem::forget`) leaks its value, and if it came from an owner slot or a
/// pocket's slot, that slot stays in use: its thread gets its values
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
    held: ManuallyDrop<Held<T>>,
}

impl<'a, T, C, R, S, M> PoolGuard<'a, T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    #[inline(always)]
    pub(crate) fn new(pool: &'a Pool<T, C, R, S, M>, held: Held<T>) -> Self {
        PoolGuard {
            pool,
            held: ManuallyDrop::new(held),
        }
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
        let mut guard = ManuallyDrop::new(guard);
        // SAFETY: `guard` is never dropped (ManuallyDrop), so its `Drop`,
        // the only other code that takes `held`, never runs; we take it once.
        let held = unsafe { ManuallyDrop::take(&mut guard.held) };
        guard.pool.note_taken();
        held.into_inner()
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
        // SAFETY: `drop` runs once, and `take` (the only other place that
        // takes `held`) forgets the guard, so `held` is still there.
        let held = unsafe { ManuallyDrop::take(&mut self.held) };
        self.pool.give_back(held);
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
    held: ManuallyDrop<Held<T>>,
}

impl<T, C, R, S, M> OwnedPoolGuard<T, C, R, S, M>
where
    C: Fn() -> T,
    R: Reset<T>,
    S: Spill<T>,
    M: StatsLayer,
{
    pub(crate) fn new(pool: Arc<Pool<T, C, R, S, M>>, held: Held<T>) -> Self {
        OwnedPoolGuard {
            pool: ManuallyDrop::new(pool),
            held: ManuallyDrop::new(held),
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
        // that takes these fields) never runs; we take each field once.
        let (pool, held) = unsafe {
            (
                ManuallyDrop::take(&mut guard.pool),
                ManuallyDrop::take(&mut guard.held),
            )
        };
        pool.note_taken();
        held.into_inner()
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
        // SAFETY: `drop` runs once and `take` forgets the guard, so both
        // fields are still there; we take each once.
        let (pool, held) = unsafe {
            (
                ManuallyDrop::take(&mut self.pool),
                ManuallyDrop::take(&mut self.held),
            )
        };
        // The value goes back before the Arc is released: the pool may be
        // dropped right after, and it must find the slot idle.
        pool.give_back(held);
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
                self.held.get()
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
                self.held.get_mut()
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
                let from = match &*self.held {
                    Held::Owner(_) => "owner slot",
                    Held::Pocket(_) => "pocket",
                    Held::Spilled(_) => "spill",
                };
                f.debug_struct(stringify!($guard))
                    .field("value", &**self)
                    .field("from", &from)
                    .finish()
            }
        }
    };
}

guard_common_impls!(PoolGuard, 'a);
guard_common_impls!(OwnedPoolGuard);
