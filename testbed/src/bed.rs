//! The mobility test bed on one machine (DESIGN.md "Test bed on one
//! machine"): namespaces `mlr`, `cn1..cnN` (core interface `core0` on the
//! core segment, mobile interface `mob0` into its cell), optionally a central
//! CN `cnc` that owns the address pool, `srv` (a server on the wider network
//! behind the core) and one namespace per client (MS). The core segment and
//! the cells are bridges inside an `air` namespace.
//!
//! Roaming is [`TestBed::move_client`]: the air-side end of the client's veth
//! is re-attached to another cell's bridge (`ip link set mK master cellN`),
//! so the client's link stays UP and its ARP cache keeps the old gateway MAC,
//! exactly as on Wi-Fi. Never move a veth between namespaces: the link flap
//! would hide the gratuitous-ARP problem the CN must solve.
//!
//! Two routing modes:
//! - [`Routing::Daemons`]: mlrd and one tmipd per CN, started with `.rc`
//!   files written here; the daemons do DHCP, arrival detection, tunnels and
//!   routes. This is the real thing.
//! - [`Routing::StandIn`]: no daemons; the test bed itself plays the
//!   network side of a handover with plain static routes (no tunnels) and a
//!   gratuitous ARP from the new CN. It proves the bed, the move mechanics,
//!   the measurement tools and the clean-up. Its figures are NOT TMip
//!   figures and must never be presented as such.
//!
//! The same bed serves the daemon-level tests (tmipd's DHCP, hostapd,
//! ubus, operations): [`TestBed::set_rc`] adds a test's own rc lines, the
//! daemons can be started, stopped and crashed one by one, and clients run
//! busybox udhcpc, ISC dhclient or dhcpcd, whose scripts log their events.
//!
//! Address plan: core segment 10.0.0.0/24 (CN `k` at 10.0.0.k, the MLR at
//! .250, `srv` at .100, the central CN at .10); CN `k`'s cell 10.k.0.0/24
//! with the CN at 10.k.0.1 and its pool 10.k.0.4-10.k.0.251; the central
//! CN's pool 10.9.0.0/24.
//!
//! CN shapes ([`Options::shapes`], docs/TMIPD.md "Deployment shapes"): the
//! default is a separate mobile interface; [`CnShape::SharedCore`] is a CN
//! with one interface whose cell is the core bridge (pool [`SHARED_POOL`]
//! in the core's /24); [`CnShape::Bridge`] is OpenWrt's `br-lan` with two
//! ports (`cellK` and `cellKb`). [`TestBed::add_host`] plugs a plain host
//! (not a station) into any bridge.
//!
//! Used by the namespace tests (`mod common; #[path = "common/testbed.rs"]
//! mod testbed;`, a re-export of this module) and by the lab examples.
//! Everything it creates is removed on drop; processes are ended by the pid
//! it started.

use crate::dir::{read, RunDir};
use crate::ns::{bin, require_root, sh, sh_out, veth, wait_for, Netns};
use crate::process::Spawn;
pub use crate::process::{spawn_in, Proc};
use crate::rc::{mlrd_rc, Rc};
use crate::status::{self, Json};
use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};
use tmip::addr::Cell30;

/// Who does the routing of a handover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routing {
    /// mlrd + tmipd (the real thing).
    Daemons,
    /// The test bed moves static routes itself (test-bed self-test only).
    StandIn,
}

/// How CN `k` is wired (the deployment shapes of docs/TMIPD.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CnShape {
    /// `core0` on the core, `mob0` into its own cell bridge `cellK`.
    Separate,
    /// One interface (the seed's "Mobile_IF & CN_IF"): `mobile_if` is
    /// `core0`, its cell is the core bridge itself (where `srv` and the
    /// MLR are), and its pool [`SHARED_POOL`] lies in the core's /24, so
    /// `srv` has its stations on-link.
    SharedCore,
    /// OpenWrt: `mobile_if` is a bridge `br-lan` inside the CN holding two
    /// ports: `lan1` into cell bridge `cellK` (the radio) and `lan2` into
    /// `cellKb` (a wired LAN port).
    Bridge,
}

/// Pool of a [`CnShape::SharedCore`] CN: part of the core's 10.0.0.0/24.
pub const SHARED_POOL: (Ipv4Addr, Ipv4Addr) =
    (Ipv4Addr::new(10, 0, 0, 128), Ipv4Addr::new(10, 0, 0, 191));
/// The bridge of a [`CnShape::Bridge`] CN.
pub const BRIDGE_IF: &str = "br-lan";

/// Shape of the bed.
#[derive(Clone, Debug)]
pub struct Options {
    pub cns: usize,
    pub routing: Routing,
    /// CNs offer no pool; a central tmipd in the core (`cnc`) owns one.
    pub central_pool: bool,
    /// tmipd/mlrd debug level written into the rc files.
    pub debug_level: u8,
    /// Keep the run directory (rc files, logs) after drop.
    pub keep_dir: bool,
    /// Put mlrd's `state_dir` (its fsynced journal) on tmpfs (/dev/shm)
    /// instead of the run directory's disk.
    pub mlr_state_tmpfs: bool,
    /// Lines for every tmipd.rc (e.g. `max_peers 64`); a key replaces the
    /// bed's line of that key. [`TestBed::set_rc`] adds lines per CN.
    pub tmipd_extra: Vec<String>,
    /// Wiring of CN k is `shapes[k - 1]` (missing: [`CnShape::Separate`]).
    pub shapes: Vec<CnShape>,
    /// A backup register: namespace `mlrb` at [`BACKUP_MLR_IP`], mlrd there
    /// with `primary_mlr`, the primary with `backup_mlr`, every tmipd with
    /// `backup_mlr`.
    pub backup_mlr: bool,
    /// tmipd's `tunnel_backend` (auto, kernel, userspace). Default: the
    /// environment's `TMIP_TUNNEL_BACKEND` (the radio lab runs the roaming
    /// tests with `kernel`), else `auto`.
    pub tunnel_backend: String,
}

/// `TMIP_TUNNEL_BACKEND`, or `auto`.
pub fn tunnel_backend_from_env() -> String {
    std::env::var("TMIP_TUNNEL_BACKEND").unwrap_or_else(|_| "auto".to_string())
}

impl Default for Options {
    fn default() -> Self {
        Options {
            cns: 3,
            routing: Routing::Daemons,
            central_pool: false,
            debug_level: 3,
            keep_dir: false,
            mlr_state_tmpfs: false,
            tmipd_extra: Vec::new(),
            tunnel_backend: tunnel_backend_from_env(),
            shapes: Vec::new(),
            backup_mlr: false,
        }
    }
}

pub const CORE_IF: &str = "core0";
pub const MOBILE_IF: &str = "mob0";
pub const CLIENT_IF: &str = "eth0";
pub const MLR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 250);
pub const BACKUP_MLR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 251);

/// One register of a pair ([`Options::backup_mlr`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Register {
    /// mlrd in namespace `mlr` (the bed's only one without a backup).
    Primary,
    /// mlrd in namespace `mlrb`.
    Backup,
}

