//! rtnetlink wire format: request builders and checked views of replies.
//!
//! Layout (all integers in host byte order, as the kernel expects on the
//! same machine; addresses in network order):
//! `nlmsghdr` (16) | family header (ifinfomsg 16, ifaddrmsg 8, rtmsg 12,
//! fib_rule_hdr 12, ndmsg 12) | rtattrs, each 4-byte aligned.
//! Parsers check every length before reading; a malformed reply is an `Err`.

use crate::addr::MacAddr;
use std::net::Ipv4Addr;

// nlmsghdr types and flags (linux/netlink.h)
pub const NLMSG_ERROR: u16 = 2;
pub const NLMSG_DONE: u16 = 3;
pub const NLM_F_REQUEST: u16 = 0x1;
pub const NLM_F_MULTI: u16 = 0x2;
pub const NLM_F_ACK: u16 = 0x4;
pub const NLM_F_DUMP: u16 = 0x300;
pub const NLM_F_REPLACE: u16 = 0x100;
pub const NLM_F_EXCL: u16 = 0x200;
pub const NLM_F_CREATE: u16 = 0x400;

// rtnetlink message types (linux/rtnetlink.h)
pub const RTM_NEWLINK: u16 = 16;
pub const RTM_DELLINK: u16 = 17;
pub const RTM_GETLINK: u16 = 18;
pub const RTM_NEWADDR: u16 = 20;
pub const RTM_DELADDR: u16 = 21;
pub const RTM_GETADDR: u16 = 22;
pub const RTM_NEWROUTE: u16 = 24;
pub const RTM_DELROUTE: u16 = 25;
pub const RTM_GETROUTE: u16 = 26;
pub const RTM_NEWNEIGH: u16 = 28;
pub const RTM_DELNEIGH: u16 = 29;
pub const RTM_GETNEIGH: u16 = 30;
pub const RTM_NEWRULE: u16 = 32;
pub const RTM_DELRULE: u16 = 33;
pub const RTM_GETRULE: u16 = 34;

pub const AF_UNSPEC: u8 = 0;
pub const AF_INET: u8 = 2;

pub const IFF_UP: u32 = 0x1;

// link attributes
pub const IFLA_ADDRESS: u16 = 1;
pub const IFLA_IFNAME: u16 = 3;
pub const IFLA_MTU: u16 = 4;
pub const IFLA_LINKINFO: u16 = 18;
pub const IFLA_INFO_KIND: u16 = 1;
pub const IFLA_INFO_DATA: u16 = 2;
pub const IFLA_IPTUN_LOCAL: u16 = 2;
pub const IFLA_IPTUN_REMOTE: u16 = 3;
pub const IFLA_IPTUN_TTL: u16 = 4;
pub const IFLA_IPTUN_PMTUDISC: u16 = 10;
/// Flag on nested attributes; stripped when reading the type.
pub const NLA_F_NESTED: u16 = 0x8000;
const NLA_TYPE_MASK: u16 = 0x3fff;

// address attributes
pub const IFA_ADDRESS: u16 = 1;
pub const IFA_LOCAL: u16 = 2;
pub const IFA_LABEL: u16 = 3;
pub const IFA_BROADCAST: u16 = 4;
/// Since Linux 6.1: who installed the address (a free u8, like rtm_protocol).
pub const IFA_PROTO: u16 = 11;

// route attributes and values
pub const RTA_DST: u16 = 1;
pub const RTA_OIF: u16 = 4;
pub const RTA_GATEWAY: u16 = 5;
pub const RTA_PRIORITY: u16 = 6;
pub const RTA_PREFSRC: u16 = 7;
pub const RTA_TABLE: u16 = 15;
pub const RT_TABLE_MAIN: u32 = 254;
pub const RT_SCOPE_UNIVERSE: u8 = 0;
pub const RT_SCOPE_LINK: u8 = 253;
pub const RT_SCOPE_HOST: u8 = 254;
pub const RTN_UNICAST: u8 = 1;
/// A route that answers ICMP host unreachable (`ip route add unreachable`).
pub const RTN_UNREACHABLE: u8 = 7;

