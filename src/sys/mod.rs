//! The operating-system edge: every raw `libc`/`nix` call the crate makes
//! on sockets, descriptors, TUN devices and processes lives here, behind
//! small safe functions (as boringtun keeps `tun_linux.rs` and `epoll.rs`).
//! The rest of the crate never sees a `sockaddr`, an `ioctl` or `unsafe`.
//!
//! - [`socket`]: opening, binding and options; frames on packet sockets,
//!   netlink datagrams, batched raw IPv4 (`sendmmsg`/`recvmmsg`), ICMPv6.
//! - [`fd`]: read/write/poll on descriptors, locks, closing inherited ones.
//! - [`tun`]: TUN devices (`TUNSETIFF`, `TUNSETOFFLOAD`).
//! - [`process`]: fork (the one place), detaching, reaping, limits, CPU time.
//!
//! Errors are [`std::io::Error`]s: they carry the errno (callers that pick
//! behaviour by it match `raw_os_error()` or `kind()`), and the caller adds
//! what it was doing. The module imports nothing from the crate: it is the
//! bottom layer.

pub mod fd;
pub mod process;
pub mod socket;
pub mod tun;

use std::io;

/// A libc return value: negative means "see errno".
fn cvt(r: libc::c_int) -> io::Result<libc::c_int> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r)
    }
}

/// A libc size return value (`ssize_t`): negative means "see errno".
fn cvt_size(r: isize) -> io::Result<usize> {
    if r < 0 {
        Err(io::Error::last_os_error())
    } else {
        Ok(r as usize)
    }
}

/// Fill `buf` from the kernel's CSPRNG (`getrandom(2)`, retried on EINTR).
pub fn random_bytes(buf: &mut [u8]) -> io::Result<()> {
    let mut filled = 0;
    while filled < buf.len() {
        let rest = &mut buf[filled..];
        // The system call, not libc's getrandom(): std declares that symbol
        // weak, and in an LTO static musl build the merged declaration stays
        // weak, so the linker leaves it at address 0 (the release daemons
        // crashed here on their first MLRP connection).
        // SAFETY: the pointer and length describe `rest`, a live, writable buffer.
        let r = unsafe {
            libc::syscall(
                libc::SYS_getrandom,
                rest.as_mut_ptr(),
                rest.len(),
                0 as libc::c_uint,
            )
        };
        if r < 0 {
            let e = io::Error::last_os_error();
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        filled += r as usize;
    }
    Ok(())
}
