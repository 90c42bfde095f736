//! The roaming demo and the handover-interruption benchmark (run through
//! `scripts/demo`, as root).
//!
//! Builds the namespace test bed (mlr, cn1..cn3, srv, air, one client),
//! starts mlrd and three tmipd with `.rc` files it writes, lets the client
//! take a lease with busybox udhcpc, opens a bidirectional byte-checked TCP
//! stream to srv plus a 1 ms UDP probe stream, then moves the client
//! CN1 -> CN2 -> CN3 -> CN1 (re-attaching its link to another cell's bridge,
//! link staying up) and prints per move: the interruption, bytes lost and
//! whether the TCP connection is the same one. Cleans up on exit and on
//! Ctrl+C.
//!
//! Options:
//!   --standin        no daemons: the test bed does the routing itself (static
//!                    routes + gratuitous ARP). Proves the bed and the tools;
//!                    its figures are NOT TMip figures.
//!   --moves 2,3,1    cells to move to, in order (default 2,3,1)
//!   --bench N        benchmark: N moves cycling through the cells with the
//!                    1 ms probe stream; prints p50/p95/p99/max of the gap
//!   --window MS      how long to watch after each move (default 1500, bench 400)
//!   --keep           keep the run directory (rc files, daemon logs)
//!   --debug N        daemon debug level (default 3)
//!   --tunnel-backend auto|kernel|userspace
//!                    tmipd's tunnel_backend (default: $TMIP_TUNNEL_BACKEND,
//!                    else auto); each tmipd's start-up line naming the
//!                    backend in use is printed
//!   -v, --verbose    bench: print every move's gap per direction
//!   --backup-mlr     run a pair of registers (mlrd primary + replicating
//!                    backup; the CNs have backup_mlr)
//!   --mlr-state-tmpfs  mlrd's fsynced journal on /dev/shm instead of the
//!                    run directory's disk (isolates disk-flush latency)
//!   --record FILE    append the namespace names to FILE (scripts/demo uses it
//!                    to clean up even if this process is killed)
//!
//! The bed is the workspace's one namespace test bed (`tmip_testbed`, the
//! same the end-to-end tests use).

use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tmip::addr::Cell30;
use tmip_testbed::bed::{Options, Routing, TestBed, SRV_IP};
use tmip_testbed::traffic::{self, stream_1ms, ProbeStream, TcpCheck};

static STOP: AtomicBool = AtomicBool::new(false);

extern "C" fn on_signal(_: libc::c_int) {
    STOP.store(true, Ordering::SeqCst);
}

fn install_signals() {
    use nix::sys::signal::{sigaction, SaFlags, SigAction, SigHandler, SigSet, Signal};
    let act = SigAction::new(
        SigHandler::Handler(on_signal),
        SaFlags::empty(),
        SigSet::empty(),
    );
    for s in [Signal::SIGINT, Signal::SIGTERM, Signal::SIGHUP] {
        // SAFETY: the handler only stores to an atomic.
        unsafe {
            let _ = sigaction(s, &act);
        }
    }
}

/// Sleep in small slices, returning Err when interrupted.
fn nap(d: Duration) -> Result<(), String> {
    let end = Instant::now() + d;
    while Instant::now() < end {
        if STOP.load(Ordering::SeqCst) {
            return Err("interrupted".into());
        }
        std::thread::sleep(Duration::from_millis(10).min(end - Instant::now()));
    }
    Ok(())
}

fn check_stop() -> Result<(), String> {
    if STOP.load(Ordering::SeqCst) {
        Err("interrupted".into())
    } else {
        Ok(())
    }
}

