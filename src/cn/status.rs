//! The CN's status as JSON (SIGUSR1 -> `status_file`, and the console's
//! `status`), written with serde-json-core, plus the console's text tables.

use super::core::CnCore;
use super::stations::Whereabouts;
use crate::ubus::Value;
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

/// One of the latest handovers to this CN (the status page's timeline).
#[derive(Serialize)]
struct HandoverJson<'a> {
    mac: &'a str,
    from: &'a str,
    ago: u64,
    interruption_ms: f64,
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
    dhcp_forged: u64,
    spoofs_refused: u64,
    releases_refused: u64,
    declines: u64,
    new_stations_limited: u64,
    relayed_refused: u64,
    mlr_refused: u64,
}

/// Live settings as the parts that use them hold them (so a test can see
/// a HUP reach them: tests/tmipd_reload.rs).
#[derive(Serialize)]
struct SettingsJson {
    debug_level: u8,
    /// The core's `fallback_lease_secs` (from `lease_time`).
    lease_time: u32,
    reverse_tunnel: bool,
}

#[derive(Serialize)]
struct StatusJson<'a> {
    version: &'a str,
    cn: &'a str,
    name: &'a str,
    network: &'a str,
    mlr: &'a str,
    mlr_up: bool,
    mlr_epoch: u32,
    mlr_replication: &'a str,
    max_stations: usize,
    stations: &'a [StationJson<'a>],
    peers: &'a [PeerJson<'a>],
    handovers: &'a [HandoverJson<'a>],
    counters: CountersJson,
    settings: SettingsJson,
}

/// Identity lines that do not live in the core.
pub struct Identity<'a> {
    pub name: &'a str,
    pub network: &'a str,
    /// The register in use (bound, or tried next).
    pub mlr: &'a str,
    /// Its epoch (0: not known, or a register without failover).
    pub mlr_epoch: u32,
    /// Its replication state as it reported it (`none`, `peer-down`,
    /// `catching-up`, `in-sync`; empty when not known).
    pub mlr_replication: &'a str,
}

/// One station as the status documents show it.
struct Row {
    mac: String,
    cell: String,
    ip: String,
    parent: String,
    at: String,
    exp: u64,
}

fn rows(core: &CnCore, now: Instant) -> Vec<Row> {
    core.stations()
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
        .collect()
}

