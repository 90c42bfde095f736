//! mlr_bench: drives the real mlrd over MLRP and prints its throughput,
//! latency, memory and restart figures. A benchmark, not a test.
//!
//! ```text
//! cargo build --release -p mlrd --bins --examples
//! sudo target/release/examples/mlr_bench [--clients 4] [--window 64] [--max 1000000] [--secs 3] [--keep] [--no-compact]
//! sudo target/release/examples/mlr_bench --preauth 8192
//! ```
//!
//! `--snapshot N[,N...]` measures only a backup register joining late
//! instead (docs/BENCHMARKS.md "Backup catch-up"): the primary (with
//! `backup_mlr 127.0.0.1:6555`) is filled to each N bindings in turn; then
//! a backup mlrd with an empty state directory starts and subscribes, and
//! the bench prints how long the snapshot catch-up took (until the backup
//! logs it is in sync), the snapshot's size, whether the primary dropped
//! the backup meanwhile (ack deadline, output limit) and, from a CN
//! allocating one new station every 5 ms during the catch-up, the
//! allocations' latency (p50/max) and refusals.
//!
//! `--preauth N` measures only the pre-authentication attack instead
//! (docs/SECURITY.md): N connections from N/16 addresses (the default
//! `max_unauth_per_source`), each sending all but the last byte of a
//! maximal bogus Hello (145 bytes announced, 144 sent) and holding it; then
//! mlrd's RSS, and how long a CN takes to connect, handshake and bind while
//! every slot is held. The bench raises its own RLIMIT_NOFILE for the N
//! sockets; mlrd raises its own at start.
//!
//! It needs root: mlrd runs in a network namespace the bench makes (and
//! removes), with a fresh state directory under $TMPDIR, and the client
//! threads enter that namespace with setns(2). The network has a secret,
//! so every frame both ways carries an HMAC-SHA256, as in production.
//!
//! How it measures:
//! - `clients` threads each bind as a CN with its own pool and keep
//!   `window` requests in flight on their one connection (pipelining: write
//!   a batch, read the batch's replies, repeat). Throughput = requests
//!   answered / wall time over all threads.
//! - Locate latency is measured separately, one request at a time on one
//!   connection (no pipelining), while the other clients load mlrd with
//!   pipelined locates; and also unloaded. p50/p99 over all samples, after
//!   100 uncounted warm-up requests per connection.
//! - Moves: each client moves the stations of its neighbour's pool to
//!   itself, so every move also pushes a Redirect to the parent CN, which
//!   the parent client acknowledges.
//! - RSS is VmRSS of the mlrd process from /proc/PID/status.
//! - Restart: kill -9, start again on the same state directory, time until
//!   a client completes an MLRP handshake and a locate answers.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tmip::addr::{Cell30, MacAddr};
use tmip::mlrp::{
    self, Allocate, BindReply, CnBind, CnRef, Incoming, Locate, Message, Move, NetworkKey, Pool,
    Role, Session,
};

const NET: &str = "bench-net";
const SECRET: &str = "bench secret";
const MLR: SocketAddr = SocketAddr::new(std::net::IpAddr::V4(Ipv4Addr::LOCALHOST), 6554);

struct Opts {
    clients: usize,
    window: usize,
    max: usize,
    secs: f64,
    /// Leave the state directory behind (to time restarts by hand).
    keep: bool,
    /// Never compact: every binding stays in the journal (worst restart).
    no_compact: bool,
    /// Run the pre-authentication attack with this many connections only.
    preauth: usize,
    /// Measure a backup's catch-up at these register sizes only.
    snapshot: Vec<usize>,
}

fn opts() -> Opts {
    let mut o = Opts {
        clients: 4,
        window: 64,
        max: 1_000_000,
        secs: 3.0,
        keep: false,
        no_compact: false,
        preauth: 0,
        snapshot: Vec::new(),
    };
    let a: Vec<String> = std::env::args().skip(1).collect();
    let mut i = 0;
    while i < a.len() {
        let v = a.get(i + 1).cloned().unwrap_or_default();
        if a[i] == "--keep" || a[i] == "--no-compact" {
            if a[i] == "--keep" {
                o.keep = true;
            } else {
                o.no_compact = true;
            }
            i += 1;
            continue;
        }
        match a[i].as_str() {
            "--clients" => o.clients = v.parse().expect("--clients N"),
            "--window" => o.window = v.parse().expect("--window N"),
            "--max" => o.max = v.parse().expect("--max N"),
            "--secs" => o.secs = v.parse().expect("--secs S"),
            "--preauth" => o.preauth = v.parse().expect("--preauth N"),
            "--snapshot" => {
                o.snapshot = v
                    .split(',')
                    .map(|n| n.parse().expect("--snapshot N[,N...]"))
                    .collect();
                o.snapshot.sort_unstable();
            }
            x => panic!("unknown option {x}"),
        }
        i += 2;
    }
    o
}

