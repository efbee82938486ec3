//! Attacks on the owner slots: every pool, the default `PerThread` one
//! included, gives the first thread that uses it two slots inside the pool
//! (a `Pocket`), which that thread takes from and returns to with plain loads
//! and stores, and from which any other thread may steal idle values through
//! the asymmetric barrier. A get tries the owner slots (on the owner thread
//! only), then the calling thread's pocket (`PerThread`), then the cold path.
//! Owner-slot returns are counted per owner slot, since both tickets may be
//! returned at once on two threads.
//!
//! The attacks: an owner that exits with values idle in both owner slots
//! (reuse, `trim`, `decay` from other threads); nesting 1 to 6 deep with
//! returns in every order; owner-slot guards dropped at the same moment on two
//! other threads (the per-slot return counters); owner-slot guards kept in
//! thread-locals of the owner and of another thread; hooks and `Drop` impls
//! that use the pool while an owner slot's value is being returned or
//! dropped; panics in `reset`, `retain` and `Drop` of owner-slot values;
//! `try_get` after `trim` or `decay` robbed the owner slots; one-way
//! pipelines with the owner at either end; a short-lived first user and
//! many threads by turns; the owner's fast path racing thieves; `take` of
//! owner-slot values on other threads; forgotten owner-slot guards; pools
//! that move with values idle in their owner slots.
//!
//! Run them in both builds (the two races with thieves need a release build
//! to catch a missing barrier) and under both barriers:
//!
//! ```text
//! cargo test --test attack_owner
//! cargo test --release --test attack_owner
//! MEMPOOL_BARRIER=fence cargo test --test attack_owner
//! ```

mod common;

use common::{
    at_exit, check_identities, check_invariants, from_a_slot, heavy, hooked_pool, next_guard,
    scaled, settle, silence_expected_panics, tracked_pool, tracked_with, within, Create, Hooked,
    Knobs, Ledger, OnDrop, Tracked, TrackedPool, EARLY, LATE,
};
use mempool::{spill, NoReset, OwnedPoolGuard, Pool, PoolGuard, Retaining, Spill, StatsCounters};
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};

const OWNER: &str = "owner slot";
const POCKET: &str = "pocket";
const SPILL: &str = "spill";

/// Where a guard's value lives, from its `Debug`: "owner slot", "pocket" or
/// "spill".
fn from(guard: &impl std::fmt::Debug) -> &'static str {
    let shown = format!("{guard:?}");
    for place in [OWNER, POCKET, SPILL] {
        if shown.ends_with(&format!("from: \"{place}\" }}")) {
            assert_eq!(from_a_slot(guard), place != SPILL, "{shown}");
            return place;
        }
    }
    panic!("a guard from nowhere: {shown}")
}

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

/// Whether the tests run under valgrind (`.ci/run` sets
/// `MEMPOOL_STRESS_CYCLES` there), where threads run one at a time, so that
/// a thread spinning for another waits for a thread switch.
fn under_valgrind() -> bool {
    std::env::var_os("MEMPOOL_STRESS_CYCLES").is_some()
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

/// Every order of `0..n`.
fn permutations(n: usize) -> Vec<Vec<usize>> {
    if n == 0 {
        return vec![Vec::new()];
    }
    let mut out = Vec::new();
    for p in permutations(n - 1) {
        for i in 0..=p.len() {
            let mut q = p.clone();
            q.insert(i, n - 1);
            out.push(q);
        }
    }
    out
}

thread_local! {
    /// Set while a hook or a `Drop` uses its pool, so that what that use
    /// runs does not use it again (endless recursion would be the user's
    /// bug).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

// ---------------------------------------------------------------------------
// The owner exits with values idle in both owner slots.
// ---------------------------------------------------------------------------

/// A short-lived owner leaves values idle in both owner slots and exits. A
/// later thread holding two at once gets exactly those two (stolen, counted
/// as slot hits, never an "owner slot" guard: it is not the owner), nothing
/// is made; then ten more threads reuse them too, with every strategy that
/// keeps values.
#[test]
fn an_exited_owners_idle_values_are_reused_by_later_threads() {
    for_each_spill!(|name, spill| {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        let p = Arc::clone(&pool);
        let ids = std::thread::spawn(move || {
            let (a, b) = (p.get(), p.get());
            assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{name}");
            HashSet::from([a.id, b.id])
        })
        .join()
        .unwrap();
        assert_eq!(pool.idle(), 2, "{name}");
        let shown = format!("{pool:?}");
        assert!(
            shown.contains("owner_slots: [idle, idle]"),
            "{name}: {shown}"
        );

        let p = Arc::clone(&pool);
        let (got, places) = std::thread::spawn(move || {
            let (a, b) = (p.get(), p.get());
            a.use_for(|| b.use_for(|| ()));
            (HashSet::from([a.id, b.id]), [from(&a), from(&b)])
        })
        .join()
        .unwrap();
        assert_eq!(
            got, ids,
            "{name}: the idle owner-slot values were not reused"
        );
        assert!(!places.contains(&OWNER), "{name}: {places:?}");
        let s = pool.stats().unwrap();
        assert_eq!(
            (s.creates, s.slot_hits, s.spill_hits),
            (2, 2, 0),
            "{name}: {s}"
        );
        let shown = format!("{pool:?}");
        assert!(
            shown.contains("owner_slots: [empty, empty]"),
            "{name}: {shown}"
        );

        if name != "None" {
            for turn in 0..10 {
                let p = Arc::clone(&pool);
                let (got, places) = std::thread::spawn(move || {
                    let one = p.get();
                    let one_place = from(&one);
                    drop(one);
                    let (a, b) = (p.get(), p.get());
                    a.use_for(|| b.use_for(|| ()));
                    (HashSet::from([a.id, b.id]), [one_place, from(&a), from(&b)])
                })
                .join()
                .unwrap();
                assert_eq!(got, ids, "{name}, turn {turn}");
                assert!(!places.contains(&OWNER), "{name}, turn {turn}: {places:?}");
            }
            assert_eq!(pool.stats().unwrap().creates, 2, "{name}");
        }
        settle(name, &ledger, pool);
    });
}

/// A short-lived owner leaves both owner slots (and, with `PerThread`, its
/// pocket) full and exits; `trim` on another thread drops every one of them:
/// `idle()` is 0, the owner slots show empty, the values are dropped, the
/// stats say so; later gets make new values, never into the dead owner's
/// slots.
#[test]
fn trim_on_another_thread_empties_an_exited_owners_slots() {
    for_each_spill!(|name, spill| {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            let held: Vec<_> = (0..4).map(|_| p.get()).collect();
            assert_eq!(from(&held[0]), OWNER);
            assert_eq!(from(&held[1]), OWNER);
        })
        .join()
        .unwrap();
        let idle = pool.idle();
        let expected = match name {
            "None" => 2,
            _ => 4,
        };
        assert_eq!(idle, expected, "{name}");
        let trimmed = std::thread::spawn({
            let p = Arc::clone(&pool);
            move || p.trim()
        })
        .join()
        .unwrap();
        assert_eq!(trimmed, idle, "{name}");
        assert_eq!(pool.idle(), 0, "{name}");
        assert_eq!(ledger.dropped(), 4, "{name}");
        let shown = format!("{pool:?}");
        assert!(
            shown.contains("owner_slots: [empty, empty]"),
            "{name}: {shown}"
        );
        let s = pool.stats().unwrap();
        assert_eq!((s.trimmed, s.idle), (idle as u64, 0), "{name}: {s}");
        // A second trim finds nothing, and neither does a get.
        assert_eq!(pool.trim(), 0, "{name}");
        let (a, b) = (pool.get(), pool.get());
        assert!(a.id >= 4 && b.id >= 4, "{name}: a trimmed value came back");
        assert!(from(&a) != OWNER && from(&b) != OWNER, "{name}");
        drop((a, b));
        settle(name, &ledger, pool);
    });
}

