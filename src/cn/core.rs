//! The correspondent node's state machine, without I/O. It takes events
//! (a DHCP lookup, an MLR reply, a redirect pushed by the MLR or a peer, the
//! MLR link going up or down, time) and queues outputs: MLRP calls to make,
//! data-plane actions to carry out, DHCP answers to give. The daemon turns
//! sockets into events and outputs into I/O.
//!
//! The core speaks its own small vocabulary ([`MlrCall`], [`MlrAnswer`]) so
//! the MLRP codec can evolve behind the daemon's translation layer.
//!
//! Stations are untrusted (docs/SECURITY.md). The core therefore:
//! - never moves a station on a claim by someone else: a frame whose
//!   source IP is a station's address here but whose source MAC is not
//!   that station's is a spoof, logged and not believed
//!   ([`CnCore::station_seen`]); a relayed DHCP lookup never moves a
//!   station bound at another CN;
//! - honours a RELEASE only for the station served here that holds that
//!   cell ([`CnCore::station_released`]);
//! - asks the MLR for an *offer* on DISCOVER (a /30 held briefly, bound only
//!   by the REQUEST's Commit), and lets at most `new_station_rate` new MACs
//!   per second (burst of four seconds' worth) ask for one.
//!
//! Each refusal is counted ([`Counters`], shown in status) and logged at
//! at most once per interval ([`crate::log_throttle::LogThrottle`]), then as
//! one line with the count.

use super::admission::{NewStations, RefusalLogs};
use super::dataplane::{CnAddr, DataAction};
use super::events::{millis, Arrival, CnEvent, DepartReason, RefuseReason};
use super::stations::{PeerTable, Station, StationTable, Whereabouts};
use crate::addr::{Cell30, MacAddr};
use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// A station binding as the MLR reports it, in the core's terms (CN addresses,
/// `None` for an offer); `translate` makes it from the wire's `mlrp::Binding`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StationBinding {
    pub mac: MacAddr,
    pub cell: Cell30,
    pub parent: CnAddr,
    /// `None` for an offer: a /30 held for the station, not yet bound.
    pub at: Option<CnAddr>,
    pub previous: Option<CnAddr>,
    pub lease_secs: u32,
}

/// What the DHCP server asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// May create a binding (DISCOVER/REQUEST from an unknown MAC).
    Allocate,
    /// Only an existing binding (REQUEST for an address, INFORM).
    Locate,
}

/// A call the core wants made to the MLR.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlrCall {
    Allocate {
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
    },
    /// DHCP DISCOVER: hold a /30 for `mac` briefly (its binding, if it has one).
    Offer {
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
    },
    /// DHCP REQUEST: bind the /30 held for (or bound to) `mac` for the lease.
    Commit {
        mac: MacAddr,
        cell: Cell30,
    },
    LocateMac {
        mac: MacAddr,
    },
    LocateIp {
        ip: Ipv4Addr,
    },
    Move {
        mac: MacAddr,
        cell: Cell30,
    },
    Release {
        mac: MacAddr,
        cell: Cell30,
    },
    ListCns,
}

/// The MLR's answer to an [`MlrCall`], as the core needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlrAnswer {
    Binding(StationBinding),
    NotFound,
    CnList(Vec<(CnAddr, String)>),
    Ack,
    /// The MLR refused the request with `code`.
    Refused {
        code: crate::mlrp::ErrorCode,
        text: String,
    },
    /// The request got no answer (link lost, unexpected reply).
    Error(String),
}

/// Why the core could not carry out a redirect or take a station: the
/// shell picks the MLRP refusal code from the variant
/// ([`CoreError::is_table_full`]), never from the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CoreError {
    /// The station table holds `capacity` stations already.
    StationTableFull { capacity: usize, cell: Cell30 },
    /// No room for a tunnel to one more peer CN.
    PeerTableFull { mac: MacAddr, peer: CnAddr },
    /// A redirect named a cell with no station this CN knows.
    UnknownStation { cell: Cell30 },
}

impl CoreError {
    /// A table is full (as opposed to a request naming something unknown).
    pub fn is_table_full(&self) -> bool {
        matches!(
            self,
            CoreError::StationTableFull { .. } | CoreError::PeerTableFull { .. }
        )
    }
}

impl std::fmt::Display for CoreError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CoreError::StationTableFull { capacity, cell } => {
                write!(
                    f,
                    "station table full ({capacity} stations): refusing {cell}"
                )
            }
            CoreError::PeerTableFull { mac, peer } => {
                write!(f, "peer table full: cannot tunnel {mac} to parent {peer}")
            }
            CoreError::UnknownStation { cell } => {
                write!(f, "redirect of {cell}: station unknown here")
            }
        }
    }
}

impl std::error::Error for CoreError {}

/// The address handed to a DHCP client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub cell: Cell30,
    pub lease_secs: u32,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Output {
    /// Send `call` to the MLR; hand the answer back with `tag`.
    Mlr {
        tag: u64,
        call: MlrCall,
    },
    Data(DataAction),
    /// Answer the DHCP server's lookup for `mac`.
    Dhcp {
        mac: MacAddr,
        result: Result<Lease, LookupFailure>,
    },
}

/// Why a DHCP lookup has no lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupFailure {
    /// The MLR has no binding for the MAC (a REQUEST gets a NAK).
    NotFound,
    /// No answer now (MLR unreachable, table full, pool empty): stay silent.
    Unavailable(String),
}

/// Why a call was made, so its answer can be acted on.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Purpose {
    Dhcp {
        mac: MacAddr,
        seen: Instant,
        /// Came through a DHCP relay: must not move a station.
        relayed: bool,
        /// An `Offer` (DISCOVER): a binding without `at` is only held.
        offer: bool,
    },
    Move,
    Release,
    ListCns,
    Reestablish,
    /// Locate of a station seen here (by capture) at `seen`.
    Locate {
        seen: Instant,
    },
    /// Locate by MAC of a source seen on a shared link with an address
    /// that cannot be a static client's: unknown at the MLR means it is one
    /// of the link's ordinary hosts.
    LocateHost {
        mac: MacAddr,
    },
    /// A station's binding ran out here: is it still valid at the MLR?
    Revalidate {
        mac: MacAddr,
    },
    /// Locate by MAC of a station seen with source `ip` (capture): if the
    /// MLR does not know it, it may be a statically configured client.
    LocateSeen {
        mac: MacAddr,
        ip: Ipv4Addr,
        seen: Instant,
    },
    /// Locate by MAC of a station hostapd reported associated here (before
    /// it sent anything); `seen` is when the event arrived.
    Associated {
        mac: MacAddr,
        seen: Instant,
    },
    /// Allocate the /30 a static client already uses (N+1 = `ip`).
    StaticAllocate {
        ip: Ipv4Addr,
        seen: Instant,
    },
}

/// How long an expired station is kept while the MLR is asked about it,
/// or while the MLR is unreachable.
const REVALIDATE_GRACE: Duration = Duration::from_secs(30);

/// Settings the core needs.
#[derive(Debug, Clone)]
pub struct CoreConfig {
    pub me: CnAddr,
    pub reverse_tunnel: bool,
    pub max_stations: usize,
    pub max_peers: usize,
    /// Lease used for stations served from the local table while the MLR is
    /// unreachable, and stated in OFFERs.
    pub fallback_lease_secs: u32,
    /// New MACs per second that may ask for an address (`new_station_rate`;
    /// 0 = no limit).
    pub new_station_rate: u32,
    /// mobile_if is shared with hosts that are not stations (see
    /// `cn::link_mode`): this CN answers ARP for its stations that left
    /// and announces every station's address when it arrives.
    pub shared_link: bool,
}

/// A gratuitous ARP repeated once [`ANNOUNCE_AGAIN`] later (RFC 5227 sends
/// two): a host that updated its entry for N+1 within its `locktime`
/// (1 s by default) ignores the first one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Announcement {
    cell: Cell30,
    /// The station's MAC (it is here), or `None` for this CN's (proxy).
    station_mac: Option<MacAddr>,
    due: Instant,
}

/// When the second gratuitous ARP goes out (at the next tick after this).
const ANNOUNCE_AGAIN: Duration = Duration::from_secs(1);

/// On a shared link, a source the MLR does not know (a server, a printer,
/// a router: not a station) is not looked up again for this long, so the
/// link's ordinary traffic does not become a stream of MLR lookups. DHCP
/// and hostapd events for the MAC end the hold at once.
const NOT_A_STATION_HOLD: Duration = Duration::from_secs(10);

/// Counters for `status`.
#[derive(Debug, Default, Clone, Copy)]
pub struct Counters {
    pub lookups: u64,
    pub refused_full: u64,
    pub adoptions: u64,
    pub redirects: u64,
    pub withdrawals: u64,
    pub mlr_errors: u64,
    /// DHCP messages whose `chaddr` was not their sender (set from the
    /// DHCP server's count by the daemon).
    pub dhcp_forged: u64,
    /// Frames whose source IP is a station's here but whose MAC is not its.
    pub spoofs_refused: u64,
    /// DHCP RELEASEs and DECLINEs for a station or cell not held by that
    /// MAC here.
    pub releases_refused: u64,
    /// DECLINEs from the holder (an address conflict on the link).
    pub declines: u64,
    /// New MACs turned away by `new_station_rate`.
    pub new_stations_limited: u64,
    /// Relayed DHCP lookups that would have moved a station.
    pub relayed_refused: u64,
    /// DHCP lookups the MLR refused (pools exhausted, quota, table full).
    pub mlr_refused: u64,
}

pub struct CnCore {
    cfg: CoreConfig,
    stations: StationTable,
    peers: PeerTable,
    out: VecDeque<Output>,
    pending: HashMap<u64, Purpose>,
    next_tag: u64,
    /// Re-establish lookups still unanswered, and stations taken back so far.
    reestablish: Option<(usize, usize)>,
    mlr_up: bool,
    pub counters: Counters,
    /// Stations that sent a DHCP RELEASE lately, and when.
    released: heapless::Vec<(MacAddr, Instant), 16>,
    /// The latest time the core was given (events without one use it).
    now: Instant,
    /// Stations hostapd reported while the MLR was unreachable: looked up
    /// once it is back (hostapd will not report them again).
    associated_offline: heapless::Vec<MacAddr, 16>,
    /// Stations seen by their frames while the MLR was unreachable, or
    /// whose lookup the lost link never answered (the latest 16): looked
    /// up once the MLR is bound again. A client moved during a failover
    /// may otherwise say nothing more until its TCP's next backed-off
    /// retransmission, seconds later.
    seen_offline: heapless::Vec<(MacAddr, Ipv4Addr, Instant), 16>,
    /// Stations that stopped being served here since the daemon last asked
    /// ([`CnCore::take_departed`]); the latest 64.
    departed: heapless::Vec<MacAddr, 64>,
    /// Events for the operator ([`CnCore::poll_event`]); the latest
    /// [`MAX_EVENTS`] when nobody takes them.
    events: VecDeque<CnEvent>,
    /// The latest handovers to this CN (for the status page's timeline).
    handovers: VecDeque<HandoverRecord>,
    new_stations: NewStations,
    refusals: RefusalLogs,
    /// Second gratuitous ARPs still to send (shared link); the latest 32.
    announce_again: heapless::Vec<Announcement, 32>,
    /// Shared link: sources the MLR did not know, and since when (see
    /// [`NOT_A_STATION_HOLD`]); the latest 64.
    not_stations: heapless::Vec<(MacAddr, Instant), 64>,
}

/// One handover to this CN, as the status keeps it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoverRecord {
    pub at: Instant,
    pub mac: MacAddr,
    pub from: CnAddr,
    pub interruption: Duration,
}

/// Handovers kept for the status.
pub const MAX_HANDOVERS: usize = 32;

/// Events kept when the shell does not take them.
const MAX_EVENTS: usize = 256;

/// After a RELEASE, frames from the station are not taken as an arrival
/// for this long (they may have been sent before the release).
const RELEASE_HOLDOFF: Duration = Duration::from_secs(5);

impl CnCore {
    pub fn new(cfg: CoreConfig) -> Self {
        let rate = cfg.new_station_rate;
        CnCore {
            stations: StationTable::new(cfg.max_stations),
            peers: PeerTable::new(cfg.max_peers),
            cfg,
            out: VecDeque::new(),
            pending: HashMap::new(),
            next_tag: 1,
            reestablish: None,
            mlr_up: false,
            counters: Counters::default(),
            released: heapless::Vec::new(),
            now: Instant::now(),
            associated_offline: heapless::Vec::new(),
            seen_offline: heapless::Vec::new(),
            departed: heapless::Vec::new(),
            events: VecDeque::new(),
            handovers: VecDeque::new(),
            new_stations: NewStations::new(rate),
            refusals: RefusalLogs::default(),
            announce_again: heapless::Vec::new(),
            not_stations: heapless::Vec::new(),
        }
    }

