//! The state of the server's two connections in a primary/backup pair
//! (driven by `replication.rs`): the peer link and the replica.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};
use tmip::mlrp::{self, RequestId, Session};

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

/// The backup subscribed to us.
pub struct ReplicaLink {
    pub(super) slot: usize,
    /// What each request in flight carries: a snapshot chunk (0) or the
    /// records of commit `seq`.
    pub(super) pend: HashMap<RequestId, u64>,
    pub(super) snapshot_chunks: usize,
    /// Durable commits waiting for the backup, oldest first.
    pub(super) waiting: VecDeque<(u64, Instant)>,
}
