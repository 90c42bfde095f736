//! End-to-end ubus exchange over real unix sockets.
//!
//! There is no ubusd on this machine and none can be fetched, so `FakeUbusd`
//! (tests/support/fake_ubusd.rs) is a PROTOCOL PEER WRITTEN FROM THE SPEC (openwrt.md §4 and the
//! behaviour documented in ubus's ubusd_proto.c), NOT the real ubusd. It
//! implements what tmipd relies on: HELLO with the client id, ADD_OBJECT
//! (named with signature, or anonymous), LOOKUP, INVOKE forwarding with the
//! caller's id as `peer`, relaying DATA/STATUS replies with `peer` rewritten
//! to the object id, SUBSCRIBE (+ NOTIFY {ACTIVE} to the publisher), NOTIFY
//! fan-out as INVOKE to each subscriber (honouring NO_REPLY), and
//! UNSUBSCRIBE when a target's client goes away. It is strict: a reply
//! without the attributes ubusd requires is dropped, so a client that gets
//! the format wrong fails these tests.
//!
//! "hostapd" is played by raw frames written by the test (MsgBuilder), the
//! `ubus call` side by a second UbusClient.

#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;

use fake_ubusd::*;
use std::io::{Read, Write};
use std::os::unix::net::UnixListener;
use std::time::{Duration, Instant};
use tmip::cn::ubus_object::{object_spec, HostapdWatch};
use tmip::ubus::blob::{Attrs, Value};
use tmip::ubus::client::{UbusClient, UbusEvent};
use tmip::ubus::msg::{status, MsgBuilder, MsgType, UbusMsg};
use tmip_testbed::RunDir;

// ---------------------------------------------------------------------------
// Test-side helpers.

/// Drive clients as the daemon's loop would until `want` returns Some.
fn pump<T>(
    clients: &mut [&mut UbusClient],
    timeout: Duration,
    mut want: impl FnMut(usize, UbusEvent, &mut UbusClient) -> Option<T>,
) -> Option<T> {
    let deadline = Instant::now() + timeout;
    let mut next_tick = Instant::now();
    while Instant::now() < deadline {
        let now = Instant::now();
        if now >= next_tick {
            for c in clients.iter_mut() {
                c.tick(now);
            }
            next_tick = now + Duration::from_millis(50);
        }
        let mut pfds: Vec<libc::pollfd> = clients
            .iter()
            .map(|c| libc::pollfd {
                fd: c.fd().unwrap_or(-1),
                events: libc::POLLIN,
                revents: 0,
            })
            .collect();
        // SAFETY: valid pollfd array.
        unsafe { libc::poll(pfds.as_mut_ptr(), pfds.len() as libc::nfds_t, 10) };
        for (i, c) in clients.iter_mut().enumerate() {
            if pfds[i].revents != 0 {
                c.on_readable();
            }
            while let Some(ev) = c.poll_event() {
                if let Some(r) = want(i, ev, c) {
                    return Some(r);
                }
            }
        }
    }
    None
}

/// A raw-frame peer playing hostapd: publishes `hostapd.wlan0`, sends NOTIFYs.
const STA: &str = "02:11:22:33:44:55";
const STA_MAC: [u8; 6] = [2, 0x11, 0x22, 0x33, 0x44, 0x55];

