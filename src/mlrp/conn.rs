//! The one non-blocking MLRP connection both daemons poll: a TCP stream
//! (connecting or accepted), the bytes queued for it and how far they are
//! written, and when it was last heard. It knows nothing of frames: the
//! bytes it reads go to whoever speaks the protocol (a [`Session`], or the
//! CN's MLR link which owns its session), and whatever they encode is
//! queued with [`Conn::queue`]. mlrd's connections, tmipd's CN-to-CN
//! connections and tmipd's MLR link all use it; `mlrp::Client` is the
//! blocking counterpart for tools.
//!
//! [`Session`]: super::Session

use crate::sys;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::os::fd::{AsFd, AsRawFd, RawFd};
use std::time::Instant;

/// Written bytes are dropped from the front of the queue once this many
/// have accumulated (not on every partial write: that would copy the
/// queue each time).
const COMPACT_AFTER: usize = 64 << 10;

/// What one [`Conn::recv`] got.
#[derive(Debug)]
pub enum Recv {
    /// This many bytes, now in the caller's buffer.
    Data(usize),
    /// Nothing to read now.
    WouldBlock,
    /// The peer closed the connection.
    Closed,
    /// The socket failed.
    Failed(io::Error),
}

pub struct Conn {
    stream: TcpStream,
    peer: SocketAddr,
    out: Vec<u8>,
    /// Bytes of `out` already written.
    sent: usize,
    /// Bytes dropped from the front of `out` so far (for absolute marks).
    drained: u64,
    /// A non-blocking connect is still in progress.
    connecting: bool,
    opened: Instant,
    last_rx: Instant,
}

