//! A ubusd stand-in for tests: a PROTOCOL PEER WRITTEN FROM THE SPEC
//! (openwrt.md §4 and the behaviour documented in ubus's ubusd_proto.c),
//! NOT the real ubusd, which this machine does not have. It implements what
//! tmipd relies on: HELLO with the client id, ADD_OBJECT (named with
//! signature, or anonymous), LOOKUP, INVOKE forwarding with the caller's id
//! as `peer`, relaying DATA/STATUS replies with `peer` rewritten to the
//! object id, SUBSCRIBE (+ NOTIFY {ACTIVE} to the publisher), NOTIFY fan-out
//! as INVOKE to each subscriber (honouring NO_REPLY), and UNSUBSCRIBE when a
//! target's client goes away, and the event object (id 1: `register`
//! `{object, pattern}` and `send` `{id, data}`, delivered to every listener
//! whose pattern matches `id` exactly or, ending in `*`, by prefix, as an
//! INVOKE of method `id`, as ubusd_event.c does). It is strict: a reply without the attributes
//! ubusd requires is dropped, so a client that gets the format wrong fails.
//!
//! [`FakeHostapd`] plays hostapd's ubus side with raw frames (publishes
//! `hostapd.<ifname>`, sends NOTIFYs). [`FakeListener`] is `ubus listen
//! PATTERN` (libubus ubus_register_event_handler) in raw frames.
//!
//! Used by tests/ubus_peer.rs and tests/tmipd_ubus.rs
//! (`#[path = "support/fake_ubusd.rs"] mod fake_ubusd;`).
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tmip::ubus::blob::{BlobWriter, Value};
use tmip::ubus::client::{UbusClient, UbusEvent};
use tmip::ubus::msg::{attr, frame_len, status, MsgBuilder, MsgType, UbusMsg};

// ---------------------------------------------------------------------------
// The protocol peer (written from the spec; not the real ubusd).

pub struct Obj {
    pub client: u32,
    pub path: Option<String>,
    pub has_type: bool,
    pub signature: Vec<u8>,
    /// Subscriber object ids.
    pub subscribers: Vec<u32>,
    pub invoke_seq: u16,
}

#[derive(Default)]
pub struct State {
    pub next_id: u32,
    pub clients: HashMap<u32, UnixStream>,
    pub objects: HashMap<u32, Obj>,
    /// Event listeners: (client, object, pattern).
    pub listeners: Vec<(u32, u32, String)>,
    pub event_seq: u16,
}

/// ubusd's event object (UBUS_SYSTEM_OBJECT_EVENT).
pub const EVENT_OBJECT: u32 = 1;

/// ubusd_event.c: a pattern ending in `*` matches by prefix, any other
/// exactly.
pub fn pattern_matches(pattern: &str, id: &str) -> bool {
    match pattern.strip_suffix('*') {
        Some(prefix) => id.starts_with(prefix),
        None => pattern == id,
    }
}

/// ubusd_event_recv: `register` and `send` on the event object.
fn event_object(g: &mut State, cl: u32, method: &str, data: Option<&[u8]>) -> i32 {
    let Some(args) = data.and_then(|d| Value::decode_fields(d).ok()) else {
        return status::INVALID_ARGUMENT;
    };
    match method {
        "register" => {
            let obj = args.get("object").and_then(|v| v.as_i64());
            let pattern = args.get("pattern").and_then(|v| v.as_str()).unwrap_or("*");
            match obj.and_then(|o| u32::try_from(o).ok()) {
                Some(o) if g.objects.get(&o).map(|x| x.client) == Some(cl) => {
                    g.listeners.push((cl, o, pattern.to_string()));
                    0
                }
                _ => status::INVALID_ARGUMENT,
            }
        }
        "send" => {
            let (Some(id), Some(Value::Table(_))) =
                (args.get("id").and_then(|v| v.as_str()), args.get("data"))
            else {
                return status::INVALID_ARGUMENT;
            };
            let mut w = BlobWriter::new();
            if let Some(d) = args.get("data") {
                d.encode_fields(&mut w).expect("event data");
            }
            let targets: Vec<(u32, u32)> = g
                .listeners
                .iter()
                .filter(|(c, _, p)| *c != cl && pattern_matches(p, id))
                .map(|(c, o, _)| (*c, *o))
                .collect();
            for (c, o) in targets {
                g.event_seq = g.event_seq.wrapping_add(1);
                let f = MsgBuilder::new(MsgType::Invoke, g.event_seq, 0)
                    .u32(attr::OBJID, o)
                    .string(attr::METHOD, id)
                    .raw(attr::DATA, w.bytes())
                    .finish()
                    .expect("event");
                g.send(c, &f);
            }
            0
        }
        _ => status::METHOD_NOT_FOUND,
    }
}