    pub fn me(&self) -> CnAddr {
        self.cfg.me
    }
    pub fn stations(&self) -> &StationTable {
        &self.stations
    }
    pub fn peers(&self) -> &PeerTable {
        &self.peers
    }
    pub fn mlr_up(&self) -> bool {
        self.mlr_up
    }
    /// The settings in force.
    pub fn config(&self) -> &CoreConfig {
        &self.cfg
    }

    /// New settings from a HUP. The tables and the admission were sized
    /// from `max_stations`, `max_peers` and `new_station_rate` at start,
    /// which are restart-only keys (`config::tmipd::TABLE`), so a reload
    /// brings them unchanged.
    pub fn reconfigure(&mut self, cfg: CoreConfig) {
        debug_assert_eq!(
            (
                cfg.me,
                cfg.max_stations,
                cfg.max_peers,
                cfg.new_station_rate
            ),
            (
                self.cfg.me,
                self.cfg.max_stations,
                self.cfg.max_peers,
                self.cfg.new_station_rate
            ),
            "restart-only settings changed by a reload"
        );
        self.cfg = cfg;
    }

    /// Next output to carry out.
    pub fn poll_output(&mut self) -> Option<Output> {
        self.out.pop_front()
    }

    /// Next event for the operator (ubus events, the log).
    pub fn poll_event(&mut self) -> Option<CnEvent> {
        self.events.pop_front()
    }

    /// The latest handovers to this CN, oldest first.
    pub fn handovers(&self) -> impl Iterator<Item = &HandoverRecord> {
        self.handovers.iter()
    }

    fn event(&mut self, e: CnEvent) {
        if let CnEvent::Handover {
            mac,
            from,
            interruption,
            ..
        } = e
        {
            if self.handovers.len() >= MAX_HANDOVERS {
                self.handovers.pop_front();
            }
            self.handovers.push_back(HandoverRecord {
                at: self.now,
                mac,
                from,
                interruption,
            });
        }
        if self.events.len() >= MAX_EVENTS {
            self.events.pop_front();
        }
        self.events.push_back(e);
    }

    fn served_here(&self, mac: MacAddr) -> bool {
        matches!(self.stations.get(&mac), Some(s) if s.at == Whereabouts::Here)
    }

    /// Stations that were served here and no longer are (withdrawn,
    /// redirected elsewhere, expired, released), since the last call. The
    /// daemon clears them from the capture's per-MAC rate limit: a station
    /// that comes back within the limit's interval (100 ms; a station
    /// flapping between cells) must be seen at once, not when the interval
    /// of the frame that revealed its previous visit ends.
    pub fn take_departed(&mut self) -> heapless::Vec<MacAddr, 64> {
        std::mem::take(&mut self.departed)
    }

    fn call(&mut self, call: MlrCall, why: Purpose) {
        let tag = self.next_tag;
        self.next_tag += 1;
        self.pending.insert(tag, why);
        self.out.push_back(Output::Mlr { tag, call });
    }

    fn data(&mut self, a: DataAction) {
        self.out.push_back(Output::Data(a));
    }

    /// The MLR session is bound: refresh the CN list and ask the MLR about
    /// every station address in `candidates` (what an earlier run left in
    /// the kernel, and what the table holds after a reconnect); those the
    /// MLR places here (or parents here) are taken back.
    pub fn mlr_bound(&mut self, candidates: &[Ipv4Addr]) {
        self.mlr_up = true;
        self.call(MlrCall::ListCns, Purpose::ListCns);
        let now = self.now;
        for mac in std::mem::take(&mut self.associated_offline) {
            self.station_associated(mac, now);
        }
        for (mac, ip, seen) in std::mem::take(&mut self.seen_offline) {
            self.station_seen(Some(mac), Some(ip), seen);
        }
        let mut ips: Vec<Ipv4Addr> = candidates.to_vec();
        ips.extend(self.stations.iter().map(|s| s.cell.station()));
        ips.sort();
        ips.dedup();
        if ips.is_empty() {
            log::info!(target: "cn", "+ Attempting network re-establish - Querying MLR: None listed");
            return;
        }
        self.reestablish = Some((ips.len(), 0));
        for ip in ips {
            self.call(MlrCall::LocateIp { ip }, Purpose::Reestablish);
        }
    }

    fn reestablish_done(&mut self, taken: bool) {
        if let Some((left, n)) = self.reestablish.as_mut() {
            *left = left.saturating_sub(1);
            *n += usize::from(taken);
            if *left == 0 {
                let n = *n;
                self.reestablish = None;
                if n == 0 {
                    log::info!(target: "cn", "+ Attempting network re-establish - Querying MLR: None listed");
                } else {
                    log::info!(target: "cn", "+ Attempting network re-establish - Querying MLR: {n} station(s) re-established");
                }
            }
        }
    }

    /// The MLR link is gone: calls in flight will not be answered. Lookups
    /// for stations already here are answered from the table; new ones
    /// wait for the MLR (the client retries).
    pub fn mlr_lost(&mut self, now: Instant) {
        self.mlr_up = false;
        let pending: Vec<Purpose> = self.pending.drain().map(|(_, p)| p).collect();
        for p in pending {
            match p {
                Purpose::Dhcp { mac, .. } => self.answer_from_table(mac, now, "MLR unreachable"),
                Purpose::LocateSeen { mac, ip, seen } => self.remember_seen(mac, ip, seen),
                Purpose::Associated { mac, seen } => self.station_associated(mac, seen),
                _ => {}
            }
        }
    }

    /// A station seen here that the MLR must be asked about once bound.
    fn remember_seen(&mut self, mac: MacAddr, ip: Ipv4Addr, seen: Instant) {
        if self.seen_offline.iter().any(|(m, ..)| *m == mac) {
            return;
        }
        if self.seen_offline.is_full() {
            self.seen_offline.remove(0);
        }
        let _ = self.seen_offline.push((mac, ip, seen));
    }

    fn answer_from_table(&mut self, mac: MacAddr, now: Instant, why: &str) {
        let result = match self.stations.get(&mac) {
            Some(s) if s.at == Whereabouts::Here => {
                let left = s.expires.saturating_duration_since(now).as_secs() as u32;
                Ok(Lease {
                    cell: s.cell,
                    lease_secs: left.clamp(60, self.cfg.fallback_lease_secs.max(60)),
                })
            }
            _ => Err(LookupFailure::Unavailable(format!(
                "{why}; {mac} not known here"
            ))),
        };
        self.out.push_back(Output::Dhcp { mac, result });
    }

    /// The DHCP server needs a /30 for `mac`: an offer (DISCOVER,
    /// `Allocate`) or the binding of the address the client requests
    /// (REQUEST, `Locate`). `relayed`: the message came through a relay, so
    /// `mac` is not checked against its sender and must not move a station.
    pub fn dhcp_lookup(
        &mut self,
        mac: MacAddr,
        kind: LookupKind,
        requested: Option<Ipv4Addr>,
        relayed: bool,
        now: Instant,
    ) {
        self.now = self.now.max(now);
        self.counters.lookups += 1;
        self.not_stations.retain(|(m, _)| *m != mac);
        if !self.mlr_up {
            self.answer_from_table(mac, now, "MLR unreachable");
            return;
        }
        let unknown = self.stations.get(&mac).is_none();
        if unknown && self.stations.len() >= self.stations.limit() {
            self.refuse_full(mac);
            return;
        }
        if unknown && kind == LookupKind::Allocate && !self.new_stations.allow(mac, now) {
            self.counters.new_stations_limited += 1;
            let msg = format!(
                "refused: new station {mac}: more than {} new MACs per second in this cell (new_station_rate)",
                self.cfg.new_station_rate
            );
            if self.refusals.new_station.hit(now) {
                log::warn!(target: "dhcp", "{msg}; {} in all", self.counters.new_stations_limited);
                self.refused(
                    mac,
                    None,
                    RefuseReason::RateLimited {
                        rate: self.cfg.new_station_rate,
                    },
                );
            }
            self.out.push_back(Output::Dhcp {
                mac,
                result: Err(LookupFailure::Unavailable(msg)),
            });
            return;
        }
        let call = match (kind, requested) {
            (LookupKind::Allocate, _) => MlrCall::Offer { mac, requested },
            (LookupKind::Locate, Some(ip)) if u32::from(ip) & 3 == 1 => MlrCall::Commit {
                mac,
                cell: Cell30::containing(ip),
            },
            (LookupKind::Locate, _) => MlrCall::LocateMac { mac },
        };
        let offer = matches!(call, MlrCall::Offer { .. });
        let asked = self
            .pending
            .values()
            .any(|p| matches!(p, Purpose::Dhcp { mac: m, .. } if *m == mac));
        if !asked && !self.served_here(mac) {
            self.event(CnEvent::Arrived {
                mac,
                ip: requested,
                how: Arrival::Dhcp,
            });
        }
        self.call(
            call,
            Purpose::Dhcp {
                mac,
                seen: now,
                relayed,
                offer,
            },
        );
    }

    /// Timer: write the summary lines of refusals counted since the last.
    fn log_refusal_summaries(&mut self, now: Instant) {
        let r = &mut self.refusals;
        let c = &self.counters;
        for (t, target, what, total) in [
            (
                &mut r.spoof,
                "cn",
                "refused: spoofed frames (another station's address)",
                c.spoofs_refused,
            ),
            (
                &mut r.release,
                "dhcp",
                "refused: RELEASEs/DECLINEs not from the holder",
                c.releases_refused,
            ),
            (
                &mut r.decline,
                "dhcp",
                "DECLINEs (address conflicts)",
                c.declines,
            ),
            (
                &mut r.new_station,
                "dhcp",
                "refused: new stations over new_station_rate",
                c.new_stations_limited,
            ),
            (
                &mut r.relayed,
                "dhcp",
                "refused: relayed lookups that would move a station",
                c.relayed_refused,
            ),
            (
                &mut r.mlr,
                "dhcp",
                "refused by the MLR: lookups",
                c.mlr_refused,
            ),
        ] {
            if let Some(n) = t.summary(now) {
                log::warn!(target: target, "{what}: {n} more since the last line, {total} in all");
            }
        }
    }

    /// A frame from `mac` with source address `ip` (ARP sender or IPv4
    /// source): a spoof when `ip` is N+1 of a station served or parented
    /// here under another MAC. Logged (rate-limited), counted, true.
    fn spoofed(&mut self, mac: MacAddr, ip: Ipv4Addr, now: Instant) -> bool {
        let Some(owner) = self.stations.by_cell(Cell30::containing(ip)).map(|s| s.mac) else {
            return false;
        };
        if owner == mac || u32::from(ip) & 3 != 1 {
            return false;
        }
        self.counters.spoofs_refused += 1;
        if self.refusals.spoof.hit(now) {
            log::warn!(target: "cn", "refused: spoof: {mac} claims {ip}, which is bound to {owner}; not believed ({} in all)", self.counters.spoofs_refused);
            let reason = RefuseReason::SpoofAddress {
                ip,
                owner: Some(owner),
            };
            self.refused(mac, Some(Cell30::containing(ip)), reason);
        }
        true
    }

    /// A `refused` event for the operator. The callers send it only when
    /// they log the refusal in full (once per interval per kind), so an
    /// attacker cannot flood the bus.
    fn refused(&mut self, mac: MacAddr, cell: Option<Cell30>, reason: RefuseReason) {
        self.event(CnEvent::Refused { mac, cell, reason });
    }

    /// Log a refusal, but not every one of a flood: the first ten, then
    /// the 16th, 32nd, 64th, ... True when it was logged (then the
    /// `refused` event goes out too).
    fn log_refusal(&self, msg: &str) -> bool {
        let n = self.counters.refused_full;
        let logged = n <= 10 || n.is_power_of_two();
        if logged {
            log::warn!(target: "cn", "{msg} ({n} refused so far)");
        }
        logged
    }

    /// Count a refusal for a full station or peer table; its log line and
    /// `refused` event go out rate-limited ([`Self::log_refusal`]).
    fn refuse_for_a_full_table(
        &mut self,
        mac: MacAddr,
        cell: Option<Cell30>,
        msg: &str,
        reason: RefuseReason,
    ) {
        self.counters.refused_full += 1;
        if self.log_refusal(msg) {
            self.refused(mac, cell, reason);
        }
    }

