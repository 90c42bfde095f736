//! Session tests: handshake, request/reply matching, split feeding,
//! authentication and replay protection, limits and malformed input.

use super::*;
use crate::addr::MacAddr;
use crate::mlrp::message::Locate;
use crate::mlrp::{frame::MAGIC, Binding, CnRef};
use std::net::Ipv4Addr;

const KEY_SECRET: &[u8] = b"correct horse";

fn key() -> NetworkKey {
    NetworkKey::derive(KEY_SECRET, "test-net")
}

fn locate(last: u8) -> Message {
    Message::Locate(Locate::ByMac(MacAddr([2, 0, 0, 0, 0, last])))
}

/// A CN session and an MLR session, handshaken; returns them with their
/// output buffers drained.
fn pair_with(ka: Option<&NetworkKey>, kb: Option<&NetworkKey>) -> (Session, Session) {
    let mut a = Session::new(Role::Cn, ka, [1; 16]);
    let mut b = Session::new(Role::Mlr, kb, [2; 16]);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    a.handshake(&mut oa);
    b.handshake(&mut ob);
    b.feed(&oa);
    a.feed(&ob);
    let (mut xa, mut xb) = (Vec::new(), Vec::new());
    assert!(matches!(
        b.poll(&mut xb),
        Some(Ok(Incoming::Established { peer })) if peer.role == Role::Cn && peer.nonce == [1; 16]
    ));
    assert!(matches!(
        a.poll(&mut xa),
        Some(Ok(Incoming::Established { peer })) if peer.role == Role::Mlr
    ));
    assert!(
        xa.is_empty() && xb.is_empty(),
        "nothing more to send after Hello"
    );
    (a, b)
}

fn pair(auth: bool) -> (Session, Session) {
    let k = key();
    let k = auth.then_some(&k);
    pair_with(k, k)
}

/// Poll everything out of `s`.
fn drain(s: &mut Session, out: &mut Vec<u8>) -> Vec<Result<Incoming, MlrpError>> {
    let mut v = Vec::new();
    while let Some(r) = s.poll(out) {
        v.push(r);
    }
    v
}

/// A raw frame with a MAC from `tagger` (or none).
fn raw(flags_: u8, seq: u64, id: u32, ty: u16, body: &[u8], tagger: Option<&Tagger>) -> Vec<u8> {
    let mac = if tagger.is_some() { MAC_LEN } else { 0 };
    let len = HEADER_LEN + body.len() + mac;
    let mut v = vec![0u8; len];
    let mut f = Frame::new_unchecked(&mut v[..]);
    Header {
        version: VERSION,
        flags: flags_ | if tagger.is_some() { flags::MAC } else { 0 },
        length: len as u32,
        sequence: seq,
        request_id: id,
        msg_type: ty,
        epoch: 0,
    }
    .emit(&mut f);
    f.body_mut().copy_from_slice(body);
    if let Some(t) = tagger {
        let tag = t.tag(&v[..HEADER_LEN + body.len()]);
        v[HEADER_LEN + body.len()..].copy_from_slice(&tag);
    }
    v
}

/// The connection-level notice a failing session appended to `out`.
fn notice_code(out: &[u8]) -> ErrorCode {
    let f = Frame::new_checked(out).expect("one notice frame");
    assert_eq!(f.request_id(), 0);
    assert_eq!(f.msg_type(), MessageType::Error as u16);
    ErrorReply::parse(f.body()).unwrap().code
}

#[test]
fn request_and_reply_round_trip_with_ids_echoed() {
    for auth in [false, true] {
        let (mut a, mut b) = pair(auth);
        let mut wire = Vec::new();
        let id1 = a.request(&locate(1), &mut wire).unwrap();
        let id2 = a.request(&Message::Ping { nonce: 9 }, &mut wire).unwrap();
        assert_ne!(id1, id2);
        assert_eq!(a.outstanding(), 2);
        b.feed(&wire);
        let mut back = Vec::new();
        let got = drain(&mut b, &mut back);
        assert_eq!(
            got,
            vec![
                Ok(Incoming::Request {
                    id: id1,
                    msg: locate(1)
                }),
                Ok(Incoming::Request {
                    id: id2,
                    msg: Message::Ping { nonce: 9 }
                }),
            ]
        );
        // Answer out of order.
        b.reply(id2, &Message::Pong { nonce: 9 }, &mut back)
            .unwrap();
        b.reply(
            id1,
            &Message::error(ErrorCode::NotFound, "unknown"),
            &mut back,
        )
        .unwrap();
        a.feed(&back);
        let mut x = Vec::new();
        let got = drain(&mut a, &mut x);
        assert_eq!(
            got,
            vec![
                Ok(Incoming::Reply {
                    id: id2,
                    msg: Message::Pong { nonce: 9 }
                }),
                Ok(Incoming::Reply {
                    id: id1,
                    msg: Message::error(ErrorCode::NotFound, "unknown")
                }),
            ]
        );
        assert_eq!(a.outstanding(), 0);
        assert!(x.is_empty());
        assert_eq!(a.auth_enabled(), auth);
    }
}

