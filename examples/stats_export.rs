//! A small multi-threaded workload, then its pool's stats as JSON and as a
//! Prometheus scrape would see them.
//!
//! Run with `cargo run --example stats_export --features serde,prometheus`.

use mempool::prometheus::PoolCollector;
use mempool::{spill, Pool};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::registry::Registry;
use std::sync::Arc;

fn main() {
    let pool = Arc::new(
        Pool::builder()
            .create(|| Vec::<u8>::with_capacity(4096))
            .reset(Vec::clear)
            .spill(spill::Bounded::new(4))
            .prefill(2)
            .stats()
            .build(),
    );

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

    // What a Prometheus scrape of this registry returns, in the classic text
    // format (`examples/metrics_server.rs` serves it over HTTP).
    let mut registry = Registry::default();
    PoolCollector::new()
        .add("request_buffers", &pool)
        .register(&mut registry);
    let mut text = String::new();
    prometheus_text::encode(&mut text, &registry).expect("writing to a String");
    print!("{text}");
}