impl Register {
    /// File name stem of its rc, output, status and state.
    pub fn stem(self) -> &'static str {
        match self {
            Register::Primary => "mlrd",
            Register::Backup => "mlrd-backup",
        }
    }
    /// Its address on the core.
    pub fn ip(self) -> Ipv4Addr {
        match self {
            Register::Primary => MLR_IP,
            Register::Backup => BACKUP_MLR_IP,
        }
    }
    /// The other register of the pair.
    pub fn other(self) -> Register {
        match self {
            Register::Primary => Register::Backup,
            Register::Backup => Register::Primary,
        }
    }
}
pub const SRV_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 100);
pub const CENTRAL_CORE_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 10);
pub const CENTRAL_POOL_IF: &str = "pool0";
pub const NETWORK_NAME: &str = "tmip-testbed";
pub const SECRET: &str = "testbed-shared-secret";

/// Core address of CN `k` (1-based).
pub fn cn_core_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, k as u8)
}
/// Mobile-interface address of CN `k`: 10.k.0.1/24 (its cell's subnet).
pub fn cn_mobile_ip(k: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, k as u8, 0, 1)
}

/// A correspondent node's namespace.
pub struct Cn {
    /// 1-based; 0 for the central CN.
    pub index: usize,
    pub shape: CnShape,
    pub ns: Netns,
    pub core_ip: Ipv4Addr,
    pub mobile_if: String,
    pub mobile_ip: Ipv4Addr,
    pub rc: PathBuf,
    /// The test's own rc lines on top of the bed's (see [`TestBed::set_rc`]).
    pub rc_extra: Vec<String>,
    /// tmipd's stdout and stderr, appended over restarts (foreground tmipd
    /// logs to stderr).
    pub log: PathBuf,
    /// tmipd's `status_file`.
    pub status: PathBuf,
    pub daemon: Option<Proc>,
}

impl Cn {
    pub fn label(&self) -> String {
        if self.index == 0 {
            "CNc".into()
        } else {
            format!("CN{}", self.index)
        }
    }

    /// The `cn_name` the bed gives it (what `tmipd -E` and the MLR show).
    pub fn cn_name(&self) -> String {
        format!("{} test-bed", self.label())
    }

    /// Its cell's subnet as a text prefix, e.g. `10.1.0.`.
    pub fn mobile_prefix(&self) -> String {
        let o = self.mobile_ip.octets();
        format!("{}.{}.{}.", o[0], o[1], o[2])
    }

    /// `ip -4 addr show dev` of its mobile interface.
    pub fn mobile_addrs(&self) -> String {
        self.ns
            .sh(&format!("ip -4 addr show dev {}", self.mobile_if))
    }

    /// Start tmipd (`-F -f rc`, then `args`) with the rc file as it is now,
    /// and wait for `is now up and running`. Returns its pid.
    pub fn start(&mut self, args: &[&str], timeout: Duration) -> Result<u32, String> {
        let label = self.label().to_lowercase();
        let p = Spawn::new(
            &self.ns.name,
            &format!("tmipd {label}"),
            bin("tmipd"),
            &self.log,
        )
        .args(["-F", "-f"])
        .arg(&self.rc)
        .args(args)
        .append()
        .start_until("is now up and running", timeout)?;
        let pid = p.pid().unwrap_or_default();
        self.daemon = Some(p);
        // Say which tunnel backend it chose (the lab's output shows it).
        if let Some(l) = read(&self.log)
            .lines()
            .rev()
            .find(|l| l.contains("new tunnels use"))
        {
            eprintln!("{label}: {}", l.trim_start_matches(|c: char| c != '+'));
        }
        Ok(pid)
    }

    /// The pid of the tmipd the bed started, if it runs.
    pub fn pid(&self) -> Option<u32> {
        self.daemon.as_ref().and_then(Proc::pid)
    }

    /// Everything tmipd said (all runs).
    pub fn log_text(&self) -> String {
        read(&self.log)
    }

    /// Wait up to `secs` until the log after byte `from` contains `needle`.
    pub fn wait_log(&self, needle: &str, from: usize, secs: u64) -> bool {
        wait_for(Duration::from_secs(secs), || {
            let t = read(&self.log);
            t.get(from..).unwrap_or("").contains(needle).then_some(())
        })
        .is_some()
    }

    /// SIGTERM, and assert tmipd exits cleanly (removing what it installed).
    pub fn stop(&mut self) {
        if let Some(mut p) = self.daemon.take() {
            let st = p.stop(Duration::from_secs(10));
            assert!(
                st.is_some_and(|s| s.success()),
                "tmipd {} did not exit cleanly on TERM: {st:?}\n{}",
                self.label(),
                self.log_text()
            );
        }
    }

    /// SIGKILL: a crash, which leaves its kernel state behind.
    pub fn crash(&mut self) {
        if let Some(mut p) = self.daemon.take() {
            p.kill();
        }
    }
}

/// A mobile station: its own namespace, `eth0` plugged into a cell.
pub struct Client {
    pub ns: Netns,
    /// Its interface (`eth0` unless made by [`TestBed::add_client_if`]).
    pub ifname: String,
    /// Name of the air-side veth end (the "radio" that roams).
    pub air_port: String,
    pub mac: String,
    /// 1-based cell it is attached to now.
    pub cell: usize,
    /// Its /30 once configured (DHCP or static).
    pub addr: Option<Cell30>,
    pub dhcp: Option<Proc>,
    /// Lines `EVENT ADDRESS [SERVER]` written by the DHCP client's script.
    pub events: PathBuf,
    /// Stand-in bookkeeping: the CN currently answering for it.
    standin_at: Option<usize>,
}

impl Client {
    /// The DHCP client's events so far: (event, address).
    pub fn events(&self) -> Vec<(String, String)> {
        read(&self.events)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect()
    }

    /// The DHCP client's event lines as written (udhcpc's carry the lease's
    /// options: `lease=`, `dns=`, `domain=`, `routes=`).
    pub fn event_lines(&self) -> Vec<String> {
        read(&self.events).lines().map(String::from).collect()
    }

    /// Wait up to `secs` for an event (after the first `skip`) named one of
    /// `names`; its address.
    pub fn wait_event(&self, names: &[&str], skip: usize, secs: u64) -> Option<String> {
        wait_for(Duration::from_secs(secs), || {
            self.events()
                .into_iter()
                .skip(skip)
                .find(|(e, _)| names.contains(&e.as_str()))
                .map(|(_, a)| a)
        })
    }

    /// The IPv4 address on its interface (`a.b.c.d/len`), if one is there.
    pub fn address(&self) -> Option<String> {
        let out = self
            .ns
            .sh(&format!("ip -4 -o addr show dev {}", self.ifname));
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .map(str::to_string)
    }

    /// Wait up to `timeout` for the DHCP client to exit by itself (`-q`,
    /// `-n`); its exit status.
    pub fn wait_dhcp(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.dhcp.as_mut()?.wait(timeout)
    }

    /// Stop the DHCP client with SIGTERM (udhcpc `-R` then releases;
    /// dhcpcd takes its privilege-separation helpers down only on TERM).
    pub fn stop_dhcp(&mut self) {
        if let Some(mut p) = self.dhcp.take() {
            p.stop(Duration::from_secs(5));
        }
    }
}

