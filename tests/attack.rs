//! Attacks on the pool as a careless or hostile user would make them: hooks
//! and `Drop` impls that call back into the same pool, guards returned while
//! threads exit, panics in every hook and in `Drop` during `trim` and `decay`,
//! pipelines with a janitor thread, and thousands of short threads with pools
//! created and dropped so that `ThreadSlots` ids, indices and the per-thread
//! cache churn.
//!
//! Every test that checks a real property and passes stays as a regression
//! test. A test that found a bug is kept, marked `#[ignore = "bug: ..."]`, so
//! that the suite stays green until the bug is fixed.
//!
//! Run them under both barriers:
//!
//! ```text
//! cargo test --release --test attack
//! MEMPOOL_BARRIER=fence cargo test --release --test attack
//! ```

mod common;

use common::{
    at_exit, next_guard, scaled, silence_expected_panics, within, Ledger, OnDrop, Tracked, EARLY,
    LATE,
};
use mempool::{spill, BoxedPool, Pool, PoolGuard, Spill, StatsCounters};
use mempool_policies::sync::ThreadSlots;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock, Weak};

// ---------------------------------------------------------------------------
// Attack 1: hooks that call back into the same pool.
// ---------------------------------------------------------------------------

type Hooked = BoxedPool<Tracked, spill::PerThread<Tracked>, StatsCounters>;
type Shared = Arc<OnceLock<Weak<Hooked>>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hook {
    Create,
    Reset,
    Retain,
}

thread_local! {
    /// Set while a hook re-enters its pool, so that the hooks the re-entry
    /// runs do not re-enter again (that would recurse without end, which is
    /// the user's bug, not the pool's).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Everything a hook can do with its own pool.
fn reenter(pool: &Hooked) {
    let a = pool.get();
    a.use_for(|| ());
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    let t = PoolGuard::take(pool.get());
    let _ = pool.put(t);
    pool.trim();
    drop((pool.get(), pool.get()));
    pool.decay();
    pool.decay();
    drop(pool.get());
    let _ = (pool.stats(), pool.idle(), format!("{pool:?}"));
    drop(a);
}

/// How many times a hook re-entered its pool, so that the test knows the
/// attack ran.
static REENTERED: AtomicUsize = AtomicUsize::new(0);

fn reenter_once(shared: &Shared) {
    if IN_HOOK.with(|f| f.replace(true)) {
        return;
    }
    if let Some(pool) = shared.get().and_then(Weak::upgrade) {
        reenter(&pool);
        REENTERED.fetch_add(1, SeqCst);
    }
    IN_HOOK.with(|f| f.set(false));
}

fn reentrant_pool(hook: Hook, ledger: &Arc<Ledger>) -> Arc<Hooked> {
    let shared: Shared = Arc::new(OnceLock::new());
    let (s1, s2, s3) = (shared.clone(), shared.clone(), shared.clone());
    let l = Arc::clone(ledger);
    let pool = Arc::new(
        Pool::builder()
            .create(move || {
                if hook == Hook::Create {
                    reenter_once(&s1);
                }
                l.make()
            })
            .reset(move |_: &mut Tracked| {
                if hook == Hook::Reset {
                    reenter_once(&s2);
                }
            })
            .retain(move |_: &Tracked| {
                if hook == Hook::Retain {
                    reenter_once(&s3);
                }
                true
            })
            .stats()
            .build_boxed(),
    );
    shared.set(Arc::downgrade(&pool)).unwrap();
    pool
}

#[test]
fn hooks_that_use_their_own_pool() {
    for hook in [Hook::Create, Hook::Reset, Hook::Retain] {
        let ledger = Ledger::new();
        let pool = reentrant_pool(hook, &ledger);
        let p = Arc::clone(&pool);
        let l = Arc::clone(&ledger);
        within(20, &format!("{hook:?}"), move || {
            // The owner slot's value returned, a spilled one, a put, on the
            // owner thread; then another thread; then try_get and owned guards.
            drop(p.get());
            {
                let owner = p.get();
                let spilled = p.get();
                spilled.use_for(|| ());
                drop(spilled);
                owner.use_for(|| ());
            }
            let _ = p.put(l.make());
            std::thread::scope(|s| {
                s.spawn(|| {
                    drop(p.get());
                    let a = p.get();
                    drop(p.get());
                    drop(a);
                    drop(p.try_get());
                });
            });
            drop(p.try_get());
            drop(p.get_owned());
            p.decay();
            drop(p.get());
        });
        assert!(
            REENTERED.swap(0, SeqCst) > 0,
            "{hook:?}: the hook never re-entered"
        );
        let s = pool.stats().unwrap();
        common::check_identities(&s, &format!("{hook:?}"));
        assert_eq!(s.in_use, 0, "{hook:?}: {s}");
        assert_eq!(
            ledger.created(),
            ledger.dropped() + pool.idle(),
            "{hook:?}: created == dropped + idle"
        );
        assert!(
            !ledger.double_use.load(SeqCst),
            "{hook:?}: a value held twice"
        );
        drop(pool);
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "{hook:?}: every value dropped once"
        );
    }
}

