//! Ceilings: `Bounded::new(n)` keeps at most `n` idle values, the first
//! thread's slots and the values `decay` set aside included, at every
//! moment: while the first thread makes a value for its slot, under six
//! threads mixing every operation, when nested, with `put` from any thread
//! and from thread exit. A refused `put` costs no set-aside value, and a
//! set-aside value whose `Drop` panics leaves the stats right.
//!
//! ```text
//! cargo test --release --test ceiling
//! MEMPOOL_BARRIER=fence cargo test --release --test ceiling
//! ```

mod common;

use common::{
    at_exit, check_identities, drop_in_order, fire, from, permutations, scaled, settle,
    tracked_with, Ledger, OnDrop, Tracked, EARLY, LATE, SPILL,
};
use mempool::{spill, Pool, PoolGuard};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};

// ---------------------------------------------------------------------------
// Small ceilings.
// ---------------------------------------------------------------------------

/// `Bounded::new(0)` panics, as documented (a ceiling of 0 keeps nothing).
#[test]
fn a_ceiling_of_zero_is_refused() {
    common::silence_expected_panics();
    let r = std::panic::catch_unwind(|| spill::Bounded::<u8>::new(0));
    let Err(msg) = r else {
        panic!("Bounded::new(0) did not panic");
    };
    let text = msg
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| msg.downcast_ref::<String>().cloned());
    assert!(text.unwrap_or_default().contains("Bounded::new(0)"));
}

/// `Bounded::new(1)`, `(2)`, `(3)` on the first thread nested 4 deep keep at most `n` idle after the
/// values come back, in every return order, with the identities holding.
#[test]
fn small_ceilings_hold_when_nested() {
    for n in 1..=3 {
        for order in permutations(4) {
            let ledger = Ledger::new();
            let pool = tracked_with(&ledger, spill::Bounded::new(n));
            for _ in 0..2 {
                let guards: Vec<_> = (0..4).map(|_| pool.get()).collect();
                for (i, g) in guards.iter().enumerate() {
                    if i >= n.min(2) {
                        assert_eq!(from(g), SPILL, "n {n}: guard {i} has no slot");
                    }
                }
                drop_in_order(guards, &order);
                assert!(pool.idle() <= n, "Bounded::new({n}): {} idle", pool.idle());
                check_identities(&pool.stats().unwrap(), "small ceiling");
            }
            settle("small ceiling", &ledger, pool);
        }
    }
}

/// The ceiling "at every moment": the first thread's get finds nothing idle
/// and calls `create`, which takes its time (here: until told to go on).
/// Meanwhile another thread puts values until the pool refuses, decays, and
/// puts again until refused, filling the pool to its ceiling. When `create`
/// returns, the new value goes into an empty owner slot, and when it comes
/// back the pool must still hold at most `n` idle values.
#[test]
fn the_ceiling_holds_while_the_first_thread_creates() {
    for n in [4usize, 8] {
        let ledger = Ledger::new();
        let armed = Arc::new(AtomicBool::new(false));
        let (entered_tx, entered_rx) = mpsc::channel::<()>();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let gate = Arc::new(Mutex::new((entered_tx, go_rx)));
        let l = Arc::clone(&ledger);
        let (armed2, gate2) = (Arc::clone(&armed), Arc::clone(&gate));
        let pool = Arc::new(
            Pool::builder()
                .create(move || {
                    if armed2.swap(false, SeqCst) {
                        let gate = gate2.lock().unwrap();
                        gate.0.send(()).unwrap();
                        gate.1.recv().unwrap();
                    }
                    l.make()
                })
                .spill(spill::Bounded::new(n))
                .stats()
                .build(),
        );
        let p = Arc::clone(&pool);
        let first = std::thread::spawn(move || {
            drop(PoolGuard::take(p.get())); // the first thread; its slots empty
            armed.store(true, SeqCst);
            let g = p.get(); // creates, slowly
            let place = from(&g);
            drop(g);
            place
        });
        entered_rx.recv().unwrap();
        // Fill the pool to exactly its ceiling (no put at the ceiling: one
        // would drop a set-aside value, see `a_refused_put_...`); `decay`
        // when the spill is full, so the set-aside values make the rest.
        let mut kept = 0;
        while pool.idle() < n {
            if pool.put(ledger.make()).is_ok() {
                kept += 1;
            } else {
                pool.decay();
            }
        }
        let idle_before = pool.idle();
        go_tx.send(()).unwrap();
        let place = first.join().unwrap();
        let idle = pool.idle();
        let s = pool.stats().unwrap();
        check_identities(&s, "ceiling while creating");
        assert!(
            idle <= n,
            "Bounded::new({n}): {idle} idle after the first thread's created value came back \
             into its {place}; {idle_before} were idle before (put kept {kept}); {s}"
        );
        settle("ceiling while creating", &ledger, pool);
    }
}

