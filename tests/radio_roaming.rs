//! Real 802.11 roaming between TMip CNs, in the radio lab (Debian's kernel
//! in a QEMU guest, scripts/lab: this build machine's kernel has no
//! mac80211_hwsim, so these tests boot the lab themselves when run here).
//!
//! Each CN namespace gets a mac80211_hwsim radio with hostapd on it (one
//! SSID, WPA2-PSK, a BSSID per CN, different channels); tmipd's `mobile_if`
//! is the AP interface (or, for WDS, the bridge hostapd puts it in) and its
//! `hostapd_ctrl` the AP's control socket. A station namespace with its own
//! radio runs wpa_supplicant, gets its /30 by DHCP (busybox udhcpc) and
//! roams by real reassociation (`wpa_cli roam <bssid>`) while a TCP stream
//! runs to `srv`. The same moves on two APs bridged into one LAN without
//! TMip give the plain L2 roam figure, measured the same way, printed side
//! by side (TCG inflates both; the difference is TMip's share).
mod common;
#[path = "common/kernel.rs"]
mod kernel;
#[path = "common/radio.rs"]
mod radio;
#[path = "common/testbed.rs"]
mod testbed;
#[path = "common/traffic.rs"]
mod traffic;

use common::Netns;
use radio::{ms, read, Ap, ApOptions, Radios, Station};
use std::time::Duration;
use testbed::{Options, TestBed, CLIENT_IF, SRV_IP};
use traffic::TcpCheck;

const MOVES: usize = 3;
/// One 1 KiB chunk per direction every PERIOD (the guest is slow).
const PERIOD: Duration = Duration::from_millis(4);
/// How long after a move its window may take to deliver what was sent.
const SETTLE: Duration = Duration::from_secs(8);
const CHANNELS: [u8; 2] = [1, 6];

/// What one move showed.
struct Move {
    to: usize,
    reassoc: Duration,
    gap: Duration,
    lost: u64,
    same: bool,
}

fn move_line(m: &Move) -> String {
    format!(
        "to AP{}: reassociation {} ms, TCP interruption {} ms, {} bytes lost, same connection {}",
        m.to + 1,
        ms(m.reassoc),
        ms(m.gap),
        m.lost,
        if m.same { "yes" } else { "NO" }
    )
}

/// The plain L2 baseline: two APs bridged into one LAN (one namespace, one
/// bridge, the server on it), no TMip. The station keeps its address; only
/// the bridge's forwarding table has to learn the new port.
fn plain_l2_roams() -> Vec<Move> {
    let radios = Radios::load(3);
    let dir = std::env::temp_dir().join(format!("tmip-l2-{}", common::unique("d")));
    std::fs::create_dir_all(&dir).unwrap();
    let mut lan = Netns::new("lan");
    lan.sh("ip link add br0 type bridge forward_delay 0 stp_state 0 && ip link set br0 up");
    lan.sh("ip addr add 192.168.77.1/24 dev br0");
    let mut aps = Vec::new();
    for (k, ch) in CHANNELS.iter().enumerate() {
        let name = format!("wap{}", k + 1);
        let bssid = radios.give(k, &lan, &name);
        let opts = ApOptions {
            bridge: Some("br0".into()),
            wds_sta: false,
        };
        aps.push(Ap::start(&mut lan, &dir, &name, &bssid, *ch, &opts));
    }
    let mut sta_ns = Netns::new("sta");
    radios.give(2, &sta_ns, CLIENT_IF);
    sta_ns.sh(&format!(
        "ip link set {CLIENT_IF} up && ip addr add 192.168.77.2/24 dev {CLIENT_IF}"
    ));
    let sta = Station::start(&mut sta_ns, &dir, CLIENT_IF);
    let mut at = aps.iter().position(|a| a.bssid == sta.bssid()).unwrap();
    let mut tcp = TcpCheck::start(
        &lan.name,
        "192.168.77.1".parse().unwrap(),
        5101,
        &sta_ns.name,
        PERIOD,
    )
    .expect("TCP stream over the LAN");
    std::thread::sleep(Duration::from_secs(2));
    let mut moves = Vec::new();
    for _ in 0..MOVES {
        let to = 1 - at;
        sta.scan_for(&aps[to].bssid);
        let m = tcp.mark();
        let (_, reassoc) = sta.roam(&aps[to].bssid);
        let w = tcp.window(&m, SETTLE);
        let same = tcp.same_connection();
        let mv = Move {
            to,
            reassoc,
            gap: w.gap(),
            lost: w.lost,
            same,
        };
        println!("plain L2 move {}", move_line(&mv));
        moves.push(mv);
        at = to;
    }
    let _ = tcp.finish(Duration::from_secs(2));
    drop((sta_ns, lan, radios));
    let _ = std::fs::remove_dir_all(&dir);
    moves
}

