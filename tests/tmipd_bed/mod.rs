//! The tmipd test bed: an `mlr` namespace (mlrd, and the core bridge every
//! CN is wired to), CN namespaces (tmipd; `core` towards the MLR, `mob`
//! into a cell), an `air` namespace holding one bridge per cell, and client
//! namespaces whose link sits on a cell bridge (moving a client is
//! re-attaching its port to another cell's bridge, with no link flap).
//!
//! Addresses: MLR 10.13.0.250/24; CN i at 10.13.0.i, its mobile interface
//! 10.13.(100+i).1/24, its pool that subnet's `* *`. Every file a test
//! writes lives in a fresh temporary directory, removed at the end.
#![allow(dead_code)]

use crate::common::*;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;

pub const NETWORK: &str = "tmip-test";
pub const MLR_IP: &str = "10.13.0.250";

pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new() -> TempDir {
        let p = std::env::temp_dir().join(unique("tmipdt"));
        fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
    pub fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

pub fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}

/// One CN instance.
pub struct Cn {
    pub ns: Netns,
    pub index: u8,
    pub ip: String,
    pub rc: PathBuf,
    pub log: PathBuf,
    pub status: PathBuf,
    pub pid: Option<u32>,
    /// The cell bridge (in `air`) its mobile interface is on.
    pub cell: String,
}

impl Cn {
    /// The subnet of this CN's mobile interface, e.g. `10.13.101.`.
    pub fn mobile_prefix(&self) -> String {
        format!("10.13.{}.", 100 + u32::from(self.index))
    }

    /// Start tmipd (foreground, stdin from /dev/null), wait for the start-up
    /// to finish, return its pid.
    pub fn start(&mut self, extra: &[&str]) -> u32 {
        let before = read(&self.log).len();
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .expect("log file");
        let mut cmd = self.ns.command(bin("tmipd"));
        cmd.arg("-F").arg("-f").arg(&self.rc).args(extra);
        cmd.stdout(Stdio::from(out.try_clone().expect("dup")))
            .stderr(Stdio::from(out));
        let pid = self.ns.spawn(cmd);
        self.pid = Some(pid);
        let log = self.log.clone();
        wait_for(Duration::from_secs(15), || {
            read(&log)[before..]
                .contains("is now up and running")
                .then_some(())
        })
        .unwrap_or_else(|| panic!("CN {} did not start:\n{}", self.index, read(&self.log)));
        pid
    }

    pub fn log_text(&self) -> String {
        read(&self.log)
    }

    /// Wait until the log contains `needle` (after `from` bytes).
    pub fn wait_log(&self, needle: &str, from: usize, secs: u64) -> bool {
        wait_for(Duration::from_secs(secs), || {
            let t = read(&self.log);
            t.get(from..).unwrap_or("").contains(needle).then_some(())
        })
        .is_some()
    }

    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
            let st = self.ns.wait(pid, Duration::from_secs(10));
            assert!(
                st.is_some_and(|s| s.success()),
                "tmipd did not exit cleanly on TERM: {st:?}\n{}",
                self.log_text()
            );
        }
    }

    /// SIGKILL: leaves its kernel state behind, like a crash.
    pub fn crash(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.ns.kill(pid);
        }
    }
}

pub struct Bed {
    pub dir: TempDir,
    pub mlr: Netns,
    pub air: Netns,
    pub cns: Vec<Cn>,
    pub mlrd_pid: Option<u32>,
    pub mlrd_rc: PathBuf,
    pub mlrd_log: PathBuf,
    pub secret: Option<String>,
}