fn key() -> NetworkKey {
    NetworkKey::derive(SECRET.as_bytes(), NET)
}

fn mac(client: usize, i: usize) -> MacAddr {
    let b = (i as u32).to_be_bytes();
    MacAddr([0x02, client as u8, b[0], b[1], b[2], b[3]])
}

fn cn_addr(client: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, 200, 0, client as u8 + 1)
}

/// Client `c`'s pool: 10.(16c).0.0/12, 262144 cells.
fn cn_pool(client: usize) -> Pool {
    let base = 16 * client as u8;
    Pool {
        first: Ipv4Addr::new(10, base, 0, 0),
        last: Ipv4Addr::new(10, base + 15, 255, 255),
    }
}

/// A pipelining MLRP client over a blocking socket and a sans-IO Session.
struct Pipe {
    s: TcpStream,
    sess: Session,
    out: Vec<u8>,
    buf: Vec<u8>,
    pushes: u64,
    cells: Vec<Cell30>,
}

impl Pipe {
    fn connect() -> Pipe {
        Pipe::on(TcpStream::connect(MLR).expect("connect to mlrd"))
    }

    /// From source address `src` (a CN binds from the address it claims).
    fn connect_from(src: Ipv4Addr) -> Pipe {
        let mlr = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6554);
        let s = mlrp::client::tcp_connect_from(src, mlr, Duration::from_secs(10))
            .expect("connect to mlrd");
        Pipe::on(s)
    }

    fn on(s: TcpStream) -> Pipe {
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
        let mut p = Pipe {
            s,
            sess: Session::new(Role::Cn, Some(&key()), mlrp::random_nonce().unwrap()),
            out: Vec::new(),
            buf: vec![0; 256 << 10],
            pushes: 0,
            cells: Vec::new(),
        };
        p.sess.handshake(&mut p.out);
        p.flush();
        while !p.sess.is_established() {
            p.read(&mut |_| {});
        }
        p
    }

    fn flush(&mut self) {
        if !self.out.is_empty() {
            self.s.write_all(&self.out).expect("write");
            self.out.clear();
        }
    }

    /// One read; replies go to `f`, pushed requests are acknowledged.
    fn read(&mut self, f: &mut dyn FnMut(Message)) {
        let n = self.s.read(&mut self.buf).expect("read");
        assert!(n > 0, "mlrd closed the connection");
        self.sess.feed(&self.buf[..n]);
        while let Some(ev) = self.sess.poll(&mut self.out) {
            match ev.expect("session error") {
                Incoming::Reply { msg, .. } => f(msg),
                Incoming::Request { id, .. } => {
                    self.pushes += 1;
                    self.sess.reply(id, &Message::Ack, &mut self.out).unwrap();
                }
                Incoming::Established { .. } => {}
            }
        }
    }

    /// Send `msgs` in one write and wait for all their replies.
    fn batch(&mut self, msgs: &[Message], f: &mut dyn FnMut(Message)) {
        for m in msgs {
            self.sess.request(m, &mut self.out).expect("encode");
        }
        self.flush();
        let mut got = 0;
        while got < msgs.len() {
            self.read(&mut |m| {
                got += 1;
                f(m)
            });
        }
        self.flush(); // acks to pushes
    }

    fn call(&mut self, m: Message) -> Message {
        let mut r = None;
        self.batch(&[m], &mut |x| r = Some(x));
        r.unwrap()
    }
}

fn enter_ns(ns: &str) {
    let f = std::fs::File::open(format!("/var/run/netns/{ns}")).expect("netns");
    use std::os::fd::AsRawFd;
    // SAFETY: setns on this thread with a namespace fd we opened.
    let r = unsafe { libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(r, 0, "setns: {}", std::io::Error::last_os_error());
}

fn sh(cmd: &str) {
    let st = Command::new("sh").arg("-c").arg(cmd).status().unwrap();
    assert!(st.success(), "{cmd}");
}

/// What to clean up if the bench dies: release builds abort on panic, so
/// `Drop` never runs; a panic hook does it instead.
static CLEANUP: std::sync::Mutex<Option<(String, PathBuf, u32)>> = std::sync::Mutex::new(None);

fn cleanup_on_panic() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        if let Ok(mut g) = CLEANUP.try_lock() {
            if let Some((ns, dir, pid)) = g.take() {
                if pid != 0 {
                    // SAFETY: kill(2) on the mlrd this bench spawned.
                    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
                }
                let _ = Command::new("ip").args(["netns", "del", &ns]).status();
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        default(info);
    }));
}

