//! The register pair of the bed ([`Options::backup_mlr`]) seen from the
//! outside: cut a register's host off the core without a word (no RST, no
//! FIN: its switch port goes dark), and watch the CNs' logs for the moment
//! each binds to a register. Used by `tests/mlr_failover.rs` and the
//! failover benchmark (`examples/failover_bench.rs`).
//!
//! [`Options::backup_mlr`]: crate::bed::Options::backup_mlr

use crate::bed::{Register, TestBed};
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// What a CN logs when it bound to the register at `reg`.
pub fn bound_line(reg: Ipv4Addr) -> String {
    format!("by MLR @ {reg}:6554")
}

/// When the CN whose terminal output is `out` says it bound to the
/// register at `reg` (in what it wrote past byte `since`); see
/// [`logged_at`].
pub fn bound_at(out: &Path, since: usize, reg: Ipv4Addr, wait: Duration) -> Option<Instant> {
    logged_at(out, since, &bound_line(reg), wait)
}

/// When `needle` shows up in the file `out` past byte `since`; polled
/// every 5 ms, so the time is at most ~5 ms late. `None` after `wait`.
pub fn logged_at(out: &Path, since: usize, needle: &str, wait: Duration) -> Option<Instant> {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        if logged_since(out, since, needle) {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

fn logged_since(out: &Path, since: usize, needle: &str) -> bool {
    let t = std::fs::read(out).unwrap_or_default();
    t.get(since..)
        .is_some_and(|t| String::from_utf8_lossy(t).contains(needle))
}

/// A watch over every CN's log for a line (a bind to one register, the
/// loss of one), started before the event that should cause it
/// ([`TestBed::watch_cn_logs`]).
pub struct LogWatch(JoinHandle<Vec<Option<Instant>>>);

impl LogWatch {
    /// For CN 1..=N in order: when it logged the line (`None`: not within
    /// the wait).
    pub fn join(self) -> Vec<Option<Instant>> {
        self.0.join().unwrap_or_default()
    }
}

impl TestBed {
    /// CN `k`'s terminal output so far, in bytes (a mark for [`bound_at`]).
    pub fn cn_log_len(&self, k: usize) -> usize {
        std::fs::metadata(&self.cn(k).log)
            .map(|m| m.len() as usize)
            .unwrap_or(0)
    }

    /// Watch CN 1..=N for a bind to the register at `reg` logged from now
    /// on, for up to `wait`.
    pub fn watch_binds(&self, reg: Ipv4Addr, wait: Duration) -> LogWatch {
        self.watch_cn_logs(&bound_line(reg), wait)
    }

    /// Watch CN 1..=N for `needle` in what they log from now on, for up to
    /// `wait`.
    pub fn watch_cn_logs(&self, needle: &str, wait: Duration) -> LogWatch {
        let needle = needle.to_string();
        let outs: Vec<(PathBuf, usize)> = (1..=self.cns.len())
            .map(|k| (self.cn(k).log.clone(), self.cn_log_len(k)))
            .collect();
        // All files in one loop: each CN's time is its own, not the time
        // the watch got round to it.
        LogWatch(std::thread::spawn(move || {
            let end = Instant::now() + wait;
            let mut at: Vec<Option<Instant>> = vec![None; outs.len()];
            while Instant::now() < end && at.iter().any(Option::is_none) {
                for ((f, since), t) in outs.iter().zip(at.iter_mut()) {
                    if t.is_none() && logged_since(f, *since, &needle) {
                        *t = Some(Instant::now());
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            at
        }))
    }

    /// Register `r`'s host vanishes from the core without a word: every
    /// packet in or out of its namespace is dropped (nftables, before
    /// anything else sees it), so nothing it sends arrives and nothing
    /// reaches it: no RST, no FIN, no ICMP. Its mlrd keeps running, its
    /// link stays up (the switch and the other hosts see no change).
    pub fn cut_register(&self, r: Register) {
        self.register_ns(r).sh("nft -f - <<'EOF'\n\
             table inet tmip_testbed_cut {\n\
               chain in { type filter hook prerouting priority -500; policy drop; }\n\
               chain out { type filter hook output priority -500; policy drop; }\n\
             }\n\
             EOF");
    }

    /// Undo [`TestBed::cut_register`]: the host is back on the core.
    pub fn mend_register(&self, r: Register) {
        self.register_ns(r)
            .sh("nft delete table inet tmip_testbed_cut");
    }

    fn register_ns(&self, r: Register) -> &crate::ns::Netns {
        match r {
            Register::Primary => &self.mlr,
            Register::Backup => self.mlrb.as_ref().expect("Options::backup_mlr"),
        }
    }
}
