//! MLRP message bodies: one typed repr per message, each with
//! `parse(body)` (rejecting anything it does not understand: short or
//! trailing bytes, unknown enum values, misaligned cells, over-long strings,
//! too many entries), `buffer_len()` and `emit(buf)` into exactly
//! `buffer_len()` bytes. Layouts are pinned in `docs/MLRP.md` and by the
//! byte-literal tests below.
//!
//! Encodings shared by all bodies (big-endian):
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
/// Most entries in one `CnList`.
pub const MAX_CN_ENTRIES: usize = 1024;

/// Why a frame or a body could not be parsed (or a message not encoded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WireError {
    /// Fewer bytes than the layout needs.
    Truncated,
    /// Bytes left over after the last field.
    TrailingBytes(usize),
    /// The frame does not start with "ML".
    BadMagic,
    /// Frame format version we do not speak.
    UnsupportedVersion(u8),
    /// Header flags we do not understand.
    UnknownFlags(u8),
    /// `length` above [`super::MAX_FRAME_LEN`].
    FrameTooLarge(u32),
    /// `length` above [`super::frame::MAX_HELLO_FRAME_LEN`] while the peer's
    /// Hello is still awaited (nothing larger is valid before it).
    HelloTooLarge(u32),
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
            WireError::UnsupportedVersion(v) => write!(f, "unsupported MLRP version {v}"),
            WireError::UnknownFlags(x) => write!(f, "unknown header flags {x:#04x}"),
            WireError::FrameTooLarge(n) => write!(
                f,
                "frame length {n} over the limit of {}",
                super::frame::MAX_FRAME_LEN
            ),
            WireError::HelloTooLarge(n) => write!(
                f,
                "frame length {n} before the handshake: the largest Hello is {} bytes",
                super::frame::MAX_HELLO_FRAME_LEN
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
// Bounds-checked cursor helpers

struct Reader<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }
    fn take(&mut self, n: usize) -> Result<&'a [u8], WireError> {
        let end = self.pos.checked_add(n).ok_or(WireError::Truncated)?;
        let s = self.buf.get(self.pos..end).ok_or(WireError::Truncated)?;
        self.pos = end;
        Ok(s)
    }
    fn array<const N: usize>(&mut self) -> Result<[u8; N], WireError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
    fn u8(&mut self) -> Result<u8, WireError> {
        Ok(self.array::<1>()?[0])
    }
    fn u16(&mut self) -> Result<u16, WireError> {
        Ok(u16::from_be_bytes(self.array()?))
    }
    fn u32(&mut self) -> Result<u32, WireError> {
        Ok(u32::from_be_bytes(self.array()?))
    }
    fn u64(&mut self) -> Result<u64, WireError> {
        Ok(u64::from_be_bytes(self.array()?))
    }
    fn ipv4(&mut self) -> Result<Ipv4Addr, WireError> {
        Ok(Ipv4Addr::from(self.array::<4>()?))
    }
    fn mac(&mut self) -> Result<MacAddr, WireError> {
        Ok(MacAddr(self.array()?))
    }
    fn cell(&mut self) -> Result<Cell30, WireError> {
        Cell30::from_network(self.ipv4()?).ok_or(WireError::Malformed("cell not /30-aligned"))
    }
    fn cnref(&mut self) -> Result<CnRef, WireError> {
        Ok(CnRef {
            addr: self.ipv4()?,
            port: self.u16()?,
        })
    }
    fn pool(&mut self) -> Result<Pool, WireError> {
        let first = self.ipv4()?;
        let last = self.ipv4()?;
        if u32::from(first) > u32::from(last) {
            return Err(WireError::Malformed("pool first address after last"));
        }
        Ok(Pool { first, last })
    }
    fn string(&mut self, name: &'static str, max: usize) -> Result<String, WireError> {
        let n = self.u8()? as usize;
        if n > max {
            return Err(WireError::StringTooLong(name, n));
        }
        let b = self.take(n)?;
        core::str::from_utf8(b)
            .map(str::to_owned)
            .map_err(|_| WireError::BadUtf8(name))
    }
    fn pools(&mut self) -> Result<Vec<Pool>, WireError> {
        let n = self.u16()? as usize;
        if n > MAX_POOLS {
            return Err(WireError::TooMany("pools", n));
        }
        // Check the bytes are there before reserving memory for them.
        if self.buf.len().saturating_sub(self.pos) < n * 8 {
            return Err(WireError::Truncated);
        }
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            v.push(self.pool()?);
        }
        Ok(v)
    }
    fn zero(&mut self, what: &'static str) -> Result<(), WireError> {
        if self.u8()? != 0 {
            return Err(WireError::Malformed(what));
        }
        Ok(())
    }
    fn finish(self) -> Result<(), WireError> {
        match self.buf.len() - self.pos.min(self.buf.len()) {
            0 => Ok(()),
            n => Err(WireError::TrailingBytes(n)),
        }
    }
}

/// Writes into a buffer of exactly `buffer_len()` bytes. A too-small buffer
/// is a caller bug: the writer then stops writing (debug builds assert)
/// instead of panicking in a daemon.
struct Writer<'a> {
    buf: &'a mut [u8],
    pos: usize,
}

impl<'a> Writer<'a> {
    fn new(buf: &'a mut [u8]) -> Self {
        Writer { buf, pos: 0 }
    }
    fn put(&mut self, b: &[u8]) {
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
    fn u8(&mut self, v: u8) {
        self.put(&[v]);
    }
    fn u16(&mut self, v: u16) {
        self.put(&v.to_be_bytes());
    }
    fn u32(&mut self, v: u32) {
        self.put(&v.to_be_bytes());
    }
    fn u64(&mut self, v: u64) {
        self.put(&v.to_be_bytes());
    }
    fn ipv4(&mut self, a: Ipv4Addr) {
        self.put(&a.octets());
    }
    fn mac(&mut self, m: MacAddr) {
        self.put(&m.0);
    }
    fn cell(&mut self, c: Cell30) {
        self.ipv4(c.network());
    }
    fn cnref(&mut self, c: CnRef) {
        self.ipv4(c.addr);
        self.u16(c.port);
    }
    /// Strings are checked by `validate()` before emit; truncate defensively.
    fn string(&mut self, s: &str) {
        let b = s.as_bytes();
        let n = b.len().min(255);
        self.u8(n as u8);
        self.put(&b[..n]);
    }
    fn pools(&mut self, p: &[Pool]) {
        self.u16(p.len().min(u16::MAX as usize) as u16);
        for pool in p {
            self.ipv4(pool.first);
            self.ipv4(pool.last);
        }
    }
}

fn check_str(name: &'static str, s: &str, max: usize) -> Result<(), WireError> {
    if s.len() > max {
        return Err(WireError::StringTooLong(name, s.len()));
    }
    Ok(())
}

fn check_pools(p: &[Pool]) -> Result<(), WireError> {
    if p.len() > MAX_POOLS {
        return Err(WireError::TooMany("pools", p.len()));
    }
    if p.iter().any(|p| u32::from(p.first) > u32::from(p.last)) {
        return Err(WireError::Malformed("pool first address after last"));
    }
    Ok(())
}

fn str_len(s: &str) -> usize {
    1 + s.len()
}

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

fn fmt_pools(f: &mut fmt::Formatter<'_>, pools: &[Pool]) -> fmt::Result {
    f.write_str("[")?;
    for (i, p) in pools.iter().enumerate() {
        if i > 0 {
            f.write_str(" ")?;
        }
        write!(f, "{p}")?;
    }
    f.write_str("]")
}

/// What kind of program a peer is (sent in `Hello`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// The Mobile Location Register (`mlrd`).
    Mlr = 1,
    /// A correspondent node (`tmipd`).
    Cn = 2,
    /// A tool: `tmipd -E`, a benchmark, a test. It may not bind.
    Tool = 3,
}

impl Role {
    pub fn from_u8(v: u8) -> Option<Role> {
        match v {
            1 => Some(Role::Mlr),
            2 => Some(Role::Cn),
            3 => Some(Role::Tool),
            _ => None,
        }
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Mlr => "MLR",
            Role::Cn => "CN",
            Role::Tool => "tool",
        })
    }
}

