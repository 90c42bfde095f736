//! mlrd's one poll(2) loop: the MLRP listener, one sans-IO [`Session`] per
//! connection with bounded buffers, the signalfd and a timer queue. It turns
//! MLRP requests into register calls, journals every change, and only then
//! sends the replies acknowledging them; Redirect/Withdraw requests the
//! register asks for are pushed over the target CN's bound session.
//!
//! Order within one loop iteration (this is what makes "acknowledged"
//! mean "durable"): 1. read every ready socket and handle whole frames,
//! appending replies to per-connection output buffers; 2. write the
//! register's changes to the journal and fdatasync (not for a round of
//! moves only: where a station is, is written but not waited for, so a
//! slow disk never holds a handover; see `commit_and_flush`); 3. write the
//! output buffers. Nothing blocks: sockets are non-blocking, a peer that does not
//! read is cut off when its output passes [`MAX_OUTPUT`], and one peer gets
//! at most [`READ_BUDGET`] bytes per iteration.

use crate::config::{MlrdConfig, Source};
use crate::journal::Journal;
use crate::register::{BindError, BindingRecord, CnIdx, PoolSpec, Push, Register, NO_CN};
use crate::status::{self, ServerStats};
use log::{debug, error, info, warn};
use nix::sys::signal::Signal;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::AsRawFd;
use std::time::{Duration, Instant, SystemTime};
use tmip::event_loop::{Poller, Readiness, Signals, Timers, Token};
use tmip::mlrp::{
    self, BindReply, Binding, CnEntry, CnList, CnRef, ErrorCode, Incoming, Locate, Message,
    MlrpError, NetworkKey, Pool, Recv, Role, Session, StatusReply,
};

const LISTENER: Token = 0;
const SIGNALS: Token = 1;
const FIRST_CONN: Token = 2;
/// Bytes read from one peer per loop iteration, so none can starve others.
pub const READ_BUDGET: usize = 256 << 10;
/// Requests handled for one peer per turn; the rest wait for the next
/// iteration, after every other ready peer had its turn (round robin), so
/// a CN asking one question is not queued behind another's pipeline.
pub const FRAMES_PER_TURN: usize = 64;
/// Past this much unsent output to a peer, mlrd stops reading and handling
/// that peer's requests until the output drains (back-pressure): one peer
/// asking for much cannot make the loop encode megabytes for it at once.
pub const OUTPUT_HIGH_WATER: usize = 256 << 10;
/// A peer with this much unsent output (pushes can still add to a paused
/// peer's backlog) is not reading: it is cut off.
pub const MAX_OUTPUT: usize = 4 << 20;
/// A connection must complete the MLRP handshake within this time.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// An established connection that is not a bound CN may idle this long.
const IDLE_TIMEOUT: Duration = Duration::from_secs(300);
/// Slab slots the lease sweep visits per tick (a million every ~16 s).
const SWEEP_BUDGET: usize = 65_536;
/// Accepts per loop iteration.
const ACCEPT_BUDGET: usize = 512;
/// Pushes queued for one CN beyond the session's unanswered limit; a CN
/// that falls this far behind is stuck and its session is closed.
const MAX_QUEUED_PUSHES: usize = 65_536;

/// Open the MLRP listener on all addresses (non-blocking, deep backlog).
pub fn listen(port: u16) -> io::Result<TcpListener> {
    let l = TcpListener::bind((Ipv4Addr::UNSPECIFIED, port))?;
    l.set_nonblocking(true)?;
    // std listens with a backlog of 128; bursts of CNs reconnecting after
    // a restart deserve more. listen(2) again just raises it.
    // SAFETY: listen on a socket we own.
    unsafe { libc::listen(l.as_raw_fd(), 4096) };
    Ok(l)
}

/// Unix seconds as the register counts them.
pub fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs().min(u32::MAX as u64) as u32)
        .unwrap_or(0)
}

struct Conn {
    /// The socket and its write queue (shared with tmipd).
    io: mlrp::Conn,
    peer: SocketAddr,
    session: Session,
    /// The CN this connection is the bound session of.
    cn: Option<CnIdx>,
    /// POLLOUT registered.
    want_write: bool,
    /// POLLIN registered (off while the output is over the high-water mark).
    want_read: bool,
    /// Whole frames may be waiting in the session: handling stopped at the
    /// high-water mark, not for lack of bytes.
    frames_waiting: bool,
    /// Last time the peer accepted bytes, or had nothing pending.
    write_progress: Instant,
    /// Send what is queued, then close.
    closing: bool,
    /// Output length before this iteration's replies (for a failed commit).
    committed_len: usize,
    /// Pushes waiting for the CN to acknowledge earlier ones (the session
    /// allows MAX_OUTSTANDING unanswered requests).
    push_queue: VecDeque<Message>,
}

