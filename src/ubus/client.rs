//! Non-blocking ubus client for the daemon's poll loop (openwrt.md §4.3).
//!
//! A transport: it knows ubus, not tmipd (the `tmip` object and what
//! hostapd's notifications mean live in `cn::ubus_object` and `hostap`).
//! - connect to `/var/run/ubus/ubus.sock` (ubusd greets with HELLO carrying
//!   our client id);
//! - publish objects ([`ObjectSpec`]) with ADD_OBJECT + SIGNATURE and hand
//!   INVOKEs on them over as [`UbusEvent::Call`]; answer with
//!   [`UbusClient::reply`] (DATA then STATUS, echoing `seq` and `peer`);
//! - subscribe to an object (e.g. `hostapd.<ifname>`): an anonymous object
//!   (ADD_OBJECT with no attributes), LOOKUP of the target, SUBSCRIBE
//!   {OBJID: ours, TARGET: theirs}; its notifications then arrive as
//!   INVOKEs on our anonymous object and become raw [`UbusEvent::Notify`];
//! - plain LOOKUP and INVOKE for calls to other objects, and events
//!   ([`UbusClient::send_event`]).
//!
//! The client owns the socket and buffers but never blocks: register
//! [`UbusClient::fd`] for reading (and writing while
//! [`UbusClient::wants_write`]), call [`UbusClient::on_readable`] /
//! [`UbusClient::on_writable`], then take [`UbusEvent`]s with
//! [`UbusClient::poll_event`]. Call [`UbusClient::tick`] from a timer
//! (every second or so): it connects, reconnects after ubusd restarts (and
//! then re-adds objects and subscriptions), and retries subscriptions whose
//! target was missing. The fd changes on reconnect: after `tick` or
//! `on_readable`, re-register if `fd()` differs from what you registered.

use super::blob::{BlobError, Value};
use super::msg::{attr, frame_len, status, MsgBuilder, MsgError, MsgType, UbusMsg};
use core::fmt;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// ubusd's socket since OpenWrt 21.02.
pub const DEFAULT_SOCKET: &str = "/var/run/ubus/ubus.sock";
/// Drop the connection rather than buffer more than this for a stuck ubusd.
const MAX_TX: usize = 4 * 1024 * 1024;
/// Reconnect back-off bounds.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// A request ubusd has not completed by then is given up (libubus's
/// synchronous calls use similar timeouts); its reply, if it ever comes, is
/// ignored.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug)]
pub enum UbusError {
    /// The socket could not be reached or broke.
    Io(&'static str, io::Error),
    /// A frame from ubusd was malformed (the connection is dropped: the
    /// stream can no longer be delimited).
    Protocol(MsgError),
    /// A message we built was too large.
    Encode(MsgError),
    /// Not connected to ubusd.
    NotConnected,
}

impl fmt::Display for UbusError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            UbusError::Io(what, e) => write!(f, "ubus: {what}: {e}"),
            UbusError::Protocol(e) => write!(f, "ubus: from ubusd: {e}"),
            UbusError::Encode(e) => write!(f, "ubus: cannot encode: {e}"),
            UbusError::NotConnected => write!(f, "ubus: not connected"),
        }
    }
}

impl std::error::Error for UbusError {}

impl From<BlobError> for UbusError {
    fn from(e: BlobError) -> Self {
        UbusError::Encode(MsgError::Blob(e))
    }
}

/// ubusd's event object (UBUS_SYSTEM_OBJECT_EVENT): `send`, `register`.
pub const EVENT_OBJECT: u32 = 1;

/// An object to publish: its path and, per method, its argument names and
/// blobmsg types (see [`blobmsg_type`](super::blob::blobmsg_type)).
#[derive(Debug, Clone, PartialEq)]
pub struct ObjectSpec {
    pub path: String,
    pub methods: Vec<(String, Vec<(String, u8)>)>,
}

