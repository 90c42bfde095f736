//! Sockets: open, bind, connect, listen and options, plus the few transfer
//! calls std does not offer: whole Ethernet frames on AF_PACKET sockets,
//! datagrams to the kernel on netlink sockets, ICMPv6 with a scope, and
//! batches of raw IPv4 packets (`sendmmsg`/`recvmmsg`).

use super::{cvt, cvt_size};
use std::io;
use std::mem;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddrV4};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, OwnedFd, RawFd};
use std::time::Duration;

/// One classic BPF instruction (`struct sock_filter`).
pub type BpfInsn = libc::sock_filter;

/// `sll_pkttype` of a frame this host sent (seen on ETH_P_ALL sockets).
pub const PACKET_OUTGOING: u8 = 4;
const PACKET_IGNORE_OUTGOING: libc::c_int = 23;

/// Most packets one [`send_batch`] or [`recv_batch`] call moves.
pub const MAX_BATCH: usize = 64;

/// Shorthand for a BPF instruction literal, as `tcpdump -dd` prints them.
pub const fn bpf(code: u16, jt: u8, jf: u8, k: u32) -> BpfInsn {
    BpfInsn { code, jt, jf, k }
}

fn len_of<T>() -> libc::socklen_t {
    mem::size_of::<T>() as libc::socklen_t
}

/// socket(2), always close-on-exec; `ty` may add SOCK_NONBLOCK.
pub fn open(domain: libc::c_int, ty: libc::c_int, protocol: libc::c_int) -> io::Result<OwnedFd> {
    // SAFETY: plain socket(2) call.
    let fd = cvt(unsafe { libc::socket(domain, ty | libc::SOCK_CLOEXEC, protocol) })?;
    // SAFETY: fd is a fresh descriptor nobody else owns.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// setsockopt(2) with the bytes of `value` (plain data: ints, structs of
/// ints, byte strings).
fn set_option_raw<T: ?Sized>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    // SAFETY: value is live and readable for its size; the kernel copies it.
    cvt(unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (value as *const T).cast(),
            mem::size_of_val(value) as libc::socklen_t,
        )
    })
    .map(drop)
}

/// setsockopt(2) with a plain-data option value (an int, a struct of ints).
pub fn set_option<T: Copy>(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: &T,
) -> io::Result<()> {
    set_option_raw(fd, level, name, value)
}

/// setsockopt(2) with an int value.
pub fn set_int(
    fd: BorrowedFd<'_>,
    level: libc::c_int,
    name: libc::c_int,
    value: libc::c_int,
) -> io::Result<()> {
    set_option(fd, level, name, &value)
}

/// SO_RCVTIMEO: blocking receives give up (EAGAIN) after `t`.
pub fn set_recv_timeout(fd: BorrowedFd<'_>, t: Duration) -> io::Result<()> {
    let tv = libc::timeval {
        // `as _`: time_t and suseconds_t differ between libcs (musl).
        tv_sec: t.as_secs() as _,
        tv_usec: t.subsec_micros() as _,
    };
    set_option(fd, libc::SOL_SOCKET, libc::SO_RCVTIMEO, &tv)
}

/// SO_BINDTODEVICE: only traffic of interface `ifname`.
pub fn bind_to_device(fd: BorrowedFd<'_>, ifname: &str) -> io::Result<()> {
    set_option_raw(
        fd,
        libc::SOL_SOCKET,
        libc::SO_BINDTODEVICE,
        ifname.as_bytes(),
    )
}

/// Attach the classic BPF program `prog` to socket `fd` (replacing any
/// filter on it). `fd` may be another library's socket (libpcap's).
pub fn attach_filter(fd: RawFd, prog: &[BpfInsn]) -> io::Result<()> {
    let fprog = libc::sock_fprog {
        len: u16::try_from(prog.len()).map_err(|_| io::Error::from(io::ErrorKind::InvalidInput))?,
        filter: prog.as_ptr() as *mut BpfInsn,
    };
    // SAFETY: `fprog` points at `prog`, which outlives the call; the kernel
    // copies the program and never writes through the pointer.
    cvt(unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_ATTACH_FILTER,
            (&fprog as *const libc::sock_fprog).cast(),
            len_of::<libc::sock_fprog>(),
        )
    })
    .map(drop)
}

/// PACKET_IGNORE_OUTGOING (Linux >= 4.20): a packet socket stops seeing the
/// frames this host sends.
pub fn ignore_outgoing(fd: BorrowedFd<'_>) -> io::Result<()> {
    set_int(fd, libc::SOL_PACKET, PACKET_IGNORE_OUTGOING, 1)
}

