//! Byte-literal tests of every message body: each layout of docs/MLRP.md
//! section 4 is pinned here (emit, parse back, every prefix and a trailing
//! byte refused).

use super::*;

fn mac(last: u8) -> MacAddr {
    MacAddr([0x02, 0, 0, 0, 0, last])
}
fn cell(a: u8, b: u8, c: u8, d: u8) -> Cell30 {
    Cell30::from_network(Ipv4Addr::new(a, b, c, d)).unwrap()
}
fn cn(last: u8) -> CnRef {
    CnRef::new(Ipv4Addr::new(10, 0, 0, last), 5554)
}

/// Emit `msg`, compare with the hand-written `bytes`, parse them back.
fn pinned(msg: Message, bytes: &[u8]) {
    assert_eq!(msg.buffer_len(), bytes.len(), "buffer_len of {msg}");
    let mut buf = vec![0u8; msg.buffer_len()];
    msg.emit(&mut buf);
    assert_eq!(buf, bytes, "emit of {msg}");
    assert_eq!(Message::parse(msg.msg_type() as u16, bytes).unwrap(), msg);
    // Every shorter prefix is refused, never a panic.
    for n in 0..bytes.len() {
        assert!(
            Message::parse(msg.msg_type() as u16, &bytes[..n]).is_err(),
            "{msg} prefix {n} accepted"
        );
    }
    // A trailing byte is refused.
    let mut long = bytes.to_vec();
    long.push(0);
    assert!(Message::parse(msg.msg_type() as u16, &long).is_err());
}

#[test]
fn register_status_layout_is_pinned() {
    pinned(Message::RegisterStatus, &[]);
    #[rustfmt::skip]
    let bytes = [
        0x00, 0x00, 0x00, 0x03,       // epoch 3
        0x01,                         // role: primary
        0x03,                         // replication: in sync
        10, 0, 0, 251, 0x19, 0x9a,    // peer 10.0.0.251:6554
    ];
    pinned(
        Message::RegisterStatusReply(RegisterStatusReply {
            epoch: 3,
            role: RegisterRole::Primary,
            replication: ReplicationState::InSync,
            peer: CnRef::new(Ipv4Addr::new(10, 0, 0, 251), 6554),
        }),
        &bytes,
    );
    assert_eq!(ErrorCode::from_u16(14), ErrorCode::NotPrimary);
    pinned(
        Message::ReplSubscribe(ReplSubscribe { epoch: 2 }),
        &[0, 0, 0, 2],
    );
    #[rustfmt::skip]
    let snap = [
        0, 0, 0, 2,                   // epoch 2
        0, 0, 0, 7,                   // chunk 7
        0x01, 0x00,                   // last, reserved
        0x00, 0x03, b'M', b'L', b'R', // 3 bytes of snapshot
    ];
    pinned(
        Message::ReplSnapshot(ReplSnapshot {
            epoch: 2,
            chunk: 7,
            last: true,
            data: b"MLR".to_vec(),
        }),
        &snap,
    );
    #[rustfmt::skip]
    let recs = [
        0, 0, 0, 2,                   // epoch 2
        0, 0, 0, 0, 0, 0, 0x01, 0x00, // seq 256
        0x00, 0x02, 0xab, 0xcd,       // 2 bytes of records
    ];
    pinned(
        Message::ReplRecords(ReplRecords {
            epoch: 2,
            seq: 256,
            data: vec![0xab, 0xcd],
        }),
        &recs,
    );
    // Unknown snapshot flags are refused.
    let mut bad = snap;
    bad[8] = 2;
    assert!(Message::parse(0x0043, &bad).is_err());
    assert_eq!(ErrorCode::NotPrimary.to_u16(), 14);
}

#[test]
fn locate_layout_is_pinned() {
    pinned(
        Message::Locate(Locate::ByMac(MacAddr([0, 0x11, 0x22, 0x33, 0x44, 0x55]))),
        &[0x01, 0x00, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55],
    );
    pinned(
        Message::Locate(Locate::ByIp(Ipv4Addr::new(10, 13, 102, 5))),
        &[0x02, 0x00, 10, 13, 102, 5],
    );
}

