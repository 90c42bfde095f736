//! tmipd's ubus events (`ubus listen tmip`) through a three-move roam in
//! network namespaces: mlrd and three real tmipd, a real DHCP client
//! (busybox udhcpc) and a real TCP flow; each CN has its own ubusd (as each
//! router does), played by `FakeUbusd` (tests/support/fake_ubusd.rs, a
//! PROTOCOL PEER WRITTEN FROM THE SPEC, not the real ubusd), and a
//! `FakeListener` per CN registers the pattern `tmip` on the event object
//! as `ubus listen tmip` does. The test asserts what each CN announces:
//! arrival and adoption at the parent, then per move a `handover` at the
//! new CN (from, to, parent and the interruption it measured) and a
//! `departed` at the old one; it prints the interruption figures.
#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;

use fake_ubusd::*;
use std::time::{Duration, Instant};
use tmip::ubus::Value;
use tmip_testbed::bed::*;
use tmip_testbed::traffic::TcpCheck;

const UP: Duration = Duration::from_secs(20);

fn field<'a>(v: &'a Value, k: &str) -> &'a str {
    v.get(k).and_then(Value::as_str).unwrap_or("")
}

/// Wait on CN `k`'s listener for an event of kind `kind` (keeping every
/// event seen in `log`); panic with what arrived and the daemons' logs.
fn wait_event(
    l: &mut FakeListener,
    log: &mut Vec<(usize, Value)>,
    k: usize,
    kind: &str,
    bed: &TestBed,
) -> Value {
    if let Some((_, v)) = log
        .iter()
        .find(|(c, v)| *c == k && field(v, "event") == kind)
    {
        return v.clone();
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some((id, v)) = l.next_event(deadline - Instant::now()) {
            assert_eq!(id, "tmip", "event id is the object's name");
            println!("CN{k}: {v:?}");
            log.push((k, v.clone()));
            if field(&v, "event") == kind {
                return v;
            }
        }
    }
    panic!(
        "CN{k}: no '{kind}' event; seen {log:?}\n{}\n{}",
        bed.cn_state(),
        bed.logs()
    );
}

#[test]
fn ubus_listen_shows_a_three_move_roam_with_interruption_figures() {
    let mut bed = TestBed::with_cns(3);
    let mut ubusds = Vec::new();
    for k in 1..=3 {
        let sock = bed.dir.join(format!("ubus-cn{k}.sock"));
        ubusds.push(FakeUbusd::start(&sock));
        bed.set_rc(
            k,
            &["hostapd_ctrl off", &format!("ubus {}", sock.display())],
        );
    }
    if let Err(e) = bed.start_daemons(UP) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    for k in 1..=3 {
        assert!(
            bed.cns[k - 1].wait_log("published ubus object 'tmip'", 0, 10),
            "{}",
            bed.cns[k - 1].log_text()
        );
    }
    // `ubus listen tmip` on each CN's bus.
    let mut listeners: Vec<FakeListener> = (1..=3)
        .map(|k| FakeListener::connect(&bed.dir.join(format!("ubus-cn{k}.sock")), "tmip"))
        .collect();
    let mut seen: Vec<(usize, Value)> = Vec::new();
    let cn = |k: usize| cn_core_ip(k).to_string();

    let i = bed.add_client(1);
    let c = match bed.client_dhcp(i, UP) {
        Ok(c) => c,
        Err(e) => panic!("{e}\n{}", bed.logs()),
    };
    let ip = c.station().to_string();
    let mac = bed.clients[i].mac.to_lowercase();
    let arrived = wait_event(&mut listeners[0], &mut seen, 1, "arrived", &bed);
    assert_eq!(field(&arrived, "how"), "dhcp");
    assert_eq!(field(&arrived, "mac"), mac);
    let adopted = wait_event(&mut listeners[0], &mut seen, 1, "adopted", &bed);
    assert_eq!(field(&adopted, "ip"), ip);
    assert_eq!(field(&adopted, "parent"), cn(1));
    assert_eq!(
        adopted.get("parent_here").and_then(Value::as_bool),
        Some(true)
    );

    // Traffic both ways, so each new cell sees the client at once.
    let ms = bed.clients[i].ns.name.clone();
    let tcp = match TcpCheck::start(
        &bed.srv.name,
        SRV_IP,
        5301,
        &ms,
        tmip_testbed::traffic::stream_1ms(),
    ) {
        Ok(t) => t,
        Err(e) => panic!("{e}\n{}", bed.logs()),
    };
    std::thread::sleep(Duration::from_millis(300));

    let mut figures = Vec::new();
    let mut from = 1;
    for to in [2, 3, 1] {
        seen.clear();
        bed.move_client(i, to);
        let h = wait_event(&mut listeners[to - 1], &mut seen, to, "handover", &bed);
        assert_eq!(field(&h, "mac"), mac);
        assert_eq!(field(&h, "ip"), ip);
        assert_eq!(field(&h, "from"), cn(from), "{h:?}");
        assert_eq!(field(&h, "to"), cn(to), "{h:?}");
        assert_eq!(field(&h, "parent"), cn(1), "{h:?}");
        assert_eq!(field(&h, "cn"), cn(to), "{h:?}");
        let ms = match h.get("interruption_ms") {
            Some(Value::Double(d)) => *d,
            other => panic!("interruption_ms: {other:?}"),
        };
        let us = h
            .get("interruption_us")
            .and_then(Value::as_i64)
            .unwrap_or(-1);
        assert!(
            ms > 0.0 && ms < 5000.0 && (us as f64 / 1000.0 - ms).abs() < 0.2,
            "interruption {ms} ms / {us} us"
        );
        // The CN it left says so: withdrawn, or redirected by the parent.
        let d = wait_event(&mut listeners[from - 1], &mut seen, from, "departed", &bed);
        assert_eq!(field(&d, "mac"), mac);
        if from == 1 {
            assert_eq!(field(&d, "reason"), "redirected", "{d:?}");
            assert_eq!(field(&d, "to"), cn(to), "{d:?}");
        } else {
            assert_eq!(field(&d, "reason"), "withdrawn", "{d:?}");
        }
        println!(
            "move CN{from} -> CN{to}: handover event, interruption {ms:.1} ms ({}, measured by CN{to})",
            field(&h, "how")
        );
        figures.push(ms);
        from = to;
    }
    // The claim is delivery, not speed: TCP may sit in RTO back-off after
    // the third move on a loaded machine, so the drain bound is generous;
    // a stall past it prints every CN's routes and the logs.
    let (us, ur, ds, dr, err) = tcp.finish(tmip_testbed::time_bound(Duration::from_secs(15)));
    if err.is_some() || (ur, dr) != (us, ds) {
        panic!(
            "after three moves: MS->srv {ur}/{us} B, srv->MS {dr}/{ds} B delivered, error {err:?}\n{}\n{}",
            bed.cn_state(),
            bed.logs()
        );
    }
    println!("interruptions (first frame to adoption) over three moves: {figures:?} ms");
    drop(listeners);
    drop(bed);
    drop(ubusds);
}
