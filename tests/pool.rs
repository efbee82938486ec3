//! The pool's semantics on one thread and across a few; and nested gets 1
//! to 8 deep in every return order, with exact counts of where each value
//! went (the first thread's slots, then the spill).

mod common;

use common::{
    check_identities, check_invariants, from, in_pocket, next_guard, permutations, settle,
    tracked_pool, tracked_with, under_valgrind, Ledger, Tracked, OWNER, POCKET, SPILL,
};
use mempool::{spill, OwnedPoolGuard, Pool, PoolGuard, Spill};
use std::collections::HashSet;
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, LazyLock};

fn counting_pool() -> (Arc<AtomicUsize>, impl Fn() -> Vec<u8>) {
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    (made, move || {
        counter.fetch_add(1, SeqCst);
        Vec::with_capacity(16)
    })
}

#[test]
fn owner_reuses_one_value() {
    let (made, create) = counting_pool();
    let pool = Pool::builder().create(create).reset(Vec::clear).build();
    let first = pool.get().as_ptr();
    for _ in 0..100 {
        let mut v = pool.get();
        assert!(v.is_empty(), "reset must clear the value before reuse");
        assert_eq!(v.as_ptr(), first, "the owner must get its one value back");
        v.push(1);
    }
    assert_eq!(made.load(SeqCst), 1);
    assert_eq!(pool.idle(), 1);
}

/// The owner holds two values at once in its two owner slots; a third comes
/// from the spill.
#[test]
fn nested_gets_fill_the_owner_slots_then_use_the_spill() {
    let (made, create) = counting_pool();
    let pool = Pool::builder()
        .create(create)
        .spill(spill::Mutex::default())
        .build();
    {
        let a = pool.get();
        let b = pool.get();
        let c = pool.get();
        assert_ne!(a.as_ptr(), b.as_ptr(), "two guards never share a value");
        assert_ne!(b.as_ptr(), c.as_ptr(), "two guards never share a value");
        for owned in [&a, &b] {
            assert_eq!(
                format!("{owned:?}"),
                "PoolGuard { value: [], from: \"owner slot\" }"
            );
        }
        assert_eq!(format!("{c:?}"), "PoolGuard { value: [], from: \"spill\" }");
    }
    assert_eq!(pool.idle(), 3);
    {
        let _a = pool.get();
        let _b = pool.get();
        let _c = pool.get();
    }
    assert_eq!(made.load(SeqCst), 3, "the spilled value is reused");
}

/// With the default strategy, a thread that is not the owner holds two
/// values at once in its pocket's two slots; a third comes from the spill.
#[test]
fn nested_gets_fill_the_pocket_then_the_spill() {
    let (made, create) = counting_pool();
    let pool = Pool::builder().create(create).build();
    // The owner is another thread, gone, whose value left the pool.
    std::thread::scope(|s| {
        s.spawn(|| drop(PoolGuard::take(pool.get())));
    });
    for _ in 0..3 {
        let a = pool.get();
        let b = pool.get();
        let c = pool.get();
        assert_ne!(a.as_ptr(), b.as_ptr(), "two guards never share a value");
        assert_ne!(b.as_ptr(), c.as_ptr(), "two guards never share a value");
        assert_eq!(
            format!("{a:?}"),
            "PoolGuard { value: [], from: \"pocket\" }"
        );
        assert_eq!(
            format!("{b:?}"),
            "PoolGuard { value: [], from: \"pocket\" }"
        );
        assert_eq!(format!("{c:?}"), "PoolGuard { value: [], from: \"spill\" }");
    }
    assert_eq!(pool.idle(), 3);
    assert_eq!(made.load(SeqCst), 4, "every value is reused");
}

#[test]
fn every_strategy_serves_nested_gets() {
    for_each_spill!(|name, spill| {
        let (made, create) = counting_pool();
        let pool = Pool::builder().create(create).spill(spill).build();
        for _ in 0..3 {
            let _a = pool.get();
            let _b = pool.get();
            let _c = pool.get();
        }
        // Two owner slots and, with `None`, nowhere for a third value.
        let expected = if name == "None" { 2 + 3 } else { 3 };
        assert_eq!(made.load(SeqCst), expected, "{name}");
        assert_eq!(pool.idle(), if name == "None" { 2 } else { 3 }, "{name}");
    });
}

#[test]
fn other_threads_reuse_spilled_values() {
    let (made, create) = counting_pool();
    let pool = Pool::builder().create(create).build();
    drop(pool.get()); // this thread owns the slot
    for _ in 0..10 {
        std::thread::scope(|s| {
            s.spawn(|| pool.get().push(1));
        });
    }
    assert_eq!(
        made.load(SeqCst),
        1,
        "the owner's idle value, reused by every other thread"
    );
}

