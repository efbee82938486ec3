//! Nested gets: a thread that holds more than one value at once. The
//! second value comes from the thread's second slot (inline on the first
//! thread and in a pocket, with a pending take settled out of line), the
//! rest from the strategy; every return order gives every value back, no
//! value is held by two guards, and hooks, panics, thieves, `trim`,
//! `decay`, `try_get`, guards returned on other threads and an exiting
//! first thread change none of that.
//!
//! Run in both barrier modes (`MEMPOOL_BARRIER=fence`: every take is pending
//! and settled out of line, for both slots) and in release and debug:
//!
//! ```text
//! cargo test --release --test nesting
//! MEMPOOL_BARRIER=fence cargo test --release --test nesting
//! ```

mod common;

use common::{
    check_identities, drop_in_order, from, hooked_pool, next_guard, permutations,
    reenter_three_deep, scaled, settle, tracked_pool, Knobs, Ledger, Tracked, TrackedPool, OWNER,
    POCKET, SPILL,
};
use mempool::{spill, Pool, PoolGuard};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier};

type OwnedTracked = mempool::OwnedPoolGuard<
    Tracked,
    common::Create,
    mempool::NoReset,
    spill::PerThread<Tracked>,
    mempool::StatsCounters,
>;

// ---------------------------------------------------------------------------
// Nesting, every depth and return order.
// ---------------------------------------------------------------------------

/// One nesting: `depth` gets, each value held under its own guard number
/// while nested (a double hand-out flags the ledger), the first two from the
/// caller's slots (`slots`: `OWNER` or `POCKET`) and the rest from the spill,
/// no value in two guards; then returned in `order`.
fn nest(pool: &TrackedPool, depth: usize, order: &[usize], slots: &str, what: &str) {
    let guards: Vec<_> = (0..depth).map(|_| pool.get()).collect();
    let gids: Vec<u64> = guards
        .iter()
        .map(|g| {
            let gid = next_guard();
            g.hold(gid);
            gid
        })
        .collect();
    for (i, g) in guards.iter().enumerate() {
        let want = if i < 2 { slots } else { SPILL };
        assert_eq!(
            from(g),
            want,
            "depth {depth} order {order:?} {what}: guard {i}"
        );
    }
    let mut ids: Vec<usize> = guards.iter().map(|g| g.id).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(
        ids.len(),
        depth,
        "a value handed out twice: {order:?} {what}"
    );
    for (g, gid) in guards.iter().zip(&gids) {
        g.release(*gid);
    }
    drop_in_order(guards, order);
}

/// Nested gets 1 to 4 deep on the pool's first thread, returned in every
/// order, twice per order: the first two come from the owner slots and the
/// rest from the spill, no two guards hold the same value, the second round
/// makes nothing (every value comes back and is reused), and the stats
/// identities hold after every round.
#[test]
fn nested_gets_in_every_order_on_the_first_thread() {
    for depth in 1..=4 {
        for order in permutations(depth) {
            let ledger = Ledger::new();
            let pool = tracked_pool(&ledger);
            for round in 0..2 {
                nest(&pool, depth, &order, OWNER, &format!("round {round}"));
                let s = pool.stats().unwrap();
                check_identities(&s, &format!("depth {depth} order {order:?} round {round}"));
                assert_eq!(s.in_use, 0);
                assert_eq!(s.creates, depth as u64, "round {round}: {s}");
                assert_eq!(pool.idle(), depth);
            }
            settle("nested every order", &ledger, pool);
        }
    }
}

/// The same on a thread that is not the first (its pocket of two, then the
/// spill), while the first thread holds both owner slots: every order 1 to
/// 4 deep, each guard held under its own number for the whole nesting (a
/// double hand-out flags the ledger), nothing made in the second round.
#[test]
fn nested_gets_in_every_order_on_another_thread() {
    for depth in 1..=4 {
        for order in permutations(depth) {
            let ledger = Ledger::new();
            let pool = tracked_pool(&ledger);
            let (a, b) = (pool.get(), pool.get());
            std::thread::scope(|s| {
                s.spawn(|| {
                    for round in 0..2 {
                        nest(&pool, depth, &order, POCKET, &format!("round {round}"));
                        let s = pool.stats().unwrap();
                        assert_eq!(s.creates, 2 + depth as u64, "round {round}: {s}");
                    }
                });
            });
            drop((a, b));
            assert!(!ledger.double_use.load(SeqCst));
            assert_eq!(pool.idle(), 2 + depth);
            settle("nested on another thread", &ledger, pool);
        }
    }
}

