use super::*;
use crate::dhcp::wire::tests::capture;
use crate::dhcp::wire::MessageType as Mt;
use crate::wire::UdpChecksum;

const CN_MAC: MacAddr = MacAddr([0x02, 0xc0, 0, 0, 0, 0x01]);
const MS: MacAddr = MacAddr([0x02, 0x5a, 0, 0, 0, 0x07]);
const RELAY_MAC: MacAddr = MacAddr([0x02, 0x77, 0, 0, 0, 0x01]);

fn cell() -> Cell30 {
    Cell30::from_network(Ipv4Addr::new(10, 13, 102, 4)).unwrap()
}

fn lease(secs: u32) -> Result<Lease, LookupError> {
    Ok(Lease {
        cell: cell(),
        lease_secs: secs,
    })
}

fn config() -> DhcpConfig {
    DhcpConfig {
        dns: vec![Ipv4Addr::new(192, 0, 2, 53), Ipv4Addr::new(192, 0, 2, 54)],
        domain: Some("tmip.example".into()),
        static_routes: vec![(Ipv4Addr::new(172, 16, 0, 0), 12, Ipv4Addr::UNSPECIFIED)],
        lease_time: 3600,
    }
}

fn server() -> DhcpServer {
    DhcpServer::new(config(), CN_MAC)
}

/// A client message in a frame from MS, broadcast unless `to` is given.
fn client_frame(r: &Repr<'_>, src_ip: Ipv4Addr, to: Option<(MacAddr, Ipv4Addr)>) -> Vec<u8> {
    let payload = r.to_vec().unwrap();
    let (dst_mac, dst_ip) = to.unwrap_or((MacAddr::BROADCAST, Ipv4Addr::BROADCAST));
    UdpFrame {
        src_mac: MS,
        dst_mac,
        src_ip,
        dst_ip,
        src_port: 68,
        dst_port: 67,
        payload: &payload,
    }
    .to_vec()
    .unwrap()
}

fn discover<'a>() -> Repr<'a> {
    let mut r = Repr::new(Mt::Discover, 0x1234, MS);
    r.parameter_request_list = Some(&[1, 3, 6, 15, 121]);
    r.hostname = Some(b"phone");
    r.client_identifier = Some(&[1, 0x02, 0x5a, 0, 0, 0, 0x07]);
    r
}

fn selecting<'a>() -> Repr<'a> {
    let mut r = Repr::new(Mt::Request, 0x1234, MS);
    r.requested_ip = Some(cell().station());
    r.server_identifier = Some(cell().gateway());
    r.parameter_request_list = Some(&[1, 3, 6, 15, 121]);
    r
}

struct Sent {
    dst_mac: MacAddr,
    src_ip: Ipv4Addr,
    dst_ip: Ipv4Addr,
    dst_port: u16,
    msg: Repr<'static>,
}

/// Parse a reply frame completely (leaks the bytes: tests only).
fn sent(a: Action) -> Sent {
    let Action::Send(reply) = a else {
        panic!("expected Send, got {a:?}")
    };
    let bytes: &'static [u8] = Box::leak(reply.frame.into_boxed_slice());
    let f = UdpFrame::parse(bytes).expect("reply frame parses with checksums");
    assert_eq!(f.src_mac, CN_MAC);
    assert_eq!(f.dst_mac, reply.dst_mac);
    assert_eq!(f.src_port, 67);
    let msg = Repr::parse_bytes(f.payload).expect("reply parses");
    assert_eq!(msg.message_type, reply.message_type);
    assert_eq!(msg.client_hardware_addr, reply.client);
    Sent {
        dst_mac: f.dst_mac,
        src_ip: f.src_ip,
        dst_ip: f.dst_ip,
        dst_port: f.dst_port,
        msg,
    }
}

