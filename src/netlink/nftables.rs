//! nf_tables over NETLINK_NETFILTER: the wire format of the few objects
//! tmipd installs (a table, a base chain, named counters, sets, rules built
//! from a handful of expressions, set elements) and a small handle that
//! commits them. Written from the kernel's uapi (`linux/netfilter/nf_tables.h`,
//! `nfnetlink.h`); the unit tests compare the bytes with what `nft` 1.0.6
//! sends for the same ruleset (`src/netlink/testdata/README.md`).
//!
//! Layout: every message is `nlmsghdr` (16, host order) | `nfgenmsg` (4:
//! family, version 0, resource id big-endian) | attributes. Unlike
//! rtnetlink, nf_tables integers are big-endian, and nested attributes
//! carry `NLA_F_NESTED`. Changes travel in a batch (begin, messages, end)
//! that the kernel applies as one transaction: all or nothing.

use super::message::{
    attrs, MessageBuilder, NlMsg, ParseError, NLA_F_NESTED, NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP,
    NLM_F_REQUEST,
};
use super::socket::RtSocket;
use super::NetlinkError;

/// nfnetlink subsystem of nf_tables (`NFNL_SUBSYS_NFTABLES`).
pub const NFNL_SUBSYS_NFTABLES: u16 = 10;
pub const NFNL_MSG_BATCH_BEGIN: u16 = 16;
pub const NFNL_MSG_BATCH_END: u16 = 17;
/// `NLM_F_APPEND`: a new rule goes after the chain's last one.
pub const NLM_F_APPEND: u16 = 0x800;

// enum nf_tables_msg_types
pub const NFT_MSG_NEWTABLE: u8 = 0;
pub const NFT_MSG_GETTABLE: u8 = 1;
pub const NFT_MSG_DELTABLE: u8 = 2;
pub const NFT_MSG_NEWCHAIN: u8 = 3;
pub const NFT_MSG_NEWRULE: u8 = 6;
pub const NFT_MSG_NEWSET: u8 = 9;
pub const NFT_MSG_NEWSETELEM: u8 = 12;
pub const NFT_MSG_GETSETELEM: u8 = 13;
pub const NFT_MSG_DELSETELEM: u8 = 14;
pub const NFT_MSG_NEWOBJ: u8 = 18;
pub const NFT_MSG_GETOBJ: u8 = 19;

// attributes (each enum starts at 1)
const NFTA_TABLE_NAME: u16 = 1;
const NFTA_TABLE_FLAGS: u16 = 2;
const NFTA_CHAIN_TABLE: u16 = 1;
const NFTA_CHAIN_NAME: u16 = 3;
const NFTA_CHAIN_HOOK: u16 = 4;
const NFTA_CHAIN_POLICY: u16 = 5;
const NFTA_CHAIN_TYPE: u16 = 7;
const NFTA_HOOK_HOOKNUM: u16 = 1;
const NFTA_HOOK_PRIORITY: u16 = 2;
const NFTA_RULE_TABLE: u16 = 1;
const NFTA_RULE_CHAIN: u16 = 2;
const NFTA_RULE_EXPRESSIONS: u16 = 4;
const NFTA_LIST_ELEM: u16 = 1;
const NFTA_EXPR_NAME: u16 = 1;
const NFTA_EXPR_DATA: u16 = 2;
const NFTA_SET_TABLE: u16 = 1;
const NFTA_SET_NAME: u16 = 2;
const NFTA_SET_FLAGS: u16 = 3;
const NFTA_SET_KEY_TYPE: u16 = 4;
const NFTA_SET_KEY_LEN: u16 = 5;
const NFTA_SET_DESC: u16 = 9;
const NFTA_SET_ID: u16 = 10;
const NFTA_SET_TIMEOUT: u16 = 11;
const NFTA_SET_DESC_SIZE: u16 = 1;
const NFTA_SET_ELEM_LIST_TABLE: u16 = 1;
const NFTA_SET_ELEM_LIST_SET: u16 = 2;
const NFTA_SET_ELEM_LIST_ELEMENTS: u16 = 3;
const NFTA_SET_ELEM_KEY: u16 = 1;
const NFTA_SET_ELEM_TIMEOUT: u16 = 4;
const NFTA_DATA_VALUE: u16 = 1;
const NFTA_DATA_VERDICT: u16 = 2;
const NFTA_VERDICT_CODE: u16 = 1;
const NFTA_OBJ_TABLE: u16 = 1;
const NFTA_OBJ_NAME: u16 = 2;
const NFTA_OBJ_TYPE: u16 = 3;
const NFTA_OBJ_DATA: u16 = 4;
const NFTA_COUNTER_BYTES: u16 = 1;
const NFTA_COUNTER_PACKETS: u16 = 2;

