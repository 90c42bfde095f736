//! Hostile stations (issue 8, the station side): each test runs one attack
//! from a client namespace with frames crafted by scapy (`/usr/bin/python3`)
//! against the real daemons (mlrd + tmipd in namespaces, busybox udhcpc
//! victims), and asserts that the victim keeps service (pings from `srv`
//! all answered, its binding at the MLR where it was) and that the log
//! names the refusal.
//!
//! - finding 1: a forged `chaddr` REQUEST from another cell does not move
//!   the victim;
//! - finding 2: a forged RELEASE in the victim's cell does not free its /30;
//! - ARP spoof: gratuitous ARP claiming the victim's address is not
//!   believed (no move, the CN's neighbour entry stays the victim's);
//! - finding 3: 3000 random-MAC DISCOVERs in one cell leave a lease for a
//!   real client at another CN (in under 5 s), offers not taken return to
//!   the pools, new MACs per cell are rate-limited.
//!
//! Each CN has its own bus (a `FakeUbusd`, the protocol peer written from
//! the spec, as in tests/ubus_events.rs) with `ubus listen tmip` on it:
//! every attack must yield its `refused` event with the right reason, once
//! per interval however many frames the attacker sends.
mod common;
#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;
#[path = "common/testbed.rs"]
mod testbed;

use common::wait_for;
use fake_ubusd::{EventLog, FakeUbusd};
use std::fs;
use std::time::{Duration, Instant};
use testbed::TestBed;
use tmip::addr::Cell30;
use tmip::ubus::Value;
use tmip_testbed::status::number;

const UP: Duration = Duration::from_secs(20);

/// The scene of an attack: two CNs with their daemons, victim A in cell 1
/// with a DHCP lease (answering srv's pings), attacker B in `attacker_cell`
/// (a namespace with a MAC and nothing else).
struct Scene {
    bed: TestBed,
    /// CN1's and CN2's buses (dropped after the bed, so after tmipd).
    buses: Vec<Bus>,
    b: usize,
    /// CN1's mobile interface MAC (the victim's gateway MAC).
    cn_mac: String,
    cell: Cell30,
    a_mac: String,
    b_mac: String,
}

fn scene(attacker_cell: usize) -> Scene {
    scene_with(attacker_cell, &[])
}

/// [`scene`] with extra tmipd.rc lines for CN1.
fn scene_with(attacker_cell: usize, cn1_rc: &[&str]) -> Scene {
    let mut bed = TestBed::with_cns(2);
    let buses = start_with_buses(&mut bed, [cn1_rc, &[]]);
    let a = bed.add_client(1);
    let b = bed.add_client(attacker_cell);
    let cell = dhcp(&mut bed, a);
    let a_mac = bed.clients[a].mac.clone();
    let b_mac = bed.clients[b].mac.clone();
    assert_eq!(
        pings(&bed, cell.station(), 3),
        3,
        "victim unreachable before the attack"
    );
    let cn_mac = mobile_mac(&bed, 1);
    Scene {
        bed,
        buses,
        b,
        cn_mac,
        cell,
        a_mac,
        b_mac,
    }
}

/// `ubus listen tmip` on one CN's own bus (dropped before its ubusd).
struct Bus {
    log: EventLog,
    _ubusd: FakeUbusd,
}

