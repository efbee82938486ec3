//! One cycle (get a `Vec<u8>` made `with_capacity(256)`, push a byte, return
//! it) written the ways users write it, for every contender, in one binary:
//! the code shapes of `benches/README.md`'s table.
//!
//! A speed figure is true only for the code shape it was measured in: a pool
//! whose get and return inline into a loop written out by hand may not
//! inline into a closure, a handler or a `static`'s user. So each contender's
//! cycle is written once, as a user would write it, and expanded into each
//! shape by the `contender!` macro below:
//!
//! | shape | what the cycle sits in |
//! |---|---|
//! | `loop` | a loop written out in the function that made the pool |
//! | `closure` | a closure, called in a loop by a generic function (criterion's `b.iter` shape) |
//! | `closure2` | the same with a second call site (a warm-up call): the closure inlines only if it is small |
//! | `handler` | a function that is never inlined (`#[inline(never)]`), called in a loop |
//! | `static` | such a handler, on a pool in a `static` of a nameable type (function-pointer hooks) |
//! | `boxed` | such a handler, on a pool with boxed hooks (`BoxedPool`; regex-automata's pool with a boxed `create`) |
//! | `arc` | a loop written out in a spawned thread's closure, on a pool behind an `Arc` |
//!
//! and in two modes: `first`, where the thread that runs the cycles is the
//! first to use the pool, and `later`, where another thread used it first
//! and exited, and the cycles run on a new thread.
//!
//! The binary uses mimalloc as its global allocator, so that the `mimalloc`
//! contender (no pool: allocate each time) is the allocator a user would
//! pick instead of pooling a plain buffer. The pools only allocate on a
//! miss, so it does not change their hit path.
//!
//! ```sh
//! cargo build --release -p mempool-benches --example shapes
//! target/release/examples/shapes count <contender> <shape> <mode> <cycles>
//! target/release/examples/shapes time [rounds] [cycles per batch]
//! target/release/examples/shapes threads [rounds] [cycles per thread]
//! python3 benches/instructions.py          # the instruction table (callgrind)
//! ```
//!
//! `count` runs one contender in one shape and mode, for `benches/instructions.py`
//! to count under callgrind (it runs each twice, with two cycle counts, and
//! divides the difference, so the program around the loop drops out). `time`
//! interleaves: each round times one batch of every contender in every shape
//! and mode in turn, and prints the median batch with the spread of the
//! batches. `threads` does the same with 1, 2, 4 and 8 threads on one pool,
//! fresh threads and crews.

use std::cell::RefCell;
use std::hint::black_box;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::{Arc, Barrier, LazyLock};
use std::time::Instant;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn buffer() -> Vec<u8> {
    Vec::with_capacity(256)
}

/// A handler: never inlined into its caller, as a request handler in another
/// module, behind a trait or simply too large would not be. Made from a
/// non-capturing closure, so that `P` is inferred; called through a pointer
/// that the optimiser cannot see through, so it cannot be inlined.
fn handler<P>(_: &P, f: fn(&P)) -> fn(&P) {
    black_box(f)
}

/// Criterion's shape: a generic function that calls the routine it is given
/// in a loop (`Bencher::iter`). Whether the routine inlines into it is the
/// optimiser's call; with one call site, LLVM inlines nearly anything.
#[inline(never)]
fn iterate<F: FnMut()>(cycles: u64, mut routine: F) {
    for _ in 0..cycles {
        routine();
    }
}

/// The same, with a warm-up call before the loop: two call sites, so the
/// routine inlines only if it is small (LLVM's bonus for a function's last
/// call site does not apply). Where one contender's cycle inlines and
/// another's does not, this shape shows it.
#[inline(never)]
fn iterate_twice<F: FnMut()>(cycles: u64, mut routine: F) {
    routine();
    for _ in 1..cycles {
        routine();
    }
}

/// The shapes, by name, in the order tables print them.
const SHAPES: [&str; 7] = [
    "loop", "closure", "closure2", "handler", "static", "boxed", "arc",
];
/// The modes.
const MODES: [&str; 2] = ["first", "later"];

/// Runs `work` as a thread in `mode` would: on this thread for `first`
/// (after `first_use`, which must use the pool), or on a new thread after
/// another thread ran `first_use` and exited.
fn in_mode<R: Send>(mode: &str, first_use: impl Fn() + Sync, work: impl FnOnce() -> R + Send) -> R {
    first_use();
    match mode {
        "first" => work(),
        "later" => {
            std::thread::scope(|s| {
                s.spawn(&first_use).join().unwrap();
            });
            std::thread::scope(|s| s.spawn(work).join().unwrap())
        }
        _ => panic!("unknown mode {mode:?}: first or later"),
    }
}

