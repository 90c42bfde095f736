//! UDP headers (RFC 768) over IPv4.

use super::{checksum, Error, Result};
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const SRC_PORT: Range<usize> = 0..2;
    pub const DST_PORT: Range<usize> = 2..4;
    pub const LENGTH: Range<usize> = 4..6;
    pub const CHECKSUM: Range<usize> = 6..8;
}

pub const HEADER_LEN: usize = field::CHECKSUM.end;

const PROTO_UDP: u8 = 17;

/// A view of a UDP datagram. After `new_checked`, the length field is known
/// to be at least 8 and within the buffer.
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

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
        let field_len = usize::from(self.len());
        if field_len < HEADER_LEN {
            return Err(Error::Malformed("UDP length below 8"));
        }
        if field_len > len {
            return Err(Error::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn u16_at(&self, r: core::ops::Range<usize>) -> u16 {
        let b = &self.buffer.as_ref()[r];
        u16::from_be_bytes([b[0], b[1]])
    }

    pub fn src_port(&self) -> u16 {
        self.u16_at(field::SRC_PORT)
    }
    pub fn dst_port(&self) -> u16 {
        self.u16_at(field::DST_PORT)
    }
    /// The length field: header plus payload.
    pub fn len(&self) -> u16 {
        self.u16_at(field::LENGTH)
    }
    pub fn is_empty(&self) -> bool {
        usize::from(self.len()) <= HEADER_LEN
    }
    pub fn checksum(&self) -> u16 {
        self.u16_at(field::CHECKSUM)
    }
    pub fn payload(&self) -> &[u8] {
        &self.buffer.as_ref()[HEADER_LEN..usize::from(self.len())]
    }
    /// Does the checksum hold? A zero checksum means "not computed" and passes.
    pub fn verify_checksum(&self, src: Ipv4Addr, dst: Ipv4Addr) -> bool {
        if self.checksum() == 0 {
            return true;
        }
        let len = self.len();
        let data = &self.buffer.as_ref()[..usize::from(len)];
        checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTO_UDP, len),
            checksum::data(data),
        ]) == 0xffff
    }
}

impl<'a, T: AsRef<[u8]> + ?Sized> Packet<&'a T> {
    /// The payload with the lifetime of the underlying buffer.
    pub fn into_payload(self) -> &'a [u8] {
        let len = usize::from(self.len());
        &self.buffer.as_ref()[HEADER_LEN..len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn set_u16_at(&mut self, r: core::ops::Range<usize>, v: u16) {
        self.buffer.as_mut()[r].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_src_port(&mut self, v: u16) {
        self.set_u16_at(field::SRC_PORT, v)
    }
    pub fn set_dst_port(&mut self, v: u16) {
        self.set_u16_at(field::DST_PORT, v)
    }
    pub fn set_len(&mut self, v: u16) {
        self.set_u16_at(field::LENGTH, v)
    }
    pub fn set_checksum(&mut self, v: u16) {
        self.set_u16_at(field::CHECKSUM, v)
    }
    /// Compute and store the checksum over header and `len()` bytes.
    pub fn fill_checksum(&mut self, src: Ipv4Addr, dst: Ipv4Addr) {
        self.set_checksum(0);
        let len = self.len();
        let sum = !checksum::combine(&[
            checksum::pseudo_header(src, dst, PROTO_UDP, len),
            checksum::data(&self.buffer.as_ref()[..usize::from(len)]),
        ]);
        // RFC 768: a computed zero is sent as all ones.
        self.set_checksum(if sum == 0 { 0xffff } else { sum });
    }
    pub fn payload_mut(&mut self) -> &mut [u8] {
        let len = usize::from(self.len());
        &mut self.buffer.as_mut()[HEADER_LEN..len]
    }
}

/// The meaning of a UDP header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Repr {
    pub src_port: u16,
    pub dst_port: u16,
}

impl Repr {
    /// Parse a checked datagram, verifying its checksum when one was sent.
    pub fn parse<T: AsRef<[u8]>>(p: &Packet<T>, src: Ipv4Addr, dst: Ipv4Addr) -> Result<Repr> {
        p.check_len()?;
        if p.dst_port() == 0 {
            return Err(Error::Malformed("UDP destination port 0"));
        }
        if !p.verify_checksum(src, dst) {
            return Err(Error::Checksum);
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    /// Parse a checked datagram without looking at its checksum.
    pub fn parse_unverified<T: AsRef<[u8]>>(p: &Packet<T>) -> Result<Repr> {
        p.check_len()?;
        if p.dst_port() == 0 {
            return Err(Error::Malformed("UDP destination port 0"));
        }
        Ok(Repr {
            src_port: p.src_port(),
            dst_port: p.dst_port(),
        })
    }

    pub const fn header_len(&self) -> usize {
        HEADER_LEN
    }

    /// Write header and `payload` and fill the checksum. The buffer must hold
    /// `HEADER_LEN + payload.len()` bytes, and that must fit in 16 bits.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(
        &self,
        p: &mut Packet<T>,
        src: Ipv4Addr,
        dst: Ipv4Addr,
        payload: &[u8],
    ) -> Result<()> {
        let len = HEADER_LEN + payload.len();
        let len16 = u16::try_from(len).map_err(|_| Error::Malformed("UDP payload too long"))?;
        if p.buffer.as_ref().len() < len {
            return Err(Error::Truncated);
        }
        p.set_src_port(self.src_port);
        p.set_dst_port(self.dst_port);
        p.set_len(len16);
        p.payload_mut().copy_from_slice(payload);
        p.fill_checksum(src, dst);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::hex;

    const SRC: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 1);
    const DST: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 2);
    /// `tcpdump -xx` on a veth, UDP part: 43601 > 5000, "hello tmip". The
    /// capture had the offload placeholder 8427 (pseudo-header sum); 9c1c is
    /// the finished checksum, as the wire would carry it.
    const DATAGRAM: &str = "aa51 1388 0012 9c1c 6865 6c6c 6f20 746d 6970";
    const DATAGRAM_PARTIAL_SUM: &str = "aa51 1388 0012 8427 6865 6c6c 6f20 746d 6970";

