//! The Internet checksum (RFC 1071) and the IPv4 pseudo-header sum that UDP
//! and TCP add to it.

use std::net::Ipv4Addr;

/// Ones'-complement sum of `data` as big-endian 16-bit words (an odd final
/// byte is padded with zero), folded to 16 bits. Not yet complemented.
pub fn data(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut chunks = data.chunks_exact(2);
    for c in &mut chunks {
        sum += u32::from(u16::from_be_bytes([c[0], c[1]]));
    }
    if let [last] = chunks.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    fold(sum)
}

/// Ones'-complement sum of partial sums.
pub fn combine(parts: &[u16]) -> u16 {
    fold(parts.iter().map(|&p| u32::from(p)).sum())
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

fn fold(mut sum: u32) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
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
