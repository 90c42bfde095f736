//! mlrd's request policy, sans-IO: what the MLR answers to each MLRP
//! request, which CN a connection speaks for, and what it pushes to CNs.
//! It owns the [`Register`] and the connection <-> CN map and never touches
//! a socket, the journal or the clock: the shell (`server.rs`) hands it
//! requests with the connection's id and source address and the time, and
//! carries out what it asks for (replies, pushes, connections to close).
//! Unit tests drive it directly.
//!
//! Refusals are typed ([`Refusal`]): the error code on the wire is chosen by
//! the refusal's type ([`Refusal::code`]), its text only explains.

use crate::register::{
    AddrRange, BindError, BindingRecord, CnIdx, Push, Register, RegisterError, NO_CN,
};
use log::{debug, info, warn};
use std::collections::HashMap;
use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use tmip::mlrp::{
    self, BindReply, Binding, CnBind, CnEntry, CnList, CnRef, ErrorCode, Locate, Message,
    MessageType, Pool, StatusReply,
};

/// The shell's handle of a connection (its slot).
pub type ConnId = usize;

/// Why a request was refused. Its [`Refusal::code`] goes on the wire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// The request acts for a CN, and this connection is not a bound one.
    NotBound,
    /// The register refused a CnBind.
    Bind(BindError),
    /// A CnBind claims an address that is not the connection's source
    /// (a CN speaks only for itself; NAT between CN and MLR is unsupported).
    AddressMismatch { claimed: Ipv4Addr, source: IpAddr },
    /// The register refused a station operation.
    Register(RegisterError),
    /// Locate found nothing.
    NoBinding,
    /// A Release names a cell that is not the station's.
    CellMismatch,
    /// A Move to a CN the register does not know.
    UnknownCn(CnRef),
    /// Not a request the MLR serves.
    Unsupported(MessageType),
}

impl Refusal {
    /// The MLRP error code a peer is told.
    pub fn code(&self) -> ErrorCode {
        match self {
            Refusal::NotBound => ErrorCode::NotBound,
            Refusal::Bind(BindError::WrongNetwork { .. }) => ErrorCode::WrongNetwork,
            Refusal::Bind(BindError::PoolOverlap { .. } | BindError::NameTaken { .. }) => {
                ErrorCode::Conflict
            }
            Refusal::Bind(BindError::BadPool(_)) => ErrorCode::BadRequest,
            Refusal::Bind(BindError::TooManyCns) => ErrorCode::TableFull,
            Refusal::AddressMismatch { .. } => ErrorCode::Unauthorized,
            Refusal::Register(e) => match e {
                RegisterError::NotBound => ErrorCode::NotBound,
                RegisterError::NotFound | RegisterError::UnknownCn => ErrorCode::NotFound,
                RegisterError::PoolsExhausted | RegisterError::Quota => ErrorCode::PoolExhausted,
                RegisterError::CellMismatch | RegisterError::NotAtCn => ErrorCode::Conflict,
                RegisterError::BadMac => ErrorCode::BadRequest,
            },
            Refusal::NoBinding | Refusal::UnknownCn(_) => ErrorCode::NotFound,
            Refusal::CellMismatch => ErrorCode::Conflict,
            Refusal::Unsupported(_) => ErrorCode::Unsupported,
        }
    }

    /// The reply carrying this refusal for a request of type `req`.
    fn reply(&self, req: MessageType) -> Message {
        let mut text = self.to_string();
        mlrp::message::truncate_utf8(&mut text, mlrp::message::MAX_TEXT_LEN);
        if req == MessageType::CnBind {
            Message::BindReply(BindReply::Refused {
                code: self.code(),
                text,
            })
        } else {
            Message::error(self.code(), text)
        }
    }
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Refusal::NotBound => f.write_str("bind first"),
            Refusal::Bind(e) => e.fmt(f),
            Refusal::AddressMismatch { claimed, source } => write!(
                f,
                "CN address {claimed} is not the connection's source {source} (a CN binds from its own address)"
            ),
            Refusal::Register(e) => e.fmt(f),
            Refusal::NoBinding => f.write_str("no binding"),
            Refusal::CellMismatch => f.write_str("cell does not match"),
            Refusal::UnknownCn(c) => write!(f, "unknown CN {c}"),
            Refusal::Unsupported(t) => write!(f, "{t:?} is not a request the MLR serves"),
        }
    }
}

