//! One thread, `Vec<u8>` of capacity 256: get, push a byte, return (cleared).
//!
//! Side by side in one run: this crate's default pool on one thread (a pocket
//! slot each way; with and without stats, and with boxed hooks),
//! the original `mempool` 0.3.1 owner path (which returns a shared reference
//! and does no reset or return: the push and clear go through a `RefCell`),
//! `regex-automata`'s internal pool, and allocating a fresh vector each time.
//!
//! Each contender's cycle is inlined into a timing loop of its own (`timed`
//! is generic, so each gets its own copy), as it would be inlined into a
//! user's code. Criterion's default `iter` puts every closure inside one
//! shared loop shape, where how the optimiser happens to lay out the code
//! moved results by 0.3 ns (20%) between runs of the same source.
//!
//! Each contender has four copies at different places on the heap, one per
//! sample by turns (`benches/common/placed.rs` says why).
//!
//! `cargo bench -p mempool-benches --bench single_thread`

#[path = "../common/placed.rs"]
mod placed;

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use placed::Placed;
use std::cell::RefCell;
use std::time::{Duration, Instant};

fn new_vec() -> Vec<u8> {
    Vec::with_capacity(256)
}

/// Runs `cycle` `iters` times and returns the time taken.
#[inline(never)]
fn timed(iters: u64, mut cycle: impl FnMut()) -> Duration {
    let start = Instant::now();
    for _ in 0..iters {
        cycle();
    }
    start.elapsed()
}

fn single_thread(c: &mut Criterion) {
    let mut group = c.benchmark_group("single_thread");

    let pools = Placed::new(|| {
        mempool::Pool::builder()
            .create(new_vec)
            .reset(Vec::clear)
            .build()
    });
    group.bench_function("mempool", |b| {
        b.iter_custom(|iters| {
            let pool = pools.next();
            timed(iters, || {
                let mut v = pool.get();
                v.push(black_box(1));
            })
        })
    });

    let pools = Placed::new(|| {
        mempool::Pool::builder()
            .create(new_vec)
            .reset(Vec::clear)
            .stats()
            .build()
    });
    group.bench_function("mempool+stats", |b| {
        b.iter_custom(|iters| {
            let pool = pools.next();
            timed(iters, || {
                let mut v = pool.get();
                v.push(black_box(1));
            })
        })
    });

    // A struct field's pool: hooks boxed (`BoxedPool`).
    let pools = Placed::new(|| -> mempool::BoxedPool<Vec<u8>> {
        mempool::Pool::builder()
            .create(new_vec)
            .reset(Vec::clear)
            .build_boxed()
    });
    group.bench_function("mempool-boxed", |b| {
        b.iter_custom(|iters| {
            let pool = pools.next();
            timed(iters, || {
                let mut v = pool.get();
                v.push(black_box(1));
            })
        })
    });

    let pools = Placed::new(|| mempool03::Pool::new(Box::new(|| RefCell::new(new_vec()))));
    group.bench_function("mempool-0.3.1", |b| {
        b.iter_custom(|iters| {
            let pool = pools.next();
            timed(iters, || {
                let mut v = pool.get().borrow_mut();
                v.push(black_box(1));
                v.clear();
            })
        })
    });

    let pools = Placed::new(|| regex_automata::util::pool::Pool::new(new_vec as fn() -> Vec<u8>));
    group.bench_function("regex-automata", |b| {
        b.iter_custom(|iters| {
            let pool = pools.next();
            timed(iters, || {
                let mut v = pool.get();
                v.push(black_box(1));
                v.clear();
            })
        })
    });

    group.bench_function("allocate", |b| {
        b.iter_custom(|iters| {
            timed(iters, || {
                let mut v = black_box(new_vec());
                v.push(black_box(1));
            })
        })
    });

    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2));
    targets = single_thread
}
criterion_main!(benches);