#[test]
fn discover_asks_for_allocation_then_offers_the_station_address() {
    let mut s = server();
    let t = Instant::now();
    let a = s
        .handle_frame(&client_frame(&discover(), Ipv4Addr::UNSPECIFIED, None), t)
        .unwrap();
    assert_eq!(
        a,
        Some(Action::Lookup {
            mac: MS,
            kind: LookupKind::Allocate,
            requested_ip: None,
            hostname: Some("phone".into()),
            relayed: false,
        })
    );
    assert_eq!(s.pending_len(), 1);
    let o = sent(s.binding_ready(MS, lease(86400), t).unwrap());
    assert_eq!(s.pending_len(), 0);
    // No broadcast flag, no ciaddr: unicast to chaddr / yiaddr.
    assert_eq!(o.dst_mac, MS);
    assert_eq!(o.dst_ip, cell().station());
    assert_eq!(o.src_ip, cell().gateway());
    assert_eq!(o.dst_port, 68);
    let m = o.msg;
    assert_eq!(m.message_type, Mt::Offer);
    assert_eq!(m.transaction_id, 0x1234);
    assert_eq!(m.your_ip, Ipv4Addr::new(10, 13, 102, 5));
    assert_eq!(m.server_identifier, Some(Ipv4Addr::new(10, 13, 102, 6)));
    assert_eq!(m.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 252)));
    assert_eq!(m.routers.as_slice(), &[Ipv4Addr::new(10, 13, 102, 6)]);
    // MLR has a day left; config caps at an hour. T1 1/2, T2 7/8.
    assert_eq!(m.lease_time, Some(3600));
    assert_eq!(m.renewal_time, Some(1800));
    assert_eq!(m.rebinding_time, Some(3150));
    assert_eq!(m.dns_servers.len(), 2);
    assert_eq!(m.domain_name, Some(&b"tmip.example"[..]));
    assert_eq!(
        m.client_identifier,
        Some(&[1u8, 0x02, 0x5a, 0, 0, 0, 7][..])
    );
    // 121: the configured route via N+2 (gateway 0.0.0.0 in config) and the default route.
    let gw = cell().gateway();
    assert_eq!(
        m.classless_routes.unwrap().as_slice(),
        &[
            Route {
                net: Ipv4Addr::new(172, 16, 0, 0),
                len: 12,
                gw
            },
            Route {
                net: Ipv4Addr::UNSPECIFIED,
                len: 0,
                gw
            },
        ]
    );
    assert_eq!(m.ms_classless_routes, None, "249 only when asked");
}

#[test]
fn real_udhcpc_discover_yields_lookup() {
    let frame = capture(include_str!("../testdata/udhcpc_discover.hex"));
    let mut s = server();
    let a = s.handle_frame(&frame, Instant::now()).unwrap().unwrap();
    assert!(matches!(
        a,
        Action::Lookup { kind: LookupKind::Allocate, hostname: Some(ref h), .. } if h == "ms1"
    ));
}

#[test]
fn broadcast_flag_gets_broadcast_reply() {
    let mut s = server();
    let t = Instant::now();
    let mut d = discover();
    d.broadcast = true;
    s.handle_message(&d, MS, false, t).unwrap();
    let o = sent(s.binding_ready(MS, lease(600), t).unwrap());
    assert_eq!(o.dst_mac, MacAddr::BROADCAST);
    assert_eq!(o.dst_ip, Ipv4Addr::BROADCAST);
    assert!(o.msg.broadcast);
    assert_eq!(
        o.msg.lease_time,
        Some(600),
        "MLR's remaining time below the cap"
    );
    assert_eq!(o.msg.renewal_time, Some(300));
    assert_eq!(o.msg.rebinding_time, Some(525));
}

#[test]
fn selecting_request_is_acked() {
    let mut s = server();
    let t = Instant::now();
    let a = s.handle_message(&selecting(), MS, false, t).unwrap();
    assert_eq!(
        a,
        Some(Action::Lookup {
            mac: MS,
            kind: LookupKind::Locate,
            requested_ip: Some(cell().station()),
            hostname: None,
            relayed: false,
        })
    );
    let ack = sent(s.binding_ready(MS, lease(3000), t).unwrap());
    assert_eq!(ack.msg.message_type, Mt::Ack);
    assert_eq!(ack.msg.your_ip, cell().station());
    assert_eq!(ack.dst_ip, cell().station());
    assert_eq!(ack.msg.lease_time, Some(3000));
}

