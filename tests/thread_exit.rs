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
//!
//! Also: guards of the first thread's slots and of pockets kept in
//! thread-locals (of their getter and of another thread) with `decay`,
//! `try_get`, `retain`, stats and `BoxedPool`, returned before and after the
//! thread gives its `ThreadSlots` index back; a thread that keeps using the
//! pool after it gave its index up never touches the pocket its successor
//! now owns (this one parks up to 256 threads while it waits for the
//! successor, see `common::on_inherited_index`); a `ThreadSlots` asked during
//! thread exit.

mod common;

use common::{
    at_exit, check_invariants, from, heavy, in_a_thread_pocket, in_pocket, next_guard,
    on_inherited_index, rounds_passing_an_index_on, scaled, settle, slot_address, tracked_pool,
    Ledger, Tracked, TrackedPool, EARLY, LATE, OWNER, SPILL,
};
use mempool::{spill, BoxedPool, Pool, PoolGuard, Spill, StatsLayer};
use mempool_policies::sync::ThreadSlots;
use std::cell::RefCell;
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{mpsc, Arc, Barrier, Mutex, OnceLock};

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

// ---------------------------------------------------------------------------
// Guards kept in thread-locals, returned during thread exit.
// ---------------------------------------------------------------------------

/// Everything the new features let a thread do with a pool during its exit.
fn use_all_during_exit<S: Spill<Tracked>, M: mempool::StatsLayer>(
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
            at_exit(&EARLY, move || use_all_during_exit(&early));
            use_all_during_exit(&p);
            // A guard taken from the owner slot, if this thread owns it.
            let kept_late = p.get_owned();
            let kept_late2 = p.get_owned();
            at_exit(&LATE, move || drop(kept_late));
            at_exit(&LATE, move || use_all_during_exit(&late));
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

/// The owner keeps both owner-slot guards in thread-locals, one returned
/// before it gives its `ThreadSlots` index back and one after; it keeps
/// using the pool in both: its owner slots serve it to the very end (its
/// pocket only before it gave its index back). Afterwards every value is
/// accounted for and another thread reuses them all.
#[test]
fn first_thread_guards_in_the_owners_thread_locals() {
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
fn first_thread_guards_in_another_threads_thread_locals() {
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
// Threads that use the pool after giving up their per-thread index.
// ---------------------------------------------------------------------------

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
