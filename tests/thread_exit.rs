//! A pool used while a thread's thread-locals are being destroyed: a guard
//! kept in a `thread_local!` and returned by its destructor, and a destructor
//! that gets, puts and returns values. This once aborted the process (a
//! panic inside a thread-local destructor), so a failure here kills the test
//! binary rather than failing one test.
//!
//! Thread-local destructors run in an order nobody controls; on Linux it is
//! the reverse of registration. So each scenario registers one destructor
//! before the thread first uses the pool (it runs after the pool's own
//! per-thread state is torn down) and one after (it runs before), and runs on
//! a thread that owns the pool's slot and on one that does not.

mod common;

use common::{at_exit, Ledger, Tracked, EARLY, LATE};
use mempool::{spill, Pool, PoolGuard, Spill, StatsLayer};
use std::cell::RefCell;
use std::sync::Arc;

type Create = Box<dyn Fn() -> Tracked + Send + Sync>;

/// Everything a thread can do with a pool during its exit.
fn use_during_exit<S, M>(pool: &Arc<Pool<Tracked, Create, mempool::NoReset, S, M>>)
where
    S: Spill<Tracked> + Send + Sync + 'static,
    M: StatsLayer + Send + Sync + 'static,
{
    drop(pool.get());
    let kept = pool.get_owned();
    let taken = PoolGuard::take(pool.get());
    let _ = pool.put(taken);
    drop((pool.get(), pool.get(), pool.get()));
    drop(kept);
    pool.trim();
    drop(pool.get_owned());
}

fn scenario<S, M>(
    name: &str,
    build: impl Fn(Create) -> Pool<Tracked, Create, mempool::NoReset, S, M>,
) where
    S: Spill<Tracked> + Send + Sync + 'static,
    M: StatsLayer + Send + Sync + 'static,
{
    for main_owns in [false, true] {
        let ledger = Ledger::new();
        let maker = Arc::clone(&ledger);
        let pool = Arc::new(build(Box::new(move || maker.make())));
        if main_owns {
            drop(pool.get()); // this thread owns the slot; the next one does not
        }
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            let (early, late) = (Arc::clone(&p), Arc::clone(&p));
            // A thread-local registered before the pool is first used on
            // this thread ...
            EARLY.with(|_| ());
            let kept_early = p.get_owned();
            at_exit(&EARLY, move || drop(kept_early));
            at_exit(&EARLY, move || use_during_exit(&early));
            use_during_exit(&p);
            // ... and one registered after.
            let kept_late = p.get_owned();
            at_exit(&LATE, move || drop(kept_late));
            at_exit(&LATE, move || use_during_exit(&late));
        })
        .join()
        .unwrap_or_else(|_| panic!("{name}: the thread panicked"));
        let idle = pool.idle();
        assert_eq!(
            ledger.created(),
            ledger.dropped() + idle,
            "{name} (main owns: {main_owns}): created == dropped + idle"
        );
        if let Some(s) = pool.stats() {
            assert_eq!(s.in_use, 0, "{name}: {s}");
            common::check_invariants(&s);
        }
        drop(pool.get()); // still usable
        drop(pool);
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "{name}: every value dropped once"
        );
    }
}

macro_rules! every_strategy {
    ($stats:ident, $($test:ident: $spill:expr;)*) => {$(
        #[test]
        fn $test() {
            scenario(stringify!($test), |create| Pool::builder().create(create).spill($spill).build());
            scenario(concat!(stringify!($test), " with stats"), |create| {
                Pool::builder().create(create).spill($spill).stats().build()
            });
        }
    )*};
}

every_strategy! {
    stats,
    per_thread: spill::PerThread::default();
    mutex: spill::Mutex::default();
    lock_free: spill::LockFree::default();
    bounded: spill::Bounded::new(4);
    none: spill::None;
}

/// The report, as written: a `static` default pool and a guard kept
/// in a `thread_local!`.
#[test]
fn a_static_pools_guard_kept_in_a_thread_local() {
    use std::sync::LazyLock;
    static POOL: LazyLock<Pool<Vec<u8>>> = LazyLock::new(|| Pool::new(Vec::new));
    thread_local! {
        static KEEP: RefCell<Option<PoolGuard<'static, Vec<u8>>>> = const { RefCell::new(None) };
    }
    drop(POOL.get());
    std::thread::spawn(|| {
        KEEP.with(|k| *k.borrow_mut() = Some(POOL.get()));
        drop(POOL.get());
    })
    .join()
    .unwrap();
    // The kept guard came back when the thread exited. Two values in all:
    // the thread took the owner slot's idle value over for the guard it
    // kept, and made one for the get beside it.
    assert_eq!(POOL.idle(), 2);
}
