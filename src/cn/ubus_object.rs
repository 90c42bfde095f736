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
use super::station_events;
use super::status::{self, Identity};
use crate::addr::MacAddr;
use crate::config::tmipd::TmipdConfig;
use crate::event_loop::Readiness;
use crate::ubus::client::IncomingCall;
use crate::ubus::msg::status as code;
use crate::ubus::{ObjectSpec, UbusClient, UbusEvent};
use std::os::fd::RawFd;
use std::time::Instant;

/// The methods of the object (argument names and blobmsg types).
pub fn object_spec(path: &str) -> ObjectSpec {
    ObjectSpec {
        path: path.to_string(),
        ..ObjectSpec::tmip()
    }
}

/// The ubus connection of one tmipd instance.
pub struct UbusLink {
    client: UbusClient,
    object: String,
    mobile_if: String,
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
                UbusEvent::Station { path, event } => {
                    let via = format!("ubus {path}");
                    station_events::apply(core, &event, &via, &self.mobile_if, now);
                }
                UbusEvent::Call(call) => self.answer(&call, core, id, now),
                UbusEvent::Reply { .. } | UbusEvent::Lookup { .. } => {}
            }
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
    }
}