// rule attributes
pub const FRA_DST: u16 = 1;
pub const FRA_SRC: u16 = 2;
pub const FRA_IIFNAME: u16 = 3;
pub const FRA_PRIORITY: u16 = 6;
pub const FRA_TABLE: u16 = 15;
/// Since Linux 4.17: who installed the rule.
pub const FRA_PROTOCOL: u16 = 21;
pub const FR_ACT_TO_TBL: u8 = 1;

// neighbour
pub const NDA_DST: u16 = 1;
pub const NDA_LLADDR: u16 = 2;
pub const NUD_PERMANENT: u16 = 0x80;
/// Since Linux 5.2: who installed the entry (also on proxy entries).
pub const NDA_PROTOCOL: u16 = 12;
/// ndm_flags: a proxy entry (the kernel answers ARP for the address).
pub const NTF_PROXY: u8 = 0x08;

pub const NLMSG_HDRLEN: usize = 16;

/// Why a netlink message could not be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParseError {
    Truncated(&'static str),
    BadLength { what: &'static str, len: usize },
}

impl std::fmt::Display for ParseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ParseError::Truncated(w) => write!(f, "netlink reply truncated in {w}"),
            ParseError::BadLength { what, len } => write!(f, "netlink {what} has bad length {len}"),
        }
    }
}

fn align4(n: usize) -> usize {
    (n + 3) & !3
}

/// Builds one netlink request: header, family header, attributes.
pub struct MessageBuilder {
    buf: Vec<u8>,
}

impl MessageBuilder {
    /// Starts a message; `family_header` is the fixed struct after nlmsghdr.
    pub fn new(msg_type: u16, flags: u16, seq: u32, family_header: &[u8]) -> Self {
        let mut buf = Vec::with_capacity(128);
        buf.extend_from_slice(&0u32.to_ne_bytes()); // length, patched in finish
        buf.extend_from_slice(&msg_type.to_ne_bytes());
        buf.extend_from_slice(&flags.to_ne_bytes());
        buf.extend_from_slice(&seq.to_ne_bytes());
        buf.extend_from_slice(&0u32.to_ne_bytes()); // port id: kernel fills
        buf.extend_from_slice(family_header);
        buf.resize(align4(buf.len()), 0);
        MessageBuilder { buf }
    }

    pub fn attr(&mut self, ty: u16, payload: &[u8]) -> &mut Self {
        let len = 4 + payload.len();
        self.buf.extend_from_slice(&(len as u16).to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        self.buf.extend_from_slice(payload);
        self.buf.resize(align4(self.buf.len()), 0);
        self
    }

    pub fn attr_u8(&mut self, ty: u16, v: u8) -> &mut Self {
        self.attr(ty, &[v])
    }
    pub fn attr_u32(&mut self, ty: u16, v: u32) -> &mut Self {
        self.attr(ty, &v.to_ne_bytes())
    }
    pub fn attr_ip(&mut self, ty: u16, ip: Ipv4Addr) -> &mut Self {
        self.attr(ty, &ip.octets())
    }
    /// A NUL-terminated string attribute (interface names, kinds, labels).
    pub fn attr_str(&mut self, ty: u16, s: &str) -> &mut Self {
        let mut v = Vec::with_capacity(s.len() + 1);
        v.extend_from_slice(s.as_bytes());
        v.push(0);
        self.attr(ty, &v)
    }

    /// Opens a nested attribute; close it with [`MessageBuilder::end_nested`].
    pub fn begin_nested(&mut self, ty: u16) -> usize {
        let at = self.buf.len();
        self.buf.extend_from_slice(&0u16.to_ne_bytes());
        self.buf.extend_from_slice(&ty.to_ne_bytes());
        at
    }
    pub fn end_nested(&mut self, at: usize) -> &mut Self {
        let len = (self.buf.len() - at) as u16;
        self.buf[at..at + 2].copy_from_slice(&len.to_ne_bytes());
        self
    }

    pub fn finish(mut self) -> Vec<u8> {
        let len = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&len.to_ne_bytes());
        self.buf
    }
}

/// ifinfomsg: family, pad, type, index, flags, change.
pub fn ifinfomsg(index: i32, flags: u32, change: u32) -> [u8; 16] {
    let mut b = [0u8; 16];
    b[0] = AF_UNSPEC;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..12].copy_from_slice(&flags.to_ne_bytes());
    b[12..16].copy_from_slice(&change.to_ne_bytes());
    b
}

