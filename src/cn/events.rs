//! What happened to stations and to the MLR link, as typed events for the
//! operator: the core ([`super::core::CnCore::poll_event`]) and the MLR
//! link's shell (`mlr_io.rs`) produce them; the ubus side
//! ([`super::ubus_object`]) sends them as ubus events (`ubus listen tmip`),
//! field by field as docs/TMIPD.md "ubus events" lists them.

use super::dataplane::CnAddr;
use crate::addr::{Cell30, MacAddr};
use std::fmt;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::Duration;

/// What revealed a station at this CN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    /// A DHCP request (DISCOVER, REQUEST, INFORM).
    Dhcp,
    /// A frame from it seen on the mobile interface (ARP, IP).
    Capture,
    /// hostapd reported it associated (control interface or ubus).
    Hostapd,
}

impl Arrival {
    pub fn as_str(self) -> &'static str {
        match self {
            Arrival::Dhcp => "dhcp",
            Arrival::Capture => "capture",
            Arrival::Hostapd => "hostapd",
        }
    }
}

/// Why a station (or a frame claiming to be one) was turned away. The
/// refusals of issue 8's defences are reported at most once per
/// interval per kind, as their log lines are (`admission.rs`), so a flood
/// does not become a flood on the bus.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RefuseReason {
    /// The station table holds `capacity` stations already (`max_clients`).
    TableFull { capacity: usize },
    /// A tunnel to the station's parent would exceed `max_peers`.
    PeerTableFull { parent: CnAddr },
    /// A DHCP message from this MAC named another station, `chaddr`, as
    /// its client, without a relay: dropped.
    SpoofChaddr { chaddr: MacAddr },
    /// A DHCP RELEASE from a MAC that does not hold the cell here.
    SpoofRelease,
    /// A DHCP DECLINE from a MAC that does not hold the address here.
    SpoofDecline,
    /// A frame (ARP or IPv4) from this MAC claimed `ip`, the address of
    /// station `owner` (`None`: a static client's claim the MLR does not
    /// grant): not believed.
    SpoofAddress {
        ip: Ipv4Addr,
        owner: Option<MacAddr>,
    },
    /// A new MAC over `new_station_rate` (new MACs per second).
    RateLimited { rate: u32 },
    /// A relayed DHCP message would have moved the station here.
    RelayedMove,
    /// The MLR: free cells are left only in other CNs' pools, which are at
    /// their `foreign_share`.
    Quota,
    /// The MLR: no free /30 in any pool.
    PoolExhausted,
    /// The MLR refused otherwise (or could not be asked).
    MlrRefused,
    /// The source guard dropped IPv4 packets from this MAC as `ip` (and
    /// counted `packets` IPv4 packets and `arp` ARP frames from the cell
    /// since its last report).
    SourceGuard {
        ip: Ipv4Addr,
        packets: u64,
        arp: u64,
    },
}

impl RefuseReason {
    /// The `reason` field: a fixed word scripts can match.
    pub fn as_str(self) -> &'static str {
        match self {
            RefuseReason::TableFull { .. } => "table_full",
            RefuseReason::PeerTableFull { .. } => "peer_table_full",
            RefuseReason::SpoofChaddr { .. } => "spoof_chaddr",
            RefuseReason::SpoofRelease => "spoof_release",
            RefuseReason::SpoofDecline => "spoof_decline",
            RefuseReason::SpoofAddress { .. } => "spoof_address",
            RefuseReason::RateLimited { .. } => "rate_limited",
            RefuseReason::RelayedMove => "relayed_move",
            RefuseReason::Quota => "quota",
            RefuseReason::PoolExhausted => "pool_exhausted",
            RefuseReason::MlrRefused => "mlr_refused",
            RefuseReason::SourceGuard { .. } => "source_guard",
        }
    }
}

/// Why a station stopped being served here.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DepartReason {
    /// The MLR withdrew it (it is at another CN; this CN is not its parent).
    Withdrawn,
    /// This CN is its parent and the MLR redirected its cell to another CN.
    Redirected,
    /// Its binding ran out and the MLR no longer places it here.
    Expired,
}

