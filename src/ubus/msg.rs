//! ubus messages (openwrt.md §4.1, §4.3; ubus ubusmsg.h): an 8-byte
//! `ubus_msghdr` (version u8 = 0, type u8, seq u16 BE, peer u32 BE)
//! followed by one blob container (id 0) whose children are the
//! `UBUS_ATTR_*` attributes. A frame on the stream is header + the
//! container's raw length (its children are padded, so it is a multiple
//! of 4 in practice).

use super::blob::{Attr, Attrs, BlobError, BlobWriter, Value, HDR_LEN};
use core::fmt;

/// Size of `struct ubus_msghdr`.
pub const MSGHDR_LEN: usize = 8;
/// `UBUS_MAX_MSGLEN`: the largest blob a peer accepts.
pub const MAX_MSGLEN: usize = 1024 * 1024;

/// Message types (ubusmsg.h `enum ubus_msg_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum MsgType {
    Hello = 0,
    Status = 1,
    Data = 2,
    Ping = 3,
    Lookup = 4,
    Invoke = 5,
    AddObject = 6,
    RemoveObject = 7,
    Subscribe = 8,
    Unsubscribe = 9,
    Notify = 10,
    Monitor = 11,
}

impl MsgType {
    pub fn from_u8(t: u8) -> Option<MsgType> {
        use MsgType::*;
        Some(match t {
            0 => Hello,
            1 => Status,
            2 => Data,
            3 => Ping,
            4 => Lookup,
            5 => Invoke,
            6 => AddObject,
            7 => RemoveObject,
            8 => Subscribe,
            9 => Unsubscribe,
            10 => Notify,
            11 => Monitor,
            _ => return None,
        })
    }
}

/// Attribute ids (ubusmsg.h `enum ubus_msg_attr`).
pub mod attr {
    pub const STATUS: u8 = 1;
    pub const OBJPATH: u8 = 2;
    pub const OBJID: u8 = 3;
    pub const METHOD: u8 = 4;
    pub const OBJTYPE: u8 = 5;
    pub const SIGNATURE: u8 = 6;
    pub const DATA: u8 = 7;
    pub const TARGET: u8 = 8;
    pub const ACTIVE: u8 = 9;
    pub const NO_REPLY: u8 = 10;
    pub const SUBSCRIBERS: u8 = 11;
    pub const USER: u8 = 12;
    pub const GROUP: u8 = 13;
}

/// Status codes (ubusmsg.h `enum ubus_msg_status`).
pub mod status {
    pub const OK: i32 = 0;
    pub const INVALID_COMMAND: i32 = 1;
    pub const INVALID_ARGUMENT: i32 = 2;
    pub const METHOD_NOT_FOUND: i32 = 3;
    pub const NOT_FOUND: i32 = 4;
    pub const NO_DATA: i32 = 5;
    pub const PERMISSION_DENIED: i32 = 6;
    pub const TIMEOUT: i32 = 7;
    pub const NOT_SUPPORTED: i32 = 8;
    pub const UNKNOWN_ERROR: i32 = 9;
    pub const CONNECTION_FAILED: i32 = 10;
    pub const NO_MEMORY: i32 = 11;
    pub const PARSE_ERROR: i32 = 12;
    pub const SYSTEM_ERROR: i32 = 13;
}

/// Why a frame was rejected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MsgError {
    /// Header version other than 0.
    Version(u8),
    /// The container is larger than `UBUS_MAX_MSGLEN`.
    TooLong(usize),
    /// A known attribute with the wrong size or without its NUL.
    BadAttr(u8),
    Blob(BlobError),
}

impl fmt::Display for MsgError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MsgError::Version(v) => write!(f, "ubus message version {v} (expected 0)"),
            MsgError::TooLong(n) => write!(f, "ubus message of {n} bytes exceeds 1 MiB"),
            MsgError::BadAttr(id) => write!(f, "ubus attribute {id} malformed"),
            MsgError::Blob(e) => write!(f, "ubus message: {e}"),
        }
    }
}

impl std::error::Error for MsgError {}

impl From<BlobError> for MsgError {
    fn from(e: BlobError) -> Self {
        MsgError::Blob(e)
    }
}

/// `struct ubus_msghdr`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// Raw type byte (unknown types are kept, and ignored by the client).
    pub typ: u8,
    pub seq: u16,
    pub peer: u32,
}

