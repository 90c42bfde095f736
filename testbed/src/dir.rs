//! A test's own directory (rc files, daemon output, scripts, sockets),
//! removed when the guard drops unless the test asks to keep it.

use crate::ns::unique;
use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};

/// A fresh directory under the system's temporary directory.
pub struct RunDir {
    path: PathBuf,
    keep: bool,
}

impl RunDir {
    /// `$TMPDIR/{prefix}-{unique}`, created empty.
    pub fn new(prefix: &str) -> RunDir {
        let path = std::env::temp_dir().join(format!("{prefix}-{}", unique("d")));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("create run directory {}: {e}", path.display()));
        RunDir { path, keep: false }
    }

    /// The path of `name` inside the directory.
    pub fn path(&self, name: &str) -> PathBuf {
        self.path.join(name)
    }

    /// Leave the directory in place after drop (for a look at the logs).
    pub fn keep(&mut self, keep: bool) {
        self.keep = keep;
    }
}

impl Deref for RunDir {
    type Target = Path;
    fn deref(&self) -> &Path {
        &self.path
    }
}

impl AsRef<Path> for RunDir {
    fn as_ref(&self) -> &Path {
        &self.path
    }
}

impl Drop for RunDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}

/// A file's text, empty if it is missing (a log not written yet).
pub fn read(p: &Path) -> String {
    fs::read_to_string(p).unwrap_or_default()
}
