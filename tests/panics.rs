//! A panic in `create` or `reset` leaves the pool usable: later gets work, no
//! value goes to two guards, nothing is dropped twice or leaked.

mod common;

use common::{Ledger, Tracked};
use mempool::Pool;
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Arc;

thread_local! {
    static FAIL_CREATE: Cell<bool> = const { Cell::new(false) };
    static FAIL_RESET: Cell<bool> = const { Cell::new(false) };
}

fn arm(flag: &'static std::thread::LocalKey<Cell<bool>>, on: bool) {
    flag.with(|f| f.set(on));
}

fn tracked_pool(
    ledger: &Arc<Ledger>,
) -> Pool<Tracked, impl Fn() -> Tracked, impl Fn(&mut Tracked)> {
    let ledger = Arc::clone(ledger);
    Pool::builder()
        .create(move || {
            if FAIL_CREATE.with(Cell::get) {
                panic!("create failed");
            }
            ledger.make()
        })
        .reset(|_: &mut Tracked| {
            if FAIL_RESET.with(Cell::get) {
                panic!("reset failed");
            }
        })
        .build()
}

#[test]
fn create_panicking_for_the_first_get_leaves_the_slot_unclaimed() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    arm(&FAIL_CREATE, true);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(pool.get()))).is_err());
    arm(&FAIL_CREATE, false);
    assert_eq!(pool.idle(), 0);
    let g = pool.get();
    assert!(common::from_a_slot(&g), "the slot can still be filled");
    drop(g);
    assert_eq!(ledger.created(), 1);
    drop(pool);
    assert_eq!(ledger.dropped(), 1);
}

#[test]
fn create_panicking_for_a_nested_get_leaves_the_owner_value_alone() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let owner_value = pool.get();
    arm(&FAIL_CREATE, true);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(pool.get()))).is_err());
    arm(&FAIL_CREATE, false);
    owner_value.use_for(|| ());
    drop(owner_value);
    assert_eq!(pool.idle(), 1);
    drop(pool);
    assert_eq!((ledger.created(), ledger.dropped()), (1, 1));
}

#[test]
fn reset_panicking_on_the_owner_value_drops_it_once() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let g = pool.get();
    arm(&FAIL_RESET, true);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(g))).is_err());
    arm(&FAIL_RESET, false);
    assert_eq!(ledger.dropped(), 1, "the half-reset value was dropped");
    assert_eq!(pool.idle(), 0);
    // The owner slot is refilled and works as before.
    let a = pool.get();
    let b = pool.get();
    assert_ne!(a.id, b.id);
    drop((a, b));
    assert_eq!(pool.idle(), 2);
    drop(pool);
    assert_eq!((ledger.created(), ledger.dropped()), (3, 3));
    assert!(!ledger.double_use.load(std::sync::atomic::Ordering::SeqCst));
}

#[test]
fn reset_panicking_on_a_spilled_value_drops_it_once() {
    let ledger = Ledger::new();
    let pool = tracked_pool(&ledger);
    let owner = pool.get();
    let spilled = pool.get();
    arm(&FAIL_RESET, true);
    assert!(catch_unwind(AssertUnwindSafe(|| drop(spilled))).is_err());
    assert!(catch_unwind(AssertUnwindSafe(|| pool.put(ledger.make()))).is_err());
    arm(&FAIL_RESET, false);
    assert_eq!(ledger.dropped(), 2);
    assert_eq!(pool.idle(), 0);
    drop(owner);
    assert_eq!(pool.idle(), 1);
    drop(pool);
    assert_eq!((ledger.created(), ledger.dropped()), (3, 3));
}

#[test]
fn reset_panicking_on_another_thread_leaves_the_owner_slot_usable() {
    let ledger = Ledger::new();
    let pool = Arc::new(tracked_pool(&ledger));
    let g = pool.get_owned();
    let result = std::thread::spawn(move || {
        arm(&FAIL_RESET, true);
        drop(g);
    })
    .join();
    assert!(result.is_err());
    assert_eq!(ledger.dropped(), 1);
    drop(pool.get());
    assert_eq!(pool.idle(), 1);
    drop(pool);
    assert_eq!((ledger.created(), ledger.dropped()), (2, 2));
}
