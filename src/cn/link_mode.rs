//! Is the mobile interface a link of its own, or shared with hosts that are
//! not stations? The seed's deployments have both: a CN whose mobile
//! interface only reaches an access point ("separate"), and a CN with one
//! interface that serves mobile hosts and is its CN interface too, or whose
//! mobile interface is a wired LAN or OpenWrt's `br-lan` bridge ("shared").
//!
//! On a shared link other hosts have the stations' addresses on-link (the
//! pool is carved from the link's subnet) and cache their MACs. When a
//! station leaves, its parent answers ARP for it and announces that (the
//! core's `ProxyArp`), and announces the station again when it comes back;
//! a visiting station's traffic to the link's subnet stays on the link
//! instead of going round through its parent.

use crate::config::tmipd::{SharedLink, TmipdConfig};
use std::net::Ipv4Addr;

/// The mode of the mobile interface, and why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LinkMode {
    Separate,
    Shared(SharedWhy),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SharedWhy {
    /// `mobile_if` is also `cn_if`: one interface.
    SameAsCnIf,
    /// `mobile_if` is a bridge (wired ports next to the radio).
    Bridge,
    /// `shared_link on`.
    Configured,
}

impl LinkMode {
    /// `mobile_is_bridge`: the interface is a Linux bridge
    /// (`/sys/class/net/IF/bridge` exists).
    pub fn decide(cfg: &TmipdConfig, mobile_is_bridge: bool) -> LinkMode {
        match cfg.shared_link {
            SharedLink::Off => LinkMode::Separate,
            SharedLink::On if cfg.mobile_if == cfg.cn_if => LinkMode::Shared(SharedWhy::SameAsCnIf),
            SharedLink::On => LinkMode::Shared(SharedWhy::Configured),
            SharedLink::Auto if cfg.mobile_if == cfg.cn_if => {
                LinkMode::Shared(SharedWhy::SameAsCnIf)
            }
            SharedLink::Auto if mobile_is_bridge => LinkMode::Shared(SharedWhy::Bridge),
            SharedLink::Auto => LinkMode::Separate,
        }
    }

    /// Decide for the running system (reads sysfs for the bridge check).
    pub fn of(cfg: &TmipdConfig) -> LinkMode {
        let bridge = std::path::Path::new("/sys/class/net")
            .join(&cfg.mobile_if)
            .join("bridge")
            .exists();
        LinkMode::decide(cfg, bridge)
    }

    pub fn is_shared(self) -> bool {
        matches!(self, LinkMode::Shared(_))
    }

    /// The start-up log lines: one per interface.
    pub fn report(self, cfg: &TmipdConfig) -> Vec<String> {
        let proxy = "stations that leave stay reachable from its hosts (proxy ARP)";
        match self {
            LinkMode::Separate => vec![
                format!("  + cn_if {}: separate (the network side)", cfg.cn_if),
                format!("  + mobile_if {}: separate (stations only)", cfg.mobile_if),
            ],
            LinkMode::Shared(SharedWhy::SameAsCnIf) => vec![format!(
                "  + cn_if and mobile_if {}: shared (one interface for the network and the stations): {proxy}",
                cfg.mobile_if
            )],
            LinkMode::Shared(why) => vec![
                format!("  + cn_if {}: separate (the network side)", cfg.cn_if),
                format!(
                    "  + mobile_if {}: shared ({}): {proxy}",
                    cfg.mobile_if,
                    if why == SharedWhy::Bridge {
                        "a bridge, other hosts on its ports"
                    } else {
                        "shared_link on"
                    }
                ),
            ],
        }
    }
}

