//! Shared mobile links (docs/TMIPD.md "Deployment shapes"): a CN whose
//! mobile interface is also its CN interface (the seed's "Mobile_IF &
//! CN_IF"), OpenWrt's `br-lan` bridge with a radio port and a LAN port,
//! and a wired LAN with hosts that are not stations (`shared_link on`).
//! Hosts on such a link have the stations' addresses on-link and cache
//! their MACs: when a station leaves, its parent must answer ARP for it and
//! say so at once, and when it comes back the hosts must be told too; a
//! visiting station must reach the link's hosts through the visited CN.
//!
//! Real mlrd and tmipd, busybox udhcpc, TCP streams checked byte for byte.
//! Nobody's ARP cache is ever flushed by the tests. Needs root, busybox and
//! the built daemons (`cargo build --workspace`). Gaps are asserted at
//! 50 ms per move; on a loaded machine rerun before concluding. The tests
//! run one at a time (each holds [`ONE_AT_A_TIME`]): a gap is a timing, and
//! two beds moving clients at once on two cores measure each other.
mod common;
#[path = "common/testbed.rs"]
mod testbed;
#[path = "common/traffic.rs"]
mod traffic;

use std::net::Ipv4Addr;
use std::time::Duration;
use testbed::{CnShape, Options, TestBed, BRIDGE_IF, CORE_IF, SHARED_POOL, SRV_IP};
use tmip::addr::Cell30;
use traffic::TcpCheck;

const UP: Duration = Duration::from_secs(20);
const SETTLE: Duration = Duration::from_millis(1500);
const MAX_GAP: Duration = Duration::from_millis(50);

/// How long a move's window waits for the bytes sent before it: [`SETTLE`],
/// stretched in the lab's guest like every latency bound
/// ([`tmip_testbed::time_bound`]).
fn settle() -> Duration {
    tmip_testbed::time_bound(SETTLE)
}

/// The longest gap a move may cause: [`MAX_GAP`] here (every CI run checks
/// it on the host); in the lab's emulated guest a handover takes 10-30
/// times longer (docs/BENCHMARKS.md) and a lost retransmission doubles TCP's
/// wait (200, 400, 800 ms: one move back to the parent took 1.53 s there),
/// so there the stream must only resume within the window, lossless and on
/// the same connection.
fn max_gap() -> Duration {
    if common::in_lab() {
        settle()
    } else {
        MAX_GAP
    }
}

static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// Hold while a test runs (a failed test's poisoned lock is still a lock).
fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn bed(opts: Options) -> TestBed {
    TestBed::started(opts, UP)
}