/// The same through a `static`: a `retain` and a `reset` that use the very
/// pool they belong to by name.
#[test]
fn hooks_that_use_their_own_static_pool() {
    use std::sync::LazyLock;
    thread_local! {
        static BUSY: Cell<bool> = const { Cell::new(false) };
    }
    fn guarded(f: impl FnOnce()) {
        if !BUSY.with(|b| b.replace(true)) {
            f();
            BUSY.with(|b| b.set(false));
        }
    }
    static MADE: AtomicUsize = AtomicUsize::new(0);
    static POOL: LazyLock<BoxedPool<Vec<u8>, spill::PerThread<Vec<u8>>, StatsCounters>> =
        LazyLock::new(|| {
            Pool::builder()
                .create(|| {
                    MADE.fetch_add(1, SeqCst);
                    Vec::with_capacity(8)
                })
                .reset(|v: &mut Vec<u8>| {
                    v.clear();
                    guarded(|| {
                        POOL.get().push(1);
                        POOL.decay();
                    });
                })
                .retain(|_: &Vec<u8>| {
                    guarded(|| {
                        drop(POOL.try_get());
                        POOL.trim();
                        drop((POOL.get(), POOL.get()));
                    });
                    true
                })
                .stats()
                .build_boxed()
        });
    let p: &'static BoxedPool<Vec<u8>, spill::PerThread<Vec<u8>>, StatsCounters> = &POOL;
    within(20, "static pool", move || {
        for _ in 0..100 {
            let a = p.get();
            drop(p.get());
            drop(a);
            let _ = p.put(Vec::new());
        }
        std::thread::scope(|s| {
            s.spawn(|| {
                for _ in 0..100 {
                    drop((p.get(), p.get()));
                }
            });
        });
    });
    let s = POOL.stats().unwrap();
    common::check_identities(&s, "static pool");
    assert_eq!(s.in_use, 0, "{s}");
    assert_eq!(s.creates as usize, MADE.load(SeqCst));
}

type OnDropPool<S> =
    Pool<OnDrop, Box<dyn Fn() -> OnDrop + Send + Sync>, mempool::NoReset, S, StatsCounters>;

#[derive(Clone, Copy, Debug)]
enum InDrop {
    Decay,
    Trim,
    TrimThenDecay,
    GetThenDecay,
}

/// `trim` and `decay` whose dropped values call `trim` or `decay` (or get a
/// value and decay) on the same pool while the outer call is dropping.
fn drop_reenters<S: Spill<OnDrop> + Send + Sync + 'static>(name: &str, spill: impl Fn() -> S) {
    for in_drop in [
        InDrop::Decay,
        InDrop::Trim,
        InDrop::TrimThenDecay,
        InDrop::GetThenDecay,
    ] {
        for outer_trim in [false, true] {
            let what = format!(
                "{name}, {in_drop:?} in Drop, outer {}",
                if outer_trim { "trim" } else { "decay" }
            );
            let ledger = Ledger::new();
            let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
            let (h, l) = (Arc::clone(&hook), Arc::clone(&ledger));
            let pool: Arc<OnDropPool<S>> = Arc::new(
                Pool::builder()
                    .create(Box::new(move || OnDrop {
                        t: l.make(),
                        hook: Arc::clone(&h),
                    })
                        as Box<dyn Fn() -> OnDrop + Send + Sync>)
                    .spill(spill())
                    .stats()
                    .build(),
            );
            let weak = Arc::downgrade(&pool);
            let depth = Arc::new(AtomicUsize::new(0));
            let _ = hook.set(Box::new(move || {
                // Bounded depth: a drop inside a drop inside a drop is plenty.
                if depth.fetch_add(1, SeqCst) < 3 {
                    if let Some(pool) = weak.upgrade() {
                        match in_drop {
                            InDrop::Decay => drop(pool.decay()),
                            InDrop::Trim => drop(pool.trim()),
                            InDrop::TrimThenDecay => {
                                pool.trim();
                                pool.decay();
                            }
                            InDrop::GetThenDecay => {
                                pool.get().t.use_for(|| ());
                                pool.decay();
                            }
                        }
                    }
                }
                depth.fetch_sub(1, SeqCst);
            }));
            let p = Arc::clone(&pool);
            within(20, &what, move || {
                for _ in 0..3 {
                    let held: Vec<_> = (0..6).map(|_| p.get()).collect();
                    drop(held);
                    if outer_trim {
                        p.trim();
                    } else {
                        p.decay();
                        p.decay();
                    }
                }
                std::thread::scope(|s| {
                    s.spawn(|| {
                        let held: Vec<_> = (0..4).map(|_| p.get()).collect();
                        drop(held);
                        p.decay();
                        p.trim();
                    });
                });
            });
            let s = pool.stats().unwrap();
            common::check_identities(&s, &what);
            assert_eq!(ledger.created(), ledger.dropped() + pool.idle(), "{what}");
            assert!(!ledger.double_use.load(SeqCst), "{what}");
            drop(pool);
            assert_eq!(
                ledger.created(),
                ledger.dropped(),
                "{what}: every value dropped once"
            );
        }
    }
}

#[test]
fn drop_that_trims_or_decays_while_trim_or_decay_drops() {
    drop_reenters("PerThread", spill::PerThread::default);
    drop_reenters("Mutex", spill::Mutex::default);
    drop_reenters("LockFree", spill::LockFree::default);
    drop_reenters("Bounded", || spill::Bounded::new(4));
    drop_reenters("None", || spill::None);
}

/// A reset hook panics on the owner slot's value (and on a spilled one);
/// the value is dropped during the unwind, by the ticket, while the slot is
/// still marked in use, and its `Drop` gets, trims, decays and `try_get`s on
/// the same pool. The slot must end up usable and everything accounted for.
#[test]
fn drop_during_a_panicking_reset_uses_the_pool() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let (h, l) = (Arc::clone(&hook), Arc::clone(&ledger));
    let fail_reset = Arc::new(AtomicBool::new(false));
    let f = Arc::clone(&fail_reset);
    let pool = Arc::new(
        Pool::builder()
            .create(Box::new(move || OnDrop {
                t: l.make(),
                hook: Arc::clone(&h),
            }) as Box<dyn Fn() -> OnDrop + Send + Sync>)
            .reset(move |_: &mut OnDrop| {
                if f.swap(false, SeqCst) {
                    panic!("reset panicked (on purpose)");
                }
            })
            .stats()
            .build(),
    );
    let weak = Arc::downgrade(&pool);
    let depth = Arc::new(AtomicUsize::new(0));
    let _ = hook.set(Box::new(move || {
        if depth.fetch_add(1, SeqCst) == 0 {
            if let Some(pool) = weak.upgrade() {
                let a = pool.get();
                a.t.use_for(|| ());
                pool.trim();
                pool.decay();
                if let Some(g) = pool.try_get() {
                    g.t.use_for(|| ());
                }
                drop(a);
            }
        }
        depth.fetch_sub(1, SeqCst);
    }));
    for round in 0..3 {
        let owner = pool.get();
        assert!(common::from_a_slot(&owner), "round {round}");
        let spilled = pool.get();
        fail_reset.store(true, SeqCst);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(owner))).is_err());
        fail_reset.store(true, SeqCst);
        assert!(catch_unwind(AssertUnwindSafe(|| drop(spilled))).is_err());
        // The owner slot is usable again.
        let g = pool.get();
        g.t.use_for(|| ());
        drop(g);
        let s = pool.stats().unwrap();
        common::check_identities(&s, "panicking reset, Drop re-enters");
        assert_eq!(s.in_use, 0, "{s}");
        assert!(!ledger.double_use.load(SeqCst));
        assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
    }
    drop(pool);
    assert_eq!(ledger.created(), ledger.dropped());
}

