//! luci-app-tmip's status view in real headless Chromium (Debian's
//! /usr/bin/chromium driven by playwright-core from npm, installed by
//! scripts/setup into openwrt/luci-app-tmip/tests/node_modules) against a
//! small stand-in for LuCI's JS runtime (openwrt/luci-app-tmip/tests/
//! standin.js, NOT LuCI) whose `rpc.declare`/`rpc.list` calls this test's
//! HTTP server forwards to real tmipd instances over the spec-written ubusd
//! (tests/support/fake_ubusd.rs, NOT the real ubusd).
//!
//! Two tmipd instances share the node's bus (`tmip` for CN1, `tmip.cn2`
//! for CN2, as two UCI sections would); a third CN has its own. A station
//! stays at its parent CN1, another roams CN1 -> CN3 -> CN2. The test
//! asserts that the picture of each instance has the MLR, the CN and its
//! peers, one node per station the instance knows, with the state and an
//! arrow from the parent to the CN it is at exactly where the station is
//! not at its parent, and CN2's handover bar. `TMIP_SCREENSHOTS=docs cargo
//! test --test luci_views` refreshes the screenshot in docs/luci-status.png.
#[path = "support/fake_ubusd.rs"]
mod fake_ubusd;

use fake_ubusd::*;
use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use tmip::ubus::client::{UbusClient, UbusEvent};
use tmip::ubus::msg::status;
use tmip::ubus::Value;
use tmip_testbed::bed::*;
use tmip_testbed::traffic::TcpCheck;

const UP: Duration = Duration::from_secs(20);

fn app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/luci-app-tmip")
}

fn json_str(s: &str) -> String {
    let mut o = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => o.push_str("\\\""),
            '\\' => o.push_str("\\\\"),
            c if (c as u32) < 0x20 => o.push_str(&format!("\\u{:04x}", c as u32)),
            c => o.push(c),
        }
    }
    o.push('"');
    o
}

/// A blobmsg value as JSON (what rpcd's JSON-RPC gives LuCI).
fn to_json(v: &Value) -> String {
    match v {
        Value::Table(t) => format!(
            "{{{}}}",
            t.iter()
                .map(|(k, v)| format!("{}:{}", json_str(k), to_json(v)))
                .collect::<Vec<_>>()
                .join(",")
        ),
        Value::Array(a) => format!("[{}]", a.iter().map(to_json).collect::<Vec<_>>().join(",")),
        Value::String(s) => json_str(s),
        Value::Int64(n) => n.to_string(),
        Value::Int32(n) => n.to_string(),
        Value::Int16(n) => n.to_string(),
        Value::Int8(n) => (*n != 0).to_string(),
        Value::Bool(b) => b.to_string(),
        Value::Double(d) => format!("{d}"),
        Value::Null => "null".into(),
    }
}

fn query(q: &str) -> Vec<(String, String)> {
    q.split('&')
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.replace("%2A", "*").replace("%2F", "/")))
        .collect()
}

