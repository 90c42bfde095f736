//! What a frame on the mobile interface reveals about its sender: the
//! classifier the arrival capture (`capture.rs`) runs on every captured
//! frame (ARP, IPv4, DHCP client messages). Pure and I/O-free, so it is
//! unit-tested and fuzzed (`fuzz/fuzz_targets/frame_classifier.rs`) without
//! libpcap.
//!
//! Captured IPv4 packets are usually cut by the capture's snaplen, so the
//! IPv4 header is read only after checking the header itself is complete
//! (the `ipv4::Packet` checked constructor would reject the truncated
//! payload).

use crate::addr::MacAddr;
use crate::wire::{arp, ethernet, ipv4};
use core::fmt;
use std::net::Ipv4Addr;

const DHCP_SERVER_PORT: u16 = 67;
const DHCP_CLIENT_PORT: u16 = 68;

/// What kind of frame revealed the station.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArrivalKind {
    /// An ARP request or reply (sender address).
    Arp,
    /// Any other IPv4 packet (source address).
    Ip,
    /// A DHCP client message (UDP 68 -> 67), usually from 0.0.0.0.
    Dhcp,
}

/// A station seen on the mobile interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Arrival {
    pub mac: MacAddr,
    /// Its IPv4 address, when the frame carried a usable one (not 0.0.0.0,
    /// broadcast or multicast).
    pub ip: Option<Ipv4Addr>,
    pub kind: ArrivalKind,
}

impl fmt::Display for Arrival {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.ip {
            Some(ip) => write!(f, "{} ({ip}) by {:?}", self.mac, self.kind),
            None => write!(f, "{} by {:?}", self.mac, self.kind),
        }
    }
}

fn usable(ip: Ipv4Addr) -> Option<Ipv4Addr> {
    (!ip.is_unspecified() && !ip.is_broadcast() && !ip.is_multicast()).then_some(ip)
}

/// Parse one captured Ethernet frame into an arrival; `None` for frames
/// that do not reveal a station (non-unicast source, ARP whose sender
/// hardware address differs from the Ethernet source, truncated headers,
/// other protocols). Never panics.
pub fn parse_frame(frame: &[u8]) -> Option<Arrival> {
    let eth = ethernet::Frame::new_checked(frame).ok()?;
    let src = eth.src_addr();
    if !src.is_station() {
        return None;
    }
    match eth.ethertype() {
        ethernet::EtherType::Arp => {
            let p = arp::Packet::new_checked(eth.payload()).ok()?;
            let r = arp::Repr::parse(&p).ok()?;
            // A proxied or forged ARP does not place the sender here.
            if r.source_hardware_addr != src {
                return None;
            }
            Some(Arrival {
                mac: src,
                ip: usable(r.source_protocol_addr),
                kind: ArrivalKind::Arp,
            })
        }
        ethernet::EtherType::Ipv4 => {
            let b = eth.payload();
            // The header itself must be whole; the payload may be cut by the snaplen.
            if b.len() < ipv4::HEADER_LEN {
                return None;
            }
            let p = ipv4::Packet::new_unchecked(b);
            let hl = usize::from(p.header_len());
            if p.version() != 4 || hl < ipv4::HEADER_LEN || hl > b.len() {
                return None;
            }
            let ip = p.src_addr();
            let mut kind = ArrivalKind::Ip;
            if p.protocol() == ipv4::Protocol::Udp && !p.is_fragment() {
                if let Some(ports) = b.get(hl..hl + 4) {
                    let sport = u16::from_be_bytes([ports[0], ports[1]]);
                    let dport = u16::from_be_bytes([ports[2], ports[3]]);
                    if sport == DHCP_CLIENT_PORT && dport == DHCP_SERVER_PORT {
                        kind = ArrivalKind::Dhcp;
                    }
                }
            }
            Some(Arrival {
                mac: src,
                ip: usable(ip),
                kind,
            })
        }
        _ => None,
    }
}

/// Frames as the capture sees them, for the classifier's and the
/// capture's tests.
#[cfg(test)]
pub(crate) mod test_frames {
    use crate::addr::MacAddr;

    pub const STA: MacAddr = MacAddr([0x02, 0x5a, 0, 0, 0, 1]);

    pub fn eth(src: MacAddr, ethertype: u16, payload: &[u8]) -> Vec<u8> {
        let mut f = vec![0xff; 6];
        f.extend_from_slice(&src.0);
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(payload);
        f
    }

