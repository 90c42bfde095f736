//! Persistence of the register under `state_dir`: a snapshot plus an
//! append-only journal of the changes made since it.
//!
//! Files:
//! - `snapshot` — the whole register as of the start of `journal.S` (written
//!   to a temporary file, fsynced, renamed: never torn);
//! - `journal.S`, `journal.S+1`, ... — every change acknowledged since,
//!   appended to the last one and fdatasynced once per loop iteration BEFORE
//!   the replies that acknowledge the changes are sent;
//! - `lock` — flock'd so two mlrd never share a state directory.
//!
//! Both files are a header then records `[len u32][kind u8][payload][crc32]`
//! (little endian, `len` counts kind + payload, the CRC covers them). A
//! journal's last record may be torn by a crash: a short or bad-CRC record
//! ends the replay, is logged, and is cut off before appending resumes.
//! Compaction starts `journal.G+1`, then a forked child (copy-on-write view
//! of the register at that instant, so the loop does not stall) writes
//! snapshot G+1, renames it into place and deletes the journals before G+1.
//! A crash at any point leaves a snapshot plus the journals that follow it;
//! the loader replays them all in order.

use crate::register::{AddrRange, BindingRecord, Change, CnIdx, Register};
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::net::Ipv4Addr;
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use tmip::sys::process::{self, ChildExit, Pid};

const SNAP_MAGIC: &[u8; 8] = b"MLRDSNP1";
const JNL_MAGIC: &[u8; 8] = b"MLRDJNL1";
const KIND_CN: u8 = 1;
const KIND_BINDING: u8 = 2;
const KIND_REMOVE: u8 = 3;
const KIND_END: u8 = 0xff;
/// A record is never larger than this (a CN with 64 pools and a long name).
const MAX_RECORD: usize = 4096;
/// Journals smaller than this are never compacted.
const MIN_COMPACT_BYTES: u64 = 16 << 20;

#[derive(Debug)]
pub enum JournalError {
    Io(String, io::Error),
    Corrupt(String),
    Locked(String),
}

impl fmt::Display for JournalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            JournalError::Io(what, e) => write!(f, "{what}: {e}"),
            JournalError::Corrupt(m) => f.write_str(m),
            JournalError::Locked(d) => {
                write!(f, "{d}: state directory in use by another mlrd")
            }
        }
    }
}

impl std::error::Error for JournalError {}

fn io_err(what: impl fmt::Display) -> impl FnOnce(io::Error) -> JournalError {
    let w = what.to_string();
    move |e| JournalError::Io(w, e)
}

/// What loading found, for the start-up log.
#[derive(Debug, Default, Clone)]
pub struct LoadReport {
    pub generation: u64,
    pub snapshot_bindings: u64,
    pub journal_records: u64,
    /// Bytes of a torn last record cut off the journal, with its offset.
    pub torn: Option<(u64, u64)>,
    /// Milliseconds spent reading files, applying records, rebuilding pools.
    pub read_ms: u64,
    pub apply_ms: u64,
    pub rebuild_ms: u64,
}

/// CRC-32 (IEEE), slicing-by-8 (a restart checks ~30 MB per million
/// bindings, so the byte-at-a-time loop would be a tenth of the restart).
fn crc_tables() -> &'static [[u32; 256]; 8] {
    static T: std::sync::OnceLock<[[u32; 256]; 8]> = std::sync::OnceLock::new();
    T.get_or_init(|| {
        let mut t = [[0u32; 256]; 8];
        for (i, e) in t[0].iter_mut().enumerate() {
            let mut c = i as u32;
            for _ in 0..8 {
                c = if c & 1 != 0 {
                    0xedb8_8320 ^ (c >> 1)
                } else {
                    c >> 1
                };
            }
            *e = c;
        }
        #[allow(clippy::needless_range_loop)] // t[k] is built from t[k - 1]
        for i in 0..256 {
            for k in 1..8 {
                let prev = t[k - 1][i];
                t[k][i] = (prev >> 8) ^ t[0][(prev & 0xff) as usize];
            }
        }
        t
    })
}

pub fn crc32(data: &[u8]) -> u32 {
    let t = crc_tables();
    let mut c = !0u32;
    let mut chunks = data.chunks_exact(8);
    for ch in &mut chunks {
        let lo = c ^ u32::from_le_bytes([ch[0], ch[1], ch[2], ch[3]]);
        c = t[7][(lo & 0xff) as usize]
            ^ t[6][((lo >> 8) & 0xff) as usize]
            ^ t[5][((lo >> 16) & 0xff) as usize]
            ^ t[4][(lo >> 24) as usize]
            ^ t[3][ch[4] as usize]
            ^ t[2][ch[5] as usize]
            ^ t[1][ch[6] as usize]
            ^ t[0][ch[7] as usize];
    }
    for &b in chunks.remainder() {
        c = t[0][((c ^ b as u32) & 0xff) as usize] ^ (c >> 8);
    }
    !c
}