/// One contender: how to make its pool (for the plain shapes, the `static`
/// and `boxed` ones) and its cycle, written once as a user would, with `$p`
/// standing for a reference to the pool. Expands into a module with one
/// function per shape, each taking the mode and the number of cycles and
/// returning the nanoseconds per cycle.
macro_rules! contender {
    (@shared no, $make:expr, |$p:ident| $cycle:block) => {
        pub fn arc(_: &str, _: u64) -> f64 {
            panic!("no shared pool")
        }
    };
    (@shared yes, $make:expr, |$p:ident| $cycle:block) => {
        /// The `arc` shape: a loop in a spawned thread's closure.
        pub fn arc(mode: &str, cycles: u64) -> f64 {
            let pool = Arc::new($make);
            if mode == "later" {
                let pool = Arc::clone(&pool);
                std::thread::spawn(move || {
                    let $p = &*pool;
                    $cycle
                })
                .join()
                .unwrap();
            }
            std::thread::spawn(move || {
                let start = Instant::now();
                for _ in 0..cycles {
                    let $p = &*pool;
                    $cycle
                }
                per_cycle(start, cycles)
            })
            .join()
            .unwrap()
        }

        /// A pool behind an `Arc`, for `threads`.
        pub fn shared() -> Cycle {
            let pool = Arc::new($make);
            Arc::new(move || {
                let $p = &*pool;
                $cycle
            })
        }
    };
    (
        $name:ident,
        make: $make:expr,
        static: $sty:ty = $smake:expr,
        boxed: $boxed:expr,
        shared: $shared:tt,
        |$p:ident| $cycle:block
    ) => {
        mod $name {
            #[allow(unused_imports)]
            use super::*;

            /// A `static` of a nameable type, made on first use.
            static POOL: LazyLock<$sty> = LazyLock::new(|| $smake);

            pub fn run(shape: &str, mode: &str, cycles: u64) -> f64 {
                match shape {
                    "loop" => {
                        let pool = $make;
                        in_mode(mode, || { let $p = &pool; $cycle }, || {
                            let start = Instant::now();
                            for _ in 0..cycles {
                                let $p = &pool;
                                $cycle
                            }
                            per_cycle(start, cycles)
                        })
                    }
                    "closure" => {
                        let pool = $make;
                        in_mode(mode, || { let $p = &pool; $cycle }, || {
                            let start = Instant::now();
                            iterate(cycles, || {
                                let $p = &pool;
                                $cycle
                            });
                            per_cycle(start, cycles)
                        })
                    }
                    "closure2" => {
                        let pool = $make;
                        in_mode(mode, || { let $p = &pool; $cycle }, || {
                            let start = Instant::now();
                            iterate_twice(cycles, || {
                                let $p = &pool;
                                $cycle
                            });
                            per_cycle(start, cycles)
                        })
                    }
                    "handler" => {
                        let pool = $make;
                        let h = handler(&pool, |$p| $cycle);
                        in_mode(mode, || h(&pool), || {
                            let start = Instant::now();
                            for _ in 0..cycles {
                                h(&pool);
                            }
                            per_cycle(start, cycles)
                        })
                    }
                    "static" => {
                        #[inline(never)]
                        fn on_static() {
                            let $p = &*POOL;
                            $cycle
                        }
                        in_mode(mode, on_static, || {
                            let start = Instant::now();
                            for _ in 0..cycles {
                                on_static();
                            }
                            per_cycle(start, cycles)
                        })
                    }
                    "boxed" => {
                        let pool = $boxed;
                        let h = handler(&pool, |$p| $cycle);
                        in_mode(mode, || h(&pool), || {
                            let start = Instant::now();
                            for _ in 0..cycles {
                                h(&pool);
                            }
                            per_cycle(start, cycles)
                        })
                    }
                    "arc" => arc(mode, cycles),
                    _ => panic!("unknown shape {shape:?}: one of {SHAPES:?}"),
                }
            }

            contender!(@shared $shared, $make, |$p| $cycle);
        }
    };
}

/// A cycle on a shared pool, for `threads`.
type Cycle = Arc<dyn Fn() + Send + Sync>;

fn per_cycle(start: Instant, cycles: u64) -> f64 {
    start.elapsed().as_secs_f64() * 1e9 / cycles.max(1) as f64
}

