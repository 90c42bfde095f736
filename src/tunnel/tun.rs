//! TUN devices: `/dev/net/tun` with IFF_TUN | IFF_NO_PI (raw IPv4 packets,
//! no packet-info prefix), non-blocking for the poll loop. The device lives
//! as long as the descriptor (not persistent), so a crashed daemon leaves
//! no TUN devices behind.

use std::io;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

const IFF_TUN: u16 = 0x0001;
const IFF_NO_PI: u16 = 0x1000;
const IFF_VNET_HDR: u16 = 0x4000;
const TUN_F_CSUM: libc::c_uint = 0x01;
const TUN_F_TSO4: libc::c_uint = 0x02;
const IFNAMSIZ: usize = 16;

/// Opens (creating) the TUN device `name`; returns its descriptor. With
/// `offload`, every packet carries a virtio_net_hdr and the kernel may hand
/// us TCPv4 super-packets and partial checksums (see `offload`).
pub fn open_tun(name: &str, offload: bool) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= IFNAMSIZ {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1..15 bytes"),
        ));
    }
    // SAFETY: open(2) with a constant NUL-terminated path.
    let fd = unsafe {
        libc::open(
            c"/dev/net/tun".as_ptr(),
            libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd is fresh and ours.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    // struct ifreq: char ifr_name[16]; union { short ifr_flags; ... } (40 bytes on LP64)
    let mut ifr = [0u8; 40];
    ifr[..name.len()].copy_from_slice(name.as_bytes());
    let flags = IFF_TUN | IFF_NO_PI | if offload { IFF_VNET_HDR } else { 0 };
    ifr[IFNAMSIZ..IFNAMSIZ + 2].copy_from_slice(&flags.to_ne_bytes());
    let req = nix::request_code_write!(b'T', 202, std::mem::size_of::<libc::c_int>()); // TUNSETIFF
                                                                                       // SAFETY: TUNSETIFF reads/writes an ifreq; ifr is large enough.
    let r = unsafe { libc::ioctl(fd.as_raw_fd(), req as _, ifr.as_mut_ptr()) };
    if r < 0 {
        return Err(io::Error::last_os_error());
    }
    if offload {
        let req = nix::request_code_write!(b'T', 208, std::mem::size_of::<libc::c_uint>()); // TUNSETOFFLOAD
                                                                                            // SAFETY: TUNSETOFFLOAD takes its flags by value.
        let r = unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                req as _,
                (TUN_F_CSUM | TUN_F_TSO4) as libc::c_ulong,
            )
        };
        if r < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(fd)
}

/// read(2) one packet; `Ok(None)` when nothing is waiting.
pub fn read_packet(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    // SAFETY: buf is valid for writes of its length.
    let n = unsafe { libc::read(fd, buf.as_mut_ptr() as *mut libc::c_void, buf.len()) };
    if n >= 0 {
        return Ok(Some(n as usize));
    }
    let e = io::Error::last_os_error();
    if e.kind() == io::ErrorKind::WouldBlock {
        Ok(None)
    } else {
        Err(e)
    }
}

/// write(2) one packet.
pub fn write_packet(fd: RawFd, pkt: &[u8]) -> io::Result<()> {
    // SAFETY: pkt is valid for reads of its length.
    let n = unsafe { libc::write(fd, pkt.as_ptr() as *const libc::c_void, pkt.len()) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

/// writev(2) of a header and a packet as one TUN packet.
pub fn write_parts(fd: RawFd, hdr: &[u8], pkt: &[u8]) -> io::Result<()> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: pkt.as_ptr() as *mut libc::c_void,
            iov_len: pkt.len(),
        },
    ];
    // SAFETY: both iovecs point at live buffers of their lengths.
    let n = unsafe { libc::writev(fd, iov.as_ptr(), 2) };
    if n < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}
