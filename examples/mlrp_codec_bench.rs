//! MLRP codec benchmark: how many Locate request/Binding reply exchanges
//! per second the sans-IO codec sustains on one core (encode request, parse
//! it, encode the reply, parse it), with and without HMAC, fed in batches as
//! a pipelining peer would. No sockets: this is the codec's share of the
//! MLR's locate budget.
//!
//!     cargo run --release --example mlrp_codec_bench [exchanges]

#[path = "support/mlrp_samples.rs"]
mod samples;

use std::time::Instant;
use tmip::mlrp::*;

fn pair(key: Option<&NetworkKey>) -> (Session, Session) {
    let mut a = Session::new(Role::Cn, key, [1; 16]);
    let mut b = Session::new(Role::Mlr, key, [2; 16]);
    let (mut oa, mut ob) = (Vec::new(), Vec::new());
    a.handshake(&mut oa);
    b.handshake(&mut ob);
    b.feed(&oa);
    a.feed(&ob);
    while b.poll(&mut Vec::new()).is_some() {}
    while a.poll(&mut Vec::new()).is_some() {}
    (a, b)
}

fn run(key: Option<&NetworkKey>, total: usize, batch: usize) -> f64 {
    let (mut cn, mut mlr) = pair(key);
    let locate = Message::Locate(Locate::ByMac(samples::mac(1)));
    let binding = samples::binding();
    let (mut to_mlr, mut to_cn) = (
        Vec::with_capacity(64 * batch),
        Vec::with_capacity(64 * batch),
    );
    let mut done = 0;
    let t0 = Instant::now();
    while done < total {
        for _ in 0..batch {
            cn.request(&locate, &mut to_mlr).expect("encode");
        }
        mlr.feed(&to_mlr);
        to_mlr.clear();
        while let Some(ev) = mlr.poll(&mut to_cn) {
            if let Ok(Incoming::Request { id, .. }) = ev {
                mlr.reply(id, &binding, &mut to_cn).expect("encode");
            } else {
                panic!("unexpected {ev:?}");
            }
        }
        cn.feed(&to_cn);
        to_cn.clear();
        while let Some(ev) = cn.poll(&mut to_mlr) {
            assert!(matches!(ev, Ok(Incoming::Reply { .. })));
            done += 1;
        }
    }
    done as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let total: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1_000_000);
    let key = NetworkKey::derive(b"bench secret", "bench-net");
    for (name, k) in [("no secret", None), ("HMAC-SHA256", Some(&key))] {
        for batch in [1, 64] {
            let rate = run(k, total, batch);
            println!(
                "mlrp codec, {name:<11}, batch {batch:>2}: {:>9.0} locate exchanges/s on one core ({:.2} us each)",
                rate,
                1e6 / rate
            );
        }
    }
}
