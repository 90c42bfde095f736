//! Real 802.11 for the radio lab (scripts/lab: Debian's kernel in a QEMU
//! guest): `mac80211_hwsim` radios moved into test namespaces, hostapd
//! (nl80211, WPA2-PSK) access points and wpa_supplicant stations on them,
//! and the station's reassociation to another BSSID (`wpa_cli roam`).
//!
//! hwsim radios on one channel all hear each other; an AP keeps a station
//! that left without a deauth until `ap_max_inactivity`, so the APs here
//! sit on different channels with a short inactivity limit.
//!
//! Include with `#[path = "common/radio.rs"] mod radio;` after `mod common;`
//! and `#[path = "common/kernel.rs"] mod kernel;`.
#![allow(dead_code)]

use crate::common::{sh, sh_out, wait_for, Netns};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

pub const SSID: &str = "tmip-lab";
pub const PASSPHRASE: &str = "tmip-lab-passphrase";
/// Seconds an AP keeps a silent station (hostapd's default is 300).
pub const AP_MAX_INACTIVITY: u32 = 5;

/// The longest a hostapd 2.10 AP keeps a station that went silent, by its
/// `ap_handle_timer` (src/ap/sta_info.c): the inactivity check runs
/// `ap_max_inactivity + fuzz - inactive` seconds after the previous one,
/// `fuzz = os_random() % 20` (0-19 s), so a check made just before the
/// station left may schedule the next one `ap_max_inactivity + 19` s later;
/// that one polls the station (a null-data frame), `AP_DISASSOC_DELAY`
/// (3 s) later it disassociates an unanswered station and
/// `AP_DEAUTH_DELAY` (1 s) after that removes it (and its WDS netdev).
/// Counted from the station's last frame to the AP.
pub const AP_DROP_WORST: Duration = Duration::from_secs(AP_MAX_INACTIVITY as u64 + 19 + 3 + 1);

/// The module's radios are global: one user at a time in this process.
static HWSIM: Mutex<()> = Mutex::new(());

/// Runs this test in the radio lab's guest when the running kernel has no
/// `mac80211_hwsim` (this build machine): boots scripts/lab with this test
/// binary and test name, its output shown as it comes, and fails unless it
/// passed there. Returns `true` when the caller should run the test here.
pub fn here_or_in_lab(test: &str) -> bool {
    if crate::kernel::has_hwsim() {
        return true;
    }
    assert!(
        !crate::kernel::in_lab(),
        "inside the lab but the kernel has no mac80211_hwsim"
    );
    let exe = std::env::current_exe().expect("current_exe");
    let lab = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/lab");
    eprintln!("{test}: no mac80211_hwsim in this kernel: running it in the radio lab");
    let st = std::process::Command::new(&lab)
        .args(["-t", "1500"])
        .arg(&exe)
        .args([test, "--exact", "--nocapture", "--test-threads=1"])
        .stdin(Stdio::null())
        .status()
        .expect("scripts/lab");
    assert!(st.success(), "{test} failed in the radio lab ({st})");
    false
}

/// One simulated radio: its wiphy and the interface hwsim made on it.
#[derive(Clone, Debug)]
pub struct Radio {
    pub phy: String,
    pub ifname: String,
    pub mac: String,
}

/// `mac80211_hwsim` loaded with `n` radios; unloaded on drop.
pub struct Radios {
    pub radios: Vec<Radio>,
    _only_user: MutexGuard<'static, ()>,
}

impl Radios {
    pub fn load(n: usize) -> Radios {
        let guard = HWSIM.lock().unwrap_or_else(|e| e.into_inner());
        // Radios a failed run left behind go with the module.
        let _ = sh_out("modprobe -r mac80211_hwsim");
        sh(&format!("modprobe mac80211_hwsim radios={n}"));
        let mut radios = Vec::new();
        let mut phys: Vec<String> = std::fs::read_dir("/sys/class/ieee80211")
            .expect("/sys/class/ieee80211")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        phys.sort_by_key(|p| p.trim_start_matches("phy").parse::<u32>().unwrap_or(0));
        for phy in phys {
            let dir = PathBuf::from(format!("/sys/class/ieee80211/{phy}/device/net"));
            let Some(ifname) = std::fs::read_dir(&dir).ok().and_then(|mut d| {
                d.next()
                    .and_then(|e| e.ok())
                    .map(|e| e.file_name().to_string_lossy().to_string())
            }) else {
                continue;
            };
            let mac = std::fs::read_to_string(format!("/sys/class/net/{ifname}/address"))
                .unwrap_or_default()
                .trim()
                .to_string();
            radios.push(Radio { phy, ifname, mac });
        }
        assert_eq!(radios.len(), n, "hwsim made {radios:?}");
        Radios {
            radios,
            _only_user: guard,
        }
    }

