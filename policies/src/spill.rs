/// Where a pool keeps the idle values that are not in its slots.
///
/// A pool calls [`pop`](Spill::pop) when a thread needs a value and its slots
/// cannot serve it, and [`push`](Spill::push) when a value comes back
/// (already reset) that no slot of the returning thread will take. Values
/// travel boxed, so moving one in or out of a spill is a
/// pointer copy whatever the size of `T`.
///
/// The pool's first thread always has two slots inside the pool. Whether
/// every other thread has two slots of its own too, a *pocket*, is the
/// strategy's choice: [`pockets`](Spill::pockets).
///
/// # Contract
///
/// An implementation must be safe to call from many threads at once (a pool
/// is `Sync` only when its spill is), and:
///
/// - a value given to `push` and accepted (`Ok`) is owned by the spill until a
///   `pop` or [`trim`](Spill::trim) hands it out or drops it, or the spill is
///   dropped. A value is never handed out twice.
/// - `push` returns `Err(value)` to refuse a value; the pool then drops it. The
///   refused value may be a different idle value than the one offered (a spill
///   may keep the newer one), but it must be one the spill no longer holds.
/// - [`len`](Spill::len), [`drain`](Spill::drain) and `trim` may be
///   approximate while other threads push and pop, but must be exact when no
///   other thread is using the spill.
/// - `drain` and `trim` must end whatever the values' `Drop` does: a value's
///   `Drop` may use the same pool (get a value and return it), so they take
///   out what is there first and drop it outside the spill, never "pop until
///   empty". The provided versions do that.
/// - Dropping the spill drops every value it holds even if one value's `Drop`
///   panics (then the panic goes on once the rest are dropped), as `Vec` does.
///
/// None of these rules are needed for memory safety: a spill written wrong can
/// make a pool slow or wasteful, never unsound, because the pool never relies
/// on a spill for exclusive access.
///
/// # Example
///
/// A spill that keeps at most one value, behind a lock:
///
/// ```
/// use mempool_policies::{Spill};
/// use std::sync::Mutex;
///
/// #[derive(Debug, Default)]
/// struct One<T>(Mutex<Option<Box<T>>>);
///
/// impl<T> Spill<T> for One<T> {
///     fn pop(&self) -> Option<Box<T>> {
///         self.0.lock().unwrap().take()
///     }
///     fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
///         let mut slot = self.0.lock().unwrap();
///         if slot.is_some() {
///             return Err(value);
///         }
///         *slot = Some(value);
///         Ok(())
///     }
///     fn len(&self) -> usize {
///         usize::from(self.0.lock().unwrap().is_some())
///     }
///     fn trim(&self) -> usize {
///         usize::from(self.0.lock().unwrap().take().is_some())
///     }
/// }
///
/// let spill = One::default();
/// assert!(spill.push(Box::new(1)).is_ok());
/// assert!(spill.push(Box::new(2)).is_err());
/// assert_eq!(spill.trim(), 1);
/// assert_eq!(spill.len(), 0);
/// ```
pub trait Spill<T> {
    /// Takes an idle value out of the spill, if it has one.
    fn pop(&self) -> Option<Box<T>>;

    /// Offers a value that has been reset. `Err` hands back a value the spill
    /// would not keep, for the pool to drop.
    fn push(&self, value: Box<T>) -> Result<(), Box<T>>;

    /// How many idle values the spill holds.
    fn len(&self) -> usize;

    /// Whether the spill holds no idle value.
    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The most idle values a pool with this spill holds in all, its slots
    /// included, if the strategy promises a ceiling; `None`, the provided
    /// answer, for one that keeps what it is given.
    ///
    /// A pool whose spill has a ceiling `c` keeps idle values in at most
    /// `min(c, 2)` of its first thread's two slots, gives no other thread a
    /// pocket (whatever [`pockets`](Spill::pockets) says), and keeps the
    /// ceiling across `decay`, which sets idle values aside outside the
    /// spill: a value kept while the pool holds `c` takes the place of one
    /// set aside. So the spill itself must keep at most `c - min(c, 2)`, as
    /// [`Bounded`](crate::Bounded) does; then the pool holds at most `c` idle
    /// values at every moment. The pool makes each step that adds an idle
    /// value (or lends a value into the first thread's slots) and `decay`'s
    /// setting aside under one lock of its own, so that the count it checks
    /// holds until the step is done: such a spill's `push`, `drain` and
    /// `len` must not use the pool.
    ///
    /// ```
    /// use mempool_policies::{Bounded, LockFree, Spill};
    ///
    /// assert_eq!(Spill::<u8>::ceiling(&Bounded::<u8>::new(4)), Some(4));
    /// assert_eq!(Spill::<u8>::ceiling(&LockFree::<u8>::new()), None);
    /// ```
    fn ceiling(&self) -> Option<usize> {
        Option::None
    }

