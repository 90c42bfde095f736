//! Both tunnel backends end to end, each forced (`--backend`): two
//! routers, each running `examples/ipip_relay` (the tunnel controller in a
//! poll loop), hosts behind them. Proves: ping and a byte-checked TCP
//! transfer cross the tunnel; the packets between the routers are IPv4
//! protocol 4 with the CN addresses outside and the untouched host packet
//! right after a 20-byte header (captured with tcpdump), the same for the
//! userspace backend as for the kernel's ipip device; IPIP from an unknown
//! source is dropped (and counted by the userspace backend); SIGTERM removes
//! the tunnel and its routes. On a kernel without the ipip module the forced
//! kernel backend must refuse to start, with the reason (the radio lab,
//! scripts/lab, runs these tests under Debian's kernel, which has it).
//!
//! Topology: A (10.1.0.2) - rA (10.1.0.1 | 192.168.0.1) == rB (192.168.0.2 | 10.2.0.1) - B (10.2.0.2)

mod common;
#[path = "common/kernel.rs"]
mod kernel;
use common::{sh, wait_for, Netns};
use std::io::{BufRead, BufReader, Read, Write};
use std::path::PathBuf;
use std::process::{Child, ChildStdout, Stdio};
use std::time::Duration;

fn relay_bin() -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let p = exe
        .parent()
        .unwrap()
        .parent()
        .unwrap()
        .join("examples/ipip_relay");
    assert!(
        p.exists(),
        "{} not built: cargo build --examples",
        p.display()
    );
    p
}

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Mode {
    Kernel,
    Userspace { offload: bool },
}

struct Relay {
    child: Child,
    out: BufReader<ChildStdout>,
}

impl Relay {
    /// Starts the relay and waits for `ready`; `Err` carries its stderr when
    /// it exits instead.
    fn try_start(
        ns: &Netns,
        prefix: &str,
        local: &str,
        peer: &str,
        route: &str,
        mode: Mode,
    ) -> Result<Relay, String> {
        let mut cmd = ns.command(relay_bin());
        cmd.args([
            "--prefix", prefix, "--local", local, "--peer", peer, "--route", route,
        ]);
        match mode {
            Mode::Kernel => cmd.args(["--backend", "kernel"]),
            Mode::Userspace { offload: true } => cmd.args(["--backend", "userspace"]),
            Mode::Userspace { offload: false } => {
                cmd.args(["--backend", "userspace", "--no-offload"])
            }
        };
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut err = child.stderr.take().unwrap();
        let mut lines = String::new();
        while !lines.ends_with("ready\n") {
            if out.read_line(&mut lines).unwrap() == 0 {
                let mut e = String::new();
                let _ = err.read_to_string(&mut e);
                let _ = child.wait();
                return Err(e);
            }
        }
        let want = match mode {
            Mode::Kernel => "backend kernel",
            Mode::Userspace { .. } => "backend userspace",
        };
        assert!(lines.contains(want), "{lines}");
        // Drain its log so the relay never blocks on a full pipe.
        std::thread::spawn(move || std::io::copy(&mut err, &mut std::io::sink()));
        Ok(Relay { child, out })
    }

    fn start(ns: &Netns, prefix: &str, local: &str, peer: &str, route: &str, mode: Mode) -> Relay {
        Relay::try_start(ns, prefix, local, peer, route, mode)
            .unwrap_or_else(|e| panic!("relay did not start: {e}"))
    }

