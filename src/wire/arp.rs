//! ARP (RFC 826) for Ethernet/IPv4, the only kind TMip sees or sends.
//!
//! Besides parsing, this builds the two frames a CN uses to pull a station's
//! gateway entry (N+2) over to itself the moment it adopts the station:
//! - [`Repr::announcement`], a gratuitous ARP request (RFC 5227 §2.3), sent
//!   to the broadcast address;
//! - [`Repr::gratuitous_reply`], "N+2 is at <CN mac>" with sender and target
//!   both N+2, sent unicast to the station's MAC. Linux treats a reply whose
//!   sender IP equals its target IP as gratuitous and overrides an existing
//!   neighbour entry at once, without waiting for `locktime`.
//! - [`Repr::reply`], an ordinary reply to one station ("N+2 is at <mac>",
//!   target N+1), for answering its requests.
//!
//! [`frame`] wraps any of them in an Ethernet header.

use super::ethernet::{self, EtherType};
use super::{Error, Result};
use crate::addr::MacAddr;
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const HTYPE: Range<usize> = 0..2;
    pub const PTYPE: Range<usize> = 2..4;
    pub const HLEN: usize = 4;
    pub const PLEN: usize = 5;
    pub const OPER: Range<usize> = 6..8;
    // The following ranges hold for HLEN 6 / PLEN 4 (Ethernet/IPv4) only;
    // `Packet::new_checked` guarantees the buffer is long enough for them
    // and `Repr::parse` refuses other lengths.
    pub const SHA: Range<usize> = 8..14;
    pub const SPA: Range<usize> = 14..18;
    pub const THA: Range<usize> = 18..24;
    pub const TPA: Range<usize> = 24..28;
}

/// Length of an Ethernet/IPv4 ARP packet.
pub const PACKET_LEN: usize = field::TPA.end;
/// Length of an ARP frame with its Ethernet header (before padding to 60).
pub const FRAME_LEN: usize = ethernet::HEADER_LEN + PACKET_LEN;

const HTYPE_ETHERNET: u16 = 1;
const PTYPE_IPV4: u16 = 0x0800;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Operation {
    Request,
    Reply,
    Unknown(u16),
}

impl From<u16> for Operation {
    fn from(v: u16) -> Self {
        match v {
            1 => Operation::Request,
            2 => Operation::Reply,
            other => Operation::Unknown(other),
        }
    }
}

impl From<Operation> for u16 {
    fn from(o: Operation) -> u16 {
        match o {
            Operation::Request => 1,
            Operation::Reply => 2,
            Operation::Unknown(v) => v,
        }
    }
}

/// A view of an ARP packet (the Ethernet payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ipv4_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

fn mac_at(b: &[u8]) -> MacAddr {
    MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after checking the buffer holds an Ethernet/IPv4-sized packet.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < PACKET_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn hardware_type(&self) -> u16 {
        self.u16_at(field::HTYPE)
    }
    pub fn protocol_type(&self) -> u16 {
        self.u16_at(field::PTYPE)
    }
    pub fn hardware_len(&self) -> u8 {
        self.buffer.as_ref()[field::HLEN]
    }
    pub fn protocol_len(&self) -> u8 {
        self.buffer.as_ref()[field::PLEN]
    }
    pub fn operation(&self) -> Operation {
        Operation::from(self.u16_at(field::OPER))
    }
    pub fn source_hardware_addr(&self) -> MacAddr {
        mac_at(&self.buffer.as_ref()[field::SHA])
    }
    pub fn source_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::SPA])
    }
    pub fn target_hardware_addr(&self) -> MacAddr {
        mac_at(&self.buffer.as_ref()[field::THA])
    }
    pub fn target_protocol_addr(&self) -> Ipv4Addr {
        ipv4_at(&self.buffer.as_ref()[field::TPA])
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_hardware_type(&mut self, v: u16) {
        self.set_u16_at(field::HTYPE, v)
    }
    pub fn set_protocol_type(&mut self, v: u16) {
        self.set_u16_at(field::PTYPE, v)
    }
    pub fn set_hardware_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::HLEN] = v;
    }
    pub fn set_protocol_len(&mut self, v: u8) {
        self.buffer.as_mut()[field::PLEN] = v;
    }
    pub fn set_operation(&mut self, o: Operation) {
        self.set_u16_at(field::OPER, o.into())
    }
    pub fn set_source_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::SHA].copy_from_slice(&a.0);
    }
    pub fn set_source_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::SPA].copy_from_slice(&a.octets());
    }
    pub fn set_target_hardware_addr(&mut self, a: MacAddr) {
        self.buffer.as_mut()[field::THA].copy_from_slice(&a.0);
    }
    pub fn set_target_protocol_addr(&mut self, a: Ipv4Addr) {
        self.buffer.as_mut()[field::TPA].copy_from_slice(&a.octets());
    }
}

