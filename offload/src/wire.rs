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

#[inline]
fn be16(b: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([b[at], b[at + 1]])
}

#[inline]
fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
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
        let b = self.buf.as_ref();
        [b[0], b[1], b[2], b[3], b[4], b[5]]
    }

    /// Source MAC.
    pub fn src(&self) -> [u8; 6] {
        let b = self.buf.as_ref();
        [b[6], b[7], b[8], b[9], b[10], b[11]]
    }

    /// EtherType (or TPID of a tag).
    pub fn ethertype(&self) -> u16 {
        be16(self.buf.as_ref(), 12)
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
        if b[0] >> 4 != 4 {
            return Err(ParseError::BadVersion(b[0] >> 4));
        }
        let hl = usize::from(b[0] & 0xf) * 4;
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
        usize::from(self.buf.as_ref()[0] & 0xf) * 4
    }

    /// DSCP and ECN byte.
    pub fn tos(&self) -> u8 {
        self.buf.as_ref()[1]
    }

    /// Total length field.
    pub fn total_len(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    /// Identification.
    pub fn ident(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }

    /// More-fragments flag.
    pub fn more_fragments(&self) -> bool {
        self.buf.as_ref()[6] & 0x20 != 0
    }

    /// Don't-fragment flag.
    pub fn dont_fragment(&self) -> bool {
        self.buf.as_ref()[6] & 0x40 != 0
    }

    /// Fragment offset in bytes.
    pub fn frag_offset(&self) -> u16 {
        (be16(self.buf.as_ref(), 6) & 0x1fff) * 8
    }

    /// Time to live.
    pub fn ttl(&self) -> u8 {
        self.buf.as_ref()[8]
    }

    /// Protocol.
    pub fn protocol(&self) -> u8 {
        self.buf.as_ref()[9]
    }

    /// Header checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 10)
    }

    /// Source address.
    pub fn src(&self) -> [u8; 4] {
        let b = self.buf.as_ref();
        [b[12], b[13], b[14], b[15]]
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 4] {
        let b = self.buf.as_ref();
        [b[16], b[17], b[18], b[19]]
    }

    /// Whether the header checksum is correct.
    pub fn verify_checksum(&self) -> bool {
        checksum::sum_be(&self.buf.as_ref()[..self.header_len()]) == 0xffff
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
                    at += 1;
                    continue;
                }
                _ => {}
            }
            let len = usize::from(opts.get(at + 1).copied().unwrap_or(0));
            let Some(opt) = opts.get(at..at + len).filter(|_| len >= 2) else {
                return dst;
            };
            if ty == ipv4_option::LSRR || ty == ipv4_option::SSRR {
                routes += 1;
                let pointer = usize::from(opt.get(2).copied().unwrap_or(0));
                let data = opt.get(3..).unwrap_or(&[]);
                let n = data.len() / 4;
                if n > 0 && pointer <= len {
                    route = data
                        .get(4 * (n - 1)..4 * n)
                        .and_then(|a| <[u8; 4]>::try_from(a).ok());
                }
            }
            at += len;
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
        self.buf.as_mut()[2..4].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the identification.
    pub fn set_ident(&mut self, v: u16) {
        self.buf.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    /// Computes and stores the header checksum.
    pub fn fill_checksum(&mut self) {
        let hl = self.header_len();
        let b = self.buf.as_mut();
        b[10] = 0;
        b[11] = 0;
        let c = checksum::checksum(&b[..hl]);
        b[10..12].copy_from_slice(&c.to_be_bytes());
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
        routing_type::TYPE0 | routing_type::TYPE2 => 8 + 16 * (ext_len / 2 - 1),
        routing_type::SRH => 8,
        _ => return None,
    };
    rh.get(at..at + 16)
        .and_then(|a| <[u8; 16]>::try_from(a).ok())
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
        if b[0] >> 4 != 6 {
            return Err(ParseError::BadVersion(b[0] >> 4));
        }
        Ok(Self { buf })
    }

    /// Payload length field.
    pub fn payload_len(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }

    /// Next header.
    pub fn next_header(&self) -> u8 {
        self.buf.as_ref()[6]
    }

    /// Hop limit.
    pub fn hop_limit(&self) -> u8 {
        self.buf.as_ref()[7]
    }

    /// Source address.
    pub fn src(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[8..24]);
        a
    }

    /// Destination address.
    pub fn dst(&self) -> [u8; 16] {
        let mut a = [0; 16];
        a.copy_from_slice(&self.buf.as_ref()[24..40]);
        a
    }

    /// Walks the extension headers (hop-by-hop, routing, fragment, destination options, AH) up
    /// to the upper-layer protocol; bounded in count and by the buffer.
    pub fn extensions(&self) -> Result<Ipv6Extensions, ParseError> {
        let b = self.buf.as_ref();
        let mut next = self.next_header();
        let mut at = 40;
        let mut fragment = None;
        let mut routing_dst = None;
        for _ in 0..=MAX_IPV6_EXTENSIONS {
            let len = match next {
                ip_proto::HOP_BY_HOP | ip_proto::ROUTING | ip_proto::DEST_OPTS => {
                    need(b.len(), at + 2, "ipv6 extension")?;
                    (usize::from(b[at + 1]) + 1) * 8
                }
                ip_proto::FRAGMENT => {
                    need(b.len(), at + 8, "ipv6 fragment")?;
                    let off = be16(b, at + 2);
                    fragment = Some((off & 0xfff8, off & 1 != 0));
                    8
                }
                ip_proto::AH => {
                    need(b.len(), at + 2, "ipv6 ah")?;
                    (usize::from(b[at + 1]) + 2) * 4
                }
                protocol => {
                    return Ok(Ipv6Extensions {
                        len: at - 40,
                        protocol,
                        fragment,
                        routing_dst,
                    });
                }
            };
            need(b.len(), at + len, "ipv6 extension")?;
            if next == ip_proto::HOP_BY_HOP && at != 40 {
                return Err(ParseError::BadExtensionChain);
            }
            if next == ip_proto::ROUTING {
                // RFC 8200 §4.1 allows one Routing header; should there be more, the last one
                // still routing decides where the packet ends up.
                if let Some(d) = b.get(at..at + len).and_then(routing_final_dst) {
                    routing_dst = Some(d);
                }
            }
            next = b[at];
            at += len;
            if fragment.is_some_and(|(off, _)| off != 0) {
                // Later fragments: what follows is payload, not headers.
                return Ok(Ipv6Extensions {
                    len: at - 40,
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
        self.buf.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
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
        let hl = usize::from(b[12] >> 4) * 4;
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
        be16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    /// Sequence number.
    pub fn seq(&self) -> u32 {
        be32(self.buf.as_ref(), 4)
    }

    /// Acknowledgement number.
    pub fn ack(&self) -> u32 {
        be32(self.buf.as_ref(), 8)
    }

    /// Header length (data offset × 4, 20–60).
    pub fn header_len(&self) -> usize {
        usize::from(self.buf.as_ref()[12] >> 4) * 4
    }

    /// Flags byte (CWR…FIN).
    pub fn flags(&self) -> u8 {
        self.buf.as_ref()[13]
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 16)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> TcpSegment<T> {
    /// Sets the sequence number.
    pub fn set_seq(&mut self, v: u32) {
        self.buf.as_mut()[4..8].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the flags byte.
    pub fn set_flags(&mut self, v: u8) {
        self.buf.as_mut()[13] = v;
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[16..18].copy_from_slice(&v.to_be_bytes());
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
        be16(self.buf.as_ref(), 0)
    }

    /// Destination port.
    pub fn dst_port(&self) -> u16 {
        be16(self.buf.as_ref(), 2)
    }

    /// Length field.
    pub fn len_field(&self) -> u16 {
        be16(self.buf.as_ref(), 4)
    }

    /// Checksum field.
    pub fn checksum(&self) -> u16 {
        be16(self.buf.as_ref(), 6)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> UdpDatagram<T> {
    /// Sets the length field.
    pub fn set_len_field(&mut self, v: u16) {
        self.buf.as_mut()[4..6].copy_from_slice(&v.to_be_bytes());
    }

    /// Sets the checksum field.
    pub fn set_checksum(&mut self, v: u16) {
        self.buf.as_mut()[6..8].copy_from_slice(&v.to_be_bytes());
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