/// A short-lived owner leaves both owner slots full and exits; `decay` on
/// another thread sets them aside (still idle), the next `decay` drops them.
/// And if a thread reuses one between the two, the second `decay` drops only
/// the other.
#[test]
fn decay_twice_drops_an_exited_owners_values() {
    for reuse_one in [false, true] {
        for_each_spill!(|name, spill| {
            let what = format!("{name}, reuse one {reuse_one}");
            let ledger = Ledger::new();
            let pool = tracked_with(&ledger, spill);
            let p = Arc::clone(&pool);
            let ids = std::thread::spawn(move || {
                let (a, b) = (p.get(), p.get());
                HashSet::from([a.id, b.id])
            })
            .join()
            .unwrap();
            assert_eq!(pool.decay(), 0, "{what}");
            assert_eq!(pool.idle(), 2, "{what}: set aside values are idle");
            assert_eq!(ledger.dropped(), 0, "{what}");
            if reuse_one {
                let p = Arc::clone(&pool);
                let id = std::thread::spawn(move || p.get().id).join().unwrap();
                assert!(
                    ids.contains(&id),
                    "{what}: a set-aside value was not reused"
                );
                assert_eq!(pool.stats().unwrap().creates, 2, "{what}");
                // The reused value was returned and is idle again, except
                // with `None`, which dropped it. The other set-aside value
                // waits for the next `decay` (with `Bounded` too: the pool is
                // far below its ceiling).
                let kept = usize::from(name != "None");
                assert_eq!(ledger.dropped(), 1 - kept, "{what}");
                assert_eq!(pool.decay(), 1, "{what}");
                assert_eq!(ledger.dropped(), 2 - kept, "{what}");
                assert_eq!(pool.idle(), kept, "{what}");
                assert_eq!(pool.decay(), kept, "{what}");
                assert_eq!(pool.stats().unwrap().decayed as usize, 1 + kept, "{what}");
            } else {
                assert_eq!(pool.decay(), 2, "{what}");
                assert_eq!(ledger.dropped(), 2, "{what}");
                assert_eq!(pool.stats().unwrap().decayed, 2, "{what}");
            }
            assert_eq!(pool.idle(), 0, "{what}");
            settle(&what, &ledger, pool);
        });
    }
}

// ---------------------------------------------------------------------------
// Nesting on the owner thread.
// ---------------------------------------------------------------------------

