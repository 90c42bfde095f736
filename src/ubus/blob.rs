//! libubox `blob_attr` / `blobmsg` codec (openwrt.md §4.2; libubox blob.h,
//! blobmsg.h), checked: parsing never panics and never reads past a length
//! it has not verified.
//!
//! A blob attribute is a big-endian u32 header — bit 31 "extended", bits
//! 24..30 the id, bits 0..23 the length *including* the 4-byte header and
//! excluding padding — followed by the payload, zero-padded to 4 bytes. A
//! nested attribute's payload is a sequence of padded attributes.
//!
//! blobmsg attributes set the extended bit and use the id as their type
//! (ARRAY 1, TABLE 2, STRING 3, INT64 4, INT32 5, INT16 6, INT8/BOOL 7,
//! DOUBLE 8; UNSPEC 0 is JSON null). Their payload starts with a name
//! header: u16 big-endian `namelen`, the name, a NUL, zero padding to 4
//! bytes; the value follows. Array elements have empty names.

use core::fmt;

/// Header bits (blob.h).
const EXTENDED: u32 = 0x8000_0000;
const ID_MASK: u32 = 0x7f00_0000;
const ID_SHIFT: u32 = 24;
const LEN_MASK: u32 = 0x00ff_ffff;
/// Size of a blob_attr header.
pub const HDR_LEN: usize = 4;

/// Deepest table/array nesting we accept from outside (recursion guard).
pub const MAX_DEPTH: usize = 16;

/// blobmsg types (blobmsg.h `enum blobmsg_type`).
pub mod blobmsg_type {
    pub const UNSPEC: u8 = 0;
    pub const ARRAY: u8 = 1;
    pub const TABLE: u8 = 2;
    pub const STRING: u8 = 3;
    pub const INT64: u8 = 4;
    pub const INT32: u8 = 5;
    pub const INT16: u8 = 6;
    pub const INT8: u8 = 7;
    pub const BOOL: u8 = INT8;
    pub const DOUBLE: u8 = 8;
}

/// Round up to the 4-byte blob alignment.
pub const fn pad4(n: usize) -> usize {
    (n + 3) & !3
}

/// Why blob bytes were rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BlobError {
    /// Fewer bytes than a header or than the header's length claims.
    Truncated { need: usize, have: usize },
    /// A length below the 4-byte header.
    BadLength(usize),
    /// A blobmsg name header that does not fit or lacks its NUL.
    BadName,
    /// A blobmsg value whose payload is too short for its type, or a string
    /// without its terminating NUL.
    BadValue(u8),
    /// A blobmsg type this codec does not know.
    UnknownType(u8),
    /// Nested deeper than [`MAX_DEPTH`].
    TooDeep,
    /// An attribute that would exceed the 24-bit length field.
    TooLong(usize),
    /// An attribute that should be blobmsg lacks the extended bit, or vice versa.
    NotBlobmsg,
}

impl fmt::Display for BlobError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BlobError::Truncated { need, have } => {
                write!(f, "blob truncated: need {need} bytes, have {have}")
            }
            BlobError::BadLength(n) => write!(f, "blob length {n} shorter than its header"),
            BlobError::BadName => write!(f, "blobmsg name header malformed"),
            BlobError::BadValue(t) => write!(f, "blobmsg value of type {t} malformed"),
            BlobError::UnknownType(t) => write!(f, "blobmsg type {t} unknown"),
            BlobError::TooDeep => write!(f, "blobmsg nested deeper than {MAX_DEPTH}"),
            BlobError::TooLong(n) => write!(f, "blob attribute of {n} bytes too long"),
            BlobError::NotBlobmsg => write!(f, "expected a blobmsg attribute"),
        }
    }
}

impl std::error::Error for BlobError {}

/// A checked view of one blob attribute.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Attr<'a> {
    pub id: u8,
    pub extended: bool,
    /// The payload, without header or padding.
    pub data: &'a [u8],
}

