//! Arrival detection by capture on the mobile interface (libpcap, BPF
//! filter, non-blocking, polled by the event loop).
//!
//! A station that moved here with a static address (N+1, gateway N+2) or
//! with a lease from another CN never asks this CN's DHCP server; the first
//! thing we see of it is an ARP for its gateway or an IP packet sent to the
//! gateway MAC it still has cached (a frame addressed to another CN's MAC:
//! hence promiscuous mode). The capture reports the source of such frames
//! as an [`Arrival`]; the CN decides what to do (Locate at the MLR, adopt).
//!
//! - Filter: `(arp or ip) and not ether src <own mac>`, so the kernel drops
//!   everything else, including what the CN itself sends. The classic BPF
//!   program is built here ([`filter_program`], the instructions libpcap's
//!   optimiser makes of that expression) and attached to the capture's
//!   socket with `SO_ATTACH_FILTER`, as libpcap's `pcap_setfilter` does on
//!   Linux: calling `pcap_compile` would link libpcap's filter compiler
//!   (gencode, grammar, scanner, optimizer: about 150 KB of the static
//!   router binary) for one fixed expression. Frames queued in the ring
//!   before the filter was attached are filtered here instead (what
//!   libpcap does after `pcap_setfilter` too): `read` ignores frames from
//!   the own MAC, and [`parse_frame`] everything but ARP and IPv4.
//! - Immediate mode (no buffering delay), snaplen 96 (Ethernet + the
//!   longest IPv4 header + UDP ports), a 64 KiB ring, non-blocking.
//! - [`ArrivalCapture::fd`] goes into the poll loop; [`ArrivalCapture::drain`]
//!   reads at most [`MAX_PER_DRAIN`] frames per call so a flood cannot
//!   starve the loop (the fd stays readable and the loop comes back).
//! - Which sources are unknown is the CN's call: `drain` takes an
//!   `is_known(mac)` hook (stations this CN already serves are skipped
//!   cheaply), and reports each other MAC at most once per `interval`
//!   ([`RateLimit`], a small bounded table).
//!
//! Wiring (sketch): `let mut cap = ArrivalCapture::open(mobile_if, own_mac,
//! Duration::from_secs(1))?; poller.register(cap.fd(), TOKEN_CAPTURE, false);`
//! and when readable: `cap.drain(now, |m| cn.serves(m), |a| cn.arrival(a, now))?`.
//! `ArrivalKind::Dhcp` arrivals are also seen by the DHCP server's own
//! socket; the CN may ignore them here.
//!
//! Frames are classified by [`crate::classify`] (pure, fuzzed).

use crate::addr::MacAddr;
pub use crate::classify::{parse_frame, Arrival, ArrivalKind};
use crate::sys::socket::{attach_filter, bpf, BpfInsn};
use core::fmt;
use std::os::fd::{AsRawFd, RawFd};
use std::time::{Duration, Instant};

/// Bytes kept per frame: Ethernet 14 + IPv4 header up to 60 + UDP ports 4,
/// rounded up; ARP needs 42.
pub const SNAPLEN: i32 = 96;
/// Kernel ring size: small, arrivals are few and we drain promptly. In
/// immediate mode libpcap uses a TPACKET_V2 ring of about this many bytes
/// (some 300 frames of snaplen 96), mapped whole into the process: every
/// byte of it counts in tmipd's resident memory (budget 1.5 MiB idle).
pub const BUFFER_SIZE: i32 = 64 * 1024;
/// Frames handled per `drain` call at most.
pub const MAX_PER_DRAIN: usize = 64;
/// Distinct MACs the rate limiter remembers (oldest forgotten first).
pub const RATE_TABLE: usize = 256;

/// Reports each MAC at most once per `interval`; remembers the last
/// [`RATE_TABLE`] MACs (a full table forgets the one seen longest ago).
#[derive(Debug)]
pub struct RateLimit {
    interval: Duration,
    seen: Vec<(MacAddr, Instant)>,
}

impl RateLimit {
    pub fn new(interval: Duration) -> RateLimit {
        RateLimit {
            interval,
            seen: Vec::new(),
        }
    }

    /// True if `mac` should be reported now (and records that it was).
    pub fn allow(&mut self, mac: MacAddr, now: Instant) -> bool {
        if let Some(e) = self.seen.iter_mut().find(|(m, _)| *m == mac) {
            if now.saturating_duration_since(e.1) < self.interval {
                return false;
            }
            e.1 = now;
            return true;
        }
        if self.seen.len() >= RATE_TABLE {
            if let Some(i) = self
                .seen
                .iter()
                .enumerate()
                .min_by_key(|(_, (_, t))| *t)
                .map(|(i, _)| i)
            {
                self.seen.swap_remove(i);
            }
        }
        self.seen.push((mac, now));
        true
    }

