//! The Internet checksum (RFC 1071): a fast one's-complement sum, incremental update (RFC 1624),
//! and the pseudo-headers of TCP and UDP over IPv4 and IPv6.
//!
//! Sums are kept as *big-endian 16-bit word* sums (the wire's view). The bulk loop adds the data
//! as native little-endian words — a one's-complement sum is byte-order independent up to a final
//! byte swap (RFC 1071 §2(B)) — in SSE2 lanes on x86-64 (the baseline; no AVX in kernel mode)
//! and in 64-bit words elsewhere.

/// A running one's-complement sum over a byte stream that may arrive in pieces of any length.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Checksum {
    /// Sum of big-endian 16-bit words (or of wider big-endian values, which fold the same),
    /// not yet folded.
    acc: u64,
    /// Whether an odd number of bytes has been added (the next byte is a low-order byte).
    odd: bool,
}

impl Checksum {
    /// An empty sum.
    pub const fn new() -> Self {
        Self { acc: 0, odd: false }
    }

    /// Adds a 16-bit word (as read big-endian from the wire). Must be at an even position.
    #[inline]
    pub const fn add_u16(&mut self, word: u16) {
        self.acc = add(self.acc, word as u64);
    }

    /// Adds a 32-bit value (two words: 2^16 ≡ 1 modulo 0xffff, so the value itself folds as
    /// its two halves do).
    #[inline]
    pub const fn add_u32(&mut self, v: u32) {
        self.acc = add(self.acc, v as u64);
    }

    /// Adds bytes, continuing from where the previous piece ended (odd lengths are fine).
    #[inline]
    pub fn add_bytes(&mut self, data: &[u8]) {
        let s = u64::from(sum_be(data));
        // A piece that starts at an odd position contributes with its bytes swapped.
        let s = if self.odd {
            u64::from((s as u16).swap_bytes())
        } else {
            s
        };
        self.acc = add(self.acc, s);
        self.odd ^= data.len() % 2 == 1;
    }

    /// Adds another sum computed over bytes that follow (its start must be at an even position
    /// relative to this sum's start if `self` is even; both are handled).
    pub const fn add_sum(&mut self, other: Checksum) {
        let f = other.fold() as u64;
        let f = if self.odd {
            (f as u16).swap_bytes() as u64
        } else {
            f
        };
        self.acc = add(self.acc, f);
        self.odd ^= other.odd;
    }

    /// The folded 16-bit sum (not complemented).
    #[inline]
    pub const fn fold(self) -> u16 {
        fold(self.acc)
    }

    /// The checksum field value: the complement of the folded sum.
    #[inline]
    pub const fn finish(self) -> u16 {
        !self.fold()
    }
}

/// `a + b` in one's-complement arithmetic on 64 bits: the carry out of bit 63 comes back in at
/// bit 0 (end-around carry). 2^64 ≡ 1 modulo 0xffff, so this is exact for the 16-bit sum
/// however many values are added — where a plain add could overflow — and it cannot wrap: a
/// carry out leaves the sum at most 2^64 − 2.
#[inline]
pub(crate) const fn add(a: u64, b: u64) -> u64 {
    let (s, carry) = a.overflowing_add(b);
    s.wrapping_add(carry as u64)
}

/// Folds a wide one's-complement sum to 16 bits.
#[inline]
pub const fn fold(mut s: u64) -> u16 {
    // Each step adds two halves of a value below 2^64: below 2^33, then 2^32 + 1, … — none
    // wraps.
    s = (s & 0xffff_ffff).wrapping_add(s >> 32);
    s = (s & 0xffff_ffff).wrapping_add(s >> 32);
    s = (s & 0xffff).wrapping_add(s >> 16);
    s = (s & 0xffff).wrapping_add(s >> 16);
    s = (s & 0xffff).wrapping_add(s >> 16);
    s as u16
}

/// The folded one's-complement sum of `data` as big-endian words (odd length: zero padded).
#[inline]
pub fn sum_be(data: &[u8]) -> u16 {
    fold(sum_native(data)).swap_bytes()
}

/// The Internet checksum of `data`: the complement of [`sum_be`].
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    !sum_be(data)
}

