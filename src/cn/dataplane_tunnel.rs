//! The CN's full data plane: station adoption as [`NetlinkDataPlane`] does
//! it (N+2/32, host route, ARP), plus the tunnels of the handover:
//!
//! - `TunnelUp`/`TunnelDown` (once per peer CN; the core counts stations)
//!   get/put the tunnel to that peer from the [`TunnelController`] (kernel
//!   IPIP where the kernel has it, else userspace TUN + raw IPIP socket);
//! - `RouteToPeer` (we are the parent): N/30 into the tunnel to the CN the
//!   station is at; `RouteLocal` removes that route (back home / gone);
//! - `ReverseTunnel` (we are not the parent, `reverse_tunnel on`): a policy
//!   rule `from N+1 iif mobile_if lookup T` where table T holds one default
//!   route into the tunnel to the parent, so the station's outbound traffic
//!   leaves the network where its address belongs. `Withdraw` removes it.
//!
//! Everything is tagged [`TMIP_RTPROT`]; the reverse tables of an instance
//! are a fixed range derived from its `tunnel_prefix`, so a restarted CN
//! finds and purges its rules, routes and tunnel devices.
//!
//! The userspace backend forwards packets itself: its descriptors are
//! exposed through [`DataPlane::poll_fds`] for the daemon's poll loop.

use super::dataplane::{CnAddr, DataAction, DataPlane, DataPlaneError};
use super::dataplane_netlink::NetlinkDataPlane;
use crate::addr::Cell30;
use crate::netlink::message::{Rule, RT_SCOPE_LINK};
use crate::netlink::{Netlink, NetlinkError, Route, Scope, TMIP_RTPROT};
use crate::tunnel::{BackendKind, Delivery, TunnelConfig, TunnelController};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;

/// How long a tunnel no station uses any more is kept: a station that
/// bounces between the same CNs finds its tunnels (and the peer's TUN that
/// accepts its packets) already there.
pub const TUNNEL_LINGER: std::time::Duration = std::time::Duration::from_secs(30);

/// Priority of the reverse-tunnel rules: after `local` (0), before `main`
/// (32766).
pub const REVERSE_RULE_PRIORITY: u32 = 1000;

/// Priority of the shared link's rule (before the reverse-tunnel rules):
/// traffic that enters mobile_if for the link's own subnet stays on the
/// link.
pub const LINK_RULE_PRIORITY: u32 = REVERSE_RULE_PRIORITY - 1;

/// The table (after the reverse tables, see [`reverse_table_base`]) holding
/// the shared link's subnet route for [`LINK_RULE_PRIORITY`].
const LINK_TABLE_OFFSET: u32 = 255;

/// First routing table of the reverse tables of the instance with
/// `tunnel_prefix` (FNV-1a of the prefix, so instances on one node differ);
/// tunnel `<prefix>n` uses table `base + n`.
pub fn reverse_table_base(tunnel_prefix: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in tunnel_prefix.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    0x5400_0000 + (h & 0xffff) * 256
}

pub struct TunnelDataPlane {
    inner: NetlinkDataPlane,
    nl: Netlink,
    tunnels: TunnelController,
    tunnel_prefix: String,
    mobile_if: String,
    mobile_index: u32,
    max_tunnels: usize,
    /// Cells routed into a tunnel (we are their parent): cell -> ifindex.
    routed: Vec<(Cell30, u32)>,
    /// Reverse-tunnel rules installed: cell -> table.
    reverse: Vec<(Cell30, u32)>,
    /// Tunnels the core no longer needs, kept until [`TUNNEL_LINGER`].
    idle: Vec<(CnAddr, std::time::Instant)>,
    /// Stations (N+1) with a permanent neighbour entry on mobile_if.
    neighbours: Vec<Ipv4Addr>,
    /// A shared mobile link's subnet: a visiting station's traffic to it
    /// is exempt from the reverse tunnel (its hosts are right here; the
    /// parent may not even route to them).
    link_subnet: Option<(Ipv4Addr, u8)>,
    /// The exemption rule and route are installed.
    link_rule: bool,
}

fn err(what: &str, e: impl std::fmt::Display) -> DataPlaneError {
    DataPlaneError(format!("{what}: {e}"))
}

fn gone(e: &NetlinkError) -> bool {
    matches!(
        e.errno(),
        Some(libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENODEV)
    )
}

