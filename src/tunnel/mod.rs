//! The tunnel controller: one IPv4-in-IPv4 tunnel per peer CN, named
//! `<tunnel_prefix><n>`, reference-counted by the stations that use it, and
//! built by the best backend this node supports, chosen at start:
//!
//! 1. local delivery (the station is at its parent: no tunnel at all),
//! 2. kernel IPIP devices over rtnetlink (`kernel`),
//! 3. userspace IPIP: a TUN device per peer plus one raw IPPROTO_IPIP
//!    socket (`userspace`), wire-compatible with 2.
//!
//! The controller does the I/O of creating/removing devices (rtnetlink, TUN)
//! when asked; the routes that send a station's /30 into a tunnel are the
//! caller's (tmipd's handover code), through the returned interface index.
//! The userspace backend's packet forwarding is driven by the daemon's poll
//! loop: register [`TunnelController::poll_fds`] (and the fd each
//! [`TunnelController::acquire`] returns), call
//! [`TunnelController::on_readable`] when one is ready.

pub mod ipip;
pub mod kernel;
pub mod local;
pub mod offload;
pub mod userspace;

use crate::netlink::{Netlink, NetlinkError, PurgeReport, Scope};
use log::{debug, info, warn};
use std::net::Ipv4Addr;
use std::os::fd::RawFd;
pub use userspace::{UserspaceIpip, UserspaceStats};

/// A way of delivering a station's traffic to the CN it is at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackendKind {
    Local,
    KernelIpip,
    UserspaceIpip,
}

impl BackendKind {
    pub fn describe(self) -> &'static str {
        match self {
            BackendKind::Local => "Local delivery",
            BackendKind::KernelIpip => "Kernel IPv4 in IPv4 (rtnetlink)",
            BackendKind::UserspaceIpip => "Userspace IPv4 in IPv4 (TUN + raw socket)",
        }
    }
}

/// Which backend new tunnels use: `tunnel_backend auto|kernel|userspace`.
/// `auto` prefers kernel IPIP where the kernel can make it; the other two
/// force one backend and make start-up fail when it cannot run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum BackendChoice {
    #[default]
    Auto,
    Kernel,
    Userspace,
}

impl BackendChoice {
    pub const NAMES: [&'static str; 3] = ["auto", "kernel", "userspace"];

    pub fn parse(s: &str) -> Option<BackendChoice> {
        match s {
            "auto" => Some(BackendChoice::Auto),
            "kernel" => Some(BackendChoice::Kernel),
            "userspace" => Some(BackendChoice::Userspace),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackendChoice::Auto => "auto",
            BackendChoice::Kernel => "kernel",
            BackendChoice::Userspace => "userspace",
        }
    }
}

#[derive(Debug)]
pub enum TunnelError {
    Netlink(&'static str, NetlinkError),
    Io(&'static str, std::io::Error),
    /// Neither kernel nor userspace IPIP can run here (reasons for each).
    NoBackend(String),
    /// The tunnel table is full.
    Full(usize),
    /// `<prefix><n>` does not fit in an interface name.
    NameTooLong(String),
    NotFound(Ipv4Addr),
}

impl std::fmt::Display for TunnelError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TunnelError::Netlink(w, e) => write!(f, "tunnel: {w}: {e}"),
            TunnelError::Io(w, e) => write!(f, "tunnel: {w}: {e}"),
            TunnelError::NoBackend(r) => write!(f, "no tunnel backend available: {r}"),
            TunnelError::Full(n) => write!(f, "tunnel table full ({n} tunnels)"),
            TunnelError::NameTooLong(n) => {
                write!(
                    f,
                    "tunnel name {n} is longer than 15 bytes: shorten tunnel_prefix"
                )
            }
            TunnelError::NotFound(p) => write!(f, "no tunnel to {p}"),
        }
    }
}

impl std::error::Error for TunnelError {}

/// What the controller needs to know, from tmipd.rc.
#[derive(Debug, Clone)]
pub struct TunnelConfig {
    pub tunnel_prefix: String,
    /// Our CN address (`cn_if`'s IPv4): the outer source.
    pub local: Ipv4Addr,
    pub ttl: u8,
    pub max_tunnels: usize,
    /// Which backend new tunnels use.
    pub backend: BackendChoice,
    /// Userspace backend: TUN offloads (TSO reads segmented here, GRO-like
    /// coalesced writes). Fewer system calls per packet; see
    /// docs/benchmarks/dataplane.md.
    pub userspace_offload: bool,
}

