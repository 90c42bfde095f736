//! The CN's bounded tables: the stations it serves or parents, and the peer
//! CNs it has tunnels to. Capacity is fixed at build time
//! ([`STATION_CAPACITY`], [`PEER_CAPACITY`]) and may be lowered at start
//! (`max_stations`, `max_peers`); a full table refuses the newcomer and
//! leaves everyone else alone.

use super::dataplane::CnAddr;
use crate::addr::{Cell30, MacAddr};
use crate::config::tmipd::{PEER_CAPACITY, STATION_CAPACITY};
use heapless::FnvIndexMap;
use std::time::Instant;

/// Where a station is, seen from this CN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whereabouts {
    /// Attached to this CN's mobile interface.
    Here,
    /// At another CN; this CN is its parent and routes its cell there.
    AtPeer(CnAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Station {
    pub mac: MacAddr,
    pub cell: Cell30,
    /// `None` when this CN is the parent.
    pub parent: Option<CnAddr>,
    pub at: Whereabouts,
    /// When the binding ends unless renewed.
    pub expires: Instant,
    pub since: Instant,
}

impl Station {
    /// The peer whose tunnel this station uses, if any.
    pub fn tunnel_peer(&self) -> Option<CnAddr> {
        match (self.at, self.parent) {
            (Whereabouts::AtPeer(p), _) => Some(p),
            (Whereabouts::Here, Some(p)) => Some(p),
            (Whereabouts::Here, None) => None,
        }
    }
}

#[derive(Debug)]
pub struct TableFull {
    pub capacity: usize,
}

/// Stations keyed by MAC.
pub struct StationTable {
    map: FnvIndexMap<MacAddr, Station, STATION_CAPACITY>,
    limit: usize,
}

impl StationTable {
    pub fn new(limit: usize) -> Self {
        StationTable {
            map: FnvIndexMap::new(),
            limit: limit.clamp(1, STATION_CAPACITY),
        }
    }
    pub fn limit(&self) -> usize {
        self.limit
    }
    pub fn len(&self) -> usize {
        self.map.len()
    }
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
    pub fn get(&self, mac: &MacAddr) -> Option<&Station> {
        self.map.get(mac)
    }
    pub fn get_mut(&mut self, mac: &MacAddr) -> Option<&mut Station> {
        self.map.get_mut(mac)
    }
    pub fn by_cell(&self, cell: Cell30) -> Option<&Station> {
        self.map.values().find(|s| s.cell == cell)
    }
    /// Insert or replace; a new MAC in a full table is refused.
    pub fn upsert(&mut self, s: Station) -> Result<Option<Station>, TableFull> {
        if !self.map.contains_key(&s.mac) && self.map.len() >= self.limit {
            return Err(TableFull {
                capacity: self.limit,
            });
        }
        self.map.insert(s.mac, s).map_err(|_| TableFull {
            capacity: self.limit,
        })
    }
    pub fn remove(&mut self, mac: &MacAddr) -> Option<Station> {
        self.map.remove(mac)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Station> {
        self.map.values()
    }
    /// Stations whose binding has ended by `now`.
    pub fn expired(&self, now: Instant) -> Vec<MacAddr> {
        self.map
            .values()
            .filter(|s| s.expires <= now)
            .map(|s| s.mac)
            .collect()
    }
}

/// A peer CN known to this CN (from the MLR's CN list or a tunnel).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Peer {
    pub addr: CnAddr,
    pub name: String,
    /// Stations that use the tunnel to this peer.
    pub users: usize,
}

pub struct PeerTable {
    peers: heapless::Vec<Peer, PEER_CAPACITY>,
    limit: usize,
}

impl PeerTable {
    pub fn new(limit: usize) -> Self {
        PeerTable {
            peers: heapless::Vec::new(),
            limit: limit.clamp(1, PEER_CAPACITY),
        }
    }
    pub fn get(&self, addr: CnAddr) -> Option<&Peer> {
        self.peers.iter().find(|p| p.addr == addr)
    }
    pub fn iter(&self) -> impl Iterator<Item = &Peer> {
        self.peers.iter()
    }
    pub fn len(&self) -> usize {
        self.peers.len()
    }
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
    /// Learn or rename a peer; refused when full.
    pub fn learn(&mut self, addr: CnAddr, name: &str) -> Result<&mut Peer, TableFull> {
        if let Some(i) = self.peers.iter().position(|p| p.addr == addr) {
            if !name.is_empty() {
                self.peers[i].name = name.to_string();
            }
            return Ok(&mut self.peers[i]);
        }
        if self.peers.len() >= self.limit {
            return Err(TableFull {
                capacity: self.limit,
            });
        }
        self.peers
            .push(Peer {
                addr,
                name: name.to_string(),
                users: 0,
            })
            .map_err(|_| TableFull {
                capacity: self.limit,
            })?;
        let last = self.peers.len() - 1;
        Ok(&mut self.peers[last])
    }
    /// Count one more user of the tunnel to `addr`; true when it is the first.
    pub fn acquire(&mut self, addr: CnAddr) -> Result<bool, TableFull> {
        let p = self.learn(addr, "")?;
        p.users += 1;
        Ok(p.users == 1)
    }
    /// One user fewer; true when it was the last.
    pub fn release(&mut self, addr: CnAddr) -> bool {
        match self.peers.iter_mut().find(|p| p.addr == addr) {
            Some(p) if p.users > 0 => {
                p.users -= 1;
                p.users == 0
            }
            _ => false,
        }
    }
    /// Replace the set of named peers with the MLR's CN list, keeping the
    /// ones with tunnels in use.
    pub fn replace_listing(&mut self, list: &[(CnAddr, String)]) {
        self.peers
            .retain(|p| p.users > 0 || list.iter().any(|(a, _)| *a == p.addr));
        for (a, n) in list {
            if self.learn(*a, n).is_err() {
                log::warn!(target: "cn", "peer table full ({}): not keeping CN {a}", self.limit);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn st(n: u8) -> Station {
        let now = Instant::now();
        Station {
            mac: MacAddr([2, 0, 0, 0, 0, n]),
            cell: Cell30::containing(Ipv4Addr::new(10, 0, 0, n * 4)),
            parent: None,
            at: Whereabouts::Here,
            expires: now,
            since: now,
        }
    }

    #[test]
    fn a_full_station_table_refuses_newcomers_but_updates_known_ones() {
        let mut t = StationTable::new(2);
        t.upsert(st(1)).unwrap();
        t.upsert(st(2)).unwrap();
        assert!(t.upsert(st(3)).is_err());
        assert!(t.upsert(st(2)).is_ok());
        assert_eq!(t.len(), 2);
        t.remove(&st(1).mac);
        assert!(t.upsert(st(3)).is_ok());
    }

    #[test]
    fn peers_count_tunnel_users() {
        let a = CnAddr {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: 5554,
        };
        let mut p = PeerTable::new(1);
        assert!(p.acquire(a).unwrap());
        assert!(!p.acquire(a).unwrap());
        assert!(!p.release(a));
        assert!(p.release(a));
        let b = CnAddr { port: 1, ..a };
        assert!(p.acquire(b).is_err());
    }
}
