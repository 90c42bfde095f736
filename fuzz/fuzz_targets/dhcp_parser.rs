//! Feeds arbitrary bytes to the DHCP parser and to the CN's DHCP server.
//! Byte 0 selects what is fuzzed:
//! - even: a bare DHCP message (`dhcp::wire::Repr::parse_bytes`); a message
//!   that parses must emit again, and what it emits must parse to the same
//!   message (the server answers from a parsed `Repr`);
//! - odd: a whole Ethernet frame into `DhcpServer::handle_frame` (Ethernet,
//!   IPv4, UDP and DHCP checks, the chaddr/source check, the pending table),
//!   then, for a lookup it asks, the MLR's answer (`binding_ready`) built
//!   from the frame's first bytes, so OFFER/ACK/NAK construction runs on fuzzed requests.
//!
//! Nothing may panic. Seed corpus: `corpus/dhcp_parser/` (real client
//! messages from `src/dhcp/testdata`, prefixed with the selector byte).
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::net::Ipv4Addr;
use std::time::Instant;
use tmip::addr::{Cell30, MacAddr};
use tmip::dhcp::wire::Repr;
use tmip::dhcp::{Action, DhcpConfig, DhcpServer, Lease, LookupError};

fuzz_target!(|data: &[u8]| {
    let Some((&sel, rest)) = data.split_first() else {
        return;
    };
    if sel & 1 == 0 {
        if let Ok(r) = Repr::parse_bytes(rest) {
            // A message too long to emit again is an error, not a bug.
            if let Ok(bytes) = r.to_vec() {
                let again = Repr::parse_bytes(&bytes).expect("an emitted message must parse");
                assert_eq!(again.message_type, r.message_type);
                assert_eq!(again.client_hardware_addr, r.client_hardware_addr);
                assert_eq!(again.transaction_id, r.transaction_id);
            }
        }
        return;
    }
    let cfg = DhcpConfig {
        dns: vec![Ipv4Addr::new(10, 0, 0, 53)],
        domain: Some("fuzz.example".into()),
        static_routes: vec![(Ipv4Addr::new(192, 168, 0, 0), 16, Ipv4Addr::UNSPECIFIED)],
        lease_time: 600,
    };
    let mut s = DhcpServer::new(cfg, MacAddr([2, 0, 0, 0, 0, 0xfe]));
    let now = Instant::now();
    let Ok(Some(Action::Lookup { mac, requested_ip, .. })) = s.handle_frame(rest, now) else {
        return;
    };
    let b = rest.get(..5).unwrap_or(&[0; 5]);
    let result = match b[0] % 3 {
        0 => Err(LookupError::NotFound),
        1 => Err(LookupError::Unavailable("fuzz".into())),
        _ => {
            let ip = requested_ip.unwrap_or(Ipv4Addr::new(10, b[1], b[2], b[3]));
            Ok(Lease {
                cell: Cell30::containing(ip),
                lease_secs: u32::from(b[4]) * 60,
            })
        }
    };
    let _ = s.binding_ready(mac, result, now);
});