/// `NFT_SET_TIMEOUT`: elements may carry a timeout.
pub const NFT_SET_TIMEOUT: u32 = 0x10;
/// `NFT_SET_TIMEOUT | NFT_SET_EVAL`: a set the data path adds to, whose
/// elements expire.
pub const NFT_SET_DYNAMIC_TIMEOUT: u32 = NFT_SET_TIMEOUT | 0x20;
/// `NFT_OBJECT_COUNTER`.
pub const NFT_OBJECT_COUNTER: u32 = 1;

/// Key type of `ether_addr . ipv4_addr` as nft encodes a concatenation:
/// each component's datatype id in 6 bits (ether_addr 9, ipv4_addr 7).
pub const KEY_ETHER_IPV4: u32 = (9 << 6) | 7;
/// Length of such a key: the MAC padded to 8 bytes, then the IPv4 address.
pub const KEY_ETHER_IPV4_LEN: usize = 12;

/// The first 16-byte data register (`NFT_REG_1`) and the verdict register.
pub const NFT_REG_VERDICT: u32 = 0;
pub const NFT_REG_1: u32 = 1;
/// The third 4-byte register (`NFT_REG32_02`): bytes 8..12 of `NFT_REG_1`,
/// where a concatenation's second field goes after a padded MAC.
pub const NFT_REG32_02: u32 = 10;

// meta keys, payload bases, cmp ops, verdicts, dynset ops, hooks
pub const NFT_META_IIF: u32 = 4;
pub const NFT_META_IIFTYPE: u32 = 8;
pub const NFT_META_L4PROTO: u32 = 16;
pub const NFT_PAYLOAD_LL_HEADER: u32 = 0;
pub const NFT_PAYLOAD_NETWORK_HEADER: u32 = 1;
pub const NFT_PAYLOAD_TRANSPORT_HEADER: u32 = 2;
pub const NFT_CMP_EQ: u32 = 0;
pub const NFT_CMP_NEQ: u32 = 1;
pub const NF_DROP: u32 = 0;
pub const NF_ACCEPT: u32 = 1;
pub const NFT_DYNSET_OP_UPDATE: u32 = 1;
const NFT_LOOKUP_F_INV: u32 = 1;
/// `NF_INET_PRE_ROUTING` (ip family) and `NF_ARP_IN` (arp family) are both 0.
pub const NF_HOOK_PREROUTING: u32 = 0;
pub const NF_HOOK_ARP_IN: u32 = 0;

/// The nf_tables families tmipd uses (`NFPROTO_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    Ip = 2,
    Arp = 3,
}

impl Family {
    pub fn name(self) -> &'static str {
        match self {
            Family::Ip => "ip",
            Family::Arp => "arp",
        }
    }
}

