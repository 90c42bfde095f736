//! The MLRP frame header as a checked view (smoltcp `wire` style).
//!
//! ```text
//!  0      2   3   4           8                      16          20      22      24         28
//! +------+---+---+-----------+-----------------------+-----------+-------+-------+----------+---- ... -+------------+
//! | "ML" |ver|flg| length    | sequence              | request id| type  | rsvd  | epoch    | body     | [HMAC 32]  |
//! +------+---+---+-----------+-----------------------+-----------+-------+-------+----------+---- ... -+------------+
//! ```
//!
//! All integers are big-endian. `length` counts the whole frame: header,
//! body and the HMAC trailer when the `MAC` flag is set. `epoch` is the
//! sender's register epoch (docs/MLRP.md section 2); it is in the tagged
//! header. Fields are read and written through named byte ranges, never by
//! casting structs, so the code is correct on any endianness and word size.
//!
//! Version 1's header was the first 24 bytes of this one (no epoch): the
//! version byte sits where it did, so either version refuses the other at
//! its third byte, and [`emit_v1_notice`] tells a version-1 peer why in a
//! frame it can read.

use super::codec::WireError;

/// The only frame format version this implementation speaks (2: the
/// header carries the sender's epoch).
pub const VERSION: u8 = 2;
/// Frame magic, ASCII "ML".
pub const MAGIC: [u8; 2] = *b"ML";
/// Size of the fixed header.
pub const HEADER_LEN: usize = field::EPOCH.end;
/// Size of version 1's header (no epoch), for [`emit_v1_notice`].
pub const V1_HEADER_LEN: usize = field::RESERVED.end;
/// Size of the HMAC-SHA256 trailer.
pub const MAC_LEN: usize = 32;
/// The largest frame (header + body + trailer) a peer may send: 64 KiB.
/// A longer `length` field is refused before any of the body is buffered.
pub const MAX_FRAME_LEN: usize = 65536;

/// Header flag bits. Bits not listed here must be zero.
pub mod flags {
    /// The frame is a reply; its request id echoes the request's.
    pub const REPLY: u8 = 0x01;
    /// An HMAC-SHA256 trailer of [`super::MAC_LEN`] bytes ends the frame.
    pub const MAC: u8 = 0x02;
    /// Every flag this version understands.
    pub const KNOWN: u8 = REPLY | MAC;
}

mod field {
    use core::ops::Range;
    pub const MAGIC: Range<usize> = 0..2;
    pub const VERSION: usize = 2;
    pub const FLAGS: usize = 3;
    pub const LENGTH: Range<usize> = 4..8;
    pub const SEQUENCE: Range<usize> = 8..16;
    pub const REQUEST_ID: Range<usize> = 16..20;
    pub const TYPE: Range<usize> = 20..22;
    pub const RESERVED: Range<usize> = 22..24;
    pub const EPOCH: Range<usize> = 24..28;
}

/// Read the declared total length from the first bytes of a frame, if at
/// least the fixed part up to `length` is present. Used by the session to
/// refuse oversized frames before buffering their body.
pub fn peek_length(buf: &[u8]) -> Option<u32> {
    Some(u32::from_be_bytes(buf.get(field::LENGTH)?.try_into().ok()?))
}

/// A read/write view of one whole MLRP frame.
#[derive(Debug, Clone)]
pub struct Frame<T: AsRef<[u8]>> {
    buffer: T,
}

impl<T: AsRef<[u8]>> Frame<T> {
    /// Wrap a buffer without checking it. Accessors may then panic; use
    /// [`Frame::new_checked`] on anything that came from outside.
    pub const fn new_unchecked(buffer: T) -> Frame<T> {
        Frame { buffer }
    }

    /// Wrap a buffer after checking that it holds a header and exactly the
    /// number of bytes the header declares, and that the declared length
    /// leaves room for the trailer the flags announce.
    pub fn new_checked(buffer: T) -> Result<Frame<T>, WireError> {
        let f = Frame::new_unchecked(buffer);
        f.check_len()?;
        Ok(f)
    }

