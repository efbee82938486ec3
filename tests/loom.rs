//! Loom models of the owner-slot protocol with each spill strategy. Loom runs
//! each model under every interleaving of its threads' atomic operations (up
//! to a bound on preemptions) and the checks below must hold in all of them:
//! no value is held by two guards at once, and every value created is dropped
//! exactly once.
//!
//! ```text
//! RUSTFLAGS="--cfg loom" LOOM_MAX_PREEMPTIONS=2 cargo test --release --test loom \
//!     --features mempool-policies/loom
//! ```
#![cfg(loom)]

use loom::sync::atomic::{AtomicUsize, Ordering::SeqCst};
// std's `Arc`, as `get_owned` takes: loom runs its threads on one OS thread, so
// std's `Arc` works in a model (its own atomics are just not explored).
use loom::thread;
use mempool::{spill, Pool, Spill};
use std::sync::Arc;

/// Creations and drops, counted with loom's atomics.
#[derive(Default)]
struct Ledger {
    created: AtomicUsize,
    dropped: AtomicUsize,
}

/// A pooled value that knows which guard holds it (0: none).
struct Value {
    holder: AtomicUsize,
    ledger: Arc<Ledger>,
}

impl Value {
    fn hold(&self, guard: usize) {
        let before = self.holder.swap(guard, SeqCst);
        assert_eq!(before, 0, "guard {guard} got a value guard {before} holds");
    }

    fn release(&self, guard: usize) {
        let now = self.holder.swap(0, SeqCst);
        assert_eq!(now, guard, "guard {guard}'s value was taken by guard {now}");
    }

    /// Holds the value as `guard` for a moment: a window in which another
    /// guard holding it at the same time would be seen.
    fn touch(&self, guard: usize) {
        self.hold(guard);
        self.release(guard);
    }
}

impl Drop for Value {
    fn drop(&mut self) {
        if std::thread::panicking() {
            return; // a check already failed; a second panic would abort
        }
        assert_eq!(
            self.holder.load(SeqCst),
            0,
            "a value was dropped while held"
        );
        self.ledger.dropped.fetch_add(1, SeqCst);
    }
}

type TestPool<S> = Pool<Value, Box<dyn Fn() -> Value + Send + Sync>, mempool::NoReset, S>;

fn pool<S: Spill<Value>>(spill: S) -> (Arc<Ledger>, Arc<TestPool<S>>) {
    let ledger = Arc::new(Ledger::default());
    let maker = Arc::clone(&ledger);
    let create: Box<dyn Fn() -> Value + Send + Sync> = Box::new(move || {
        maker.created.fetch_add(1, SeqCst);
        Value {
            holder: AtomicUsize::new(0),
            ledger: Arc::clone(&maker),
        }
    });
    let pool = Pool::builder().create(create).spill(spill).build();
    (ledger, Arc::new(pool))
}

/// Checks the accounting once every thread has joined, then drops the pool.
fn settle<S: Spill<Value>>(ledger: &Ledger, pool: Arc<TestPool<S>>) {
    let (created, dropped) = (ledger.created.load(SeqCst), ledger.dropped.load(SeqCst));
    assert_eq!(created, dropped + pool.idle(), "created == dropped + idle");
    drop(pool);
    assert_eq!(
        ledger.created.load(SeqCst),
        ledger.dropped.load(SeqCst),
        "every value dropped once"
    );
}

/// Two threads race to become the owner, each getting and returning once.
fn race_to_own<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.get().touch(1))
        };
        pool.get().touch(2);
        other.join().unwrap();
        settle(&ledger, pool);
    });
}

/// The owner nests two gets (the second goes to its second owner slot)
/// while another thread gets and returns.
fn owner_nests_while_another_gets<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        drop(pool.get()); // this thread owns the slot
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.get().touch(1))
        };
        let a = pool.get();
        let b = pool.get();
        a.hold(2);
        b.hold(3);
        b.release(3);
        a.release(2);
        drop(b);
        drop(a);
        other.join().unwrap();
        settle(&ledger, pool);
    });
}

/// The owner's guard moves to another thread and is dropped there while the
/// owner calls `get` again.
fn guard_dropped_elsewhere_while_owner_gets<S: Spill<Value> + Send + Sync + 'static>(
    make: fn() -> S,
) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let moved = pool.get_owned(); // the owner slot's value
        moved.hold(1);
        let other = thread::spawn(move || {
            moved.release(1);
            drop(moved);
        });
        pool.get().touch(2);
        other.join().unwrap();
        settle(&ledger, pool);
    });
}

/// `trim` on the owner thread races with another thread returning the owner
/// slot's value and a spilled one.
fn trim_races_with_returns<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let owned = pool.get_owned(); // the owner slot's value
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                let spilled = pool.get();
                spilled.touch(1);
                drop(spilled);
                owned.touch(2);
                drop(owned);
            })
        };
        pool.trim();
        other.join().unwrap();
        pool.get().touch(3); // still usable
        settle(&ledger, pool);
    });
}