#[test]
fn request_for_someone_elses_address_is_naked() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Request, 9, MS);
    r.requested_ip = Some(Ipv4Addr::new(10, 13, 102, 9)); // INIT-REBOOT, wrong cell
    s.handle_message(&r, MS, false, t).unwrap();
    let nak = sent(s.binding_ready(MS, lease(3000), t).unwrap());
    assert_eq!(nak.msg.message_type, Mt::Nak);
    assert_eq!(nak.dst_mac, MacAddr::BROADCAST, "NAKs are broadcast");
    assert_eq!(nak.dst_ip, Ipv4Addr::BROADCAST);
    assert_eq!(nak.msg.your_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(nak.msg.lease_time, None);
    // Server id is N+2 of the cell the client believes in.
    assert_eq!(
        nak.msg.server_identifier,
        Some(Ipv4Addr::new(10, 13, 102, 10))
    );
    assert!(nak.msg.message.is_some());
}

#[test]
fn request_for_n_plus_2_is_naked() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Request, 9, MS);
    r.requested_ip = Some(cell().gateway());
    s.handle_message(&r, MS, false, t).unwrap();
    let nak = sent(s.binding_ready(MS, lease(3000), t).unwrap());
    assert_eq!(nak.msg.message_type, Mt::Nak);
}

#[test]
fn unknown_binding_is_naked_and_unavailable_mlr_is_silent() {
    let mut s = server();
    let t = Instant::now();
    s.handle_message(&selecting(), MS, false, t).unwrap();
    let nak = sent(s.binding_ready(MS, Err(LookupError::NotFound), t).unwrap());
    assert_eq!(nak.msg.message_type, Mt::Nak);

    s.handle_message(&selecting(), MS, false, t).unwrap();
    let zero = sent(s.binding_ready(MS, lease(0), t).unwrap());
    assert_eq!(
        zero.msg.message_type,
        Mt::Nak,
        "an expired binding is no binding"
    );

    s.handle_message(&selecting(), MS, false, t).unwrap();
    let e = s
        .binding_ready(
            MS,
            Err(LookupError::Unavailable("MLR unreachable".into())),
            t,
        )
        .unwrap_err();
    assert!(matches!(e, Error::Ignored(_)));
    assert_eq!(s.pending_len(), 0);

    s.handle_message(&discover(), MS, false, t).unwrap();
    assert!(
        s.binding_ready(MS, Err(LookupError::NotFound), t).is_err(),
        "no NAK to DISCOVER"
    );
}

#[test]
fn renewing_is_unicast_to_ciaddr() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Request, 77, MS);
    r.client_ip = cell().station();
    let f = client_frame(&r, cell().station(), Some((CN_MAC, cell().gateway())));
    let a = s.handle_frame(&f, t).unwrap();
    assert!(matches!(
        a,
        Some(Action::Lookup { kind: LookupKind::Locate, requested_ip: Some(ip), .. }) if ip == cell().station()
    ));
    let ack = sent(s.binding_ready(MS, lease(3600), t).unwrap());
    assert_eq!(ack.msg.message_type, Mt::Ack);
    assert_eq!(ack.dst_mac, MS);
    assert_eq!(ack.dst_ip, cell().station());
    assert_eq!(ack.msg.client_ip, cell().station());
    assert_eq!(ack.msg.your_ip, cell().station());
}

#[test]
fn rebinding_broadcast_is_acked_to_ciaddr() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Request, 78, MS);
    r.client_ip = cell().station();
    let f = client_frame(&r, cell().station(), None);
    s.handle_frame(&f, t).unwrap().unwrap();
    let ack = sent(s.binding_ready(MS, lease(3600), t).unwrap());
    assert_eq!(ack.msg.message_type, Mt::Ack);
    assert_eq!(ack.dst_ip, cell().station());
}