#[test]
fn take_empties_the_owner_slot_and_the_next_get_refills_it() {
    let (made, create) = counting_pool();
    let pool = Pool::builder().create(create).build();
    let v = PoolGuard::take(pool.get());
    assert_eq!(v.capacity(), 16);
    assert_eq!(pool.idle(), 0);
    drop(pool.get());
    assert_eq!(made.load(SeqCst), 2);
    assert_eq!(pool.idle(), 1);
    // The refilled slot is the fast one again: no more creations.
    for _ in 0..10 {
        drop(pool.get());
    }
    assert_eq!(made.load(SeqCst), 2);
}

#[test]
fn put_resets_and_the_owner_refills_from_the_spill() {
    let (made, create) = counting_pool();
    let pool = Pool::builder().create(create).reset(Vec::clear).build();
    let mut v = PoolGuard::take(pool.get());
    v.extend_from_slice(b"dirty");
    let _ = pool.put(v);
    assert_eq!(pool.idle(), 1);
    let again = pool.get();
    assert!(again.is_empty());
    assert_eq!(made.load(SeqCst), 1, "the put value came back");
}

#[test]
fn put_into_none_drops_the_value() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::None)
        .build();
    let _ = pool.put(vec![1]);
    assert_eq!(pool.idle(), 0);
}

#[test]
fn trim_on_the_owner_thread_drops_everything() {
    for_each_spill!(|name, spill| {
        let pool = Pool::builder().create(Vec::<u8>::new).spill(spill).build();
        drop((pool.get(), pool.get(), pool.get()));
        let held = pool.idle();
        assert_eq!(pool.trim(), held, "{name}");
        assert_eq!(pool.idle(), 0, "{name}");
        drop(pool.get());
        assert_eq!(pool.idle(), 1, "{name}: usable after trim");
    });
}

#[test]
fn trim_on_another_thread_drops_the_owner_slots_value_too() {
    for_each_spill!(|name, spill| {
        let pool = Pool::builder().create(Vec::<u8>::new).spill(spill).build();
        drop((pool.get(), pool.get()));
        let held = pool.idle();
        let dropped = std::thread::scope(|s| s.spawn(|| pool.trim()).join().unwrap());
        assert_eq!(
            dropped, held,
            "{name}: every idle value, the owner slot's too"
        );
        assert_eq!(pool.idle(), 0, "{name}");
        drop(pool.get());
        assert_eq!(pool.idle(), 1, "{name}: the owner's fast path works again");
    });
}

#[test]
fn prefill_is_found_by_the_first_gets() {
    let (made, create) = counting_pool();
    let pool = Pool::builder()
        .create(create)
        .spill(spill::Bounded::new(32))
        .prefill(8)
        .build();
    assert_eq!(made.load(SeqCst), 8);
    assert_eq!(pool.idle(), 8);
    {
        let _guards: Vec<_> = (0..8).map(|_| pool.get()).collect();
        assert_eq!(pool.idle(), 0);
    }
    assert_eq!(
        made.load(SeqCst),
        8,
        "no get created: all came from prefill"
    );
}

/// Prefill keeps a ceiling: with `Bounded::new(4)`, the spill's share (two)
/// from the building thread, which has no slots yet; then, on the first
/// thread, its slots' two as well. Creating stops once nothing more fits.
#[test]
fn prefill_stops_at_a_ceiling() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(4))
        .prefill(5)
        .stats()
        .build();
    assert_eq!(pool.idle(), 2);
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.creates, s.discarded),
        (3, 1),
        "the one that did not fit: {s}"
    );
    drop(pool.get());
    pool.prefill(5);
    assert_eq!(pool.idle(), 4);
    // The get took one from the spill into the first slot: two more fit.
    assert_eq!(pool.stats().unwrap().creates, 5);
}

#[test]
fn owned_guard_returns_from_another_thread_to_the_owner_slot() {
    let pool = Arc::new(
        Pool::builder()
            .create(Vec::<u8>::new)
            .reset(Vec::clear)
            .build(),
    );
    let mut g = pool.get_owned();
    g.push(9);
    let ptr = g.as_ptr();
    std::thread::spawn(move || drop(g)).join().unwrap();
    let again = pool.get();
    assert_eq!(again.as_ptr(), ptr, "the owner's value came home");
    assert!(again.is_empty());
}

#[test]
fn owned_guard_can_outlive_every_other_handle() {
    let pool = Arc::new(Pool::new(Vec::<u8>::new));
    let g = pool.get_owned();
    drop(pool);
    assert_eq!(OwnedPoolGuard::pool(&g).idle(), 0);
    drop(g); // returns the value, then drops the pool
}

#[test]
fn owned_take_keeps_the_value() {
    let pool = Arc::new(Pool::new(|| vec![3u8]));
    let v = OwnedPoolGuard::take(pool.get_owned());
    assert_eq!(v, [3]);
    assert_eq!(pool.idle(), 0);
}

static STATIC_POOL: LazyLock<Pool<String>> = LazyLock::new(|| Pool::new(String::new));

struct HoldsAPool {
    pool: Pool<Vec<u8>>,
}

#[test]
fn default_type_is_nameable() {
    STATIC_POOL.get().push('a');
    assert_eq!(*STATIC_POOL.get(), "a", "no reset by default");
    let holder = HoldsAPool {
        pool: Pool::new(Vec::new),
    };
    assert!(holder.pool.get().is_empty());
}

