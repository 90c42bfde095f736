//! Signals: HUP re-reads the settings (applying those that can change
//! while running, naming those that need a restart), USR1 writes the
//! status file, USR2 steps the debug level, TERM/INT end the loop.

use super::poll_loop::Daemon;
use super::startup::core_config;
use super::status;
use crate::config::tmipd::{TmipdConfig, TABLE};
use crate::logging;
use nix::sys::signal::Signal;
use std::time::Instant;

impl Daemon {
    pub(super) fn on_signals(&mut self) {
        for s in self.signals.drain() {
            match s {
                Signal::SIGHUP => self.reload(),
                Signal::SIGUSR1 => self.write_status(),
                Signal::SIGUSR2 => {
                    let n = logging::step_level();
                    log::warn!(target: "cn", "+ Debug level now {n}");
                }
                Signal::SIGTERM | Signal::SIGINT => {
                    log::info!(target: "cn", "+ Received {s:?}: shutting down");
                    self.quit = Some(0);
                }
                _ => {}
            }
        }
    }

    fn reload(&mut self) {
        let origin = self.cfg.origin.clone();
        let path = origin.to_string();
        let new = match TmipdConfig::load_source(&origin) {
            Ok(c) => c,
            Err(e) => {
                log::error!(target: "cn", "+ Re-reading {path} failed, keeping the running configuration: {e}");
                return;
            }
        };
        let r = TABLE.reload(&self.cfg, new);
        self.apply_config(r.config);
        if r.applied.is_empty() {
            log::info!(target: "cn", "+ Re-read {path}: no live setting changed");
        } else {
            log::info!(target: "cn", "+ Re-read {path}: {} applied", r.applied.join(", "));
        }
        if !r.restart.is_empty() {
            log::warn!(target: "cn", "+ Changed, not applied, needs a restart: {}", r.restart.join(", "));
        }
    }

    /// Run with `cfg` (restart-only keys as they run): every part that
    /// uses a setting gets it from `cfg` here, as at start, so no live key
    /// stops at `self.cfg`.
    fn apply_config(&mut self, cfg: TmipdConfig) {
        logging::set_level(cfg.debug_level);
        let core = core_config(&cfg, self.core.me(), self.core.config().shared_link);
        self.core.reconfigure(core);
        if let Some(d) = self.dhcp.as_mut() {
            d.reconfigure(&cfg);
        }
        // status_file is read from here when USR1 comes.
        self.cfg = cfg;
    }

    pub(super) fn status_json(&self) -> Result<String, String> {
        let (mlr, epoch, repl) = super::poll_loop::mlr_view(&self.mlr);
        status::json(
            &self.core,
            &status::Identity {
                name: &self.cfg.cn_name,
                network: &self.cfg.network_name,
                mlr: &mlr,
                mlr_epoch: epoch,
                mlr_replication: &repl,
            },
            Instant::now(),
        )
    }

    fn write_status(&mut self) {
        let path = self.cfg.status_file.clone();
        let r = self.status_json().and_then(|j| {
            let tmp = format!("{path}.tmp");
            std::fs::write(&tmp, j + "\n")
                .and_then(|_| std::fs::rename(&tmp, &path))
                .map_err(|e| e.to_string())
        });
        match r {
            Ok(()) => log::info!(target: "cn", "+ Status written to {path}"),
            Err(e) => log::error!(target: "cn", "+ Cannot write status to {path}: {e}"),
        }
    }
}
