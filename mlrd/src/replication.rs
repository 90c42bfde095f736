//! The server's side of the primary/backup pair (decisions: `pair.rs`):
//!
//! - the *peer link*: our own connection to the other register. Every
//!   [`PROBE_EVERY`](super::pair_links::PROBE_EVERY) it asks `RegisterStatus`; the answer (or its absence
//!   for [`PEER_TIMEOUT`]) goes to [`Pair::on_peer`]. A standby subscribes
//!   over it (`ReplSubscribe`) and then receives `ReplSnapshot` chunks and
//!   `ReplRecords`, which it stores (journal + fdatasync) before the `Ack`
//!   leaves.
//! - the *replica*: on a serving register, the accepted connection of the
//!   backup that subscribed. It gets a snapshot, then every commit's
//!   journal records. The replies of a durable commit (allocations,
//!   releases, binds, expiry) are held until the backup acknowledged the
//!   records: "acknowledged" means stored on both registers. Not while the
//!   backup catches up: it has no usable copy before the snapshot is
//!   stored, so holding would only stall the CNs (a 1M-binding snapshot
//!   takes seconds); those commits are acknowledged as when serving alone
//!   and their records follow the snapshot. The snapshot goes out
//!   [`REPL_WINDOW`](super::pair_links::REPL_WINDOW) chunks at a time, paced by the backup's
//!   acknowledgements. A backup that acknowledges nothing for
//!   [`ACK_TIMEOUT`](super::pair_links::ACK_TIMEOUT) while requests are in flight (more while it stores a
//!   snapshot: [`SNAPSHOT_STORE_RATE`](super::pair_links::SNAPSHOT_STORE_RATE)) is dropped and the register serves
//!   alone (logged; status says `peer-down`).
//! - *held binds*: a CN binds to a standby only when it has lost the
//!   serving register. The standby believes it only if it has lost it
//!   too: it asks the serving register at once and holds the bind until
//!   either the serving register is heard (a partition that cuts the CN
//!   off, not the register: refused, docs/MLRP.md "Partitions") or it has
//!   been silent for [`BIND_SILENCE`] (its host is gone: promote, bind).
//!   Without this, a CN that notices a silent primary before the standby
//!   does (its deadline is 1 s, the standby's own probe timeout 1-1.25 s)
//!   was refused and tried the dead primary again.

use super::pair_links::{HeldBind, PeerLink, ReplicaLink, REPL_WINDOW};
use super::{now_secs, Conn, Server};
use crate::journal;
use crate::pair::{Decision, PeerView, Replica, Role as PairRole};
use log::{error, info, warn};
use std::collections::{HashMap, VecDeque};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::time::{Duration, Instant};
use tmip::event_loop::Readiness;
use tmip::mlrp::message::MAX_REPL_DATA;
use tmip::mlrp::{
    self, CnRef, ErrorCode, Incoming, Message, RegisterStatusReply, ReplRecords, ReplSnapshot,
    ReplSubscribe, RequestId, Role, Session,
};

/// A peer that does not connect or answer within this is unreachable.
pub const PEER_TIMEOUT: Duration = Duration::from_millis(1000);
/// A standby asked to bind by a CN promotes itself once the serving
/// register has been silent this long (it is asked every [`PROBE_EVERY`]
/// and at once when a bind arrives, so a live one is heard well within
/// this).
pub const BIND_SILENCE: Duration = Duration::from_millis(750);
/// In a pair, a cell comes from another CN's pool only if that CN was
/// heard this recently: less than the CNs' failover deadline
/// (`mlr_deadline`, 1000 ms by default), so a CN that may already have
/// bound to the other register (a partition) is never allocated from by
/// both (docs/MLRP.md "Partitions").
pub const PAIR_FRESH: Duration = Duration::from_millis(500);

/// Split journal records into runs of at most `max` bytes, on record
/// boundaries (`[len u32][kind][payload][crc32]`).
pub fn split_records(data: &[u8], max: usize) -> Vec<&[u8]> {
    let mut out = Vec::new();
    let (mut start, mut at) = (0, 0);
    while at + 4 <= data.len() {
        let len = u32::from_le_bytes([data[at], data[at + 1], data[at + 2], data[at + 3]]) as usize;
        let next = (at + 8 + len).min(data.len());
        if next - start > max && at > start {
            out.push(&data[start..at]);
            start = at;
        }
        at = next;
    }
    if start < data.len() {
        out.push(&data[start..]);
    }
    out
}

