//! The tunnel controller against a real kernel (in a fresh namespace):
//! backend choice (`tunnel_backend auto|kernel|userspace`, with and without
//! the ipip module: the tests branch on what the kernel offers, so they hold
//! on this build machine's kernel and on Debian's in the radio lab), one
//! reference-counted device per peer named from the prefix, local delivery
//! without a device, bounded table, and purge of a previous run's state.

mod common;
#[path = "common/kernel.rs"]
mod kernel;
use common::Netns;
use std::net::Ipv4Addr;
use tmip::netlink::{Netlink, Route, TMIP_RTPROT};
use tmip::tunnel::{
    BackendChoice, BackendKind, Delivery, TunnelConfig, TunnelController, TunnelError,
};

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

/// Nothing named with the test's prefix is left.
fn assert_no_tunnel_devices(nl: &mut Netlink) {
    let links = nl.links().unwrap();
    assert!(
        links.iter().all(|l| !l.name.starts_with("tmc")),
        "{links:?}"
    );
}

/// A namespace whose core interface `core0` holds 192.168.5.1/24.
fn core_ns() -> Netns {
    let ns = Netns::new("tc");
    ns.sh("ip link add core0 type veth peer name core1 && ip link set core0 up && ip link set core1 up");
    ns.sh("ip addr add 192.168.5.1/24 dev core0");
    ns
}

#[test]
fn forced_userspace_backend_refcounts_tunnels_and_purges_stale_state() {
    refcounts_and_purge(BackendChoice::Userspace);
}

/// Forced kernel: the same life cycle with ipip devices where the kernel
/// has them; elsewhere start-up must refuse with the reason.
#[test]
fn forced_kernel_backend_builds_ipip_devices_or_refuses_to_start() {
    if kernel::has_ipip() {
        refcounts_and_purge(BackendChoice::Kernel);
        return;
    }
    let ns = core_ns();
    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let mut cfg = TunnelConfig::new("tmc", ip("192.168.5.1"));
        cfg.backend = BackendChoice::Kernel;
        let e = TunnelController::start(&mut nl, cfg)
            .err()
            .expect("no ipip here: forced kernel must fail");
        let msg = e.to_string();
        assert!(
            matches!(e, TunnelError::NoBackend(_)) && msg.contains("tunnel_backend kernel"),
            "{msg}"
        );
        assert_no_tunnel_devices(&mut nl);
    });
}

/// Auto: kernel IPIP exactly when the kernel can make ipip devices, the
/// userspace backend listed as the fallback either way.
#[test]
fn auto_backend_prefers_kernel_ipip_where_the_kernel_has_it() {
    let has_ipip = kernel::has_ipip();
    let ns = core_ns();
    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let mut cfg = TunnelConfig::new("tmc", ip("192.168.5.1"));
        cfg.max_tunnels = 2;
        let mut ctl = TunnelController::start(&mut nl, cfg).unwrap();
        let mut want = vec![(BackendKind::Local, 1000)];
        if has_ipip {
            want.push((BackendKind::KernelIpip, 2));
        }
        want.push((BackendKind::UserspaceIpip, 2));
        assert_eq!(ctl.supported(), want);
        let kind = if has_ipip {
            BackendKind::KernelIpip
        } else {
            BackendKind::UserspaceIpip
        };
        assert_eq!(ctl.tunnel_backend(), kind);
        let Delivery::Tunnel { name, .. } = ctl.acquire(&mut nl, ip("192.168.5.2")).unwrap() else {
            panic!()
        };
        let link = nl.link_by_name(&name).unwrap();
        assert_eq!(link.kind, if has_ipip { "ipip" } else { "tun" }, "{link:?}");
        eprintln!("auto backend on this kernel: {}", kind.describe());
        ctl.shutdown(&mut nl);
    });
}

fn refcounts_and_purge(backend: BackendChoice) {
    let kernel = backend == BackendChoice::Kernel;
    let ns = core_ns();
    // Leftovers of an "earlier run": a device named with our prefix and a
    // tagged route through it.
    ns.sh("ip link add tmc7 type veth peer name old1 && ip link set tmc7 up");
    ns.sh("ip route add 10.9.0.0/30 dev tmc7 proto 84");

    ns.run_in(|| {
        let mut nl = Netlink::open().unwrap();
        let mut cfg = TunnelConfig::new("tmc", ip("192.168.5.1"));
        cfg.max_tunnels = 2;
        cfg.backend = backend;
        let mut ctl = TunnelController::start(&mut nl, cfg).unwrap();
        let kind = if kernel {
            BackendKind::KernelIpip
        } else {
            BackendKind::UserspaceIpip
        };
        assert_eq!(
            ctl.supported(),
            vec![(BackendKind::Local, 1000), (kind, 2)],
            "a forced backend lists only itself"
        );
        assert_eq!(ctl.tunnel_backend(), kind);
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
        assert_eq!(
            new_poll_fd.is_some(),
            !kernel,
            "only a TUN device is polled"
        );
        let link = nl.link_by_name("tmc0").unwrap();
        assert_eq!((link.index, link.mtu, link.is_up()), (ifindex, 1480, true));
        assert_eq!(link.kind, if kernel { "ipip" } else { "tun" });
        if kernel {
            assert_eq!(link.ipip_remote, Some(ip("192.168.5.2")));
        }
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
        assert_eq!(
            ctl.poll_fds().len(),
            if kernel { 0 } else { 2 },
            "userspace: raw socket + one TUN; kernel: nothing to poll"
        );

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
        assert_eq!(
            gone_fd.is_some(),
            !kernel,
            "the poll loop must forget a TUN fd"
        );
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
        assert_no_tunnel_devices(&mut nl);
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
