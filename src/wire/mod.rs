//! Checked views of the link and network headers TMip reads and writes:
//! Ethernet, ARP, IPv4, UDP and the Internet checksum (smoltcp `wire` style).
//!
//! Each header has a `Packet<T: AsRef<[u8]>>` (or `Frame` for Ethernet) view
//! whose `new_checked` validates the length once, so its accessors never
//! index past the buffer; setters exist for `T: AsMut<[u8]>`. A `Repr` is the
//! parsed, owned meaning of a header: `Repr::parse` rejects what TMip does not
//! understand, `Repr::emit` writes into a buffer of `buffer_len()` bytes.
//!
//! [`UdpFrame`] combines the three for the common case of the DHCP server and
//! the capture path: a whole Ethernet/IPv4/UDP frame in, or out.

pub mod arp;
pub mod checksum;
pub mod ethernet;
pub mod ipv4;
pub mod udp;
mod udp_frame;

pub use udp_frame::{UdpChecksum, UdpFrame};

use core::fmt;

/// Why a frame or header was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Error {
    /// The buffer is shorter than the header (or than a length field says).
    Truncated,
    /// A field holds a value that makes the header meaningless.
    Malformed(&'static str),
    /// The checksum does not match the contents.
    Checksum,
    /// Well-formed but not something TMip handles (IPv6, other ARP types, fragments).
    Unsupported(&'static str),
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Truncated => f.write_str("truncated"),
            Error::Malformed(what) => write!(f, "malformed: {what}"),
            Error::Checksum => f.write_str("bad checksum"),
            Error::Unsupported(what) => write!(f, "unsupported: {what}"),
        }
    }
}

impl std::error::Error for Error {}

pub type Result<T> = core::result::Result<T, Error>;

/// Decode a hex dump (whitespace and `0x0000:` offsets ignored) for tests.
#[cfg(test)]
pub(crate) fn hex(s: &str) -> Vec<u8> {
    let digits: String = s.split_whitespace().filter(|w| !w.ends_with(':')).collect();
    (0..digits.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&digits[i..i + 2], 16).expect("hex literal"))
        .collect()
}