impl<'a> Attr<'a> {
    /// Parse the attribute at the start of `buf`; returns it and the bytes
    /// after its padding (padding missing at the very end is tolerated).
    pub fn parse(buf: &'a [u8]) -> Result<(Attr<'a>, &'a [u8]), BlobError> {
        let hdr: [u8; 4] =
            buf.get(..HDR_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(BlobError::Truncated {
                    need: HDR_LEN,
                    have: buf.len(),
                })?;
        let word = u32::from_be_bytes(hdr);
        let len = (word & LEN_MASK) as usize;
        if len < HDR_LEN {
            return Err(BlobError::BadLength(len));
        }
        let data = buf.get(HDR_LEN..len).ok_or(BlobError::Truncated {
            need: len,
            have: buf.len(),
        })?;
        let rest = buf.get(pad4(len)..).unwrap_or(&[]);
        Ok((
            Attr {
                id: ((word & ID_MASK) >> ID_SHIFT) as u8,
                extended: word & EXTENDED != 0,
                data,
            },
            rest,
        ))
    }

    /// The payload as a big-endian u32 (blob_get_u32 reads the first 4 bytes).
    pub fn u32(&self) -> Option<u32> {
        Some(u32::from_be_bytes(self.data.get(..4)?.try_into().ok()?))
    }

    pub fn u8(&self) -> Option<u8> {
        self.data.first().copied()
    }

    /// A NUL-terminated string payload (C semantics: up to the first NUL).
    pub fn str(&self) -> Option<&'a str> {
        let nul = self.data.iter().position(|&b| b == 0)?;
        core::str::from_utf8(self.data.get(..nul)?).ok()
    }

    /// The children of a nested attribute.
    pub fn children(&self) -> Attrs<'a> {
        Attrs { rest: self.data }
    }
}

/// Iterator over a sequence of padded attributes; stops after the first error.
#[derive(Debug, Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

impl<'a> Attrs<'a> {
    pub fn new(buf: &'a [u8]) -> Attrs<'a> {
        Attrs { rest: buf }
    }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<Attr<'a>, BlobError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        match Attr::parse(self.rest) {
            Ok((a, rest)) => {
                self.rest = rest;
                Some(Ok(a))
            }
            Err(e) => {
                self.rest = &[];
                Some(Err(e))
            }
        }
    }
}

/// A blobmsg value tree (the JSON-like payload of ubus DATA).
#[derive(Debug, Clone, PartialEq)]
pub enum Value {
    Table(Vec<(String, Value)>),
    Array(Vec<Value>),
    String(String),
    Int64(i64),
    Int32(i32),
    Int16(i16),
    Int8(i8),
    /// Encoded as INT8 0/1; decoding gives `Int8` back (the wire cannot tell).
    Bool(bool),
    Double(f64),
    /// blobmsg UNSPEC (JSON null).
    Null,
}

impl Value {
    /// An empty table (`{}`).
    pub fn table() -> Value {
        Value::Table(Vec::new())
    }

    /// Add `name: v` to a table (no-op on other variants); builder style.
    pub fn with(mut self, name: &str, v: Value) -> Value {
        if let Value::Table(t) = &mut self {
            t.push((name.to_string(), v));
        }
        self
    }