/// The owner nests 1 to 6 gets and returns them in every order: the first
/// two come from the owner slots, the rest from the spill (with every
/// strategy: the first thread has no pocket besides its two slots); values are distinct and never held twice; each
/// get is counted where it was served, and the pool makes exactly as many
/// values as the deepest nesting (with `None`, the owner slots' two and
/// every spilled get's).
#[test]
fn owner_nesting_one_to_six_deep_in_every_return_order() {
    fn check<S: Spill<Tracked>>(name: &str, spill: S) {
        let keeps = name != "None";
        // The first thread has two slots with every strategy; a third value
        // and beyond come from the spill.
        let slots = 2;
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        let mut deepest = 0;
        // Every order; under valgrind, every order up to 4 deep and three
        // beyond.
        let orders = |depth: usize| {
            if depth <= 4 || !under_valgrind() {
                return permutations(depth);
            }
            let mut interleaved: Vec<usize> = (0..depth).step_by(2).collect();
            interleaved.extend((1..depth).step_by(2));
            vec![
                (0..depth).collect(),
                (0..depth).rev().collect(),
                interleaved,
            ]
        };
        let rounds: Vec<(usize, Vec<usize>)> = (1..=6)
            .flat_map(|depth| orders(depth).into_iter().map(move |o| (depth, o)))
            .chain((1..=6).rev().flat_map(|depth| {
                [(0..depth).collect(), (0..depth).rev().collect()]
                    .into_iter()
                    .map(move |o| (depth, o))
            }))
            .collect();
        for (depth, order) in rounds {
            let what = format!("{name}, depth {depth}, order {order:?}");
            let before = pool.stats().unwrap();
            let mut held: Vec<Option<(PoolGuard<'_, _, _, _, _, _>, u64)>> = (0..depth)
                .map(|_| {
                    let g = pool.get();
                    let gid = next_guard();
                    g.hold(gid);
                    Some((g, gid))
                })
                .collect();
            for (i, x) in held.iter().enumerate() {
                let g = &x.as_ref().unwrap().0;
                let expected = if i < 2 {
                    OWNER
                } else if i < slots {
                    POCKET
                } else {
                    SPILL
                };
                assert_eq!(from(g), expected, "{what}: get {i}");
            }
            let ids: HashSet<usize> = held.iter().map(|x| x.as_ref().unwrap().0.id).collect();
            assert_eq!(ids.len(), depth, "{what}: a value handed out twice");
            for &k in &order {
                let (g, gid) = held[k].take().unwrap();
                g.release(gid);
                drop(g);
            }
            let s = pool.stats().unwrap();
            // Position i reuses a value if an earlier round made one there.
            let reused = |i: usize| i < deepest && (keeps || i < 2);
            let slot_hits = (0..depth).filter(|&i| i < slots && reused(i)).count();
            let spill_hits = (0..depth).filter(|&i| i >= slots && reused(i)).count();
            assert_eq!(
                (s.slot_hits - before.slot_hits) as usize,
                slot_hits,
                "{what}: {s}"
            );
            assert_eq!(
                (s.spill_hits - before.spill_hits) as usize,
                spill_hits,
                "{what}: {s}"
            );
            assert_eq!(
                (s.creates - before.creates) as usize,
                depth - slot_hits - spill_hits,
                "{what}: {s}"
            );
            assert_eq!(s.returns - before.returns, depth as u64, "{what}: {s}");
            deepest = deepest.max(depth);
            let idle = if keeps { deepest } else { deepest.min(2) };
            assert_eq!(s.idle, idle, "{what}: {s}");
            check_invariants(&s);
        }
        assert_eq!(
            ledger.created() - ledger.dropped(),
            if keeps { 6 } else { 2 },
            "{name}"
        );
        settle(name, &ledger, pool);
    }
    for_each_spill!(|name, spill| {
        check(name, spill);
    });
}

// ---------------------------------------------------------------------------
// Owner-slot guards returned on other threads at the same moment.
// ---------------------------------------------------------------------------

/// The owner takes both owner slots with `get_owned`, sends one guard to
/// each of two worker threads, and the workers drop them at the same moment
/// (they spin until both have theirs), many times. Each owner slot's return
/// counter has one writer at a time, so no return is lost: afterwards
/// `gets == returns` exactly, `in_use` is 0, and every get after the first
/// two was an owner-slot hit.
#[test]
fn owner_slot_guards_dropped_at_once_on_two_threads_keep_exact_stats() {
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
fn the_owner_and_another_thread_return_both_owner_slots_at_once() {
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
// Owner-slot guards in thread-locals.
// ---------------------------------------------------------------------------

/// The owner keeps both owner-slot guards in thread-locals, one returned
/// before it gives its `ThreadSlots` index back and one after; it keeps
/// using the pool in both: its owner slots serve it to the very end (its
/// pocket only before it gave its index back). Afterwards every value is
/// accounted for and another thread reuses them all.
#[test]
fn owner_slot_guards_in_the_owners_thread_locals() {
    type Places = Vec<&'static str>;
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let late_seen: Arc<Mutex<Places>> = Arc::default();
    let early_seen: Arc<Mutex<Places>> = Arc::default();
    let p = Arc::clone(&pool);
    let seen_ids: Arc<Mutex<Vec<usize>>> = Arc::default();
    let (ls, es) = (Arc::clone(&late_seen), Arc::clone(&early_seen));
    let (li, ei) = (Arc::clone(&seen_ids), Arc::clone(&seen_ids));
    // No assertion runs in a thread-local destructor (a panic there aborts
    // the binary): they record, the test checks after the join.
    let (aid, bid) = std::thread::spawn(move || {
        EARLY.with(|_| ());
        let a = p.get_owned();
        let b = p.get_owned();
        assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
        let (aid, bid) = (a.id, b.id);
        let (pl, pe) = (Arc::clone(&p), Arc::clone(&p));
        // Runs first: the pool's per-thread state is still there.
        at_exit(&LATE, move || drop(b));
        at_exit(&LATE, move || {
            let x = pl.get(); // b, back in owner slot 1
            let y = pl.get(); // a is out: a new value, from no slot
            x.use_for(|| y.use_for(|| ()));
            li.lock().unwrap().push(x.id);
            ls.lock().unwrap().extend([from(&x), from(&y)]);
        });
        // Runs last: the thread gave its index (its pocket) back.
        at_exit(&EARLY, move || drop(a));
        at_exit(&EARLY, move || {
            let x = pe.get();
            let y = pe.get();
            let z = pe.get();
            x.use_for(|| y.use_for(|| z.use_for(|| ())));
            ei.lock().unwrap().extend([x.id, y.id]);
            es.lock().unwrap().extend([from(&x), from(&y), from(&z)]);
            drop((x, y, z));
            let t = pe.try_get();
            es.lock().unwrap().push(t.as_ref().map_or("nothing", from));
            drop(t);
            let t = PoolGuard::take(pe.get());
            let _ = pe.put(t);
        });
        (aid, bid)
    })
    .join()
    .unwrap();
    assert_eq!(*late_seen.lock().unwrap(), [OWNER, SPILL]);
    assert_eq!(*early_seen.lock().unwrap(), [OWNER, OWNER, SPILL, OWNER]);
    // Late: b, back in owner slot 1; early: a and b, in the owner slots.
    assert_eq!(*seen_ids.lock().unwrap(), [bid, aid, bid]);
    let s = pool.stats().unwrap();
    check_invariants(&s);
    assert_eq!((s.creates, s.idle, s.in_use), (3, 3, 0), "{s}");
    // Another thread holding three at once gets exactly those three.
    let p = Arc::clone(&pool);
    let (ids, places) = std::thread::spawn(move || {
        let held: Vec<_> = (0..3).map(|_| p.get()).collect();
        let ids: HashSet<usize> = held.iter().map(|g| g.id).collect();
        (ids, held.iter().map(from).collect::<Vec<_>>())
    })
    .join()
    .unwrap();
    assert!(ids.contains(&aid) && ids.contains(&bid), "{ids:?}");
    assert!(!places.contains(&OWNER), "{places:?}");
    assert_eq!(pool.stats().unwrap().creates, 3);
    settle("owner's thread-locals", &ledger, pool);
}

/// The owner (this thread) sends both owner-slot guards to another thread,
/// which keeps them in thread-locals and returns one before and one after it
/// gives its index back, using the pool in its destructors before each. Both
/// values come home into the owner slots: the owner's next two gets are
/// exactly them, from the owner slots.
#[test]
fn owner_slot_guards_in_another_threads_thread_locals() {
    /// Uses the pool; records where each guard came from (no assertion
    /// runs in a thread-local destructor: a panic there aborts the binary).
    fn use_during_exit(p: &TrackedPool, seen: &Mutex<Vec<&'static str>>) {
        let held: Vec<_> = (0..3).map(|_| p.get()).collect();
        held.iter().for_each(|g| g.use_for(|| ()));
        seen.lock().unwrap().extend(held.iter().map(from));
        drop(held);
        if let Some(g) = p.try_get() {
            seen.lock().unwrap().push(from(&g));
        }
        let t = PoolGuard::take(p.get());
        let _ = p.put(t);
    }
    for round in 0..scaled(20) {
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let (a, b) = (pool.get_owned(), pool.get_owned());
        assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
        let (aid, bid) = (a.id, b.id);
        let (ga, gb) = (next_guard(), next_guard());
        a.hold(ga);
        b.hold(gb);
        let p = Arc::clone(&pool);
        let swap = round % 2 == 1;
        let seen: Arc<Mutex<Vec<&'static str>>> = Arc::default();
        let (s0, s1, s2) = (Arc::clone(&seen), Arc::clone(&seen), Arc::clone(&seen));
        std::thread::spawn(move || {
            EARLY.with(|_| ());
            use_during_exit(&p, &s0);
            let (first, second) = if swap {
                ((b, gb), (a, ga))
            } else {
                ((a, ga), (b, gb))
            };
            let (pl, pe) = (Arc::clone(&p), Arc::clone(&p));
            at_exit(&LATE, move || use_during_exit(&pl, &s1));
            at_exit(&LATE, move || {
                first.0.release(first.1);
                drop(first.0);
            });
            at_exit(&EARLY, move || use_during_exit(&pe, &s2));
            at_exit(&EARLY, move || {
                second.0.release(second.1);
                drop(second.0);
            });
        })
        .join()
        .unwrap();
        let what = format!("round {round}");
        let seen = seen.lock().unwrap().clone();
        assert_eq!(seen.len(), 12, "{what}: {seen:?}");
        assert!(!seen.contains(&OWNER), "{what}: {seen:?}");
        let (x, y) = (pool.get(), pool.get());
        assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
        assert_eq!(
            (x.id, y.id),
            (aid, bid),
            "{what}: the values did not come home"
        );
        drop((x, y));
        let s = pool.stats().unwrap();
        check_invariants(&s);
        assert_eq!(s.in_use, 0, "{what}: {s}");
        settle(&what, &ledger, pool);
    }
}

// ---------------------------------------------------------------------------
// Hooks and Drop that use the pool while an owner slot's value is returned.
// ---------------------------------------------------------------------------

/// Everything a hook can do with its own pool while the value being returned
/// still holds its owner slot: get (nested three deep, so both free slots
/// and beyond), `try_get`, take and put, trim, decay twice.
fn reenter(pool: &Hooked, knobs: &Knobs) {
    if IN_HOOK.with(|f| f.replace(true)) {
        return;
    }
    let (a, b, c) = (pool.get(), pool.get(), pool.get());
    a.use_for(|| b.use_for(|| c.use_for(|| ())));
    drop(c);
    if let Some(g) = pool.try_get() {
        g.use_for(|| ());
    }
    let t = PoolGuard::take(pool.get());
    let _ = pool.put(t);
    pool.trim();
    drop(pool.get());
    pool.decay();
    pool.decay();
    let _ = (pool.idle(), pool.stats(), format!("{pool:?}"));
    drop((a, b));
    knobs.reentered.fetch_add(1, SeqCst);
    IN_HOOK.with(|f| f.set(false));
}

/// `reset` and `retain` that get, `try_get`, take, put, trim and decay on
/// their own pool while the value being returned holds owner slot 0 or 1
/// (returned on the owner thread, or on another thread the guard was sent
/// to), with the other owner slot's value still out: none of that touches
/// the value being returned, so the owner's next get is that same value,
/// from its owner slot.
#[test]
fn hooks_use_the_pool_while_an_owner_slots_value_is_returned() {
    for in_retain in [false, true] {
        let hook = if in_retain { "retain" } else { "reset" };
        let ledger = Ledger::new();
        let knobs = Arc::new(Knobs::default());
        let pool = hooked_pool(&ledger, &knobs, reenter);
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
fn drop_of_an_owner_slots_value_uses_the_pool() {
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
// Panics in reset, retain and Drop of owner-slot values.
// ---------------------------------------------------------------------------

/// A panicking `reset`, a panicking `retain` and a refusing `retain`, on the
/// value of either owner slot, returned on the owner thread or on another:
/// the value is dropped once, counted once, never handed out again, and its
/// owner slot takes a value again on the owner's next get.
#[test]
fn panicking_and_refusing_hooks_on_owner_slot_values() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let knobs = Arc::new(Knobs::default());
    let pool = hooked_pool(&ledger, &knobs, reenter);
    let (p, l, k) = (Arc::clone(&pool), Arc::clone(&ledger), Arc::clone(&knobs));
    within(60, "panicking hooks", move || {
        let flags: [(&str, &AtomicBool); 3] = [
            ("reset panics", &k.reset_panics),
            ("retain panics", &k.retain_panics),
            ("retain refuses", &k.retain_refuses),
        ];
        for (what, flag) in flags {
            for slot in [0, 1] {
                for elsewhere in [false, true] {
                    let what = format!("{what}, slot {slot}, elsewhere {elsewhere}");
                    let before = p.stats().unwrap();
                    let dropped = l.dropped();
                    let (a, b) = (p.get_owned(), p.get_owned());
                    assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                    let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                    let vid = victim.id;
                    flag.store(true, SeqCst);
                    let refused = what.starts_with("retain refuses");
                    let result = if elsewhere {
                        std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                            .join()
                            .unwrap()
                    } else {
                        catch_unwind(AssertUnwindSafe(|| drop(victim)))
                    };
                    assert_eq!(result.is_err(), !refused, "{what}");
                    assert!(!flag.load(SeqCst), "{what}: the hook never ran");
                    assert_eq!(l.dropped(), dropped + 1, "{what}: dropped once");
                    let shown = format!("{p:?}");
                    let expected = if slot == 0 {
                        "owner_slots: [empty, in use]"
                    } else {
                        "owner_slots: [in use, empty]"
                    };
                    assert!(shown.contains(expected), "{what}: {shown}");
                    drop(other);
                    let s = p.stats().unwrap();
                    assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                    if refused {
                        assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                    } else {
                        assert_eq!(s.discarded, before.discarded + 1, "{what}: {s}");
                    }
                    check_identities(&s, &what);
                    let (x, y) = (p.get(), p.get());
                    assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
                    assert!(
                        x.id != vid && y.id != vid,
                        "{what}: a dropped value came back"
                    );
                    drop((x, y));
                    assert_eq!(p.stats().unwrap().in_use, 0, "{what}");
                }
            }
        }
    });
    settle("panicking hooks", &ledger, pool);
}

/// A value whose `Drop` panics once armed, and which `retain` refuses once
/// told to.
#[derive(Debug)]
struct Bomb {
    t: Tracked,
    armed: bool,
    refuse: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        // Not while unwinding (a failed assertion): that would abort the
        // whole binary.
        if std::mem::take(&mut self.armed) && !std::thread::panicking() {
            panic!("Bomb dropped (on purpose)");
        }
    }
}

/// An owner-slot value whose `Drop` panics, dropped by a refusing `retain`
/// (on the owner thread and another), by `trim` on another thread, by the
/// second `decay`, and by dropping the pool: the panic goes on to the
/// caller, every other value is still dropped, the counts and `idle()` are
/// right, and the owner slot serves again.
#[test]
fn owner_slot_values_whose_drop_panics() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let l = Arc::clone(&ledger);
    let pool = Arc::new(
        Pool::builder()
            .create(move || Bomb {
                t: l.make(),
                armed: false,
                refuse: false,
            })
            .retain(|b: &Bomb| !b.refuse)
            .stats()
            .build(),
    );
    let p = Arc::clone(&pool);
    let l = Arc::clone(&ledger);
    within(60, "Drop panics", move || {
        // Refused by retain, on either slot, here and elsewhere.
        for slot in [0, 1] {
            for elsewhere in [false, true] {
                let what = format!("retain refuses, slot {slot}, elsewhere {elsewhere}");
                let before = p.stats().unwrap();
                let dropped = l.dropped();
                let (mut a, mut b) = (p.get_owned(), p.get_owned());
                assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                let victim = if slot == 0 { &mut a } else { &mut b };
                victim.armed = true;
                victim.refuse = true;
                let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                let vid = victim.t.id;
                let result = if elsewhere {
                    std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                        .join()
                        .unwrap()
                } else {
                    catch_unwind(AssertUnwindSafe(|| drop(victim)))
                };
                assert!(result.is_err(), "{what}: the Drop did not panic");
                assert_eq!(l.dropped(), dropped + 1, "{what}");
                drop(other);
                let s = p.stats().unwrap();
                assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                check_identities(&s, &what);
                let (x, y) = (p.get(), p.get());
                assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
                assert!(x.t.id != vid && y.t.id != vid, "{what}");
            }
        }
        // Trimmed on another thread, and decayed: both owner slots idle (and
        // two values in the owner's pocket), the one in `slot` armed.
        for how in ["trim", "decay"] {
            for slot in [0, 1] {
                let what = format!("{how}, slot {slot}");
                let mut held: Vec<_> = (0..4).map(|_| p.get()).collect();
                assert_eq!((from(&held[0]), from(&held[1])), (OWNER, OWNER), "{what}");
                held[slot].armed = true;
                drop(held);
                let idle = p.idle();
                assert_eq!(idle, 4, "{what}");
                let before = p.stats().unwrap();
                let dropped = l.dropped();
                let result = if how == "trim" {
                    let q = Arc::clone(&p);
                    std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| q.trim())))
                        .join()
                        .unwrap()
                } else {
                    assert_eq!(p.decay(), 0, "{what}");
                    catch_unwind(AssertUnwindSafe(|| p.decay()))
                };
                assert!(result.is_err(), "{what}: the Drop did not panic");
                assert_eq!(
                    l.dropped(),
                    dropped + idle,
                    "{what}: the others were not dropped"
                );
                assert_eq!(p.idle(), 0, "{what}");
                let s = p.stats().unwrap();
                let (trimmed, decayed) = (s.trimmed - before.trimmed, s.decayed - before.decayed);
                if how == "trim" {
                    assert_eq!((trimmed, decayed), (idle as u64, 0), "{what}: {s}");
                } else {
                    assert_eq!((trimmed, decayed), (0, idle as u64), "{what}: {s}");
                }
                check_identities(&s, &what);
                let (x, y) = (p.get(), p.get());
                assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
            }
        }
        // Left for the pool's drop: owner slot 1 armed, slot 0 and the
        // pocket full.
        let mut held: Vec<_> = (0..4).map(|_| p.get()).collect();
        held[1].armed = true;
        drop(held);
    });
    assert!(!ledger.double_use.load(SeqCst));
    assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
    assert_eq!(pool.idle(), 4);
    let result = catch_unwind(AssertUnwindSafe(|| drop(pool)));
    assert!(result.is_err(), "dropping the pool: the Drop did not panic");
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "dropping the pool: a value was not dropped"
    );
}