fn put_record(buf: &mut Vec<u8>, kind: u8, payload: &[u8]) {
    let start = buf.len();
    buf.extend_from_slice(&((payload.len() + 1) as u32).to_le_bytes());
    buf.push(kind);
    buf.extend_from_slice(payload);
    let crc = crc32(&buf[start + 4..]);
    buf.extend_from_slice(&crc.to_le_bytes());
}

fn binding_payload(r: &BindingRecord) -> [u8; 20] {
    let mut p = [0u8; 20];
    p[0..6].copy_from_slice(&r.mac);
    p[6..8].copy_from_slice(&r.parent.to_le_bytes());
    p[8..10].copy_from_slice(&r.at.to_le_bytes());
    p[10..12].copy_from_slice(&r.previous.to_le_bytes());
    p[12..16].copy_from_slice(&r.cell.to_le_bytes());
    p[16..20].copy_from_slice(&r.expires.to_le_bytes());
    p
}

fn parse_binding(p: &[u8]) -> Option<BindingRecord> {
    if p.len() != 20 {
        return None;
    }
    let u16at = |i: usize| u16::from_le_bytes([p[i], p[i + 1]]);
    let u32at = |i: usize| u32::from_le_bytes([p[i], p[i + 1], p[i + 2], p[i + 3]]);
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&p[0..6]);
    Some(BindingRecord {
        mac,
        parent: u16at(6),
        at: u16at(8),
        previous: u16at(10),
        cell: u32at(12),
        expires: u32at(16),
    })
}

fn put_cn(buf: &mut Vec<u8>, reg: &Register, idx: CnIdx) {
    let Some(cn) = reg.cn(idx) else { return };
    let mut p = Vec::with_capacity(16 + cn.name.len() + cn.pools.len() * 8);
    p.extend_from_slice(&idx.to_le_bytes());
    p.extend_from_slice(&cn.port.to_le_bytes());
    p.extend_from_slice(&u32::from(cn.addr).to_le_bytes());
    let name = &cn.name.as_bytes()[..cn.name.len().min(255)];
    p.push(name.len() as u8);
    p.extend_from_slice(name);
    let pools = &cn.pools[..cn.pools.len().min(255)];
    p.push(pools.len() as u8);
    for pool in pools {
        p.extend_from_slice(&u32::from(pool.spec.first).to_le_bytes());
        p.extend_from_slice(&u32::from(pool.spec.last).to_le_bytes());
    }
    put_record(buf, KIND_CN, &p);
}

struct CnRecord {
    idx: CnIdx,
    port: u16,
    addr: Ipv4Addr,
    name: String,
    pools: Vec<AddrRange>,
}

fn parse_cn(p: &[u8]) -> Option<CnRecord> {
    let idx = u16::from_le_bytes(p.get(0..2)?.try_into().ok()?);
    let port = u16::from_le_bytes(p.get(2..4)?.try_into().ok()?);
    let addr = Ipv4Addr::from(u32::from_le_bytes(p.get(4..8)?.try_into().ok()?));
    let nlen = *p.get(8)? as usize;
    let name = String::from_utf8_lossy(p.get(9..9 + nlen)?).into_owned();
    let mut at = 9 + nlen;
    let npools = *p.get(at)? as usize;
    at += 1;
    let mut pools = Vec::with_capacity(npools);
    for _ in 0..npools {
        let f = u32::from_le_bytes(p.get(at..at + 4)?.try_into().ok()?);
        let l = u32::from_le_bytes(p.get(at + 4..at + 8)?.try_into().ok()?);
        pools.push(AddrRange {
            first: f.into(),
            last: l.into(),
        });
        at += 8;
    }
    (at == p.len()).then_some(CnRecord {
        idx,
        port,
        addr,
        name,
        pools,
    })
}

/// Walk the records of `data` from `off`. Calls `f(kind, payload)` for each
/// whole, checksummed record; returns the offset where the walk stopped and
/// whether it stopped on a damaged record (rather than at the end).
fn walk(data: &[u8], mut off: usize, mut f: impl FnMut(u8, &[u8]) -> bool) -> (usize, bool) {
    while off < data.len() {
        let Some(lb) = data.get(off..off + 4) else {
            return (off, true);
        };
        let len = u32::from_le_bytes([lb[0], lb[1], lb[2], lb[3]]) as usize;
        if len == 0 || len > MAX_RECORD {
            return (off, true);
        }
        let Some(body) = data.get(off + 4..off + 4 + len) else {
            return (off, true);
        };
        let Some(cb) = data.get(off + 4 + len..off + 8 + len) else {
            return (off, true);
        };
        if crc32(body) != u32::from_le_bytes([cb[0], cb[1], cb[2], cb[3]]) {
            return (off, true);
        }
        if !f(body[0], &body[1..]) {
            return (off + 8 + len, false);
        }
        off += 8 + len;
    }
    (off, false)
}