impl Conn {
    /// Start a non-blocking connect to `to`, from source address `from`
    /// when given (a CN connects to the MLR from the address it binds as:
    /// the MLR checks that they match).
    pub fn connect(to: SocketAddrV4, from: Option<std::net::Ipv4Addr>) -> io::Result<Conn> {
        let fd = sys::socket::open(libc::AF_INET, libc::SOCK_STREAM | libc::SOCK_NONBLOCK, 0)?;
        if let Some(ip) = from {
            sys::socket::bind_v4(fd.as_fd(), SocketAddrV4::new(ip, 0))?;
        }
        let connecting = sys::socket::connect_v4(fd.as_fd(), to)?;
        let stream = TcpStream::from(fd);
        // Requests and replies are small and latency-bound.
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream, SocketAddr::V4(to), connecting))
    }

    /// Wrap an accepted connection.
    pub fn accepted(stream: TcpStream, peer: SocketAddr) -> io::Result<Conn> {
        stream.set_nonblocking(true)?;
        let _ = stream.set_nodelay(true);
        Ok(Conn::new(stream, peer, false))
    }

    fn new(stream: TcpStream, peer: SocketAddr, connecting: bool) -> Conn {
        let now = Instant::now();
        Conn {
            stream,
            peer,
            out: Vec::new(),
            sent: 0,
            drained: 0,
            connecting,
            opened: now,
            last_rx: now,
        }
    }

    pub fn fd(&self) -> RawFd {
        self.stream.as_raw_fd()
    }
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }
    /// When the connection was opened or accepted.
    pub fn opened(&self) -> Instant {
        self.opened
    }
    /// When bytes last arrived (or the connection was opened).
    pub fn last_rx(&self) -> Instant {
        self.last_rx
    }
    pub fn is_connecting(&self) -> bool {
        self.connecting
    }
    /// Bytes queued and not yet written.
    pub fn pending(&self) -> usize {
        self.out.len() - self.sent
    }
    /// Length of the queue including written bytes not yet compacted away,
    /// a mark for [`Conn::truncate`].
    pub fn queued_len(&self) -> usize {
        self.out.len()
    }
    /// Every byte ever queued, counted from the start of the connection:
    /// an absolute mark for [`Conn::flush_upto`] that compaction does not
    /// move.
    pub fn queued_abs(&self) -> u64 {
        self.drained + self.out.len() as u64
    }
    /// The absolute position of queue mark `mark` ([`Conn::queued_len`]).
    pub fn abs(&self, mark: usize) -> u64 {
        self.drained + mark as u64
    }
    /// POLLOUT wanted: a connect to finish or bytes to write.
    pub fn wants_write(&self) -> bool {
        self.connecting || self.pending() > 0
    }

    /// The queue to encode frames into (appended to, never rewritten).
    pub fn queue(&mut self) -> &mut Vec<u8> {
        &mut self.out
    }

    /// Drop queued bytes past `mark` ([`Conn::queued_len`]), never those
    /// already written: replies that must not leave after all.
    pub fn truncate(&mut self, mark: usize) {
        self.out.truncate(mark.max(self.sent));
    }

    /// Drop every unwritten byte (a peer that does not read).
    pub fn discard_unsent(&mut self) {
        self.out.truncate(self.sent);
    }

    /// The socket is writable while connecting: Ok(true) once connected,
    /// Err if the connect failed.
    pub fn finish_connect(&mut self) -> io::Result<bool> {
        if !self.connecting {
            return Ok(true);
        }
        if let Some(e) = self.stream.take_error()? {
            return Err(e);
        }
        // getpeername fails while the connect has not completed.
        match self.stream.peer_addr() {
            Ok(_) => {
                self.connecting = false;
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Write as much of the queue as the socket takes; returns the bytes
    /// written. Nothing is written while connecting.
    pub fn flush(&mut self) -> io::Result<usize> {
        self.flush_upto(u64::MAX)
    }

    /// [`Conn::flush`], but nothing at or past absolute position `limit`
    /// ([`Conn::queued_abs`]): bytes that must wait (replies held until a
    /// backup register has stored what they acknowledge).
    pub fn flush_upto(&mut self, limit: u64) -> io::Result<usize> {
        if self.connecting {
            return Ok(0);
        }
        let end = usize::try_from(limit.saturating_sub(self.drained))
            .unwrap_or(usize::MAX)
            .min(self.out.len());
        let mut written = 0;
        while self.sent < end {
            match self.stream.write(&self.out[self.sent..end]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::WriteZero, "peer closed")),
                Ok(n) => {
                    self.sent += n;
                    written += n;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        if self.sent == self.out.len() {
            self.drained += self.out.len() as u64;
            self.out.clear();
            self.sent = 0;
        } else if self.sent > COMPACT_AFTER {
            self.out.drain(..self.sent);
            self.drained += self.sent as u64;
            self.sent = 0;
        }
        Ok(written)
    }

    /// One read(2) into `buf`.
    pub fn recv(&mut self, buf: &mut [u8]) -> Recv {
        loop {
            return match self.stream.read(buf) {
                Ok(0) => Recv::Closed,
                Ok(n) => {
                    self.last_rx = Instant::now();
                    Recv::Data(n)
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => Recv::WouldBlock,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => Recv::Failed(e),
            };
        }
    }

    /// Read until the socket has nothing more or `budget` bytes came (never
    /// more: a caller may bound an unauthenticated peer to one Hello with
    /// `Session::read_limit`), handing each chunk to `sink`; `Err(why)`
    /// when the connection is gone (the chunks read before are handed over
    /// all the same).
    pub fn read_all(&mut self, budget: usize, mut sink: impl FnMut(&[u8])) -> Result<(), String> {
        let mut buf = [0u8; 8192];
        let mut total = 0;
        while total < budget {
            let want = (budget - total).min(buf.len());
            match self.recv(&mut buf[..want]) {
                Recv::Data(n) => {
                    total += n;
                    sink(&buf[..n]);
                }
                Recv::WouldBlock => break,
                Recv::Closed => return Err("connection closed by peer".into()),
                Recv::Failed(e) => return Err(e.to_string()),
            }
        }
        Ok(())
    }

    /// Best effort: write what is queued once, then drop the connection.
    pub fn close(mut self) {
        let _ = self.flush();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, TcpListener};
    use std::time::Duration;

    fn pair() -> (Conn, TcpStream) {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            panic!()
        };
        let mut c = Conn::connect(addr, None).unwrap();
        let (s, _) = l.accept().unwrap();
        let t0 = Instant::now();
        while !c.finish_connect().unwrap() {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        (c, s)
    }

    #[test]
    fn a_connect_from_an_address_leaves_from_it_and_read_all_keeps_its_budget() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            panic!()
        };
        let from = Ipv4Addr::new(127, 0, 0, 2);
        let mut c = Conn::connect(addr, Some(from)).unwrap();
        let (mut s, seen_from) = l.accept().unwrap();
        assert_eq!(seen_from.ip(), std::net::IpAddr::V4(from));
        let t0 = Instant::now();
        while !c.finish_connect().unwrap() {
            assert!(t0.elapsed() < Duration::from_secs(5));
            std::thread::sleep(Duration::from_millis(1));
        }
        s.write_all(&[7u8; 1000]).unwrap();
        std::thread::sleep(Duration::from_millis(50));
        let mut n = 0;
        c.read_all(141, |b| n += b.len()).unwrap();
        assert_eq!(n, 141, "no more than the budget is read");
    }

    #[test]
    fn queued_bytes_are_written_and_read_bytes_handed_over() {
        let (mut c, mut s) = pair();
        assert_eq!(c.peer().ip(), std::net::IpAddr::V4(Ipv4Addr::LOCALHOST));
        c.queue().extend_from_slice(b"hello");
        assert!(c.wants_write());
        assert_eq!(c.flush().unwrap(), 5);
        assert_eq!(c.pending(), 0);
        let mut got = [0u8; 5];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hello");
        s.write_all(b"world").unwrap();
        let mut seen = Vec::new();
        let t0 = Instant::now();
        while seen.len() < 5 && t0.elapsed() < Duration::from_secs(5) {
            c.read_all(1 << 20, |b| seen.extend_from_slice(b)).unwrap();
        }
        assert_eq!(seen, b"world");
        drop(s);
        let t0 = Instant::now();
        loop {
            if let Err(why) = c.read_all(1 << 20, |_| {}) {
                assert!(why.contains("closed"), "{why}");
                break;
            }
            assert!(t0.elapsed() < Duration::from_secs(5));
        }
    }

    #[test]
    fn truncate_never_drops_written_bytes() {
        let (mut c, _s) = pair();
        c.queue().extend_from_slice(b"abc");
        c.flush().unwrap();
        let mark = c.queued_len();
        c.queue().extend_from_slice(b"def");
        c.truncate(mark);
        assert_eq!(c.pending(), 0);
        c.queue().extend_from_slice(b"ghi");
        c.discard_unsent();
        assert_eq!(c.pending(), 0);
    }

    #[test]
    fn held_bytes_wait_for_their_limit() {
        let (mut c, mut s) = pair();
        c.queue().extend_from_slice(b"free");
        let hold = c.queued_abs();
        c.queue().extend_from_slice(b"held");
        assert_eq!(c.flush_upto(hold).unwrap(), 4);
        assert_eq!(c.pending(), 4);
        let mut got = [0u8; 4];
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"free");
        assert_eq!(c.flush_upto(c.queued_abs()).unwrap(), 4);
        s.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"held");
        assert_eq!(c.queued_abs(), 8, "absolute positions survive the clear");
    }

    #[test]
    fn a_refused_connect_is_an_error() {
        // Bind then drop: nothing listens on the port any more.
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let SocketAddr::V4(addr) = l.local_addr().unwrap() else {
            panic!()
        };
        drop(l);
        let failed = match Conn::connect(addr, None) {
            Err(_) => true,
            Ok(mut c) => {
                let t0 = Instant::now();
                loop {
                    match c.finish_connect() {
                        Err(_) => break true,
                        Ok(true) => break false,
                        Ok(false) => {
                            assert!(t0.elapsed() < Duration::from_secs(5));
                            std::thread::sleep(Duration::from_millis(1));
                        }
                    }
                }
            }
        };
        assert!(failed);
    }
}