impl State {
    pub fn alloc(&mut self) -> u32 {
        self.next_id += 1;
        0x0100_0000 + self.next_id * 7
    }
    pub fn send(&mut self, client: u32, frame: &[u8]) {
        if let Some(s) = self.clients.get_mut(&client) {
            let _ = s.write_all(frame);
        }
    }
}

pub struct FakeUbusd {
    pub stop: Arc<AtomicBool>,
    pub thread: Option<std::thread::JoinHandle<()>>,
    pub state: Arc<Mutex<State>>,
}

impl FakeUbusd {
    pub fn start(path: &Path) -> FakeUbusd {
        let _ = std::fs::remove_file(path);
        let listener = UnixListener::bind(path).expect("bind fake ubusd");
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let state = Arc::new(Mutex::new(State::default()));
        let (st, stp) = (state.clone(), stop.clone());
        let thread = std::thread::spawn(move || {
            let mut workers = Vec::new();
            while !stp.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((s, _)) => {
                        let (st, stp) = (st.clone(), stp.clone());
                        workers.push(std::thread::spawn(move || serve(s, st, stp)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        FakeUbusd {
            stop,
            thread: Some(thread),
            state,
        }
    }

    /// Stop: every connection is closed, as when ubusd exits.
    pub fn stop(mut self) {
        self.shutdown();
    }

    pub fn shutdown(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Ok(st) = self.state.lock() {
            for s in st.clients.values() {
                let _ = s.shutdown(std::net::Shutdown::Both);
            }
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for FakeUbusd {
    fn drop(&mut self) {
        self.shutdown();
    }
}

pub fn serve(mut s: UnixStream, st: Arc<Mutex<State>>, stop: Arc<AtomicBool>) {
    s.set_read_timeout(Some(Duration::from_millis(20)))
        .expect("timeout");
    let id = {
        let mut g = st.lock().expect("lock");
        let id = g.alloc();
        g.clients.insert(id, s.try_clone().expect("clone"));
        // HELLO: seq 0, peer = client id, empty container (ubusd_send_hello).
        let hello = MsgBuilder::new(MsgType::Hello, 0, id)
            .finish()
            .expect("hello");
        g.send(id, &hello);
        id
    };
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    'outer: while !stop.load(Ordering::Relaxed) {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                continue
            }
            Err(_) => break,
        }
        loop {
            match frame_len(&buf) {
                Ok(Some(n)) => {
                    let frame: Vec<u8> = buf.drain(..n).collect();
                    let mut g = st.lock().expect("lock");
                    handle(&mut g, id, &frame);
                }
                Ok(None) => break,
                Err(_) => break 'outer, // ubusd drops a client sending garbage
            }
        }
    }
    // Client gone: free its objects, tell subscribers (ubusd_free_object).
    let mut g = st.lock().expect("lock");
    g.clients.remove(&id);
    g.listeners.retain(|(c, _, _)| *c != id);
    let mine: Vec<u32> = g
        .objects
        .iter()
        .filter(|(_, o)| o.client == id)
        .map(|(k, _)| *k)
        .collect();
    for oid in mine {
        if let Some(o) = g.objects.remove(&oid) {
            for sub in o.subscribers {
                let owner = g.objects.get(&sub).map(|o| o.client);
                if let Some(owner) = owner {
                    let m = MsgBuilder::new(MsgType::Unsubscribe, 1, 0)
                        .u32(attr::OBJID, sub)
                        .u32(attr::TARGET, oid)
                        .finish()
                        .expect("unsub");
                    g.send(owner, &m);
                }
            }
        }
        for o in g.objects.values_mut() {
            o.subscribers.retain(|&s| s != oid);
        }
    }
}

pub fn status_msg(seq: u16, peer: u32, code: i32) -> Vec<u8> {
    MsgBuilder::new(MsgType::Status, seq, peer)
        .i32(attr::STATUS, code)
        .finish()
        .expect("status")
}

/// ubusd_proto_receive_message: dispatch, then STATUS unless the handler
/// took care of replies (-1 in ubusd).
pub fn handle(g: &mut State, cl: u32, frame: &[u8]) {
    let Ok(m) = UbusMsg::parse(frame) else {
        return;
    };
    let (seq, peer) = (m.hdr.seq, m.hdr.peer);
    let a = &m.attrs;
    let ret: Option<i32> = match m.hdr.msg_type() {
        Some(MsgType::Ping) => {
            let mut f = frame.to_vec();
            f[1] = MsgType::Data as u8;
            g.send(cl, &f);
            Some(0)
        }
        Some(MsgType::AddObject) => {
            if a.objpath
                .is_some_and(|p| g.objects.values().any(|o| o.path.as_deref() == Some(p)))
            {
                Some(status::INVALID_ARGUMENT)
            } else {
                let oid = g.alloc();
                let has_type = a.signature.is_some();
                g.objects.insert(
                    oid,
                    Obj {
                        client: cl,
                        path: a.objpath.map(str::to_string),
                        has_type,
                        signature: a.signature.unwrap_or(&[]).to_vec(),
                        subscribers: Vec::new(),
                        invoke_seq: 0,
                    },
                );
                let mut b = MsgBuilder::new(MsgType::Data, seq, peer).u32(attr::OBJID, oid);
                if has_type {
                    b = b.u32(attr::OBJTYPE, oid ^ 0x55);
                }
                g.send(cl, &b.finish().expect("data"));
                Some(0)
            }
        }
        Some(MsgType::Lookup) => {
            let want = a.objpath.map(str::to_string);
            let found: Vec<(u32, String, Vec<u8>)> = g
                .objects
                .iter()
                .filter(|(_, o)| o.has_type && o.path.is_some())
                .filter(|(_, o)| match (&want, &o.path) {
                    (None, _) => true,
                    // ubusd_handle_lookup: a trailing `*` matches a prefix.
                    (Some(w), Some(p)) if w.ends_with('*') => p.starts_with(&w[..w.len() - 1]),
                    (Some(w), p) => p.as_deref() == Some(w.as_str()),
                })
                .map(|(k, o)| (*k, o.path.clone().unwrap_or_default(), o.signature.clone()))
                .collect();
            for (oid, path, sig) in &found {
                let d = MsgBuilder::new(MsgType::Data, seq, peer)
                    .string(attr::OBJPATH, path)
                    .u32(attr::OBJID, *oid)
                    .u32(attr::OBJTYPE, oid ^ 0x55)
                    .raw(attr::SIGNATURE, sig)
                    .finish()
                    .expect("lookup data");
                g.send(cl, &d);
            }
            Some(if found.is_empty() && want.is_some() {
                status::NOT_FOUND
            } else {
                0
            })
        }
        Some(MsgType::Invoke) => match (a.objid, a.method) {
            (Some(EVENT_OBJECT), Some(method)) => Some(event_object(g, cl, method, a.data)),
            (Some(oid), Some(method)) => match g.objects.get(&oid).map(|o| o.client) {
                None => Some(status::NOT_FOUND),
                Some(owner) => {
                    // Forward with peer = the caller's client id, adding USER/GROUP.
                    let mut b = MsgBuilder::new(MsgType::Invoke, seq, cl)
                        .u32(attr::OBJID, oid)
                        .string(attr::METHOD, method)
                        .string(attr::USER, "root")
                        .string(attr::GROUP, "root");
                    if let Some(d) = a.data {
                        b = b.raw(attr::DATA, d);
                    }
                    g.send(owner, &b.finish().expect("fwd"));
                    None
                }
            },
            _ => Some(status::INVALID_ARGUMENT),
        },
        Some(t @ (MsgType::Data | MsgType::Status)) => {
            // ubusd_handle_response: strict about what a reply carries.
            let ok = a.objid.is_some()
                && (t != MsgType::Status || a.status.is_some())
                && (t != MsgType::Data || a.data.is_some());
            if let (true, Some(oid)) = (ok, a.objid) {
                if g.objects.get(&oid).map(|o| o.client) == Some(cl)
                    && g.clients.contains_key(&peer)
                {
                    let mut f = frame.to_vec();
                    f[4..8].copy_from_slice(&oid.to_be_bytes());
                    g.send(peer, &f);
                }
            }
            None
        }
        Some(MsgType::Subscribe) => match (a.objid, a.target) {
            (Some(me), Some(target)) => {
                let mine = g.objects.get(&me).map(|o| o.client) == Some(cl);
                let tclient = g.objects.get(&target).map(|o| o.client);
                match (mine, tclient) {
                    (false, _) => Some(status::INVALID_ARGUMENT),
                    (true, None) => Some(status::NOT_FOUND),
                    (true, Some(tc)) if tc == cl => Some(status::INVALID_ARGUMENT),
                    (true, Some(tc)) => {
                        let mut notify = None;
                        if let Some(t) = g.objects.get_mut(&target) {
                            let first = t.subscribers.is_empty();
                            t.subscribers.push(me);
                            if first {
                                t.invoke_seq += 1;
                                notify = Some(t.invoke_seq);
                            }
                        }
                        if let Some(s) = notify {
                            let n = MsgBuilder::new(MsgType::Notify, s, 0)
                                .u32(attr::OBJID, target)
                                .u8(attr::ACTIVE, 1)
                                .finish()
                                .expect("notify");
                            g.send(tc, &n);
                        }
                        Some(0)
                    }
                }
            }
            _ => Some(status::INVALID_ARGUMENT),
        },
        Some(MsgType::Notify) => match (a.objid, a.method) {
            (Some(oid), Some(method)) => {
                let no_reply = a.no_reply.unwrap_or(0) != 0;
                let subs = match g.objects.get(&oid) {
                    Some(o) if o.client == cl => o.subscribers.clone(),
                    Some(_) => {
                        return g.send(cl, &status_msg(seq, peer, status::PERMISSION_DENIED))
                    }
                    None => return g.send(cl, &status_msg(seq, peer, status::NOT_FOUND)),
                };
                if !no_reply {
                    let mut w = BlobWriter::new();
                    for s in &subs {
                        w.put_u32(0, *s).expect("sub id");
                    }
                    let st = MsgBuilder::new(MsgType::Status, seq, peer)
                        .u32(attr::OBJID, oid)
                        .raw(attr::SUBSCRIBERS, w.bytes())
                        .i32(attr::STATUS, 0)
                        .finish()
                        .expect("notify status");
                    g.send(cl, &st);
                }
                for s in subs {
                    let Some(owner) = g.objects.get(&s).map(|o| o.client) else {
                        continue;
                    };
                    let mut b = MsgBuilder::new(MsgType::Invoke, seq, cl);
                    if no_reply {
                        b = b.u8(attr::NO_REPLY, 1);
                    }
                    b = b
                        .u32(attr::OBJID, s)
                        .string(attr::METHOD, method)
                        .string(attr::USER, "root")
                        .string(attr::GROUP, "root");
                    if let Some(d) = a.data {
                        b = b.raw(attr::DATA, d);
                    }
                    g.send(owner, &b.finish().expect("notify fwd"));
                }
                None
            }
            _ => Some(status::INVALID_ARGUMENT),
        },
        _ => Some(status::INVALID_COMMAND),
    };
    if let Some(code) = ret {
        g.send(cl, &status_msg(seq, peer, code));
    }
}

pub struct FakeHostapd {
    pub s: UnixStream,
    pub buf: Vec<u8>,
    pub obj: u32,
    pub seq: u16,
}

impl FakeHostapd {
    pub fn connect(path: &Path) -> FakeHostapd {
        Self::connect_as(path, "hostapd.wlan0")
    }

    /// Publish `objpath` (e.g. `hostapd.mob`).
    pub fn connect_as(path: &Path, objpath: &str) -> FakeHostapd {
        let s = UnixStream::connect(path).expect("hostapd connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut h = FakeHostapd {
            s,
            buf: Vec::new(),
            obj: 0,
            seq: 0,
        };
        let hello = h.recv();
        assert_eq!(hello[1], MsgType::Hello as u8);
        // ADD_OBJECT with a signature like hostapd_bss (abridged).
        let sig = Value::table().with("get_clients", Value::table()).with(
            "del_client",
            Value::table()
                .with("addr", Value::Int32(3))
                .with("reason", Value::Int32(5)),
        );
        h.seq += 1;
        let f = MsgBuilder::new(MsgType::AddObject, h.seq, 0)
            .string(attr::OBJPATH, objpath)
            .fields(attr::SIGNATURE, &sig)
            .finish()
            .expect("add");
        h.s.write_all(&f).expect("send");
        let d = h.recv();
        let m = UbusMsg::parse(&d).expect("data");
        assert_eq!(m.hdr.msg_type(), Some(MsgType::Data));
        h.obj = m.attrs.objid.expect("objid");
        let st = h.recv();
        assert_eq!(UbusMsg::parse(&st).expect("st").attrs.status, Some(0));
        h
    }

    pub fn recv(&mut self) -> Vec<u8> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(Some(n)) = frame_len(&self.buf) {
                return self.buf.drain(..n).collect();
            }
            let n = self.s.read(&mut chunk).expect("hostapd read");
            assert!(n > 0, "ubusd closed hostapd's connection");
            self.buf.extend_from_slice(&chunk[..n]);
        }
    }

    /// Answer the next INVOKE (expected: `get_clients`) with DATA + STATUS,
    /// echoing seq and peer as libubus does.
    pub fn serve_get_clients(&mut self, reply: &Value) {
        let f = self.recv();
        let m = UbusMsg::parse(&f).expect("invoke");
        assert_eq!(m.hdr.msg_type(), Some(MsgType::Invoke));
        assert_eq!(m.attrs.method, Some("get_clients"));
        assert_eq!(m.attrs.objid, Some(self.obj));
        let d = MsgBuilder::new(MsgType::Data, m.hdr.seq, m.hdr.peer)
            .u32(attr::OBJID, self.obj)
            .fields(attr::DATA, reply)
            .finish()
            .expect("data");
        let st = MsgBuilder::new(MsgType::Status, m.hdr.seq, m.hdr.peer)
            .i32(attr::STATUS, 0)
            .u32(attr::OBJID, self.obj)
            .finish()
            .expect("status");
        self.s.write_all(&d).expect("send");
        self.s.write_all(&st).expect("send");
    }

    pub fn notify(&mut self, method: &str, data: &Value, no_reply: bool) -> u16 {
        self.seq += 1;
        let mut b = MsgBuilder::new(MsgType::Notify, self.seq, 0)
            .u32(attr::OBJID, self.obj)
            .string(attr::METHOD, method)
            .fields(attr::DATA, data);
        if no_reply {
            b = b.u8(attr::NO_REPLY, 1);
        }
        self.s
            .write_all(&b.finish().expect("notify"))
            .expect("send");
        self.seq
    }
}

/// `ubus listen PATTERN` in raw frames: an anonymous object registered on
/// the event object; events arrive as INVOKEs of method = event id.
pub struct FakeListener {
    pub s: UnixStream,
    pub buf: Vec<u8>,
    pub obj: u32,
}

impl FakeListener {
    pub fn connect(path: &Path, pattern: &str) -> FakeListener {
        let s = UnixStream::connect(path).expect("listener connect");
        s.set_read_timeout(Some(Duration::from_secs(3)))
            .expect("timeout");
        let mut l = FakeListener {
            s,
            buf: Vec::new(),
            obj: 0,
        };
        let hello = l.recv().expect("hello");
        assert_eq!(hello[1], MsgType::Hello as u8);
        // An object with neither path nor type (libubus event handler).
        let f = MsgBuilder::new(MsgType::AddObject, 1, 0)
            .finish()
            .expect("add");
        l.s.write_all(&f).expect("send");
        let d = l.recv().expect("add data");
        l.obj = UbusMsg::parse(&d)
            .expect("data")
            .attrs
            .objid
            .expect("objid");
        let st = l.recv().expect("add status");
        assert_eq!(UbusMsg::parse(&st).expect("st").attrs.status, Some(0));
        let args = Value::table()
            .with("object", Value::Int32(l.obj as i32))
            .with("pattern", Value::String(pattern.into()));
        let f = MsgBuilder::new(MsgType::Invoke, 2, EVENT_OBJECT)
            .u32(attr::OBJID, EVENT_OBJECT)
            .string(attr::METHOD, "register")
            .fields(attr::DATA, &args)
            .finish()
            .expect("register");
        l.s.write_all(&f).expect("send");
        let st = l.recv().expect("register status");
        assert_eq!(UbusMsg::parse(&st).expect("st").attrs.status, Some(0));
        l
    }

    /// The next frame, or `None` after the read timeout.
    pub fn recv(&mut self) -> Option<Vec<u8>> {
        let mut chunk = [0u8; 4096];
        loop {
            if let Ok(Some(n)) = frame_len(&self.buf) {
                return Some(self.buf.drain(..n).collect());
            }
            match self.s.read(&mut chunk) {
                Ok(n) if n > 0 => self.buf.extend_from_slice(&chunk[..n]),
                _ => return None,
            }
        }
    }

    /// The next event (id, data), answering it as libubus does; `None`
    /// when none comes within `timeout`.
    pub fn next_event(&mut self, timeout: Duration) -> Option<(String, Value)> {
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            self.s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))))
                .expect("timeout");
            let f = self.recv()?;
            let Ok(m) = UbusMsg::parse(&f) else { continue };
            if m.hdr.msg_type() != Some(MsgType::Invoke) {
                continue;
            }
            let id = m.attrs.method.unwrap_or_default().to_string();
            let data = m
                .attrs
                .data
                .and_then(|d| Value::decode_fields(d).ok())
                .unwrap_or(Value::Table(Vec::new()));
            let st = MsgBuilder::new(MsgType::Status, m.hdr.seq, m.hdr.peer)
                .i32(attr::STATUS, 0)
                .u32(attr::OBJID, self.obj)
                .finish()
                .expect("status");
            let _ = self.s.write_all(&st);
            return Some((id, data));
        }
    }
}