/// Parse `HOST[:PORT]` (port 6554 by default) to an IPv4 address.
pub fn peer_addr(spec: &str) -> Result<SocketAddrV4, String> {
    let (host, port) = match spec.rsplit_once(':') {
        Some((h, p)) => (
            h,
            p.parse::<u16>()
                .map_err(|_| format!("bad port in '{spec}'"))?,
        ),
        None => (spec, tmip::MLR_PORT),
    };
    tmip::config::resolve(host, port)
}

impl Server {
    pub(super) fn status_reply(&self) -> Message {
        let peer = self
            .pair
            .peer()
            .map_or(CnRef::new(Ipv4Addr::UNSPECIFIED, 0), |p| {
                CnRef::new(*p.ip(), p.port())
            });
        Message::RegisterStatusReply(RegisterStatusReply {
            epoch: self.pair.epoch(),
            role: self.pair.wire_role(),
            replication: self.pair.replication(),
            peer,
        })
    }

    pub(super) fn note_heard(&mut self, cn: crate::register::CnIdx) {
        let i = cn as usize;
        if self.cn_heard.len() <= i {
            self.cn_heard.resize(i + 1, None);
        }
        self.cn_heard[i] = Some(Instant::now());
    }

    /// Which CNs' pools a pair register may allocate from now.
    pub(super) fn fresh_cns(&self) -> Vec<bool> {
        let now = Instant::now();
        self.cn_heard
            .iter()
            .map(|h| h.is_some_and(|t| now.duration_since(t) < PAIR_FRESH))
            .collect()
    }

    // ---- the peer link ---------------------------------------------------

    pub(super) fn peer_link_fd(&self) -> Option<(i32, bool)> {
        self.peer_link
            .as_ref()
            .map(|l| (l.io.fd(), l.io.wants_write()))
    }

    /// Every PROBE_EVERY: connect, ask the status, time out.
    pub(super) fn peer_tick(&mut self, now: Instant) {
        let Some(peer) = self.pair.peer() else {
            return;
        };
        if self.peer_link_stale(now) {
            // The answer may be waiting unread: this loop may itself have
            // been busy (storing a large snapshot) while it came.
            self.on_peer_link(Readiness {
                readable: true,
                writable: false,
                error: false,
            });
        }
        if let Some(l) = self.peer_link.as_mut() {
            let stale = match l.status {
                Some((_, asked)) => now.duration_since(asked) > PEER_TIMEOUT,
                None => {
                    !l.session.is_established() && now.duration_since(l.io.opened()) > PEER_TIMEOUT
                }
            };
            if stale {
                self.peer_lost("no answer");
                return;
            }
            if l.session.is_established() && l.status.is_none() {
                if let Ok(id) = l.session.request(&Message::RegisterStatus, l.io.queue()) {
                    l.status = Some((id, now));
                }
            }
            self.peer_flush();
            return;
        }
        match mlrp::Conn::connect(peer, None) {
            Ok(mut io) => {
                let nonce = match mlrp::random_nonce() {
                    Ok(n) => n,
                    Err(e) => {
                        error!("! no random nonce: {e}");
                        return;
                    }
                };
                let mut session = Session::new(Role::Mlr, self.key.as_ref(), nonce);
                session.set_label(format!("peer {peer}"));
                session.set_epoch(self.pair.epoch());
                session.handshake(io.queue());
                self.peer_link = Some(PeerLink {
                    io,
                    session,
                    status: None,
                    subscribe: None,
                    snapshot: Vec::new(),
                });
            }
            Err(e) => {
                log::debug!(target: "mlrp", "peer {peer}: {e}");
                self.peer_lost(&e.to_string());
            }
        }
    }

    fn peer_link_stale(&self, now: Instant) -> bool {
        self.peer_link.as_ref().is_some_and(|l| {
            l.session.is_established()
                && l.status
                    .is_some_and(|(_, asked)| now.duration_since(asked) > PEER_TIMEOUT)
        })
    }

