//! Re-entrancy: a pool whose own hooks (`create`, `reset`, `retain`) and
//! whose values' `Drop` impls call back into the same pool (`get`,
//! `try_get`, `take`, `put`, `trim`, `decay`) stays consistent: no value is
//! held twice or dropped twice, every value is accounted for, and nothing
//! the re-entry does touches the value being returned or dropped.
//!
//! The groups: hooks that use their own pool (through a `Weak`, through a
//! `static`), also while the value being returned still holds a slot of the
//! first thread or of a thread's pocket (the value is not idle to its own
//! hooks); `Drop` impls that use the pool while `trim`, `decay`, a panicking
//! `reset` or a refusing `retain` drops their value; values that hold guards
//! of their own pool.
//!
//! Run them under both barriers:
//!
//! ```text
//! cargo test --release --test reentrancy
//! MEMPOOL_BARRIER=fence cargo test --release --test reentrancy
//! ```

mod common;

use common::{
    check_identities, from, heavy, hooked_pool, in_pocket, owner_gone, reenter, reenter_three_deep,
    scaled, settle, silence_expected_panics, within, Hooked, Knobs, Ledger, OnDrop, Tracked,
    IN_HOOK, OWNER, SPILL,
};
use mempool::{spill, BoxedPool, Pool, PoolGuard, Retaining, Spill, StatsCounters};
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Mutex, OnceLock, Weak};

// ---------------------------------------------------------------------------
// Hooks that use their own pool.
// ---------------------------------------------------------------------------

type Shared = Arc<OnceLock<Weak<Hooked>>>;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Hook {
    Create,
    Reset,
    Retain,
}

