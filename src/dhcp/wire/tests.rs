use super::*;
use crate::wire::{hex, UdpChecksum, UdpFrame};

/// Decode a capture file: `#` lines are comments, the rest is a hex dump.
pub(crate) fn capture(text: &str) -> Vec<u8> {
    let body: String = text
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect::<Vec<_>>()
        .join(" ");
    hex(&body)
}

const UDHCPC_DISCOVER: &str = include_str!("../testdata/udhcpc_discover.hex");
const MAC: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);

#[test]
fn parses_real_udhcpc_discover() {
    let frame = capture(UDHCPC_DISCOVER);
    let udp = UdpFrame::parse_with(&frame, UdpChecksum::Verify).unwrap();
    assert_eq!((udp.src_port, udp.dst_port), (CLIENT_PORT, SERVER_PORT));
    let r = Repr::parse_bytes(udp.payload).unwrap();
    assert_eq!(r.message_type, MessageType::Discover);
    assert_eq!(r.transaction_id, 0x3566_2d56);
    assert_eq!(r.client_hardware_addr, MAC);
    assert!(!r.broadcast);
    assert_eq!(r.client_ip, Ipv4Addr::UNSPECIFIED);
    assert_eq!(r.max_size, Some(576));
    assert_eq!(
        r.parameter_request_list,
        Some(&[1u8, 3, 6, 12, 15, 28, 42][..])
    );
    assert_eq!(r.hostname, Some(&b"ms1"[..]));
    assert_eq!(r.client_identifier, Some(&[1u8, 2, 0, 0, 0, 0, 1][..]));
    assert_eq!(r.requested_ip, None);
}

#[test]
fn discover_round_trips_through_emit() {
    let frame = capture(UDHCPC_DISCOVER);
    let udp = UdpFrame::parse(&frame).unwrap();
    let r = Repr::parse_bytes(udp.payload).unwrap();
    let out = r.to_vec().unwrap();
    assert_eq!(Repr::parse_bytes(&out).unwrap(), r);
    // The fixed header is byte-identical; options differ only in order and
    // in the vendor class (60), which TMip does not keep.
    assert_eq!(&out[..240], &udp.payload[..240]);
}

/// RFC 3442 §"Examples" table: destination descriptors.
#[test]
fn rfc3442_destination_descriptors() {
    let gw = Ipv4Addr::new(10, 0, 0, 1);
    let cases: [(Ipv4Addr, u8, &[u8]); 6] = [
        (Ipv4Addr::new(10, 17, 0, 0), 16, &[16, 10, 17]),
        (Ipv4Addr::new(10, 27, 129, 0), 24, &[24, 10, 27, 129]),
        (Ipv4Addr::new(10, 229, 0, 128), 25, &[25, 10, 229, 0, 128]),
        (Ipv4Addr::new(10, 198, 122, 47), 32, &[32, 10, 198, 122, 47]),
        (Ipv4Addr::new(0, 0, 0, 0), 0, &[0]),
        (Ipv4Addr::new(10, 0, 0, 0), 8, &[8, 10]),
    ];
    for (net, len, descriptor) in cases {
        let route = Route { net, len, gw };
        let mut v = Vec::new();
        encode_classless_routes(&[route], &mut v);
        let mut expect = descriptor.to_vec();
        expect.extend_from_slice(&gw.octets());
        assert_eq!(v, expect, "{net}/{len}");
        assert_eq!(classless_routes_len(&[route]), v.len());
        assert_eq!(decode_classless_routes(&v).unwrap().as_slice(), &[route]);
    }
}

#[test]
fn classless_route_errors() {
    assert!(decode_classless_routes(&[33, 0, 0, 0, 0, 0, 0, 0, 0]).is_err());
    assert!(decode_classless_routes(&[24, 10, 0, 0, 10, 0, 0]).is_err());
    assert!(decode_classless_routes(&[]).unwrap().is_empty());
}

