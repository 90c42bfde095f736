//! Processes the bed starts inside a namespace: [`Spawn`] is the one
//! launcher (of mlrd, tmipd, DHCP clients and helpers), [`Proc`] the guard
//! that ends the process by the pid it started when dropped.

use std::ffi::{OsStr, OsString};
use std::fs::{self, File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// A daemon or helper process the bed started; killed (by its pid) on drop.
/// Its stdin is a pipe kept open, so a foreground daemon's console never
/// sees end-of-file (Ctrl+D quits tmipd/mlrd).
pub struct Proc {
    pub name: String,
    child: Option<Child>,
    _stdin: Option<ChildStdin>,
    /// stdout and stderr of the process (of every start, when appended).
    pub out: PathBuf,
    /// Length of `out` when this process started.
    start: u64,
}

impl Proc {
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(|c| c.id())
    }
    /// Still running?
    pub fn alive(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }
    /// Send a signal to the process we started.
    pub fn signal(&self, sig: nix::sys::signal::Signal) {
        if let Some(c) = &self.child {
            let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(c.id() as i32), sig);
        }
    }
    /// SIGKILL and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        self._stdin = None;
    }
    /// Wait up to `timeout` for the process to exit by itself; its status,
    /// or None if it still runs (or was already reaped).
    pub fn wait(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            let c = self.child.as_mut()?;
            if let Ok(Some(st)) = c.try_wait() {
                self.child = None;
                self._stdin = None;
                return Some(st);
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    /// SIGTERM and wait up to `timeout` for its exit status; SIGKILL (and
    /// None) if it does not exit in time.
    pub fn stop(&mut self, timeout: Duration) -> Option<ExitStatus> {
        self.child.as_ref()?;
        self.signal(nix::sys::signal::Signal::SIGTERM);
        let st = self.wait(timeout);
        if st.is_none() {
            self.kill();
        }
        st
    }
    /// SIGTERM, wait up to `timeout`, then SIGKILL. Returns true if it
    /// exited by itself.
    pub fn terminate(&mut self, timeout: Duration) -> bool {
        self.child.is_none() || self.stop(timeout).is_some()
    }
    /// Everything written to the output file so far (all starts).
    pub fn output(&self) -> String {
        fs::read_to_string(&self.out).unwrap_or_default()
    }
    /// What this process wrote (the output file after its start).
    pub fn run_output(&self) -> String {
        let all = fs::read(&self.out).unwrap_or_default();
        let from = (self.start as usize).min(all.len());
        String::from_utf8_lossy(&all[from..]).into_owned()
    }
    /// Wait until this process's output contains `needle`. An error (with
    /// the output) if it exits first or `timeout` passes.
    pub fn wait_output(&mut self, needle: &str, timeout: Duration) -> Result<(), String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.run_output();
            if text.contains(needle) {
                return Ok(());
            }
            if !self.alive() {
                return Err(format!(
                    "{} exited before saying {needle:?}; output:\n{text}",
                    self.name
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{} did not say {needle:?} in {timeout:?}; output:\n{text}",
                    self.name
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}

/// A process to start inside a namespace, stdout and stderr to one file.
pub struct Spawn {
    ns: String,
    name: String,
    program: OsString,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    out: PathBuf,
    append: bool,
}

impl Spawn {
    /// `program` in namespace `ns`; `name` labels it in errors.
    pub fn new(ns: &str, name: &str, program: impl AsRef<OsStr>, out: &Path) -> Spawn {
        Spawn {
            ns: ns.to_string(),
            name: name.to_string(),
            program: program.as_ref().to_os_string(),
            args: Vec::new(),
            env: Vec::new(),
            out: out.to_path_buf(),
            append: false,
        }
    }
    pub fn arg(mut self, a: impl AsRef<OsStr>) -> Spawn {
        self.args.push(a.as_ref().to_os_string());
        self
    }
    pub fn args<S: AsRef<OsStr>>(mut self, args: impl IntoIterator<Item = S>) -> Spawn {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_os_string()));
        self
    }
    pub fn env(mut self, k: impl AsRef<OsStr>, v: impl AsRef<OsStr>) -> Spawn {
        self.env
            .push((k.as_ref().to_os_string(), v.as_ref().to_os_string()));
        self
    }
    /// Append to the output file (a restart keeps the earlier runs' output).
    pub fn append(mut self) -> Spawn {
        self.append = true;
        self
    }

    pub fn start(self) -> Proc {
        let log = if self.append {
            OpenOptions::new().create(true).append(true).open(&self.out)
        } else {
            File::create(&self.out)
        }
        .unwrap_or_else(|e| panic!("output file {}: {e}", self.out.display()));
        let start = log.metadata().map(|m| m.len()).unwrap_or(0);
        let log2 = log.try_clone().expect("dup output file");
        let mut child = Command::new("ip")
            .args([
                OsStr::new("netns"),
                OsStr::new("exec"),
                OsStr::new(&self.ns),
            ])
            .arg(&self.program)
            .args(&self.args)
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::piped())
            .stdout(Stdio::from(log))
            .stderr(Stdio::from(log2))
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "start {} in {}: {e}",
                    Path::new(&self.program).display(),
                    self.ns
                )
            });
        let stdin = child.stdin.take();
        Proc {
            name: self.name,
            child: Some(child),
            _stdin: stdin,
            out: self.out,
            start,
        }
    }

    /// Start and wait until the output says `ready` (a daemon's "up" line).
    /// On an error the process is gone and the error holds its output.
    pub fn start_until(self, ready: &str, timeout: Duration) -> Result<Proc, String> {
        let mut p = self.start();
        // A daemon starts several times slower in the lab's emulated guest.
        p.wait_output(ready, crate::time_bound(timeout))?;
        Ok(p)
    }
}

/// Start `program args` inside namespace `ns`, output to `out`.
pub fn spawn_in(ns: &str, name: &str, out: &Path, program: &Path, args: &[&str]) -> Proc {
    Spawn::new(ns, name, program, out).args(args).start()
}
