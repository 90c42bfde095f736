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

#[path = "pair_links.rs"]
mod pair_links;
#[path = "replication.rs"]
mod replication;

use crate::config::{MlrdConfig, Source, TABLE};
use crate::journal::Journal;
use crate::pair::Pair;
use crate::register::Register;
use crate::service::{Service, Settings};
use crate::status::{self, ServerStats};
use log::{debug, error, info, warn};
use nix::sys::signal::Signal;
use pair_links::{HeldBind, PeerLink, ReplicaLink, PROBE_EVERY};
pub use replication::peer_addr;
use std::collections::VecDeque;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::fd::{AsFd, AsRawFd};
use std::time::{Duration, Instant, SystemTime};
use tmip::event_loop::{Poller, Readiness, Signals, Timers, Token};
use tmip::log_throttle::LogThrottle;
use tmip::mlrp::{
    self, Admit, ErrorCode, Incoming, Message, MlrpError, NetworkKey, PreAuth, Recv, Role, Session,
    Ticket,
};

const LISTENER: Token = 0;
const SIGNALS: Token = 1;
const FIRST_CONN: Token = 2;
/// Our own connection to the other register of a pair.
const PEER_LINK: Token = Token::MAX;
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
/// Warnings about refused or evicted peers: one line per this interval,
/// plus a count of the rest (the log must not grow at an attacker's pace).
const REFUSAL_LOG_INTERVAL: Duration = Duration::from_secs(10);
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
    let _ = tmip::sys::socket::listen(l.as_fd(), 4096);
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
    /// Counted in [`PreAuth`] until the peer's Hello is accepted.
    preauth: Option<Ticket>,
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
    /// This iteration's output holds more than answers to pings: replies
    /// that read or changed the register, pushes. Only such output waits
    /// for the backup; a pong held behind another CN's allocation would
    /// let this CN's heartbeat deadline pass and make it fail over.
    stateful: bool,
    /// Pushes waiting for the CN to acknowledge earlier ones (the session
    /// allows MAX_OUTSTANDING unanswered requests).
    push_queue: VecDeque<Message>,
    /// Output held until the backup register stored commit `seq`: from
    /// absolute position `start` on (replication.rs).
    held: VecDeque<(u64, u64)>,
    /// A standby holds this connection's bind (replication.rs): its later
    /// requests wait, so they are answered in order after it.
    bind_held: bool,
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
    /// Most connections the open-file limit allows (`max_connections` is
    /// lowered to it).
    pub conn_ceiling: usize,
    /// The primary/backup pair (alone when no peer is configured).
    pub pair: Pair,
}

#[derive(Debug, Clone, Copy)]
enum Tick {
    Second,
    /// Watch the listener again after accept(2) failed (EMFILE...).
    Relisten,
    /// Probe the peer register, time out the backup's acknowledgements.
    Peer,
}

pub struct Server {
    cfg: MlrdConfig,
    source: Source,
    debug_override: Option<u8>,
    service: Service,
    journal: Journal,
    listener: TcpListener,
    poller: Poller,
    signals: Signals,
    timers: Timers<Tick>,
    conns: Vec<Option<Conn>>,
    free_slots: Vec<usize>,
    /// Slots closed this iteration: reusable from the next one, once no
    /// list of this iteration (`to_close`, `dirty`) can still name them.
    released: Vec<usize>,
    nconns: usize,
    max_conns: usize,
    conn_ceiling: usize,
    /// Connections that have not completed their handshake, by age/source.
    preauth: PreAuth<usize>,
    key: Option<NetworkKey>,
    stats: ServerStats,
    started: Instant,
    /// Slots with output queued this iteration.
    dirty: Vec<usize>,
    /// Slots whose reading resumed with frames still buffered in the session.
    resume: Vec<usize>,
    to_close: Vec<(usize, String)>,
    /// Connections refused: every slot holds an authenticated one.
    refused_log: LogThrottle,
    /// Unauthenticated connections evicted to make room.
    evicted_log: LogThrottle,
    /// Connections that did not complete the handshake in time.
    handshake_log: LogThrottle,
    /// Station requests refused for lack of a /30 (foreign_share quota,
    /// pools exhausted).
    pool_log: LogThrottle,
    pool_refused: u64,
    /// Connections closed for a bad Hello or protocol error before it.
    preauth_error_log: LogThrottle,
    stop: bool,
    pair: Pair,
    peer_link: Option<PeerLink>,
    /// The peer link's descriptor as registered with the poller.
    peer_polled: Option<(i32, bool)>,
    replica: Option<ReplicaLink>,
    /// When each CN was last heard (the pair's allocation fence).
    cn_heard: Vec<Option<Instant>>,
    /// Commits streamed to the backup.
    repl_seq: u64,
    /// Standby: this round stores replicated records (commit durably and
    /// only then acknowledge them).
    repl_durable: bool,
    /// Standby: CN binds waiting to learn whether the serving register is
    /// gone (replication.rs).
    held_binds: Vec<HeldBind>,
}

