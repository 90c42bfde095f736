//! The DHCP server's I/O on a mobile interface: a [`PacketSocket`] that
//! receives only IPv4/UDP frames to port 67 (a classic BPF filter attached
//! before bind) and sends reply frames, plus a UDP "sink" socket bound to
//! port 67 on the same interface.
//!
//! Why the sink: unicast renewals to N+2 are also delivered to the host's IP
//! stack; with no UDP socket on port 67 the kernel would answer them with
//! ICMP port unreachable, which some clients take as a failed renewal. The
//! sink is never read; its tiny receive buffer just fills and drops. Several
//! servers (one per interface) can hold one each (SO_BINDTODEVICE); when the
//! port is taken otherwise, the sink is skipped with a warning.
//!
//! The same packet socket sends ARP frames (see `wire::arp::frame`).

use crate::addr::MacAddr;
use crate::packet_socket::{bpf, BpfInsn, PacketSocket, ETH_P_IP};
use crate::sys::socket as sock;
use std::io;
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::{AsFd, AsRawFd, OwnedFd, RawFd};

/// `tcpdump -dd 'ip and udp dst port 67'`: IPv4, UDP, not a non-first
/// fragment, destination port 67.
pub const FILTER_UDP_DST_67: [BpfInsn; 11] = [
    bpf(0x28, 0, 0, 0x0000_000c),
    bpf(0x15, 0, 8, 0x0000_0800),
    bpf(0x30, 0, 0, 0x0000_0017),
    bpf(0x15, 0, 6, 0x0000_0011),
    bpf(0x28, 0, 0, 0x0000_0014),
    bpf(0x45, 4, 0, 0x0000_1fff),
    bpf(0xb1, 0, 0, 0x0000_000e),
    bpf(0x48, 0, 0, 0x0000_0010),
    bpf(0x15, 0, 1, 0x0000_0043),
    bpf(0x06, 0, 0, 0x0004_0000),
    bpf(0x06, 0, 0, 0x0000_0000),
];

/// Largest frame we accept (Ethernet MTU plus header and a VLAN tag).
pub const FRAME_BUF: usize = 1522;

/// The DHCP server's sockets on one interface.
#[derive(Debug)]
pub struct DhcpSocket {
    packet: PacketSocket,
    _sink: Option<OwnedFd>,
}

fn sink_socket(ifname: &str) -> io::Result<OwnedFd> {
    let s = sock::open(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_NONBLOCK, 0)?;
    let fd = s.as_fd();
    sock::set_int(fd, libc::SOL_SOCKET, libc::SO_REUSEADDR, 1)?;
    sock::bind_to_device(fd, ifname)
        .map_err(|e| io::Error::new(e.kind(), format!("{ifname}: SO_BINDTODEVICE: {e}")))?;
    sock::set_int(fd, libc::SOL_SOCKET, libc::SO_RCVBUF, 1)?;
    sock::bind_v4(fd, SocketAddrV4::new(Ipv4Addr::UNSPECIFIED, 67))
        .map_err(|e| io::Error::new(e.kind(), format!("{ifname}: bind UDP port 67: {e}")))?;
    Ok(s)
}

impl DhcpSocket {
    /// Open the server's sockets on `ifname`.
    pub fn open(ifname: &str) -> io::Result<DhcpSocket> {
        let packet = PacketSocket::open(ifname, ETH_P_IP, Some(&FILTER_UDP_DST_67))?;
        // Best effort: another DHCP server holding port 67 on every
        // interface (without SO_REUSEADDR) also keeps the kernel from
        // sending port unreachable, so serving works without the sink.
        let sink = match sink_socket(ifname) {
            Ok(s) => Some(s),
            Err(e) => {
                log::warn!(target: "dhcp", "no UDP port 67 socket on {ifname} ({e}); unicast renewals may draw ICMP port unreachable");
                None
            }
        };
        Ok(DhcpSocket {
            packet,
            _sink: sink,
        })
    }

    /// The interface's MAC: the source of every reply.
    pub fn mac(&self) -> MacAddr {
        self.packet.mac()
    }

    /// Receive one frame (`None` when none is waiting).
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        self.packet.recv(buf)
    }

    /// Send a reply or ARP frame.
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        self.packet.send(frame)
    }

    pub fn packet_socket(&self) -> &PacketSocket {
        &self.packet
    }
}

impl AsRawFd for DhcpSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.packet.as_raw_fd()
    }
}
