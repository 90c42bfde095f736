//! The primary/backup pair, without I/O: which register serves, in which
//! epoch, and what to do when the other register is heard from (or not),
//! when a CN binds, and when replication links come and go. The server
//! (`replication.rs`) carries out its decisions.
//!
//! Rules (docs/MLRP.md "Backup register"):
//! - A register with a peer starts *probing*: it serves no CN until it has
//!   heard the peer's status or found it unreachable.
//! - The register in the higher epoch serves; in equal epochs, the one
//!   configured as primary (`backup_mlr` set). The other is the *standby*:
//!   it subscribes to the serving one, replaces its state with the
//!   snapshot it gets and stores every record streamed after it.
//! - A standby whose link to the serving register is gone *promotes*
//!   itself when a CN binds: epoch = highest epoch seen + 1, stored before
//!   the bind is answered.
//! - A serving register that hears of a serving peer in a higher epoch
//!   steps down: it closes its CN sessions (they fail over) and subscribes.
//! - Every MLRP frame carries its sender's epoch (a CN's: the highest it
//!   has seen). A register of a pair that receives a frame in a higher
//!   epoch than its own steps down the same way if it serves, and
//!   remembers the epoch so that a later promotion goes above it. A
//!   register alone has nobody to defer to: it takes the higher epoch as
//!   its own (its CNs saw it before its state was lost), so they keep
//!   binding to it.

use std::fmt;
use std::net::SocketAddrV4;
use tmip::mlrp::{RegisterRole, ReplicationState};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Start-up with a peer: not serving until the peer is heard or found
    /// unreachable.
    Probing,
    /// Serves CNs (alone, or with a subscribed backup).
    Serving,
    /// Replicates from the peer; refuses CN binds while linked to it.
    Standby,
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Role::Probing => "probing",
            Role::Serving => "serving",
            Role::Standby => "standby",
        })
    }
}

/// What the peer said about itself, or that it could not be reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PeerView {
    Unreachable,
    Status { epoch: u32, role: RegisterRole },
}

/// What the server must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    Nothing,
    /// Start serving (probing found the peer gone or behind).
    Serve,
    /// Subscribe to the peer (as standby).
    Subscribe,
    /// Stop serving: close the CN sessions, then subscribe to the peer.
    StepDown,
}

/// A CN's bind at a register that does not serve it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotServing;

/// The replica (backup) subscribed to a serving register.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Replica {
    None,
    CatchingUp,
    InSync,
}

#[derive(Debug)]
pub struct Pair {
    peer: Option<SocketAddrV4>,
    configured_primary: bool,
    role: Role,
    epoch: u32,
    /// The highest epoch the peer reported or any frame carried.
    peer_epoch: u32,
    /// Standby: subscribed to the peer (the subscription was accepted).
    subscribed: bool,
    /// Standby: the snapshot from the peer is applied.
    synced: bool,
    replica: Replica,
}

impl Pair {
    /// `peer`: the other register (from `backup_mlr` when
    /// `configured_primary`, else from `primary_mlr`); `None` runs alone.
    pub fn new(peer: Option<SocketAddrV4>, configured_primary: bool, epoch: u32) -> Pair {
        Pair {
            role: if peer.is_some() {
                Role::Probing
            } else {
                Role::Serving
            },
            peer,
            configured_primary,
            epoch: epoch.max(1),
            peer_epoch: 0,
            subscribed: false,
            synced: false,
            replica: Replica::None,
        }
    }

    pub fn peer(&self) -> Option<SocketAddrV4> {
        self.peer
    }
    pub fn role(&self) -> Role {
        self.role
    }
    pub fn epoch(&self) -> u32 {
        self.epoch
    }
    pub fn serves(&self) -> bool {
        self.role == Role::Serving
    }
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// The role as MLRP's `RegisterStatusReply` states it.
    pub fn wire_role(&self) -> RegisterRole {
        match (self.peer, self.role) {
            (None, _) => RegisterRole::Standalone,
            (_, Role::Serving) => RegisterRole::Primary,
            _ => RegisterRole::Backup,
        }
    }

    pub fn replication(&self) -> ReplicationState {
        if self.peer.is_none() {
            return ReplicationState::None;
        }
        match self.role {
            Role::Serving => match self.replica {
                Replica::None => ReplicationState::PeerDown,
                Replica::CatchingUp => ReplicationState::CatchingUp,
                Replica::InSync => ReplicationState::InSync,
            },
            _ if self.subscribed && self.synced => ReplicationState::InSync,
            _ if self.subscribed => ReplicationState::CatchingUp,
            _ => ReplicationState::PeerDown,
        }
    }

    /// Does the peer win against us? Higher epoch, or equal and it is the
    /// configured primary.
    fn peer_wins(&self, epoch: u32) -> bool {
        epoch > self.epoch || (epoch == self.epoch && !self.configured_primary)
    }

