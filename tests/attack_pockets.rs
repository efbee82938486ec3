//! Attacks on `PerThread`'s pockets, which give every thread the fast path
//! that other strategies keep for the pool's owner: a get takes a ticket for
//! a slot of the calling thread's pocket, and the guard returns it with one
//! store, from whichever thread drops it. So a pocket slot's value can be in
//! use on a thread that is not the pocket's own thread, the own thread may
//! exit meanwhile, and its pocket (by its `ThreadSlots` index) may pass to a
//! new thread while the ticket is still out.
//!
//! The attacks: guards returned on other threads while their getter keeps
//! getting; a getter that exits with a ticket out, and the thread that
//! inherits its pocket; an exiting thread that keeps using the pool after it
//! gave its pocket up, racing the pocket's new own thread; `take`, `put`,
//! `try_get`, `trim` and `decay` from other threads racing the own thread's
//! loops; hooks and `Drop` impls that use the pool while a pocket slot is in
//! use; panicking `reset` and `retain` on pocket values; nested gets beyond
//! the pocket's two slots; guards in thread-locals; one-way pipelines; pools
//! used by turns (the per-thread hot cache entry) and created and dropped in
//! a loop; stats (the four-way cache) beside pockets; forgotten pocket
//! guards; values holding guards of their own pool.
//!
//! A test that finds a bug is kept, marked `#[ignore = "bug: ..."]`. Run
//! them under both barriers:
//!
//! ```text
//! cargo test --release --test attack_pockets
//! MEMPOOL_BARRIER=fence cargo test --release --test attack_pockets
//! ```

mod common;

use common::{
    at_exit, check_identities, heavy, hooked_pool, next_guard, scaled, settle,
    silence_expected_panics, tracked_pool, within, Hooked, Knobs, Ledger, OnDrop, Tracked, EARLY,
    LATE,
};
use mempool::{spill, BoxedPool, OwnedPoolGuard, Pool, PoolGuard, StatsCounters, StatsLayer};
use mempool_policies::sync::ThreadSlots;
use std::cell::Cell;
use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock, Weak};
use std::thread::JoinHandle;

/// Whether a guard's value lives in a slot of a pocket: a thread's, or the
/// owner slots, which are a pocket too (from its `Debug`).
fn in_pocket(guard: &impl std::fmt::Debug) -> bool {
    common::from_a_slot(guard)
}

/// Whether a guard's value lives in a thread's pocket, not the owner slots.
fn in_a_thread_pocket(guard: &impl std::fmt::Debug) -> bool {
    format!("{guard:?}").contains("\"pocket\"")
}

/// Makes a thread that exits at once the pool's owner, and takes its value
/// out of the pool: the owner slots stay empty for good, so every thread of
/// the test uses its pocket, as every thread but a pool's first does. The
/// pool's stats count one get, one create and one take.
fn owner_gone<T, C, R, S, M>(pool: &Pool<T, C, R, S, M>)
where
    Pool<T, C, R, S, M>: Sync,
    C: Fn() -> T,
    R: mempool::Reset<T>,
    S: mempool::Spill<T>,
    M: StatsLayer,
{
    std::thread::scope(|s| {
        s.spawn(|| drop(PoolGuard::take(pool.get())));
    });
}

/// A probe that tells which `ThreadSlots` index the calling thread holds: the
/// address of its slot in a `ThreadSlots` of this file's own. The index is
/// the same in every `ThreadSlots`, so it names the thread's pocket in every
/// pool.
fn slot_address() -> usize {
    static PROBE: OnceLock<ThreadSlots<AtomicUsize>> = OnceLock::new();
    PROBE
        .get_or_init(ThreadSlots::new)
        .get()
        .map_or(0, |slot| slot as *const AtomicUsize as usize)
}

/// Runs `f` on a new thread that received the `ThreadSlots` index whose probe
/// address is `slot` (an exited thread's), if one does within 256 tries:
/// threads that get another index stay parked until one gets this one
/// (indices are handed out lowest first). `None` if threads of other tests
/// kept the index the whole time.
fn on_inherited_index<R: Send + 'static>(
    slot: usize,
    f: impl FnOnce() -> R + Send + 'static,
) -> Option<JoinHandle<R>> {
    let f = Arc::new(Mutex::new(Some(f)));
    let mut parked = Vec::new();
    let mut found = None;
    for _ in 0..256 {
        let (info_tx, info_rx) = mpsc::channel();
        let (free_tx, free_rx) = mpsc::channel::<()>();
        let f = Arc::clone(&f);
        let handle = std::thread::spawn(move || {
            if slot_address() != slot {
                info_tx.send(false).unwrap();
                let _ = free_rx.recv();
                return None;
            }
            info_tx.send(true).unwrap();
            let f = f.lock().unwrap().take().unwrap();
            Some(f())
        });
        if info_rx.recv().unwrap() {
            found = Some(handle);
            break;
        }
        parked.push((handle, free_tx));
    }
    for (handle, free) in parked {
        drop(free);
        assert!(handle.join().unwrap().is_none());
    }
    found.map(|handle| {
        std::thread::spawn(move || handle.join().unwrap().expect("the inheritor ran"))
    })
}