    fn peer_lost(&mut self, why: &str) {
        if let Some(mut l) = self.peer_link.take() {
            // Before the descriptor closes: its number may be reused at once.
            self.poller.deregister(l.io.fd());
            self.peer_polled = None;
            l.session.close(ErrorCode::Unavailable, why, l.io.queue());
            l.io.close();
            if self.pair.subscribed() {
                warn!("! Link to the serving register lost ({why}): standing by; the first CN to bind here promotes this register");
            }
        }
        // Serving, with a backup in sync that we cannot reach and that has
        // said nothing on its replication connection either: it is gone (a
        // cut, not just a crash), even if that connection never said so.
        // Not while it catches up, nor right after: storing a large
        // snapshot keeps it from answering our probes for a while.
        // With requests in flight, the acknowledgement deadline decides.
        let replica_silent = self.replica.as_ref().is_some_and(|r| {
            let rx = self
                .conns
                .get(r.slot)
                .and_then(Option::as_ref)
                .map_or(r.last_ack, |c| c.io.last_rx());
            r.pend.is_empty() && rx.max(r.last_ack).elapsed() > PEER_TIMEOUT
        });
        if self.pair.serves()
            && self.pair.replication() == tmip::mlrp::ReplicationState::InSync
            && replica_silent
        {
            let slot = self.replica.as_ref().map(|r| r.slot);
            if let Some(slot) = slot {
                self.to_close
                    .push((slot, "peer register unreachable".into()));
            }
            self.drop_replica("the peer register is unreachable");
        }
        self.pair.set_subscribed(false);
        let d = self.pair.on_peer(PeerView::Unreachable);
        self.apply_decision(d);
    }

    pub(super) fn peer_flush(&mut self) {
        if let Some(l) = self.peer_link.as_mut() {
            if let Err(e) = l.io.flush() {
                let why = format!("write: {e}");
                self.peer_lost(&why);
            }
        }
    }

    pub(super) fn on_peer_link(&mut self, r: Readiness) {
        let Some(l) = self.peer_link.as_mut() else {
            return;
        };
        if l.io.is_connecting() {
            match l.io.finish_connect() {
                Ok(true) => {}
                Ok(false) if !r.error => return,
                Ok(false) => {
                    self.peer_lost("connect failed");
                    return;
                }
                Err(e) => {
                    let why = format!("connect: {e}");
                    self.peer_lost(&why);
                    return;
                }
            }
        }
        let session = &mut l.session;
        let closed = l.io.read_all(1 << 20, |b| session.feed(b)).err();
        let mut events = Vec::new();
        while let Some(ev) = l.session.poll(l.io.queue()) {
            let fatal = matches!(&ev, Err(e) if e.is_fatal());
            events.push(ev);
            if fatal {
                break;
            }
        }
        let (epoch, peer) = (l.session.peer_epoch(), l.io.peer());
        if epoch > self.pair.epoch() {
            self.on_frame_epoch(epoch, &peer);
        }
        for ev in events {
            match ev {
                Ok(Incoming::Established { .. }) => {
                    self.peer_tick(Instant::now());
                }
                Ok(Incoming::Reply { id, msg }) => self.on_peer_reply(id, msg),
                Ok(Incoming::Request { id, msg }) => {
                    let reply = self.on_peer_request(msg);
                    if let Some(l) = self.peer_link.as_mut() {
                        let _ = l.session.reply(id, &reply, l.io.queue());
                    }
                }
                Err(e) if e.is_fatal() => {
                    let why = e.to_string();
                    self.peer_lost(&why);
                    return;
                }
                Err(e) => warn!("! peer register: {e}"),
            }
        }
        if let Some(why) = closed {
            self.peer_lost(&why);
            return;
        }
        // Acks to replicated records leave after the journal commit
        // (commit_and_flush); anything else now.
        if !self.repl_durable {
            self.peer_flush();
        }
    }

