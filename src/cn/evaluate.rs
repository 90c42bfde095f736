//! `tmipd -E`: network connectivity evaluation in TMip 0.14a's shape. An
//! MLRP ping of the MLR, then of every CN the MLR lists, one line each:
//!
//! ```text
//! Network Connectivity Evaluation
//! + MLR @ 10.13.0.250: Passed.
//! + CN @ 10.13.0.1 [Oakhurst directional]: Passed.
//! + CN @ 10.13.4.1: Failed (connection refused).
//! ```
//!
//! Exit status 0 only when every line passed.

use super::startup::{load_config, Options};
use crate::config::resolve;
use crate::mlrp::{Client, CnEntry, Message, NetworkKey, Role};
use std::io::Write;
use std::net::{SocketAddr, SocketAddrV4};
use std::time::Duration;

const TIMEOUT: Duration = Duration::from_secs(3);

/// Connect as a tool and send `msgs` in turn over one session; the replies
/// in order. An `Error` reply fails the whole exchange with its text.
pub fn exchange(
    to: SocketAddrV4,
    key: Option<&NetworkKey>,
    msgs: &[Message],
) -> Result<Vec<Message>, String> {
    let mut c =
        Client::connect(SocketAddr::V4(to), Role::Tool, key, TIMEOUT).map_err(|e| e.to_string())?;
    let mut replies = Vec::new();
    for m in msgs {
        match c.call(m).map_err(|e| e.to_string())? {
            Message::Error(e) => return Err(format!("{}: {}", e.code, e.text)),
            r => replies.push(r),
        }
    }
    Ok(replies)
}

fn ping(to: SocketAddrV4, key: Option<&NetworkKey>) -> Result<(), String> {
    match exchange(to, key, &[Message::Ping { nonce: 7 }])?.pop() {
        Some(Message::Pong { nonce: 7 }) => Ok(()),
        Some(other) => Err(format!("unexpected answer {other}")),
        None => Err("no answer".into()),
    }
}

/// ` (primary, epoch 2, replication in-sync)` for a register of a pair.
fn register_detail(to: SocketAddrV4, key: Option<&NetworkKey>) -> String {
    match exchange(to, key, &[Message::RegisterStatus]).map(|mut r| r.pop()) {
        Ok(Some(Message::RegisterStatusReply(s))) => format!(
            " ({}, epoch {}, replication {})",
            s.role, s.epoch, s.replication
        ),
        _ => String::new(),
    }
}

/// Run the evaluation; returns the exit code.
pub fn run(opts: &Options) -> i32 {
    println!("+ Starting TMip Correspondent Node [{}]", crate::VERSION);
    println!("+ Loading settings from configuration file...");
    println!("+ Using {}", opts.source());
    let cfg = match load_config(opts) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("tmipd: {e}");
            return 1;
        }
    };
    println!("Network Connectivity Evaluation");
    let key = cfg
        .secret
        .as_ref()
        .map(|s| NetworkKey::derive(s.as_bytes(), &cfg.network_name));
    // The primary, then the backup register (if any): one line each. The
    // CN list comes from the first that answers.
    let mut registers = vec![("MLR", &cfg.mlr)];
    if let Some(b) = &cfg.backup_mlr {
        registers.push(("Backup MLR", b));
    }
    let mut all = true;
    let mut cns: Option<Vec<CnEntry>> = None;
    for (label, loc) in registers {
        let addr = match resolve(&loc.host, loc.port) {
            Ok(a) => a,
            Err(e) => {
                all = false;
                println!("+ {label} @ {}: Failed ({e}).", loc.host);
                continue;
            }
        };
        match exchange(
            addr,
            key.as_ref(),
            &[Message::Ping { nonce: 7 }, Message::ListCns],
        ) {
            Ok(r) => {
                let detail = if cfg.backup_mlr.is_some() {
                    register_detail(addr, key.as_ref())
                } else {
                    String::new()
                };
                println!("+ {label} @ {}: Passed{detail}.", addr.ip());
                if cns.is_none() {
                    if let Some(Message::CnList(l)) = r.into_iter().nth(1) {
                        cns = Some(l.entries);
                    }
                }
            }
            Err(e) => {
                all = false;
                println!("+ {label} @ {}: Failed ({e}).", addr.ip());
            }
        }
    }
    let Some(cns) = cns else {
        let _ = std::io::stdout().flush();
        return 1;
    };
    for e in cns {
        let at = if e.port == crate::CN_PORT {
            e.addr.to_string()
        } else {
            format!("{}:{}", e.addr, e.port)
        };
        let name = if e.name.is_empty() {
            String::new()
        } else {
            format!(" [{}]", e.name)
        };
        match ping(SocketAddrV4::new(e.addr, e.port), key.as_ref()) {
            Ok(()) => println!("+ CN @ {at}{name}: Passed."),
            Err(err) => {
                all = false;
                println!("+ CN @ {at}{name}: Failed ({err}).");
            }
        }
    }
    let _ = std::io::stdout().flush();
    if all {
        0
    } else {
        1
    }
}
