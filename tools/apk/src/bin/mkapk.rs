//! mkapk: writes apk v3 packages and signed indexes (OpenWrt 25.12+).
//!
//!   mkapk pkg --info KEY:VALUE... [--script TYPE:FILE]... [--files DIR]
//!             [--compression deflate|none] --output FILE
//!   mkapk index [--sign-key KEY.pem] [--description TEXT]
//!             [--compression deflate|none] --output FILE PKG.apk...
//!   mkapk keygen --private KEY.pem --public KEY.pub.pem
//!   mkapk pubkey --sign-key KEY.pem          (prints the public key)
//!   mkapk check-version VERSION...           (exit 1 if apk refuses one)
//!
//! `pkg` takes the same --info/--script/--files as `apk mkpkg`; with
//! SOURCE_DATE_EPOCH set every file's mtime is that value. Owners are
//! always root. `index` is `apk mkndx`. Keys are ECDSA P-256 in PEM.

use std::fs;
use std::io::Read;
use std::process::ExitCode;

use tmip_apk::index::IndexEntry;
use tmip_apk::package::{self, PackageSpec};
use tmip_apk::{sign, Error, Result};

fn usage() -> ExitCode {
    eprintln!(
        "usage: mkapk pkg --info KEY:VALUE... [--script TYPE:FILE]... [--files DIR] [--compression deflate|none] --output FILE\n\
         \x20      mkapk index [--sign-key KEY.pem] [--description TEXT] [--compression deflate|none] --output FILE PKG...\n\
         \x20      mkapk keygen --private KEY.pem --public KEY.pub.pem\n\
         \x20      mkapk pubkey --sign-key KEY.pem\n\
         \x20      mkapk check-version VERSION..."
    );
    ExitCode::from(2)
}

fn read(path: &str) -> Result<Vec<u8>> {
    fs::read(path).map_err(|e| Error::Io(path.into(), e))
}

fn read_text(path: &str) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::Io(path.into(), e))
}

/// Writes via a temporary name, so a failed run leaves no partial file.
fn write(path: &str, bytes: &[u8]) -> Result<()> {
    let tmp = format!("{path}.tmp");
    fs::write(&tmp, bytes).map_err(|e| Error::Io(tmp.clone(), e))?;
    fs::rename(&tmp, path).map_err(|e| Error::Io(path.into(), e))
}

fn split_kv(s: &str) -> Result<(String, String)> {
    s.split_once(':')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .ok_or_else(|| Error::Input(format!("missing key or value: {s}")))
}

struct Args {
    opts: Vec<(String, String)>,
    flags: Vec<String>,
    rest: Vec<String>,
}

fn parse_args(args: &[String], with_value: &[&str]) -> Option<Args> {
    let mut a = Args {
        opts: Vec::new(),
        flags: Vec::new(),
        rest: Vec::new(),
    };
    let mut it = args.iter();
    while let Some(x) = it.next() {
        if with_value.contains(&x.as_str()) {
            a.opts.push((x.clone(), it.next()?.clone()));
        } else if x.starts_with("--") {
            a.flags.push(x.clone());
        } else {
            a.rest.push(x.clone());
        }
    }
    Some(a)
}

impl Args {
    fn all<'a>(&'a self, k: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.opts
            .iter()
            .filter(move |(o, _)| o == k)
            .map(|(_, v)| v.as_str())
    }

    fn one<'a>(&'a self, k: &'a str) -> Option<&'a str> {
        self.all(k).last()
    }
}

fn compressed(a: &Args, plain: Vec<u8>) -> Result<Vec<u8>> {
    match a.one("--compression").unwrap_or("deflate") {
        "deflate" => Ok(package::compress(&plain)),
        "none" => Ok(plain),
        c => Err(Error::Input(format!("unknown compression {c}"))),
    }
}