/// The stand-in's server: the page, the runtime, the views, and `/ubus/*`
/// forwarded to the bus at `sock`.
fn serve(listener: TcpListener, sock: PathBuf, stop: Arc<AtomicBool>) {
    listener.set_nonblocking(true).expect("nonblocking");
    let mut bus = UbusClient::new(&sock);
    pump(&mut bus, Duration::from_secs(3), |ev| {
        matches!(ev, UbusEvent::Connected { .. }).then_some(())
    })
    .expect("server's ubus client connected");
    while !stop.load(Ordering::Relaxed) {
        let Ok((mut s, _)) = listener.accept() else {
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = s.set_nonblocking(false);
        let mut line = String::new();
        let mut r = BufReader::new(s.try_clone().expect("clone"));
        if r.read_line(&mut line).is_err() {
            continue;
        }
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h.trim().is_empty() {
                break;
            }
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, q) = target.split_once('?').unwrap_or((&target, ""));
        let (ctype, body): (&str, Vec<u8>) = match path {
            "/" => (
                "text/html",
                "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>TMip - LuCI</title>\
                 <style>body{font-family:sans-serif;margin:0;background:#fff;color:#222}\
                 header{background:#1f3a5f;color:#fff;padding:10px 20px;font-size:18px}\
                 #view{padding:10px 20px;max-width:960px}h2{margin:8px 0}h3{margin:18px 0 4px}\
                 .cbi-map-descr,.cbi-section-descr{color:#555;margin:4px 0 8px}\
                 table.table{border-collapse:collapse;font-size:13px}\
                 .table td,.table th{border:1px solid #ddd;padding:3px 10px;text-align:left}</style>\
                 <script src=\"/standin.js\"></script></head><body><header>OpenWrt &mdash; Services &rsaquo; TMip mobility</header>\
                 <div id=\"view\"></div><script>LuciStandin.run('/view/tmip/status.js')</script></body></html>"
                    .as_bytes()
                    .to_vec(),
            ),
            "/standin.js" => (
                "application/javascript",
                std::fs::read(app().join("tests/standin.js")).expect("standin"),
            ),
            "/ubus/list" => {
                // `ubus list`: every named object.
                let req = bus.lookup("*");
                let names = req
                    .ok()
                    .and_then(|req| {
                        pump(&mut bus, Duration::from_secs(3), |ev| match ev {
                            UbusEvent::Lookup {
                                req: r, objects, ..
                            } if r == req => Some(objects),
                            _ => None,
                        })
                    })
                    .unwrap_or_default();
                let list: Vec<String> = names.iter().map(|(n, _)| json_str(n)).collect();
                ("application/json", format!("[{}]", list.join(",")).into_bytes())
            }
            "/ubus/call" => {
                let q = query(q);
                let get = |k: &str| {
                    q.iter()
                        .find(|(a, _)| a == k)
                        .map(|(_, v)| v.clone())
                        .unwrap_or_default()
                };
                let (object, method) = (get("object"), get("method"));
                let mut args = Value::table();
                for (k, v) in &q {
                    if k != "object" && k != "method" {
                        args = args.with(k, Value::String(v.clone()));
                    }
                }
                let found = bus.lookup(&object).ok().and_then(|req| {
                    pump(&mut bus, Duration::from_secs(3), |ev| match ev {
                        UbusEvent::Lookup {
                            req: r, objects, ..
                        } if r == req => Some(!objects.is_empty()),
                        _ => None,
                    })
                });
                let (st, data) = if found == Some(true) {
                    call(&mut bus, &object, &method, args)
                } else {
                    (status::NOT_FOUND, Vec::new())
                };
                let body = match (st, data.first()) {
                    (status::OK, Some(d)) => to_json(d),
                    (status::OK, None) => "{}".into(),
                    (code, _) => format!("{{\"__status\":{code}}}"),
                };
                ("application/json", body.into_bytes())
            }
            p if p.starts_with("/view/") && !p.contains("..") => {
                match std::fs::read(app().join("htdocs/luci-static/resources").join(&p[1..])) {
                    Ok(b) => ("application/javascript", b),
                    Err(_) => ("text/plain", Vec::new()),
                }
            }
            _ => ("text/plain", Vec::new()),
        };
        let head = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: {ctype}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let _ = s.write_all(head.as_bytes());
        let _ = s.write_all(&body);
    }
}

fn parse_json(s: &str) -> serde_json_lite::J {
    serde_json_lite::parse(s).unwrap_or_else(|e| panic!("bad JSON from the browser test: {e}: {s}"))
}