impl Conn {
    fn pending(&self) -> usize {
        self.io.pending()
    }
}

/// What start-up hands the loop.
pub struct Setup {
    pub cfg: MlrdConfig,
    pub source: Source,
    pub debug_override: Option<u8>,
    pub reg: Register,
    pub journal: Journal,
    pub listener: TcpListener,
    pub max_conns: usize,
}

#[derive(Debug, Clone, Copy)]
enum Tick {
    Second,
    /// Watch the listener again after accept(2) failed (EMFILE...).
    Relisten,
}

pub struct Server {
    cfg: MlrdConfig,
    source: Source,
    debug_override: Option<u8>,
    reg: Register,
    journal: Journal,
    listener: TcpListener,
    poller: Poller,
    signals: Signals,
    timers: Timers<Tick>,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    nconns: usize,
    max_conns: usize,
    /// CN index -> slot of its bound session.
    cn_conn: Vec<Option<usize>>,
    key: Option<NetworkKey>,
    stats: ServerStats,
    started: Instant,
    /// Slots with output queued this iteration.
    dirty: Vec<usize>,
    /// Slots whose reading resumed with frames still buffered in the session.
    resume: Vec<usize>,
    pushes: Vec<Push>,
    /// Of this round's register changes, how many are moves (soft state,
    /// written but not fdatasynced before the replies: `commit_and_flush`).
    soft_changes: usize,
    to_close: Vec<(usize, String)>,
    refused_since_log: u64,
    stop: bool,
    requests: u64,
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

fn key_for(cfg: &MlrdConfig) -> Option<NetworkKey> {
    NetworkKey::from_secret(cfg.secret.as_deref(), &cfg.network_name)
}

impl Server {
    pub fn new(s: Setup) -> io::Result<Server> {
        let signals = Signals::daemon_set()?;
        let mut poller = Poller::new();
        poller.register(s.listener.as_raw_fd(), LISTENER, false);
        poller.register(signals.as_raw_fd(), SIGNALS, false);
        let mut timers = Timers::new();
        timers.schedule_in(Instant::now(), Duration::from_secs(1), Tick::Second);
        let key = key_for(&s.cfg);
        let ncn = s.reg.cns().len();
        Ok(Server {
            key,
            cfg: s.cfg,
            source: s.source,
            debug_override: s.debug_override,
            reg: s.reg,
            journal: s.journal,
            listener: s.listener,
            poller,
            signals,
            timers,
            conns: Vec::new(),
            free_slots: Vec::new(),
            nconns: 0,
            max_conns: s.max_conns,
            cn_conn: vec![None; ncn],
            stats: ServerStats::default(),
            started: Instant::now(),
            dirty: Vec::new(),
            resume: Vec::new(),
            pushes: Vec::new(),
            soft_changes: 0,
            to_close: Vec::new(),
            refused_since_log: 0,
            stop: false,
            requests: 0,
        })
    }

    /// Run until TERM/INT; then save a snapshot.
    pub fn run(&mut self) -> Result<(), String> {
        let mut ready: Vec<(Token, Readiness)> = Vec::with_capacity(1024);
        while !self.stop {
            let timeout = if self.resume.is_empty() {
                self.timers.timeout(Instant::now())
            } else {
                Some(Duration::ZERO)
            };
            ready.clear();
            self.poller
                .wait(timeout, &mut ready)
                .map_err(|e| format!("poll: {e}"))?;
            let mut resume = std::mem::take(&mut self.resume);
            resume.sort_unstable();
            resume.dedup();
            for slot in resume {
                self.resume_conn(slot);
            }
            for &(tok, r) in &ready {
                match tok {
                    LISTENER => self.accept(),
                    SIGNALS => self.on_signals(),
                    t => self.on_conn(t - FIRST_CONN, r),
                }
            }
            let now = Instant::now();
            while let Some(t) = self.timers.pop_expired(now) {
                match t {
                    Tick::Second => {
                        self.on_tick(now);
                        self.timers
                            .schedule_in(now, Duration::from_secs(1), Tick::Second);
                    }
                    Tick::Relisten => {
                        self.poller
                            .register(self.listener.as_raw_fd(), LISTENER, false);
                    }
                }
            }
            self.commit_and_flush();
        }
        match self.journal.compact(&self.reg) {
            Ok(()) => {
                info!(
                    "+ State saved: snapshot {} with {} bindings. MLR stopped.",
                    self.journal.generation(),
                    self.reg.binding_count()
                );
                Ok(())
            }
            Err(e) => Err(format!("saving state: {e}")),
        }
    }

