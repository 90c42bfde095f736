//! tmipd as an operator meets it, with the real mlrd in namespaces: the
//! `-E` connectivity evaluation, a restart that takes its stations back,
//! the MLR going away and coming back, a full station table, hostile input
//! on the DHCP and MLRP ports, and two instances on one node.
use std::time::Duration;
use tmip_testbed::bed::*;
use tmip_testbed::*;

fn start_cn(bed: &mut TestBed, k: usize, args: &[&str]) {
    if let Err(e) = bed.cn_mut(k).start(args, Duration::from_secs(15)) {
        panic!("{e}");
    }
}

fn start_mlrd(bed: &mut TestBed) {
    if let Err(e) = bed.start_mlrd(Duration::from_secs(15)) {
        panic!("{e}");
    }
}

/// A lease for client `c` by `udhcpc -n -q` (which exits once bound).
fn lease(bed: &mut TestBed, c: usize, skip: usize) -> String {
    bed.udhcpc(c, &["-n", "-q", "-t", "5", "-T", "1"]);
    let ip = bed.clients[c].wait_event(&["bound"], skip, 20);
    bed.clients[c].wait_dhcp(Duration::from_secs(10));
    ip.unwrap_or_else(|| {
        panic!(
            "no lease\n{}",
            bed.cns.iter().map(|c| c.log_text()).collect::<String>()
        )
    })
}

#[test]
fn evaluation_lists_the_mlr_and_every_cn_and_fails_when_one_is_down() {
    let mut bed = TestBed::with_cns(2);
    bed.start_all();
    let (code, out) = bed.evaluate(1);
    println!("{out}");
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| *l == "Network Connectivity Evaluation")
        .expect(&out);
    assert_eq!(lines[i + 1], format!("+ MLR @ {MLR_IP}: Passed."));
    let mut cns: Vec<&str> = lines[i + 2..].to_vec();
    cns.sort();
    assert_eq!(
        cns,
        [
            format!("+ CN @ {} [CN1 test-bed]: Passed.", cn_core_ip(1)),
            format!("+ CN @ {} [CN2 test-bed]: Passed.", cn_core_ip(2))
        ]
    );
    // CN 2 dies without unbinding: the MLR still lists it, the ping fails.
    bed.cns[1].crash();
    let (code, out) = bed.evaluate(1);
    println!("{out}");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("+ CN @ {} [CN1 test-bed]: Passed.", cn_core_ip(1))),
        "{out}"
    );
    let failed = format!("+ CN @ {} [CN2 test-bed]: Failed (", cn_core_ip(2));
    assert!(
        out.lines()
            .any(|l| l.starts_with(&failed) && l.ends_with(").")),
        "{out}"
    );
    // The MLR down: its line fails, exit 1.
    bed.stop_mlrd();
    let (code, out) = bed.evaluate(1);
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains(&format!("+ MLR @ {MLR_IP}: Failed (")),
        "{out}"
    );
    bed.cns[0].stop();
}

#[test]
fn a_restarted_cn_re_establishes_its_stations() {
    let mut bed = TestBed::with_cns(1);
    bed.start_all();
    let c = bed.add_client(1);
    let ip = lease(&mut bed, c, 0);
    let gw = gateway_of(&ip);
    // A crash leaves the adopted gateway address behind.
    bed.cns[0].crash();
    let left = bed.cns[0].mobile_addrs();
    assert!(left.contains(&format!("{gw}/32")), "{left}");
    let from = bed.cns[0].log_text().len();
    start_cn(&mut bed, 1, &[]);
    let log = bed.cns[0].log_text()[from..].to_string();
    assert!(
        log.contains(
            "+ Attempting network re-establish - Querying MLR: 1 station(s) re-established"
        ),
        "{log}"
    );
    let now = bed.cns[0].mobile_addrs();
    assert!(now.contains(&format!("{gw}/32")), "{now}");
    bed.clients[c].ns.sh(&format!("ping -c1 -W2 {gw}"));
    // And it is in the status the operator sees.
    let pid = bed.cns[0].pid().unwrap();
    bed.cns[0].ns.signal(pid, nix::sys::signal::Signal::SIGUSR1);
    let st = wait_for(Duration::from_secs(5), || {
        let s = read(&bed.cns[0].status);
        s.contains(&ip).then_some(s)
    })
    .unwrap_or_else(|| panic!("status: {}", read(&bed.cns[0].status)));
    let st = tmip_testbed::status::parse("CN1", &st);
    let station = st["stations"]
        .as_array()
        .and_then(|l| l.iter().find(|s| s["ip"] == ip.as_str()));
    assert_eq!(station.map(|s| &s["at"]), Some(&"here".into()), "{st}");
    bed.cns[0].stop();
}

