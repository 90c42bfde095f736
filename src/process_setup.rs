//! Process set-up shared by tmipd and mlrd: detaching into the background,
//! pid files, the open-files limit.

use std::io;

/// Detach as TMip did in daemon mode: fork, setsid, stdio to /dev/null.
/// Call before opening sockets so no descriptor is shared with the parent.
pub fn daemonize() -> io::Result<()> {
    crate::sys::process::detach()
}

/// Write our pid to `path` (replacing what is there).
pub fn write_pidfile(path: &str) -> io::Result<()> {
    std::fs::write(path, format!("{}\n", std::process::id()))
}

/// Raise the open-file limit to its hard limit (thousands of CNs and
/// clients, or a benchmark's thousands of sockets); returns the limit now
/// in force.
pub fn raise_nofile() -> u64 {
    crate::sys::process::raise_nofile()
}