#[test]
fn either_side_may_request() {
    let (mut a, mut b) = pair(true);
    let mut wire = Vec::new();
    let m = Message::Redirect(crate::mlrp::Redirect {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        cell: crate::addr::Cell30::containing(Ipv4Addr::new(10, 1, 0, 5)),
        to: CnRef::new(Ipv4Addr::new(10, 0, 0, 2), 5554),
    });
    let id = b.request(&m, &mut wire).unwrap();
    a.feed(&wire);
    let mut back = Vec::new();
    assert_eq!(
        drain(&mut a, &mut back),
        vec![Ok(Incoming::Request { id, msg: m })]
    );
    a.reply(id, &Message::Ack, &mut back).unwrap();
    b.feed(&back);
    assert_eq!(
        drain(&mut b, &mut Vec::new()),
        vec![Ok(Incoming::Reply {
            id,
            msg: Message::Ack
        })]
    );
}

#[test]
fn one_byte_at_a_time_gives_the_same_messages() {
    for auth in [false, true] {
        let k = key();
        let k = auth.then_some(&k);
        let mut a = Session::new(Role::Cn, k, [1; 16]);
        let mut b = Session::new(Role::Mlr, k, [2; 16]);
        let mut wire = Vec::new();
        a.handshake(&mut wire);
        let mut ob = Vec::new();
        b.handshake(&mut ob);
        a.feed(&ob);
        assert!(matches!(
            a.poll(&mut Vec::new()),
            Some(Ok(Incoming::Established { .. }))
        ));
        let bind = Message::CnBind(crate::mlrp::CnBind {
            network_name: "test-net".into(),
            cn_name: "cn1".into(),
            cn_addr: Ipv4Addr::new(10, 0, 0, 1),
            cn_port: 5554,
            pools: vec![crate::mlrp::Pool {
                first: Ipv4Addr::new(10, 1, 0, 0),
                last: Ipv4Addr::new(10, 1, 0, 255),
            }],
        });
        let id1 = a.request(&bind, &mut wire).unwrap();
        let id2 = a.request(&locate(7), &mut wire).unwrap();
        let mut got = Vec::new();
        let mut out = Vec::new();
        for byte in &wire {
            b.feed(std::slice::from_ref(byte));
            got.extend(drain(&mut b, &mut out));
            assert!(b.buffered() <= MAX_FRAME_LEN);
        }
        assert!(matches!(&got[0], Ok(Incoming::Established { .. })));
        assert_eq!(got[1], Ok(Incoming::Request { id: id1, msg: bind }));
        assert_eq!(
            got[2],
            Ok(Incoming::Request {
                id: id2,
                msg: locate(7)
            })
        );
        assert_eq!(got.len(), 3);
        assert_eq!(b.buffered(), 0);
    }
}

#[test]
fn plain_request_frame_layout_is_pinned() {
    let (mut a, _b) = pair(false);
    a.set_epoch(3);
    let mut wire = Vec::new();
    a.request(&locate(0x55), &mut wire).unwrap();
    #[rustfmt::skip]
    let expected = [
        b'M', b'L', 0x02, 0x00,             // magic, version 2, no flags
        0x00, 0x00, 0x00, 0x24,             // length 36
        0, 0, 0, 0, 0, 0, 0, 1,             // sequence 1 (the Hello was 0)
        0x00, 0x00, 0x00, 0x01,             // request id 1
        0x00, 0x21, 0x00, 0x00,             // type Locate, reserved
        0x00, 0x00, 0x00, 0x03,             // epoch 3
        0x01, 0x00, 2, 0, 0, 0, 0, 0x55,    // by MAC 02:00:00:00:00:55
    ];
    assert_eq!(wire, expected);
}