/// `Bounded::new(n)` for n = 1, 2, 3, 5 under six threads mixing nested
/// gets, takes, puts (kept or refused), `decay`, `trim` and `prefill`, with
/// a quiescent point (all threads at a barrier, holding nothing) every
/// round: there the pool holds at most `n` idle values and the stats
/// identities hold; no value is ever held twice; at the end everything is
/// accounted for.
#[test]
fn the_ceiling_holds_under_six_threads() {
    const THREADS: usize = 6;
    for n in [1usize, 2, 3, 5] {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill::Bounded::new(n));
        let rounds = scaled(300);
        let barrier = Barrier::new(THREADS);
        let over = Mutex::new(Vec::new());
        std::thread::scope(|s| {
            for t in 0..THREADS {
                let (pool, ledger, barrier, over) = (&pool, &ledger, &barrier, &over);
                s.spawn(move || {
                    for r in 0..rounds {
                        // A panic must not leave the others at the barrier: it is
                        // recorded, and the thread goes on to the barrier.
                        let work = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                            for i in 0..20 {
                                match (t + i + r) % 7 {
                                    0 | 1 => {
                                        let gs: Vec<_> =
                                            (0..1 + (i + t) % 3).map(|_| pool.get()).collect();
                                        for g in &gs {
                                            g.use_for(|| ());
                                        }
                                        drop_in_order(gs.into_iter().rev().collect(), &[]);
                                    }
                                    2 => drop(PoolGuard::take(pool.get())),
                                    3 => {
                                        let _ = pool.put(ledger.make());
                                    }
                                    4 => {
                                        pool.decay();
                                    }
                                    5 => {
                                        if i % 3 == 0 {
                                            pool.trim();
                                        } else {
                                            pool.prefill(2);
                                        }
                                    }
                                    _ => {
                                        let a = pool.get();
                                        let b = pool.try_get();
                                        a.use_for(|| ());
                                        drop(b);
                                    }
                                }
                            }
                        }));
                        if work.is_err() {
                            over.lock()
                                .unwrap()
                                .push(format!("thread {t} round {r}: a panic"));
                        }
                        if barrier.wait().is_leader() {
                            let idle = pool.idle();
                            let s = pool.stats().unwrap();
                            if idle > n {
                                over.lock()
                                    .unwrap()
                                    .push(format!("round {r}: {idle} idle; {s}"));
                            }
                            let what = format!("Bounded::new({n}) round {r}");
                            if std::panic::catch_unwind(|| check_identities(&s, &what)).is_err() {
                                over.lock()
                                    .unwrap()
                                    .push(format!("{what}: identities: {s}"));
                            }
                        }
                        barrier.wait();
                    }
                });
            }
        });
        let over = over.into_inner().unwrap();
        assert!(
            over.is_empty(),
            "Bounded::new({n}) broke its ceiling (or its books) at {} quiescent points, first: {}",
            over.len(),
            over[0]
        );
        settle("ceiling under six threads", &ledger, pool);
    }
}

