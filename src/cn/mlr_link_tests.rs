//! The MLR link driven with a fake clock against a real MLR-side session,
//! without sockets: the bytes the link transmits are fed to the fake MLR
//! and back.

use super::*;
use crate::addr::{Cell30, MacAddr};
use crate::cn::core::{CnCore, CoreConfig, MlrAnswer, Output};
use crate::cn::dataplane::CnAddr;
use crate::cn::translate;
use crate::mlrp::{Binding, CnRef, RegisterRole, RegisterStatusReply};
use std::net::Ipv4Addr;

const MLR: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 250), 6554);

fn bind_msg() -> CnBind {
    CnBind {
        network_name: "net".into(),
        cn_name: "cn1".into(),
        cn_addr: Ipv4Addr::new(10, 0, 0, 1),
        cn_port: 5554,
        pools: Vec::new(),
    }
}

fn key() -> NetworkKey {
    NetworkKey::derive(b"secret", "net")
}

fn link(t0: Instant) -> MlrLink<u64> {
    MlrLink::new(LinkConfig::new(MLR, Some(key()), bind_msg()), t0)
}

/// The MLR's side of one connection.
struct FakeMlr {
    session: Session,
    out: Vec<u8>,
    /// Requests received, in order.
    got: Vec<(RequestId, Message)>,
}

impl FakeMlr {
    /// A register in epoch 1.
    fn new(k: Option<&NetworkKey>) -> FakeMlr {
        FakeMlr::in_epoch(k, 1)
    }

    /// A register whose frames carry `epoch`.
    fn in_epoch(k: Option<&NetworkKey>, epoch: u32) -> FakeMlr {
        let mut session = Session::new(Role::Mlr, k, [7; 16]);
        session.set_epoch(epoch);
        let mut out = Vec::new();
        session.handshake(&mut out);
        FakeMlr {
            session,
            out,
            got: Vec::new(),
        }
    }

    /// Move bytes both ways until neither side has anything to say; the
    /// fake MLR answers with `answer` (None: stays silent).
    fn pump(
        &mut self,
        l: &mut MlrLink<u64>,
        now: Instant,
        answer: &mut dyn FnMut(&Message) -> Option<Message>,
    ) {
        for _ in 0..16 {
            let mut bytes = Vec::new();
            l.poll_transmit(&mut bytes);
            let from_mlr = std::mem::take(&mut self.out);
            if bytes.is_empty() && from_mlr.is_empty() {
                return;
            }
            if !from_mlr.is_empty() {
                l.handle_input(&from_mlr, now);
            }
            self.session.feed(&bytes);
            while let Some(ev) = self.session.poll(&mut self.out) {
                if let Ok(Incoming::Request { id, msg }) = ev {
                    if let Some(reply) = answer(&msg) {
                        self.session.reply(id, &reply, &mut self.out).unwrap();
                    }
                    self.got.push((id, msg));
                }
            }
        }
    }
}

/// A standalone register in epoch 1 that serves everything.
fn accept(msg: &Message) -> Option<Message> {
    serve_in(1, RegisterRole::Primary)(msg)
}

/// A register in `epoch` with `role` that accepts binds.
fn serve_in(epoch: u32, role: RegisterRole) -> impl Fn(&Message) -> Option<Message> {
    move |msg| match msg {
        Message::RegisterStatus => Some(Message::RegisterStatusReply(RegisterStatusReply {
            epoch,
            role,
            replication: mlrp::ReplicationState::None,
            peer: CnRef::new(Ipv4Addr::UNSPECIFIED, 0),
        })),
        other => serve_plain(other),
    }
}

fn serve_plain(msg: &Message) -> Option<Message> {
    match msg {
        Message::CnBind(_) => Some(Message::BindReply(BindReply::Accepted {
            lease_time_secs: 600,
            ping_interval_secs: 1,
        })),
        Message::Ping { nonce } => Some(Message::Pong { nonce: *nonce }),
        Message::Locate(_) => Some(Message::error(ErrorCode::NotFound, "no binding")),
        Message::ListCns => Some(Message::CnList(mlrp::CnList {
            entries: Vec::new(),
        })),
        _ => Some(Message::Ack),
    }
}