#[test]
fn authenticated_frame_matches_the_spec_test_vector() {
    // docs/MLRP.md "Test vector": secret "correct horse", network
    // "test-net", nonces 01.. (CN) and 02.. (MLR); the CN's first request
    // Locate 02:00:00:00:00:55 in epoch 3 carries this tag (computed
    // independently).
    let (mut a, mut b) = pair(true);
    a.set_epoch(3);
    let mut wire = Vec::new();
    a.request(&locate(0x55), &mut wire).unwrap();
    assert_eq!(wire.len(), 68);
    assert_eq!(&wire[..4], &[b'M', b'L', 2, flags::MAC]);
    assert_eq!(&wire[4..8], &[0, 0, 0, 68]);
    assert_eq!(&wire[24..28], &[0, 0, 0, 3], "epoch");
    let hex: String = wire[36..].iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(hex, SPEC_TAG);
    // The epoch is covered by the tag: changed, the frame is refused.
    let mut forged = wire.clone();
    forged[27] = 4;
    let mut out = Vec::new();
    b.feed(&forged);
    assert_eq!(b.poll(&mut out), Some(Err(MlrpError::BadMac)));
}

/// Filled from docs/MLRP.md (computed with Python's hmac module).
const SPEC_TAG: &str = "7aedb3bee97ac819a6c7b5853ccd8722ff6a4dca937aa9f9fb29f6a708a41ec3";

/// docs/MLRP.md §9, Offer and Commit: the CN's first two requests on the
/// test-vector session, Offer for 02:00:00:00:00:55 requesting 10.1.0.5, then
/// Commit of 10.1.0.4/30; with and without a secret (tags computed with
/// Python's hmac module).
#[test]
fn offer_and_commit_frames_match_the_spec_test_vectors() {
    let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02x}")).collect::<String>();
    let mac = MacAddr([2, 0, 0, 0, 0, 0x55]);
    let offer = Message::Offer(crate::mlrp::Allocate {
        mac,
        requested: Some(Ipv4Addr::new(10, 1, 0, 5)),
    });
    let commit = Message::Commit(crate::mlrp::Commit {
        mac,
        cell: crate::addr::Cell30::containing(Ipv4Addr::new(10, 1, 0, 4)),
    });
    let (mut a, mut b) = pair(true);
    a.set_epoch(3);
    let (mut f1, mut f2) = (Vec::new(), Vec::new());
    a.request(&offer, &mut f1).unwrap();
    a.request(&commit, &mut f2).unwrap();
    assert_eq!(
        hex(&f1),
        "4d4c020200000048000000000000000100000001002700000000000302000000005501000a010005\
         b682052b3c92f56806e65151dba425c76b31b5e2bf6663002502d6b5679140f9"
    );
    assert_eq!(
        hex(&f2),
        "4d4c02020000004600000000000000020000000200280000000000030200000000550a010004\
         2a844b4db3e506f4839fe966bae6a51fc0a72f66cda02894f53bdd557ed23e74"
    );
    b.feed(&f1);
    b.feed(&f2);
    let mut out = Vec::new();
    for want in [offer.clone(), commit.clone()] {
        match b.poll(&mut out) {
            Some(Ok(Incoming::Request { msg, .. })) => assert_eq!(msg, want),
            other => panic!("{other:?}"),
        }
    }
    let (mut a, _b) = pair(false);
    a.set_epoch(3);
    let (mut f1, mut f2) = (Vec::new(), Vec::new());
    a.request(&offer, &mut f1).unwrap();
    a.request(&commit, &mut f2).unwrap();
    assert_eq!(
        hex(&f1),
        "4d4c020000000028000000000000000100000001002700000000000302000000005501000a010005"
    );
    assert_eq!(
        hex(&f2),
        "4d4c02000000002600000000000000020000000200280000000000030200000000550a010004"
    );
}

#[test]
fn tampered_frame_is_refused() {
    let (mut a, mut b) = pair(true);
    let mut wire = Vec::new();
    a.request(&locate(1), &mut wire).unwrap();
    let last = wire.len() - MAC_LEN - 1;
    wire[last] ^= 1;
    b.feed(&wire);
    let mut out = Vec::new();
    assert_eq!(b.poll(&mut out), Some(Err(MlrpError::BadMac)));
    assert!(b.is_closed());
    assert_eq!(notice_code(&out), ErrorCode::Unauthorized);
    // Closed for good: nothing more comes out.
    b.feed(&wire);
    assert_eq!(b.poll(&mut out), None);
    assert_eq!(b.request(&locate(1), &mut out), Err(MlrpError::Closed));
}

