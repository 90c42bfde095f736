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
use crate::netlink::message::{Rule, RTN_UNICAST, RTN_UNREACHABLE, RT_SCOPE_LINK, RT_TABLE_MAIN};
use crate::netlink::{hold_metric, Netlink, NetlinkError, Route, Scope, TaggedState, TMIP_RTPROT};
use crate::tunnel::{BackendChoice, BackendKind, Delivery, TunnelConfig, TunnelController};
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
    0x5400_0000 + (crate::netlink::prefix_hash(tunnel_prefix) & 0xffff) * 256
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
    /// Hold routes an earlier run left, not yet re-affirmed: removed after
    /// [`TUNNEL_LINGER`].
    held: Vec<(Cell30, std::time::Instant)>,
    /// Stations (N+1) with a permanent neighbour entry on mobile_if.
    neighbours: Vec<Ipv4Addr>,
    /// A shared mobile link's subnet: a visiting station's traffic to it
    /// is exempt from the reverse tunnel (its hosts are right here; the
    /// parent may not even route to them).
    link_subnet: Option<(Ipv4Addr, u8)>,
    /// The exemption rule and route are installed.
    link_rule: bool,
}

/// What a restarted CN keeps of the state an earlier run of its instance
/// left (`st`, from [`Netlink::tagged_state`]): always the hold routes
/// (`unreachable N/30`, see [`hold_metric`]); with the kernel backend
/// (`kernel`) also its ipip devices, the routes into them (cells of
/// stations it is the parent of, reverse-table defaults) and the reverse
/// rules whose table is still routed into a kept device. Those forwarded
/// while no tmipd ran; the restarted CN adopts them and re-affirms them from
/// the MLR's answers. Returns (keep, purge): the rest (TUN devices, whose
/// userspace end died, station addresses and host routes on mobile_if,
/// dangling routes and rules) is purged as before.
pub fn split_adoptable(
    st: TaggedState,
    tunnel_prefix: &str,
    kernel: bool,
) -> (TaggedState, TaggedState) {
    let mut keep = TaggedState::default();
    let mut purge = TaggedState::default();
    for l in st.links {
        let live_ipip = kernel
            && l.kind == "ipip"
            && l.name.starts_with(tunnel_prefix)
            && l.ipip_remote.is_some_and(|r| !r.is_unspecified());
        if live_ipip {
            keep.links.push(l);
        } else {
            purge.links.push(l);
        }
    }
    let kept = |oif: Option<u32>| oif.is_some_and(|o| keep.links.iter().any(|l| l.index == o));
    let (via, other): (Vec<Route>, Vec<Route>) = st.routes.into_iter().partition(|r| kept(r.oif));
    let hold = hold_metric(tunnel_prefix);
    let (holds, other): (Vec<Route>, Vec<Route>) = other
        .into_iter()
        .partition(|r| r.rtype == RTN_UNREACHABLE && r.metric == Some(hold));
    let tables: Vec<u32> = via
        .iter()
        .filter(|r| r.table != RT_TABLE_MAIN && r.dst_len == 0)
        .map(|r| r.table)
        .collect();
    keep.routes = via.into_iter().chain(holds).collect();
    purge.routes = other;
    let (rules, stale): (Vec<Rule>, Vec<Rule>) = st
        .rules
        .into_iter()
        .partition(|r| tables.contains(&r.table));
    keep.rules = rules;
    purge.rules = stale;
    purge.addresses = st.addresses;
    purge.proxies = st.proxies;
    (keep, purge)
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
        backend: BackendChoice,
        link_subnet: Option<(Ipv4Addr, u8)>,
    ) -> Result<Self, DataPlaneError> {
        let mut nl = Netlink::open().map_err(|e| err("rtnetlink", e))?;
        let mut cfg = TunnelConfig::new(tunnel_prefix, cn_ip);
        // One tunnel per peer CN: as many as the peer table can hold.
        cfg.max_tunnels = crate::config::tmipd::PEER_CAPACITY;
        cfg.backend = backend;
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
            held: Vec::new(),
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

    /// `unreachable N/30` below the cell's tunnel route (see [`hold_metric`]).
    fn hold_route(&self, cell: Cell30) -> Route {
        let mut r = Route::new(cell.network(), 30, TMIP_RTPROT);
        r.rtype = RTN_UNREACHABLE;
        r.metric = Some(hold_metric(&self.tunnel_prefix));
        r
    }

    /// Everything tagged as this instance's: its tunnel devices, what is on
    /// its mobile_if, its reverse tables and rules, its hold routes.
    fn own_state(&mut self) -> Result<TaggedState, DataPlaneError> {
        let tables = self.tables();
        let ifs = [self.mobile_if.as_str()];
        let scope = Scope {
            tunnel_prefix: &self.tunnel_prefix,
            interfaces: &ifs,
            tables: &tables,
        };
        self.nl
            .tagged_state(&scope)
            .map_err(|e| err("read state", e))
    }

    /// Keep what [`split_adoptable`] keeps, purge the rest, and take the
    /// kept devices, routes and rules into the tables, so the MLR's answers
    /// re-affirm them in place (no gap). Adopted tunnels linger like idle
    /// ones until a station needs them; hold routes no station re-affirms go
    /// after [`TUNNEL_LINGER`].
    fn adopt_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        let kernel = self.tunnels.tunnel_backend() == BackendKind::KernelIpip;
        let st = self.own_state()?;
        let (keep, purge) = split_adoptable(st, &self.tunnel_prefix, kernel);
        let r = self.nl.delete_state(&purge).map_err(|e| err("purge", e))?;
        let n = if kernel {
            self.tunnels
                .adopt(&mut self.nl)
                .map_err(|e| err("adopt", e))?
        } else {
            0
        };
        let now = std::time::Instant::now();
        for t in self.tunnels.tunnels() {
            let peer = CnAddr {
                ip: t.peer,
                port: crate::CN_PORT,
            };
            self.idle.push((peer, now));
        }
        for route in &keep.routes {
            if route.rtype == RTN_UNREACHABLE {
                self.held.push((Cell30::containing(route.dst), now));
            }
            if let (RTN_UNICAST, RT_TABLE_MAIN, 30, Some(oif)) =
                (route.rtype, route.table, route.dst_len, route.oif)
            {
                self.routed.push((Cell30::containing(route.dst), oif));
            }
        }
        for rule in &keep.rules {
            if let Some((from, 32)) = rule.from {
                self.reverse.push((Cell30::containing(from), rule.table));
            }
        }
        let v = super::dataplane_netlink::purge_lines(&r, &self.mobile_if);
        log::info!(
            target: "cn",
            "+ Adopted {n} kernel tunnel(s), {} route(s), {} reverse rule(s), {} hold route(s) left by an earlier run",
            self.routed.len(),
            self.reverse.len(),
            self.held.len()
        );
        Ok(v)
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
        if let Some(i) = self.idle.iter().position(|(p, _)| p.ip == peer.ip) {
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
        let (old, held): (Vec<_>, Vec<_>) = std::mem::take(&mut self.held)
            .into_iter()
            .partition(|(_, since)| now.duration_since(*since) >= TUNNEL_LINGER);
        self.held = held;
        for (cell, _) in old {
            if let Err(e) = self.nl.delete_route(&self.hold_route(cell)) {
                if !gone(&e) {
                    log::warn!(target: "tunnel", "delete unreachable {cell}: {e}");
                }
            }
        }
    }

    fn tunnel_down(&mut self, peer: CnAddr) -> Result<(), DataPlaneError> {
        if let Some(t) = self.tunnels.tunnel(peer.ip) {
            let idx = t.ifindex;
            let cells: Vec<Cell30> = self
                .routed
                .iter()
                .filter(|(_, i)| *i == idx)
                .map(|(c, _)| *c)
                .collect();
            for c in cells {
                self.route_local(c)?;
            }
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
        self.nl
            .replace_route(&self.hold_route(cell))
            .map_err(|e| err(&format!("unreachable {cell}"), e))?;
        self.held.retain(|(c, _)| *c != cell);
        self.routed.retain(|(c, _)| *c != cell);
        self.routed.push((cell, t.ifindex));
        Ok(())
    }

    fn route_local(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        let Some(i) = self.routed.iter().position(|(c, _)| *c == cell) else {
            return Ok(());
        };
        let (_, ifindex) = self.routed.swap_remove(i);
        match self.nl.delete_route(&self.hold_route(cell)) {
            Err(e) if !gone(&e) => return Err(err(&format!("delete unreachable {cell}"), e)),
            _ => {}
        }
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
            "new tunnels use: {} (tunnel_backend {})",
            self.tunnels.tunnel_backend().describe(),
            self.tunnels.backend_choice().as_str()
        ));
        v
    }

    fn leftover_stations(&mut self) -> Vec<Ipv4Addr> {
        self.inner.leftover_stations()
    }

    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        self.adopt_stale()
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
        self.held.clear();
        self.link_rule = false;
        let r = self.inner.remove_all();
        let st = self.own_state()?;
        self.nl.delete_state(&st).map_err(|e| err("purge", e))?;
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

    use crate::netlink::message::{messages, RTM_NEWROUTE};
    use crate::netlink::{Address, Link};

    fn link(index: u32, name: &str, kind: &str, remote: Option<[u8; 4]>) -> Link {
        Link {
            index,
            name: name.into(),
            kind: kind.into(),
            flags: 0,
            mtu: 1480,
            ipip_remote: remote.map(Ipv4Addr::from),
            mac: None,
        }
    }

    /// A route as the kernel's dump carries it: built, then parsed back.
    fn dumped(r: &Route) -> Route {
        let bytes = r.build(RTM_NEWROUTE, 0, 1);
        let msg = messages(&bytes)
            .next()
            .expect("one message")
            .expect("parses");
        Route::parse(&msg).expect("route").expect("IPv4")
    }

    fn cell(a: [u8; 4]) -> Cell30 {
        Cell30::containing(Ipv4Addr::from(a))
    }

    /// An earlier run's state: kernel tunnel tmip0 (index 7) to 10.0.0.2
    /// with a cell routed into it, its reverse table and rule, its hold
    /// route; a TUN tmip1 (index 8) and a route into it; a station address
    /// and host route on mobile_if (index 3); a rule whose table has no
    /// route left; another instance's hold route.
    fn state() -> TaggedState {
        let mut via = Route::new(Ipv4Addr::new(10, 9, 0, 4), 30, TMIP_RTPROT);
        via.scope = RT_SCOPE_LINK;
        via.oif = Some(7);
        let mut table_default = Route::new(Ipv4Addr::UNSPECIFIED, 0, TMIP_RTPROT);
        table_default.table = reverse_table_base("tmip");
        table_default.oif = Some(7);
        let mut hold = Route::new(Ipv4Addr::new(10, 9, 0, 4), 30, TMIP_RTPROT);
        hold.rtype = RTN_UNREACHABLE;
        hold.metric = Some(hold_metric("tmip"));
        let mut foreign_hold = hold.clone();
        foreign_hold.dst = Ipv4Addr::new(10, 9, 0, 8);
        foreign_hold.metric = Some(hold_metric("other"));
        let mut via_tun = via.clone();
        via_tun.dst = Ipv4Addr::new(10, 9, 0, 12);
        via_tun.oif = Some(8);
        let mut host = Route::new(Ipv4Addr::new(10, 9, 0, 17), 32, TMIP_RTPROT);
        host.oif = Some(3);
        let rule = |from: [u8; 4], table| Rule {
            from: Some((Ipv4Addr::from(from), 32)),
            to: None,
            iif: Some("wlan0".into()),
            table,
            priority: REVERSE_RULE_PRIORITY,
            protocol: TMIP_RTPROT,
        };
        TaggedState {
            links: vec![
                link(7, "tmip0", "ipip", Some([10, 0, 0, 2])),
                link(8, "tmip1", "tun", None),
            ],
            addresses: vec![Address {
                index: 3,
                address: Ipv4Addr::new(10, 9, 0, 18),
                prefix_len: 32,
                scope: 0,
                label: "wlan0".into(),
                protocol: TMIP_RTPROT,
                broadcast: None,
            }],
            routes: [via, table_default, hold, foreign_hold, via_tun, host]
                .iter()
                .map(dumped)
                .collect(),
            rules: vec![
                rule([10, 9, 0, 21], reverse_table_base("tmip")),
                rule([10, 9, 0, 25], reverse_table_base("tmip") + 1),
            ],
            proxies: Vec::new(),
        }
    }

    #[test]
    fn a_kernel_restart_keeps_its_tunnels_routes_rules_and_holds() {
        let (keep, purge) = split_adoptable(state(), "tmip", true);
        assert_eq!(keep.links.iter().map(|l| l.index).collect::<Vec<_>>(), [7]);
        assert_eq!(purge.links.iter().map(|l| l.index).collect::<Vec<_>>(), [8]);
        let cells = |rs: &[Route]| {
            rs.iter()
                .map(|r| (r.dst, r.dst_len, r.rtype, r.oif))
                .collect::<Vec<_>>()
        };
        assert_eq!(
            cells(&keep.routes),
            [
                (Ipv4Addr::new(10, 9, 0, 4), 30, RTN_UNICAST, Some(7)),
                (Ipv4Addr::UNSPECIFIED, 0, RTN_UNICAST, Some(7)),
                (Ipv4Addr::new(10, 9, 0, 4), 30, RTN_UNREACHABLE, None),
            ]
        );
        assert_eq!(
            cells(&purge.routes),
            [
                (Ipv4Addr::new(10, 9, 0, 8), 30, RTN_UNREACHABLE, None),
                (Ipv4Addr::new(10, 9, 0, 12), 30, RTN_UNICAST, Some(8)),
                (Ipv4Addr::new(10, 9, 0, 17), 32, RTN_UNICAST, Some(3)),
            ]
        );
        assert_eq!(keep.rules.len(), 1);
        assert_eq!(keep.rules[0].from, Some((Ipv4Addr::new(10, 9, 0, 21), 32)));
        assert_eq!(purge.rules.len(), 1);
        assert!(keep.addresses.is_empty());
        assert_eq!(purge.addresses.len(), 1);
        assert_eq!(cell([10, 9, 0, 4]).network(), keep.routes[0].dst);
    }

    #[test]
    fn a_userspace_restart_keeps_only_its_holds() {
        let (keep, purge) = split_adoptable(state(), "tmip", false);
        assert!(keep.links.is_empty() && keep.rules.is_empty());
        assert_eq!(keep.routes.len(), 1);
        assert_eq!(keep.routes[0].rtype, RTN_UNREACHABLE);
        assert_eq!(keep.routes[0].metric, Some(hold_metric("tmip")));
        assert_eq!(purge.links.len(), 2);
        assert_eq!(purge.routes.len(), 5);
        assert_eq!(purge.rules.len(), 2);
    }

    #[test]
    fn hold_routes_are_unreachable_routes_with_the_instance_metric() {
        let mut hold = Route::new(Ipv4Addr::new(10, 9, 0, 4), 30, TMIP_RTPROT);
        hold.rtype = RTN_UNREACHABLE;
        hold.metric = Some(hold_metric("tmip"));
        let bytes = hold.build(RTM_NEWROUTE, 0, 1);
        // rtmsg after the 16-byte header: family, dst_len, src_len, tos,
        // table, protocol, scope, type.
        assert_eq!(&bytes[16..24], &[2, 30, 0, 0, 254, 0x54, 0, 7]);
        assert_eq!(dumped(&hold), hold);
        assert_ne!(hold_metric("tmip0"), hold_metric("tmip1"));
    }

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
