//! A minimal router process around the tunnel controller, for the
//! namespace test and the throughput benchmark (tmipd replaces it):
//! opens a tunnel to one peer CN, routes the given prefixes into it over
//! rtnetlink, and forwards packets from one poll loop until SIGTERM/SIGINT.
//! SIGUSR1 (and exit) prints the userspace counters on stdout.
//!
//! ipip_relay --prefix tmb --local 192.168.0.1 --peer 192.168.0.2 \
//!            --route 10.2.0.0/24 [--route ...] [--debug N] [--no-offload]
//!            [--backend auto|kernel|userspace]
//!
//! The line `backend <kind>` on stdout, before `ready`, names the backend
//! the tunnel was built with (kernel IPIP or userspace).

use std::net::Ipv4Addr;
use std::process::ExitCode;
use tmip::event_loop::{Poller, Signals};
use tmip::netlink::{Netlink, Route, TMIP_RTPROT};
use tmip::tunnel::{BackendChoice, BackendKind, Delivery, TunnelConfig, TunnelController};

struct Args {
    prefix: String,
    local: Ipv4Addr,
    peer: Ipv4Addr,
    routes: Vec<(Ipv4Addr, u8)>,
    debug: u8,
    offload: bool,
    backend: BackendChoice,
}

fn parse_args() -> Result<Args, String> {
    let mut prefix = None;
    let mut local = None;
    let mut peer = None;
    let mut routes = Vec::new();
    let mut debug = 2;
    let mut offload = true;
    let mut backend = BackendChoice::Auto;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or(format!("{a} needs a value"));
        match a.as_str() {
            "--prefix" => prefix = Some(val()?),
            "--local" => local = Some(val()?.parse().map_err(|e| format!("--local: {e}"))?),
            "--peer" => peer = Some(val()?.parse().map_err(|e| format!("--peer: {e}"))?),
            "--route" => {
                let v = val()?;
                let (ip, len) = v
                    .split_once('/')
                    .ok_or(format!("--route {v}: want A.B.C.D/N"))?;
                let ip: Ipv4Addr = ip.parse().map_err(|e| format!("--route {v}: {e}"))?;
                let len: u8 = len.parse().map_err(|e| format!("--route {v}: {e}"))?;
                if len > 32 {
                    return Err(format!("--route {v}: prefix length > 32"));
                }
                routes.push((ip, len));
            }
            "--no-offload" => offload = false,
            "--backend" => {
                let v = val()?;
                backend = BackendChoice::parse(&v).ok_or(format!(
                    "--backend {v}: want {}",
                    BackendChoice::NAMES.join(", ")
                ))?;
            }
            "--debug" => debug = val()?.parse().map_err(|e| format!("--debug: {e}"))?,
            _ => return Err(format!("unknown argument {a}")),
        }
    }
    Ok(Args {
        prefix: prefix.ok_or("--prefix missing")?,
        local: local.ok_or("--local missing")?,
        peer: peer.ok_or("--peer missing")?,
        routes,
        debug,
        offload,
        backend,
    })
}

fn print_stats(ctl: &TunnelController) {
    // SAFETY: getrusage fills a zeroed rusage.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) };
    let ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
    println!(
        "cpu user_ms={} sys_ms={} voluntary_switches={} involuntary_switches={}",
        ms(ru.ru_utime),
        ms(ru.ru_stime),
        ru.ru_nvcsw,
        ru.ru_nivcsw
    );
    if let Some(s) = ctl.userspace_stats() {
        println!(
            "stats tx_packets={} tx_bytes={} tx_dropped={} tx_not_ipv4={} tx_malformed={} rx_packets={} rx_bytes={} rx_unknown_peer={} rx_malformed={} rx_dropped={} rx_oversize={} tun_reads={} tun_writes={}",
            s.tx_packets, s.tx_bytes, s.tx_dropped, s.tx_not_ipv4, s.tx_malformed, s.rx_packets, s.rx_bytes,
            s.rx_unknown_peer, s.rx_malformed, s.rx_dropped, s.rx_oversize, s.tun_reads, s.tun_writes
        );
    }
}

fn run(a: Args) -> Result<(), String> {
    let _ = tmip::logging::init(tmip::logging::Sink::Stderr, a.debug);
    let mut signals = Signals::daemon_set().map_err(|e| format!("signals: {e}"))?;
    let mut nl = Netlink::open().map_err(|e| e.to_string())?;
    let mut cfg = TunnelConfig::new(&a.prefix, a.local);
    cfg.userspace_offload = a.offload;
    cfg.backend = a.backend;
    let mut ctl = TunnelController::start(&mut nl, cfg).map_err(|e| e.to_string())?;
    ctl.log_supported();
    ctl.purge_stale(&mut nl, &[], &[])
        .map_err(|e| e.to_string())?;
    let ifindex = match ctl.acquire(&mut nl, a.peer).map_err(|e| e.to_string())? {
        Delivery::Tunnel { ifindex, name, .. } => {
            log::info!(target: "tunnel", "+ Tunnel {name} to {} ({:?})", a.peer, ctl.tunnel_backend());
            ifindex
        }
        Delivery::Local => return Err("--peer is our own address".into()),
    };
    for (dst, len) in &a.routes {
        let mut r = Route::new(*dst, *len, TMIP_RTPROT);
        r.oif = Some(ifindex);
        r.scope = tmip::netlink::message::RT_SCOPE_LINK;
        nl.replace_route(&r)
            .map_err(|e| format!("route {dst}/{len}: {e}"))?;
    }
    let mut poller = Poller::new();
    const SIGNALS: usize = usize::MAX;
    poller.register(std::os::fd::AsRawFd::as_raw_fd(&signals), SIGNALS, false);
    for fd in ctl.poll_fds() {
        poller.register(fd, fd as usize, false);
    }
    let kind = match ctl.tunnel_backend() {
        BackendKind::KernelIpip => "kernel",
        _ => "userspace",
    };
    println!("backend {kind}");
    println!("ready");
    let mut ready = Vec::new();
    loop {
        ready.clear();
        poller
            .wait(None, &mut ready)
            .map_err(|e| format!("poll: {e}"))?;
        for &(token, _) in &ready {
            if token == SIGNALS {
                for s in signals.drain() {
                    use nix::sys::signal::Signal;
                    match s {
                        Signal::SIGUSR1 => print_stats(&ctl),
                        Signal::SIGTERM | Signal::SIGINT => {
                            print_stats(&ctl);
                            ctl.shutdown(&mut nl);
                            return Ok(());
                        }
                        _ => {}
                    }
                }
            } else {
                ctl.on_readable(token as i32);
            }
        }
    }
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("ipip_relay: {e}");
            return ExitCode::from(2);
        }
    };
    match run(args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("ipip_relay: {e}");
            ExitCode::FAILURE
        }
    }
}