/// Copies `src` into `dst` (the first `min` of both lengths) and returns the sum of the copied
/// bytes, in one pass over them: the bytes are summed from the registers they were loaded into
/// for the copy (software segmentation folds its L4 checksum into the payload copy this way).
pub fn copy_and_sum(dst: &mut [u8], src: &[u8]) -> Checksum {
    let n = dst.len().min(src.len());
    let (Some(dst), Some(src)) = (dst.get_mut(..n), src.get(..n)) else {
        return Checksum::new();
    };
    #[cfg(target_arch = "x86_64")]
    if n >= 128 {
        // SAFETY: SSE2 is part of the x86-64 baseline (see `sum_native`).
        let s = unsafe { sse2::copy_sum(dst, src) };
        return Checksum {
            acc: u64::from(fold(s).swap_bytes()),
            odd: n % 2 == 1,
        };
    }
    dst.copy_from_slice(src);
    let mut c = Checksum::new();
    c.add_bytes(src);
    c
}

/// Copies `src` into `dst` (the first `min` of both lengths; in practice under 64 bytes) and
/// returns their unfolded native sum, as [`sum_tail`]: 8-byte words first, then the rest.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn copy_sum_tail(dst: &mut [u8], src: &[u8]) -> u64 {
    let mut s = 0u64;
    let (from, rs) = src.as_chunks::<8>();
    let (to, rt) = dst.as_chunks_mut::<8>();
    for (f, t) in from.iter().zip(to.iter_mut()) {
        *t = *f;
        s = add(s, u64::from_le_bytes(*f));
    }
    for (f, t) in rs.iter().zip(rt.iter_mut()) {
        *t = *f;
    }
    // The copied part only: min of both remainders (equal for equal lengths).
    let n = rs.len().min(rt.len());
    add(s, sum_tail(rs.get(..n).unwrap_or(&[])))
}

/// Unfolded sum of `data` as native (little-endian) 16-bit words.
fn sum_native(data: &[u8]) -> u64 {
    #[cfg(target_arch = "x86_64")]
    if data.len() >= 128 {
        // SAFETY: SSE2 is part of the x86-64 baseline: every x86-64 CPU has it, and the kernel
        // saves XMM state for kernel-mode code.
        return unsafe { sse2::sum(data) };
    }
    sum_words(data)
}

/// Portable bulk sum: 32-bit pieces into four 64-bit accumulators, over blocks of at most
/// [`WORDS_BLOCK`] bytes.
fn sum_words(data: &[u8]) -> u64 {
    if data.len() <= WORDS_BLOCK {
        return sum_words_block(data);
    }
    data.chunks(WORDS_BLOCK)
        .fold(0, |total, block| add(total, sum_words_block(block)))
}

/// Bytes [`sum_words_block`] takes at once: a lane gains less than 2^32 per 16 bytes, so less
/// than 2^48 per block — the plain (vectorisable) adds inside a block cannot wrap.
const WORDS_BLOCK: usize = 1 << 20;

fn sum_words_block(data: &[u8]) -> u64 {
    let mut acc = [0u64; 4];
    let mut chunks = data.chunks_exact(16);
    for c in &mut chunks {
        for (a, w) in acc.iter_mut().zip(c.as_chunks::<4>().0) {
            // Below 2^48 (see WORDS_BLOCK): no wrap.
            *a = a.wrapping_add(u64::from(u32::from_le_bytes(*w)));
        }
    }
    // Four lanes below 2^48 each: no wrap.
    let s = acc.iter().fold(0u64, |s, &a| s.wrapping_add(a));
    add(s, sum_tail(chunks.remainder()))
}

/// Sum of fewer than 16 bytes (or any tail) as little-endian words, odd byte zero-padded: at
/// most one 8-, 4-, 2- and 1-byte piece for a tail under 16 (no loop of words).
#[inline]
fn sum_tail(mut tail: &[u8]) -> u64 {
    let mut s = 0u64;
    while let Some((w, rest)) = tail.split_first_chunk::<8>() {
        let v = u64::from_le_bytes(*w);
        s = add(s, v);
        tail = rest;
    }
    // At most 7 bytes left: summed apart (below 2^33, no wrap), then added in.
    let mut small = 0u64;
    if let Some((w, rest)) = tail.split_first_chunk::<4>() {
        small = u64::from(u32::from_le_bytes(*w));
        tail = rest;
    }
    if let Some((w, rest)) = tail.split_first_chunk::<2>() {
        // Below 2^32 + 2^16.
        small = small.wrapping_add(u64::from(u16::from_le_bytes(*w)));
        tail = rest;
    }
    if let [b] = tail {
        small = small.wrapping_add(u64::from(*b));
    }
    add(s, small)
}