    /// Forget `mac` (e.g. the CN just lost the station): its next frame is reported.
    pub fn forget(&mut self, mac: MacAddr) {
        self.seen.retain(|(m, _)| *m != mac);
    }
}

/// The outcome of reading one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Read {
    /// Nothing waiting (the non-blocking read would block).
    Empty,
    /// A frame that reveals no station (see [`parse_frame`]).
    Ignored,
    Arrival(Arrival),
}

/// Errors opening or reading the capture.
#[derive(Debug)]
pub enum CaptureError {
    /// libpcap refused `what` on `ifname`.
    Pcap {
        ifname: String,
        what: &'static str,
        err: pcap::Error,
    },
    /// The interface is not Ethernet.
    NotEthernet(String, i32),
    /// The kernel refused the BPF filter (`SO_ATTACH_FILTER`).
    Filter { ifname: String, err: std::io::Error },
}

impl fmt::Display for CaptureError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CaptureError::Pcap { ifname, what, err } => {
                write!(f, "capture on {ifname}: {what}: {err}")
            }
            CaptureError::NotEthernet(i, dlt) => {
                write!(f, "capture on {i}: link type {dlt} is not Ethernet")
            }
            CaptureError::Filter { ifname, err } => {
                write!(f, "capture on {ifname}: filter (SO_ATTACH_FILTER): {err}")
            }
        }
    }
}

impl std::error::Error for CaptureError {}

/// The live capture on `mobile_if`.
pub struct ArrivalCapture {
    cap: pcap::Capture<pcap::Active>,
    ifname: String,
    own_mac: MacAddr,
    limit: RateLimit,
    frames: u64,
}

/// The BPF filter for an interface whose own MAC is `own`, as an
/// expression (for logs; [`filter_program`] is what is attached).
pub fn filter_for(own: MacAddr) -> String {
    format!("(arp or ip) and not ether src {own}")
}

// Classic BPF opcodes (linux/bpf_common.h) used by the filter.
const BPF_LD_H_ABS: u16 = 0x28; // A = 16 bits at [k]
const BPF_LD_W_ABS: u16 = 0x20; // A = 32 bits at [k]
const BPF_JEQ_K: u16 = 0x15; // pc += (A == k) ? jt : jf
const BPF_RET_K: u16 = 0x06; // accept k bytes (0: drop)

/// The classic BPF program for [`filter_for`]`(own)` on an Ethernet
/// capture with snaplen [`SNAPLEN`]: the instructions
/// `tcpdump -dd -s 96 -y EN10MB '(arp or ip) and not ether src <own>'`
/// prints (libpcap 1.10, optimised). The kernel loads packet bytes in
/// network order into A, so the constants are plain numbers.
pub fn filter_program(own: MacAddr) -> [BpfInsn; 9] {
    let m = own.0;
    let mac_hi = u32::from(u16::from_be_bytes([m[0], m[1]]));
    let mac_lo = u32::from_be_bytes([m[2], m[3], m[4], m[5]]);
    [
        bpf(BPF_LD_H_ABS, 0, 0, 12),          // 0: EtherType
        bpf(BPF_JEQ_K, 1, 0, 0x0806),         // 1: ARP -> 3
        bpf(BPF_JEQ_K, 0, 5, 0x0800),         // 2: not IPv4 -> 8 (drop)
        bpf(BPF_LD_W_ABS, 0, 0, 8),           // 3: source MAC bytes 2..6
        bpf(BPF_JEQ_K, 0, 2, mac_lo),         // 4: differ -> 7 (accept)
        bpf(BPF_LD_H_ABS, 0, 0, 6),           // 5: source MAC bytes 0..2
        bpf(BPF_JEQ_K, 1, 0, mac_hi),         // 6: own MAC -> 8 (drop)
        bpf(BPF_RET_K, 0, 0, SNAPLEN as u32), // 7: accept, snaplen bytes
        bpf(BPF_RET_K, 0, 0, 0),              // 8: drop
    ]
}