    // ---- connections -----------------------------------------------------

    fn accept(&mut self) {
        for _ in 0..ACCEPT_BUDGET {
            let (stream, peer) = match self.listener.accept() {
                Ok(x) => x,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // EMFILE and friends: the listener stays readable, so
                    // stop watching it for a moment rather than spin.
                    warn!("! accept: {e}; not accepting for 250 ms");
                    self.poller.deregister(self.listener.as_raw_fd());
                    self.timers.schedule_in(
                        Instant::now(),
                        Duration::from_millis(250),
                        Tick::Relisten,
                    );
                    break;
                }
            };
            if self.nconns >= self.max_conns {
                self.stats.connections_refused += 1;
                self.refused_since_log += 1;
                if self.refused_since_log == 1 {
                    warn!(
                        "! Refusing connection from {peer}: {} connections open (max_connections {})",
                        self.nconns, self.max_conns
                    );
                }
                drop(stream);
                continue;
            }
            if let Err(e) = self.add_conn(stream, peer) {
                warn!("! {peer}: cannot set up connection: {e}");
            }
        }
    }

    fn add_conn(&mut self, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        let mut io = mlrp::Conn::accepted(stream, peer)?;
        let mut session = Session::new(Role::Mlr, self.key.as_ref(), mlrp::random_nonce()?);
        session.set_label(peer.to_string());
        session.handshake(io.queue());
        let now = Instant::now();
        let conn = Conn {
            io,
            peer,
            session,
            cn: None,
            want_write: false,
            want_read: true,
            frames_waiting: false,
            write_progress: now,
            closing: false,
            committed_len: 0,
            push_queue: VecDeque::new(),
        };
        let slot = match self.free_slots.pop() {
            Some(s) => {
                self.conns[s] = Some(conn);
                s
            }
            None => {
                self.conns.push(Some(conn));
                self.conns.len() - 1
            }
        };
        if let Some(c) = &self.conns[slot] {
            self.poller.register(c.io.fd(), FIRST_CONN + slot, false);
        }
        self.nconns += 1;
        self.stats.connections_accepted += 1;
        self.dirty.push(slot);
        debug!(target: "mlrp", "{peer}: connected (slot {slot})");
        Ok(())
    }

