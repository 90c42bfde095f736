//! [`PeerConn`]: one CN-to-CN connection the daemon holds (served by
//! `peer_listener`).

use crate::mlrp::{self, ErrorCode, Session};

/// One CN-to-CN connection.
pub struct PeerConn {
    pub io: mlrp::Conn,
    pub session: Session,
}

impl PeerConn {
    pub(super) fn close(mut self, code: ErrorCode, why: &str) {
        self.session.close(code, why, self.io.queue());
        self.io.close();
    }
}
