//! Userspace IPIP: one TUN device per peer CN and one raw
//! `socket(AF_INET, SOCK_RAW, IPPROTO_IPIP)` shared by all peers.
//!
//! Outbound: packets the kernel routes into a peer's TUN are read (several
//! per wakeup), given the kernel ipip device's outer header (see `ipip`) in
//! place, and sent in one `sendmmsg` with IP_HDRINCL. Inbound: protocol-4
//! packets are received with `recvmmsg`, checked, and the inner packet is
//! written into the TUN of the peer whose CN address is the outer source;
//! anything from an unknown source is dropped and counted.
//!
//! Everything is non-blocking and driven by the daemon's poll loop through
//! [`UserspaceIpip::on_readable`]; nothing here blocks or spawns threads.

use super::ipip::{decapsulate, Encap, OUTER_HEADER_LEN, TUNNEL_MTU};
use super::offload::{
    complete_checksum, segment_count, write_segment, Coalescer, Tcp4, VnetHdr, MAX_SUPER,
    VIRTIO_NET_HDR_F_NEEDS_CSUM, VIRTIO_NET_HDR_GSO_ECN, VIRTIO_NET_HDR_GSO_NONE,
    VIRTIO_NET_HDR_GSO_TCPV4, VNET_HDR_LEN,
};
use crate::sys::{fd as sysfd, socket as sock, tun};
use log::{debug, warn};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// Packets moved per system call.
const BATCH: usize = 64;
/// Batches handled per wakeup before returning to the poll loop (fairness).
const BUDGET: usize = 8;
/// Bytes per packet slot: an outer header plus a 1500-byte-MTU packet fits,
/// with room for TUN MTUs up to SLOT - 20.
const SLOT: usize = 2048;
/// With offloads, receive slots hold a whole IPv4 packet: a NIC doing GRO
/// hands the raw socket merged IPIP packets of up to 64 KB, which we pass
/// on to the TUN as one GSO write. Fewer, larger slots bound the memory.
const BIG_SLOT: usize = 65536;
const BIG_BATCH: usize = 8;
/// Socket buffer size asked for (SO_*BUFFORCE as root, else capped by sysctl).
const SOCK_BUF: libc::c_int = 8 << 20;
const _: () = assert!(BATCH <= sock::MAX_BATCH);

/// Counters for `status` and the benchmark. `*_dropped` are packets lost here.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserspaceStats {
    pub tx_packets: u64,
    pub tx_bytes: u64,
    /// sendmmsg refused (buffer full, EMSGSIZE, no route).
    pub tx_dropped: u64,
    /// Non-IPv4 packets the kernel put into a TUN (IPv6 neighbour discovery,
    /// MLD): an ipip device never carries them, so neither do we.
    pub tx_not_ipv4: u64,
    pub rx_packets: u64,
    pub rx_bytes: u64,
    /// Protocol-4 packets from a source that is not a known peer.
    pub rx_unknown_peer: u64,
    /// Not a well-formed IPv4-in-IPv4 packet, or larger than a slot.
    pub rx_malformed: u64,
    /// The peer's TUN refused the write (queue full).
    pub rx_dropped: u64,
    /// Inner packets larger than the TUN MTU that could not be passed on
    /// (not TCP, or offloads off).
    pub rx_oversize: u64,
    /// read(2)/write(2) calls on TUN devices (offload makes these fewer
    /// than packets).
    pub tun_reads: u64,
    pub tun_writes: u64,
    /// A TUN handed us something we cannot segment or checksum.
    pub tx_malformed: u64,
}

struct Peer {
    remote: Ipv4Addr,
    name: String,
    tun: OwnedFd,
    encap: Encap,
}

pub struct UserspaceIpip {
    raw: OwnedFd,
    local: Ipv4Addr,
    ttl: u8,
    peers: Vec<Peer>,
    ip_id: u16,
    rxbuf: Vec<u8>,
    rx_slot: usize,
    rx_batch: usize,
    txbuf: Vec<u8>,
    stats: UserspaceStats,
    /// TUNs with virtio headers, TSO4 reads and coalesced writes.
    offload: bool,
    /// One TUN read (virtio header + up to a 64 KB super-packet).
    rdbuf: Vec<u8>,
    coalescer: Coalescer,
}