/// One expression of a rule, in the kernel's vocabulary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Expr<'a> {
    /// Load a meta key (`iif`, `iiftype`) into `dreg`.
    Meta { key: u32, dreg: u32 },
    /// Compare `sreg` with `data` (bytes as the register holds them).
    Cmp { sreg: u32, op: u32, data: &'a [u8] },
    /// Load `len` bytes at `offset` of header `base` into `dreg`.
    Payload {
        dreg: u32,
        base: u32,
        offset: u32,
        len: u32,
    },
    /// Continue if `sreg` is (or with `invert`, is not) in `set`. `set_id`
    /// names a set created in the same batch.
    Lookup {
        sreg: u32,
        set: &'a str,
        set_id: Option<u32>,
        invert: bool,
    },
    /// Add `sreg` to `set` or refresh its timeout (`update @set { ... }`).
    DynsetUpdate {
        sreg: u32,
        set: &'a str,
        set_id: Option<u32>,
    },
    /// Count in the named counter object.
    CounterRef { name: &'a str },
    /// End the chain with this verdict.
    Verdict(u32),
}

/// An nf_tables batch under construction: begin, messages, end.
pub struct Batch {
    buf: Vec<u8>,
    begin_seq: u32,
    next_seq: u32,
    next_set_id: u32,
    ack: bool,
}

/// `nfgenmsg`: family, version 0, resource id (big-endian).
fn nfgenmsg(family: u8, res_id: u16) -> [u8; 4] {
    let r = res_id.to_be_bytes();
    [family, 0, r[0], r[1]]
}

fn be32(v: u32) -> [u8; 4] {
    v.to_be_bytes()
}

fn nested(b: &mut MessageBuilder, ty: u16, body: impl FnOnce(&mut MessageBuilder)) {
    let at = b.begin_nested(ty | NLA_F_NESTED);
    body(b);
    b.end_nested(at);
}

fn expr(b: &mut MessageBuilder, name: &str, body: impl FnOnce(&mut MessageBuilder)) {
    nested(b, NFTA_LIST_ELEM, |b| {
        b.attr_str(NFTA_EXPR_NAME, name);
        nested(b, NFTA_EXPR_DATA, body);
    });
}

fn emit_expr(b: &mut MessageBuilder, e: &Expr<'_>) {
    match *e {
        Expr::Meta { key, dreg } => expr(b, "meta", |b| {
            b.attr(2, &be32(key)).attr(1, &be32(dreg)); // KEY, DREG
        }),
        Expr::Cmp { sreg, op, data } => expr(b, "cmp", |b| {
            b.attr(1, &be32(sreg)).attr(2, &be32(op)); // SREG, OP
            nested(b, 3, |b| {
                b.attr(NFTA_DATA_VALUE, data);
            });
        }),
        Expr::Payload {
            dreg,
            base,
            offset,
            len,
        } => expr(b, "payload", |b| {
            b.attr(1, &be32(dreg)) // DREG
                .attr(2, &be32(base))
                .attr(3, &be32(offset))
                .attr(4, &be32(len));
        }),
        Expr::Lookup {
            sreg,
            set,
            set_id,
            invert,
        } => expr(b, "lookup", |b| {
            b.attr(2, &be32(sreg)).attr_str(1, set); // SREG, SET
            if let Some(id) = set_id {
                b.attr(4, &be32(id)); // SET_ID
            }
            if invert {
                b.attr(5, &be32(NFT_LOOKUP_F_INV)); // FLAGS
            }
        }),
        Expr::DynsetUpdate { sreg, set, set_id } => expr(b, "dynset", |b| {
            b.attr(4, &be32(sreg)) // SREG_KEY
                .attr(3, &be32(NFT_DYNSET_OP_UPDATE))
                .attr_str(1, set); // SET_NAME
            if let Some(id) = set_id {
                b.attr(2, &be32(id)); // SET_ID
            }
        }),
        Expr::CounterRef { name } => expr(b, "objref", |b| {
            // IMM_TYPE, IMM_NAME (nft sends this name without its NUL)
            b.attr(1, &be32(NFT_OBJECT_COUNTER))
                .attr(2, name.as_bytes());
        }),
        Expr::Verdict(code) => expr(b, "immediate", |b| {
            b.attr(1, &be32(NFT_REG_VERDICT)); // DREG
            nested(b, 2, |b| {
                // DATA
                nested(b, NFTA_DATA_VERDICT, |b| {
                    b.attr(NFTA_VERDICT_CODE, &be32(code));
                });
            });
        }),
    }
}

/// What a new set looks like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SetSpec<'a> {
    pub name: &'a str,
    pub key_type: u32,
    pub key_len: usize,
    /// Most elements the set takes.
    pub size: u32,
    /// `NFT_SET_*` flags.
    pub flags: u32,
    /// The elements' default timeout.
    pub timeout_ms: Option<u64>,
}

impl Batch {
    /// A batch whose begin message is numbered `begin_seq`; its messages
    /// follow on. With `ack`, every message asks for an acknowledgement
    /// (tmipd waits for them; `nft` does not ask).
    pub fn new(begin_seq: u32, ack: bool) -> Batch {
        let mut b = Batch {
            buf: Vec::with_capacity(1024),
            begin_seq,
            next_seq: begin_seq.wrapping_add(1),
            next_set_id: 1,
            ack,
        };
        let m = MessageBuilder::new(
            NFNL_MSG_BATCH_BEGIN,
            NLM_F_REQUEST,
            begin_seq,
            &nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
        );
        b.buf.extend_from_slice(&m.finish());
        b
    }

