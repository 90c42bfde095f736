//! rtnetlink against a real kernel: in a fresh namespace, add, dump and
//! delete links, addresses, routes and rules with `tmip::netlink`, check the
//! result with `ip`, then purge tagged state the way a restarted tmipd does.

mod common;
#[path = "common/kernel.rs"]
mod kernel;
use common::{sh, Netns};
use std::net::Ipv4Addr;
use tmip::netlink::{IpipParams, Netlink, NetlinkError, Route, Rule, Scope, TMIP_RTPROT};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn links_addresses_routes_rules_round_trip_and_purge() {
    let has_ipip = kernel::has_ipip();
    let ns = Netns::new("nl");
    let n = &ns.name;
    sh(&format!("ip -n {n} link add tmt0 type veth peer name mob0"));
    sh(&format!(
        "ip -n {n} link add core0 type veth peer name core1"
    ));
    sh(&format!("ip -n {n} link set core1 up"));

    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        // links: lookup, dump with kind, up/down, mtu
        let mob = nl.link_by_name("mob0").unwrap();
        assert_eq!(mob.kind, "veth");
        assert!(!mob.is_up());
        nl.set_link_up(mob.index, true).unwrap();
        let tmt = nl.link_index("tmt0").unwrap();
        nl.set_link_up(tmt, true).unwrap();
        nl.set_link_mtu(tmt, 1480).unwrap();
        let core = nl.link_index("core0").unwrap();
        nl.set_link_up(core, true).unwrap();
        assert!(matches!(
            nl.link_by_name("nosuch0"),
            Err(NetlinkError::NoSuchLink(_))
        ));
        let links = nl.links().unwrap();
        assert!(links.iter().any(|l| l.name == "lo"));
        let t = links.iter().find(|l| l.name == "tmt0").unwrap();
        assert!(t.is_up());
        assert_eq!(t.mtu, 1480);

        // addresses: a /24 on core0 (untagged, by hand) and a tagged /32 on mob0
        nl.add_address(mob.index, ip("10.1.0.6"), 32).unwrap();
        nl.add_address(core, ip("192.168.7.1"), 24).unwrap();
        let a = nl.addresses(Some(mob.index)).unwrap();
        assert_eq!(a.len(), 1);
        assert_eq!((a[0].address, a[0].prefix_len), (ip("10.1.0.6"), 32));
        assert_eq!(a[0].protocol, TMIP_RTPROT);

        // routes: host route on mob0, /30 via a gateway, a route in table 100
        let mut host = Route::new(ip("10.1.0.5"), 32, TMIP_RTPROT);
        host.oif = Some(mob.index);
        host.scope = 253;
        host.prefsrc = Some(ip("10.1.0.6"));
        nl.add_route(&host).unwrap();
        assert_eq!(nl.add_route(&host).unwrap_err().errno(), Some(libc::EEXIST));
        let mut via = Route::new(ip("10.2.0.4"), 30, TMIP_RTPROT);
        via.oif = Some(core);
        via.gateway = Some(ip("192.168.7.2"));
        nl.add_route(&via).unwrap();
        // replace: same key, now out of the tunnel device
        let mut tun = Route::new(ip("10.2.0.4"), 30, TMIP_RTPROT);
        tun.oif = Some(tmt);
        tun.scope = 253;
        nl.replace_route(&tun).unwrap();
        let mut t100 = Route::new(Ipv4Addr::UNSPECIFIED, 0, TMIP_RTPROT);
        t100.table = 100;
        t100.oif = Some(tmt);
        t100.scope = 253;
        nl.add_route(&t100).unwrap();
        let main = nl.routes(Some(254)).unwrap();
        let r = main.iter().find(|r| r.dst == ip("10.2.0.4")).unwrap();
        assert_eq!((r.dst_len, r.oif, r.protocol), (30, Some(tmt), TMIP_RTPROT));
        assert_eq!(nl.routes(Some(100)).unwrap().len(), 1);

        // rules
        let rule = Rule {
            from: Some((ip("10.1.0.4"), 30)),
            iif: Some("mob0".into()),
            table: 100,
            priority: 5100,
            protocol: TMIP_RTPROT,
            ..Rule::default()
        };
        nl.add_rule(&rule).unwrap();
        let rules = nl.rules().unwrap();
        assert!(rules.contains(&rule), "{rules:?}");

        // neighbour
        nl.add_neighbour(mob.index, ip("10.1.0.5"), [2, 0, 0, 0, 0, 9])
            .unwrap();

        // ipip: where the kernel has the module the device is made with the
        // endpoints asked for; elsewhere creation is refused with an errno
        // (EOPNOTSUPP) — the tunnel controller's fallback signal.
        let made = nl.create_ipip(&IpipParams {
            name: "tmtx".into(),
            local: ip("192.168.7.1"),
            remote: ip("192.168.7.2"),
            ttl: 64,
            pmtudisc: true,
        });
        if has_ipip {
            let index = made.unwrap();
            let l = nl.link_by_name("tmtx").unwrap();
            assert_eq!((l.index, l.kind.as_str()), (index, "ipip"), "{l:?}");
            assert_eq!(l.ipip_remote, Some(ip("192.168.7.2")));
            nl.delete_link(index).unwrap();
        } else {
            let e = made.unwrap_err();
            assert!(e.errno().is_some(), "{e}");
        }
    });

    // proxy ARP entries: ours (tagged) on mob0 and on core0 (not in the
    // purge's scope), and one made by hand on mob0 (untagged)
    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let mob = nl.link_index("mob0").unwrap();
        let core = nl.link_index("core0").unwrap();
        nl.add_proxy_neighbour(mob, ip("10.1.0.9")).unwrap();
        nl.add_proxy_neighbour(mob, ip("10.1.0.9")).unwrap(); // replace, no error
        nl.add_proxy_neighbour(core, ip("10.1.0.13")).unwrap();
        let p = nl.proxy_neighbours().unwrap();
        assert!(
            p.contains(&tmip::netlink::ProxyNeighbour {
                index: mob,
                address: ip("10.1.0.9"),
                protocol: TMIP_RTPROT
            }),
            "{p:?}"
        );
        nl.delete_proxy_neighbour(core, ip("10.1.0.13")).unwrap();
        assert!(nl.delete_proxy_neighbour(core, ip("10.1.0.13")).is_err());
    });
    sh(&format!("ip -n {n} neigh add proxy 10.1.0.17 dev mob0"));
    let proxies = sh(&format!("ip -n {n} neigh show proxy"));
    assert!(proxies.contains("10.1.0.9 dev mob0"), "{proxies}");
    assert!(!proxies.contains("10.1.0.13"), "{proxies}");

    // what `ip` sees
    let routes = sh(&format!("ip -n {n} route show proto {TMIP_RTPROT}"));
    assert!(routes.contains("10.1.0.5 dev mob0"), "{routes}");
    assert!(routes.contains("10.2.0.4/30 dev tmt0"), "{routes}");
    assert!(sh(&format!("ip -n {n} route show table 100")).contains("default dev tmt0"));
    let rules = sh(&format!("ip -n {n} rule show"));
    assert!(
        rules.contains("5100:\tfrom 10.1.0.4/30 iif mob0 lookup 100"),
        "{rules}"
    );
    let addrs = sh(&format!("ip -n {n} -4 addr show dev mob0"));
    assert!(addrs.contains("inet 10.1.0.6/32"), "{addrs}");
    // (iproute2 6.1 does not print IFA_PROTO; the dump above checked the tag.)
    let neigh = sh(&format!("ip -n {n} neigh show dev mob0"));
    assert!(
        neigh.contains("10.1.0.5 lladdr 02:00:00:00:00:09 PERMANENT"),
        "{neigh}"
    );

    // purge: the restarted daemon's view, prefix "tmt", mobile_if mob0, table 100
    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let scope = Scope {
            tunnel_prefix: "tmt",
            interfaces: &["mob0"],
            tables: &[100],
        };
        let st = nl.tagged_state(&scope).unwrap();
        assert_eq!(st.links.len(), 1);
        assert_eq!(
            st.addresses.len(),
            1,
            "core0's untagged address is not ours"
        );
        assert_eq!(st.routes.len(), 3);
        assert_eq!(st.rules.len(), 1);
        // mob0 has two proxy entries; the hand-made one is not ours.
        assert_eq!(st.proxies.len(), 1, "{:?}", st.proxies);
        assert_eq!(st.proxies[0].address, ip("10.1.0.9"));
        let rep = nl.purge(&scope).unwrap();
        assert_eq!(
            (rep.links, rep.addresses, rep.routes, rep.rules, rep.proxies),
            (1, 1, 3, 1, 1)
        );
        assert_eq!(nl.tagged_state(&scope).unwrap(), Default::default());
        // untouched: the hand-made address
        let core = nl.link_index("core0").unwrap();
        assert_eq!(nl.addresses(Some(core)).unwrap().len(), 1);
    });
    assert!(sh(&format!("ip -n {n} route show proto {TMIP_RTPROT}")).is_empty());
    assert!(!sh(&format!("ip -n {n} link")).contains("tmt0"));
    assert!(sh(&format!("ip -n {n} -4 addr show dev core0")).contains("192.168.7.1/24"));
}

