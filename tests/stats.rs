//! Every stats counter, in single-thread sequences and summed across threads.

mod common;

use mempool::{spill, Pool, PoolGuard, Stats};

fn stats<T, C, R, S>(pool: &Pool<T, C, R, S, mempool::StatsCounters>) -> Stats
where
    C: Fn() -> T,
    R: mempool::Reset<T>,
    S: mempool::Spill<T>,
{
    pool.stats().expect("stats are on")
}

#[test]
fn the_issue_example() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .reset(Vec::clear)
        .stats()
        .build();
    for _ in 0..10 {
        let _g = pool.get();
    }
    {
        let _a = pool.get();
        let _b = pool.get();
    }
    let s: Stats = pool.stats().expect("enabled");
    assert_eq!((s.gets, s.creates), (12, 2));
    assert!((s.hit_rate() - 10.0 / 12.0).abs() < 1e-9);
    assert!(Pool::new(Vec::<u8>::new).stats().is_none());
}

#[test]
fn slot_hits() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    for _ in 0..10 {
        drop(pool.get());
    }
    let s = stats(&pool);
    assert_eq!(
        s,
        stats! {
            gets: 10,
            slot_hits: 9,
            creates: 1,
            returns: 10,
            idle: 1,
        }
    );
}

#[test]
fn spill_hits_and_creates() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Mutex::default())
        .stats()
        .build();
    for _ in 0..3 {
        let _a = pool.get();
        let _b = pool.get();
        let _c = pool.get();
    }
    // Round 1 creates all three; rounds 2 and 3 reuse the two owner slots
    // and the spill.
    let s = stats(&pool);
    assert_eq!(
        s,
        stats! {
            gets: 9,
            slot_hits: 4,
            spill_hits: 2,
            creates: 3,
            returns: 9,
            spilled: 3,
            idle: 3,
        }
    );
}

/// The pool's first thread holding four values at once keeps two in its
/// slots and two in the spill (the default strategy's overflow): the slots'
/// reuses are slot hits, the others spill hits.
#[test]
fn nesting_beyond_the_slots() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    for _ in 0..3 {
        let _a = pool.get();
        let _b = pool.get();
        let _c = pool.get();
        let _d = pool.get();
    }
    let s = stats(&pool);
    assert_eq!(
        s,
        stats! {
            gets: 12,
            slot_hits: 4,
            spill_hits: 4,
            creates: 4,
            returns: 12,
            spilled: 6,
            idle: 4,
        }
    );
}

#[test]
fn discard_when_bounded_is_full() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(3))
        .stats()
        .build();
    // The ceiling of 3: two go to the first thread's slots, one to the
    // spill, and the fourth is dropped.
    drop((pool.get(), pool.get(), pool.get(), pool.get()));
    let s = stats(&pool);
    assert_eq!((s.gets, s.creates, s.returns), (4, 4, 4));
    assert_eq!((s.spilled, s.discarded, s.idle), (1, 1, 3));
}

#[test]
fn discard_with_none() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::None)
        .stats()
        .build();
    for _ in 0..4 {
        let _a = pool.get();
        let _b = pool.get();
        let _c = pool.get();
    }
    // The owner slots keep two; every third value is made and dropped.
    let s = stats(&pool);
    assert_eq!((s.gets, s.slot_hits, s.creates), (12, 6, 6));
    assert_eq!((s.returns, s.spilled, s.discarded, s.idle), (12, 0, 4, 2));
}

#[test]
fn take_and_put() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    let v = PoolGuard::take(pool.get());
    let s = stats(&pool);
    assert_eq!(
        (s.gets, s.creates, s.taken, s.returns, s.idle),
        (1, 1, 1, 0, 0)
    );
    let _ = pool.put(v);
    let s = stats(&pool);
    assert_eq!((s.returns, s.spilled, s.idle), (1, 0, 1));
    // The put value went to the thread's empty slot, not to the spill: a
    // slot hit, not a create.
    drop(pool.get());
    let s = stats(&pool);
    assert_eq!(
        (s.gets, s.slot_hits, s.creates, s.returns, s.idle),
        (2, 1, 1, 2, 1)
    );
}

