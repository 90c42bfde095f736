//! The sans-IO MLRP codec for one TCP connection.
//!
//! A [`Session`] owns the receive buffer, the handshake, the per-direction
//! keys and sequence numbers, and the set of requests we are waiting on. It
//! never touches a socket: the caller feeds it the bytes it read
//! ([`Session::feed`], any split), pulls complete messages out
//! ([`Session::poll`] until `None`), and sends whatever the session appended
//! to the caller's output buffer.
//!
//! Lifecycle:
//! 1. `handshake(&mut out)` appends our Hello (both sides send one at once;
//!    `poll` sends it too if the caller forgot).
//! 2. The first frame from the peer must be its Hello; `poll` then yields
//!    [`Incoming::Established`] and keys are derived from both nonces.
//! 3. Then `request`/`reply` encode frames and `poll` yields
//!    [`Incoming::Request`] / [`Incoming::Reply`].
//!
//! Errors from `poll`: a *fatal* one (`MlrpError::is_fatal`) closes the
//! session: `poll` has appended a connection-level `Error` notice to `out`
//! (except when the peer closed), the caller should send it best-effort and
//! close the socket; later calls return `None` / `Err(Closed)`. A non-fatal
//! one (malformed or unknown request, unexpected reply) leaves the
//! connection usable; for a bad request `poll` has already appended the
//! `Error` reply.
//!
//! Epochs: every frame carries its sender's register epoch (docs/MLRP.md
//! section 2). The session stamps [`Session::set_epoch`]'s value on what it
//! sends and records the epoch of the peer's latest authenticated frame
//! ([`Session::peer_epoch`]); what an epoch means (follow it, step down) is
//! the owner's business.
//!
//! Time: the session has no clock. The daemon closes connections whose
//! handshake does not complete, or that stay silent, within its own timeouts
//! (and pings bound peers); the session only sees bytes.
//!
//! Memory: the receive buffer holds at most one partial frame (a `length`
//! over [`MAX_FRAME_LEN`] is refused as soon as its 8 bytes arrive; before
//! the peer's Hello, one over [`MAX_HELLO_FRAME_LEN`]) plus what the caller
//! fed since its last `poll`; call `poll` until `None` after each `feed`.
//! A caller that reads at most [`Session::read_limit`] bytes keeps an
//! unauthenticated peer's buffer within one Hello.

use core::fmt;
use std::collections::VecDeque;

use super::auth::{NetworkKey, Nonce, Tagger};
use super::codec::WireError;
use super::frame::{
    emit_v1_notice, flags, peek_length, Frame, Header, HEADER_LEN, MAC_LEN, MAX_FRAME_LEN, VERSION,
};
use super::message::{
    Body, ErrorCode, ErrorReply, Hello, Kind, Message, MessageType, Role, MAX_HELLO_FRAME_LEN,
};

/// Request ids: nonzero, chosen by the requester, echoed by the reply.
pub type RequestId = u32;

/// Most requests a session lets the caller have unanswered at once.
pub const MAX_OUTSTANDING: usize = 4096;

/// What `poll` hands out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Incoming {
    /// The peer's Hello was accepted; requests may flow both ways now.
    Established { peer: Hello },
    /// The peer asks; answer with exactly one [`Session::reply`] to `id`.
    Request { id: RequestId, msg: Message },
    /// The answer to our request `id`.
    Reply { id: RequestId, msg: Message },
}

impl fmt::Display for Incoming {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Incoming::Established { peer } => write!(
                f,
                "established with {} ({:?}, MLRP v{})",
                peer.role, peer.software, peer.version
            ),
            Incoming::Request { id, msg } => write!(f, "request {id}: {msg}"),
            Incoming::Reply { id, msg } => write!(f, "reply {id}: {msg}"),
        }
    }
}

