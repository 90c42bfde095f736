//! Byte-level tests: every request builder against bytes written out by hand
//! (x86/aarch64 little-endian host order, as the kernel reads them), and the
//! parsers against hand-written kernel replies and truncations.

use super::message::*;
#[cfg_attr(target_endian = "big", allow(unused_imports))]
use super::TMIP_RTPROT;
use std::net::Ipv4Addr;

fn ip(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn new_ipip_link_matches_hand_written_bytes() {
    let p = IpipParams {
        name: "tmip0".into(),
        local: ip(10, 0, 0, 1),
        remote: ip(10, 0, 0, 2),
        ttl: 64,
        pmtudisc: true,
    };
    let expected: Vec<u8> = vec![
        0x60, 0, 0, 0,  16, 0,  0x05, 0x06,  1, 0, 0, 0,  0, 0, 0, 0, // nlmsghdr: len 96, RTM_NEWLINK, REQUEST|ACK|EXCL|CREATE, seq 1
        0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,            // ifinfomsg: all zero
        10, 0, 3, 0,  b't', b'm', b'i', b'p', b'0', 0, 0, 0,           // IFLA_IFNAME "tmip0\0" + pad
        52, 0, 18, 0,                                                  // IFLA_LINKINFO (52)
          9, 0, 1, 0,  b'i', b'p', b'i', b'p', 0, 0, 0, 0,             //   IFLA_INFO_KIND "ipip\0" + pad
          36, 0, 2, 0,                                                 //   IFLA_INFO_DATA (36)
            8, 0, 2, 0,  10, 0, 0, 1,                                  //     IFLA_IPTUN_LOCAL
            8, 0, 3, 0,  10, 0, 0, 2,                                  //     IFLA_IPTUN_REMOTE
            5, 0, 4, 0,  64, 0, 0, 0,                                  //     IFLA_IPTUN_TTL + pad
            5, 0, 10, 0, 1, 0, 0, 0,                                   //     IFLA_IPTUN_PMTUDISC + pad
    ];
    assert_eq!(build_new_ipip(&p, 1), expected);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn link_requests_match_hand_written_bytes() {
    assert_eq!(build_get_link_by_name("eth0", 7), vec![
        0x2c, 0, 0, 0,  18, 0,  1, 0,  7, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        9, 0, 3, 0,  b'e', b't', b'h', b'0', 0, 0, 0, 0,
    ]);
    assert_eq!(build_set_link_up(5, true, 2), vec![
        0x20, 0, 0, 0,  16, 0,  5, 0,  2, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  5, 0, 0, 0,  1, 0, 0, 0,  1, 0, 0, 0, // index 5, flags IFF_UP, change IFF_UP
    ]);
    assert_eq!(build_set_link_up(5, false, 2)[24..28], [0, 0, 0, 0]);
    assert_eq!(build_del_link(9, 3), vec![
        0x20, 0, 0, 0,  17, 0,  5, 0,  3, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  9, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
    ]);
    assert_eq!(build_set_link_mtu(4, 1480, 1), vec![
        0x28, 0, 0, 0,  16, 0,  5, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  4, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
        8, 0, 4, 0,  0xc8, 0x05, 0, 0,
    ]);
    assert_eq!(build_dump(RTM_GETLINK, &ifinfomsg(0, 0, 0), 4), vec![
        0x20, 0, 0, 0,  18, 0,  0x01, 0x03,  4, 0, 0, 0,  0, 0, 0, 0,
        0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 0,
    ]);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn address_requests_match_hand_written_bytes() {
    // ip addr add 10.1.0.6/32 dev #3 proto 0x54 (create|replace)
    let add = build_addr(RTM_NEWADDR, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        3, ip(10, 1, 0, 6), 32, TMIP_RTPROT, 5);
    assert_eq!(add, vec![
        0x30, 0, 0, 0,  20, 0,  0x05, 0x05,  5, 0, 0, 0,  0, 0, 0, 0,
        2, 32, 0, 0,  3, 0, 0, 0,                     // ifaddrmsg AF_INET /32 scope universe idx 3
        8, 0, 2, 0,  10, 1, 0, 6,                      // IFA_LOCAL
        8, 0, 1, 0,  10, 1, 0, 6,                      // IFA_ADDRESS
        5, 0, 11, 0,  0x54, 0, 0, 0,                   // IFA_PROTO
    ]);
    let del = build_addr(RTM_DELADDR, NLM_F_REQUEST | NLM_F_ACK, 3, ip(10, 1, 0, 6), 32, 0, 6);
    assert_eq!(del, vec![
        0x28, 0, 0, 0,  21, 0,  0x05, 0,  6, 0, 0, 0,  0, 0, 0, 0,
        2, 32, 0, 0,  3, 0, 0, 0,
        8, 0, 2, 0,  10, 1, 0, 6,
        8, 0, 1, 0,  10, 1, 0, 6,
    ]);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn route_requests_match_hand_written_bytes() {
    // ip route replace 10.1.0.4/30 dev #7 via 10.0.0.2 proto 0x54 table main
    let mut r = Route::new(ip(10, 1, 0, 4), 30, TMIP_RTPROT);
    r.oif = Some(7);
    r.gateway = Some(ip(10, 0, 0, 2));
    assert_eq!(r.build(RTM_NEWROUTE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE, 9), vec![
        0x3c, 0, 0, 0,  24, 0,  0x05, 0x05,  9, 0, 0, 0,  0, 0, 0, 0,
        2, 30, 0, 0,  254, 0x54, 0, 1,  0, 0, 0, 0,    // rtmsg: /30 main proto 84 universe unicast
        8, 0, 15, 0,  254, 0, 0, 0,                    // RTA_TABLE
        8, 0, 1, 0,  10, 1, 0, 4,                      // RTA_DST
        8, 0, 4, 0,  7, 0, 0, 0,                       // RTA_OIF
        8, 0, 5, 0,  10, 0, 0, 2,                      // RTA_GATEWAY
    ]);
    // a host route with scope link, preferred source, table 1000 (> 255: rtm_table = RT_TABLE_COMPAT)
    let mut h = Route::new(ip(10, 1, 0, 5), 32, TMIP_RTPROT);
    h.table = 1000;
    h.scope = RT_SCOPE_LINK;
    h.oif = Some(2);
    h.prefsrc = Some(ip(10, 1, 0, 6));
    h.metric = Some(10);
    assert_eq!(h.build(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, 1), vec![
        0x44, 0, 0, 0,  25, 0,  0x05, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        2, 32, 0, 0,  252, 0x54, 253, 1,  0, 0, 0, 0,
        8, 0, 15, 0,  0xe8, 0x03, 0, 0,
        8, 0, 1, 0,  10, 1, 0, 5,
        8, 0, 4, 0,  2, 0, 0, 0,
        8, 0, 7, 0,  10, 1, 0, 6,                      // RTA_PREFSRC
        8, 0, 6, 0,  10, 0, 0, 0,                      // RTA_PRIORITY
    ]);
    // default route: no RTA_DST
    let d = Route::new(Ipv4Addr::UNSPECIFIED, 0, TMIP_RTPROT).build(RTM_NEWROUTE, NLM_F_REQUEST, 1);
    assert_eq!(d.len(), 16 + 12 + 8);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn rule_requests_match_hand_written_bytes() {
    // ip rule add from 10.1.0.4/30 iif wlan0 table 100 pref 5100 proto 0x54
    let r = Rule {
        from: Some((ip(10, 1, 0, 4), 30)),
        to: None,
        iif: Some("wlan0".into()),
        table: 100,
        priority: 5100,
        protocol: TMIP_RTPROT,
    };
    assert_eq!(r.build(RTM_NEWRULE, NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL, 2), vec![
        0x48, 0, 0, 0,  32, 0,  0x05, 0x06,  2, 0, 0, 0,  0, 0, 0, 0,
        2, 0, 30, 0,  100, 0, 0, 1,  0, 0, 0, 0,       // fib_rule_hdr: src_len 30, table 100, FR_ACT_TO_TBL
        8, 0, 15, 0,  100, 0, 0, 0,                    // FRA_TABLE
        8, 0, 6, 0,  0xec, 0x13, 0, 0,                 // FRA_PRIORITY 5100
        5, 0, 21, 0,  0x54, 0, 0, 0,                   // FRA_PROTOCOL
        8, 0, 2, 0,  10, 1, 0, 4,                      // FRA_SRC
        10, 0, 3, 0,  b'w', b'l', b'a', b'n', b'0', 0, 0, 0, // FRA_IIFNAME
    ]);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn neighbour_request_matches_hand_written_bytes() {
    assert_eq!(build_neigh_add(4, ip(10, 1, 0, 5), [2, 0, 0, 0, 0, 1], 3), vec![
        0x30, 0, 0, 0,  28, 0,  0x05, 0x05,  3, 0, 0, 0,  0, 0, 0, 0,
        2, 0, 0, 0,  4, 0, 0, 0,  0x80, 0, 0, 0,       // ndmsg AF_INET idx 4 NUD_PERMANENT
        8, 0, 1, 0,  10, 1, 0, 5,                      // NDA_DST
        10, 0, 2, 0,  2, 0, 0, 0, 0, 1, 0, 0,          // NDA_LLADDR + pad
    ]);
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn proxy_neighbour_requests_match_hand_written_bytes_and_parse_back() {
    let p = ProxyNeighbour { index: 4, address: ip(10, 0, 0, 129), protocol: TMIP_RTPROT };
    let add = p.build(RTM_NEWNEIGH, 3);
    assert_eq!(add, vec![
        0x2c, 0, 0, 0,  28, 0,  0x05, 0x05,  3, 0, 0, 0,  0, 0, 0, 0,
        2, 0, 0, 0,  4, 0, 0, 0,  0, 0, 0x08, 0,       // ndmsg AF_INET idx 4, NTF_PROXY
        8, 0, 1, 0,  10, 0, 0, 129,                    // NDA_DST
        5, 0, 12, 0,  0x54, 0, 0, 0,                   // NDA_PROTOCOL
    ]);
    // A kernel dump entry looks the same (type RTM_NEWNEIGH).
    let m = messages(&add).next().unwrap().unwrap();
    assert_eq!(ProxyNeighbour::parse(&m).unwrap(), Some(p));
    // Ordinary (non-proxy) entries and truncated ones are not proxies / errors.
    let plain = build_neigh_add(4, ip(10, 1, 0, 5), [2, 0, 0, 0, 0, 1], 3);
    let m = messages(&plain).next().unwrap().unwrap();
    assert_eq!(ProxyNeighbour::parse(&m).unwrap(), None);
    let cut = NlMsg { msg_type: RTM_NEWNEIGH, flags: 0, seq: 0, payload: &add[16..24] };
    assert!(ProxyNeighbour::parse(&cut).is_err());
    let del = ProxyNeighbour { protocol: 0, ..p }.build(RTM_DELNEIGH, 4);
    assert_eq!(&del[4..8], &[29, 0, 0x05, 0]);
    assert_eq!(del.len(), 0x24);
}

#[test]
fn reads_the_remote_of_an_ipip_link() {
    let req = build_new_ipip(
        &IpipParams {
            name: "tmip01".into(),
            local: ip(10, 0, 0, 1),
            remote: ip(10, 0, 0, 9),
            ttl: 64,
            pmtudisc: true,
        },
        1,
    );
    let m = messages(&req).next().unwrap().unwrap();
    let l = Link::parse(&m).unwrap();
    assert_eq!((l.name.as_str(), l.kind.as_str()), ("tmip01", "ipip"));
    assert_eq!(l.ipip_remote, Some(ip(10, 0, 0, 9)));
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
fn kernel_link_reply() -> Vec<u8> {
    vec![
        0x50, 0, 0, 0,  16, 0,  2, 0,  11, 0, 0, 0,  0x39, 0x30, 0, 0, // RTM_NEWLINK, NLM_F_MULTI, seq 11
        0, 0, 0x01, 0x03,  6, 0, 0, 0,  0x43, 0x10, 1, 0,  0, 0, 0, 0, // index 6, flags UP|RUNNING|LOWER_UP|...
        10, 0, 3, 0,  b't', b'm', b'i', b'p', b'3', 0, 0, 0,
        8, 0, 4, 0,  0xdc, 0x05, 0, 0,                                  // MTU 1500
        10, 0, 1, 0,  2, 0, 0, 0,  0, 6, 0, 0,                          // IFLA_ADDRESS 02:00:00:00:00:06
        16, 0, 0x12, 0x80,                                              // IFLA_LINKINFO | NLA_F_NESTED
          9, 0, 1, 0,  b'v', b'e', b't', b'h', 0, 0, 0, 0,
    ]
}

#[cfg(target_endian = "little")]
#[test]
fn parses_a_kernel_link_reply() {
    let buf = kernel_link_reply();
    let msgs: Vec<_> = messages(&buf).collect::<Result<_, _>>().unwrap();
    assert_eq!(msgs.len(), 1);
    assert_eq!(msgs[0].seq, 11);
    let l = Link::parse(&msgs[0]).unwrap();
    assert_eq!(
        l,
        Link {
            index: 6,
            name: "tmip3".into(),
            kind: "veth".into(),
            flags: 0x11043,
            mtu: 1500,
            ipip_remote: None,
            mac: Some(crate::addr::MacAddr([2, 0, 0, 0, 0, 6])),
        }
    );
    assert!(l.is_up());
}

#[cfg(target_endian = "little")]
#[rustfmt::skip]
#[test]
fn parses_routes_rules_addresses_and_errors() {
    let route = [
        0x3c, 0, 0, 0,  24, 0,  2, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        2, 30, 0, 0,  254, 0x54, 0, 1,  0, 0, 0, 0,
        8, 0, 15, 0,  254, 0, 0, 0,
        8, 0, 1, 0,  10, 1, 0, 4,
        8, 0, 4, 0,  7, 0, 0, 0,
        8, 0, 5, 0,  10, 0, 0, 2,
    ];
    let m = messages(&route).next().unwrap().unwrap();
    let r = Route::parse(&m).unwrap().unwrap();
    assert_eq!((r.dst, r.dst_len, r.table, r.protocol), (ip(10, 1, 0, 4), 30, 254, 0x54));
    assert_eq!((r.oif, r.gateway), (Some(7), Some(ip(10, 0, 0, 2))));

    let addr = [
        0x38, 0, 0, 0,  20, 0,  2, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        2, 32, 0x80, 0,  3, 0, 0, 0,
        8, 0, 1, 0,  10, 1, 0, 6,
        8, 0, 2, 0,  10, 1, 0, 6,
        8, 0, 4, 0,  10, 1, 0, 7,
        5, 0, 11, 0,  0x54, 0, 0, 0,
    ];
    let m = messages(&addr).next().unwrap().unwrap();
    let a = Address::parse(&m).unwrap().unwrap();
    assert_eq!((a.index, a.address, a.prefix_len, a.protocol), (3, ip(10, 1, 0, 6), 32, 0x54));
    assert_eq!(a.broadcast, Some(ip(10, 1, 0, 7)));

    let rule = [
        0x3c, 0, 0, 0,  32, 0,  2, 0,  1, 0, 0, 0,  0, 0, 0, 0,
        2, 0, 30, 0,  100, 0, 0, 1,  0, 0, 0, 0,
        8, 0, 15, 0,  100, 0, 0, 0,
        8, 0, 6, 0,  0xec, 0x13, 0, 0,
        5, 0, 21, 0,  0x54, 0, 0, 0,
        8, 0, 2, 0,  10, 1, 0, 4,
    ];
    let m = messages(&rule).next().unwrap().unwrap();
    let r = Rule::parse(&m).unwrap().unwrap();
    assert_eq!(r.from, Some((ip(10, 1, 0, 4), 30)));
    assert_eq!((r.table, r.priority, r.protocol), (100, 5100, 0x54));

    // NLMSG_ERROR with -EOPNOTSUPP (-95) for seq 1
    let err = [
        0x24, 0, 0, 0,  2, 0,  0, 1,  1, 0, 0, 0,  0, 0, 0, 0,
        0xa1, 0xff, 0xff, 0xff,
        0x60, 0, 0, 0,  16, 0, 0x05, 0x06,  1, 0, 0, 0,  0, 0, 0, 0,
    ];
    let m = messages(&err).next().unwrap().unwrap();
    assert_eq!(m.msg_type, NLMSG_ERROR);
    assert_eq!(m.error_code().unwrap(), -95);
}

#[test]
fn truncated_or_garbled_input_is_an_error_never_a_panic() {
    let good = build_new_ipip(
        &IpipParams {
            name: "t".into(),
            local: ip(1, 2, 3, 4),
            remote: ip(5, 6, 7, 8),
            ttl: 1,
            pmtudisc: false,
        },
        1,
    );
    // Every truncation: either a length error or a shorter, valid parse.
    for cut in 0..good.len() {
        for m in messages(&good[..cut]).flatten() {
            let _ = Link::parse(&m);
        }
    }
    assert!(matches!(
        messages(&good[..20]).next(),
        Some(Err(ParseError::BadLength { .. }))
    ));
    // A message claiming a shorter length than its header.
    let mut bad = good.clone();
    bad[0..4].copy_from_slice(&8u32.to_ne_bytes());
    assert!(messages(&bad).next().unwrap().is_err());
    // An attribute claiming more bytes than remain.
    let mut bad = good.clone();
    bad[32..34].copy_from_slice(&200u16.to_ne_bytes());
    let m = messages(&bad).next().unwrap().unwrap();
    assert!(Link::parse(&m).is_err());
    // Every byte flipped in turn: never a panic.
    for i in 0..good.len() {
        let mut b = good.clone();
        b[i] ^= 0xff;
        for m in messages(&b).flatten() {
            let _ = Link::parse(&m);
            let _ = Route::parse(&m);
            let _ = Rule::parse(&m);
            let _ = Address::parse(&m);
            let _ = m.error_code();
        }
    }
}
