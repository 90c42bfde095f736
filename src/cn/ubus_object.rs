//! tmipd on ubus (OpenWrt): the instance's status object and the
//! subscription to hostapd's notifications, over [`UbusClient`].
//!
//! - Object: `tmip` for the main instance (rc file, or UCI section `main`),
//!   `tmip.<section>` for other UCI sections, or what `ubus_object` says
//!   (ubusd refuses a second object with a taken name). Methods:
//!   `status` (the USR1 status document, [`status::value`]), `clients`
//!   (`{"clients":[{mac, ip, cell, parent, at, since, expires_in}]}`,
//!   optional argument `mac`), `cns` (`{"cns":[{cn, name, tunnel_users}]}`).
//!   The LuCI app (openwrt/luci-app-tmip) calls `tmip` `status`.
//! - Subscription: `hostapd.<mobile_if>` (or `hostapd.<name>` when
//!   `hostapd_ctrl` is a path `.../<name>`); its notifications arrive as
//!   [`hostap::StationEvent`]s and go through the same arrival path as the
//!   control interface's ([`station_events::apply`]).
//!
//! `ubus auto` uses /var/run/ubus/ubus.sock; the client connects when the
//! socket answers and reconnects (re-publishing, re-subscribing) after
//! ubusd restarts, all from [`UbusLink::tick`].

use super::core::CnCore;
use super::dataplane::CnAddr;
use super::events::{millis, CnEvent, RefuseReason};
use super::station_events;
use super::status::{self, Identity};
use crate::addr::MacAddr;
use crate::config::tmipd::TmipdConfig;
use crate::event_loop::Readiness;
use crate::ubus::blob::{blobmsg_type, Value};
use crate::ubus::client::{IncomingCall, RequestId};
use crate::ubus::msg::status as code;
use crate::ubus::{ObjectSpec, UbusClient, UbusEvent};
use hostap::StationEvent;
use std::os::fd::RawFd;
use std::time::Instant;

/// The object: `status`, `clients {mac}`, `cns` (argument names and
/// blobmsg types) under `path`.
pub fn object_spec(path: &str) -> ObjectSpec {
    ObjectSpec {
        path: path.to_string(),
        methods: vec![
            ("status".into(), vec![]),
            ("clients".into(), vec![("mac".into(), blobmsg_type::STRING)]),
            ("cns".into(), vec![]),
        ],
    }
}

/// The subscription to `hostapd.<ifname>` seen from tmipd: its
/// notifications as station events, and, right after (re)subscribing, the
/// stations hostapd already has (`get_clients`; notifications sent before
/// the subscription are lost).
#[derive(Debug)]
pub struct HostapdWatch {
    path: String,
    resync: Option<RequestId>,
}

impl HostapdWatch {
    pub fn new(path: &str) -> HostapdWatch {
        HostapdWatch {
            path: path.to_string(),
            resync: None,
        }
    }

    /// The station events in `ev` (asks `get_clients` on `client` when the
    /// subscription is (re)made). Notifications that are not station moves
    /// (`probe`, `auth`, ...) give none: hostapd sends one per probe request.
    pub fn station_events(&mut self, client: &mut UbusClient, ev: &UbusEvent) -> Vec<StationEvent> {
        match ev {
            UbusEvent::Subscribed { path, target } if *path == self.path => {
                match client.invoke(*target, "get_clients", &Value::table()) {
                    Ok(req) => self.resync = Some(req),
                    Err(e) => log::debug!(target: "ubus", "{path} get_clients: {e}"),
                }
                Vec::new()
            }
            UbusEvent::Reply { req, status, data } if Some(*req) == self.resync => {
                self.resync = None;
                if *status != code::OK {
                    log::debug!(target: "ubus", "{} get_clients: status {status}", self.path);
                    return Vec::new();
                }
                let evs = clients_from_get_clients(data);
                for e in &evs {
                    log::debug!(target: "ubus", "{}: resync: {e}", self.path);
                }
                evs
            }
            UbusEvent::Notify { path, method, args } if *path == self.path => {
                match station_event(method, args) {
                    Ok(Some(e)) => {
                        log::debug!(target: "ubus", "{path}: {e}");
                        vec![e]
                    }
                    Ok(None) => {
                        log::trace!(target: "ubus", "{path}: {method} ignored");
                        Vec::new()
                    }
                    Err(e) => {
                        log::warn!(target: "ubus", "{path}: {e}");
                        Vec::new()
                    }
                }
            }
            _ => Vec::new(),
        }
    }
}

