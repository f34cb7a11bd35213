//! Software segmentation of a TCP (LSO) or UDP (USO) packet into MSS-sized frames, for when the
//! device cannot segment. Each segment is written into a caller buffer; nothing allocates.
//!
//! Per segment: IPv4 total length, identification (+i) and header checksum; IPv6 payload length;
//! TCP sequence number (+i·MSS), CWR only on the first segment, FIN and PSH only on the last; UDP
//! length; and the L4 checksum — complete, or only the pseudo-header seed when the device will
//! finish it (`NEEDS_CSUM`).

use crate::checksum::{self, Checksum};
use crate::wire::{Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram, tcp_flags};
use crate::{L3, L4, Layout, OffloadError};

/// How to leave each segment's L4 checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4Checksum {
    /// Compute it completely.
    Full,
    /// Store the pseudo-header sum (the device computes the rest: virtio `NEEDS_CSUM`).
    Seed,
}

/// Splits one large packet, held contiguously in `frame`, into segments.
#[derive(Debug, Clone, Copy)]
pub struct Segmenter<'a> {
    frame: &'a [u8],
    layout: Layout,
    mss: usize,
    payload_len: usize,
    count: usize,
    /// What every segment shares, taken once: the pseudo-header sum without its length (the
    /// final destination's), the same plus the transport header's sum with the fields that
    /// change per segment zeroed (TCP: sequence number, flags, checksum; UDP: length,
    /// checksum), the IPv4 header's sum with Total Length, Identification and the checksum
    /// zeroed, and the first segment's Identification, sequence number and flags.
    pseudo: Checksum,
    l4_base: Checksum,
    ip_base: Checksum,
    ident: u16,
    seq: u32,
    flags: u8,
}

/// Largest IP packet.
const MAX_IP: usize = 65535;

impl<'a> Segmenter<'a> {
    /// Checks that `frame` is TCP or UDP over IPv4/IPv6, not fragmented, with a payload, and that
    /// `mss` is positive and fits one IP packet with the headers.
    pub fn new(frame: &'a [u8], mss: u32) -> Result<Self, OffloadError> {
        let layout = Layout::parse(frame)?;
        if layout.l3.is_none() || layout.fragmented || !matches!(layout.l4, L4::Tcp | L4::Udp) {
            return Err(OffloadError::NotSegmentable);
        }
        let hdr = layout.header_len();
        let ip_hdr = hdr.saturating_sub(layout.l3_offset());
        let mss = mss as usize;
        if mss == 0 || mss.saturating_add(ip_hdr) > MAX_IP {
            return Err(OffloadError::BadMss(mss as u32));
        }
        let payload_len = frame.len().saturating_sub(hdr);
        if payload_len == 0 {
            return Err(OffloadError::NotSegmentable);
        }
        let (l3o, l4o) = (layout.l3_offset(), layout.l4_offset());
        let ip = frame.get(l3o..l4o).ok_or(OffloadError::LayoutMismatch)?;
        let pseudo = crate::wire::pseudo_header(ip, layout.protocol, 0)?;
        let (mut ip_base, mut ident) = (Checksum::new(), 0);
        if let Some(L3::Ipv4 { .. }) = layout.l3 {
            ident = Ipv4Packet::new_checked(ip)?.ident();
            // The IPv4 header alone: IHL bytes, at most 60 (`Layout::parse` checked them).
            let ihl = usize::from(layout.l3_len);
            let mut h = [0u8; 60];
            let h = h.get_mut(..ihl).ok_or(OffloadError::LayoutMismatch)?;
            h.copy_from_slice(ip.get(..ihl).ok_or(OffloadError::LayoutMismatch)?);
            for at in [2, 4, 10] {
                put(h, at, &[0, 0])?;
            }
            ip_base.add_bytes(h);
        }
        let (mut seq, mut flags) = (0, 0);
        if layout.l4 == L4::Tcp {
            let t = TcpSegment::new_checked(frame.get(l4o..).unwrap_or(&[]))?;
            (seq, flags) = (t.seq(), t.flags());
        }
        // The transport header alone: at most 60 bytes (TCP with options; UDP 8), an even
        // number (TCP's is in 32-bit words), so the payload's sum follows it at an even position.
        let mut h = [0u8; 60];
        let h = h
            .get_mut(..usize::from(layout.l4_len))
            .ok_or(OffloadError::LayoutMismatch)?;
        h.copy_from_slice(frame.get(l4o..hdr).ok_or(OffloadError::LayoutMismatch)?);
        match layout.l4 {
            L4::Tcp => {
                put(h, 4, &[0; 4])?;
                put(h, 13, &[0])?;
                put(h, 16, &[0, 0])?;
            }
            _ => put(h, 4, &[0; 4])?,
        }
        let mut l4_base = pseudo;
        l4_base.add_bytes(h);
        Ok(Self {
            frame,
            layout,
            mss,
            payload_len,
            count: payload_len.div_ceil(mss),
            pseudo,
            l4_base,
            ip_base,
            ident,
            seq,
            flags,
        })
    }