#[test]
fn renewal_of_a_moved_binding_is_naked() {
    // The client renews 10.13.102.5 but the MLR now says another cell.
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Request, 79, MS);
    r.client_ip = cell().station();
    s.handle_message(&r, MS, true, t).unwrap();
    let other = Cell30::from_network(Ipv4Addr::new(10, 13, 102, 8)).unwrap();
    let a = s
        .binding_ready(
            MS,
            Ok(Lease {
                cell: other,
                lease_secs: 100,
            }),
            t,
        )
        .unwrap();
    let nak = sent(a);
    assert_eq!(nak.msg.message_type, Mt::Nak);
    assert_eq!(nak.src_ip, cell().gateway());
}

#[test]
fn request_selecting_another_server_is_ignored_without_lookup() {
    let mut s = server();
    let t = Instant::now();
    s.handle_message(&discover(), MS, false, t).unwrap();
    let mut r = selecting();
    r.server_identifier = Some(Ipv4Addr::new(192, 168, 1, 1));
    assert_eq!(
        s.handle_message(&r, MS, false, t),
        Err(Error::Ignored("client chose another server"))
    );
    assert_eq!(
        s.pending_len(),
        0,
        "the offer's pending entry is dropped too"
    );
}

#[test]
fn release_and_decline_become_actions() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Release, 5, MS);
    r.client_ip = cell().station();
    r.server_identifier = Some(cell().gateway());
    assert_eq!(
        s.handle_message(&r, MS, true, t),
        Ok(Some(Action::Release {
            mac: MS,
            cell: cell()
        }))
    );
    r.client_ip = cell().broadcast();
    assert!(matches!(
        s.handle_message(&r, MS, true, t),
        Err(Error::Ignored(_))
    ));
    r.client_ip = cell().station();
    r.server_identifier = Some(Ipv4Addr::new(1, 1, 1, 1));
    assert!(matches!(
        s.handle_message(&r, MS, true, t),
        Err(Error::Ignored(_))
    ));

    let mut d = Repr::new(Mt::Decline, 6, MS);
    d.requested_ip = Some(cell().station());
    d.server_identifier = Some(cell().gateway());
    s.handle_message(&selecting(), MS, false, t).unwrap();
    assert_eq!(
        s.handle_message(&d, MS, false, t),
        Ok(Some(Action::Decline {
            mac: MS,
            ip: Some(cell().station())
        }))
    );
    assert_eq!(s.pending_len(), 0);
}

#[test]
fn inform_is_answered_at_once_without_address_or_lease() {
    let mut s = server();
    let t = Instant::now();
    let mut r = Repr::new(Mt::Inform, 8, MS);
    r.client_ip = cell().station();
    r.parameter_request_list = Some(&[1, 3, 6]);
    let a = s
        .handle_frame(
            &client_frame(&r, cell().station(), Some((CN_MAC, cell().gateway()))),
            t,
        )
        .unwrap()
        .unwrap();
    let ack = sent(a);
    assert_eq!(ack.msg.message_type, Mt::Ack);
    assert_eq!(ack.msg.your_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(ack.msg.client_ip, cell().station());
    assert_eq!(ack.msg.lease_time, None);
    assert_eq!(ack.msg.renewal_time, None);
    assert_eq!(ack.msg.routers.as_slice(), &[cell().gateway()]);
    assert_eq!(ack.msg.dns_servers.len(), 2);
    assert_eq!(ack.msg.domain_name, None, "15 was not asked for");
    assert_eq!(ack.msg.classless_routes, None, "121 was not asked for");
    assert_eq!(ack.dst_ip, cell().station());
    assert_eq!(s.pending_len(), 0);
    r.client_ip = cell().gateway();
    assert!(matches!(
        s.handle_message(&r, MS, true, t),
        Err(Error::Ignored(_))
    ));
}

#[test]
fn parameter_list_selects_options() {
    let t = Instant::now();
    let offer_for = |params: Option<&'static [u8]>| {
        let mut s = server();
        let mut d = discover();
        d.parameter_request_list = params;
        s.handle_message(&d, MS, false, t).unwrap();
        sent(s.binding_ready(MS, lease(600), t).unwrap()).msg
    };
    let m = offer_for(Some(&[1, 3]));
    assert!(m.dns_servers.is_empty() && m.domain_name.is_none() && m.classless_routes.is_none());
    // Mandatory ones are there regardless.
    assert!(m.subnet_mask.is_some() && !m.routers.is_empty() && m.lease_time.is_some());
    assert!(m.server_identifier.is_some());
    let m = offer_for(None);
    assert!(!m.dns_servers.is_empty() && m.domain_name.is_some() && m.classless_routes.is_some());
    assert!(m.ms_classless_routes.is_none());
    let m = offer_for(Some(&[1, 3, 249]));
    assert!(m.ms_classless_routes.is_some() && m.classless_routes.is_none());
}