impl std::error::Error for Refusal {}

/// What the service needs to know about its configuration.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// Seconds between a bound CN's pings (a third of `cn_timeout`).
    pub ping_interval_secs: u16,
}

/// The MLR's request policy over its register. See the module docs.
pub struct Service {
    reg: Register,
    settings: Settings,
    /// CN index -> the connection that is its bound session.
    cn_conn: Vec<Option<ConnId>>,
    /// Connection -> the CN it is the bound session of.
    conn_cn: HashMap<ConnId, CnIdx>,
    /// Redirects/Withdraws for the shell to deliver.
    pushes: Vec<Push>,
    /// Connections the shell must close (sessions replaced by a newer one).
    to_close: Vec<(ConnId, &'static str)>,
    /// Of the register's pending changes, how many are moves (soft state).
    soft_changes: usize,
    requests: u64,
    started: u32,
    /// In a register pair: which CNs' pools may serve another CN's
    /// allocation now (replication.rs sets it around each Allocate).
    fence: Option<Vec<bool>>,
}

fn cnref(reg: &Register, i: CnIdx) -> CnRef {
    match reg.cn(i) {
        Some(c) => CnRef::new(c.addr, c.port),
        None => CnRef::new(Ipv4Addr::UNSPECIFIED, 0),
    }
}

fn binding_msg(reg: &Register, r: &BindingRecord, now: u32) -> Message {
    Message::Binding(Binding {
        mac: r.mac(),
        cell: r.cell30(),
        parent: cnref(reg, r.parent),
        at: cnref(reg, r.at),
        previous: (r.previous != NO_CN).then(|| cnref(reg, r.previous)),
        lease_remaining_secs: r.remaining(now),
    })
}

impl Service {
    /// `now`: Unix seconds at start (for Status uptime).
    pub fn new(reg: Register, settings: Settings, now: u32) -> Service {
        let ncn = reg.cns().len();
        Service {
            reg,
            settings,
            cn_conn: vec![None; ncn],
            conn_cn: HashMap::new(),
            pushes: Vec::new(),
            to_close: Vec::new(),
            soft_changes: 0,
            requests: 0,
            started: now,
            fence: None,
        }
    }

    pub fn reg(&self) -> &Register {
        &self.reg
    }
    pub fn reg_mut(&mut self) -> &mut Register {
        &mut self.reg
    }
    /// Allocate from other CNs' pools only where `fence` says so (`None`:
    /// from every bound CN's).
    pub fn set_fence(&mut self, fence: Option<Vec<bool>>) {
        self.fence = fence;
    }

    /// Take another register's state (a standby receiving a snapshot):
    /// no CN is bound here any more.
    pub fn replace_register(&mut self, reg: Register) {
        self.cn_conn = vec![None; reg.cns().len()];
        self.conn_cn.clear();
        self.pushes.clear();
        self.reg = reg;
    }

    pub fn set_settings(&mut self, s: Settings) {
        self.settings = s;
    }
    pub fn ping_interval_secs(&self) -> u16 {
        self.settings.ping_interval_secs
    }
    /// The CN connection `conn` is the bound session of.
    pub fn cn_of(&self, conn: ConnId) -> Option<CnIdx> {
        self.conn_cn.get(&conn).copied()
    }
    /// The connection that is CN `cn`'s bound session.
    pub fn conn_of(&self, cn: CnIdx) -> Option<ConnId> {
        self.cn_conn.get(cn as usize).copied().flatten()
    }
    /// `ip:port` of CN `i` for logs.
    pub fn cn_label(&self, i: CnIdx) -> String {
        match self.reg.cn(i) {
            Some(c) => format!("{}:{}", c.addr, c.port),
            None => "-".into(),
        }
    }
    /// Pushes the shell must deliver over the target CNs' sessions.
    pub fn take_pushes(&mut self) -> Vec<Push> {
        std::mem::take(&mut self.pushes)
    }
    /// Connections to close, with the reason.
    pub fn take_to_close(&mut self) -> Vec<(ConnId, &'static str)> {
        std::mem::take(&mut self.to_close)
    }
    /// How many of the register's pending changes are moves; resets.
    pub fn take_soft_changes(&mut self) -> usize {
        std::mem::take(&mut self.soft_changes)
    }