fn bind_raw<T>(fd: BorrowedFd<'_>, sa: &T) -> io::Result<()> {
    // SAFETY: `sa` is a live socket address of type T and size_of::<T>().
    cvt(unsafe { libc::bind(fd.as_raw_fd(), (sa as *const T).cast(), len_of::<T>()) }).map(drop)
}

fn sockaddr_ll(protocol: u16, ifindex: i32) -> libc::sockaddr_ll {
    // SAFETY: sockaddr_ll is plain old data; all-zero is valid.
    let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
    sll.sll_family = libc::AF_PACKET as u16;
    sll.sll_protocol = protocol.to_be();
    sll.sll_ifindex = ifindex;
    sll
}

fn sockaddr_in(a: SocketAddrV4) -> libc::sockaddr_in {
    // SAFETY: sockaddr_in is plain old data; all-zero is valid.
    let mut sa: libc::sockaddr_in = unsafe { mem::zeroed() };
    sa.sin_family = libc::AF_INET as libc::sa_family_t;
    sa.sin_port = a.port().to_be();
    sa.sin_addr.s_addr = u32::from_ne_bytes(a.ip().octets());
    sa
}

fn sockaddr_nl_kernel() -> libc::sockaddr_nl {
    // SAFETY: sockaddr_nl is plain old data; all-zero (pid 0) is the kernel.
    let mut sa: libc::sockaddr_nl = unsafe { mem::zeroed() };
    sa.nl_family = libc::AF_NETLINK as libc::sa_family_t;
    sa
}

/// Bind an AF_PACKET socket to interface `ifindex` for EtherType
/// `protocol` (0: receive nothing, send only).
pub fn bind_packet(fd: BorrowedFd<'_>, protocol: u16, ifindex: i32) -> io::Result<()> {
    bind_raw(fd, &sockaddr_ll(protocol, ifindex))
}

/// Bind a netlink socket (the kernel picks the port id).
pub fn bind_netlink(fd: BorrowedFd<'_>) -> io::Result<()> {
    bind_raw(fd, &sockaddr_nl_kernel())
}

/// Bind an AF_INET socket to `a`.
pub fn bind_v4(fd: BorrowedFd<'_>, a: SocketAddrV4) -> io::Result<()> {
    bind_raw(fd, &sockaddr_in(a))
}

/// connect(2) an AF_INET socket to `to`. On a non-blocking socket
/// `Ok(true)` means the connect is in progress (EINPROGRESS).
pub fn connect_v4(fd: BorrowedFd<'_>, to: SocketAddrV4) -> io::Result<bool> {
    let sa = sockaddr_in(to);
    // SAFETY: sa is a valid sockaddr_in for the duration of the call.
    let r = cvt(unsafe {
        libc::connect(
            fd.as_raw_fd(),
            (&sa as *const libc::sockaddr_in).cast(),
            len_of::<libc::sockaddr_in>(),
        )
    });
    match r {
        Ok(_) => Ok(false),
        Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => Ok(true),
        Err(e) => Err(e),
    }
}

/// listen(2) again on a listening socket: raises its backlog.
pub fn listen(fd: BorrowedFd<'_>, backlog: libc::c_int) -> io::Result<()> {
    // SAFETY: plain listen(2) on a descriptor the caller holds.
    cvt(unsafe { libc::listen(fd.as_raw_fd(), backlog) }).map(drop)
}

/// recv(2) into `buf` with `flags`.
pub fn recv(fd: BorrowedFd<'_>, buf: &mut [u8], flags: libc::c_int) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    cvt_size(unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), flags) })
}

fn send_to_raw<T>(fd: BorrowedFd<'_>, buf: &[u8], flags: libc::c_int, to: &T) -> io::Result<usize> {
    // SAFETY: buf and `to` are valid for reads of their lengths.
    cvt_size(unsafe {
        libc::sendto(
            fd.as_raw_fd(),
            buf.as_ptr().cast(),
            buf.len(),
            flags,
            (to as *const T).cast(),
            len_of::<T>(),
        )
    })
}

/// Send one netlink message (or batch) to the kernel.
pub fn send_to_kernel(fd: BorrowedFd<'_>, msg: &[u8]) -> io::Result<usize> {
    send_to_raw(fd, msg, 0, &sockaddr_nl_kernel())
}

