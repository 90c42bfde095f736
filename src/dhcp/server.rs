//! The sans-IO DHCP server (RFC 2131) of a CN.
//!
//! The server never chooses an address: every station's /30 comes from the
//! MLR. A DISCOVER or REQUEST therefore becomes an [`Action::Lookup`]; the
//! daemon asks the MLR (Allocate for DISCOVER, Locate for REQUEST), adopts
//! the station, and hands the answer back with [`DhcpServer::binding_ready`],
//! which yields the OFFER, ACK or NAK to send. Between the two calls the
//! request waits in a bounded table keyed by the client's MAC.
//!
//! ```text
//!   frame ──handle_frame──▶ Lookup{mac, kind, requested_ip}  ──▶ daemon asks the MLR
//!   MLR answer ──binding_ready(mac, Ok(Lease)|Err(..))──▶ Send(Reply{frame,..})
//!   RELEASE ──▶ Release{mac, cell}     DECLINE ──▶ Decline{mac, ip}
//!   INFORM  ──▶ Send(ACK with options, no yiaddr), answered at once
//! ```
//!
//! Every CN answers as N+2 of the station's cell (server identifier, source
//! IP, router), so a renewal unicast to N+2 reaches whichever CN the station
//! is at now. The server is authoritative for the network: a REQUEST for an
//! address the MLR does not bind to that MAC is NAKed, so the client starts
//! over with DISCOVER. When the MLR cannot be asked (`LookupError::Unavailable`)
//! the server stays silent and the client retries.
//!
//! Replies are whole Ethernet frames (source MAC = the CN's, source IP N+2,
//! port 67 -> 68), addressed per RFC 2131 §4.1: to the relay when `giaddr`
//! is set, NAKs broadcast, to `ciaddr` when the client has one, broadcast when
//! the client set the broadcast flag, else unicast to `chaddr`/`yiaddr`.
//!
//! Options: 53, 54, 51/58/59 (lease from the MLR's remaining time, capped by
//! `lease_time`; T1 = 1/2, T2 = 7/8), 1 (255.255.255.252) and 3 (N+2) always;
//! 6, 15, 121 when the client's option 55 asks for them (or sends no 55);
//! 249 only when asked; 61 echoed (RFC 6842). Option 121/249 carry the
//! configured static routes plus the default route via N+2 (RFC 3442 says a
//! client that gets 121 ignores option 3). A reply that would exceed the
//! client's maximum message size (57, default 576) drops 249, 121, 15, 6 in
//! that order.
//!
//! Everything that arrives from the network is validated; bad input is an
//! `Err` (already logged on target `dhcp`) and never a panic.
//!
//! Station identity: stations are untrusted. Without a relay (`giaddr` 0)
//! a message whose `chaddr` differs from its Ethernet source speaks for
//! another station: it is dropped ([`Error::ForgedClient`]), counted
//! ([`DhcpServer::forged`]) and logged at most once per
//! interval ([`crate::log_throttle::LogThrottle`]), then with the count. A relayed message
//! (`giaddr` set) cannot be checked that way: its lookup is marked
//! `relayed` (the CN does not move a station on it), and a relayed RELEASE
//! or DECLINE is ignored.

use super::wire::{self as dhcp_wire, opt, MessageType, Repr, Route};
use crate::addr::{Cell30, MacAddr};
use crate::log_throttle::LogThrottle;
use crate::wire::{UdpChecksum, UdpFrame};
use core::fmt;
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

/// Most requests that can wait for the MLR at once (the table's capacity).
pub const MAX_PENDING: usize = 64;
/// A request whose lookup has not come back within this time is forgotten
/// (the client has retransmitted or given up by then).
pub const PENDING_TTL: Duration = Duration::from_secs(10);
/// A retransmission of a request whose lookup is older than this asks again.
pub const LOOKUP_RETRY: Duration = Duration::from_secs(3);
/// How often each kind of refused input is logged at most (then summed up).
pub const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
/// Lease time when the configuration gives none.
pub const DEFAULT_LEASE_TIME: u32 = 3600;

