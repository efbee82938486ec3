//! Races: the fast paths of a slot's own thread racing threads that take
//! its idle values at the same moment (thieves in `get`, `trim` and `decay`
//! loops, a janitor), and guards of the first thread's two slots dropped at
//! the same moment on two threads. No value is ever held twice, none is
//! lost, and the counts stay exact.
//!
//! The groups: the first thread's fast path racing thieves and a `trim`
//! loop; `trim` and `decay` robbing the first thread's slots, then
//! `try_get`; a janitor racing the pockets' fast paths; guards dropped at
//! the same moment on two threads (the per-slot return counters).
//!
//! Run them in both builds (the races with thieves need a release build to
//! catch a missing barrier) and under both barriers:
//!
//! ```text
//! cargo test --test races
//! cargo test --release --test races
//! MEMPOOL_BARRIER=fence cargo test --release --test races
//! ```

mod common;

use common::{
    check_invariants, from, heavy, next_guard, settle, tracked_pool, tracked_with, under_valgrind,
    Create, Ledger, Tracked, OWNER,
};
use mempool::{spill, NoReset, OwnedPoolGuard, Pool, PoolGuard, Spill, StatsCounters};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};

type OwnedTracked =
    OwnedPoolGuard<Tracked, Create, NoReset, spill::PerThread<Tracked>, StatsCounters>;

/// Waits, spinning, for `done`; yields now and then (two cores, other tests
/// running, valgrind). No `spin_loop` hint: a `pause` takes up to 140 cycles,
/// and two threads leaving the same spin should leave it together.
fn spin_until(mut done: impl FnMut() -> bool) {
    let mut spins = 0u32;
    while !done() {
        spins += 1;
        if spins % 256 == 0 {
            std::thread::yield_now();
        }
    }
}

/// Sets its flag when dropped, panicking or not: a thread's "I am done"
/// signal, so that a thread waiting on it never spins forever after a failed
/// assertion.
struct SetOnDrop<'a>(&'a AtomicBool);

impl Drop for SetOnDrop<'_> {
    fn drop(&mut self) {
        self.0.store(true, SeqCst);
    }
}

/// A loop count for a test whose threads spin for each other: `n`, or
/// `valgrind` under valgrind.
fn spinning(n: usize, valgrind: usize) -> usize {
    if under_valgrind() {
        valgrind
    } else {
        n
    }
}

// ---------------------------------------------------------------------------
// The first thread's fast path racing thieves.
// ---------------------------------------------------------------------------

/// The owner gets and returns, one or two values at a time, through its
/// owner slots, while another thread keeps trimming, decaying, getting (and
/// taking, so that its own pocket stays empty and its gets go on to steal
/// from the owner slots) and `try_get`ting. No value is ever held twice, the
/// thief never gets an owner-slot guard, and everything is accounted for.
#[test]
fn the_owners_fast_path_races_thieves() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let cycles = spinning(
        if cfg!(debug_assertions) {
            100_000
        } else {
            400_000
        },
        500,
    );
    let stop = AtomicBool::new(false);
    let claimed = Barrier::new(2);
    let stolen = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (pool, stop, claimed, stolen) = (&pool, &stop, &claimed, &stolen);
        s.spawn(move || {
            drop(pool.get());
            claimed.wait();
            let _stop = SetOnDrop(stop);
            for i in 0..cycles {
                let a = pool.get();
                a.use_for(|| ());
                if i % 4 == 0 {
                    let b = pool.get();
                    a.use_for(|| b.use_for(|| ()));
                }
                drop(a);
                // A gap of shifting length with the values idle in the
                // owner slots, for the thief to find them.
                for _ in 0..i % 97 {
                    std::hint::spin_loop();
                }
            }
        });
        s.spawn(move || {
            claimed.wait();
            let mut i = 0usize;
            while !stop.load(SeqCst) {
                match i % 4 {
                    0 => {
                        stolen.fetch_add(pool.trim(), SeqCst);
                    }
                    1 => {
                        let g = pool.get();
                        assert_ne!(from(&g), OWNER, "the thief got an owner-slot guard");
                        g.use_for(|| ());
                        drop(PoolGuard::take(g));
                    }
                    2 => {
                        stolen.fetch_add(pool.decay(), SeqCst);
                    }
                    _ => {
                        if let Some(g) = pool.try_get() {
                            assert_ne!(from(&g), OWNER, "the thief got an owner-slot guard");
                            g.use_for(|| ());
                            drop(PoolGuard::take(g));
                        }
                    }
                }
                i += 1;
            }
        });
    });
    let s = pool.stats().unwrap();
    eprintln!(
        "owner racing thieves: {s}, trimmed or decayed {}",
        stolen.load(SeqCst)
    );
    assert!(s.slot_hits > 0, "{s}");
    settle("owner racing thieves", &ledger, pool);
}

