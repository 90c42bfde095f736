//! tmipd as an operator meets it, with the real mlrd in namespaces: the
//! `-E` connectivity evaluation, a restart that takes its stations back,
//! the MLR going away and coming back, a full station table, hostile input
//! on the DHCP and MLRP ports, and two instances on one node.
mod common;
mod tmipd_bed;

use common::*;
use std::time::Duration;
use tmipd_bed::*;

fn lease(c: &mut Client, bed: &Bed, skip: usize) -> String {
    c.udhcpc(&bed.dir, &["-n", "-q", "-t", "5", "-T", "1"]);
    let ip = c.wait_event(&["bound"], skip, 20);
    if let Some(pid) = c.pid.take() {
        c.ns.wait(pid, Duration::from_secs(10));
    }
    ip.unwrap_or_else(|| {
        panic!(
            "no lease\n{}",
            bed.cns.iter().map(|c| c.log_text()).collect::<String>()
        )
    })
}

fn gateway_of(ip: &str) -> String {
    let mut o: Vec<u8> = ip.split('.').map(|x| x.parse().unwrap()).collect();
    o[3] += 1;
    format!("{}.{}.{}.{}", o[0], o[1], o[2], o[3])
}

#[test]
fn evaluation_lists_the_mlr_and_every_cn_and_fails_when_one_is_down() {
    let mut bed = Bed::new(2, Some("eval-secret"));
    bed.start_all();
    let (code, out) = bed.evaluate(0);
    println!("{out}");
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let i = lines
        .iter()
        .position(|l| *l == "Network Connectivity Evaluation")
        .expect(&out);
    assert_eq!(lines[i + 1], "+ MLR @ 10.13.0.250: Passed.");
    let mut cns: Vec<&str> = lines[i + 2..].to_vec();
    cns.sort();
    assert_eq!(
        cns,
        [
            "+ CN @ 10.13.0.1 [Test CN 1]: Passed.",
            "+ CN @ 10.13.0.2 [Test CN 2]: Passed."
        ]
    );
    // CN 2 dies without unbinding: the MLR still lists it, the ping fails.
    bed.cns[1].crash();
    let (code, out) = bed.evaluate(0);
    println!("{out}");
    assert_eq!(code, 1, "{out}");
    assert!(
        out.contains("+ CN @ 10.13.0.1 [Test CN 1]: Passed."),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("+ CN @ 10.13.0.2 [Test CN 2]: Failed (") && l.ends_with(").")),
        "{out}"
    );
    // The MLR down: its line fails, exit 1.
    bed.stop_mlrd();
    let (code, out) = bed.evaluate(0);
    assert_eq!(code, 1, "{out}");
    assert!(out.contains("+ MLR @ 10.13.0.250: Failed ("), "{out}");
    bed.cns[0].stop();
}

#[test]
fn a_restarted_cn_re_establishes_its_stations() {
    let mut bed = Bed::new(1, None);
    bed.start_all();
    let mut c = bed.client(0);
    let ip = lease(&mut c, &bed, 0);
    let gw = gateway_of(&ip);
    // A crash leaves the adopted gateway address behind.
    bed.cns[0].crash();
    let left = bed.cns[0].ns.sh("ip -4 addr show dev mob");
    assert!(left.contains(&format!("{gw}/32")), "{left}");
    let from = bed.cns[0].log_text().len();
    bed.cns[0].start(&[]);
    let log = bed.cns[0].log_text()[from..].to_string();
    assert!(
        log.contains(
            "+ Attempting network re-establish - Querying MLR: 1 station(s) re-established"
        ),
        "{log}"
    );
    let now = bed.cns[0].ns.sh("ip -4 addr show dev mob");
    assert!(now.contains(&format!("{gw}/32")), "{now}");
    c.ns.sh(&format!("ping -c1 -W2 {gw}"));
    // And it is in the status the operator sees.
    let pid = bed.cns[0].pid.unwrap();
    bed.cns[0].ns.signal(pid, nix::sys::signal::Signal::SIGUSR1);
    let st = wait_for(Duration::from_secs(5), || {
        let s = read(&bed.cns[0].status);
        s.contains(&ip).then_some(s)
    })
    .unwrap_or_else(|| panic!("status: {}", read(&bed.cns[0].status)));
    assert!(st.contains("\"at\":\"here\""), "{st}");
    bed.cns[0].stop();
}