/// ifaddrmsg: family, prefixlen, flags, scope, index.
pub fn ifaddrmsg(prefix_len: u8, scope: u8, index: u32) -> [u8; 8] {
    let mut b = [0u8; 8];
    b[0] = AF_INET;
    b[1] = prefix_len;
    b[3] = scope;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b
}

/// rtmsg: family, dst_len, src_len, tos, table, protocol, scope, type, flags.
pub fn rtmsg(dst_len: u8, table: u8, protocol: u8, scope: u8, rtype: u8) -> [u8; 12] {
    [
        AF_INET, dst_len, 0, 0, table, protocol, scope, rtype, 0, 0, 0, 0,
    ]
}

/// fib_rule_hdr: family, dst_len, src_len, tos, table, res1, res2, action, flags.
pub fn fib_rule_hdr(dst_len: u8, src_len: u8, table: u8, action: u8) -> [u8; 12] {
    [
        AF_INET, dst_len, src_len, 0, table, 0, 0, action, 0, 0, 0, 0,
    ]
}

/// ndmsg: family, pad, pad, ifindex, state, flags, type.
pub fn ndmsg(index: i32, state: u16) -> [u8; 12] {
    let mut b = [0u8; 12];
    b[0] = AF_INET;
    b[4..8].copy_from_slice(&index.to_ne_bytes());
    b[8..10].copy_from_slice(&state.to_ne_bytes());
    b
}

/// ndmsg with `ndm_flags` set (e.g. [`NTF_PROXY`]).
pub fn ndmsg_flags(index: i32, flags: u8) -> [u8; 12] {
    let mut b = ndmsg(index, 0);
    b[10] = flags;
    b
}

/// A proxy ARP entry (`ip neigh show proxy`): the kernel answers ARP for
/// `address` on interface `index` with that interface's MAC.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProxyNeighbour {
    pub index: u32,
    pub address: Ipv4Addr,
    pub protocol: u8,
}

impl ProxyNeighbour {
    /// `None` for other families and non-proxy entries.
    pub fn parse(msg: &NlMsg<'_>) -> Result<Option<ProxyNeighbour>, ParseError> {
        let (hdr, attrs) = msg.split(12)?;
        if hdr.first() != Some(&AF_INET) || hdr.get(10).is_none_or(|f| f & NTF_PROXY == 0) {
            return Ok(None);
        }
        let index = ne_u32(hdr, 4).ok_or(ParseError::Truncated("ndmsg"))?;
        let mut address = None;
        let mut protocol = 0;
        for a in attrs {
            let (ty, v) = a?;
            match ty {
                NDA_DST => address = attr_ip(v),
                NDA_PROTOCOL => protocol = v.first().copied().unwrap_or(0),
                _ => {}
            }
        }
        Ok(address.map(|address| ProxyNeighbour {
            index,
            address,
            protocol,
        }))
    }

    /// RTM_NEWNEIGH (created or replaced) or RTM_DELNEIGH of this entry.
    pub fn build(&self, msg_type: u16, seq: u32) -> Vec<u8> {
        let flags = if msg_type == RTM_NEWNEIGH {
            NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE
        } else {
            NLM_F_REQUEST | NLM_F_ACK
        };
        let mut m = MessageBuilder::new(
            msg_type,
            flags,
            seq,
            &ndmsg_flags(self.index as i32, NTF_PROXY),
        );
        m.attr_ip(NDA_DST, self.address);
        if self.protocol != 0 {
            m.attr_u8(NDA_PROTOCOL, self.protocol);
        }
        m.finish()
    }
}

/// A checked view of one netlink message inside a receive buffer.
#[derive(Debug, Clone, Copy)]
pub struct NlMsg<'a> {
    pub msg_type: u16,
    pub flags: u16,
    pub seq: u32,
    /// Everything after the 16-byte header.
    pub payload: &'a [u8],
}

fn ne_u16(b: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_ne_bytes(b.get(at..at + 2)?.try_into().ok()?))
}
fn ne_u32(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_ne_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

/// Iterates over the messages of one datagram.
pub struct Messages<'a> {
    rest: &'a [u8],
}

pub fn messages(buf: &[u8]) -> Messages<'_> {
    Messages { rest: buf }
}

