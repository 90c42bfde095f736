//! The TMip addressing rule and the MAC address type shared by every module.
//!
//! Every mobile station owns one /30 for life: network N, station N+1,
//! gateway N+2, broadcast N+3, mask 255.255.255.252.

use core::fmt;
use core::str::FromStr;
use std::net::Ipv4Addr;

/// A station's /30 cell, identified by its network address (low two bits zero).
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Debug)]
pub struct Cell30(u32);

impl Cell30 {
    pub const MASK: Ipv4Addr = Ipv4Addr::new(255, 255, 255, 252);
    pub const PREFIX_LEN: u8 = 30;

    /// The cell whose network address is `net`; `None` if `net` is not /30-aligned.
    pub fn from_network(net: Ipv4Addr) -> Option<Cell30> {
        let n = u32::from(net);
        (n & 3 == 0).then_some(Cell30(n))
    }

    /// The cell containing `ip` (any of its four addresses).
    pub fn containing(ip: Ipv4Addr) -> Cell30 {
        Cell30(u32::from(ip) & !3)
    }

    pub fn network(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0)
    }
    /// N+1: the station's address.
    pub fn station(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 1)
    }
    /// N+2: the gateway every CN answers for while the station is with it.
    pub fn gateway(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 2)
    }
    pub fn broadcast(self) -> Ipv4Addr {
        Ipv4Addr::from(self.0 + 3)
    }
    pub fn to_u32(self) -> u32 {
        self.0
    }
    pub fn contains(self, ip: Ipv4Addr) -> bool {
        u32::from(ip) & !3 == self.0
    }
}

impl fmt::Display for Cell30 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/30", self.network())
    }
}

/// An IEEE 802 MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    pub const BROADCAST: MacAddr = MacAddr([0xff; 6]);
    pub const ZERO: MacAddr = MacAddr([0; 6]);

    pub fn from_bytes(b: &[u8]) -> Option<MacAddr> {
        Some(MacAddr(b.get(..6)?.try_into().ok()?))
    }
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    pub fn is_multicast(&self) -> bool {
        self.0[0] & 1 == 1
    }
    /// A unicast, non-zero address: the only kind a station can have.
    pub fn is_station(&self) -> bool {
        !self.is_multicast() && *self != Self::ZERO
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            b[0], b[1], b[2], b[3], b[4], b[5]
        )
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid MAC address (want xx:xx:xx:xx:xx:xx)")
    }
}

impl std::error::Error for ParseMacError {}

impl FromStr for MacAddr {
    type Err = ParseMacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in out.iter_mut() {
            let p = parts.next().ok_or(ParseMacError)?;
            if p.len() != 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(p, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddr(out))
    }
}

/// Parse a dotted-quad netmask into a prefix length; `None` if not contiguous.
pub fn mask_to_prefix(mask: Ipv4Addr) -> Option<u8> {
    let m = u32::from(mask);
    let len = m.leading_ones();
    (m.checked_shl(len).unwrap_or(0) == 0).then_some(len as u8)
}

pub fn prefix_to_mask(len: u8) -> Ipv4Addr {
    let len = len.min(32) as u32;
    Ipv4Addr::from(if len == 0 { 0 } else { u32::MAX << (32 - len) })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cell_follows_the_tmip_rule() {
        let c = Cell30::from_network(Ipv4Addr::new(10, 13, 102, 4)).unwrap();
        assert_eq!(c.station(), Ipv4Addr::new(10, 13, 102, 5));
        assert_eq!(c.gateway(), Ipv4Addr::new(10, 13, 102, 6));
        assert_eq!(c.broadcast(), Ipv4Addr::new(10, 13, 102, 7));
        assert_eq!(Cell30::containing(Ipv4Addr::new(10, 13, 102, 7)), c);
        assert!(Cell30::from_network(Ipv4Addr::new(10, 13, 102, 5)).is_none());
    }

    #[test]
    fn mac_parses_and_prints() {
        let m: MacAddr = "00:03:ce:88:62:C3".parse().unwrap();
        assert_eq!(m.to_string(), "00:03:ce:88:62:c3");
        assert!(m.is_station());
        assert!("00:03:ce:88:62".parse::<MacAddr>().is_err());
        assert!("00:03:ce:88:62:c3:11".parse::<MacAddr>().is_err());
        assert!("zz:03:ce:88:62:c3".parse::<MacAddr>().is_err());
    }

    #[test]
    fn masks_convert_both_ways() {
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 255, 255, 252)), Some(30));
        assert_eq!(mask_to_prefix(Ipv4Addr::new(255, 0, 255, 0)), None);
        assert_eq!(prefix_to_mask(24), Ipv4Addr::new(255, 255, 255, 0));
        assert_eq!(prefix_to_mask(0), Ipv4Addr::new(0, 0, 0, 0));
    }
}