#[test]
fn without_the_mlr_a_cn_keeps_serving_and_rebinds_when_it_returns() {
    let mut bed = Bed::new(1, None);
    bed.set_rc(0, &["lease_time 12"]);
    bed.start_all();
    let mut c = bed.client(0);
    c.udhcpc(&bed.dir, &[]);
    let ip = c.wait_event(&["bound"], 0, 20).expect("lease");
    bed.stop_mlrd();
    assert!(
        bed.cns[0].wait_log("lost the MLR link", 0, 10),
        "{}",
        bed.cns[0].log_text()
    );
    // The renewal (T1 = 6 s) is answered from the CN's own table.
    let renewed = c
        .wait_event(&["renew"], 0, 20)
        .unwrap_or_else(|| panic!("no renewal without the MLR\n{}", bed.cns[0].log_text()));
    assert_eq!(renewed, ip);
    bed.start_mlrd();
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
    c.stop();
    bed.cns[0].stop();
}

#[test]
fn a_full_station_table_refuses_the_newcomer_and_serves_the_others() {
    let mut bed = Bed::new(1, None);
    bed.set_rc(0, &["max_stations 1"]);
    bed.start_all();
    let mut a = bed.client(0);
    let ip = lease(&mut a, &bed, 0);
    let mut b = bed.client(0);
    b.udhcpc(&bed.dir, &["-n", "-q", "-t", "2", "-T", "1"]);
    let pid = b.pid.take().unwrap();
    let st =
        b.ns.wait(pid, Duration::from_secs(15))
            .expect("udhcpc ends");
    assert!(!st.success(), "the second station got a lease");
    assert!(b.events().is_empty());
    let log = bed.cns[0].log_text();
    assert!(
        log.contains("station table full (1 stations): refusing"),
        "{log}"
    );
    // The station already served still gets its address.
    let again = lease(&mut a, &bed, 1);
    assert_eq!(again, ip);
    bed.cns[0].stop();
}

#[test]
fn malformed_dhcp_and_mlrp_input_is_logged_and_survived() {
    let mut bed = Bed::new(1, Some("hostile"));
    bed.start_all();
    // MLRP garbage at the CN-to-CN port, from the MLR's namespace: text, an
    // oversized length, a half frame left hanging, a flood of junk.
    let py = r#"
import socket, time
def conn():
    s = socket.create_connection(("10.13.0.1", 5554), timeout=3)
    return s
s = conn(); s.sendall(b"GET / HTTP/1.0\r\n\r\n"); time.sleep(0.2); s.close()
s = conn(); s.sendall(b"MLRP" + b"\x01\x00" + b"\xff\xff\xff\xff" + b"\x00" * 14); time.sleep(0.2); s.close()
half = conn(); half.sendall(b"ML")
s = conn(); s.sendall(bytes(range(256)) * 64); time.sleep(0.2); s.close()
time.sleep(0.5)
"#;
    let out = bed.mlr.sh_out(&format!("/usr/bin/python3 -c '{py}'"));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // Malformed DHCP on the cell, from a client namespace (scapy).
    let mut c = bed.client(0);
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
        ifname = c.ifname
    );
    let out = c.ns.sh_out(&format!("/usr/bin/python3 -c '{py}'"));
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
        .filter(|l| l.contains("malformed") || l.contains("from 10.13.0.250:"))
    {
        println!("logged: {l}");
    }
    assert!(
        log.contains("from 10.13.0.250:"),
        "MLRP garbage not logged:\n{log}"
    );
    // Still alive and serving: the evaluation passes and a client gets a lease.
    let (code, out) = bed.evaluate(0);
    assert_eq!(code, 0, "{out}\n{log}");
    let ip = lease(&mut c, &bed, 0);
    assert!(ip.starts_with("10.13.101."), "{ip}");
    bed.cns[0].stop();
}

