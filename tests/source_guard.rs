//! Source address validation at the CN (issue 8, "IP source guard"), with
//! real mlrd + three tmipd, busybox udhcpc clients and attacks crafted with
//! scapy:
//!
//! - victim A and attacker B in CN 1's cell, attacker C in CN 2's cell, all
//!   with leases; D in CN 3's cell, where tmipd runs with `source_guard off`
//!   (the control: the same attack there must reach srv, which proves the
//!   capture at srv would see it);
//! - B (same CN) and C (another CN) send pings and TCP RSTs for A's stream
//!   with A's source IP (and their own MAC), and B a flood of 5000 UDP
//!   packets: srv must never see one, A's byte-checked TCP stream
//!   and pings keep working, B's own traffic passes, and CN 1's and CN 2's
//!   counters and logs name the drop (B's and C's MAC as A's address), and
//!   CN 2's bus (`ubus listen tmip` on a `FakeUbusd`, the protocol peer
//!   written from the spec) carries a `refused` event `source_guard` naming
//!   C's MAC as A's address;
//! - B claims A's address by ARP to CN 1: CN 1's neighbour entry for A keeps
//!   A's MAC (at CN 3, without the guard, D's claim is believed);
//! - A roams to CN 2: CN 2 admits it, CN 1 revokes it, the stream survives;
//! - the tables: read back with `nft list`, left behind by a crash (SIGKILL),
//!   replaced at the restart, removed on TERM.
//!
//! Needs root, nft (nftables), tcpdump, busybox and python3-scapy
//! (scripts/setup). The guard does not depend on the tunnel backend: these
//! tests hold with or without the ipip module.
mod common;
#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;
#[path = "common/testbed.rs"]
mod testbed;
#[path = "common/traffic.rs"]
mod traffic;

use common::*;
use std::fs;
use std::net::Ipv4Addr;
use std::process::Stdio;
use std::time::{Duration, Instant};
use testbed::*;
use tmip::addr::Cell30;

/// scapy sender: `MODE IFACE SRC_MAC DST_MAC SRC_IP DST_IP COUNT [ARGS]`.
/// ping: ICMP echo with id ARGS[0]; rst: TCP RSTs from port ARGS[0] to
/// ARGS[1] with sequence numbers spread over the whole space; flood: COUNT
/// UDP packets from port ARGS[0] to port 9, back to back; arp: ARP
/// requests "who has DST_IP, tell SRC_IP at SRC_MAC".
const SENDER: &str = r#"
import sys
from scapy.all import Ether, IP, ICMP, TCP, UDP, ARP, Raw, sendp, conf
conf.verb = 0
mode, iface, smac, dmac, sip, dip = sys.argv[1:7]
n = int(sys.argv[7])
e = Ether(src=smac, dst=dmac)
if mode == "ping":
    ident = int(sys.argv[8], 0)
    frames = [e/IP(src=sip, dst=dip)/ICMP(id=ident, seq=i)/Raw(b"tmip-guard-test") for i in range(n)]
elif mode == "rst":
    sport, dport = int(sys.argv[8]), int(sys.argv[9])
    step = (1 << 32) // n
    frames = [e/IP(src=sip, dst=dip)/TCP(sport=sport, dport=dport, flags="R", seq=(i * step) & 0xffffffff) for i in range(n)]
elif mode == "flood":
    # UDP to the discard port, built once and sent as fast as scapy can.
    f = e/IP(src=sip, dst=dip)/UDP(sport=int(sys.argv[8]), dport=9)/Raw(b"x" * 64)
    sendp([f] * n, iface=iface, inter=0)
    print("sent", n)
    sys.exit(0)
elif mode == "arp":
    frames = [e/ARP(op=1, hwsrc=smac, psrc=sip, hwdst="00:00:00:00:00:00", pdst=dip) for i in range(n)]
else:
    sys.exit("unknown mode " + mode)
sendp(frames, iface=iface, inter=0.005)
print("sent", len(frames))
"#;

