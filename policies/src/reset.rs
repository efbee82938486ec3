/// A hook that cleans a value before a pool hands it out again.
///
/// Any `Fn(&mut T)` is a `Reset<T>`, so a method like `Vec::clear` can be
/// passed as it is. [`NoReset`] leaves values as they were returned.
///
/// ```
/// use mempool_policies::{NoReset, Reset};
///
/// let mut v = vec![1, 2, 3];
/// Vec::clear.reset(&mut v);
/// assert!(v.is_empty());
///
/// let mut s = String::from("kept");
/// NoReset.reset(&mut s);
/// assert_eq!(s, "kept");
/// ```
pub trait Reset<T> {
    /// Brings `value` back to the state a fresh value would have (or any state
    /// the next user of the pool is ready to accept).
    fn reset(&self, value: &mut T);

    /// Whether the pool should keep `value` once it is reset; `false` drops
    /// it instead (a buffer that grew too large, say). The provided version
    /// keeps everything, and compiles away. `mempool`'s builder sets it with
    /// `retain`.
    ///
    /// ```
    /// use mempool_policies::{NoReset, Reset};
    ///
    /// assert!(Reset::<Vec<u8>>::retain(&NoReset, &Vec::new()));
    /// ```
    #[inline(always)]
    fn retain(&self, value: &T) -> bool {
        let _ = value;
        true
    }

    /// [`reset`](Reset::reset), then [`retain`](Reset::retain): what a pool
    /// calls on every returned value. One call, so that a boxed hook costs
    /// one indirect call per return, not two.
    ///
    /// ```
    /// use mempool_policies::Reset;
    ///
    /// let mut v = vec![1];
    /// assert!(Vec::clear.recycle(&mut v));
    /// assert!(v.is_empty());
    /// ```
    #[inline(always)]
    fn recycle(&self, value: &mut T) -> bool {
        self.reset(value);
        self.retain(value)
    }
}

impl<T, F: Fn(&mut T)> Reset<T> for F {
    #[inline]
    fn reset(&self, value: &mut T) {
        self(value)
    }
}

/// The reset hook that does nothing: values come back as they were returned.
///
/// ```
/// use mempool_policies::{NoReset, Reset};
///
/// let mut n = 5;
/// NoReset.reset(&mut n);
/// assert_eq!(n, 5);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct NoReset;

impl<T> Reset<T> for NoReset {
    #[inline(always)]
    fn reset(&self, _value: &mut T) {}
}