impl TunnelConfig {
    pub fn new(tunnel_prefix: &str, local: Ipv4Addr) -> TunnelConfig {
        TunnelConfig {
            tunnel_prefix: tunnel_prefix.to_string(),
            local,
            ttl: ipip::DEFAULT_TTL,
            max_tunnels: 50,
            backend: BackendChoice::Auto,
            userspace_offload: true,
        }
    }
}

/// One tunnel to a peer CN.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tunnel {
    pub peer: Ipv4Addr,
    pub name: String,
    pub ifindex: u32,
    pub backend: BackendKind,
    /// Stations using it; the device goes when this reaches 0.
    pub refs: usize,
    /// The TUN fd to poll (userspace backend only).
    pub poll_fd: Option<RawFd>,
}

/// What [`TunnelController::acquire`] hands back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Delivery {
    /// The peer is this CN: deliver on mobile_if, no tunnel.
    Local,
    /// Route the station's /30 out of `ifindex` (scope link, no gateway).
    Tunnel {
        name: String,
        ifindex: u32,
        /// Set when a userspace tunnel was just created: register it.
        new_poll_fd: Option<RawFd>,
    },
}

pub struct TunnelController {
    cfg: TunnelConfig,
    kernel: Result<(), String>,
    /// Whether the userspace backend could run (listed even when unused).
    userspace_ok: bool,
    userspace: Result<UserspaceIpip, String>,
    local: local::LocalDelivery,
    tunnels: Vec<Tunnel>,
}

impl TunnelController {
    /// Probes the backends. Fails only when no tunnel can be built at all.
    pub fn start(nl: &mut Netlink, cfg: TunnelConfig) -> Result<TunnelController, TunnelError> {
        if cfg.tunnel_prefix.len() + digits(cfg.max_tunnels.saturating_sub(1)) > 15 {
            return Err(TunnelError::NameTooLong(format!(
                "{}{}",
                cfg.tunnel_prefix,
                cfg.max_tunnels.saturating_sub(1)
            )));
        }
        let kernel = if cfg.backend == BackendChoice::Userspace {
            Err("not used (tunnel_backend userspace)".to_string())
        } else {
            kernel::probe(nl, &cfg.tunnel_prefix, cfg.local)
        };
        let userspace = if cfg.backend == BackendChoice::Kernel {
            Err("not used (tunnel_backend kernel)".to_string())
        } else {
            UserspaceIpip::open(cfg.local, cfg.ttl, cfg.userspace_offload)
                .map_err(|e| format!("raw IPIP socket on {}: {e}", cfg.local))
                .and_then(|u| {
                    std::fs::metadata("/dev/net/tun")
                        .map(|_| u)
                        .map_err(|e| format!("/dev/net/tun: {e}"))
                })
        };
        match (cfg.backend, &kernel, &userspace) {
            (BackendChoice::Kernel, Err(k), _) => {
                return Err(TunnelError::NoBackend(format!(
                    "tunnel_backend kernel: {k}"
                )))
            }
            (BackendChoice::Userspace, _, Err(u)) => {
                return Err(TunnelError::NoBackend(format!(
                    "tunnel_backend userspace: {u}"
                )))
            }
            (_, Err(k), Err(u)) => {
                return Err(TunnelError::NoBackend(format!(
                    "kernel: {k}; userspace: {u}"
                )))
            }
            _ => {}
        }
        // With kernel tunnels in use, an open raw IPIP socket would only get
        // a copy of every tunnelled packet: keep the socket only when used.
        let (userspace_ok, userspace) = match (&kernel, userspace) {
            (Ok(()), Ok(_)) => (true, Err("kernel IPIP preferred".to_string())),
            (_, u) => (u.is_ok(), u),
        };
        Ok(TunnelController {
            cfg,
            kernel,
            userspace_ok,
            userspace,
            local: local::LocalDelivery::default(),
            tunnels: Vec::new(),
        })
    }

    /// Available backends in order of preference, with their capacity.
    pub fn supported(&self) -> Vec<(BackendKind, usize)> {
        let mut v = vec![(BackendKind::Local, self.local.capacity())];
        if self.kernel.is_ok() {
            v.push((BackendKind::KernelIpip, self.cfg.max_tunnels));
        }
        if self.userspace_ok {
            v.push((BackendKind::UserspaceIpip, self.cfg.max_tunnels));
        }
        v
    }