// ---------------------------------------------------------------------------
// Guards returned on other threads.
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

/// Runs `round` `rounds` times; each says whether a new thread received
/// the index it waited for (threads of other tests may keep it, so a round
/// may check less). Fails if no round ever saw the index passed on.
fn rounds_passing_an_index_on(rounds: usize, what: &str, mut round: impl FnMut(usize) -> bool) {
    let passed_on = (0..rounds).filter(|&r| round(r)).count();
    eprintln!("rounds in which a new thread inherited {what}: {passed_on} of {rounds}");
    assert!(
        passed_on > 0,
        "no thread ever received the exited thread's index"
    );
}

// ---------------------------------------------------------------------------
// A pocket's own thread exits; its index (so its pocket) passes on.
// ---------------------------------------------------------------------------

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

/// A thread fills its pocket, and keeps using the pool in a thread-local
/// destructor that runs after it gave its index back, while a new thread
/// that received that index uses the pocket: the exiting thread must not
/// touch the pocket any more (its gets come from elsewhere), and no value is
/// held twice.
#[test]
fn an_exiting_thread_never_uses_the_pocket_it_gave_up() {
    rounds_passing_an_index_on(6, "the pocket", |round| {
        let what = format!("round {round}");
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        let (slot_tx, slot_rx) = mpsc::channel();
        let (released_tx, released_rx) = mpsc::channel();
        let (go_tx, go_rx) = mpsc::channel::<()>();
        let pocket_gets_after_exit = Arc::new(AtomicUsize::new(usize::MAX));
        let (p, seen) = (Arc::clone(&pool), Arc::clone(&pocket_gets_after_exit));
        let exiting = std::thread::spawn(move || {
            EARLY.with(|_| ());
            let p2 = Arc::clone(&p);
            // Registered before the thread's first use of a `ThreadSlots`:
            // runs after the thread gave its index back.
            at_exit(&EARLY, move || {
                let _ = released_tx.send(());
                let _ = go_rx.recv();
                let mut pocket = 0;
                for i in 0..heavy(20_000) {
                    let a = p2.get();
                    // The thread is the pool's owner, whose owner slots stay
                    // its own to the end: only a ThreadSlots pocket counts.
                    pocket += usize::from(in_a_thread_pocket(&a));
                    let ga = next_guard();
                    a.hold(ga);
                    if i % 2 == 0 {
                        let b = p2.get();
                        pocket += usize::from(in_a_thread_pocket(&b));
                        b.use_for(|| ());
                    }
                    if i % 1_000 == 999 {
                        p2.trim();
                    }
                    a.release(ga);
                }
                // No panic here: it would abort the process. The test
                // checks the count.
                seen.store(pocket, SeqCst);
            });
            slot_tx.send(slot_address()).unwrap();
            drop((p.get(), p.get()));
        });
        let slot = slot_rx.recv().unwrap();
        released_rx.recv().unwrap();
        let start = Arc::new(Barrier::new(2));
        let (p, st) = (Arc::clone(&pool), Arc::clone(&start));
        let inheritor = on_inherited_index(slot, move || {
            st.wait();
            let mut pocket = 0;
            for i in 0..heavy(20_000) {
                let a = p.get();
                pocket += usize::from(in_pocket(&a));
                let ga = next_guard();
                a.hold(ga);
                if i % 3 == 0 {
                    p.get().use_for(|| ());
                }
                a.release(ga);
            }
            pocket
        });
        let passed_on = inheritor.is_some();
        if let Some(inheritor) = inheritor {
            // Both loops at once.
            start.wait();
            go_tx.send(()).unwrap();
            let pocket = inheritor.join().unwrap();
            assert!(
                pocket > 0,
                "{what}: the new thread's gets never came from its pocket"
            );
        }
        // Without an inheritor (threads of other tests took the index), the
        // exiting thread's loop runs alone: its checks still hold.
        let _ = go_tx.send(());
        exiting.join().unwrap();
        assert_eq!(
            pocket_gets_after_exit.load(SeqCst),
            0,
            "{what}: a thread that gave its index back still got values from a pocket"
        );
        settle(&what, &ledger, pool);
        passed_on
    });
}

