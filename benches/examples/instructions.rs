//! One loop per case, a million cycles of get, push a byte, return, for
//! counting instructions under callgrind: unlike time on a small shared
//! machine, the count is the same from run to run.
//!
//! ```sh
//! cargo build --release -p mempool-benches --example instructions
//! for case in default owner-slot stats boxed mempool-0.3.1 nested fresh thread_local const-static lazy-static; do
//!     valgrind --tool=callgrind --callgrind-out-file=/dev/null \
//!         target/release/examples/instructions $case 2>&1 | grep refs
//! done
//! ```
//!
//! Divide by a million for instructions per cycle (about 0.3 million are the
//! program around the loop: run it with no case to see).
use std::hint::black_box;
fn main() {
    let which = std::env::args().nth(1).unwrap_or_default();
    let n = 1_000_000u64;
    match which.as_str() {
        // The default pool on one thread: a pocket slot each way.
        "default" => {
            let pool = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .build();
            for _ in 0..n {
                pool.get().push(black_box(1));
            }
        }
        // The owner slot's path: a strategy other than the default.
        "owner-slot" => {
            let pool = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .spill(mempool::spill::Mutex::default())
                .build();
            for _ in 0..n {
                pool.get().push(black_box(1));
            }
        }
        "boxed" => {
            let pool: mempool::BoxedPool<Vec<u8>> = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .build_boxed();
            for _ in 0..n {
                pool.get().push(black_box(1));
            }
        }
        "stats" => {
            let pool = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .stats()
                .build();
            for _ in 0..n {
                pool.get().push(black_box(1));
            }
        }
        "mempool-0.3.1" => {
            let pool = mempool03::Pool::new(Box::new(|| {
                std::cell::RefCell::new(Vec::<u8>::with_capacity(256))
            }));
            for _ in 0..n {
                let mut v = pool.get().borrow_mut();
                v.push(black_box(1));
                v.clear();
            }
        }
        "nested" => {
            let pool = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .build();
            for _ in 0..n {
                let mut a = pool.get();
                let mut b = pool.get();
                a.push(black_box(1));
                b.push(black_box(2));
            }
        }
        // A thread that is not the first to use the pool (that one has exited).
        "fresh" => {
            let pool = mempool::Pool::builder()
                .create(|| Vec::<u8>::with_capacity(256))
                .reset(Vec::clear)
                .build();
            std::thread::scope(|s| {
                s.spawn(|| drop(pool.get()));
            });
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..n {
                        pool.get().push(black_box(1));
                    }
                });
            });
        }
        "thread_local" => {
            let tl = thread_local::ThreadLocal::<std::cell::RefCell<Vec<u8>>>::new();
            std::thread::scope(|s| {
                s.spawn(|| {
                    for _ in 0..n {
                        let mut v = tl
                            .get_or(|| std::cell::RefCell::new(Vec::with_capacity(256)))
                            .borrow_mut();
                        v.push(black_box(1));
                        v.clear();
                    }
                });
            });
        }
        // A pool in a `static`, made by the `const` `Pool::new`, used from a
        // handler that is never inlined: no lazy initialisation to check.
        "const-static" => {
            static POOL: mempool::Pool<Vec<u8>> = mempool::Pool::new(buffer);
            #[inline(never)]
            fn handler() {
                let mut v = POOL.get();
                v.push(black_box(1));
                v.clear();
            }
            for _ in 0..n {
                handler();
            }
        }
        // The same pool type and handler, the `static` made on first use.
        "lazy-static" => {
            static POOL: std::sync::LazyLock<mempool::Pool<Vec<u8>>> =
                std::sync::LazyLock::new(|| mempool::Pool::new(buffer));
            #[inline(never)]
            fn handler() {
                let mut v = POOL.get();
                v.push(black_box(1));
                v.clear();
            }
            for _ in 0..n {
                handler();
            }
        }
        _ => {}
    }
}

fn buffer() -> Vec<u8> {
    Vec::with_capacity(256)
}
