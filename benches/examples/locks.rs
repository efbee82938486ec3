//! `spill::Mutex` with std's lock (the default) against `parking_lot`'s (the
//! `parking_lot` feature): threads that are not the pool's first, so every
//! get and return goes through the strategy's sharded locks. Build it both
//! ways and run the two binaries by turns, so that both see the same noise:
//!
//! ```sh
//! cargo build --release -p mempool-benches --example locks
//! CARGO_TARGET_DIR=target/pl cargo build --release -p mempool-benches --example locks \
//!     --features parking_lot
//! for round in 1 2 3 4 5 6 7; do
//!     target/release/examples/locks; target/pl/release/examples/locks
//! done
//! ```
//!
//! Each run prints one line: the lock, then ns per cycle (wall time over
//! every thread's cycles) for 1, 2, 4 and 8 threads, and for 4 threads that
//! each hold 3 values at once.

use std::hint::black_box;
use std::time::Instant;

const CYCLES: u64 = 400_000;

fn main() {
    let pool = mempool::Pool::builder()
        .create(|| Vec::<u8>::with_capacity(256))
        .reset(Vec::clear)
        .spill(mempool::spill::Mutex::default())
        .build();
    // The first thread exits: every thread below goes to the strategy.
    std::thread::scope(|s| {
        s.spawn(|| drop(pool.get()));
    });
    let lock = if cfg!(feature = "parking_lot") {
        "parking_lot"
    } else {
        "std"
    };
    let mut cells = Vec::new();
    for (threads, nested) in [(1, 1), (2, 1), (4, 1), (8, 1), (4, 3)] {
        let start = Instant::now();
        std::thread::scope(|s| {
            for _ in 0..threads {
                s.spawn(|| {
                    for _ in 0..CYCLES {
                        let held: Vec<_> = (0..nested).map(|_| pool.get()).collect();
                        for mut g in held {
                            g.push(black_box(1));
                        }
                    }
                });
            }
        });
        let ns = start.elapsed().as_secs_f64() * 1e9 / (CYCLES * threads as u64) as f64;
        cells.push(format!("{ns:.1}"));
    }
    println!("{lock}: {}", cells.join(" "));
}
