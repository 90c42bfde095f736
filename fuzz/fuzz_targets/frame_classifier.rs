//! Feeds arbitrary bytes, as frames captured on a CN's mobile interface, to
//! the classifier the arrival capture runs on each of them
//! (`tmip::classify::parse_frame`: Ethernet, ARP, a possibly snaplen-cut
//! IPv4 header, DHCP ports). Nothing may panic; an arrival's MAC must be
//! the frame's Ethernet source, a station (unicast) MAC.
//!
//! Seed corpus: `corpus/frame_classifier/` (an ARP request, a TCP and a
//! DHCP header as the capture sees them).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tmip::classify::parse_frame;

fuzz_target!(|data: &[u8]| {
    if let Some(a) = parse_frame(data) {
        assert_eq!(&a.mac.0[..], &data[6..12]);
        assert!(a.mac.is_station());
    }
});
