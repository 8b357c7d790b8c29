//! Operational metrics in CloudWatch Embedded Metric Format (EMF): the handlers count into
//! process-wide atomics ([`add`], [`observe_ms`]) and the Lambda shell prints one JSON line
//! after each invocation ([`flush`]), which CloudWatch Logs turns into metrics in the
//! namespace [`namespace`] with the dimension `Function`: no API call, no extra latency on the
//! request, nothing to configure in the function.
//!
//! Counting is a relaxed atomic add (a few nanoseconds), so the put path can count freely;
//! outside Lambda (`serve`, tests) nothing flushes and the counters only grow.
//!
//! The specification the line follows ("Specification: Embedded metric format", CloudWatch
//! user guide): a root object with `_aws.Timestamp` (milliseconds since the epoch) and
//! `_aws.CloudWatchMetrics` (directives naming a namespace, dimension sets and at most 100
//! metrics); every named dimension and metric is a member of the root object, a metric's value
//! a number or an array of at most 100 numbers.

use serde_json::{json, Map, Value};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

/// The namespace used when `CUBEWALK_METRICS_NAMESPACE` is unset.
pub const DEFAULT_NAMESPACE: &str = "CubeWalk";

/// Names the CloudWatch namespace the metrics go to (the template sets one per stack, so two
/// stacks in one account never add into each other's alarms).
pub const NAMESPACE_ENV: &str = "CUBEWALK_METRICS_NAMESPACE";

/// The dimension every metric carries: which function recorded it.
pub const DIMENSION: &str = "Function";

/// The `Function` dimension of what the blocks function records (alarms name it).
pub const BLOCKS_FUNCTION: &str = "blocks";

/// The `Function` dimension of what the publisher function records.
pub const PUBLISHER_FUNCTION: &str = "publisher";

/// Most values one metric may carry in one EMF line (the specification's limit): samples past
/// it in one flush are dropped, and counted in [`dropped_samples`]. A Lambda flushes after
/// every invocation, which records one or two store calls.
pub const MAX_VALUES: usize = 100;

/// The unit CloudWatch records for a metric.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    /// A count of events, summed per flush.
    Count,
    /// Durations in milliseconds, each sample kept (CloudWatch computes percentiles).
    Milliseconds,
}

impl Unit {
    /// The unit's name in EMF.
    pub const fn as_str(self) -> &'static str {
        match self {
            Unit::Count => "Count",
            Unit::Milliseconds => "Milliseconds",
        }
    }
}

