//! Processes: the one `fork` (nix), detaching from the terminal, a forked
//! worker that cannot outlive or hold resources of its parent, reaping,
//! the open-file limit and CPU time.

use std::io;
use std::os::fd::AsFd;
use std::time::Duration;

pub use nix::unistd::Pid;

/// Which side of a [`fork`] this is.
pub enum Forked {
    Parent(Pid),
    Child,
}

/// fork(2). Only for single-threaded processes (tmipd before its loop,
/// mlrd, which has no threads): the child then holds a consistent copy.
pub fn fork() -> io::Result<Forked> {
    use nix::unistd::ForkResult;
    // SAFETY: every caller is single-threaded (see above), so no lock held
    // by another thread is copied into the child.
    match unsafe { nix::unistd::fork() }? {
        ForkResult::Parent { child } => Ok(Forked::Parent(child)),
        ForkResult::Child => Ok(Forked::Child),
    }
}

/// Detach as TMip did in daemon mode: fork (the parent exits 0), setsid,
/// stdio to /dev/null.
pub fn detach() -> io::Result<()> {
    if let Forked::Parent(_) = fork()? {
        std::process::exit(0);
    }
    nix::unistd::setsid()?;
    let devnull = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .open("/dev/null")?;
    super::fd::redirect_stdio(devnull.as_fd())
}

/// Run `work` in a forked child and return the child's pid (the parent
/// reaps it with [`reap`]). The child dies with the parent (a stale child
/// must not act after a restart), closes every inherited descriptor but
/// stdio first (listening sockets, locks: a parent killed with SIGKILL
/// leaves nothing held open), then exits with `work`'s code without
/// running the parent's destructors. Single-threaded callers only.
pub fn spawn_worker(work: impl FnOnce() -> i32) -> io::Result<Pid> {
    let parent = nix::unistd::getpid();
    match fork()? {
        Forked::Parent(pid) => Ok(pid),
        Forked::Child => {
            let _ = nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL);
            if nix::unistd::getppid() != parent {
                exit_now(2); // the parent died before the line above
            }
            // A log sink's descriptor is about to close and its number may
            // be reused by a file `work` opens: log nothing from here on.
            log::set_max_level(log::LevelFilter::Off);
            super::fd::close_from(3);
            exit_now(work())
        }
    }
}

/// _exit(2): leave at once, without destructors or atexit handlers.
pub fn exit_now(code: i32) -> ! {
    // SAFETY: _exit has no preconditions.
    unsafe { libc::_exit(code) }
}

/// How a child ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChildExit {
    /// exit(code).
    Exited(i32),
    /// Killed by this signal number.
    Signalled(i32),
}

/// waitpid(2) on our child `pid`: `Ok(None)` while it runs (`block` false).
pub fn reap(pid: Pid, block: bool) -> io::Result<Option<ChildExit>> {
    use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
    let flags = if block {
        None
    } else {
        Some(WaitPidFlag::WNOHANG)
    };
    loop {
        return match waitpid(pid, flags) {
            Ok(WaitStatus::Exited(_, code)) => Ok(Some(ChildExit::Exited(code))),
            Ok(WaitStatus::Signaled(_, sig, _)) => Ok(Some(ChildExit::Signalled(sig as i32))),
            Ok(WaitStatus::StillAlive) => Ok(None),
            // Stopped/continued (not traced here): still ours, still running.
            Ok(_) if !block => Ok(None),
            Ok(_) => continue,
            Err(nix::errno::Errno::EINTR) if block => continue,
            Err(e) => Err(e.into()),
        };
    }
}

/// Raise the open-file limit to its hard limit; returns the limit now in
/// force (1024 if it cannot be read).
pub fn raise_nofile() -> u64 {
    let mut r = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: plain get/setrlimit on local structs.
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

/// CPU time (user + system) this process has used.
pub fn cpu_time() -> io::Result<Duration> {
    // SAFETY: all-zero rusage is valid; getrusage fills it.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: ru is a valid, writable rusage.
    super::cvt(unsafe { libc::getrusage(libc::RUSAGE_SELF, &mut ru) })?;
    let d = |t: libc::timeval| {
        Duration::from_secs(t.tv_sec as u64) + Duration::from_micros(t.tv_usec as u64)
    };
    Ok(d(ru.ru_utime) + d(ru.ru_stime))
}