/// The meaning of an Ethernet/IPv4 ARP packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub operation: Operation,
    pub source_hardware_addr: MacAddr,
    pub source_protocol_addr: Ipv4Addr,
    pub target_hardware_addr: MacAddr,
    pub target_protocol_addr: Ipv4Addr,
}

impl Repr {
    /// Parse; anything but Ethernet/IPv4 request or reply is refused.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.hardware_type() != HTYPE_ETHERNET || p.hardware_len() != 6 {
            return Err(Error::Unsupported("ARP hardware type is not Ethernet"));
        }
        if p.protocol_type() != PTYPE_IPV4 || p.protocol_len() != 4 {
            return Err(Error::Unsupported("ARP protocol type is not IPv4"));
        }
        let operation = p.operation();
        if let Operation::Unknown(_) = operation {
            return Err(Error::Unsupported("ARP operation"));
        }
        Ok(Repr {
            operation,
            source_hardware_addr: p.source_hardware_addr(),
            source_protocol_addr: p.source_protocol_addr(),
            target_hardware_addr: p.target_hardware_addr(),
            target_protocol_addr: p.target_protocol_addr(),
        })
    }

    pub const fn buffer_len(&self) -> usize {
        PACKET_LEN
    }

    /// Write the packet; the buffer must hold at least `PACKET_LEN` bytes.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, p: &mut Packet<T>) {
        p.set_hardware_type(HTYPE_ETHERNET);
        p.set_protocol_type(PTYPE_IPV4);
        p.set_hardware_len(6);
        p.set_protocol_len(4);
        p.set_operation(self.operation);
        p.set_source_hardware_addr(self.source_hardware_addr);
        p.set_source_protocol_addr(self.source_protocol_addr);
        p.set_target_hardware_addr(self.target_hardware_addr);
        p.set_target_protocol_addr(self.target_protocol_addr);
    }

    /// Gratuitous ARP announcement (RFC 5227 §2.3): a request with sender
    /// and target IP both `ip`, target MAC zero. Send to broadcast.
    pub fn announcement(mac: MacAddr, ip: Ipv4Addr) -> Repr {
        Repr {
            operation: Operation::Request,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: MacAddr::ZERO,
            target_protocol_addr: ip,
        }
    }

    /// Gratuitous reply "`ip` is at `mac`" (sender = target on both layers),
    /// to send unicast to one station so it replaces its entry for `ip` now.
    pub fn gratuitous_reply(mac: MacAddr, ip: Ipv4Addr) -> Repr {
        Repr {
            operation: Operation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: mac,
            target_protocol_addr: ip,
        }
    }

    /// Ordinary reply "`ip` is at `mac`" addressed to one station.
    pub fn reply(mac: MacAddr, ip: Ipv4Addr, station_mac: MacAddr, station_ip: Ipv4Addr) -> Repr {
        Repr {
            operation: Operation::Reply,
            source_hardware_addr: mac,
            source_protocol_addr: ip,
            target_hardware_addr: station_mac,
            target_protocol_addr: station_ip,
        }
    }

    /// Is this a request for `ip` (someone asking who has it)?
    pub fn is_request_for(&self, ip: Ipv4Addr) -> bool {
        self.operation == Operation::Request && self.target_protocol_addr == ip
    }
}

/// An ARP frame from `src` to Ethernet destination `dst` (broadcast for an
/// announcement, the station's MAC for a unicast reply).
pub fn frame(src: MacAddr, dst: MacAddr, repr: &Repr) -> [u8; FRAME_LEN] {
    let mut buf = [0u8; FRAME_LEN];
    let (eth, arp) = buf.split_at_mut(ethernet::HEADER_LEN);
    ethernet::Repr {
        src_addr: src,
        dst_addr: dst,
        ethertype: EtherType::Arp,
    }
    .emit(&mut ethernet::Frame::new_unchecked(eth));
    repr.emit(&mut Packet::new_unchecked(arp));
    buf
}

