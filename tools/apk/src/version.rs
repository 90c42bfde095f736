//! apk's version and dependency syntax (`doc/apk-package.5.scd`):
//! `number{.number}...{letter}{_suffix{number}}...{~hash}{-r#}`.

use crate::error::{Error, Result};

pub const EQUAL: u32 = 1;
pub const LESS: u32 = 2;
pub const GREATER: u32 = 4;
pub const FUZZY: u32 = 8;
pub const CONFLICT: u32 = 16;
pub const ANY: u32 = EQUAL | LESS | GREATER;
const CHECKSUM: u32 = LESS | GREATER;

const SUFFIXES: [&str; 9] = ["alpha", "beta", "pre", "rc", "cvs", "svn", "git", "hg", "p"];

fn digits(s: &[u8]) -> usize {
    s.iter().take_while(|c| c.is_ascii_digit()).count()
}

/// Whether apk accepts `v` as a package version.
pub fn is_valid(v: &str) -> bool {
    let s = v.as_bytes();
    let mut i = digits(s);
    if i == 0 {
        return false;
    }
    while s.get(i) == Some(&b'.') {
        let n = digits(&s[i + 1..]);
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if s.get(i).is_some_and(|c| c.is_ascii_lowercase()) {
        i += 1;
    }
    while s.get(i) == Some(&b'_') {
        let word = s[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_lowercase())
            .count();
        if !SUFFIXES
            .iter()
            .any(|x| x.as_bytes() == &s[i + 1..i + 1 + word])
        {
            return false;
        }
        i += 1 + word;
        i += digits(&s[i..]);
    }
    if s.get(i) == Some(&b'~') {
        let n = s[i + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit() || (b'a'..=b'f').contains(c))
            .count();
        if n == 0 {
            return false;
        }
        i += 1 + n;
    }
    if s[i..].starts_with(b"-r") {
        let n = digits(&s[i + 2..]);
        if n == 0 {
            return false;
        }
        i += 2 + n;
    }
    i == s.len()
}

/// Whether apk accepts `n` as a package name.
pub fn is_valid_name(n: &str) -> bool {
    n.as_bytes().first().is_some_and(u8::is_ascii_alphanumeric)
        && n.bytes()
            .all(|c| c.is_ascii_alphanumeric() || b"._+-".contains(&c))
}

pub fn op_string(op: u32) -> &'static str {
    match op & !CONFLICT {
        LESS => "<",
        x if x == LESS | EQUAL => "<=",
        x if x == LESS | EQUAL | FUZZY => "<~",
        x if x == EQUAL | FUZZY || x == FUZZY => "~",
        EQUAL => "=",
        x if x == GREATER | EQUAL => ">=",
        x if x == GREATER | EQUAL | FUZZY => ">~",
        GREATER => ">",
        CHECKSUM => "><",
        ANY => "",
        _ => "?",
    }
}

/// One dependency: `name`, `!name`, `name>=1.0-r1`, `name~1.2`...
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Dependency {
    pub name: String,
    /// Empty when unversioned.
    pub version: String,
    /// apk's match bits (`ANY` when unversioned).
    pub op: u32,
}

impl Dependency {
    pub fn parse(s: &str) -> Result<Self> {
        let bad = || Error::Input(format!("bad dependency '{s}'"));
        let (conflict, rest) = match s.strip_prefix('!') {
            Some(r) => (CONFLICT, r),
            None => (0, s),
        };
        let end = rest.find(['<', '>', '=', '~']).unwrap_or(rest.len());
        let (name, tail) = rest.split_at(end);
        if !is_valid_name(name) {
            return Err(bad());
        }
        let opl = tail.bytes().take_while(|c| b"<>=~".contains(c)).count();
        let (ops, version) = tail.split_at(opl);
        let mut op = 0;
        for c in ops.bytes() {
            op |= match c {
                b'<' => LESS,
                b'>' => GREATER,
                b'=' => EQUAL,
                _ => FUZZY | EQUAL,
            };
        }
        if ops.is_empty() {
            op = ANY;
        } else if !is_valid(version) || op_string(op) == "?" {
            return Err(bad());
        }
        Ok(Dependency {
            name: name.into(),
            version: version.into(),
            op: op | conflict,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions() {
        for v in [
            "0.1.0-r1",
            "1",
            "1.2.3a_rc2_p1~c0ffee-r10",
            "2.0_alpha",
            "24.10.0-r0",
        ] {
            assert!(is_valid(v), "{v}");
        }
        for v in [
            "", "0.1.0-1", "v1.0", "1..2", "1.0-r", "1.0_foo", "1.0~", "1.0-rc1", "1.0A",
        ] {
            assert!(!is_valid(v), "{v}");
        }
    }

    #[test]
    fn dependencies() {
        let d = Dependency::parse("tmip-common>=0.1.0-r1").unwrap();
        assert_eq!(
            (d.name.as_str(), d.version.as_str(), d.op),
            ("tmip-common", "0.1.0-r1", 5)
        );
        assert_eq!(Dependency::parse("libc").unwrap().op, ANY);
        assert_eq!(Dependency::parse("!foo").unwrap().op, ANY | CONFLICT);
        assert!(Dependency::parse("-foo").is_err());
        assert!(Dependency::parse("foo>=").is_err());
        assert!(Dependency::parse("foo=>1").is_ok());
    }
}
