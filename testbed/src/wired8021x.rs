//! A wired IEEE 802.1X access point and station, the stand-in for Wi-Fi
//! association on veth links: a real hostapd (`driver=wired`, EAP-MD5 from
//! its internal EAP server) reports AP-STA-CONNECTED when a real
//! wpa_supplicant (`-D wired`) authenticates. Used by hostap's control
//! interface test and tmipd's hostapd test.
//!
//! A Linux bridge between the two drops 802.1X frames (to the PAE group
//! address) unless told to forward them: `group_fwd_mask 8`.

use crate::ns::{wait_for, Netns};
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;
use tmip::packet_socket::PacketSocket;

/// Write `hostapd-{iface}.conf` (and the EAP user file) in `dir`, with the
/// control socket directory `ctrl` (the socket is `ctrl/{iface}`).
pub fn hostapd_conf(dir: &Path, iface: &str, ctrl: &Path) -> PathBuf {
    let conf = dir.join(format!("hostapd-{iface}.conf"));
    fs::write(
        &conf,
        format!(
            "interface={iface}\ndriver=wired\nctrl_interface={}\nieee8021x=1\neap_server=1\n\
             eap_user_file={}\neapol_version=2\nlogger_stdout=-1\nlogger_stdout_level=2\n",
            ctrl.display(),
            dir.join("eap_user").display()
        ),
    )
    .expect("hostapd.conf");
    fs::write(dir.join("eap_user"), "\"tmip\"\tMD5\t\"secret\"\n").expect("eap_user");
    conf
}

/// Start hostapd in `ns` (stdout to `out`) and wait for its control socket
/// `sock`. Returns its pid (the namespace guard ends it).
pub fn start_hostapd(ns: &mut Netns, conf: &Path, sock: &Path, out: &Path) -> u32 {
    let _ = fs::remove_file(sock);
    let log = fs::File::create(out).expect("hostapd log");
    let mut c = ns.command("hostapd");
    c.arg(conf).stdout(Stdio::from(log)).stderr(Stdio::null());
    let pid = ns.spawn(c);
    assert!(
        wait_for(Duration::from_secs(5), || sock.exists().then_some(())).is_some(),
        "hostapd did not create {} (is hostapd installed?)\n{}",
        sock.display(),
        fs::read_to_string(out).unwrap_or_default()
    );
    pid
}

/// wpa_supplicant's control directory for `ifname` in `dir`.
pub fn supplicant_ctrl(dir: &Path, ifname: &str) -> PathBuf {
    dir.join(format!("wctrl-{ifname}"))
}

/// `wpa_cli -p CTRL -i IFNAME cmd` in `ns`: its output.
pub fn wpa_cli(ns: &Netns, dir: &Path, ifname: &str, cmd: &str) -> String {
    let out = ns.sh_out(&format!(
        "wpa_cli -p {} -i {ifname} {cmd}",
        supplicant_ctrl(dir, ifname).display()
    ));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Start wpa_supplicant on `ifname` in `ns` (config and control socket in
/// `dir`) and, once it is "associated" (its EAPOL machine runs), send an
/// EAPOL-Start from `mac` ourselves: wpa_supplicant waits a hard-coded 2 s
/// before its own first EAPOL-Start (eapol_supp_sm.c, state CONNECTING).
/// hostapd then sends EAP-Request/Identity at once. Returns its pid.
pub fn start_supplicant(ns: &mut Netns, ifname: &str, dir: &Path, mac: [u8; 6]) -> u32 {
    let conf = dir.join(format!("wpas-{ifname}.conf"));
    fs::write(
        &conf,
        format!(
            "ctrl_interface={}\nap_scan=0\nnetwork={{\n\tkey_mgmt=IEEE8021X\n\teap=MD5\n\t\
             identity=\"tmip\"\n\tpassword=\"secret\"\n\teapol_flags=0\n}}\n",
            supplicant_ctrl(dir, ifname).display()
        ),
    )
    .expect("wpas.conf");
    let mut c = ns.command("wpa_supplicant");
    c.args(["-D", "wired", "-i", ifname, "-c"]).arg(&conf);
    c.stdout(Stdio::null()).stderr(Stdio::null());
    let pid = ns.spawn(c);
    let ready = wait_for(Duration::from_secs(5), || {
        wpa_cli(ns, dir, ifname, "status")
            .contains("wpa_state=ASSOCIATED")
            .then_some(())
    });
    assert!(ready.is_some(), "wpa_supplicant did not start");
    send_eapol_start(ns, ifname, mac);
    pid
}

/// One EAPOL-Start (802.1X-2004: version 2, type 1, body length 0) to the
/// PAE group address, from a packet socket opened inside `ns`.
pub fn send_eapol_start(ns: &Netns, dev: &str, mac: [u8; 6]) {
    let mut frame = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x03];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x88, 0x8e, 0x02, 0x01, 0x00, 0x00]);
    frame.resize(60, 0);
    let sock = ns.run_in(|| PacketSocket::open(dev, 0, None));
    let sent = sock.and_then(|s| s.send(&frame));
    if let Err(e) = sent {
        panic!("EAPOL-Start on {dev} in {}: {e}", ns.name);
    }
}
