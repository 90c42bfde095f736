//! rtnetlink: links, addresses, routes, rules and neighbours, set by the
//! daemon itself (never by running `ip`). Everything a CN installs is
//! tagged so that a restarted daemon can find it again:
//! - routes carry `rtm_protocol = TMIP_RTPROT`,
//! - addresses carry `IFA_PROTO = TMIP_RTPROT` (Linux >= 6.1; older kernels
//!   ignore the attribute, so there the daemon must remember its addresses),
//! - rules carry `FRA_PROTOCOL = TMIP_RTPROT` and live in TMip's tables,
//! - proxy ARP entries carry `NDA_PROTOCOL = TMIP_RTPROT` (Linux >= 5.2),
//! - tunnel devices are named `<tunnel_prefix><n>`.
//!
//! [`Netlink::tagged_state`] lists what an earlier run left behind (for
//! adoption) and [`Netlink::purge`] removes it.

mod error;
pub mod message;
pub mod nftables;
pub mod socket;

pub use error::NetlinkError;
use message::*;
pub use message::{Address, IpipParams, Link, ProxyNeighbour, Route, Rule};
use socket::RtSocket;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};

/// The routing protocol number (and address/rule protocol) marking what TMip
/// installed. `ip route show proto 84` lists it; unassigned in rt_protos.
pub const TMIP_RTPROT: u8 = 0x54;

/// FNV-1a of an instance's `tunnel_prefix`: instances on one node derive
/// their reverse tables and hold-route metric from it, so they differ.
pub fn prefix_hash(tunnel_prefix: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in tunnel_prefix.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    h
}

/// Metric of the instance's hold routes: `unreachable N/30` under each cell
/// routed into a tunnel. They outlive the process (a userspace tunnel and
/// its route do not), so a correspondent keeps getting ICMP host
/// unreachable, which keeps its TCP retransmission timer from backing off
/// (RFC 6069) until the restarted CN routes the cell again.
pub fn hold_metric(tunnel_prefix: &str) -> u32 {
    0x5400_0000 + (prefix_hash(tunnel_prefix) & 0xffff)
}

/// What identifies one TMip instance's state on a node.
#[derive(Debug, Clone)]
pub struct Scope<'a> {
    /// Tunnel devices named `<tunnel_prefix>*` are this instance's.
    pub tunnel_prefix: &'a str,
    /// Interfaces whose TMip-tagged addresses and routes are this instance's
    /// (its mobile_if); routes via its tunnels are always included.
    pub interfaces: &'a [&'a str],
    /// Rule tables this instance uses (rules tagged TMIP_RTPROT pointing at them).
    pub tables: &'a [u32],
}

/// State an earlier run left behind.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TaggedState {
    pub links: Vec<Link>,
    pub addresses: Vec<Address>,
    pub routes: Vec<Route>,
    pub rules: Vec<Rule>,
    /// Proxy ARP entries on the scope's interfaces.
    pub proxies: Vec<ProxyNeighbour>,
}

/// Counts of what [`Netlink::purge`] removed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PurgeReport {
    pub links: usize,
    pub addresses: usize,
    pub routes: usize,
    pub rules: usize,
    pub proxies: usize,
}

/// An rtnetlink handle in the caller's network namespace.
pub struct Netlink {
    sock: RtSocket,
}

impl AsRawFd for Netlink {
    fn as_raw_fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }
}

impl Netlink {
    pub fn open() -> Result<Netlink, NetlinkError> {
        Ok(Netlink {
            sock: RtSocket::open()?,
        })
    }