/// The open journal of a running mlrd.
pub struct Journal {
    dir: PathBuf,
    generation: u64,
    file: File,
    bytes: u64,
    snapshot_bytes: u64,
    buf: Vec<u8>,
    /// Held for its flock (released when mlrd exits).
    _lock: File,
    /// Journal size that triggers a compaction (at least; see `should_compact`).
    compact_min: u64,
    /// A forked child writing snapshot `generation`, and when it started.
    child: Option<(Pid, std::time::Instant)>,
    /// fdatasync calls made (status, tests).
    syncs: u64,
    /// Records written but not yet fdatasynced (see [`Journal::write_soft`]).
    unsynced: bool,
}

/// The generations of the `journal.N` files in `dir`, sorted.
fn journal_gens(dir: &Path) -> Result<Vec<u64>, JournalError> {
    let mut v = Vec::new();
    for e in fs::read_dir(dir).map_err(io_err(dir.display()))?.flatten() {
        let name = e.file_name();
        if let Some(g) = name
            .to_str()
            .and_then(|n| n.strip_prefix("journal."))
            .and_then(|g| g.parse::<u64>().ok())
        {
            v.push(g);
        }
    }
    v.sort_unstable();
    Ok(v)
}

fn create_journal(path: &Path, gen: u64) -> Result<File, JournalError> {
    let mut f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(path)
        .map_err(io_err(path.display()))?;
    f.write_all(JNL_MAGIC).map_err(io_err(path.display()))?;
    f.write_all(&gen.to_le_bytes())
        .map_err(io_err(path.display()))?;
    f.sync_all().map_err(io_err(path.display()))?;
    Ok(f)
}

/// Write snapshot `gen` of `reg` into `dir` (temporary file, fsync, rename,
/// fsync the directory), then delete the journals it makes redundant.
/// Returns its size.
fn write_snapshot(dir: &Path, reg: &Register, gen: u64) -> Result<u64, JournalError> {
    let tmp = dir.join(format!("snapshot.tmp.{}", std::process::id()));
    let data = encode_snapshot(reg, gen);
    {
        let mut f = File::create(&tmp).map_err(io_err(tmp.display()))?;
        f.write_all(&data).map_err(io_err(tmp.display()))?;
        f.sync_all().map_err(io_err(tmp.display()))?;
    }
    // The rename is the commit point: before it, the old snapshot and every
    // journal from its generation on are current; after it, this snapshot
    // and the journals from `gen` on.
    fs::rename(&tmp, dir.join("snapshot")).map_err(io_err("snapshot rename"))?;
    sync_dir(dir);
    remove_stale_journals(dir, gen);
    Ok(data.len() as u64)
}

