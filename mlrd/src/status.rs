//! The status document SIGUSR1 writes to `status_file`: CNs with their
//! pools, the binding count and a bounded list of bindings, and counters,
//! as JSON (serde-json-core, as tmipd's status). Written to a temporary
//! file then renamed, so a reader never sees half a document.

use crate::register::{Register, NO_CN};
use serde::Serialize;

/// At most this many bindings are listed (the count is always exact).
pub const MAX_LISTED_BINDINGS: usize = 1000;

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
}

/// One pool of a CN.
#[derive(Serialize)]
struct PoolJson {
    first: String,
    last: String,
    cells: u64,
    used: u64,
}

#[derive(Serialize)]
struct CnJson<'a> {
    index: usize,
    name: &'a str,
    addr: String,
    port: u16,
    up: bool,
    silent_secs: u32,
    bindings_parent: u32,
    bindings_at: u32,
    pools: Vec<PoolJson>,
}

#[derive(Serialize)]
struct BindingJson {
    mac: String,
    cell: String,
    station: String,
    parent: u32,
    at: u32,
    previous: Option<u32>,
    lease_remaining: u32,
}

/// This register's place in a primary/backup pair.
#[derive(Serialize)]
struct RegisterJson {
    role: String,
    state: String,
    epoch: u32,
    replication: String,
    peer: String,
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

/// The document: one field per line of docs (see the module docs). New
/// sections (replication, ...) are new fields here.
#[derive(Serialize)]
struct StatusJson<'a> {
    software: &'a str,
    network: &'a str,
    pid: u32,
    uptime_secs: u64,
    debug_level: u8,
    lease_time: u32,
    register: RegisterJson,
    cns: Vec<CnJson<'a>>,
    bindings_count: usize,
    bindings_listed: usize,
    bindings: Vec<BindingJson>,
    counters: CountersJson,
}

/// Render the status document (JSON through serde-json-core, as tmipd's).
pub fn render(
    reg: &Register,
    pair: &crate::pair::Pair,
    srv: &ServerStats,
    now: u32,
    uptime: u64,
    debug: u8,
) -> String {
    let software = format!("mlrd {}", tmip::VERSION);
    let counts = reg.per_cn_counts();
    let cns: Vec<CnJson> = reg
        .cns()
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let (bindings_parent, bindings_at) = counts.get(i).copied().unwrap_or_default();
            CnJson {
                index: i,
                name: &c.name,
                addr: c.addr.to_string(),
                port: c.port,
                up: c.up,
                silent_secs: now.saturating_sub(c.last_heard),
                bindings_parent,
                bindings_at,
                pools: c
                    .pools
                    .iter()
                    .map(|p| PoolJson {
                        first: p.spec.first.to_string(),
                        last: p.spec.last.to_string(),
                        cells: p.size() as u64,
                        used: p.used() as u64,
                    })
                    .collect(),
            }
        })
        .collect();
    let n = reg.binding_count();
    let bindings: Vec<BindingJson> = reg
        .bindings()
        .take(MAX_LISTED_BINDINGS)
        .map(|b| BindingJson {
            mac: b.mac().to_string(),
            cell: b.cell30().to_string(),
            station: b.cell30().station().to_string(),
            parent: u32::from(b.parent),
            at: u32::from(b.at),
            previous: (b.previous != NO_CN).then(|| u32::from(b.previous)),
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
        register: RegisterJson {
            role: pair.wire_role().to_string(),
            state: pair.role().to_string(),
            epoch: pair.epoch(),
            replication: pair.replication().to_string(),
            peer: pair.peer().map_or(String::new(), |p| p.to_string()),
        },
        cns,
        bindings_count: n,
        bindings_listed: bindings.len(),
        bindings,
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
    // Generous: a binding is well under 256 bytes, a pool under 128; names
    // may take 6 bytes a character once escaped (\u00XX).
    let names: usize = 6 * (reg.network().len() + software.len())
        + reg
            .cns()
            .iter()
            .map(|c| 6 * c.name.len() + 256 + 128 * c.pools.len())
            .sum::<usize>();
    let mut buf = vec![0u8; 2048 + names + 256 * doc.bindings.len()];
    match serde_json_core::to_slice(&doc, &mut buf) {
        Ok(len) => {
            buf.truncate(len);
            let mut s = String::from_utf8(buf).unwrap_or_default();
            s.push('\n');
            s
        }
        // Cannot happen with the size above; say so rather than write junk.
        Err(e) => format!("{{\"error\":\"status JSON: {e}\"}}\n"),
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
    use crate::register::PoolSpec;
    use tmip::addr::MacAddr;

    #[test]
    fn renders_cns_pools_bindings_and_counters() {
        let mut r = Register::new("net \"x\"", 3600, 30);
        let (a, _) = r
            .bind_cn(
                "net \"x\"",
                "roof\tcn",
                "10.9.0.1".parse().unwrap(),
                5554,
                &[PoolSpec {
                    first: "10.1.0.0".parse().unwrap(),
                    last: "10.1.0.255".parse().unwrap(),
                }],
                0,
            )
            .unwrap();
        r.allocate(a, MacAddr([2, 0, 0, 0, 0, 1]), 0).unwrap();
        let alone = crate::pair::Pair::new(None, false, 1);
        let doc = render(&r, &alone, &ServerStats::default(), 10, 5, 2);
        assert!(
            doc.contains("\"register\":{\"role\":\"standalone\",\"state\":\"serving\",\"epoch\":1,\"replication\":\"none\",\"peer\":\"\"}"),
            "{doc}"
        );
        assert!(doc.contains("\"network\":\"net \\\"x\\\"\""), "{doc}");
        assert!(doc.contains("\"name\":\"roof\\tcn\""), "{doc}");
        assert!(doc.contains("\"cells\":64,\"used\":1"), "{doc}");
        assert!(doc.contains("\"bindings_count\":1"), "{doc}");
        assert!(
            doc.contains(
                "\"mac\":\"02:00:00:00:00:01\",\"cell\":\"10.1.0.0/30\",\"station\":\"10.1.0.1\""
            ),
            "{doc}"
        );
        assert!(
            doc.contains("\"previous\":null,\"lease_remaining\":3590"),
            "{doc}"
        );
        assert!(doc.contains("\"allocations\":1"), "{doc}");
        // Balanced and free of raw control characters.
        assert_eq!(doc.matches('{').count(), doc.matches('}').count());
        assert_eq!(doc.matches('[').count(), doc.matches(']').count());
        let empty = render(
            &Register::new("n", 60, 30),
            &alone,
            &ServerStats::default(),
            0,
            0,
            2,
        );
        assert!(empty.contains("\"cns\":[],"), "{empty}");
        assert!(empty.contains("\"bindings\":[],"), "{empty}");
    }
}
