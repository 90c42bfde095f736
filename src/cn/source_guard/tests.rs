//! The guard's batches against the bytes `nft` sends for the same ruleset
//! (src/netlink/testdata), and the drop report.

use super::*;
use crate::netlink::message::{attrs, messages};
use crate::netlink::nftables::{NFT_MSG_NEWSET, NFT_MSG_NEWSETELEM};

fn hex(s: &str) -> Vec<u8> {
    let s = s.trim();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
        .collect()
}

/// NFTA_SET_USERDATA on NEWSET, NFTA_SET_ELEM_LIST_SET_ID on NEWSETELEM:
/// nft's own notes, not part of the ruleset.
fn nft_private(msg_type: u16, attr: u16) -> bool {
    let ty = (msg_type & 0xff) as u8;
    (ty == NFT_MSG_NEWSET && attr == 13) || (ty == NFT_MSG_NEWSETELEM && attr == 4)
}

/// The messages of a batch, each as bytes, with nft's private attributes
/// removed (and the message length fixed up).
fn normalized(batch: &[u8]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for m in messages(batch) {
        let m = m.expect("message");
        let mut b = Vec::new();
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&m.msg_type.to_ne_bytes());
        b.extend_from_slice(&m.flags.to_ne_bytes());
        b.extend_from_slice(&m.seq.to_ne_bytes());
        b.extend_from_slice(&0u32.to_ne_bytes());
        b.extend_from_slice(&m.payload[..4]); // nfgenmsg
        let mut rest = &m.payload[4..];
        for a in attrs(&m.payload[4..]) {
            let (ty, v) = a.expect("attribute");
            let raw_len = 4 + v.len();
            let padded = (raw_len + 3) & !3;
            let raw = &rest[..raw_len];
            if !nft_private(m.msg_type, ty) {
                b.extend_from_slice(raw);
                b.resize((b.len() + 3) & !3, 0);
            }
            rest = &rest[padded.min(rest.len())..];
        }
        let len = b.len() as u32;
        b[..4].copy_from_slice(&len.to_ne_bytes());
        out.push(b);
    }
    out
}

fn guard() -> SourceGuard {
    // nft_install.nft: table tmip_t, iif "mob" (ifindex 3), 256 stations
    // (set size 512: room for as many lingering).
    SourceGuard::new("t", 3, 256)
}

fn assert_same(ours: Vec<u8>, theirs: &str) {
    let ours = normalized(&ours);
    let theirs = normalized(&hex(theirs));
    assert_eq!(ours.len(), theirs.len(), "number of messages");
    for (i, (a, b)) in ours.iter().zip(&theirs).enumerate() {
        assert_eq!(a, b, "message {i} differs");
    }
}

#[cfg(target_endian = "little")]
#[test]
fn install_batch_is_the_bytes_nft_sends_for_the_same_ruleset() {
    let g = guard();
    let mut b = Batch::new(0, false);
    g.install(&mut b, Family::Ip);
    g.install(&mut b, Family::Arp);
    assert_same(
        b.finish().bytes,
        include_str!("../../netlink/testdata/nft_install.hex"),
    );
}

#[cfg(target_endian = "little")]
#[test]
fn admit_linger_and_revoke_are_the_bytes_nft_sends_for_the_same_elements() {
    let g = guard();
    let mac = MacAddr([2, 0, 0, 0, 0, 1]);
    let ip = Ipv4Addr::new(10, 1, 0, 5);
    let mut b = Batch::new(0, false);
    g.admit(&mut b, Family::Ip, mac, ip);
    g.admit(&mut b, Family::Arp, mac, ip);
    assert_same(
        b.finish().bytes,
        include_str!("../../netlink/testdata/nft_add.hex"),
    );
    // add; delete; add with `timeout 30s`
    let mut b = Batch::new(0, false);
    g.linger(&mut b, Family::Ip, mac, ip, LINGER_MS);
    assert_same(
        b.finish().bytes,
        include_str!("../../netlink/testdata/nft_linger.hex"),
    );
    // add; delete (so a pair that is not there is no error)
    let mut b = Batch::new(0, false);
    g.revoke(&mut b, Family::Ip, mac, ip);
    g.revoke(&mut b, Family::Arp, mac, ip);
    assert_same(
        b.finish().bytes,
        include_str!("../../netlink/testdata/nft_del.hex"),
    );
}

