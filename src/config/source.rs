//! Where a daemon's configuration comes from: an rc file or a UCI section,
//! read into the rc lines both daemons' loaders take.

use super::{rc, uci, ConfigError};
use std::fmt;

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