impl<'a> Iterator for Messages<'a> {
    type Item = Result<NlMsg<'a>, ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let b = self.rest;
        let Some(len) = ne_u32(b, 0).map(|l| l as usize) else {
            self.rest = &[];
            return Some(Err(ParseError::Truncated("nlmsghdr")));
        };
        if len < NLMSG_HDRLEN || len > b.len() {
            self.rest = &[];
            return Some(Err(ParseError::BadLength {
                what: "nlmsghdr",
                len,
            }));
        }
        let msg = NlMsg {
            msg_type: ne_u16(b, 4).unwrap_or(0),
            flags: ne_u16(b, 6).unwrap_or(0),
            seq: ne_u32(b, 8).unwrap_or(0),
            payload: &b[NLMSG_HDRLEN..len],
        };
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok(msg))
    }
}

impl<'a> NlMsg<'a> {
    /// For NLMSG_ERROR: the (negative) errno, 0 for an ACK.
    pub fn error_code(&self) -> Result<i32, ParseError> {
        ne_u32(self.payload, 0)
            .map(|v| v as i32)
            .ok_or(ParseError::Truncated("nlmsgerr"))
    }

    /// The family header (`hdr_len` bytes) and the attributes after it.
    pub fn split(&self, hdr_len: usize) -> Result<(&'a [u8], Attrs<'a>), ParseError> {
        let hdr = self
            .payload
            .get(..hdr_len)
            .ok_or(ParseError::Truncated("family header"))?;
        let rest = self.payload.get(align4(hdr_len)..).unwrap_or(&[]);
        Ok((hdr, Attrs { rest }))
    }
}

/// Iterates over rtattrs: yields (type without flags, payload).
#[derive(Clone)]
pub struct Attrs<'a> {
    rest: &'a [u8],
}

pub fn attrs(buf: &[u8]) -> Attrs<'_> {
    Attrs { rest: buf }
}

impl<'a> Iterator for Attrs<'a> {
    type Item = Result<(u16, &'a [u8]), ParseError>;
    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.len() < 4 {
            self.rest = &[];
            return None; // trailing padding
        }
        let b = self.rest;
        let len = ne_u16(b, 0).unwrap_or(0) as usize;
        let ty = ne_u16(b, 2).unwrap_or(0) & NLA_TYPE_MASK;
        if len < 4 || len > b.len() {
            self.rest = &[];
            return Some(Err(ParseError::BadLength {
                what: "rtattr",
                len,
            }));
        }
        self.rest = b.get(align4(len)..).unwrap_or(&[]);
        Some(Ok((ty, &b[4..len])))
    }
}

pub fn attr_ip(v: &[u8]) -> Option<Ipv4Addr> {
    let o: [u8; 4] = v.get(..4)?.try_into().ok()?;
    Some(Ipv4Addr::from(o))
}
pub fn attr_u32(v: &[u8]) -> Option<u32> {
    ne_u32(v, 0)
}
pub fn attr_str(v: &[u8]) -> String {
    let end = v.iter().position(|&c| c == 0).unwrap_or(v.len());
    String::from_utf8_lossy(&v[..end]).into_owned()
}

/// One interface, as a link dump reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Link {
    pub index: u32,
    pub name: String,
    /// IFLA_INFO_KIND ("veth", "ipip", "tun", "bridge"); empty for plain devices.
    pub kind: String,
    pub flags: u32,
    pub mtu: u32,
    /// For kind "ipip": the tunnel's remote end (IFLA_IPTUN_REMOTE).
    pub ipip_remote: Option<Ipv4Addr>,
    /// The hardware address (IFLA_ADDRESS) when it is a 6-byte MAC
    /// (Ethernet, Wi-Fi, loopback's zeros); `None` for TUN and IPIP devices.
    pub mac: Option<MacAddr>,
}

impl Link {
    pub fn is_up(&self) -> bool {
        self.flags & IFF_UP != 0
    }

