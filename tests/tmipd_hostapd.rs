//! tmipd with a REAL hostapd (`driver=wired`, IEEE 802.1X with EAP-MD5 from
//! hostapd's internal EAP server) on a CN's mobile interface, and a real
//! wpa_supplicant (`-D wired`) on the station: a station that holds a
//! binding (DHCP at CN 1) moves to CN 2's cell, authenticates there, and
//! CN 2 adopts it on hostapd's AP-STA-CONNECTED before the station has sent
//! a single ARP or IPv4 frame. Also: hostapd killed and restarted, tmipd
//! re-attaches.
//!
//! The station's silence is checked, not assumed: tcpdump on the station's
//! bridge port (in `air`) records every ARP/IPv4 frame; the first frame
//! from the station must come after CN 2's ARP to it (sent by the
//! adoption), and CN 2's log must show the hostapd event and no capture
//! arrival for the station before the handover line.
//!
//! Needs root, hostapd, wpa_supplicant, tcpdump, busybox (scripts/setup).
use std::process::Stdio;
use std::time::Duration;
use tmip::addr::MacAddr;
use tmip_testbed::bed::*;
use tmip_testbed::wired8021x::{hostapd_conf, start_hostapd, start_supplicant};
use tmip_testbed::{read, wait_for};

/// Frames in tcpdump's `-tt -e -n` text output: (time, source MAC, line).
fn frames(text: &str) -> Vec<(f64, String, String)> {
    text.lines()
        .filter_map(|l| {
            let mut it = l.split_whitespace();
            let t: f64 = it.next()?.parse().ok()?;
            let src = it.next()?.to_lowercase();
            Some((t, src, l.to_string()))
        })
        .collect()
}