    /// Moves radio `i` (its wiphy, and the interface with it) into `ns` and
    /// renames the interface `name`. Returns its MAC (an AP's BSSID).
    pub fn give(&self, i: usize, ns: &Netns, name: &str) -> String {
        let r = &self.radios[i];
        sh(&format!("iw phy {} set netns name {}", r.phy, ns.name));
        ns.sh(&format!("ip link set {} name {name}", r.ifname));
        r.mac.clone()
    }
}

impl Drop for Radios {
    fn drop(&mut self) {
        let _ = sh_out("modprobe -r mac80211_hwsim");
    }
}

/// A hostapd access point (driver nl80211, WPA2-PSK) in a namespace.
pub struct Ap {
    pub ifname: String,
    pub bssid: String,
    pub channel: u8,
    /// The control socket (`<dir>/<ifname>`): tmipd's `hostapd_ctrl`.
    pub ctrl: PathBuf,
    pub log: PathBuf,
    pub pid: u32,
}

/// Extra hostapd.conf settings.
#[derive(Default, Clone)]
pub struct ApOptions {
    /// `bridge=`: hostapd puts the AP interface (and WDS station netdevs)
    /// into this bridge.
    pub bridge: Option<String>,
    /// `wds_sta=1`: a four-address station gets its own AP/VLAN netdev.
    pub wds_sta: bool,
}

impl Ap {
    pub fn start(
        ns: &mut Netns,
        dir: &Path,
        ifname: &str,
        bssid: &str,
        channel: u8,
        opts: &ApOptions,
    ) -> Ap {
        let ctrl_dir = dir.join(format!("hostapd-{ifname}"));
        let conf = dir.join(format!("hostapd-{ifname}.conf"));
        let log = dir.join(format!("hostapd-{ifname}.log"));
        let mut text = format!(
            "interface={ifname}\ndriver=nl80211\nctrl_interface={}\nssid={SSID}\n\
             hw_mode=g\nchannel={channel}\nwpa=2\nwpa_passphrase={PASSPHRASE}\n\
             wpa_key_mgmt=WPA-PSK\nrsn_pairwise=CCMP\nap_max_inactivity={AP_MAX_INACTIVITY}\n\
             logger_stdout=-1\nlogger_stdout_level=2\n",
            ctrl_dir.display()
        );
        if let Some(b) = &opts.bridge {
            text.push_str(&format!("bridge={b}\n"));
        }
        if opts.wds_sta {
            text.push_str("wds_sta=1\n");
        }
        std::fs::write(&conf, text).expect("hostapd.conf");
        // -d: the inactivity timer's decisions (active / polled / ACKed /
        // disassociated) are debug messages; a test that waits for an AP to
        // drop a station shows them when it does not.
        let mut c = ns.command("hostapd");
        c.arg("-t").arg("-d").arg(&conf);
        c.stdout(Stdio::from(
            std::fs::File::create(&log).expect("hostapd log"),
        ))
        .stderr(Stdio::null());
        let pid = ns.spawn(c);
        let up = wait_for(Duration::from_secs(20), || {
            read(&log).contains("AP-ENABLED").then_some(())
        });
        assert!(
            up.is_some(),
            "hostapd on {ifname} not enabled:\n{}",
            read(&log)
        );
        Ap {
            ifname: ifname.to_string(),
            bssid: bssid.to_string(),
            channel,
            ctrl: ctrl_dir.join(ifname),
            log,
            pid,
        }
    }

    pub fn log_text(&self) -> String {
        read(&self.log)
    }

    /// What this AP's log says about `mac`'s inactivity timer and removal
    /// (ap_handle_timer, active/inactive, poll ACKed, disassociation,
    /// deauthentication, WDS netdev), one line each.
    pub fn timer_lines(&self, mac: &str) -> Vec<String> {
        const KEYS: [&str; 8] = [
            "ap_handle_timer",
            "active",
            "ACKed",
            "Polling",
            "disassoc",
            "deauth",
            "WDS-STA",
            "AP-STA-",
        ];
        // "Polling STA" names no station (these APs serve one at a time).
        let mac = mac.to_lowercase();
        self.log_text()
            .lines()
            .filter(|l| {
                l.contains("Polling STA")
                    || (l.to_lowercase().contains(&mac) && KEYS.iter().any(|k| l.contains(k)))
            })
            .map(String::from)
            .collect()
    }

    /// The evidence when this AP (in `ns`) keeps a station it should have
    /// dropped: the kernel's view of its stations (`iw station dump`:
    /// inactive time, rx/tx packets, tx failures), its radio's channel, its
    /// timer lines for `mac` and the last 60 lines of its log.
    pub fn evidence(&self, ns: &Netns, mac: &str) -> String {
        let out = ns.sh_out(&format!(
            "iw dev {0} station dump; iw dev {0} info; ip -br link",
            self.ifname
        ));
        let log = self.log_text();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(60)..].join("\n");
        format!(
            "== AP {} ({}, channel {}): station dump and interfaces\n{}{}\n\
             == its timer lines for {mac}\n{}\n== the last 60 lines of its log\n{tail}\n",
            self.ifname,
            self.bssid,
            self.channel,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr),
            self.timer_lines(mac).join("\n"),
        )
    }
}