/// Error codes carried by `Error` replies and `BindReply::Refused`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorCode {
    /// The request was malformed or of a type the peer does not know.
    BadRequest,
    /// Authentication failed (bad HMAC, secret configured on one side only).
    Unauthorized,
    /// The CN's network name is not the MLR's.
    WrongNetwork,
    /// The peer speaks a frame version we do not.
    VersionUnsupported,
    /// No binding for that MAC / IP / cell.
    NotFound,
    /// No free /30 in any pool.
    PoolExhausted,
    /// A bounded table is full.
    TableFull,
    /// The request needs a bound CN session (`CnBind` first).
    NotBound,
    /// The request conflicts with existing state (overlapping pools, an
    /// address held by another MAC, a CN name already bound elsewhere).
    Conflict,
    /// This peer's role does not serve that request.
    Unsupported,
    /// Broken framing: bad magic, oversized frame, sequence error.
    Protocol,
    /// The peer is shutting down or overloaded; try again later.
    Unavailable,
    /// Anything else that went wrong inside the peer.
    Internal,
    /// This register is the standby backup of another (which serves):
    /// bind there. (Also: a replication peer that is not the primary.)
    NotPrimary,
    /// Free cells are left only in other CNs' pools, which are at the
    /// MLR's `foreign_share` already (an MLR before this code answered
    /// `PoolExhausted`).
    Quota,
    /// A code this version does not know (kept so it can be logged).
    Other(u16),
}

impl ErrorCode {
    pub fn to_u16(self) -> u16 {
        match self {
            ErrorCode::BadRequest => 1,
            ErrorCode::Unauthorized => 2,
            ErrorCode::WrongNetwork => 3,
            ErrorCode::VersionUnsupported => 4,
            ErrorCode::NotFound => 5,
            ErrorCode::PoolExhausted => 6,
            ErrorCode::TableFull => 7,
            ErrorCode::NotBound => 8,
            ErrorCode::Conflict => 9,
            ErrorCode::Unsupported => 10,
            ErrorCode::Protocol => 11,
            ErrorCode::Unavailable => 12,
            ErrorCode::Internal => 13,
            ErrorCode::NotPrimary => 14,
            ErrorCode::Quota => 15,
            ErrorCode::Other(v) => v,
        }
    }
    pub fn from_u16(v: u16) -> ErrorCode {
        match v {
            1 => ErrorCode::BadRequest,
            2 => ErrorCode::Unauthorized,
            3 => ErrorCode::WrongNetwork,
            4 => ErrorCode::VersionUnsupported,
            5 => ErrorCode::NotFound,
            6 => ErrorCode::PoolExhausted,
            7 => ErrorCode::TableFull,
            8 => ErrorCode::NotBound,
            9 => ErrorCode::Conflict,
            10 => ErrorCode::Unsupported,
            11 => ErrorCode::Protocol,
            12 => ErrorCode::Unavailable,
            13 => ErrorCode::Internal,
            14 => ErrorCode::NotPrimary,
            15 => ErrorCode::Quota,
            v => ErrorCode::Other(v),
        }
    }
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ErrorCode::Other(v) => write!(f, "error {v}"),
            c => fmt::Debug::fmt(c, f),
        }
    }
}

// ---------------------------------------------------------------------------
// Message reprs

/// Handshake, first frame in each direction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hello {
    /// Highest frame version the sender speaks.
    pub version: u8,
    pub role: Role,
    /// Fresh random bytes; both nonces key the connection.
    pub nonce: [u8; 16],
    /// Free-form program name and version, for logs ("tmip-rs v0.1.0").
    pub software: String,
}

impl Hello {
    /// The longest Hello body: fixed fields and the longest software name.
    pub const MAX_BODY_LEN: usize = 4 + 16 + 1 + MAX_NAME_LEN;

    pub fn parse(body: &[u8]) -> Result<Hello, WireError> {
        let mut r = Reader::new(body);
        let version = r.u8()?;
        let role = Role::from_u8(r.u8()?).ok_or(WireError::Malformed("unknown role"))?;
        r.zero("hello reserved byte")?;
        r.zero("hello reserved byte")?;
        let nonce = r.array()?;
        let software = r.string("software", MAX_NAME_LEN)?;
        r.finish()?;
        Ok(Hello {
            version,
            role,
            nonce,
            software,
        })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        check_str("software", &self.software, MAX_NAME_LEN)
    }
    pub fn buffer_len(&self) -> usize {
        4 + 16 + str_len(&self.software)
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u8(self.version);
        w.u8(self.role as u8);
        w.u16(0);
        w.put(&self.nonce);
        w.string(&self.software);
    }
}

/// Generic failure reply (and, with request id 0, a connection-closing notice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ErrorReply {
    pub code: ErrorCode,
    pub text: String,
}

impl ErrorReply {
    pub fn new(code: ErrorCode, text: impl Into<String>) -> ErrorReply {
        let mut text: String = text.into();
        truncate_utf8(&mut text, MAX_TEXT_LEN);
        ErrorReply { code, text }
    }
    pub fn parse(body: &[u8]) -> Result<ErrorReply, WireError> {
        let mut r = Reader::new(body);
        let code = ErrorCode::from_u16(r.u16()?);
        let text = r.string("text", MAX_TEXT_LEN)?;
        r.finish()?;
        Ok(ErrorReply { code, text })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        check_str("text", &self.text, MAX_TEXT_LEN)
    }
    pub fn buffer_len(&self) -> usize {
        2 + str_len(&self.text)
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u16(self.code.to_u16());
        w.string(&self.text);
    }
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

/// A CN registers with the MLR: who it is and which pools it offers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnBind {
    pub network_name: String,
    pub cn_name: String,
    pub cn_addr: Ipv4Addr,
    pub cn_port: u16,
    pub pools: Vec<Pool>,
}

impl CnBind {
    pub fn parse(body: &[u8]) -> Result<CnBind, WireError> {
        let mut r = Reader::new(body);
        let network_name = r.string("network_name", MAX_NAME_LEN)?;
        let cn_name = r.string("cn_name", MAX_NAME_LEN)?;
        let cn_addr = r.ipv4()?;
        let cn_port = r.u16()?;
        let pools = r.pools()?;
        r.finish()?;
        Ok(CnBind {
            network_name,
            cn_name,
            cn_addr,
            cn_port,
            pools,
        })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        check_str("network_name", &self.network_name, MAX_NAME_LEN)?;
        check_str("cn_name", &self.cn_name, MAX_NAME_LEN)?;
        check_pools(&self.pools)
    }
    pub fn buffer_len(&self) -> usize {
        str_len(&self.network_name) + str_len(&self.cn_name) + 6 + 2 + 8 * self.pools.len()
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.string(&self.network_name);
        w.string(&self.cn_name);
        w.ipv4(self.cn_addr);
        w.u16(self.cn_port);
        w.pools(&self.pools);
    }
    pub fn cn_ref(&self) -> CnRef {
        CnRef::new(self.cn_addr, self.cn_port)
    }
}

/// The MLR's answer to `CnBind`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindReply {
    /// Bound. The CN should ping at least every `ping_interval_secs`; the
    /// MLR keeps unrenewed bindings for `lease_time_secs`.
    Accepted {
        lease_time_secs: u32,
        ping_interval_secs: u16,
    },
    Refused {
        code: ErrorCode,
        text: String,
    },
}

impl BindReply {
    pub fn parse(body: &[u8]) -> Result<BindReply, WireError> {
        let mut r = Reader::new(body);
        let rep = match r.u8()? {
            0 => {
                r.zero("bind reply reserved byte")?;
                let ping_interval_secs = r.u16()?;
                let lease_time_secs = r.u32()?;
                BindReply::Accepted {
                    lease_time_secs,
                    ping_interval_secs,
                }
            }
            1 => {
                r.zero("bind reply reserved byte")?;
                let code = ErrorCode::from_u16(r.u16()?);
                let text = r.string("text", MAX_TEXT_LEN)?;
                BindReply::Refused { code, text }
            }
            _ => return Err(WireError::Malformed("unknown bind status")),
        };
        r.finish()?;
        Ok(rep)
    }
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            BindReply::Accepted { .. } => Ok(()),
            BindReply::Refused { text, .. } => check_str("text", text, MAX_TEXT_LEN),
        }
    }
    pub fn buffer_len(&self) -> usize {
        match self {
            BindReply::Accepted { .. } => 8,
            BindReply::Refused { text, .. } => 4 + str_len(text),
        }
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        match self {
            BindReply::Accepted {
                lease_time_secs,
                ping_interval_secs,
            } => {
                w.u8(0);
                w.u8(0);
                w.u16(*ping_interval_secs);
                w.u32(*lease_time_secs);
            }
            BindReply::Refused { code, text } => {
                w.u8(1);
                w.u8(0);
                w.u16(code.to_u16());
                w.string(text);
            }
        }
    }
}