    /// Validate the length field against the buffer and the limits.
    pub fn check_len(&self) -> Result<(), WireError> {
        let buf = self.buffer.as_ref();
        if buf.len() < HEADER_LEN {
            return Err(WireError::Truncated);
        }
        let len = self.length() as usize;
        if len > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge {
                len: self.length(),
                max: MAX_FRAME_LEN,
            });
        }
        if len < HEADER_LEN + self.mac_len() {
            return Err(WireError::BadLength(self.length()));
        }
        if buf.len() != len {
            return Err(WireError::Truncated);
        }
        Ok(())
    }

    pub fn into_inner(self) -> T {
        self.buffer
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn magic(&self) -> [u8; 2] {
        let b = self.b();
        [b[field::MAGIC.start], b[field::MAGIC.start + 1]]
    }
    pub fn version(&self) -> u8 {
        self.b()[field::VERSION]
    }
    pub fn flags(&self) -> u8 {
        self.b()[field::FLAGS]
    }
    pub fn is_reply(&self) -> bool {
        self.flags() & flags::REPLY != 0
    }
    pub fn has_mac(&self) -> bool {
        self.flags() & flags::MAC != 0
    }
    pub fn mac_len(&self) -> usize {
        if self.has_mac() {
            MAC_LEN
        } else {
            0
        }
    }
    pub fn length(&self) -> u32 {
        u32::from_be_bytes(be4(&self.b()[field::LENGTH]))
    }
    pub fn sequence(&self) -> u64 {
        let mut a = [0u8; 8];
        a.copy_from_slice(&self.b()[field::SEQUENCE]);
        u64::from_be_bytes(a)
    }
    pub fn request_id(&self) -> u32 {
        u32::from_be_bytes(be4(&self.b()[field::REQUEST_ID]))
    }
    pub fn msg_type(&self) -> u16 {
        let b = &self.b()[field::TYPE];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn reserved(&self) -> u16 {
        let b = &self.b()[field::RESERVED];
        u16::from_be_bytes([b[0], b[1]])
    }
    /// The sender's register epoch.
    pub fn epoch(&self) -> u32 {
        u32::from_be_bytes(be4(&self.b()[field::EPOCH]))
    }
    /// The message body: between the header and the trailer.
    pub fn body(&self) -> &[u8] {
        let end = self.length() as usize - self.mac_len();
        &self.b()[HEADER_LEN..end]
    }
    /// Everything the HMAC covers: header and body.
    pub fn authenticated(&self) -> &[u8] {
        let end = self.length() as usize - self.mac_len();
        &self.b()[..end]
    }
    /// The HMAC trailer (empty when the `MAC` flag is clear).
    pub fn mac(&self) -> &[u8] {
        let len = self.length() as usize;
        &self.b()[len - self.mac_len()..len]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Frame<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_magic(&mut self) {
        self.bm()[field::MAGIC].copy_from_slice(&MAGIC);
    }
    pub fn set_version(&mut self, v: u8) {
        self.bm()[field::VERSION] = v;
    }
    pub fn set_flags(&mut self, f: u8) {
        self.bm()[field::FLAGS] = f;
    }
    pub fn set_length(&mut self, len: u32) {
        self.bm()[field::LENGTH].copy_from_slice(&len.to_be_bytes());
    }
    pub fn set_sequence(&mut self, seq: u64) {
        self.bm()[field::SEQUENCE].copy_from_slice(&seq.to_be_bytes());
    }
    pub fn set_request_id(&mut self, id: u32) {
        self.bm()[field::REQUEST_ID].copy_from_slice(&id.to_be_bytes());
    }
    pub fn set_msg_type(&mut self, t: u16) {
        self.bm()[field::TYPE].copy_from_slice(&t.to_be_bytes());
    }
    pub fn set_reserved(&mut self, r: u16) {
        self.bm()[field::RESERVED].copy_from_slice(&r.to_be_bytes());
    }
    pub fn set_epoch(&mut self, epoch: u32) {
        self.bm()[field::EPOCH].copy_from_slice(&epoch.to_be_bytes());
    }
    pub fn body_mut(&mut self) -> &mut [u8] {
        let end = self.length() as usize - self.mac_len();
        &mut self.bm()[HEADER_LEN..end]
    }
    pub fn mac_mut(&mut self) -> &mut [u8] {
        let len = self.length() as usize;
        let m = self.mac_len();
        &mut self.bm()[len - m..len]
    }
}

fn be4(b: &[u8]) -> [u8; 4] {
    [b[0], b[1], b[2], b[3]]
}

/// The header fields of a frame, as plain values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    pub version: u8,
    pub flags: u8,
    pub length: u32,
    pub sequence: u64,
    pub request_id: u32,
    pub msg_type: u16,
    /// The sender's register epoch (0: it follows none).
    pub epoch: u32,
}

impl Header {
    /// Check the fields every frame must satisfy. The version is
    /// checked first so that a newer peer is told precisely what is wrong.
    pub fn parse<T: AsRef<[u8]>>(f: &Frame<T>) -> Result<Header, WireError> {
        if f.magic() != MAGIC {
            return Err(WireError::BadMagic);
        }
        if f.version() != VERSION {
            return Err(WireError::UnsupportedVersion {
                got: f.version(),
                spoken: VERSION,
            });
        }
        if f.flags() & !flags::KNOWN != 0 {
            return Err(WireError::UnknownFlags(f.flags()));
        }
        if f.reserved() != 0 {
            return Err(WireError::Malformed("reserved header bits set"));
        }
        Ok(Header {
            version: f.version(),
            flags: f.flags(),
            length: f.length(),
            sequence: f.sequence(),
            request_id: f.request_id(),
            msg_type: f.msg_type(),
            epoch: f.epoch(),
        })
    }

    /// Write the header into the first [`HEADER_LEN`] bytes of `f`.
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, f: &mut Frame<T>) {
        f.set_magic();
        f.set_version(self.version);
        f.set_flags(self.flags);
        f.set_length(self.length);
        f.set_sequence(self.sequence);
        f.set_request_id(self.request_id);
        f.set_msg_type(self.msg_type);
        f.set_reserved(0);
        f.set_epoch(self.epoch);
    }
}

