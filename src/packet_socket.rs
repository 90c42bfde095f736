//! A raw AF_PACKET socket bound to one interface: receive whole Ethernet
//! frames (optionally through a classic BPF filter), send whole frames.
//! Non-blocking, close-on-exec; register its fd with the poll loop.
//!
//! Used by the DHCP server (frames to UDP port 67 in, replies out) and for
//! the gratuitous/unicast ARP a CN sends when it adopts a station: a packet
//! socket can send any EtherType whatever it is bound to receive (the CN's
//! data plane opens a send-only one, protocol 0).

use crate::addr::MacAddr;
use crate::netlink::{Netlink, NetlinkError};
use crate::sys::socket as sock;
use std::io;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, OwnedFd, RawFd};

pub use crate::sys::socket::{bpf, BpfInsn};

/// EtherType to bind for: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// EtherType to bind for: IPv4 only.
pub const ETH_P_IP: u16 = 0x0800;

fn ctx(e: io::Error, what: &str, ifname: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{ifname}: {what}: {e}"))
}

/// Index and MAC of interface `ifname`, from an rtnetlink link query (a
/// device without a 6-byte hardware address reads as all zeros).
pub fn link_facts(ifname: &str) -> io::Result<(i32, MacAddr)> {
    let link = Netlink::open().and_then(|mut nl| nl.link_by_name(ifname));
    match link {
        Ok(l) => Ok((l.index as i32, l.mac.unwrap_or(MacAddr::ZERO))),
        Err(NetlinkError::NoSuchLink(_)) => Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{ifname}: no such interface"),
        )),
        Err(e) => Err(io::Error::other(format!("{ifname}: {e}"))),
    }
}

/// A packet socket on one interface.
#[derive(Debug)]
pub struct PacketSocket {
    fd: OwnedFd,
    ifindex: i32,
    mac: MacAddr,
    ifname: String,
}

impl PacketSocket {
    /// Open a socket on `ifname` receiving frames of EtherType `protocol`
    /// (`ETH_P_ALL`, `ETH_P_IP`, … or 0 for a send-only socket) that pass
    /// `filter`. The filter is attached before the socket is bound, so no
    /// unfiltered frame is ever queued. Frames this host sends are not
    /// received.
    pub fn open(
        ifname: &str,
        protocol: u16,
        filter: Option<&[BpfInsn]>,
    ) -> io::Result<PacketSocket> {
        let (ifindex, mac) = link_facts(ifname)?;
        // Protocol 0: receives nothing until bound below.
        let fd = sock::open(libc::AF_PACKET, libc::SOCK_RAW | libc::SOCK_NONBLOCK, 0)
            .map_err(|e| ctx(e, "AF_PACKET socket", ifname))?;
        if let Some(f) = filter {
            sock::attach_filter(fd.as_raw_fd(), f)
                .map_err(|e| ctx(e, "SO_ATTACH_FILTER", ifname))?;
        }
        // Best effort (Linux >= 4.20); `recv` also drops outgoing frames.
        let _ = sock::ignore_outgoing(fd.as_fd());
        sock::bind_packet(fd.as_fd(), protocol, ifindex).map_err(|e| ctx(e, "bind", ifname))?;
        Ok(PacketSocket {
            fd,
            ifindex,
            mac,
            ifname: ifname.to_string(),
        })
    }

    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The interface's MAC, read when the socket was opened.
    pub fn mac(&self) -> MacAddr {
        self.mac
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Receive one frame into `buf`: `Ok(Some(len))`, or `Ok(None)` when no
    /// frame is waiting. Frames longer than `buf` and frames this host sent
    /// are skipped.
    pub fn recv(&self, buf: &mut [u8]) -> io::Result<Option<usize>> {
        loop {
            let (n, pkttype) = match sock::recv_frame(self.fd.as_fd(), buf) {
                Ok(r) => r,
                Err(e) => {
                    return match e.kind() {
                        io::ErrorKind::WouldBlock => Ok(None),
                        io::ErrorKind::Interrupted => continue,
                        _ => Err(e),
                    }
                }
            };
            if pkttype == sock::PACKET_OUTGOING {
                continue;
            }
            if n > buf.len() {
                log::debug!(target: "packet", "{}: skipped {n}-byte frame (buffer {})", self.ifname, buf.len());
                continue;
            }
            return Ok(Some(n));
        }
    }

    /// Send a whole Ethernet frame (destination and EtherType are read from
    /// its header).
    pub fn send(&self, frame: &[u8]) -> io::Result<()> {
        let n = sock::send_frame(self.fd.as_fd(), self.ifindex, frame)?;
        if n != frame.len() {
            return Err(io::Error::new(io::ErrorKind::WriteZero, "short send"));
        }
        Ok(())
    }
}

impl AsRawFd for PacketSocket {
    fn as_raw_fd(&self) -> RawFd {
        self.fd.as_raw_fd()
    }
}

impl AsFd for PacketSocket {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.fd.as_fd()
    }
}
