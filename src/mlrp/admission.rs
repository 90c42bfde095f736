//! Who gets a connection slot before authenticating: the accept policy of
//! an MLRP listener (mlrd's on 6554, a CN's on 5554), sans-IO.
//!
//! A connection is *unauthenticated* until the peer's Hello is accepted
//! (with a secret: until its HMAC verified). Two rules keep outsiders from
//! locking real peers out:
//!
//! - **Per source**, at most `per_source` unauthenticated connections; a
//!   new one from a source at its cap evicts that source's oldest.
//! - **All slots full**: the oldest unauthenticated connection of all is
//!   evicted to make room, so a real peer can always connect and finish
//!   its handshake; only when every slot holds an authenticated connection
//!   is the newcomer refused.
//!
//! The listener keeps a [`Ticket`] per unauthenticated connection and calls
//! [`PreAuth::remove`] when it authenticates or closes. Memory is bounded by
//! the number of open connections: two ordered maps of them.

use std::collections::BTreeMap;
use std::net::IpAddr;

/// Identifies one unauthenticated connection in [`PreAuth`].
pub type Ticket = u64;

/// The verdict on a new connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit<K> {
    /// Take it.
    Accept,
    /// Take it after closing `K`, the oldest unauthenticated connection of
    /// the same source (which is at its per-source cap).
    EvictSameSource(K),
    /// Take it after closing `K`, the oldest unauthenticated connection of
    /// all (every slot is in use).
    EvictOldest(K),
    /// Refuse it: every slot holds an authenticated connection.
    Refuse,
}

/// The unauthenticated connections of one listener, oldest first. `K` is
/// the caller's handle of a connection (a slot index).
#[derive(Debug, Clone)]
pub struct PreAuth<K> {
    per_source: usize,
    next: Ticket,
    by_age: BTreeMap<Ticket, (IpAddr, K)>,
    by_source: BTreeMap<(IpAddr, Ticket), K>,
}

impl<K: Copy> PreAuth<K> {
    /// `per_source`: most unauthenticated connections from one address
    /// (at least 1).
    pub fn new(per_source: usize) -> PreAuth<K> {
        PreAuth {
            per_source: per_source.max(1),
            next: 0,
            by_age: BTreeMap::new(),
            by_source: BTreeMap::new(),
        }
    }

    pub fn set_per_source(&mut self, n: usize) {
        self.per_source = n.max(1);
    }

    pub fn per_source(&self) -> usize {
        self.per_source
    }

    /// Unauthenticated connections now.
    pub fn len(&self) -> usize {
        self.by_age.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_age.is_empty()
    }

    /// Unauthenticated connections from `src` now.
    pub fn count_from(&self, src: IpAddr) -> usize {
        self.by_source.range((src, 0)..=(src, Ticket::MAX)).count()
    }

    /// Decide on a new connection from `src` while `open` of `max` slots
    /// are in use. An evicted connection is forgotten here (its ticket is
    /// void); the caller closes it and then [`PreAuth::insert`]s the new one.
    pub fn admit(&mut self, src: IpAddr, open: usize, max: usize) -> Admit<K> {
        let oldest_here = self
            .by_source
            .range((src, 0)..=(src, Ticket::MAX))
            .next()
            .map(|(&(_, t), _)| t);
        let oldest = self.by_age.keys().next().copied();
        let verdict = decide(
            oldest_here,
            self.count_from(src),
            oldest,
            open,
            max,
            self.per_source,
        );
        let t = match verdict {
            Admit::EvictSameSource(t) | Admit::EvictOldest(t) => t,
            Admit::Accept => return Admit::Accept,
            Admit::Refuse => return Admit::Refuse,
        };
        let k = self.by_age[&t].1;
        self.remove(t);
        match verdict {
            Admit::EvictSameSource(_) => Admit::EvictSameSource(k),
            _ => Admit::EvictOldest(k),
        }
    }

    /// Record an admitted connection as unauthenticated.
    pub fn insert(&mut self, src: IpAddr, key: K) -> Ticket {
        let t = self.next;
        self.next += 1;
        self.by_age.insert(t, (src, key));
        self.by_source.insert((src, t), key);
        t
    }

    /// The connection authenticated or closed: it no longer counts. A void
    /// ticket (already removed or evicted) is ignored.
    pub fn remove(&mut self, ticket: Ticket) {
        if let Some((src, _)) = self.by_age.remove(&ticket) {
            self.by_source.remove(&(src, ticket));
        }
    }
}