    pub fn parse(msg: &NlMsg<'_>) -> Result<Link, ParseError> {
        let (hdr, attrs) = msg.split(16)?;
        let mut l = Link {
            index: ne_u32(hdr, 4).ok_or(ParseError::Truncated("ifinfomsg"))?,
            flags: ne_u32(hdr, 8).ok_or(ParseError::Truncated("ifinfomsg"))?,
            name: String::new(),
            kind: String::new(),
            mtu: 0,
            ipip_remote: None,
            mac: None,
        };
        for a in attrs {
            let (ty, v) = a?;
            match ty {
                IFLA_IFNAME => l.name = attr_str(v),
                IFLA_MTU => l.mtu = attr_u32(v).unwrap_or(0),
                IFLA_ADDRESS => l.mac = <[u8; 6]>::try_from(v).ok().map(MacAddr),
                IFLA_LINKINFO => {
                    for n in self::attrs(v) {
                        let (nt, nv) = n?;
                        if nt == IFLA_INFO_KIND {
                            l.kind = attr_str(nv);
                        } else if nt == IFLA_INFO_DATA {
                            for d in self::attrs(nv) {
                                let (dt, dv) = d?;
                                if dt == IFLA_IPTUN_REMOTE {
                                    l.ipip_remote = attr_ip(dv);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        Ok(l)
    }
}

/// One IPv4 address on an interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    pub index: u32,
    pub address: Ipv4Addr,
    pub prefix_len: u8,
    pub scope: u8,
    pub label: String,
    /// IFA_PROTO, 0 when absent.
    pub protocol: u8,
    /// IFA_BROADCAST: absent for an address added without `brd`.
    pub broadcast: Option<Ipv4Addr>,
}

impl Address {
    pub fn parse(msg: &NlMsg<'_>) -> Result<Option<Address>, ParseError> {
        let (hdr, attrs) = msg.split(8)?;
        if hdr[0] != AF_INET {
            return Ok(None);
        }
        let mut a = Address {
            index: ne_u32(hdr, 4).ok_or(ParseError::Truncated("ifaddrmsg"))?,
            address: Ipv4Addr::UNSPECIFIED,
            prefix_len: hdr[1],
            scope: hdr[3],
            label: String::new(),
            protocol: 0,
            broadcast: None,
        };
        let mut address = None;
        for at in attrs {
            let (ty, v) = at?;
            match ty {
                // IFA_LOCAL is the interface's own address; IFA_ADDRESS is the
                // peer on point-to-point links, so prefer LOCAL.
                IFA_LOCAL => a.address = attr_ip(v).unwrap_or(a.address),
                IFA_ADDRESS => address = attr_ip(v),
                IFA_LABEL => a.label = attr_str(v),
                IFA_BROADCAST => a.broadcast = attr_ip(v),
                IFA_PROTO => a.protocol = v.first().copied().unwrap_or(0),
                _ => {}
            }
        }
        if a.address.is_unspecified() {
            a.address = address.unwrap_or(a.address);
        }
        Ok(Some(a))
    }
}

/// An IPv4 route. `table` is the full 32-bit table id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    pub dst: Ipv4Addr,
    pub dst_len: u8,
    pub table: u32,
    pub protocol: u8,
    pub scope: u8,
    pub rtype: u8,
    pub oif: Option<u32>,
    pub gateway: Option<Ipv4Addr>,
    pub prefsrc: Option<Ipv4Addr>,
    pub metric: Option<u32>,
}

impl Route {
    /// A unicast route in the main table with the given protocol tag.
    pub fn new(dst: Ipv4Addr, dst_len: u8, protocol: u8) -> Route {
        Route {
            dst,
            dst_len,
            table: RT_TABLE_MAIN,
            protocol,
            scope: RT_SCOPE_UNIVERSE,
            rtype: RTN_UNICAST,
            oif: None,
            gateway: None,
            prefsrc: None,
            metric: None,
        }
    }

    pub fn parse(msg: &NlMsg<'_>) -> Result<Option<Route>, ParseError> {
        let (hdr, attrs) = msg.split(12)?;
        if hdr[0] != AF_INET {
            return Ok(None);
        }
        let mut r = Route {
            dst: Ipv4Addr::UNSPECIFIED,
            dst_len: hdr[1],
            table: hdr[4] as u32,
            protocol: hdr[5],
            scope: hdr[6],
            rtype: hdr[7],
            oif: None,
            gateway: None,
            prefsrc: None,
            metric: None,
        };
        for at in attrs {
            let (ty, v) = at?;
            match ty {
                RTA_DST => r.dst = attr_ip(v).unwrap_or(r.dst),
                RTA_OIF => r.oif = attr_u32(v),
                RTA_GATEWAY => r.gateway = attr_ip(v),
                RTA_PREFSRC => r.prefsrc = attr_ip(v),
                RTA_PRIORITY => r.metric = attr_u32(v),
                RTA_TABLE => r.table = attr_u32(v).unwrap_or(r.table),
                _ => {}
            }
        }
        Ok(Some(r))
    }

    /// The request body for RTM_NEWROUTE/RTM_DELROUTE.
    pub fn build(&self, msg_type: u16, flags: u16, seq: u32) -> Vec<u8> {
        let table8 = if self.table < 256 {
            self.table as u8
        } else {
            252
        }; // RT_TABLE_COMPAT
        let mut m = MessageBuilder::new(
            msg_type,
            flags,
            seq,
            &rtmsg(self.dst_len, table8, self.protocol, self.scope, self.rtype),
        );
        m.attr_u32(RTA_TABLE, self.table);
        if self.dst_len > 0 {
            m.attr_ip(RTA_DST, self.dst);
        }
        if let Some(oif) = self.oif {
            m.attr_u32(RTA_OIF, oif);
        }
        if let Some(gw) = self.gateway {
            m.attr_ip(RTA_GATEWAY, gw);
        }
        if let Some(src) = self.prefsrc {
            m.attr_ip(RTA_PREFSRC, src);
        }
        if let Some(metric) = self.metric {
            m.attr_u32(RTA_PRIORITY, metric);
        }
        m.finish()
    }
}

/// An IPv4 policy-routing rule (lookup `table`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Rule {
    pub from: Option<(Ipv4Addr, u8)>,
    pub to: Option<(Ipv4Addr, u8)>,
    pub iif: Option<String>,
    pub table: u32,
    pub priority: u32,
    pub protocol: u8,
}

impl Rule {
    pub fn parse(msg: &NlMsg<'_>) -> Result<Option<Rule>, ParseError> {
        let (hdr, attrs) = msg.split(12)?;
        if hdr[0] != AF_INET {
            return Ok(None);
        }
        let (dst_len, src_len) = (hdr[1], hdr[2]);
        let mut r = Rule {
            table: hdr[4] as u32,
            ..Rule::default()
        };
        for at in attrs {
            let (ty, v) = at?;
            match ty {
                FRA_SRC => r.from = attr_ip(v).map(|a| (a, src_len)),
                FRA_DST => r.to = attr_ip(v).map(|a| (a, dst_len)),
                FRA_IIFNAME => r.iif = Some(attr_str(v)),
                FRA_TABLE => r.table = attr_u32(v).unwrap_or(r.table),
                FRA_PRIORITY => r.priority = attr_u32(v).unwrap_or(0),
                FRA_PROTOCOL => r.protocol = v.first().copied().unwrap_or(0),
                _ => {}
            }
        }
        Ok(Some(r))
    }

    pub fn build(&self, msg_type: u16, flags: u16, seq: u32) -> Vec<u8> {
        let table8 = if self.table < 256 {
            self.table as u8
        } else {
            252
        };
        let mut m = MessageBuilder::new(
            msg_type,
            flags,
            seq,
            &fib_rule_hdr(
                self.to.map_or(0, |t| t.1),
                self.from.map_or(0, |f| f.1),
                table8,
                FR_ACT_TO_TBL,
            ),
        );
        m.attr_u32(FRA_TABLE, self.table);
        m.attr_u32(FRA_PRIORITY, self.priority);
        m.attr_u8(FRA_PROTOCOL, self.protocol);
        if let Some((a, _)) = self.from {
            m.attr_ip(FRA_SRC, a);
        }
        if let Some((a, _)) = self.to {
            m.attr_ip(FRA_DST, a);
        }
        if let Some(i) = &self.iif {
            m.attr_str(FRA_IIFNAME, i);
        }
        m.finish()
    }
}

/// Parameters of a kernel IPIP device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IpipParams {
    pub name: String,
    pub local: Ipv4Addr,
    pub remote: Ipv4Addr,
    pub ttl: u8,
    /// Path MTU discovery (sets DF on the outer header); on by default in `ip`.
    pub pmtudisc: bool,
}

/// RTM_NEWLINK creating an ipip device (what `ip link add NAME type ipip
/// local L remote R ttl T` sends).
pub fn build_new_ipip(p: &IpipParams, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        seq,
        &ifinfomsg(0, 0, 0),
    );
    m.attr_str(IFLA_IFNAME, &p.name);
    let li = m.begin_nested(IFLA_LINKINFO);
    m.attr_str(IFLA_INFO_KIND, "ipip");
    let data = m.begin_nested(IFLA_INFO_DATA);
    m.attr_ip(IFLA_IPTUN_LOCAL, p.local)
        .attr_ip(IFLA_IPTUN_REMOTE, p.remote)
        .attr_u8(IFLA_IPTUN_TTL, p.ttl)
        .attr_u8(IFLA_IPTUN_PMTUDISC, p.pmtudisc as u8);
    m.end_nested(data);
    m.end_nested(li);
    m.finish()
}

pub fn build_get_link_by_name(name: &str, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(RTM_GETLINK, NLM_F_REQUEST, seq, &ifinfomsg(0, 0, 0));
    m.attr_str(IFLA_IFNAME, name);
    m.finish()
}

pub fn build_dump(msg_type: u16, family_header: &[u8], seq: u32) -> Vec<u8> {
    MessageBuilder::new(msg_type, NLM_F_REQUEST | NLM_F_DUMP, seq, family_header).finish()
}

pub fn build_set_link_up(index: u32, up: bool, seq: u32) -> Vec<u8> {
    let flags = if up { IFF_UP } else { 0 };
    MessageBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        &ifinfomsg(index as i32, flags, IFF_UP),
    )
    .finish()
}

pub fn build_set_link_mtu(index: u32, mtu: u32, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        RTM_NEWLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        &ifinfomsg(index as i32, 0, 0),
    );
    m.attr_u32(IFLA_MTU, mtu);
    m.finish()
}

