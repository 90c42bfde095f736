//! TUN offloads for the userspace backend, as pure functions.
//!
//! With IFF_VNET_HDR and TUNSETOFFLOAD(CSUM|TSO4) the kernel hands the
//! tunnel up to 64 KB TCP "super-packets" (one read instead of ~45) and
//! leaves some checksums unfinished. A kernel ipip peer expects ordinary
//! packets, so before encapsulation we cut super-packets into MSS-sized
//! segments with complete checksums, exactly as the kernel's own GSO would
//! ([`write_segment`]), and finish partial checksums ([`complete_checksum`]).
//!
//! In the other direction, consecutive in-order segments of one TCP flow
//! arriving in one receive batch are merged back into a super-packet
//! ([`Coalescer`], like the kernel's GRO) so the TUN write count drops too.
//!
//! Every packet read from or written to the TUN starts with a 10-byte
//! `virtio_net_hdr` in host byte order.

use super::ipip::checksum;
use crate::wire::checksum::{accumulate, fold};

pub const VNET_HDR_LEN: usize = 10;
pub const VIRTIO_NET_HDR_F_NEEDS_CSUM: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_NONE: u8 = 0;
pub const VIRTIO_NET_HDR_GSO_TCPV4: u8 = 1;
pub const VIRTIO_NET_HDR_GSO_ECN: u8 = 0x80;
/// Largest IPv4 packet, so the largest super-packet.
pub const MAX_SUPER: usize = 65535;

const TCP_FIN: u8 = 0x01;
const TCP_SYN: u8 = 0x02;
const TCP_RST: u8 = 0x04;
const TCP_PSH: u8 = 0x08;
const TCP_ACK: u8 = 0x10;
const TCP_URG: u8 = 0x20;
const TCP_CWR: u8 = 0x80;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct VnetHdr {
    pub flags: u8,
    pub gso_type: u8,
    pub hdr_len: u16,
    pub gso_size: u16,
    pub csum_start: u16,
    pub csum_offset: u16,
}

impl VnetHdr {
    pub fn parse(b: &[u8]) -> Option<VnetHdr> {
        let b: &[u8; VNET_HDR_LEN] = b.get(..VNET_HDR_LEN)?.try_into().ok()?;
        let u = |i: usize| u16::from_ne_bytes([b[i], b[i + 1]]);
        Some(VnetHdr {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u(2),
            gso_size: u(4),
            csum_start: u(6),
            csum_offset: u(8),
        })
    }