// ---------------------------------------------------------------------------
// try_get after the owner slots were robbed.
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
// One-way pipelines.
// ---------------------------------------------------------------------------

/// One thread only gets, another only returns, through a channel of 4; one
/// of them is the pool's owner. With the owner getting, its owner slots
/// keep serving it (values come home from the returner); with the owner
/// returning, the getter never gets an owner-slot guard. Nothing is held
/// twice, and the values made stay within what can be out at once.
fn one_way<S: Spill<Tracked> + Send + Sync>(
    name: &str,
    spill: S,
    owner_gets: bool,
    hold: usize,
    batch: usize,
) {
    let what = format!("{name}, owner gets {owner_gets}, hold {hold}, batch {batch}");
    let cap = 4;
    let items = scaled(20_000);
    let ledger = Ledger::new();
    let pool = tracked_with(&ledger, spill);
    let (tx, rx) = mpsc::sync_channel::<(PoolGuard<'_, _, _, _, _, _>, u64)>(cap);
    let owner_hits = AtomicUsize::new(0);
    let claimed = Barrier::new(2);
    std::thread::scope(|s| {
        let (pool, claimed, owner_hits) = (&pool, &claimed, &owner_hits);
        s.spawn(move || {
            if !owner_gets {
                claimed.wait();
            }
            let mut held = Vec::with_capacity(hold);
            for i in 0..items {
                let g = pool.get();
                if i == 0 && owner_gets {
                    claimed.wait();
                    assert_eq!(from(&g), OWNER);
                }
                match from(&g) {
                    OWNER if !owner_gets => panic!("the getter is not the owner: {g:?}"),
                    OWNER => {
                        owner_hits.fetch_add(1, SeqCst);
                    }
                    _ => {}
                }
                let gid = next_guard();
                g.hold(gid);
                held.push((g, gid));
                if held.len() == hold {
                    for x in held.drain(..) {
                        tx.send(x).unwrap();
                    }
                }
            }
            for x in held {
                tx.send(x).unwrap();
            }
        });
        s.spawn(move || {
            if !owner_gets {
                // This thread becomes the owner; its value stays idle in
                // owner slot 0, for the getter to steal.
                let g = pool.get();
                claimed.wait();
                assert_eq!(from(&g), OWNER);
                drop(g);
            } else {
                claimed.wait();
            }
            let mut batchv = Vec::with_capacity(batch);
            for (g, gid) in rx {
                g.release(gid);
                batchv.push(g);
                if batchv.len() == batch {
                    batchv.clear();
                }
            }
        });
    });
    let made = ledger.created();
    // Out at once: the getter's `hold` and one blocked send, the channel,
    // the returner's batch and the one it receives; plus the two owner
    // slots, two pockets' slots and slack for values caught between
    // threads.
    let bound = hold + 1 + cap + batch + 1 + 8;
    let hits = owner_hits.load(SeqCst);
    eprintln!("{what}: made {made} (bound {bound}), owner-slot gets {hits}");
    assert!(
        made <= bound,
        "{what}: made {made}, more than {bound}: {}",
        pool.stats().unwrap()
    );
    if owner_gets {
        assert!(hits > 0, "{what}: the owner slots never served the owner");
    }
    let s = pool.stats().unwrap();
    let gets = items + usize::from(!owner_gets);
    assert_eq!(s.gets as usize, gets, "{what}: {s}");
    settle(&what, &ledger, pool);
}

#[test]
fn the_owner_only_gets_another_thread_only_returns() {
    one_way("PerThread", spill::PerThread::default(), true, 1, 1);
    one_way("PerThread", spill::PerThread::default(), true, 3, 2);
    one_way("LockFree", spill::LockFree::default(), true, 2, 1);
}

#[test]
fn another_thread_only_gets_the_owner_only_returns() {
    one_way("PerThread", spill::PerThread::default(), false, 1, 1);
    one_way("PerThread", spill::PerThread::default(), false, 3, 2);
    one_way("LockFree", spill::LockFree::default(), false, 2, 1);
}

// ---------------------------------------------------------------------------
// A short-lived first user, then many threads by turns.
// ---------------------------------------------------------------------------

/// The pool's first user is a thread that holds two values and exits. Then
/// 64 threads, one after another, each hold two at once; then 64 threads
/// alive together take turns (a token passed around a ring), each holding
/// two at once on its turn. None of them is the owner (no "owner slot"
/// guard), and the pool never makes more than the first user's two values,
/// with every strategy that keeps values.
#[test]
fn a_short_lived_first_user_then_64_threads_by_turns() {
    for_each_spill!(|name, spill| {
        // `None` keeps nothing, so it remakes values by design.
        if name != "None" {
            by_turns(name, spill);
        }
    });
}

fn by_turns<S: Spill<Tracked> + Send + Sync>(name: &str, spill: S) {
    fn turn<S: Spill<Tracked>>(pool: &Arc<TrackedPool<S>>) -> [&'static str; 2] {
        let (a, b) = (pool.get(), pool.get());
        a.use_for(|| b.use_for(|| ()));
        [from(&a), from(&b)]
    }
    {
        let ledger = Ledger::new();
        let pool = tracked_with(&ledger, spill);
        std::thread::scope(|s| {
            s.spawn(|| assert_eq!(turn(&pool), [OWNER, OWNER], "{name}"));
        });
        for t in 0..64 {
            let places = std::thread::scope(|s| s.spawn(|| turn(&pool)).join().unwrap());
            assert!(!places.contains(&OWNER), "{name}, thread {t}: {places:?}");
        }
        assert_eq!(ledger.created(), 2, "{name}: one after another");
        let rounds = scaled(3);
        let (txs, rxs): (Vec<_>, Vec<_>) = (0..64).map(|_| mpsc::channel::<usize>()).unzip();
        // No assertion in the ring (a panic there would stop the token and
        // hang the others): the places are checked after.
        let owner_guards = AtomicUsize::new(0);
        std::thread::scope(|s| {
            for (i, rx) in rxs.into_iter().enumerate() {
                let next = txs[(i + 1) % 64].clone();
                let (pool, owner_guards) = (&pool, &owner_guards);
                s.spawn(move || {
                    for token in rx {
                        if token == rounds * 64 {
                            let _ = next.send(token);
                            return;
                        }
                        let places = turn(pool);
                        let n = places.iter().filter(|p| **p == OWNER).count();
                        owner_guards.fetch_add(n, SeqCst);
                        let _ = next.send(token + 1);
                    }
                });
            }
            txs[0].send(0).unwrap();
        });
        assert_eq!(
            owner_guards.load(SeqCst),
            0,
            "{name}: owner-slot guards by turns"
        );
        assert_eq!(ledger.created(), 2, "{name}: by turns");
        let s = pool.stats().unwrap();
        assert_eq!(s.gets as usize, 2 + 2 * 64 + 2 * 64 * rounds, "{name}: {s}");
        settle(name, &ledger, pool);
    }
}

// ---------------------------------------------------------------------------
// The owner's fast path racing thieves.
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
// take of owner-slot values on other threads.
// ---------------------------------------------------------------------------

/// Owner-slot guards sent to other threads and consumed there by `take`:
/// both owner slots empty, the owner's next gets make new values into them;
/// the taken values come back by `put` on yet another thread, to the
/// strategy, where a non-owner finds them. Counts exact.
#[test]
fn owner_slot_values_taken_on_other_threads() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let (a, b) = (pool.get_owned(), pool.get_owned());
    assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
    let ids = HashSet::from([a.id, b.id]);
    let ta = std::thread::spawn(move || OwnedPoolGuard::take(a));
    let tb = std::thread::spawn(move || OwnedPoolGuard::take(b));
    let (va, vb) = (ta.join().unwrap(), tb.join().unwrap());
    assert_eq!(HashSet::from([va.id, vb.id]), ids);
    assert_eq!(pool.idle(), 0);
    assert!(format!("{pool:?}").contains("owner_slots: [empty, empty]"));
    let (c, d) = (pool.get(), pool.get());
    assert_eq!((from(&c), from(&d)), (OWNER, OWNER));
    assert!(!ids.contains(&c.id) && !ids.contains(&d.id));
    drop((c, d));
    let p = Arc::clone(&pool);
    std::thread::spawn(move || {
        let _ = p.put(va);
        let _ = p.put(vb);
    })
    .join()
    .unwrap();
    assert_eq!(pool.idle(), 4);
    let p = Arc::clone(&pool);
    let got = std::thread::spawn(move || {
        let (x, y) = (p.get(), p.get());
        assert!(from(&x) != OWNER && from(&y) != OWNER);
        HashSet::from([x.id, y.id])
    })
    .join()
    .unwrap();
    assert_eq!(got, ids, "the put values were not found");
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.gets, s.creates, s.taken, s.puts, s.returns, s.idle),
        (6, 4, 2, 2, 6, 4),
        "{s}"
    );
    settle("taken elsewhere", &ledger, pool);
}