/// The same rules for a listener with few slots that keeps no state of its
/// own (tmipd's CN-to-CN listener): `unauthenticated` lists its open
/// unauthenticated connections as (handle, source, opened).
pub fn admit_among<K: Copy>(
    unauthenticated: impl IntoIterator<Item = (K, IpAddr, std::time::Instant)>,
    src: IpAddr,
    open: usize,
    max: usize,
    per_source: usize,
) -> Admit<K> {
    let mut here: Option<(K, std::time::Instant)> = None;
    let mut count_here = 0;
    let mut oldest: Option<(K, std::time::Instant)> = None;
    for (k, ip, opened) in unauthenticated {
        if ip == src {
            count_here += 1;
            if here.is_none_or(|(_, t)| opened < t) {
                here = Some((k, opened));
            }
        }
        if oldest.is_none_or(|(_, t)| opened < t) {
            oldest = Some((k, opened));
        }
    }
    decide(
        here.map(|x| x.0),
        count_here,
        oldest.map(|x| x.0),
        open,
        max,
        per_source.max(1),
    )
}

/// The rule itself, on what the caller found.
fn decide<K>(
    oldest_here: Option<K>,
    count_here: usize,
    oldest: Option<K>,
    open: usize,
    max: usize,
    per_source: usize,
) -> Admit<K> {
    if let Some(k) = oldest_here {
        if count_here >= per_source {
            return Admit::EvictSameSource(k);
        }
    }
    if open < max {
        return Admit::Accept;
    }
    match oldest {
        Some(k) => Admit::EvictOldest(k),
        None => Admit::Refuse,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    fn ip(n: u8) -> IpAddr {
        IpAddr::V4(Ipv4Addr::new(10, 0, 0, n))
    }

    #[test]
    fn a_source_at_its_cap_evicts_its_own_oldest_not_others() {
        let mut p = PreAuth::new(3);
        let mut open = 0;
        let other = p.insert(ip(9), 100usize);
        open += 1;
        for k in 0..3usize {
            assert_eq!(p.admit(ip(1), open, 10), Admit::Accept);
            p.insert(ip(1), k);
            open += 1;
        }
        assert_eq!(p.count_from(ip(1)), 3);
        // The fourth evicts the first of the same source, even with free slots.
        assert_eq!(p.admit(ip(1), open, 10), Admit::EvictSameSource(0));
        p.insert(ip(1), 3);
        assert_eq!(p.admit(ip(1), open, 10), Admit::EvictSameSource(1));
        assert_eq!(p.count_from(ip(1)), 2);
        assert_eq!(p.count_from(ip(9)), 1);
        p.remove(other);
        p.remove(other);
        assert_eq!(p.count_from(ip(9)), 0);
    }

    #[test]
    fn admit_among_applies_the_same_rules_to_a_listing() {
        use std::time::{Duration, Instant};
        let t0 = Instant::now();
        let s = Duration::from_secs(1);
        let conns = [
            (0usize, ip(1), t0 + s),
            (1, ip(1), t0),
            (2, ip(2), t0 + 2 * s),
        ];
        // Source 1 at its cap of 2: its oldest (1) goes, even with room.
        assert_eq!(
            admit_among(conns, ip(1), 3, 10, 2),
            Admit::EvictSameSource(1)
        );
        assert_eq!(admit_among(conns, ip(3), 3, 10, 2), Admit::Accept);
        // Full: the oldest of all.
        assert_eq!(admit_among(conns, ip(3), 10, 10, 2), Admit::EvictOldest(1));
        assert_eq!(
            admit_among(Vec::<(usize, IpAddr, Instant)>::new(), ip(3), 10, 10, 2),
            Admit::Refuse
        );
    }

    #[test]
    fn full_slots_evict_the_oldest_unauthenticated_and_spare_authenticated_ones() {
        let mut p = PreAuth::new(16);
        // Slot 0 authenticated (removed), slots 1..4 from four sources.
        let t0 = p.insert(ip(1), 0usize);
        p.remove(t0);
        let tickets: Vec<Ticket> = (1..4usize).map(|k| p.insert(ip(k as u8 + 1), k)).collect();
        assert_eq!(p.admit(ip(50), 4, 4), Admit::EvictOldest(1));
        p.insert(ip(50), 1);
        assert_eq!(p.admit(ip(51), 4, 4), Admit::EvictOldest(2));
        p.insert(ip(51), 2);
        // Slot 3 authenticates; the newcomers are evicted oldest first.
        p.remove(tickets[2]);
        assert_eq!(p.admit(ip(52), 4, 4), Admit::EvictOldest(1));
        assert_eq!(p.admit(ip(53), 4, 4), Admit::EvictOldest(2));
        // Every slot authenticated: refused.
        assert!(p.is_empty());
        assert_eq!(p.admit(ip(54), 4, 4), Admit::Refuse);
    }
}
