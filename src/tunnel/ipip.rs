//! IPv4-in-IPv4 (RFC 2003, IP protocol 4) encapsulation as pure functions.
//!
//! The outer header is exactly what the Linux `ipip` device puts on the
//! wire: a 20-byte IPv4 header without options, protocol 4, our CN address
//! as source, the peer CN's as destination, DF set (the device's default
//! `pmtudisc`), TOS 0, the configured TTL — followed directly by the inner
//! packet, no extra bytes. So a CN running this userspace backend talks to a
//! CN running the kernel device.

use std::net::Ipv4Addr;

pub const IPPROTO_IPIP: u8 = 4;
pub const OUTER_HEADER_LEN: usize = 20;
/// The ipip device's default MTU over a 1500-byte link.
pub const TUNNEL_MTU: u32 = 1480;
pub const DEFAULT_TTL: u8 = 64;

const IP_DF: u16 = 0x4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpipError {
    /// Not an IPv4 packet or too short for its own header.
    Malformed(&'static str),
    /// A valid IPv4 packet, but not protocol 4.
    NotIpip(u8),
    /// The output buffer cannot hold header + inner packet.
    NoRoom,
}

impl std::fmt::Display for IpipError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            IpipError::Malformed(w) => write!(f, "malformed IPv4 packet: {w}"),
            IpipError::NotIpip(p) => write!(f, "IP protocol {p}, not IPIP"),
            IpipError::NoRoom => write!(f, "packet too large for the buffer"),
        }
    }
}

/// The Internet checksum of `data`, complemented, as it goes in a header.
pub fn checksum(data: &[u8]) -> u16 {
    !crate::wire::checksum::data(data)
}

/// Outer-header parameters for one tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Encap {
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub ttl: u8,
}

impl Encap {
    /// Writes the 20-byte outer header for an inner packet of `inner_len`
    /// bytes into `hdr`. `id` is the IP identification (any value: DF is set).
    pub fn write_header(&self, hdr: &mut [u8; OUTER_HEADER_LEN], inner_len: usize, id: u16) {
        let total = (OUTER_HEADER_LEN + inner_len) as u16;
        hdr[0] = 0x45;
        hdr[1] = 0;
        hdr[2..4].copy_from_slice(&total.to_be_bytes());
        hdr[4..6].copy_from_slice(&id.to_be_bytes());
        hdr[6..8].copy_from_slice(&IP_DF.to_be_bytes());
        hdr[8] = self.ttl;
        hdr[9] = IPPROTO_IPIP;
        hdr[10..12].copy_from_slice(&[0, 0]);
        hdr[12..16].copy_from_slice(&self.local.octets());
        hdr[16..20].copy_from_slice(&self.remote.octets());
        let c = checksum(&hdr[..]);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
    }

    /// Encapsulates `inner` into `out`, returning the packet length.
    pub fn encapsulate(&self, inner: &[u8], id: u16, out: &mut [u8]) -> Result<usize, IpipError> {
        let n = OUTER_HEADER_LEN + inner.len();
        if n > out.len() || n > u16::MAX as usize {
            return Err(IpipError::NoRoom);
        }
        let mut hdr = [0u8; OUTER_HEADER_LEN];
        self.write_header(&mut hdr, inner.len(), id);
        out[..OUTER_HEADER_LEN].copy_from_slice(&hdr);
        out[OUTER_HEADER_LEN..n].copy_from_slice(inner);
        Ok(n)
    }
}

/// A received IPIP packet: outer addresses and the inner packet's bounds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decapsulated {
    pub outer_src: Ipv4Addr,
    pub outer_dst: Ipv4Addr,
    /// Byte range of the inner packet within the buffer.
    pub inner_start: usize,
    pub inner_end: usize,
}

