//! The tmipd process: start-up in the seed's order, then one poll loop over
//! the MLR link, the CN-to-CN listener and its connections, the DHCP packet
//! socket, the signalfd, the foreground console and the timer queue. All
//! decisions are the core's ([`CnCore`]); this shell turns I/O into core
//! events and core outputs into I/O.

use super::conn::MlrpConn;
use super::core::{CnCore, CoreConfig, MlrAnswer, Output};
use super::dataplane::{CnAddr, DataPlane};
use super::dataplane_netlink::NetlinkDataPlane;
use super::dhcp_io::DhcpIo;
use super::iface::{self, IfaceInfo};
use super::station_events::{self, HostapdLink};
use super::status;
use super::translate;
use super::ubus_object::{self, UbusLink};
use crate::config::tmipd::{Pool, Source, TmipdConfig};
use crate::event_loop::{Poller, Readiness, Signals, Timers, Token};
use crate::logging;
use crate::mlrp::{self, BindReply, CnEntry, ErrorCode, Incoming, Message, NetworkKey, RequestId};
use nix::sys::signal::Signal;
use std::collections::HashMap;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, ToSocketAddrs};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant};

const T_SIGNALS: Token = 0;
const T_STDIN: Token = 1;
const T_LISTENER: Token = 2;
const T_MLR: Token = 3;
const T_DHCP: Token = 4;
#[cfg(feature = "capture")]
const T_CAPTURE: Token = 5;
const T_HOSTAPD: Token = 6;
const T_UBUS: Token = 7;
/// Data-plane descriptors (userspace tunnels): T_DATA0 + i.
const T_DATA0: Token = 50;
const T_PEER0: Token = 100;

/// Most CN-to-CN connections served at once; more are refused.
const MAX_PEER_CONNS: usize = 64;
/// A CN-to-CN connection that has not completed its handshake in this
/// time, or has been silent this long, is closed (slots are few).
const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
const BACKOFF_MIN: Duration = Duration::from_secs(1);
const BACKOFF_MAX: Duration = Duration::from_secs(30);

/// Command-line overrides.
#[derive(Debug, Clone, Default)]
pub struct Options {
    pub config: String,
    pub foreground: bool,
    pub debug: Option<u8>,
    /// Read the config from this UCI section instead of an rc file.
    pub uci_section: Option<String>,
    /// The UCI file for `uci_section` (default /etc/config/tmip).
    pub uci_file: Option<String>,
}