impl ArrivalCapture {
    /// Open `ifname` (in the caller's network namespace), excluding frames
    /// from `own_mac`, reporting each MAC at most once per `interval`.
    pub fn open(
        ifname: &str,
        own_mac: MacAddr,
        interval: Duration,
    ) -> Result<ArrivalCapture, CaptureError> {
        let err = |what: &'static str| {
            let ifname = ifname.to_string();
            move |err| CaptureError::Pcap { ifname, what, err }
        };
        let cap = pcap::Capture::from_device(ifname)
            .map_err(err("device"))?
            .immediate_mode(true)
            .snaplen(SNAPLEN)
            .buffer_size(BUFFER_SIZE)
            // A moved station still sends to its old gateway's MAC.
            .promisc(true)
            .open()
            .map_err(err("open"))?;
        let dlt = cap.get_datalink();
        if dlt != pcap::Linktype::ETHERNET {
            return Err(CaptureError::NotEthernet(ifname.to_string(), dlt.0));
        }
        let cap = cap.setnonblock().map_err(err("non-blocking"))?;
        attach_filter(cap.as_raw_fd(), &filter_program(own_mac)).map_err(|err| {
            CaptureError::Filter {
                ifname: ifname.to_string(),
                err,
            }
        })?;
        // Belt and braces with the filter; not every platform supports it.
        if let Err(e) = cap.direction(pcap::Direction::In) {
            log::debug!(target: "capture", "{ifname}: inbound-only capture unsupported: {e}");
        }
        log::info!(target: "capture", "capturing arrivals on {ifname} ({})", filter_for(own_mac));
        Ok(ArrivalCapture {
            cap,
            ifname: ifname.to_string(),
            own_mac,
            limit: RateLimit::new(interval),
            frames: 0,
        })
    }

    /// The descriptor to poll for reading.
    pub fn fd(&self) -> RawFd {
        self.cap.as_raw_fd()
    }

    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Frames read since opening (for status output).
    pub fn frames(&self) -> u64 {
        self.frames
    }

    /// The rate limiter, e.g. to `forget` a station that left.
    pub fn rate_limit(&mut self) -> &mut RateLimit {
        &mut self.limit
    }

    /// Read one frame without `is_known` or rate filtering (never blocks).
    pub fn read(&mut self) -> Result<Read, CaptureError> {
        match self.cap.next_packet() {
            Ok(p) => {
                self.frames += 1;
                // Frames queued before the kernel filter was attached
                // still come from the own MAC sometimes.
                Ok(match parse_frame(p.data) {
                    Some(a) if a.mac != self.own_mac => Read::Arrival(a),
                    _ => Read::Ignored,
                })
            }
            // Non-blocking mode: pcap_next_ex returned 0, nothing waiting.
            Err(pcap::Error::TimeoutExpired) | Err(pcap::Error::NoMorePackets) => Ok(Read::Empty),
            Err(err) => Err(CaptureError::Pcap {
                ifname: self.ifname.clone(),
                what: "read",
                err,
            }),
        }
    }

    /// `mac` left this CN: report its next frame here at once, even within
    /// the rate-limit interval of the frame that revealed its last visit.
    pub fn forget(&mut self, mac: MacAddr) {
        self.limit.forget(mac);
    }

    /// Handle what is waiting (at most [`MAX_PER_DRAIN`] frames): each
    /// arrival from a MAC that `is_known` rejects and the rate limit allows
    /// goes to `on_arrival`. Returns the number of frames read.
    pub fn drain(
        &mut self,
        now: Instant,
        is_known: impl Fn(&MacAddr) -> bool,
        mut on_arrival: impl FnMut(Arrival),
    ) -> Result<usize, CaptureError> {
        let mut n = 0;
        while n < MAX_PER_DRAIN {
            let a = match self.read()? {
                Read::Empty => break,
                Read::Ignored => {
                    n += 1;
                    continue;
                }
                Read::Arrival(a) => a,
            };
            n += 1;
            if is_known(&a.mac) || !self.limit.allow(a.mac, now) {
                continue;
            }
            log::debug!(target: "capture", "{}: arrival of {a}", self.ifname);
            on_arrival(a);
        }
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::classify::test_frames::*;

    #[test]
    fn rate_limit_per_mac_and_bounded() {
        let t0 = Instant::now();
        let mut r = RateLimit::new(Duration::from_secs(1));
        assert!(r.allow(STA, t0));
        assert!(!r.allow(STA, t0 + Duration::from_millis(500)));
        let other = MacAddr([2, 0, 0, 0, 0, 2]);
        assert!(r.allow(other, t0 + Duration::from_millis(500)));
        assert!(r.allow(STA, t0 + Duration::from_millis(1000)));
        r.forget(STA);
        assert!(r.allow(STA, t0 + Duration::from_millis(1001)));
        for i in 0..(RATE_TABLE as u32 + 10) {
            let b = i.to_be_bytes();
            r.allow(
                MacAddr([2, 1, b[0], b[1], b[2], b[3]]),
                t0 + Duration::from_secs(2),
            );
        }
        assert!(r.seen.len() <= RATE_TABLE);
    }

    /// `tcpdump -dd -s 96 -y EN10MB '(arp or ip) and not ether src MAC'`
    /// (tcpdump 4.99.3, libpcap 1.10.3), as `(code, jt, jf, k)`.
    const TCPDUMP_02_00_00_00_00_01: [(u16, u8, u8, u32); 9] = [
        (0x28, 0, 0, 0x0000000c),
        (0x15, 1, 0, 0x00000806),
        (0x15, 0, 5, 0x00000800),
        (0x20, 0, 0, 0x00000008),
        (0x15, 0, 2, 0x00000001),
        (0x28, 0, 0, 0x00000006),
        (0x15, 1, 0, 0x00000200),
        (0x6, 0, 0, 0x00000060),
        (0x6, 0, 0, 0x00000000),
    ];
    const TCPDUMP_FE_DC_BA_98_76_54: [(u16, u8, u8, u32); 9] = [
        (0x28, 0, 0, 0x0000000c),
        (0x15, 1, 0, 0x00000806),
        (0x15, 0, 5, 0x00000800),
        (0x20, 0, 0, 0x00000008),
        (0x15, 0, 2, 0xba987654),
        (0x28, 0, 0, 0x00000006),
        (0x15, 1, 0, 0x0000fedc),
        (0x6, 0, 0, 0x00000060),
        (0x6, 0, 0, 0x00000000),
    ];

    fn tuples(p: &[BpfInsn]) -> Vec<(u16, u8, u8, u32)> {
        p.iter().map(|i| (i.code, i.jt, i.jf, i.k)).collect()
    }

    #[test]
    fn filter_program_is_what_libpcap_compiles() {
        assert_eq!(
            tuples(&filter_program(MacAddr([2, 0, 0, 0, 0, 1]))),
            TCPDUMP_02_00_00_00_00_01
        );
        assert_eq!(
            tuples(&filter_program(MacAddr([
                0xfe, 0xdc, 0xba, 0x98, 0x76, 0x54
            ]))),
            TCPDUMP_FE_DC_BA_98_76_54
        );
    }

    /// The kernel's classic BPF semantics for the opcodes the filter uses:
    /// returns the number of bytes accepted (0: dropped). A load past the
    /// end of the frame drops it, as in the kernel.
    fn run_bpf(prog: &[BpfInsn], frame: &[u8]) -> u32 {
        let mut a: u32 = 0;
        let mut pc = 0;
        loop {
            let i = prog[pc];
            let k = i.k as usize;
            pc += 1;
            match i.code {
                BPF_LD_H_ABS => match frame.get(k..k + 2) {
                    Some(b) => a = u32::from(u16::from_be_bytes([b[0], b[1]])),
                    None => return 0,
                },
                BPF_LD_W_ABS => match frame.get(k..k + 4) {
                    Some(b) => a = u32::from_be_bytes([b[0], b[1], b[2], b[3]]),
                    None => return 0,
                },
                BPF_JEQ_K => pc += usize::from(if a == i.k { i.jt } else { i.jf }),
                BPF_RET_K => return i.k,
                c => panic!("opcode {c:#x} not expected in the filter"),
            }
        }
    }

    #[test]
    fn filter_program_passes_arp_and_ip_not_own_frames() {
        let own = MacAddr([0x02, 0x5a, 0, 0, 0, 0x99]);
        let prog = filter_program(own);
        let arp = arp_request(STA, [10, 0, 0, 1]);
        let ip = ipv4([10, 0, 0, 1], 6, 1, 2);
        assert_eq!(run_bpf(&prog, &eth(STA, 0x0806, &arp)), SNAPLEN as u32);
        assert_eq!(run_bpf(&prog, &eth(STA, 0x0800, &ip)), SNAPLEN as u32);
        assert_eq!(run_bpf(&prog, &eth(own, 0x0806, &arp)), 0);
        assert_eq!(run_bpf(&prog, &eth(own, 0x0800, &ip)), 0);
        assert_eq!(run_bpf(&prog, &eth(STA, 0x86dd, &[0; 40])), 0);
        // Differs from the own MAC in the first two bytes only, or the last four only.
        let hi = MacAddr([0x02, 0x5b, 0, 0, 0, 0x99]);
        let lo = MacAddr([0x02, 0x5a, 0, 0, 0, 0x98]);
        assert_eq!(run_bpf(&prog, &eth(hi, 0x0800, &ip)), SNAPLEN as u32);
        assert_eq!(run_bpf(&prog, &eth(lo, 0x0800, &ip)), SNAPLEN as u32);
        // Runt frames are dropped, never read out of bounds.
        assert_eq!(run_bpf(&prog, &eth(STA, 0x0800, &ip)[..13]), 0);
    }

    #[test]
    fn filter_names_own_mac() {
        assert_eq!(
            filter_for(STA),
            format!("(arp or ip) and not ether src {STA}")
        );
    }
}