    /// The message for push `p` and the CN it goes to.
    pub fn push_message(&self, p: Push) -> (CnIdx, Message) {
        match p {
            Push::Redirect { cn, mac, cell, to } => (
                cn,
                Message::Redirect(mlrp::Redirect {
                    mac,
                    cell,
                    to: cnref(&self.reg, to),
                }),
            ),
            Push::Withdraw { cn, mac, cell } => {
                (cn, Message::Withdraw(mlrp::Withdraw { mac, cell }))
            }
        }
    }

    /// Any frame arrived on `conn`: a bound CN is alive.
    pub fn heard(&mut self, conn: ConnId, now: u32) {
        if let Some(cn) = self.cn_of(conn) {
            self.reg.heard(cn, now);
        }
    }

    /// `conn` closed. Returns the CN whose bound session it was, if that CN
    /// is down now.
    pub fn closed(&mut self, conn: ConnId) -> Option<CnIdx> {
        let cn = self.conn_cn.remove(&conn)?;
        if self.conn_of(cn) == Some(conn) {
            self.cn_conn[cn as usize] = None;
            if self.reg.cn_down(cn) {
                return Some(cn);
            }
        }
        None
    }

    /// The per-second chores: expire leases (up to `budget` slab slots),
    /// mark silent CNs down. Returns the connections of CNs that went
    /// silent (to close); expiry pushes are queued.
    pub fn tick(&mut self, now: u32, budget: usize) -> Vec<ConnId> {
        let (gone, pushes) = self.reg.expire(now, budget);
        for r in &gone {
            debug!(target: "register", "lease of {} ({}) expired", r.mac(), r.cell30());
        }
        if !gone.is_empty() {
            info!("- {} lease(s) expired, their /30s are free", gone.len());
        }
        self.pushes.extend(pushes);
        let mut silent = Vec::new();
        for cn in self.reg.check_liveness(now) {
            warn!(
                "! CN {} down: silent for {} s (its stations' bindings are kept)",
                self.cn_label(cn),
                self.reg.dead_after()
            );
            if let Some(c) = self.cn_conn.get_mut(cn as usize).and_then(Option::take) {
                self.conn_cn.remove(&c);
                silent.push(c);
            }
        }
        silent
    }

    /// Answer request `msg` that arrived on `conn` from `peer` at `now`.
    pub fn handle(&mut self, conn: ConnId, peer: SocketAddr, msg: Message, now: u32) -> Message {
        self.requests += 1;
        let ty = msg.msg_type();
        let bind = match &msg {
            Message::CnBind(b) => Some(format!("CN {}:{} [{}]", b.cn_addr, b.cn_port, b.cn_name)),
            _ => None,
        };
        match self.serve(conn, peer, msg, now) {
            Ok(reply) => reply,
            Err(r) => {
                if let Some(cn) = bind {
                    warn!("! Bind refused for {cn} from {peer}: {r}");
                }
                r.reply(ty)
            }
        }
    }

    /// The bound, up CN this connection speaks for.
    fn bound(&self, conn: ConnId) -> Result<CnIdx, Refusal> {
        self.cn_of(conn)
            .filter(|&c| self.reg.cn(c).is_some_and(|c| c.up))
            .ok_or(Refusal::NotBound)
    }

