//! ubus over its unix socket, as a transport: blob/blobmsg codec, client
//! calls, object registration, subscriptions (raw notifications) and
//! events. What tmipd publishes and how it reads hostapd is
//! `cn::ubus_object`'s.
//!
//! - [`blob`]: libubox blob_attr/blobmsg codec and the [`Value`] tree.
//! - [`msg`]: `ubus_msghdr`, message types, attribute ids, framing.
//! - [`client`]: the non-blocking client for the daemon's poll loop.
//!
//! Wiring into tmipd's poll loop (sketch):
//!
//! ```text
//! let mut bus = UbusClient::new(client::DEFAULT_SOCKET);
//! bus.add_object(ubus_object::object_spec("tmip")); // status, clients {mac}, cns
//! bus.subscribe(&format!("hostapd.{mobile_if}"));
//! timer every 1 s:  bus.tick(now); re-register bus.fd() if it changed
//!                   (POLLOUT too while bus.wants_write())
//! fd readable:      bus.on_readable();   fd writable: bus.on_writable();
//! then:             while let Some(ev) = bus.poll_event() { match ev {
//!     UbusEvent::Call(c)              => bus.reply(&c, status::OK, Some(&value))?,
//!     UbusEvent::Notify { path, method, args } => hostapd.station_events(..),
//!     _ => log it } }
//! ```
//!
//! There is no ubusd on the development machine: the tests check the
//! encoding against byte strings derived by hand from the format, and run
//! the client against a protocol peer written from ubusd's documented
//! behaviour (tests in `client.rs`), not against the real ubusd.

pub mod blob;
pub mod client;
pub mod msg;

pub use blob::{BlobError, Value};
pub use client::{ObjectSpec, UbusClient, UbusError, UbusEvent};