/// The whole bed. Drop removes every namespace and process it made.
pub struct TestBed {
    pub opts: Options,
    pub dir: PathBuf,
    // Processes first, so they die before their namespaces go.
    pub mlrd: Option<Proc>,
    /// The backup register's mlrd ([`Options::backup_mlr`]).
    pub mlrd_backup: Option<Proc>,
    pub clients: Vec<Client>,
    pub cns: Vec<Cn>,
    pub central: Option<Cn>,
    pub srv: Netns,
    pub mlr: Netns,
    /// The backup register's namespace ([`Options::backup_mlr`]).
    pub mlrb: Option<Netns>,
    pub air: Netns,
    /// Plain hosts (not stations) added with [`TestBed::add_host`].
    pub hosts: Vec<Netns>,
    /// The test's own mlrd.rc lines (see [`TestBed::set_mlrd_rc`]).
    mlrd_extra: Vec<String>,
    /// Removes `dir` (unless `keep_dir`) after everything else.
    _run: RunDir,
}

impl Drop for TestBed {
    fn drop(&mut self) {
        for c in &mut self.clients {
            c.stop_dhcp();
        }
        for cn in self.cns.iter_mut().chain(self.central.iter_mut()) {
            cn.crash();
        }
        if let Some(p) = self.mlrd.as_mut() {
            p.kill();
        }
        if let Some(p) = self.mlrd_backup.as_mut() {
            p.kill();
        }
        if self.opts.mlr_state_tmpfs {
            let _ = fs::remove_dir_all(self.mlr_tmpfs_state());
            let _ = fs::remove_dir_all(self.mlr_tmpfs_state().with_extension("backup"));
        }
    }
}

fn sysctl_router(ns: &Netns) {
    // Forwarding on; no reverse-path filter (tunnelled and moved traffic
    // arrives asymmetrically); no ICMP redirects (they would teach srv a
    // shortcut that outlives the next move).
    ns.sh(
        "sysctl -qw net.ipv4.ip_forward=1 net.ipv4.conf.all.rp_filter=0 \
         net.ipv4.conf.default.rp_filter=0 net.ipv4.conf.all.send_redirects=0 \
         net.ipv4.conf.default.send_redirects=0 net.ipv4.conf.all.accept_redirects=0",
    );
}

fn sysctl_host(ns: &Netns) {
    ns.sh(
        "sysctl -qw net.ipv4.conf.all.rp_filter=0 net.ipv4.conf.default.rp_filter=0 \
         net.ipv4.conf.all.accept_redirects=0 net.ipv4.conf.default.accept_redirects=0",
    );
}

impl TestBed {
    /// Build the namespaces, bridges and links (no daemons yet: see
    /// [`TestBed::start_daemons`]).
    pub fn new(opts: Options) -> TestBed {
        require_root();
        for tool in ["ip", "bridge"] {
            assert!(
                sh_out(&format!("command -v {tool}")).status.success(),
                "{tool} missing: run scripts/setup"
            );
        }
        let mut run = RunDir::new("tmipbed");
        run.keep(opts.keep_dir);
        let dir = run.to_path_buf();
        let air = Netns::new("air");
        let mlr = Netns::new("mlr");
        let srv = Netns::new("srv");
        air.sh("ip link add core type bridge forward_delay 0 stp_state 0 && ip link set core up");

        let mut bed = TestBed {
            opts: opts.clone(),
            dir,
            mlrd: None,
            mlrd_backup: None,
            clients: Vec::new(),
            cns: Vec::new(),
            central: None,
            srv,
            mlr,
            mlrb: None,
            air,
            hosts: Vec::new(),
            mlrd_extra: Vec::new(),
            _run: run,
        };
        bed.core_port(&bed.mlr, "kmlr");
        bed.mlr
            .sh(&format!("ip addr add {MLR_IP}/24 dev {CORE_IF}"));
        if opts.backup_mlr {
            let b = Netns::new("mlrb");
            bed.core_port(&b, "kmlrb");
            b.sh(&format!("ip addr add {BACKUP_MLR_IP}/24 dev {CORE_IF}"));
            bed.mlrb = Some(b);
        }
        bed.core_port(&bed.srv, "ksrv");
        bed.srv
            .sh(&format!("ip addr add {SRV_IP}/24 dev {CORE_IF}"));
        sysctl_host(&bed.srv);

        for k in 1..=opts.cns {
            let shape = opts.shapes.get(k - 1).copied().unwrap_or(CnShape::Separate);
            let ns = Netns::new(&format!("cn{k}"));
            bed.core_port(&ns, &format!("k{k}"));
            sysctl_router(&ns);
            ns.sh(&format!("ip addr add {}/24 dev {CORE_IF}", cn_core_ip(k)));
            let (mobile_if, mobile_ip) = match shape {
                // Its cell is the core bridge: nothing more to wire.
                CnShape::SharedCore => (CORE_IF, cn_core_ip(k)),
                CnShape::Separate => {
                    bed.add_bridge(&format!("cell{k}"));
                    veth(&ns, MOBILE_IF, &bed.air, &format!("c{k}"));
                    bed.air.sh(&format!("ip link set c{k} master cell{k}"));
                    ns.sh(&format!(
                        "ip addr add {}/24 dev {MOBILE_IF}",
                        cn_mobile_ip(k)
                    ));
                    (MOBILE_IF, cn_mobile_ip(k))
                }
                CnShape::Bridge => {
                    ns.sh(&format!(
                        "ip link add {BRIDGE_IF} type bridge forward_delay 0 stp_state 0 && \
                         ip link set {BRIDGE_IF} up"
                    ));
                    for (port, cell) in
                        [("lan1", format!("cell{k}")), ("lan2", format!("cell{k}b"))]
                    {
                        bed.add_bridge(&cell);
                        let air_end = format!("c{k}{port}");
                        veth(&ns, port, &bed.air, &air_end);
                        ns.sh(&format!("ip link set {port} master {BRIDGE_IF}"));
                        bed.air.sh(&format!("ip link set {air_end} master {cell}"));
                    }
                    ns.sh(&format!(
                        "ip addr add {}/24 dev {BRIDGE_IF}",
                        cn_mobile_ip(k)
                    ));
                    (BRIDGE_IF, cn_mobile_ip(k))
                }
            };
            if shape != CnShape::SharedCore {
                // The wider network routes each CN's cell subnet to that CN
                // (it is the parent of every /30 in its pool).
                bed.srv
                    .sh(&format!("ip route add 10.{k}.0.0/24 via {}", cn_core_ip(k)));
            }
            let mut cn = bed.new_cn(k, ns, cn_core_ip(k), mobile_if, mobile_ip);
            cn.shape = shape;
            bed.cns.push(cn);
        }
        if opts.central_pool {
            let ns = Netns::new("cnc");
            bed.core_port(&ns, "kc");
            sysctl_router(&ns);
            ns.sh(&format!(
                "ip addr add {CENTRAL_CORE_IP}/24 dev {CORE_IF} && \
                 ip link add {CENTRAL_POOL_IF} type veth peer name {CENTRAL_POOL_IF}p && \
                 ip link set {CENTRAL_POOL_IF}p up && ip link set {CENTRAL_POOL_IF} up && \
                 ip addr add 10.9.0.1/24 dev {CENTRAL_POOL_IF}"
            ));
            bed.srv
                .sh(&format!("ip route add 10.9.0.0/24 via {CENTRAL_CORE_IP}"));
            let cn = bed.new_cn(
                0,
                ns,
                CENTRAL_CORE_IP,
                CENTRAL_POOL_IF,
                Ipv4Addr::new(10, 9, 0, 1),
            );
            bed.central = Some(cn);
        }
        for k in bed.cn_indexes() {
            bed.write_tmipd_rc(k);
        }
        bed
    }