impl Header {
    pub fn new(typ: MsgType, seq: u16, peer: u32) -> Header {
        Header {
            typ: typ as u8,
            seq,
            peer,
        }
    }

    pub fn msg_type(&self) -> Option<MsgType> {
        MsgType::from_u8(self.typ)
    }

    fn emit(&self, out: &mut Vec<u8>) {
        out.push(0);
        out.push(self.typ);
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.peer.to_be_bytes());
    }
}

/// How long the frame at the start of `buf` is, once its first 12 bytes
/// (header + container header) are there: `Ok(None)` = need more bytes.
pub fn frame_len(buf: &[u8]) -> Result<Option<usize>, MsgError> {
    let Some(h) = buf.get(..MSGHDR_LEN + HDR_LEN) else {
        return Ok(None);
    };
    if h[0] != 0 {
        return Err(MsgError::Version(h[0]));
    }
    let word = u32::from_be_bytes([h[8], h[9], h[10], h[11]]);
    let raw = (word & 0x00ff_ffff) as usize;
    if raw < HDR_LEN {
        return Err(MsgError::Blob(BlobError::BadLength(raw)));
    }
    if raw > MAX_MSGLEN {
        return Err(MsgError::TooLong(raw));
    }
    let total = MSGHDR_LEN + raw;
    Ok((buf.len() >= total).then_some(total))
}

/// The attributes of a message, each checked as ubusd/libubus's policy does
/// (u32 ids need 4 bytes, strings their NUL, u8 flags 1 byte).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MsgAttrs<'a> {
    pub status: Option<i32>,
    pub objpath: Option<&'a str>,
    pub objid: Option<u32>,
    pub method: Option<&'a str>,
    pub objtype: Option<u32>,
    /// SIGNATURE payload (blobmsg tables, one per method).
    pub signature: Option<&'a [u8]>,
    /// DATA payload: the bare blobmsg fields of a JSON object.
    pub data: Option<&'a [u8]>,
    pub target: Option<u32>,
    pub active: Option<u8>,
    pub no_reply: Option<u8>,
    pub subscribers: Option<&'a [u8]>,
    pub user: Option<&'a str>,
    pub group: Option<&'a str>,
}

/// A parsed frame: header plus checked attributes borrowing the frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UbusMsg<'a> {
    pub hdr: Header,
    pub attrs: MsgAttrs<'a>,
}

impl<'a> UbusMsg<'a> {
    /// Parse one complete frame (as delimited by [`frame_len`]).
    pub fn parse(frame: &'a [u8]) -> Result<UbusMsg<'a>, MsgError> {
        let h = frame
            .get(..MSGHDR_LEN)
            .ok_or(MsgError::Blob(BlobError::Truncated {
                need: MSGHDR_LEN,
                have: frame.len(),
            }))?;
        if h[0] != 0 {
            return Err(MsgError::Version(h[0]));
        }
        let hdr = Header {
            typ: h[1],
            seq: u16::from_be_bytes([h[2], h[3]]),
            peer: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        };
        let body = frame.get(MSGHDR_LEN..).unwrap_or(&[]);
        let (container, _) = Attr::parse(body)?;
        if container.data.len() + HDR_LEN > MAX_MSGLEN {
            return Err(MsgError::TooLong(container.data.len()));
        }
        let mut m = MsgAttrs::default();
        for a in Attrs::new(container.data) {
            let a = a?;
            let bad = || MsgError::BadAttr(a.id);
            match a.id {
                attr::STATUS => m.status = Some(a.u32().ok_or_else(bad)? as i32),
                attr::OBJPATH => m.objpath = Some(a.str().ok_or_else(bad)?),
                attr::OBJID => m.objid = Some(a.u32().ok_or_else(bad)?),
                attr::METHOD => m.method = Some(a.str().ok_or_else(bad)?),
                attr::OBJTYPE => m.objtype = Some(a.u32().ok_or_else(bad)?),
                attr::SIGNATURE => m.signature = Some(a.data),
                attr::DATA => m.data = Some(a.data),
                attr::TARGET => m.target = Some(a.u32().ok_or_else(bad)?),
                attr::ACTIVE => m.active = Some(a.u8().ok_or_else(bad)?),
                attr::NO_REPLY => m.no_reply = Some(a.u8().ok_or_else(bad)?),
                attr::SUBSCRIBERS => m.subscribers = Some(a.data),
                attr::USER => m.user = Some(a.str().ok_or_else(bad)?),
                attr::GROUP => m.group = Some(a.str().ok_or_else(bad)?),
                _ => {} // newer attributes: ignore, as libubus does
            }
        }
        Ok(UbusMsg { hdr, attrs: m })
    }
}

/// Builds one frame: header, then attributes inside the id-0 container.
pub struct MsgBuilder {
    hdr: Header,
    w: BlobWriter,
    error: Option<BlobError>,
}

impl MsgBuilder {
    pub fn new(typ: MsgType, seq: u16, peer: u32) -> MsgBuilder {
        MsgBuilder {
            hdr: Header::new(typ, seq, peer),
            w: BlobWriter::new(),
            error: None,
        }
    }

