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

use hostap::{format_mac, parse_mac, HostapdCtrl, LinkState, Mac, StationEvent};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tmip_testbed::{require_root, veth, wait_for, Netns, RunDir};

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
        wait_for(Duration::from_secs(5), || sock.exists().then_some(())).is_some(),
        "hostapd did not create {} (is hostapd installed?)",
        sock.display()
    );
    pid
}

/// Start wpa_supplicant and, once it is "associated" (its EAPOL machine
/// runs), send an EAPOL-Start from its MAC ourselves: wpa_supplicant waits a
/// hard-coded 2 s before its own first EAPOL-Start (eapol_supp_sm.c, state
/// CONNECTING), which would make this test slow for nothing. hostapd then
/// sends EAP-Request/Identity at once and wpa_supplicant answers it.
fn start_supplicant(ns: &mut Netns, conf: &Path, dir: &Path, mac: Mac) -> u32 {
    let mut c = ns.command("wpa_supplicant");
    c.args(["-D", "wired", "-i", "sta0", "-c"]).arg(conf);
    c.stdout(Stdio::null());
    let pid = ns.spawn(c);
    let cli = format!("wpa_cli -p {} -i sta0 status", dir.join("wctrl").display());
    let ready = wait_for(Duration::from_secs(5), || {
        let out = ns.sh_out(&cli);
        String::from_utf8_lossy(&out.stdout)
            .contains("wpa_state=ASSOCIATED")
            .then_some(())
    });
    assert!(ready.is_some(), "wpa_supplicant did not start");
    send_eapol_start(ns, "sta0", mac);
    pid
}

/// One EAPOL-Start (802.1X-2004: version 2, type 1, body length 0) to the
/// PAE group address, from a packet socket opened inside `ns`.
fn send_eapol_start(ns: &Netns, dev: &str, mac: Mac) {
    use std::os::fd::AsRawFd;
    let path = format!("/run/netns/{}", ns.name);
    let dev = std::ffi::CString::new(dev).expect("dev");
    let mut frame = vec![0x01, 0x80, 0xc2, 0x00, 0x00, 0x03];
    frame.extend_from_slice(&mac);
    frame.extend_from_slice(&[0x88, 0x8e, 0x02, 0x01, 0x00, 0x00]);
    frame.resize(60, 0);
    std::thread::spawn(move || {
        let f = std::fs::File::open(&path).expect("open netns");
        // SAFETY: setns/socket/bind/send/close with checked results on
        // descriptors this thread owns; setns affects this thread only.
        unsafe {
            assert_eq!(libc::setns(f.as_raw_fd(), libc::CLONE_NEWNET), 0);
            let fd = libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0);
            assert!(
                fd >= 0,
                "packet socket: {}",
                std::io::Error::last_os_error()
            );
            let mut sll: libc::sockaddr_ll = std::mem::zeroed();
            sll.sll_family = libc::AF_PACKET as u16;
            sll.sll_ifindex = libc::if_nametoindex(dev.as_ptr()) as i32;
            let r = libc::bind(
                fd,
                (&sll as *const libc::sockaddr_ll).cast(),
                std::mem::size_of::<libc::sockaddr_ll>() as u32,
            );
            assert_eq!(r, 0, "bind: {}", std::io::Error::last_os_error());
            let n = libc::send(fd, frame.as_ptr().cast(), frame.len(), 0);
            assert_eq!(n, frame.len() as isize);
            libc::close(fd);
        }
    })
    .join()
    .expect("eapol thread");
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
    require_root();
    let dir = RunDir::new("hap");
    let (hapd_conf, wpas_conf) = write_configs(&dir);
    let mut ap = Netns::new("hap");
    let mut sta = Netns::new("hst");
    veth(&ap, "ap0", &sta, "sta0");
    let sta_mac = mac_of(&sta, "sta0");
    let sock = dir.join("ctrl").join("ap0");

    let hapd = start_hostapd(&mut ap, &hapd_conf, &sock);
    let mut c = HostapdCtrl::new(&sock, &dir).expect("client");
    c.attach_blocking(Duration::from_secs(2)).expect("ATTACH");
    assert_eq!(c.state(), LinkState::Attached);
    assert_eq!(
        c.request("PING", Duration::from_secs(2)).expect("PING"),
        "PONG\n"
    );

    let t0 = Instant::now();
    let sup = start_supplicant(&mut sta, &wpas_conf, &dir, sta_mac);
    let (ev, _) = wait_event(&mut c, Duration::from_secs(10), |e| {
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
        "AP-STA-CONNECTED {} {:?} after starting wpa_supplicant (EAP-MD5 over wired)",
        format_mac(&sta_mac),
        t0.elapsed()
    );

    wpa_cli(&sta, &dir, "logoff");
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
        wait_for(Duration::from_secs(3), || {
            c.drain(|_| {});
            (c.tick() == LinkState::Down).then_some(())
        })
        .is_some(),
        "client did not notice hostapd leaving"
    );
    println!("hostapd loss noticed after {:?}", gone.elapsed());
    // The station authenticates while we are NOT attached (its
    // AP-STA-CONNECTED is lost to us); re-attaching walks hostapd's station
    // table (STA-FIRST/STA-NEXT) and reports it anyway.
    start_hostapd(&mut ap, &hapd_conf, &sock);
    start_supplicant(&mut sta, &wpas_conf, &dir, sta_mac);
    let status = format!("wpa_cli -p {} -i sta0 status", dir.join("wctrl").display());
    wait_for(Duration::from_secs(10), || {
        let out = sta.sh_out(&status);
        String::from_utf8_lossy(&out.stdout)
            .contains("suppPortStatus=Authorized")
            .then_some(())
    })
    .expect("station authorized by the restarted hostapd");
    assert_eq!(c.state(), LinkState::Down);
    let (ev, t) = wait_event(&mut c, Duration::from_secs(5), |e| {
        matches!(e, StationEvent::Connected { .. })
    })
    .expect("station reported by the resync after re-attaching");
    assert_eq!(c.state(), LinkState::Attached);
    assert_eq!(
        ev,
        StationEvent::Connected {
            mac: sta_mac,
            vlan: None
        }
    );
    println!("re-attached and station resynced after {t:?}");
    // And live events flow again.
    wpa_cli(&sta, &dir, "logoff");
    let (ev, _) = wait_event(&mut c, Duration::from_secs(5), |e| {
        matches!(e, StationEvent::Disconnected { .. })
    })
    .expect("AP-STA-DISCONNECTED after re-attach");
    assert_eq!(ev.mac(), sta_mac);

    let local = c.local_path().to_path_buf();
    drop(c);
    assert!(!local.exists());
    // The Netns guards kill hostapd/wpa_supplicant by pid and delete the namespaces.
}