// ---------------------------------------------------------------------------
// take, put, try_get, trim and decay.
// ---------------------------------------------------------------------------

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
// Hooks and Drop that use the pool while a pocket slot is in use; panics.
// ---------------------------------------------------------------------------

thread_local! {
    /// Set while a hook uses its pool, so that the hooks that use runs do
    /// not use it again (endless recursion would be the user's bug).
    static IN_HOOK: Cell<bool> = const { Cell::new(false) };
}

/// Everything a hook can do with its own pool while the value being
/// returned still holds its pocket slot.
fn reenter(pool: &Hooked, knobs: &Knobs) {
    if IN_HOOK.with(|f| f.replace(true)) {
        return;
    }
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
    let _ = (pool.idle(), pool.stats(), format!("{pool:?}"));
    drop(a);
    knobs.reentered.fetch_add(1, SeqCst);
    IN_HOOK.with(|f| f.set(false));
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

/// A panicking `reset`, a panicking `retain` and a refusing `retain`, on the
/// value of either pocket slot, returned on the getter's thread and on
/// another: the value is dropped once, counted once, never handed out again,
/// and the slot takes a new value on the next get.
#[test]
fn panicking_and_refusing_hooks_on_pocket_values() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let knobs = Arc::new(Knobs::default());
    let pool = hooked_pool(&ledger, &knobs, reenter);
    let flags: [(&str, &AtomicBool); 3] = [
        ("reset panics", &knobs.reset_panics),
        ("retain panics", &knobs.retain_panics),
        ("retain refuses", &knobs.retain_refuses),
    ];
    for (what, flag) in flags {
        for second_slot in [false, true] {
            for elsewhere in [false, true] {
                let what = format!("{what}, second slot {second_slot}, elsewhere {elsewhere}");
                let before = pool.stats().unwrap();
                let dropped = ledger.dropped();
                let first = pool.get_owned();
                let second = pool.get_owned();
                assert!(in_pocket(&first) && in_pocket(&second), "{what}");
                let (victim, other) = if second_slot {
                    (second, first)
                } else {
                    (first, second)
                };
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
                assert_eq!(
                    ledger.dropped(),
                    dropped + 1,
                    "{what}: the value was not dropped"
                );
                drop(other);
                let s = pool.stats().unwrap();
                assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                if refused {
                    assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                } else {
                    assert_eq!(s.discarded, before.discarded + 1, "{what}: {s}");
                }
                check_identities(&s, &what);
                // Both slots serve again, and the dropped value is gone.
                let (a, b) = (pool.get(), pool.get());
                assert!(in_pocket(&a) && in_pocket(&b), "{what}: {a:?} {b:?}");
                assert!(
                    a.id != vid && b.id != vid,
                    "{what}: a dropped value came back"
                );
                drop((a, b));
                assert_eq!(pool.stats().unwrap().in_use, 0);
            }
        }
    }
    settle("panicking hooks", &ledger, pool);
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

// ---------------------------------------------------------------------------
// Nested gets.
// ---------------------------------------------------------------------------

/// Nested gets of 1 to 8 values on one thread, returned first to last, last
/// to first and interleaved: the first two are the thread's slots' (the
/// owner slots: the first thread has no other pocket), the rest spilled,
/// all distinct; the pool makes exactly as many values as the
/// deepest nesting and counts each get where it was served.
#[test]
fn nested_gets_beyond_the_pocket() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let mut deepest = 0;
    for depth in (1..=8).chain((1..=8).rev()) {
        deepest = usize::max(deepest, depth);
        for order in 0..3 {
            let what = format!("depth {depth}, order {order}");
            let before = pool.stats().unwrap();
            let mut held: Vec<_> = (0..depth)
                .map(|_| {
                    let g = pool.get();
                    let gid = next_guard();
                    g.hold(gid);
                    (g, gid)
                })
                .collect();
            for (i, (g, _)) in held.iter().enumerate() {
                assert_eq!(in_pocket(g), i < 2, "{what}: get {i}: {g:?}");
            }
            let ids: HashSet<usize> = held.iter().map(|(g, _)| g.id).collect();
            assert_eq!(ids.len(), depth, "{what}: a value handed out twice");
            match order {
                0 => held.reverse(),
                1 => {}
                _ => {
                    let (even, odd): (Vec<_>, Vec<_>) =
                        held.into_iter().enumerate().partition(|(i, _)| i % 2 == 0);
                    held = odd.into_iter().chain(even).map(|(_, g)| g).collect();
                }
            }
            for (g, gid) in held {
                g.release(gid);
                drop(g);
            }
            let s = pool.stats().unwrap();
            assert_eq!(s.creates as usize, deepest, "{what}: {s}");
            assert_eq!(s.idle, deepest, "{what}: {s}");
            let made = s.creates - before.creates;
            let (slot, spilled) = (
                s.slot_hits - before.slot_hits,
                s.spill_hits - before.spill_hits,
            );
            assert_eq!(slot + spilled + made, depth as u64, "{what}: {s}");
            if made == 0 {
                // The owner slots' two, then the overflow.
                assert_eq!(slot, depth.min(2) as u64, "{what}: {s}");
            }
            check_identities(&s, &what);
        }
    }
    settle("nested", &ledger, pool);
}

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
// Guards in thread-locals.
// ---------------------------------------------------------------------------