    fn message(
        &mut self,
        ty: u8,
        flags: u16,
        family: Family,
        body: impl FnOnce(&mut MessageBuilder),
    ) {
        let flags = NLM_F_REQUEST | flags | if self.ack { NLM_F_ACK } else { 0 };
        let mut m = MessageBuilder::new(
            (NFNL_SUBSYS_NFTABLES << 8) | u16::from(ty),
            flags,
            self.next_seq,
            &nfgenmsg(family as u8, 0),
        );
        body(&mut m);
        self.next_seq = self.next_seq.wrapping_add(1);
        self.buf.extend_from_slice(&m.finish());
    }

    /// `add table`: creates the table, or leaves an existing one as it is.
    pub fn add_table(&mut self, family: Family, table: &str) {
        self.message(NFT_MSG_NEWTABLE, 0, family, |m| {
            m.attr_str(NFTA_TABLE_NAME, table)
                .attr(NFTA_TABLE_FLAGS, &be32(0));
        });
    }

    /// `delete table`: the table and everything in it.
    pub fn delete_table(&mut self, family: Family, table: &str) {
        self.message(NFT_MSG_DELTABLE, 0, family, |m| {
            m.attr_str(NFTA_TABLE_NAME, table);
        });
    }

    /// A base chain of type `filter` on `hook` with policy accept.
    pub fn add_base_chain(
        &mut self,
        family: Family,
        table: &str,
        chain: &str,
        hook: u32,
        priority: i32,
    ) {
        self.message(NFT_MSG_NEWCHAIN, NLM_F_CREATE, family, |m| {
            m.attr_str(NFTA_CHAIN_TABLE, table)
                .attr_str(NFTA_CHAIN_NAME, chain)
                .attr_str(NFTA_CHAIN_TYPE, "filter")
                .attr(NFTA_CHAIN_POLICY, &be32(NF_ACCEPT));
            nested(m, NFTA_CHAIN_HOOK, |m| {
                m.attr(NFTA_HOOK_HOOKNUM, &be32(hook))
                    .attr(NFTA_HOOK_PRIORITY, &priority.to_be_bytes());
            });
        });
    }

    /// A named counter object, starting at zero.
    pub fn add_counter(&mut self, family: Family, table: &str, name: &str) {
        self.message(NFT_MSG_NEWOBJ, NLM_F_CREATE, family, |m| {
            m.attr_str(NFTA_OBJ_TABLE, table)
                .attr_str(NFTA_OBJ_NAME, name)
                .attr(NFTA_OBJ_TYPE, &be32(NFT_OBJECT_COUNTER));
            nested(m, NFTA_OBJ_DATA, |m| {
                m.attr(NFTA_COUNTER_BYTES, &0u64.to_be_bytes())
                    .attr(NFTA_COUNTER_PACKETS, &0u64.to_be_bytes());
            });
        });
    }

    /// A set; returns its id, by which rules of the same batch refer to it.
    pub fn add_set(&mut self, family: Family, table: &str, s: &SetSpec<'_>) -> u32 {
        let id = self.next_set_id;
        self.next_set_id += 1;
        let flags = s.flags;
        self.message(NFT_MSG_NEWSET, NLM_F_CREATE, family, |m| {
            m.attr_str(NFTA_SET_TABLE, table)
                .attr_str(NFTA_SET_NAME, s.name)
                .attr(NFTA_SET_FLAGS, &be32(flags))
                .attr(NFTA_SET_KEY_TYPE, &be32(s.key_type))
                .attr(NFTA_SET_KEY_LEN, &be32(s.key_len as u32))
                .attr(NFTA_SET_ID, &be32(id));
            nested(m, NFTA_SET_DESC, |m| {
                m.attr(NFTA_SET_DESC_SIZE, &be32(s.size));
            });
            if let Some(ms) = s.timeout_ms {
                m.attr(NFTA_SET_TIMEOUT, &ms.to_be_bytes());
            }
        });
        id
    }

