//! The synchronization primitives the pool is built from, behind one facade:
//! `std` (or `parking_lot`'s lock, with that feature), `crossbeam-queue` and
//! our `ThreadSlots` normally, and
//! under `--cfg loom` stand-ins built on loom's models, so that the loom
//! tests explore the same pool and strategy code that ships.
//!
//! Under loom, crossbeam's queue becomes a loom `Mutex` around a `VecDeque`
//! (the queues' own correctness is crossbeam's to prove; what loom checks
//! here is our code around them), and `ThreadSlots` becomes one slot per
//! thread number, which loom's threads (all on one OS thread) need.
//!
//! Not part of the crate's API: public only so that `mempool` can use it.
#![doc(hidden)]

#[cfg(loom)]
pub use self::model::*;
#[cfg(not(loom))]
pub use self::real::*;
pub use crate::barrier;

#[cfg(not(loom))]
mod real {
    #[cfg(not(feature = "parking_lot"))]
    pub use super::std_lock::{Mutex, MutexGuard};
    pub use crate::thread_slots::ThreadSlots;
    pub use crossbeam_queue::SegQueue;
    #[cfg(feature = "parking_lot")]
    pub use parking_lot::{Mutex, MutexGuard};
    pub use std::sync::atomic::{
        compiler_fence, fence, AtomicPtr, AtomicU8, AtomicUsize, Ordering,
    };

    /// A pointer in an `UnsafeCell`, read and written under a protocol of
    /// the caller's (the slot's value pointer). Under loom it is loom's
    /// cell, which fails a model where a read and a write of it race.
    #[derive(Debug)]
    pub struct PtrCell<T>(std::cell::UnsafeCell<*mut T>);

    impl<T> PtrCell<T> {
        pub const fn null() -> Self {
            PtrCell(std::cell::UnsafeCell::new(std::ptr::null_mut()))
        }
        /// # Safety
        /// No write of the cell races with this read.
        #[inline(always)]
        pub unsafe fn read(&self) -> *mut T {
            // SAFETY: the caller's promise.
            unsafe { *self.0.get() }
        }
        /// # Safety
        /// No other access to the cell races with this write.
        #[inline(always)]
        pub unsafe fn write(&self, ptr: *mut T) {
            // SAFETY: the caller's promise.
            unsafe { *self.0.get() = ptr }
        }
        #[inline(always)]
        pub fn get_mut(&mut self) -> *mut T {
            *self.0.get_mut()
        }
    }
}

/// `parking_lot::Mutex`'s API over std's lock (a futex since Rust 1.62):
/// poisoning ignored, since nothing a strategy does under its lock can
/// panic halfway (a `Vec`'s push or pop either happens or does not).
#[cfg(all(not(loom), not(feature = "parking_lot")))]
mod std_lock {
    use std::sync::{PoisonError, TryLockError};

    #[derive(Debug, Default)]
    pub struct Mutex<T>(std::sync::Mutex<T>);

    pub type MutexGuard<'a, T> = std::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub const fn new(value: T) -> Self {
            Mutex(std::sync::Mutex::new(value))
        }
        #[inline]
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0.lock().unwrap_or_else(PoisonError::into_inner)
        }
        #[inline]
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            match self.0.try_lock() {
                Ok(guard) => Some(guard),
                Err(TryLockError::Poisoned(poisoned)) => Some(poisoned.into_inner()),
                Err(TryLockError::WouldBlock) => None,
            }
        }
    }
}

#[cfg(loom)]
mod model {
    pub use loom::sync::atomic::{fence, AtomicPtr, AtomicU8, AtomicUsize, Ordering};

    /// The real `PtrCell`'s API over loom's cell, which checks that no read
    /// and write of it race.
    #[derive(Debug)]
    pub struct PtrCell<T>(loom::cell::UnsafeCell<*mut T>);

    impl<T> PtrCell<T> {
        pub fn null() -> Self {
            PtrCell(loom::cell::UnsafeCell::new(std::ptr::null_mut()))
        }
        /// # Safety
        /// As for the real one.
        pub unsafe fn read(&self) -> *mut T {
            // SAFETY: loom checks the caller's promise.
            self.0.with(|p| unsafe { *p })
        }
        /// # Safety
        /// As for the real one.
        pub unsafe fn write(&self, ptr: *mut T) {
            // SAFETY: loom checks the caller's promise.
            self.0.with_mut(|p| unsafe { *p = ptr })
        }
        pub fn get_mut(&mut self) -> *mut T {
            // SAFETY: `&mut self`: no other access to the cell.
            self.0.with_mut(|p| unsafe { *p })
        }
    }