// ---------------------------------------------------------------------------
// Attack 2: guards returned during thread exit; index reuse.
// ---------------------------------------------------------------------------

/// Everything the new features let a thread do with a pool during its exit.
fn use_during_exit<S: Spill<Tracked>, M: mempool::StatsLayer>(
    pool: &Arc<BoxedPool<Tracked, S, M>>,
) {
    drop(pool.get());
    let kept = pool.get_owned();
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    let taken = PoolGuard::take(pool.get());
    let _ = pool.put(taken);
    drop((pool.get(), pool.get(), pool.get()));
    pool.decay();
    drop(kept);
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    pool.decay();
    drop(pool.get_owned());
    pool.trim();
    drop(pool.try_get());
}

fn exit_scenario<S, M>(name: &str, build: impl Fn(Arc<Ledger>) -> BoxedPool<Tracked, S, M>)
where
    S: Spill<Tracked> + Send + Sync + 'static,
    M: mempool::StatsLayer + Send + Sync + 'static,
{
    for main_owns in [false, true] {
        let ledger = Ledger::new();
        let pool = Arc::new(build(Arc::clone(&ledger)));
        if main_owns {
            drop(pool.get());
        }
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            let (early, late) = (Arc::clone(&p), Arc::clone(&p));
            EARLY.with(|_| ());
            let kept_early = p.get_owned();
            at_exit(&EARLY, move || drop(kept_early));
            at_exit(&EARLY, move || use_during_exit(&early));
            use_during_exit(&p);
            // A guard taken from the owner slot, if this thread owns it.
            let kept_late = p.get_owned();
            let kept_late2 = p.get_owned();
            at_exit(&LATE, move || drop(kept_late));
            at_exit(&LATE, move || use_during_exit(&late));
            at_exit(&EARLY, move || drop(kept_late2));
        })
        .join()
        .unwrap_or_else(|_| panic!("{name}: the thread panicked"));
        let what = format!("{name} (main owns: {main_owns})");
        assert_eq!(ledger.created(), ledger.dropped() + pool.idle(), "{what}");
        assert!(!ledger.double_use.load(SeqCst), "{what}");
        if let Some(s) = pool.stats() {
            assert_eq!(s.in_use, 0, "{what}: {s}");
            common::check_identities(&s, &what);
        }
        drop(pool.get());
        drop(pool);
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "{what}: every value dropped once"
        );
    }
}

/// `retain` that refuses one value in three, so that rejection happens
/// during exit too.
fn picky(t: &Tracked) -> bool {
    t.id % 3 != 0
}

#[test]
fn guards_in_thread_locals_with_decay_try_get_retain_and_boxed_pools() {
    exit_scenario("PerThread, stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .retain(picky)
            .stats()
            .build_boxed()
    });
    exit_scenario("PerThread, no stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .retain(picky)
            .build_boxed()
    });
    exit_scenario("LockFree, stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .retain(picky)
            .spill(spill::LockFree::default())
            .stats()
            .build_boxed()
    });
    exit_scenario("Mutex, stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .reset(|_: &mut Tracked| ())
            .spill(spill::Mutex::default())
            .stats()
            .build_boxed()
    });
    exit_scenario("Bounded, stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .retain(picky)
            .spill(spill::Bounded::new(2))
            .stats()
            .build_boxed()
    });
}

/// A probe that tells which `ThreadSlots` index the calling thread holds: the
/// address of its slot in a `ThreadSlots` of the test's own.
fn slot_address() -> usize {
    static PROBE: OnceLock<ThreadSlots<AtomicUsize>> = OnceLock::new();
    PROBE
        .get_or_init(ThreadSlots::new)
        .get()
        .map_or(0, |slot| slot as *const AtomicUsize as usize)
}

type TrackedPool = Pool<
    Tracked,
    Box<dyn Fn() -> Tracked + Send + Sync>,
    mempool::NoReset,
    spill::PerThread<Tracked>,
    StatsCounters,
>;

fn tracked_pool(ledger: &Arc<Ledger>) -> Arc<TrackedPool> {
    let l = Arc::clone(ledger);
    Arc::new(
        Pool::builder()
            .create(Box::new(move || l.make()) as Box<dyn Fn() -> Tracked + Send + Sync>)
            .stats()
            .build(),
    )
}

