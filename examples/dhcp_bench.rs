//! Benchmark (not a test): how many DHCP transactions per second the sans-IO
//! server handles on this machine, frames in and frames out, no I/O.
//! One transaction = DISCOVER -> Lookup -> OFFER, REQUEST -> Lookup -> ACK.
//!
//! `cargo run --release --example dhcp_bench [TRANSACTIONS]`

use std::net::Ipv4Addr;
use std::time::Instant;
use tmip::addr::{Cell30, MacAddr};
use tmip::dhcp::wire::{MessageType, Repr};
use tmip::dhcp::{Action, DhcpConfig, DhcpServer, Lease};
use tmip::wire::UdpFrame;

fn frame(r: &Repr<'_>) -> Vec<u8> {
    let payload = r.to_vec().expect("emit");
    UdpFrame {
        src_mac: r.client_hardware_addr,
        dst_mac: MacAddr::BROADCAST,
        src_ip: Ipv4Addr::UNSPECIFIED,
        dst_ip: Ipv4Addr::BROADCAST,
        src_port: 68,
        dst_port: 67,
        payload: &payload,
    }
    .to_vec()
    .expect("frame")
}

fn main() {
    let n: u32 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200_000);
    let cfg = DhcpConfig {
        dns: vec![Ipv4Addr::new(192, 0, 2, 53)],
        domain: Some("tmip.example".into()),
        static_routes: vec![(Ipv4Addr::new(172, 16, 0, 0), 12, Ipv4Addr::UNSPECIFIED)],
        lease_time: 3600,
    };
    let mut server = DhcpServer::new(cfg, MacAddr([2, 0, 0, 0, 0, 1]));
    // Pre-build the client frames for 1024 stations.
    let mut frames = Vec::new();
    for i in 0..1024u32 {
        let mac = MacAddr([2, 0x5a, 0, 0, (i >> 8) as u8, i as u8]);
        let cell = Cell30::containing(Ipv4Addr::from(0x0a00_0000 + 4 * i));
        let mut d = Repr::new(MessageType::Discover, i, mac);
        d.parameter_request_list = Some(&[1, 3, 6, 15, 121]);
        let mut r = Repr::new(MessageType::Request, i, mac);
        r.requested_ip = Some(cell.station());
        r.server_identifier = Some(cell.gateway());
        r.parameter_request_list = Some(&[1, 3, 6, 15, 121]);
        frames.push((mac, cell, frame(&d), frame(&r)));
    }
    let start = Instant::now();
    let mut now = Instant::now();
    let mut bytes = 0usize;
    for k in 0..n {
        let (mac, cell, d, r) = &frames[k as usize % frames.len()];
        if k % 1024 == 0 {
            now = Instant::now();
        }
        for f in [d, r] {
            match server.handle_frame(f, now) {
                Ok(Some(Action::Lookup { .. })) => {}
                other => panic!("unexpected {other:?}"),
            }
            let lease = Ok(Lease {
                cell: *cell,
                lease_secs: 3600,
            });
            match server.binding_ready(*mac, lease, now) {
                Ok(Action::Send(reply)) => bytes += reply.frame.len(),
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "dhcp_bench: {n} transactions (DISCOVER/OFFER + REQUEST/ACK) in {:.3} s: {:.0} transactions/s, {:.2} us per message, {} reply bytes",
        secs,
        f64::from(n) / secs,
        secs * 1e6 / (2.0 * f64::from(n)),
        bytes
    );
}