/// The status document.
pub fn json(core: &CnCore, id: &Identity, now: Instant) -> Result<String, String> {
    let rows = rows(core, now);
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
    let handover_text: Vec<(String, String, u64, f64)> = core
        .handovers()
        .map(|h| {
            (
                h.mac.to_string(),
                h.from.to_string(),
                now.saturating_duration_since(h.at).as_secs(),
                crate::cn::events::millis(h.interruption),
            )
        })
        .collect();
    let handovers: Vec<HandoverJson> = handover_text
        .iter()
        .map(|(m, f, ago, ms)| HandoverJson {
            mac: m,
            from: f,
            ago: *ago,
            interruption_ms: *ms,
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
        mlr_epoch: id.mlr_epoch,
        mlr_replication: id.mlr_replication,
        max_stations: core.stations().limit(),
        stations: &stations,
        peers: &peers,
        handovers: &handovers,
        counters: CountersJson {
            lookups: c.lookups,
            refused_full: c.refused_full,
            adoptions: c.adoptions,
            redirects: c.redirects,
            withdrawals: c.withdrawals,
            mlr_errors: c.mlr_errors,
            dhcp_forged: c.dhcp_forged,
            spoofs_refused: c.spoofs_refused,
            releases_refused: c.releases_refused,
            declines: c.declines,
            new_stations_limited: c.new_stations_limited,
            relayed_refused: c.relayed_refused,
            mlr_refused: c.mlr_refused,
        },
        settings: SettingsJson {
            debug_level: crate::logging::level(),
            lease_time: core.config().fallback_lease_secs,
            reverse_tunnel: core.config().reverse_tunnel,
        },
    };
    // Generous: a station row is well under 256 bytes; names (ours from
    // the config, peers' from the MLR) may need up to 6 bytes a character
    // once escaped (\u00XX).
    let names: usize = 6 * (id.name.len() + id.network.len() + id.mlr.len())
        + peers.iter().map(|p| 6 * p.name.len() + 128).sum::<usize>();
    let mut buf = vec![0u8; 1152 + names + 256 * stations.len() + 160 * handovers.len()];
    let n = serde_json_core::to_slice(&doc, &mut buf).map_err(|e| format!("status JSON: {e}"))?;
    buf.truncate(n);
    String::from_utf8(buf).map_err(|e| format!("status JSON: {e}"))
}

/// The status document as a ubus (blobmsg) table: the same fields, names
/// and values as [`json`], for the ubus `status` method.
pub fn value(core: &CnCore, id: &Identity, now: Instant) -> Value {
    let u64v = |n: u64| Value::Int64(i64::try_from(n).unwrap_or(i64::MAX));
    let stations = rows(core, now)
        .into_iter()
        .map(|r| {
            Value::table()
                .with("mac", Value::String(r.mac))
                .with("cell", Value::String(r.cell))
                .with("ip", Value::String(r.ip))
                .with("parent", Value::String(r.parent))
                .with("at", Value::String(r.at))
                .with("expires_in", u64v(r.exp))
        })
        .collect();
    let peers = core
        .peers()
        .iter()
        .map(|p| {
            Value::table()
                .with("cn", Value::String(p.addr.to_string()))
                .with("name", Value::String(p.name.to_string()))
                .with("tunnel_users", u64v(p.users as u64))
        })
        .collect();
    // The latest handovers to this CN: the status page's timeline.
    let handovers = core
        .handovers()
        .map(|h| {
            Value::table()
                .with("mac", Value::String(h.mac.to_string()))
                .with("from", Value::String(h.from.to_string()))
                .with("ago", u64v(now.saturating_duration_since(h.at).as_secs()))
                .with(
                    "interruption_ms",
                    Value::Double(crate::cn::events::millis(h.interruption)),
                )
        })
        .collect();
    let c = core.counters;
    Value::table()
        .with("version", Value::String(crate::VERSION.into()))
        .with("cn", Value::String(core.me().to_string()))
        .with("name", Value::String(id.name.into()))
        .with("network", Value::String(id.network.into()))
        .with("mlr", Value::String(id.mlr.into()))
        .with("mlr_up", Value::Bool(core.mlr_up()))
        .with("mlr_epoch", u64v(u64::from(id.mlr_epoch)))
        .with("mlr_replication", Value::String(id.mlr_replication.into()))
        .with("max_stations", u64v(core.stations().limit() as u64))
        .with("stations", Value::Array(stations))
        .with("peers", Value::Array(peers))
        .with("handovers", Value::Array(handovers))
        .with(
            "counters",
            Value::table()
                .with("lookups", u64v(c.lookups))
                .with("refused_full", u64v(c.refused_full))
                .with("adoptions", u64v(c.adoptions))
                .with("redirects", u64v(c.redirects))
                .with("withdrawals", u64v(c.withdrawals))
                .with("mlr_errors", u64v(c.mlr_errors))
                .with("dhcp_forged", u64v(c.dhcp_forged))
                .with("spoofs_refused", u64v(c.spoofs_refused))
                .with("releases_refused", u64v(c.releases_refused))
                .with("declines", u64v(c.declines))
                .with("new_stations_limited", u64v(c.new_stations_limited))
                .with("relayed_refused", u64v(c.relayed_refused))
                .with("mlr_refused", u64v(c.mlr_refused)),
        )
        .with(
            "settings",
            Value::table()
                .with("debug_level", u64v(u64::from(crate::logging::level())))
                .with(
                    "lease_time",
                    u64v(u64::from(core.config().fallback_lease_secs)),
                )
                .with("reverse_tunnel", Value::Bool(core.config().reverse_tunnel)),
        )
}

/// The ubus `clients` method: `{"clients":[{mac, ip, cell, parent, at,
/// since, expires_in}]}`, only `mac` when given. `since` is the seconds
/// since the station was taken into the table (arrived, or was redirected).
pub fn clients_value(core: &CnCore, only: Option<crate::addr::MacAddr>, now: Instant) -> Value {
    let list = core
        .stations()
        .iter()
        .filter(|s| only.is_none_or(|m| m == s.mac))
        .map(|s| {
            Value::table()
                .with("mac", Value::String(s.mac.to_string()))
                .with("ip", Value::String(s.cell.station().to_string()))
                .with("cell", Value::String(s.cell.to_string()))
                .with(
                    "parent",
                    Value::String(
                        s.parent
                            .map(|p| p.to_string())
                            .unwrap_or_else(|| "here".into()),
                    ),
                )
                .with(
                    "at",
                    Value::String(match s.at {
                        Whereabouts::Here => "here".into(),
                        Whereabouts::AtPeer(p) => p.to_string(),
                    }),
                )
                .with(
                    "since",
                    Value::Int64(now.saturating_duration_since(s.since).as_secs() as i64),
                )
                .with(
                    "expires_in",
                    Value::Int64(s.expires.saturating_duration_since(now).as_secs() as i64),
                )
        })
        .collect();
    Value::table().with("clients", Value::Array(list))
}

/// The ubus `cns` method: `{"cns":[{cn, name, tunnel_users}]}`.
pub fn cns_value(core: &CnCore) -> Value {
    let list = core
        .peers()
        .iter()
        .map(|p| {
            Value::table()
                .with("cn", Value::String(p.addr.to_string()))
                .with("name", Value::String(p.name.to_string()))
                .with("tunnel_users", Value::Int64(p.users as i64))
        })
        .collect();
    Value::table().with("cns", Value::Array(list))
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
    use super::super::core::{CoreConfig, LookupKind, MlrAnswer, Output, StationBinding};
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
            new_station_rate: 0,
            shared_link: false,
        });
        c.mlr_bound(&[]);
        while c.poll_output().is_some() {}
        let now = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        let ip = Ipv4Addr::new(10, 13, 100, 9);
        c.dhcp_lookup(mac, LookupKind::Locate, Some(ip), false, now);
        let Some(Output::Mlr { tag, .. }) = c.poll_output() else {
            panic!()
        };
        let cell = Cell30::containing(Ipv4Addr::new(10, 13, 100, 8));
        c.mlr_answer(
            tag,
            MlrAnswer::Binding(StationBinding {
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
                mlr_epoch: 2,
                mlr_replication: "in-sync",
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
                mlr_epoch: 2,
                mlr_replication: "in-sync",
            },
            now,
        )
        .unwrap();
        assert!(j.contains("\\u0001\\\""), "{j}");
    }

    /// Fields `<var>.<name>` the LuCI status view reads, for `var`.
    fn js_fields(js: &str, var: &str) -> Vec<String> {
        let b = js.as_bytes();
        let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_' || c == b'$';
        let pat = format!("{var}.");
        let mut out = Vec::new();
        for (i, _) in js.match_indices(&pat) {
            if i > 0 && ident(b[i - 1]) {
                continue;
            }
            let rest = &js[i + pat.len()..];
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() && name != "format" {
                out.push(name);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// The ubus `status` reply has the USR1 JSON's fields, and every field
    /// the LuCI status view reads (openwrt/luci-app-tmip) is in it.
    #[test]
    fn ubus_status_matches_the_json_and_what_luci_reads() {
        let me = CnAddr {
            ip: Ipv4Addr::new(10, 13, 0, 1),
            port: 5554,
        };
        let peer = CnAddr {
            ip: Ipv4Addr::new(10, 13, 0, 2),
            port: 5554,
        };
        let mut c = CnCore::new(CoreConfig {
            me,
            reverse_tunnel: true,
            max_stations: 4,
            max_peers: 4,
            fallback_lease_secs: 600,
            new_station_rate: 0,
            shared_link: false,
        });
        c.mlr_bound(&[]);
        let Some(Output::Mlr { tag, .. }) = c.poll_output() else {
            panic!()
        };
        c.mlr_answer(
            tag,
            MlrAnswer::CnList(vec![(peer, "two".into())]),
            Instant::now(),
        );
        let now = Instant::now();
        let mac = MacAddr([2, 0, 0, 0, 0, 9]);
        c.station_associated(mac, now);
        let Some(Output::Mlr { tag, .. }) = c.poll_output() else {
            panic!()
        };
        let cell = Cell30::containing(Ipv4Addr::new(10, 13, 100, 8));
        c.mlr_answer(
            tag,
            MlrAnswer::Binding(StationBinding {
                mac,
                cell,
                parent: peer,
                at: Some(peer),
                previous: None,
                lease_secs: 100,
            }),
            now,
        );
        let id = Identity {
            name: "one",
            network: "net",
            mlr: "10.0.0.250:6554",
            mlr_epoch: 2,
            mlr_replication: "in-sync",
        };
        let v = value(&c, &id, now);
        let j = json(&c, &id, now).unwrap();
        let Value::Table(top) = &v else { panic!() };
        for (k, _) in top {
            assert!(j.contains(&format!("\"{k}\":")), "{k} not in {j}");
        }
        // Nested keys: a station 6, a peer 3, the counters 13, the
        // settings 3, a handover 4.
        let Some(Value::Array(hs)) = v.get("handovers") else {
            panic!("handovers")
        };
        assert_eq!(
            top.len(),
            j.matches("\":").count() - 6 - 3 - 13 - 3 - 4 * hs.len(),
            "{j}"
        );
        let st = &v.get("stations").unwrap();
        let Value::Array(st) = st else { panic!() };
        assert_eq!(st[0].get("ip").and_then(Value::as_str), Some("10.13.100.9"));
        assert_eq!(
            st[0].get("parent").and_then(Value::as_str),
            Some("10.13.0.2")
        );
        let Value::Array(peers) = v.get("peers").unwrap() else {
            panic!()
        };
        assert_eq!(
            peers[0].get("tunnel_users").and_then(Value::as_i64),
            Some(1)
        );

        let js = include_str!(
            "../../openwrt/luci-app-tmip/htdocs/luci-static/resources/view/tmip/status.js"
        );
        let read_top = js_fields(js, "st");
        assert!(read_top.len() >= 8, "{read_top:?}");
        // `__object` is the view's own note of which instance answered.
        for f in read_top.iter().filter(|f| !f.starts_with("__")) {
            assert!(
                v.get(f).is_some(),
                "status.js reads st.{f}, ubus status lacks it"
            );
        }
        for f in js_fields(js, "s") {
            assert!(st[0].get(&f).is_some(), "status.js reads station field {f}");
        }
        for f in js_fields(js, "p") {
            assert!(peers[0].get(&f).is_some(), "status.js reads peer field {f}");
        }

        let cl = clients_value(&c, None, now);
        let Some(Value::Array(list)) = cl.get("clients") else {
            panic!()
        };
        for f in ["mac", "ip", "cell", "parent", "at", "since", "expires_in"] {
            assert!(list[0].get(f).is_some(), "clients lacks {f}");
        }
        let none = clients_value(&c, Some(MacAddr([2, 0, 0, 0, 0, 1])), now);
        assert_eq!(none.get("clients"), Some(&Value::Array(vec![])));
        let Some(Value::Array(cns)) = cns_value(&c).get("cns").cloned() else {
            panic!()
        };
        assert_eq!(cns[0].get("name").and_then(Value::as_str), Some("two"));
    }
}