/// Ask for the /30 of a station (DHCP): the existing one for a known MAC,
/// else a new one, `requested` if it is free (a DHCP REQUEST for a
/// remembered address), else any.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocate {
    pub mac: MacAddr,
    pub requested: Option<Ipv4Addr>,
}

impl Allocate {
    pub fn parse(body: &[u8]) -> Result<Allocate, WireError> {
        let mut r = Reader::new(body);
        let mac = r.mac()?;
        let flags = r.u8()?;
        r.zero("allocate reserved byte")?;
        let ip = r.ipv4()?;
        r.finish()?;
        let requested = match flags {
            0 if ip.is_unspecified() => None,
            0 => return Err(WireError::Malformed("requested address without its flag")),
            1 => Some(ip),
            _ => return Err(WireError::Malformed("unknown allocate flags")),
        };
        Ok(Allocate { mac, requested })
    }
    pub fn buffer_len(&self) -> usize {
        12
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.mac(self.mac);
        w.u8(self.requested.is_some() as u8);
        w.u8(0);
        w.ipv4(self.requested.unwrap_or(Ipv4Addr::UNSPECIFIED));
    }
}

/// Find a station's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    ByMac(MacAddr),
    /// Any of the four addresses of its /30.
    ByIp(Ipv4Addr),
}

impl Locate {
    pub fn parse(body: &[u8]) -> Result<Locate, WireError> {
        let mut r = Reader::new(body);
        let kind = r.u8()?;
        r.zero("locate reserved byte")?;
        let l = match kind {
            1 => Locate::ByMac(r.mac()?),
            2 => Locate::ByIp(r.ipv4()?),
            _ => return Err(WireError::Malformed("unknown locate key")),
        };
        r.finish()?;
        Ok(l)
    }
    pub fn buffer_len(&self) -> usize {
        match self {
            Locate::ByMac(_) => 8,
            Locate::ByIp(_) => 6,
        }
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        match self {
            Locate::ByMac(m) => {
                w.u8(1);
                w.u8(0);
                w.mac(*m);
            }
            Locate::ByIp(ip) => {
                w.u8(2);
                w.u8(0);
                w.ipv4(*ip);
            }
        }
    }
}

/// A station's binding: the reply to `Allocate`, `Locate` and `Move`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Binding {
    pub mac: MacAddr,
    pub cell: Cell30,
    /// Owner of the pool the cell came from.
    pub parent: CnRef,
    /// The CN the station is at now.
    pub at: CnRef,
    /// The CN it was at before `at`, if any.
    pub previous: Option<CnRef>,
    /// Seconds until the MLR frees the cell unless renewed.
    pub lease_remaining_secs: u32,
}

impl Binding {
    pub fn parse(body: &[u8]) -> Result<Binding, WireError> {
        let mut r = Reader::new(body);
        let mac = r.mac()?;
        let flags = r.u8()?;
        r.zero("binding reserved byte")?;
        let cell = r.cell()?;
        let parent = r.cnref()?;
        let at = r.cnref()?;
        let prev = r.cnref()?;
        let lease_remaining_secs = r.u32()?;
        r.finish()?;
        let previous = match flags {
            0 if prev == CnRef::new(Ipv4Addr::UNSPECIFIED, 0) => None,
            0 => return Err(WireError::Malformed("previous CN without its flag")),
            1 => Some(prev),
            _ => return Err(WireError::Malformed("unknown binding flags")),
        };
        Ok(Binding {
            mac,
            cell,
            parent,
            at,
            previous,
            lease_remaining_secs,
        })
    }
    pub fn buffer_len(&self) -> usize {
        34
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.mac(self.mac);
        w.u8(self.previous.is_some() as u8);
        w.u8(0);
        w.cell(self.cell);
        w.cnref(self.parent);
        w.cnref(self.at);
        w.cnref(
            self.previous
                .unwrap_or(CnRef::new(Ipv4Addr::UNSPECIFIED, 0)),
        );
        w.u32(self.lease_remaining_secs);
    }
}

/// Common layout of `Move` and `Redirect`: mac, cell, CN.
fn parse_mac_cell_cn(body: &[u8]) -> Result<(MacAddr, Cell30, CnRef), WireError> {
    let mut r = Reader::new(body);
    let mac = r.mac()?;
    let cell = r.cell()?;
    let to = r.cnref()?;
    r.finish()?;
    Ok((mac, cell, to))
}

fn emit_mac_cell_cn(buf: &mut [u8], mac: MacAddr, cell: Cell30, to: CnRef) {
    let mut w = Writer::new(buf);
    w.mac(mac);
    w.cell(cell);
    w.cnref(to);
}

/// Common layout of `Withdraw` and `Release`: mac, cell.
fn parse_mac_cell(body: &[u8]) -> Result<(MacAddr, Cell30), WireError> {
    let mut r = Reader::new(body);
    let mac = r.mac()?;
    let cell = r.cell()?;
    r.finish()?;
    Ok((mac, cell))
}

fn emit_mac_cell(buf: &mut [u8], mac: MacAddr, cell: Cell30) {
    let mut w = Writer::new(buf);
    w.mac(mac);
    w.cell(cell);
}

/// CN -> MLR: the station is now at CN `to`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Move {
    pub mac: MacAddr,
    pub cell: Cell30,
    pub to: CnRef,
}

impl Move {
    pub fn parse(body: &[u8]) -> Result<Move, WireError> {
        let (mac, cell, to) = parse_mac_cell_cn(body)?;
        Ok(Move { mac, cell, to })
    }
    pub fn buffer_len(&self) -> usize {
        16
    }
    pub fn emit(&self, buf: &mut [u8]) {
        emit_mac_cell_cn(buf, self.mac, self.cell, self.to)
    }
}

/// MLR (or CN) -> parent CN: route the cell to CN `to` (back to local
/// delivery when `to` is the parent itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Redirect {
    pub mac: MacAddr,
    pub cell: Cell30,
    pub to: CnRef,
}

impl Redirect {
    pub fn parse(body: &[u8]) -> Result<Redirect, WireError> {
        let (mac, cell, to) = parse_mac_cell_cn(body)?;
        Ok(Redirect { mac, cell, to })
    }
    pub fn buffer_len(&self) -> usize {
        16
    }
    pub fn emit(&self, buf: &mut [u8]) {
        emit_mac_cell_cn(buf, self.mac, self.cell, self.to)
    }
}

/// MLR -> previous CN: the station left you; drop its routes and addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Withdraw {
    pub mac: MacAddr,
    pub cell: Cell30,
}

impl Withdraw {
    pub fn parse(body: &[u8]) -> Result<Withdraw, WireError> {
        let (mac, cell) = parse_mac_cell(body)?;
        Ok(Withdraw { mac, cell })
    }
    pub fn buffer_len(&self) -> usize {
        10
    }
    pub fn emit(&self, buf: &mut [u8]) {
        emit_mac_cell(buf, self.mac, self.cell)
    }
}

/// CN -> MLR: free the station's cell (DHCP RELEASE).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Release {
    pub mac: MacAddr,
    pub cell: Cell30,
}

impl Release {
    pub fn parse(body: &[u8]) -> Result<Release, WireError> {
        let (mac, cell) = parse_mac_cell(body)?;
        Ok(Release { mac, cell })
    }
    pub fn buffer_len(&self) -> usize {
        10
    }
    pub fn emit(&self, buf: &mut [u8]) {
        emit_mac_cell(buf, self.mac, self.cell)
    }
}

/// CN -> MLR on a DHCP REQUEST: bind the /30 held for `mac` by an earlier
/// `Offer`, or renew its binding, for the lease; the station is at the
/// requesting CN when the cell was only held. Body as `Release`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Commit {
    pub mac: MacAddr,
    pub cell: Cell30,
}