/// A hostapd notification (`method`, its blobmsg table) through hostap's
/// mapping ([`hostap::from_ubus_notification`]), scalars flattened to text.
pub fn station_event(
    method: &str,
    args: &Value,
) -> Result<Option<StationEvent>, hostap::UbusEventError> {
    let pairs: Vec<(String, String)> = match args {
        Value::Table(t) => t
            .iter()
            .filter_map(|(k, v)| v.scalar_text().map(|s| (k.clone(), s)))
            .collect(),
        _ => Vec::new(),
    };
    hostap::from_ubus_notification(method, pairs.iter().map(|(k, v)| (k.as_str(), v.as_str())))
}

/// Authorized stations in hostapd's `get_clients` reply
/// (`{"clients": {"<mac>": {"authorized": true, "vlanid": N, ...}}}`) as
/// `Connected` events.
pub fn clients_from_get_clients(replies: &[Value]) -> Vec<StationEvent> {
    let mut out = Vec::new();
    for r in replies {
        let Some(Value::Table(clients)) = r.get("clients") else {
            continue;
        };
        for (mac, info) in clients {
            if info.get("authorized").and_then(Value::as_bool) != Some(true) {
                continue;
            }
            let vlan = info
                .get("vlanid")
                .or_else(|| info.get("vlan"))
                .and_then(Value::as_i64)
                .map(|v| v.to_string());
            let mut fields = vec![("address", mac.as_str())];
            if let Some(v) = vlan.as_deref() {
                fields.push(("vlan", v));
            }
            match hostap::from_ubus_notification("sta-authorized", fields) {
                Ok(Some(ev)) => out.push(ev),
                Ok(None) => {}
                Err(e) => log::warn!(target: "ubus", "get_clients: {e}"),
            }
        }
    }
    out
}

/// The ubus connection of one tmipd instance.
pub struct UbusLink {
    client: UbusClient,
    object: String,
    mobile_if: String,
    hostapd: HostapdWatch,
}

impl UbusLink {
    /// `None` when `ubus off`.
    pub fn new(cfg: &TmipdConfig) -> Option<UbusLink> {
        let socket = cfg.ubus_socket()?;
        let object = cfg.ubus_object_name();
        let hostapd = format!("hostapd.{}", cfg.hostapd_iface());
        let mut client = UbusClient::new(socket);
        client.add_object(object_spec(&object));
        client.subscribe(&hostapd);
        Some(UbusLink {
            client,
            object,
            mobile_if: cfg.mobile_if.clone(),
            hostapd: HostapdWatch::new(&hostapd),
        })
    }

    pub fn object(&self) -> &str {
        &self.object
    }

    pub fn socket(&self) -> &std::path::Path {
        self.client.socket_path()
    }

    /// One line for the console's `status`.
    pub fn summary(&self) -> String {
        format!(
            "object '{}' on {} ({})",
            self.object,
            self.client.socket_path().display(),
            if self.client.is_connected() {
                "connected"
            } else {
                "not connected"
            }
        )
    }

    /// The socket to poll (it changes on reconnect; the loop re-reads it
    /// every round) and whether to poll for writing too.
    pub fn poll_fd(&self) -> Option<(RawFd, bool)> {
        self.client.fd().map(|fd| (fd, self.client.wants_write()))
    }

    /// Connect / reconnect, retry the subscription (every second).
    pub fn tick(&mut self, now: Instant) {
        self.client.tick(now);
    }

    pub fn on_ready(&mut self, r: Readiness) {
        if r.writable {
            self.client.on_writable();
        }
        if r.readable || r.error {
            self.client.on_readable();
        }
    }

