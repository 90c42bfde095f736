//! The one namespace test bed of the workspace: network namespaces, veth
//! pairs, bridges, the daemons (mlrd, tmipd) with the `.rc` files it writes,
//! DHCP clients and the traffic tools, all removed when their guards drop.
//!
//! Used by the root crate's end-to-end tests (`tests/`, through the
//! `tests/common/` shims), by mlrd's process tests (`mlrd/tests/`) and by
//! the lab examples (`examples/roaming_demo.rs`, `examples/tmipd_bench.rs`).
//! A dev-dependency only: nothing here ships.
//!
//! - [`ns`]: namespaces and shell helpers (re-exported at the root);
//! - [`RunDir`]: a test's directory for rc files, logs and scripts;
//! - [`Proc`], [`Spawn`]: a process started in a namespace, killed by its
//!   pid on drop; the one launcher of mlrd and tmipd;
//! - [`Rc`], [`mlrd_rc`]: the one writer of rc files;
//! - [`bed`]: the mobility bed ([`TestBed`]): MLR, CNs, cells, `srv` and
//!   clients (MS), one address plan;
//! - [`failover`]: the register pair: silent cuts, bind watches;
//! - [`status`]: the daemons' status JSON, parsed ([`status::Json`]);
//! - [`traffic`]: TCP stream and probe checks that measure interruptions;
//! - [`wired8021x`]: hostapd and wpa_supplicant over a wired link (802.1X).
//!
//! Rules every namespace test follows: it needs root and fails (never skips)
//! without it; names are unique per process so tests run in parallel; a
//! process is ended by the pid the test started, never by name; traffic goes
//! only to namespaces the test made.

pub mod bed;
pub mod dir;
pub mod failover;
pub mod ns;
pub mod process;
pub mod rc;
pub mod status;
pub mod traffic;
pub mod wired8021x;

pub use bed::{CnShape, Options, Routing, TestBed};
pub use dir::{read, RunDir};
pub use ns::*;
pub use process::{spawn_in, Proc, Spawn};
pub use rc::{mlrd_rc, Rc};
