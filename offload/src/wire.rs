//! Zero-copy views of Ethernet, 802.1Q/802.1ad, IPv4, IPv6 (with extension headers), TCP and UDP
//! headers, in the style of smoltcp's `wire`: one length check when a view is made, then plain
//! accessors that cannot fail.

use crate::ParseError;
use crate::checksum::{self, Checksum};

/// EtherType values.
pub mod ethertype {
    /// IPv4.
    pub const IPV4: u16 = 0x0800;
    /// IPv6.
    pub const IPV6: u16 = 0x86dd;
    /// 802.1Q VLAN tag.
    pub const VLAN: u16 = 0x8100;
    /// 802.1ad service tag (QinQ outer).
    pub const QINQ: u16 = 0x88a8;
    /// ARP.
    pub const ARP: u16 = 0x0806;
}

/// IP protocol numbers.
pub mod ip_proto {
    /// IPv6 hop-by-hop options.
    pub const HOP_BY_HOP: u8 = 0;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// IPv6 routing header.
    pub const ROUTING: u8 = 43;
    /// IPv6 fragment header.
    pub const FRAGMENT: u8 = 44;
    /// Authentication header.
    pub const AH: u8 = 51;
    /// ICMPv6.
    pub const ICMPV6: u8 = 58;
    /// No next header.
    pub const NO_NEXT: u8 = 59;
    /// IPv6 destination options.
    pub const DEST_OPTS: u8 = 60;
}

/// The first `N` bytes of `b`, as an array: a view's fixed header, which its `new_checked` made
/// sure is there. The zeros stand in only for a buffer that shrank after the check (an
/// `AsRef` that does not return the same slice twice); no view the crate makes reaches them.
/// Accessors then index the array with constants: no bounds check is left, and no panic.
#[inline]
fn fixed<const N: usize>(b: &[u8]) -> &[u8; N] {
    b.first_chunk::<N>().unwrap_or(const { &[0u8; N] })
}

/// The first `N` bytes of `b`, writable (`None` only for a buffer that shrank after the view's
/// check; setters then write nothing).
#[inline]
fn fixed_mut<const N: usize>(b: &mut [u8]) -> Option<&mut [u8; N]> {
    b.first_chunk_mut::<N>()
}

/// Two bytes of a fixed header as a big-endian value.
#[inline]
const fn be16(hi: u8, lo: u8) -> u16 {
    u16::from_be_bytes([hi, lo])
}

fn need(have: usize, need: usize, layer: &'static str) -> Result<(), ParseError> {
    if have < need {
        Err(ParseError::Truncated { layer, need, have })
    } else {
        Ok(())
    }
}

/// An Ethernet II header (14 bytes; tags are separate).
#[derive(Debug, Clone, Copy)]
pub struct EthernetFrame<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> EthernetFrame<T> {
    /// Header length.
    pub const HEADER_LEN: usize = 14;

    /// A view; the buffer must hold the 14-byte header.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        need(buf.as_ref().len(), Self::HEADER_LEN, "ethernet")?;
        Ok(Self { buf })
    }

    /// Destination MAC.
    pub fn dst(&self) -> [u8; 6] {
        let b = fixed::<14>(self.buf.as_ref());
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        let b = fixed::<14>(self.buf.as_ref());
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }

    /// EtherType (or TPID of a tag).
    pub fn ethertype(&self) -> u16 {
        let b = fixed::<14>(self.buf.as_ref());
        be16(b[12], b[13])
    }
}

/// An 802.1Q/802.1ad tag as it follows the TPID: TCI, then the inner EtherType.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VlanTag {
    /// Priority code point (3 bits).
    pub pcp: u8,
    /// Drop eligible indicator.
    pub dei: bool,
    /// VLAN identifier (12 bits).
    pub vid: u16,
}

impl VlanTag {
    /// From a TCI.
    pub const fn from_tci(tci: u16) -> Self {
        Self {
            pcp: (tci >> 13) as u8,
            dei: tci & 0x1000 != 0,
            vid: tci & 0xfff,
        }
    }

    /// The TCI.
    pub const fn tci(&self) -> u16 {
        ((self.pcp as u16 & 7) << 13) | ((self.dei as u16) << 12) | (self.vid & 0xfff)
    }
}