fn dhcp(bed: &mut TestBed, i: usize) -> Cell30 {
    bed.client_lease(i, UP)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

/// CN `k`'s output (a foreground tmipd logs to stderr) and log file.
fn cn_log(bed: &TestBed, k: usize) -> String {
    let name = bed.cn(k).label().to_lowercase();
    ["out", "log"]
        .iter()
        .map(|ext| {
            std::fs::read_to_string(bed.dir.join(format!("tmipd-{name}.{ext}"))).unwrap_or_default()
        })
        .collect()
}

fn assert_log(bed: &TestBed, k: usize, needle: &str) {
    let log = cn_log(bed, k);
    assert!(log.contains(needle), "CN{k}'s log lacks {needle:?}:\n{log}");
}

fn mac_of(ns: &common::Netns, ifname: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{ifname}/address"))
        .trim()
        .to_string()
}

/// The MAC `ns` has cached for `ip` (`ip neigh`), if any.
fn cached_mac(ns: &common::Netns, ip: Ipv4Addr) -> Option<String> {
    let out = ns.sh(&format!("ip -4 neigh show {ip}"));
    let mut w = out.split_whitespace();
    while let Some(x) = w.next() {
        if x == "lladdr" {
            return w.next().map(str::to_string);
        }
    }
    None
}

/// Wait (up to 2 s) until `ns` caches `mac` for `ip`, or fail.
fn assert_cached(bed: &TestBed, ns: &common::Netns, ip: Ipv4Addr, mac: &str, what: &str) {
    let ok = common::wait_for(Duration::from_secs(2), || {
        (cached_mac(ns, ip).as_deref() == Some(mac)).then_some(())
    });
    if ok.is_none() {
        panic!(
            "{what}: {} caches {ip} at {:?}, expected {mac}\n{}\n{}",
            ns.name,
            cached_mac(ns, ip),
            bed.cn_state(),
            bed.logs()
        );
    }
}

/// Proxy ARP entries CN `k` has on `ifname` (`ip neigh show proxy`).
fn proxies(bed: &TestBed, k: usize, ifname: &str) -> String {
    bed.cn(k)
        .ns
        .sh(&format!("ip -4 neigh show proxy dev {ifname}"))
}

/// Move client `i` to `cell` while `t` runs; the stream must lose nothing,
/// stay the same connection, flow both ways and stop for at most
/// [`MAX_GAP`]. Prints the figures.
fn move_checked(bed: &mut TestBed, i: usize, cell: usize, t: &mut TcpCheck, label: &str) {
    let from = bed.clients[i].cell;
    let m = t.mark();
    bed.move_client(i, cell);
    let w = t.window(&m, settle());
    println!(
        "{label}: CN{from} -> CN{cell}: tcp gap {:6.1} ms (up {:.1}, down {:.1}), lost {} B, same connection {}",
        ms(w.gap()),
        ms(w.up_gap),
        ms(w.down_gap),
        w.lost,
        w.same_connection
    );
    assert_window(bed, &w, &format!("{label} CN{from}->CN{cell}"));
}

/// A move's window: nothing lost, the same connection, data both ways,
/// no gap over [`MAX_GAP`]; else a panic with every CN's state and log.
fn assert_window(bed: &TestBed, w: &traffic::TcpWindow, what: &str) {
    if w.lost != 0
        || !w.same_connection
        || w.up_bytes == 0
        || w.down_bytes == 0
        || w.gap() > max_gap()
    {
        panic!(
            "{what}: {w:?} (gap limit {:?})\n{}\n{}",
            max_gap(),
            bed.cn_state(),
            bed.logs()
        );
    }
}

fn finish(t: TcpCheck, label: &str) {
    t.finish_verified(label);
}

/// The seed's CN2/CN4: one interface (`cn_if core0`, `mobile_if core0`,
/// pool in the core's /24) on the link of a server that has the stations
/// on-link. The client streams to the server, moves to two other CNs and
/// back, twice; the server's neighbour entry follows it (parent's MAC while
/// away, the client's at home) without anyone flushing it. Then the parent
/// crashes while the client is away: the restarted CN purges the proxy
/// entry the crash left, takes the station back and proxies again.
#[test]
fn tcp_to_a_host_on_a_single_interface_cns_link_survives_moves_away_and_back() {
    let _serial = one_at_a_time();
    let mut bed = bed(Options {
        shapes: vec![CnShape::SharedCore],
        ..Options::default()
    });
    assert_log(&bed, 1, &format!("cn_if and mobile_if {CORE_IF}: shared"));
    assert_log(&bed, 2, "mobile_if mob0: separate");
    let i = bed.add_client(1);
    let c = dhcp(&mut bed, i);
    println!(
        "client got {}/30 at CN1 (one interface, on srv's link)",
        c.station()
    );
    assert!((SHARED_POOL.0..=SHARED_POOL.1).contains(&c.network()));
    let client_mac = bed.clients[i].mac.clone();
    let cn1_mac = mac_of(&bed.cn(1).ns, CORE_IF);
    let ms_ns = bed.clients[i].ns.name.clone();
    let mut t = match TcpCheck::start(
        &bed.srv.name,
        SRV_IP,
        7101,
        &ms_ns,
        tmip_testbed::traffic::stream_1ms(),
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e}\n{}\n{}", bed.cn_state(), bed.logs()),
    };
    // srv reaches the client on-link, by its own MAC.
    assert_cached(&bed, &bed.srv, c.station(), &client_mac, "at home");
    for (n, cell) in [2, 3, 1, 3, 2, 1].into_iter().enumerate() {
        let label = format!("[one interface] move {}", n + 1);
        move_checked(&mut bed, i, cell, &mut t, &label);
        // CN1 proxies for its station exactly while it is away (its
        // Redirect may still be on the way in the lab's slow guest).
        let away = cell != 1;
        let station = c.station().to_string();
        let p = common::wait_for(common::time_bound(Duration::from_millis(250)), || {
            let p = proxies(&bed, 1, CORE_IF);
            (p.contains(&station) == away).then_some(p)
        })
        .unwrap_or_else(|| proxies(&bed, 1, CORE_IF));
        if cell == 1 {
            assert_cached(&bed, &bed.srv, c.station(), &client_mac, &label);
            assert!(
                !p.contains(&c.station().to_string()),
                "{label}: CN1 still proxies: {p}"
            );
        } else {
            assert_cached(&bed, &bed.srv, c.station(), &cn1_mac, &label);
            assert!(
                p.contains(&c.station().to_string()),
                "{label}: CN1 does not proxy: {p}"
            );
        }
    }

    // A crash while the client is away leaves the proxy entry behind.
    move_checked(&mut bed, i, 2, &mut t, "[one interface] before the crash");
    // Once CN1 proxies for it (its Redirect may still be on the way in the
    // lab's slow guest).
    let proxying = common::wait_for(common::time_bound(Duration::from_millis(250)), || {
        proxies(&bed, 1, CORE_IF)
            .contains(&c.station().to_string())
            .then_some(())
    });
    assert!(proxying.is_some(), "CN1 does not proxy before the crash");
    bed.kill_tmipd(1);
    assert!(proxies(&bed, 1, CORE_IF).contains(&c.station().to_string()));
    let m = t.mark();
    if let Err(e) = bed.start_tmipd(1, UP) {
        panic!("CN1 did not come back: {e}\n{}", bed.logs());
    }
    assert_log(&bed, 1, &format!("Removed 1 proxy ARP entry on {CORE_IF}"));
    let back = common::wait_for(Duration::from_secs(5), || {
        proxies(&bed, 1, CORE_IF)
            .contains(&c.station().to_string())
            .then_some(())
    });
    assert!(
        back.is_some(),
        "restarted CN1 does not proxy for its away station\n{}\n{}",
        bed.cn_state(),
        bed.logs()
    );
    let w = t.window(&m, Duration::from_secs(10));
    println!(
        "[one interface] CN1 killed -9 and restarted: tcp gap {:.1} ms, lost {} B, same connection {}",
        ms(w.gap()),
        w.lost,
        w.same_connection
    );
    assert!(w.lost == 0 && w.same_connection, "{w:?}\n{}", bed.logs());
    move_checked(
        &mut bed,
        i,
        1,
        &mut t,
        "[one interface] home after the restart",
    );
    assert_cached(
        &bed,
        &bed.srv,
        c.station(),
        &client_mac,
        "home after the restart",
    );
    finish(t, "[one interface]");
}

