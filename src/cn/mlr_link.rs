//! The CN's link to its MLR as a sans-IO state machine, in quinn-proto's
//! shape: it owns the MLRP [`Session`], the phases (down, connecting,
//! handshake, binding, bound), the heartbeat, the connect deadline, the
//! reconnect backoff and the requests in flight, and its own timers. It
//! never touches a socket or the clock:
//!
//! - the loop asks [`MlrLink::poll_timeout`] when to wake it and then calls
//!   [`MlrLink::handle_timeout`];
//! - it carries out [`MlrLink::poll_action`] (open a connection, close it),
//!   writes what [`MlrLink::poll_transmit`] hands out, feeds what it reads
//!   to [`MlrLink::handle_input`] and reports the socket's fate
//!   ([`MlrLink::handle_connected`], [`MlrLink::handle_closed`]);
//! - it hands [`MlrLink::poll_event`]s (bound, down, answers, requests the
//!   MLR pushes) to the core.
//!
//! With a backup register configured the link is bound to one register at
//! a time and fails over: when the bound register is lost it tries the
//! other one at once, and alternates (with the backoff after each round of
//! both) until one binds. Every frame a register sends carries the epoch
//! it is in (a promotion raises it), and `RegisterStatusReply` says
//! whether it serves. The link follows the highest epoch it has seen in
//! any frame and stamps it on every frame it sends (so an old primary
//! learns of a promotion from the first CN that arrives, and steps down):
//! a register that answers in an older epoch (an old primary that has not
//! stepped down) or as a standby backup is left for the other. A
//! register's Hello may be older (it was sent before ours arrived), so
//! only its answers are judged. The heartbeat is that same
//! `RegisterStatus` request, so a register that steps down is noticed
//! within a heartbeat.
//!
//! Unit tests drive it with a fake clock against a real MLR-side
//! [`Session`] and no sockets.

use crate::mlrp::{
    self, BindReply, CnBind, ErrorCode, Incoming, Message, MlrpError, NetworkKey, RegisterRole,
    RegisterStatusReply, RequestId, Role, Session,
};
use std::collections::{HashMap, VecDeque};
use std::fmt;
use std::net::SocketAddrV4;
use std::time::{Duration, Instant};

/// Reconnect backoff: the first retry after this, doubling up to
/// [`BACKOFF_MAX`].
pub const BACKOFF_MIN: Duration = Duration::from_secs(1);
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// Connect, handshake and bind must complete within this (a silent MLR
/// host would otherwise hold a SYN for minutes).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What the link needs to know.
#[derive(Debug, Clone)]
pub struct LinkConfig {
    /// The primary register first, then the backup (if any).
    pub registers: Vec<SocketAddrV4>,
    pub key: Option<NetworkKey>,
    /// The bind request sent once the session is up.
    pub bind: CnBind,
    /// Ping interval; `None`: what the MLR asks for in its bind reply
    /// (clamped to 1..60 s).
    pub heartbeat: Option<Duration>,
    /// Silence after which the link is dead; `None`: three heartbeats.
    pub deadline: Option<Duration>,
    pub connect_timeout: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}

impl LinkConfig {
    pub fn new(register: SocketAddrV4, key: Option<NetworkKey>, bind: CnBind) -> LinkConfig {
        LinkConfig {
            registers: vec![register],
            key,
            bind,
            heartbeat: None,
            deadline: None,
            connect_timeout: CONNECT_TIMEOUT,
            backoff_min: BACKOFF_MIN,
            backoff_max: BACKOFF_MAX,
        }
    }

    /// Add the backup register.
    pub fn with_backup(mut self, backup: SocketAddrV4) -> LinkConfig {
        self.registers.truncate(1);
        self.registers.push(backup);
        self
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// No connection; a retry is scheduled.
    Down,
    /// Waiting for the shell to open the TCP connection.
    Connecting,
    /// Connected, Hello exchange in progress.
    Handshake,
    /// CnBind sent, waiting for the answer.
    Binding,
    Bound,
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::Down => "down",
            Phase::Connecting => "connecting",
            Phase::Handshake => "handshake",
            Phase::Binding => "binding",
            Phase::Bound => "bound",
        })
    }
}

/// What the shell must do with the socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Open a TCP connection to this address; then call
    /// [`MlrLink::handle_connected`] or [`MlrLink::handle_closed`].
    Connect(SocketAddrV4),
    /// Write `last_words` (best effort) and close the connection.
    Close { last_words: Vec<u8> },
}