const ID_B_SPOOF: u16 = 0x0b01;
const ID_B_OWN: u16 = 0x0b02;
const ID_C_SPOOF: u16 = 0x0c01;
const ID_D_SPOOF: u16 = 0x0d01;
const STREAM_PORT: u16 = 5701;
/// Packets in the spoofed flood.
const FLOOD: u32 = 5000;

fn mac_of(ns: &str, dev: &str) -> String {
    sh(&format!(
        "ip netns exec {ns} cat /sys/class/net/{dev}/address"
    ))
    .trim()
    .to_string()
}

/// Runs the scapy sender in client `i`'s namespace.
fn send(bed: &TestBed, i: usize, args: &[String]) {
    let script = bed.dir.join("guard_sender.py");
    if !script.exists() {
        fs::write(&script, SENDER).expect("write sender");
    }
    let out = bed.clients[i].ns.sh_out(&format!(
        "/usr/bin/python3 {} {}",
        script.display(),
        args.join(" ")
    ));
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("sent"),
        "scapy in ms{i}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn ping_args(smac: &str, dmac: &str, sip: Ipv4Addr, dip: Ipv4Addr, n: u32, id: u16) -> Vec<String> {
    vec![
        "ping".into(),
        CLIENT_IF.into(),
        smac.into(),
        dmac.into(),
        sip.to_string(),
        dip.to_string(),
        n.to_string(),
        format!("{id:#x}"),
    ]
}

/// tcpdump on srv's core interface: every ICMP echo request and TCP RST.
struct SrvCapture {
    pid: u32,
    out: std::path::PathBuf,
}

impl SrvCapture {
    fn start(bed: &mut TestBed) -> SrvCapture {
        let out = bed.dir.join("srv-capture.txt");
        let err = bed.dir.join("srv-capture.err");
        let mut cmd = bed.srv.command("tcpdump");
        cmd.args([
            "-i",
            CORE_IF,
            "-nn",
            "-l",
            "-p",
            "icmp[icmptype] == icmp-echo or tcp[tcpflags] & tcp-rst != 0 or udp dst port 9",
        ])
        .stdout(Stdio::from(fs::File::create(&out).expect("capture file")))
        .stderr(Stdio::from(fs::File::create(&err).expect("capture err")));
        let pid = bed.srv.spawn(cmd);
        let up = wait_for(Duration::from_secs(10), || {
            fs::read_to_string(&err)
                .ok()
                .filter(|t| t.contains("listening on"))
        });
        assert!(up.is_some(), "tcpdump at srv did not start");
        SrvCapture { pid, out }
    }