/// OpenWrt: `mobile_if br-lan`, a bridge holding `lan1` (the radio's cell)
/// and `lan2` (a LAN port), `cn_if` the uplink. A client on each port and a
/// plain host (a /24 printer) on the LAN port; the radio client roams to
/// CN2 and back twice while it streams to both.
#[test]
fn openwrt_bridge_keeps_streams_to_a_client_and_a_host_on_the_other_port() {
    let _serial = one_at_a_time();
    let mut bed = bed(Options {
        cns: 2,
        shapes: vec![CnShape::Bridge],
        ..Options::default()
    });
    assert_log(&bed, 1, &format!("mobile_if {BRIDGE_IF}: shared (a bridge"));
    let a = bed.add_client(1);
    let b = bed.add_client_on(1, "cell1b", testbed::CLIENT_IF);
    let ca = dhcp(&mut bed, a);
    let cb = dhcp(&mut bed, b);
    println!(
        "radio client {}/30 on lan1, wired client {}/30 on lan2 (both from CN1's br-lan pool)",
        ca.station(),
        cb.station()
    );
    let printer_ip = Ipv4Addr::new(10, 1, 0, 250);
    let h = bed.add_host("cell1b", printer_ip, Ipv4Addr::new(10, 1, 0, 1));
    let a_ns = bed.clients[a].ns.name.clone();
    let b_ns = bed.clients[b].ns.name.clone();
    let h_ns = bed.hosts[h].name.clone();
    let start = |srv_ns: &str, ip: Ipv4Addr, port: u16| {
        TcpCheck::start(srv_ns, ip, port, &a_ns, tmip_testbed::traffic::stream_1ms())
    };
    let (mut tb, mut th) = match (
        start(&b_ns, cb.station(), 7102),
        start(&h_ns, printer_ip, 7103),
    ) {
        (Ok(x), Ok(y)) => (x, y),
        (Err(e), _) | (_, Err(e)) => panic!("{e}\n{}\n{}", bed.cn_state(), bed.logs()),
    };
    for (n, cell) in [2, 1, 2, 1].into_iter().enumerate() {
        let from = bed.clients[a].cell;
        let (mb, mh) = (tb.mark(), th.mark());
        bed.move_client(a, cell);
        let wb = tb.window(&mb, settle());
        let wh = th.window(&mh, settle());
        println!(
            "[br-lan] move {}: CN{from} -> CN{cell}: to the lan2 client gap {:.1} ms lost {} B; \
             to the lan2 host gap {:.1} ms lost {} B",
            n + 1,
            ms(wb.gap()),
            wb.lost,
            ms(wh.gap()),
            wh.lost
        );
        for (w, what) in [(&wb, "lan2 client"), (&wh, "lan2 host")] {
            assert_window(&bed, w, &format!("[br-lan] move {} ({what})", n + 1));
        }
        let p = proxies(&bed, 1, BRIDGE_IF);
        assert_eq!(
            p.contains(&ca.station().to_string()),
            cell != 1,
            "[br-lan] move {}: proxy entries on CN1: {p}",
            n + 1
        );
    }
    finish(tb, "[br-lan] lan1 client <-> lan2 client");
    finish(th, "[br-lan] lan1 client <-> lan2 host");
}

