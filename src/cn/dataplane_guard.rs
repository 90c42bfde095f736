//! The source guard around any [`DataPlane`]: it follows the data plane's
//! station adoptions (a station is admitted to the guard's set when it is
//! adopted here, with the MAC the CN knows it by, and revoked when it is
//! withdrawn) and commits the [`SourceGuard`] batches over nf_tables. So
//! the guard holds exactly the stations whose host route this CN installed
//! (and, for `source_guard::LINGER_MS`, those that just left), whether they
//! got their lease here, roamed in, or were configured by hand.
//!
//! Start-up replaces a crashed run's tables in the same transaction that
//! creates the new ones; TERM removes them. The ip table is required (an
//! error at start-up); the arp table is best effort (kernels without the
//! nf_tables arp family get a warning).

use super::dataplane::{DataAction, DataPlane, DataPlaneError, GuardDrops};
use super::source_guard::{self, DropReport, SourceGuard, COUNTER, LINGER_MS, SPOOFERS};
use crate::addr::{Cell30, MacAddr};
use crate::netlink::nftables::{Family, NfTables};
use crate::netlink::NetlinkError;
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
use std::time::{Duration, Instant};

/// How often the drop counters are read (and a line logged if they grew).
pub const REPORT_EVERY: Duration = Duration::from_secs(5);

pub struct GuardedDataPlane<D: DataPlane> {
    inner: D,
    nft: NfTables,
    guard: SourceGuard,
    mobile_if: String,
    /// The arp table is installed.
    arp: bool,
    /// An earlier run's tables were replaced at start.
    replaced_stale: bool,
    /// Stations admitted: cell -> the MAC it was admitted with.
    admitted: Vec<(Cell30, MacAddr)>,
    /// Stations withdrawn lately, whose pair may still linger in the set
    /// (oldest first; kept so a new station on the cell replaces it).
    lingering: Vec<(Cell30, MacAddr)>,
    max_lingering: usize,
    report: DropReport,
    next_report: Option<Instant>,
    /// The latest reading that found drops, until the daemon takes it.
    drops: Option<GuardDrops>,
}

/// Removes `cell`'s entry from `list`, returning its MAC.
fn take(list: &mut Vec<(Cell30, MacAddr)>, cell: Cell30) -> Option<MacAddr> {
    let i = list.iter().position(|(c, _)| *c == cell)?;
    Some(list.remove(i).1)
}

fn err(what: &str, e: NetlinkError) -> DataPlaneError {
    DataPlaneError(format!("source guard: {what}: {e}"))
}

impl<D: DataPlane> GuardedDataPlane<D> {
    /// Installs the guard on `mobile_if` (ifindex `mobile_index`), with room
    /// for `max_stations`, in front of `inner`.
    pub fn open(
        inner: D,
        mobile_if: &str,
        mobile_index: u32,
        tunnel_prefix: &str,
        max_stations: usize,
    ) -> Result<Self, DataPlaneError> {
        let mut nft = NfTables::open().map_err(|e| err("nf_tables", e))?;
        let guard = SourceGuard::new(tunnel_prefix, mobile_index, max_stations as u32);
        let table = guard.table().to_string();
        let replaced_stale = [Family::Ip, Family::Arp]
            .iter()
            .any(|&f| nft.table_exists(f, &table).unwrap_or(false));
        // The stations an earlier run admitted keep passing while this run
        // takes them back (re-establish): they linger in the new table,
        // added in the same transaction that replaces the old one.
        let carried: Vec<(MacAddr, Ipv4Addr)> = if replaced_stale {
            nft.element_keys(Family::Ip, &table, source_guard::STATIONS)
                .unwrap_or_default()
                .iter()
                .filter_map(|k| source_guard::parse_key(k))
                .collect()
        } else {
            Vec::new()
        };
        let install = |nft: &mut NfTables, f: Family| {
            let mut b = nft.batch();
            guard.install(&mut b, f);
            for &(mac, ip) in &carried {
                guard.linger(&mut b, f, mac, ip, LINGER_MS);
            }
            nft.commit(b)
        };
        install(&mut nft, Family::Ip)
            .map_err(|e| err(&format!("cannot install table ip {table}"), e))?;
        if !carried.is_empty() {
            log::info!(target: "cn", "  source guard: {} station(s) of the earlier run admitted for {} s meanwhile", carried.len(), LINGER_MS / 1000);
        }
        let arp = match install(&mut nft, Family::Arp) {
            Ok(()) => true,
            Err(e) => {
                log::warn!(target: "cn", "source guard: no table arp {table} ({e}): ARP claiming a station's address is not dropped (kernel without nf_tables arp support)");
                false
            }
        };
        Ok(GuardedDataPlane {
            inner,
            nft,
            guard,
            mobile_if: mobile_if.to_string(),
            arp,
            replaced_stale,
            admitted: Vec::new(),
            lingering: Vec::new(),
            max_lingering: max_stations,
            report: DropReport::default(),
            next_report: None,
            drops: None,
        })
    }

    /// For the start-up log.
    pub fn describe(&self) -> String {
        let t = self.guard.table();
        let arp = if self.arp {
            format!(", arp {t}")
        } else {
            String::new()
        };
        format!(
            "Source guard (nftables table ip {t}{arp}: only admitted stations' MAC+IP pass from {})",
            self.mobile_if
        )
    }

