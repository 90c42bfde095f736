//! The correspondent node: the sans-IO core (station and peer tables, the
//! reaction to DHCP lookups, MLR answers, redirects and withdrawals), the
//! data-plane interface it drives, and the daemon shell around them.

pub mod core;
pub mod dataplane;
pub mod dataplane_netlink;
pub mod iface;
pub mod stations;
pub mod status;