impl Commit {
    pub fn parse(body: &[u8]) -> Result<Commit, WireError> {
        let (mac, cell) = parse_mac_cell(body)?;
        Ok(Commit { mac, cell })
    }
    pub fn buffer_len(&self) -> usize {
        10
    }
    pub fn emit(&self, buf: &mut [u8]) {
        emit_mac_cell(buf, self.mac, self.cell)
    }
}

/// One CN in a `CnList`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CnEntry {
    pub name: String,
    pub addr: Ipv4Addr,
    pub port: u16,
    /// Answering pings (a down CN keeps its stations' bindings).
    pub up: bool,
    pub pools: Vec<Pool>,
}

impl CnEntry {
    pub fn cn_ref(&self) -> CnRef {
        CnRef::new(self.addr, self.port)
    }
    fn buffer_len(&self) -> usize {
        str_len(&self.name) + 4 + 2 + 1 + 2 + 8 * self.pools.len()
    }
}

/// The MLR's list of bound CNs (reply to `ListCns`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CnList {
    pub entries: Vec<CnEntry>,
}

impl CnList {
    pub fn parse(body: &[u8]) -> Result<CnList, WireError> {
        let mut r = Reader::new(body);
        let n = r.u16()? as usize;
        if n > MAX_CN_ENTRIES {
            return Err(WireError::TooMany("cn entries", n));
        }
        // An entry is at least 10 bytes: refuse counts the body cannot hold
        // before reserving memory for them.
        if body.len() < 2 + n * 10 {
            return Err(WireError::Truncated);
        }
        let mut entries = Vec::with_capacity(n);
        for _ in 0..n {
            let name = r.string("cn name", MAX_NAME_LEN)?;
            let addr = r.ipv4()?;
            let port = r.u16()?;
            let up = match r.u8()? {
                0 => false,
                1 => true,
                _ => return Err(WireError::Malformed("cn up flag")),
            };
            let pools = r.pools()?;
            entries.push(CnEntry {
                name,
                addr,
                port,
                up,
                pools,
            });
        }
        r.finish()?;
        Ok(CnList { entries })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        if self.entries.len() > MAX_CN_ENTRIES {
            return Err(WireError::TooMany("cn entries", self.entries.len()));
        }
        for e in &self.entries {
            check_str("cn name", &e.name, MAX_NAME_LEN)?;
            check_pools(&e.pools)?;
        }
        Ok(())
    }
    pub fn buffer_len(&self) -> usize {
        2 + self.entries.iter().map(CnEntry::buffer_len).sum::<usize>()
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u16(self.entries.len().min(u16::MAX as usize) as u16);
        for e in &self.entries {
            w.string(&e.name);
            w.ipv4(e.addr);
            w.u16(e.port);
            w.u8(e.up as u8);
            w.pools(&e.pools);
        }
    }
}

/// Counters of the answering daemon (reply to `Status`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StatusReply {
    pub uptime_secs: u32,
    /// Bound CNs, and how many of them answer pings.
    pub cns: u32,
    pub cns_up: u32,
    pub pools: u32,
    pub bindings: u32,
    /// /30 cells still free in all pools.
    pub free_cells: u32,
    /// Requests served since start.
    pub requests: u64,
    pub software: String,
}

impl StatusReply {
    pub fn parse(body: &[u8]) -> Result<StatusReply, WireError> {
        let mut r = Reader::new(body);
        let s = StatusReply {
            uptime_secs: r.u32()?,
            cns: r.u32()?,
            cns_up: r.u32()?,
            pools: r.u32()?,
            bindings: r.u32()?,
            free_cells: r.u32()?,
            requests: r.u64()?,
            software: r.string("software", MAX_NAME_LEN)?,
        };
        r.finish()?;
        Ok(s)
    }
    pub fn validate(&self) -> Result<(), WireError> {
        check_str("software", &self.software, MAX_NAME_LEN)
    }
    pub fn buffer_len(&self) -> usize {
        6 * 4 + 8 + str_len(&self.software)
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u32(self.uptime_secs);
        w.u32(self.cns);
        w.u32(self.cns_up);
        w.u32(self.pools);
        w.u32(self.bindings);
        w.u32(self.free_cells);
        w.u64(self.requests);
        w.string(&self.software);
    }
}

/// What a register is in a pair (`RegisterStatusReply::role`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RegisterRole {
    /// No backup and no primary configured: serves alone.
    Standalone,
    /// Serves CNs (the primary, or a backup that promoted itself).
    Primary,
    /// Standby backup: replicates from the primary, refuses CN binds.
    Backup,
    Other(u8),
}

impl RegisterRole {
    pub fn to_u8(self) -> u8 {
        match self {
            RegisterRole::Standalone => 0,
            RegisterRole::Primary => 1,
            RegisterRole::Backup => 2,
            RegisterRole::Other(v) => v,
        }
    }
    pub fn from_u8(v: u8) -> RegisterRole {
        match v {
            0 => RegisterRole::Standalone,
            1 => RegisterRole::Primary,
            2 => RegisterRole::Backup,
            v => RegisterRole::Other(v),
        }
    }
}

impl fmt::Display for RegisterRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegisterRole::Standalone => f.write_str("standalone"),
            RegisterRole::Primary => f.write_str("primary"),
            RegisterRole::Backup => f.write_str("backup"),
            RegisterRole::Other(v) => write!(f, "role {v}"),
        }
    }
}

/// The state of a register's replication link (`RegisterStatusReply`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplicationState {
    /// No peer configured.
    None,
    /// The peer is unreachable: serving alone.
    PeerDown,
    /// The backup is being brought up to date (snapshot + tail).
    CatchingUp,
    /// Every acknowledged change is stored on both registers.
    InSync,
    Other(u8),
}

impl ReplicationState {
    pub fn to_u8(self) -> u8 {
        match self {
            ReplicationState::None => 0,
            ReplicationState::PeerDown => 1,
            ReplicationState::CatchingUp => 2,
            ReplicationState::InSync => 3,
            ReplicationState::Other(v) => v,
        }
    }
    pub fn from_u8(v: u8) -> ReplicationState {
        match v {
            0 => ReplicationState::None,
            1 => ReplicationState::PeerDown,
            2 => ReplicationState::CatchingUp,
            3 => ReplicationState::InSync,
            v => ReplicationState::Other(v),
        }
    }
}

impl fmt::Display for ReplicationState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ReplicationState::None => f.write_str("none"),
            ReplicationState::PeerDown => f.write_str("peer-down"),
            ReplicationState::CatchingUp => f.write_str("catching-up"),
            ReplicationState::InSync => f.write_str("in-sync"),
            ReplicationState::Other(v) => write!(f, "state {v}"),
        }
    }
}

/// A register's place in a primary/backup pair (reply to
/// `RegisterStatus`): its epoch (raised by each promotion), its role, its
/// replication state and the other register of the pair (0.0.0.0:0 when
/// none).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RegisterStatusReply {
    pub epoch: u32,
    pub role: RegisterRole,
    pub replication: ReplicationState,
    pub peer: CnRef,
}

impl RegisterStatusReply {
    pub fn parse(body: &[u8]) -> Result<RegisterStatusReply, WireError> {
        let mut r = Reader::new(body);
        let s = RegisterStatusReply {
            epoch: r.u32()?,
            role: RegisterRole::from_u8(r.u8()?),
            replication: ReplicationState::from_u8(r.u8()?),
            peer: r.cnref()?,
        };
        r.finish()?;
        Ok(s)
    }
    pub fn buffer_len(&self) -> usize {
        12
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u32(self.epoch);
        w.u8(self.role.to_u8());
        w.u8(self.replication.to_u8());
        w.cnref(self.peer);
    }
}

/// Most journal bytes one replication frame carries (frames are at most
/// 64 KiB).
pub const MAX_REPL_DATA: usize = 60_000;

fn repl_data(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let n = r.u16()? as usize;
    if n > MAX_REPL_DATA {
        return Err(WireError::TooMany("replication bytes", n));
    }
    Ok(r.take(n)?.to_vec())
}