impl Journal {
    /// Lock `dir` (creating it), load snapshot and journal into `reg` (which
    /// must be empty) and open the journal for appending.
    pub fn open(dir: &str, reg: &mut Register) -> Result<(Journal, LoadReport), JournalError> {
        let dirp = PathBuf::from(dir);
        fs::create_dir_all(&dirp).map_err(io_err(format!("{dir}: cannot create")))?;
        let lock = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(dirp.join("lock"))
            .map_err(io_err(format!("{dir}/lock")))?;
        if !tmip::sys::fd::try_lock_exclusive(lock.as_fd()).unwrap_or(false) {
            return Err(JournalError::Locked(dir.to_string()));
        }
        let mut report = LoadReport::default();
        let snap_path = dirp.join("snapshot");
        let mut snapshot_bytes = 0;
        let t = std::time::Instant::now();
        let ms = |t: std::time::Instant| t.elapsed().as_millis() as u64;
        match fs::read(&snap_path) {
            Ok(data) => {
                report.read_ms += ms(t);
                let t = std::time::Instant::now();
                snapshot_bytes = data.len() as u64;
                load_snapshot(&snap_path, &data, reg, &mut report)?;
                report.apply_ms += ms(t);
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(JournalError::Io(snap_path.display().to_string(), e)),
        }
        let snap_gen = report.generation;
        // Journals before the snapshot's generation are leftovers of a
        // compaction that stopped after its rename: their changes are in it.
        remove_stale_journals(&dirp, snap_gen);
        let gens: Vec<u64> = journal_gens(&dirp)?
            .into_iter()
            .filter(|&g| g >= snap_gen)
            .collect();
        for (i, &g) in gens.iter().enumerate() {
            let want = snap_gen + i as u64;
            if g != want {
                return Err(JournalError::Corrupt(format!(
                    "{}: journal.{want} is missing (journal.{g} follows the snapshot of generation {snap_gen}); refusing to start",
                    dirp.display()
                )));
            }
        }
        let last_gen = gens.last().copied().unwrap_or(snap_gen);
        let mut good_len = None;
        for &g in &gens {
            let jpath = dirp.join(format!("journal.{g}"));
            let t = std::time::Instant::now();
            let data = fs::read(&jpath).map_err(io_err(jpath.display()))?;
            report.read_ms += ms(t);
            let t = std::time::Instant::now();
            let (end, torn) = replay_journal(&jpath, &data, reg, &mut report)?;
            report.apply_ms += ms(t);
            if g != last_gen {
                // Only the journal being appended to can be torn by a crash;
                // an earlier one was complete when the next was started.
                if torn {
                    return Err(JournalError::Corrupt(format!(
                        "{}: damaged at offset {end} (not the last journal); refusing to start",
                        jpath.display()
                    )));
                }
                continue;
            }
            if torn {
                report.torn = Some((end as u64, (data.len() - end) as u64));
            }
            good_len = Some(end as u64);
        }
        report.generation = last_gen;
        let t = std::time::Instant::now();
        reg.rebuild_pools();
        report.rebuild_ms = ms(t);
        let jpath = dirp.join(format!("journal.{last_gen}"));
        let (file, bytes) = match good_len {
            // At least the header survived: append after the last whole record.
            Some(n) if n >= 16 => {
                let mut file = OpenOptions::new()
                    .read(true)
                    .write(true)
                    .open(&jpath)
                    .map_err(io_err(jpath.display()))?;
                file.set_len(n).map_err(io_err(jpath.display()))?;
                use std::io::Seek;
                file.seek(io::SeekFrom::Start(n))
                    .map_err(io_err(jpath.display()))?;
                (file, n)
            }
            // New, or torn inside its header (nothing in it was acknowledged).
            _ => {
                let f = create_journal(&jpath, last_gen)?;
                sync_dir(&dirp);
                (f, 16)
            }
        };
        Ok((
            Journal {
                dir: dirp,
                generation: last_gen,
                file,
                bytes,
                snapshot_bytes,
                buf: Vec::with_capacity(64 << 10),
                _lock: lock,
                compact_min: MIN_COMPACT_BYTES,
                child: None,
                syncs: 0,
                unsynced: false,
            },
            report,
        ))
    }

    /// Compact once the journal passes `bytes` (default 16 MB; tests lower it).
    pub fn set_compact_min(&mut self, bytes: u64) {
        self.compact_min = bytes.max(1024);
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }
    pub fn journal_bytes(&self) -> u64 {
        self.bytes
    }

    /// Encode `changes` (as the register holds them now) for the next commit.
    pub fn record(&mut self, reg: &Register, changes: &[Change]) {
        for c in changes {
            match *c {
                Change::Cn(i) => put_cn(&mut self.buf, reg, i),
                Change::Binding(mac) => match reg.get(tmip::addr::MacAddr(mac)) {
                    Some(r) => put_record(&mut self.buf, KIND_BINDING, &binding_payload(&r)),
                    None => put_record(&mut self.buf, KIND_REMOVE, &mac),
                },
            }
        }
    }

    pub fn pending(&self) -> bool {
        !self.buf.is_empty()
    }

    /// The records encoded since the last write (what the next commit
    /// writes): the primary streams them to its backup.
    pub fn recorded(&self) -> &[u8] {
        &self.buf
    }

    /// Queue records received from the primary, as they are, for the next
    /// commit.
    pub fn append_records(&mut self, data: &[u8]) {
        self.buf.extend_from_slice(data);
    }

    /// Write what was recorded and make it durable. Only after this returns
    /// Ok may the replies acknowledging those changes be sent.
    pub fn commit(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() && !self.unsynced {
            return Ok(());
        }
        self.write_buf()?;
        let what = || format!("{}/journal.{}", self.dir.display(), self.generation);
        self.syncs += 1;
        self.file
            .sync_data()
            .map_err(|e| JournalError::Io(what(), e))?;
        self.unsynced = false;
        Ok(())
    }

    /// Write what was recorded without waiting for the disk: for soft state
    /// only (where a station is, which the CNs re-announce), never for what
    /// must not be handed out twice (allocations, releases, CNs, expiry).
    /// The records are in the kernel's page cache at once, so an mlrd crash
    /// or restart loses nothing; only a power failure before the kernel's
    /// writeback (or before the next [`Journal::commit`], which syncs them
    /// too) can lose them. fdatasync on a disk shared with other work took
    /// 0.1-0.9 s here, and the handover waited for it (the parent's
    /// Redirect is pushed only after the round's journal commit).
    pub fn write_soft(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        self.write_buf()?;
        self.unsynced = true;
        Ok(())
    }

    fn write_buf(&mut self) -> Result<(), JournalError> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let what = || format!("{}/journal.{}", self.dir.display(), self.generation);
        if let Err(e) = self.file.write_all(&self.buf) {
            // Cut a partial write off so the file stays a run of whole records.
            let _ = self.file.set_len(self.bytes);
            use std::io::Seek;
            let _ = self.file.seek(io::SeekFrom::Start(self.bytes));
            self.buf.clear();
            return Err(JournalError::Io(what(), e));
        }
        self.bytes += self.buf.len() as u64;
        self.buf.clear();
        Ok(())
    }

    /// fdatasync calls so far.
    pub fn syncs(&self) -> u64 {
        self.syncs
    }

    /// Time to fold the journals into a snapshot? (Never while one is
    /// being written.)
    pub fn should_compact(&self) -> bool {
        self.child.is_none() && self.bytes > self.compact_min.max(self.snapshot_bytes)
    }

