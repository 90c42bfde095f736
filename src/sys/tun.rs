//! TUN devices: `/dev/net/tun` with IFF_TUN | IFF_NO_PI (raw IPv4 packets,
//! no packet-info prefix), non-blocking for the poll loop. The device lives
//! as long as the descriptor (not persistent), so a crashed daemon leaves
//! no TUN devices behind. Packets are read and written with [`super::fd`].

use std::io;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;

/// Opens (creating) the TUN device `name`; returns its descriptor. With
/// `offload`, every packet carries a virtio_net_hdr and the kernel may hand
/// us TCPv4 super-packets and partial checksums.
pub fn open(name: &str, offload: bool) -> io::Result<OwnedFd> {
    if name.is_empty() || name.len() >= libc::IFNAMSIZ || name.contains('\0') {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("interface name {name:?} must be 1..15 bytes"),
        ));
    }
    let fd: OwnedFd = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NONBLOCK)
        .open("/dev/net/tun")?
        .into();
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(name.as_bytes()) {
        *d = *s as libc::c_char;
    }
    let flags = libc::IFF_TUN | libc::IFF_NO_PI | if offload { libc::IFF_VNET_HDR } else { 0 };
    ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
    // SAFETY: TUNSETIFF reads and writes the ifreq, which outlives the call.
    super::cvt(unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF as _, &mut ifr) })?;
    if offload {
        // SAFETY: TUNSETOFFLOAD takes its flags by value.
        super::cvt(unsafe {
            libc::ioctl(
                fd.as_raw_fd(),
                libc::TUNSETOFFLOAD as _,
                (libc::TUN_F_CSUM | libc::TUN_F_TSO4) as libc::c_ulong,
            )
        })?;
    }
    Ok(fd)
}

#[cfg(test)]
mod tests {
    #[test]
    fn bad_device_names_are_refused() {
        for name in ["", "sixteen-chars-xx", "a\0b"] {
            let e = super::open(name, false).unwrap_err();
            assert_eq!(e.kind(), std::io::ErrorKind::InvalidInput, "{name:?}");
        }
    }
}
