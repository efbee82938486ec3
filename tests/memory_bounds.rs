//! Memory stays bounded by the values in use at once, not by the threads
//! that ever used the pool (the complaint behind rust-lang/regex issues 362
//! and 1214): tests that count creations.

mod common;

use mempool::{spill, Pool, Spill};
use std::sync::atomic::{AtomicUsize, Ordering::SeqCst};
use std::sync::{Arc, Barrier, Mutex};

/// A pool of byte buffers that counts how many it has made.
#[allow(clippy::type_complexity)] // the pool's type, spelled out once
fn counting<S: Spill<Vec<u8>>>(
    spill: S,
) -> (
    Arc<AtomicUsize>,
    Pool<Vec<u8>, impl Fn() -> Vec<u8>, fn(&mut Vec<u8>), S>,
) {
    let made = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&made);
    let pool = Pool::builder()
        .create(move || {
            counter.fetch_add(1, SeqCst);
            Vec::with_capacity(64)
        })
        .reset(Vec::clear as fn(&mut Vec<u8>))
        .spill(spill)
        .build();
    (made, pool)
}

#[test]
fn long_lived_threads_taking_turns_share_two_values() {
    // 64 threads that all stay alive; one at a time does 1,000 cycles, then
    // hands the turn on. regex-automata's pool makes up to 8 values here.
    const THREADS: usize = 64;
    let (made, pool) = counting(mempool::DefaultSpill::default());
    let turn = Mutex::new(0usize);
    let all_done = Barrier::new(THREADS);
    std::thread::scope(|s| {
        for me in 0..THREADS {
            let (pool, turn, all_done) = (&pool, &turn, &all_done);
            s.spawn(move || {
                loop {
                    let mut now = turn.lock().unwrap();
                    if *now == me {
                        for i in 0..1_000u32 {
                            pool.get().extend_from_slice(&i.to_le_bytes());
                        }
                        *now += 1;
                        break;
                    }
                    drop(now);
                    std::thread::yield_now();
                }
                all_done.wait(); // stay alive until every thread has had its turn
            });
        }
    });
    assert!(made.load(SeqCst) <= 2, "made {} values", made.load(SeqCst));
}

#[test]
fn short_lived_threads_four_at_a_time_make_at_most_eight() {
    fn check<S: Spill<Vec<u8>> + Sync>(name: &str, spill: S) {
        let (made, pool) = counting(spill);
        // 250 waves of 4 threads: 1,000 threads, at most 4 alive at once.
        for _ in 0..250 {
            std::thread::scope(|s| {
                for _ in 0..4 {
                    s.spawn(|| {
                        for _ in 0..10 {
                            pool.get().push(1);
                        }
                    });
                }
            });
        }
        let made = made.load(SeqCst);
        assert!(made <= 8, "{name}: made {made} values for 1,000 threads");
    }
    check("PerThread", spill::PerThread::default());
    check("Mutex", spill::Mutex::default());
    check("LockFree", spill::LockFree::default());
    check("Bounded", spill::Bounded::new(8));
}

#[test]
fn trim_empties_every_strategy_and_the_pool_stays_usable() {
    for_each_spill!(|name, spill| {
        let (made, pool) = counting(spill);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| {
                    for _ in 0..100 {
                        let _a = pool.get();
                        let _b = pool.get();
                        let _c = pool.get();
                    }
                });
            }
        });
        drop((pool.get(), pool.get())); // this thread uses it too, not as owner
        let idle = pool.idle();
        assert!(
            idle > 1 || name == "None",
            "{name}: only {idle} idle before trim"
        );
        // A worker thread (gone now) owns the slot; trim on this thread
        // reaches its value too, and every pocket.
        assert_eq!(pool.trim(), idle, "{name}: every idle value");
        assert_eq!(pool.idle(), 0, "{name}: idle after trim");
        let before = made.load(SeqCst);
        drop(pool.get());
        assert_eq!(made.load(SeqCst), before + 1, "{name}: usable after trim");
    });
}