#[test]
fn two_instances_on_one_node_serve_their_own_cells() {
    let mut bed = Bed::new(1, None);
    // A second mobile interface and cell on CN 1's node.
    bed.air
        .sh("ip link add cellb type bridge && ip link set cellb up");
    veth(&bed.cns[0].ns, "mob2", &bed.air, "mb");
    bed.air.sh("ip link set mb master cellb");
    bed.cns[0].ns.sh("ip addr add 10.13.150.1/24 dev mob2");
    let rc2 = bed.dir.path("cn1b.rc");
    std::fs::write(
        &rc2,
        format!(
            "mlr {MLR_IP}\ncn_name Second instance\ntunnel_prefix ttb\ncn_if core\nmobile_if mob2\n\
             network_name {NETWORK}\naddr_pool mob2 * *\ncn_port 5555\nstatus_file {}\n",
            bed.dir.path("cn1b.status").display()
        ),
    )
    .unwrap();
    bed.start_all();
    let log2 = bed.dir.path("cn1b.log");
    let out = std::fs::File::create(&log2).unwrap();
    let mut cmd = bed.cns[0].ns.command(bin("tmipd"));
    cmd.arg("-F").arg("-f").arg(&rc2);
    cmd.stdout(std::process::Stdio::from(out.try_clone().unwrap()))
        .stderr(std::process::Stdio::from(out));
    let pid2 = bed.cns[0].ns.spawn(cmd);
    wait_for(Duration::from_secs(15), || {
        read(&log2).contains("is now up and running").then_some(())
    })
    .unwrap_or_else(|| panic!("second instance: {}", read(&log2)));
    let (code, out) = bed.evaluate(0);
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("+ CN @ 10.13.0.1 [Test CN 1]: Passed."),
        "{out}"
    );
    assert!(
        out.contains("+ CN @ 10.13.0.1:5555 [Second instance]: Passed."),
        "{out}"
    );
    // Each cell's client gets an address from its own instance's pool.
    let mut a = bed.client(0);
    let ip_a = lease(&mut a, &bed, 0);
    assert!(ip_a.starts_with("10.13.101."), "{ip_a}");
    let mut b = bed.client(0);
    bed.air.sh(&format!("ip link set {} master cellb", b.port));
    let ip_b = lease(&mut b, &bed, 0);
    assert!(ip_b.starts_with("10.13.150."), "{ip_b}");
    bed.cns[0]
        .ns
        .signal(pid2, nix::sys::signal::Signal::SIGTERM);
    let st = bed.cns[0].ns.wait(pid2, Duration::from_secs(10));
    assert!(st.is_some_and(|s| s.success()), "{st:?}");
    bed.cns[0].stop();
}

