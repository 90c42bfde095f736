//! Process set-up shared by tmipd and mlrd: detaching into the background,
//! pid files, the open-files limit.

use std::io;

/// Detach as TMip did in daemon mode: fork, setsid, stdio to /dev/null.
/// Call before opening sockets so no descriptor is shared with the parent.
pub fn daemonize() -> io::Result<()> {
    use nix::unistd::{fork, setsid, ForkResult};
    // SAFETY: called while the process is single-threaded, before any
    // thread or event loop exists.
    match unsafe { fork() }.map_err(io::Error::from)? {
        ForkResult::Parent { .. } => std::process::exit(0),
        ForkResult::Child => {}
    }
    setsid().map_err(io::Error::from)?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    use std::os::fd::AsRawFd;
    for fd in 0..3 {
        // SAFETY: dup2 onto the standard descriptors.
        unsafe { libc::dup2(devnull.as_raw_fd(), fd) };
    }
    Ok(())
}

/// Write our pid to `path` (replacing what is there).
pub fn write_pidfile(path: &str) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Raise the open-file limit to its hard limit (thousands of CNs and
/// clients, or a benchmark's thousands of sockets); returns the limit now
/// in force.
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain get/setrlimit on a local struct.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut r) != 0 {
            return 1024;
        }
        if r.rlim_cur < r.rlim_max {
            let want = libc::rlimit {
                rlim_cur: r.rlim_max,
                rlim_max: r.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &want) == 0 {
                r.rlim_cur = r.rlim_max;
            }
        }
    }
    // rlim_t is 32 bits on some router targets.
    #[allow(clippy::unnecessary_cast)]
    let n = r.rlim_cur as u64;
    n
}