// ---------------------------------------------------------------------------
// The second slot's pending take racing thieves.
// ---------------------------------------------------------------------------

/// The first thread nests 2 and 3 deep in every return order, holding each
/// value under its own guard number for the whole nesting, while one thread
/// gets (and takes, so its pocket stays empty and its gets steal from the
/// owner slots), one trims and decays, and one `try_get`s. The second slot's
/// take races the thieves on every nested get (in fence mode, every take is
/// settled out of line). No value is ever held twice, and at the end the
/// identities hold and every value is idle or dropped once.
#[test]
fn second_slot_takes_race_thieves_trim_and_decay() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    drop(pool.get()); // this thread is the first
    let stop = AtomicBool::new(false);
    let sweeps = AtomicUsize::new(0);
    let rounds = scaled(30_000);
    let orders2 = permutations(2);
    let orders3 = permutations(3);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(SeqCst) {
                let g = pool.get();
                g.use_for(|| ());
                drop(PoolGuard::take(g));
            }
        });
        s.spawn(|| {
            let mut i = 0u32;
            while !stop.load(SeqCst) {
                i += 1;
                sweeps.fetch_add(1, SeqCst);
                if i % 2 == 0 {
                    pool.trim();
                } else {
                    pool.decay();
                }
            }
        });
        s.spawn(|| {
            while !stop.load(SeqCst) {
                if let Some(g) = pool.try_get() {
                    g.use_for(|| ());
                }
            }
        });
        for r in 0..rounds {
            let depth = 2 + r % 2;
            let guards: Vec<_> = (0..depth).map(|_| pool.get()).collect();
            let gids: Vec<u64> = guards
                .iter()
                .map(|g| {
                    let gid = next_guard();
                    g.hold(gid);
                    gid
                })
                .collect();
            for (g, gid) in guards.iter().zip(&gids) {
                g.release(*gid);
            }
            let order = if depth == 2 {
                &orders2[r / 2 % orders2.len()]
            } else {
                &orders3[r / 2 % orders3.len()]
            };
            drop_in_order(guards, order);
        }
        // Two cores, four threads: let the sweeper have its turns too.
        while sweeps.load(SeqCst) < 100 {
            std::thread::yield_now();
        }
        stop.store(true, SeqCst);
    });
    assert!(sweeps.load(SeqCst) >= 100, "the trim and decay loop ran");
    settle("second slot vs thieves", &ledger, pool);
}

/// `try_get` while nested: with the first slot in use and the second idle,
/// it takes the second (an owner-slot hit, nothing made); after another
/// thread's `trim` robbed the second slot (which still looks full to its
/// own thread), `try_get` settles that slot, finds nothing and makes
/// nothing; a `get` then refills the second slot. Likewise after another
/// thread's `get` took the second slot's value over.
#[test]
fn try_get_while_nested_settles_a_robbed_second_slot() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let a = pool.get();
    drop(pool.get()); // the second slot: idle
    assert_eq!(ledger.created(), 2);
    {
        let b = pool.try_get().expect("the second slot's idle value");
        assert_eq!(from(&b), OWNER);
        assert_ne!(a.id, b.id);
    }
    assert_eq!(ledger.created(), 2);
    std::thread::scope(|s| {
        s.spawn(|| assert_eq!(pool.trim(), 1));
    });
    assert!(pool.try_get().is_none(), "the second slot was robbed");
    assert_eq!(ledger.created(), 2);
    assert_eq!(pool.idle(), 0);
    let b = pool.get();
    assert_eq!(from(&b), OWNER, "the settled second slot takes a new value");
    assert_eq!(ledger.created(), 3);
    drop(b);
    // Another thread's get takes the idle second-slot value over.
    std::thread::scope(|s| {
        s.spawn(|| drop(PoolGuard::take(pool.get())));
    });
    assert_eq!(
        ledger.created(),
        3,
        "the other thread reused the second slot's value"
    );
    assert!(pool.try_get().is_none(), "the second slot was taken over");
    drop(a);
    let s = pool.stats().unwrap();
    check_identities(&s, "try_get nested");
    settle("try_get nested", &ledger, pool);
}