    /// Refuse `mac` for a full station table (at DHCP time `cell` is not
    /// known yet); returns the refusal's message.
    fn refuse_for_a_full_station_table(&mut self, mac: MacAddr, cell: Option<Cell30>) -> String {
        let capacity = self.stations.limit();
        let msg = format!("station table full ({capacity} stations): refusing {mac}");
        self.refuse_for_a_full_table(mac, cell, &msg, RefuseReason::TableFull { capacity });
        msg
    }

    fn refuse_full(&mut self, mac: MacAddr) {
        let msg = self.refuse_for_a_full_station_table(mac, None);
        self.out.push_back(Output::Dhcp {
            mac,
            result: Err(LookupFailure::Unavailable(msg)),
        });
    }

    /// A station was seen here without DHCP (capture, hostapd): find it.
    /// `now` is when its frame was seen: the handover log line reports the
    /// time from there to the adoption.
    pub fn station_seen(&mut self, mac: Option<MacAddr>, ip: Option<Ipv4Addr>, now: Instant) {
        self.now = self.now.max(now);
        if mac.is_some_and(|m| self.recently_released(m)) {
            // Frames it sent before giving its address up, still arriving.
            return;
        }
        if !self.mlr_up {
            // Only a station address (N+1), as below.
            if let (Some(m), Some(ip)) = (mac, ip) {
                if u32::from(ip) & 3 == 1 && m.is_station() {
                    self.remember_seen(m, ip, now);
                }
            }
            return;
        }
        if let (Some(m), Some(ip)) = (mac, ip) {
            if self.spoofed(m, ip, now) {
                return;
            }
        }
        if let Some(mac) = mac {
            if matches!(self.stations.get(&mac), Some(s) if s.at == Whereabouts::Here) {
                return;
            }
            if self.held_as_host(mac, now) {
                return;
            }
            let asked = self.being_located(mac);
            if !asked {
                self.event(CnEvent::Arrived {
                    mac,
                    ip,
                    how: Arrival::Capture,
                });
            }
            // Only a station address (N+1) can be a static client's.
            let purpose = match ip {
                Some(ip) if u32::from(ip) & 3 == 1 => Purpose::LocateSeen { mac, ip, seen: now },
                _ if self.cfg.shared_link => Purpose::LocateHost { mac },
                _ => Purpose::Locate { seen: now },
            };
            self.call(MlrCall::LocateMac { mac }, purpose);
        } else if let Some(ip) = ip {
            self.call(MlrCall::LocateIp { ip }, Purpose::Locate { seen: now });
        }
    }

    /// A lookup of `mac` (after an association or a frame it sent) is
    /// already on its way to the MLR.
    fn being_located(&self, mac: MacAddr) -> bool {
        self.pending.values().any(|p| {
            matches!(p, Purpose::Associated { mac: m, .. } | Purpose::LocateSeen { mac: m, .. } if *m == mac)
        })
    }

    /// hostapd reported `mac` associated and authorized here (control
    /// interface `AP-STA-CONNECTED`, ubus `sta-authorized`, a WDS station's
    /// netdev): look it up at the MLR by MAC and, if it has a binding, adopt
    /// it now, before the station sends anything (the same adoption as any
    /// other arrival: gateway address, host route, ARP to the station,
    /// Move). Idempotent: hostapd repeats `Connected` (resync after every
    /// attach, `assoc` then `sta-authorized`), so a station served here or
    /// already being looked up is left alone. A MAC the MLR does not know is
    /// a new station: its DHCP DISCOVER allocates it. While the MLR is
    /// unreachable the MAC is remembered (the latest 16) and looked up once
    /// the MLR is bound again.
    pub fn station_associated(&mut self, mac: MacAddr, now: Instant) {
        self.now = self.now.max(now);
        if !mac.is_station() || self.recently_released(mac) {
            return;
        }
        self.not_stations.retain(|(m, _)| *m != mac);
        if !self.mlr_up {
            if !self.associated_offline.contains(&mac) {
                if self.associated_offline.is_full() {
                    self.associated_offline.remove(0);
                }
                let _ = self.associated_offline.push(mac);
            }
            return;
        }
        if matches!(self.stations.get(&mac), Some(s) if s.at == Whereabouts::Here) {
            return;
        }
        let asked = self.being_located(mac);
        if !asked {
            self.event(CnEvent::Arrived {
                mac,
                ip: None,
                how: Arrival::Hostapd,
            });
            self.call(
                MlrCall::LocateMac { mac },
                Purpose::Associated { mac, seen: now },
            );
        }
    }

    /// The station's link here changed under it: hostapd moved a
    /// four-address (WDS) station onto its own AP/VLAN interface once it
    /// sent its first four-address frame. A station served here is adopted
    /// again, so the ARP to it goes out again (the one sent on association
    /// may not have reached it over the new link); any other station is an
    /// arrival, as on association.
    pub fn station_link_changed(&mut self, mac: MacAddr, now: Instant) {
        self.now = self.now.max(now);
        match self.stations.get(&mac) {
            Some(s) if s.at == Whereabouts::Here => {
                let cell = s.cell;
                self.data(DataAction::AdoptLocal { mac, cell });
            }
            _ => self.station_associated(mac, now),
        }
    }

    /// Shared link: was `mac` found not to be a station lately?
    fn held_as_host(&mut self, mac: MacAddr, now: Instant) -> bool {
        self.not_stations
            .retain(|(_, at)| now.saturating_duration_since(*at) < NOT_A_STATION_HOLD);
        self.not_stations.iter().any(|(m, _)| *m == mac)
    }

    /// Shared link: `mac` is unknown at the MLR; leave it alone a while.
    fn hold_as_host(&mut self, mac: MacAddr, now: Instant) {
        if !self.cfg.shared_link || self.not_stations.iter().any(|(m, _)| *m == mac) {
            return;
        }
        if self.not_stations.is_full() {
            self.not_stations.remove(0);
        }
        let _ = self.not_stations.push((mac, now));
        log::debug!(target: "handover", "{mac} is not a station (unknown at the MLR): not looked up again for {} s", NOT_A_STATION_HOLD.as_secs());
    }

    /// A DHCP RELEASE of `cell` from `mac` (the DHCP server has checked
    /// that `mac` sent it). Honoured only when `mac` is served here and
    /// holds `cell`: a station elsewhere, or a cell that is not the
    /// sender's, is refused (logged, rate-limited, counted).
    pub fn station_released(&mut self, mac: MacAddr, cell: Cell30) {
        let now = self.now;
        let s = match self.stations.get(&mac) {
            Some(s) if s.at == Whereabouts::Here && s.cell == cell => s.clone(),
            other => {
                let why = match other {
                    Some(s) if s.at == Whereabouts::Here => format!("it holds {}", s.cell),
                    Some(_) => "it is at another CN".to_string(),
                    None => "it is not served here".to_string(),
                };
                self.counters.releases_refused += 1;
                if self.refusals.release.hit(now) {
                    log::warn!(target: "dhcp", "refused: RELEASE of {cell} from {mac}: {why} ({} in all)", self.counters.releases_refused);
                    self.refused(mac, Some(cell), RefuseReason::SpoofRelease);
                }
                return;
            }
        };
        if self.released.is_full() {
            self.released.remove(0);
        }
        let _ = self.released.push((mac, now));
        log::info!(target: "dhcp", "{mac} released {cell}");
        self.event(CnEvent::Released {
            mac,
            cell: Some(s.cell),
        });
        self.forget(&s);
        if self.mlr_up {
            self.call(MlrCall::Release { mac, cell: s.cell }, Purpose::Release);
        }
    }

    /// A DHCP DECLINE from `mac` (checked by the DHCP server): its address
    /// `ip` is in use by someone else on the link. Honoured (logged as an
    /// address conflict, once per interval) only from the station served
    /// here that holds that address; else refused like a foreign RELEASE.
    pub fn station_declined(&mut self, mac: MacAddr, ip: Option<Ipv4Addr>) {
        let now = self.now;
        let holder = matches!(self.stations.get(&mac),
            Some(s) if s.at == Whereabouts::Here && ip.is_none_or(|ip| s.cell.contains(ip)));
        if holder {
            self.counters.declines += 1;
            if self.refusals.decline.hit(now) {
                log::warn!(target: "dhcp", "DECLINE from {mac}: {} is in use by another host on the link (address conflict); {} in all",
                    ip.map(|i| i.to_string()).unwrap_or_else(|| "its address".into()), self.counters.declines);
            }
            return;
        }
        self.counters.releases_refused += 1;
        if self.refusals.release.hit(now) {
            log::warn!(target: "dhcp", "refused: DECLINE from {mac}: not the holder here ({} in all)", self.counters.releases_refused);
            self.refused(mac, ip.map(Cell30::containing), RefuseReason::SpoofDecline);
        }
    }

    fn recently_released(&self, mac: MacAddr) -> bool {
        self.released
            .iter()
            .any(|(m, at)| *m == mac && self.now.saturating_duration_since(*at) < RELEASE_HOLDOFF)
    }

