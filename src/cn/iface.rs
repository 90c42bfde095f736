//! What the kernel says about an interface (address, MAC, mask, broadcast,
//! index), read from rtnetlink link and address dumps, for the start-up
//! report and for resolving `addr_pool IFACE * *`.

use crate::addr::{mask_to_prefix, prefix_to_mask, MacAddr};
use crate::netlink::{Netlink, NetlinkError};
use std::io;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub index: u32,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub mask: Ipv4Addr,
    pub broadcast: Ipv4Addr,
}

impl IfaceInfo {
    pub fn prefix(&self) -> u8 {
        mask_to_prefix(self.mask).unwrap_or(32)
    }

    /// The seed's report block.
    pub fn report(&self) -> [String; 5] {
        [
            format!("  + Interface: {}", self.name),
            format!("  + IP: {}", self.ip),
            format!("  + Mac: {}", self.mac),
            format!("  + Subnet: {}", self.mask),
            format!("  + Broadcast: {}", self.broadcast),
        ]
    }
}

fn bad_name(name: &str) -> bool {
    name.is_empty() || name.len() >= 16 || name.contains('\0')
}

/// Read `name`'s IPv4 settings. An interface with no IPv4 address is an error.
pub fn query(name: &str) -> io::Result<IfaceInfo> {
    if bad_name(name) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{name}'"),
        ));
    }
    let ctx = |what: &str, kind: io::ErrorKind| io::Error::new(kind, format!("{name}: {what}"));
    let netlink = |e: NetlinkError| io::Error::other(format!("{name}: {e}"));
    let mut nl = Netlink::open().map_err(netlink)?;
    let link = match nl.link_by_name(name) {
        Ok(l) => l,
        Err(NetlinkError::NoSuchLink(_)) => {
            return Err(ctx("no such interface", io::ErrorKind::NotFound))
        }
        Err(e) => return Err(netlink(e)),
    };
    let addrs = nl.addresses(Some(link.index)).map_err(netlink)?;
    // The address SIOCGIFADDR reported: the first labelled with the
    // interface's own name (an alias `eth0:1` has its own label).
    let a = addrs
        .iter()
        .find(|a| a.label == name)
        .or(addrs.first())
        .ok_or_else(|| ctx("no IPv4 address", io::ErrorKind::AddrNotAvailable))?;
    let (ip, mask) = (a.address, prefix_to_mask(a.prefix_len));
    // An address added without `brd` has none; show the subnet's.
    let broadcast = a
        .broadcast
        .filter(|b| !b.is_unspecified())
        .unwrap_or(Ipv4Addr::from(u32::from(ip) | !u32::from(mask)));
    Ok(IfaceInfo {
        name: name.to_string(),
        index: link.index,
        ip,
        mac: link.mac.unwrap_or(MacAddr::ZERO),
        mask,
        broadcast,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_reads_back() {
        let lo = query("lo").unwrap();
        assert_eq!(lo.ip, Ipv4Addr::LOCALHOST);
        assert_eq!(lo.prefix(), 8);
        assert!(lo.index > 0);
        assert!(query("nosuchif0")
            .unwrap_err()
            .to_string()
            .contains("nosuchif0"));
        assert!(query("this-name-is-too-long").is_err());
    }
}