// ---------------------------------------------------------------------------
// Hooks on a second-slot return.
// ---------------------------------------------------------------------------

/// A `reset` and a `retain` that use their own pool (three deep, `try_get`,
/// take and put, trim, decay twice) while the value being returned still
/// holds the *second* owner slot, with the first slot in use and then idle:
/// the hooks hold the value while they run, so the ledger would record it
/// handed out or trimmed meanwhile. Asserts no double use, that the hooks
/// ran, and the final accounting.
#[test]
fn hooks_reenter_while_a_second_slot_value_is_returned() {
    for in_reset in [true, false] {
        let ledger = Ledger::new();
        let knobs = Arc::new(Knobs::default());
        let pool = hooked_pool(&ledger, &knobs, reenter_three_deep);
        let a = pool.get();
        let b = pool.get();
        assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
        if in_reset {
            knobs.reenter_in_reset.store(true, SeqCst);
        } else {
            knobs.reenter_in_retain.store(true, SeqCst);
        }
        drop(b); // second slot, first slot in use
        let b = pool.get();
        drop(a); // first slot, second in use
        drop(b); // second slot, first idle
        knobs.reenter_in_reset.store(false, SeqCst);
        knobs.reenter_in_retain.store(false, SeqCst);
        assert!(knobs.reentered.load(SeqCst) >= 3, "the hooks used the pool");
        assert!(!ledger.double_use.load(SeqCst), "in_reset {in_reset}");
        let s = pool.stats().unwrap();
        check_identities(&s, "hooks reenter on second slot");
        settle("hooks reenter on second slot", &ledger, pool);
    }
}

/// A second-slot value whose `reset` panics, or whose `retain` panics or
/// refuses: the value is dropped once, the second slot is left empty (the
/// next nested get makes a new value into it, never hands out the old one
/// half-reset), and the identities hold. Each case both with the first slot
/// held and on another thread's pocket.
#[test]
fn a_failing_hook_on_a_second_slot_return_empties_that_slot() {
    common::silence_expected_panics();
    for case in 0..3 {
        for on_pocket in [false, true] {
            let ledger = Ledger::new();
            let knobs = Arc::new(Knobs::default());
            let pool = hooked_pool(&ledger, &knobs, reenter_three_deep);
            let run = || {
                let a = pool.get();
                let b = pool.get();
                let want = if on_pocket { POCKET } else { OWNER };
                assert_eq!((from(&a), from(&b)), (want, want));
                let b_id = b.id;
                let made = ledger.created();
                let gone = ledger.dropped();
                match case {
                    0 => knobs.reset_panics.store(true, SeqCst),
                    1 => knobs.retain_panics.store(true, SeqCst),
                    _ => knobs.retain_refuses.store(true, SeqCst),
                }
                let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(b)));
                assert_eq!(r.is_err(), case < 2, "case {case}");
                assert_eq!(
                    ledger.dropped(),
                    gone + 1,
                    "case {case}: the value dropped once"
                );
                let c = pool.get();
                assert_eq!(from(&c), want, "case {case}: the second slot refilled");
                assert_ne!(c.id, b_id, "case {case}: the dropped value handed out");
                assert_eq!(ledger.created(), made + 1);
                drop((a, c));
            };
            if on_pocket {
                drop(PoolGuard::take(pool.get())); // the owner is this thread
                std::thread::scope(|s| {
                    s.spawn(run);
                });
            } else {
                run();
            }
            assert!(!ledger.double_use.load(SeqCst));
            settle("failing hook on the second slot", &ledger, pool);
        }
    }
}

// ---------------------------------------------------------------------------
// Guards of both slots on other threads; the first thread exiting.
// ---------------------------------------------------------------------------