    /// Answer to call `tag`.
    pub fn mlr_answer(&mut self, tag: u64, answer: MlrAnswer, now: Instant) {
        self.now = self.now.max(now);
        let Some(why) = self.pending.remove(&tag) else {
            log::warn!(target: "mlrp", "answer to unknown request {tag} ignored");
            return;
        };
        match (why, answer) {
            (
                Purpose::Dhcp {
                    mac, offer: true, ..
                },
                MlrAnswer::Binding(b),
            ) if b.mac == mac && b.at.is_none() => {
                // An offer: the /30 is held at the MLR, nothing is bound or
                // routed until the REQUEST commits it.
                self.out.push_back(Output::Dhcp {
                    mac,
                    result: Ok(Lease {
                        cell: b.cell,
                        lease_secs: self.cfg.fallback_lease_secs.max(60),
                    }),
                });
            }
            (
                Purpose::Dhcp {
                    mac, relayed: true, ..
                },
                MlrAnswer::Binding(b),
            ) if b.mac == mac
                && b.at != Some(self.cfg.me)
                && !matches!(self.stations.get(&mac), Some(s) if s.at == Whereabouts::Here) =>
            {
                self.counters.relayed_refused += 1;
                let msg = format!(
                    "relayed DHCP for {mac}, bound at {}: a relay cannot move a station",
                    b.at.map(|a| a.to_string()).unwrap_or_default()
                );
                if self.refusals.relayed.hit(now) {
                    log::warn!(target: "dhcp", "refused: {msg} ({} in all)", self.counters.relayed_refused);
                    self.refused(mac, Some(b.cell), RefuseReason::RelayedMove);
                }
                self.out.push_back(Output::Dhcp {
                    mac,
                    result: Err(LookupFailure::Unavailable(msg)),
                });
            }
            (Purpose::Dhcp { mac, seen, .. }, MlrAnswer::Binding(b)) => {
                if b.mac != mac {
                    log::warn!(target: "mlrp", "MLR answered for {} when asked for {mac}", b.mac);
                    self.out.push_back(Output::Dhcp {
                        mac,
                        result: Err(LookupFailure::Unavailable(
                            "MLR answered for another station".into(),
                        )),
                    });
                    return;
                }
                match self.adopt(&b, now) {
                    Ok(()) => {
                        self.move_if_parent_elsewhere(&b);
                        self.handover_event(&b, seen, now, Arrival::Dhcp);
                        self.out.push_back(Output::Dhcp {
                            mac,
                            result: Ok(Lease {
                                cell: b.cell,
                                lease_secs: b.lease_secs,
                            }),
                        })
                    }
                    Err(e) => self.out.push_back(Output::Dhcp {
                        mac,
                        result: Err(LookupFailure::Unavailable(e.to_string())),
                    }),
                }
            }
            (Purpose::Dhcp { mac, .. }, MlrAnswer::NotFound) => {
                self.out.push_back(Output::Dhcp {
                    mac,
                    result: Err(LookupFailure::NotFound),
                });
            }
            (Purpose::Dhcp { mac, .. }, other) => {
                self.counters.mlr_errors += 1;
                self.counters.mlr_refused += 1;
                let (reason, why) = match &other {
                    MlrAnswer::Refused { code, text } => (
                        match code {
                            crate::mlrp::ErrorCode::Quota => RefuseReason::Quota,
                            crate::mlrp::ErrorCode::PoolExhausted => RefuseReason::PoolExhausted,
                            _ => RefuseReason::MlrRefused,
                        },
                        format!("{code}: {text}"),
                    ),
                    other => (RefuseReason::MlrRefused, format!("{other:?}")),
                };
                if self.refusals.mlr.hit(now) {
                    log::warn!(target: "dhcp", "refused by the MLR: no address for {mac}: {why} ({} in all)", self.counters.mlr_refused);
                    self.refused(mac, None, reason);
                }
                self.out.push_back(Output::Dhcp {
                    mac,
                    result: Err(LookupFailure::Unavailable(format!("MLR: {why}"))),
                });
            }
            (Purpose::Locate { seen }, MlrAnswer::Binding(b)) => match self.adopt(&b, now) {
                Ok(()) => self.handover_event(&b, seen, now, Arrival::Capture),
                Err(e) => log::warn!(target: "handover", "{e}"),
            },
            (Purpose::Locate { .. }, _) => {}
            (Purpose::LocateHost { .. }, MlrAnswer::Binding(b)) => {
                if let Err(e) = self.adopt(&b, now) {
                    log::warn!(target: "handover", "{e}");
                }
            }
            (Purpose::LocateHost { mac }, MlrAnswer::NotFound) => self.hold_as_host(mac, now),
            (Purpose::LocateHost { .. }, _) => {}
            (Purpose::Revalidate { mac }, a) => self.revalidated(mac, a, now),
            (Purpose::LocateSeen { seen, .. }, MlrAnswer::Binding(b)) => {
                match self.adopt(&b, now) {
                    Ok(()) => self.log_handover(&b, seen, now, Arrival::Capture),
                    Err(e) => log::warn!(target: "handover", "{e}"),
                }
            }
            (Purpose::LocateSeen { mac, ip, seen }, MlrAnswer::NotFound) => {
                // Unknown MAC using N+1 of some /30: a static client. Ask
                // for exactly that /30 (the MLR checks it lies in a pool and
                // is free). A new MAC: within new_station_rate only.
                if !self.new_stations.allow(mac, now) {
                    self.counters.new_stations_limited += 1;
                    if self.refusals.new_station.hit(now) {
                        log::warn!(target: "handover", "refused: static client {mac} ({ip}): over new_station_rate ({} in all)", self.counters.new_stations_limited);
                        let rate = self.cfg.new_station_rate;
                        self.refused(
                            mac,
                            Some(Cell30::containing(ip)),
                            RefuseReason::RateLimited { rate },
                        );
                    }
                    return;
                }
                log::debug!(target: "handover", "{mac} unknown at the MLR, uses {ip}: static client?");
                // Adopted if the allocation succeeds; else an ordinary host.
                self.hold_as_host(mac, now);
                self.call(
                    MlrCall::Allocate {
                        mac,
                        requested: Some(ip),
                    },
                    Purpose::StaticAllocate { ip, seen },
                );
            }
            (Purpose::LocateSeen { .. }, _) => {}
            (Purpose::Associated { mac, seen }, MlrAnswer::Binding(b)) if b.mac == mac => {
                match self.adopt(&b, now) {
                    Ok(()) => self.log_handover(&b, seen, now, Arrival::Hostapd),
                    Err(e) => log::warn!(target: "handover", "{e}"),
                }
            }
            (Purpose::Associated { mac, .. }, MlrAnswer::NotFound) => {
                log::debug!(target: "handover", "{mac} associated here, unknown at the MLR: a new station (DHCP will allocate)");
            }
            (Purpose::Associated { mac, .. }, other) => {
                log::debug!(target: "handover", "{mac} associated here; MLR said {other:?}");
            }
            (Purpose::StaticAllocate { ip, seen }, MlrAnswer::Binding(b)) => {
                if !b.cell.contains(ip) {
                    // Not the /30 the client uses (taken, or outside every
                    // pool): give it back and leave the client alone.
                    // Taken: by a station that has it (then this is an
                    // address spoof or conflict), or outside every pool.
                    self.counters.spoofs_refused += 1;
                    if self.refusals.spoof.hit(now) {
                        log::warn!(target: "handover", "refused: static client {} claims {ip}, which the MLR does not give it (spoof or address conflict; offered {} instead, released) ({} in all)", b.mac, b.cell, self.counters.spoofs_refused);
                        let reason = RefuseReason::SpoofAddress { ip, owner: None };
                        self.refused(b.mac, Some(Cell30::containing(ip)), reason);
                    }
                    self.call(
                        MlrCall::Release {
                            mac: b.mac,
                            cell: b.cell,
                        },
                        Purpose::Release,
                    );
                } else {
                    match self.adopt(&b, now) {
                        Ok(()) => {
                            self.move_if_parent_elsewhere(&b);
                            self.log_handover(&b, seen, now, Arrival::Capture);
                        }
                        Err(e) => log::warn!(target: "handover", "{e}"),
                    }
                }
            }
            (Purpose::StaticAllocate { ip, .. }, other) => {
                log::warn!(target: "handover", "static client {ip}: MLR said {other:?}");
            }
            (Purpose::Reestablish, MlrAnswer::Binding(b)) => {
                let here = b.at == Some(self.cfg.me) || b.parent == self.cfg.me;
                let mut taken = false;
                if here {
                    match self.reestablish(&b, now) {
                        Ok(()) => taken = true,
                        Err(e) => log::warn!(target: "cn", "{e}"),
                    }
                } else if let Some(s) = self.stations.get(&b.mac).cloned() {
                    // Moved on while the MLR was away from us.
                    self.forget(&s);
                }
                self.reestablish_done(taken);
            }
            (Purpose::Reestablish, _) => self.reestablish_done(false),
            (Purpose::ListCns, MlrAnswer::CnList(list)) => {
                let others: Vec<(CnAddr, String)> = list
                    .into_iter()
                    .filter(|(a, _)| *a != self.cfg.me)
                    .collect();
                self.peers.replace_listing(&others);
            }
            (Purpose::Move, MlrAnswer::Binding(b)) => {
                let here =
                    matches!(self.stations.get(&b.mac), Some(s) if s.at == Whereabouts::Here);
                if b.at == Some(self.cfg.me) && !here {
                    // The MLR has the station here, but a stale withdraw or
                    // redirect from an earlier move (sent before this reply)
                    // took it off: take it back.
                    if let Err(e) = self.adopt(&b, now) {
                        log::warn!(target: "handover", "{e}");
                    }
                } else if let Some(s) = self.stations.get_mut(&b.mac) {
                    s.expires = now + Duration::from_secs(u64::from(b.lease_secs));
                }
            }
            (Purpose::Move | Purpose::Release | Purpose::ListCns, a) => match a {
                MlrAnswer::Error(e) => {
                    self.counters.mlr_errors += 1;
                    log::warn!(target: "mlrp", "MLR refused a request: {e}");
                }
                MlrAnswer::Refused { code, text } => {
                    self.counters.mlr_errors += 1;
                    log::warn!(target: "mlrp", "MLR refused a request: {code}: {text}");
                }
                _ => {}
            },
        }
    }

    /// Make the table and the data plane match binding `b` with the station
    /// attached here, and tell the MLR it is here if it does not know yet.
    fn adopt(&mut self, b: &StationBinding, now: Instant) -> Result<(), CoreError> {
        let me = self.cfg.me;
        self.not_stations.retain(|(m, _)| *m != b.mac);
        let parent = (b.parent != me).then_some(b.parent);
        let expires = now + Duration::from_secs(u64::from(b.lease_secs));
        let old = self.stations.get(&b.mac).cloned();
        if let Some(o) = &old {
            if o.at == Whereabouts::Here && o.cell == b.cell && o.parent == parent {
                if let Some(s) = self.stations.get_mut(&b.mac) {
                    s.expires = expires;
                }
                if b.at != Some(me) {
                    self.call(
                        MlrCall::Move {
                            mac: b.mac,
                            cell: b.cell,
                        },
                        Purpose::Move,
                    );
                }
                return Ok(());
            }
        }
        if old.is_none() && self.stations.len() >= self.stations.limit() {
            self.refuse_for_a_full_station_table(b.mac, Some(b.cell));
            return Err(CoreError::StationTableFull {
                capacity: self.stations.limit(),
                cell: b.cell,
            });
        }
        if let Some(p) = parent {
            if self.peers.get(p).is_none() && self.peers.len() >= self.peers_limit() {
                let e = CoreError::PeerTableFull {
                    mac: b.mac,
                    peer: p,
                };
                // Rate-limited like a full station table: a cell full of
                // visitors from many parents must not flood log and bus.
                self.refuse_for_a_full_table(
                    b.mac,
                    Some(b.cell),
                    &e.to_string(),
                    RefuseReason::PeerTableFull { parent: p },
                );
                return Err(e);
            }
        }
        if let Some(o) = old {
            self.forget(&o);
        }
        let st = Station {
            mac: b.mac,
            cell: b.cell,
            parent,
            at: Whereabouts::Here,
            expires,
            since: now,
        };
        self.stations
            .upsert(st)
            .map_err(|f| CoreError::StationTableFull {
                capacity: f.capacity,
                cell: b.cell,
            })?;
        self.counters.adoptions += 1;
        self.event(CnEvent::Adopted {
            mac: b.mac,
            cell: b.cell,
            parent,
        });
        self.data(DataAction::AdoptLocal {
            mac: b.mac,
            cell: b.cell,
        });
        if self.cfg.shared_link {
            // Hosts on the link may hold this CN's MAC for N+1 (it proxied
            // while the station was away) or an old one: point them at the
            // station now, not when their entries expire.
            self.announce(b.cell, Some(b.mac), now);
        }
        if let Some(p) = parent {
            self.tunnel_acquire(p);
            if self.cfg.reverse_tunnel {
                self.data(DataAction::ReverseTunnel {
                    cell: b.cell,
                    parent: p,
                });
            }
        }
        log::debug!(target: "handover", "{} ({}) adopted here, parent {}", b.mac, b.cell,
            parent.map(|p| p.to_string()).unwrap_or_else(|| "this CN".into()));
        if b.at != Some(me) {
            self.call(
                MlrCall::Move {
                    mac: b.mac,
                    cell: b.cell,
                },
                Purpose::Move,
            );
        }
        Ok(())
    }

    /// The one line per handover (debug level 3): who, from where, and the
    /// time from its first frame seen here (or its association, or its DHCP
    /// request) to its adoption (the data-plane changes are carried out
    /// right after); and the handover event when it came from another CN.
    fn log_handover(&mut self, b: &StationBinding, seen: Instant, now: Instant, how: Arrival) {
        let from = match b.at {
            Some(a) if a != self.cfg.me => format!("CN {a}"),
            Some(_) => "here".to_string(),
            None => "nowhere (new)".to_string(),
        };
        let parent = if b.parent == self.cfg.me {
            "this CN".to_string()
        } else {
            format!("CN {}", b.parent)
        };
        let what = match how {
            Arrival::Capture => "first frame",
            Arrival::Hostapd => "association event",
            Arrival::Dhcp => "DHCP request",
        };
        log::debug!(
            target: "handover",
            "handover {} ({}) from {from} to here, parent {parent}: {:.1} ms from {what} to adoption",
            b.mac,
            b.cell,
            millis(now.saturating_duration_since(seen))
        );
        self.handover_event(b, seen, now, how);
    }

    /// The handover event, when binding `b` (as the MLR had it before this
    /// CN's Move) places the station at another CN.
    fn handover_event(&mut self, b: &StationBinding, seen: Instant, now: Instant, how: Arrival) {
        if let Some(from) = b.at.filter(|a| *a != self.cfg.me) {
            self.event(CnEvent::Handover {
                mac: b.mac,
                cell: b.cell,
                from,
                to: self.cfg.me,
                parent: b.parent,
                interruption: now.saturating_duration_since(seen),
                how,
            });
        }
    }

    /// A new binding from another CN's pool (central pool, static client):
    /// the MLR has us as `at` already, but only a Move makes it push the
    /// Redirect the parent needs.
    fn move_if_parent_elsewhere(&mut self, b: &StationBinding) {
        if b.parent != self.cfg.me && b.at == Some(self.cfg.me) {
            self.call(
                MlrCall::Move {
                    mac: b.mac,
                    cell: b.cell,
                },
                Purpose::Move,
            );
        }
    }

    fn peers_limit(&self) -> usize {
        self.cfg.max_peers
    }

    /// After a restart: take back a station the MLR lists here (attached
    /// here) or parented here and at a peer.
    fn reestablish(&mut self, b: &StationBinding, now: Instant) -> Result<(), CoreError> {
        let me = self.cfg.me;
        if b.at == Some(me) || b.at.is_none() {
            return self.adopt(b, now);
        }
        // Parent of a station that is elsewhere: route its cell there.
        if let Some(at) = b.at {
            self.parent_redirect(b.mac, b.cell, at, b.lease_secs, now)?;
        }
        Ok(())
    }

