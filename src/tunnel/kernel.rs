//! Kernel IPIP backend: one `ipip` device per peer CN, created and removed
//! over rtnetlink (`kmod-ipip` on OpenWrt). Where the kernel lacks the ipip
//! module, creating a device fails (EOPNOTSUPP, ENODEV or similar) and
//! [`probe`] reports why, so the controller falls back to userspace.

use super::ipip::TUNNEL_MTU;
use crate::netlink::{IpipParams, Netlink, NetlinkError};
use std::net::Ipv4Addr;

/// Creates and deletes a throw-away ipip device to learn whether the kernel
/// can make them. `Err` carries the reason for the log.
pub fn probe(nl: &mut Netlink, prefix: &str, local: Ipv4Addr) -> Result<(), String> {
    let mut name: String = prefix.chars().take(13).collect();
    name.push_str("pr");
    let p = IpipParams {
        name: name.clone(),
        local,
        remote: Ipv4Addr::UNSPECIFIED,
        ttl: 64,
        pmtudisc: true,
    };
    match nl.create_ipip(&p) {
        Ok(index) => {
            let _ = nl.delete_link(index);
            Ok(())
        }
        Err(NetlinkError::Kernel(e)) if e == libc::EEXIST => {
            // A probe device left by a crash: the kind exists. Remove it.
            if let Ok(i) = nl.link_index(&name) {
                let _ = nl.delete_link(i);
            }
            Ok(())
        }
        Err(e) => Err(format!("cannot create ipip devices ({e})")),
    }
}

/// Creates `name` as an ipip tunnel `local -> remote`, sets its MTU and
/// brings it up. Returns the interface index.
pub fn create(
    nl: &mut Netlink,
    name: &str,
    local: Ipv4Addr,
    remote: Ipv4Addr,
    ttl: u8,
) -> Result<u32, NetlinkError> {
    let index = nl.create_ipip(&IpipParams {
        name: name.to_string(),
        local,
        remote,
        ttl,
        pmtudisc: true,
    })?;
    let up = nl
        .set_link_mtu(index, TUNNEL_MTU)
        .and_then(|_| nl.set_link_up(index, true));
    if let Err(e) = up {
        let _ = nl.delete_link(index);
        return Err(e);
    }
    Ok(index)
}

pub fn destroy(nl: &mut Netlink, index: u32) -> Result<(), NetlinkError> {
    nl.delete_link(index)
}