fn events(l: &mut MlrLink<u64>) -> Vec<Event<u64>> {
    std::iter::from_fn(|| l.poll_event()).collect()
}

fn actions(l: &mut MlrLink<u64>) -> Vec<Action> {
    std::iter::from_fn(|| l.poll_action()).collect()
}

/// Let the link ask for its connection at `now` and get it.
fn connected(l: &mut MlrLink<u64>, now: Instant) {
    l.handle_timeout(now);
    assert_eq!(actions(l), vec![Action::Connect(MLR)]);
    l.handle_connected(now);
}

/// Connect and bind at `now` against a fresh fake MLR.
fn bring_up(l: &mut MlrLink<u64>, now: Instant) -> FakeMlr {
    connected(l, now);
    let mut m = FakeMlr::new(Some(&key()));
    m.pump(l, now, &mut accept);
    m
}

#[test]
fn connects_handshakes_and_binds() {
    let t0 = Instant::now();
    let mut l = link(t0);
    assert_eq!(l.poll_timeout(), Some(t0), "connects at once");
    assert_eq!(l.phase(), Phase::Down);
    let m = bring_up(&mut l, t0);
    assert_eq!(l.phase(), Phase::Bound);
    assert_eq!(l.outcome(), Some(&Ok(())));
    assert!(matches!(&m.got[0].1, Message::CnBind(b) if b.cn_name == "cn1"));
    assert_eq!(
        events(&mut l),
        vec![Event::Bound {
            again: false,
            register: MLR,
            epoch: 1
        }]
    );
    // The MLR asked for a ping every second: three missed pings kill it.
    assert_eq!(
        l.heartbeat(),
        (Duration::from_secs(1), Duration::from_secs(3))
    );
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_secs(1)));
}

#[test]
fn heartbeat_keeps_a_live_link_and_detects_a_dead_one() {
    let t0 = Instant::now();
    let mut l = link(t0);
    let mut m = bring_up(&mut l, t0);
    events(&mut l);
    // Ten seconds of pings, each answered: still bound.
    let mut now = t0;
    for _ in 0..10 {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        m.pump(&mut l, now, &mut accept);
    }
    assert_eq!(now, t0 + Duration::from_secs(10));
    assert_eq!(l.phase(), Phase::Bound);
    // The heartbeat is RegisterStatus: one with the bind, one a second.
    let beats = m
        .got
        .iter()
        .filter(|(_, msg)| matches!(msg, Message::RegisterStatus))
        .count();
    assert_eq!(beats, 11);
    // The MLR goes silent: pings go out, nothing comes back; the link is
    // declared dead three seconds after the MLR was last heard.
    let heard = now;
    loop {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        m.pump(&mut l, now, &mut |_| None);
        if l.phase() == Phase::Down {
            break;
        }
        assert!(now < heard + Duration::from_secs(4));
    }
    assert_eq!(now, heard + Duration::from_secs(3));
    let ev = events(&mut l);
    assert!(
        matches!(&ev[..], [Event::Down { was_bound: true, retry_in, .. }] if *retry_in == BACKOFF_MIN),
        "{ev:?}"
    );
    assert!(matches!(&actions(&mut l)[..], [Action::Close { .. }]));
    assert!(matches!(
        l.outcome(),
        Some(Err(BindFailure::Unreachable(_)))
    ));
}

