//! Plain descriptor calls: read, write, writev, poll, flock, dup2, and
//! closing every inherited descriptor in a forked child.

use super::{cvt, cvt_size};
use std::io;
use std::os::fd::{AsRawFd, BorrowedFd, RawFd};

/// read(2) into `buf`.
pub fn read(fd: RawFd, buf: &mut [u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for writes of its length.
    cvt_size(unsafe { libc::read(fd, buf.as_mut_ptr().cast(), buf.len()) })
}

/// read(2) on a non-blocking descriptor: `Ok(None)` when nothing is waiting.
pub fn read_nonblocking(fd: RawFd, buf: &mut [u8]) -> io::Result<Option<usize>> {
    match read(fd, buf) {
        Ok(n) => Ok(Some(n)),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(None),
        Err(e) => Err(e),
    }
}

/// write(2) of `buf` (one datagram/packet on TUN and packet descriptors).
pub fn write(fd: RawFd, buf: &[u8]) -> io::Result<usize> {
    // SAFETY: buf is valid for reads of its length.
    cvt_size(unsafe { libc::write(fd, buf.as_ptr().cast(), buf.len()) })
}

/// writev(2) of a header and a body as one write (one TUN packet).
pub fn write2(fd: RawFd, hdr: &[u8], body: &[u8]) -> io::Result<usize> {
    let iov = [
        libc::iovec {
            iov_base: hdr.as_ptr() as *mut libc::c_void,
            iov_len: hdr.len(),
        },
        libc::iovec {
            iov_base: body.as_ptr() as *mut libc::c_void,
            iov_len: body.len(),
        },
    ];
    // SAFETY: both iovecs point at live buffers of their lengths; writev
    // only reads them.
    cvt_size(unsafe { libc::writev(fd, iov.as_ptr(), 2) })
}

/// poll(2) on `fds` for up to `timeout_ms` (-1: forever). Returns how many
/// entries have `revents` set.
pub fn poll(fds: &mut [libc::pollfd], timeout_ms: libc::c_int) -> io::Result<usize> {
    // SAFETY: fds is a valid, exclusively borrowed array of pollfd.
    let n = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms) };
    cvt(n).map(|n| n as usize)
}

/// flock(LOCK_EX | LOCK_NB): `Ok(false)` when another process holds it.
pub fn try_lock_exclusive(fd: BorrowedFd<'_>) -> io::Result<bool> {
    // SAFETY: flock on a descriptor the caller holds.
    match cvt(unsafe { libc::flock(fd.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) }) {
        Ok(_) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
        Err(e) => Err(e),
    }
}

/// Point stdin, stdout and stderr at `to` (dup2).
pub fn redirect_stdio(to: BorrowedFd<'_>) -> io::Result<()> {
    for fd in 0..3 {
        nix::unistd::dup2(to.as_raw_fd(), fd)?;
    }
    Ok(())
}

/// Close every descriptor from `first` up (`close_range(2)`; on kernels
/// before 5.9 the ones /proc/self/fd lists). For a forked child that must
/// not keep its parent's sockets, locks and files open.
pub fn close_from(first: RawFd) {
    let first = first.max(0) as libc::c_uint;
    // SAFETY: close_range only closes descriptors; the caller (a forked
    // child about to do its own work and _exit) owns none of them any more.
    let r = unsafe {
        libc::syscall(
            libc::SYS_close_range,
            first,
            libc::c_uint::MAX,
            0 as libc::c_uint,
        )
    };
    if r == 0 {
        return;
    }
    let Ok(dir) = std::fs::read_dir("/proc/self/fd") else {
        return;
    };
    // Collect first: the directory's own descriptor is among them.
    let fds: Vec<RawFd> = dir
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .filter(|&fd: &RawFd| fd >= first as RawFd)
        .collect();
    for fd in fds {
        // SAFETY: see above; EBADF for the directory's closed fd is harmless.
        unsafe { libc::close(fd) };
    }
}