#[test]
fn no_static_routes_means_no_121() {
    let mut s = DhcpServer::new(DhcpConfig::default(), CN_MAC);
    let t = Instant::now();
    s.handle_message(&discover(), MS, false, t).unwrap();
    let m = sent(s.binding_ready(MS, lease(600), t).unwrap()).msg;
    assert!(m.classless_routes.is_none());
    assert!(m.dns_servers.is_empty());
    assert_eq!(m.lease_time, Some(600));
}

#[test]
fn max_message_size_drops_routes_first() {
    let mut cfg = config();
    cfg.static_routes = (0..15)
        .map(|i| (Ipv4Addr::new(172, 16, i, 0), 24, Ipv4Addr::UNSPECIFIED))
        .collect();
    cfg.domain = Some("d".repeat(200));
    let mut s = DhcpServer::new(cfg, CN_MAC);
    let t = Instant::now();
    let mut d = discover();
    d.max_size = Some(576);
    s.handle_message(&d, MS, false, t).unwrap();
    let Action::Send(reply) = s.binding_ready(MS, lease(600), t).unwrap() else {
        panic!()
    };
    assert!(
        reply.frame.len() - 14 <= 576,
        "IP datagram within option 57"
    );
    let m = sent(Action::Send(reply)).msg;
    assert!(m.classless_routes.is_none(), "121 dropped to fit");
    assert!(m.domain_name.is_some(), "the rest still fits");
    // With room, everything goes.
    d.max_size = Some(1500);
    s.handle_message(&d, MS, false, t).unwrap();
    let m = sent(s.binding_ready(MS, lease(600), t).unwrap()).msg;
    assert_eq!(m.classless_routes.unwrap().len(), 16);
}

#[test]
fn relayed_request_goes_back_to_the_relay() {
    let mut s = server();
    let t = Instant::now();
    let mut d = discover();
    d.relay_agent_ip = Ipv4Addr::new(10, 99, 0, 1);
    s.handle_message(&d, RELAY_MAC, true, t).unwrap();
    let o = sent(s.binding_ready(MS, lease(600), t).unwrap());
    assert_eq!(o.dst_mac, RELAY_MAC);
    assert_eq!(o.dst_ip, Ipv4Addr::new(10, 99, 0, 1));
    assert_eq!(o.dst_port, 67);
    assert_eq!(o.msg.relay_agent_ip, Ipv4Addr::new(10, 99, 0, 1));
}

