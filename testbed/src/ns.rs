//! Network namespaces, veth pairs and shell helpers, all removed when their
//! guards drop (re-exported at the crate root).

use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// Fail loudly when not root: a namespace test that skips proves nothing.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "namespace tests need root (run them through .ci/run or sudo)"
    );
}

/// A short name unique to this test process: `{prefix}{pid%10000}{n}`.
/// Interface names must stay under 16 bytes, so keep prefixes short.
pub fn unique(prefix: &str) -> String {
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = format!("{}{}x{}", prefix, std::process::id() % 100000, n);
    assert!(name.len() <= 15, "name {name} too long for an interface");
    name
}

/// `target/<profile>`, from the running test or example binary
/// (`target/<profile>/deps/<test>` or `target/<profile>/examples/<name>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    exe.parent()
        .and_then(|p| p.parent())
        .expect("target dir")
        .to_path_buf()
}

/// Path of a workspace binary (`tmipd`, `mlrd`), built by `cargo build`
/// before the tests run (.ci/run does). Panics with advice if missing.
pub fn bin(name: &str) -> PathBuf {
    let p = profile_dir().join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --workspace` first",
        p.display()
    );
    p
}

/// Path of a test-driver example binary; `cargo test` builds examples, a
/// lone `cargo test --test NAME` may not. Panics with advice if missing.
pub fn example(name: &str) -> PathBuf {
    let p = profile_dir().join("examples").join(name);
    assert!(
        p.exists(),
        "{} not built: run `cargo build --examples` (or plain `cargo test`) first",
        p.display()
    );
    p
}

/// Run a command, panic with its output if it fails.
pub fn sh(cmd: &str) -> String {
    let out = Command::new("sh").arg("-c").arg(cmd).output().expect("sh");
    assert!(
        out.status.success(),
        "command failed: {cmd}\nstdout: {}\nstderr: {}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Run a command and return its output whatever the status.
pub fn sh_out(cmd: &str) -> Output {
    Command::new("sh").arg("-c").arg(cmd).output().expect("sh")
}

/// A network namespace, deleted (with every process the test started in it)
/// when dropped.
pub struct Netns {
    pub name: String,
    children: Vec<Child>,
}

impl Netns {
    pub fn new(prefix: &str) -> Netns {
        require_root();
        let name = unique(prefix);
        sh(&format!("ip netns add {name}"));
        sh(&format!("ip -n {name} link set lo up"));
        Netns {
            name,
            children: Vec::new(),
        }
    }

    /// Run `cmd` (a shell line) inside the namespace; panic on failure.
    pub fn sh(&self, cmd: &str) -> String {
        sh(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', "'\\''")
        ))
    }

    pub fn sh_out(&self, cmd: &str) -> Output {
        sh_out(&format!(
            "ip netns exec {} sh -c '{}'",
            self.name,
            cmd.replace('\'', "'\\''")
        ))
    }

    /// Run `f` on a fresh thread that has entered this namespace (setns), so
    /// sockets it opens (netlink, raw, TUN) live there. The caller's own
    /// thread stays where it was.
    pub fn run_in<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        std::thread::scope(|s| {
            s.spawn(|| {
                enter_netns(&self.name);
                f()
            })
            .join()
            .expect("namespace thread panicked")
        })
    }

    /// A Command that runs `program` inside the namespace.
    pub fn command(&self, program: impl AsRef<std::ffi::OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// Start a long-running process; it is killed (by pid) when the
    /// namespace guard drops, or earlier with [`Netns::kill`].
    pub fn spawn(&mut self, mut cmd: Command) -> u32 {
        let child = cmd
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn in namespace");
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Send `sig` to a process this guard started.
    pub fn signal(&self, pid: u32, sig: nix::sys::signal::Signal) {
        let _ = nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid as i32), sig);
    }

    /// Kill and reap one process this guard started.
    pub fn kill(&mut self, pid: u32) {
        if let Some(i) = self.children.iter().position(|c| c.id() == pid) {
            let mut c = self.children.swap_remove(i);
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Wait for a process this guard started to exit, up to `timeout`.
    // try_wait() has reaped the child before it is dropped from the list.
    #[allow(clippy::zombie_processes)]
    pub fn wait(&mut self, pid: u32, timeout: Duration) -> Option<std::process::ExitStatus> {
        let i = self.children.iter().position(|c| c.id() == pid)?;
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(st)) = self.children[i].try_wait() {
                self.children.swap_remove(i);
                return Some(st);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
        let _ = sh_out(&format!("ip netns del {}", self.name));
    }
}

/// Move the calling thread into network namespace `name` (setns).
pub fn enter_netns(name: &str) {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{name}");
    let ns = std::fs::File::open(&path).unwrap_or_else(|e| panic!("open {path}: {e}"));
    // SAFETY: setns on a valid namespace fd; affects this thread only.
    let r = unsafe { libc::setns(ns.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns {path}: {}", std::io::Error::last_os_error());
}

/// Run `f` on a new thread that has entered network namespace `ns`.
pub fn in_netns<T: Send + 'static>(ns: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_netns(&ns);
        f()
    })
    .join()
    .expect("namespace thread panicked")
}

/// A veth pair with one end in each namespace (names `a`, `b` inside them).
pub fn veth(ns_a: &Netns, a: &str, ns_b: &Netns, b: &str) {
    let tmp = unique("v");
    let tmp2 = unique("v");
    sh(&format!(
        "ip link add {tmp} type veth peer name {tmp2} && \
         ip link set {tmp} netns {} name {a} && ip link set {tmp2} netns {} name {b} && \
         ip -n {} link set {a} up && ip -n {} link set {b} up",
        ns_a.name, ns_b.name, ns_a.name, ns_b.name
    ));
}

/// Poll `f` until it returns Some or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// How much slower than this machine the radio lab's guest runs (QEMU
/// under TCG emulation, one CPU: 3-10 times, more under load).
pub const LAB_SLOWDOWN: u32 = 4;

/// Inside the radio lab's guest (scripts/lab sets `TMIP_LAB=1`)?
pub fn in_lab() -> bool {
    std::env::var("TMIP_LAB").as_deref() == Ok("1")
}

/// A latency bound a test asserts, stretched by [`LAB_SLOWDOWN`] inside the
/// lab's guest: emulation inflates every time, and a bound meant to tell
/// "answered" from "stalled" must still separate the two there.
pub fn time_bound(here: Duration) -> Duration {
    if in_lab() {
        here * LAB_SLOWDOWN
    } else {
        here
    }
}

/// The period of a steady test stream (TCP chunks, UDP probes), stretched by
/// [`LAB_SLOWDOWN`] inside the lab's guest: one emulated CPU carries every
/// namespace's forwarding there, and a load sized for this machine saturates
/// it (the backlog drops packets, TCP backs off for tens of seconds while
/// the unresponsive 1 ms probes keep the queues full). The load keeps its
/// ratio to the machine's speed; what the tests assert is unchanged.
pub fn stream_period(here: Duration) -> Duration {
    time_bound(here)
}

/// Whether the peer has closed `s`: reads (and discards) what is waiting,
/// waiting at most `wait` for more (zero: only what is there now). For
/// tests that count which of many connections a daemon kept.
pub fn closed_by_peer(mut s: &std::net::TcpStream, wait: Duration) -> bool {
    use std::io::Read;
    if wait.is_zero() {
        s.set_nonblocking(true).expect("nonblocking");
    } else {
        s.set_read_timeout(Some(wait)).expect("read timeout");
    }
    let mut b = [0u8; 512];
    loop {
        match s.read(&mut b) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}