#[test]
fn replayed_frame_is_refused() {
    for auth in [true, false] {
        let (mut a, mut b) = pair(auth);
        let mut wire = Vec::new();
        a.request(&locate(1), &mut wire).unwrap();
        b.feed(&wire);
        assert!(matches!(
            b.poll(&mut Vec::new()),
            Some(Ok(Incoming::Request { .. }))
        ));
        b.feed(&wire);
        let mut out = Vec::new();
        assert_eq!(
            b.poll(&mut out),
            Some(Err(MlrpError::Sequence {
                expected: 2,
                got: 1
            }))
        );
        assert_eq!(notice_code(&out), ErrorCode::Protocol);
    }
}

#[test]
fn reordered_frames_are_refused() {
    let (mut a, mut b) = pair(true);
    let (mut f1, mut f2) = (Vec::new(), Vec::new());
    a.request(&locate(1), &mut f1).unwrap();
    a.request(&locate(2), &mut f2).unwrap();
    b.feed(&f2);
    b.feed(&f1);
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::Sequence {
            expected: 1,
            got: 2
        }))
    );
}

#[test]
fn frame_from_another_connection_is_refused() {
    // Same network key, same sequence position, but other nonces.
    let (mut a1, _b1) = pair(true);
    let k = key();
    let mut a2 = Session::new(Role::Cn, Some(&k), [3; 16]);
    let mut b2 = Session::new(Role::Mlr, Some(&k), [4; 16]);
    let (mut o1, mut o2) = (Vec::new(), Vec::new());
    a2.handshake(&mut o1);
    b2.handshake(&mut o2);
    b2.feed(&o1);
    assert!(matches!(
        b2.poll(&mut Vec::new()),
        Some(Ok(Incoming::Established { .. }))
    ));
    let mut wire = Vec::new();
    a1.request(&locate(1), &mut wire).unwrap();
    b2.feed(&wire);
    assert_eq!(b2.poll(&mut Vec::new()), Some(Err(MlrpError::BadMac)));
}

#[test]
fn reflected_frames_are_refused() {
    // Our own request sent back to us uses the other direction's key.
    let (mut a, _b) = pair(true);
    let mut wire = Vec::new();
    a.request(&locate(1), &mut wire).unwrap();
    a.feed(&wire);
    assert_eq!(a.poll(&mut Vec::new()), Some(Err(MlrpError::BadMac)));
    // Our own Hello sent back to us.
    let mut s = Session::new(Role::Mlr, None, [5; 16]);
    let mut hello = Vec::new();
    s.handshake(&mut hello);
    s.feed(&hello);
    assert_eq!(
        s.poll(&mut Vec::new()),
        Some(Err(MlrpError::UnexpectedHello))
    );
}

#[test]
fn wrong_secret_or_network_name_fails_the_hello() {
    let good = key();
    for bad in [
        NetworkKey::derive(b"wrong", "test-net"),
        NetworkKey::derive(KEY_SECRET, "other-net"),
    ] {
        let mut a = Session::new(Role::Cn, Some(&bad), [1; 16]);
        let mut b = Session::new(Role::Mlr, Some(&good), [2; 16]);
        let mut wire = Vec::new();
        a.handshake(&mut wire);
        b.feed(&wire);
        let mut out = Vec::new();
        assert_eq!(b.poll(&mut out), Some(Err(MlrpError::BadMac)));
        // The notice reaches the CN as a readable reason.
        let mut ob = Vec::new();
        b.handshake(&mut ob);
        // (b is closed: handshake adds nothing; deliver only the notice)
        assert!(ob.is_empty());
        a.feed(&out);
        match a.poll(&mut Vec::new()) {
            Some(Err(MlrpError::PeerClosed(e))) => assert_eq!(e.code, ErrorCode::Unauthorized),
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn secret_on_one_side_only_is_refused_both_ways() {
    let k = key();
    let mut a = Session::new(Role::Cn, None, [1; 16]);
    let mut b = Session::new(Role::Mlr, Some(&k), [2; 16]);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    a.handshake(&mut oa);
    b.handshake(&mut ob);
    b.feed(&oa);
    a.feed(&ob);
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::AuthMismatch { local_secret: true }))
    );
    assert_eq!(
        a.poll(&mut Vec::new()),
        Some(Err(MlrpError::AuthMismatch {
            local_secret: false
        }))
    );
}