type FnPool = mempool::Pool<Vec<u8>, fn() -> Vec<u8>, fn(&mut Vec<u8>)>;

contender!(
    mempool_shapes,
    make: mempool::Pool::builder().create(buffer).reset(Vec::clear).build(),
    static: FnPool = mempool::Pool::builder()
        .create(buffer as fn() -> Vec<u8>)
        .reset(Vec::clear as fn(&mut Vec<u8>))
        .build(),
    boxed: mempool::Pool::builder().create(buffer).reset(Vec::clear).build_boxed(),
    shared: yes,
    |p| {
        p.get().push(black_box(1));
    }
);

type RegexBoxedCreate = Box<dyn Fn() -> Vec<u8> + Send + Sync + UnwindSafe + RefUnwindSafe>;

contender!(
    regex_automata_shapes,
    make: regex_automata::util::pool::Pool::new(buffer),
    static: regex_automata::util::pool::Pool<Vec<u8>, fn() -> Vec<u8>> =
        regex_automata::util::pool::Pool::new(buffer as fn() -> Vec<u8>),
    boxed: regex_automata::util::pool::Pool::new(Box::new(buffer) as RegexBoxedCreate),
    shared: yes,
    |p| {
        let mut v = p.get();
        v.push(black_box(1));
        v.clear();
    }
);

contender!(
    mempool_0_3_1_shapes,
    make: mempool03::Pool::new(Box::new(|| RefCell::new(buffer()))),
    static: mempool03::Pool<RefCell<Vec<u8>>> = mempool03::Pool::new(Box::new(|| RefCell::new(buffer()))),
    boxed: mempool03::Pool::new(Box::new(|| RefCell::new(buffer()))),
    shared: yes,
    |p| {
        let mut v = p.get().borrow_mut();
        v.push(black_box(1));
        v.clear();
    }
);

contender!(
    thread_local_shapes,
    make: thread_local::ThreadLocal::<RefCell<Vec<u8>>>::new(),
    static: thread_local::ThreadLocal<RefCell<Vec<u8>>> = thread_local::ThreadLocal::new(),
    boxed: thread_local::ThreadLocal::<RefCell<Vec<u8>>>::new(),
    shared: yes,
    |p| {
        let mut v = p.get_or(|| RefCell::new(buffer())).borrow_mut();
        v.push(black_box(1));
        v.clear();
    }
);

type Padded = crossbeam_utils::CachePadded<RefCell<Vec<u8>>>;

// `thread_local` with each thread's entry on cache lines of its own: its
// entries are not padded, so threads with neighbouring ids share a line
// unless the user pads the value.
contender!(
    thread_local_padded_shapes,
    make: thread_local::ThreadLocal::<Padded>::new(),
    static: thread_local::ThreadLocal<Padded> = thread_local::ThreadLocal::new(),
    boxed: thread_local::ThreadLocal::<Padded>::new(),
    shared: yes,
    |p| {
        let mut v = p.get_or(|| Padded::new(RefCell::new(buffer()))).borrow_mut();
        v.push(black_box(1));
        v.clear();
    }
);

// The floor: the value at hand, no pool at all.
contender!(
    at_hand_shapes,
    make: AtHand::default(),
    static: AtHand = AtHand::default(),
    boxed: AtHand::default(),
    shared: no,
    |p| {
        let v = p.value();
        v.push(black_box(1));
        v.clear();
    }
);

/// A buffer at hand: what a caller that owns its buffer (a `&mut Vec<u8>`
/// passed down) does, the floor under every pool. `Sync` only so that the
/// `later` mode can make it on one thread and use it on the next, one after
/// the other; it has no `static` or `arc` shape.
#[derive(Default)]
pub struct AtHand(std::cell::UnsafeCell<Vec<u8>>);

// SAFETY: `value` hands out a `&mut` to the buffer, so two threads must never
// call it at once: `in_mode` (the only user here) runs its two closures one
// after the other, the second after joining the thread of the first, and
// `at_hand` has no shape that shares it (`applies`).
unsafe impl Sync for AtHand {}

impl AtHand {
    #[inline(always)]
    #[allow(clippy::mut_from_ref)]
    fn value(&self) -> &mut Vec<u8> {
        // SAFETY: one caller at a time (see the `Sync` impl), and the
        // reference does not outlive one cycle.
        unsafe { &mut *self.0.get() }
    }
}

