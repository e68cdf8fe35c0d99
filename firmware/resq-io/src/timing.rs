//! Latency summaries, the one set of keys `resq bench` and `resq-fw bench` print.

use serde::Serialize;

/// Median, mean, min, max and 90th percentile of a set of times, in milliseconds
/// (JSON keys `median`, `mean`, `min`, `max`, `p90`).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct Stats {
    /// Middle value (mean of the two middle ones for an even count).
    pub median: f64,
    /// Arithmetic mean.
    pub mean: f64,
    /// Fastest.
    pub min: f64,
    /// Slowest.
    pub max: f64,
    /// 90th percentile (nearest rank).
    pub p90: f64,
}

impl Stats {
    /// The summary of `ms`; `None` when it is empty.
    pub fn of(ms: &[f64]) -> Option<Stats> {
        if ms.is_empty() {
            return None;
        }
        let mut v = ms.to_vec();
        v.sort_by(f64::total_cmp);
        let n = v.len();
        let median = if n % 2 == 1 {
            v[n / 2]
        } else {
            (v[n / 2 - 1] + v[n / 2]) / 2.0
        };
        let rank = ((n as f64 * 0.9).ceil() as usize).clamp(1, n);
        Some(Stats {
            median,
            mean: v.iter().sum::<f64>() / n as f64,
            min: v[0],
            max: v[n - 1],
            p90: v[rank - 1],
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summaries_of_known_sets() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!(
            (s.median, s.mean, s.min, s.max, s.p90),
            (2.0, 2.0, 1.0, 3.0, 3.0)
        );
        let ten: Vec<f64> = (1..=10).map(f64::from).collect();
        let s = Stats::of(&ten).unwrap();
        assert_eq!((s.median, s.p90), (5.5, 9.0));
    }
}
