//! A panic in `create` or `reset` leaves the pool usable: later gets work, no
//! value goes to two guards, nothing is dropped twice or leaked.
//!
//! Also: panics in every hook (`create`, `reset`, `retain`) and in a value's
//! `Drop`, during get, return, `put`, `trim` and `decay`, with every
//! strategy; panicking and refusing `reset` and `retain` on the values of
//! the first thread's slots and of a pocket, returned on the getter's thread
//! and on another; values of the first thread's slots whose `Drop` panics.
//! The value is dropped once, counted once, never handed out again, and its
//! slot serves again.

mod common;

use common::{
    check_identities, fire, from, hooked_pool, in_pocket, reenter, reenter_three_deep, settle,
    silence_expected_panics, within, Knobs, Ledger, Tracked, OWNER,
};
use mempool::{spill, Pool, Spill};
use std::cell::Cell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::SeqCst};
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

// ---------------------------------------------------------------------------
// Panics in every hook and in `Drop`, during get, return, trim and decay.
// ---------------------------------------------------------------------------

/// A value whose `Drop` panics if its id is the one the fuse names.
struct FusedBomb {
    t: Tracked,
    fuse: Arc<AtomicUsize>,
}

const DISARMED: usize = usize::MAX;

impl std::fmt::Debug for FusedBomb {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Bomb").field("id", &self.t.id).finish()
    }
}

impl Drop for FusedBomb {
    fn drop(&mut self) {
        if self
            .fuse
            .compare_exchange(self.t.id, DISARMED, SeqCst, SeqCst)
            .is_ok()
        {
            panic!("a value's Drop panicked (on purpose)");
        }
    }
}

/// One-shot failures of the hooks.
#[derive(Default)]
struct Faults {
    create: AtomicBool,
    reset: AtomicBool,
    retain_panics: AtomicBool,
    retain_refuses: AtomicBool,
}

