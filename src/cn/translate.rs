//! Between the core's vocabulary ([`MlrCall`], [`MlrAnswer`]) and MLRP
//! messages. The only place that knows both.

use super::core::{MlrAnswer, MlrCall, StationBinding};
use super::dataplane::CnAddr;
use crate::mlrp::{self, CnRef, ErrorCode, Message};

pub fn cn_addr(r: CnRef) -> CnAddr {
    CnAddr {
        ip: r.addr,
        port: r.port,
    }
}

pub fn cn_ref(a: CnAddr) -> CnRef {
    CnRef::new(a.ip, a.port)
}

pub fn binding(b: &mlrp::Binding) -> StationBinding {
    StationBinding {
        mac: b.mac,
        cell: b.cell,
        parent: cn_addr(b.parent),
        // 0.0.0.0:0: an offer, held and not bound at any CN yet.
        at: (b.at != CnRef::new(std::net::Ipv4Addr::UNSPECIFIED, 0)).then(|| cn_addr(b.at)),
        previous: b.previous.map(cn_addr),
        lease_secs: b.lease_remaining_secs,
    }
}

/// The request message for a core call made by CN `me`.
pub fn request(call: &MlrCall, me: CnAddr) -> Message {
    match *call {
        MlrCall::Allocate { mac, requested } => {
            Message::Allocate(mlrp::Allocate { mac, requested })
        }
        MlrCall::Offer { mac, requested } => Message::Offer(mlrp::Allocate { mac, requested }),
        MlrCall::Commit { mac, cell } => Message::Commit(mlrp::Commit { mac, cell }),
        MlrCall::LocateMac { mac } => Message::Locate(mlrp::Locate::ByMac(mac)),
        MlrCall::LocateIp { ip } => Message::Locate(mlrp::Locate::ByIp(ip)),
        MlrCall::Move { mac, cell } => Message::Move(mlrp::Move {
            mac,
            cell,
            to: cn_ref(me),
        }),
        MlrCall::Release { mac, cell } => Message::Release(mlrp::Release { mac, cell }),
        MlrCall::ListCns => Message::ListCns,
    }
}

/// The core's view of a reply.
pub fn answer(msg: Message) -> MlrAnswer {
    match msg {
        Message::Binding(b) => MlrAnswer::Binding(binding(&b)),
        Message::Error(e) if e.code == ErrorCode::NotFound => MlrAnswer::NotFound,
        Message::Error(e) => MlrAnswer::Error(format!("{}: {}", e.code, e.text)),
        Message::CnList(l) => MlrAnswer::CnList(
            l.entries
                .into_iter()
                .map(|e| (cn_addr(e.cn_ref()), e.name))
                .collect(),
        ),
        Message::Ack => MlrAnswer::Ack,
        other => MlrAnswer::Error(format!("unexpected reply {other}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::addr::{Cell30, MacAddr};
    use std::net::Ipv4Addr;

    #[test]
    fn bindings_and_errors_translate() {
        let me = CnAddr {
            ip: Ipv4Addr::new(10, 0, 0, 1),
            port: 5554,
        };
        let mac = MacAddr([2, 0, 0, 0, 0, 1]);
        let cell = Cell30::containing(Ipv4Addr::new(10, 1, 0, 4));
        let m = request(&MlrCall::Move { mac, cell }, me);
        assert!(matches!(m, Message::Move(mv) if mv.to == CnRef::new(me.ip, 5554)));
        let b = mlrp::Binding {
            mac,
            cell,
            parent: cn_ref(me),
            at: CnRef::new(Ipv4Addr::new(10, 0, 0, 2), 5554),
            previous: None,
            lease_remaining_secs: 77,
        };
        let MlrAnswer::Binding(x) = answer(Message::Binding(b)) else {
            panic!()
        };
        assert_eq!(x.parent, me);
        assert_eq!(x.lease_secs, 77);
        assert_eq!(
            answer(Message::Error(mlrp::ErrorReply::new(
                ErrorCode::NotFound,
                "x"
            ))),
            MlrAnswer::NotFound
        );
    }
}
