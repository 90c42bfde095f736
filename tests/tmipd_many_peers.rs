//! A CN with tunnels to 64 peer CNs (PEER_CAPACITY) forwards into every
//! one of them. The CN is told over its CN-to-CN port that 64 of its
//! stations are at 64 different CNs (Redirect, as a peer or the MLR would
//! push it); `srv` then sends one datagram to each station, and the fake
//! peers (64 addresses on the `mlr` namespace's core link) must each
//! receive it IPIP-encapsulated. With the userspace backend (kernels
//! without ipip, such as this test machine's) every tunnel is a TUN
//! descriptor in tmipd's poll loop: fixed poll-token ranges used to leave
//! the tunnels past the ~49th unpolled. With the kernel backend the test
//! holds the same way.
mod common;
#[path = "common/testbed.rs"]
mod testbed;
#[path = "common/traffic.rs"]
mod traffic;

use std::collections::BTreeMap;
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::{Duration, Instant};
use testbed::{cn_core_ip, Options, TestBed, NETWORK_NAME, SECRET};
use tmip::addr::{Cell30, MacAddr};
use tmip::mlrp::{Client, CnRef, Message, NetworkKey, Redirect, Role};

const PEERS: usize = 64;

fn peer_ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 0, 0, 150 + i as u8)
}

fn cell(i: usize) -> Cell30 {
    Cell30::from_network(Ipv4Addr::new(10, 77, 0, 4 * i as u8)).expect("cell")
}

/// IPIP packets arriving at the namespace's addresses for `wait`:
/// (outer destination, inner destination) of each.
fn receive_ipip(wait: Duration, want: usize) -> Vec<(Ipv4Addr, Ipv4Addr)> {
    // SAFETY: plain socket(2); the fd is owned below.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_IPIP) };
    assert!(
        fd >= 0,
        "raw IPIP socket: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: fd was just opened.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    let tv = libc::timeval {
        tv_sec: 0,
        tv_usec: 200_000,
    };
    // SAFETY: tv is a valid timeval for the call.
    unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_RCVTIMEO,
            (&tv as *const libc::timeval).cast(),
            std::mem::size_of::<libc::timeval>() as libc::socklen_t,
        )
    };
    let mut got = Vec::new();
    let mut buf = [0u8; 2048];
    let end = Instant::now() + wait;
    while Instant::now() < end && got.len() < want {
        // SAFETY: buf is valid for writes of its length.
        let n = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
        if n < 40 {
            continue;
        }
        let p = &buf[..n as usize];
        let ihl = usize::from(p[0] & 0x0f) * 4;
        if p[9] != 4 || p.len() < ihl + 20 {
            continue;
        }
        let outer = Ipv4Addr::new(p[16], p[17], p[18], p[19]);
        let inner = Ipv4Addr::new(p[ihl + 16], p[ihl + 17], p[ihl + 18], p[ihl + 19]);
        got.push((outer, inner));
    }
    got
}

#[test]
fn a_cn_forwards_into_tunnels_to_64_peers() {
    let mut bed = TestBed::new(Options {
        cns: 1,
        tmipd_extra: vec!["max_peers 64".into(), "max_stations 128".into()],
        ..Options::default()
    });
    if let Err(e) = bed.start_daemons(Duration::from_secs(20)) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    for i in 0..PEERS {
        bed.mlr
            .sh(&format!("ip addr add {}/24 dev core0", peer_ip(i)));
    }
    bed.srv
        .sh(&format!("ip route add 10.77.0.0/24 via {}", cn_core_ip(1)));
    // Tell the CN that its station i is now at peer i.
    let key = NetworkKey::derive(SECRET.as_bytes(), NETWORK_NAME);
    let cn = SocketAddr::from((cn_core_ip(1), 5554));
    let replies: Vec<Message> = bed.mlr.run_in(|| {
        let mut k = Client::connect(cn, Role::Cn, Some(&key), Duration::from_secs(5))
            .expect("connect to the CN");
        (0..PEERS)
            .map(|i| {
                k.call(&Message::Redirect(Redirect {
                    mac: MacAddr([2, 0x77, 0, 0, 0, i as u8]),
                    cell: cell(i),
                    to: CnRef::new(peer_ip(i), 5554),
                }))
                .expect("redirect answered")
            })
            .collect()
    });
    for (i, r) in replies.iter().enumerate() {
        assert_eq!(r, &Message::Ack, "redirect {i}\n{}", bed.logs());
    }
    // Listen at the peers, then send one datagram to each station from srv
    // (twice: the first may wait for ARP towards the peer).
    let got = std::thread::scope(|s| {
        let listener = s.spawn(|| {
            bed.mlr
                .run_in(|| receive_ipip(Duration::from_secs(10), 2 * PEERS))
        });
        std::thread::sleep(Duration::from_millis(300));
        bed.srv.run_in(|| {
            let s = UdpSocket::bind("0.0.0.0:0").expect("udp");
            for round in 0..2 {
                for i in 0..PEERS {
                    s.send_to(b"to a station at a peer", (cell(i).station(), 9))
                        .expect("send");
                }
                if round == 0 {
                    std::thread::sleep(Duration::from_millis(500));
                }
            }
        });
        listener.join().expect("listener")
    });
    let mut per_peer: BTreeMap<Ipv4Addr, usize> = BTreeMap::new();
    for (outer, inner) in &got {
        let i = (0..PEERS).find(|&i| peer_ip(i) == *outer);
        if let Some(i) = i {
            assert_eq!(
                *inner,
                cell(i).station(),
                "tunnel to peer {i} carried the wrong station"
            );
            *per_peer.entry(*outer).or_default() += 1;
        }
    }
    println!(
        "IPIP packets received from the CN: {} to {} of {PEERS} peers",
        got.len(),
        per_peer.len()
    );
    let missing: Vec<usize> = (0..PEERS)
        .filter(|&i| !per_peer.contains_key(&peer_ip(i)))
        .collect();
    assert!(
        missing.is_empty(),
        "no packet through the tunnels to peers {missing:?}\n{}",
        bed.logs()
    );
}