    pub fn emit(&self) -> [u8; VNET_HDR_LEN] {
        let mut b = [0u8; VNET_HDR_LEN];
        b[0] = self.flags;
        b[1] = self.gso_type;
        b[2..4].copy_from_slice(&self.hdr_len.to_ne_bytes());
        b[4..6].copy_from_slice(&self.gso_size.to_ne_bytes());
        b[6..8].copy_from_slice(&self.csum_start.to_ne_bytes());
        b[8..10].copy_from_slice(&self.csum_offset.to_ne_bytes());
        b
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OffloadError {
    Malformed(&'static str),
    Unsupported(u8),
}

fn pseudo_sum(ip: &[u8], proto: u8, len: usize) -> u64 {
    accumulate(&ip[12..20], 0) + proto as u64 + len as u64
}

/// Finishes a partial checksum (VIRTIO_NET_HDR_F_NEEDS_CSUM): the field at
/// `start + offset` holds the pseudo-header sum; sum from `start` to the end.
pub fn complete_checksum(pkt: &mut [u8], start: usize, offset: usize) -> Result<(), OffloadError> {
    let at = start + offset;
    if at + 2 > pkt.len() {
        return Err(OffloadError::Malformed("checksum offset beyond the packet"));
    }
    let c = !fold(accumulate(&pkt[start..], 0));
    pkt[at..at + 2].copy_from_slice(&c.to_be_bytes());
    Ok(())
}

/// The pieces of an IPv4/TCP packet the segmenter and coalescer need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Tcp4 {
    pub ihl: usize,
    pub thl: usize,
    pub total: usize,
}

impl Tcp4 {
    pub fn parse(pkt: &[u8]) -> Option<Tcp4> {
        if pkt.len() < 40 || pkt[0] >> 4 != 4 || pkt[9] != 6 {
            return None;
        }
        let ihl = ((pkt[0] & 0x0f) as usize) * 4;
        let total = u16::from_be_bytes([pkt[2], pkt[3]]) as usize;
        if ihl < 20 || total > pkt.len() || total < ihl + 20 {
            return None;
        }
        let thl = ((pkt[ihl + 12] >> 4) as usize) * 4;
        if thl < 20 || ihl + thl > total {
            return None;
        }
        Some(Tcp4 { ihl, thl, total })
    }
    pub fn hdr_len(&self) -> usize {
        self.ihl + self.thl
    }
    pub fn payload_len(&self) -> usize {
        self.total - self.hdr_len()
    }
}

/// How many segments a TCPv4 super-packet of this shape makes.
pub fn segment_count(t: &Tcp4, mss: usize) -> usize {
    if mss == 0 {
        return 0;
    }
    t.payload_len().div_ceil(mss).max(1)
}

/// Writes segment `i` of TCPv4 super-packet `pkt` (segment payload `mss`)
/// into `out` as a complete packet (IP length, id, checksums; sequence
/// number advanced; FIN/PSH only on the last, CWR only on the first) —
/// what the kernel's tcp4 GSO produces. Returns its length.
pub fn write_segment(
    pkt: &[u8],
    t: &Tcp4,
    mss: usize,
    i: usize,
    out: &mut [u8],
) -> Result<usize, OffloadError> {
    let n = segment_count(t, mss);
    if i >= n {
        return Err(OffloadError::Malformed("segment index"));
    }
    let hl = t.hdr_len();
    let start = hl + i * mss;
    let end = (start + mss).min(t.total);
    let seg_len = hl + (end - start);
    if out.len() < seg_len {
        return Err(OffloadError::Malformed("segment buffer too small"));
    }
    out[..hl].copy_from_slice(&pkt[..hl]);
    out[hl..seg_len].copy_from_slice(&pkt[start..end]);
    // IPv4: length, id + i, checksum
    out[2..4].copy_from_slice(&(seg_len as u16).to_be_bytes());
    let id = u16::from_be_bytes([pkt[4], pkt[5]]).wrapping_add(i as u16);
    out[4..6].copy_from_slice(&id.to_be_bytes());
    out[10..12].copy_from_slice(&[0, 0]);
    let c = checksum(&out[..t.ihl]);
    out[10..12].copy_from_slice(&c.to_be_bytes());
    // TCP: sequence, flags, checksum
    let th = t.ihl;
    let seq = u32::from_be_bytes([pkt[th + 4], pkt[th + 5], pkt[th + 6], pkt[th + 7]])
        .wrapping_add((i * mss) as u32);
    out[th + 4..th + 8].copy_from_slice(&seq.to_be_bytes());
    if i + 1 < n {
        out[th + 13] &= !(TCP_FIN | TCP_PSH);
    }
    if i > 0 {
        out[th + 13] &= !TCP_CWR;
    }
    out[th + 16..th + 18].copy_from_slice(&[0, 0]);
    let tcp_len = seg_len - th;
    let c = !fold(accumulate(&out[th..seg_len], pseudo_sum(out, 6, tcp_len)));
    out[th + 16..th + 18].copy_from_slice(&c.to_be_bytes());
    Ok(seg_len)
}

/// Merges consecutive segments of one TCP flow into a super-packet for a
/// single TUN write (with its virtio header in front).
pub struct Coalescer {
    buf: Vec<u8>,
    /// Bytes used in `buf` (virtio header + packet); 0 when empty.
    len: usize,
    /// Which TUN the pending packet is for.
    pub owner: usize,
    mss: usize,
    segments: usize,
    hdr: Tcp4,
    next_seq: u32,
    closed: bool,
}

impl Default for Coalescer {
    fn default() -> Self {
        Coalescer {
            buf: vec![0; VNET_HDR_LEN + MAX_SUPER],
            ..Coalescer::default_small()
        }
    }
}

fn tcp_seq(pkt: &[u8], th: usize) -> u32 {
    u32::from_be_bytes([pkt[th + 4], pkt[th + 5], pkt[th + 6], pkt[th + 7]])
}

/// A segment we can merge: plain IPv4 (no fragmentation), TCP with ACK and
/// at most PSH besides, some payload.
fn mergeable(pkt: &[u8], t: &Tcp4) -> bool {
    let frag = u16::from_be_bytes([pkt[6], pkt[7]]);
    let flags = pkt[t.ihl + 13];
    frag & 0x3fff == 0
        && flags & (TCP_SYN | TCP_FIN | TCP_RST | TCP_URG | TCP_CWR) == 0
        && flags & TCP_ACK != 0
        && t.payload_len() > 0
}

impl Coalescer {
    /// A coalescer without a buffer, for when offloads are off.
    pub fn empty() -> Coalescer {
        Coalescer {
            buf: Vec::new(),
            ..Coalescer::default_small()
        }
    }

    fn default_small() -> Coalescer {
        Coalescer {
            buf: Vec::new(),
            len: 0,
            owner: 0,
            mss: 0,
            segments: 0,
            hdr: Tcp4 {
                ihl: 0,
                thl: 0,
                total: 0,
            },
            next_seq: 0,
            closed: false,
        }
    }

    /// Segments in the pending packet.
    pub fn segments(&self) -> usize {
        if self.len == 0 {
            0
        } else {
            self.segments
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `pkt` (for TUN `owner`) to the pending super-packet if it
    /// continues it; else returns false and leaves the state unchanged.
    pub fn try_append(&mut self, owner: usize, pkt: &[u8]) -> bool {
        if self.len == 0 || self.closed || owner != self.owner {
            return false;
        }
        let Some(t) = Tcp4::parse(pkt) else {
            return false;
        };
        let p = &self.buf[VNET_HDR_LEN..self.len];
        let (ih, th) = (t.ihl, t.ihl);
        let plen = t.payload_len();
        if t.ihl != self.hdr.ihl
            || t.thl != self.hdr.thl
            || !mergeable(pkt, &t)
            || plen > self.mss
            || self.len - VNET_HDR_LEN + plen > MAX_SUPER
            // same addresses, TOS, TTL, protocol
            || pkt[1] != p[1]
            || pkt[8] != p[8]
            || pkt[12..20] != p[12..20]
            // same ports, next sequence number, same ACK, same options
            || pkt[th..th + 4] != p[th..th + 4]
            || tcp_seq(pkt, th) != self.next_seq
            || pkt[th + 8..th + 12] != p[th + 8..th + 12]
            || pkt[th + 20..ih + t.thl] != p[th + 20..ih + t.thl]
        {
            return false;
        }
        let at = self.len;
        self.buf[at..at + plen].copy_from_slice(&pkt[t.hdr_len()..t.total]);
        self.len += plen;
        self.segments += 1;
        self.next_seq = self.next_seq.wrapping_add(plen as u32);
        let flags = pkt[th + 13];
        if flags & TCP_PSH != 0 {
            self.buf[VNET_HDR_LEN + th + 13] |= TCP_PSH;
            self.closed = true;
        }
        if plen < self.mss {
            self.closed = true; // a short segment ends a burst
        }
        true
    }

    /// Starts a new super-packet with `pkt`; false if `pkt` cannot be merged
    /// (write it on its own).
    pub fn start(&mut self, owner: usize, pkt: &[u8]) -> bool {
        let Some(t) = Tcp4::parse(pkt) else {
            return false;
        };
        if !mergeable(pkt, &t) || pkt[t.ihl + 13] & TCP_PSH != 0 {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + t.total].copy_from_slice(&pkt[..t.total]);
        self.len = VNET_HDR_LEN + t.total;
        self.owner = owner;
        self.mss = t.payload_len();
        self.segments = 1;
        self.hdr = t;
        self.next_seq = tcp_seq(pkt, t.ihl).wrapping_add(self.mss as u32);
        self.closed = false;
        true
    }

    /// Takes a TCP super-packet that arrived already merged (a NIC's GRO
    /// joins IPIP segments before the raw socket sees them): it goes out
    /// as one GSO write, cut by the kernel at `mss`. False if not TCPv4.
    pub fn start_super(&mut self, owner: usize, pkt: &[u8], mss: usize) -> bool {
        let Some(t) = Tcp4::parse(pkt) else {
            return false;
        };
        if mss == 0 {
            return false;
        }
        self.buf[VNET_HDR_LEN..VNET_HDR_LEN + t.total].copy_from_slice(&pkt[..t.total]);
        self.len = VNET_HDR_LEN + t.total;
        self.owner = owner;
        self.mss = mss;
        self.segments = segment_count(&t, mss);
        self.hdr = t;
        self.closed = true;
        true
    }

    /// Whether nothing more can join (flush now).
    pub fn closed(&self) -> bool {
        self.closed
    }

    /// The pending packet, ready for one TUN write (virtio header first),
    /// and resets. A single segment goes out as a plain packet.
    pub fn take(&mut self) -> Option<&[u8]> {
        if self.len == 0 {
            return None;
        }
        let len = std::mem::take(&mut self.len);
        let t = self.hdr;
        let vh = if self.segments == 1 {
            VnetHdr::default()
        } else {
            let p = &mut self.buf[VNET_HDR_LEN..len];
            let total = p.len();
            p[2..4].copy_from_slice(&(total as u16).to_be_bytes());
            p[10..12].copy_from_slice(&[0, 0]);
            let c = checksum(&p[..t.ihl]);
            p[10..12].copy_from_slice(&c.to_be_bytes());
            // Partial checksum: the field holds the pseudo-header sum.
            let ps = fold(pseudo_sum(p, 6, total - t.ihl));
            p[t.ihl + 16..t.ihl + 18].copy_from_slice(&ps.to_be_bytes());
            VnetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
                hdr_len: t.hdr_len() as u16,
                gso_size: self.mss as u16,
                csum_start: t.ihl as u16,
                csum_offset: 16,
            }
        };
        self.buf[..VNET_HDR_LEN].copy_from_slice(&vh.emit());
        Some(&self.buf[..len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An IPv4/TCP packet 10.1.0.2:40000 -> 10.2.0.2:5201, seq `seq`, ACK
    /// (plus `extra` flags), a 12-byte timestamp option, `payload` bytes.
    fn tcp_packet(seq: u32, payload: &[u8], id: u16, extra: u8) -> Vec<u8> {
        let total = 20 + 32 + payload.len();
        let mut p = vec![
            0x45,
            0,
            (total >> 8) as u8,
            total as u8,
            (id >> 8) as u8,
            id as u8,
            0x40,
            0,
            64,
            6,
            0,
            0,
            10,
            1,
            0,
            2,
            10,
            2,
            0,
            2,
        ];
        p.extend_from_slice(&40000u16.to_be_bytes());
        p.extend_from_slice(&5201u16.to_be_bytes());
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&777u32.to_be_bytes());
        p.extend_from_slice(&[0x80, TCP_ACK | extra, 0x01, 0xf5, 0, 0, 0, 0]);
        p.extend_from_slice(&[1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7]); // NOP NOP TS
        p.extend_from_slice(payload);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        let tl = p.len() - 20;
        let c = !fold(accumulate(&p[20..], pseudo_sum(&p, 6, tl)));
        p[36..38].copy_from_slice(&c.to_be_bytes());
        p
    }

    fn valid_checksums(p: &[u8]) -> bool {
        let tl = p.len() - 20;
        checksum(&p[..20]) == 0 && fold(accumulate(&p[20..], pseudo_sum(p, 6, tl))) == 0xffff
    }

    fn payload(n: usize) -> Vec<u8> {
        (0..n).map(|i| (i * 31 + 7) as u8).collect()
    }

    #[test]
    fn tso_super_packet_is_cut_like_kernel_gso() {
        let data = payload(2500);
        let sup = tcp_packet(1000, &data, 50, TCP_PSH);
        let t = Tcp4::parse(&sup).unwrap();
        assert_eq!(segment_count(&t, 1000), 3);
        let mut segs = Vec::new();
        for i in 0..3 {
            let mut out = [0u8; 2048];
            let n = write_segment(&sup, &t, 1000, i, &mut out).unwrap();
            segs.push(out[..n].to_vec());
        }
        for (i, s) in segs.iter().enumerate() {
            assert!(valid_checksums(s), "segment {i}");
            let want = tcp_packet(
                1000 + 1000 * i as u32,
                &data[i * 1000..(i * 1000 + 1000).min(2500)],
                50 + i as u16,
                if i == 2 { TCP_PSH } else { 0 },
            );
            assert_eq!(s, &want, "segment {i} equals a hand-built packet");
        }
        assert!(write_segment(&sup, &t, 1000, 3, &mut [0u8; 2048]).is_err());
        assert!(write_segment(&sup, &t, 1000, 0, &mut [0u8; 100]).is_err());
    }

    #[test]
    fn partial_checksum_is_completed() {
        let mut p = tcp_packet(1, &payload(100), 1, 0);
        let good = p.clone();
        // What the kernel hands over with NEEDS_CSUM: pseudo-header sum in the field.
        let ps = fold(pseudo_sum(&p, 6, p.len() - 20));
        p[36..38].copy_from_slice(&ps.to_be_bytes());
        complete_checksum(&mut p, 20, 16).unwrap();
        assert_eq!(p, good);
        assert!(complete_checksum(&mut p, 20, 200).is_err());
    }

    #[test]
    fn coalesced_segments_resegment_to_the_originals() {
        let data = payload(4 * 1400 + 300);
        let segs: Vec<Vec<u8>> = (0..5)
            .map(|i| {
                let end = ((i + 1) * 1400).min(data.len());
                tcp_packet(
                    5000 + 1400 * i as u32,
                    &data[i * 1400..end],
                    9 + i as u16,
                    0,
                )
            })
            .collect();
        let mut c = Coalescer::default();
        assert!(c.start(3, &segs[0]));
        for s in &segs[1..] {
            assert!(!c.closed());
            assert!(c.try_append(3, s));
        }
        assert!(c.closed(), "the short last segment ends the burst");
        assert_eq!(c.segments(), 5);
        let out = c.take().unwrap().to_vec();
        assert!(c.is_empty());
        let vh = VnetHdr::parse(&out).unwrap();
        assert_eq!(
            vh,
            VnetHdr {
                flags: VIRTIO_NET_HDR_F_NEEDS_CSUM,
                gso_type: VIRTIO_NET_HDR_GSO_TCPV4,
                hdr_len: 52,
                gso_size: 1400,
                csum_start: 20,
                csum_offset: 16
            }
        );
        let sup = &out[VNET_HDR_LEN..];
        assert_eq!(sup.len(), 52 + data.len());
        let t = Tcp4::parse(sup).unwrap();
        for (i, want) in segs.iter().enumerate() {
            let mut o = [0u8; 2048];
            let n = write_segment(sup, &t, 1400, i, &mut o).unwrap();
            assert_eq!(&o[..n], &want[..], "segment {i}");
        }
    }

    #[test]
    fn an_already_merged_super_packet_is_written_for_kernel_segmentation() {
        let data = payload(5000);
        let sup = tcp_packet(42, &data, 3, TCP_PSH);
        let mut c = Coalescer::default();
        assert!(c.start_super(5, &sup, 1428));
        assert!(c.closed());
        assert_eq!(c.segments(), 4);
        let out = c.take().unwrap().to_vec();
        let vh = VnetHdr::parse(&out).unwrap();
        assert_eq!(
            (vh.gso_type, vh.gso_size, vh.hdr_len),
            (VIRTIO_NET_HDR_GSO_TCPV4, 1428, 52)
        );
        let s2 = &out[VNET_HDR_LEN..];
        assert_eq!(&s2[40..], &sup[40..], "payload untouched");
        let t = Tcp4::parse(s2).unwrap();
        let mut o = [0u8; 2048];
        let n = write_segment(s2, &t, 1428, 3, &mut o).unwrap();
        assert!(valid_checksums(&o[..n]));
        assert_eq!(&o[52..n], &data[3 * 1428..]);
        assert!(!c.start_super(5, &sup[..30], 1428));
    }

    #[test]
    fn coalescer_keeps_apart_what_gro_keeps_apart() {
        let a = tcp_packet(100, &payload(1000), 1, 0);
        let mut c = Coalescer::default();
        // a gap in sequence numbers
        assert!(c.start(1, &a));
        assert!(!c.try_append(1, &tcp_packet(2100, &payload(1000), 2, 0)));
        // another TUN
        assert!(!c.try_append(2, &tcp_packet(1100, &payload(1000), 2, 0)));
        // another flow (ports differ)
        let mut other = tcp_packet(1100, &payload(1000), 2, 0);
        other[21] ^= 1;
        assert!(!c.try_append(1, &other));
        // a different ACK number
        let mut ack = tcp_packet(1100, &payload(1000), 2, 0);
        ack[31] ^= 1;
        assert!(!c.try_append(1, &ack));
        // a longer segment than the first
        assert!(!c.try_append(1, &tcp_packet(1100, &payload(1200), 2, 0)));
        // FIN/SYN never merge; PSH joins and closes
        assert!(!c.try_append(1, &tcp_packet(1100, &payload(1000), 2, TCP_FIN)));
        assert!(c.try_append(1, &tcp_packet(1100, &payload(1000), 2, TCP_PSH)));
        assert!(c.closed());
        let out = c.take().unwrap();
        assert_eq!(out[VNET_HDR_LEN + 33] & TCP_PSH, TCP_PSH);
        // a lone segment goes out as a plain packet with a zero header
        assert!(c.start(1, &a));
        let out = c.take().unwrap();
        assert_eq!(&out[..VNET_HDR_LEN], &[0; VNET_HDR_LEN]);
        assert_eq!(&out[VNET_HDR_LEN..], &a[..]);
        // pure ACKs, PSH-first and non-TCP are written on their own
        assert!(!c.start(1, &tcp_packet(1, &[], 1, 0)));
        assert!(!c.start(1, &tcp_packet(1, &payload(10), 1, TCP_PSH)));
        let mut udp = a.clone();
        udp[9] = 17;
        assert!(!c.start(1, &udp));
        // truncated input is refused, never a panic
        for cut in 0..a.len() {
            let _ = c.start(1, &a[..cut]);
            let _ = c.try_append(1, &a[..cut]);
            let _ = c.take();
        }
    }
}
