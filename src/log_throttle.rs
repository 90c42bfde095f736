//! Warnings about refused peers, at a pace the operator chooses rather than
//! the attacker's: the first event of each interval is logged in full, the
//! rest are counted and summed up in one line when the interval is over.

use std::time::{Duration, Instant};

/// One kind of event to log at most once per interval (plus a summary).
#[derive(Debug, Clone)]
pub struct LogThrottle {
    interval: Duration,
    /// When the current interval began (its first event was logged).
    since: Option<Instant>,
    /// Events in the current interval that were not logged.
    suppressed: u64,
}

impl LogThrottle {
    pub fn new(interval: Duration) -> LogThrottle {
        LogThrottle {
            interval,
            since: None,
            suppressed: 0,
        }
    }

    /// Count one event. True: log it in full (the first of an interval).
    /// False: it was counted for the next [`LogThrottle::summary`].
    pub fn hit(&mut self, now: Instant) -> bool {
        match self.since {
            Some(t) if now.saturating_duration_since(t) < self.interval => {
                self.suppressed += 1;
                false
            }
            _ => {
                // A summary still owed is folded in by the caller's next
                // `summary` call; starting a new interval here would lose it.
                if self.suppressed > 0 {
                    self.suppressed += 1;
                    return false;
                }
                self.since = Some(now);
                true
            }
        }
    }

    /// Once an interval with unlogged events is over: how many there were
    /// (log them as one line), and a new interval starts. Call it from a
    /// periodic timer.
    pub fn summary(&mut self, now: Instant) -> Option<u64> {
        let t = self.since?;
        if now.saturating_duration_since(t) < self.interval {
            return None;
        }
        let n = std::mem::take(&mut self.suppressed);
        self.since = None;
        (n > 0).then_some(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn logs_the_first_of_each_interval_and_sums_up_the_rest() {
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let mut l = LogThrottle::new(Duration::from_secs(10));
        assert!(l.hit(t0));
        for i in 0..10_000 {
            assert!(!l.hit(t0 + s * (i % 9)));
        }
        assert_eq!(l.summary(t0 + s * 9), None, "interval not over");
        // Late events before the summary ran are still counted.
        assert!(!l.hit(t0 + s * 11));
        assert_eq!(l.summary(t0 + s * 12), Some(10_001));
        assert_eq!(l.summary(t0 + s * 30), None, "nothing owed");
        // A quiet interval: the next event is logged in full again.
        assert!(l.hit(t0 + s * 40));
        assert_eq!(l.summary(t0 + s * 60), None, "it was logged");
        assert!(l.hit(t0 + s * 61));
    }
}
