//! Traffic tools for the mobility tests, the demo and the handover
//! benchmark, running real kernel TCP/UDP between namespaces.
//!
//! The sockets are opened by threads that have entered the namespace with
//! setns(2) ([`in_netns`]); a socket keeps its namespace afterwards, so one
//! test process drives both ends without helper processes.
//!
//! - [`TcpCheck`]: one TCP connection MS <-> srv streaming in BOTH
//!   directions at a steady rate, with a deterministic counter payload
//!   verified byte by byte on receipt. Reports per window: bytes received,
//!   the largest gap between receipts (the interruption), whether it is still
//!   the same connection (same 4-tuple, no error, no second accept), and
//!   bytes lost (sent before the window but not delivered by its end, plus
//!   any byte that failed verification).
//! - [`ProbeStream`]: sequence-numbered UDP probes every 1 ms in each
//!   direction MS -> srv and srv -> MS; per move the largest receive gap and
//!   the probes lost; [`percentiles`] for the benchmark.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsRawFd;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use crate::ns::in_netns;

/// The byte at stream offset `i` of direction `dir` (0 = MS->srv,
/// 1 = srv->MS): a little-endian u64 counter of `i / 8`, xored with the
/// direction so the two streams differ. Any lost, duplicated or reordered
/// byte breaks the sequence.
pub fn pattern(dir: u8, i: u64) -> u8 {
    (((i / 8) >> (8 * (i % 8))) as u8) ^ (0x5a ^ dir)
}

/// Fill `buf` with the pattern from offset `off`.
pub fn fill(dir: u8, off: u64, buf: &mut [u8]) {
    for (k, b) in buf.iter_mut().enumerate() {
        *b = pattern(dir, off + k as u64);
    }
}

/// Verify `buf` received at offset `off`; Err(first bad offset).
pub fn verify(dir: u8, off: u64, buf: &[u8]) -> Result<(), u64> {
    for (k, b) in buf.iter().enumerate() {
        if *b != pattern(dir, off + k as u64) {
            return Err(off + k as u64);
        }
    }
    Ok(())
}

/// One direction of the TCP check.
#[derive(Default)]
pub struct Direction {
    pub sent: AtomicU64,
    pub received: AtomicU64,
    /// Time of every read that delivered data (for gaps).
    pub receipts: Mutex<Vec<Instant>>,
    /// First verification failure or socket error/EOF.
    pub error: Mutex<Option<String>>,
    pub mismatched: AtomicU64,
}

impl Direction {
    fn fail(&self, msg: String) {
        let mut e = self.error.lock().unwrap();
        if e.is_none() {
            *e = Some(msg);
        }
    }
}

/// Figures of one window of the TCP check (e.g. one move).
#[derive(Clone, Debug)]
pub struct TcpWindow {
    /// Bytes received in the window, MS->srv and srv->MS.
    pub up_bytes: u64,
    pub down_bytes: u64,
    /// Largest gap between receipts spanning the window, per direction.
    pub up_gap: Duration,
    pub down_gap: Duration,
    /// Bytes sent before the window started that were not delivered by its
    /// end (both directions), plus bytes that failed verification.
    pub lost: u64,
    pub same_connection: bool,
    pub error: Option<String>,
}

impl TcpWindow {
    pub fn gap(&self) -> Duration {
        self.up_gap.max(self.down_gap)
    }

    /// Nothing lost, the same connection, no verification error.
    pub fn intact(&self) -> bool {
        self.lost == 0 && self.same_connection && self.error.is_none()
    }
}

/// A bidirectional, byte-checked TCP session between two namespaces.
pub struct TcpCheck {
    pub up: Arc<Direction>,   // MS -> srv
    pub down: Arc<Direction>, // srv -> MS
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
    ms_sock: TcpStream,
    srv_sock: TcpStream,
    listener: TcpListener,
    /// (MS local, MS peer) and (srv local, srv peer) at start.
    pub tuple: (SocketAddr, SocketAddr),
    accepts: u64,
    /// Broken on purpose by [`TcpCheck::sabotage_reset`].
    sabotaged: bool,
}

/// A window start mark.
#[derive(Clone, Copy, Debug)]
pub struct Mark {
    pub at: Instant,
    up_sent: u64,
    down_sent: u64,
    up_recv: u64,
    down_recv: u64,
    up_bad: u64,
    down_bad: u64,
}

