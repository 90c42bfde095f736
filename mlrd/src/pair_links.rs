//! The state of the server's two connections in a primary/backup pair
//! (driven by `replication.rs`): the peer link and the replica.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tmip::mlrp::{self, Message, RequestId, Session};

/// How often the peer is asked for its status.
pub const PROBE_EVERY: Duration = Duration::from_millis(250);

/// Our connection to the other register.
pub struct PeerLink {
    pub(super) io: mlrp::Conn,
    pub(super) session: Session,
    /// RegisterStatus asked and not answered yet, and when.
    pub(super) status: Option<(RequestId, Instant)>,
    pub(super) subscribe: Option<RequestId>,
    /// Chunks of a snapshot being received.
    pub(super) snapshot: Vec<u8>,
}

impl PeerLink {
    pub fn wants_flush(&self) -> bool {
        self.io.pending() > 0
    }
}

/// A backup that leaves a request in flight this long without any
/// acknowledgement is dropped.
pub const ACK_TIMEOUT: Duration = Duration::from_secs(2);
/// Snapshot chunks in flight to a backup at once (60 KB each).
pub const REPL_WINDOW: usize = 4;
/// Bytes a backup is expected to store per second at the least (decode,
/// write and fdatasync of a snapshot): its allowance for the last chunk.
pub const SNAPSHOT_STORE_RATE: f64 = 5e6;

/// A CN's bind that a standby holds until it knows whether the serving
/// register is gone (replication.rs, "held binds").
pub struct HeldBind {
    pub(super) slot: usize,
    pub(super) id: RequestId,
    pub(super) msg: Message,
    pub(super) since: Instant,
}

/// The backup subscribed to us.
pub struct ReplicaLink {
    pub(super) slot: usize,
    /// Requests in flight: a snapshot chunk (0) or the records of commit
    /// `seq`, and when each was sent.
    pub(super) pend: HashMap<RequestId, (u64, Instant)>,
    /// Snapshot chunks not acknowledged yet (sent or not).
    pub(super) snapshot_chunks: usize,
    /// Snapshot chunks not sent yet: at most [`REPL_WINDOW`] are in
    /// flight, so a large register never sits whole in the output buffer
    /// (4 MiB cuts a peer off) and the backup's acknowledgements pace it.
    pub(super) chunks: VecDeque<Message>,
    /// Records of commits made while chunks were unsent: they follow the
    /// snapshot on the wire.
    pub(super) backlog: VecDeque<(Message, u64)>,
    /// The snapshot's size: its last chunk is acknowledged only once the
    /// backup stored all of it, which takes longer for a larger register.
    pub(super) snapshot_bytes: usize,
    /// The backup's latest acknowledgement (or the subscription).
    pub(super) last_ack: Instant,
    /// Durable commits waiting for the backup, oldest first.
    pub(super) waiting: VecDeque<(u64, Instant)>,
}

impl ReplicaLink {
    /// Something is waiting to be sent (after the subscription's Ack, or
    /// once acknowledgements make room).
    pub fn has_unsent(&self) -> bool {
        !self.chunks.is_empty() || !self.backlog.is_empty()
    }

    pub(super) fn chunks_in_flight(&self) -> usize {
        self.snapshot_chunks - self.chunks.len()
    }

    /// How long the backup may take to acknowledge: [`ACK_TIMEOUT`], plus
    /// one second per [`SNAPSHOT_STORE_RATE`] bytes of snapshot while it
    /// stores one.
    pub(super) fn ack_allowance(&self) -> Duration {
        if self.snapshot_chunks == 0 {
            return ACK_TIMEOUT;
        }
        ACK_TIMEOUT + Duration::from_secs_f64(self.snapshot_bytes as f64 / SNAPSHOT_STORE_RATE)
    }
}