    fn tunnel_acquire(&mut self, p: CnAddr) {
        match self.peers.acquire(p) {
            Ok(true) => self.data(DataAction::TunnelUp { peer: p }),
            Ok(false) => {}
            Err(_) => log::warn!(target: "tunnel", "peer table full: no tunnel to {p}"),
        }
    }

    fn tunnel_release(&mut self, p: CnAddr) {
        if self.peers.release(p) {
            self.data(DataAction::TunnelDown { peer: p });
        }
    }

    /// Drop a station from the table and undo its data-plane state.
    fn forget(&mut self, s: &Station) {
        self.stations.remove(&s.mac);
        match s.at {
            Whereabouts::Here => {
                self.data(DataAction::Withdraw { cell: s.cell });
                if !self.departed.contains(&s.mac) {
                    if self.departed.is_full() {
                        self.departed.remove(0);
                    }
                    let _ = self.departed.push(s.mac);
                }
            }
            Whereabouts::AtPeer(_) => {
                self.data(DataAction::RouteLocal { cell: s.cell });
                if self.cfg.shared_link {
                    self.data(DataAction::ProxyArpEnd { cell: s.cell });
                }
            }
        }
        if let Some(p) = s.tunnel_peer() {
            self.tunnel_release(p);
        }
    }

    fn parent_redirect(
        &mut self,
        mac: MacAddr,
        cell: Cell30,
        to: CnAddr,
        lease_secs: u32,
        now: Instant,
    ) -> Result<(), CoreError> {
        let old = self.stations.get(&mac).cloned();
        if let Some(o) = &old {
            if o.at == Whereabouts::AtPeer(to) && o.cell == cell {
                if let Some(s) = self.stations.get_mut(&mac) {
                    s.expires = now + Duration::from_secs(u64::from(lease_secs.max(60)));
                }
                return Ok(());
            }
        } else if self.stations.len() >= self.stations.limit() {
            self.counters.refused_full += 1;
            return Err(CoreError::StationTableFull {
                capacity: self.stations.limit(),
                cell,
            });
        }
        if let Some(o) = old {
            self.forget(&o);
        }
        let st = Station {
            mac,
            cell,
            parent: None,
            at: Whereabouts::AtPeer(to),
            expires: now + Duration::from_secs(u64::from(lease_secs.max(60))),
            since: now,
        };
        self.stations
            .upsert(st)
            .map_err(|f| CoreError::StationTableFull {
                capacity: f.capacity,
                cell,
            })?;
        self.tunnel_acquire(to);
        self.data(DataAction::RouteToPeer { cell, peer: to });
        if self.cfg.shared_link {
            // Hosts on the link have N+1 on-link and still hold the MAC of
            // the station that left: answer for it and tell them now.
            self.data(DataAction::ProxyArp { cell });
            self.announce_later(cell, None, now);
        }
        Ok(())
    }

    /// Gratuitous ARP for N+1 now and once more a little later.
    fn announce(&mut self, cell: Cell30, station_mac: Option<MacAddr>, now: Instant) {
        self.data(DataAction::Announce { cell, station_mac });
        self.announce_later(cell, station_mac, now);
    }

    fn announce_later(&mut self, cell: Cell30, station_mac: Option<MacAddr>, now: Instant) {
        self.announce_again.retain(|a| a.cell != cell);
        if self.announce_again.is_full() {
            self.announce_again.remove(0);
        }
        let _ = self.announce_again.push(Announcement {
            cell,
            station_mac,
            due: now + ANNOUNCE_AGAIN,
        });
    }

    /// The second announcements that are due, if what they announce still
    /// holds (the station is still here, or still away).
    fn announce_due(&mut self, now: Instant) {
        let (due, later): (Vec<Announcement>, Vec<Announcement>) =
            self.announce_again.iter().partition(|a| a.due <= now);
        if due.is_empty() {
            return;
        }
        self.announce_again = later.into_iter().collect();
        for a in due {
            let holds = match (self.stations.by_cell(a.cell), a.station_mac) {
                (Some(s), Some(mac)) => s.at == Whereabouts::Here && s.mac == mac,
                (Some(s), None) => matches!(s.at, Whereabouts::AtPeer(_)),
                (None, _) => false,
            };
            if holds {
                self.data(DataAction::Announce {
                    cell: a.cell,
                    station_mac: a.station_mac,
                });
            }
        }
    }

    /// Redirect pushed by the MLR (or a peer): we are `cell`'s parent and the
    /// station is now at `to`.
    pub fn redirect(
        &mut self,
        cell: Cell30,
        mac: Option<MacAddr>,
        to: CnAddr,
        now: Instant,
    ) -> Result<(), CoreError> {
        self.counters.redirects += 1;
        let Some(mac) = mac
            .or_else(|| self.stations.by_cell(cell).map(|s| s.mac))
            .filter(|m| m.is_station())
        else {
            return Err(CoreError::UnknownStation { cell });
        };
        if to == self.cfg.me {
            // Back home. The MLR says so only because this CN claimed the
            // station (its Move), so make sure it is served here even if a
            // stale redirect from an earlier move took it away meanwhile
            // (a station flapping between cells).
            let here = matches!(self.stations.get(&mac), Some(s) if s.at == Whereabouts::Here && s.cell == cell);
            if !here {
                let lease = self
                    .stations
                    .get(&mac)
                    .map(|s| s.expires.saturating_duration_since(now).as_secs() as u32)
                    .unwrap_or(self.cfg.fallback_lease_secs)
                    .max(60);
                let me = self.cfg.me;
                self.adopt(
                    &StationBinding {
                        mac,
                        cell,
                        parent: me,
                        at: Some(me),
                        previous: None,
                        lease_secs: lease,
                    },
                    now,
                )?;
            }
            log::debug!(target: "handover", "{mac} ({cell}) is back at its parent (here)");
            return Ok(());
        }
        // If the station was attached here, it has left.
        let was_here = self.served_here(mac);
        let lease = self
            .stations
            .get(&mac)
            .map(|s| s.expires.saturating_duration_since(now).as_secs() as u32)
            .unwrap_or(self.cfg.fallback_lease_secs);
        self.parent_redirect(mac, cell, to, lease, now)?;
        if was_here {
            self.event(CnEvent::Departed {
                mac,
                cell,
                to: Some(to),
                why: DepartReason::Redirected,
            });
        }
        log::debug!(target: "handover", "{cell} redirected to CN {to}");
        Ok(())
    }

    /// Withdraw pushed by the MLR: the station left this CN for another one
    /// and this CN is not its parent; or (to the parent) its binding is gone.
    pub fn withdraw(&mut self, cell: Cell30) {
        self.counters.withdrawals += 1;
        if let Some(s) = self.stations.by_cell(cell).cloned() {
            self.forget(&s);
            match s.at {
                Whereabouts::Here => {
                    self.event(CnEvent::Departed {
                        mac: s.mac,
                        cell,
                        to: None,
                        why: DepartReason::Withdrawn,
                    });
                    log::debug!(target: "handover", "{} ({cell}) withdrawn from here", s.mac)
                }
                // The MLR withdraws a cell from its parent only when the
                // binding is gone (released at the CN the station is at,
                // or expired): stop routing it to the peer.
                Whereabouts::AtPeer(p) => {
                    log::debug!(target: "handover", "{} ({cell}) at {p} released or expired: no longer routed there", s.mac)
                }
            }
        }
    }

    /// Timers: expire bindings whose lease ended.
    ///
    /// The local expiry is only a hint: renewals at another CN refresh the
    /// binding at the MLR without this CN hearing of it (a parent whose
    /// station is elsewhere). So an expired station is first checked with
    /// the MLR and dropped only when the MLR no longer binds it here; while
    /// the MLR is unreachable it is kept.
    pub fn tick(&mut self, now: Instant) {
        self.now = self.now.max(now);
        self.log_refusal_summaries(now);
        self.announce_due(now);
        self.released
            .retain(|(_, at)| now.saturating_duration_since(*at) < RELEASE_HOLDOFF);
        for mac in self.stations.expired(now) {
            if let Some(s) = self.stations.get_mut(&mac) {
                s.expires = now + REVALIDATE_GRACE;
            }
            if self.mlr_up {
                self.call(MlrCall::LocateMac { mac }, Purpose::Revalidate { mac });
            }
        }
    }

    fn revalidated(&mut self, mac: MacAddr, answer: MlrAnswer, now: Instant) {
        let Some(s) = self.stations.get(&mac).cloned() else {
            return;
        };
        match answer {
            MlrAnswer::Binding(b)
                if b.mac == mac && (b.at == Some(self.cfg.me) || b.parent == self.cfg.me) =>
            {
                if let Err(e) = self.reestablish(&b, now) {
                    log::warn!(target: "cn", "{e}");
                }
            }
            MlrAnswer::Binding(_) | MlrAnswer::NotFound => {
                log::info!(target: "cn", "binding of {mac} ({}) expired", s.cell);
                self.forget(&s);
                if s.at == Whereabouts::Here {
                    self.event(CnEvent::Departed {
                        mac,
                        cell: s.cell,
                        to: None,
                        why: DepartReason::Expired,
                    });
                }
            }
            // No verdict (MLR error): keep it and ask again after the grace.
            _ => {}
        }
    }