/// Wired mobile hosts on a LAN that also has ordinary hosts (`shared_link
/// on`): a station of CN2 streams to a host on CN2's LAN while it moves to
/// two other CNs and back. Then a visitor (a station of CN1) arrives at CN2:
/// the LAN's host reaches it through CN2, and its replies to the LAN stay
/// on the LAN (not round through CN1, which has no route to that LAN).
#[test]
fn a_wired_lan_keeps_its_hosts_in_touch_with_leaving_and_visiting_stations() {
    let _serial = one_at_a_time();
    let mut bed = TestBed::new(Options::default());
    bed.set_rc(2, &["shared_link on"]);
    if let Err(e) = bed.start_daemons(UP) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    assert_log(&bed, 2, "mobile_if mob0: shared (shared_link on)");
    let host_ip = Ipv4Addr::new(10, 2, 0, 250);
    let h = bed.add_host("cell2", host_ip, Ipv4Addr::new(10, 2, 0, 1));
    let h_ns = bed.hosts[h].name.clone();
    let a = bed.add_client(2);
    let ca = dhcp(&mut bed, a);
    println!("wired station {}/30 at CN2 (its parent)", ca.station());
    let a_ns = bed.clients[a].ns.name.clone();
    let mut t = match TcpCheck::start(
        &h_ns,
        host_ip,
        7104,
        &a_ns,
        tmip_testbed::traffic::stream_1ms(),
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e}\n{}\n{}", bed.cn_state(), bed.logs()),
    };
    for (n, cell) in [1, 3, 2].into_iter().enumerate() {
        move_checked(
            &mut bed,
            a,
            cell,
            &mut t,
            &format!("[wired LAN] move {}", n + 1),
        );
    }
    finish(t, "[wired LAN] station of CN2 <-> LAN host");

    // A visitor from CN1.
    let v = bed.add_client(1);
    let cv = dhcp(&mut bed, v);
    bed.move_client(v, 2);
    // Its first frames reveal it to CN2 (capture).
    bed.clients[v].ns.sh(&format!(
        "ping -c 3 -i 0.2 -W 1 {host_ip} >/dev/null 2>&1 || true"
    ));
    let claimed = common::wait_for(Duration::from_secs(5), || {
        (bed.claimants(cv) == vec![2]).then_some(())
    });
    assert!(
        claimed.is_some(),
        "CN2 did not adopt the visitor\n{}\n{}",
        bed.cn_state(),
        bed.logs()
    );
    let v_ns = bed.clients[v].ns.name.clone();
    let t = match TcpCheck::start(
        &h_ns,
        host_ip,
        7105,
        &v_ns,
        tmip_testbed::traffic::stream_1ms(),
    ) {
        Ok(t) => t,
        Err(e) => panic!(
            "visitor {} cannot reach the LAN host: {e}\n{}\n{}",
            cv.station(),
            bed.cn_state(),
            bed.logs()
        ),
    };
    std::thread::sleep(Duration::from_secs(2));
    let rules = bed.cn(2).ns.sh("ip rule show");
    assert!(
        rules.contains("999:") && rules.contains("to 10.2.0.0/24 iif mob0"),
        "CN2 lacks the shared link's rule:\n{rules}"
    );
    finish(t, "[wired LAN] visitor from CN1 <-> LAN host");
}
