//! Configured MLR host names (tmipd's `mlr_host`, `mlr_backup`; mlrd's
//! peer) to addresses.

use std::net::{SocketAddr, SocketAddrV4, ToSocketAddrs};

/// Resolve `host:port` to the first IPv4 address.
pub fn resolve(host: &str, port: u16) -> Result<SocketAddrV4, String> {
    let addrs = (host, port)
        .to_socket_addrs()
        .map_err(|e| format!("cannot resolve MLR '{host}': {e}"))?;
    addrs
        .filter_map(|a| match a {
            SocketAddr::V4(v) => Some(v),
            SocketAddr::V6(_) => None,
        })
        .next()
        .ok_or_else(|| format!("MLR '{host}' has no IPv4 address"))
}
