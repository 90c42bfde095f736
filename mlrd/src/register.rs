//! The Mobile Location Register itself, without I/O: bound CNs with their
//! address pools and liveness, and one binding per mobile station (its /30,
//! its parent CN, the CN it is at now and the one before).
//!
//! Everything takes `now` as Unix seconds (u32, good until 2106) so the
//! register is tested without clocks and lease expiries survive a restart.
//! Every change is remembered as a [`Change`] for the journal; the server
//! drains them once per loop iteration and writes them BEFORE it sends the
//! replies that acknowledge them.
//!
//! Memory is sized for millions of stations: a binding is a 20-byte
//! [`BindingRecord`] in one slab (no heap object per station), found through
//! two hash indexes holding slab slots (MAC -> slot, cell -> slot); each pool
//! is a bitmap of its /30 cells.
//!
//! Pools are not a free-for-all (stations are untrusted, docs/SECURITY.md):
//! - A DHCP DISCOVER becomes an [`Register::offer`]: a new station's /30 is
//!   only *held* for `offer_time` seconds (a [`Hold`]: its pool bit is set,
//!   it is not a binding, not journalled, not found by Locate). The REQUEST's
//!   [`Register::commit`] (or an `Allocate`) binds it for the lease; holds
//!   not taken return to their pool ([`Register::expire`]).
//! - A CN may take cells from another CN's pool only while that pool is
//!   used to at most `foreign_share` percent ([`DEFAULT_FOREIGN_SHARE`]:
//!   a quarter of every pool stays for its owner); beyond that
//!   [`RegisterError::Quota`].

use std::collections::HashMap;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::net::Ipv4Addr;
use tmip::addr::{Cell30, MacAddr};

/// Index of a CN in the register (stable for the register's lifetime and
/// across restarts: the journal records it).
pub type CnIdx = u16;
/// "No CN" in a binding's `previous` field.
pub const NO_CN: CnIdx = u16::MAX;
/// Most CNs one register holds.
pub const MAX_CNS: usize = (u16::MAX - 1) as usize;
/// Most /30 cells in one pool (a /8 worth), to bound the bitmap.
pub const MAX_POOL_CELLS: u32 = 1 << 22;
/// Most pools one CN may register.
pub const MAX_POOLS_PER_CN: usize = 64;
/// Default seconds an offered /30 is held for the station's REQUEST.
pub const DEFAULT_OFFER_TIME: u32 = 60;
/// Default share (percent) of a CN's pool that other CNs may fill.
pub const DEFAULT_FOREIGN_SHARE: u8 = 75;

/// A pool as a CN registers it: first and last address, inclusive. The
/// pool's cells are the /30s lying wholly inside.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AddrRange {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl AddrRange {
    /// First and last cell (network address >> 2) wholly inside the range.
    fn cells(&self) -> Option<(u32, u32)> {
        let f = u32::from(self.first);
        let l = u32::from(self.last);
        let first_cell = f.checked_add(3)? >> 2;
        let last_cell = match l.checked_add(1) {
            Some(v) => (v >> 2).checked_sub(1)?,
            None => (1u32 << 30) - 1,
        };
        (first_cell <= last_cell).then_some((first_cell, last_cell))
    }
}

impl fmt::Display for AddrRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} --> {}", self.first, self.last)
    }
}

/// One pool: its cells and which are taken.
#[derive(Debug, Clone)]
pub struct PoolBitmap {
    pub spec: AddrRange,
    /// First cell index (network address >> 2) and number of cells.
    base: u32,
    count: u32,
    used: u32,
    bits: Vec<u64>,
    /// Word to start the next search from, so allocation is O(1) amortised.
    hint: usize,
}

impl PoolBitmap {
    fn new(spec: AddrRange) -> Result<PoolBitmap, String> {
        let (a, b) = spec
            .cells()
            .ok_or_else(|| format!("pool {spec} holds no whole /30"))?;
        let count = b - a + 1;
        if count > MAX_POOL_CELLS {
            return Err(format!(
                "pool {spec} too large ({count} cells, at most {MAX_POOL_CELLS})"
            ));
        }
        Ok(PoolBitmap {
            spec,
            base: a,
            count,
            used: 0,
            bits: vec![0; count.div_ceil(64) as usize],
            hint: 0,
        })
    }

    fn contains_cell(&self, cell: u32) -> bool {
        let c = cell >> 2;
        c >= self.base && c - self.base < self.count
    }

    fn overlaps(&self, other: &PoolBitmap) -> bool {
        self.base < other.base + other.count && other.base < self.base + self.count
    }

    fn set(&mut self, cell: u32, on: bool) {
        if !self.contains_cell(cell) {
            return;
        }
        let i = (cell >> 2) - self.base;
        let (w, b) = ((i / 64) as usize, i % 64);
        let was = self.bits[w] & (1 << b) != 0;
        if on && !was {
            self.bits[w] |= 1 << b;
            self.used += 1;
        } else if !on && was {
            self.bits[w] &= !(1 << b);
            self.used -= 1;
            if w < self.hint {
                self.hint = w;
            }
        }
    }

    fn is_set(&self, cell: u32) -> bool {
        if !self.contains_cell(cell) {
            return false;
        }
        let i = (cell >> 2) - self.base;
        self.bits[(i / 64) as usize] & (1 << (i % 64)) != 0
    }

    /// Take a free cell, if any.
    fn take(&mut self) -> Option<u32> {
        if self.used >= self.count {
            return None;
        }
        let words = self.bits.len();
        for k in 0..words {
            let w = (self.hint + k) % words;
            let free = !self.bits[w];
            if free == 0 {
                continue;
            }
            let b = free.trailing_zeros();
            let i = w as u32 * 64 + b;
            if i >= self.count {
                continue;
            }
            self.bits[w] |= 1 << b;
            self.used += 1;
            self.hint = w;
            return Some((self.base + i) << 2);
        }
        None
    }

    pub fn size(&self) -> u32 {
        self.count
    }
    pub fn used(&self) -> u32 {
        self.used
    }
}

/// A CN the register knows (bound now, or bound before and down).
#[derive(Debug, Clone)]
pub struct Cn {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    pub pools: Vec<PoolBitmap>,
    pub up: bool,
    /// When we last heard from it (Unix seconds).
    pub last_heard: u32,
}

/// A station's binding as stored: 20 bytes, no heap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BindingRecord {
    pub mac: [u8; 6],
    pub parent: CnIdx,
    pub at: CnIdx,
    pub previous: CnIdx,
    /// Network address of the /30.
    pub cell: u32,
    /// Unix seconds when the lease ends.
    pub expires: u32,
}

impl BindingRecord {
    const FREE: BindingRecord = BindingRecord {
        mac: [0; 6],
        parent: NO_CN,
        at: NO_CN,
        previous: NO_CN,
        cell: 0,
        expires: 0,
    };
    pub fn mac(&self) -> MacAddr {
        MacAddr(self.mac)
    }
    pub fn cell30(&self) -> Cell30 {
        Cell30::containing(Ipv4Addr::from(self.cell))
    }
    fn is_free(&self) -> bool {
        self.mac == [0; 6]
    }
    /// Seconds of lease left at `now`.
    pub fn remaining(&self, now: u32) -> u32 {
        self.expires.saturating_sub(now)
    }
}

/// A request the MLR must push to a CN over its bound session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// To the parent: route `cell` to CN `to` (local delivery if `to` is the parent).
    Redirect {
        cn: CnIdx,
        mac: MacAddr,
        cell: Cell30,
        to: CnIdx,
    },
    /// To a CN that no longer serves `cell`: drop its state.
    Withdraw {
        cn: CnIdx,
        mac: MacAddr,
        cell: Cell30,
    },
}

/// Something the journal must record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// CN `idx` was added or its name/pools changed.
    Cn(CnIdx),
    /// The binding of this MAC changed (present: upsert; absent: removed).
    Binding([u8; 6]),
}