#[test]
fn tmip_object_calls_and_hostapd_subscription_over_a_spec_written_ubusd() {
    use hostap::StationEvent;
    let dir = RunDir::new("ubus-e2e");
    let sock = dir.join("ubus.sock");
    let ubusd = FakeUbusd::start(&sock);

    let mut tmipd = UbusClient::new(&sock);
    tmipd.add_object(object_spec("tmip"));
    // Subscribe before hostapd exists: retried on tick until it appears.
    tmipd.subscribe("hostapd.wlan0");
    // What tmipd makes of the subscription (cn::ubus_object): station
    // events from notifications, get_clients after each (re)subscription.
    let mut watch = HostapdWatch::new("hostapd.wlan0");
    let tmip_id = pump(
        &mut [&mut tmipd],
        Duration::from_secs(3),
        |_, ev, _| match ev {
            UbusEvent::ObjectAdded { path, id } if path == "tmip" => Some(id),
            _ => None,
        },
    )
    .expect("tmip object published");
    assert!(!tmipd.is_subscribed("hostapd.wlan0"));

    let mut hapd = FakeHostapd::connect(&sock);
    let target = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev);
        match ev {
            UbusEvent::Subscribed { target, .. } => Some(target),
            _ => None,
        }
    })
    .expect("subscribed once hostapd.wlan0 exists");
    assert_eq!(target, hapd.obj);
    // ubusd told the publisher it has a subscriber (hostapd's has_subscribers).
    let n = hapd.recv();
    let m = UbusMsg::parse(&n).expect("notify");
    assert_eq!(m.hdr.msg_type(), Some(MsgType::Notify));
    assert_eq!(m.attrs.active, Some(1));

    // Right after subscribing, the client asks hostapd for the stations it
    // already has (get_clients): the authorized one is reported.
    let clients = Value::table().with("freq", Value::Int32(2412)).with(
        "clients",
        Value::table()
            .with(
                "02:aa:00:00:00:01",
                Value::table()
                    .with("auth", Value::Bool(true))
                    .with("assoc", Value::Bool(true))
                    .with("authorized", Value::Bool(true))
                    .with("aid", Value::Int32(1)),
            )
            .with(
                "02:aa:00:00:00:02",
                Value::table()
                    .with("auth", Value::Bool(true))
                    .with("authorized", Value::Bool(false)),
            ),
    );
    hapd.serve_get_clients(&clients);
    let ev = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev).into_iter().next()
    })
    .expect("resync station event");
    assert_eq!(
        ev,
        StationEvent::Connected {
            mac: [2, 0xaa, 0, 0, 0, 1],
            vlan: None
        }
    );

    // hostapd notifies sta-authorized: a Connected station event with its VLAN.
    let data = Value::table()
        .with("address", Value::String(STA.into()))
        .with("auth-alg", Value::String("open".into()))
        .with("vlan", Value::Int32(7))
        .with("ifname", Value::String("wlan0".into()));
    let seq = hapd.notify("sta-authorized", &data, false);
    let ev = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev).into_iter().next()
    })
    .expect("station event");
    assert_eq!(
        ev,
        StationEvent::Connected {
            mac: STA_MAC,
            vlan: Some(7)
        }
    );
    // hostapd gets ubusd's STATUS (with SUBSCRIBERS) then our status relayed.
    let st1 = hapd.recv();
    let m1 = UbusMsg::parse(&st1).expect("status 1");
    assert_eq!((m1.hdr.seq, m1.attrs.status), (seq, Some(0)));
    let subs: Vec<u32> = Attrs::new(m1.attrs.subscribers.expect("subscribers"))
        .filter_map(|a| a.ok().and_then(|a| a.u32()))
        .collect();
    assert_eq!(subs.len(), 1);
    let st2 = hapd.recv();
    let m2 = UbusMsg::parse(&st2).expect("status 2");
    assert_eq!(m2.hdr.msg_type(), Some(MsgType::Status));
    assert_eq!((m2.hdr.seq, m2.hdr.peer), (seq, subs[0]));
    assert_eq!(m2.attrs.status, Some(0));

    // disassoc with NO_REPLY: a Disconnected event and no status back.
    hapd.notify(
        "disassoc",
        &Value::table().with("address", Value::String(STA.into())),
        true,
    );
    let ev = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev).into_iter().next()
    })
    .expect("disassoc event");
    assert_eq!(ev, StationEvent::Disconnected { mac: STA_MAC });

    // `ubus call tmip status` from another client: lookup, invoke, DATA+STATUS.
    let mut cli = UbusClient::new(&sock);
    pump(&mut [&mut cli], Duration::from_secs(3), |_, ev, _| {
        matches!(ev, UbusEvent::Connected { .. }).then_some(())
    })
    .expect("caller connected");
    let lk = cli.lookup("tmip").expect("lookup");
    let found = pump(
        &mut [&mut cli],
        Duration::from_secs(3),
        |_, ev, _| match ev {
            UbusEvent::Lookup {
                req,
                status,
                objects,
            } if req == lk => Some((status, objects)),
            _ => None,
        },
    )
    .expect("lookup reply");
    assert_eq!(found, (0, vec![("tmip".to_string(), tmip_id)]));
    let call = cli
        .invoke(
            tmip_id,
            "clients",
            &Value::table().with("mac", Value::String(STA.into())),
        )
        .expect("invoke");
    let answer = Value::table()
        .with("cn", Value::String("cn1".into()))
        .with("clients", Value::Int32(1));
    let reply = pump(
        &mut [&mut tmipd, &mut cli],
        Duration::from_secs(3),
        |i, ev, c| match (i, ev) {
            (0, UbusEvent::Call(call)) => {
                assert_eq!(call.method, "clients");
                assert_eq!(call.args.get("mac").and_then(Value::as_str), Some(STA));
                assert_eq!(call.user.as_deref(), Some("root"));
                c.reply(&call, 0, Some(&answer)).expect("reply");
                None
            }
            (1, UbusEvent::Reply { req, status, data }) if req == call => Some((status, data)),
            _ => None,
        },
    )
    .expect("reply reached the caller");
    assert_eq!(reply, (0, vec![answer.clone()]));

    // Unknown method: METHOD_NOT_FOUND without bothering the daemon.
    let bad = cli
        .invoke(tmip_id, "reboot", &Value::table())
        .expect("invoke");
    let st = pump(
        &mut [&mut tmipd, &mut cli],
        Duration::from_secs(3),
        |i, ev, _| match (i, ev) {
            (0, UbusEvent::Call(_)) => panic!("unknown method reached the daemon"),
            (1, UbusEvent::Reply { req, status, .. }) if req == bad => Some(status),
            _ => None,
        },
    );
    assert_eq!(st, Some(status::METHOD_NOT_FOUND));

    // hostapd exits: unsubscribed; it comes back: subscribed again by tick.
    drop(hapd);
    pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, _| {
        matches!(ev, UbusEvent::Unsubscribed { .. }).then_some(())
    })
    .expect("unsubscribed when hostapd left");
    let hapd2 = FakeHostapd::connect(&sock);
    let t2 = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev);
        match ev {
            UbusEvent::Subscribed { target, .. } => Some(target),
            _ => None,
        }
    })
    .expect("re-subscribed to the restarted hostapd");
    assert_eq!(t2, hapd2.obj);
    drop(hapd2);
    drop(cli);

    // ubusd restarts: the client reconnects, republishes and resubscribes.
    ubusd.stop();
    pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, _| {
        matches!(ev, UbusEvent::Disconnected).then_some(())
    })
    .expect("noticed ubusd leaving");
    let _ubusd2 = FakeUbusd::start(&sock);
    let mut hapd3 = FakeHostapd::connect(&sock);
    let mut published = false;
    pump(&mut [&mut tmipd], Duration::from_secs(5), |_, ev, c| {
        watch.station_events(c, &ev);
        if matches!(&ev, UbusEvent::ObjectAdded { path, .. } if path == "tmip") {
            published = true;
        }
        (published && matches!(ev, UbusEvent::Subscribed { .. })).then_some(())
    })
    .expect("republished and resubscribed after ubusd restart");
    hapd3.recv(); // NOTIFY ACTIVE
    hapd3.notify(
        "assoc",
        &Value::table().with("address", Value::String(STA.into())),
        true,
    );
    let ev = pump(&mut [&mut tmipd], Duration::from_secs(3), |_, ev, c| {
        watch.station_events(c, &ev).into_iter().next()
    });
    assert_eq!(
        ev,
        Some(StationEvent::Connected {
            mac: STA_MAC,
            vlan: None
        })
    );
}

