//! Shows a pool reusing buffers on one thread and on several, refusing one
//! that grew too large, and dropping the burst's leftovers with `decay`; it
//! prints what it measured: how many buffers were made for how many gets, and
//! the time per get against allocating a fresh buffer each time.
//!
//! Run with `cargo run --release --example quickstart`.

use mempool::Pool;
use std::hint::black_box;
use std::time::Instant;

const BUF: usize = 64 * 1024;
/// Buffers that grew past this are dropped on return, not kept.
const KEEP_AT_MOST: usize = 1 << 20;
const ROUNDS: u32 = 200_000;
const THREADS: usize = 4;

/// Fills the buffer the way a request handler might, and returns a byte of it
/// so the work cannot be optimised away.
fn work(buf: &mut Vec<u8>) -> u8 {
    buf.extend_from_slice(b"GET /index.html HTTP/1.1\r\n");
    buf[buf.len() / 2]
}

fn main() {
    let pool = Pool::builder()
        .create(|| Vec::with_capacity(BUF))
        .reset(Vec::clear)
        .retain(|buf: &Vec<u8>| buf.capacity() <= KEEP_AT_MOST)
        .stats()
        .build();

    // One thread: its first slot serves every get.
    let start = Instant::now();
    for _ in 0..ROUNDS {
        let mut buf = pool.get();
        black_box(work(&mut buf));
    }
    let pooled = start.elapsed().as_secs_f64() * 1e9 / f64::from(ROUNDS);

    let start = Instant::now();
    for _ in 0..ROUNDS {
        // black_box: without it the optimiser may drop the allocation.
        let mut buf = black_box(Vec::with_capacity(BUF));
        black_box(work(&mut buf));
    }
    let fresh = start.elapsed().as_secs_f64() * 1e9 / f64::from(ROUNDS);

    let s = pool.stats().expect("stats are on");
    println!("one thread, {ROUNDS} gets of a {BUF}-byte buffer:");
    println!(
        "  buffers made: {} (hit rate {:.4}%)",
        s.creates,
        s.hit_rate() * 100.0
    );
    println!("  per get: {pooled:.1} ns pooled, {fresh:.1} ns allocating each time");

    // Several threads share the pool: the others are served by the spill.
    std::thread::scope(|scope| {
        for _ in 0..THREADS {
            scope.spawn(|| {
                for _ in 0..ROUNDS {
                    let mut buf = pool.get();
                    black_box(work(&mut buf));
                }
            });
        }
    });
    let s = pool.stats().expect("stats are on");
    println!("then {THREADS} more threads, {ROUNDS} gets each:");
    println!(
        "  buffers made in all: {} for {} gets; {} idle now (the slots' included)",
        s.creates, s.gets, s.idle
    );
    println!("  {s}");

    // A request that needed a huge buffer: not kept for the next one.
    pool.get().reserve(4 * KEEP_AT_MOST);
    // Memory after the burst: call `decay` from a timer; a value idle
    // through two calls is dropped.
    pool.decay();
    for _ in 0..ROUNDS {
        black_box(work(&mut pool.get()));
    }
    let decayed = pool.decay();
    let s = pool.stats().expect("stats are on");
    println!("then one oversized buffer and two decays around {ROUNDS} more gets:");
    println!(
        "  rejected {} (too large), decayed {decayed}, {} idle now",
        s.rejected, s.idle
    );
}