/// Why the link did not bind.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BindFailure {
    /// The MLR turned us away (wrong network name or secret, bad pools):
    /// a configuration error, fatal at start-up.
    Refused(String),
    /// No connection, no answer, or the connection broke.
    Unreachable(String),
}

impl fmt::Display for BindFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            BindFailure::Refused(s) => write!(f, "refused: {s}"),
            BindFailure::Unreachable(s) => f.write_str(s),
        }
    }
}

/// What happened on the link, for the core and the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<T> {
    /// The register accepted our bind; `again` after an earlier bind was
    /// lost (the core resynchronises its stations). `epoch` 0: the register
    /// does not take part in failover (it did not answer RegisterStatus).
    Bound {
        again: bool,
        register: SocketAddrV4,
        epoch: u32,
    },
    /// The MLR refused the bind (the link retries with backoff).
    Refused { why: String },
    /// The connection is gone; the next attempt goes to `next` in
    /// `retry_in` (at once when failing over to the other register).
    /// `was_bound`: the calls in flight will not be answered.
    Down {
        why: String,
        was_bound: bool,
        retry_in: Duration,
        next: SocketAddrV4,
    },
    /// The answer to the request made with `tag`.
    Answer { tag: T, msg: Message },
    /// The MLR asks something (a Redirect or Withdraw pushed to us);
    /// answer with [`MlrLink::reply`].
    Request { id: RequestId, msg: Message },
    /// Something arrived that the session could not use; the link stays up.
    Unusable(MlrpError),
}

