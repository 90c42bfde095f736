//! MLRP messages, declared once each. The [`messages!`] table at the end
//! gives every message its type code, its kind (handshake, request,
//! reply), its name and its body type; each body type implements [`Body`]
//! (its layout: `read`, `write`, `buffer_len`, `validate`, and the log
//! line). [`Message`], [`MessageType`] and their dispatch (`parse`,
//! `emit`, `buffer_len`, `validate`, `Display`) are generated from that
//! table, the way quinn-proto's `frame.rs` declares its frame types: a new
//! message is one table row and one `Body`. Layouts are pinned in
//! `docs/MLRP.md` and by the byte-literal tests in `message_tests.rs`.
//!
//! Builds on `codec` (field encodings, [`WireError`]) and `frame` (header
//! sizes, for [`MAX_HELLO_FRAME_LEN`]); neither knows any message.

use super::codec::{check_pools, check_str, fmt_pools, str_len, Reader, Writer};
use super::frame::{HEADER_LEN, MAC_LEN};
use crate::addr::{Cell30, MacAddr};
use core::fmt;
use std::net::Ipv4Addr;

pub use super::codec::{
    truncate_utf8, CnRef, Pool, WireError, MAX_NAME_LEN, MAX_POOLS, MAX_TEXT_LEN,
};

/// Most entries in one `CnList`.
pub const MAX_CN_ENTRIES: usize = 1024;

/// The largest valid Hello frame: header, a Hello body with the longest
/// software name, and the HMAC trailer. Until the peer's Hello is accepted
/// nothing longer is valid, so a longer `length` is refused from the
/// header and an unauthenticated peer can make the receiver buffer at most
/// this much (docs/SECURITY.md).
pub const MAX_HELLO_FRAME_LEN: usize = HEADER_LEN + Hello::MAX_BODY_LEN + MAC_LEN;

