//! Feeds arbitrary bytes to the MLRP frame and body parsers and to a
//! `Session` in each of its states, in arbitrary splits. Checks that nothing
//! panics, that every body that parses re-emits to the same bytes, and that
//! the session's receive buffer stays bounded.
//!
//! Input: byte 0 selects the target, byte 1 the feed chunk size (0 = all at
//! once), the rest is the data. Seed corpus: `corpus/frame_parser/`, made by
//! `cargo run --example mlrp_fuzz_corpus` from the round-trip test vectors.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmip::mlrp::frame::Header;
use tmip::mlrp::{Frame, Incoming, Message, NetworkKey, Role, Session, MAX_FRAME_LEN};

fn established(auth: bool) -> Session {
    let key = NetworkKey::derive(b"fuzz", "fuzz-net");
    let k = auth.then_some(&key);
    let mut a = Session::new(Role::Cn, k, [1; 16]);
    let mut b = Session::new(Role::Mlr, k, [2; 16]);
    let mut out = Vec::new();
    a.handshake(&mut out);
    b.feed(&out);
    out.clear();
    assert!(matches!(
        b.poll(&mut out),
        Some(Ok(Incoming::Established { .. }))
    ));
    b
}

fn feed_session(mut s: Session, chunk: usize, data: &[u8]) {
    let mut out = Vec::new();
    let step = if chunk == 0 { data.len().max(1) } else { chunk };
    for piece in data.chunks(step) {
        s.feed(piece);
        while let Some(r) = s.poll(&mut out) {
            match r {
                Ok(Incoming::Request { id, msg }) => {
                    // Display must not panic either.
                    let _ = msg.to_string();
                    let _ = s.reply(id, &Message::Ack, &mut out);
                }
                Ok(other) => {
                    let _ = other.to_string();
                }
                Err(e) => {
                    let _ = e.to_string();
                    assert!(!e.is_fatal() || s.is_closed());
                }
            }
        }
        assert!(
            s.buffered() < MAX_FRAME_LEN + step,
            "receive buffer grew unbounded"
        );
        out.clear();
    }
}

fuzz_target!(|input: &[u8]| {
    let (Some(&mode), Some(&chunk)) = (input.first(), input.get(1)) else {
        return;
    };
    let data = &input[2..];
    match mode % 5 {
        0 => feed_session(Session::new(Role::Mlr, None, [2; 16]), chunk as usize, data),
        1 => feed_session(established(false), chunk as usize, data),
        2 => feed_session(established(true), chunk as usize, data),
        3 => {
            if let Ok(f) = Frame::new_checked(data) {
                if let Ok(h) = Header::parse(&f) {
                    let _ = Message::parse(h.msg_type, f.body());
                }
            }
        }
        _ => {
            let Some(t) = data.get(..2) else { return };
            let t = u16::from_be_bytes([t[0], t[1]]);
            let body = &data[2..];
            if let Ok(m) = Message::parse(t, body) {
                let mut buf = vec![0u8; m.buffer_len()];
                m.emit(&mut buf);
                assert_eq!(buf, body, "re-emit differs for {m}");
                assert_eq!(Message::parse(t, &buf).as_ref(), Ok(&m));
                let _ = m.to_string();
            }
        }
    }
});