/// Checks an outer IPv4 packet (as a raw socket delivers it) and finds the
/// inner IPv4 packet. Never reads beyond checked lengths.
pub fn decapsulate(pkt: &[u8]) -> Result<Decapsulated, IpipError> {
    let first = *pkt.first().ok_or(IpipError::Malformed("empty"))?;
    if first >> 4 != 4 {
        return Err(IpipError::Malformed("outer version is not 4"));
    }
    let ihl = ((first & 0x0f) as usize) * 4;
    if ihl < 20 || pkt.len() < ihl {
        return Err(IpipError::Malformed("outer header length"));
    }
    let total = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
    if total < ihl || total > pkt.len() {
        return Err(IpipError::Malformed("outer total length"));
    }
    if pkt[9] != IPPROTO_IPIP {
        return Err(IpipError::NotIpip(pkt[9]));
    }
    let outer_src = Ipv4Addr::new(pkt[12], pkt[13], pkt[14], pkt[15]);
    let outer_dst = Ipv4Addr::new(pkt[16], pkt[17], pkt[18], pkt[19]);
    let inner = &pkt[ihl..total];
    if inner.len() < 20 || inner[0] >> 4 != 4 {
        return Err(IpipError::Malformed("inner packet is not IPv4"));
    }
    let inner_total = u16::from_be_bytes([inner[2], inner[3]]) as usize;
    if inner_total < 20 || inner_total > inner.len() {
        return Err(IpipError::Malformed("inner total length"));
    }
    Ok(Decapsulated {
        outer_src,
        outer_dst,
        inner_start: ihl,
        inner_end: ihl + inner_total,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An ICMP echo request 10.1.0.5 -> 10.9.0.1 (28 bytes), as ping sends it.
    #[rustfmt::skip]
    const INNER: [u8; 28] = [
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00,
        10, 1, 0, 5,  10, 9, 0, 1,
        0x08, 0x00, 0xf7, 0xfe, 0x00, 0x01, 0x00, 0x00,
    ];

    /// What a Linux ipip device (`ip link add t type ipip local 192.168.0.1
    /// remote 192.168.0.2 ttl 64`, pmtudisc default) emits for INNER with
    /// IP id 0x0001: 20-byte header, proto 4, DF, TOS 0, then INNER.
    #[rustfmt::skip]
    const KERNEL_STYLE: [u8; 48] = [
        0x45, 0x00, 0x00, 0x30,  0x00, 0x01, 0x40, 0x00,  0x40, 0x04, 0xb9, 0x75,
        192, 168, 0, 1,  192, 168, 0, 2,
        0x45, 0x00, 0x00, 0x1c, 0x12, 0x34, 0x40, 0x00, 0x40, 0x01, 0x00, 0x00,
        10, 1, 0, 5,  10, 9, 0, 1,
        0x08, 0x00, 0xf7, 0xfe, 0x00, 0x01, 0x00, 0x00,
    ];

    fn encap() -> Encap {
        Encap {
            local: Ipv4Addr::new(192, 168, 0, 1),
            remote: Ipv4Addr::new(192, 168, 0, 2),
            ttl: 64,
        }
    }

    #[test]
    fn encapsulation_is_byte_identical_to_a_kernel_ipip_packet() {
        let mut out = [0u8; 64];
        let n = encap().encapsulate(&INNER, 1, &mut out).unwrap();
        assert_eq!(&out[..n], &KERNEL_STYLE[..]);
        // the header checksum verifies
        assert_eq!(checksum(&out[..20]), 0);
    }

    #[test]
    fn decapsulation_finds_the_inner_packet_and_outer_addresses() {
        let d = decapsulate(&KERNEL_STYLE).unwrap();
        assert_eq!(d.outer_src, Ipv4Addr::new(192, 168, 0, 1));
        assert_eq!(d.outer_dst, Ipv4Addr::new(192, 168, 0, 2));
        assert_eq!(&KERNEL_STYLE[d.inner_start..d.inner_end], &INNER[..]);
        // trailing link padding after the outer total length is ignored
        let mut padded = KERNEL_STYLE.to_vec();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(decapsulate(&padded).unwrap(), d);
    }

    #[test]
    fn decapsulation_rejects_what_is_not_ipip_and_every_truncation() {
        let mut gre = KERNEL_STYLE;
        gre[9] = 47;
        assert_eq!(decapsulate(&gre), Err(IpipError::NotIpip(47)));
        let mut v6 = KERNEL_STYLE;
        v6[20] = 0x60;
        assert!(matches!(decapsulate(&v6), Err(IpipError::Malformed(_))));
        for cut in 0..KERNEL_STYLE.len() {
            assert!(decapsulate(&KERNEL_STYLE[..cut]).is_err(), "cut at {cut}");
        }
        let mut bad_ihl = KERNEL_STYLE;
        bad_ihl[0] = 0x4f; // 60-byte header claimed, packet 48
        assert!(decapsulate(&bad_ihl).is_err());
    }

    #[test]
    fn encapsulation_refuses_a_too_small_buffer() {
        let mut out = [0u8; 40];
        assert_eq!(
            encap().encapsulate(&INNER, 1, &mut out),
            Err(IpipError::NoRoom)
        );
    }
}