/// One message body: its wire layout, written once. `read` and `write`
/// walk the fields in the same order; `buffer_len` is what `write` writes.
pub trait Body {
    /// Read the fields; [`Body::parse`] then refuses leftover bytes.
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError>
    where
        Self: Sized;
    /// Write the fields into exactly [`Body::buffer_len`] bytes.
    fn write(&self, w: &mut Writer<'_>);
    fn buffer_len(&self) -> usize;
    /// Refuse what `write` cannot express (string lengths, list sizes).
    fn validate(&self) -> Result<(), WireError> {
        Ok(())
    }
    /// The log line after the message's name, starting with a space
    /// (nothing for an empty body).
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result;

    /// Parse a whole body: short or trailing bytes, unknown enum values,
    /// misaligned cells, over-long strings and lists are refused.
    fn parse(body: &[u8]) -> Result<Self, WireError>
    where
        Self: Sized,
    {
        let mut r = Reader::new(body);
        let v = Self::read(&mut r)?;
        r.finish()?;
        Ok(v)
    }
    /// Write the body into `buf` of exactly `buffer_len()` bytes.
    fn emit(&self, buf: &mut [u8]) {
        self.write(&mut Writer::new(buf))
    }
}

/// Bodies without fields (`Ack`, `Unbind`, `ListCns`, `Status`,
/// `RegisterStatus`).
impl Body for () {
    fn read(_: &mut Reader<'_>) -> Result<(), WireError> {
        Ok(())
    }
    fn write(&self, _: &mut Writer<'_>) {}
    fn buffer_len(&self) -> usize {
        0
    }
    fn describe(&self, _: &mut fmt::Formatter<'_>) -> fmt::Result {
        Ok(())
    }
}

/// The nonce of `Ping` and `Pong`.
impl Body for u64 {
    fn read(r: &mut Reader<'_>) -> Result<u64, WireError> {
        r.u64()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u64(*self)
    }
    fn buffer_len(&self) -> usize {
        8
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {self:#018x}")
    }
}

// ---------------------------------------------------------------------------
// Enumerated values

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

// ---------------------------------------------------------------------------
// Message bodies

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
}

impl Body for Hello {
    fn read(r: &mut Reader<'_>) -> Result<Hello, WireError> {
        let version = r.u8()?;
        let role = Role::from_u8(r.u8()?).ok_or(WireError::Malformed("unknown role"))?;
        r.zero("hello reserved byte")?;
        r.zero("hello reserved byte")?;
        Ok(Hello {
            version,
            role,
            nonce: r.array()?,
            software: r.string("software", MAX_NAME_LEN)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u8(self.version);
        w.u8(self.role as u8);
        w.u16(0);
        w.put(&self.nonce);
        w.string(&self.software);
    }
    fn buffer_len(&self) -> usize {
        4 + 16 + str_len(&self.software)
    }
    fn validate(&self) -> Result<(), WireError> {
        check_str("software", &self.software, MAX_NAME_LEN)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " v{} role {} software {:?}",
            self.version, self.role, self.software
        )
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
}

impl Body for ErrorReply {
    fn read(r: &mut Reader<'_>) -> Result<ErrorReply, WireError> {
        Ok(ErrorReply {
            code: ErrorCode::from_u16(r.u16()?),
            text: r.string("text", MAX_TEXT_LEN)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.code.to_u16());
        w.string(&self.text);
    }
    fn buffer_len(&self) -> usize {
        2 + str_len(&self.text)
    }
    fn validate(&self) -> Result<(), WireError> {
        check_str("text", &self.text, MAX_TEXT_LEN)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {}: {}", self.code, self.text)
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
    pub fn cn_ref(&self) -> CnRef {
        CnRef::new(self.cn_addr, self.cn_port)
    }
}

impl Body for CnBind {
    fn read(r: &mut Reader<'_>) -> Result<CnBind, WireError> {
        Ok(CnBind {
            network_name: r.string("network_name", MAX_NAME_LEN)?,
            cn_name: r.string("cn_name", MAX_NAME_LEN)?,
            cn_addr: r.ipv4()?,
            cn_port: r.u16()?,
            pools: r.pools()?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.string(&self.network_name);
        w.string(&self.cn_name);
        w.ipv4(self.cn_addr);
        w.u16(self.cn_port);
        w.pools(&self.pools);
    }
    fn buffer_len(&self) -> usize {
        str_len(&self.network_name) + str_len(&self.cn_name) + 6 + 2 + 8 * self.pools.len()
    }
    fn validate(&self) -> Result<(), WireError> {
        check_str("network_name", &self.network_name, MAX_NAME_LEN)?;
        check_str("cn_name", &self.cn_name, MAX_NAME_LEN)?;
        check_pools(&self.pools)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " network {:?} cn {:?} at {}:{} pools ",
            self.network_name, self.cn_name, self.cn_addr, self.cn_port
        )?;
        fmt_pools(f, &self.pools)
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

impl Body for BindReply {
    fn read(r: &mut Reader<'_>) -> Result<BindReply, WireError> {
        match r.u8()? {
            0 => {
                r.zero("bind reply reserved byte")?;
                let ping_interval_secs = r.u16()?;
                let lease_time_secs = r.u32()?;
                Ok(BindReply::Accepted {
                    lease_time_secs,
                    ping_interval_secs,
                })
            }
            1 => {
                r.zero("bind reply reserved byte")?;
                let code = ErrorCode::from_u16(r.u16()?);
                let text = r.string("text", MAX_TEXT_LEN)?;
                Ok(BindReply::Refused { code, text })
            }
            _ => Err(WireError::Malformed("unknown bind status")),
        }
    }
    fn write(&self, w: &mut Writer<'_>) {
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
    fn buffer_len(&self) -> usize {
        match self {
            BindReply::Accepted { .. } => 8,
            BindReply::Refused { text, .. } => 4 + str_len(text),
        }
    }
    fn validate(&self) -> Result<(), WireError> {
        match self {
            BindReply::Accepted { .. } => Ok(()),
            BindReply::Refused { text, .. } => check_str("text", text, MAX_TEXT_LEN),
        }
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindReply::Accepted {
                lease_time_secs,
                ping_interval_secs,
            } => write!(
                f,
                " accepted (lease {lease_time_secs}s, ping every {ping_interval_secs}s)"
            ),
            BindReply::Refused { code, text } => write!(f, " refused {code}: {text}"),
        }
    }
}

/// Ask for the /30 of a station (DHCP): the existing one for a known MAC,
/// else a new one, `requested` if it is free (a DHCP REQUEST for a
/// remembered address), else any. Also the body of `Offer`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Allocate {
    pub mac: MacAddr,
    pub requested: Option<Ipv4Addr>,
}

impl Body for Allocate {
    fn read(r: &mut Reader<'_>) -> Result<Allocate, WireError> {
        let mac = r.mac()?;
        let flags = r.u8()?;
        r.zero("allocate reserved byte")?;
        let ip = r.ipv4()?;
        let requested = match flags {
            0 if ip.is_unspecified() => None,
            0 => return Err(WireError::Malformed("requested address without its flag")),
            1 => Some(ip),
            _ => return Err(WireError::Malformed("unknown allocate flags")),
        };
        Ok(Allocate { mac, requested })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.mac(self.mac);
        w.u8(self.requested.is_some() as u8);
        w.u8(0);
        w.ipv4(self.requested.unwrap_or(Ipv4Addr::UNSPECIFIED));
    }
    fn buffer_len(&self) -> usize {
        12
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.requested {
            Some(ip) => write!(f, " {} requested {ip}", self.mac),
            None => write!(f, " {}", self.mac),
        }
    }
}

/// Find a station's binding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Locate {
    ByMac(MacAddr),
    /// Any of the four addresses of its /30.
    ByIp(Ipv4Addr),
}

impl Body for Locate {
    fn read(r: &mut Reader<'_>) -> Result<Locate, WireError> {
        let kind = r.u8()?;
        r.zero("locate reserved byte")?;
        match kind {
            1 => Ok(Locate::ByMac(r.mac()?)),
            2 => Ok(Locate::ByIp(r.ipv4()?)),
            _ => Err(WireError::Malformed("unknown locate key")),
        }
    }
    fn write(&self, w: &mut Writer<'_>) {
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
    fn buffer_len(&self) -> usize {
        match self {
            Locate::ByMac(_) => 8,
            Locate::ByIp(_) => 6,
        }
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Locate::ByMac(m) => write!(f, " mac {m}"),
            Locate::ByIp(ip) => write!(f, " ip {ip}"),
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

impl Body for Binding {
    fn read(r: &mut Reader<'_>) -> Result<Binding, WireError> {
        let mac = r.mac()?;
        let flags = r.u8()?;
        r.zero("binding reserved byte")?;
        let cell = r.cell()?;
        let parent = r.cnref()?;
        let at = r.cnref()?;
        let prev = r.cnref()?;
        let lease_remaining_secs = r.u32()?;
        let previous = match flags {
            0 if prev == CnRef::NONE => None,
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
    fn write(&self, w: &mut Writer<'_>) {
        w.mac(self.mac);
        w.u8(self.previous.is_some() as u8);
        w.u8(0);
        w.cell(self.cell);
        w.cnref(self.parent);
        w.cnref(self.at);
        w.cnref(self.previous.unwrap_or(CnRef::NONE));
        w.u32(self.lease_remaining_secs);
    }
    fn buffer_len(&self) -> usize {
        34
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " {} {} parent {} at {}",
            self.mac, self.cell, self.parent, self.at
        )?;
        if let Some(p) = self.previous {
            write!(f, " previous {p}")?;
        }
        write!(f, " lease {}s", self.lease_remaining_secs)
    }
}

/// A fixed-size field of the station bodies below.
trait Field: Sized {
    const LEN: usize;
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError>;
    fn write(&self, w: &mut Writer<'_>);
}

impl Field for MacAddr {
    const LEN: usize = 6;
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.mac()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.mac(*self)
    }
}

impl Field for Cell30 {
    const LEN: usize = 4;
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.cell()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.cell(*self)
    }
}

impl Field for CnRef {
    const LEN: usize = 6;
    fn read(r: &mut Reader<'_>) -> Result<Self, WireError> {
        r.cnref()
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.cnref(*self)
    }
}

/// Bodies that are a station's fixed fields in order: the struct and its
/// `Body`, from the field list (`=> "label "` prefixes a field in the log
/// line).
macro_rules! station_bodies {
    ($(
        $(#[$doc:meta])*
        $name:ident { $($field:ident: $ty:ty $(=> $label:literal)?),* };
    )*) => {$(
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub struct $name {
            $(pub $field: $ty,)*
        }

        impl Body for $name {
            fn read(r: &mut Reader<'_>) -> Result<$name, WireError> {
                Ok($name {
                    $($field: <$ty as Field>::read(r)?,)*
                })
            }
            fn write(&self, w: &mut Writer<'_>) {
                $(Field::write(&self.$field, w);)*
            }
            fn buffer_len(&self) -> usize {
                0 $(+ <$ty as Field>::LEN)*
            }
            fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                $(write!(f, concat!(" ", $($label,)? "{}"), self.$field)?;)*
                Ok(())
            }
        }
    )*};
}

station_bodies! {
    /// CN -> MLR: the station is now at CN `to`.
    Move { mac: MacAddr, cell: Cell30, to: CnRef => "to " };
    /// MLR (or CN) -> parent CN: route the cell to CN `to` (back to local
    /// delivery when `to` is the parent itself).
    Redirect { mac: MacAddr, cell: Cell30, to: CnRef => "to " };
    /// MLR -> previous CN: the station left you; drop its routes and addresses.
    Withdraw { mac: MacAddr, cell: Cell30 };
    /// CN -> MLR: free the station's cell (DHCP RELEASE).
    Release { mac: MacAddr, cell: Cell30 };
    /// CN -> MLR on a DHCP REQUEST: bind the /30 held for `mac` by an earlier
    /// `Offer`, or renew its binding, for the lease; the station is at the
    /// requesting CN when the cell was only held.
    Commit { mac: MacAddr, cell: Cell30 };
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
    /// The fewest bytes an entry takes (empty name, no pools).
    const MIN_LEN: usize = 1 + 4 + 2 + 1 + 2;
    fn buffer_len(&self) -> usize {
        str_len(&self.name) + 4 + 2 + 1 + 2 + 8 * self.pools.len()
    }
}

/// The MLR's list of bound CNs (reply to `ListCns`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CnList {
    pub entries: Vec<CnEntry>,
}

impl Body for CnList {
    fn read(r: &mut Reader<'_>) -> Result<CnList, WireError> {
        let n = r.u16()? as usize;
        if n > MAX_CN_ENTRIES {
            return Err(WireError::TooMany("cn entries", n));
        }
        // Refuse counts the body cannot hold before reserving memory.
        if r.remaining() < n * CnEntry::MIN_LEN {
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
        Ok(CnList { entries })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u16(self.entries.len().min(u16::MAX as usize) as u16);
        for e in &self.entries {
            w.string(&e.name);
            w.ipv4(e.addr);
            w.u16(e.port);
            w.u8(e.up as u8);
            w.pools(&e.pools);
        }
    }
    fn buffer_len(&self) -> usize {
        2 + self.entries.iter().map(CnEntry::buffer_len).sum::<usize>()
    }
    fn validate(&self) -> Result<(), WireError> {
        if self.entries.len() > MAX_CN_ENTRIES {
            return Err(WireError::TooMany("cn entries", self.entries.len()));
        }
        for e in &self.entries {
            check_str("cn name", &e.name, MAX_NAME_LEN)?;
            check_pools(&e.pools)?;
        }
        Ok(())
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " {} entries", self.entries.len())?;
        for e in &self.entries {
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

impl Body for StatusReply {
    fn read(r: &mut Reader<'_>) -> Result<StatusReply, WireError> {
        Ok(StatusReply {
            uptime_secs: r.u32()?,
            cns: r.u32()?,
            cns_up: r.u32()?,
            pools: r.u32()?,
            bindings: r.u32()?,
            free_cells: r.u32()?,
            requests: r.u64()?,
            software: r.string("software", MAX_NAME_LEN)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.uptime_secs);
        w.u32(self.cns);
        w.u32(self.cns_up);
        w.u32(self.pools);
        w.u32(self.bindings);
        w.u32(self.free_cells);
        w.u64(self.requests);
        w.string(&self.software);
    }
    fn buffer_len(&self) -> usize {
        6 * 4 + 8 + str_len(&self.software)
    }
    fn validate(&self) -> Result<(), WireError> {
        check_str("software", &self.software, MAX_NAME_LEN)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " uptime {}s cns {}/{} up pools {} bindings {} free cells {} requests {} software {:?}",
            self.uptime_secs,
            self.cns_up,
            self.cns,
            self.pools,
            self.bindings,
            self.free_cells,
            self.requests,
            self.software
        )
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

impl Body for RegisterStatusReply {
    fn read(r: &mut Reader<'_>) -> Result<RegisterStatusReply, WireError> {
        Ok(RegisterStatusReply {
            epoch: r.u32()?,
            role: RegisterRole::from_u8(r.u8()?),
            replication: ReplicationState::from_u8(r.u8()?),
            peer: r.cnref()?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.epoch);
        w.u8(self.role.to_u8());
        w.u8(self.replication.to_u8());
        w.cnref(self.peer);
    }
    fn buffer_len(&self) -> usize {
        12
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " epoch {} {} replication {} peer {}",
            self.epoch, self.role, self.replication, self.peer
        )
    }
}

/// Most journal bytes one replication frame carries (frames are at most
/// 64 KiB).
pub const MAX_REPL_DATA: usize = 60_000;

fn read_repl_data(r: &mut Reader<'_>) -> Result<Vec<u8>, WireError> {
    let n = r.u16()? as usize;
    if n > MAX_REPL_DATA {
        return Err(WireError::TooMany("replication bytes", n));
    }
    Ok(r.take(n)?.to_vec())
}

fn check_repl_data(data: &[u8]) -> Result<(), WireError> {
    if data.len() > MAX_REPL_DATA {
        return Err(WireError::TooMany("replication bytes", data.len()));
    }
    Ok(())
}

/// Backup -> primary: stream your register to me. `epoch` is the
/// backup's; the primary answers `Ack` and then sends a snapshot
/// (`ReplSnapshot` chunks) and every later journal record
/// (`ReplRecords`), or `Error{NotPrimary}` when it does not serve.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReplSubscribe {
    pub epoch: u32,
}

impl Body for ReplSubscribe {
    fn read(r: &mut Reader<'_>) -> Result<ReplSubscribe, WireError> {
        Ok(ReplSubscribe { epoch: r.u32()? })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.epoch);
    }
    fn buffer_len(&self) -> usize {
        4
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, " epoch {}", self.epoch)
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

impl Body for ReplSnapshot {
    fn read(r: &mut Reader<'_>) -> Result<ReplSnapshot, WireError> {
        let epoch = r.u32()?;
        let chunk = r.u32()?;
        let flags = r.u8()?;
        if flags & !1 != 0 {
            return Err(WireError::Malformed("unknown snapshot flags"));
        }
        r.zero("reserved byte")?;
        Ok(ReplSnapshot {
            epoch,
            chunk,
            last: flags & 1 != 0,
            data: read_repl_data(r)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.epoch);
        w.u32(self.chunk);
        w.u8(u8::from(self.last));
        w.u8(0);
        w.u16(self.data.len() as u16);
        w.put(&self.data);
    }
    fn buffer_len(&self) -> usize {
        12 + self.data.len()
    }
    fn validate(&self) -> Result<(), WireError> {
        check_repl_data(&self.data)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " epoch {} chunk {}{} ({} bytes)",
            self.epoch,
            self.chunk,
            if self.last { " last" } else { "" },
            self.data.len()
        )
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

impl Body for ReplRecords {
    fn read(r: &mut Reader<'_>) -> Result<ReplRecords, WireError> {
        Ok(ReplRecords {
            epoch: r.u32()?,
            seq: r.u64()?,
            data: read_repl_data(r)?,
        })
    }
    fn write(&self, w: &mut Writer<'_>) {
        w.u32(self.epoch);
        w.u64(self.seq);
        w.u16(self.data.len() as u16);
        w.put(&self.data);
    }
    fn buffer_len(&self) -> usize {
        14 + self.data.len()
    }
    fn validate(&self) -> Result<(), WireError> {
        check_repl_data(&self.data)
    }
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            " epoch {} seq {} ({} bytes)",
            self.epoch,
            self.seq,
            self.data.len()
        )
    }
}

// ---------------------------------------------------------------------------
// The table

/// Whether a message opens the connection, asks or answers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Handshake,
    Request,
    Reply,
}

/// The `Message` variant pattern binding its body to `$b`.
macro_rules! body_pat {
    ($b:ident, $name:ident ($body:ty)) => {
        Message::$name($b)
    };
    ($b:ident, $name:ident { $field:ident }) => {
        Message::$name { $field: $b }
    };
    ($b:ident, $name:ident) => {
        Message::$name
    };
}

/// The body bound by [`body_pat`] (`()` for a variant without one).
macro_rules! body_ref {
    ($b:ident ($body:ty)) => {
        $b
    };
    ($b:ident { $field:ident }) => {
        $b
    };
    ($b:ident) => {
        &()
    };
}

/// Parse `$bytes` as the body of variant `$name`.
macro_rules! body_new {
    ($bytes:ident, $name:ident ($body:ty)) => {
        Message::$name(<$body as Body>::parse($bytes)?)
    };
    ($bytes:ident, $name:ident { $field:ident : $fty:ty }) => {
        Message::$name {
            $field: <$fty as Body>::parse($bytes)?,
        }
    };
    ($bytes:ident, $name:ident) => {{
        <() as Body>::parse($bytes)?;
        Message::$name
    }};
}

/// Declares every message once: `Name(BodyType) = code, Kind;` (or
/// `Name { field: BodyType }`, or `Name` without a body). Generates
/// [`MessageType`] (codes, kinds, names), [`Message`] and the dispatch of
/// `msg_type`, `body` and `parse`; everything else goes through
/// [`Message::body`].
macro_rules! messages {
    ($(
        $(#[$doc:meta])*
        $name:ident $( ($body:ty) )? $( { $field:ident : $fty:ty } )? = $code:literal, $kind:ident;
    )*) => {
        /// Message type codes (the header's `type` field).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u16)]
        pub enum MessageType {
            $( $name = $code, )*
        }

        impl MessageType {
            /// Every type, in table order.
            pub const ALL: &'static [MessageType] = &[$(MessageType::$name,)*];

            pub fn from_u16(v: u16) -> Option<MessageType> {
                match v {
                    $( $code => Some(MessageType::$name), )*
                    _ => None,
                }
            }
            pub fn kind(self) -> Kind {
                match self {
                    $( MessageType::$name => Kind::$kind, )*
                }
            }
            /// The name in docs/MLRP.md and in log lines.
            pub fn name(self) -> &'static str {
                match self {
                    $( MessageType::$name => stringify!($name), )*
                }
            }
        }

        /// Every MLRP message.
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub enum Message {
            $( $(#[$doc])* $name $( ($body) )? $( { $field: $fty } )?, )*
        }

        impl Message {
            pub fn msg_type(&self) -> MessageType {
                match self {
                    $( body_pat!(_b, $name $( ($body) )? $( { $field } )?) => MessageType::$name, )*
                }
            }

            /// The body, whichever the message.
            pub fn body(&self) -> &dyn Body {
                match self {
                    $( body_pat!(b, $name $( ($body) )? $( { $field } )?) => body_ref!(b $( ($body) )? $( { $field } )?), )*
                }
            }

            /// Parse a body of message type `t`.
            pub fn parse(t: u16, bytes: &[u8]) -> Result<Message, WireError> {
                let ty = MessageType::from_u16(t).ok_or(WireError::UnknownType(t))?;
                Ok(match ty {
                    $( MessageType::$name => body_new!(bytes, $name $( ($body) )? $( { $field: $fty } )?), )*
                })
            }
        }
    };
}

messages! {
    Hello(Hello) = 0x0001, Handshake;
    /// Generic failure reply.
    Error(ErrorReply) = 0x0002, Reply;
    /// Generic success reply (to `Unbind`, `Redirect`, `Withdraw`, `Release`).
    Ack = 0x0003, Reply;
    Ping { nonce: u64 } = 0x0004, Request;
    Pong { nonce: u64 } = 0x0005, Reply;
    CnBind(CnBind) = 0x0010, Request;
    BindReply(BindReply) = 0x0011, Reply;
    Unbind = 0x0012, Request;
    Allocate(Allocate) = 0x0020, Request;
    Locate(Locate) = 0x0021, Request;
    Binding(Binding) = 0x0022, Reply;
    Move(Move) = 0x0023, Request;
    Redirect(Redirect) = 0x0024, Request;
    Withdraw(Withdraw) = 0x0025, Request;
    Release(Release) = 0x0026, Request;
    /// Like `Allocate`, but a new station's /30 is only held briefly.
    Offer(Allocate) = 0x0027, Request;
    Commit(Commit) = 0x0028, Request;
    ListCns = 0x0030, Request;
    CnList(CnList) = 0x0031, Reply;
    Status = 0x0032, Request;
    StatusReply(StatusReply) = 0x0033, Reply;
    /// Which register is this, in which epoch, replicating how?
    RegisterStatus = 0x0040, Request;
    RegisterStatusReply(RegisterStatusReply) = 0x0041, Reply;
    ReplSubscribe(ReplSubscribe) = 0x0042, Request;
    ReplSnapshot(ReplSnapshot) = 0x0043, Request;
    ReplRecords(ReplRecords) = 0x0044, Request;
}

impl Message {
    pub fn kind(&self) -> Kind {
        self.msg_type().kind()
    }

    /// Shorthand for an `Error` reply.
    pub fn error(code: ErrorCode, text: impl Into<String>) -> Message {
        Message::Error(ErrorReply::new(code, text))
    }

    /// Check what `emit` cannot express (string lengths, list sizes).
    pub fn validate(&self) -> Result<(), WireError> {
        self.body().validate()
    }

    /// Body length in bytes.
    pub fn buffer_len(&self) -> usize {
        self.body().buffer_len()
    }

    /// Write the body into `buf` of exactly `buffer_len()` bytes.
    pub fn emit(&self, buf: &mut [u8]) {
        self.body().emit(buf)
    }
}

/// One line per message, for the debug-level-5 frame log: the name, then
/// what the body says.
impl fmt::Display for Message {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.msg_type().name())?;
        self.body().describe(f)
    }
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
