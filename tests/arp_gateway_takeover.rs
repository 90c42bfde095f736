//! Proves that the ARP frames `tmip::wire::arp` builds move a Linux
//! station's neighbour entry for its gateway N+2 to a new CN at once, even
//! while the old entry is fresh (REACHABLE) — the handover's key step, as a
//! roaming station keeps its ARP cache.
//!
//! Topology: station namespace `st` on a bridge in `air` with two CN
//! namespaces `cnA` and `cnB`. The station's entry for N+2 points at A; B
//! sends the frame; the entry must name B's MAC right after, although the
//! station's locktime would hold off an ordinary ARP reply.
mod common;
use common::*;

const N2: &str = "10.60.0.2";
const N1: &str = "10.60.0.1";

struct Bed {
    st: Netns,
    cn_b: Netns,
    _cn_a: Netns,
    _air: Netns,
    mac_a: String,
    mac_b: String,
    mac_st: String,
}

fn mac_of(ns: &Netns, dev: &str) -> String {
    ns.sh(&format!("cat /sys/class/net/{dev}/address"))
        .trim()
        .to_string()
}

fn bed() -> Bed {
    let air = Netns::new("aA");
    let st = Netns::new("aS");
    let cn_a = Netns::new("aCa");
    let cn_b = Netns::new("aCb");
    air.sh("ip link add br0 type bridge && ip link set br0 up");
    for (ns, port) in [(&st, "p0"), (&cn_a, "p1"), (&cn_b, "p2")] {
        veth(ns, "e0", &air, port);
        air.sh(&format!("ip link set {port} master br0"));
    }
    st.sh(&format!(
        "ip addr add {N1}/30 dev e0 && ip route add default via {N2}"
    ));
    // A 30 s locktime (unit: 1/100 s): an ordinary reply cannot replace the
    // entry during the test, so only a gratuitous frame can.
    st.sh("sysctl -qw net.ipv4.neigh.e0.locktime=3000");
    cn_a.sh(&format!(
        "ip addr add {N2}/32 dev e0 && ip route add {N1}/32 dev e0"
    ));
    // B does not own N+2 in the kernel yet: the frame alone must do it.
    let mac_a = mac_of(&cn_a, "e0");
    let mac_b = mac_of(&cn_b, "e0");
    let mac_st = mac_of(&st, "e0");
    // The station talks to A: its entry for N+2 is A's and fresh.
    st.sh(&format!("ping -c1 -W2 {N2}"));
    let neigh = st.sh(&format!("ip neigh show {N2} dev e0"));
    assert!(neigh.contains(&mac_a), "entry should name A first: {neigh}");
    assert!(
        neigh.contains("REACHABLE"),
        "entry should be fresh: {neigh}"
    );
    Bed {
        st,
        cn_b,
        _cn_a: cn_a,
        _air: air,
        mac_a,
        mac_b,
        mac_st,
    }
}

fn send_from_b(b: &Bed, args: &str) {
    let out = b.cn_b.sh(&format!(
        "{} --iface e0 --ip {N2} {args}",
        example("arp_announce").display()
    ));
    assert!(out.contains("SENT"), "{out}");
}

fn entry_names(b: &Bed, mac: &str) -> bool {
    wait_for(std::time::Duration::from_millis(500), || {
        b.st.sh(&format!("ip neigh show {N2} dev e0"))
            .contains(mac)
            .then_some(())
    })
    .is_some()
}

#[test]
fn unicast_gratuitous_reply_takes_over_a_fresh_entry() {
    let b = bed();
    send_from_b(&b, &format!("--mode gratuitous-reply --to {}", b.mac_st));
    assert!(
        entry_names(&b, &b.mac_b),
        "N+2 still at A ({}) after B's gratuitous reply: {}",
        b.mac_a,
        b.st.sh(&format!("ip neigh show {N2}"))
    );
}

#[test]
fn broadcast_announcement_takes_over_a_fresh_entry() {
    let b = bed();
    send_from_b(&b, "--mode announce");
    assert!(
        entry_names(&b, &b.mac_b),
        "N+2 still at A ({}) after B's announcement: {}",
        b.mac_a,
        b.st.sh(&format!("ip neigh show {N2}"))
    );
}

#[test]
fn plain_reply_is_held_off_by_locktime_on_a_fresh_entry() {
    // Documents why tmipd must send the gratuitous form: an ordinary reply
    // (target N+1) within the locktime of an updated entry is ignored (the
    // default locktime is 1 s; the bed raises it so this is not a race).
    let b = bed();
    send_from_b(
        &b,
        &format!("--mode reply --to {} --target-ip {N1}", b.mac_st),
    );
    let neigh = b.st.sh(&format!("ip neigh show {N2} dev e0"));
    assert!(
        neigh.contains(&b.mac_a),
        "a plain reply overrode the fresh entry: {neigh}"
    );
}
