//! Benchmark, as root: `cargo build --workspace && cargo run --example tmipd_bench`.
//! DHCP transaction latency through a real tmipd and mlrd in namespaces.
//! A raw-socket client sends DISCOVER then REQUEST for `N` new MACs, one
//! transaction at a time, and prints the DISCOVER->OFFER (an MLR Allocate,
//! adoption of N+2 over rtnetlink, the OFFER) and REQUEST->ACK (an MLR
//! Locate) latencies, then the same again for renewals of known MACs.
//! The bed is the workspace's one namespace test bed (`tmip_testbed`).

use tmip_testbed::bed::*;

const N: usize = 300;

const CLIENT: &str = r#"
import socket, struct, sys, time
ifn, n, prefix = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.htons(0x0800))
s.bind((ifn, 0x0800))
s.settimeout(3)
def csum(b):
    t = sum(struct.unpack("!%dH" % (len(b) // 2), b))
    while t >> 16: t = (t & 0xffff) + (t >> 16)
    return ~t & 0xffff
def frame(mac, xid, mtype, req=None, sid=None):
    bootp = struct.pack("!BBBBIHH4s4s4s4s16s64s128s", 1, 1, 6, 0, xid, 0, 0x8000,
        bytes(4), bytes(4), bytes(4), bytes(4), mac + bytes(10), bytes(64), bytes(128))
    o = b"\x63\x82\x53\x63" + bytes([53, 1, mtype])
    if req: o += bytes([50, 4]) + req
    if sid: o += bytes([54, 4]) + sid
    p = bootp + o + b"\xff"
    udp = struct.pack("!HHHH", 68, 67, 8 + len(p), 0) + p
    ip = struct.pack("!BBHHHBBH4s4s", 0x45, 0, 20 + len(udp), 0, 0, 64, 17, 0, bytes(4), b"\xff" * 4)
    ip = ip[:10] + struct.pack("!H", csum(ip)) + ip[12:]
    return b"\xff" * 6 + mac + b"\x08\x00" + ip + udp
def wait(xid, want):
    while True:
        d = s.recv(2048)
        if len(d) < 14 + 20 + 8 + 240: continue
        u = 14 + (d[14] & 15) * 4
        if d[u + 2:u + 4] != b"\x00\x44": continue
        b = u + 8
        if struct.unpack("!I", d[b + 4:b + 8])[0] != xid: continue
        o, t, sid = b + 240, None, None
        while o + 1 < len(d) and d[o] != 255:
            if d[o] == 0: o += 1; continue
            c, l = d[o], d[o + 1]; v = d[o + 2:o + 2 + l]
            if c == 53: t = v[0]
            if c == 54: sid = v
            o += 2 + l
        if t == want: return d[b + 16:b + 20], sid
def run(rounds):
    off, ack = [], []
    for i in range(n):
        mac = bytes([2, prefix, 0, (i >> 8) & 255, i & 255, 7])
        xid = (rounds << 24) | i
        t0 = time.perf_counter(); s.send(frame(mac, xid, 1)); yi, sid = wait(xid, 2)
        t1 = time.perf_counter(); s.send(frame(mac, xid, 3, yi, sid)); wait(xid, 5)
        t2 = time.perf_counter()
        off.append((t1 - t0) * 1000); ack.append((t2 - t1) * 1000)
    return off, ack
def pct(v, p): v = sorted(v); return v[min(len(v) - 1, int(len(v) * p))]
for label, r in (("new MACs", 1), ("known MACs", 2)):
    t = time.perf_counter(); off, ack = run(r); el = time.perf_counter() - t
    for name, v in (("DISCOVER->OFFER", off), ("REQUEST->ACK", ack)):
        print("%-10s %-16s p50 %.2f ms  p95 %.2f ms  p99 %.2f ms  max %.2f ms" % (label, name, pct(v, .5), pct(v, .95), pct(v, .99), max(v)))
    print("%-10s %d DORA transactions in %.2f s: %.0f/s (one at a time)" % (label, n, el, n / el))
"#;

fn main() {
    let mut bed = TestBed::new(Options {
        cns: 1,
        // The per-transaction debug lines would be part of the figure.
        debug_level: 2,
        ..Options::default()
    });
    // A pool big enough for N stations, and room for them in the table.
    bed.set_rc(
        1,
        &[
            "max_stations 1024",
            &format!("addr_pool {MOBILE_IF} 10.20.0.4 10.20.15.248"),
        ],
    );
    bed.start_all();
    let i = bed.add_client(1);
    let c = &bed.clients[i];
    let script = bed.dir.join("bench.py");
    std::fs::write(&script, CLIENT).unwrap();
    let out =
        c.ns.command("/usr/bin/python3")
            .arg(&script)
            .arg(&c.ifname)
            .arg(N.to_string())
            .arg("9")
            .output()
            .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    println!("{text}");
    assert!(
        out.status.success(),
        "{}\n{}",
        String::from_utf8_lossy(&out.stderr),
        bed.cns[0].log_text()
    );
    let st = bed.cns[0]
        .ns
        .sh(&format!("ip -4 addr show dev {MOBILE_IF} | grep -c /32"));
    println!("gateway addresses adopted on {MOBILE_IF}: {}", st.trim());
    bed.cns[0].stop();
}