#[test]
fn unauthenticated_frame_after_an_authenticated_hello_is_refused() {
    let (_a, mut b) = pair(true);
    b.feed(&raw(0, 1, 1, MessageType::Ping as u16, &[0; 8], None));
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::AuthMismatch { local_secret: true }))
    );
}

/// Feed the first 8 bytes of a header announcing `len`, in two parts: the
/// first 7 must not decide anything; returns what the 8th brings.
fn header_in_two(
    b: &mut Session,
    flag_bits: u8,
    len: u32,
    out: &mut Vec<u8>,
) -> Option<Result<Incoming, MlrpError>> {
    let mut head = vec![MAGIC[0], MAGIC[1], VERSION, flag_bits];
    head.extend_from_slice(&len.to_be_bytes());
    b.feed(&head[..7]);
    assert_eq!(b.poll(out), None);
    b.feed(&head[7..]);
    b.poll(out)
}

#[test]
fn oversized_length_is_refused_from_the_first_eight_bytes() {
    let (_a, mut b) = pair(false);
    let mut out = Vec::new();
    assert_eq!(
        header_in_two(&mut b, 0, MAX_FRAME_LEN as u32 + 1, &mut out),
        Some(Err(MlrpError::Frame(WireError::FrameTooLarge {
            len: MAX_FRAME_LEN as u32 + 1,
            max: MAX_FRAME_LEN
        })))
    );
    assert_eq!(notice_code(&out), ErrorCode::Protocol);
    // Further bytes are not buffered.
    b.feed(&[0; 1000]);
    assert_eq!(b.buffered(), 0);
    // The largest allowed frame is accepted as far as length goes.
    let (_a, mut b) = pair(false);
    let body = vec![0u8; MAX_FRAME_LEN - HEADER_LEN];
    b.feed(&raw(0, 1, 1, 0x7777, &body, None));
    assert!(matches!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::BadRequest {
            error: WireError::UnknownType(0x7777),
            ..
        }))
    ));
}

#[test]
fn length_shorter_than_a_header_is_refused() {
    let (_a, mut b) = pair(false);
    let mut f = raw(0, 1, 1, MessageType::Ping as u16, &[0; 8], None);
    f[4..8].copy_from_slice(&10u32.to_be_bytes());
    b.feed(&f);
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::Frame(WireError::BadLength(10))))
    );
}

#[test]
fn truncated_frame_waits_then_completes() {
    for cut in [1, 3, 8, HEADER_LEN, HEADER_LEN + 8 + MAC_LEN - 1] {
        let (mut a, mut b) = pair(true);
        let mut w = Vec::new();
        a.request(&locate(1), &mut w).unwrap();
        b.feed(&w[..cut]);
        assert_eq!(b.poll(&mut Vec::new()), None, "cut at {cut}");
        assert_eq!(b.buffered(), cut);
        b.feed(&w[cut..]);
        assert!(matches!(
            b.poll(&mut Vec::new()),
            Some(Ok(Incoming::Request { .. }))
        ));
    }
    // A truncated body inside a complete frame is a bad request, answered.
    let (mut a, mut b) = pair(true);
    let ka = a_tx_key(&mut a);
    b.feed(&raw(
        0,
        1,
        5,
        MessageType::Locate as u16,
        &[1, 0, 2, 0],
        Some(&ka),
    ));
    let mut out = Vec::new();
    assert!(matches!(
        b.poll(&mut out),
        Some(Err(MlrpError::BadRequest {
            id: 5,
            error: WireError::Truncated
        }))
    ));
    assert!(!b.is_closed());
    let f = Frame::new_checked(&out[..]).unwrap();
    assert_eq!(f.request_id(), 5);
    assert!(f.is_reply());
}

/// The key `a` tags its frames with (for hand-made frames).
fn a_tx_key(a: &mut Session) -> Tagger {
    a.tx_key.clone().unwrap()
}