/// Everything that can go wrong on a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MlrpError {
    // --- fatal: the connection must be closed ---
    /// Broken framing or header (bad magic, unsupported version, unknown
    /// flags, bad or oversized length, reply flag not matching the type).
    Frame(WireError),
    /// The HMAC did not verify: a wrong secret or network name, or an
    /// injected / altered frame, or a frame from another connection.
    BadMac,
    /// One side has a secret and the other not.
    AuthMismatch { local_secret: bool },
    /// Sequence number not the next expected one: replayed, reordered or
    /// dropped frame.
    Sequence { expected: u64, got: u64 },
    /// The first frame was not a Hello (message type given).
    HandshakeExpected(u16),
    /// The Hello body did not parse.
    BadHello(WireError),
    /// A second Hello, or our own nonce sent back to us.
    UnexpectedHello,
    /// A request with the reserved id 0.
    ZeroRequestId,
    /// The peer closed the connection with this error notice.
    PeerClosed(ErrorReply),
    /// The session was closed by an earlier fatal error or by `close`.
    Closed,

    // --- not fatal: the connection stays usable ---
    /// A request we could not parse (or of an unknown type); an `Error`
    /// reply with `BadRequest` has been appended to `out`.
    BadRequest { id: RequestId, error: WireError },
    /// A reply to our request `id` that we could not parse; `id` is no
    /// longer outstanding.
    BadReply { id: RequestId, error: WireError },
    /// A reply to an id we are not waiting for (ignored).
    UnexpectedReply { id: RequestId },

    // --- local misuse, nothing was sent ---
    /// `request`/`reply` before the handshake completed.
    NotEstablished,
    /// `request` with a reply message, or `reply` with a request.
    WrongKind(MessageType),
    /// The message cannot be encoded (too long strings/lists, frame > 64 KiB).
    Encode(WireError),
    /// [`MAX_OUTSTANDING`] requests are already unanswered.
    TooManyOutstanding,
}

impl MlrpError {
    /// Whether the connection must be closed.
    pub fn is_fatal(&self) -> bool {
        matches!(
            self,
            MlrpError::Frame(_)
                | MlrpError::BadMac
                | MlrpError::AuthMismatch { .. }
                | MlrpError::Sequence { .. }
                | MlrpError::HandshakeExpected(_)
                | MlrpError::BadHello(_)
                | MlrpError::UnexpectedHello
                | MlrpError::ZeroRequestId
                | MlrpError::PeerClosed(_)
                | MlrpError::Closed
        )
    }

    /// The error code a peer is told for this error.
    pub fn code(&self) -> ErrorCode {
        match self {
            MlrpError::Frame(WireError::UnsupportedVersion { .. }) => ErrorCode::VersionUnsupported,
            MlrpError::BadMac | MlrpError::AuthMismatch { .. } => ErrorCode::Unauthorized,
            MlrpError::BadRequest { .. } => ErrorCode::BadRequest,
            MlrpError::PeerClosed(e) => e.code,
            _ => ErrorCode::Protocol,
        }
    }
}

impl fmt::Display for MlrpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            MlrpError::Frame(e) => write!(f, "bad frame: {e}"),
            MlrpError::BadMac => f.write_str(
                "HMAC check failed (wrong secret or network name, or a forged/replayed frame)",
            ),
            MlrpError::AuthMismatch { local_secret: true } => {
                f.write_str("peer sends unauthenticated frames but this side has a secret")
            }
            MlrpError::AuthMismatch {
                local_secret: false,
            } => f.write_str("peer authenticates with a secret but this side has none"),
            MlrpError::Sequence { expected, got } => write!(
                f,
                "sequence {got} where {expected} was expected (replayed or reordered frame)"
            ),
            MlrpError::HandshakeExpected(t) => {
                write!(f, "expected Hello first, got message type {t:#06x}")
            }
            MlrpError::BadHello(e) => write!(f, "bad Hello: {e}"),
            MlrpError::UnexpectedHello => f.write_str("unexpected Hello (repeated or reflected)"),
            MlrpError::ZeroRequestId => f.write_str("request with reserved id 0"),
            MlrpError::PeerClosed(e) => {
                write!(f, "peer closed the connection: {}: {}", e.code, e.text)
            }
            MlrpError::Closed => f.write_str("session closed"),
            MlrpError::BadRequest { id, error } => write!(f, "bad request {id}: {error}"),
            MlrpError::BadReply { id, error } => write!(f, "bad reply to {id}: {error}"),
            MlrpError::UnexpectedReply { id } => write!(f, "reply to unknown request {id}"),
            MlrpError::NotEstablished => f.write_str("handshake not complete"),
            MlrpError::WrongKind(t) => write!(f, "{t:?} cannot be sent that way"),
            MlrpError::Encode(e) => write!(f, "cannot encode: {e}"),
            MlrpError::TooManyOutstanding => write!(f, "{MAX_OUTSTANDING} requests unanswered"),
        }
    }
}

