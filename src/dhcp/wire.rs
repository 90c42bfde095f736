//! The DHCPv4 message (RFC 2131 §2, options RFC 2132/3442/6842) as a checked
//! view and a `Repr` holding the options TMip uses.
//!
//! Parsing is strict about structure and lenient about content: the fixed
//! header must be whole, the magic cookie right, every option must fit in
//! the buffer and the options TMip reads must have their RFC lengths, else
//! `Err`. Unknown options are skipped; option 52 (overload) is skipped too,
//! so `sname`/`file` are never read as options. When an option appears twice
//! the first one counts. A missing END (255) is tolerated at the buffer's end.

use crate::addr::MacAddr;
use core::fmt;
use std::net::Ipv4Addr;

mod field {
    use core::ops::Range;
    pub const OP: usize = 0;
    pub const HTYPE: usize = 1;
    pub const HLEN: usize = 2;
    pub const HOPS: usize = 3;
    pub const XID: Range<usize> = 4..8;
    pub const SECS: Range<usize> = 8..10;
    pub const FLAGS: Range<usize> = 10..12;
    pub const CIADDR: Range<usize> = 12..16;
    pub const YIADDR: Range<usize> = 16..20;
    pub const SIADDR: Range<usize> = 20..24;
    pub const GIADDR: Range<usize> = 24..28;
    pub const CHADDR: Range<usize> = 28..44;
    // sname 44..108 and file 108..236 stay zero when we emit.
    pub const MAGIC: Range<usize> = 236..240;
    pub const OPTIONS: usize = 240;
}

/// Length of the fixed part including the magic cookie.
pub const HEADER_LEN: usize = field::OPTIONS;
/// Replies are padded to the BOOTP minimum; some clients drop shorter ones.
pub const MIN_MESSAGE_LEN: usize = 300;
pub const SERVER_PORT: u16 = 67;
pub const CLIENT_PORT: u16 = 68;
const MAGIC: [u8; 4] = [99, 130, 83, 99];
const FLAG_BROADCAST: u16 = 0x8000;

/// Option codes TMip reads or writes.
pub mod opt {
    pub const PAD: u8 = 0;
    pub const SUBNET_MASK: u8 = 1;
    pub const ROUTER: u8 = 3;
    pub const DNS: u8 = 6;
    pub const HOSTNAME: u8 = 12;
    pub const DOMAIN_NAME: u8 = 15;
    pub const REQUESTED_IP: u8 = 50;
    pub const LEASE_TIME: u8 = 51;
    pub const OVERLOAD: u8 = 52;
    pub const MESSAGE_TYPE: u8 = 53;
    pub const SERVER_ID: u8 = 54;
    pub const PARAMETER_REQUEST_LIST: u8 = 55;
    pub const MESSAGE: u8 = 56;
    pub const MAX_MESSAGE_SIZE: u8 = 57;
    pub const RENEWAL_TIME: u8 = 58;
    pub const REBINDING_TIME: u8 = 59;
    pub const CLIENT_ID: u8 = 61;
    pub const CLASSLESS_ROUTES: u8 = 121;
    pub const MS_CLASSLESS_ROUTES: u8 = 249;
    pub const END: u8 = 255;
}