    fn new_cn(
        &self,
        index: usize,
        ns: Netns,
        core_ip: Ipv4Addr,
        mobile_if: &str,
        mobile_ip: Ipv4Addr,
    ) -> Cn {
        let label = if index == 0 {
            "cnc".to_string()
        } else {
            format!("cn{index}")
        };
        Cn {
            index,
            shape: CnShape::Separate,
            ns,
            core_ip,
            mobile_if: mobile_if.into(),
            mobile_ip,
            rc: self.dir.join(format!("{label}.rc")),
            rc_extra: Vec::new(),
            log: self.dir.join(format!("tmipd-{label}.out")),
            status: self.dir.join(format!("tmipd-{label}.status")),
            daemon: None,
        }
    }

    /// Indexes of every CN: 0 (the central CN) if there is one, then 1..=N.
    pub fn cn_indexes(&self) -> Vec<usize> {
        let central = self.central.is_some().then_some(0);
        central.into_iter().chain(1..=self.cns.len()).collect()
    }

    /// A bed with `cns` CNs and the default options otherwise.
    pub fn with_cns(cns: usize) -> TestBed {
        TestBed::new(Options {
            cns,
            ..Options::default()
        })
    }

    /// A bed with the daemons running, or a panic that shows their logs.
    pub fn started(opts: Options, timeout: Duration) -> TestBed {
        let mut bed = TestBed::new(opts);
        if let Err(e) = bed.start_daemons(timeout) {
            panic!("daemons did not start: {e}\n{}", bed.logs());
        }
        bed
    }

    /// A bridge in `air` (a cell, or a LAN segment).
    fn add_bridge(&self, name: &str) {
        self.air.sh(&format!(
            "ip link add {name} type bridge forward_delay 0 stp_state 0 && \
             ip link set {name} type bridge mcast_snooping 0 && ip link set {name} up"
        ));
    }

    /// The air bridge that is CN `k`'s cell: `cellK`, or the core bridge
    /// for a [`CnShape::SharedCore`] CN.
    pub fn cell_bridge(&self, k: usize) -> String {
        match self.cns.get(k.wrapping_sub(1)).map(|c| c.shape) {
            Some(CnShape::SharedCore) => "core".into(),
            _ => format!("cell{k}"),
        }
    }

    /// A plain host (not a station: no DHCP, no mobility) `ip/24` with
    /// default route via `gw`, plugged into air bridge `bridge` (a cell,
    /// `cellKb`, or `core`). Returns its index in [`TestBed::hosts`].
    pub fn add_host(&mut self, bridge: &str, ip: Ipv4Addr, gw: Ipv4Addr) -> usize {
        let i = self.hosts.len();
        let ns = Netns::new(&format!("h{i}"));
        sysctl_host(&ns);
        let port = format!("h{i}");
        veth(&ns, CLIENT_IF, &self.air, &port);
        self.air.sh(&format!("ip link set {port} master {bridge}"));
        ns.sh(&format!(
            "ip addr add {ip}/24 dev {CLIENT_IF} && ip route add default via {gw}"
        ));
        self.hosts.push(ns);
        i
    }

    /// Plug `ns`'s `core0` into the core bridge through air-side port `port`.
    fn core_port(&self, ns: &Netns, port: &str) {
        veth(ns, CORE_IF, &self.air, port);
        self.air.sh(&format!("ip link set {port} master core"));
    }

    /// Add a client namespace plugged into `cell` (1-based). Returns its index.
    pub fn add_client(&mut self, cell: usize) -> usize {
        self.add_client_if(cell, CLIENT_IF)
    }

    /// A client whose interface is called `ifname` (dhcpcd names its pid
    /// and lease files after the interface, host-wide: give each dhcpcd
    /// client a [`unique`](crate::unique) name).
    pub fn add_client_if(&mut self, cell: usize, ifname: &str) -> usize {
        let bridge = self.cell_bridge(cell);
        self.add_client_on(cell, &bridge, ifname)
    }

    /// A client plugged into air bridge `bridge`, which belongs to CN
    /// `cell` (e.g. `cellKb`, the second port of a [`CnShape::Bridge`] CN).
    pub fn add_client_on(&mut self, cell: usize, bridge: &str, ifname: &str) -> usize {
        let i = self.clients.len();
        let ns = Netns::new(&format!("ms{i}"));
        sysctl_host(&ns);
        let air_port = format!("m{i}");
        veth(&ns, ifname, &self.air, &air_port);
        self.air
            .sh(&format!("ip link set {air_port} master {bridge}"));
        let mac = ns
            .sh(&format!("cat /sys/class/net/{ifname}/address"))
            .trim()
            .to_string();
        self.clients.push(Client {
            ns,
            ifname: ifname.to_string(),
            air_port,
            mac,
            cell,
            addr: None,
            dhcp: None,
            events: self.dir.join(format!("ms{i}.events")),
            standin_at: None,
        });
        i
    }

    /// Add a client namespace with no link yet: the test gives it one (the
    /// radio lab moves a simulated Wi-Fi interface in and names it `eth0`,
    /// so [`TestBed::client_dhcp`] works on it), then calls
    /// [`TestBed::client_plugged`]. Returns its index.
    pub fn add_client_unplugged(&mut self) -> usize {
        let i = self.clients.len();
        let ns = Netns::new(&format!("ms{i}"));
        sysctl_host(&ns);
        self.clients.push(Client {
            ns,
            ifname: CLIENT_IF.to_string(),
            air_port: String::new(),
            mac: String::new(),
            cell: 0,
            addr: None,
            dhcp: None,
            events: self.dir.join(format!("ms{i}.events")),
            standin_at: None,
        });
        i
    }

    /// Client `i` (from [`TestBed::add_client_unplugged`]) has its
    /// interface now: record its MAC.
    pub fn client_plugged(&mut self, i: usize) {
        let c = &mut self.clients[i];
        c.mac =
            c.ns.sh(&format!("cat /sys/class/net/{}/address", c.ifname))
                .trim()
                .to_string();
    }

    /// Which cell the air-side port of client `i` is on, read from the
    /// kernel (not from our bookkeeping).
    pub fn client_cell_in_kernel(&self, i: usize) -> Option<usize> {
        let out = self
            .air
            .sh(&format!("ip -o link show dev {}", self.clients[i].air_port));
        let m = out.split(" master ").nth(1)?;
        let name = m.split_whitespace().next()?;
        (1..=self.cns.len()).find(|&k| self.cell_bridge(k) == name)
    }

