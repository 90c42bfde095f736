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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cn::core::{CoreConfig, MlrCall, Output};
    use crate::cn::dataplane::CnAddr;
    use std::net::Ipv4Addr;
    use std::os::unix::net::UnixDatagram;

    fn core() -> CnCore {
        let mut c = CnCore::new(CoreConfig {
            me: CnAddr {
                ip: Ipv4Addr::new(10, 13, 0, 1),
                port: 5554,
            },
            reverse_tunnel: true,
            max_stations: 4,
            max_peers: 4,
            fallback_lease_secs: 600,
            new_station_rate: 0,
            shared_link: false,
        });
        c.mlr_bound(&[]);
        while c.poll_output().is_some() {}
        c
    }

    fn locates(c: &mut CnCore) -> Vec<MacAddr> {
        std::iter::from_fn(|| c.poll_output())
            .filter_map(|o| match o {
                Output::Mlr {
                    call: MlrCall::LocateMac { mac },
                    ..
                } => Some(mac),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn connected_and_wds_added_are_arrivals_disconnected_is_not() {
        let mut c = core();
        let now = Instant::now();
        let m = [2, 0, 0, 0, 0, 7];
        apply(
            &mut c,
            &StationEvent::Disconnected { mac: m },
            "t",
            "wlan0",
            now,
        );
        assert!(locates(&mut c).is_empty());
        let wds = StationEvent::WdsAdded {
            ifname: "wlan0.sta1".into(),
            mac: m,
        };
        apply(&mut c, &wds, "t", "wlan0", now);
        assert_eq!(locates(&mut c), vec![MacAddr(m)]);
        let m2 = [2, 0, 0, 0, 0, 8];
        let ev = StationEvent::Connected {
            mac: m2,
            vlan: None,
        };
        apply(&mut c, &ev, "t", "wlan0", now);
        assert_eq!(locates(&mut c), vec![MacAddr(m2)]);
    }

    /// The link against a datagram socket playing hostapd: found once the
    /// socket exists, ATTACH answered, an event delivered.
    #[test]
    fn the_link_attaches_when_the_socket_appears_and_delivers_events() {
        let dir = std::env::temp_dir().join(format!("tmip-se-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("wlan0");
        let rc = format!(
            "mlr m\ncn_if a\nmobile_if wlan0\nnetwork_name n\nhostapd_ctrl {}\n",
            path.display()
        );
        let cfg = TmipdConfig::parse("t.rc", &rc).unwrap();
        let mut link = HostapdLink::new(&cfg).unwrap();
        link.tick();
        assert_eq!(link.fd(), None, "no socket yet");
        let server = UnixDatagram::bind(&path).unwrap();
        server
            .set_read_timeout(Some(std::time::Duration::from_secs(2)))
            .unwrap();
        link.tick();
        assert!(link.fd().is_some());
        let mut buf = [0u8; 256];
        let (n, from) = server.recv_from(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"ATTACH");
        let client = from.as_pathname().unwrap().to_path_buf();
        server.send_to(b"OK\n", &client).unwrap();
        server
            .send_to(b"<3>AP-STA-CONNECTED 02:11:22:33:44:55", &client)
            .unwrap();
        let mut evs = Vec::new();
        link.drain(&mut evs);
        assert_eq!(link.state(), LinkState::Attached);
        assert_eq!(
            evs,
            vec![StationEvent::Connected {
                mac: [2, 0x11, 0x22, 0x33, 0x44, 0x55],
                vlan: None
            }]
        );
        assert!(link.summary().starts_with("attached to"));
        drop(link);
        let _ = std::fs::remove_dir_all(&dir);
        assert!(HostapdLink::new(
            &TmipdConfig::parse("t.rc", &rc.replace(&path.display().to_string(), "off")).unwrap()
        )
        .is_none());
    }
}