/// A thread keeps pocket guards of its own and one of the main thread's in
/// thread-locals: one dropped before the thread gives its index back (it
/// goes home to the pocket with one store), the others after (one into the
/// pocket the thread gave up, the other into the main thread's pocket); and
/// it uses the pool in both, getting pocket values only while it still has
/// its pocket. The main thread then finds its own value back in its pocket.
#[test]
fn pocket_guards_in_thread_locals() {
    fn scenario<M: StatsLayer + Send + Sync + 'static>(
        what: &str,
        build: impl Fn(Arc<Ledger>) -> BoxedPool<Tracked, spill::PerThread<Tracked>, M>,
    ) {
        let ledger = Ledger::new();
        let pool = Arc::new(build(Arc::clone(&ledger)));
        // The first value (id 0, which the picky `retain` below keeps).
        let mine = pool.get_owned();
        assert!(in_pocket(&mine));
        let mine_id = mine.id;
        let early_pocket = Arc::new(AtomicUsize::new(usize::MAX));
        let late_pocket = Arc::new(AtomicUsize::new(usize::MAX));
        let (p, early, late) = (
            Arc::clone(&pool),
            Arc::clone(&early_pocket),
            Arc::clone(&late_pocket),
        );
        std::thread::spawn(move || {
            EARLY.with(|_| ());
            let a = p.get_owned();
            let b = p.get_owned();
            assert!(in_pocket(&a) && in_pocket(&b));
            let (pe, pl) = (Arc::clone(&p), Arc::clone(&p));
            // After the index is given back: in this order.
            at_exit(&EARLY, move || drop(a));
            at_exit(&EARLY, move || {
                let mut pocket = 0;
                for _ in 0..20 {
                    let g = pe.get();
                    pocket += usize::from(in_pocket(&g));
                    let t = PoolGuard::take(pe.get());
                    let _ = pe.put(t);
                    drop(pe.try_get());
                    drop((pe.get_owned(), pe.get()));
                }
                pe.decay();
                pe.trim();
                early.store(pocket, SeqCst);
            });
            at_exit(&EARLY, move || drop(mine));
            // Before: the second slot's guard goes home, then its value serves.
            at_exit(&LATE, move || drop(b));
            at_exit(&LATE, move || {
                let mut pocket = 0;
                for _ in 0..20 {
                    let g = pl.get();
                    pocket += usize::from(in_pocket(&g));
                    drop(pl.try_get());
                }
                late.store(pocket, SeqCst);
            });
        })
        .join()
        .unwrap();
        assert_eq!(
            early_pocket.load(SeqCst),
            0,
            "{what}: pocket values after the thread gave its index back"
        );
        assert_eq!(
            late_pocket.load(SeqCst),
            20,
            "{what}: no pocket values before the thread gave its index back"
        );
        let g = pool.get();
        assert_eq!(
            g.id, mine_id,
            "{what}: this thread's value did not come home"
        );
        assert!(in_pocket(&g));
        drop(g);
        settle(what, &ledger, pool);
    }
    scenario("stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .stats()
            .build_boxed()
    });
    scenario("no stats", |l| {
        Pool::builder()
            .create(move || l.make())
            .retain(|t: &Tracked| t.id % 5 != 4)
            .build_boxed()
    });
}

// ---------------------------------------------------------------------------
// One-way pipelines.
// ---------------------------------------------------------------------------

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
// The per-thread caches: pools by turns, pools created and dropped.
// ---------------------------------------------------------------------------

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

fn next_tag() -> usize {
    static NEXT: AtomicUsize = AtomicUsize::new(1);
    NEXT.fetch_add(1, SeqCst)
}