impl UserspaceIpip {
    /// Opens the raw IPIP socket bound to our CN address `local`. With
    /// `offload`, TUNs use virtio headers: TSO super-packets are read and
    /// segmented here, received segments are coalesced before writing.
    pub fn open(local: Ipv4Addr, ttl: u8, offload: bool) -> io::Result<UserspaceIpip> {
        let raw = sock::open(
            libc::AF_INET,
            libc::SOCK_RAW | libc::SOCK_NONBLOCK,
            libc::IPPROTO_IPIP,
        )?;
        let fd = raw.as_fd();
        sock::set_int(fd, libc::IPPROTO_IP, libc::IP_HDRINCL, 1)?;
        for (force, plain) in [
            (libc::SO_RCVBUFFORCE, libc::SO_RCVBUF),
            (libc::SO_SNDBUFFORCE, libc::SO_SNDBUF),
        ] {
            if sock::set_int(fd, libc::SOL_SOCKET, force, SOCK_BUF).is_err() {
                sock::set_int(fd, libc::SOL_SOCKET, plain, SOCK_BUF)?;
            }
        }
        // Bound to our address: only packets for this CN reach us.
        sock::bind_v4(fd, std::net::SocketAddrV4::new(local, 0))?;
        Ok(UserspaceIpip {
            raw,
            local,
            ttl,
            peers: Vec::new(),
            ip_id: 1,
            rxbuf: if offload {
                vec![0; BIG_BATCH * BIG_SLOT]
            } else {
                vec![0; BATCH * SLOT]
            },
            rx_slot: if offload { BIG_SLOT } else { SLOT },
            rx_batch: if offload { BIG_BATCH } else { BATCH },
            txbuf: vec![0; BATCH * SLOT],
            stats: UserspaceStats::default(),
            offload,
            rdbuf: if offload {
                vec![0; VNET_HDR_LEN + MAX_SUPER]
            } else {
                Vec::new()
            },
            coalescer: if offload {
                Coalescer::default()
            } else {
                Coalescer::empty()
            },
        })
    }

    pub fn raw_fd(&self) -> RawFd {
        self.raw.as_raw_fd()
    }

    pub fn local(&self) -> Ipv4Addr {
        self.local
    }

    pub fn stats(&self) -> UserspaceStats {
        self.stats
    }