#[test]
fn full_table_refuses_newcomers_until_entries_expire() {
    let mut s = DhcpServer::with_capacity(config(), CN_MAC, 2);
    let t = Instant::now();
    for i in 1..=2u8 {
        let mut d = discover();
        d.client_hardware_addr = MacAddr([2, 0, 0, 0, 1, i]);
        let src = d.client_hardware_addr;
        assert!(s.handle_message(&d, src, false, t).unwrap().is_some());
    }
    let mut d = discover();
    d.client_hardware_addr = MacAddr([2, 0, 0, 0, 1, 3]);
    assert_eq!(
        s.handle_message(&d, d.client_hardware_addr, false, t),
        Err(Error::TableFull(MacAddr([2, 0, 0, 0, 1, 3])))
    );
    // A known MAC still gets through (its entry is replaced).
    let mut again = discover();
    again.client_hardware_addr = MacAddr([2, 0, 0, 0, 1, 1]);
    again.transaction_id = 99;
    assert!(s
        .handle_message(&again, again.client_hardware_addr, false, t)
        .is_ok());
    let later = t + PENDING_TTL + Duration::from_secs(1);
    assert!(s
        .handle_message(&d, d.client_hardware_addr, false, later)
        .unwrap()
        .is_some());
    assert_eq!(s.pending_len(), 1);
}

#[test]
fn retransmission_does_not_repeat_the_lookup_but_answers_the_newest_xid() {
    let mut s = server();
    let t = Instant::now();
    assert!(s
        .handle_message(&discover(), MS, false, t)
        .unwrap()
        .is_some());
    let mut d2 = discover();
    d2.transaction_id = 0x5678;
    assert_eq!(
        s.handle_message(&d2, MS, false, t + Duration::from_secs(1)),
        Ok(None)
    );
    assert!(s
        .handle_message(&d2, MS, false, t + LOOKUP_RETRY + Duration::from_secs(1))
        .unwrap()
        .is_some());
    // Moving on to REQUEST changes the lookup kind: asked at once.
    let mut r = selecting();
    r.transaction_id = 0x5678;
    assert!(s
        .handle_message(&r, MS, false, t + Duration::from_secs(5))
        .unwrap()
        .is_some());
    let ack = sent(
        s.binding_ready(MS, lease(600), t + Duration::from_secs(5))
            .unwrap(),
    );
    assert_eq!(ack.msg.transaction_id, 0x5678);
    assert_eq!(ack.msg.message_type, Mt::Ack);
}

#[test]
fn late_answers_are_refused() {
    let mut s = server();
    let t = Instant::now();
    assert_eq!(
        s.binding_ready(MS, lease(600), t),
        Err(Error::NoPending(MS))
    );
    s.handle_message(&discover(), MS, false, t).unwrap();
    let late = t + PENDING_TTL + Duration::from_secs(1);
    assert_eq!(
        s.binding_ready(MS, lease(600), late),
        Err(Error::NoPending(MS))
    );
}

#[test]
fn replies_and_non_station_macs_are_ignored() {
    let mut s = server();
    let t = Instant::now();
    let o = Repr::new(Mt::Offer, 1, MS);
    assert!(matches!(
        s.handle_message(&o, MS, false, t),
        Err(Error::Ignored(_))
    ));
    let mut d = discover();
    d.client_hardware_addr = MacAddr::BROADCAST;
    assert!(matches!(
        s.handle_message(&d, MS, false, t),
        Err(Error::Ignored(_))
    ));
    d.client_hardware_addr = MacAddr::ZERO;
    assert!(matches!(
        s.handle_message(&d, MS, false, t),
        Err(Error::Ignored(_))
    ));
    let mut r = Repr::new(Mt::Request, 1, MS);
    r.parameter_request_list = Some(&[1]);
    assert!(matches!(
        s.handle_message(&r, MS, false, t),
        Err(Error::Ignored(_))
    ));
}

