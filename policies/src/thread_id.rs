//! Small, stable numbers that name threads.
//!
//! A pool needs to know, on every `get`, whether the calling thread owns its
//! fast slot, and a sharded spill needs to spread threads over its shards.
//! Both want a number that is cheap to read and unique among the threads of
//! the process. [`std::thread::ThreadId::as_u64`] is not stable yet, and
//! hashing a `ThreadId` is too slow for a path that should take a nanosecond,
//! so each thread takes the next number from a global counter the first time
//! it asks, and keeps it in a thread-local that needs no lazy-init machinery.
//!
//! Numbers are never reused: a thread that exits keeps its number forever.
//! That is what makes "owner" a safe notion for a pool: no later thread can
//! ever be mistaken for an owner that has gone.

use std::cell::Cell;
#[cfg(not(loom))]
use std::sync::atomic::{AtomicUsize, Ordering};

/// The next number to hand out. Zero is never handed out, so that it can mean
/// "no owner" in a pool.
#[cfg(not(loom))]
static NEXT: AtomicUsize = AtomicUsize::new(1);

// Under loom, numbering starts again in each execution of a model (so that
// the loom stand-in for `ThreadLocal` can index by number), and each loom
// thread has its own thread-local.
#[cfg(loom)]
loom::lazy_static! {
    static ref NEXT: loom::sync::atomic::AtomicUsize = loom::sync::atomic::AtomicUsize::new(1);
}
#[cfg(loom)]
use loom::sync::atomic::Ordering;

/// The largest number handed out, well below `usize::MAX` so that numbers
/// never meet [`UNASSIGNED`].
///
/// ```
/// assert!(mempool_policies::thread_id::current() <= mempool_policies::thread_id::MAX);
/// ```
pub const MAX: usize = usize::MAX >> 2;

/// What [`cached`] returns on a thread that has no number yet. It is not a
/// valid number, and it is not 0, so it matches no owner, claimed or not.
///
/// ```
/// use mempool_policies::thread_id::{self, UNASSIGNED};
///
/// assert_ne!(thread_id::current(), UNASSIGNED);
/// ```
pub const UNASSIGNED: usize = usize::MAX;

#[cfg(not(loom))]
thread_local! {
    static ID: Cell<usize> = const { Cell::new(UNASSIGNED) };
}
#[cfg(loom)]
loom::thread_local! {
    static ID: Cell<usize> = Cell::new(UNASSIGNED);
}

/// The calling thread's number: at least 1, at most [`MAX`], the same for the
/// thread's whole life and never given to another thread.
///
/// # Panics
///
/// If more than [`MAX`] threads have asked for a number in this process (on a
/// 64-bit target, more than 4·10¹⁸). Never because the thread is exiting: the
/// number lives in a `const` thread-local with no destructor, which can be
/// read at any point of a thread's life, its thread-local destructors
/// included.
///
/// ```
/// use mempool_policies::thread_id;
///
/// let here = thread_id::current();
/// assert_eq!(here, thread_id::current());
/// let there = std::thread::spawn(thread_id::current).join().unwrap();
/// assert_ne!(here, there);
/// ```
#[inline]
pub fn current() -> usize {
    let id = cached();
    if id != UNASSIGNED {
        return id;
    }
    assign()
}

/// The calling thread's number if it has one, else [`UNASSIGNED`]: a single
/// thread-local read with no branch, for fast paths that compare the number
/// against a stored one and fall back to [`current`] on a mismatch.
///
/// ```
/// use mempool_policies::thread_id;
///
/// std::thread::spawn(|| {
///     assert_eq!(thread_id::cached(), thread_id::UNASSIGNED);
///     let id = thread_id::current();
///     assert_eq!(thread_id::cached(), id);
/// })
/// .join()
/// .unwrap();
/// ```
#[inline(always)]
pub fn cached() -> usize {
    ID.with(Cell::get)
}

#[cold]
fn assign() -> usize {
    let id = NEXT.fetch_add(1, Ordering::Relaxed);
    // A thread that sees a number past MAX panics, and so does every thread
    // after it; the counter would need another 3·usize::MAX/4 increments to
    // wrap back into the valid range, which cannot happen.
    assert!(id <= MAX, "mempool: ran out of thread numbers");
    ID.with(|cell| cell.set(id));
    id
}