/// wpa_supplicant (nl80211) on `eth0` of a station namespace.
pub struct Station {
    pub ns_name: String,
    pub ifname: String,
    pub ctrl_dir: PathBuf,
    pub log: PathBuf,
    pub pid: u32,
}

impl Station {
    /// Starts wpa_supplicant and waits until it is associated to one of the
    /// APs (either: the caller asks where with [`Station::bssid`]).
    pub fn start(ns: &mut Netns, dir: &Path, ifname: &str) -> Station {
        let ctrl_dir = dir.join(format!("wpas-{}", ns.name));
        let conf = dir.join(format!("wpas-{}.conf", ns.name));
        let log = dir.join(format!("wpas-{}.log", ns.name));
        std::fs::write(
            &conf,
            format!(
                "ctrl_interface={}\nap_scan=1\nnetwork={{\n\tssid=\"{SSID}\"\n\t\
                 psk=\"{PASSPHRASE}\"\n\tkey_mgmt=WPA-PSK\n\tproto=RSN\n\tpairwise=CCMP\n}}\n",
                ctrl_dir.display()
            ),
        )
        .expect("wpas.conf");
        let mut c = ns.command("wpa_supplicant");
        c.args(["-D", "nl80211", "-i", ifname, "-t", "-c"])
            .arg(&conf)
            .stdout(Stdio::from(std::fs::File::create(&log).expect("wpas log")))
            .stderr(Stdio::null());
        let pid = ns.spawn(c);
        let st = Station {
            ns_name: ns.name.clone(),
            ifname: ifname.to_string(),
            ctrl_dir,
            log,
            pid,
        };
        let ok = wait_for(Duration::from_secs(60), || st.completed());
        assert!(
            ok.is_some(),
            "the station did not associate:\n{}",
            read(&st.log)
        );
        st
    }

    pub fn cli(&self, args: &str) -> String {
        let out = sh_out(&format!(
            "ip netns exec {} wpa_cli -p {} -i {} {args}",
            self.ns_name,
            self.ctrl_dir.display(),
            self.ifname
        ));
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The BSSID it is associated with, once the 4-way handshake is done.
    pub fn completed(&self) -> Option<String> {
        let s = self.cli("status");
        if !s.lines().any(|l| l == "wpa_state=COMPLETED") {
            return None;
        }
        s.lines()
            .find_map(|l| l.strip_prefix("bssid="))
            .map(|b| b.to_lowercase())
    }

    pub fn bssid(&self) -> String {
        self.completed().expect("associated")
    }

    /// Makes sure `bssid` is in the scan results (scans until it is).
    pub fn scan_for(&self, bssid: &str) {
        let found = wait_for(Duration::from_secs(30), || {
            if self.cli("scan_results").to_lowercase().contains(bssid) {
                return Some(());
            }
            self.cli("scan");
            std::thread::sleep(Duration::from_millis(1500));
            None
        });
        assert!(found.is_some(), "{bssid} not in the scan results");
    }

    /// Real reassociation to `bssid` (`wpa_cli roam`). Returns when the
    /// command was given and how long until the station was associated
    /// (4-way handshake done) to the new AP. Under emulation a reassociation
    /// sometimes never completes (a lost frame of the handshake); the roam
    /// is then asked for again, up to three times, and the figure covers
    /// all attempts (their number is printed).
    pub fn roam(&self, bssid: &str) -> (Instant, Duration) {
        let t = Instant::now();
        for attempt in 1..=3 {
            if attempt > 1 {
                println!("  (roam to {bssid}: attempt {attempt})");
                self.scan_for(bssid);
            }
            let r = self.cli(&format!("roam {bssid}"));
            assert!(r.contains("OK"), "wpa_cli roam {bssid}: {r}");
            let done = wait_for(Duration::from_secs(12), || {
                (self.completed().as_deref() == Some(bssid)).then(Instant::now)
            });
            if let Some(done) = done {
                return (t, done - t);
            }
        }
        let log = read(&self.log);
        let tail: Vec<&str> = log.lines().rev().take(40).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "no reassociation to {bssid}:\n{}\nwpa_supplicant:\n{}",
            self.cli("status"),
            tail.join("\n")
        )
    }
}

pub fn read(p: &Path) -> String {
    std::fs::read_to_string(p).unwrap_or_default()
}

/// Milliseconds, one decimal.
pub fn ms(d: Duration) -> String {
    format!("{:.1}", d.as_secs_f64() * 1000.0)
}
