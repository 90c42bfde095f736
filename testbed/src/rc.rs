//! The one writer of the daemons' `.rc` files: the bed's defaults with a
//! test's own lines on top.
//!
//! A key a test sets replaces every default line of that key, so a test's
//! `addr_pool` replaces the bed's pool and no key is ever "set twice"
//! (tmipd refuses that). Repeatable keys (`addr_pool`, `dns`) take several
//! lines from one [`Rc::apply`].

use std::fs;
use std::path::Path;

/// `key value` lines in order, with a comment line on top.
#[derive(Clone, Debug, Default)]
pub struct Rc {
    header: String,
    lines: Vec<(String, String)>,
}

impl Rc {
    pub fn new(header: &str) -> Rc {
        Rc {
            header: header.to_string(),
            lines: Vec::new(),
        }
    }

    /// Set `key` to `value`: replaces every line of `key` (in the place of
    /// the first), or appends.
    pub fn set(&mut self, key: &str, value: impl ToString) -> &mut Rc {
        let value = value.to_string();
        match self.lines.iter().position(|(k, _)| k == key) {
            Some(i) => {
                self.lines[i].1 = value;
                let mut n = 0;
                self.lines.retain(|(k, _)| {
                    n += usize::from(k == key);
                    k != key || n == 1
                });
            }
            None => self.lines.push((key.to_string(), value)),
        }
        self
    }

    /// Append one more line of a repeatable key.
    pub fn push(&mut self, key: &str, value: impl ToString) -> &mut Rc {
        self.lines.push((key.to_string(), value.to_string()));
        self
    }

    /// Remove every line of `key` (the daemon's default applies).
    pub fn remove(&mut self, key: &str) -> &mut Rc {
        self.lines.retain(|(k, _)| k != key);
        self
    }

    /// Apply a test's `key value` lines: the first line of each key
    /// replaces the defaults of that key, further lines of the same key are
    /// added to it. A line that is only a key removes that key.
    pub fn apply<S: AsRef<str>>(&mut self, lines: &[S]) -> &mut Rc {
        let mut seen: Vec<String> = Vec::new();
        for l in lines {
            let l = l.as_ref().trim();
            if l.is_empty() || l.starts_with('#') {
                continue;
            }
            let (key, value) = l.split_once(char::is_whitespace).unwrap_or((l, ""));
            let value = value.trim();
            if seen.iter().any(|k| k == key) {
                self.push(key, value);
                continue;
            }
            seen.push(key.to_string());
            if value.is_empty() {
                self.remove(key);
            } else {
                self.set(key, value);
            }
        }
        self
    }

    /// The value of the first line of `key`.
    pub fn get(&self, key: &str) -> Option<&str> {
        self.lines
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        let mut s = String::new();
        for l in self.header.lines() {
            s.push_str("# ");
            s.push_str(l);
            s.push('\n');
        }
        for (k, v) in &self.lines {
            s.push_str(k);
            s.push(' ');
            s.push_str(v);
            s.push('\n');
        }
        s
    }

    pub fn write(&self, path: &Path) {
        fs::write(path, self.text()).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    }
}

/// mlrd.rc as every test runs mlrd: foreground (output to stderr, which
/// the launcher captures), port 6554, `network`/`secret`, the status file
/// `dir/mlrd.status`, the state in `dir/mlr-state` (created), a one-hour
/// lease. `log_file` names `dir/mlrd.log` for daemon-mode tests (foreground
/// mlrd does not write it).
pub fn mlrd_rc(network: &str, secret: &str, dir: &Path) -> Rc {
    let state = dir.join("mlr-state");
    fs::create_dir_all(&state).unwrap_or_else(|e| panic!("{}: {e}", state.display()));
    let mut rc = Rc::new("mlrd.rc written by the namespace test bed");
    rc.set("network_name", network)
        .set("port", 6554)
        .set("foreground", "true")
        .set("log", "true")
        .set("log_file", dir.join("mlrd.log").display())
        .set("status_file", dir.join("mlrd.status").display())
        .set("secret", secret)
        .set("state_dir", state.display())
        .set("lease_time", 3600);
    rc
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tests_lines_replace_the_defaults_of_their_keys() {
        let mut rc = Rc::new("t");
        rc.set("a", 1)
            .push("pool", "x")
            .push("pool", "y")
            .set("b", 2);
        rc.apply(&["pool z", "pool w", "a 5", "b", "c 3"]);
        assert_eq!(rc.text(), "# t\na 5\npool z\npool w\nc 3\n");
        assert_eq!(rc.get("pool"), Some("z"));
    }
}
