//! The exported forms of `Stats`: Prometheus text that parses line by line,
//! and (with the `serde` feature) JSON that round-trips.

use mempool::{Pool, Stats};
use std::collections::HashMap;

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

/// Parses `{a="x",b="y"}` (with escapes) and returns the labels and the rest.
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

/// Checks the whole text and returns the samples with their declared types.
fn parse_exposition(text: &str) -> Result<Vec<(Sample, String)>, String> {
    let mut types: HashMap<String, String> = HashMap::new();
    let mut helped = Vec::new();
    let mut samples = Vec::new();
    for line in text.lines() {
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
        } else if line.starts_with('#') {
            return Err(format!("unknown comment {line:?}"));
        } else {
            let sample = parse_sample(line)?;
            let kind = types
                .get(&sample.name)
                .ok_or(format!("{} has no TYPE line before it", sample.name))?;
            if !helped.contains(&sample.name) {
                return Err(format!("{} has no HELP line", sample.name));
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

fn value_of(samples: &[(Sample, String)], name: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s.name == name)
        .unwrap_or_else(|| panic!("no {name}"))
        .0
        .value
}

#[test]
fn prometheus_output_parses_line_by_line() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    std::thread::scope(|s| {
        for _ in 0..3 {
            s.spawn(|| {
                for _ in 0..1000 {
                    let _a = pool.get();
                    let _b = pool.get();
                }
            });
        }
    });
    let stats = pool.stats().unwrap();
    let text = stats.to_prometheus("buffers");
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(samples.len(), 12, "one sample per metric");
    for (sample, _) in &samples {
        assert_eq!(sample.labels, [("pool".to_string(), "buffers".to_string())]);
    }
    assert_eq!(value_of(&samples, "mempool_gets_total"), 6000.0);
    assert_eq!(value_of(&samples, "mempool_gets_total"), stats.gets as f64);
    assert_eq!(
        value_of(&samples, "mempool_creates_total"),
        stats.creates as f64
    );
    assert_eq!(value_of(&samples, "mempool_idle"), stats.idle as f64);
    assert_eq!(value_of(&samples, "mempool_hit_rate"), stats.hit_rate());
    let gauges: Vec<_> = samples
        .iter()
        .filter(|(_, k)| k == "gauge")
        .map(|(s, _)| s.name.as_str())
        .collect();
    assert_eq!(gauges, ["mempool_idle", "mempool_hit_rate"]);
}

#[test]
fn prometheus_label_values_are_escaped() {
    let text = Stats::default().to_prometheus("a \"quoted\" \\ name\nwith a newline");
    let samples = parse_exposition(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    assert_eq!(
        samples[0].0.labels[0].1,
        "a \"quoted\" \\ name\nwith a newline"
    );
    assert_eq!(value_of(&samples, "mempool_hit_rate"), 0.0);
}

#[test]
fn the_parser_rejects_broken_lines() {
    assert!(
        parse_exposition("mempool_x{pool=\"a\"} 1").is_err(),
        "no TYPE"
    );
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

#[test]
fn display_is_one_line() {
    let pool = Pool::builder().create(Vec::<u8>::new).stats().build();
    drop((pool.get(), pool.get()));
    let line = pool.stats().unwrap().to_string();
    assert!(!line.contains('\n'));
    assert_eq!(
        line,
        "hit_rate=0.0% gets=2 owner_hits=0 spill_hits=0 creates=2 prefilled=0 returns=2 \
         puts=0 spilled=1 discarded=0 taken=0 trimmed=0 idle=2 in_use=0"
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
    let back: Stats = serde_json::from_str(&json).unwrap();
    assert_eq!(back, stats);
}
