//! The control-interface client against a REAL hostapd (`driver=wired`) on a
//! veth in namespaces this test makes, with a real wpa_supplicant (`-D
//! wired`) authenticating by IEEE 802.1X EAP-MD5 against hostapd's internal
//! EAP server. hostapd's wired driver only learns a station from its EAPOL
//! frames, and with `ieee8021x=1` it reports AP-STA-CONNECTED when EAP
//! succeeds (sta_info.c ap_sta_set_authorized) and AP-STA-DISCONNECTED on an
//! EAPOL-Logoff (`wpa_cli logoff`).
//!
//! Needs root, hostapd and wpa_supplicant (scripts/setup installs them);
//! fails without them.

#[path = "../../tests/common/mod.rs"]
mod common;

use common::{veth, Netns};
use hostap::{format_mac, parse_mac, HostapdCtrl, LinkState, Mac, StationEvent};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

struct TempDir(PathBuf);
impl TempDir {
    fn new() -> TempDir {
        let p = std::env::temp_dir().join(common::unique("hap"));
        std::fs::create_dir_all(&p).expect("temp dir");
        TempDir(p)
    }
}
impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn write_configs(dir: &Path) -> (PathBuf, PathBuf) {
    let hapd = dir.join("hostapd.conf");
    std::fs::write(
        &hapd,
        format!(
            "interface=ap0\ndriver=wired\nctrl_interface={}\nieee8021x=1\neap_server=1\n\
             eap_user_file={}\neapol_version=2\nlogger_stdout=-1\nlogger_stdout_level=2\n",
            dir.join("ctrl").display(),
            dir.join("eap_user").display()
        ),
    )
    .expect("hostapd.conf");
    std::fs::write(dir.join("eap_user"), "\"tmip\"\tMD5\t\"secret\"\n").expect("eap_user");
    let wpas = dir.join("wpas.conf");
    std::fs::write(
        &wpas,
        format!(
            "ctrl_interface={}\nap_scan=0\nnetwork={{\n\tkey_mgmt=IEEE8021X\n\teap=MD5\n\t\
             identity=\"tmip\"\n\tpassword=\"secret\"\n\teapol_flags=0\n}}\n",
            dir.join("wctrl").display()
        ),
    )
    .expect("wpas.conf");
    (hapd, wpas)
}

fn start_hostapd(ns: &mut Netns, conf: &Path, sock: &Path) -> u32 {
    let _ = std::fs::remove_file(sock);
    let mut c = ns.command("hostapd");
    c.arg(conf).stdout(Stdio::null());
    let pid = ns.spawn(c);
    assert!(
        common::wait_for(Duration::from_secs(5), || sock.exists().then_some(())).is_some(),
        "hostapd did not create {} (is hostapd installed?)",
        sock.display()
    );
    pid
}

fn start_supplicant(ns: &mut Netns, conf: &Path) -> u32 {
    let mut c = ns.command("wpa_supplicant");
    c.args(["-D", "wired", "-i", "sta0", "-c"]).arg(conf);
    c.stdout(Stdio::null());
    ns.spawn(c)
}

/// Drive the client as the daemon would (poll its fd, drain, tick every
/// 200 ms) until `want` matches an event or `timeout` passes.
fn wait_event(
    c: &mut HostapdCtrl,
    timeout: Duration,
    want: impl Fn(&StationEvent) -> bool,
) -> Option<(StationEvent, Duration)> {
    let start = Instant::now();
    let mut next_tick = start;
    loop {
        let now = Instant::now();
        if now >= next_tick {
            c.tick();
            next_tick = now + Duration::from_millis(200);
        }
        let mut pfd = libc::pollfd {
            fd: c.fd(),
            events: libc::POLLIN,
            revents: 0,
        };
        // SAFETY: one valid pollfd.
        unsafe { libc::poll(&mut pfd, 1, 50) };
        let mut found = None;
        c.drain(|ev| {
            if found.is_none() && want(&ev) {
                found = Some(ev);
            }
        });
        if let Some(ev) = found {
            return Some((ev, start.elapsed()));
        }
        if start.elapsed() > timeout {
            return None;
        }
    }
}

