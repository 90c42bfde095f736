//! tmipd's typed configuration, filled from `tmipd.rc` (TMip 0.14a keys plus
//! this port's additions) or from the same key/value lines produced from a
//! UCI section. Validated once: an unknown key, a bad value or a missing
//! mandatory key is a [`ConfigError`] naming the file and line.
//!
//! Things that need the running system (resolving the MLR's name, the
//! interfaces' subnets for `addr_pool IFACE * *`) stay symbolic here and are
//! resolved by the daemon at start ([`AddrPoolSpec::resolve`]).

use super::keys::{Default, Field, Hup, Key, Table, Type};
use super::rc::RcLine;
use super::ConfigError;
use crate::addr::{prefix_to_mask, Cell30};
use crate::tunnel::BackendChoice;
use crate::{
    bool_key, debug_level_key, field, network_name_key, opt_word_key, secret_key, uint_key,
    word_key,
};
use std::net::Ipv4Addr;
use std::time::Duration;

pub use super::{Source, UCI_FILE};
/// The UCI section type tmipd reads.
pub const UCI_TYPE: &str = "tmipd";

/// Build-time ceiling of the station table; `max_stations` may lower it.
pub const STATION_CAPACITY: usize = 1024;
/// Default `new_station_rate`: new MACs per second per cell.
pub const DEFAULT_NEW_STATION_RATE: u32 = 10;
/// Build-time ceiling of the peer (other CN) table; `max_peers` may lower it.
pub const PEER_CAPACITY: usize = 64;

/// Where the MLR is: a host name or address (resolved at start) and a port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MlrLocation {
    pub host: String,
    pub port: u16,
}

impl std::fmt::Display for MlrLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.port == crate::MLR_PORT {
            write!(f, "{}", self.host)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

/// One end of an `addr_pool` range: `*` (the interface subnet's edge) or an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PoolBound {
    Subnet,
    Addr(Ipv4Addr),
}

/// `addr_pool IFACE FIRST LAST` as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AddrPoolSpec {
    pub iface: String,
    pub first: PoolBound,
    pub last: PoolBound,
    pub line: usize,
}

/// A resolved pool: the /30 cells `first..=last` (network addresses).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CellRange {
    pub first: Cell30,
    pub last: Cell30,
}

impl CellRange {
    pub fn cells(&self) -> u32 {
        (self.last.to_u32().saturating_sub(self.first.to_u32())) / 4 + 1
    }
    pub fn contains(&self, ip: Ipv4Addr) -> bool {
        let n = Cell30::containing(ip).to_u32();
        n >= self.first.to_u32() && n <= self.last.to_u32()
    }
    pub fn overlaps(&self, other: &CellRange) -> bool {
        self.first.to_u32() <= other.last.to_u32() && other.first.to_u32() <= self.last.to_u32()
    }
}

impl AddrPoolSpec {
    /// Turn the spec into a cell range given the interface's address and
    /// prefix length. `*` means the subnet minus its first and last /30 (they
    /// hold the subnet's network and broadcast addresses), as TMip 0.14a did
    /// (`10.13.150.0/24` -> `[10.13.150.4 --> 10.13.150.248]`).
    pub fn resolve(&self, iface_ip: Ipv4Addr, prefix: u8) -> Result<CellRange, String> {
        let mask = u32::from(prefix_to_mask(prefix));
        let net = u32::from(iface_ip) & mask;
        let bcast = net | !mask;
        let first = match self.first {
            PoolBound::Subnet => {
                if prefix > 28 {
                    return Err(format!(
                        "interface {} subnet /{prefix} is too small for a pool of /30 cells",
                        self.iface
                    ));
                }
                net + 4
            }
            PoolBound::Addr(a) => u32::from(a) & !3,
        };
        let last = match self.last {
            PoolBound::Subnet => {
                if prefix > 28 {
                    return Err(format!(
                        "interface {} subnet /{prefix} is too small for a pool of /30 cells",
                        self.iface
                    ));
                }
                (bcast & !3) - 4
            }
            PoolBound::Addr(a) => u32::from(a) & !3,
        };
        if first > last {
            return Err(format!(
                "pool on {} is empty ({} > {})",
                self.iface,
                Ipv4Addr::from(first),
                Ipv4Addr::from(last)
            ));
        }
        // Both bounds are /30-aligned by construction.
        let (Some(f), Some(l)) = (
            Cell30::from_network(Ipv4Addr::from(first)),
            Cell30::from_network(Ipv4Addr::from(last)),
        ) else {
            return Err("internal: unaligned pool".into());
        };
        Ok(CellRange { first: f, last: l })
    }
}

/// `static_route NET/LEN GW`, handed to DHCP clients (options 121 and 249).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StaticRoute {
    pub net: Ipv4Addr,
    pub len: u8,
    pub gw: Ipv4Addr,
}

/// `hostapd_ctrl` / `ubus`: a socket path, `auto` (the platform's default
/// path, used when it exists, checked again periodically) or `off`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SocketSetting {
    Auto,
    Off,
    Path(String),
}

/// `shared_link`: is `mobile_if` a link the CN shares with hosts that are
/// not stations (see `cn::link_mode`)?
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedLink {
    /// Shared when `mobile_if` is also `cn_if` or is a bridge.
    Auto,
    On,
    Off,
}

/// Where OpenWrt's hostapd puts its control sockets (`<dir>/<ifname>`).
pub const HOSTAPD_CTRL_DIR: &str = "/var/run/hostapd";
/// ubusd's socket since OpenWrt 21.02.
pub const UBUS_SOCKET: &str = "/var/run/ubus/ubus.sock";
/// The ubus object of the main (or only) instance.
pub const UBUS_OBJECT: &str = "tmip";