    /// Handle what arrived: answer calls on our object from `core`, feed
    /// hostapd's station events to it.
    pub fn process(&mut self, core: &mut CnCore, id: &Identity, now: Instant) {
        while let Some(ev) = self.client.poll_event() {
            for event in self.hostapd.station_events(&mut self.client, &ev) {
                let via = format!("ubus {}", self.hostapd.path);
                station_events::apply(core, &event, &via, &self.mobile_if, now);
            }
            match ev {
                UbusEvent::Connected { client_id } => {
                    log::debug!(target: "ubus", "connected to ubusd at {} as client {client_id:08x}", self.client.socket_path().display())
                }
                UbusEvent::Disconnected => {
                    log::warn!(target: "ubus", "lost ubusd at {}; reconnecting", self.client.socket_path().display())
                }
                UbusEvent::ObjectAdded { path, id } => {
                    log::info!(target: "ubus", "published ubus object '{path}' (id {id:08x})")
                }
                UbusEvent::ObjectFailed { path, status } => {
                    log::error!(target: "ubus", "cannot publish ubus object '{path}': status {status} (another instance has it? set ubus_object)")
                }
                UbusEvent::Subscribed { path, .. } => {
                    log::info!(target: "ubus", "subscribed to {path}")
                }
                UbusEvent::Unsubscribed { path } => {
                    log::info!(target: "ubus", "{path} went away; subscribing again when it is back")
                }
                UbusEvent::Notify { .. } => {}
                UbusEvent::Call(call) => self.answer(&call, core, id, now),
                UbusEvent::Reply { status, .. } if status != code::OK => {
                    log::debug!(target: "ubus", "ubusd refused a request (an event?): status {status}")
                }
                UbusEvent::Reply { .. } | UbusEvent::Lookup { .. } => {}
            }
        }
    }

    /// Send `ev` as ubus event `<object>` (`tmip`, `tmip.<section>`):
    /// `ubus listen tmip` shows it. Dropped while ubusd is not connected.
    pub fn send_event(&mut self, ev: &CnEvent, me: CnAddr) {
        if !self.client.is_connected() {
            return;
        }
        if let Err(e) = self.client.send_event(&self.object, event_value(ev, me)) {
            log::debug!(target: "ubus", "event {}: {e}", ev.kind());
        }
    }

    fn answer(&mut self, call: &IncomingCall, core: &CnCore, id: &Identity, now: Instant) {
        log::debug!(target: "ubus", "call {}.{} by {}", call.path, call.method, call.user.as_deref().unwrap_or("?"));
        let (st, data) = match call.method.as_str() {
            "status" => (code::OK, Some(status::value(core, id, now))),
            "clients" => match call.args.get("mac").map(|m| m.as_str()) {
                None => (code::OK, Some(status::clients_value(core, None, now))),
                Some(Some(m)) => match m.parse::<MacAddr>() {
                    Ok(mac) => (code::OK, Some(status::clients_value(core, Some(mac), now))),
                    Err(_) => (code::INVALID_ARGUMENT, None),
                },
                Some(None) => (code::INVALID_ARGUMENT, None),
            },
            "cns" => (code::OK, Some(status::cns_value(core))),
            _ => (code::METHOD_NOT_FOUND, None),
        };
        if let Err(e) = self.client.reply(call, st, data.as_ref()) {
            log::warn!(target: "ubus", "reply to {}.{}: {e}", call.path, call.method);
        }
    }
}