impl std::error::Error for MlrpError {}

/// Which key tags an outgoing frame.
#[derive(Debug, Clone, Copy)]
enum Tag {
    /// Closing notices: never tagged.
    None,
    /// Our Hello: `K_hello` when the network has a secret.
    Hello,
    /// Everything else: our direction's session key, once established.
    Session,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    AwaitHello,
    Established,
    Closed,
}

/// One MLRP connection's codec. See the module docs.
pub struct Session {
    role: Role,
    key: Option<NetworkKey>,
    nonce: Nonce,
    state: State,
    hello_sent: bool,
    peer: Option<Hello>,
    tx_key: Option<Tagger>,
    rx_key: Option<Tagger>,
    tx_seq: u64,
    rx_seq: u64,
    next_id: RequestId,
    outstanding: VecDeque<RequestId>,
    rx: Vec<u8>,
    rx_pos: usize,
    label: String,
    /// Stamped on every frame we send.
    epoch: u32,
    /// In the peer's latest authenticated frame.
    peer_epoch: u32,
    /// The peer speaks frame version 1: our closing notice uses its framing.
    peer_v1: bool,
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Session")
            .field("label", &self.label)
            .field("role", &self.role)
            .field("auth", &self.key.is_some())
            .field("state", &self.state)
            .field("tx_seq", &self.tx_seq)
            .field("rx_seq", &self.rx_seq)
            .finish()
    }
}

impl Session {
    /// A session for a new connection. `key` is `Some` when the network has
    /// a secret. `nonce` must be fresh per connection
    /// ([`super::random_nonce`]).
    pub fn new(role: Role, key: Option<&NetworkKey>, nonce: Nonce) -> Session {
        Session {
            role,
            key: key.cloned(),
            nonce,
            state: State::AwaitHello,
            hello_sent: false,
            peer: None,
            tx_key: None,
            rx_key: None,
            tx_seq: 0,
            rx_seq: 0,
            next_id: 1,
            outstanding: VecDeque::new(),
            rx: Vec::new(),
            rx_pos: 0,
            label: String::new(),
            epoch: 0,
            peer_epoch: 0,
            peer_v1: false,
        }
    }

    /// A name for log lines (typically the peer's address).
    pub fn set_label(&mut self, label: impl Into<String>) {
        self.label = label.into();
    }

    pub fn role(&self) -> Role {
        self.role
    }
    /// The epoch stamped on every frame sent from now on: a register's own
    /// epoch, the highest a CN has seen; 0 (the default) for senders that
    /// follow none (tools, CN to CN). Set it before [`Session::handshake`]
    /// for the Hello to carry it.
    pub fn set_epoch(&mut self, epoch: u32) {
        self.epoch = epoch;
    }
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    /// The epoch in the peer's latest authenticated frame (its Hello
    /// first; 0 before it). Closing notices, which are not authenticated,
    /// do not count.
    pub fn peer_epoch(&self) -> u32 {
        self.peer_epoch
    }
    /// Whether frames are authenticated (the network has a secret).
    pub fn auth_enabled(&self) -> bool {
        self.key.is_some()
    }
    pub fn is_established(&self) -> bool {
        self.state == State::Established
    }
    pub fn is_closed(&self) -> bool {
        self.state == State::Closed
    }
    /// The peer's Hello, once established.
    pub fn peer(&self) -> Option<&Hello> {
        self.peer.as_ref()
    }
    /// Requests we sent that have no reply yet.
    pub fn outstanding(&self) -> usize {
        self.outstanding.len()
    }
    /// Bytes fed but not yet consumed by `poll` (a partial frame).
    pub fn buffered(&self) -> usize {
        self.rx.len() - self.rx_pos
    }