/// A thread owns the slot, keeps two values idle in its pocket, hands its
/// owner guard and a spilled guard to the main thread and exits. A new
/// thread that received the same `ThreadSlots` index (so the same pocket)
/// works with the pool while the main thread drops the dead thread's guards
/// and steals from the pockets. No value may be held twice, none dropped
/// twice or lost; the new thread inherits the old pocket's values.
#[test]
fn guards_of_an_exited_thread_dropped_while_its_index_is_reused() {
    let mut rounds_with_reuse = 0;
    for round in 0..10u64 {
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let p = Arc::clone(&pool);
        let (slot, guards, pocket_ids) = std::thread::spawn(move || {
            let slot = slot_address();
            let owner = p.get_owned(); // claims the owner slot
            let spilled = p.get_owned();
            // Two more, returned to this thread's pocket.
            let (a, b) = (p.get(), p.get());
            let ids = vec![a.id, b.id];
            drop((a, b));
            let (g1, g2) = (next_guard(), next_guard());
            owner.hold(g1);
            spilled.hold(g2);
            (slot, vec![(owner, g1), (spilled, g2)], ids)
        })
        .join()
        .unwrap();
        assert_ne!(slot, 0);
        assert_eq!(pool.idle(), 2);
        let mut guards = Some(guards);
        // Threads that got another index wait here until one gets ours
        // (indices go lowest first, so keeping them alive moves us up).
        let mut parked = Vec::new();
        let mut found = None;
        for _ in 0..256 {
            let p = Arc::clone(&pool);
            let ids = pocket_ids.clone();
            let (info_tx, info_rx) = mpsc::channel();
            let (free_tx, free_rx) = mpsc::channel::<()>();
            let worker = std::thread::spawn(move || {
                if slot_address() != slot {
                    info_tx.send(None).unwrap();
                    let _ = free_rx.recv();
                    return false;
                }
                // The first get comes from the inherited pocket.
                let first = p.get();
                let inherited = ids.contains(&first.id);
                drop(first);
                info_tx.send(Some(inherited)).unwrap();
                for i in 0..scaled(20_000) as u64 {
                    let a = p.get();
                    let ga = next_guard();
                    a.hold(ga);
                    if i % 3 == 0 {
                        let b = p.get();
                        b.use_for(|| ());
                    }
                    a.release(ga);
                    if i % 5_000 == 0 {
                        p.decay();
                    }
                }
                inherited
            });
            match info_rx.recv().unwrap() {
                None => parked.push((worker, free_tx)),
                Some(_) => {
                    // The dead thread's guards come back here while the new
                    // thread works, and this thread takes from the pockets
                    // (the new thread's included) and trims.
                    for (g, id) in guards.take().unwrap() {
                        g.release(id);
                        drop(g);
                    }
                    for i in 0..scaled(20_000) as u64 {
                        let a = pool.get();
                        let ga = next_guard();
                        a.hold(ga);
                        a.release(ga);
                        drop(a);
                        if i % 1_000 == 0 {
                            pool.trim();
                        }
                    }
                    found = Some(worker.join().unwrap());
                    break;
                }
            }
        }
        for (worker, free) in parked {
            drop(free);
            worker.join().unwrap();
        }
        // Threads of other tests may hold the index the whole time: then
        // this round checks only the accounting below.
        if let Some(inherited) = found {
            rounds_with_reuse += 1;
            assert!(
                inherited,
                "round {round}: the new thread did not find the old pocket's values"
            );
        } else {
            for (g, id) in guards.take().unwrap() {
                g.release(id);
                drop(g);
            }
        }
        assert!(
            !ledger.double_use.load(SeqCst),
            "round {round}: a value held twice"
        );
        assert_eq!(
            ledger.created(),
            ledger.dropped() + pool.idle(),
            "round {round}"
        );
        let s = pool.stats().unwrap();
        assert_eq!(s.in_use, 0, "{s}");
        common::check_identities(&s, "index reuse");
        drop(pool);
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "round {round}: every value dropped once"
        );
    }
    assert!(
        rounds_with_reuse > 0,
        "no thread ever received an exited thread's index"
    );
}

/// A thread that owns the slot exits with its owner guard out (in a guard
/// kept by another thread); while the guard is out, other threads use the
/// pool; the guard comes back after the owner died, and the threads after it
/// take the value over. With retain, decay and try_get around it.
#[test]
fn owner_exits_with_its_guard_out() {
    for stolen_first in [false, true] {
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let p = Arc::clone(&pool);
        let (owner_guard, gid, owner_id) = std::thread::spawn(move || {
            let g = p.get_owned();
            assert!(common::from_a_slot(&g));
            let gid = next_guard();
            g.hold(gid);
            let id = g.id;
            (g, gid, id)
        })
        .join()
        .unwrap();
        std::thread::scope(|s| {
            for _ in 0..2 {
                s.spawn(|| {
                    for i in 0..scaled(2_000) {
                        let a = pool.get();
                        a.use_for(|| ());
                        assert_ne!(a.id, owner_id, "the value in use was handed out");
                        if i % 500 == 0 {
                            pool.decay();
                            drop(pool.try_get());
                        }
                    }
                });
            }
            if stolen_first {
                s.spawn(|| pool.trim());
            }
        });
        owner_guard.release(gid);
        drop(owner_guard);
        // The dead owner's value is idle in its slot: getters anywhere may
        // take it over (after other idle values), never two at once.
        let seen = Mutex::new(Vec::new());
        let all_holding = Barrier::new(4);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    let a = pool.get();
                    let ga = next_guard();
                    a.hold(ga);
                    seen.lock().unwrap().push(a.id);
                    all_holding.wait(); // four guards held at once
                    a.release(ga);
                });
            }
        });
        let seen = seen.into_inner().unwrap();
        let hits = seen.iter().filter(|&&id| id == owner_id).count();
        assert!(
            hits <= 1,
            "the dead owner's value went to {hits} guards at once: {seen:?}"
        );
        assert!(!ledger.double_use.load(SeqCst));
        let s = pool.stats().unwrap();
        common::check_identities(&s, "owner exited");
        assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
        drop(pool);
        assert_eq!(ledger.created(), ledger.dropped());
    }
}

// ---------------------------------------------------------------------------
// Attack 3: panics in every hook and in `Drop` during trim and decay.
// ---------------------------------------------------------------------------

/// A value whose `Drop` panics if its id is the one the fuse names.
struct Bomb {
    t: Tracked,
    fuse: Arc<AtomicUsize>,
}

const DISARMED: usize = usize::MAX;

impl std::fmt::Debug for Bomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bomb").field("id", &self.t.id).finish()
    }
}