/// The blobmsg table of event `ev` at CN `me` (docs/TMIPD.md "ubus
/// events" lists the fields).
pub fn event_value(ev: &CnEvent, me: CnAddr) -> Value {
    fn s(v: impl ToString) -> Value {
        Value::String(v.to_string())
    }
    let mut t: Vec<(String, Value)> = vec![("event".into(), s(ev.kind()))];
    let mut put = |k: &str, v: Value| t.push((k.to_string(), v));
    match ev {
        CnEvent::Arrived { mac, ip, how } => {
            put("mac", s(mac));
            if let Some(ip) = ip {
                put("ip", s(ip));
            }
            put("how", s(how.as_str()));
        }
        CnEvent::Adopted { mac, cell, parent } => {
            put("mac", s(mac));
            put("ip", s(cell.station()));
            put("cell", s(cell));
            put("parent", s(parent.unwrap_or(me)));
            put("parent_here", Value::Bool(parent.is_none()));
        }
        CnEvent::Handover {
            mac,
            cell,
            from,
            to,
            parent,
            interruption,
            how,
        } => {
            put("mac", s(mac));
            put("ip", s(cell.station()));
            put("cell", s(cell));
            put("from", s(from));
            put("to", s(to));
            put("parent", s(parent));
            put("interruption_ms", Value::Double(millis(*interruption)));
            let us = i32::try_from(interruption.as_micros()).unwrap_or(i32::MAX);
            put("interruption_us", Value::Int32(us));
            put("how", s(how.as_str()));
        }
        CnEvent::Departed { mac, cell, to, why } => {
            put("mac", s(mac));
            put("ip", s(cell.station()));
            put("cell", s(cell));
            if let Some(to) = to {
                put("to", s(to));
            }
            put("reason", s(why.as_str()));
        }
        CnEvent::Released { mac, cell } => {
            put("mac", s(mac));
            if let Some(c) = cell {
                put("ip", s(c.station()));
                put("cell", s(c));
            }
        }
        CnEvent::Refused { mac, cell, reason } => {
            put("mac", s(mac));
            if let Some(c) = cell {
                put("cell", s(c));
            }
            put("reason", s(reason.as_str()));
            match reason {
                RefuseReason::TableFull { capacity } => put(
                    "capacity",
                    Value::Int32(i32::try_from(*capacity).unwrap_or(i32::MAX)),
                ),
                RefuseReason::PeerTableFull { parent } => put("parent", s(parent)),
                RefuseReason::SpoofChaddr { chaddr } => put("chaddr", s(chaddr)),
                RefuseReason::SpoofAddress { ip, owner } => {
                    put("ip", s(ip));
                    if let Some(o) = owner {
                        put("owner", s(o));
                    }
                }
                RefuseReason::RateLimited { rate } => put(
                    "rate",
                    Value::Int32(i32::try_from(*rate).unwrap_or(i32::MAX)),
                ),
                RefuseReason::SourceGuard { ip, packets, arp } => {
                    let n = |v: u64| Value::Int64(i64::try_from(v).unwrap_or(i64::MAX));
                    put("ip", s(ip));
                    put("packets", n(*packets));
                    put("arp", n(*arp));
                }
                RefuseReason::SpoofRelease
                | RefuseReason::SpoofDecline
                | RefuseReason::RelayedMove
                | RefuseReason::Quota
                | RefuseReason::PoolExhausted
                | RefuseReason::MlrRefused => {}
            }
        }
        CnEvent::MlrUp { register, again } => {
            put("register", s(register));
            put("again", Value::Bool(*again));
        }
        CnEvent::MlrDown {
            register,
            why,
            retry_in,
        } => {
            put("register", s(register));
            put("reason", s(why));
            let secs = i32::try_from(retry_in.as_secs()).unwrap_or(i32::MAX);
            put("retry_in_s", Value::Int32(secs));
        }
        CnEvent::MlrFailover { from, to } => {
            put("from", s(from));
            put("to", s(to));
        }
    }
    t.push(("cn".into(), s(me)));
    Value::Table(t)
}