pub fn build_del_link(index: u32, seq: u32) -> Vec<u8> {
    MessageBuilder::new(
        RTM_DELLINK,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        &ifinfomsg(index as i32, 0, 0),
    )
    .finish()
}

/// RTM_NEWADDR / RTM_DELADDR for `addr/prefix_len` on `index`, tagged with
/// IFA_PROTO = `protocol` (0 = no tag).
pub fn build_addr(
    msg_type: u16,
    flags: u16,
    index: u32,
    addr: Ipv4Addr,
    prefix_len: u8,
    protocol: u8,
    seq: u32,
) -> Vec<u8> {
    let scope = if addr.is_loopback() {
        RT_SCOPE_HOST
    } else {
        RT_SCOPE_UNIVERSE
    };
    let mut m = MessageBuilder::new(msg_type, flags, seq, &ifaddrmsg(prefix_len, scope, index));
    m.attr_ip(IFA_LOCAL, addr).attr_ip(IFA_ADDRESS, addr);
    if protocol != 0 {
        m.attr_u8(IFA_PROTO, protocol);
    }
    m.finish()
}

pub const NUD_REACHABLE: u16 = 0x02;

/// RTM_DELNEIGH: remove the ARP entry for `ip` on `index`.
pub fn build_neigh_del(index: u32, ip: Ipv4Addr, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        RTM_DELNEIGH,
        NLM_F_REQUEST | NLM_F_ACK,
        seq,
        &ndmsg(index as i32, 0),
    );
    m.attr_ip(NDA_DST, ip);
    m.finish()
}

/// RTM_NEWNEIGH: a permanent ARP entry `ip -> mac` on `index`.
pub fn build_neigh_add(index: u32, ip: Ipv4Addr, mac: [u8; 6], seq: u32) -> Vec<u8> {
    build_neigh_state(index, ip, mac, NUD_PERMANENT, seq)
}

/// RTM_NEWNEIGH: ARP entry `ip -> mac` on `index` in NUD `state`
/// (created or replaced).
pub fn build_neigh_state(index: u32, ip: Ipv4Addr, mac: [u8; 6], state: u16, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        RTM_NEWNEIGH,
        NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE | NLM_F_REPLACE,
        seq,
        &ndmsg(index as i32, state),
    );
    m.attr_ip(NDA_DST, ip).attr(NDA_LLADDR, &mac);
    m.finish()
}