/// A set-aside value is dropped to make room only for a value that then
/// takes its place: with `Bounded::new(3)` at its ceiling after `decay` (two
/// set aside, one in the spill, the first thread's slots robbed by `decay`
/// so they refuse values until taken from), a `put` that the pool refuses
/// must leave the pool as it was, not destroy a set-aside value as well.
#[test]
fn a_refused_put_destroys_no_set_aside_value() {
    let ledger = Ledger::new();
    let pool = tracked_with(&ledger, spill::Bounded::new(3));
    drop((pool.get(), pool.get())); // both owner slots idle
    assert_eq!(pool.decay(), 0); // two set aside, the slots robbed
    assert!(pool.put(ledger.make()).is_ok()); // the spill's one
    assert_eq!(pool.idle(), 3);
    let before = pool.stats().unwrap();
    let r = pool.put(ledger.make());
    let after = pool.stats().unwrap();
    check_identities(&after, "refused put");
    if r.is_err() {
        assert_eq!(
            (pool.idle(), after.decayed),
            (3, before.decayed),
            "the put was refused, yet a set-aside value was dropped for it: before {before}, \
             after {after}"
        );
    }
    drop(r);
    settle("refused put", &ledger, pool);
}

/// A set-aside value whose `Drop` panics when a return at the ceiling drops
/// it to make room: the panic goes on (out of `put`), but the value being
/// put is accounted for: `creates + puts == idle + in_use + discarded +
/// rejected + decayed + trimmed + taken` still holds, and every value is
/// dropped once.
#[test]
fn a_panicking_set_aside_value_dropped_at_the_ceiling_keeps_the_books() {
    common::silence_expected_panics();
    let ledger = Ledger::new();
    let bomb = Arc::new(AtomicBool::new(false));
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let b = Arc::clone(&bomb);
    hook.set(Box::new(move || {
        if fire(&b) {
            panic!("a set-aside value's drop panicked (on purpose)");
        }
    }))
    .ok()
    .unwrap();
    let (l, h) = (Arc::clone(&ledger), Arc::clone(&hook));
    let make = move || OnDrop {
        t: l.make(),
        hook: Arc::clone(&h),
    };
    let pool = Pool::builder()
        .create(make.clone())
        .spill(spill::Bounded::new(3))
        .stats()
        .build();
    drop((pool.get(), pool.get()));
    assert!(pool.put(make()).is_ok());
    assert_eq!(pool.idle(), 3);
    assert_eq!(pool.decay(), 0); // all three set aside
    assert_eq!(pool.idle(), 3);
    bomb.store(true, SeqCst);
    let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.put(make())));
    assert!(r.is_err(), "the set-aside value's drop panicked");
    let s = pool.stats().unwrap();
    assert_eq!(
        ledger.created(),
        ledger.dropped() + pool.idle(),
        "created == dropped + idle"
    );
    check_identities(&s, "a set-aside value panicked while a put made room");
    drop(pool);
    assert_eq!(ledger.created(), ledger.dropped());
}

