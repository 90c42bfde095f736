//! Requests pushed to this CN, by the MLR over the bound link or by a
//! peer CN over a CN-to-CN connection: Ping, Redirect (we are the parent),
//! Withdraw (the station left us), Move (a peer says the station is now at
//! it). Each becomes a core call; the reply says how it went.

use super::core::CoreError;
use super::poll_loop::Daemon;
use super::translate;
use crate::mlrp::{ErrorCode, Message};
use std::time::Instant;

/// The error reply for a redirect the core could not carry out: the code
/// follows the error's type.
pub(super) fn refusal(e: &CoreError) -> Message {
    let code = if e.is_table_full() {
        ErrorCode::TableFull
    } else {
        ErrorCode::NotFound
    };
    Message::error(code, e.to_string())
}

impl Daemon {
    /// A request pushed to us by the MLR or a peer CN; returns the reply.
    pub(super) fn on_pushed(&mut self, msg: Message, from: &str) -> Message {
        let now = Instant::now();
        match msg {
            Message::Ping { nonce } => Message::Pong { nonce },
            Message::Redirect(r) => {
                log::debug!(target: "handover", "{from}: {} ({}) is now at CN {}", r.mac, r.cell, r.to);
                match self
                    .core
                    .redirect(r.cell, Some(r.mac), translate::cn_addr(r.to), now)
                {
                    Ok(()) => Message::Ack,
                    Err(e) => refusal(&e),
                }
            }
            Message::Withdraw(w) => {
                log::debug!(target: "handover", "{from}: withdraw {} ({})", w.mac, w.cell);
                self.core.withdraw(w.cell);
                Message::Ack
            }
            Message::Move(m) => {
                // A peer tells us directly that a station is now at it: as the
                // parent we route there; otherwise we let go of it.
                let to = translate::cn_addr(m.to);
                let parent_here = self
                    .core
                    .stations()
                    .get(&m.mac)
                    .is_some_and(|s| s.parent.is_none());
                if parent_here {
                    match self.core.redirect(m.cell, Some(m.mac), to, now) {
                        Ok(()) => Message::Ack,
                        Err(e) => refusal(&e),
                    }
                } else {
                    self.core.withdraw(m.cell);
                    Message::Ack
                }
            }
            other => Message::error(
                ErrorCode::Unsupported,
                format!("a CN does not serve {}", other.msg_type() as u16),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Cell30, MacAddr};
    use crate::cn::dataplane::CnAddr;
    use std::net::Ipv4Addr;

    #[test]
    fn refusal_codes_follow_the_error_type() {
        let cell = Cell30::containing(Ipv4Addr::new(10, 1, 0, 4));
        let code = |e: CoreError| match refusal(&e) {
            Message::Error(r) => r.code,
            other => panic!("{other}"),
        };
        assert_eq!(
            code(CoreError::StationTableFull { capacity: 8, cell }),
            ErrorCode::TableFull
        );
        assert_eq!(
            code(CoreError::PeerTableFull {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                peer: CnAddr {
                    ip: Ipv4Addr::new(10, 0, 0, 2),
                    port: 5554
                }
            }),
            ErrorCode::TableFull
        );
        assert_eq!(
            code(CoreError::UnknownStation { cell }),
            ErrorCode::NotFound
        );
    }
}
