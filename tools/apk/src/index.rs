//! Writing a repository index (`apk mkndx`): each package's info object
//! copied value by value into the index, its file-size and `hashes` (the
//! SHA-256 of the package's ADB block, which apk checks the downloaded
//! package against) set, the packages sorted by name, then a signature
//! block by the feed key.

use p256::SecretKey;
use sha2::{Digest, Sha256};

use crate::error::{Error, Result};
use crate::reader::{uncompress, Container, Db};
use crate::schema::{self, pkginfo};
use crate::sign;
use crate::wire::*;
use crate::writer::AdbWriter;

/// Deepest nesting copied (an info object holds dependency arrays of
/// dependency objects); guards against cyclic references in a bad file.
const MAX_DEPTH: u32 = 8;

/// Copies value `v` of `src` into `w` as it is (apk's `adb_w_copy`).
fn copy(w: &mut AdbWriter, src: &Db, v: u32, depth: u32) -> Result<u32> {
    let what = "copied value";
    match v & TYPE_MASK {
        TYPE_SPECIAL | TYPE_INT => Ok(v),
        TYPE_INT32 => {
            let n = src.int(what, v)? as u32;
            Ok(w.copy_bytes(TYPE_INT32, &n.to_le_bytes(), 4))
        }
        TYPE_INT64 => {
            let n = src.int(what, v)?;
            Ok(w.copy_bytes(TYPE_INT64, &n.to_le_bytes(), 8))
        }
        TYPE_BLOB8 | TYPE_BLOB16 | TYPE_BLOB32 => {
            let (raw, align) = src.blob_raw(what, v)?;
            Ok(w.copy_bytes(v & TYPE_MASK, raw, align))
        }
        TYPE_OBJECT | TYPE_ARRAY => {
            if depth >= MAX_DEPTH {
                return Err(Error::TooLarge("nesting of copied objects"));
            }
            let o = src.obj(what, v)?;
            let mut bytes = o.len().to_le_bytes().to_vec();
            for item in o.items() {
                bytes.extend_from_slice(&copy(w, src, item, depth + 1)?.to_le_bytes());
            }
            Ok(w.copy_bytes(v & TYPE_MASK, &bytes, 4))
        }
        _ => Err(Error::Type { what, tag: v }),
    }
}

/// One package file for the index.
pub struct IndexEntry<'a> {
    /// The `.apk` as stored (compressed or not).
    pub file: &'a [u8],
}

/// The index over `packages` as an uncompressed ADB file, signed by `key`
/// when one is given.
pub fn build(
    packages: &[IndexEntry],
    key: Option<&SecretKey>,
    description: Option<&str>,
) -> Result<Vec<u8>> {
    let mut w = AdbWriter::new();
    let mut items: Vec<(Vec<u8>, Vec<u8>, u32)> = Vec::new();
    for p in packages {
        let (plain, _) = uncompress(p.file, crate::INFLATE_LIMIT)?;
        let c = Container::parse(&plain)?;
        c.expect_schema(SCHEMA_PACKAGE)?;
        let root = c.db.obj("package", c.db.root())?;
        let info = c.db.obj("info", root.get(schema::package::INFO))?;
        if info.len() > pkginfo::MAX + 1 {
            return Err(Error::Input(
                "package info has more fields than apk knows".into(),
            ));
        }
        let mut slots = vec![NULL; pkginfo::MAX as usize];
        for i in 1..info.len() {
            slots[i as usize - 1] = copy(&mut w, &c.db, info.get(i), 1)?;
        }
        slots[pkginfo::FILE_SIZE as usize - 1] = w.int(p.file.len() as u64);
        slots[pkginfo::HASHES as usize - 1] = w.blob(&Sha256::digest(c.db.buf));
        let name = c.db.blob("name", info.get(pkginfo::NAME))?.to_vec();
        let ver = c.db.blob("version", info.get(pkginfo::VERSION))?.to_vec();
        items.push((name, ver, w.obj(&slots)));
    }
    items.sort();
    let desc = w.blob(description.unwrap_or_default().as_bytes());
    let vals: Vec<u32> = items.iter().map(|(_, _, v)| *v).collect();
    let pkgs = w.obj(&vals);
    let root = w.obj(&[desc, pkgs]);
    w.set_root(root);
    let adb = w.finish();

    let mut out = Vec::new();
    out.extend_from_slice(&MAGIC_PLAIN);
    out.extend_from_slice(&SCHEMA_INDEX.to_le_bytes());
    put_block(&mut out, BLOCK_ADB, &[&adb]);
    if let Some(k) = key {
        put_block(&mut out, BLOCK_SIG, &[&sign::sign(k, SCHEMA_INDEX, &adb)?]);
    }
    Ok(out)
}