/// The tightest race there is between the owner's take and a thief: the
/// owner takes one or both owner slots and returns them, as fast as it can;
/// another thread does nothing but `trim` (with `None`, whose `trim` has
/// nothing else to do than rob the owner slots). Without the thief's heavy
/// barrier both would go ahead with the same value now and then: a release
/// build sees it (the settle check fails) within a few million cycles; a
/// debug build is too slow on both sides to open the window.
#[test]
fn the_owners_take_races_a_trim_loop() {
    let ledger = Ledger::new();
    let pool = tracked_with(&ledger, spill::None);
    // A release build, where the race can show, runs them several times as
    // fast: twelve times as many.
    let cycles = heavy(if cfg!(debug_assertions) {
        500_000
    } else {
        6_000_000
    });
    let stop = AtomicBool::new(false);
    let claimed = Barrier::new(2);
    let stolen = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (pool, stop, claimed, stolen) = (&pool, &stop, &claimed, &stolen);
        s.spawn(move || {
            drop(pool.get());
            claimed.wait();
            let _stop = SetOnDrop(stop);
            for i in 0..cycles {
                let a = pool.get();
                if i % 2 == 0 {
                    let b = pool.get();
                    a.use_for(|| b.use_for(|| ()));
                } else {
                    a.use_for(|| ());
                }
            }
        });
        s.spawn(move || {
            claimed.wait();
            while !stop.load(SeqCst) {
                stolen.fetch_add(pool.trim(), SeqCst);
            }
        });
    });
    let s = pool.stats().unwrap();
    eprintln!(
        "owner's take against a trim loop: robbed {}, {s}",
        stolen.load(SeqCst)
    );
    assert_eq!(s.trimmed as usize, stolen.load(SeqCst), "{s}");
    settle("owner's take against a trim loop", &ledger, pool);
}

// ---------------------------------------------------------------------------
// `trim` and `decay` robbing the first thread's slots.
// ---------------------------------------------------------------------------