#[test]
fn trim_on_the_owner_thread_leaves_nothing() {
    for_each_spill!(|name, spill| {
        let (_made, pool) = counting(spill);
        drop((pool.get(), pool.get(), pool.get())); // this thread owns the slot
        std::thread::scope(|s| {
            s.spawn(|| drop((pool.get(), pool.get())));
        });
        pool.trim();
        assert_eq!(pool.idle(), 0, "{name}");
        drop(pool.get());
        assert_eq!(pool.idle(), 1, "{name}: usable after trim");
    });
}

/// A pipeline: each producer gets values (`get_owned`) and sends them down a
/// channel of 16 to its consumer, which drops them; at most 18 values per
/// pair are out at once (16 queued, one being sent, one being dropped). Every
/// strategy that keeps values must make no more than that, plus a little
/// slack for the owner slot and values in flight between pockets. `Mutex`
/// once made 188 with one pair and 1,934 with four: a pop skipped the shard
/// that the consumer kept busy, and created.
#[test]
fn pipelines_make_no_more_than_the_values_in_flight() {
    fn check<S: Spill<Vec<u8>> + Send + Sync + 'static>(name: &str, pairs: usize, spill: S) {
        let per_producer: usize = if std::env::var_os("MEMPOOL_STRESS_CYCLES").is_some() {
            10_000 // under valgrind
        } else {
            100_000
        };
        let (made, pool) = counting(spill);
        let pool = Arc::new(pool);
        std::thread::scope(|s| {
            for _ in 0..pairs {
                let (tx, rx) = std::sync::mpsc::sync_channel(16);
                let pool = Arc::clone(&pool);
                s.spawn(move || {
                    for i in 0..per_producer {
                        let mut v = pool.get_owned();
                        v.push(i as u8);
                        tx.send(v).unwrap();
                    }
                });
                s.spawn(move || {
                    for v in rx {
                        drop(v);
                    }
                });
            }
        });
        let made = made.load(SeqCst);
        let bound = 18 * pairs + 8;
        assert!(
            made <= bound,
            "{name}, {pairs} pairs: made {made} values, more than {bound}"
        );
    }
    for pairs in [1, 4] {
        check("PerThread", pairs, spill::PerThread::default());
        check("Mutex", pairs, spill::Mutex::default());
        check("LockFree", pairs, spill::LockFree::default());
        // Bounded drops what it cannot keep, so give it room for every value
        // in flight; a smaller capacity would create by design.
        check("Bounded", pairs, spill::Bounded::new(18 * pairs + 8));
    }
}

/// The owner thread exits with its value idle in the owner slot: the
/// threads after it take that value over instead of creating, with every
/// strategy (the owner slot is reached through the asymmetric barrier, not
/// through the spill). Before, the value was stranded until the pool was
/// dropped, and the first later thread made a second one.
#[test]
fn a_gone_owners_idle_value_is_reused() {
    for_each_spill!(|name, spill| {
        let (made, pool) = counting(spill);
        std::thread::scope(|s| {
            s.spawn(|| pool.get().push(1)); // the owner, gone after this
        });
        for _ in 0..10 {
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..100 {
                        pool.get().push(1);
                    }
                });
            });
        }
        let made = made.load(SeqCst);
        // `None` keeps nothing beyond the owner slots: each later thread
        // takes the value over and drops it when it returns it.
        let expected = if name == "None" { 1 + 10 * 100 - 1 } else { 1 };
        assert_eq!(made, expected, "{name}: values made");
    });
}

// ---------------------------------------------------------------------------
// `Bounded::new(n)`: a ceiling of `n` idle values in all.
// ---------------------------------------------------------------------------

/// `threads` threads each hold `each` guards of `pool` at once, then drop
/// them.
fn burst<C, R, S>(
    pool: &Pool<Vec<u8>, C, R, S, mempool::StatsCounters>,
    threads: usize,
    each: usize,
) where
    C: Fn() -> Vec<u8> + Sync,
    R: mempool::Reset<Vec<u8>> + Sync,
    S: Spill<Vec<u8>> + Sync,
{
    let barrier = Barrier::new(threads);
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                let held: Vec<_> = (0..each).map(|_| pool.get()).collect();
                barrier.wait();
                drop(held);
            });
        }
    });
}