fn panic_matrix<S: Spill<FusedBomb> + Send + Sync>(name: &str, spill: S) {
    let ledger = Ledger::new();
    let fuse = Arc::new(AtomicUsize::new(DISARMED));
    let faults = Arc::new(Faults::default());
    let (l, fz, f1, f2) = (
        Arc::clone(&ledger),
        Arc::clone(&fuse),
        Arc::clone(&faults),
        Arc::clone(&faults),
    );
    let f3 = Arc::clone(&faults);
    let pool = Pool::builder()
        .create(move || {
            if fire(&f1.create) {
                panic!("create panicked (on purpose)");
            }
            FusedBomb {
                t: l.make(),
                fuse: Arc::clone(&fz),
            }
        })
        .reset(move |_: &mut FusedBomb| {
            if fire(&f2.reset) {
                panic!("reset panicked (on purpose)");
            }
        })
        .retain(move |_: &FusedBomb| {
            if fire(&f3.retain_panics) {
                panic!("retain panicked (on purpose)");
            }
            !fire(&f3.retain_refuses)
        })
        .spill(spill)
        .stats()
        .build();
    let step = Cell::new("start");
    let check = |held: usize| {
        let s = pool.stats().unwrap();
        let what = format!("{name}, after {}", step.get());
        common::check_identities(&s, &what);
        assert_eq!(s.in_use, held as u64, "{what}: {s}");
        assert_eq!(
            ledger.created(),
            ledger.dropped() + pool.idle() + held,
            "{what}: created == dropped + idle + held"
        );
        assert!(!ledger.double_use.load(SeqCst), "{what}");
        assert_eq!(
            fuse.load(SeqCst),
            DISARMED,
            "{what}: the armed value was never dropped"
        );
        // Still usable, and the owner slot too.
        drop(pool.get());
    };
    let fails = |what: &'static str, f: &mut dyn FnMut()| {
        step.set(what);
        let r = catch_unwind(AssertUnwindSafe(f));
        assert!(r.is_err(), "{name}: {what} did not panic");
    };

    // create: the first get, while the slot is unclaimed.
    faults.create.store(true, SeqCst);
    fails("create on the first get", &mut || drop(pool.get()));
    check(0);
    // create for a nested get, and on another thread.
    let o = pool.get();
    faults.create.store(true, SeqCst);
    fails("create on a nested get", &mut || drop(pool.get()));
    drop(o);
    check(0);
    std::thread::scope(|s| {
        s.spawn(|| {
            let _owner_busy = ();
            faults.create.store(true, SeqCst);
            let r = catch_unwind(AssertUnwindSafe(|| {
                let a = pool.get(); // may take the owner's idle value over
                let b = pool.get();
                drop((a, b));
            }));
            assert!(r.is_err(), "{name}: create on another thread");
        });
    });
    check(0);
    // create on the owner thread, refilling a slot emptied by trim.
    pool.trim();
    faults.create.store(true, SeqCst);
    fails("create refilling the trimmed owner slot", &mut || {
        drop(pool.get())
    });
    check(0);

    // reset and retain, on the owner slot's value, a spilled one and put.
    for (what, flag) in [("reset", &faults.reset), ("retain", &faults.retain_panics)] {
        let (o, n) = (pool.get(), pool.get());
        flag.store(true, SeqCst);
        let mut o = Some(o);
        fails(what, &mut || drop(o.take()));
        flag.store(true, SeqCst);
        let mut n = Some(n);
        fails(what, &mut || drop(n.take()));
        flag.store(true, SeqCst);
        fails(what, &mut || {
            let _ = pool.put(FusedBomb {
                t: ledger.make(),
                fuse: Arc::clone(&fuse),
            });
        });
        check(0);
    }

    // Drop panics when retain refuses: the owner slot's value and a spilled one.
    for spilled in [false, true] {
        let o = pool.get();
        let n = pool.get();
        let (victim, keep) = if spilled { (n, o) } else { (o, n) };
        fuse.store(victim.t.id, SeqCst);
        faults.retain_refuses.store(true, SeqCst);
        let mut victim = Some(victim);
        fails("a Drop panicking after retain refused", &mut || {
            drop(victim.take())
        });
        drop(keep);
        check(0);
    }

    // Drop panics during trim and decay: the owner slot's value, then a
    // spilled one.
    for target in ["owner", "spilled"] {
        for op in ["trim", "decay"] {
            let held: Vec<_> = (0..5).map(|_| pool.get()).collect();
            let ids: Vec<usize> = held.iter().map(|g| g.t.id).collect();
            let owner = held.iter().find(|g| common::from_a_slot(g)).map(|g| g.t.id);
            drop(held);
            if target == "spilled" && pool.idle() < 2 {
                // `None` kept no spilled value.
                pool.trim();
                continue;
            }
            let id = match target {
                "owner" => owner.unwrap_or(ids[0]),
                _ => *ids.iter().find(|&&id| Some(id) != owner).unwrap(),
            };
            if op == "decay" {
                pool.decay(); // set aside: the next decay drops
                              // A get in between would take one back; keep it out.
            }
            fuse.store(id, SeqCst);
            step.set(if op == "trim" {
                "a Drop panicking in trim"
            } else {
                "a Drop panicking in decay"
            });
            let r = catch_unwind(AssertUnwindSafe(|| {
                if op == "trim" {
                    pool.trim()
                } else {
                    pool.decay()
                }
            }));
            assert!(
                r.is_err(),
                "{name}: {target} value, {op}: its Drop did not run"
            );
            check(0);
        }
    }

    // A spilled value refused by a full spill, whose Drop panics.
    {
        let held: Vec<_> = (0..40).map(|_| pool.get()).collect();
        let last = held.last().unwrap().t.id;
        fuse.store(last, SeqCst);
        let mut held = Some(held);
        step.set("returning 40 values, the last one's Drop armed");
        let r = catch_unwind(AssertUnwindSafe(|| drop(held.take())));
        if r.is_ok() {
            // The spill kept it: trim drops it, and its panic goes on.
            step.set("trim with the last one's Drop armed");
            let r = catch_unwind(AssertUnwindSafe(|| pool.trim()));
            assert!(
                r.is_err(),
                "{name}: the armed value was not dropped by trim"
            );
        }
        check(0);
    }
    drop(pool);
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "{name}: every value dropped once"
    );
}

#[test]
fn panics_in_every_hook_and_in_drop_during_trim_and_decay() {
    if std::env::var_os("ATTACK_LOUD").is_none() {
        silence_expected_panics();
    }
    panic_matrix("PerThread", spill::PerThread::default());
    panic_matrix("Mutex", spill::Mutex::default());
    panic_matrix("LockFree", spill::LockFree::default());
    panic_matrix("Bounded", spill::Bounded::new(4));
    panic_matrix("None", spill::None);
}

