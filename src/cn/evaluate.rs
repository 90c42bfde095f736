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

use super::daemon::{load_config, resolve, Options};
use crate::mlrp::{random_nonce, CnEntry, Incoming, Message, NetworkKey, Role, Session};
use std::io::{Read, Write};
use std::net::{SocketAddr, SocketAddrV4, TcpStream};
use std::time::{Duration, Instant};

const TIMEOUT: Duration = Duration::from_secs(3);

/// Open an MLRP session as a tool, send `msgs` in turn, return the replies.
pub fn exchange(
    to: SocketAddrV4,
    key: Option<&NetworkKey>,
    msgs: &[Message],
) -> Result<Vec<Message>, String> {
    let deadline = Instant::now() + TIMEOUT;
    let mut s =
        TcpStream::connect_timeout(&SocketAddr::V4(to), TIMEOUT).map_err(|e| e.to_string())?;
    let nonce = random_nonce().map_err(|e| e.to_string())?;
    let mut sess = Session::new(Role::Tool, key, nonce);
    let mut out = Vec::new();
    sess.handshake(&mut out);
    let mut replies = Vec::new();
    let mut next = 0;
    let mut waiting: Option<u32> = None;
    let mut buf = [0u8; 4096];
    loop {
        if !out.is_empty() {
            s.write_all(&out).map_err(|e| e.to_string())?;
            out.clear();
        }
        if replies.len() == msgs.len() {
            return Ok(replies);
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err("no answer".into());
        }
        s.set_read_timeout(Some(left)).map_err(|e| e.to_string())?;
        let n = match s.read(&mut buf) {
            Ok(0) => return Err("connection closed".into()),
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                return Err("no answer".into())
            }
            Err(e) => return Err(e.to_string()),
        };
        sess.feed(&buf[..n]);
        while let Some(ev) = sess.poll(&mut out) {
            match ev {
                Ok(Incoming::Established { .. }) => {}
                Ok(Incoming::Reply { id, msg }) if Some(id) == waiting => {
                    waiting = None;
                    if let Message::Error(e) = &msg {
                        return Err(format!("{}: {}", e.code, e.text));
                    }
                    replies.push(msg);
                }
                Ok(Incoming::Request { id, .. }) => {
                    let _ = sess.reply(
                        id,
                        &Message::error(crate::mlrp::ErrorCode::Unsupported, "tool"),
                        &mut out,
                    );
                }
                Ok(_) => {}
                Err(e) if e.is_fatal() => {
                    if !out.is_empty() {
                        let _ = s.write_all(&out);
                    }
                    return Err(e.to_string());
                }
                Err(_) => {}
            }
        }
        if sess.is_established() && waiting.is_none() && next < msgs.len() {
            waiting = Some(
                sess.request(&msgs[next], &mut out)
                    .map_err(|e| e.to_string())?,
            );
            next += 1;
        }
    }
}

fn ping(to: SocketAddrV4, key: Option<&NetworkKey>) -> Result<(), String> {
    match exchange(to, key, &[Message::Ping { nonce: 7 }])?.pop() {
        Some(Message::Pong { nonce: 7 }) => Ok(()),
        Some(other) => Err(format!("unexpected answer {other}")),
        None => Err("no answer".into()),
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
    let mlr = match resolve(&cfg.mlr.host, cfg.mlr.port) {
        Ok(a) => a,
        Err(e) => {
            println!("+ MLR @ {}: Failed ({e}).", cfg.mlr.host);
            return 1;
        }
    };
    let mut all = true;
    let cns: Vec<CnEntry> = match exchange(
        mlr,
        key.as_ref(),
        &[Message::Ping { nonce: 7 }, Message::ListCns],
    ) {
        Ok(r) => {
            println!("+ MLR @ {}: Passed.", mlr.ip());
            match r.into_iter().nth(1) {
                Some(Message::CnList(l)) => l.entries,
                _ => Vec::new(),
            }
        }
        Err(e) => {
            println!("+ MLR @ {}: Failed ({e}).", mlr.ip());
            return 1;
        }
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