struct Args {
    standin: bool,
    moves: Vec<usize>,
    bench: Option<usize>,
    window: Option<u64>,
    keep: bool,
    debug: u8,
    record: Option<String>,
    verbose: bool,
    mlr_tmpfs: bool,
    tunnel_backend: String,
    backup_mlr: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut a = Args {
        standin: false,
        moves: vec![2, 3, 1],
        bench: None,
        window: None,
        keep: false,
        debug: 3,
        record: None,
        verbose: false,
        mlr_tmpfs: false,
        tunnel_backend: tmip_testbed::bed::tunnel_backend_from_env(),
        backup_mlr: false,
    };
    let mut it = std::env::args().skip(1);
    while let Some(arg) = it.next() {
        let mut val = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match arg.as_str() {
            "--standin" => a.standin = true,
            "--keep" => a.keep = true,
            "-v" | "--verbose" => a.verbose = true,
            "--mlr-state-tmpfs" => a.mlr_tmpfs = true,
            "--backup-mlr" => a.backup_mlr = true,
            "--moves" => {
                a.moves = val("--moves")?
                    .split(',')
                    .map(|s| match s.trim().parse::<usize>() {
                        Ok(n) if (1..=3).contains(&n) => Ok(n),
                        _ => Err(format!("--moves: bad cell {s:?} (1..3)")),
                    })
                    .collect::<Result<_, _>>()?
            }
            "--bench" => {
                a.bench = Some(
                    val("--bench")?
                        .parse()
                        .map_err(|_| "--bench N: N is a number")?,
                )
            }
            "--window" => {
                a.window = Some(
                    val("--window")?
                        .parse()
                        .map_err(|_| "--window MS: a number")?,
                )
            }
            "--debug" => a.debug = val("--debug")?.parse().map_err(|_| "--debug N: 0..7")?,
            "--record" => a.record = Some(val("--record")?),
            "--tunnel-backend" => {
                a.tunnel_backend = val("--tunnel-backend")?;
                if !tmip::tunnel::BackendChoice::NAMES.contains(&a.tunnel_backend.as_str()) {
                    return Err("--tunnel-backend: auto, kernel or userspace".into());
                }
            }
            "-h" | "--help" => {
                println!(
                    "usage: roaming_demo [--standin] [--moves 2,3,1] [--bench N] [--window MS] \
                     [--keep] [--debug N] [--tunnel-backend B] [--record FILE] [--backup-mlr]"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown argument {other}")),
        }
    }
    Ok(a)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn main() {
    install_signals();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("roaming_demo: {e}");
            std::process::exit(2);
        }
    };
    let code = match run(&args) {
        Ok(true) => 0,
        Ok(false) => 1,
        Err(e) => {
            eprintln!("roaming_demo: {e}");
            if e == "interrupted" {
                130
            } else {
                1
            }
        }
    };
    // The bed was dropped inside run(): every namespace and process is gone.
    std::process::exit(code);
}

fn run(args: &Args) -> Result<bool, String> {
    let routing = if args.standin {
        Routing::StandIn
    } else {
        Routing::Daemons
    };
    if args.standin {
        println!("*** STAND-IN MODE: no mlrd/tmipd. The test bed itself moves static routes and");
        println!("*** sends the gratuitous ARP. These figures prove the bed and the tools; they");
        println!("*** are NOT TMip handover figures.");
    }
    let mut bed = TestBed::new(Options {
        routing,
        keep_dir: args.keep,
        mlr_state_tmpfs: args.mlr_tmpfs,
        backup_mlr: args.backup_mlr,
        debug_level: args.debug,
        tunnel_backend: args.tunnel_backend.clone(),
        ..Options::default()
    });
    if let Some(f) = &args.record {
        let mut names: Vec<String> = vec![
            bed.air.name.clone(),
            bed.mlr.name.clone(),
            bed.srv.name.clone(),
        ];
        names.extend(bed.mlrb.as_ref().map(|n| n.name.clone()));
        names.extend(bed.cns.iter().map(|c| c.ns.name.clone()));
        record(f, &names)?;
    }
    println!(
        "+ test bed up: air={} mlr={} srv={} {} (run dir {})",
        bed.air.name,
        bed.mlr.name,
        bed.srv.name,
        bed.cns
            .iter()
            .map(|c| format!("{}={}", c.label(), c.ns.name))
            .collect::<Vec<_>>()
            .join(" "),
        bed.dir.display()
    );
    let ms_i = bed.add_client(1);
    if let Some(f) = &args.record {
        record(f, &[bed.clients[ms_i].ns.name.clone()])?;
    }
    check_stop()?;
    let cell30 = match routing {
        Routing::Daemons => {
            bed.start_daemons(Duration::from_secs(20))
                .map_err(|e| format!("{e}\n{}", bed.logs()))?;
            println!("+ mlrd and 3 tmipd up (rc files in {})", bed.dir.display());
            check_stop()?;
            let c = bed
                .client_dhcp(ms_i, Duration::from_secs(20))
                .map_err(|e| format!("{e}\n{}", bed.logs()))?;
            println!(
                "+ client {} ({}) got {}/30 by DHCP (busybox udhcpc), gateway {}",
                bed.clients[ms_i].ns.name,
                bed.clients[ms_i].mac,
                c.station(),
                c.gateway()
            );
            c
        }
        Routing::StandIn => {
            let c = Cell30::from_network("10.1.0.4".parse().expect("literal")).ok_or("bad /30")?;
            bed.client_static(ms_i, c);
            bed.standin_attach(ms_i);
            println!(
                "+ client {} ({}) configured statically {}/30, gateway {} (stand-in: no DHCP)",
                bed.clients[ms_i].ns.name,
                bed.clients[ms_i].mac,
                c.station(),
                c.gateway()
            );
            c
        }
    };
    let ms_ns = bed.clients[ms_i].ns.name.clone();
    let probes = ProbeStream::start(
        &bed.srv.name,
        SRV_IP,
        &ms_ns,
        cell30.station(),
        6001,
        stream_1ms(),
    )?;
    let result = if let Some(n) = args.bench {
        bench(&mut bed, ms_i, &probes, n, args)
    } else {
        demo(&mut bed, ms_i, cell30, &probes, args)
    };
    probes.stop();
    if result.is_err() || args.keep {
        if let Err(e) = &result {
            if e != "interrupted" {
                eprintln!("{}\n{}", bed.cn_state(), bed.logs());
            }
        }
    }
    println!("+ cleaning up: removing namespaces and stopping the processes we started");
    drop(bed);
    result
}

/// The streams' period as the demo prints it: "1 ms" here, "4 ms" in the
/// lab's emulated guest (`tmip_testbed::stream_period`).
fn period_text() -> String {
    format!("{} ms", stream_1ms().as_millis())
}

fn record(file: &str, names: &[String]) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .map_err(|e| format!("{file}: {e}"))?;
    for n in names {
        writeln!(f, "{n}").map_err(|e| format!("{file}: {e}"))?;
    }
    Ok(())
}