/// `trim` (on another thread, or on the owner thread itself) robs both owner
/// slots: the owner's `try_get` finds nothing and makes nothing, the robbed
/// slots settle to empty, and the next gets fill them with new values. With
/// one slot in use, `trim` robs only the other. After `decay` robbed them,
/// `try_get` finds the set-aside value and it goes back into an owner slot;
/// after a `put`, `try_get` finds the put value (in the owner's pocket with
/// `PerThread`, else refilled into the owner slot).
#[test]
fn try_get_on_the_owner_after_trim_robbed_its_slots() {
    fn check<S: Spill<Tracked> + Send + Sync + std::fmt::Debug>(name: &str, spill: S) {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        let elsewhere =
            |f: &(dyn Fn() -> usize + Sync)| std::thread::scope(|s| s.spawn(f).join().unwrap());
        let shows = |owner_slots: &str| {
            let shown = format!("{pool:?}");
            assert!(
                shown.contains(&format!("owner_slots: [{owner_slots}]")),
                "{name}: {shown}"
            );
        };
        for on_owner in [false, true] {
            let what = format!("{name}, trim on the owner {on_owner}");
            drop((pool.get(), pool.get()));
            let creates = pool.stats().unwrap().creates;
            shows("idle, idle");
            let trimmed = if on_owner {
                pool.trim()
            } else {
                elsewhere(&|| pool.trim())
            };
            assert_eq!(trimmed, 2, "{what}");
            assert_eq!(pool.idle(), 0, "{what}");
            shows("empty, empty");
            assert!(pool.try_get().is_none(), "{what}: try_get found a value");
            shows("empty, empty");
            let s = pool.stats().unwrap();
            assert_eq!(s.creates, creates, "{what}: try_get made a value: {s}");
            let (a, b) = (pool.get(), pool.get());
            assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
            assert_eq!(pool.stats().unwrap().creates, creates + 2, "{what}");
            drop((a, b));
        }
        // One slot in use: trim robs only the other.
        let a = pool.get();
        assert_eq!(from(&a), OWNER);
        drop(pool.get());
        shows("in use, idle");
        assert_eq!(elsewhere(&|| pool.trim()), 1, "{name}");
        assert!(pool.try_get().is_none(), "{name}: one slot in use");
        shows("in use, empty");
        let b = pool.get();
        assert_eq!(from(&b), OWNER, "{name}: the robbed slot was not refilled");
        drop((a, b));
        // Decay robs both; try_get finds a set-aside value and keeps it in an
        // owner slot, without making one.
        let creates = pool.stats().unwrap().creates;
        let ids: HashSet<usize> = {
            let (a, b) = (pool.get(), pool.get());
            [a.id, b.id].into()
        };
        assert_eq!(elsewhere(&|| pool.decay()), 0, "{name}");
        assert_eq!(pool.idle(), 2, "{name}");
        let t = pool.try_get().expect("a set-aside value");
        assert_eq!(
            from(&t),
            OWNER,
            "{name}: the set-aside value is not in an owner slot"
        );
        assert!(ids.contains(&t.id), "{name}");
        let u = pool.get();
        assert_eq!(from(&u), OWNER, "{name}");
        assert!(ids.contains(&u.id) && u.id != t.id, "{name}");
        assert_eq!(
            pool.stats().unwrap().creates,
            creates,
            "{name}: a value was made"
        );
        drop((t, u));
        // Trim, then put: try_get finds the put value.
        assert_eq!(elsewhere(&|| pool.trim()), 2, "{name}");
        let v = ledger.make();
        let vid = v.id;
        let _ = pool.put(v);
        // The robbed slots refused it, so it went to the spill; try_get
        // settles them and keeps the value in one.
        let t = pool.try_get().expect("the put value");
        assert_eq!(t.id, vid, "{name}");
        assert_eq!(from(&t), OWNER, "{name}");
        let u = pool.get();
        assert_eq!(from(&u), OWNER, "{name}");
        drop((t, u));
        settle(name, &ledger, pool);
    }
    check("PerThread", spill::PerThread::default());
    check("LockFree", spill::LockFree::default());
    check("Mutex", spill::Mutex::default());
}

// ---------------------------------------------------------------------------
// A janitor racing the pockets' fast paths.
// ---------------------------------------------------------------------------