/// A panicking `reset`, a panicking `retain` and a refusing `retain`, on the
/// value of either owner slot, returned on the owner thread or on another:
/// the value is dropped once, counted once, never handed out again, and its
/// owner slot takes a value again on the owner's next get.
#[test]
fn panicking_and_refusing_hooks_on_first_thread_values() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let knobs = Arc::new(Knobs::default());
    let pool = hooked_pool(&ledger, &knobs, reenter_three_deep);
    let (p, l, k) = (Arc::clone(&pool), Arc::clone(&ledger), Arc::clone(&knobs));
    within(60, "panicking hooks", move || {
        let flags: [(&str, &AtomicBool); 3] = [
            ("reset panics", &k.reset_panics),
            ("retain panics", &k.retain_panics),
            ("retain refuses", &k.retain_refuses),
        ];
        for (what, flag) in flags {
            for slot in [0, 1] {
                for elsewhere in [false, true] {
                    let what = format!("{what}, slot {slot}, elsewhere {elsewhere}");
                    let before = p.stats().unwrap();
                    let dropped = l.dropped();
                    let (a, b) = (p.get_owned(), p.get_owned());
                    assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                    let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                    let vid = victim.id;
                    flag.store(true, SeqCst);
                    let refused = what.starts_with("retain refuses");
                    let result = if elsewhere {
                        std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                            .join()
                            .unwrap()
                    } else {
                        catch_unwind(AssertUnwindSafe(|| drop(victim)))
                    };
                    assert_eq!(result.is_err(), !refused, "{what}");
                    assert!(!flag.load(SeqCst), "{what}: the hook never ran");
                    assert_eq!(l.dropped(), dropped + 1, "{what}: dropped once");
                    let shown = format!("{p:?}");
                    let expected = if slot == 0 {
                        "owner_slots: [empty, in use]"
                    } else {
                        "owner_slots: [in use, empty]"
                    };
                    assert!(shown.contains(expected), "{what}: {shown}");
                    drop(other);
                    let s = p.stats().unwrap();
                    assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                    if refused {
                        assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                    } else {
                        assert_eq!(s.discarded, before.discarded + 1, "{what}: {s}");
                    }
                    check_identities(&s, &what);
                    let (x, y) = (p.get(), p.get());
                    assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
                    assert!(
                        x.id != vid && y.id != vid,
                        "{what}: a dropped value came back"
                    );
                    drop((x, y));
                    assert_eq!(p.stats().unwrap().in_use, 0, "{what}");
                }
            }
        }
    });
    settle("panicking hooks", &ledger, pool);
}

/// A panicking `reset`, a panicking `retain` and a refusing `retain`, on the
/// value of either pocket slot, returned on the getter's thread and on
/// another: the value is dropped once, counted once, never handed out again,
/// and the slot takes a new value on the next get.
#[test]
fn panicking_and_refusing_hooks_on_pocket_values() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let knobs = Arc::new(Knobs::default());
    let pool = hooked_pool(&ledger, &knobs, reenter);
    let flags: [(&str, &AtomicBool); 3] = [
        ("reset panics", &knobs.reset_panics),
        ("retain panics", &knobs.retain_panics),
        ("retain refuses", &knobs.retain_refuses),
    ];
    for (what, flag) in flags {
        for second_slot in [false, true] {
            for elsewhere in [false, true] {
                let what = format!("{what}, second slot {second_slot}, elsewhere {elsewhere}");
                let before = pool.stats().unwrap();
                let dropped = ledger.dropped();
                let first = pool.get_owned();
                let second = pool.get_owned();
                assert!(in_pocket(&first) && in_pocket(&second), "{what}");
                let (victim, other) = if second_slot {
                    (second, first)
                } else {
                    (first, second)
                };
                let vid = victim.id;
                flag.store(true, SeqCst);
                let refused = what.starts_with("retain refuses");
                let result = if elsewhere {
                    std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                        .join()
                        .unwrap()
                } else {
                    catch_unwind(AssertUnwindSafe(|| drop(victim)))
                };
                assert_eq!(result.is_err(), !refused, "{what}");
                assert!(!flag.load(SeqCst), "{what}: the hook never ran");
                assert_eq!(
                    ledger.dropped(),
                    dropped + 1,
                    "{what}: the value was not dropped"
                );
                drop(other);
                let s = pool.stats().unwrap();
                assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                if refused {
                    assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                } else {
                    assert_eq!(s.discarded, before.discarded + 1, "{what}: {s}");
                }
                check_identities(&s, &what);
                // Both slots serve again, and the dropped value is gone.
                let (a, b) = (pool.get(), pool.get());
                assert!(in_pocket(&a) && in_pocket(&b), "{what}: {a:?} {b:?}");
                assert!(
                    a.id != vid && b.id != vid,
                    "{what}: a dropped value came back"
                );
                drop((a, b));
                assert_eq!(pool.stats().unwrap().in_use, 0);
            }
        }
    }
    settle("panicking hooks", &ledger, pool);
}

/// A value whose `Drop` panics once armed, and which `retain` refuses once
/// told to.
#[derive(Debug)]
struct Bomb {
    t: Tracked,
    armed: bool,
    refuse: bool,
}

impl Drop for Bomb {
    fn drop(&mut self) {
        // Not while unwinding (a failed assertion): that would abort the
        // whole binary.
        if std::mem::take(&mut self.armed) && !std::thread::panicking() {
            panic!("Bomb dropped (on purpose)");
        }
    }
}