/// Why a CN bind was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindError {
    WrongNetwork {
        got: String,
    },
    BadPool(String),
    PoolOverlap {
        pool: AddrRange,
        other: String,
    },
    /// Another CN that is up holds this name (MLRP.md §4, `Conflict`).
    NameTaken {
        name: String,
        other: String,
    },
    TooManyCns,
}

impl fmt::Display for BindError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindError::WrongNetwork { got } => write!(f, "wrong network name '{got}'"),
            BindError::BadPool(r) => f.write_str(r),
            BindError::PoolOverlap { pool, other } => {
                write!(f, "pool {pool} overlaps a pool of bound CN {other}")
            }
            BindError::NameTaken { name, other } => {
                write!(f, "CN name '{name}' is bound by CN {other}")
            }
            BindError::TooManyCns => f.write_str("too many CNs"),
        }
    }
}

/// Why a station operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterError {
    /// The requesting CN is not bound (or is down).
    NotBound,
    /// No binding for that MAC / address.
    NotFound,
    /// Every pool the requester may use is full (or there is none).
    PoolsExhausted,
    /// A move named a cell that is not the station's.
    CellMismatch,
    /// Not a unicast station MAC.
    BadMac,
    /// The target CN of a move is unknown.
    UnknownCn,
    /// Free cells exist only in other CNs' pools, which are filled to
    /// their `foreign_share` already.
    Quota,
    /// A release from a CN the station is not at.
    NotAtCn,
}

impl fmt::Display for RegisterError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RegisterError::NotBound => "CN not bound",
            RegisterError::NotFound => "no such binding",
            RegisterError::PoolsExhausted => "no free /30 in any pool",
            RegisterError::CellMismatch => "cell does not belong to that station",
            RegisterError::BadMac => "not a station MAC address",
            RegisterError::UnknownCn => "unknown CN",
            RegisterError::Quota => {
                "refused by quota: the pools left are other CNs' and at their foreign_share"
            }
            RegisterError::NotAtCn => "the station is not at the releasing CN",
        })
    }
}

/// Counters for the status file.
#[derive(Debug, Clone, Copy, Default)]
pub struct Counters {
    pub binds: u64,
    pub binds_refused: u64,
    pub allocations: u64,
    pub renewals: u64,
    pub locates: u64,
    pub locate_misses: u64,
    pub moves: u64,
    pub releases: u64,
    pub expired: u64,
    pub cns_down: u64,
    /// Offers made to new stations (cells held), and how they ended.
    pub offers: u64,
    pub offers_taken: u64,
    pub offers_expired: u64,
    /// Allocations and offers refused by `foreign_share`.
    pub quota_refused: u64,
    /// Releases refused because the releasing CN was not the station's.
    pub releases_refused: u64,
}

/// A /30 held for a station between its DISCOVER and its REQUEST.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hold {
    pub cell: u32,
    /// Owner of the pool the cell is from.
    pub parent: CnIdx,
    /// The CN that asked for the offer.
    pub by: CnIdx,
    /// Unix seconds when the cell returns to its pool.
    pub expires: u32,
}

/// A keyed multiply-fold hasher: much cheaper than SipHash for 4- and
/// 8-byte keys, keyed per process so keys chosen by a peer cannot be
/// aimed at one bucket chain in advance.
#[derive(Clone, Copy)]
pub struct FoldHash(u64);

impl Default for FoldHash {
    fn default() -> Self {
        // RandomState is seeded from the OS once per process.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(0x243f_6a88_85a3_08d3);
        FoldHash(h.finish() | 1)
    }
}

pub struct FoldHasher {
    key: u64,
    h: u64,
}

impl Hasher for FoldHasher {
    fn finish(&self) -> u64 {
        self.h
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.write_u64(b as u64);
        }
    }
    fn write_u32(&mut self, v: u32) {
        self.write_u64(v as u64);
    }
    fn write_u64(&mut self, v: u64) {
        let m = ((v ^ self.h) as u128).wrapping_mul((self.key ^ 0x9e37_79b9_7f4a_7c15) as u128);
        self.h = (m as u64) ^ ((m >> 64) as u64);
    }
}

impl BuildHasher for FoldHash {
    type Hasher = FoldHasher;
    fn build_hasher(&self) -> FoldHasher {
        FoldHasher {
            key: self.0,
            h: self.0.rotate_left(17),
        }
    }
}

fn mac_key(m: &[u8; 6]) -> u64 {
    let mut b = [0u8; 8];
    b[..6].copy_from_slice(m);
    u64::from_le_bytes(b)
}

/// The register.
pub struct Register {
    network: String,
    lease_time: u32,
    /// A CN not heard from for this long is marked down.
    dead_after: u32,
    cns: Vec<Cn>,
    slab: Vec<BindingRecord>,
    free: Vec<u32>,
    by_mac: HashMap<u64, u32, FoldHash>,
    by_cell: HashMap<u32, u32, FoldHash>,
    changes: Vec<Change>,
    sweep_at: usize,
    /// Offered cells by MAC, and their expiry order (a hold refreshed by a
    /// repeated DISCOVER leaves a stale queue entry, skipped when popped).
    holds: HashMap<u64, Hold, FoldHash>,
    hold_queue: std::collections::VecDeque<(u32, u64)>,
    offer_time: u32,
    foreign_share: u8,
    pub counters: Counters,
}

impl Register {
    /// An empty register with this one's settings.
    pub fn empty_like(&self) -> Register {
        Register::new(&self.network, self.lease_time, self.dead_after)
    }

    pub fn new(network: &str, lease_time: u32, dead_after: u32) -> Register {
        Register {
            network: network.to_string(),
            lease_time: lease_time.max(1),
            dead_after: dead_after.max(1),
            cns: Vec::new(),
            slab: Vec::new(),
            free: Vec::new(),
            by_mac: HashMap::default(),
            by_cell: HashMap::default(),
            changes: Vec::new(),
            sweep_at: 0,
            holds: HashMap::default(),
            hold_queue: std::collections::VecDeque::new(),
            offer_time: DEFAULT_OFFER_TIME,
            foreign_share: DEFAULT_FOREIGN_SHARE,
            counters: Counters::default(),
        }
    }

    /// Seconds an offer holds its cell (`offer_time`), at least 1.
    pub fn set_offer_time(&mut self, secs: u32) {
        self.offer_time = secs.max(1);
    }
    pub fn offer_time(&self) -> u32 {
        self.offer_time
    }
    /// Percent of a pool other CNs may fill (`foreign_share`, 0..=100).
    pub fn set_foreign_share(&mut self, percent: u8) {
        self.foreign_share = percent.min(100);
    }
    pub fn foreign_share(&self) -> u8 {
        self.foreign_share
    }
    /// Cells held by offers now.
    pub fn hold_count(&self) -> usize {
        self.holds.len()
    }

    pub fn network(&self) -> &str {
        &self.network
    }
    pub fn lease_time(&self) -> u32 {
        self.lease_time
    }
    pub fn set_lease_time(&mut self, secs: u32) {
        self.lease_time = secs.max(1);
    }

    /// Seconds of silence after which a bound CN is marked down.
    pub fn dead_after(&self) -> u32 {
        self.dead_after
    }
    pub fn set_dead_after(&mut self, secs: u32) {
        self.dead_after = secs.max(1);
    }

    pub fn cns(&self) -> &[Cn] {
        &self.cns
    }
    pub fn cn(&self, i: CnIdx) -> Option<&Cn> {
        self.cns.get(i as usize)
    }
    pub fn find_cn(&self, addr: Ipv4Addr, port: u16) -> Option<CnIdx> {
        self.cns
            .iter()
            .position(|c| c.addr == addr && c.port == port)
            .map(|i| i as CnIdx)
    }
    pub fn binding_count(&self) -> usize {
        self.by_mac.len()
    }
    /// Every live binding, in slab order.
    pub fn bindings(&self) -> impl Iterator<Item = &BindingRecord> {
        self.slab.iter().filter(|r| !r.is_free())
    }