/// Start the daemons, CN `k` (1, 2) with `rc[k - 1]` as its own rc lines
/// and a bus of its own; then listen on each bus.
fn start_with_buses(bed: &mut TestBed, rc: [&[&str]; 2]) -> Vec<Bus> {
    let sock = |bed: &TestBed, k: usize| bed.dir.join(format!("ubus-cn{k}.sock"));
    let mut ubusds = Vec::new();
    for k in 1..=2 {
        ubusds.push(FakeUbusd::start(&sock(bed, k)));
        let bus = format!("ubus {}", sock(bed, k).display());
        let mut lines = rc[k - 1].to_vec();
        lines.extend(["hostapd_ctrl off", bus.as_str()]);
        bed.set_rc(k, &lines);
    }
    bed.start_all();
    ubusds
        .into_iter()
        .enumerate()
        .map(|(i, u)| {
            assert!(
                bed.cns[i].wait_log("published ubus object 'tmip'", 0, 10),
                "{}",
                bed.cns[i].log_text()
            );
            Bus {
                log: EventLog::start(&sock(bed, i + 1), "tmip"),
                _ubusd: u,
            }
        })
        .collect()
}

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Wait (10 s) until CN `k`'s bus carried a `refused` event of each of
/// `reasons`, then one second more; every `refused` event it carried.
fn refused_events(bed: &TestBed, buses: &[Bus], k: usize, reasons: &[&str]) -> Vec<Value> {
    let second = Duration::from_secs(1);
    match buses[k - 1]
        .log
        .wait_refused(reasons, Duration::from_secs(10), second)
    {
        Ok(ev) => {
            for e in &ev {
                println!("CN{k} bus: {e:?}");
            }
            ev
        }
        Err(came) => panic!(
            "CN{k}: no refused event for each of {reasons:?}; came {came:?}\n{}",
            bed.logs()
        ),
    }
}

/// The `refused` events of `reason` among `events`: at least one, at most
/// `max` (a flood of the same refusal is one event per interval).
fn of_reason<'a>(events: &'a [Value], reason: &str, max: usize) -> Vec<&'a Value> {
    let of: Vec<&Value> = events
        .iter()
        .filter(|e| field(e, "reason") == reason)
        .collect();
    assert!(
        !of.is_empty() && of.len() <= max,
        "{reason}: {} events: {events:?}",
        of.len()
    );
    of
}

/// The one `refused` event of `reason` among `events`.
fn the_one<'a>(events: &'a [Value], reason: &str) -> &'a Value {
    of_reason(events, reason, 1)[0]
}

/// The one `spoof_chaddr` event: sent by `sender`, speaking for `victim`.
fn assert_spoof_chaddr(events: &[Value], sender: &str, victim: &str) {
    let e = the_one(events, "spoof_chaddr");
    assert_eq!(field(e, "mac"), sender.to_lowercase(), "{e:?}");
    assert_eq!(field(e, "chaddr"), victim.to_lowercase(), "{e:?}");
}

fn dhcp(bed: &mut TestBed, i: usize) -> Cell30 {
    match bed.client_dhcp(i, UP) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{}", bed.logs()),
    }
}

/// `n` pings from `srv` to `ip`; how many were answered.
fn pings(bed: &TestBed, ip: std::net::Ipv4Addr, n: u32) -> u32 {
    let out = bed.srv.sh_out(&format!("ping -n -c {n} -i 0.2 -W 1 {ip}"));
    let text = String::from_utf8_lossy(&out.stdout);
    text.split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0)
}

