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
//! Used by the namespace tests (`mod common; #[path = "common/testbed.rs"]
//! mod testbed;`) and by `examples/roaming_demo.rs`. Everything it creates is
//! removed on drop; processes are ended by the pid it started.
#![allow(dead_code)]

use crate::common::{sh, sh_out, unique, veth, wait_for, Netns};
use std::fs::{self, File};
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
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
    /// Lines appended to every tmipd.rc (e.g. `max_peers 64`).
    pub tmipd_extra: Vec<String>,
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
        }
    }
}

pub const CORE_IF: &str = "core0";
pub const MOBILE_IF: &str = "mob0";
pub const CLIENT_IF: &str = "eth0";
pub const MLR_IP: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 250);
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

/// A daemon or helper process the bed started; killed (by its pid) on drop.
/// Its stdin is a pipe kept open, so a foreground daemon's console never
/// sees end-of-file (Ctrl+D quits tmipd/mlrd).
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    pub out: PathBuf,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Still running?
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    /// Send a signal to the process we started.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }
    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._stdin = None;
    }
    /// SIGTERM, wait up to `timeout`, then SIGKILL. Returns true if it
    /// exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(c) = self.child.as_mut() {
                if let Ok(Some(_)) = c.try_wait() {
                    self.child = None;
                    return true;
                }
            } else {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill();
        false
    }
    /// Everything the process wrote to stdout/stderr so far.
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Start `program args` inside namespace `ns`, output to `out`.
pub fn spawn_in(ns: &str, name: &str, out: &Path, program: &Path, args: &[&str]) -> Proc {
    let log = File::create(out).expect("create output file");
    let log2 = log.try_clone().expect("dup output file");
    let mut child = Command::new("ip")
        .args(["netns", "exec", ns])
        .arg(program)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(log2))
        .spawn()
        .unwrap_or_else(|e| panic!("start {} in {ns}: {e}", program.display()));
    let stdin = child.stdin.take();
    Proc {
        name: name.to_string(),
        child: Some(child),
        _stdin: stdin,
        out: out.to_path_buf(),
    }
}

/// A correspondent node's namespace.
pub struct Cn {
    /// 1-based; 0 for the central CN.
    pub index: usize,
    pub ns: Netns,
    pub core_ip: Ipv4Addr,
    pub mobile_if: String,
    pub mobile_ip: Ipv4Addr,
    pub rc: PathBuf,
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
}

/// A mobile station: its own namespace, `eth0` plugged into a cell.
pub struct Client {
    pub ns: Netns,
    /// Name of the air-side veth end (the "radio" that roams).
    pub air_port: String,
    pub mac: String,
    /// 1-based cell it is attached to now.
    pub cell: usize,
    /// Its /30 once configured (DHCP or static).
    pub addr: Option<Cell30>,
    pub dhcp: Option<Proc>,
    /// Stand-in bookkeeping: the CN currently answering for it.
    standin_at: Option<usize>,
}

/// The whole bed. Drop removes every namespace and process it made.
pub struct TestBed {
    pub opts: Options,
    pub dir: PathBuf,
    // Processes first, so they die before their namespaces go.
    pub mlrd: Option<Proc>,
    pub clients: Vec<Client>,
    pub cns: Vec<Cn>,
    pub central: Option<Cn>,
    pub srv: Netns,
    pub mlr: Netns,
    pub air: Netns,
}