#[test]
fn binding_layout_is_pinned() {
    #[rustfmt::skip]
    let bytes = [
        0x02, 0, 0, 0, 0, 0x01,       // mac
        0x01, 0x00,                   // flags: previous present, reserved
        10, 13, 102, 4,               // cell
        10, 0, 0, 1, 0x15, 0xb2,      // parent 10.0.0.1:5554
        10, 0, 0, 2, 0x15, 0xb2,      // at
        10, 0, 0, 3, 0x15, 0xb2,      // previous
        0x00, 0x00, 0x0e, 0x10,       // lease 3600 s
    ];
    pinned(
        Message::Binding(Binding {
            mac: mac(1),
            cell: cell(10, 13, 102, 4),
            parent: cn(1),
            at: cn(2),
            previous: Some(cn(3)),
            lease_remaining_secs: 3600,
        }),
        &bytes,
    );
    #[rustfmt::skip]
    let no_prev = [
        0x02, 0, 0, 0, 0, 0x01, 0x00, 0x00, 10, 13, 102, 4,
        10, 0, 0, 1, 0x15, 0xb2, 10, 0, 0, 1, 0x15, 0xb2,
        0, 0, 0, 0, 0, 0, 0x00, 0x00, 0x00, 0x3c,
    ];
    pinned(
        Message::Binding(Binding {
            mac: mac(1),
            cell: cell(10, 13, 102, 4),
            parent: cn(1),
            at: cn(1),
            previous: None,
            lease_remaining_secs: 60,
        }),
        &no_prev,
    );
}

#[test]
fn cn_bind_layout_is_pinned() {
    #[rustfmt::skip]
    let bytes = [
        3, b'n', b'e', b't',                // network name
        3, b'c', b'n', b'1',                // cn name
        10, 0, 0, 1, 0x15, 0xb2,            // cn address, port 5554
        0x00, 0x01,                         // one pool
        10, 13, 102, 0, 10, 13, 102, 255,   // first, last
    ];
    pinned(
        Message::CnBind(CnBind {
            network_name: "net".into(),
            cn_name: "cn1".into(),
            cn_addr: Ipv4Addr::new(10, 0, 0, 1),
            cn_port: 5554,
            pools: vec![Pool {
                first: Ipv4Addr::new(10, 13, 102, 0),
                last: Ipv4Addr::new(10, 13, 102, 255),
            }],
        }),
        &bytes,
    );
}

#[test]
fn small_messages_layouts_are_pinned() {
    pinned(
        Message::error(ErrorCode::NotFound, "no"),
        &[0x00, 0x05, 2, b'n', b'o'],
    );
    pinned(
        Message::Allocate(Allocate {
            mac: mac(1),
            requested: Some(Ipv4Addr::new(10, 13, 102, 5)),
        }),
        &[2, 0, 0, 0, 0, 1, 0x01, 0x00, 10, 13, 102, 5],
    );
    pinned(
        Message::Allocate(Allocate {
            mac: mac(1),
            requested: None,
        }),
        &[2, 0, 0, 0, 0, 1, 0x00, 0x00, 0, 0, 0, 0],
    );
    pinned(
        Message::BindReply(BindReply::Accepted {
            lease_time_secs: 86400,
            ping_interval_secs: 30,
        }),
        &[0x00, 0x00, 0x00, 0x1e, 0x00, 0x01, 0x51, 0x80],
    );
    pinned(
        Message::BindReply(BindReply::Refused {
            code: ErrorCode::WrongNetwork,
            text: "x".into(),
        }),
        &[0x01, 0x00, 0x00, 0x03, 1, b'x'],
    );
    pinned(
        Message::Ping {
            nonce: 0x0102030405060708,
        },
        &[1, 2, 3, 4, 5, 6, 7, 8],
    );
    pinned(
        Message::Move(Move {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
            to: cn(2),
        }),
        &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8, 10, 0, 0, 2, 0x15, 0xb2],
    );
    pinned(
        Message::Redirect(Redirect {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
            to: cn(2),
        }),
        &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8, 10, 0, 0, 2, 0x15, 0xb2],
    );
    pinned(
        Message::Withdraw(Withdraw {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
        }),
        &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8],
    );
    pinned(
        Message::Release(Release {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
        }),
        &[2, 0, 0, 0, 0, 9, 10, 13, 102, 8],
    );
}