#[test]
fn unknown_request_type_gets_an_error_reply_and_the_session_lives() {
    let (mut a, mut b) = pair(true);
    let k = a_tx_key(&mut a);
    b.feed(&raw(0, 1, 42, 0x0999, &[1, 2, 3], Some(&k)));
    let mut out = Vec::new();
    assert_eq!(
        b.poll(&mut out),
        Some(Err(MlrpError::BadRequest {
            id: 42,
            error: WireError::UnknownType(0x0999)
        }))
    );
    assert!(!b.is_closed());
    // a receives an Error(BadRequest) reply... but id 42 was never a's
    // request, so a reports it as unexpected and carries on.
    a.feed(&out);
    assert_eq!(
        a.poll(&mut Vec::new()),
        Some(Err(MlrpError::UnexpectedReply { id: 42 }))
    );
    // The session still works both ways (a's sequence moved on by hand).
    a.tx_seq = 2;
    let mut wire = Vec::new();
    let id = a.request(&locate(3), &mut wire).unwrap();
    b.feed(&wire);
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Ok(Incoming::Request { id, msg: locate(3) }))
    );
    // An unknown reply type for an outstanding request is a bad reply.
    let kb = b.tx_key.clone().unwrap();
    a.feed(&raw(flags::REPLY, 2, id, 0x0998, &[], Some(&kb)));
    assert_eq!(
        a.poll(&mut Vec::new()),
        Some(Err(MlrpError::BadReply {
            id,
            error: WireError::UnknownType(0x0998)
        }))
    );
    assert_eq!(a.outstanding(), 0);
}

#[test]
fn unknown_version_gets_an_error_notice_and_close() {
    let mut b = Session::new(Role::Mlr, None, [2; 16]);
    let mut f = raw(0, 0, 0, MessageType::Hello as u16, &[2, 2, 0, 0], None);
    f[2] = 3;
    b.feed(&f[..3]);
    let mut out = Vec::new();
    assert_eq!(
        b.poll(&mut out),
        Some(Err(MlrpError::Frame(WireError::UnsupportedVersion {
            got: 3,
            spoken: 2
        })))
    );
    assert_eq!(notice_code(&out), ErrorCode::VersionUnsupported);
    assert!(b.is_closed());
}

/// A version-1 peer (24-byte header, no epoch) is refused at the version
/// byte of its Hello, with an error that says to upgrade, and is told so
/// in a version-1 closing notice it can read; nothing panics.
#[test]
fn a_version_1_peer_is_refused_with_a_clear_error_in_its_own_framing() {
    #[rustfmt::skip]
    let v1_hello: Vec<u8> = [
        &[b'M', b'L', 0x01, 0x00, 0, 0, 0, 45][..],  // version 1, length 24 + 21
        &[0; 8], &[0; 4], &[0x00, 0x01, 0x00, 0x00],  // seq 0, id 0, Hello
        &[1, 2, 0, 0], &[9; 16], &[0],                // v1, CN, nonce, ""
    ]
    .concat();
    for split in [1, 3, v1_hello.len()] {
        let mut b = Session::new(Role::Mlr, None, [2; 16]);
        let mut out = Vec::new();
        b.handshake(&mut out);
        let hello_len = out.len();
        let mut got = None;
        for piece in v1_hello.chunks(split) {
            b.feed(piece);
            if let Some(r) = b.poll(&mut out) {
                got = Some(r);
                break;
            }
        }
        let e = match got {
            Some(Err(e)) => e,
            other => panic!("split {split}: {other:?}"),
        };
        assert_eq!(
            e,
            MlrpError::Frame(WireError::UnsupportedVersion { got: 1, spoken: 2 })
        );
        assert!(e.is_fatal() && b.is_closed());
        assert_eq!(e.code(), ErrorCode::VersionUnsupported);
        assert!(e.to_string().contains("upgrade"), "{e}");
        // The notice after our Hello is a version-1 frame: 24-byte header.
        let notice = &out[hello_len..];
        assert_eq!(&notice[..4], &[b'M', b'L', 1, flags::REPLY]);
        let len = u32::from_be_bytes([notice[4], notice[5], notice[6], notice[7]]) as usize;
        assert_eq!(len, notice.len());
        assert_eq!(&notice[16..22], &[0, 0, 0, 0, 0x00, 0x02], "id 0, Error");
        let body = ErrorReply::parse(&notice[24..]).unwrap();
        assert_eq!(body.code, ErrorCode::VersionUnsupported);
        assert!(body.text.contains("version 2"), "{}", body.text);
    }
}

