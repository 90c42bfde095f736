//! IPv4 headers (RFC 791).

use super::{checksum, Error, Result};
use core::fmt;
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const VER_IHL: usize = 0;
    pub const DSCP_ECN: usize = 1;
    pub const LENGTH: Range<usize> = 2..4;
    pub const IDENT: Range<usize> = 4..6;
    pub const FLG_OFF: Range<usize> = 6..8;
    pub const TTL: usize = 8;
    pub const PROTOCOL: usize = 9;
    pub const CHECKSUM: Range<usize> = 10..12;
    pub const SRC_ADDR: Range<usize> = 12..16;
    pub const DST_ADDR: Range<usize> = 16..20;
}

/// Length of a header without options.
pub const HEADER_LEN: usize = field::DST_ADDR.end;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    Icmp,
    /// IP-in-IP, TMip's tunnels.
    Ipip,
    Tcp,
    Udp,
    Unknown(u8),
}

impl From<u8> for Protocol {
    fn from(v: u8) -> Self {
        match v {
            1 => Protocol::Icmp,
            4 => Protocol::Ipip,
            6 => Protocol::Tcp,
            17 => Protocol::Udp,
            other => Protocol::Unknown(other),
        }
    }
}

impl From<Protocol> for u8 {
    fn from(p: Protocol) -> u8 {
        match p {
            Protocol::Icmp => 1,
            Protocol::Ipip => 4,
            Protocol::Tcp => 6,
            Protocol::Udp => 17,
            Protocol::Unknown(v) => v,
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", u8::from(*self))
    }
}

/// A view of an IPv4 packet. After `new_checked`, the header length and the
/// total length are known to lie within the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after checking: 20 bytes present, IHL >= 5, the header within
    /// the buffer, total length >= header and within the buffer (a link layer
    /// may add padding after it, which `payload` leaves out).
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        let len = self.buffer.as_ref().len();
        if len < HEADER_LEN {
            return Err(Error::Truncated);
        }
        let hl = usize::from(self.header_len());
        if hl < HEADER_LEN {
            return Err(Error::Malformed("IPv4 header length below 20"));
        }
        if hl > len {
            return Err(Error::Truncated);
        }
        let total = usize::from(self.total_len());
        if total < hl {
            return Err(Error::Malformed("IPv4 total length below header length"));
        }
        if total > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.b()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn version(&self) -> u8 {
        self.b()[field::VER_IHL] >> 4
    }
    /// Header length in bytes.
    pub fn header_len(&self) -> u8 {
        (self.b()[field::VER_IHL] & 0x0f) * 4
    }
    pub fn dscp_ecn(&self) -> u8 {
        self.b()[field::DSCP_ECN]
    }
    pub fn total_len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }
    pub fn ident(&self) -> u16 {
        self.u16_at(field::IDENT)
    }
    pub fn dont_frag(&self) -> bool {
        self.u16_at(field::FLG_OFF) & 0x4000 != 0
    }
    pub fn more_frags(&self) -> bool {
        self.u16_at(field::FLG_OFF) & 0x2000 != 0
    }
    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (self.u16_at(field::FLG_OFF) & 0x1fff) << 3
    }
    pub fn is_fragment(&self) -> bool {
        self.more_frags() || self.frag_offset() != 0
    }
    pub fn ttl(&self) -> u8 {
        self.b()[field::TTL]
    }
    pub fn protocol(&self) -> Protocol {
        Protocol::from(self.b()[field::PROTOCOL])
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn src_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::SRC_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    pub fn dst_addr(&self) -> Ipv4Addr {
        let b = &self.b()[field::DST_ADDR];
        Ipv4Addr::new(b[0], b[1], b[2], b[3])
    }
    /// Does the header checksum hold? (Requires a checked packet.)
    pub fn verify_checksum(&self) -> bool {
        checksum::data(&self.b()[..usize::from(self.header_len())]) == 0xffff
    }
    /// The payload, up to the total length (link padding left out).
    pub fn payload(&self) -> &[u8] {
        &self.b()[usize::from(self.header_len())..usize::from(self.total_len())]
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let hl = usize::from(self.header_len());
        let total = usize::from(self.total_len());
        &self.buffer.as_ref()[hl..total]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_version(&mut self, v: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0x0f) | (v << 4);
    }
    /// Set the header length in bytes (a multiple of 4).
    pub fn set_header_len(&mut self, len: u8) {
        let b = &mut self.buffer.as_mut()[field::VER_IHL];
        *b = (*b & 0xf0) | ((len / 4) & 0x0f);
    }
    pub fn set_dscp_ecn(&mut self, v: u8) {
        self.buffer.as_mut()[field::DSCP_ECN] = v;
    }
    pub fn set_total_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v)
    }
    pub fn set_ident(&mut self, v: u16) {
        self.set_u16_at(field::IDENT, v)
    }
    /// Clear all flags and the fragment offset.
    pub fn clear_flags(&mut self) {
        self.set_u16_at(field::FLG_OFF, 0)
    }
    pub fn set_ttl(&mut self, v: u8) {
        self.buffer.as_mut()[field::TTL] = v;
    }
    pub fn set_protocol(&mut self, p: Protocol) {
        self.buffer.as_mut()[field::PROTOCOL] = p.into();
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v)
    }
    pub fn set_src_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SRC_ADDR].copy_from_slice(&a.octets());
    }
    pub fn set_dst_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::DST_ADDR].copy_from_slice(&a.octets());
    }
    /// Compute and store the header checksum.
    pub fn fill_checksum(&mut self) {
        self.set_checksum(0);
        let hl = usize::from(self.header_len());
        let sum = !checksum::data(&self.buffer.as_ref()[..hl]);
        self.set_checksum(sum);
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let hl = usize::from(self.header_len());
        let total = usize::from(self.total_len());
        &mut self.buffer.as_mut()[hl..total]
    }
}