fn tagged_pool(tag: usize, ledger: &Arc<Ledger>) -> TaggedPool {
    let l = Arc::clone(ledger);
    Pool::builder()
        .create(Box::new(move || Tagged {
            pool: tag,
            t: l.make(),
        }) as Box<dyn Fn() -> Tagged + Send + Sync>)
        .stats()
        .build()
}

/// Pools used by turns on one thread take the thread's hot cache entry from
/// each other on every get, and their stats share the four-way cache (more
/// pools than ways): each get must still find its own pool's pocket. On one
/// thread that is exact: one value made per pool and nesting level, every
/// other get a pocket hit.
#[test]
fn pools_by_turns_on_one_thread_keep_their_own_pockets() {
    for pools_n in [2, 5, 9] {
        let ledger = Ledger::new();
        let pools: Vec<(usize, TaggedPool)> = (0..pools_n)
            .map(|_| {
                let tag = next_tag();
                (tag, tagged_pool(tag, &ledger))
            })
            .collect();
        let rounds = heavy(50_000);
        for i in 0..rounds {
            for (tag, pool) in &pools {
                let g = pool.get();
                assert_eq!(g.pool, *tag);
                g.t.use_for(|| ());
            }
            // Nested by turns: every pool's second slot too.
            if i % 10 == 0 {
                let firsts: Vec<_> = pools.iter().map(|(_, p)| p.get()).collect();
                let seconds: Vec<_> = pools.iter().map(|(_, p)| p.get()).collect();
                for ((tag, _), (a, b)) in pools.iter().zip(firsts.iter().zip(&seconds)) {
                    assert_eq!((a.pool, b.pool), (*tag, *tag));
                    assert!(in_pocket(a) && in_pocket(b));
                }
            }
        }
        for (tag, pool) in &pools {
            let s = pool.stats().unwrap();
            let gets = (rounds + 2 * rounds.div_ceil(10)) as u64;
            assert_eq!(s.gets, gets, "{pools_n} pools, pool {tag}: {s}");
            assert_eq!(s.creates, 2, "{pools_n} pools, pool {tag}: {s}");
            assert_eq!(s.slot_hits, gets - 2, "{pools_n} pools, pool {tag}: {s}");
            check_identities(&s, &format!("pool {tag}"));
        }
        assert!(!ledger.double_use.load(SeqCst));
        drop(pools);
        assert_eq!(ledger.created(), ledger.dropped());
    }
}

/// Pools created and dropped in a loop, five alive at once, on two threads
/// (a new pool often lands at the address of one just dropped): a new pool
/// never shows a dropped pool's pocket values or counts, each value comes
/// from its own pool, and a dropped pool's values (in the pockets of both
/// threads) are dropped with it.
#[test]
fn pools_created_and_dropped_never_inherit_pockets() {
    let ledger = Ledger::new();
    let same_address = AtomicUsize::new(0);
    std::thread::scope(|s| {
        for _ in 0..2 {
            let (ledger, same_address) = (&ledger, &same_address);
            s.spawn(move || {
                let mut alive: Vec<(usize, Box<TaggedPool>)> = Vec::new();
                let mut last_dropped = 0usize;
                for i in 0..heavy(40_000) {
                    let tag = next_tag();
                    let pool = Box::new(tagged_pool(tag, ledger));
                    let address = &*pool as *const TaggedPool as usize;
                    if address == last_dropped {
                        same_address.fetch_add(1, SeqCst);
                    }
                    assert_eq!(pool.idle(), 0, "a new pool shows idle values");
                    assert!(pool.try_get().is_none(), "a new pool handed out a value");
                    let st = pool.stats().unwrap();
                    assert_eq!((st.gets, st.creates, st.returns), (0, 0, 0), "{st}");
                    alive.push((tag, pool));
                    for (tag, pool) in &alive {
                        let (a, b) = (pool.get(), pool.get());
                        assert_eq!((a.pool, b.pool), (*tag, *tag));
                        a.t.use_for(|| b.t.use_for(|| ()));
                    }
                    if alive.len() == 5 {
                        let (_, old) = alive.remove(i % 5);
                        // Its values sit in this thread's pocket: two.
                        assert_eq!(old.idle(), 2);
                        last_dropped = &*old as *const TaggedPool as usize;
                        drop(old);
                    }
                }
                drop(alive);
            });
        }
    });
    assert!(!ledger.double_use.load(SeqCst));
    assert_eq!(ledger.created(), ledger.dropped());
    eprintln!(
        "a new pool at the address of the one dropped before it: {} times",
        same_address.load(SeqCst)
    );
}

