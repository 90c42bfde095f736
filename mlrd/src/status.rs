//! The status document SIGUSR1 writes to `status_file`: CNs with their
//! pools, the binding count and a bounded list of bindings, and counters,
//! as JSON (serde-json-core, as tmipd's status; one line, compact). Written
//! to a temporary file then renamed, so a reader never sees half a
//! document.

use crate::register::{Register, NO_CN};
use serde::{Serialize, Serializer};
use std::fmt;

/// At most this many bindings are listed (the count is always exact).
pub const MAX_LISTED_BINDINGS: usize = 1000;

/// The document is never larger than this (a register of 8192 CNs with
/// long names and a pool each stays well under it).
const MAX_DOCUMENT: usize = 64 << 20;

/// Server-side figures the register does not know.
#[derive(Debug, Clone, Copy, Default)]
pub struct ServerStats {
    pub connections: usize,
    pub connections_accepted: u64,
    pub connections_refused: u64,
    /// Connections that have not completed their handshake now.
    pub unauthenticated: usize,
    /// Unauthenticated connections evicted for newcomers.
    pub preauth_evicted: u64,
    /// Connections closed for a bad frame or Hello before the handshake.
    pub preauth_refused: u64,
    /// Connections closed for not completing the handshake in time.
    pub handshake_timeouts: u64,
    pub frames_in: u64,
    pub frames_rejected: u64,
    pub auth_failures: u64,
    pub pushes_sent: u64,
    pub journal_bytes: u64,
    pub journal_generation: u64,
    /// fdatasync calls of the journal (moves alone do not make one).
    pub journal_syncs: u64,
    /// Live settings as the server holds them (a HUP must reach them).
    pub max_connections: usize,
    pub max_unauth_per_source: usize,
    pub handshake_timeout: u32,
    pub ping_interval_secs: u16,
}

/// Why no document was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StatusError {
    /// The document would exceed [`MAX_DOCUMENT`] bytes.
    TooLarge { limit: usize },
}

impl fmt::Display for StatusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StatusError::TooLarge { limit } => {
                write!(f, "status document larger than {limit} bytes: not written")
            }
        }
    }
}

impl std::error::Error for StatusError {}

/// A value written as a JSON string through its `Display` (addresses,
/// roles, states); serde-json-core escapes it.
struct Shown<T>(T);

impl<T: fmt::Display> Serialize for Shown<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&self.0)
    }
}

/// The live settings, read from the parts that use them (register,
/// service, server), not from the config.
#[derive(Serialize)]
struct SettingsJson {
    lease_time: u32,
    offer_time: u32,
    foreign_share: u8,
    cn_timeout: u32,
    ping_interval: u16,
    max_connections: usize,
    max_unauth_per_source: usize,
    handshake_timeout: u32,
}

#[derive(Serialize)]
struct RegisterJson {
    role: Shown<tmip::mlrp::RegisterRole>,
    state: Shown<crate::pair::Role>,
    epoch: u32,
    replication: Shown<tmip::mlrp::ReplicationState>,
    /// The peer register; `null` for a register without one.
    peer: Option<Shown<std::net::SocketAddrV4>>,
}

#[derive(Serialize)]
struct PoolJson {
    first: Shown<std::net::Ipv4Addr>,
    last: Shown<std::net::Ipv4Addr>,
    cells: u32,
    used: u32,
}

#[derive(Serialize)]
struct CnJson<'a> {
    index: usize,
    name: &'a str,
    addr: Shown<std::net::Ipv4Addr>,
    port: u16,
    up: bool,
    silent_secs: u32,
    bindings_parent: u32,
    bindings_at: u32,
    pools: &'a [PoolJson],
}

#[derive(Serialize)]
struct BindingJson {
    mac: Shown<tmip::addr::MacAddr>,
    cell: Shown<tmip::addr::Cell30>,
    station: Shown<std::net::Ipv4Addr>,
    parent: u16,
    at: u16,
    /// The CN it was at before its latest move; `null` before any.
    previous: Option<u16>,
    lease_remaining: u32,
}