#[test]
fn reconnects_with_backoff_from_1_to_30_s_and_resets_after_a_bind() {
    let t0 = Instant::now();
    let mut l = link(t0);
    let mut waits = Vec::new();
    let mut last_attempt: Option<Instant> = None;
    for _ in 0..8 {
        let now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        assert_eq!(actions(&mut l), vec![Action::Connect(MLR)]);
        if let Some(prev) = last_attempt {
            waits.push((now - prev).as_secs());
        }
        last_attempt = Some(now);
        l.handle_closed("connection refused", now);
        assert!(matches!(&actions(&mut l)[..], [Action::Close { .. }]));
    }
    assert_eq!(waits, vec![1, 2, 4, 8, 16, 30, 30]);
    // The MLR is back: the next attempt binds and the backoff starts over.
    let now = l.poll_timeout().unwrap();
    l.handle_timeout(now);
    actions(&mut l);
    l.handle_connected(now);
    let mut m = FakeMlr::new(Some(&key()));
    m.pump(&mut l, now, &mut accept);
    assert!(l.is_bound());
    l.handle_closed("connection reset", now);
    let ev = events(&mut l);
    assert!(matches!(
        ev.last(),
        Some(Event::Down { was_bound: true, retry_in, .. }) if *retry_in == BACKOFF_MIN
    ));
}