impl ObjectSpec {
    /// The ADD_OBJECT request publishing this object (`peer` 0).
    pub fn add_object_frame(&self, seq: u16) -> Result<Vec<u8>, MsgError> {
        MsgBuilder::new(MsgType::AddObject, seq, 0)
            .string(attr::OBJPATH, &self.path)
            .fields(attr::SIGNATURE, &self.signature())
            .finish()
    }

    /// The SIGNATURE payload: one blobmsg TABLE per method, named after it,
    /// holding INT32 `argname -> type` entries (libubus ubus_push_method_data).
    pub fn signature(&self) -> Value {
        Value::Table(
            self.methods
                .iter()
                .map(|(m, args)| {
                    let t = args
                        .iter()
                        .map(|(a, ty)| (a.clone(), Value::Int32(i32::from(*ty))))
                        .collect();
                    (m.clone(), Value::Table(t))
                })
                .collect(),
        )
    }
}

/// Identifies a request made with [`UbusClient::invoke`] or [`UbusClient::lookup`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct RequestId(pub u64);

/// A method call on one of our objects; answer it with [`UbusClient::reply`].
#[derive(Debug, Clone, PartialEq)]
pub struct IncomingCall {
    /// Our object's path (`tmip`) and id.
    pub path: String,
    pub object: u32,
    pub method: String,
    /// The arguments (a table; empty when none were sent).
    pub args: Value,
    /// The caller's ACL identity, when ubusd supplied it.
    pub user: Option<String>,
    seq: u16,
    peer: u32,
    no_reply: bool,
}

