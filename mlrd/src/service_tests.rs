//! The MLR's request policy driven without sockets: binds and CN identity,
//! refusal codes chosen by type, the connection <-> CN map.

use super::*;
use tmip::addr::MacAddr;
use tmip::mlrp::{Allocate, Move, Release};

const NET: &str = "testnet";

fn svc() -> Service {
    Service::new(
        Register::new(NET, 3600, 30),
        Settings {
            ping_interval_secs: 10,
        },
        1000,
    )
}

fn ip(s: &str) -> Ipv4Addr {
    s.parse().unwrap()
}

fn from(a: &str) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(ip(a)), 40000)
}

fn bind_msg(name: &str, addr: &str, pool: Option<(&str, &str)>) -> Message {
    Message::CnBind(CnBind {
        network_name: NET.into(),
        cn_name: name.into(),
        cn_addr: ip(addr),
        cn_port: 5554,
        pools: pool
            .map(|(a, b)| Pool {
                first: ip(a),
                last: ip(b),
            })
            .into_iter()
            .collect(),
    })
}

fn refused(m: &Message) -> Option<ErrorCode> {
    match m {
        Message::BindReply(BindReply::Refused { code, .. }) => Some(*code),
        Message::Error(e) => Some(e.code),
        _ => None,
    }
}

fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}

#[test]
fn a_cn_binds_from_its_own_address_only() {
    let mut s = svc();
    let r = s.handle(
        1,
        from("10.0.0.1"),
        bind_msg("cn1", "10.0.0.1", Some(("10.1.0.0", "10.1.0.255"))),
        1000,
    );
    assert!(matches!(r, Message::BindReply(BindReply::Accepted { .. })));
    assert_eq!(s.conn_of(0), Some(1));
    // Finding 6: a secret holder at 10.0.0.100 claims CN1's address with
    // no pools. Refused by type (Unauthorized), CN1's session untouched.
    let r = s.handle(2, from("10.0.0.100"), bind_msg("x", "10.0.0.1", None), 1001);
    assert_eq!(refused(&r), Some(ErrorCode::Unauthorized), "{r}");
    assert!(r.to_string().contains("not the connection's source"), "{r}");
    assert_eq!(s.conn_of(0), Some(1));
    assert_eq!(s.cn_of(2), None);
    assert!(s.take_to_close().is_empty(), "CN1's session is not closed");
    assert!(s.reg().cn(0).unwrap().up);
    assert_eq!(s.reg().cn(0).unwrap().pools.len(), 1);
}

#[test]
fn a_second_cn_may_not_take_a_bound_name() {
    let mut s = svc();
    s.handle(1, from("10.0.0.1"), bind_msg("cn1", "10.0.0.1", None), 1000);
    let r = s.handle(2, from("10.0.0.2"), bind_msg("cn1", "10.0.0.2", None), 1000);
    assert_eq!(refused(&r), Some(ErrorCode::Conflict), "{r}");
    assert!(
        r.to_string().contains("'cn1' is bound by CN 10.0.0.1:5554"),
        "{r}"
    );
    assert_eq!(s.reg().cns().len(), 1);
    // After CN1's session closes (it is down), the name may move.
    assert_eq!(s.closed(1), Some(0));
    let r = s.handle(3, from("10.0.0.2"), bind_msg("cn1", "10.0.0.2", None), 1001);
    assert!(
        matches!(r, Message::BindReply(BindReply::Accepted { .. })),
        "{r}"
    );
}

#[test]
fn a_cn_binding_again_on_a_new_connection_replaces_its_old_session() {
    let mut s = svc();
    s.handle(1, from("10.0.0.1"), bind_msg("cn1", "10.0.0.1", None), 1000);
    s.handle(7, from("10.0.0.1"), bind_msg("cn1", "10.0.0.1", None), 1001);
    assert_eq!(s.conn_of(0), Some(7));
    assert_eq!(
        s.take_to_close(),
        vec![(1, "replaced by a new session of its CN")]
    );
    // The old connection closing later does not take the CN down.
    assert_eq!(s.closed(1), None);
    assert!(s.reg().cn(0).unwrap().up);
}