    /// Start journal G+1 (committing what is recorded first).
    fn rotate(&mut self) -> Result<(), JournalError> {
        self.commit()?;
        let gen = self.generation + 1;
        let jpath = self.dir.join(format!("journal.{gen}"));
        self.file = create_journal(&jpath, gen)?;
        sync_dir(&self.dir);
        self.generation = gen;
        self.bytes = 16;
        Ok(())
    }

    /// Compact now, in this process (at exit): waits for a background
    /// compaction first, then writes a snapshot of `reg`.
    pub fn compact(&mut self, reg: &Register) -> Result<(), JournalError> {
        self.wait_background();
        self.rotate()?;
        self.snapshot_bytes = write_snapshot(&self.dir, reg, self.generation)?;
        Ok(())
    }

    /// Compact without stalling the loop: start journal G+1 and fork a
    /// child that writes snapshot G+1 from its copy-on-write view of `reg`.
    /// Falls back to [`Journal::compact`] if fork fails. Call only from a
    /// single-threaded process (mlrd is).
    pub fn compact_in_background(&mut self, reg: &Register) -> Result<(), JournalError> {
        if self.child.is_some() {
            return Ok(());
        }
        self.rotate()?;
        let gen = self.generation;
        // The worker dies with mlrd (a stale child must never rename an old
        // snapshot over the one a restarted mlrd writes) and closes what it
        // inherited: the state-dir lock and the listening sockets are not
        // held past mlrd's death, so a restart can take both at once.
        let dir = self.dir.clone();
        let worker = process::spawn_worker(|| match write_snapshot(&dir, reg, gen) {
            Ok(_) => 0,
            Err(_) => 1,
        });
        match worker {
            Err(_) => {
                self.snapshot_bytes = write_snapshot(&self.dir, reg, gen)?;
                Ok(())
            }
            Ok(pid) => {
                self.child = Some((pid, std::time::Instant::now()));
                // What the snapshot will weigh, for the next threshold.
                self.snapshot_bytes = 24 + reg.binding_count() as u64 * 29;
                Ok(())
            }
        }
    }

    /// Reap a finished background compaction: `Some(Ok(took))`, or
    /// `Some(Err(why))` (the journals stay; the next compaction retries).
    pub fn poll_background(&mut self) -> Option<Result<std::time::Duration, String>> {
        self.reap(false)
    }

    /// Block until a background compaction ends (exit path).
    pub fn wait_background(&mut self) -> Option<Result<std::time::Duration, String>> {
        self.reap(true)
    }

    fn reap(&mut self, block: bool) -> Option<Result<std::time::Duration, String>> {
        let (pid, t) = self.child?;
        let r = process::reap(pid, block);
        if let Ok(None) = r {
            return None;
        }
        self.child = None;
        match r {
            Ok(Some(ChildExit::Exited(0))) => Some(Ok(t.elapsed())),
            Ok(Some(ChildExit::Exited(code))) => {
                Some(Err(format!("snapshot writer exited with code {code}")))
            }
            Ok(Some(ChildExit::Signalled(sig))) => {
                Some(Err(format!("snapshot writer killed by signal {sig}")))
            }
            Ok(None) => None,
            Err(e) => Some(Err(format!("waitpid: {e}"))),
        }
    }
}

fn sync_dir(dir: &Path) {
    if let Ok(d) = File::open(dir) {
        let _ = d.sync_all();
    }
}

/// Delete the journals older than generation `gen` (folded into its snapshot).
fn remove_stale_journals(dir: &Path, gen: u64) {
    let Ok(gens) = journal_gens(dir) else { return };
    for g in gens.into_iter().filter(|&g| g < gen) {
        let _ = fs::remove_file(dir.join(format!("journal.{g}")));
    }
}

pub fn encode_snapshot(reg: &Register, gen: u64) -> Vec<u8> {
    let n = reg.binding_count();
    let mut buf = Vec::with_capacity(32 + n * 29 + reg.cns().len() * 64);
    buf.extend_from_slice(SNAP_MAGIC);
    buf.extend_from_slice(&gen.to_le_bytes());
    buf.extend_from_slice(&(n as u64).to_le_bytes());
    for i in 0..reg.cns().len() {
        put_cn(&mut buf, reg, i as CnIdx);
    }
    for r in reg.bindings() {
        put_record(&mut buf, KIND_BINDING, &binding_payload(r));
    }
    put_record(&mut buf, KIND_END, &(n as u64).to_le_bytes());
    buf
}

fn apply(reg: &mut Register, kind: u8, p: &[u8], snapshot: bool) -> Result<(), String> {
    match kind {
        KIND_BINDING if snapshot => {
            reg.restore_unique(parse_binding(p).ok_or("bad binding record")?)
        }
        KIND_CN => {
            let c = parse_cn(p).ok_or("bad CN record")?;
            reg.restore_cn(c.idx, &c.name, c.addr, c.port, &c.pools);
        }
        KIND_BINDING => reg.restore_binding(parse_binding(p).ok_or("bad binding record")?),
        KIND_REMOVE => {
            let mac: [u8; 6] = p.try_into().map_err(|_| "bad removal record")?;
            reg.restore_removal(mac);
        }
        k => return Err(format!("unknown record kind {k}")),
    }
    Ok(())
}

