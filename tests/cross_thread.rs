//! Values that move between threads: a guard got on one thread and dropped,
//! taken or put on another goes where it should (home to the getter's slot,
//! or to the strategy), is never held twice, and no more values are made
//! than can be out at once; a thread that exits with values idle or lent
//! leaves them to the threads after it.
//!
//! The groups: guards returned on another thread while the getter keeps
//! getting; one-way pipelines (one thread only gets, another only returns,
//! with a janitor or with the first thread at either end); `take` and `put`
//! on other threads; a first thread that exits with values idle or lent,
//! and the threads after it reusing them (one after another, and 64 by
//! turns); a thread whose `ThreadSlots` index, and so its pocket, passes to
//! a new thread while its guards are still out; nesting on two threads.
//!
//! The index tests park up to 256 threads while they wait for one that
//! inherits a given index (`common::on_inherited_index`, and the same loop
//! inline in `guards_of_an_exited_thread_dropped_while_its_index_is_reused`).
//!
//! Run them under both barriers:
//!
//! ```text
//! cargo test --release --test cross_thread
//! MEMPOOL_BARRIER=fence cargo test --release --test cross_thread
//! ```

mod common;

use common::{
    from, heavy, in_pocket, next_guard, on_inherited_index, owner_gone, rounds_passing_an_index_on,
    scaled, settle, slot_address, tracked_pool, tracked_with, Ledger, Tracked, TrackedPool, OWNER,
};
use mempool::{spill, OwnedPoolGuard, Pool, PoolGuard, Spill};
use std::collections::HashSet;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex};

// ---------------------------------------------------------------------------
// Guards returned on another thread while the getter keeps getting.
// ---------------------------------------------------------------------------

/// A guard got on this thread and dropped on another goes back into this
/// thread's pocket with one store: the next get here is a pocket hit with
/// the same value, nothing is created. With two guards at once (both slots),
/// with `take` on the other thread (the slot empties and is refilled here),
/// and with a scoped `PoolGuard` as well as an `OwnedPoolGuard`.
#[test]
fn a_guard_returned_on_another_thread_lands_in_the_getters_pocket() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let x = pool.get_owned();
    assert!(in_pocket(&x), "{x:?}");
    let xid = x.id;
    std::thread::spawn(move || drop(x)).join().unwrap();
    let s = pool.stats().unwrap();
    assert_eq!((s.creates, s.returns, s.idle), (1, 1, 1), "{s}");
    let again = pool.get();
    assert!(in_pocket(&again));
    assert_eq!(again.id, xid, "the value returned elsewhere is not back");
    drop(again);
    assert_eq!(pool.stats().unwrap().slot_hits, 1);

    // Both slots out at once, returned on another thread in reverse order.
    let (a, b) = (pool.get(), pool.get());
    assert!(in_pocket(&a) && in_pocket(&b), "{a:?} {b:?}");
    let ids: HashSet<usize> = [a.id, b.id].into();
    std::thread::scope(|s| {
        s.spawn(move || {
            drop(b);
            drop(a);
        });
    });
    for _ in 0..3 {
        let (c, d) = (pool.get(), pool.get());
        assert!(in_pocket(&c) && in_pocket(&d));
        assert_eq!(HashSet::from([c.id, d.id]), ids);
    }
    assert_eq!(
        pool.stats().unwrap().creates,
        2,
        "{}",
        pool.stats().unwrap()
    );

    // `take` of a pocket value on another thread: the slot empties; the
    // next get here refills it with a new value and it is a pocket value.
    let t = pool.get_owned();
    let tid = t.id;
    let taken = std::thread::spawn(move || OwnedPoolGuard::take(t))
        .join()
        .unwrap();
    assert_eq!(taken.id, tid);
    assert_eq!(pool.idle(), 1);
    let (c, d) = (pool.get(), pool.get());
    assert!(in_pocket(&c) && in_pocket(&d));
    assert!(c.id != tid && d.id != tid);
    drop((c, d));
    let s = pool.stats().unwrap();
    assert_eq!((s.creates, s.taken, s.idle), (3, 1, 2), "{s}");
    // The taken value comes back through `put` on yet another thread.
    std::thread::scope(|s| {
        s.spawn(|| drop(pool.put(taken)));
    });
    assert_eq!(pool.idle(), 3);
    drop(pool.get());
    settle("returned elsewhere", &ledger, pool);
}