#[test]
fn silent_host_gives_up_at_the_connect_deadline() {
    let t0 = Instant::now();
    let mut l = link(t0);
    // Connected, but the MLR never says Hello.
    connected(&mut l, t0);
    let mut hello = Vec::new();
    l.poll_transmit(&mut hello);
    assert!(!hello.is_empty(), "our Hello is sent at once");
    assert_eq!(l.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
    l.handle_timeout(t0 + CONNECT_TIMEOUT - Duration::from_millis(1));
    assert_eq!(l.phase(), Phase::Handshake);
    l.handle_timeout(t0 + CONNECT_TIMEOUT);
    assert_eq!(l.phase(), Phase::Down);
    assert!(matches!(
        l.outcome(),
        Some(Err(BindFailure::Unreachable(w))) if w.contains("no answer")
    ));
}

#[test]
fn refusal_at_bind_is_reported_as_refused() {
    let t0 = Instant::now();
    let mut l = link(t0);
    connected(&mut l, t0);
    let mut m = FakeMlr::new(Some(&key()));
    m.pump(&mut l, t0, &mut |msg| match msg {
        Message::CnBind(_) => Some(Message::BindReply(BindReply::Refused {
            code: ErrorCode::WrongNetwork,
            text: "this MLR serves network other".into(),
        })),
        _ => None,
    });
    assert_eq!(l.phase(), Phase::Down);
    assert!(
        matches!(l.outcome(), Some(Err(BindFailure::Refused(w))) if w.contains("other")),
        "{:?}",
        l.outcome()
    );
    assert!(events(&mut l)
        .iter()
        .any(|e| matches!(e, Event::Refused { .. })));
}

#[test]
fn wrong_secret_is_a_refusal_not_an_outage() {
    let t0 = Instant::now();
    let mut l = link(t0);
    connected(&mut l, t0);
    let mut m = FakeMlr::new(Some(&NetworkKey::derive(b"other", "net")));
    m.pump(&mut l, t0, &mut accept);
    assert!(
        matches!(l.outcome(), Some(Err(BindFailure::Refused(_)))),
        "{:?}",
        l.outcome()
    );
}

#[test]
fn requests_wait_for_the_bind_and_answers_carry_their_tag() {
    let t0 = Instant::now();
    let mut l = link(t0);
    assert_eq!(
        l.request(1, &Message::ListCns).unwrap_err(),
        LinkError::NotBound
    );
    let mut m = bring_up(&mut l, t0);
    events(&mut l);
    l.request(42, &Message::ListCns).unwrap();
    assert!(l.callers_waiting());
    m.pump(&mut l, t0, &mut accept);
    assert!(!l.callers_waiting());
    assert!(matches!(
        &events(&mut l)[..],
        [Event::Answer {
            tag: 42,
            msg: Message::CnList(_)
        }]
    ));
}

#[test]
fn pushed_requests_are_handed_up_and_answered() {
    let t0 = Instant::now();
    let mut l = link(t0);
    let mut m = bring_up(&mut l, t0);
    events(&mut l);
    let redirect = Message::Redirect(mlrp::Redirect {
        mac: MacAddr([2, 0, 0, 0, 0, 9]),
        cell: Cell30::containing(Ipv4Addr::new(10, 1, 0, 4)),
        to: CnRef::new(Ipv4Addr::new(10, 0, 0, 2), 5554),
    });
    m.session.request(&redirect, &mut m.out).unwrap();
    m.pump(&mut l, t0, &mut accept);
    let ev = events(&mut l);
    let [Event::Request { id, msg }] = &ev[..] else {
        panic!("{ev:?}")
    };
    assert_eq!(msg, &redirect);
    l.reply(*id, &Message::Ack).unwrap();
    let mut bytes = Vec::new();
    l.poll_transmit(&mut bytes);
    m.session.feed(&bytes);
    assert!(matches!(
        m.session.poll(&mut m.out),
        Some(Ok(Incoming::Reply {
            msg: Message::Ack,
            ..
        }))
    ));
}

#[test]
fn shutdown_unbinds_and_closes() {
    let t0 = Instant::now();
    let mut l = link(t0);
    let mut m = bring_up(&mut l, t0);
    l.shutdown();
    let [Action::Close { last_words }] = &actions(&mut l)[..] else {
        panic!()
    };
    m.session.feed(last_words);
    assert!(matches!(
        m.session.poll(&mut m.out),
        Some(Ok(Incoming::Request {
            msg: Message::Unbind,
            ..
        }))
    ));
    assert_eq!(l.poll_timeout(), None, "no retry after shutdown");
}

/// Carry out the core's MLR calls over the link, as the daemon does.
fn core_to_link(core: &mut CnCore, l: &mut MlrLink<u64>, now: Instant) {
    while let Some(o) = core.poll_output() {
        if let Output::Mlr { tag, call } = o {
            let msg = translate::request(&call, core.me());
            if let Err(e) = l.request(tag, &msg) {
                core.mlr_answer(tag, MlrAnswer::Error(e.to_string()), now);
            }
        }
    }
}

fn link_to_core(core: &mut CnCore, l: &mut MlrLink<u64>, now: Instant) {
    while let Some(ev) = l.poll_event() {
        match ev {
            Event::Bound { .. } => core.mlr_bound(&[]),
            Event::Down {
                was_bound: true, ..
            } => core.mlr_lost(now),
            Event::Answer { tag, msg } => core.mlr_answer(tag, translate::answer(msg), now),
            _ => {}
        }
    }
}

#[test]
fn stations_are_resynchronised_after_the_mlr_returns() {
    let t0 = Instant::now();
    let me = CnAddr {
        ip: Ipv4Addr::new(10, 0, 0, 1),
        port: 5554,
    };
    let mut core = CnCore::new(CoreConfig {
        me,
        reverse_tunnel: true,
        max_stations: 16,
        max_peers: 4,
        fallback_lease_secs: 600,
        new_station_rate: 0,
        shared_link: false,
    });
    let mut l = link(t0);
    let mut m = bring_up(&mut l, t0);
    link_to_core(&mut core, &mut l, t0);
    core_to_link(&mut core, &mut l, t0);
    // A station arrives and is allocated a /30 here.
    let mac = MacAddr([2, 0, 0, 0, 0, 7]);
    let cell = Cell30::containing(Ipv4Addr::new(10, 1, 0, 8));
    let binding = Message::Binding(Binding {
        mac,
        cell,
        parent: CnRef::new(me.ip, me.port),
        at: CnRef::new(me.ip, me.port),
        previous: None,
        lease_remaining_secs: 600,
    });
    core.dhcp_lookup(
        mac,
        crate::cn::core::LookupKind::Locate,
        Some(cell.station()),
        false,
        t0,
    );
    core_to_link(&mut core, &mut l, t0);
    let b = binding.clone();
    m.pump(&mut l, t0, &mut |msg| match msg {
        Message::Commit(_) => Some(b.clone()),
        other => accept(other),
    });
    link_to_core(&mut core, &mut l, t0);
    assert!(core.stations().get(&mac).is_some());
    // The MLR dies (connection reset); the link retries and finds it back.
    let t1 = t0 + Duration::from_secs(5);
    l.handle_closed("connection reset by peer", t1);
    link_to_core(&mut core, &mut l, t1);
    assert!(!core.mlr_up());
    let t2 = l.poll_timeout().unwrap();
    assert_eq!(t2, t1 + BACKOFF_MIN);
    l.handle_timeout(t2);
    assert!(matches!(
        &actions(&mut l)[..],
        [Action::Close { .. }, Action::Connect(MLR)]
    ));
    l.handle_connected(t2);
    let mut m2 = FakeMlr::new(Some(&key()));
    m2.pump(&mut l, t2, &mut accept);
    assert_eq!(
        events(&mut l).first(),
        Some(&Event::Bound {
            again: true,
            register: MLR,
            epoch: 1
        })
    );
    // Redo the bound event for the core (events() drained it above).
    core.mlr_bound(&[]);
    core_to_link(&mut core, &mut l, t2);
    m2.pump(&mut l, t2, &mut |msg| match msg {
        Message::Locate(_) => Some(binding.clone()),
        other => accept(other),
    });
    assert!(
        m2.got.iter().any(|(_, msg)| matches!(
            msg,
            Message::Locate(mlrp::Locate::ByIp(ip)) if *ip == cell.station()
        )),
        "the returned MLR is asked about the station: {:?}",
        m2.got
    );
    link_to_core(&mut core, &mut l, t2);
    assert!(core.mlr_up());
    assert!(core.stations().get(&mac).is_some());
}

// ---------------------------------------------------------------- failover

const BACKUP: SocketAddrV4 = SocketAddrV4::new(Ipv4Addr::new(10, 0, 0, 251), 6554);

fn pair_link(t0: Instant) -> MlrLink<u64> {
    let mut cfg = LinkConfig::new(MLR, Some(key()), bind_msg()).with_backup(BACKUP);
    cfg.heartbeat = Some(Duration::from_millis(250));
    cfg.deadline = Some(Duration::from_millis(1000));
    MlrLink::new(cfg, t0)
}

/// Let the link connect to whichever register it asks for at `now`, and
/// answer as `serve`; returns that register.
fn bind_to(
    l: &mut MlrLink<u64>,
    now: Instant,
    serve: &dyn Fn(&Message) -> Option<Message>,
) -> (SocketAddrV4, FakeMlr) {
    l.handle_timeout(now);
    let to = actions(l)
        .into_iter()
        .find_map(|a| match a {
            Action::Connect(to) => Some(to),
            _ => None,
        })
        .expect("a connect");
    l.handle_connected(now);
    // The register stamps the epoch it reports in its frames.
    let epoch = match serve(&Message::RegisterStatus) {
        Some(Message::RegisterStatusReply(st)) => st.epoch,
        _ => 1,
    };
    let mut m = FakeMlr::in_epoch(Some(&key()), epoch);
    m.pump(l, now, &mut |msg| serve(msg));
    (to, m)
}

#[test]
fn fails_over_to_the_backup_at_once_and_back() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    let (to, _p) = bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    assert_eq!(to, MLR, "the primary first");
    assert!(l.is_bound());
    events(&mut l);
    // The primary's process dies: its connection closes.
    let t1 = t0 + Duration::from_secs(5);
    l.handle_closed("connection closed by peer", t1);
    let ev = events(&mut l);
    assert!(
        matches!(&ev[..], [Event::Down { was_bound: true, retry_in, next, .. }]
            if retry_in.is_zero() && *next == BACKUP),
        "{ev:?}"
    );
    assert_eq!(l.poll_timeout(), Some(t1), "no backoff before the backup");
    // The backup promoted itself (epoch 2).
    let (to, mut b) = bind_to(&mut l, t1, &serve_in(2, RegisterRole::Primary));
    assert_eq!(to, BACKUP);
    assert_eq!(
        events(&mut l),
        vec![Event::Bound {
            again: true,
            register: BACKUP,
            epoch: 2
        }]
    );
    assert_eq!(l.max_epoch(), 2);
    // Now the backup's host vanishes silently: the heartbeat notices
    // within a second and the link goes back to the old primary.
    let heard = t1;
    let mut now = t1;
    while l.is_bound() {
        now = l.poll_timeout().unwrap();
        l.handle_timeout(now);
        b.pump(&mut l, now, &mut |_| None);
    }
    assert!(now - heard <= Duration::from_secs(1), "{:?}", now - heard);
    let ev = events(&mut l);
    assert!(
        matches!(ev.last(), Some(Event::Down { next, retry_in, .. }) if *next == MLR && retry_in.is_zero()),
        "{ev:?}"
    );
    // The old primary came back as backup and promoted itself (epoch 3).
    let (to, _p) = bind_to(&mut l, now, &serve_in(3, RegisterRole::Primary));
    assert_eq!(to, MLR);
    assert!(l.is_bound());
    assert_eq!(l.register_status().map(|s| s.epoch), Some(3));
}