/// The ceiling's lock is never held while a value is dropped: set-aside
/// values whose `Drop` uses the same pool (`get`, `put`, `trim`, `decay`)
/// while a `put` at the ceiling makes room for a new value, and while
/// `decay` drops them, finish (a drop under the lock would deadlock here),
/// keep the ceiling, and leave every value accounted for.
#[test]
fn set_aside_values_whose_drop_uses_the_pool() {
    type Reentrant = Pool<
        OnDrop,
        Box<dyn Fn() -> OnDrop + Send + Sync>,
        mempool::NoReset,
        spill::Bounded<OnDrop>,
        mempool::StatsCounters,
    >;
    let ledger = Ledger::new();
    let hook: Arc<OnceLock<Box<dyn Fn() + Send + Sync>>> = Arc::new(OnceLock::new());
    let (l, h) = (Arc::clone(&ledger), Arc::clone(&hook));
    let make = move || OnDrop {
        t: l.make(),
        hook: Arc::clone(&h),
    };
    let pool: Arc<Reentrant> = Arc::new(
        Pool::builder()
            .create(Box::new(make.clone()) as Box<dyn Fn() -> OnDrop + Send + Sync>)
            .spill(spill::Bounded::new(3))
            .stats()
            .build(),
    );
    let weak = Arc::downgrade(&pool);
    // The hook holds no `make` (which holds the hook): no cycle to leak.
    let reentered = Arc::new(AtomicUsize::new(0));
    let count = Arc::clone(&reentered);
    hook.set(Box::new(move || {
        // Only the outermost drop re-enters, so the drops it causes end.
        if IN_DROP.with(|d| d.replace(true)) {
            return;
        }
        if let Some(pool) = weak.upgrade() {
            count.fetch_add(1, SeqCst);
            let taken = PoolGuard::take(pool.get());
            let _ = pool.put(taken);
            pool.trim();
            pool.decay();
        }
        IN_DROP.with(|d| d.set(false));
    }))
    .ok()
    .unwrap();
    thread_local!(static IN_DROP: std::cell::Cell<bool> = const { std::cell::Cell::new(false) });
    for round in 0..3 {
        drop((pool.get(), pool.get()));
        let _ = pool.put(make());
        assert_eq!(pool.idle(), 3, "round {round}");
        assert_eq!(pool.decay(), 0, "round {round}: all three set aside");
        // At the ceiling: a set-aside value makes room, and its drop uses
        // the pool.
        assert!(pool.put(make()).is_ok(), "round {round}");
        assert!(pool.idle() <= 3, "round {round}: {}", pool.idle());
        // And `decay` drops the rest, each drop using the pool.
        pool.decay();
        assert!(pool.idle() <= 3, "round {round}: {}", pool.idle());
        check_identities(&pool.stats().unwrap(), &format!("round {round}"));
    }
    assert!(reentered.load(SeqCst) >= 3, "the drops used the pool");
    drop(pool);
    assert_eq!(ledger.created(), ledger.dropped());
}

// ---------------------------------------------------------------------------
// `put` from other threads, and during thread exit.
// ---------------------------------------------------------------------------

/// Threads that are not the first put values, return guards and put again
/// from their thread-locals' destructors (registered before and after the
/// pool's own per-thread state), with `Bounded::new(1..=3)` and `PerThread`:
/// nothing panics, a bounded pool holds at most `n` idle values afterwards,
/// the identities hold and every value is accounted for.
#[test]
fn puts_from_other_threads_and_from_thread_exit() {
    fn run<S: mempool::Spill<Tracked> + Send + Sync + 'static>(
        what: &str,
        spill: S,
        ceiling: Option<usize>,
    ) {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        drop(pool.get()); // this thread is the first
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let (pool, ledger) = (Arc::clone(&pool), Arc::clone(&ledger));
                std::thread::spawn(move || {
                    let _ = pool.put(ledger.make());
                    let g = pool.get_owned();
                    let (p1, l1) = (Arc::clone(&pool), Arc::clone(&ledger));
                    let (p2, l2) = (Arc::clone(&pool), Arc::clone(&ledger));
                    if t % 2 == 0 {
                        EARLY.with(|_| ());
                        drop(pool.get());
                    } else {
                        drop(pool.get());
                        EARLY.with(|_| ());
                    }
                    at_exit(&EARLY, move || {
                        drop(g);
                        let _ = p1.put(l1.make());
                        drop(p1.get());
                    });
                    at_exit(&LATE, move || {
                        let _ = p2.put(l2.make());
                        let x = p2.get();
                        let _ = p2.put(PoolGuard::take(x));
                    });
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        if let Some(n) = ceiling {
            assert!(pool.idle() <= n, "{what}: {} idle", pool.idle());
        }
        check_identities(&pool.stats().unwrap(), what);
        settle(what, &ledger, pool);
    }
    for n in 1..=3 {
        run(
            &format!("Bounded::new({n})"),
            spill::Bounded::new(n),
            Some(n),
        );
    }
    run("PerThread", spill::PerThread::default(), None);
}