#[test]
fn malformed_frames_are_errors() {
    let mut s = server();
    let t = Instant::now();
    let good = client_frame(&discover(), Ipv4Addr::UNSPECIFIED, None);
    for n in 0..good.len() - 60 {
        assert!(s.handle_frame(&good[..n], t).is_err(), "len {n}");
    }
    let mut bad_magic = good.clone();
    bad_magic[42 + 236] ^= 1;
    // UDP checksum is skipped, so the DHCP layer sees the bad cookie.
    assert_eq!(
        s.handle_frame(&bad_magic, t),
        Err(Error::Message(dhcp_wire::Error::BadMagic))
    );
    let mut wrong_port = good.clone();
    wrong_port[36..38].copy_from_slice(&68u16.to_be_bytes());
    assert!(matches!(
        s.handle_frame(&wrong_port, t),
        Err(Error::Ignored(_))
    ));
    assert_eq!(s.pending_len(), 0);
}

/// Fixed-seed fuzz through the whole server: random frames and mutated
/// client frames never panic, and whatever is answered is well formed.
#[test]
fn fuzz_frames_never_panic() {
    let mut x: u64 = 0x0dd_c0ffee;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    let mut s = DhcpServer::with_capacity(config(), CN_MAC, 8);
    let t = Instant::now();
    let seeds = [
        client_frame(&discover(), Ipv4Addr::UNSPECIFIED, None),
        client_frame(&selecting(), Ipv4Addr::UNSPECIFIED, None),
    ];
    let mut lookups = 0;
    for i in 0..20_000u32 {
        let f: Vec<u8> = if i % 4 == 0 {
            (0..(rnd() % 400) as usize).map(|_| rnd() as u8).collect()
        } else {
            let mut f = seeds[(i % 2) as usize].clone();
            for _ in 0..1 + rnd() % 4 {
                // Mutate mostly the DHCP part, sometimes the headers.
                let at = if rnd() % 4 == 0 {
                    rnd() as usize % 42
                } else {
                    42 + rnd() as usize % (f.len() - 42)
                };
                f[at] = rnd() as u8;
            }
            f
        };
        let now = t + Duration::from_millis(u64::from(i));
        if let Ok(Some(Action::Lookup { mac, .. })) = s.handle_frame(&f, now) {
            lookups += 1;
            if let Ok(Action::Send(r)) = s.binding_ready(mac, lease(600), now) {
                UdpFrame::parse(&r.frame).unwrap();
            }
        }
    }
    assert!(
        lookups > 100,
        "some mutated frames are still valid ({lookups})"
    );
}

/// Real client frames captured on the server's veth (tcpdump -xx): the
/// server must take each for what it is.
#[test]
fn real_dhclient_and_dhcpcd_frames() {
    let ms = MacAddr([0x02, 0x5a, 0, 0, 0, 0x07]);
    let n1 = Ipv4Addr::new(10, 50, 0, 1);
    let cell = Cell30::containing(n1);
    let t = Instant::now();
    for client in ["dhclient", "dhcpcd"] {
        let file = |name: &str| {
            let text = match (client, name) {
                ("dhclient", "discover") => include_str!("../testdata/dhclient_discover.hex"),
                ("dhclient", "request") => include_str!("../testdata/dhclient_request.hex"),
                ("dhclient", "renew") => include_str!("../testdata/dhclient_renew.hex"),
                ("dhcpcd", "discover") => include_str!("../testdata/dhcpcd_discover.hex"),
                ("dhcpcd", "request") => include_str!("../testdata/dhcpcd_request.hex"),
                _ => include_str!("../testdata/dhcpcd_renew.hex"),
            };
            capture(text)
        };
        let mut s = server();
        let a = s.handle_frame(&file("discover"), t).unwrap();
        assert!(
            matches!(a, Some(Action::Lookup { mac, kind: LookupKind::Allocate, .. }) if mac == ms),
            "{client} discover: {a:?}"
        );
        let lease = Ok(Lease {
            cell,
            lease_secs: 6,
        });
        let offer = sent(s.binding_ready(ms, lease.clone(), t).unwrap());
        assert_eq!(offer.msg.your_ip, n1);

        let a = s.handle_frame(&file("request"), t).unwrap();
        assert!(
            matches!(a, Some(Action::Lookup { kind: LookupKind::Locate, requested_ip: Some(ip), .. }) if ip == n1),
            "{client} request: {a:?}"
        );
        let ack = sent(s.binding_ready(ms, lease.clone(), t).unwrap());
        assert_eq!(ack.msg.message_type, Mt::Ack, "{client}");

        // The renewal is unicast from N+1 to N+2 by the client's kernel.
        let renew = file("renew");
        let f = UdpFrame::parse_with(&renew, UdpChecksum::Skip).unwrap();
        assert_eq!((f.src_ip, f.dst_ip), (n1, cell.gateway()), "{client}");
        let a = s.handle_frame(&renew, t).unwrap();
        assert!(
            matches!(a, Some(Action::Lookup { kind: LookupKind::Locate, requested_ip: Some(ip), .. }) if ip == n1),
            "{client} renew: {a:?}"
        );
        let ack = sent(s.binding_ready(ms, lease, t).unwrap());
        assert_eq!(ack.msg.message_type, Mt::Ack);
        assert_eq!(
            (ack.dst_mac, ack.dst_ip),
            (ms, n1),
            "{client}: renewal ACK is unicast"
        );
    }
}