    fn on_peer_reply(&mut self, id: RequestId, msg: Message) {
        let Some(l) = self.peer_link.as_mut() else {
            return;
        };
        if l.status.is_some_and(|(s, _)| s == id) {
            l.status = None;
            let view = match msg {
                Message::RegisterStatusReply(s) => PeerView::Status {
                    epoch: s.epoch,
                    role: s.role,
                },
                _ => return,
            };
            let d = self.pair.on_peer(view);
            self.apply_decision(d);
        } else if l.subscribe == Some(id) {
            l.subscribe = None;
            match msg {
                Message::Ack => {
                    info!(
                        "+ Subscribed to the serving register {}: catching up",
                        l.io.peer()
                    );
                    self.pair.set_subscribed(true);
                }
                other => {
                    warn!("! Subscription refused by {}: {other}", l.io.peer());
                    self.pair.set_subscribed(false);
                }
            }
        }
    }

    /// ReplSnapshot / ReplRecords from the serving register.
    fn on_peer_request(&mut self, msg: Message) -> Message {
        if self.pair.serves() || !self.pair.subscribed() {
            return Message::error(ErrorCode::NotPrimary, "not subscribed");
        }
        match msg {
            Message::ReplSnapshot(s) => {
                let Some(l) = self.peer_link.as_mut() else {
                    return Message::error(ErrorCode::Unavailable, "no link");
                };
                if s.chunk == 0 {
                    l.snapshot.clear();
                }
                l.snapshot.extend_from_slice(&s.data);
                if !s.last {
                    return Message::Ack;
                }
                let data = std::mem::take(&mut l.snapshot);
                match journal::register_from_snapshot(self.service.reg(), &data) {
                    Ok(reg) => {
                        self.service.replace_register(reg);
                        if let Err(e) = self.journal.compact(self.service.reg()) {
                            error!("! storing the replicated snapshot: {e}");
                            return Message::error(ErrorCode::Internal, "cannot store");
                        }
                        if s.epoch > self.pair.epoch() {
                            if let Err(e) = journal::write_epoch(&self.cfg.state_dir, s.epoch) {
                                error!("! storing epoch {}: {e}", s.epoch);
                            }
                        }
                        self.pair.synced_at(s.epoch);
                        self.spread_epoch();
                        info!(
                            "+ Replica in sync with the serving register: {} bindings, {} CNs, epoch {}",
                            self.service.reg().binding_count(),
                            self.service.reg().cns().len(),
                            self.pair.epoch()
                        );
                        Message::Ack
                    }
                    Err(e) => {
                        error!("! replicated snapshot refused: {e}");
                        Message::error(ErrorCode::BadRequest, "bad snapshot")
                    }
                }
            }
            Message::ReplRecords(r) => {
                match journal::apply_records(self.service.reg_mut(), &r.data) {
                    Ok(_) => {
                        self.journal.append_records(&r.data);
                        self.repl_durable = true;
                        Message::Ack
                    }
                    Err(e) => {
                        error!("! replicated records refused: {e}");
                        Message::error(ErrorCode::BadRequest, "bad records")
                    }
                }
            }
            other => Message::error(
                ErrorCode::Unsupported,
                format!("{:?} is not a replication request", other.msg_type()),
            ),
        }
    }

    /// A frame from `from` carried `epoch`, above ours (pair.rs
    /// `on_frame_epoch`): step down, remember it, or (alone) take it.
    pub(super) fn on_frame_epoch(&mut self, epoch: u32, from: &dyn std::fmt::Display) {
        let before = self.pair.epoch();
        let d = self.pair.on_frame_epoch(epoch);
        if self.pair.epoch() != before {
            if let Err(e) = journal::write_epoch(&self.cfg.state_dir, self.pair.epoch()) {
                error!("! cannot store epoch {epoch}: {e}");
            }
            warn!("! {from} speaks in epoch {epoch}, above this register's {before}: taking it (this register runs alone)");
            self.spread_epoch();
        } else if d == Decision::StepDown {
            warn!("! {from} speaks in epoch {epoch}, above this register's {before}: another register was promoted");
        }
        self.apply_decision(d);
    }

    /// Stamp the pair's epoch on every session from now on (after a
    /// promotion, a sync, or taking a higher epoch).
    pub(super) fn spread_epoch(&mut self) {
        let epoch = self.pair.epoch();
        for c in self.conns.iter_mut().flatten() {
            c.session.set_epoch(epoch);
        }
        if let Some(l) = self.peer_link.as_mut() {
            l.session.set_epoch(epoch);
        }
    }