// No pool: a new buffer each time, from mimalloc.
contender!(
    mimalloc_shapes,
    make: (),
    static: () = (),
    boxed: (),
    shared: yes,
    |p| {
        let _ = p;
        let mut v = buffer();
        v.push(black_box(1));
        drop(black_box(v));
    }
);

/// Every contender, by name.
const CONTENDERS: [&str; 7] = [
    "mempool",
    "mempool-0.3.1",
    "thread_local",
    "thread_local-padded",
    "regex-automata",
    "at-hand",
    "mimalloc",
];

/// Whether a contender has a number in a shape (`at-hand` has no `static`,
/// `arc` or threads: its value is not shared).
fn applies(contender: &str, shape: &str) -> bool {
    !(contender == "at-hand" && matches!(shape, "static" | "boxed" | "arc" | "threads"))
}

fn run(contender: &str, shape: &str, mode: &str, cycles: u64) -> f64 {
    match contender {
        "mempool" => mempool_shapes::run(shape, mode, cycles),
        "mempool-0.3.1" => mempool_0_3_1_shapes::run(shape, mode, cycles),
        "thread_local" => thread_local_shapes::run(shape, mode, cycles),
        "thread_local-padded" => thread_local_padded_shapes::run(shape, mode, cycles),
        "regex-automata" => regex_automata_shapes::run(shape, mode, cycles),
        "at-hand" => at_hand_shapes::run(shape, mode, cycles),
        "mimalloc" => mimalloc_shapes::run(shape, mode, cycles),
        _ => panic!("unknown contender {contender:?}: one of {CONTENDERS:?}"),
    }
}

fn shared(contender: &str) -> Cycle {
    match contender {
        "mempool" => mempool_shapes::shared(),
        "mempool-0.3.1" => mempool_0_3_1_shapes::shared(),
        "thread_local" => thread_local_shapes::shared(),
        "thread_local-padded" => thread_local_padded_shapes::shared(),
        "regex-automata" => regex_automata_shapes::shared(),
        "mimalloc" => mimalloc_shapes::shared(),
        _ => panic!("no shared pool for {contender:?}"),
    }
}

/// Median and the spread of the batches (lowest and highest), in ns.
fn summary(times: &mut [f64]) -> String {
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    format!(
        "{median:.2} ({:.2}–{:.2})",
        times[0],
        times[times.len() - 1]
    )
}

fn time(rounds: usize, cycles: u64) {
    let cases: Vec<(&str, &str, &str)> = CONTENDERS
        .iter()
        .flat_map(|&c| SHAPES.iter().map(move |&s| (c, s)))
        .filter(|&(c, s)| applies(c, s))
        .flat_map(|(c, s)| MODES.iter().map(move |&m| (c, s, m)))
        .collect();
    let mut times = vec![Vec::new(); cases.len()];
    for _ in 0..rounds {
        for (i, &(c, s, m)) in cases.iter().enumerate() {
            times[i].push(run(c, s, m, cycles));
        }
    }
    println!("ns per cycle: median batch of {rounds} (fastest–slowest), {cycles} cycles a batch\n");
    print!("| contender |");
    for s in SHAPES {
        for m in MODES {
            print!(" {s}, {m} |");
        }
    }
    println!();
    println!("|---|{}", "---|".repeat(SHAPES.len() * MODES.len()));
    for c in CONTENDERS {
        print!("| {c} |");
        for s in SHAPES {
            for m in MODES {
                match cases.iter().position(|&k| k == (c, s, m)) {
                    Some(i) => print!(" {} |", summary(&mut times[i])),
                    None => print!(" |"),
                }
            }
        }
        println!();
    }
}

/// `threads` threads on one shared pool, `cycles` each: fresh threads
/// spawned for the batch, or a crew that lives across batches. Returns the
/// wall time per cycle across all threads.
fn threads_batch(cycle: &Cycle, threads: usize, cycles: u64, crew: Option<&Crew>) -> f64 {
    match crew {
        None => {
            let start = Instant::now();
            std::thread::scope(|s| {
                for _ in 0..threads {
                    s.spawn(|| {
                        for _ in 0..cycles {
                            cycle();
                        }
                    });
                }
            });
            per_cycle(start, cycles * threads as u64)
        }
        Some(crew) => crew.run(cycle, cycles),
    }
}

/// The batch a crew runs next: the cycle and how many of it per thread.
type Job = Arc<std::sync::Mutex<Option<(Cycle, u64)>>>;

