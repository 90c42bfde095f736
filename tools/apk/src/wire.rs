//! The ADB container's wire constants (apk-tools `doc/apk-v3.5.scd`,
//! `src/adb.h`) and the block framing both sides share.
//!
//! A file is `ADB.` + schema id (u32 LE) followed by blocks, or `ADBd` and
//! then all of that (the `ADB.` header included) as one raw deflate stream.
//! A block is a u32 LE `type << 30 | (4 + length)` header, the payload, and
//! zero padding to a multiple of 8 bytes. Payloads over 1 GiB use an
//! extended 16-byte header (type 3): u32 `3 << 30 | type`, u32 reserved,
//! u64 `16 + length`.

/// Uncompressed file magic.
pub const MAGIC_PLAIN: [u8; 4] = *b"ADB.";
/// Deflate-compressed file magic.
pub const MAGIC_DEFLATE: [u8; 4] = *b"ADBd";

/// `pckg`: one package (info, paths, scripts), then its file data.
pub const SCHEMA_PACKAGE: u32 = u32::from_le_bytes(*b"pckg");
/// `indx`: a repository index (`packages.adb`).
pub const SCHEMA_INDEX: u32 = u32::from_le_bytes(*b"indx");

/// Value tags: the high 4 bits of a 32-bit value.
pub const TYPE_MASK: u32 = 0xf000_0000;
pub const VALUE_MASK: u32 = 0x0fff_ffff;
pub const TYPE_SPECIAL: u32 = 0x0000_0000;
pub const TYPE_INT: u32 = 0x1000_0000;
pub const TYPE_INT32: u32 = 0x2000_0000;
pub const TYPE_INT64: u32 = 0x3000_0000;
pub const TYPE_BLOB8: u32 = 0x8000_0000;
pub const TYPE_BLOB16: u32 = 0x9000_0000;
pub const TYPE_BLOB32: u32 = 0xa000_0000;
pub const TYPE_ARRAY: u32 = 0xd000_0000;
pub const TYPE_OBJECT: u32 = 0xe000_0000;
/// The null value (special 0): an absent field.
pub const NULL: u32 = 0;

/// Block types.
pub const BLOCK_ADB: u32 = 0;
pub const BLOCK_SIG: u32 = 1;
pub const BLOCK_DATA: u32 = 2;
pub const BLOCK_EXT: u32 = 3;
pub const BLOCK_ALIGN: usize = 8;

/// The ADB block starts with this header: compat version, version,
/// reserved u16, root value.
pub const ADB_HEADER_LEN: usize = 8;

/// Signature block: sign_ver, hash_alg, 16-byte key id, DER signature.
pub const SIG_HEADER_LEN: usize = 18;
/// apk's digest ids (`apk_crypto.h`).
pub const DIGEST_SHA256: u8 = 3;
pub const DIGEST_SHA512: u8 = 4;
pub const DIGEST_SHA256_160: u8 = 5;

/// `struct adb_data_package`: 1-based index into `paths`, then into that
/// directory's `files`.
pub const DATA_HEADER_LEN: usize = 8;

pub fn round_up(n: usize, align: usize) -> usize {
    n.div_ceil(align) * align
}

/// Appends one block (header, payload parts, padding) to `out`.
pub fn put_block(out: &mut Vec<u8>, kind: u32, parts: &[&[u8]]) {
    let len: usize = parts.iter().map(|p| p.len()).sum();
    let raw = if len <= 0x3fff_ffff - 4 {
        out.extend_from_slice(&((kind << 30) | (4 + len as u32)).to_le_bytes());
        4 + len
    } else {
        out.extend_from_slice(&((BLOCK_EXT << 30) | kind).to_le_bytes());
        out.extend_from_slice(&0u32.to_le_bytes());
        out.extend_from_slice(&(16 + len as u64).to_le_bytes());
        16 + len
    };
    for p in parts {
        out.extend_from_slice(p);
    }
    out.resize(out.len() + round_up(raw, BLOCK_ALIGN) - raw, 0);
}