    /// After CN `cn` (re)binds: a Redirect for every station it is the
    /// parent of that is at another CN, so a parent that restarted (and
    /// removed its routes on TERM, or lost them) routes those cells into
    /// the tunnels again. One pass over the slab; binds are rare.
    pub fn redirects_for_parent(&self, cn: CnIdx) -> Vec<Push> {
        self.bindings()
            .filter(|r| r.parent == cn && r.at != cn && r.at != NO_CN)
            .map(|r| Push::Redirect {
                cn,
                mac: r.mac(),
                cell: r.cell30(),
                to: r.at,
            })
            .collect()
    }

    /// What the journal must write since the last call.
    pub fn take_changes(&mut self) -> Vec<Change> {
        std::mem::take(&mut self.changes)
    }
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty()
    }
    /// Changes recorded since the last [`Register::take_changes`].
    pub fn change_count(&self) -> usize {
        self.changes.len()
    }

    // ---- CNs ---------------------------------------------------------

    /// A CN binds with its pools. Same address and port as a known CN:
    /// that CN again (its pools are replaced). A pool overlapping a pool of
    /// another CN that is up is refused; a down CN's overlapping pool is
    /// handed over (logged by the caller via the returned notes).
    pub fn bind_cn(
        &mut self,
        network: &str,
        name: &str,
        addr: Ipv4Addr,
        port: u16,
        pools: &[AddrRange],
        now: u32,
    ) -> Result<(CnIdx, Vec<String>), BindError> {
        if network != self.network {
            self.counters.binds_refused += 1;
            return Err(BindError::WrongNetwork {
                got: network.to_string(),
            });
        }
        let r = self.bind_cn_checked(name, addr, port, pools, now);
        match &r {
            Ok(_) => self.counters.binds += 1,
            Err(_) => self.counters.binds_refused += 1,
        }
        r
    }

    fn bind_cn_checked(
        &mut self,
        name: &str,
        addr: Ipv4Addr,
        port: u16,
        pools: &[AddrRange],
        now: u32,
    ) -> Result<(CnIdx, Vec<String>), BindError> {
        if pools.len() > MAX_POOLS_PER_CN {
            return Err(BindError::BadPool(format!(
                "too many pools ({}, at most {MAX_POOLS_PER_CN})",
                pools.len()
            )));
        }
        let mut new_pools = Vec::with_capacity(pools.len());
        for spec in pools {
            let p = PoolBitmap::new(*spec).map_err(BindError::BadPool)?;
            if let Some(q) = new_pools.iter().find(|q: &&PoolBitmap| q.overlaps(&p)) {
                return Err(BindError::BadPool(format!(
                    "pools {} and {} overlap",
                    q.spec, p.spec
                )));
            }
            new_pools.push(p);
        }
        let me = self.find_cn(addr, port);
        if me.is_none() && self.cns.len() >= MAX_CNS {
            return Err(BindError::TooManyCns);
        }
        // Overlap with, or the name of, other CNs that are up: refuse. A
        // down CN's name and pools pass to the CN binding now (a CN moved
        // to a new address keeps its name).
        for (i, other) in self.cns.iter().enumerate() {
            if Some(i as CnIdx) == me || !other.up {
                continue;
            }
            if !name.is_empty() && other.name == name {
                return Err(BindError::NameTaken {
                    name: name.to_string(),
                    other: format!("{}:{}", other.addr, other.port),
                });
            }
            for p in &new_pools {
                if other.pools.iter().any(|q| q.overlaps(p)) {
                    return Err(BindError::PoolOverlap {
                        pool: p.spec,
                        other: format!("{}:{} [{}]", other.addr, other.port, other.name),
                    });
                }
            }
        }
        // Overlap with down CNs: the binding CN takes the range over.
        let mut notes = Vec::new();
        for (i, other) in self.cns.iter_mut().enumerate() {
            if Some(i as CnIdx) == me {
                continue;
            }
            let before = other.pools.len();
            other
                .pools
                .retain(|q| !new_pools.iter().any(|p| p.overlaps(q)));
            if other.pools.len() != before {
                notes.push(format!(
                    "took over {} pool(s) of down CN {}:{} [{}]",
                    before - other.pools.len(),
                    other.addr,
                    other.port,
                    other.name
                ));
                self.changes.push(Change::Cn(i as CnIdx));
            }
        }
        let idx = match me {
            Some(i) => i,
            None => {
                self.cns.push(Cn {
                    name: String::new(),
                    addr,
                    port,
                    pools: Vec::new(),
                    up: false,
                    last_heard: now,
                });
                (self.cns.len() - 1) as CnIdx
            }
        };
        // A CN rebinding with a pool it already had (the usual case: a CN
        // reconnecting, or every CN after an MLR restart) keeps that pool's
        // bitmap; only new pools are marked from the bindings, which walks
        // the whole slab.
        let mut old_pools = std::mem::take(&mut self.cns[idx as usize].pools);
        for p in &mut new_pools {
            match old_pools.iter().position(|o| o.spec == p.spec) {
                Some(k) => *p = old_pools.swap_remove(k),
                None => self.mark_pool(p),
            }
        }
        let cn = &mut self.cns[idx as usize];
        cn.name = name.to_string();
        cn.pools = new_pools;
        cn.up = true;
        cn.last_heard = now;
        self.changes.push(Change::Cn(idx));
        Ok((idx, notes))
    }

    /// Set the bits of every bound cell lying in `p`.
    fn mark_pool(&self, p: &mut PoolBitmap) {
        for r in &self.slab {
            if !r.is_free() {
                p.set(r.cell, true);
            }
        }
        for h in self.holds.values() {
            p.set(h.cell, true);
        }
    }

    /// Restore a CN from the journal (down until it binds again).
    pub fn restore_cn(
        &mut self,
        idx: CnIdx,
        name: &str,
        addr: Ipv4Addr,
        port: u16,
        pools: &[AddrRange],
    ) {
        let i = idx as usize;
        if i >= MAX_CNS {
            return;
        }
        while self.cns.len() <= i {
            self.cns.push(Cn {
                name: String::new(),
                addr: Ipv4Addr::UNSPECIFIED,
                port: 0,
                pools: Vec::new(),
                up: false,
                last_heard: 0,
            });
        }
        let cn = &mut self.cns[i];
        cn.name = name.to_string();
        cn.addr = addr;
        cn.port = port;
        cn.pools = pools
            .iter()
            .filter_map(|s| PoolBitmap::new(*s).ok())
            .collect();
        cn.up = false;
    }

    /// After a restore: set every pool's bits from the bindings.
    pub fn rebuild_pools(&mut self) {
        let mut cns = std::mem::take(&mut self.cns);
        for c in &mut cns {
            for p in &mut c.pools {
                p.bits.iter_mut().for_each(|w| *w = 0);
                p.used = 0;
                p.hint = 0;
            }
        }
        // Pools do not overlap: sort their ranges once and binary-search
        // each binding's cell (a network may have hundreds of CNs).
        let mut ranges: Vec<(u32, u32, usize, usize)> = Vec::new();
        for (ci, c) in cns.iter().enumerate() {
            for (pi, p) in c.pools.iter().enumerate() {
                ranges.push((p.base, p.count, ci, pi));
            }
        }
        ranges.sort_unstable();
        for r in &self.slab {
            if r.is_free() {
                continue;
            }
            let c = r.cell >> 2;
            let k = ranges.partition_point(|x| x.0 <= c);
            if let Some(&(base, count, ci, pi)) = k.checked_sub(1).and_then(|k| ranges.get(k)) {
                if c - base < count {
                    cns[ci].pools[pi].set(r.cell, true);
                }
            }
        }
        self.cns = cns;
    }

    /// Any frame from CN `i` shows it is alive.
    pub fn heard(&mut self, i: CnIdx, now: u32) {
        if let Some(c) = self.cns.get_mut(i as usize) {
            c.last_heard = now;
        }
    }

    /// The CN's session closed or it unbound: down, bindings kept.
    pub fn cn_down(&mut self, i: CnIdx) -> bool {
        match self.cns.get_mut(i as usize) {
            Some(c) if c.up => {
                c.up = false;
                self.counters.cns_down += 1;
                true
            }
            _ => false,
        }
    }

    /// Mark down every up CN not heard from for `dead_after` seconds.
    /// Returns the CNs marked down now (their sessions should be closed).
    pub fn check_liveness(&mut self, now: u32) -> Vec<CnIdx> {
        let mut down = Vec::new();
        for (i, c) in self.cns.iter_mut().enumerate() {
            if c.up && now.saturating_sub(c.last_heard) >= self.dead_after {
                c.up = false;
                down.push(i as CnIdx);
            }
        }
        self.counters.cns_down += down.len() as u64;
        down
    }

    fn is_up(&self, i: CnIdx) -> bool {
        self.cns.get(i as usize).is_some_and(|c| c.up)
    }

    // ---- stations ----------------------------------------------------

    fn slot_of_mac(&self, mac: &[u8; 6]) -> Option<u32> {
        self.by_mac.get(&mac_key(mac)).copied()
    }

    pub fn get(&self, mac: MacAddr) -> Option<BindingRecord> {
        self.slot_of_mac(&mac.0).map(|s| self.slab[s as usize])
    }

    /// Allocate a /30 for `mac` at CN `from` (idempotent: a known MAC gets
    /// its /30 back with the lease renewed). The requester's own pools
    /// come first, then the pools of every other CN that is up, in order.
    /// Returns the binding and whether it is new.
    #[cfg_attr(not(test), allow(dead_code))]
    pub fn allocate(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        now: u32,
    ) -> Result<(BindingRecord, bool), RegisterError> {
        self.allocate_requested(from, mac, None, now)
    }

    /// As [`Register::allocate`], but a new station gets the /30 holding
    /// `requested` when that cell is free and lies in a pool of a CN that
    /// is up (a DHCP REQUEST for a remembered address, a static client). A
    /// station with an offer gets the offered cell.
    pub fn allocate_requested(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u32,
    ) -> Result<(BindingRecord, bool), RegisterError> {
        self.allocate_fenced(from, mac, requested, now, &|_| true)
    }

    /// As [`Register::allocate_requested`], but a new cell comes from
    /// another CN's pool only when `eligible` says so for that CN (the
    /// requester's own pools always qualify). A register of a pair uses it
    /// so that, in a partition, it never hands out a cell from the pool of
    /// a CN that may be bound to the other register (docs/MLRP.md).
    pub fn allocate_fenced(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u32,
        eligible: &dyn Fn(CnIdx) -> bool,
    ) -> Result<(BindingRecord, bool), RegisterError> {
        if !self.is_up(from) {
            return Err(RegisterError::NotBound);
        }
        if !mac.is_station() {
            return Err(RegisterError::BadMac);
        }
        if let Some(r) = self.renew(mac, now) {
            return Ok((r, false));
        }
        if let Some(rec) = self.take_hold(from, mac, None, now) {
            return Ok((rec, true));
        }
        let (parent, cell) = self.find_cell(from, requested, eligible)?;
        let rec = BindingRecord {
            mac: mac.0,
            parent,
            at: from,
            previous: NO_CN,
            cell,
            expires: now.saturating_add(self.lease_time),
        };
        self.insert(rec);
        self.changes.push(Change::Binding(mac.0));
        self.counters.allocations += 1;
        Ok((rec, true))
    }

    /// DHCP DISCOVER at CN `from`: a bound station's binding as it is (not
    /// renewed); for a new station a /30 held for `offer_time` seconds
    /// (chosen as [`Register::allocate_requested`] would), returned as a
    /// record with `at` = [`NO_CN`] and `expires` = the end of the hold. A
    /// repeated offer to the same MAC keeps its cell and restarts the hold.
    pub fn offer(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u32,
    ) -> Result<BindingRecord, RegisterError> {
        self.offer_fenced(from, mac, requested, now, &|_| true)
    }

    /// As [`Register::offer`], with the fence of
    /// [`Register::allocate_fenced`] for the cell it holds.
    pub fn offer_fenced(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        requested: Option<Ipv4Addr>,
        now: u32,
        eligible: &dyn Fn(CnIdx) -> bool,
    ) -> Result<BindingRecord, RegisterError> {
        if !self.is_up(from) {
            return Err(RegisterError::NotBound);
        }
        if !mac.is_station() {
            return Err(RegisterError::BadMac);
        }
        if let Some(r) = self.get(mac) {
            return Ok(r);
        }
        let key = mac_key(&mac.0);
        let expires = now.saturating_add(self.offer_time);
        let h = match self.holds.get_mut(&key) {
            Some(h) => {
                h.expires = expires;
                *h
            }
            None => {
                let (parent, cell) = self.find_cell(from, requested, eligible)?;
                let h = Hold {
                    cell,
                    parent,
                    by: from,
                    expires,
                };
                self.holds.insert(key, h);
                self.counters.offers += 1;
                h
            }
        };
        self.hold_queue.push_back((expires, key));
        Ok(BindingRecord {
            mac: mac.0,
            parent: h.parent,
            at: NO_CN,
            previous: NO_CN,
            cell: h.cell,
            expires: h.expires,
        })
    }

    /// DHCP REQUEST at CN `from` for `cell`: renew the station's binding
    /// (whatever its cell: the CN NAKs a REQUEST for another address), or
    /// bind the cell offered to it, at `from`, for the lease. `NotFound`
    /// when the MAC has neither, or its offer was another cell.
    pub fn commit(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        cell: Cell30,
        now: u32,
    ) -> Result<(BindingRecord, bool), RegisterError> {
        if !self.is_up(from) {
            return Err(RegisterError::NotBound);
        }
        if let Some(r) = self.renew(mac, now) {
            return Ok((r, false));
        }
        self.take_hold(from, mac, Some(cell), now)
            .map(|r| (r, true))
            .ok_or(RegisterError::NotFound)
    }

    /// Renew a bound station's lease.
    fn renew(&mut self, mac: MacAddr, now: u32) -> Option<BindingRecord> {
        let s = self.slot_of_mac(&mac.0)?;
        let r = &mut self.slab[s as usize];
        r.expires = now.saturating_add(self.lease_time);
        let rec = *r;
        self.changes.push(Change::Binding(mac.0));
        self.counters.renewals += 1;
        Some(rec)
    }

    /// Turn `mac`'s offer into a binding at `from` (only if its cell is
    /// `cell`, when given).
    fn take_hold(
        &mut self,
        from: CnIdx,
        mac: MacAddr,
        cell: Option<Cell30>,
        now: u32,
    ) -> Option<BindingRecord> {
        let key = mac_key(&mac.0);
        let h = *self.holds.get(&key)?;
        if cell.is_some_and(|c| c.to_u32() != h.cell) || self.by_cell.contains_key(&h.cell) {
            return None;
        }
        self.holds.remove(&key);
        let rec = BindingRecord {
            mac: mac.0,
            parent: h.parent,
            at: from,
            previous: NO_CN,
            cell: h.cell,
            expires: now.saturating_add(self.lease_time),
        };
        self.insert(rec);
        self.changes.push(Change::Binding(mac.0));
        self.counters.allocations += 1;
        self.counters.offers_taken += 1;
        Some(rec)
    }

    /// A free cell for a new station at CN `from`, marked taken: the cell
    /// of `requested` when free, else from the requester's own pools, then
    /// from the pools of every other CN that is up and `eligible` (the
    /// fence of a register pair), in order. Another CN's pool gives a cell
    /// only while it is used to at most `foreign_share` percent
    /// ([`RegisterError::Quota`] when that alone stood in the way).
    fn find_cell(
        &mut self,
        from: CnIdx,
        requested: Option<Ipv4Addr>,
        eligible: &dyn Fn(CnIdx) -> bool,
    ) -> Result<(CnIdx, u32), RegisterError> {
        let share = u64::from(self.foreign_share);
        let within = |p: &PoolBitmap, own: bool| {
            own || (u64::from(p.used) + 1) * 100 <= u64::from(p.count) * share
        };
        let mut quota_hit = false;
        if let Some(want) = requested {
            let cell = u32::from(want) & !3;
            if !self.by_cell.contains_key(&cell) {
                let owner = self.cns.iter_mut().enumerate().find_map(|(i, c)| {
                    let p = c.pools.iter_mut().find(|p| p.contains_cell(cell))?;
                    let ok = c.up && (i == from as usize || eligible(i as CnIdx));
                    ok.then_some((i, p))
                });
                if let Some((i, p)) = owner {
                    if !p.is_set(cell) {
                        if within(p, i == from as usize) {
                            p.set(cell, true);
                            return Ok((i as CnIdx, cell));
                        }
                        quota_hit = true;
                    }
                }
            }
        }
        let order = std::iter::once(from as usize)
            .chain((0..self.cns.len()).filter(|&i| i != from as usize));
        for i in order {
            if !self.cns[i].up || (i != from as usize && !eligible(i as CnIdx)) {
                continue;
            }
            let own = i == from as usize;
            for p in &mut self.cns[i].pools {
                if p.used < p.count && !within(p, own) {
                    quota_hit = true;
                    continue;
                }
                // A cell may already be bound from a pool that was since
                // reassigned; such cells are marked, but check anyway.
                while let Some(cell) = p.take() {
                    if !self.by_cell.contains_key(&cell) {
                        return Ok((i as CnIdx, cell));
                    }
                }
            }
        }
        if quota_hit {
            self.counters.quota_refused += 1;
            return Err(RegisterError::Quota);
        }
        Err(RegisterError::PoolsExhausted)
    }

    /// Return the cells of offers not taken by `now` to their pools.
    fn expire_holds(&mut self, now: u32) {
        while let Some(&(t, key)) = self.hold_queue.front() {
            if t > now {
                break;
            }
            self.hold_queue.pop_front();
            let Some(h) = self.holds.get(&key).copied() else {
                continue;
            };
            if h.expires > now {
                continue; // refreshed: a later queue entry stands for it
            }
            self.holds.remove(&key);
            if !self.by_cell.contains_key(&h.cell) {
                for c in &mut self.cns {
                    for p in &mut c.pools {
                        p.set(h.cell, false);
                    }
                }
            }
            self.counters.offers_expired += 1;
        }
    }

    fn insert(&mut self, rec: BindingRecord) {
        let slot = match self.free.pop() {
            Some(s) => {
                self.slab[s as usize] = rec;
                s
            }
            None => {
                self.slab.push(rec);
                (self.slab.len() - 1) as u32
            }
        };
        self.by_mac.insert(mac_key(&rec.mac), slot);
        self.by_cell.insert(rec.cell, slot);
    }

    fn remove_slot(&mut self, s: u32) -> BindingRecord {
        let rec = self.slab[s as usize];
        self.by_mac.remove(&mac_key(&rec.mac));
        self.by_cell.remove(&rec.cell);
        for c in &mut self.cns {
            for p in &mut c.pools {
                p.set(rec.cell, false);
            }
        }
        self.slab[s as usize] = BindingRecord::FREE;
        self.free.push(s);
        rec
    }

    /// Restore (or overwrite) a binding from the journal. Pool bits are set
    /// by [`Register::rebuild_pools`] once the whole journal is read.
    pub fn restore_binding(&mut self, rec: BindingRecord) {
        if rec.is_free() {
            return;
        }
        if let Some(s) = self.slot_of_mac(&rec.mac) {
            let old = self.slab[s as usize];
            if old.cell != rec.cell {
                self.by_cell.remove(&old.cell);
                self.by_cell.insert(rec.cell, s);
            }
            self.slab[s as usize] = rec;
            return;
        }
        // A cell held by another MAC (should not happen): the later wins.
        if let Some(&s) = self.by_cell.get(&rec.cell) {
            self.remove_slot(s);
        }
        self.insert(rec);
    }

    /// Restore a binding from a snapshot, whose MACs and cells are unique
    /// (it was written from a register and is checksummed): no lookups.
    pub fn restore_unique(&mut self, rec: BindingRecord) {
        if !rec.is_free() {
            self.insert(rec);
        }
    }

    /// Remove a binding while replaying the journal.
    pub fn restore_removal(&mut self, mac: [u8; 6]) {
        if let Some(s) = self.slot_of_mac(&mac) {
            self.remove_slot(s);
        }
    }

    /// Pre-size the indexes (restore, benchmark).
    pub fn reserve(&mut self, n: usize) {
        self.slab.reserve(n);
        self.by_mac.reserve(n);
        self.by_cell.reserve(n);
    }

    pub fn locate_mac(&mut self, mac: MacAddr) -> Option<BindingRecord> {
        self.counters.locates += 1;
        let r = self.get(mac);
        if r.is_none() {
            self.counters.locate_misses += 1;
        }
        r
    }

    /// Locate by any of the four addresses of a station's /30.
    pub fn locate_ip(&mut self, ip: Ipv4Addr) -> Option<BindingRecord> {
        self.counters.locates += 1;
        let cell = u32::from(ip) & !3;
        let r = self.by_cell.get(&cell).map(|&s| self.slab[s as usize]);
        if r.is_none() {
            self.counters.locate_misses += 1;
        }
        r
    }

    /// Station `mac` (holding `cell`) is now at CN `to`. Records at/previous,
    /// renews the lease and returns what to push: Redirect to the parent
    /// (always: it may have missed an earlier one), Withdraw to the CN the
    /// station left when that is neither `to` nor the parent.
    pub fn move_to(
        &mut self,
        mac: MacAddr,
        cell: Cell30,
        to: CnIdx,
        now: u32,
    ) -> Result<(BindingRecord, Vec<Push>), RegisterError> {
        if (to as usize) >= self.cns.len() {
            return Err(RegisterError::UnknownCn);
        }
        let s = self.slot_of_mac(&mac.0).ok_or(RegisterError::NotFound)?;
        let lease = self.lease_time;
        let r = &mut self.slab[s as usize];
        if r.cell != cell.to_u32() {
            return Err(RegisterError::CellMismatch);
        }
        let mut pushes = Vec::with_capacity(2);
        let old_at = r.at;
        if old_at != to {
            r.previous = old_at;
            r.at = to;
            if old_at != r.parent && old_at != NO_CN {
                pushes.push(Push::Withdraw {
                    cn: old_at,
                    mac,
                    cell,
                });
            }
        }
        r.expires = now.saturating_add(lease);
        pushes.insert(
            0,
            Push::Redirect {
                cn: r.parent,
                mac,
                cell,
                to,
            },
        );
        let rec = *r;
        self.changes.push(Change::Binding(mac.0));
        self.counters.moves += 1;
        Ok((rec, pushes))
    }

    /// Free a station's /30 at the request of CN `by`, which must be the CN
    /// the station is at ([`RegisterError::NotAtCn`] else). Pushes a
    /// Withdraw to its parent unless that is `by`.
    pub fn release(
        &mut self,
        mac: MacAddr,
        by: CnIdx,
    ) -> Result<(BindingRecord, Vec<Push>), RegisterError> {
        let s = self.slot_of_mac(&mac.0).ok_or(RegisterError::NotFound)?;
        // Only the CN the station is at can have seen its RELEASE.
        if self.slab[s as usize].at != by {
            self.counters.releases_refused += 1;
            return Err(RegisterError::NotAtCn);
        }
        let rec = self.remove_slot(s);
        self.changes.push(Change::Binding(mac.0));
        self.counters.releases += 1;
        Ok((rec, withdrawals(&rec, by)))
    }

    /// Expire leases: look at up to `budget` slab slots from where the last
    /// call stopped (so a sweep over millions never stalls the loop). Offers
    /// not taken in time return to their pools first.
    /// Returns the expired bindings' withdrawals.
    pub fn expire(&mut self, now: u32, budget: usize) -> (Vec<BindingRecord>, Vec<Push>) {
        self.expire_holds(now);
        let mut gone = Vec::new();
        let mut pushes = Vec::new();
        let n = self.slab.len();
        if n == 0 {
            return (gone, pushes);
        }
        for _ in 0..budget.min(n) {
            if self.sweep_at >= n {
                self.sweep_at = 0;
            }
            let s = self.sweep_at;
            self.sweep_at += 1;
            let r = self.slab[s];
            if !r.is_free() && r.expires <= now {
                self.remove_slot(s as u32);
                self.changes.push(Change::Binding(r.mac));
                self.counters.expired += 1;
                pushes.extend(withdrawals(&r, NO_CN));
                gone.push(r);
            }
        }
        (gone, pushes)
    }

    /// Bindings per CN index as parent and as "at" (for status).
    pub fn per_cn_counts(&self) -> Vec<(u32, u32)> {
        let mut v = vec![(0u32, 0u32); self.cns.len()];
        for r in self.bindings() {
            if let Some(e) = v.get_mut(r.parent as usize) {
                e.0 += 1;
            }
            if let Some(e) = v.get_mut(r.at as usize) {
                e.1 += 1;
            }
        }
        v
    }
}