/// Send a whole Ethernet frame out of interface `ifindex` on an AF_PACKET
/// socket (destination and EtherType are read from the frame's header).
pub fn send_frame(fd: BorrowedFd<'_>, ifindex: i32, frame: &[u8]) -> io::Result<usize> {
    let (Some(dst), Some(ty)) = (frame.get(..6), frame.get(12..14)) else {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "frame shorter than an Ethernet header",
        ));
    };
    let mut sll = sockaddr_ll(u16::from_be_bytes([ty[0], ty[1]]), ifindex);
    sll.sll_halen = 6;
    sll.sll_addr[..6].copy_from_slice(dst);
    send_to_raw(fd, frame, libc::MSG_DONTWAIT, &sll)
}

/// recvfrom(2) with a socket address of type `T` (a libc `sockaddr_*`:
/// plain old data for which all-zero is valid).
fn recv_from_raw<T>(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    flags: libc::c_int,
) -> io::Result<(usize, T)> {
    // SAFETY: T is a sockaddr type (private helper): all-zero is valid.
    let mut from: T = unsafe { mem::zeroed() };
    let mut len = len_of::<T>();
    // SAFETY: buf and from are valid for writes of the given lengths.
    let n = cvt_size(unsafe {
        libc::recvfrom(
            fd.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            flags,
            (&mut from as *mut T).cast(),
            &mut len,
        )
    })?;
    Ok((n, from))
}

/// Receive one frame on an AF_PACKET socket without blocking: its full
/// length (more than `buf.len()` if it was cut) and its `sll_pkttype`.
pub fn recv_frame(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, u8)> {
    let (n, sll) =
        recv_from_raw::<libc::sockaddr_ll>(fd, buf, libc::MSG_TRUNC | libc::MSG_DONTWAIT)?;
    Ok((n, sll.sll_pkttype))
}

/// Send `buf` to `dst` (scope `scope_id`) on an AF_INET6 socket.
pub fn send_to_v6(
    fd: BorrowedFd<'_>,
    buf: &[u8],
    dst: Ipv6Addr,
    scope_id: u32,
) -> io::Result<usize> {
    // SAFETY: sockaddr_in6 is plain old data; all-zero is valid.
    let mut to: libc::sockaddr_in6 = unsafe { mem::zeroed() };
    to.sin6_family = libc::AF_INET6 as libc::sa_family_t;
    to.sin6_addr.s6_addr = dst.octets();
    to.sin6_scope_id = scope_id;
    send_to_raw(fd, buf, 0, &to)
}

/// Receive one datagram on an AF_INET6 socket without blocking: its length
/// and its sender.
pub fn recv_from_v6(fd: BorrowedFd<'_>, buf: &mut [u8]) -> io::Result<(usize, Ipv6Addr)> {
    let (n, from) = recv_from_raw::<libc::sockaddr_in6>(fd, buf, libc::MSG_DONTWAIT)?;
    Ok((n, Ipv6Addr::from(from.sin6_addr.s6_addr)))
}

const EMPTY_IOV: libc::iovec = libc::iovec {
    iov_base: std::ptr::null_mut(),
    iov_len: 0,
};

/// Headers for the first `n` entries of `iov`, one iovec each, addressed
/// to `name` (sending) or to none (receiving).
fn mmsg_headers(
    iov: &mut [libc::iovec; MAX_BATCH],
    n: usize,
    name: Option<&libc::sockaddr_in>,
) -> [libc::mmsghdr; MAX_BATCH] {
    // SAFETY: all-zero mmsghdr is valid (null pointers, zero lengths).
    let mut msgs: [libc::mmsghdr; MAX_BATCH] = unsafe { mem::zeroed() };
    for (m, v) in msgs.iter_mut().zip(iov.iter_mut()).take(n) {
        if let Some(sa) = name {
            m.msg_hdr.msg_name = (sa as *const libc::sockaddr_in) as *mut libc::c_void;
            m.msg_hdr.msg_namelen = len_of::<libc::sockaddr_in>();
        }
        m.msg_hdr.msg_iov = v;
        m.msg_hdr.msg_iovlen = 1;
    }
    msgs
}

fn no_room() -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, "batch does not fit its buffer")
}