/// The meaning of an IPv4 header TMip acts on. Options are skipped on parse
/// and never emitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_addr: Ipv4Addr,
    pub dst_addr: Ipv4Addr,
    pub protocol: Protocol,
    pub payload_len: usize,
    pub ttl: u8,
}

impl Repr {
    /// Parse a checked packet; refuses versions other than 4, a bad header
    /// checksum and fragments (TMip never needs to reassemble).
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.version() != 4 {
            return Err(Error::Unsupported("IP version is not 4"));
        }
        if !p.verify_checksum() {
            return Err(Error::Checksum);
        }
        if p.is_fragment() {
            return Err(Error::Unsupported("IPv4 fragment"));
        }
        Ok(Repr {
            src_addr: p.src_addr(),
            dst_addr: p.dst_addr(),
            protocol: p.protocol(),
            payload_len: p.payload().len(),
            ttl: p.ttl(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write a 20-byte header (ident 0, no flags) with its checksum. The
    /// buffer must hold at least `HEADER_LEN + payload_len` bytes and
    /// `HEADER_LEN + payload_len` must fit in 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_version(4);
        p.set_header_len(HEADER_LEN as u8);
        p.set_dscp_ecn(0);
        p.set_total_len((HEADER_LEN + self.payload_len) as u16);
        p.set_ident(0);
        p.clear_flags();
        p.set_ttl(self.ttl);
        p.set_protocol(self.protocol);
        p.set_src_addr(self.src_addr);
        p.set_dst_addr(self.dst_addr);
        p.fill_checksum();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    /// `tcpdump -xx` (Ethernet header removed): ICMP echo request
    /// 192.0.2.1 > 192.0.2.2, 64 bytes of ICMP.
    const ICMP_PACKET: &str = "4500
        0054 66c7 4000 4001 4fde c000 0201 c000
        0202 0800 2503 30c9 0001 ff59 096b 0000
        0000 d69a 0400 0000 0000 1011 1213 1415
        1617 1819 1a1b 1c1d 1e1f 2021 2223 2425
        2627 2829 2a2b 2c2d 2e2f 3031 3233 3435
        3637";

    #[test]
    fn parses_real_packet() {
        let b = hex(ICMP_PACKET);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert!(p.verify_checksum());
        assert!(p.dont_frag() && !p.is_fragment());
        let r = Repr::parse(&p).unwrap();
        assert_eq!(
            r,
            Repr {
                src_addr: Ipv4Addr::new(192, 0, 2, 1),
                dst_addr: Ipv4Addr::new(192, 0, 2, 2),
                protocol: Protocol::Icmp,
                payload_len: 64,
                ttl: 64,
            }
        );
    }

    #[test]
    fn emit_matches_capture_except_ident_and_flags() {
        let b = hex(ICMP_PACKET);
        let r = Repr::parse(&Packet::new_checked(&b[..]).unwrap()).unwrap();
        let mut out = b.clone();
        r.emit(&mut Packet::new_unchecked(&mut out[..]));
        let mut expect = b.clone();
        // Our header has ident 0 and no DF; recompute the checksum for that.
        expect[4..8].copy_from_slice(&[0, 0, 0, 0]);
        let mut e = Packet::new_unchecked(&mut expect[..]);
        e.fill_checksum();
        assert_eq!(out, expect);
        assert!(Packet::new_checked(&out[..]).unwrap().verify_checksum());
    }

    #[test]
    fn padding_after_total_length_is_not_payload() {
        let mut b = hex(ICMP_PACKET);
        b.extend_from_slice(&[0xee; 6]);
        let p = Packet::new_checked(&b[..]).unwrap();
        assert_eq!(p.payload().len(), 64);
    }

    #[test]
    fn rejects_what_it_does_not_understand() {
        let good = hex(ICMP_PACKET);
        let mut v6 = good.clone();
        v6[0] = 0x65;
        assert!(matches!(
            Repr::parse(&Packet::new_checked(&v6[..]).unwrap()),
            Err(Error::Unsupported(_))
        ));
        let mut ihl4 = good.clone();
        ihl4[0] = 0x44;
        assert!(matches!(
            Packet::new_checked(&ihl4[..]),
            Err(Error::Malformed(_))
        ));
        let mut long = good.clone();
        long[2..4].copy_from_slice(&200u16.to_be_bytes());
        assert_eq!(
            Packet::new_checked(&long[..]).unwrap_err(),
            Error::Truncated
        );
        let mut short = good.clone();
        short[2..4].copy_from_slice(&19u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&short[..]),
            Err(Error::Malformed(_))
        ));
        let mut bad_sum = good.clone();
        bad_sum[8] = 63; // TTL changed, checksum not updated
        assert_eq!(
            Repr::parse(&Packet::new_checked(&bad_sum[..]).unwrap()).unwrap_err(),
            Error::Checksum
        );
        let mut frag = good.clone();
        frag[6] = 0x20; // more fragments
        Packet::new_unchecked(&mut frag[..]).fill_checksum();
        assert!(matches!(
            Repr::parse(&Packet::new_checked(&frag[..]).unwrap()),
            Err(Error::Unsupported(_))
        ));
        let mut ihl15 = good.clone();
        ihl15[0] = 0x4f; // 60-byte header, fits in the buffer
        assert!(Packet::new_checked(&ihl15[..]).is_ok());
        for n in 0..good.len() {
            assert!(Packet::new_checked(&good[..n]).is_err(), "len {n}");
        }
    }
}
