//! The heap a pool holds for a large value, against regex-automata's pool
//! doing the same, counted by a counting global allocator: the value is the
//! size of regex-automata's `meta::Cache` (1,400 bytes), the value a regex
//! engine would pool.
//!
//! Both pools are boxed (regex-automata's always is), so each side counts
//! its pool's own struct as well as what it allocates. One test in this
//! binary, so that no other test allocates while it counts.
//!
//! ```sh
//! cargo test -p mempool-benches --test footprint -- --nocapture
//! ```

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicIsize, Ordering};
use std::sync::{Arc, Barrier};

/// Bytes allocated and not yet freed, as requested (not as the allocator
/// rounds them).
static LIVE: AtomicIsize = AtomicIsize::new(0);

struct Counting;

// SAFETY: forwards every call to `System` unchanged; it only counts sizes.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE.fetch_add(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: the caller's promises about `layout`, passed on.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE.fetch_sub(layout.size() as isize, Ordering::Relaxed);
        // SAFETY: as above.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        LIVE.fetch_add(
            new_size as isize - layout.size() as isize,
            Ordering::Relaxed,
        );
        // SAFETY: as above.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static ALLOCATOR: Counting = Counting;

fn live() -> isize {
    LIVE.load(Ordering::Relaxed)
}

/// A value of the size of regex-automata's `meta::Cache`.
struct Cache([u8; 1400]);

fn cache() -> Cache {
    Cache([0; 1400])
}

/// What a pool does in the scenarios: get a value and give it back.
trait Scenario: Send + Sync {
    /// One get and return.
    fn cycle(&self);
    /// Holds two values at once until `barrier` is passed twice.
    fn hold_two(&self, barrier: &Barrier);
}

impl Scenario for mempool::Pool<Cache, fn() -> Cache> {
    fn cycle(&self) {
        std::hint::black_box(&self.get().0[0]);
    }
    fn hold_two(&self, barrier: &Barrier) {
        let (a, b) = (self.get(), self.get());
        barrier.wait();
        barrier.wait();
        drop((a, b));
    }
}

impl Scenario for regex_automata::util::pool::Pool<Cache, fn() -> Cache> {
    fn cycle(&self) {
        std::hint::black_box(&self.get().0[0]);
    }
    fn hold_two(&self, barrier: &Barrier) {
        let (a, b) = (self.get(), self.get());
        barrier.wait();
        barrier.wait();
        drop((a, b));
    }
}

/// The heap held after each scenario, counted from just before the pool was
/// made: `[one get and return on each of two threads, then 4 threads holding
/// two values each]`.
fn held<P: Scenario + 'static>(make: impl FnOnce() -> P) -> [isize; 2] {
    let before = live();
    let pool = Arc::new(Box::new(make()));
    pool.cycle();
    let p = Arc::clone(&pool);
    std::thread::spawn(move || p.cycle()).join().unwrap();
    let two_threads = live() - before;

    let barrier = Arc::new(Barrier::new(5));
    let holders: Vec<_> = (0..4)
        .map(|_| {
            let (p, b) = (Arc::clone(&pool), Arc::clone(&barrier));
            std::thread::spawn(move || p.hold_two(&b))
        })
        .collect();
    barrier.wait(); // all eight values are out
    barrier.wait();
    for h in holders {
        h.join().unwrap();
    }
    let four_threads = live() - before;
    drop(pool);
    [two_threads, four_threads]
}

#[test]
fn a_large_value_costs_at_most_regex_automatas_heap_plus_a_tenth() {
    // Warm up what the first thread spawns and thread-locals allocate for
    // good, so that neither side is charged for it.
    std::thread::spawn(|| ()).join().unwrap();
    let ours = held(|| mempool::Pool::new(cache as fn() -> Cache));
    let theirs = held(|| regex_automata::util::pool::Pool::new(cache as fn() -> Cache));
    let scenarios = [
        "a get and return on each of two threads",
        "4 threads holding two values each",
    ];
    let mut over = Vec::new();
    for (i, scenario) in scenarios.iter().enumerate() {
        let ratio = ours[i] as f64 / theirs[i] as f64;
        println!(
            "{scenario}: mempool {} bytes, regex-automata {} bytes ({ratio:.2}x)",
            ours[i], theirs[i]
        );
        if ratio > 1.1 {
            over.push(*scenario);
        }
    }
    assert!(
        over.is_empty(),
        "more than 1.1x regex-automata's heap after: {over:?}"
    );
}
