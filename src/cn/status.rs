//! The CN's status as JSON (SIGUSR1 -> `status_file`, and the console's
//! `status`), written with serde-json-core, plus the console's text tables.

use super::core::CnCore;
use super::stations::Whereabouts;
use serde::Serialize;
use std::time::Instant;

#[derive(Serialize)]
struct StationJson<'a> {
    mac: &'a str,
    cell: &'a str,
    ip: &'a str,
    parent: &'a str,
    at: &'a str,
    expires_in: u64,
}

#[derive(Serialize)]
struct PeerJson<'a> {
    cn: &'a str,
    name: &'a str,
    tunnel_users: usize,
}

#[derive(Serialize)]
struct CountersJson {
    lookups: u64,
    refused_full: u64,
    adoptions: u64,
    redirects: u64,
    withdrawals: u64,
    mlr_errors: u64,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    version: &'a str,
    cn: &'a str,
    name: &'a str,
    network: &'a str,
    mlr: &'a str,
    mlr_up: bool,
    max_stations: usize,
    stations: &'a [StationJson<'a>],
    peers: &'a [PeerJson<'a>],
    counters: CountersJson,
}

/// Identity lines that do not live in the core.
pub struct Identity<'a> {
    pub name: &'a str,
    pub network: &'a str,
    pub mlr: &'a str,
}

/// The status document.
pub fn json(core: &CnCore, id: &Identity, now: Instant) -> Result<String, String> {
    struct Row {
        mac: String,
        cell: String,
        ip: String,
        parent: String,
        at: String,
        exp: u64,
    }
    let rows: Vec<Row> = core
        .stations()
        .iter()
        .map(|s| Row {
            mac: s.mac.to_string(),
            cell: s.cell.to_string(),
            ip: s.cell.station().to_string(),
            parent: s
                .parent
                .map(|p| p.to_string())
                .unwrap_or_else(|| "here".into()),
            at: match s.at {
                Whereabouts::Here => "here".into(),
                Whereabouts::AtPeer(p) => p.to_string(),
            },
            exp: s.expires.saturating_duration_since(now).as_secs(),
        })
        .collect();
    let stations: Vec<StationJson> = rows
        .iter()
        .map(|r| StationJson {
            mac: &r.mac,
            cell: &r.cell,
            ip: &r.ip,
            parent: &r.parent,
            at: &r.at,
            expires_in: r.exp,
        })
        .collect();
    let peer_addrs: Vec<(String, &str, usize)> = core
        .peers()
        .iter()
        .map(|p| (p.addr.to_string(), p.name.as_str(), p.users))
        .collect();
    let peers: Vec<PeerJson> = peer_addrs
        .iter()
        .map(|(a, n, u)| PeerJson {
            cn: a,
            name: n,
            tunnel_users: *u,
        })
        .collect();
    let c = core.counters;
    let me = core.me().to_string();
    let doc = StatusJson {
        version: crate::VERSION,
        cn: &me,
        name: id.name,
        network: id.network,
        mlr: id.mlr,
        mlr_up: core.mlr_up(),
        max_stations: core.stations().limit(),
        stations: &stations,
        peers: &peers,
        counters: CountersJson {
            lookups: c.lookups,
            refused_full: c.refused_full,
            adoptions: c.adoptions,
            redirects: c.redirects,
            withdrawals: c.withdrawals,
            mlr_errors: c.mlr_errors,
        },
    };
    // Generous: a station row is well under 256 bytes; names (ours from
    // the config, peers' from the MLR) may need up to 6 bytes a character
    // once escaped (\u00XX).
    let names: usize = 6 * (id.name.len() + id.network.len() + id.mlr.len())
        + peers.iter().map(|p| 6 * p.name.len() + 128).sum::<usize>();
    let mut buf = vec![0u8; 1024 + names + 256 * stations.len()];
    let n = serde_json_core::to_slice(&doc, &mut buf).map_err(|e| format!("status JSON: {e}"))?;
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| format!("status JSON: {e}"))
}

/// The console's `clients` table.
pub fn clients_text(core: &CnCore, now: Instant) -> String {
    let mut s = format!(
        "{} station(s) (max {}):\n",
        core.stations().len(),
        core.stations().limit()
    );
    for st in core.stations().iter() {
        let at = match st.at {
            Whereabouts::Here => "here".to_string(),
            Whereabouts::AtPeer(p) => format!("at CN {p}"),
        };
        let parent = st
            .parent
            .map(|p| p.to_string())
            .unwrap_or_else(|| "this CN".into());
        s += &format!(
            "  {}  {:<18} ip {:<15} {:<16} parent {:<15} expires in {}s\n",
            st.mac,
            st.cell.to_string(),
            st.cell.station().to_string(),
            at,
            parent,
            st.expires.saturating_duration_since(now).as_secs()
        );
    }
    s
}

/// The console's `cns` table.
pub fn cns_text(core: &CnCore) -> String {
    let mut s = format!("{} peer CN(s):\n", core.peers().len());
    for p in core.peers().iter() {
        s += &format!(
            "  {:<21} [{}] tunnel users: {}\n",
            p.addr.to_string(),
            p.name,
            p.users
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::core::{Binding, CoreConfig, LookupKind, MlrAnswer, Output};
    use super::super::dataplane::CnAddr;
    use super::*;
    use crate::addr::{Cell30, MacAddr};
    use std::net::Ipv4Addr;

    #[test]
    fn status_json_lists_stations_and_counters() {
        let me = CnAddr {
            ip: Ipv4Addr::new(10, 13, 0, 1),
            port: 5554,
        };
        let mut c = CnCore::new(CoreConfig {
            me,
            reverse_tunnel: true,
            max_stations: 4,
            max_peers: 4,
            fallback_lease_secs: 600,
        });
        c.mlr_bound(&[]);
        while c.poll_output().is_some() {}
        let now = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        c.dhcp_lookup(mac, LookupKind::Allocate, None, now);
        let Some(Output::Mlr { tag, .. }) = c.poll_output() else {
            panic!()
        };
        let cell = Cell30::containing(Ipv4Addr::new(10, 13, 100, 8));
        c.mlr_answer(
            tag,
            MlrAnswer::Binding(Binding {
                mac,
                cell,
                parent: me,
                at: None,
                previous: None,
                lease_secs: 100,
            }),
            now,
        );
        let j = json(
            &c,
            &Identity {
                name: "cn \"one\"",
                network: "net",
                mlr: "10.0.0.250",
            },
            now,
        )
        .unwrap();
        assert!(j.contains(r#""mac":"02:00:00:00:00:09""#), "{j}");
        assert!(j.contains(r#""ip":"10.13.100.9""#), "{j}");
        assert!(j.contains(r#""name":"cn \"one\"""#), "{j}");
        assert!(j.contains(r#""adoptions":1"#), "{j}");
        assert!(clients_text(&c, now).contains("10.13.100.9"));
        // Names full of characters that need escaping still fit.
        let odd = "\u{1}\"".repeat(200);
        let j = json(
            &c,
            &Identity {
                name: &odd,
                network: &odd,
                mlr: "m",
            },
            now,
        )
        .unwrap();
        assert!(j.contains("\\u0001\\\""), "{j}");
    }
}