/// `ThreadSlots` directly, through the hot entry (`get_hot`) as pockets use
/// it, beside the four-way cache (`get`) as stats use it: a new
/// `ThreadSlots`, often at the address of the one just dropped, never shows
/// the old one's slot through a stale hot entry; two alive at once used by
/// turns keep their slots; and `get_hot` and `get` agree.
#[test]
fn thread_slots_hot_entry_never_confused() {
    let mut same_address = 0;
    let mut last = 0usize;
    let keep: ThreadSlots<AtomicUsize> = ThreadSlots::new();
    keep.get().unwrap().store(7, SeqCst);
    for round in 1..scaled(50_000) {
        let a: Box<ThreadSlots<AtomicUsize>> = Box::new(ThreadSlots::new());
        let address = &*a as *const _ as usize;
        same_address += usize::from(address == last);
        last = address;
        let hot = a.get_hot().expect("a slot");
        assert_eq!(
            hot.load(SeqCst),
            0,
            "round {round}: a new ThreadSlots shows a value"
        );
        hot.store(round, SeqCst);
        // The four-way entry of another ThreadSlots in between, then the
        // hot one again.
        assert_eq!(keep.get().unwrap().load(SeqCst), 7);
        assert!(std::ptr::eq(a.get_hot().unwrap(), a.get().unwrap()));
        assert_eq!(a.get_hot().unwrap().load(SeqCst), round);
        // Two by turns through the hot entry.
        let b: ThreadSlots<AtomicUsize> = ThreadSlots::new();
        b.get_hot().unwrap().store(round + 1, SeqCst);
        assert_eq!(a.get_hot().unwrap().load(SeqCst), round);
        assert_eq!(b.get_hot().unwrap().load(SeqCst), round + 1);
        assert_eq!(keep.get_hot().unwrap().load(SeqCst), 7);
        drop(b);
        drop(a);
    }
    eprintln!("a new ThreadSlots at the address of the one before it: {same_address} times");
}

/// Stats count in per-thread blocks found through the four-way cache while
/// the pockets use the hot entry: six threads on three pools with stats and
/// one without, by turns and nested. Every get is counted, in its own pool.
#[test]
fn stats_and_pockets_on_many_threads() {
    const THREADS: usize = 6;
    let ledger = Ledger::new();
    let tags: Vec<usize> = (0..3).map(|_| next_tag()).collect();
    let pools: Vec<TaggedPool> = tags.iter().map(|&t| tagged_pool(t, &ledger)).collect();
    let plain_ledger = Ledger::new();
    let pl = Arc::clone(&plain_ledger);
    let plain = Pool::new(move || pl.make());
    let rounds = heavy(200_000);
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let (pools, tags, plain) = (&pools, &tags, &plain);
            s.spawn(move || {
                for i in 0..rounds {
                    let k = (i + t) % 3;
                    let a = pools[k].get();
                    assert_eq!(a.pool, tags[k]);
                    let p = plain.get();
                    if i % 4 == 0 {
                        let b = pools[(k + 1) % 3].get();
                        assert_eq!(b.pool, tags[(k + 1) % 3]);
                        b.t.use_for(|| p.use_for(|| ()));
                    }
                    a.t.use_for(|| ());
                }
            });
        }
    });
    let total: u64 = pools.iter().map(|p| p.stats().unwrap().gets).sum();
    assert_eq!(total as usize, THREADS * (rounds + rounds.div_ceil(4)));
    for (k, pool) in pools.iter().enumerate() {
        let s = pool.stats().unwrap();
        let mut expected = 0;
        for t in 0..THREADS {
            for i in 0..rounds {
                expected += usize::from((i + t) % 3 == k);
                expected += usize::from(i % 4 == 0 && (i + t + 1) % 3 == k);
            }
        }
        assert_eq!(s.gets as usize, expected, "pool {k}: {s}");
        assert_eq!(s.in_use, 0, "pool {k}: {s}");
        check_identities(&s, &format!("pool {k}"));
        assert!(s.creates as usize <= 2 * THREADS + 4, "pool {k}: {s}");
    }
    assert!(!ledger.double_use.load(SeqCst));
    assert!(!plain_ledger.double_use.load(SeqCst));
    drop(pools);
    drop(plain);
    assert_eq!(ledger.created(), ledger.dropped());
    assert_eq!(plain_ledger.created(), plain_ledger.dropped());
}

// ---------------------------------------------------------------------------
// Forgotten guards, dropping the pool, values that hold guards.
// ---------------------------------------------------------------------------

