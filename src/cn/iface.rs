//! What the kernel says about an interface (address, MAC, mask, broadcast,
//! index), read with the classic SIOCGIF* ioctls on a throw-away socket, for
//! the start-up report and for resolving `addr_pool IFACE * *`.

use crate::addr::{mask_to_prefix, MacAddr};
use std::io;
use std::net::Ipv4Addr;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IfaceInfo {
    pub name: String,
    pub index: u32,
    pub ip: Ipv4Addr,
    pub mac: MacAddr,
    pub mask: Ipv4Addr,
    pub broadcast: Ipv4Addr,
}

impl IfaceInfo {
    pub fn prefix(&self) -> u8 {
        mask_to_prefix(self.mask).unwrap_or(32)
    }

    /// The seed's report block.
    pub fn report(&self) -> [String; 5] {
        [
            format!("  + Interface: {}", self.name),
            format!("  + IP: {}", self.ip),
            format!("  + Mac: {}", self.mac),
            format!("  + Subnet: {}", self.mask),
            format!("  + Broadcast: {}", self.broadcast),
        ]
    }
}

fn ifreq(name: &str) -> io::Result<libc::ifreq> {
    let b = name.as_bytes();
    if b.is_empty() || b.len() >= libc::IFNAMSIZ || b.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("bad interface name '{name}'"),
        ));
    }
    // SAFETY: ifreq is plain old data; all-zero is a valid value.
    let mut r: libc::ifreq = unsafe { std::mem::zeroed() };
    for (d, s) in r.ifr_name.iter_mut().zip(b) {
        *d = *s as libc::c_char;
    }
    Ok(r)
}

fn ioctl(fd: libc::c_int, req: libc::c_ulong, r: &mut libc::ifreq) -> io::Result<()> {
    // SAFETY: r is a valid, initialised ifreq that outlives the call; the
    // requests used here only read/write within it.
    let rc = unsafe { libc::ioctl(fd, req as _, r as *mut libc::ifreq) };
    if rc < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(())
    }
}

fn sockaddr_ip(r: &libc::ifreq) -> Ipv4Addr {
    // SAFETY: for the SIOCGIF*ADDR requests the kernel fills ifru_addr with a
    // sockaddr_in; reading it as one is how the API is defined.
    let sin =
        unsafe { &*(&r.ifr_ifru.ifru_addr as *const libc::sockaddr as *const libc::sockaddr_in) };
    Ipv4Addr::from(u32::from_be(sin.sin_addr.s_addr))
}

/// Read `name`'s IPv4 settings. An interface with no IPv4 address is an error.
pub fn query(name: &str) -> io::Result<IfaceInfo> {
    // SAFETY: plain socket(2) call.
    let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fd was just opened and is owned here.
    let _guard = unsafe { <std::os::fd::OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(fd) };
    let ctx = |what: &str, e: io::Error| io::Error::new(e.kind(), format!("{name}: {what}: {e}"));
    let mut r = ifreq(name)?;
    ioctl(fd, libc::SIOCGIFINDEX, &mut r).map_err(|e| ctx("no such interface", e))?;
    // SAFETY: SIOCGIFINDEX filled ifru_ifindex.
    let index = unsafe { r.ifr_ifru.ifru_ifindex } as u32;
    let mut r = ifreq(name)?;
    ioctl(fd, libc::SIOCGIFADDR, &mut r).map_err(|e| ctx("no IPv4 address", e))?;
    let ip = sockaddr_ip(&r);
    let mut r = ifreq(name)?;
    ioctl(fd, libc::SIOCGIFNETMASK, &mut r).map_err(|e| ctx("netmask", e))?;
    let mask = sockaddr_ip(&r);
    let mut r = ifreq(name)?;
    let computed = Ipv4Addr::from(u32::from(ip) | !u32::from(mask));
    // An address added without `brd` reports 0.0.0.0; show the subnet's.
    let broadcast = match ioctl(fd, libc::SIOCGIFBRDADDR, &mut r) {
        Ok(()) if !sockaddr_ip(&r).is_unspecified() => sockaddr_ip(&r),
        _ => computed,
    };
    let mut r = ifreq(name)?;
    ioctl(fd, libc::SIOCGIFHWADDR, &mut r).map_err(|e| ctx("hardware address", e))?;
    // SAFETY: SIOCGIFHWADDR filled ifru_hwaddr.
    let hw = unsafe { r.ifr_ifru.ifru_hwaddr };
    let mut m = [0u8; 6];
    for (d, s) in m.iter_mut().zip(hw.sa_data.iter()) {
        *d = *s as u8;
    }
    Ok(IfaceInfo {
        name: name.to_string(),
        index,
        ip,
        mac: MacAddr(m),
        mask,
        broadcast,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_reads_back() {
        let lo = query("lo").unwrap();
        assert_eq!(lo.ip, Ipv4Addr::LOCALHOST);
        assert_eq!(lo.prefix(), 8);
        assert!(lo.index > 0);
        assert!(query("nosuchif0")
            .unwrap_err()
            .to_string()
            .contains("nosuchif0"));
        assert!(query("this-name-is-too-long").is_err());
    }
}
