//! DHCPv4 (RFC 2131/2132): the wire format and the sans-IO server that hands
//! every station its /30 from the MLR.
//!
//! - [`wire`]: the message view and `Repr` (options 1, 3, 6, 12, 15, 50–59,
//!   61, 121, 249).
//! - [`server`]: [`DhcpServer`], the state machine. It takes frames and the
//!   MLR's answers and returns [`Action`]s; it never does I/O.
//! - [`socket`]: [`socket::DhcpSocket`], the AF_PACKET socket (BPF: IPv4/UDP
//!   to port 67) that feeds it and sends its replies (and ARP frames).
//!
//! # Embedding in a daemon's poll loop
//!
//! ```no_run
//! use std::os::fd::AsRawFd;
//! use std::time::Instant;
//! use tmip::dhcp::{socket::DhcpSocket, Action, DhcpConfig, DhcpServer, Lease, LookupKind};
//!
//! let sock = DhcpSocket::open("wlan0")?;
//! let mut server = DhcpServer::new(DhcpConfig::default(), sock.mac());
//! // poller.register(sock.as_raw_fd(), TOKEN_DHCP, false);
//! let mut buf = [0u8; tmip::dhcp::socket::FRAME_BUF];
//! // On TOKEN_DHCP readable: drain the socket.
//! while let Some(n) = sock.recv(&mut buf)? {
//!     // Err = dropped, already logged on target `dhcp`.
//!     let Ok(Some(action)) = server.handle_frame(&buf[..n], Instant::now()) else { continue };
//!     match action {
//!         Action::Lookup { mac, kind, requested_ip, hostname, relayed } => {
//!             // Send MLRP Offer{mac} (kind == Allocate: DISCOVER) or
//!             // Commit{mac, cell of requested_ip} (Locate: REQUEST); never
//!             // move a station bound elsewhere when `relayed`. Later, when
//!             // the reply comes back (after a Commit, the station adopted:
//!             // N+2 on mobile_if, host route to N+1, ARP):
//!             // (the MLR's Binding: its cell and lease_remaining_secs)
//!             let cell = tmip::addr::Cell30::containing([10, 13, 102, 5].into());
//!             let answer = Ok(Lease { cell, lease_secs: 3600 });
//!             // or Err(LookupError::NotFound) / Err(LookupError::Unavailable(reason))
//!             if let Ok(Action::Send(reply)) = server.binding_ready(mac, answer, Instant::now()) {
//!                 sock.send(&reply.frame)?;
//!             }
//!         }
//!         Action::Send(reply) => sock.send(&reply.frame)?, // INFORM answered at once
//!         Action::Release { mac, cell } => { /* MLRP Release{mac}; drop local state */ }
//!         Action::Decline { mac, ip } => { /* log; the address is in use on the link */ }
//!     }
//! }
//! # Ok::<(), std::io::Error>(())
//! ```
//!
//! Contract for the daemon:
//! - Every `Lookup` should be answered with `binding_ready` (an unanswered
//!   one is forgotten after [`server::PENDING_TTL`]); `binding_ready` for a
//!   MAC with nothing pending returns `Err(NoPending)` and sends nothing.
//! - `LookupError::NotFound` makes a REQUEST NAKed (the client restarts with
//!   DISCOVER -> Offer); `Unavailable` keeps the server silent.
//! - `Lease::lease_secs` is what the MLR's binding has left; the server caps
//!   it with `DhcpConfig::lease_time`. 0 counts as NotFound.
//! - Renewals are unicast to N+2: the CN must own N+2 on the mobile
//!   interface for the station's cell (it does once it adopted it), or the
//!   station's ARP for N+2 gets no answer.
//! - The server uses `MacAddr` of `chaddr` as the station's identity, and
//!   drops (counts, logs once per interval) a message whose `chaddr` is not
//!   its Ethernet source unless it came through a relay.
//! - For gateway takeover on adoption send `wire::arp::frame(cn_mac,
//!   station_mac, &wire::arp::Repr::gratuitous_reply(cn_mac, cell.gateway()))`
//!   through `DhcpSocket::send` (tests/arp_gateway_takeover.rs shows it
//!   overrides a fresh neighbour entry at once, unlike a plain reply).

pub mod server;
pub mod socket;
pub mod wire;

pub use server::{Action, DhcpConfig, DhcpServer, Lease, LookupError, LookupKind, Reply};
