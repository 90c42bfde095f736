//! Golden tests against files made by the real apk-tools 3.0.6 (`apk mkpkg`,
//! `apk mkndx`, `apk adbdump`; the command lines are in tests/data/README.md).
//! The files are copied from the project's shared/testdata/apk-v3 into
//! tests/data, so these tests need nothing outside the repository.
//!
//! - the writer reproduces the uncompressed package byte for byte, and the
//!   compressed ones inflate to the same bytes (deflate itself may differ);
//! - the reader dumps every reference file exactly as `apk adbdump` did;
//! - the index writer gives the reference index's ADB block byte for byte,
//!   and the reader verifies the reference signature with the sample key and
//!   rejects it with another key or any single flipped byte.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;

use tmip_apk::index::{self, IndexEntry};
use tmip_apk::package::{self, PackageSpec};
use tmip_apk::reader::{uncompress, Block, Container};
use tmip_apk::{dump, sign, INFLATE_LIMIT};

fn data(name: &str) -> Vec<u8> {
    let p = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/data")
        .join(name);
    fs::read(&p).unwrap_or_else(|e| panic!("reference file {} missing: {e}", p.display()))
}

fn text(name: &str) -> String {
    String::from_utf8(data(name)).unwrap()
}

fn inflate(file: &[u8]) -> Vec<u8> {
    uncompress(file, INFLATE_LIMIT).unwrap().0.into_owned()
}

fn dump_of(file: &[u8], keys: &[sign::PublicKey]) -> String {
    String::from_utf8(tmip_apk::dump_file(file, keys).unwrap()).unwrap()
}