/// Why a DHCP message was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// Shorter than the fixed header.
    Truncated,
    /// The magic cookie is not 99.130.83.99 (a BOOTP or garbage packet).
    BadMagic,
    /// Not Ethernet (htype 1, hlen 6).
    UnsupportedHardware,
    /// `op` is neither BOOTREQUEST nor BOOTREPLY.
    BadOp(u8),
    /// No message type option (53): plain BOOTP, which TMip does not serve.
    NoMessageType,
    /// An option runs past the end of the message.
    OptionOverrun(u8),
    /// An option TMip reads has an impossible length or value.
    BadOption(u8, &'static str),
    /// The reply would not fit the buffer or the client's size limit.
    TooLong,
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("message shorter than the 240-byte header"),
            Error::BadMagic => f.write_str("bad magic cookie (not DHCP)"),
            Error::UnsupportedHardware => f.write_str("hardware type is not Ethernet"),
            Error::BadOp(op) => write!(f, "bad op {op}"),
            Error::NoMessageType => f.write_str("no message type option (BOOTP?)"),
            Error::OptionOverrun(c) => write!(f, "option {c} runs past the end"),
            Error::BadOption(c, why) => write!(f, "option {c}: {why}"),
            Error::TooLong => f.write_str("message too long"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Request,
    Reply,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MessageType {
    Discover,
    Offer,
    Request,
    Decline,
    Ack,
    Nak,
    Release,
    Inform,
    Unknown(u8),
}

impl From<u8> for MessageType {
    fn from(v: u8) -> Self {
        match v {
            1 => MessageType::Discover,
            2 => MessageType::Offer,
            3 => MessageType::Request,
            4 => MessageType::Decline,
            5 => MessageType::Ack,
            6 => MessageType::Nak,
            7 => MessageType::Release,
            8 => MessageType::Inform,
            o => MessageType::Unknown(o),
        }
    }
}

impl From<MessageType> for u8 {
    fn from(m: MessageType) -> u8 {
        match m {
            MessageType::Discover => 1,
            MessageType::Offer => 2,
            MessageType::Request => 3,
            MessageType::Decline => 4,
            MessageType::Ack => 5,
            MessageType::Nak => 6,
            MessageType::Release => 7,
            MessageType::Inform => 8,
            MessageType::Unknown(o) => o,
        }
    }
}

impl MessageType {
    /// The BOOTP op a message of this type travels in.
    pub fn op(self) -> Op {
        match self {
            MessageType::Offer | MessageType::Ack | MessageType::Nak => Op::Reply,
            _ => Op::Request,
        }
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MessageType::Discover => f.write_str("DISCOVER"),
            MessageType::Offer => f.write_str("OFFER"),
            MessageType::Request => f.write_str("REQUEST"),
            MessageType::Decline => f.write_str("DECLINE"),
            MessageType::Ack => f.write_str("ACK"),
            MessageType::Nak => f.write_str("NAK"),
            MessageType::Release => f.write_str("RELEASE"),
            MessageType::Inform => f.write_str("INFORM"),
            MessageType::Unknown(t) => write!(f, "type {t}"),
        }
    }
}

/// One option as it appears in the message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DhcpOption<'a> {
    pub code: u8,
    pub data: &'a [u8],
}

/// Iterator over the options area: yields `Err` once (and then stops) when
/// an option runs past the end.
pub struct OptionIter<'a> {
    rest: &'a [u8],
    failed: bool,
}

impl<'a> Iterator for OptionIter<'a> {
    type Item = Result<DhcpOption<'a>>;
    fn next(&mut self) -> Option<Self::Item> {
        loop {
            if self.failed {
                return None;
            }
            let (&code, after) = self.rest.split_first()?;
            match code {
                opt::PAD => self.rest = after,
                opt::END => {
                    self.rest = &[];
                    return None;
                }
                _ => {
                    let Some((&len, after)) = after.split_first() else {
                        self.failed = true;
                        return Some(Err(Error::OptionOverrun(code)));
                    };
                    let len = usize::from(len);
                    if after.len() < len {
                        self.failed = true;
                        return Some(Err(Error::OptionOverrun(code)));
                    }
                    let (data, rest) = after.split_at(len);
                    self.rest = rest;
                    return Some(Ok(DhcpOption { code, data }));
                }
            }
        }
    }
}

/// A view of a DHCP message (the UDP payload).
#[derive(Debug, Clone)]
pub struct Packet<T: AsRef<[u8]>> {
    buffer: T,
}

fn ip_at(b: &[u8]) -> Ipv4Addr {
    Ipv4Addr::new(b[0], b[1], b[2], b[3])
}

impl<T: AsRef<[u8]>> Packet<T> {
    pub fn new_unchecked(buffer: T) -> Packet<T> {
        Packet { buffer }
    }

    /// Wrap after checking the fixed header (with magic cookie) is present.
    pub fn new_checked(buffer: T) -> Result<Packet<T>> {
        let p = Packet::new_unchecked(buffer);
        p.check_len()?;
        Ok(p)
    }