struct Mlrd {
    ns: String,
    bin: PathBuf,
    dir: PathBuf,
    child: Option<Child>,
    keep: bool,
    no_compact: bool,
}

impl Mlrd {
    fn start(&mut self) -> Duration {
        let t = Instant::now();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("mlrd.log"))
            .unwrap();
        let mut cmd = Command::new("ip");
        if self.no_compact {
            cmd.env("MLRD_COMPACT_MIN_BYTES", "1000000000000");
        }
        let child = cmd
            .args(["netns", "exec", &self.ns])
            .arg(&self.bin)
            .arg("-f")
            .arg(self.dir.join("mlrd.rc"))
            .stdin(Stdio::null())
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .unwrap();
        if let Ok(mut g) = CLEANUP.lock() {
            *g = Some((self.ns.clone(), self.dir.clone(), child.id()));
        }
        self.child = Some(child);
        // Ready = a handshake completes and a locate is answered.
        let ns = self.ns.clone();
        let deadline = t + Duration::from_secs(120);
        std::thread::spawn(move || {
            enter_ns(&ns);
            loop {
                if let Ok(s) = TcpStream::connect(MLR) {
                    drop(s);
                    let mut p = Pipe::connect();
                    p.call(Message::Locate(Locate::ByMac(mac(0, 0))));
                    return;
                }
                assert!(Instant::now() < deadline, "mlrd did not come up");
                std::thread::sleep(Duration::from_millis(2));
            }
        })
        .join()
        .unwrap();
        t.elapsed()
    }

    fn pid(&self) -> u32 {
        // `ip netns exec` execs mlrd in place: same pid.
        self.child.as_ref().unwrap().id()
    }

    fn rss_kib(&self) -> u64 {
        let s = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        s.lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap()
    }

    fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn term(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: kill(2) on the pid we spawned.
            unsafe { libc::kill(c.id() as i32, libc::SIGTERM) };
            let _ = c.wait();
        }
    }
}