    /// The parsed layout (the same for every segment).
    pub const fn layout(&self) -> &Layout {
        &self.layout
    }

    /// Bytes of payload to be split.
    pub const fn payload_len(&self) -> usize {
        self.payload_len
    }

    /// Number of segments.
    pub const fn count(&self) -> usize {
        self.count
    }

    /// Bytes of segment `i` (headers + its payload).
    pub fn segment_len(&self, i: usize) -> Option<usize> {
        self.layout
            .header_len()
            .checked_add(self.payload_of(i)?.len())
    }

    /// Where segment `i`'s payload lies in the frame (`None` past the last segment). For
    /// i < count = ⌈payload_len / mss⌉, i × mss < payload_len: the start is inside the frame.
    fn payload_of(&self, i: usize) -> Option<core::ops::Range<usize>> {
        if i >= self.count {
            return None;
        }
        let start = i
            .checked_mul(self.mss)?
            .checked_add(self.layout.header_len())?;
        Some(start..start.saturating_add(self.mss).min(self.frame.len()))
    }

    /// Writes segment `i` into `out`; returns its length.
    pub fn write(&self, i: usize, out: &mut [u8], csum: L4Checksum) -> Result<usize, OffloadError> {
        let Some(payload) = self.payload_of(i) else {
            return Err(OffloadError::NoSuchSegment(i));
        };
        let l = &self.layout;
        let hdr = l.header_len();
        let src = self
            .frame
            .get(payload)
            .ok_or(OffloadError::LayoutMismatch)?;
        let total = hdr
            .checked_add(src.len())
            .ok_or(OffloadError::LayoutMismatch)?;
        let have = out.len();
        let Some(out) = out.get_mut(..total) else {
            return Err(OffloadError::BufferTooSmall { need: total, have });
        };
        // total = hdr + src.len(): the split is in range, and the payload part is src's length.
        let (out_hdr, out_payload) = out
            .split_at_mut_checked(hdr)
            .ok_or(OffloadError::LayoutMismatch)?;
        out_hdr.copy_from_slice(self.frame.get(..hdr).ok_or(OffloadError::LayoutMismatch)?);
        // The payload's sum is taken in the copy (one pass over it), when it is needed.
        let payload_sum = match csum {
            L4Checksum::Full => checksum::copy_and_sum(out_payload, src),
            L4Checksum::Seed => {
                if out_payload.len() != src.len() {
                    return Err(OffloadError::LayoutMismatch);
                }
                out_payload.copy_from_slice(src);
                Checksum::new()
            }
        };
        let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
        let bad = OffloadError::LayoutMismatch;
        let l4_len = total.checked_sub(l4o).ok_or(bad)?;
        let ip_len = total.checked_sub(l3o).ok_or(bad)?;
        let last = i.checked_add(1) == Some(self.count);
        // The headers were parsed in `new`; what changes per segment is written at its fixed
        // offset, and the checksums come from the shared sums plus the changed words.
        match l.l3 {
            Some(L3::Ipv4 { .. }) => {
                // At most MAX_IP (`new` checked mss + the IP header against it).
                let total_len = u16::try_from(ip_len).map_err(|_| OffloadError::TooLong(ip_len))?;
                // Identification counts up per segment, modulo 2^16.
                let ident = self.ident.wrapping_add(i as u16);
                let mut c = self.ip_base;
                c.add_u16(total_len);
                c.add_u16(ident);
                // l3o < 2^16: the field offsets do not overflow (a saturated one fails `put`).
                put(out, l3o.saturating_add(2), &total_len.to_be_bytes())?;
                put(out, l3o.saturating_add(4), &ident.to_be_bytes())?;
                put(out, l3o.saturating_add(10), &c.finish().to_be_bytes())?;
            }
            Some(L3::Ipv6 { .. }) => {
                let payload_len = ip_len.checked_sub(40).ok_or(bad)?;
                let v =
                    u16::try_from(payload_len).map_err(|_| OffloadError::TooLong(payload_len))?;
                put(out, l3o.saturating_add(4), &v.to_be_bytes())?;
            }
            None => return Err(OffloadError::NotSegmentable),
        }
        // The L4 length: at most MAX_IP (checked above through the IP length).
        let l4_len16 = l4_len as u16;
        let l4 = out.get_mut(l4o..).ok_or(OffloadError::LayoutMismatch)?;
        // Full: the shared sum (pseudo-header without length, header without the changing
        // fields) plus the changed fields, the length and the payload's sum from the copy — the
        // header is not read back. Seed: the pseudo-header with its length.
        let mut sum = match csum {
            L4Checksum::Full => self.l4_base,
            L4Checksum::Seed => self.pseudo,
        };
        sum.add_u32(l4_len as u32);
        let (field, value) = match l.l4 {
            L4::Tcp => {
                // Sequence numbers are modulo 2^32; i × mss < payload_len (`payload_of`).
                let seq = self.seq.wrapping_add(i.wrapping_mul(self.mss) as u32);
                let mut flags = self.flags;
                if i != 0 {
                    flags &= !tcp_flags::CWR;
                }
                if !last {
                    flags &= !(tcp_flags::FIN | tcp_flags::PSH);
                }
                put(l4, 4, &seq.to_be_bytes())?;
                put(l4, 13, &[flags])?;
                if csum == L4Checksum::Full {
                    // Flags are the low byte of the word at offset 12.
                    sum.add_u32(seq);
                    sum.add_u16(u16::from(flags));
                }
                (16, finish_value(sum, payload_sum, csum, false))
            }
            L4::Udp => {
                put(l4, 4, &l4_len16.to_be_bytes())?;
                if csum == L4Checksum::Full {
                    // The Length field, as well as the pseudo-header's length.
                    sum.add_u16(l4_len16);
                }
                (6, finish_value(sum, payload_sum, csum, true))
            }
            _ => return Err(OffloadError::NotSegmentable),
        };
        put(l4, field, &value.to_be_bytes())?;
        Ok(total)
    }
}

