//! Admission of stations at a CN: how many new MACs a cell may bring in
//! per second (`new_station_rate`), and the refusal logs of the core's
//! station checks (spoofs, foreign RELEASE/DECLINE, relayed lookups, MLR
//! refusals), each written once per interval with its count.

use crate::addr::MacAddr;
use crate::log_throttle::LogThrottle;
use std::time::{Duration, Instant};

/// Rate limit on new station MACs per cell: a token bucket of
/// `rate` per second, four seconds' worth deep. MACs let through lately
/// (retransmitted DISCOVERs, the REQUEST after the OFFER) pass again free.
pub(super) struct NewStations {
    rate: u32,
    /// Thousandths of a token.
    milli: u64,
    last: Option<Instant>,
    recent: heapless::Deque<MacAddr, 64>,
}

impl NewStations {
    pub(super) fn new(rate: u32) -> NewStations {
        NewStations {
            rate,
            milli: u64::from(rate) * 4000,
            last: None,
            recent: heapless::Deque::new(),
        }
    }

    /// True if `mac` may ask for an address now (and counts it).
    pub(super) fn allow(&mut self, mac: MacAddr, now: Instant) -> bool {
        if self.rate == 0 || self.recent.iter().any(|m| *m == mac) {
            return true;
        }
        let cap = u64::from(self.rate) * 4000;
        if let Some(t) = self.last {
            let ms = now.saturating_duration_since(t).as_millis();
            let add = u64::try_from(ms)
                .unwrap_or(u64::MAX)
                .saturating_mul(u64::from(self.rate));
            self.milli = self.milli.saturating_add(add).min(cap);
        }
        self.last = Some(now);
        if self.milli < 1000 {
            return false;
        }
        self.milli -= 1000;
        if self.recent.is_full() {
            self.recent.pop_front();
        }
        let _ = self.recent.push_back(mac);
        true
    }
}

/// How often each kind of refusal is logged at most (then summed up).
pub(super) const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The refusal logs (one line per interval each, with the count).
pub(super) struct RefusalLogs {
    pub(super) spoof: LogThrottle,
    pub(super) release: LogThrottle,
    pub(super) new_station: LogThrottle,
    pub(super) relayed: LogThrottle,
    pub(super) mlr: LogThrottle,
    pub(super) decline: LogThrottle,
}

impl Default for RefusalLogs {
    fn default() -> Self {
        let t = LogThrottle::new(REFUSAL_LOG_INTERVAL);
        RefusalLogs {
            spoof: t.clone(),
            release: t.clone(),
            new_station: t.clone(),
            relayed: t.clone(),
            mlr: t.clone(),
            decline: t,
        }
    }
}
