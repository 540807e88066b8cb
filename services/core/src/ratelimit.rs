//! A token bucket: `rate` tokens a second, holding at most `burst`. Time is a parameter.

use std::time::{Duration, Instant};

#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket. `rate` must be positive; `burst` is at least 1.
    pub fn new(rate: f64, burst: f64, now: Instant) -> Self {
        let burst = burst.max(1.0);
        Self { rate: rate.max(f64::MIN_POSITIVE), burst, tokens: burst, last: now }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes one token, or says how long until one is there (nothing is taken then).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.refill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - self.tokens) / self.rate))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn burst_then_rate() {
        let t0 = Instant::now();
        let mut b = TokenBucket::new(10.0, 3.0, t0);
        for _ in 0..3 {
            assert_eq!(b.try_take(t0), Ok(()));
        }
        let wait = b.try_take(t0).expect_err("empty");
        assert!((wait.as_secs_f64() - 0.1).abs() < 1e-9, "{wait:?}");
        assert_eq!(b.try_take(t0 + Duration::from_millis(100)), Ok(()));
        assert!(b.try_take(t0 + Duration::from_millis(150)).is_err());
    }

    proptest! {
        /// Over any window, no more than burst + rate * window tokens are handed out.
        #[test]
        fn never_exceeds_the_rate(rate in 1.0f64..1000.0, burst in 1.0f64..50.0, steps in prop::collection::vec(0u64..50, 1..300)) {
            let t0 = Instant::now();
            let mut b = TokenBucket::new(rate, burst, t0);
            let mut now = t0;
            let mut taken = 0u64;
            for ms in steps {
                now += Duration::from_millis(ms);
                if b.try_take(now).is_ok() { taken += 1; }
            }
            let allowed = burst + rate * now.duration_since(t0).as_secs_f64();
            prop_assert!(taken as f64 <= allowed + 1e-6, "{taken} > {allowed}");
        }
    }
}
