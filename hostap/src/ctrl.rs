//! Client of hostapd's control interface, built for a single poll loop.
//!
//! hostapd listens on a unix `SOCK_DGRAM` socket `/var/run/hostapd/<ifname>`.
//! Like wpa_ctrl we bind our own datagram socket to a unique path
//! (`<dir>/wpa_ctrl_<pid>-<n>`, removed on drop), connect it to hostapd's,
//! send `ATTACH` (reply `OK\n`) and from then on receive one datagram per
//! event. Replies carry no `<N>` prefix, events do, so both can share the
//! socket without confusion.
//!
//! Nothing here blocks except [`HostapdCtrl::request`] (for start-up and
//! tests). The daemon registers [`HostapdCtrl::fd`] for reading, calls
//! [`HostapdCtrl::drain`] when it is readable, and calls
//! [`HostapdCtrl::tick`] from a periodic timer (every few seconds):
//! `tick` attaches when hostapd appears, PINGs while attached, and when
//! hostapd's socket is gone (stopped, restarted) or PINGs went unanswered
//! for [`MISSED_PINGS`] periods (hung) it reconnects and re-attaches. One
//! late PONG is not a hang: on a loaded machine (the radio lab's emulated
//! guest) an answer can miss a period, and a needless re-attach loses the
//! events sent meanwhile. The fd never changes: a datagram
//! socket can be re-connected, so re-attaching needs no re-registration.
//!
//! Drain promptly: hostapd drops a monitor after repeated send failures
//! (hostapd/ctrl_iface.c), which `tick` would then notice and repair.

use crate::event::{format_mac, parse_event_bytes, parse_mac, StationEvent};
use core::fmt;
use std::collections::VecDeque;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

/// Where hostapd puts its per-interface sockets on OpenWrt (hostapd.sh).
pub const DEFAULT_CTRL_DIR: &str = "/var/run/hostapd";
/// Where our own end is bound, as wpa_ctrl does.
pub const DEFAULT_LOCAL_DIR: &str = "/tmp";

/// hostapd's replies and events fit in 4 KiB (wpa_ctrl uses 4096 too).
const RECV_BUF: usize = 4096;
/// Periods without a PONG after which hostapd counts as hung.
pub const MISSED_PINGS: u8 = 3;
/// sun_path is 108 bytes including the NUL.
const SUN_PATH_MAX: usize = 107;

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Errors of the control-interface client.
#[derive(Debug)]
pub enum CtrlError {
    /// Our local socket could not be bound at `path`.
    Bind(PathBuf, io::Error),
    /// A socket path longer than a unix address can hold.
    PathTooLong(PathBuf),
    /// hostapd's socket at `path` could not be reached.
    Connect(PathBuf, io::Error),
    /// Sending or receiving `what` failed.
    Io(&'static str, io::Error),
    /// No reply to `cmd` within the timeout.
    Timeout(String),
    /// hostapd answered `cmd` with something unexpected.
    Refused(String, String),
}

impl fmt::Display for CtrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CtrlError::Bind(p, e) => write!(f, "hostapd control: cannot bind {}: {e}", p.display()),
            CtrlError::PathTooLong(p) => {
                write!(f, "hostapd control: socket path too long: {}", p.display())
            }
            CtrlError::Connect(p, e) => {
                write!(f, "hostapd control: cannot reach {}: {e}", p.display())
            }
            CtrlError::Io(what, e) => write!(f, "hostapd control: {what}: {e}"),
            CtrlError::Timeout(c) => write!(f, "hostapd control: no reply to {c}"),
            CtrlError::Refused(c, r) => {
                write!(f, "hostapd control: {c} answered {:?}", r.trim_end())
            }
        }
    }
}

impl std::error::Error for CtrlError {}

/// Where we are with hostapd.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LinkState {
    /// Not connected (hostapd absent, or it went away).
    Down,
    /// `ATTACH` sent, waiting for `OK`.
    Attaching,
    /// Receiving events.
    Attached,
}

