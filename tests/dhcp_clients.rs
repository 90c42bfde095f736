//! Interop of the DHCP server with real clients, in network namespaces.
//!
//! Each test runs `examples/dhcpd_standalone` (the server with an
//! in-process allocator standing in for the MLR) in a server namespace and
//! one real client in a client namespace joined by a veth, then checks in
//! the client namespace that N+1/30 is installed with the default route via
//! N+2, forces or waits for a renewal and checks it was ACKed as a unicast
//! RENEWING request. The server's interface carries N+2/32 (set here with
//! `ip`) so that unicast renewals reach it, as tmipd arranges per station.
//!
//! Needs root, busybox udhcpc, ISC dhclient, dhcpcd and python3-scapy
//! (scripts/setup installs them); fails without them. The example is built
//! by `cargo test` (or `cargo build --examples`).
mod common;
use common::*;

use std::fs;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

const POOL: &str = "10.50.0.0-10.50.0.255";
const STATION: &str = "10.50.0.1/30";
const GATEWAY: &str = "10.50.0.2";

/// Server namespace + client namespace + running dhcpd_standalone.
struct Bed {
    // Field order matters: namespaces (and their processes) go before the dir.
    cli: Netns,
    srv: Netns,
    srv_pid: u32,
    /// The client's interface name (unique on the host: dhcpcd keys files by it).
    ifname: String,
    dir: RunDir,
}

impl Bed {
    fn new(server_args: &[&str]) -> Bed {
        require_root();
        let mut srv = Netns::new("ds");
        let cli = Netns::new("dc");
        let ifname = unique("m");
        veth(&srv, "e0", &cli, &ifname);
        // What tmipd does per station: answer for N+2, host route to N+1.
        srv.sh(&format!("ip addr add {GATEWAY}/32 dev e0"));
        srv.sh("ip route add 10.50.0.0/24 dev e0");
        let dir = RunDir::new("dhcpt");
        let out = fs::File::create(dir.path("server.out")).unwrap();
        let err = fs::File::create(dir.path("server.err")).unwrap();
        let mut cmd = srv.command(example("dhcpd_standalone"));
        cmd.args(["--iface", "e0", "--pool", POOL, "--debug", "4"])
            .args(server_args)
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err));
        let srv_pid = srv.spawn(cmd);
        let bed = Bed {
            cli,
            srv,
            srv_pid,
            ifname,
            dir,
        };
        bed.wait_server("READY", 1, Duration::from_secs(10));
        bed
    }

    fn server_out(&self) -> String {
        read(&self.dir.path("server.out"))
    }

    fn server_log(&self) -> String {
        read(&self.dir.path("server.err"))
    }

    /// Wait until `count` server output lines start with `word`.
    fn wait_server(&self, word: &str, count: usize, timeout: Duration) {
        let ok = wait_for(timeout, || {
            let n = self
                .server_out()
                .lines()
                .filter(|l| l.starts_with(word))
                .count();
            (n >= count).then_some(())
        });
        assert!(
            ok.is_some(),
            "server never printed {count}x {word}\nstdout:\n{}\nstderr:\n{}",
            self.server_out(),
            self.server_log()
        );
    }

    fn wait_event(&self, file: &str, word: &str, what: &str, timeout: Duration) {
        let path = self.dir.path(file);
        let ok = wait_for(timeout, || read(&path).contains(word).then_some(()));
        assert!(
            ok.is_some(),
            "{what}: no {word} event\nevents:\n{}\nserver:\n{}\n{}",
            read(&path),
            self.server_out(),
            self.server_log()
        );
    }

    /// The lease is installed in the client namespace and N+2 answers.
    fn assert_installed(&self) {
        let addr = self.cli.sh(&format!("ip -4 addr show dev {}", self.ifname));
        assert!(addr.contains(STATION), "no {STATION} on the client: {addr}");
        let route = self.cli.sh("ip -4 route show default");
        assert!(
            route.contains(&format!("via {GATEWAY}")),
            "default route not via N+2: {route}"
        );
        self.cli.sh(&format!("ping -c1 -W2 {GATEWAY}"));
    }

    fn assert_renewed_by_unicast(&self) {
        let log = self.server_log();
        assert!(
            log.contains("REQUEST (Renewing)"),
            "renewal did not arrive unicast (RENEWING):\n{log}"
        );
        self.wait_server("ACK", 2, Duration::from_secs(5));
        let out = self.server_out();
        assert!(!out.contains("NAK") && !out.contains("DROP"), "{out}");
    }

    fn assert_server_alive(&mut self) {
        assert!(
            self.srv
                .wait(self.srv_pid, Duration::from_millis(50))
                .is_none(),
            "server exited:\n{}\n{}",
            self.server_out(),
            self.server_log()
        );
    }
}

