//! The CN-to-CN listener: peers (and tools such as `tmipd -E` of another
//! CN) connect to this CN's MLRP port to ping it or push Redirect, Withdraw
//! and Move directly. A bounded number of connections, each an
//! [`mlrp::Conn`] with its own [`Session`]; idle and half-open ones are
//! closed so they cannot hold every slot.

use super::peer_conn::PeerConn;
use super::poll_loop::Daemon;
use crate::event_loop::Readiness;
use crate::mlrp::{self, ErrorCode, Incoming, Role, Session};
use std::io;
use std::time::{Duration, Instant};

/// Most CN-to-CN connections served at once; more are refused.
const MAX_PEER_CONNS: usize = 64;
/// A CN-to-CN connection that has not completed its handshake in this
/// time, or has been silent this long, is closed (slots are few).
const PEER_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
const PEER_IDLE_TIMEOUT: Duration = Duration::from_secs(120);
/// Unauthenticated CN-to-CN connections from one address (a peer CN needs
/// one); more evict that address's oldest (mlrp::admission).
const PEER_UNAUTH_PER_SOURCE: usize = 4;
/// Bytes read from one peer per readiness, so none can starve the loop.
const READ_BUDGET: usize = 128 << 10;
/// A peer that leaves this much of our output unread is cut off.
const MAX_QUEUED: usize = 1 << 20;