/// DHCP settings of a CN (from `tmipd.rc` / UCI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DhcpConfig {
    /// Option 6.
    pub dns: Vec<Ipv4Addr>,
    /// Option 15.
    pub domain: Option<String>,
    /// `static_route NET/LEN GW`, sent in options 121/249. A gateway of
    /// 0.0.0.0 means "the station's gateway N+2" (on-link routes make no sense
    /// on a /30, and N+2 differs per station). At most 15 are sent (the
    /// default route via N+2 takes the 16th place).
    pub static_routes: Vec<(Ipv4Addr, u8, Ipv4Addr)>,
    /// Upper bound on the lease handed out, seconds (0 = no bound but the MLR's).
    pub lease_time: u32,
}

impl Default for DhcpConfig {
    fn default() -> Self {
        DhcpConfig {
            dns: Vec::new(),
            domain: None,
            static_routes: Vec::new(),
            lease_time: DEFAULT_LEASE_TIME,
        }
    }
}

/// Which MLR operation the daemon should use for a lookup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookupKind {
    /// DISCOVER: allocate a /30 (idempotent: a known MAC gets its own back).
    Allocate,
    /// REQUEST: find the MAC's existing binding.
    Locate,
}

/// The MLR's answer for a station, as the daemon hands it back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    pub cell: Cell30,
    /// Seconds the MLR's binding has left.
    pub lease_secs: u32,
}

/// Why the daemon has no lease for a station.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LookupError {
    /// The MLR has no binding for this MAC (a REQUEST is then NAKed).
    NotFound,
    /// The MLR could not answer or refused (unreachable, pool empty, table
    /// full…): the server stays silent and the client retries.
    Unavailable(String),
}

impl fmt::Display for LookupError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LookupError::NotFound => f.write_str("no binding at the MLR"),
            LookupError::Unavailable(why) => write!(f, "lookup failed: {why}"),
        }
    }
}

/// A frame to put on the mobile interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    /// Ethernet destination (also inside `frame`).
    pub dst_mac: MacAddr,
    /// The whole Ethernet frame.
    pub frame: Vec<u8>,
    pub message_type: MessageType,
    /// The client's MAC (`chaddr`).
    pub client: MacAddr,
    /// The address given (`yiaddr`; 0 for NAK and INFORM replies).
    pub your_ip: Ipv4Addr,
}

/// What the daemon must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Ask the MLR about `mac`, then call [`DhcpServer::binding_ready`].
    Lookup {
        mac: MacAddr,
        kind: LookupKind,
        /// Option 50 or `ciaddr`: the address the client believes it has.
        requested_ip: Option<Ipv4Addr>,
        /// Option 12, printable ASCII only, for the operator's `clients` list.
        hostname: Option<String>,
        /// Came through a relay (`giaddr` set): `mac` is only the relay's
        /// word, so the lookup must not move a station bound elsewhere.
        relayed: bool,
    },
    /// Transmit this frame.
    Send(Reply),
    /// The client gave its lease back: tell the MLR to free the /30.
    Release { mac: MacAddr, cell: Cell30 },
    /// The client found `ip` in use by someone else (RFC 2131 §4.3.3).
    Decline { mac: MacAddr, ip: Option<Ipv4Addr> },
}