fn offer<'a>() -> Repr<'a> {
    let mut r = Repr::new(MessageType::Offer, 0xdead_beef, MAC);
    r.your_ip = Ipv4Addr::new(10, 1, 0, 5);
    r.server_identifier = Some(Ipv4Addr::new(10, 1, 0, 6));
    r.lease_time = Some(3600);
    r.renewal_time = Some(1800);
    r.rebinding_time = Some(3150);
    r.subnet_mask = Some(Ipv4Addr::new(255, 255, 255, 252));
    let _ = r.routers.push(Ipv4Addr::new(10, 1, 0, 6));
    let _ = r.dns_servers.push(Ipv4Addr::new(192, 0, 2, 53));
    let _ = r.dns_servers.push(Ipv4Addr::new(192, 0, 2, 54));
    r.domain_name = Some(b"tmip.example");
    let mut routes = heapless::Vec::new();
    let _ = routes.push(Route {
        net: Ipv4Addr::new(172, 16, 0, 0),
        len: 12,
        gw: Ipv4Addr::new(10, 1, 0, 6),
    });
    let _ = routes.push(Route {
        net: Ipv4Addr::UNSPECIFIED,
        len: 0,
        gw: Ipv4Addr::new(10, 1, 0, 6),
    });
    r.classless_routes = Some(routes.clone());
    r.ms_classless_routes = Some(routes);
    r.client_identifier = Some(&[1, 2, 0, 0, 0, 0, 1]);
    r
}

#[test]
fn reply_options_round_trip() {
    let r = offer();
    let bytes = r.to_vec().unwrap();
    assert_eq!(bytes.len(), r.buffer_len());
    assert!(bytes.len() >= MIN_MESSAGE_LEN);
    assert_eq!(bytes[0], 2, "BOOTREPLY");
    assert_eq!(Repr::parse_bytes(&bytes).unwrap(), r);
    // Byte-exact option 121: 12.172.16 via 10.1.0.6, then 0 via 10.1.0.6.
    let p = Packet::new_checked(&bytes[..]).unwrap();
    let o121 = p
        .options()
        .map(|o| o.unwrap())
        .find(|o| o.code == opt::CLASSLESS_ROUTES)
        .unwrap();
    assert_eq!(o121.data, &[12, 172, 16, 10, 1, 0, 6, 0, 10, 1, 0, 6]);
}

#[test]
fn emit_refuses_short_buffer_and_long_options() {
    let r = offer();
    let mut small = vec![0u8; r.buffer_len() - 1];
    assert_eq!(r.emit(&mut small), Err(Error::TooLong));
    let long = [b'a'; 256];
    let mut r = Repr::new(MessageType::Ack, 1, MAC);
    r.domain_name = Some(&long);
    assert!(matches!(r.to_vec(), Err(Error::BadOption(15, _))));
}

fn message_with_options(opts: &[u8]) -> Vec<u8> {
    let mut r = Repr::new(MessageType::Discover, 7, MAC).to_vec().unwrap();
    r.truncate(240);
    r.extend_from_slice(opts);
    r
}

#[test]
fn malformed_options_are_errors() {
    let cases: &[(&[u8], Error)] = &[
        (
            &[53, 1, 1, 50, 3, 1, 2, 3, 255],
            Error::BadOption(50, "length is not 4"),
        ),
        (&[53, 1, 1, 12, 9, b'x'], Error::OptionOverrun(12)),
        (&[53, 1, 1, 12], Error::OptionOverrun(12)),
        (&[53, 2, 1, 1, 255], Error::BadOption(53, "length is not 1")),
        (
            &[53, 1, 1, 57, 2, 1, 0, 255],
            Error::BadOption(57, "below 576"),
        ),
        (
            &[53, 1, 1, 61, 1, 1, 255],
            Error::BadOption(61, "shorter than 2"),
        ),
        (
            &[53, 1, 1, 6, 5, 1, 2, 3, 4, 5, 255],
            Error::BadOption(6, "length is not a positive multiple of 4"),
        ),
        (
            &[53, 1, 1, 121, 5, 33, 1, 2, 3, 4, 255],
            Error::BadOption(121, "route width over 32"),
        ),
        (&[55, 0, 53, 1, 1, 255], Error::BadOption(55, "empty")),
        (&[12, 3, b'a', b'b', b'c', 255], Error::NoMessageType),
        (&[53, 1, 2, 255], Error::BadOp(2)),
    ];
    for (opts, err) in cases {
        assert_eq!(
            Repr::parse_bytes(&message_with_options(opts)).unwrap_err(),
            *err,
            "{opts:?}"
        );
    }
}