    fn keep(&mut self, r: Result<(), BlobError>) {
        if let Err(e) = r {
            self.error.get_or_insert(e);
        }
    }

    pub fn u32(mut self, id: u8, v: u32) -> Self {
        let r = self.w.put_u32(id, v);
        self.keep(r);
        self
    }

    pub fn i32(self, id: u8, v: i32) -> Self {
        self.u32(id, v as u32)
    }

    pub fn u8(mut self, id: u8, v: u8) -> Self {
        let r = self.w.put_u8(id, v);
        self.keep(r);
        self
    }

    pub fn string(mut self, id: u8, s: &str) -> Self {
        let r = self.w.put_string(id, s);
        self.keep(r);
        self
    }

    /// A nested attribute holding `v`'s fields as bare blobmsg attributes
    /// (DATA), or a table's entries (SIGNATURE: one table per method).
    pub fn fields(mut self, id: u8, v: &Value) -> Self {
        let m = self.w.begin(id, false);
        let r = v.encode_fields(&mut self.w).and_then(|_| self.w.end(m));
        self.keep(r);
        self
    }

    /// A nested attribute with pre-encoded payload.
    pub fn raw(mut self, id: u8, payload: &[u8]) -> Self {
        let r = self.w.put(id, payload);
        self.keep(r);
        self
    }