/// Writes `v` at `at` in `buf` (inside the headers the layout names).
fn put(buf: &mut [u8], at: usize, v: &[u8]) -> Result<(), OffloadError> {
    buf.get_mut(at..)
        .and_then(|b| b.get_mut(..v.len()))
        .ok_or(OffloadError::LayoutMismatch)?
        .copy_from_slice(v);
    Ok(())
}

/// The L4 checksum field of a segment: the seed (the pseudo-header sum, folded) or the full
/// checksum of `sum` (everything but the payload) and `payload`.
#[inline]
fn finish_value(mut sum: Checksum, payload: Checksum, csum: L4Checksum, udp: bool) -> u16 {
    match csum {
        L4Checksum::Seed => sum.fold(),
        L4Checksum::Full => {
            sum.add_sum(payload);
            let c = sum.finish();
            // UDP transmits a computed zero as all-ones (zero means "no checksum").
            if udp && c == 0 { 0xffff } else { c }
        }
    }
}

/// Stores either the full checksum or the pseudo-header seed at `field` of the L4 header. The
/// full checksum covers the first `covered` bytes of `l4`, read here, then `rest`: the sum of
/// the bytes after them (taken already, in a copy). A field outside `l4` is a layout that does
/// not match the headers: an error, and nothing is written.
fn finish(
    l4: &mut [u8],
    covered: usize,
    rest: Checksum,
    sum: &mut Checksum,
    csum: L4Checksum,
    field: usize,
    udp: bool,
) -> Result<(), OffloadError> {
    let value = match csum {
        L4Checksum::Seed => sum.fold(),
        L4Checksum::Full => {
            sum.add_bytes(l4.get(..covered).unwrap_or(l4));
            sum.add_sum(rest);
            let c = sum.finish();
            // UDP transmits a computed zero as all-ones (zero means "no checksum").
            if udp && c == 0 { 0xffff } else { c }
        }
    };
    put(l4, field, &value.to_be_bytes())
}

