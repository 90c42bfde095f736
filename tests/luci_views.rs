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
use tmip::config::keys::json_str;
use tmip::ubus::client::{UbusClient, UbusEvent};
use tmip::ubus::msg::status;
use tmip::ubus::Value;
use tmip_testbed::bed::*;
use tmip_testbed::traffic::TcpCheck;

const UP: Duration = Duration::from_secs(20);

/// The page: a LuCI-like frame, the runtime stand-in, the view VIEW.
const PAGE: &str = "<!DOCTYPE html><html><head><meta charset=\"utf-8\"><title>TMip - LuCI</title>\
<style>body{font-family:sans-serif;margin:0;background:#fff;color:#222}\
header{background:#1f3a5f;color:#fff;padding:10px 20px;font-size:18px}\
#view{padding:10px 20px;max-width:960px}h2{margin:8px 0}h3{margin:18px 0 4px}h4{margin:12px 0 4px;color:#1f3a5f}\
.cbi-map-descr,.cbi-section-descr{color:#555;margin:4px 0 8px}\
table.table{border-collapse:collapse;font-size:13px}\
.table td,.table th{border:1px solid #ddd;padding:3px 10px;text-align:left}\
.cbi-value{display:grid;grid-template-columns:220px 300px;gap:2px 12px;margin:4px 0;align-items:center;font-size:13px}\
.cbi-value input[type=text],.cbi-value input[type=password],.cbi-value textarea{width:280px;padding:3px}\
.cbi-value-description{grid-column:2;color:#777;font-size:11px}.cbi-value-error{grid-column:2;color:#c62828;font-size:12px}\
fieldset{border:1px solid #ddd;border-radius:6px;margin:10px 0}\
.cbi-button-apply{background:#1565c0;color:#fff;border:0;padding:8px 16px;border-radius:4px;margin:10px 0}</style>\
<script src=\"/standin.js\"></script></head><body><header>OpenWrt &mdash; Services &rsaquo; TMip mobility</header>\
<div id=\"view\"></div><script>LuciStandin.run('/view/VIEW.js')</script></body></html>";

/// The UCI package as the stand-in's uci model: [{name, type, options}].
fn uci_json(pkg: &tmip::config::uci::Package) -> String {
    let secs: Vec<String> = pkg
        .sections
        .iter()
        .map(|s| {
            let opts: Vec<String> = s
                .options
                .iter()
                .map(|o| {
                    let v = match &o.value {
                        tmip::config::uci::Value::Single(v) => json_str(v),
                        tmip::config::uci::Value::List(l) => format!(
                            "[{}]",
                            l.iter().map(|x| json_str(x)).collect::<Vec<_>>().join(",")
                        ),
                    };
                    format!("{}:{v}", json_str(&o.name))
                })
                .collect();
            format!(
                "{{\"name\":{},\"type\":{},\"options\":{{{}}}}}",
                json_str(&s.name),
                json_str(&s.ty),
                opts.join(",")
            )
        })
        .collect();
    format!("[{}]", secs.join(","))
}

/// Apply the form's changes ([{op, section, option, value}]) as uci set/unset.
fn apply(pkg: &mut tmip::config::uci::Package, changes: &serde_json_lite::J) {
    use tmip::config::uci::{Opt, Value as U};
    for c in changes.arr() {
        let Some(sec) = pkg
            .sections
            .iter_mut()
            .find(|s| s.name == c.get("section").s())
        else {
            continue;
        };
        let name = c.get("option").s().to_string();
        sec.options.retain(|o| o.name != name);
        if c.get("op").s() == "set" {
            let value = match c.get("value") {
                serde_json_lite::J::Arr(a) => {
                    U::List(a.iter().map(|x| x.s().to_string()).collect())
                }
                v => U::Single(v.s().to_string()),
            };
            sec.options.push(Opt {
                name,
                value,
                line: 0,
                item_lines: Vec::new(),
            });
        }
    }
}