/// One `sendmmsg` without blocking: packet `i` is
/// `slots[i * slot..i * slot + lens[i]]`, all to `dst` (a raw socket's
/// address: no port). Returns how many the kernel took (at least one); the
/// error is the first packet's.
pub fn send_batch(
    fd: BorrowedFd<'_>,
    slots: &[u8],
    slot: usize,
    lens: &[usize],
    dst: Ipv4Addr,
) -> io::Result<usize> {
    if lens.len() > MAX_BATCH
        || lens
            .iter()
            .enumerate()
            .any(|(i, &l)| l > slot || i * slot + l > slots.len())
    {
        return Err(no_room());
    }
    let sa = sockaddr_in(SocketAddrV4::new(dst, 0));
    let mut iov = [EMPTY_IOV; MAX_BATCH];
    for (v, (i, &len)) in iov.iter_mut().zip(lens.iter().enumerate()) {
        v.iov_base = slots[i * slot..].as_ptr() as *mut libc::c_void;
        v.iov_len = len;
    }
    let mut msgs = mmsg_headers(&mut iov, lens.len(), Some(&sa));
    // SAFETY: the first lens.len() msgs point into `slots` (bounds checked
    // above), `iov` and `sa`, all live for the call; sendmmsg only reads them.
    let r = unsafe {
        libc::sendmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            lens.len() as libc::c_uint,
            // c_int on glibc, c_uint on musl (the router builds)
            libc::MSG_DONTWAIT as _,
        )
    };
    cvt(r)?;
    Ok(r as usize)
}

/// What [`recv_batch`] learnt of one packet.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Received {
    pub len: usize,
    /// Larger than its slot: cut (MSG_TRUNC).
    pub truncated: bool,
}

/// One `recvmmsg` without blocking into `out.len()` slots of `slot` bytes
/// of `buf`: packet `i` lands at `buf[i * slot..]`. Returns how many
/// arrived (EAGAIN is an error of kind WouldBlock).
pub fn recv_batch(
    fd: BorrowedFd<'_>,
    buf: &mut [u8],
    slot: usize,
    out: &mut [Received],
) -> io::Result<usize> {
    let batch = out.len();
    if batch > MAX_BATCH || batch * slot > buf.len() {
        return Err(no_room());
    }
    let mut iov = [EMPTY_IOV; MAX_BATCH];
    for (i, v) in iov.iter_mut().enumerate().take(batch) {
        v.iov_base = buf[i * slot..].as_mut_ptr().cast();
        v.iov_len = slot;
    }
    let mut msgs = mmsg_headers(&mut iov, batch, None);
    // SAFETY: the first `batch` msgs point into `buf` slots of `slot` bytes
    // (bounds checked above), live and exclusively borrowed for the call.
    let r = unsafe {
        libc::recvmmsg(
            fd.as_raw_fd(),
            msgs.as_mut_ptr(),
            batch as libc::c_uint,
            // c_int on glibc, c_uint on musl (the router builds)
            libc::MSG_DONTWAIT as _,
            std::ptr::null_mut(),
        )
    };
    cvt(r)?;
    let n = r as usize;
    for (o, m) in out.iter_mut().zip(&msgs[..n]) {
        *o = Received {
            len: m.msg_len as usize,
            truncated: m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0,
        };
    }
    Ok(n)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::AsFd;

    #[test]
    fn batches_that_overrun_their_buffer_are_refused_before_any_call() {
        let fd = open(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let slots = [0u8; 2 * 64];
        let dst = Ipv4Addr::LOCALHOST;
        let e = |r: io::Result<usize>| r.unwrap_err().kind();
        // A length beyond its slot, a slot beyond the buffer, too many.
        assert_eq!(
            e(send_batch(fd.as_fd(), &slots, 64, &[65], dst)),
            io::ErrorKind::InvalidInput
        );
        assert_eq!(
            e(send_batch(fd.as_fd(), &slots, 64, &[1, 1, 1], dst)),
            io::ErrorKind::InvalidInput
        );
        let many = [1usize; MAX_BATCH + 1];
        let big = vec![0u8; (MAX_BATCH + 1) * 64];
        assert_eq!(
            e(send_batch(fd.as_fd(), &big, 64, &many, dst)),
            io::ErrorKind::InvalidInput
        );
        let mut buf = [0u8; 100];
        let mut out = [Received::default(); 2];
        assert_eq!(
            e(recv_batch(fd.as_fd(), &mut buf, 64, &mut out)),
            io::ErrorKind::InvalidInput
        );
        // Within bounds, on a socket with nothing waiting: EAGAIN.
        let mut out = [Received::default(); 1];
        assert_eq!(
            e(recv_batch(fd.as_fd(), &mut buf, 64, &mut out)),
            io::ErrorKind::WouldBlock
        );
    }

    #[test]
    fn a_frame_shorter_than_an_ethernet_header_is_refused() {
        let fd = open(libc::AF_INET, libc::SOCK_DGRAM, 0).unwrap();
        let r = send_frame(fd.as_fd(), 1, &[0u8; 13]);
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}