/// Computes the L4 checksum of a whole, contiguous frame in place (the software fallback when
/// the device has no checksum offload). It covers what [`l4_checksum_len`] says; bytes after
/// that (the rest of an IP payload longer than a UDP datagram, Ethernet padding) are left alone.
pub fn fill_l4_checksum(frame: &mut [u8]) -> Result<Layout, OffloadError> {
    let l = Layout::parse(frame)?;
    if l.l3.is_none() || l.fragmented {
        return Err(OffloadError::NoSuchLayer);
    }
    let (field, udp) = match l.l4 {
        L4::Tcp => (16, false),
        L4::Udp => (6, true),
        _ => return Err(OffloadError::NoSuchLayer),
    };
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    let end = ip_payload_end(frame, &l)?;
    let l4_len = l4_checksum_len(frame, &l, end)?;
    let ip = frame.get(l3o..l4o).ok_or(OffloadError::LayoutMismatch)?;
    let mut sum = crate::wire::pseudo_header(ip, l.protocol, l4_len as u32)?;
    let l4 = frame
        .get_mut(l4o..)
        .and_then(|f| f.get_mut(..l4_len))
        .ok_or(OffloadError::LayoutMismatch)?;
    // The checksum field is inside: l4_len is at least the transport header's length.
    put(l4, field, &[0, 0])?;
    let len = l4.len();
    finish(
        l4,
        len,
        Checksum::new(),
        &mut sum,
        L4Checksum::Full,
        field,
        udp,
    )?;
    Ok(l)
}

/// Where the IP packet ends by its own length field (IPv4 Total Length, IPv6 40 + Payload
/// Length), in frame bytes; `headers` needs to hold only the headers. It must cover the parsed
/// headers.
pub fn claimed_ip_end(headers: &[u8], l: &Layout) -> Result<usize, OffloadError> {
    let l3o = l.l3_offset();
    let ip = headers.get(l3o..).ok_or(OffloadError::NoSuchLayer)?;
    let claimed = match l.l3 {
        Some(L3::Ipv4 { .. }) => usize::from(Ipv4Packet::new_checked(ip)?.total_len()),
        // 16-bit fields: none of the sums below overflows usize.
        Some(L3::Ipv6 { .. }) => {
            usize::from(Ipv6Packet::new_checked(ip)?.payload_len()).wrapping_add(40)
        }
        None => return Err(OffloadError::NoSuchLayer),
    };
    if claimed < usize::from(l.l3_len).wrapping_add(usize::from(l.l4_len)) {
        return Err(OffloadError::LayoutMismatch);
    }
    Ok(l3o.wrapping_add(claimed))
}

/// End of the IP payload: from the IP length field when it is plausible, else an error
/// (Ethernet padding after a short IP packet is not part of the checksum).
pub fn ip_payload_end(frame: &[u8], l: &Layout) -> Result<usize, OffloadError> {
    let end = claimed_ip_end(frame, l)?;
    if end > frame.len() {
        return Err(OffloadError::LayoutMismatch);
    }
    Ok(end)
}

/// The bytes a transport checksum covers, from the start of the TCP/UDP header, for an IP
/// packet ending at `ip_end`: TCP, the rest of the IP payload (RFC 9293 §3.1, "the TCP length");
/// UDP, exactly its Length field (RFC 768: "Length is the length in octets of this user datagram
/// including this header and the data"), which is also the pseudo-header's length. A UDP Length
/// under 8 or past the IP payload is a malformed datagram: `LayoutMismatch`. `headers` needs to
/// hold only the headers.
pub fn l4_checksum_len(headers: &[u8], l: &Layout, ip_end: usize) -> Result<usize, OffloadError> {
    let l4o = l.l4_offset();
    let ip_payload = ip_end
        .checked_sub(l4o)
        .ok_or(OffloadError::LayoutMismatch)?;
    match l.l4 {
        L4::Tcp => Ok(ip_payload),
        L4::Udp => {
            let u = UdpDatagram::new_checked(headers.get(l4o..).unwrap_or(&[]))?;
            let len = usize::from(u.len_field());
            if len < UdpDatagram::<&[u8]>::HEADER_LEN || len > ip_payload {
                Err(OffloadError::LayoutMismatch)
            } else {
                Ok(len)
            }
        }
        _ => Err(OffloadError::NoSuchLayer),
    }
}