/// With a backup, a register whose host does not answer the SYN is left
/// after the heartbeat deadline (1 s), not the 10 s connect timeout; a
/// connected one still gets the connect timeout for handshake and bind.
#[test]
fn a_vanished_host_is_left_for_the_other_register_within_the_deadline() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    l.handle_timeout(t0);
    assert_eq!(actions(&mut l), vec![Action::Connect(MLR)]);
    // No SYN-ACK ever comes.
    assert_eq!(l.poll_timeout(), Some(t0 + Duration::from_millis(1000)));
    l.handle_timeout(t0 + Duration::from_millis(999));
    assert_eq!(l.phase(), Phase::Connecting);
    let t1 = t0 + Duration::from_millis(1000);
    l.handle_timeout(t1);
    let ev = events(&mut l);
    assert!(
        matches!(&ev[..], [Event::Down { next, retry_in, why, .. }]
            if *next == BACKUP && retry_in.is_zero() && why.contains("no connection")),
        "{ev:?}"
    );
    // The backup's host answers the SYN; its process is slow to bind.
    l.handle_timeout(t1);
    assert!(actions(&mut l).contains(&Action::Connect(BACKUP)));
    l.handle_connected(t1 + Duration::from_millis(10));
    assert_eq!(l.poll_timeout(), Some(t1 + CONNECT_TIMEOUT));
    l.handle_timeout(t1 + Duration::from_secs(5));
    assert_eq!(l.phase(), Phase::Handshake);
    // Alone, the connect timeout holds for the SYN too.
    let mut alone = link(t0);
    alone.handle_timeout(t0);
    assert_eq!(alone.poll_timeout(), Some(t0 + CONNECT_TIMEOUT));
}

