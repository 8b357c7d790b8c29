//! Medians, percentiles and formatting.

use std::time::Duration;

/// Sorted samples.
pub struct Samples(Vec<Duration>);

impl Samples {
    /// Sorts the raw samples.
    pub fn new(mut v: Vec<Duration>) -> Self {
        v.sort();
        Self(v)
    }

    /// The p-th quantile (0.5 = median).
    pub fn q(&self, p: f64) -> Duration {
        self.0[((self.0.len() as f64 - 1.0) * p).round() as usize]
    }

    /// Median.
    pub fn median(&self) -> Duration {
        self.q(0.5)
    }

    /// How many samples.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// 99th percentile.
    pub fn p99(&self) -> Duration {
        self.q(0.99)
    }
}

/// A duration in microseconds with one decimal.
pub fn us(d: Duration) -> String {
    format!("{:.1} µs", d.as_secs_f64() * 1e6)
}

/// A duration in milliseconds with two decimals.
pub fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1e3)
}
