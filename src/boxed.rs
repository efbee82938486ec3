//! A pool type that can be written down whatever closures built it: the
//! hooks boxed behind trait objects. Made by the builder's `build_boxed`.

use crate::{DefaultSpill, NoStats, Pool, Reset};
use std::fmt;
use std::panic::{RefUnwindSafe, UnwindSafe};

/// The boxed `create` hook of a [`BoxedPool`]. `UnwindSafe` and
/// `RefUnwindSafe` as well as `Send` and `Sync`, so that a boxed pool can sit
/// in a type that must be (as regex-automata's pool's boxed hook is).
///
/// ```
/// let create: mempool::BoxedCreate<String> = Box::new(|| String::with_capacity(8));
/// assert!(create().capacity() >= 8);
/// ```
pub type BoxedCreate<T> = Box<dyn Fn() -> T + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// A pool whose hooks are boxed, so that its type is short to write whatever
/// closures made it: built with [`PoolBuilder::build_boxed`](crate::PoolBuilder::build_boxed). `S` and `M`
/// default to the default strategy and no stats.
///
/// ```
/// use mempool::{spill, BoxedPool, Pool, StatsCounters};
///
/// struct Server {
///     buffers: BoxedPool<Vec<u8>>,
///     names: BoxedPool<String, spill::Mutex<String>, StatsCounters>,
/// }
///
/// let server = Server {
///     buffers: Pool::builder().create(|| Vec::with_capacity(4096)).build_boxed(),
///     names: Pool::builder()
///         .create(String::new)
///         .reset(String::clear)
///         .spill(spill::Mutex::default())
///         .stats()
///         .build_boxed(),
/// };
/// drop(server.names.get());
/// assert_eq!(server.names.stats().unwrap().gets, 1);
/// assert!(server.buffers.get().capacity() >= 4096);
/// ```
pub type BoxedPool<T, S = DefaultSpill<T>, M = NoStats> =
    Pool<T, BoxedCreate<T>, BoxedReset<T>, S, M>;

/// A boxed reset hook (with its `retain`, if one was set): the `R` of a
/// [`BoxedPool`]. Forwards both methods through one pointer.
///
/// ```
/// use mempool::{BoxedReset, Reset};
///
/// let reset = BoxedReset::new(Vec::<u8>::clear);
/// let mut v = vec![1];
/// reset.reset(&mut v);
/// assert!(v.is_empty() && reset.retain(&v));
/// ```
pub struct BoxedReset<T>(Box<dyn Reset<T> + Send + Sync + UnwindSafe + RefUnwindSafe>);

impl<T> BoxedReset<T> {
    /// Boxes `reset`.
    ///
    /// ```
    /// let _ = mempool::BoxedReset::new(String::clear);
    /// ```
    pub fn new(reset: impl Reset<T> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static) -> Self {
        BoxedReset(Box::new(reset))
    }
}

impl<T> Reset<T> for BoxedReset<T> {
    #[inline]
    fn reset(&self, value: &mut T) {
        self.0.reset(value);
    }

    #[inline]
    fn retain(&self, value: &T) -> bool {
        self.0.retain(value)
    }

    #[inline]
    fn recycle(&self, value: &mut T) -> bool {
        self.0.recycle(value)
    }
}

impl<T> fmt::Debug for BoxedReset<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BoxedReset").finish_non_exhaustive()
    }
}