/// A TMip bed of two CNs, each with a radio and hostapd; `wds`: the AP
/// interface sits in a bridge (`brm`, tmipd's mobile_if) with `wds_sta=1`,
/// and the station is a four-address one.
struct RadioBed {
    bed: TestBed,
    aps: Vec<Ap>,
    ms: usize,
    sta: Station,
    _radios: Radios,
}

fn radio_bed(wds: bool) -> RadioBed {
    let radios = Radios::load(3);
    let mut bed = TestBed::new(Options {
        cns: 2,
        debug_level: 4,
        ..Options::default()
    });
    let mut aps = Vec::new();
    for k in 1..=2 {
        let wap = format!("wap{k}");
        let dir = bed.dir.clone();
        let cn = &mut bed.cns[k - 1];
        // The wired cell port is not used: the cell is the radio.
        cn.ns.sh(&format!("ip link del {}", cn.mobile_if));
        let bssid = radios.give(k - 1, &cn.ns, &wap);
        let mobile_if = if wds {
            cn.ns.sh(
                "ip link add brm type bridge forward_delay 0 stp_state 0 && ip link set brm up",
            );
            "brm".to_string()
        } else {
            wap.clone()
        };
        let opts = ApOptions {
            bridge: wds.then(|| "brm".to_string()),
            wds_sta: wds,
        };
        let ap = Ap::start(&mut cn.ns, &dir, &wap, &bssid, CHANNELS[k - 1], &opts);
        cn.ns
            .sh(&format!("ip addr add {}/24 dev {mobile_if}", cn.mobile_ip));
        cn.mobile_if = mobile_if;
        cn.rc_extra = vec![
            format!("hostapd_ctrl {}", ap.ctrl.display()),
            "ubus off".to_string(),
        ];
        aps.push(ap);
    }
    if let Err(e) = bed.start_daemons(Duration::from_secs(60)) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    for k in 1..=2 {
        assert!(
            testbed_wait(&bed, k, "attached to hostapd at", 0),
            "CN{k} did not attach to hostapd\n{}",
            bed.logs()
        );
    }
    let ms = bed.add_client_unplugged();
    radios.give(2, &bed.clients[ms].ns, CLIENT_IF);
    if wds {
        bed.clients[ms]
            .ns
            .sh(&format!("iw dev {CLIENT_IF} set 4addr on"));
    }
    bed.client_plugged(ms);
    let dir = bed.dir.clone();
    let sta = Station::start(&mut bed.clients[ms].ns, &dir, CLIENT_IF);
    RadioBed {
        bed,
        aps,
        ms,
        sta,
        _radios: radios,
    }
}

/// CN k's tmipd log (its log file, else its output in the foreground).
impl RadioBed {
    /// The station's DHCP lease where it is: (its MAC, AP index, /30).
    fn lease(&mut self) -> (String, usize, tmip::addr::Cell30) {
        let mac = self.bed.clients[self.ms].mac.to_lowercase();
        let at = self.at();
        let cell = self
            .bed
            .client_dhcp(self.ms, Duration::from_secs(60))
            .unwrap_or_else(|e| panic!("{e}\n{}", self.bed.logs()));
        (mac, at, cell)
    }

    /// Index of the AP the station is associated with.
    fn at(&self) -> usize {
        let b = self.sta.bssid();
        self.aps.iter().position(|a| a.bssid == b).unwrap()
    }

    /// A verified TCP stream station <-> srv.
    fn stream(&self, port: u16) -> TcpCheck {
        let ms_ns = &self.bed.clients[self.ms].ns.name;
        let tcp = TcpCheck::start(&self.bed.srv.name, SRV_IP, port, ms_ns, PERIOD)
            .unwrap_or_else(|e| panic!("{e}\n{}", self.bed.logs()));
        std::thread::sleep(Duration::from_secs(2));
        tcp
    }

    /// Roams the station to AP `to` while `tcp` runs; asserts the same
    /// connection, nothing lost and adoption on hostapd's event. Returns
    /// the figures and the CN's handover line.
    fn roam_to(&self, tcp: &mut TcpCheck, to: usize, wds: bool) -> (Move, String) {
        let mac = self.bed.clients[self.ms].mac.to_lowercase();
        self.sta.scan_for(&self.aps[to].bssid);
        let from = cn_log(&self.bed, to + 1).len();
        let m = tcp.mark();
        let (_, reassoc) = self.sta.roam(&self.aps[to].bssid);
        let w = tcp.window(&m, SETTLE);
        let same = tcp.same_connection();
        let line = adopted_on_association(&self.bed, to + 1, from, &mac, wds);
        if wds {
            let vlan = format!("{}.sta1", self.aps[to].ifname);
            assert!(
                testbed_wait(
                    &self.bed,
                    to + 1,
                    &format!("WDS link {vlan} for {mac}"),
                    from
                ),
                "{}",
                cn_log(&self.bed, to + 1)
            );
        }
        let mv = Move {
            to,
            reassoc,
            gap: w.gap(),
            lost: w.lost,
            same,
        };
        assert!(
            mv.same && mv.lost == 0 && w.error.is_none(),
            "move to AP{}: {} (error {:?})\n{}",
            to + 1,
            move_line(&mv),
            w.error,
            self.bed.logs()
        );
        (mv, line)
    }
}

