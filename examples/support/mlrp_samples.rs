//! One sample of every MLRP message, shared by the corpus generator and the
//! codec benchmark (included with `#[path]`, not an example of its own).
#![allow(dead_code)]

use std::net::Ipv4Addr;
use tmip::addr::{Cell30, MacAddr};
use tmip::mlrp::*;

pub fn mac(n: u8) -> MacAddr {
    MacAddr([2, 0, 0, 0, 0, n])
}
pub fn cn(n: u8) -> CnRef {
    CnRef::new(Ipv4Addr::new(10, 0, 0, n), 5554)
}
pub fn cell() -> Cell30 {
    Cell30::containing(Ipv4Addr::new(10, 13, 102, 4))
}
pub fn pool() -> Pool {
    Pool {
        first: Ipv4Addr::new(10, 13, 102, 0),
        last: Ipv4Addr::new(10, 13, 102, 255),
    }
}

pub fn requests() -> Vec<Message> {
    vec![
        Message::Ping {
            nonce: 0x0102030405060708,
        },
        Message::CnBind(CnBind {
            network_name: "fuzz-net".into(),
            cn_name: "cn1".into(),
            cn_addr: Ipv4Addr::new(10, 0, 0, 1),
            cn_port: 5554,
            pools: vec![pool()],
        }),
        Message::Allocate(Allocate {
            mac: mac(1),
            requested: None,
        }),
        Message::Allocate(Allocate {
            mac: mac(1),
            requested: Some(Ipv4Addr::new(10, 13, 102, 5)),
        }),
        Message::Locate(Locate::ByMac(mac(1))),
        Message::Locate(Locate::ByIp(Ipv4Addr::new(10, 13, 102, 5))),
        Message::Move(Move {
            mac: mac(1),
            cell: cell(),
            to: cn(2),
        }),
        Message::Redirect(Redirect {
            mac: mac(1),
            cell: cell(),
            to: cn(2),
        }),
        Message::Withdraw(Withdraw {
            mac: mac(1),
            cell: cell(),
        }),
        Message::Release(Release {
            mac: mac(1),
            cell: cell(),
        }),
        Message::ListCns,
        Message::Status,
        Message::Unbind,
    ]
}

pub fn binding() -> Message {
    Message::Binding(Binding {
        mac: mac(1),
        cell: cell(),
        parent: cn(1),
        at: cn(2),
        previous: Some(cn(3)),
        lease_remaining_secs: 3600,
    })
}

pub fn replies() -> Vec<Message> {
    vec![
        Message::Ack,
        Message::Pong { nonce: 7 },
        Message::error(ErrorCode::NotFound, "no such station"),
        Message::BindReply(BindReply::Accepted {
            lease_time_secs: 86400,
            ping_interval_secs: 30,
        }),
        Message::BindReply(BindReply::Refused {
            code: ErrorCode::WrongNetwork,
            text: "network is other-net".into(),
        }),
        binding(),
        Message::CnList(CnList {
            entries: vec![CnEntry {
                name: "cn1".into(),
                addr: Ipv4Addr::new(10, 0, 0, 1),
                port: 5554,
                up: true,
                pools: vec![pool()],
            }],
        }),
        Message::StatusReply(StatusReply {
            uptime_secs: 10,
            cns: 2,
            cns_up: 1,
            pools: 2,
            bindings: 3,
            free_cells: 100,
            requests: 1000,
            software: "tmip-rs".into(),
        }),
    ]
}