    /// Every descriptor the poll loop must watch for reading.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        let mut v = vec![self.raw_fd()];
        v.extend(self.peers.iter().map(|p| p.tun.as_raw_fd()));
        v
    }

    /// Creates the TUN device `name` for `remote`; returns its fd to poll.
    /// The caller brings the link up and sets its MTU (rtnetlink).
    pub fn add_peer(&mut self, name: &str, remote: Ipv4Addr) -> io::Result<RawFd> {
        if self.peers.iter().any(|p| p.remote == remote) {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("a userspace tunnel to {remote} exists"),
            ));
        }
        let tun = tun::open(name, self.offload)?;
        let fd = tun.as_raw_fd();
        self.peers.push(Peer {
            remote,
            name: name.to_string(),
            tun,
            encap: Encap {
                local: self.local,
                remote,
                ttl: self.ttl,
            },
        });
        Ok(fd)
    }

    /// Closes the peer's TUN (the device disappears); returns the fd number
    /// that the poll loop must forget.
    pub fn remove_peer(&mut self, remote: Ipv4Addr) -> Option<RawFd> {
        let i = self.peers.iter().position(|p| p.remote == remote)?;
        let p = self.peers.swap_remove(i);
        debug!(target: "tunnel", "userspace tunnel {} to {} closed", p.name, p.remote);
        Some(p.tun.as_raw_fd())
    }

    /// Handles readiness of one of our descriptors. Returns false if `fd`
    /// is not ours.
    pub fn on_readable(&mut self, fd: RawFd) -> bool {
        if fd == self.raw_fd() {
            self.on_raw_readable();
            true
        } else if let Some(i) = self.peers.iter().position(|p| p.tun.as_raw_fd() == fd) {
            if self.offload {
                self.on_tun_readable_offload(i);
            } else {
                self.on_tun_readable(i);
            }
            true
        } else {
            false
        }
    }

    /// Outbound: TUN -> encapsulate -> raw socket, in batches.
    fn on_tun_readable(&mut self, peer: usize) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let (tunfd, encap) = (p.tun.as_raw_fd(), p.encap);
        let dst = encap.remote;
        for _ in 0..BUDGET {
            let mut lens = [0usize; BATCH];
            let mut n = 0;
            while n < BATCH {
                let slot = &mut self.txbuf[n * SLOT..(n + 1) * SLOT];
                match sysfd::read_nonblocking(tunfd, &mut slot[OUTER_HEADER_LEN..]) {
                    Ok(Some(len)) if len > 0 => {
                        self.stats.tun_reads += 1;
                        if slot[OUTER_HEADER_LEN] >> 4 != 4 {
                            self.stats.tx_not_ipv4 += 1;
                            continue;
                        }
                        let mut hdr = [0u8; OUTER_HEADER_LEN];
                        encap.write_header(&mut hdr, len, self.ip_id);
                        self.ip_id = self.ip_id.wrapping_add(1);
                        slot[..OUTER_HEADER_LEN].copy_from_slice(&hdr);
                        lens[n] = OUTER_HEADER_LEN + len;
                        n += 1;
                    }
                    Ok(_) => break,
                    Err(e) => {
                        warn!(target: "tunnel", "read from tunnel to {}: {e}", encap.remote);
                        break;
                    }
                }
            }
            if n == 0 {
                return;
            }
            self.send_batch(&lens[..n], &dst);
            if n < BATCH {
                return;
            }
        }
    }

    /// Outbound with offloads: one read may be a TSO super-packet, cut
    /// here into wire-sized segments with full checksums.
    fn on_tun_readable_offload(&mut self, peer: usize) {
        let Some(p) = self.peers.get(peer) else {
            return;
        };
        let (tunfd, encap) = (p.tun.as_raw_fd(), p.encap);
        let dst = encap.remote;
        let mut rd = std::mem::take(&mut self.rdbuf);
        let mut lens = [0usize; BATCH];
        let mut n = 0;
        for _ in 0..BUDGET * 8 {
            let len = match sysfd::read_nonblocking(tunfd, &mut rd) {
                Ok(Some(len)) => len,
                Ok(None) => break,
                Err(e) => {
                    warn!(target: "tunnel", "read from tunnel to {}: {e}", encap.remote);
                    break;
                }
            };
            self.stats.tun_reads += 1;
            let Some(vh) = VnetHdr::parse(&rd[..len]) else {
                self.stats.tx_malformed += 1;
                continue;
            };
            let pkt = &mut rd[VNET_HDR_LEN..len];
            if pkt.first().map(|b| b >> 4) != Some(4) {
                self.stats.tx_not_ipv4 += 1;
                continue;
            }
            let gso = vh.gso_type & !VIRTIO_NET_HDR_GSO_ECN;
            if gso == VIRTIO_NET_HDR_GSO_TCPV4 {
                let (Some(t), mss) = (Tcp4::parse(pkt), vh.gso_size as usize) else {
                    self.stats.tx_malformed += 1;
                    continue;
                };
                if mss == 0 || t.hdr_len() + mss + OUTER_HEADER_LEN > SLOT {
                    self.stats.tx_malformed += 1;
                    continue;
                }
                for i in 0..segment_count(&t, mss) {
                    if n == BATCH {
                        self.send_batch(&lens, &dst);
                        n = 0;
                    }
                    let slot = &mut self.txbuf[n * SLOT..(n + 1) * SLOT];
                    let Ok(l) = write_segment(pkt, &t, mss, i, &mut slot[OUTER_HEADER_LEN..])
                    else {
                        self.stats.tx_malformed += 1;
                        break;
                    };
                    let mut hdr = [0u8; OUTER_HEADER_LEN];
                    encap.write_header(&mut hdr, l, self.ip_id);
                    self.ip_id = self.ip_id.wrapping_add(1);
                    slot[..OUTER_HEADER_LEN].copy_from_slice(&hdr);
                    lens[n] = OUTER_HEADER_LEN + l;
                    n += 1;
                }
            } else if gso == VIRTIO_NET_HDR_GSO_NONE {
                if vh.flags & VIRTIO_NET_HDR_F_NEEDS_CSUM != 0
                    && complete_checksum(pkt, vh.csum_start as usize, vh.csum_offset as usize)
                        .is_err()
                {
                    self.stats.tx_malformed += 1;
                    continue;
                }
                if pkt.len() + OUTER_HEADER_LEN > SLOT {
                    self.stats.tx_malformed += 1;
                    continue;
                }
                if n == BATCH {
                    self.send_batch(&lens, &dst);
                    n = 0;
                }
                let slot = &mut self.txbuf[n * SLOT..(n + 1) * SLOT];
                slot[OUTER_HEADER_LEN..OUTER_HEADER_LEN + pkt.len()].copy_from_slice(pkt);
                let mut hdr = [0u8; OUTER_HEADER_LEN];
                encap.write_header(&mut hdr, pkt.len(), self.ip_id);
                self.ip_id = self.ip_id.wrapping_add(1);
                slot[..OUTER_HEADER_LEN].copy_from_slice(&hdr);
                lens[n] = OUTER_HEADER_LEN + pkt.len();
                n += 1;
            } else {
                self.stats.tx_malformed += 1;
            }
        }
        if n > 0 {
            self.send_batch(&lens[..n], &dst);
        }
        self.rdbuf = rd;
    }

    fn send_batch(&mut self, lens: &[usize], dst: &Ipv4Addr) {
        let mut sent = 0;
        while sent < lens.len() {
            let r = sock::send_batch(
                self.raw.as_fd(),
                &self.txbuf[sent * SLOT..],
                SLOT,
                &lens[sent..],
                *dst,
            );
            let r = match r {
                Ok(r) => r,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // The packet at `sent` failed; drop it and carry on.
                    self.stats.tx_dropped += 1;
                    debug!(target: "packet", "ipip send: {e}");
                    sent += 1;
                    continue;
                }
            };
            for &l in &lens[sent..sent + r] {
                self.stats.tx_packets += 1;
                self.stats.tx_bytes += l as u64;
            }
            sent += r;
        }
    }

    /// Inbound: raw socket -> decapsulate -> the source peer's TUN.
    fn on_raw_readable(&mut self) {
        let (slot, batch) = (self.rx_slot, self.rx_batch);
        // The same packet budget per wakeup whatever the batch size.
        for _ in 0..BUDGET * BATCH / batch {
            let mut got = [sock::Received::default(); BATCH];
            let n = match sock::recv_batch(
                self.raw.as_fd(),
                &mut self.rxbuf,
                slot,
                &mut got[..batch],
            ) {
                Ok(n) if n > 0 => n,
                // EAGAIN (or an error the next wakeup will show again)
                _ => break,
            };
            for (i, m) in got.iter().enumerate().take(n) {
                let len = m.len;
                if m.truncated || len > slot {
                    self.stats.rx_oversize += 1;
                    continue;
                }
                let pkt = &self.rxbuf[i * slot..i * slot + len];
                let d = match decapsulate(pkt) {
                    Ok(d) => d,
                    Err(e) => {
                        self.stats.rx_malformed += 1;
                        debug!(target: "packet", "ipip receive: {e}");
                        continue;
                    }
                };
                let Some(p) = self.peers.iter().find(|p| p.remote == d.outer_src) else {
                    self.stats.rx_unknown_peer += 1;
                    debug!(target: "packet", "ipip from unknown peer {} dropped", d.outer_src);
                    continue;
                };
                let inner = &pkt[d.inner_start..d.inner_end];
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += inner.len() as u64;
                if !self.offload {
                    self.stats.tun_writes += 1;
                    if inner.len() > SLOT - OUTER_HEADER_LEN {
                        self.stats.rx_oversize += 1;
                    } else if sysfd::write(p.tun.as_raw_fd(), inner).is_err() {
                        self.stats.rx_dropped += 1;
                    }
                    continue;
                }
                let owner = p.tun.as_raw_fd() as usize;
                if inner.len() > TUNNEL_MTU as usize {
                    // Merged by GRO before it reached us: one GSO write.
                    flush(&mut self.coalescer, &mut self.stats);
                    let hl = Tcp4::parse(inner).map_or(0, |t| t.hdr_len());
                    let mss = (TUNNEL_MTU as usize).saturating_sub(hl);
                    if self.coalescer.start_super(owner, inner, mss) {
                        flush(&mut self.coalescer, &mut self.stats);
                    } else {
                        self.stats.rx_oversize += 1;
                    }
                    continue;
                }
                if !self.coalescer.try_append(owner, inner) {
                    flush(&mut self.coalescer, &mut self.stats);
                    if !self.coalescer.start(owner, inner) {
                        self.stats.tun_writes += 1;
                        let plain = VnetHdr::default().emit();
                        if sysfd::write2(owner as RawFd, &plain, inner).is_err() {
                            self.stats.rx_dropped += 1;
                        }
                    }
                }
                if self.coalescer.closed() {
                    flush(&mut self.coalescer, &mut self.stats);
                }
            }
            if n < batch {
                break;
            }
        }
        // Nothing stays pending across wakeups: peers may go meanwhile.
        flush(&mut self.coalescer, &mut self.stats);
    }
}

/// Writes the coalescer's pending packet into its TUN (`owner` is the fd).
/// A refused write drops every segment in it.
fn flush(c: &mut Coalescer, stats: &mut UserspaceStats) {
    let fd = c.owner as RawFd;
    let segs = c.segments() as u64;
    if let Some(buf) = c.take() {
        stats.tun_writes += 1;
        if sysfd::write(fd, buf).is_err() {
            stats.rx_dropped += segs;
        }
    }
}

impl UserspaceIpip {
    /// Whether TUNs use virtio headers (TSO reads, coalesced writes).
    pub fn offload(&self) -> bool {
        self.offload
    }
}