/// The facts tmipd reports and resolves `addr_pool IFACE * *` with (index,
/// MAC, address, mask, broadcast) come from rtnetlink dumps and agree with
/// what `ip` set; the packet socket finds the same index and MAC.
#[test]
fn interface_facts_from_netlink_match_what_ip_set() {
    let ns = Netns::new("if");
    let n = &ns.name;
    sh(&format!(
        "ip -n {n} link add mob0 address 02:00:5e:10:00:01 type veth peer name mob1"
    ));
    // Without `brd`: the subnet's broadcast is reported. An alias with its
    // own label and a later /32 (a CN's gateway address) are not "the"
    // address, as with SIOCGIFADDR.
    sh(&format!("ip -n {n} addr add 10.20.0.1/22 dev mob0"));
    sh(&format!(
        "ip -n {n} addr add 10.20.8.1/24 dev mob0 label mob0:1"
    ));
    sh(&format!("ip -n {n} addr add 10.30.0.6/32 dev mob0"));
    sh(&format!(
        "ip -n {n} link add core0 type veth peer name core1"
    ));
    sh(&format!(
        "ip -n {n} addr add 192.168.9.2/24 brd 192.168.9.7 dev core0"
    ));
    let idx = |dev: &str| -> u32 {
        sh(&format!("ip -n {n} -o link show {dev}"))
            .split(':')
            .next()
            .and_then(|s| s.trim().parse().ok())
            .expect("ip -o link show prints the index first")
    };
    let (mob_idx, core_idx) = (idx("mob0"), idx("core0"));
    let (mob, core, lo, missing, bare, sock) = ns.run_in(|| {
        (
            tmip::cn::iface::query("mob0").unwrap(),
            tmip::cn::iface::query("core0").unwrap(),
            tmip::cn::iface::query("lo").unwrap(),
            tmip::cn::iface::query("nosuch0").unwrap_err().to_string(),
            tmip::cn::iface::query("mob1").unwrap_err().to_string(),
            tmip::packet_socket::PacketSocket::open("mob0", 0, None)
                .map(|s| (s.ifindex(), s.mac()))
                .unwrap(),
        )
    });
    assert_eq!(mob.index, mob_idx);
    assert_eq!(mob.mac.to_string(), "02:00:5e:10:00:01");
    assert_eq!((mob.ip, mob.prefix()), (ip("10.20.0.1"), 22));
    assert_eq!(
        (mob.mask, mob.broadcast),
        (ip("255.255.252.0"), ip("10.20.3.255"))
    );
    assert_eq!(core.index, core_idx);
    assert_eq!(
        (core.ip, core.broadcast),
        (ip("192.168.9.2"), ip("192.168.9.7"))
    );
    assert_eq!(
        (lo.ip, lo.prefix(), lo.mac.to_string()),
        (Ipv4Addr::LOCALHOST, 8, "00:00:00:00:00:00".to_string())
    );
    assert!(missing.contains("nosuch0: no such interface"), "{missing}");
    assert!(bare.contains("mob1: no IPv4 address"), "{bare}");
    assert_eq!(sock, (mob_idx as i32, mob.mac));
}