const SERVER_OPTIONS: [&str; 6] = [
    "--dns",
    "192.0.2.53",
    "--domain",
    "tmip.test",
    "--route",
    "172.16.0.0/12=0.0.0.0",
];

/// udhcpc script: record the event, configure what udhcpc does not.
fn udhcpc_script(events: &Path) -> String {
    format!(
        r#"#!/bin/sh
case "$1" in
  bound|renew)
    ip addr replace "$ip/$mask" dev "$interface"
    ip route replace default via "${{router%% *}}" dev "$interface" ;;
esac
# Recorded last: the test reads an event as "configured".
echo "$1 ip=$ip mask=$mask router=$router dns=$dns domain=$domain routes=$staticroutes" >> {ev}
"#,
        ev = events.display()
    )
}

fn write_exec(path: &Path, text: &str) {
    fs::write(path, text).unwrap();
    sh(&format!("chmod 755 {}", path.display()));
}

fn start_udhcpc(bed: &mut Bed, events: &str) -> u32 {
    let script = bed.dir.path("udhcpc.sh");
    write_exec(&script, &udhcpc_script(&bed.dir.path(events)));
    let mut cmd = bed.cli.command("udhcpc");
    cmd.args([
        "-f",
        "-i",
        &bed.ifname,
        "-t",
        "10",
        "-T",
        "1",
        "-x",
        "hostname:ms1",
    ])
    .args(["-O", "staticroutes", "-s"])
    .arg(&script)
    .arg("-p")
    .arg(bed.dir.path("udhcpc.pid"))
    .stdout(Stdio::null())
    .stderr(Stdio::null());
    bed.cli.spawn(cmd)
}

#[test]
fn udhcpc_obtains_installs_and_renews() {
    let mut bed = Bed::new(&SERVER_OPTIONS);
    let t0 = Instant::now();
    let pid = start_udhcpc(&mut bed, "udhcpc.events");
    bed.wait_event("udhcpc.events", "bound", "udhcpc", Duration::from_secs(10));
    let lease_ms = t0.elapsed().as_millis();
    bed.assert_installed();
    let ev = read(&bed.dir.path("udhcpc.events"));
    assert!(ev.contains("router=10.50.0.2"), "{ev}");
    assert!(ev.contains("mask=30"), "{ev}");
    assert!(
        ev.contains("dns=192.0.2.53") && ev.contains("domain=tmip.test"),
        "{ev}"
    );
    assert!(
        ev.contains("routes=172.16.0.0/12 10.50.0.2 0.0.0.0/0 10.50.0.2"),
        "option 121 with the default route: {ev}"
    );
    let t1 = Instant::now();
    bed.cli.signal(pid, nix::sys::signal::Signal::SIGUSR1);
    bed.wait_event(
        "udhcpc.events",
        "renew",
        "udhcpc renewal",
        Duration::from_secs(10),
    );
    println!(
        "udhcpc: lease installed {lease_ms} ms after start, renewal {} ms after SIGUSR1",
        t1.elapsed().as_millis()
    );
    bed.assert_renewed_by_unicast();
    bed.assert_installed();
    bed.cli.kill(pid);
}

#[test]
fn dhclient_obtains_installs_and_renews() {
    // A 6 s lease: dhclient renews (unicast) at T1, within a few seconds.
    let mut args = SERVER_OPTIONS.to_vec();
    args.extend(["--lease", "6"]);
    let mut bed = Bed::new(&args);
    let events = bed.dir.path("dhclient.events");
    let script = bed.dir.path("dhclient.sh");
    write_exec(
        &script,
        &format!(
            r#"#!/bin/sh
case "$reason" in
  BOUND|RENEW|REBIND|REBOOT)
    ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface"
    ip route replace default via "${{new_routers%% *}}" dev "$interface" ;;
esac
echo "$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers routes=$new_rfc3442_classless_static_routes lease=$new_dhcp_lease_time" >> {ev}
"#,
            ev = events.display()
        ),
    );
    let conf = bed.dir.path("dhclient.conf");
    fs::write(
        &conf,
        "option rfc3442-classless-static-routes code 121 = array of unsigned integer 8;\n\
         request subnet-mask, routers, domain-name-servers, domain-name, rfc3442-classless-static-routes;\n",
    )
    .unwrap();
    let mut cmd = bed.cli.command("dhclient");
    cmd.args(["-d", "-4", "-cf"])
        .arg(&conf)
        .arg("-lf")
        .arg(bed.dir.path("dhclient.leases"))
        .arg("-pf")
        .arg(bed.dir.path("dhclient.pid"))
        .arg("-sf")
        .arg(&script)
        .arg(&bed.ifname)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let pid = bed.cli.spawn(cmd);
    bed.wait_event(
        "dhclient.events",
        "BOUND",
        "dhclient",
        Duration::from_secs(15),
    );
    let lease_ms = t0.elapsed().as_millis();
    bed.assert_installed();
    let ev = read(&events);
    assert!(
        ev.contains("mask=255.255.255.252 routers=10.50.0.2"),
        "{ev}"
    );
    assert!(
        ev.contains("routes=12 172 16 10 50 0 2 0 10 50 0 2"),
        "{ev}"
    );
    assert!(ev.contains("lease=6"), "{ev}");
    let t1 = Instant::now();
    bed.wait_event(
        "dhclient.events",
        "RENEW",
        "dhclient renewal",
        Duration::from_secs(10),
    );
    println!(
        "dhclient: lease installed {lease_ms} ms after start, renewal {} ms later (at T1 of a 6 s lease)",
        t1.elapsed().as_millis()
    );
    bed.assert_renewed_by_unicast();
    bed.assert_installed();
    bed.cli.kill(pid);
}