#[test]
fn garbage_from_ubusd_drops_the_connection_not_the_process() {
    let dir = RunDir::new("ubus-e2e");
    let sock = dir.join("bad.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    let mut c = UbusClient::new(&sock);
    c.tick(Instant::now());
    let (mut s, _) = l.accept().expect("accept");
    // Version 7 header: the stream cannot be trusted any more.
    s.write_all(&[7, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 4])
        .expect("write");
    let ev = pump(&mut [&mut c], Duration::from_secs(2), |_, ev, _| Some(ev));
    assert_eq!(ev, Some(UbusEvent::Disconnected));
    assert!(c.fd().is_none());
}

#[test]
fn requests_ubusd_never_completes_time_out() {
    let dir = RunDir::new("ubus-e2e");
    let sock = dir.join("mute.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    let mut c = UbusClient::new(&sock);
    c.add_object(object_spec("tmip"));
    c.tick(Instant::now());
    let (mut s, _) = l.accept().expect("accept");
    // HELLO only; then silence (a hung ubusd).
    s.write_all(
        &MsgBuilder::new(MsgType::Hello, 0, 42)
            .finish()
            .expect("hello"),
    )
    .expect("write");
    pump(&mut [&mut c], Duration::from_secs(2), |_, ev, _| {
        matches!(ev, UbusEvent::Connected { client_id: 42 }).then_some(())
    })
    .expect("hello");
    let req = c.invoke(7, "get_clients", &Value::table()).expect("invoke");
    c.tick(Instant::now() + tmip::ubus::client::REQUEST_TIMEOUT + Duration::from_secs(1));
    let mut got = Vec::new();
    while let Some(ev) = c.poll_event() {
        got.push(ev);
    }
    assert!(got.contains(&UbusEvent::Reply {
        req,
        status: status::TIMEOUT,
        data: vec![]
    }));
    assert!(got.contains(&UbusEvent::ObjectFailed {
        path: "tmip".into(),
        status: status::TIMEOUT
    }));
}

/// Random but well-framed messages of every type with random attributes
/// (including ids, methods and DATA that do not match anything) are
/// survived: no panic, and the connection keeps working afterwards.
#[test]
fn random_frames_from_ubusd_are_survived() {
    let dir = RunDir::new("ubus-e2e");
    let sock = dir.join("fuzz.sock");
    let l = UnixListener::bind(&sock).expect("bind");
    let mut c = UbusClient::new(&sock);
    c.add_object(object_spec("tmip"));
    c.subscribe("hostapd.wlan0");
    c.tick(Instant::now());
    let (mut s, _) = l.accept().expect("accept");
    s.write_all(
        &MsgBuilder::new(MsgType::Hello, 0, 9)
            .finish()
            .expect("hello"),
    )
    .expect("hello");
    pump(&mut [&mut c], Duration::from_secs(2), |_, ev, _| {
        matches!(ev, UbusEvent::Connected { .. }).then_some(())
    })
    .expect("connected");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut rnd = move || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    for _ in 0..3000 {
        let typ = MsgType::from_u8((rnd() % 12) as u8).expect("type");
        let seq = (rnd() % 8) as u16;
        let peer = (rnd() % 4) as u32;
        let mut b = MsgBuilder::new(typ, seq, peer);
        for _ in 0..(rnd() % 6) {
            let id = (rnd() % 15) as u8;
            b = match rnd() % 5 {
                0 => b.u32(id, (rnd() % 4) as u32),
                1 => b.string(
                    id,
                    ["status", "clients", "sta-authorized", "disassoc", ""][(rnd() % 5) as usize],
                ),
                2 => b.fields(
                    id,
                    &Value::table()
                        .with("address", Value::String("02:00:00:00:00:01".into()))
                        .with("vlan", Value::Int32((rnd() % 5000) as i32)),
                ),
                3 => {
                    let junk: Vec<u8> = (0..(rnd() % 24)).map(|_| rnd() as u8).collect();
                    b.raw(id, &junk)
                }
                _ => b.u8(id, (rnd() % 2) as u8),
            };
        }
        s.write_all(&b.finish().expect("frame")).expect("write");
        c.on_readable();
        while let Some(UbusEvent::Call(call)) = c.poll_event() {
            let _ = c.reply(&call, 0, Some(&Value::table()));
        }
    }
    // Drain what the client answered, then check it still talks sanely.
    s.set_nonblocking(true).expect("nb");
    let mut sink = [0u8; 65536];
    while s.read(&mut sink).map(|n| n > 0).unwrap_or(false) {}
    assert!(c.is_connected(), "well-framed input must not drop the link");
    let req = c.lookup("x").expect("still usable");
    assert!(req.0 > 0);
}