    /// Configure client `i` by hand: N+1/30, default via N+2 (the seed's
    /// static client).
    pub fn client_static(&mut self, i: usize, cell30: Cell30) {
        let c = &mut self.clients[i];
        c.ns.sh(&format!(
            "ip addr add {}/30 dev {} && ip route add default via {}",
            cell30.station(),
            c.ifname,
            cell30.gateway()
        ));
        c.addr = Some(cell30);
    }

    /// [`TestBed::client_dhcp`], panicking with the daemons' logs if no
    /// lease came.
    pub fn client_lease(&mut self, i: usize, timeout: Duration) -> Cell30 {
        match self.client_dhcp(i, timeout) {
            Ok(c) => c,
            Err(e) => panic!("{e}\n{}", self.logs()),
        }
    }

    /// Run busybox `udhcpc` in client `i` (kept running so it renews) and
    /// wait for a /30. The script only touches the client's namespace (never
    /// /etc/resolv.conf, which namespaces share with the host).
    pub fn client_dhcp(&mut self, i: usize, timeout: Duration) -> Result<Cell30, String> {
        self.udhcpc(i, &["-t", "20", "-T", "1", "-A", "1"]);
        let ns = self.clients[i].ns.name.clone();
        let ifname = self.clients[i].ifname.clone();
        // The script adds the address, then the default route: wait for both.
        let got = wait_for(timeout, || {
            let c = client_addr_on(&ns, &ifname)?;
            let r = sh_out(&format!("ip -n {ns} -4 route show default"));
            (!r.stdout.is_empty()).then_some(c)
        });
        match got {
            Some(c) => {
                self.clients[i].addr = Some(c);
                Ok(c)
            }
            None => Err(format!(
                "client ms{i} got no lease in {timeout:?}; udhcpc said:\n{}",
                self.clients[i]
                    .dhcp
                    .as_ref()
                    .map(Proc::run_output)
                    .unwrap_or_default()
            )),
        }
    }

    /// Start busybox `udhcpc -f -i IF -s SCRIPT extra...` in client `i`
    /// (stopping a DHCP client it runs); its script ([`UDHCPC_SCRIPT`])
    /// installs the lease and logs `bound|renew ADDRESS SERVER` to the
    /// client's events. Returns its pid.
    pub fn udhcpc(&mut self, i: usize, extra: &[&str]) -> u32 {
        let script = self.dir.join("udhcpc.script");
        if !script.exists() {
            write_script(&script, UDHCPC_SCRIPT);
        }
        let c = &self.clients[i];
        let p = self
            .dhcp_spawn(i, "udhcpc", "busybox")
            .args(["udhcpc", "-f", "-i", &c.ifname, "-s"])
            .arg(&script)
            .args(extra)
            .env("TMIP_EVENTS", &c.events);
        self.run_dhcp(i, p)
    }

    /// ISC dhclient in client `i`, in the foreground, with a script that
    /// only installs the lease (never the host's resolv.conf) and logs
    /// `BOUND|RENEW|REBIND|REBOOT ADDRESS`.
    pub fn dhclient(&mut self, i: usize) -> u32 {
        let script = self.reason_script(
            i,
            "dhclient",
            "ip addr replace $new_ip_address/$new_subnet_mask dev $interface; \
             ip route replace default via ${new_routers%% *} dev $interface;",
        );
        let c = &self.clients[i];
        let file = |ext: &str| self.dir.join(format!("{}.dhclient.{ext}", c.ns.name));
        let p = self
            .dhcp_spawn(i, "dhclient", "dhclient")
            .args(["-4", "-d", "-sf"])
            .arg(&script)
            .arg("-pf")
            .arg(file("pid"))
            .arg("-lf")
            .arg(file("leases"))
            .arg(&c.ifname);
        self.run_dhcp(i, p)
    }

    /// dhcpcd in client `i`, in the foreground, IPv4 only, no config file,
    /// a script that only logs (dhcpcd installs the address and route
    /// itself). Give the client a unique interface name
    /// ([`TestBed::add_client_if`]).
    pub fn dhcpcd(&mut self, i: usize) -> u32 {
        let script = self.reason_script(i, "dhcpcd", "");
        let c = &self.clients[i];
        let conf = self.dir.join(format!("{}.dhcpcd.conf", c.ns.name));
        fs::write(&conf, "option routers, subnet_mask\n").expect("dhcpcd.conf");
        let p = self
            .dhcp_spawn(i, "dhcpcd", "dhcpcd")
            .args(["-4", "-B", "-f"])
            .arg(&conf)
            .arg("-c")
            .arg(&script)
            .arg(&c.ifname);
        self.run_dhcp(i, p)
    }

    /// A DHCP client script for client `i` in the dhclient/dhcpcd style
    /// (`$reason`): on a lease it runs `install`, then logs
    /// `REASON ADDRESS` to the client's events.
    fn reason_script(&self, i: usize, name: &str, install: &str) -> PathBuf {
        let c = &self.clients[i];
        let script = self.dir.join(format!("{}-{name}.sh", c.ns.name));
        write_script(
            &script,
            &format!(
                "#!/bin/sh\ncase \"$reason\" in BOUND|RENEW|REBIND|REBOOT) {install} \
                 echo \"$reason $new_ip_address\" >> {};; esac\n",
                c.events.display()
            ),
        );
        script
    }

    /// `program` in client `i`'s namespace, output appended to
    /// `{name}-ms{i}.log` in the run directory.
    fn dhcp_spawn(&self, i: usize, name: &str, program: &str) -> Spawn {
        let out = self.dir.join(format!("{name}-ms{i}.log"));
        Spawn::new(&self.clients[i].ns.name, name, program, &out).append()
    }

    fn run_dhcp(&mut self, i: usize, p: Spawn) -> u32 {
        self.clients[i].stop_dhcp();
        let p = p.start();
        let pid = p.pid().unwrap_or_default();
        self.clients[i].dhcp = Some(p);
        pid
    }

    /// Move client `i` to `cell`: re-attach the air-side end of its link to
    /// that cell's bridge. The link stays up (no carrier change on the
    /// client). Returns the instant just before the change.
    pub fn move_client(&mut self, i: usize, cell: usize) -> Instant {
        let port = self.clients[i].air_port.clone();
        let bridge = self.cell_bridge(cell);
        let t = Instant::now();
        sh(&format!(
            "ip -n {} link set {port} master {bridge}",
            self.air.name
        ));
        self.clients[i].cell = cell;
        if self.opts.routing == Routing::StandIn {
            self.standin_handover(i, cell);
        }
        t
    }

    /// Link state of the client's own interface (must stay UP across moves).
    pub fn client_link_up(&self, i: usize) -> bool {
        let c = &self.clients[i];
        let out = c.ns.sh(&format!("cat /sys/class/net/{}/carrier", c.ifname));
        out.trim() == "1"
    }

    /// Carrier-change counter of the client's interface: a roam must not
    /// bump it.
    pub fn client_carrier_changes(&self, i: usize) -> u64 {
        let c = &self.clients[i];
        c.ns.sh(&format!("cat /sys/class/net/{}/carrier_changes", c.ifname))
            .trim()
            .parse()
            .unwrap_or(u64::MAX)
    }

    // ---------------------------------------------------------------- daemons

