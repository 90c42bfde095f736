//! apk v3 packages for OpenWrt 25.12 and later, written and read without
//! apk-tools: the ADB container (apk-tools `doc/apk-v3.5.scd`), the `pckg`
//! and `indx` schemas (`doc/apk-package.5.scd`, `src/apk_adb.c`), ECDSA
//! P-256 index signatures, and a dump in `apk adbdump`'s text shape.
//!
//! A build-time tool for `scripts/build-packages`; nothing here runs on the
//! router.

pub mod dump;
pub mod error;
pub mod index;
pub mod package;
pub mod reader;
pub mod schema;
pub mod sign;
pub mod version;
pub mod wire;
pub mod writer;

pub use error::{Error, Result};

/// The most an `ADBd` file may inflate to (the largest TMip package is
/// about 1 MiB uncompressed).
pub const INFLATE_LIMIT: usize = 256 << 20;

/// Reads a file's bytes as text dump input: inflates, parses, dumps.
pub fn dump_file(bytes: &[u8], keys: &[p256::PublicKey]) -> Result<Vec<u8>> {
    let (plain, _) = reader::uncompress(bytes, INFLATE_LIMIT)?;
    let c = reader::Container::parse(&plain)?;
    dump::dump(&c, keys)
}