/// Verifies the L4 checksum of a whole frame: `Some(true/false)`, or `None` when there is
/// nothing to verify — not TCP/UDP, a fragment, lengths that do not hold together (a UDP Length
/// past the IP payload is malformed, not a checksum error), or an IPv4 UDP datagram sent
/// without a checksum (RFC 768: "an all zero transmitted checksum value means that the
/// transmitter generated no checksum"). Over IPv6 a zero UDP checksum is not allowed: it is
/// `Some(false)` (RFC 8200 §8.1: "IPv6 receivers must discard UDP packets containing a zero
/// checksum"), even when the datagram's true checksum is the other zero, 0xFFFF.
pub fn verify_l4_checksum(frame: &[u8], l: &Layout) -> Option<bool> {
    verify_l4_checksum_with(frame, l, frame.len(), |_, _| None)
}

/// [`verify_l4_checksum`] of a frame of `total_len` bytes of which `headers` holds the first
/// ones (at least the parsed headers): the bytes past `headers.len()` are summed by `tail`,
/// called at most once with the frame positions `[headers.len(), end)` it must sum (`None`:
/// they are not available, nothing is verified). The receive path parses a private copy of the
/// headers and sums the payload where it lies.
pub fn verify_l4_checksum_with(
    headers: &[u8],
    l: &Layout,
    total_len: usize,
    tail: impl FnOnce(usize, usize) -> Option<Checksum>,
) -> Option<bool> {
    if l.l3.is_none() || l.fragmented || !matches!(l.l4, L4::Tcp | L4::Udp) {
        return None;
    }
    let end = claimed_ip_end(headers, l).ok()?;
    if end > total_len {
        return None;
    }
    let len = l4_checksum_len(headers, l, end).ok()?;
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    let l4_end = l4o.checked_add(len)?;
    if l.l4 == L4::Udp
        && headers
            .get(l4o..)
            .and_then(|u| u.get(6..8))
            .is_some_and(|c| c == [0, 0])
    {
        return match l.l3 {
            Some(L3::Ipv6 { .. }) => Some(false),
            _ => None,
        };
    }
    let mut sum =
        crate::wire::pseudo_header(headers.get(l3o..l4o)?, l.protocol, len as u32).ok()?;
    let have = headers.len().min(l4_end);
    sum.add_bytes(headers.get(l4o..have)?);
    if l4_end > have {
        sum.add_sum(tail(have, l4_end)?);
    }
    Some(sum.fold() == 0xffff)
}

/// Whether `h` sums to all ones (an IPv4 header with options: kept out of line).
#[inline(never)]
fn sum_is_ones(h: &[u8]) -> bool {
    checksum::sum_be(h) == 0xffff
}

/// Verifies an IPv4 header checksum (`None` for IPv6, which has none).
#[inline]
pub fn verify_ipv4_checksum(frame: &[u8], l: &Layout) -> Option<bool> {
    match l.l3 {
        Some(L3::Ipv4 { .. }) => {
            let h = frame.get(l.l3_offset()..l.l4_offset())?;
            // The usual header, without options: summed in five 32-bit words.
            if let Ok(w) = <&[u8; 20]>::try_from(h) {
                return Some(checksum::ipv4_header_sum(w) == 0xffff);
            }
            Some(sum_is_ones(h))
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;

    /// The 20-byte header's word sum gives the verdict the general sum gives, for headers with
    /// the right checksum, a wrong one, and the carries all-ones bytes make.
    #[test]
    fn the_short_ipv4_sum_agrees_with_the_general_one() {
        let l = Layout::parse(&{
            let mut f = vec![0u8; 14];
            f[12] = 0x08;
            f.extend_from_slice(&[0x45; 20]);
            f[23] = 0xfe;
            f
        })
        .unwrap();
        let mut seed = 0x9e37_79b9_7f4a_7c15u64;
        for round in 0..20_000 {
            let mut f = vec![0u8; 34];
            f[12] = 0x08;
            for b in &mut f[14..] {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                *b = match round % 3 {
                    0 => seed as u8,
                    1 => 0xff,
                    _ => (seed as u8) | 0xf0,
                };
            }
            if round % 2 == 0 {
                f[24] = 0;
                f[25] = 0;
                let c = crate::checksum::checksum(&f[14..34]);
                f[24..26].copy_from_slice(&c.to_be_bytes());
            }
            let want = crate::checksum::sum_be(&f[14..34]) == 0xffff;
            assert_eq!(
                verify_ipv4_checksum(&f, &l),
                Some(want),
                "{:02x?}",
                &f[14..]
            );
        }
    }
}