fn source_date_epoch() -> Result<Option<u64>> {
    match std::env::var("SOURCE_DATE_EPOCH") {
        Ok(s) if !s.is_empty() => s
            .parse()
            .map(Some)
            .map_err(|_| Error::Input(format!("SOURCE_DATE_EPOCH={s} is not a number"))),
        _ => Ok(None),
    }
}

fn pkg(a: &Args) -> Result<()> {
    let out = a
        .one("--output")
        .ok_or(Error::Input("--output is required".into()))?;
    let mut spec = PackageSpec {
        files: a.one("--files").map(Into::into),
        mtime: source_date_epoch()?,
        ..Default::default()
    };
    for i in a.all("--info") {
        spec.info.push(split_kv(i)?);
    }
    for s in a.all("--script") {
        let (kind, file) = split_kv(s)?;
        spec.scripts.push((kind, read(&file)?));
    }
    let plain = package::build(&spec)?;
    write(out, &compressed(a, plain)?)
}

fn index(a: &Args) -> Result<()> {
    let out = a
        .one("--output")
        .ok_or(Error::Input("--output is required".into()))?;
    let key = match a.one("--sign-key") {
        Some(k) => Some(sign::private_key_from_pem(&read_text(k)?)?),
        None => None,
    };
    let files = a.rest.iter().map(|p| read(p)).collect::<Result<Vec<_>>>()?;
    let entries: Vec<IndexEntry> = files.iter().map(|f| IndexEntry { file: f }).collect();
    let plain = tmip_apk::index::build(&entries, key.as_ref(), a.one("--description"))?;
    write(out, &compressed(a, plain)?)
}

fn urandom() -> Result<[u8; 32]> {
    let mut b = [0; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut f| f.read_exact(&mut b))
        .map_err(|e| Error::Io("/dev/urandom".into(), e))?;
    Ok(b)
}

fn keygen(a: &Args) -> Result<()> {
    let (Some(private), Some(public)) = (a.one("--private"), a.one("--public")) else {
        return Err(Error::Input("--private and --public are required".into()));
    };
    let key = sign::generate_key(urandom)?;
    let pem = sign::private_key_to_pem(&key)?;
    let tmp = format!("{private}.tmp");
    {
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| Error::Io(tmp.clone(), e))?;
        std::io::Write::write_all(&mut f, pem.as_bytes()).map_err(|e| Error::Io(tmp.clone(), e))?;
    }
    fs::rename(&tmp, private).map_err(|e| Error::Io(private.into(), e))?;
    write(
        public,
        sign::public_key_to_pem(&key.public_key())?.as_bytes(),
    )
}

fn pubkey(a: &Args) -> Result<()> {
    let k = a
        .one("--sign-key")
        .ok_or(Error::Input("--sign-key is required".into()))?;
    let key = sign::private_key_from_pem(&read_text(k)?)?;
    print!("{}", sign::public_key_to_pem(&key.public_key())?);
    Ok(())
}

fn check_version(a: &Args) -> Result<()> {
    let bad: Vec<&String> = a
        .rest
        .iter()
        .filter(|v| !tmip_apk::version::is_valid(v))
        .collect();
    if a.rest.is_empty() || !bad.is_empty() {
        return Err(Error::Input(format!("not valid apk versions: {bad:?}")));
    }
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let Some((cmd, rest)) = args.split_first() else {
        return usage();
    };
    let with_value = [
        "--info",
        "--script",
        "--files",
        "--output",
        "--compression",
        "--sign-key",
        "--description",
        "--private",
        "--public",
    ];
    let Some(a) = parse_args(rest, &with_value) else {
        return usage();
    };
    if !a.flags.is_empty() || (cmd != "index" && cmd != "check-version" && !a.rest.is_empty()) {
        return usage();
    }
    let r = match cmd.as_str() {
        "pkg" => pkg(&a),
        "index" => index(&a),
        "keygen" => keygen(&a),
        "pubkey" => pubkey(&a),
        "check-version" => check_version(&a),
        _ => return usage(),
    };
    match r {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("mkapk {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}