/// Append a closing notice (`msg_type` Error, request id 0, REPLY flag, no
/// MAC) in version-1 framing: a version-1 peer refused for its version
/// accepts it in any state and logs why it was refused.
pub fn emit_v1_notice(sequence: u64, msg_type: u16, body: &[u8], out: &mut Vec<u8>) {
    let len = V1_HEADER_LEN + body.len();
    let start = out.len();
    out.resize(start + len, 0);
    let b = &mut out[start..];
    b[field::MAGIC].copy_from_slice(&MAGIC);
    b[field::VERSION] = 1;
    b[field::FLAGS] = flags::REPLY;
    b[field::LENGTH].copy_from_slice(&(len as u32).to_be_bytes());
    b[field::SEQUENCE].copy_from_slice(&sequence.to_be_bytes());
    b[field::TYPE].copy_from_slice(&msg_type.to_be_bytes());
    b[V1_HEADER_LEN..].copy_from_slice(body);
}

#[cfg(test)]
mod tests {
    use super::*;

    // Ping request id 7, sequence 1, epoch 3, no MAC, body = nonce
    // 0x0102030405060708.
    const PING: [u8; 36] = [
        b'M', b'L', 0x02, 0x00, // magic, version 2, flags
        0x00, 0x00, 0x00, 0x24, // length 36
        0, 0, 0, 0, 0, 0, 0, 1, // sequence 1
        0, 0, 0, 7, // request id 7
        0x00, 0x04, // type Ping
        0x00, 0x00, // reserved
        0, 0, 0, 3, // epoch 3
        1, 2, 3, 4, 5, 6, 7, 8, // body
    ];

