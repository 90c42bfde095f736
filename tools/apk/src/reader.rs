//! Reading an ADB file: the header, the blocks and the values of the ADB
//! block, every offset and length checked against the data it points into.

use std::borrow::Cow;

use crate::error::{Error, Result};
use crate::wire::*;

/// How a file was stored.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Compression {
    None,
    Deflate,
}

/// The uncompressed bytes of an ADB file (starting `ADB.`). An `ADBd`
/// file is inflated, failing once it would exceed `limit` bytes.
pub fn uncompress(file: &[u8], limit: usize) -> Result<(Cow<'_, [u8]>, Compression)> {
    let magic: [u8; 4] = file
        .get(..4)
        .and_then(|m| m.try_into().ok())
        .ok_or(Error::Truncated("file header"))?;
    match magic {
        MAGIC_PLAIN => Ok((Cow::Borrowed(file), Compression::None)),
        MAGIC_DEFLATE => {
            let out = miniz_oxide::inflate::decompress_to_vec_with_limit(&file[4..], limit)
                .map_err(|e| Error::Compression(format!("{:?}", e.status)))?;
            Ok((Cow::Owned(out), Compression::Deflate))
        }
        m => Err(Error::BadMagic(m)),
    }
}

/// One block after the ADB block.
#[derive(Clone, Copy, Debug)]
pub enum Block<'a> {
    /// A signature over the ADB block (`sign_ver`, `hash_alg`, key id, DER).
    Sig(&'a [u8]),
    /// The contents of file `file` of directory `path` (both 1-based).
    Data {
        path: u32,
        file: u32,
        content: &'a [u8],
    },
}

/// A parsed (uncompressed) ADB file.
#[derive(Debug)]
pub struct Container<'a> {
    pub schema: u32,
    pub db: Db<'a>,
    pub blocks: Vec<Block<'a>>,
}

impl<'a> Container<'a> {
    /// Parses `bytes` (starting `ADB.`): the header, then exactly one ADB
    /// block, signature blocks, then data blocks, each padded to 8 bytes.
    pub fn parse(bytes: &'a [u8]) -> Result<Self> {
        if bytes.len() < 8 {
            return Err(Error::Truncated("file header"));
        }
        if bytes[..4] != MAGIC_PLAIN {
            let mut m = [0; 4];
            m.copy_from_slice(&bytes[..4]);
            return Err(Error::BadMagic(m));
        }
        let schema = u32::from_le_bytes([bytes[4], bytes[5], bytes[6], bytes[7]]);
        let mut pos = 8;
        let mut adb: Option<Db<'a>> = None;
        let mut blocks = Vec::new();
        let mut seen_data = false;
        while pos < bytes.len() {
            let (kind, payload, next) = next_block(bytes, pos)?;
            match kind {
                BLOCK_ADB if adb.is_none() => {
                    if payload.len() < ADB_HEADER_LEN {
                        return Err(Error::Block("ADB block shorter than its header".into()));
                    }
                    if payload[0] != 0 {
                        return Err(Error::Block(format!(
                            "ADB compat version {} (only 0 is known)",
                            payload[0]
                        )));
                    }
                    adb = Some(Db { buf: payload });
                }
                BLOCK_SIG if adb.is_some() && !seen_data => blocks.push(Block::Sig(payload)),
                BLOCK_DATA if adb.is_some() => {
                    seen_data = true;
                    if payload.len() < DATA_HEADER_LEN {
                        return Err(Error::Truncated("data block header"));
                    }
                    blocks.push(Block::Data {
                        path: le32(payload, 0),
                        file: le32(payload, 4),
                        content: &payload[DATA_HEADER_LEN..],
                    });
                }
                k => {
                    return Err(Error::Block(format!(
                        "block type {k} at {pos:#x} not allowed here"
                    )))
                }
            }
            pos = next;
        }
        let db = adb.ok_or(Error::Block("no ADB block".into()))?;
        Ok(Container { schema, db, blocks })
    }

    pub fn expect_schema(&self, schema: u32) -> Result<()> {
        if self.schema == schema {
            Ok(())
        } else {
            Err(Error::Schema {
                expected: Some(schema),
                found: self.schema,
            })
        }
    }
}

/// (type, payload, offset of the next block) of the block at `pos`.
fn next_block(bytes: &[u8], pos: usize) -> Result<(u32, &[u8], usize)> {
    let left = &bytes[pos..];
    if left.len() < 4 {
        return Err(Error::Truncated("block header"));
    }
    let word = le32(left, 0);
    let (kind, hdr, raw) = if word >> 30 == BLOCK_EXT {
        if left.len() < 16 {
            return Err(Error::Truncated("extended block header"));
        }
        let size = u64::from_le_bytes(left[8..16].try_into().unwrap_or_default());
        (word & 0x3fff_ffff, 16usize, size)
    } else {
        (word >> 30, 4usize, u64::from(word & 0x3fff_ffff))
    };
    if raw < hdr as u64 {
        return Err(Error::Block(format!("block size {raw} at {pos:#x}")));
    }
    let padded = raw
        .checked_add(BLOCK_ALIGN as u64 - 1)
        .map(|n| n / BLOCK_ALIGN as u64 * BLOCK_ALIGN as u64)
        .filter(|&n| n <= left.len() as u64)
        .ok_or(Error::Truncated("block"))?;
    Ok((kind, &left[hdr..raw as usize], pos + padded as usize))
}