    /// A compiler fence means nothing to loom, which runs the fallback
    /// barrier (a `SeqCst` fence on both sides) anyway.
    pub fn compiler_fence(_: Ordering) {}

    use std::collections::VecDeque;

    /// `parking_lot::Mutex`'s API over loom's.
    #[derive(Debug, Default)]
    pub struct Mutex<T>(loom::sync::Mutex<T>);

    pub type MutexGuard<'a, T> = loom::sync::MutexGuard<'a, T>;

    impl<T> Mutex<T> {
        pub fn new(value: T) -> Self {
            Mutex(loom::sync::Mutex::new(value))
        }
        pub fn lock(&self) -> MutexGuard<'_, T> {
            self.0
                .lock()
                .expect("a loom model panicked while holding a lock")
        }
        pub fn try_lock(&self) -> Option<MutexGuard<'_, T>> {
            self.0.try_lock().ok()
        }
    }

    /// `crossbeam_queue::SegQueue`'s API.
    #[derive(Debug, Default)]
    pub struct SegQueue<T>(Mutex<VecDeque<T>>);

    impl<T> SegQueue<T> {
        pub fn new() -> Self {
            SegQueue(Mutex::new(VecDeque::new()))
        }
        pub fn push(&self, value: T) {
            self.0.lock().push_back(value);
        }
        pub fn pop(&self) -> Option<T> {
            self.0.lock().pop_front()
        }
        pub fn len(&self) -> usize {
            self.0.lock().len()
        }
    }

    /// How many threads a loom model may use.
    const THREADS: usize = 8;

    /// `ThreadSlots`' API, one slot per thread number (which starts again
    /// from 1 in each loom execution). A slot is "made" the first time its
    /// thread asks through `get` or `get_hot`, as the real one makes it, so
    /// that `hot` finds only slots a thread asked for; the flags are std
    /// atomics, which loom (one OS thread) does not explore.
    #[derive(Debug)]
    pub struct ThreadSlots<T> {
        slots: Box<[T]>,
        made: Box<[std::sync::atomic::AtomicBool]>,
    }

    impl<T: Default> ThreadSlots<T> {
        pub fn new() -> Self {
            ThreadSlots {
                slots: (0..THREADS).map(|_| T::default()).collect(),
                made: (0..THREADS)
                    .map(|_| std::sync::atomic::AtomicBool::new(false))
                    .collect(),
            }
        }
        fn mine() -> usize {
            let id = crate::thread_id::current();
            assert!(
                id < THREADS,
                "loom models use at most {} threads",
                THREADS - 1
            );
            id
        }
        pub fn get(&self) -> Option<&T> {
            let id = Self::mine();
            self.made[id].store(true, std::sync::atomic::Ordering::Relaxed);
            Some(&self.slots[id])
        }
        /// The real one caches the slot per thread; the slot is the same.
        pub fn get_hot(&self) -> Option<&T> {
            self.get()
        }
        pub fn hot(&self) -> Option<&T> {
            let id = crate::thread_id::cached();
            (id < THREADS && self.made[id].load(std::sync::atomic::Ordering::Relaxed))
                .then(|| &self.slots[id])
        }
    }

    impl<T: Default> Default for ThreadSlots<T> {
        fn default() -> Self {
            Self::new()
        }
    }

    impl<T> ThreadSlots<T> {
        pub fn iter(&self) -> impl Iterator<Item = &T> {
            self.slots
                .iter()
                .zip(self.made.iter())
                .filter(|(_, made)| made.load(std::sync::atomic::Ordering::Relaxed))
                .map(|(slot, _)| slot)
        }
        pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut T> {
            self.slots
                .iter_mut()
                .zip(self.made.iter())
                .filter(|(_, made)| made.load(std::sync::atomic::Ordering::Relaxed))
                .map(|(slot, _)| slot)
        }
    }
}