    /// Append our Hello to `out`. Call once, first; later calls do nothing.
    pub fn handshake(&mut self, out: &mut Vec<u8>) {
        if self.hello_sent || self.state == State::Closed {
            return;
        }
        self.hello_sent = true;
        let hello = Message::Hello(Hello {
            version: VERSION,
            role: self.role,
            nonce: self.nonce,
            software: format!("tmip-rs {}", crate::VERSION),
        });
        // Cannot fail: the Hello is small and its strings are bounded.
        let _ = self.encode(0, 0, &hello, Tag::Hello, out);
    }

    /// How many bytes the caller should read and feed at most now. Before
    /// the peer's Hello is accepted it is what the largest Hello still
    /// needs, so an unauthenticated peer never makes the session hold more
    /// than [`MAX_HELLO_FRAME_LEN`] bytes; afterwards it is unbounded (the
    /// caller's own read budget applies).
    pub fn read_limit(&self) -> usize {
        match self.state {
            State::AwaitHello => MAX_HELLO_FRAME_LEN.saturating_sub(self.buffered()),
            State::Established => usize::MAX,
            State::Closed => 0,
        }
    }

    /// Add bytes read from the socket.
    pub fn feed(&mut self, bytes: &[u8]) {
        if self.state == State::Closed {
            return;
        }
        if self.rx_pos == self.rx.len() {
            self.rx.clear();
            self.rx_pos = 0;
        } else if self.rx_pos > 0 {
            self.rx.drain(..self.rx_pos);
            self.rx_pos = 0;
        }
        self.rx.extend_from_slice(bytes);
    }

    /// Next complete message, a non-fatal error, or a fatal error; `None`
    /// when more bytes are needed (or the session is closed). May append
    /// frames to `out` (our Hello, error replies, a closing notice).
    pub fn poll(&mut self, out: &mut Vec<u8>) -> Option<Result<Incoming, MlrpError>> {
        loop {
            if self.state == State::Closed {
                return None;
            }
            let avail = &self.rx[self.rx_pos..];
            // Refuse garbage and oversized lengths as early as the bytes
            // allow, before buffering any body. Until the peer's Hello is
            // accepted, nothing longer than a Hello is valid.
            if let Err(e) = precheck(avail, self.state == State::AwaitHello) {
                self.peer_v1 = matches!(e, WireError::UnsupportedVersion { got: 1, .. });
                return Some(Err(self.fail(MlrpError::Frame(e), out)));
            }
            let len = peek_length(avail)? as usize;
            if avail.len() < len {
                return None;
            }
            // Take the buffer out so the frame can borrow it while `self` is
            // updated; put back afterwards (no allocation).
            let rx = core::mem::take(&mut self.rx);
            let start = self.rx_pos;
            self.rx_pos += len;
            let r = self.process(&rx[start..start + len], out);
            self.rx = rx;
            if self.state == State::Closed {
                self.release_buffer();
            }
            if let Some(r) = r {
                return Some(r);
            }
        }
    }

    /// Encode a request, append it to `out`, and return its id.
    pub fn request(&mut self, msg: &Message, out: &mut Vec<u8>) -> Result<RequestId, MlrpError> {
        self.check_can_send()?;
        if msg.kind() != Kind::Request {
            return Err(MlrpError::WrongKind(msg.msg_type()));
        }
        if self.outstanding.len() >= MAX_OUTSTANDING {
            return Err(MlrpError::TooManyOutstanding);
        }
        let id = self.next_id;
        self.encode(0, id, msg, Tag::Session, out)?;
        self.next_id = self.next_id.wrapping_add(1).max(1);
        self.outstanding.push_back(id);
        Ok(id)
    }

    /// Encode the reply to the peer's request `id` and append it to `out`.
    pub fn reply(
        &mut self,
        id: RequestId,
        msg: &Message,
        out: &mut Vec<u8>,
    ) -> Result<(), MlrpError> {
        self.check_can_send()?;
        if msg.kind() != Kind::Reply {
            return Err(MlrpError::WrongKind(msg.msg_type()));
        }
        self.encode(flags::REPLY, id, msg, Tag::Session, out)
    }