    /// Start mlrd then each tmipd and wait until each says it is up.
    pub fn start_daemons(&mut self, timeout: Duration) -> Result<(), String> {
        assert_eq!(self.opts.routing, Routing::Daemons);
        self.start_mlrd(timeout)?;
        if self.opts.backup_mlr {
            self.start_register(Register::Backup, timeout)?;
            self.wait_register_log(Register::Backup, "Replica in sync", timeout)?;
        }
        for k in self.cn_indexes() {
            self.start_tmipd(k, timeout)?;
        }
        Ok(())
    }

    /// [`TestBed::start_daemons`], panicking with the daemon's output if
    /// one does not come up in 15 s.
    pub fn start_all(&mut self) {
        if let Err(e) = self.start_daemons(Duration::from_secs(15)) {
            panic!("{e}");
        }
    }

    /// The directory of mlrd's state on tmpfs ([`Options::mlr_state_tmpfs`]).
    fn mlr_tmpfs_state(&self) -> PathBuf {
        PathBuf::from("/dev/shm").join(format!(
            "tmip-mlr-{}",
            self.dir.file_name().unwrap_or_default().to_string_lossy()
        ))
    }

    /// mlrd.rc: [`mlrd_rc`] with the bed's network, secret and debug level,
    /// then the test's own lines ([`TestBed::set_mlrd_rc`]).
    pub fn mlrd_rc(&self) -> Rc {
        let mut rc = mlrd_rc(NETWORK_NAME, SECRET, &self.dir);
        rc.set("debug_level", self.opts.debug_level);
        if self.opts.mlr_state_tmpfs {
            let state = self.mlr_tmpfs_state();
            fs::create_dir_all(&state).expect("state dir");
            rc.set("state_dir", state.display());
        }
        if self.opts.backup_mlr {
            rc.set("backup_mlr", BACKUP_MLR_IP);
        }
        rc.apply(&self.mlrd_extra);
        rc
    }

    /// The `.rc` of register `r`: the primary's is [`TestBed::mlrd_rc`];
    /// the backup's has its own files and state and `primary_mlr`.
    pub fn register_rc(&self, r: Register) -> Rc {
        let mut rc = self.mlrd_rc();
        if r == Register::Backup {
            rc.remove("backup_mlr");
            let stem = r.stem();
            let state = if self.opts.mlr_state_tmpfs {
                self.mlr_tmpfs_state().with_extension("backup")
            } else {
                self.dir.join(format!("{stem}-state"))
            };
            fs::create_dir_all(&state).expect("state dir");
            rc.set("state_dir", state.display())
                .set("log_file", self.dir.join(format!("{stem}.log")).display())
                .set(
                    "status_file",
                    self.dir.join(format!("{stem}.status")).display(),
                )
                .set("primary_mlr", MLR_IP);
        }
        rc
    }

    /// Write the rc of register `r`, start (or restart) its mlrd and wait
    /// for it to listen.
    pub fn start_register(&mut self, r: Register, timeout: Duration) -> Result<(), String> {
        let stem = r.stem();
        let rc = self.dir.join(format!("{stem}.rc"));
        self.register_rc(r).write(&rc);
        self.kill_register(r);
        let ns = match r {
            Register::Primary => self.mlr.name.clone(),
            Register::Backup => self
                .mlrb
                .as_ref()
                .expect("Options::backup_mlr")
                .name
                .clone(),
        };
        let p = Spawn::new(
            &ns,
            stem,
            bin("mlrd"),
            &self.dir.join(format!("{stem}.out")),
        )
        .args(["-F", "-f"])
        .arg(&rc)
        .append()
        .start_until("MLR up and listening", timeout)?;
        match r {
            Register::Primary => self.mlrd = Some(p),
            Register::Backup => self.mlrd_backup = Some(p),
        }
        Ok(())
    }

    fn register_proc(&mut self, r: Register) -> Option<&mut Proc> {
        match r {
            Register::Primary => self.mlrd.as_mut(),
            Register::Backup => self.mlrd_backup.as_mut(),
        }
    }

    /// SIGKILL register `r` (a crash).
    pub fn kill_register(&mut self, r: Register) {
        if let Some(mut p) = match r {
            Register::Primary => self.mlrd.take(),
            Register::Backup => self.mlrd_backup.take(),
        } {
            p.kill();
        }
    }

    /// Everything register `r` said (all its runs).
    pub fn register_log(&self, r: Register) -> String {
        read(&self.dir.join(format!("{}.out", r.stem())))
    }

    /// Wait until register `r`'s current run says `needle`.
    pub fn wait_register_log(
        &mut self,
        r: Register,
        needle: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        match self.register_proc(r) {
            Some(p) => p.wait_output(needle, timeout),
            None => Err(format!("{} is not running", r.stem())),
        }
    }

    /// Register `r`'s status JSON (SIGUSR1, then its `status_file`),
    /// parsed; `Json::Null` if it never came.
    pub fn register_status(&self, r: Register) -> Json {
        let path = self.dir.join(format!("{}.status", r.stem()));
        let p = match r {
            Register::Primary => self.mlrd.as_ref(),
            Register::Backup => self.mlrd_backup.as_ref(),
        };
        status::fresh(r.stem(), &path, || {
            if let Some(p) = p {
                p.signal(nix::sys::signal::Signal::SIGUSR1);
            }
        })
    }

    /// Add a test's own mlrd.rc lines (a key replaces the bed's lines of
    /// that key); they take effect at the next [`TestBed::start_mlrd`].
    pub fn set_mlrd_rc(&mut self, extra: &[&str]) {
        self.mlrd_extra = extra.iter().map(|l| l.to_string()).collect();
    }

    /// Write `mlrd.rc`, start (or restart) mlrd and wait for it to listen.
    pub fn start_mlrd(&mut self, timeout: Duration) -> Result<(), String> {
        self.start_register(Register::Primary, timeout)
    }

    /// SIGKILL mlrd (the MLR going away).
    pub fn stop_mlrd(&mut self) {
        if let Some(mut p) = self.mlrd.take() {
            p.kill();
        }
    }

    /// The `.rc` text for CN `k` (0 = central CN): the bed's lines, then the
    /// test's own ([`TestBed::set_rc`]).
    pub fn tmipd_rc(&self, k: usize) -> String {
        let cn = self.cn(k);
        let mut rc = Rc::new(&format!(
            "tmipd.rc for {}, written by the mobility test bed",
            cn.label()
        ));
        rc.set("mlr", MLR_IP)
            .set("cn_name", cn.cn_name())
            .set("tunnel_prefix", Self::tunnel_prefix(k))
            .set("cn_if", CORE_IF)
            .set("mobile_if", &cn.mobile_if)
            .set("network_name", NETWORK_NAME)
            .set("secret", SECRET)
            .set(
                "log_file",
                self.dir
                    .join(format!("tmipd-{}.log", cn.label().to_lowercase()))
                    .display(),
            )
            .set("log", "true")
            .set("foreground", "true")
            .set("debug_level", self.opts.debug_level)
            .set("status_file", cn.status.display())
            .set("reverse_tunnel", "true")
            .set("lease_time", 3600)
            .set("tunnel_backend", &self.opts.tunnel_backend);
        let offers_pool = if self.opts.central_pool {
            k == 0
        } else {
            k != 0
        };
        if offers_pool && cn.shape == CnShape::SharedCore {
            rc.set(
                "addr_pool",
                format!("{CORE_IF} {} {}", SHARED_POOL.0, SHARED_POOL.1),
            );
        } else if offers_pool {
            let o = cn.mobile_ip.octets();
            rc.set(
                "addr_pool",
                format!(
                    "{} {}.{}.{}.4 {}.{}.{}.251",
                    cn.mobile_if, o[0], o[1], o[2], o[0], o[1], o[2]
                ),
            );
        }
        if self.opts.backup_mlr {
            rc.set("backup_mlr", BACKUP_MLR_IP);
        }
        rc.apply(&self.opts.tmipd_extra);
        rc.apply(&cn.rc_extra);
        let mut s = rc.text();
        if !offers_pool && rc.get("addr_pool").is_none() {
            s.push_str("# no addr_pool: clients get their /30 from the central CN's pool\n");
        }
        s
    }