/// Per-CN settings appended to its rc file.
pub type Extra<'a> = &'a [&'a str];

impl Bed {
    /// MLR and `n` CNs (not started), each with its own cell.
    pub fn new(n: u8, secret: Option<&str>) -> Bed {
        require_root();
        let dir = TempDir::new();
        let mlr = Netns::new("tm");
        let air = Netns::new("ta");
        mlr.sh(&format!(
            "ip link add core type bridge && ip link set core up && ip addr add {MLR_IP}/24 dev core"
        ));
        let mlrd_rc = dir.path("mlrd.rc");
        let mut rc = format!(
            "network_name {NETWORK}\nport 6554\nforeground true\nlog true\n\
             log_file {}\nstatus_file {}\nstate_dir {}\nlease_time 600\ncn_timeout 5\n",
            dir.path("mlrd.file.log").display(),
            dir.path("mlrd.status").display(),
            dir.path("mlrstate").display()
        );
        if let Some(s) = secret {
            rc += &format!("secret {s}\n");
        }
        fs::write(&mlrd_rc, rc).expect("mlrd.rc");
        fs::create_dir_all(dir.path("mlrstate")).expect("state dir");
        let mlrd_log = dir.path("mlrd.log");
        let mut bed = Bed {
            dir,
            mlr,
            air,
            cns: Vec::new(),
            mlrd_pid: None,
            mlrd_rc,
            mlrd_log,
            secret: secret.map(str::to_string),
        };
        for i in 1..=n {
            bed.add_cn(i);
        }
        bed
    }

    fn add_cn(&mut self, i: u8) {
        let ns = Netns::new("tc");
        // Core link: CN `core` <-> a port on the MLR's bridge.
        let port = format!("p{i}");
        veth(&ns, "core", &self.mlr, &port);
        self.mlr.sh(&format!("ip link set {port} master core"));
        ns.sh(&format!("ip addr add 10.13.0.{i}/24 dev core"));
        // Mobile link: CN `mob` <-> a port on cell bridge `cell{i}` in air.
        let cell = format!("cell{i}");
        self.air.sh(&format!(
            "ip link add {cell} type bridge && ip link set {cell} up"
        ));
        let aport = format!("m{i}");
        veth(&ns, "mob", &self.air, &aport);
        self.air.sh(&format!("ip link set {aport} master {cell}"));
        ns.sh(&format!(
            "ip addr add 10.13.{}.1/24 dev mob",
            100 + u32::from(i)
        ));
        let rc = self.dir.path(&format!("cn{i}.rc"));
        let cn = Cn {
            ns,
            index: i,
            ip: format!("10.13.0.{i}"),
            log: self.dir.path(&format!("cn{i}.log")),
            status: self.dir.path(&format!("cn{i}.status")),
            rc,
            pid: None,
            cell,
        };
        self.write_rc(&cn, &[]);
        self.cns.push(cn);
    }

    /// (Re)write CN `cn`'s rc file with `extra` lines appended.
    pub fn write_rc(&self, cn: &Cn, extra: Extra) {
        let mut rc = format!(
            "mlr {MLR_IP}\ncn_name Test CN {}\ntunnel_prefix tt{}\ncn_if core\nmobile_if mob\n\
             network_name {NETWORK}\naddr_pool mob * *\nlog true\nstatus_file {}\n",
            cn.index,
            cn.index,
            cn.status.display()
        );
        if let Some(s) = &self.secret {
            rc += &format!("secret {s}\n");
        }
        for l in extra {
            rc += l;
            rc += "\n";
        }
        fs::write(&cn.rc, rc).expect("rc");
    }

    pub fn set_rc(&self, i: usize, extra: Extra) {
        self.write_rc(&self.cns[i], extra);
    }

    pub fn start_mlrd(&mut self) -> u32 {
        let out = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.mlrd_log)
            .expect("mlrd log");
        let mut cmd = self.mlr.command(bin("mlrd"));
        cmd.arg("-F").arg("-f").arg(&self.mlrd_rc);
        cmd.stdout(Stdio::from(out.try_clone().expect("dup")))
            .stderr(Stdio::from(out));
        let pid = self.mlr.spawn(cmd);
        let log = self.mlrd_log.clone();
        let before = 0;
        wait_for(Duration::from_secs(10), || {
            read(&log)[before..]
                .contains("MLR up and listening")
                .then_some(())
        })
        .unwrap_or_else(|| panic!("mlrd did not start:\n{}", read(&self.mlrd_log)));
        self.mlrd_pid = Some(pid);
        pid
    }

    pub fn stop_mlrd(&mut self) {
        if let Some(pid) = self.mlrd_pid.take() {
            self.mlr.kill(pid);
        }
    }

    /// mlrd plus every CN started.
    pub fn start_all(&mut self) {
        self.start_mlrd();
        for i in 0..self.cns.len() {
            self.cns[i].start(&[]);
        }
    }

    /// A client namespace with its link `ifname` on CN `cn`'s cell.
    pub fn client(&self, cn: usize) -> Client {
        let ns = Netns::new("tk");
        let ifname = unique("k");
        let port = unique("q");
        veth(&ns, &ifname, &self.air, &port);
        self.air
            .sh(&format!("ip link set {port} master {}", self.cns[cn].cell));
        Client {
            ns,
            ifname,
            port,
            log: self.dir.path(&format!("{}.events", unique("cl"))),
            pid: None,
        }
    }

    /// Re-attach `client`'s port to CN `cn`'s cell (the link stays up).
    pub fn move_client(&self, client: &Client, cn: usize) {
        self.air.sh(&format!(
            "ip link set {} master {}",
            client.port, self.cns[cn].cell
        ));
    }

    /// Run `tmipd -E` in CN `cn`'s namespace: (exit code, stdout).
    pub fn evaluate(&self, cn: usize) -> (i32, String) {
        let out = self.cns[cn]
            .ns
            .command(bin("tmipd"))
            .arg("-E")
            .arg("-f")
            .arg(&self.cns[cn].rc)
            .output()
            .expect("tmipd -E");
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }
}

/// A mobile station.
pub struct Client {
    pub ns: Netns,
    pub ifname: String,
    /// Its port on a cell bridge in `air`.
    pub port: String,
    /// Lines `EVENT ADDRESS` written by the DHCP client's script.
    pub log: PathBuf,
    pub pid: Option<u32>,
}

