//! The tunnel controller against a real kernel (in a fresh namespace):
//! backend choice and fallback (this kernel has no ipip module), one
//! reference-counted device per peer named from the prefix, local delivery
//! without a device, bounded table, and purge of a previous run's state.

mod common;
use common::Netns;
use std::net::Ipv4Addr;
use tmip::netlink::{Netlink, Route, TMIP_RTPROT};
use tmip::tunnel::{BackendKind, Delivery, TunnelConfig, TunnelController, TunnelError};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

#[test]
fn controller_refcounts_tunnels_and_falls_back_to_userspace() {
    let ns = Netns::new("tc");
    ns.sh("ip link add core0 type veth peer name core1 && ip link set core0 up && ip link set core1 up");
    ns.sh("ip addr add 192.168.5.1/24 dev core0");
    // Leftovers of an "earlier run": a device named with our prefix and a
    // tagged route through it.
    ns.sh("ip link add tmc7 type veth peer name old1 && ip link set tmc7 up");
    ns.sh("ip route add 10.9.0.0/30 dev tmc7 proto 84");

    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let mut cfg = TunnelConfig::new("tmc", ip("192.168.5.1"));
        cfg.max_tunnels = 2;
        let mut ctl = TunnelController::start(&mut nl, cfg).unwrap();
        assert_eq!(
            ctl.supported(),
            vec![(BackendKind::Local, 1000), (BackendKind::UserspaceIpip, 2)],
            "no ipip module here: kernel IPIP must not be listed"
        );
        assert_eq!(ctl.tunnel_backend(), BackendKind::UserspaceIpip);
        // the probe device did not stay behind
        assert!(nl.links().unwrap().iter().all(|l| !l.name.ends_with("pr")));

        let rep = ctl.purge_stale(&mut nl, &[], &[]).unwrap();
        assert_eq!((rep.links, rep.routes), (1, 1));
        assert!(nl.link_by_name("tmc7").is_err());

        // local delivery: no device
        assert_eq!(
            ctl.acquire(&mut nl, ip("192.168.5.1")).unwrap(),
            Delivery::Local
        );
        ctl.release(&mut nl, ip("192.168.5.1")).unwrap();

        // first station via peer .2 creates tmc0; the second reuses it
        let d1 = ctl.acquire(&mut nl, ip("192.168.5.2")).unwrap();
        let Delivery::Tunnel {
            name,
            ifindex,
            new_poll_fd,
        } = d1
        else {
            panic!("{d1:?}")
        };
        assert_eq!(name, "tmc0");
        assert!(new_poll_fd.is_some());
        let link = nl.link_by_name("tmc0").unwrap();
        assert_eq!((link.index, link.mtu, link.is_up()), (ifindex, 1480, true));
        let d2 = ctl.acquire(&mut nl, ip("192.168.5.2")).unwrap();
        assert_eq!(
            d2,
            Delivery::Tunnel {
                name: "tmc0".into(),
                ifindex,
                new_poll_fd: None
            }
        );
        assert_eq!(ctl.tunnel(ip("192.168.5.2")).unwrap().refs, 2);
        assert_eq!(ctl.poll_fds().len(), 2, "raw socket + one TUN");

        // a route into it, as tmipd's handover would add
        let mut r = Route::new(ip("10.1.0.4"), 30, TMIP_RTPROT);
        r.oif = Some(ifindex);
        r.scope = 253;
        nl.add_route(&r).unwrap();

        // second peer gets the next name; a third is refused (table of 2)
        let Delivery::Tunnel { name, .. } = ctl.acquire(&mut nl, ip("192.168.5.3")).unwrap() else {
            panic!()
        };
        assert_eq!(name, "tmc1");
        assert!(matches!(
            ctl.acquire(&mut nl, ip("192.168.5.4")),
            Err(TunnelError::Full(2))
        ));

        // releasing: the device stays until its last station goes
        assert_eq!(ctl.release(&mut nl, ip("192.168.5.2")).unwrap(), None);
        assert!(nl.link_by_name("tmc0").is_ok());
        let gone_fd = ctl.release(&mut nl, ip("192.168.5.2")).unwrap();
        assert!(gone_fd.is_some(), "the poll loop must forget the TUN fd");
        assert!(nl.link_by_name("tmc0").is_err());
        assert!(nl
            .routes(Some(254))
            .unwrap()
            .iter()
            .all(|r| r.protocol != TMIP_RTPROT));
        assert!(matches!(
            ctl.release(&mut nl, ip("192.168.5.2")),
            Err(TunnelError::NotFound(_))
        ));

        // the freed name is reused; shutdown removes everything
        let Delivery::Tunnel { name, .. } = ctl.acquire(&mut nl, ip("192.168.5.9")).unwrap() else {
            panic!()
        };
        assert_eq!(name, "tmc0");
        ctl.shutdown(&mut nl);
        assert!(nl
            .links()
            .unwrap()
            .iter()
            .all(|l| !l.name.starts_with("tmc")));
    });
}

#[test]
fn a_prefix_too_long_for_interface_names_is_refused() {
    let ns = Netns::new("tc");
    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let e = TunnelController::start(
            &mut nl,
            TunnelConfig::new("averylongprefix", ip("127.0.0.1")),
        );
        assert!(matches!(e, Err(TunnelError::NameTooLong(_))));
    });
}