    fn lines(&self) -> Vec<String> {
        fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// Echo requests from `src` with ICMP id `id` seen so far.
    fn echoes(&self, src: Ipv4Addr, id: u16) -> usize {
        let from = format!("IP {src} > ");
        let ident = format!("id {id},");
        self.lines()
            .iter()
            .filter(|l| l.contains(&from) && l.contains(&ident))
            .count()
    }

    /// UDP datagrams to the discard port from `src`, source port `sport`.
    fn floods(&self, src: Ipv4Addr, sport: u16) -> usize {
        let from = format!("IP {src}.{sport} > ");
        self.lines().iter().filter(|l| l.contains(&from)).count()
    }

    /// TCP RSTs from `src` seen so far.
    fn resets(&self, src: Ipv4Addr) -> usize {
        let from = format!("IP {src}.");
        self.lines()
            .iter()
            .filter(|l| l.contains(&from) && l.contains("Flags [R"))
            .count()
    }

    fn stop(self, bed: &mut TestBed) {
        bed.srv.kill(self.pid);
    }
}

fn nft(bed: &TestBed, k: usize, what: &str) -> String {
    let o = bed.cn(k).ns.sh_out(&format!("nft {what}"));
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn table(k: usize) -> String {
    format!("tmip_{}", TestBed::tunnel_prefix(k))
}

/// `nft list set` of CN `k`'s stations (ip family).
fn admitted(bed: &TestBed, k: usize) -> String {
    nft(bed, k, &format!("list set ip {} stations", table(k)))
}

fn counter(bed: &TestBed, k: usize, family: &str) -> u64 {
    let t = nft(
        bed,
        k,
        &format!("list counter {family} {} spoofed", table(k)),
    );
    t.split_whitespace()
        .skip_while(|w| *w != "packets")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no packet count in: {t}"))
}

fn tmipd_log(bed: &TestBed, k: usize) -> String {
    // In the foreground tmipd logs to its output and (log true) the file.
    let label = bed.cn(k).label().to_lowercase();
    ["log", "out"]
        .iter()
        .map(|ext| {
            fs::read_to_string(bed.dir.join(format!("tmipd-{label}.{ext}"))).unwrap_or_default()
        })
        .collect()
}

fn wait_log(bed: &TestBed, k: usize, needle: &str, timeout: Duration) -> bool {
    wait_for(timeout, || tmipd_log(bed, k).contains(needle).then_some(())).is_some()
}

fn element(mac: &str, ip: Ipv4Addr) -> String {
    format!("{mac} . {ip}")
}

/// The entries of an `nft list set` output ("MAC . IP [timeout T expires E]").
fn entries(set: &str) -> Vec<String> {
    let Some(start) = set.find("elements = {") else {
        return Vec::new();
    };
    let body = &set[start + "elements = {".len()..];
    let body = &body[..body.find('}').unwrap_or(body.len())];
    body.split(',').map(|e| e.trim().to_string()).collect()
}

/// `elem` is admitted for good (no expiry).
fn holds(set: &str, elem: &str) -> bool {
    entries(set)
        .iter()
        .any(|e| e.starts_with(elem) && !e.contains("expires"))
}

/// `elem` lingers after its station left (it expires).
fn lingers(set: &str, elem: &str) -> bool {
    entries(set)
        .iter()
        .any(|e| e.starts_with(elem) && e.contains("expires"))
}

fn lease(bed: &mut TestBed, i: usize) -> Cell30 {
    bed.client_dhcp(i, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()))
}

#[test]
fn spoofed_sources_are_dropped_and_the_victim_keeps_service() {
    let mut bed = TestBed::new(Options {
        cns: 3,
        ..Options::default()
    });
    bed.set_rc(3, &["source_guard off"]);
    // CN 2 on a bus of its own, listened to.
    let sock2 = bed.dir.join("ubus-cn2.sock");
    let _ubusd2 = fake_ubusd::FakeUbusd::start(&sock2);
    bed.set_rc(
        2,
        &["hostapd_ctrl off", &format!("ubus {}", sock2.display())],
    );
    bed.start_daemons(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    assert!(
        bed.cns[1].wait_log("published ubus object 'tmip'", 0, 10),
        "{}",
        tmipd_log(&bed, 2)
    );
    let bus2 = fake_ubusd::EventLog::start(&sock2, "tmip");
    for k in [1, 2] {
        assert!(
            tmipd_log(&bed, k).contains(&format!(
                "[Source guard (nftables table ip {t}, arp {t}: only admitted stations' MAC+IP pass from {MOBILE_IF})]: Active.",
                t = table(k)
            )),
            "CN{k} start-up log:\n{}",
            tmipd_log(&bed, k)
        );
    }
    assert!(tmipd_log(&bed, 3).contains("[Source guard]: Off (source_guard off)"));
    assert!(
        !nft(&bed, 3, "list tables").contains(&table(3)),
        "CN3 runs without a guard table"
    );

    let a = bed.add_client(1);
    let b = bed.add_client(1);
    let c = bed.add_client(2);
    let d = bed.add_client(3);
    let cell_a = lease(&mut bed, a);
    let cell_b = lease(&mut bed, b);
    let cell_c = lease(&mut bed, c);
    lease(&mut bed, d);
    let (ip_a, ip_b) = (cell_a.station(), cell_b.station());
    let mac = |bed: &TestBed, i: usize| bed.clients[i].mac.clone();
    let (mac_a, mac_b, mac_c, mac_d) = (mac(&bed, a), mac(&bed, b), mac(&bed, c), mac(&bed, d));
    let gw = |k: usize| mac_of(&bed.cn(k).ns.name, MOBILE_IF);
    let (gw1, gw2, gw3) = (gw(1), gw(2), gw(3));

    // The stations CN 1 adopted are admitted, read back from the kernel.
    let set1 = admitted(&bed, 1);
    assert!(holds(&set1, &element(&mac_a, ip_a)), "{set1}");
    assert!(holds(&set1, &element(&mac_b, ip_b)), "{set1}");
    let set2 = admitted(&bed, 2);
    assert!(holds(&set2, &element(&mac_c, cell_c.station())), "{set2}");
    assert!(!set2.contains(&mac_a), "A is not at CN2: {set2}");

    // A's service: a byte-checked TCP stream and pings to srv.
    let srv_ns = bed.srv.name.clone();
    let a_ns = bed.clients[a].ns.name.clone();
    let mut stream = traffic::TcpCheck::start(
        &srv_ns,
        SRV_IP,
        STREAM_PORT,
        &a_ns,
        Duration::from_millis(5),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    let a_port = stream.tuple.0.port();
    let mark = stream.mark();
    let capture = SrvCapture::start(&mut bed);

    // B (same CN) and C (another CN) send as A; D (CN 3, guard off) too.
    let n = 40;
    send(
        &bed,
        b,
        &ping_args(&mac_b, &gw1, ip_a, SRV_IP, n, ID_B_SPOOF),
    );
    let rst = |smac: &str, dmac: &str| -> Vec<String> {
        vec![
            "rst".into(),
            CLIENT_IF.into(),
            smac.into(),
            dmac.into(),
            ip_a.to_string(),
            SRV_IP.to_string(),
            "64".into(),
            a_port.to_string(),
            STREAM_PORT.to_string(),
        ]
    };
    send(&bed, b, &rst(&mac_b, &gw1));
    send(
        &bed,
        c,
        &ping_args(&mac_c, &gw2, ip_a, SRV_IP, n, ID_C_SPOOF),
    );
    send(&bed, c, &rst(&mac_c, &gw2));
    // Not even a station's address: a random source.
    send(
        &bed,
        b,
        &ping_args(
            &mac_b,
            &gw1,
            Ipv4Addr::new(192, 0, 2, 7),
            SRV_IP,
            n,
            ID_B_SPOOF,
        ),
    );
    // B's own packets, from its own MAC and address, pass.
    send(&bed, b, &ping_args(&mac_b, &gw1, ip_b, SRV_IP, n, ID_B_OWN));
    // The control: the same spoof at CN 3 (no guard) reaches srv.
    send(
        &bed,
        d,
        &ping_args(&mac_d, &gw3, ip_a, SRV_IP, n, ID_D_SPOOF),
    );

    let got_control = wait_for(Duration::from_secs(5), || {
        (capture.echoes(ip_a, ID_D_SPOOF) >= (n as usize) * 3 / 4
            && capture.echoes(ip_b, ID_B_OWN) >= (n as usize) * 3 / 4)
            .then_some(())
    });
    std::thread::sleep(Duration::from_millis(500));
    let lines = capture.lines();
    println!(
        "srv saw: {} of {n} control spoofs via CN3 (no guard), {} of {n} of B's own pings; \
         via CN1/CN2: {} + {} spoofed pings, {} RSTs from {ip_a}",
        capture.echoes(ip_a, ID_D_SPOOF),
        capture.echoes(ip_b, ID_B_OWN),
        capture.echoes(ip_a, ID_B_SPOOF),
        capture.echoes(ip_a, ID_C_SPOOF),
        capture.resets(ip_a),
    );
    assert!(
        got_control.is_some(),
        "srv did not see the control spoofs via CN3 or B's own pings:\n{}",
        lines.join("\n")
    );
    assert_eq!(capture.echoes(ip_a, ID_B_SPOOF), 0, "B's spoof passed CN1");
    assert_eq!(capture.echoes(ip_a, ID_C_SPOOF), 0, "C's spoof passed CN2");
    assert_eq!(
        capture.echoes(Ipv4Addr::new(192, 0, 2, 7), ID_B_SPOOF),
        0,
        "a random source passed CN1"
    );
    assert_eq!(capture.resets(ip_a), 0, "spoofed RSTs reached srv");

    // The counters and the log name the drop.
    let (c1, c2) = (counter(&bed, 1, "ip"), counter(&bed, 2, "ip"));
    println!("guard counters: CN1 {c1}, CN2 {c2} IPv4 packets dropped");
    assert!(c1 >= 2 * n as u64 + 64, "CN1 counted {c1}");
    assert!(c2 >= n as u64 + 64, "CN2 counted {c2}");
    for (k, who) in [(1, &mac_b), (2, &mac_c)] {
        let needle = format!("{who} as {ip_a}");
        assert!(
            wait_log(&bed, k, &needle, Duration::from_secs(8)),
            "CN{k}'s log does not name {needle}:\n{}",
            tmipd_log(&bed, k)
        );
    }
    assert!(tmipd_log(&bed, 1).contains(&format!("source guard on {MOBILE_IF}: dropped")));
    // CN 2's bus: the guard's report as a refused event naming C as A.
    let field = |v: &tmip::ubus::Value, k: &str| {
        v.get(k)
            .and_then(tmip::ubus::Value::as_str)
            .unwrap_or("")
            .to_string()
    };
    let ev = bus2
        .wait_refused(&["source_guard"], Duration::from_secs(10), Duration::ZERO)
        .unwrap_or_else(|came| panic!("no source_guard event on CN2's bus: {came:?}"));
    let e = ev
        .iter()
        .find(|e| field(e, "reason") == "source_guard" && field(e, "mac") == mac_c.to_lowercase())
        .unwrap_or_else(|| panic!("no source_guard event for C ({mac_c}): {ev:?}"));
    println!("CN2 bus: {e:?}");
    assert_eq!(field(e, "ip"), ip_a.to_string(), "{e:?}");
    assert!(
        e.get("packets")
            .and_then(tmip::ubus::Value::as_i64)
            .is_some_and(|n| n > 0),
        "{e:?}"
    );

    // ARP: B claims A's address to CN 1; CN 1 keeps believing A.
    let cn1_ip = cn_mobile_ip(1);
    let arp_b = vec![
        "arp".into(),
        CLIENT_IF.into(),
        mac_b.clone(),
        gw1.clone(),
        ip_a.to_string(),
        cn1_ip.to_string(),
        "5".into(),
    ];
    send(&bed, b, &arp_b);
    let neigh1 = bed
        .cn(1)
        .ns
        .sh(&format!("ip neigh show {ip_a} dev {MOBILE_IF}"));
    assert!(
        neigh1.contains(&mac_a) && !neigh1.contains(&mac_b),
        "CN1 believed B's ARP claim: {neigh1}"
    );
    assert!(counter(&bed, 1, "arp") >= 5, "ARP drops not counted");
    // Control: D's claim at CN 3 (no guard) is believed.
    let arp_d = vec![
        "arp".into(),
        CLIENT_IF.into(),
        mac_d.clone(),
        gw3.clone(),
        ip_a.to_string(),
        cn_mobile_ip(3).to_string(),
        "5".into(),
    ];
    send(&bed, d, &arp_d);
    let neigh3 = bed
        .cn(3)
        .ns
        .sh(&format!("ip neigh show {ip_a} dev {MOBILE_IF}"));
    assert!(
        neigh3.contains(&mac_d),
        "control: CN3 (no guard) should have believed D: {neigh3}"
    );

    // A flood as A from B, while A's stream runs; the same few through CN 3
    // (no guard) prove srv's capture would count them.
    let flood = |smac: &str, dmac: &str, n: u32, sport: u16| -> Vec<String> {
        vec![
            "flood".into(),
            CLIENT_IF.into(),
            smac.into(),
            dmac.into(),
            ip_a.to_string(),
            SRV_IP.to_string(),
            n.to_string(),
            sport.to_string(),
        ]
    };
    let before = counter(&bed, 1, "ip");
    let t0 = Instant::now();
    send(&bed, b, &flood(&mac_b, &gw1, FLOOD, 4242));
    let took = t0.elapsed();
    send(&bed, d, &flood(&mac_d, &gw3, 20, 4343));
    let control = wait_for(Duration::from_secs(5), || {
        (capture.floods(ip_a, 4343) >= 15).then_some(())
    });
    let dropped = counter(&bed, 1, "ip") - before;
    println!(
        "flood: {FLOOD} spoofed packets from B in {took:?}; CN1 dropped {dropped}; srv saw {} \
         (control via CN3: {} of 20)",
        capture.floods(ip_a, 4242),
        capture.floods(ip_a, 4343)
    );
    assert!(
        control.is_some(),
        "the control flood via CN3 did not reach srv"
    );
    assert_eq!(capture.floods(ip_a, 4242), 0, "B's flood passed CN1");
    // The cell may lose some of the flood before CN 1 (veth backlog).
    assert!(dropped >= u64::from(FLOOD) / 2, "CN1 counted {dropped}");

    // A kept its service all along: the stream, and pings.
    let w = stream.window(&mark, Duration::from_secs(3));
    println!(
        "A's stream during the attacks: up gap {:?}, down gap {:?}, lost {}, same connection {}",
        w.up_gap, w.down_gap, w.lost, w.same_connection
    );
    assert!(
        w.same_connection && w.lost == 0 && w.error.is_none(),
        "{w:?}"
    );
    let ping = bed.clients[a]
        .ns
        .sh_out(&format!("ping -c 3 -i 0.2 -W 2 {SRV_IP}"));
    assert!(ping.status.success(), "A's pings failed");
    let ping = bed.clients[b]
        .ns
        .sh_out(&format!("ping -c 3 -i 0.2 -W 2 {SRV_IP}"));
    assert!(ping.status.success(), "B's own pings failed");

    // A roams to CN 2: admitted there; at CN 1 its pair lingers (expires
    // after source_guard::LINGER_MS); the stream stays intact.
    let mark = stream.mark();
    bed.move_client(a, 2);
    let moved = wait_for(Duration::from_secs(10), || {
        (holds(&admitted(&bed, 2), &element(&mac_a, ip_a))
            && lingers(&admitted(&bed, 1), &element(&mac_a, ip_a)))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "guard did not follow A's move: CN1 {} CN2 {}\n{}",
        admitted(&bed, 1),
        admitted(&bed, 2),
        bed.logs()
    );
    let w = stream.window(&mark, Duration::from_secs(5));
    println!(
        "A's stream across the move: gap {:?}, lost {}, same connection {}",
        w.gap(),
        w.lost,
        w.same_connection
    );
    assert!(
        w.same_connection && w.lost == 0 && w.error.is_none(),
        "{w:?}"
    );
    // Now that A is gone from CN 1, B's claim to A's address is still
    // refused there.
    let before = counter(&bed, 1, "ip");
    send(
        &bed,
        b,
        &ping_args(&mac_b, &gw1, ip_a, SRV_IP, 10, ID_B_SPOOF),
    );
    let counted = wait_for(Duration::from_secs(3), || {
        (counter(&bed, 1, "ip") >= before + 10).then_some(())
    });
    let after = counter(&bed, 1, "ip");
    assert!(
        counted.is_some(),
        "CN1 counted {before} -> {after}; srv saw {} of them; CN1 set {}\n{}",
        capture.echoes(ip_a, ID_B_SPOOF),
        admitted(&bed, 1),
        bed.logs()
    );
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(
        capture.echoes(ip_a, ID_B_SPOOF),
        0,
        "spoof after the move passed CN1"
    );

    let (up_s, up_r, down_s, down_r, err) = stream.finish(Duration::from_secs(3));
    println!("A's stream: up {up_r}/{up_s} B, down {down_r}/{down_s} B");
    assert!(err.is_none(), "{err:?}");
    capture.stop(&mut bed);
}

#[test]
fn guard_tables_survive_a_crash_are_replaced_at_restart_and_removed_on_term() {
    let mut bed = TestBed::new(Options {
        cns: 1,
        ..Options::default()
    });
    bed.start_daemons(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    let a = bed.add_client(1);
    let cell = lease(&mut bed, a);
    let mac_a = bed.clients[a].mac.clone();
    assert!(holds(&admitted(&bed, 1), &element(&mac_a, cell.station())));

    // A crash leaves the tables (and A's admission) in place: the cell
    // stays guarded while tmipd is down.
    bed.kill_tmipd(1);
    let tables = nft(&bed, 1, "list tables");
    assert!(
        tables.contains(&format!("table ip {}", table(1)))
            && tables.contains(&format!("table arp {}", table(1))),
        "{tables}"
    );
    assert!(admitted(&bed, 1).contains(&mac_a));

    // The restart replaces them and takes A back once the MLR confirms it.
    bed.start_tmipd(1, Duration::from_secs(20))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    assert!(
        tmipd_log(&bed, 1).contains(&format!(
            "Removed stale source guard table {} (replaced by a fresh one)",
            table(1)
        )),
        "{}",
        tmipd_log(&bed, 1)
    );
    let back = wait_for(Duration::from_secs(10), || {
        admitted(&bed, 1)
            .contains(&element(&mac_a, cell.station()))
            .then_some(())
    });
    assert!(
        back.is_some(),
        "A not admitted after the restart:\n{}",
        bed.logs()
    );
    let ping = bed.clients[a]
        .ns
        .sh_out(&format!("ping -c 3 -i 0.2 -W 2 {SRV_IP}"));
    assert!(ping.status.success(), "A's pings after the restart failed");

    // TERM removes both tables.
    let p = bed.cns[0].daemon.as_mut().expect("tmipd");
    assert!(
        p.terminate(Duration::from_secs(10)),
        "tmipd did not exit on TERM"
    );
    let tables = nft(&bed, 1, "list tables");
    assert!(
        !tables.contains(&table(1)),
        "tables left after TERM: {tables}"
    );
}

#[test]
fn a_station_configured_by_hand_is_admitted_when_the_cn_adopts_it() {
    let mut bed = TestBed::new(Options {
        cns: 2,
        ..Options::default()
    });
    bed.start_daemons(Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    // The seed's static client: N+1/30 and gateway N+2 by hand, no DHCP,
    // inside CN 2's pool. CN 2 detects it by its first frames (the capture
    // sees them before the guard drops them) and admits it on adoption.
    let s = bed.add_client(2);
    let cell = Cell30::from_network("10.2.0.200".parse().unwrap()).unwrap();
    bed.client_static(s, cell);
    let mac_s = bed.clients[s].mac.clone();
    assert!(!admitted(&bed, 2).contains(&mac_s));
    let t0 = Instant::now();
    let ns = bed.clients[s].ns.name.clone();
    let reach = wait_for(Duration::from_secs(10), || {
        sh_out(&format!("ip netns exec {ns} ping -c1 -W1 {SRV_IP}"))
            .status
            .success()
            .then_some(())
    });
    assert!(
        reach.is_some(),
        "static station never reached srv:\n{}",
        bed.logs()
    );
    println!("static station served after {:?}", t0.elapsed());
    assert!(holds(&admitted(&bed, 2), &element(&mac_s, cell.station())));
    // The hand-configured station roams to CN 1: admitted there, lingering
    // here.
    bed.move_client(s, 1);
    let moved = wait_for(Duration::from_secs(10), || {
        let ok = sh_out(&format!("ip netns exec {ns} ping -c1 -W1 {SRV_IP}"))
            .status
            .success();
        (ok && holds(&admitted(&bed, 1), &element(&mac_s, cell.station()))
            && lingers(&admitted(&bed, 2), &element(&mac_s, cell.station())))
        .then_some(())
    });
    assert!(
        moved.is_some(),
        "static station not followed to CN1:\n{}",
        bed.logs()
    );
}