/// A monitor connection to one hostapd control socket.
pub struct HostapdCtrl {
    sock: UnixDatagram,
    local: PathBuf,
    server: PathBuf,
    state: LinkState,
    /// A PING was sent at the last tick and no PONG came back yet.
    ping_outstanding: bool,
    /// Ticks in a row that found a PING unanswered.
    missed: u8,
    /// Datagrams read by a blocking `request` that belong to `drain`.
    pending: VecDeque<Vec<u8>>,
    /// A STA-FIRST/STA-NEXT walk is in progress (see [`HostapdCtrl::resync`]).
    listing: bool,
}

impl HostapdCtrl {
    /// Bind a fresh local socket in `local_dir` for talking to the hostapd
    /// socket at `server`. Does not contact hostapd: call [`tick`] (or
    /// [`attach_blocking`]) next. Fails only if the local socket cannot be made.
    ///
    /// [`tick`]: HostapdCtrl::tick
    /// [`attach_blocking`]: HostapdCtrl::attach_blocking
    pub fn new(server: impl Into<PathBuf>, local_dir: impl AsRef<Path>) -> Result<Self, CtrlError> {
        let server = server.into();
        if server.as_os_str().len() > SUN_PATH_MAX {
            return Err(CtrlError::PathTooLong(server));
        }
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let local = local_dir
            .as_ref()
            .join(format!("wpa_ctrl_{}-{}", std::process::id(), n));
        if local.as_os_str().len() > SUN_PATH_MAX {
            return Err(CtrlError::PathTooLong(local));
        }
        let sock = match UnixDatagram::bind(&local) {
            Ok(s) => s,
            Err(e) if e.kind() == io::ErrorKind::AddrInUse => {
                // Left behind by an earlier process that had our pid.
                let _ = std::fs::remove_file(&local);
                UnixDatagram::bind(&local).map_err(|e| CtrlError::Bind(local.clone(), e))?
            }
            Err(e) => return Err(CtrlError::Bind(local, e)),
        };
        let ctrl = HostapdCtrl {
            sock,
            local,
            server,
            state: LinkState::Down,
            ping_outstanding: false,
            missed: 0,
            pending: VecDeque::new(),
            listing: false,
        };
        ctrl.sock
            .set_nonblocking(true)
            .map_err(|e| CtrlError::Io("set non-blocking", e))?;
        Ok(ctrl)
    }

    /// The client for interface `ifname` at OpenWrt's default paths.
    pub fn for_interface(ifname: &str) -> Result<Self, CtrlError> {
        Self::new(Path::new(DEFAULT_CTRL_DIR).join(ifname), DEFAULT_LOCAL_DIR)
    }

    /// The fd to register for reading; stable for the life of this value.
    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn state(&self) -> LinkState {
        self.state
    }

    /// hostapd's socket path.
    pub fn server_path(&self) -> &Path {
        &self.server
    }

    /// Our bound socket path (removed on drop).
    pub fn local_path(&self) -> &Path {
        &self.local
    }

    /// Periodic upkeep, from the daemon's timer (every 1-5 s):
    /// attach when down, PING when attached, and when the previous PING (or
    /// ATTACH) got no answer for a whole period, reconnect and re-attach.
    /// Returns the state after the tick.
    pub fn tick(&mut self) -> LinkState {
        match self.state {
            LinkState::Attached => {
                if self.ping_outstanding {
                    self.missed += 1;
                }
                if self.missed >= MISSED_PINGS {
                    log::warn!(target: "hostap", "hostapd at {} stopped answering; re-attaching", self.server.display());
                    self.state = LinkState::Down;
                } else if self.send_cmd("PING") {
                    self.ping_outstanding = true;
                    return self.state;
                }
                // Else the send failed: hostapd's socket is gone; re-attach.
            }
            LinkState::Attaching | LinkState::Down => {}
        }
        self.start_attach();
        self.state
    }