    /// Tell the peer why we close (a connection-level `Error` notice) and
    /// close the session. Use on shutdown, idle timeout, refused binds.
    pub fn close(&mut self, code: ErrorCode, text: &str, out: &mut Vec<u8>) {
        if self.state != State::Closed {
            self.notice(code, text, out);
            self.state = State::Closed;
        }
    }

    fn check_can_send(&self) -> Result<(), MlrpError> {
        match self.state {
            State::Established => Ok(()),
            State::AwaitHello => Err(MlrpError::NotEstablished),
            State::Closed => Err(MlrpError::Closed),
        }
    }

    fn encode(
        &mut self,
        flag_bits: u8,
        id: RequestId,
        msg: &Message,
        tag: Tag,
        out: &mut Vec<u8>,
    ) -> Result<(), MlrpError> {
        let tagger = match tag {
            Tag::None => None,
            Tag::Hello => self.key.as_ref().map(NetworkKey::hello),
            Tag::Session => self.tx_key.as_ref(),
        };
        msg.validate().map_err(MlrpError::Encode)?;
        let body_len = msg.buffer_len();
        let mac_len = if tagger.is_some() { MAC_LEN } else { 0 };
        let total = HEADER_LEN + body_len + mac_len;
        if total > MAX_FRAME_LEN {
            return Err(MlrpError::Encode(WireError::FrameTooLarge {
                len: total as u32,
                max: MAX_FRAME_LEN,
            }));
        }
        let start = out.len();
        out.resize(start + total, 0);
        let frame_buf = &mut out[start..];
        let mut f = Frame::new_unchecked(&mut *frame_buf);
        Header {
            version: VERSION,
            flags: flag_bits | if tagger.is_some() { flags::MAC } else { 0 },
            length: total as u32,
            sequence: self.tx_seq,
            request_id: id,
            msg_type: msg.msg_type() as u16,
            epoch: self.epoch,
        }
        .emit(&mut f);
        msg.emit(f.body_mut());
        if let Some(t) = tagger {
            let (covered, mac) = frame_buf.split_at_mut(HEADER_LEN + body_len);
            mac.copy_from_slice(&t.tag(covered));
        }
        log::debug!(target: "mlrp", "{} tx #{} epoch {} {} {}: {}",
            self.label, self.tx_seq, self.epoch,
            if flag_bits & flags::REPLY != 0 { "reply" } else { "request" }, id, msg);
        self.tx_seq += 1;
        Ok(())
    }

    /// A connection-level error notice: request id 0, never authenticated
    /// (the peer may not share our keys), advisory only.
    fn notice(&mut self, code: ErrorCode, text: &str, out: &mut Vec<u8>) {
        let msg = Message::Error(ErrorReply::new(code, text));
        if self.peer_v1 {
            // Only a peer of an older version: it reads this one and logs
            // why it was refused instead of refusing our framing in turn.
            let mut body = vec![0u8; msg.buffer_len()];
            msg.emit(&mut body);
            emit_v1_notice(self.tx_seq, msg.msg_type() as u16, &body, out);
            self.tx_seq += 1;
            return;
        }
        let _ = self.encode(flags::REPLY, 0, &msg, Tag::None, out);
    }

    /// Close on a fatal error, telling the peer why.
    fn fail(&mut self, e: MlrpError, out: &mut Vec<u8>) -> MlrpError {
        log::debug!(target: "mlrp", "{} fatal: {}", self.label, e);
        if !matches!(e, MlrpError::PeerClosed(_) | MlrpError::Closed) {
            let text = e.to_string();
            self.notice(e.code(), &text, out);
        }
        self.state = State::Closed;
        self.release_buffer();
        e
    }

    /// A closed session keeps no input.
    fn release_buffer(&mut self) {
        self.rx = Vec::new();
        self.rx_pos = 0;
    }