fn settings(cfg: &MlrdConfig) -> Settings {
    Settings {
        ping_interval_secs: (cfg.cn_timeout / 3).max(1) as u16,
    }
}

/// A live key's value for the HUP log.
fn shown(c: &MlrdConfig, key: &str) -> String {
    match key {
        "debug_level" => c.debug_level.to_string(),
        "status_file" => c.status_file.clone(),
        "max_connections" => c.max_connections.to_string(),
        "cn_timeout" => format!("{} s", c.cn_timeout),
        "max_unauth_per_source" => c.max_unauth_per_source.to_string(),
        "handshake_timeout" => format!("{} s", c.handshake_timeout),
        "offer_time" => format!("{} s", c.offer_time),
        "foreign_share" => format!("{} %", c.foreign_share),
        _ => "applied".into(),
    }
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
        if s.pair.peer().is_some() {
            timers.schedule_in(Instant::now(), Duration::ZERO, Tick::Peer);
        }
        let key = key_for(&s.cfg);
        let throttle = LogThrottle::new(REFUSAL_LOG_INTERVAL);
        let cfg = s.cfg.clone();
        let mut srv = Server {
            key,
            service: Service::new(s.reg, settings(&s.cfg), now_secs()),
            preauth: PreAuth::new(s.cfg.max_unauth_per_source),
            cfg: s.cfg,
            source: s.source,
            debug_override: s.debug_override,
            journal: s.journal,
            listener: s.listener,
            poller,
            signals,
            timers,
            conns: Vec::new(),
            free_slots: Vec::new(),
            released: Vec::new(),
            nconns: 0,
            max_conns: s.conn_ceiling,
            conn_ceiling: s.conn_ceiling,
            stats: ServerStats::default(),
            started: Instant::now(),
            dirty: Vec::new(),
            resume: Vec::new(),
            to_close: Vec::new(),
            refused_log: throttle.clone(),
            evicted_log: throttle.clone(),
            handshake_log: throttle.clone(),
            pool_log: throttle.clone(),
            pool_refused: 0,
            preauth_error_log: throttle,
            stop: false,
            pair: s.pair,
            peer_link: None,
            peer_polled: None,
            replica: None,
            cn_heard: Vec::new(),
            repl_seq: 0,
            repl_durable: false,
            held_binds: Vec::new(),
        };
        srv.apply_config(cfg);
        Ok(srv)
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
            self.sync_peer_poll();
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
                    PEER_LINK => {
                        self.on_peer_link(r);
                        self.settle_held_binds(Instant::now());
                    }
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
                    Tick::Peer => {
                        self.peer_tick(now);
                        self.settle_held_binds(now);
                        self.replica_tick(now);
                        self.timers.schedule_in(now, PROBE_EVERY, Tick::Peer);
                    }
                }
            }
            self.commit_and_flush();
        }
        match self.journal.compact(self.service.reg()) {
            Ok(()) => {
                info!(
                    "+ State saved: snapshot {} with {} bindings. MLR stopped.",
                    self.journal.generation(),
                    self.service.reg().binding_count()
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
            if !self.admit(peer) {
                drop(stream);
                continue;
            }
            if let Err(e) = self.add_conn(stream, peer) {
                warn!("! {peer}: cannot set up connection: {e}");
            }
        }
    }

    /// Make room for a new connection from `peer` by the rules of
    /// [`PreAuth`]; false when it must be refused.
    fn admit(&mut self, peer: SocketAddr) -> bool {
        let now = Instant::now();
        let (slot, why) = match self.preauth.admit(peer.ip(), self.nconns, self.max_conns) {
            Admit::Accept => return true,
            Admit::Refuse => {
                self.stats.connections_refused += 1;
                if self.refused_log.hit(now) {
                    warn!(
                        "! Refusing connection from {peer}: all {} connections are authenticated (max_connections {})",
                        self.nconns, self.max_conns
                    );
                }
                return false;
            }
            Admit::EvictSameSource(slot) => (slot, "per-source limit"),
            Admit::EvictOldest(slot) => (slot, "all slots in use"),
        };
        self.stats.preauth_evicted += 1;
        if let Some(Some(c)) = self.conns.get_mut(slot) {
            // Its ticket is void now; the slot is freed before `peer` takes one.
            c.preauth = None;
            if self.evicted_log.hit(now) {
                warn!(
                    "! Evicting unauthenticated connection from {} ({why}: max_unauth_per_source {}, max_connections {}) for a new one from {peer}",
                    c.peer,
                    self.preauth.per_source(),
                    self.max_conns
                );
            }
            // After our Hello if that is still queued; `close` sends both
            // best effort.
            c.session.close(
                ErrorCode::Unavailable,
                "evicted: handshake not complete",
                c.io.queue(),
            );
        }
        self.close(slot, "evicted before authenticating");
        true
    }

    fn add_conn(&mut self, stream: TcpStream, peer: SocketAddr) -> io::Result<()> {
        let mut io = mlrp::Conn::accepted(stream, peer)?;
        let mut session = Session::new(Role::Mlr, self.key.as_ref(), mlrp::random_nonce()?);
        session.set_label(peer.to_string());
        session.set_epoch(self.pair.epoch());
        session.handshake(io.queue());
        let now = Instant::now();
        let conn = Conn {
            io,
            peer,
            session,
            preauth: None,
            want_write: false,
            want_read: true,
            frames_waiting: false,
            write_progress: now,
            closing: false,
            committed_len: 0,
            stateful: false,
            held: VecDeque::new(),
            push_queue: VecDeque::new(),
            bind_held: false,
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
        let ticket = self.preauth.insert(peer.ip(), slot);
        if let Some(c) = &mut self.conns[slot] {
            c.preauth = Some(ticket);
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
            // Before its Hello, a peer gets no more than the largest Hello
            // into memory (docs/SECURITY.md, pre-authentication memory).
            let want = conn.session.read_limit().min(buf.len());
            if want == 0 {
                break;
            }
            match conn.io.recv(&mut buf[..want]) {
                Recv::Closed => {
                    self.to_close.push((slot, "peer closed".into()));
                    conn.closing = true;
                    break;
                }
                Recv::Data(n) => {
                    total += n;
                    conn.session.feed(&buf[..n]);
                    self.process_frames(slot, conn);
                    if n < want {
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
            if conn.bind_held {
                // Resumed when the bind is answered (replication.rs).
                break;
            }
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
            // Every authenticated frame says the sender's epoch: a higher
            // one than ours means a promotion happened elsewhere.
            if ev.is_ok() && conn.session.peer_epoch() > self.pair.epoch() {
                self.on_frame_epoch(conn.session.peer_epoch(), &conn.peer);
                if !self.pair.serves() && self.service.cn_of(slot).is_some() && !conn.closing {
                    // A CN bound here: its session closes with the others.
                    conn.closing = true;
                    self.to_close.push((slot, "register stepped down".into()));
                    break;
                }
            }
            match ev {
                Ok(Incoming::Established { peer }) => {
                    if let Some(t) = conn.preauth.take() {
                        self.preauth.remove(t);
                    }
                    debug!(target: "mlrp", "{}: established ({:?}, {})", conn.peer, peer.role, peer.software);
                }
                Ok(Incoming::Request { id, msg }) => {
                    self.stats.frames_in += 1;
                    debug!(target: "mlrp", "{}: request {id}: {msg}", conn.peer);
                    conn.stateful |= !matches!(msg, Message::Ping { .. });
                    self.service.heard(slot, now);
                    self.note_heard_conn(slot);
                    let Some(reply) = self.handle_in_pair(slot, conn, id, msg, now) else {
                        conn.bind_held = true;
                        continue;
                    };
                    if let Message::Error(e) = &reply {
                        if matches!(e.code, ErrorCode::PoolExhausted | ErrorCode::Quota) {
                            self.pool_refused += 1;
                            if self.pool_log.hit(Instant::now()) {
                                warn!(
                                    "! refused: no /30 for a station of {}: {} ({} in all)",
                                    conn.peer, e.text, self.pool_refused
                                );
                            }
                        }
                    }
                    debug!(target: "mlrp", "{}: reply {id}: {reply}", conn.peer);
                    // In the epoch the request may have just raised (a
                    // promotion at a CN's bind).
                    conn.session.set_epoch(self.pair.epoch());
                    if let Err(e) = conn.session.reply(id, &reply, conn.io.queue()) {
                        warn!("! {}: cannot send reply {id}: {e}", conn.peer);
                    }
                    if self
                        .replica
                        .as_ref()
                        .is_some_and(|r| r.slot == slot && r.has_unsent())
                    {
                        self.replica_send_pending(conn);
                    }
                }
                Ok(Incoming::Reply { id, msg }) => {
                    self.stats.frames_in += 1;
                    self.service.heard(slot, now);
                    self.note_heard_conn(slot);
                    if self.replica.as_ref().is_some_and(|r| r.slot == slot) {
                        self.on_replica_reply(conn, id, msg);
                        continue;
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
                        if conn.preauth.is_some() {
                            // Before authentication: anyone can send this,
                            // as often as they like.
                            self.stats.preauth_refused += 1;
                            if self.preauth_error_log.hit(Instant::now()) {
                                warn!("! {}: {why} before the handshake; closing", conn.peer);
                            }
                        } else if !matches!(e, MlrpError::PeerClosed(_)) {
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
                Ok(_) => {
                    self.stats.pushes_sent += 1;
                    conn.stateful = true;
                }
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

    /// Send the register's pushes over the target CNs' bound sessions.
    fn deliver_pushes(&mut self) {
        for p in self.service.take_pushes() {
            let (cn, msg) = self.service.push_message(p);
            let slot = self.service.conn_of(cn);
            let Some(conn) = slot
                .and_then(|s| self.conns.get_mut(s))
                .and_then(Option::as_mut)
            else {
                debug!(target: "handover", "CN {} has no session: {msg} not delivered (it resyncs when it binds)", self.service.cn_label(cn));
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
                    conn.stateful = true;
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
        let mut durable = std::mem::take(&mut self.repl_durable);
        let soft_changes = self.service.take_soft_changes();
        if self.service.reg().has_changes() {
            let changes = self.service.reg_mut().take_changes();
            durable |= changes.len() > soft_changes;
            self.journal.record(self.service.reg(), &changes);
        }
        // A backup gets the same records; the replies of a durable round
        // wait for its acknowledgement (replication.rs).
        let records = (self.replica.is_some() && self.journal.pending())
            .then(|| self.journal.recorded().to_vec());
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
            } else if let Some(seq) = records.and_then(|r| self.replicate(&r, durable)) {
                self.hold_round(seq);
            }
            if self.journal.should_compact() {
                let t = Instant::now();
                match self.journal.compact_in_background(self.service.reg()) {
                    Ok(()) => info!(
                        "+ Compacting the journal: snapshot {} of {} bindings written in the background (loop paused {} ms)",
                        self.journal.generation(),
                        self.service.reg().binding_count(),
                        t.elapsed().as_millis()
                    ),
                    Err(e) => error!("! compaction failed: {e}"),
                }
            }
        }
        // A standby's acknowledgements of replicated records leave only
        // now that they are stored.
        if self.peer_link.as_ref().is_some_and(|l| l.wants_flush()) {
            self.peer_flush();
        }
        let mut dirty = std::mem::take(&mut self.dirty);
        dirty.sort_unstable();
        dirty.dedup();
        for s in dirty.drain(..) {
            self.flush(s);
        }
        self.dirty = dirty;
        for (s, why) in self.service.take_to_close() {
            self.to_close.push((s, why.into()));
        }
        for (s, why) in std::mem::take(&mut self.to_close) {
            self.close(s, &why);
        }
        self.free_slots.append(&mut self.released);
    }

    fn flush(&mut self, slot: usize) {
        let Some(Some(c)) = self.conns.get_mut(slot) else {
            return;
        };
        let limit = c.held.front().map_or(u64::MAX, |h| h.1);
        match c.io.flush_upto(limit) {
            Ok(0) => {}
            Ok(_) => c.write_progress = Instant::now(),
            Err(e) => {
                c.closing = true;
                c.io.discard_unsent();
                self.to_close.push((slot, format!("write: {e}")));
            }
        }
        c.committed_len = c.io.queued_len();
        c.stateful = false;
        // Held bytes do not make the socket worth watching for POLLOUT.
        let unsent_from = c.io.queued_abs() - c.pending() as u64;
        let want_write = limit.min(c.io.queued_abs()) > unsent_from;
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

    /// Keep the poller's entry for the peer link in step with the link
    /// (its descriptor is deregistered when it closes: replication.rs).
    fn sync_peer_poll(&mut self) {
        let want = self.peer_link_fd();
        if want != self.peer_polled {
            if let Some((fd, w)) = want {
                self.poller.register_interest(fd, PEER_LINK, true, w);
            }
            self.peer_polled = want;
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
        if self.replica.as_ref().is_some_and(|r| r.slot == slot) {
            self.drop_replica("its connection closed");
        }
        self.forget_held_binds(slot);
        if let Some(t) = c.preauth {
            self.preauth.remove(t);
        }
        if let Some(cn) = self.service.closed(slot) {
            info!(
                "- CN {} down: session from {} closed{}{}",
                self.service.cn_label(cn),
                c.peer,
                if why.is_empty() { "" } else { ": " },
                why
            );
        }
        debug!(target: "mlrp", "{}: closed {why}", c.peer);
        self.released.push(slot);
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
        // A standby's register changes only by what the serving register
        // streams (its expiry included).
        if self.pair.serves() {
            for s in self.service.tick(now_secs(), SWEEP_BUDGET) {
                self.to_close.push((s, "CN silent".into()));
            }
        }
        self.deliver_pushes();
        self.log_refusal_summaries(now);
        let handshake_timeout = Duration::from_secs(self.cfg.handshake_timeout as u64);
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
            if !c.session.is_established() && now.duration_since(c.io.opened()) > handshake_timeout
            {
                self.stats.handshake_timeouts += 1;
                if self.handshake_log.hit(now) {
                    warn!(
                        "! {}: no handshake within handshake_timeout {} s; closing",
                        c.peer,
                        handshake_timeout.as_secs()
                    );
                }
                self.to_close.push((i, "no handshake in time".into()));
            } else if self.service.cn_of(i).is_none()
                && c.session.is_established()
                && now.duration_since(c.io.last_rx()) > IDLE_TIMEOUT
            {
                self.to_close.push((i, "idle".into()));
            }
        }
    }

    /// The counts behind the rate-limited warnings, once per interval.
    fn log_refusal_summaries(&mut self, now: Instant) {
        if let Some(n) = self.pool_log.summary(now) {
            warn!(
                "! refused: {n} more station request(s) for lack of a /30 (foreign_share quota or pools exhausted) in the last {} s, {} in all",
                REFUSAL_LOG_INTERVAL.as_secs(),
                self.pool_refused
            );
        }
        if let Some(n) = self.refused_log.summary(now) {
            warn!(
                "! Refused {n} more connection(s) in the last {} s: max_connections {} reached, all authenticated",
                REFUSAL_LOG_INTERVAL.as_secs(),
                self.max_conns
            );
        }
        if let Some(n) = self.evicted_log.summary(now) {
            warn!(
                "! Evicted {n} more unauthenticated connection(s) in the last {} s (max_unauth_per_source {}, max_connections {})",
                REFUSAL_LOG_INTERVAL.as_secs(),
                self.preauth.per_source(),
                self.max_conns
            );
        }
        if let Some(n) = self.handshake_log.summary(now) {
            warn!(
                "! Closed {n} more connection(s) without a handshake within handshake_timeout {} s in the last {} s",
                self.cfg.handshake_timeout,
                REFUSAL_LOG_INTERVAL.as_secs()
            );
        }
        if let Some(n) = self.preauth_error_log.summary(now) {
            warn!(
                "! Refused {n} more connection(s) for a bad Hello or frame before the handshake in the last {} s",
                REFUSAL_LOG_INTERVAL.as_secs()
            );
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
            unauthenticated: self.preauth.len(),
            max_connections: self.max_conns,
            max_unauth_per_source: self.preauth.per_source(),
            handshake_timeout: self.cfg.handshake_timeout,
            ping_interval_secs: self.service.ping_interval_secs(),
            ..self.stats
        }
    }

    fn write_status(&mut self) {
        let doc = match status::render(
            self.service.reg(),
            &self.pair,
            &self.stats(),
            now_secs(),
            self.started.elapsed().as_secs(),
            tmip::logging::level(),
        ) {
            Ok(d) => d,
            Err(e) => {
                error!("! status_file {}: {e}", self.cfg.status_file);
                return;
            }
        };
        match status::write(&self.cfg.status_file, &doc) {
            Ok(()) => info!(
                "+ Status written to {} ({} CNs, {} bindings)",
                self.cfg.status_file,
                self.service.reg().cns().len(),
                self.service.reg().binding_count()
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
        let r = TABLE.reload(&self.cfg, new);
        self.apply_config(r.config);
        let c = &self.cfg;
        for k in &r.applied {
            match *k {
                "debug_level" if self.debug_override.is_some() => {
                    info!(
                        "+   debug_level {}: -D on the command line wins",
                        c.debug_level
                    )
                }
                "lease_time" => info!(
                    "+   lease_time now {} s (for renewals from now on)",
                    c.lease_time
                ),
                "secret" => {
                    info!("+   secret changed: new connections use it, open sessions keep theirs")
                }
                "max_connections" if self.max_conns < c.max_connections => info!(
                    "+   max_connections now {} (lowered by the open-file limit)",
                    self.max_conns
                ),
                k => info!("+   {k} now {}", shown(c, k)),
            }
        }
        if !r.restart.is_empty() {
            warn!(
                "! Changed, not applied, needs a restart: {}",
                r.restart.join(", ")
            );
        }
        info!("+ Configuration reloaded");
    }

    /// Run with `cfg` (on a HUP, restart-only keys as they run): every part
    /// that uses a setting gets it from `cfg` here, at start and on every
    /// HUP, so no live key stops at `self.cfg`. `handshake_timeout`,
    /// `cn_timeout` (the stall limit) and `status_file` are read from
    /// `self.cfg` where they are used.
    fn apply_config(&mut self, cfg: MlrdConfig) {
        if self.debug_override.is_none() {
            tmip::logging::set_level(cfg.debug_level);
        }
        let reg = self.service.reg_mut();
        reg.set_lease_time(cfg.lease_time);
        reg.set_offer_time(cfg.offer_time);
        reg.set_foreign_share(cfg.foreign_share);
        reg.set_dead_after(cfg.cn_timeout);
        self.service.set_settings(settings(&cfg));
        self.preauth.set_per_source(cfg.max_unauth_per_source);
        self.max_conns = cfg.max_connections.min(self.conn_ceiling);
        self.key = key_for(&cfg);
        self.cfg = cfg;
    }
}