/// Everything a hook can do with its own pool.
fn reenter_all(pool: &Hooked) {
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
        reenter_all(&pool);
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

// ---------------------------------------------------------------------------
// Hooks that use the pool while the value being returned holds its slot.
// ---------------------------------------------------------------------------

/// `reset` and `retain` that get, `try_get`, take, put, trim and decay on
/// their own pool while the value being returned holds owner slot 0 or 1
/// (returned on the owner thread, or on another thread the guard was sent
/// to), with the other owner slot's value still out: none of that touches
/// the value being returned, so the owner's next get is that same value,
/// from its owner slot.
#[test]
fn hooks_use_the_pool_while_a_first_thread_value_is_returned() {
    for in_retain in [false, true] {
        let hook = if in_retain { "retain" } else { "reset" };
        let ledger = Ledger::new();
        let knobs = Arc::new(Knobs::default());
        let pool = hooked_pool(&ledger, &knobs, reenter_three_deep);
        let (p, k) = (Arc::clone(&pool), Arc::clone(&knobs));
        // `within` runs this on a new thread: it becomes the owner.
        within(60, hook, move || {
            if in_retain {
                k.reenter_in_retain.store(true, SeqCst);
            } else {
                k.reenter_in_reset.store(true, SeqCst);
            }
            for round in 0..scaled(300) {
                for slot in [0, 1] {
                    for elsewhere in [false, true] {
                        let what =
                            format!("{hook}, round {round}, slot {slot}, elsewhere {elsewhere}");
                        let (a, b) = (p.get_owned(), p.get_owned());
                        assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                        let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                        let vid = victim.id;
                        if elsewhere {
                            std::thread::spawn(move || drop(victim)).join().unwrap();
                        } else {
                            drop(victim);
                        }
                        let again = p.get();
                        assert_eq!(from(&again), OWNER, "{what}");
                        assert_eq!(again.id, vid, "{what}: the returned value moved");
                        drop(again);
                        drop(other);
                    }
                }
            }
        });
        assert!(
            knobs.reentered.load(SeqCst) > 0,
            "{hook}: the hook never ran"
        );
        knobs.reenter_in_reset.store(false, SeqCst);
        knobs.reenter_in_retain.store(false, SeqCst);
        settle(hook, &ledger, pool);
    }
}

/// `reset` and `retain` that get, `try_get`, take, put, trim and decay on
/// their own pool while the value being returned holds its pocket slot (on
/// the getter's thread, and on another thread the guard was sent to): none
/// of that may touch the value being returned, so the getter's next get is
/// that same value, from its pocket.
#[test]
fn hooks_use_the_pool_while_a_pocket_slot_is_in_use() {
    for in_retain in [false, true] {
        let what = if in_retain { "retain" } else { "reset" };
        let ledger = Ledger::new();
        let knobs = Arc::new(Knobs::default());
        let pool = hooked_pool(&ledger, &knobs, reenter);
        // A thread's own pocket, not the owner slots, is what this tests.
        owner_gone(&pool);
        let (p, l, k) = (Arc::clone(&pool), Arc::clone(&ledger), Arc::clone(&knobs));
        within(60, what, move || {
            if in_retain {
                k.reenter_in_retain.store(true, SeqCst);
            } else {
                k.reenter_in_reset.store(true, SeqCst);
            }
            for round in 0..heavy(2_000) {
                // On this thread.
                let x = p.get();
                assert!(in_pocket(&x));
                let xid = x.id;
                drop(x);
                let again = p.get();
                assert_eq!(again.id, xid, "{what}, round {round}: the value moved");
                assert!(in_pocket(&again));
                // The second slot, with the first in use.
                let y = p.get();
                assert!(in_pocket(&y));
                let yid = y.id;
                drop(y);
                let y2 = p.get();
                assert_eq!(
                    y2.id, yid,
                    "{what}, round {round}: the second slot's value moved"
                );
                drop(y2);
                drop(again);
                // On another thread: the hook runs there, on its pocket and
                // this thread's.
                let x = p.get_owned();
                let xid = x.id;
                std::thread::spawn(move || drop(x)).join().unwrap();
                let again = p.get();
                assert_eq!(again.id, xid, "{what}, round {round}: returned elsewhere");
                drop(again);
                let _ = p.put(l.make());
            }
        });
        assert!(
            knobs.reentered.load(SeqCst) > 0,
            "{what}: the hook never ran"
        );
        knobs.reenter_in_reset.store(false, SeqCst);
        knobs.reenter_in_retain.store(false, SeqCst);
        settle(what, &ledger, pool);
    }
}

/// What the hooks of a returned pocket value see of their own pool: the
/// value being returned still holds its slot, so it is not idle: `try_get`
/// finds nothing, `idle()` is 0 and `trim` drops nothing, when it is the
/// pool's only value, on the getter's thread and on another thread. And a
/// `create` hook that gets, returns and trims on the pool while a get refills
/// the pocket: that get's value still lands in the pocket.
#[test]
fn the_value_being_returned_is_not_idle_to_its_own_hooks() {
    type Probe = (bool, usize, usize);
    type ProbePool = BoxedPool<Tracked, spill::PerThread<Tracked>, StatsCounters>;
    let ledger = Ledger::new();
    let seen: Arc<Mutex<Vec<Probe>>> = Arc::new(Mutex::new(Vec::new()));
    let shared: Arc<OnceLock<Weak<ProbePool>>> = Arc::new(OnceLock::new());
    let in_create = Arc::new(AtomicBool::new(false));
    let probe = {
        let (seen, shared) = (Arc::clone(&seen), Arc::clone(&shared));
        move || {
            if IN_HOOK.with(|f| f.replace(true)) {
                return;
            }
            if let Some(pool) = shared.get().and_then(Weak::upgrade) {
                let found = pool.try_get().is_some();
                let idle = pool.idle();
                let trimmed = pool.trim();
                seen.lock().unwrap().push((found, idle, trimmed));
            }
            IN_HOOK.with(|f| f.set(false));
        }
    };
    let (p1, p2) = (probe.clone(), probe);
    let (l, sh, ic) = (
        Arc::clone(&ledger),
        Arc::clone(&shared),
        Arc::clone(&in_create),
    );
    let pool: Arc<ProbePool> = Arc::new(
        Pool::builder()
            .create(move || {
                if ic.load(SeqCst) && !IN_HOOK.with(|f| f.replace(true)) {
                    if let Some(pool) = sh.get().and_then(Weak::upgrade) {
                        let (a, b) = (pool.get(), pool.get());
                        a.use_for(|| b.use_for(|| ()));
                        drop((a, b));
                        pool.trim();
                        drop(pool.get());
                    }
                    IN_HOOK.with(|f| f.set(false));
                }
                l.make()
            })
            .reset(move |_: &mut Tracked| p1())
            .retain(move |_: &Tracked| {
                p2();
                true
            })
            .stats()
            .build_boxed(),
    );
    shared.set(Arc::downgrade(&pool)).unwrap();
    for round in 0..scaled(200) {
        let x = pool.get_owned();
        assert!(in_pocket(&x));
        let xid = x.id;
        if round % 2 == 0 {
            drop(x);
        } else {
            std::thread::spawn(move || drop(x)).join().unwrap();
        }
        let probes = std::mem::take(&mut *seen.lock().unwrap());
        // One probe from reset, one from retain: the value was not idle.
        assert_eq!(probes, [(false, 0, 0), (false, 0, 0)], "round {round}");
        let again = pool.get();
        assert_eq!(again.id, xid, "round {round}: the only value moved");
        drop(again);
        seen.lock().unwrap().clear();
        // Still the pool's only value.
        assert_eq!(pool.idle(), 1);
    }
    // `create` uses the pool while a get refills the pocket.
    pool.trim();
    seen.lock().unwrap().clear();
    in_create.store(true, SeqCst);
    for round in 0..scaled(200) {
        pool.trim();
        let g = pool.get();
        assert!(in_pocket(&g), "round {round}: {g:?}");
        let gid = g.id;
        g.use_for(|| ());
        // Its hooks' `trim` drops the value the `create` hook left idle, so
        // it is the only one again.
        drop(g);
        seen.lock().unwrap().clear();
        assert_eq!(pool.idle(), 1, "round {round}");
        let again = pool.get();
        assert_eq!(again.id, gid, "round {round}");
        drop(again);
        seen.lock().unwrap().clear();
    }
    in_create.store(false, SeqCst);
    settle("hooks see their value", &ledger, pool);
}

// ---------------------------------------------------------------------------
// `Drop` that uses the pool while the pool drops its value.
// ---------------------------------------------------------------------------

type OnDropPoolOf<S> =
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
            let pool: Arc<OnDropPoolOf<S>> = Arc::new(
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

/// A reset hook panics on a pocket value, so the ticket drops the value while
/// its slot is still in use, and the value's `Drop` gets (both slots and a
/// spilled value), `try_get`s, trims and decays on the same pool, on the
/// getter's thread and on another: the slot must end usable, everything
/// accounted for.
#[test]
fn drop_during_a_panicking_pocket_reset_uses_the_pool() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let fail = Arc::new(AtomicBool::new(false));
    let (h, l, f) = (Arc::clone(&hook), Arc::clone(&ledger), Arc::clone(&fail));
    type OnDropPool = Pool<
        OnDrop,
        Box<dyn Fn() -> OnDrop + Send + Sync>,
        Box<dyn Fn(&mut OnDrop) + Send + Sync>,
        spill::PerThread<OnDrop>,
        StatsCounters,
    >;
    let pool: Arc<OnDropPool> = Arc::new(
        Pool::builder()
            .create(Box::new(move || OnDrop {
                t: l.make(),
                hook: Arc::clone(&h),
            }) as Box<dyn Fn() -> OnDrop + Send + Sync>)
            .reset(Box::new(move |_: &mut OnDrop| {
                if f.swap(false, SeqCst) {
                    panic!("reset panicked (on purpose)");
                }
            }) as Box<dyn Fn(&mut OnDrop) + Send + Sync>)
            .stats()
            .build(),
    );
    let weak = Arc::downgrade(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let _ = hook.set(Box::new(move || {
        if IN_HOOK.with(|f| f.replace(true)) {
            return;
        }
        if let Some(pool) = weak.upgrade() {
            let (a, b, c) = (pool.get(), pool.get(), pool.get());
            a.t.use_for(|| b.t.use_for(|| c.t.use_for(|| ())));
            drop((c, b));
            if let Some(g) = pool.try_get() {
                g.t.use_for(|| ());
            }
            pool.trim();
            pool.decay();
            drop(a);
            r.fetch_add(1, SeqCst);
        }
        IN_HOOK.with(|f| f.set(false));
    }));
    for round in 0..scaled(1_000) {
        let what = format!("round {round}");
        for elsewhere in [false, true] {
            let (x, y) = (pool.get_owned(), pool.get_owned());
            assert!(in_pocket(&x) && in_pocket(&y), "{what}");
            let dropped = ledger.dropped();
            let (victim, other) = if round % 2 == 0 { (x, y) } else { (y, x) };
            fail.store(true, SeqCst);
            let r = if elsewhere {
                std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                    .join()
                    .unwrap()
            } else {
                catch_unwind(AssertUnwindSafe(|| drop(victim)))
            };
            assert!(r.is_err(), "{what}: the reset did not panic");
            assert!(
                ledger.dropped() > dropped,
                "{what}: the value was not dropped"
            );
            drop(other);
            let (a, b) = (pool.get(), pool.get());
            assert!(in_pocket(&a) && in_pocket(&b), "{what}");
            a.t.use_for(|| b.t.use_for(|| ()));
        }
        let s = pool.stats().unwrap();
        check_identities(&s, &what);
        assert_eq!(s.in_use, 0, "{what}: {s}");
        assert!(!ledger.double_use.load(SeqCst), "{what}");
        assert_eq!(ledger.created(), ledger.dropped() + pool.idle(), "{what}");
    }
    assert!(ran.load(SeqCst) > 0, "the value's Drop never used the pool");
    assert!(!ledger.double_use.load(SeqCst));
    drop(pool);
    assert_eq!(ledger.created(), ledger.dropped());
}

type OnDropCreate = Box<dyn Fn() -> OnDrop + Send + Sync>;
type OnDropReset = Box<dyn Fn(&mut OnDrop) + Send + Sync>;
type OnDropRetain = Box<dyn Fn(&OnDrop) -> bool + Send + Sync>;
type OnDropPool = Pool<
    OnDrop,
    OnDropCreate,
    Retaining<OnDropReset, OnDropRetain>,
    spill::PerThread<OnDrop>,
    StatsCounters,
>;

/// Owner-slot values dropped by the pool, in every way it drops them: a
/// panicking reset (the ticket drops the value while its slot is in use), a
/// refusing `retain`, on the owner thread and on another; `trim` on another
/// thread; `decay` twice. Each value's `Drop` gets (three deep), `try_get`s,
/// takes and puts, trims and decays on the same pool. Afterwards four gets
/// at once on the owner thread take both owner slots (a slot the drop left
/// empty is refilled) and its pocket's two, the dropped value never comes
/// back, and everything is accounted for.
#[test]
fn drop_of_a_first_thread_value_uses_the_pool() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let reset_panics = Arc::new(AtomicBool::new(false));
    let refuse = Arc::new(AtomicBool::new(false));
    let (h, l, rp, rf) = (
        Arc::clone(&hook),
        Arc::clone(&ledger),
        Arc::clone(&reset_panics),
        Arc::clone(&refuse),
    );
    let pool: Arc<OnDropPool> = Arc::new(
        Pool::builder()
            .create(Box::new(move || OnDrop {
                t: l.make(),
                hook: Arc::clone(&h),
            }) as OnDropCreate)
            .reset(Box::new(move |_: &mut OnDrop| {
                if rp.swap(false, SeqCst) {
                    panic!("reset panicked (on purpose)");
                }
            }) as OnDropReset)
            .retain(Box::new(move |_: &OnDrop| !rf.swap(false, SeqCst)) as OnDropRetain)
            .stats()
            .build(),
    );
    let weak = Arc::downgrade(&pool);
    let ran = Arc::new(AtomicUsize::new(0));
    let r = Arc::clone(&ran);
    let _ = hook.set(Box::new(move || {
        if IN_HOOK.with(|f| f.replace(true)) {
            return;
        }
        if let Some(pool) = weak.upgrade() {
            let (a, b, c) = (pool.get(), pool.get(), pool.get());
            a.t.use_for(|| b.t.use_for(|| c.t.use_for(|| ())));
            drop((c, b));
            if let Some(g) = pool.try_get() {
                g.t.use_for(|| ());
            }
            let t = PoolGuard::take(pool.get());
            let _ = pool.put(t);
            pool.trim();
            pool.decay();
            pool.decay();
            drop(a);
            r.fetch_add(1, SeqCst);
        }
        IN_HOOK.with(|f| f.set(false));
    }));
    let p = Arc::clone(&pool);
    let l = Arc::clone(&ledger);
    // A thread of its own: it becomes the owner.
    within(60, "Drop uses the pool", move || {
        // Four at once on the owner thread: whatever the hooks left where,
        // the owner slots serve two of them (an empty one is refilled), the
        // spill the other two.
        let check = |what: &str, gone: &[usize]| {
            let held: Vec<_> = (0..4).map(|_| p.get()).collect();
            let mut places: Vec<_> = held.iter().map(from).collect();
            places.sort_unstable();
            assert_eq!(places, [OWNER, OWNER, SPILL, SPILL], "{what}");
            assert!(
                held.iter().all(|g| !gone.contains(&g.t.id)),
                "{what}: a dropped value came back"
            );
            let ids: HashSet<usize> = held.iter().map(|g| g.t.id).collect();
            assert_eq!(ids.len(), 4, "{what}: a value handed out twice");
            held[0].t.use_for(|| {
                held[1]
                    .t
                    .use_for(|| held[2].t.use_for(|| held[3].t.use_for(|| ())))
            });
            drop(held);
            let s = p.stats().unwrap();
            check_identities(&s, what);
            assert_eq!(s.in_use, 0, "{what}: {s}");
            assert!(!l.double_use.load(SeqCst), "{what}");
            assert_eq!(l.created(), l.dropped() + p.idle(), "{what}");
        };
        for round in 0..scaled(300) {
            for slot in [0, 1] {
                for elsewhere in [false, true] {
                    for panics in [true, false] {
                        let what = format!(
                            "round {round}, slot {slot}, elsewhere {elsewhere}, reset panics {panics}"
                        );
                        let (a, b) = (p.get_owned(), p.get_owned());
                        assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                        let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                        let vid = victim.t.id;
                        let dropped = l.dropped();
                        if panics {
                            reset_panics.store(true, SeqCst);
                        } else {
                            refuse.store(true, SeqCst);
                        }
                        let result = if elsewhere {
                            std::thread::spawn(move || {
                                catch_unwind(AssertUnwindSafe(|| drop(victim)))
                            })
                            .join()
                            .unwrap()
                        } else {
                            catch_unwind(AssertUnwindSafe(|| drop(victim)))
                        };
                        assert_eq!(result.is_err(), panics, "{what}");
                        assert!(l.dropped() > dropped, "{what}: the value was not dropped");
                        drop(other);
                        check(&what, &[vid]);
                    }
                }
            }
            // Both owner slots idle; trim on another thread drops them.
            let (a, b) = (p.get(), p.get());
            let gone = [a.t.id, b.t.id];
            drop((a, b));
            let q = Arc::clone(&p);
            std::thread::spawn(move || q.trim()).join().unwrap();
            check(&format!("round {round}, trim"), &gone);
            // And decay, twice, on the owner thread.
            let (a, b) = (p.get(), p.get());
            let gone = [a.t.id, b.t.id];
            drop((a, b));
            p.decay();
            p.decay();
            check(&format!("round {round}, decay"), &gone);
        }
    });
    assert!(ran.load(SeqCst) > 0, "the value's Drop never used the pool");
    settle("Drop uses the pool", &ledger, pool);
}

// ---------------------------------------------------------------------------
// Values that hold guards of their own pool.
// ---------------------------------------------------------------------------

/// A node that may hold a guard of its own (static) pool; the reset hook
/// drops that inner guard, so returning a chain returns it link by link, each
/// return re-entering the pool while the outer links hold their pocket slots.
struct Node {
    t: Tracked,
    inner: Option<NodeGuard>,
}

type NodePool = Pool<Node, fn() -> Node, fn(&mut Node), spill::PerThread<Node>, StatsCounters>;
type NodeGuard =
    PoolGuard<'static, Node, fn() -> Node, fn(&mut Node), spill::PerThread<Node>, StatsCounters>;

fn node_ledger() -> &'static Arc<Ledger> {
    static LEDGER: OnceLock<Arc<Ledger>> = OnceLock::new();
    LEDGER.get_or_init(Ledger::new)
}