fn withdrawals(rec: &BindingRecord, by: CnIdx) -> Vec<Push> {
    let cell = rec.cell30();
    let mac = rec.mac();
    let mut v = Vec::new();
    if rec.at != by && rec.at != NO_CN {
        v.push(Push::Withdraw {
            cn: rec.at,
            mac,
            cell,
        });
    }
    if rec.parent != by && rec.parent != rec.at && rec.parent != NO_CN {
        v.push(Push::Withdraw {
            cn: rec.parent,
            mac,
            cell,
        });
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    const NET: &str = "testnet";

    fn ip(s: &str) -> Ipv4Addr {
        s.parse().unwrap()
    }
    fn pool(a: &str, b: &str) -> AddrRange {
        AddrRange {
            first: ip(a),
            last: ip(b),
        }
    }
    fn mac(n: u32) -> MacAddr {
        let b = n.to_be_bytes();
        MacAddr([0x02, 0, b[0], b[1], b[2], b[3]])
    }
    fn reg() -> Register {
        Register::new(NET, 3600, 30)
    }
    fn bind(r: &mut Register, a: &str, pools: &[AddrRange]) -> CnIdx {
        r.bind_cn(NET, a, ip(a), 5554, pools, 100).unwrap().0
    }
    fn cell_of(s: &str) -> Cell30 {
        Cell30::from_network(ip(s)).unwrap()
    }

    #[test]
    fn pool_cells_are_whole_30s_inside_the_range() {
        let p = PoolBitmap::new(pool("10.0.0.1", "10.0.0.14")).unwrap();
        // 10.0.0.4/30 and 10.0.0.8/30 only: .0 and .12 are cut.
        assert_eq!(p.size(), 2);
        assert!(PoolBitmap::new(pool("10.0.0.1", "10.0.0.2")).is_err());
        assert_eq!(
            PoolBitmap::new(pool("10.0.0.0", "10.0.0.255"))
                .unwrap()
                .size(),
            64
        );
        assert!(PoolBitmap::new(pool("0.0.0.0", "255.255.255.255")).is_err());
    }

    #[test]
    fn a_fenced_allocation_uses_only_eligible_pools_besides_its_own() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.7")]);
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        let not_b = |i: CnIdx| i != b;
        // Its own pool first (two cells), then nothing: B's pool is fenced.
        for n in 0..2 {
            let (rec, _) = r.allocate_fenced(a, mac(n), None, 100, &not_b).unwrap();
            assert_eq!(rec.parent, a);
        }
        assert_eq!(
            r.allocate_fenced(a, mac(9), None, 100, &not_b).unwrap_err(),
            RegisterError::PoolsExhausted
        );
        // A requested cell in B's pool is not handed out either.
        let e = r.allocate_fenced(a, mac(9), Some(ip("10.2.0.9")), 100, &not_b);
        assert_eq!(e.unwrap_err(), RegisterError::PoolsExhausted);
        // B itself may use its pool, and unfenced A may too.
        let (rec, _) = r.allocate_fenced(b, mac(10), None, 100, &not_b).unwrap();
        assert_eq!(rec.parent, b);
        let (rec, _) = r.allocate_requested(a, mac(11), None, 100).unwrap();
        assert_eq!(rec.parent, b);
    }

    #[test]
    fn bind_refuses_a_wrong_network_name() {
        let mut r = reg();
        let e = r
            .bind_cn("other", "cn", ip("10.9.0.1"), 5554, &[], 0)
            .unwrap_err();
        assert_eq!(e.to_string(), "wrong network name 'other'");
        assert!(r.cns().is_empty());
        assert_eq!(r.counters.binds_refused, 1);
    }

    #[test]
    fn bind_refuses_pools_overlapping_another_up_cn_with_a_reason() {
        let mut r = reg();
        bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let e = r
            .bind_cn(
                NET,
                "b",
                ip("10.9.0.2"),
                5554,
                &[pool("10.1.0.128", "10.1.1.255")],
                0,
            )
            .unwrap_err();
        assert!(matches!(e, BindError::PoolOverlap { .. }), "{e}");
        assert!(e.to_string().contains("10.9.0.1:5554"), "{e}");
        // Its own pools overlapping each other are refused too.
        let e = r
            .bind_cn(
                NET,
                "b",
                ip("10.9.0.2"),
                5554,
                &[pool("10.2.0.0", "10.2.0.255"), pool("10.2.0.4", "10.2.0.7")],
                0,
            )
            .unwrap_err();
        assert!(e.to_string().contains("overlap"), "{e}");
        // The same CN rebinding with the same pool is fine.
        bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        assert_eq!(r.cns().len(), 1);
    }

    #[test]
    fn a_name_bound_by_an_up_cn_is_refused_and_a_down_cns_name_passes_on() {
        let mut r = reg();
        r.bind_cn(NET, "cn1", ip("10.9.0.1"), 5554, &[], 0).unwrap();
        let e = r
            .bind_cn(NET, "cn1", ip("10.9.0.2"), 5554, &[], 0)
            .unwrap_err();
        assert_eq!(
            e,
            BindError::NameTaken {
                name: "cn1".into(),
                other: "10.9.0.1:5554".into()
            }
        );
        assert_eq!(r.cns().len(), 1);
        // The holder itself binds again under its name.
        r.bind_cn(NET, "cn1", ip("10.9.0.1"), 5554, &[], 0).unwrap();
        // Once it is down, a CN at a new address may take the name.
        r.cn_down(0);
        r.bind_cn(NET, "cn1", ip("10.9.0.2"), 5554, &[], 0).unwrap();
        // Empty names (no cn_name configured) never clash.
        r.bind_cn(NET, "", ip("10.9.0.3"), 5554, &[], 0).unwrap();
        r.bind_cn(NET, "", ip("10.9.0.4"), 5554, &[], 0).unwrap();
    }

    #[test]
    fn a_down_cns_overlapping_pool_is_taken_over() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        r.cn_down(a);
        let (_, notes) = r
            .bind_cn(
                NET,
                "b",
                ip("10.9.0.2"),
                5554,
                &[pool("10.1.0.0", "10.1.0.255")],
                0,
            )
            .unwrap();
        assert_eq!(notes.len(), 1);
        assert!(r.cn(a).unwrap().pools.is_empty());
    }

    #[test]
    fn allocation_uses_own_pool_first_then_others_without_overlap() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.15")]); // 4 cells
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.7")]); // 2 cells
        let c = bind(&mut r, "10.9.0.3", &[]);
        // (No quota here: see offers_and_the_foreign_share_keep_a_quarter.)
        r.set_foreign_share(100);
        let mut seen = std::collections::HashSet::new();
        for i in 0..2 {
            let (rec, new) = r.allocate(b, mac(i), 0).unwrap();
            assert!(new);
            assert_eq!(rec.parent, b);
            assert!(seen.insert(rec.cell));
        }
        // b's pool is full: a's pool next.
        let (rec, _) = r.allocate(b, mac(10), 0).unwrap();
        assert_eq!((rec.parent, rec.at), (a, b));
        assert!(seen.insert(rec.cell));
        // c has no pool: served from the others.
        for i in 20..23 {
            let (rec, _) = r.allocate(c, mac(i), 0).unwrap();
            assert_eq!(rec.at, c);
            assert!(seen.insert(rec.cell), "cell handed out twice");
        }
        assert_eq!(seen.len(), 6);
        assert_eq!(
            r.allocate(c, mac(99), 0).unwrap_err(),
            RegisterError::PoolsExhausted
        );
        assert_eq!(r.binding_count(), 6);
    }

    /// Issue 8, finding 3: a DISCOVER flood from one cell holds cells only
    /// for offer_time, binds nothing, and leaves a quarter of every other
    /// CN's pool to its owner.
    #[test]
    fn offers_and_the_foreign_share_keep_a_quarter() {
        let mut r = reg();
        r.set_offer_time(60);
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]); // 64 cells
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]); // 64 cells
        r.take_changes();
        let mut refused = 0;
        for i in 0..3000 {
            match r.offer(a, mac(i), None, 1000) {
                Ok(rec) => assert_eq!(rec.at, NO_CN),
                Err(e) => {
                    assert_eq!(e, RegisterError::Quota);
                    refused += 1;
                }
            }
        }
        // a's 64, and b's pool up to 75 % (48 of 64).
        assert_eq!(r.hold_count(), 64 + 48);
        assert_eq!(refused, 3000 - 112);
        assert_eq!(r.counters.quota_refused, refused);
        assert_eq!(r.binding_count(), 0, "offers bind nothing");
        assert!(r.take_changes().is_empty(), "offers are not journalled");
        assert!(r.locate_mac(mac(0)).is_none());
        // b's own stations still get the quarter left.
        for i in 0..16 {
            let (rec, _) = r.allocate(b, mac(5000 + i), 1000).unwrap();
            assert_eq!(rec.parent, b);
        }
        // A repeated DISCOVER keeps its cell; the REQUEST binds it.
        let held = r.offer(a, mac(7), None, 1010).unwrap();
        assert_eq!(held.expires, 1070);
        let (rec, new) = r.commit(a, mac(7), held.cell30(), 1020).unwrap();
        assert!(new);
        assert_eq!((rec.cell, rec.at, rec.expires), (held.cell, a, 1020 + 3600));
        assert_eq!(r.counters.offers_taken, 1);
        // A REQUEST for another cell, or with no offer: NotFound (NAK).
        let other = r.offer(a, mac(8), None, 1020).unwrap();
        assert_eq!(
            r.commit(a, mac(8), held.cell30(), 1020).unwrap_err(),
            RegisterError::NotFound
        );
        assert_eq!(
            r.commit(a, mac(4999), other.cell30(), 1020).unwrap_err(),
            RegisterError::NotFound
        );
        // Offers not taken go back to their pools.
        r.expire(1069, 1000);
        assert_eq!(r.hold_count(), 1, "mac 8 asked again at 1020");
        r.expire(1081, 1000);
        assert_eq!(r.hold_count(), 0);
        assert_eq!(r.counters.offers_expired, 111);
        let used: u32 = r
            .cns()
            .iter()
            .flat_map(|c| c.pools.iter())
            .map(|p| p.used())
            .sum();
        assert_eq!(used, 17, "the 16 of b and the one bound");
        // The quota applies to a requested address too (a CN without
        // pools of its own has only others').
        let c = bind(&mut r, "10.9.0.3", &[]);
        r.set_foreign_share(0);
        assert_eq!(
            r.offer(c, mac(9000), Some(ip("10.1.0.9")), 2000)
                .unwrap_err(),
            RegisterError::Quota
        );
    }

    /// Issue 8, finding 2: only the CN a station is at may release it.
    #[test]
    fn a_release_must_come_from_the_cn_the_station_is_at() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        let (rec, _) = r.allocate(a, mac(1), 0).unwrap();
        assert_eq!(r.release(mac(1), b).unwrap_err(), RegisterError::NotAtCn);
        assert_eq!(r.counters.releases_refused, 1);
        assert!(r.get(mac(1)).is_some());
        r.move_to(mac(1), rec.cell30(), b, 1).unwrap();
        assert_eq!(r.release(mac(1), a).unwrap_err(), RegisterError::NotAtCn);
        assert!(r.release(mac(1), b).is_ok());
        assert!(r.get(mac(1)).is_none());
    }

    #[test]
    fn allocate_is_idempotent_per_mac_and_renews_the_lease() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        let (first, new) = r.allocate(a, mac(1), 1000).unwrap();
        assert!(new);
        assert_eq!(first.expires, 1000 + 3600);
        let (again, new) = r.allocate(b, mac(1), 2000).unwrap();
        assert!(!new);
        assert_eq!(again.cell, first.cell);
        assert_eq!(again.parent, a);
        assert_eq!(again.expires, 2000 + 3600);
        assert_eq!(r.binding_count(), 1);
    }

    #[test]
    fn a_requested_free_address_is_honoured_else_any_cell() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        let (rec, _) = r
            .allocate_requested(b, mac(1), Some(ip("10.1.0.41")), 0)
            .unwrap();
        assert_eq!(rec.cell30(), cell_of("10.1.0.40"));
        assert_eq!((rec.parent, rec.at), (a, b));
        // Taken: a different MAC asking for it gets another cell.
        let (rec2, _) = r
            .allocate_requested(b, mac(2), Some(ip("10.1.0.42")), 0)
            .unwrap();
        assert_ne!(rec2.cell, rec.cell);
        assert_eq!(rec2.parent, b);
        // Outside every pool: any cell.
        let (rec3, _) = r
            .allocate_requested(b, mac(3), Some(ip("192.168.1.5")), 0)
            .unwrap();
        assert_eq!(rec3.parent, b);
        // The pool bit is set: plain allocation never hands it out again.
        for i in 10..73 {
            let (x, _) = r.allocate(a, mac(i), 0).unwrap();
            assert_ne!(x.cell, rec.cell);
        }
    }

    #[test]
    fn allocate_refuses_unbound_cns_and_bad_macs() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        assert_eq!(
            r.allocate(7, mac(1), 0).unwrap_err(),
            RegisterError::NotBound
        );
        assert_eq!(
            r.allocate(a, MacAddr::BROADCAST, 0).unwrap_err(),
            RegisterError::BadMac
        );
        r.cn_down(a);
        assert_eq!(
            r.allocate(a, mac(1), 0).unwrap_err(),
            RegisterError::NotBound
        );
    }

    #[test]
    fn locate_by_mac_and_by_any_address_of_the_cell() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let (rec, _) = r.allocate(a, mac(5), 0).unwrap();
        assert_eq!(r.locate_mac(mac(5)), Some(rec));
        let c = rec.cell30();
        for addr in [c.network(), c.station(), c.gateway(), c.broadcast()] {
            assert_eq!(r.locate_ip(addr), Some(rec));
        }
        assert_eq!(r.locate_mac(mac(6)), None);
        assert_eq!(r.locate_ip(ip("10.200.0.1")), None);
        assert_eq!(r.counters.locate_misses, 2);
    }

    #[test]
    fn a_rebinding_parent_gets_redirects_for_its_stations_elsewhere() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[]);
        let (home, _) = r.allocate(a, mac(1), 0).unwrap();
        let (away, _) = r.allocate(a, mac(2), 0).unwrap();
        r.move_to(mac(2), away.cell30(), b, 1).unwrap();
        assert_eq!(home.at, a);
        assert_eq!(
            r.redirects_for_parent(a),
            vec![Push::Redirect {
                cn: a,
                mac: mac(2),
                cell: away.cell30(),
                to: b
            }],
            "only the station at another CN"
        );
        assert!(r.redirects_for_parent(b).is_empty(), "b is nobody's parent");
    }

    #[test]
    fn move_records_at_and_previous_and_returns_the_pushes() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[]);
        let c = bind(&mut r, "10.9.0.3", &[]);
        let (rec, _) = r.allocate(a, mac(1), 0).unwrap();
        let cell = rec.cell30();
        // a -> b: redirect to the parent (a), nothing to withdraw (a is the parent).
        let (m, p) = r.move_to(mac(1), cell, b, 10).unwrap();
        assert_eq!((m.parent, m.at, m.previous), (a, b, a));
        assert_eq!(
            p,
            vec![Push::Redirect {
                cn: a,
                mac: mac(1),
                cell,
                to: b
            }]
        );
        assert_eq!(m.expires, 10 + 3600);
        // b -> c: redirect at a, withdraw at b.
        let (m, p) = r.move_to(mac(1), cell, c, 20).unwrap();
        assert_eq!((m.at, m.previous), (c, b));
        assert_eq!(
            p,
            vec![
                Push::Redirect {
                    cn: a,
                    mac: mac(1),
                    cell,
                    to: c
                },
                Push::Withdraw {
                    cn: b,
                    mac: mac(1),
                    cell
                }
            ]
        );
        // c -> a (home): redirect to local delivery, withdraw at c.
        let (m, p) = r.move_to(mac(1), cell, a, 30).unwrap();
        assert_eq!((m.at, m.previous), (a, c));
        assert_eq!(
            p,
            vec![
                Push::Redirect {
                    cn: a,
                    mac: mac(1),
                    cell,
                    to: a
                },
                Push::Withdraw {
                    cn: c,
                    mac: mac(1),
                    cell
                }
            ]
        );
        // Repeated move to the same CN: previous kept, parent reminded.
        let (m, p) = r.move_to(mac(1), cell, a, 40).unwrap();
        assert_eq!(m.previous, c);
        assert_eq!(
            p,
            vec![Push::Redirect {
                cn: a,
                mac: mac(1),
                cell,
                to: a
            }]
        );
        // Wrong cell, unknown station, unknown CN.
        assert_eq!(
            r.move_to(mac(1), cell_of("10.7.0.0"), b, 0).unwrap_err(),
            RegisterError::CellMismatch
        );
        assert_eq!(
            r.move_to(mac(2), cell, b, 0).unwrap_err(),
            RegisterError::NotFound
        );
        assert_eq!(
            r.move_to(mac(1), cell, 99, 0).unwrap_err(),
            RegisterError::UnknownCn
        );
    }

    #[test]
    fn release_frees_the_cell_for_reuse_and_withdraws() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.3")]); // 1 cell
        let b = bind(&mut r, "10.9.0.2", &[]);
        let (rec, _) = r.allocate(a, mac(1), 0).unwrap();
        r.move_to(mac(1), rec.cell30(), b, 0).unwrap();
        assert_eq!(
            r.allocate(a, mac(2), 0).unwrap_err(),
            RegisterError::PoolsExhausted
        );
        let (_, p) = r.release(mac(1), b).unwrap();
        assert_eq!(
            p,
            vec![Push::Withdraw {
                cn: a,
                mac: mac(1),
                cell: rec.cell30()
            }]
        );
        assert_eq!(r.release(mac(1), b).unwrap_err(), RegisterError::NotFound);
        let (rec2, _) = r.allocate(a, mac(2), 0).unwrap();
        assert_eq!(rec2.cell, rec.cell);
    }

    #[test]
    fn leases_expire_in_bounded_sweeps() {
        let mut r = Register::new(NET, 100, 30);
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.255.255")]);
        for i in 0..10 {
            r.allocate(a, mac(i), 0).unwrap();
        }
        r.allocate(a, mac(3), 50).unwrap(); // renewed: lives to 150
        let (gone, _) = r.expire(99, 100);
        assert!(gone.is_empty());
        // Slots 0..4 hold macs 0..3, of which mac 3 was renewed.
        let (gone, _) = r.expire(100, 4);
        assert_eq!(gone.len(), 3);
        let (gone, _) = r.expire(100, 100);
        assert_eq!(gone.len(), 6);
        assert_eq!(r.binding_count(), 1);
        assert!(r.get(mac(3)).is_some());
        assert_eq!(r.counters.expired, 9);
    }

    #[test]
    fn missed_pings_mark_a_cn_down_and_keep_its_bindings() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        r.allocate(a, mac(1), 100).unwrap();
        r.heard(b, 120);
        assert!(r.check_liveness(129).is_empty());
        assert_eq!(r.check_liveness(130), vec![a]);
        assert!(!r.cn(a).unwrap().up);
        assert!(r.cn(b).unwrap().up);
        assert!(r.get(mac(1)).is_some());
        // b's allocations no longer come from down a's pool.
        for i in 2..60 {
            let (rec, _) = r.allocate(b, mac(i), 130).unwrap();
            assert_eq!(rec.parent, b);
        }
        // Rebinding brings it back up.
        bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        assert!(r.cn(a).unwrap().up);
    }

    #[test]
    fn restore_then_rebuild_never_hands_a_bound_cell_out_again() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.15")]);
        let mut held = Vec::new();
        for i in 0..3 {
            held.push(r.allocate(a, mac(i), 0).unwrap().0);
        }
        let mut r2 = reg();
        let cn = r.cn(a).unwrap();
        let specs: Vec<_> = cn.pools.iter().map(|p| p.spec).collect();
        r2.restore_cn(a, &cn.name, cn.addr, cn.port, &specs);
        for h in &held {
            r2.restore_binding(*h);
        }
        r2.rebuild_pools();
        bind(&mut r2, "10.9.0.1", &specs);
        let (rec, _) = r2.allocate(a, mac(9), 0).unwrap();
        assert!(held.iter().all(|h| h.cell != rec.cell));
        assert_eq!(
            r2.allocate(a, mac(10), 0).unwrap_err(),
            RegisterError::PoolsExhausted
        );
    }

    #[test]
    fn rebinding_keeps_the_pool_bitmap_and_a_changed_pool_is_marked_afresh() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.15")]); // 4 cells
        let b = bind(&mut r, "10.9.0.2", &[pool("10.2.0.0", "10.2.0.255")]);
        let c = bind(&mut r, "10.9.0.3", &[pool("10.3.0.0", "10.3.0.255")]);
        for i in 0..3 {
            r.allocate(a, mac(i), 0).unwrap();
        }
        r.allocate(b, mac(10), 0).unwrap();
        r.allocate(c, mac(11), 0).unwrap();
        bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.15")]);
        assert_eq!(r.cn(a).unwrap().pools[0].used(), 3);
        // Grown: a new pool, marked from the bindings.
        bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.31")]);
        assert_eq!(r.cn(a).unwrap().pools[0].used(), 3);
        // After a restore, every pool of many CNs is rebuilt by range search.
        let mut r2 = reg();
        for (i, cn) in r.cns().iter().enumerate() {
            let specs: Vec<_> = cn.pools.iter().map(|p| p.spec).collect();
            r2.restore_cn(i as CnIdx, &cn.name, cn.addr, cn.port, &specs);
        }
        for rec in r.bindings() {
            r2.restore_binding(*rec);
        }
        r2.rebuild_pools();
        let used: Vec<u32> = r2.cns().iter().map(|c| c.pools[0].used()).collect();
        assert_eq!(used, vec![3, 1, 1]);
    }

    #[test]
    fn changes_name_every_touched_cn_and_mac() {
        let mut r = reg();
        let a = bind(&mut r, "10.9.0.1", &[pool("10.1.0.0", "10.1.0.255")]);
        r.allocate(a, mac(1), 0).unwrap();
        r.release(mac(1), a).unwrap();
        assert_eq!(
            r.take_changes(),
            vec![
                Change::Cn(a),
                Change::Binding(mac(1).0),
                Change::Binding(mac(1).0)
            ]
        );
        assert!(!r.has_changes());
        // Locates change nothing.
        r.locate_mac(mac(1));
        assert!(!r.has_changes());
    }

    #[test]
    fn binding_record_is_20_bytes() {
        assert_eq!(std::mem::size_of::<BindingRecord>(), 20);
    }
}
