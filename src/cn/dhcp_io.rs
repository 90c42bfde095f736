//! The DHCP server's I/O on mobile_if: the [`DhcpSocket`] (packet socket
//! with a port-67 BPF filter, plus the UDP sink that keeps the kernel from
//! answering unicast renewals with ICMP) around the sans-IO [`DhcpServer`].
//! Lookups go to the CN core; its answers come back via `binding_ready`.

use super::core::{Lease, LookupFailure, LookupKind};
use super::iface::IfaceInfo;
use crate::addr::MacAddr;
use crate::config::tmipd::TmipdConfig;
use crate::dhcp::socket::DhcpSocket;
use crate::dhcp::{self, Action, DhcpConfig, DhcpServer};
use std::io;
use std::net::Ipv4Addr;
use std::os::fd::{AsRawFd, RawFd};
use std::time::Instant;

/// What the DHCP side asks of the core.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DhcpEvent {
    Lookup {
        mac: MacAddr,
        kind: LookupKind,
        requested: Option<Ipv4Addr>,
        /// Through a relay: `mac` could not be checked against its sender.
        relayed: bool,
    },
    /// A RELEASE from `mac` itself (checked by the DHCP server).
    Released {
        mac: MacAddr,
        cell: crate::addr::Cell30,
    },
    /// A DECLINE from `mac` itself: `ip` is in use by someone else.
    Declined { mac: MacAddr, ip: Option<Ipv4Addr> },
    /// A message from `src` naming `chaddr` as its client, dropped (the
    /// first of its interval: the rest are only counted).
    Forged { src: MacAddr, chaddr: MacAddr },
}

pub struct DhcpIo {
    sock: DhcpSocket,
    server: DhcpServer,
    /// Malformed frames seen, for rate-limited logging.
    bad: u64,
}

fn dhcp_config(cfg: &TmipdConfig) -> DhcpConfig {
    DhcpConfig {
        dns: cfg.dns.clone(),
        domain: cfg.domain.clone(),
        static_routes: cfg
            .static_routes
            .iter()
            .map(|r| (r.net, r.len, r.gw))
            .collect(),
        lease_time: cfg.lease_time,
    }
}

impl DhcpIo {
    pub fn open(cfg: &TmipdConfig, mobile: &IfaceInfo) -> io::Result<DhcpIo> {
        let sock = DhcpSocket::open(&mobile.name)?;
        Ok(DhcpIo {
            server: DhcpServer::new(dhcp_config(cfg), sock.mac()),
            sock,
            bad: 0,
        })
    }

    /// DHCP messages dropped because `chaddr` was not their sender.
    pub fn forged(&self) -> u64 {
        self.server.forged()
    }

    pub fn fd(&self) -> RawFd {
        self.sock.as_raw_fd()
    }

    pub fn reconfigure(&mut self, cfg: &TmipdConfig) {
        self.server.set_config(dhcp_config(cfg));
    }

    pub fn tick(&mut self, now: Instant) {
        self.server.expire(now);
    }

    fn send(&self, frame: &[u8]) {
        if let Err(e) = self.sock.send(frame) {
            log::warn!(target: "dhcp", "send: {e}");
        }
    }

    fn act(&mut self, a: Action, out: &mut Vec<DhcpEvent>) {
        match a {
            Action::Lookup {
                mac,
                kind,
                requested_ip,
                hostname,
                relayed,
            } => {
                log::debug!(target: "dhcp", "lookup {mac} ({kind:?}{}{})",
                    requested_ip.map(|i| format!(", wants {i}")).unwrap_or_default(),
                    hostname.map(|h| format!(", host {h}")).unwrap_or_default());
                out.push(DhcpEvent::Lookup {
                    mac,
                    kind: match kind {
                        dhcp::LookupKind::Allocate => LookupKind::Allocate,
                        dhcp::LookupKind::Locate => LookupKind::Locate,
                    },
                    requested: requested_ip,
                    relayed,
                });
            }
            Action::Send(r) => self.send(&r.frame),
            Action::Release { mac, cell } => out.push(DhcpEvent::Released { mac, cell }),
            Action::Decline { mac, ip } => out.push(DhcpEvent::Declined { mac, ip }),
        }
    }

    /// Read every waiting frame; returns what the core must do.
    pub fn on_readable(&mut self, now: Instant) -> Vec<DhcpEvent> {
        let mut out = Vec::new();
        let mut buf = [0u8; 2048];
        for _ in 0..64 {
            let n = match self.sock.recv(&mut buf) {
                Ok(Some(n)) => n,
                Ok(None) => break,
                Err(e) => {
                    log::warn!(target: "dhcp", "receive: {e}");
                    break;
                }
            };
            let frame = &buf[..n];
            match self.server.handle_frame(frame, now) {
                Ok(Some(a)) => self.act(a, &mut out),
                Ok(None) => {}
                Err(dhcp::server::Error::Ignored(why)) => {
                    log::debug!(target: "dhcp", "ignored a DHCP frame: {why}")
                }
                // Logged by the server once per interval, counted in status.
                Err(dhcp::server::Error::ForgedClient {
                    chaddr,
                    src,
                    logged,
                }) => {
                    if logged {
                        out.push(DhcpEvent::Forged { src, chaddr });
                    }
                }
                Err(dhcp::server::Error::TableFull(_)) => {}
                Err(e) => {
                    self.bad += 1;
                    // Say it, but do not let a flood fill the log.
                    if self.bad <= 20 || self.bad.is_power_of_two() {
                        log::warn!(target: "dhcp", "malformed DHCP input on mobile_if dropped ({} so far): {e}", self.bad);
                    }
                }
            }
        }
        out
    }

    /// The core's answer to a lookup.
    pub fn binding_ready(&mut self, mac: MacAddr, result: Result<Lease, LookupFailure>) {
        let r = match result {
            Ok(l) => Ok(dhcp::Lease {
                cell: l.cell,
                lease_secs: l.lease_secs,
            }),
            Err(LookupFailure::NotFound) => Err(dhcp::LookupError::NotFound),
            Err(LookupFailure::Unavailable(why)) => {
                // The core logged refusals already (once per interval).
                log::debug!(target: "dhcp", "no address for {mac}: {why}");
                Err(dhcp::LookupError::Unavailable(why))
            }
        };
        let mut ev = Vec::new();
        match self.server.binding_ready(mac, r, Instant::now()) {
            Ok(a) => self.act(a, &mut ev),
            Err(e) => log::debug!(target: "dhcp", "{mac}: {e}"),
        }
        // binding_ready only ever yields frames to send.
        debug_assert!(ev.is_empty());
    }
}