/// The owner takes its idle value on the fast path while another thread
/// takes it over (the spill is empty, so that thread steals it rather than
/// create): the value must go to one of them only.
fn owner_take_vs_steal<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        drop(pool.get()); // this thread owns the slot, which holds the value
        let other = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.get().touch(1))
        };
        pool.get().touch(2);
        other.join().unwrap();
        settle(&ledger, pool);
    });
}

/// Two threads race to take over the owner slot's idle value while its
/// owner is away.
fn steal_vs_steal<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let owner = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || drop(pool.get())) // owns the slot, then exits
        };
        owner.join().unwrap();
        let thieves: Vec<_> = (1..=2)
            .map(|n| {
                let pool = Arc::clone(&pool);
                thread::spawn(move || pool.get().touch(n))
            })
            .collect();
        for thief in thieves {
            thief.join().unwrap();
        }
        settle(&ledger, pool);
    });
}

/// A thread that does not own the slot gets and returns (through its pocket,
/// with `PerThread`) while the owner gets and returns and a third thread
/// trims: nothing is handed out twice or lost.
fn trim_vs_take_and_return<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        drop(pool.get()); // this thread owns the slot
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.get().touch(1); // made, then kept in the pocket
                pool.get().touch(2); // from the pocket, unless trimmed
            })
        };
        let trimmer = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.trim();
            })
        };
        pool.get().touch(3);
        worker.join().unwrap();
        trimmer.join().unwrap();
        settle(&ledger, pool);
    });
}

/// While the owner slot is in use, one thread gets and returns twice (its
/// second get served by its pocket, with `PerThread`) and another thread,
/// finding nothing idle of its own, takes values over from that pocket.
fn pocket_take_vs_steal<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let held = pool.get(); // an owner slot stays in use
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.get().touch(1);
                pool.get().touch(2);
            })
        };
        let thief = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.get().touch(3))
        };
        worker.join().unwrap();
        thief.join().unwrap();
        held.touch(4);
        drop(held);
        settle(&ledger, pool);
    });
}

/// `decay` on one thread while another gets and returns through its pocket
/// (and the owner slot is idle): values set aside, reused or dropped, never
/// handed out twice or lost.
fn decay_vs_take_and_return<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        drop(pool.get()); // this thread owns the slot; its value is idle
        let worker = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.get().touch(1);
                pool.get().touch(2);
            })
        };
        pool.decay();
        pool.decay();
        worker.join().unwrap();
        settle(&ledger, pool);
    });
}

/// The owner's second slot: with the first in use, the owner takes its
/// second slot's idle value on the fast path while another thread, finding
/// nothing else idle, steals it, and a third trims: the value goes to one of
/// them only, and the first slot's value is never touched.
fn owner_second_slot_vs_steal<S: Spill<Value> + Send + Sync + 'static>(make: fn() -> S) {
    loom::model(move || {
        let (ledger, pool) = pool(make());
        let first = pool.get(); // this thread owns the slots
        drop(pool.get()); // the second slot now holds an idle value
        first.hold(1);
        let thief = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || pool.get().touch(2))
        };
        let trimmer = {
            let pool = Arc::clone(&pool);
            thread::spawn(move || {
                pool.trim();
            })
        };
        pool.get().touch(3);
        first.release(1);
        drop(first);
        thief.join().unwrap();
        trimmer.join().unwrap();
        settle(&ledger, pool);
    });
}

/// The ten models for one strategy.
macro_rules! models {
    ($module:ident, $make:expr) => {
        mod $module {
            use super::*;

            #[test]
            fn race_to_own() {
                super::race_to_own($make);
            }

            #[test]
            fn owner_nests_while_another_gets() {
                super::owner_nests_while_another_gets($make);
            }

            #[test]
            fn guard_dropped_elsewhere_while_owner_gets() {
                super::guard_dropped_elsewhere_while_owner_gets($make);
            }

            #[test]
            fn trim_races_with_returns() {
                super::trim_races_with_returns($make);
            }

            #[test]
            fn owner_take_vs_steal() {
                super::owner_take_vs_steal($make);
            }

            #[test]
            fn steal_vs_steal() {
                super::steal_vs_steal($make);
            }

            #[test]
            fn trim_vs_take_and_return() {
                super::trim_vs_take_and_return($make);
            }

            #[test]
            fn pocket_take_vs_steal() {
                super::pocket_take_vs_steal($make);
            }

            #[test]
            fn decay_vs_take_and_return() {
                super::decay_vs_take_and_return($make);
            }

            #[test]
            fn owner_second_slot_vs_steal() {
                super::owner_second_slot_vs_steal($make);
            }
        }
    };
}

models!(per_thread, spill::PerThread::default);
models!(mutex, || spill::Mutex::with_shards(2));
models!(lock_free, spill::LockFree::default);
models!(bounded, || spill::Bounded::new(2));
models!(none, || spill::None);