    /// The peer answered a probe (or could not be reached).
    pub fn on_peer(&mut self, view: PeerView) -> Decision {
        if let PeerView::Status { epoch, .. } = view {
            self.peer_epoch = self.peer_epoch.max(epoch);
        }
        match (self.role, view) {
            (Role::Probing, PeerView::Unreachable) => {
                if self.configured_primary {
                    self.role = Role::Serving;
                    Decision::Serve
                } else {
                    // Promote on the first CN bind.
                    self.role = Role::Standby;
                    Decision::Nothing
                }
            }
            (Role::Probing, PeerView::Status { epoch, role }) => {
                if role == RegisterRole::Primary && self.peer_wins(epoch) {
                    self.role = Role::Standby;
                    Decision::Subscribe
                } else if self.configured_primary || epoch < self.epoch {
                    self.role = Role::Serving;
                    Decision::Serve
                } else {
                    // Both standing by: the first CN to bind decides.
                    self.role = Role::Standby;
                    Decision::Nothing
                }
            }
            (Role::Serving, PeerView::Status { epoch, role }) => {
                if role == RegisterRole::Primary && self.peer_wins(epoch) {
                    self.role = Role::Standby;
                    self.replica = Replica::None;
                    Decision::StepDown
                } else {
                    Decision::Nothing
                }
            }
            (Role::Standby, PeerView::Status { role, .. }) => {
                if role == RegisterRole::Primary && !self.subscribed {
                    Decision::Subscribe
                } else {
                    Decision::Nothing
                }
            }
            (Role::Serving | Role::Standby, PeerView::Unreachable) => Decision::Nothing,
        }
    }

    /// A frame (from a CN, the peer, anyone authenticated) carried `epoch`.
    /// Higher than ours: a pair register that serves steps down, one that
    /// does not remembers it for its next promotion; a register alone
    /// takes it as its own (store it).
    pub fn on_frame_epoch(&mut self, epoch: u32) -> Decision {
        if epoch <= self.epoch {
            return Decision::Nothing;
        }
        if self.peer.is_none() {
            self.epoch = epoch;
            return Decision::Nothing;
        }
        self.peer_epoch = self.peer_epoch.max(epoch);
        if self.role == Role::Serving {
            self.role = Role::Standby;
            self.replica = Replica::None;
            return Decision::StepDown;
        }
        Decision::Nothing
    }

    /// The subscription to the peer was accepted, or lost.
    pub fn set_subscribed(&mut self, on: bool) {
        self.subscribed = on && self.role == Role::Standby;
        if !self.subscribed {
            self.synced = false;
        }
    }

    /// Standby: the peer's snapshot is applied; its epoch is ours now.
    pub fn synced_at(&mut self, epoch: u32) {
        self.synced = true;
        self.epoch = self.epoch.max(epoch);
        self.peer_epoch = self.peer_epoch.max(epoch);
    }

    /// A CN asks to bind. `Ok(Some(epoch))`: this register promoted itself
    /// to serve it (store the epoch before answering).
    pub fn on_cn_bind(&mut self) -> Result<Option<u32>, NotServing> {
        match self.role {
            Role::Serving => Ok(None),
            Role::Standby if !self.subscribed => {
                self.epoch = self.epoch.max(self.peer_epoch).saturating_add(1);
                self.role = Role::Serving;
                self.synced = false;
                Ok(Some(self.epoch))
            }
            Role::Standby | Role::Probing => Err(NotServing),
        }
    }

