//! One MLRP connection driven by the poll loop: a non-blocking TCP stream,
//! its sans-IO [`Session`], and the bytes waiting to be written. Used for
//! the link to the MLR and for CN-to-CN connections.

use crate::mlrp::{
    random_nonce, ErrorCode, Incoming, Message, MlrpError, NetworkKey, RequestId, Role, Session,
};
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

/// Most bytes a connection may have queued for writing before it is
/// considered stuck and closed (a peer that never reads).
const MAX_QUEUED: usize = 1 << 20;

pub struct MlrpConn {
    stream: TcpStream,
    pub session: Session,
    out: Vec<u8>,
    pub peer: SocketAddr,
    /// A non-blocking connect is still in progress.
    connecting: bool,
    /// When bytes last arrived (or the connection was made).
    pub last_active: std::time::Instant,
    /// When the connection was made (the handshake timeout counts from it).
    pub opened: std::time::Instant,
}

/// What reading a connection produced.
pub struct ReadResult {
    pub events: Vec<Result<Incoming, MlrpError>>,
    /// The peer closed or the socket failed.
    pub closed: Option<String>,
}

fn new_session(key: Option<&NetworkKey>, label: &str) -> io::Result<Session> {
    let nonce = random_nonce()?;
    let mut s = Session::new(Role::Cn, key, nonce);
    s.set_label(label);
    Ok(s)
}

impl MlrpConn {
    /// Start a non-blocking connect to `to`; the handshake is queued.
    pub fn connect(to: SocketAddrV4, key: Option<&NetworkKey>) -> io::Result<MlrpConn> {
        // SAFETY: plain socket(2).
        let fd = unsafe {
            libc::socket(
                libc::AF_INET,
                libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: fd was just opened and is owned from here on.
        let fd = unsafe { OwnedFd::from_raw_fd(fd) };
        let sa = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: to.port().to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from(*to.ip()).to_be(),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: sa is a valid sockaddr_in for the duration of the call.
        let rc = unsafe {
            libc::connect(
                fd.as_raw_fd(),
                (&sa as *const libc::sockaddr_in).cast(),
                std::mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        let connecting = if rc < 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() != Some(libc::EINPROGRESS) {
                return Err(e);
            }
            true
        } else {
            false
        };
        let stream = TcpStream::from(fd);
        let _ = stream.set_nodelay(true);
        let mut session = new_session(key, &to.to_string())?;
        let mut out = Vec::new();
        session.handshake(&mut out);
        Ok(MlrpConn {
            stream,
            session,
            out,
            peer: SocketAddr::V4(to),
            connecting,
            last_active: std::time::Instant::now(),
            opened: std::time::Instant::now(),
        })
    }

    /// Wrap an accepted connection; the handshake is queued.
    pub fn accepted(
        stream: TcpStream,
        peer: SocketAddr,
        key: Option<&NetworkKey>,
    ) -> io::Result<MlrpConn> {
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        let mut session = new_session(key, &peer.to_string())?;
        let mut out = Vec::new();
        session.handshake(&mut out);
        Ok(MlrpConn {
            stream,
            session,
            out,
            peer,
            connecting: false,
            last_active: std::time::Instant::now(),
            opened: std::time::Instant::now(),
        })
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }

    pub fn wants_write(&self) -> bool {
        self.connecting || !self.out.is_empty()
    }

    pub fn is_connecting(&self) -> bool {
        self.connecting
    }

    /// Called when the socket is writable: finish a pending connect (Err
    /// if it failed), then write what is queued.
    pub fn on_writable(&mut self) -> io::Result<()> {
        if self.connecting {
            if let Some(e) = self.stream.take_error()? {
                return Err(e);
            }
            // getpeername fails while the connect has not completed.
            self.stream.peer_addr()?;
            self.connecting = false;
        }
        self.flush()
    }

    /// Write as much of the queue as the socket takes.
    pub fn flush(&mut self) -> io::Result<()> {
        if self.connecting {
            return Ok(());
        }
        while !self.out.is_empty() {
            match self.stream.write(&self.out) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
                Ok(n) => {
                    self.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.out.len() > MAX_QUEUED {
            return Err(io::Error::other("peer does not read"));
        }
        Ok(())
    }

    /// Read everything available and decode it.
    pub fn on_readable(&mut self) -> ReadResult {
        let mut buf = [0u8; 8192];
        let mut closed = None;
        // At most 128 KiB per readiness: a peer that keeps sending must not
        // starve the rest of the loop (poll reports it again).
        for _ in 0..16 {
            // Before the peer's Hello, no more than the largest Hello.
            let want = self.session.read_limit().min(buf.len());
            if want == 0 {
                break;
            }
            match self.stream.read(&mut buf[..want]) {
                Ok(0) => {
                    closed = Some("connection closed by peer".to_string());
                    break;
                }
                Ok(n) => {
                    self.last_active = std::time::Instant::now();
                    self.session.feed(&buf[..n]);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    closed = Some(e.to_string());
                    break;
                }
            }
        }
        let mut events = Vec::new();
        while let Some(ev) = self.session.poll(&mut self.out) {
            let fatal = matches!(&ev, Err(e) if e.is_fatal());
            events.push(ev);
            if fatal {
                closed.get_or_insert_with(|| "protocol error".into());
                break;
            }
        }
        let _ = self.flush();
        ReadResult { events, closed }
    }

    pub fn request(&mut self, msg: &Message) -> Result<RequestId, MlrpError> {
        self.session.request(msg, &mut self.out)
    }

    pub fn reply(&mut self, id: RequestId, msg: &Message) -> Result<(), MlrpError> {
        self.session.reply(id, msg, &mut self.out)
    }

    /// Say why we close, best effort.
    pub fn close(&mut self, code: ErrorCode, text: &str) {
        self.session.close(code, text, &mut self.out);
        let _ = self.flush();
    }
}
