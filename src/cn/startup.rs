//! tmipd's start-up in the seed's order: read and check the settings,
//! detach, bring up the listener, core and data plane, purge what an
//! earlier run left, bind to the MLR (a refusal is fatal here), check for
//! pool conflicts, launch the station detection services, take back the
//! stations the MLR still places here. Then [`Daemon::run_loop`].

use super::core::{CnCore, CoreConfig};
use super::dataplane::{CnAddr, DataPlane};
use super::dataplane_guard::GuardedDataPlane;
use super::dataplane_netlink::NetlinkDataPlane;
use super::dhcp_io::DhcpIo;
use super::iface::{self, IfaceInfo};
use super::mlr_link::{BindFailure, LinkConfig, MlrLink};
use super::poll_loop::{Daemon, MlrTag, Timer};
use super::translate;
use crate::config::resolve;
use crate::config::tmipd::{CellRange, Source, TmipdConfig};
use crate::event_loop::{Poller, Signals, Timers, TokenSlab};
use crate::logging;
use crate::mlrp::{self, Message, NetworkKey};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream};
use std::time::{Duration, Instant};

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

pub(super) fn fail(msg: impl std::fmt::Display) -> i32 {
    eprintln!("tmipd: {msg}");
    log::error!(target: "cn", "{msg}");
    1
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
    let backup_addr = match &cfg.backup_mlr {
        Some(b) => match resolve(&b.host, b.port) {
            Ok(a) => Some(a),
            Err(e) => return fail(format!("{}: backup_mlr: {e}", cfg.source)),
        },
        None => None,
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
        if let Err(e) = crate::process_setup::daemonize() {
            return fail(format!("cannot detach: {e}"));
        }
    }
    if let Err(e) = logging::init(sink, cfg.debug_level) {
        return fail(format!("cannot open log file {}: {e}", cfg.log_file));
    }
    log::info!(target: "cn", "+ Logging started for TMip Correspondent Node [{}]", crate::VERSION);
    let mut d = match Daemon::bring_up(cfg, mlr_addr, backup_addr, cn_info, mobile_info, pools) {
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

/// The core's settings from the config: at start and on every HUP (so a
/// key the core uses reaches it in both; `reload.rs`).
pub(super) fn core_config(cfg: &TmipdConfig, me: CnAddr, shared_link: bool) -> CoreConfig {
    CoreConfig {
        me,
        reverse_tunnel: cfg.reverse_tunnel,
        max_stations: cfg.max_stations,
        max_peers: cfg.max_peers,
        fallback_lease_secs: cfg.lease_time,
        new_station_rate: cfg.new_station_rate,
        shared_link,
    }
}

impl Daemon {
    pub(super) fn bring_up(
        cfg: TmipdConfig,
        mlr_addr: SocketAddrV4,
        backup_addr: Option<SocketAddrV4>,
        cn_info: IfaceInfo,
        mobile_info: IfaceInfo,
        pools: Vec<CellRange>,
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
        let shared = super::link_mode::LinkMode::of(&cfg).is_shared();
        let core = CnCore::new(core_config(&cfg, me, shared));
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
            shared.then(|| super::link_mode::subnet(mobile_info.ip, mobile_info.prefix())),
        )
        .map_err(|e| format!("data plane: {e}"))?;
        log::info!(target: "cn", "  [Tunnel Controller]: Done.");
        let dp: Box<dyn DataPlane> = if cfg.source_guard && shared {
            // Hosts that are not stations (the LAN, the core when mobile_if
            // is cn_if) send on this link: "stations only" would cut them off.
            log::warn!(target: "cn", "  [Source guard]: Off on a shared mobile link ({}): hosts that are not stations use it; give the cells a link of their own to guard them", cfg.mobile_if);
            Box::new(dp)
        } else if cfg.source_guard {
            let dp = GuardedDataPlane::open(
                dp,
                &cfg.mobile_if,
                mobile_info.index,
                &cfg.tunnel_prefix,
                cfg.max_stations,
            )
            .map_err(|e| format!("{e} (set source_guard off to run without it)"))?;
            log::info!(target: "cn", "  [{}]: Active.", dp.describe());
            Box::new(dp)
        } else {
            log::warn!(target: "cn", "  [Source guard]: Off (source_guard off): stations' source addresses are not checked");
            Box::new(dp)
        };
        let signals = Signals::daemon_set().map_err(|e| format!("signals: {e}"))?;
        let bind = mlrp::CnBind {
            network_name: cfg.network_name.clone(),
            cn_name: cfg.cn_name.clone(),
            cn_addr: me.ip,
            cn_port: me.port,
            pools: pools
                .iter()
                .map(|p| mlrp::Pool {
                    first: p.first.network(),
                    last: p.last.broadcast(),
                })
                .collect(),
        };
        let mut link = LinkConfig::new(mlr_addr, key.clone(), bind);
        if let Some(b) = backup_addr {
            link = link.with_backup(b);
            // A register host that vanished holds a SYN unanswered: with
            // another register to try, give up on it sooner.
            link.connect_timeout = Duration::from_secs(2);
            log::info!(target: "cn", "  [MLR failover: primary {mlr_addr}, backup {b}]: Done.");
        }
        (link.heartbeat, link.deadline) = cfg.heartbeat();
        let mlr = MlrLink::new(link, Instant::now());
        Ok(Daemon {
            key,
            me,
            cn_info,
            mobile_info,
            pools,
            core,
            dp,
            timers: Timers::new(),
            signals,
            listener,
            peers: Vec::new(),
            peer_refusals: crate::log_throttle::LogThrottle::new(Duration::from_secs(10)),
            mlr,
            mlr_conn: None,
            dhcp: None,
            #[cfg(feature = "capture")]
            capture: None,
            hostapd: None,
            ubus: None,
            console: cfg.foreground && stdin_is_interactive(),
            stdin_buf: Vec::new(),
            quit: None,
            poller: Poller::new(),
            tokens: TokenSlab::new(),
            ready: Vec::new(),
            startup_done: false,
            leftovers: Vec::new(),
            conflict_list: None,
            last_register: None,
            ra_watch: None,
            cfg,
        })
    }

    /// The seed's start-up sequence. `Some(code)` means exit now.
    pub(super) fn start(&mut self) -> Option<i32> {
        log::info!(target: "cn", "+ Supported tunnels (in order of preference):");
        for b in self.dp.backends() {
            log::info!(target: "cn", "  + {b}");
        }
        // IPv6 is not mobile: say so if the mobility network has it.
        super::ipv6_check::warn_global_addresses(&self.cfg.mobile_if);
        self.ra_watch = super::ipv6_check::RaWatch::start(
            &self.cfg.mobile_if,
            self.mobile_info.index,
            Instant::now(),
        );
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
        let addr = self.mlr.register();
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
        let deadline = Instant::now() + Duration::from_secs(5);
        self.drive_until(deadline, |d| d.mlr.outcome().is_some());
        let name = self.cfg.network_name.clone();
        match self.mlr.outcome().cloned() {
            Some(Err(BindFailure::Refused(why))) => {
                log::error!(target: "cn", "+ Binding CN to the mobile network [{name}]: Bind refused ({why}).");
                eprintln!("tmipd: the MLR refused the bind: {why}");
                return Some(1);
            }
            Some(Ok(())) => {
                log::info!(target: "cn", "+ Binding CN to the mobile network [{name}]: Bind accepted.")
            }
            Some(Err(BindFailure::Unreachable(e))) => {
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
        log::info!(target: "cn", "+ Interface modes:");
        for l in super::link_mode::LinkMode::of(&self.cfg).report(&self.cfg) {
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
        if self.mlr.is_bound() {
            let left = std::mem::take(&mut self.leftovers);
            self.core.mlr_bound(&left);
            // Send the lookups now: with them still queued in the core, the
            // wait below would see nothing pending and end at once.
            self.execute_outputs();
            let deadline = Instant::now() + Duration::from_secs(3);
            self.drive_until(deadline, |d| !d.mlr.callers_waiting());
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
            if let Err(e) = crate::process_setup::write_pidfile(p) {
                log::warn!(target: "cn", "cannot write pid file {p}: {e}");
            }
        }
        None
    }

    pub(super) fn check_conflicts(&mut self) {
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
        if self
            .mlr
            .request(MlrTag::Conflicts, &Message::ListCns)
            .is_ok()
        {
            let deadline = Instant::now() + Duration::from_secs(3);
            self.drive_until(deadline, |d| d.conflict_list.is_some());
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
                    let t = CellRange {
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
        } else if !self.mlr.is_bound() {
            log::info!(target: "cn", "  + Not checked against other CNs (MLR not reachable)");
        }
        if found == 0 {
            log::info!(target: "cn", "  + None found");
        }
    }
}