impl Daemon {
    pub(super) fn on_accept(&mut self) {
        loop {
            match self.listener.accept() {
                Ok((s, addr)) => {
                    if !self.admit_peer(addr) {
                        continue;
                    }
                    let conn = mlrp::Conn::accepted(s, addr).and_then(|mut io| {
                        let mut session =
                            Session::new(Role::Cn, self.key.as_ref(), mlrp::random_nonce()?);
                        session.set_label(addr.to_string());
                        session.handshake(io.queue());
                        Ok(PeerConn { io, session })
                    });
                    match conn {
                        Ok(c) => {
                            log::debug!(target: "mlrp", "CN-to-CN connection from {addr}");
                            match self.peers.iter().position(|p| p.is_none()) {
                                Some(i) => self.peers[i] = Some(c),
                                None => self.peers.push(Some(c)),
                            }
                        }
                        Err(e) => log::warn!(target: "mlrp", "connection from {addr}: {e}"),
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    log::warn!(target: "mlrp", "accept: {e}");
                    break;
                }
            }
        }
    }

    /// Make room for a CN-to-CN connection from `addr` by the rules of
    /// `mlrp::admission` (per-source cap, oldest unauthenticated evicted
    /// when full); false: refuse it.
    fn admit_peer(&mut self, addr: std::net::SocketAddr) -> bool {
        let live = self.peers.iter().filter(|p| p.is_some()).count();
        let unauth = self.peers.iter().enumerate().filter_map(|(i, p)| {
            let c = p.as_ref().filter(|c| !c.session.is_established())?;
            Some((i, c.io.peer().ip(), c.io.opened()))
        });
        let now = Instant::now();
        let (i, why) = match mlrp::admit_among(
            unauth,
            addr.ip(),
            live,
            MAX_PEER_CONNS,
            PEER_UNAUTH_PER_SOURCE,
        ) {
            mlrp::Admit::Accept => return true,
            mlrp::Admit::Refuse => {
                if self.peer_refusals.hit(now) {
                    log::warn!(target: "mlrp", "refusing CN connection from {addr}: all {MAX_PEER_CONNS} are authenticated");
                }
                return false;
            }
            mlrp::Admit::EvictSameSource(i) => (i, "per-source limit"),
            mlrp::Admit::EvictOldest(i) => (i, "all slots in use"),
        };
        if let Some(c) = self.peers.get_mut(i).and_then(Option::take) {
            if self.peer_refusals.hit(now) {
                log::warn!(target: "mlrp", "evicting unauthenticated CN connection from {} ({why}) for one from {addr}", c.io.peer());
            }
            c.close(ErrorCode::Unavailable, "evicted: handshake not complete");
        }
        true
    }

    /// Close CN-to-CN connections that never finished their handshake or
    /// went silent, so idle or half-open sockets cannot hold every slot.
    pub(super) fn sweep_peers(&mut self, now: Instant) {
        if let Some(n) = self.peer_refusals.summary(now) {
            log::warn!(target: "mlrp", "refused or evicted {n} more CN connection(s) in the last 10 s");
        }
        for slot in self.peers.iter_mut() {
            let Some(c) = slot else { continue };
            // Before the handshake, from the connect: trickling bytes does
            // not extend it.
            let (idle, limit) = if c.session.is_established() {
                (
                    now.saturating_duration_since(c.io.last_rx()),
                    PEER_IDLE_TIMEOUT,
                )
            } else {
                (
                    now.saturating_duration_since(c.io.opened()),
                    PEER_HANDSHAKE_TIMEOUT,
                )
            };
            if idle > limit {
                log::info!(target: "mlrp", "closing CN connection {} (idle {}s)", c.io.peer(), idle.as_secs());
                if let Some(c) = slot.take() {
                    c.close(ErrorCode::Unavailable, "idle");
                }
            }
        }
    }

    pub(super) fn on_peer(&mut self, i: usize, r: Readiness) {
        let Some(Some(c)) = self.peers.get_mut(i) else {
            return;
        };
        let who = c.io.peer();
        if r.writable {
            if let Err(e) = c.io.flush() {
                log::debug!(target: "mlrp", "CN connection {who}: {e}");
                self.peers[i] = None;
                return;
            }
        }
        if !(r.readable || r.error) {
            return;
        }
        let session = &mut c.session;
        // Before the peer's Hello, no more than the largest Hello.
        let budget = READ_BUDGET.min(session.read_limit());
        let mut closed = c.io.read_all(budget, |b| session.feed(b)).err();
        let mut events = Vec::new();
        while let Some(ev) = c.session.poll(c.io.queue()) {
            let fatal = matches!(&ev, Err(e) if e.is_fatal());
            events.push(ev);
            if fatal {
                closed.get_or_insert_with(|| "protocol error".into());
                break;
            }
        }
        // Never authenticated: anyone may send this, as often as they like.
        let preauth = c.session.peer().is_none();
        for ev in events {
            match ev {
                Ok(Incoming::Request { id, msg }) => {
                    log::trace!(target: "mlrp", "<- CN {who} request {id}: {msg}");
                    let reply = self.on_pushed(msg, &format!("CN {who}"));
                    if let Some(Some(c)) = self.peers.get_mut(i) {
                        if let Err(e) = c.session.reply(id, &reply, c.io.queue()) {
                            log::warn!(target: "mlrp", "cannot reply to {who}: {e}");
                        }
                    }
                }
                Ok(Incoming::Established { peer }) => {
                    log::debug!(target: "mlrp", "CN-to-CN session with {who} ({}, {})", peer.role, peer.software);
                }
                Ok(Incoming::Reply { .. }) => {}
                Err(e) if preauth => {
                    if self.peer_refusals.hit(Instant::now()) {
                        log::warn!(target: "mlrp", "MLRP input from {who} refused before the handshake: {e}");
                    }
                }
                Err(e) => log::warn!(target: "mlrp", "MLRP input from {who} refused: {e}"),
            }
        }
        if let Some(Some(c)) = self.peers.get_mut(i) {
            let stuck = c.io.flush().is_err() || c.io.pending() > MAX_QUEUED;
            if stuck {
                closed.get_or_insert_with(|| "peer does not read".into());
            }
        }
        if let Some(why) = closed {
            log::debug!(target: "mlrp", "CN connection {who} closed: {why}");
            if let Some(c) = self.peers.get_mut(i).and_then(Option::take) {
                c.io.close();
            }
        }
    }
}
