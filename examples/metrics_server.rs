//! A service that exports its pools to Prometheus: four worker threads use
//! two named pools, and `GET /metrics` answers with the service's registry,
//! which holds the pools' stats beside a metric of the service's own. Runs
//! until it is stopped (Ctrl-C, or a signal).
//!
//! Run with `cargo run --example metrics_server --features prometheus`, then
//! `curl http://127.0.0.1:9898/metrics`. The first argument is the address to
//! listen on (default `127.0.0.1:9898`; port 0 picks a free one, and the
//! address is printed either way). `.ci/run` points a real Prometheus at it.
//!
//! The HTTP side is the least that Prometheus needs, on `std::net`: one
//! request per connection, served on the main thread.

use mempool::prometheus::PoolCollector;
use mempool::{spill, Pool};
use prometheus_client::encoding::{prometheus_text, text};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::time::Duration;

const WORKERS: usize = 4;
/// Jobs a worker does between naps: the naps keep the example from taking
/// every core of a small machine while it runs.
const BATCH: u32 = 100;
const NAP: Duration = Duration::from_millis(10);
/// Content type of OpenMetrics text, which Prometheus asks for first.
const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

fn main() -> io::Result<()> {
    let addr = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "127.0.0.1:9898".to_string());

    // Two pools, each counting stats: request buffers with the default
    // strategy, and a bounded pool of scratch strings.
    let buffers = Arc::new(
        Pool::builder()
            .create(|| Vec::<u8>::with_capacity(4096))
            .reset(Vec::clear)
            .stats()
            .build(),
    );
    let scratch = Arc::new(
        Pool::builder()
            .create(|| String::with_capacity(256))
            .reset(String::clear)
            .spill(spill::Bounded::new(8))
            .stats()
            .build(),
    );

    // The service's own registry: a metric of its own, and the pools.
    let mut registry = Registry::default();
    let jobs: Counter = Counter::default();
    registry.register("example_jobs", "Jobs the workers finished", jobs.clone());
    let pools = PoolCollector::new();
    pools
        .add("request_buffers", &buffers)
        .add("parse_scratch", &scratch);
    pools.register(&mut registry);

    for worker in 0..WORKERS {
        let (buffers, scratch, jobs) = (Arc::clone(&buffers), Arc::clone(&scratch), jobs.clone());
        std::thread::spawn(move || loop {
            for i in 0..BATCH {
                let mut request = buffers.get();
                request.extend_from_slice(b"GET /index.html HTTP/1.1\r\n");
                let mut line = scratch.get();
                // Writing to a String cannot fail.
                let _ = write!(line, "worker {worker} job {i}");
                if i % 16 == 0 {
                    // A second buffer now and then: it comes from the spill.
                    let mut body = buffers.get();
                    body.extend_from_slice(line.as_bytes());
                }
                jobs.inc();
            }
            std::thread::sleep(NAP);
        });
    }

    let listener = TcpListener::bind(&addr)?;
    println!("serving http://{}/metrics", listener.local_addr()?);
    io::stdout().flush()?;
    for stream in listener.incoming() {
        // A client that misbehaves costs its own connection, not the server.
        if let Err(e) = stream.and_then(|s| serve(s, &registry)) {
            eprintln!("connection: {e}");
        }
    }
    Ok(())
}

/// Answers one HTTP request on `stream`, then closes it.
fn serve(mut stream: TcpStream, registry: &Registry) -> io::Result<()> {
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    let head = read_head(&mut stream)?;
    let mut lines = head.split("\r\n");
    let request = lines.next().unwrap_or_default();
    let mut parts = request.split(' ');
    let (method, path) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let accept = lines
        .filter_map(|l| l.split_once(':'))
        .find(|(name, _)| name.trim().eq_ignore_ascii_case("accept"))
        .map(|(_, value)| value.to_ascii_lowercase())
        .unwrap_or_default();

    let (status, content_type, body) = match (method, path) {
        ("GET", "/metrics") => {
            // Prometheus asks for OpenMetrics first; anything else (curl, a
            // browser) gets the classic text format.
            let openmetrics = accept.contains("application/openmetrics-text");
            let mut body = String::new();
            let encoded = if openmetrics {
                text::encode(&mut body, registry)
            } else {
                prometheus_text::encode(&mut body, registry)
            };
            encoded.map_err(|_| io::Error::other("encoding the registry failed"))?;
            let content_type = if openmetrics {
                OPENMETRICS
            } else {
                prometheus_text::CONTENT_TYPE
            };
            ("200 OK", content_type, body)
        }
        ("GET", _) => ("404 Not Found", "text/plain", "try /metrics\n".to_string()),
        _ => (
            "405 Method Not Allowed",
            "text/plain",
            "only GET\n".to_string(),
        ),
    };
    write!(
        stream,
        "HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\n\
         Connection: close\r\n\r\n{body}",
        body.len()
    )?;
    stream.flush()
}

/// Reads up to the blank line that ends a request's head (at most 16 KiB).
fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut head = Vec::new();
    let mut chunk = [0u8; 1024];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        if head.len() > 16 * 1024 {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        match stream.read(&mut chunk)? {
            0 => break,
            n => head.extend_from_slice(&chunk[..n]),
        }
    }
    Ok(String::from_utf8_lossy(&head).into_owned())
}