impl Drop for Bomb {
    fn drop(&mut self) {
        if self
            .fuse
            .compare_exchange(self.t.id, DISARMED, SeqCst, SeqCst)
            .is_ok()
        {
            panic!("a value's Drop panicked (on purpose)");
        }
    }
}

/// One-shot failures of the hooks.
#[derive(Default)]
struct Faults {
    create: AtomicBool,
    reset: AtomicBool,
    retain_panics: AtomicBool,
    retain_refuses: AtomicBool,
}

fn fire(flag: &AtomicBool) -> bool {
    flag.swap(false, SeqCst)
}

fn panic_matrix<S: Spill<Bomb> + Send + Sync>(name: &str, spill: S) {
    let ledger = Ledger::new();
    let fuse = Arc::new(AtomicUsize::new(DISARMED));
    let faults = Arc::new(Faults::default());
    let (l, fz, f1, f2) = (
        Arc::clone(&ledger),
        Arc::clone(&fuse),
        Arc::clone(&faults),
        Arc::clone(&faults),
    );
    let f3 = Arc::clone(&faults);
    let pool = Pool::builder()
        .create(move || {
            if fire(&f1.create) {
                panic!("create panicked (on purpose)");
            }
            Bomb {
                t: l.make(),
                fuse: Arc::clone(&fz),
            }
        })
        .reset(move |_: &mut Bomb| {
            if fire(&f2.reset) {
                panic!("reset panicked (on purpose)");
            }
        })
        .retain(move |_: &Bomb| {
            if fire(&f3.retain_panics) {
                panic!("retain panicked (on purpose)");
            }
            !fire(&f3.retain_refuses)
        })
        .spill(spill)
        .stats()
        .build();
    let step = Cell::new("start");
    let check = |held: usize| {
        let s = pool.stats().unwrap();
        let what = format!("{name}, after {}", step.get());
        common::check_identities(&s, &what);
        assert_eq!(s.in_use, held as u64, "{what}: {s}");
        assert_eq!(
            ledger.created(),
            ledger.dropped() + pool.idle() + held,
            "{what}: created == dropped + idle + held"
        );
        assert!(!ledger.double_use.load(SeqCst), "{what}");
        assert_eq!(
            fuse.load(SeqCst),
            DISARMED,
            "{what}: the armed value was never dropped"
        );
        // Still usable, and the owner slot too.
        drop(pool.get());
    };
    let fails = |what: &'static str, f: &mut dyn FnMut()| {
        step.set(what);
        let r = catch_unwind(AssertUnwindSafe(f));
        assert!(r.is_err(), "{name}: {what} did not panic");
    };

    // create: the first get, while the slot is unclaimed.
    faults.create.store(true, SeqCst);
    fails("create on the first get", &mut || drop(pool.get()));
    check(0);
    // create for a nested get, and on another thread.
    let o = pool.get();
    faults.create.store(true, SeqCst);
    fails("create on a nested get", &mut || drop(pool.get()));
    drop(o);
    check(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _owner_busy = ();
            faults.create.store(true, SeqCst);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let a = pool.get(); // may take the owner's idle value over
                let b = pool.get();
                drop((a, b));
            }));
            assert!(r.is_err(), "{name}: create on another thread");
        });
    });
    check(0);
    // create on the owner thread, refilling a slot emptied by trim.
    pool.trim();
    faults.create.store(true, SeqCst);
    fails("create refilling the trimmed owner slot", &mut || {
        drop(pool.get())
    });
    check(0);

    // reset and retain, on the owner slot's value, a spilled one and put.
    for (what, flag) in [("reset", &faults.reset), ("retain", &faults.retain_panics)] {
        let (o, n) = (pool.get(), pool.get());
        flag.store(true, SeqCst);
        let mut o = Some(o);
        fails(what, &mut || drop(o.take()));
        flag.store(true, SeqCst);
        let mut n = Some(n);
        fails(what, &mut || drop(n.take()));
        flag.store(true, SeqCst);
        fails(what, &mut || {
            let _ = pool.put(Bomb {
                t: ledger.make(),
                fuse: Arc::clone(&fuse),
            });
        });
        check(0);
    }

    // Drop panics when retain refuses: the owner slot's value and a spilled one.
    for spilled in [false, true] {
        let o = pool.get();
        let n = pool.get();
        let (victim, keep) = if spilled { (n, o) } else { (o, n) };
        fuse.store(victim.t.id, SeqCst);
        faults.retain_refuses.store(true, SeqCst);
        let mut victim = Some(victim);
        fails("a Drop panicking after retain refused", &mut || {
            drop(victim.take())
        });
        drop(keep);
        check(0);
    }

    // Drop panics during trim and decay: the owner slot's value, then a
    // spilled one.
    for target in ["owner", "spilled"] {
        for op in ["trim", "decay"] {
            let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
            let ids: Vec<usize> = held.iter().map(|g| g.t.id).collect();
            let owner = held.iter().find(|g| common::from_a_slot(g)).map(|g| g.t.id);
            drop(held);
            if target == "spilled" && pool.idle() < 2 {
                // `None` kept no spilled value.
                pool.trim();
                continue;
            }
            let id = match target {
                "owner" => owner.unwrap_or(ids[0]),
                _ => *ids.iter().find(|&&id| Some(id) != owner).unwrap(),
            };
            if op == "decay" {
                pool.decay(); // set aside: the next decay drops
                              // A get in between would take one back; keep it out.
            }
            fuse.store(id, SeqCst);
            step.set(if op == "trim" {
                "a Drop panicking in trim"
            } else {
                "a Drop panicking in decay"
            });
            let r = catch_unwind(AssertUnwindSafe(|| {
                if op == "trim" {
                    pool.trim()
                } else {
                    pool.decay()
                }
            }));
            assert!(
                r.is_err(),
                "{name}: {target} value, {op}: its Drop did not run"
            );
            check(0);
        }
    }

    // A spilled value refused by a full spill, whose Drop panics.
    {
        let held: Vec<_> = (0..40).map(|_| pool.get()).collect();
        let last = held.last().unwrap().t.id;
        fuse.store(last, SeqCst);
        let mut held = Some(held);
        step.set("returning 40 values, the last one's Drop armed");
        let r = catch_unwind(AssertUnwindSafe(|| drop(held.take())));
        if r.is_ok() {
            // The spill kept it: trim drops it, and its panic goes on.
            step.set("trim with the last one's Drop armed");
            let r = catch_unwind(AssertUnwindSafe(|| pool.trim()));
            assert!(
                r.is_err(),
                "{name}: the armed value was not dropped by trim"
            );
        }
        check(0);
    }
    drop(pool);
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "{name}: every value dropped once"
    );
}