impl Options {
    pub fn source(&self) -> Source {
        match &self.uci_section {
            Some(section) => Source::Uci {
                file: self
                    .uci_file
                    .clone()
                    .unwrap_or_else(|| crate::config::tmipd::UCI_FILE.to_string()),
                section: section.clone(),
            },
            None => Source::Rc(self.config.clone()),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Timer {
    MlrRetry,
    /// Ping the MLR; the number is the bind it belongs to (a ping chain of
    /// an earlier, lost link stops).
    MlrPing(u64),
    /// Give up on connection attempt N if it has not bound by now (a
    /// silent MLR host would otherwise hold a SYN for minutes).
    MlrDeadline(u64),
    Tick,
}

/// Why we sent a request on the MLR link.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pend {
    Core(u64),
    Bind,
    Ping,
    Conflicts,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Down,
    Handshake,
    Binding,
    Bound,
}

struct MlrLink {
    addr: SocketAddrV4,
    conn: Option<MlrpConn>,
    phase: Phase,
    backoff: Duration,
    last_heard: Instant,
    ping_every: Duration,
    pend: HashMap<RequestId, Pend>,
    /// Outcome of the latest bind attempt (for start-up).
    bind_result: Option<Result<(), String>>,
    /// Counts accepted binds.
    generation: u64,
    /// Counts connection attempts.
    attempt: u64,
    /// The MLR turned us away (wrong network name or secret, bad pools):
    /// a configuration error, fatal at start-up.
    refused: Option<String>,
}

pub struct Daemon {
    cfg: TmipdConfig,
    key: Option<NetworkKey>,
    me: CnAddr,
    cn_info: IfaceInfo,
    mobile_info: IfaceInfo,
    pools: Vec<Pool>,
    core: CnCore,
    dp: Box<dyn DataPlane>,
    timers: Timers<Timer>,
    signals: Signals,
    listener: TcpListener,
    peers: Vec<Option<MlrpConn>>,
    mlr: MlrLink,
    dhcp: Option<DhcpIo>,
    /// Arrival detection on mobile_if (ARP/IP from stations not served here).
    #[cfg(feature = "capture")]
    capture: Option<crate::capture::ArrivalCapture>,
    /// hostapd's control interface (station events), unless `hostapd_ctrl off`.
    hostapd: Option<HostapdLink>,
    /// The status object and the hostapd subscription, unless `ubus off`.
    ubus: Option<UbusLink>,
    console: bool,
    stdin_buf: Vec<u8>,
    quit: Option<i32>,
    /// The poll set and the ready list, rebuilt each round in the same
    /// buffers (the userspace tunnel makes every packet batch a round).
    poller: Poller,
    ready: Vec<(Token, Readiness)>,
    startup_done: bool,
    /// Station addresses an earlier run left, asked about once bound.
    leftovers: Vec<Ipv4Addr>,
    conflict_list: Option<Vec<CnEntry>>,
    ping_nonce: u64,
}

fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("tmipd: {msg}");
    log::error!(target: "cn", "{msg}");
    1
}

/// The error reply for a redirect the core could not carry out.
fn refusal(e: String) -> Message {
    let code = if e.contains("full") {
        ErrorCode::TableFull
    } else {
        ErrorCode::NotFound
    };
    Message::error(code, e)
}

/// Resolve `host:port` to the first IPv4 address.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddrV4, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve MLR '{host}': {e}"))?;
    addrs
        .filter_map(|a| match a {
            SocketAddr::V4(v) => Some(v),
            SocketAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("MLR '{host}' has no IPv4 address"))
}

pub fn load_config(opts: &Options) -> Result<TmipdConfig, String> {
    TmipdConfig::load_source(&opts.source()).map_err(|e| e.to_string())
}

/// The console reads stdin when it is a terminal or a pipe; not when it is
/// /dev/null (a service manager), where EOF would mean "quit" at once.
fn stdin_is_interactive() -> bool {
    if nix::unistd::isatty(0).unwrap_or(false) {
        return true;
    }
    nix::sys::stat::fstat(0)
        .map(|st| {
            st.st_mode & libc::S_IFMT == libc::S_IFIFO
                || st.st_mode & libc::S_IFMT == libc::S_IFSOCK
        })
        .unwrap_or(false)
}

fn short_mask() -> Ipv4Addr {
    crate::addr::Cell30::MASK
}

/// Start tmipd and run until TERM (or Ctrl+D on the console). Returns the
/// process exit code.
pub fn run(opts: Options) -> i32 {
    println!("+ Starting TMip Correspondent Node [{}]", crate::VERSION);
    println!("+ Loading settings from configuration file...");
    println!("+ Using {}", opts.source());
    let mut cfg = match load_config(&opts) {
        Ok(c) => c,
        Err(e) => return fail(e),
    };
    if opts.foreground {
        cfg.foreground = true;
    }
    if let Some(d) = opts.debug {
        cfg.debug_level = d;
    }
    let sink = if !cfg.log {
        logging::Sink::Off
    } else if cfg.foreground {
        logging::Sink::Stderr
    } else {
        println!("+ Switching into daemon mode (Logging to {})", cfg.log_file);
        logging::Sink::File(cfg.log_file.clone())
    };
    // Check what can be checked before detaching, so errors reach the terminal.
    let mlr_addr = match resolve(&cfg.mlr.host, cfg.mlr.port) {
        Ok(a) => a,
        Err(e) => return fail(format!("{}: mlr: {e}", cfg.source)),
    };
    let cn_info = match iface::query(&cfg.cn_if) {
        Ok(i) => i,
        Err(e) => return fail(format!("{}: cn_if: {e}", cfg.source)),
    };
    let mobile_info = match iface::query(&cfg.mobile_if) {
        Ok(i) => i,
        Err(e) => return fail(format!("{}: mobile_if: {e}", cfg.source)),
    };
    let mut pools = Vec::new();
    for spec in &cfg.addr_pools {
        let info = match iface::query(&spec.iface) {
            Ok(i) => i,
            Err(e) => return fail(format!("{}:{}: addr_pool: {e}", cfg.source, spec.line)),
        };
        match spec.resolve(info.ip, info.prefix()) {
            Ok(p) => pools.push(p),
            Err(e) => return fail(format!("{}:{}: addr_pool: {e}", cfg.source, spec.line)),
        }
    }
    if !cfg.foreground {
        if let Err(e) = crate::daemon::daemonize() {
            return fail(format!("cannot detach: {e}"));
        }
    }
    if let Err(e) = logging::init(sink, cfg.debug_level) {
        return fail(format!("cannot open log file {}: {e}", cfg.log_file));
    }
    log::info!(target: "cn", "+ Logging started for TMip Correspondent Node [{}]", crate::VERSION);
    let mut d = match Daemon::bring_up(cfg, mlr_addr, cn_info, mobile_info, pools) {
        Ok(d) => d,
        Err(e) => return fail(e),
    };
    if let Some(code) = d.start() {
        d.shutdown();
        return code;
    }
    d.run_loop();
    d.shutdown();
    d.quit.unwrap_or(0)
}

impl Daemon {
    fn bring_up(
        cfg: TmipdConfig,
        mlr_addr: SocketAddrV4,
        cn_info: IfaceInfo,
        mobile_info: IfaceInfo,
        pools: Vec<Pool>,
    ) -> Result<Daemon, String> {
        log::info!(target: "cn", "+ Bringing up TMipd services...");
        let key = match &cfg.secret {
            Some(s) => Some(NetworkKey::derive(s.as_bytes(), &cfg.network_name)),
            None => {
                log::warn!(target: "cn", "  No secret set: MLRP frames are not authenticated");
                None
            }
        };
        let me = CnAddr {
            ip: cn_info.ip,
            port: cfg.cn_port,
        };
        let listen_ip = cfg.listen_addr.unwrap_or(cn_info.ip);
        let listener = TcpListener::bind(SocketAddrV4::new(listen_ip, cfg.cn_port))
            .and_then(|l| l.set_nonblocking(true).map(|_| l))
            .map_err(|e| format!("cannot listen on {listen_ip}:{}: {e}", cfg.cn_port))?;
        log::info!(target: "cn", "  [MLRP Session Dispatcher ({listen_ip}:{})]: Done.", cfg.cn_port);
        let core = CnCore::new(CoreConfig {
            me,
            reverse_tunnel: cfg.reverse_tunnel,
            max_stations: cfg.max_stations,
            max_peers: cfg.max_peers,
            fallback_lease_secs: cfg.lease_time,
        });
        log::info!(target: "cn", "  [Station table ({} entries)]: Done.", core.stations().limit());
        let dp = NetlinkDataPlane::open(
            &cfg.mobile_if,
            mobile_info.index,
            mobile_info.mac,
            &cfg.tunnel_prefix,
        )
        .map_err(|e| format!("data plane: {e}"))?;
        let dp = super::dataplane_tunnel::TunnelDataPlane::open(
            dp,
            &cfg.mobile_if,
            &cfg.tunnel_prefix,
            cn_info.ip,
            cfg.tunnel_backend,
        )
        .map_err(|e| format!("data plane: {e}"))?;
        log::info!(target: "cn", "  [Tunnel Controller]: Done.");
        let signals = Signals::daemon_set().map_err(|e| format!("signals: {e}"))?;
        let now = Instant::now();
        Ok(Daemon {
            key,
            me,
            cn_info,
            mobile_info,
            pools,
            core,
            dp: Box::new(dp),
            timers: Timers::new(),
            signals,
            listener,
            peers: Vec::new(),
            mlr: MlrLink {
                addr: mlr_addr,
                conn: None,
                phase: Phase::Down,
                backoff: BACKOFF_MIN,
                last_heard: now,
                ping_every: Duration::from_secs(10),
                pend: HashMap::new(),
                bind_result: None,
                refused: None,
                generation: 0,
                attempt: 0,
            },
            dhcp: None,
            #[cfg(feature = "capture")]
            capture: None,
            hostapd: None,
            ubus: None,
            console: cfg.foreground && stdin_is_interactive(),
            stdin_buf: Vec::new(),
            quit: None,
            poller: Poller::new(),
            ready: Vec::new(),
            startup_done: false,
            leftovers: Vec::new(),
            conflict_list: None,
            ping_nonce: 1,
            cfg,
        })
    }