/// Why a frame or an answer led to nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Error {
    /// Not a well-formed Ethernet/IPv4/UDP frame.
    Frame(crate::wire::Error),
    /// A malformed DHCP message.
    Message(dhcp_wire::Error),
    /// Well-formed but not for this server to answer.
    Ignored(&'static str),
    /// The pending-request table is full; the client will retry.
    TableFull(MacAddr),
    /// `binding_ready` for a MAC with no request waiting (late or repeated answer).
    NoPending(MacAddr),
    /// Not relayed, yet `chaddr` is not the Ethernet source: a station
    /// speaking for another one (a forged REQUEST or RELEASE). `logged`:
    /// the first of its interval, logged in full (the CN reports those as
    /// events too); the rest are counted for the summary line.
    ForgedClient {
        chaddr: MacAddr,
        src: MacAddr,
        logged: bool,
    },
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Frame(e) => write!(f, "bad frame: {e}"),
            Error::Message(e) => write!(f, "bad DHCP message: {e}"),
            Error::Ignored(why) => write!(f, "ignored: {why}"),
            Error::TableFull(m) => {
                write!(f, "refusing {m}: {MAX_PENDING}-entry pending table is full")
            }
            Error::NoPending(m) => write!(f, "no request from {m} is waiting"),
            Error::ForgedClient { chaddr, src, .. } => write!(
                f,
                "forged client: chaddr {chaddr} sent from {src} without a relay"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// What the client was doing when it sent a REQUEST (RFC 2131 §4.3.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Discover,
    Selecting,
    InitReboot,
    Renewing,
    Rebinding,
}

/// A request waiting for the MLR.
#[derive(Debug, Clone)]
struct Pending {
    mac: MacAddr,
    src_mac: MacAddr,
    xid: u32,
    stage: Stage,
    kind: LookupKind,
    broadcast: bool,
    ciaddr: Ipv4Addr,
    giaddr: Ipv4Addr,
    requested_ip: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
    params: Option<heapless::Vec<u8, 64>>,
    client_id: Option<heapless::Vec<u8, 64>>,
    max_size: Option<u16>,
    received: Instant,
    asked: Instant,
}

/// The DHCP server of one mobile interface. See the module doc.
#[derive(Debug)]
pub struct DhcpServer {
    config: DhcpConfig,
    mac: MacAddr,
    capacity: usize,
    pending: heapless::Vec<Pending, MAX_PENDING>,
    /// Messages dropped because `chaddr` was not their sender: the log
    /// and the count.
    forged: LogThrottle,
    forged_total: u64,
    /// Requests refused because the pending table was full (a flood).
    full: LogThrottle,
    full_total: u64,
}

fn is_station_address(ip: Ipv4Addr) -> bool {
    u32::from(ip) & 3 == 1
}

fn printable(b: &[u8]) -> Option<String> {
    let s: String = b
        .iter()
        .take(63)
        .map(|&c| if c.is_ascii_graphic() { c as char } else { '?' })
        .collect();
    (!s.is_empty()).then_some(s)
}

impl DhcpServer {
    /// A server replying from `mac` (the mobile interface's MAC).
    pub fn new(config: DhcpConfig, mac: MacAddr) -> DhcpServer {
        Self::with_capacity(config, mac, MAX_PENDING)
    }

    /// As [`new`](Self::new) with a pending table smaller than `MAX_PENDING`.
    pub fn with_capacity(config: DhcpConfig, mac: MacAddr, capacity: usize) -> DhcpServer {
        DhcpServer {
            config,
            mac,
            capacity: capacity.clamp(1, MAX_PENDING),
            pending: heapless::Vec::new(),
            forged: LogThrottle::new(REFUSAL_LOG_INTERVAL),
            forged_total: 0,
            full: LogThrottle::new(REFUSAL_LOG_INTERVAL),
            full_total: 0,
        }
    }

    /// Replace the configuration (SIGHUP); pending requests are kept.
    pub fn set_config(&mut self, config: DhcpConfig) {
        self.config = config;
    }

    pub fn config(&self) -> &DhcpConfig {
        &self.config
    }

    /// Requests waiting for `binding_ready`.
    pub fn pending_len(&self) -> usize {
        self.pending.len()
    }

    /// Forget requests older than [`PENDING_TTL`]. Called by the other
    /// methods too; the daemon calls it from a timer, which also writes the
    /// summary line of forged messages dropped since the last one.
    pub fn expire(&mut self, now: Instant) {
        self.pending
            .retain(|p| now.saturating_duration_since(p.received) < PENDING_TTL);
        if let Some(n) = self.forged.summary(now) {
            log::warn!(target: "dhcp", "refused: {n} more DHCP messages with a forged chaddr, {} in all", self.forged_total);
        }
        if let Some(n) = self.full.summary(now) {
            log::warn!(target: "dhcp", "refused: {n} more requests, pending table full; {} in all", self.full_total);
        }
    }

    /// Messages dropped so far because their `chaddr` was not their sender.
    pub fn forged(&self) -> u64 {
        self.forged_total
    }

    /// Handle a frame received on the mobile interface. `Err` explains why
    /// it produced nothing; it has already been logged (target `dhcp`).
    pub fn handle_frame(&mut self, frame: &[u8], now: Instant) -> Result<Option<Action>, Error> {
        let result = self.handle_frame_inner(frame, now);
        match &result {
            Err(e @ Error::TableFull(_)) => {
                self.full_total += 1;
                if self.full.hit(now) {
                    log::warn!(target: "dhcp", "{e} ({} in all)", self.full_total);
                }
            }
            Err(Error::ForgedClient { .. }) => {}
            Err(e) => log::debug!(target: "dhcp", "frame dropped: {e}"),
            Ok(_) => {}
        }
        result
    }

    fn handle_frame_inner(&mut self, frame: &[u8], now: Instant) -> Result<Option<Action>, Error> {
        // Unicast renewals from a local kernel over veth carry a partial UDP
        // checksum; the DHCP structure is validated anyway.
        let udp = UdpFrame::parse_with(frame, UdpChecksum::Skip).map_err(Error::Frame)?;
        if udp.dst_port != dhcp_wire::SERVER_PORT {
            return Err(Error::Ignored("not addressed to port 67"));
        }
        let msg = Repr::parse_bytes(udp.payload).map_err(Error::Message)?;
        let unicast_to_us = !udp.dst_ip.is_broadcast() && !udp.dst_mac.is_multicast();
        self.handle_message(&msg, udp.src_mac, unicast_to_us, now)
    }

    /// Handle a parsed client message. `src_mac` is the Ethernet source (the
    /// relay's MAC when `giaddr` is set), `unicast` whether it was sent to us
    /// rather than broadcast (tells RENEWING from REBINDING).
    pub fn handle_message(
        &mut self,
        msg: &Repr<'_>,
        src_mac: MacAddr,
        unicast: bool,
        now: Instant,
    ) -> Result<Option<Action>, Error> {
        self.expire(now);
        let mac = msg.client_hardware_addr;
        if !mac.is_station() {
            return Err(Error::Ignored("chaddr is not a unicast MAC"));
        }
        let relayed = !msg.relay_agent_ip.is_unspecified();
        if !relayed && mac != src_mac {
            self.forged_total += 1;
            let logged = self.forged.hit(now);
            if logged {
                log::warn!(target: "dhcp",
                    "refused: DHCP from {src_mac} names client {mac} without a relay (forged chaddr); {} in all", self.forged_total);
            }
            return Err(Error::ForgedClient {
                chaddr: mac,
                src: src_mac,
                logged,
            });
        }
        match msg.message_type {
            MessageType::Discover => {
                log::debug!(target: "dhcp", "DISCOVER from {mac} xid {:#010x}", msg.transaction_id);
                self.queue(msg, src_mac, Stage::Discover, LookupKind::Allocate, now)
            }
            MessageType::Request => {
                let requested = msg
                    .requested_ip
                    .or_else(|| (!msg.client_ip.is_unspecified()).then_some(msg.client_ip));
                let Some(requested) = requested else {
                    return Err(Error::Ignored(
                        "REQUEST without requested address or ciaddr",
                    ));
                };
                let stage = if let Some(sid) = msg.server_identifier {
                    if sid != Cell30::containing(requested).gateway() {
                        self.remove(mac);
                        log::debug!(target: "dhcp", "{mac} chose server {sid}, not us");
                        return Err(Error::Ignored("client chose another server"));
                    }
                    Stage::Selecting
                } else if msg.requested_ip.is_some() {
                    Stage::InitReboot
                } else if unicast {
                    Stage::Renewing
                } else {
                    Stage::Rebinding
                };
                log::debug!(target: "dhcp", "REQUEST ({stage:?}) from {mac} for {requested}");
                self.queue(msg, src_mac, stage, LookupKind::Locate, now)
            }
            MessageType::Release if relayed => Err(Error::Ignored(
                "relayed RELEASE: its sender cannot be checked behind a relay",
            )),
            MessageType::Decline if relayed => Err(Error::Ignored(
                "relayed DECLINE: its sender cannot be checked behind a relay",
            )),
            MessageType::Release => {
                self.remove(mac);
                let ip = msg.client_ip;
                if !is_station_address(ip) {
                    return Err(Error::Ignored("RELEASE of an address that is not N+1"));
                }
                let cell = Cell30::containing(ip);
                if msg.server_identifier.is_some_and(|s| s != cell.gateway()) {
                    return Err(Error::Ignored("RELEASE for another server"));
                }
                log::debug!(target: "dhcp", "RELEASE from {mac} of {cell}");
                Ok(Some(Action::Release { mac, cell }))
            }
            MessageType::Decline => {
                self.remove(mac);
                let ip = msg.requested_ip;
                if let (Some(ip), Some(sid)) = (ip, msg.server_identifier) {
                    if sid != Cell30::containing(ip).gateway() {
                        return Err(Error::Ignored("DECLINE for another server"));
                    }
                }
                // The CN logs it (once per interval): a flood must not
                // fill the log.
                log::debug!(target: "dhcp", "DECLINE from {mac}: address {ip:?} is in use on the link");
                Ok(Some(Action::Decline { mac, ip }))
            }
            MessageType::Inform => self
                .inform(msg, src_mac, now)
                .map(|r| Some(Action::Send(r))),
            MessageType::Offer | MessageType::Ack | MessageType::Nak => {
                Err(Error::Ignored("reply from another server"))
            }
            MessageType::Unknown(_) => Err(Error::Ignored("unknown message type")),
        }
    }

    fn remove(&mut self, mac: MacAddr) -> Option<Pending> {
        let i = self.pending.iter().position(|p| p.mac == mac)?;
        Some(self.pending.swap_remove(i))
    }

    fn queue(
        &mut self,
        msg: &Repr<'_>,
        src_mac: MacAddr,
        stage: Stage,
        kind: LookupKind,
        now: Instant,
    ) -> Result<Option<Action>, Error> {
        let mac = msg.client_hardware_addr;
        let requested_ip = match stage {
            Stage::Discover => msg.requested_ip,
            _ => msg.requested_ip.or(Some(msg.client_ip)),
        };
        let mut entry = Pending {
            mac,
            src_mac,
            xid: msg.transaction_id,
            stage,
            kind,
            broadcast: msg.broadcast,
            ciaddr: msg.client_ip,
            giaddr: msg.relay_agent_ip,
            requested_ip,
            server_id: msg.server_identifier,
            params: msg
                .parameter_request_list
                .map(|p| heapless::Vec::from_slice(&p[..p.len().min(64)]).unwrap_or_default()),
            client_id: msg
                .client_identifier
                .and_then(|c| heapless::Vec::from_slice(c).ok()),
            max_size: msg.max_size,
            received: now,
            asked: now,
        };
        if let Some(old) = self.pending.iter_mut().find(|p| p.mac == mac) {
            // A retransmission, or the client moved on (DISCOVER -> REQUEST):
            // answer the newest message, ask the MLR only when needed.
            let ask = old.kind != kind || now.saturating_duration_since(old.asked) >= LOOKUP_RETRY;
            if !ask {
                entry.asked = old.asked;
            }
            *old = entry;
            if !ask {
                return Ok(None);
            }
        } else if self.pending.len() >= self.capacity || self.pending.push(entry).is_err() {
            return Err(Error::TableFull(mac));
        }
        Ok(Some(Action::Lookup {
            mac,
            kind,
            requested_ip,
            hostname: msg.hostname.and_then(printable),
            relayed: !msg.relay_agent_ip.is_unspecified(),
        }))
    }

    /// The MLR's answer for `mac`: yields the OFFER/ACK/NAK to send, or
    /// `Err` (logged) when nothing is to be sent.
    pub fn binding_ready(
        &mut self,
        mac: MacAddr,
        result: Result<Lease, LookupError>,
        now: Instant,
    ) -> Result<Action, Error> {
        let out = self.binding_ready_inner(mac, result, now);
        match &out {
            Ok(Action::Send(r)) => log::debug!(
                target: "dhcp",
                "{} to {} ({}) via {}",
                r.message_type, r.client, r.your_ip, r.dst_mac
            ),
            Ok(_) => {}
            Err(e) => log::debug!(target: "dhcp", "{mac}: {e}"),
        }
        out
    }

    fn binding_ready_inner(
        &mut self,
        mac: MacAddr,
        result: Result<Lease, LookupError>,
        now: Instant,
    ) -> Result<Action, Error> {
        self.expire(now);
        let p = self.remove(mac).ok_or(Error::NoPending(mac))?;
        let lease = match result {
            Ok(l) if l.lease_secs > 0 => Ok(l),
            Ok(_) => Err(LookupError::NotFound),
            Err(e) => Err(e),
        };
        match (p.stage, lease) {
            (_, Err(LookupError::Unavailable(why))) => {
                // Per request: a flood must not fill the log (the CN logs
                // refusals once per interval).
                log::debug!(target: "dhcp", "no answer for {mac}: {why}");
                Err(Error::Ignored("lookup unavailable; client will retry"))
            }
            (Stage::Discover, Err(LookupError::NotFound)) => {
                log::info!(target: "dhcp", "no address for {mac}: the MLR allocated none");
                Err(Error::Ignored("no address allocated"))
            }
            (Stage::Discover, Ok(lease)) => self.reply(&p, MessageType::Offer, lease),
            (_, Err(LookupError::NotFound)) => self.nak(&p, "no binding for this client"),
            (stage, Ok(lease)) => {
                if p.requested_ip != Some(lease.cell.station()) {
                    return self.nak(&p, "requested address is not this client's");
                }
                if stage == Stage::Selecting && p.server_id != Some(lease.cell.gateway()) {
                    return Err(Error::Ignored("client chose another server"));
                }
                self.reply(&p, MessageType::Ack, lease)
            }
        }
    }

    fn lease_secs(&self, mlr: u32) -> u32 {
        if self.config.lease_time == 0 {
            mlr
        } else {
            mlr.min(self.config.lease_time)
        }
    }

    fn routes(&self, gateway: Ipv4Addr) -> heapless::Vec<Route, { dhcp_wire::MAX_ROUTES }> {
        let mut v = heapless::Vec::new();
        for &(net, len, gw) in &self.config.static_routes {
            let gw = if gw.is_unspecified() { gateway } else { gw };
            let _ = v.push(Route { net, len, gw });
        }
        // RFC 3442: a client that gets 121 ignores option 3, so the default
        // route must be in it.
        if !self.config.static_routes.iter().any(|r| r.1 == 0) {
            let _ = v.push(Route {
                net: Ipv4Addr::UNSPECIFIED,
                len: 0,
                gw: gateway,
            });
        }
        v
    }

    /// Fill the options a reply carries for `cell`, honouring option 55.
    fn fill_options<'a>(
        &'a self,
        r: &mut Repr<'a>,
        params: Option<&[u8]>,
        client_id: Option<&'a [u8]>,
        cell: Cell30,
    ) {
        let asked = |code: u8| params.is_none_or(|l| l.contains(&code));
        let gw = cell.gateway();
        r.server_identifier = Some(gw);
        r.subnet_mask = Some(Cell30::MASK);
        let _ = r.routers.push(gw);
        if asked(opt::DNS) {
            r.dns_servers = self
                .config
                .dns
                .iter()
                .copied()
                .take(dhcp_wire::MAX_ADDRS)
                .collect();
        }
        if asked(opt::DOMAIN_NAME) {
            r.domain_name = self.config.domain.as_deref().map(str::as_bytes);
        }
        if !self.config.static_routes.is_empty() {
            if asked(opt::CLASSLESS_ROUTES) {
                r.classless_routes = Some(self.routes(gw));
            }
            if params.is_some_and(|l| l.contains(&opt::MS_CLASSLESS_ROUTES)) {
                r.ms_classless_routes = Some(self.routes(gw));
            }
        }
        r.client_identifier = client_id;
    }

    fn reply(&self, p: &Pending, mt: MessageType, lease: Lease) -> Result<Action, Error> {
        let cell = lease.cell;
        let mut r = Repr::new(mt, p.xid, p.mac);
        r.broadcast = p.broadcast;
        r.relay_agent_ip = p.giaddr;
        r.your_ip = cell.station();
        if mt == MessageType::Ack {
            r.client_ip = p.ciaddr;
        }
        let secs = self.lease_secs(lease.lease_secs);
        r.lease_time = Some(secs);
        r.renewal_time = Some(secs / 2);
        r.rebinding_time = Some((u64::from(secs) * 7 / 8) as u32);
        self.fill_options(&mut r, p.params.as_deref(), p.client_id.as_deref(), cell);
        self.finish(p, r, cell.gateway()).map(Action::Send)
    }

    fn nak(&self, p: &Pending, why: &'static str) -> Result<Action, Error> {
        let ip = p.requested_ip.unwrap_or(p.ciaddr);
        let gw = Cell30::containing(ip).gateway();
        let mut r = Repr::new(MessageType::Nak, p.xid, p.mac);
        r.broadcast = p.broadcast;
        r.relay_agent_ip = p.giaddr;
        r.server_identifier = Some(gw);
        r.message = Some(why.as_bytes());
        r.client_identifier = p.client_id.as_deref();
        log::info!(target: "dhcp", "NAK to {} for {ip}: {why}", p.mac);
        self.finish(p, r, gw).map(Action::Send)
    }

    fn inform(&self, msg: &Repr<'_>, src_mac: MacAddr, now: Instant) -> Result<Reply, Error> {
        let ip = msg.client_ip;
        if !is_station_address(ip) {
            return Err(Error::Ignored(
                "INFORM from an address that is not N+1 of a /30",
            ));
        }
        let cell = Cell30::containing(ip);
        let mut r = Repr::new(
            MessageType::Ack,
            msg.transaction_id,
            msg.client_hardware_addr,
        );
        r.client_ip = ip;
        r.broadcast = msg.broadcast;
        r.relay_agent_ip = msg.relay_agent_ip;
        self.fill_options(
            &mut r,
            msg.parameter_request_list,
            msg.client_identifier,
            cell,
        );
        let p = Pending {
            mac: msg.client_hardware_addr,
            src_mac,
            xid: msg.transaction_id,
            stage: Stage::Renewing,
            kind: LookupKind::Locate,
            broadcast: msg.broadcast,
            ciaddr: ip,
            giaddr: msg.relay_agent_ip,
            requested_ip: None,
            server_id: None,
            params: None,
            client_id: None,
            max_size: msg.max_size,
            received: now,
            asked: now,
        };
        log::debug!(target: "dhcp", "INFORM from {} at {ip}", p.mac);
        self.finish(&p, r, cell.gateway())
    }

    /// Trim to the client's size limit, address per RFC 2131 §4.1, frame it.
    fn finish(&self, p: &Pending, mut r: Repr<'_>, src_ip: Ipv4Addr) -> Result<Reply, Error> {
        // Option 57 counts the whole IP datagram; 576 when absent.
        let limit = usize::from(p.max_size.unwrap_or(576).min(1500)) - 28;
        if r.buffer_len() > limit {
            r.ms_classless_routes = None;
        }
        if r.buffer_len() > limit {
            r.classless_routes = None;
        }
        if r.buffer_len() > limit {
            r.domain_name = None;
        }
        if r.buffer_len() > limit {
            r.dns_servers.clear();
        }
        let payload = r.to_vec().map_err(Error::Message)?;
        let (dst_mac, dst_ip, dst_port) = if !p.giaddr.is_unspecified() {
            (p.src_mac, p.giaddr, dhcp_wire::SERVER_PORT)
        } else if r.message_type == MessageType::Nak || (p.ciaddr.is_unspecified() && p.broadcast) {
            (
                MacAddr::BROADCAST,
                Ipv4Addr::BROADCAST,
                dhcp_wire::CLIENT_PORT,
            )
        } else if !p.ciaddr.is_unspecified() {
            (p.mac, p.ciaddr, dhcp_wire::CLIENT_PORT)
        } else {
            (p.mac, r.your_ip, dhcp_wire::CLIENT_PORT)
        };
        let frame = UdpFrame {
            src_mac: self.mac,
            dst_mac,
            src_ip,
            dst_ip,
            src_port: dhcp_wire::SERVER_PORT,
            dst_port,
            payload: &payload,
        }
        .to_vec()
        .map_err(Error::Frame)?;
        Ok(Reply {
            dst_mac,
            frame,
            message_type: r.message_type,
            client: p.mac,
            your_ip: r.your_ip,
        })
    }
}

#[cfg(test)]
mod tests;