/// Backup -> primary: stream your register to me. `epoch` is the
/// backup's; the primary answers `Ack` and then sends a snapshot
/// (`ReplSnapshot` chunks) and every later journal record
/// (`ReplRecords`), or `Error{NotPrimary}` when it does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplSubscribe {
    pub epoch: u32,
}

impl ReplSubscribe {
    pub fn parse(body: &[u8]) -> Result<ReplSubscribe, WireError> {
        let mut r = Reader::new(body);
        let s = ReplSubscribe { epoch: r.u32()? };
        r.finish()?;
        Ok(s)
    }
    pub fn buffer_len(&self) -> usize {
        4
    }
    pub fn emit(&self, buf: &mut [u8]) {
        Writer::new(buf).u32(self.epoch);
    }
}

/// Primary -> backup: chunk `chunk` (from 0) of a snapshot of the
/// register, in mlrd's snapshot file format; `last` on the final chunk,
/// after which the backup replaces its state with it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplSnapshot {
    pub epoch: u32,
    pub chunk: u32,
    pub last: bool,
    pub data: Vec<u8>,
}

impl ReplSnapshot {
    pub fn parse(body: &[u8]) -> Result<ReplSnapshot, WireError> {
        let mut r = Reader::new(body);
        let epoch = r.u32()?;
        let chunk = r.u32()?;
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(WireError::Malformed("unknown snapshot flags"));
        }
        r.zero("reserved byte")?;
        let data = repl_data(&mut r)?;
        r.finish()?;
        Ok(ReplSnapshot {
            epoch,
            chunk,
            last: flags & 1 != 0,
            data,
        })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        if self.data.len() > MAX_REPL_DATA {
            return Err(WireError::TooMany("replication bytes", self.data.len()));
        }
        Ok(())
    }
    pub fn buffer_len(&self) -> usize {
        12 + self.data.len()
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u32(self.epoch);
        w.u32(self.chunk);
        w.u8(u8::from(self.last));
        w.u8(0);
        w.u16(self.data.len() as u16);
        w.put(&self.data);
    }
}

/// Primary -> backup: journal records (mlrd's journal record format) of
/// one commit, numbered `seq` from 1 after the snapshot. The backup
/// answers `Ack` only once it has written and fdatasynced them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplRecords {
    pub epoch: u32,
    pub seq: u64,
    pub data: Vec<u8>,
}

impl ReplRecords {
    pub fn parse(body: &[u8]) -> Result<ReplRecords, WireError> {
        let mut r = Reader::new(body);
        let epoch = r.u32()?;
        let seq = r.u64()?;
        let data = repl_data(&mut r)?;
        r.finish()?;
        Ok(ReplRecords { epoch, seq, data })
    }
    pub fn validate(&self) -> Result<(), WireError> {
        if self.data.len() > MAX_REPL_DATA {
            return Err(WireError::TooMany("replication bytes", self.data.len()));
        }
        Ok(())
    }
    pub fn buffer_len(&self) -> usize {
        14 + self.data.len()
    }
    pub fn emit(&self, buf: &mut [u8]) {
        let mut w = Writer::new(buf);
        w.u32(self.epoch);
        w.u64(self.seq);
        w.u16(self.data.len() as u16);
        w.put(&self.data);
    }
}

// ---------------------------------------------------------------------------
// The message enum

/// Whether a message opens the connection, asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake,
    Request,
    Reply,
}

/// Message type codes (the header's `type` field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u16)]
pub enum MessageType {
    Hello = 0x0001,
    Error = 0x0002,
    Ack = 0x0003,
    Ping = 0x0004,
    Pong = 0x0005,
    CnBind = 0x0010,
    BindReply = 0x0011,
    Unbind = 0x0012,
    Allocate = 0x0020,
    Locate = 0x0021,
    Binding = 0x0022,
    Move = 0x0023,
    Redirect = 0x0024,
    Withdraw = 0x0025,
    Release = 0x0026,
    Offer = 0x0027,
    Commit = 0x0028,
    ListCns = 0x0030,
    CnList = 0x0031,
    Status = 0x0032,
    StatusReply = 0x0033,
    RegisterStatus = 0x0040,
    RegisterStatusReply = 0x0041,
    ReplSubscribe = 0x0042,
    ReplSnapshot = 0x0043,
    ReplRecords = 0x0044,
}

impl MessageType {
    pub fn from_u16(v: u16) -> Option<MessageType> {
        use MessageType::*;
        Some(match v {
            0x0001 => Hello,
            0x0002 => Error,
            0x0003 => Ack,
            0x0004 => Ping,
            0x0005 => Pong,
            0x0010 => CnBind,
            0x0011 => BindReply,
            0x0012 => Unbind,
            0x0020 => Allocate,
            0x0021 => Locate,
            0x0022 => Binding,
            0x0023 => Move,
            0x0024 => Redirect,
            0x0025 => Withdraw,
            0x0026 => Release,
            0x0027 => Offer,
            0x0028 => Commit,
            0x0030 => ListCns,
            0x0031 => CnList,
            0x0032 => Status,
            0x0033 => StatusReply,
            0x0040 => RegisterStatus,
            0x0041 => RegisterStatusReply,
            0x0042 => ReplSubscribe,
            0x0043 => ReplSnapshot,
            0x0044 => ReplRecords,
            _ => return None,
        })
    }
    pub fn kind(self) -> Kind {
        use MessageType::*;
        match self {
            Hello => Kind::Handshake,
            Error | Ack | Pong | BindReply | Binding | CnList | StatusReply
            | RegisterStatusReply => Kind::Reply,
            Ping | CnBind | Unbind | Allocate | Locate | Move | Redirect | Withdraw | Release
            | Offer | Commit | ListCns | Status | RegisterStatus | ReplSubscribe | ReplSnapshot
            | ReplRecords => Kind::Request,
        }
    }
}

/// Every MLRP message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message {
    Hello(Hello),
    /// Generic failure reply.
    Error(ErrorReply),
    /// Generic success reply (to `Unbind`, `Redirect`, `Withdraw`, `Release`).
    Ack,
    Ping {
        nonce: u64,
    },
    Pong {
        nonce: u64,
    },
    CnBind(CnBind),
    BindReply(BindReply),
    Unbind,
    Allocate(Allocate),
    Locate(Locate),
    Binding(Binding),
    Move(Move),
    Redirect(Redirect),
    Withdraw(Withdraw),
    Release(Release),
    /// Like `Allocate`, but a new station's /30 is only held briefly.
    Offer(Allocate),
    Commit(Commit),
    ListCns,
    CnList(CnList),
    Status,
    StatusReply(StatusReply),
    /// Which register is this, in which epoch, replicating how?
    RegisterStatus,
    RegisterStatusReply(RegisterStatusReply),
    ReplSubscribe(ReplSubscribe),
    ReplSnapshot(ReplSnapshot),
    ReplRecords(ReplRecords),
}

impl Message {
    pub fn msg_type(&self) -> MessageType {
        match self {
            Message::Hello(_) => MessageType::Hello,
            Message::Error(_) => MessageType::Error,
            Message::Ack => MessageType::Ack,
            Message::Ping { .. } => MessageType::Ping,
            Message::Pong { .. } => MessageType::Pong,
            Message::CnBind(_) => MessageType::CnBind,
            Message::BindReply(_) => MessageType::BindReply,
            Message::Unbind => MessageType::Unbind,
            Message::Allocate(_) => MessageType::Allocate,
            Message::Locate(_) => MessageType::Locate,
            Message::Binding(_) => MessageType::Binding,
            Message::Move(_) => MessageType::Move,
            Message::Redirect(_) => MessageType::Redirect,
            Message::Withdraw(_) => MessageType::Withdraw,
            Message::Release(_) => MessageType::Release,
            Message::Offer(_) => MessageType::Offer,
            Message::Commit(_) => MessageType::Commit,
            Message::ListCns => MessageType::ListCns,
            Message::CnList(_) => MessageType::CnList,
            Message::Status => MessageType::Status,
            Message::StatusReply(_) => MessageType::StatusReply,
            Message::RegisterStatus => MessageType::RegisterStatus,
            Message::RegisterStatusReply(_) => MessageType::RegisterStatusReply,
            Message::ReplSubscribe(_) => MessageType::ReplSubscribe,
            Message::ReplSnapshot(_) => MessageType::ReplSnapshot,
            Message::ReplRecords(_) => MessageType::ReplRecords,
        }
    }

