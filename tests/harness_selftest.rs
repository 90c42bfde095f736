//! Proves the namespace harness itself: a veth pair between two fresh
//! namespaces carries a ping, and dropping the guards removes them.
mod common;
use common::*;

#[test]
fn namespaces_are_created_linked_and_removed() {
    let a = Netns::new("hA");
    let b = Netns::new("hB");
    veth(&a, "e0", &b, "e0");
    a.sh("ip addr add 192.0.2.1/24 dev e0");
    b.sh("ip addr add 192.0.2.2/24 dev e0");
    a.sh("ping -c1 -W2 192.0.2.2");
    let names = (a.name.clone(), b.name.clone());
    drop(a);
    drop(b);
    let list = sh("ip netns list");
    assert!(
        !list.contains(&names.0) && !list.contains(&names.1),
        "{list}"
    );
}