#[test]
fn unknown_overload_pad_and_missing_end_are_tolerated() {
    // pad, unknown 200, overload 52 (ignored: sname/file not read), repeated
    // message type (first wins), no END.
    let m = message_with_options(&[
        0, 0, 200, 2, 9, 9, 52, 1, 3, 53, 1, 3, 53, 1, 1, 50, 4, 10, 1, 0, 5,
    ]);
    let r = Repr::parse_bytes(&m).unwrap();
    assert_eq!(r.message_type, MessageType::Request);
    assert_eq!(r.requested_ip, Some(Ipv4Addr::new(10, 1, 0, 5)));
}

#[test]
fn header_level_errors() {
    let good = message_with_options(&[53, 1, 1, 255]);
    assert!(Repr::parse_bytes(&good).is_ok());
    for n in 0..240 {
        assert_eq!(Repr::parse_bytes(&good[..n]).unwrap_err(), Error::Truncated);
    }
    let mut m = good.clone();
    m[236] = 0;
    assert_eq!(Repr::parse_bytes(&m).unwrap_err(), Error::BadMagic);
    let mut m = good.clone();
    m[1] = 6; // IEEE 802 token ring
    assert_eq!(
        Repr::parse_bytes(&m).unwrap_err(),
        Error::UnsupportedHardware
    );
    let mut m = good.clone();
    m[0] = 3;
    assert_eq!(Repr::parse_bytes(&m).unwrap_err(), Error::BadOp(3));
}

/// A fixed-seed xorshift fuzz loop: random bytes, random mutations of a real
/// message, and random option soups must never panic.
#[test]
fn fuzz_never_panics() {
    let mut s: u64 = 0x5eed_1234_abcd_ef01;
    let mut rnd = move || {
        s ^= s << 13;
        s ^= s >> 7;
        s ^= s << 17;
        s
    };
    let base = message_with_options(&[53, 1, 3, 50, 4, 10, 1, 0, 5, 55, 3, 1, 3, 121, 255]);
    let mut ok = 0;
    for i in 0..20_000 {
        let mut buf: Vec<u8> = match i % 3 {
            0 => (0..(rnd() % 600) as usize).map(|_| rnd() as u8).collect(),
            1 => {
                let mut b = base.clone();
                for _ in 0..(rnd() % 8) {
                    let at = (rnd() as usize) % b.len();
                    b[at] = rnd() as u8;
                }
                b
            }
            _ => {
                let n = (rnd() % 80) as usize;
                let opts: Vec<u8> = (0..n).map(|_| rnd() as u8).collect();
                message_with_options(&opts)
            }
        };
        let cut = (rnd() as usize) % (buf.len() + 1);
        if i % 5 == 0 {
            buf.truncate(cut);
        }
        if let Ok(r) = Repr::parse_bytes(&buf) {
            ok += 1;
            // Whatever parses must emit and parse back to the same meaning.
            let again = r.to_vec().unwrap();
            assert_eq!(Repr::parse_bytes(&again).unwrap(), r);
        }
    }
    assert!(
        ok > 100,
        "the mutations should leave some valid messages ({ok})"
    );
}