/// The ceiling counts the first thread's slots: five guards out at once on
/// the first thread, all dropped, leave three idle with `Bounded::new(3)`
/// (the slots two, the spill one), not five; and so on for every `n`, on
/// the first thread and on others.
#[test]
fn bounded_n_holds_at_most_n_idle_values_slots_included() {
    for n in 1..=6 {
        let pool = Pool::builder()
            .create(Vec::<u8>::new)
            .spill(spill::Bounded::new(n))
            .stats()
            .build();
        let held: Vec<_> = (0..n + 3).map(|_| pool.get()).collect();
        drop(held);
        assert_eq!(pool.idle(), n, "Bounded::new({n}), first thread");
        burst(&pool, 4, n + 1);
        assert!(pool.idle() <= n, "Bounded::new({n}): {} idle", pool.idle());
        let held: Vec<_> = (0..n + 3).map(|_| pool.get()).collect();
        std::thread::scope(|s| {
            s.spawn(|| drop(held));
        });
        assert!(pool.idle() <= n, "Bounded::new({n}): {} idle", pool.idle());
    }
}

/// Six guards dropped, `decay`, `prefill`: with `Bounded::new(4)` the pool
/// held ten, because `prefill` offered straight to the spill. `prefill`
/// keeps the ceiling now, as a returned value does. (`tests/attack.rs`
/// found the first break of this ceiling: `decay` let returns refill an
/// emptied spill to twice the ceiling.)
#[test]
fn bounded_ceiling_holds_across_decay_and_prefill() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(4))
        .stats()
        .build();
    drop((0..6).map(|_| pool.get()).collect::<Vec<_>>());
    assert_eq!(pool.idle(), 4);
    assert_eq!(pool.decay(), 0);
    assert_eq!(pool.idle(), 4, "set aside, still idle");
    pool.prefill(4);
    assert_eq!(pool.idle(), 4, "{}", pool.stats().unwrap());
    for _ in 0..3 {
        let _ = pool.put(Vec::new());
        assert!(pool.idle() <= 4, "{}", pool.stats().unwrap());
    }
    let held: Vec<_> = (0..6).map(|_| pool.get()).collect();
    drop(held);
    assert!(pool.idle() <= 4, "{}", pool.stats().unwrap());
    common::check_identities(&pool.stats().unwrap(), "after the sequence");
}

/// `Bounded::new(64)`, a burst of 32 values on 8 threads, `decay` (which
/// sets the idle ones aside), then 1,000 get-and-return cycles on a thread
/// that is not the first: far below the ceiling, no set-aside value is
/// dropped by a return (each cycle takes one, or the one it returned), so
/// the next `decay` drops what is still set aside, and its answer and the
/// `decayed` counter agree.
#[test]
fn below_the_ceiling_set_aside_values_wait_for_the_next_decay() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .spill(spill::Bounded::new(64))
        .stats()
        .build();
    drop(pool.get()); // this thread is the first
    burst(&pool, 8, 4);
    let idle = pool.idle();
    assert_eq!(idle, 32, "{}", pool.stats().unwrap());
    assert_eq!(pool.decay(), 0);
    std::thread::scope(|s| {
        s.spawn(|| {
            for _ in 0..1000 {
                pool.get().push(1);
            }
        });
    });
    let s = pool.stats().unwrap();
    assert_eq!(s.decayed, 0, "a return dropped a set-aside value: {s}");
    assert_eq!(pool.idle(), idle);
    let dropped = pool.decay();
    assert_eq!(dropped, idle - 1, "all but the one in use again");
    assert_eq!(pool.stats().unwrap().decayed as usize, dropped);
}

/// A ceiling is a limit, not a reservation: `Bounded::new` with huge
/// ceilings allocates nothing up front (it used to allocate every slot, and
/// `1 << 40` aborted the process), and the pool works.
#[test]
fn a_huge_ceiling_allocates_nothing_up_front() {
    for n in [usize::MAX, usize::MAX / 2, 1 << 40] {
        let pool = Pool::builder()
            .create(Vec::<u8>::new)
            .spill(spill::Bounded::new(n))
            .build();
        let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
        drop(held);
        assert_eq!(pool.idle(), 5);
        assert_eq!(pool.spill().capacity(), n - 2);
        assert!(pool.put(Vec::new()).is_ok());
        assert_eq!(pool.trim(), 6);
    }
}
