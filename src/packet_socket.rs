//! A raw AF_PACKET socket bound to one interface: receive whole Ethernet
//! frames (optionally through a classic BPF filter), send whole frames.
//! Non-blocking, close-on-exec; register its fd with the poll loop.
//!
//! Used by the DHCP server (frames to UDP port 67 in, replies out) and for
//! the gratuitous/unicast ARP a CN sends when it adopts a station: a packet
//! socket can send any EtherType whatever it is bound to receive.

use crate::addr::MacAddr;
use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsFd, AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};

/// One classic BPF instruction (`struct sock_filter`).
pub type BpfInsn = libc::sock_filter;

/// EtherType to bind for: every protocol.
pub const ETH_P_ALL: u16 = 0x0003;
/// EtherType to bind for: IPv4 only.
pub const ETH_P_IP: u16 = 0x0800;

const SOL_PACKET: libc::c_int = 263;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;
const PACKET_OUTGOING: u8 = 4;

/// Shorthand for a BPF instruction literal, as `tcpdump -dd` prints them.
pub const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

/// Attach the classic BPF program `prog` to socket `fd` (replacing any
/// filter on it). Also used on libpcap's socket by `capture`.
pub fn attach_filter(fd: RawFd, prog: &[BpfInsn]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr() as *mut BpfInsn,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            &fprog as *const _ as *const libc::c_void,
            mem::size_of::<libc::sock_fprog>() as libc::socklen_t,
        )
    })
    .map(drop)
}

fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

fn ctx(e: io::Error, what: &str, ifname: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{ifname}: {what}: {e}"))
}

/// Index of interface `ifname`.
pub fn ifindex(ifname: &str) -> io::Result<i32> {
    let c = CString::new(ifname).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let idx = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if idx == 0 {
        Err(ctx(io::Error::last_os_error(), "no such interface", ifname))
    } else {
        Ok(idx as i32)
    }
}

/// Hardware address of interface `ifname` (SIOCGIFHWADDR).
pub fn hardware_addr(ifname: &str) -> io::Result<MacAddr> {
    let name = ifname.as_bytes();
    if name.len() >= libc::IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{ifname}: interface name too long"),
        ));
    }
    // SAFETY: plain datagram socket, closed by OwnedFd.
    let fd = unsafe {
        OwnedFd::from_raw_fd(cvt(libc::socket(
            libc::AF_INET,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            0,
        ))?)
    };
    // SAFETY: ifreq is plain old data; zeroed is a valid value.
    let mut req: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in req.ifr_name.iter_mut().zip(name) {
        *d = *s as libc::c_char;
    }
    // SAFETY: SIOCGIFHWADDR reads ifr_name and writes ifr_hwaddr in `req`.
    cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::SIOCGIFHWADDR as _, &mut req) })
        .map_err(|e| ctx(e, "SIOCGIFHWADDR", ifname))?;
    // SAFETY: the kernel filled the hwaddr member of the union.
    let sa = unsafe { req.ifr_ifru.ifru_hwaddr };
    let mut mac = [0u8; 6];
    for (d, s) in mac.iter_mut().zip(sa.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(MacAddr(mac))
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
        let ifindex = ifindex(ifname)?;
        let mac = hardware_addr(ifname)?;
        // Protocol 0: receives nothing until bound below.
        // SAFETY: plain socket call; the fd is owned from here on.
        let fd = unsafe {
            OwnedFd::from_raw_fd(
                cvt(libc::socket(
                    libc::AF_PACKET,
                    libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                    0,
                ))
                .map_err(|e| ctx(e, "AF_PACKET socket", ifname))?,
            )
        };
        if let Some(f) = filter {
            attach_filter(fd.as_raw_fd(), f).map_err(|e| ctx(e, "SO_ATTACH_FILTER", ifname))?;
        }
        let one: libc::c_int = 1;
        // Best effort (Linux >= 4.20); `recv` also drops outgoing frames.
        // SAFETY: valid fd and option pointer/length.
        let _ = unsafe {
            libc::setsockopt(
                fd.as_raw_fd(),
                SOL_PACKET,
                PACKET_IGNORE_OUTGOING,
                &one as *const _ as *const libc::c_void,
                mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = protocol.to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll of the given length.
        cvt(unsafe {
            libc::bind(
                fd.as_raw_fd(),
                &sll as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        })
        .map_err(|e| ctx(e, "bind", ifname))?;
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
            // SAFETY: sockaddr_ll is plain old data.
            let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
            let mut sl = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            // SAFETY: buf and sll are valid for writes of the given lengths.
            let n = unsafe {
                libc::recvfrom(
                    self.fd.as_raw_fd(),
                    buf.as_mut_ptr() as *mut libc::c_void,
                    buf.len(),
                    libc::MSG_TRUNC | libc::MSG_DONTWAIT,
                    &mut sll as *mut _ as *mut libc::sockaddr,
                    &mut sl,
                )
            };
            if n < 0 {
                let e = io::Error::last_os_error();
                return match e.kind() {
                    io::ErrorKind::WouldBlock => Ok(None),
                    io::ErrorKind::Interrupted => continue,
                    _ => Err(e),
                };
            }
            let n = n as usize;
            if sll.sll_pkttype == PACKET_OUTGOING {
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
        if frame.len() < 14 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "frame shorter than an Ethernet header",
            ));
        }
        // SAFETY: sockaddr_ll is plain old data.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = u16::from_be_bytes([frame[12], frame[13]]).to_be();
        sll.sll_ifindex = self.ifindex;
        sll.sll_halen = 6;
        sll.sll_addr[..6].copy_from_slice(&frame[..6]);
        // SAFETY: frame and sll are valid for reads of the given lengths.
        let n = unsafe {
            libc::sendto(
                self.fd.as_raw_fd(),
                frame.as_ptr() as *const libc::c_void,
                frame.len(),
                0,
                &sll as *const _ as *const libc::sockaddr,
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        if n as usize != frame.len() {
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
