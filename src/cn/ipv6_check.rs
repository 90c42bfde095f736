//! IPv6 on the mobile interface: a warning for the operator.
//!
//! TMip moves IPv4 /30 cells; IPv6 is not mobile. On OpenWrt, odhcpd sends
//! router advertisements on LAN-like interfaces by default, so a
//! dual-stack station in a TMip cell takes a per-cell IPv6 address, and its
//! IPv6 sessions (which browsers prefer) break on every move. tmipd warns
//! at start when `mobile_if` has a global IPv6 address, and when a router
//! advertisement arrives on it in the first [`WATCH`] (it sends a router
//! solicitation to provoke one). docs/OPENWRT.md shows the uci settings
//! that turn RA/DHCPv6 off for the mobility network.

use crate::sys::socket as sock;
use std::io;
use std::net::Ipv6Addr;
use std::os::fd::{AsFd, OwnedFd};
use std::time::{Duration, Instant};

/// How long after start router advertisements are listened for.
pub const WATCH: Duration = Duration::from_secs(15);

const ND_ROUTER_SOLICIT: u8 = 133;
const ND_ROUTER_ADVERT: u8 = 134;

/// The advice every warning ends with.
const ADVICE: &str = "dual-stack stations take a per-cell IPv6 address and their IPv6 sessions break on every move; turn RA and DHCPv6 off for the mobility network (docs/OPENWRT.md, \"IPv6\")";

/// Global IPv6 addresses of `ifname` (`addr/len`), from /proc/net/if_inet6.
pub fn global_addresses(ifname: &str) -> Vec<String> {
    std::fs::read_to_string("/proc/net/if_inet6")
        .map(|t| parse_if_inet6(&t, ifname))
        .unwrap_or_default()
}

/// /proc/net/if_inet6 lines: address (32 hex digits), ifindex, prefix
/// length, scope, flags (all hex), name. Scope 0 is global.
fn parse_if_inet6(text: &str, ifname: &str) -> Vec<String> {
    text.lines()
        .filter_map(|l| {
            let f: Vec<&str> = l.split_whitespace().collect();
            let [hex, _, plen, scope, _, name] = f[..] else {
                return None;
            };
            if name != ifname || scope != "00" || hex.len() != 32 {
                return None;
            }
            let bits = u128::from_str_radix(hex, 16).ok()?;
            let plen = u8::from_str_radix(plen, 16).ok()?;
            Some(format!("{}/{plen}", Ipv6Addr::from(bits)))
        })
        .collect()
}

/// Warn (once per address) about global IPv6 addresses on `ifname`.
pub fn warn_global_addresses(ifname: &str) {
    for a in global_addresses(ifname) {
        log::warn!(target: "cn", "mobile_if {ifname} has the global IPv6 address {a}: {ADVICE}");
    }
}

/// Listens for router advertisements on the mobile interface for a while.
pub struct RaWatch {
    fd: OwnedFd,
    ifname: String,
    until: Instant,
    warned: bool,
}

impl RaWatch {
    /// Open an ICMPv6 socket on `ifname` that passes only router
    /// advertisements, and solicit one. `None` (logged at debug) when the
    /// interface has no IPv6 or raw sockets are not allowed.
    pub fn start(ifname: &str, ifindex: u32, now: Instant) -> Option<RaWatch> {
        match open(ifname, ifindex) {
            Ok(fd) => Some(RaWatch {
                fd,
                ifname: ifname.to_string(),
                until: now + WATCH,
                warned: false,
            }),
            Err(e) => {
                log::debug!(target: "cn", "no IPv6 router-advertisement check on {ifname}: {e}");
                None
            }
        }
    }