/// Run a scapy script in client `i`'s namespace (`IF` is its interface).
fn scapy(bed: &TestBed, i: usize, body: &str) {
    let script = bed
        .dir
        .join(format!("attack-{i}-{}.py", common::unique("s")));
    let text = format!(
        "import time\nfrom scapy.all import *\nconf.verb = 0\nIF = \"{}\"\n{body}\n",
        testbed::CLIENT_IF
    );
    fs::write(&script, text).expect("write scapy script");
    let out = bed.clients[i]
        .ns
        .sh_out(&format!("/usr/bin/python3 {}", script.display()));
    assert!(
        out.status.success(),
        "scapy failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// What CN `k`'s tmipd logged.
fn cn_log(bed: &TestBed, k: usize) -> String {
    bed.cn(k).log_text()
}

fn wait_log(bed: &TestBed, k: usize, needle: &str) -> String {
    match wait_for(Duration::from_secs(5), || {
        cn_log(bed, k)
            .lines()
            .find(|l| l.contains(needle))
            .map(str::to_string)
    }) {
        Some(l) => l,
        None => panic!("CN{k} never logged {needle:?}\n{}", bed.logs()),
    }
}

/// MAC as scapy wants it for `chaddr` (bytes literal).
fn mac_bytes(mac: &str) -> String {
    let b: Vec<String> = mac.split(':').map(|h| format!("\\x{h}")).collect();
    format!("b\"{}\"", b.concat())
}

fn mobile_mac(bed: &TestBed, k: usize) -> String {
    bed.cn(k)
        .ns
        .sh(&format!(
            "cat /sys/class/net/{}/address",
            testbed::MOBILE_IF
        ))
        .trim()
        .to_string()
}

/// Finding 1: victim A holds its /30 at CN1; attacker B, in CN2's cell,
/// sends DHCP REQUESTs for A's address with chaddr = A's MAC from its own
/// MAC (giaddr 0). CN2 drops them and says so; the MLR keeps A at CN1, only
/// CN1 claims A, and srv's pings to A are all answered.
#[test]
fn forged_chaddr_request_from_another_cell_does_not_move_the_victim() {
    let Scene {
        bed,
        buses,
        b,
        cell,
        a_mac,
        b_mac,
        ..
    } = scene(2);
    assert_eq!(
        pings(&bed, cell.station(), 3),
        3,
        "victim unreachable before the attack"
    );
    let t0 = Instant::now();
    scapy(
        &bed,
        b,
        &format!(
            r#"
base = Ether(src="{b_mac}", dst="ff:ff:ff:ff:ff:ff")/IP(src="0.0.0.0", dst="255.255.255.255")/UDP(sport=68, dport=67)
for i in range(5):
    # INIT-REBOOT (no server id) and SELECTING (server id = A's gateway)
    sendp(base/BOOTP(chaddr={chaddr}, xid=0x1000+i, flags=0x8000)/DHCP(options=[("message-type","request"),("requested_addr","{ip}"),"end"]), iface=IF)
    sendp(base/BOOTP(chaddr={chaddr}, xid=0x2000+i, flags=0x8000)/DHCP(options=[("message-type","request"),("requested_addr","{ip}"),("server_id","{gw}"),"end"]), iface=IF)
    time.sleep(0.2)
"#,
            chaddr = mac_bytes(&a_mac),
            ip = cell.station(),
            gw = cell.gateway()
        ),
    );
    let line = wait_log(&bed, 2, "forged chaddr");
    println!("CN2 logged: {line}");
    assert!(line.contains(&a_mac) && line.contains(&b_mac), "{line}");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        bed.mlr_binding_at(&a_mac),
        Some(1),
        "the MLR moved the victim\n{}",
        bed.logs()
    );
    assert_eq!(bed.claimants(cell), vec![1], "{}", bed.cn_state());
    let got = pings(&bed, cell.station(), 5);
    println!(
        "forged REQUEST x10 from cell 2: victim {a_mac} still at CN1, {got}/5 pings answered ({} ms after the attack began)",
        t0.elapsed().as_millis()
    );
    assert_eq!(got, 5, "{}\n{}", bed.cn_state(), bed.logs());
    assert!(
        !cn_log(&bed, 2).contains("adopted here"),
        "CN2 adopted someone\n{}",
        bed.logs()
    );
    let st = bed.tmipd_status(2);
    assert_eq!(st["counters"]["dhcp_forged"], 10, "{st}");
    // On CN2's bus: one refused event for the ten forged REQUESTs, naming
    // the sender and the station it spoke for.
    let ev = refused_events(&bed, &buses, 2, &["spoof_chaddr"]);
    assert_spoof_chaddr(&ev, &b_mac, &a_mac);
}

/// Finding 2: attacker B, in the victim's cell, sends RELEASE with chaddr =
/// A's MAC and ciaddr = A's address (from B's MAC), and a RELEASE of A's
/// address naming itself. CN1 refuses both; A keeps its binding and
/// service.
#[test]
fn forged_release_in_the_victims_cell_does_not_free_its_cell() {
    let Scene {
        bed,
        buses,
        b,
        cn_mac,
        cell,
        a_mac,
        b_mac,
    } = scene(1);
    scapy(
        &bed,
        b,
        &format!(
            r#"
def release(chaddr, xid):
    return Ether(src="{b_mac}", dst="{cn_mac}")/IP(src="{ip}", dst="{gw}")/UDP(sport=68, dport=67)/BOOTP(ciaddr="{ip}", chaddr=chaddr, xid=xid)/DHCP(options=[("message-type","release"),("server_id","{gw}"),"end"])
for i in range(3):
    sendp(release({victim}, 0x3000+i), iface=IF)
    sendp(release({own}, 0x4000+i), iface=IF)
    time.sleep(0.2)
"#,
            victim = mac_bytes(&a_mac),
            own = mac_bytes(&b_mac),
            ip = cell.station(),
            gw = cell.gateway()
        ),
    );
    let forged = wait_log(&bed, 1, "forged chaddr");
    let not_holder = wait_log(&bed, 1, "refused: RELEASE");
    println!("CN1 logged: {forged}\nCN1 logged: {not_holder}");
    std::thread::sleep(Duration::from_millis(500));
    assert!(!cn_log(&bed, 1).contains(" released "), "{}", bed.logs());
    assert_eq!(bed.mlr_binding_at(&a_mac), Some(1), "{}", bed.logs());
    let got = pings(&bed, cell.station(), 5);
    println!("forged RELEASE x6 in cell 1: victim {a_mac} keeps {cell}, {got}/5 pings answered");
    assert_eq!(got, 5, "{}\n{}", bed.cn_state(), bed.logs());
    assert_eq!(bed.claimants(cell), vec![1]);
    let st = bed.tmipd_status(1);
    assert_eq!(st["counters"]["dhcp_forged"], 3, "{st}");
    assert_eq!(st["counters"]["releases_refused"], 3, "{st}");
    // On CN1's bus: one event for the three forged chaddrs, one for the
    // three RELEASEs of A's cell from B's own MAC.
    let ev = refused_events(&bed, &buses, 1, &["spoof_chaddr", "spoof_release"]);
    assert_spoof_chaddr(&ev, &b_mac, &a_mac);
    let e = the_one(&ev, "spoof_release");
    assert_eq!(field(e, "mac"), b_mac.to_lowercase(), "{e:?}");
    assert_eq!(field(e, "cell"), cell.to_string(), "{e:?}");
}

/// ARP spoof: attacker B, in the victim's cell, claims A's address with
/// gratuitous ARP replies (broadcast, and unicast to the CN) for 3 s, past
/// the kernel's ARP locktime, while srv pings A. The CN logs the spoof,
/// keeps its neighbour entry for A pointing at A's MAC (PERMANENT), and
/// every ping is answered; the MLR keeps A at CN1. CN1 runs without the
/// IP source guard (`source_guard off`, which would drop the ARP at its
/// input): this proves the CN's own checks, the guard has its own tests.
#[test]
fn arp_claiming_a_stations_address_is_not_believed() {
    let Scene {
        bed,
        buses,
        b,
        cn_mac,
        cell,
        a_mac,
        b_mac,
    } = scene_with(1, &["source_guard off"]);
    let srv = bed.srv.name.clone();
    let ip = cell.station();
    let pinger = std::thread::spawn(move || {
        let out = common::sh_out(&format!(
            "ip netns exec {srv} ping -n -c 20 -i 0.2 -W 1 {ip}"
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    });
    scapy(
        &bed,
        b,
        &format!(
            r#"
for i in range(15):
    sendp(Ether(src="{b_mac}", dst="ff:ff:ff:ff:ff:ff")/ARP(op=2, hwsrc="{b_mac}", psrc="{ip}", hwdst="ff:ff:ff:ff:ff:ff", pdst="{ip}"), iface=IF)
    sendp(Ether(src="{b_mac}", dst="{cn_mac}")/ARP(op=2, hwsrc="{b_mac}", psrc="{ip}", hwdst="{cn_mac}", pdst="{gw}"), iface=IF)
    time.sleep(0.2)
"#,
            ip = cell.station(),
            gw = cell.gateway()
        ),
    );
    let out = pinger.join().expect("pinger");
    let line = wait_log(&bed, 1, "spoof");
    println!("CN1 logged: {line}");
    assert!(line.contains(&b_mac), "{line}");
    let neigh = bed.cn(1).ns.sh(&format!(
        "ip neigh show {} dev {}",
        cell.station(),
        testbed::MOBILE_IF
    ));
    println!("CN1 neighbour entry after the attack: {}", neigh.trim());
    assert!(
        neigh.contains(&a_mac) && neigh.contains("PERMANENT"),
        "the spoof was believed: {neigh}"
    );
    let received: u32 = out
        .split(", ")
        .find_map(|p| p.strip_suffix(" received"))
        .and_then(|n| n.trim().parse().ok())
        .unwrap_or(0);
    println!("ARP spoof x30 over 3 s: {received}/20 pings to the victim answered");
    assert_eq!(received, 20, "{out}\n{}\n{}", bed.cn_state(), bed.logs());
    assert_eq!(bed.mlr_binding_at(&a_mac), Some(1), "{}", bed.logs());
    assert_eq!(bed.claimants(cell), vec![1]);
    // On CN1's bus: the spoof, with the address claimed and its owner,
    // once for the 30 frames.
    let ev = refused_events(&bed, &buses, 1, &["spoof_address"]);
    let e = the_one(&ev, "spoof_address");
    assert_eq!(field(e, "mac"), b_mac.to_lowercase(), "{e:?}");
    assert_eq!(field(e, "ip"), cell.station().to_string(), "{e:?}");
    assert_eq!(field(e, "owner"), a_mac.to_lowercase(), "{e:?}");
}

/// Finding 3: 3000 DISCOVERs from random MACs in CN1's cell (CN1 without a
/// new-station rate limit, so the MLR's defences alone are tested) bind
/// nothing and leave a quarter of CN2's pool to CN2: a real udhcpc client at
/// CN2 gets a lease in under 5 s. The offers not taken return to the pools.
/// Then the same flood in CN2's cell (default new_station_rate) is cut by
/// the rate limit. Every refusal is logged and counted in status.
#[test]
fn a_cell_flooding_discovers_cannot_drain_another_cns_pool() {
    let mut bed = TestBed::with_cns(2);
    bed.set_mlrd_rc(&["offer_time 20"]);
    let buses = start_with_buses(&mut bed, [&["new_station_rate 0"], &[]]);
    let attacker = bed.add_client(1);
    let victim = bed.add_client(2);
    let flood = |bed: &TestBed, i: usize, n: u32| {
        let t = Instant::now();
        scapy(
            bed,
            i,
            &format!(
                r#"
import random
# One frame built by scapy (UDP checksum 0: none, as IPv4 allows), then
# only the MACs and xid patched per frame: fast enough for a real flood.
t = bytearray(bytes(Ether(src="02:00:00:00:00:01", dst="ff:ff:ff:ff:ff:ff")/IP(src="0.0.0.0", dst="255.255.255.255")/UDP(sport=68, dport=67, chksum=0)/BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x01", xid=1, flags=0x8000)/DHCP(options=[("message-type","discover"),"end"])))
s = conf.L2socket(iface=IF)
for k in range({n}):
    m = bytes([0x02] + [random.randrange(256) for _ in range(5)])
    t[6:12] = m
    t[46:50] = random.randrange(1 << 32).to_bytes(4, "big")
    t[70:76] = m
    s.send(bytes(t))
    if k % 20 == 19:
        time.sleep(0.01)  # about 2000 frames/s: what the CN reads, not what its socket drops
s.close()
"#
            ),
        );
        t.elapsed()
    };
    let took = flood(&bed, attacker, 3000);
    println!(
        "3000 random-MAC DISCOVERs sent in cell 1 in {} ms",
        took.as_millis()
    );
    // Let CN1 work through what it read.
    std::thread::sleep(Duration::from_millis(1500));
    let t = Instant::now();
    let got = bed.client_dhcp(victim, Duration::from_secs(5));
    let lease_ms = t.elapsed().as_millis();
    let cell = match got {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{}\n{}", bed.mlrd_status(), bed.logs()),
    };
    println!("udhcpc at CN2 after the flood: {cell} in {lease_ms} ms");
    assert!(lease_ms < 5000, "{lease_ms} ms");
    assert_eq!(bed.parent_of(cell), 2);
    let mlr = bed.mlrd_status();
    let offers = &mlr["offers"];
    println!("mlrd status: offers {offers}");
    // While the client took its lease, the flood's offers held CN1's pool
    // and CN2's up to its foreign_share (46 of 62), no more.
    assert!(number(offers, "quota_refused") > 0, "{mlr}");
    assert_eq!(number(offers, "held"), 62 + 46, "{mlr}");
    assert_eq!(mlr["bindings_count"], 1, "offers bound cells:\n{mlr}");
    let mlr_log: String = ["mlrd.log", "mlrd.out"]
        .iter()
        .map(|f| fs::read_to_string(bed.dir.join(f)).unwrap_or_default())
        .collect();
    let quota_line = mlr_log
        .lines()
        .find(|l| l.contains("refused by quota"))
        .unwrap_or_else(|| panic!("mlrd never logged the quota\n{}", bed.logs()))
        .to_string();
    println!("mlrd logged: {quota_line}");
    let refusal_lines = mlr_log.lines().filter(|l| l.contains("refused")).count();
    assert!(
        refusal_lines < 20,
        "{refusal_lines} refusal lines: not rate-limited"
    );
    let cn1 = wait_log(&bed, 1, "refused by the MLR");
    println!("CN1 logged: {cn1}");
    // On CN1's bus: the MLR's quota refusal, once (not once per DISCOVER).
    let ev = refused_events(&bed, &buses, 1, &["quota"]);
    let quota = of_reason(&ev, "quota", 3);
    println!(
        "CN1 bus: {} quota event(s) for {} MLR refusals",
        quota.len(),
        number(&bed.tmipd_status(1), "counters/mlr_refused")
    );
    // Offers not taken return to their pools (offer_time 20).
    let back = wait_for(Duration::from_secs(30), || {
        let o = bed.mlrd_status()["offers"].take();
        (number(&o, "held") == 0).then_some(o)
    });
    match back {
        Some(o) => {
            println!("after offer_time: offers {o}");
            assert!(number(&o, "expired") >= 62 + 46, "{o}");
        }
        None => panic!("offers still held\n{}", bed.mlrd_status()),
    }
    // The victim still has service.
    assert_eq!(pings(&bed, cell.station(), 3), 3, "{}", bed.logs());
    // CN2 has the default new_station_rate (10/s, burst 40).
    let attacker2 = bed.add_client(2);
    let took = flood(&bed, attacker2, 500);
    println!(
        "500 random-MAC DISCOVERs sent in cell 2 in {} ms",
        took.as_millis()
    );
    let line = wait_log(&bed, 2, "new_station_rate");
    println!("CN2 logged: {line}");
    let st = bed.tmipd_status(2);
    let limited = number(&st, "counters/new_stations_limited");
    println!("CN2 status: new_stations_limited {limited}");
    assert!(limited > 100, "{st}");
    // On CN2's bus: the rate limit with its rate, not one event per MAC.
    let ev = refused_events(&bed, &buses, 2, &["rate_limited"]);
    let e = the_one(&ev, "rate_limited");
    assert_eq!(e.get("rate").and_then(Value::as_i64), Some(10), "{e:?}");
}
