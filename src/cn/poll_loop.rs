//! The tmipd process after start-up: one poll loop over the MLR link, the
//! CN-to-CN listener and its connections, the DHCP packet socket, the
//! capture, hostapd and ubus, the data plane's descriptors, the signalfd,
//! the foreground console and the timer queue. All decisions are the
//! core's ([`CnCore`]) and the MLR link's ([`MlrLink`]); this shell turns
//! I/O into their events and their outputs into I/O.
//!
//! The shell is split by concern: `startup.rs` (the seed's start-up
//! sequence), `mlr_io.rs` (the MLR link's socket), `pushed.rs` (requests
//! the MLR or a peer sends us), `peer_listener.rs` (CN-to-CN connections),
//! `console.rs`, `reload.rs` (signals: reload, status).

use super::core::{CnCore, MlrAnswer, Output};
use super::dataplane::{CnAddr, DataPlane};
use super::dhcp_io::DhcpIo;
use super::iface::IfaceInfo;
use super::mlr_link::MlrLink;
use super::peer_conn::PeerConn;
use super::station_events::{self, HostapdLink};
use super::status;
use super::translate;
use super::ubus_object::{self, UbusLink};
use crate::config::tmipd::{CellRange, TmipdConfig};
use crate::event_loop::{Poller, Readiness, Signals, Timers, Token, TokenSlab};
use crate::mlrp::{self, CnEntry, NetworkKey};
use std::net::{Ipv4Addr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Timer {
    Tick,
}

/// Who asked the MLR something (answers come back with it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum MlrTag {
    /// The core, with its own tag.
    Core(u64),
    /// The start-up pool conflict check.
    Conflicts,
}

/// What a poll token stands for. Tokens come from a [`TokenSlab`] rebuilt
/// each round, so any number of each kind fits (no fixed ranges).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Signals,
    Stdin,
    Listener,
    Mlr,
    Dhcp,
    #[cfg(feature = "capture")]
    Capture,
    Hostapd,
    Ubus,
    /// A data-plane descriptor (a userspace tunnel).
    Data(RawFd),
    /// CN-to-CN connection in slot i.
    Peer(usize),
}

pub struct Daemon {
    pub(super) cfg: TmipdConfig,
    pub(super) key: Option<NetworkKey>,
    pub(super) me: CnAddr,
    pub(super) cn_info: IfaceInfo,
    pub(super) mobile_info: IfaceInfo,
    pub(super) pools: Vec<CellRange>,
    pub(super) core: CnCore,
    pub(super) dp: Box<dyn DataPlane>,
    pub(super) timers: Timers<Timer>,
    pub(super) signals: Signals,
    pub(super) listener: TcpListener,
    pub(super) peers: Vec<Option<PeerConn>>,
    /// Refused or evicted CN-to-CN connections: one warning per interval.
    pub(super) peer_refusals: crate::log_throttle::LogThrottle,
    /// The MLR link's state machine and its socket (mlr_io.rs).
    pub(super) mlr: MlrLink<MlrTag>,
    pub(super) mlr_conn: Option<mlrp::Conn>,
    pub(super) dhcp: Option<DhcpIo>,
    /// Arrival detection on mobile_if (ARP/IP from stations not served here).
    #[cfg(feature = "capture")]
    pub(super) capture: Option<crate::capture::ArrivalCapture>,
    /// hostapd's control interface (station events), unless `hostapd_ctrl off`.
    pub(super) hostapd: Option<HostapdLink>,
    /// The status object and the hostapd subscription, unless `ubus off`.
    pub(super) ubus: Option<UbusLink>,
    pub(super) console: bool,
    pub(super) stdin_buf: Vec<u8>,
    pub(super) quit: Option<i32>,
    /// The poll set, its tokens and the ready list, rebuilt each round in
    /// the same buffers (the userspace tunnel makes every packet batch a
    /// round).
    pub(super) poller: Poller,
    pub(super) tokens: TokenSlab<Source>,
    pub(super) ready: Vec<(Token, Readiness)>,
    pub(super) startup_done: bool,
    /// Station addresses an earlier run left, asked about once bound.
    pub(super) leftovers: Vec<Ipv4Addr>,
    pub(super) conflict_list: Option<Vec<CnEntry>>,
    /// The register of the latest bind (an `mlr_failover` event when the
    /// next bind is to another).
    pub(super) last_register: Option<std::net::SocketAddrV4>,
    /// Router advertisements on mobile_if in the first seconds (a warning).
    pub(super) ra_watch: Option<super::ipv6_check::RaWatch>,
}

