//! Receive-side scaling: the Toeplitz hash over the NetAdapterCx protocol types, table-driven,
//! and the indirection-table lookup.
//!
//! The hash input is source address, destination address, then source and destination ports
//! (network order), as in Microsoft's "RSS Hashing Functions"; the tests check the published
//! verification vectors.

use netring::{HashProtocolType as P, NetPacketHash};

use crate::{L3, L4, Layout};

/// RSS key length (bytes).
pub const KEY_LEN: usize = 40;
/// Longest hash input: two IPv6 addresses and two ports.
pub const MAX_INPUT: usize = 36;

/// A Toeplitz hash with a fixed key, precomputed as one 256-entry table per input byte, so a
/// hash costs one lookup and XOR per input byte.
///
/// It is 36 KiB: create it where the adapter state lives (heap), not on a kernel stack —
/// every all-zero bit pattern is a valid (empty) table.
#[derive(Clone)]
pub struct Toeplitz {
    table: [[u32; 256]; MAX_INPUT],
}

impl core::fmt::Debug for Toeplitz {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.write_str("Toeplitz { .. }")
    }
}

/// The 32 key bits starting at bit `p` (MSB-first bit string).
fn window(key: &[u8; KEY_LEN], p: usize) -> u32 {
    let byte = p / 8;
    let mut w = 0u64;
    for k in 0..5 {
        w = (w << 8) | u64::from(key.get(byte.saturating_add(k)).copied().unwrap_or(0));
    }
    // p % 8 < 8: the shift is 1 to 8.
    (w >> 8u32.wrapping_sub((p % 8) as u32)) as u32
}

/// A table row's entry for byte `b`: every byte value has one (256 entries), so the `get` never
/// fails and the optimiser drops its check.
#[inline]
fn entry(row: &[u32; 256], b: u8) -> u32 {
    row.get(usize::from(b)).copied().unwrap_or(0)
}

impl Toeplitz {
    /// An empty table (hashes everything to 0 until [`set_key`](Self::set_key)).
    pub const EMPTY: Self = Self {
        table: [[0; 256]; MAX_INPUT],
    };

    /// Builds the tables for `key`.
    pub fn set_key(&mut self, key: &[u8; KEY_LEN]) {
        for (i, row) in self.table.iter_mut().enumerate() {
            // i < MAX_INPUT and j < 8: no overflow.
            let w: [u32; 8] =
                core::array::from_fn(|j| window(key, i.wrapping_mul(8).wrapping_add(j)));
            for (v, slot) in row.iter_mut().enumerate() {
                let mut h = 0;
                for (j, wj) in w.iter().enumerate() {
                    if v & (0x80 >> j) != 0 {
                        h ^= wj;
                    }
                }
                *slot = h;
            }
        }
    }

    /// Hash of `input` (at most [`MAX_INPUT`] bytes are used). The four lengths RSS uses
    /// (IPv4 2- and 4-tuple, IPv6 2- and 4-tuple) take an unrolled path.
    #[inline]
    pub fn hash(&self, input: &[u8]) -> u32 {
        match input.len() {
            8 => input.first_chunk::<8>().map_or(0, |a| self.hash_n(a)),
            12 => input.first_chunk::<12>().map_or(0, |a| self.hash_n(a)),
            32 => input.first_chunk::<32>().map_or(0, |a| self.hash_n(a)),
            36 => input.first_chunk::<36>().map_or(0, |a| self.hash_n(a)),
            _ => self
                .table
                .iter()
                .zip(input)
                .fold(0, |h, (row, &b)| h ^ entry(row, b)),
        }
    }

    /// Hash of exactly `N` (≤ [`MAX_INPUT`]) bytes: the loop unrolls, and four independent XOR
    /// chains let the table loads overlap.
    #[inline]
    pub fn hash_n<const N: usize>(&self, input: &[u8; N]) -> u32 {
        let mut h = [0u32; 4];
        for (i, (row, &b)) in self.table.iter().zip(input).enumerate() {
            if let Some(x) = h.get_mut(i % 4) {
                *x ^= entry(row, b);
            }
        }
        h[0] ^ h[1] ^ h[2] ^ h[3]
    }
}

/// The Toeplitz hash computed bit by bit from the definition (the reference for the table).
pub fn toeplitz_bitwise(key: &[u8; KEY_LEN], input: &[u8]) -> u32 {
    let mut h = 0;
    for (i, &b) in input.iter().take(MAX_INPUT).enumerate() {
        for j in 0..8 {
            if b & (0x80 >> j) != 0 {
                // i < MAX_INPUT and j < 8.
                h ^= window(key, i.wrapping_mul(8).wrapping_add(j));
            }
        }
    }
    h
}