#[test]
fn readmission_clears_a_lingering_timeout() {
    let g = guard();
    let mut b = Batch::new(0, false);
    g.readmit(
        &mut b,
        Family::Ip,
        MacAddr([2, 0, 0, 0, 0, 1]),
        Ipv4Addr::new(10, 1, 0, 5),
    );
    let f = b.finish();
    let ms: Vec<_> = messages(&f.bytes).map(|m| m.expect("message")).collect();
    let types: Vec<u16> = ms.iter().map(|m| m.msg_type).collect();
    // begin, NEWSETELEM, DELSETELEM, NEWSETELEM, end
    assert_eq!(types, vec![16, 0x0a0c, 0x0a0e, 0x0a0c, 17]);
    // The last add carries no NFTA_SET_ELEM_TIMEOUT: the same bytes as the first.
    assert_eq!(ms[1].payload, ms[3].payload);
}

#[test]
fn removal_is_add_then_delete_so_a_missing_table_is_no_error() {
    let mut b = Batch::new(41, true);
    guard().remove(&mut b, Family::Ip);
    let f = b.finish();
    assert_eq!((f.first, f.last), (42, 43));
    let types: Vec<u16> = messages(&f.bytes)
        .map(|m| m.expect("message").msg_type)
        .collect();
    // begin, NEWTABLE, DELTABLE, end
    assert_eq!(types, vec![16, 0x0a00, 0x0a02, 17]);
}

#[test]
fn keys_round_trip_and_odd_keys_are_refused() {
    let mac = MacAddr([2, 0xaa, 0, 0, 0, 0x0b]);
    let ip = Ipv4Addr::new(10, 1, 0, 9);
    let k = key(mac, ip);
    assert_eq!(k, [2, 0xaa, 0, 0, 0, 0x0b, 0, 0, 10, 1, 0, 9]);
    assert_eq!(parse_key(&k), Some((mac, ip)));
    assert_eq!(parse_key(&k[..11]), None);
    assert_eq!(parse_key(&[0; 13]), None);
}

#[test]
fn instances_get_their_own_tables() {
    assert_eq!(table_name("tmip0"), "tmip_tmip0");
    assert_ne!(
        SourceGuard::new("a", 3, 8).table(),
        SourceGuard::new("b", 3, 8).table()
    );
}

#[test]
fn report_names_new_drops_and_offenders_and_stays_quiet_otherwise() {
    let mut r = DropReport::default();
    assert_eq!(r.update("mob", 0, 0, &[]), None);
    let who = [(MacAddr([2, 0, 0, 0, 0, 0xbb]), Ipv4Addr::new(10, 1, 0, 5))];
    let line = r.update("mob", 15, 2, &who).expect("a line");
    assert!(
        line.contains("dropped 15 IPv4 packet(s) and 2 ARP frame(s)"),
        "{line}"
    );
    assert!(line.contains("02:00:00:00:00:bb as 10.1.0.5"), "{line}");
    assert_eq!(r.update("mob", 15, 2, &who), None, "nothing new");
    let line = r.update("mob", 20, 2, &[]).expect("a line");
    assert!(
        line.contains("dropped 5 IPv4") && line.contains("(20 and 2 in all)"),
        "{line}"
    );
    assert_eq!(r.latest(), (5, 0), "what the refused event reports");
    // A re-created table starts from zero again.
    let line = r.update("mob", 3, 0, &[]).expect("a line");
    assert!(line.contains("dropped 3 IPv4"), "{line}");
    assert_eq!(r.latest(), (3, 0));
    assert_eq!(r.totals(), (3, 0));
}

#[test]
fn report_lists_at_most_eight_offenders() {
    let mut r = DropReport::default();
    let many: Vec<(MacAddr, Ipv4Addr)> = (0..10u8)
        .map(|i| (MacAddr([2, 0, 0, 0, 0, i]), Ipv4Addr::new(10, 0, 0, i)))
        .collect();
    let line = r.update("mob", 10, 0, &many).expect("a line");
    assert!(line.contains("2 more"), "{line}");
    assert!(!line.contains("02:00:00:00:00:09"), "{line}");
}
