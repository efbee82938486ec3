//! Memory control: `retain` refuses oversized values, `decay` drops values
//! that stayed idle after a burst, `try_get` never creates.

mod common;

use mempool::{spill, Pool, PoolGuard, Spill};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier};

const LIMIT: usize = 1 << 20;

#[test]
fn retain_drops_oversized_values_from_the_owner_slot_the_spill_and_put() {
    for_each_spill!(|name, spill| {
        let pool = Pool::builder()
            .create(Vec::<u8>::new)
            .reset(Vec::clear)
            .retain(|v: &Vec<u8>| v.capacity() <= LIMIT)
            .spill(spill)
            .stats()
            .build();
        // The owner slot's value, grown past the limit: dropped, slot empty.
        pool.get().reserve(2 * LIMIT);
        assert_eq!(pool.idle(), 0, "{name}: owner slot");
        // A spilled one (the owner slot is in use): dropped too.
        {
            let _owner = pool.get();
            pool.get().reserve(2 * LIMIT);
        }
        assert_eq!(pool.idle(), 1, "{name}: only the owner slot's small value");
        // Put: the same check.
        let _ = pool.put(Vec::with_capacity(2 * LIMIT));
        assert_eq!(pool.idle(), 1, "{name}: put");
        // One under the limit is kept and reused.
        let before = pool.stats().unwrap().creates;
        pool.get().reserve(1024);
        let v = pool.get();
        assert!(v.capacity() >= 1024, "{name}: the same value, reused");
        drop(v);
        let s = pool.stats().unwrap();
        assert_eq!(s.creates, before, "{name}: nothing new made");
        assert_eq!(s.rejected, 3, "{name}: {s}");
        common::check_invariants(&s);
    });
}

#[test]
fn retain_may_come_before_reset() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .retain(|v: &Vec<u8>| v.is_empty()) // sees the value after the reset
        .reset(Vec::clear)
        .build();
    pool.get().push(1);
    assert_eq!(pool.idle(), 1, "reset ran first, so retain kept it");
}

#[test]
fn a_panicking_retain_drops_the_value_like_a_panicking_reset() {
    common::silence_expected_panics();
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .retain(|v: &Vec<u8>| {
            if v.first() == Some(&0xFF) {
                panic!("retain panicked (on purpose)");
            }
            true
        })
        .stats()
        .build();
    for _ in 0..2 {
        let (mut owner, mut spilled) = (pool.get(), pool.get());
        owner.push(0xFF);
        spilled.push(0xFF);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(spilled)));
        assert!(caught.is_err());
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| drop(owner)));
        assert!(caught.is_err());
    }
    let s = pool.stats().unwrap();
    assert_eq!((s.returns, s.discarded, s.idle), (4, 4, 0), "{s}");
    common::check_invariants(&s);
    drop(pool.get()); // still usable
}

#[test]
fn try_get_never_creates() {
    for_each_spill!(|name, spill| {
        let made = Arc::new(AtomicUsize::new(0));
        let m = Arc::clone(&made);
        let pool = Pool::builder()
            .create(move || {
                m.fetch_add(1, SeqCst);
                Vec::<u8>::new()
            })
            .spill(spill)
            .stats()
            .build();
        assert!(pool.try_get().is_none(), "{name}: empty pool");
        assert_eq!(made.load(SeqCst), 0, "{name}");
        drop(pool.get());
        let g: Option<PoolGuard<'_, _, _, _, _, _>> = pool.try_get();
        assert!(g.is_some(), "{name}: after a return");
        assert!(pool.try_get().is_none(), "{name}: the one value is in use");
        drop(g);
        // On another thread, the owner's idle value is taken over.
        std::thread::scope(|s| {
            s.spawn(|| assert!(pool.try_get().is_some(), "{name}: from another thread"));
        });
        assert_eq!(made.load(SeqCst), 1, "{name}: try_get made nothing");
        common::check_invariants(&pool.stats().unwrap());
    });
}

/// A burst (8 threads each hold 4 values, then return them), then a steady
/// phase on one thread; two decays bring memory back to what the steady
/// phase uses, without making anything new.
#[test]
fn decay_returns_memory_after_a_burst() {
    fn check<S: Spill<Vec<u8>> + Sync>(name: &str, spill: S) {
        let made = AtomicUsize::new(0);
        let pool = Pool::builder()
            .create(|| {
                made.fetch_add(1, SeqCst);
                Vec::<u8>::with_capacity(64)
            })
            .reset(Vec::clear)
            .spill(spill)
            .stats()
            .build();
        let all_holding = Barrier::new(8);
        std::thread::scope(|s| {
            for _ in 0..8 {
                s.spawn(|| {
                    let held: Vec<_> = (0..4).map(|_| pool.get()).collect();
                    all_holding.wait();
                    drop(held);
                });
            }
        });
        let burst = made.load(SeqCst);
        assert_eq!(burst, 32, "{name}: the burst");
        let steady = || {
            for i in 0..1_000u32 {
                pool.get().extend_from_slice(&i.to_le_bytes());
            }
        };
        steady();
        assert_eq!(pool.decay(), 0, "{name}: the first decay drops nothing");
        steady();
        let dropped = pool.decay();
        assert_eq!(
            made.load(SeqCst),
            burst,
            "{name}: the steady phase made nothing"
        );
        let idle = pool.idle();
        assert!(idle <= 2, "{name}: {idle} idle after two decays");
        let s = pool.stats().unwrap();
        assert_eq!(
            s.decayed as usize + idle,
            burst,
            "{name}: every other value went"
        );
        if name != "Bounded" {
            // Without a ceiling, set-aside values wait for the next decay.
            assert_eq!(s.decayed, dropped as u64, "{name}");
        }
        common::check_invariants(&s);
    }
    check("PerThread", spill::PerThread::default());
    check("Mutex", spill::Mutex::default());
    check("LockFree", spill::LockFree::default());
    check("Bounded", spill::Bounded::new(64));
}
