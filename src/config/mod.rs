//! Configuration sources. `rc` reads TMip 0.14a style `key value` files
//! (`tmipd.rc`, `mlrd.rc`); `uci` reads OpenWrt's `/etc/config/tmip`. Both
//! feed the same typed config structs, validated once at start, through
//! each daemon's key table (`keys`).

pub mod keys;
pub mod rc;
pub mod tmipd;
pub mod uci;

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

/// The UCI file both daemons read with `-u SECTION` unless `-c` names another.
pub const UCI_FILE: &str = "/etc/config/tmip";

/// Where a daemon's configuration comes from (kept for SIGHUP re-reads).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// A TMip `.rc` file.
    Rc(String),
    /// A section of a UCI file (name or `@type[N]`).
    Uci { file: String, section: String },
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Rc(p) => f.write_str(p),
            Source::Uci { file, section } => write!(f, "{file} section '{section}'"),
        }
    }
}

/// Read a configuration file, naming it in the error.
pub fn read_file(path: &str) -> Result<String, ConfigError> {
    std::fs::read_to_string(path)
        .map_err(|e| ConfigError::new(path, 0, format!("cannot read: {e}")))
}

/// Read `src` and hand its lines to `build`: every line of an rc file, or
/// the options of a UCI section, which must be of type `uci_type`.
pub fn load_source<T>(
    src: &Source,
    uci_type: &str,
    build: impl FnOnce(&str, &[rc::RcLine<'_>]) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    match src {
        Source::Rc(path) => {
            let text = read_file(path)?;
            build(path, &rc::parse(path, &text)?)
        }
        Source::Uci { file, section } => {
            let text = read_file(file)?;
            from_uci(file, &text, section, uci_type, build)
        }
    }
}

/// The options of UCI section `section` (of type `uci_type`) in `text`,
/// handed to `build` as rc lines.
pub fn from_uci<T>(
    file: &str,
    text: &str,
    section: &str,
    uci_type: &str,
    build: impl FnOnce(&str, &[rc::RcLine<'_>]) -> Result<T, ConfigError>,
) -> Result<T, ConfigError> {
    let pkg = uci::parse(file, text)?;
    let sec = pkg
        .section(section)
        .ok_or_else(|| ConfigError::new(file, 0, format!("no section '{section}'")))?;
    if sec.ty != uci_type {
        return Err(ConfigError::new(
            file,
            sec.line,
            format!(
                "section '{section}' is of type '{}', not '{uci_type}'",
                sec.ty
            ),
        ));
    }
    build(file, &sec.rc_lines())
}

/// TMip's booleans: `true/false`, plus the spellings UCI accepts.
pub fn parse_bool(s: &str) -> Option<bool> {
    match s.to_ascii_lowercase().as_str() {
        "1" | "on" | "true" | "yes" | "enabled" => Some(true),
        "0" | "off" | "false" | "no" | "disabled" => Some(false),
        _ => None,
    }
}