    /// Read what arrived; warn at the first advertisement. `false` when the
    /// watch is over (drop it).
    pub fn poll(&mut self, now: Instant) -> bool {
        let mut buf = [0u8; 1500];
        while let Ok((n, src)) = sock::recv_from_v6(self.fd.as_fd(), &mut buf) {
            if n == 0 {
                break;
            }
            if n >= 16 && buf[0] == ND_ROUTER_ADVERT && !self.warned {
                self.warned = true;
                let prefixes = ra_prefixes(&buf[..n]);
                let what = if prefixes.is_empty() {
                    String::new()
                } else {
                    format!(" (prefix {})", prefixes.join(", "))
                };
                log::warn!(target: "cn", "router advertisement on mobile_if {} from {src}{what}: {ADVICE}", self.ifname);
            }
        }
        !self.warned && now < self.until
    }
}

/// The prefixes of an RA's prefix-information options (type 3).
fn ra_prefixes(ra: &[u8]) -> Vec<String> {
    let mut out = Vec::new();
    let mut opts = ra.get(16..).unwrap_or(&[]);
    while opts.len() >= 8 {
        let len = usize::from(opts[1]) * 8;
        if len == 0 || len > opts.len() {
            break;
        }
        if opts[0] == 3 && len == 32 {
            let mut p = [0u8; 16];
            p.copy_from_slice(&opts[16..32]);
            out.push(format!("{}/{}", Ipv6Addr::from(p), opts[2]));
        }
        opts = &opts[len..];
    }
    out
}

fn open(ifname: &str, ifindex: u32) -> io::Result<OwnedFd> {
    let fd = sock::open(
        libc::AF_INET6,
        libc::SOCK_RAW | libc::SOCK_NONBLOCK,
        libc::IPPROTO_ICMPV6,
    )?;
    if ifname.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name",
        ));
    }
    sock::bind_to_device(fd.as_fd(), ifname)?;
    // ICMP6_FILTER (RFC 3542): a bit set blocks that type; pass only RAs.
    let mut filter = [u32::MAX; 8];
    filter[usize::from(ND_ROUTER_ADVERT >> 5)] &= !(1u32 << (ND_ROUTER_ADVERT & 31));
    const ICMP6_FILTER: libc::c_int = 1;
    sock::set_option(fd.as_fd(), libc::IPPROTO_ICMPV6, ICMP6_FILTER, &filter)?;
    // A router solicitation to ff02::2 (hop limit 255, as routers require).
    sock::set_int(
        fd.as_fd(),
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_HOPS,
        255,
    )?;
    sock::set_int(
        fd.as_fd(),
        libc::IPPROTO_IPV6,
        libc::IPV6_MULTICAST_IF,
        ifindex as libc::c_int,
    )?;
    let all_routers = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 2);
    let rs = [ND_ROUTER_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    // The kernel fills the checksum.
    if let Err(e) = sock::send_to_v6(fd.as_fd(), &rs, all_routers, ifindex) {
        // No IPv6 address on the interface yet, or IPv6 off: listen anyway.
        log::debug!(target: "cn", "router solicitation on {ifname}: {e}");
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn global_addresses_of_one_interface_from_if_inet6() {
        let t = "fe800000000000000000000000000001 03 40 20 80     mob0\n\
                 20010db8000100000000000000000001 03 40 00 80     mob0\n\
                 20010db8000200000000000000000001 04 40 00 80     core0\n\
                 00000000000000000000000000000001 01 80 10 80       lo\n\
                 garbage\n";
        assert_eq!(parse_if_inet6(t, "mob0"), vec!["2001:db8:1::1/64"]);
        assert!(parse_if_inet6(t, "lo").is_empty());
    }

    #[test]
    fn prefixes_of_a_router_advertisement() {
        let mut ra = vec![134, 0, 0, 0, 64, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        // Source link-layer address option, then a prefix information option.
        ra.extend_from_slice(&[1, 1, 2, 0, 0, 0, 0, 1]);
        let mut pio = vec![3, 4, 64, 0xc0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        pio.extend_from_slice(&Ipv6Addr::new(0x2001, 0xdb8, 9, 0, 0, 0, 0, 0).octets());
        ra.extend_from_slice(&pio);
        assert_eq!(ra_prefixes(&ra), vec!["2001:db8:9::/64"]);
        assert!(ra_prefixes(&ra[..20]).is_empty());
    }
}
