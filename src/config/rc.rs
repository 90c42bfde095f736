//! The TMip 0.14a `.rc` format: one `key value...` per line, `#` starts a
//! comment (at line start or after whitespace), blank lines ignored. A value
//! may be wrapped in double quotes to keep a `#` or leading spaces.

use super::ConfigError;

/// One meaningful line of an rc file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RcLine<'a> {
    pub line: usize,
    pub key: &'a str,
    /// Everything after the key, trimmed, comment removed, quotes stripped.
    pub rest: &'a str,
}

impl<'a> RcLine<'a> {
    /// The value split on whitespace (for `addr_pool IFACE FIRST LAST`).
    pub fn args(&self) -> impl Iterator<Item = &'a str> {
        self.rest.split_whitespace()
    }

    /// An error for this line, prefixed with the key.
    pub fn error(&self, file: &str, msg: impl std::fmt::Display) -> ConfigError {
        ConfigError::new(file, self.line, format!("{}: {}", self.key, msg))
    }

    /// Exactly one non-empty value, else a line error.
    pub fn single(&self, file: &str) -> Result<&'a str, ConfigError> {
        let mut it = self.args();
        match (it.next(), it.next()) {
            (Some(v), None) => Ok(v),
            (None, _) => Err(self.error(file, "missing value")),
            _ => Err(self.error(file, "expected one value")),
        }
    }

    pub fn parse<T: std::str::FromStr>(&self, file: &str) -> Result<T, ConfigError>
    where
        T::Err: std::fmt::Display,
    {
        let v = self.single(file)?;
        v.parse::<T>()
            .map_err(|e| self.error(file, format!("bad value '{v}': {e}")))
    }

    pub fn boolean(&self, file: &str) -> Result<bool, ConfigError> {
        let v = self.single(file)?;
        super::parse_bool(v).ok_or_else(|| self.error(file, format!("bad boolean '{v}'")))
    }
}

/// Split rc text into lines; never fails on content (keys are checked by
/// the caller, who knows which are valid), only on unterminated quotes.
pub fn parse<'a>(file: &str, text: &'a str) -> Result<Vec<RcLine<'a>>, ConfigError> {
    let mut out = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let lineno = i + 1;
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let (key, rest) = match line.find(char::is_whitespace) {
            Some(p) => (&line[..p], line[p..].trim_start()),
            None => (line, ""),
        };
        let rest = if let Some(q) = rest.strip_prefix('"') {
            match q.find('"') {
                Some(end) => {
                    let after = q[end + 1..].trim();
                    if !(after.is_empty() || after.starts_with('#')) {
                        return Err(ConfigError::new(
                            file,
                            lineno,
                            format!("{key}: text after closing quote"),
                        ));
                    }
                    &q[..end]
                }
                None => {
                    return Err(ConfigError::new(
                        file,
                        lineno,
                        format!("{key}: unterminated quote"),
                    ))
                }
            }
        } else {
            strip_comment(rest)
        };
        out.push(RcLine {
            line: lineno,
            key,
            rest,
        });
    }
    Ok(out)
}

/// Refuses a key set on two lines (a second `port` or `secret` silently
/// winning is a mistake waiting to happen), except the repeatable ones that
/// add one entry per line. Both daemons' loaders check every line with it,
/// in file order, so the first mistake in the file is the one reported.
#[derive(Debug)]
pub struct OnceEach<'k, 'a> {
    repeatable: &'k [&'k str],
    seen: Vec<(&'a str, usize)>,
}

impl<'k, 'a> OnceEach<'k, 'a> {
    pub fn new(repeatable: &'k [&'k str]) -> Self {
        OnceEach {
            repeatable,
            seen: Vec::new(),
        }
    }

    /// Err naming both lines if `l`'s key was set before.
    pub fn check(&mut self, file: &str, l: &RcLine<'a>) -> Result<(), ConfigError> {
        if self.repeatable.contains(&l.key) {
            return Ok(());
        }
        if let Some((_, first)) = self.seen.iter().find(|(k, _)| *k == l.key) {
            return Err(l.error(file, format!("set twice (first on line {first})")));
        }
        self.seen.push((l.key, l.line));
        Ok(())
    }
}

fn strip_comment(s: &str) -> &str {
    let b = s.as_bytes();
    for i in 0..b.len() {
        if b[i] == b'#' && (i == 0 || b[i - 1].is_ascii_whitespace()) {
            return s[..i].trim_end();
        }
    }
    s.trim_end()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_seed_quick_start() {
        let text = "# comment\nmlr mlr.foo.bar.com\ncn_name My Test CN\n\naddr_pool rl0 * *   # whole subnet\nlog true\n";
        let l = parse("tmipd.rc", text).unwrap();
        assert_eq!(l.len(), 4);
        assert_eq!(l[1].key, "cn_name");
        assert_eq!(l[1].rest, "My Test CN");
        assert_eq!(l[2].args().collect::<Vec<_>>(), ["rl0", "*", "*"]);
        assert_eq!(l[2].line, 5);
        assert!(l[3].boolean("tmipd.rc").unwrap());
    }

    #[test]
    fn quotes_keep_hashes_and_reject_garbage() {
        let l = parse("x.rc", "secret \"a#b c\"\n").unwrap();
        assert_eq!(l[0].rest, "a#b c");
        let e = parse("x.rc", "\n\nsecret \"abc\n").unwrap_err();
        assert_eq!(e.to_string(), "x.rc:3: secret: unterminated quote");
    }

    #[test]
    fn a_key_set_twice_is_refused_with_both_lines() {
        let l = parse("m.rc", "port 1\nname a\n\nport 2\n").unwrap();
        let mut once = OnceEach::new(&[]);
        assert!(once.check("m.rc", &l[0]).is_ok());
        assert!(once.check("m.rc", &l[1]).is_ok());
        assert_eq!(
            once.check("m.rc", &l[2]).unwrap_err().to_string(),
            "m.rc:4: port: set twice (first on line 1)"
        );
        let l = parse("m.rc", "pool a\npool b\n").unwrap();
        let mut once = OnceEach::new(&["pool"]);
        assert!(l.iter().all(|l| once.check("m.rc", l).is_ok()));
    }

    #[test]
    fn single_value_errors_name_the_line() {
        let l = parse("m.rc", "port 65536\nport\n").unwrap();
        assert!(l[0]
            .parse::<u16>("m.rc")
            .unwrap_err()
            .to_string()
            .starts_with("m.rc:1: port: bad value '65536'"));
        assert_eq!(
            l[1].single("m.rc").unwrap_err().to_string(),
            "m.rc:2: port: missing value"
        );
    }
}