    fn process(&mut self, buf: &[u8], out: &mut Vec<u8>) -> Option<Result<Incoming, MlrpError>> {
        let f = match Frame::new_checked(buf) {
            Ok(f) => f,
            Err(e) => return Some(Err(self.fail(MlrpError::Frame(e), out))),
        };
        let h = match Header::parse(&f) {
            Ok(h) => h,
            Err(e) => return Some(Err(self.fail(MlrpError::Frame(e), out))),
        };
        // The peer's closing notice: advisory, accepted in any state.
        if h.msg_type == MessageType::Error as u16 && h.request_id == 0 {
            let e = match ErrorReply::parse(f.body()) {
                Ok(reply) => MlrpError::PeerClosed(reply),
                Err(e) => MlrpError::Frame(e),
            };
            return Some(Err(self.fail(e, out)));
        }
        match self.state {
            State::Closed => None,
            State::AwaitHello => Some(self.process_hello(&f, &h, out)),
            State::Established => self.process_established(&f, &h, out),
        }
    }

    fn process_hello(
        &mut self,
        f: &Frame<&[u8]>,
        h: &Header,
        out: &mut Vec<u8>,
    ) -> Result<Incoming, MlrpError> {
        if h.msg_type != MessageType::Hello as u16 {
            return Err(self.fail(MlrpError::HandshakeExpected(h.msg_type), out));
        }
        match (&self.key, f.has_mac()) {
            (Some(k), true) => {
                if !k.hello().verify(f.authenticated(), f.mac()) {
                    return Err(self.fail(MlrpError::BadMac, out));
                }
            }
            (None, false) => {}
            (k, _) => {
                let local_secret = k.is_some();
                return Err(self.fail(MlrpError::AuthMismatch { local_secret }, out));
            }
        }
        if h.sequence != 0 {
            return Err(self.fail(
                MlrpError::Sequence {
                    expected: 0,
                    got: h.sequence,
                },
                out,
            ));
        }
        if f.is_reply() || h.request_id != 0 {
            return Err(self.fail(
                MlrpError::BadHello(WireError::Malformed(
                    "Hello must be request id 0, no reply flag",
                )),
                out,
            ));
        }
        let hello = match Hello::parse(f.body()) {
            Ok(hello) if hello.version == 0 => {
                return Err(self.fail(MlrpError::BadHello(WireError::Malformed("version 0")), out))
            }
            Ok(hello) => hello,
            Err(e) => return Err(self.fail(MlrpError::BadHello(e), out)),
        };
        if hello.nonce == self.nonce {
            return Err(self.fail(MlrpError::UnexpectedHello, out));
        }
        if let Some(k) = &self.key {
            self.tx_key = Some(k.session(&self.nonce, &hello.nonce));
            self.rx_key = Some(k.session(&hello.nonce, &self.nonce));
        }
        self.peer_epoch = h.epoch;
        log::debug!(target: "mlrp", "{} rx #0 epoch {}: {}", self.label, h.epoch, Message::Hello(hello.clone()));
        self.handshake(out);
        self.rx_seq = 1;
        self.state = State::Established;
        self.peer = Some(hello.clone());
        Ok(Incoming::Established { peer: hello })
    }