/// Just enough JSON for the browser test's report.
mod serde_json_lite {
    #[derive(Debug, Clone, PartialEq)]
    pub enum J {
        Null,
        Bool(bool),
        Num(f64),
        Str(String),
        Arr(Vec<J>),
        Obj(Vec<(String, J)>),
    }
    impl J {
        pub fn get(&self, k: &str) -> &J {
            match self {
                J::Obj(o) => o
                    .iter()
                    .find(|(a, _)| a == k)
                    .map(|(_, v)| v)
                    .unwrap_or(&J::Null),
                _ => &J::Null,
            }
        }
        pub fn arr(&self) -> &[J] {
            match self {
                J::Arr(a) => a,
                _ => &[],
            }
        }
        pub fn s(&self) -> &str {
            match self {
                J::Str(s) => s,
                _ => "",
            }
        }
    }
    pub fn parse(s: &str) -> Result<J, String> {
        let b = s.as_bytes();
        let mut i = 0;
        let v = value(b, &mut i)?;
        Ok(v)
    }
    fn ws(b: &[u8], i: &mut usize) {
        while *i < b.len() && b[*i].is_ascii_whitespace() {
            *i += 1;
        }
    }
    fn value(b: &[u8], i: &mut usize) -> Result<J, String> {
        ws(b, i);
        match b.get(*i) {
            Some(b'{') => {
                *i += 1;
                let mut o = Vec::new();
                loop {
                    ws(b, i);
                    if b.get(*i) == Some(&b'}') {
                        *i += 1;
                        return Ok(J::Obj(o));
                    }
                    let J::Str(k) = value(b, i)? else {
                        return Err("key".into());
                    };
                    ws(b, i);
                    *i += 1; // ':'
                    o.push((k, value(b, i)?));
                    ws(b, i);
                    if b.get(*i) == Some(&b',') {
                        *i += 1;
                    }
                }
            }
            Some(b'[') => {
                *i += 1;
                let mut a = Vec::new();
                loop {
                    ws(b, i);
                    if b.get(*i) == Some(&b']') {
                        *i += 1;
                        return Ok(J::Arr(a));
                    }
                    a.push(value(b, i)?);
                    ws(b, i);
                    if b.get(*i) == Some(&b',') {
                        *i += 1;
                    }
                }
            }
            Some(b'"') => {
                *i += 1;
                let mut s = String::new();
                while let Some(&c) = b.get(*i) {
                    *i += 1;
                    match c {
                        b'"' => return Ok(J::Str(s)),
                        b'\\' => {
                            let e = b.get(*i).copied().unwrap_or(b'"');
                            *i += 1;
                            s.push(match e {
                                b'n' => '\n',
                                b't' => '\t',
                                other => other as char,
                            });
                        }
                        _ => s.push(c as char),
                    }
                }
                Err("string".into())
            }
            Some(b't') => {
                *i += 4;
                Ok(J::Bool(true))
            }
            Some(b'f') => {
                *i += 5;
                Ok(J::Bool(false))
            }
            Some(b'n') => {
                *i += 4;
                Ok(J::Null)
            }
            Some(_) => {
                let st = *i;
                while *i < b.len()
                    && (b[*i] == b'-' || b[*i] == b'.' || b[*i] == b'e' || b[*i].is_ascii_digit())
                {
                    *i += 1;
                }
                std::str::from_utf8(&b[st..*i])
                    .ok()
                    .and_then(|t| t.parse().ok())
                    .map(J::Num)
                    .ok_or_else(|| "number".into())
            }
            None => Err("end".into()),
        }
    }
}