    fn on_conn(&mut self, slot: usize, r: Readiness) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if r.readable || r.error {
            if conn.want_read {
                self.read_conn(slot, &mut conn);
            } else if r.error && !conn.closing {
                // Paused (not reading) and the peer hung up: nothing more
                // will come, and poll would report the hang-up forever.
                conn.closing = true;
                self.to_close.push((slot, "hang-up".into()));
            }
        }
        if r.writable {
            self.dirty.push(slot);
        }
        self.conns[slot] = Some(conn);
        self.deliver_pushes();
    }

    fn read_conn(&mut self, slot: usize, conn: &mut Conn) {
        let mut buf = [0u8; 64 << 10];
        let mut total = 0;
        while total < READ_BUDGET
            && !conn.closing
            && !conn.frames_waiting
            && conn.pending() < OUTPUT_HIGH_WATER
        {
            match conn.io.recv(&mut buf) {
                Recv::Closed => {
                    self.to_close.push((slot, "peer closed".into()));
                    conn.closing = true;
                    break;
                }
                Recv::Data(n) => {
                    total += n;
                    conn.session.feed(&buf[..n]);
                    self.process_frames(slot, conn);
                    if n < buf.len() {
                        break;
                    }
                }
                Recv::WouldBlock => break,
                Recv::Failed(e) => {
                    self.to_close.push((slot, format!("read: {e}")));
                    conn.closing = true;
                    break;
                }
            }
        }
    }

    /// Handle the frames a paused peer sent before its output drained.
    fn resume_conn(&mut self, slot: usize) {
        let Some(mut conn) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        if !conn.closing {
            self.process_frames(slot, &mut conn);
        }
        self.conns[slot] = Some(conn);
        self.deliver_pushes();
    }

    fn process_frames(&mut self, slot: usize, conn: &mut Conn) {
        let before = conn.io.queued_len();
        let now = now_secs();
        conn.frames_waiting = false;
        let mut handled = 0;
        loop {
            if conn.pending() >= OUTPUT_HIGH_WATER {
                // Resumed from `flush` once the output drains.
                conn.frames_waiting = true;
                break;
            }
            if handled >= FRAMES_PER_TURN {
                if conn.session.buffered() > 0 {
                    // Another turn next iteration (which will not wait in poll).
                    conn.frames_waiting = true;
                    self.resume.push(slot);
                }
                break;
            }
            handled += 1;
            let Some(ev) = conn.session.poll(conn.io.queue()) else {
                break;
            };
            match ev {
                Ok(Incoming::Established { peer }) => {
                    debug!(target: "mlrp", "{}: established ({:?}, {})", conn.peer, peer.role, peer.software);
                }
                Ok(Incoming::Request { id, msg }) => {
                    self.stats.frames_in += 1;
                    self.requests += 1;
                    debug!(target: "mlrp", "{}: request {id}: {msg}", conn.peer);
                    if let Some(cn) = conn.cn {
                        self.reg.heard(cn, now);
                    }
                    let reply = self.handle(slot, conn, msg, now);
                    debug!(target: "mlrp", "{}: reply {id}: {reply}", conn.peer);
                    if let Err(e) = conn.session.reply(id, &reply, conn.io.queue()) {
                        warn!("! {}: cannot send reply {id}: {e}", conn.peer);
                    }
                }
                Ok(Incoming::Reply { id, msg }) => {
                    self.stats.frames_in += 1;
                    if let Some(cn) = conn.cn {
                        self.reg.heard(cn, now);
                    }
                    match msg {
                        Message::Error(e) => {
                            warn!("! {}: push {id} refused: {}: {}", conn.peer, e.code, e.text)
                        }
                        m => debug!(target: "mlrp", "{}: reply {id}: {m}", conn.peer),
                    }
                }
                Err(e) => {
                    self.stats.frames_rejected += 1;
                    let auth = matches!(e, MlrpError::BadMac | MlrpError::AuthMismatch { .. });
                    if auth {
                        self.stats.auth_failures += 1;
                    }
                    if e.is_fatal() {
                        let why = if auth {
                            format!("refused: {e}")
                        } else {
                            format!("protocol error: {e}")
                        };
                        if !matches!(e, MlrpError::PeerClosed(_)) {
                            warn!("! {}: {why}; closing", conn.peer);
                        }
                        conn.closing = true;
                        self.to_close.push((slot, why));
                        break;
                    }
                    warn!("! {}: {e}", conn.peer);
                }
            }
        }
        // Acknowledgements make room for queued pushes.
        while conn.session.outstanding() < mlrp::session::MAX_OUTSTANDING && !conn.closing {
            let Some(msg) = conn.push_queue.pop_front() else {
                break;
            };
            match conn.session.request(&msg, conn.io.queue()) {
                Ok(_) => self.stats.pushes_sent += 1,
                Err(e) => {
                    warn!("! push to {}: {e}", conn.peer);
                    break;
                }
            }
        }
        if conn.io.queued_len() != before {
            self.dirty.push(slot);
        }
        if conn.pending() > MAX_OUTPUT && !conn.closing {
            warn!(
                "! {}: {} bytes unsent: peer is not reading; closing",
                conn.peer,
                conn.pending()
            );
            conn.closing = true;
            conn.io.discard_unsent();
            self.to_close.push((slot, "not reading".into()));
        }
    }

    /// Answer one request.
    fn handle(&mut self, slot: usize, conn: &mut Conn, msg: Message, now: u32) -> Message {
        let peer = conn.peer;
        let bound = conn.cn.filter(|&c| self.reg.cn(c).is_some_and(|c| c.up));
        match msg {
            Message::Ping { nonce } => Message::Pong { nonce },
            Message::CnBind(b) => {
                let pools: Vec<PoolSpec> = b
                    .pools
                    .iter()
                    .map(|p| PoolSpec {
                        first: p.first,
                        last: p.last,
                    })
                    .collect();
                match self.reg.bind_cn(
                    &b.network_name,
                    &b.cn_name,
                    b.cn_addr,
                    b.cn_port,
                    &pools,
                    now,
                ) {
                    Ok((idx, notes)) => {
                        for n in notes {
                            warn!("! CN {}:{}: {n}", b.cn_addr, b.cn_port);
                        }
                        if self.cn_conn.len() <= idx as usize {
                            self.cn_conn.resize(idx as usize + 1, None);
                        }
                        if let Some(old) = self.cn_conn[idx as usize] {
                            if old != slot {
                                if let Some(Some(oc)) = self.conns.get_mut(old) {
                                    oc.cn = None;
                                }
                                self.to_close
                                    .push((old, "replaced by a new session of its CN".into()));
                            }
                        }
                        if let Some(prev) = conn.cn.filter(|&p| p != idx) {
                            self.cn_conn[prev as usize] = None;
                            self.reg.cn_down(prev);
                        }
                        self.cn_conn[idx as usize] = Some(slot);
                        conn.cn = Some(idx);
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
                        // A restarted parent must route its stations that
                        // are elsewhere into the tunnels again.
                        let again = self.reg.redirects_for_parent(idx);
                        if !again.is_empty() {
                            info!(
                                "+   {} station(s) parented there are elsewhere: redirects pushed",
                                again.len()
                            );
                            self.pushes.extend(again);
                        }
                        Message::BindReply(BindReply::Accepted {
                            lease_time_secs: self.reg.lease_time(),
                            ping_interval_secs: (self.cfg.cn_timeout / 3).max(1) as u16,
                        })
                    }
                    Err(e) => {
                        warn!(
                            "! Bind refused for CN {}:{} [{}] from {peer}: {e}",
                            b.cn_addr, b.cn_port, b.cn_name
                        );
                        let code = match e {
                            BindError::WrongNetwork { .. } => ErrorCode::WrongNetwork,
                            BindError::PoolOverlap { .. } => ErrorCode::Conflict,
                            BindError::BadPool(_) => ErrorCode::BadRequest,
                            BindError::TooManyCns => ErrorCode::TableFull,
                        };
                        let mut text = e.to_string();
                        mlrp::message::truncate_utf8(&mut text, mlrp::message::MAX_TEXT_LEN);
                        Message::BindReply(BindReply::Refused { code, text })
                    }
                }
            }
            Message::Unbind => {
                if let Some(c) = conn.cn.take() {
                    self.reg.cn_down(c);
                    if let Some(e) = self.cn_conn.get_mut(c as usize) {
                        *e = None;
                    }
                    info!("- CN {} unbound", self.cn_label(c));
                }
                Message::Ack
            }
            Message::Allocate(a) => {
                let Some(cn) = bound else {
                    return Message::error(ErrorCode::NotBound, "bind first");
                };
                match self.reg.allocate_requested(cn, a.mac, a.requested, now) {
                    Ok((rec, new)) => {
                        if new {
                            debug!(target: "register", "{} allocated {} (parent {}) at {}", a.mac, rec.cell30(), self.cn_label(rec.parent), self.cn_label(cn));
                        }
                        binding_msg(&self.reg, &rec, now)
                    }
                    Err(e) => Message::error(register_code(e), e.to_string()),
                }
            }
            Message::Locate(l) => {
                let r = match l {
                    Locate::ByMac(m) => self.reg.locate_mac(m),
                    Locate::ByIp(ip) => self.reg.locate_ip(ip),
                };
                match r {
                    Some(rec) => binding_msg(&self.reg, &rec, now),
                    None => Message::error(ErrorCode::NotFound, "no binding"),
                }
            }
            Message::Move(m) => {
                if bound.is_none() {
                    return Message::error(ErrorCode::NotBound, "bind first");
                }
                let Some(to) = self.reg.find_cn(m.to.addr, m.to.port) else {
                    return Message::error(ErrorCode::NotFound, "unknown CN");
                };
                let before = self.reg.change_count();
                match self.reg.move_to(m.mac, m.cell, to, now) {
                    Ok((rec, pushes)) => {
                        // Where a station is: soft state (see commit_and_flush).
                        self.soft_changes += self.reg.change_count().saturating_sub(before);
                        debug!(target: "handover", "{} {} now at {} (parent {}, previous {})", m.mac, m.cell, self.cn_label(to), self.cn_label(rec.parent), self.cn_label(rec.previous));
                        self.pushes.extend(pushes);
                        binding_msg(&self.reg, &rec, now)
                    }
                    Err(e) => Message::error(register_code(e), e.to_string()),
                }
            }
            Message::Release(rel) => {
                let Some(cn) = bound else {
                    return Message::error(ErrorCode::NotBound, "bind first");
                };
                match self.reg.get(rel.mac) {
                    Some(r) if r.cell30() != rel.cell => {
                        return Message::error(ErrorCode::Conflict, "cell does not match")
                    }
                    None => return Message::error(ErrorCode::NotFound, "no binding"),
                    _ => {}
                }
                match self.reg.release(rel.mac, cn) {
                    Ok((rec, pushes)) => {
                        debug!(target: "register", "{} released {}", rel.mac, rec.cell30());
                        self.pushes.extend(pushes);
                        Message::Ack
                    }
                    Err(e) => Message::error(register_code(e), e.to_string()),
                }
            }
            Message::ListCns => Message::CnList(CnList {
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
            }),
            Message::Status => {
                let cns = self.reg.cns();
                let pools: usize = cns.iter().map(|c| c.pools.len()).sum();
                let free: u64 = cns
                    .iter()
                    .filter(|c| c.up)
                    .flat_map(|c| c.pools.iter())
                    .map(|p| (p.size() - p.used()) as u64)
                    .sum();
                Message::StatusReply(StatusReply {
                    uptime_secs: self.started.elapsed().as_secs().min(u32::MAX as u64) as u32,
                    cns: cns.len() as u32,
                    cns_up: cns.iter().filter(|c| c.up).count() as u32,
                    pools: pools as u32,
                    bindings: self.reg.binding_count() as u32,
                    free_cells: free.min(u32::MAX as u64) as u32,
                    requests: self.requests,
                    software: format!("mlrd {}", tmip::VERSION),
                })
            }
            other => Message::error(
                ErrorCode::Unsupported,
                format!("{:?} is not a request the MLR serves", other.msg_type()),
            ),
        }
    }

    fn cn_label(&self, i: CnIdx) -> String {
        match self.reg.cn(i) {
            Some(c) => format!("{}:{}", c.addr, c.port),
            None => "-".into(),
        }
    }

    /// Send the register's pushes over the target CNs' bound sessions.
    fn deliver_pushes(&mut self) {
        for p in std::mem::take(&mut self.pushes) {
            let (cn, msg) = match p {
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
            };
            let slot = self.cn_conn.get(cn as usize).copied().flatten();
            let Some(conn) = slot
                .and_then(|s| self.conns.get_mut(s))
                .and_then(Option::as_mut)
            else {
                debug!(target: "handover", "CN {} has no session: {msg} not delivered (it resyncs when it binds)", self.cn_label(cn));
                continue;
            };
            if !conn.push_queue.is_empty() {
                Self::queue_push(conn, msg, slot, &mut self.to_close);
                continue;
            }
            match conn.session.request(&msg, conn.io.queue()) {
                Ok(id) => {
                    debug!(target: "handover", "push {id} to {}: {msg}", conn.peer);
                    self.stats.pushes_sent += 1;
                    if let Some(s) = slot {
                        self.dirty.push(s);
                    }
                }
                Err(MlrpError::TooManyOutstanding) => {
                    Self::queue_push(conn, msg, slot, &mut self.to_close);
                }
                Err(e) => warn!("! push to {}: {e}", conn.peer),
            }
        }
    }

    /// Hold a push until the CN acknowledges earlier ones; close the session
    /// of a CN that falls [`MAX_QUEUED_PUSHES`] behind (it resyncs when it
    /// binds again).
    fn queue_push(
        conn: &mut Conn,
        msg: Message,
        slot: Option<usize>,
        to_close: &mut Vec<(usize, String)>,
    ) {
        if conn.closing {
            return;
        }
        if conn.push_queue.len() >= MAX_QUEUED_PUSHES {
            warn!(
                "! CN {} does not answer pushes ({} unanswered, {} queued); closing its session",
                conn.peer,
                conn.session.outstanding(),
                conn.push_queue.len()
            );
            conn.closing = true;
            conn.push_queue.clear();
            if let Some(s) = slot {
                to_close.push((s, "not answering pushes".into()));
            }
            return;
        }
        conn.push_queue.push_back(msg);
    }

    /// Journal, then write: replies leave only once their changes are durable.
    fn commit_and_flush(&mut self) {
        // A round whose only changes are moves (where a station is) is
        // written to the journal but not fdatasynced before its replies and
        // pushes leave: the parent's Redirect is the handover's critical
        // path, and an fdatasync on a disk shared with other work took
        // 0.1-0.9 s here (docs/benchmarks/mobility.md). A location survives
        // an mlrd crash (page cache) and the CNs correct a stale one (the
        // station's next frame at a CN makes it Locate and Move again);
        // allocations, releases, CN binds and expiry are still durable
        // before they are acknowledged, and their fdatasync covers the
        // moves written before them.
        let mut durable = false;
        if self.reg.has_changes() {
            let changes = self.reg.take_changes();
            durable = changes.len() > self.soft_changes;
            self.journal.record(&self.reg, &changes);
        }
        self.soft_changes = 0;
        if self.journal.pending() {
            let written = if durable {
                self.journal.commit()
            } else {
                self.journal.write_soft()
            };
            if let Err(e) = written {
                // The changes are in memory but not durable: their replies
                // must not go out. Dropping them breaks the session's
                // sequence, so close those connections; CNs retry
                // (allocate is idempotent).
                error!("! journal write failed: {e}; dropping this round's replies");
                let dirty = std::mem::take(&mut self.dirty);
                for s in dirty {
                    if let Some(Some(c)) = self.conns.get_mut(s) {
                        if c.io.queued_len() > c.committed_len {
                            c.io.truncate(c.committed_len);
                            c.closing = true;
                            self.to_close.push((s, "journal write failed".into()));
                        }
                    }
                }
            } else if self.journal.should_compact() {
                let t = Instant::now();
                match self.journal.compact_in_background(&self.reg) {
                    Ok(()) => info!(
                        "+ Compacting the journal: snapshot {} of {} bindings written in the background (loop paused {} ms)",
                        self.journal.generation(),
                        self.reg.binding_count(),
                        t.elapsed().as_millis()
                    ),
                    Err(e) => error!("! compaction failed: {e}"),
                }
            }
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for s in dirty.drain(..) {
            self.flush(s);
        }
        self.dirty = dirty;
        for (s, why) in std::mem::take(&mut self.to_close) {
            self.close(s, &why);
        }
    }

    fn flush(&mut self, slot: usize) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        match c.io.flush() {
            Ok(0) => {}
            Ok(_) => c.write_progress = Instant::now(),
            Err(e) => {
                c.closing = true;
                c.io.discard_unsent();
                self.to_close.push((slot, format!("write: {e}")));
            }
        }
        c.committed_len = c.io.queued_len();
        let want_write = c.pending() > 0;
        let want_read = c.pending() < OUTPUT_HIGH_WATER;
        if want_read && c.frames_waiting && !c.closing {
            // Frames read before the high-water mark are waiting in the
            // session; no new bytes may ever arrive to wake us for them.
            self.resume.push(slot);
        }
        if want_write != c.want_write || want_read != c.want_read {
            c.want_write = want_write;
            c.want_read = want_read;
            self.poller
                .register_interest(c.io.fd(), FIRST_CONN + slot, want_read, want_write);
        }
        if c.closing && c.pending() == 0 {
            self.to_close.push((slot, String::new()));
        }
    }

    fn close(&mut self, slot: usize, why: &str) {
        let Some(mut c) = self.conns.get_mut(slot).and_then(Option::take) else {
            return;
        };
        // Best effort: a closing notice the session queued.
        if c.pending() > 0 && c.pending() < (64 << 10) {
            let _ = c.io.flush();
        }
        self.poller.deregister(c.io.fd());
        if let Some(cn) = c.cn {
            if self.cn_conn.get(cn as usize).copied().flatten() == Some(slot) {
                self.cn_conn[cn as usize] = None;
                if self.reg.cn_down(cn) {
                    info!(
                        "- CN {} down: session from {} closed{}{}",
                        self.cn_label(cn),
                        c.peer,
                        if why.is_empty() { "" } else { ": " },
                        why
                    );
                }
            }
        }
        debug!(target: "mlrp", "{}: closed {why}", c.peer);
        self.free_slots.push(slot);
        self.nconns -= 1;
    }

    // ---- timers and signals ---------------------------------------------

    fn on_tick(&mut self, now: Instant) {
        match self.journal.poll_background() {
            Some(Ok(took)) => info!(
                "+ Journal compacted into snapshot {} ({} ms)",
                self.journal.generation(),
                took.as_millis()
            ),
            Some(Err(e)) => error!("! background compaction failed: {e}; the journals are kept"),
            None => {}
        }
        let secs = now_secs();
        let (gone, pushes) = self.reg.expire(secs, SWEEP_BUDGET);
        for r in &gone {
            debug!(target: "register", "lease of {} ({}) expired", r.mac(), r.cell30());
        }
        if !gone.is_empty() {
            info!("- {} lease(s) expired, their /30s are free", gone.len());
        }
        self.pushes.extend(pushes);
        for cn in self.reg.check_liveness(secs) {
            warn!(
                "! CN {} down: silent for {} s (its stations' bindings are kept)",
                self.cn_label(cn),
                self.cfg.cn_timeout
            );
            if let Some(s) = self.cn_conn.get_mut(cn as usize).and_then(Option::take) {
                if let Some(Some(c)) = self.conns.get_mut(s) {
                    c.cn = None;
                }
                self.to_close.push((s, "CN silent".into()));
            }
        }
        self.deliver_pushes();
        if self.refused_since_log > 1 {
            warn!(
                "! Refused {} more connections: max_connections {} reached",
                self.refused_since_log - 1,
                self.max_conns
            );
        }
        self.refused_since_log = 0;
        let stall = Duration::from_secs(self.cfg.cn_timeout as u64);
        for (i, c) in self.conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            if c.pending() == 0 {
                c.write_progress = now;
            } else if now.duration_since(c.write_progress) > stall && !c.closing {
                warn!(
                    "! {}: accepted no byte of {} pending for {} s: peer is not reading; closing",
                    c.peer,
                    c.pending(),
                    stall.as_secs()
                );
                c.closing = true;
                c.io.discard_unsent();
                self.to_close.push((i, "not reading".into()));
                continue;
            }
            if !c.session.is_established() && now.duration_since(c.io.opened()) > HANDSHAKE_TIMEOUT
            {
                self.to_close.push((i, "no handshake in time".into()));
            } else if c.cn.is_none()
                && c.session.is_established()
                && now.duration_since(c.io.last_rx()) > IDLE_TIMEOUT
            {
                self.to_close.push((i, "idle".into()));
            }
        }
    }

    fn on_signals(&mut self) {
        for s in self.signals.drain() {
            match s {
                Signal::SIGHUP => self.reload(),
                Signal::SIGUSR1 => self.write_status(),
                Signal::SIGUSR2 => {
                    let n = tmip::logging::step_level();
                    // Logged at error level so it shows at every level.
                    error!("+ SIGUSR2: debug level now {n}");
                }
                Signal::SIGTERM | Signal::SIGINT => {
                    info!("+ {s}: saving state and exiting");
                    self.stop = true;
                }
                _ => {}
            }
        }
    }

    pub fn stats(&self) -> ServerStats {
        ServerStats {
            connections: self.nconns,
            journal_bytes: self.journal.journal_bytes(),
            journal_generation: self.journal.generation(),
            journal_syncs: self.journal.syncs(),
            ..self.stats
        }
    }

    fn write_status(&mut self) {
        let doc = status::render(
            &self.reg,
            &self.stats(),
            now_secs(),
            self.started.elapsed().as_secs(),
            tmip::logging::level(),
        );
        match status::write(&self.cfg.status_file, &doc) {
            Ok(()) => info!(
                "+ Status written to {} ({} CNs, {} bindings)",
                self.cfg.status_file,
                self.reg.cns().len(),
                self.reg.binding_count()
            ),
            Err(e) => error!("! status_file {}: {e}", self.cfg.status_file),
        }
    }

    fn reload(&mut self) {
        info!("+ SIGHUP: re-reading {}", self.source);
        let new = match MlrdConfig::load_source(&self.source) {
            Ok(c) => c,
            Err(e) => {
                error!("! {e}; keeping the running configuration");
                return;
            }
        };
        let old = std::mem::replace(&mut self.cfg, new);
        let c = &self.cfg;
        let mut restart = Vec::new();
        if c.network_name != old.network_name {
            restart.push("network_name");
        }
        if c.port != old.port {
            restart.push("port");
        }
        if c.log_file != old.log_file {
            restart.push("log_file");
        }
        if c.log != old.log {
            restart.push("log");
        }
        if c.state_dir != old.state_dir {
            restart.push("state_dir");
        }
        if c.foreground != old.foreground {
            restart.push("foreground");
        }
        // Keep what needs a restart as it runs, so the state stays coherent.
        let (nn, port, lf, lg, sd, fg) = (
            old.network_name.clone(),
            old.port,
            old.log_file.clone(),
            old.log,
            old.state_dir.clone(),
            old.foreground,
        );
        if c.debug_level != old.debug_level && self.debug_override.is_none() {
            tmip::logging::set_level(c.debug_level);
            info!("+   debug_level now {}", c.debug_level);
        }
        if c.lease_time != old.lease_time {
            self.reg.set_lease_time(c.lease_time);
            info!(
                "+   lease_time now {} s (for renewals from now on)",
                c.lease_time
            );
        }
        if c.secret != old.secret {
            self.key = key_for(c);
            info!("+   secret changed: new connections use it, open sessions keep theirs");
        }
        if c.max_connections != old.max_connections {
            self.max_conns = c.max_connections;
            info!("+   max_connections now {}", c.max_connections);
        }
        if c.cn_timeout != old.cn_timeout {
            info!("+   cn_timeout now {} s", c.cn_timeout);
        }
        if c.status_file != old.status_file {
            info!("+   status_file now {}", c.status_file);
        }
        if !restart.is_empty() {
            warn!(
                "! {} changed: takes effect at the next restart",
                restart.join(", ")
            );
        }
        let c = &mut self.cfg;
        c.network_name = nn;
        c.port = port;
        c.log_file = lf;
        c.log = lg;
        c.state_dir = sd;
        c.foreground = fg;
        self.reg.set_dead_after(self.cfg.cn_timeout);
        info!("+ Configuration reloaded");
    }
}

fn register_code(e: crate::register::RegisterError) -> ErrorCode {
    use crate::register::RegisterError as R;
    match e {
        R::NotBound => ErrorCode::NotBound,
        R::NotFound | R::UnknownCn => ErrorCode::NotFound,
        R::PoolsExhausted => ErrorCode::PoolExhausted,
        R::CellMismatch => ErrorCode::Conflict,
        R::BadMac => ErrorCode::BadRequest,
    }
}