/// One list makes the enum, its names and units, and [`Metric::ALL`]: nothing repeats it.
macro_rules! metrics {
    ($($(#[$doc:meta])* $variant:ident = $unit:ident,)*) => {
        /// A metric the backend records. The variant's name is the CloudWatch metric name
        /// (alarms and the dashboard in `server/template.yaml` name them too).
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub enum Metric {
            $($(#[$doc])* $variant,)*
        }

        impl Metric {
            /// Every metric, in declaration order (the order of the EMF line).
            pub const ALL: &'static [Metric] = &[$(Metric::$variant,)*];

            /// The CloudWatch metric name.
            pub const fn name(self) -> &'static str {
                match self {
                    $(Metric::$variant => stringify!($variant),)*
                }
            }

            /// The CloudWatch unit.
            pub const fn unit(self) -> Unit {
                match self {
                    $(Metric::$variant => Unit::$unit,)*
                }
            }
        }
    };
}

metrics! {
    /// Requests the blocks handler answered (any status).
    Requests = Count,
    /// Answers with a status of 500 or more.
    Errors5xx = Count,
    /// Chunks a put changed (an applied entry with a previous content).
    PutsApplied = Count,
    /// Check-and-set attempts that found the chunk changed and tried again.
    CasRetries = Count,
    /// Requests refused with 429 (a player over their limits).
    RateLimited = Count,
    /// Store calls that failed (answered 503).
    StoreErrors = Count,
    /// Time of each store call (fetch, apply edits), in milliseconds.
    StoreLatency = Milliseconds,
    /// Change messages the publisher sent to the broker.
    ChangesPublished = Count,
    /// Changes lost on the way to followers: a message the broker refused or that failed, a
    /// put's changes the feed or the local queue could not take. Followers see the gap in
    /// the chunk's write sequence and refetch; a steady count means realtime is degraded.
    ChangesDropped = Count,
    /// Puts refused because the world's memory budget is reached.
    StoreFull = Count,
}

/// What was recorded since the last flush. The process has one ([`add`], [`observe_ms`] and
/// [`flush`] use it); tests make their own, so parallel tests never read each other's counts.
pub struct Registry {
    /// One counter per metric (for a Milliseconds metric, the number of samples taken).
    counts: [AtomicU64; Metric::ALL.len()],
    /// The samples of the Milliseconds metrics, at most [`MAX_VALUES`] each.
    samples: Mutex<Vec<(Metric, f64)>>,
    /// Samples dropped because one flush already held [`MAX_VALUES`].
    dropped: AtomicU64,
}

impl Registry {
    /// An empty registry.
    pub const fn new() -> Self {
        Registry {
            counts: [const { AtomicU64::new(0) }; Metric::ALL.len()],
            samples: Mutex::new(Vec::new()),
            dropped: AtomicU64::new(0),
        }
    }

    /// Adds `n` to the count of `metric` (a Count metric; a Milliseconds metric takes
    /// samples through [`Registry::observe_ms`]).
    pub fn add(&self, metric: Metric, n: u64) {
        debug_assert_eq!(metric.unit(), Unit::Count, "{metric:?} takes samples");
        self.counts[metric as usize].fetch_add(n, Ordering::Relaxed);
    }

    /// Records one duration of `metric` (a Milliseconds metric), in milliseconds.
    pub fn observe_ms(&self, metric: Metric, ms: f64) {
        debug_assert_eq!(metric.unit(), Unit::Milliseconds, "{metric:?} is a count");
        let taken = self.counts[metric as usize].fetch_add(1, Ordering::Relaxed);
        if taken >= MAX_VALUES as u64 {
            self.dropped.fetch_add(1, Ordering::Relaxed);
            return;
        }
        // A panic elsewhere while holding the lock leaves a usable vector: take it anyway.
        let mut samples = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        samples.push((metric, ms));
    }

    /// Samples dropped so far because one flush already held [`MAX_VALUES`].
    pub fn dropped_samples(&self) -> u64 {
        self.dropped.load(Ordering::Relaxed)
    }

    /// Takes everything recorded (resetting it) and answers one EMF line in `namespace` for
    /// `function`, or `None` when nothing was recorded.
    pub fn flush(&self, namespace: &str, function: &str) -> Option<String> {
        let counts: Vec<(Metric, u64)> = Metric::ALL
            .iter()
            .map(|&m| (m, self.counts[m as usize].swap(0, Ordering::Relaxed)))
            .collect();
        let samples = std::mem::take(&mut *self.samples.lock().unwrap_or_else(|e| e.into_inner()));
        emf_line(namespace, function, now_ms(), &counts, &samples)
    }
}

impl Default for Registry {
    fn default() -> Self {
        Registry::new()
    }
}

/// The process's registry.
static GLOBAL: Registry = Registry::new();

/// Adds `n` to the process's count of `metric` (a Count metric).
pub fn add(metric: Metric, n: u64) {
    GLOBAL.add(metric, n);
}

/// Records one duration of `metric` (a Milliseconds metric), in milliseconds, for the process.
pub fn observe_ms(metric: Metric, ms: f64) {
    GLOBAL.observe_ms(metric, ms);
}

/// Runs `f` and records its duration as a sample of `metric`.
pub async fn time_ms<T>(metric: Metric, f: impl std::future::Future<Output = T>) -> T {
    let started = std::time::Instant::now();
    let out = f.await;
    observe_ms(metric, started.elapsed().as_secs_f64() * 1000.0);
    out
}

/// Samples the process dropped because one flush already held [`MAX_VALUES`].
pub fn dropped_samples() -> u64 {
    GLOBAL.dropped_samples()
}

/// The namespace from [`NAMESPACE_ENV`], else [`DEFAULT_NAMESPACE`].
pub fn namespace() -> String {
    std::env::var(NAMESPACE_ENV)
        .ok()
        .filter(|v| !v.trim().is_empty())
        .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned())
}

/// Takes everything recorded since the last flush (resetting it) and answers one EMF line
/// for `function` (the `Function` dimension's value), or `None` when nothing was recorded.
/// Only metrics with a non-zero count appear: a line never claims a measurement of zero
/// that no one made, and a quiet function prints nothing.
pub fn flush(function: &str) -> Option<String> {
    GLOBAL.flush(&namespace(), function)
}

/// Milliseconds since the Unix epoch, as EMF's `Timestamp` wants.
fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or_default()
}

/// The EMF line for `counts` (per metric: the count, or for a Milliseconds metric the number
/// of samples taken) and `samples`, or `None` when every count is zero.
fn emf_line(
    namespace: &str,
    function: &str,
    timestamp_ms: u64,
    counts: &[(Metric, u64)],
    samples: &[(Metric, f64)],
) -> Option<String> {
    let mut root = Map::new();
    let mut definitions = Vec::new();
    for &(metric, count) in counts {
        let value = match metric.unit() {
            Unit::Count if count > 0 => json!(count),
            Unit::Milliseconds => {
                let values: Vec<f64> = samples
                    .iter()
                    .filter(|(m, _)| *m == metric)
                    .map(|&(_, v)| v)
                    .take(MAX_VALUES)
                    .collect();
                if values.is_empty() {
                    continue;
                }
                json!(values)
            }
            Unit::Count => continue,
        };
        root.insert(metric.name().to_owned(), value);
        definitions.push(json!({ "Name": metric.name(), "Unit": metric.unit().as_str() }));
    }
    if definitions.is_empty() {
        return None;
    }
    root.insert(DIMENSION.to_owned(), json!(function));
    root.insert(
        "_aws".to_owned(),
        json!({
            "Timestamp": timestamp_ms,
            "CloudWatchMetrics": [{
                "Namespace": namespace,
                "Dimensions": [[DIMENSION]],
                "Metrics": definitions,
            }],
        }),
    );
    serde_json::to_string(&Value::Object(root)).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks `line` against the EMF specification's rules, answering the parsed root.
    fn assert_valid_emf(line: &str) -> Value {
        assert!(!line.contains('\n'), "one line: {line}");
        let root: Value = serde_json::from_str(line).expect("the line is JSON");
        let object = root.as_object().expect("the root is an object");
        let aws = object["_aws"].as_object().expect("_aws is an object");
        let timestamp = aws["Timestamp"].as_u64().expect("Timestamp is a number");
        // Milliseconds since the epoch: after 2020 and before 2100.
        assert!(
            (1_577_836_800_000..4_102_444_800_000).contains(&timestamp),
            "{timestamp} is not in milliseconds"
        );
        let directives = aws["CloudWatchMetrics"].as_array().expect("an array");
        assert!(!directives.is_empty());
        for directive in directives {
            let namespace = directive["Namespace"].as_str().expect("Namespace");
            assert!(!namespace.is_empty() && namespace.len() <= 255);
            for set in directive["Dimensions"].as_array().expect("Dimensions") {
                let set = set.as_array().expect("a dimension set is an array");
                assert!(!set.is_empty() && set.len() <= 30);
                for name in set {
                    let name = name.as_str().expect("dimension names are strings");
                    // A dimension refers to a member whose value is a string.
                    assert!(object[name].is_string(), "dimension {name} missing");
                }
            }
            let metrics = directive["Metrics"].as_array().expect("Metrics");
            assert!(!metrics.is_empty() && metrics.len() <= 100);
            for definition in metrics {
                let name = definition["Name"].as_str().expect("Name");
                let unit = definition["Unit"].as_str().expect("Unit");
                assert!(["Count", "Milliseconds"].contains(&unit), "{unit}");
                match &object[name] {
                    Value::Number(_) => {}
                    Value::Array(values) => {
                        assert!(!values.is_empty() && values.len() <= MAX_VALUES);
                        assert!(values.iter().all(Value::is_number), "{name}: {values:?}");
                    }
                    other => panic!("{name} has no numeric member: {other:?}"),
                }
            }
        }
        root
    }

    #[test]
    fn nothing_recorded_prints_nothing() {
        assert_eq!(emf_line("CubeWalk", "blocks", 1, &[], &[]), None);
        let zeros: Vec<(Metric, u64)> = Metric::ALL.iter().map(|&m| (m, 0)).collect();
        assert_eq!(emf_line("CubeWalk", "blocks", 1, &zeros, &[]), None);
    }

    #[test]
    fn a_line_is_valid_emf_with_counts_and_latency_samples() {
        let counts = [
            (Metric::Requests, 3),
            (Metric::Errors5xx, 0),
            (Metric::PutsApplied, 5),
            (Metric::StoreLatency, 2),
        ];
        let samples = [(Metric::StoreLatency, 1.5), (Metric::StoreLatency, 12.0)];
        let line = emf_line(
            "CubeWalk/test",
            "blocks",
            1_700_000_000_000,
            &counts,
            &samples,
        )
        .expect("a line");
        let root = assert_valid_emf(&line);
        assert_eq!(root["Requests"], 3);
        assert_eq!(root["PutsApplied"], 5);
        assert_eq!(root["StoreLatency"], json!([1.5, 12.0]));
        assert_eq!(root["Function"], "blocks");
        // A zero count is left out rather than reported as a measurement.
        assert!(root.get("Errors5xx").is_none());
        let directive = &root["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "CubeWalk/test");
        assert_eq!(directive["Dimensions"], json!([["Function"]]));
        assert_eq!(
            directive["Metrics"],
            json!([
                {"Name": "Requests", "Unit": "Count"},
                {"Name": "PutsApplied", "Unit": "Count"},
                {"Name": "StoreLatency", "Unit": "Milliseconds"},
            ])
        );
    }

    #[test]
    fn every_metric_at_once_fits_one_directive() {
        let counts: Vec<(Metric, u64)> = Metric::ALL.iter().map(|&m| (m, 1)).collect();
        let samples: Vec<(Metric, f64)> = (0..MAX_VALUES + 20)
            .map(|i| (Metric::StoreLatency, i as f64))
            .collect();
        let line = emf_line("CubeWalk", "blocks", now_ms(), &counts, &samples).unwrap();
        let root = assert_valid_emf(&line);
        let names: Vec<&str> = root["_aws"]["CloudWatchMetrics"][0]["Metrics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["Name"].as_str().unwrap())
            .collect();
        let all: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
        assert_eq!(names, all);
        assert_eq!(
            root["StoreLatency"].as_array().unwrap().len(),
            MAX_VALUES,
            "capped at the specification's limit"
        );
    }

    #[test]
    fn the_issues_metrics_are_all_defined_with_their_units() {
        for (name, unit) in [
            ("Requests", Unit::Count),
            ("Errors5xx", Unit::Count),
            ("PutsApplied", Unit::Count),
            ("CasRetries", Unit::Count),
            ("RateLimited", Unit::Count),
            ("StoreErrors", Unit::Count),
            ("StoreLatency", Unit::Milliseconds),
            ("ChangesPublished", Unit::Count),
            ("ChangesDropped", Unit::Count),
            ("StoreFull", Unit::Count),
        ] {
            let metric = Metric::ALL.iter().find(|m| m.name() == name);
            assert_eq!(metric.map(|m| m.unit()), Some(unit), "{name}");
        }
        assert!(Metric::ALL.len() <= 100);
    }

    #[test]
    fn flush_takes_what_was_recorded_and_resets() {
        let registry = Registry::new();
        assert_eq!(registry.flush("CubeWalk", "blocks"), None);
        registry.add(Metric::Requests, 2);
        registry.add(Metric::RateLimited, 1);
        registry.observe_ms(Metric::StoreLatency, 4.25);
        let line = registry.flush("CubeWalk", "blocks").expect("a line");
        let root = assert_valid_emf(&line);
        assert_eq!(root["Requests"], 2);
        assert_eq!(root["RateLimited"], 1);
        assert_eq!(root["StoreLatency"], json!([4.25]));
        assert_eq!(
            registry.flush("CubeWalk", "blocks"),
            None,
            "reset by the flush"
        );
        for _ in 0..MAX_VALUES + 3 {
            registry.observe_ms(Metric::StoreLatency, 1.0);
        }
        let root = assert_valid_emf(&registry.flush("CubeWalk", "blocks").unwrap());
        assert_eq!(root["StoreLatency"].as_array().unwrap().len(), MAX_VALUES);
        assert_eq!(registry.dropped_samples(), 3);
    }

    #[tokio::test]
    async fn the_process_registry_times_and_flushes() {
        // Other tests of this crate count into the process's registry too (the handlers):
        // only what this test alone records is checked exactly.
        time_ms(Metric::StoreLatency, async {}).await;
        add(Metric::StoreFull, 1);
        let root = assert_valid_emf(&flush("blocks").expect("a line"));
        assert!(root["StoreFull"].as_u64() >= Some(1));
        assert!(!root["StoreLatency"].as_array().unwrap().is_empty());
        assert!(namespace().starts_with(DEFAULT_NAMESPACE) || std::env::var(NAMESPACE_ENV).is_ok());
    }
}
