//! A small blocking MLRP client over `std::net::TcpStream`, for tools that
//! ask one question at a time: `tmipd -E` (connectivity check), tests and
//! benchmarks. Daemons use [`Session`] directly in their poll loop.
//!
//! Every blocking step has a deadline (`timeout` from `connect`): a peer that
//! stops answering gives `ClientError::Timeout`, never a hang. Requests the
//! peer sends us (an MLR pushing `Redirect` to a bound CN) are queued; read
//! them with [`Client::next_request`] and answer with [`Client::reply`].

use core::fmt;
use std::collections::VecDeque;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use super::auth::{random_nonce, NetworkKey};
use super::message::{Hello, Message, Role};
use super::session::{Incoming, MlrpError, RequestId, Session};

/// Why a client call failed.
#[derive(Debug)]
pub enum ClientError {
    /// Connecting, reading or writing failed.
    Io(io::Error),
    /// No answer within the timeout.
    Timeout,
    /// The peer closed the TCP connection.
    Disconnected,
    /// The session failed (bad HMAC, sequence, refused by the peer, ...).
    Protocol(MlrpError),
}

impl fmt::Display for ClientError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ClientError::Io(e) => write!(f, "{e}"),
            ClientError::Timeout => f.write_str("timed out"),
            ClientError::Disconnected => f.write_str("connection closed by peer"),
            ClientError::Protocol(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for ClientError {}

impl From<io::Error> for ClientError {
    fn from(e: io::Error) -> Self {
        match e.kind() {
            io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => ClientError::Timeout,
            io::ErrorKind::UnexpectedEof
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::BrokenPipe => ClientError::Disconnected,
            _ => ClientError::Io(e),
        }
    }
}

impl From<MlrpError> for ClientError {
    fn from(e: MlrpError) -> Self {
        ClientError::Protocol(e)
    }
}

/// A blocking TCP connection to `addr` from source address `local`,
/// giving up after `timeout` (SO_SNDTIMEO bounds connect(2)).
pub fn tcp_connect_from(
    local: std::net::Ipv4Addr,
    addr: std::net::SocketAddrV4,
    timeout: Duration,
) -> io::Result<TcpStream> {
    use nix::sys::socket::{self as ns, sockopt, AddressFamily, SockFlag, SockType};
    use std::os::fd::AsRawFd;
    let fd = ns::socket(
        AddressFamily::Inet,
        SockType::Stream,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    ns::bind(
        fd.as_raw_fd(),
        &ns::SockaddrIn::from(std::net::SocketAddrV4::new(local, 0)),
    )?;
    let tv = nix::sys::time::TimeVal::new(timeout.as_secs() as _, timeout.subsec_micros() as _);
    ns::setsockopt(&fd, sockopt::SendTimeout, &tv)?;
    ns::connect(fd.as_raw_fd(), &ns::SockaddrIn::from(addr))?;
    // Back to no send timeout: callers set their own.
    ns::setsockopt(
        &fd,
        sockopt::SendTimeout,
        &nix::sys::time::TimeVal::new(0, 0),
    )?;
    Ok(TcpStream::from(fd))
}

/// A connected, handshaken MLRP connection.
pub struct Client {
    stream: TcpStream,
    session: Session,
    timeout: Duration,
    out: Vec<u8>,
    buf: Vec<u8>,
    peer: Hello,
    replies: VecDeque<(RequestId, Result<Message, MlrpError>)>,
    requests: VecDeque<(RequestId, Message)>,
}

impl fmt::Debug for Client {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Client")
            .field("peer", &self.stream.peer_addr().ok())
            .field("session", &self.session)
            .finish()
    }
}

impl Client {
    /// Connect to `addr` and complete the Hello exchange, all within `timeout`.
    pub fn connect(
        addr: SocketAddr,
        role: Role,
        key: Option<&NetworkKey>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let stream = TcpStream::connect_timeout(&addr, timeout)?;
        Self::handshake_on(stream, addr, role, key, timeout, deadline)
    }

    /// As [`Client::connect`], from source address `local` (a CN binds
    /// from the address it claims; tests speak as several CNs).
    pub fn connect_from(
        local: std::net::Ipv4Addr,
        addr: std::net::SocketAddrV4,
        role: Role,
        key: Option<&NetworkKey>,
        timeout: Duration,
    ) -> Result<Client, ClientError> {
        let deadline = Instant::now() + timeout;
        let stream = tcp_connect_from(local, addr, timeout)?;
        Self::handshake_on(stream, SocketAddr::V4(addr), role, key, timeout, deadline)
    }

    fn handshake_on(
        stream: TcpStream,
        addr: SocketAddr,
        role: Role,
        key: Option<&NetworkKey>,
        timeout: Duration,
        deadline: Instant,
    ) -> Result<Client, ClientError> {
        // Requests and replies are small and latency-bound.
        stream.set_nodelay(true)?;
        let mut session = Session::new(role, key, random_nonce()?);
        session.set_label(addr.to_string());
        let mut c = Client {
            stream,
            session,
            timeout,
            out: Vec::with_capacity(256),
            buf: vec![0u8; 16384],
            peer: Hello {
                version: 0,
                role,
                nonce: [0; 16],
                software: String::new(),
            },
            replies: VecDeque::new(),
            requests: VecDeque::new(),
        };
        c.session.handshake(&mut c.out);
        c.flush(deadline)?;
        while !c.session.is_established() {
            c.read_some(deadline)?;
        }
        Ok(c)
    }

    /// The peer's Hello.
    pub fn peer(&self) -> &Hello {
        &self.peer
    }
    pub fn session(&self) -> &Session {
        &self.session
    }
    pub fn set_timeout(&mut self, timeout: Duration) {
        self.timeout = timeout;
    }
    /// Stamp `epoch` on every frame from now on (a tool sends 0, the
    /// default; tests speak as CNs that saw a register's epoch).
    pub fn set_epoch(&mut self, epoch: u32) {
        self.session.set_epoch(epoch);
    }
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        self.stream.peer_addr()
    }

    /// Send a request and wait for its reply. An `Error` reply is returned
    /// as `Ok(Message::Error(..))`: the connection is fine, the answer is no.
    pub fn call(&mut self, msg: &Message) -> Result<Message, ClientError> {
        let id = self.send(msg)?;
        self.wait_reply(id)
    }

    /// Send a request without waiting (pipelining); collect its reply with
    /// [`Client::wait_reply`] or [`Client::recv_reply`].
    pub fn send(&mut self, msg: &Message) -> Result<RequestId, ClientError> {
        let id = self.session.request(msg, &mut self.out)?;
        self.flush(Instant::now() + self.timeout)?;
        Ok(id)
    }

    /// Wait for the reply to request `id`.
    pub fn wait_reply(&mut self, id: RequestId) -> Result<Message, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(i) = self.replies.iter().position(|(rid, _)| *rid == id) {
                let (_, r) = self.replies.remove(i).ok_or(ClientError::Timeout)?;
                return r.map_err(ClientError::Protocol);
            }
            self.read_some(deadline)?;
        }
    }

    /// Wait for the next reply to any of our requests.
    pub fn recv_reply(&mut self) -> Result<(RequestId, Message), ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some((id, r)) = self.replies.pop_front() {
                return r.map(|m| (id, m)).map_err(ClientError::Protocol);
            }
            self.read_some(deadline)?;
        }
    }

    /// The next request the peer sent us; waits up to the timeout for one
    /// when `wait`, else returns `Ok(None)` if none is queued.
    pub fn next_request(
        &mut self,
        wait: bool,
    ) -> Result<Option<(RequestId, Message)>, ClientError> {
        let deadline = Instant::now() + self.timeout;
        loop {
            if let Some(r) = self.requests.pop_front() {
                return Ok(Some(r));
            }
            if !wait {
                return Ok(None);
            }
            self.read_some(deadline)?;
        }
    }

    /// Answer a request the peer sent us.
    pub fn reply(&mut self, id: RequestId, msg: &Message) -> Result<(), ClientError> {
        self.session.reply(id, msg, &mut self.out)?;
        self.flush(Instant::now() + self.timeout)
    }

    fn flush(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let mut sent = 0;
        while sent < self.out.len() {
            let left = remaining(deadline)?;
            self.stream.set_write_timeout(Some(left))?;
            match self.stream.write(&self.out[sent..]) {
                Ok(0) => return Err(ClientError::Disconnected),
                Ok(n) => sent += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.out.clear();
        Ok(())
    }

    /// One read, then everything the session can make of it.
    fn read_some(&mut self, deadline: Instant) -> Result<(), ClientError> {
        let left = remaining(deadline)?;
        self.stream.set_read_timeout(Some(left))?;
        let n = match self.stream.read(&mut self.buf) {
            Ok(0) => return Err(ClientError::Disconnected),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return Ok(()),
            Err(e) => return Err(e.into()),
        };
        self.session.feed(&self.buf[..n]);
        let mut fatal = None;
        while let Some(ev) = self.session.poll(&mut self.out) {
            match ev {
                Ok(Incoming::Established { peer }) => self.peer = peer,
                Ok(Incoming::Request { id, msg }) => self.requests.push_back((id, msg)),
                Ok(Incoming::Reply { id, msg }) => self.replies.push_back((id, Ok(msg))),
                Err(e @ MlrpError::BadReply { id, .. }) => self.replies.push_back((id, Err(e))),
                Err(e) if e.is_fatal() => {
                    log::warn!(target: "mlrp", "{}: {}", self.stream.peer_addr().map(|a| a.to_string()).unwrap_or_default(), e);
                    fatal = Some(e);
                }
                Err(e) => log::warn!(target: "mlrp", "{e}"),
            }
        }
        // Error replies and closing notices the session produced.
        let flushed = self.flush(deadline);
        match fatal {
            Some(e) => Err(ClientError::Protocol(e)),
            None => flushed,
        }
    }
}

fn remaining(deadline: Instant) -> Result<Duration, ClientError> {
    let now = Instant::now();
    if now >= deadline {
        return Err(ClientError::Timeout);
    }
    // A zero timeout means "block forever" to std: never pass one.
    Ok((deadline - now).max(Duration::from_millis(1)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Cell30, MacAddr};
    use crate::mlrp::CnRef;
    use crate::mlrp::{ErrorCode, Locate, Redirect};
    use std::net::{Ipv4Addr, TcpListener};
    use std::thread;

    /// A one-connection MLR stand-in on an ephemeral loopback port: answers
    /// Ping with Pong, anything else with NotFound, and pushes one Redirect
    /// to the client after the first Ping, expecting an Ack.
    fn serve(key: Option<NetworkKey>) -> (SocketAddr, thread::JoinHandle<Vec<String>>) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let h = thread::spawn(move || {
            let mut log = Vec::new();
            let (mut s, _) = l.accept().unwrap();
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut sess = Session::new(Role::Mlr, key.as_ref(), random_nonce().unwrap());
            let mut out = Vec::new();
            sess.handshake(&mut out);
            let mut buf = [0u8; 4096];
            let mut pushed = false;
            loop {
                s.write_all(&out).unwrap();
                out.clear();
                let n = match s.read(&mut buf) {
                    Ok(0) | Err(_) => return log,
                    Ok(n) => n,
                };
                sess.feed(&buf[..n]);
                while let Some(ev) = sess.poll(&mut out) {
                    match ev {
                        Ok(Incoming::Request {
                            id,
                            msg: Message::Ping { nonce },
                        }) => {
                            sess.reply(id, &Message::Pong { nonce }, &mut out).unwrap();
                            if !pushed {
                                pushed = true;
                                sess.request(&redirect(), &mut out).unwrap();
                            }
                        }
                        Ok(Incoming::Request { id, .. }) => {
                            let e = Message::error(ErrorCode::NotFound, "no such station");
                            sess.reply(id, &e, &mut out).unwrap();
                        }
                        Ok(other) => log.push(other.to_string()),
                        Err(e) => {
                            log.push(e.to_string());
                            if e.is_fatal() {
                                let _ = s.write_all(&out);
                                return log;
                            }
                        }
                    }
                }
            }
        });
        (addr, h)
    }

    fn redirect() -> Message {
        Message::Redirect(Redirect {
            mac: MacAddr([2, 0, 0, 0, 0, 1]),
            cell: Cell30::containing(Ipv4Addr::new(10, 1, 0, 4)),
            to: CnRef::new(Ipv4Addr::new(10, 0, 0, 2), 5554),
        })
    }

    #[test]
    fn client_calls_and_answers_pushed_requests_over_loopback() {
        let key = NetworkKey::derive(b"s", "net");
        let (addr, server) = serve(Some(key.clone()));
        let mut c = Client::connect(addr, Role::Cn, Some(&key), Duration::from_secs(5)).unwrap();
        assert_eq!(c.peer().role, Role::Mlr);
        assert!(c.session().auth_enabled());
        assert_eq!(
            c.call(&Message::Ping { nonce: 77 }).unwrap(),
            Message::Pong { nonce: 77 }
        );
        let (id, msg) = c.next_request(true).unwrap().unwrap();
        assert_eq!(msg, redirect());
        c.reply(id, &Message::Ack).unwrap();
        match c
            .call(&Message::Locate(Locate::ByIp(Ipv4Addr::new(10, 9, 9, 9))))
            .unwrap()
        {
            Message::Error(e) => assert_eq!(e.code, ErrorCode::NotFound),
            other => panic!("{other}"),
        }
        // Pipelined requests come back matched to their ids.
        let ids: Vec<_> = (0..10)
            .map(|n| c.send(&Message::Ping { nonce: n }).unwrap())
            .collect();
        for (n, id) in ids.iter().enumerate().rev() {
            assert_eq!(
                c.wait_reply(*id).unwrap(),
                Message::Pong { nonce: n as u64 }
            );
        }
        drop(c);
        let log = server.join().unwrap();
        assert!(log.iter().any(|l| l.contains("Ack")), "{log:?}");
    }

    #[test]
    fn wrong_secret_is_reported_not_hung() {
        let (addr, server) = serve(Some(NetworkKey::derive(b"right", "net")));
        let bad = NetworkKey::derive(b"wrong", "net");
        match Client::connect(addr, Role::Tool, Some(&bad), Duration::from_secs(5)) {
            Err(ClientError::Protocol(e)) => assert!(
                matches!(&e, MlrpError::BadMac)
                    || matches!(&e, MlrpError::PeerClosed(r) if r.code == ErrorCode::Unauthorized),
                "{e}"
            ),
            other => panic!("{other:?}"),
        }
        let log = server.join().unwrap();
        assert!(log.iter().any(|l| l.contains("HMAC")), "{log:?}");
    }

    #[test]
    fn silent_peer_times_out() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let t0 = Instant::now();
        match Client::connect(addr, Role::Tool, None, Duration::from_millis(200)) {
            Err(ClientError::Timeout) => {}
            other => panic!("{other:?}"),
        }
        assert!(t0.elapsed() < Duration::from_secs(3));
        drop(l);
    }
}
