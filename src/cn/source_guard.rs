//! Source address validation ("IP source guard"), sans-IO: the nf_tables
//! ruleset that makes a CN forward a packet from its mobile interface only
//! when the packet's (source MAC, source IP) is a station adopted here, and
//! the report of what it dropped. [`crate::cn::dataplane_guard`] commits the
//! batches built here and follows the data plane's adoptions.
//!
//! Per instance, two tables named `tmip_<tunnel_prefix>` (unique per node):
//!
//! ```text
//! table ip tmip_P {
//!   counter spoofed { }
//!   set stations { type ether_addr . ipv4_addr; size 2*MAX_STATIONS; flags timeout; }
//!   set spoofers { type ether_addr . ipv4_addr; size 64; flags dynamic,timeout; timeout 60s; }
//!   chain guard {
//!     type filter hook prerouting priority -300; policy accept;
//!     iif MOBILE ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
//!     iif MOBILE ether saddr . ip saddr != @stations update @spoofers { ether saddr . ip saddr }
//!     iif MOBILE ether saddr . ip saddr != @stations counter name "spoofed" drop
//!   }
//! }
//! table arp tmip_P {
//!   counter spoofed { }
//!   set stations { type ether_addr . ipv4_addr; size 2*MAX_STATIONS; flags timeout; }
//!   chain guard {
//!     type filter hook input priority -300; policy accept;
//!     iif MOBILE arp saddr ip != 0.0.0.0 arp saddr ether . arp saddr ip != @stations counter name "spoofed" drop
//!   }
//! }
//! ```
//!
//! Why `prerouting` at -300: it sees every IPv4 packet from the cell,
//! forwarded or addressed to the CN itself, before conntrack (-200) could
//! keep state for a spoofed flow and before the routing decision (a
//! reverse-tunnel rule matches on the source address). It runs after the
//! packet sockets (the DHCP server, capture) got their copy, so DHCP from
//! `0.0.0.0` and a roaming station's first frames at a new CN are still
//! seen by tmipd; a `netdev ingress` chain would hide them from the DHCP
//! socket. The arp `input` hook keeps the CN's neighbour table from
//! believing a claim to a station's address (spoofed replies would redirect
//! the station's downlink); probes (sender 0.0.0.0) pass.
//!
//! DHCP client broadcasts (a DISCOVER from `0.0.0.0`, a roaming station's
//! REBINDING from its N+1 before it is adopted here) are let through
//! uncounted, as before the guard: the kernel never forwards a limited
//! broadcast, and counting them would report every newcomer as a spoofer.
//!
//! A station that leaves is not dropped from `stations` at once: its element
//! stays for [`LINGER_MS`] with a timeout, as the tunnel to a peer lingers.
//! A station bouncing back before the new CN's ARP reached it still sends to
//! this CN's MAC, and a stale withdraw can take a station off for a moment
//! while it is still here; without the grace those packets would be lost
//! (they were forwarded before the guard), and a TCP flow in backoff
//! stalls for seconds. The lingering pair is the departed station's own
//! MAC and IP, so only a full clone could use it, which the guard cannot
//! stop anyway (docs/SECURITY.md). Hence the set's room for twice the
//! stations.
//!
//! The `spoofers` set is written by the kernel (dynset) in a rule of its own
//! before the drop: when it is full the update fails and that rule stops,
//! but the drop rule still runs.

use crate::addr::MacAddr;
use crate::netlink::nftables::{
    Batch, Expr, Family, SetSpec, KEY_ETHER_IPV4, KEY_ETHER_IPV4_LEN, NFT_CMP_EQ, NFT_CMP_NEQ,
    NFT_META_IIF, NFT_META_IIFTYPE, NFT_META_L4PROTO, NFT_PAYLOAD_LL_HEADER,
    NFT_PAYLOAD_NETWORK_HEADER, NFT_PAYLOAD_TRANSPORT_HEADER, NFT_REG32_02, NFT_REG_1,
    NFT_SET_DYNAMIC_TIMEOUT, NFT_SET_TIMEOUT, NF_ACCEPT, NF_DROP, NF_HOOK_ARP_IN,
    NF_HOOK_PREROUTING,
};
use std::net::Ipv4Addr;