    fn serve(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        msg: Message,
        now: u32,
    ) -> Result<Message, Refusal> {
        match msg {
            Message::Ping { nonce } => Ok(Message::Pong { nonce }),
            Message::CnBind(b) => self.bind(conn, peer, b, now),
            Message::Unbind => {
                if let Some(c) = self.conn_cn.remove(&conn) {
                    self.reg.cn_down(c);
                    if let Some(e) = self.cn_conn.get_mut(c as usize) {
                        *e = None;
                    }
                    info!("- CN {} unbound", self.cn_label(c));
                }
                Ok(Message::Ack)
            }
            Message::Allocate(a) => {
                let cn = self.bound(conn)?;
                let (rec, new) = match &self.fence {
                    Some(f) => {
                        let eligible = |i: CnIdx| f.get(i as usize).copied().unwrap_or(false);
                        self.reg
                            .allocate_fenced(cn, a.mac, a.requested, now, &eligible)
                    }
                    None => self.reg.allocate_requested(cn, a.mac, a.requested, now),
                }
                .map_err(Refusal::Register)?;
                if new {
                    debug!(target: "register", "{} allocated {} (parent {}) at {}", a.mac, rec.cell30(), self.cn_label(rec.parent), self.cn_label(cn));
                }
                Ok(binding_msg(&self.reg, &rec, now))
            }
            Message::Offer(a) => {
                let cn = self.bound(conn)?;
                let rec = match &self.fence {
                    Some(f) => {
                        let eligible = |i: CnIdx| f.get(i as usize).copied().unwrap_or(false);
                        self.reg
                            .offer_fenced(cn, a.mac, a.requested, now, &eligible)
                    }
                    None => self.reg.offer(cn, a.mac, a.requested, now),
                }
                .map_err(Refusal::Register)?;
                if rec.at == NO_CN {
                    debug!(target: "register", "{} offered {} (parent {}) at {}, held {} s", a.mac, rec.cell30(), self.cn_label(rec.parent), self.cn_label(cn), rec.remaining(now));
                }
                Ok(binding_msg(&self.reg, &rec, now))
            }
            Message::Commit(c) => {
                let cn = self.bound(conn)?;
                let (rec, new) = self
                    .reg
                    .commit(cn, c.mac, c.cell, now)
                    .map_err(Refusal::Register)?;
                if new {
                    debug!(target: "register", "{} bound {} (parent {}) at {}", c.mac, rec.cell30(), self.cn_label(rec.parent), self.cn_label(cn));
                }
                Ok(binding_msg(&self.reg, &rec, now))
            }
            Message::Locate(l) => {
                let r = match l {
                    Locate::ByMac(m) => self.reg.locate_mac(m),
                    Locate::ByIp(ip) => self.reg.locate_ip(ip),
                };
                let rec = r.ok_or(Refusal::NoBinding)?;
                Ok(binding_msg(&self.reg, &rec, now))
            }
            Message::Move(m) => {
                self.bound(conn)?;
                let to = self
                    .reg
                    .find_cn(m.to.addr, m.to.port)
                    .ok_or(Refusal::UnknownCn(m.to))?;
                let before = self.reg.change_count();
                let (rec, pushes) = self
                    .reg
                    .move_to(m.mac, m.cell, to, now)
                    .map_err(Refusal::Register)?;
                // Where a station is: soft state (server.rs commit_and_flush).
                self.soft_changes += self.reg.change_count().saturating_sub(before);
                debug!(target: "handover", "{} {} now at {} (parent {}, previous {})", m.mac, m.cell, self.cn_label(to), self.cn_label(rec.parent), self.cn_label(rec.previous));
                self.pushes.extend(pushes);
                Ok(binding_msg(&self.reg, &rec, now))
            }
            Message::Release(rel) => {
                let cn = self.bound(conn)?;
                match self.reg.get(rel.mac) {
                    Some(r) if r.cell30() != rel.cell => return Err(Refusal::CellMismatch),
                    None => return Err(Refusal::NoBinding),
                    _ => {}
                }
                let (rec, pushes) = self.reg.release(rel.mac, cn).map_err(Refusal::Register)?;
                debug!(target: "register", "{} released {}", rel.mac, rec.cell30());
                self.pushes.extend(pushes);
                Ok(Message::Ack)
            }
            Message::ListCns => Ok(self.cn_list()),
            Message::Status => Ok(self.status(now)),
            other => Err(Refusal::Unsupported(other.msg_type())),
        }
    }

