//! A test driver for the DHCP server, NOT the product: it runs
//! `tmip::dhcp::DhcpServer` on one interface with a tiny in-process
//! allocator standing in for the MLR, handing out /30s from a range and
//! answering every lookup at once. Used by `tests/dhcp_clients.rs` to prove
//! interop with real clients before tmipd exists.
//!
//! ```text
//! dhcpd_standalone --iface IF --pool FIRST-LAST [--lease SECS] [--mlr-lease SECS]
//!                  [--dns IP]... [--domain NAME] [--route NET/LEN=GW]... [--debug N]
//! ```
//!
//! Prints one line per event on stdout (`READY`, `LOOKUP`, `OFFER`, `ACK`,
//! `NAK`, `RELEASE`, `DECLINE`, `DROP <reason>`) for tests to wait on;
//! library logs go to stderr at `--debug` level (default 4).

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::process::ExitCode;
use std::time::{Duration, Instant};
use tmip::addr::{Cell30, MacAddr};
use tmip::dhcp::server::Error as DhcpError;
use tmip::dhcp::socket::{DhcpSocket, FRAME_BUF};
use tmip::dhcp::{Action, DhcpConfig, DhcpServer, Lease, LookupError, LookupKind};
use tmip::event_loop::{Poller, Signals};

struct Args {
    iface: String,
    first: Ipv4Addr,
    last: Ipv4Addr,
    mlr_lease: u32,
    config: DhcpConfig,
    debug: u8,
}

fn usage() -> String {
    "usage: dhcpd_standalone --iface IF --pool FIRST-LAST [--lease SECS] [--mlr-lease SECS] \
     [--dns IP]... [--domain NAME] [--route NET/LEN=GW]... [--debug N]"
        .into()
}

fn parse_args() -> Result<Args, String> {
    let mut it = std::env::args().skip(1);
    let mut iface = None;
    let mut pool = None;
    let mut config = DhcpConfig::default();
    let mut mlr_lease = 86400;
    let mut debug = 4;
    while let Some(a) = it.next() {
        let mut val = || it.next().ok_or_else(|| format!("{a} needs a value"));
        match a.as_str() {
            "--iface" => iface = Some(val()?),
            "--pool" => {
                let v = val()?;
                let (f, l) = v.split_once('-').ok_or("--pool FIRST-LAST")?;
                let f: Ipv4Addr = f.parse().map_err(|_| format!("bad address {f}"))?;
                let l: Ipv4Addr = l.parse().map_err(|_| format!("bad address {l}"))?;
                pool = Some((f, l));
            }
            "--lease" => config.lease_time = val()?.parse().map_err(|_| "bad --lease")?,
            "--mlr-lease" => mlr_lease = val()?.parse().map_err(|_| "bad --mlr-lease")?,
            "--dns" => config.dns.push(val()?.parse().map_err(|_| "bad --dns")?),
            "--domain" => config.domain = Some(val()?),
            "--route" => {
                let v = val()?;
                let (net, gw) = v.split_once('=').ok_or("--route NET/LEN=GW")?;
                let (n, l) = net.split_once('/').ok_or("--route NET/LEN=GW")?;
                config.static_routes.push((
                    n.parse().map_err(|_| "bad route network")?,
                    l.parse().map_err(|_| "bad route length")?,
                    gw.parse().map_err(|_| "bad route gateway")?,
                ));
            }
            "--debug" => debug = val()?.parse().map_err(|_| "bad --debug")?,
            "-h" | "--help" => return Err(usage()),
            other => return Err(format!("unknown argument {other}\n{}", usage())),
        }
    }
    let (first, last) = pool.ok_or_else(usage)?;
    Ok(Args {
        iface: iface.ok_or_else(usage)?,
        first,
        last,
        mlr_lease,
        config,
        debug,
    })
}

/// Stands in for the MLR: MAC -> /30 with an expiry.
struct Allocator {
    cells: Vec<Cell30>,
    bound: HashMap<MacAddr, (Cell30, Instant)>,
    lease: Duration,
}

impl Allocator {
    fn new(first: Ipv4Addr, last: Ipv4Addr, lease_secs: u32) -> Allocator {
        let mut cells = Vec::new();
        let mut n = (u32::from(first) + 3) & !3;
        while n.checked_add(3).is_some_and(|b| b <= u32::from(last)) {
            cells.push(Cell30::containing(Ipv4Addr::from(n)));
            n += 4;
        }
        Allocator {
            cells,
            bound: HashMap::new(),
            lease: Duration::from_secs(lease_secs.into()),
        }
    }