    /// A rule appended to `chain`.
    pub fn add_rule(&mut self, family: Family, table: &str, chain: &str, exprs: &[Expr<'_>]) {
        self.message(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND, family, |m| {
            m.attr_str(NFTA_RULE_TABLE, table)
                .attr_str(NFTA_RULE_CHAIN, chain);
            nested(m, NFTA_RULE_EXPRESSIONS, |m| {
                for e in exprs {
                    emit_expr(m, e);
                }
            });
        });
    }

    fn elements(
        &mut self,
        ty: u8,
        family: Family,
        table: &str,
        set: &str,
        keys: &[&[u8]],
        timeout_ms: Option<u64>,
    ) {
        let flags = if ty == NFT_MSG_NEWSETELEM {
            NLM_F_CREATE
        } else {
            0
        };
        self.message(ty, flags, family, |m| {
            m.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
                .attr_str(NFTA_SET_ELEM_LIST_SET, set);
            nested(m, NFTA_SET_ELEM_LIST_ELEMENTS, |m| {
                for k in keys {
                    nested(m, NFTA_LIST_ELEM, |m| {
                        if let Some(ms) = timeout_ms {
                            m.attr(NFTA_SET_ELEM_TIMEOUT, &ms.to_be_bytes());
                        }
                        nested(m, NFTA_SET_ELEM_KEY, |m| {
                            m.attr(NFTA_DATA_VALUE, k);
                        });
                    });
                }
            });
        });
    }

    /// Adds elements to an existing set (one already there is no error and
    /// keeps its timeout, if it had one). With `timeout_ms` they expire (the
    /// set needs `NFT_SET_TIMEOUT`).
    pub fn add_elements(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
        keys: &[&[u8]],
        timeout_ms: Option<u64>,
    ) {
        self.elements(NFT_MSG_NEWSETELEM, family, table, set, keys, timeout_ms);
    }

    /// Removes elements from a set (one not there is refused: ENOENT).
    pub fn delete_elements(&mut self, family: Family, table: &str, set: &str, keys: &[&[u8]]) {
        self.elements(NFT_MSG_DELSETELEM, family, table, set, keys, None);
    }

    /// Number of messages between begin and end so far.
    pub fn len(&self) -> u32 {
        self.next_seq.wrapping_sub(self.begin_seq).wrapping_sub(1)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Closes the batch: the bytes to send and the sequence numbers of its
    /// messages (first, last), for [`RtSocket::request_batch`].
    pub fn finish(mut self) -> FinishedBatch {
        let end_seq = self.next_seq;
        let m = MessageBuilder::new(
            NFNL_MSG_BATCH_END,
            NLM_F_REQUEST,
            end_seq,
            &nfgenmsg(0, NFNL_SUBSYS_NFTABLES),
        );
        self.buf.extend_from_slice(&m.finish());
        FinishedBatch {
            bytes: self.buf,
            first: self.begin_seq.wrapping_add(1),
            last: end_seq.wrapping_sub(1),
        }
    }
}

/// A closed batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FinishedBatch {
    pub bytes: Vec<u8>,
    pub first: u32,
    pub last: u32,
}

/// `GETOBJ` of one counter.
pub fn build_get_counter(family: Family, table: &str, name: &str, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETOBJ),
        NLM_F_REQUEST,
        seq,
        &nfgenmsg(family as u8, 0),
    );
    m.attr_str(NFTA_OBJ_TABLE, table)
        .attr_str(NFTA_OBJ_NAME, name)
        .attr(NFTA_OBJ_TYPE, &be32(NFT_OBJECT_COUNTER));
    m.finish()
}

/// `GETTABLE` of one table (answered with the table, or ENOENT).
pub fn build_get_table(family: Family, table: &str, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETTABLE),
        NLM_F_REQUEST,
        seq,
        &nfgenmsg(family as u8, 0),
    );
    m.attr_str(NFTA_TABLE_NAME, table);
    m.finish()
}

/// `GETSETELEM` dump of one set.
pub fn build_dump_elements(family: Family, table: &str, set: &str, seq: u32) -> Vec<u8> {
    let mut m = MessageBuilder::new(
        (NFNL_SUBSYS_NFTABLES << 8) | u16::from(NFT_MSG_GETSETELEM),
        NLM_F_REQUEST | NLM_F_DUMP,
        seq,
        &nfgenmsg(family as u8, 0),
    );
    m.attr_str(NFTA_SET_ELEM_LIST_TABLE, table)
        .attr_str(NFTA_SET_ELEM_LIST_SET, set);
    m.finish()
}

fn nft_type(msg: &NlMsg<'_>) -> Option<u8> {
    ((msg.msg_type >> 8) == NFNL_SUBSYS_NFTABLES).then_some((msg.msg_type & 0xff) as u8)
}