    /// ARP request who-has 10.0.0.2 tell 10.0.0.1 from STA.
    pub fn arp_request(sha: MacAddr, spa: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0, 1, 8, 0, 6, 4, 0, 1];
        p.extend_from_slice(&sha.0);
        p.extend_from_slice(&spa);
        p.extend_from_slice(&[0; 6]);
        p.extend_from_slice(&[10, 0, 0, 2]);
        p
    }

    /// IPv4 header (20 bytes) + 4 bytes of L4, total_len claiming 1500
    /// (as a snaplen-cut capture looks).
    pub fn ipv4(src: [u8; 4], proto: u8, sport: u16, dport: u16) -> Vec<u8> {
        let mut h = vec![0x45, 0, 0x05, 0xdc, 0, 0, 0x40, 0, 64, proto, 0, 0];
        h.extend_from_slice(&src);
        h.extend_from_slice(&[10, 0, 0, 2]);
        h.extend_from_slice(&sport.to_be_bytes());
        h.extend_from_slice(&dport.to_be_bytes());
        h
    }
}

#[cfg(test)]
mod tests {
    use super::test_frames::*;
    use super::*;

    #[test]
    fn arp_sender_is_reported() {
        let f = eth(STA, 0x0806, &arp_request(STA, [10, 0, 0, 1]));
        assert_eq!(
            parse_frame(&f),
            Some(Arrival {
                mac: STA,
                ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
                kind: ArrivalKind::Arp
            })
        );
        // ARP probe (sender 0.0.0.0): the MAC, no address.
        let f = eth(STA, 0x0806, &arp_request(STA, [0, 0, 0, 0]));
        assert_eq!(parse_frame(&f).map(|a| a.ip), Some(None));
        // Sender hardware address differs from the Ethernet source: ignored.
        let other = MacAddr([2, 0, 0, 0, 0, 9]);
        assert_eq!(
            parse_frame(&eth(STA, 0x0806, &arp_request(other, [10, 0, 0, 1]))),
            None
        );
    }

    #[test]
    fn truncated_ip_capture_gives_source_and_dhcp_is_recognised() {
        let f = eth(STA, 0x0800, &ipv4([10, 0, 0, 1], 6, 40000, 80));
        assert_eq!(
            parse_frame(&f),
            Some(Arrival {
                mac: STA,
                ip: Some(Ipv4Addr::new(10, 0, 0, 1)),
                kind: ArrivalKind::Ip
            })
        );
        let f = eth(STA, 0x0800, &ipv4([0, 0, 0, 0], 17, 68, 67));
        assert_eq!(
            parse_frame(&f),
            Some(Arrival {
                mac: STA,
                ip: None,
                kind: ArrivalKind::Dhcp
            })
        );
        let f = eth(STA, 0x0800, &ipv4([10, 0, 0, 1], 17, 68, 67));
        assert_eq!(parse_frame(&f).map(|a| a.kind), Some(ArrivalKind::Dhcp));
    }

    #[test]
    fn non_station_sources_and_junk_ignored() {
        let bcast = eth(MacAddr::BROADCAST, 0x0800, &ipv4([10, 0, 0, 1], 6, 1, 2));
        assert_eq!(parse_frame(&bcast), None);
        let mcast = eth(
            MacAddr([1, 0, 0x5e, 0, 0, 1]),
            0x0800,
            &ipv4([10, 0, 0, 1], 6, 1, 2),
        );
        assert_eq!(parse_frame(&mcast), None);
        assert_eq!(parse_frame(&eth(STA, 0x86dd, &[0; 40])), None);
        let mut bad_ihl = ipv4([10, 0, 0, 1], 6, 1, 2);
        bad_ihl[0] = 0x4f; // 60-byte header, only 24 captured
        assert_eq!(parse_frame(&eth(STA, 0x0800, &bad_ihl)), None);
        let mut v6 = ipv4([10, 0, 0, 1], 6, 1, 2);
        v6[0] = 0x65;
        assert_eq!(parse_frame(&eth(STA, 0x0800, &v6)), None);
        // Every truncation and byte value at every offset is survived.
        for base in [
            eth(STA, 0x0806, &arp_request(STA, [10, 0, 0, 1])),
            eth(STA, 0x0800, &ipv4([10, 0, 0, 1], 17, 68, 67)),
        ] {
            for n in 0..base.len() {
                let _ = parse_frame(&base[..n]);
            }
            for i in 0..base.len() {
                for x in [0u8, 0x0f, 0x45, 0xff] {
                    let mut c = base.clone();
                    c[i] = x;
                    let _ = parse_frame(&c);
                }
            }
        }
    }
}