impl Client {
    pub fn events(&self) -> Vec<(String, String)> {
        read(&self.log)
            .lines()
            .filter_map(|l| {
                let mut it = l.split_whitespace();
                Some((it.next()?.to_string(), it.next()?.to_string()))
            })
            .collect()
    }

    /// Wait for an event whose name is one of `names`; returns its address.
    pub fn wait_event(&self, names: &[&str], skip: usize, secs: u64) -> Option<String> {
        wait_for(Duration::from_secs(secs), || {
            self.events()
                .into_iter()
                .skip(skip)
                .find(|(e, _)| names.contains(&e.as_str()))
                .map(|(_, a)| a)
        })
    }

    /// The client's IPv4 address on its link, if one is installed.
    pub fn address(&self) -> Option<String> {
        let out = self
            .ns
            .sh(&format!("ip -4 -o addr show dev {}", self.ifname));
        out.split_whitespace()
            .skip_while(|w| *w != "inet")
            .nth(1)
            .map(str::to_string)
    }

    fn script(&self, dir: &TempDir, name: &str, body: &str) -> PathBuf {
        let p = dir.path(&format!("{}-{name}.sh", self.ifname));
        fs::write(&p, format!("#!/bin/sh\n{body}\n")).expect("script");
        sh(&format!("chmod +x {}", p.display()));
        p
    }

    /// busybox udhcpc in the foreground; its script installs the lease and
    /// logs `bound|renew ADDRESS`.
    pub fn udhcpc(&mut self, dir: &TempDir, extra: &[&str]) -> u32 {
        let s = self.script(
            dir,
            "udhcpc",
            &format!(
                "case \"$1\" in bound|renew) ip addr replace $ip/$mask dev $interface; \
                 ip route replace default via ${{router%% *}} dev $interface; \
                 echo \"$1 $ip $serverid\" >> {log};; \
                 deconfig) ip -4 addr flush dev $interface;; esac",
                log = self.log.display()
            ),
        );
        let mut cmd = self.ns.command("busybox");
        cmd.args(["udhcpc", "-f", "-i", &self.ifname, "-s"])
            .arg(&s)
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = self.ns.spawn(cmd);
        self.pid = Some(pid);
        pid
    }

    /// ISC dhclient in the foreground, with a script that only installs the
    /// lease (never touches the host's resolv.conf).
    pub fn dhclient(&mut self, dir: &TempDir) -> u32 {
        let s = self.script(
            dir,
            "dhclient",
            &format!(
                "case \"$reason\" in BOUND|RENEW|REBIND|REBOOT) \
                 ip addr replace $new_ip_address/$new_subnet_mask dev $interface; \
                 ip route replace default via ${{new_routers%% *}} dev $interface; \
                 echo \"$reason $new_ip_address\" >> {log};; esac",
                log = self.log.display()
            ),
        );
        let mut cmd = self.ns.command("dhclient");
        cmd.args(["-4", "-d", "-sf"])
            .arg(&s)
            .arg("-pf")
            .arg(dir.path(&format!("{}.dhclient.pid", self.ifname)))
            .arg("-lf")
            .arg(dir.path(&format!("{}.dhclient.leases", self.ifname)))
            .arg(&self.ifname)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = self.ns.spawn(cmd);
        self.pid = Some(pid);
        pid
    }

    /// dhcpcd in the foreground, IPv4 only, no config file, a script that
    /// only logs (dhcpcd installs the address and route itself).
    pub fn dhcpcd(&mut self, dir: &TempDir) -> u32 {
        let s = self.script(
            dir,
            "dhcpcd",
            &format!(
                "case \"$reason\" in BOUND|RENEW|REBIND|REBOOT) \
                 echo \"$reason $new_ip_address\" >> {log};; esac",
                log = self.log.display()
            ),
        );
        let conf = dir.path(&format!("{}.dhcpcd.conf", self.ifname));
        fs::write(&conf, "option routers, subnet_mask\n").expect("dhcpcd.conf");
        let mut cmd = self.ns.command("dhcpcd");
        cmd.args(["-4", "-B", "-f"])
            .arg(&conf)
            .arg("-c")
            .arg(&s)
            .arg(&self.ifname)
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let pid = self.ns.spawn(cmd);
        self.pid = Some(pid);
        pid
    }

    /// TERM and wait (dhcpcd takes its privilege-separation helpers down
    /// with it only on TERM; SIGKILL would leave them running).
    pub fn stop(&mut self) {
        if let Some(pid) = self.pid.take() {
            self.ns.signal(pid, nix::sys::signal::Signal::SIGTERM);
            if self.ns.wait(pid, Duration::from_secs(5)).is_none() {
                self.ns.kill(pid);
            }
        }
    }
}

impl Drop for Client {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `cmd` as a Command for `sh -c` (used to feed a console).
pub fn shell(cmd: &str) -> Command {
    let mut c = Command::new("sh");
    c.arg("-c").arg(cmd);
    c
}
