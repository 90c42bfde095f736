//! tmipd warns about IPv6 on the mobile interface (IPv6 is not mobile: a
//! dual-stack station's IPv6 sessions would break on every move), in
//! namespaces with the real daemons:
//! - a global IPv6 address on CN1's `mob0` is named at start;
//! - a router advertisement crafted with scapy (`/usr/bin/python3`) and
//!   sent by a station in CN2's cell reaches CN2's `mob0`: tmipd names its
//!   source and prefix.
//!
//! A CN without either stays silent about IPv6 (CN2 before the RA).
use std::time::Duration;
use tmip_testbed::bed::*;

const WARN_ADDR: &str = "has the global IPv6 address 2001:db8:1::1/64";
const WARN_RA: &str = "router advertisement on mobile_if mob0 from fe80::";

#[test]
fn tmipd_warns_about_a_global_ipv6_address_and_router_advertisements_on_mobile_if() {
    let mut bed = TestBed::with_cns(2);
    bed.cns[0]
        .ns
        .sh("ip -6 addr add 2001:db8:1::1/64 dev mob0 nodad");
    let i = bed.add_client(2);
    bed.start_all();
    assert!(
        bed.cns[0].wait_log(WARN_ADDR, 0, 5),
        "CN1 did not warn:\n{}",
        bed.cns[0].log_text()
    );
    assert!(bed.cns[0].log_text().contains("docs/OPENWRT.md"));
    let cn2 = bed.cns[1].log_text();
    assert!(!cn2.contains("IPv6"), "CN2 has no IPv6 yet warned:\n{cn2}");

    // A router advertisement from the station's side of CN2's cell.
    let ms = &bed.clients[i].ns;
    let ifname = bed.clients[i].ifname.clone();
    let script = format!(
        "from scapy.all import *\n\
         conf.verb = 0\n\
         ra = (Ether(src=get_if_hwaddr('{ifname}'), dst='33:33:00:00:00:01') / IPv6(src='fe80::99', dst='ff02::1', hlim=255)\n\
               / ICMPv6ND_RA(routerlifetime=1800)\n\
               / ICMPv6NDOptPrefixInfo(prefix='2001:db8:77::', prefixlen=64))\n\
         for _ in range(3):\n\
         \x20   sendp(ra, iface='{ifname}')\n"
    );
    let path = bed.dir.join("ra.py");
    std::fs::write(&path, script).expect("write ra.py");
    let out = ms.sh_out(&format!("/usr/bin/python3 {}", path.display()));
    assert!(out.status.success(), "scapy: {out:?}");
    let warned = bed.cns[1].wait_log(WARN_RA, 0, 5);
    let log = bed.cns[1].log_text();
    assert!(
        warned,
        "CN2 did not warn about the RA:\n{log}\n{}",
        bed.cns[1]
            .ns
            .sh("ip -6 addr show dev mob0; ip -6 maddr show dev mob0; sysctl net.ipv6.conf.mob0.disable_ipv6")
    );
    assert!(log.contains("fe80::99"), "{log}");
    assert!(log.contains("prefix 2001:db8:77::/64"), "{log}");
    // Once, not per advertisement.
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        bed.cns[1].log_text().matches(WARN_RA).count(),
        1,
        "{}",
        bed.cns[1].log_text()
    );
}
