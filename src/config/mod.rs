//! Configuration sources. `rc` reads TMip 0.14a style `key value` files
//! (`tmipd.rc`, `mlrd.rc`); `uci` reads OpenWrt's `/etc/config/tmip`. Both
//! feed the same typed config structs, validated once at start, through
//! each daemon's key table (`keys`).

pub mod keys;
pub mod rc;
mod resolve;
mod source;
pub mod tmipd;
pub mod uci;

pub use resolve::resolve;
pub use source::{from_uci, load_source, read_file, Source, UCI_FILE};

use std::fmt;

/// A configuration error with the place it came from, e.g.
/// `tmipd.rc:14: addr_pool: interface wlan9 does not exist`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub file: String,
    /// 1-based line, 0 when the error is not tied to a line.
    pub line: usize,
    pub message: String,
}

impl ConfigError {
    pub fn new(file: &str, line: usize, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.line > 0 {
            write!(f, "{}:{}: {}", self.file, self.line, self.message)
        } else {
            write!(f, "{}: {}", self.file, self.message)
        }
    }
}

impl std::error::Error for ConfigError {}

/// TMip's booleans: `true/false`, plus the spellings UCI accepts.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" | "enabled" => Some(true),
        "0" | "off" | "false" | "no" | "disabled" => Some(false),
        _ => None,
    }
}