    /// SIGTERM, then the stats line it prints on the way out.
    fn stop(mut self) -> String {
        let pid = nix::unistd::Pid::from_raw(self.child.id() as i32);
        nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
        let mut rest = String::new();
        self.out.read_to_string(&mut rest).unwrap();
        assert!(self.child.wait().unwrap().success());
        rest
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn stat(line: &str, key: &str) -> u64 {
    line.split_whitespace()
        .find_map(|kv| kv.strip_prefix(&format!("{key}=")))
        .unwrap_or_else(|| panic!("{key} missing in {line:?}"))
        .parse()
        .unwrap()
}

/// Packets (Ethernet payloads) of a classic pcap file.
fn pcap_packets(path: &str) -> Vec<Vec<u8>> {
    let b = std::fs::read(path).unwrap();
    assert!(
        b.len() >= 24 && b[0..4] == [0xd4, 0xc3, 0xb2, 0xa1],
        "not a LE pcap"
    );
    assert_eq!(
        u32::from_le_bytes(b[20..24].try_into().unwrap()),
        1,
        "not Ethernet"
    );
    let mut out = Vec::new();
    let mut at = 24;
    while at + 16 <= b.len() {
        let caplen = u32::from_le_bytes(b[at + 8..at + 12].try_into().unwrap()) as usize;
        let frame = &b[at + 16..(at + 16 + caplen).min(b.len())];
        if frame.len() > 14 && frame[12..14] == [0x08, 0x00] {
            out.push(frame[14..].to_vec());
        }
        at += 16 + caplen;
    }
    out
}

#[test]
fn userspace_ipip_with_tun_offloads_carries_ping_and_tcp_with_kernel_compatible_outer_header() {
    ping_tcp_capture(Mode::Userspace { offload: true });
}

#[test]
fn userspace_ipip_without_offloads_carries_ping_and_tcp_with_kernel_compatible_outer_header() {
    ping_tcp_capture(Mode::Userspace { offload: false });
}

#[test]
fn kernel_ipip_carries_ping_and_tcp_or_refuses_to_start_without_the_module() {
    if kernel::has_ipip() {
        ping_tcp_capture(Mode::Kernel);
        return;
    }
    let ra = Netns::new("tra");
    ra.sh("ip link add c0 type veth peer name c1 && ip link set c0 up");
    ra.sh("ip addr add 192.168.0.1/24 dev c0");
    let e = Relay::try_start(
        &ra,
        "tmu",
        "192.168.0.1",
        "192.168.0.2",
        "10.2.0.0/24",
        Mode::Kernel,
    )
    .err()
    .expect("no ipip module: the forced kernel backend must not start");
    assert!(e.contains("tunnel_backend kernel"), "{e}");
    assert!(ra.sh("ip route show proto 84").is_empty());
    assert!(!ra.sh("ip link").contains("tmu"));
}

/// (rx packets, tx bytes) of a device (`ip -s link`).
fn dev_counters(ns: &Netns, dev: &str) -> (u64, u64) {
    let out = ns.sh(&format!("ip -s link show {dev}"));
    let mut it = out.lines();
    // "RX:  bytes packets errors ..." then the values on the next line.
    let mut next_after = |tag: &str, column: usize| -> u64 {
        while let Some(l) = it.next() {
            if l.trim_start().starts_with(tag) {
                let v = it.next().unwrap();
                return v.split_whitespace().nth(column).unwrap().parse().unwrap();
            }
        }
        panic!("{tag} missing in {out}")
    };
    let rx_packets = next_after("RX:", 1);
    let tx_bytes = next_after("TX:", 0);
    (rx_packets, tx_bytes)
}

fn ping_tcp_capture(mode: Mode) {
    let a = Netns::new("ta");
    let ra = Netns::new("tra");
    let rb = Netns::new("trb");
    let b = Netns::new("tb");
    common::veth(&a, "eth0", &ra, "a0");
    common::veth(&ra, "c0", &rb, "c0");
    common::veth(&rb, "b0", &b, "eth0");
    a.sh("ip addr add 10.1.0.2/24 dev eth0 && ip route add default via 10.1.0.1");
    ra.sh("ip addr add 10.1.0.1/24 dev a0 && ip addr add 192.168.0.1/24 dev c0 && sysctl -qw net.ipv4.ip_forward=1");
    rb.sh("ip addr add 192.168.0.2/24 dev c0 && ip addr add 10.2.0.1/24 dev b0 && sysctl -qw net.ipv4.ip_forward=1");
    b.sh("ip addr add 10.2.0.2/24 dev eth0 && ip route add default via 10.2.0.1");
    // No route between the host subnets except through the tunnel.
    assert!(!a.sh_out("ping -c1 -W1 10.2.0.2").status.success());

    let relay_a = Relay::start(
        &ra,
        "tmu",
        "192.168.0.1",
        "192.168.0.2",
        "10.2.0.0/24",
        mode,
    );
    let relay_b = Relay::start(
        &rb,
        "tmv",
        "192.168.0.2",
        "192.168.0.1",
        "10.1.0.0/24",
        mode,
    );
    let route = ra.sh("ip route show 10.2.0.0/24 proto 84");
    assert!(route.contains("dev tmu0"), "{route}");
    let link = ra.sh("ip -d link show tmu0");
    let kind = if mode == Mode::Kernel {
        "ipip ipip remote 192.168.0.2 local 192.168.0.1"
    } else {
        "tun"
    };
    assert!(link.contains("mtu 1480") && link.contains(kind), "{link}");

    // Capture the routers' link while pinging.
    let pcap = format!("/tmp/{}.pcap", rb.name);
    let mut dump = rb
        .command("tcpdump")
        .args([
            "-i",
            "c0",
            "-nn",
            "-U",
            "-c",
            "4",
            "-w",
            &pcap,
            "ip proto 4",
        ])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // tcpdump says "listening on" once the capture is open.
    let mut err = BufReader::new(dump.stderr.take().unwrap());
    let mut l = String::new();
    err.read_line(&mut l).unwrap();
    assert!(l.contains("listening"), "{l}");
    let ping = a.sh("ping -c 3 -i 0.2 -W 2 10.2.0.2");
    assert!(ping.contains("3 received"), "{ping}");
    let got = wait_for(Duration::from_secs(5), || dump.try_wait().unwrap());
    if got.is_none() {
        let _ = dump.kill();
        let _ = dump.wait();
        panic!("tcpdump saw fewer than 4 IPIP packets");
    }
    let pkts = pcap_packets(&pcap);
    let _ = std::fs::remove_file(&pcap);
    assert_eq!(pkts.len(), 4);
    let mut dirs = Vec::new();
    for p in &pkts {
        assert_eq!(p[0], 0x45, "outer: IPv4 without options");
        assert_eq!(p[9], 4, "outer protocol is IPIP");
        assert_eq!(p[6] & 0x40, 0x40, "DF set like the kernel device");
        assert_eq!(p[1], 0, "TOS 0");
        assert_eq!(
            u16::from_be_bytes([p[2], p[3]]) as usize,
            p.len(),
            "no extra bytes"
        );
        assert_eq!(p[20], 0x45, "inner IPv4 right after the outer header");
        assert_eq!(p[29], 1, "inner is the ICMP ping");
        dirs.push((
            p[12..16].to_vec(),
            p[16..20].to_vec(),
            p[32..36].to_vec(),
            p[36..40].to_vec(),
        ));
    }
    let fwd = (
        vec![192, 168, 0, 1],
        vec![192, 168, 0, 2],
        vec![10, 1, 0, 2],
        vec![10, 2, 0, 2],
    );
    let back = (
        vec![192, 168, 0, 2],
        vec![192, 168, 0, 1],
        vec![10, 2, 0, 2],
        vec![10, 1, 0, 2],
    );
    assert!(dirs.contains(&fwd) && dirs.contains(&back), "{dirs:?}");

    // A byte-checked TCP transfer A -> B (2 MB) across the tunnel.
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i * 7 + i / 251) as u8).collect();
    let received = std::thread::scope(|s| {
        let server = s.spawn(|| {
            b.run_in(|| {
                let l = std::net::TcpListener::bind("10.2.0.2:5001").unwrap();
                let (mut c, _) = l.accept().unwrap();
                let mut v = Vec::new();
                c.read_to_end(&mut v).unwrap();
                v
            })
        });
        a.run_in(|| {
            let mut c = wait_for(Duration::from_secs(5), || {
                std::net::TcpStream::connect("10.2.0.2:5001").ok()
            })
            .expect("connect across the tunnel");
            c.write_all(&data).unwrap();
        });
        server.join().unwrap()
    });
    assert!(
        received == data,
        "TCP payload corrupted or truncated ({} bytes)",
        received.len()
    );