/// Hashes a received frame over the enabled protocol types (the IP family must be enabled; the
/// ports are included when TCP or UDP is enabled too); `None` when no enabled type applies.
///
/// `l` is the frame's layout from [`Layout::parse`], so the IP header it names is whole: the
/// addresses are read at their fixed offsets in it (IPv4 12..20, IPv6 8..40), each range still
/// bounds-checked, and hashed straight from the frame.
pub fn hash_frame(t: &Toeplitz, frame: &[u8], l: &Layout, enabled: P) -> Option<NetPacketHash> {
    let l3 = l.l3_offset();
    let (v4, mut ty) = match l.l3? {
        L3::Ipv4 { options } => {
            if options && !enabled.contains(P::IPV4_OPTIONS) {
                return None;
            }
            (
                true,
                P::IPV4 | if options { P::IPV4_OPTIONS } else { P::empty() },
            )
        }
        L3::Ipv6 { extensions } => {
            if extensions && !enabled.contains(P::IPV6_EXTENSIONS) {
                return None;
            }
            (
                false,
                P::IPV6
                    | if extensions {
                        P::IPV6_EXTENSIONS
                    } else {
                        P::empty()
                    },
            )
        }
    };
    if !enabled.contains(if v4 { P::IPV4 } else { P::IPV6 }) {
        return None;
    }
    let l4_type = match l.l4 {
        L4::Tcp if !l.fragmented => P::TCP,
        L4::Udp if !l.fragmented => P::UDP,
        _ => P::empty(),
    };
    let ports = if !l4_type.is_empty() && enabled.contains(l4_type) {
        ty |= l4_type;
        let at = l.l4_offset();
        Some(frame.get(at..at.checked_add(4)?)?.first_chunk::<4>()?)
    } else {
        None
    };
    let h = if v4 {
        let addrs = frame.get(l3.checked_add(12)?..)?.first_chunk::<8>()?;
        match ports {
            Some(p) => {
                let mut input = [0u8; 12];
                let (a, b) = input.split_at_mut(8);
                a.copy_from_slice(addrs);
                b.copy_from_slice(p);
                t.hash_n(&input)
            }
            None => t.hash_n(addrs),
        }
    } else {
        let addrs = frame.get(l3.checked_add(8)?..)?.first_chunk::<32>()?;
        match ports {
            Some(p) => {
                let mut input = [0u8; 36];
                let (a, b) = input.split_at_mut(32);
                a.copy_from_slice(addrs);
                b.copy_from_slice(p);
                t.hash_n(&input)
            }
            None => t.hash_n(addrs),
        }
    };
    Some(NetPacketHash::new(h, ty))
}

/// The receive queue for `hash` from an indirection table whose length is a power of two
/// (`None` for an empty or non-power-of-two table).
pub fn indirection(table: &[u16], hash: u32) -> Option<u16> {
    let n = table.len();
    if n == 0 || !n.is_power_of_two() {
        return None;
    }
    // n > 0 (checked above).
    table.get(hash as usize & n.wrapping_sub(1)).copied()
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];

    fn table() -> alloc::boxed::Box<Toeplitz> {
        let mut t = alloc::boxed::Box::new(Toeplitz::EMPTY);
        t.set_key(&KEY);
        t
    }

    /// Microsoft's "Verifying the RSS Hash Calculation": IPv4 (source, destination, ports) →
    /// (IPv4 hash, IPv4+TCP hash).
    /// (source, source port, destination, destination port, 2-tuple hash, 4-tuple hash).
    type Vector = ([u8; 4], u16, [u8; 4], u16, u32, u32);

    const V4: [Vector; 5] = [
        (
            [66, 9, 149, 187],
            2794,
            [161, 142, 100, 80],
            1766,
            0x323e8fc2,
            0x51ccc178,
        ),
        (
            [199, 92, 111, 2],
            14230,
            [65, 69, 140, 83],
            4739,
            0xd718262a,
            0xc626b0ea,
        ),
        (
            [24, 19, 198, 95],
            12898,
            [12, 22, 207, 184],
            38024,
            0xd2d0a5de,
            0x5c2b394a,
        ),
        (
            [38, 27, 205, 30],
            48228,
            [209, 142, 163, 6],
            2217,
            0x82989176,
            0xafc7327f,
        ),
        (
            [153, 39, 163, 191],
            44251,
            [202, 188, 127, 2],
            1303,
            0x5d1809c5,
            0x10e828a2,
        ),
    ];

    fn v6(s: &str) -> [u8; 16] {
        s.parse::<std::net::Ipv6Addr>().unwrap().octets()
    }

    #[test]
    fn microsoft_ipv4_vectors() {
        let t = table();
        for (src, sp, dst, dp, h2, h4) in V4 {
            let mut input = [0u8; 12];
            input[..4].copy_from_slice(&src);
            input[4..8].copy_from_slice(&dst);
            input[8..10].copy_from_slice(&sp.to_be_bytes());
            input[10..12].copy_from_slice(&dp.to_be_bytes());
            assert_eq!(t.hash(&input[..8]), h2);
            assert_eq!(t.hash(&input), h4);
            assert_eq!(toeplitz_bitwise(&KEY, &input), h4);
        }
    }

    #[test]
    fn microsoft_ipv6_vectors() {
        let t = table();
        let cases = [
            (
                "3ffe:2501:200:1fff::7",
                2794,
                "3ffe:2501:200:3::1",
                1766,
                0x2cc18cd5,
                0x40207d3d,
            ),
            (
                "3ffe:501:8::260:97ff:fe40:efab",
                14230,
                "ff02::1",
                4739,
                0x0f0c461c,
                0xdde51bbf,
            ),
            (
                "3ffe:1900:4545:3:200:f8ff:fe21:67cf",
                44251,
                "fe80::200:f8ff:fe21:67cf",
                38024,
                0x4b61e985,
                0x02d1feef,
            ),
        ];
        for (src, sp, dst, dp, h2, h4) in cases {
            let mut input = [0u8; 36];
            input[..16].copy_from_slice(&v6(src));
            input[16..32].copy_from_slice(&v6(dst));
            input[32..34].copy_from_slice(&(sp as u16).to_be_bytes());
            input[34..36].copy_from_slice(&(dp as u16).to_be_bytes());
            assert_eq!(t.hash(&input[..32]), h2, "{src}");
            assert_eq!(t.hash(&input), h4, "{src}");
        }
    }

    #[test]
    fn indirection_lookup() {
        let table = [0u16, 1, 2, 3];
        assert_eq!(indirection(&table, 0x51ccc178), Some(0));
        assert_eq!(indirection(&table, 7), Some(3));
        assert_eq!(indirection(&[0, 1, 2], 7), None);
        assert_eq!(indirection(&[], 7), None);
    }
}