#[derive(Serialize)]
struct OffersJson {
    held: usize,
    offer_time: u32,
    foreign_share: u8,
    made: u64,
    taken: u64,
    expired: u64,
    quota_refused: u64,
    releases_refused: u64,
}

#[derive(Serialize)]
struct CountersJson {
    binds: u64,
    binds_refused: u64,
    allocations: u64,
    renewals: u64,
    locates: u64,
    locate_misses: u64,
    moves: u64,
    releases: u64,
    expired: u64,
    cns_down: u64,
    connections: usize,
    connections_accepted: u64,
    connections_refused: u64,
    unauthenticated: usize,
    preauth_evicted: u64,
    preauth_refused: u64,
    handshake_timeouts: u64,
    frames_in: u64,
    frames_rejected: u64,
    auth_failures: u64,
    pushes_sent: u64,
    journal_bytes: u64,
    journal_generation: u64,
    journal_syncs: u64,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    software: &'a str,
    network: &'a str,
    pid: u32,
    uptime_secs: u64,
    debug_level: u8,
    lease_time: u32,
    settings: SettingsJson,
    register: RegisterJson,
    cns: &'a [CnJson<'a>],
    bindings_count: usize,
    bindings_listed: usize,
    bindings: &'a [BindingJson],
    offers: OffersJson,
    counters: CountersJson,
}

/// Render the status document (one line of JSON and a newline).
pub fn render(
    reg: &Register,
    pair: &crate::pair::Pair,
    srv: &ServerStats,
    now: u32,
    uptime: u64,
    debug: u8,
) -> Result<String, StatusError> {
    let software = format!("mlrd {}", tmip::VERSION);
    let counts = reg.per_cn_counts();
    // Slices, not Vecs: serde is built without `alloc` for the daemons.
    let pools: Vec<Vec<PoolJson>> = reg
        .cns()
        .iter()
        .map(|c| {
            c.pools
                .iter()
                .map(|p| PoolJson {
                    first: Shown(p.spec.first),
                    last: Shown(p.spec.last),
                    cells: p.size(),
                    used: p.used(),
                })
                .collect()
        })
        .collect();
    let cns: Vec<CnJson> = reg
        .cns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (bindings_parent, bindings_at) = counts.get(i).copied().unwrap_or_default();
            CnJson {
                index: i,
                name: &c.name,
                addr: Shown(c.addr),
                port: c.port,
                up: c.up,
                silent_secs: now.saturating_sub(c.last_heard),
                bindings_parent,
                bindings_at,
                pools: pools.get(i).map_or(&[], Vec::as_slice),
            }
        })
        .collect();
    let bindings: Vec<BindingJson> = reg
        .bindings()
        .take(MAX_LISTED_BINDINGS)
        .map(|b| BindingJson {
            mac: Shown(b.mac()),
            cell: Shown(b.cell30()),
            station: Shown(b.cell30().station()),
            parent: b.parent,
            at: b.at,
            previous: (b.previous != NO_CN).then_some(b.previous),
            lease_remaining: b.remaining(now),
        })
        .collect();
    let c = &reg.counters;
    let doc = StatusJson {
        software: &software,
        network: reg.network(),
        pid: std::process::id(),
        uptime_secs: uptime,
        debug_level: debug,
        lease_time: reg.lease_time(),
        settings: SettingsJson {
            lease_time: reg.lease_time(),
            offer_time: reg.offer_time(),
            foreign_share: reg.foreign_share(),
            cn_timeout: reg.dead_after(),
            ping_interval: srv.ping_interval_secs,
            max_connections: srv.max_connections,
            max_unauth_per_source: srv.max_unauth_per_source,
            handshake_timeout: srv.handshake_timeout,
        },
        register: RegisterJson {
            role: Shown(pair.wire_role()),
            state: Shown(pair.role()),
            epoch: pair.epoch(),
            replication: Shown(pair.replication()),
            peer: pair.peer().map(Shown),
        },
        cns: &cns,
        bindings_count: reg.binding_count(),
        bindings_listed: bindings.len(),
        bindings: &bindings,
        offers: OffersJson {
            held: reg.hold_count(),
            offer_time: reg.offer_time(),
            foreign_share: reg.foreign_share(),
            made: c.offers,
            taken: c.offers_taken,
            expired: c.offers_expired,
            quota_refused: c.quota_refused,
            releases_refused: c.releases_refused,
        },
        counters: CountersJson {
            binds: c.binds,
            binds_refused: c.binds_refused,
            allocations: c.allocations,
            renewals: c.renewals,
            locates: c.locates,
            locate_misses: c.locate_misses,
            moves: c.moves,
            releases: c.releases,
            expired: c.expired,
            cns_down: c.cns_down,
            connections: srv.connections,
            connections_accepted: srv.connections_accepted,
            connections_refused: srv.connections_refused,
            unauthenticated: srv.unauthenticated,
            preauth_evicted: srv.preauth_evicted,
            preauth_refused: srv.preauth_refused,
            handshake_timeouts: srv.handshake_timeouts,
            frames_in: srv.frames_in,
            frames_rejected: srv.frames_rejected,
            auth_failures: srv.auth_failures,
            pushes_sent: srv.pushes_sent,
            journal_bytes: srv.journal_bytes,
            journal_generation: srv.journal_generation,
            journal_syncs: srv.journal_syncs,
        },
    };
    // A first guess that fits most documents; names (from the CNs) may
    // need up to 6 bytes a character once escaped.
    let names: usize = reg.cns().iter().map(|c| 6 * c.name.len()).sum();
    let guess =
        2048 + 6 * reg.network().len() + names + 300 * reg.cns().len() + 200 * doc.bindings.len();
    to_json(&doc, guess, MAX_DOCUMENT)
}