impl Drop for Mlrd {
    fn drop(&mut self) {
        self.kill9();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
        if self.keep {
            println!("state kept in {}", self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

/// What one client thread does; returns how many operations it made.
type PerClient = Arc<dyn Fn(usize, &mut Pipe) -> u64 + Send + Sync>;

/// Run `per_client(client, pipe)` on every client thread inside the
/// namespace; returns total operations and wall time.
fn parallel(
    o: &Opts,
    ns: &str,
    pipes: Vec<Pipe>,
    per_client: PerClient,
) -> (Vec<Pipe>, u64, Duration) {
    let t = Instant::now();
    let hs: Vec<_> = pipes
        .into_iter()
        .enumerate()
        .map(|(c, mut p)| {
            let f = per_client.clone();
            let ns = ns.to_string();
            std::thread::spawn(move || {
                enter_ns(&ns);
                let n = f(c, &mut p);
                (p, n)
            })
        })
        .collect();
    let mut pipes = Vec::new();
    let mut n = 0;
    for h in hs {
        let (p, k) = h.join().unwrap();
        pipes.push(p);
        n += k;
    }
    let _ = o;
    (pipes, n, t.elapsed())
}

fn allocate_range(
    o: &Opts,
    ns: &str,
    pipes: Vec<Pipe>,
    from: usize,
    to: usize,
) -> (Vec<Pipe>, f64) {
    let w = o.window;
    let per = Arc::new(move |c: usize, p: &mut Pipe| {
        let mut i = from;
        let mut n = 0;
        while i < to {
            let end = (i + w).min(to);
            let msgs: Vec<Message> = (i..end)
                .map(|k| {
                    Message::Allocate(Allocate {
                        mac: mac(c, k),
                        requested: None,
                    })
                })
                .collect();
            p.batch(&msgs, &mut |m| {
                assert!(matches!(m, Message::Binding(_)), "{m:?}");
            });
            n += (end - i) as u64;
            i = end;
        }
        n
    });
    let (pipes, n, dt) = parallel(o, ns, pipes, per);
    (pipes, n as f64 / dt.as_secs_f64())
}

/// Bind as client `c` (retrying while a register of a pair still probes
/// its peer).
fn bind(c: usize) -> Pipe {
    for _ in 0..100 {
        let mut p = Pipe::connect_from(cn_addr(c));
        let r = p.call(Message::CnBind(CnBind {
            network_name: NET.into(),
            cn_name: format!("bench cn {c}"),
            cn_addr: cn_addr(c),
            cn_port: 5554,
            pools: vec![cn_pool(c)],
        }));
        if matches!(r, Message::BindReply(BindReply::Accepted { .. })) {
            return p;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("the primary never served");
}

/// When `needle` shows up in `log` past byte `from` (polled every 5 ms).
fn wait_log(log: &std::path::Path, from: usize, needle: &str, wait: Duration) -> Option<Instant> {
    let end = Instant::now() + wait;
    while Instant::now() < end {
        let t = std::fs::read(log).unwrap_or_default();
        if t.get(from..)
            .is_some_and(|t| String::from_utf8_lossy(t).contains(needle))
        {
            return Some(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    None
}

/// `--snapshot`: see the module docs.
fn snapshot_catch_up(o: &Opts, ns: &str, m: &Mlrd) {
    let nclients = o.clients;
    // The allocating CN of the catch-up: one more client with its own pool.
    let probe_c = nclients;
    // Sessions are bound afresh for each size: one idle through a long
    // fill or catch-up would be taken for a silent CN (cn_timeout).
    let bind_all = |ns: &str, cs: std::ops::Range<usize>| -> Vec<Pipe> {
        let ns = ns.to_string();
        std::thread::spawn(move || {
            enter_ns(&ns);
            cs.map(bind).collect()
        })
        .join()
        .unwrap()
    };
    let primary_log = m.dir.join("mlrd.log");
    let mut filled = 0;
    let mut probe_n = 0usize;
    for &n in &o.snapshot {
        let per = n / nclients;
        let t = Instant::now();
        let pipes = bind_all(ns, 0..nclients);
        drop(allocate_range(o, ns, pipes, filled, per));
        println!(
            "register filled to {} bindings (+{} in {:.1} s)",
            per * nclients + probe_n,
            (per - filled.min(per)) * nclients,
            t.elapsed().as_secs_f64()
        );
        filled = filled.max(per);
        let bdir = m.dir.join(format!("backup-{n}"));
        std::fs::create_dir_all(&bdir).unwrap();
        let rc = bdir.join("mlrd.rc");
        std::fs::write(
            &rc,
            format!(
                "network_name {NET}\nport 6555\nforeground true\nlog true\ndebug_level 2\nsecret \"{SECRET}\"\nstate_dir {}\nstatus_file {}\nlease_time 86400\nprimary_mlr 127.0.0.1:6554\n",
                bdir.join("state").display(),
                bdir.join("status.json").display(),
            ),
        )
        .unwrap();
        let blog = bdir.join("mlrd.log");
        let from = std::fs::metadata(&primary_log).map_or(0, |x| x.len() as usize);
        let logf = std::fs::File::create(&blog).unwrap();
        let started = Instant::now();
        let mut backup = Command::new("ip")
            .args(["netns", "exec", ns])
            .arg(&m.bin)
            .arg("-f")
            .arg(&rc)
            .stdin(Stdio::null())
            .stdout(Stdio::from(logf.try_clone().unwrap()))
            .stderr(Stdio::from(logf))
            .spawn()
            .unwrap();
        // A CN allocating one new station every 5 ms meanwhile.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let (ns2, stop2, first) = (ns.to_string(), stop.clone(), probe_n);
        let mut p = bind_all(ns, probe_c..probe_c + 1).remove(0);
        let h = std::thread::spawn(move || {
            enter_ns(&ns2);
            let mut lat = Vec::new();
            let mut refused = Vec::new();
            let mut k = first;
            while !stop2.load(std::sync::atomic::Ordering::SeqCst) {
                let t = Instant::now();
                let r = p.call(Message::Allocate(Allocate {
                    mac: mac(probe_c, k),
                    requested: None,
                }));
                k += 1;
                lat.push(t.elapsed());
                if !matches!(r, Message::Binding(_)) {
                    refused.push(format!("{r}"));
                }
                std::thread::sleep(Duration::from_millis(5));
            }
            (lat, refused, k)
        });
        let sync = wait_log(&blog, 0, "Replica in sync", Duration::from_secs(300));
        let psync = wait_log(
            &primary_log,
            from,
            "Backup register in sync",
            Duration::from_secs(5),
        );
        std::thread::sleep(Duration::from_millis(500));
        stop.store(true, std::sync::atomic::Ordering::SeqCst);
        let (mut lat, refused, k) = h.join().unwrap();
        probe_n = k;
        // What the primary said before the backup is stopped.
        let plog = std::fs::read(&primary_log).unwrap_or_default();
        let _ = backup.kill();
        let _ = backup.wait();
        let plog = String::from_utf8_lossy(plog.get(from..).unwrap_or_default()).into_owned();
        let subs = plog.matches("subscribed: sending a snapshot").count();
        let drops: Vec<&str> = plog
            .lines()
            .filter(|l| l.contains("Backup register gone") || l.contains("not reading"))
            .collect();
        let snap_bytes: u64 = std::fs::read_dir(bdir.join("state"))
            .map(|d| {
                d.flatten()
                    .filter(|e| e.file_name().to_string_lossy().starts_with("snapshot"))
                    .filter_map(|e| e.metadata().ok())
                    .map(|x| x.len())
                    .max()
                    .unwrap_or(0)
            })
            .unwrap_or(0);
        let ms = |t: Option<Instant>| {
            t.map_or("never".to_string(), |t| {
                format!("{:.0} ms", (t - started).as_secs_f64() * 1e3)
            })
        };
        println!(
            "  backup joins late: in sync after {} (the primary saw it after {}); snapshot {:.1} MB; {subs} subscription(s); dropped by the primary: {}",
            ms(sync),
            ms(psync),
            snap_bytes as f64 / 1e6,
            if drops.is_empty() {
                "never".to_string()
            } else {
                drops.join(" | ")
            }
        );
        let n_alloc = lat.len();
        if n_alloc == 0 {
            println!("  a CN allocating meanwhile: no allocation made");
            continue;
        }
        println!(
            "  a CN allocating meanwhile: {n_alloc} allocations, latency p50 {:?} max {:?}, {} refused{}",
            percentile(&mut lat, 0.5),
            percentile(&mut lat, 1.0),
            refused.len(),
            refused
                .first()
                .map_or(String::new(), |r| format!(" (first: {r})"))
        );
    }
}

/// VmRSS and VmHWM (peak) of `pid` in KiB.
fn rss_hwm_kib(pid: u32) -> (u64, u64) {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let field = |name: &str| {
        s.lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

/// `n` hostile pre-authentication connections holding 140 of a 141-byte
/// bogus Hello each; then a CN binds. See the module docs.
fn preauth_attack(ns: &str, n: usize, m: &Mlrd, rss0: u64) {
    let limit = tmip::process_setup::raise_nofile();
    assert!(
        limit as usize > n + 64,
        "open-file hard limit {limit} is too low for {n} connections"
    );
    let mut hello = vec![b'M', b'L', mlrp::VERSION, 0x02];
    hello.extend_from_slice(&(mlrp::MAX_HELLO_FRAME_LEN as u32).to_be_bytes());
    hello.extend_from_slice(&[0; 12]); // sequence 0, request id 0
    hello.extend_from_slice(&[0, 1, 0, 0]); // Hello, reserved
    hello.resize(mlrp::MAX_HELLO_FRAME_LEN - 1, 0xa5);
    let sent = hello.len();
    let ns2 = ns.to_string();
    let (held, t_attack) = std::thread::spawn(move || {
        enter_ns(&ns2);
        let mlr = std::net::SocketAddrV4::new(Ipv4Addr::LOCALHOST, 6554);
        let t = Instant::now();
        let mut held = Vec::with_capacity(n);
        for i in 0..n {
            let k = i / 16;
            let src = Ipv4Addr::new(10, 201, (k / 250) as u8, (k % 250) as u8 + 1);
            let mut s = mlrp::client::tcp_connect_from(src, mlr, Duration::from_secs(10))
                .expect("attack connect");
            s.write_all(&hello).expect("attack write");
            held.push(s);
        }
        (held, t.elapsed())
    })
    .join()
    .unwrap();
    // Let mlrd accept and read every one.
    std::thread::sleep(Duration::from_secs(2));
    let (rss, hwm) = rss_hwm_kib(m.pid());
    println!(
        "pre-auth attack: {n} connections from {} addresses, each holding {} bytes of a {}-byte bogus Hello, opened in {:?}",
        n.div_ceil(16),
        sent,
        mlrp::MAX_HELLO_FRAME_LEN,
        t_attack
    );
    println!(
        "mlrd RSS {rss} KiB (peak {hwm} KiB; {} KiB over empty, {:.0} bytes per connection)",
        rss.saturating_sub(rss0),
        rss.saturating_sub(rss0) as f64 * 1024.0 / n as f64
    );
    let ns2 = ns.to_string();
    let (t_bind, t_locate) = std::thread::spawn(move || {
        enter_ns(&ns2);
        let t = Instant::now();
        let mut p = bind(0);
        let t_bind = t.elapsed();
        let t = Instant::now();
        p.call(Message::Locate(Locate::ByMac(mac(0, 0))));
        (t_bind, t.elapsed())
    })
    .join()
    .unwrap();
    println!(
        "a CN connected, handshook and bound in {t_bind:?} during the attack (then a locate answered in {t_locate:?})"
    );
    // How many hostile connections mlrd still holds (the CN evicted one
    // when every slot was in use).
    let mut open = 0;
    for mut s in held {
        s.set_nonblocking(true).unwrap();
        let mut b = [0u8; 512];
        let closed = loop {
            match s.read(&mut b) {
                Ok(0) => break true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break false,
                Err(_) => break true,
            }
        };
        if !closed {
            open += 1;
        }
    }
    let (rss_end, hwm_end) = rss_hwm_kib(m.pid());
    println!(
        "hostile connections still open: {open} of {n}; mlrd RSS {rss_end} KiB, peak {hwm_end} KiB"
    );
}

fn percentile(v: &mut [Duration], p: f64) -> Duration {
    v.sort_unstable();
    v[((v.len() as f64 * p) as usize).min(v.len() - 1)]
}

fn sync_latencies(ns: &str, stations: usize, n: usize) -> Vec<Duration> {
    let ns = ns.to_string();
    std::thread::spawn(move || {
        enter_ns(&ns);
        let mut p = Pipe::connect();
        let mut v = Vec::with_capacity(n);
        let mut x: u64 = 0x9e37_79b9;
        // Warm-up (connection, caches), not counted.
        for k in 0..100 {
            p.call(Message::Locate(Locate::ByMac(mac(0, k % stations))));
        }
        for _ in 0..n {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (x >> 33) as usize % stations;
            let t = Instant::now();
            let r = p.call(Message::Locate(Locate::ByMac(mac(0, k))));
            v.push(t.elapsed());
            assert!(matches!(r, Message::Binding(_)), "{r:?}");
        }
        v
    })
    .join()
    .unwrap()
}

fn locate_load(o: &Opts, ns: &str, pipes: Vec<Pipe>, stations: usize) -> (Vec<Pipe>, f64) {
    let (w, secs) = (o.window, o.secs);
    let per = Arc::new(move |c: usize, p: &mut Pipe| {
        let end = Instant::now() + Duration::from_secs_f64(secs);
        let mut x: u64 = 0x1234_5678 + c as u64;
        let mut n = 0;
        let mut msgs = Vec::with_capacity(w);
        while Instant::now() < end {
            msgs.clear();
            for _ in 0..w {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                let k = (x >> 33) as usize % stations;
                msgs.push(Message::Locate(Locate::ByMac(mac(c, k))));
            }
            p.batch(&msgs, &mut |m| {
                assert!(matches!(m, Message::Binding(_)), "{m:?}");
            });
            n += w as u64;
        }
        n
    });
    let (pipes, n, dt) = parallel(o, ns, pipes, per);
    (pipes, n as f64 / dt.as_secs_f64())
}

fn main() {
    let o = opts();
    assert!(
        nix::unistd::geteuid().is_root(),
        "mlr_bench needs root (it runs mlrd in a network namespace)"
    );
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(|p| p.parent())
        .map(|p| p.join("mlrd"))
        .unwrap();
    assert!(
        bin.exists(),
        "{} missing: cargo build --release -p mlrd --bins --examples",
        bin.display()
    );
    cleanup_on_panic();
    let ns = format!("mlrbench{}", std::process::id() % 100000);
    // The CNs' (10.200.0.x) and attackers' (10.201.x.y) addresses are the
    // namespace's own: all of 10/8 on lo.
    sh(&format!(
        "ip netns add {ns} && ip -n {ns} link set lo up && ip -n {ns} addr add 10.255.255.254/8 dev lo"
    ));
    let dir = std::env::temp_dir().join(format!("mlr_bench.{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join("mlrd.rc"),
        format!(
            "network_name {NET}\nport 6554\nforeground true\nlog true\ndebug_level 2\nsecret \"{SECRET}\"\nstate_dir {}\nstatus_file {}\nlease_time 86400\n{}",
            dir.join("state").display(),
            dir.join("status.json").display(),
            // The attack holds its connections for the whole measurement
            // (the worst case; the default 10 s would close them sooner).
            if o.preauth > 0 {
                "handshake_timeout 60\n"
            } else if !o.snapshot.is_empty() {
                "backup_mlr 127.0.0.1:6555\n"
            } else {
                ""
            }
        ),
    )
    .unwrap();
    let mut m = Mlrd {
        ns: ns.clone(),
        bin: bin.clone(),
        dir: dir.clone(),
        child: None,
        keep: o.keep,
        no_compact: o.no_compact,
    };
    let t_start = m.start();
    let rss0 = m.rss_kib();
    println!(
        "mlr_bench: mlrd {} ({}), {} client connections, window {}, secret on (HMAC-SHA256 every frame), {} CPUs",
        tmip::VERSION,
        bin.display(),
        o.clients,
        o.window,
        std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0)
    );
    println!("empty start: {:?}, RSS {} KiB", t_start, rss0);
    if o.preauth > 0 {
        preauth_attack(&ns, o.preauth, &m, rss0);
        return;
    }
    if !o.snapshot.is_empty() {
        snapshot_catch_up(&o, &ns, &m);
        return;
    }

    let ns2 = ns.clone();
    let nclients = o.clients;
    let pipes: Vec<Pipe> = std::thread::spawn(move || {
        enter_ns(&ns2);
        (0..nclients).map(bind).collect()
    })
    .join()
    .unwrap();

    // 100k bindings.
    let first = 100_000.min(o.max);
    let per_client_100k = first / o.clients;
    let (pipes, alloc_rate) = allocate_range(&o, &ns, pipes, 0, per_client_100k);
    let n100k = per_client_100k * o.clients;
    let rss100k = m.rss_kib();
    println!(
        "allocations: {:.0}/s ({} new bindings, journaled + fdatasync before each reply batch)",
        alloc_rate, n100k
    );
    println!(
        "RSS at {n100k} bindings: {} KiB ({:.0} bytes/binding total, {:.0} over empty)",
        rss100k,
        rss100k as f64 * 1024.0 / n100k as f64,
        (rss100k - rss0) as f64 * 1024.0 / n100k as f64
    );

    let mut lat_idle = sync_latencies(&ns, per_client_100k, 5000);
    println!(
        "locate latency, one at a time, idle MLR: p50 {:?} p99 {:?}",
        percentile(&mut lat_idle, 0.50),
        percentile(&mut lat_idle, 0.99)
    );

    // Every client asking one locate at a time (how a CN asks): latency
    // and the rate it gives.
    let nsamp = 5000;
    let per = Arc::new(move |c: usize, p: &mut Pipe| {
        let mut x: u64 = 0xabcdef + c as u64;
        let mut v = Vec::with_capacity(nsamp);
        for k in 0..100 {
            p.call(Message::Locate(Locate::ByMac(mac(c, k % per_client_100k))));
        }
        for _ in 0..nsamp {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            let k = (x >> 33) as usize % per_client_100k;
            let t = Instant::now();
            let r = p.call(Message::Locate(Locate::ByMac(mac(c, k))));
            v.push(t.elapsed());
            assert!(matches!(r, Message::Binding(_)), "{r:?}");
        }
        v.sort_unstable();
        // Smuggle p50/p99 out as micros*1e6 packed: keep it simple, print here.
        println!(
            "  client {c}: one-at-a-time locate p50 {:?} p99 {:?}",
            v[v.len() / 2],
            v[v.len() * 99 / 100]
        );
        nsamp as u64
    });
    let (pipes, n, dt) = parallel(&o, &ns, pipes, per);
    println!(
        "locates, {} clients each one at a time (no pipelining): {:.0}/s",
        o.clients,
        n as f64 / dt.as_secs_f64()
    );

    // Locates under load, with latency sampled by a separate synchronous client.
    let ns3 = ns.clone();
    let lat_thread = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(300));
        sync_latencies(&ns3, per_client_100k, 3000)
    });
    let (pipes, loc_rate) = locate_load(&o, &ns, pipes, per_client_100k);
    let mut lat_load = lat_thread.join().unwrap();
    println!(
        "locates: {:.0}/s ({} connections x {} pipelined, {:.1} s)",
        loc_rate, o.clients, o.window, o.secs
    );
    println!(
        "locate latency, one at a time, while the others load mlrd: p50 {:?} p99 {:?}",
        percentile(&mut lat_load, 0.50),
        percentile(&mut lat_load, 0.99)
    );

    // Moves: client c takes the stations of client c+1 (whose CN is the
    // parent). The cells a Move names are located first (untimed).
    let (w, nc) = (o.window, o.clients);
    let per = Arc::new(move |c: usize, p: &mut Pipe| {
        let owner = (c + 1) % nc;
        let mut cells = Vec::with_capacity(per_client_100k);
        let mut i = 0;
        while i < per_client_100k {
            let end = (i + w).min(per_client_100k);
            let msgs: Vec<Message> = (i..end)
                .map(|k| Message::Locate(Locate::ByMac(mac(owner, k))))
                .collect();
            p.batch(&msgs, &mut |m| match m {
                Message::Binding(b) => cells.push(b.cell),
                o => panic!("{o:?}"),
            });
            i = end;
        }
        p.cells = cells;
        0
    });
    let (pipes, _, _) = parallel(&o, &ns, pipes, per);
    let per = Arc::new(move |c: usize, p: &mut Pipe| {
        let owner = (c + 1) % nc;
        let to = CnRef::new(cn_addr(c), 5554);
        let mut i = 0;
        while i < per_client_100k {
            let end = (i + w).min(per_client_100k);
            let msgs: Vec<Message> = (i..end)
                .map(|k| {
                    Message::Move(Move {
                        mac: mac(owner, k),
                        cell: p.cells[k],
                        to,
                    })
                })
                .collect();
            p.batch(&msgs, &mut |m| {
                assert!(matches!(m, Message::Binding(_)), "{m:?}")
            });
            i = end;
        }
        per_client_100k as u64
    });
    let pushes_before: u64 = pipes.iter().map(|p| p.pushes).sum();
    let (pipes, moves, dt) = parallel(&o, &ns, pipes, per);
    let pushes_after: u64 = pipes.iter().map(|p| p.pushes).sum();
    println!(
        "moves: {:.0}/s ({} moves, each journaled and pushing a Redirect to the parent CN; {} pushes acknowledged by clients meanwhile)",
        moves as f64 / dt.as_secs_f64(),
        moves,
        pushes_after - pushes_before
    );

    // Up to the maximum.
    let per_client_max = o.max / o.clients;
    let mut pipes = pipes;
    let mut rss_max = rss100k;
    let mut n_max = n100k;
    if per_client_max > per_client_100k {
        let t = Instant::now();
        let (p2, rate) = allocate_range(&o, &ns, pipes, per_client_100k, per_client_max);
        pipes = p2;
        n_max = per_client_max * o.clients;
        // Let a compaction that may have just run settle.
        std::thread::sleep(Duration::from_millis(500));
        rss_max = m.rss_kib();
        println!("allocations to {n_max}: {:.0}/s ({:?})", rate, t.elapsed());
        println!(
            "RSS at {n_max} bindings: {} KiB ({:.1} bytes/binding total, {:.1} over empty)",
            rss_max,
            rss_max as f64 * 1024.0 / n_max as f64,
            (rss_max - rss0) as f64 * 1024.0 / n_max as f64
        );
        let (p3, loc_rate) = locate_load(&o, &ns, pipes, per_client_max);
        pipes = p3;
        println!("locates at {n_max} bindings: {loc_rate:.0}/s");
    }
    drop(pipes);
    let state_bytes: u64 = std::fs::read_dir(dir.join("state"))
        .unwrap()
        .flatten()
        .map(|e| e.metadata().map(|m| m.len()).unwrap_or(0))
        .sum();

    m.kill9();
    let t_restart = m.start();
    println!(
        "restart after kill -9 with {n_max} bindings ({:.1} MB snapshot + journal): {:?} until a locate is answered",
        state_bytes as f64 / 1e6,
        t_restart
    );
    m.term();
    let t_restart2 = m.start();
    println!("restart after TERM (pure snapshot): {t_restart2:?}");
    let log = std::fs::read_to_string(dir.join("mlrd.log")).unwrap_or_default();
    for l in log
        .lines()
        .filter(|l| l.contains("[MLRCache]") || l.contains("ompact"))
    {
        println!("  mlrd: {l}");
    }
    let _ = rss_max;
}