    /// Write CN `k`'s rc file from [`TestBed::tmipd_rc`].
    pub fn write_tmipd_rc(&self, k: usize) {
        let cn = self.cn(k);
        fs::write(&cn.rc, self.tmipd_rc(k)).expect("write tmipd.rc");
    }

    /// Set CN `k`'s own rc lines (`key value`; a key replaces the bed's
    /// lines of that key, e.g. `addr_pool`) and rewrite its rc file.
    pub fn set_rc(&mut self, k: usize, extra: &[&str]) {
        self.cn_mut(k).rc_extra = extra.iter().map(|l| l.to_string()).collect();
        self.write_tmipd_rc(k);
    }

    /// mlrd's status document, freshly written (SIGUSR1, then the file is
    /// waited for) and parsed; `Json::Null` if it never came.
    pub fn mlrd_status(&self) -> Json {
        status::fresh("mlrd", &self.dir.join("mlrd.status"), || {
            if let Some(p) = &self.mlrd {
                p.signal(nix::sys::signal::Signal::SIGUSR1);
            }
        })
    }

    /// CN `k`'s status document (tmipd's `status_file` after SIGUSR1),
    /// parsed; `Json::Null` if it never came.
    pub fn tmipd_status(&self, k: usize) -> Json {
        let cn = self.cn(k);
        status::fresh(&cn.label(), &cn.status, || {
            if let Some(p) = &cn.daemon {
                p.signal(nix::sys::signal::Signal::SIGUSR1);
            }
        })
    }

    /// Where the MLR has the station with MAC `mac` (as [`Client::mac`]):
    /// the CN index (0 = central) of its binding's `at`, from mlrd's status
    /// document; `None` when it has no binding.
    pub fn mlr_binding_at(&self, mac: &str) -> Option<usize> {
        let doc = self.mlrd_status();
        let at = status::mlr_binding(&doc, mac)?["at"].as_u64()?;
        let addr: Ipv4Addr = status::mlr_cn(&doc, at)?["addr"].as_str()?.parse().ok()?;
        if addr == CENTRAL_CORE_IP {
            return Some(0);
        }
        Some(addr.octets()[3] as usize)
    }

    pub fn cn(&self, k: usize) -> &Cn {
        if k == 0 {
            self.central.as_ref().expect("no central CN in this bed")
        } else {
            &self.cns[k - 1]
        }
    }
    pub fn cn_mut(&mut self, k: usize) -> &mut Cn {
        if k == 0 {
            self.central.as_mut().expect("no central CN in this bed")
        } else {
            &mut self.cns[k - 1]
        }
    }

    /// Write its rc file, start (or restart) tmipd for CN `k` (0 = central)
    /// and wait for `is now up and running`.
    pub fn start_tmipd(&mut self, k: usize, timeout: Duration) -> Result<(), String> {
        self.write_tmipd_rc(k);
        self.kill_tmipd(k);
        self.cn_mut(k).start(&[], timeout).map(|_| ())
    }

    /// Kill tmipd of CN `k` with SIGKILL (a crash: no clean-up by it).
    pub fn kill_tmipd(&mut self, k: usize) {
        self.cn_mut(k).crash();
    }