    /// Whether the pool gives every thread a *pocket* in front of this
    /// spill: two slots on a cache line of the thread's own, which it takes
    /// and refills with plain loads and stores, as the pool's first thread
    /// does its two slots inside the pool. Other threads reach a pocket's
    /// idle values through an asymmetric barrier (to reuse them, `trim`,
    /// `decay`), so they are never stranded; and a thread that exits leaves
    /// its pocket, values and all, to a thread that starts later.
    ///
    /// The provided answer is `false`: every thread but the first gets its
    /// values from `pop` and gives them back through `push`, which is what
    /// a strategy that wants every idle value in one place needs. (A spill
    /// with a [`ceiling`](Spill::ceiling) gets no pockets whatever it says:
    /// they would hold values outside the ceiling.)
    /// [`PerThread`](crate::PerThread) says `true`. The answer must not
    /// change over the spill's life.
    ///
    /// ```
    /// use mempool_policies::{LockFree, PerThread, Spill};
    ///
    /// assert!(Spill::<u8>::pockets(&PerThread::<u8>::new()));
    /// assert!(!Spill::<u8>::pockets(&LockFree::<u8>::new()));
    /// ```
    fn pockets(&self) -> bool {
        false
    }

    /// Takes out every idle value the spill holds now, for the caller to
    /// drop. The provided version pops at most [`len`](Spill::len) values, so
    /// it ends even while other threads keep pushing.
    ///
    /// ```
    /// use mempool_policies::{LockFree, Spill};
    ///
    /// let spill = LockFree::default();
    /// spill.push(Box::new(1)).unwrap();
    /// spill.push(Box::new(2)).unwrap();
    /// assert_eq!(spill.drain().len(), 2);
    /// assert!(spill.is_empty());
    /// ```
    fn drain(&self) -> Vec<Box<T>> {
        (0..self.len()).map_while(|_| self.pop()).collect()
    }

    /// Drops every idle value the spill holds and returns how many it dropped.
    /// The provided version [`drain`](Spill::drain)s first and drops after,
    /// so a value whose `Drop` uses the same pool cannot keep it going; if a
    /// `Drop` panics, the other values are still dropped.
    fn trim(&self) -> usize {
        let values = self.drain();
        let n = values.len();
        drop(values);
        n
    }
}

/// A boxed spill, so that the strategy can be chosen at run time:
///
/// ```
/// use mempool_policies::{Bounded, Mutex, Spill};
///
/// let bounded = std::env::args().count() > 99;
/// let spill: Box<dyn Spill<String> + Send + Sync> = if bounded {
///     Box::new(Bounded::new(8))
/// } else {
///     Box::new(Mutex::default())
/// };
/// spill.push(Box::new(String::new())).unwrap();
/// assert_eq!(spill.len(), 1);
/// ```
impl<T, S: Spill<T> + ?Sized> Spill<T> for Box<S> {
    #[inline]
    fn pop(&self) -> Option<Box<T>> {
        (**self).pop()
    }

    #[inline]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        (**self).push(value)
    }

    fn len(&self) -> usize {
        (**self).len()
    }

    fn drain(&self) -> Vec<Box<T>> {
        (**self).drain()
    }

    fn ceiling(&self) -> Option<usize> {
        (**self).ceiling()
    }

    fn trim(&self) -> usize {
        (**self).trim()
    }

    fn pockets(&self) -> bool {
        (**self).pockets()
    }
}