#[test]
fn a_register_of_an_older_epoch_is_left_for_the_other() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    l.handle_closed("connection reset", t0);
    bind_to(&mut l, t0, &serve_in(2, RegisterRole::Primary));
    assert!(l.is_bound() && l.register() == BACKUP);
    l.handle_closed("connection reset", t0);
    events(&mut l);
    // The old primary answers, still in epoch 1 (cut off, not stepped
    // down): the link does not bind there.
    let (to, _) = bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    assert_eq!(to, MLR);
    assert!(!l.is_bound());
    let ev = events(&mut l);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Down { why, next, .. }
            if why.contains("stale") && *next == BACKUP)),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::Bound { .. })));
}

#[test]
fn a_standby_backup_sends_the_cn_back_to_the_primary() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    // The primary refuses the connection (restarting); the backup is a
    // standby that still hears the primary and refuses the bind.
    l.handle_timeout(t0);
    assert_eq!(actions(&mut l), vec![Action::Connect(MLR)]);
    l.handle_closed("connection refused", t0);
    let refuse = |msg: &Message| match msg {
        Message::CnBind(_) => Some(Message::BindReply(BindReply::Refused {
            code: ErrorCode::NotPrimary,
            text: "standby backup of 10.0.0.250:6554".into(),
        })),
        other => serve_in(1, RegisterRole::Backup)(other),
    };
    let (to, _) = bind_to(&mut l, t0, &refuse);
    assert_eq!(to, BACKUP);
    assert!(!l.is_bound());
    assert!(
        matches!(l.outcome(), Some(Err(BindFailure::Unreachable(_)))),
        "a standby is not a configuration error: {:?}",
        l.outcome()
    );
    // Both tried: back off, then the primary again.
    assert_eq!(l.poll_timeout(), Some(t0 + BACKOFF_MIN));
    let (to, _) = bind_to(
        &mut l,
        t0 + BACKOFF_MIN,
        &serve_in(1, RegisterRole::Primary),
    );
    assert_eq!(to, MLR);
    assert!(l.is_bound());
}