/// An IPv4 header (with options).
#[derive(Debug, Clone, Copy)]
pub struct Ipv4Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv4Packet<T> {
    /// A view: version 4, IHL ≥ 5, the whole header (with options) in the buffer.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        need(b.len(), 20, "ipv4")?;
        let v = fixed::<20>(b)[0];
        if v >> 4 != 4 {
            return Err(ParseError::BadVersion(v >> 4));
        }
        let hl = usize::from(v & 0xf) * 4;
        if hl < 20 {
            return Err(ParseError::BadHeaderLength {
                layer: "ipv4",
                len: hl,
            });
        }
        need(b.len(), hl, "ipv4 options")?;
        Ok(Self { buf })
    }

    /// Header length in bytes (IHL × 4, 20–60).
    pub fn header_len(&self) -> usize {
        usize::from(self.h()[0] & 0xf) * 4
    }

    /// DSCP and ECN byte.
    pub fn tos(&self) -> u8 {
        self.h()[1]
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.h()[2], self.h()[3])
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.h()[4], self.h()[5])
    }

    /// More-fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.h()[6] & 0x20 != 0
    }

    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        self.h()[6] & 0x40 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        // 0x1fff × 8 = 65,528: fits.
        (be16(self.h()[6], self.h()[7]) & 0x1fff).wrapping_mul(8)
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.h()[8]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.h()[9]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.h()[10], self.h()[11])
    }

    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let b = self.h();
        [b[12], b[13], b[14], b[15]]
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let b = self.h();
        [b[16], b[17], b[18], b[19]]
    }

    /// The fixed 20 bytes of the header.
    fn h(&self) -> &[u8; 20] {
        fixed(self.buf.as_ref())
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        self.buf
            .as_ref()
            .get(..self.header_len())
            .is_some_and(|h| checksum::sum_be(h) == 0xffff)
    }

    /// The final destination, which the TCP/UDP pseudo-header uses: the last address of a loose
    /// or strict source route (options 131 and 137) that is not used up yet, else the
    /// destination field.
    ///
    /// RFC 791 §3.1: the route's addresses are visited in turn, the pointer moving past each,
    /// and "if the pointer is greater than the length, the source route is empty"; RFC 1122
    /// §3.2.1.8(c): a datagram with such a completed route "has reached its final destination",
    /// which is then the destination field. While the route is not used up, the datagram is
    /// bound for its last address — what the sender's transport checksummed with. This is the
    /// IPv4 form of RFC 8200 §8.1's Routing header rule. A route option "appears at most once in
    /// a datagram" (RFC 791): with more than one, or options that do not parse, the destination
    /// field is used.
    pub fn final_dst(&self) -> [u8; 4] {
        let b = self.buf.as_ref();
        let dst = self.dst();
        let opts = b.get(20..self.header_len()).unwrap_or(&[]);
        let mut at = 0usize;
        let mut route = None;
        let mut routes = 0u32;
        while let Some(&ty) = opts.get(at) {
            match ty {
                ipv4_option::END => break,
                ipv4_option::NOP => {
                    at = at.wrapping_add(1);
                    continue;
                }
                _ => {}
            }
            let len = usize::from(opts.get(at.wrapping_add(1)).copied().unwrap_or(0));
            // at < opts.len() <= 40 (the loop's `get`) and len <= 255: no overflow.
            let Some(opt) = opts.get(at..at.wrapping_add(len)).filter(|_| len >= 2) else {
                return dst;
            };
            if ty == ipv4_option::LSRR || ty == ipv4_option::SSRR {
                routes = routes.saturating_add(1);
                let pointer = usize::from(opt.get(2).copied().unwrap_or(0));
                let data = opt.get(3..).unwrap_or(&[]);
                // The last whole address of the route data.
                if pointer <= len
                    && let Some(a) = data.chunks_exact(4).next_back()
                {
                    route = <[u8; 4]>::try_from(a).ok();
                }
            }
            at = at.wrapping_add(len);
        }
        match (routes, route) {
            (1, Some(a)) => a,
            _ => dst,
        }
    }
}