/// Thread A only gets (and sometimes holds two), B holds each value a little
/// and drops it: A's pocket slots are released from B while A reads them.
/// Nothing is held twice and A keeps finding its values: no more are made
/// than can be out at once.
#[test]
fn the_getter_keeps_getting_while_another_thread_returns_its_guards() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let items = scaled(50_000);
    let (tx, rx) = mpsc::sync_channel::<(OwnedPoolGuard<_, _, _, _, _>, u64)>(4);
    std::thread::scope(|s| {
        let p = &pool;
        s.spawn(move || {
            for i in 0..items {
                let g = p.get_owned();
                let gid = next_guard();
                g.hold(gid);
                if i % 3 == 0 {
                    // A nested value, on this thread only.
                    p.get().use_for(|| ());
                }
                tx.send((g, gid)).unwrap();
            }
        });
        s.spawn(move || {
            for (g, gid) in rx {
                std::hint::black_box(g.id);
                g.release(gid);
                drop(g);
            }
        });
    });
    // At once: 4 queued, 1 being sent, 1 being dropped, 1 nested, and a
    // little slack for values caught between two threads.
    let made = ledger.created();
    eprintln!("getter and returner: made {made}");
    assert!(made <= 12, "made {made} values: {}", pool.stats().unwrap());
    settle("getter and returner", &ledger, pool);
}

// ---------------------------------------------------------------------------
// One-way pipelines: one thread gets, another returns.
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

/// One thread only gets, another only returns, through a channel of 4; one
/// of them is the pool's owner. With the owner getting, its owner slots
/// keep serving it (values come home from the returner); with the owner
/// returning, the getter never gets an owner-slot guard. Nothing is held
/// twice, and the values made stay within what can be out at once.
fn one_way_with_the_owner<S: Spill<Tracked> + Send + Sync>(
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
    one_way_with_the_owner("PerThread", spill::PerThread::default(), true, 1, 1);
    one_way_with_the_owner("PerThread", spill::PerThread::default(), true, 3, 2);
    one_way_with_the_owner("LockFree", spill::LockFree::default(), true, 2, 1);
}

#[test]
fn another_thread_only_gets_the_owner_only_returns() {
    one_way_with_the_owner("PerThread", spill::PerThread::default(), false, 1, 1);
    one_way_with_the_owner("PerThread", spill::PerThread::default(), false, 3, 2);
    one_way_with_the_owner("LockFree", spill::LockFree::default(), false, 2, 1);
}