fn demo(
    bed: &mut TestBed,
    ms_i: usize,
    cell30: Cell30,
    probes: &ProbeStream,
    args: &Args,
) -> Result<bool, String> {
    let ms_ns = bed.clients[ms_i].ns.name.clone();
    let mut tcp = TcpCheck::start(&bed.srv.name, SRV_IP, 5001, &ms_ns, stream_1ms())?;
    println!(
        "+ TCP stream {} <-> {} open, 1 KiB every {} each way, every byte checked",
        tcp.tuple.0,
        tcp.tuple.1,
        period_text()
    );
    nap(Duration::from_millis(700))?;
    let window = Duration::from_millis(args.window.unwrap_or(1500));
    let carrier0 = bed.client_carrier_changes(ms_i);
    let mut ok = true;
    let tag = if args.standin { "[stand-in] " } else { "" };
    for (n, &cell) in args.moves.iter().enumerate() {
        check_stop()?;
        let from = bed.clients[ms_i].cell;
        let m = tcp.mark();
        let at = bed.move_client(ms_i, cell);
        let p = probes.window(at, window);
        let w = tcp.window(&m, window);
        let claim = bed.claimants(cell30);
        let same = w.same_connection;
        println!(
            "{tag}move {}: CN{from} -> CN{cell}: interruption {:.1} ms (UDP {} probes; TCP receive gap {:.1} ms), \
             bytes lost {}, same TCP connection: {}{}",
            n + 1,
            ms(p.gap()),
            period_text(),
            ms(w.gap()),
            w.lost,
            if same { "yes" } else { "NO" },
            if claim == vec![cell] {
                String::new()
            } else {
                format!("  [CNs claiming the client: {claim:?}]")
            }
        );
        if let Some(e) = &w.error {
            println!("   error: {e}");
        }
        ok &= w.lost == 0 && same && w.error.is_none() && w.up_bytes > 0 && w.down_bytes > 0;
    }
    let link_ok = bed.client_carrier_changes(ms_i) == carrier0;
    check_stop()?;
    let (us, ur, ds, dr, err) = tcp.finish(Duration::from_secs(5));
    println!(
        "{tag}summary: MS->srv {ur}/{us} bytes, srv->MS {dr}/{ds} bytes delivered and verified; \
         client link never flapped: {}; {}",
        if link_ok { "yes" } else { "NO" },
        match &err {
            None => "no errors".to_string(),
            Some(e) => format!("error: {e}"),
        }
    );
    ok &= link_ok && err.is_none() && us == ur && ds == dr;
    println!("{tag}{}", if ok { "PASS" } else { "FAIL" });
    Ok(ok)
}