/// The register in use, its epoch and replication state, for the status
/// documents and the console.
pub(super) fn mlr_view(link: &MlrLink<MlrTag>) -> (String, u32, String) {
    let st = link.register_status();
    (
        link.register().to_string(),
        st.map_or(0, |s| s.epoch),
        st.map_or(String::new(), |s| s.replication.to_string()),
    )
}

/// Put every source in the poll set, each under a token of its own.
/// `data` are the data plane's descriptors, any number of them.
pub(super) fn fill_poll_set(
    poller: &mut Poller,
    tokens: &mut TokenSlab<Source>,
    fixed: impl IntoIterator<Item = (RawFd, Source, bool)>,
    data: &[RawFd],
) {
    poller.clear();
    tokens.clear();
    for (fd, src, writable) in fixed {
        poller.add(fd, tokens.insert(src), writable);
    }
    for &fd in data {
        poller.add(fd, tokens.insert(Source::Data(fd)), false);
    }
}

impl Daemon {
    /// Run the loop until `done` or `deadline` (start-up steps).
    pub(super) fn drive_until(&mut self, deadline: Instant, done: impl Fn(&Daemon) -> bool) {
        while !done(self) && Instant::now() < deadline && self.quit.is_none() {
            self.iterate(Some(deadline));
        }
    }

    pub(super) fn run_loop(&mut self) {
        while self.quit.is_none() {
            self.iterate(None);
        }
    }

