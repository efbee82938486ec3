//! Interleaved timing of the single-thread cycle (get, push a byte, return):
//! each case runs a batch of two million cycles in turn, for many rounds, and
//! the fastest, median and slowest batch of each are printed. On a shared
//! machine, batches of different cases run side by side see the same noise,
//! so their ratio is steadier than that of separate criterion runs; the
//! fastest batch is the least disturbed one.
//!
//! Each case has four copies of its pool at different places on the heap,
//! used by turns (`benches/common/placed.rs` says why): the fastest batch is
//! then the case's speed where nothing aliases; the median mixes the four
//! placements.
//!
//! ```sh
//! cargo run --release -p mempool-benches --example ratio -- 30   # rounds
//! ```
use std::hint::black_box;
#[path = "../common/placed.rs"]
mod placed;

use mempool::Pool;
use placed::Placed;
use std::time::Instant;

const BATCH: u32 = 2_000_000;

#[inline(never)]
fn time(mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    for _ in 0..BATCH {
        f();
    }
    start.elapsed().as_secs_f64() * 1e9 / f64::from(BATCH)
}

fn main() {
    let rounds: usize = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(30);
    fn buffer() -> Vec<u8> {
        Vec::with_capacity(256)
    }
    let default = Placed::new(|| Pool::builder().create(buffer).reset(Vec::clear).build());
    let owner = Placed::new(|| {
        Pool::builder()
            .create(buffer)
            .reset(Vec::clear)
            .spill(mempool::spill::Mutex::default())
            .build()
    });
    let old = Placed::new(|| mempool03::Pool::new(Box::new(|| std::cell::RefCell::new(buffer()))));
    let tl = Placed::new(thread_local::ThreadLocal::<std::cell::RefCell<Vec<u8>>>::new);
    let stats = Placed::new(|| {
        Pool::builder()
            .create(buffer)
            .reset(Vec::clear)
            .stats()
            .build()
    });
    let names = [
        "default",
        "owner (Mutex)",
        "nested/2 (default)",
        "mempool-0.3.1",
        "thread_local",
        "default, stats on",
    ];
    let mut times: Vec<Vec<f64>> = vec![Vec::new(); names.len()];
    for round in 0..rounds {
        let (default, owner, old) = (default.at(round), owner.at(round), old.at(round));
        let (tl, stats) = (tl.at(round), stats.at(round));
        times[0].push(time(|| default.get().push(black_box(1))));
        times[1].push(time(|| owner.get().push(black_box(1))));
        times[2].push(time(|| {
            let mut a = default.get();
            let mut b = default.get();
            a.push(black_box(1));
            b.push(black_box(2));
        }));
        times[3].push(time(|| {
            let mut v = old.get().borrow_mut();
            v.push(black_box(1));
            v.clear();
        }));
        times[4].push(time(|| {
            let mut v = tl.get_or(|| std::cell::RefCell::new(buffer())).borrow_mut();
            v.push(black_box(1));
            v.clear();
        }));
        times[5].push(time(|| stats.get().push(black_box(1))));
    }
    for (i, name) in names.iter().enumerate() {
        let t = &mut times[i];
        t.sort_by(f64::total_cmp);
        println!(
            "{name:<20} min {:.3} ns  median {:.3} ns  max {:.3} ns",
            t[0],
            t[t.len() / 2],
            t[t.len() - 1]
        );
    }
}