/// What the start-up log says about ubus.
pub fn describe(cfg: &TmipdConfig) -> String {
    match cfg.ubus_socket() {
        Some(s) => format!("object '{}' on {s}", cfg.ubus_object_name()),
        None => "off".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_object_has_the_tmip_methods_under_the_instance_name() {
        let o = object_spec("tmip.cell2");
        assert_eq!(o.path, "tmip.cell2");
        let names: Vec<&str> = o.methods.iter().map(|(m, _)| m.as_str()).collect();
        assert_eq!(names, ["status", "clients", "cns"]);
        let sig = o.signature();
        assert_eq!(sig.get("status"), Some(&Value::table()));
        assert_eq!(
            sig.get("clients"),
            Some(&Value::table().with("mac", Value::Int32(3)))
        );
        assert!(sig.get("cns").is_some());
    }

    #[test]
    fn get_clients_reply_maps_authorized_stations_with_vlan() {
        let reply = Value::table().with(
            "clients",
            Value::table()
                .with(
                    "02:00:00:00:00:01",
                    Value::table()
                        .with("authorized", Value::Int8(1))
                        .with("vlanid", Value::Int32(12)),
                )
                .with(
                    "02:00:00:00:00:02",
                    Value::table().with("authorized", Value::Int8(0)),
                )
                .with("junk", Value::table().with("authorized", Value::Int8(1)))
                .with("02:00:00:00:00:03", Value::String("not a table".into())),
        );
        assert_eq!(
            clients_from_get_clients(&[reply, Value::table()]),
            vec![StationEvent::Connected {
                mac: [2, 0, 0, 0, 0, 1],
                vlan: Some(12)
            }]
        );
    }

    #[test]
    fn a_handover_event_carries_from_to_parent_and_the_interruption() {
        use crate::addr::Cell30;
        use crate::cn::events::Arrival;
        use std::net::Ipv4Addr;
        use std::time::Duration;
        let cn = |n| CnAddr {
            ip: Ipv4Addr::new(10, 0, 0, n),
            port: crate::CN_PORT,
        };
        let ev = CnEvent::Handover {
            mac: "02:00:00:00:00:01".parse().unwrap(),
            cell: Cell30::containing(Ipv4Addr::new(10, 1, 0, 5)),
            from: cn(1),
            to: cn(2),
            parent: cn(1),
            interruption: Duration::from_micros(12_345),
            how: Arrival::Hostapd,
        };
        let v = event_value(&ev, cn(2));
        let f = |k| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
        assert_eq!(f("event"), "handover");
        assert_eq!(f("mac"), "02:00:00:00:00:01");
        assert_eq!(f("ip"), "10.1.0.5");
        assert_eq!(f("cell"), "10.1.0.4/30");
        assert_eq!(
            (f("from"), f("to"), f("parent")),
            ("10.0.0.1".into(), "10.0.0.2".into(), "10.0.0.1".into())
        );
        assert_eq!(f("how"), "hostapd");
        assert_eq!(f("cn"), "10.0.0.2");
        assert_eq!(v.get("interruption_ms"), Some(&Value::Double(12.3)));
        assert_eq!(
            v.get("interruption_us").and_then(Value::as_i64),
            Some(12_345)
        );
    }

    /// Each refusal's `reason` word and its own fields (docs/TMIPD.md).
    #[test]
    fn refused_events_carry_their_reason_and_its_fields() {
        use crate::cn::events::RefuseReason;
        use std::net::Ipv4Addr;
        let me = CnAddr {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: crate::CN_PORT,
        };
        let mac = |n| MacAddr([2, 0, 0, 0, 0, n]);
        let ip = Ipv4Addr::new(10, 1, 0, 5);
        let cases = [
            (
                RefuseReason::SpoofChaddr { chaddr: mac(2) },
                "spoof_chaddr",
                vec![("chaddr", "02:00:00:00:00:02")],
            ),
            (
                RefuseReason::SpoofAddress {
                    ip,
                    owner: Some(mac(2)),
                },
                "spoof_address",
                vec![("ip", "10.1.0.5"), ("owner", "02:00:00:00:00:02")],
            ),
            (
                RefuseReason::SpoofAddress { ip, owner: None },
                "spoof_address",
                vec![("ip", "10.1.0.5")],
            ),
            (RefuseReason::SpoofRelease, "spoof_release", vec![]),
            (RefuseReason::SpoofDecline, "spoof_decline", vec![]),
            (RefuseReason::RelayedMove, "relayed_move", vec![]),
            (RefuseReason::Quota, "quota", vec![]),
            (RefuseReason::PoolExhausted, "pool_exhausted", vec![]),
            (RefuseReason::MlrRefused, "mlr_refused", vec![]),
        ];
        for (reason, word, fields) in cases {
            let v = event_value(
                &CnEvent::Refused {
                    mac: mac(9),
                    cell: None,
                    reason,
                },
                me,
            );
            let Value::Table(t) = &v else { panic!() };
            let names: Vec<&str> = t.iter().map(|(k, _)| k.as_str()).collect();
            let mut want = vec!["event", "mac", "reason"];
            want.extend(fields.iter().map(|(k, _)| *k));
            want.push("cn");
            assert_eq!(names, want, "{word}");
            assert_eq!(v.get("reason").and_then(Value::as_str), Some(word));
            assert_eq!(
                v.get("mac").and_then(Value::as_str),
                Some("02:00:00:00:00:09")
            );
            for (k, val) in fields {
                assert_eq!(v.get(k).and_then(Value::as_str), Some(val), "{word}: {k}");
            }
        }
        let v = event_value(
            &CnEvent::Refused {
                mac: mac(9),
                cell: None,
                reason: RefuseReason::RateLimited { rate: 10 },
            },
            me,
        );
        assert_eq!(v.get("rate").and_then(Value::as_i64), Some(10));
        let reason = RefuseReason::SourceGuard {
            ip,
            packets: 104,
            arp: 3,
        };
        let cell = Some(crate::addr::Cell30::containing(ip));
        let v = event_value(
            &CnEvent::Refused {
                mac: mac(9),
                cell,
                reason,
            },
            me,
        );
        assert_eq!(
            v.get("reason").and_then(Value::as_str),
            Some("source_guard")
        );
        assert_eq!(v.get("cell").and_then(Value::as_str), Some("10.1.0.4/30"));
        assert_eq!(v.get("ip").and_then(Value::as_str), Some("10.1.0.5"));
        assert_eq!(v.get("packets").and_then(Value::as_i64), Some(104));
        assert_eq!(v.get("arp").and_then(Value::as_i64), Some(3));
    }
}