    /// (Re)connect to hostapd's path and send ATTACH; the OK arrives in `drain`.
    fn start_attach(&mut self) {
        self.ping_outstanding = false;
        self.missed = 0;
        self.listing = false;
        // Re-resolve the path every time: a restarted hostapd has a new socket.
        match self.sock.connect(&self.server) {
            Ok(()) => {
                if self.send_cmd("ATTACH") {
                    self.state = LinkState::Attaching;
                }
            }
            Err(e) => {
                if self.state != LinkState::Down {
                    log::warn!(target: "hostap", "hostapd at {}: {e}", self.server.display());
                }
                log::trace!(target: "hostap", "hostapd at {} not reachable: {e}", self.server.display());
                self.state = LinkState::Down;
            }
        }
    }

    /// Send a command without waiting; false (and state Down) if hostapd is gone.
    fn send_cmd(&mut self, cmd: &str) -> bool {
        match self.sock.send(cmd.as_bytes()) {
            Ok(_) => true,
            // hostapd's receive queue is full: it is busy, not gone.
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => true,
            Err(e) => {
                log::debug!(target: "hostap", "hostapd at {}: {cmd}: {e}", self.server.display());
                self.state = LinkState::Down;
                false
            }
        }
    }

    /// Read everything waiting on the socket (never blocks). Station events
    /// go to `on_event`; replies (OK, PONG) update the link state; malformed
    /// events are logged and skipped.
    pub fn drain(&mut self, mut on_event: impl FnMut(StationEvent)) {
        while let Some(msg) = self.pending.pop_front() {
            self.handle(&msg, &mut on_event);
        }
        let mut buf = [0u8; RECV_BUF];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = buf.get(..n).unwrap_or(&[]);
                    self.handle(msg, &mut on_event);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // ECONNREFUSED: hostapd's socket went away under us.
                    log::debug!(target: "hostap", "hostapd at {}: recv: {e}", self.server.display());
                    self.state = LinkState::Down;
                    break;
                }
            }
        }
    }

    fn handle(&mut self, msg: &[u8], on_event: &mut impl FnMut(StationEvent)) {
        if msg.first() == Some(&b'<') || msg.starts_with(b"IFNAME=") {
            match parse_event_bytes(msg) {
                Ok(Some(ev)) => {
                    log::debug!(target: "hostap", "{ev}");
                    on_event(ev)
                }
                Ok(None) => {
                    log::trace!(target: "hostap", "ignored {:?}", String::from_utf8_lossy(msg))
                }
                Err(e) => log::warn!(target: "hostap", "{e}"),
            }
            return;
        }
        match (msg, self.state) {
            (b"OK\n", LinkState::Attaching) => {
                log::info!(target: "hostap", "attached to hostapd at {}", self.server.display());
                self.state = LinkState::Attached;
                // Events sent while we were not attached are lost: ask for
                // the stations hostapd already has.
                self.resync();
            }
            (b"PONG\n", _) => {
                self.ping_outstanding = false;
                self.missed = 0;
            }
            (b"FAIL\n", LinkState::Attaching) => {
                log::warn!(target: "hostap", "hostapd at {} refused ATTACH", self.server.display());
                self.state = LinkState::Down;
            }
            _ if self.listing => self.handle_sta_entry(msg, on_event),
            _ => {
                log::trace!(target: "hostap", "unexpected reply {:?}", String::from_utf8_lossy(msg))
            }
        }
    }

    /// Walk hostapd's station table (STA-FIRST, then `STA-NEXT <mac>`, without
    /// blocking): every authorized station is reported through `drain` as
    /// `Connected`, so the CN catches up on what it missed while it was not
    /// attached. Done automatically after each attach made by `tick`; call it
    /// after [`attach_blocking`](HostapdCtrl::attach_blocking) if wanted.
    /// Do not mix with [`request`](HostapdCtrl::request) while it runs.
    pub fn resync(&mut self) {
        if self.send_cmd("STA-FIRST") {
            self.listing = true;
        }
    }

    /// One STA-FIRST/STA-NEXT reply: `<mac>\nflags=[..]\nkey=value...`;
    /// an empty reply or FAIL ends the walk.
    fn handle_sta_entry(&mut self, msg: &[u8], on_event: &mut impl FnMut(StationEvent)) {
        let text = String::from_utf8_lossy(msg);
        let mut lines = text.lines();
        let Some(mac) = lines.next().and_then(parse_mac) else {
            self.listing = false;
            return;
        };
        let mut authorized = false;
        let mut vlan = None;
        for l in lines {
            if let Some(f) = l.strip_prefix("flags=") {
                authorized = f.contains("[AUTHORIZED]");
            } else if let Some(v) = l.strip_prefix("vlan_id=") {
                vlan = v.parse::<u16>().ok().filter(|&n| n > 0 && n <= 4094);
            }
        }
        if authorized {
            let ev = StationEvent::Connected { mac, vlan };
            log::debug!(target: "hostap", "resync: {ev}");
            on_event(ev);
        }
        if !self.send_cmd(&format!("STA-NEXT {}", format_mac(&mac))) {
            self.listing = false;
        }
    }

    /// Send `cmd` and wait up to `timeout` for its reply (blocking; for
    /// start-up, tools and tests). Events read meanwhile are kept for the
    /// next [`drain`](HostapdCtrl::drain): call it after this returns.
    pub fn request(&mut self, cmd: &str, timeout: Duration) -> Result<String, CtrlError> {
        if self.state == LinkState::Down {
            self.sock
                .connect(&self.server)
                .map_err(|e| CtrlError::Connect(self.server.clone(), e))?;
        }
        match self.sock.send(cmd.as_bytes()) {
            Ok(_) => {}
            Err(e) => {
                self.state = LinkState::Down;
                return Err(CtrlError::Io("send", e));
            }
        }
        let deadline = Instant::now() + timeout;
        let mut buf = [0u8; RECV_BUF];
        loop {
            match self.sock.recv(&mut buf) {
                Ok(n) => {
                    let msg = buf.get(..n).unwrap_or(&[]);
                    if msg.first() == Some(&b'<') || msg.starts_with(b"IFNAME=") {
                        self.pending.push_back(msg.to_vec());
                        continue;
                    }
                    return Ok(String::from_utf8_lossy(msg).into_owned());
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CtrlError::Timeout(cmd.to_string()));
                    }
                    wait_readable(self.sock.as_fd(), deadline - now)
                        .map_err(|e| CtrlError::Io("poll", e))?;
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => {
                    self.state = LinkState::Down;
                    return Err(CtrlError::Io("recv", e));
                }
            }
        }
    }

    /// Connect and ATTACH now, waiting up to `timeout` for hostapd's OK.
    pub fn attach_blocking(&mut self, timeout: Duration) -> Result<(), CtrlError> {
        self.sock
            .connect(&self.server)
            .map_err(|e| CtrlError::Connect(self.server.clone(), e))?;
        self.state = LinkState::Attaching;
        let reply = self.request("ATTACH", timeout)?;
        if reply == "OK\n" {
            self.state = LinkState::Attached;
            self.ping_outstanding = false;
            log::info!(target: "hostap", "attached to hostapd at {}", self.server.display());
            Ok(())
        } else {
            self.state = LinkState::Down;
            Err(CtrlError::Refused("ATTACH".into(), reply))
        }
    }
}

