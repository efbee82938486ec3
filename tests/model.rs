//! Property test against a model: random single-thread sequences of get,
//! try_get, drop, drop with a reset that panics, drop of a value `retain`
//! refuses, take, put, trim, decay and prefill, checked
//! after every step against a plain model of what `idle` and every stats
//! counter must be, and against the identities `Stats` documents, for every
//! spill strategy.

mod common;

use mempool::{spill, Pool, PoolGuard, Retaining, Spill, Stats, StatsCounters};
use proptest::prelude::*;
use std::panic::{catch_unwind, AssertUnwindSafe};

#[derive(Clone, Debug)]
enum Op {
    Get,
    /// Drop the guard at this index (modulo the number held), if any.
    Drop(usize),
    /// Drop it with a value that makes the reset hook panic.
    DropPoisoned(usize),
    /// Drop it after growing it past what `retain` keeps.
    DropOversized(usize),
    TryGet,
    Decay,
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
        1 => any::<usize>().prop_map(Op::DropPoisoned),
        1 => any::<usize>().prop_map(Op::DropOversized),
        2 => Just(Op::TryGet),
        1 => Just(Op::Decay),
        1 => any::<usize>().prop_map(Op::Take),
        1 => Just(Op::Put),
        1 => Just(Op::Trim),
        1 => (0usize..4).prop_map(Op::Prefill),
    ]
}

/// Where a slot stands: one of the two slots of the pool's first thread
/// (the model's one thread), whatever the strategy.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
enum Slot {
    #[default]
    Empty,
    Full,
    InUse,
    /// A slot that `trim` or `decay` took from: it still looks full to its
    /// own thread, which settles it (to empty) on its next take from that
    /// slot, and until then it refuses values.
    Taken,
}

/// What the pool must look like, seen from the one thread that uses it.
#[derive(Debug, Default)]
struct Model {
    /// The slots have been claimed (by the model's one thread).
    claimed: bool,
    slots: [Slot; 2],
    spill_idle: usize,
    /// Idle values the last `decay` set aside.
    victims: usize,
    /// How many values the spill keeps at most.
    capacity: usize,
    /// The pool-wide ceiling on idle values, if the spill promises one.
    ceiling: Option<usize>,
    /// For each guard held, the slot its value lives in, if any.
    guards: Vec<Option<usize>>,
    kept: usize,
    stats: Stats,
}

impl Model {
    fn new(ceiling: Option<usize>, capacity: usize) -> Self {
        Model {
            capacity,
            ceiling,
            ..Model::default()
        }
    }

    /// How many of the thread's slots may hold values: two, or the ceiling
    /// if smaller.
    fn slot_room(&self) -> usize {
        self.ceiling.map_or(2, |c| c.min(2))
    }

    /// The fast path, then the second slot: the first full slot, settling
    /// taken ones on the way. The slots serve nobody until claimed.
    fn take_slot(&mut self) -> Option<usize> {
        if !self.claimed {
            return None;
        }
        for i in 0..self.slots.len() {
            match self.slots[i] {
                Slot::Full => {
                    self.slots[i] = Slot::InUse;
                    self.stats.slot_hits += 1;
                    return Some(i);
                }
                Slot::Taken => self.slots[i] = Slot::Empty,
                _ => {}
            }
        }
        None
    }

    /// The first empty slot, for a value got elsewhere (`state` it takes),
    /// claiming the slots if unclaimed when `claim`.
    fn empty_slot(&mut self, claim: bool, state: Slot) -> Option<usize> {
        if claim {
            self.claimed = true;
        }
        if !self.claimed {
            return None;
        }
        let i = (0..self.slot_room()).find(|&i| self.slots[i] == Slot::Empty)?;
        self.slots[i] = state;
        Some(i)
    }

    fn pop_or_create(&mut self) {
        if !self.reuse() {
            self.stats.creates += 1;
        }
    }

    /// An idle value from the spill, else from the values `decay` set aside.
    fn reuse(&mut self) -> bool {
        if self.spill_idle > 0 {
            self.spill_idle -= 1;
        } else if self.victims > 0 {
            self.victims -= 1;
        } else {
            return false;
        }
        self.stats.spill_hits += 1;
        true
    }

    fn get(&mut self) {
        self.stats.gets += 1;
        if let Some(i) = self.take_slot() {
            self.guards.push(Some(i));
            return;
        }
        self.pop_or_create();
        let slot = self.empty_slot(true, Slot::InUse);
        self.guards.push(slot);
    }

