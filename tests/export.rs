//! The exported forms of `Stats`: the one-line `Display`, (with the `serde`
//! feature) JSON that round-trips, and (with the `prometheus` feature) what
//! `PoolCollector` puts in a prometheus-client registry, in both text formats
//! Prometheus scrapes, parsed line by line.

mod common;

use mempool::Pool;

#[test]
fn display_is_one_line() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    drop((pool.get(), pool.get()));
    let line = pool.stats().unwrap().to_string();
    assert!(!line.contains('\n'));
    assert_eq!(
        line,
        "hit_rate=0.0% gets=2 slot_hits=0 spill_hits=0 creates=2 prefilled=0 returns=2 \
         puts=0 spilled=0 discarded=0 taken=0 trimmed=0 rejected=0 decayed=0 idle=2 in_use=0"
    );
}

#[cfg(feature = "serde")]
#[test]
fn json_round_trips() {
    let pool = Pool::builder()
        .create(Vec::<u8>::new)
        .stats()
        .prefill(1)
        .build();
    drop((pool.get(), pool.get()));
    let stats = pool.stats().unwrap();
    let json = serde_json::to_string(&stats).unwrap();
    assert!(json.contains("\"gets\":2"), "{json}");
    assert!(json.contains("\"prefilled\":1"), "{json}");
    let back: mempool::Stats = serde_json::from_str(&json).unwrap();
    assert_eq!(back, stats);
}

#[cfg(feature = "prometheus")]
mod prometheus {
    use mempool::prometheus::PoolCollector;
    use mempool::{Pool, PoolGuard, Stats};
    use prometheus_client::encoding::{prometheus_text, text};
    use prometheus_client::metrics::counter::Counter;
    use prometheus_client::registry::Registry;
    use std::collections::HashMap;
    use std::sync::Arc;

