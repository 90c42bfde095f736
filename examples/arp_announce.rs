//! A test driver (not the product): sends one ARP frame built by
//! `tmip::wire::arp` through `tmip::packet_socket`, the way tmipd tells a
//! station that its gateway N+2 now lives at this CN.
//!
//! ```text
//! arp_announce --iface IF --ip N+2 --mode announce
//! arp_announce --iface IF --ip N+2 --mode gratuitous-reply --to STATION_MAC
//! arp_announce --iface IF --ip N+2 --mode reply --to STATION_MAC --target-ip N+1
//! ```

use std::net::Ipv4Addr;
use std::process::ExitCode;
use tmip::addr::MacAddr;
use tmip::packet_socket::PacketSocket;
use tmip::wire::arp;

fn run() -> Result<(), String> {
    let mut iface = None;
    let mut ip: Option<Ipv4Addr> = None;
    let mut mode = String::from("announce");
    let mut to: Option<MacAddr> = None;
    let mut target_ip: Option<Ipv4Addr> = None;
    let mut it = std::env::args().skip(1);
    while let Some(a) = it.next() {
        let v = it.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--iface" => iface = Some(v),
            "--ip" => ip = Some(v.parse().map_err(|_| "bad --ip")?),
            "--mode" => mode = v,
            "--to" => to = Some(v.parse().map_err(|_| "bad --to")?),
            "--target-ip" => target_ip = Some(v.parse().map_err(|_| "bad --target-ip")?),
            other => return Err(format!("unknown argument {other}")),
        }
    }
    let iface = iface.ok_or("--iface is required")?;
    let ip = ip.ok_or("--ip is required")?;
    // Protocol 0: a send-only socket.
    let sock = PacketSocket::open(&iface, 0, None).map_err(|e| e.to_string())?;
    let mac = sock.mac();
    let (dst, repr) = match mode.as_str() {
        "announce" => (MacAddr::BROADCAST, arp::Repr::announcement(mac, ip)),
        "gratuitous-reply" => {
            let to = to.ok_or("--to is required")?;
            (to, arp::Repr::gratuitous_reply(mac, ip))
        }
        "reply" => {
            let to = to.ok_or("--to is required")?;
            let t = target_ip.ok_or("--target-ip is required")?;
            (to, arp::Repr::reply(mac, ip, to, t))
        }
        m => return Err(format!("unknown mode {m}")),
    };
    sock.send(&arp::frame(mac, dst, &repr))
        .map_err(|e| e.to_string())?;
    println!("SENT {mode} {ip} is-at {mac} to {dst}");
    Ok(())
}

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("arp_announce: {e}");
            ExitCode::FAILURE
        }
    }
}
