//! Signals: HUP re-reads the settings (applying those that can change
//! while running, naming those that need a restart), USR1 writes the
//! status file, USR2 steps the debug level, TERM/INT end the loop.

use super::poll_loop::Daemon;
use super::status;
use crate::config::tmipd::TmipdConfig;
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
        let restart = self.cfg.restart_needed(&new);
        logging::set_level(new.debug_level);
        self.core.set_reverse_tunnel(new.reverse_tunnel);
        self.cfg.debug_level = new.debug_level;
        self.cfg.reverse_tunnel = new.reverse_tunnel;
        self.cfg.status_file = new.status_file.clone();
        self.cfg.lease_time = new.lease_time;
        self.cfg.dns = new.dns.clone();
        self.cfg.domain = new.domain.clone();
        self.cfg.static_routes = new.static_routes.clone();
        if let Some(d) = self.dhcp.as_mut() {
            d.reconfigure(&new);
        }
        log::info!(target: "cn", "+ Re-read {path}: debug_level, reverse_tunnel, status_file, lease_time, dns, domain, static_route applied");
        if !restart.is_empty() {
            log::warn!(target: "cn", "+ Changed settings that need a restart to take effect: {}", restart.join(", "));
        }
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