    /// Everything to undo at exit (TERM), in order.
    pub fn teardown(&mut self) -> Vec<DataAction> {
        let all: Vec<Station> = self.stations.iter().cloned().collect();
        for s in &all {
            self.forget(s);
        }
        let mut v = Vec::new();
        while let Some(o) = self.out.pop_front() {
            if let Output::Data(a) = o {
                v.push(a);
            }
        }
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cn(last: u8) -> CnAddr {
        CnAddr {
            ip: Ipv4Addr::new(10, 13, 0, last),
            port: 5554,
        }
    }
    fn core(max: usize) -> CnCore {
        core_on(max, false)
    }
    fn core_on(max: usize, shared_link: bool) -> CnCore {
        core_with(max, shared_link, 0)
    }
    /// A bound core, on a shared link or not, with `new_station_rate` = `rate`.
    fn core_with(max: usize, shared_link: bool, rate: u32) -> CnCore {
        let mut c = CnCore::new(CoreConfig {
            me: cn(1),
            reverse_tunnel: true,
            max_stations: max,
            max_peers: 4,
            fallback_lease_secs: 600,
            new_station_rate: rate,
            shared_link,
        });
        c.mlr_bound(&[]);
        drain(&mut c);
        c
    }
    fn drain(c: &mut CnCore) -> Vec<Output> {
        std::iter::from_fn(|| c.poll_output()).collect()
    }
    fn mac(n: u8) -> MacAddr {
        MacAddr([2, 0, 0, 0, 0, n])
    }
    fn cell(n: u8) -> Cell30 {
        Cell30::containing(Ipv4Addr::new(10, 13, 100, n * 4))
    }
    fn binding(n: u8, parent: CnAddr, at: Option<CnAddr>) -> StationBinding {
        StationBinding {
            mac: mac(n),
            cell: cell(n),
            parent,
            at,
            previous: None,
            lease_secs: 3600,
        }
    }
    /// A DHCP REQUEST of station `n` for its cell's N+1.
    fn request(c: &mut CnCore, n: u8, relayed: bool, now: Instant) {
        c.dhcp_lookup(
            mac(n),
            LookupKind::Locate,
            Some(cell(n).station()),
            relayed,
            now,
        );
    }
    fn tag_of(out: &[Output]) -> u64 {
        out.iter()
            .find_map(|o| match o {
                Output::Mlr { tag, .. } => Some(*tag),
                _ => None,
            })
            .expect("an MLR call")
    }

    #[test]
    fn a_wds_link_for_a_station_served_here_adopts_it_again_else_looks_it_up() {
        let now = Instant::now();
        let mut c = core(8);
        // Unknown here: an arrival, looked up by MAC.
        c.station_link_changed(mac(1), now);
        let out = drain(&mut c);
        assert!(
            matches!(&out[..], [Output::Mlr { call: MlrCall::LocateMac { mac: m }, .. }] if *m == mac(1)),
            "{out:?}"
        );
        c.mlr_answer(
            tag_of(&out),
            MlrAnswer::Binding(binding(1, cn(1), None)),
            now,
        );
        let adopt = Output::Data(DataAction::AdoptLocal {
            mac: mac(1),
            cell: cell(1),
        });
        assert!(drain(&mut c).contains(&adopt));
        // Served here: its new link gets the adoption (and its ARP) again,
        // with no MLR round trip.
        c.station_link_changed(mac(1), now);
        assert_eq!(drain(&mut c), vec![adopt]);
        // A plain association of a station already here does nothing.
        c.station_associated(mac(1), now);
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn dhcp_request_commits_adopts_moves_and_answers() {
        let now = Instant::now();
        let mut c = core(8);
        request(&mut c, 1, false, now);
        let out = drain(&mut c);
        assert!(
            matches!(&out[0], Output::Mlr { call: MlrCall::Commit { mac: m, cell: k }, .. } if *m == mac(1) && *k == cell(1))
        );
        c.mlr_answer(
            tag_of(&out),
            MlrAnswer::Binding(binding(1, cn(1), None)),
            now,
        );
        let out = drain(&mut c);
        assert!(out.contains(&Output::Data(DataAction::AdoptLocal {
            mac: mac(1),
            cell: cell(1)
        })));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Mlr {
                call: MlrCall::Move { .. },
                ..
            }
        )));
        assert!(out.contains(&Output::Dhcp {
            mac: mac(1),
            result: Ok(Lease {
                cell: cell(1),
                lease_secs: 3600
            })
        }));
        // No tunnel for a station at its parent.
        assert!(!out
            .iter()
            .any(|o| matches!(o, Output::Data(DataAction::TunnelUp { .. }))));
    }

    /// Past the refusal log interval (`admission.rs`).
    const REFUSAL_EVENT_GAP: Duration = Duration::from_secs(11);

    fn events(c: &mut CnCore) -> Vec<CnEvent> {
        std::iter::from_fn(|| c.poll_event()).collect()
    }

    #[test]
    fn events_tell_arrival_adoption_handover_departure_release_and_refusal() {
        let t0 = Instant::now();
        let mut c = core(1);
        c.mlr_up = true;
        // Seen by capture, bound at CN 2 (its parent): a handover to here,
        // measured from the frame to the adoption.
        c.station_seen(Some(mac(1)), Some(cell(1).station()), t0);
        let t = tag_of(&drain(&mut c));
        let t1 = t0 + Duration::from_millis(7);
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(2), Some(cn(2)))), t1);
        assert_eq!(
            events(&mut c),
            vec![
                CnEvent::Arrived {
                    mac: mac(1),
                    ip: Some(cell(1).station()),
                    how: Arrival::Capture
                },
                CnEvent::Adopted {
                    mac: mac(1),
                    cell: cell(1),
                    parent: Some(cn(2))
                },
                CnEvent::Handover {
                    mac: mac(1),
                    cell: cell(1),
                    from: cn(2),
                    to: cn(1),
                    parent: cn(2),
                    interruption: Duration::from_millis(7),
                    how: Arrival::Capture
                },
            ]
        );
        // The table (1 station) is full: a newcomer is refused.
        c.dhcp_lookup(mac(2), LookupKind::Allocate, None, false, t1);
        assert_eq!(
            events(&mut c),
            vec![CnEvent::Refused {
                mac: mac(2),
                cell: None,
                reason: RefuseReason::TableFull { capacity: 1 }
            }]
        );
        c.withdraw(cell(1));
        assert_eq!(
            events(&mut c),
            vec![CnEvent::Departed {
                mac: mac(1),
                cell: cell(1),
                to: None,
                why: DepartReason::Withdrawn
            }]
        );
        // A RELEASE from a station not served here is refused, and said so.
        c.station_released(mac(1), cell(1));
        assert_eq!(
            events(&mut c),
            vec![CnEvent::Refused {
                mac: mac(1),
                cell: Some(cell(1)),
                reason: RefuseReason::SpoofRelease
            }]
        );
    }

    #[test]
    fn a_visitor_gets_a_tunnel_and_a_reverse_tunnel_to_its_parent() {
        let now = Instant::now();
        let mut c = core(8);
        request(&mut c, 2, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), now);
        let out = drain(&mut c);
        assert!(out.contains(&Output::Data(DataAction::TunnelUp { peer: cn(2) })));
        assert!(out.contains(&Output::Data(DataAction::ReverseTunnel {
            cell: cell(2),
            parent: cn(2)
        })));
        // A renewal changes nothing in the data plane.
        request(&mut c, 2, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(1)))), now);
        let out = drain(&mut c);
        assert!(!out.iter().any(|o| matches!(o, Output::Data(_))), "{out:?}");
        // Withdrawn when it moves on: tunnel goes with the last user.
        c.withdraw(cell(2));
        let out = drain(&mut c);
        assert!(out.contains(&Output::Data(DataAction::Withdraw { cell: cell(2) })));
        assert!(out.contains(&Output::Data(DataAction::TunnelDown { peer: cn(2) })));
        assert!(c.stations().is_empty());
    }

    #[test]
    fn a_full_table_refuses_the_newcomer_and_keeps_serving_others() {
        let now = Instant::now();
        let mut c = core(1);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), None)), now);
        drain(&mut c);
        request(&mut c, 2, false, now);
        let out = drain(&mut c);
        assert!(
            matches!(&out[0], Output::Dhcp { mac: m, result: Err(LookupFailure::Unavailable(e)) } if *m == mac(2) && e.contains("full"))
        );
        assert_eq!(c.counters.refused_full, 1);
        // The known station still renews.
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), Some(cn(1)))), now);
        assert!(drain(&mut c)
            .iter()
            .any(|o| matches!(o, Output::Dhcp { result: Ok(_), .. })));
    }

    #[test]
    fn a_full_peer_table_refuses_visitors_and_its_events_are_rate_limited() {
        let now = Instant::now();
        let mut c = core(200);
        // Station n asks here; the MLR says its parent is CN 10+n.
        let visit = |c: &mut CnCore, n: u8| {
            request(c, n, false, now);
            let t = tag_of(&drain(c));
            c.mlr_answer(t, MlrAnswer::Binding(binding(n, cn(10 + n), None)), now);
            drain(c);
        };
        // max_peers 4: visitors whose parents are four other CNs fill it.
        for n in 1..=4u8 {
            visit(&mut c, n);
        }
        assert_eq!(c.peers().len(), 4);
        events(&mut c);
        // 59 more, each from yet another parent: all refused, and only
        // the first ten and the 16th and 32nd are announced.
        for n in 5..=63u8 {
            visit(&mut c, n);
        }
        assert_eq!(c.peers().len(), 4);
        assert_eq!(c.stations().len(), 4);
        assert_eq!(c.counters.refused_full, 59);
        let refused = events(&mut c)
            .into_iter()
            .filter(|e| {
                matches!(
                    e,
                    CnEvent::Refused {
                        reason: RefuseReason::PeerTableFull { .. },
                        ..
                    }
                )
            })
            .count();
        assert_eq!(refused, 12);
    }

    #[test]
    fn without_the_mlr_known_stations_are_served_from_the_table() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), None)), now);
        drain(&mut c);
        // A lookup in flight when the link drops is answered from the table.
        request(&mut c, 1, false, now);
        drain(&mut c);
        c.mlr_lost(now);
        let out = drain(&mut c);
        assert!(matches!(&out[0], Output::Dhcp { result: Ok(l), .. } if l.cell == cell(1)));
        request(&mut c, 3, false, now);
        assert!(matches!(
            &drain(&mut c)[0],
            Output::Dhcp { result: Err(_), .. }
        ));
        // Back: resynchronise what the table holds.
        c.mlr_bound(&[]);
        let out = drain(&mut c);
        assert!(out.iter().any(|o| matches!(o, Output::Mlr { call: MlrCall::LocateIp { ip }, .. } if *ip == cell(1).station())));
    }

    #[test]
    fn the_parent_routes_a_redirected_cell_into_the_tunnel_and_back() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), None)), now);
        drain(&mut c);
        c.redirect(cell(1), Some(mac(1)), cn(3), now).unwrap();
        let out = drain(&mut c);
        assert_eq!(
            out,
            vec![
                Output::Data(DataAction::Withdraw { cell: cell(1) }),
                Output::Data(DataAction::TunnelUp { peer: cn(3) }),
                Output::Data(DataAction::RouteToPeer {
                    cell: cell(1),
                    peer: cn(3)
                }),
            ]
        );
        c.redirect(cell(1), None, cn(1), now).unwrap();
        let out = drain(&mut c);
        assert_eq!(
            out,
            vec![
                Output::Data(DataAction::RouteLocal { cell: cell(1) }),
                Output::Data(DataAction::TunnelDown { peer: cn(3) }),
                Output::Data(DataAction::AdoptLocal {
                    mac: mac(1),
                    cell: cell(1)
                }),
            ]
        );
        // Already served here: a repeated redirect changes nothing.
        c.redirect(cell(1), None, cn(1), now).unwrap();
        assert!(drain(&mut c).is_empty());
    }

    fn shared_core() -> CnCore {
        core_on(4, true)
    }

    /// Station `n` of this CN's pool takes a lease here (outputs left queued).
    fn lease_at_parent(c: &mut CnCore, n: u8, now: Instant) {
        request(c, n, false, now);
        let t = tag_of(&drain(c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(n, cn(1), None)), now);
    }

    fn data(out: Vec<Output>) -> Vec<DataAction> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Data(a) => Some(a),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn on_a_shared_link_the_parent_proxies_for_a_station_that_left_and_announces_its_return() {
        let now = Instant::now();
        let mut c = shared_core();
        lease_at_parent(&mut c, 1, now);
        let announce_station = DataAction::Announce {
            cell: cell(1),
            station_mac: Some(mac(1)),
        };
        assert_eq!(
            data(drain(&mut c)),
            vec![
                DataAction::AdoptLocal {
                    mac: mac(1),
                    cell: cell(1)
                },
                announce_station.clone(),
            ]
        );
        // Away to CN 3: the parent answers ARP for N+1 and says so at once.
        c.redirect(cell(1), Some(mac(1)), cn(3), now).unwrap();
        assert_eq!(
            data(drain(&mut c)),
            vec![
                DataAction::Withdraw { cell: cell(1) },
                DataAction::TunnelUp { peer: cn(3) },
                DataAction::RouteToPeer {
                    cell: cell(1),
                    peer: cn(3)
                },
                DataAction::ProxyArp { cell: cell(1) },
            ]
        );
        // The second announcement (for hosts within their ARP locktime) is
        // this CN's, not the station's: that one was superseded.
        c.tick(now + ANNOUNCE_AGAIN);
        assert_eq!(
            data(drain(&mut c)),
            vec![DataAction::Announce {
                cell: cell(1),
                station_mac: None
            }]
        );
        c.tick(now + 3 * ANNOUNCE_AGAIN);
        assert!(data(drain(&mut c)).is_empty(), "announced twice only");
        // Back home: proxying ends, the station is announced for itself.
        let t1 = now + 4 * ANNOUNCE_AGAIN;
        c.redirect(cell(1), None, cn(1), t1).unwrap();
        assert_eq!(
            data(drain(&mut c)),
            vec![
                DataAction::RouteLocal { cell: cell(1) },
                DataAction::ProxyArpEnd { cell: cell(1) },
                DataAction::TunnelDown { peer: cn(3) },
                DataAction::AdoptLocal {
                    mac: mac(1),
                    cell: cell(1)
                },
                announce_station.clone(),
            ]
        );
        c.tick(t1 + ANNOUNCE_AGAIN);
        assert_eq!(data(drain(&mut c)), vec![announce_station]);
    }

    #[test]
    fn a_second_announcement_that_no_longer_holds_is_not_sent() {
        let now = Instant::now();
        let mut c = shared_core();
        lease_at_parent(&mut c, 1, now);
        drain(&mut c);
        c.redirect(cell(1), Some(mac(1)), cn(3), now).unwrap();
        drain(&mut c);
        // Released at the CN it is at (a RELEASE here would be refused):
        // the MLR withdraws it; nothing to answer for any more.
        c.withdraw(cell(1));
        assert!(data(drain(&mut c)).contains(&DataAction::ProxyArpEnd { cell: cell(1) }));
        c.tick(now + ANNOUNCE_AGAIN);
        assert!(data(drain(&mut c)).is_empty());
    }

    #[test]
    fn a_visitor_on_a_shared_link_is_announced_and_a_separate_link_proxies_nothing() {
        let now = Instant::now();
        let mut c = shared_core();
        c.station_seen(Some(mac(2)), Some(cell(2).station()), now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), now);
        let d = data(drain(&mut c));
        assert!(
            d.contains(&DataAction::Announce {
                cell: cell(2),
                station_mac: Some(mac(2))
            }),
            "{d:?}"
        );
        // The same moves on a separate link: no ARP work for the core.
        let mut c = core(4);
        lease_at_parent(&mut c, 1, now);
        c.redirect(cell(1), Some(mac(1)), cn(3), now).unwrap();
        c.redirect(cell(1), None, cn(1), now).unwrap();
        c.tick(now + ANNOUNCE_AGAIN);
        let d = data(drain(&mut c));
        assert!(
            !d.iter().any(|a| matches!(
                a,
                DataAction::ProxyArp { .. }
                    | DataAction::ProxyArpEnd { .. }
                    | DataAction::Announce { .. }
            )),
            "{d:?}"
        );
    }

    #[test]
    fn on_a_shared_link_an_ordinary_host_is_looked_up_once_per_hold() {
        let now = Instant::now();
        let mut c = shared_core();
        let host = mac(9);
        let host_ip = Some(Ipv4Addr::new(10, 13, 100, 200));
        c.station_seen(Some(host), host_ip, now);
        let out = drain(&mut c);
        assert!(matches!(
            out.as_slice(),
            [Output::Mlr {
                call: MlrCall::LocateMac { .. },
                ..
            }]
        ));
        c.mlr_answer(tag_of(&out), MlrAnswer::NotFound, now);
        assert!(drain(&mut c).is_empty());
        // Its next frames within the hold ask nothing.
        c.station_seen(Some(host), host_ip, now + Duration::from_secs(1));
        assert!(drain(&mut c).is_empty());
        // After the hold it is asked about again.
        c.station_seen(Some(host), host_ip, now + NOT_A_STATION_HOLD);
        assert_eq!(drain(&mut c).len(), 1);
        // A MAC held as a host that asks for DHCP is served at once.
        let t = now + NOT_A_STATION_HOLD;
        let other = mac(8);
        c.station_seen(Some(other), host_ip, t);
        let out = drain(&mut c);
        c.mlr_answer(tag_of(&out), MlrAnswer::NotFound, t);
        c.dhcp_lookup(other, LookupKind::Allocate, None, false, t);
        assert_eq!(drain(&mut c).len(), 1);
        c.station_seen(Some(other), host_ip, t);
        assert_eq!(
            drain(&mut c).len(),
            1,
            "the hold ended with the DHCP request"
        );
        // On a separate link nothing is held.
        let mut c = core(4);
        c.station_seen(Some(host), host_ip, now);
        let out = drain(&mut c);
        c.mlr_answer(tag_of(&out), MlrAnswer::NotFound, now);
        c.station_seen(Some(host), host_ip, now);
        assert_eq!(drain(&mut c).len(), 1);
    }

    #[test]
    fn a_station_that_leaves_is_reported_departed_once() {
        let now = Instant::now();
        let mut c = core(4);
        // Station 2 (parent CN 2) seen and adopted here, then withdrawn.
        c.station_seen(Some(mac(2)), Some(cell(2).station()), now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), now);
        drain(&mut c);
        assert!(c.take_departed().is_empty(), "adopted, not departed");
        c.withdraw(cell(2));
        assert_eq!(c.take_departed().as_slice(), &[mac(2)]);
        assert!(c.take_departed().is_empty(), "reported once");
        // A withdraw for a station not served here departs nothing.
        c.withdraw(cell(2));
        assert!(c.take_departed().is_empty());
        // Station 1 at home (parent here), redirected to CN 3: departed;
        // the redirect back home adopts it again (not a departure).
        lease_at_parent(&mut c, 1, now);
        drain(&mut c);
        c.redirect(cell(1), Some(mac(1)), cn(3), now).unwrap();
        assert_eq!(c.take_departed().as_slice(), &[mac(1)]);
        c.redirect(cell(1), Some(mac(1)), cn(1), now).unwrap();
        assert!(c.take_departed().is_empty());
    }

    #[test]
    fn a_restarted_cn_takes_back_its_stations() {
        let now = Instant::now();
        let mut c = CnCore::new(CoreConfig {
            me: cn(1),
            reverse_tunnel: false,
            max_stations: 8,
            max_peers: 4,
            fallback_lease_secs: 600,
            new_station_rate: 0,
            shared_link: false,
        });
        let left_behind: Vec<Ipv4Addr> = (1..=4).map(|n| cell(n).station()).collect();
        c.mlr_bound(&left_behind);
        let out = drain(&mut c);
        let tags: Vec<(u64, Ipv4Addr)> = out
            .iter()
            .filter_map(|o| match o {
                Output::Mlr {
                    tag,
                    call: MlrCall::LocateIp { ip },
                } => Some((*tag, *ip)),
                _ => None,
            })
            .collect();
        assert_eq!(tags.len(), 4);
        let answers = [
            MlrAnswer::Binding(binding(1, cn(1), Some(cn(1)))),
            MlrAnswer::Binding(binding(2, cn(1), Some(cn(2)))),
            MlrAnswer::Binding(binding(3, cn(2), Some(cn(1)))),
            MlrAnswer::Binding(binding(4, cn(2), Some(cn(3)))),
        ];
        for ((t, _), a) in tags.iter().zip(answers) {
            c.mlr_answer(*t, a, now);
        }
        let out = drain(&mut c);
        assert!(out.contains(&Output::Data(DataAction::AdoptLocal {
            mac: mac(1),
            cell: cell(1)
        })));
        assert!(out.contains(&Output::Data(DataAction::RouteToPeer {
            cell: cell(2),
            peer: cn(2)
        })));
        assert!(out.contains(&Output::Data(DataAction::AdoptLocal {
            mac: mac(3),
            cell: cell(3)
        })));
        assert_eq!(c.stations().len(), 3);
        // Moves are not re-sent for stations the MLR already has here.
        assert!(!out.iter().any(|o| matches!(
            o,
            Output::Mlr {
                call: MlrCall::Move { .. },
                ..
            }
        )));
    }

    #[test]
    fn expired_bindings_are_checked_with_the_mlr_before_they_go() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        let mut b = binding(1, cn(1), None);
        b.lease_secs = 10;
        c.mlr_answer(t, MlrAnswer::Binding(b.clone()), now);
        drain(&mut c);
        c.tick(now + Duration::from_secs(5));
        assert!(drain(&mut c).is_empty());
        // Expired: asked about, still valid at the MLR (renewed elsewhere
        // or here): kept, with the MLR's new expiry.
        let later = now + Duration::from_secs(11);
        c.tick(later);
        let out = drain(&mut c);
        assert!(
            matches!(
                &out[..],
                [Output::Mlr {
                    call: MlrCall::LocateMac { .. },
                    ..
                }]
            ),
            "{out:?}"
        );
        b.at = Some(cn(1));
        b.lease_secs = 100;
        c.mlr_answer(tag_of(&out), MlrAnswer::Binding(b), later);
        assert!(!drain(&mut c).iter().any(|o| matches!(o, Output::Data(_))));
        assert_eq!(c.stations().len(), 1);
        // Expired again and gone at the MLR: dropped.
        let much_later = later + Duration::from_secs(101);
        c.tick(much_later);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::NotFound, much_later);
        assert!(c.stations().is_empty());
        assert!(drain(&mut c).contains(&Output::Data(DataAction::Withdraw { cell: cell(1) })));
    }

    #[test]
    fn without_the_mlr_expired_stations_are_kept() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        let mut b = binding(1, cn(1), None);
        b.lease_secs = 10;
        c.mlr_answer(t, MlrAnswer::Binding(b), now);
        drain(&mut c);
        c.mlr_lost(now);
        c.tick(now + Duration::from_secs(11));
        c.tick(now + Duration::from_secs(60));
        assert_eq!(c.stations().len(), 1);
        assert!(drain(&mut c).is_empty());
    }

    /// A station flapping A -> B -> A at parent A: the MLR's stale
    /// Redirect{to B} reaches A after A took the station back; the MLR's
    /// Redirect{to A} that follows must leave it served at A.
    #[test]
    fn flapping_at_the_parent_ends_with_the_station_served_here() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), Some(cn(1)))), now);
        drain(&mut c);
        // (station went to B and came back; A re-adopted it already)
        c.redirect(cell(1), Some(mac(1)), cn(2), now).unwrap(); // stale
        c.redirect(cell(1), Some(mac(1)), cn(1), now).unwrap(); // current
        let s = c.stations().get(&mac(1)).unwrap();
        assert_eq!(s.at, Whereabouts::Here);
        let out = drain(&mut c);
        assert_eq!(
            out.last(),
            Some(&Output::Data(DataAction::AdoptLocal {
                mac: mac(1),
                cell: cell(1)
            }))
        );
        assert_eq!(c.peers().get(cn(2)).map(|p| p.users), Some(0));
    }

    /// A station flapping B -> A -> B at visitor B: the MLR's stale
    /// Withdraw (from the move to A) reaches B before the reply to B's own
    /// Move; that reply says the station is at B, so B takes it back.
    #[test]
    fn flapping_at_a_visitor_ends_with_the_station_served_here() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 2, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), now);
        let out = drain(&mut c);
        let move_tag = out
            .iter()
            .find_map(|o| match o {
                Output::Mlr {
                    tag,
                    call: MlrCall::Move { .. },
                } => Some(*tag),
                _ => None,
            })
            .unwrap();
        c.withdraw(cell(2)); // stale
        assert!(c.stations().is_empty());
        drain(&mut c);
        c.mlr_answer(
            move_tag,
            MlrAnswer::Binding(binding(2, cn(2), Some(cn(1)))),
            now,
        );
        let out = drain(&mut c);
        assert!(
            out.contains(&Output::Data(DataAction::AdoptLocal {
                mac: mac(2),
                cell: cell(2)
            })),
            "{out:?}"
        );
        assert!(
            out.contains(&Output::Data(DataAction::TunnelUp { peer: cn(2) })),
            "{out:?}"
        );
        assert_eq!(
            c.stations().get(&mac(2)).map(|s| s.at),
            Some(Whereabouts::Here)
        );
    }

    #[test]
    fn frames_sent_before_a_release_are_not_an_arrival() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 1, false, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), Some(cn(1)))), now);
        drain(&mut c);
        c.station_released(mac(1), cell(1));
        assert!(c.stations().is_empty());
        drain(&mut c);
        c.station_seen(Some(mac(1)), Some(cell(1).station()), now);
        assert!(
            drain(&mut c).is_empty(),
            "taken as an arrival right after RELEASE"
        );
        c.tick(now + Duration::from_secs(6));
        c.station_seen(
            Some(mac(1)),
            Some(cell(1).station()),
            now + Duration::from_secs(6),
        );
        assert_eq!(drain(&mut c).len(), 1, "seen again later: looked up");
    }

    /// hostapd's AP-STA-CONNECTED for a station bound at another CN: it is
    /// looked up by MAC and adopted at once (tunnel to its parent, Move),
    /// through the same adoption as any other arrival.
    #[test]
    fn an_association_event_adopts_a_known_station_before_it_sends_anything() {
        let now = Instant::now();
        let mut c = core(4);
        c.station_associated(mac(3), now);
        let out = drain(&mut c);
        assert!(
            matches!(&out[..], [Output::Mlr { call: MlrCall::LocateMac { mac: m }, .. }] if *m == mac(3)),
            "{out:?}"
        );
        // Repeated events (resync, assoc then sta-authorized) while the
        // lookup is in flight ask nothing more.
        c.station_associated(mac(3), now);
        assert!(drain(&mut c).is_empty());
        c.mlr_answer(
            tag_of(&out),
            MlrAnswer::Binding(binding(3, cn(2), Some(cn(2)))),
            now,
        );
        let out = drain(&mut c);
        assert!(out.contains(&Output::Data(DataAction::AdoptLocal {
            mac: mac(3),
            cell: cell(3)
        })));
        assert!(out.contains(&Output::Data(DataAction::TunnelUp { peer: cn(2) })));
        assert!(out.iter().any(|o| matches!(
            o,
            Output::Mlr {
                call: MlrCall::Move { mac: m, .. },
                ..
            } if *m == mac(3)
        )));
        assert_eq!(
            c.stations().get(&mac(3)).map(|s| s.at),
            Some(Whereabouts::Here)
        );
        // Served here now: another event changes nothing.
        c.station_associated(mac(3), now);
        assert!(drain(&mut c).is_empty());
    }

    #[test]
    fn an_association_of_an_unknown_station_waits_for_dhcp() {
        let now = Instant::now();
        let mut c = core(4);
        c.station_associated(mac(4), now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::NotFound, now);
        assert!(drain(&mut c).is_empty());
        assert!(c.stations().is_empty());
        // Not a station MAC: nothing is asked.
        c.station_associated(MacAddr([0xff; 6]), now);
        assert!(drain(&mut c).is_empty());
        // MLR unreachable: asked once it is back.
        c.mlr_lost(now);
        drain(&mut c);
        c.station_associated(mac(5), now);
        c.station_associated(mac(5), now);
        assert!(drain(&mut c).is_empty());
        c.mlr_bound(&[]);
        assert_eq!(located_macs(drain(&mut c)), vec![mac(5)]);
    }

    /// The MACs the core asks the MLR to locate in `out`.
    fn located_macs(out: Vec<Output>) -> Vec<MacAddr> {
        out.into_iter()
            .filter_map(|o| match o {
                Output::Mlr {
                    call: MlrCall::LocateMac { mac },
                    ..
                } => Some(mac),
                _ => None,
            })
            .collect()
    }

    /// A station that moves here while the MLR link is failing over: its
    /// frames seen meanwhile (and the lookup the lost link never
    /// answered) are looked up once a register is bound, without waiting
    /// for the station to send again.
    #[test]
    fn a_station_seen_while_the_mlr_is_unreachable_is_looked_up_when_it_returns() {
        let now = Instant::now();
        let mut c = core(4);
        // Asked before the link went: that lookup is lost with it.
        c.station_seen(Some(mac(1)), Some(cell(1).station()), now);
        assert_eq!(located_macs(drain(&mut c)), vec![mac(1)]);
        c.mlr_lost(now);
        drain(&mut c);
        // Seen while down, twice; and a frame from a non-station address.
        c.station_seen(Some(mac(2)), Some(cell(2).station()), now);
        c.station_seen(Some(mac(2)), Some(cell(2).station()), now);
        c.station_seen(Some(mac(3)), Some(cell(3).gateway()), now);
        assert!(drain(&mut c).is_empty());
        c.mlr_bound(&[]);
        assert_eq!(located_macs(drain(&mut c)), vec![mac(1), mac(2)]);
    }

    #[test]
    fn a_redirect_needs_a_station_mac() {
        let mut c = core(4);
        assert!(c.redirect(cell(5), None, cn(2), Instant::now()).is_err());
        assert!(c
            .redirect(cell(5), Some(MacAddr::ZERO), cn(2), Instant::now())
            .is_err());
        assert!(c.stations().is_empty());
        // With the MAC (as MLRP's Redirect carries it) the parent routes it.
        c.redirect(cell(5), Some(mac(5)), cn(2), Instant::now())
            .unwrap();
        assert_eq!(c.stations().len(), 1);
    }

    #[test]
    fn redirect_refusals_are_typed() {
        let now = Instant::now();
        let mut c = core(1);
        assert_eq!(
            c.redirect(cell(5), None, cn(2), now),
            Err(CoreError::UnknownStation { cell: cell(5) })
        );
        c.redirect(cell(5), Some(mac(5)), cn(2), now).unwrap();
        let e = c.redirect(cell(6), Some(mac(6)), cn(2), now).unwrap_err();
        assert_eq!(
            e,
            CoreError::StationTableFull {
                capacity: 1,
                cell: cell(6)
            }
        );
        assert!(e.is_table_full());
        assert!(!CoreError::UnknownStation { cell: cell(6) }.is_table_full());
    }

    /// Not an assertion about speed: prints the fixed footprint of the
    /// bounded tables (`cargo test --lib footprint -- --nocapture`).
    #[test]
    fn footprint_of_the_bounded_tables() {
        let n = std::mem::size_of::<CnCore>();
        println!(
            "CnCore: {n} bytes ({} stations x {} bytes + peers)",
            crate::config::tmipd::STATION_CAPACITY,
            std::mem::size_of::<Station>()
        );
        assert!(n < 256 * 1024, "{n}");
    }

    /// Station 1 adopted here through a DHCP REQUEST (Commit).
    fn with_station_here(c: &mut CnCore, now: Instant) {
        request(c, 1, false, now);
        let t = tag_of(&drain(c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(1, cn(1), Some(cn(1)))), now);
        drain(c);
    }

    /// Issue 8, ARP/IP spoof: another MAC claiming a station's address here
    /// is counted, not looked up, and the station stays.
    #[test]
    fn a_frame_claiming_another_stations_address_is_a_spoof() {
        let now = Instant::now();
        let mut c = core(4);
        with_station_here(&mut c, now);
        c.station_seen(Some(mac(9)), Some(cell(1).station()), now);
        assert!(drain(&mut c).is_empty(), "a spoof was acted on");
        assert_eq!(c.counters.spoofs_refused, 1);
        assert_eq!(
            c.stations().get(&mac(1)).map(|s| s.at),
            Some(Whereabouts::Here)
        );
        // The station's own frames and other addresses are not spoofs.
        c.station_seen(Some(mac(1)), Some(cell(1).station()), now);
        c.station_seen(Some(mac(9)), Some(cell(9).station()), now);
        assert_eq!(c.counters.spoofs_refused, 1);
    }

    /// Issue 8, finding 2: a RELEASE is honoured only from the MAC served
    /// here that holds that cell.
    #[test]
    fn a_release_is_honoured_only_from_the_holder_here() {
        let now = Instant::now();
        let mut c = core(4);
        with_station_here(&mut c, now);
        c.station_released(mac(9), cell(1));
        c.station_released(mac(1), cell(2));
        assert!(drain(&mut c).is_empty());
        assert_eq!(c.counters.releases_refused, 2);
        assert_eq!(c.stations().len(), 1);
        // A station parented here but at another CN: not released here.
        c.redirect(cell(1), Some(mac(1)), cn(2), now).unwrap();
        drain(&mut c);
        c.station_released(mac(1), cell(1));
        assert!(!drain(&mut c).iter().any(|o| matches!(
            o,
            Output::Mlr {
                call: MlrCall::Release { .. },
                ..
            }
        )));
        assert_eq!(c.counters.releases_refused, 3);
        // Back here: the holder releases its own cell.
        c.redirect(cell(1), Some(mac(1)), cn(1), now).unwrap();
        drain(&mut c);
        c.station_released(mac(1), cell(1));
        assert!(drain(&mut c).iter().any(|o| matches!(o, Output::Mlr { call: MlrCall::Release { mac: m, .. }, .. } if *m == mac(1))));
    }

    /// A DECLINE counts only from the holder of that address here.
    #[test]
    fn a_decline_is_honoured_only_from_the_holder_here() {
        let now = Instant::now();
        let mut c = core(4);
        with_station_here(&mut c, now);
        c.station_declined(mac(1), Some(cell(1).station()));
        c.station_declined(mac(1), None);
        c.station_declined(mac(9), Some(cell(1).station()));
        c.station_declined(mac(1), Some(cell(2).station()));
        assert!(drain(&mut c).is_empty());
        assert_eq!((c.counters.declines, c.counters.releases_refused), (2, 2));
    }

    /// Issue 8, finding 3: a DISCOVER asks for an offer; an offer (no `at`)
    /// is answered without adopting or moving anything.
    #[test]
    fn a_discover_gets_an_offer_that_binds_nothing() {
        let now = Instant::now();
        let mut c = core(4);
        c.dhcp_lookup(mac(3), LookupKind::Allocate, None, false, now);
        let out = drain(&mut c);
        assert!(
            matches!(&out[..], [Output::Mlr { call: MlrCall::Offer { mac: m, requested: None }, .. }] if *m == mac(3)),
            "{out:?}"
        );
        c.mlr_answer(
            tag_of(&out),
            MlrAnswer::Binding(binding(3, cn(2), None)),
            now,
        );
        let out = drain(&mut c);
        assert_eq!(
            out,
            vec![Output::Dhcp {
                mac: mac(3),
                result: Ok(Lease {
                    cell: cell(3),
                    lease_secs: 600
                })
            }]
        );
        assert!(c.stations().is_empty());
    }

    /// Issue 8, finding 3: new MACs per cell are rate-limited (burst of
    /// four seconds' worth); retransmissions of a MAC let through are free.
    #[test]
    fn new_station_macs_are_rate_limited() {
        let now = Instant::now();
        let mut c = core_with(8, false, 2);
        let offers = |c: &mut CnCore| {
            drain(c)
                .iter()
                .filter(|o| {
                    matches!(
                        o,
                        Output::Mlr {
                            call: MlrCall::Offer { .. },
                            ..
                        }
                    )
                })
                .count()
        };
        for n in 1..=20u8 {
            c.dhcp_lookup(mac(n), LookupKind::Allocate, None, false, now);
        }
        assert_eq!(offers(&mut c), 8);
        assert_eq!(c.counters.new_stations_limited, 12);
        // A MAC let through asks again (retransmission): not counted.
        c.dhcp_lookup(mac(1), LookupKind::Allocate, None, false, now);
        assert_eq!(offers(&mut c), 1);
        // One second later: two more.
        let later = now + Duration::from_secs(1);
        for n in 30..=35u8 {
            c.dhcp_lookup(mac(n), LookupKind::Allocate, None, false, later);
        }
        assert_eq!(offers(&mut c), 2);
    }

    /// A relayed lookup for a station bound at another CN does not move it.
    #[test]
    fn a_relayed_lookup_never_moves_a_station() {
        let now = Instant::now();
        let mut c = core(4);
        request(&mut c, 2, true, now);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), now);
        let out = drain(&mut c);
        assert!(
            matches!(
                &out[..],
                [Output::Dhcp {
                    result: Err(LookupFailure::Unavailable(_)),
                    ..
                }]
            ),
            "{out:?}"
        );
        assert!(c.stations().is_empty());
        assert_eq!(c.counters.relayed_refused, 1);
    }

    /// The reasons of the `refused` events the core sent.
    fn refusals(c: &mut CnCore) -> Vec<(MacAddr, &'static str)> {
        events(c)
            .into_iter()
            .filter_map(|e| match e {
                CnEvent::Refused { mac, reason, .. } => Some((mac, reason.as_str())),
                _ => None,
            })
            .collect()
    }

    /// Issue 11: each defence of issue 8 sends a `refused` event with its
    /// reason word, once per interval as its log line: a flood of the same
    /// refusal is one event, the next interval another.
    #[test]
    fn each_refusal_is_an_event_once_per_interval() {
        let now = Instant::now();
        let mut c = core_with(4, false, 1);
        with_station_here(&mut c, now);
        events(&mut c);
        for _ in 0..50 {
            c.station_seen(Some(mac(9)), Some(cell(1).station()), now);
        }
        assert_eq!(refusals(&mut c), vec![(mac(9), "spoof_address")]);
        for _ in 0..50 {
            c.station_released(mac(9), cell(1));
        }
        assert_eq!(refusals(&mut c), vec![(mac(9), "spoof_release")]);
        // DECLINEs share the RELEASE interval; in the next one, an event.
        let later = now + REFUSAL_EVENT_GAP;
        c.tick(later);
        c.station_seen(Some(mac(8)), Some(cell(1).station()), later);
        c.station_declined(mac(9), Some(cell(1).station()));
        assert_eq!(
            refusals(&mut c),
            vec![(mac(8), "spoof_address"), (mac(9), "spoof_decline")]
        );
        // new_station_rate 1 (burst 4): the fifth new MAC is refused.
        for n in 20..40u8 {
            c.dhcp_lookup(mac(n), LookupKind::Allocate, None, false, later);
        }
        assert_eq!(refusals(&mut c), vec![(mac(24), "rate_limited")]);
        drain(&mut c);
        request(&mut c, 2, true, later);
        let t = tag_of(&drain(&mut c));
        c.mlr_answer(t, MlrAnswer::Binding(binding(2, cn(2), Some(cn(2)))), later);
        assert_eq!(refusals(&mut c), vec![(mac(2), "relayed_move")]);
        // The MLR's refusals by code: one interval each.
        let code_answer = |c: &mut CnCore, n: u8, code, at| {
            c.dhcp_lookup(mac(n), LookupKind::Allocate, None, false, at);
            let t = tag_of(&drain(c));
            let text = String::from("no");
            c.mlr_answer(t, MlrAnswer::Refused { code, text }, at);
            refusals(c)
        };
        use crate::mlrp::ErrorCode;
        assert_eq!(
            code_answer(&mut c, 20, ErrorCode::Quota, later),
            vec![(mac(20), "quota")]
        );
        assert!(code_answer(&mut c, 21, ErrorCode::PoolExhausted, later).is_empty());
        let third = later + REFUSAL_EVENT_GAP;
        c.tick(third);
        assert_eq!(
            code_answer(&mut c, 21, ErrorCode::PoolExhausted, third),
            vec![(mac(21), "pool_exhausted")]
        );
        c.tick(third + REFUSAL_EVENT_GAP);
        assert_eq!(
            code_answer(&mut c, 22, ErrorCode::TableFull, third + REFUSAL_EVENT_GAP),
            vec![(mac(22), "mlr_refused")]
        );
    }

    #[test]
    fn unknown_answers_are_ignored() {
        let mut c = core(4);
        c.mlr_answer(999, MlrAnswer::Ack, Instant::now());
        assert!(drain(&mut c).is_empty());
    }
}