    /// Serving: a backup subscribed, caught up, or went away.
    pub fn set_replica(&mut self, r: Replica) {
        self.replica = if self.role == Role::Serving {
            r
        } else {
            Replica::None
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const P: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 250), 6554);
    const B: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 251), 6554);

    fn status(epoch: u32, role: RegisterRole) -> PeerView {
        PeerView::Status { epoch, role }
    }

    #[test]
    fn alone_serves_at_once() {
        let p = Pair::new(None, false, 1);
        assert!(p.serves());
        assert_eq!(p.wire_role(), RegisterRole::Standalone);
        assert_eq!(p.replication(), ReplicationState::None);
    }

    #[test]
    fn primary_serves_and_backup_subscribes_at_start() {
        let mut p = Pair::new(Some(B), true, 1);
        let mut b = Pair::new(Some(P), false, 1);
        assert!(!p.serves() && !b.serves(), "probing first");
        assert_eq!(p.on_cn_bind(), Err(NotServing));
        // The primary finds its backup probing too: it serves.
        assert_eq!(p.on_peer(status(1, RegisterRole::Backup)), Decision::Serve);
        assert_eq!(
            b.on_peer(status(1, RegisterRole::Primary)),
            Decision::Subscribe
        );
        b.set_subscribed(true);
        assert_eq!(b.replication(), ReplicationState::CatchingUp);
        b.synced_at(1);
        p.set_replica(Replica::InSync);
        assert_eq!(b.replication(), ReplicationState::InSync);
        assert_eq!(p.replication(), ReplicationState::InSync);
        // A linked standby refuses CNs.
        assert_eq!(b.on_cn_bind(), Err(NotServing));
    }

    #[test]
    fn the_backup_promotes_on_a_cn_bind_once_the_primary_is_gone() {
        let mut b = Pair::new(Some(P), false, 1);
        b.on_peer(status(1, RegisterRole::Primary));
        b.set_subscribed(true);
        b.synced_at(1);
        // The primary dies: the subscription breaks; nothing changes until
        // a CN binds.
        b.set_subscribed(false);
        assert_eq!(b.on_peer(PeerView::Unreachable), Decision::Nothing);
        assert!(!b.serves());
        assert_eq!(b.on_cn_bind(), Ok(Some(2)));
        assert!(b.serves());
        assert_eq!(b.epoch(), 2);
        assert_eq!(b.wire_role(), RegisterRole::Primary);
        assert_eq!(b.replication(), ReplicationState::PeerDown);
        assert_eq!(b.on_cn_bind(), Ok(None));
    }

    #[test]
    fn a_returning_primary_steps_down_for_the_higher_epoch() {
        // Restarted: probing, hears the promoted backup.
        let mut p = Pair::new(Some(B), true, 1);
        assert_eq!(
            p.on_peer(status(2, RegisterRole::Primary)),
            Decision::Subscribe
        );
        assert_eq!(p.role(), Role::Standby);
        // Never restarted but cut off: serving in epoch 1 when it hears.
        let mut p = Pair::new(Some(B), true, 1);
        p.on_peer(PeerView::Unreachable);
        assert!(p.serves());
        assert_eq!(
            p.on_peer(status(2, RegisterRole::Primary)),
            Decision::StepDown
        );
        assert!(!p.serves());
        // The promoted backup, hearing the old primary in epoch 1, stays.
        let mut b = Pair::new(Some(P), false, 2);
        b.on_peer(PeerView::Unreachable);
        assert_eq!(b.on_cn_bind(), Ok(Some(3)));
        assert_eq!(
            b.on_peer(status(1, RegisterRole::Primary)),
            Decision::Nothing
        );
        assert!(b.serves());
    }

    #[test]
    fn a_serving_register_that_meets_a_higher_epoch_in_any_frame_steps_down() {
        let mut p = Pair::new(Some(B), true, 1);
        p.on_peer(PeerView::Unreachable);
        assert!(p.serves());
        p.set_replica(Replica::InSync);
        // Frames in its own epoch or below change nothing.
        assert_eq!(p.on_frame_epoch(0), Decision::Nothing);
        assert_eq!(p.on_frame_epoch(1), Decision::Nothing);
        assert!(p.serves());
        // A CN that saw the promoted backup (epoch 2) arrives.
        assert_eq!(p.on_frame_epoch(2), Decision::StepDown);
        assert!(!p.serves());
        assert_eq!(p.wire_role(), RegisterRole::Backup);
        assert_eq!(p.epoch(), 1, "not its epoch until it syncs");
        // Cut off from the peer, its next promotion goes above what it met.
        assert_eq!(p.on_cn_bind(), Ok(Some(3)));
        assert!(p.serves());
        // A standby only remembers.
        let mut b = Pair::new(Some(P), false, 1);
        b.on_peer(status(1, RegisterRole::Primary));
        b.set_subscribed(true);
        assert_eq!(b.on_frame_epoch(5), Decision::Nothing);
        assert_eq!(b.role(), Role::Standby);
        b.set_subscribed(false);
        assert_eq!(b.on_cn_bind(), Ok(Some(6)));
    }

    #[test]
    fn a_register_alone_takes_a_higher_epoch_as_its_own() {
        let mut a = Pair::new(None, false, 1);
        assert_eq!(a.on_frame_epoch(4), Decision::Nothing);
        assert!(a.serves());
        assert_eq!(a.epoch(), 4);
        assert_eq!(a.on_frame_epoch(2), Decision::Nothing);
        assert_eq!(a.epoch(), 4);
    }

    #[test]
    fn a_promotion_at_the_highest_epoch_does_not_overflow() {
        let mut b = Pair::new(Some(P), false, 1);
        b.on_peer(PeerView::Unreachable);
        assert_eq!(b.on_frame_epoch(u32::MAX), Decision::Nothing);
        assert_eq!(b.on_cn_bind(), Ok(Some(u32::MAX)));
    }

    #[test]
    fn a_standby_without_a_subscription_promotes_above_the_peer_epoch() {
        let mut b = Pair::new(Some(P), false, 1);
        // The peer answered once in epoch 4 but refused the subscription.
        b.on_peer(status(4, RegisterRole::Backup));
        assert_eq!(b.on_cn_bind(), Ok(Some(5)));
    }
}
