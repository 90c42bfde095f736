//! The namespace test bed lives in the `tmip-testbed` crate (testbed/); this
//! shim keeps `mod common; use common::*;` working in the tests.
#![allow(unused_imports)]
pub use tmip_testbed::*;
