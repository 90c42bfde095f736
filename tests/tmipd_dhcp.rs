//! tmipd's distributed DHCP server against real clients, with the real mlrd,
//! in network namespaces: busybox udhcpc, ISC dhclient and dhcpcd each
//! obtain a /30 from the MLR through a CN, install it, and renew it; a
//! client moved to another CN's cell gets the same address there.
use std::time::Duration;
use tmip_testbed::bed::*;
use tmip_testbed::*;

/// N+1 of a /30 inside `prefix` (`10.1.0.`): the station rule.
fn is_station_address(ip: &str, prefix: &str) -> bool {
    ip.starts_with(prefix)
        && ip
            .rsplit('.')
            .next()
            .and_then(|o| o.parse::<u8>().ok())
            .is_some_and(|o| o % 4 == 1)
}

#[test]
fn udhcpc_dhclient_and_dhcpcd_obtain_install_and_renew_a_lease() {
    let mut bed = TestBed::with_cns(1);
    // A 12 s lease makes every client renew (T1 = 6 s) within the test.
    bed.set_rc(1, &["lease_time 12", "debug_level 4"]);
    bed.start_all();
    let clients = [
        bed.add_client(1),
        bed.add_client(1),
        // dhcpcd names its files after the interface, host-wide.
        bed.add_client_if(1, &unique("k")),
    ];
    bed.udhcpc(clients[0], &[]);
    bed.dhclient(clients[1]);
    bed.dhcpcd(clients[2]);
    let names = ["udhcpc", "dhclient", "dhcpcd"];
    let prefix = bed.cns[0].mobile_prefix();
    let mut addrs = Vec::new();
    for (&i, name) in clients.iter().zip(names) {
        let c = &bed.clients[i];
        let ip = c
            .wait_event(&["bound", "BOUND", "REBOOT"], 0, 20)
            .unwrap_or_else(|| {
                panic!(
                    "{name} got no lease; events {:?}\nCN log:\n{}",
                    c.events(),
                    bed.cns[0].log_text()
                )
            });
        assert!(is_station_address(&ip, &prefix), "{name} got {ip}");
        // Installed: N+1/30 on the link, and the gateway N+2 answers.
        let installed = c.address().unwrap_or_default();
        assert_eq!(installed, format!("{ip}/30"), "{name}");
        let gw = gateway_of(&ip);
        let route = c.ns.sh("ip -4 route show default");
        assert!(route.contains(&format!("via {gw}")), "{name}: {route}");
        c.ns.sh(&format!("ping -c1 -W2 {gw}"));
        println!("{name}: lease {ip}/30 gateway {gw}");
        addrs.push(ip);
    }
    addrs.sort();
    addrs.dedup();
    assert_eq!(addrs.len(), 3, "each client its own /30: {addrs:?}");
    // Renewal: each client renews with the CN (and the CN with the MLR).
    for (&i, name) in clients.iter().zip(names) {
        let c = &bed.clients[i];
        let ip = c
            .wait_event(&["renew", "RENEW", "REBIND"], 0, 25)
            .unwrap_or_else(|| {
                panic!(
                    "{name} did not renew; events {:?}\nCN log:\n{}",
                    c.events(),
                    bed.cns[0].log_text()
                )
            });
        assert_eq!(c.events()[0].1, ip, "{name} renewed to another address");
        println!("{name}: renewed {ip}");
    }
    let log = bed.cns[0].log_text();
    assert!(log.contains("(Renewing)"), "{log}");
    for i in clients {
        bed.clients[i].stop_dhcp();
    }
    bed.cns[0].stop();
}

#[test]
fn a_client_moved_to_another_cn_gets_the_same_address() {
    let mut bed = TestBed::with_cns(2);
    bed.set_rc(1, &["debug_level 3"]);
    bed.start_all();
    let c = bed.add_client(1);
    bed.udhcpc(c, &["-n", "-q"]);
    let ip = bed.clients[c]
        .wait_event(&["bound"], 0, 20)
        .unwrap_or_else(|| panic!("no lease at CN 1\n{}", bed.cns[0].log_text()));
    assert!(is_station_address(&ip, &bed.cns[0].mobile_prefix()), "{ip}");
    bed.clients[c].wait_dhcp(Duration::from_secs(5));
    // Roam to CN 2's cell and ask again from scratch.
    bed.move_client(c, 2);
    bed.clients[c]
        .ns
        .sh(&format!("ip addr flush dev {CLIENT_IF}"));
    bed.udhcpc(c, &["-n", "-q"]);
    let again = bed.clients[c]
        .wait_event(&["bound"], 1, 20)
        .unwrap_or_else(|| panic!("no lease at CN 2\n{}", bed.cns[1].log_text()));
    assert_eq!(again, ip, "same /30 at the other CN");
    // CN 2 now serves it (gateway address on its mobile interface) with
    // CN 1 as the parent; CN 1 routes the cell to CN 2.
    let gw = gateway_of(&ip);
    let a2 = bed.cns[1]
        .ns
        .sh(&format!("ip -4 addr show dev {MOBILE_IF}"));
    assert!(a2.contains(&format!("{gw}/32")), "{a2}");
    bed.clients[c].ns.sh(&format!("ping -c1 -W2 {gw}"));
    assert!(
        bed.cns[0].wait_log(&format!("is now at CN {}", cn_core_ip(2)), 0, 5),
        "CN 1 (the parent) was not told:\n{}",
        bed.cns[0].log_text()
    );
    bed.cns[1].stop();
    bed.cns[0].stop();
    // TERM removed what each CN installed.
    let a1 = bed.cns[0]
        .ns
        .sh(&format!("ip -4 addr show dev {MOBILE_IF}"));
    assert!(!a1.contains("/32"), "{a1}");
}

#[test]
fn a_released_lease_is_withdrawn_from_the_cn() {
    let mut bed = TestBed::with_cns(1);
    bed.set_rc(1, &["debug_level 4"]);
    bed.start_all();
    let c = bed.add_client(1);
    // -R: send RELEASE when udhcpc is told to stop.
    bed.udhcpc(c, &["-R"]);
    let ip = bed.clients[c].wait_event(&["bound"], 0, 20).expect("lease");
    let gw = format!("{}/32", gateway_of(&ip));
    assert!(bed.cns[0].mobile_addrs().contains(&gw));
    bed.clients[c].stop_dhcp();
    assert!(
        bed.cns[0].wait_log("released", 0, 5),
        "{}",
        bed.cns[0].log_text()
    );
    let gone = wait_for(Duration::from_secs(5), || {
        (!bed.cns[0].mobile_addrs().contains(&gw)).then_some(())
    });
    assert!(
        gone.is_some(),
        "{gw} still on {MOBILE_IF} after RELEASE\n{}",
        bed.cns[0].log_text()
    );
    bed.cns[0].stop();
}
