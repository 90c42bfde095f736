//! [`NetlinkError`]: why an rtnetlink or nf_tables request failed.

use super::message::ParseError;

/// Errors from rtnetlink requests.
#[derive(Debug)]
pub enum NetlinkError {
    Io(&'static str, std::io::Error),
    /// The kernel refused the request: positive errno.
    Kernel(i32),
    Timeout,
    Parse(ParseError),
    NoSuchLink(String),
}

impl NetlinkError {
    /// The errno the kernel answered, if this is a kernel refusal.
    pub fn errno(&self) -> Option<i32> {
        match self {
            NetlinkError::Kernel(e) => Some(*e),
            _ => None,
        }
    }
}

impl std::fmt::Display for NetlinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            NetlinkError::Io(what, e) => write!(f, "netlink {what}: {e}"),
            NetlinkError::Kernel(errno) => write!(
                f,
                "kernel refused: {}",
                std::io::Error::from_raw_os_error(*errno)
            ),
            NetlinkError::Timeout => write!(f, "netlink: no answer from the kernel"),
            NetlinkError::Parse(e) => write!(f, "{e}"),
            NetlinkError::NoSuchLink(n) => write!(f, "interface {n} does not exist"),
        }
    }
}

impl std::error::Error for NetlinkError {}

impl From<ParseError> for NetlinkError {
    fn from(e: ParseError) -> Self {
        NetlinkError::Parse(e)
    }
}
