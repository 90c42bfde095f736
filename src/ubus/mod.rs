//! ubus over its unix socket: blob/blobmsg codec, client calls, object
//! registration (the `tmip` status object) and subscriptions.
//!
//! - [`blob`]: libubox blob_attr/blobmsg codec and the [`Value`] tree.
//! - [`msg`]: `ubus_msghdr`, message types, attribute ids, framing.
//! - [`client`]: the non-blocking client for the daemon's poll loop.
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