#[test]
fn a_register_that_steps_down_is_left_within_a_heartbeat() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    let (_, mut m) = bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    events(&mut l);
    let now = l.poll_timeout().unwrap();
    assert_eq!(now, t0 + Duration::from_millis(250));
    l.handle_timeout(now);
    m.pump(&mut l, now, &mut |msg| {
        serve_in(1, RegisterRole::Backup)(msg)
    });
    assert!(!l.is_bound());
    assert!(matches!(
        events(&mut l).last(),
        Some(Event::Down { next, .. }) if *next == BACKUP
    ));
}

#[test]
fn a_register_without_failover_support_binds_in_epoch_0() {
    let t0 = Instant::now();
    let mut l = link(t0);
    l.handle_timeout(t0);
    actions(&mut l);
    l.handle_connected(t0);
    let mut m = FakeMlr::new(Some(&key()));
    m.pump(&mut l, t0, &mut |msg| match msg {
        Message::RegisterStatus => Some(Message::error(ErrorCode::BadRequest, "unknown type")),
        other => serve_plain(other),
    });
    assert_eq!(
        events(&mut l),
        vec![Event::Bound {
            again: false,
            register: MLR,
            epoch: 0
        }]
    );
}

// ------------------------------------------------------------ epochs in frames

#[test]
fn the_link_follows_the_highest_epoch_of_any_frame_and_stamps_it_on_its_own() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    // A register that does not answer RegisterStatus: only the frame
    // headers tell its epoch.
    let (to, m) = bind_to(&mut l, t0, &|msg: &Message| match msg {
        Message::RegisterStatus => Some(Message::error(ErrorCode::BadRequest, "unknown")),
        other => serve_plain(other),
    });
    assert_eq!(to, MLR);
    assert!(l.is_bound());
    assert_eq!(l.max_epoch(), 1, "from the frame headers");
    assert_eq!(m.session.peer_epoch(), 1, "the link's frames carry it");
    l.handle_closed("connection reset", t0);
    // The backup answers in epoch 4: followed, and said from then on.
    let (to, mut b) = bind_to(&mut l, t0, &serve_in(4, RegisterRole::Primary));
    assert_eq!(to, BACKUP);
    assert!(l.is_bound());
    assert_eq!(l.max_epoch(), 4);
    assert_eq!(b.session.peer_epoch(), 4, "the bind already carried 4");
    let id = l.request(9, &locate_msg()).unwrap();
    b.pump(&mut l, t0, &mut |msg| {
        serve_in(4, RegisterRole::Primary)(msg)
    });
    assert!(b.got.iter().any(|(i, _)| *i == id));
    assert_eq!(b.session.peer_epoch(), 4);
    // A new connection's Hello carries it too.
    l.handle_closed("connection reset", t0);
    l.handle_timeout(t0);
    actions(&mut l);
    l.handle_connected(t0);
    let mut hello = Vec::new();
    l.poll_transmit(&mut hello);
    let f = mlrp::Frame::new_checked(&hello[..]).unwrap();
    assert_eq!(f.msg_type(), mlrp::MessageType::Hello as u16);
    assert_eq!(f.epoch(), 4);
}