    fn families(&self) -> &'static [Family] {
        if self.arp {
            &[Family::Ip, Family::Arp]
        } else {
            &[Family::Ip]
        }
    }

    fn admit(&mut self, mac: MacAddr, cell: Cell30) {
        let previous = [
            take(&mut self.admitted, cell),
            take(&mut self.lingering, cell),
        ];
        let ip = cell.station();
        let mut b = self.nft.batch();
        for &f in self.families() {
            // Another station on this /30 before: its pair goes now.
            for old in previous.iter().flatten().filter(|old| **old != mac) {
                self.guard.revoke(&mut b, f, *old, ip);
            }
            // The pair may still linger from an earlier stay here.
            self.guard.readmit(&mut b, f, mac, ip);
        }
        if let Err(e) = self.nft.commit(b) {
            log::warn!(target: "cn", "source guard: cannot admit {mac} as {ip}: {e}");
            return;
        }
        log::debug!(target: "cn", "source guard: {mac} admitted as {ip}");
        self.admitted.push((cell, mac));
    }

    /// The station left: its pair lingers (see `source_guard::LINGER_MS`).
    fn withdraw(&mut self, cell: Cell30) {
        let Some(mac) = take(&mut self.admitted, cell) else {
            return;
        };
        let ip = cell.station();
        let mut b = self.nft.batch();
        for &f in self.families() {
            self.guard.linger(&mut b, f, mac, ip, LINGER_MS);
        }
        if let Err(e) = self.nft.commit(b) {
            // No room to linger (set full): revoke at once.
            log::debug!(target: "cn", "source guard: {mac} as {ip} cannot linger ({e})");
            let mut b = self.nft.batch();
            for &f in self.families() {
                self.guard.revoke(&mut b, f, mac, ip);
            }
            if let Err(e) = self.nft.commit(b) {
                log::warn!(target: "cn", "source guard: cannot revoke {mac} as {ip}: {e}");
            }
            return;
        }
        log::debug!(target: "cn", "source guard: {mac} as {ip} lingers {LINGER_MS} ms");
        if self.lingering.len() >= self.max_lingering {
            self.lingering.remove(0); // expired in the kernel long ago
        }
        self.lingering.push((cell, mac));
    }

    fn read_counter(&mut self, family: Family) -> u64 {
        match self.nft.counter(family, self.guard.table(), COUNTER) {
            Ok(c) => c.packets,
            Err(e) => {
                log::debug!(target: "cn", "source guard: counter {}: {e}", family.name());
                0
            }
        }
    }

    fn report(&mut self) {
        let ip = self.read_counter(Family::Ip);
        let arp = if self.arp {
            self.read_counter(Family::Arp)
        } else {
            0
        };
        let (seen_ip, seen_arp) = self.report.totals();
        let offenders: Vec<(MacAddr, Ipv4Addr)> = if ip > seen_ip || arp > seen_arp {
            match self
                .nft
                .element_keys(Family::Ip, self.guard.table(), SPOOFERS)
            {
                Ok(keys) => keys
                    .iter()
                    .filter_map(|k| source_guard::parse_key(k))
                    .collect(),
                Err(e) => {
                    log::debug!(target: "cn", "source guard: set {SPOOFERS}: {e}");
                    Vec::new()
                }
            }
        } else {
            Vec::new()
        };
        if let Some(line) = self.report.update(&self.mobile_if, ip, arp, &offenders) {
            log::warn!(target: "cn", "{line}");
            let (packets, arp) = self.report.latest();
            self.drops = Some(GuardDrops {
                packets,
                arp,
                offenders,
            });
        }
    }
}

impl<D: DataPlane> DataPlane for GuardedDataPlane<D> {
    fn backends(&self) -> Vec<String> {
        self.inner.backends()
    }

    fn leftover_stations(&mut self) -> Vec<Ipv4Addr> {
        self.inner.leftover_stations()
    }

    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        let mut v = self.inner.purge_stale()?;
        if std::mem::take(&mut self.replaced_stale) {
            v.push(format!(
                "stale source guard table {} (replaced by a fresh one)",
                self.guard.table()
            ));
        }
        Ok(v)
    }

    fn apply(&mut self, action: &DataAction) -> Result<(), DataPlaneError> {
        match *action {
            // Admit before the host route and ARP go out: the station may
            // answer at once.
            DataAction::AdoptLocal { mac, cell } => {
                self.admit(mac, cell);
                self.inner.apply(action)
            }
            DataAction::Withdraw { cell } => {
                let r = self.inner.apply(action);
                self.withdraw(cell);
                r
            }
            _ => self.inner.apply(action),
        }
    }

    fn remove_all(&mut self) -> Result<(), DataPlaneError> {
        let r = self.inner.remove_all();
        let mut b = self.nft.batch();
        for &f in self.families() {
            self.guard.remove(&mut b, f);
        }
        self.admitted.clear();
        self.lingering.clear();
        self.nft
            .commit(b)
            .map_err(|e| err(&format!("cannot remove table {}", self.guard.table()), e))?;
        r
    }

    fn poll_fds(&self) -> Vec<RawFd> {
        self.inner.poll_fds()
    }

    fn on_readable(&mut self, fd: RawFd) -> bool {
        self.inner.on_readable(fd)
    }

    fn take_guard_drops(&mut self) -> Option<GuardDrops> {
        self.drops.take()
    }

    fn tick(&mut self, now: Instant) {
        self.inner.tick(now);
        match self.next_report {
            Some(t) if now < t => {}
            _ => {
                self.next_report = Some(now + REPORT_EVERY);
                self.report();
            }
        }
    }
}