/// The whole of tmipd's configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TmipdConfig {
    /// The file the settings came from (for messages).
    pub source: String,
    /// Where to re-read them from on SIGHUP.
    pub origin: Source,
    pub mlr: MlrLocation,
    /// The backup register; the CN fails over to it and back.
    pub backup_mlr: Option<MlrLocation>,
    /// MLR heartbeat interval (ms); `None`: the MLR's bind reply decides,
    /// or [`DEFAULT_FAILOVER_HEARTBEAT_MS`] with a `backup_mlr`.
    pub mlr_heartbeat_ms: Option<u32>,
    /// Silence after which the MLR is taken for dead (ms); `None`: three
    /// heartbeats, or [`DEFAULT_FAILOVER_DEADLINE_MS`] with a `backup_mlr`.
    pub mlr_deadline_ms: Option<u32>,
    pub cn_name: String,
    pub tunnel_prefix: String,
    /// `tunnel_backend auto|kernel|userspace` (default auto).
    pub tunnel_backend: BackendChoice,
    pub cn_if: String,
    pub mobile_if: String,
    pub network_name: String,
    pub addr_pools: Vec<AddrPoolSpec>,
    pub log_file: String,
    pub log: bool,
    pub foreground: bool,
    pub debug_level: u8,
    pub status_file: String,
    pub secret: Option<String>,
    pub dhcp: bool,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub static_routes: Vec<StaticRoute>,
    /// Seconds.
    pub lease_time: u32,
    pub reverse_tunnel: bool,
    /// Whether `mobile_if` is shared with other hosts (proxy ARP for the
    /// stations that leave it).
    pub shared_link: SharedLink,
    /// Drop packets from mobile_if whose (source MAC, source IP) is not a
    /// station adopted here (nf_tables; see docs/SECURITY.md).
    pub source_guard: bool,
    /// TCP port of this CN's CN-to-CN MLRP listener.
    pub cn_port: u16,
    /// Address the CN-to-CN listener binds; `None` = the `cn_if` address.
    pub listen_addr: Option<Ipv4Addr>,
    pub max_stations: usize,
    pub max_peers: usize,
    /// New station MACs per second this cell may bring in (DHCP DISCOVERs
    /// and static clients of MACs not served here), with a burst of four
    /// seconds' worth; 0 = no limit. A cell flooding random MACs then
    /// cannot drain the network's pools.
    pub new_station_rate: u32,
    pub pid_file: Option<String>,
    /// hostapd control interface for station events on `mobile_if`.
    pub hostapd_ctrl: SocketSetting,
    /// ubusd's socket (publish the status object, subscribe to hostapd).
    pub ubus: SocketSetting,
    /// The ubus object name; `None` = derived (see [`TmipdConfig::ubus_object_name`]).
    pub ubus_object: Option<String>,
}

/// With a `backup_mlr`, a dead register is noticed within a second:
/// pings every 250 ms, dead after 1000 ms of silence (a process that dies
/// closes its connections, which the CN notices at once; the heartbeat is
/// for hosts and links that fail silently).
pub const DEFAULT_FAILOVER_HEARTBEAT_MS: u32 = 250;
pub const DEFAULT_FAILOVER_DEADLINE_MS: u32 = 1000;

