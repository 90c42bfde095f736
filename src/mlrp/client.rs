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