    /// The two text formats prometheus-client writes and Prometheus reads.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Format {
        /// The classic format (0.0.4): a counter's `# TYPE` names the
        /// sample, `_total` included.
        Prometheus,
        /// OpenMetrics 1.0: a counter's `# TYPE` names the family and its
        /// sample adds `_total`; the text ends with `# EOF`.
        OpenMetrics,
    }

    /// One sample line: `name{label="value",...} value`.
    #[derive(Debug, PartialEq)]
    struct Sample {
        name: String,
        labels: Vec<(String, String)>,
        value: f64,
    }

    fn is_metric_name(s: &str) -> bool {
        let mut chars = s.chars();
        matches!(chars.next(), Some(c) if c.is_ascii_alphabetic() || c == '_' || c == ':')
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':')
    }

    type Labels = Vec<(String, String)>;

    /// Parses `{a="x",b="y"}` (with escapes) and returns the labels and the
    /// rest.
    fn parse_labels(s: &str) -> Result<(Labels, &str), String> {
        let mut labels = Vec::new();
        let mut rest = s.strip_prefix('{').ok_or("labels must start with {")?;
        loop {
            if let Some(after) = rest.strip_prefix('}') {
                return Ok((labels, after));
            }
            let eq = rest.find('=').ok_or("label without =")?;
            let name = &rest[..eq];
            if !is_metric_name(name) || name.contains(':') {
                return Err(format!("bad label name {name:?}"));
            }
            let mut value = String::new();
            let mut chars = rest[eq + 1..]
                .strip_prefix('"')
                .ok_or("label value must be quoted")?
                .char_indices();
            let end = loop {
                match chars.next().ok_or("unterminated label value")? {
                    (i, '"') => break i,
                    (_, '\\') => match chars.next().ok_or("dangling escape")?.1 {
                        'n' => value.push('\n'),
                        c @ ('\\' | '"') => value.push(c),
                        c => return Err(format!("bad escape \\{c}")),
                    },
                    (_, c) => value.push(c),
                }
            };
            labels.push((name.to_string(), value));
            rest = &rest[eq + 1 + 1 + end + 1..];
            rest = rest.strip_prefix(',').unwrap_or(rest);
        }
    }

    fn parse_sample(line: &str) -> Result<Sample, String> {
        let name_end = line.find(['{', ' ']).ok_or("no value")?;
        let name = &line[..name_end];
        if !is_metric_name(name) {
            return Err(format!("bad metric name {name:?}"));
        }
        let (labels, rest) = if line[name_end..].starts_with('{') {
            parse_labels(&line[name_end..])?
        } else {
            (Vec::new(), &line[name_end..])
        };
        let value = rest.strip_prefix(' ').ok_or("no space before value")?;
        let value: f64 = value
            .parse()
            .map_err(|e| format!("bad value {value:?}: {e}"))?;
        Ok(Sample {
            name: name.to_string(),
            labels,
            value,
        })
    }

    /// Checks the whole text and returns the samples with their declared
    /// types. Every sample must follow its family's `# HELP` and `# TYPE`
    /// lines, each family declared once, its samples together.
    fn parse_exposition(text: &str, format: Format) -> Result<Vec<(Sample, String)>, String> {
        let body = match format {
            Format::Prometheus => text,
            Format::OpenMetrics => text
                .strip_suffix("# EOF\n")
                .ok_or("OpenMetrics text must end with # EOF")?,
        };
        let mut types: HashMap<String, String> = HashMap::new();
        let mut helped = Vec::new();
        let mut current: Option<String> = None;
        let mut samples = Vec::new();
        for line in body.lines() {
            if let Some(help) = line.strip_prefix("# HELP ") {
                let (name, text) = help.split_once(' ').ok_or("HELP without text")?;
                if !is_metric_name(name) || text.is_empty() {
                    return Err(format!("bad HELP line {line:?}"));
                }
                helped.push(name.to_string());
            } else if let Some(ty) = line.strip_prefix("# TYPE ") {
                let (name, kind) = ty.split_once(' ').ok_or("TYPE without kind")?;
                if !matches!(kind, "counter" | "gauge") {
                    return Err(format!("unexpected type {kind:?}"));
                }
                if types.insert(name.to_string(), kind.to_string()).is_some() {
                    return Err(format!("second TYPE for {name}"));
                }
                current = Some(name.to_string());
            } else if line.starts_with('#') {
                return Err(format!("unknown comment {line:?}"));
            } else {
                let sample = parse_sample(line)?;
                let family = current.as_deref().ok_or("sample before any TYPE")?;
                let kind = &types[family];
                let expected = match (format, kind.as_str()) {
                    (Format::OpenMetrics, "counter") => format!("{family}_total"),
                    _ => family.to_string(),
                };
                if sample.name != expected {
                    return Err(format!("{} under TYPE {family}", sample.name));
                }
                if !helped.iter().any(|h| h == family) {
                    return Err(format!("{family} has no HELP line"));
                }
                if kind == "counter" && !sample.name.ends_with("_total") {
                    return Err(format!("counter {} should end in _total", sample.name));
                }
                let kind = kind.clone();
                samples.push((sample, kind));
            }
        }
        Ok(samples)
    }

    fn encode(registry: &Registry, format: Format) -> String {
        let mut out = String::new();
        match format {
            Format::Prometheus => prometheus_text::encode(&mut out, registry).unwrap(),
            Format::OpenMetrics => text::encode(&mut out, registry).unwrap(),
        }
        out
    }

    /// Parses the registry in both formats, checks that they hold the same
    /// samples, and returns them.
    fn scrape(registry: &Registry) -> Vec<(Sample, String)> {
        let mut both = [Format::Prometheus, Format::OpenMetrics].map(|format| {
            let text = encode(registry, format);
            parse_exposition(&text, format).unwrap_or_else(|e| panic!("{format:?}: {e}\n{text}"))
        });
        assert_eq!(both[0], both[1], "the two formats disagree");
        std::mem::take(&mut both[0])
    }

    /// The value of `name` for the pool labelled `pool`.
    fn value(samples: &[(Sample, String)], name: &str, pool: &str) -> Option<f64> {
        let labels = [("pool".to_string(), pool.to_string())];
        samples
            .iter()
            .find(|(s, _)| s.name == name && s.labels == labels)
            .map(|(s, _)| s.value)
    }

    #[test]
    fn every_family_once_with_a_sample_per_pool() {
        let a = Arc::new(Pool::builder().create(Vec::<u8>::new).stats().build());
        let b = Arc::new(Pool::builder().create(String::new).stats().build());
        std::thread::scope(|s| {
            for _ in 0..3 {
                s.spawn(|| {
                    for _ in 0..1000 {
                        let _x = a.get();
                        let _y = a.get();
                    }
                });
            }
        });
        drop(b.get());
        let mut registry = Registry::default();
        let pools = PoolCollector::new();
        pools.add("a", &a).add("b", &b);
        pools.register(&mut registry);

        let samples = scrape(&registry);
        assert_eq!(samples.len(), 15 * 2, "15 families, 2 pools");
        let stats = a.stats().unwrap();
        assert_eq!(value(&samples, "mempool_gets_total", "a"), Some(6000.0));
        for (name, expected) in [
            ("mempool_gets_total", stats.gets),
            ("mempool_slot_hits_total", stats.slot_hits),
            ("mempool_spill_hits_total", stats.spill_hits),
            ("mempool_creates_total", stats.creates),
            ("mempool_prefilled_total", stats.prefilled),
            ("mempool_returns_total", stats.returns),
            ("mempool_puts_total", stats.puts),
            ("mempool_spilled_total", stats.spilled),
            ("mempool_discarded_total", stats.discarded),
            ("mempool_taken_total", stats.taken),
            ("mempool_trimmed_total", stats.trimmed),
            ("mempool_rejected_total", stats.rejected),
            ("mempool_decayed_total", stats.decayed),
            ("mempool_idle", stats.idle as u64),
            ("mempool_in_use", stats.in_use),
        ] {
            assert_eq!(value(&samples, name, "a"), Some(expected as f64), "{name}");
        }
        assert_eq!(value(&samples, "mempool_gets_total", "b"), Some(1.0));
        let gauges: Vec<_> = samples
            .iter()
            .filter(|(s, k)| k == "gauge" && s.labels[0].1 == "a")
            .map(|(s, _)| s.name.as_str())
            .collect();
        assert_eq!(gauges, ["mempool_idle", "mempool_in_use"]);
        assert!(
            !samples.iter().any(|(s, _)| s.name.contains("hit_rate")),
            "the hit rate is a query, not a gauge"
        );
    }

    #[test]
    fn stats_are_read_at_scrape_time() {
        let pool = Arc::new(Pool::builder().create(Vec::<u8>::new).stats().build());
        let mut registry = Registry::default();
        PoolCollector::new()
            .add("buffers", &pool)
            .register(&mut registry);
        let before = scrape(&registry);
        assert_eq!(value(&before, "mempool_gets_total", "buffers"), Some(0.0));

        let held = (pool.get(), pool.get(), pool.get());
        let taken = PoolGuard::take(pool.get());
        let during = scrape(&registry);
        assert_eq!(value(&during, "mempool_gets_total", "buffers"), Some(4.0));
        assert_eq!(value(&during, "mempool_in_use", "buffers"), Some(3.0));
        assert_eq!(value(&during, "mempool_taken_total", "buffers"), Some(1.0));
        assert_eq!(value(&during, "mempool_idle", "buffers"), Some(0.0));

        drop(held);
        drop(taken);
        let after = scrape(&registry);
        assert_eq!(value(&after, "mempool_in_use", "buffers"), Some(0.0));
        assert_eq!(value(&after, "mempool_idle", "buffers"), Some(3.0));
    }

    #[test]
    fn sits_beside_the_services_own_metrics() {
        let pool = Arc::new(Pool::builder().create(String::new).stats().build());
        let mut registry = Registry::default();
        let requests: Counter = Counter::default();
        registry.register("requests", "Requests served", requests.clone());
        PoolCollector::new()
            .add("names", &pool)
            .register(registry.sub_registry_with_prefix("app"));
        requests.inc();
        drop(pool.get());
        let samples = scrape(&registry);
        assert!(samples.iter().any(|(s, _)| s.name == "requests_total"));
        assert_eq!(
            value(&samples, "app_mempool_gets_total", "names"),
            Some(1.0)
        );
    }

    #[test]
    fn a_dropped_pool_leaves_the_scrape() {
        let kept = Arc::new(Pool::builder().create(String::new).stats().build());
        let gone = Arc::new(Pool::builder().create(String::new).stats().build());
        let mut registry = Registry::default();
        let pools = PoolCollector::new();
        pools.add("kept", &kept).add("gone", &gone);
        pools.register(&mut registry);
        assert_eq!(scrape(&registry).len(), 30);

        drop(gone);
        let samples = scrape(&registry);
        assert_eq!(samples.len(), 15);
        assert!(samples.iter().all(|(s, _)| s.labels[0].1 == "kept"));

        drop(kept);
        assert!(scrape(&registry).is_empty());
        assert_eq!(encode(&registry, Format::OpenMetrics), "# EOF\n");
        assert_eq!(pools.names(), ["kept", "gone"], "names stay until removed");
    }

    #[test]
    fn a_name_added_again_replaces_the_pool() {
        let mut registry = Registry::default();
        let pools = PoolCollector::new();
        pools.register(&mut registry);
        let gets = |n| {
            move || {
                Some(crate::stats! {
                    gets: n,
                })
            }
        };
        pools
            .add_fn("p", gets(1))
            .add_fn("q", gets(2))
            .add_fn("p", gets(3));
        assert_eq!(pools.names(), ["p", "q"]);
        let samples = scrape(&registry);
        assert_eq!(value(&samples, "mempool_gets_total", "p"), Some(3.0));
        assert_eq!(value(&samples, "mempool_gets_total", "q"), Some(2.0));
        assert!(pools.remove("p"));
        assert_eq!(value(&scrape(&registry), "mempool_gets_total", "p"), None);
    }

    #[test]
    fn label_values_are_escaped() {
        let name = "a \"quoted\" \\ name\nwith a newline";
        let mut registry = Registry::default();
        PoolCollector::new()
            .add_fn(name, || Some(Stats::default()))
            .register(&mut registry);
        let samples = scrape(&registry);
        assert_eq!(
            samples[0].0.labels,
            [("pool".to_string(), name.to_string())]
        );
    }

    #[test]
    fn the_parser_rejects_broken_text() {
        let p = Format::Prometheus;
        assert!(
            parse_exposition("mempool_x{pool=\"a\"} 1", p).is_err(),
            "no TYPE"
        );
        let twice = "# HELP x_total h\n# TYPE x_total counter\nx_total 1\n\
                     # HELP x_total h\n# TYPE x_total counter\nx_total 2\n";
        assert!(parse_exposition(twice, p).is_err(), "family declared twice");
        let om = "# HELP x h\n# TYPE x counter\nx_total 1\n";
        assert!(
            parse_exposition(om, p).is_err(),
            "OpenMetrics TYPE as classic"
        );
        assert!(
            parse_exposition(om, Format::OpenMetrics).is_err(),
            "no # EOF"
        );
        let om = format!("{om}# EOF\n");
        assert!(parse_exposition(&om, Format::OpenMetrics).is_ok());
        assert!(
            parse_sample("mempool_x{pool=\"a} 1").is_err(),
            "unterminated"
        );
        assert!(
            parse_sample("mempool_x{pool=\"a\"} one").is_err(),
            "bad value"
        );
        assert!(parse_sample("9bad 1").is_err(), "bad name");
    }
}