// ---------------------------------------------------------------------------
// Forgotten owner-slot guards; pools that move.
// ---------------------------------------------------------------------------

/// The owner forgets the guards of both owner slots: the slots stay in use
/// for good (shown so), the owner's gets go to its pocket and beyond, and
/// `trim`, `decay` and `try_get` (here and on another thread) never touch
/// them; dropping the pool leaks exactly the two forgotten values.
#[test]
fn forgotten_owner_slot_guards() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
    // Zero-sized: a leaked one holds no memory (valgrind's leak check).
    #[derive(Debug)]
    struct Counted;
    impl Drop for Counted {
        fn drop(&mut self) {
            DROPPED.fetch_add(1, SeqCst);
        }
    }
    let pool = Arc::new(
        Pool::builder()
            .create(|| {
                MADE.fetch_add(1, SeqCst);
                Counted
            })
            .stats()
            .build(),
    );
    let first = pool.get();
    assert_eq!(from(&first), OWNER);
    std::mem::forget(first);
    let g = pool.get();
    assert_eq!(from(&g), OWNER, "the second owner slot serves");
    drop(g);
    let second = pool.get();
    assert_eq!(from(&second), OWNER);
    std::mem::forget(second);
    let shown = format!("{pool:?}");
    assert!(shown.contains("owner_slots: [in use, in use]"), "{shown}");
    let before = MADE.load(SeqCst);
    for round in 0..scaled(100) {
        let (g, h) = (pool.get(), pool.get());
        assert!(from(&g) != OWNER && from(&h) != OWNER, "round {round}");
        drop((g, h));
        if let Some(g) = pool.try_get() {
            assert_ne!(from(&g), OWNER, "round {round}");
        }
        pool.decay();
        std::thread::scope(|s| {
            s.spawn(|| {
                pool.trim();
                drop(pool.try_get());
            });
        });
        assert_eq!(pool.idle(), 0, "round {round}");
    }
    // Each round's gets after a trim make two, no more.
    assert!(MADE.load(SeqCst) - before <= 2 * scaled(100));
    let shown = format!("{pool:?}");
    assert!(shown.contains("owner_slots: [in use, in use]"), "{shown}");
    let s = pool.stats().unwrap();
    assert_eq!(s.in_use, 2, "{s}");
    check_identities(&s, "forgotten");
    drop(pool);
    assert_eq!(
        MADE.load(SeqCst),
        DROPPED.load(SeqCst) + 2,
        "only the two forgotten values leak"
    );
}