/// Forgotten pocket guards: each leaves its slot in use for good. The pool
/// goes on (the free slot, then the overflow), `trim` and `decay` leave the
/// slots alone, memory stays bounded, and dropping the pool leaks exactly
/// the forgotten values. Then on a thread that exits, and the threads after
/// it. (A value with no heap part, so that valgrind sees no leak.)
#[test]
fn forgotten_pocket_guards() {
    static MADE: AtomicUsize = AtomicUsize::new(0);
    static DROPPED: AtomicUsize = AtomicUsize::new(0);
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
    // The thread's own pocket, not the owner slots, is what this tests.
    owner_gone(&pool);
    let first = pool.get();
    assert!(in_a_thread_pocket(&first));
    std::mem::forget(first);
    let g = pool.get();
    assert!(in_a_thread_pocket(&g), "the second slot serves");
    drop(g);
    let second = pool.get();
    assert!(in_a_thread_pocket(&second));
    std::mem::forget(second);
    let before = MADE.load(SeqCst);
    for _ in 0..100 {
        let g = pool.get();
        assert!(!in_a_thread_pocket(&g), "both slots are in use for good");
        drop((g, pool.get()));
        pool.decay();
        pool.trim();
        drop(pool.try_get());
    }
    // Values made: each get after a trim or decay makes one, no more.
    assert!(MADE.load(SeqCst) - before <= 2 * 100 + 2);
    // A thread that forgets both of its slots' guards and exits; the threads
    // after it (one may inherit the dead pocket) still work, and reuse.
    let p = Arc::clone(&pool);
    std::thread::spawn(move || {
        std::mem::forget((p.get(), p.get()));
    })
    .join()
    .unwrap();
    pool.trim();
    let before = MADE.load(SeqCst);
    for _ in 0..4 {
        let p = Arc::clone(&pool);
        std::thread::spawn(move || {
            for _ in 0..100 {
                drop((p.get(), p.get()));
            }
        })
        .join()
        .unwrap();
    }
    assert!(
        MADE.load(SeqCst) - before <= 4,
        "made {} for threads one at a time",
        MADE.load(SeqCst) - before
    );
    let s = pool.stats().unwrap();
    assert_eq!(s.in_use, 4, "{s}");
    check_identities(&s, "forgotten");
    drop(pool);
    assert_eq!(
        MADE.load(SeqCst),
        DROPPED.load(SeqCst) + 4,
        "only the four forgotten values leak"
    );
}

/// Dropping the pool while the pockets of live and exited threads hold
/// values, the overflow too, with a pocket guard out; the last `Arc` goes
/// either here after the guard came back, or with the guard itself on
/// another thread (its value goes back into a pocket of the pool that is
/// dropped right after). Every value is dropped once, while the threads
/// whose pockets held them are still alive.
#[test]
fn dropping_the_pool_drops_every_pocket_value_once() {
    for last_by_guard in [false, true] {
        let what = format!("last by guard: {last_by_guard}");
        let ledger = Ledger::new();
        let pool = tracked_pool(&ledger);
        // Three threads exit with full pockets and a value in the overflow.
        for _ in 0..3 {
            let p = Arc::clone(&pool);
            std::thread::spawn(move || drop((p.get(), p.get(), p.get())))
                .join()
                .unwrap();
        }
        // Three stay alive with full pockets while the pool goes.
        let holding = Arc::new(Barrier::new(3));
        let filled = Arc::new(Barrier::new(4));
        let gone = Arc::new(Barrier::new(4));
        let (guard_tx, guard_rx) = mpsc::channel();
        let threads: Vec<_> = (0..3)
            .map(|t| {
                let (p, holding, filled, gone, guard_tx) = (
                    Arc::clone(&pool),
                    Arc::clone(&holding),
                    Arc::clone(&filled),
                    Arc::clone(&gone),
                    guard_tx.clone(),
                );
                std::thread::spawn(move || {
                    let held = (p.get(), p.get(), p.get());
                    // All three threads hold three at once: nine values.
                    holding.wait();
                    drop(held);
                    if t == 0 {
                        let g = p.get_owned();
                        assert!(in_pocket(&g));
                        guard_tx.send(g).unwrap();
                    }
                    drop(p);
                    filled.wait();
                    gone.wait();
                })
            })
            .collect();
        filled.wait();
        let guard = guard_rx.recv().unwrap();
        assert_eq!(pool.idle(), ledger.created() - 1, "{what}");
        assert!(pool.idle() >= 8, "{what}: idle {}", pool.idle());
        assert_eq!(ledger.dropped(), 0, "{what}");
        assert!(!ledger.double_use.load(SeqCst), "{what}");
        if last_by_guard {
            drop(pool);
            std::thread::spawn(move || drop(guard)).join().unwrap();
        } else {
            drop(guard);
            drop(pool);
        }
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "{what}: every value dropped once"
        );
        gone.wait();
        for t in threads {
            t.join().unwrap();
        }
    }
}

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

