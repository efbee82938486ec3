//! Every public type is `Send`, `Sync`, `Unpin`, `UnwindSafe` and
//! `RefUnwindSafe` for an ordinary value type, so that a pool can sit in a
//! `static`, a struct field that must stay `RefUnwindSafe` (as a regex's
//! does), or a task. A missing trait fails to compile.

use mempool::{
    spill, NoCreate, NoReset, NoStats, OwnedPoolGuard, Pool, PoolBuilder, PoolGuard, RetainAll,
    Retaining, Stats, StatsCounters,
};
use std::panic::{RefUnwindSafe, UnwindSafe};

fn all_five<T: Send + Sync + Unpin + UnwindSafe + RefUnwindSafe>() {}

type V = Vec<u8>;
type Hooks = Retaining<fn(&mut V), fn(&V) -> bool>;

#[test]
fn every_public_type_has_all_five() {
    all_five::<Pool<V>>();
    all_five::<Pool<V, fn() -> V, Hooks, spill::Mutex<V>, StatsCounters>>();
    all_five::<Pool<V, fn() -> V, NoReset, spill::LockFree<V>>>();
    all_five::<Pool<V, fn() -> V, NoReset, spill::Bounded<V>>>();
    all_five::<Pool<V, fn() -> V, NoReset, spill::None>>();
    all_five::<PoolGuard<'static, V>>();
    all_five::<PoolGuard<'static, V, fn() -> V, Hooks, spill::Mutex<V>, StatsCounters>>();
    all_five::<OwnedPoolGuard<V>>();
    all_five::<PoolBuilder<V>>();
    all_five::<
        PoolBuilder<V, fn() -> V, NoReset, spill::PerThread<V>, StatsCounters, fn(&V) -> bool>,
    >();
    all_five::<spill::PerThread<V>>();
    all_five::<spill::Mutex<V>>();
    all_five::<spill::LockFree<V>>();
    all_five::<spill::Bounded<V>>();
    all_five::<spill::None>();
    all_five::<Stats>();
    all_five::<StatsCounters>();
    all_five::<NoStats>();
    all_five::<NoReset>();
    all_five::<NoCreate>();
    all_five::<RetainAll>();
    all_five::<Hooks>();
    all_five::<mempool::BoxedPool<V>>();
    all_five::<mempool::BoxedReset<V>>();
    #[cfg(feature = "prometheus")]
    all_five::<mempool::prometheus::PoolCollector>();
}

/// A pool of closures' hooks too: what a user writes.
#[test]
fn a_pool_built_from_closures_has_all_five() {
    fn check<P: Send + Sync + Unpin + UnwindSafe + RefUnwindSafe>(_: &P) {}
    let pool = Pool::builder()
        .create(|| Vec::<u8>::with_capacity(16))
        .reset(Vec::clear)
        .retain(|v: &Vec<u8>| v.capacity() < 1 << 20)
        .stats()
        .build();
    check(&pool);
    check(&pool.get());
}
