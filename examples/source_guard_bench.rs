//! What the source guard adds to an adoption and a withdrawal: the time
//! `GuardedDataPlane::apply` spends committing the nf_tables transaction
//! that admits one station (or lets it linger), measured for 1000 stations in a
//! private network namespace, plus the time to install and remove the
//! tables. The inner data plane only records (no routes), so the figures are
//! the guard's own cost, which adds to every handover at the new CN.
//!
//! Run as root: `cargo run --release --example source_guard_bench [N]`.

use std::net::Ipv4Addr;
use std::time::{Duration, Instant};
use tmip::addr::{Cell30, MacAddr};
use tmip::cn::dataplane::{DataAction, DataPlane, RecordingDataPlane};
use tmip::cn::dataplane_guard::GuardedDataPlane;

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort();
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i]
}

fn us(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

fn report(what: &str, v: &mut [Duration]) {
    let (p50, p99, max) = (percentile(v, 0.5), percentile(v, 0.99), percentile(v, 1.0));
    println!(
        "{what}: {} stations, p50 {:.0} µs, p99 {:.0} µs, max {:.0} µs",
        v.len(),
        us(p50),
        us(p99),
        us(max)
    );
}

fn main() {
    let n: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1000)
        .clamp(1, 1024);
    // SAFETY: unshare(2) only affects this process; nothing is shared yet.
    if unsafe { libc::unshare(libc::CLONE_NEWNET) } != 0 {
        eprintln!(
            "source_guard_bench: unshare(CLONE_NEWNET): {} (run as root)",
            std::io::Error::last_os_error()
        );
        std::process::exit(1);
    }
    // ifindex 1 (lo) stands for mobile_if: the rules only compare numbers.
    let t = Instant::now();
    let mut dp = match GuardedDataPlane::open(RecordingDataPlane::default(), "lo", 1, "bench", n) {
        Ok(dp) => dp,
        Err(e) => {
            eprintln!("source_guard_bench: {e}");
            std::process::exit(1);
        }
    };
    println!(
        "install (ip + arp tables, one transaction each): {:.0} µs",
        us(t.elapsed())
    );
    let cells: Vec<(MacAddr, Cell30)> = (0..n as u32)
        .map(|i| {
            let net = Ipv4Addr::from(0x0a40_0000 + i * 4);
            let b = i.to_be_bytes();
            (
                MacAddr([0x02, 0x42, b[0], b[1], b[2], b[3]]),
                Cell30::containing(net),
            )
        })
        .collect();
    let mut admit = Vec::with_capacity(n);
    for &(mac, cell) in &cells {
        let t = Instant::now();
        if let Err(e) = dp.apply(&DataAction::AdoptLocal { mac, cell }) {
            eprintln!("source_guard_bench: adopt {cell}: {e}");
            std::process::exit(1);
        }
        admit.push(t.elapsed());
    }
    report(
        "admit on adoption (ip + arp set, one transaction)",
        &mut admit,
    );
    let mut revoke = Vec::with_capacity(n);
    for &(_, cell) in &cells {
        let t = Instant::now();
        if let Err(e) = dp.apply(&DataAction::Withdraw { cell }) {
            eprintln!("source_guard_bench: withdraw {cell}: {e}");
            std::process::exit(1);
        }
        revoke.push(t.elapsed());
    }
    report(
        "linger on withdrawal (add, delete, add with a 30 s timeout)",
        &mut revoke,
    );
    let t = Instant::now();
    if let Err(e) = dp.remove_all() {
        eprintln!("source_guard_bench: remove: {e}");
        std::process::exit(1);
    }
    println!("remove (TERM): {:.0} µs", us(t.elapsed()));
}
