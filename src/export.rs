//! Stats in the Prometheus text exposition format.

use crate::Stats;
use std::fmt::Write;

/// One exported metric: its name without the `mempool_` prefix, its type, its
/// help text, and how to read it off a snapshot.
struct Metric {
    name: &'static str,
    kind: &'static str,
    help: &'static str,
    value: fn(&Stats) -> f64,
}

#[rustfmt::skip]
const METRICS: &[Metric] = &[
    Metric { name: "gets_total", kind: "counter", help: "Guards handed out.", value: |s| s.gets as f64 },
    Metric { name: "owner_hits_total", kind: "counter", help: "Gets served by the owner slot.", value: |s| s.owner_hits as f64 },
    Metric { name: "spill_hits_total", kind: "counter", help: "Gets served by a value reused from the spill.", value: |s| s.spill_hits as f64 },
    Metric { name: "creates_total", kind: "counter", help: "Values made by the create hook, prefill included.", value: |s| s.creates as f64 },
    Metric { name: "prefilled_total", kind: "counter", help: "Values made by prefill.", value: |s| s.prefilled as f64 },
    Metric { name: "returns_total", kind: "counter", help: "Values handed back by a guard or put.", value: |s| s.returns as f64 },
    Metric { name: "spilled_total", kind: "counter", help: "Values the spill accepted.", value: |s| s.spilled as f64 },
    Metric { name: "discarded_total", kind: "counter", help: "Values the spill refused, dropped.", value: |s| s.discarded as f64 },
    Metric { name: "taken_total", kind: "counter", help: "Guards consumed by take.", value: |s| s.taken as f64 },
    Metric { name: "trimmed_total", kind: "counter", help: "Idle values dropped by trim.", value: |s| s.trimmed as f64 },
    Metric { name: "idle", kind: "gauge", help: "Idle values held now, owner slot included.", value: |s| s.idle as f64 },
    Metric { name: "hit_rate", kind: "gauge", help: "Share of gets that reused a value (0 to 1).", value: Stats::hit_rate },
];

impl Stats {
    /// The snapshot in the Prometheus text exposition format: for each metric
    /// a `# HELP` and a `# TYPE` line, then one sample labelled
    /// `pool="<pool>"`. Counters are named `mempool_<counter>_total`; `idle`
    /// and `hit_rate` are gauges.
    ///
    /// To export several pools in one scrape, write each metric's samples
    /// together under one `# HELP`/`# TYPE` pair; this method is for one pool.
    ///
    /// ```
    /// let s = mempool::Stats { gets: 3, owner_hits: 2, creates: 1, idle: 1, ..Default::default() };
    /// let text = s.to_prometheus("buffers");
    /// assert!(text.contains("# TYPE mempool_gets_total counter\n"));
    /// assert!(text.contains("mempool_gets_total{pool=\"buffers\"} 3\n"));
    /// assert!(text.contains("mempool_idle{pool=\"buffers\"} 1\n"));
    /// ```
    pub fn to_prometheus(&self, pool: &str) -> String {
        let label = escape_label(pool);
        let mut out = String::new();
        for m in METRICS {
            // Writing to a String cannot fail.
            let _ = writeln!(out, "# HELP mempool_{} {}", m.name, m.help);
            let _ = writeln!(out, "# TYPE mempool_{} {}", m.name, m.kind);
            let _ = writeln!(
                out,
                "mempool_{}{{pool=\"{}\"}} {}",
                m.name,
                label,
                (m.value)(self)
            );
        }
        out
    }
}

/// Escapes a label value as the exposition format asks: backslash, double
/// quote and line feed.
fn escape_label(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out
}