    /// Whether `try_get` hands out a guard; the model's state follows.
    fn try_get(&mut self) -> bool {
        if let Some(i) = self.take_slot() {
            self.stats.gets += 1;
            self.guards.push(Some(i));
            return true;
        }
        if !self.reuse() {
            return false;
        }
        self.stats.gets += 1;
        let slot = self.empty_slot(true, Slot::InUse);
        self.guards.push(slot);
        true
    }

    /// The guard at `index` goes; the slot its value lived in, if any.
    fn remove_guard(&mut self, index: usize) -> Option<Option<usize>> {
        if self.guards.is_empty() {
            return None;
        }
        Some(self.guards.remove(index % self.guards.len()))
    }

    /// `retain` refuses the value: counted, dropped; a slot's value leaves
    /// the slot empty.
    fn drop_oversized(&mut self, index: usize) {
        let Some(slot) = self.remove_guard(index) else {
            return;
        };
        self.stats.returns += 1;
        self.stats.rejected += 1;
        if let Some(i) = slot {
            self.slots[i] = Slot::Empty;
        }
    }

    /// The idle values of the slots, taken by `trim` or `decay`: the slots
    /// are marked taken.
    fn take_idle_slots(&mut self) -> usize {
        let mut n = 0;
        for slot in &mut self.slots {
            if *slot == Slot::Full {
                *slot = Slot::Taken;
                n += 1;
            }
        }
        n
    }

    fn decay(&mut self) {
        self.stats.decayed += self.victims as u64;
        self.victims = self.spill_idle + self.take_idle_slots();
        self.spill_idle = 0;
    }

    /// An idle value that came from no slot (returned, put, prefilled): into
    /// an empty slot of the thread's (once claimed), else offered to the
    /// spill; false if neither keeps it. With a ceiling (which counts values
    /// lent from the slots, sure to come back), a value that would break it
    /// takes the place of one `decay` set aside, or is not kept; a value
    /// that neither a slot nor the spill would keep costs no set-aside one.
    fn keep_idle(&mut self) -> bool {
        // Values lent from the slots keep their places.
        let at_ceiling = self
            .ceiling
            .map_or(false, |ceiling| self.idle() + self.lent() >= ceiling);
        if at_ceiling && self.victims == 0 {
            return false;
        }
        if self.empty_slot(false, Slot::Full).is_none() {
            if self.spill_idle >= self.capacity {
                return false;
            }
            self.spill_idle += 1;
            self.stats.spilled += 1;
        }
        if at_ceiling {
            self.victims -= 1;
            self.stats.decayed += 1;
        }
        true
    }

    /// How many slots have their value lent to a guard.
    fn lent(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::InUse).count()
    }

    fn drop_guard(&mut self, index: usize) {
        let Some(slot) = self.remove_guard(index) else {
            return;
        };
        self.stats.returns += 1;
        match slot {
            Some(i) => self.slots[i] = Slot::Full,
            None => {
                if !self.keep_idle() {
                    self.stats.discarded += 1;
                }
            }
        }
    }

    /// The reset panics: the value is counted as returned and discarded,
    /// and dropped; a slot's value leaves the slot empty.
    fn drop_poisoned(&mut self, index: usize) {
        let Some(slot) = self.remove_guard(index) else {
            return;
        };
        self.stats.returns += 1;
        self.stats.discarded += 1;
        if let Some(i) = slot {
            self.slots[i] = Slot::Empty;
        }
    }

    fn take(&mut self, index: usize) {
        let Some(slot) = self.remove_guard(index) else {
            return;
        };
        self.stats.taken += 1;
        self.kept += 1;
        if let Some(i) = slot {
            self.slots[i] = Slot::Empty;
        }
    }

    /// Whether the pool keeps a taken value put back (the test holds one).
    fn put(&mut self) -> bool {
        self.kept -= 1;
        self.stats.returns += 1;
        self.stats.puts += 1;
        let kept = self.keep_idle();
        if !kept {
            self.stats.discarded += 1;
        }
        kept
    }

    fn trim(&mut self) {
        let dropped = self.spill_idle + self.victims + self.take_idle_slots();
        self.spill_idle = 0;
        self.victims = 0;
        self.stats.trimmed += dropped as u64;
    }

    /// Up to `n`: stops at a ceiling, and at the first value not kept.
    fn prefill(&mut self, n: usize) {
        for _ in 0..n {
            if matches!(self.ceiling, Some(c) if self.idle() + self.lent() >= c) {
                return;
            }
            self.stats.creates += 1;
            self.stats.prefilled += 1;
            if !self.keep_idle() {
                self.stats.discarded += 1;
                return;
            }
        }
    }

    fn idle(&self) -> usize {
        self.slots.iter().filter(|s| **s == Slot::Full).count() + self.spill_idle + self.victims
    }
}

type Create = fn() -> Vec<u8>;
type Clear = fn(&mut Vec<u8>);

