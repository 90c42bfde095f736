//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header sum that UDP
//! and TCP add to it.

use std::net::Ipv4Addr;

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd final
/// byte is padded with zero), folded to 16 bits. Not yet complemented.
pub fn data(data: &[u8]) -> u16 {
    fold(accumulate(data, 0))
}

/// Add `data`'s 16-bit words to the running sum `acc`, unfolded. It reads
/// eight bytes a step (two 32-bit halves sum to the same ones'-complement
/// result as their 16-bit words): the userspace tunnel checksums every
/// segment it cuts from a 64 KB offload packet with it.
pub fn accumulate(data: &[u8], mut acc: u64) -> u64 {
    let mut chunks = data.chunks_exact(8);
    for c in &mut chunks {
        let w = u64::from_be_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]);
        acc += w >> 32;
        acc += w & 0xffff_ffff;
    }
    let mut rest = chunks.remainder().chunks_exact(2);
    for c in &mut rest {
        acc += u64::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = rest.remainder() {
        acc += u64::from(*last) << 8;
    }
    acc
}

/// Fold a running sum to 16 bits (not complemented).
pub fn fold(mut acc: u64) -> u16 {
    while acc > 0xffff {
        acc = (acc & 0xffff) + (acc >> 16);
    }
    acc as u16
}

pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u64::from(p)).sum())
}

/// The sum of the IPv4 pseudo header for an upper-layer packet of `length`
/// bytes carried as `protocol`.
pub fn pseudo_header(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, length: u16) -> u16 {
    let mut hdr = [0u8; 12];
    hdr[0..4].copy_from_slice(&src.octets());
    hdr[4..8].copy_from_slice(&dst.octets());
    hdr[9] = protocol;
    hdr[10..12].copy_from_slice(&length.to_be_bytes());
    data(&hdr)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc1071_example() {
        // RFC 1071 section 3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            data(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(data(&[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
        assert_eq!(data(&[]), 0);
    }

    #[test]
    fn real_ipv4_header_sums_to_ffff() {
        // Header of a captured ICMP echo request, checksum 4fde included.
        let h = [
            0x45, 0x00, 0x00, 0x54, 0x66, 0xc7, 0x40, 0x00, 0x40, 0x01, 0x4f, 0xde, 0xc0, 0x00,
            0x02, 0x01, 0xc0, 0x00, 0x02, 0x02,
        ];
        assert_eq!(data(&h), 0xffff);
        assert_eq!(combine(&[0xffff, 0x0001]), 0x0001);
    }
}