/// The first thread gets both owner slots' values with `get_owned`, hands
/// one to each of two threads that drop them at the same moment, and at once
/// nests two gets of its own, many times. Values held under their guard
/// numbers; asserts no double use, at most four values ever made (two sent
/// out, two held by the first thread), and the accounting.
#[test]
fn both_slots_returned_on_other_threads_while_the_first_thread_nests() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let rounds = scaled(5_000);
    let go = Arc::new(Barrier::new(3));
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = mpsc::sync_channel::<OwnedTracked>(1);
        let go = Arc::clone(&go);
        workers.push(std::thread::spawn(move || {
            for g in rx {
                go.wait();
                drop(g);
            }
        }));
        senders.push(tx);
    }
    for _ in 0..rounds {
        let (a, b) = (pool.get_owned(), pool.get_owned());
        senders[0].send(a).unwrap();
        senders[1].send(b).unwrap();
        go.wait();
        let (c, d) = (pool.get(), pool.get());
        let (gc, gd) = (next_guard(), next_guard());
        c.hold(gc);
        d.hold(gd);
        assert_ne!(c.id, d.id);
        c.release(gc);
        d.release(gd);
        drop((d, c));
    }
    drop(senders);
    for w in workers {
        w.join().unwrap();
    }
    assert!(ledger.created() <= 4, "{} made", ledger.created());
    settle("both slots on other threads", &ledger, pool);
}

/// The first thread exits while a thread holds its second slot's guard (and
/// its first slot's value idle); the guard is dropped after the exit. Eight
/// later threads, one after another, each nest two gets: they reuse the two
/// values (taking them over from the gone thread's slots), make nothing,
/// and the accounting holds.
#[test]
fn the_first_thread_exits_holding_a_second_slot_guard() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let p = Arc::clone(&pool);
    let b = std::thread::spawn(move || {
        let a = p.get_owned();
        let b = p.get_owned();
        assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
        drop(a);
        b
    })
    .join()
    .unwrap();
    assert_eq!(pool.idle(), 1);
    drop(b);
    assert_eq!(pool.idle(), 2);
    for t in 0..8 {
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            let (x, y) = (p.get(), p.get());
            assert_ne!(x.id, y.id);
            drop((y, x));
        })
        .join()
        .unwrap();
        assert_eq!(ledger.created(), 2, "thread {t} made a value");
        assert_eq!(pool.idle(), 2);
    }
    let s = pool.stats().unwrap();
    check_identities(&s, "first thread gone");
    settle("first thread gone", &ledger, pool);
}

// ---------------------------------------------------------------------------
// Half-reset values under races.
// ---------------------------------------------------------------------------

/// Values that are `Vec<u64>`, reset with `clear`: four threads (the first
/// among them) nest 1 to 3 gets, check each value is empty (fully reset),
/// write their own mark into it, check the mark is still alone there before
/// returning it; others trim and decay meanwhile. A value handed out twice
/// or half-reset shows as a foreign mark or a non-empty vector.
#[test]
fn values_come_out_reset_and_unshared_under_races() {
    let pool = Pool::builder()
        .create(Vec::<u64>::new)
        .reset(Vec::clear)
        .stats()
        .build();
    drop(pool.get());
    let stop = AtomicBool::new(false);
    let bad = AtomicUsize::new(0);
    let rounds = scaled(20_000);
    std::thread::scope(|s| {
        s.spawn(|| {
            while !stop.load(SeqCst) {
                pool.trim();
                pool.decay();
            }
        });
        let worker = |t: u64| {
            for r in 0..rounds {
                let mut gs: Vec<_> = (0..1 + r % 3).map(|_| pool.get()).collect();
                for (i, g) in gs.iter_mut().enumerate() {
                    if !g.is_empty() {
                        bad.fetch_add(1, SeqCst);
                    }
                    g.push(t << 32 | (r as u64) << 2 | i as u64);
                }
                std::hint::black_box(&gs);
                for (i, g) in gs.iter().enumerate() {
                    if **g != [t << 32 | (r as u64) << 2 | i as u64] {
                        bad.fetch_add(1, SeqCst);
                    }
                }
                if r % 2 == 0 {
                    gs.reverse();
                }
                drop(gs);
            }
        };
        let hs: Vec<_> = (1..4).map(|t| s.spawn(move || worker(t))).collect();
        worker(0);
        for h in hs {
            h.join().unwrap();
        }
        stop.store(true, SeqCst);
    });
    assert_eq!(
        bad.load(SeqCst),
        0,
        "values handed out shared or half-reset"
    );
    let s = pool.stats().unwrap();
    check_identities(&s, "vectors");
    assert_eq!(s.in_use, 0);
}