/// Every key tmipd reads: type, default, HUP behaviour and parser. See
/// [`keys`](super::keys) for what is derived from it.
pub static TABLE: Table<TmipdConfig> = Table {
    keys: &[
        Key {
            name: "mlr",
            ty: Type::Words("HOST[:PORT]"),
            default: Default::Required,
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.mlr = parse_mlr(l, f)?;
                Ok(())
            },
            field: field!(mlr),
        },
        Key {
            name: "backup_mlr",
            ty: Type::Words("HOST[:PORT]"),
            default: Default::Unset("none"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.backup_mlr = Some(parse_mlr(l, f)?);
                Ok(())
            },
            field: field!(backup_mlr),
        },
        Key {
            name: "mlr_heartbeat",
            ty: Type::Uint {
                min: 20,
                max: 60_000,
                unit: "ms",
            },
            default: Default::Unset("the MLR's bind reply; 250 with `backup_mlr`"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                let n: u32 = l.parse(f)?;
                if !(20..=60_000).contains(&n) {
                    return Err(l.error(f, "want 20..60000 milliseconds"));
                }
                c.mlr_heartbeat_ms = Some(n);
                Ok(())
            },
            field: field!(mlr_heartbeat_ms),
        },
        Key {
            name: "mlr_deadline",
            ty: Type::Uint {
                min: 50,
                max: 600_000,
                unit: "ms",
            },
            default: Default::Unset("three heartbeats; 1000 with `backup_mlr`"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                let n: u32 = l.parse(f)?;
                if !(50..=600_000).contains(&n) {
                    return Err(l.error(f, "want 50..600000 milliseconds"));
                }
                c.mlr_deadline_ms = Some(n);
                Ok(())
            },
            field: field!(mlr_deadline_ms),
        },
        Key {
            name: "cn_name",
            ty: Type::Text,
            default: Default::Unset("empty"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                if l.rest.len() > 64 {
                    return Err(l.error(f, "longer than 64 bytes"));
                }
                c.cn_name = l.rest.to_string();
                Ok(())
            },
            field: field!(cn_name),
        },
        Key {
            name: "tunnel_prefix",
            ty: Type::Word,
            default: Default::Value("tmip"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                let v = l.single(f)?;
                // Device names are PREFIX plus a number; keep room for it.
                if v.len() > 10 || !v.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
                    return Err(l.error(
                        f,
                        format!("bad prefix '{v}' (letters, digits, _; at most 10)"),
                    ));
                }
                c.tunnel_prefix = v.to_string();
                Ok(())
            },
            field: field!(tunnel_prefix),
        },
        Key {
            name: "tunnel_backend",
            ty: Type::Choice(&BackendChoice::NAMES),
            default: Default::Value("auto"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                let v = l.single(f)?;
                c.tunnel_backend = BackendChoice::parse(v).ok_or_else(|| {
                    l.error(
                        f,
                        format!(
                            "bad tunnel_backend '{v}' (want {})",
                            BackendChoice::NAMES.join(", ")
                        ),
                    )
                })?;
                Ok(())
            },
            field: field!(tunnel_backend),
        },
        Key {
            name: "cn_if",
            ty: Type::Word,
            default: Default::Required,
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.cn_if = iface_name(l, f)?;
                Ok(())
            },
            field: field!(cn_if),
        },
        Key {
            name: "mobile_if",
            ty: Type::Word,
            default: Default::Required,
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.mobile_if = iface_name(l, f)?;
                Ok(())
            },
            field: field!(mobile_if),
        },
        network_name_key!(),
        Key {
            name: "addr_pool",
            ty: Type::Words("IFACE FIRST LAST (`*` = the subnet's edge)"),
            default: Default::Unset("none (stations get cells from other CNs' pools)"),
            hup: Hup::Restart,
            list: true,
            set: |c, l, f| {
                c.addr_pools.push(parse_pool(l, f)?);
                Ok(())
            },
            // What the pools are, not which line they were on.
            field: Field {
                same: |a, b| {
                    a.addr_pools.len() == b.addr_pools.len()
                        && a.addr_pools.iter().zip(&b.addr_pools).all(|(x, y)| {
                            (&x.iface, x.first, x.last) == (&y.iface, y.first, y.last)
                        })
                },
                keep: |n, o| n.addr_pools = o.addr_pools.clone(),
            },
        },
        word_key!(log_file, "/var/log/tmipd.log", Restart),
        bool_key!(log, "1", Restart),
        Key {
            // -F sets it too (procd runs every instance so): a HUP reading
            // `foreground 0` from the file has nothing to report or apply.
            field: Field {
                same: |_, _| true,
                keep: |n, o| n.foreground = o.foreground,
            },
            ..bool_key!(foreground, "0", Restart)
        },
        debug_level_key!(Live),
        word_key!(status_file, "/var/run/tmipd.status", Live),
        secret_key!(Restart),
        bool_key!(dhcp, "1", Restart),
        Key {
            name: "dns",
            ty: Type::Words("IPv4 addresses"),
            default: Default::Unset("none"),
            hup: Hup::Live,
            list: true,
            set: |c, l, f| {
                if l.rest.is_empty() {
                    return Err(l.error(f, "missing value"));
                }
                for v in l.args() {
                    c.dns.push(ipv4(l, f, v)?);
                }
                Ok(())
            },
            field: field!(dns),
        },
        opt_word_key!(domain, Type::Word, Live),
        Key {
            name: "static_route",
            ty: Type::Words("NET/LEN GATEWAY"),
            default: Default::Unset("none"),
            hup: Hup::Live,
            list: true,
            set: |c, l, f| {
                c.static_routes.push(parse_route(l, f)?);
                Ok(())
            },
            field: field!(static_routes),
        },
        // Short leases are for test beds; routers use hours.
        uint_key!(lease_time: u32, 10, u32::MAX, "s", "3600", Live),
        bool_key!(reverse_tunnel, "1", Live),
        Key {
            name: "shared_link",
            ty: Type::Choice(&["auto", "on", "off"]),
            default: Default::Value("auto"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.shared_link = match l.single(f)? {
                    "auto" => SharedLink::Auto,
                    "on" | "1" | "true" | "yes" => SharedLink::On,
                    "off" | "0" | "false" | "no" => SharedLink::Off,
                    v => return Err(l.error(f, format!("want auto, on or off; got '{v}'"))),
                };
                Ok(())
            },
            field: field!(shared_link),
        },
        bool_key!(source_guard, "1", Restart),
        uint_key!(cn_port: u16, 1, u16::MAX, "", "5554", Restart),
        Key {
            name: "listen_addr",
            ty: Type::Ipv4,
            default: Default::Unset("the `cn_if` address"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.listen_addr = Some(ipv4(l, f, l.single(f)?)?);
                Ok(())
            },
            field: field!(listen_addr),
        },
        uint_key!(max_stations: usize, 1, STATION_CAPACITY, "", "256", Restart),
        uint_key!(max_peers: usize, 1, PEER_CAPACITY, "", "32", Restart),
        uint_key!(new_station_rate: u32, 0, u32::MAX, "per second (0 = no limit)", "10", Restart),
        opt_word_key!(pid_file, Type::Word, Restart),
        Key {
            name: "hostapd_ctrl",
            ty: Type::Words("socket path, `auto` or `off`"),
            default: Default::Value("auto"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.hostapd_ctrl = parse_socket(l, f)?;
                Ok(())
            },
            field: field!(hostapd_ctrl),
        },
        Key {
            name: "ubus",
            ty: Type::Words("socket path, `auto` or `off`"),
            default: Default::Value("auto"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                c.ubus = parse_socket(l, f)?;
                Ok(())
            },
            field: field!(ubus),
        },
        Key {
            name: "ubus_object",
            ty: Type::Word,
            default: Default::Unset("`tmip`; `tmip.SECTION` for UCI sections other than `main`"),
            hup: Hup::Restart,
            list: false,
            set: |c, l, f| {
                let v = l.single(f)?;
                if v.is_empty()
                    || v.len() > 64
                    || !v
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    return Err(l.error(
                        f,
                        format!("bad object name '{v}' (letters, digits, . _ -; at most 64)"),
                    ));
                }
                c.ubus_object = Some(v.to_string());
                Ok(())
            },
            field: field!(ubus_object),
        },
    ],
    // The seed README's name for addr_pool in its quick-start text.
    aliases: &[("addr_alloc", "addr_pool")],
};

