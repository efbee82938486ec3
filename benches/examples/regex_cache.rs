//! A real client: regex scratch caches. One `regex_automata::meta::Regex` is
//! shared by N threads, each running many searches on a short haystack (the
//! shape of rust-lang/regex issue 934), and each search takes its
//! `meta::Cache` from a pool. Prints, for 1 to 16 threads, the wall time per
//! search of:
//!
//! - `internal`: `Regex::search`, which uses the regex's own pool;
//! - `floor`: one cache per thread, made once and passed by hand;
//! - `thread_local`: a `ThreadLocal<RefCell<Cache>>`;
//! - `mempool/<strategy>`: this crate, each spill strategy.
//!
//! Run with `cargo run --release -p mempool-benches --example regex_cache`.
//! Each cell is the median of five runs, each with a fresh regex and fresh
//! pools (so the first thread to search becomes the owner, as it would in a
//! program), its ratio to the floor's median, and the fastest and slowest of
//! the five.

use mempool::{spill, Pool, Spill};
use regex_automata::meta::{Cache, Regex};
use regex_automata::Input;
use std::cell::RefCell;
use std::io::Write;
use std::sync::Barrier;
use std::time::Instant;
use thread_local::ThreadLocal;

const PATTERN: &str = r"[a-z]+@[a-z]+\.(com|org)";
const HAYSTACK: &str = "reach us at help@example.org any day";
const SEARCHES: usize = 2_000_000;
const RUNS: usize = 5;
const THREADS: [usize; 5] = [1, 2, 4, 8, 16];

/// Runs `SEARCHES` searches in all, split over `threads` threads. Each thread
/// first makes its searcher with `make` (the floor makes its cache there),
/// then all start together; returns the wall time per search from the start
/// to the last finish.
fn time_per_search<M, F>(threads: usize, make: M) -> f64
where
    M: Fn() -> F + Sync,
    F: FnMut() -> bool,
{
    let start = Barrier::new(threads + 1);
    let per_thread = SEARCHES / threads;
    let elapsed = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                let (start, make) = (&start, &make);
                s.spawn(move || {
                    let mut search = make();
                    start.wait();
                    let found = (0..per_thread).filter(|_| search()).count();
                    assert_eq!(found, per_thread, "every search must match");
                })
            })
            .collect();
        start.wait();
        let t = Instant::now();
        for h in handles {
            h.join().unwrap();
        }
        t.elapsed()
    });
    elapsed.as_secs_f64() * 1e9 / (per_thread * threads) as f64
}

/// `RUNS` runs of one cell: the fastest, the median and the slowest, so that
/// a reader can tell a difference from the noise of a small machine.
#[derive(Clone, Copy)]
struct Runs {
    min: f64,
    median: f64,
    max: f64,
}

/// `RUNS` runs of `run`, each of which builds fresh state.
fn median(run: impl Fn() -> f64) -> Runs {
    let mut times: Vec<f64> = (0..RUNS).map(|_| run()).collect();
    times.sort_by(f64::total_cmp);
    Runs {
        min: times[0],
        median: times[RUNS / 2],
        max: times[RUNS - 1],
    }
}

fn input() -> Input<'static> {
    Input::new(HAYSTACK)
}

fn floor(threads: usize) -> Runs {
    median(|| {
        let re = Regex::new(PATTERN).unwrap();
        time_per_search(threads, || {
            let mut cache = re.create_cache();
            let re = &re;
            move || re.search_with(&mut cache, &input()).is_some()
        })
    })
}

fn internal(threads: usize) -> Runs {
    median(|| {
        let re = Regex::new(PATTERN).unwrap();
        time_per_search(threads, || || re.search(&input()).is_some())
    })
}

fn thread_local(threads: usize) -> Runs {
    median(|| {
        let re = Regex::new(PATTERN).unwrap();
        let caches: ThreadLocal<RefCell<Cache>> = ThreadLocal::new();
        time_per_search(threads, || {
            || {
                let cache = caches.get_or(|| RefCell::new(re.create_cache()));
                re.search_with(&mut cache.borrow_mut(), &input()).is_some()
            }
        })
    })
}

fn mempool<S: Spill<Cache> + Sync>(threads: usize, make_spill: fn() -> S) -> Runs {
    median(|| {
        let re = Regex::new(PATTERN).unwrap();
        let pool = Pool::builder()
            .create(|| re.create_cache())
            .spill(make_spill())
            .build();
        time_per_search(threads, || {
            || re.search_with(&mut pool.get(), &input()).is_some()
        })
    })
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!(
        "{SEARCHES} searches of {PATTERN:?} in a {}-byte haystack, split over N threads; {cores} cores.",
        HAYSTACK.len()
    );
    println!(
        "ns per search (wall time / searches): the median of {RUNS} runs, (its ratio to `floor`'s \
         median), and the fastest and slowest run.\n"
    );

    type Column = (&'static str, fn(usize) -> Runs);
    let columns: [Column; 8] = [
        ("floor", floor),
        ("internal", internal),
        ("thread_local", thread_local),
        ("mempool/PerThread", |t| {
            mempool(t, spill::PerThread::default)
        }),
        ("mempool/Mutex", |t| mempool(t, spill::Mutex::default)),
        ("mempool/LockFree", |t| mempool(t, spill::LockFree::default)),
        ("mempool/Bounded", |t| {
            mempool(t, || spill::Bounded::new(16))
        }),
        ("mempool/None", |t| mempool(t, || spill::None)),
    ];
    print!("| {:<17} |", "threads");
    for t in THREADS {
        print!(" {t:>24} |");
    }
    println!();
    println!("|---{}", "|---".repeat(THREADS.len()) + "|");
    let floors: Vec<Runs> = THREADS.iter().map(|&t| floor(t)).collect();
    for (name, column) in columns {
        print!("| {name:<17} |");
        for (&t, floor) in THREADS.iter().zip(&floors) {
            let r = if name == "floor" { *floor } else { column(t) };
            let cell = format!(
                "{:.1} ({:.2}×) {:.0}–{:.0}",
                r.median,
                r.median / floor.median,
                r.min,
                r.max
            );
            print!(" {cell:>24} |");
            std::io::stdout().flush().ok();
        }
        println!();
    }
}
