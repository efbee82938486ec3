//! This crate against what a user would pick instead, side by side in one
//! run: one thread, one thread nesting two gets, and 2, 4 and 8 threads
//! sharing one pool.
//!
//! The value is a `Vec<u8>` of capacity 256; one cycle is get, push a byte,
//! return (reset with `Vec::clear` where the peer has a reset hook, cleared by
//! hand where it does not). With threads, the time reported is wall time per
//! cycle across all threads (elapsed / total cycles), so lower is better, and
//! perfect scaling on 2 cores halves the single-thread time.
//!
//! Threads are a crew that lives for the whole benchmark of one pool, like a
//! server's worker pool, so with a strategy that has an owner slot one of them
//! stays the pool's owner from sample to sample.
//!
//! `cargo bench -p mempool-benches --bench peers` runs everything in about 3
//! minutes; a filter runs one group, e.g.
//! `cargo bench -p mempool-benches --bench peers -- threads/4`.

// The by-hand peers hold `Box<Vec<u8>>` on purpose: pools box their values
// (so a move in or out is a pointer copy whatever the type), and the peer
// named in the brief is `parking_lot::Mutex<Vec<Box<_>>>`.
#![allow(clippy::box_collection)]

use criterion::measurement::WallTime;
use criterion::{black_box, criterion_group, criterion_main, BenchmarkGroup, Criterion};
use crossbeam_queue::{ArrayQueue, SegQueue};
use mempool::spill;
use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Barrier;
use std::time::{Duration, Instant};

fn new_vec() -> Vec<u8> {
    Vec::with_capacity(256)
}

/// A pool under test. Static dispatch, so each peer's cycle is inlined into a
/// timing loop of its own.
trait Contender: Sync {
    /// Get, push a byte, return.
    fn cycle(&self);
    /// Hold two values at once, as a caller that nests gets. False if the
    /// peer hands out one value per thread and cannot.
    fn nested(&self) -> bool;
}

impl<C, R, S> Contender for mempool::Pool<Vec<u8>, C, R, S>
where
    C: Fn() -> Vec<u8> + Sync,
    R: mempool::Reset<Vec<u8>> + Sync,
    S: mempool::Spill<Vec<u8>> + Sync,
{
    #[inline(always)]
    fn cycle(&self) {
        self.get().push(black_box(1));
    }

    #[inline(always)]
    fn nested(&self) -> bool {
        let mut a = self.get();
        let mut b = self.get();
        a.push(black_box(1));
        b.push(black_box(2));
        true
    }
}

/// `Contender` for a peer, from an expression that gets a guard from `$p`;
/// `clear` for peers without a reset hook.
macro_rules! peer {
    ($ty:ty, |$p:ident| $get:expr, clear: $clear:literal, nests: $nests:literal) => {
        impl Contender for $ty {
            #[inline(always)]
            fn cycle(&self) {
                let $p = self;
                let mut v = $get;
                v.push(black_box(1));
                if $clear {
                    v.clear();
                }
            }

            #[inline(always)]
            #[allow(unreachable_code)]
            fn nested(&self) -> bool {
                if !$nests {
                    return false;
                }
                let $p = self;
                let mut a = $get;
                let mut b = $get;
                a.push(black_box(1));
                b.push(black_box(2));
                if $clear {
                    a.clear();
                    b.clear();
                }
                true
            }
        }
    };
}

peer!(mempool03::Pool<RefCell<Vec<u8>>>, |p| p.get().borrow_mut(), clear: true, nests: false);
peer!(regex_automata::util::pool::Pool<Vec<u8>, fn() -> Vec<u8>>, |p| p.get(), clear: true, nests: true);
peer!(thread_local::ThreadLocal<RefCell<Vec<u8>>>, |p| p.get_or(|| RefCell::new(new_vec())).borrow_mut(), clear: true, nests: false);
peer!(object_pool::Pool<Vec<u8>>, |p| p.pull(new_vec), clear: true, nests: true);
peer!(lockfree_object_pool::LinearObjectPool<Vec<u8>>, |p| p.pull(), clear: false, nests: true);
peer!(lockfree_object_pool::SpinLockObjectPool<Vec<u8>>, |p| p.pull(), clear: false, nests: true);
peer!(lockfree_object_pool::MutexObjectPool<Vec<u8>>, |p| p.pull(), clear: false, nests: true);

/// The pools a user writes by hand around a shared store of boxed values.
trait Store: Sync {
    fn take(&self) -> Option<Box<Vec<u8>>>;
    fn give(&self, value: Box<Vec<u8>>);
}

impl Store for parking_lot::Mutex<Vec<Box<Vec<u8>>>> {
    #[inline(always)]
    fn take(&self) -> Option<Box<Vec<u8>>> {
        self.lock().pop()
    }
    #[inline(always)]
    fn give(&self, value: Box<Vec<u8>>) {
        self.lock().push(value);
    }
}