fn wait_readable(fd: BorrowedFd<'_>, timeout: Duration) -> io::Result<()> {
    use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
    let ms = timeout.as_millis().clamp(1, i32::MAX as u128) as i32;
    let mut pfd = [PollFd::new(fd, PollFlags::POLLIN)];
    match poll(
        &mut pfd,
        PollTimeout::try_from(ms).unwrap_or(PollTimeout::MAX),
    ) {
        Ok(_) | Err(nix::errno::Errno::EINTR) => Ok(()),
        Err(e) => Err(e.into()),
    }
}

impl AsFd for HostapdCtrl {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.sock.as_fd()
    }
}

impl Drop for HostapdCtrl {
    fn drop(&mut self) {
        if self.state == LinkState::Attached {
            // Best effort: hostapd would drop us after send errors anyway.
            let _ = self.sock.send(b"DETACH");
        }
        let _ = std::fs::remove_file(&self.local);
    }
}

#[cfg(test)]
mod tests {
    //! Against a fake hostapd (a bound datagram socket in a temp dir); the
    //! real hostapd is exercised in tests/hostapd_wired.rs.
    use super::*;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new() -> TempDir {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            let p = std::env::temp_dir().join(format!("hostap-ut-{}-{n}", std::process::id()));
            std::fs::create_dir_all(&p).expect("temp dir");
            TempDir(p)
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn fake_reply(server: &UnixDatagram, expect: &[u8], reply: &[u8]) {
        let mut buf = [0u8; 64];
        let (n, from) = server.recv_from(&mut buf).expect("fake recv");
        assert_eq!(&buf[..n], expect);
        server
            .send_to(reply, from.as_pathname().expect("client path"))
            .expect("fake send");
    }

    #[test]
    fn attach_ping_events_and_reattach_after_restart() {
        let dir = TempDir::new();
        let spath = dir.0.join("wlan0");
        let mut c = HostapdCtrl::new(&spath, &dir.0).expect("new");
        // hostapd absent: tick stays down, does not block or fail.
        assert_eq!(c.tick(), LinkState::Down);

        let server = UnixDatagram::bind(&spath).expect("fake hostapd");
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        assert_eq!(c.tick(), LinkState::Attaching);
        fake_reply(&server, b"ATTACH", b"OK\n");
        std::thread::sleep(Duration::from_millis(20));
        let mut evs = Vec::new();
        c.drain(|e| evs.push(e));
        assert_eq!(c.state(), LinkState::Attached);
        // Resync walk: one authorized station (vlan 5), one not, then the end.
        fake_reply(
            &server,
            b"STA-FIRST",
            b"02:00:00:00:00:0a\nflags=[AUTH][ASSOC][AUTHORIZED]\naid=1\nvlan_id=5\n",
        );
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|e| evs.push(e));
        fake_reply(
            &server,
            b"STA-NEXT 02:00:00:00:00:0a",
            b"02:00:00:00:00:0b\nflags=[AUTH]\n",
        );
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|e| evs.push(e));
        fake_reply(&server, b"STA-NEXT 02:00:00:00:00:0b", b"");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|e| evs.push(e));
        assert_eq!(
            evs,
            vec![StationEvent::Connected {
                mac: [2, 0, 0, 0, 0, 0x0a],
                vlan: Some(5)
            }]
        );
        evs.clear();

        let client = c.local_path().to_path_buf();
        server
            .send_to(b"<3>AP-STA-CONNECTED 02:11:22:33:44:55 vlanid=3", &client)
            .expect("event");
        server
            .send_to(b"<3>AP-STA-CONNECTED garbage", &client)
            .expect("event");
        server
            .send_to(b"<3>AP-STA-DISCONNECTED 02:11:22:33:44:55", &client)
            .expect("event");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|e| evs.push(e));
        let m = [2, 0x11, 0x22, 0x33, 0x44, 0x55];
        assert_eq!(
            evs,
            vec![
                StationEvent::Connected {
                    mac: m,
                    vlan: Some(3)
                },
                StationEvent::Disconnected { mac: m }
            ]
        );

        // PING answered: stays attached.
        assert_eq!(c.tick(), LinkState::Attached);
        fake_reply(&server, b"PING", b"PONG\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});
        assert_eq!(c.tick(), LinkState::Attached);
        // That PING is never answered: hostapd "restarts" at the same path.
        drop(server);
        let _ = std::fs::remove_file(&spath);
        let server = UnixDatagram::bind(&spath).expect("fake hostapd again");
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        assert_eq!(c.tick(), LinkState::Attaching, "re-attach after lost PONG");
        fake_reply(&server, b"ATTACH", b"OK\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});
        assert_eq!(c.state(), LinkState::Attached);
        fake_reply(&server, b"STA-FIRST", b"FAIL\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});

        // The fd never changed and nothing blocks when nothing is waiting.
        let fd = c.fd();
        c.drain(|_| panic!("no event expected"));
        assert_eq!(fd, c.fd());

        let local = c.local_path().to_path_buf();
        assert!(local.exists());
        drop(c);
        assert!(!local.exists(), "local socket removed on drop");
        let mut buf = [0u8; 16];
        let n = server.recv(&mut buf).expect("DETACH on drop");
        assert_eq!(&buf[..n], b"DETACH");
    }

    #[test]
    fn a_late_pong_is_not_a_hang_but_missed_pings_are() {
        let dir = TempDir::new();
        let spath = dir.0.join("wlan0");
        let mut c = HostapdCtrl::new(&spath, &dir.0).expect("new");
        let server = UnixDatagram::bind(&spath).expect("fake hostapd");
        server
            .set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        assert_eq!(c.tick(), LinkState::Attaching);
        fake_reply(&server, b"ATTACH", b"OK\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});
        fake_reply(&server, b"STA-FIRST", b"FAIL\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});
        assert_eq!(c.state(), LinkState::Attached);
        let mut buf = [0u8; 64];
        // A PING answered one period late: still attached.
        assert_eq!(c.tick(), LinkState::Attached);
        assert_eq!(c.tick(), LinkState::Attached);
        fake_reply(&server, b"PING", b"PONG\n");
        std::thread::sleep(Duration::from_millis(20));
        c.drain(|_| {});
        assert_eq!(server.recv(&mut buf).expect("second PING"), 4);
        // hostapd alive but silent: re-attach after MISSED_PINGS periods.
        for _ in 0..MISSED_PINGS {
            assert_eq!(c.tick(), LinkState::Attached);
            assert_eq!(server.recv(&mut buf).expect("PING"), 4);
        }
        assert_eq!(c.tick(), LinkState::Attaching, "hung hostapd");
        let n = server.recv(&mut buf).expect("ATTACH");
        assert_eq!(&buf[..n], b"ATTACH");
    }

    #[test]
    fn request_keeps_events_for_drain() {
        let dir = TempDir::new();
        let spath = dir.0.join("wlan1");
        let server = UnixDatagram::bind(&spath).expect("fake hostapd");
        let mut c = HostapdCtrl::new(&spath, &dir.0).expect("new");
        let t = std::thread::spawn(move || {
            let mut buf = [0u8; 64];
            let (n, from) = server.recv_from(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"ATTACH");
            let p = from.as_pathname().expect("path").to_path_buf();
            server.send_to(b"OK\n", &p).expect("send");
            let (n, _) = server.recv_from(&mut buf).expect("recv");
            assert_eq!(&buf[..n], b"PING");
            server
                .send_to(b"<3>AP-STA-DISCONNECTED 02:00:00:00:00:01", &p)
                .expect("send");
            server.send_to(b"PONG\n", &p).expect("send");
        });
        c.attach_blocking(Duration::from_secs(2)).expect("attach");
        assert_eq!(
            c.request("PING", Duration::from_secs(2)).expect("ping"),
            "PONG\n"
        );
        t.join().expect("fake thread");
        let mut evs = Vec::new();
        c.drain(|e| evs.push(e));
        assert_eq!(
            evs,
            vec![StationEvent::Disconnected {
                mac: [2, 0, 0, 0, 0, 1]
            }]
        );
    }

    #[test]
    fn absent_hostapd_is_an_error_not_a_hang() {
        let dir = TempDir::new();
        let mut c = HostapdCtrl::new(dir.0.join("nope"), &dir.0).expect("new");
        assert!(matches!(
            c.attach_blocking(Duration::from_millis(100)),
            Err(CtrlError::Connect(..))
        ));
        let long = "x".repeat(200);
        assert!(matches!(
            HostapdCtrl::new(dir.0.join(long), &dir.0),
            Err(CtrlError::PathTooLong(_))
        ));
    }
}
