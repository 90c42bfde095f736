//! The CN-to-CN MLRP listener of a running tmipd, driven by a real MLRP
//! client from another namespace: ping, redirect and move change what the
//! CN routes; unsupported requests get an error; a wrong secret is refused.
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tmip::addr::{Cell30, MacAddr};
use tmip::mlrp::{Client, CnRef, ErrorCode, Message, NetworkKey, Redirect, Role, Withdraw};
use tmip_testbed::bed::*;

#[test]
fn the_cn_listener_serves_ping_redirect_and_move_with_authentication() {
    let mut bed = TestBed::with_cns(1);
    bed.set_rc(1, &["debug_level 3"]);
    bed.start_all();
    let c = bed.add_client(1);
    bed.udhcpc(c, &["-n", "-q"]);
    let ip: Ipv4Addr = bed.clients[c]
        .wait_event(&["bound"], 0, 20)
        .expect("lease")
        .parse()
        .unwrap();
    let cell = Cell30::containing(ip);
    let mac: MacAddr = bed.clients[c].mac.parse().unwrap();
    let gw = format!("{}/32", cell.gateway());
    assert!(bed.cns[0]
        .ns
        .sh(&format!("ip -4 addr show dev {MOBILE_IF}"))
        .contains(&gw));
    let cn = SocketAddr::from((cn_core_ip(1), 5554));
    let key = NetworkKey::derive(SECRET.as_bytes(), NETWORK_NAME);
    let other = CnRef::new(cn_core_ip(2), 5554);
    let home = CnRef::new(cn_core_ip(1), 5554);
    let replies = bed.mlr.run_in(|| {
        let mut k = Client::connect(cn, Role::Cn, Some(&key), Duration::from_secs(3))
            .expect("connect with the right secret");
        vec![
            k.call(&Message::Ping { nonce: 42 }).unwrap(),
            k.call(&Message::Redirect(Redirect {
                mac,
                cell,
                to: other,
            }))
            .unwrap(),
            k.call(&Message::Move(tmip::mlrp::Move {
                mac,
                cell,
                to: home,
            }))
            .unwrap(),
            k.call(&Message::Withdraw(Withdraw {
                mac: MacAddr([2, 9, 9, 9, 9, 9]),
                cell: Cell30::containing(Ipv4Addr::new(10, 99, 0, 4)),
            }))
            .unwrap(),
            k.call(&Message::Status).unwrap(),
        ]
    });
    assert_eq!(replies[0], Message::Pong { nonce: 42 });
    assert_eq!(replies[1], Message::Ack, "redirect");
    assert_eq!(replies[2], Message::Ack, "move back home");
    assert_eq!(replies[3], Message::Ack, "withdraw of an unknown cell");
    assert!(
        matches!(&replies[4], Message::Error(e) if e.code == ErrorCode::Unsupported),
        "{:?}",
        replies[4]
    );
    let log = bed.cns[0].log_text();
    assert!(
        log.contains(&format!("{mac} ({cell}) is now at CN {}", cn_core_ip(2))),
        "{log}"
    );
    // The redirect took the station off this CN's cell (its gateway address
    // went), the move back made it local again (no route to a peer left).
    assert!(log.contains(&format!("withdraw {cell}")), "{log}");
    assert!(log.contains(&format!("route {cell} locally")), "{log}");
    // A wrong secret does not get a session.
    let bad = NetworkKey::derive(b"wrong", NETWORK_NAME);
    let refused = bed
        .mlr
        .run_in(|| Client::connect(cn, Role::Cn, Some(&bad), Duration::from_secs(3)).map(|_| ()));
    assert!(refused.is_err(), "a wrong secret was accepted");
    assert!(
        bed.cns[0].wait_log(&format!("MLRP input from {MLR_IP}:"), 0, 5),
        "{}",
        bed.cns[0].log_text()
    );
    let (code, out) = bed.evaluate(1);
    assert_eq!(code, 0, "{out}");
    bed.cns[0].stop();
}
