//! The first real [`DataPlane`]: station adoption over rtnetlink (N+2/32 on
//! mobile_if, host route to N+1, both tagged TMip's) and ARP through a
//! send-only packet socket on mobile_if. Tunnels are not its concern: in
//! tmipd `dataplane_tunnel` wraps it and carries out the tunnel actions;
//! used alone (tests), it accepts them and only logs them.

use super::dataplane::{DataAction, DataPlane, DataPlaneError};
use crate::addr::{Cell30, MacAddr};
use crate::netlink::message::RT_SCOPE_LINK;
use crate::netlink::{Netlink, NetlinkError, PurgeReport, Route, Scope, TMIP_RTPROT};
use crate::packet_socket::PacketSocket;
use crate::wire::arp;
use std::net::Ipv4Addr;

pub struct NetlinkDataPlane {
    nl: Netlink,
    mobile_if: String,
    mobile_index: u32,
    mobile_mac: MacAddr,
    tunnel_prefix: String,
    /// Send-only (protocol 0): ARP replies and announcements.
    arp: Option<PacketSocket>,
    /// Cells adopted here, for TERM.
    adopted: Vec<(MacAddr, Cell30)>,
    /// Station addresses this CN answers ARP for (kernel proxy entries).
    proxied: Vec<Ipv4Addr>,
    /// mobile_if's `proxy_delay` was set to 0 (done once, at the first
    /// proxy entry).
    proxy_delay_set: bool,
}

/// The start-up log's "Removed ..." lines for what a purge removed.
pub(super) fn purge_lines(r: &PurgeReport, mobile_if: &str) -> Vec<String> {
    let mut v = Vec::new();
    if r.links > 0 {
        v.push(format!("{} tunnel device(s)", r.links));
    }
    if r.addresses > 0 {
        v.push(format!(
            "{} gateway address(es) on {}",
            r.addresses, mobile_if
        ));
    }
    if r.routes > 0 {
        v.push(format!("{} route(s)", r.routes));
    }
    if r.rules > 0 {
        v.push(format!("{} rule(s)", r.rules));
    }
    if r.proxies > 0 {
        v.push(format!(
            "{} proxy ARP entr{} on {}",
            r.proxies,
            if r.proxies == 1 { "y" } else { "ies" },
            mobile_if
        ));
    }
    v
}

fn err(what: &str, e: NetlinkError) -> DataPlaneError {
    DataPlaneError(format!("{what}: {e}"))
}