impl DepartReason {
    pub fn as_str(self) -> &'static str {
        match self {
            DepartReason::Withdrawn => "withdrawn",
            DepartReason::Redirected => "redirected",
            DepartReason::Expired => "expired",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CnEvent {
    /// A station not served here showed up; the MLR is being asked.
    Arrived {
        mac: MacAddr,
        ip: Option<Ipv4Addr>,
        how: Arrival,
    },
    /// The station is served here now (`parent` `None`: this CN is its parent).
    Adopted {
        mac: MacAddr,
        cell: Cell30,
        parent: Option<CnAddr>,
    },
    /// The station came from CN `from` to this CN (`to`); `interruption`
    /// is the time from what revealed it (`how`) to its adoption here.
    Handover {
        mac: MacAddr,
        cell: Cell30,
        from: CnAddr,
        to: CnAddr,
        parent: CnAddr,
        interruption: Duration,
        how: Arrival,
    },
    /// The station is no longer served here (`to`: where it went, if known).
    Departed {
        mac: MacAddr,
        cell: Cell30,
        to: Option<CnAddr>,
        why: DepartReason,
    },
    /// The station gave its address back (DHCP RELEASE).
    Released { mac: MacAddr, cell: Option<Cell30> },
    /// The station (`mac`: the sender of what was refused) was turned
    /// away.
    Refused {
        mac: MacAddr,
        cell: Option<Cell30>,
        reason: RefuseReason,
    },
    /// The MLR accepted this CN's bind (`again`: after a lost link).
    MlrUp { register: SocketAddrV4, again: bool },
    /// The MLR link is gone; it is retried in `retry_in`.
    MlrDown {
        register: SocketAddrV4,
        why: String,
        retry_in: Duration,
    },
    /// Bound to another register than the previous bind's.
    MlrFailover {
        from: SocketAddrV4,
        to: SocketAddrV4,
    },
}

impl CnEvent {
    /// The `event` field: one word per kind.
    pub fn kind(&self) -> &'static str {
        match self {
            CnEvent::Arrived { .. } => "arrived",
            CnEvent::Adopted { .. } => "adopted",
            CnEvent::Handover { .. } => "handover",
            CnEvent::Departed { .. } => "departed",
            CnEvent::Released { .. } => "released",
            CnEvent::Refused { .. } => "refused",
            CnEvent::MlrUp { .. } => "mlr_up",
            CnEvent::MlrDown { .. } => "mlr_down",
            CnEvent::MlrFailover { .. } => "mlr_failover",
        }
    }
}

/// Milliseconds with 0.1 ms resolution, as the events and the log give them.
pub fn millis(d: Duration) -> f64 {
    (d.as_secs_f64() * 10_000.0).round() / 10.0
}

impl fmt::Display for CnEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CnEvent::Arrived { mac, ip, how } => match ip {
                Some(ip) => write!(f, "{mac} ({ip}) arrived ({})", how.as_str()),
                None => write!(f, "{mac} arrived ({})", how.as_str()),
            },
            CnEvent::Adopted { mac, cell, parent } => match parent {
                Some(p) => write!(f, "{mac} ({cell}) adopted, parent {p}"),
                None => write!(f, "{mac} ({cell}) adopted, parent this CN"),
            },
            CnEvent::Handover {
                mac,
                cell,
                from,
                interruption,
                how,
                ..
            } => write!(
                f,
                "{mac} ({cell}) handed over from {from}: {:.1} ms ({})",
                millis(*interruption),
                how.as_str()
            ),
            CnEvent::Departed { mac, cell, why, .. } => {
                write!(f, "{mac} ({cell}) departed ({})", why.as_str())
            }
            CnEvent::Released { mac, .. } => write!(f, "{mac} released its address"),
            CnEvent::Refused { mac, reason, .. } => {
                write!(f, "{mac} refused ({})", reason.as_str())
            }
            CnEvent::MlrUp { register, .. } => write!(f, "MLR link up ({register})"),
            CnEvent::MlrDown { register, why, .. } => {
                write!(f, "MLR link down ({register}: {why})")
            }
            CnEvent::MlrFailover { from, to } => write!(f, "MLR failover {from} -> {to}"),
        }
    }
}