#[cfg(target_arch = "x86_64")]
mod sse2 {
    //! SSE2 (x86-64 baseline) bulk sum, 64 bytes per iteration: 48 bytes in three vector
    //! accumulators and 16 in two 64-bit integer accumulators, so that the vector pipes and the
    //! integer ALUs work side by side.
    //!
    //! Vector part: each 16-bit word w is biased to the signed value w − 0x8000 (an XOR of the
    //! top bit), and `pmaddwd` with ones adds adjacent pairs into signed 32-bit lanes: three
    //! instructions per 16 bytes (XOR, `pmaddwd`, add; `pmaddwd` issues on two of the four vector
    //! pipes of current cores, the others on any). The bias (−0x10000 per pair) is added back
    //! when the lanes are drained, which happens before a lane could overflow.
    //!
    //! Integer part: two independent end-around-carry chains (`add` + `adc 0`, two cycles of
    //! latency each per iteration), 8 bytes each per iteration. A one's-complement sum of 64-bit
    //! words is the sum of their 16-bit words modulo 0xffff (2^16 ≡ 1), so the integer and
    //! vector parts simply add up.

    use core::arch::x86_64::{
        __m128i, _mm_add_epi32, _mm_loadu_si128, _mm_madd_epi16, _mm_set1_epi16, _mm_setzero_si128,
        _mm_storeu_si128, _mm_xor_si128,
    };

    use super::add;

    /// Iterations between drains: each lane gains at most 2^16 in magnitude per iteration (one
    /// pair sum in [−0x10000, 0xfffe]); after 4096 iterations a lane is within ±2^28, and the three
    /// accumulators added together within ±3·2^28, inside i32.
    const DRAIN_EVERY: usize = 4096;

    /// Pair sums taken per iteration by the vector part: three vectors of four 32-bit lanes.
    const PAIRS_PER_ITER: i64 = 12;

    /// The 16 bytes at `AT` of a 64-byte block.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn load<const AT: usize>(block: &[u8; 64]) -> __m128i {
        const { assert!(AT <= 48) };
        // SAFETY: AT <= 48 (checked at compile time): the 16 bytes at AT are inside the block;
        // loadu has no alignment requirement.
        unsafe { _mm_loadu_si128(block.as_ptr().wrapping_add(AT).cast()) }
    }

    /// Stores `v` at `AT` of a 64-byte block.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn store<const AT: usize>(block: &mut [u8; 64], v: __m128i) {
        const { assert!(AT <= 48) };
        // SAFETY: as in `load`: 16 writable bytes inside the block; storeu has no alignment
        // requirement.
        unsafe { _mm_storeu_si128(block.as_mut_ptr().wrapping_add(AT).cast(), v) };
    }

    /// The 8 bytes at `AT` of a 64-byte block as a native (little-endian) word.
    #[inline]
    fn word<const AT: usize>(block: &[u8; 64]) -> u64 {
        const { assert!(AT <= 56) };
        // SAFETY: AT <= 56 (checked at compile time): the 8 bytes at AT are inside the block;
        // read_unaligned has no alignment requirement.
        unsafe {
            block
                .as_ptr()
                .wrapping_add(AT)
                .cast::<u64>()
                .read_unaligned()
        }
    }

    /// `pmaddwd` of the biased words of `x` with ones, added to `acc`.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn step(acc: __m128i, x: __m128i) -> __m128i {
        let bias = _mm_set1_epi16(i16::MIN);
        let ones = _mm_set1_epi16(1);
        _mm_add_epi32(acc, _mm_madd_epi16(_mm_xor_si128(x, bias), ones))
    }

    /// The exact sum of the words the three accumulators took in over `n <= DRAIN_EVERY`
    /// iterations: the lanes' sum (within ±3·2^28 · 4) plus the bias, 0x10000 for each of the
    /// 12 × n pairs (below 2^32): non-negative and below 2^33, computed in i64 without wrapping.
    #[inline]
    #[target_feature(enable = "sse2")]
    fn drain(a: __m128i, b: __m128i, c: __m128i, n: usize) -> u64 {
        let v = _mm_add_epi32(_mm_add_epi32(a, b), c);
        let mut out = [0i32; 4];
        // SAFETY: `out` is 16 writable bytes; storeu has no alignment requirement.
        unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) };
        let lanes = out.iter().fold(0i64, |s, &x| s.wrapping_add(i64::from(x)));
        // n <= 4096: the product is below 2^32.
        let bias = (n as i64).wrapping_mul(PAIRS_PER_ITER * 0x10000);
        lanes.wrapping_add(bias) as u64
    }

    /// Unfolded sum of `data` as native 16-bit words.
    #[target_feature(enable = "sse2")]
    pub(super) fn sum(data: &[u8]) -> u64 {
        let (blocks, tail) = data.as_chunks::<64>();
        let (mut total, mut g, mut h) = (0u64, 0u64, 0u64);
        for run in blocks.chunks(DRAIN_EVERY) {
            let [mut a, mut b, mut c] = [_mm_setzero_si128(); 3];
            for ch in run {
                a = step(a, load::<0>(ch));
                b = step(b, load::<16>(ch));
                c = step(c, load::<32>(ch));
                g = add(g, word::<48>(ch));
                h = add(h, word::<56>(ch));
            }
            total = add(total, drain(a, b, c, run.len()));
        }
        add(add(total, add(g, h)), super::sum_tail(tail))
    }

    /// [`sum`] of `src` while copying it into `dst` (equal lengths): each load feeds both the
    /// store and the sum.
    #[target_feature(enable = "sse2")]
    pub(super) fn copy_sum(dst: &mut [u8], src: &[u8]) -> u64 {
        let (from, rs) = src.as_chunks::<64>();
        let (to, rt) = dst.as_chunks_mut::<64>();
        let (mut total, mut g, mut h) = (0u64, 0u64, 0u64);
        for (run_s, run_t) in from.chunks(DRAIN_EVERY).zip(to.chunks_mut(DRAIN_EVERY)) {
            let [mut a, mut b, mut c] = [_mm_setzero_si128(); 3];
            for (s, t) in run_s.iter().zip(run_t.iter_mut()) {
                // Four 16-byte stores (stores, not ALUs, bound a copy); the last 16 bytes are
                // read a second time, as two words, for the integer chains.
                let (x0, x1, x2, x3) = (load::<0>(s), load::<16>(s), load::<32>(s), load::<48>(s));
                let (w0, w1) = (word::<48>(s), word::<56>(s));
                store::<0>(t, x0);
                store::<16>(t, x1);
                store::<32>(t, x2);
                store::<48>(t, x3);
                a = step(a, x0);
                b = step(b, x1);
                c = step(c, x2);
                g = add(g, w0);
                h = add(h, w1);
            }
            total = add(total, drain(a, b, c, run_s.len()));
        }
        add(add(total, add(g, h)), super::copy_sum_tail(rt, rs))
    }
}