/// Two workers get and return in loops (nested gets beyond the pocket,
/// `take` and `put`, owned guards handed to the other worker), while a
/// janitor runs `trim`, `decay`, `try_get`, `put`, `idle` and `Debug` from a
/// third thread: the pockets are robbed while their own threads take and
/// return. No value is held twice, none lost.
#[test]
fn a_janitor_races_the_pocket_fast_paths() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let rounds = heavy(1_000_000);
    let done = AtomicUsize::new(0);
    let janitor_rounds = AtomicUsize::new(0);
    std::thread::scope(|s| {
        let (tx0, rx0) = mpsc::sync_channel::<OwnedPoolGuard<_, _, _, _, _>>(2);
        let (tx1, rx1) = mpsc::sync_channel::<OwnedPoolGuard<_, _, _, _, _>>(2);
        for (tx, rx) in [(tx0, rx1), (tx1, rx0)] {
            let (pool, done, janitor_rounds) = (&pool, &done, &janitor_rounds);
            s.spawn(move || {
                let chunk = (rounds / 50).max(1);
                for i in 0..rounds {
                    if i % chunk == 0 {
                        // Let the janitor in, even where threads run one at
                        // a time (valgrind): forty of its rounds per chunk.
                        while janitor_rounds.load(SeqCst) < 40 * (i / chunk) {
                            std::thread::yield_now();
                        }
                    }
                    let a = pool.get();
                    let ga = next_guard();
                    a.hold(ga);
                    match i % 6 {
                        0 => {
                            let (b, c) = (pool.get(), pool.get());
                            b.use_for(|| c.use_for(|| ()));
                        }
                        1 => {
                            let t = PoolGuard::take(pool.get());
                            t.use_for(|| ());
                            let _ = pool.put(t);
                        }
                        2 => {
                            let g = pool.get_owned();
                            g.use_for(|| ());
                            let _ = tx.try_send(g);
                        }
                        3 => {
                            if let Some(g) = pool.try_get() {
                                g.use_for(|| ());
                            }
                        }
                        _ => {}
                    }
                    while let Ok(g) = rx.try_recv() {
                        g.use_for(|| ());
                    }
                    a.release(ga);
                }
                drop(tx);
                for g in rx {
                    g.use_for(|| ());
                }
                done.fetch_add(1, SeqCst);
            });
        }
        s.spawn(|| {
            while done.load(SeqCst) < 2 {
                match janitor_rounds.fetch_add(1, SeqCst) % 5 {
                    0 => drop(pool.trim()),
                    1 => drop(pool.decay()),
                    2 => {
                        if let Some(g) = pool.try_get() {
                            g.use_for(|| ());
                        }
                    }
                    3 => drop(pool.put(ledger.make())),
                    _ => {
                        let _ = (pool.idle(), format!("{pool:?}"), pool.stats());
                    }
                }
                std::thread::yield_now();
            }
        });
    });
    let s = pool.stats().unwrap();
    eprintln!("janitor rounds: {}; {s}", janitor_rounds.load(SeqCst));
    assert!(
        s.trimmed + s.decayed > 0,
        "the janitor never took a value: {s}"
    );
    settle("janitor", &ledger, pool);
}

// ---------------------------------------------------------------------------
// Guards dropped at the same moment on two threads.
// ---------------------------------------------------------------------------

/// The owner takes both owner slots with `get_owned`, sends one guard to
/// each of two worker threads, and the workers drop them at the same moment
/// (they spin until both have theirs), many times. Each owner slot's return
/// counter has one writer at a time, so no return is lost: afterwards
/// `gets == returns` exactly, `in_use` is 0, and every get after the first
/// two was an owner-slot hit.
#[test]
fn first_thread_guards_dropped_at_once_on_two_threads_keep_exact_stats() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let rounds = spinning(20_000, 200);
    // Both workers report in and spin until both are in: then they drop at
    // (nearly) the same moment.
    let arrived = Arc::new(AtomicUsize::new(0));
    let (done_tx, done_rx) = mpsc::channel::<()>();
    let mut senders = Vec::new();
    let mut workers = Vec::new();
    for _ in 0..2 {
        let (tx, rx) = mpsc::sync_channel::<(OwnedTracked, u64)>(1);
        let (arrived, done) = (Arc::clone(&arrived), done_tx.clone());
        workers.push(std::thread::spawn(move || {
            for (round, (g, gid)) in (1..).zip(rx) {
                g.release(gid);
                arrived.fetch_add(1, SeqCst);
                spin_until(|| arrived.load(SeqCst) >= 2 * round);
                drop(g);
                done.send(()).unwrap();
            }
        }));
        senders.push(tx);
    }
    for round in 0..rounds {
        let (a, b) = (pool.get_owned(), pool.get_owned());
        if round % 64 == 0 {
            assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "round {round}");
        }
        let (ga, gb) = (next_guard(), next_guard());
        a.hold(ga);
        b.hold(gb);
        let (first, second) = if round % 2 == 0 {
            ((a, ga), (b, gb))
        } else {
            ((b, gb), (a, ga))
        };
        senders[0].send(first).unwrap();
        senders[1].send(second).unwrap();
        done_rx.recv().unwrap();
        done_rx.recv().unwrap();
    }
    drop(senders);
    for w in workers {
        w.join().unwrap();
    }
    no_return_lost(&pool.stats().unwrap(), rounds);
    settle("two returners at once", &ledger, pool);
}