#[test]
fn panics_in_every_hook_and_in_drop_during_trim_and_decay() {
    if std::env::var_os("ATTACK_LOUD").is_none() {
        silence_expected_panics();
    }
    panic_matrix("PerThread", spill::PerThread::default());
    panic_matrix("Mutex", spill::Mutex::default());
    panic_matrix("LockFree", spill::LockFree::default());
    panic_matrix("Bounded", spill::Bounded::new(4));
    panic_matrix("None", spill::None);
}

// ---------------------------------------------------------------------------
// Attack 4: pipelines with a janitor.
// ---------------------------------------------------------------------------

/// One thread only gets, one only returns (through a channel), a third
/// calls `decay`, `trim` and `try_get` all along.
fn pipeline<S: Spill<Tracked> + Send + Sync + 'static>(name: &str, spill: S) {
    let items = scaled(60_000) as u64;
    let ledger = Ledger::new();
    let l = Arc::clone(&ledger);
    let pool = Arc::new(
        Pool::builder()
            .create(move || l.make())
            .retain(|t: &Tracked| t.id % 97 != 0)
            .spill(spill)
            .stats()
            .build(),
    );
    let (tx, rx) = mpsc::sync_channel(16);
    let done = AtomicBool::new(false);
    let janitor_rounds = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let p = &pool;
        s.spawn(move || {
            for i in 0..items {
                let g = if i % 2 == 0 {
                    p.get_owned()
                } else {
                    Arc::clone(p).get_owned()
                };
                let gid = next_guard();
                g.hold(gid);
                tx.send((g, gid)).unwrap();
            }
        });
        s.spawn(|| {
            for (g, gid) in rx {
                g.release(gid);
                drop(g);
            }
            done.store(true, SeqCst);
        });
        s.spawn(|| {
            while !done.load(SeqCst) {
                match janitor_rounds.fetch_add(1, SeqCst) % 3 {
                    0 => drop(pool.decay()),
                    1 => drop(pool.trim()),
                    _ => {
                        if let Some(g) = pool.try_get() {
                            g.use_for(|| ());
                        }
                    }
                }
                std::thread::yield_now();
            }
        });
    });
    assert!(
        !ledger.double_use.load(SeqCst),
        "{name}: a value held twice"
    );
    let s = pool.stats().unwrap();
    common::check_identities(&s, name);
    assert_eq!(s.in_use, 0, "{name}: {s}");
    assert_eq!(ledger.created(), ledger.dropped() + pool.idle(), "{name}");
    drop(pool);
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "{name}: every value dropped once"
    );
}

#[test]
fn pipeline_with_a_janitor_per_thread() {
    pipeline("PerThread", spill::PerThread::default());
}

#[test]
fn pipeline_with_a_janitor_other_strategies() {
    pipeline("Mutex", spill::Mutex::default());
    pipeline("LockFree", spill::LockFree::default());
    pipeline("Bounded", spill::Bounded::new(8));
    pipeline("None", spill::None);
}

// ---------------------------------------------------------------------------
// Attack 5: ThreadSlots churn; many pools on one thread.
// ---------------------------------------------------------------------------

/// A value that knows which pool made it.
#[derive(Debug)]
struct Tagged {
    pool: usize,
    t: Tracked,
}

type TaggedPool = Pool<
    Tagged,
    Box<dyn Fn() -> Tagged + Send + Sync>,
    mempool::NoReset,
    spill::PerThread<Tagged>,
    StatsCounters,
>;

fn tagged_pool(tag: usize, ledger: &Arc<Ledger>) -> Box<TaggedPool> {
    let l = Arc::clone(ledger);
    Box::new(
        Pool::builder()
            .create(Box::new(move || Tagged {
                pool: tag,
                t: l.make(),
            }) as Box<dyn Fn() -> Tagged + Send + Sync>)
            .stats()
            .build(),
    )
}

fn next_tag() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, SeqCst)
}

/// Uses a pool the way a thread might, checking every value's tag.
fn exercise(pool: &TaggedPool, tag: usize, rounds: usize) {
    for _ in 0..rounds {
        let a = pool.get();
        assert_eq!(a.pool, tag, "a value of another pool");
        let b = pool.get();
        assert_eq!(b.pool, tag, "a value of another pool");
        a.t.use_for(|| b.t.use_for(|| ()));
        drop(a);
        drop(b);
    }
}