fn app() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("openwrt/luci-app-tmip")
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
fn serve(listener: TcpListener, sock: PathBuf, uci: Option<PathBuf>, stop: Arc<AtomicBool>) {
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
        let mut length = 0usize;
        loop {
            let mut h = String::new();
            if r.read_line(&mut h).map(|n| n == 0).unwrap_or(true) || h.trim().is_empty() {
                break;
            }
            if let Some(v) = h.to_ascii_lowercase().strip_prefix("content-length:") {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut req_body = vec![0u8; length];
        if std::io::Read::read_exact(&mut r, &mut req_body).is_err() {
            continue;
        }
        let target = line.split_whitespace().nth(1).unwrap_or("/").to_string();
        let (path, q) = target.split_once('?').unwrap_or((&target, ""));
        let (ctype, body): (&str, Vec<u8>) = match path {
            "/" => (
                "text/html",
                PAGE.replace(
                    "VIEW",
                    &query(q)
                        .into_iter()
                        .find(|(k, _)| k == "view")
                        .map(|(_, v)| v)
                        .unwrap_or_else(|| "tmip/status".into()),
                )
                .into_bytes(),
            ),
            "/uci/get" => {
                let pkg = tmip::config::uci::read(uci.as_deref().expect("uci file")).expect("uci");
                ("application/json", uci_json(&pkg).into_bytes())
            }
            "/uci/apply" => {
                let path = uci.as_deref().expect("uci file");
                let mut pkg = tmip::config::uci::read(path).expect("uci");
                apply(&mut pkg, &parse_json(&String::from_utf8_lossy(&req_body)));
                std::fs::write(path, pkg.export()).expect("write uci");
                ("application/json", b"{}".to_vec())
            }
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
                (
                    "application/json",
                    format!("[{}]", list.join(",")).into_bytes(),
                )
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

/// Serve the page (view `query`, the bus at `sock`, the UCI file `uci`)
/// and run `openwrt/luci-app-tmip/tests/<name>.test.js` in Chromium; its
/// JSON report (checked for page errors) and raw output. The screenshot
/// goes to `dir`, or to docs/luci-<name>.png with TMIP_SCREENSHOTS=docs.
fn browser(
    name: &str,
    query: &str,
    sock: &Path,
    uci: Option<&Path>,
    dir: &Path,
) -> (serde_json_lite::J, String) {
    let pw = app().join("tests/node_modules/playwright-core/package.json");
    assert!(
        pw.exists(),
        "{} missing: scripts/setup installs playwright-core (npm ci) in this checkout",
        pw.display()
    );
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let url = format!("http://{}/{query}", listener.local_addr().expect("addr"));
    let stop = Arc::new(AtomicBool::new(false));
    let server = {
        let (stop, sock, uci) = (stop.clone(), sock.to_path_buf(), uci.map(Path::to_path_buf));
        std::thread::spawn(move || serve(listener, sock, uci, stop))
    };
    let shot = match std::env::var("TMIP_SCREENSHOTS") {
        Ok(d) if !d.is_empty() => Path::new(env!("CARGO_MANIFEST_DIR")).join(d),
        _ => dir.to_path_buf(),
    }
    .join(format!("luci-{name}.png"));
    let out = Command::new("node")
        .env(
            "TMIP_TIME_SCALE",
            tmip_testbed::time_bound(Duration::from_secs(1))
                .as_secs()
                .to_string(),
        )
        .arg(app().join(format!("tests/{name}.test.js")))
        .arg(&url)
        .arg(&shot)
        .output()
        .expect("node (scripts/setup installs nodejs)");
    stop.store(true, Ordering::Relaxed);
    let _ = server.join();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "browser test failed: {}\n{stdout}",
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{stdout}");
    assert!(shot.exists(), "screenshot {}", shot.display());
    let report = parse_json(stdout.trim());
    assert!(
        report.get("errors").arr().is_empty(),
        "page errors: {stdout}"
    );
    (report, stdout)
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
    let tcp = TcpCheck::start(
        &bed.srv.name,
        SRV_IP,
        5401,
        &ms,
        tmip_testbed::traffic::stream_1ms(),
    )
    .unwrap_or_else(|e| panic!("{e}\n{}", bed.logs()));
    std::thread::sleep(Duration::from_millis(300));
    for cell in [3, 2] {
        bed.move_client(roamer, cell);
        std::thread::sleep(Duration::from_millis(1500));
    }
    assert_eq!(bed.claimants(cells[1]), vec![2], "{}", bed.cn_state());
    let _ = tcp.finish(Duration::from_secs(3));

    let (report, stdout) = browser("status", "", &node_sock, None, &bed.dir);
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
}

/// The daemons' key tables as the settings view has them (its generated
/// `TMIP_KEYS`, which `cargo test -p mlrd generated_parts` holds equal to
/// the tables): for `tmipd` and `mlrd`, the defaults and every key.
fn luci_keys() -> serde_json_lite::J {
    let js =
        std::fs::read_to_string(app().join("htdocs/luci-static/resources/view/tmip/settings.js"))
            .expect("settings.js");
    let start = js.find("var TMIP_KEYS = ").expect("TMIP_KEYS") + "var TMIP_KEYS = ".len();
    let end = start + js[start..].find("\n};").expect("end of TMIP_KEYS") + 2;
    parse_json(&js[start..end])
}

/// A UCI section of type `ty` called `name` with every key of that type:
/// the default where there is one, spelled as the daemons also accept it
/// (`yes`/`on`/`off`/`no` for the flags), else the sample value; lists as
/// two items where a sample gives two; no sample value: left out.
fn every_key_section(
    ty: &str,
    name: &str,
    keys: &serde_json_lite::J,
    samples: &[(&str, &[&str])],
) -> String {
    let t = keys.get(ty);
    let mut o = format!("config {ty} '{name}'\n");
    for (i, k) in t.get("keys").arr().iter().enumerate() {
        let k = k.s();
        if let Some((_, v)) = samples.iter().find(|(n, _)| *n == k) {
            let kind = if v.len() > 1 { "list" } else { "option" };
            for v in v.iter() {
                o.push_str(&format!("\t{kind} {k} '{v}'\n"));
            }
            continue;
        }
        let d = t.get("defaults").get(k).s();
        assert!(!d.is_empty(), "{ty}.{k}: no default and no sample");
        let d = match (d, i % 2) {
            ("1", 0) => "yes",
            ("1", _) => "on",
            ("0", 0) => "off",
            ("0", _) => "no",
            (d, _) => d,
        };
        o.push_str(&format!("\toption {k} '{d}'\n"));
    }
    o.push('\n');
    o
}

/// The settings view saves nothing it was not told to: an untouched Save
/// leaves /etc/config/tmip byte for byte as it was, with every option of
/// both daemons present: the shipped file's sections (explicit '1' flags,
/// `enabled '0'`), sections that set every key to its default (flags
/// spelled `yes`/`on`/`off`/`no`), hand-written ones without `enabled`
/// (they stay enabled: the data-loss bug wrote enabled='0' into them).
/// The form offers exactly the keys of the daemons' tables; an invalid
/// pool entry is refused with a message, and an edit changes exactly that
/// option. Screenshot: docs/luci-settings.png with TMIP_SCREENSHOTS=docs.
#[test]
fn settings_view_untouched_save_changes_nothing_and_an_edit_changes_one_option_in_chromium() {
    let dir = tmip_testbed::RunDir::new("luci-settings");
    let uci_path = dir.join("tmip");
    let keys = luci_keys();
    let hand = "config tmipd 'main'\n\toption mlr '10.0.0.250'\n\toption cn_if 'core0'\n\
                \toption mobile_if 'mob0'\n\toption network_name 'tmip-testbed'\n\
                \tlist addr_pool 'mob0 * *'\n\tlist dns '192.168.1.1'\n\n\
                config tmipd 'cn2'\n\toption enabled '0'\n\toption mlr '10.0.0.250'\n\
                \toption cn_if 'core0'\n\toption mobile_if 'mob1'\n\toption network_name 'tmip-testbed'\n\
                \toption ubus_object 'tmip.cn2'\n\toption dhcp '0'\n\n\
                config mlrd 'mlr'\n\toption network_name 'tmip-testbed'\n\toption state_dir '/tmp/mlrd'\n\
                \toption primary_mlr '10.0.0.1:6554'\n\n";
    let every_cn = every_key_section(
        "tmipd",
        "every",
        &keys,
        &[
            ("mlr", &["10.0.0.250:6554"]),
            ("backup_mlr", &["10.0.0.251"]),
            ("mlr_heartbeat", &["100"]),
            ("mlr_deadline", &["700"]),
            ("cn_name", &["Every Key CN"]),
            ("cn_if", &["core0"]),
            ("mobile_if", &["mob9"]),
            ("network_name", &["tmip-testbed"]),
            ("addr_pool", &["mob9 * *", "mob8 10.9.0.4 10.9.0.60"]),
            ("secret", &["s3cret"]),
            ("dns", &["192.168.1.1", "192.168.1.2"]),
            ("domain", &["lan"]),
            (
                "static_route",
                &["10.20.0.0/16 192.168.1.254", "10.30.0.0/16 192.168.1.254"],
            ),
            ("listen_addr", &["0.0.0.0"]),
            ("pid_file", &["/var/run/tmipd.every.pid"]),
            ("ubus_object", &["tmip.every"]),
        ],
    );
    let every_mlr = every_key_section(
        "mlrd",
        "mlr_every",
        &keys,
        &[
            ("network_name", &["tmip-testbed"]),
            ("secret", &["s3cret"]),
            ("backup_mlr", &["10.0.0.2"]),
            // excludes backup_mlr: set in section mlr
            ("primary_mlr", &[]),
        ],
    );
    // The daemon reads the section it would be given.
    let c = tmip::config::tmipd::TmipdConfig::from_uci("tmip", &every_cn, "every")
        .unwrap_or_else(|e| panic!("{e}\n{every_cn}"));
    assert!(c.dhcp && c.log && !c.foreground, "{every_cn}");
    let shipped = include_str!("../openwrt/tmipd/files/tmip.config")
        .replace("config tmipd 'main'", "config tmipd 'shipped'")
        .replace("config mlrd 'mlr'", "config mlrd 'shipped_mlr'");
    let text = format!("{hand}{every_cn}{every_mlr}{shipped}");
    let original = tmip::config::uci::parse("tmip", &text)
        .expect("uci")
        .export();
    std::fs::write(&uci_path, &original).expect("write");
    let sock = dir.join("ubus.sock");
    let _bus = FakeUbusd::start(&sock);
    let (r, stdout) = browser(
        "settings",
        "?view=tmip/settings",
        &sock,
        Some(&uci_path),
        &dir,
    );
    // The page shows the sections as init.d runs them: without `enabled`
    // or with it set to a true spelling, enabled.
    let enabled: Vec<(String, bool)> = r
        .get("shown")
        .get("enabled")
        .arr()
        .iter()
        .map(|e| {
            (
                e.arr()[0].s().to_string(),
                e.arr()[1] == serde_json_lite::J::Bool(true),
            )
        })
        .collect();
    let want: Vec<(String, bool)> = [
        ("main", true),
        ("cn2", false),
        ("every", true),
        ("shipped", false),
        ("mlr", true),
        ("mlr_every", true),
        ("shipped_mlr", false),
    ]
    .iter()
    .map(|(s, on)| (format!("cbid.tmip.{s}.enabled"), *on))
    .collect();
    assert_eq!(enabled, want, "{stdout}");
    // Every section offers exactly its daemon's keys.
    for sec in r.get("shown").get("sections").arr() {
        let name = sec.arr()[0].s();
        let ty = if ["mlr", "mlr_every", "shipped_mlr"].contains(&name) {
            "mlrd"
        } else {
            "tmipd"
        };
        let mut shown: Vec<&str> = sec.arr()[1].arr().iter().map(|o| o.s()).collect();
        let mut want: Vec<&str> = keys
            .get(ty)
            .get("keys")
            .arr()
            .iter()
            .map(|k| k.s())
            .collect();
        shown.sort_unstable();
        want.sort_unstable();
        assert_eq!(shown, want, "section {name}'s options");
    }
    assert_eq!(r.get("shown").get("sections").arr().len(), 7, "{stdout}");
    // 1. Untouched: no change, the file as it was.
    let untouched = r.get("untouched");
    assert_eq!(
        untouched.get("saved"),
        &serde_json_lite::J::Bool(true),
        "{stdout}"
    );
    assert!(
        untouched.get("changes").arr().is_empty(),
        "an untouched Save changed: {stdout}"
    );
    // 2. An invalid pool entry: refused, with the validator's message.
    assert_eq!(
        r.get("invalid").get("saved"),
        &serde_json_lite::J::Bool(false),
        "{stdout}"
    );
    assert!(r.get("message").s().contains("Expecting"), "{stdout}");
    // 3. One edit: exactly that option.
    let edited = r.get("edited").get("changes").arr();
    assert_eq!(edited.len(), 1, "{stdout}");
    assert_eq!(
        (
            edited[0].get("op").s(),
            edited[0].get("section").s(),
            edited[0].get("option").s(),
            edited[0].get("value").s()
        ),
        ("set", "main", "lease_time", "7200"),
        "{stdout}"
    );
    let now = std::fs::read_to_string(&uci_path).expect("read");
    let pkg = tmip::config::uci::parse("tmip", &now).expect("uci");
    assert_eq!(
        pkg.section("main").and_then(|s| s.get("lease_time")),
        Some("7200")
    );
    assert_eq!(
        now.replace("\toption lease_time '7200'\n", ""),
        original,
        "only lease_time changed"
    );
}