/// The counts after `rounds` rounds of two owner-slot gets, both returned:
/// two values made, every get after the first two an owner-slot hit, and
/// every return counted.
#[track_caller]
fn no_return_lost(s: &mempool::Stats, rounds: usize) {
    let gets = 2 * rounds as u64;
    assert_eq!(s.gets, gets, "{s}");
    assert_eq!(s.returns, gets, "owner-slot returns were lost: {s}");
    assert_eq!((s.in_use, s.creates, s.idle), (0, 2, 2), "{s}");
    assert_eq!(s.slot_hits, gets - 2, "{s}");
    check_invariants(s);
}

/// The same race, faster and with two threads only (so both run at once on
/// two cores): the owner takes both owner slots, hands one guard to the
/// other thread, and the two drop theirs at the same moment; the owner
/// waits for the other's return before it takes again, so every get is an
/// owner-slot hit and every return an owner-slot return. Not one return may
/// be lost.
#[test]
fn the_owner_and_another_thread_return_both_first_thread_slots_at_once() {
    type Guard<'a> =
        PoolGuard<'a, Tracked, Create, NoReset, spill::PerThread<Tracked>, StatsCounters>;
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let rounds = spinning(100_000, 300);
    let cell: Mutex<Option<(Guard<'_>, u64)>> = Mutex::new(None);
    let arrived = AtomicUsize::new(0);
    let returned = AtomicUsize::new(0);
    let (owner_done, other_done) = (AtomicBool::new(false), AtomicBool::new(false));
    let places: Mutex<Vec<[&str; 2]>> = Mutex::default();
    std::thread::scope(|s| {
        let (pool, cell, arrived, returned, places) = (&pool, &cell, &arrived, &returned, &places);
        let (owner_done, other_done) = (&owner_done, &other_done);
        s.spawn(move || {
            let _done = SetOnDrop(other_done);
            for round in 1..=rounds {
                let mut taken = None;
                spin_until(|| {
                    taken = cell.lock().unwrap().take();
                    taken.is_some() || owner_done.load(SeqCst)
                });
                let Some((g, gid)) = taken else { return };
                g.release(gid);
                arrived.fetch_add(1, SeqCst);
                spin_until(|| arrived.load(SeqCst) >= 2 * round);
                drop(g);
                returned.store(round, SeqCst);
            }
        });
        // The owner: a thread of its own, the pool's first user.
        s.spawn(move || {
            let _done = SetOnDrop(owner_done);
            for round in 1..=rounds {
                let (a, b) = (pool.get(), pool.get());
                if round % 256 == 1 {
                    places.lock().unwrap().push([from(&a), from(&b)]);
                }
                let (mine, theirs) = if round % 2 == 0 { (a, b) } else { (b, a) };
                let gid = next_guard();
                theirs.hold(gid);
                *cell.lock().unwrap() = Some((theirs, gid));
                arrived.fetch_add(1, SeqCst);
                spin_until(|| arrived.load(SeqCst) >= 2 * round);
                drop(mine);
                spin_until(|| returned.load(SeqCst) >= round || other_done.load(SeqCst));
            }
        });
    });
    drop(cell);
    let places = places.into_inner().unwrap();
    assert!(places.iter().all(|p| *p == [OWNER, OWNER]), "{places:?}");
    no_return_lost(&pool.stats().unwrap(), rounds);
    settle("the owner and another thread return at once", &ledger, pool);
}

// ---------------------------------------------------------------------------
// The barrier mode.
// ---------------------------------------------------------------------------

/// The run is in the barrier mode it was asked for, so that a run with
/// `MEMPOOL_BARRIER=fence` does test the fallback.
#[test]
fn the_barrier_mode_is_the_one_asked_for() {
    // Make sure a pool has made its slots (which fixes the mode) first.
    drop(Pool::new(|| 0u8).get());
    let forced = std::env::var_os("MEMPOOL_BARRIER").is_some_and(|v| v == "fence");
    let uses = mempool_policies::barrier::uses_membarrier();
    eprintln!("membarrier: {uses}");
    if forced {
        assert!(!uses, "MEMPOOL_BARRIER=fence, yet membarrier is used");
    }
}