    /// The frame bytes, or an error if an attribute or the whole message
    /// is too long.
    pub fn finish(self) -> Result<Vec<u8>, MsgError> {
        if let Some(e) = self.error {
            return Err(e.into());
        }
        let body = self.w.into_bytes();
        let raw = HDR_LEN + body.len();
        if raw > MAX_MSGLEN {
            return Err(MsgError::TooLong(raw));
        }
        let mut out = Vec::with_capacity(MSGHDR_LEN + raw);
        self.hdr.emit(&mut out);
        // The container: id 0, not extended, length = header + children.
        out.extend_from_slice(&(raw as u32).to_be_bytes());
        out.extend_from_slice(&body);
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// HELLO as ubusd sends it to client id 0x1234abcd: empty container.
    /// hdr: 00 | 00 (HELLO) | seq 00 00 | peer 12 34 ab cd; container 00 00 00 04.
    const HELLO: [u8; 12] = [0, 0, 0, 0, 0x12, 0x34, 0xab, 0xcd, 0, 0, 0, 4];

    /// LOOKUP "hostapd.wlan0" with seq 7, peer 0, derived by hand:
    /// OBJPATH (id 2) string "hostapd.wlan0\0" = 14 bytes -> len 18 = 0x02000012,
    /// padded to 20; container len 4 + 20 = 24 = 0x18.
    const LOOKUP: [u8; 32] = [
        0, 4, 0, 7, 0, 0, 0, 0, // hdr: LOOKUP, seq 7, peer 0
        0, 0, 0, 0x18, // container
        0x02, 0, 0, 0x12, b'h', b'o', b's', b't', b'a', b'p', b'd', b'.', b'w', b'l', b'a', b'n',
        b'0', 0, 0, 0,
    ];

    #[test]
    fn hello_parses() {
        assert_eq!(frame_len(&HELLO), Ok(Some(12)));
        let m = UbusMsg::parse(&HELLO).expect("hello");
        assert_eq!(m.hdr, Header::new(MsgType::Hello, 0, 0x1234_abcd));
        assert_eq!(m.attrs, MsgAttrs::default());
    }

    #[test]
    fn lookup_matches_hand_derivation() {
        let b = MsgBuilder::new(MsgType::Lookup, 7, 0)
            .string(attr::OBJPATH, "hostapd.wlan0")
            .finish()
            .expect("build");
        assert_eq!(b, LOOKUP);
        let m = UbusMsg::parse(&b).expect("parse");
        assert_eq!(m.attrs.objpath, Some("hostapd.wlan0"));
    }

    /// STATUS reply to an INVOKE as libubus sends it (ubus_complete_deferred_request):
    /// STATUS (id 1) i32 0 -> 01 00 00 08 00 00 00 00; OBJID (id 3) 0x2a -> 03 00 00 08 00 00 00 2a;
    /// container 4 + 16 = 20.
    #[test]
    fn status_reply_matches_hand_derivation() {
        let want: [u8; 28] = [
            0, 1, 0x12, 0x34, 0xde, 0xad, 0xbe, 0xef, 0, 0, 0, 20, 1, 0, 0, 8, 0, 0, 0, 0, 3, 0, 0,
            8, 0, 0, 0, 0x2a,
        ];
        let b = MsgBuilder::new(MsgType::Status, 0x1234, 0xdead_beef)
            .i32(attr::STATUS, 0)
            .u32(attr::OBJID, 0x2a)
            .finish()
            .expect("build");
        assert_eq!(b, want);
        let m = UbusMsg::parse(&b).expect("parse");
        assert_eq!((m.attrs.status, m.attrs.objid), (Some(0), Some(0x2a)));
    }

    /// DATA with {"id": 5}: DATA (id 7) nests the bare blobmsg field from
    /// blob.rs (16 bytes) -> 07 00 00 14; OBJID first -> container 4+8+20 = 32.
    #[test]
    fn data_reply_nests_bare_fields() {
        let b = MsgBuilder::new(MsgType::Data, 1, 2)
            .u32(attr::OBJID, 9)
            .fields(attr::DATA, &Value::table().with("id", Value::Int32(5)))
            .finish()
            .expect("build");
        let want_tail: [u8; 20] = [
            7, 0, 0, 0x14, 0x85, 0, 0, 0x10, 0, 2, b'i', b'd', 0, 0, 0, 0, 0, 0, 0, 5,
        ];
        assert_eq!(&b[8..12], &[0, 0, 0, 32]);
        assert_eq!(&b[20..], &want_tail);
        let m = UbusMsg::parse(&b).expect("parse");
        let v = Value::decode_fields(m.attrs.data.expect("data")).expect("fields");
        assert_eq!(v.get("id"), Some(&Value::Int32(5)));
    }

    #[test]
    fn framing_checks() {
        assert_eq!(frame_len(&HELLO[..11]), Ok(None));
        assert_eq!(frame_len(&LOOKUP[..20]), Ok(None));
        assert_eq!(frame_len(&LOOKUP), Ok(Some(32)));
        let mut v = HELLO;
        v[0] = 1;
        assert_eq!(frame_len(&v), Err(MsgError::Version(1)));
        let mut big = HELLO;
        big[9] = 0x20; // 2 MiB
        assert!(matches!(frame_len(&big), Err(MsgError::TooLong(_))));
        let mut short = HELLO;
        short[11] = 2;
        assert!(frame_len(&short).is_err());
    }

    #[test]
    fn malformed_attributes_rejected() {
        // OBJID with 2 bytes.
        let b = MsgBuilder::new(MsgType::Data, 0, 0)
            .raw(attr::OBJID, &[0, 1])
            .finish()
            .expect("build");
        assert_eq!(UbusMsg::parse(&b), Err(MsgError::BadAttr(attr::OBJID)));
        // METHOD without NUL.
        let b = MsgBuilder::new(MsgType::Invoke, 0, 0)
            .raw(attr::METHOD, b"abc")
            .finish()
            .expect("build");
        assert_eq!(UbusMsg::parse(&b), Err(MsgError::BadAttr(attr::METHOD)));
        // Every truncation/flip of a real frame is survived.
        for n in 0..LOOKUP.len() {
            let _ = UbusMsg::parse(&LOOKUP[..n]);
        }
        for i in 0..LOOKUP.len() {
            let mut c = LOOKUP;
            c[i] ^= 0xff;
            let _ = UbusMsg::parse(&c);
        }
    }
}