/// Thousands of short threads, each making pools, using them and dropping
/// them, so that `ThreadSlots` ids and indices churn and a new pool often
/// lands at the address of the one just dropped: a new pool must never see
/// the old one's per-thread state (its pockets or stats blocks).
#[test]
fn short_threads_with_pools_created_and_dropped() {
    let ledger = Ledger::new();
    let shared_tag = next_tag();
    let shared = tagged_pool(shared_tag, &ledger);
    let same_address = AtomicUsize::new(0);
    for _ in 0..scaled(600) {
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    exercise(&shared, shared_tag, 2);
                    let mut last = 0usize;
                    for _ in 0..3 {
                        let tag = next_tag();
                        let pool = tagged_pool(tag, &ledger);
                        let address = &*pool as *const TaggedPool as usize;
                        if address == last {
                            same_address.fetch_add(1, SeqCst);
                        }
                        last = address;
                        // A fresh pool: nothing idle, nothing counted, and its
                        // first value is its own.
                        assert_eq!(pool.idle(), 0);
                        assert!(pool.try_get().is_none());
                        let s = pool.stats().unwrap();
                        assert_eq!(
                            (s.gets, s.creates, s.returns),
                            (0, 0, 0),
                            "a new pool inherited counts: {s}"
                        );
                        exercise(&pool, tag, 3);
                        let s = pool.stats().unwrap();
                        assert_eq!((s.gets, s.creates, s.returns), (6, 2, 6), "{s}");
                        assert_eq!(pool.idle(), 2);
                        // Leave values in this thread's pocket of the dying pool.
                        drop(pool);
                    }
                    exercise(&shared, shared_tag, 2);
                });
            }
        });
    }
    assert!(!ledger.double_use.load(SeqCst));
    drop(shared);
    assert_eq!(ledger.created(), ledger.dropped());
    eprintln!(
        "a new pool at the address of the one before it: {} times",
        same_address.load(SeqCst)
    );
}

/// Nine pools (more than the per-thread cache's four ways, with ids that
/// collide in it) used alternately and nested on three threads: every value
/// comes from its own pool, and each pool's stats count its own gets.
#[test]
fn more_pools_than_cache_ways_alternately_on_one_thread() {
    const POOLS: usize = 9;
    let rounds = scaled(20_000);
    let ledger = Ledger::new();
    let pools: Vec<(usize, Box<TaggedPool>)> = (0..POOLS)
        .map(|_| {
            let tag = next_tag();
            (tag, tagged_pool(tag, &ledger))
        })
        .collect();
    std::thread::scope(|s| {
        for t in 0..3 {
            let pools = &pools;
            s.spawn(move || {
                for i in 0..rounds {
                    let (ta, a) = &pools[(i + t) % POOLS];
                    let (tb, b) = &pools[(i * 7 + 3 * t + 1) % POOLS];
                    let ga = a.get();
                    assert_eq!(ga.pool, *ta);
                    let gb = b.get();
                    assert_eq!(gb.pool, *tb);
                    ga.t.use_for(|| gb.t.use_for(|| ()));
                    drop(ga);
                    drop(gb);
                }
            });
        }
    });
    let gets: u64 = pools.iter().map(|(_, p)| p.stats().unwrap().gets).sum();
    assert_eq!(gets, (3 * rounds * 2) as u64);
    for (tag, p) in &pools {
        let s = p.stats().unwrap();
        common::check_identities(&s, &format!("pool {tag}"));
        assert!(s.creates <= 24, "pool {tag} made {} values: {s}", s.creates);
    }
    assert!(!ledger.double_use.load(SeqCst));
    drop(pools);
    assert_eq!(ledger.created(), ledger.dropped());
}

/// `ThreadSlots` directly: a new one never shows an old one's slots, even at
/// the same address; slots stay put while alive; five or more alive at once
/// (ids colliding in the four-way cache) keep their slots apart.
#[test]
fn thread_slots_are_never_confused() {
    let mut collisions = 0;
    let mut last = 0usize;
    for round in 1..scaled(20_000) {
        let a: Box<ThreadSlots<AtomicUsize>> = Box::new(ThreadSlots::new());
        let address = &*a as *const _ as usize;
        collisions += usize::from(address == last);
        last = address;
        assert_eq!(
            a.get().unwrap().load(SeqCst),
            0,
            "round {round}: a new ThreadSlots shows a value"
        );
        a.get().unwrap().store(round, SeqCst);
        assert_eq!(a.get().unwrap().load(SeqCst), round);
        drop(a);
    }
    // Usually in the hundreds; 0 under valgrind, whose allocator does not
    // hand freed blocks back at once.
    eprintln!("a new ThreadSlots at the address of the one before it: {collisions} times");
    let alive: Vec<ThreadSlots<AtomicUsize>> = (0..9).map(|_| ThreadSlots::new()).collect();
    // All four alive at once, so that they hold four different indices (a
    // thread that starts after another exited may inherit its index, slots
    // and contents, as documented).
    let together = Barrier::new(4);
    std::thread::scope(|s| {
        for t in 1..=4usize {
            let (alive, together) = (&alive, &together);
            s.spawn(move || {
                together.wait();
                for round in 0..scaled(5_000) {
                    for (k, slots) in alive.iter().enumerate() {
                        let slot = slots.get().unwrap();
                        let want = if round == 0 {
                            0
                        } else {
                            t * 1_000_000 + (round - 1) * 10 + k
                        };
                        assert_eq!(slot.load(SeqCst), want, "thread {t}, ThreadSlots {k}");
                        slot.store(t * 1_000_000 + round * 10 + k, SeqCst);
                    }
                }
                together.wait();
            });
        }
    });
}

/// A `ThreadSlots` asked during thread exit: before the thread gives its
/// index back it answers with the thread's slot, after that `None`, never a
/// panic, and never a slot another thread has since received.
#[test]
fn thread_slots_during_thread_exit() {
    static SLOTS: OnceLock<ThreadSlots<AtomicUsize>> = OnceLock::new();
    let slots = SLOTS.get_or_init(ThreadSlots::new);
    let seen = Arc::new(Mutex::new(Vec::new()));
    let threads = scaled(200);
    for _ in 0..threads {
        let seen2 = Arc::clone(&seen);
        std::thread::spawn(move || {
            let seen3 = Arc::clone(&seen2);
            // Registered before the index: runs after it was given back.
            EARLY.with(|_| ());
            at_exit(&EARLY, move || {
                seen3
                    .lock()
                    .unwrap()
                    .push(("early", slots.get().map(|s| s as *const _ as usize)));
            });
            let mine = slots.get().unwrap() as *const _ as usize;
            // Registered after: runs before.
            at_exit(&LATE, move || {
                let now = slots.get().map(|s| s as *const _ as usize);
                assert!(now.is_none() || now == Some(mine));
                seen2.lock().unwrap().push(("late", now));
            });
        })
        .join()
        .unwrap();
    }
    let seen = seen.lock().unwrap();
    assert_eq!(seen.len(), 2 * threads);
    assert!(seen
        .iter()
        .filter(|(when, _)| *when == "early")
        .all(|(_, slot)| slot.is_none()));
}