impl TunnelDataPlane {
    /// `cn_ip` is the outer source address of the tunnels (cn_if's IPv4).
    pub fn open(
        inner: NetlinkDataPlane,
        mobile_if: &str,
        tunnel_prefix: &str,
        cn_ip: Ipv4Addr,
        link_subnet: Option<(Ipv4Addr, u8)>,
    ) -> Result<Self, DataPlaneError> {
        let mut nl = Netlink::open().map_err(|e| err("rtnetlink", e))?;
        let mut cfg = TunnelConfig::new(tunnel_prefix, cn_ip);
        // One tunnel per peer CN: as many as the peer table can hold.
        cfg.max_tunnels = crate::config::tmipd::PEER_CAPACITY;
        let max_tunnels = cfg.max_tunnels;
        let tunnels = TunnelController::start(&mut nl, cfg).map_err(|e| err("tunnels", e))?;
        let mobile_index = nl
            .link_index(mobile_if)
            .map_err(|e| err(&format!("interface {mobile_if}"), e))?;
        Ok(TunnelDataPlane {
            inner,
            nl,
            tunnels,
            tunnel_prefix: tunnel_prefix.to_string(),
            mobile_if: mobile_if.to_string(),
            mobile_index,
            max_tunnels,
            routed: Vec::new(),
            reverse: Vec::new(),
            idle: Vec::new(),
            neighbours: Vec::new(),
            link_subnet,
            link_rule: false,
        })
    }

    /// The permanent neighbour entry goes with the station.
    fn forget_neighbour(&mut self, ip: Ipv4Addr) {
        self.neighbours.retain(|n| *n != ip);
        match self.nl.delete_neighbour(self.mobile_index, ip) {
            Err(e) if !gone(&e) => log::warn!(target: "tunnel", "delete neighbour {ip}: {e}"),
            _ => {}
        }
    }

    fn tables(&self) -> Vec<u32> {
        let base = reverse_table_base(&self.tunnel_prefix);
        let mut v: Vec<u32> = (0..self.max_tunnels as u32).map(|n| base + n).collect();
        v.push(base + LINK_TABLE_OFFSET);
        v
    }

    /// Shared link: `iif mobile_if to SUBNET lookup T` before the
    /// reverse-tunnel rules, T holding only the subnet's route on
    /// mobile_if, so a visitor reaches the link's hosts directly (and the
    /// hosts' replies come back the same way). Installed with the first
    /// reverse tunnel; removed by the purge (tagged, in this instance's
    /// tables).
    fn link_rule(&mut self) -> Result<(), DataPlaneError> {
        let Some((net, len)) = self.link_subnet else {
            return Ok(());
        };
        if self.link_rule {
            return Ok(());
        }
        let table = reverse_table_base(&self.tunnel_prefix) + LINK_TABLE_OFFSET;
        let mut r = Route::new(net, len, TMIP_RTPROT);
        r.table = table;
        r.scope = RT_SCOPE_LINK;
        r.oif = Some(self.mobile_index);
        self.nl.replace_route(&r).map_err(|e| {
            err(
                &format!("route {net}/{len} dev {} table {table}", self.mobile_if),
                e,
            )
        })?;
        let rule = Rule {
            from: None,
            to: Some((net, len)),
            iif: Some(self.mobile_if.clone()),
            table,
            priority: LINK_RULE_PRIORITY,
            protocol: TMIP_RTPROT,
        };
        match self.nl.add_rule(&rule) {
            Ok(()) => {}
            Err(NetlinkError::Kernel(e)) if e == libc::EEXIST => {}
            Err(e) => return Err(err(&format!("rule to {net}/{len}"), e)),
        }
        log::info!(target: "tunnel", "shared link {}: visitors reach {net}/{len} directly (rule priority {LINK_RULE_PRIORITY}, table {table})", self.mobile_if);
        self.link_rule = true;
        Ok(())
    }

    /// The reverse table of the tunnel named `name` (`<prefix>n`).
    fn table_of(&self, name: &str) -> Option<u32> {
        let n: u32 = name.strip_prefix(&self.tunnel_prefix)?.parse().ok()?;
        (n < self.max_tunnels as u32).then(|| reverse_table_base(&self.tunnel_prefix) + n)
    }

    fn cell_route(cell: Cell30, ifindex: u32) -> Route {
        let mut r = Route::new(cell.network(), 30, TMIP_RTPROT);
        r.scope = RT_SCOPE_LINK;
        r.oif = Some(ifindex);
        r
    }

    fn reverse_rule(&self, cell: Cell30, table: u32) -> Rule {
        Rule {
            from: Some((cell.station(), 32)),
            to: None,
            iif: Some(self.mobile_if.clone()),
            table,
            priority: REVERSE_RULE_PRIORITY,
            protocol: TMIP_RTPROT,
        }
    }