    // IPIP from an address that is not a peer: dropped (and counted by the
    // userspace backend) at rA; the kernel device's counters do not move.
    let before = dev_counters(&ra, "tmu0");
    rb.sh("ip addr add 192.168.0.3/24 dev c0");
    rb.sh(r#"python3 -c '
import socket
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 4)
s.bind(("192.168.0.3", 0))
inner = bytes([0x45,0,0,20, 0,1,0,0, 64,17,0,0, 10,2,0,9, 10,1,0,2])
s.sendto(inner, ("192.168.0.1", 0))
'"#);
    std::thread::sleep(Duration::from_millis(200));
    let after = dev_counters(&ra, "tmu0");

    let stats_a = relay_a.stop();
    let stats_b = relay_b.stop();
    if mode == Mode::Kernel {
        assert_eq!(
            after.0, before.0,
            "the ipip device took a stranger's packet"
        );
        assert!(after.1 >= 2_000_000, "tmu0 sent {} bytes", after.1);
        assert!(
            !stats_a.contains("stats "),
            "no userspace counters: {stats_a}"
        );
        finish(&a, &ra, b);
        return;
    }
    let Mode::Userspace { offload } = mode else {
        unreachable!()
    };
    assert_eq!(stat(&stats_a, "rx_unknown_peer"), 1, "{stats_a}");
    assert!(stat(&stats_a, "tx_packets") >= 1000, "{stats_a}");
    assert!(stat(&stats_b, "rx_packets") >= 1000, "{stats_b}");
    let (reads, sent) = (stat(&stats_a, "tun_reads"), stat(&stats_a, "tx_packets"));
    if offload {
        // Fewer reads than packets: TSO super-packets were segmented here
        // (how many segments each carries depends on the kernel and load).
        assert!(reads < sent, "TSO super-packets expected: {stats_a}");
    } else {
        assert!(
            reads >= sent,
            "one read per packet without offloads: {stats_a}"
        );
    }
    for s in [&stats_a, &stats_b] {
        assert_eq!(stat(s, "rx_dropped"), 0, "{s}");
        assert_eq!(stat(s, "tx_dropped"), 0, "{s}");
        assert_eq!(stat(s, "rx_malformed"), 0, "{s}");
        assert_eq!(stat(s, "rx_oversize"), 0, "{s}");
    }
    finish(&a, &ra, b);
}

/// Clean exit: the tunnel device and the routes into it are gone.
fn finish(a: &Netns, ra: &Netns, b: Netns) {
    assert!(!sh(&format!("ip -n {} link", ra.name)).contains("tmu0"));
    assert!(ra.sh("ip route show proto 84").is_empty());
    assert!(!a.sh_out("ping -c1 -W1 10.2.0.2").status.success());
    drop(b);
}