/// Why a request could not be sent.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkError {
    NotBound,
    Mlrp(MlrpError),
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NotBound => f.write_str("MLR unreachable"),
            LinkError::Mlrp(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for LinkError {}

#[derive(Debug, Clone, Copy)]
enum Pend<T> {
    Bind,
    /// RegisterStatus: sent with the bind and as the heartbeat.
    Status,
    Caller(T),
}

pub struct MlrLink<T> {
    cfg: LinkConfig,
    phase: Phase,
    session: Option<Session>,
    out: Vec<u8>,
    pend: HashMap<RequestId, Pend<T>>,
    backoff: Duration,
    retry_at: Option<Instant>,
    /// The current attempt must be connected (then bound) by then.
    deadline_at: Option<Instant>,
    /// When the current attempt started.
    attempt_at: Instant,
    ping_at: Option<Instant>,
    last_heard: Instant,
    heartbeat: Duration,
    silence: Duration,
    actions: VecDeque<Action>,
    events: VecDeque<Event<T>>,
    /// Outcome of the latest attempt, for start-up.
    outcome: Option<Result<(), BindFailure>>,
    binds: u64,
    attempts: u64,
    /// Index in `cfg.registers` of the register tried or bound now.
    current: usize,
    /// Failed attempts since the last bind (for the backoff: it grows
    /// after each round over every register).
    failures: usize,
    /// The bind was accepted; the register's status is awaited.
    accepted: Option<Duration>,
    /// The latest status of the current register.
    status: Option<RegisterStatusReply>,
    /// The highest epoch seen in any register's frame (stamped on ours).
    max_epoch: u32,
}

impl<T: Copy + fmt::Debug> MlrLink<T> {
    /// A link that connects at the first [`MlrLink::handle_timeout`].
    pub fn new(cfg: LinkConfig, now: Instant) -> MlrLink<T> {
        let heartbeat = cfg.heartbeat.unwrap_or(Duration::from_secs(10));
        MlrLink {
            backoff: cfg.backoff_min,
            silence: cfg.deadline.unwrap_or(heartbeat * 3),
            heartbeat,
            cfg,
            phase: Phase::Down,
            session: None,
            out: Vec::new(),
            pend: HashMap::new(),
            retry_at: Some(now),
            deadline_at: None,
            attempt_at: now,
            ping_at: None,
            last_heard: now,
            actions: VecDeque::new(),
            events: VecDeque::new(),
            outcome: None,
            binds: 0,
            attempts: 0,
            current: 0,
            failures: 0,
            accepted: None,
            status: None,
            max_epoch: 0,
        }
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }
    pub fn is_bound(&self) -> bool {
        self.phase == Phase::Bound
    }
    /// The register bound now, or tried next.
    pub fn register(&self) -> SocketAddrV4 {
        self.cfg.registers[self.current]
    }
    /// Every configured register, primary first.
    pub fn registers(&self) -> &[SocketAddrV4] {
        &self.cfg.registers
    }
    /// The current register's latest status (epoch, role, replication),
    /// if it answered one.
    pub fn register_status(&self) -> Option<&RegisterStatusReply> {
        self.status.as_ref()
    }
    /// The highest epoch seen in any frame from any register.
    pub fn max_epoch(&self) -> u32 {
        self.max_epoch
    }
    /// The outcome of the latest attempt (`None` while the first runs).
    pub fn outcome(&self) -> Option<&Result<(), BindFailure>> {
        self.outcome.as_ref()
    }
    /// Ping interval and silence deadline in force.
    pub fn heartbeat(&self) -> (Duration, Duration) {
        (self.heartbeat, self.silence)
    }
    /// Whether any request made with [`MlrLink::request`] is unanswered.
    pub fn callers_waiting(&self) -> bool {
        self.pend.values().any(|p| matches!(p, Pend::Caller(_)))
    }

    /// When [`MlrLink::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let silence = (self.phase == Phase::Bound).then(|| self.last_heard + self.silence);
        [self.retry_at, self.deadline_at, self.ping_at, silence]
            .into_iter()
            .flatten()
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        if self.phase == Phase::Down && self.retry_at.is_some_and(|t| t <= now) {
            self.retry_at = None;
            self.attempts += 1;
            self.phase = Phase::Connecting;
            self.attempt_at = now;
            // With another register to try, one whose host does not even
            // answer the SYN within the heartbeat deadline is as gone as a
            // silent bound one (a vanished host would hold the SYN for
            // the whole connect timeout). Handshake and bind, which wait
            // for the register's process and disk, keep the long timeout.
            let connect = if self.cfg.registers.len() > 1 {
                self.cfg.connect_timeout.min(self.silence)
            } else {
                self.cfg.connect_timeout
            };
            self.deadline_at = Some(now + connect);
            self.actions.push_back(Action::Connect(self.register()));
            return;
        }
        if self.deadline_at.is_some_and(|t| t <= now) && self.phase != Phase::Bound {
            let secs = now.saturating_duration_since(self.attempt_at).as_secs_f32();
            let what = if self.phase == Phase::Connecting {
                "no connection"
            } else {
                "no answer"
            };
            self.down(&format!("{what} within {secs:.1} s"), now);
            return;
        }
        if self.phase != Phase::Bound {
            return;
        }
        if now.saturating_duration_since(self.last_heard) >= self.silence {
            let ms = self.silence.as_millis();
            self.down(&format!("no answer to pings for {ms} ms"), now);
            return;
        }
        if self.ping_at.is_some_and(|t| t <= now) {
            self.send_status();
            self.ping_at = Some(now + self.heartbeat);
        }
    }

    /// The TCP connection asked for by [`Action::Connect`] is open.
    pub fn handle_connected(&mut self, now: Instant) {
        if self.phase != Phase::Connecting {
            return;
        }
        let nonce = match mlrp::random_nonce() {
            Ok(n) => n,
            Err(e) => {
                self.down(&format!("no random nonce: {e}"), now);
                return;
            }
        };
        let mut s = Session::new(Role::Cn, self.cfg.key.as_ref(), nonce);
        s.set_label(self.register().to_string());
        s.set_epoch(self.max_epoch);
        s.handshake(&mut self.out);
        self.session = Some(s);
        self.phase = Phase::Handshake;
        self.last_heard = now;
        self.deadline_at = Some(self.attempt_at + self.cfg.connect_timeout);
    }

    /// The connection failed, broke or was closed by the peer.
    pub fn handle_closed(&mut self, why: &str, now: Instant) {
        if self.phase != Phase::Down {
            self.down(why, now);
        }
    }

    /// Bytes read from the connection.
    pub fn handle_input(&mut self, bytes: &[u8], now: Instant) {
        let Some(s) = self.session.as_mut() else {
            return;
        };
        s.feed(bytes);
        self.last_heard = now;
        loop {
            let Some(s) = self.session.as_mut() else {
                return;
            };
            let Some(ev) = s.poll(&mut self.out) else {
                return;
            };
            let epoch = s.peer_epoch();
            if matches!(ev, Ok(Incoming::Reply { .. } | Incoming::Request { .. })) {
                if epoch < self.max_epoch {
                    let why = format!(
                        "register answers in epoch {epoch}, behind epoch {} seen before: stale",
                        self.max_epoch
                    );
                    self.down(&why, now);
                    return;
                }
                self.follow_epoch(epoch);
            }
            match ev {
                Ok(Incoming::Established { peer }) => {
                    log::debug!(target: "mlrp", "MLR session established ({}, epoch {epoch})", peer.software);
                    self.follow_epoch(epoch);
                    self.send_bind(now);
                }
                Ok(Incoming::Reply { id, msg }) => {
                    log::trace!(target: "mlrp", "<- MLR reply {id}: {msg}");
                    match self.pend.remove(&id) {
                        Some(Pend::Bind) => self.on_bind_reply(msg, now),
                        Some(Pend::Status) => self.on_status(msg, now),
                        None => {}
                        Some(Pend::Caller(tag)) => {
                            self.events.push_back(Event::Answer { tag, msg })
                        }
                    }
                }
                Ok(Incoming::Request { id, msg }) => {
                    log::trace!(target: "mlrp", "<- MLR request {id}: {msg}");
                    self.events.push_back(Event::Request { id, msg });
                }
                Err(e) if e.is_fatal() => {
                    let why = e.to_string();
                    if self.phase != Phase::Bound
                        && matches!(e.code(), ErrorCode::Unauthorized | ErrorCode::WrongNetwork)
                    {
                        self.outcome = Some(Err(BindFailure::Refused(why.clone())));
                        self.events.push_back(Event::Refused { why: why.clone() });
                    }
                    self.down(&format!("MLR session error: {why}"), now);
                    return;
                }
                Err(e) => self.events.push_back(Event::Unusable(e)),
            }
        }
    }

    /// Send `msg` to the MLR; its answer comes back as [`Event::Answer`]
    /// with `tag`, unless the link goes down first ([`Event::Down`]).
    pub fn request(&mut self, tag: T, msg: &Message) -> Result<RequestId, LinkError> {
        if self.phase != Phase::Bound {
            return Err(LinkError::NotBound);
        }
        let s = self.session.as_mut().ok_or(LinkError::NotBound)?;
        let id = s.request(msg, &mut self.out).map_err(LinkError::Mlrp)?;
        log::trace!(target: "mlrp", "-> MLR request {id}: {msg}");
        self.pend.insert(id, Pend::Caller(tag));
        Ok(id)
    }

    /// Answer a request the MLR pushed ([`Event::Request`]).
    pub fn reply(&mut self, id: RequestId, msg: &Message) -> Result<(), LinkError> {
        let s = self.session.as_mut().ok_or(LinkError::NotBound)?;
        s.reply(id, msg, &mut self.out).map_err(LinkError::Mlrp)
    }

    /// Append the bytes to write to the connection.
    pub fn poll_transmit(&mut self, buf: &mut Vec<u8>) {
        buf.append(&mut self.out);
    }

    pub fn poll_action(&mut self) -> Option<Action> {
        self.actions.pop_front()
    }

    pub fn poll_event(&mut self) -> Option<Event<T>> {
        self.events.pop_front()
    }

    /// Leave: unbind if bound, say goodbye and close. No retry follows.
    pub fn shutdown(&mut self) {
        if let Some(mut s) = self.session.take() {
            let mut last_words = std::mem::take(&mut self.out);
            if self.phase == Phase::Bound {
                let _ = s.request(&Message::Unbind, &mut last_words);
            }
            s.close(ErrorCode::Unavailable, "CN shutting down", &mut last_words);
            self.actions.push_back(Action::Close { last_words });
        }
        self.phase = Phase::Down;
        self.retry_at = None;
        self.deadline_at = None;
        self.ping_at = None;
        self.pend.clear();
    }

    /// The bind and, pipelined behind it, the register's status.
    fn send_bind(&mut self, now: Instant) {
        let bind = Message::CnBind(self.cfg.bind.clone());
        let Some(s) = self.session.as_mut() else {
            return;
        };
        match s.request(&bind, &mut self.out) {
            Ok(id) => {
                self.pend.insert(id, Pend::Bind);
                self.phase = Phase::Binding;
                self.accepted = None;
                self.status = None;
                self.send_status();
            }
            Err(e) => self.down(&format!("cannot encode the bind: {e}"), now),
        }
    }

    fn send_status(&mut self) {
        if let Some(s) = self.session.as_mut() {
            if let Ok(id) = s.request(&Message::RegisterStatus, &mut self.out) {
                self.pend.insert(id, Pend::Status);
            }
        }
    }

    /// A higher epoch than any seen: follow it, and say so in every frame
    /// from now on.
    fn follow_epoch(&mut self, epoch: u32) {
        if epoch > self.max_epoch {
            self.max_epoch = epoch;
            if let Some(s) = self.session.as_mut() {
                s.set_epoch(epoch);
            }
        }
    }

    /// A `RegisterStatus` answer, to the bind or a heartbeat. A register
    /// that does not know the request (no failover) counts as epoch 0.
    fn on_status(&mut self, msg: Message, now: Instant) {
        let st = match msg {
            Message::RegisterStatusReply(st) => Some(st),
            _ => None,
        };
        if let Some(st) = st {
            if st.epoch < self.max_epoch {
                let why = format!(
                    "register in epoch {} behind epoch {} seen before: stale",
                    st.epoch, self.max_epoch
                );
                self.down(&why, now);
                return;
            }
            if st.role == RegisterRole::Backup {
                self.down("register is a standby backup", now);
                return;
            }
            self.follow_epoch(st.epoch);
        }
        self.status = st;
        if self.phase == Phase::Binding {
            if let Some(every) = self.accepted.take() {
                self.bound(every, now);
            }
        }
    }

    fn bound(&mut self, every: Duration, now: Instant) {
        self.phase = Phase::Bound;
        self.backoff = self.cfg.backoff_min;
        self.failures = 0;
        self.outcome = Some(Ok(()));
        self.heartbeat = self.cfg.heartbeat.unwrap_or(every);
        self.silence = self.cfg.deadline.unwrap_or(self.heartbeat * 3);
        // A configured deadline shorter than the MLR's ping interval would
        // take a live register for dead between two pings.
        self.heartbeat = self.heartbeat.min(self.silence / 3);
        self.deadline_at = None;
        self.ping_at = Some(now + self.heartbeat);
        self.binds += 1;
        self.events.push_back(Event::Bound {
            again: self.binds > 1,
            register: self.register(),
            epoch: self.status.map_or(0, |s| s.epoch),
        });
    }

    fn on_bind_reply(&mut self, msg: Message, now: Instant) {
        match msg {
            Message::BindReply(BindReply::Accepted {
                ping_interval_secs, ..
            }) => {
                let every = Duration::from_secs(u64::from(ping_interval_secs).clamp(1, 60));
                if self.pend.values().any(|p| matches!(p, Pend::Status)) {
                    self.accepted = Some(every);
                } else {
                    self.bound(every, now);
                }
            }
            Message::BindReply(BindReply::Refused {
                code: ErrorCode::NotPrimary,
                text,
            }) => {
                // Not a configuration error: the other register serves.
                self.down(&format!("standby backup: {text}"), now);
            }
            Message::BindReply(BindReply::Refused { code, text }) => {
                let why = format!("{code}: {text}");
                self.outcome = Some(Err(BindFailure::Refused(why.clone())));
                self.events.push_back(Event::Refused { why: why.clone() });
                self.down(&format!("bind refused ({why})"), now);
            }
            other => self.down(&format!("unexpected bind answer {other}"), now),
        }
    }

    fn down(&mut self, why: &str, now: Instant) {
        let was_bound = self.phase == Phase::Bound;
        let mut last_words = std::mem::take(&mut self.out);
        if let Some(mut s) = self.session.take() {
            s.close(ErrorCode::Unavailable, "closing", &mut last_words);
        }
        if self.phase != Phase::Down {
            self.actions.push_back(Action::Close { last_words });
        }
        self.phase = Phase::Down;
        self.pend.clear();
        self.deadline_at = None;
        self.ping_at = None;
        if self.outcome.is_none() || was_bound {
            self.outcome = Some(Err(BindFailure::Unreachable(why.to_string())));
        }
        self.accepted = None;
        self.status = None;
        // Next: the other register, at once when it has not been tried
        // since the last bind; after a round over all of them, back off.
        let n = self.cfg.registers.len();
        self.current = (self.current + 1) % n;
        if was_bound {
            self.failures = 0;
        }
        self.failures += 1;
        let retry_in = if n > 1 && (was_bound || self.failures % n != 0) {
            Duration::ZERO
        } else {
            let wait = self.backoff;
            self.backoff = (self.backoff * 2).min(self.cfg.backoff_max);
            wait
        };
        self.retry_at = Some(now + retry_in);
        self.events.push_back(Event::Down {
            why: why.to_string(),
            was_bound,
            retry_in,
            next: self.register(),
        });
    }
}

#[cfg(test)]
#[path = "mlr_link_tests.rs"]
mod tests;
