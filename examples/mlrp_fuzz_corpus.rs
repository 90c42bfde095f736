//! Writes the seed corpus of the `frame_parser` fuzz target
//! (fuzz/corpus/frame_parser/) from one sample of every message, framed the
//! way the target's sessions expect (same nonces and key as the target).
//!
//!     cargo run --example mlrp_fuzz_corpus

#[path = "support/mlrp_samples.rs"]
mod samples;

use std::fs;
use std::path::Path;
use tmip::mlrp::*;

/// A CN session established with an MLR session that used nonce [2; 16],
/// plus the Hello bytes it sent.
fn cn_side(auth: bool) -> (Session, Vec<u8>) {
    let key = NetworkKey::derive(b"fuzz", "fuzz-net");
    let k = auth.then_some(&key);
    let mut a = Session::new(Role::Cn, k, [1; 16]);
    let mut b = Session::new(Role::Mlr, k, [2; 16]);
    // Frames in a nonzero epoch, as a CN that follows a register sends.
    a.set_epoch(3);
    let (mut ha, mut hb) = (Vec::new(), Vec::new());
    a.handshake(&mut ha);
    b.handshake(&mut hb);
    a.feed(&hb);
    while a.poll(&mut Vec::new()).is_some() {}
    assert!(a.is_established());
    (a, ha)
}

fn main() -> std::io::Result<()> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/corpus/frame_parser");
    fs::create_dir_all(&dir)?;
    let mut n = 0;
    let mut put = |mode: u8, chunk: u8, data: &[u8]| -> std::io::Result<()> {
        let mut v = vec![mode, chunk];
        v.extend_from_slice(data);
        n += 1;
        fs::write(dir.join(format!("seed-{n:03}")), v)
    };
    for auth in [false, true] {
        let (mut a, hello) = cn_side(auth);
        let mut stream = Vec::new();
        for m in samples::requests() {
            let mut one = Vec::new();
            a.request(&m, &mut one).expect("sample encodes");
            if !auth {
                // Mode 3: one frame alone, for the raw frame parser.
                put(3, 0, &one)?;
            }
            stream.extend_from_slice(&one);
        }
        for r in samples::replies() {
            let mut one = Vec::new();
            a.reply(1, &r, &mut one).expect("sample encodes");
            if !auth {
                put(3, 0, &one)?;
            }
        }
        let established_mode = if auth { 2 } else { 1 };
        for chunk in [0, 1, 7] {
            put(established_mode, chunk, &stream)?;
        }
        if !auth {
            let mut with_hello = hello.clone();
            with_hello.extend_from_slice(&stream);
            put(0, 0, &with_hello)?;
            put(0, 3, &with_hello)?;
        }
    }
    // Mode 4: type + body of every message.
    for m in samples::requests().into_iter().chain(samples::replies()) {
        let mut v = (m.msg_type() as u16).to_be_bytes().to_vec();
        let at = v.len();
        v.resize(at + m.buffer_len(), 0);
        m.emit(&mut v[at..]);
        put(4, 0, &v)?;
    }
    println!("wrote {n} seeds to {}", dir.display());
    Ok(())
}
