//! Latency statistics for benchmarks: robust summaries of repeated timings.

use std::time::Duration;

/// Summary of repeated latency measurements, in milliseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencyStats {
    pub median_ms: f64,
    pub p90_ms: f64,
    pub min_ms: f64,
    pub max_ms: f64,
    pub runs: usize,
}

impl LatencyStats {
    /// Summarise samples (NaN figures when empty).
    pub fn from_samples(samples: &[Duration]) -> Self {
        let mut ms: Vec<f64> = samples.iter().map(|d| d.as_secs_f64() * 1e3).collect();
        ms.sort_by(f64::total_cmp);
        let n = ms.len();
        if n == 0 {
            return LatencyStats {
                median_ms: f64::NAN,
                p90_ms: f64::NAN,
                min_ms: f64::NAN,
                max_ms: f64::NAN,
                runs: 0,
            };
        }
        let median = if n % 2 == 1 {
            ms[n / 2]
        } else {
            (ms[n / 2 - 1] + ms[n / 2]) / 2.0
        };
        let p90 = ms[((n as f64 * 0.9).ceil() as usize).clamp(1, n) - 1];
        LatencyStats {
            median_ms: median,
            p90_ms: p90,
            min_ms: ms[0],
            max_ms: ms[n - 1],
            runs: n,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_p90_min_max() {
        let s: Vec<Duration> = [5u64, 1, 4, 2, 3, 10, 6, 7, 9, 8]
            .iter()
            .map(|&v| Duration::from_millis(v))
            .collect();
        let st = LatencyStats::from_samples(&s);
        assert_eq!(st.median_ms, 5.5);
        assert_eq!(st.p90_ms, 9.0);
        assert_eq!(st.min_ms, 1.0);
        assert_eq!(st.max_ms, 10.0);
        assert_eq!(st.runs, 10);
        assert!(LatencyStats::from_samples(&[]).median_ms.is_nan());
    }
}