    pub fn check_len(&self) -> Result<()> {
        if self.buffer.as_ref().len() < HEADER_LEN {
            Err(Error::Truncated)
        } else {
            Ok(())
        }
    }

    fn b(&self) -> &[u8] {
        self.buffer.as_ref()
    }

    pub fn op(&self) -> u8 {
        self.b()[field::OP]
    }
    pub fn hardware_type(&self) -> u8 {
        self.b()[field::HTYPE]
    }
    pub fn hardware_len(&self) -> u8 {
        self.b()[field::HLEN]
    }
    pub fn hops(&self) -> u8 {
        self.b()[field::HOPS]
    }
    pub fn transaction_id(&self) -> u32 {
        let b = &self.b()[field::XID];
        u32::from_be_bytes([b[0], b[1], b[2], b[3]])
    }
    pub fn secs(&self) -> u16 {
        let b = &self.b()[field::SECS];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn flags(&self) -> u16 {
        let b = &self.b()[field::FLAGS];
        u16::from_be_bytes([b[0], b[1]])
    }
    pub fn broadcast_flag(&self) -> bool {
        self.flags() & FLAG_BROADCAST != 0
    }
    pub fn client_ip(&self) -> Ipv4Addr {
        ip_at(&self.b()[field::CIADDR])
    }
    pub fn your_ip(&self) -> Ipv4Addr {
        ip_at(&self.b()[field::YIADDR])
    }
    pub fn server_ip(&self) -> Ipv4Addr {
        ip_at(&self.b()[field::SIADDR])
    }
    pub fn relay_agent_ip(&self) -> Ipv4Addr {
        ip_at(&self.b()[field::GIADDR])
    }
    /// The first six bytes of `chaddr` (meaningful when hlen is 6).
    pub fn client_hardware_addr(&self) -> MacAddr {
        let b = &self.b()[field::CHADDR];
        MacAddr([b[0], b[1], b[2], b[3], b[4], b[5]])
    }
    pub fn magic_ok(&self) -> bool {
        self.b()[field::MAGIC] == MAGIC
    }
    pub fn options(&self) -> OptionIter<'_> {
        OptionIter {
            rest: &self.b()[field::OPTIONS..],
            failed: false,
        }
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Packet<T> {
    fn bm(&mut self) -> &mut [u8] {
        self.buffer.as_mut()
    }
    pub fn set_op(&mut self, op: Op) {
        self.bm()[field::OP] = match op {
            Op::Request => 1,
            Op::Reply => 2,
        };
    }
    pub fn set_hardware(&mut self) {
        self.bm()[field::HTYPE] = 1;
        self.bm()[field::HLEN] = 6;
    }
    pub fn set_hops(&mut self, v: u8) {
        self.bm()[field::HOPS] = v;
    }
    pub fn set_transaction_id(&mut self, v: u32) {
        self.bm()[field::XID].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_secs(&mut self, v: u16) {
        self.bm()[field::SECS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_flags(&mut self, v: u16) {
        self.bm()[field::FLAGS].copy_from_slice(&v.to_be_bytes());
    }
    pub fn set_client_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::CIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_your_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::YIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_server_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::SIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_relay_agent_ip(&mut self, a: Ipv4Addr) {
        self.bm()[field::GIADDR].copy_from_slice(&a.octets());
    }
    pub fn set_client_hardware_addr(&mut self, m: MacAddr) {
        let b = &mut self.bm()[field::CHADDR];
        b.fill(0);
        b[..6].copy_from_slice(&m.0);
    }
    pub fn set_magic(&mut self) {
        self.bm()[field::MAGIC].copy_from_slice(&MAGIC);
    }
    pub fn options_mut(&mut self) -> &mut [u8] {
        &mut self.bm()[field::OPTIONS..]
    }
}

/// One classless static route (RFC 3442): `net/len via gw`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    pub net: Ipv4Addr,
    pub len: u8,
    pub gw: Ipv4Addr,
}

/// Most routes a parsed option 121/249 keeps (more are ignored).
pub const MAX_ROUTES: usize = 16;
/// Most DNS servers / routers a parsed message keeps (more are ignored).
pub const MAX_ADDRS: usize = 8;

/// Encoded length of `routes` in RFC 3442 form.
pub fn classless_routes_len(routes: &[Route]) -> usize {
    routes
        .iter()
        .map(|r| 1 + usize::from(r.len.min(32)).div_ceil(8) + 4)
        .sum()
}

/// Append `routes` in RFC 3442 form (width byte, significant octets of the
/// destination, router) to `out`.
pub fn encode_classless_routes(routes: &[Route], out: &mut Vec<u8>) {
    for r in routes {
        let len = r.len.min(32);
        out.push(len);
        let sig = usize::from(len).div_ceil(8);
        out.extend_from_slice(&r.net.octets()[..sig]);
        out.extend_from_slice(&r.gw.octets());
    }
}

/// Decode RFC 3442 routes; `Err` on a width over 32 or a truncated entry.
pub fn decode_classless_routes(
    mut data: &[u8],
) -> core::result::Result<heapless::Vec<Route, MAX_ROUTES>, &'static str> {
    let mut out = heapless::Vec::new();
    while let Some((&len, rest)) = data.split_first() {
        if len > 32 {
            return Err("route width over 32");
        }
        let sig = usize::from(len).div_ceil(8);
        if rest.len() < sig + 4 {
            return Err("truncated route");
        }
        let mut net = [0u8; 4];
        net[..sig].copy_from_slice(&rest[..sig]);
        let gw = ip_at(&rest[sig..sig + 4]);
        // Routes past capacity are dropped; the rest is still validated.
        let _ = out.push(Route {
            net: Ipv4Addr::from(net),
            len,
            gw,
        });
        data = &rest[sig + 4..];
    }
    Ok(out)
}

/// The meaning of a DHCP message: header fields and the options TMip uses.
/// Borrowed fields point into the parsed buffer (or the server's config when
/// emitting).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Repr<'a> {
    pub message_type: MessageType,
    pub transaction_id: u32,
    pub secs: u16,
    pub broadcast: bool,
    pub client_hardware_addr: MacAddr,
    /// ciaddr
    pub client_ip: Ipv4Addr,
    /// yiaddr
    pub your_ip: Ipv4Addr,
    /// siaddr (next server; TMip sends 0)
    pub server_ip: Ipv4Addr,
    /// giaddr
    pub relay_agent_ip: Ipv4Addr,
    /// 1
    pub subnet_mask: Option<Ipv4Addr>,
    /// 3
    pub routers: heapless::Vec<Ipv4Addr, MAX_ADDRS>,
    /// 6
    pub dns_servers: heapless::Vec<Ipv4Addr, MAX_ADDRS>,
    /// 12
    pub hostname: Option<&'a [u8]>,
    /// 15
    pub domain_name: Option<&'a [u8]>,
    /// 50
    pub requested_ip: Option<Ipv4Addr>,
    /// 51
    pub lease_time: Option<u32>,
    /// 54
    pub server_identifier: Option<Ipv4Addr>,
    /// 55
    pub parameter_request_list: Option<&'a [u8]>,
    /// 56
    pub message: Option<&'a [u8]>,
    /// 57
    pub max_size: Option<u16>,
    /// 58
    pub renewal_time: Option<u32>,
    /// 59
    pub rebinding_time: Option<u32>,
    /// 61
    pub client_identifier: Option<&'a [u8]>,
    /// 121
    pub classless_routes: Option<heapless::Vec<Route, MAX_ROUTES>>,
    /// 249 (Microsoft's copy of 121)
    pub ms_classless_routes: Option<heapless::Vec<Route, MAX_ROUTES>>,
}

fn u32_opt(o: &DhcpOption<'_>) -> Result<u32> {
    match o.data {
        [a, b, c, d] => Ok(u32::from_be_bytes([*a, *b, *c, *d])),
        _ => Err(Error::BadOption(o.code, "length is not 4")),
    }
}

fn ip_opt(o: &DhcpOption<'_>) -> Result<Ipv4Addr> {
    u32_opt(o).map(Ipv4Addr::from)
}

fn ip_list(o: &DhcpOption<'_>) -> Result<heapless::Vec<Ipv4Addr, MAX_ADDRS>> {
    if o.data.is_empty() || o.data.len() % 4 != 0 {
        return Err(Error::BadOption(
            o.code,
            "length is not a positive multiple of 4",
        ));
    }
    Ok(o.data.chunks_exact(4).take(MAX_ADDRS).map(ip_at).collect())
}

fn nonempty<'a>(o: &DhcpOption<'a>) -> Result<&'a [u8]> {
    if o.data.is_empty() {
        Err(Error::BadOption(o.code, "empty"))
    } else {
        Ok(o.data)
    }
}

