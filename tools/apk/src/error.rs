//! One error type for reading and writing apk v3 files. Everything that
//! comes from a file is checked: a bad file gives one of these, never a panic.

use std::fmt;

#[derive(Debug)]
pub enum Error {
    /// Reading or writing a file.
    Io(String, std::io::Error),
    /// The file ends inside a header, block or value.
    Truncated(&'static str),
    /// Neither `ADB.` nor `ADBd` at the start.
    BadMagic([u8; 4]),
    /// The deflate stream is corrupt, or inflates past the limit.
    Compression(String),
    /// A schema this reader does not know, or not the one asked for.
    Schema { expected: Option<u32>, found: u32 },
    /// Block framing: order, type, size, padding.
    Block(String),
    /// A value points outside the ADB block.
    Offset { what: &'static str, offset: u64 },
    /// A value of the wrong type for its field.
    Type { what: &'static str, tag: u32 },
    /// The tree is larger than the dump budget (a small file can reference
    /// one big object many times).
    TooLarge(&'static str),
    /// Keys: PEM, curve, format.
    Key(String),
    /// A signature block that does not verify.
    Signature(String),
    /// File contents that disagree with their recorded size or hash.
    Integrity(String),
    /// Bad input to the writer (info field, dependency, version, tree).
    Input(String),
}

pub type Result<T> = std::result::Result<T, Error>;

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::Io(what, e) => write!(f, "{what}: {e}"),
            Error::Truncated(what) => write!(f, "truncated: {what}"),
            Error::BadMagic(m) => write!(f, "not an ADB file (magic {m:02x?})"),
            Error::Compression(e) => write!(f, "compression: {e}"),
            Error::Schema {
                expected: Some(e),
                found,
            } => write!(f, "schema {found:08X}, expected {e:08X}"),
            Error::Schema {
                expected: None,
                found,
            } => write!(f, "unknown schema {found:08X}"),
            Error::Block(e) => write!(f, "block: {e}"),
            Error::Offset { what, offset } => write!(f, "{what}: offset {offset:#x} out of range"),
            Error::Type { what, tag } => write!(f, "{what}: unexpected value {tag:#010x}"),
            Error::TooLarge(what) => write!(f, "too large: {what}"),
            Error::Key(e) => write!(f, "key: {e}"),
            Error::Signature(e) => write!(f, "signature: {e}"),
            Error::Integrity(e) => write!(f, "integrity: {e}"),
            Error::Input(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for Error {}