#[test]
fn status_view_draws_every_instance_with_its_stations_and_arrows_in_chromium() {
    let mut bed = TestBed::with_cns(3);
    let node_sock = bed.dir.join("ubus-node.sock");
    let cn3_sock = bed.dir.join("ubus-cn3.sock");
    let _node_bus = FakeUbusd::start(&node_sock);
    let _cn3_bus = FakeUbusd::start(&cn3_sock);
    let node = node_sock.display().to_string();
    bed.set_rc(1, &["hostapd_ctrl off", &format!("ubus {node}")]);
    bed.set_rc(
        2,
        &[
            "hostapd_ctrl off",
            &format!("ubus {node}"),
            "ubus_object tmip.cn2",
        ],
    );
    bed.set_rc(
        3,
        &["hostapd_ctrl off", &format!("ubus {}", cn3_sock.display())],
    );
    if let Err(e) = bed.start_daemons(UP) {
        panic!("daemons did not start: {e}\n{}", bed.logs());
    }
    let home = bed.add_client(1);
    let roamer = bed.add_client(1);
    let mut cells = Vec::new();
    for i in [home, roamer] {
        match bed.client_dhcp(i, UP) {
            Ok(c) => cells.push(c),
            Err(e) => panic!("{e}\n{}", bed.logs()),
        }
    }
    let ms = bed.clients[roamer].ns.name.clone();
    let tcp = TcpCheck::start(&bed.srv.name, SRV_IP, 5401, &ms, Duration::from_millis(1))
        .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    std::thread::sleep(Duration::from_millis(300));
    for cell in [3, 2] {
        bed.move_client(roamer, cell);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(bed.claimants(cells[1]), vec![2], "{}", bed.cn_state());
    let _ = tcp.finish(Duration::from_secs(3));

    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/", listener.local_addr().expect("addr"));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (stop, sock) = (stop.clone(), node_sock.clone());
        std::thread::spawn(move || serve(listener, sock, stop))
    };
    // TMIP_SCREENSHOTS=docs refreshes docs/luci-status.png (what operators
    // see); otherwise the picture goes to the run directory.
    let shot = match std::env::var("TMIP_SCREENSHOTS") {
        Ok(d) if !d.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR"))
            .join(d)
            .join("luci-status.png"),
        _ => bed.dir.join("luci-status.png"),
    };
    let out = Command::new("node")
        .arg(app().join("tests/status.test.js"))
        .arg(&url)
        .arg(&shot)
        .output()
        .expect("node (scripts/setup installs nodejs)");
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "browser test failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    let report = parse_json(stdout.trim());
    assert!(
        report.get("errors").arr().is_empty(),
        "page errors: {stdout}"
    );
    let inst = report.get("instances").arr();
    let objects: Vec<&str> = inst.iter().map(|i| i.get("object").s()).collect();
    assert_eq!(objects, ["tmip", "tmip.cn2"], "{stdout}");

    let cn = |k: usize| cn_core_ip(k).to_string();
    let home_mac = bed.clients[home].mac.to_lowercase();
    let roam_mac = bed.clients[roamer].mac.to_lowercase();
    for (i, k) in [(0, 1), (1, 2)] {
        let v = &inst[i];
        assert_eq!(v.get("mlr"), &serde_json_lite::J::Num(1.0), "{stdout}");
        let cns: Vec<&str> = v
            .get("cns")
            .arr()
            .iter()
            .map(|c| c.get("addr").s())
            .collect();
        let me: Vec<&str> = v
            .get("cns")
            .arr()
            .iter()
            .filter(|c| c.get("me") == &serde_json_lite::J::Bool(true))
            .map(|c| c.get("addr").s())
            .collect();
        assert_eq!(me, [cn(k).as_str()], "{stdout}");
        assert!(
            cns.contains(&cn(1).as_str()) && cns.contains(&cn(2).as_str()),
            "{stdout}"
        );
        let st: Vec<(String, String, String, String)> = v
            .get("stations")
            .arr()
            .iter()
            .map(|s| {
                (
                    s.get("mac").s().to_lowercase(),
                    s.get("state").s().into(),
                    s.get("parent").s().into(),
                    s.get("at").s().into(),
                )
            })
            .collect();
        let arrows: Vec<(String, String, String)> = v
            .get("arrows")
            .arr()
            .iter()
            .map(|a| {
                (
                    a.get("mac").s().to_lowercase(),
                    a.get("from").s().into(),
                    a.get("to").s().into(),
                )
            })
            .collect();
        if k == 1 {
            // CN1: its home station, and the roamer it parents, away at CN2.
            assert!(
                st.contains(&(home_mac.clone(), "home".into(), cn(1), cn(1))),
                "{st:?}"
            );
            assert!(
                st.contains(&(roam_mac.clone(), "away".into(), cn(1), cn(2))),
                "{st:?}"
            );
            assert_eq!(arrows, vec![(roam_mac.clone(), cn(1), cn(2))], "{stdout}");
        } else {
            // CN2: the visitor, with an arrow from its parent CN1.
            assert_eq!(
                st,
                vec![(roam_mac.clone(), "visitor".into(), cn(1), cn(2))],
                "{stdout}"
            );
            assert_eq!(arrows, vec![(roam_mac.clone(), cn(1), cn(2))], "{stdout}");
            let h = v.get("handovers").arr();
            assert!(
                h.iter()
                    .any(|h| h.get("mac").s().eq_ignore_ascii_case(&roam_mac)
                        && h.get("from").s() == cn(3)),
                "CN2's timeline: {stdout}"
            );
        }
    }
    assert!(shot.exists(), "screenshot");
    println!("screenshot: {}", shot.display());
}
