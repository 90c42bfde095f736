//! Rate-limited logging of refusals: a flood of hostile input (forged DHCP,
//! ARP spoofs, a cell draining the pools) must be said, counted and shown in
//! status, but must not write one log line per frame.
//!
//! A [`Throttle`] counts every refusal of one kind. The first is logged at
//! once; later ones at most once per interval, as one line with the number
//! refused since the previous line. A refusal that arrives while the
//! interval runs is not lost: [`Throttle::due`] (from the daemon's timer)
//! yields the count once the interval has passed, so the summary line
//! comes even when the flood stops.
//!
//! ```
//! use std::time::{Duration, Instant};
//! use tmip::throttle::Throttle;
//! let mut t = Throttle::new(Duration::from_secs(10));
//! let t0 = Instant::now();
//! assert_eq!(t.hit(t0), Some(1));                       // logged: "1 refused"
//! assert_eq!(t.hit(t0 + Duration::from_secs(1)), None); // counted only
//! assert_eq!(t.hit(t0 + Duration::from_secs(2)), None);
//! assert_eq!(t.due(t0 + Duration::from_secs(11)), Some(2)); // "2 more"
//! assert_eq!(t.total(), 3);
//! ```

use std::time::{Duration, Instant};

/// Interval used by the daemons' refusal logs.
pub const LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Counts refusals of one kind and says when a log line is due.
#[derive(Debug, Clone)]
pub struct Throttle {
    interval: Duration,
    total: u64,
    unlogged: u64,
    last_line: Option<Instant>,
}

impl Throttle {
    pub fn new(interval: Duration) -> Throttle {
        Throttle {
            interval,
            total: 0,
            unlogged: 0,
            last_line: None,
        }
    }

    /// Count one refusal. `Some(n)`: log a line now, for `n` refusals (this
    /// one and those not logged since the last line).
    pub fn hit(&mut self, now: Instant) -> Option<u64> {
        self.total += 1;
        self.unlogged += 1;
        self.due(now)
    }

    /// `Some(n)` when `n` refusals are unlogged and the interval since the
    /// last line has passed (call from a timer; also used by `hit`).
    pub fn due(&mut self, now: Instant) -> Option<u64> {
        if self.unlogged == 0 {
            return None;
        }
        if let Some(t) = self.last_line {
            if now.saturating_duration_since(t) < self.interval {
                return None;
            }
        }
        self.last_line = Some(now);
        Some(std::mem::take(&mut self.unlogged))
    }

    /// Refusals counted since start.
    pub fn total(&self) -> u64 {
        self.total
    }
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle::new(LOG_INTERVAL)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_gives_one_line_per_interval_with_its_count() {
        let t0 = Instant::now();
        let mut t = Throttle::new(Duration::from_secs(10));
        let mut lines = Vec::new();
        for ms in (0..25_000).step_by(10) {
            if let Some(n) = t.hit(t0 + Duration::from_millis(ms)) {
                lines.push(n);
            }
        }
        // At 0 s, 10 s and 20 s.
        assert_eq!(lines, vec![1, 1000, 1000]);
        assert_eq!(t.due(t0 + Duration::from_secs(29)), None);
        assert_eq!(t.due(t0 + Duration::from_secs(30)), Some(499));
        assert_eq!(t.due(t0 + Duration::from_secs(60)), None);
        assert_eq!(t.total(), 2500);
    }
}