fn be_u64(v: &[u8]) -> Result<u64, ParseError> {
    let b: [u8; 8] = v
        .get(..8)
        .and_then(|s| s.try_into().ok())
        .ok_or(ParseError::Truncated("nf_tables u64"))?;
    Ok(u64::from_be_bytes(b))
}

/// A counter's value.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CounterValue {
    pub packets: u64,
    pub bytes: u64,
}

/// Reads a `NEWOBJ` answer carrying a counter; `Ok(None)` for other messages.
pub fn parse_counter(msg: &NlMsg<'_>) -> Result<Option<CounterValue>, ParseError> {
    if nft_type(msg) != Some(NFT_MSG_NEWOBJ) {
        return Ok(None);
    }
    let (_, top) = msg.split(4)?;
    for a in top {
        let (ty, v) = a?;
        if ty != NFTA_OBJ_DATA {
            continue;
        }
        let mut c = CounterValue::default();
        for a in attrs(v) {
            match a? {
                (NFTA_COUNTER_PACKETS, v) => c.packets = be_u64(v)?,
                (NFTA_COUNTER_BYTES, v) => c.bytes = be_u64(v)?,
                _ => {}
            }
        }
        return Ok(Some(c));
    }
    Err(ParseError::Truncated("counter object without data"))
}

/// Reads the keys of one `NEWSETELEM` message of a dump (appended to `out`).
pub fn parse_element_keys(msg: &NlMsg<'_>, out: &mut Vec<Vec<u8>>) -> Result<(), ParseError> {
    if nft_type(msg) != Some(NFT_MSG_NEWSETELEM) {
        return Ok(());
    }
    let (_, top) = msg.split(4)?;
    for a in top {
        let (ty, list) = a?;
        if ty != NFTA_SET_ELEM_LIST_ELEMENTS {
            continue;
        }
        for elem in attrs(list) {
            let (_, elem) = elem?;
            for a in attrs(elem) {
                let (ty, key) = a?;
                if ty != NFTA_SET_ELEM_KEY {
                    continue;
                }
                for a in attrs(key) {
                    if let (NFTA_DATA_VALUE, v) = a? {
                        out.push(v.to_vec());
                    }
                }
            }
        }
    }
    Ok(())
}

/// An nf_tables handle in the caller's network namespace.
pub struct NfTables {
    sock: RtSocket,
}

impl NfTables {
    pub fn open() -> Result<NfTables, NetlinkError> {
        Ok(NfTables {
            sock: RtSocket::open_protocol(libc::NETLINK_NETFILTER, "socket(NETLINK_NETFILTER)")?,
        })
    }

    /// Starts a batch numbered from this socket's sequence.
    pub fn batch(&mut self) -> Batch {
        Batch::new(self.sock.next_seq(), true)
    }

    /// Applies a batch as one transaction; the first refusal is the error.
    pub fn commit(&mut self, batch: Batch) -> Result<(), NetlinkError> {
        if batch.is_empty() {
            return Ok(());
        }
        let n = batch.len();
        let b = batch.finish();
        self.sock.advance_seq(n + 1);
        self.sock.request_batch(&b.bytes, b.first, b.last)
    }

    /// Whether `table` exists.
    pub fn table_exists(&mut self, family: Family, table: &str) -> Result<bool, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_get_table(family, table, seq);
        match self.sock.request_dump(&req, seq, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(NetlinkError::Kernel(libc::ENOENT)) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// The value of a named counter.
    pub fn counter(
        &mut self,
        family: Family,
        table: &str,
        name: &str,
    ) -> Result<CounterValue, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_get_counter(family, table, name, seq);
        let mut found = None;
        self.sock.request_dump(&req, seq, |m| {
            if let Some(c) = parse_counter(m)? {
                found = Some(c);
            }
            Ok(())
        })?;
        found.ok_or(NetlinkError::Parse(ParseError::Truncated(
            "no counter in the answer",
        )))
    }

    /// The keys of a set's elements.
    pub fn element_keys(
        &mut self,
        family: Family,
        table: &str,
        set: &str,
    ) -> Result<Vec<Vec<u8>>, NetlinkError> {
        let seq = self.sock.next_seq();
        let req = build_dump_elements(family, table, set, seq);
        let mut out = Vec::new();
        self.sock
            .request_dump(&req, seq, |m| Ok(parse_element_keys(m, &mut out)?))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
