//! The pieces of a single-threaded poll(2) event loop, in the manner of
//! hostapd's `eloop.c`: a set of registered descriptors, one ordered timer
//! queue, and signals delivered through a signalfd. The daemon owns the loop
//! itself (`loop { wait; dispatch ready tokens; run expired timers }`), so
//! handlers are plain methods and nothing blocks behind the loop's back.

use nix::sys::signal::{SigSet, Signal};
use nix::sys::signalfd::{SfdFlags, SignalFd};
use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashSet};
use std::io;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// What a registered descriptor is for; chosen by the daemon.
pub type Token = usize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Readiness {
    pub readable: bool,
    pub writable: bool,
    /// POLLHUP/POLLERR/POLLNVAL: the peer is gone or the fd is broken.
    pub error: bool,
}

/// The set of descriptors the loop waits on.
#[derive(Default)]
pub struct Poller {
    fds: Vec<libc::pollfd>,
    tokens: Vec<Token>,
}

impl Poller {
    pub fn new() -> Self {
        Self::default()
    }

    /// Watch `fd` for reading (always) and writing (when `writable`).
    /// Registering an fd again replaces its interest and token.
    pub fn register(&mut self, fd: RawFd, token: Token, writable: bool) {
        self.register_interest(fd, token, true, writable);
    }

    /// Watch `fd` for reading only when `readable` (a daemon stops reading
    /// a peer whose replies it cannot send: back-pressure), writing when
    /// `writable`. Hang-ups and errors are reported either way.
    pub fn register_interest(&mut self, fd: RawFd, token: Token, readable: bool, writable: bool) {
        let events =
            if readable { libc::POLLIN } else { 0 } | if writable { libc::POLLOUT } else { 0 };
        if let Some(i) = self.fds.iter().position(|p| p.fd == fd) {
            self.fds[i].events = events;
            self.tokens[i] = token;
        } else {
            self.push(fd, token, events);
        }
    }

    /// Forget every descriptor but keep the buffers, for a loop that builds
    /// its set afresh each round.
    pub fn clear(&mut self) {
        self.fds.clear();
        self.tokens.clear();
    }

    /// Watch `fd` for reading (and writing when `writable`) without looking
    /// for an earlier registration: for a set rebuilt after
    /// [`Poller::clear`], where each fd is added once.
    pub fn add(&mut self, fd: RawFd, token: Token, writable: bool) {
        self.push(
            fd,
            token,
            libc::POLLIN | if writable { libc::POLLOUT } else { 0 },
        );
    }

    fn push(&mut self, fd: RawFd, token: Token, events: libc::c_short) {
        self.fds.push(libc::pollfd {
            fd,
            events,
            revents: 0,
        });
        self.tokens.push(token);
    }

    pub fn deregister(&mut self, fd: RawFd) {
        if let Some(i) = self.fds.iter().position(|p| p.fd == fd) {
            self.fds.swap_remove(i);
            self.tokens.swap_remove(i);
        }
    }

    pub fn len(&self) -> usize {
        self.fds.len()
    }

    pub fn is_empty(&self) -> bool {
        self.fds.is_empty()
    }

    /// Wait up to `timeout` (forever if `None`) and append ready tokens to
    /// `out`. EINTR is not an error: it returns with nothing ready.
    pub fn wait(
        &mut self,
        timeout: Option<Duration>,
        out: &mut Vec<(Token, Readiness)>,
    ) -> io::Result<()> {
        let ms: libc::c_int = match timeout {
            None => -1,
            // Round up so a timer due in 0.3 ms does not spin at 0 ms.
            Some(d) => d.as_micros().div_ceil(1000).min(libc::c_int::MAX as u128) as libc::c_int,
        };
        match crate::sys::fd::poll(&mut self.fds, ms) {
            Ok(_) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINTR) => return Ok(()),
            Err(e) => return Err(e),
        }
        for (p, &t) in self.fds.iter().zip(&self.tokens) {
            if p.revents != 0 {
                out.push((
                    t,
                    Readiness {
                        readable: p.revents & libc::POLLIN != 0,
                        writable: p.revents & libc::POLLOUT != 0,
                        error: p.revents & (libc::POLLHUP | libc::POLLERR | libc::POLLNVAL) != 0,
                    },
                ));
            }
        }
        Ok(())
    }
}