/// Getters that only get and returners that only return, through channels
/// of `cap`: getters hold `hold` values at a time before sending them,
/// returners drop in batches of `batch`. Values come back into the getters'
/// pockets (their guards) and, beyond two, into the returners' pockets and
/// the overflow, where the getters find them. Nothing is held twice, and the
/// values made stay within what can be out at once.
fn one_way(getters: usize, returners: usize, hold: usize, batch: usize) {
    let what = format!("{getters} getters, {returners} returners, hold {hold}, batch {batch}");
    let cap = 4;
    let items = scaled(20_000);
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let (tx, rx) = mpsc::sync_channel::<(PoolGuard<_, _, _, _, _>, u64)>(cap);
    let rx = Mutex::new(rx);
    std::thread::scope(|s| {
        for _ in 0..getters {
            let (tx, pool) = (tx.clone(), &pool);
            s.spawn(move || {
                let mut held = Vec::with_capacity(hold);
                for _ in 0..items {
                    let g = pool.get();
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
        }
        drop(tx);
        for _ in 0..returners {
            let rx = &rx;
            s.spawn(move || {
                let mut batchv = Vec::with_capacity(batch);
                loop {
                    let next = rx.lock().unwrap().recv();
                    match next {
                        Ok((g, gid)) => {
                            g.release(gid);
                            batchv.push(g);
                            if batchv.len() == batch {
                                batchv.clear();
                            }
                        }
                        Err(_) => break,
                    }
                }
            });
        }
    });
    drop(rx);
    let made = ledger.created();
    // Out at once: each getter's `hold` and one blocked send, the channel,
    // each returner's batch and the one it receives (measured: exactly that,
    // 6 to 10); plus slack for values caught between threads.
    let bound = getters * (hold + 1) + cap + returners * (batch + 1) + 6;
    eprintln!("{what}: made {made} (bound {bound})");
    assert!(
        made <= bound,
        "{what}: made {made}, more than {bound}: {}",
        pool.stats().unwrap()
    );
    let s = pool.stats().unwrap();
    assert_eq!(s.gets as usize, getters * items, "{what}: {s}");
    settle(&what, &ledger, pool);
}

#[test]
fn a_getter_and_a_returner() {
    one_way(1, 1, 1, 1);
    one_way(1, 1, 3, 1);
    one_way(1, 1, 1, 3);
}

#[test]
fn two_getters_one_returner_and_back() {
    one_way(2, 1, 2, 1);
    one_way(1, 2, 1, 2);
}

// ---------------------------------------------------------------------------
// `take` and `put` on other threads.
// ---------------------------------------------------------------------------

/// Owner-slot guards sent to other threads and consumed there by `take`:
/// both owner slots empty, the owner's next gets make new values into them;
/// the taken values come back by `put` on yet another thread, to the
/// strategy, where a non-owner finds them. Counts exact.
#[test]
fn first_thread_values_taken_on_other_threads() {
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

/// `take`, `put` and `try_get` of pocket values on this thread and others:
/// `try_get` never creates, finds a value in a dead thread's pocket, and
/// finds nothing while the only values are in use.
#[test]
fn take_put_and_try_get_of_pocket_values() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    // A thread's own pocket, not the owner slots, is what this tests (the
    // gone owner's get, create and take are counted below).
    owner_gone(&pool);
    assert!(pool.try_get().is_none());
    let a = pool.get();
    assert!(in_pocket(&a));
    let kept = PoolGuard::take(a);
    assert!(pool.try_get().is_none(), "nothing is idle");
    // Another thread puts it back: into its own pocket, and exits.
    let p = Arc::clone(&pool);
    std::thread::spawn(move || drop(p.put(kept)))
        .join()
        .unwrap();
    assert_eq!(pool.idle(), 1);
    // This thread's pocket is empty: try_get takes it from the dead pocket.
    let g = pool.try_get().expect("the put value is idle");
    assert!(
        in_pocket(&g),
        "a value found elsewhere is kept in the pocket"
    );
    let gid = g.id;
    // While it is in use nothing is idle: try_get finds nothing, on any thread.
    assert!(pool.try_get().is_none());
    let p = Arc::clone(&pool);
    assert!(std::thread::spawn(move || p.try_get().is_none())
        .join()
        .unwrap());
    drop(g);
    // `take` of a pocket value whose guard went to another thread and back.
    let owned = pool.get_owned();
    assert_eq!(owned.id, gid);
    let back = std::thread::spawn(move || owned).join().unwrap();
    let t = OwnedPoolGuard::take(back);
    assert_eq!(t.id, gid);
    assert!(pool.try_get().is_none());
    let s = pool.stats().unwrap();
    assert_eq!((s.creates, s.taken, s.puts, s.idle), (2, 3, 1, 0), "{s}");
    let _ = pool.put(t);
    // With both slots in use, a put value goes to the overflow, and
    // `try_get` hands it out spilled.
    let (x, y) = (pool.get(), pool.get());
    assert!(in_pocket(&x) && in_pocket(&y));
    let _ = pool.put(ledger.make());
    let z = pool.try_get().expect("the put value");
    assert!(!in_pocket(&z), "no free slot: {z:?}");
    drop((x, y, z));
    assert_eq!(pool.idle(), 3);
    assert_eq!(pool.stats().unwrap().creates, 3);
    settle("take, put, try_get", &ledger, pool);
}

// ---------------------------------------------------------------------------
// The first thread exits with values idle or lent; the threads after it.
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
// A thread exits; its index, so its pocket, passes to a new thread.
// ---------------------------------------------------------------------------

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

/// A thread gets X (its pocket's first slot) and leaves Y idle in the second,
/// hands X's guard to this thread and exits. A new thread that received the
/// same index works with the inherited pocket while X is still out, then X
/// comes back from this thread into the new thread's pocket: the new thread
/// holds exactly X and Y, made by nobody else. Then the same with X coming
/// back only after the new thread exited too: whoever gets two values next
/// gets X and Y, wherever it lives.
#[test]
fn a_pocket_ticket_outlives_its_thread_and_the_index_passes_on() {
    rounds_passing_an_index_on(10, "the pocket", |round| {
        let release_late = round % 2 == 1;
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let p = Arc::clone(&pool);
        let (slot, x, gid, xid, yid) = std::thread::spawn(move || {
            let slot = slot_address();
            let x = p.get_owned();
            assert!(in_pocket(&x));
            let gid = next_guard();
            x.hold(gid);
            let y = p.get();
            assert!(in_pocket(&y));
            let yid = y.id;
            drop(y);
            let xid = x.id;
            (slot, x, gid, xid, yid)
        })
        .join()
        .unwrap();
        assert_eq!(pool.idle(), 1);
        let (ready_tx, ready_rx) = mpsc::channel();
        let released = Arc::new(AtomicBool::new(false));
        let (p, r) = (Arc::clone(&pool), Arc::clone(&released));
        let inheritor = on_inherited_index(slot, move || {
            let first = p.get();
            let inherited = in_pocket(&first) && first.id == yid;
            drop(first);
            // Get and return, one value at a time, while X is out (the
            // pocket's free slot serves) and as it comes back (X, too).
            let rounds = heavy(20_000);
            let mut i = 0;
            while i < rounds || !(release_late || r.load(SeqCst)) {
                let a = p.get();
                a.use_for(|| ());
                i += 1;
                if i == (rounds / 2).max(1) {
                    ready_tx.send(()).unwrap();
                }
            }
            if release_late {
                // X is still out: a second value would be made.
                return (inherited, true, HashSet::new());
            }
            let (a, b) = (p.get(), p.get());
            let both = in_pocket(&a) && in_pocket(&b);
            (inherited, both, HashSet::from([a.id, b.id]))
        });
        let what = format!("round {round}");
        let passed_on = inheritor.is_some();
        match inheritor {
            Some(inheritor) => {
                ready_rx.recv().unwrap();
                if !release_late {
                    // X comes back into the pocket the new thread uses now.
                    x.release(gid);
                    drop(x);
                    released.store(true, SeqCst);
                    let (inherited, both, ids) = inheritor.join().unwrap();
                    assert!(inherited, "{what}: the new thread did not find Y");
                    assert!(both, "{what}: the two values were not both in the pocket");
                    assert_eq!(ids, HashSet::from([xid, yid]), "{what}");
                } else {
                    let (inherited, ..) = inheritor.join().unwrap();
                    assert!(inherited, "{what}: the new thread did not find Y");
                    x.release(gid);
                    drop(x);
                }
            }
            None => {
                x.release(gid);
                drop(x);
            }
        }
        if release_late {
            // Both idle values are in the dead pocket: any thread that holds
            // two at once gets exactly them, by inheriting or by stealing.
            let p = Arc::clone(&pool);
            let ids = std::thread::spawn(move || {
                let (a, b) = (p.get(), p.get());
                HashSet::from([a.id, b.id])
            })
            .join()
            .unwrap();
            assert_eq!(ids, HashSet::from([xid, yid]), "{what}");
        }
        let s = pool.stats().unwrap();
        assert_eq!(s.creates, 2, "{what}: only X and Y were ever made: {s}");
        settle(&what, &ledger, pool);
        passed_on
    });
}

/// A thread exits with both pocket slots full; `decay` on this thread robs
/// them (sets the values aside); a new thread receives the robbed pocket.
/// Its first get finds the robbed slots (it clears them) and takes the set
/// aside values back into its pocket: it holds exactly those two, both in
/// its pocket, nothing is made, and the next `decay` drops nothing.
#[test]
fn an_inherited_pocket_that_was_robbed() {
    rounds_passing_an_index_on(6, "the robbed pocket", |round| {
        let what = format!("round {round}");
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let p = Arc::clone(&pool);
        let (slot, ids) = std::thread::spawn(move || {
            let (a, b) = (p.get(), p.get());
            let ids = HashSet::from([a.id, b.id]);
            drop((a, b));
            (slot_address(), ids)
        })
        .join()
        .unwrap();
        assert_eq!(pool.decay(), 0, "{what}");
        assert_eq!(pool.idle(), 2, "{what}: set aside, still idle");
        let p = Arc::clone(&pool);
        let inheritor = on_inherited_index(slot, move || {
            let (a, b) = (p.get(), p.get());
            let both = in_pocket(&a) && in_pocket(&b);
            let got = HashSet::from([a.id, b.id]);
            drop((a, b));
            // Home in the pocket now: the same two again.
            let (c, d) = (p.get(), p.get());
            let again = HashSet::from([c.id, d.id]);
            (both, got, again)
        });
        let passed_on = inheritor.is_some();
        if let Some(inheritor) = inheritor {
            let (both, got, again) = inheritor.join().unwrap();
            assert!(both, "{what}: the values did not land in the pocket");
            assert_eq!(got, ids, "{what}");
            assert_eq!(again, ids, "{what}");
            assert_eq!(pool.decay(), 0, "{what}: values in use were dropped");
            let s = pool.stats().unwrap();
            assert_eq!(s.creates, 2, "{what}: {s}");
        }
        settle(&what, &ledger, pool);
        passed_on
    });
}

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

// ---------------------------------------------------------------------------
// Nesting on several threads.
// ---------------------------------------------------------------------------

/// Two threads nest up to five gets each and return in shifting orders, with
/// owned guards crossing between them: nothing is held twice and the pool
/// makes no more values than can be out at once, plus a little.
#[test]
fn nested_gets_on_two_threads() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let rounds = heavy(500_000);
    std::thread::scope(|s| {
        let (tx, rx) = mpsc::sync_channel::<OwnedPoolGuard<_, _, _, _, _>>(1);
        let pool = &pool;
        s.spawn(move || {
            for i in 0..rounds {
                let depth = 1 + i % 5;
                let mut held: Vec<_> = (0..depth)
                    .map(|_| {
                        let g = pool.get();
                        let gid = next_guard();
                        g.hold(gid);
                        (g, gid)
                    })
                    .collect();
                held.rotate_left(i % depth);
                for (g, gid) in held {
                    g.release(gid);
                }
                if i % 7 == 0 {
                    let _ = tx.try_send(pool.get_owned());
                }
            }
        });
        s.spawn(move || {
            for i in 0..rounds {
                let depth = 1 + (i * 3) % 5;
                let held: Vec<_> = (0..depth).map(|_| pool.get()).collect();
                held.iter().for_each(|g| g.use_for(|| ()));
                while let Ok(g) = rx.try_recv() {
                    g.use_for(|| ());
                }
                drop(held);
            }
            for g in rx {
                drop(g);
            }
        });
    });
    let made = ledger.created();
    eprintln!("nested on two threads: made {made}");
    assert!(
        made <= 5 + 5 + 2 + 6,
        "made {made}: {}",
        pool.stats().unwrap()
    );
    settle("nested on two threads", &ledger, pool);
}

// ---------------------------------------------------------------------------
// The barrier mode.
// ---------------------------------------------------------------------------

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
