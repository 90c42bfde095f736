//! TMip core library: everything a TMip daemon needs that is not the daemon's
//! own event loop. Protocol cores are sans-IO (they take events and time and
//! return actions); wire formats are checked views in the smoltcp style.
//!
//! See `docs/ARCHITECTURE.md` for the map of modules and how data flows.

pub mod addr;
pub mod config;
pub mod dhcp;
pub mod event_loop;
pub mod log_throttle;
pub mod logging;
pub mod mlrp;
pub mod netlink;
pub mod packet_socket;
pub mod process_setup;
pub mod sys;
pub mod tunnel;
pub mod ubus;
pub mod wire;

#[cfg(feature = "capture")]
pub mod capture;

pub mod classify;
pub mod cn;

/// Version string shown in banners (`+ Starting MLR Server [v0.1.0]`).
pub const VERSION: &str = concat!("v", env!("CARGO_PKG_VERSION"));

/// Default MLRP ports, as in TMip 0.14a.
pub const MLR_PORT: u16 = 6554;
pub const CN_PORT: u16 = 5554;
