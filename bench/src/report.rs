//! The report's pieces: a section, a goals-table row, and the interleaved A/B loop every
//! comparison uses.

use crate::stats::Samples;
use std::time::Duration;

/// A report section: its title, markdown body, and rows for the goals table.
pub(crate) struct Section {
    pub(crate) title: &'static str,
    pub(crate) body: String,
    pub(crate) goals: Vec<String>,
}

/// A goals-table row: what, the goal, the measured value, and whether it is met.
pub(crate) fn goal(what: &str, target: &str, value: f64, met: bool, unit: &str) -> String {
    let verdict = if met { "met" } else { "**missed**" };
    format!("| {what} | {target} | {value:.2}{unit} | {verdict} |")
}

/// Warm-up rounds run before any timing is kept.
pub(crate) const WARMUP_ROUNDS: usize = 200;

/// Runs `a` and `b` in turn for `rounds` measured rounds after [`WARMUP_ROUNDS`] of warm-up,
/// flipping which goes first each round so both see the same machine noise, and returns their
/// timings. Each closure is told whether its round is measured (for extra timings it keeps).
pub(crate) fn interleaved(
    rounds: usize,
    mut a: impl FnMut(bool) -> Duration,
    mut b: impl FnMut(bool) -> Duration,
) -> (Samples, Samples) {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    for round in 0..rounds + WARMUP_ROUNDS {
        let measured = round >= WARMUP_ROUNDS;
        let (x, y) = if round % 2 == 0 {
            let x = a(measured);
            (x, b(measured))
        } else {
            let y = b(measured);
            (a(measured), y)
        };
        if measured {
            ta.push(x);
            tb.push(y);
        }
    }
    (Samples::new(ta), Samples::new(tb))
}
