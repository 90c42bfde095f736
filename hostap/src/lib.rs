//! hostapd integration: station events from hostapd's control interface
//! (`AP-STA-CONNECTED`, `WDS-STA-INTERFACE-ADDED`, ...) and from its ubus
//! notifications, turned into one [`StationEvent`] type for tmipd.
//!
//! - [`event`]: the control-interface event line parser and [`StationEvent`].
//! - [`ubus_events`]: hostapd ubus notifications (`assoc`, `sta-authorized`,
//!   `disassoc`, ...) mapped onto the same events; it takes plain
//!   `(key, value)` string pairs so this crate needs no blob codec (the ubus
//!   client lives in the core crate, `tmip::ubus`).
//! - [`ctrl`]: the non-blocking control-interface client (`ATTACH`, `PING`,
//!   re-attach after a hostapd restart) for the daemon's poll loop.
//!
//! Wiring into tmipd's poll loop (sketch):
//!
//! ```text
//! let mut hapd = HostapdCtrl::new(format!("/var/run/hostapd/{mobile_if}"), "/tmp")?;
//! poller.register(hapd.fd(), TOKEN_HOSTAPD, false);   // the fd never changes
//! timer every 2 s:  hapd.tick();   // attach / PING / re-attach + resync
//! fd readable:      hapd.drain(|ev| cn.station_event(ev, now));
//! ```
//!
//! `StationEvent::Connected` may repeat for a station (resync after every
//! attach, `assoc` then `sta-authorized` on ubus): treat it idempotently.
//!
//! This crate must not depend on the `tmip` core crate: the core depends on it.

pub mod ctrl;
pub mod event;
pub mod ubus_events;

pub use ctrl::{CtrlError, HostapdCtrl, LinkState};
pub use event::{
    format_mac, parse_event, parse_event_bytes, parse_mac, EventError, Mac, StationEvent,
};
pub use ubus_events::{from_ubus_notification, UbusEventError};