/// Poll tokens handed out from a slab: each registered source gets the
/// lowest free token and the token maps back to it, so a loop needs no
/// fixed token ranges per kind of source (a range that is too small
/// silently leaves sources unpolled).
#[derive(Debug, Clone)]
pub struct TokenSlab<S> {
    entries: Vec<Option<S>>,
    free: Vec<Token>,
}

impl<S> Default for TokenSlab<S> {
    fn default() -> Self {
        TokenSlab {
            entries: Vec::new(),
            free: Vec::new(),
        }
    }
}

impl<S> TokenSlab<S> {
    pub fn new() -> Self {
        Self::default()
    }

    /// A token for `source`.
    pub fn insert(&mut self, source: S) -> Token {
        match self.free.pop() {
            Some(t) => {
                self.entries[t] = Some(source);
                t
            }
            None => {
                self.entries.push(Some(source));
                self.entries.len() - 1
            }
        }
    }

    pub fn get(&self, token: Token) -> Option<&S> {
        self.entries.get(token).and_then(Option::as_ref)
    }

    /// Give `token` back; its source is returned.
    pub fn remove(&mut self, token: Token) -> Option<S> {
        let s = self.entries.get_mut(token).and_then(Option::take);
        if s.is_some() {
            self.free.push(token);
        }
        s
    }

    /// Forget every token, keeping the buffers (a set rebuilt each round).
    pub fn clear(&mut self) {
        self.entries.clear();
        self.free.clear();
    }

