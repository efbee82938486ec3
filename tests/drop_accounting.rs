//! Every value created is dropped exactly once by the time the pool is, with
//! many threads and every spill strategy; no value is ever held twice.

mod common;

use common::Ledger;
use mempool::{Pool, PoolGuard};
use std::sync::atomic::Ordering::SeqCst;
use std::sync::Arc;

const THREADS: usize = 8;
const ROUNDS: usize = 2_000;

#[test]
fn every_value_is_dropped_once() {
    for_each_spill!(|name, spill| {
        let ledger = Ledger::new();
        let maker = Arc::clone(&ledger);
        let pool = Arc::new(
            Pool::builder()
                .create(move || maker.make())
                .spill(spill)
                .build(),
        );
        let mut kept = Vec::new();
        std::thread::scope(|s| {
            let handles: Vec<_> = (0..THREADS)
                .map(|t| {
                    let pool = &pool;
                    s.spawn(move || {
                        let mut kept = Vec::new();
                        for i in 0..ROUNDS {
                            let a = pool.get();
                            a.use_for(|| {
                                if i % 3 == 0 {
                                    let b = pool.get();
                                    b.use_for(|| ());
                                }
                            });
                            match (i + t) % 50 {
                                0 => kept.push(PoolGuard::take(a)),
                                1 => {
                                    if let Some(v) = kept.pop() {
                                        pool.put(v);
                                    }
                                }
                                2 => {
                                    let g = pool.get_owned();
                                    std::thread::spawn(move || g.use_for(|| ())).join().unwrap();
                                }
                                3 if t == 0 => {
                                    pool.trim();
                                }
                                _ => {}
                            }
                        }
                        kept
                    })
                })
                .collect();
            for h in handles {
                kept.extend(h.join().unwrap());
            }
        });
        let (created, dropped) = (ledger.created(), ledger.dropped());
        assert_eq!(
            created,
            dropped + pool.idle() + kept.len(),
            "{name}: created == dropped + idle + kept"
        );
        drop(kept);
        drop(pool);
        assert_eq!(
            ledger.created(),
            ledger.dropped(),
            "{name}: every value dropped once"
        );
        assert!(
            !ledger.double_use.load(SeqCst),
            "{name}: a value was held by two guards"
        );
    });
}