#[test]
fn hello_status_and_cn_list_layouts_are_pinned() {
    let mut hello = vec![0x01, 0x02, 0x00, 0x00];
    hello.extend_from_slice(&[0xaa; 16]);
    hello.extend_from_slice(&[3, b'a', b'b', b'c']);
    pinned(
        Message::Hello(Hello {
            version: 1,
            role: Role::Cn,
            nonce: [0xaa; 16],
            software: "abc".into(),
        }),
        &hello,
    );
    #[rustfmt::skip]
    let status = [
        0, 0, 0, 10,  0, 0, 0, 2,  0, 0, 0, 1,  0, 0, 0, 3,
        0, 0, 0, 4,  0, 0, 0, 5,  0, 0, 0, 0, 0, 0, 0, 6,
        1, b'm',
    ];
    pinned(
        Message::StatusReply(StatusReply {
            uptime_secs: 10,
            cns: 2,
            cns_up: 1,
            pools: 3,
            bindings: 4,
            free_cells: 5,
            requests: 6,
            software: "m".into(),
        }),
        &status,
    );
    #[rustfmt::skip]
    let list = [
        0x00, 0x02,
        2, b'c', b'1', 10, 0, 0, 1, 0x15, 0xb2, 1, 0x00, 0x01, 10, 1, 0, 0, 10, 1, 0, 255,
        2, b'c', b'2', 10, 0, 0, 2, 0x15, 0xb2, 0, 0x00, 0x00,
    ];
    pinned(
        Message::CnList(CnList {
            entries: vec![
                CnEntry {
                    name: "c1".into(),
                    addr: Ipv4Addr::new(10, 0, 0, 1),
                    port: 5554,
                    up: true,
                    pools: vec![Pool {
                        first: Ipv4Addr::new(10, 1, 0, 0),
                        last: Ipv4Addr::new(10, 1, 0, 255),
                    }],
                },
                CnEntry {
                    name: "c2".into(),
                    addr: Ipv4Addr::new(10, 0, 0, 2),
                    port: 5554,
                    up: false,
                    pools: vec![],
                },
            ],
        }),
        &list,
    );
    for m in [
        Message::Ack,
        Message::Unbind,
        Message::ListCns,
        Message::Status,
    ] {
        pinned(m, &[]);
    }
}

#[test]
fn parse_rejects_what_it_does_not_understand() {
    // Misaligned cell.
    assert_eq!(
        Message::parse(0x0026, &[2, 0, 0, 0, 0, 9, 10, 13, 102, 9]),
        Err(WireError::Malformed("cell not /30-aligned"))
    );
    // Unknown locate key, unknown role, unknown bind status.
    assert!(Message::parse(0x0021, &[3, 0, 1, 2, 3, 4]).is_err());
    let mut hello = vec![1, 9, 0, 0];
    hello.extend_from_slice(&[0; 16]);
    hello.push(0);
    assert!(Message::parse(0x0001, &hello).is_err());
    assert!(Message::parse(0x0011, &[2, 0, 0, 0, 0, 0, 0, 0]).is_err());
    // Pool with first > last.
    let bind = [
        0, 0, 10, 0, 0, 1, 0x15, 0xb2, 0, 1, 10, 0, 0, 9, 10, 0, 0, 1,
    ];
    assert!(Message::parse(0x0010, &bind).is_err());
    // Over-long string and bad UTF-8.
    let mut long = vec![65u8];
    long.extend_from_slice(&[b'a'; 65]);
    assert!(matches!(
        Message::parse(0x0010, &long),
        Err(WireError::StringTooLong(..))
    ));
    assert_eq!(
        Message::parse(0x0002, &[0, 1, 1, 0xff]),
        Err(WireError::BadUtf8("text"))
    );
    // Too many pools / entries are refused before allocating.
    assert!(matches!(
        Message::parse(0x0010, &[0, 0, 10, 0, 0, 1, 0x15, 0xb2, 0xff, 0xff]),
        Err(WireError::TooMany("pools", 65535))
    ));
    assert!(matches!(
        Message::parse(0x0031, &[0xff, 0xff]),
        Err(WireError::TooMany(..))
    ));
    // A count the body cannot hold.
    assert_eq!(
        Message::parse(0x0031, &[0x00, 0x10]),
        Err(WireError::Truncated)
    );
    // Unknown type.
    assert_eq!(
        Message::parse(0x7777, &[]),
        Err(WireError::UnknownType(0x7777))
    );
    // Flag bits set without their field, reserved bytes set.
    assert!(Message::parse(0x0020, &[2, 0, 0, 0, 0, 1, 0, 0, 10, 0, 0, 1]).is_err());
    assert!(Message::parse(0x0020, &[2, 0, 0, 0, 0, 1, 0, 1, 0, 0, 0, 0]).is_err());
}

