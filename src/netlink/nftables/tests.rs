//! Batch framing and the parsers of nf_tables answers (hand-built replies,
//! truncations). The ruleset itself is compared with nft's bytes in
//! `cn::source_guard`'s tests.

use super::*;
use crate::netlink::message::{messages, NLM_F_MULTI};

fn reply(ty: u8, flags: u16, body: impl FnOnce(&mut MessageBuilder)) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(ty),
        flags,
        7,
        &nfgenmsg(Family::Ip as u8, 0),
    );
    body(&mut m);
    m.finish()
}

fn one(buf: &[u8]) -> NlMsg<'_> {
    messages(buf)
        .next()
        .expect("a message")
        .expect("well formed")
}

#[cfg(target_endian = "little")]
#[test]
fn empty_batch_is_begin_and_end_with_the_subsystem_in_big_endian() {
    let b = Batch::new(5, true);
    assert!(b.is_empty());
    let f = b.finish();
    #[rustfmt::skip]
    let expected = [
        20, 0, 0, 0,  16, 0,  1, 0,  5, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10, // begin, seq 5
        20, 0, 0, 0,  17, 0,  1, 0,  6, 0, 0, 0,  0, 0, 0, 0,  0, 0, 0, 10, // end, seq 6
    ];
    assert_eq!(f.bytes, expected);
}

#[test]
fn batch_messages_ask_for_acks_and_are_numbered_between_begin_and_end() {
    let mut b = Batch::new(100, true);
    b.add_table(Family::Ip, "t");
    b.delete_table(Family::Arp, "t");
    assert_eq!(b.len(), 2);
    let f = b.finish();
    assert_eq!((f.first, f.last), (101, 102));
    let ms: Vec<_> = messages(&f.bytes).map(|m| m.expect("message")).collect();
    assert_eq!(ms.len(), 4);
    assert_eq!(ms[1].flags, NLM_F_REQUEST | NLM_F_ACK);
    assert_eq!(ms[2].payload[0], Family::Arp as u8);
    assert_eq!(ms[3].seq, 103);
}

#[test]
fn set_ids_count_up_within_a_batch() {
    let mut b = Batch::new(0, false);
    let spec = SetSpec {
        name: "s",
        key_type: KEY_ETHER_IPV4,
        key_len: KEY_ETHER_IPV4_LEN,
        size: 4,
        flags: 0,
        timeout_ms: None,
    };
    assert_eq!(b.add_set(Family::Ip, "t", &spec), 1);
    assert_eq!(b.add_set(Family::Ip, "t", &spec), 2);
}

#[test]
fn counter_answer_is_read() {
    let buf = reply(NFT_MSG_NEWOBJ, 0, |m| {
        m.attr_str(NFTA_OBJ_TABLE, "tmip_t")
            .attr_str(NFTA_OBJ_NAME, "spoofed")
            .attr(NFTA_OBJ_TYPE, &be32(NFT_OBJECT_COUNTER));
        nested(m, NFTA_OBJ_DATA, |m| {
            m.attr(NFTA_COUNTER_BYTES, &4242u64.to_be_bytes())
                .attr(NFTA_COUNTER_PACKETS, &42u64.to_be_bytes());
        });
    });
    assert_eq!(
        parse_counter(&one(&buf)),
        Ok(Some(CounterValue {
            packets: 42,
            bytes: 4242
        }))
    );
}

#[test]
fn counter_answer_truncated_or_without_data_is_an_error() {
    let buf = reply(NFT_MSG_NEWOBJ, 0, |m| {
        nested(m, NFTA_OBJ_DATA, |m| {
            m.attr(NFTA_COUNTER_PACKETS, &[0, 0, 1]);
        });
    });
    assert!(parse_counter(&one(&buf)).is_err());
    let buf = reply(NFT_MSG_NEWOBJ, 0, |m| {
        m.attr_str(NFTA_OBJ_NAME, "spoofed");
    });
    assert!(parse_counter(&one(&buf)).is_err());
    // Another message type is not a counter.
    let buf = reply(NFT_MSG_NEWTABLE, 0, |_| {});
    assert_eq!(parse_counter(&one(&buf)), Ok(None));
}

#[test]
fn element_dump_keys_are_read() {
    let buf = reply(NFT_MSG_NEWSETELEM, NLM_F_MULTI, |m| {
        m.attr_str(NFTA_SET_ELEM_LIST_TABLE, "tmip_t")
            .attr_str(NFTA_SET_ELEM_LIST_SET, "spoofers");
        nested(m, NFTA_SET_ELEM_LIST_ELEMENTS, |m| {
            for last in [1u8, 2] {
                nested(m, NFTA_LIST_ELEM, |m| {
                    nested(m, NFTA_SET_ELEM_KEY, |m| {
                        m.attr(NFTA_DATA_VALUE, &[2, 0, 0, 0, 0, last, 0, 0, 10, 1, 0, 5]);
                    });
                    m.attr(6, &60_000u64.to_be_bytes()); // NFTA_SET_ELEM_EXPIRATION: skipped
                });
            }
        });
    });
    let mut keys = Vec::new();
    parse_element_keys(&one(&buf), &mut keys).expect("parsed");
    assert_eq!(keys.len(), 2);
    assert_eq!(keys[1], vec![2, 0, 0, 0, 0, 2, 0, 0, 10, 1, 0, 5]);
}

#[test]
fn element_dump_with_a_bad_attribute_length_is_an_error() {
    let mut buf = reply(NFT_MSG_NEWSETELEM, 0, |m| {
        nested(m, NFTA_SET_ELEM_LIST_ELEMENTS, |m| {
            nested(m, NFTA_LIST_ELEM, |m| {
                m.attr(NFTA_SET_ELEM_KEY, &[0; 8]);
            });
        });
    });
    // Claim the innermost attribute is longer than the message.
    let at = buf.len() - 12;
    buf[at..at + 2].copy_from_slice(&200u16.to_ne_bytes());
    let mut keys = Vec::new();
    assert!(parse_element_keys(&one(&buf), &mut keys).is_err());
}
