//! Per-minute delivery counts and latency for the last hour, per endpoint and for the whole
//! pipeline, kept as the attempts arrive (the console's charts). Memory is bounded: one
//! bucket per minute that had attempts, at most [`MINUTES`] of them, each with a fixed-size
//! latency histogram. Pure: times are passed in.

use std::collections::VecDeque;

/// Minutes kept.
pub const MINUTES: usize = 60;
const MINUTE_MS: i64 = 60_000;
/// Upper bounds (ms) of the latency histogram's buckets; a last one holds everything above.
const BOUNDS_MS: [u32; 15] = [1, 2, 5, 10, 20, 50, 100, 200, 500, 1_000, 2_000, 5_000, 10_000, 20_000, 30_000];

#[derive(Debug, Clone, Default, PartialEq)]
struct Bucket {
    minute: i64,
    successes: u32,
    failures: u32,
    latency: [u32; BOUNDS_MS.len() + 1],
}

/// One minute as the API shows it.
#[derive(Debug, Clone, PartialEq)]
pub struct Point {
    pub start_ms: i64,
    pub successes: u32,
    pub failures: u32,
    /// Upper bounds of the histogram bucket holding the 50th and 99th percentile.
    pub p50_ms: Option<u32>,
    pub p99_ms: Option<u32>,
}

#[derive(Debug, Clone, Default)]
pub struct Series {
    buckets: VecDeque<Bucket>,
}

impl Series {
    /// Counts one real attempt (not a deferral) made at `at_ms`. Attempts older than the
    /// oldest minute kept are ignored; a late one lands in its own minute.
    pub fn record(&mut self, at_ms: i64, success: bool, latency_ms: u32) {
        let minute = at_ms.div_euclid(MINUTE_MS);
        let bucket = match self.buckets.iter().rposition(|b| b.minute <= minute) {
            Some(i) if self.buckets[i].minute == minute => &mut self.buckets[i],
            found => {
                let at = found.map_or(0, |i| i + 1);
                if at == 0 && self.buckets.len() == MINUTES {
                    return;
                }
                self.buckets.insert(at, Bucket { minute, ..Default::default() });
                if self.buckets.len() > MINUTES {
                    self.buckets.pop_front();
                }
                let at = self.buckets.iter().position(|b| b.minute == minute).expect("just inserted");
                &mut self.buckets[at]
            }
        };
        if success {
            bucket.successes += 1;
        } else {
            bucket.failures += 1;
        }
        let slot = BOUNDS_MS.iter().position(|b| latency_ms <= *b).unwrap_or(BOUNDS_MS.len());
        bucket.latency[slot] += 1;
    }

    /// The last `minutes` minutes before `now_ms`, oldest first, with empty minutes filled in.
    pub fn points(&self, now_ms: i64, minutes: usize) -> Vec<Point> {
        let last = now_ms.div_euclid(MINUTE_MS);
        let first = last - minutes.min(MINUTES) as i64 + 1;
        (first..=last)
            .map(|minute| match self.buckets.iter().find(|b| b.minute == minute) {
                Some(b) => Point {
                    start_ms: minute * MINUTE_MS,
                    successes: b.successes,
                    failures: b.failures,
                    p50_ms: percentile(&b.latency, 50),
                    p99_ms: percentile(&b.latency, 99),
                },
                None => Point { start_ms: minute * MINUTE_MS, successes: 0, failures: 0, p50_ms: None, p99_ms: None },
            })
            .collect()
    }
}

/// The upper bound of the bucket holding the `p`th percentile (the last bucket reports the
/// last bound: "above 30 s" reads as 30 s).
fn percentile(histogram: &[u32], p: u64) -> Option<u32> {
    let total: u64 = histogram.iter().map(|n| u64::from(*n)).sum();
    if total == 0 {
        return None;
    }
    let rank = (total * p).div_ceil(100).max(1);
    let mut seen = 0;
    for (i, n) in histogram.iter().enumerate() {
        seen += u64::from(*n);
        if seen >= rank {
            return Some(BOUNDS_MS[i.min(BOUNDS_MS.len() - 1)]);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn minutes_count_and_percentiles() {
        let mut s = Series::default();
        for i in 0..99 {
            s.record(60_000 + i, true, 3);
        }
        s.record(60_500, false, 900);
        s.record(120_000, true, 40);
        let points = s.points(150_000, 3);
        assert_eq!(points.iter().map(|p| p.start_ms).collect::<Vec<_>>(), [0, 60_000, 120_000]);
        assert_eq!((points[0].successes, points[0].p50_ms), (0, None));
        assert_eq!((points[1].successes, points[1].failures), (99, 1));
        assert_eq!((points[1].p50_ms, points[1].p99_ms), (Some(5), Some(5)));
        assert_eq!(points[2].p99_ms, Some(50));
    }

    #[test]
    fn late_attempts_land_in_their_minute_and_old_ones_go() {
        let mut s = Series::default();
        s.record(5 * 60_000, true, 1);
        s.record(3 * 60_000, true, 1);
        s.record(4 * 60_000, true, 1);
        let starts: Vec<i64> = s.buckets.iter().map(|b| b.minute).collect();
        assert_eq!(starts, [3, 4, 5]);
        for m in 6..70 {
            s.record(m * 60_000, false, 1);
        }
        assert_eq!(s.buckets.len(), MINUTES);
        assert_eq!(s.buckets.front().map(|b| b.minute), Some(10));
        s.record(60_000, true, 1);
        assert_eq!(s.buckets.front().map(|b| b.minute), Some(10), "older than everything kept: ignored");
    }

    proptest! {
        /// Whatever order attempts come in, every one inside the window is counted once, and
        /// the buckets stay sorted and bounded.
        #[test]
        fn counts_add_up(ats in proptest::collection::vec(0i64..(MINUTES as i64 * 60_000), 0..300)) {
            let mut s = Series::default();
            for at in &ats {
                s.record(*at, true, 7);
            }
            let now = MINUTES as i64 * 60_000 - 1;
            let total: u32 = s.points(now, MINUTES).iter().map(|p| p.successes).sum();
            prop_assert_eq!(total as usize, ats.len());
            prop_assert!(s.buckets.iter().zip(s.buckets.iter().skip(1)).all(|(a, b)| a.minute < b.minute));
        }
    }
}