#[test]
fn auto_traits() {
    fn send<T: Send>() {}
    fn sync<T: Sync>() {}
    send::<Pool<Vec<u8>>>();
    sync::<Pool<Vec<u8>>>();
    sync::<Pool<std::cell::Cell<u8>>>(); // values are never shared
    send::<PoolGuard<'static, Vec<u8>>>();
    send::<OwnedPoolGuard<Vec<u8>>>();
    send::<Pool<u8, fn() -> u8, mempool::NoReset, spill::PerThread<u8>>>();
    send::<Pool<u8, fn() -> u8, mempool::NoReset, spill::LockFree<u8>, mempool::StatsCounters>>();
    sync::<Pool<u8, fn() -> u8, mempool::NoReset, spill::Bounded<u8>, mempool::StatsCounters>>();
}

#[test]
fn debug_output_names_the_parts() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(4))
        .build();
    assert_eq!(
        format!("{pool:?}"),
        "Pool { owner_thread: None, owner_slots: [empty, empty], spill: Bounded { idle: 0, ceiling: 4 }, .. }"
    );
    let g = pool.get();
    let shown = format!("{pool:?}");
    assert!(shown.contains("owner_slots: [in use, empty]"), "{shown}");
    drop(g);
    assert!(format!("{pool:?}").contains("owner_slots: [idle, empty]"));
    let builder = Pool::builder().create(String::new).prefill(3);
    assert!(format!("{builder:?}").contains("prefill: 3"));
}

/// A value type of a megabyte by value builds, gets, returns and prefills on
/// a thread with the main thread's 8 MiB stack (debug build): the pool never
/// holds a value inline (`build` used to move two of them through its frame
/// and overflow the stack, even with `prefill(0)`).
#[test]
fn a_megabyte_value_type_builds_and_runs_on_an_ordinary_stack() {
    type Big = [u8; 1 << 20];
    std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(|| {
            assert_eq!(
                std::mem::size_of::<Pool<Big>>(),
                std::mem::size_of::<Pool<u8>>()
            );
            let pool = Pool::builder()
                .create(|| Box::new([0u8; 1 << 20]) as Box<Big>)
                .prefill(0)
                .build();
            pool.get()[7] = 1;
            assert_eq!(pool.get()[7], 1, "the same value back");
            // And by value, not boxed by the caller.
            let pool = Pool::builder().create(|| [0u8; 1 << 20]).prefill(0).build();
            let mut a = pool.get();
            a[1] = 2;
            let b = pool.get();
            drop((a, b));
            pool.prefill(1);
            assert_eq!(pool.idle(), 3);
            assert_eq!(pool.trim(), 3);
        })
        .unwrap()
        .join()
        .unwrap();
}

/// `Pool::new` is a `const fn` with no bounds: a pool is a `static` as it
/// is, with no lazy cell in front of it.
#[test]
fn a_const_pool_in_a_static() {
    static BUFFERS: Pool<Vec<u8>> = Pool::new(Vec::new);
    BUFFERS.get().push(1);
    std::thread::scope(|s| {
        s.spawn(|| BUFFERS.get().push(2));
    });
    // One value, no reset: the other thread took this thread's idle value
    // over, and this thread takes it back from the exited thread's pocket.
    assert_eq!(BUFFERS.idle(), 1);
    assert_eq!(*BUFFERS.get(), [1, 2]);
}

/// `put` says whether the pool kept the value: `Ok` when a slot or the
/// spill took it, `Err` with the value (reset) when `retain` refused it or
/// the spill would not keep it; the stats count each as a guard's return.
#[test]
fn put_says_whether_the_value_was_kept() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .reset(Vec::clear)
        .retain(|v: &Vec<u8>| v.capacity() <= 64)
        .spill(spill::Bounded::new(3))
        .stats()
        .build();
    // Nobody has the first thread's slots yet: the spill's one place.
    assert_eq!(pool.put(vec![1]), Ok(()));
    assert_eq!(
        pool.put(vec![2]),
        Err(vec![]),
        "the spill is full: handed back, reset"
    );
    let big = Vec::with_capacity(1024);
    let refused = pool.put(big).unwrap_err();
    assert!(
        refused.capacity() >= 1024,
        "the refused value itself comes back"
    );
    let s = pool.stats().unwrap();
    assert_eq!(
        (s.puts, s.returns, s.spilled, s.discarded, s.rejected),
        (3, 3, 1, 1, 1)
    );
    // The first thread's empty slots take put values too.
    drop(pool.get());
    assert_eq!(pool.put(vec![3]), Ok(()));
    assert_eq!(pool.idle(), 2);
    // `None` keeps nothing but the first thread's slots.
    let none = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::None)
        .build();
    assert_eq!(none.put(vec![4]), Err(vec![4]));
    common::check_identities(&pool.stats().unwrap(), "put");
}

// ---------------------------------------------------------------------------
// Nested gets 1 to 8 deep in every return order, with exact counts.
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