    pub fn len(&self) -> usize {
        self.entries.len() - self.free.len()
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Handle to a scheduled timer, for cancelling it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TimerId(u64);

/// One ordered queue of timers carrying a payload `T` (what should happen).
pub struct Timers<T> {
    heap: BinaryHeap<Reverse<(Instant, u64)>>,
    payloads: std::collections::HashMap<u64, T>,
    cancelled: HashSet<u64>,
    next: u64,
}

impl<T> Default for Timers<T> {
    fn default() -> Self {
        Timers {
            heap: BinaryHeap::new(),
            payloads: Default::default(),
            cancelled: HashSet::new(),
            next: 0,
        }
    }
}

impl<T> Timers<T> {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn schedule(&mut self, at: Instant, what: T) -> TimerId {
        let id = self.next;
        self.next += 1;
        self.heap.push(Reverse((at, id)));
        self.payloads.insert(id, what);
        TimerId(id)
    }

    pub fn schedule_in(&mut self, now: Instant, after: Duration, what: T) -> TimerId {
        self.schedule(now + after, what)
    }

    /// Cancel a timer; returns its payload if it had not fired yet.
    pub fn cancel(&mut self, id: TimerId) -> Option<T> {
        let p = self.payloads.remove(&id.0);
        if p.is_some() {
            self.cancelled.insert(id.0);
        }
        p
    }

    pub fn len(&self) -> usize {
        self.payloads.len()
    }

    pub fn is_empty(&self) -> bool {
        self.payloads.is_empty()
    }

    fn skip_cancelled(&mut self) {
        while let Some(Reverse((_, id))) = self.heap.peek() {
            if self.cancelled.remove(id) {
                self.heap.pop();
            } else {
                break;
            }
        }
    }

    /// When the next timer is due.
    pub fn next_deadline(&mut self) -> Option<Instant> {
        self.skip_cancelled();
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// How long poll may sleep before the next timer, from `now`.
    pub fn timeout(&mut self, now: Instant) -> Option<Duration> {
        self.next_deadline()
            .map(|at| at.saturating_duration_since(now))
    }

    /// Pop one timer due at or before `now`.
    pub fn pop_expired(&mut self, now: Instant) -> Option<T> {
        loop {
            self.skip_cancelled();
            let Reverse((at, id)) = *self.heap.peek()?;
            if at > now {
                return None;
            }
            self.heap.pop();
            if let Some(p) = self.payloads.remove(&id) {
                return Some(p);
            }
        }
    }
}

/// Signals delivered as readable events on a signalfd. Creating it blocks
/// the signals for the process so they are only seen here.
pub struct Signals {
    fd: SignalFd,
}

impl Signals {
    /// The daemon set: HUP, INT, TERM, USR1, USR2 (and PIPE blocked and ignored).
    pub fn daemon_set() -> io::Result<Signals> {
        Self::new(&[
            Signal::SIGHUP,
            Signal::SIGINT,
            Signal::SIGTERM,
            Signal::SIGUSR1,
            Signal::SIGUSR2,
            Signal::SIGPIPE,
        ])
    }

    pub fn new(sigs: &[Signal]) -> io::Result<Signals> {
        let mut set = SigSet::empty();
        for s in sigs {
            set.add(*s);
        }
        set.thread_block().map_err(io::Error::from)?;
        let fd = SignalFd::with_flags(&set, SfdFlags::SFD_NONBLOCK | SfdFlags::SFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Signals { fd })
    }

    /// Read every pending signal.
    pub fn drain(&mut self) -> Vec<Signal> {
        let mut out = Vec::new();
        while let Ok(Some(info)) = self.fd.read_signal() {
            if let Ok(s) = Signal::try_from(info.ssi_signo as i32) {
                if s != Signal::SIGPIPE {
                    out.push(s);
                }
            }
        }
        out
    }
}

impl AsRawFd for Signals {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn timers_fire_in_order_and_cancel() {
        let t0 = Instant::now();
        let mut t = Timers::new();
        let a = t.schedule(t0 + Duration::from_millis(30), "a");
        t.schedule(t0 + Duration::from_millis(10), "b");
        t.schedule(t0 + Duration::from_millis(20), "c");
        assert_eq!(t.cancel(a), Some("a"));
        assert_eq!(t.next_deadline(), Some(t0 + Duration::from_millis(10)));
        assert_eq!(t.pop_expired(t0 + Duration::from_millis(5)), None);
        let now = t0 + Duration::from_millis(40);
        assert_eq!(t.pop_expired(now), Some("b"));
        assert_eq!(t.pop_expired(now), Some("c"));
        assert_eq!(t.pop_expired(now), None);
        assert!(t.is_empty());
    }

    #[test]
    fn token_slab_holds_64_peers_and_more_without_ranges() {
        #[derive(Debug, PartialEq, Clone, Copy)]
        enum Src {
            Listener,
            Tunnel(usize),
            Peer(usize),
        }
        let mut s = TokenSlab::new();
        let l = s.insert(Src::Listener);
        let tunnels: Vec<Token> = (0..64).map(|i| s.insert(Src::Tunnel(i))).collect();
        let peers: Vec<Token> = (0..64).map(|i| s.insert(Src::Peer(i))).collect();
        assert_eq!(s.len(), 129);
        assert_eq!(s.get(l), Some(&Src::Listener));
        for (i, t) in tunnels.iter().enumerate() {
            assert_eq!(s.get(*t), Some(&Src::Tunnel(i)));
        }
        for (i, t) in peers.iter().enumerate() {
            assert_eq!(s.get(*t), Some(&Src::Peer(i)));
        }
        let mut all: Vec<Token> = tunnels.iter().chain(&peers).copied().collect();
        all.push(l);
        all.sort();
        all.dedup();
        assert_eq!(all.len(), 129, "tokens are distinct");
        // A freed token is reused, and stale lookups find nothing.
        assert_eq!(s.remove(tunnels[63]), Some(Src::Tunnel(63)));
        assert_eq!(s.get(tunnels[63]), None);
        assert_eq!(s.remove(tunnels[63]), None);
        assert_eq!(s.insert(Src::Tunnel(64)), tunnels[63]);
        s.clear();
        assert!(s.is_empty());
        assert_eq!(s.get(l), None);
        assert_eq!(s.insert(Src::Listener), 0);
    }

    #[test]
    fn a_cleared_poller_is_rebuilt_with_add() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut p = Poller::new();
        p.add(r.as_raw_fd(), 1, false);
        p.clear();
        assert!(p.is_empty());
        p.add(r.as_raw_fd(), 2, false);
        nix::unistd::write(&w, b"x").unwrap();
        let mut out = Vec::new();
        p.wait(Some(Duration::from_millis(100)), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 2, "the token of the rebuilt set");
    }

    #[test]
    fn poller_reports_a_readable_pipe() {
        let (r, w) = nix::unistd::pipe().unwrap();
        let mut p = Poller::new();
        p.register(r.as_raw_fd(), 7, false);
        let mut out = Vec::new();
        p.wait(Some(Duration::from_millis(0)), &mut out).unwrap();
        assert!(out.is_empty());
        nix::unistd::write(&w, b"x").unwrap();
        p.wait(Some(Duration::from_millis(100)), &mut out).unwrap();
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].0, 7);
        assert!(out[0].1.readable);
    }
}