#[test]
fn dhcpcd_obtains_installs_and_renews() {
    let mut bed = Bed::new(&SERVER_OPTIONS);
    let events = bed.dir.path("dhcpcd.events");
    let script = bed.dir.path("dhcpcd.sh");
    // Our own hook script: dhcpcd's default hooks (resolv.conf, hostname)
    // never run, so the host is not touched.
    write_exec(
        &script,
        &format!(
            r#"#!/bin/sh
echo "$reason ip=$new_ip_address mask=$new_subnet_mask routers=$new_routers dns=$new_domain_name_servers routes=$new_classless_static_routes" >> {ev}
"#,
            ev = events.display()
        ),
    );
    let conf = bed.dir.path("dhcpcd.conf");
    fs::write(
        &conf,
        "clientid\nnoarp\nnoipv4ll\nnoipv6rs\nipv4only\n\
         option domain_name_servers, domain_name, classless_static_routes\n",
    )
    .unwrap();
    let mut cmd = bed.cli.command("dhcpcd");
    cmd.args(["-B", "-4", "-f"])
        .arg(&conf)
        .arg("-c")
        .arg(&script)
        .arg(&bed.ifname)
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let t0 = Instant::now();
    let pid = bed.cli.spawn(cmd);
    let ifname = bed.ifname.clone();
    // dhcpcd keeps per-interface files in fixed places; the interface name
    // is unique on the host. Dropped last.
    let _cleanup = Cleanup(
        ["", "-4"]
            .iter()
            .flat_map(|v| {
                [
                    format!("/var/lib/dhcpcd/{ifname}{v}.lease"),
                    format!("/run/dhcpcd/{ifname}{v}.pid"),
                    format!("/run/dhcpcd/{ifname}{v}.sock"),
                    format!("/run/dhcpcd/{ifname}{v}.unpriv.sock"),
                ]
            })
            .collect(),
    );
    // dhcpcd's privilege-separation helpers outlive a SIGKILL of their
    // manager; SIGTERM stops them all. Runs first, also when a check fails.
    let _stop = StopGently(pid);
    bed.wait_event("dhcpcd.events", "BOUND", "dhcpcd", Duration::from_secs(15));
    let lease_ms = t0.elapsed().as_millis();
    bed.assert_installed();
    let ev = read(&events);
    assert!(
        ev.contains("mask=255.255.255.252 routers=10.50.0.2"),
        "{ev}"
    );
    assert!(
        ev.contains("routes=172.16.0.0/12 10.50.0.2 0.0.0.0/0 10.50.0.2"),
        "{ev}"
    );
    let route = bed.cli.sh("ip -4 route");
    assert!(
        route.contains("172.16.0.0/12 via 10.50.0.2"),
        "dhcpcd installs 121: {route}"
    );
    // SIGUSR1: dhcpcd renews all leases.
    let t1 = Instant::now();
    bed.cli.signal(pid, nix::sys::signal::Signal::SIGUSR1);
    bed.wait_event(
        "dhcpcd.events",
        "RENEW",
        "dhcpcd renewal",
        Duration::from_secs(10),
    );
    println!(
        "dhcpcd: lease installed {lease_ms} ms after start, renewal {} ms after SIGUSR1",
        t1.elapsed().as_millis()
    );
    bed.assert_renewed_by_unicast();
    bed.assert_installed();
}

/// Sends SIGTERM to a process on drop and waits (up to 5 s) until it has
/// exited (zombie or gone); the namespace guard reaps it afterwards.
struct StopGently(u32);

impl Drop for StopGently {
    fn drop(&mut self) {
        let pid = nix::unistd::Pid::from_raw(self.0 as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        let stat = format!("/proc/{}/stat", self.0);
        wait_for(Duration::from_secs(5), || {
            let s = fs::read_to_string(&stat).unwrap_or_default();
            // Field 3 is the state; the name in field 2 has no ')' here.
            let state = s
                .rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .chars()
                .next();
            matches!(state, None | Some('Z')).then_some(())
        });
    }
}

/// Removes files on drop.
struct Cleanup(Vec<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for f in &self.0 {
            let _ = fs::remove_file(f);
        }
    }
}