    #[test]
    fn round_trips_real_datagram() {
        let b = hex(DATAGRAM);
        let p = Packet::new_checked(&b[..]).unwrap();
        let r = Repr::parse(&p, SRC, DST).unwrap();
        assert_eq!(
            r,
            Repr {
                src_port: 43601,
                dst_port: 5000
            }
        );
        assert_eq!(p.payload(), b"hello tmip");
        let mut out = vec![0u8; b.len()];
        r.emit(
            &mut Packet::new_unchecked(&mut out[..]),
            SRC,
            DST,
            b"hello tmip",
        )
        .unwrap();
        assert_eq!(out, b);
    }

    #[test]
    fn checksum_zero_passes_and_wrong_fails() {
        let mut b = hex(DATAGRAM);
        b[6..8].copy_from_slice(&[0, 0]);
        assert!(Repr::parse(&Packet::new_checked(&b[..]).unwrap(), SRC, DST).is_ok());
        let partial = hex(DATAGRAM_PARTIAL_SUM);
        let p = Packet::new_checked(&partial[..]).unwrap();
        assert_eq!(Repr::parse(&p, SRC, DST).unwrap_err(), Error::Checksum);
        assert!(Repr::parse_unverified(&p).is_ok());
        b[6..8].copy_from_slice(&[0x9c, 0x1d]);
        assert_eq!(
            Repr::parse(&Packet::new_checked(&b[..]).unwrap(), SRC, DST).unwrap_err(),
            Error::Checksum
        );
    }

    #[test]
    fn length_field_is_checked() {
        let mut b = hex(DATAGRAM);
        b[4..6].copy_from_slice(&7u16.to_be_bytes());
        assert!(matches!(
            Packet::new_checked(&b[..]),
            Err(Error::Malformed(_))
        ));
        b[4..6].copy_from_slice(&19u16.to_be_bytes());
        assert_eq!(Packet::new_checked(&b[..]).unwrap_err(), Error::Truncated);
        let emitted = Repr {
            src_port: 1,
            dst_port: 2,
        }
        .emit(
            &mut Packet::new_unchecked(&mut [0u8; 9][..]),
            SRC,
            DST,
            b"ab",
        );
        assert_eq!(emitted, Err(Error::Truncated));
    }
}