/// A scratch directory removed on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new(tag: &str) -> Self {
        let p = std::env::temp_dir().join(format!("tmip-apk-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&p);
        fs::create_dir_all(&p).unwrap();
        Scratch(p)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// The inputs of hello-1.2.3-r1.apk: `root/`, `post-install`,
/// `pre-deinstall`, with the tar's modes.
fn hello_inputs(dir: &Path) {
    let tgz = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/hello-input-tree.tar.gz");
    let st = Command::new("tar")
        .arg("-xpzf")
        .arg(&tgz)
        .arg("-C")
        .arg(dir)
        .status()
        .expect("tar");
    assert!(st.success(), "tar -xpzf {}", tgz.display());
}

fn hello_spec(dir: &Path) -> PackageSpec {
    let info = [
        ("name", "hello"),
        ("version", "1.2.3-r1"),
        ("description", "Golden sample package"),
        ("arch", "x86_64"),
        ("license", "GPL-2.0-or-later"),
        ("origin", "feeds/sample/hello"),
        ("url", "https://example.invalid/hello"),
        ("maintainer", "Sample <sample@example.invalid>"),
    ];
    PackageSpec {
        info: info
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scripts: ["post-install", "pre-deinstall"]
            .iter()
            .map(|s| (s.to_string(), fs::read(dir.join(s)).unwrap()))
            .collect(),
        files: Some(dir.join("root")),
        mtime: Some(0),
    }
}

/// hello-common: `etc/config/common` (0600) holding `config x 'y'`, a
/// dependency on hello, noarch, no scripts (the tree is not in the tarball;
/// its one file is in the reference package's data block).
fn common_spec(dir: &Path) -> PackageSpec {
    let root = dir.join("common-root");
    fs::create_dir_all(root.join("etc/config")).unwrap();
    fs::write(root.join("etc/config/common"), "config x 'y'\n").unwrap();
    for (p, mode) in [
        ("", 0o755),
        ("etc", 0o755),
        ("etc/config", 0o755),
        ("etc/config/common", 0o600),
    ] {
        fs::set_permissions(root.join(p), fs::Permissions::from_mode(mode)).unwrap();
    }
    let info = [
        ("name", "hello-common"),
        ("version", "1.2.3-r1"),
        ("description", "Golden sample, noarch"),
        ("arch", "noarch"),
        ("license", "GPL-2.0-or-later"),
        ("depends", "hello"),
    ];
    PackageSpec {
        info: info
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        scripts: Vec::new(),
        files: Some(root),
        mtime: Some(0),
    }
}

#[test]
fn uncompressed_package_is_byte_identical() {
    let s = Scratch::new("common");
    let ours = package::build(&common_spec(&s.0)).unwrap();
    let theirs = data("hello-common-1.2.3-r1.uncompressed.apk");
    assert_eq!(
        ours, theirs,
        "hello-common-1.2.3-r1.uncompressed.apk differs"
    );
}

#[test]
fn compressed_packages_decode_to_the_reference() {
    let s = Scratch::new("hello");
    hello_inputs(&s.0);
    let hello = package::compress(&package::build(&hello_spec(&s.0)).unwrap());
    assert_eq!(&hello[..4], b"ADBd");
    assert_eq!(dump_of(&hello, &[]), text("hello-1.2.3-r1.apk.adbdump.txt"));
    // stronger than the trees: the inflated bytes are the same
    assert_eq!(inflate(&hello), inflate(&data("hello-1.2.3-r1.apk")));

    let common = package::compress(&package::build(&common_spec(&s.0)).unwrap());
    assert_eq!(
        dump_of(&common, &[]),
        text("hello-common-1.2.3-r1.apk.adbdump.txt")
    );
    assert_eq!(
        inflate(&common),
        data("hello-common-1.2.3-r1.uncompressed.apk")
    );
}

#[test]
fn reader_dumps_the_reference_files_as_apk_adbdump() {
    for (file, txt) in [
        ("hello-1.2.3-r1.apk", "hello-1.2.3-r1.apk.adbdump.txt"),
        (
            "hello-common-1.2.3-r1.apk",
            "hello-common-1.2.3-r1.apk.adbdump.txt",
        ),
        (
            "hello-common-1.2.3-r1.uncompressed.apk",
            "hello-common-1.2.3-r1.apk.adbdump.txt",
        ),
        ("packages.adb", "packages.adb.adbdump.txt"),
    ] {
        assert_eq!(dump_of(&data(file), &[]), text(txt), "{file}");
    }
}

#[test]
fn reader_checks_the_reference_package_contents() {
    let file = data("hello-1.2.3-r1.apk");
    let plain = inflate(&file);
    let c = Container::parse(&plain).unwrap();
    let entries = package::read_entries(&c).unwrap();
    let f = entries
        .iter()
        .find(|e| e.path == "/etc/config/hello")
        .unwrap();
    assert_eq!((f.mode, f.user.as_str(), f.size), (0o600, "root", 40));
    let names: Vec<_> = entries.iter().map(|e| e.path.as_str()).collect();
    assert_eq!(names.len(), 15, "{names:?}");
    assert!(package::script(&c, "post-install")
        .unwrap()
        .unwrap()
        .ends_with(b"default_postinst\n"));
    assert!(package::script(&c, "post-upgrade").unwrap().is_none());

    // a file whose data block no longer matches its hash is refused
    let mut bad = plain.clone();
    let at = bad.windows(12).position(|w| w == b"option enabl").unwrap();
    bad[at] ^= 0x20;
    let c = Container::parse(&bad).unwrap();
    assert!(package::read_entries(&c).is_err());
}

fn sample_public() -> sign::PublicKey {
    sign::public_key_from_pem(&text("sample-key.pub.pem")).unwrap()
}

fn verifies(plain: &[u8], key: &sign::PublicKey) -> bool {
    let Ok(c) = Container::parse(plain) else {
        return false;
    };
    c.blocks.iter().any(|b| match b {
        Block::Sig(s) => sign::verify(key, c.schema, c.db.buf, s).is_ok(),
        _ => false,
    })
}

#[test]
fn reference_index_verifies_with_the_sample_key_only() {
    let key = sample_public();
    let plain = inflate(&data("packages.adb"));
    assert!(verifies(&plain, &key));
    let d = dump_of(&data("packages.adb"), std::slice::from_ref(&key));
    assert!(d.ends_with("..: OK\n"), "{d}");

    // another key
    let mut n = 0u8;
    let other = sign::generate_key(|| {
        n += 1;
        Ok([n; 32])
    })
    .unwrap();
    assert!(!verifies(&plain, &other.public_key()));

    // one flipped byte anywhere in what is signed (schema id, ADB block) or
    // in the signature block; the zero padding after a block is not signed
    let c = Container::parse(&plain).unwrap();
    let adb_end = 12 + c.db.buf.len();
    let sig_start = adb_end.div_ceil(8) * 8;
    let Block::Sig(sig) = c.blocks[0] else {
        panic!("no signature block")
    };
    let signed: Vec<usize> = (4..adb_end)
        .chain(sig_start..sig_start + 4 + sig.len())
        .collect();
    assert_eq!(signed.len(), 4 + (4 + 280) + (4 + 88));
    for &i in &signed {
        let mut bad = plain.clone();
        bad[i] ^= 0x01;
        assert!(!verifies(&bad, &key), "flipped byte {i} still verifies");
    }
    // ... or in the compressed file as stored: it either does not inflate,
    // does not verify, or inflates to the same signed bytes
    let file = data("packages.adb");
    for i in 0..file.len() {
        let mut bad = file.clone();
        bad[i] ^= 0x01;
        if let Ok((p, _)) = uncompress(&bad, INFLATE_LIMIT) {
            if verifies(&p, &key) {
                assert!(
                    signed.iter().all(|&j| p.get(j) == plain.get(j)),
                    "flipped byte {i}"
                );
            }
        }
    }
}

#[test]
fn index_of_the_reference_package_matches_apk_mkndx() {
    let secret = sign::private_key_from_pem(&text("sample-key.pem")).unwrap();
    let pkg = data("hello-1.2.3-r1.apk");
    let ours = index::build(&[IndexEntry { file: &pkg }], Some(&secret), None).unwrap();
    let theirs = inflate(&data("packages.adb"));
    let (a, b) = (
        Container::parse(&ours).unwrap(),
        Container::parse(&theirs).unwrap(),
    );
    assert_eq!(a.db.buf, b.db.buf, "the index ADB blocks differ");
    assert!(verifies(&ours, &sample_public()));
    // the dump is apk's but for the signature bytes (ECDSA nonces differ)
    let strip = |d: String| {
        d.lines()
            .filter(|l| !l.starts_with("# sig"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        strip(dump_of(&ours, &[])),
        strip(text("packages.adb.adbdump.txt"))
    );
    // deterministic (RFC 6979): same key, same bytes
    let again = index::build(&[IndexEntry { file: &pkg }], Some(&secret), None).unwrap();
    assert_eq!(ours, again);
}

/// Parses, dumps, and checks a package's data blocks or an index's
/// signature (by the sample key): what a complete file passes.
fn complete(file: &[u8]) -> tmip_apk::Result<()> {
    let (plain, _) = uncompress(file, INFLATE_LIMIT)?;
    let c = Container::parse(&plain)?;
    dump::dump(&c, &[])?;
    if c.schema == tmip_apk::wire::SCHEMA_PACKAGE {
        package::read_entries(&c).map(|_| ())
    } else if verifies(&plain, &sample_public()) {
        Ok(())
    } else {
        Err(tmip_apk::Error::Signature("unsigned".into()))
    }
}

#[test]
fn every_truncation_of_the_references_is_an_error() {
    for file in [
        "hello-1.2.3-r1.apk",
        "hello-common-1.2.3-r1.apk",
        "hello-common-1.2.3-r1.uncompressed.apk",
        "packages.adb",
    ] {
        let bytes = data(file);
        complete(&bytes).unwrap();
        let plain = inflate(&bytes);
        complete(&plain).unwrap();
        for n in 0..plain.len() {
            assert!(
                complete(&plain[..n]).is_err(),
                "{file} inflated, cut at {n} of {}",
                plain.len()
            );
        }
        for n in 0..bytes.len() {
            assert!(
                complete(&bytes[..n]).is_err(),
                "{file} cut at {n} of {}",
                bytes.len()
            );
        }
    }
}

#[test]
fn writer_refuses_what_apk_refuses() {
    let s = Scratch::new("refuse");
    let mut spec = common_spec(&s.0);
    spec.info.push(("version".into(), "0.1.0-1".into()));
    assert!(
        package::build(&spec).is_err(),
        "opkg-style version accepted"
    );
    let mut spec = common_spec(&s.0);
    spec.info.push(("installed-size".into(), "1".into()));
    assert!(package::build(&spec).is_err());
    let mut spec = common_spec(&s.0);
    spec.info.retain(|(k, _)| k != "arch");
    assert!(package::build(&spec).is_err());
    let mut spec = common_spec(&s.0);
    spec.scripts
        .push(("postinst".into(), b"#!/bin/sh\n".to_vec()));
    assert!(package::build(&spec).is_err());
}

/// The copies in tests/data are the project's reference files: the nearest
/// `shared/testdata/apk-v3` above the repository (CI clones the repository
/// beside a copy of shared/) holds the same bytes. Fails, never skips, when
/// that folder is missing.
#[test]
fn copies_match_the_shared_reference_files() {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let shared = here
        .ancestors()
        .map(|a| a.join("shared/testdata/apk-v3"))
        .find(|p| p.is_dir())
        .unwrap_or_else(|| {
            panic!(
                "no shared/testdata/apk-v3 in any folder above {}",
                here.display()
            )
        });
    for name in [
        "hello-1.2.3-r1.apk",
        "hello-1.2.3-r1.apk.adbdump.txt",
        "hello-common-1.2.3-r1.apk",
        "hello-common-1.2.3-r1.apk.adbdump.txt",
        "hello-common-1.2.3-r1.uncompressed.apk",
        "hello-input-tree.tar.gz",
        "packages.adb",
        "packages.adb.adbdump.txt",
        "sample-key.pem",
        "sample-key.pub.pem",
    ] {
        let theirs = fs::read(shared.join(name))
            .unwrap_or_else(|e| panic!("{}: {e}", shared.join(name).display()));
        assert_eq!(
            data(name),
            theirs,
            "tests/data/{name} differs from {}",
            shared.display()
        );
    }
}