    #[test]
    fn header_fields_read_from_named_ranges() {
        let f = Frame::new_checked(&PING[..]).unwrap();
        let h = Header::parse(&f).unwrap();
        assert_eq!(h.length, 36);
        assert_eq!(h.sequence, 1);
        assert_eq!(h.request_id, 7);
        assert_eq!(h.msg_type, 4);
        assert_eq!(h.epoch, 3);
        assert!(!f.is_reply());
        assert_eq!(f.body(), &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert!(f.mac().is_empty());
    }

    #[test]
    fn header_emit_writes_the_same_bytes() {
        let mut buf = [0u8; 36];
        let mut f = Frame::new_unchecked(&mut buf[..]);
        Header {
            version: 2,
            flags: 0,
            length: 36,
            sequence: 1,
            request_id: 7,
            msg_type: 4,
            epoch: 3,
        }
        .emit(&mut f);
        f.body_mut().copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(buf, PING);
    }

    #[test]
    fn length_checks_refuse_short_long_and_mismatched() {
        assert_eq!(
            Frame::new_checked(&PING[..10]).unwrap_err(),
            WireError::Truncated
        );
        let mut big = PING;
        big[4..8].copy_from_slice(&(MAX_FRAME_LEN as u32 + 1).to_be_bytes());
        assert!(matches!(
            Frame::new_checked(&big[..]).unwrap_err(),
            WireError::FrameTooLarge { .. }
        ));
        let mut small = PING;
        small[4..8].copy_from_slice(&10u32.to_be_bytes());
        assert_eq!(
            Frame::new_checked(&small[..]).unwrap_err(),
            WireError::BadLength(10)
        );
        // MAC flag but no room for the trailer.
        let mut mac = PING;
        mac[3] = flags::MAC;
        assert_eq!(
            Frame::new_checked(&mac[..]).unwrap_err(),
            WireError::BadLength(36)
        );
    }

    #[test]
    fn header_parse_refuses_unknown_version_flags_and_magic() {
        let mut v = PING;
        v[2] = 3;
        let f = Frame::new_checked(&v[..]).unwrap();
        assert_eq!(
            Header::parse(&f).unwrap_err(),
            WireError::UnsupportedVersion { got: 3, spoken: 2 }
        );
        v[2] = 1;
        let f = Frame::new_checked(&v[..]).unwrap();
        let e = Header::parse(&f).unwrap_err();
        assert_eq!(e, WireError::UnsupportedVersion { got: 1, spoken: 2 });
        assert!(e.to_string().contains("older peer"), "{e}");
        let mut fl = PING;
        fl[3] = 0x80;
        let f = Frame::new_checked(&fl[..]).unwrap();
        assert_eq!(
            Header::parse(&f).unwrap_err(),
            WireError::UnknownFlags(0x80)
        );
        let mut m = PING;
        m[0] = b'X';
        let f = Frame::new_checked(&m[..]).unwrap();
        assert_eq!(Header::parse(&f).unwrap_err(), WireError::BadMagic);
        let mut r = PING;
        r[23] = 1;
        let f = Frame::new_checked(&r[..]).unwrap();
        assert!(matches!(Header::parse(&f), Err(WireError::Malformed(_))));
    }

    #[test]
    fn a_v1_notice_has_the_v1_header() {
        let mut out = vec![0xee];
        emit_v1_notice(5, 0x0002, &[0, 4, 1, b'x'], &mut out);
        #[rustfmt::skip]
        assert_eq!(
            out,
            [
                0xee,
                b'M', b'L', 0x01, 0x01, // magic, version 1, REPLY
                0, 0, 0, 28,            // length 24 + 4
                0, 0, 0, 0, 0, 0, 0, 5, // sequence 5
                0, 0, 0, 0,             // request id 0
                0x00, 0x02, 0x00, 0x00, // type Error, reserved
                0, 4, 1, b'x',          // VersionUnsupported "x"
            ]
        );
    }
}