/// The network of `ip`/`prefix` (the link's subnet).
pub fn subnet(ip: Ipv4Addr, prefix: u8) -> (Ipv4Addr, u8) {
    let mask = u32::MAX
        .checked_shl(32 - u32::from(prefix.min(32)))
        .unwrap_or(0);
    (Ipv4Addr::from(u32::from(ip) & mask), prefix.min(32))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(text: &str) -> TmipdConfig {
        TmipdConfig::parse("t.rc", text).expect("valid config")
    }

    const BASE: &str = "mlr 10.0.0.250\nnetwork_name n\n";

    #[test]
    fn one_interface_or_a_bridge_is_shared_unless_turned_off() {
        let one = cfg(&format!("{BASE}cn_if core0\nmobile_if core0\n"));
        assert_eq!(
            LinkMode::decide(&one, false),
            LinkMode::Shared(SharedWhy::SameAsCnIf)
        );
        let two = cfg(&format!("{BASE}cn_if wan\nmobile_if br-lan\n"));
        assert_eq!(
            LinkMode::decide(&two, true),
            LinkMode::Shared(SharedWhy::Bridge)
        );
        assert_eq!(LinkMode::decide(&two, false), LinkMode::Separate);
        let on = cfg(&format!(
            "{BASE}cn_if wan\nmobile_if eth1\nshared_link on\n"
        ));
        assert_eq!(
            LinkMode::decide(&on, false),
            LinkMode::Shared(SharedWhy::Configured)
        );
        let off = cfg(&format!(
            "{BASE}cn_if core0\nmobile_if core0\nshared_link off\n"
        ));
        assert_eq!(LinkMode::decide(&off, true), LinkMode::Separate);
    }

    #[test]
    fn the_report_names_each_interface_and_its_mode() {
        let one = cfg(&format!("{BASE}cn_if core0\nmobile_if core0\n"));
        let r = LinkMode::Shared(SharedWhy::SameAsCnIf).report(&one);
        assert_eq!(r.len(), 1);
        assert!(r[0].contains("cn_if and mobile_if core0: shared"), "{r:?}");
        let two = cfg(&format!("{BASE}cn_if wan\nmobile_if wlan0\n"));
        let r = LinkMode::Separate.report(&two);
        assert!(r[0].contains("cn_if wan: separate"), "{r:?}");
        assert!(r[1].contains("mobile_if wlan0: separate"), "{r:?}");
    }

    /// Every ```rc block of docs/TMIPD.md's "Deployment shapes", with the
    /// mode the section says it has.
    #[test]
    fn the_deployment_shapes_of_the_docs_parse_in_their_mode() {
        let doc = include_str!("../../docs/TMIPD.md");
        let section = doc
            .split("## Deployment shapes")
            .nth(1)
            .and_then(|s| s.split("\n## ").next())
            .expect("docs/TMIPD.md has a Deployment shapes section");
        let blocks: Vec<&str> = section
            .split("```rc\n")
            .skip(1)
            .filter_map(|b| b.split("```").next())
            .collect();
        let mut modes = Vec::new();
        for b in &blocks {
            let c = TmipdConfig::parse("docs/TMIPD.md", b)
                .unwrap_or_else(|e| panic!("example config does not parse: {e}\n{b}"));
            // In the examples, bridges are named br-*.
            modes.push(LinkMode::decide(&c, c.mobile_if.starts_with("br-")));
        }
        assert_eq!(
            modes,
            vec![
                LinkMode::Separate,                      // separate interfaces
                LinkMode::Shared(SharedWhy::SameAsCnIf), // one interface
                LinkMode::Shared(SharedWhy::Configured), // wired LAN with hosts
                LinkMode::Shared(SharedWhy::Bridge),     // OpenWrt br-lan
                LinkMode::Separate,                      // several CNs on one node
                LinkMode::Separate,                      // central pool
            ]
        );
    }

    #[test]
    fn subnet_masks_the_host_bits() {
        assert_eq!(
            subnet(Ipv4Addr::new(10, 3, 0, 1), 24),
            (Ipv4Addr::new(10, 3, 0, 0), 24)
        );
        assert_eq!(
            subnet(Ipv4Addr::new(10, 3, 0, 1), 0),
            (Ipv4Addr::UNSPECIFIED, 0)
        );
        assert_eq!(
            subnet(Ipv4Addr::new(10, 3, 0, 1), 32),
            (Ipv4Addr::new(10, 3, 0, 1), 32)
        );
    }
}