fn make_node() -> Node {
    Node {
        t: node_ledger().make(),
        inner: None,
    }
}

fn clear_node(node: &mut Node) {
    drop(node.inner.take());
}

fn node_pool() -> &'static NodePool {
    static POOL: OnceLock<NodePool> = OnceLock::new();
    POOL.get_or_init(|| {
        Pool::builder()
            .create(make_node as fn() -> Node)
            .reset(clear_node as fn(&mut Node))
            .stats()
            .build()
    })
}

/// A chain of `len` guards, each held inside the one before.
fn chain(len: usize) -> NodeGuard {
    let pool = node_pool();
    let mut guards: Vec<NodeGuard> = (0..len).map(|_| pool.get()).collect();
    let mut next = guards.pop().unwrap();
    while let Some(mut g) = guards.pop() {
        g.inner = Some(next);
        next = g;
    }
    next
}

/// Values that hold guards of their own pool: chains of 1 to 5 (longer than
/// the pocket) returned on this thread, on another, through `take` and `put`,
/// while a third thread trims and decays. Every link comes back once.
#[test]
fn values_that_hold_guards_of_their_own_pool() {
    let pool = node_pool();
    let ledger = node_ledger();
    let rounds = heavy(50_000);
    let done = AtomicBool::new(false);
    std::thread::scope(|s| {
        s.spawn(|| {
            for i in 0..rounds {
                let len = 1 + i % 5;
                let c = chain(len);
                c.t.use_for(|| ());
                match i % 4 {
                    0 => drop(c),
                    1 => {
                        let node = PoolGuard::take(c);
                        let _ = pool.put(node);
                    }
                    _ => {
                        let _ = c.inner.as_ref().map(|g| g.t.use_for(|| ()));
                        drop(c);
                    }
                }
            }
        });
        s.spawn(|| {
            for i in 0..rounds {
                let c = chain(1 + i % 4);
                if i % 2 == 0 {
                    std::thread::scope(|s2| {
                        s2.spawn(move || drop(c));
                    });
                } else {
                    drop(c);
                }
            }
            done.store(true, SeqCst);
        });
        s.spawn(|| {
            while !done.load(SeqCst) {
                pool.trim();
                pool.decay();
                std::thread::yield_now();
            }
        });
    });
    assert!(!ledger.double_use.load(SeqCst));
    let s = pool.stats().unwrap();
    check_identities(&s, "chains");
    assert_eq!(s.in_use, 0, "{s}");
    assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
    // Idle values hold no guards: the reset dropped them.
    pool.trim();
    assert_eq!(pool.idle(), 0);
    assert_eq!(ledger.created(), ledger.dropped());
}
