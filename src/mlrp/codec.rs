//! The encodings MLRP bodies are built from (docs/MLRP.md section 3) and
//! the one error type of the wire: bounds-checked [`Reader`] and
//! [`Writer`] cursors, the shared field types ([`CnRef`], [`Pool`]) and
//! their limits. The lowest layer of `mlrp`: it knows neither the frame
//! header nor any message.
//!
//! Encodings (big-endian):
//! - `str`: u8 length, then that many bytes of UTF-8 (each field has its own
//!   maximum, see the `MAX_*` constants);
//! - `ipv4`: 4 bytes; `mac`: 6 bytes; `cell`: 4 bytes, a /30 network address;
//! - `cnref`: ipv4 + u16 port (6 bytes);
//! - `pool`: first ipv4 + last ipv4 (8 bytes, first <= last).

use crate::addr::{Cell30, MacAddr};
use core::fmt;
use std::net::Ipv4Addr;

/// Longest network name, CN name or software string.
pub const MAX_NAME_LEN: usize = 64;
/// Longest error or refusal text.
pub const MAX_TEXT_LEN: usize = 255;
/// Most address pools in one `CnBind` or one `CnList` entry.
pub const MAX_POOLS: usize = 256;

/// Why a frame or a body could not be parsed (or a message not encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the layout needs.
    Truncated,
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// The frame does not start with "ML".
    BadMagic,
    /// A frame format version this side does not speak (`got`); it
    /// speaks `spoken`.
    UnsupportedVersion { got: u8, spoken: u8 },
    /// Header flags we do not understand.
    UnknownFlags(u8),
    /// `length` above the largest frame, `max`.
    FrameTooLarge { len: u32, max: usize },
    /// `length` above the largest Hello, `max`, while the peer's Hello is
    /// still awaited (nothing larger is valid before it).
    HelloTooLarge { len: u32, max: usize },
    /// `length` shorter than header + trailer.
    BadLength(u32),
    /// Unknown message type code.
    UnknownType(u16),
    /// A string over its maximum length (field name, length).
    StringTooLong(&'static str, usize),
    /// A string that is not UTF-8.
    BadUtf8(&'static str),
    /// A list over its maximum count (field name, count).
    TooMany(&'static str, usize),
    /// A field value this version does not understand.
    Malformed(&'static str),
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated => f.write_str("truncated"),
            WireError::TrailingBytes(n) => write!(f, "{n} trailing bytes after the body"),
            WireError::BadMagic => f.write_str("bad magic (not an MLRP peer)"),
            WireError::UnsupportedVersion { got, spoken } if got < spoken => write!(
                f,
                "MLRP version {got} frame from an older peer: this side speaks version {spoken} only (upgrade mlrd and every tmipd together)"
            ),
            WireError::UnsupportedVersion { got, spoken } => write!(
                f,
                "unsupported MLRP version {got} (this side speaks version {spoken})"
            ),
            WireError::UnknownFlags(x) => write!(f, "unknown header flags {x:#04x}"),
            WireError::FrameTooLarge { len, max } => {
                write!(f, "frame length {len} over the limit of {max}")
            }
            WireError::HelloTooLarge { len, max } => write!(
                f,
                "frame length {len} before the handshake: the largest Hello is {max} bytes"
            ),
            WireError::BadLength(n) => write!(f, "frame length {n} too short for its header"),
            WireError::UnknownType(t) => write!(f, "unknown message type {t:#06x}"),
            WireError::StringTooLong(name, n) => write!(f, "{name}: string of {n} bytes too long"),
            WireError::BadUtf8(name) => write!(f, "{name}: not UTF-8"),
            WireError::TooMany(name, n) => write!(f, "{name}: {n} entries, too many"),
            WireError::Malformed(what) => write!(f, "malformed: {what}"),
        }
    }
}

impl std::error::Error for WireError {}

// ---------------------------------------------------------------------------
// Shared field types

/// A CN as MLRP names it: its CN address and its MLRP port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CnRef {
    pub addr: Ipv4Addr,
    pub port: u16,
}

impl CnRef {
    pub const fn new(addr: Ipv4Addr, port: u16) -> CnRef {
        CnRef { addr, port }
    }
    /// `0.0.0.0:0`, the wire's "absent".
    pub const NONE: CnRef = CnRef::new(Ipv4Addr::UNSPECIFIED, 0);
}

impl fmt::Display for CnRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.addr, self.port)
    }
}

/// An address pool: every /30 cell inside `first..=last` may be handed out.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Pool {
    pub first: Ipv4Addr,
    pub last: Ipv4Addr,
}

impl fmt::Display for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.first, self.last)
    }
}

/// `[a-b c-d]`, for log lines.
pub(crate) fn fmt_pools(f: &mut fmt::Formatter<'_>, pools: &[Pool]) -> fmt::Result {
    f.write_str("[")?;
    for (i, p) in pools.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{p}")?;
    }
    f.write_str("]")
}