    fn ack(&mut self, build: impl FnOnce(u32) -> Vec<u8>) -> Result<(), NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build(seq);
        self.sock.request_ack(&req, seq)
    }

    // ---- links ----

    /// The link named `name`, or `NoSuchLink`.
    pub fn link_by_name(&mut self, name: &str) -> Result<Link, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_get_link_by_name(name, seq);
        let mut found = None;
        let r = self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWLINK {
                found = Some(Link::parse(m)?);
            }
            Ok(())
        });
        match r {
            Err(NetlinkError::Kernel(libc::ENODEV)) => {
                return Err(NetlinkError::NoSuchLink(name.into()))
            }
            Err(e) => return Err(e),
            Ok(()) => {}
        }
        found.ok_or_else(|| NetlinkError::NoSuchLink(name.into()))
    }

    pub fn link_index(&mut self, name: &str) -> Result<u32, NetlinkError> {
        Ok(self.link_by_name(name)?.index)
    }

    pub fn links(&mut self) -> Result<Vec<Link>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump(RTM_GETLINK, &ifinfomsg(0, 0, 0), seq);
        let mut out = Vec::new();
        self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWLINK {
                out.push(Link::parse(m)?);
            }
            Ok(())
        })?;
        Ok(out)
    }

    pub fn set_link_up(&mut self, index: u32, up: bool) -> Result<(), NetlinkError> {
        self.ack(|seq| build_set_link_up(index, up, seq))
    }

    pub fn set_link_mtu(&mut self, index: u32, mtu: u32) -> Result<(), NetlinkError> {
        self.ack(|seq| build_set_link_mtu(index, mtu, seq))
    }

    pub fn delete_link(&mut self, index: u32) -> Result<(), NetlinkError> {
        self.ack(|seq| build_del_link(index, seq))
    }

    /// Creates a kernel ipip device. Without the ipip module the kernel
    /// answers EOPNOTSUPP (no such link kind) — the caller falls back.
    pub fn create_ipip(&mut self, p: &IpipParams) -> Result<u32, NetlinkError> {
        self.ack(|seq| build_new_ipip(p, seq))?;
        self.link_index(&p.name)
    }

    // ---- addresses ----

    pub fn add_address(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.ack(|seq| {
            build_addr(
                RTM_NEWADDR,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                index,
                addr,
                prefix_len,
                TMIP_RTPROT,
                seq,
            )
        })
    }

    pub fn delete_address(
        &mut self,
        index: u32,
        addr: Ipv4Addr,
        prefix_len: u8,
    ) -> Result<(), NetlinkError> {
        self.ack(|seq| {
            build_addr(
                RTM_DELADDR,
                NLM_F_REQUEST | NLM_F_ACK,
                index,
                addr,
                prefix_len,
                0,
                seq,
            )
        })
    }

    /// IPv4 addresses, of one interface or (index `None`) of all.
    pub fn addresses(&mut self, index: Option<u32>) -> Result<Vec<Address>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump(RTM_GETADDR, &ifaddrmsg(0, 0, 0), seq);
        let mut out = Vec::new();
        self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWADDR {
                if let Some(a) = Address::parse(m)? {
                    if index.is_none_or(|i| i == a.index) {
                        out.push(a);
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    // ---- routes ----

    /// Adds a route; fails with EEXIST if one with the same key exists.
    pub fn add_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        self.ack(|seq| {
            r.build(
                RTM_NEWROUTE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                seq,
            )
        })
    }

    /// Adds or replaces the route with the same destination/table/metric.
    pub fn replace_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        self.ack(|seq| {
            r.build(
                RTM_NEWROUTE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
                seq,
            )
        })
    }

    pub fn delete_route(&mut self, r: &Route) -> Result<(), NetlinkError> {
        self.ack(|seq| r.build(RTM_DELROUTE, NLM_F_REQUEST | NLM_F_ACK, seq))
    }

    /// All IPv4 routes of `table` (any table if `None`).
    pub fn routes(&mut self, table: Option<u32>) -> Result<Vec<Route>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump(RTM_GETROUTE, &rtmsg(0, 0, 0, 0, 0), seq);
        let mut out = Vec::new();
        self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWROUTE {
                if let Some(r) = Route::parse(m)? {
                    if table.is_none_or(|t| t == r.table) {
                        out.push(r);
                    }
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    // ---- rules ----

    pub fn add_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        self.ack(|seq| {
            r.build(
                RTM_NEWRULE,
                NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
                seq,
            )
        })
    }

    pub fn delete_rule(&mut self, r: &Rule) -> Result<(), NetlinkError> {
        self.ack(|seq| r.build(RTM_DELRULE, NLM_F_REQUEST | NLM_F_ACK, seq))
    }

    pub fn rules(&mut self) -> Result<Vec<Rule>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump(RTM_GETRULE, &fib_rule_hdr(0, 0, 0, 0), seq);
        let mut out = Vec::new();
        self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWRULE {
                if let Some(r) = Rule::parse(m)? {
                    out.push(r);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    // ---- neighbours ----

    /// A permanent ARP entry (replaces an existing one).
    pub fn add_neighbour(
        &mut self,
        index: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        self.ack(|seq| build_neigh_add(index, ip, mac, seq))
    }

    /// Remove the ARP entry for `ip` on `index` (`ENOENT` when none).
    pub fn delete_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
        self.ack(|seq| build_neigh_del(index, ip, seq))
    }

    /// A REACHABLE ARP entry (replaces an existing one, whatever its
    /// state): the kernel then manages it as if it had resolved it. Used
    /// when a station is adopted, whose MAC the CN already knows, so
    /// traffic to it never waits for (or is dropped by) ARP resolution.
    pub fn set_neighbour_reachable(
        &mut self,
        index: u32,
        ip: Ipv4Addr,
        mac: [u8; 6],
    ) -> Result<(), NetlinkError> {
        self.ack(|seq| build_neigh_state(index, ip, mac, NUD_REACHABLE, seq))
    }

    /// A proxy ARP entry, tagged TMip's: the kernel answers ARP for `ip`
    /// on `index` with that interface's MAC (needs forwarding on, and a
    /// route to `ip` out of another interface).
    pub fn add_proxy_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
        let p = ProxyNeighbour {
            index,
            address: ip,
            protocol: TMIP_RTPROT,
        };
        self.ack(|seq| p.build(RTM_NEWNEIGH, seq))
    }

    pub fn delete_proxy_neighbour(&mut self, index: u32, ip: Ipv4Addr) -> Result<(), NetlinkError> {
        let p = ProxyNeighbour {
            index,
            address: ip,
            protocol: 0,
        };
        self.ack(|seq| p.build(RTM_DELNEIGH, seq))
    }

    /// Every IPv4 proxy ARP entry (`ip neigh show proxy`).
    pub fn proxy_neighbours(&mut self) -> Result<Vec<ProxyNeighbour>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump(RTM_GETNEIGH, &ndmsg_flags(0, NTF_PROXY), seq);
        let mut out = Vec::new();
        self.sock.request_dump(&req, seq, |m| {
            if m.msg_type == RTM_NEWNEIGH {
                if let Some(p) = ProxyNeighbour::parse(m)? {
                    out.push(p);
                }
            }
            Ok(())
        })?;
        Ok(out)
    }

    // ---- stale state ----

    /// Everything in `scope` carrying TMip's tag.
    pub fn tagged_state(&mut self, scope: &Scope<'_>) -> Result<TaggedState, NetlinkError> {
        let all = self.links()?;
        let links: Vec<Link> = all
            .iter()
            .filter(|l| !scope.tunnel_prefix.is_empty() && l.name.starts_with(scope.tunnel_prefix))
            .cloned()
            .collect();
        let mut ours: Vec<u32> = links.iter().map(|l| l.index).collect();
        ours.extend(
            all.iter()
                .filter(|l| scope.interfaces.contains(&l.name.as_str()))
                .map(|l| l.index),
        );
        let addresses = self
            .addresses(None)?
            .into_iter()
            .filter(|a| a.protocol == TMIP_RTPROT && ours.contains(&a.index))
            .collect();
        let routes = self
            .routes(None)?
            .into_iter()
            .filter(|r| {
                r.protocol == TMIP_RTPROT
                    && (r.oif.is_some_and(|o| ours.contains(&o))
                        || scope.tables.contains(&r.table)
                        || (r.rtype == message::RTN_UNREACHABLE
                            && r.metric == Some(hold_metric(scope.tunnel_prefix))))
            })
            .collect();
        let rules = self
            .rules()?
            .into_iter()
            .filter(|r| r.protocol == TMIP_RTPROT && scope.tables.contains(&r.table))
            .collect();
        let proxies = self
            .proxy_neighbours()?
            .into_iter()
            .filter(|p| p.protocol == TMIP_RTPROT && ours.contains(&p.index))
            .collect();
        Ok(TaggedState {
            links,
            addresses,
            routes,
            rules,
            proxies,
        })
    }

    /// Removes everything [`Netlink::tagged_state`] finds. Items that vanish
    /// meanwhile (ENOENT/ESRCH/ENODEV/EADDRNOTAVAIL) are not errors.
    pub fn purge(&mut self, scope: &Scope<'_>) -> Result<PurgeReport, NetlinkError> {
        let st = self.tagged_state(scope)?;
        self.delete_state(&st)
    }

    /// Removes `st` (rules, routes, addresses, then links); what is already
    /// gone is not an error.
    pub fn delete_state(&mut self, st: &TaggedState) -> Result<PurgeReport, NetlinkError> {
        let mut rep = PurgeReport::default();
        let gone = |e: &NetlinkError| {
            matches!(
                e.errno(),
                Some(libc::ENOENT | libc::ESRCH | libc::ENODEV | libc::EADDRNOTAVAIL)
            )
        };
        for r in &st.rules {
            match self.delete_rule(r) {
                Ok(()) => rep.rules += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for r in &st.routes {
            match self.delete_route(r) {
                Ok(()) => rep.routes += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for p in &st.proxies {
            match self.delete_proxy_neighbour(p.index, p.address) {
                Ok(()) => rep.proxies += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for a in &st.addresses {
            match self.delete_address(a.index, a.address, a.prefix_len) {
                Ok(()) => rep.addresses += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        for l in &st.links {
            match self.delete_link(l.index) {
                Ok(()) => rep.links += 1,
                Err(e) if gone(&e) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(rep)
    }
}

#[cfg(test)]
mod tests;