    fn apply_decision(&mut self, d: Decision) {
        match d {
            Decision::Nothing => {}
            Decision::Serve => {
                info!(
                    "+ Serving CNs in epoch {} ({})",
                    self.pair.epoch(),
                    if self.peer_link.is_some() {
                        "the peer register stands by"
                    } else {
                        "the peer register is unreachable: serving alone"
                    }
                );
            }
            Decision::Subscribe => self.subscribe(),
            Decision::StepDown => {
                warn!(
                    "! A register serves in a higher epoch than this one ({}): stepping down, closing CN sessions, resynchronising as its backup",
                    self.pair.epoch()
                );
                for (i, c) in self.conns.iter_mut().enumerate() {
                    if let Some(c) = c {
                        if self.service.cn_of(i).is_some() && !c.closing {
                            c.closing = true;
                            self.to_close.push((i, "register stepped down".into()));
                        }
                    }
                }
                self.drop_replica("stepped down");
                self.subscribe();
            }
        }
    }

    fn subscribe(&mut self) {
        let epoch = self.pair.epoch();
        let Some(l) = self.peer_link.as_mut() else {
            return;
        };
        if l.subscribe.is_some() || !l.session.is_established() {
            return;
        }
        match l.session.request(
            &Message::ReplSubscribe(ReplSubscribe { epoch }),
            l.io.queue(),
        ) {
            Ok(id) => l.subscribe = Some(id),
            Err(e) => warn!("! cannot subscribe: {e}"),
        }
        self.peer_flush();
    }

    // ---- the replica -----------------------------------------------------

    /// A backup asks for our register (ReplSubscribe on connection `slot`).
    pub(super) fn on_subscribe(
        &mut self,
        slot: usize,
        conn: &mut Conn,
        s: ReplSubscribe,
    ) -> Message {
        if !self.pair.serves() {
            return Message::error(ErrorCode::NotPrimary, "this register does not serve");
        }
        // Only the configured peer may take a copy of the register (and
        // make CN replies wait for its acknowledgements).
        if self.pair.peer().map(|p| std::net::IpAddr::V4(*p.ip())) != Some(conn.peer.ip()) {
            warn!(
                "! {}: replication subscription refused: not the configured peer register",
                conn.peer
            );
            return Message::error(ErrorCode::Unauthorized, "not the peer register");
        }
        if let Some(old) = self.replica.as_ref().map(|r| r.slot) {
            if old != slot {
                self.drop_replica("replaced by a new subscription");
                self.to_close.push((old, "replaced".into()));
            }
        }
        info!(
            "+ Backup register {} (epoch {}) subscribed: sending a snapshot of {} bindings",
            conn.peer,
            s.epoch,
            self.service.reg().binding_count()
        );
        let snap = journal::encode_snapshot(self.service.reg(), self.journal.generation());
        let epoch = self.pair.epoch();
        let n = snap.len().div_ceil(MAX_REPL_DATA).max(1);
        // The Ack to the subscription goes first (the caller replies after
        // this returns and then sends the first chunks).
        let chunks: VecDeque<Message> = (0..n)
            .map(|i| {
                let data = snap[(i * MAX_REPL_DATA).min(snap.len())
                    ..((i + 1) * MAX_REPL_DATA).min(snap.len())]
                    .to_vec();
                Message::ReplSnapshot(ReplSnapshot {
                    epoch,
                    chunk: i as u32,
                    last: i + 1 == n,
                    data,
                })
            })
            .collect();
        self.replica = Some(ReplicaLink {
            slot,
            pend: HashMap::new(),
            snapshot_chunks: n,
            chunks,
            backlog: VecDeque::new(),
            snapshot_bytes: snap.len(),
            last_ack: Instant::now(),
            waiting: VecDeque::new(),
        });
        self.pair.set_replica(Replica::CatchingUp);
        Message::Ack
    }