#[test]
fn every_frame_carries_the_senders_epoch_and_the_peer_records_it() {
    let k = key();
    let mut a = Session::new(Role::Cn, Some(&k), [1; 16]);
    let mut b = Session::new(Role::Mlr, Some(&k), [2; 16]);
    a.set_epoch(5);
    b.set_epoch(2);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    a.handshake(&mut oa);
    b.handshake(&mut ob);
    assert_eq!(b.peer_epoch(), 0, "nothing heard yet");
    b.feed(&oa);
    a.feed(&ob);
    assert!(matches!(
        drain(&mut b, &mut ob)[..],
        [Ok(Incoming::Established { .. })]
    ));
    assert!(matches!(
        drain(&mut a, &mut oa)[..],
        [Ok(Incoming::Established { .. })]
    ));
    assert_eq!(b.peer_epoch(), 5, "from the Hello");
    assert_eq!(a.peer_epoch(), 2);
    let mut wire = Vec::new();
    let id = a.request(&Message::Status, &mut wire).unwrap();
    b.feed(&wire);
    drain(&mut b, &mut ob);
    b.set_epoch(7);
    let mut back = Vec::new();
    b.reply(id, &Message::Ack, &mut back).unwrap();
    a.feed(&back);
    assert_eq!(
        drain(&mut a, &mut oa),
        vec![Ok(Incoming::Reply {
            id,
            msg: Message::Ack
        })]
    );
    assert_eq!(a.peer_epoch(), 7, "the latest frame's");
    // A closing notice is not authenticated: its epoch does not count.
    let mut notice = Vec::new();
    b.close(ErrorCode::Unavailable, "bye", &mut notice);
    a.feed(&notice);
    assert!(matches!(
        a.poll(&mut oa),
        Some(Err(MlrpError::PeerClosed(_)))
    ));
    assert_eq!(a.peer_epoch(), 7);
}

#[test]
fn garbage_is_refused_at_once() {
    let mut b = Session::new(Role::Mlr, None, [2; 16]);
    b.feed(b"GET / HTTP/1.0\r\n\r\n");
    let mut out = Vec::new();
    assert_eq!(
        b.poll(&mut out),
        Some(Err(MlrpError::Frame(WireError::BadMagic)))
    );
    let mut b = Session::new(Role::Mlr, None, [2; 16]);
    b.feed(b"X");
    assert_eq!(
        b.poll(&mut out),
        Some(Err(MlrpError::Frame(WireError::BadMagic)))
    );
}

#[test]
fn first_frame_must_be_hello() {
    let mut b = Session::new(Role::Mlr, None, [2; 16]);
    b.feed(&raw(0, 0, 1, MessageType::Ping as u16, &[0; 8], None));
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::HandshakeExpected(MessageType::Ping as u16)))
    );
    // And a second Hello is refused.
    let (_a, mut b) = pair(false);
    let mut hello = Vec::new();
    Session::new(Role::Cn, None, [9; 16]).handshake(&mut hello);
    hello[15] = 1; // sequence 1
    b.feed(&hello);
    assert_eq!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::UnexpectedHello))
    );
}

#[test]
fn request_id_zero_and_flag_mismatch_are_fatal() {
    let (_a, mut b) = pair(false);
    b.feed(&raw(0, 1, 0, MessageType::Ping as u16, &[0; 8], None));
    assert_eq!(b.poll(&mut Vec::new()), Some(Err(MlrpError::ZeroRequestId)));
    let (_a, mut b) = pair(false);
    b.feed(&raw(
        flags::REPLY,
        1,
        3,
        MessageType::Ping as u16,
        &[0; 8],
        None,
    ));
    assert!(matches!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::Frame(_)))
    ));
}

#[test]
fn local_misuse_is_an_error_not_a_frame() {
    let mut s = Session::new(Role::Cn, None, [1; 16]);
    let mut out = Vec::new();
    assert_eq!(
        s.request(&locate(1), &mut out),
        Err(MlrpError::NotEstablished)
    );
    let (mut a, _b) = pair(false);
    assert_eq!(
        a.request(&Message::Ack, &mut out),
        Err(MlrpError::WrongKind(MessageType::Ack))
    );
    assert_eq!(
        a.reply(1, &locate(1), &mut out),
        Err(MlrpError::WrongKind(MessageType::Locate))
    );
    let huge = Message::CnList(crate::mlrp::CnList {
        entries: (0..1000)
            .map(|i| crate::mlrp::CnEntry {
                name: format!("cn{i}"),
                addr: Ipv4Addr::new(10, 0, 0, 1),
                port: 5554,
                up: true,
                pools: vec![
                    crate::mlrp::Pool {
                        first: Ipv4Addr::new(10, 1, 0, 0),
                        last: Ipv4Addr::new(10, 1, 0, 3)
                    };
                    8
                ],
            })
            .collect(),
    });
    assert!(matches!(
        a.reply(1, &huge, &mut out),
        Err(MlrpError::Encode(WireError::FrameTooLarge { .. }))
    ));
    assert!(out.is_empty());
}

