//! tmipd on ubus, against `FakeUbusd` (tests/support/fake_ubusd.rs): a
//! PROTOCOL PEER WRITTEN FROM THE SPEC, NOT the real ubusd (there is none
//! on this machine). tmipd runs for real (with mlrd, in namespaces); the
//! unix socket lives in the test's temporary directory, which every
//! namespace sees.
//!
//! - tmipd publishes its object (`tmip`) and answers `status` with the
//!   USR1 document's fields (what the LuCI view reads), `clients` and `cns`;
//! - it subscribes to `hostapd.mob0` (played by `FakeHostapd` with raw
//!   frames), and a `sta-authorized` notification for a station bound at
//!   another CN makes it adopt the station, as the control interface does.
#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;

use fake_ubusd::*;
use std::time::Duration;
use tmip::ubus::client::{UbusClient, UbusEvent};
use tmip::ubus::msg::{status, MsgType, UbusMsg};
use tmip::ubus::Value;
use tmip_testbed::bed::*;

fn array<'a>(v: &'a Value, key: &str) -> &'a [Value] {
    match v.get(key) {
        Some(Value::Array(a)) => a,
        other => panic!("{key}: want an array, got {other:?} in {v:?}"),
    }
}

#[test]
fn tmipd_publishes_its_status_and_adopts_on_hostapd_ubus_notifications() {
    let mut bed = TestBed::with_cns(2);
    let sock = bed.dir.join("ubus.sock");
    let ubusd = FakeUbusd::start(&sock);
    let hostapd_obj = format!("hostapd.{MOBILE_IF}");
    bed.set_rc(1, &["hostapd_ctrl off", "ubus off"]);
    bed.set_rc(
        2,
        &[
            "debug_level 4",
            "hostapd_ctrl off",
            &format!("ubus {}", sock.display()),
        ],
    );
    bed.start_all();
    assert!(
        bed.cns[1].wait_log("published ubus object 'tmip'", 0, 5),
        "{}",
        bed.cns[1].log_text()
    );

    // One line per publication (the client and tmipd used to log it both).
    let log = bed.cns[1].log_text();
    assert_eq!(log.matches("published ubus object").count(), 1, "{log}");

    let mut me = UbusClient::new(&sock);
    pump(&mut me, Duration::from_secs(3), |ev| {
        matches!(ev, UbusEvent::Connected { .. }).then_some(())
    })
    .expect("test client connected to the fake ubusd");
    let (st, data) = call(&mut me, "tmip", "status", Value::table());
    assert_eq!(st, status::OK);
    let s = data.first().expect("status data");
    assert_eq!(s.get("name").and_then(Value::as_str), Some("CN2 test-bed"));
    assert_eq!(s.get("network").and_then(Value::as_str), Some(NETWORK_NAME));
    let cn2 = cn_core_ip(2).to_string();
    assert_eq!(s.get("cn").and_then(Value::as_str), Some(cn2.as_str()));
    assert_eq!(s.get("mlr_up").and_then(Value::as_bool), Some(true));
    assert!(s.get("version").and_then(Value::as_str).is_some());
    assert_eq!(s.get("max_stations").and_then(Value::as_i64), Some(256));
    assert!(array(s, "stations").is_empty());
    assert!(s.get("counters").and_then(|c| c.get("adoptions")).is_some());
    println!("tmip status over the spec-written ubusd peer: {s:?}");
    let (st, _) = call(&mut me, "tmip", "nonsense", Value::table());
    assert_eq!(st, status::METHOD_NOT_FOUND);

    // A station with a binding from CN 1 moves to CN 2's cell, silent.
    let c = bed.add_client(1);
    bed.udhcpc(c, &["-n", "-q"]);
    let ip = bed.clients[c]
        .wait_event(&["bound"], 0, 20)
        .unwrap_or_else(|| panic!("no lease at CN 1\n{}", bed.cns[0].log_text()));
    bed.clients[c].wait_dhcp(Duration::from_secs(5));
    let sta_mac = bed.clients[c].mac.to_lowercase();
    bed.move_client(c, 2);

    // hostapd.mob0 appears on the bus: tmipd subscribes, asks get_clients.
    let from = bed.cns[1].log_text().len();
    let mut hapd = FakeHostapd::connect_as(&sock, &hostapd_obj);
    let n = UbusMsg::parse(&hapd.recv()).map(|m| (m.hdr.msg_type(), m.attrs.active));
    assert_eq!(
        n.ok(),
        Some((Some(MsgType::Notify), Some(1))),
        "not subscribed"
    );
    hapd.serve_get_clients(&Value::table().with("clients", Value::table()));
    assert!(
        bed.cns[1].wait_log(&format!("subscribed to {hostapd_obj}"), from, 5),
        "{}",
        bed.cns[1].log_text()
    );
    let data = Value::table()
        .with("address", Value::String(sta_mac.clone()))
        .with("auth-alg", Value::String("open".into()))
        .with("ifname", Value::String(MOBILE_IF.into()));
    hapd.notify("sta-authorized", &data, true);
    assert!(
        bed.cns[1].wait_log("from association event to adoption", from, 10),
        "CN 2 did not adopt on the ubus notification\n{}",
        bed.cns[1].log_text()
    );
    let log2 = bed.cns[1].log_text()[from..].to_string();
    assert!(
        log2.contains(&format!(
            "station {sta_mac} connected on {MOBILE_IF} (ubus {hostapd_obj})"
        )),
        "{log2}"
    );
    // The log line is the core's decision; the data plane (source guard,
    // route, ARP) carries it out right after.
    let has_route = || {
        let route = bed.cns[1].ns.sh(&format!("ip -4 route show {ip}"));
        route.contains(&format!("dev {MOBILE_IF}")).then_some(route)
    };
    let route = tmip_testbed::ns::wait_for(Duration::from_secs(2), has_route)
        .unwrap_or_else(|| bed.cns[1].ns.sh(&format!("ip -4 route show {ip}")));
    assert!(
        route.contains(&format!("dev {MOBILE_IF}")),
        "no route to {ip} at CN 2: {route}"
    );

    // clients and cns show it.
    let (st, data) = call(
        &mut me,
        "tmip",
        "clients",
        Value::table().with("mac", Value::String(sta_mac.clone())),
    );
    assert_eq!(st, status::OK);
    let list = array(&data[0], "clients");
    assert_eq!(list.len(), 1, "{data:?}");
    assert_eq!(list[0].get("ip").and_then(Value::as_str), Some(ip.as_str()));
    assert_eq!(list[0].get("at").and_then(Value::as_str), Some("here"));
    assert_eq!(
        list[0].get("parent").and_then(Value::as_str),
        Some(cn_core_ip(1).to_string().as_str())
    );
    assert!(list[0].get("since").and_then(Value::as_i64).is_some());
    let (st, _) = call(
        &mut me,
        "tmip",
        "clients",
        Value::table().with("mac", Value::String("bogus".into())),
    );
    assert_eq!(st, status::INVALID_ARGUMENT);
    let (_, data) = call(&mut me, "tmip", "cns", Value::table());
    let cns = array(&data[0], "cns");
    assert!(
        cns.iter()
            .any(|p| p.get("cn").and_then(Value::as_str) == Some(&*cn_core_ip(1).to_string())),
        "{data:?}"
    );
    let (_, data) = call(&mut me, "tmip", "status", Value::table());
    assert_eq!(array(&data[0], "stations").len(), 1);

    bed.cns[1].stop();
    bed.cns[0].stop();
    drop(ubusd);
}
