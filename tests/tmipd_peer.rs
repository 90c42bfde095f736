//! The CN-to-CN MLRP listener of a running tmipd, driven by a real MLRP
//! client from another namespace: ping, redirect and move change what the
//! CN routes; unsupported requests get an error; a wrong secret is refused.
mod common;
mod tmipd_bed;

use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;
use tmip::addr::{Cell30, MacAddr};
use tmip::mlrp::{Client, CnRef, ErrorCode, Message, NetworkKey, Redirect, Role, Withdraw};
use tmipd_bed::*;

const SECRET: &str = "peer-secret";

#[test]
fn the_cn_listener_serves_ping_redirect_and_move_with_authentication() {
    let mut bed = Bed::new(1, Some(SECRET));
    bed.set_rc(0, &["debug_level 3"]);
    bed.start_all();
    let mut c = bed.client(0);
    c.udhcpc(&bed.dir, &["-n", "-q"]);
    let ip: Ipv4Addr = c
        .wait_event(&["bound"], 0, 20)
        .expect("lease")
        .parse()
        .unwrap();
    let cell = Cell30::containing(ip);
    let mac: MacAddr =
        c.ns.sh(&format!("cat /sys/class/net/{}/address", c.ifname))
            .trim()
            .parse()
            .unwrap();
    let gw = format!("{}/32", cell.gateway());
    assert!(bed.cns[0].ns.sh("ip -4 addr show dev mob").contains(&gw));
    let cn = SocketAddr::from(([10, 13, 0, 1], 5554));
    let key = NetworkKey::derive(SECRET.as_bytes(), NETWORK);
    let other = CnRef::new(Ipv4Addr::new(10, 13, 0, 2), 5554);
    let home = CnRef::new(Ipv4Addr::new(10, 13, 0, 1), 5554);
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
        log.contains(&format!("{mac} ({cell}) is now at CN 10.13.0.2")),
        "{log}"
    );
    // The redirect took the station off this CN's cell (its gateway address
    // went), the move back made it local again (no route to a peer left).
    assert!(log.contains(&format!("withdraw {cell}")), "{log}");
    assert!(log.contains(&format!("route {cell} locally")), "{log}");
    // A wrong secret does not get a session.
    let bad = NetworkKey::derive(b"wrong", NETWORK);
    let refused = bed
        .mlr
        .run_in(|| Client::connect(cn, Role::Cn, Some(&bad), Duration::from_secs(3)).map(|_| ()));
    assert!(refused.is_err(), "a wrong secret was accepted");
    assert!(
        bed.cns[0].wait_log("MLRP input from 10.13.0.250:", 0, 5),
        "{}",
        bed.cns[0].log_text()
    );
    let (code, out) = bed.evaluate(0);
    assert_eq!(code, 0, "{out}");
    bed.cns[0].stop();
}
