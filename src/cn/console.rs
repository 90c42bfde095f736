//! The foreground console (TMip 0.14a's): `debug [N]`, `status`,
//! `clients`, `cns`, `help`; Ctrl+D quits. Read straight from fd 0 in the
//! poll loop.

use super::poll_loop::Daemon;
use super::status;
use crate::logging;
use std::io;
use std::time::Instant;

impl Daemon {
    pub(super) fn on_stdin(&mut self) {
        let mut buf = [0u8; 1024];
        // Straight from fd 0: std's buffered stdin could keep lines that
        // poll(2) then never reports.
        match crate::sys::fd::read(0, &mut buf) {
            Ok(0) => {
                println!("+ End of input: shutting down");
                self.quit = Some(0);
                return;
            }
            Ok(n) => self.stdin_buf.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::Interrupted => return,
            Err(e) => {
                log::warn!(target: "cn", "console: {e}; console off");
                self.console = false;
                return;
            }
        }
        while let Some(p) = self.stdin_buf.iter().position(|b| *b == b'\n') {
            let line: Vec<u8> = self.stdin_buf.drain(..=p).collect();
            let line = String::from_utf8_lossy(&line).trim().to_string();
            self.console_command(&line);
        }
        if self.stdin_buf.len() > 4096 {
            self.stdin_buf.clear();
        }
    }

    fn console_command(&mut self, line: &str) {
        let mut it = line.split_whitespace();
        let now = Instant::now();
        match (it.next(), it.next()) {
            (None, _) => {}
            (Some("debug"), None) => println!("debug level {}", logging::level()),
            (Some("debug"), Some(n)) => match n.parse::<u8>() {
                Ok(n) if n <= logging::MAX_LEVEL => {
                    logging::set_level(n);
                    println!("debug level {n}");
                }
                _ => println!("debug: want a level 0..7"),
            },
            (Some("status"), _) => {
                println!(
                    "CN {} ({}) on network [{}]; MLR @ {}: {}{}; {} station(s), {} peer CN(s); debug level {}",
                    self.me,
                    self.cfg.cn_name,
                    self.cfg.network_name,
                    self.mlr.register(),
                    self.mlr.phase(),
                    match self.mlr.register_status() {
                        Some(s) => format!(" (epoch {}, replication {})", s.epoch, s.replication),
                        None => String::new(),
                    },
                    self.core.stations().len(),
                    self.core.peers().len(),
                    logging::level()
                );
                println!(
                    "hostapd: {}; ubus: {}",
                    self.hostapd.as_ref().map_or("off".into(), |h| h.summary()),
                    self.ubus.as_ref().map_or("off".into(), |u| u.summary())
                );
                match self.status_json() {
                    Ok(j) => println!("{j}"),
                    Err(e) => println!("{e}"),
                }
            }
            (Some("clients"), _) => print!("{}", status::clients_text(&self.core, now)),
            (Some("cns"), _) => print!("{}", status::cns_text(&self.core)),
            (Some("help"), _) => {
                println!("commands: debug [N]  status  clients  cns  help  (Ctrl+D quits)")
            }
            (Some(other), _) => println!("unknown command '{other}' (try help)"),
        }
    }
}