impl Drop for TestBed {
    fn drop(&mut self) {
        for c in &mut self.clients {
            if let Some(p) = c.dhcp.as_mut() {
                p.kill();
            }
        }
        for cn in self.cns.iter_mut().chain(self.central.iter_mut()) {
            if let Some(p) = cn.daemon.as_mut() {
                p.kill();
            }
        }
        if let Some(p) = self.mlrd.as_mut() {
            p.kill();
        }
        if self.opts.mlr_state_tmpfs {
            let _ = fs::remove_dir_all(PathBuf::from("/dev/shm").join(format!(
                "tmip-mlr-{}",
                self.dir.file_name().unwrap_or_default().to_string_lossy()
            )));
        }
        if !self.opts.keep_dir {
            let _ = fs::remove_dir_all(&self.dir);
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
        crate::common::require_root();
        for tool in ["ip", "bridge"] {
            assert!(
                sh_out(&format!("command -v {tool}")).status.success(),
                "{tool} missing: run scripts/setup"
            );
        }
        let dir = std::env::temp_dir().join(format!("tmipbed-{}", unique("d")));
        fs::create_dir_all(&dir).expect("run dir");
        let air = Netns::new("air");
        let mlr = Netns::new("mlr");
        let srv = Netns::new("srv");
        air.sh("ip link add core type bridge forward_delay 0 stp_state 0 && ip link set core up");

        let mut bed = TestBed {
            opts: opts.clone(),
            dir,
            mlrd: None,
            clients: Vec::new(),
            cns: Vec::new(),
            central: None,
            srv,
            mlr,
            air,
        };
        bed.core_port(&bed.mlr, "kmlr");
        bed.mlr
            .sh(&format!("ip addr add {MLR_IP}/24 dev {CORE_IF}"));
        bed.core_port(&bed.srv, "ksrv");
        bed.srv
            .sh(&format!("ip addr add {SRV_IP}/24 dev {CORE_IF}"));
        sysctl_host(&bed.srv);

        for k in 1..=opts.cns {
            let ns = Netns::new(&format!("cn{k}"));
            bed.core_port(&ns, &format!("k{k}"));
            sysctl_router(&ns);
            ns.sh(&format!("ip addr add {}/24 dev {CORE_IF}", cn_core_ip(k)));
            bed.air.sh(&format!(
                "ip link add cell{k} type bridge forward_delay 0 stp_state 0 && \
                 ip link set cell{k} type bridge mcast_snooping 0 && ip link set cell{k} up"
            ));
            veth(&ns, MOBILE_IF, &bed.air, &format!("c{k}"));
            bed.air.sh(&format!("ip link set c{k} master cell{k}"));
            ns.sh(&format!(
                "ip addr add {}/24 dev {MOBILE_IF}",
                cn_mobile_ip(k)
            ));
            // The wider network routes each CN's cell subnet to that CN
            // (it is the parent of every /30 in its pool).
            bed.srv
                .sh(&format!("ip route add 10.{k}.0.0/24 via {}", cn_core_ip(k)));
            let rc = bed.dir.join(format!("cn{k}.rc"));
            bed.cns.push(Cn {
                index: k,
                ns,
                core_ip: cn_core_ip(k),
                mobile_if: MOBILE_IF.into(),
                mobile_ip: cn_mobile_ip(k),
                rc,
                daemon: None,
            });
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
            let rc = bed.dir.join("cnc.rc");
            bed.central = Some(Cn {
                index: 0,
                ns,
                core_ip: CENTRAL_CORE_IP,
                mobile_if: CENTRAL_POOL_IF.into(),
                mobile_ip: Ipv4Addr::new(10, 9, 0, 1),
                rc,
                daemon: None,
            });
        }
        bed
    }

    /// Plug `ns`'s `core0` into the core bridge through air-side port `port`.
    fn core_port(&self, ns: &Netns, port: &str) {
        veth(ns, CORE_IF, &self.air, port);
        self.air.sh(&format!("ip link set {port} master core"));
    }

    /// Add a client namespace plugged into `cell` (1-based). Returns its index.
    pub fn add_client(&mut self, cell: usize) -> usize {
        let i = self.clients.len();
        let ns = Netns::new(&format!("ms{i}"));
        sysctl_host(&ns);
        let air_port = format!("m{i}");
        veth(&ns, CLIENT_IF, &self.air, &air_port);
        self.air
            .sh(&format!("ip link set {air_port} master cell{cell}"));
        let mac = ns
            .sh(&format!("cat /sys/class/net/{CLIENT_IF}/address"))
            .trim()
            .to_string();
        self.clients.push(Client {
            ns,
            air_port,
            mac,
            cell,
            addr: None,
            dhcp: None,
            standin_at: None,
        });
        i
    }

    /// Which cell the air-side port of client `i` is on, read from the
    /// kernel (not from our bookkeeping).
    pub fn client_cell_in_kernel(&self, i: usize) -> Option<usize> {
        let out = self
            .air
            .sh(&format!("ip -o link show dev {}", self.clients[i].air_port));
        let m = out.split(" master ").nth(1)?;
        let name = m.split_whitespace().next()?;
        name.strip_prefix("cell")?.parse().ok()
    }

    /// Configure client `i` by hand: N+1/30, default via N+2 (the seed's
    /// static client).
    pub fn client_static(&mut self, i: usize, cell30: Cell30) {
        let c = &mut self.clients[i];
        c.ns.sh(&format!(
            "ip addr add {}/30 dev {CLIENT_IF} && ip route add default via {}",
            cell30.station(),
            cell30.gateway()
        ));
        c.addr = Some(cell30);
    }

    /// Run busybox `udhcpc` in client `i` (kept running so it renews) and
    /// wait for a /30. The script only touches the client's namespace (never
    /// /etc/resolv.conf, which namespaces share with the host).
    pub fn client_dhcp(&mut self, i: usize, timeout: Duration) -> Result<Cell30, String> {
        let script = self.dir.join("udhcpc.script");
        if !script.exists() {
            fs::write(&script, UDHCPC_SCRIPT).expect("write udhcpc script");
            sh(&format!("chmod 755 {}", script.display()));
        }
        let busybox = PathBuf::from(
            sh("command -v busybox")
                .lines()
                .next()
                .unwrap_or("/bin/busybox")
                .trim(),
        );
        let out = self.dir.join(format!("udhcpc-ms{i}.log"));
        let script_s = script.display().to_string();
        let p = spawn_in(
            &self.clients[i].ns.name,
            "udhcpc",
            &out,
            &busybox,
            &[
                "udhcpc", "-f", "-i", CLIENT_IF, "-s", &script_s, "-t", "20", "-T", "1", "-A", "1",
            ],
        );
        self.clients[i].dhcp = Some(p);
        let ns = self.clients[i].ns.name.clone();
        // The script adds the address, then the default route: wait for both.
        let got = wait_for(timeout, || {
            let c = client_addr(&ns)?;
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
                fs::read_to_string(&out).unwrap_or_default()
            )),
        }
    }