fn mac_of(ns: &Netns, dev: &str) -> Mac {
    let s = ns.sh(&format!("cat /sys/class/net/{dev}/address"));
    parse_mac(s.trim()).expect("mac from sysfs")
}

fn wpa_cli(ns: &Netns, dir: &Path, cmd: &str) {
    let out = ns.sh(&format!(
        "wpa_cli -p {} -i sta0 {cmd}",
        dir.join("wctrl").display()
    ));
    assert!(out.contains("OK"), "wpa_cli {cmd}: {out}");
}

#[test]
fn real_hostapd_reports_connect_disconnect_and_survives_restart() {
    common::require_root();
    let dir = TempDir::new();
    let (hapd_conf, wpas_conf) = write_configs(&dir.0);
    let mut ap = Netns::new("hap");
    let mut sta = Netns::new("hst");
    veth(&ap, "ap0", &sta, "sta0");
    let sta_mac = mac_of(&sta, "sta0");
    let sock = dir.0.join("ctrl").join("ap0");

    let hapd = start_hostapd(&mut ap, &hapd_conf, &sock);
    let mut c = HostapdCtrl::new(&sock, &dir.0).expect("client");
    c.attach_blocking(Duration::from_secs(2)).expect("ATTACH");
    assert_eq!(c.state(), LinkState::Attached);
    assert_eq!(
        c.request("PING", Duration::from_secs(2)).expect("PING"),
        "PONG\n"
    );

    let sup = start_supplicant(&mut sta, &wpas_conf);
    let (ev, t) = wait_event(&mut c, Duration::from_secs(10), |e| {
        matches!(e, StationEvent::Connected { .. })
    })
    .expect("AP-STA-CONNECTED from hostapd");
    assert_eq!(
        ev,
        StationEvent::Connected {
            mac: sta_mac,
            vlan: None
        }
    );
    println!(
        "AP-STA-CONNECTED {} after {t:?} (EAP-MD5 over wired)",
        format_mac(&sta_mac)
    );

    wpa_cli(&sta, &dir.0, "logoff");
    let (ev, t) = wait_event(&mut c, Duration::from_secs(5), |e| {
        matches!(e, StationEvent::Disconnected { .. })
    })
    .expect("AP-STA-DISCONNECTED after EAPOL-Logoff");
    assert_eq!(ev, StationEvent::Disconnected { mac: sta_mac });
    println!("AP-STA-DISCONNECTED after {t:?}");

    // hostapd restarts: the client notices (unanswered PING / refused send),
    // re-attaches to the new socket by itself and gets the new events.
    ap.kill(hapd);
    sta.kill(sup);
    let gone = Instant::now();
    assert!(
        common::wait_for(Duration::from_secs(3), || {
            c.drain(|_| {});
            (c.tick() == LinkState::Down).then_some(())
        })
        .is_some(),
        "client did not notice hostapd leaving"
    );
    println!("hostapd loss noticed after {:?}", gone.elapsed());
    start_hostapd(&mut ap, &hapd_conf, &sock);
    start_supplicant(&mut sta, &wpas_conf);
    let (ev, t) = wait_event(&mut c, Duration::from_secs(10), |e| {
        matches!(e, StationEvent::Connected { .. })
    })
    .expect("AP-STA-CONNECTED after hostapd restart");
    assert_eq!(c.state(), LinkState::Attached);
    assert_eq!(ev.mac(), sta_mac);
    println!("re-attached and AP-STA-CONNECTED again after {t:?}");

    let local = c.local_path().to_path_buf();
    drop(c);
    assert!(!local.exists());
    // The Netns guards kill hostapd/wpa_supplicant by pid and delete the namespaces.
}