    /// The descriptors of this round, apart from the data plane's.
    fn fixed_sources(&self) -> Vec<(RawFd, Source, bool)> {
        let mut v = vec![(self.signals.as_raw_fd(), Source::Signals, false)];
        if self.console && self.startup_done {
            v.push((0, Source::Stdin, false));
        }
        v.push((self.listener.as_raw_fd(), Source::Listener, false));
        if let Some(c) = &self.mlr_conn {
            v.push((c.fd(), Source::Mlr, c.wants_write()));
        }
        if let Some(d) = &self.dhcp {
            v.push((d.fd(), Source::Dhcp, false));
        }
        if let Some(fd) = self.hostapd.as_ref().and_then(|h| h.fd()) {
            v.push((fd, Source::Hostapd, false));
        }
        if let Some((fd, w)) = self.ubus.as_ref().and_then(|u| u.poll_fd()) {
            v.push((fd, Source::Ubus, w));
        }
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(c) = p {
                v.push((c.io.fd(), Source::Peer(i), c.io.wants_write()));
            }
        }
        #[cfg(feature = "capture")]
        if let Some(c) = &self.capture {
            v.push((c.fd(), Source::Capture, false));
        }
        v
    }

    /// One round: carry out core outputs, wait for I/O or a timer, dispatch.
    fn iterate(&mut self, cap: Option<Instant>) {
        self.execute_outputs();
        let mut poller = std::mem::take(&mut self.poller);
        let mut tokens = std::mem::take(&mut self.tokens);
        fill_poll_set(
            &mut poller,
            &mut tokens,
            self.fixed_sources(),
            &self.dp.poll_fds(),
        );
        let now = Instant::now();
        let next = [self.timers.next_deadline(), self.mlr.poll_timeout(), cap]
            .into_iter()
            .flatten()
            .min();
        let timeout = next.map(|t| t.saturating_duration_since(now));
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let waited = poller.wait(timeout, &mut ready);
        self.poller = poller;
        if let Err(e) = waited {
            self.ready = ready;
            self.tokens = tokens;
            log::error!(target: "cn", "poll: {e}");
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        for &(tok, r) in &ready {
            let Some(&src) = tokens.get(tok) else {
                continue;
            };
            match src {
                Source::Signals => self.on_signals(),
                Source::Stdin => self.on_stdin(),
                Source::Listener => self.on_accept(),
                Source::Mlr => self.on_mlr(r),
                Source::Dhcp => self.on_dhcp(),
                Source::Hostapd => self.on_hostapd(),
                Source::Ubus => self.on_ubus(Some(r)),
                #[cfg(feature = "capture")]
                Source::Capture => self.on_capture(),
                Source::Data(fd) => {
                    self.dp.on_readable(fd);
                }
                Source::Peer(i) => self.on_peer(i, r),
            }
            self.execute_outputs();
        }
        self.ready = ready;
        self.tokens = tokens;
        let now = Instant::now();
        self.mlr_timeout(now);
        while let Some(t) = self.timers.pop_expired(now) {
            self.on_timer(t, now);
        }
        self.execute_outputs();
    }

    // ---------------------------------------------------------------- outputs

    pub(super) fn execute_outputs(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Mlr { tag, call } => {
                    let now = Instant::now();
                    let msg = translate::request(&call, self.me);
                    if let Err(e) = self.mlr.request(MlrTag::Core(tag), &msg) {
                        self.core
                            .mlr_answer(tag, MlrAnswer::Error(e.to_string()), now);
                    }
                }
                Output::Data(a) => {
                    log::debug!(target: "handover", "data plane: {a}");
                    if let Err(e) = self.dp.apply(&a) {
                        log::warn!(target: "tunnel", "{a}: {e}");
                    }
                }
                Output::Dhcp { mac, result } => {
                    if let Some(d) = self.dhcp.as_mut() {
                        d.binding_ready(mac, result);
                    }
                }
            }
        }
        while let Some(ev) = self.core.poll_event() {
            self.emit(&ev);
        }
        let departed = self.core.take_departed();
        #[cfg(feature = "capture")]
        if let Some(c) = self.capture.as_mut() {
            for mac in departed {
                c.forget(mac);
            }
        }
        #[cfg(not(feature = "capture"))]
        drop(departed);
        self.mlr_flush();
    }

    /// An event for the operator: the log (debug level 3) and ubus.
    pub(super) fn emit(&mut self, ev: &super::events::CnEvent) {
        log::debug!(target: "event", "{ev}");
        if let Some(u) = self.ubus.as_mut() {
            u.send_event(ev, self.me);
        }
    }

    // ---------------------------------------------------------------- DHCP

    fn on_dhcp(&mut self) {
        let now = Instant::now();
        let Some(d) = self.dhcp.as_mut() else { return };
        let events = d.on_readable(now);
        self.core.counters.dhcp_forged = d.forged();
        for ev in events {
            match ev {
                super::dhcp_io::DhcpEvent::Lookup {
                    mac,
                    kind,
                    requested,
                    relayed,
                } => self.core.dhcp_lookup(mac, kind, requested, relayed, now),
                super::dhcp_io::DhcpEvent::Released { mac, cell } => {
                    self.core.station_released(mac, cell)
                }
                super::dhcp_io::DhcpEvent::Declined { mac, ip } => {
                    self.core.station_declined(mac, ip)
                }
            }
        }
    }

    // ---------------------------------------------------------------- capture

    /// Frames from stations this CN does not serve: a station arrived here
    /// without DHCP (it roamed with its lease, or is configured statically).
    #[cfg(feature = "capture")]
    fn on_capture(&mut self) {
        let now = Instant::now();
        let Some(c) = self.capture.as_mut() else {
            return;
        };
        let stations = self.core.stations();
        let mut seen = Vec::new();
        let r = c.drain(
            now,
            |mac| {
                matches!(stations.get(mac), Some(s) if s.at == super::stations::Whereabouts::Here)
            },
            |a| {
                // DHCP is the DHCP server's to answer.
                if a.kind != crate::capture::ArrivalKind::Dhcp {
                    seen.push(a)
                }
            },
        );
        if let Err(e) = r {
            log::warn!(target: "capture", "{e}");
        }
        for a in seen {
            log::debug!(target: "handover", "arrival of {a} on {}", self.cfg.mobile_if);
            self.core.station_seen(Some(a.mac), a.ip, now);
        }
    }

    // ---------------------------------------------------------------- station events, ubus

    /// hostapd's control interface and ubus (station_events.rs, ubus_object.rs).
    pub(super) fn start_station_events(&mut self) {
        self.hostapd = HostapdLink::new(&self.cfg);
        match &self.hostapd {
            Some(h) => {
                log::info!(target: "cn", "  [Station events (hostapd control interface {})]: Done.", h.path().display())
            }
            None => {
                log::info!(target: "cn", "  [Station events (hostapd control interface)]: Disabled (hostapd_ctrl off).")
            }
        }
        self.ubus = UbusLink::new(&self.cfg);
        log::info!(target: "cn", "  [ubus ({})]: Done.", ubus_object::describe(&self.cfg));
        self.station_events_tick(Instant::now());
    }

    fn station_events_tick(&mut self, now: Instant) {
        if let Some(h) = self.hostapd.as_mut() {
            h.tick();
        }
        self.on_hostapd();
        if let Some(u) = self.ubus.as_mut() {
            u.tick(now);
        }
        self.on_ubus(None);
    }

    fn on_hostapd(&mut self) {
        let Some(h) = self.hostapd.as_mut() else {
            return;
        };
        let mut evs = Vec::new();
        h.drain(&mut evs);
        let now = Instant::now();
        for ev in &evs {
            station_events::apply(&mut self.core, ev, "hostapd_ctrl", &self.cfg.mobile_if, now);
        }
    }

    fn on_ubus(&mut self, r: Option<Readiness>) {
        let Some(u) = self.ubus.as_mut() else { return };
        if let Some(r) = r {
            u.on_ready(r);
        }
        let (mlr, epoch, repl) = mlr_view(&self.mlr);
        let id = status::Identity {
            name: &self.cfg.cn_name,
            network: &self.cfg.network_name,
            mlr: &mlr,
            mlr_epoch: epoch,
            mlr_replication: &repl,
        };
        u.process(&mut self.core, &id, Instant::now());
    }

    // ---------------------------------------------------------------- timers

    fn on_timer(&mut self, t: Timer, now: Instant) {
        match t {
            Timer::Tick => {
                self.sweep_peers(now);
                self.core.tick(now);
                if let Some(d) = self.dhcp.as_mut() {
                    d.tick(now);
                }
                self.station_events_tick(now);
                if self.ra_watch.as_mut().is_some_and(|w| !w.poll(now)) {
                    self.ra_watch = None;
                }
                self.dp.tick(now);
                self.timers
                    .schedule_in(now, Duration::from_secs(1), Timer::Tick);
            }
        }
    }

    // ---------------------------------------------------------------- exit

    pub(super) fn shutdown(&mut self) {
        log::info!(target: "cn", "+ Removing what this CN installed...");
        for a in self.core.teardown() {
            if let Err(e) = self.dp.apply(&a) {
                log::warn!(target: "cn", "{a}: {e}");
            }
        }
        if let Err(e) = self.dp.remove_all() {
            log::warn!(target: "cn", "cleanup: {e}");
        }
        self.mlr.shutdown();
        self.mlr_actions();
        if let Some(p) = &self.cfg.pid_file {
            let _ = std::fs::remove_file(p);
        }
        log::info!(target: "cn", "+ Correspondent node [{}] ({}) stopped.", self.me.ip, self.cfg.cn_name);
        log::logger().flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 64 userspace tunnels (PEER_CAPACITY) plus every other source: each
    /// descriptor gets a token of its own and a ready one is found again.
    /// The fixed token ranges this replaces polled only the first 50.
    #[test]
    fn every_one_of_64_tunnel_descriptors_is_polled() {
        let cap = crate::config::tmipd::PEER_CAPACITY;
        assert_eq!(cap, 64);
        let pipes: Vec<_> = (0..cap).map(|_| nix::unistd::pipe().unwrap()).collect();
        let data: Vec<RawFd> = pipes.iter().map(|(r, _)| r.as_raw_fd()).collect();
        let peer_pipes: Vec<_> = (0..64).map(|_| nix::unistd::pipe().unwrap()).collect();
        let fixed: Vec<(RawFd, Source, bool)> = peer_pipes
            .iter()
            .enumerate()
            .map(|(i, (r, _))| (r.as_raw_fd(), Source::Peer(i), false))
            .collect();
        let mut poller = Poller::new();
        let mut tokens = TokenSlab::new();
        // Twice, as the loop does each round: the set is rebuilt in place.
        for _ in 0..2 {
            fill_poll_set(&mut poller, &mut tokens, fixed.clone(), &data);
        }
        assert_eq!(poller.len(), 128);
        for (_, w) in pipes.iter().chain(&peer_pipes) {
            nix::unistd::write(w, b"x").unwrap();
        }
        let mut ready = Vec::new();
        poller
            .wait(Some(Duration::from_millis(1000)), &mut ready)
            .unwrap();
        let mut seen_data: Vec<RawFd> = Vec::new();
        let mut seen_peers: Vec<usize> = Vec::new();
        for (t, r) in ready {
            assert!(r.readable);
            match tokens.get(t) {
                Some(Source::Data(fd)) => seen_data.push(*fd),
                Some(Source::Peer(i)) => seen_peers.push(*i),
                other => panic!("token {t}: {other:?}"),
            }
        }
        seen_data.sort();
        let mut want = data.clone();
        want.sort();
        assert_eq!(seen_data, want, "every tunnel descriptor reported");
        seen_peers.sort();
        assert_eq!(seen_peers, (0..64).collect::<Vec<_>>());
    }
}