/// The reset hook: clears, but panics on a vector that starts with `POISON`.
fn clear(v: &mut Vec<u8>) {
    if v.first() == Some(&POISON) {
        panic!("reset panicked (on purpose)");
    }
    v.clear();
}

const POISON: u8 = 0xFF;
type Keep = fn(&Vec<u8>) -> bool;
type Hooks = Retaining<Clear, Keep>;
type Buffers<S> = Pool<Vec<u8>, Create, Hooks, S, StatsCounters>;
type Guard<'a, S> = PoolGuard<'a, Vec<u8>, Create, Hooks, S, StatsCounters>;

/// What `retain` keeps: vectors of at most this capacity.
const LIMIT: usize = 1024;

fn keep(v: &Vec<u8>) -> bool {
    v.capacity() <= LIMIT
}

fn check<S: Spill<Vec<u8>>>(spill: S, capacity: usize, ops: &[Op]) -> Result<(), TestCaseError> {
    let ceiling = spill.ceiling();
    common::silence_expected_panics();
    let pool: Buffers<S> = Pool::builder()
        .create(Vec::new as Create)
        .reset(clear as Clear)
        .retain(keep as Keep)
        .spill(spill)
        .stats()
        .build();
    let mut model = Model::new(ceiling, capacity);
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
            Op::DropPoisoned(i) => {
                if !guards.is_empty() {
                    let mut guard = guards.remove(i % guards.len());
                    guard.insert(0, POISON);
                    let caught = catch_unwind(AssertUnwindSafe(|| drop(guard)));
                    prop_assert!(caught.is_err(), "the reset did not panic");
                }
                model.drop_poisoned(i);
            }
            Op::DropOversized(i) => {
                if !guards.is_empty() {
                    let mut guard = guards.remove(i % guards.len());
                    guard.reserve(2 * LIMIT);
                    drop(guard);
                }
                model.drop_oversized(i);
            }
            Op::TryGet => {
                let got = pool.try_get();
                prop_assert_eq!(got.is_some(), model.try_get(), "try_get at step {}", step);
                guards.extend(got);
            }
            Op::Decay => {
                let dropped = pool.decay();
                let expected = model.victims;
                model.decay();
                prop_assert_eq!(dropped, expected, "decay at step {}", step);
            }
            Op::Take(i) => {
                if !guards.is_empty() {
                    kept.push(PoolGuard::take(guards.remove(i % guards.len())));
                }
                model.take(i);
            }
            Op::Put => {
                if let Some(v) = kept.pop() {
                    let got = pool.put(v).is_ok();
                    prop_assert_eq!(got, model.put(), "put kept the value at step {}", step);
                }
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
        let mut expected: Stats = model.stats;
        expected.idle = model.idle();
        expected.in_use = model.guards.len() as u64;
        let s = pool.stats().unwrap();
        prop_assert_eq!(
            s.creates + s.puts,
            s.idle as u64 + s.in_use + s.discarded + s.rejected + s.decayed + s.trimmed + s.taken,
            "creates + puts == idle + in_use + discarded + rejected + decayed + trimmed + taken after step {} ({:?}): {}",
            step,
            op,
            s
        );
        prop_assert_eq!(
            s.gets + s.puts,
            s.returns + s.taken + s.in_use,
            "gets + puts == returns + taken + in_use after step {} ({:?}): {}",
            step,
            op,
            s
        );
        prop_assert_eq!(
            pool.idle(),
            model.idle(),
            "idle after step {} ({:?})",
            step,
            op
        );
        if let Some(ceiling) = ceiling {
            prop_assert!(
                pool.idle() <= ceiling,
                "{} idle values over a ceiling of {} after step {} ({:?})",
                pool.idle(),
                ceiling,
                step,
                op
            );
        }
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

/// 256 cases per strategy; 32 under valgrind, where `.ci/run` sets
/// `MEMPOOL_STRESS_CYCLES` and everything runs about 50 times slower.
fn cases() -> u32 {
    if std::env::var_os("MEMPOOL_STRESS_CYCLES").is_some() {
        32
    } else {
        256
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(cases()))]

    #[test]
    fn per_thread_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        // One thread, the first: its two slots, then the overflow.
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
    fn bounded_matches_the_model(ops in prop::collection::vec(op(), 0..60), n in 1usize..6) {
        // The ceiling `n` covers the first thread's slots: the spill keeps
        // the rest.
        check(spill::Bounded::new(n), n - n.min(2), &ops)?;
    }

    #[test]
    fn none_matches_the_model(ops in prop::collection::vec(op(), 0..60)) {
        check(spill::None, 0, &ops)?;
    }
}