pub const CHAIN: &str = "guard";
pub const STATIONS: &str = "stations";
pub const SPOOFERS: &str = "spoofers";
pub const COUNTER: &str = "spoofed";
/// Before conntrack (-200), like nft's `raw` priority.
pub const PRIORITY: i32 = -300;
/// How long a withdrawn station's (MAC, IP) stays admitted (as long as a
/// tunnel lingers, `dataplane_tunnel::TUNNEL_LINGER`).
pub const LINGER_MS: u64 = 30_000;
/// Recent offenders kept for the log.
pub const SPOOFERS_SIZE: u32 = 64;
pub const SPOOFERS_TIMEOUT_MS: u64 = 60_000;
/// `ARPHRD_ETHER`, as `meta iiftype` loads it (host order u16).
const ARPHRD_ETHER: u16 = 1;

/// A set key: the MAC padded to 8 bytes, then the IPv4 address.
pub type Key = [u8; KEY_ETHER_IPV4_LEN];

pub fn key(mac: MacAddr, ip: Ipv4Addr) -> Key {
    let mut k = [0u8; KEY_ETHER_IPV4_LEN];
    k[..6].copy_from_slice(&mac.0);
    k[8..].copy_from_slice(&ip.octets());
    k
}

/// The (MAC, IP) of a key the kernel reported; `None` if it is not one.
pub fn parse_key(k: &[u8]) -> Option<(MacAddr, Ipv4Addr)> {
    if k.len() != KEY_ETHER_IPV4_LEN {
        return None;
    }
    let mac: [u8; 6] = k[..6].try_into().ok()?;
    let ip: [u8; 4] = k[8..].try_into().ok()?;
    Some((MacAddr(mac), Ipv4Addr::from(ip)))
}

fn meta(key: u32) -> Expr<'static> {
    Expr::Meta {
        key,
        dreg: NFT_REG_1,
    }
}

fn cmp(op: u32, data: &[u8]) -> Expr<'_> {
    Expr::Cmp {
        sreg: NFT_REG_1,
        op,
        data,
    }
}

fn payload(dreg: u32, base: u32, offset: u32, len: u32) -> Expr<'static> {
    Expr::Payload {
        dreg,
        base,
        offset,
        len,
    }
}

/// The table name of the instance with `tunnel_prefix`.
pub fn table_name(tunnel_prefix: &str) -> String {
    format!("tmip_{tunnel_prefix}")
}

/// One instance's guard: which tables, on which interface, how large.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SourceGuard {
    table: String,
    ifindex: u32,
    size: u32,
}

impl SourceGuard {
    /// `max_stations`: the station table's limit (the set has room for as
    /// many lingering ones again).
    pub fn new(tunnel_prefix: &str, ifindex: u32, max_stations: u32) -> SourceGuard {
        SourceGuard {
            table: table_name(tunnel_prefix),
            ifindex,
            size: max_stations.saturating_mul(2),
        }
    }

    pub fn table(&self) -> &str {
        &self.table
    }