impl Store for ArrayQueue<Box<Vec<u8>>> {
    #[inline(always)]
    fn take(&self) -> Option<Box<Vec<u8>>> {
        self.pop()
    }
    #[inline(always)]
    fn give(&self, value: Box<Vec<u8>>) {
        let _ = self.push(value); // full: drop it
    }
}

impl Store for SegQueue<Box<Vec<u8>>> {
    #[inline(always)]
    fn take(&self) -> Option<Box<Vec<u8>>> {
        self.pop()
    }
    #[inline(always)]
    fn give(&self, value: Box<Vec<u8>>) {
        self.push(value);
    }
}

struct ByHand<S>(S);

impl<S: Store> ByHand<S> {
    #[inline(always)]
    fn lend(&self) -> Box<Vec<u8>> {
        self.0.take().unwrap_or_else(|| Box::new(new_vec()))
    }

    #[inline(always)]
    fn give_back(&self, mut value: Box<Vec<u8>>) {
        value.clear();
        self.0.give(value);
    }
}

impl<S: Store> Contender for ByHand<S> {
    #[inline(always)]
    fn cycle(&self) {
        let mut v = self.lend();
        v.push(black_box(1));
        self.give_back(v);
    }

    #[inline(always)]
    fn nested(&self) -> bool {
        let mut a = self.lend();
        let mut b = self.lend();
        a.push(black_box(1));
        b.push(black_box(2));
        self.give_back(b);
        self.give_back(a);
        true
    }
}

/// No pool: allocate every time.
struct Allocate;

impl Contender for Allocate {
    #[inline(always)]
    fn cycle(&self) {
        let mut v = black_box(new_vec());
        v.push(black_box(1));
    }

    #[inline(always)]
    fn nested(&self) -> bool {
        let mut a = black_box(new_vec());
        let mut b = black_box(new_vec());
        a.push(black_box(1));
        b.push(black_box(2));
        true
    }
}

/// Runs `f` `iters` times; generic so each contender gets its own loop.
#[inline(never)]
fn repeat<P: Contender>(pool: &P, iters: u64, nested: bool) {
    if nested {
        for _ in 0..iters {
            pool.nested();
        }
    } else {
        for _ in 0..iters {
            pool.cycle();
        }
    }
}

/// Threads that run cycles on one pool when told, for as long as the crew
/// lives: one of them stays the pool's owner between samples.
struct Crew {
    threads: u64,
    per_thread: AtomicU64,
    stop: AtomicBool,
    start: Barrier,
    done: Barrier,
}

impl Crew {
    fn new(threads: usize) -> Crew {
        Crew {
            threads: threads as u64,
            per_thread: AtomicU64::new(0),
            stop: AtomicBool::new(false),
            start: Barrier::new(threads + 1),
            done: Barrier::new(threads + 1),
        }
    }

    fn work<P: Contender>(&self, pool: &P) {
        loop {
            self.start.wait();
            if self.stop.load(Ordering::Acquire) {
                return;
            }
            repeat(pool, self.per_thread.load(Ordering::Acquire), false);
            self.done.wait();
        }
    }

    /// `iters` cycles in all, split over the crew; wall time from the start
    /// signal until the last thread is done.
    fn run(&self, iters: u64) -> Duration {
        let per = iters.div_ceil(self.threads).max(1);
        self.per_thread.store(per, Ordering::Release);
        self.start.wait();
        let start = Instant::now();
        self.done.wait();
        let elapsed = start.elapsed();
        // Report for exactly `iters` cycles.
        elapsed.mul_f64(iters as f64 / (per * self.threads) as f64)
    }

    fn dismiss(&self) {
        self.stop.store(true, Ordering::Release);
        self.start.wait();
    }
}

/// Which group a contender is measured in.
#[derive(Clone, Copy)]
enum Shape {
    Single,
    Nested,
    Threads(usize),
    /// `n` threads spawned fresh for every sample, on a pool whose first
    /// user (its owner) has exited: what a server that spawns a thread per
    /// task sees, and the case the owner slot alone cannot serve.
    Fresh(usize),
}

/// `iters` cycles in all over `n` newly spawned threads; wall time from a
/// start signal (after every thread is up) until the last is done.
fn fresh_threads<P: Contender>(pool: &P, n: usize, iters: u64) -> Duration {
    let per = iters.div_ceil(n as u64).max(1);
    let start = Barrier::new(n + 1);
    let done = Barrier::new(n + 1);
    std::thread::scope(|s| {
        for _ in 0..n {
            s.spawn(|| {
                start.wait();
                repeat(pool, per, false);
                done.wait();
            });
        }
        start.wait();
        let t = Instant::now();
        done.wait();
        t.elapsed().mul_f64(iters as f64 / (per * n as u64) as f64)
    })
}

