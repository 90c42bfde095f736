//! Shim: the mobility test bed is `tmip_testbed::bed` (testbed/src/bed.rs);
//! `mod common; #[path = "common/testbed.rs"] mod testbed;` keeps working.
#![allow(unused_imports)]
pub use tmip_testbed::bed::*;
