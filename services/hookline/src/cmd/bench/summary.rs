//! What a load generator reports: latency percentiles from a histogram, the CPU time the
//! generator itself used, and the JSON summary written to stdout and a file.

use serde_json::Value;
use std::path::Path;

pub type Histogram = hdrhistogram::Histogram<u64>;

/// Microseconds from 1 µs to an hour, three significant digits (0.1% error).
pub fn micros() -> Histogram {
    Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("static bounds are valid")
}

/// Records `d` in a histogram of microseconds (clamped to its bounds).
pub fn record(h: &mut Histogram, d: std::time::Duration) {
    let us = u64::try_from(d.as_micros()).unwrap_or(u64::MAX).clamp(1, h.high());
    h.saturating_record(us);
}

/// Count, p50, p95, p99 and max in milliseconds (to the microsecond) of a histogram of
/// microseconds; zeros when it is empty.
pub fn percentiles_ms(h: &Histogram) -> Value {
    let ms = |us: u64| us as f64 / 1000.0;
    serde_json::json!({
        "count": h.len(),
        "p50": ms(h.value_at_quantile(0.50)),
        "p95": ms(h.value_at_quantile(0.95)),
        "p99": ms(h.value_at_quantile(0.99)),
        "max": ms(h.max()),
    })
}

/// User plus system CPU seconds this process has used so far (Linux `/proc/self/stat`).
pub fn cpu_seconds() -> Option<f64> {
    cpu_seconds_of(&std::fs::read_to_string("/proc/self/stat").ok()?)
}

/// Fields 14 and 15 of a `/proc/<pid>/stat` line, in clock ticks of 1/100 s (USER_HZ, the
/// same on every Linux this runs on). The command name may hold spaces and parentheses:
/// the fields are counted after its last `)`.
fn cpu_seconds_of(stat: &str) -> Option<f64> {
    let rest = &stat[stat.rfind(')')? + 1..];
    let mut fields = rest.split_whitespace().skip(11);
    let utime: u64 = fields.next()?.parse().ok()?;
    let stime: u64 = fields.next()?.parse().ok()?;
    Some((utime + stime) as f64 / 100.0)
}

/// Prints `summary` as one JSON line and, with `file`, writes it there too (indented).
pub fn emit(summary: &Value, file: Option<&Path>) -> anyhow::Result<()> {
    println!("{summary}");
    if let Some(path) = file {
        std::fs::write(path, serde_json::to_vec_pretty(summary)?).map_err(|e| anyhow::anyhow!("--summary {}: {e}", path.display()))?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn percentiles_are_in_milliseconds() {
        let mut h = micros();
        for us in 1..=1000u64 {
            record(&mut h, Duration::from_micros(us * 10));
        }
        let p = percentiles_ms(&h);
        assert_eq!(p["count"], 1000);
        let near = |key: &str, want: f64| {
            let got = p[key].as_f64().expect("a number");
            assert!((got - want).abs() <= want * 0.002, "{key}: {got} is not about {want}");
        };
        near("p50", 5.0);
        near("p95", 9.5);
        near("p99", 9.9);
        near("max", 10.0);
    }

    #[test]
    fn an_empty_histogram_reports_zeros_and_extremes_are_clamped() {
        assert_eq!(percentiles_ms(&micros())["p99"], 0.0);
        let mut h = micros();
        record(&mut h, Duration::ZERO);
        record(&mut h, Duration::from_secs(7200));
        assert_eq!(h.min(), 1);
        assert!(h.max() >= 3_600_000_000);
    }

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "4242 (a (weird) name) S 1 4242 4242 0 -1 4194560 500 0 0 0 250 75 0 0 20 0 3 0 100 1000 50";
        assert_eq!(cpu_seconds_of(stat), Some(3.25));
        assert_eq!(cpu_seconds_of("garbage"), None);
        assert!(cpu_seconds().is_some_and(|s| s >= 0.0));
    }
}