/// What happened on the bus.
#[derive(Debug, Clone, PartialEq)]
pub enum UbusEvent {
    /// ubusd said HELLO: we are client `client_id`.
    Connected { client_id: u32 },
    /// The connection is gone; `tick` reconnects and re-registers.
    Disconnected,
    /// One of our objects is published under `id`.
    ObjectAdded { path: String, id: u32 },
    /// Publishing failed (e.g. the path is taken): ubus status code.
    ObjectFailed { path: String, status: i32 },
    /// Subscribed to `path` (object id `target`).
    Subscribed { path: String, target: u32 },
    /// The subscription to `path` ended (hostapd went away); `tick` retries.
    Unsubscribed { path: String },
    /// A method call on one of our objects.
    Call(IncomingCall),
    /// A notification from the object subscribed to as `path` (answered
    /// already): its type (`method`) and data (`args`, a table).
    Notify {
        path: String,
        method: String,
        args: Value,
    },
    /// The reply to [`UbusClient::invoke`]: every DATA, then the status.
    Reply {
        req: RequestId,
        status: i32,
        data: Vec<Value>,
    },
    /// The reply to [`UbusClient::lookup`]: (path, id) per object found.
    Lookup {
        req: RequestId,
        status: i32,
        objects: Vec<(String, u32)>,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubPhase {
    /// Waiting for the next tick to (re)try.
    Idle,
    /// A step (add anonymous object / lookup / subscribe) is in flight.
    Busy,
    Subscribed,
}

#[derive(Debug)]
struct Subscription {
    path: String,
    /// Our anonymous object's id.
    anon: Option<u32>,
    target: Option<u32>,
    phase: SubPhase,
}

#[derive(Debug)]
struct Published {
    spec: ObjectSpec,
    id: Option<u32>,
}

#[derive(Debug)]
enum Pending {
    AddObject(usize),
    AddAnon(usize),
    LookupTarget(usize),
    Subscribe(usize),
    Invoke(RequestId, Vec<Value>),
    Lookup(RequestId, Vec<(String, u32)>),
}

#[derive(Debug)]
struct Outstanding {
    seq: u16,
    peer: u32,
    what: Pending,
    sent: Instant,
}

/// SUBSCRIBE {OBJID: our anonymous object, TARGET: the publisher} (`peer` 0).
pub fn subscribe_frame(seq: u16, anon: u32, target: u32) -> Result<Vec<u8>, MsgError> {
    MsgBuilder::new(MsgType::Subscribe, seq, 0)
        .u32(attr::OBJID, anon)
        .u32(attr::TARGET, target)
        .finish()
}

/// The ubus connection. See the module docs for how to drive it.
pub struct UbusClient {
    path: PathBuf,
    stream: Option<UnixStream>,
    client_id: Option<u32>,
    rx: Vec<u8>,
    tx: Vec<u8>,
    seq: u16,
    next_req: u64,
    outstanding: Vec<Outstanding>,
    objects: Vec<Published>,
    subs: Vec<Subscription>,
    events: VecDeque<UbusEvent>,
    retry_at: Option<Instant>,
    backoff: Duration,
}

impl UbusClient {
    /// A client for ubusd at `path`; nothing happens until [`tick`](UbusClient::tick).
    pub fn new(path: impl Into<PathBuf>) -> UbusClient {
        UbusClient {
            path: path.into(),
            stream: None,
            client_id: None,
            rx: Vec::new(),
            tx: Vec::new(),
            seq: 0,
            next_req: 1,
            outstanding: Vec::new(),
            objects: Vec::new(),
            subs: Vec::new(),
            events: VecDeque::new(),
            retry_at: None,
            backoff: RETRY_MIN,
        }
    }

    pub fn socket_path(&self) -> &Path {
        &self.path
    }

    /// The socket to poll, while connected.
    pub fn fd(&self) -> Option<RawFd> {
        self.stream.as_ref().map(|s| s.as_raw_fd())
    }

    /// Connected and greeted by ubusd.
    pub fn is_connected(&self) -> bool {
        self.client_id.is_some()
    }

    pub fn client_id(&self) -> Option<u32> {
        self.client_id
    }

    /// Bytes are waiting to be written: poll for POLLOUT too.
    pub fn wants_write(&self) -> bool {
        !self.tx.is_empty()
    }

    /// Publish `spec` now (if connected) and after every reconnect.
    pub fn add_object(&mut self, spec: ObjectSpec) {
        self.objects.push(Published { spec, id: None });
        if self.is_connected() {
            let i = self.objects.len() - 1;
            self.send_add_object(i);
        }
    }

    /// Our object id for `path`, once published.
    pub fn object_id(&self, path: &str) -> Option<u32> {
        self.objects
            .iter()
            .find(|o| o.spec.path == path)
            .and_then(|o| o.id)
    }

    /// Subscribe to `path` (e.g. `hostapd.wlan0`) now and after every
    /// reconnect; retried on `tick` while the object does not exist.
    pub fn subscribe(&mut self, path: &str) {
        self.subs.push(Subscription {
            path: path.to_string(),
            anon: None,
            target: None,
            phase: SubPhase::Idle,
        });
        if self.is_connected() {
            let i = self.subs.len() - 1;
            self.advance_sub(i);
        }
    }

    /// Subscribed to `path` right now.
    pub fn is_subscribed(&self, path: &str) -> bool {
        self.subs
            .iter()
            .any(|s| s.path == path && s.phase == SubPhase::Subscribed)
    }

    /// The next event, if any.
    pub fn poll_event(&mut self) -> Option<UbusEvent> {
        self.events.pop_front()
    }

    /// Periodic upkeep: connect/reconnect (with back-off), retry idle
    /// subscriptions.
    pub fn tick(&mut self, now: Instant) {
        if self.stream.is_none() {
            if self.retry_at.is_some_and(|t| now < t) {
                return;
            }
            match UnixStream::connect(&self.path).and_then(|s| {
                s.set_nonblocking(true)?;
                Ok(s)
            }) {
                Ok(s) => {
                    log::debug!(target: "ubus", "connected to {}", self.path.display());
                    self.stream = Some(s);
                    self.backoff = RETRY_MIN;
                    self.retry_at = None;
                }
                Err(e) => {
                    log::trace!(target: "ubus", "{}: {e}", self.path.display());
                    self.retry_at = Some(now + self.backoff);
                    self.backoff = (self.backoff * 2).min(RETRY_MAX);
                }
            }
            return;
        }
        if self.is_connected() {
            self.expire(now);
            for i in 0..self.subs.len() {
                if self.subs[i].phase == SubPhase::Idle {
                    self.advance_sub(i);
                }
            }
        }
    }

    /// Give up requests ubusd has not completed within [`REQUEST_TIMEOUT`].
    fn expire(&mut self, now: Instant) {
        let mut i = 0;
        while i < self.outstanding.len() {
            if now.saturating_duration_since(self.outstanding[i].sent) < REQUEST_TIMEOUT {
                i += 1;
                continue;
            }
            let o = self.outstanding.swap_remove(i);
            log::warn!(target: "ubus", "request seq {} timed out", o.seq);
            match o.what {
                Pending::Invoke(req, data) => self.events.push_back(UbusEvent::Reply {
                    req,
                    status: status::TIMEOUT,
                    data,
                }),
                Pending::Lookup(req, objects) => self.events.push_back(UbusEvent::Lookup {
                    req,
                    status: status::TIMEOUT,
                    objects,
                }),
                Pending::AddObject(k) => {
                    if let Some(p) = self.objects.get(k) {
                        let path = p.spec.path.clone();
                        self.events.push_back(UbusEvent::ObjectFailed {
                            path,
                            status: status::TIMEOUT,
                        });
                    }
                }
                Pending::AddAnon(k) | Pending::LookupTarget(k) | Pending::Subscribe(k) => {
                    if let Some(s) = self.subs.get_mut(k) {
                        s.phase = SubPhase::Idle;
                    }
                }
            }
        }
    }

    /// Read and handle everything waiting (never blocks).
    pub fn on_readable(&mut self) {
        let mut buf = [0u8; 16 * 1024];
        loop {
            let Some(s) = self.stream.as_mut() else {
                return;
            };
            match s.read(&mut buf) {
                Ok(0) => {
                    log::warn!(target: "ubus", "ubusd closed the connection");
                    self.disconnect();
                    return;
                }
                Ok(n) => self.rx.extend_from_slice(buf.get(..n).unwrap_or(&[])),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(target: "ubus", "read: {e}");
                    self.disconnect();
                    return;
                }
            }
        }
        self.process_rx();
    }

    /// Write what the socket takes of the queued bytes.
    pub fn on_writable(&mut self) {
        let Some(s) = self.stream.as_mut() else {
            return;
        };
        while !self.tx.is_empty() {
            match s.write(&self.tx) {
                Ok(0) => break,
                Ok(n) => {
                    self.tx.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    log::warn!(target: "ubus", "write: {e}");
                    self.disconnect();
                    return;
                }
            }
        }
    }

    /// Call `method` on object `objid` with `args` (a table).
    pub fn invoke(
        &mut self,
        objid: u32,
        method: &str,
        args: &Value,
    ) -> Result<RequestId, UbusError> {
        if !self.is_connected() {
            return Err(UbusError::NotConnected);
        }
        let req = self.new_req();
        let seq = self.next_seq();
        let frame = MsgBuilder::new(MsgType::Invoke, seq, objid)
            .u32(attr::OBJID, objid)
            .string(attr::METHOD, method)
            .fields(attr::DATA, args)
            .finish()
            .map_err(UbusError::Encode)?;
        self.outstanding.push(Outstanding {
            seq,
            peer: objid,
            what: Pending::Invoke(req, Vec::new()),
            sent: Instant::now(),
        });
        self.send(frame);
        Ok(req)
    }

    /// Send event `id` with `data` (a table), as libubus
    /// `ubus_send_event` does: an INVOKE of `send` on ubusd's event object
    /// (id 1) with `{"id": id, "data": data}`. ubusd passes it to every
    /// listener whose pattern matches `id` (exactly, or a prefix when the
    /// pattern ends in `*`) as an INVOKE of method `id` with `data`; the
    /// STATUS comes back as a [`UbusEvent::Reply`].
    pub fn send_event(&mut self, id: &str, data: Value) -> Result<RequestId, UbusError> {
        let args = Value::Table(vec![
            ("id".into(), Value::String(id.into())),
            ("data".into(), data),
        ]);
        self.invoke(EVENT_OBJECT, "send", &args)
    }

    /// Look up objects by path (a trailing `*` matches a prefix).
    pub fn lookup(&mut self, path: &str) -> Result<RequestId, UbusError> {
        if !self.is_connected() {
            return Err(UbusError::NotConnected);
        }
        let req = self.new_req();
        let seq = self.next_seq();
        let frame = MsgBuilder::new(MsgType::Lookup, seq, 0)
            .string(attr::OBJPATH, path)
            .finish()
            .map_err(UbusError::Encode)?;
        self.outstanding.push(Outstanding {
            seq,
            peer: 0,
            what: Pending::Lookup(req, Vec::new()),
            sent: Instant::now(),
        });
        self.send(frame);
        Ok(req)
    }

    /// Answer a call: a DATA with `data` (if any), then the STATUS, both
    /// echoing the call's `seq` and `peer` (libubus ubus_send_reply and
    /// ubus_complete_deferred_request). Nothing is sent for NO_REPLY calls.
    pub fn reply(
        &mut self,
        call: &IncomingCall,
        code: i32,
        data: Option<&Value>,
    ) -> Result<(), UbusError> {
        if call.no_reply {
            return Ok(());
        }
        if self.stream.is_none() {
            return Err(UbusError::NotConnected);
        }
        if let Some(d) = data {
            let frame = MsgBuilder::new(MsgType::Data, call.seq, call.peer)
                .u32(attr::OBJID, call.object)
                .fields(attr::DATA, d)
                .finish();
            match frame {
                Ok(f) => self.send(f),
                Err(e) => {
                    // Too large: tell the caller instead of sending nothing.
                    self.send_status(call.seq, call.peer, call.object, status::UNKNOWN_ERROR);
                    return Err(UbusError::Encode(e));
                }
            }
        }
        self.send_status(call.seq, call.peer, call.object, code);
        Ok(())
    }

    // ---- internals ----

    fn new_req(&mut self) -> RequestId {
        let r = RequestId(self.next_req);
        self.next_req += 1;
        r
    }

    fn next_seq(&mut self) -> u16 {
        self.seq = self.seq.wrapping_add(1);
        self.seq
    }

    fn send(&mut self, frame: Vec<u8>) {
        if self.stream.is_none() {
            return;
        }
        if self.tx.len() + frame.len() > MAX_TX {
            log::warn!(target: "ubus", "ubusd is not reading; dropping the connection");
            self.disconnect();
            return;
        }
        self.tx.extend_from_slice(&frame);
        self.on_writable();
    }

    fn send_status(&mut self, seq: u16, peer: u32, object: u32, code: i32) {
        match MsgBuilder::new(MsgType::Status, seq, peer)
            .i32(attr::STATUS, code)
            .u32(attr::OBJID, object)
            .finish()
        {
            Ok(f) => self.send(f),
            Err(e) => log::error!(target: "ubus", "status reply: {e}"),
        }
    }

    fn disconnect(&mut self) {
        let was = self.stream.take().is_some();
        self.client_id = None;
        self.rx.clear();
        self.tx.clear();
        for o in self.outstanding.drain(..) {
            match o.what {
                Pending::Invoke(req, data) => self.events.push_back(UbusEvent::Reply {
                    req,
                    status: status::CONNECTION_FAILED,
                    data,
                }),
                Pending::Lookup(req, objects) => self.events.push_back(UbusEvent::Lookup {
                    req,
                    status: status::CONNECTION_FAILED,
                    objects,
                }),
                _ => {}
            }
        }
        for o in &mut self.objects {
            o.id = None;
        }
        for s in &mut self.subs {
            s.anon = None;
            s.target = None;
            s.phase = SubPhase::Idle;
        }
        if was {
            self.events.push_back(UbusEvent::Disconnected);
        }
        self.retry_at = Some(Instant::now() + self.backoff);
    }

    fn process_rx(&mut self) {
        let mut off = 0;
        loop {
            let rest = self.rx.get(off..).unwrap_or(&[]);
            match frame_len(rest) {
                Ok(Some(n)) => {
                    let frame = rest.get(..n).unwrap_or(&[]).to_vec();
                    off += n;
                    match UbusMsg::parse(&frame) {
                        Ok(m) => self.handle(&m),
                        // The frame is delimited, so skip just this one.
                        Err(e) => log::warn!(target: "ubus", "dropped a frame: {e}"),
                    }
                    if self.stream.is_none() {
                        return;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    log::error!(target: "ubus", "{}", UbusError::Protocol(e));
                    self.disconnect();
                    return;
                }
            }
        }
        self.rx.drain(..off.min(self.rx.len()));
    }

    fn handle(&mut self, m: &UbusMsg<'_>) {
        let Some(t) = m.hdr.msg_type() else {
            log::debug!(target: "ubus", "ignored message type {}", m.hdr.typ);
            return;
        };
        match t {
            MsgType::Hello => {
                if self.client_id.is_none() {
                    self.client_id = Some(m.hdr.peer);
                    self.events.push_back(UbusEvent::Connected {
                        client_id: m.hdr.peer,
                    });
                    for i in 0..self.objects.len() {
                        self.send_add_object(i);
                    }
                    for i in 0..self.subs.len() {
                        self.advance_sub(i);
                    }
                }
            }
            MsgType::Data | MsgType::Status => self.handle_reply(t, m),
            MsgType::Invoke => self.handle_invoke(m),
            MsgType::Unsubscribe => {
                let Some(id) = m.attrs.objid else { return };
                if let Some(s) = self.subs.iter_mut().find(|s| s.anon == Some(id)) {
                    log::debug!(target: "ubus", "subscription to {} ended", s.path);
                    s.phase = SubPhase::Idle;
                    s.target = None;
                    let path = s.path.clone();
                    self.events.push_back(UbusEvent::Unsubscribed { path });
                }
            }
            // NOTIFY {ACTIVE} tells a publisher whether it has subscribers;
            // nothing for us to do.
            _ => log::trace!(target: "ubus", "ignored {t:?}"),
        }
    }

    fn handle_reply(&mut self, t: MsgType, m: &UbusMsg<'_>) {
        let Some(i) = self
            .outstanding
            .iter()
            .position(|o| o.seq == m.hdr.seq && o.peer == m.hdr.peer)
        else {
            log::debug!(target: "ubus", "reply to unknown request seq {} peer {}", m.hdr.seq, m.hdr.peer);
            return;
        };
        if t == MsgType::Data {
            let o = &mut self.outstanding[i];
            match &mut o.what {
                Pending::AddObject(k) => {
                    if let (Some(id), Some(p)) = (m.attrs.objid, self.objects.get_mut(*k)) {
                        p.id = Some(id);
                    }
                }
                Pending::AddAnon(k) => {
                    if let (Some(id), Some(s)) = (m.attrs.objid, self.subs.get_mut(*k)) {
                        s.anon = Some(id);
                    }
                }
                Pending::LookupTarget(k) => {
                    if let (Some(id), Some(s)) = (m.attrs.objid, self.subs.get_mut(*k)) {
                        if m.attrs.objpath == Some(s.path.as_str()) {
                            s.target = Some(id);
                        }
                    }
                }
                Pending::Invoke(_, data) => match m.attrs.data.map(Value::decode_fields) {
                    Some(Ok(v)) => data.push(v),
                    Some(Err(e)) => log::warn!(target: "ubus", "reply data: {e}"),
                    None => {}
                },
                Pending::Lookup(_, objs) => {
                    if let (Some(p), Some(id)) = (m.attrs.objpath, m.attrs.objid) {
                        objs.push((p.to_string(), id));
                    }
                }
                Pending::Subscribe(_) => {}
            }
            return;
        }
        // STATUS: the request is complete.
        let o = self.outstanding.swap_remove(i);
        let code = m.attrs.status.unwrap_or(status::UNKNOWN_ERROR);
        match o.what {
            Pending::AddObject(k) => {
                let Some(p) = self.objects.get(k) else { return };
                let path = p.spec.path.clone();
                match p.id {
                    Some(id) if code == status::OK => {
                        self.events.push_back(UbusEvent::ObjectAdded { path, id });
                    }
                    _ => {
                        log::warn!(target: "ubus", "cannot publish ubus object {path}: status {code}");
                        self.events
                            .push_back(UbusEvent::ObjectFailed { path, status: code });
                    }
                }
            }
            Pending::AddAnon(k) | Pending::LookupTarget(k) | Pending::Subscribe(k) => {
                let step = match o.what {
                    Pending::AddAnon(_) => "add subscriber",
                    Pending::LookupTarget(_) => "lookup",
                    _ => "subscribe",
                };
                let Some(s) = self.subs.get_mut(k) else {
                    return;
                };
                let ok = code == status::OK
                    && match o.what {
                        Pending::AddAnon(_) => s.anon.is_some(),
                        Pending::LookupTarget(_) => s.target.is_some(),
                        _ => true,
                    };
                if !ok {
                    log::debug!(target: "ubus", "{} {}: status {code}; retrying later", step, s.path);
                    s.phase = SubPhase::Idle;
                    if matches!(o.what, Pending::AddAnon(_)) {
                        s.anon = None;
                    }
                    return;
                }
                if let (Pending::Subscribe(_), Some(target)) = (&o.what, s.target) {
                    s.phase = SubPhase::Subscribed;
                    let path = s.path.clone();
                    self.events
                        .push_back(UbusEvent::Subscribed { path, target });
                } else {
                    self.advance_sub(k);
                }
            }
            Pending::Invoke(req, data) => self.events.push_back(UbusEvent::Reply {
                req,
                status: code,
                data,
            }),
            Pending::Lookup(req, objects) => self.events.push_back(UbusEvent::Lookup {
                req,
                status: code,
                objects,
            }),
        }
    }

    fn handle_invoke(&mut self, m: &UbusMsg<'_>) {
        let a = &m.attrs;
        let no_reply = a.no_reply.unwrap_or(0) != 0;
        let Some(objid) = a.objid else {
            return; // libubus drops an INVOKE without OBJID too
        };
        let Some(method) = a.method else {
            if !no_reply {
                self.send_status(m.hdr.seq, m.hdr.peer, objid, status::INVALID_ARGUMENT);
            }
            return;
        };
        let args = match a.data.map(Value::decode_fields) {
            None => Value::table(),
            Some(Ok(v)) => v,
            Some(Err(e)) => {
                log::warn!(target: "ubus", "{method}: bad arguments: {e}");
                if !no_reply {
                    self.send_status(m.hdr.seq, m.hdr.peer, objid, status::INVALID_ARGUMENT);
                }
                return;
            }
        };
        if let Some(p) = self.objects.iter().find(|o| o.id == Some(objid)) {
            if !p.spec.methods.iter().any(|(n, _)| n == method) {
                if !no_reply {
                    self.send_status(m.hdr.seq, m.hdr.peer, objid, status::METHOD_NOT_FOUND);
                }
                return;
            }
            self.events.push_back(UbusEvent::Call(IncomingCall {
                path: p.spec.path.clone(),
                object: objid,
                method: method.to_string(),
                args,
                user: a.user.map(str::to_string),
                seq: m.hdr.seq,
                peer: m.hdr.peer,
                no_reply,
            }));
            return;
        }
        if let Some(s) = self.subs.iter().find(|s| s.anon == Some(objid)) {
            let path = s.path.clone();
            // A notification from the object we subscribed to.
            log::trace!(target: "ubus", "{path}: {method}");
            self.events.push_back(UbusEvent::Notify {
                path,
                method: method.to_string(),
                args,
            });
            if !no_reply {
                self.send_status(m.hdr.seq, m.hdr.peer, objid, status::OK);
            }
            return;
        }
        if !no_reply {
            self.send_status(m.hdr.seq, m.hdr.peer, objid, status::NOT_FOUND);
        }
    }

    fn send_add_object(&mut self, i: usize) {
        let seq = self.next_seq();
        let Some(p) = self.objects.get(i) else { return };
        let frame = p.spec.add_object_frame(seq);
        match frame {
            Ok(f) => {
                self.outstanding.push(Outstanding {
                    seq,
                    peer: 0,
                    what: Pending::AddObject(i),
                    sent: Instant::now(),
                });
                self.send(f);
            }
            Err(e) => log::error!(target: "ubus", "object {}: {e}", p.spec.path),
        }
    }

    /// The next step of subscription `i`: anonymous object, lookup, subscribe.
    fn advance_sub(&mut self, i: usize) {
        let seq = self.next_seq();
        let Some(s) = self.subs.get(i) else { return };
        let (frame, what) = match (s.anon, s.target) {
            (None, _) => (
                MsgBuilder::new(MsgType::AddObject, seq, 0).finish(),
                Pending::AddAnon(i),
            ),
            (Some(_), None) => (
                MsgBuilder::new(MsgType::Lookup, seq, 0)
                    .string(attr::OBJPATH, &s.path)
                    .finish(),
                Pending::LookupTarget(i),
            ),
            (Some(anon), Some(target)) => {
                (subscribe_frame(seq, anon, target), Pending::Subscribe(i))
            }
        };
        match frame {
            Ok(f) => {
                if let Some(s) = self.subs.get_mut(i) {
                    s.phase = SubPhase::Busy;
                    // A fresh lookup each time: the target id changes when
                    // hostapd restarts.
                    if matches!(what, Pending::AddAnon(_)) {
                        s.target = None;
                    }
                }
                self.outstanding.push(Outstanding {
                    seq,
                    peer: 0,
                    what,
                    sent: Instant::now(),
                });
                self.send(f);
            }
            Err(e) => log::error!(target: "ubus", "subscribe {}: {e}", s.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// ADD_OBJECT "tmip" with one argument-less method "status", by hand:
    /// hdr `00 06 | 00 01 | 00 00 00 00`;
    /// OBJPATH (2) "tmip\0" = 5 bytes -> len 9 `02 00 00 09`, padded to 12;
    /// SIGNATURE (6) holds one blobmsg TABLE (0x80 | 2) named "status": name
    /// header `00 06 s t a t u s 00` = 9 bytes padded to 12, no children ->
    /// len 16 `82 00 00 10`; so SIGNATURE len = 4 + 16 = 20 `06 00 00 14`;
    /// container = 4 + 12 + 20 = 36 `00 00 00 24`.
    #[test]
    fn add_object_frame_matches_hand_derivation() {
        let want: [u8; 44] = [
            0, 6, 0, 1, 0, 0, 0, 0, // hdr
            0, 0, 0, 0x24, // container
            2, 0, 0, 9, b't', b'm', b'i', b'p', 0, 0, 0, 0, // OBJPATH
            6, 0, 0, 0x14, // SIGNATURE
            0x82, 0, 0, 0x10, 0, 6, b's', b't', b'a', b't', b'u', b's', 0, 0, 0, 0,
        ];
        let spec = ObjectSpec {
            path: "tmip".into(),
            methods: vec![("status".into(), vec![])],
        };
        assert_eq!(spec.add_object_frame(1).expect("frame"), want);
    }

    /// SUBSCRIBE seq 5: OBJID (3) and TARGET (8), u32 each (8 bytes with
    /// header); container 4 + 16 = 20 `00 00 00 14`.
    #[test]
    fn subscribe_frame_matches_hand_derivation() {
        let want: [u8; 28] = [
            0, 8, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0x14, 3, 0, 0, 8, 0x11, 0x22, 0x33, 0x44, 8, 0, 0, 8,
            0xaa, 0xbb, 0xcc, 0xdd,
        ];
        assert_eq!(
            subscribe_frame(5, 0x1122_3344, 0xaabb_ccdd).expect("frame"),
            want
        );
    }
}
