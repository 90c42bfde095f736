//! adbdump: reads an apk v3 file (package or index, compressed or not).
//!
//!   adbdump [--key PUB.pem]... FILE     the tree, as `apk adbdump` prints it
//!                                       (signatures by a given key: OK)
//!   adbdump --verify PUB.pem FILE       exit 0 only if a signature block
//!                                       verifies with the key
//!   adbdump --list FILE                 one line per path:
//!                                       MODE USER:GROUP SIZE MTIME SHA256 PATH
//!                                       after checking every data block
//!   adbdump --script NAME FILE          a package script's text
//!
//! A malformed file is an error (exit 1, message on stderr), never a crash.

use std::io::Write;
use std::process::ExitCode;

use tmip_apk::reader::{uncompress, Block, Container};
use tmip_apk::{package, sign, Error, Result, INFLATE_LIMIT};

fn usage() -> ExitCode {
    eprintln!(
        "usage: adbdump [--key PUB.pem]... FILE | --verify PUB.pem FILE | --list FILE | --script NAME FILE"
    );
    ExitCode::from(2)
}

fn read(path: &str) -> Result<Vec<u8>> {
    std::fs::read(path).map_err(|e| Error::Io(path.into(), e))
}

fn key(path: &str) -> Result<p256::PublicKey> {
    let pem = std::fs::read_to_string(path).map_err(|e| Error::Io(path.into(), e))?;
    sign::public_key_from_pem(&pem)
}

enum Mode {
    Dump(Vec<String>),
    Verify(String),
    List,
    Script(String),
}

fn run(mode: Mode, file: &str) -> Result<Vec<u8>> {
    let bytes = read(file)?;
    let (plain, _) = uncompress(&bytes, INFLATE_LIMIT)?;
    let c = Container::parse(&plain)?;
    match mode {
        Mode::Dump(keys) => {
            let keys = keys.iter().map(|k| key(k)).collect::<Result<Vec<_>>>()?;
            tmip_apk::dump::dump(&c, &keys)
        }
        Mode::Verify(k) => {
            let k = key(&k)?;
            let mut last = Error::Signature("the file has no signature block".into());
            for b in &c.blocks {
                if let Block::Sig(s) = b {
                    match sign::verify(&k, c.schema, c.db.buf, s) {
                        Ok(()) => return Ok(format!("{file}: signature OK\n").into_bytes()),
                        Err(e) => last = e,
                    }
                }
            }
            Err(last)
        }
        Mode::List => {
            let mut out = String::new();
            for e in package::read_entries(&c)? {
                let hash: String = e.hash.iter().map(|b| format!("{b:02x}")).collect();
                let hash = if hash.is_empty() {
                    "-".to_string()
                } else {
                    hash
                };
                let path = match &e.target {
                    Some(t) => format!("{} -> {t}", e.path),
                    None => e.path,
                };
                out.push_str(&format!(
                    "{:04o} {}:{} {} {} {} {}\n",
                    e.mode, e.user, e.group, e.size, e.mtime, hash, path
                ));
            }
            Ok(out.into_bytes())
        }
        Mode::Script(name) => package::script(&c, &name)?
            .map(<[u8]>::to_vec)
            .ok_or_else(|| Error::Input(format!("{file} has no {name} script"))),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut keys = Vec::new();
    let mut mode = None;
    let mut file = None;
    let mut it = args.into_iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--key" => match it.next() {
                Some(k) => keys.push(k),
                None => return usage(),
            },
            "--verify" | "--script" => match (it.next(), mode.is_none()) {
                (Some(v), true) => {
                    mode = Some(if a == "--verify" {
                        Mode::Verify(v)
                    } else {
                        Mode::Script(v)
                    })
                }
                _ => return usage(),
            },
            "--list" if mode.is_none() => mode = Some(Mode::List),
            f if !f.starts_with("--") && file.is_none() => file = Some(a),
            _ => return usage(),
        }
    }
    let Some(file) = file else { return usage() };
    let mode = match mode {
        None => Mode::Dump(keys),
        Some(_) if !keys.is_empty() => return usage(),
        Some(m) => m,
    };
    match run(mode, &file) {
        Ok(out) => {
            if std::io::stdout().write_all(&out).is_err() {
                return ExitCode::FAILURE;
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("adbdump: {file}: {e}");
            ExitCode::FAILURE
        }
    }
}