    /// Field `name` of a table.
    pub fn get(&self, name: &str) -> Option<&Value> {
        match self {
            Value::Table(t) => t.iter().find(|(k, _)| k == name).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    /// Any integer variant widened to i64.
    pub fn as_i64(&self) -> Option<i64> {
        match *self {
            Value::Int64(v) => Some(v),
            Value::Int32(v) => Some(v.into()),
            Value::Int16(v) => Some(v.into()),
            Value::Int8(v) => Some(v.into()),
            Value::Bool(b) => Some(b.into()),
            _ => None,
        }
    }

    /// BOOL is INT8 on the wire: non-zero is true.
    pub fn as_bool(&self) -> Option<bool> {
        match *self {
            Value::Bool(b) => Some(b),
            Value::Int8(v) => Some(v != 0),
            _ => None,
        }
    }

    /// A scalar as text (strings as-is, numbers in decimal, booleans
    /// true/false); `None` for tables, arrays and null.
    pub fn scalar_text(&self) -> Option<String> {
        match self {
            Value::String(s) => Some(s.clone()),
            Value::Bool(b) => Some(b.to_string()),
            Value::Double(d) => Some(d.to_string()),
            v => v.as_i64().map(|n| n.to_string()),
        }
    }

    fn type_id(&self) -> u8 {
        use blobmsg_type::*;
        match self {
            Value::Table(_) => TABLE,
            Value::Array(_) => ARRAY,
            Value::String(_) => STRING,
            Value::Int64(_) => INT64,
            Value::Int32(_) => INT32,
            Value::Int16(_) => INT16,
            Value::Int8(_) | Value::Bool(_) => INT8,
            Value::Double(_) => DOUBLE,
            Value::Null => UNSPEC,
        }
    }

    /// Append this value as one named blobmsg attribute.
    pub fn encode_named(&self, name: &str, w: &mut BlobWriter) -> Result<(), BlobError> {
        let mark = w.begin(self.type_id(), true);
        // Name header: u16 namelen, name, NUL, padded to 4.
        let nlen = u16::try_from(name.len()).map_err(|_| BlobError::TooLong(name.len()))?;
        w.buf.extend_from_slice(&nlen.to_be_bytes());
        w.buf.extend_from_slice(name.as_bytes());
        w.buf.push(0);
        w.pad();
        match self {
            Value::Table(t) => {
                for (k, v) in t {
                    v.encode_named(k, w)?;
                }
            }
            Value::Array(a) => {
                for v in a {
                    v.encode_named("", w)?;
                }
            }
            Value::String(s) => {
                w.buf.extend_from_slice(s.as_bytes());
                w.buf.push(0);
            }
            Value::Int64(v) => w.buf.extend_from_slice(&v.to_be_bytes()),
            Value::Int32(v) => w.buf.extend_from_slice(&v.to_be_bytes()),
            Value::Int16(v) => w.buf.extend_from_slice(&v.to_be_bytes()),
            Value::Int8(v) => w.buf.extend_from_slice(&v.to_be_bytes()),
            Value::Bool(b) => w.buf.push(u8::from(*b)),
            Value::Double(d) => w.buf.extend_from_slice(&d.to_bits().to_be_bytes()),
            Value::Null => {}
        }
        w.end(mark)
    }

    /// Encode a table's fields as a bare list of blobmsg attributes (the
    /// payload of ubus `DATA`). A non-table is encoded as one field named "".
    pub fn encode_fields(&self, w: &mut BlobWriter) -> Result<(), BlobError> {
        match self {
            Value::Table(t) => {
                for (k, v) in t {
                    v.encode_named(k, w)?;
                }
                Ok(())
            }
            v => v.encode_named("", w),
        }
    }

    /// Decode one blobmsg attribute into (name, value).
    pub fn decode_attr(a: &Attr<'_>) -> Result<(String, Value), BlobError> {
        decode_attr(a, 0)
    }

    /// Decode a bare list of blobmsg attributes (ubus `DATA` payload) as a table.
    pub fn decode_fields(buf: &[u8]) -> Result<Value, BlobError> {
        decode_list(buf, 0, true)
    }
}

fn decode_list(buf: &[u8], depth: usize, table: bool) -> Result<Value, BlobError> {
    if depth > MAX_DEPTH {
        return Err(BlobError::TooDeep);
    }
    let mut fields = Vec::new();
    let mut items = Vec::new();
    for a in Attrs::new(buf) {
        let (name, v) = decode_attr(&a?, depth)?;
        if table {
            fields.push((name, v));
        } else {
            items.push(v);
        }
    }
    Ok(if table {
        Value::Table(fields)
    } else {
        Value::Array(items)
    })
}

fn decode_attr(a: &Attr<'_>, depth: usize) -> Result<(String, Value), BlobError> {
    use blobmsg_type::*;
    if !a.extended {
        return Err(BlobError::NotBlobmsg);
    }
    let nlen_bytes: [u8; 2] = a
        .data
        .get(..2)
        .and_then(|b| b.try_into().ok())
        .ok_or(BlobError::BadName)?;
    let nlen = u16::from_be_bytes(nlen_bytes) as usize;
    let name = a.data.get(2..2 + nlen).ok_or(BlobError::BadName)?;
    if a.data.get(2 + nlen) != Some(&0) {
        return Err(BlobError::BadName);
    }
    let hdrlen = pad4(2 + nlen + 1);
    let v = a.data.get(hdrlen..).ok_or(BlobError::BadName)?;
    let name = String::from_utf8_lossy(name).into_owned();
    let bad = || BlobError::BadValue(a.id);
    let value = match a.id {
        UNSPEC => Value::Null,
        TABLE => decode_list(v, depth + 1, true)?,
        ARRAY => decode_list(v, depth + 1, false)?,
        STRING => {
            // blobmsg_check_attr: the last byte must be the NUL.
            if v.last() != Some(&0) {
                return Err(bad());
            }
            let end = v.iter().position(|&b| b == 0).unwrap_or(0);
            Value::String(String::from_utf8_lossy(v.get(..end).unwrap_or(&[])).into_owned())
        }
        INT64 => Value::Int64(i64::from_be_bytes(fixed(v).ok_or_else(bad)?)),
        INT32 => Value::Int32(i32::from_be_bytes(fixed(v).ok_or_else(bad)?)),
        INT16 => Value::Int16(i16::from_be_bytes(fixed(v).ok_or_else(bad)?)),
        INT8 => Value::Int8(i8::from_be_bytes(fixed(v).ok_or_else(bad)?)),
        DOUBLE => Value::Double(f64::from_bits(u64::from_be_bytes(
            fixed(v).ok_or_else(bad)?,
        ))),
        t => return Err(BlobError::UnknownType(t)),
    };
    Ok((name, value))
}

/// The first N bytes as an array (libubox reads the leading bytes too).
fn fixed<const N: usize>(v: &[u8]) -> Option<[u8; N]> {
    v.get(..N)?.try_into().ok()
}

/// Builds blob attributes into a byte buffer; nested attributes are opened
/// with [`begin`](BlobWriter::begin) and closed with [`end`](BlobWriter::end),
/// which writes the length and pads.
#[derive(Debug, Default, Clone)]
pub struct BlobWriter {
    pub(crate) buf: Vec<u8>,
}

/// An open attribute: where its header is.
#[derive(Debug, Clone, Copy)]
#[must_use]
pub struct Mark {
    at: usize,
    id: u8,
    extended: bool,
}

impl BlobWriter {
    pub fn new() -> BlobWriter {
        BlobWriter::default()
    }

    pub fn bytes(&self) -> &[u8] {
        &self.buf
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.buf
    }

    /// Open an attribute; its payload is whatever is written before `end`.
    pub fn begin(&mut self, id: u8, extended: bool) -> Mark {
        let at = self.buf.len();
        self.buf.extend_from_slice(&[0; HDR_LEN]);
        Mark { at, id, extended }
    }

    /// Close an attribute: write its header (length without trailing
    /// padding) and pad the buffer to 4 bytes.
    pub fn end(&mut self, m: Mark) -> Result<(), BlobError> {
        let len = self.buf.len() - m.at;
        if len > LEN_MASK as usize {
            return Err(BlobError::TooLong(len));
        }
        let word = (if m.extended { EXTENDED } else { 0 })
            | ((u32::from(m.id) << ID_SHIFT) & ID_MASK)
            | len as u32;
        self.buf[m.at..m.at + HDR_LEN].copy_from_slice(&word.to_be_bytes());
        self.pad();
        Ok(())
    }

    fn pad(&mut self) {
        let n = pad4(self.buf.len()) - self.buf.len();
        self.buf.extend(core::iter::repeat_n(0, n));
    }

    /// A plain attribute with raw payload.
    pub fn put(&mut self, id: u8, payload: &[u8]) -> Result<(), BlobError> {
        let m = self.begin(id, false);
        self.buf.extend_from_slice(payload);
        self.end(m)
    }

    pub fn put_u32(&mut self, id: u8, v: u32) -> Result<(), BlobError> {
        self.put(id, &v.to_be_bytes())
    }

    pub fn put_u8(&mut self, id: u8, v: u8) -> Result<(), BlobError> {
        self.put(id, &[v])
    }

    /// A NUL-terminated string attribute (blob_put_string).
    pub fn put_string(&mut self, id: u8, s: &str) -> Result<(), BlobError> {
        let m = self.begin(id, false);
        self.buf.extend_from_slice(s.as_bytes());
        self.buf.push(0);
        self.end(m)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// blobmsg_add_u32(&b, "id", 5), derived by hand:
    /// header: extended | type INT32 (5) << 24 | len; payload = name header
    /// `00 02 'i' 'd' 00` (5 bytes, padded to 8) + value `00 00 00 05`;
    /// len = 4 + 8 + 4 = 16 = 0x10 -> 0x85000010.
    const U32_ID_5: [u8; 16] = [
        0x85, 0x00, 0x00, 0x10, 0x00, 0x02, b'i', b'd', 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x05,
    ];

    /// blobmsg_add_string(&b, "msg", "hi"): name header `00 03 m s g 00`
    /// (6 bytes, padded to 8), value `h i 00` (3 bytes); len = 4 + 8 + 3 =
    /// 15 = 0x0f -> 0x8300000f, then one byte of padding.
    const STR_MSG_HI: [u8; 16] = [
        0x83, 0x00, 0x00, 0x0f, 0x00, 0x03, b'm', b's', b'g', 0x00, 0x00, 0x00, b'h', b'i', 0x00,
        0x00,
    ];

    #[test]
    fn int32_field_matches_hand_derivation() {
        let mut w = BlobWriter::new();
        Value::Int32(5).encode_named("id", &mut w).expect("enc");
        assert_eq!(w.bytes(), &U32_ID_5);
        let (a, rest) = Attr::parse(&U32_ID_5).expect("parse");
        assert!(rest.is_empty());
        assert_eq!(
            Value::decode_attr(&a),
            Ok(("id".to_string(), Value::Int32(5)))
        );
    }

    #[test]
    fn string_field_matches_hand_derivation() {
        let mut w = BlobWriter::new();
        Value::String("hi".into())
            .encode_named("msg", &mut w)
            .expect("enc");
        assert_eq!(w.bytes(), &STR_MSG_HI);
        let (a, _) = Attr::parse(&STR_MSG_HI).expect("parse");
        assert_eq!(
            Value::decode_attr(&a),
            Ok(("msg".into(), Value::String("hi".into())))
        );
    }

    #[test]
    fn nested_table_and_array_round_trip() {
        // {"t": {"a": [1, "x", true], "d": 1.5, "n": null}, "big": -2^40, "s16": -2}
        let v = Value::table()
            .with(
                "t",
                Value::table()
                    .with(
                        "a",
                        Value::Array(vec![
                            Value::Int32(1),
                            Value::String("x".into()),
                            Value::Int8(1),
                        ]),
                    )
                    .with("d", Value::Double(1.5))
                    .with("n", Value::Null),
            )
            .with("big", Value::Int64(-(1 << 40)))
            .with("s16", Value::Int16(-2));
        let mut w = BlobWriter::new();
        v.encode_fields(&mut w).expect("enc");
        assert_eq!(w.bytes().len() % 4, 0);
        assert_eq!(Value::decode_fields(w.bytes()), Ok(v));
    }

    #[test]
    fn table_header_by_hand() {
        // blobmsg_open_table(&b, "t") holding blobmsg_add_u8(&b, "b", 1):
        // inner: name hdr `00 01 'b' 00` (4), value `01` -> len 9 = 0x87000009 + 3 pad (12)
        // outer: name hdr `00 01 't' 00` (4) + inner 12 -> len 4+4+12 = 20 = 0x82000014
        let bytes = [
            0x82, 0, 0, 0x14, 0, 1, b't', 0, 0x87, 0, 0, 0x09, 0, 1, b'b', 0, 1, 0, 0, 0,
        ];
        let mut w = BlobWriter::new();
        Value::table()
            .with("b", Value::Bool(true))
            .encode_named("t", &mut w)
            .expect("enc");
        assert_eq!(w.bytes(), &bytes);
        let (a, _) = Attr::parse(&bytes).expect("parse");
        let (_, v) = Value::decode_attr(&a).expect("dec");
        assert_eq!(v.get("b").and_then(Value::as_bool), Some(true));
    }

    #[test]
    fn double_is_ieee_big_endian() {
        let mut w = BlobWriter::new();
        Value::Double(1.0).encode_named("", &mut w).expect("enc");
        // 0x88: extended | DOUBLE; len 4 + 4 (empty name hdr `00 00 00` + pad) + 8 = 16
        assert_eq!(
            w.bytes(),
            &[0x88, 0, 0, 0x10, 0, 0, 0, 0, 0x3f, 0xf0, 0, 0, 0, 0, 0, 0]
        );
    }

    #[test]
    fn malformed_input_is_an_error() {
        assert!(matches!(
            Attr::parse(&[0x85, 0]),
            Err(BlobError::Truncated { .. })
        ));
        assert_eq!(
            Attr::parse(&[0, 0, 0, 2]).err(),
            Some(BlobError::BadLength(2))
        );
        assert!(matches!(
            Attr::parse(&[0x85, 0, 0, 0x20, 0, 0]),
            Err(BlobError::Truncated { .. })
        ));
        // String without NUL.
        let bad_str = [0x83, 0, 0, 0x0a, 0, 0, 0, 0, b'h', b'i', 0, 0];
        let (a, _) = Attr::parse(&bad_str).expect("hdr ok");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::BadValue(3)));
        // INT32 with 2 bytes of value.
        let short = [0x85, 0, 0, 0x0a, 0, 0, 0, 0, 0, 5, 0, 0];
        let (a, _) = Attr::parse(&short).expect("hdr ok");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::BadValue(5)));
        // Name longer than the payload.
        let long_name = [0x85, 0, 0, 0x08, 0, 9, b'x', 0];
        let (a, _) = Attr::parse(&long_name).expect("hdr ok");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::BadName));
        // Unknown type 9.
        let unk = [0x89, 0, 0, 0x08, 0, 0, 0, 0];
        let (a, _) = Attr::parse(&unk).expect("hdr ok");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::UnknownType(9)));
        // Not extended.
        let (a, _) = Attr::parse(&[0x05, 0, 0, 0x08, 0, 0, 0, 0]).expect("hdr ok");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::NotBlobmsg));
    }

    #[test]
    fn deep_nesting_rejected_not_overflowed() {
        let mut v = Value::Int8(0);
        for _ in 0..40 {
            v = Value::Array(vec![v]);
        }
        let mut w = BlobWriter::new();
        v.encode_named("", &mut w).expect("enc");
        let (a, _) = Attr::parse(w.bytes()).expect("parse");
        assert_eq!(Value::decode_attr(&a), Err(BlobError::TooDeep));
    }

    #[test]
    fn every_truncation_and_byte_flip_is_survived() {
        let v = Value::table()
            .with("address", Value::String("02:11:22:33:44:55".into()))
            .with("arr", Value::Array(vec![Value::Int64(7), Value::table()]))
            .with("d", Value::Double(2.0));
        let mut w = BlobWriter::new();
        v.encode_fields(&mut w).expect("enc");
        let b = w.into_bytes();
        for n in 0..b.len() {
            let _ = Value::decode_fields(&b[..n]);
        }
        for i in 0..b.len() {
            for x in [0u8, 1, 0x7f, 0x80, 0xff] {
                let mut c = b.clone();
                c[i] = x;
                let _ = Value::decode_fields(&c);
            }
        }
    }
}