impl NetlinkDataPlane {
    pub fn open(
        mobile_if: &str,
        mobile_index: u32,
        mobile_mac: MacAddr,
        tunnel_prefix: &str,
    ) -> Result<Self, DataPlaneError> {
        let nl = Netlink::open().map_err(|e| err("rtnetlink", e))?;
        let arp = match PacketSocket::open(mobile_if, 0, None) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(target: "handover", "no packet socket on {mobile_if} ({e}): no gratuitous ARP");
                None
            }
        };
        Ok(NetlinkDataPlane {
            nl,
            mobile_if: mobile_if.to_string(),
            mobile_index,
            mobile_mac,
            tunnel_prefix: tunnel_prefix.to_string(),
            arp,
            adopted: Vec::new(),
            proxied: Vec::new(),
            proxy_delay_set: false,
        })
    }

    fn scope(&self) -> (String, String) {
        (self.tunnel_prefix.clone(), self.mobile_if.clone())
    }

    fn leftovers(&mut self) -> Vec<Ipv4Addr> {
        let (prefix, ifname) = self.scope();
        let ifs = [ifname.as_str()];
        let scope = Scope {
            tunnel_prefix: &prefix,
            interfaces: &ifs,
            tables: &[],
        };
        match self.nl.tagged_state(&scope) {
            Ok(st) => {
                let mut v: Vec<Ipv4Addr> = st
                    .addresses
                    .iter()
                    .filter(|a| a.prefix_len == 32)
                    .map(|a| Cell30::containing(a.address).station())
                    .chain(
                        st.routes
                            .iter()
                            .filter(|r| r.dst_len >= 30)
                            .map(|r| Cell30::containing(r.dst).station()),
                    )
                    .collect();
                v.sort();
                v.dedup();
                v
            }
            Err(e) => {
                log::warn!(target: "cn", "cannot read tagged state: {e}");
                Vec::new()
            }
        }
    }

    fn host_route(&self, cell: Cell30) -> Route {
        let mut r = Route::new(cell.station(), 32, TMIP_RTPROT);
        r.scope = RT_SCOPE_LINK;
        r.oif = Some(self.mobile_index);
        r.prefsrc = Some(cell.gateway());
        r
    }

    fn send_arp(&self, mac: MacAddr, cell: Cell30) {
        let Some(s) = &self.arp else { return };
        // Unicast reply so the station's gateway entry points here at once,
        // then a broadcast announcement for anything else on the cell.
        let reply = arp::frame(
            self.mobile_mac,
            mac,
            &arp::Repr::reply(self.mobile_mac, cell.gateway(), mac, cell.station()),
        );
        let ann = arp::frame(
            self.mobile_mac,
            MacAddr::BROADCAST,
            &arp::Repr::announcement(self.mobile_mac, cell.gateway()),
        );
        for f in [&reply[..], &ann[..]] {
            if let Err(e) = s.send(f) {
                log::warn!(target: "handover", "ARP for {cell} on {}: {e}", self.mobile_if);
            }
        }
    }

    /// Gratuitous ARP (RFC 5227 announcement, broadcast) for N+1: "at
    /// `station_mac`", or at this CN. The Ethernet source is always this
    /// CN's MAC: a frame from the station's MAC would teach the switches
    /// that the station sits behind this CN.
    fn announce(&self, cell: Cell30, station_mac: Option<MacAddr>) {
        let Some(s) = &self.arp else { return };
        let who = station_mac.unwrap_or(self.mobile_mac);
        let f = arp::frame(
            self.mobile_mac,
            MacAddr::BROADCAST,
            &arp::Repr::announcement(who, cell.station()),
        );
        if let Err(e) = s.send(&f) {
            log::warn!(target: "handover", "gratuitous ARP for {} on {}: {e}", cell.station(), self.mobile_if);
        }
    }

    /// The kernel answers ARP for N+1 on mobile_if (forwarding is on and
    /// N/30 is routed into a tunnel, so the proxy entry applies).
    fn proxy(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        if !self.proxy_delay_set {
            // Broadcast requests to a proxy entry are answered after a random
            // delay of up to proxy_delay (0.8 s by default): a host whose
            // entry failed would wait that long for every station.
            let path = format!("/proc/sys/net/ipv4/neigh/{}/proxy_delay", self.mobile_if);
            match std::fs::write(&path, "0") {
                Ok(()) => {
                    log::info!(target: "handover", "proxy ARP on {}: proxy_delay set to 0", self.mobile_if)
                }
                Err(e) => {
                    log::warn!(target: "handover", "cannot set {path} to 0 ({e}): proxy ARP replies to broadcasts are delayed")
                }
            }
            self.proxy_delay_set = true;
        }
        let ip = cell.station();
        self.nl
            .add_proxy_neighbour(self.mobile_index, ip)
            .map_err(|e| err(&format!("proxy ARP for {ip} on {}", self.mobile_if), e))?;
        if !self.proxied.contains(&ip) {
            self.proxied.push(ip);
        }
        self.announce(cell, None);
        Ok(())
    }

    fn proxy_end(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        let ip = cell.station();
        self.proxied.retain(|p| *p != ip);
        match self.nl.delete_proxy_neighbour(self.mobile_index, ip) {
            Err(e) if !matches!(e.errno(), Some(libc::ENOENT | libc::ESRCH | libc::ENODEV)) => {
                Err(err(&format!("delete proxy ARP for {ip}"), e))
            }
            _ => Ok(()),
        }
    }

    fn adopt(&mut self, mac: MacAddr, cell: Cell30) -> Result<(), DataPlaneError> {
        self.nl
            .add_address(self.mobile_index, cell.gateway(), 32)
            .map_err(|e| {
                err(
                    &format!("add {}/32 on {}", cell.gateway(), self.mobile_if),
                    e,
                )
            })?;
        self.nl.replace_route(&self.host_route(cell)).map_err(|e| {
            err(
                &format!("route {} dev {}", cell.station(), self.mobile_if),
                e,
            )
        })?;
        self.send_arp(mac, cell);
        if !self.adopted.iter().any(|(_, c)| *c == cell) {
            self.adopted.push((mac, cell));
        }
        Ok(())
    }

    fn withdraw(&mut self, cell: Cell30) -> Result<(), DataPlaneError> {
        self.adopted.retain(|(_, c)| *c != cell);
        let gone = |e: &NetlinkError| {
            matches!(
                e.errno(),
                Some(libc::ENOENT | libc::ESRCH | libc::EADDRNOTAVAIL | libc::ENODEV)
            )
        };
        if let Err(e) = self.nl.delete_route(&self.host_route(cell)) {
            if !gone(&e) {
                return Err(err(&format!("delete route {}", cell.station()), e));
            }
        }
        if let Err(e) = self
            .nl
            .delete_address(self.mobile_index, cell.gateway(), 32)
        {
            if !gone(&e) {
                return Err(err(&format!("delete {}/32", cell.gateway()), e));
            }
        }
        Ok(())
    }
}

