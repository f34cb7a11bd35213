//! The fast checksum paths (SSE2 on x86-64: vector lanes beside integer carry chains, the fused
//! copy + sum) against a plain scalar RFC 1071 sum, on random lengths 0..=70000, random start
//! offsets (alignment), and data that stresses the lanes: random bytes, all 0xff, all zero, the
//! bias edges 0x7fff / 0x8000, and sparse mixtures.

use offload::checksum::{self, Checksum, copy_and_sum};

/// RFC 1071 §4.1, literally: 16-bit big-endian words into a 32-bit accumulator, the carries
/// folded back after every word (an odd last byte is padded with zero).
fn rfc1071(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for w in &mut words {
        sum += u32::from(u16::from_be_bytes([w[0], w[1]]));
        sum = (sum & 0xffff) + (sum >> 16);
    }
    if let [b] = words.remainder() {
        sum += u32::from(*b) << 8;
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// xorshift64*: deterministic, so a failure names its case.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const MAX_LEN: usize = 70_000;

fn fill(rng: &mut Rng, buf: &mut [u8], kind: usize) {
    match kind {
        0 => buf.iter_mut().for_each(|b| *b = rng.next() as u8),
        1 => buf.fill(0xff),
        2 => buf.fill(0),
        // Words at the bias edges: 0x7fff and 0x8000 (and their byte swaps) in runs.
        3 => {
            for (i, w) in buf.chunks_mut(2).enumerate() {
                let v: u16 = if (i / 7) % 2 == 0 { 0x7fff } else { 0x8000 };
                for (b, v) in w.iter_mut().zip(v.to_be_bytes()) {
                    *b = v;
                }
            }
        }
        // Mostly 0xff with a few random bytes.
        _ => {
            buf.fill(0xff);
            for _ in 0..buf.len() / 64 + 1 {
                if buf.is_empty() {
                    break;
                }
                let at = rng.below(buf.len());
                buf[at] = rng.next() as u8;
            }
        }
    }
}

/// A random length with the interesting ones over-represented: short, around the 64-byte block,
/// at 1500, 9000 and 64 KiB, and anything up to 70000.
fn length(rng: &mut Rng) -> usize {
    match rng.below(6) {
        0 => rng.below(200),
        1 => (64 * rng.below(40) + rng.below(3)).saturating_sub(1),
        2 => 1400 + rng.below(200),
        3 => 8900 + rng.below(200),
        4 => 65_436 + rng.below(200),
        _ => rng.below(MAX_LEN + 1),
    }
}

#[test]
fn sum_matches_rfc1071_on_random_lengths_offsets_and_data() {
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let mut buf = vec![0u8; MAX_LEN + 64];
    for case in 0..1500 {
        let (len, off, kind) = (length(&mut rng), rng.below(64), rng.below(5));
        fill(&mut rng, &mut buf, kind);
        let d = &buf[off..off + len];
        let want = rfc1071(d);
        assert_eq!(
            checksum::sum_be(d),
            want,
            "case {case}: len {len} off {off} kind {kind}"
        );
        assert_eq!(checksum::checksum(d), !want, "case {case}");
        // Cut in two at a random point (odd cuts swap the second piece's bytes).
        let cut = rng.below(len + 1);
        let mut c = Checksum::new();
        c.add_bytes(&d[..cut]);
        c.add_bytes(&d[cut..]);
        assert_eq!(c.fold(), want, "case {case}: cut {cut}");
    }
}

#[test]
fn copy_and_sum_matches_rfc1071_and_copies_exactly() {
    let mut rng = Rng(0xd1b5_4a32_d192_ed03);
    let mut src = vec![0u8; MAX_LEN + 64];
    let mut dst = vec![0u8; MAX_LEN + 128];
    for case in 0..800 {
        let (len, so, to, kind) = (length(&mut rng), rng.below(64), rng.below(64), rng.below(5));
        fill(&mut rng, &mut src, kind);
        dst.fill(0x5a);
        let s = &src[so..so + len];
        let c = copy_and_sum(&mut dst[to..to + len], s);
        assert_eq!(
            c.fold(),
            rfc1071(s),
            "case {case}: len {len} {so}/{to} {kind}"
        );
        assert_eq!(&dst[to..to + len], s, "case {case}");
        // Nothing written outside the destination.
        assert!(dst[..to].iter().all(|&b| b == 0x5a), "case {case}");
        assert!(dst[to + len..].iter().all(|&b| b == 0x5a), "case {case}");
        // It composes as a Checksum of the same bytes: an odd length leaves the next byte low.
        let mut a = c;
        a.add_bytes(&[0x12, 0x34, 0x56]);
        let mut whole = s.to_vec();
        whole.extend_from_slice(&[0x12, 0x34, 0x56]);
        assert_eq!(a.fold(), rfc1071(&whole), "case {case}");
    }
}

#[test]
fn all_ones_past_the_lane_drain() {
    // More than 4096 blocks of 64 bytes: the vector lanes are drained mid-buffer.
    for len in [4096 * 64 - 1, 4096 * 64, 4096 * 64 + 63, 3 * 4096 * 64 + 17] {
        let ff = vec![0xffu8; len];
        assert_eq!(checksum::sum_be(&ff), rfc1071(&ff), "len {len}");
        let mut out = vec![0u8; len];
        assert_eq!(
            copy_and_sum(&mut out, &ff).fold(),
            rfc1071(&ff),
            "len {len}"
        );
        assert_eq!(out, ff);
    }
}