    /// The backend new tunnels get.
    pub fn tunnel_backend(&self) -> BackendKind {
        if self.kernel.is_ok() {
            BackendKind::KernelIpip
        } else {
            BackendKind::UserspaceIpip
        }
    }

    /// The `tunnel_backend` setting it was started with.
    pub fn backend_choice(&self) -> BackendChoice {
        self.cfg.backend
    }

    /// The start-up lines, as the seed prints them.
    pub fn log_supported(&self) {
        info!(
            target: "tunnel",
            "+ tunnel_backend {}: new tunnels use {}",
            self.cfg.backend.as_str(),
            self.tunnel_backend().describe()
        );
        info!(target: "tunnel", "+ Supported tunnels (in order of preference):");
        for (k, n) in self.supported() {
            let unit = if k == BackendKind::Local {
                "stations"
            } else {
                "devices"
            };
            info!(target: "tunnel", "+ {} ({n} {unit})", k.describe());
        }
        if let Err(why) = &self.kernel {
            info!(target: "tunnel", "  (kernel IPIP: {why})");
        }
        if let (false, Err(why)) = (self.userspace_ok, &self.userspace) {
            info!(target: "tunnel", "  (userspace IPIP unavailable: {why})");
        }
    }

    /// Removes tunnels, addresses, routes and rules an earlier run of this
    /// instance left (see [`crate::netlink::Netlink::purge`]).
    pub fn purge_stale(
        &self,
        nl: &mut Netlink,
        interfaces: &[&str],
        tables: &[u32],
    ) -> Result<PurgeReport, TunnelError> {
        let rep = nl
            .purge(&Scope {
                tunnel_prefix: &self.cfg.tunnel_prefix,
                interfaces,
                tables,
            })
            .map_err(|e| TunnelError::Netlink("purge", e))?;
        info!(
            target: "tunnel",
            "+ Purging system of stale tunnel devices: {} tunnels, {} routes, {} addresses, {} rules",
            rep.links, rep.routes, rep.addresses, rep.rules
        );
        Ok(rep)
    }

    /// Takes over kernel ipip devices named `<prefix>*` left by an earlier
    /// run (refcount 0 until stations acquire them). Userspace TUN devices
    /// die with their process, so there is nothing of theirs to adopt.
    pub fn adopt(&mut self, nl: &mut Netlink) -> Result<usize, TunnelError> {
        let links = nl
            .links()
            .map_err(|e| TunnelError::Netlink("link dump", e))?;
        let mut n = 0;
        for l in links {
            if l.kind == "ipip" && l.name.starts_with(&self.cfg.tunnel_prefix) {
                if let Some(peer) = l.ipip_remote.filter(|r| !r.is_unspecified()) {
                    if self.tunnel(peer).is_none() && self.tunnels.len() < self.cfg.max_tunnels {
                        self.tunnels.push(Tunnel {
                            peer,
                            name: l.name,
                            ifindex: l.index,
                            backend: BackendKind::KernelIpip,
                            refs: 0,
                            poll_fd: None,
                        });
                        n += 1;
                    }
                }
            }
        }
        Ok(n)
    }

    pub fn tunnel(&self, peer: Ipv4Addr) -> Option<&Tunnel> {
        self.tunnels.iter().find(|t| t.peer == peer)
    }

    pub fn tunnels(&self) -> &[Tunnel] {
        &self.tunnels
    }

    fn free_name(&self) -> String {
        let mut n = 0;
        loop {
            let name = format!("{}{n}", self.cfg.tunnel_prefix);
            if !self.tunnels.iter().any(|t| t.name == name) {
                return name;
            }
            n += 1;
        }
    }