fn measure<P: Contender>(
    group: &mut BenchmarkGroup<'_, WallTime>,
    name: &str,
    shape: Shape,
    pool: P,
) {
    match shape {
        Shape::Single | Shape::Nested => {
            let nested = matches!(shape, Shape::Nested);
            if nested && !pool.nested() {
                return; // one value per thread: cannot nest
            }
            group.bench_function(name, |b| {
                b.iter_custom(|iters| {
                    let start = Instant::now();
                    repeat(&pool, iters, nested);
                    start.elapsed()
                })
            });
        }
        Shape::Fresh(n) => {
            // The first user becomes the owner, and leaves.
            std::thread::scope(|s| {
                s.spawn(|| pool.cycle());
            });
            group.bench_function(name, |b| {
                b.iter_custom(|iters| fresh_threads(&pool, n, iters))
            });
        }
        Shape::Threads(n) => {
            let crew = Crew::new(n);
            std::thread::scope(|s| {
                for _ in 0..n {
                    s.spawn(|| crew.work(&pool));
                }
                group.bench_function(name, |b| b.iter_custom(|iters| crew.run(iters)));
                crew.dismiss();
            });
        }
    }
}

fn ours<S: mempool::Spill<Vec<u8>> + Sync>(spill: S) -> impl Contender {
    mempool::Pool::builder()
        .create(new_vec)
        .reset(Vec::clear)
        .spill(spill)
        .build()
}

/// The fresh-thread groups compare the default pool with the peers built for
/// per-thread values.
fn per_thread_peers(group: &mut BenchmarkGroup<'_, WallTime>, shape: Shape) {
    measure(
        group,
        "mempool/PerThread",
        shape,
        ours(spill::PerThread::default()),
    );
    measure(
        group,
        "thread_local",
        shape,
        thread_local::ThreadLocal::<RefCell<Vec<u8>>>::new(),
    );
    measure(
        group,
        "regex-automata",
        shape,
        regex_automata::util::pool::Pool::new(new_vec as fn() -> Vec<u8>),
    );
}

fn all(group: &mut BenchmarkGroup<'_, WallTime>, shape: Shape) {
    measure(group, "mempool/Mutex", shape, ours(spill::Mutex::default()));
    measure(
        group,
        "mempool/LockFree",
        shape,
        ours(spill::LockFree::default()),
    );
    measure(
        group,
        "mempool/Bounded",
        shape,
        ours(spill::Bounded::new(64)),
    );
    measure(group, "mempool/None", shape, ours(spill::None));
    measure(
        group,
        "mempool/PerThread",
        shape,
        ours(spill::PerThread::default()),
    );
    measure(
        group,
        "mempool-0.3.1",
        shape,
        mempool03::Pool::new(Box::new(|| RefCell::new(new_vec()))),
    );
    measure(
        group,
        "regex-automata",
        shape,
        regex_automata::util::pool::Pool::new(new_vec as fn() -> Vec<u8>),
    );
    measure(
        group,
        "thread_local",
        shape,
        thread_local::ThreadLocal::<RefCell<Vec<u8>>>::new(),
    );
    measure(
        group,
        "object-pool",
        shape,
        object_pool::Pool::new(0, new_vec),
    );
    measure(
        group,
        "lockfree-object-pool/linear",
        shape,
        lockfree_object_pool::LinearObjectPool::new(new_vec, |v: &mut Vec<u8>| v.clear()),
    );
    measure(
        group,
        "lockfree-object-pool/spinlock",
        shape,
        lockfree_object_pool::SpinLockObjectPool::new(new_vec, |v: &mut Vec<u8>| v.clear()),
    );
    measure(
        group,
        "lockfree-object-pool/mutex",
        shape,
        lockfree_object_pool::MutexObjectPool::new(new_vec, |v: &mut Vec<u8>| v.clear()),
    );
    measure(
        group,
        "parking_lot-mutex-vec",
        shape,
        ByHand(parking_lot::Mutex::new(Vec::new())),
    );
    measure(
        group,
        "crossbeam-arrayqueue",
        shape,
        ByHand(ArrayQueue::new(64)),
    );
    measure(group, "crossbeam-segqueue", shape, ByHand(SegQueue::new()));
    measure(group, "allocate", shape, Allocate);
}

fn peers(c: &mut Criterion) {
    let shapes = [
        ("single", Shape::Single),
        ("nested", Shape::Nested),
        ("threads/2", Shape::Threads(2)),
        ("threads/4", Shape::Threads(4)),
        ("threads/8", Shape::Threads(8)),
    ];
    for (name, shape) in shapes {
        let mut group = c.benchmark_group(name);
        group.sample_size(20);
        all(&mut group, shape);
        group.finish();
    }
    for n in [1, 2, 4, 8] {
        let mut group = c.benchmark_group(format!("fresh/{n}"));
        group.sample_size(20);
        per_thread_peers(&mut group, Shape::Fresh(n));
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .warm_up_time(Duration::from_millis(300))
        .measurement_time(Duration::from_millis(1200));
    targets = peers
}
criterion_main!(benches);