#[test]
fn prefill() {
    // A ceiling of 5: the building thread has no slots yet, so the spill's
    // three; the fourth does not fit, and prefill stops there.
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(5))
        .prefill(8)
        .stats()
        .build();
    let s = stats(&pool);
    assert_eq!(
        s,
        stats! {
            creates: 4,
            prefilled: 4,
            spilled: 3,
            discarded: 1,
            idle: 3,
        }
    );
    drop(pool.get());
    let s = stats(&pool);
    assert_eq!((s.gets, s.spill_hits, s.creates, s.idle), (1, 1, 4, 3));
    assert_eq!(s.hit_rate(), 1.0);
}

#[test]
fn trim() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    drop((pool.get(), pool.get(), pool.get()));
    assert_eq!(pool.trim(), 3);
    let s = stats(&pool);
    assert_eq!((s.trimmed, s.idle), (3, 0));
    pool.trim();
    assert_eq!(stats(&pool).trimmed, 3);
}

#[test]
fn owned_guards_and_returns_on_other_threads() {
    let pool = std::sync::Arc::new(Pool::builder().create(Vec::<u8>::new).stats().build());
    let a = pool.get_owned();
    let b = pool.get_owned();
    std::thread::spawn(move || drop((a, b))).join().unwrap();
    // Both lived in this thread's pocket, and went back there.
    let s = stats(&pool);
    assert_eq!(
        (s.gets, s.creates, s.returns, s.spilled, s.idle),
        (2, 2, 2, 0, 2)
    );
}

#[test]
fn sums_across_threads_after_join() {
    const THREADS: u64 = 4;
    const ROUNDS: u64 = 5_000;
    for_each_strategy(|name, pool| {
        std::thread::scope(|s| {
            for _ in 0..THREADS {
                s.spawn(|| {
                    for i in 0..ROUNDS {
                        let _a = pool.get();
                        if i % 4 == 0 {
                            let _b = pool.get();
                        }
                    }
                });
            }
        });
        let s = pool.stats().unwrap();
        let gets = THREADS * ROUNDS + THREADS * ROUNDS / 4;
        assert_eq!(s.gets, gets, "{name}");
        assert_eq!(s.returns, gets, "{name}");
        assert_eq!(s.slot_hits + s.spill_hits + s.creates, gets, "{name}");
        assert_eq!(
            s.creates,
            s.idle as u64 + s.discarded,
            "{name}: every value made is idle or dropped"
        );
        // Without pockets, every idle value but the owner slots' (up to
        // two, if threads did not take them over) came through the spill.
        if !pool.spill().pockets() {
            let in_spill = s.spilled - s.spill_hits;
            assert!(
                (in_spill..=in_spill + 2).contains(&(s.idle as u64)),
                "{name}: {s}"
            );
        }
        common::check_invariants(&s);
    });
}

/// A strategy chosen at run time, so one test body serves all of them.
type AnySpill = Box<dyn mempool::Spill<Vec<u8>> + Send + Sync>;
type AnyPool = Pool<Vec<u8>, fn() -> Vec<u8>, mempool::NoReset, AnySpill, mempool::StatsCounters>;

fn for_each_strategy(check: impl Fn(&str, &AnyPool)) {
    let strategies: Vec<(&str, AnySpill)> = vec![
        ("Mutex", Box::new(spill::Mutex::default())),
        ("LockFree", Box::new(spill::LockFree::default())),
        ("Bounded", Box::new(spill::Bounded::new(2))),
        ("None", Box::new(spill::None)),
        ("PerThread", Box::new(spill::PerThread::default())),
    ];
    for (name, spill) in strategies {
        let pool: AnyPool = Pool::builder()
            .create(Vec::new as fn() -> Vec<u8>)
            .spill(spill)
            .stats()
            .build();
        check(name, &pool);
    }
}