fn load_snapshot(
    path: &Path,
    data: &[u8],
    reg: &mut Register,
    report: &mut LoadReport,
) -> Result<(), JournalError> {
    let corrupt = |m: &str| JournalError::Corrupt(format!("{}: {m}", path.display()));
    if data.len() < 24 || &data[..8] != SNAP_MAGIC {
        return Err(corrupt("not an mlrd snapshot"));
    }
    let gen = u64::from_le_bytes(data[8..16].try_into().unwrap_or_default());
    let count = u64::from_le_bytes(data[16..24].try_into().unwrap_or_default());
    reg.reserve(count.min(1 << 26) as usize);
    let mut ended = false;
    let mut err = None;
    let (_, damaged) = walk(data, 24, |kind, p| {
        if kind == KIND_END {
            ended = true;
            return false;
        }
        if let Err(e) = apply(reg, kind, p, true) {
            err = Some(e);
            return false;
        }
        true
    });
    if let Some(e) = err {
        return Err(corrupt(&e));
    }
    // The snapshot is renamed into place whole: damage is not a torn tail
    // but a broken disk or a foreign file. Refuse rather than lose bindings.
    if damaged || !ended {
        return Err(corrupt(
            "damaged (checksum or truncation); refusing to start",
        ));
    }
    report.generation = gen;
    report.snapshot_bindings = reg.binding_count() as u64;
    Ok(())
}

/// Apply replicated journal records (a `ReplRecords` body) to `reg`.
/// Damaged or unknown records are an error: the stream came over an
/// authenticated session, so damage means a bug, not a torn write.
pub fn apply_records(reg: &mut Register, data: &[u8]) -> Result<usize, String> {
    let (n, _, damaged) = apply_from(reg, data, 0)?;
    if damaged {
        return Err("damaged replication records".into());
    }
    Ok(n)
}

/// Apply every whole record of `data` from `off`: how many, where the walk
/// stopped, and whether it stopped on a damaged record.
fn apply_from(reg: &mut Register, data: &[u8], off: usize) -> Result<(usize, usize, bool), String> {
    let mut n = 0;
    let mut err = None;
    let (end, damaged) = walk(data, off, |kind, p| match apply(reg, kind, p, false) {
        Ok(()) => {
            n += 1;
            true
        }
        Err(e) => {
            err = Some(e);
            false
        }
    });
    match err {
        Some(e) => Err(e),
        None => Ok((n, end, damaged)),
    }
}

/// A register loaded from a replicated snapshot (the bytes of
/// [`encode_snapshot`]), with `template`'s settings.
pub fn register_from_snapshot(template: &Register, data: &[u8]) -> Result<Register, String> {
    let mut reg = template.empty_like();
    let mut report = LoadReport::default();
    load_snapshot(
        Path::new("replicated snapshot"),
        data,
        &mut reg,
        &mut report,
    )
    .map_err(|e| e.to_string())?;
    Ok(reg)
}

/// The epoch this register is in (state_dir/epoch; 1 when absent).
pub fn read_epoch(dir: &str) -> u32 {
    fs::read_to_string(Path::new(dir).join("epoch"))
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(1)
}

/// Store the epoch durably (temporary file, fsync, rename).
pub fn write_epoch(dir: &str, epoch: u32) -> Result<(), JournalError> {
    let dirp = Path::new(dir);
    let tmp = dirp.join("epoch.tmp");
    {
        let mut f = File::create(&tmp).map_err(io_err(tmp.display()))?;
        f.write_all(format!("{epoch}\n").as_bytes())
            .map_err(io_err(tmp.display()))?;
        f.sync_all().map_err(io_err(tmp.display()))?;
    }
    fs::rename(&tmp, dirp.join("epoch")).map_err(io_err("epoch rename"))?;
    sync_dir(dirp);
    Ok(())
}