/// An owner-slot value whose `Drop` panics, dropped by a refusing `retain`
/// (on the owner thread and another), by `trim` on another thread, by the
/// second `decay`, and by dropping the pool: the panic goes on to the
/// caller, every other value is still dropped, the counts and `idle()` are
/// right, and the owner slot serves again.
#[test]
fn first_thread_values_whose_drop_panics() {
    silence_expected_panics();
    let ledger = Ledger::new();
    let l = Arc::clone(&ledger);
    let pool = Arc::new(
        Pool::builder()
            .create(move || Bomb {
                t: l.make(),
                armed: false,
                refuse: false,
            })
            .retain(|b: &Bomb| !b.refuse)
            .stats()
            .build(),
    );
    let p = Arc::clone(&pool);
    let l = Arc::clone(&ledger);
    within(60, "Drop panics", move || {
        // Refused by retain, on either slot, here and elsewhere.
        for slot in [0, 1] {
            for elsewhere in [false, true] {
                let what = format!("retain refuses, slot {slot}, elsewhere {elsewhere}");
                let before = p.stats().unwrap();
                let dropped = l.dropped();
                let (mut a, mut b) = (p.get_owned(), p.get_owned());
                assert_eq!((from(&a), from(&b)), (OWNER, OWNER), "{what}");
                let victim = if slot == 0 { &mut a } else { &mut b };
                victim.armed = true;
                victim.refuse = true;
                let (victim, other) = if slot == 0 { (a, b) } else { (b, a) };
                let vid = victim.t.id;
                let result = if elsewhere {
                    std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| drop(victim))))
                        .join()
                        .unwrap()
                } else {
                    catch_unwind(AssertUnwindSafe(|| drop(victim)))
                };
                assert!(result.is_err(), "{what}: the Drop did not panic");
                assert_eq!(l.dropped(), dropped + 1, "{what}");
                drop(other);
                let s = p.stats().unwrap();
                assert_eq!(s.returns, before.returns + 2, "{what}: {s}");
                assert_eq!(s.rejected, before.rejected + 1, "{what}: {s}");
                check_identities(&s, &what);
                let (x, y) = (p.get(), p.get());
                assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
                assert!(x.t.id != vid && y.t.id != vid, "{what}");
            }
        }
        // Trimmed on another thread, and decayed: both owner slots idle (and
        // two values in the owner's pocket), the one in `slot` armed.
        for how in ["trim", "decay"] {
            for slot in [0, 1] {
                let what = format!("{how}, slot {slot}");
                let mut held: Vec<_> = (0..4).map(|_| p.get()).collect();
                assert_eq!((from(&held[0]), from(&held[1])), (OWNER, OWNER), "{what}");
                held[slot].armed = true;
                drop(held);
                let idle = p.idle();
                assert_eq!(idle, 4, "{what}");
                let before = p.stats().unwrap();
                let dropped = l.dropped();
                let result = if how == "trim" {
                    let q = Arc::clone(&p);
                    std::thread::spawn(move || catch_unwind(AssertUnwindSafe(|| q.trim())))
                        .join()
                        .unwrap()
                } else {
                    assert_eq!(p.decay(), 0, "{what}");
                    catch_unwind(AssertUnwindSafe(|| p.decay()))
                };
                assert!(result.is_err(), "{what}: the Drop did not panic");
                assert_eq!(
                    l.dropped(),
                    dropped + idle,
                    "{what}: the others were not dropped"
                );
                assert_eq!(p.idle(), 0, "{what}");
                let s = p.stats().unwrap();
                let (trimmed, decayed) = (s.trimmed - before.trimmed, s.decayed - before.decayed);
                if how == "trim" {
                    assert_eq!((trimmed, decayed), (idle as u64, 0), "{what}: {s}");
                } else {
                    assert_eq!((trimmed, decayed), (0, idle as u64), "{what}: {s}");
                }
                check_identities(&s, &what);
                let (x, y) = (p.get(), p.get());
                assert_eq!((from(&x), from(&y)), (OWNER, OWNER), "{what}");
            }
        }
        // Left for the pool's drop: owner slot 1 armed, slot 0 and the
        // pocket full.
        let mut held: Vec<_> = (0..4).map(|_| p.get()).collect();
        held[1].armed = true;
        drop(held);
    });
    assert!(!ledger.double_use.load(SeqCst));
    assert_eq!(ledger.created(), ledger.dropped() + pool.idle());
    assert_eq!(pool.idle(), 4);
    let result = catch_unwind(AssertUnwindSafe(|| drop(pool)));
    assert!(result.is_err(), "dropping the pool: the Drop did not panic");
    assert_eq!(
        ledger.created(),
        ledger.dropped(),
        "dropping the pool: a value was not dropped"
    );
}