    fn process_established(
        &mut self,
        f: &Frame<&[u8]>,
        h: &Header,
        out: &mut Vec<u8>,
    ) -> Option<Result<Incoming, MlrpError>> {
        // Authenticity first, so a forged frame is reported as such rather
        // than as a sequence error.
        match (&self.rx_key, f.has_mac()) {
            (Some(k), true) => {
                if !k.verify(f.authenticated(), f.mac()) {
                    return Some(Err(self.fail(MlrpError::BadMac, out)));
                }
            }
            (None, false) => {}
            (k, _) => {
                let local_secret = k.is_some();
                return Some(Err(self.fail(MlrpError::AuthMismatch { local_secret }, out)));
            }
        }
        if h.sequence != self.rx_seq {
            let e = MlrpError::Sequence {
                expected: self.rx_seq,
                got: h.sequence,
            };
            return Some(Err(self.fail(e, out)));
        }
        self.rx_seq += 1;
        self.peer_epoch = h.epoch;
        let id = h.request_id;
        let is_reply = f.is_reply();
        let Some(ty) = MessageType::from_u16(h.msg_type) else {
            let error = WireError::UnknownType(h.msg_type);
            return Some(Err(if is_reply {
                self.forget(id);
                MlrpError::BadReply { id, error }
            } else {
                self.bad_request(id, error, out)
            }));
        };
        match (ty.kind(), is_reply) {
            (Kind::Handshake, _) => return Some(Err(self.fail(MlrpError::UnexpectedHello, out))),
            (Kind::Request, false) | (Kind::Reply, true) => {}
            _ => {
                let e = WireError::Malformed("reply flag does not match the message type");
                return Some(Err(self.fail(MlrpError::Frame(e), out)));
            }
        }
        if is_reply {
            if !self.forget(id) {
                return Some(Err(MlrpError::UnexpectedReply { id }));
            }
            return Some(match Message::parse(h.msg_type, f.body()) {
                Ok(msg) => {
                    log::debug!(target: "mlrp", "{} rx #{} epoch {} reply {}: {}", self.label, h.sequence, h.epoch, id, msg);
                    Ok(Incoming::Reply { id, msg })
                }
                Err(error) => Err(MlrpError::BadReply { id, error }),
            });
        }
        if id == 0 {
            return Some(Err(self.fail(MlrpError::ZeroRequestId, out)));
        }
        Some(match Message::parse(h.msg_type, f.body()) {
            Ok(msg) => {
                log::debug!(target: "mlrp", "{} rx #{} epoch {} request {}: {}", self.label, h.sequence, h.epoch, id, msg);
                Ok(Incoming::Request { id, msg })
            }
            Err(error) => Err(self.bad_request(id, error, out)),
        })
    }

    /// Answer an unparseable request with `BadRequest` and report it.
    fn bad_request(&mut self, id: RequestId, error: WireError, out: &mut Vec<u8>) -> MlrpError {
        if id != 0 {
            let text = format!("bad request: {error}");
            let _ = self.reply(id, &Message::error(ErrorCode::BadRequest, text), out);
        }
        MlrpError::BadRequest { id, error }
    }

    /// Drop `id` from the outstanding set; false if it was not there.
    fn forget(&mut self, id: RequestId) -> bool {
        // Replies nearly always come in order: the front is the usual hit.
        if self.outstanding.front() == Some(&id) {
            self.outstanding.pop_front();
            return true;
        }
        match self.outstanding.iter().position(|&x| x == id) {
            Some(i) => {
                self.outstanding.remove(i);
                true
            }
            None => false,
        }
    }
}

/// Header checks possible on a partial frame, field by field as bytes arrive.
/// `pre_hello`: the peer's Hello is still awaited, so the frame may be no
/// longer than the largest Hello.
fn precheck(avail: &[u8], pre_hello: bool) -> Result<(), WireError> {
    use super::frame::MAGIC;
    if let Some(m) = avail.get(..2) {
        if m != MAGIC {
            return Err(WireError::BadMagic);
        }
    } else if let Some(&b) = avail.first() {
        if b != MAGIC[0] {
            return Err(WireError::BadMagic);
        }
    }
    if let Some(&v) = avail.get(2) {
        if v != VERSION {
            return Err(WireError::UnsupportedVersion {
                got: v,
                spoken: VERSION,
            });
        }
    }
    if let Some(&fl) = avail.get(3) {
        if fl & !flags::KNOWN != 0 {
            return Err(WireError::UnknownFlags(fl));
        }
    }
    if let Some(len) = peek_length(avail) {
        let mac = match avail.get(3) {
            Some(&fl) if fl & flags::MAC != 0 => MAC_LEN,
            _ => 0,
        };
        if len as usize > MAX_FRAME_LEN {
            return Err(WireError::FrameTooLarge {
                len,
                max: MAX_FRAME_LEN,
            });
        }
        if pre_hello && len as usize > MAX_HELLO_FRAME_LEN {
            return Err(WireError::HelloTooLarge {
                len,
                max: MAX_HELLO_FRAME_LEN,
            });
        }
        if (len as usize) < HEADER_LEN + mac {
            return Err(WireError::BadLength(len));
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
