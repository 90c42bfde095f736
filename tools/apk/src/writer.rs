//! Building an ADB block the way apk-tools lays it out, so that what we
//! write is byte for byte what `apk mkpkg` writes for the same input.
//!
//! Values are appended in the order they are written. Blobs are 1/2/4-byte
//! length prefixed (by size) and byte aligned to their prefix; ints below
//! 2^28 live in the tag itself, larger ones are 4-byte aligned u32/u64;
//! objects and arrays are 4-byte aligned slot lists whose first slot is the
//! slot count, trailing null slots trimmed (an all-null object is null).
//! Identical bytes written twice are stored once: a later write of the same
//! bytes returns the earlier offset when that offset suits its alignment
//! (else the bytes are written again and the new copy is remembered).

use std::collections::HashMap;

use crate::wire::*;

pub struct AdbWriter {
    buf: Vec<u8>,
    seen: HashMap<Vec<u8>, u32>,
}

impl Default for AdbWriter {
    fn default() -> Self {
        Self::new()
    }
}

impl AdbWriter {
    /// An ADB block with its header (compat 0, version 0, root null).
    pub fn new() -> Self {
        AdbWriter {
            buf: vec![0; ADB_HEADER_LEN],
            seen: HashMap::new(),
        }
    }

    fn raw(&mut self, parts: &[&[u8]], align: usize) -> u32 {
        let start = round_up(self.buf.len(), align);
        self.buf.resize(start, 0);
        for p in parts {
            self.buf.extend_from_slice(p);
        }
        start as u32
    }

    fn data(&mut self, parts: &[&[u8]], align: usize) -> u32 {
        let key = parts.concat();
        if let Some(&off) = self.seen.get(&key) {
            if off as usize % align == 0 {
                return off;
            }
        }
        let off = self.raw(parts, align);
        self.seen.insert(key, off);
        off
    }

    fn blob_with(&mut self, b: &[u8], dedup: bool) -> u32 {
        let (len8, len16, len32);
        let (tag, prefix): (u32, &[u8]) = match b.len() {
            0 => return NULL,
            1..=0xff => {
                len8 = [b.len() as u8];
                (TYPE_BLOB8, &len8)
            }
            0x100..=0xffff => {
                len16 = (b.len() as u16).to_le_bytes();
                (TYPE_BLOB16, &len16)
            }
            _ => {
                len32 = (b.len() as u32).to_le_bytes();
                (TYPE_BLOB32, &len32)
            }
        };
        let align = prefix.len();
        let off = if dedup {
            self.data(&[prefix, b], align)
        } else {
            self.raw(&[prefix, b], align)
        };
        tag | off
    }

    /// A blob (null when empty), stored once per distinct content.
    pub fn blob(&mut self, b: &[u8]) -> u32 {
        self.blob_with(b, true)
    }

    /// A blob written unconditionally, never shared: for contents patched
    /// afterwards ([`AdbWriter::patch_blob`]).
    pub fn blob_raw(&mut self, b: &[u8]) -> u32 {
        self.blob_with(b, false)
    }

    pub fn int(&mut self, v: u64) -> u32 {
        if v >= 1 << 32 {
            TYPE_INT64 | self.data(&[&v.to_le_bytes()], 4)
        } else if v >= 1 << 28 {
            TYPE_INT32 | self.data(&[&(v as u32).to_le_bytes()], 4)
        } else {
            TYPE_INT | v as u32
        }
    }

    /// An object (or array) from its slots, slot 1 first. apk tags arrays it
    /// builds as objects too; `tag` says which to use.
    pub fn slots(&mut self, tag: u32, slots: &[u32]) -> u32 {
        let n = slots.iter().rposition(|&v| v != NULL).map_or(0, |i| i + 1);
        if n == 0 {
            return NULL;
        }
        let mut bytes = Vec::with_capacity(4 * (n + 1));
        bytes.extend_from_slice(&(n as u32 + 1).to_le_bytes());
        for v in &slots[..n] {
            bytes.extend_from_slice(&v.to_le_bytes());
        }
        tag | self.data(&[&bytes], 4)
    }

    pub fn obj(&mut self, slots: &[u32]) -> u32 {
        self.slots(TYPE_OBJECT, slots)
    }

    /// Raw bytes stored once per content with the given alignment (copying
    /// a value from another ADB as it is).
    pub fn copy_bytes(&mut self, tag: u32, bytes: &[u8], align: usize) -> u32 {
        tag | self.data(&[bytes], align)
    }

    pub fn set_root(&mut self, v: u32) {
        self.buf[4..8].copy_from_slice(&v.to_le_bytes());
    }

    /// Overwrites the contents of a blob written with [`AdbWriter::blob_raw`].
    pub fn patch_blob(&mut self, v: u32, contents: &[u8]) {
        let start = (v & VALUE_MASK) as usize + 1;
        self.buf[start..start + contents.len()].copy_from_slice(contents);
    }

    /// The ADB block payload so far.
    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn finish(self) -> Vec<u8> {
        self.buf
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blobs_are_stored_once_and_sized_by_length() {
        let mut w = AdbWriter::new();
        let a = w.blob(b"root");
        let b = w.blob(b"root");
        assert_eq!(a, b);
        assert_eq!(a, TYPE_BLOB8 | 8);
        assert_eq!(w.blob(b""), NULL);
        let long = vec![b'x'; 300];
        let l = w.blob(&long);
        assert_eq!(l & TYPE_MASK, TYPE_BLOB16);
        assert_eq!((l & VALUE_MASK) % 2, 0);
        let r = w.blob_raw(b"root");
        assert_ne!(r, a);
    }

    #[test]
    fn ints_and_objects() {
        let mut w = AdbWriter::new();
        assert_eq!(w.int(0o755), TYPE_INT | 0o755);
        let big = w.int(1 << 30);
        assert_eq!(big & TYPE_MASK, TYPE_INT32);
        assert_eq!(w.obj(&[NULL, NULL]), NULL);
        let o = w.obj(&[TYPE_INT | 1, NULL]);
        let off = (o & VALUE_MASK) as usize;
        assert_eq!(&w.bytes()[off..off + 8], &[2, 0, 0, 0, 1, 0, 0, 0x10]);
        assert_eq!(off % 4, 0);
    }
}