    /// `tmipd -E` (the connectivity evaluation) with CN `k`'s rc file, in
    /// its namespace: (exit code, stdout).
    pub fn evaluate(&self, k: usize) -> (i32, String) {
        let cn = self.cn(k);
        let out = cn
            .ns
            .command(bin("tmipd"))
            .arg("-E")
            .arg("-f")
            .arg(&cn.rc)
            .output()
            .expect("tmipd -E");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// All daemon logs, for a failing test's message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(rd) = fs::read_dir(&self.dir) {
            let mut names: Vec<_> = rd.flatten().map(|e| e.path()).collect();
            names.sort();
            for p in names {
                let n = p
                    .file_name()
                    .unwrap_or_default()
                    .to_string_lossy()
                    .to_string();
                if n.ends_with(".log") || n.ends_with(".out") {
                    let t = fs::read_to_string(&p).unwrap_or_default();
                    let tail: Vec<&str> = t.lines().rev().take(60).collect();
                    s.push_str(&format!("---- {n} (last {} lines)\n", tail.len()));
                    for l in tail.into_iter().rev() {
                        s.push_str(l);
                        s.push('\n');
                    }
                }
            }
        }
        s
    }

    // ------------------------------------------------------------ inspection

    /// CN indexes that claim the client with /30 `c`: they hold N+2/32 on
    /// their mobile interface or a host route to N+1 on it. After a settled
    /// handover exactly one CN (the one the client is at) claims it.
    pub fn claimants(&self, c: Cell30) -> Vec<usize> {
        let mut v = Vec::new();
        for cn in self.cns.iter().chain(self.central.iter()) {
            let addrs = cn
                .ns
                .sh(&format!("ip -4 -o addr show dev {}", cn.mobile_if));
            let routes = cn.ns.sh(&format!(
                "ip -4 route show table all {} dev {} 2>/dev/null || true",
                c.station(),
                cn.mobile_if
            ));
            let has_gw = addrs.contains(&format!(" {}/32", c.gateway()))
                || addrs.contains(&format!(" {}/30", c.gateway()));
            let has_host = routes.lines().any(|l| !l.trim().is_empty());
            if has_gw || has_host {
                v.push(cn.index);
            }
        }
        v
    }

    /// The CN (index; 0 = central) whose pool `c` comes from: the parent.
    pub fn parent_of(&self, c: Cell30) -> usize {
        if let Some(cn) = self.cns.iter().find(|cn| {
            cn.shape == CnShape::SharedCore
                && (SHARED_POOL.0..=SHARED_POOL.1).contains(&c.network())
        }) {
            return cn.index;
        }
        match c.network().octets()[1] {
            9 if self.central.is_some() => 0,
            k => k as usize,
        }
    }

    /// Tunnel device name prefix of CN `k`'s tmipd (see [`TestBed::tmipd_rc`]).
    pub fn tunnel_prefix(k: usize) -> String {
        format!("tmip{k}x")
    }

    /// The device CN `k` routes the /30 `c` out of (a route for exactly
    /// N/30 in any table), if it has one: a parent whose station is away
    /// sends it into its tunnel to the CN the station is at.
    pub fn cell_route_dev(&self, k: usize, c: Cell30) -> Option<String> {
        let out = self.cn(k).ns.sh(&format!(
            "ip -4 -o route show table all {}/30 2>/dev/null || true",
            c.network()
        ));
        let line = out.lines().find(|l| !l.trim().is_empty())?;
        let mut w = line.split_whitespace();
        while let Some(x) = w.next() {
            if x == "dev" {
                return w.next().map(str::to_string);
            }
        }
        None
    }

    /// `ip addr`, `ip route` and `ip rule` of every CN and the neighbour
    /// tables of the clients (for diagnostics).
    pub fn cn_state(&self) -> String {
        let mut s = String::new();
        for (i, c) in self.clients.iter().enumerate() {
            let out = c.ns.sh_out("ip -4 -br addr; ip -4 route; ip neigh");
            s.push_str(&format!(
                "== client {i} ({}, {}, cell {})\n{}",
                c.ns.name,
                c.mac,
                c.cell,
                String::from_utf8_lossy(&out.stdout)
            ));
        }
        for cn in self.cns.iter().chain(self.central.iter()) {
            s.push_str(&format!(
                "== {} ({})\n{}",
                cn.label(),
                cn.ns.name,
                cn.ns
                    .sh_out(
                        "ip -4 -br addr; ip -4 route show table all | grep -v ^local; ip rule; ip -br link; ip neigh; ip -s -br link show type tun 2>/dev/null"
                    )
                    .stdout
                    .iter()
                    .map(|&b| b as char)
                    .collect::<String>()
            ));
        }
        s
    }

    // --------------------------------------------------------------- stand-in

    /// Stand-in: make CN `parent_k` the client's first point of attachment
    /// (the parent answers for N+2 and delivers locally).
    pub fn standin_attach(&mut self, i: usize) {
        assert_eq!(self.opts.routing, Routing::StandIn);
        let cell = self.clients[i].cell;
        self.standin_handover(i, cell);
    }

    /// Stand-in handover of client `i` to the CN of `cell`: the test bed
    /// plays all three parties with static routes, no tunnels.
    /// 1. new CN answers for N+2/32, host route to N+1, gratuitous ARP;
    /// 2. parent routes N/30 via the new CN's core address (or local);
    /// 3. previous CN withdraws N+2 and its host route.
    fn standin_handover(&mut self, i: usize, cell: usize) {
        let Some(c) = self.clients[i].addr else {
            return;
        };
        let parent = c.network().octets()[1] as usize;
        let prev = self.clients[i].standin_at;
        let new = cell;
        let gw = c.gateway();
        let st = c.station();
        let net = c.network();
        // 1. adopt at the new CN.
        let ns_new = self.cns[new - 1].ns.name.clone();
        batch(
            &ns_new,
            &format!(
                "addr replace {gw}/32 dev {MOBILE_IF}\nroute replace {st}/32 dev {MOBILE_IF} src {gw}\n"
            ),
        );
        // Gratuitous ARP so the client's gateway entry points here now.
        if let Err(e) = crate::traffic::send_garp(&ns_new, MOBILE_IF, gw) {
            eprintln!("stand-in: {e}");
        }
        // 2. parent redirects N/30.
        let ns_parent = self.cns[parent - 1].ns.name.clone();
        if parent == new {
            batch(&ns_parent, &format!("route del {net}/30\n"));
        } else {
            batch(
                &ns_parent,
                &format!("route replace {net}/30 via {}\n", cn_core_ip(new)),
            );
        }
        // 3. previous withdraws.
        if let Some(p) = prev {
            if p != new {
                let ns_prev = self.cns[p - 1].ns.name.clone();
                batch(
                    &ns_prev,
                    &format!(
                        "addr del {gw}/32 dev {MOBILE_IF}\nroute del {st}/32 dev {MOBILE_IF}\n"
                    ),
                );
            }
        }
        self.clients[i].standin_at = Some(new);
    }
}

/// Run `ip -batch` lines inside `ns`, ignoring "no such route" style errors
/// (withdrawing what is already gone is fine).
fn batch(ns: &str, lines: &str) {
    let mut ch = Command::new("ip")
        .args(["-n", ns, "-force", "-batch", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("ip -batch");
    if let Some(mut i) = ch.stdin.take() {
        let _ = i.write_all(lines.as_bytes());
    }
    let _ = ch.wait();
}

/// The gateway (N+2) of the /30 holding station address `ip` (N+1).
pub fn gateway_of(ip: &str) -> String {
    let ip: Ipv4Addr = ip
        .parse()
        .unwrap_or_else(|e| panic!("station address {ip:?}: {e}"));
    Cell30::containing(ip).gateway().to_string()
}

/// The /30 on the client's `eth0`, if any.
pub fn client_addr(ns: &str) -> Option<Cell30> {
    client_addr_on(ns, CLIENT_IF)
}

/// The /30 on interface `ifname` of namespace `ns`, if any.
pub fn client_addr_on(ns: &str, ifname: &str) -> Option<Cell30> {
    let out = sh_out(&format!("ip -n {ns} -4 -o addr show dev {ifname}"));
    let text = String::from_utf8_lossy(&out.stdout);
    for w in text.split_whitespace() {
        if let Some(ip) = w.strip_suffix("/30") {
            if let Ok(ip) = ip.parse::<Ipv4Addr>() {
                return Some(Cell30::containing(ip));
            }
        }
    }
    None
}

/// Write an executable script.
fn write_script(path: &Path, text: &str) {
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    sh(&format!("chmod 755 {}", path.display()));
}

/// udhcpc event script: configures only the client's interface and default
/// route; on renew with the same address it changes nothing (a TCP session
/// must not notice a renewal). With `TMIP_EVENTS` set it appends
/// `bound|renew ADDRESS SERVER lease=S dns=A,B domain=D routes=NET/LEN,GW,...`
/// to that file (see [`Client::event_lines`]).
pub const UDHCPC_SCRIPT: &str = r#"#!/bin/sh
# udhcpc script for the TMip test bed: never touches /etc (shared with the host).
case "$1" in
  deconfig)
    ip link set "$interface" up
    ;;
  bound|renew)
    plen=30
    case "$subnet" in
      255.255.255.252) plen=30 ;;
      255.255.255.0) plen=24 ;;
      *) [ -n "$mask" ] && plen=$mask ;;
    esac
    cur=$(ip -4 -o addr show dev "$interface" | awk '{print $4}')
    if [ "$cur" != "$ip/$plen" ]; then
      ip -4 addr flush dev "$interface"
      ip addr add "$ip/$plen" dev "$interface"
    fi
    for r in $router; do
      ip route replace default via "$r" dev "$interface"
      break
    done
    echo "udhcpc-script: $1 $ip/$plen router $router server $serverid lease $lease"
    [ -n "$TMIP_EVENTS" ] && echo "$1 $ip $serverid lease=$lease dns=$(echo $dns | tr ' ' ,) domain=$domain routes=$(echo $staticroutes | tr ' ' ,)" >> "$TMIP_EVENTS"
    ;;
  leasefail|nak)
    echo "udhcpc-script: $1 $message"
    ;;
esac
exit 0
"#;