    /// Send what the window allows: snapshot chunks, then the records that
    /// queued behind them.
    pub(super) fn replica_send_pending(&mut self, conn: &mut Conn) {
        let Some(link) = self.replica.as_mut() else {
            return;
        };
        let now = Instant::now();
        while link.chunks_in_flight() < REPL_WINDOW {
            let Some(m) = link.chunks.pop_front() else {
                break;
            };
            match conn.session.request(&m, conn.io.queue()) {
                Ok(id) => {
                    link.pend.insert(id, (0, now));
                }
                Err(e) => {
                    warn!("! snapshot to {}: {e}", conn.peer);
                    link.chunks.push_front(m);
                    return;
                }
            }
        }
        if !link.chunks.is_empty() {
            return;
        }
        while let Some((m, seq)) = link.backlog.pop_front() {
            match conn.session.request(&m, conn.io.queue()) {
                Ok(id) => {
                    link.pend.insert(id, (seq, now));
                }
                Err(e) => {
                    warn!("! replication to {}: {e}", conn.peer);
                    link.backlog.push_front((m, seq));
                    return;
                }
            }
        }
    }

    /// Stream this commit's records to the backup; returns the commit's
    /// sequence number (to hold its replies) when there is a backup.
    pub(super) fn replicate(&mut self, records: &[u8], durable: bool) -> Option<u64> {
        let slot = self.replica.as_ref()?.slot;
        let Some(Some(conn)) = self.conns.get_mut(slot) else {
            return None;
        };
        let epoch = self.pair.epoch();
        // Held only once the backup holds a copy to add them to.
        let hold = durable && self.pair.replication() == tmip::mlrp::ReplicationState::InSync;
        let now = Instant::now();
        let mut last = None;
        for part in split_records(records, MAX_REPL_DATA) {
            self.repl_seq += 1;
            let seq = self.repl_seq;
            let m = Message::ReplRecords(ReplRecords {
                epoch,
                seq,
                data: part.to_vec(),
            });
            let link = self.replica.as_mut()?;
            if !link.chunks.is_empty() {
                link.backlog.push_back((m, seq));
                continue;
            }
            match conn.session.request(&m, conn.io.queue()) {
                Ok(id) => {
                    link.pend.insert(id, (seq, now));
                    last = Some(seq);
                }
                Err(e) => {
                    warn!("! replication to {}: {e}; serving alone", conn.peer);
                    self.to_close.push((slot, "replication failed".into()));
                    self.drop_replica("replication failed");
                    return None;
                }
            }
        }
        self.dirty.push(slot);
        let seq = last?;
        if hold {
            if let Some(link) = self.replica.as_mut() {
                link.waiting.push_back((seq, now));
            }
            Some(seq)
        } else {
            None
        }
    }

    /// The backup answered request `id` on its connection `conn`.
    pub(super) fn on_replica_reply(&mut self, conn: &mut Conn, id: RequestId, msg: Message) {
        let Some(link) = self.replica.as_mut() else {
            return;
        };
        let Some((seq, _)) = link.pend.remove(&id) else {
            return;
        };
        if msg != Message::Ack {
            warn!("! backup refused replication: {msg}; serving alone");
            let slot = link.slot;
            self.to_close.push((slot, "replication refused".into()));
            self.drop_replica("replication refused");
            return;
        }
        link.last_ack = Instant::now();
        if seq == 0 {
            link.snapshot_chunks = link.snapshot_chunks.saturating_sub(1);
            if link.snapshot_chunks == 0 {
                info!("+ Backup register in sync (snapshot stored)");
                self.pair.set_replica(Replica::InSync);
            }
            self.replica_send_pending(conn);
            return;
        }
        while link.waiting.front().is_some_and(|(s, _)| *s <= seq) {
            link.waiting.pop_front();
        }
        self.release_held(seq);
    }

    /// Let out the replies of commits up to `seq`.
    fn release_held(&mut self, seq: u64) {
        for (i, c) in self.conns.iter_mut().enumerate() {
            let Some(c) = c else { continue };
            let before = c.held.len();
            while c.held.front().is_some_and(|(s, _)| *s <= seq) {
                c.held.pop_front();
            }
            if c.held.len() != before {
                self.dirty.push(i);
            }
        }
    }

    /// The backup is gone: serve alone, let every held reply out.
    pub(super) fn drop_replica(&mut self, why: &str) {
        if self.replica.take().is_some() {
            warn!("! Backup register gone ({why}): serving alone; it catches up when it returns");
        }
        self.pair.set_replica(Replica::None);
        self.release_held(u64::MAX);
    }

