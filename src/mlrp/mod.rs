//! MLRP, the Mobile Location Register Protocol: length-prefixed, versioned,
//! HMAC-authenticated binary frames over TCP. The normative spec is
//! `docs/MLRP.md`; this module is its reference implementation.
//!
//! What lives where:
//!
//! | file | owns |
//! |---|---|
//! | `admission.rs` | which connections get a slot before they authenticate ([`PreAuth`]): per-source cap, eviction of the oldest unauthenticated |
//! | `codec.rs` | the field encodings bodies are built from (bounds-checked `Reader`/`Writer`, [`CnRef`], [`Pool`]) and the wire's error type ([`WireError`]) |
//! | `frame.rs` | the frame header as a checked view ([`Frame`]), flags, limits; knows no message |
//! | `message.rs` | every message, declared once in one table (type code, kind, name, body type); each body's layout as a [`Body`] (`read` / `write` / `buffer_len` / `validate` / log line); the [`Message`] enum and its dispatch generated from the table |
//! | `auth.rs` | key derivation ([`NetworkKey`], per-direction session keys), HMAC-SHA256 tags, nonces from `getrandom(2)` |
//! | `session.rs` | the sans-IO per-connection codec ([`Session`]): handshake, sequence and replay checks, request/reply matching |
//! | `conn.rs` | the non-blocking connection both daemons poll ([`Conn`]): stream, write queue, reads handed to a session |
//! | `client.rs` | a small blocking client over `std::net::TcpStream` ([`Client`]) for `tmipd -E`, tests and benchmarks |
//!
//! # Using a session (sans-IO)
//!
//! ```no_run
//! use tmip::mlrp::{Session, Role, Incoming, Message, random_nonce};
//! # fn io() -> Result<(), Box<dyn std::error::Error>> {
//! let mut s = Session::new(Role::Mlr, None, random_nonce()?);
//! let mut out = Vec::new();
//! s.handshake(&mut out);               // send `out` to the peer first
//! # let bytes_from_socket: &[u8] = &[];
//! s.feed(bytes_from_socket);            // whatever read(2) returned, any split
//! while let Some(ev) = s.poll(&mut out) {  // `poll` may append bytes to send
//!     match ev {
//!         Ok(Incoming::Established { peer }) => { /* handshake done */ }
//!         Ok(Incoming::Request { id, msg }) => { s.reply(id, &Message::Ack, &mut out)?; }
//!         Ok(Incoming::Reply { id, msg }) => { /* match `id` to what we asked */ }
//!         Err(e) if e.is_fatal() => { /* send `out`, then close the socket */ break; }
//!         Err(e) => { /* logged, connection stays up */ }
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! The session never blocks, never allocates per frame beyond growing the
//! caller's output buffer (and the `String`/`Vec` fields of the few messages
//! that carry names), and never panics on input.

pub mod admission;
pub mod auth;
pub mod client;
pub mod codec;
pub mod conn;
pub mod frame;
pub mod message;
pub mod session;

pub use admission::{admit_among, Admit, PreAuth, Ticket};
pub use auth::{random_nonce, NetworkKey, Nonce, NONCE_LEN};
pub use client::{Client, ClientError};
pub use conn::{Conn, Recv};
pub use frame::{Frame, HEADER_LEN, MAC_LEN, MAX_FRAME_LEN, VERSION};
pub use message::{
    Allocate, BindReply, Binding, Body, CnBind, CnEntry, CnList, CnRef, Commit, ErrorCode,
    ErrorReply, Hello, Kind, Locate, Message, MessageType, Move, Pool, Redirect, RegisterRole,
    RegisterStatusReply, Release, ReplRecords, ReplSnapshot, ReplSubscribe, ReplicationState, Role,
    StatusReply, WireError, Withdraw, MAX_HELLO_FRAME_LEN,
};
pub use session::{Incoming, MlrpError, RequestId, Session};
