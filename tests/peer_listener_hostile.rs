//! tmipd's CN-to-CN listener (port 5554) against an outsider on the core
//! network (docs/SECURITY.md): idle connections from one host and from many
//! cannot hold the slots, an oversized Hello is refused at its header, the
//! refusals are logged at a bounded pace, and a real MLRP peer with the
//! secret still connects and is served. Real mlrd and tmipd in the
//! namespace test bed; the attacker is `srv` with 40 extra addresses.
mod common;
#[path = "common/testbed.rs"]
mod testbed;

use common::{closed_by_peer, in_netns};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};
use testbed::{cn_core_ip, Options, TestBed, CORE_IF, NETWORK_NAME, SECRET};
use tmip::mlrp::{client::tcp_connect_from, Client, Message, NetworkKey, Role};

#[test]
fn outsiders_cannot_hold_the_cn_listener_and_a_real_peer_is_still_served() {
    let mut bed = TestBed::new(Options {
        cns: 1,
        ..Options::default()
    });
    if let Err(e) = bed.start_daemons(Duration::from_secs(20)) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    for i in 0..40 {
        bed.srv
            .sh(&format!("ip addr add 10.0.0.{}/24 dev {CORE_IF}", 150 + i));
    }
    let cn = SocketAddrV4::new(cn_core_ip(1), 5554);
    let (kept_one, kept_many, oversized_closed, pong, t_peer) =
        in_netns(&bed.srv.name.clone(), move || {
            let t = Duration::from_secs(3);
            // 200 idle connections from one outside host.
            let one: Vec<TcpStream> = (0..200)
                .map(|_| tcp_connect_from(Ipv4Addr::new(10, 0, 0, 150), cn, t).unwrap())
                .collect();
            std::thread::sleep(Duration::from_millis(500));
            let kept_one = one
                .iter()
                .filter(|s| !closed_by_peer(s, Duration::ZERO))
                .count();
            // 39 more hosts, 3 each: more than the 64 slots.
            let many: Vec<TcpStream> = (0..39 * 3)
                .map(|i| tcp_connect_from(Ipv4Addr::new(10, 0, 0, 151 + i / 3), cn, t).unwrap())
                .collect();
            // A Hello header announcing 64 KiB, then 60 KB of it.
            let mut big = tcp_connect_from(Ipv4Addr::new(10, 0, 0, 189), cn, t).unwrap();
            let mut h = vec![b'M', b'L', tmip::mlrp::VERSION, 0x02, 0, 1, 0, 0];
            h.resize(60_000, 0x55);
            big.set_write_timeout(Some(t)).unwrap();
            let _ = big.write_all(&h);
            std::thread::sleep(Duration::from_millis(500));
            let oversized_closed = closed_by_peer(&big, Duration::ZERO);
            let kept_many = many
                .iter()
                .filter(|s| !closed_by_peer(s, Duration::ZERO))
                .count();
            // A real peer with the secret: connects, handshakes, is served.
            let key = NetworkKey::derive(SECRET.as_bytes(), NETWORK_NAME);
            let t0 = Instant::now();
            let mut k =
                Client::connect_from(Ipv4Addr::new(10, 0, 0, 100), cn, Role::Cn, Some(&key), t)
                    .expect("a real peer connects while the listener is under attack");
            let pong = k.call(&Message::Ping { nonce: 7 }).unwrap();
            let t_peer = t0.elapsed();
            drop((one, many));
            (kept_one, kept_many, oversized_closed, pong, t_peer)
        });
    eprintln!(
        "CN listener: {kept_one} of 200 from one host kept, {kept_many} of 117 from 39 hosts kept; a real peer pinged in {t_peer:?}"
    );
    assert_eq!(pong, Message::Pong { nonce: 7 });
    assert!(t_peer < Duration::from_secs(1), "{t_peer:?}");
    assert_eq!(kept_one, 4, "per-source cap of unauthenticated connections");
    assert!(kept_many <= 64, "{kept_many}");
    assert!(oversized_closed, "the 64 KiB Hello was not refused");
    // In the foreground tmipd logs to its output file.
    let label = bed.cn(1).label().to_lowercase();
    let read = || {
        ["out", "log"]
            .iter()
            .map(|x| std::fs::read_to_string(bed.dir.join(format!("tmipd-{label}.{x}"))))
            .filter_map(Result::ok)
            .collect::<String>()
    };
    let deadline = Instant::now() + Duration::from_secs(15);
    let log = loop {
        let log = read();
        if log.contains("more CN connection(s) in the last 10 s") || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(
        log.contains("evicting unauthenticated CN connection from 10.0.0.150:"),
        "{log}"
    );
    assert!(
        log.contains("more CN connection(s) in the last 10 s"),
        "no summary line:\n{log}"
    );
    // ~300 refusals and evictions: a few lines, not one each.
    let lines = log
        .lines()
        .filter(|l| l.contains("evicting") || l.contains("refused before the handshake"))
        .count();
    assert!(lines <= 4, "{lines} lines:\n{log}");
}