// ---------------------------------------------------------------------------
// A test's own ubus client (tmip::ubus::UbusClient), driven until an answer.

/// Drive the test's own ubus client until `want` says Some.
pub fn pump<T>(
    c: &mut UbusClient,
    timeout: Duration,
    mut want: impl FnMut(UbusEvent) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        c.tick(Instant::now());
        let mut pfd = libc::pollfd {
            fd: c.fd().unwrap_or(-1),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 20) };
        if pfd.revents != 0 {
            c.on_readable();
        }
        while let Some(ev) = c.poll_event() {
            if let Some(r) = want(ev) {
                return Some(r);
            }
        }
    }
    None
}

/// `ubus call <object> <method> <args>` from the test: (status, data).
pub fn call(c: &mut UbusClient, object: &str, method: &str, args: Value) -> (i32, Vec<Value>) {
    let req = c.lookup(object).expect("lookup");
    let id = pump(c, Duration::from_secs(3), |ev| match ev {
        UbusEvent::Lookup {
            req: r, objects, ..
        } if r == req => Some(objects.first().map(|o| o.1)),
        _ => None,
    })
    .expect("lookup answered")
    .unwrap_or_else(|| panic!("no ubus object '{object}'"));
    let req = c.invoke(id, method, &args).expect("invoke");
    pump(c, Duration::from_secs(3), |ev| match ev {
        UbusEvent::Reply {
            req: r,
            status,
            data,
        } if r == req => Some((status, data)),
        _ => None,
    })
    .expect("call answered")
}