    /// The seed's start-up sequence. `Some(code)` means exit now.
    fn start(&mut self) -> Option<i32> {
        log::info!(target: "cn", "+ Supported tunnels (in order of preference):");
        for b in self.dp.backends() {
            log::info!(target: "cn", "  + {b}");
        }
        // Remember what an earlier run left adopted before purging it, so the
        // stations can be taken back once the MLR confirms them.
        self.leftovers = self.dp.leftover_stations();
        log::info!(target: "cn", "+ Purging system of stale tunnel devices:");
        match self.dp.purge_stale() {
            Ok(lines) => {
                for l in lines {
                    log::info!(target: "cn", "  + Removed {l}");
                }
            }
            Err(e) => log::warn!(target: "cn", "  + Purge failed: {e}"),
        }
        let addr = self.mlr.addr;
        match TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(3)) {
            Ok(_) => {
                log::info!(target: "cn", "+ Checking connectivity to MLR @ {}: Seems ok.", addr.ip())
            }
            Err(e) => {
                log::warn!(target: "cn", "+ Checking connectivity to MLR @ {}: Failed ({e}).", addr.ip())
            }
        }
        log::info!(target: "cn", "+ Established local address allocation pool:");
        if self.pools.is_empty() {
            log::info!(target: "cn", "  + None (stations get addresses from the network's other pools)");
        }
        for p in &self.pools {
            log::info!(target: "cn", "  + Available [{} --> {}] mask: {}", p.first.network(), p.last.network(), short_mask());
        }
        self.timers
            .schedule_in(Instant::now(), Duration::from_secs(1), Timer::Tick);
        self.mlr_connect();
        let deadline = Instant::now() + Duration::from_secs(5);
        self.drive_until(deadline, |d| d.mlr.bind_result.is_some());
        let name = self.cfg.network_name.clone();
        if let Some(why) = self.mlr.refused.clone() {
            log::error!(target: "cn", "+ Binding CN to the mobile network [{name}]: Bind refused ({why}).");
            eprintln!("tmipd: the MLR refused the bind: {why}");
            return Some(1);
        }
        match self.mlr.bind_result.clone() {
            Some(Ok(())) => {
                log::info!(target: "cn", "+ Binding CN to the mobile network [{name}]: Bind accepted.")
            }
            Some(Err(e)) => {
                log::warn!(target: "cn", "+ Binding CN to the mobile network [{name}]: Failed ({e}); retrying in the background.")
            }
            None => {
                log::warn!(target: "cn", "+ Binding CN to the mobile network [{name}]: Failed (no answer from the MLR); retrying in the background.")
            }
        }
        log::info!(target: "cn", "+ Using the following CN interface...");
        for l in self.cn_info.report() {
            log::info!(target: "cn", "{l}");
        }
        log::info!(target: "cn", "+ Using the following mobile facing interface...");
        for l in self.mobile_info.report() {
            log::info!(target: "cn", "{l}");
        }
        // Stations reach the network only through this CN's forwarding.
        if std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").is_ok_and(|v| v.trim() == "0") {
            log::warn!(target: "cn", "+ IPv4 forwarding is off (net.ipv4.ip_forward = 0): stations will reach only this CN");
        }
        self.check_conflicts();
        log::info!(target: "cn", "+ Launching final migration detection services...");
        if self.cfg.dhcp {
            match DhcpIo::open(&self.cfg, &self.mobile_info) {
                Ok(d) => {
                    self.dhcp = Some(d);
                    log::info!(target: "cn", "  [DHCP Server]: Done.");
                }
                Err(e) => log::warn!(target: "cn", "  [DHCP Server]: Failed ({e})."),
            }
        } else {
            log::info!(target: "cn", "  [DHCP Server]: Disabled (dhcp off).");
        }
        // Each unknown MAC at most every 100 ms: a station flapping between
        // cells several times a second is still seen on each return.
        #[cfg(feature = "capture")]
        match crate::capture::ArrivalCapture::open(
            &self.cfg.mobile_if,
            self.mobile_info.mac,
            Duration::from_millis(100),
        ) {
            Ok(c) => {
                self.capture = Some(c);
                log::info!(target: "cn", "  [ProxyAdapter (IP/ARP capture on {})]: Done.", self.cfg.mobile_if);
                log::info!(target: "cn", "+ Using IP/ARP activity for migration detection");
            }
            Err(e) => {
                log::warn!(target: "cn", "  [ProxyAdapter]: Failed ({e}): only DHCP detects arrivals.")
            }
        }
        self.start_station_events();
        self.startup_done = true;
        if self.mlr.phase == Phase::Bound {
            let left = std::mem::take(&mut self.leftovers);
            self.core.mlr_bound(&left);
            // Send the lookups now: with them still queued in the core, the
            // wait below would see nothing pending and end at once.
            self.execute_outputs();
            let deadline = Instant::now() + Duration::from_secs(3);
            self.drive_until(deadline, |d| {
                !d.mlr.pend.values().any(|p| matches!(p, Pend::Core(_)))
            });
        } else {
            log::info!(target: "cn", "+ Attempting network re-establish - Querying MLR: deferred until the MLR is reachable");
        }
        log::info!(
            target: "cn",
            "+ Correspondent node [{}] ({}) is now up and running...",
            self.me.ip,
            self.cfg.cn_name
        );
        if let Some(p) = &self.cfg.pid_file {
            if let Err(e) = crate::daemon::write_pidfile(p) {
                log::warn!(target: "cn", "cannot write pid file {p}: {e}");
            }
        }
        None
    }

    fn check_conflicts(&mut self) {
        log::info!(target: "cn", "+ Checking for address pool conflicts:");
        let mut found = 0;
        for p in &self.pools {
            for ip in [self.cn_info.ip, self.mobile_info.ip] {
                if p.contains(ip) {
                    found += 1;
                    log::warn!(target: "cn", "  + Conflict: pool [{} --> {}] holds this CN's own address {ip}", p.first.network(), p.last.network());
                }
            }
        }
        if self.mlr.phase == Phase::Bound {
            if let Some(c) = self.mlr.conn.as_mut() {
                if let Ok(id) = c.request(&Message::ListCns) {
                    self.mlr.pend.insert(id, Pend::Conflicts);
                    let deadline = Instant::now() + Duration::from_secs(3);
                    self.drive_until(deadline, |d| d.conflict_list.is_some());
                }
            }
        }
        if let Some(list) = self.conflict_list.take() {
            for e in list
                .iter()
                .filter(|e| translate::cn_addr(e.cn_ref()) != self.me)
            {
                for theirs in &e.pools {
                    let Some(tf) = crate::addr::Cell30::from_network(Ipv4Addr::from(
                        u32::from(theirs.first) & !3,
                    )) else {
                        continue;
                    };
                    let tl = crate::addr::Cell30::containing(theirs.last);
                    let t = Pool {
                        first: tf,
                        last: tl,
                    };
                    for p in &self.pools {
                        if p.overlaps(&t) {
                            found += 1;
                            log::warn!(target: "cn", "  + Conflict: pool [{} --> {}] overlaps CN @ {} [{}] pool [{} --> {}]",
                                p.first.network(), p.last.network(), e.addr, e.name, theirs.first, theirs.last);
                        }
                    }
                }
            }
        } else if self.mlr.phase != Phase::Bound {
            log::info!(target: "cn", "  + Not checked against other CNs (MLR not reachable)");
        }
        if found == 0 {
            log::info!(target: "cn", "  + None found");
        }
    }

    /// Run the loop until `done` or `deadline` (start-up steps).
    fn drive_until(&mut self, deadline: Instant, done: impl Fn(&Daemon) -> bool) {
        while !done(self) && Instant::now() < deadline && self.quit.is_none() {
            self.iterate(Some(deadline));
        }
    }

    fn run_loop(&mut self) {
        while self.quit.is_none() {
            self.iterate(None);
        }
    }

    /// One round: carry out core outputs, wait for I/O or a timer, dispatch.
    fn iterate(&mut self, cap: Option<Instant>) {
        self.execute_outputs();
        let mut poller = std::mem::take(&mut self.poller);
        poller.clear();
        poller.add(self.signals.as_raw_fd(), T_SIGNALS, false);
        if self.console && self.startup_done {
            poller.add(0, T_STDIN, false);
        }
        poller.add(self.listener.as_raw_fd(), T_LISTENER, false);
        if let Some(c) = &self.mlr.conn {
            poller.add(c.fd(), T_MLR, c.wants_write());
        }
        if let Some(d) = &self.dhcp {
            poller.add(d.fd(), T_DHCP, false);
        }
        if let Some(fd) = self.hostapd.as_ref().and_then(|h| h.fd()) {
            poller.add(fd, T_HOSTAPD, false);
        }
        if let Some((fd, w)) = self.ubus.as_ref().and_then(|u| u.poll_fd()) {
            poller.add(fd, T_UBUS, w);
        }
        for (i, p) in self.peers.iter().enumerate() {
            if let Some(c) = p {
                poller.add(c.fd(), T_PEER0 + i, c.wants_write());
            }
        }
        #[cfg(feature = "capture")]
        if let Some(c) = &self.capture {
            poller.add(c.fd(), T_CAPTURE, false);
        }
        let data_fds = self.dp.poll_fds();
        for (i, fd) in data_fds.iter().enumerate().take(T_PEER0 - T_DATA0) {
            poller.add(*fd, T_DATA0 + i, false);
        }
        let now = Instant::now();
        let mut timeout = self.timers.timeout(now);
        if let Some(cap) = cap {
            let c = cap.saturating_duration_since(now);
            timeout = Some(timeout.map_or(c, |t| t.min(c)));
        }
        let mut ready = std::mem::take(&mut self.ready);
        ready.clear();
        let waited = poller.wait(timeout, &mut ready);
        self.poller = poller;
        if let Err(e) = waited {
            self.ready = ready;
            log::error!(target: "cn", "poll: {e}");
            std::thread::sleep(Duration::from_millis(100));
            return;
        }
        for &(tok, r) in &ready {
            match tok {
                T_SIGNALS => self.on_signals(),
                T_STDIN => self.on_stdin(),
                T_LISTENER => self.on_accept(),
                T_MLR => self.on_mlr(r),
                T_DHCP => self.on_dhcp(),
                T_HOSTAPD => self.on_hostapd(),
                T_UBUS => self.on_ubus(Some(r)),
                #[cfg(feature = "capture")]
                T_CAPTURE => self.on_capture(),
                t if (T_DATA0..T_PEER0).contains(&t) => {
                    if let Some(fd) = data_fds.get(t - T_DATA0) {
                        self.dp.on_readable(*fd);
                    }
                }
                t if t >= T_PEER0 => self.on_peer(t - T_PEER0, r),
                _ => {}
            }
            self.execute_outputs();
        }
        self.ready = ready;
        let now = Instant::now();
        while let Some(t) = self.timers.pop_expired(now) {
            self.on_timer(t, now);
        }
        self.execute_outputs();
    }

    // ---------------------------------------------------------------- outputs

    fn execute_outputs(&mut self) {
        while let Some(o) = self.core.poll_output() {
            match o {
                Output::Mlr { tag, call } => {
                    let now = Instant::now();
                    let msg = translate::request(&call, self.me, self.ping_nonce);
                    let sent = match (&mut self.mlr.conn, self.mlr.phase) {
                        (Some(c), Phase::Bound) => c.request(&msg).map_err(|e| e.to_string()),
                        _ => Err("MLR unreachable".to_string()),
                    };
                    match sent {
                        Ok(id) => {
                            log::trace!(target: "mlrp", "-> MLR request {id}: {msg}");
                            self.mlr.pend.insert(id, Pend::Core(tag));
                        }
                        Err(e) => self.core.mlr_answer(tag, MlrAnswer::Error(e), now),
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
        let departed = self.core.take_departed();
        #[cfg(feature = "capture")]
        if let Some(c) = self.capture.as_mut() {
            for mac in departed {
                c.forget(mac);
            }
        }
        #[cfg(not(feature = "capture"))]
        drop(departed);
        if let Some(c) = self.mlr.conn.as_mut() {
            if let Err(e) = c.flush() {
                self.mlr_down(&format!("write: {e}"));
            }
        }
    }

    // ---------------------------------------------------------------- MLR link

    fn mlr_connect(&mut self) {
        match MlrpConn::connect(self.mlr.addr, self.key.as_ref()) {
            Ok(c) => {
                log::debug!(target: "mlrp", "connecting to MLR @ {}", self.mlr.addr);
                self.mlr.conn = Some(c);
                self.mlr.phase = Phase::Handshake;
                self.mlr.last_heard = Instant::now();
                self.mlr.attempt += 1;
                self.timers.schedule_in(
                    Instant::now(),
                    Duration::from_secs(10),
                    Timer::MlrDeadline(self.mlr.attempt),
                );
            }
            Err(e) => {
                self.mlr.bind_result = Some(Err(format!("connect: {e}")));
                self.mlr_retry_later(&format!("connect: {e}"));
            }
        }
    }

    fn mlr_retry_later(&mut self, why: &str) {
        let wait = self.mlr.backoff;
        self.mlr.backoff = (self.mlr.backoff * 2).min(BACKOFF_MAX);
        if self.startup_done {
            log::warn!(target: "mlrp", "MLR @ {} unreachable ({why}); serving local stations, retrying in {}s", self.mlr.addr.ip(), wait.as_secs());
        }
        self.timers
            .schedule_in(Instant::now(), wait, Timer::MlrRetry);
    }

    fn mlr_down(&mut self, why: &str) {
        let was_bound = self.mlr.phase == Phase::Bound;
        if let Some(mut c) = self.mlr.conn.take() {
            c.close(ErrorCode::Unavailable, "closing");
        }
        self.mlr.phase = Phase::Down;
        self.mlr.pend.clear();
        if self.mlr.bind_result.is_none() {
            self.mlr.bind_result = Some(Err(why.to_string()));
        }
        if was_bound {
            log::warn!(target: "mlrp", "lost the MLR link: {why}");
            self.core.mlr_lost(Instant::now());
        }
        self.mlr_retry_later(why);
    }

    fn on_mlr(&mut self, r: Readiness) {
        let Some(c) = self.mlr.conn.as_mut() else {
            return;
        };
        if r.writable || (c.is_connecting() && r.error) {
            if let Err(e) = c.on_writable() {
                self.mlr_down(&format!("connect: {e}"));
                return;
            }
        }
        if !(r.readable || r.error) {
            return;
        }
        let res = c.on_readable();
        self.mlr.last_heard = Instant::now();
        for ev in res.events {
            self.on_mlr_event(ev);
        }
        if let Some(why) = res.closed {
            self.mlr_down(&why);
        }
    }

    fn on_mlr_event(&mut self, ev: Result<Incoming, mlrp::MlrpError>) {
        let now = Instant::now();
        match ev {
            Ok(Incoming::Established { peer }) => {
                log::debug!(target: "mlrp", "MLR session established ({})", peer.software);
                let bind = Message::CnBind(mlrp::CnBind {
                    network_name: self.cfg.network_name.clone(),
                    cn_name: self.cfg.cn_name.clone(),
                    cn_addr: self.me.ip,
                    cn_port: self.me.port,
                    pools: self
                        .pools
                        .iter()
                        .map(|p| mlrp::Pool {
                            first: p.first.network(),
                            last: p.last.broadcast(),
                        })
                        .collect(),
                });
                if let Some(c) = self.mlr.conn.as_mut() {
                    match c.request(&bind) {
                        Ok(id) => {
                            self.mlr.pend.insert(id, Pend::Bind);
                            self.mlr.phase = Phase::Binding;
                        }
                        Err(e) => log::error!(target: "mlrp", "cannot encode bind: {e}"),
                    }
                }
            }
            Ok(Incoming::Reply { id, msg }) => {
                log::trace!(target: "mlrp", "<- MLR reply {id}: {msg}");
                match self.mlr.pend.remove(&id) {
                    Some(Pend::Bind) => self.on_bind_reply(msg),
                    Some(Pend::Ping) | None => {}
                    Some(Pend::Conflicts) => {
                        if let Message::CnList(l) = msg {
                            self.conflict_list = Some(l.entries);
                        } else {
                            self.conflict_list = Some(Vec::new());
                        }
                    }
                    Some(Pend::Core(tag)) => self.core.mlr_answer(tag, translate::answer(msg), now),
                }
            }
            Ok(Incoming::Request { id, msg }) => {
                log::trace!(target: "mlrp", "<- MLR request {id}: {msg}");
                let reply = self.on_pushed(msg, "MLR");
                if let Some(c) = self.mlr.conn.as_mut() {
                    if let Err(e) = c.reply(id, &reply) {
                        log::warn!(target: "mlrp", "cannot reply to the MLR: {e}");
                    }
                }
            }
            Err(e) if e.is_fatal() => {
                log::warn!(target: "mlrp", "MLR session error: {e}");
                let s = e.to_string();
                if self.mlr.phase != Phase::Bound {
                    if matches!(e.code(), ErrorCode::Unauthorized | ErrorCode::WrongNetwork) {
                        self.mlr.refused = Some(s.clone());
                    }
                    self.mlr.bind_result = Some(Err(s));
                }
            }
            Err(e) => log::warn!(target: "mlrp", "MLR sent something unusable: {e}"),
        }
    }

    fn on_bind_reply(&mut self, msg: Message) {
        match msg {
            Message::BindReply(BindReply::Accepted {
                ping_interval_secs, ..
            }) => {
                self.mlr.phase = Phase::Bound;
                self.mlr.backoff = BACKOFF_MIN;
                self.mlr.bind_result = Some(Ok(()));
                let every = u64::from(ping_interval_secs).clamp(1, 60);
                self.mlr.ping_every = Duration::from_secs(every);
                self.mlr.generation += 1;
                self.timers.schedule_in(
                    Instant::now(),
                    self.mlr.ping_every,
                    Timer::MlrPing(self.mlr.generation),
                );
                if self.startup_done {
                    log::info!(target: "cn", "+ Binding CN to the mobile network [{}]: Bind accepted (re-established link).", self.cfg.network_name);
                    let left = std::mem::take(&mut self.leftovers);
                    self.core.mlr_bound(&left);
                }
            }
            Message::BindReply(BindReply::Refused { code, text }) => {
                let why = format!("{code}: {text}");
                log::error!(target: "cn", "the MLR refused the bind: {why}");
                self.mlr.refused = Some(why.clone());
                self.mlr.bind_result = Some(Err(why.clone()));
                self.mlr_down(&format!("bind refused ({why})"));
            }
            other => {
                let why = format!("unexpected bind answer {other}");
                self.mlr.bind_result = Some(Err(why.clone()));
                self.mlr_down(&why);
            }
        }
    }

    /// A request pushed to us by the MLR or a peer CN; returns the reply.
    fn on_pushed(&mut self, msg: Message, from: &str) -> Message {
        let now = Instant::now();
        match msg {
            Message::Ping { nonce } => Message::Pong { nonce },
            Message::Redirect(r) => {
                log::debug!(target: "handover", "{from}: {} ({}) is now at CN {}", r.mac, r.cell, r.to);
                match self
                    .core
                    .redirect(r.cell, Some(r.mac), translate::cn_addr(r.to), now)
                {
                    Ok(()) => Message::Ack,
                    Err(e) => refusal(e),
                }
            }
            Message::Withdraw(w) => {
                log::debug!(target: "handover", "{from}: withdraw {} ({})", w.mac, w.cell);
                self.core.withdraw(w.cell);
                Message::Ack
            }
            Message::Move(m) => {
                // A peer tells us directly that a station is now at it: as the
                // parent we route there; otherwise we let go of it.
                let to = translate::cn_addr(m.to);
                let parent_here = self
                    .core
                    .stations()
                    .get(&m.mac)
                    .is_some_and(|s| s.parent.is_none());
                if parent_here {
                    match self.core.redirect(m.cell, Some(m.mac), to, now) {
                        Ok(()) => Message::Ack,
                        Err(e) => refusal(e),
                    }
                } else {
                    self.core.withdraw(m.cell);
                    Message::Ack
                }
            }
            other => Message::error(
                ErrorCode::Unsupported,
                format!("a CN does not serve {}", other.msg_type() as u16),
            ),
        }
    }

    // ---------------------------------------------------------------- peers

    fn on_accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, addr)) => {
                    let slot = self.peers.iter().position(|p| p.is_none());
                    let live = self.peers.iter().filter(|p| p.is_some()).count();
                    if live >= MAX_PEER_CONNS {
                        log::warn!(target: "mlrp", "refusing CN connection from {addr}: {MAX_PEER_CONNS} already open");
                        continue;
                    }
                    match MlrpConn::accepted(s, addr, self.key.as_ref()) {
                        Ok(c) => {
                            log::debug!(target: "mlrp", "CN-to-CN connection from {addr}");
                            match slot {
                                Some(i) => self.peers[i] = Some(c),
                                None => self.peers.push(Some(c)),
                            }
                        }
                        Err(e) => log::warn!(target: "mlrp", "connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!(target: "mlrp", "accept: {e}");
                    break;
                }
            }
        }
    }

    /// Close CN-to-CN connections that never finished their handshake or
    /// went silent, so idle or half-open sockets cannot hold every slot.
    fn sweep_peers(&mut self, now: Instant) {
        for slot in self.peers.iter_mut() {
            let Some(c) = slot else { continue };
            let idle = now.saturating_duration_since(c.last_active);
            let limit = if c.session.is_established() {
                PEER_IDLE_TIMEOUT
            } else {
                PEER_HANDSHAKE_TIMEOUT
            };
            if idle > limit {
                log::info!(target: "mlrp", "closing CN connection {} (idle {}s)", c.peer, idle.as_secs());
                c.close(ErrorCode::Unavailable, "idle");
                *slot = None;
            }
        }
    }

    fn on_peer(&mut self, i: usize, r: Readiness) {
        let Some(Some(c)) = self.peers.get_mut(i) else {
            return;
        };
        if r.writable {
            if let Err(e) = c.flush() {
                log::debug!(target: "mlrp", "CN connection {}: {e}", c.peer);
                self.peers[i] = None;
                return;
            }
        }
        if !(r.readable || r.error) {
            return;
        }
        let res = c.on_readable();
        let who = c.peer;
        for ev in res.events {
            match ev {
                Ok(Incoming::Request { id, msg }) => {
                    log::trace!(target: "mlrp", "<- CN {who} request {id}: {msg}");
                    let reply = self.on_pushed(msg, &format!("CN {who}"));
                    if let Some(Some(c)) = self.peers.get_mut(i) {
                        if let Err(e) = c.reply(id, &reply) {
                            log::warn!(target: "mlrp", "cannot reply to {who}: {e}");
                        }
                    }
                }
                Ok(Incoming::Established { peer }) => {
                    log::debug!(target: "mlrp", "CN-to-CN session with {who} ({}, {})", peer.role, peer.software);
                }
                Ok(Incoming::Reply { .. }) => {}
                Err(e) => log::warn!(target: "mlrp", "MLRP input from {who} refused: {e}"),
            }
        }
        if let Some(Some(c)) = self.peers.get_mut(i) {
            let _ = c.flush();
        }
        if let Some(why) = res.closed {
            log::debug!(target: "mlrp", "CN connection {who} closed: {why}");
            self.peers[i] = None;
        }
    }

    // ---------------------------------------------------------------- DHCP

    fn on_dhcp(&mut self) {
        let now = Instant::now();
        let Some(d) = self.dhcp.as_mut() else { return };
        for ev in d.on_readable(now) {
            match ev {
                super::dhcp_io::DhcpEvent::Lookup {
                    mac,
                    kind,
                    requested,
                } => self.core.dhcp_lookup(mac, kind, requested, now),
                super::dhcp_io::DhcpEvent::Released { mac } => self.core.station_released(mac),
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
    fn start_station_events(&mut self) {
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
        let mlr = self.mlr.addr.to_string();
        let id = status::Identity {
            name: &self.cfg.cn_name,
            network: &self.cfg.network_name,
            mlr: &mlr,
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
                self.timers
                    .schedule_in(now, Duration::from_secs(1), Timer::Tick);
            }
            Timer::MlrDeadline(attempt) => {
                if attempt == self.mlr.attempt
                    && self.mlr.conn.is_some()
                    && self.mlr.phase != Phase::Bound
                {
                    self.mlr_down("no answer within 10 s");
                }
            }
            Timer::MlrRetry => {
                if self.mlr.conn.is_none() {
                    self.mlr_connect();
                }
            }
            Timer::MlrPing(generation) => {
                if self.mlr.phase != Phase::Bound || generation != self.mlr.generation {
                    return;
                }
                if now.duration_since(self.mlr.last_heard) > self.mlr.ping_every * 3 {
                    self.mlr_down("no answer to pings");
                    return;
                }
                self.ping_nonce = self.ping_nonce.wrapping_add(1);
                if let Some(c) = self.mlr.conn.as_mut() {
                    if let Ok(id) = c.request(&Message::Ping {
                        nonce: self.ping_nonce,
                    }) {
                        self.mlr.pend.insert(id, Pend::Ping);
                    }
                }
                self.timers
                    .schedule_in(now, self.mlr.ping_every, Timer::MlrPing(generation));
            }
        }
    }

    // ---------------------------------------------------------------- signals

    fn on_signals(&mut self) {
        for s in self.signals.drain() {
            match s {
                Signal::SIGHUP => self.reload(),
                Signal::SIGUSR1 => self.write_status(),
                Signal::SIGUSR2 => {
                    let n = logging::step_level();
                    log::warn!(target: "cn", "+ Debug level now {n}");
                }
                Signal::SIGTERM | Signal::SIGINT => {
                    log::info!(target: "cn", "+ Received {s:?}: shutting down");
                    self.quit = Some(0);
                }
                _ => {}
            }
        }
    }

    fn reload(&mut self) {
        let origin = self.cfg.origin.clone();
        let path = origin.to_string();
        let new = match TmipdConfig::load_source(&origin) {
            Ok(c) => c,
            Err(e) => {
                log::error!(target: "cn", "+ Re-reading {path} failed, keeping the running configuration: {e}");
                return;
            }
        };
        let restart = self.cfg.restart_needed(&new);
        logging::set_level(new.debug_level);
        self.core.set_reverse_tunnel(new.reverse_tunnel);
        self.cfg.debug_level = new.debug_level;
        self.cfg.reverse_tunnel = new.reverse_tunnel;
        self.cfg.status_file = new.status_file.clone();
        self.cfg.lease_time = new.lease_time;
        self.cfg.dns = new.dns.clone();
        self.cfg.domain = new.domain.clone();
        self.cfg.static_routes = new.static_routes.clone();
        if let Some(d) = self.dhcp.as_mut() {
            d.reconfigure(&new);
        }
        log::info!(target: "cn", "+ Re-read {path}: debug_level, reverse_tunnel, status_file, lease_time, dns, domain, static_route applied");
        if !restart.is_empty() {
            log::warn!(target: "cn", "+ Changed settings that need a restart to take effect: {}", restart.join(", "));
        }
    }

    fn status_json(&self) -> Result<String, String> {
        let mlr = self.mlr.addr.to_string();
        status::json(
            &self.core,
            &status::Identity {
                name: &self.cfg.cn_name,
                network: &self.cfg.network_name,
                mlr: &mlr,
            },
            Instant::now(),
        )
    }

    fn write_status(&mut self) {
        let path = self.cfg.status_file.clone();
        let r = self.status_json().and_then(|j| {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, j + "\n")
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(()) => log::info!(target: "cn", "+ Status written to {path}"),
            Err(e) => log::error!(target: "cn", "+ Cannot write status to {path}: {e}"),
        }
    }

    // ---------------------------------------------------------------- console

    fn on_stdin(&mut self) {
        let mut buf = [0u8; 1024];
        // Straight from fd 0: std's buffered stdin could keep lines that
        // poll(2) then never reports.
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::read(0, buf.as_mut_ptr().cast(), buf.len()) };
        let r = if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        };
        match r {
            Ok(0) => {
                println!("+ End of input: shutting down");
                self.quit = Some(0);
                return;
            }
            Ok(n) => self.stdin_buf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => {
                log::warn!(target: "cn", "console: {e}; console off");
                self.console = false;
                return;
            }
        }
        while let Some(p) = self.stdin_buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.stdin_buf.drain(..=p).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            self.console_command(&line);
        }
        if self.stdin_buf.len() > 4096 {
            self.stdin_buf.clear();
        }
    }

    fn console_command(&mut self, line: &str) {
        let mut it = line.split_whitespace();
        let now = Instant::now();
        match (it.next(), it.next()) {
            (None, _) => {}
            (Some("debug"), None) => println!("debug level {}", logging::level()),
            (Some("debug"), Some(n)) => match n.parse::<u8>() {
                Ok(n) if n <= logging::MAX_LEVEL => {
                    logging::set_level(n);
                    println!("debug level {n}");
                }
                _ => println!("debug: want a level 0..7"),
            },
            (Some("status"), _) => {
                println!(
                    "CN {} ({}) on network [{}]; MLR @ {}: {}; {} station(s), {} peer CN(s); debug level {}",
                    self.me,
                    self.cfg.cn_name,
                    self.cfg.network_name,
                    self.mlr.addr,
                    if self.mlr.phase == Phase::Bound { "bound" } else { "not bound" },
                    self.core.stations().len(),
                    self.core.peers().len(),
                    logging::level()
                );
                println!(
                    "hostapd: {}; ubus: {}",
                    self.hostapd.as_ref().map_or("off".into(), |h| h.summary()),
                    self.ubus.as_ref().map_or("off".into(), |u| u.summary())
                );
                match self.status_json() {
                    Ok(j) => println!("{j}"),
                    Err(e) => println!("{e}"),
                }
            }
            (Some("clients"), _) => print!("{}", status::clients_text(&self.core, now)),
            (Some("cns"), _) => print!("{}", status::cns_text(&self.core)),
            (Some("help"), _) => {
                println!("commands: debug [N]  status  clients  cns  help  (Ctrl+D quits)")
            }
            (Some(other), _) => println!("unknown command '{other}' (try help)"),
        }
    }

    // ---------------------------------------------------------------- exit

    fn shutdown(&mut self) {
        log::info!(target: "cn", "+ Removing what this CN installed...");
        for a in self.core.teardown() {
            if let Err(e) = self.dp.apply(&a) {
                log::warn!(target: "cn", "{a}: {e}");
            }
        }
        if let Err(e) = self.dp.remove_all() {
            log::warn!(target: "cn", "cleanup: {e}");
        }
        if let Some(c) = self.mlr.conn.as_mut() {
            if self.mlr.phase == Phase::Bound {
                let _ = c.request(&Message::Unbind);
                let _ = c.flush();
            }
            c.close(ErrorCode::Unavailable, "CN shutting down");
        }
        if let Some(p) = &self.cfg.pid_file {
            let _ = std::fs::remove_file(p);
        }
        log::info!(target: "cn", "+ Correspondent node [{}] ({}) stopped.", self.me.ip, self.cfg.cn_name);
        log::logger().flush();
    }
}