/// A value whose reset panicked is counted as returned and discarded, on the
/// owner slot and in the spill alike, so the invariants still hold. Before
/// the fix: `gets=2 creates=2 returns=0 idle=0 discarded=0`.
#[test]
fn reset_panics_count_as_returned_and_discarded() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .reset(|v: &mut Vec<u8>| {
            if v.first() == Some(&0xFF) {
                panic!("poisoned (on purpose)");
            }
            v.clear();
        })
        .stats()
        .build();
    common::silence_expected_panics();
    for _ in 0..2 {
        let (mut owner, mut spilled) = (pool.get(), pool.get());
        owner.push(0xFF);
        spilled.push(0xFF);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(spilled)));
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(owner)));
        assert!(caught.is_err());
    }
    let s = stats(&pool);
    assert_eq!(
        (s.gets, s.creates, s.returns, s.discarded, s.idle, s.in_use),
        (4, 4, 4, 4, 0, 0),
        "{s}"
    );
    common::check_invariants(&s);
}

#[test]
fn puts_and_in_use() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    let a = pool.get();
    let b = pool.get();
    assert_eq!(stats(&pool).in_use, 2);
    let v = PoolGuard::take(a);
    assert_eq!(stats(&pool).in_use, 1);
    let _ = pool.put(v);
    let _ = pool.put(Vec::new());
    drop(b);
    let s = stats(&pool);
    assert_eq!(
        (s.gets, s.puts, s.returns, s.taken, s.in_use),
        (2, 2, 3, 1, 0),
        "{s}"
    );
    common::check_invariants(&s);
}

/// A user's spill whose `drain` panics (or whose `len` panics under the
/// provided `drain`) during a second `decay`: the values the pool set aside
/// at the first one are still counted, so the identities hold (the pool
/// took its own out first and the unwind dropped them uncounted).
#[test]
fn the_counts_hold_when_a_spill_panics_during_decay() {
    use mempool::Spill;
    use std::sync::atomic::{AtomicBool, Ordering};
    #[derive(Default)]
    struct Fickle {
        inner: spill::LockFree<Vec<u8>>,
        panic_in_len: bool,
        armed: AtomicBool,
    }
    impl Spill<Vec<u8>> for Fickle {
        fn pop(&self) -> Option<Box<Vec<u8>>> {
            self.inner.pop()
        }
        fn push(&self, value: Box<Vec<u8>>) -> Result<(), Box<Vec<u8>>> {
            self.inner.push(value)
        }
        fn len(&self) -> usize {
            if self.panic_in_len && self.armed.load(Ordering::Relaxed) {
                panic!("len panics (on purpose)");
            }
            self.inner.len()
        }
        fn drain(&self) -> Vec<Box<Vec<u8>>> {
            if !self.panic_in_len && self.armed.load(Ordering::Relaxed) {
                panic!("drain panics (on purpose)");
            }
            (0..self.len()).map_while(|_| self.pop()).collect()
        }
    }
    common::silence_expected_panics();
    for panic_in_len in [false, true] {
        let pool = Pool::builder()
            .create(Vec::<u8>::new)
            .spill(Fickle {
                panic_in_len,
                ..Fickle::default()
            })
            .stats()
            .build();
        let held: Vec<_> = (0..4).map(|_| pool.get()).collect();
        drop(held);
        assert_eq!(pool.decay(), 0);
        pool.spill().armed.store(true, Ordering::Relaxed);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| pool.decay()));
        assert!(caught.is_err(), "the spill did not panic");
        pool.spill().armed.store(false, Ordering::Relaxed);
        let s = pool.stats().unwrap();
        assert_eq!(s.creates, 4);
        common::check_identities(&s, &format!("panic in len: {panic_in_len}"));
    }
}
