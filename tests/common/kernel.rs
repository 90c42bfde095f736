//! What the running kernel offers, probed the way the daemons probe it, so
//! that a test can hold on any kernel: this build machine's (no ipip, no
//! Wi-Fi), Debian's in the radio lab guest (scripts/lab), an OpenWrt box.
//! Include with `#[path = "common/kernel.rs"] mod kernel;` after `mod common;`.
#![allow(dead_code)]

use crate::common::Netns;

/// Can this kernel make ipip devices (module built in, loaded or loadable)?
/// Probed in a fresh namespace by creating one, as the tunnel controller's
/// start-up probe does.
pub fn has_ipip() -> bool {
    let ns = Netns::new("kp");
    ns.sh_out("ip link add kprobe0 type ipip local 192.0.2.1 remote 192.0.2.2")
        .status
        .success()
}

/// Does this kernel have mac80211_hwsim (the simulated radios)?
pub fn has_hwsim() -> bool {
    std::path::Path::new("/sys/module/mac80211_hwsim").exists()
        || std::process::Command::new("modprobe")
            .args(["-n", "mac80211_hwsim"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
}

/// Running inside the radio lab's guest (scripts/lab sets TMIP_LAB=1)?
#[allow(unused_imports)]
pub use crate::common::in_lab;