/// Parse a whole Ethernet frame carrying ARP: the Ethernet header and the ARP meaning.
pub fn parse_frame(frame: &[u8]) -> Result<(ethernet::Repr, Repr)> {
    let f = ethernet::Frame::new_checked(frame)?;
    let eth = ethernet::Repr::parse(&f)?;
    if eth.ethertype != EtherType::Arp {
        return Err(Error::Unsupported("not ARP"));
    }
    let p = Packet::new_checked(f.into_payload())?;
    Ok((eth, Repr::parse(&p)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    const M1: MacAddr = MacAddr([2, 0, 0, 0, 0, 1]);
    const M2: MacAddr = MacAddr([2, 0, 0, 0, 0, 2]);
    const IP1: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const IP2: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);

    /// `tcpdump -xx`: Request who-has 192.0.2.2 tell 192.0.2.1.
    const REQUEST: &str = "ffff ffff ffff 0200 0000 0001 0806 0001
        0800 0604 0001 0200 0000 0001 c000 0201 0000 0000 0000 c000 0202";
    /// `tcpdump -xx`: Reply 192.0.2.2 is-at 02:00:00:00:00:02.
    const REPLY: &str = "0200 0000 0001 0200 0000 0002 0806 0001
        0800 0604 0002 0200 0000 0002 c000 0202 0200 0000 0001 c000 0201";

    #[test]
    fn parses_real_request_and_reply() {
        let (eth, req) = parse_frame(&hex(REQUEST)).unwrap();
        assert_eq!(eth.dst_addr, MacAddr::BROADCAST);
        assert_eq!(req.operation, Operation::Request);
        assert_eq!(req.source_hardware_addr, M1);
        assert_eq!(req.source_protocol_addr, IP1);
        assert!(req.is_request_for(IP2));
        let (_, rep) = parse_frame(&hex(REPLY)).unwrap();
        assert_eq!(rep, Repr::reply(M2, IP2, M1, IP1));
    }

    #[test]
    fn builds_the_same_bytes_as_the_kernel() {
        assert_eq!(
            frame(
                M1,
                MacAddr::BROADCAST,
                &Repr {
                    operation: Operation::Request,
                    source_hardware_addr: M1,
                    source_protocol_addr: IP1,
                    target_hardware_addr: MacAddr::ZERO,
                    target_protocol_addr: IP2,
                }
            )
            .to_vec(),
            hex(REQUEST)
        );
        assert_eq!(
            frame(M2, M1, &Repr::reply(M2, IP2, M1, IP1)).to_vec(),
            hex(REPLY)
        );
    }

    #[test]
    fn gratuitous_frames_have_sender_equal_target() {
        // arping -U style announcement of 10.0.0.6 by 02:..:02.
        let ann = frame(
            M2,
            MacAddr::BROADCAST,
            &Repr::announcement(M2, Ipv4Addr::new(10, 0, 0, 6)),
        );
        assert_eq!(
            ann.to_vec(),
            hex("ffff ffff ffff 0200 0000 0002 0806 0001 0800 0604 0001
                 0200 0000 0002 0a00 0006 0000 0000 0000 0a00 0006")
        );
        let st = MacAddr([2, 0, 0, 0, 0, 9]);
        let rep = frame(
            M2,
            st,
            &Repr::gratuitous_reply(M2, Ipv4Addr::new(10, 0, 0, 6)),
        );
        assert_eq!(
            rep.to_vec(),
            hex("0200 0000 0009 0200 0000 0002 0806 0001 0800 0604 0002
                 0200 0000 0002 0a00 0006 0200 0000 0002 0a00 0006")
        );
        let (eth, r) = parse_frame(&rep).unwrap();
        assert_eq!(eth.dst_addr, st);
        assert_eq!(r.source_protocol_addr, r.target_protocol_addr);
    }

    #[test]
    fn refuses_other_types_and_short_packets() {
        let mut b = hex(REQUEST);
        b[14 + 5] = 16; // IPv6-sized protocol address
        assert!(matches!(parse_frame(&b), Err(Error::Unsupported(_))));
        let mut b = hex(REQUEST);
        b[14 + 7] = 3; // RARP request
        assert!(matches!(parse_frame(&b), Err(Error::Unsupported(_))));
        let b = hex(REQUEST);
        for n in 0..b.len() {
            assert!(parse_frame(&b[..n]).is_err(), "len {n}");
        }
    }
}
