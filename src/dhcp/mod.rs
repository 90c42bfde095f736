//! DHCPv4 (RFC 2131/2132): the wire format and the sans-IO server that hands
//! every station its /30 from the MLR.

pub mod server;
pub mod socket;
pub mod wire;

pub use server::{Action, DhcpConfig, DhcpServer, Lease, LookupError, LookupKind, Reply};