    pub fn kind(&self) -> Kind {
        self.msg_type().kind()
    }

    /// Shorthand for an `Error` reply.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Message {
        Message::Error(ErrorReply::new(code, text))
    }

    /// Parse a body of message type `t`.
    pub fn parse(t: u16, body: &[u8]) -> Result<Message, WireError> {
        let ty = MessageType::from_u16(t).ok_or(WireError::UnknownType(t))?;
        let empty = |m: Message| {
            if body.is_empty() {
                Ok(m)
            } else {
                Err(WireError::TrailingBytes(body.len()))
            }
        };
        let nonce = || -> Result<u64, WireError> {
            let mut r = Reader::new(body);
            let n = r.u64()?;
            r.finish()?;
            Ok(n)
        };
        Ok(match ty {
            MessageType::Hello => Message::Hello(Hello::parse(body)?),
            MessageType::Error => Message::Error(ErrorReply::parse(body)?),
            MessageType::Ack => return empty(Message::Ack),
            MessageType::Ping => Message::Ping { nonce: nonce()? },
            MessageType::Pong => Message::Pong { nonce: nonce()? },
            MessageType::CnBind => Message::CnBind(CnBind::parse(body)?),
            MessageType::BindReply => Message::BindReply(BindReply::parse(body)?),
            MessageType::Unbind => return empty(Message::Unbind),
            MessageType::Allocate => Message::Allocate(Allocate::parse(body)?),
            MessageType::Locate => Message::Locate(Locate::parse(body)?),
            MessageType::Binding => Message::Binding(Binding::parse(body)?),
            MessageType::Move => Message::Move(Move::parse(body)?),
            MessageType::Redirect => Message::Redirect(Redirect::parse(body)?),
            MessageType::Withdraw => Message::Withdraw(Withdraw::parse(body)?),
            MessageType::Release => Message::Release(Release::parse(body)?),
            MessageType::Offer => Message::Offer(Allocate::parse(body)?),
            MessageType::Commit => Message::Commit(Commit::parse(body)?),
            MessageType::ListCns => return empty(Message::ListCns),
            MessageType::CnList => Message::CnList(CnList::parse(body)?),
            MessageType::Status => return empty(Message::Status),
            MessageType::StatusReply => Message::StatusReply(StatusReply::parse(body)?),
            MessageType::RegisterStatus => return empty(Message::RegisterStatus),
            MessageType::RegisterStatusReply => {
                Message::RegisterStatusReply(RegisterStatusReply::parse(body)?)
            }
            MessageType::ReplSubscribe => Message::ReplSubscribe(ReplSubscribe::parse(body)?),
            MessageType::ReplSnapshot => Message::ReplSnapshot(ReplSnapshot::parse(body)?),
            MessageType::ReplRecords => Message::ReplRecords(ReplRecords::parse(body)?),
        })
    }

    /// Check what `emit` cannot express (string lengths, list sizes).
    pub fn validate(&self) -> Result<(), WireError> {
        match self {
            Message::Hello(m) => m.validate(),
            Message::Error(m) => m.validate(),
            Message::CnBind(m) => m.validate(),
            Message::BindReply(m) => m.validate(),
            Message::CnList(m) => m.validate(),
            Message::StatusReply(m) => m.validate(),
            Message::ReplSnapshot(m) => m.validate(),
            Message::ReplRecords(m) => m.validate(),
            _ => Ok(()),
        }
    }

    /// Body length in bytes.
    pub fn buffer_len(&self) -> usize {
        match self {
            Message::Hello(m) => m.buffer_len(),
            Message::Error(m) => m.buffer_len(),
            Message::Ack
            | Message::Unbind
            | Message::ListCns
            | Message::Status
            | Message::RegisterStatus => 0,
            Message::Ping { .. } | Message::Pong { .. } => 8,
            Message::CnBind(m) => m.buffer_len(),
            Message::BindReply(m) => m.buffer_len(),
            Message::Allocate(m) => m.buffer_len(),
            Message::Locate(m) => m.buffer_len(),
            Message::Binding(m) => m.buffer_len(),
            Message::Move(m) => m.buffer_len(),
            Message::Redirect(m) => m.buffer_len(),
            Message::Withdraw(m) => m.buffer_len(),
            Message::Release(m) => m.buffer_len(),
            Message::Offer(m) => m.buffer_len(),
            Message::Commit(m) => m.buffer_len(),
            Message::CnList(m) => m.buffer_len(),
            Message::StatusReply(m) => m.buffer_len(),
            Message::RegisterStatusReply(m) => m.buffer_len(),
            Message::ReplSubscribe(m) => m.buffer_len(),
            Message::ReplSnapshot(m) => m.buffer_len(),
            Message::ReplRecords(m) => m.buffer_len(),
        }
    }

    /// Write the body into `buf` of exactly `buffer_len()` bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        match self {
            Message::Hello(m) => m.emit(buf),
            Message::Error(m) => m.emit(buf),
            Message::Ack
            | Message::Unbind
            | Message::ListCns
            | Message::Status
            | Message::RegisterStatus => {}
            Message::Ping { nonce } | Message::Pong { nonce } => {
                Writer::new(buf).u64(*nonce);
            }
            Message::CnBind(m) => m.emit(buf),
            Message::BindReply(m) => m.emit(buf),
            Message::Allocate(m) => m.emit(buf),
            Message::Locate(m) => m.emit(buf),
            Message::Binding(m) => m.emit(buf),
            Message::Move(m) => m.emit(buf),
            Message::Redirect(m) => m.emit(buf),
            Message::Withdraw(m) => m.emit(buf),
            Message::Release(m) => m.emit(buf),
            Message::Offer(m) => m.emit(buf),
            Message::Commit(m) => m.emit(buf),
            Message::CnList(m) => m.emit(buf),
            Message::StatusReply(m) => m.emit(buf),
            Message::RegisterStatusReply(m) => m.emit(buf),
            Message::ReplSubscribe(m) => m.emit(buf),
            Message::ReplSnapshot(m) => m.emit(buf),
            Message::ReplRecords(m) => m.emit(buf),
        }
    }
}