    fn tunnel_up(&mut self, peer: CnAddr) -> Result<(), DataPlaneError> {
        if let Some(i) = self.idle.iter().position(|(p, _)| *p == peer) {
            // Still there from a recent use: take it back as it is.
            self.idle.swap_remove(i);
            if self.tunnels.tunnel(peer.ip).is_some() {
                log::debug!(target: "tunnel", "tunnel to CN {peer} reused");
                return Ok(());
            }
        }
        match self
            .tunnels
            .acquire(&mut self.nl, peer.ip)
            .map_err(|e| err(&format!("tunnel to {peer}"), e))?
        {
            Delivery::Local => Ok(()),
            Delivery::Tunnel { name, ifindex, .. } => {
                // The tunnel's reverse table: everything into the tunnel.
                if let Some(table) = self.table_of(&name) {
                    let mut r = Route::new(Ipv4Addr::UNSPECIFIED, 0, TMIP_RTPROT);
                    r.table = table;
                    r.scope = RT_SCOPE_LINK;
                    r.oif = Some(ifindex);
                    self.nl
                        .replace_route(&r)
                        .map_err(|e| err(&format!("default dev {name} table {table}"), e))?;
                }
                log::debug!(target: "tunnel", "tunnel {name} to CN {peer} up");
                Ok(())
            }
        }
    }

    /// The core's last station via `peer` is gone: keep the tunnel a while.
    fn tunnel_idle(&mut self, peer: CnAddr) {
        if !self.idle.iter().any(|(p, _)| *p == peer) {
            self.idle.push((peer, std::time::Instant::now()));
        }
    }

    /// Release tunnels idle for longer than [`TUNNEL_LINGER`].
    fn reap_idle(&mut self) {
        let now = std::time::Instant::now();
        let old: Vec<CnAddr> = self
            .idle
            .iter()
            .filter(|(_, since)| now.duration_since(*since) >= TUNNEL_LINGER)
            .map(|(p, _)| *p)
            .collect();
        for p in old {
            self.idle.retain(|(q, _)| *q != p);
            if let Err(e) = self.tunnel_down(p) {
                log::warn!(target: "tunnel", "{e}");
            }
        }
    }

    fn tunnel_down(&mut self, peer: CnAddr) -> Result<(), DataPlaneError> {
        if let Some(t) = self.tunnels.tunnel(peer.ip) {
            let idx = t.ifindex;
            self.routed.retain(|(_, i)| *i != idx);
        }
        self.tunnels
            .release(&mut self.nl, peer.ip)
            .map(|_| ())
            .map_err(|e| err(&format!("tunnel to {peer}"), e))
    }

    fn route_to_peer(&mut self, cell: Cell30, peer: CnAddr) -> Result<(), DataPlaneError> {
        let t = match self.tunnels.tunnel(peer.ip) {
            Some(t) => t.clone(),
            None => {
                // TunnelUp failed or came first in another order: get it now.
                self.tunnel_up(peer)?;
                self.tunnels
                    .tunnel(peer.ip)
                    .cloned()
                    .ok_or_else(|| DataPlaneError(format!("no tunnel to {peer}")))?
            }
        };
        self.nl
            .replace_route(&Self::cell_route(cell, t.ifindex))
            .map_err(|e| err(&format!("route {cell} dev {}", t.name), e))?;
        self.routed.retain(|(c, _)| *c != cell);
        self.routed.push((cell, t.ifindex));
        Ok(())
    }

    fn route_local(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        let Some(i) = self.routed.iter().position(|(c, _)| *c == cell) else {
            return Ok(());
        };
        let (_, ifindex) = self.routed.swap_remove(i);
        match self.nl.delete_route(&Self::cell_route(cell, ifindex)) {
            Err(e) if !gone(&e) => Err(err(&format!("delete route {cell}"), e)),
            _ => Ok(()),
        }
    }

    fn reverse_tunnel(&mut self, cell: Cell30, parent: CnAddr) -> Result<(), DataPlaneError> {
        if let Err(e) = self.link_rule() {
            log::warn!(target: "tunnel", "{e}");
        }
        let t = self
            .tunnels
            .tunnel(parent.ip)
            .cloned()
            .ok_or_else(|| DataPlaneError(format!("no tunnel to parent {parent}")))?;
        let table = self
            .table_of(&t.name)
            .ok_or_else(|| DataPlaneError(format!("no reverse table for {}", t.name)))?;
        self.remove_reverse(cell)?;
        match self.nl.add_rule(&self.reverse_rule(cell, table)) {
            Ok(()) => {}
            Err(NetlinkError::Kernel(e)) if e == libc::EEXIST => {}
            Err(e) => return Err(err(&format!("rule from {}", cell.station()), e)),
        }
        self.reverse.push((cell, table));
        Ok(())
    }