    /// Move client `i` to `cell`: re-attach the air-side end of its link to
    /// that cell's bridge. The link stays up (no carrier change on the
    /// client). Returns the instant just before the change.
    pub fn move_client(&mut self, i: usize, cell: usize) -> Instant {
        let port = self.clients[i].air_port.clone();
        let t = Instant::now();
        sh(&format!(
            "ip -n {} link set {port} master cell{cell}",
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
        let out = self.clients[i]
            .ns
            .sh(&format!("cat /sys/class/net/{CLIENT_IF}/carrier"));
        out.trim() == "1"
    }

    /// Carrier-change counter of the client's interface: a roam must not
    /// bump it.
    pub fn client_carrier_changes(&self, i: usize) -> u64 {
        self.clients[i]
            .ns
            .sh(&format!("cat /sys/class/net/{CLIENT_IF}/carrier_changes"))
            .trim()
            .parse()
            .unwrap_or(u64::MAX)
    }

    // ---------------------------------------------------------------- daemons

    /// Write `mlrd.rc` and every CN's `tmipd.rc`, start mlrd then each tmipd
    /// and wait until each says it is up.
    pub fn start_daemons(&mut self, timeout: Duration) -> Result<(), String> {
        assert_eq!(self.opts.routing, Routing::Daemons);
        self.start_mlrd(timeout)?;
        if self.central.is_some() {
            self.start_tmipd(0, timeout)?;
        }
        for k in 1..=self.cns.len() {
            self.start_tmipd(k, timeout)?;
        }
        Ok(())
    }

    pub fn start_mlrd(&mut self, timeout: Duration) -> Result<(), String> {
        let rc = self.dir.join("mlrd.rc");
        let state = if self.opts.mlr_state_tmpfs {
            PathBuf::from("/dev/shm").join(format!(
                "tmip-mlr-{}",
                self.dir.file_name().unwrap_or_default().to_string_lossy()
            ))
        } else {
            self.dir.join("mlr-state")
        };
        fs::create_dir_all(&state).expect("state dir");
        let text = format!(
            "# mlrd.rc written by the mobility test bed\n\
             network_name {NETWORK_NAME}\n\
             port 6554\n\
             foreground true\n\
             log_file {}\n\
             log true\n\
             debug_level {}\n\
             status_file {}\n\
             secret {SECRET}\n\
             state_dir {}\n\
             lease_time 3600\n",
            self.dir.join("mlrd.log").display(),
            self.opts.debug_level,
            self.dir.join("mlrd.status").display(),
            state.display(),
        );
        fs::write(&rc, text).expect("write mlrd.rc");
        let bin = crate::common::bin("mlrd");
        let out = self.dir.join("mlrd.out");
        let rc_s = rc.display().to_string();
        let p = spawn_in(&self.mlr.name, "mlrd", &out, &bin, &["-F", "-f", &rc_s]);
        self.mlrd = Some(p);
        let log = self.dir.join("mlrd.log");
        self.wait_log("mlrd", &[&out, &log], "MLR up and listening", timeout)
    }

    /// Is mlrd (started by us) still running?
    fn mlrd_alive(&mut self) -> bool {
        self.mlrd.as_mut().map(|p| p.alive()) == Some(true)
    }

    /// The `.rc` text for CN `k` (0 = central CN).
    pub fn tmipd_rc(&self, k: usize) -> String {
        let cn = self.cn(k);
        let name = cn.label();
        let mut s = format!(
            "# tmipd.rc for {name}, written by the mobility test bed\n\
             mlr {MLR_IP}\n\
             cn_name {name} test-bed\n\
             tunnel_prefix tmip{k}x\n\
             cn_if {CORE_IF}\n\
             mobile_if {}\n\
             network_name {NETWORK_NAME}\n\
             secret {SECRET}\n\
             log_file {}\n\
             log true\n\
             foreground true\n\
             debug_level {}\n\
             status_file {}\n\
             reverse_tunnel true\n\
             lease_time 3600\n",
            cn.mobile_if,
            self.dir
                .join(format!("tmipd-{}.log", name.to_lowercase()))
                .display(),
            self.opts.debug_level,
            self.dir
                .join(format!("tmipd-{}.status", name.to_lowercase()))
                .display(),
        );
        let offers_pool = if self.opts.central_pool {
            k == 0
        } else {
            k != 0
        };
        if offers_pool {
            let o = cn.mobile_ip.octets();
            s.push_str(&format!(
                "addr_pool {} {}.{}.{}.4 {}.{}.{}.251\n",
                cn.mobile_if, o[0], o[1], o[2], o[0], o[1], o[2]
            ));
        } else {
            s.push_str("# no addr_pool: clients get their /30 from the central CN's pool\n");
        }
        for l in &self.opts.tmipd_extra {
            s.push_str(l);
            s.push('\n');
        }
        s
    }

    pub fn cn(&self, k: usize) -> &Cn {
        if k == 0 {
            self.central.as_ref().expect("no central CN in this bed")
        } else {
            &self.cns[k - 1]
        }
    }
    fn cn_mut(&mut self, k: usize) -> &mut Cn {
        if k == 0 {
            self.central.as_mut().expect("no central CN in this bed")
        } else {
            &mut self.cns[k - 1]
        }
    }

    /// Start (or restart) tmipd for CN `k` (0 = central) and wait for
    /// `is now up and running`.
    pub fn start_tmipd(&mut self, k: usize, timeout: Duration) -> Result<(), String> {
        let text = self.tmipd_rc(k);
        let rc = self.cn(k).rc.clone();
        fs::write(&rc, text).expect("write tmipd.rc");
        let label = self.cn(k).label().to_lowercase();
        let out = self.dir.join(format!("tmipd-{label}.out"));
        let log = self.dir.join(format!("tmipd-{label}.log"));
        // A restart appends to the log: remember where this run starts.
        let log_start = fs::metadata(&log).map(|m| m.len()).unwrap_or(0);
        let bin = crate::common::bin("tmipd");
        let rc_s = rc.display().to_string();
        let ns = self.cn(k).ns.name.clone();
        let p = spawn_in(&ns, "tmipd", &out, &bin, &["-F", "-f", &rc_s]);
        self.cn_mut(k).daemon = Some(p);
        let deadline = Instant::now() + timeout;
        loop {
            let mut text = fs::read_to_string(&out).unwrap_or_default();
            let l = fs::read(&log).unwrap_or_default();
            if l.len() as u64 > log_start {
                text.push_str(&String::from_utf8_lossy(&l[log_start as usize..]));
            }
            if text.contains("is now up and running") {
                return Ok(());
            }
            let alive = self.cn_mut(k).daemon.as_mut().map(|p| p.alive()) == Some(true);
            if !alive || Instant::now() > deadline {
                return Err(format!(
                    "tmipd {label} not up (alive={alive}); output:\n{text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Kill tmipd of CN `k` with SIGKILL (a crash: no clean-up by it).
    pub fn kill_tmipd(&mut self, k: usize) {
        if let Some(p) = self.cn_mut(k).daemon.as_mut() {
            p.kill();
        }
    }

    fn wait_log(
        &mut self,
        what: &str,
        files: &[&Path],
        needle: &str,
        timeout: Duration,
    ) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text: String = files
                .iter()
                .map(|f| fs::read_to_string(f).unwrap_or_default())
                .collect();
            if text.contains(needle) {
                return Ok(());
            }
            if !self.mlrd_alive() {
                return Err(format!("{what} exited before saying {needle:?}:\n{text}"));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what} did not say {needle:?} in {timeout:?}:\n{text}"
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
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

/// The /30 on the client's `eth0`, if any.
pub fn client_addr(ns: &str) -> Option<Cell30> {
    let out = sh_out(&format!("ip -n {ns} -4 -o addr show dev {CLIENT_IF}"));
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

/// udhcpc event script: configures only the client's interface and default
/// route; on renew with the same address it changes nothing (a TCP session
/// must not notice a renewal).
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
    ;;
  leasefail|nak)
    echo "udhcpc-script: $1 $message"
    ;;
esac
exit 0
"#;