/// Values idle in the owner slots move with their pool (they live inside
/// it): a pool in a `Vec` that grows, and two pools swapped, owned by two
/// threads. Each pool keeps its values and its owner.
#[test]
fn idle_owner_slot_values_move_with_their_pool() {
    let ledgers: Vec<Arc<Ledger>> = (0..65).map(|_| Ledger::new()).collect();
    let make =
        |l: &Arc<Ledger>| Arc::into_inner(tracked_with(l, spill::PerThread::default())).unwrap();
    let mut pools = vec![make(&ledgers[0])];
    let ids: HashSet<usize> = {
        let (a, b) = (pools[0].get(), pools[0].get());
        [a.id, b.id].into()
    };
    for l in &ledgers[1..] {
        pools.push(make(l));
    }
    let (a, b) = (pools[0].get(), pools[0].get());
    assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
    assert_eq!(
        HashSet::from([a.id, b.id]),
        ids,
        "the values did not move with the pool"
    );
    drop((a, b));
    // Pool 1 is owned by another thread, pool 0 by this one; swap them.
    let other_ids = std::thread::scope(|s| {
        s.spawn(|| {
            let (a, b) = (pools[1].get(), pools[1].get());
            assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
            HashSet::from([a.id, b.id])
        })
        .join()
        .unwrap()
    });
    pools.swap(0, 1);
    let mut ledgers = ledgers;
    ledgers.swap(0, 1);
    // Pool 1 is this thread's pool now, pool 0 the other thread's.
    let (a, b) = (pools[1].get(), pools[1].get());
    assert_eq!((from(&a), from(&b)), (OWNER, OWNER));
    assert_eq!(HashSet::from([a.id, b.id]), ids);
    drop((a, b));
    let (a, b) = (pools[0].get(), pools[0].get());
    assert!(
        from(&a) != OWNER && from(&b) != OWNER,
        "this thread does not own pool 0"
    );
    assert_eq!(
        HashSet::from([a.id, b.id]),
        other_ids,
        "stolen from its owner slots"
    );
    drop((a, b));
    for (i, (pool, ledger)) in pools.into_iter().zip(&ledgers).enumerate() {
        settle(&format!("pool {i}"), ledger, Arc::new(pool));
    }
}
