//! A small multi-threaded workload, then its pool's stats as JSON and in the
//! Prometheus text exposition format.
//!
//! Run with `cargo run --example stats_export --features serde`.

use mempool::{spill, Pool};

fn main() {
    let pool = Pool::builder()
        .create(|| Vec::<u8>::with_capacity(4096))
        .reset(Vec::clear)
        .spill(spill::Bounded::new(4))
        .prefill(2)
        .stats()
        .build();

    std::thread::scope(|s| {
        for t in 0..4u8 {
            let pool = &pool;
            s.spawn(move || {
                for i in 0..10_000u32 {
                    let mut request = pool.get();
                    request.extend_from_slice(&[t; 64]);
                    if i % 10 == 0 {
                        // A nested buffer now and then, as a handler might.
                        let mut scratch = pool.get();
                        scratch.extend_from_slice(&request);
                    }
                }
            });
        }
    });

    let stats = pool.stats().expect("stats are on");
    println!(
        "{}",
        serde_json::to_string_pretty(&stats).expect("stats serialize")
    );
    println!();
    print!("{}", stats.to_prometheus("request_buffers"));
}