    fn remaining(&self, mac: MacAddr, now: Instant) -> Option<Lease> {
        let (cell, until) = self.bound.get(&mac)?;
        let left = until.saturating_duration_since(now).as_secs() as u32;
        (left > 0).then_some(Lease {
            cell: *cell,
            lease_secs: left,
        })
    }

    fn lookup(
        &mut self,
        mac: MacAddr,
        kind: LookupKind,
        now: Instant,
    ) -> Result<Lease, LookupError> {
        if let Some(l) = self.remaining(mac, now) {
            // A returning client gets its /30 back, and a renewal extends
            // the binding, as the MLR does.
            self.bound.insert(mac, (l.cell, now + self.lease));
            return self.remaining(mac, now).ok_or(LookupError::NotFound);
        }
        if kind == LookupKind::Locate {
            return Err(LookupError::NotFound);
        }
        self.bound.retain(|_, (_, until)| *until > now);
        let free = self
            .cells
            .iter()
            .find(|c| !self.bound.values().any(|(b, _)| b == *c))
            .copied()
            .ok_or_else(|| LookupError::Unavailable("pool exhausted".into()))?;
        self.bound.insert(mac, (free, now + self.lease));
        self.remaining(mac, now).ok_or(LookupError::NotFound)
    }
}

fn run(args: Args) -> Result<(), String> {
    tmip::logging::init(tmip::logging::Sink::Stderr, args.debug).map_err(|e| e.to_string())?;
    let sock = DhcpSocket::open(&args.iface).map_err(|e| e.to_string())?;
    let mut server = DhcpServer::new(args.config.clone(), sock.mac());
    let mut alloc = Allocator::new(args.first, args.last, args.mlr_lease);
    let mut signals = Signals::new(&[
        nix::sys::signal::Signal::SIGTERM,
        nix::sys::signal::Signal::SIGINT,
    ])
    .map_err(|e| e.to_string())?;
    let mut poller = Poller::new();
    const SOCK: usize = 0;
    const SIG: usize = 1;
    use std::os::fd::AsRawFd;
    poller.register(sock.as_raw_fd(), SOCK, false);
    poller.register(signals.as_raw_fd(), SIG, false);
    println!(
        "READY {} {} pool {} cells",
        args.iface,
        sock.mac(),
        alloc.cells.len()
    );
    let mut ready = Vec::new();
    let mut buf = vec![0u8; FRAME_BUF];
    loop {
        ready.clear();
        poller.wait(None, &mut ready).map_err(|e| e.to_string())?;
        for &(token, _) in &ready {
            if token == SIG {
                if !signals.drain().is_empty() {
                    println!("EXIT");
                    return Ok(());
                }
                continue;
            }
            while let Some(n) = sock.recv(&mut buf).map_err(|e| e.to_string())? {
                let now = Instant::now();
                let frame = buf.get(..n).unwrap_or_default();
                let action = match server.handle_frame(frame, now) {
                    Ok(a) => a,
                    Err(e) => {
                        if !matches!(e, DhcpError::Ignored(_)) {
                            println!("DROP {e}");
                        }
                        continue;
                    }
                };
                let action = match action {
                    Some(Action::Lookup {
                        mac,
                        kind,
                        requested_ip,
                        hostname,
                        ..
                    }) => {
                        println!("LOOKUP {mac} {kind:?} {requested_ip:?} {hostname:?}");
                        let result = alloc.lookup(mac, kind, now);
                        match server.binding_ready(mac, result, now) {
                            Ok(a) => Some(a),
                            Err(e) => {
                                println!("DROP {e}");
                                None
                            }
                        }
                    }
                    other => other,
                };
                match action {
                    Some(Action::Send(r)) => {
                        println!(
                            "{} {} {} to {}",
                            r.message_type, r.client, r.your_ip, r.dst_mac
                        );
                        if let Err(e) = sock.send(&r.frame) {
                            println!("SENDFAIL {e}");
                        }
                    }
                    Some(Action::Release { mac, cell }) => {
                        println!("RELEASE {mac} {cell}");
                        alloc.bound.remove(&mac);
                    }
                    Some(Action::Decline { mac, ip }) => println!("DECLINE {mac} {ip:?}"),
                    Some(Action::Lookup { .. }) | None => {}
                }
            }
        }
    }
}

fn main() -> ExitCode {
    match parse_args().and_then(run) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("dhcpd_standalone: {e}");
            ExitCode::FAILURE
        }
    }
}