fn locate_msg() -> Message {
    Message::Locate(mlrp::Locate::ByMac(MacAddr([2, 0, 0, 0, 0, 9])))
}

/// A register whose answers carry an older epoch than the link has seen
/// is abandoned at its first answer, whatever its bodies claim (here it
/// even claims the newer epoch in RegisterStatusReply).
#[test]
fn a_register_answering_in_a_lower_epoch_is_abandoned_at_its_first_answer() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    l.handle_closed("connection reset", t0);
    bind_to(&mut l, t0, &serve_in(3, RegisterRole::Primary));
    assert!(l.is_bound() && l.max_epoch() == 3);
    l.handle_closed("connection reset", t0);
    events(&mut l);
    l.handle_timeout(t0);
    assert_eq!(actions(&mut l).last(), Some(&Action::Connect(MLR)));
    l.handle_connected(t0);
    let mut m = FakeMlr::in_epoch(Some(&key()), 2);
    m.pump(&mut l, t0, &mut |msg| {
        serve_in(3, RegisterRole::Primary)(msg)
    });
    assert!(!l.is_bound());
    let ev = events(&mut l);
    assert!(
        ev.iter().any(|e| matches!(e, Event::Down { why, next, .. }
            if why.contains("epoch 2, behind epoch 3") && *next == BACKUP)),
        "{ev:?}"
    );
    assert!(!ev.iter().any(|e| matches!(e, Event::Bound { .. })));
    assert_eq!(m.session.peer_epoch(), 3, "it was told epoch 3");
    assert_eq!(l.max_epoch(), 3);
}

/// An old primary's Hello is older than the link's epoch (it left before
/// ours arrived); told by our Hello, it steps down and, cut off from its
/// peer, promotes above it at our bind: the link binds there.
#[test]
fn an_older_hello_is_not_judged_only_the_answers_are() {
    let t0 = Instant::now();
    let mut l = pair_link(t0);
    bind_to(&mut l, t0, &serve_in(1, RegisterRole::Primary));
    l.handle_closed("connection reset", t0);
    bind_to(&mut l, t0, &serve_in(2, RegisterRole::Primary));
    l.handle_closed("connection reset", t0);
    events(&mut l);
    l.handle_timeout(t0);
    assert_eq!(actions(&mut l).last(), Some(&Action::Connect(MLR)));
    l.handle_connected(t0);
    let mut m = FakeMlr::in_epoch(Some(&key()), 1);
    // The fake register promotes itself to epoch 3 once it has the CN's
    // Hello (epoch 2) and its bind.
    let mut promoted = false;
    for _ in 0..16 {
        let mut bytes = Vec::new();
        l.poll_transmit(&mut bytes);
        let from_mlr = std::mem::take(&mut m.out);
        if bytes.is_empty() && from_mlr.is_empty() {
            break;
        }
        l.handle_input(&from_mlr, t0);
        m.session.feed(&bytes);
        while let Some(ev) = m.session.poll(&mut m.out) {
            if let Ok(Incoming::Request { id, msg }) = ev {
                if matches!(msg, Message::CnBind(_)) {
                    assert_eq!(m.session.peer_epoch(), 2);
                    m.session.set_epoch(3);
                    promoted = true;
                }
                let reply = serve_in(3, RegisterRole::Primary)(&msg).unwrap();
                m.session.reply(id, &reply, &mut m.out).unwrap();
            }
        }
    }
    assert!(promoted);
    assert!(l.is_bound(), "{:?}", events(&mut l));
    assert_eq!(l.register(), MLR);
    assert_eq!(l.max_epoch(), 3);
}
