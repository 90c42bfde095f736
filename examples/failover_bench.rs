//! The register-failover benchmark (`sudo scripts/bench-failover`): the
//! namespace test bed with a pair of registers (mlrd primary and backup,
//! replicating), two CNs (tmipd with `backup_mlr`) and one client that
//! streams 1 ms UDP probes to `srv`. N times: kill -9 the register that
//! serves, move the client to the other cell 50 ms later, and measure
//!
//! - the time from the kill to every CN bound to the other register (each
//!   CN's log is polled every 5 ms, so the figure is at most ~5 ms late),
//! - the interruption of the move made during the failover (largest gap
//!   in the probes, both directions, and probes lost);
//!
//! then restart the killed register (it comes back as the backup, catches
//! up) and go again with the roles swapped.
//!
//! usage: failover_bench [--kills N] [--record FILE]
//!
//! The bed is the workspace's one namespace test bed (`tmip_testbed`).
//! Figures are distorted by a loaded machine; say so when recording them.
use std::io::Write;
use std::time::{Duration, Instant};
use tmip_testbed::bed::{Options, Register, TestBed};
use tmip_testbed::traffic::ms;

const UP: Duration = Duration::from_secs(30);

fn pct(v: &[f64], p: f64) -> f64 {
    let mut s = v.to_vec();
    s.sort_by(|a, b| a.total_cmp(b));
    if s.is_empty() {
        return f64::NAN;
    }
    s[((s.len() - 1) as f64 * p).round() as usize]
}

fn run() -> Result<(), String> {
    let mut kills = 20usize;
    let mut record: Option<String> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        match a.as_str() {
            "--kills" => {
                kills = it
                    .next()
                    .and_then(|v| v.parse().ok())
                    .ok_or("--kills wants a number")?
            }
            "--record" => record = Some(it.next().ok_or("--record wants a file")?),
            _ => return Err("usage: failover_bench [--kills N] [--record FILE]".into()),
        }
    }
    let mut bed = TestBed::new(Options {
        cns: 2,
        backup_mlr: true,
        debug_level: 2,
        ..Options::default()
    });
    let ms_i = bed.add_client(1);
    if let Some(f) = &record {
        let mut names = vec![
            bed.air.name.clone(),
            bed.mlr.name.clone(),
            bed.srv.name.clone(),
        ];
        names.extend(bed.mlrb.as_ref().map(|n| n.name.clone()));
        names.extend(bed.cns.iter().map(|c| c.ns.name.clone()));
        names.extend(bed.clients.iter().map(|c| c.ns.name.clone()));
        let mut fh = std::fs::OpenOptions::new()
            .append(true)
            .create(true)
            .open(f)
            .map_err(|e| e.to_string())?;
        for n in names {
            writeln!(fh, "{n}").map_err(|e| e.to_string())?;
        }
    }
    bed.start_daemons(UP)
        .map_err(|e| format!("{e}\n{}", bed.logs()))?;
    let c = bed
        .client_dhcp(ms_i, UP)
        .map_err(|e| format!("{e}\n{}", bed.logs()))?;
    let probes = bed.client_probes(ms_i, c.station(), 6001)?;
    std::thread::sleep(Duration::from_millis(500));
    println!(
        "client {}/30; {kills} kills of the serving register",
        c.station()
    );
    let mut serving = Register::Primary;
    let mut all_bound = Vec::new();
    let mut gaps = Vec::new();
    let mut lost = 0u64;
    for k in 1..=kills {
        let other = serving.other();
        let watch = bed.watch_binds(other.ip(), Duration::from_secs(10));
        let killed = Instant::now();
        bed.kill_register(serving);
        std::thread::sleep(Duration::from_millis(50));
        let to = if bed.clients[ms_i].cell == 1 { 2 } else { 1 };
        let moved = bed.move_client(ms_i, to);
        let w = probes.window(moved, Duration::from_millis(2000));
        let bound = watch.join();
        let times: Vec<f64> = bound
            .iter()
            .map(|b| b.map_or(f64::INFINITY, |t| ms(t.duration_since(killed))))
            .collect();
        let every = times.iter().copied().fold(0.0, f64::max);
        println!(
            "kill {k:2} of the {serving:?}: CNs bound to the {other:?} after {} ms (every CN {every:.0} ms); move CN{} -> CN{to} during the failover: gap {:.1} ms, {} probes lost",
            times
                .iter()
                .map(|t| format!("{t:.0}"))
                .collect::<Vec<_>>()
                .join(" / "),
            if to == 1 { 2 } else { 1 },
            ms(w.gap()),
            w.lost()
        );
        all_bound.push(every);
        gaps.push(ms(w.gap()));
        lost += w.lost();
        if !every.is_finite() {
            return Err(format!("a CN never bound to the {other:?}\n{}", bed.logs()));
        }
        // The killed register returns as the backup and catches up.
        bed.start_register(serving, UP)
            .map_err(|e| format!("{e}\n{}", bed.logs()))?;
        bed.wait_register_log(serving, "Replica in sync", UP)
            .map_err(|e| format!("{e}\n{}", bed.logs()))?;
        serving = other;
    }
    probes.stop();
    println!(
        "kill -> every CN bound to the other register: p50 {:.0} ms, max {:.0} ms (target p50 <= 500, max <= 1000)",
        pct(&all_bound, 0.5),
        pct(&all_bound, 1.0)
    );
    println!(
        "move during the failover: probe gap p50 {:.1} ms, max {:.1} ms; {lost} probes lost in all",
        pct(&gaps, 0.5),
        pct(&gaps, 1.0)
    );
    Ok(())
}

fn main() {
    if let Err(e) = run() {
        eprintln!("failover_bench: {e}");
        std::process::exit(1);
    }
}
