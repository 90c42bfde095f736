//! Station events from hostapd for the CN: the control-interface link
//! (`hostapd_ctrl`, [`HostapdLink`]) and the mapping of every
//! [`StationEvent`] — from the control interface or from hostapd's ubus
//! notifications (see `ubus_object.rs`) — onto the core's arrival path
//! ([`apply`]).
//!
//! `Connected` is an arrival known by MAC before the station has sent a
//! frame: the core looks the MAC up at the MLR and adopts a bound station
//! at once, through the same adoption (gateway address, host route, ARP to
//! the station, Move) as DHCP and capture arrivals. `Disconnected` is only
//! logged: a station leaving this cell may be roaming, and the new CN's
//! Move makes the MLR withdraw it here. A WDS station's netdev appearing is
//! treated like `Connected`.

use super::core::CnCore;
use crate::addr::MacAddr;
use crate::config::tmipd::{SocketSetting, TmipdConfig};
use hostap::{HostapdCtrl, LinkState, StationEvent};
use std::os::fd::RawFd;
use std::path::PathBuf;
use std::time::Instant;

/// Where the client end of the control socket is bound (as wpa_ctrl does).
const LOCAL_DIR: &str = hostap::ctrl::DEFAULT_LOCAL_DIR;

/// The link to hostapd's control interface. Drive it from the poll loop:
/// register [`fd`](HostapdLink::fd) (when `Some`) for reading, call
/// [`drain`](HostapdLink::drain) when readable and
/// [`tick`](HostapdLink::tick) every second.
pub struct HostapdLink {
    path: PathBuf,
    /// `auto`: use the path only while it exists.
    auto: bool,
    ctrl: Option<HostapdCtrl>,
    last: LinkState,
    /// Said once that an explicitly configured socket is not there (yet).
    missing_said: bool,
}

impl HostapdLink {
    /// `None` when `hostapd_ctrl off`.
    pub fn new(cfg: &TmipdConfig) -> Option<HostapdLink> {
        let path = cfg.hostapd_ctrl_path()?;
        Some(HostapdLink {
            path: PathBuf::from(path),
            auto: cfg.hostapd_ctrl == SocketSetting::Auto,
            ctrl: None,
            last: LinkState::Down,
            missing_said: false,
        })
    }

    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The socket to poll; it stays the same for the life of the link.
    pub fn fd(&self) -> Option<RawFd> {
        self.ctrl.as_ref().map(|c| c.fd())
    }

    pub fn state(&self) -> LinkState {
        self.last
    }

    /// One line for the console's `status`.
    pub fn summary(&self) -> String {
        let st = match self.last {
            LinkState::Attached => "attached to",
            LinkState::Attaching => "attaching to",
            LinkState::Down => "waiting for",
        };
        format!("{st} {}", self.path.display())
    }

    /// Periodic upkeep: find the socket (`auto`), attach, PING, re-attach
    /// after a hostapd restart (the library re-walks hostapd's station
    /// table after every attach, reported through `drain`).
    pub fn tick(&mut self) {
        if self.ctrl.is_none() {
            if !self.path.exists() {
                if !self.auto && !self.missing_said {
                    log::info!(target: "hostap", "hostapd control socket {} not there yet; looking again every second", self.path.display());
                    self.missing_said = true;
                }
                return;
            }
            match HostapdCtrl::new(&self.path, LOCAL_DIR) {
                Ok(c) => self.ctrl = Some(c),
                Err(e) => {
                    log::warn!(target: "hostap", "hostapd control interface {}: {e}", self.path.display());
                    return;
                }
            }
        }
        let Some(c) = self.ctrl.as_mut() else { return };
        let st = c.tick();
        self.note(st);
    }

    /// Read what hostapd sent; station events are appended to `out`.
    pub fn drain(&mut self, out: &mut Vec<StationEvent>) {
        let Some(c) = self.ctrl.as_mut() else { return };
        c.drain(|ev| out.push(ev));
        let st = c.state();
        self.note(st);
    }

    fn note(&mut self, st: LinkState) {
        if self.last == LinkState::Attached && st == LinkState::Down {
            log::warn!(target: "hostap", "lost hostapd at {}; re-attaching when it is back", self.path.display());
        }
        self.last = st;
    }
}

/// Act on one hostapd station event (`via` says where it came from, for
/// the log: `hostapd_ctrl` or `ubus hostapd.wlan0`).
pub fn apply(core: &mut CnCore, ev: &StationEvent, via: &str, mobile_if: &str, now: Instant) {
    let mac = MacAddr(ev.mac());
    match ev {
        StationEvent::Connected { .. } => {
            log::debug!(target: "handover", "{ev} on {mobile_if} ({via}): looking it up");
            core.station_associated(mac, now);
        }
        StationEvent::Disconnected { .. } => {
            // Not withdrawn: it may be roaming; the next CN's Move makes the
            // MLR withdraw it here, and if it does not come back anywhere
            // its binding expires.
            log::debug!(target: "handover", "{ev} on {mobile_if} ({via})");
        }
        StationEvent::WdsAdded { ifname, .. } => {
            log::info!(target: "hostap", "WDS link {ifname} for {mac}");
            core.station_associated(mac, now);
        }
        StationEvent::WdsRemoved { ifname, .. } => {
            log::info!(target: "hostap", "WDS link {ifname} for {mac} removed");
        }
    }
}