    fn bind(
        &mut self,
        conn: ConnId,
        peer: SocketAddr,
        b: CnBind,
        now: u32,
    ) -> Result<Message, Refusal> {
        // A CN speaks for its own address only: otherwise any holder of the
        // secret could bind as another CN and take its session over.
        if peer.ip() != IpAddr::V4(b.cn_addr) {
            return Err(Refusal::AddressMismatch {
                claimed: b.cn_addr,
                source: peer.ip(),
            });
        }
        let pools: Vec<AddrRange> = b
            .pools
            .iter()
            .map(|p| AddrRange {
                first: p.first,
                last: p.last,
            })
            .collect();
        let (idx, notes) = self
            .reg
            .bind_cn(
                &b.network_name,
                &b.cn_name,
                b.cn_addr,
                b.cn_port,
                &pools,
                now,
            )
            .map_err(Refusal::Bind)?;
        for n in notes {
            warn!("! CN {}:{}: {n}", b.cn_addr, b.cn_port);
        }
        if self.cn_conn.len() <= idx as usize {
            self.cn_conn.resize(idx as usize + 1, None);
        }
        if let Some(old) = self.cn_conn[idx as usize] {
            if old != conn {
                self.conn_cn.remove(&old);
                self.to_close
                    .push((old, "replaced by a new session of its CN"));
            }
        }
        if let Some(prev) = self.cn_of(conn).filter(|&p| p != idx) {
            self.cn_conn[prev as usize] = None;
            self.reg.cn_down(prev);
        }
        self.cn_conn[idx as usize] = Some(conn);
        self.conn_cn.insert(conn, idx);
        info!(
            "+ CN {}:{} [{}] bound from {peer} ({} pool(s))",
            b.cn_addr,
            b.cn_port,
            b.cn_name,
            pools.len()
        );
        for p in &pools {
            debug!(target: "cn", "+   pool {p}");
        }
        // A restarted parent must route its stations that are elsewhere
        // into the tunnels again.
        let again = self.reg.redirects_for_parent(idx);
        if !again.is_empty() {
            info!(
                "+   {} station(s) parented there are elsewhere: redirects pushed",
                again.len()
            );
            self.pushes.extend(again);
        }
        Ok(Message::BindReply(BindReply::Accepted {
            lease_time_secs: self.reg.lease_time(),
            ping_interval_secs: self.settings.ping_interval_secs,
        }))
    }

    fn cn_list(&self) -> Message {
        Message::CnList(CnList {
            entries: self
                .reg
                .cns()
                .iter()
                .take(mlrp::message::MAX_CN_ENTRIES)
                .map(|c| {
                    let mut name = c.name.clone();
                    mlrp::message::truncate_utf8(&mut name, mlrp::message::MAX_NAME_LEN);
                    CnEntry {
                        name,
                        addr: c.addr,
                        port: c.port,
                        up: c.up,
                        pools: c
                            .pools
                            .iter()
                            .take(mlrp::message::MAX_POOLS)
                            .map(|p| Pool {
                                first: p.spec.first,
                                last: p.spec.last,
                            })
                            .collect(),
                    }
                })
                .collect(),
        })
    }

    fn status(&self, now: u32) -> Message {
        let cns = self.reg.cns();
        let pools: usize = cns.iter().map(|c| c.pools.len()).sum();
        let free: u64 = cns
            .iter()
            .filter(|c| c.up)
            .flat_map(|c| c.pools.iter())
            .map(|p| (p.size() - p.used()) as u64)
            .sum();
        Message::StatusReply(StatusReply {
            uptime_secs: now.saturating_sub(self.started),
            cns: cns.len() as u32,
            cns_up: cns.iter().filter(|c| c.up).count() as u32,
            pools: pools as u32,
            bindings: self.reg.binding_count() as u32,
            free_cells: free.min(u32::MAX as u64) as u32,
            requests: self.requests,
            software: format!("mlrd {}", tmip::VERSION),
        })
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
