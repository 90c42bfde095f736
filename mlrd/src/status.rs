//! The status document SIGUSR1 writes to `status_file`: CNs with their
//! pools, the binding count and a bounded list of bindings, and counters,
//! as JSON. Written by hand (the shape is flat and escaping is the only
//! subtle part) to a temporary file then renamed, so a reader never sees
//! half a document.

use crate::register::{Register, NO_CN};
use std::fmt::Write as _;

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
    /// Live settings as the server holds them (a HUP must reach them).
    pub max_connections: usize,
    pub max_unauth_per_source: usize,
    pub handshake_timeout: u32,
    pub ping_interval_secs: u16,
}

/// Append `s` as a JSON string literal.
pub fn json_str(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Render the status document.
pub fn render(
    reg: &Register,
    pair: &crate::pair::Pair,
    srv: &ServerStats,
    now: u32,
    uptime: u64,
    debug: u8,
) -> String {
    let mut o = String::with_capacity(4096);
    o.push_str("{\n  \"software\": ");
    json_str(&mut o, &format!("mlrd {}", tmip::VERSION));
    o.push_str(",\n  \"network\": ");
    json_str(&mut o, reg.network());
    let _ = write!(
        o,
        ",\n  \"pid\": {},\n  \"uptime_secs\": {uptime},\n  \"debug_level\": {debug},\n  \"lease_time\": {},\n",
        std::process::id(),
        reg.lease_time()
    );
    let _ = writeln!(
        o,
        "  \"settings\": {{\"lease_time\": {}, \"offer_time\": {}, \"foreign_share\": {}, \"cn_timeout\": {}, \"ping_interval\": {}, \"max_connections\": {}, \"max_unauth_per_source\": {}, \"handshake_timeout\": {}}},",
        reg.lease_time(),
        reg.offer_time(),
        reg.foreign_share(),
        reg.dead_after(),
        srv.ping_interval_secs,
        srv.max_connections,
        srv.max_unauth_per_source,
        srv.handshake_timeout
    );
    let _ = writeln!(
        o,
        "  \"register\": {{\"role\": \"{}\", \"state\": \"{}\", \"epoch\": {}, \"replication\": \"{}\", \"peer\": \"{}\"}},",
        pair.wire_role(),
        pair.role(),
        pair.epoch(),
        pair.replication(),
        pair.peer().map_or(String::new(), |p| p.to_string())
    );
    let counts = reg.per_cn_counts();
    o.push_str("  \"cns\": [");
    for (i, c) in reg.cns().iter().enumerate() {
        o.push_str(if i == 0 { "\n    {" } else { ",\n    {" });
        let _ = write!(o, "\"index\": {i}, \"name\": ");
        json_str(&mut o, &c.name);
        let (parent_of, at) = counts.get(i).copied().unwrap_or_default();
        let _ = write!(
            o,
            ", \"addr\": \"{}\", \"port\": {}, \"up\": {}, \"silent_secs\": {}, \"bindings_parent\": {parent_of}, \"bindings_at\": {at}, \"pools\": [",
            c.addr,
            c.port,
            c.up,
            now.saturating_sub(c.last_heard)
        );
        for (k, p) in c.pools.iter().enumerate() {
            if k > 0 {
                o.push_str(", ");
            }
            let _ = write!(
                o,
                "{{\"first\": \"{}\", \"last\": \"{}\", \"cells\": {}, \"used\": {}}}",
                p.spec.first,
                p.spec.last,
                p.size(),
                p.used()
            );
        }
        o.push_str("]}");
    }
    o.push_str(if reg.cns().is_empty() {
        "],\n"
    } else {
        "\n  ],\n"
    });
    let n = reg.binding_count();
    let _ = write!(
        o,
        "  \"bindings_count\": {n},\n  \"bindings_listed\": {},\n  \"bindings\": [",
        n.min(MAX_LISTED_BINDINGS)
    );
    for (i, b) in reg.bindings().take(MAX_LISTED_BINDINGS).enumerate() {
        o.push_str(if i == 0 { "\n    " } else { ",\n    " });
        let prev = if b.previous == NO_CN {
            "null".to_string()
        } else {
            b.previous.to_string()
        };
        let _ = write!(
            o,
            "{{\"mac\": \"{}\", \"cell\": \"{}\", \"station\": \"{}\", \"parent\": {}, \"at\": {}, \"previous\": {prev}, \"lease_remaining\": {}}}",
            b.mac(),
            b.cell30(),
            b.cell30().station(),
            b.parent,
            b.at,
            b.remaining(now)
        );
    }
    o.push_str(if n == 0 { "],\n" } else { "\n  ],\n" });
    let c = &reg.counters;
    let _ = writeln!(
        o,
        "  \"offers\": {{\"held\": {}, \"offer_time\": {}, \"foreign_share\": {}, \"made\": {}, \"taken\": {}, \"expired\": {}, \"quota_refused\": {}, \"releases_refused\": {}}},",
        reg.hold_count(),
        reg.offer_time(),
        reg.foreign_share(),
        c.offers,
        c.offers_taken,
        c.offers_expired,
        c.quota_refused,
        c.releases_refused
    );
    let _ = write!(
        o,
        "  \"counters\": {{\"binds\": {}, \"binds_refused\": {}, \"allocations\": {}, \"renewals\": {}, \"locates\": {}, \"locate_misses\": {}, \"moves\": {}, \"releases\": {}, \"expired\": {}, \"cns_down\": {}, \
\"connections\": {}, \"connections_accepted\": {}, \"connections_refused\": {}, \"unauthenticated\": {}, \"preauth_evicted\": {}, \"preauth_refused\": {}, \"handshake_timeouts\": {}, \"frames_in\": {}, \"frames_rejected\": {}, \"auth_failures\": {}, \"pushes_sent\": {}, \"journal_bytes\": {}, \"journal_generation\": {}, \"journal_syncs\": {}}}\n}}\n",
        c.binds,
        c.binds_refused,
        c.allocations,
        c.renewals,
        c.locates,
        c.locate_misses,
        c.moves,
        c.releases,
        c.expired,
        c.cns_down,
        srv.connections,
        srv.connections_accepted,
        srv.connections_refused,
        srv.unauthenticated,
        srv.preauth_evicted,
        srv.preauth_refused,
        srv.handshake_timeouts,
        srv.frames_in,
        srv.frames_rejected,
        srv.auth_failures,
        srv.pushes_sent,
        srv.journal_bytes,
        srv.journal_generation,
        srv.journal_syncs
    );
    o
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
    use tmip::addr::MacAddr;

    #[test]
    fn strings_are_escaped() {
        let mut s = String::new();
        json_str(&mut s, "a\"b\\c\nd\u{1}é");
        assert_eq!(s, "\"a\\\"b\\\\c\\nd\\u0001é\"");
    }

    #[test]
    fn renders_cns_pools_bindings_and_counters() {
        let mut r = Register::new("net \"x\"", 3600, 30);
        let (a, _) = r
            .bind_cn(
                "net \"x\"",
                "roof\tcn",
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
        let doc = render(&r, &alone, &ServerStats::default(), 10, 5, 2);
        assert!(
            doc.contains("\"register\": {\"role\": \"standalone\", \"state\": \"serving\", \"epoch\": 1, \"replication\": \"none\", \"peer\": \"\"}"),
            "{doc}"
        );
        assert!(doc.contains("\"network\": \"net \\\"x\\\"\""), "{doc}");
        assert!(doc.contains("\"name\": \"roof\\tcn\""), "{doc}");
        assert!(doc.contains("\"cells\": 64, \"used\": 1"), "{doc}");
        assert!(doc.contains("\"bindings_count\": 1"), "{doc}");
        assert!(doc.contains("\"mac\": \"02:00:00:00:00:01\", \"cell\": \"10.1.0.0/30\", \"station\": \"10.1.0.1\""), "{doc}");
        assert!(
            doc.contains("\"previous\": null, \"lease_remaining\": 3590"),
            "{doc}"
        );
        assert!(doc.contains("\"allocations\": 1"), "{doc}");
        assert!(
            doc.contains("\"offers\": {\"held\": 0, \"offer_time\": 60, \"foreign_share\": 75,"),
            "{doc}"
        );
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
        assert!(empty.contains("\"cns\": [],"), "{empty}");
        assert!(empty.contains("\"bindings\": [],"), "{empty}");
    }
}
