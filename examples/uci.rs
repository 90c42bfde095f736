//! A stand-in for OpenWrt's `uci` CLI, as far as the init-script tests need
//! it: `uci [-c CONFDIR] [-S] [-n] [-q] [-P DIR] export PACKAGE`, printed by
//! the core library's parser (`tmip::config::uci`), so the tests see the
//! section names (`cfgNNHHHH`) the daemons resolve with `-u`.
//! `-S` (non-strict) is accepted but parsing stays strict.

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut confdir = String::from("/etc/config");
    let mut named = false;
    let mut rest = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "-c" => confdir = args.next().unwrap_or_default(),
            "-P" => {
                args.next();
            }
            "-n" => named = true,
            "-S" | "-q" | "-N" => {}
            _ => rest.push(a),
        }
    }
    let [cmd, pkg] = rest.as_slice() else {
        eprintln!("usage: uci [-c DIR] [-n] export PACKAGE");
        return ExitCode::from(1);
    };
    if cmd != "export" {
        eprintln!("uci stand-in: only `export` is implemented");
        return ExitCode::from(1);
    }
    let path = format!("{confdir}/{pkg}");
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("uci: Entry not found ({path}: {e})");
            return ExitCode::from(1);
        }
    };
    match tmip::config::uci::parse(&path, &text) {
        Ok(p) => {
            print!(
                "package {pkg}\n{}",
                if named { p.export_named() } else { p.export() }
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("uci: Parse error ({}) at line {}", e.message, e.line);
            ExitCode::from(1)
        }
    }
}
