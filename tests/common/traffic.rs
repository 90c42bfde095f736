//! Shim: the traffic tools are `tmip_testbed::traffic`
//! (testbed/src/traffic.rs); `#[path = "common/traffic.rs"] mod traffic;`
//! keeps working.
#![allow(unused_imports)]
pub use tmip_testbed::traffic::*;