impl<'a> Repr<'a> {
    /// A blank message of `message_type` for `mac` (all addresses zero, no options).
    pub fn new(message_type: MessageType, transaction_id: u32, mac: MacAddr) -> Repr<'a> {
        Repr {
            message_type,
            transaction_id,
            secs: 0,
            broadcast: false,
            client_hardware_addr: mac,
            client_ip: Ipv4Addr::UNSPECIFIED,
            your_ip: Ipv4Addr::UNSPECIFIED,
            server_ip: Ipv4Addr::UNSPECIFIED,
            relay_agent_ip: Ipv4Addr::UNSPECIFIED,
            subnet_mask: None,
            routers: heapless::Vec::new(),
            dns_servers: heapless::Vec::new(),
            hostname: None,
            domain_name: None,
            requested_ip: None,
            lease_time: None,
            server_identifier: None,
            parameter_request_list: None,
            message: None,
            max_size: None,
            renewal_time: None,
            rebinding_time: None,
            client_identifier: None,
            classless_routes: None,
            ms_classless_routes: None,
        }
    }

    /// Parse a message; see the module doc for what is refused.
    pub fn parse(p: &Packet<&'a [u8]>) -> Result<Repr<'a>> {
        Self::parse_bytes(p.buffer)
    }

    /// Parse a message straight from the UDP payload.
    pub fn parse_bytes(bytes: &'a [u8]) -> Result<Repr<'a>> {
        let p = Packet::new_checked(bytes)?;
        if !p.magic_ok() {
            return Err(Error::BadMagic);
        }
        if p.hardware_type() != 1 || p.hardware_len() != 6 {
            return Err(Error::UnsupportedHardware);
        }
        let op = match p.op() {
            1 => Op::Request,
            2 => Op::Reply,
            other => return Err(Error::BadOp(other)),
        };
        let mut r = Repr::new(
            MessageType::Unknown(0),
            p.transaction_id(),
            p.client_hardware_addr(),
        );
        r.secs = p.secs();
        r.broadcast = p.broadcast_flag();
        r.client_ip = p.client_ip();
        r.your_ip = p.your_ip();
        r.server_ip = p.server_ip();
        r.relay_agent_ip = p.relay_agent_ip();
        let mut message_type = None;
        let options = OptionIter {
            rest: &bytes[field::OPTIONS..],
            failed: false,
        };
        for o in options {
            let o = o?;
            match o.code {
                opt::MESSAGE_TYPE if message_type.is_none() => match o.data {
                    [t] => message_type = Some(MessageType::from(*t)),
                    _ => return Err(Error::BadOption(o.code, "length is not 1")),
                },
                opt::SUBNET_MASK if r.subnet_mask.is_none() => r.subnet_mask = Some(ip_opt(&o)?),
                opt::ROUTER if r.routers.is_empty() => r.routers = ip_list(&o)?,
                opt::DNS if r.dns_servers.is_empty() => r.dns_servers = ip_list(&o)?,
                opt::HOSTNAME if r.hostname.is_none() => r.hostname = Some(nonempty(&o)?),
                opt::DOMAIN_NAME if r.domain_name.is_none() => r.domain_name = Some(nonempty(&o)?),
                opt::REQUESTED_IP if r.requested_ip.is_none() => r.requested_ip = Some(ip_opt(&o)?),
                opt::LEASE_TIME if r.lease_time.is_none() => r.lease_time = Some(u32_opt(&o)?),
                opt::SERVER_ID if r.server_identifier.is_none() => {
                    r.server_identifier = Some(ip_opt(&o)?)
                }
                opt::PARAMETER_REQUEST_LIST if r.parameter_request_list.is_none() => {
                    r.parameter_request_list = Some(nonempty(&o)?)
                }
                opt::MESSAGE if r.message.is_none() => r.message = Some(nonempty(&o)?),
                opt::MAX_MESSAGE_SIZE if r.max_size.is_none() => match o.data {
                    [a, b] => {
                        let v = u16::from_be_bytes([*a, *b]);
                        // RFC 2132 §9.10: the minimum legal value is 576.
                        if v < 576 {
                            return Err(Error::BadOption(o.code, "below 576"));
                        }
                        r.max_size = Some(v);
                    }
                    _ => return Err(Error::BadOption(o.code, "length is not 2")),
                },
                opt::RENEWAL_TIME if r.renewal_time.is_none() => {
                    r.renewal_time = Some(u32_opt(&o)?)
                }
                opt::REBINDING_TIME if r.rebinding_time.is_none() => {
                    r.rebinding_time = Some(u32_opt(&o)?)
                }
                opt::CLIENT_ID if r.client_identifier.is_none() => {
                    // RFC 2132 §9.14: type byte plus at least one byte.
                    if o.data.len() < 2 {
                        return Err(Error::BadOption(o.code, "shorter than 2"));
                    }
                    r.client_identifier = Some(o.data);
                }
                opt::CLASSLESS_ROUTES if r.classless_routes.is_none() => {
                    r.classless_routes = Some(
                        decode_classless_routes(o.data).map_err(|e| Error::BadOption(o.code, e))?,
                    )
                }
                opt::MS_CLASSLESS_ROUTES if r.ms_classless_routes.is_none() => {
                    r.ms_classless_routes = Some(
                        decode_classless_routes(o.data).map_err(|e| Error::BadOption(o.code, e))?,
                    )
                }
                // Overload (52), repeats, and everything unknown: skipped.
                _ => {}
            }
        }
        r.message_type = message_type.ok_or(Error::NoMessageType)?;
        if r.message_type.op() != op {
            return Err(Error::BadOp(u8::from(r.message_type)));
        }
        Ok(r)
    }

    /// Bytes of options (including END), without padding.
    fn options_len(&self) -> usize {
        fn o(present: bool, len: usize) -> usize {
            if present {
                2 + len
            } else {
                0
            }
        }
        let routes = |r: &Option<heapless::Vec<Route, MAX_ROUTES>>| {
            r.as_ref().map_or(0, |r| 2 + classless_routes_len(r))
        };
        3 // message type
            + o(self.server_identifier.is_some(), 4)
            + o(self.lease_time.is_some(), 4)
            + o(self.renewal_time.is_some(), 4)
            + o(self.rebinding_time.is_some(), 4)
            + o(self.subnet_mask.is_some(), 4)
            + o(!self.routers.is_empty(), 4 * self.routers.len())
            + o(!self.dns_servers.is_empty(), 4 * self.dns_servers.len())
            + self.hostname.map_or(0, |h| 2 + h.len())
            + self.domain_name.map_or(0, |h| 2 + h.len())
            + o(self.requested_ip.is_some(), 4)
            + self.parameter_request_list.map_or(0, |h| 2 + h.len())
            + self.message.map_or(0, |h| 2 + h.len())
            + o(self.max_size.is_some(), 2)
            + self.client_identifier.map_or(0, |h| 2 + h.len())
            + routes(&self.classless_routes)
            + routes(&self.ms_classless_routes)
            + 1 // END
    }

    /// Bytes `emit` writes: header, options, END, padded to 300.
    pub fn buffer_len(&self) -> usize {
        (HEADER_LEN + self.options_len()).max(MIN_MESSAGE_LEN)
    }

    /// Write the message into `buf` (at least `buffer_len()` bytes; the rest
    /// of those bytes is zeroed). `Err(BadOption)` when a variable option is
    /// longer than 255 bytes, `Err(TooLong)` when `buf` is too short.
    pub fn emit(&self, buf: &mut [u8]) -> Result<()> {
        let len = self.buffer_len();
        let buf = buf.get_mut(..len).ok_or(Error::TooLong)?;
        buf.fill(0);
        let mut p = Packet::new_unchecked(&mut *buf);
        p.set_op(self.message_type.op());
        p.set_hardware();
        p.set_hops(0);
        p.set_transaction_id(self.transaction_id);
        p.set_secs(self.secs);
        p.set_flags(if self.broadcast { FLAG_BROADCAST } else { 0 });
        p.set_client_ip(self.client_ip);
        p.set_your_ip(self.your_ip);
        p.set_server_ip(self.server_ip);
        p.set_relay_agent_ip(self.relay_agent_ip);
        p.set_client_hardware_addr(self.client_hardware_addr);
        p.set_magic();

        let mut w = OptionWriter {
            buf: p.options_mut(),
            at: 0,
        };
        w.put(opt::MESSAGE_TYPE, &[u8::from(self.message_type)])?;
        if let Some(a) = self.server_identifier {
            w.put(opt::SERVER_ID, &a.octets())?;
        }
        if let Some(v) = self.lease_time {
            w.put(opt::LEASE_TIME, &v.to_be_bytes())?;
        }
        if let Some(v) = self.renewal_time {
            w.put(opt::RENEWAL_TIME, &v.to_be_bytes())?;
        }
        if let Some(v) = self.rebinding_time {
            w.put(opt::REBINDING_TIME, &v.to_be_bytes())?;
        }
        if let Some(a) = self.subnet_mask {
            w.put(opt::SUBNET_MASK, &a.octets())?;
        }
        w.put_ips(opt::ROUTER, &self.routers)?;
        w.put_ips(opt::DNS, &self.dns_servers)?;
        if let Some(h) = self.hostname {
            w.put(opt::HOSTNAME, h)?;
        }
        if let Some(h) = self.domain_name {
            w.put(opt::DOMAIN_NAME, h)?;
        }
        if let Some(a) = self.requested_ip {
            w.put(opt::REQUESTED_IP, &a.octets())?;
        }
        if let Some(h) = self.parameter_request_list {
            w.put(opt::PARAMETER_REQUEST_LIST, h)?;
        }
        if let Some(h) = self.message {
            w.put(opt::MESSAGE, h)?;
        }
        if let Some(v) = self.max_size {
            w.put(opt::MAX_MESSAGE_SIZE, &v.to_be_bytes())?;
        }
        if let Some(h) = self.client_identifier {
            w.put(opt::CLIENT_ID, h)?;
        }
        for (code, routes) in [
            (opt::CLASSLESS_ROUTES, &self.classless_routes),
            (opt::MS_CLASSLESS_ROUTES, &self.ms_classless_routes),
        ] {
            if let Some(r) = routes {
                let mut v = Vec::with_capacity(classless_routes_len(r));
                encode_classless_routes(r, &mut v);
                w.put(code, &v)?;
            }
        }
        w.end()
    }

    /// `emit` into a fresh vector.
    pub fn to_vec(&self) -> Result<Vec<u8>> {
        let mut v = vec![0u8; self.buffer_len()];
        self.emit(&mut v)?;
        Ok(v)
    }
}

struct OptionWriter<'b> {
    buf: &'b mut [u8],
    at: usize,
}

impl OptionWriter<'_> {
    fn put(&mut self, code: u8, data: &[u8]) -> Result<()> {
        let len =
            u8::try_from(data.len()).map_err(|_| Error::BadOption(code, "longer than 255"))?;
        let end = self.at + 2 + data.len();
        let dst = self.buf.get_mut(self.at..end).ok_or(Error::TooLong)?;
        dst[0] = code;
        dst[1] = len;
        dst[2..].copy_from_slice(data);
        self.at = end;
        Ok(())
    }

    fn put_ips(&mut self, code: u8, ips: &[Ipv4Addr]) -> Result<()> {
        if ips.is_empty() {
            return Ok(());
        }
        let mut v = heapless::Vec::<u8, { 4 * MAX_ADDRS }>::new();
        for ip in ips {
            let _ = v.extend_from_slice(&ip.octets());
        }
        self.put(code, &v)
    }

    fn end(&mut self) -> Result<()> {
        let b = self.buf.get_mut(self.at).ok_or(Error::TooLong)?;
        *b = opt::END;
        self.at += 1;
        Ok(())
    }
}

#[cfg(test)]
pub(crate) mod tests;