impl DataPlane for NetlinkDataPlane {
    fn backends(&self) -> Vec<String> {
        vec![
            "Local delivery (station at its parent, no tunnel)".into(),
            "IPv4 in IPv4 tunnels: not wired into tmipd yet (logged only)".into(),
        ]
    }

    fn leftover_stations(&mut self) -> Vec<Ipv4Addr> {
        self.leftovers()
    }

    fn purge_stale(&mut self) -> Result<Vec<String>, DataPlaneError> {
        let (prefix, ifname) = self.scope();
        let ifs = [ifname.as_str()];
        let scope = Scope {
            tunnel_prefix: &prefix,
            interfaces: &ifs,
            tables: &[],
        };
        let r = self.nl.purge(&scope).map_err(|e| err("purge", e))?;
        Ok(purge_lines(&r, &self.mobile_if))
    }

    fn apply(&mut self, action: &DataAction) -> Result<(), DataPlaneError> {
        match *action {
            DataAction::AdoptLocal { mac, cell } => self.adopt(mac, cell),
            DataAction::Withdraw { cell } => self.withdraw(cell),
            DataAction::ProxyArp { cell } => self.proxy(cell),
            DataAction::ProxyArpEnd { cell } => self.proxy_end(cell),
            DataAction::Announce { cell, station_mac } => {
                self.announce(cell, station_mac);
                Ok(())
            }
            DataAction::RouteToPeer { .. }
            | DataAction::RouteLocal { .. }
            | DataAction::TunnelUp { .. }
            | DataAction::TunnelDown { .. }
            | DataAction::ReverseTunnel { .. } => {
                log::info!(target: "tunnel", "not carried out (no tunnel backend wired in yet): {action}");
                Ok(())
            }
        }
    }

    fn remove_all(&mut self) -> Result<(), DataPlaneError> {
        let cells: Vec<Cell30> = self.adopted.iter().map(|(_, c)| *c).collect();
        for c in cells {
            if let Err(e) = self.withdraw(c) {
                log::warn!(target: "cn", "{e}");
            }
        }
        for ip in std::mem::take(&mut self.proxied) {
            if let Err(e) = self.proxy_end(Cell30::containing(ip)) {
                log::warn!(target: "cn", "{e}");
            }
        }
        self.purge_stale().map(|_| ())
    }
}