    /// One more station needs delivery via `peer`: the tunnel to it is
    /// created on first use, else its reference count grows.
    pub fn acquire(&mut self, nl: &mut Netlink, peer: Ipv4Addr) -> Result<Delivery, TunnelError> {
        if peer == self.cfg.local {
            return if self.local.acquire() {
                Ok(Delivery::Local)
            } else {
                Err(TunnelError::Full(self.local.capacity()))
            };
        }
        if let Some(t) = self.tunnels.iter_mut().find(|t| t.peer == peer) {
            t.refs += 1;
            return Ok(Delivery::Tunnel {
                name: t.name.clone(),
                ifindex: t.ifindex,
                new_poll_fd: None,
            });
        }
        if self.tunnels.len() >= self.cfg.max_tunnels {
            return Err(TunnelError::Full(self.cfg.max_tunnels));
        }
        let name = self.free_name();
        let backend = self.tunnel_backend();
        let (ifindex, poll_fd) = match backend {
            BackendKind::KernelIpip => {
                let i = kernel::create(nl, &name, self.cfg.local, peer, self.cfg.ttl)
                    .map_err(|e| TunnelError::Netlink("create ipip", e))?;
                (i, None)
            }
            _ => {
                let u = self
                    .userspace
                    .as_mut()
                    .map_err(|e| TunnelError::NoBackend(e.clone()))?;
                let fd = u
                    .add_peer(&name, peer)
                    .map_err(|e| TunnelError::Io("create TUN", e))?;
                let setup = nl.link_index(&name).and_then(|i| {
                    nl.set_link_mtu(i, ipip::TUNNEL_MTU)?;
                    nl.set_link_up(i, true)?;
                    Ok(i)
                });
                match setup {
                    Ok(i) => (i, Some(fd)),
                    Err(e) => {
                        u.remove_peer(peer);
                        return Err(TunnelError::Netlink("set up TUN", e));
                    }
                }
            }
        };
        debug!(target: "tunnel", "tunnel {name} to {peer} up ({})", backend.describe());
        self.tunnels.push(Tunnel {
            peer,
            name: name.clone(),
            ifindex,
            backend,
            refs: 1,
            poll_fd,
        });
        Ok(Delivery::Tunnel {
            name,
            ifindex,
            new_poll_fd: poll_fd,
        })
    }

    /// One station no longer uses `peer`. When the last one goes, the
    /// tunnel is removed; returns the fd the poll loop must forget, if any.
    pub fn release(
        &mut self,
        nl: &mut Netlink,
        peer: Ipv4Addr,
    ) -> Result<Option<RawFd>, TunnelError> {
        if peer == self.cfg.local {
            self.local.release();
            return Ok(None);
        }
        let i = self
            .tunnels
            .iter()
            .position(|t| t.peer == peer)
            .ok_or(TunnelError::NotFound(peer))?;
        let t = &mut self.tunnels[i];
        t.refs = t.refs.saturating_sub(1);
        if t.refs > 0 {
            return Ok(None);
        }
        let t = self.tunnels.swap_remove(i);
        self.remove(nl, &t)
    }

    fn remove(&mut self, nl: &mut Netlink, t: &Tunnel) -> Result<Option<RawFd>, TunnelError> {
        debug!(target: "tunnel", "tunnel {} to {} down", t.name, t.peer);
        match t.backend {
            BackendKind::KernelIpip => match kernel::destroy(nl, t.ifindex) {
                Ok(()) => Ok(None),
                Err(e) if e.errno() == Some(libc::ENODEV) => Ok(None),
                Err(e) => Err(TunnelError::Netlink("delete ipip", e)),
            },
            _ => Ok(self
                .userspace
                .as_mut()
                .ok()
                .and_then(|u| u.remove_peer(t.peer))),
        }
    }

    /// Removes every tunnel (clean exit on TERM).
    pub fn shutdown(&mut self, nl: &mut Netlink) {
        for t in std::mem::take(&mut self.tunnels) {
            if let Err(e) = self.remove(nl, &t) {
                warn!(target: "tunnel", "{e}");
            }
        }
    }

    /// Descriptors to poll for reading: the raw socket and every TUN.
    pub fn poll_fds(&self) -> Vec<RawFd> {
        self.userspace
            .as_ref()
            .map(|u| u.poll_fds())
            .unwrap_or_default()
    }

    /// Forwards what is waiting on `fd`; false if `fd` is not ours.
    pub fn on_readable(&mut self, fd: RawFd) -> bool {
        match self.userspace.as_mut() {
            Ok(u) => u.on_readable(fd),
            Err(_) => false,
        }
    }

    pub fn userspace_stats(&self) -> Option<UserspaceStats> {
        self.userspace.as_ref().ok().map(|u| u.stats())
    }
}

fn digits(n: usize) -> usize {
    n.to_string().len()
}