fn le32(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// The ADB block: values are looked up in it by offset.
#[derive(Clone, Copy, Debug)]
pub struct Db<'a> {
    pub buf: &'a [u8],
}

/// An object or array: `len()` slots, slot 0 being the count.
#[derive(Clone, Copy, Debug)]
pub struct Obj<'a> {
    slots: &'a [u8],
}

impl<'a> Obj<'a> {
    /// Number of slots including the count slot (at least 1).
    pub fn len(&self) -> u32 {
        (self.slots.len() / 4) as u32
    }

    pub fn is_empty(&self) -> bool {
        self.len() <= 1
    }

    /// Slot `i`; null beyond the end.
    pub fn get(&self, i: u32) -> u32 {
        if i < self.len() {
            le32(self.slots, i as usize * 4)
        } else {
            NULL
        }
    }

    /// The array items (slots 1..).
    pub fn items(&self) -> impl Iterator<Item = u32> + '_ {
        (1..self.len()).map(|i| self.get(i))
    }
}

impl<'a> Db<'a> {
    pub fn compat_version(&self) -> u8 {
        self.buf[0]
    }

    pub fn version(&self) -> u8 {
        self.buf[1]
    }

    pub fn root(&self) -> u32 {
        le32(self.buf, 4)
    }

    fn slice(&self, what: &'static str, off: u32, at: usize, len: usize) -> Result<&'a [u8]> {
        let start = (off & VALUE_MASK) as usize + at;
        self.buf
            .get(start..start.saturating_add(len))
            .filter(|s| s.len() == len)
            .ok_or(Error::Offset {
                what,
                offset: start as u64,
            })
    }

    pub fn int(&self, what: &'static str, v: u32) -> Result<u64> {
        match v & TYPE_MASK {
            TYPE_INT => Ok(u64::from(v & VALUE_MASK)),
            TYPE_INT32 => Ok(u64::from(le32(self.slice(what, v, 0, 4)?, 0))),
            TYPE_INT64 => {
                let b = self.slice(what, v, 0, 8)?;
                Ok(u64::from_le_bytes(b.try_into().unwrap_or_default()))
            }
            _ => Err(Error::Type { what, tag: v }),
        }
    }

    /// The contents of a blob (without its length prefix).
    pub fn blob(&self, what: &'static str, v: u32) -> Result<&'a [u8]> {
        let (lenlen, len) = match v & TYPE_MASK {
            TYPE_BLOB8 => (1, usize::from(self.slice(what, v, 0, 1)?[0])),
            TYPE_BLOB16 => {
                let b = self.slice(what, v, 0, 2)?;
                (2, usize::from(u16::from_le_bytes([b[0], b[1]])))
            }
            TYPE_BLOB32 => (4, le32(self.slice(what, v, 0, 4)?, 0) as usize),
            _ => return Err(Error::Type { what, tag: v }),
        };
        self.slice(what, v, lenlen, len)
    }

    /// The blob's bytes with their length prefix and the prefix size (for
    /// copying the value into another ADB).
    pub fn blob_raw(&self, what: &'static str, v: u32) -> Result<(&'a [u8], usize)> {
        let data = self.blob(what, v)?;
        let lenlen = match v & TYPE_MASK {
            TYPE_BLOB8 => 1,
            TYPE_BLOB16 => 2,
            _ => 4,
        };
        Ok((self.slice(what, v, 0, lenlen + data.len())?, lenlen))
    }

    pub fn obj(&self, what: &'static str, v: u32) -> Result<Obj<'a>> {
        match v & TYPE_MASK {
            TYPE_OBJECT | TYPE_ARRAY => {}
            _ => return Err(Error::Type { what, tag: v }),
        }
        let n = le32(self.slice(what, v, 0, 4)?, 0);
        if n == 0 {
            return Err(Error::Type { what, tag: v });
        }
        let len = (n as usize).checked_mul(4).ok_or(Error::Offset {
            what,
            offset: u64::from(n),
        })?;
        Ok(Obj {
            slots: self.slice(what, v, 0, len)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rejects_short_and_foreign_input() {
        assert!(matches!(
            uncompress(b"AD", 1 << 20),
            Err(Error::Truncated(_))
        ));
        assert!(matches!(
            uncompress(b"PK\x03\x04", 1 << 20),
            Err(Error::BadMagic(_))
        ));
        assert!(Container::parse(b"ADB.pckg").is_err());
        // block claims more than the file has
        assert!(Container::parse(b"ADB.pckg\x40\x00\x00\x00").is_err());
        // a data block before any ADB block
        assert!(Container::parse(b"ADB.pckg\x0c\x00\x00\x80\0\0\0\0\0\0\0\0").is_err());
    }

    #[test]
    fn values_out_of_range_are_errors() {
        let buf = [0u8, 0, 0, 0, 8, 0, 0, 0xe0, 0xff, 0, 0, 0];
        let db = Db { buf: &buf };
        // object at 8 claims 255 slots
        assert!(db.obj("root", db.root()).is_err());
        assert!(db.blob("x", TYPE_BLOB8 | 12).is_err());
        assert_eq!(db.blob("x", TYPE_BLOB8 | 11).unwrap(), b"");
        assert!(db.blob("x", TYPE_BLOB32 | 8).is_err());
        assert!(db.int("x", TYPE_INT64 | 8).is_err());
        assert!(db.int("x", TYPE_BLOB8 | 8).is_err());
        assert!(db.blob("x", TYPE_BLOB8 | 0x0fff_ffff).is_err());
    }
}
