//! Values whose `Drop` does what a careless or hostile user's might: use the
//! same pool again, or panic. `trim` and the pool's own drop must end, and
//! must drop every other value, for every strategy.

mod common;

use common::{silence_expected_panics, Ledger, Tracked};
use mempool::{spill, Pool, Spill};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::mpsc;
use std::sync::{Arc, OnceLock, Weak};
use std::time::Duration;

/// A value whose `Drop` runs a hook, set once the pool exists.
struct OnDrop {
    hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>>,
}

impl Drop for OnDrop {
    fn drop(&mut self) {
        if let Some(hook) = self.hook.get() {
            hook();
        }
    }
}

type Create = Box<dyn Fn() -> OnDrop + Send + Sync>;

/// `trim` on a pool whose values get and return a value of the same pool
/// when dropped. Before the fix, `PerThread`, `LockFree` and `Bounded` popped
/// until empty, and every drop refilled them: `trim` never returned.
fn trim_ends_when_drop_reenters<S: Spill<OnDrop> + Send + Sync + 'static>(name: &str, spill: S) {
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let made = Arc::new(AtomicUsize::new(0));
    let (h, m) = (Arc::clone(&hook), Arc::clone(&made));
    let create: Create = Box::new(move || {
        m.fetch_add(1, SeqCst);
        OnDrop {
            hook: Arc::clone(&h),
        }
    });
    let pool = Arc::new(Pool::builder().create(create).spill(spill).build());
    let weak: Weak<Pool<OnDrop, Create, mempool::NoReset, S>> = Arc::downgrade(&pool);
    thread_local! {
        /// Set while a hook runs: a value dropped inside it (with `None`,
        /// the one it got and returned) does not recurse, forever.
        static IN_HOOK: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }
    let _ = hook.set(Box::new(move || {
        if IN_HOOK.replace(true) {
            return;
        }
        if let Some(pool) = weak.upgrade() {
            drop(pool.get());
        }
        IN_HOOK.set(false);
    }));
    // This thread owns the slot; the trimming thread does not, so the values
    // its `Drop`s get and return go through the spill, the case that looped.
    drop(pool.get());
    let (done, finished) = mpsc::channel();
    let p = Arc::clone(&pool);
    // On a thread of its own, so that a trim that never ends fails the test
    // instead of hanging it.
    std::thread::spawn(move || {
        drop((p.get(), p.get(), p.get(), p.get(), p.get()));
        let dropped = p.trim();
        let _ = done.send(dropped);
    });
    let dropped = finished
        .recv_timeout(Duration::from_secs(20))
        .unwrap_or_else(|_| panic!("{name}: trim did not end within 20 s"));
    // Five values, all in the spill (its first get took the owner slot's
    // idle value over); `None` keeps none of them.
    let expected = if name == "None" { 0 } else { 5 };
    assert_eq!(dropped, expected, "{name}: trim dropped {dropped}");
    assert!(
        made.load(SeqCst) < 100,
        "{name}: made {} values",
        made.load(SeqCst)
    );
}

#[test]
fn trim_ends_when_a_values_drop_uses_the_pool() {
    trim_ends_when_drop_reenters("PerThread", spill::PerThread::default());
    trim_ends_when_drop_reenters("Mutex", spill::Mutex::default());
    trim_ends_when_drop_reenters("LockFree", spill::LockFree::default());
    trim_ends_when_drop_reenters("Bounded", spill::Bounded::new(8));
    trim_ends_when_drop_reenters("None", spill::None);
}

/// A value that panics when dropped if told to.
struct Bomb {
    armed: Arc<AtomicBool>,
    _tracked: Tracked,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self.armed.swap(false, SeqCst) {
            panic!("a value's Drop panicked (on purpose)");
        }
    }
}

/// Seven idle values (the owner slot's and six in the spill), one of which
/// panics when dropped: dropping the pool, or trimming it, must drop all
/// seven and then let the panic go on.
fn one_panicking_drop_leaks_nothing<S: Spill<Bomb>>(name: &str, make: impl Fn() -> S) {
    for trim in [false, true] {
        for which in 0..7 {
            let ledger = Ledger::new();
            let bombs: Vec<Arc<AtomicBool>> =
                (0..7).map(|_| Arc::new(AtomicBool::new(false))).collect();
            let next = AtomicUsize::new(0);
            let (l, b) = (Arc::clone(&ledger), bombs.clone());
            let pool = Pool::builder()
                .create(move || Bomb {
                    armed: Arc::clone(&b[next.fetch_add(1, SeqCst)]),
                    _tracked: l.make(),
                })
                .spill(make())
                .build();
            let guards: Vec<_> = (0..7).map(|_| pool.get()).collect();
            drop(guards);
            assert_eq!(pool.idle(), 7, "{name}");
            bombs[which].store(true, SeqCst);
            let result = catch_unwind(AssertUnwindSafe(|| {
                if trim {
                    pool.trim();
                } else {
                    drop(pool);
                }
            }));
            assert!(result.is_err(), "{name}: the panic went on");
            assert_eq!(
                ledger.dropped(),
                7,
                "{name}, value {which} panics, {}: every other value dropped",
                if trim { "trim" } else { "pool dropped" }
            );
        }
    }
}

#[test]
fn a_panicking_drop_does_not_leak_the_other_values() {
    silence_expected_panics();
    one_panicking_drop_leaks_nothing("PerThread", spill::PerThread::default);
    one_panicking_drop_leaks_nothing("Mutex", spill::Mutex::default);
    one_panicking_drop_leaks_nothing("LockFree", spill::LockFree::default);
    one_panicking_drop_leaks_nothing("Bounded", || spill::Bounded::new(8));
}