fn iface_name(l: &RcLine, file: &str) -> Result<String, ConfigError> {
    let v = l.single(file)?;
    if v.len() > 15 || v.contains('/') || v.contains(char::is_whitespace) {
        return Err(l.error(file, format!("bad interface name '{v}'")));
    }
    Ok(v.to_string())
}

fn ipv4(l: &RcLine, file: &str, v: &str) -> Result<Ipv4Addr, ConfigError> {
    v.parse::<Ipv4Addr>()
        .map_err(|_| l.error(file, format!("bad IPv4 address '{v}'")))
}

fn parse_mlr(l: &RcLine, file: &str) -> Result<MlrLocation, ConfigError> {
    let v = l.single(file)?;
    let (host, port) = match v.rsplit_once(':') {
        Some((h, p)) => {
            let port = p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| l.error(file, format!("bad port '{p}'")))?;
            (h, port)
        }
        None => (v, crate::MLR_PORT),
    };
    if host.is_empty() {
        return Err(l.error(file, "missing host"));
    }
    Ok(MlrLocation {
        host: host.to_string(),
        port,
    })
}

fn parse_pool(l: &RcLine, file: &str) -> Result<AddrPoolSpec, ConfigError> {
    let a: Vec<&str> = l.args().collect();
    let [iface, first, last] = a.as_slice() else {
        return Err(l.error(
            file,
            "expected IFACE FIRST LAST (`*` for the subnet's edge)",
        ));
    };
    if iface.len() > 15 {
        return Err(l.error(file, format!("bad interface name '{iface}'")));
    }
    let bound = |s: &str| -> Result<PoolBound, ConfigError> {
        if s == "*" {
            Ok(PoolBound::Subnet)
        } else {
            ipv4(l, file, s).map(PoolBound::Addr)
        }
    };
    let spec = AddrPoolSpec {
        iface: iface.to_string(),
        first: bound(first)?,
        last: bound(last)?,
        line: l.line,
    };
    if let (PoolBound::Addr(f), PoolBound::Addr(t)) = (spec.first, spec.last) {
        if u32::from(f) & !3 > u32::from(t) & !3 {
            return Err(l.error(file, format!("first {f} is after last {t}")));
        }
    }
    Ok(spec)
}

fn parse_socket(l: &RcLine, file: &str) -> Result<SocketSetting, ConfigError> {
    let v = l.single(file)?;
    Ok(match v {
        "auto" => SocketSetting::Auto,
        "off" | "0" | "false" | "no" => SocketSetting::Off,
        p if p.starts_with('/') && p.len() < 108 => SocketSetting::Path(p.to_string()),
        p => {
            return Err(l.error(
                file,
                format!("want an absolute socket path (< 108 bytes), auto or off; got '{p}'"),
            ))
        }
    })
}

fn parse_route(l: &RcLine, file: &str) -> Result<StaticRoute, ConfigError> {
    let a: Vec<&str> = l.args().collect();
    let [dest, gw] = a.as_slice() else {
        return Err(l.error(file, "expected NET/LEN GATEWAY"));
    };
    let (net, len) = dest
        .split_once('/')
        .ok_or_else(|| l.error(file, format!("bad destination '{dest}' (want NET/LEN)")))?;
    let net = ipv4(l, file, net)?;
    let len: u8 = len
        .parse()
        .ok()
        .filter(|n| *n <= 32)
        .ok_or_else(|| l.error(file, format!("bad prefix length '{len}'")))?;
    if u32::from(net) & !u32::from(prefix_to_mask(len)) != 0 {
        return Err(l.error(file, format!("{dest} has host bits set")));
    }
    Ok(StaticRoute {
        net,
        len,
        gw: ipv4(l, file, gw)?,
    })
}

impl TmipdConfig {
    /// Read and validate `path`.
    pub fn load(path: &str) -> Result<TmipdConfig, ConfigError> {
        Self::load_source(&Source::Rc(path.to_string()))
    }

    /// Read and validate from either source.
    pub fn load_source(src: &Source) -> Result<TmipdConfig, ConfigError> {
        let mut c = super::load_source(src, UCI_TYPE, Self::from_lines)?;
        c.origin = src.clone();
        Ok(c)
    }

    /// The options of UCI section `section` (type `tmipd`) of `text`.
    pub fn from_uci(file: &str, text: &str, section: &str) -> Result<TmipdConfig, ConfigError> {
        let mut c = super::from_uci(file, text, section, UCI_TYPE, Self::from_lines)?;
        c.origin = Source::Uci {
            file: file.to_string(),
            section: section.to_string(),
        };
        Ok(c)
    }

    /// Parse rc text (`file` names it in errors).
    pub fn parse(file: &str, text: &str) -> Result<TmipdConfig, ConfigError> {
        let lines = super::rc::parse(file, text)?;
        Self::from_lines(file, &lines)
    }