/// Long-lived threads that run a batch when told, like a server's workers.
struct Crew {
    go: Arc<Barrier>,
    done: Arc<Barrier>,
    job: Job,
    threads: usize,
    handles: Vec<std::thread::JoinHandle<()>>,
}

impl Crew {
    fn new(threads: usize) -> Crew {
        let go = Arc::new(Barrier::new(threads + 1));
        let done = Arc::new(Barrier::new(threads + 1));
        let job: Job = Arc::new(std::sync::Mutex::new(None));
        let handles = (0..threads)
            .map(|_| {
                let (go, done, job) = (Arc::clone(&go), Arc::clone(&done), Arc::clone(&job));
                std::thread::spawn(move || loop {
                    go.wait();
                    let Some((cycle, cycles)) = job.lock().unwrap().clone() else {
                        return;
                    };
                    for _ in 0..cycles {
                        cycle();
                    }
                    drop(cycle);
                    done.wait();
                })
            })
            .collect();
        Crew {
            go,
            done,
            job,
            threads,
            handles,
        }
    }

    fn run(&self, cycle: &Cycle, cycles: u64) -> f64 {
        *self.job.lock().unwrap() = Some((Arc::clone(cycle), cycles));
        let start = Instant::now();
        self.go.wait();
        self.done.wait();
        let t = per_cycle(start, cycles * self.threads as u64);
        *self.job.lock().unwrap() = None;
        t
    }
}

impl Drop for Crew {
    fn drop(&mut self) {
        *self.job.lock().unwrap() = None;
        self.go.wait();
        for h in self.handles.drain(..) {
            h.join().unwrap();
        }
    }
}

fn threads(rounds: usize, cycles: u64) {
    let counts = [1usize, 2, 4, 8];
    let contenders: Vec<&str> = CONTENDERS
        .iter()
        .copied()
        .filter(|c| applies(c, "threads"))
        .collect();
    println!(
        "ns per cycle across the machine (wall time / all cycles): median of {rounds} rounds \
         (fastest–slowest), {cycles} cycles per thread\n"
    );
    println!(
        "| contender | {} |",
        counts
            .iter()
            .flat_map(|n| [format!("{n} fresh"), format!("crew of {n}")])
            .collect::<Vec<_>>()
            .join(" | ")
    );
    println!("|---|{}", "---|".repeat(counts.len() * 2));
    // One pool per contender for the whole run, as a server keeps one.
    let pools: Vec<_> = contenders.iter().map(|c| shared(c)).collect();
    let mut times = vec![vec![Vec::new(); counts.len() * 2]; contenders.len()];
    let crews: Vec<Crew> = counts.iter().map(|&n| Crew::new(n)).collect();
    for _ in 0..rounds {
        for (ci, pool) in pools.iter().enumerate() {
            for (ni, &n) in counts.iter().enumerate() {
                times[ci][2 * ni].push(threads_batch(pool, n, cycles, None));
                times[ci][2 * ni + 1].push(threads_batch(pool, n, cycles, Some(&crews[ni])));
            }
        }
    }
    for (ci, c) in contenders.iter().enumerate() {
        let cells: Vec<String> = times[ci].iter_mut().map(|t| summary(t)).collect();
        println!("| {c} | {} |", cells.join(" | "));
    }
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = |i: usize| args.get(i).map(String::as_str);
    match arg(0) {
        Some("count") => {
            let (contender, shape, mode) = (
                arg(1).unwrap_or("mempool"),
                arg(2).unwrap_or("loop"),
                arg(3).unwrap_or("first"),
            );
            let cycles = arg(4).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
            assert!(
                applies(contender, shape),
                "{contender} has no {shape} shape"
            );
            black_box(run(contender, shape, mode, cycles));
        }
        Some("time") => {
            let rounds = arg(1).and_then(|n| n.parse().ok()).unwrap_or(15);
            let cycles = arg(2).and_then(|n| n.parse().ok()).unwrap_or(2_000_000);
            time(rounds, cycles);
        }
        Some("threads") => {
            let rounds = arg(1).and_then(|n| n.parse().ok()).unwrap_or(9);
            let cycles = arg(2).and_then(|n| n.parse().ok()).unwrap_or(1_000_000);
            threads(rounds, cycles);
        }
        _ => {
            eprintln!("usage: shapes count <contender> <shape> <mode> <cycles> | time [rounds] [cycles] | threads [rounds] [cycles]");
            eprintln!("contenders: {CONTENDERS:?}\nshapes: {SHAPES:?}\nmodes: {MODES:?}");
            std::process::exit(2);
        }
    }
}