#[test]
fn a_roaming_station_is_adopted_on_hostapd_association_before_it_sends_anything() {
    let mut bed = TestBed::with_cns(2);
    let hctl = bed.dir.join("hctl");
    let sock = hctl.join(MOBILE_IF);
    bed.set_rc(1, &["debug_level 4", "hostapd_ctrl off", "ubus off"]);
    bed.set_rc(
        2,
        &[
            "debug_level 4",
            &format!("hostapd_ctrl {}", sock.display()),
            "ubus off",
        ],
    );
    // 802.1X frames go to the PAE group address, which a Linux bridge does
    // not forward unless told to (group_fwd_mask bit 3).
    bed.air
        .sh("ip link set cell2 type bridge group_fwd_mask 8 && ip link set cell1 type bridge group_fwd_mask 8");
    bed.start_all();
    assert!(
        bed.cns[1].wait_log(
            &format!("hostapd control socket {} not there yet", sock.display()),
            0,
            5
        ),
        "{}",
        bed.cns[1].log_text()
    );
    let conf = hostapd_conf(&bed.dir, MOBILE_IF, &hctl);
    let hlog = bed.dir.join("hostapd.log");
    let hapd = start_hostapd(&mut bed.cns[1].ns, &conf, &sock, &hlog);
    assert!(
        bed.cns[1].wait_log("attached to hostapd at", 0, 5),
        "CN 2 did not attach to hostapd\n{}",
        bed.cns[1].log_text()
    );

    // The station gets its /30 at CN 1 (udhcpc exits after the lease).
    let c = bed.add_client(1);
    bed.udhcpc(c, &["-n", "-q"]);
    let ip = bed.clients[c]
        .wait_event(&["bound"], 0, 20)
        .unwrap_or_else(|| panic!("no lease at CN 1\n{}", bed.cns[0].log_text()));
    bed.clients[c].wait_dhcp(Duration::from_secs(5));
    let gw = gateway_of(&ip);
    let sta_mac = bed.clients[c].mac.to_lowercase();
    let cn2_mac = bed.cns[1]
        .ns
        .sh(&format!("cat /sys/class/net/{MOBILE_IF}/address"))
        .trim()
        .to_lowercase();

    // Watch every ARP/IPv4 frame on the station's bridge port.
    let cap = bed.dir.join("port.txt");
    let cap_err = bed.dir.join("port.err");
    let mut td = bed.air.command("tcpdump");
    let port = bed.clients[c].air_port.clone();
    td.args(["-l", "-n", "-e", "-tt", "-i", &port, "arp or ip"])
        .stdout(Stdio::from(std::fs::File::create(&cap).unwrap()))
        .stderr(Stdio::from(std::fs::File::create(&cap_err).unwrap()));
    let td_pid = bed.air.spawn(td);
    assert!(
        wait_for(Duration::from_secs(5), || read(&cap_err)
            .contains("listening on")
            .then_some(()))
        .is_some(),
        "tcpdump did not start: {}",
        read(&cap_err)
    );

    // Roam to CN 2's cell (link stays up) and authenticate there.
    let from = bed.cns[1].log_text().len();
    bed.move_client(c, 2);
    let t_auth = std::time::Instant::now();
    let dir = bed.dir.clone();
    let cl = &mut bed.clients[c];
    let mac: MacAddr = sta_mac.parse().expect("station MAC");
    let sup = start_supplicant(&mut cl.ns, &cl.ifname, &dir, mac.0);
    assert!(
        bed.cns[1].wait_log("from association event to adoption", from, 10),
        "CN 2 did not adopt on the hostapd event\nCN 2:\n{}\nhostapd:\n{}",
        bed.cns[1].log_text(),
        read(&hlog)
    );
    let t_adopted = t_auth.elapsed();
    // Right away: CN 2 serves the station (gateway N+2 and route to N+1).
    let addrs = bed.cns[1].mobile_addrs();
    assert!(addrs.contains(&format!("{gw}/32")), "{addrs}");
    let route = bed.cns[1].ns.sh(&format!("ip -4 route show {ip}"));
    assert!(
        route.contains(&format!("dev {MOBILE_IF}")),
        "no route to {ip} at CN 2: {route}"
    );
    let log2 = bed.cns[1].log_text()[from..].to_string();
    let ev = log2
        .find(&format!(
            "station {sta_mac} connected on {MOBILE_IF} (hostapd_ctrl)"
        ))
        .unwrap_or_else(|| panic!("no hostapd event line\n{log2}"));
    let adopted = log2.find("from association event to adoption").unwrap();
    assert!(ev < adopted, "{log2}");
    assert!(
        !log2[..adopted].contains(&format!("arrival of {sta_mac}")),
        "the capture saw the station first:\n{log2}"
    );
    // The parent (CN 1) is told and routes the cell to CN 2.
    assert!(
        bed.cns[0].wait_log(&format!("is now at CN {}", cn_core_ip(2)), 0, 5),
        "{}",
        bed.cns[0].log_text()
    );
    // The station was silent until CN 2's ARP reached it.
    std::thread::sleep(Duration::from_millis(300));
    bed.air.signal(td_pid, nix::sys::signal::Signal::SIGTERM);
    bed.air.wait(td_pid, Duration::from_secs(5));
    let f = frames(&read(&cap));
    let first_cn2 = f
        .iter()
        .find(|(_, src, l)| *src == cn2_mac && l.contains(&format!("{gw} is-at")))
        .unwrap_or_else(|| panic!("no ARP from CN 2 to the station: {f:?}"));
    let early: Vec<_> = f
        .iter()
        .filter(|(t, src, _)| *src == sta_mac && *t < first_cn2.0)
        .collect();
    assert!(
        early.is_empty(),
        "the station sent ARP/IP before CN 2 adopted it: {early:?}"
    );
    let handover = log2
        .lines()
        .find(|l| l.contains("from association event to adoption"))
        .unwrap_or("");
    println!(
        "FIGURE wpa_supplicant start (EAPOL-Start at once) -> adoption seen in CN 2's log: {t_adopted:?}; {handover}"
    );
    println!(
        "adopted on AP-STA-CONNECTED; first CN 2 frame to the station: {}\nCN 2 log from the move:\n{}",
        first_cn2.2,
        &log2[..log2.len().min(adopted + 400)]
    );
    // And the gateway answers through CN 2.
    bed.clients[c].ns.sh(&format!("ping -c1 -W2 {gw}"));

    // hostapd killed and restarted: CN 2 notices, re-attaches, keeps going.
    bed.cns[1].ns.kill(hapd);
    assert!(
        bed.cns[1].wait_log("lost hostapd at", from, 5),
        "{}",
        bed.cns[1].log_text()
    );
    let before = bed.cns[1].log_text().len();
    start_hostapd(&mut bed.cns[1].ns, &conf, &sock, &hlog);
    assert!(
        bed.cns[1].wait_log("attached to hostapd at", before, 5),
        "CN 2 did not re-attach\n{}",
        bed.cns[1].log_text()
    );
    assert!(bed.cns[1].mobile_addrs().contains(&format!("{gw}/32")));
    bed.clients[c].ns.kill(sup);
    bed.cns[1].stop();
    bed.cns[0].stop();
}
