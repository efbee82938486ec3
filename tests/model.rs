//! Property test against a model: random single-thread sequences of get,
//! drop, take, put, trim and prefill, checked after every step against a
//! plain model of what `idle` and every stats counter must be, for every
//! spill strategy.

use mempool::{spill, Pool, PoolGuard, Spill, Stats, StatsCounters};
use proptest::prelude::*;

#[derive(Clone, Debug)]
enum Op {
    Get,
    /// Drop the guard at this index (modulo the number held), if any.
    Drop(usize),
    /// Take the value of the guard at this index, if any.
    Take(usize),
    /// Put back a taken value, if any.
    Put,
    Trim,
    Prefill(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => Just(Op::Get),
        4 => any::<usize>().prop_map(Op::Drop),
        1 => any::<usize>().prop_map(Op::Take),
        1 => Just(Op::Put),
        1 => Just(Op::Trim),
        1 => (0usize..4).prop_map(Op::Prefill),
    ]
}

/// What the pool must look like, on the thread that owns its slot.
#[derive(Debug, Default)]
struct Model {
    /// `None` until the first get claims the slot; then whether the slot
    /// holds an idle value.
    owner_full: Option<bool>,
    owner_in_use: bool,
    spill_idle: usize,
    /// How many values the spill keeps at most.
    capacity: usize,
    /// For each guard held, whether it holds the owner slot's value.
    guards: Vec<bool>,
    kept: usize,
    stats: Stats,
}

impl Model {
    fn pop_or_create(&mut self) {
        if self.spill_idle > 0 {
            self.spill_idle -= 1;
            self.stats.spill_hits += 1;
        } else {
            self.stats.creates += 1;
        }
    }

    fn offer(&mut self) {
        if self.spill_idle < self.capacity {
            self.spill_idle += 1;
            self.stats.spilled += 1;
        } else {
            self.stats.discarded += 1;
        }
    }

    fn get(&mut self) {
        self.stats.gets += 1;
        match self.owner_full {
            Some(true) if !self.owner_in_use => {
                self.stats.owner_hits += 1;
                self.owner_in_use = true;
                self.guards.push(true);
            }
            Some(_) if self.owner_in_use => {
                self.pop_or_create();
                self.guards.push(false);
            }
            // Unclaimed, or claimed and empty: the slot is (re)filled.
            _ => {
                self.pop_or_create();
                self.owner_full = Some(true);
                self.owner_in_use = true;
                self.guards.push(true);
            }
        }
    }

    fn drop_guard(&mut self, index: usize) {
        if self.guards.is_empty() {
            return;
        }
        let from_owner = self.guards.remove(index % self.guards.len());
        self.stats.returns += 1;
        if from_owner {
            self.owner_in_use = false;
        } else {
            self.offer();
        }
    }

    fn take(&mut self, index: usize) {
        if self.guards.is_empty() {
            return;
        }
        let from_owner = self.guards.remove(index % self.guards.len());
        self.stats.taken += 1;
        self.kept += 1;
        if from_owner {
            self.owner_in_use = false;
            self.owner_full = Some(false);
        }
    }

    fn put(&mut self) {
        if self.kept > 0 {
            self.kept -= 1;
            self.stats.returns += 1;
            self.offer();
        }
    }

    fn trim(&mut self) {
        let mut dropped = self.spill_idle;
        self.spill_idle = 0;
        if self.owner_full == Some(true) && !self.owner_in_use {
            self.owner_full = Some(false);
            dropped += 1;
        }
        self.stats.trimmed += dropped as u64;
    }

    fn prefill(&mut self, n: usize) {
        for _ in 0..n {
            self.stats.creates += 1;
            self.stats.prefilled += 1;
            self.offer();
        }
    }

    fn idle(&self) -> usize {
        usize::from(self.owner_full == Some(true) && !self.owner_in_use) + self.spill_idle
    }
}

type Create = fn() -> Vec<u8>;
type Clear = fn(&mut Vec<u8>);
type Buffers<S> = Pool<Vec<u8>, Create, Clear, S, StatsCounters>;
type Guard<'a, S> = PoolGuard<'a, Vec<u8>, Create, Clear, S, StatsCounters>;

fn check<S: Spill<Vec<u8>>>(spill: S, capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let pool: Buffers<S> = Pool::builder()
        .create(Vec::new as Create)
        .reset(Vec::clear as Clear)
        .spill(spill)
        .stats()
        .build();
    let mut model = Model {
        capacity,
        ..Model::default()
    };
    let mut guards: Vec<Guard<'_, S>> = Vec::new();
    let mut kept: Vec<Vec<u8>> = Vec::new();
    for (step, op) in ops.iter().enumerate() {
        match *op {
            Op::Get => {
                guards.push(pool.get());
                model.get();
            }
            Op::Drop(i) => {
                if !guards.is_empty() {
                    drop(guards.remove(i % guards.len()));
                }
                model.drop_guard(i);
            }
            Op::Take(i) => {
                if !guards.is_empty() {
                    kept.push(PoolGuard::take(guards.remove(i % guards.len())));
                }
                model.take(i);
            }
            Op::Put => {
                if let Some(v) = kept.pop() {
                    pool.put(v);
                }
                model.put();
            }
            Op::Trim => {
                pool.trim();
                model.trim();
            }
            Op::Prefill(n) => {
                pool.prefill(n);
                model.prefill(n);
            }
        }
        let expected = Stats {
            idle: model.idle(),
            ..model.stats
        };
        prop_assert_eq!(
            pool.idle(),
            model.idle(),
            "idle after step {} ({:?})",
            step,
            op
        );
        prop_assert_eq!(
            pool.stats().unwrap(),
            expected,
            "stats after step {} ({:?})",
            step,
            op
        );
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn per_thread_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        // One thread: its pocket holds two, the overflow the rest.
        check(spill::PerThread::default(), usize::MAX, &ops)?;
    }

    #[test]
    fn mutex_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        check(spill::Mutex::default(), usize::MAX, &ops)?;
    }

    #[test]
    fn lock_free_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        check(spill::LockFree::default(), usize::MAX, &ops)?;
    }

    #[test]
    fn bounded_matches_the_model(ops in prop::collection::vec(op(), 0..60), n in 1usize..4) {
        check(spill::Bounded::new(n), n, &ops)?;
    }

    #[test]
    fn none_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        check(spill::None, 0, &ops)?;
    }
}