fn bench(
    bed: &mut TestBed,
    ms_i: usize,
    probes: &ProbeStream,
    n: usize,
    args: &Args,
) -> Result<bool, String> {
    let window = Duration::from_millis(args.window.unwrap_or(400));
    nap(Duration::from_millis(500))?;
    // The floor of the measurement: the same windows with no move at all
    // (scheduling jitter of this machine).
    let mut idle = Vec::new();
    for _ in 0..10 {
        check_stop()?;
        idle.push(probes.window(Instant::now(), window).gap());
    }
    let (i50, _, _, imax) = traffic::percentiles(&idle);
    let tag0 = if args.standin { "[stand-in] " } else { "" };
    println!(
        "{tag0}baseline without moves (10 windows of {} ms): p50 {i50:.1} ms, max {imax:.1} ms",
        window.as_millis()
    );
    let mut gaps = Vec::with_capacity(n);
    let mut lost = 0u64;
    let tag = if args.standin { "[stand-in] " } else { "" };
    for k in 0..n {
        check_stop()?;
        let from = bed.clients[ms_i].cell;
        let cell = from % 3 + 1;
        let at = bed.move_client(ms_i, cell);
        let p = probes.window(at, window);
        if args.verbose {
            println!(
                "{tag}move {:3} CN{from}->CN{cell}: MS->srv gap {:6.1} ms ({} lost), srv->MS gap {:6.1} ms ({} lost)",
                k + 1,
                ms(p.up_gap),
                p.up_lost,
                ms(p.down_gap),
                p.down_lost
            );
        }
        gaps.push(p.gap());
        lost += p.lost();
        if (k + 1) % 20 == 0 {
            let (p50, p95, p99, max) = traffic::percentiles(&gaps);
            println!(
                "{tag}{} moves: p50 {p50:.1} ms p95 {p95:.1} ms p99 {p99:.1} ms max {max:.1} ms",
                k + 1
            );
        }
    }
    let (p50, p95, p99, max) = traffic::percentiles(&gaps);
    let ((us, ur), (ds, dr)) = probes.totals();
    println!(
        "{tag}handover interruption over {n} moves ({} UDP probes both ways, gap = largest \
         receive gap after a move): p50 {p50:.1} ms, p95 {p95:.1} ms, p99 {p99:.1} ms, max {max:.1} ms; \
         probes lost around moves {lost}; totals MS->srv {ur}/{us}, srv->MS {dr}/{ds}",
        period_text()
    );
    let ok = p99 < 20.0 && max < 50.0;
    println!(
        "{tag}targets p99 < 20 ms, max < 50 ms: {}",
        if ok { "met" } else { "NOT met" }
    );
    Ok(ok)
}
