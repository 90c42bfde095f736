//! The data-plane interface of the CN core. The core decides *what* the
//! kernel must look like (a station adopted here, a cell routed into the
//! tunnel to a peer, ...) and emits [`DataAction`]s; the daemon carries them
//! out through a [`DataPlane`] implementation. Keeping this boundary narrow
//! lets the mobility work swap tunnel backends without touching the core.

use crate::addr::{Cell30, MacAddr};
use std::fmt;
use std::net::Ipv4Addr;

/// A correspondent node as the network knows it: its CN address and its
/// CN-to-CN MLRP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CnAddr {
    pub ip: Ipv4Addr,
    pub port: u16,
}

impl fmt::Display for CnAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.port == crate::CN_PORT {
            write!(f, "{}", self.ip)
        } else {
            write!(f, "{}:{}", self.ip, self.port)
        }
    }
}

/// One change the data plane must make.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataAction {
    /// Serve the station here: N+2/32 on mobile_if, host route to N+1 on
    /// mobile_if, gratuitous/unicast ARP so the station's gateway entry
    /// points at this CN at once.
    AdoptLocal { mac: MacAddr, cell: Cell30 },
    /// Stop serving the station here (it moved on, its lease ended or it
    /// released): remove what `AdoptLocal` and `ReverseTunnel` installed.
    Withdraw { cell: Cell30 },
    /// As the station's parent: send N/30 into the tunnel to `peer`.
    RouteToPeer { cell: Cell30, peer: CnAddr },
    /// As the parent: stop routing N/30 to a peer (the station came home or
    /// is gone).
    RouteLocal { cell: Cell30 },
    /// Bring up (or reuse) the tunnel to `peer`.
    TunnelUp { peer: CnAddr },
    /// The last cell using the tunnel to `peer` is gone.
    TunnelDown { peer: CnAddr },
    /// Send traffic from the station (source N+1) back to its parent through
    /// the tunnel (`reverse_tunnel on`).
    ReverseTunnel { cell: Cell30, parent: CnAddr },
    /// Shared link, as the parent: the station left and its cell is routed
    /// to a peer. Answer ARP for N+1 on mobile_if with this CN's MAC (a
    /// tagged kernel proxy entry) and announce that at once (gratuitous
    /// ARP), so hosts on the link send to this CN instead of a MAC that
    /// left.
    ProxyArp { cell: Cell30 },
    /// Stop answering ARP for N+1 (the station is back, or gone).
    ProxyArpEnd { cell: Cell30 },
    /// Gratuitous ARP for N+1 on mobile_if: "N+1 is at `station_mac`" when
    /// the station is here (hosts' caches move back to it without waiting
    /// for expiry), "N+1 is at this CN" when `None` (a repeated proxy
    /// announcement).
    Announce {
        cell: Cell30,
        station_mac: Option<MacAddr>,
    },
}

impl fmt::Display for DataAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DataAction::AdoptLocal { mac, cell } => write!(f, "adopt {cell} ({mac}) locally"),
            DataAction::Withdraw { cell } => write!(f, "withdraw {cell}"),
            DataAction::RouteToPeer { cell, peer } => write!(f, "route {cell} to CN {peer}"),
            DataAction::RouteLocal { cell } => write!(f, "route {cell} locally"),
            DataAction::TunnelUp { peer } => write!(f, "tunnel up to CN {peer}"),
            DataAction::TunnelDown { peer } => write!(f, "tunnel down to CN {peer}"),
            DataAction::ReverseTunnel { cell, parent } => {
                write!(f, "reverse-tunnel {cell} to parent {parent}")
            }
            DataAction::ProxyArp { cell } => write!(f, "proxy ARP for {}", cell.station()),
            DataAction::ProxyArpEnd { cell } => {
                write!(f, "end proxy ARP for {}", cell.station())
            }
            DataAction::Announce { cell, station_mac } => match station_mac {
                Some(m) => write!(f, "announce {} at {m}", cell.station()),
                None => write!(f, "announce {} at this CN", cell.station()),
            },
        }
    }
}

/// Why the data plane could not do something (logged, survived).
#[derive(Debug)]
pub struct DataPlaneError(pub String);

impl fmt::Display for DataPlaneError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DataPlaneError {}

/// Carries out [`DataAction`]s on the system.
pub trait DataPlane {
    /// The tunnel backends available, in order of preference, with their
    /// capacity, for the start-up log.
    fn backends(&self) -> Vec<String>;
    /// Remove state tagged as this instance's that an earlier run left
    /// behind; returns a line per thing removed.
    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError>;
    /// Station addresses (N+1) of cells an earlier run left adopted here;
    /// read before [`DataPlane::purge_stale`] so a restarted CN can ask the
    /// MLR about them.
    fn leftover_stations(&mut self) -> Vec<std::net::Ipv4Addr> {
        Vec::new()
    }
    fn apply(&mut self, action: &DataAction) -> Result<(), DataPlaneError>;
    /// Remove everything this instance installed (TERM).
    fn remove_all(&mut self) -> Result<(), DataPlaneError>;
    /// Descriptors the daemon's poll loop must watch for reading (userspace
    /// tunnels forward packets themselves). Asked again every round.
    fn poll_fds(&self) -> Vec<std::os::fd::RawFd> {
        Vec::new()
    }
    /// One of [`DataPlane::poll_fds`] is readable; false if not ours.
    fn on_readable(&mut self, _fd: std::os::fd::RawFd) -> bool {
        false
    }
    /// Called about once a second by the daemon's timer (housekeeping,
    /// reports).
    fn tick(&mut self, _now: std::time::Instant) {}
    /// What the source guard dropped since it last reported, once per
    /// report (`None`: no guard, or nothing new).
    fn take_guard_drops(&mut self) -> Option<GuardDrops> {
        None
    }
}

/// What one reading of the source guard's drop counters found new:
/// `packets` IPv4 packets and `arp` ARP frames dropped since the reading
/// before, and the IPv4 offenders (source MAC and address) the kernel
/// noted in the last minute.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GuardDrops {
    pub packets: u64,
    pub arp: u64,
    pub offenders: Vec<(crate::addr::MacAddr, std::net::Ipv4Addr)>,
}

/// A data plane that only records and logs what it is asked to do. Used by
/// unit tests, and by the daemon for the parts no backend implements yet.
#[derive(Default)]
pub struct RecordingDataPlane {
    pub applied: Vec<DataAction>,
}

impl DataPlane for RecordingDataPlane {
    fn backends(&self) -> Vec<String> {
        vec!["Local delivery (no tunnel)".into()]
    }
    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        Ok(Vec::new())
    }
    fn apply(&mut self, action: &DataAction) -> Result<(), DataPlaneError> {
        log::debug!(target: "tunnel", "(recorded only) {action}");
        self.applied.push(action.clone());
        Ok(())
    }
    fn remove_all(&mut self) -> Result<(), DataPlaneError> {
        self.applied.clear();
        Ok(())
    }
}