#[test]
fn close_sends_a_notice_the_peer_reads() {
    let (mut a, mut b) = pair(true);
    let mut out = Vec::new();
    b.close(ErrorCode::Unavailable, "shutting down", &mut out);
    assert!(b.is_closed());
    a.feed(&out);
    match a.poll(&mut Vec::new()) {
        Some(Err(e @ MlrpError::PeerClosed(_))) => {
            assert!(e.is_fatal());
            assert_eq!(e.code(), ErrorCode::Unavailable);
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn binding_reply_survives_the_whole_path() {
    let (mut a, mut b) = pair(true);
    let mut wire = Vec::new();
    let id = a
        .request(
            &Message::Allocate(crate::mlrp::Allocate {
                mac: MacAddr([2, 0, 0, 0, 0, 1]),
                requested: None,
            }),
            &mut wire,
        )
        .unwrap();
    b.feed(&wire);
    drain(&mut b, &mut Vec::new());
    let binding = Message::Binding(Binding {
        mac: MacAddr([2, 0, 0, 0, 0, 1]),
        cell: crate::addr::Cell30::containing(Ipv4Addr::new(10, 1, 0, 4)),
        parent: CnRef::new(Ipv4Addr::new(10, 0, 0, 1), 5554),
        at: CnRef::new(Ipv4Addr::new(10, 0, 0, 1), 5554),
        previous: None,
        lease_remaining_secs: 86400,
    });
    let mut back = Vec::new();
    b.reply(id, &binding, &mut back).unwrap();
    a.feed(&back);
    assert_eq!(
        a.poll(&mut Vec::new()),
        Some(Ok(Incoming::Reply { id, msg: binding }))
    );
}

#[test]
fn before_the_hello_a_length_over_the_largest_hello_is_refused_at_the_header() {
    // The largest valid Hello: longest software name, with a MAC.
    let k = key();
    let mut a = Session::new(Role::Cn, Some(&k), [1; 16]);
    let mut hello = Vec::new();
    let longest = Message::Hello(Hello {
        version: VERSION,
        role: Role::Cn,
        nonce: [1; 16],
        software: "x".repeat(crate::mlrp::message::MAX_NAME_LEN),
    });
    a.encode(0, 0, &longest, Tag::Hello, &mut hello).unwrap();
    assert_eq!(hello.len(), MAX_HELLO_FRAME_LEN);
    assert_eq!(MAX_HELLO_FRAME_LEN, 145, "docs/MLRP.md names 145");
    let mut b = Session::new(Role::Mlr, Some(&k), [2; 16]);
    assert_eq!(b.read_limit(), 145);
    b.feed(&hello[..100]);
    assert_eq!(b.read_limit(), 45);
    assert_eq!(b.poll(&mut Vec::new()), None);
    b.feed(&hello[100..]);
    assert!(matches!(
        b.poll(&mut Vec::new()),
        Some(Ok(Incoming::Established { .. }))
    ));
    assert_eq!(b.read_limit(), usize::MAX);

    // One byte more, announced in the header: refused from the 8 bytes of
    // the header, before any body is buffered.
    let mut b = Session::new(Role::Mlr, Some(&k), [2; 16]);
    let mut out = Vec::new();
    assert_eq!(
        header_in_two(&mut b, flags::MAC, MAX_HELLO_FRAME_LEN as u32 + 1, &mut out),
        Some(Err(MlrpError::Frame(WireError::HelloTooLarge {
            len: 146,
            max: 145
        })))
    );
    assert_eq!(notice_code(&out), ErrorCode::Protocol);
    b.feed(&[0; 1000]);
    assert_eq!(b.buffered(), 0);
    assert_eq!(b.read_limit(), 0);

    // The old worst case of finding 4: a Hello claiming 64 KiB.
    let mut b = Session::new(Role::Mlr, None, [2; 16]);
    let mut bogus = raw(0, 0, 0, MessageType::Hello as u16, &[0; 200], None);
    bogus[4..8].copy_from_slice(&(MAX_FRAME_LEN as u32).to_be_bytes());
    b.feed(&bogus);
    assert!(matches!(
        b.poll(&mut Vec::new()),
        Some(Err(MlrpError::Frame(WireError::HelloTooLarge {
            len: 65536,
            max: 145
        })))
    ));
    assert_eq!(b.buffered(), 0);
}