    fn remove_reverse(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        let mine: Vec<u32> = self
            .reverse
            .iter()
            .filter(|(c, _)| *c == cell)
            .map(|(_, t)| *t)
            .collect();
        self.reverse.retain(|(c, _)| *c != cell);
        for table in mine {
            if let Err(e) = self.nl.delete_rule(&self.reverse_rule(cell, table)) {
                if !gone(&e) {
                    return Err(err(&format!("delete rule from {}", cell.station()), e));
                }
            }
        }
        Ok(())
    }
}

impl DataPlane for TunnelDataPlane {
    fn backends(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .tunnels
            .supported()
            .into_iter()
            .map(|(k, n)| {
                let unit = if k == BackendKind::Local {
                    "stations"
                } else {
                    "devices"
                };
                format!("{} ({n} {unit})", k.describe())
            })
            .collect();
        v.push(format!(
            "new tunnels use: {}",
            self.tunnels.tunnel_backend().describe()
        ));
        v
    }

    fn leftover_stations(&mut self) -> Vec<Ipv4Addr> {
        self.inner.leftover_stations()
    }

    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        let mut v = self.inner.purge_stale()?;
        let tables = self.tables();
        let ifs = [self.mobile_if.as_str()];
        let r = self
            .tunnels
            .purge_stale(&mut self.nl, &ifs, &tables)
            .map_err(|e| err("purge", e))?;
        if r.rules > 0 {
            v.push(format!("{} reverse-tunnel rule(s)", r.rules));
        }
        if r.routes + r.links > 0 {
            v.push(format!(
                "{} route(s), {} tunnel device(s)",
                r.routes, r.links
            ));
        }
        Ok(v)
    }

    fn apply(&mut self, action: &DataAction) -> Result<(), DataPlaneError> {
        self.reap_idle();
        match *action {
            DataAction::AdoptLocal { mac, cell } => {
                self.inner.apply(action)?;
                // We know the station's MAC: a neighbour entry now spares the
                // first packets an ARP resolution, and replaces an entry that
                // failed while the station was away (the kernel would hold
                // or drop traffic to it for hundreds of ms). PERMANENT: ARP
                // from the cell cannot replace it, so another station
                // claiming this address (a gratuitous ARP overrides even a
                // fresh REACHABLE entry) does not get its traffic.
                self.nl
                    .add_neighbour(self.mobile_index, cell.station(), mac.0)
                    .map_err(|e| err(&format!("neighbour {} {mac}", cell.station()), e))?;
                if !self.neighbours.contains(&cell.station()) {
                    self.neighbours.push(cell.station());
                }
                Ok(())
            }
            DataAction::Withdraw { cell } => {
                let r = self.remove_reverse(cell);
                self.inner.apply(action)?;
                self.forget_neighbour(cell.station());
                r
            }
            DataAction::ProxyArp { .. }
            | DataAction::ProxyArpEnd { .. }
            | DataAction::Announce { .. } => self.inner.apply(action),
            DataAction::TunnelUp { peer } => self.tunnel_up(peer),
            DataAction::TunnelDown { peer } => {
                self.tunnel_idle(peer);
                Ok(())
            }
            DataAction::RouteToPeer { cell, peer } => self.route_to_peer(cell, peer),
            DataAction::RouteLocal { cell } => self.route_local(cell),
            DataAction::ReverseTunnel { cell, parent } => self.reverse_tunnel(cell, parent),
        }
    }

    fn remove_all(&mut self) -> Result<(), DataPlaneError> {
        let cells: Vec<Cell30> = self.reverse.iter().map(|(c, _)| *c).collect();
        for c in cells {
            if let Err(e) = self.remove_reverse(c) {
                log::warn!(target: "tunnel", "{e}");
            }
        }
        for ip in std::mem::take(&mut self.neighbours) {
            self.forget_neighbour(ip);
        }
        self.tunnels.shutdown(&mut self.nl);
        self.routed.clear();
        self.idle.clear();
        self.link_rule = false;
        let r = self.inner.remove_all();
        let tables = self.tables();
        let ifs = [self.mobile_if.as_str()];
        let scope = Scope {
            tunnel_prefix: &self.tunnel_prefix,
            interfaces: &ifs,
            tables: &tables,
        };
        self.nl.purge(&scope).map_err(|e| err("purge", e))?;
        r
    }

    fn poll_fds(&self) -> Vec<RawFd> {
        self.tunnels.poll_fds()
    }

    fn on_readable(&mut self, fd: RawFd) -> bool {
        self.tunnels.on_readable(fd)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reverse_tables_differ_per_prefix_and_stay_in_range() {
        let a = reverse_table_base("tmip0");
        let b = reverse_table_base("tmip1");
        assert_ne!(a, b);
        for base in [a, b] {
            assert!(base >= 0x5400_0000 && base + 255 < 0x5500_0000);
        }
    }
}
