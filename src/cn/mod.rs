//! The correspondent node: the sans-IO core (station and peer tables, the
//! reaction to DHCP lookups, MLR answers, redirects and withdrawals), the
//! data-plane interface it drives, and the daemon shell around them.

mod admission;
pub mod console;
pub mod core;
pub mod dataplane;
pub mod dataplane_guard;
pub mod dataplane_netlink;
pub mod dataplane_tunnel;
pub mod dhcp_io;
pub mod evaluate;
pub mod events;
pub mod iface;
pub mod ipv6_check;
pub mod link_mode;
pub mod mlr_io;
pub mod mlr_link;
pub mod peer_conn;
pub mod peer_listener;
pub mod poll_loop;
pub mod pushed;
pub mod reload;
pub mod source_guard;
pub mod startup;
pub mod station_events;
pub mod stations;
pub mod status;
pub mod translate;
pub mod ubus_object;
