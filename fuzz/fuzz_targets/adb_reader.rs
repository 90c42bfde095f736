//! Feeds arbitrary bytes to the apk v3 (ADB) reader of `tools/apk`: inflate
//! (`ADBd`), block framing, the value tree as `adbdump` prints it, the
//! package path/data-block check, a script lookup, signature verification
//! against a fixed key, and the index writer's copy of a package's info.
//! Every malformed input must come back as an error, never a panic, and
//! stay within the inflate limit and the dump's budget.
//!
//! Seed corpus: `corpus/adb_reader/`, the apk-tools 3.0.6 reference files of
//! `tools/apk/tests/data` (compressed, and inflated to `ADB.` form).
#![no_main]

use std::sync::OnceLock;

use libfuzzer_sys::fuzz_target;
use tmip_apk::index::IndexEntry;
use tmip_apk::reader::{uncompress, Container};
use tmip_apk::{dump, package, sign};

fn key() -> &'static sign::PublicKey {
    static KEY: OnceLock<sign::PublicKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let pem = include_str!("../../tools/apk/tests/data/sample-key.pub.pem");
        sign::public_key_from_pem(pem).expect("sample key")
    })
}

fuzz_target!(|data: &[u8]| {
    if let Ok((plain, _)) = uncompress(data, 1 << 20) {
        if let Ok(c) = Container::parse(&plain) {
            let _ = dump::dump(&c, std::slice::from_ref(key()));
            let _ = package::read_entries(&c);
            let _ = package::script(&c, "post-install");
        }
        // the inflated form, so the 1 MiB limit above bounds the copy too
        let _ = tmip_apk::index::build(&[IndexEntry { file: &plain }], None, None);
    }
});