    /// A backup that acknowledges nothing for its allowance while
    /// requests are in flight is dropped.
    pub(super) fn replica_tick(&mut self, now: Instant) {
        let Some(link) = self.replica.as_ref() else {
            return;
        };
        let Some(oldest) = link.pend.values().map(|(_, t)| *t).min() else {
            return;
        };
        let allowance = link.ack_allowance();
        if now.duration_since(oldest.max(link.last_ack)) > allowance {
            let slot = link.slot;
            self.to_close
                .push((slot, "backup not acknowledging".into()));
            let why = format!("no acknowledgement within {:.1} s", allowance.as_secs_f64());
            self.drop_replica(&why);
        }
    }

    /// A request in a register of a pair: the pair's own requests here,
    /// binds admitted (or refused by a standby, or promoting it, or held:
    /// `None`), allocations fenced; everything else is the service's.
    pub(super) fn handle_in_pair(
        &mut self,
        slot: usize,
        conn: &mut Conn,
        id: RequestId,
        msg: Message,
        now: u32,
    ) -> Option<Message> {
        Some(match msg {
            Message::RegisterStatus => self.status_reply(),
            Message::ReplSubscribe(s) => self.on_subscribe(slot, conn, s),
            Message::CnBind(ref b) => {
                if self.following() {
                    let t = Instant::now();
                    if self.peer_silence(t) < BIND_SILENCE {
                        info!(
                            "+ Bind of CN {}:{} [{}] while following the serving register: asking it first",
                            b.cn_addr, b.cn_port, b.cn_name
                        );
                        self.held_binds.push(HeldBind {
                            slot,
                            id,
                            msg,
                            since: t,
                        });
                        self.probe_peer(t);
                        return None;
                    }
                    let why = format!(
                        "silent for {} ms while a CN binds here",
                        self.peer_silence(t).as_millis()
                    );
                    self.peer_lost(&why);
                }
                if let Err(refusal) = self.admit_bind() {
                    info!(
                        "- Bind of CN {}:{} [{}] from {} refused: this register stands by",
                        b.cn_addr, b.cn_port, b.cn_name, conn.peer
                    );
                    return Some(refusal);
                }
                self.service.handle(slot, conn.peer, msg, now)
            }
            Message::Allocate(_) | Message::Offer(_) if self.pair.peer().is_some() => {
                let fresh = self.fresh_cns();
                self.service.set_fence(Some(fresh));
                let reply = self.service.handle(slot, conn.peer, msg, now);
                self.service.set_fence(None);
                reply
            }
            other => self.service.handle(slot, conn.peer, other, now),
        })
    }

    /// A standby replicating from the serving register (binds wait).
    fn following(&self) -> bool {
        self.pair.role() == PairRole::Standby && self.pair.subscribed()
    }

    /// How long the serving register (our peer link) has said nothing.
    fn peer_silence(&self, now: Instant) -> Duration {
        self.peer_link.as_ref().map_or(Duration::MAX, |l| {
            now.saturating_duration_since(l.io.last_rx())
        })
    }

    /// Ask the peer's status now, unless a question is already out.
    fn probe_peer(&mut self, now: Instant) {
        if let Some(l) = self.peer_link.as_mut() {
            if l.session.is_established() && l.status.is_none() {
                if let Ok(id) = l.session.request(&Message::RegisterStatus, l.io.queue()) {
                    l.status = Some((id, now));
                }
            }
        }
        self.peer_flush();
    }

    /// Decide the held binds: refused if the serving register was heard
    /// since they arrived, admitted (promoting this register) once it has
    /// been silent for [`BIND_SILENCE`]; otherwise they wait.
    pub(super) fn settle_held_binds(&mut self, now: Instant) {
        let Some(oldest) = self.held_binds.iter().map(|h| h.since).min() else {
            return;
        };
        if self.following() {
            let heard = self.peer_link.as_ref().map(|l| l.io.last_rx());
            if heard.is_some_and(|h| h > oldest) {
                for h in std::mem::take(&mut self.held_binds) {
                    let refusal = self.refuse_bind();
                    self.answer_held(h, Some(refusal));
                }
                return;
            }
            if self.peer_silence(now) < BIND_SILENCE {
                return;
            }
            let why = format!(
                "silent for {} ms while a CN binds here",
                self.peer_silence(now).as_millis()
            );
            self.peer_lost(&why);
        }
        for h in std::mem::take(&mut self.held_binds) {
            self.answer_held(h, None);
        }
    }