/// IPv4 option types the packet math reads (RFC 791 §3.1).
pub mod ipv4_option {
    /// End of Option List.
    pub const END: u8 = 0;
    /// No Operation.
    pub const NOP: u8 = 1;
    /// Loose Source and Record Route.
    pub const LSRR: u8 = 131;
    /// Strict Source and Record Route.
    pub const SSRR: u8 = 137;
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv4Packet<T> {
    /// Sets the total length.
    pub fn set_total_len(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<20>(self.buf.as_mut()) {
            h[2..4].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<20>(self.buf.as_mut()) {
            h[4..6].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Computes and stores the header checksum. The header length is read again from the
    /// buffer: if the header with its options is no longer all there (the IHL was rewritten
    /// since the view was made), nothing is written and the error says so.
    pub fn fill_checksum(&mut self) -> Result<(), ParseError> {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        let have = b.len();
        let Some(h) = b.get_mut(..hl).filter(|h| h.len() >= 20) else {
            return Err(ParseError::Truncated {
                layer: "ipv4 options",
                need: hl,
                have,
            });
        };
        // h.len() >= 20: the field is there.
        if let Some(f) = h.get_mut(10..12) {
            f.fill(0);
        }
        let c = checksum::checksum(h);
        if let Some(f) = h.get_mut(10..12) {
            f.copy_from_slice(&c.to_be_bytes());
        }
        Ok(())
    }
}

/// What the IPv6 extension-header chain held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ipv6Extensions {
    /// Bytes of extension headers after the fixed header.
    pub len: usize,
    /// The upper-layer protocol they lead to.
    pub protocol: u8,
    /// Fragment header: (offset in bytes, more fragments).
    pub fragment: Option<(u16, bool)>,
    /// The final destination a Routing header with Segments Left > 0 names (see
    /// [`Ipv6Packet::final_dst`]).
    pub routing_dst: Option<[u8; 16]>,
}

impl Ipv6Extensions {
    /// Whether the packet is a fragment: a Fragment header with a non-zero offset or the M flag.
    /// One with offset 0 and M = 0 is an "atomic fragment", a whole packet (RFC 6946 §4:
    /// processed "as a fully reassembled packet"), not a fragment.
    pub fn is_fragment(&self) -> bool {
        self.fragment.is_some_and(|(off, more)| off != 0 || more)
    }
}

/// Routing header types whose final destination the pseudo-header rule knows.
pub mod routing_type {
    /// Type 0 (RFC 2460 §4.4; deprecated by RFC 5095, but its layout is the rule's example).
    pub const TYPE0: u8 = 0;
    /// Type 2, Mobile IPv6 (RFC 6275 §6.4): one address, the home address.
    pub const TYPE2: u8 = 2;
    /// Type 4, the Segment Routing Header (RFC 8754).
    pub const SRH: u8 = 4;
}

/// The final destination a Routing header (`rh`, the whole header) names, if its Segments Left
/// is non-zero and its type is known (RFC 8200 §8.1: "If the IPv6 packet contains a Routing
/// header, the Destination Address used in the pseudo-header is that of the final destination.
/// At the originating node, that address will be in the last element of the Routing header; at
/// the recipient(s), that address will be in the Destination Address field of the IPv6
/// header"). Types 0 and 2: the last address of the list, from byte 8. Type 4 (SRH, RFC 8754
/// §2): Segment List\[0\], "the last segment of the SR Policy", at byte 8. Segments Left 0 (the
/// route is done, or an unknown type): `None`, the header's Destination Address is final.
fn routing_final_dst(rh: &[u8]) -> Option<[u8; 16]> {
    let ext_len = usize::from(*rh.get(1)?);
    let ty = *rh.get(2)?;
    let segments_left = *rh.get(3)?;
    if segments_left == 0 || ext_len < 2 {
        return None;
    }
    let at = match ty {
        // 8 + 16 × (ext_len / 2 − 1) with ext_len in 2..=255: at most 2,024.
        routing_type::TYPE0 | routing_type::TYPE2 => (ext_len / 2)
            .checked_sub(1)?
            .checked_mul(16)?
            .checked_add(8)?,
        routing_type::SRH => 8,
        _ => return None,
    };
    rh.get(at..)?.first_chunk::<16>().copied()
}

/// At most this many extension headers are followed (a chain that goes on is refused).
pub const MAX_IPV6_EXTENSIONS: usize = 8;

/// An IPv6 fixed header.
#[derive(Debug, Clone, Copy)]
pub struct Ipv6Packet<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> Ipv6Packet<T> {
    /// Fixed header length.
    pub const HEADER_LEN: usize = 40;

    /// A view: version 6, 40 bytes present.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        need(b.len(), 40, "ipv6")?;
        let v = fixed::<40>(b)[0];
        if v >> 4 != 6 {
            return Err(ParseError::BadVersion(v >> 4));
        }
        Ok(Self { buf })
    }

    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        be16(self.h()[4], self.h()[5])
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.h()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.h()[7]
    }

    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.h()[8..24]);
        a
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.h()[24..40]);
        a
    }

    /// The fixed 40-byte header.
    fn h(&self) -> &[u8; 40] {
        fixed(self.buf.as_ref())
    }

    /// Walks the extension headers (hop-by-hop, routing, fragment, destination options, AH) up
    /// to the upper-layer protocol; bounded in count and by the buffer.
    pub fn extensions(&self) -> Result<Ipv6Extensions, ParseError> {
        let b = self.buf.as_ref();
        let mut next = self.next_header();
        // Bytes of extension headers walked so far, after the fixed header: at most
        // (MAX_IPV6_EXTENSIONS + 1) × 2,048, so no sum below overflows.
        let mut len_so_far = 0usize;
        let mut fragment = None;
        let mut routing_dst = None;
        let rest = b.get(40..).unwrap_or(&[]);
        for _ in 0..=MAX_IPV6_EXTENSIONS {
            let need_at = |n: usize, layer| ParseError::Truncated {
                layer,
                need: 40usize.saturating_add(len_so_far).saturating_add(n),
                have: b.len(),
            };
            // The header at `len_so_far`: its first two bytes (next header, length).
            let ext = rest.get(len_so_far..).unwrap_or(&[]);
            let len = match next {
                ip_proto::HOP_BY_HOP | ip_proto::ROUTING | ip_proto::DEST_OPTS => {
                    let [_, l] = *ext.first_chunk::<2>().ok_or(need_at(2, "ipv6 extension"))?;
                    // (l + 1) × 8 with l <= 255: no overflow.
                    usize::from(l).wrapping_add(1).wrapping_mul(8)
                }
                ip_proto::FRAGMENT => {
                    let f = ext.first_chunk::<8>().ok_or(need_at(8, "ipv6 fragment"))?;
                    let off = be16(f[2], f[3]);
                    fragment = Some((off & 0xfff8, off & 1 != 0));
                    8
                }
                ip_proto::AH => {
                    let [_, l] = *ext.first_chunk::<2>().ok_or(need_at(2, "ipv6 ah"))?;
                    // (l + 2) × 4 with l <= 255.
                    usize::from(l).wrapping_add(2).wrapping_mul(4)
                }
                protocol => {
                    return Ok(Ipv6Extensions {
                        len: len_so_far,
                        protocol,
                        fragment,
                        routing_dst,
                    });
                }
            };
            let Some(header) = ext.get(..len) else {
                return Err(need_at(len, "ipv6 extension"));
            };
            if next == ip_proto::HOP_BY_HOP && len_so_far != 0 {
                return Err(ParseError::BadExtensionChain);
            }
            if next == ip_proto::ROUTING {
                // RFC 8200 §4.1 allows one Routing header; should there be more, the last one
                // still routing decides where the packet ends up.
                if let Some(d) = routing_final_dst(header) {
                    routing_dst = Some(d);
                }
            }
            // The header is at least 8 bytes (every length above is).
            next = header.first().copied().unwrap_or(ip_proto::NO_NEXT);
            len_so_far = len_so_far.saturating_add(len);
            if fragment.is_some_and(|(off, _)| off != 0) {
                // Later fragments: what follows is payload, not headers.
                return Ok(Ipv6Extensions {
                    len: len_so_far,
                    protocol: next,
                    fragment,
                    routing_dst,
                });
            }
        }
        Err(ParseError::BadExtensionChain)
    }

    /// The final destination, which the TCP/UDP pseudo-header uses (RFC 8200 §8.1): the address
    /// a Routing header with Segments Left > 0 names, else the Destination Address field (also
    /// when the extension headers do not parse).
    pub fn final_dst(&self) -> [u8; 16] {
        self.extensions()
            .ok()
            .and_then(|e| e.routing_dst)
            .unwrap_or_else(|| self.dst())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> Ipv6Packet<T> {
    /// Sets the payload length.
    pub fn set_payload_len(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<40>(self.buf.as_mut()) {
            h[4..6].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// TCP flags.
pub mod tcp_flags {
    /// FIN.
    pub const FIN: u8 = 0x01;
    /// SYN.
    pub const SYN: u8 = 0x02;
    /// RST.
    pub const RST: u8 = 0x04;
    /// PSH.
    pub const PSH: u8 = 0x08;
    /// ACK.
    pub const ACK: u8 = 0x10;
    /// URG.
    pub const URG: u8 = 0x20;
    /// ECE.
    pub const ECE: u8 = 0x40;
    /// CWR.
    pub const CWR: u8 = 0x80;
}

/// A TCP header (with options).
#[derive(Debug, Clone, Copy)]
pub struct TcpSegment<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> TcpSegment<T> {
    /// A view: data offset 5–15 and the whole header in the buffer.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        let b = buf.as_ref();
        need(b.len(), 20, "tcp")?;
        let hl = usize::from(fixed::<20>(b)[12] >> 4) * 4;
        if hl < 20 {
            return Err(ParseError::BadHeaderLength {
                layer: "tcp",
                len: hl,
            });
        }
        need(b.len(), hl, "tcp options")?;
        Ok(Self { buf })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.h()[0], self.h()[1])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.h()[2], self.h()[3])
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        let h = self.h();
        u32::from_be_bytes([h[4], h[5], h[6], h[7]])
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        let h = self.h();
        u32::from_be_bytes([h[8], h[9], h[10], h[11]])
    }

    /// Header length (data offset × 4, 20–60).
    pub fn header_len(&self) -> usize {
        usize::from(self.h()[12] >> 4) * 4
    }

    /// Flags byte (CWR…FIN).
    pub fn flags(&self) -> u8 {
        self.h()[13]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.h()[16], self.h()[17])
    }

    /// The fixed 20 bytes of the header.
    fn h(&self) -> &[u8; 20] {
        fixed(self.buf.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        if let Some(h) = fixed_mut::<20>(self.buf.as_mut()) {
            h[4..8].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        if let Some(h) = fixed_mut::<20>(self.buf.as_mut()) {
            h[13] = v;
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<20>(self.buf.as_mut()) {
            h[16..18].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// A UDP header.
#[derive(Debug, Clone, Copy)]
pub struct UdpDatagram<T> {
    buf: T,
}

impl<T: AsRef<[u8]>> UdpDatagram<T> {
    /// Header length.
    pub const HEADER_LEN: usize = 8;

    /// A view: 8 bytes present.
    pub fn new_checked(buf: T) -> Result<Self, ParseError> {
        need(buf.as_ref().len(), 8, "udp")?;
        Ok(Self { buf })
    }

    /// Source port.
    pub fn src_port(&self) -> u16 {
        be16(self.h()[0], self.h()[1])
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.h()[2], self.h()[3])
    }

    /// Length field.
    pub fn len_field(&self) -> u16 {
        be16(self.h()[4], self.h()[5])
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.h()[6], self.h()[7])
    }

    /// The 8-byte header.
    fn h(&self) -> &[u8; 8] {
        fixed(self.buf.as_ref())
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Sets the length field.
    pub fn set_len_field(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<8>(self.buf.as_mut()) {
            h[4..6].copy_from_slice(&v.to_be_bytes());
        }
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        if let Some(h) = fixed_mut::<8>(self.buf.as_mut()) {
            h[6..8].copy_from_slice(&v.to_be_bytes());
        }
    }
}

/// The pseudo-header sum of a packet whose IP header is `ip` (IPv4 with its options, or IPv6
/// with its extension headers), for an upper layer of `l4_len` bytes. The destination is the
/// final destination ([`Ipv4Packet::final_dst`], [`Ipv6Packet::final_dst`]): every checksum the
/// crate computes, verifies or seeds for the device goes through here.
pub fn pseudo_header(ip: &[u8], protocol: u8, l4_len: u32) -> Result<Checksum, ParseError> {
    match ip.first().map(|b| b >> 4) {
        Some(4) => {
            let v = Ipv4Packet::new_checked(ip)?;
            Ok(checksum::pseudo_header_v4(
                v.src(),
                v.final_dst(),
                protocol,
                l4_len,
            ))
        }
        Some(6) => {
            let v = Ipv6Packet::new_checked(ip)?;
            Ok(checksum::pseudo_header_v6(
                v.src(),
                v.final_dst(),
                protocol,
                l4_len,
            ))
        }
        Some(v) => Err(ParseError::BadVersion(v)),
        None => Err(ParseError::Truncated {
            layer: "ip",
            need: 1,
            have: 0,
        }),
    }
}