const CHUNK: usize = 1024;

impl TcpCheck {
    /// The first socket error either direction hit, if any.
    fn first_error(&self) -> Option<String> {
        let up = self.up.error.lock().unwrap().clone();
        up.or_else(|| self.down.error.lock().unwrap().clone())
    }

    /// Listen in `srv_ns` on `srv_ip:port`, connect from `ms_ns`, start the
    /// two writers (one `chunk` per `period` each) and the two verifying
    /// readers.
    pub fn start(
        srv_ns: &str,
        srv_ip: Ipv4Addr,
        port: u16,
        ms_ns: &str,
        period: Duration,
    ) -> Result<TcpCheck, String> {
        let addr = SocketAddrV4::new(srv_ip, port);
        let listener = in_netns(srv_ns, move || TcpListener::bind(addr))
            .map_err(|e| format!("listen {addr} in {srv_ns}: {e}"))?;
        let ms_sock = in_netns(ms_ns, move || {
            TcpStream::connect_timeout(&SocketAddr::V4(addr), Duration::from_secs(5))
        })
        .map_err(|e| format!("connect {addr} from {ms_ns}: {e}"))?;
        let (srv_sock, _) = listener
            .accept()
            .map_err(|e| format!("accept on {addr}: {e}"))?;
        listener.set_nonblocking(true).map_err(|e| e.to_string())?;
        for s in [&ms_sock, &srv_sock] {
            s.set_nodelay(true).map_err(|e| e.to_string())?;
        }
        let tuple = (
            ms_sock.local_addr().map_err(|e| e.to_string())?,
            ms_sock.peer_addr().map_err(|e| e.to_string())?,
        );
        let up = Arc::new(Direction::default());
        let down = Arc::new(Direction::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        let pairs = [
            (0u8, ms_sock.try_clone(), srv_sock.try_clone(), up.clone()),
            (1u8, srv_sock.try_clone(), ms_sock.try_clone(), down.clone()),
        ];
        for (dir, w, r, d) in pairs {
            let w = w.map_err(|e| e.to_string())?;
            let r = r.map_err(|e| e.to_string())?;
            let (stop_w, d_w) = (stop.clone(), d.clone());
            threads.push(std::thread::spawn(move || {
                writer(dir, w, period, stop_w, d_w)
            }));
            let (stop_r, d_r) = (stop.clone(), d.clone());
            threads.push(std::thread::spawn(move || reader(dir, r, stop_r, d_r)));
        }
        Ok(TcpCheck {
            up,
            down,
            stop,
            threads,
            ms_sock,
            srv_sock,
            listener,
            tuple,
            accepts: 1,
            sabotaged: false,
        })
    }

    /// Start a window now.
    pub fn mark(&self) -> Mark {
        Mark {
            at: Instant::now(),
            up_sent: self.up.sent.load(Ordering::SeqCst),
            down_sent: self.down.sent.load(Ordering::SeqCst),
            up_recv: self.up.received.load(Ordering::SeqCst),
            down_recv: self.down.received.load(Ordering::SeqCst),
            up_bad: self.up.mismatched.load(Ordering::SeqCst),
            down_bad: self.down.mismatched.load(Ordering::SeqCst),
        }
    }

    /// Is it still the one connection we opened: no error or EOF on either
    /// side, the listener never accepted another, and both ends still see
    /// the 4-tuple of the start.
    pub fn same_connection(&mut self) -> bool {
        while let Ok((_s, _)) = self.listener.accept() {
            self.accepts += 1;
        }
        let ms_now = (
            self.ms_sock.local_addr().ok(),
            self.ms_sock.peer_addr().ok(),
        );
        let srv_now = (
            self.srv_sock.peer_addr().ok(),
            self.srv_sock.local_addr().ok(),
        );
        self.up.error.lock().unwrap().is_none()
            && self.down.error.lock().unwrap().is_none()
            && !self.sabotaged
            && self.accepts == 1
            && ms_now == (Some(self.tuple.0), Some(self.tuple.1))
            && srv_now == (Some(self.tuple.0), Some(self.tuple.1))
    }

    /// Close the window that started at `m`: first wait (up to `settle`
    /// after the mark) until every byte sent before the mark has arrived,
    /// then report.
    pub fn window(&mut self, m: &Mark, settle: Duration) -> TcpWindow {
        let deadline = m.at + settle;
        while Instant::now() < deadline {
            if self.up.received.load(Ordering::SeqCst) >= m.up_sent
                && self.down.received.load(Ordering::SeqCst) >= m.down_sent
                && Instant::now() >= m.at + settle.min(Duration::from_millis(300))
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        let end = Instant::now();
        let up_recv = self.up.received.load(Ordering::SeqCst);
        let down_recv = self.down.received.load(Ordering::SeqCst);
        let bad = (self.up.mismatched.load(Ordering::SeqCst) - m.up_bad)
            + (self.down.mismatched.load(Ordering::SeqCst) - m.down_bad);
        let lost = m.up_sent.saturating_sub(up_recv) + m.down_sent.saturating_sub(down_recv) + bad;
        let error = self.first_error();
        let up_gap = max_gap(&self.up.receipts.lock().unwrap(), m.at, end);
        let down_gap = max_gap(&self.down.receipts.lock().unwrap(), m.at, end);
        TcpWindow {
            up_bytes: up_recv - m.up_recv,
            down_bytes: down_recv - m.down_recv,
            up_gap,
            down_gap,
            lost,
            same_connection: self.same_connection(),
            error,
        }
    }

    /// The window from `m` to `span` after it, however fast the bytes
    /// sent before the mark arrived: a stream that stalls after the mark
    /// and is still stalled at the end shows as a gap reaching the end
    /// ([`TcpCheck::window`] closes as soon as those bytes are in, so an
    /// interruption that starts after the mark may fall outside it).
    pub fn window_over(&mut self, m: &Mark, span: Duration) -> TcpWindow {
        std::thread::sleep((m.at + span).saturating_duration_since(Instant::now()));
        self.window(m, Duration::ZERO)
    }

    /// Test-only sabotage: reset the connection from the server side
    /// (SO_LINGER 0 + shutdown), so the checker must report it broken.
    pub fn sabotage_reset(&mut self) {
        let fd = self.srv_sock.as_raw_fd();
        let lg = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: valid fd and a correctly sized option value.
        unsafe {
            libc::setsockopt(
                fd,
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                &lg as *const _ as *const libc::c_void,
                std::mem::size_of::<libc::linger>() as libc::socklen_t,
            );
        }
        let _ = self.srv_sock.shutdown(std::net::Shutdown::Both);
        self.sabotaged = true;
    }

    /// Test-only sabotage: write bytes that break the pattern into the
    /// MS -> srv stream, so the verifier must report a mismatch. The socket
    /// carries the writer's 200 ms send timeout: a full send buffer is
    /// waited out (up to `wait`), and a garbage that was not written is an
    /// error, not a silent no-op. Returns how many bytes the writer had
    /// sent when the garbage went in (it lies at most a chunk past that).
    pub fn sabotage_inject(&mut self, wait: Duration) -> Result<u64, String> {
        let garbage = [0xff, 0x00, 0xff, 0x00, 0x13];
        let deadline = Instant::now() + wait;
        let mut done = 0;
        while done < garbage.len() {
            match self.ms_sock.write(&garbage[done..]) {
                Ok(0) => return Err("inject: connection closed".into()),
                Ok(n) => done += n,
                Err(e) if transient(&e) && Instant::now() < deadline => {}
                Err(e) => return Err(format!("inject: {e} after {done} of 5 bytes")),
            }
        }
        Ok(self.up.sent.load(Ordering::SeqCst))
    }

    /// Stop the writers, let the readers drain (up to `drain`), stop them
    /// and return the final totals: (up sent, up received, down sent, down
    /// received, errors).
    pub fn finish(mut self, drain: Duration) -> (u64, u64, u64, u64, Option<String>) {
        self.stop.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + drain;
        // Writers exit within one period; then wait for the counters to meet.
        std::thread::sleep(Duration::from_millis(20));
        while Instant::now() < deadline {
            if self.up.received.load(Ordering::SeqCst) >= self.up.sent.load(Ordering::SeqCst)
                && self.down.received.load(Ordering::SeqCst)
                    >= self.down.sent.load(Ordering::SeqCst)
            {
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.ms_sock.shutdown(std::net::Shutdown::Both);
        let _ = self.srv_sock.shutdown(std::net::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
        let err = self.first_error();
        (
            self.up.sent.load(Ordering::SeqCst),
            self.up.received.load(Ordering::SeqCst),
            self.down.sent.load(Ordering::SeqCst),
            self.down.received.load(Ordering::SeqCst),
            err,
        )
    }
}

impl TcpCheck {
    /// [`TcpCheck::finish`] (5 s to drain, x4 in the lab's emulated
    /// guest), print the totals and assert that every byte arrived
    /// verified and neither side saw an error.
    pub fn finish_verified(self, label: &str) {
        let (us, ur, ds, dr, err) = self.finish(crate::time_bound(Duration::from_secs(5)));
        println!("{label} totals: MS->srv {ur}/{us} B, srv->MS {dr}/{ds} B verified");
        assert!(err.is_none(), "{label}: {err:?}");
        assert_eq!((ur, dr), (us, ds), "{label}: every byte delivered");
    }
}

impl Drop for TcpCheck {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = self.ms_sock.shutdown(std::net::Shutdown::Both);
        let _ = self.srv_sock.shutdown(std::net::Shutdown::Both);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

/// A socket timeout (the writers' and readers' 100-200 ms timeouts) or an
/// interrupted call: try again.
fn transient(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::WouldBlock
            | std::io::ErrorKind::TimedOut
            | std::io::ErrorKind::Interrupted
    )
}

fn writer(dir: u8, mut s: TcpStream, period: Duration, stop: Arc<AtomicBool>, d: Arc<Direction>) {
    let mut buf = [0u8; CHUNK];
    let mut off = 0u64;
    let mut next = Instant::now();
    // A send timeout so a stalled connection cannot pin the writer past stop.
    let _ = s.set_write_timeout(Some(Duration::from_millis(200)));
    while !stop.load(Ordering::SeqCst) {
        fill(dir, off, &mut buf);
        let mut done = 0;
        while done < buf.len() && !stop.load(Ordering::SeqCst) {
            match s.write(&buf[done..]) {
                Ok(0) => {
                    d.fail("writer: connection closed".into());
                    return;
                }
                Ok(n) => {
                    done += n;
                    d.sent.fetch_add(n as u64, Ordering::SeqCst);
                }
                Err(e) if transient(&e) => {}
                Err(e) => {
                    if !stop.load(Ordering::SeqCst) {
                        d.fail(format!("writer: {e}"));
                    }
                    return;
                }
            }
        }
        off += done as u64;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else {
            next = now; // steady rate: never burst to catch up
        }
    }
}

fn reader(dir: u8, mut s: TcpStream, stop: Arc<AtomicBool>, d: Arc<Direction>) {
    let mut buf = [0u8; 65536];
    let mut off = 0u64;
    let _ = s.set_read_timeout(Some(Duration::from_millis(100)));
    loop {
        match s.read(&mut buf) {
            Ok(0) => {
                if !stop.load(Ordering::SeqCst) {
                    d.fail("reader: connection closed by peer".into());
                }
                return;
            }
            Ok(n) => {
                let now = Instant::now();
                if let Err(bad) = verify(dir, off, &buf[..n]) {
                    d.mismatched
                        .fetch_add((off + n as u64) - bad, Ordering::SeqCst);
                    d.fail(format!("payload mismatch at stream offset {bad}"));
                    // Resynchronise nothing: every later byte is suspect.
                }
                off += n as u64;
                d.received.fetch_add(n as u64, Ordering::SeqCst);
                d.receipts.lock().unwrap().push(now);
            }
            // A quiet moment is no reason to stop, even once the writers
            // stopped: what they sent may still be on its way (a move's
            // gap). The reader ends when `finish` or drop shuts the socket
            // down (read returns 0). It used to return here once `stop`
            // was set, and bytes that arrived after a 100 ms gap were
            // never read: ubus_events' "undelivered" bytes, which a
            // capture showed acknowledged by the receiving kernel.
            Err(e) if transient(&e) => {}
            Err(e) => {
                if !stop.load(Ordering::SeqCst) {
                    d.fail(format!("reader: {e}"));
                }
                return;
            }
        }
    }
}

/// Largest gap between consecutive receipts that overlaps `[from, to]`:
/// the receipt before `from` counts, and a stream that is still silent at
/// `to` counts as a gap up to `to`.
pub fn max_gap(receipts: &[Instant], from: Instant, to: Instant) -> Duration {
    let start = receipts.partition_point(|t| *t < from);
    let mut prev = if start > 0 { receipts[start - 1] } else { from };
    let mut gap = Duration::ZERO;
    for t in &receipts[start..] {
        if *t > to {
            gap = gap.max(to.saturating_duration_since(prev).min(*t - prev));
            return gap;
        }
        gap = gap.max(*t - prev);
        prev = *t;
    }
    gap.max(to.saturating_duration_since(prev))
}

// ---------------------------------------------------------------- probes

const PROBE_MAGIC: u32 = 0x544d_4950; // "TMIP"

/// One direction of a probe stream: send times by sequence number on the
/// sender, receive (seq, time) on the receiver.
#[derive(Default)]
pub struct ProbeDir {
    pub sent: Mutex<Vec<Instant>>,
    pub recv: Mutex<Vec<(u64, Instant)>>,
}

/// Figures of one move for the probe stream.
#[derive(Clone, Debug)]
pub struct ProbeWindow {
    pub up_gap: Duration,
    pub down_gap: Duration,
    pub up_lost: u64,
    pub down_lost: u64,
}

impl ProbeWindow {
    pub fn gap(&self) -> Duration {
        self.up_gap.max(self.down_gap)
    }
    pub fn lost(&self) -> u64 {
        self.up_lost + self.down_lost
    }
}

/// Sequence-numbered UDP probes every `period` MS -> srv and srv -> MS.
pub struct ProbeStream {
    pub up: Arc<ProbeDir>,
    pub down: Arc<ProbeDir>,
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl ProbeStream {
    pub fn start(
        srv_ns: &str,
        srv_ip: Ipv4Addr,
        ms_ns: &str,
        ms_ip: Ipv4Addr,
        port: u16,
        period: Duration,
    ) -> Result<ProbeStream, String> {
        let srv_addr = SocketAddrV4::new(srv_ip, port);
        let ms_addr = SocketAddrV4::new(ms_ip, port);
        let srv = in_netns(srv_ns, move || -> std::io::Result<UdpSocket> {
            let s = UdpSocket::bind(srv_addr)?;
            s.connect(ms_addr)?;
            Ok(s)
        })
        .map_err(|e| format!("probe socket in {srv_ns}: {e}"))?;
        let ms = in_netns(ms_ns, move || -> std::io::Result<UdpSocket> {
            let s = UdpSocket::bind(ms_addr)?;
            s.connect(srv_addr)?;
            Ok(s)
        })
        .map_err(|e| format!("probe socket in {ms_ns}: {e}"))?;
        let up = Arc::new(ProbeDir::default());
        let down = Arc::new(ProbeDir::default());
        let stop = Arc::new(AtomicBool::new(false));
        let mut threads = Vec::new();
        for (tx, rx, d) in [
            (ms.try_clone(), srv.try_clone(), up.clone()),
            (srv.try_clone(), ms.try_clone(), down.clone()),
        ] {
            let tx = tx.map_err(|e| e.to_string())?;
            let rx = rx.map_err(|e| e.to_string())?;
            let (st, dd) = (stop.clone(), d.clone());
            threads.push(std::thread::spawn(move || probe_sender(tx, period, st, dd)));
            let (st, dd) = (stop.clone(), d.clone());
            threads.push(std::thread::spawn(move || probe_receiver(rx, st, dd)));
        }
        Ok(ProbeStream {
            up,
            down,
            stop,
            threads,
        })
    }

    /// Figures for a move at `at`, looking `window` past it: the largest
    /// receive gap spanning [at, at+window] and the probes sent in
    /// [at - 5 ms, at + window - 50 ms] that never arrived.
    /// Waits until the window is over.
    pub fn window(&self, at: Instant, window: Duration) -> ProbeWindow {
        let end = at + window;
        let now = Instant::now();
        if end > now {
            std::thread::sleep(end - now);
        }
        let (ug, ul) = dir_window(&self.up, at, window);
        let (dg, dl) = dir_window(&self.down, at, window);
        ProbeWindow {
            up_gap: ug,
            down_gap: dg,
            up_lost: ul,
            down_lost: dl,
        }
    }

    /// Total (sent, received) per direction so far.
    pub fn totals(&self) -> ((u64, u64), (u64, u64)) {
        let t = |d: &ProbeDir| {
            (
                d.sent.lock().unwrap().len() as u64,
                d.recv.lock().unwrap().len() as u64,
            )
        };
        (t(&self.up), t(&self.down))
    }

    pub fn stop(mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

impl Drop for ProbeStream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        for t in self.threads.drain(..) {
            let _ = t.join();
        }
    }
}

fn dir_window(d: &ProbeDir, at: Instant, window: Duration) -> (Duration, u64) {
    let end = at + window;
    let recv = d.recv.lock().unwrap();
    let times: Vec<Instant> = recv.iter().map(|(_, t)| *t).collect();
    let gap = max_gap(&times, at, end);
    let sent = d.sent.lock().unwrap();
    let lo = at.checked_sub(Duration::from_millis(5)).unwrap_or(at);
    let hi = end.checked_sub(Duration::from_millis(50)).unwrap_or(at);
    let first = sent.partition_point(|t| *t < lo) as u64;
    let last = sent.partition_point(|t| *t < hi) as u64;
    let mut got = vec![false; (last.saturating_sub(first)) as usize];
    for (seq, _) in recv.iter() {
        if *seq >= first && *seq < last {
            got[(*seq - first) as usize] = true;
        }
    }
    (gap, got.iter().filter(|g| !**g).count() as u64)
}

/// Best effort: run the calling probe thread SCHED_FIFO so that the
/// measuring tool is not what a busy machine delays (the daemons under
/// test keep their normal priority). Ignored where not permitted.
fn realtime_thread() {
    // SAFETY: sched_param is plain old data (musl's has more fields than
    // glibc's); sets the calling thread's policy; p is valid for the call.
    unsafe {
        let mut p: libc::sched_param = std::mem::zeroed();
        p.sched_priority = 10;
        libc::pthread_setschedparam(libc::pthread_self(), libc::SCHED_FIFO, &p);
    }
}

fn probe_sender(s: UdpSocket, period: Duration, stop: Arc<AtomicBool>, d: Arc<ProbeDir>) {
    realtime_thread();
    let mut seq = 0u64;
    let mut next = Instant::now();
    let mut buf = [0u8; 64];
    while !stop.load(Ordering::SeqCst) {
        buf[..4].copy_from_slice(&PROBE_MAGIC.to_be_bytes());
        buf[4..12].copy_from_slice(&seq.to_be_bytes());
        let now = Instant::now();
        // Unreachable routes during a move give ECONNREFUSED/EHOSTUNREACH:
        // the probe counts as sent (and lost) either way.
        let _ = s.send(&buf);
        d.sent.lock().unwrap().push(now);
        seq += 1;
        next += period;
        let now = Instant::now();
        if next > now {
            std::thread::sleep(next - now);
        } else if now - next > Duration::from_millis(20) {
            // Descheduled for long: do not burst, keep the 1 ms spacing.
            next = now;
        }
    }
}

fn probe_receiver(s: UdpSocket, stop: Arc<AtomicBool>, d: Arc<ProbeDir>) {
    realtime_thread();
    let _ = s.set_read_timeout(Some(Duration::from_millis(50)));
    let mut buf = [0u8; 128];
    while !stop.load(Ordering::SeqCst) {
        if let Ok(n) = s.recv(&mut buf) {
            let now = Instant::now();
            if n >= 12 && buf[..4] == PROBE_MAGIC.to_be_bytes() {
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[4..12]);
                d.recv.lock().unwrap().push((u64::from_be_bytes(b), now));
            }
        }
    }
}

/// p50/p95/p99/max (nearest-rank) of `v` in milliseconds.
pub fn percentiles(v: &[Duration]) -> (f64, f64, f64, f64) {
    if v.is_empty() {
        return (0.0, 0.0, 0.0, 0.0);
    }
    let mut ms: Vec<f64> = v.iter().map(|d| d.as_secs_f64() * 1000.0).collect();
    ms.sort_by(|a, b| a.partial_cmp(b).unwrap_or(std::cmp::Ordering::Equal));
    let rank = |p: f64| {
        let r = ((p / 100.0) * ms.len() as f64).ceil() as usize;
        ms[r.clamp(1, ms.len()) - 1]
    };
    (rank(50.0), rank(95.0), rank(99.0), ms[ms.len() - 1])
}

/// Send one gratuitous ARP request (sender = target = `ip`, from the MAC of
/// `ifname`) out of `ifname` inside namespace `ns`, as a CN does so that a
/// client's gateway entry points at it at once. Used by the stand-in
/// routing only; written here (AF_PACKET) so it does not depend on which
/// `arping` (iputils or Habets) the machine has.
pub fn send_garp(ns: &str, ifname: &str, ip: Ipv4Addr) -> Result<(), String> {
    let ifname = ifname.to_string();
    // sysfs shows the mounting namespace, not the thread's: ask `ip`.
    let out = std::process::Command::new("ip")
        .args(["-n", ns, "-br", "link", "show", "dev", &ifname])
        .output()
        .map_err(|e| format!("ip: {e}"))?;
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let mac_s = text
        .split_whitespace()
        .nth(2)
        .ok_or_else(|| format!("no MAC for {ifname} in {ns}: {text}"))?
        .to_string();
    in_netns(ns, move || -> Result<(), String> {
        let mut mac = [0u8; 6];
        for (k, part) in mac_s.trim().split(':').enumerate().take(6) {
            mac[k] = u8::from_str_radix(part, 16).map_err(|e| e.to_string())?;
        }
        let cname = std::ffi::CString::new(ifname.clone()).map_err(|e| e.to_string())?;
        // SAFETY: plain libc calls with valid arguments; fd closed below.
        unsafe {
            let idx = libc::if_nametoindex(cname.as_ptr());
            if idx == 0 {
                return Err(format!("no interface {ifname}"));
            }
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            if fd < 0 {
                return Err(format!("AF_PACKET: {}", std::io::Error::last_os_error()));
            }
            let mut frame = [0u8; 42];
            frame[0..6].copy_from_slice(&[0xff; 6]);
            frame[6..12].copy_from_slice(&mac);
            frame[12..14].copy_from_slice(&0x0806u16.to_be_bytes());
            frame[14..22].copy_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]);
            frame[22..28].copy_from_slice(&mac);
            frame[28..32].copy_from_slice(&ip.octets());
            frame[32..38].copy_from_slice(&[0; 6]);
            frame[38..42].copy_from_slice(&ip.octets());
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_protocol = 0x0806u16.to_be();
            sll.sll_ifindex = idx as i32;
            sll.sll_halen = 6;
            sll.sll_addr[..6].copy_from_slice(&[0xff; 6]);
            let n = libc::sendto(
                fd,
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const libc::sockaddr_ll as *const libc::sockaddr,
                std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            );
            let err = std::io::Error::last_os_error();
            libc::close(fd);
            if n != frame.len() as isize {
                return Err(format!("send gratuitous ARP on {ifname}: {err}"));
            }
        }
        Ok(())
    })
}

/// The period of the tests' steady streams: a TCP chunk or a UDP probe
/// every 1 ms each way, stretched in the lab's guest
/// ([`crate::stream_period`]).
pub fn stream_1ms() -> Duration {
    crate::stream_period(Duration::from_millis(1))
}

/// A duration in milliseconds, for the figures tests print.
pub fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

impl crate::bed::TestBed {
    /// A [`TcpCheck`] between client `i` and `srv` on `port` ([`stream_1ms`]),
    /// or a panic with the CNs' state and the logs.
    pub fn client_tcp(&self, i: usize, port: u16) -> TcpCheck {
        let ms_ns = &self.clients[i].ns.name;
        TcpCheck::start(
            &self.srv.name,
            crate::bed::SRV_IP,
            port,
            ms_ns,
            stream_1ms(),
        )
        .unwrap_or_else(|e| panic!("{e}\n{}\n{}", self.cn_state(), self.logs()))
    }

    /// A [`ProbeStream`] ([`stream_1ms`]) between client `i`, which holds
    /// `station`, and `srv` on `port`.
    pub fn client_probes(
        &self,
        i: usize,
        station: Ipv4Addr,
        port: u16,
    ) -> Result<ProbeStream, String> {
        ProbeStream::start(
            &self.srv.name,
            crate::bed::SRV_IP,
            &self.clients[i].ns.name,
            station,
            port,
            stream_1ms(),
        )
    }
}
