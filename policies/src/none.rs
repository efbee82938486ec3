use crate::Spill;

/// Keeps nothing: only the first thread's two slots inside the pool reuse
/// values, and every other `get` creates a fresh value that is dropped when
/// its guard is (no thread but the first has a pocket).
///
/// Pick it when one thread does nearly all the work and the others are rare
/// enough that creating for them is cheaper than keeping values around.
///
/// ```
/// use mempool_policies::{None, Spill};
///
/// assert_eq!(None.push(Box::new(1)), Err(Box::new(1)));
/// assert_eq!(Spill::<i32>::pop(&None), Option::None);
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct None;

impl<T> Spill<T> for None {
    #[inline(always)]
    fn pop(&self) -> Option<Box<T>> {
        Option::None
    }

    #[inline(always)]
    fn push(&self, value: Box<T>) -> Result<(), Box<T>> {
        Err(value)
    }

    fn len(&self) -> usize {
        0
    }

    fn trim(&self) -> usize {
        0
    }
}
