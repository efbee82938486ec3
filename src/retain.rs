//! The `retain` hook: a check, after `reset`, of whether a returned value is
//! worth keeping.
//!
//! It rides on the reset hook's type rather than adding a type parameter to
//! [`Pool`](crate::Pool): a pool built with `retain` has [`Retaining`] as its
//! `R`, which resets with the inner hook and answers [`Reset::retain`] with
//! the predicate; a pool built without it keeps its plain reset type, whose
//! provided `retain` always says yes and compiles away. The builder combines
//! the two at `build`, so `reset` and `retain` may be called in either order.

use crate::Reset;
use std::fmt;

/// The builder's `retain` before one is set: keep every value.
///
/// ```
/// let builder = mempool::Pool::builder().create(String::new);
/// let _: &mempool::PoolBuilder<String, _, _, _, _, mempool::RetainAll> = &builder;
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RetainAll;

/// A reset hook `R` with a predicate `F` that decides, after the reset,
/// whether the pool keeps a returned value. Made by the builder's
/// [`retain`](crate::PoolBuilder::retain).
///
/// ```
/// use mempool::{Pool, Retaining};
///
/// let pool: Pool<Vec<u8>, _, Retaining<_, _>> = Pool::builder()
///     .create(Vec::<u8>::new)
///     .reset(Vec::clear)
///     .retain(|v: &Vec<u8>| v.capacity() <= 1024)
///     .build();
/// # drop(pool);
/// ```
#[derive(Clone, Copy)]
pub struct Retaining<R, F> {
    reset: R,
    retain: F,
}

impl<T, R: Reset<T>, F: Fn(&T) -> bool> Reset<T> for Retaining<R, F> {
    #[inline]
    fn reset(&self, value: &mut T) {
        self.reset.reset(value);
    }

    #[inline]
    fn retain(&self, value: &T) -> bool {
        (self.retain)(value)
    }
}

impl<R: fmt::Debug, F> fmt::Debug for Retaining<R, F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Retaining")
            .field("reset", &self.reset)
            .finish_non_exhaustive()
    }
}

/// What the builder holds for `retain`: [`RetainAll`] until it is set, then
/// the predicate. `build` folds it into the reset hook `R`'s type.
///
/// ```
/// use mempool::{NoReset, RetainAll, RetainHook};
///
/// // Without a predicate, the reset hook stays as it is.
/// let _: NoReset = <RetainAll as RetainHook<String, NoReset>>::with(RetainAll, NoReset);
/// ```
pub trait RetainHook<T, R: Reset<T>> {
    /// The reset hook a pool gets when this is combined with `R`.
    type With: Reset<T>;

    /// Combines with the reset hook `reset`.
    fn with(self, reset: R) -> Self::With;
}

impl<T, R: Reset<T>> RetainHook<T, R> for RetainAll {
    type With = R;

    fn with(self, reset: R) -> R {
        reset
    }
}

impl<T, R: Reset<T>, F: Fn(&T) -> bool> RetainHook<T, R> for F {
    type With = Retaining<R, F>;

    fn with(self, reset: R) -> Retaining<R, F> {
        Retaining {
            reset,
            retain: self,
        }
    }
}