// ---------------------------------------------------------------------------
// What a thread's pocket costs.
// ---------------------------------------------------------------------------

/// Forwards to the system allocator, counting the bytes allocated by a
/// thread that asked for it (see `allocated_by`).
struct Counting;

thread_local! {
    /// Whether this thread counts, and how many bytes it allocated so far.
    static COUNTER: Cell<(bool, usize)> = const { Cell::new((false, 0)) };
}

fn note(bytes: usize) {
    let _ = COUNTER.try_with(|c| {
        let (on, n) = c.get();
        if on {
            c.set((on, n + bytes));
        }
    });
}

// SAFETY: every call goes to `System` unchanged; the counting touches a
// `const` thread-local with no destructor, which never allocates.
unsafe impl std::alloc::GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: std::alloc::Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: the caller's promises, passed on.
        unsafe { std::alloc::System.alloc(layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: std::alloc::Layout) -> *mut u8 {
        note(layout.size());
        // SAFETY: as above.
        unsafe { std::alloc::System.alloc_zeroed(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: std::alloc::Layout) {
        // SAFETY: as above.
        unsafe { std::alloc::System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: std::alloc::Layout, new_size: usize) -> *mut u8 {
        note(new_size.saturating_sub(layout.size()));
        // SAFETY: as above.
        unsafe { std::alloc::System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

/// Bytes allocated by `f` on the calling thread.
fn allocated_by(f: impl FnOnce()) -> usize {
    COUNTER.with(|c| c.set((true, 0)));
    f();
    COUNTER.with(|c| c.replace((false, 0)).1)
}

/// The `Pool` docs ("Size"): the pool's size does not depend on `T` (every
/// value is boxed); the first thread's first get allocates the value and
/// nothing else; any other thread's first get with the default strategy
/// allocates a 128-byte pocket and the value, and a bucket of pocket
/// pointers if its index is the first in a new one (64 bytes for the first
/// 8 indices, twice as many for each next bucket). With 16-byte and 4 KiB
/// arrays on the same thread, the difference is that of the two values.
/// (An earlier version of the docs promised 128-byte pockets while they held
/// their values inline; an earlier version of this test found it untrue.)
#[test]
#[cfg(all(target_arch = "x86_64", target_os = "linux"))]
fn a_pockets_cost_is_what_the_pool_docs_say() {
    const SMALL: usize = 16;
    const BIG: usize = 4096;
    assert_eq!(
        std::mem::size_of::<Pool<[u8; SMALL]>>(),
        std::mem::size_of::<Pool<[u8; 1 << 20]>>()
    );
    std::thread::spawn(move || {
        // Whatever a process does once (choosing the barrier's mode) first.
        drop(Pool::new(|| 0u8).get());
        let small_pool = Pool::new(|| [1u8; SMALL]);
        let big_pool = Pool::new(|| [1u8; BIG]);
        // This thread is the first thread of both: the value, no more. It
        // keeps them, so that the other thread must make its own.
        let mut held = (None, None);
        assert_eq!(allocated_by(|| held.0 = Some(small_pool.get())), SMALL);
        assert_eq!(allocated_by(|| held.1 = Some(big_pool.get())), BIG);
        std::thread::scope(|s| {
            s.spawn(|| {
                // Give this thread its index first (registering the
                // destructor that frees it may allocate, once per thread).
                drop(Pool::new(|| 0u8).get());
                drop(std::thread::spawn(|| ()).join());
                let small = allocated_by(|| assert_eq!(small_pool.get()[0], 1));
                let big = allocated_by(|| assert_eq!(big_pool.get()[0], 1));
                assert_eq!(
                    big - small,
                    BIG - SMALL,
                    "a pocket's size depends on T: {small} and {big} bytes"
                );
                let bucket = small - SMALL - 128;
                assert!(
                    bucket == 0 || (bucket % 64 == 0 && (bucket / 64).is_power_of_two()),
                    "a first get allocated {small} bytes with {SMALL}-byte values: \
                     not a 128-byte pocket, the value and a bucket of pointers"
                );
            });
        });
        drop(held);
    })
    .join()
    .unwrap();
}

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