fn replay_journal(
    path: &Path,
    data: &[u8],
    reg: &mut Register,
    report: &mut LoadReport,
) -> Result<(usize, bool), JournalError> {
    if data.len() < 16 {
        // Torn while writing its header: nothing was acknowledged from it.
        return Ok((0, !data.is_empty()));
    }
    if &data[..8] != JNL_MAGIC {
        return Err(JournalError::Corrupt(format!(
            "{}: not an mlrd journal",
            path.display()
        )));
    }
    let (n, end, damaged) = apply_from(reg, data, 16)
        .map_err(|e| JournalError::Corrupt(format!("{}: {e}", path.display())))?;
    report.journal_records += n as u64;
    Ok((end, damaged))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tmip::addr::MacAddr;

    struct TempDir(PathBuf);
    impl TempDir {
        fn new(tag: &str) -> TempDir {
            let p = std::env::temp_dir().join(format!(
                "mlrd-jtest-{tag}-{}-{:?}",
                std::process::id(),
                std::thread::current().id()
            ));
            let _ = fs::remove_dir_all(&p);
            TempDir(p)
        }
        fn s(&self) -> &str {
            self.0.to_str().unwrap()
        }
    }
    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn reg() -> Register {
        Register::new("n", 3600, 30)
    }
    fn mac(i: u32) -> MacAddr {
        let b = i.to_be_bytes();
        MacAddr([2, 0, b[0], b[1], b[2], b[3]])
    }
    fn setup(r: &mut Register) -> CnIdx {
        r.bind_cn(
            "n",
            "cn one",
            "10.9.0.1".parse().unwrap(),
            5554,
            &[AddrRange {
                first: "10.1.0.0".parse().unwrap(),
                last: "10.1.255.255".parse().unwrap(),
            }],
            0,
        )
        .unwrap()
        .0
    }
    fn flush(j: &mut Journal, r: &mut Register) {
        let ch = r.take_changes();
        j.record(r, &ch);
        j.commit().unwrap();
    }

    #[test]
    fn crc_matches_the_ieee_check_value() {
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926);
        assert_eq!(crc32(b""), 0);
        // Slicing must agree with the bitwise definition at every length.
        let data: Vec<u8> = (0..100u32).map(|i| (i * 37 + 11) as u8).collect();
        for n in 0..data.len() {
            let mut c = !0u32;
            for &b in &data[..n] {
                c ^= b as u32;
                for _ in 0..8 {
                    c = if c & 1 != 0 {
                        0xedb8_8320 ^ (c >> 1)
                    } else {
                        c >> 1
                    };
                }
            }
            assert_eq!(crc32(&data[..n]), !c, "length {n}");
        }
    }

    #[test]
    fn journal_replays_every_committed_change() {
        let d = TempDir::new("replay");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        for i in 0..100 {
            r.allocate(a, mac(i), 0).unwrap();
        }
        r.release(mac(7), a).unwrap();
        let cell = r.get(mac(8)).unwrap().cell30();
        r.move_to(mac(8), cell, a, 5).unwrap();
        flush(&mut j, &mut r);
        drop(j);

        let mut r2 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.torn, None);
        assert_eq!(r2.binding_count(), 99);
        assert!(r2.get(mac(7)).is_none());
        for i in (0..100).filter(|&i| i != 7) {
            assert_eq!(r2.get(mac(i)), r.get(mac(i)));
        }
        assert_eq!(r2.cn(a).unwrap().name, "cn one");
        assert!(
            !r2.cn(a).unwrap().up,
            "restored CNs are down until they bind"
        );
    }

    #[test]
    fn a_torn_last_record_is_ignored_and_cut_off() {
        let d = TempDir::new("torn");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        for i in 0..10 {
            r.allocate(a, mac(i), 0).unwrap();
        }
        flush(&mut j, &mut r);
        drop(j);
        let jp = d.0.join("journal.0");
        let full = fs::read(&jp).unwrap();
        // Half of one more record, as a crash mid-write leaves it.
        let mut extra = Vec::new();
        put_record(&mut extra, KIND_REMOVE, &mac(3).0);
        let mut torn = full.clone();
        torn.extend_from_slice(&extra[..extra.len() - 3]);
        fs::write(&jp, &torn).unwrap();

        let mut r2 = reg();
        let (mut j2, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.torn, Some((full.len() as u64, extra.len() as u64 - 3)));
        assert_eq!(r2.binding_count(), 10);
        // Appending resumes at the cut: the next open sees clean records.
        r2.bind_cn("n", "cn one", "10.9.0.1".parse().unwrap(), 5554, &[], 0)
            .unwrap();
        r2.release(mac(1), a).unwrap();
        flush(&mut j2, &mut r2);
        drop(j2);
        let mut r3 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r3).unwrap();
        assert_eq!(rep.torn, None);
        assert_eq!(r3.binding_count(), 9);

        // A flipped bit in the last record is caught by the checksum.
        let mut data = fs::read(&jp).unwrap();
        let n = data.len();
        data[n - 6] ^= 0x40;
        fs::write(&jp, &data).unwrap();
        let mut r4 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r4).unwrap();
        assert!(rep.torn.is_some());
        assert_eq!(r4.binding_count(), 10, "the damaged removal is not applied");
    }

    #[test]
    fn a_journal_torn_inside_its_header_is_started_again() {
        let d = TempDir::new("tornhdr");
        fs::create_dir_all(&d.0).unwrap();
        fs::write(d.0.join("journal.0"), &JNL_MAGIC[..5]).unwrap();
        let mut r = reg();
        let (mut j, rep) = Journal::open(d.s(), &mut r).unwrap();
        assert!(rep.torn.is_some());
        let a = setup(&mut r);
        r.allocate(a, mac(1), 0).unwrap();
        flush(&mut j, &mut r);
        drop(j);
        let mut r2 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.torn, None);
        assert_eq!(r2.binding_count(), 1);
    }

    #[test]
    fn compaction_keeps_everything_and_restarts_the_journal() {
        let d = TempDir::new("compact");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        for i in 0..50 {
            r.allocate(a, mac(i), 0).unwrap();
        }
        flush(&mut j, &mut r);
        j.compact(&r).unwrap();
        assert_eq!(j.generation(), 1);
        assert!(!d.0.join("journal.0").exists());
        r.release(mac(0), a).unwrap();
        flush(&mut j, &mut r);
        drop(j);

        let mut r2 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.generation, 1);
        assert_eq!(rep.snapshot_bindings, 50);
        assert_eq!(rep.journal_records, 1);
        assert_eq!(r2.binding_count(), 49);
        // Pools are rebuilt: a new allocation never reuses a held cell.
        r2.bind_cn(
            "n",
            "cn one",
            "10.9.0.1".parse().unwrap(),
            5554,
            &[AddrRange {
                first: "10.1.0.0".parse().unwrap(),
                last: "10.1.255.255".parse().unwrap(),
            }],
            0,
        )
        .unwrap();
        let held: std::collections::HashSet<u32> = r2.bindings().map(|b| b.cell).collect();
        for i in 100..200 {
            let (b, _) = r2.allocate(a, mac(i), 0).unwrap();
            assert!(!held.contains(&b.cell));
        }
    }

    #[test]
    fn journals_after_an_unfinished_compaction_are_all_replayed() {
        let d = TempDir::new("multi");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        r.allocate(a, mac(1), 0).unwrap();
        flush(&mut j, &mut r);
        j.compact(&r).unwrap(); // snapshot 1
        r.allocate(a, mac(2), 0).unwrap();
        flush(&mut j, &mut r);
        // Two compactions whose snapshot writer never finished.
        j.rotate().unwrap();
        r.allocate(a, mac(3), 0).unwrap();
        r.release(mac(1), a).unwrap();
        flush(&mut j, &mut r);
        j.rotate().unwrap();
        r.allocate(a, mac(4), 0).unwrap();
        flush(&mut j, &mut r);
        assert_eq!(j.generation(), 3);
        drop(j);
        let mut r2 = reg();
        let (j2, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.generation, 3);
        assert_eq!(j2.generation(), 3);
        assert_eq!(rep.journal_records, 4);
        for i in 1..5 {
            assert_eq!(r2.get(mac(i)), r.get(mac(i)), "mac {i}");
        }
        assert_eq!(r2.binding_count(), 3);
        drop(j2);

        // A gap in the chain, or damage in a journal that is not the last,
        // is corruption: refuse rather than start without those changes.
        let j2p = d.0.join("journal.2");
        let saved = fs::read(&j2p).unwrap();
        let mut cut = saved.clone();
        cut.truncate(saved.len() - 3);
        fs::write(&j2p, &cut).unwrap();
        let e = Journal::open(d.s(), &mut reg()).err().unwrap();
        assert!(e.to_string().contains("not the last journal"), "{e}");
        fs::remove_file(&j2p).unwrap();
        let e = Journal::open(d.s(), &mut reg()).err().unwrap();
        assert!(e.to_string().contains("journal.2 is missing"), "{e}");
        fs::write(&j2p, &saved).unwrap();
        assert!(Journal::open(d.s(), &mut reg()).is_ok());
    }

    #[test]
    fn a_damaged_snapshot_refuses_to_start() {
        let d = TempDir::new("badsnap");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        r.allocate(a, mac(1), 0).unwrap();
        flush(&mut j, &mut r);
        j.compact(&r).unwrap();
        drop(j);
        let sp = d.0.join("snapshot");
        let mut data = fs::read(&sp).unwrap();
        let n = data.len();
        data.truncate(n - 5);
        fs::write(&sp, &data).unwrap();
        let mut r2 = reg();
        let e = Journal::open(d.s(), &mut r2).err().unwrap();
        assert!(e.to_string().contains("damaged"), "{e}");
    }

    #[test]
    fn a_second_opener_of_the_same_dir_is_refused() {
        let d = TempDir::new("lock");
        let mut r = reg();
        let (_j, _) = Journal::open(d.s(), &mut r).unwrap();
        let mut r2 = reg();
        let e = Journal::open(d.s(), &mut r2).err().unwrap();
        assert!(matches!(e, JournalError::Locked(_)), "{e}");
    }

    #[test]
    fn a_leftover_journal_after_a_compaction_crash_is_dropped() {
        let d = TempDir::new("leftover");
        let mut r = reg();
        let (mut j, _) = Journal::open(d.s(), &mut r).unwrap();
        let a = setup(&mut r);
        r.allocate(a, mac(1), 0).unwrap();
        flush(&mut j, &mut r);
        let old = fs::read(d.0.join("journal.0")).unwrap();
        j.compact(&r).unwrap();
        drop(j);
        // Crash after the rename, before journal.0 was deleted.
        fs::write(d.0.join("journal.0"), old).unwrap();
        let mut r2 = reg();
        let (_, rep) = Journal::open(d.s(), &mut r2).unwrap();
        assert_eq!(rep.generation, 1);
        assert_eq!(r2.binding_count(), 1);
        assert!(!d.0.join("journal.0").exists());
    }
}