#[test]
fn without_the_mlr_a_cn_keeps_serving_and_rebinds_when_it_returns() {
    let mut bed = TestBed::with_cns(1);
    bed.set_rc(1, &["lease_time 12"]);
    bed.start_all();
    let c = bed.add_client(1);
    bed.udhcpc(c, &[]);
    let ip = bed.clients[c].wait_event(&["bound"], 0, 20).expect("lease");
    bed.stop_mlrd();
    assert!(
        bed.cns[0].wait_log("lost the MLR link", 0, 10),
        "{}",
        bed.cns[0].log_text()
    );
    // The renewal (T1 = 6 s) is answered from the CN's own table.
    let renewed = bed.clients[c]
        .wait_event(&["renew"], 0, 20)
        .unwrap_or_else(|| panic!("no renewal without the MLR\n{}", bed.cns[0].log_text()));
    assert_eq!(renewed, ip);
    start_mlrd(&mut bed);
    assert!(
        bed.cns[0].wait_log("Bind accepted (re-established link)", 0, 40),
        "{}",
        bed.cns[0].log_text()
    );
    assert!(
        bed.cns[0].wait_log("1 station(s) re-established", 0, 10),
        "{}",
        bed.cns[0].log_text()
    );
    bed.clients[c].stop_dhcp();
    bed.cns[0].stop();
}

#[test]
fn a_full_station_table_refuses_the_newcomer_and_serves_the_others() {
    let mut bed = TestBed::with_cns(1);
    bed.set_rc(1, &["max_stations 1"]);
    bed.start_all();
    let a = bed.add_client(1);
    let ip = lease(&mut bed, a, 0);
    let b = bed.add_client(1);
    bed.udhcpc(b, &["-n", "-q", "-t", "2", "-T", "1"]);
    let st = bed.clients[b]
        .wait_dhcp(Duration::from_secs(15))
        .expect("udhcpc ends");
    assert!(!st.success(), "the second station got a lease");
    assert!(bed.clients[b].events().is_empty());
    let log = bed.cns[0].log_text();
    assert!(
        log.contains("station table full (1 stations): refusing"),
        "{log}"
    );
    // The station already served still gets its address.
    let again = lease(&mut bed, a, 1);
    assert_eq!(again, ip);
    bed.cns[0].stop();
}

