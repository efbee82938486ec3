//! Stress with accounting: for every spill strategy, 8 threads and at least a
//! million get/return cycles in all, mixing nested gets, `take`, `put`,
//! `get_owned` guards dropped on another thread, `trim`, `decay` and
//! `try_get`. Every value
//! records which guard holds it, so a value handed to two guards at once is
//! seen the moment it happens; every creation and drop is counted.
//!
//! `MEMPOOL_STRESS_CYCLES` sets the total per strategy (default 1,000,000;
//! CI's valgrind run uses fewer).

mod common;

use common::{next_guard, Ledger, Tracked};
use mempool::{Pool, PoolGuard, Spill};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

const THREADS: usize = 8;

fn cycles() -> usize {
    std::env::var("MEMPOOL_STRESS_CYCLES")
        .ok()
        .map(|v| v.parse().expect("MEMPOOL_STRESS_CYCLES must be a number"))
        .unwrap_or(1_000_000)
}

fn stress<S: Spill<Tracked> + Send + Sync + 'static>(name: &str, spill: S) {
    let ledger = Ledger::new();
    let maker = Arc::clone(&ledger);
    let pool = Arc::new(
        Pool::builder()
            .create(move || maker.make())
            .spill(spill)
            .build(),
    );
    let per_thread = cycles() / THREADS;
    std::thread::scope(|s| {
        for t in 0..THREADS {
            let pool = &pool;
            s.spawn(move || {
                let mut kept: Vec<Tracked> = Vec::new();
                for i in 0..per_thread {
                    let a = pool.get();
                    let ga = next_guard();
                    a.hold(ga);
                    if i % 4 == 0 {
                        let b = pool.get();
                        let gb = next_guard();
                        b.hold(gb);
                        b.release(gb);
                    }
                    a.release(ga);
                    match (i + t * 7) % 1_000 {
                        0 => kept.push(PoolGuard::take(a)),
                        1..=3 => {
                            drop(a);
                            if let Some(v) = kept.pop() {
                                let _ = pool.put(v);
                            }
                        }
                        4 => {
                            drop(a);
                            let g = pool.get_owned();
                            let gg = next_guard();
                            g.hold(gg);
                            std::thread::spawn(move || {
                                g.release(gg);
                                drop(g);
                            })
                            .join()
                            .unwrap();
                        }
                        5 if t == 0 => {
                            drop(a);
                            pool.trim();
                        }
                        6 if t == 1 => {
                            drop(a);
                            pool.decay();
                        }
                        7 if t == 2 => {
                            drop(a);
                            if let Some(g) = pool.try_get() {
                                let gg = next_guard();
                                g.hold(gg);
                                g.release(gg);
                            }
                        }
                        _ => drop(a),
                    }
                }
                for v in kept {
                    let _ = pool.put(v);
                }
            });
        }
    });
    let (created, dropped, idle) = (ledger.created(), ledger.dropped(), pool.idle());
    assert!(created > 0);
    assert_eq!(created, dropped + idle, "{name}: created == dropped + idle");
    assert!(
        !ledger.double_use.load(SeqCst),
        "{name}: a value was held by two guards"
    );
    drop(pool);
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "{name}: every value dropped once"
    );
}

#[test]
fn stress_per_thread() {
    stress("PerThread", mempool::spill::PerThread::default());
}

#[test]
fn stress_mutex() {
    stress("Mutex", mempool::spill::Mutex::default());
}

#[test]
fn stress_lock_free() {
    stress("LockFree", mempool::spill::LockFree::default());
}

#[test]
fn stress_bounded() {
    stress("Bounded", mempool::spill::Bounded::new(16));
}

#[test]
fn stress_none() {
    stress("None", mempool::spill::None);
}