/// A veth renewal from a local UDP socket carries only the pseudo-header
/// sum in its UDP checksum: strict verification would drop every renewal.
#[test]
fn renewal_with_offloaded_checksum_is_accepted() {
    let renew = capture(include_str!("../testdata/dhclient_renew.hex"));
    assert_eq!(
        UdpFrame::parse(&renew).unwrap_err(),
        crate::wire::Error::Checksum,
        "the captured renewal has a partial checksum"
    );
    let mut s = server();
    assert!(s.handle_frame(&renew, Instant::now()).unwrap().is_some());
}

/// Finding 1/2 of issue 8: a station speaking for another (chaddr not its
/// Ethernet source, no relay) is dropped and counted; nothing is looked up
/// or released.
#[test]
fn forged_chaddr_is_dropped_and_counted() {
    let mut s = server();
    let t = Instant::now();
    let attacker = MacAddr([0x02, 0x66, 0, 0, 0, 0x66]);
    let mut req = selecting();
    req.client_hardware_addr = MS;
    assert_eq!(
        s.handle_message(&req, attacker, false, t),
        Err(Error::ForgedClient {
            chaddr: MS,
            src: attacker,
            logged: true
        })
    );
    let mut rel = Repr::new(Mt::Release, 7, MS);
    rel.client_ip = cell().station();
    // Within the same interval: counted, not logged (nor reported).
    assert!(matches!(
        s.handle_message(&rel, attacker, true, t),
        Err(Error::ForgedClient { logged: false, .. })
    ));
    assert_eq!(s.forged(), 2);
    assert_eq!(s.pending_len(), 0);
    // From the station itself: a release of its own cell.
    assert_eq!(
        s.handle_message(&rel, MS, true, t),
        Ok(Some(Action::Release {
            mac: MS,
            cell: cell()
        }))
    );
}

/// Through a relay the sender cannot be checked: a lookup is marked
/// `relayed` (the CN will not move a station on it), RELEASE and DECLINE
/// are ignored.
#[test]
fn relayed_messages_cannot_release_and_are_marked() {
    let mut s = server();
    let t = Instant::now();
    let mut d = discover();
    d.relay_agent_ip = Ipv4Addr::new(10, 99, 0, 1);
    assert!(matches!(
        s.handle_message(&d, RELAY_MAC, false, t),
        Ok(Some(Action::Lookup { relayed: true, .. }))
    ));
    let mut rel = Repr::new(Mt::Release, 7, MS);
    rel.client_ip = cell().station();
    rel.relay_agent_ip = Ipv4Addr::new(10, 99, 0, 1);
    assert!(matches!(
        s.handle_message(&rel, RELAY_MAC, true, t),
        Err(Error::Ignored(_))
    ));
    assert_eq!(s.forged(), 0);
}