/// One line per message, for the debug-level-5 frame log.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Message::Hello(h) => write!(
                f,
                "Hello v{} role {} software {:?}",
                h.version, h.role, h.software
            ),
            Message::Error(e) => write!(f, "Error {}: {}", e.code, e.text),
            Message::Ack => f.write_str("Ack"),
            Message::Ping { nonce } => write!(f, "Ping {nonce:#018x}"),
            Message::Pong { nonce } => write!(f, "Pong {nonce:#018x}"),
            Message::CnBind(b) => {
                write!(
                    f,
                    "CnBind network {:?} cn {:?} at {}:{} pools ",
                    b.network_name, b.cn_name, b.cn_addr, b.cn_port
                )?;
                fmt_pools(f, &b.pools)
            }
            Message::BindReply(BindReply::Accepted {
                lease_time_secs,
                ping_interval_secs,
            }) => write!(
                f,
                "BindReply accepted (lease {lease_time_secs}s, ping every {ping_interval_secs}s)"
            ),
            Message::BindReply(BindReply::Refused { code, text }) => {
                write!(f, "BindReply refused {code}: {text}")
            }
            Message::Unbind => f.write_str("Unbind"),
            Message::Allocate(a) => match a.requested {
                Some(ip) => write!(f, "Allocate {} requested {ip}", a.mac),
                None => write!(f, "Allocate {}", a.mac),
            },
            Message::Locate(Locate::ByMac(m)) => write!(f, "Locate mac {m}"),
            Message::Locate(Locate::ByIp(ip)) => write!(f, "Locate ip {ip}"),
            Message::Binding(b) => {
                write!(
                    f,
                    "Binding {} {} parent {} at {}",
                    b.mac, b.cell, b.parent, b.at
                )?;
                if let Some(p) = b.previous {
                    write!(f, " previous {p}")?;
                }
                write!(f, " lease {}s", b.lease_remaining_secs)
            }
            Message::Move(m) => write!(f, "Move {} {} to {}", m.mac, m.cell, m.to),
            Message::Redirect(m) => write!(f, "Redirect {} {} to {}", m.mac, m.cell, m.to),
            Message::Withdraw(m) => write!(f, "Withdraw {} {}", m.mac, m.cell),
            Message::Release(m) => write!(f, "Release {} {}", m.mac, m.cell),
            Message::Offer(a) => match a.requested {
                Some(ip) => write!(f, "Offer {} requested {ip}", a.mac),
                None => write!(f, "Offer {}", a.mac),
            },
            Message::Commit(m) => write!(f, "Commit {} {}", m.mac, m.cell),
            Message::ListCns => f.write_str("ListCns"),
            Message::CnList(l) => {
                write!(f, "CnList {} entries", l.entries.len())?;
                for e in &l.entries {
                    write!(
                        f,
                        "; {:?} {}:{} {} pools ",
                        e.name,
                        e.addr,
                        e.port,
                        if e.up { "up" } else { "down" }
                    )?;
                    fmt_pools(f, &e.pools)?;
                }
                Ok(())
            }
            Message::Status => f.write_str("Status"),
            Message::StatusReply(s) => write!(
                f,
                "StatusReply uptime {}s cns {}/{} up pools {} bindings {} free cells {} requests {} software {:?}",
                s.uptime_secs, s.cns_up, s.cns, s.pools, s.bindings, s.free_cells, s.requests, s.software
            ),
            Message::RegisterStatus => f.write_str("RegisterStatus"),
            Message::RegisterStatusReply(r) => write!(
                f,
                "RegisterStatusReply epoch {} {} replication {} peer {}",
                r.epoch, r.role, r.replication, r.peer
            ),
            Message::ReplSubscribe(m) => write!(f, "ReplSubscribe epoch {}", m.epoch),
            Message::ReplSnapshot(m) => write!(
                f,
                "ReplSnapshot epoch {} chunk {}{} ({} bytes)",
                m.epoch,
                m.chunk,
                if m.last { " last" } else { "" },
                m.data.len()
            ),
            Message::ReplRecords(m) => write!(
                f,
                "ReplRecords epoch {} seq {} ({} bytes)",
                m.epoch,
                m.seq,
                m.data.len()
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mac(last: u8) -> MacAddr {
        MacAddr([0x02, 0, 0, 0, 0, last])
    }
    fn cell(a: u8, b: u8, c: u8, d: u8) -> Cell30 {
        Cell30::from_network(Ipv4Addr::new(a, b, c, d)).unwrap()
    }
    fn cn(last: u8) -> CnRef {
        CnRef::new(Ipv4Addr::new(10, 0, 0, last), 5554)
    }

    /// Emit `msg`, compare with the hand-written `bytes`, parse them back.
    fn pinned(msg: Message, bytes: &[u8]) {
        assert_eq!(msg.buffer_len(), bytes.len(), "buffer_len of {msg}");
        let mut buf = vec![0u8; msg.buffer_len()];
        msg.emit(&mut buf);
        assert_eq!(buf, bytes, "emit of {msg}");
        assert_eq!(Message::parse(msg.msg_type() as u16, bytes).unwrap(), msg);
        // Every shorter prefix is refused, never a panic.
        for n in 0..bytes.len() {
            assert!(
                Message::parse(msg.msg_type() as u16, &bytes[..n]).is_err(),
                "{msg} prefix {n} accepted"
            );
        }
        // A trailing byte is refused.
        let mut long = bytes.to_vec();
        long.push(0);
        assert!(Message::parse(msg.msg_type() as u16, &long).is_err());
    }

    #[test]
    fn register_status_layout_is_pinned() {
        pinned(Message::RegisterStatus, &[]);
        #[rustfmt::skip]
        let bytes = [
            0x00, 0x00, 0x00, 0x03,       // epoch 3
            0x01,                         // role: primary
            0x03,                         // replication: in sync
            10, 0, 0, 251, 0x19, 0x9a,    // peer 10.0.0.251:6554
        ];
        pinned(
            Message::RegisterStatusReply(RegisterStatusReply {
                epoch: 3,
                role: RegisterRole::Primary,
                replication: ReplicationState::InSync,
                peer: CnRef::new(Ipv4Addr::new(10, 0, 0, 251), 6554),
            }),
            &bytes,
        );
        assert_eq!(ErrorCode::from_u16(14), ErrorCode::NotPrimary);
        pinned(
            Message::ReplSubscribe(ReplSubscribe { epoch: 2 }),
            &[0, 0, 0, 2],
        );
        #[rustfmt::skip]
        let snap = [
            0, 0, 0, 2,                   // epoch 2
            0, 0, 0, 7,                   // chunk 7
            0x01, 0x00,                   // last, reserved
            0x00, 0x03, b'M', b'L', b'R', // 3 bytes of snapshot
        ];
        pinned(
            Message::ReplSnapshot(ReplSnapshot {
                epoch: 2,
                chunk: 7,
                last: true,
                data: b"MLR".to_vec(),
            }),
            &snap,
        );
        #[rustfmt::skip]
        let recs = [
            0, 0, 0, 2,                   // epoch 2
            0, 0, 0, 0, 0, 0, 0x01, 0x00, // seq 256
            0x00, 0x02, 0xab, 0xcd,       // 2 bytes of records
        ];
        pinned(
            Message::ReplRecords(ReplRecords {
                epoch: 2,
                seq: 256,
                data: vec![0xab, 0xcd],
            }),
            &recs,
        );
        // Unknown snapshot flags are refused.
        let mut bad = snap;
        bad[8] = 2;
        assert!(Message::parse(0x0043, &bad).is_err());
        assert_eq!(ErrorCode::NotPrimary.to_u16(), 14);
        assert_eq!(ErrorCode::from_u16(15), ErrorCode::Quota);
        assert_eq!(ErrorCode::Quota.to_u16(), 15);
    }

    #[test]
    fn locate_layout_is_pinned() {
        pinned(
            Message::Locate(Locate::ByMac(MacAddr([0, 0x11, 0x22, 0x33, 0x44, 0x55]))),
            &[0x01, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
        );
        pinned(
            Message::Locate(Locate::ByIp(Ipv4Addr::new(10, 13, 102, 5))),
            &[0x02, 0x00, 10, 13, 102, 5],
        );
    }

    #[test]
    fn binding_layout_is_pinned() {
        #[rustfmt::skip]
        let bytes = [
            0x02, 0, 0, 0, 0, 0x01,       // mac
            0x01, 0x00,                   // flags: previous present, reserved
            10, 13, 102, 4,               // cell
            10, 0, 0, 1, 0x15, 0xb2,      // parent 10.0.0.1:5554
            10, 0, 0, 2, 0x15, 0xb2,      // at
            10, 0, 0, 3, 0x15, 0xb2,      // previous
            0x00, 0x00, 0x0e, 0x10,       // lease 3600 s
        ];
        pinned(
            Message::Binding(Binding {
                mac: mac(1),
                cell: cell(10, 13, 102, 4),
                parent: cn(1),
                at: cn(2),
                previous: Some(cn(3)),
                lease_remaining_secs: 3600,
            }),
            &bytes,
        );
        #[rustfmt::skip]
        let no_prev = [
            0x02, 0, 0, 0, 0, 0x01, 0x00, 0x00, 10, 13, 102, 4,
            10, 0, 0, 1, 0x15, 0xb2, 10, 0, 0, 1, 0x15, 0xb2,
            0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x3c,
        ];
        pinned(
            Message::Binding(Binding {
                mac: mac(1),
                cell: cell(10, 13, 102, 4),
                parent: cn(1),
                at: cn(1),
                previous: None,
                lease_remaining_secs: 60,
            }),
            &no_prev,
        );
    }

    #[test]
    fn cn_bind_layout_is_pinned() {
        #[rustfmt::skip]
        let bytes = [
            3, b'n', b'e', b't',                // network name
            3, b'c', b'n', b'1',                // cn name
            10, 0, 0, 1, 0x15, 0xb2,            // cn address, port 5554
            0x00, 0x01,                         // one pool
            10, 13, 102, 0, 10, 13, 102, 255,   // first, last
        ];
        pinned(
            Message::CnBind(CnBind {
                network_name: "net".into(),
                cn_name: "cn1".into(),
                cn_addr: Ipv4Addr::new(10, 0, 0, 1),
                cn_port: 5554,
                pools: vec![Pool {
                    first: Ipv4Addr::new(10, 13, 102, 0),
                    last: Ipv4Addr::new(10, 13, 102, 255),
                }],
            }),
            &bytes,
        );
    }

    #[test]
    fn small_messages_layouts_are_pinned() {
        pinned(
            Message::error(ErrorCode::NotFound, "no"),
            &[0x00, 0x05, 2, b'n', b'o'],
        );
        pinned(
            Message::Allocate(Allocate {
                mac: mac(1),
                requested: Some(Ipv4Addr::new(10, 13, 102, 5)),
            }),
            &[2, 0, 0, 0, 0, 1, 0x01, 0x00, 10, 13, 102, 5],
        );
        pinned(
            Message::Allocate(Allocate {
                mac: mac(1),
                requested: None,
            }),
            &[2, 0, 0, 0, 0, 1, 0x00, 0x00, 0, 0, 0, 0],
        );
        pinned(
            Message::BindReply(BindReply::Accepted {
                lease_time_secs: 86400,
                ping_interval_secs: 30,
            }),
            &[0x00, 0x00, 0x00, 0x1e, 0x00, 0x01, 0x51, 0x80],
        );
        pinned(
            Message::BindReply(BindReply::Refused {
                code: ErrorCode::WrongNetwork,
                text: "x".into(),
            }),
            &[0x01, 0x00, 0x00, 0x03, 1, b'x'],
        );
        pinned(
            Message::Ping {
                nonce: 0x0102030405060708,
            },
            &[1, 2, 3, 4, 5, 6, 7, 8],
        );
        pinned(
            Message::Move(Move {
                mac: mac(9),
                cell: cell(10, 13, 102, 8),
                to: cn(2),
            }),
            &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8, 10, 0, 0, 2, 0x15, 0xb2],
        );
        pinned(
            Message::Redirect(Redirect {
                mac: mac(9),
                cell: cell(10, 13, 102, 8),
                to: cn(2),
            }),
            &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8, 10, 0, 0, 2, 0x15, 0xb2],
        );
        pinned(
            Message::Withdraw(Withdraw {
                mac: mac(9),
                cell: cell(10, 13, 102, 8),
            }),
            &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8],
        );
        pinned(
            Message::Release(Release {
                mac: mac(9),
                cell: cell(10, 13, 102, 8),
            }),
            &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8],
        );
    }

    #[test]
    fn hello_status_and_cn_list_layouts_are_pinned() {
        let mut hello = vec![0x01, 0x02, 0x00, 0x00];
        hello.extend_from_slice(&[0xaa; 16]);
        hello.extend_from_slice(&[3, b'a', b'b', b'c']);
        pinned(
            Message::Hello(Hello {
                version: 1,
                role: Role::Cn,
                nonce: [0xaa; 16],
                software: "abc".into(),
            }),
            &hello,
        );
        #[rustfmt::skip]
        let status = [
            0, 0, 0, 10,  0, 0, 0, 2,  0, 0, 0, 1,  0, 0, 0, 3,
            0, 0, 0, 4,  0, 0, 0, 5,  0, 0, 0, 0, 0, 0, 0, 6,
            1, b'm',
        ];
        pinned(
            Message::StatusReply(StatusReply {
                uptime_secs: 10,
                cns: 2,
                cns_up: 1,
                pools: 3,
                bindings: 4,
                free_cells: 5,
                requests: 6,
                software: "m".into(),
            }),
            &status,
        );
        #[rustfmt::skip]
        let list = [
            0x00, 0x02,
            2, b'c', b'1', 10, 0, 0, 1, 0x15, 0xb2, 1, 0x00, 0x01, 10, 1, 0, 0, 10, 1, 0, 255,
            2, b'c', b'2', 10, 0, 0, 2, 0x15, 0xb2, 0, 0x00, 0x00,
        ];
        pinned(
            Message::CnList(CnList {
                entries: vec![
                    CnEntry {
                        name: "c1".into(),
                        addr: Ipv4Addr::new(10, 0, 0, 1),
                        port: 5554,
                        up: true,
                        pools: vec![Pool {
                            first: Ipv4Addr::new(10, 1, 0, 0),
                            last: Ipv4Addr::new(10, 1, 0, 255),
                        }],
                    },
                    CnEntry {
                        name: "c2".into(),
                        addr: Ipv4Addr::new(10, 0, 0, 2),
                        port: 5554,
                        up: false,
                        pools: vec![],
                    },
                ],
            }),
            &list,
        );
        for m in [
            Message::Ack,
            Message::Unbind,
            Message::ListCns,
            Message::Status,
        ] {
            pinned(m, &[]);
        }
    }

    #[test]
    fn parse_rejects_what_it_does_not_understand() {
        // Misaligned cell.
        assert_eq!(
            Message::parse(0x0026, &[2, 0, 0, 0, 0, 9, 10, 13, 102, 9]),
            Err(WireError::Malformed("cell not /30-aligned"))
        );
        // Unknown locate key, unknown role, unknown bind status.
        assert!(Message::parse(0x0021, &[3, 0, 1, 2, 3, 4]).is_err());
        let mut hello = vec![1, 9, 0, 0];
        hello.extend_from_slice(&[0; 16]);
        hello.push(0);
        assert!(Message::parse(0x0001, &hello).is_err());
        assert!(Message::parse(0x0011, &[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
        // Pool with first > last.
        let bind = [
            0, 0, 10, 0, 0, 1, 0x15, 0xb2, 0, 1, 10, 0, 0, 9, 10, 0, 0, 1,
        ];
        assert!(Message::parse(0x0010, &bind).is_err());
        // Over-long string and bad UTF-8.
        let mut long = vec![65u8];
        long.extend_from_slice(&[b'a'; 65]);
        assert!(matches!(
            Message::parse(0x0010, &long),
            Err(WireError::StringTooLong(..))
        ));
        assert_eq!(
            Message::parse(0x0002, &[0, 1, 1, 0xff]),
            Err(WireError::BadUtf8("text"))
        );
        // Too many pools / entries are refused before allocating.
        assert!(matches!(
            Message::parse(0x0010, &[0, 0, 10, 0, 0, 1, 0x15, 0xb2, 0xff, 0xff]),
            Err(WireError::TooMany("pools", 65535))
        ));
        assert!(matches!(
            Message::parse(0x0031, &[0xff, 0xff]),
            Err(WireError::TooMany(..))
        ));
        // A count the body cannot hold.
        assert_eq!(
            Message::parse(0x0031, &[0x00, 0x10]),
            Err(WireError::Truncated)
        );
        // Unknown type.
        assert_eq!(
            Message::parse(0x7777, &[]),
            Err(WireError::UnknownType(0x7777))
        );
        // Flag bits set without their field, reserved bytes set.
        assert!(Message::parse(0x0020, &[2, 0, 0, 0, 0, 1, 0, 0, 10, 0, 0, 1]).is_err());
        assert!(Message::parse(0x0020, &[2, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]).is_err());
    }

    #[test]
    fn validate_refuses_what_cannot_be_encoded() {
        let m = Message::CnBind(CnBind {
            network_name: "n".repeat(65),
            cn_name: String::new(),
            cn_addr: Ipv4Addr::LOCALHOST,
            cn_port: 1,
            pools: vec![],
        });
        assert!(matches!(m.validate(), Err(WireError::StringTooLong(..))));
        let mut e = ErrorReply::new(ErrorCode::Internal, "é".repeat(200));
        assert!(e.text.len() <= MAX_TEXT_LEN);
        assert!(Message::Error(e.clone()).validate().is_ok());
        e.text = "x".repeat(300);
        assert!(Message::Error(e).validate().is_err());
    }

    #[test]
    fn display_is_one_readable_line() {
        let m = Message::Binding(Binding {
            mac: mac(1),
            cell: cell(10, 13, 102, 4),
            parent: cn(1),
            at: cn(2),
            previous: None,
            lease_remaining_secs: 5,
        });
        assert_eq!(
            m.to_string(),
            "Binding 02:00:00:00:00:01 10.13.102.4/30 parent 10.0.0.1:5554 at 10.0.0.2:5554 lease 5s"
        );
    }
}