    /// Removes the family's table if there is one (an earlier run's, even
    /// a crashed one's), then creates it afresh with no station admitted.
    /// In one batch this is atomic: no moment without a guard.
    pub fn install(&self, b: &mut Batch, family: Family) {
        self.remove(b, family);
        let t = self.table.as_str();
        b.add_table(family, t);
        let hook = match family {
            Family::Ip => NF_HOOK_PREROUTING,
            Family::Arp => NF_HOOK_ARP_IN,
        };
        b.add_base_chain(family, t, CHAIN, hook, PRIORITY);
        b.add_counter(family, t, COUNTER);
        let stations = b.add_set(
            family,
            t,
            &SetSpec {
                name: STATIONS,
                key_type: KEY_ETHER_IPV4,
                key_len: KEY_ETHER_IPV4_LEN,
                size: self.size,
                flags: NFT_SET_TIMEOUT,
                timeout_ms: None,
            },
        );
        let iif = self.ifindex.to_ne_bytes();
        let ether = ARPHRD_ETHER.to_ne_bytes();
        let on_iif = [meta(NFT_META_IIF), cmp(NFT_CMP_EQ, &iif)];
        let not_station = Expr::Lookup {
            sreg: NFT_REG_1,
            set: STATIONS,
            set_id: Some(stations),
            invert: true,
        };
        let drop = [Expr::CounterRef { name: COUNTER }, Expr::Verdict(NF_DROP)];
        match family {
            Family::Ip => {
                let spoofers = b.add_set(
                    family,
                    t,
                    &SetSpec {
                        name: SPOOFERS,
                        key_type: KEY_ETHER_IPV4,
                        key_len: KEY_ETHER_IPV4_LEN,
                        size: SPOOFERS_SIZE,
                        flags: NFT_SET_DYNAMIC_TIMEOUT,
                        timeout_ms: Some(SPOOFERS_TIMEOUT_MS),
                    },
                );
                // ip daddr 255.255.255.255 udp sport 68 udp dport 67 accept
                let dhcp_ports = [0, 68, 0, 67];
                let mut dhcp_broadcast = on_iif.to_vec();
                dhcp_broadcast.extend([
                    payload(NFT_REG_1, NFT_PAYLOAD_NETWORK_HEADER, 16, 4),
                    cmp(NFT_CMP_EQ, &[0xff; 4]),
                    meta(NFT_META_L4PROTO),
                    cmp(NFT_CMP_EQ, &[libc::IPPROTO_UDP as u8]),
                    payload(NFT_REG_1, NFT_PAYLOAD_TRANSPORT_HEADER, 0, 4),
                    cmp(NFT_CMP_EQ, &dhcp_ports),
                    Expr::Verdict(NF_ACCEPT),
                ]);
                b.add_rule(family, t, CHAIN, &dhcp_broadcast);
                // ether saddr -> reg 1 (bytes 0..6), ip saddr -> bytes 8..12
                let load_key = [
                    payload(NFT_REG_1, NFT_PAYLOAD_LL_HEADER, 6, 6),
                    payload(NFT_REG32_02, NFT_PAYLOAD_NETWORK_HEADER, 12, 4),
                ];
                let mut head = on_iif.to_vec();
                // `ether saddr` needs an Ethernet link-layer header.
                head.extend([meta(NFT_META_IIFTYPE), cmp(NFT_CMP_EQ, &ether)]);
                head.extend_from_slice(&load_key);
                head.push(not_station);
                let mut record = head.clone();
                record.extend_from_slice(&load_key);
                record.push(Expr::DynsetUpdate {
                    sreg: NFT_REG_1,
                    set: SPOOFERS,
                    set_id: Some(spoofers),
                });
                b.add_rule(family, t, CHAIN, &record);
                head.extend_from_slice(&drop);
                b.add_rule(family, t, CHAIN, &head);
            }
            Family::Arp => {
                // ARP for Ethernet/IPv4 (arp_rcv checked the lengths):
                // sender MAC at 8, sender IP at 14.
                let mut rule = on_iif.to_vec();
                rule.extend([
                    payload(NFT_REG_1, NFT_PAYLOAD_NETWORK_HEADER, 14, 4),
                    cmp(NFT_CMP_NEQ, &[0; 4]),
                    payload(NFT_REG_1, NFT_PAYLOAD_NETWORK_HEADER, 8, 6),
                    payload(NFT_REG32_02, NFT_PAYLOAD_NETWORK_HEADER, 14, 4),
                    not_station,
                ]);
                rule.extend_from_slice(&drop);
                b.add_rule(family, t, CHAIN, &rule);
            }
        }
    }