/// `value` as JSON text and a newline, in a buffer of `guess` bytes that
/// doubles while the document does not fit, up to `limit`.
fn to_json<T: Serialize>(value: &T, guess: usize, limit: usize) -> Result<String, StatusError> {
    let mut size = guess.clamp(64, limit);
    loop {
        let mut buf = vec![0u8; size];
        match serde_json_core::to_slice(value, &mut buf) {
            Ok(n) => {
                buf.truncate(n);
                buf.push(b'\n');
                // Only ASCII and the UTF-8 of what it was given: lossless.
                return Ok(String::from_utf8_lossy(&buf).into_owned());
            }
            Err(_) if size < limit => size = size.saturating_mul(2).min(limit),
            Err(_) => return Err(StatusError::TooLarge { limit }),
        }
    }
}

/// Write the document to `path` atomically.
pub fn write(path: &str, doc: &str) -> std::io::Result<()> {
    let tmp = format!("{path}.tmp");
    std::fs::write(&tmp, doc)?;
    std::fs::rename(&tmp, path)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::register::AddrRange;
    use serde_json::Value;
    use tmip::addr::MacAddr;

    fn parse(doc: &str) -> Value {
        assert!(doc.ends_with('\n') && doc.lines().count() == 1, "{doc}");
        serde_json::from_str(doc).unwrap_or_else(|e| panic!("{e}: {doc}"))
    }

    #[test]
    fn renders_cns_pools_bindings_and_counters() {
        let mut r = Register::new("net \"x\"", 3600, 30);
        let (a, _) = r
            .bind_cn(
                "net \"x\"",
                "roof\tcn\u{1}",
                "10.9.0.1".parse().unwrap(),
                5554,
                &[AddrRange {
                    first: "10.1.0.0".parse().unwrap(),
                    last: "10.1.0.255".parse().unwrap(),
                }],
                0,
            )
            .unwrap();
        r.allocate(a, MacAddr([2, 0, 0, 0, 0, 1]), 0).unwrap();
        let alone = crate::pair::Pair::new(None, false, 1);
        let srv = ServerStats {
            journal_syncs: 7,
            ..ServerStats::default()
        };
        let v = parse(&render(&r, &alone, &srv, 10, 5, 2).unwrap());
        assert_eq!(
            v["register"],
            serde_json::json!({"role": "standalone", "state": "serving", "epoch": 1,
                "replication": "none", "peer": null})
        );
        assert_eq!(v["network"], "net \"x\"");
        assert_eq!(v["software"], format!("mlrd {}", tmip::VERSION));
        assert_eq!(v["uptime_secs"], 5);
        assert_eq!(v["debug_level"], 2);
        assert_eq!(v["lease_time"], 3600);
        assert_eq!(
            v["settings"],
            serde_json::json!({"lease_time": 3600, "offer_time": 60, "foreign_share": 75,
                "cn_timeout": 30, "ping_interval": 0, "max_connections": 0,
                "max_unauth_per_source": 0, "handshake_timeout": 0})
        );
        let cn = &v["cns"][0];
        assert_eq!(cn["index"], 0);
        assert_eq!(cn["name"], "roof\tcn\u{1}");
        assert_eq!(cn["addr"], "10.9.0.1");
        assert_eq!(cn["port"], 5554);
        assert_eq!(cn["up"], true);
        assert_eq!(cn["silent_secs"], 10);
        assert_eq!(
            (&cn["bindings_parent"], &cn["bindings_at"]),
            (&1.into(), &1.into())
        );
        assert_eq!(
            cn["pools"],
            serde_json::json!([{"first": "10.1.0.0", "last": "10.1.0.255", "cells": 64, "used": 1}])
        );
        assert_eq!(v["bindings_count"], 1);
        assert_eq!(v["bindings_listed"], 1);
        assert_eq!(
            v["bindings"][0],
            serde_json::json!({"mac": "02:00:00:00:00:01", "cell": "10.1.0.0/30",
                "station": "10.1.0.1", "parent": 0, "at": 0, "previous": null,
                "lease_remaining": 3590})
        );
        assert_eq!(v["counters"]["allocations"], 1);
        assert_eq!(v["counters"]["journal_syncs"], 7);
        assert_eq!(v["counters"].as_object().map(|o| o.len()), Some(24));
        assert_eq!(v["offers"]["offer_time"], 60);
        assert_eq!(v["offers"]["foreign_share"], 75);
        assert_eq!(v["offers"]["held"], 0);

        let empty = parse(&render(&Register::new("n", 60, 30), &alone, &srv, 0, 0, 2).unwrap());
        assert_eq!(empty["cns"], serde_json::json!([]));
        assert_eq!(empty["bindings"], serde_json::json!([]));
    }

    /// Many CNs with names that need escaping: the buffer grows, the
    /// document is whole; a document over the limit is an error.
    #[test]
    fn a_large_register_grows_the_buffer_and_a_limit_is_an_error() {
        let mut r = Register::new("n", 3600, 30);
        let name = "\u{1}\"".repeat(100);
        for i in 0..200u32 {
            let first = std::net::Ipv4Addr::from(0x0a00_0000 + (i << 8));
            r.bind_cn(
                "n",
                &format!("{name}{i}"),
                std::net::Ipv4Addr::from(0x0a09_0000 + i),
                5554,
                &[AddrRange {
                    first,
                    last: std::net::Ipv4Addr::from(u32::from(first) + 255),
                }],
                0,
            )
            .unwrap();
        }
        for m in 0..1500u32 {
            let b = m.to_be_bytes();
            r.allocate((m % 200) as u16, MacAddr([2, 1, b[0], b[1], b[2], b[3]]), 0)
                .unwrap();
        }
        let alone = crate::pair::Pair::new(None, false, 1);
        let doc = render(&r, &alone, &ServerStats::default(), 0, 0, 2).unwrap();
        let v = parse(&doc);
        assert_eq!(v["cns"].as_array().map(Vec::len), Some(200));
        assert_eq!(v["cns"][199]["name"], format!("{name}199"));
        assert_eq!(v["bindings_count"], 1500);
        assert_eq!(v["bindings_listed"], MAX_LISTED_BINDINGS);
        assert_eq!(
            v["bindings"].as_array().map(Vec::len),
            Some(MAX_LISTED_BINDINGS)
        );
        // From a 64-byte first guess: the buffer doubles until it fits.
        let long = vec!["\u{1}\""; 1000];
        assert_eq!(
            to_json(&long, 64, 1 << 20),
            Ok(format!("{}\n", serde_json::to_string(&long).unwrap()))
        );
        assert_eq!(
            to_json(&long, 64, 1000),
            Err(StatusError::TooLarge { limit: 1000 })
        );
    }
}