#[test]
fn refusal_codes_are_chosen_by_type() {
    let cases = [
        (Refusal::NotBound, ErrorCode::NotBound),
        (
            Refusal::Bind(BindError::WrongNetwork { got: "x".into() }),
            ErrorCode::WrongNetwork,
        ),
        (
            Refusal::Bind(BindError::BadPool("full of holes".into())),
            ErrorCode::BadRequest,
        ),
        (Refusal::Bind(BindError::TooManyCns), ErrorCode::TableFull),
        (
            Refusal::Bind(BindError::NameTaken {
                name: "a".into(),
                other: "b".into(),
            }),
            ErrorCode::Conflict,
        ),
        (
            Refusal::AddressMismatch {
                claimed: ip("10.0.0.1"),
                source: IpAddr::V4(ip("10.0.0.2")),
            },
            ErrorCode::Unauthorized,
        ),
        (
            Refusal::Register(RegisterError::PoolsExhausted),
            ErrorCode::PoolExhausted,
        ),
        (Refusal::Register(RegisterError::Quota), ErrorCode::Quota),
        (
            Refusal::Register(RegisterError::CellMismatch),
            ErrorCode::Conflict,
        ),
        (Refusal::NoBinding, ErrorCode::NotFound),
        (Refusal::CellMismatch, ErrorCode::Conflict),
        (
            Refusal::Unsupported(MessageType::Redirect),
            ErrorCode::Unsupported,
        ),
    ];
    for (r, code) in cases {
        assert_eq!(r.code(), code, "{r}");
        // The code on the wire is the type's, whatever the text says.
        assert_eq!(refused(&r.reply(MessageType::Allocate)), Some(code));
        assert_eq!(refused(&r.reply(MessageType::CnBind)), Some(code));
    }
}

#[test]
fn station_requests_need_a_bound_session_and_are_answered_by_type() {
    let mut s = svc();
    let alloc = |m| {
        Message::Allocate(Allocate {
            mac: mac(m),
            requested: None,
        })
    };
    let r = s.handle(1, from("10.0.0.1"), alloc(5), 1000);
    assert_eq!(refused(&r), Some(ErrorCode::NotBound));
    s.handle(
        1,
        from("10.0.0.1"),
        bind_msg("cn1", "10.0.0.1", Some(("10.1.0.0", "10.1.0.7"))),
        1000,
    );
    s.handle(2, from("10.0.0.2"), bind_msg("cn2", "10.0.0.2", None), 1000);
    let Message::Binding(b) = s.handle(1, from("10.0.0.1"), alloc(5), 1000) else {
        panic!("no binding");
    };
    // The pool holds two /30s: the third station finds none.
    s.handle(1, from("10.0.0.1"), alloc(6), 1000);
    let r = s.handle(1, from("10.0.0.1"), alloc(7), 1000);
    assert_eq!(refused(&r), Some(ErrorCode::PoolExhausted));
    // A move by CN2 pushes a Redirect to the parent (CN1, connection 1).
    let mv = Message::Move(Move {
        mac: mac(5),
        cell: b.cell,
        to: CnRef::new(ip("10.0.0.2"), 5554),
    });
    let r = s.handle(2, from("10.0.0.2"), mv, 1001);
    assert!(matches!(r, Message::Binding(_)), "{r}");
    assert_eq!(s.take_soft_changes(), 1);
    let pushes = s.take_pushes();
    assert_eq!(pushes.len(), 1);
    let (cn, msg) = s.push_message(pushes[0]);
    assert_eq!(s.conn_of(cn), Some(1));
    assert!(matches!(msg, Message::Redirect(_)), "{msg}");
    // Release naming another cell: Conflict; unknown MAC: NotFound.
    let other = tmip::addr::Cell30::from_network(ip("10.1.0.4")).unwrap();
    let rel = |m, cell| Message::Release(Release { mac: mac(m), cell });
    let r = s.handle(2, from("10.0.0.2"), rel(5, other), 1002);
    assert_eq!(refused(&r), Some(ErrorCode::Conflict));
    let r = s.handle(2, from("10.0.0.2"), rel(9, other), 1002);
    assert_eq!(refused(&r), Some(ErrorCode::NotFound));
    let r = s.handle(2, from("10.0.0.2"), rel(5, b.cell), 1002);
    assert_eq!(r, Message::Ack);
    // Pushes are requests the MLR sends, not serves.
    let r = s.handle(2, from("10.0.0.2"), msg, 1002);
    assert_eq!(refused(&r), Some(ErrorCode::Unsupported));
}