    /// A config with nothing set (what [`TABLE`]'s defaults and the
    /// file's lines are written into).
    pub fn blank(file: &str) -> TmipdConfig {
        TmipdConfig {
            source: file.to_string(),
            origin: Source::Rc(file.to_string()),
            mlr: MlrLocation {
                host: String::new(),
                port: crate::MLR_PORT,
            },
            backup_mlr: None,
            mlr_heartbeat_ms: None,
            mlr_deadline_ms: None,
            cn_name: String::new(),
            tunnel_prefix: String::new(),
            tunnel_backend: BackendChoice::Auto,
            cn_if: String::new(),
            mobile_if: String::new(),
            network_name: String::new(),
            addr_pools: Vec::new(),
            log_file: String::new(),
            log: false,
            foreground: false,
            debug_level: 0,
            status_file: String::new(),
            secret: None,
            dhcp: false,
            dns: Vec::new(),
            domain: None,
            static_routes: Vec::new(),
            lease_time: 0,
            reverse_tunnel: false,
            shared_link: SharedLink::Auto,
            source_guard: false,
            cn_port: 0,
            listen_addr: None,
            max_stations: 0,
            max_peers: 0,
            new_station_rate: 0,
            pid_file: None,
            hostapd_ctrl: SocketSetting::Off,
            ubus: SocketSetting::Off,
            ubus_object: None,
        }
    }

    /// Build from key/value lines (from an rc file or a UCI section).
    pub fn from_lines(file: &str, lines: &[RcLine]) -> Result<TmipdConfig, ConfigError> {
        let mut c = TmipdConfig::blank(file);
        TABLE.set_defaults(&mut c, file)?;
        TABLE.read(&mut c, file, lines)?;
        if c.backup_mlr.is_some() && c.mlr_deadline_ms.is_some_and(|d| d < 600) {
            return Err(ConfigError::new(
                file,
                0,
                "with backup_mlr, mlr_deadline must be at least 600 ms (a register of a pair stops allocating from a CN's pool 500 ms after it last heard it)",
            ));
        }
        if let (Some(h), Some(d)) = (c.heartbeat().0, c.heartbeat().1) {
            if d <= h {
                return Err(ConfigError::new(
                    file,
                    0,
                    format!(
                        "mlr_deadline ({} ms) must be longer than mlr_heartbeat ({} ms)",
                        d.as_millis(),
                        h.as_millis()
                    ),
                ));
            }
        }
        Ok(c)
    }

    /// hostapd's control socket for `mobile_if`: the configured path, or
    /// for `auto` `/var/run/hostapd/<mobile_if>`; `None` when off.
    pub fn hostapd_ctrl_path(&self) -> Option<String> {
        match &self.hostapd_ctrl {
            SocketSetting::Off => None,
            SocketSetting::Auto => Some(format!("{HOSTAPD_CTRL_DIR}/{}", self.mobile_if)),
            SocketSetting::Path(p) => Some(p.clone()),
        }
    }

    /// The hostapd interface (BSS) whose events this instance follows:
    /// the file name of an explicit `hostapd_ctrl` path (hostapd names its
    /// sockets after the interface, e.g. `/var/run/hostapd/wlan0` when
    /// `mobile_if` is the bridge `br-lan`), else `mobile_if`. The ubus
    /// subscription is `hostapd.<this>`.
    pub fn hostapd_iface(&self) -> String {
        match &self.hostapd_ctrl {
            SocketSetting::Path(p) => std::path::Path::new(p)
                .file_name()
                .and_then(|n| n.to_str())
                .filter(|n| !n.is_empty())
                .unwrap_or(&self.mobile_if)
                .to_string(),
            _ => self.mobile_if.clone(),
        }
    }

    /// ubusd's socket: the configured path or, for `auto`, OpenWrt's;
    /// `None` when off.
    pub fn ubus_socket(&self) -> Option<String> {
        match &self.ubus {
            SocketSetting::Off => None,
            SocketSetting::Auto => Some(UBUS_SOCKET.to_string()),
            SocketSetting::Path(p) => Some(p.clone()),
        }
    }

