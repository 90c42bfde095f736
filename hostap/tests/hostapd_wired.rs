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
use std::path::Path;
use std::time::{Duration, Instant};
use tmip_testbed::wired8021x::{hostapd_conf, start_hostapd, start_supplicant, wpa_cli};
use tmip_testbed::{require_root, veth, wait_for, Netns, RunDir};

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

fn logoff(ns: &Netns, dir: &Path) {
    let out = wpa_cli(ns, dir, "sta0", "logoff");
    assert!(out.contains("OK"), "wpa_cli logoff: {out}");
}

#[test]
fn real_hostapd_reports_connect_disconnect_and_survives_restart() {
    require_root();
    let dir = RunDir::new("hap");
    let ctrl = dir.join("ctrl");
    let hapd_conf = hostapd_conf(&dir, "ap0", &ctrl);
    let hlog = dir.join("hostapd.log");
    let mut ap = Netns::new("hap");
    let mut sta = Netns::new("hst");
    veth(&ap, "ap0", &sta, "sta0");
    let sta_mac = mac_of(&sta, "sta0");
    let sock = ctrl.join("ap0");

    let hapd = start_hostapd(&mut ap, &hapd_conf, &sock, &hlog);
    let mut c = HostapdCtrl::new(&sock, &dir).expect("client");
    c.attach_blocking(Duration::from_secs(2)).expect("ATTACH");
    assert_eq!(c.state(), LinkState::Attached);
    assert_eq!(
        c.request("PING", Duration::from_secs(2)).expect("PING"),
        "PONG\n"
    );

    let t0 = Instant::now();
    let sup = start_supplicant(&mut sta, "sta0", &dir, sta_mac);
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

    logoff(&sta, &dir);
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
    start_hostapd(&mut ap, &hapd_conf, &sock, &hlog);
    start_supplicant(&mut sta, "sta0", &dir, sta_mac);
    wait_for(Duration::from_secs(10), || {
        wpa_cli(&sta, &dir, "sta0", "status")
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
    logoff(&sta, &dir);
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
