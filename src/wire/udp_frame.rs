//! [`UdpFrame`]: a whole Ethernet/IPv4/UDP frame in or out, for the DHCP
//! server and the capture path, built on the three header views.

use super::{ethernet, ipv4, udp, Error, Result};
use crate::addr::MacAddr;
use std::net::Ipv4Addr;

/// Whether [`UdpFrame::parse_with`] verifies the UDP checksum.
///
/// Frames a local socket sends over a veth (or any device with checksum
/// offload) carry only the pseudo-header sum in the UDP checksum field
/// (`CHECKSUM_PARTIAL`); an AF_PACKET socket on the peer sees them that way.
/// A DHCP server must accept those (unicast renewals arrive so), hence `Skip`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UdpChecksum {
    Verify,
    Skip,
}

/// An Ethernet/IPv4/UDP frame, parsed: the addresses of every layer and a
/// borrowed UDP payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UdpFrame<'a> {
    pub src_mac: MacAddr,
    pub dst_mac: MacAddr,
    pub src_ip: Ipv4Addr,
    pub dst_ip: Ipv4Addr,
    pub src_port: u16,
    pub dst_port: u16,
    pub payload: &'a [u8],
}

impl<'a> UdpFrame<'a> {
    /// Parse a whole Ethernet frame carrying IPv4/UDP. The IPv4 header
    /// checksum is verified, and the UDP checksum when the sender set one.
    pub fn parse(frame: &'a [u8]) -> Result<UdpFrame<'a>> {
        Self::parse_with(frame, UdpChecksum::Verify)
    }

    /// [`parse`](Self::parse), choosing whether the UDP checksum is verified
    /// (the IPv4 header checksum always is).
    pub fn parse_with(frame: &'a [u8], check: UdpChecksum) -> Result<UdpFrame<'a>> {
        let eth = ethernet::Frame::new_checked(frame)?;
        let eth_repr = ethernet::Repr::parse(&eth)?;
        if eth_repr.ethertype != ethernet::EtherType::Ipv4 {
            return Err(Error::Unsupported("not IPv4"));
        }
        let ip = ipv4::Packet::new_checked(eth.into_payload())?;
        let ip_repr = ipv4::Repr::parse(&ip)?;
        if ip_repr.protocol != ipv4::Protocol::Udp {
            return Err(Error::Unsupported("not UDP"));
        }
        let udp = udp::Packet::new_checked(ip.into_payload())?;
        let udp_repr = match check {
            UdpChecksum::Verify => udp::Repr::parse(&udp, ip_repr.src_addr, ip_repr.dst_addr)?,
            UdpChecksum::Skip => udp::Repr::parse_unverified(&udp)?,
        };
        Ok(UdpFrame {
            src_mac: eth_repr.src_addr,
            dst_mac: eth_repr.dst_addr,
            src_ip: ip_repr.src_addr,
            dst_ip: ip_repr.dst_addr,
            src_port: udp_repr.src_port,
            dst_port: udp_repr.dst_port,
            payload: udp.into_payload(),
        })
    }

    /// Length of the whole frame [`emit`](Self::emit) writes.
    pub fn buffer_len(&self) -> usize {
        ethernet::HEADER_LEN + ipv4::HEADER_LEN + udp::HEADER_LEN + self.payload.len()
    }

    /// Write the frame (TTL 64, UDP checksum filled in) into `buf`, which
    /// must be at least [`buffer_len`](Self::buffer_len) bytes.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(Error::Truncated)?;
        let udp_len = udp::HEADER_LEN + self.payload.len();
        if ipv4::HEADER_LEN + udp_len > usize::from(u16::MAX) {
            return Err(Error::Malformed("payload too long for IPv4"));
        }
        let eth_repr = ethernet::Repr {
            src_addr: self.src_mac,
            dst_addr: self.dst_mac,
            ethertype: ethernet::EtherType::Ipv4,
        };
        let (eth_buf, rest) = buf.split_at_mut(ethernet::HEADER_LEN);
        eth_repr.emit(&mut ethernet::Frame::new_unchecked(eth_buf));
        let ip_repr = ipv4::Repr {
            src_addr: self.src_ip,
            dst_addr: self.dst_ip,
            protocol: ipv4::Protocol::Udp,
            payload_len: udp_len,
            ttl: 64,
        };
        let (ip_buf, udp_buf) = rest.split_at_mut(ipv4::HEADER_LEN);
        ip_repr.emit(&mut ipv4::Packet::new_unchecked(ip_buf));
        let udp_repr = udp::Repr {
            src_port: self.src_port,
            dst_port: self.dst_port,
        };
        udp_repr.emit(
            &mut udp::Packet::new_unchecked(udp_buf),
            self.src_ip,
            self.dst_ip,
            self.payload,
        )
    }

    /// [`emit`](Self::emit) into a fresh vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::{arp, hex};

    /// `tcpdump -xx` on a veth: 192.0.2.1.43601 > 192.0.2.2.5000: UDP,
    /// "hello tmip". The UDP checksum (8427) is the pseudo-header sum only:
    /// the sender's kernel left the rest to (absent) offload hardware.
    const UDP_FRAME: &str = "
        0200 0000 0002 0200 0000 0001 0800 4500
        0026 024c 4000 4011 b477 c000 0201 c000
        0202 aa51 1388 0012 8427 6865 6c6c 6f20
        746d 6970";

    #[test]
    fn udp_frame_parses_real_capture() {
        let bytes = hex(UDP_FRAME);
        assert_eq!(UdpFrame::parse(&bytes), Err(Error::Checksum));
        let f = UdpFrame::parse_with(&bytes, UdpChecksum::Skip).unwrap();
        assert_eq!(f.src_mac, MacAddr([2, 0, 0, 0, 0, 1]));
        assert_eq!(f.dst_mac, MacAddr([2, 0, 0, 0, 0, 2]));
        assert_eq!(f.src_ip, Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(f.dst_ip, Ipv4Addr::new(192, 0, 2, 2));
        assert_eq!((f.src_port, f.dst_port), (43601, 5000));
        assert_eq!(f.payload, b"hello tmip");
    }

    #[test]
    fn udp_frame_emit_gives_valid_checksums() {
        let bytes = hex(UDP_FRAME);
        let f = UdpFrame::parse_with(&bytes, UdpChecksum::Skip).unwrap();
        let out = f.to_vec().unwrap();
        assert_eq!(out.len(), bytes.len());
        let again = UdpFrame::parse(&out).unwrap();
        assert_eq!(again, f);
        // Same frame except IP ident/DF (we send 0) and the full UDP checksum.
        assert_eq!(&out[..18], &bytes[..18]);
        assert_eq!(&out[22..24], &bytes[22..24]);
        assert_eq!(&out[26..40], &bytes[26..40]);
        assert_eq!(&out[42..], &bytes[42..]);
    }

    /// Fixed-seed fuzz: random and mutated frames through every parser of
    /// this module never panic; whatever parses re-emits to the same meaning.
    #[test]
    fn fuzz_parsers_never_panic() {
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        let mut rnd = move || {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x
        };
        let seeds = [
            hex(UDP_FRAME),
            hex("ffff ffff ffff 0200 0000 0001 0806 0001 0800 0604 0001
                 0200 0000 0001 c000 0201 0000 0000 0000 c000 0202"),
        ];
        let (mut udp_ok, mut arp_ok) = (0, 0);
        for i in 0..50_000usize {
            let mut f: Vec<u8> = if i % 3 == 0 {
                (0..(rnd() % 120) as usize).map(|_| rnd() as u8).collect()
            } else {
                seeds[i % 2].clone()
            };
            if !f.is_empty() {
                for _ in 0..(rnd() % 4) {
                    let at = rnd() as usize % f.len();
                    f[at] = rnd() as u8;
                }
                if rnd() % 4 == 0 {
                    f.truncate(rnd() as usize % (f.len() + 1));
                }
            }
            if let Ok(u) = UdpFrame::parse_with(&f, UdpChecksum::Skip) {
                udp_ok += 1;
                let out = u.to_vec().unwrap();
                assert_eq!(UdpFrame::parse(&out).unwrap(), u);
            }
            if let Ok((eth, a)) = arp::parse_frame(&f) {
                arp_ok += 1;
                let out = arp::frame(eth.src_addr, eth.dst_addr, &a);
                assert_eq!(arp::parse_frame(&out).unwrap(), (eth, a));
            }
            if let Ok(p) = ipv4::Packet::new_checked(f.get(14..).unwrap_or_default()) {
                let _ = ipv4::Repr::parse(&p);
                let _ = (p.payload(), p.src_addr(), p.is_fragment());
            }
        }
        assert!(udp_ok > 100 && arp_ok > 100, "{udp_ok} {arp_ok}");
    }

    #[test]
    fn udp_frame_rejects_every_truncation() {
        let bytes = hex(UDP_FRAME);
        for n in 0..bytes.len() {
            assert!(UdpFrame::parse(&bytes[..n]).is_err(), "len {n}");
        }
    }
}