/// RFC 1624 incremental update: the new checksum field after one 16-bit word of the covered
/// data changed from `old` to `new` (`HC' = ~(~HC + ~m + m')`).
#[inline]
pub const fn update(field: u16, old: u16, new: u16) -> u16 {
    // Three 16-bit values: below 2^18.
    !fold(
        (!field as u64)
            .wrapping_add(!old as u64)
            .wrapping_add(new as u64),
    )
}

/// [`update`] for a 32-bit value (two words).
#[inline]
pub const fn update_u32(field: u16, old: u32, new: u32) -> u16 {
    let f = update(field, (old >> 16) as u16, (new >> 16) as u16);
    update(f, old as u16, new as u16)
}

/// The folded one's-complement sum of an IPv4 header without options, as five big-endian
/// 32-bit words (their sum folds to the 16-bit words' one: RFC 1071 §2(C)). A valid header sums
/// to 0xFFFF; with its checksum field zeroed, the complement is the field's value.
#[inline(always)]
pub fn ipv4_header_sum(h: &[u8; 20]) -> u16 {
    let s = h.as_chunks::<4>().0.iter().fold(0u64, |a, w| {
        a.wrapping_add(u64::from(u32::from_be_bytes(*w)))
    });
    // Five values below 2^32: the sum is below 2^35, no wrap.
    fold(s)
}

/// The IPv4 pseudo-header (source, destination, zero, protocol, L4 length).
pub fn pseudo_header_v4(src: [u8; 4], dst: [u8; 4], protocol: u8, l4_len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_u32(u32::from_be_bytes(src));
    c.add_u32(u32::from_be_bytes(dst));
    c.add_u16(u16::from(protocol));
    c.add_u32(l4_len);
    c
}