// ---------------------------------------------------------------------------
// Odd value types: zero-sized and over-aligned, on many threads.
// ---------------------------------------------------------------------------

static ZST_MADE: AtomicUsize = AtomicUsize::new(0);
static ZST_DROPPED: AtomicUsize = AtomicUsize::new(0);

struct Zst;

impl Drop for Zst {
    fn drop(&mut self) {
        ZST_DROPPED.fetch_add(1, SeqCst);
    }
}

#[repr(align(256))]
struct Wide {
    bytes: [u8; 256],
    t: Tracked,
}

#[test]
fn zero_sized_and_over_aligned_values() {
    let pool = Pool::builder()
        .create(|| {
            ZST_MADE.fetch_add(1, SeqCst);
            Zst
        })
        .stats()
        .build();
    let ledger = Ledger::new();
    let l = Arc::clone(&ledger);
    let wide = Pool::builder()
        .create(move || Wide {
            bytes: [7; 256],
            t: l.make(),
        })
        .reset(|w: &mut Wide| w.bytes = [7; 256])
        .build();
    std::thread::scope(|s| {
        for t in 0..4 {
            let (pool, wide) = (&pool, &wide);
            s.spawn(move || {
                for i in 0..scaled(20_000) {
                    let a = pool.get();
                    let b = pool.get();
                    drop((a, b));
                    let mut w = wide.get();
                    assert_eq!(&*w as *const Wide as usize % 256, 0, "misaligned");
                    assert!(w.bytes.iter().all(|&b| b == 7));
                    w.bytes = [t as u8; 256];
                    let g = next_guard();
                    w.t.hold(g);
                    w.t.release(g);
                    if i % 2_000 == t {
                        pool.trim();
                        wide.decay();
                    }
                }
            });
        }
    });
    let s = pool.stats().unwrap();
    common::check_identities(&s, "zst");
    assert_eq!(
        ZST_MADE.load(SeqCst),
        ZST_DROPPED.load(SeqCst) + pool.idle()
    );
    drop(pool);
    assert_eq!(ZST_MADE.load(SeqCst), ZST_DROPPED.load(SeqCst));
    drop(wide);
    assert!(!ledger.double_use.load(SeqCst));
    assert_eq!(ledger.created(), ledger.dropped());
}

// ---------------------------------------------------------------------------
// More: many threads alive at once, forgotten guards.
// ---------------------------------------------------------------------------

/// 150 threads alive at once (indices over five `ThreadSlots` buckets,
/// made concurrently), each holding values and leaving two in its pocket;
/// then a second wave that inherits the pockets; `decay` and `trim` from a
/// third party meanwhile.
#[test]
fn waves_of_threads_alive_at_once() {
    const THREADS: usize = 150;
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    for wave in 0..2 {
        let all_in = Barrier::new(THREADS + 1);
        let all_out = Barrier::new(THREADS + 1);
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                let (pool, all_in, all_out) = (&pool, &all_in, &all_out);
                s.spawn(move || {
                    let a = pool.get();
                    let b = pool.get();
                    let (ga, gb) = (next_guard(), next_guard());
                    a.hold(ga);
                    b.hold(gb);
                    all_in.wait();
                    a.release(ga);
                    b.release(gb);
                    drop((a, b));
                    for _ in 0..50 {
                        pool.get().use_for(|| ());
                    }
                    all_out.wait();
                });
            }
            all_in.wait();
            if wave == 1 {
                pool.decay();
            }
            all_out.wait();
            pool.decay();
        });
        assert!(!ledger.double_use.load(SeqCst));
        let s = pool.stats().unwrap();
        common::check_identities(&s, &format!("wave {wave}"));
        assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
    }
    // The second wave made nothing new: it found the first wave's values.
    assert!(
        ledger.created() <= 2 * THREADS + 4,
        "made {}",
        ledger.created()
    );
    drop(pool);
    assert_eq!(ledger.created(), ledger.dropped());
}

/// A forgotten guard from the owner slot: the pool goes on with its spill,
/// `trim` and `decay` leave the slot alone, and dropping the pool leaks that
/// one value and nothing else (as documented). (A value with no heap part,
/// so that valgrind sees no leak.)
#[test]
fn a_forgotten_owner_guard() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    #[derive(Debug)]
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    let pool = Pool::builder()
        .create(|| {
            MADE.fetch_add(1, SeqCst);
            Counted
        })
        .spill(spill::Mutex::default())
        .stats()
        .build();
    let g = pool.get();
    assert!(format!("{g:?}").contains("owner slot"));
    std::mem::forget(g);
    for _ in 0..10 {
        drop((pool.get(), pool.get()));
        pool.decay();
        pool.trim();
        drop(pool.try_get());
    }
    std::thread::scope(|s| {
        s.spawn(|| drop((pool.get(), pool.get())));
    });
    let s = pool.stats().unwrap();
    assert_eq!(s.in_use, 1, "{s}");
    common::check_identities(&s, "forgotten");
    drop(pool);
    assert_eq!(
        MADE.load(SeqCst),
        DROPPED.load(SeqCst) + 1,
        "only the forgotten value leaks"
    );
}

/// The run is in the barrier mode it was asked for, so that a run with
/// `MEMPOOL_BARRIER=fence` does test the fallback.
#[test]
fn the_barrier_mode_is_the_one_asked_for() {
    let forced = std::env::var_os("MEMPOOL_BARRIER").is_some_and(|v| v == "fence");
    let uses = mempool_policies::barrier::uses_membarrier();
    eprintln!("membarrier: {uses}");
    if forced {
        assert!(!uses);
    }
}