#[test]
fn malformed_dhcp_and_mlrp_input_is_logged_and_survived() {
    let mut bed = TestBed::with_cns(1);
    bed.start_all();
    // MLRP garbage at the CN-to-CN port, from the MLR's namespace: text, an
    // oversized length, a half frame left hanging, a flood of junk.
    let py = r#"
import socket, time
def conn():
    s = socket.create_connection(("CN1", 5554), timeout=3)
    return s
s = conn(); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); time.sleep(0.2); s.close()
s = conn(); s.sendall(b"MLRP" + b"\x01\x00" + b"\xff\xff\xff\xff" + b"\x00" * 14); time.sleep(0.2); s.close()
half = conn(); half.sendall(b"ML")
s = conn(); s.sendall(bytes(range(256)) * 64); time.sleep(0.2); s.close()
time.sleep(0.5)
"#
    .replace("CN1", &cn_core_ip(1).to_string());
    let out = bed.mlr.sh_out(&format!("/usr/bin/python3 -c '{py}'"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Malformed DHCP on the cell, from a client namespace (scapy).
    let c = bed.add_client(1);
    let py = format!(
        r#"
from scapy.all import Ether, IP, UDP, BOOTP, DHCP, Raw, sendp
i = "{ifname}"
base = Ether(dst="ff:ff:ff:ff:ff:ff", src="02:00:00:00:00:99")/IP(src="0.0.0.0", dst="255.255.255.255")/UDP(sport=68, dport=67)
sendp(base/Raw(b"\x01\x01\x06"), iface=i, verbose=0)
sendp(base/BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x99", xid=1)/Raw(b"\x63\x82\x53\x63\x35\x09\x01"), iface=i, verbose=0)
sendp(base/BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x99", xid=2)/Raw(b"\x63\x82\x53\x63\x35\x01\x01\x37\xff\x01"), iface=i, verbose=0)
sendp(base/BOOTP(chaddr=b"\x02\x00\x00\x00\x00\x99", xid=3, op=2)/DHCP(options=[("message-type","offer"),"end"]), iface=i, verbose=0)
sendp(base/Raw(bytes(range(256))*2), iface=i, verbose=0)
"#,
        ifname = bed.clients[c].ifname
    );
    let out = bed.clients[c]
        .ns
        .sh_out(&format!("/usr/bin/python3 -c '{py}'"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        bed.cns[0].wait_log("malformed DHCP input on mobile_if dropped", 0, 5),
        "{}",
        bed.cns[0].log_text()
    );
    let log = bed.cns[0].log_text();
    for l in log
        .lines()
        .filter(|l| l.contains("malformed") || l.contains(&format!("from {MLR_IP}:")))
    {
        println!("logged: {l}");
    }
    assert!(
        log.contains(&format!("from {MLR_IP}:")),
        "MLRP garbage not logged:\n{log}"
    );
    // Still alive and serving: the evaluation passes and a client gets a lease.
    let (code, out) = bed.evaluate(1);
    assert_eq!(code, 0, "{out}\n{log}");
    let ip = lease(&mut bed, c, 0);
    assert!(ip.starts_with(&bed.cns[0].mobile_prefix()), "{ip}");
    bed.cns[0].stop();
}

#[test]
fn two_instances_on_one_node_serve_their_own_cells() {
    let mut bed = TestBed::with_cns(1);
    // A second mobile interface and cell on CN 1's node.
    bed.air
        .sh("ip link add cellb type bridge && ip link set cellb up");
    veth(&bed.cns[0].ns, "mob2", &bed.air, "mb");
    bed.air.sh("ip link set mb master cellb");
    bed.cns[0].ns.sh("ip addr add 10.150.0.1/24 dev mob2");
    // The second instance's rc: CN 1's with its own name, interface, pool
    // and port.
    let rc2 = bed.dir.join("cn1b.rc");
    let mut rc = Rc::new("second instance");
    for l in bed.tmipd_rc(1).lines().filter(|l| !l.starts_with('#')) {
        rc.apply(&[l]);
    }
    rc.apply(&[
        "cn_name Second instance",
        "tunnel_prefix ttb",
        "mobile_if mob2",
        "addr_pool mob2 * *",
        "cn_port 5555",
        &format!("status_file {}", bed.dir.join("cn1b.status").display()),
    ]);
    rc.write(&rc2);
    bed.start_all();
    let second = Spawn::new(
        &bed.cns[0].ns.name,
        "tmipd (second instance)",
        bin("tmipd"),
        &bed.dir.join("cn1b.out"),
    )
    .args(["-F", "-f"])
    .arg(&rc2)
    .start_until("is now up and running", Duration::from_secs(15));
    let mut second = second.unwrap_or_else(|e| panic!("{e}"));
    let (code, out) = bed.evaluate(1);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains(&format!("+ CN @ {} [CN1 test-bed]: Passed.", cn_core_ip(1))),
        "{out}"
    );
    assert!(
        out.contains(&format!(
            "+ CN @ {}:5555 [Second instance]: Passed.",
            cn_core_ip(1)
        )),
        "{out}"
    );
    // Each cell's client gets an address from its own instance's pool.
    let a = bed.add_client(1);
    let ip_a = lease(&mut bed, a, 0);
    assert!(ip_a.starts_with(&bed.cns[0].mobile_prefix()), "{ip_a}");
    let b = bed.add_client(1);
    bed.air.sh(&format!(
        "ip link set {} master cellb",
        bed.clients[b].air_port
    ));
    let ip_b = lease(&mut bed, b, 0);
    assert!(ip_b.starts_with("10.150.0."), "{ip_b}");
    let st = second.stop(Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    bed.cns[0].stop();
}

#[test]
fn signals_and_console_work_in_the_foreground() {
    let mut bed = TestBed::with_cns(1);
    start_mlrd(&mut bed);
    // The console reads a FIFO so the test can type into it.
    let fifo = bed.dir.join("console");
    sh(&format!("mkfifo {}", fifo.display()));
    let log = bed.cns[0].log.clone();
    let mut cmd = bed.cns[0].ns.command("sh");
    cmd.arg("-c").arg(format!(
        "exec {} -F -f {} < {} >> {} 2>&1",
        bin("tmipd").display(),
        bed.cns[0].rc.display(),
        fifo.display(),
        log.display()
    ));
    let pid = bed.cns[0].ns.spawn(cmd);
    let mut console = std::fs::OpenOptions::new()
        .write(true)
        .open(&fifo)
        .expect("fifo");
    assert!(
        bed.cns[0].wait_log("is now up and running", 0, 15),
        "{}",
        read(&log)
    );
    let c = bed.add_client(1);
    let ip = lease(&mut bed, c, 0);
    use std::io::Write;
    writeln!(console, "clients").unwrap();
    writeln!(console, "cns").unwrap();
    writeln!(console, "debug 5").unwrap();
    writeln!(console, "bogus").unwrap();
    writeln!(console, "help").unwrap();
    assert!(
        bed.cns[0].wait_log("commands: debug", 0, 5),
        "{}",
        read(&log)
    );
    let text = read(&log);
    assert!(text.contains("1 station(s) (max 256)"), "{text}");
    assert!(text.contains(&ip), "{text}");
    assert!(text.contains("debug level 5"), "{text}");
    assert!(text.contains("unknown command 'bogus'"), "{text}");
    // USR1: status JSON.
    let ns = &bed.cns[0].ns;
    ns.signal(pid, nix::sys::signal::Signal::SIGUSR1);
    let st = wait_for(Duration::from_secs(5), || {
        let s = read(&bed.cns[0].status);
        s.contains(&ip).then_some(s)
    })
    .expect("status file");
    let st = tmip_testbed::status::parse("CN1", &st);
    assert_eq!(st["version"], tmip::VERSION, "{st}");
    assert_eq!(st["mlr_up"], true, "{st}");
    // USR2: step the level (5 -> 6).
    ns.signal(pid, nix::sys::signal::Signal::SIGUSR2);
    assert!(
        bed.cns[0].wait_log("+ Debug level now 6", 0, 5),
        "{}",
        read(&log)
    );
    // HUP: live settings applied, the rest named as needing a restart.
    bed.set_rc(1, &["debug_level 3", "cn_port 6000"]);
    let ns = &bed.cns[0].ns;
    ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    assert!(
        bed.cns[0].wait_log("not applied, needs a restart: cn_port", 0, 5),
        "{}",
        read(&log)
    );
    // A broken file is refused and the running config kept.
    std::fs::write(&bed.cns[0].rc, "bogus_key 1\n").unwrap();
    ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    assert!(
        bed.cns[0].wait_log("unknown key 'bogus_key'", 0, 5),
        "{}",
        read(&log)
    );
    // Ctrl+D: clean exit that removes what it installed.
    drop(console);
    let st = bed.cns[0].ns.wait(pid, Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}\n{}", read(&log));
    let addrs = bed.cns[0].mobile_addrs();
    assert!(!addrs.contains("/32"), "{addrs}");
}

#[test]
fn starts_from_a_uci_section_and_evaluates_with_it() {
    let mut bed = TestBed::with_cns(1);
    start_mlrd(&mut bed);
    let uci = bed.dir.join("tmip");
    std::fs::write(
        &uci,
        format!(
            "config mlrd 'mlr'\n\toption network_name 'x'\n\n\
             config tmipd 'cell'\n\toption enabled '1'\n\toption mlr '{MLR_IP}'\n\
             \toption cn_name 'UCI CN'\n\toption tunnel_prefix 'ttu'\n\toption cn_if '{CORE_IF}'\n\
             \toption mobile_if '{MOBILE_IF}'\n\toption network_name '{NETWORK_NAME}'\n\
             \toption secret '{SECRET}'\n\
             \tlist addr_pool '{MOBILE_IF} * *'\n\tlist dns '{MLR_IP}'\n\toption log '1'\n\
             \toption status_file '{}'\n",
            bed.dir.join("uci.status").display()
        ),
    )
    .unwrap();
    let uci_s = uci.display().to_string();
    start_cn(&mut bed, 1, &["-u", "@tmipd[0]", "-c", &uci_s]);
    assert!(bed.cns[0]
        .log_text()
        .contains("(UCI CN) is now up and running"));
    let out = bed.cns[0]
        .ns
        .command(bin("tmipd"))
        .args(["-E", "-u", "cell", "-c", &uci_s])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}");
    assert!(
        text.contains(&format!("+ Using {uci_s} section 'cell'")),
        "{text}"
    );
    assert!(
        text.contains(&format!("+ CN @ {} [UCI CN]: Passed.", cn_core_ip(1))),
        "{text}"
    );
    let c = bed.add_client(1);
    let ip = lease(&mut bed, c, 0);
    assert!(ip.starts_with(&bed.cns[0].mobile_prefix()), "{ip}");
    bed.cns[0].stop();
}

#[test]
fn a_wrong_network_name_or_secret_is_refused_at_start() {
    let mut bed = TestBed::with_cns(1);
    start_mlrd(&mut bed);
    let run = |bed: &TestBed| {
        // `timeout`: a CN that wrongly keeps running must not hang the test.
        let out = bed.cns[0]
            .ns
            .command("timeout")
            .arg("20")
            .arg(bin("tmipd"))
            .arg("-F")
            .arg("-f")
            .arg(&bed.cns[0].rc)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // Another network's name.
    let text = read(&bed.cns[0].rc).replace(NETWORK_NAME, "other-net");
    std::fs::write(&bed.cns[0].rc, text).unwrap();
    let (code, err) = run(&bed);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("+ Binding CN to the mobile network [other-net]: Bind refused ("),
        "{err}"
    );
    // The right name with the wrong secret.
    let text = read(&bed.cns[0].rc)
        .replace("other-net", NETWORK_NAME)
        .replace(&format!("secret {SECRET}"), "secret wrong");
    std::fs::write(&bed.cns[0].rc, text).unwrap();
    let (code, err) = run(&bed);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("Bind refused ("), "{err}");
    println!(
        "{}",
        err.lines()
            .filter(|l| l.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}

#[test]
fn pool_conflicts_are_reported_and_an_overlapping_pool_is_refused() {
    let mut bed = TestBed::with_cns(2);
    // CN 1's pool holds its own mobile address 10.1.0.1: a warning.
    bed.set_rc(1, &[&format!("addr_pool {MOBILE_IF} 10.1.0.0 10.1.0.60")]);
    start_mlrd(&mut bed);
    start_cn(&mut bed, 1, &[]);
    let log = bed.cns[0].log_text();
    assert!(
        log.contains(
            "+ Conflict: pool [10.1.0.0 --> 10.1.0.60] holds this CN's own address 10.1.0.1"
        ),
        "{log}"
    );
    // CN 2 offers part of CN 1's pool: the MLR refuses the bind, tmipd exits 1.
    bed.set_rc(2, &[&format!("addr_pool {MOBILE_IF} 10.1.0.32 10.1.0.100")]);
    let out = bed.cns[1]
        .ns
        .command("timeout")
        .arg("20")
        .arg(bin("tmipd"))
        .args(["-F", "-f"])
        .arg(&bed.cns[1].rc)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("Bind refused ("), "{err}");
    println!(
        "{}",
        err.lines()
            .filter(|l| l.contains("refused"))
            .collect::<Vec<_>>()
            .join("\n")
    );
    bed.cns[0].stop();
}

/// Kills (by the pid it wrote) a daemon that detached from the test.
struct PidFileGuard(std::path::PathBuf);

impl PidFileGuard {
    fn pid(&self) -> Option<i32> {
        read(&self.0).trim().parse().ok()
    }
}

impl Drop for PidFileGuard {
    fn drop(&mut self) {
        if let Some(p) = self.pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(p),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }
}

#[test]
fn daemon_mode_detaches_logs_to_its_file_and_exits_on_term() {
    let mut bed = TestBed::with_cns(1);
    start_mlrd(&mut bed);
    let file_log = bed.dir.join("daemon.log");
    let pid_file = bed.dir.join("tmipd.pid");
    let guard = PidFileGuard(pid_file.clone());
    bed.set_rc(
        1,
        &[
            &format!("log_file {}", file_log.display()),
            &format!("pid_file {}", pid_file.display()),
            "foreground false",
        ],
    );
    let out = bed.cns[0]
        .ns
        .command("timeout")
        .arg("20")
        .arg(bin("tmipd"))
        .arg("-f")
        .arg(&bed.cns[0].rc)
        .stdin(std::process::Stdio::null())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(
        stdout.contains(&format!(
            "+ Switching into daemon mode (Logging to {})",
            file_log.display()
        )),
        "{stdout}"
    );
    wait_for(Duration::from_secs(15), || {
        read(&file_log)
            .contains("is now up and running")
            .then_some(())
    })
    .unwrap_or_else(|| panic!("{}", read(&file_log)));
    let pid = wait_for(Duration::from_secs(5), || guard.pid()).expect("pid file");
    // The log file has timestamps; the daemon serves.
    let (code, out) = bed.evaluate(1);
    assert_eq!(code, 0, "{out}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let gone = wait_for(Duration::from_secs(10), || {
        (!std::path::Path::new(&format!("/proc/{pid}")).exists()).then_some(())
    });
    assert!(gone.is_some(), "daemon still running after TERM");
    assert!(read(&file_log).contains("stopped."), "{}", read(&file_log));
    assert!(!pid_file.exists(), "pid file left behind");
}

#[test]
fn a_cn_started_before_its_mlr_comes_up_and_binds_later() {
    let mut bed = TestBed::with_cns(1);
    start_cn(&mut bed, 1, &[]);
    let log = bed.cns[0].log_text();
    assert!(
        log.contains(&format!(
            "+ Binding CN to the mobile network [{NETWORK_NAME}]: Failed ("
        )),
        "{log}"
    );
    assert!(
        log.contains("Querying MLR: deferred until the MLR is reachable"),
        "{log}"
    );
    start_mlrd(&mut bed);
    assert!(
        bed.cns[0].wait_log("Bind accepted (re-established link)", 0, 20),
        "{}",
        bed.cns[0].log_text()
    );
    let c = bed.add_client(1);
    let ip = lease(&mut bed, c, 0);
    assert!(ip.starts_with(&bed.cns[0].mobile_prefix()), "{ip}");
    bed.cns[0].stop();
}

/// Every key tmipd's table marks live (`config::tmipd::TABLE`) reaches the
/// part that uses it on a HUP, not just the log line: the status document's
/// `settings` are read from the core and the logger (the core's lease time
/// kept the old value before the table), a new DHCP lease carries the new
/// `lease_time`, `dns`, `domain` and `static_route`, and USR1 writes the new
/// `status_file`. A restart-only key changed with them is named "needs a
/// restart" and keeps its running value (`cn_port`: the CN still listens on
/// 5554).
#[test]
fn hup_brings_every_live_key_to_the_part_that_uses_it() {
    use tmip::config::keys::Hup;
    let mut bed = TestBed::with_cns(1);
    bed.start_all();
    let a = bed.add_client(1);
    lease(&mut bed, a, 0);
    let first = bed.clients[a].event_lines().join("\n");
    assert!(first.contains(" lease=3600 "), "{first}");
    let moved = bed.dir.join("moved.status");
    // key -> its new line
    let cases = [
        ("debug_level", "debug_level 5".to_string()),
        ("lease_time", "lease_time 120".to_string()),
        ("reverse_tunnel", "reverse_tunnel off".to_string()),
        ("dns", "dns 10.99.0.53 10.99.0.54".to_string()),
        ("domain", "domain hup.example".to_string()),
        (
            "static_route",
            "static_route 10.77.0.0/16 10.13.1.1".to_string(),
        ),
        ("status_file", format!("status_file {}", moved.display())),
    ];
    let live: Vec<&str> = tmip::config::tmipd::TABLE
        .keys
        .iter()
        .filter(|k| k.hup == Hup::Live)
        .map(|k| k.name)
        .collect();
    let mut tested: Vec<&str> = cases.iter().map(|(k, _)| *k).collect();
    tested.sort_unstable();
    let mut want = live.clone();
    want.sort_unstable();
    assert_eq!(tested, want, "every live key needs its case here");
    let mut lines: Vec<&str> = cases.iter().map(|(_, l)| l.as_str()).collect();
    lines.push("cn_port 6000");
    bed.set_rc(1, &lines);
    let from = bed.cns[0].log_text().len();
    if let Some(p) = &bed.cns[0].daemon {
        p.signal(nix::sys::signal::Signal::SIGHUP);
    }
    assert!(
        bed.cns[0].wait_log("not applied, needs a restart: cn_port", from, 5),
        "{}",
        bed.cns[0].log_text()
    );
    let log = bed.cns[0].log_text();
    let applied = format!("{} applied", live.join(", "));
    assert!(log[from..].contains(&applied), "{applied}:\n{log}");
    // The core and the logger, in the status JSON, at the new status_file.
    if let Some(p) = &bed.cns[0].daemon {
        p.signal(nix::sys::signal::Signal::SIGUSR1);
    }
    let st = wait_for(Duration::from_secs(5), || {
        read(&moved).trim_end().ends_with('}').then(|| read(&moved))
    })
    .unwrap_or_else(|| {
        panic!(
            "no status at the new status_file\n{}",
            bed.cns[0].log_text()
        )
    });
    let doc = tmip_testbed::status::parse("CN1", &st);
    let settings = &doc["settings"];
    assert!(
        settings["debug_level"] == 5
            && settings["lease_time"] == 120
            && settings["reverse_tunnel"] == false,
        "{st}"
    );
    // The DHCP server: a new station's lease (udhcpc asks for option 121).
    let b = bed.add_client(1);
    bed.udhcpc(b, &["-n", "-q", "-t", "5", "-T", "1", "-O", "staticroutes"]);
    bed.clients[b].wait_event(&["bound"], 0, 20);
    bed.clients[b].wait_dhcp(Duration::from_secs(10));
    let ev = bed.clients[b].event_lines().join("\n");
    for want in [
        " lease=120 ",
        " dns=10.99.0.53,10.99.0.54 ",
        " domain=hup.example ",
        " routes=10.77.0.0/16,10.13.1.1",
    ] {
        assert!(ev.contains(want), "{want} not in {ev}");
    }
    // cn_port kept: the CN-to-CN listener is still on 5554.
    let listening = bed.cns[0].ns.sh("ss -ltnH");
    assert!(listening.contains(":5554 "), "{listening}");
    assert!(!listening.contains(":6000 "), "{listening}");
    bed.cns[0].stop();
}
