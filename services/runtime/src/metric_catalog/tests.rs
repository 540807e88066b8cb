//! The catalog against its rules, the exporter, and every file that names a metric.

use super::*;
use hookline_core::contracts::filter::EvalErrorKind;
use hookline_core::failover::Target;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Files under `dir` (recursively) whose name ends with one of `suffixes`.
fn files(dir: &Path, suffixes: &[&str]) -> Vec<PathBuf> {
    let mut found = Vec::new();
    let mut dirs = vec![dir.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        for entry in std::fs::read_dir(&dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display())) {
            let path = entry.expect("a directory entry").path();
            let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default();
            if path.is_dir() && !matches!(name, "target" | "node_modules") {
                dirs.push(path);
            } else if suffixes.iter().any(|s| name.ends_with(s)) {
                found.push(path);
            }
        }
    }
    found.sort();
    found
}

fn spec(name: &str) -> Option<&'static Spec> {
    ALL.iter().copied().find(|s| s.name == name)
}

fn values(label: &Label) -> Vec<&'static str> {
    label.values.listed().unwrap_or_default()
}

fn is_snake(s: &str) -> bool {
    s.starts_with(|c: char| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

#[test]
fn names_kinds_and_units_follow_the_conventions() {
    let mut names = BTreeSet::new();
    for spec in ALL {
        let name = spec.name;
        assert!(names.insert(name), "{name} is declared twice");
        let rest = name.strip_prefix("hookline_").unwrap_or_default();
        assert!(is_snake(rest), "{name}: not ^hookline_[a-z0-9_]+$");
        match spec.kind {
            Kind::Counter => assert!(name.ends_with("_total") && spec.unit == Unit::Count, "counter {name}: a count ending in _total"),
            Kind::Gauge | Kind::Histogram => assert!(!name.ends_with("_total"), "{} {name} ends in _total", spec.kind.as_str()),
        }
        assert_eq!(spec.unit == Unit::Seconds, name.ends_with("_seconds"), "{name}: _seconds is for, and only for, seconds");
        if spec.kind == Kind::Histogram {
            assert!(!spec.buckets.is_empty(), "histogram {name} has no buckets");
            assert!(spec.buckets.windows(2).all(|w| w[0] < w[1]) && spec.buckets[0] > 0.0, "{name}: buckets not ascending");
        } else {
            assert!(spec.buckets.is_empty(), "{name}: only histograms have buckets");
        }
        // One line of help: Prometheus's HELP, and a cell of the docs table.
        assert!(spec.help.ends_with('.') && !spec.help.contains(['\n', '|', '\\']), "{name}: help {:?}", spec.help);
        let mut labels = BTreeSet::new();
        for label in spec.labels {
            assert!(labels.insert(label.name), "{name}: label {} twice", label.name);
            assert!(is_snake(label.name) && !matches!(label.name, "le" | "quantile"), "{name}: label {}", label.name);
            if let Values::BoundedBy(what) = label.values {
                assert!(!what.is_empty(), "{name}{{{}}}: bounded by what?", label.name);
            } else {
                let values = values(label);
                let distinct: BTreeSet<_> = values.iter().collect();
                assert!(!values.is_empty() && distinct.len() == values.len(), "{name}{{{}}}: values {values:?}", label.name);
            }
        }
    }
}

#[test]
fn every_declared_metric_is_in_all() {
    let source = include_str!("../metric_catalog.rs");
    let declared = source
        .lines()
        .filter(|l| l.starts_with("pub static ") && [": Counter<", ": Gauge<", ": Histogram<"].iter().any(|k| l.contains(k)))
        .count();
    assert_eq!(declared, ALL.len(), "a metric declared in metric_catalog.rs is missing from ALL (or listed twice)");
}

#[test]
fn labels_written_here_are_the_enums_spellings() {
    // Reasons and consume error kinds are listed by their enums; these two are written out.
    use EvalErrorKind as E;
    let filter_errors = [E::MissingField, E::WrongType, E::NotBool, E::Arithmetic, E::Function, E::Internal];
    for kind in filter_errors {
        // No wildcard: a new kind does not compile until it is listed above.
        match kind {
            E::MissingField | E::WrongType | E::NotBool | E::Arithmetic | E::Function | E::Internal => {}
        }
    }
    assert_eq!(values(&ROUTER_FILTER_ERRORS.spec.labels[0]), filter_errors.map(E::as_str).to_vec());
    for target in [Target::Primary, Target::Failover] {
        assert!(SENDER_FAILOVER_SWITCHES.spec.labels[0].admits(target.label()), "{target:?}");
    }
}

/// A series of `spec` with the first declared value of each label, recorded once.
fn record_one(spec: &Spec) {
    let labels: Vec<metrics::Label> = spec
        .labels
        .iter()
        .map(|l| metrics::Label::new(l.name, values(l).first().copied().unwrap_or("0")))
        .collect();
    let key = Key::from_parts(spec.name, labels);
    metrics::with_recorder(|r| match spec.kind {
        Kind::Counter => r.register_counter(&key, &METADATA).increment(1),
        Kind::Gauge => r.register_gauge(&key, &METADATA).set(1.0),
        Kind::Histogram => r.register_histogram(&key, &METADATA).record(0.3),
    });
}

#[test]
fn the_exporter_renders_every_metric_with_help_type_and_buckets() {
    let recorder = crate::admin::prometheus_recorder();
    let handle = recorder.handle();
    metrics::with_local_recorder(&recorder, || {
        describe_all();
        for spec in ALL {
            record_one(spec);
        }
        // Through the typed handles too: the same series, no other.
        SENDER_ATTEMPTS.with(["success"]).increment(1);
        ROUTER_DELIVERIES.get().increment(1);
        let attempts = SENDER_ATTEMPTS.series();
        attempts.of("gone").increment(3);
        attempts.of("gone").increment(1);
    });
    let text = handle.render();
    let lines: BTreeSet<&str> = text.lines().collect();
    for spec in ALL {
        let name = spec.name;
        assert!(lines.contains(format!("# HELP {name} {}", spec.help).as_str()), "{name}: no HELP in\n{text}");
        assert!(lines.contains(format!("# TYPE {name} {}", spec.kind.as_str()).as_str()), "{name}: no TYPE in\n{text}");
        if let Some(last) = spec.buckets.last() {
            assert!(text.contains(&format!("{name}_bucket{{")) && text.contains(&format!("le=\"{last}\"")), "{name}: buckets");
        }
    }
    let typed: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix("# TYPE ")?.split(' ').next()).collect();
    assert_eq!(typed.len(), ALL.len(), "one TYPE line per catalog metric:\n{text}");
    assert!(text.contains("hookline_sender_attempts_total{outcome=\"success\"} 2\n"), "{text}");
    assert!(text.contains("hookline_router_deliveries_total 2\n"), "{text}");
    assert!(text.contains("hookline_sender_attempts_total{outcome=\"gone\"} 4\n"), "a series' handle records to its own series:\n{text}");
}

#[test]
#[should_panic(expected = "a value metric_catalog does not declare")]
fn a_series_has_no_handle_for_an_undeclared_value() {
    let recorder = metrics::NoopRecorder;
    metrics::with_local_recorder(&recorder, || SENDER_ATTEMPTS.series().of("teapot").increment(1));
}

#[test]
#[cfg(debug_assertions)]
#[should_panic(expected = "a value metric_catalog does not declare")]
fn an_undeclared_label_value_fails_in_debug_builds() {
    let recorder = metrics::NoopRecorder;
    metrics::with_local_recorder(&recorder, || SENDER_ATTEMPTS.with(["teapot"]).increment(1));
}

/// The table of docs/architecture.md ("Health and metrics"): this catalog, row for row.
fn docs_table() -> String {
    let mut table = String::from("| metric | type | labels | meaning |\n|---|---|---|---|\n");
    for spec in ALL {
        let kind = match spec.buckets {
            [] => spec.kind.as_str().to_owned(),
            [first, .., last] => format!("histogram, {} to {}", duration(*first), duration(*last)),
            [only] => format!("histogram, {}", duration(*only)),
        };
        let labels: Vec<String> = spec
            .labels
            .iter()
            .map(|l| match l.values {
                Values::BoundedBy(what) => format!("`{}`: {what}", l.name),
                _ => format!("`{}` = {}", l.name, values(l).join(", ")),
            })
            .collect();
        table.push_str(&format!("| `{}` | {kind} | {} | {} |\n", spec.name, labels.join("; "), spec.help));
    }
    table
}

fn duration(seconds: f64) -> String {
    match seconds {
        s if s < 1.0 => format!("{} ms", (s * 1000.0).round()),
        s if s < 60.0 => format!("{s} s"),
        s if s < 3600.0 => format!("{} min", s / 60.0),
        s => format!("{} h", s / 3600.0),
    }
}

#[test]
fn the_docs_table_is_the_catalog() {
    let path = repo().join("docs/architecture.md");
    let doc = read(&path);
    let start = doc.find("| metric | type | labels | meaning |").expect("docs/architecture.md has the metrics table");
    let end = doc[start..].find("\n\n").map_or(doc.len(), |e| start + e + 1);
    let want = docs_table();
    assert!(doc[start..end] == want, "the metrics table of docs/architecture.md is not the catalog; it should read:\n\n{want}");
}

/// Every `hookline_...` word of `text`.
fn hookline_words(text: &str) -> Vec<&str> {
    let is_word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut words = Vec::new();
    let mut from = 0;
    while let Some(at) = text[from..].find("hookline_") {
        let start = from + at;
        let len = text[start..].find(|c: char| !is_word(c)).unwrap_or(text.len() - start);
        // `hookline_<role>_...`, `hookline_*_total`: a pattern in prose, not a name.
        if !text[..start].ends_with(is_word) && !text[..start + len].ends_with('_') {
            words.push(&text[start..start + len]);
        }
        from = start + len;
    }
    words
}

/// A name a query or a doc may use: a catalog metric, or a series of a histogram's.
/// `in_queries`: PromQL, where a histogram is only its `_bucket`, `_sum` and `_count`.
fn known(word: &str, in_queries: bool) -> bool {
    if let Some(spec) = spec(word) {
        return spec.kind != Kind::Histogram || !in_queries;
    }
    ["_bucket", "_sum", "_count"]
        .iter()
        .filter_map(|suffix| word.strip_suffix(suffix))
        .any(|base| spec(base).is_some_and(|s| s.kind == Kind::Histogram))
}

/// The workspace's crates (`RUST_LOG=hookline_sender=debug`): words, not metrics.
const CRATES: &[&str] = &[
    "hookline_core",
    "hookline_proto",
    "hookline_runtime",
    "hookline_router",
    "hookline_sender",
    "hookline_replay",
    "hookline_sink",
    "hookline_api",
];

#[test]
fn the_dashboard_alerts_and_docs_name_only_catalog_metrics() {
    let root = repo();
    let mut sources = files(&root.join("docs"), &[".md"]);
    sources.push(root.join("README.md"));
    sources.extend(files(&root.join("helm/hookline"), &[".md", ".json", ".yaml", ".tpl", ".txt"]));
    let mut unknown = Vec::new();
    let mut queried: BTreeSet<String> = BTreeSet::new();
    for path in &sources {
        let in_queries = path.extension().is_none_or(|e| e != "md");
        let text = read(path);
        for word in hookline_words(&text).into_iter().filter(|w| !CRATES.contains(w)) {
            if !known(word, in_queries) {
                unknown.push(format!("{}: {word}", path.strip_prefix(&root).unwrap_or(path).display()));
            } else if in_queries {
                queried.insert(word.to_owned());
            }
        }
    }
    assert!(unknown.is_empty(), "not in metric_catalog (or a histogram queried without _bucket/_sum/_count):\n{}", unknown.join("\n"));
    // The scan reads what it should: the dashboard queries the attempts and the lateness.
    for series in ["hookline_sender_attempts_total", "hookline_delivery_latency_seconds_bucket"] {
        assert!(queried.contains(series), "{series} not found in helm/hookline: scan broken?");
    }
}

/// Every Rust source file of the services but the catalog's own (and its tests), with its
/// path under `services/`.
fn code_outside_the_catalog() -> Vec<(PathBuf, String)> {
    let root = repo().join("services");
    files(&root, &[".rs"])
        .into_iter()
        .map(|path| (path.strip_prefix(&root).unwrap_or(&path).to_path_buf(), path))
        .filter(|(relative, _)| {
            !relative.starts_with("runtime/src/metric_catalog.rs") && !relative.starts_with("runtime/src/metric_catalog")
        })
        .map(|(relative, path)| (relative, read(&path)))
        .collect()
}

#[test]
fn metrics_are_recorded_only_through_the_catalog() {
    let mut offenders = Vec::new();
    for (relative, text) in code_outside_the_catalog() {
        for mac in ["counter!(", "gauge!(", "histogram!("] {
            if text.contains(mac) {
                offenders.push(format!("{}: {mac}", relative.display()));
            }
        }
        for word in hookline_words(&text) {
            if spec(word).is_some() && text.contains(&format!("\"{word}")) {
                offenders.push(format!("{}: \"{word}\"", relative.display()));
            }
        }
    }
    assert!(offenders.is_empty(), "record through metric_catalog, not a macro or a literal name:\n{}", offenders.join("\n"));
}

#[test]
fn every_declared_metric_is_recorded_somewhere() {
    // Each `pub static NAME: Kind<..> =` of the catalog must be named by some code
    // outside it: a declared metric nobody records is a dashboard panel that stays
    // empty (the sender's breakers gauge was once dropped in a refactor this way).
    let catalog = read(&repo().join("services/runtime/src/metric_catalog.rs"));
    let statics: Vec<&str> = catalog
        .lines()
        .filter_map(|line| line.trim_start().strip_prefix("pub static "))
        .filter_map(|rest| rest.split(':').next())
        .map(str::trim)
        .filter(|name| *name != "ALL")
        .collect();
    assert_eq!(statics.len(), ALL.len(), "one static per metric");
    let code: Vec<String> = code_outside_the_catalog().into_iter().map(|(_, text)| text).collect();
    let unused: Vec<&str> = statics
        .into_iter()
        .filter(|name| {
            // Named as a whole word (`NAME.with(..)`, `&metric_catalog::NAME`).
            let whole = |text: &str| {
                text.match_indices(name).any(|(at, _)| {
                    let before = text[..at].chars().next_back().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    let after = text[at + name.len()..].chars().next().is_none_or(|c| !(c.is_alphanumeric() || c == '_'));
                    before && after
                })
            };
            !code.iter().any(|text| whole(text))
        })
        .collect();
    assert!(unused.is_empty(), "declared in metric_catalog but recorded nowhere: {unused:?}");
}