const MALFORMED_SCAPY: &str = r#"
import sys
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, Raw, sendp, conf
conf.verb = 0
iface = sys.argv[1]
mac = "02:00:00:00:66:01"
eth = Ether(src=mac, dst="ff:ff:ff:ff:ff:ff")
ipu = IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67)
# A broadcast chaddr: whatever survives the mutations is ignored, never
# allocated, so the real client below gets the first cell.
chaddr = b"\xff" * 6 + b"\0" * 10
good = BOOTP(chaddr=chaddr, xid=1) / DHCP(options=[("message-type", "discover"), "end"])
frames = [
    # DHCP header cut short
    eth / ipu / Raw(bytes(good)[:100]),
    # bad magic cookie
    eth / ipu / Raw(bytes(good)[:236] + b"\x01\x02\x03\x04" + bytes(good)[240:]),
    # option length runs past the end
    eth / ipu / Raw(bytes(good)[:240] + b"\x35\x01\x01\x0c\xff" + b"ab"),
    # message type with length 3
    eth / ipu / Raw(bytes(good)[:240] + b"\x35\x03\x01\x01\x01\xff"),
    # BOOTP without message type
    eth / ipu / Raw(bytes(good)[:240] + b"\xff"),
    # max message size below 576
    eth / ipu / BOOTP(chaddr=chaddr, xid=2) / DHCP(options=[("message-type", "discover"), ("max_dhcp_size", 100), "end"]),
    # bad 121 route width
    eth / ipu / Raw(bytes(good)[:240] + b"\x35\x01\x01\x79\x05\x21\x01\x02\x03\x04\xff"),
    # IPv4 total length beyond the frame
    eth / Raw(bytes(IP(src="0.0.0.0", dst="255.255.255.255", len=1400) / UDP(sport=68, dport=67) / good)),
    # IHL below 5 (the BPF filter already drops it: port read at the wrong offset)
    eth / Raw(b"\x44" + bytes(ipu / good)[1:]),
    # UDP length beyond the datagram
    eth / IP(src="0.0.0.0", dst="255.255.255.255") / UDP(sport=68, dport=67, len=2000) / good,
    # hardware type not Ethernet
    eth / ipu / BOOTP(htype=6, chaddr=chaddr, xid=3) / DHCP(options=[("message-type", "discover"), "end"]),
    # bad IP header checksum
    eth / IP(src="0.0.0.0", dst="255.255.255.255", chksum=0x1234) / UDP(sport=68, dport=67) / good,
]
import random
random.seed(7)
for i in range(40):
    b = bytearray(bytes(good))
    for _ in range(random.randint(1, 6)):
        b[random.randrange(236, len(b))] = random.randrange(256)
    frames.append(eth / ipu / Raw(bytes(b)))
    frames.append(eth / ipu / Raw(bytes(random.randrange(256) for _ in range(random.randrange(0, 400)))))
for f in frames:
    sendp(f, iface=iface)
print(len(frames))
"#;

#[test]
fn malformed_frames_are_logged_and_survived() {
    let mut bed = Bed::new(&[]);
    let script = bed.dir.path("malformed.py");
    fs::write(&script, MALFORMED_SCAPY).unwrap();
    let sent = bed.cli.sh(&format!(
        "/usr/bin/python3 {} {}",
        script.display(),
        bed.ifname
    ));
    assert!(
        sent.trim().parse::<u32>().unwrap_or(0) >= 90,
        "scapy sent {sent}"
    );
    // The crafted frames are each refused with a reason.
    bed.wait_server("DROP", 10, Duration::from_secs(5));
    let out = bed.server_out();
    for reason in [
        "message shorter than the 240-byte header",
        "bad magic cookie",
        "option 12 runs past the end",
        "option 53: length is not 1",
        "no message type option",
        "option 57: below 576",
        "option 121: route width over 32",
        "bad frame: truncated",
        "hardware type is not Ethernet",
        "bad frame: bad checksum",
    ] {
        assert!(out.contains(reason), "no DROP for {reason:?}:\n{out}");
    }
    // The library itself logs each drop on target `dhcp` (debug level 4).
    let log = bed.server_log();
    assert!(
        log.matches("frame dropped: bad").count() >= 10,
        "drops not logged:\n{log}"
    );
    bed.assert_server_alive();
    // And a real client still gets its lease.
    let pid = start_udhcpc(&mut bed, "after.events");
    bed.wait_event(
        "after.events",
        "bound",
        "udhcpc after malformed input",
        Duration::from_secs(10),
    );
    bed.assert_installed();
    bed.assert_server_alive();
    bed.cli.kill(pid);
}