    /// The ubus object this instance publishes. ubusd refuses a second
    /// object with a taken name, so instances need different ones: an
    /// explicit `ubus_object`, else `tmip` for an rc file or the UCI section
    /// `main`, else `tmip.<section>` (characters other than letters, digits,
    /// `_` and `-` in the section name become `_`).
    pub fn ubus_object_name(&self) -> String {
        if let Some(o) = &self.ubus_object {
            return o.clone();
        }
        match &self.origin {
            Source::Uci { section, .. } if section != "main" => {
                let clean: String = section
                    .chars()
                    .map(|ch| {
                        if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                            ch
                        } else {
                            '_'
                        }
                    })
                    .collect();
                format!("{UBUS_OBJECT}.{clean}")
            }
            _ => UBUS_OBJECT.to_string(),
        }
    }

    /// The MLR heartbeat interval and silence deadline in force: the
    /// configured ones, else the failover defaults when a backup is
    /// configured, else `None` (the MLR's bind reply decides).
    pub fn heartbeat(&self) -> (Option<Duration>, Option<Duration>) {
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        let backup = self.backup_mlr.is_some();
        let pick = |set: Option<u32>, default: u32| set.or(backup.then_some(default)).map(ms);
        (
            pick(self.mlr_heartbeat_ms, DEFAULT_FAILOVER_HEARTBEAT_MS),
            pick(self.mlr_deadline_ms, DEFAULT_FAILOVER_DEADLINE_MS),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SEED: &str = "mlr mlr.foo.bar.com\ncn_name My Test CN\ntunnel_prefix tmip0\n\
cn_if rl1\nmobile_if rl0\nnetwork_name my-tmip-mobility\naddr_pool rl0 * *\n\
log_file /var/log/tmipd.log\nlog true\n";

    #[test]
    fn reads_the_seed_quick_start_config() {
        let c = TmipdConfig::parse("tmipd.rc", SEED).unwrap();
        assert_eq!(c.mlr.host, "mlr.foo.bar.com");
        assert_eq!(c.mlr.port, 6554);
        assert_eq!(c.cn_name, "My Test CN");
        assert_eq!(c.tunnel_prefix, "tmip0");
        assert_eq!(c.cn_if, "rl1");
        assert_eq!(c.mobile_if, "rl0");
        assert_eq!(c.network_name, "my-tmip-mobility");
        assert_eq!(c.addr_pools.len(), 1);
        assert_eq!(c.addr_pools[0].first, PoolBound::Subnet);
        assert!(c.log && c.dhcp && c.reverse_tunnel && c.source_guard && !c.foreground);
        assert_eq!(c.cn_port, 5554);
        assert_eq!(c.debug_level, 2);
    }

    #[test]
    fn backup_mlr_and_the_heartbeat_settings() {
        let c = TmipdConfig::parse("t.rc", SEED).unwrap();
        assert_eq!(c.backup_mlr, None);
        assert_eq!(c.heartbeat(), (None, None), "no backup: the MLR decides");
        let text = format!("{SEED}backup_mlr mlr2.foo.bar.com:7000\n");
        let c = TmipdConfig::parse("t.rc", &text).unwrap();
        let b = c.backup_mlr.clone().unwrap();
        assert_eq!((b.host.as_str(), b.port), ("mlr2.foo.bar.com", 7000));
        let ms = |v| Some(Duration::from_millis(v));
        assert_eq!(
            c.heartbeat(),
            (ms(250), ms(1000)),
            "failover defaults: <= 1 s"
        );
        let text = format!("{SEED}backup_mlr b\nmlr_heartbeat 100\nmlr_deadline 700\n");
        let c = TmipdConfig::parse("t.rc", &text).unwrap();
        assert_eq!(c.heartbeat(), (ms(100), ms(700)));
        let e = TmipdConfig::parse("t.rc", &format!("{SEED}backup_mlr b\nmlr_deadline 400\n"))
            .unwrap_err();
        assert!(e.to_string().contains("at least 600 ms"), "{e}");
        let e = TmipdConfig::parse(
            "t.rc",
            &format!("{SEED}mlr_heartbeat 500\nmlr_deadline 400\n"),
        )
        .unwrap_err();
        assert!(e.to_string().contains("must be longer"), "{e}");
        let e = TmipdConfig::parse("t.rc", &format!("{SEED}mlr_heartbeat 5\n")).unwrap_err();
        assert!(e.to_string().contains("t.rc:10: mlr_heartbeat"), "{e}");
        let a = TmipdConfig::parse("t.rc", SEED).unwrap();
        let b = TmipdConfig::parse("t.rc", &format!("{SEED}backup_mlr b\n")).unwrap();
        assert_eq!(TABLE.reload(&a, b).restart, vec!["backup_mlr"]);
    }

    #[test]
    fn the_shipped_tmipd_rc_parses() {
        let text = include_str!("../../tmipd.rc");
        let c = TmipdConfig::parse("tmipd.rc", text).unwrap();
        assert_eq!(c.network_name, "my-tmip-mobility");
    }

    #[test]
    fn additions_parse() {
        let t = format!(
            "{SEED}secret \"s3cret #x\"\ndhcp off\ndns 10.0.0.53\ndns 9.9.9.9 1.1.1.1\n\
domain example.org\nstatic_route 192.168.0.0/16 10.13.0.1\nlease_time 600\n\
reverse_tunnel false\ncn_port 5600\nlisten_addr 10.13.0.5\nmax_stations 3\n\
source_guard off\n"
        );
        let c = TmipdConfig::parse("t.rc", &t).unwrap();
        assert_eq!(c.secret.as_deref(), Some("s3cret #x"));
        assert!(!c.dhcp && !c.reverse_tunnel && !c.source_guard);
        assert_eq!(c.dns.len(), 3);
        assert_eq!(c.static_routes[0].len, 16);
        assert_eq!(c.lease_time, 600);
        assert_eq!(c.cn_port, 5600);
        assert_eq!(c.listen_addr, Some(Ipv4Addr::new(10, 13, 0, 5)));
        assert_eq!(c.max_stations, 3);
    }

    #[test]
    fn tunnel_backend_is_auto_unless_forced() {
        assert_eq!(
            TmipdConfig::parse("t.rc", SEED).unwrap().tunnel_backend,
            BackendChoice::Auto
        );
        for (v, want) in [
            ("auto", BackendChoice::Auto),
            ("kernel", BackendChoice::Kernel),
            ("userspace", BackendChoice::Userspace),
        ] {
            let c = TmipdConfig::parse("t.rc", &format!("{SEED}tunnel_backend {v}\n")).unwrap();
            assert_eq!(c.tunnel_backend, want);
        }
        let a = TmipdConfig::parse("t.rc", SEED).unwrap();
        let k = TmipdConfig::parse("t.rc", &format!("{SEED}tunnel_backend kernel\n")).unwrap();
        assert_eq!(TABLE.reload(&a, k).restart, ["tunnel_backend"]);
        assert_eq!(
            TmipdConfig::parse("t.rc", &format!("{SEED}tunnel_backend ipip\n"))
                .unwrap_err()
                .to_string(),
            "t.rc:10: tunnel_backend: bad tunnel_backend 'ipip' (want auto, kernel, userspace)"
        );
    }

    #[test]
    fn mlr_takes_an_optional_port() {
        let t = SEED.replace("mlr mlr.foo.bar.com", "mlr 10.0.0.1:7000");
        let c = TmipdConfig::parse("t.rc", &t).unwrap();
        assert_eq!(c.mlr.host, "10.0.0.1");
        assert_eq!(c.mlr.port, 7000);
        let t = SEED.replace("mlr mlr.foo.bar.com", "mlr 10.0.0.1:x");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc:1: mlr: bad port 'x'"
        );
    }

    #[test]
    fn errors_name_file_and_line() {
        let t = format!("{SEED}bogus 1\n");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc:10: unknown key 'bogus'"
        );
        let t = format!("{SEED}debug_level 9\n");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc:10: debug_level: 9 is out of range 0..7"
        );
        let t = format!("{SEED}addr_pool rl0 10.0.0.8\n");
        assert!(TmipdConfig::parse("t.rc", &t)
            .unwrap_err()
            .to_string()
            .starts_with("t.rc:10: addr_pool: expected IFACE FIRST LAST"));
        let t = format!("{SEED}static_route 10.0.0.1/8 1.2.3.4\n");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc:10: static_route: 10.0.0.1/8 has host bits set"
        );
        let t = format!("{SEED}log maybe\n");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc:10: log: set twice (first on line 9)"
        );
        let t = SEED.replace("mobile_if rl0\n", "");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap_err().to_string(),
            "t.rc: missing mandatory key 'mobile_if'"
        );
    }

    #[test]
    fn a_bad_list_entry_is_named_by_its_own_line() {
        let text = "config tmipd 'main'\n\
                    \toption mlr '10.0.0.250'\n\
                    \toption cn_if 'core0'\n\
                    \toption mobile_if 'mob0'\n\
                    \toption network_name 'n'\n\
                    \tlist dns '192.168.1.1'\n\
                    \tlist dns '192.168.1.2'\n\
                    \tlist dns 'not-an-address'\n";
        let e = TmipdConfig::from_uci("/etc/config/tmip", text, "main").unwrap_err();
        assert!(e.to_string().starts_with("/etc/config/tmip:8:"), "{e}");
        let base = "config tmipd 'main'\n\toption mlr 'm'\n\toption cn_if 'a'\n\
                    \toption mobile_if 'b'\n\toption network_name 'n'\n";
        for (list, line) in [
            ("\tlist addr_pool 'b * *'\n\tlist addr_pool 'b 10.0.0.9'\n", 7),
            (
                "\tlist static_route '10.0.0.0/8 10.1.0.1'\n\n\tlist static_route '10.0.0.0/33 10.1.0.1'\n",
                8,
            ),
            ("\tlist dns '10.0.0.1'\n\toption frob 'x'\n", 7),
        ] {
            let e = TmipdConfig::from_uci("/etc/config/tmip", &format!("{base}{list}"), "main")
                .unwrap_err()
                .to_string();
            assert!(e.starts_with(&format!("/etc/config/tmip:{line}: ")), "{e}");
        }
        let e = TmipdConfig::from_uci(
            "/etc/config/tmip",
            &format!("{base}\toption frob 'x'\n"),
            "main",
        )
        .unwrap_err();
        assert_eq!(e.to_string(), "/etc/config/tmip:6: unknown key 'frob'");
    }

    #[test]
    fn reads_the_shipped_uci_defaults_and_names_uci_lines() {
        let text = include_str!("../../openwrt/tmipd/files/tmip.config");
        let c = TmipdConfig::from_uci("/etc/config/tmip", text, "main").unwrap();
        assert_eq!(c.cn_if, "br-lan");
        assert_eq!(c.addr_pools[0].iface, "wlan0");
        assert_eq!(c.dns, vec![Ipv4Addr::new(192, 168, 1, 1)]);
        assert_eq!(c.debug_level, 1);
        assert_eq!(
            c.origin,
            Source::Uci {
                file: "/etc/config/tmip".into(),
                section: "main".into()
            }
        );
        let c2 = TmipdConfig::from_uci("/etc/config/tmip", text, "@tmipd[0]").unwrap();
        assert_eq!(c2.cn_name, c.cn_name);
        let e = TmipdConfig::from_uci("/etc/config/tmip", text, "mlr").unwrap_err();
        assert!(e.to_string().contains("not 'tmipd'"), "{e}");
        let bad = "config tmipd 'x'\n\toption mlr 'm'\n\toption lease_time 'soon'\n";
        assert!(TmipdConfig::from_uci("/etc/config/tmip", bad, "x")
            .unwrap_err()
            .to_string()
            .starts_with("/etc/config/tmip:3: lease_time: bad value 'soon'"));
    }

    #[test]
    fn station_event_sockets_and_the_ubus_object_name() {
        let c = TmipdConfig::parse("t.rc", SEED).unwrap();
        assert_eq!(
            c.hostapd_ctrl_path().as_deref(),
            Some("/var/run/hostapd/rl0")
        );
        assert_eq!(c.ubus_socket().as_deref(), Some(UBUS_SOCKET));
        assert_eq!(c.ubus_object_name(), "tmip");
        let t = format!("{SEED}hostapd_ctrl /tmp/h/rl0\nubus off\nubus_object tmip.cell-2\n");
        let c = TmipdConfig::parse("t.rc", &t).unwrap();
        assert_eq!(c.hostapd_ctrl_path().as_deref(), Some("/tmp/h/rl0"));
        assert_eq!(c.hostapd_iface(), "rl0");
        let t2 = t.replace("/tmp/h/rl0", "/var/run/hostapd/wlan1");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t2).unwrap().hostapd_iface(),
            "wlan1"
        );
        assert_eq!(c.ubus_socket(), None);
        assert_eq!(c.ubus_object_name(), "tmip.cell-2");
        let t = format!("{SEED}hostapd_ctrl off\n");
        assert_eq!(
            TmipdConfig::parse("t.rc", &t).unwrap().hostapd_ctrl_path(),
            None
        );
        let t = format!("{SEED}hostapd_ctrl relative/path\n");
        assert!(TmipdConfig::parse("t.rc", &t)
            .unwrap_err()
            .to_string()
            .starts_with("t.rc:10: hostapd_ctrl: want an absolute socket path"));
        let t = format!("{SEED}ubus_object bad/name\n");
        assert!(TmipdConfig::parse("t.rc", &t).is_err());
        // UCI: section `main` publishes `tmip`, others `tmip.<section>`.
        let uci = "config tmipd 'main'\n\toption mlr 'm'\n\toption cn_if 'a'\n\toption mobile_if 'b'\n\
                   \toption network_name 'n'\nconfig tmipd 'cell2'\n\toption mlr 'm'\n\toption cn_if 'a'\n\
                   \toption mobile_if 'c'\n\toption network_name 'n'\n\toption tunnel_prefix 't2'\n";
        let main = TmipdConfig::from_uci("/etc/config/tmip", uci, "main").unwrap();
        assert_eq!(main.ubus_object_name(), "tmip");
        let two = TmipdConfig::from_uci("/etc/config/tmip", uci, "cell2").unwrap();
        assert_eq!(two.ubus_object_name(), "tmip.cell2");
        let two = TmipdConfig::from_uci("/etc/config/tmip", uci, "@tmipd[1]").unwrap();
        assert_eq!(two.ubus_object_name(), "tmip._tmipd_1_");
    }

    #[test]
    fn addr_alloc_is_the_seed_readmes_name_for_addr_pool() {
        let t = SEED.replace("addr_pool rl0 * *", "addr_alloc rl0 * *");
        let c = TmipdConfig::parse("t.rc", &t).unwrap();
        assert_eq!(c.addr_pools.len(), 1);
    }

    #[test]
    fn no_pool_is_valid() {
        let t = SEED.replace("addr_pool rl0 * *\n", "");
        assert!(TmipdConfig::parse("t.rc", &t)
            .unwrap()
            .addr_pools
            .is_empty());
    }

    #[test]
    fn star_pool_resolves_like_tmip() {
        let spec = AddrPoolSpec {
            iface: "rl0".into(),
            first: PoolBound::Subnet,
            last: PoolBound::Subnet,
            line: 1,
        };
        let p = spec.resolve(Ipv4Addr::new(10, 13, 150, 1), 24).unwrap();
        assert_eq!(p.first.network(), Ipv4Addr::new(10, 13, 150, 4));
        assert_eq!(p.last.network(), Ipv4Addr::new(10, 13, 150, 248));
        assert_eq!(p.cells(), 62);
        assert!(spec.resolve(Ipv4Addr::new(10, 0, 0, 1), 30).is_err());
        let spec = AddrPoolSpec {
            first: PoolBound::Addr(Ipv4Addr::new(10, 13, 150, 64)),
            ..spec
        };
        let p = spec.resolve(Ipv4Addr::new(10, 13, 150, 1), 24).unwrap();
        assert_eq!(p.first.network(), Ipv4Addr::new(10, 13, 150, 64));
        assert!(p.contains(Ipv4Addr::new(10, 13, 150, 250)));
        assert!(!p.contains(Ipv4Addr::new(10, 13, 150, 253)));
    }

    #[test]
    fn hup_reports_what_needs_a_restart() {
        let a = TmipdConfig::parse("t.rc", SEED).unwrap();
        let b = TmipdConfig::parse(
            "t.rc",
            &format!("# moved down a line\n{SEED}debug_level 5\ncn_port 6000\nlease_time 60\n"),
        )
        .unwrap();
        let r = TABLE.reload(&a, b);
        assert_eq!(r.restart, vec!["cn_port"]);
        assert_eq!(r.applied, vec!["debug_level", "lease_time"]);
        assert_eq!(
            r.config.cn_port, a.cn_port,
            "a restart-only key keeps its running value"
        );
        assert_eq!((r.config.debug_level, r.config.lease_time), (5, 60));
        // Run with -F (as procd does), the file's `foreground 0` is no change.
        let mut running = a.clone();
        running.foreground = true;
        let r = TABLE.reload(&running, a);
        assert!(r.restart.is_empty() && r.applied.is_empty(), "{r:?}");
        assert!(r.config.foreground);
    }

    #[test]
    fn the_key_table_holds_together() {
        let samples = [
            ("mlr", "m:7000"),
            ("backup_mlr", "b"),
            ("cn_name", "A CN"),
            ("cn_if", "eth0"),
            ("mobile_if", "wlan0"),
            ("network_name", "n"),
            ("addr_pool", "wlan0 * *"),
            ("secret", "s e"),
            ("dns", "10.0.0.1 10.0.0.2"),
            ("domain", "lan"),
            ("static_route", "10.0.0.0/8 10.1.0.1"),
            ("listen_addr", "10.0.0.1"),
            ("pid_file", "/run/t.pid"),
            ("hostapd_ctrl", "/run/h"),
            ("ubus", "off"),
            ("ubus_object", "tmip.x"),
        ];
        super::super::keys::check_table(&TABLE, || TmipdConfig::blank("t"), &samples).unwrap();
        // Defaults named elsewhere agree with the table.
        let d = TmipdConfig::parse("t.rc", SEED).unwrap();
        assert_eq!(d.debug_level, crate::logging::DEFAULT_LEVEL);
        assert_eq!(d.cn_port, crate::CN_PORT);
        assert_eq!(d.new_station_rate, DEFAULT_NEW_STATION_RATE);
        // Every key is in the shipped, commented tmipd.rc.
        let rc = include_str!("../../tmipd.rc");
        for k in TABLE.keys {
            assert!(rc.contains(k.name), "tmipd.rc does not explain {}", k.name);
        }
    }
}