/// The IPv6 pseudo-header (source, destination, 32-bit length, next header).
pub fn pseudo_header_v6(src: [u8; 16], dst: [u8; 16], next_header: u8, l4_len: u32) -> Checksum {
    let mut c = Checksum::new();
    c.add_bytes(&src);
    c.add_bytes(&dst);
    c.add_u32(l4_len);
    c.add_u16(u16::from(next_header));
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(data: &[u8]) -> u16 {
        let mut s = 0u32;
        for w in data.chunks(2) {
            s += u32::from(u16::from_be_bytes([w[0], *w.get(1).unwrap_or(&0)]));
            s = (s & 0xffff) + (s >> 16);
        }
        s as u16
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: 00 01 f2 03 f4 f5 f6 f7 sums to ddf2.
        assert_eq!(
            sum_be(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            0xddf2
        );
        assert_eq!(
            checksum(&[0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7]),
            !0xddf2
        );
    }

    #[test]
    fn every_length_and_alignment_matches_the_naive_sum() {
        let data: alloc::vec::Vec<u8> = (0..3000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        for start in 0..8 {
            for len in (0..300).chain([1499, 1500, 1514, 2047, 2048, 2991]) {
                if start + len > data.len() {
                    continue;
                }
                let d = &data[start..start + len];
                assert_eq!(sum_be(d), naive(d), "start {start} len {len}");
            }
        }
        // All-ones data stresses the lane drains.
        let ff = alloc::vec![0xffu8; 1 << 20];
        assert_eq!(sum_be(&ff), naive(&ff));
    }

    #[test]
    fn pieces_of_any_length_compose() {
        let data: alloc::vec::Vec<u8> = (0..777u32).map(|i| (i * 7 + 3) as u8).collect();
        for cut1 in [0, 1, 2, 3, 10, 11, 400] {
            for cut2 in [cut1, cut1 + 1, cut1 + 2, 500, 776] {
                let mut c = Checksum::new();
                c.add_bytes(&data[..cut1]);
                c.add_bytes(&data[cut1..cut2]);
                c.add_bytes(&data[cut2..]);
                assert_eq!(c.fold(), naive(&data), "{cut1} {cut2}");
                let mut a = Checksum::new();
                a.add_bytes(&data[..cut1]);
                let mut b = Checksum::new();
                b.add_bytes(&data[cut1..]);
                a.add_sum(b);
                assert_eq!(a.fold(), naive(&data));
            }
        }
    }

    #[test]
    fn copy_and_sum_copies_and_sums_every_length_and_alignment() {
        let data: alloc::vec::Vec<u8> = (0..9000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        for start in 0..4 {
            for len in (0..260).chain([1447, 1448, 1500, 4095, 8191, 8996]) {
                let src = &data[start..start + len];
                let mut dst = alloc::vec![0xa5u8; len + 3];
                let c = copy_and_sum(&mut dst[start % 2..start % 2 + len], src);
                assert_eq!(
                    &dst[start % 2..start % 2 + len],
                    src,
                    "start {start} len {len}"
                );
                assert_eq!(c.fold(), naive(src), "start {start} len {len}");
                // Composes with what follows, as a Checksum of the same bytes does.
                let mut a = copy_and_sum(&mut alloc::vec![0; len], src);
                a.add_bytes(&[1, 2, 3]);
                let mut b = Checksum::new();
                b.add_bytes(src);
                b.add_bytes(&[1, 2, 3]);
                assert_eq!(a.fold(), b.fold(), "len {len}");
            }
        }
        // All-ones stresses the lane drains; a shorter destination bounds the copy.
        let ff = alloc::vec![0xffu8; 1 << 20];
        let mut out = alloc::vec![0u8; 1 << 20];
        assert_eq!(copy_and_sum(&mut out, &ff).fold(), naive(&ff));
        assert_eq!(out, ff);
        let mut short = [0u8; 5];
        assert_eq!(copy_and_sum(&mut short, &ff).fold(), naive(&ff[..5]));
    }

    #[test]
    fn incremental_update_matches_recompute() {
        let mut hdr = [
            0x45, 0, 0, 0x54, 0x12, 0x34, 0x40, 0, 0x40, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
        ];
        let c = checksum(&hdr);
        hdr[10..12].copy_from_slice(&c.to_be_bytes());
        assert_eq!(sum_be(&hdr), 0xffff);
        // Change the identification field and the total length.
        let new_id = 0xbeefu16;
        let f = update(c, 0x1234, new_id);
        hdr[4..6].copy_from_slice(&new_id.to_be_bytes());
        hdr[10..12].copy_from_slice(&f.to_be_bytes());
        assert_eq!(sum_be(&hdr), 0xffff);
        let f2 = update_u32(
            f,
            u32::from_be_bytes([0, 0x54, 0xbe, 0xef]),
            u32::from_be_bytes([0x05, 0xdc, 0, 1]),
        );
        hdr[2..6].copy_from_slice(&[0x05, 0xdc, 0, 1]);
        hdr[10..12].copy_from_slice(&f2.to_be_bytes());
        assert_eq!(sum_be(&hdr), 0xffff);
    }
}