#[test]
fn signals_and_console_work_in_the_foreground() {
    let mut bed = Bed::new(1, None);
    bed.start_mlrd();
    // The console reads a FIFO so the test can type into it.
    let fifo = bed.dir.path("console");
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
    let mut c = bed.client(0);
    let ip = lease(&mut c, &bed, 0);
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
    assert!(st.starts_with("{\"version\":"), "{st}");
    assert!(st.contains("\"mlr_up\":true"), "{st}");
    // USR2: step the level (5 -> 6).
    ns.signal(pid, nix::sys::signal::Signal::SIGUSR2);
    assert!(
        bed.cns[0].wait_log("+ Debug level now 6", 0, 5),
        "{}",
        read(&log)
    );
    // HUP: live settings applied, the rest named as needing a restart.
    bed.set_rc(0, &["debug_level 3", "cn_port 6000"]);
    ns.signal(pid, nix::sys::signal::Signal::SIGHUP);
    assert!(
        bed.cns[0].wait_log("need a restart to take effect: cn_port", 0, 5),
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
    let addrs = bed.cns[0].ns.sh("ip -4 addr show dev mob");
    assert!(!addrs.contains("/32"), "{addrs}");
}

#[test]
fn starts_from_a_uci_section_and_evaluates_with_it() {
    let mut bed = Bed::new(1, None);
    bed.start_mlrd();
    let uci = bed.dir.path("tmip");
    std::fs::write(
        &uci,
        format!(
            "config mlrd 'mlr'\n\toption network_name 'x'\n\n\
             config tmipd 'cell'\n\toption enabled '1'\n\toption mlr '{MLR_IP}'\n\
             \toption cn_name 'UCI CN'\n\toption tunnel_prefix 'ttu'\n\toption cn_if 'core'\n\
             \toption mobile_if 'mob'\n\toption network_name '{NETWORK}'\n\
             \tlist addr_pool 'mob * *'\n\tlist dns '10.13.0.250'\n\toption log '1'\n\
             \toption status_file '{}'\n",
            bed.dir.path("uci.status").display()
        ),
    )
    .unwrap();
    let uci_s = uci.display().to_string();
    bed.cns[0].start(&["-u", "@tmipd[0]", "-c", &uci_s]);
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
        text.contains("+ CN @ 10.13.0.1 [UCI CN]: Passed."),
        "{text}"
    );
    let mut c = bed.client(0);
    assert!(lease(&mut c, &bed, 0).starts_with("10.13.101."));
    bed.cns[0].stop();
}

#[test]
fn a_wrong_network_name_or_secret_is_refused_at_start() {
    let mut bed = Bed::new(1, Some("right"));
    bed.start_mlrd();
    let run = |bed: &Bed| {
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
    let text = read(&bed.cns[0].rc).replace(NETWORK, "other-net");
    std::fs::write(&bed.cns[0].rc, text).unwrap();
    let (code, err) = run(&bed);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("+ Binding CN to the mobile network [other-net]: Bind refused ("),
        "{err}"
    );
    // The right name with the wrong secret.
    let text = read(&bed.cns[0].rc)
        .replace("other-net", NETWORK)
        .replace("secret right", "secret wrong");
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
    let mut bed = Bed::new(2, None);
    // CN 1's pool holds its own mobile address 10.13.101.1: a warning.
    bed.set_rc(0, &["addr_pool mob 10.13.101.0 10.13.101.60"]);
    let rc = read(&bed.cns[0].rc).replace("addr_pool mob * *\n", "");
    std::fs::write(&bed.cns[0].rc, rc).unwrap();
    bed.start_mlrd();
    bed.cns[0].start(&[]);
    let log = bed.cns[0].log_text();
    assert!(
        log.contains(
            "+ Conflict: pool [10.13.101.0 --> 10.13.101.60] holds this CN's own address 10.13.101.1"
        ),
        "{log}"
    );
    // CN 2 offers part of CN 1's pool: the MLR refuses the bind, tmipd exits 1.
    bed.set_rc(1, &["addr_pool mob 10.13.101.32 10.13.101.100"]);
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
    let mut bed = Bed::new(1, None);
    bed.start_mlrd();
    let file_log = bed.dir.path("daemon.log");
    let pid_file = bed.dir.path("tmipd.pid");
    let guard = PidFileGuard(pid_file.clone());
    bed.set_rc(
        0,
        &[
            &format!("log_file {}", file_log.display()),
            &format!("pid_file {}", pid_file.display()),
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
    let (code, out) = bed.evaluate(0);
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
    let mut bed = Bed::new(1, None);
    bed.cns[0].start(&[]);
    let log = bed.cns[0].log_text();
    assert!(
        log.contains("+ Binding CN to the mobile network [tmip-test]: Failed ("),
        "{log}"
    );
    assert!(
        log.contains("Querying MLR: deferred until the MLR is reachable"),
        "{log}"
    );
    bed.start_mlrd();
    assert!(
        bed.cns[0].wait_log("Bind accepted (re-established link)", 0, 20),
        "{}",
        bed.cns[0].log_text()
    );
    let mut c = bed.client(0);
    let ip = lease(&mut c, &bed, 0);
    assert!(ip.starts_with("10.13.101."), "{ip}");
    bed.cns[0].stop();
}