/// Cut `s` to at most `max` bytes on a character boundary.
pub fn truncate_utf8(s: &mut String, max: usize) {
    if s.len() > max {
        let mut n = max;
        while n > 0 && !s.is_char_boundary(n) {
            n -= 1;
        }
        s.truncate(n);
    }
}

/// Bytes a `str` field takes.
pub(crate) fn str_len(s: &str) -> usize {
    1 + s.len()
}

/// Refuse a string `emit` would have to cut.
pub(crate) fn check_str(name: &'static str, s: &str, max: usize) -> Result<(), WireError> {
    if s.len() > max {
        return Err(WireError::StringTooLong(name, s.len()));
    }
    Ok(())
}

/// Refuse a pool list `emit` could not express or a parser would refuse.
pub(crate) fn check_pools(p: &[Pool]) -> Result<(), WireError> {
    if p.len() > MAX_POOLS {
        return Err(WireError::TooMany("pools", p.len()));
    }
    if p.iter().any(|p| u32::from(p.first) > u32::from(p.last)) {
        return Err(WireError::Malformed("pool first address after last"));
    }
    Ok(())
}

// ---------------------------------------------------------------------------
// Cursors

/// Reads fields from a body, never past its end: every read is checked
/// and a short body is [`WireError::Truncated`].
pub struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    /// Bytes not read yet.
    pub fn remaining(&self) -> usize {
        self.buf.len().saturating_sub(self.pos)
    }
    pub fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    pub fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    pub fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    pub fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    pub fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    pub fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    pub fn ipv4(&mut self) -> Result<Ipv4Addr, WireError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }
    pub fn mac(&mut self) -> Result<MacAddr, WireError> {
        Ok(MacAddr(self.array()?))
    }
    pub fn cell(&mut self) -> Result<Cell30, WireError> {
        Cell30::from_network(self.ipv4()?).ok_or(WireError::Malformed("cell not /30-aligned"))
    }
    pub fn cnref(&mut self) -> Result<CnRef, WireError> {
        Ok(CnRef {
            addr: self.ipv4()?,
            port: self.u16()?,
        })
    }
    pub fn pool(&mut self) -> Result<Pool, WireError> {
        let first = self.ipv4()?;
        let last = self.ipv4()?;
        if u32::from(first) > u32::from(last) {
            return Err(WireError::Malformed("pool first address after last"));
        }
        Ok(Pool { first, last })
    }
    pub fn string(&mut self, name: &'static str, max: usize) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(WireError::StringTooLong(name, n));
        }
        let b = self.take(n)?;
        core::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8(name))
    }
    pub fn pools(&mut self) -> Result<Vec<Pool>, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_POOLS {
            return Err(WireError::TooMany("pools", n));
        }
        // Check the bytes are there before reserving memory for them.
        if self.remaining() < n * 8 {
            return Err(WireError::Truncated);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.pool()?);
        }
        Ok(v)
    }
    /// A `rsvd` byte: must be 0.
    pub fn zero(&mut self, what: &'static str) -> Result<(), WireError> {
        if self.u8()? != 0 {
            return Err(WireError::Malformed(what));
        }
        Ok(())
    }
    /// The body must end here.
    pub fn finish(self) -> Result<(), WireError> {
        match self.remaining() {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

/// Writes into a buffer of exactly `buffer_len()` bytes. A too-small buffer
/// is a caller bug: the writer then stops writing (debug builds assert)
/// instead of panicking in a daemon.
pub struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    pub fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    pub fn put(&mut self, b: &[u8]) {
        let end = self.pos + b.len();
        debug_assert!(
            end <= self.buf.len(),
            "emit buffer shorter than buffer_len()"
        );
        if let Some(dst) = self.buf.get_mut(self.pos..end) {
            dst.copy_from_slice(b);
        }
        self.pos = end;
    }
    pub fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    pub fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    pub fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    pub fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    pub fn ipv4(&mut self, a: Ipv4Addr) {
        self.put(&a.octets());
    }
    pub fn mac(&mut self, m: MacAddr) {
        self.put(&m.0);
    }
    pub fn cell(&mut self, c: Cell30) {
        self.ipv4(c.network());
    }
    pub fn cnref(&mut self, c: CnRef) {
        self.ipv4(c.addr);
        self.u16(c.port);
    }
    /// Strings are checked by `validate()` before emit; truncate defensively.
    pub fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        let n = b.len().min(255);
        self.u8(n as u8);
        self.put(&b[..n]);
    }
    pub fn pools(&mut self, p: &[Pool]) {
        self.u16(p.len().min(u16::MAX as usize) as u16);
        for pool in p {
            self.ipv4(pool.first);
            self.ipv4(pool.last);
        }
    }
}