#[test]
fn a_silent_cn_is_marked_down_and_its_connection_handed_back() {
    let mut s = svc();
    s.handle(4, from("10.0.0.1"), bind_msg("cn1", "10.0.0.1", None), 1000);
    assert!(s.tick(1010, 100).is_empty());
    s.heard(4, 1020);
    assert!(s.tick(1040, 100).is_empty());
    assert_eq!(s.tick(1050, 100), vec![4]);
    assert_eq!(s.cn_of(4), None);
    assert!(!s.reg().cn(0).unwrap().up);
}

/// Issue 8, findings 2 and 3 through the request path: a DISCOVER's Offer
/// holds a cell (Binding with `at` 0.0.0.0:0), the REQUEST's Commit binds
/// it at the requester; a quota refusal is Quota; a Release from a
/// CN the station is not at is a Conflict.
#[test]
fn offer_commit_quota_and_release_are_answered_by_type() {
    let mut s = svc();
    s.handle(
        1,
        from("10.0.0.1"),
        bind_msg("cn1", "10.0.0.1", Some(("10.1.0.0", "10.1.0.15"))),
        1000,
    );
    s.handle(2, from("10.0.0.2"), bind_msg("cn2", "10.0.0.2", None), 1000);
    let offer = |n| {
        Message::Offer(Allocate {
            mac: mac(n),
            requested: None,
        })
    };
    let Message::Binding(b) = s.handle(2, from("10.0.0.2"), offer(1), 1000) else {
        panic!("no offer")
    };
    assert_eq!(
        b.at,
        CnRef::new(Ipv4Addr::UNSPECIFIED, 0),
        "held, not bound"
    );
    assert_eq!(b.lease_remaining_secs, 60);
    assert!(s.reg().get(mac(1)).is_none());
    let commit = Message::Commit(tmip::mlrp::Commit {
        mac: mac(1),
        cell: b.cell,
    });
    let Message::Binding(bound) = s.handle(2, from("10.0.0.2"), commit, 1001) else {
        panic!("not bound")
    };
    assert_eq!(bound.at, CnRef::new(ip("10.0.0.2"), 5554));
    assert_eq!(bound.lease_remaining_secs, 3600);
    // cn1's pool holds 4 cells; cn2 may fill 75 % (3): one more, then the quota.
    assert!(matches!(
        s.handle(2, from("10.0.0.2"), offer(2), 1002),
        Message::Binding(_)
    ));
    assert!(matches!(
        s.handle(2, from("10.0.0.2"), offer(3), 1002),
        Message::Binding(_)
    ));
    let r = s.handle(2, from("10.0.0.2"), offer(4), 1002);
    assert_eq!(refused(&r), Some(ErrorCode::Quota), "{r}");
    assert!(r.to_string().contains("quota"), "{r}");
    // cn1's own station still gets the last cell.
    assert!(matches!(
        s.handle(1, from("10.0.0.1"), offer(5), 1002),
        Message::Binding(_)
    ));
    // Only cn2, where mac 1 is, may release it.
    let rel = Message::Release(Release {
        mac: mac(1),
        cell: b.cell,
    });
    let r = s.handle(1, from("10.0.0.1"), rel.clone(), 1003);
    assert_eq!(refused(&r), Some(ErrorCode::Conflict), "{r}");
    assert!(matches!(
        s.handle(2, from("10.0.0.2"), rel, 1003),
        Message::Ack
    ));
}