#[test]
fn validate_refuses_what_cannot_be_encoded() {
    let m = Message::CnBind(CnBind {
        network_name: "n".repeat(65),
        cn_name: String::new(),
        cn_addr: Ipv4Addr::LOCALHOST,
        cn_port: 1,
        pools: vec![],
    });
    assert!(matches!(m.validate(), Err(WireError::StringTooLong(..))));
    let mut e = ErrorReply::new(ErrorCode::Internal, "é".repeat(200));
    assert!(e.text.len() <= MAX_TEXT_LEN);
    assert!(Message::Error(e.clone()).validate().is_ok());
    e.text = "x".repeat(300);
    assert!(Message::Error(e).validate().is_err());
}

#[test]
fn display_is_one_readable_line() {
    let m = Message::Binding(Binding {
        mac: mac(1),
        cell: cell(10, 13, 102, 4),
        parent: cn(1),
        at: cn(2),
        previous: None,
        lease_remaining_secs: 5,
    });
    assert_eq!(
        m.to_string(),
        "Binding 02:00:00:00:00:01 10.13.102.4/30 parent 10.0.0.1:5554 at 10.0.0.2:5554 lease 5s"
    );
}

#[test]
fn the_table_gives_every_type_one_code_one_name_and_its_kind() {
    let mut codes = std::collections::HashSet::new();
    let mut names = std::collections::HashSet::new();
    for &t in MessageType::ALL {
        assert_eq!(MessageType::from_u16(t as u16), Some(t));
        assert!(codes.insert(t as u16), "{t:?} code twice");
        assert!(names.insert(t.name()), "{t:?} name twice");
        assert_eq!(format!("{t:?}"), t.name());
    }
    assert_eq!(MessageType::ALL.len(), 26);
    assert_eq!(MessageType::Hello.kind(), Kind::Handshake);
    assert_eq!(MessageType::Offer.kind(), Kind::Request);
    assert_eq!(MessageType::RegisterStatusReply.kind(), Kind::Reply);
    // Empty bodies: the name alone; others: the name, then the body.
    assert_eq!(Message::RegisterStatus.to_string(), "RegisterStatus");
    assert_eq!(
        Message::Move(Move {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
            to: cn(2),
        })
        .to_string(),
        "Move 02:00:00:00:00:09 10.13.102.8/30 to 10.0.0.2:5554"
    );
    assert_eq!(
        Message::Commit(Commit {
            mac: mac(9),
            cell: cell(10, 13, 102, 8),
        })
        .to_string(),
        "Commit 02:00:00:00:00:09 10.13.102.8/30"
    );
    assert_eq!(
        Message::Offer(Allocate {
            mac: mac(9),
            requested: None,
        })
        .to_string(),
        "Offer 02:00:00:00:00:09"
    );
    assert_eq!(
        Message::Ping { nonce: 255 }.to_string(),
        "Ping 0x00000000000000ff"
    );
}