    /// Answer held bind `h`: with `reply`, or as a new bind now.
    fn answer_held(&mut self, h: HeldBind, reply: Option<Message>) {
        let Some(mut conn) = self.conns.get_mut(h.slot).and_then(Option::take) else {
            return;
        };
        let reply = match reply {
            Some(r) => Some(r),
            None => self.handle_in_pair(h.slot, &mut conn, h.id, h.msg, now_secs()),
        };
        if let Some(r) = reply {
            if let Err(e) = conn.session.reply(h.id, &r, conn.io.queue()) {
                warn!("! {}: cannot answer the held bind {}: {e}", conn.peer, h.id);
            }
            self.dirty.push(h.slot);
        }
        conn.bind_held = false;
        // The requests that came after the bind, next iteration.
        self.resume.push(h.slot);
        self.conns[h.slot] = Some(conn);
        self.deliver_pushes();
    }

    /// A CN's connection closed: forget its held binds.
    pub(super) fn forget_held_binds(&mut self, slot: usize) {
        self.held_binds.retain(|h| h.slot != slot);
    }

    pub(super) fn note_heard_conn(&mut self, slot: usize) {
        if let Some(cn) = self.service.cn_of(slot) {
            self.note_heard(cn);
        }
    }

    /// Hold the output this round queued on every CN connection until the
    /// backup acknowledged commit `seq`.
    pub(super) fn hold_round(&mut self, seq: u64) {
        let replica = self.replica.as_ref().map(|r| r.slot);
        for &s in &self.dirty {
            if Some(s) == replica {
                continue;
            }
            if let Some(Some(c)) = self.conns.get_mut(s) {
                // Answers to pings only need not wait (they say nothing of
                // the register); they still leave after held bytes before them.
                if c.io.queued_len() > c.committed_len && c.stateful {
                    let start = c.io.abs(c.committed_len);
                    c.held.push_back((seq, start));
                }
            }
        }
    }

    /// A CN binds: promote a standby whose link is gone; refuse otherwise.
    pub(super) fn admit_bind(&mut self) -> Result<(), Message> {
        match self.pair.on_cn_bind() {
            Ok(None) => Ok(()),
            Ok(Some(epoch)) => {
                if let Err(e) = journal::write_epoch(&self.cfg.state_dir, epoch) {
                    error!("! cannot store epoch {epoch}: {e}");
                }
                warn!(
                    "! Promoted to serving register, epoch {epoch}: the serving register is gone and a CN binds ({} bindings replicated)",
                    self.service.reg().binding_count()
                );
                self.spread_epoch();
                Ok(())
            }
            Err(_) => Err(self.refuse_bind()),
        }
    }

    /// A standby's answer to a CN's bind.
    fn refuse_bind(&self) -> Message {
        Message::BindReply(mlrp::BindReply::Refused {
            code: ErrorCode::NotPrimary,
            text: match self.pair.peer() {
                Some(p) => format!("standby backup of {p}"),
                None => "not serving".into(),
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn rec(len: usize) -> Vec<u8> {
        let mut v = ((len + 1) as u32).to_le_bytes().to_vec();
        v.push(2);
        v.extend(std::iter::repeat_n(0xaa, len));
        v.extend_from_slice(&[0, 0, 0, 0]);
        v
    }

    #[test]
    fn records_split_on_their_boundaries() {
        let mut data = Vec::new();
        for _ in 0..10 {
            data.extend(rec(20)); // 29 bytes each
        }
        let parts = split_records(&data, 64);
        assert_eq!(parts.len(), 5);
        assert!(parts.iter().all(|p| p.len() == 58));
        assert_eq!(parts.concat(), data);
        // A record longer than the limit travels alone.
        let big = rec(100);
        let parts = split_records(&big, 64);
        assert_eq!(parts, vec![&big[..]]);
        assert!(split_records(&[], 64).is_empty());
    }
}