fn cn_log(bed: &TestBed, k: usize) -> String {
    let log = read(&bed.dir.join(format!("tmipd-cn{k}.log")));
    if log.is_empty() {
        read(&bed.dir.join(format!("tmipd-cn{k}.out")))
    } else {
        log
    }
}

/// Waits (20 s) for `needle` in CN k's log after byte `from`.
fn testbed_wait(bed: &TestBed, k: usize, needle: &str, from: usize) -> bool {
    common::wait_for(Duration::from_secs(20), || {
        cn_log(bed, k)
            .get(from..)
            .is_some_and(|t| t.contains(needle))
            .then_some(())
    })
    .is_some()
}

/// The part of CN k's log from byte `from` up to its handover line for
/// `mac`, checked: the hostapd event came first and adopted the station;
/// the capture did not see the station before. Returns the handover line.
/// `wds`: a four-address station's AP/VLAN netdev appears during its 4-way
/// handshake (its EAPOL frames are four-address ones), so hostapd's
/// `WDS-STA-INTERFACE-ADDED` may be the first event; either counts.
fn adopted_on_association(bed: &TestBed, k: usize, from: usize, mac: &str, wds: bool) -> String {
    let ifname = &bed.cns[k - 1].mobile_if;
    let done = testbed_wait(bed, k, "from association event to adoption", from);
    let log = cn_log(bed, k);
    let part = &log[from.min(log.len())..];
    assert!(
        done,
        "CN{k} did not adopt the station on its association event:\n{part}"
    );
    let mut events = vec![format!(
        "station {mac} connected on {ifname} (hostapd_ctrl)"
    )];
    if wds {
        events.push(format!("WDS link wap{k}.sta1 for {mac}"));
    }
    let ev = events
        .iter()
        .filter_map(|e| part.find(e.as_str()))
        .min()
        .unwrap_or_else(|| panic!("no hostapd event for {mac} at CN{k}:\n{part}"));
    let adopted = part.find("from association event to adoption").unwrap();
    assert!(ev < adopted, "{part}");
    assert!(
        !part[..adopted].contains(&format!("arrival of {mac}")),
        "CN{k}'s capture saw the station before the association event:\n{part}"
    );
    let start = part[..adopted].rfind('\n').map_or(0, |i| i + 1);
    part[start..]
        .lines()
        .next()
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn radio_wifi_roaming_between_cns_keeps_the_tcp_connection_and_loses_nothing_next_to_plain_l2() {
    if !radio::here_or_in_lab(
        "radio_wifi_roaming_between_cns_keeps_the_tcp_connection_and_loses_nothing_next_to_plain_l2",
    ) {
        return;
    }
    let plain = plain_l2_roams();

    let mut rb = radio_bed(false);
    let (mac, mut at, cell) = rb.lease();
    println!(
        "station {mac} on AP{} (CN{}) got {cell} by DHCP",
        at + 1,
        at + 1
    );
    let mut tcp = rb.stream(5102);
    let mut moves = Vec::new();
    for _ in 0..MOVES {
        let to = 1 - at;
        let (mv, line) = rb.roam_to(&mut tcp, to, false);
        println!("TMip move {}\n  CN{}: {line}", move_line(&mv), to + 1);
        moves.push(mv);
        at = to;
    }
    let (_, _, _, _, err) = tcp.finish(Duration::from_secs(3));
    assert!(err.is_none(), "{err:?}");
    println!("\nFIGURES 802.11 roam (hwsim, WPA2-PSK, wpa_cli roam), guest under TCG:");
    println!(
        "move | plain L2: reassoc / TCP gap (ms) | TMip: reassoc / TCP gap (ms) | TMip bytes lost"
    );
    for (i, (p, t)) in plain.iter().zip(&moves).enumerate() {
        println!(
            "{}    | {:>8} / {:>8}              | {:>8} / {:>8}          | {}",
            i + 1,
            ms(p.reassoc),
            ms(p.gap),
            ms(t.reassoc),
            ms(t.gap),
            t.lost
        );
    }
    for p in &plain {
        assert!(
            p.same && p.lost == 0,
            "plain L2 baseline broke: {}",
            move_line(p)
        );
    }
}

#[test]
fn radio_a_four_address_wds_station_gets_its_own_netdev_and_is_served_and_roamed() {
    if !radio::here_or_in_lab(
        "radio_a_four_address_wds_station_gets_its_own_netdev_and_is_served_and_roamed",
    ) {
        return;
    }
    let mut rb = radio_bed(true);
    let (mac, mut at, cell) = rb.lease();
    // hostapd made the station's AP/VLAN netdev, put it in the bridge, and
    // tmipd heard of it; the station's DHCP came through it.
    let vlan = format!("{}.sta1", rb.aps[at].ifname);
    assert!(
        rb.aps[at].log_text().contains(&format!(
            "WDS-STA-INTERFACE-ADDED ifname={vlan} sta_addr={mac}"
        )),
        "{}",
        rb.aps[at].log_text()
    );
    assert!(
        testbed_wait(&rb.bed, at + 1, &format!("WDS link {vlan} for {mac}"), 0),
        "{}",
        cn_log(&rb.bed, at + 1)
    );
    let members = rb.bed.cns[at].ns.sh("ip -o link show master brm");
    assert!(members.contains(&vlan), "{members}");
    let details = rb.bed.cns[at].ns.sh(&format!("iw dev {vlan} info"));
    assert!(
        details.contains("type AP/VLAN") && details.contains("4addr: on"),
        "{details}"
    );
    println!(
        "WDS station {mac} served by CN{} over {vlan}: {cell} by DHCP",
        at + 1
    );

    let mut tcp = rb.stream(5103);
    for _ in 0..2 {
        let to = 1 - at;
        let (mv, line) = rb.roam_to(&mut tcp, to, true);
        let vlan = format!("{}.sta1", rb.aps[to].ifname);
        println!(
            "WDS move {}\n  CN{}: {line}\n  CN{}: WDS link {vlan} for {mac}",
            move_line(&mv),
            to + 1,
            to + 1
        );
        // The AP left behind drops the silent station (it is on another
        // channel now) by its inactivity timer, and its netdev with it;
        // tmipd there hears of the removal. hostapd's timer is fuzzed by up
        // to 19 s (radio::AP_DROP_WORST): wait that long from now (after
        // the reassociation, so after the station's last frame to the old
        // AP), plus 10 s for emulation.
        let old = &rb.aps[at];
        let old_vlan = format!("{}.sta1", old.ifname);
        let cn_from = cn_log(&rb.bed, at + 1).len();
        let left = std::time::Instant::now();
        let gone = common::wait_for(radio::AP_DROP_WORST + Duration::from_secs(10), || {
            old.log_text()
                .contains(&format!(
                    "WDS-STA-INTERFACE-REMOVED ifname={old_vlan} sta_addr={mac}"
                ))
                .then(std::time::Instant::now)
        });
        let evidence = || {
            format!(
                "{}{}== the station\n{}",
                old.evidence(&rb.bed.cns[at].ns, &mac),
                rb.aps[to].evidence(&rb.bed.cns[to].ns, &mac),
                String::from_utf8_lossy(
                    &rb.bed.clients[rb.ms]
                        .ns
                        .sh_out(&format!("iw dev {CLIENT_IF} link; iw dev {CLIENT_IF} info"))
                        .stdout
                )
            )
        };
        let Some(gone) = gone else {
            panic!(
                "AP{} kept the station {} s after it left (worst case by hostapd's timer: {} s):\n{}",
                at + 1,
                left.elapsed().as_secs(),
                radio::AP_DROP_WORST.as_secs(),
                evidence()
            );
        };
        let members = rb.bed.cns[at].ns.sh("ip -o link show");
        assert!(
            !members.contains(&format!("{old_vlan}@"))
                && !members.contains(&format!(" {old_vlan}:")),
            "AP{} logged the removal but {old_vlan} is still there:\n{members}",
            at + 1
        );
        assert!(
            testbed_wait(
                &rb.bed,
                at + 1,
                &format!("WDS link {old_vlan} for {mac} removed"),
                cn_from
            ),
            "CN{} did not handle WDS-STA-INTERFACE-REMOVED:\n{}",
            at + 1,
            cn_log(&rb.bed, at + 1)
        );
        println!(
            "AP{} dropped the station {:.1} s after the move was done; its timer:\n  {}",
            at + 1,
            (gone - left).as_secs_f64(),
            old.timer_lines(&mac).join("\n  ")
        );
        at = to;
    }
    let (_, _, _, _, err) = tcp.finish(Duration::from_secs(3));
    assert!(err.is_none(), "{err:?}");
}