    /// Removes the family's table; no error if there is none (the table is
    /// created first, so the delete always finds one).
    pub fn remove(&self, b: &mut Batch, family: Family) {
        b.add_table(family, &self.table);
        b.delete_table(family, &self.table);
    }

    /// Lets the station's packets through (an element already there, even
    /// a lingering one, is left as it is).
    pub fn admit(&self, b: &mut Batch, family: Family, mac: MacAddr, ip: Ipv4Addr) {
        b.add_elements(family, &self.table, STATIONS, &[&key(mac, ip)], None);
    }

    /// Lets them through for good, also when the pair was lingering (its
    /// timeout is cleared: add, delete, add without a timeout).
    pub fn readmit(&self, b: &mut Batch, family: Family, mac: MacAddr, ip: Ipv4Addr) {
        self.revoke(b, family, mac, ip);
        self.admit(b, family, mac, ip);
    }

    /// The station left: its pair stays admitted for `ms`, then expires.
    pub fn linger(&self, b: &mut Batch, family: Family, mac: MacAddr, ip: Ipv4Addr, ms: u64) {
        self.revoke(b, family, mac, ip);
        b.add_elements(family, &self.table, STATIONS, &[&key(mac, ip)], Some(ms));
    }

    /// Stops letting them through now; no error if the pair is not there
    /// (added first, so the delete always finds it).
    pub fn revoke(&self, b: &mut Batch, family: Family, mac: MacAddr, ip: Ipv4Addr) {
        let k = key(mac, ip);
        b.add_elements(family, &self.table, STATIONS, &[&k], None);
        b.delete_elements(family, &self.table, STATIONS, &[&k]);
    }
}

/// Turns the drop counters, read now and then, into log lines: one per
/// reading in which something was dropped, none while all is quiet.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DropReport {
    ip: u64,
    arp: u64,
    /// What the latest reading found new (IPv4, ARP).
    new: (u64, u64),
}

impl DropReport {
    /// Total IPv4 packets and ARP frames dropped so far.
    pub fn totals(&self) -> (u64, u64) {
        (self.ip, self.arp)
    }

    /// IPv4 packets and ARP frames the latest reading found dropped since
    /// the one before.
    pub fn latest(&self) -> (u64, u64) {
        self.new
    }

    /// Takes the counters' current values and the recent offenders (from
    /// the `spoofers` set); returns the line to log if anything new was
    /// dropped.
    pub fn update(
        &mut self,
        mobile_if: &str,
        ip: u64,
        arp: u64,
        offenders: &[(MacAddr, Ipv4Addr)],
    ) -> Option<String> {
        // A counter that went down was reset (table re-created): count anew.
        let new_ip = ip.checked_sub(self.ip).unwrap_or(ip);
        let new_arp = arp.checked_sub(self.arp).unwrap_or(arp);
        self.ip = ip;
        self.arp = arp;
        self.new = (new_ip, new_arp);
        if new_ip == 0 && new_arp == 0 {
            return None;
        }
        let mut line = format!(
            "source guard on {mobile_if}: dropped {new_ip} IPv4 packet(s) and {new_arp} ARP frame(s) \
             whose source is not a station adopted here ({ip} and {arp} in all)"
        );
        if !offenders.is_empty() {
            const SHOWN: usize = 8;
            let mut v: Vec<String> = offenders
                .iter()
                .take(SHOWN)
                .map(|(mac, ip)| format!("{mac} as {ip}"))
                .collect();
            if offenders.len() > SHOWN {
                v.push(format!("{} more", offenders.len() - SHOWN));
            }
            line.push_str("; IPv4 sources in the last minute: ");
            line.push_str(&v.join(", "));
        }
        Some(line)
    }
}

#[cfg(test)]
mod tests;
