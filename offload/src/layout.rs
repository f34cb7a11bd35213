//! The layout of a frame as NetAdapterCx defines it (`NET_PACKET_LAYOUT`), plus the offsets the
//! offload math needs.
//!
//! The lengths reported always satisfy the verifier's rules (`reference/netadaptercx.md` §2.4):
//! Ethernet 14, 18 or 22; IPv4 20–60; IPv6 ≥ 40 (with extension headers); TCP 20–60 and a
//! multiple of 4; UDP 8; and 0 ("unknown") for a layer that is not parsed.
//!
//! A frame whose headers do not all parse gets the deepest prefix of layers that did
//! ([`Layout::parse_prefix`]), never a deeper or a different layer: NET_PACKET_LAYOUT's "zero
//! if the length is unknown" (§1.3) and an Unspecified type are how a layer is left out, and the
//! OS re-parses what is missing only when Layer2Type is not Unspecified (§2.4). So a frame
//! without a whole Ethernet header (or with a tag cut off) is Layer2 Unspecified, length 0; a
//! tagged frame with a broken IP header is Ethernet 18 or 22 and nothing more; a complete IP
//! header over a broken TCP/UDP header is layers 2 and 3 with Layer4 Unspecified.

use netring::{Layer2Type, Layer3Type, Layer4Type, NetPacketLayout};

use crate::ParseError;
use crate::wire::{
    EthernetFrame, Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram, VlanTag, ethertype, ip_proto,
};

/// Network layer of a parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L3 {
    /// IPv4; `options` when IHL > 5.
    Ipv4 {
        /// Whether the header carries options.
        options: bool,
    },
    /// IPv6; `extensions` when extension headers precede the upper layer.
    Ipv6 {
        /// Whether extension headers are present.
        extensions: bool,
    },
}

/// Transport layer of a parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L4 {
    /// TCP (unfragmented, or a first fragment holding the whole TCP header).
    Tcp,
    /// UDP (unfragmented, or a first fragment holding the whole UDP header).
    Udp,
    /// An IP fragment without a transport header to report: a later fragment, a first fragment
    /// whose TCP/UDP header is cut, or a first fragment of another protocol.
    Fragment,
    /// Another protocol, not fragmented (nothing to parse: `IPNotFragment`).
    Other,
    /// Not parsed: a TCP/UDP header that is cut or broken in an unfragmented packet, or no
    /// network layer at all.
    Unspecified,
}

/// A parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of link-layer header (14, 18 or 22); 0 when not even the Ethernet header (with its
    /// tags) is in the buffer.
    pub l2_len: u8,
    /// The outermost VLAN tag (802.1Q, or the 802.1ad service tag of a QinQ frame).
    pub vlan: Option<VlanTag>,
    /// Network layer, if IPv4 or IPv6.
    pub l3: Option<L3>,
    /// Bytes of network header, including IPv4 options or IPv6 extension headers.
    pub l3_len: u16,
    /// Upper-layer protocol number.
    pub protocol: u8,
    /// Whether the packet is an IP fragment (first or later).
    pub fragmented: bool,
    /// Transport layer.
    pub l4: L4,
    /// Bytes of transport header (TCP with options; UDP 8; else 0).
    pub l4_len: u8,
}

impl Layout {
    /// Offset of the network header.
    pub const fn l3_offset(&self) -> usize {
        self.l2_len as usize
    }

    /// Offset of the transport header.
    pub const fn l4_offset(&self) -> usize {
        // Two fields of at most 16 bits each: no overflow in usize.
        (self.l2_len as usize).wrapping_add(self.l3_len as usize)
    }

    /// Offset of the payload (all headers).
    pub const fn header_len(&self) -> usize {
        // Three fields of at most 16 bits each.
        self.l4_offset().wrapping_add(self.l4_len as usize)
    }

    /// Nothing parsed.
    pub const EMPTY: Self = Self {
        l2_len: 0,
        vlan: None,
        l3: None,
        l3_len: 0,
        protocol: 0,
        fragmented: false,
        l4: L4::Unspecified,
        l4_len: 0,
    };

    /// Parses a frame's headers, all of them: an error when any header the frame announces does
    /// not parse. Only the headers need to be in `frame`; what follows may be elsewhere. An
    /// EtherType that is not IP gives a layout with only layer 2; an IP fragment has no
    /// transport header to parse unless it is a first fragment holding one.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        match Self::parse_prefix(frame) {
            (l, None) => Ok(l),
            (_, Some(e)) => Err(e),
        }
    }

    /// Parses as deep as the headers go: the layout of the layers that really parsed, and why
    /// the next one did not (`None` when every header parsed, as [`Layout::parse`] would).
    ///
    /// * Ethernet header or a tag cut: nothing (`l2_len` 0, Layer2 Unspecified);
    /// * IP header cut or broken (version, IHL, options, an extension header, a chain longer
    ///   than NET_PACKET_LAYOUT's 9-bit Layer3HeaderLength): layer 2 with its tags only;
    /// * TCP/UDP header cut or broken: layers 2 and 3, Layer4 Unspecified — or IPFragment for a
    ///   first fragment, which is an IP fragment whatever its transport header.
    #[inline]
    pub fn parse_prefix(frame: &[u8]) -> (Self, Option<ParseError>) {
        match Self::parse_plain(frame) {
            Some(l) => (l, None),
            None => Self::parse_general(frame),
        }
    }

    /// The most common frame, parsed in a few loads: untagged Ethernet II, IPv4 without options
    /// and not fragmented, a whole TCP or UDP header. `None` for any other frame (or one whose
    /// headers do not all parse), which [`Layout::parse_general`] then takes: the result, when
    /// there is one, is what that would give.
    #[inline]
    fn parse_plain(frame: &[u8]) -> Option<Self> {
        let h = frame.first_chunk::<42>()?;
        // EtherType IPv4, version 4 with IHL 5, MF clear and fragment offset 0.
        if h[12] != 0x08 || h[13] != 0x00 || h[14] != 0x45 || h[20] & 0x3f != 0 || h[21] != 0 {
            return None;
        }
        let protocol = h[23];
        let (l4, l4_len) = match protocol {
            ip_proto::TCP => {
                let t = frame.get(34..)?.first_chunk::<20>()?;
                let hl = (t[12] >> 4).wrapping_mul(4);
                if hl < 20 || frame.len() < 34usize.wrapping_add(usize::from(hl)) {
                    return None;
                }
                (L4::Tcp, hl)
            }
            ip_proto::UDP => (L4::Udp, 8),
            _ => return None,
        };
        Some(Self {
            l2_len: 14,
            vlan: None,
            l3: Some(L3::Ipv4 { options: false }),
            l3_len: 20,
            protocol,
            fragmented: false,
            l4,
            l4_len,
        })
    }

    /// [`Layout::parse_prefix`] for any frame.
    fn parse_general(frame: &[u8]) -> (Self, Option<ParseError>) {
        let mut layout = Self::EMPTY;
        let (l2_len, ty, vlan) = match parse_l2(frame) {
            Ok(l2) => l2,
            Err(e) => return (layout, Some(e)),
        };
        layout.l2_len = l2_len;
        layout.vlan = vlan;
        let ip = frame.get(usize::from(l2_len)..).unwrap_or(&[]);
        let later_fragment = match ty {
            ethertype::IPV4 => {
                let v4 = match Ipv4Packet::new_checked(ip) {
                    Ok(v4) => v4,
                    Err(e) => return (layout, Some(e)),
                };
                layout.l3 = Some(L3::Ipv4 {
                    options: v4.header_len() > 20,
                });
                // IHL ≤ 15: at most 60 bytes.
                layout.l3_len = v4.header_len() as u16;
                layout.protocol = v4.protocol();
                layout.fragmented = v4.more_fragments() || v4.frag_offset() != 0;
                v4.frag_offset() != 0
            }
            ethertype::IPV6 => {
                let ext = match Ipv6Packet::new_checked(ip).and_then(|v6| v6.extensions()) {
                    Ok(ext) => ext,
                    Err(e) => return (layout, Some(e)),
                };
                let len = ext.len.saturating_add(40);
                if len > 511 {
                    // NET_PACKET_LAYOUT holds 9 bits of L3 length.
                    return (
                        layout,
                        Some(ParseError::BadHeaderLength { layer: "ipv6", len }),
                    );
                }
                layout.l3 = Some(L3::Ipv6 {
                    extensions: ext.len > 0,
                });
                layout.l3_len = len as u16;
                layout.protocol = ext.protocol;
                // An atomic fragment (offset 0, M = 0) is a whole packet (RFC 6946).
                layout.fragmented = ext.is_fragment();
                ext.fragment.is_some_and(|(off, _)| off != 0)
            }
            _ => return (layout, None),
        };
        if later_fragment {
            layout.l4 = L4::Fragment;
            return (layout, None);
        }
        let l4 = ip.get(usize::from(layout.l3_len)..).unwrap_or(&[]);
        let parsed = match layout.protocol {
            ip_proto::TCP => TcpSegment::new_checked(l4).map(|t| (L4::Tcp, t.header_len() as u8)),
            ip_proto::UDP => UdpDatagram::new_checked(l4).map(|_| (L4::Udp, 8)),
            _ if layout.fragmented => Ok((L4::Fragment, 0)),
            _ => Ok((L4::Other, 0)),
        };
        match parsed {
            Ok((l4, l4_len)) => {
                layout.l4 = l4;
                layout.l4_len = l4_len;
                (layout, None)
            }
            // A first fragment is an IP fragment whether or not it holds the whole transport
            // header (RFC 8200 §4.5 and RFC 7112 want it to; RFC 791 does not).
            Err(_) if layout.fragmented => {
                layout.l4 = L4::Fragment;
                (layout, None)
            }
            Err(e) => (layout, Some(e)),
        }
    }

    /// The `NET_PACKET_LAYOUT` NetAdapterCx expects for this frame.
    pub fn to_net(&self) -> NetPacketLayout {
        let mut n = NetPacketLayout::ZERO;
        if self.l2_len == 0 {
            // No Ethernet header: Layer2 Unspecified, and so nothing above it (§2.4: the OS
            // re-parses a frame only when Layer2Type is not Unspecified).
            return n;
        }
        // The five bytes at once (§1.3's bit layout). Lengths were bounded when parsing
        // (l2 ≤ 22, l3 ≤ 511); one that did not fit its field would be left 0 ("unknown"), as
        // the setters leave it.
        let l2 = if self.l2_len <= 0x7f { self.l2_len } else { 0 };
        let (l3_type, l3_len, l4_type, l4_len) = match self.l3 {
            None => (Layer3Type::Unspecified, 0, Layer4Type::Unspecified, 0),
            Some(l3) => (
                match l3 {
                    L3::Ipv4 { options: true } => Layer3Type::Ipv4WithOptions,
                    L3::Ipv4 { options: false } => Layer3Type::Ipv4NoOptions,
                    L3::Ipv6 { extensions: true } => Layer3Type::Ipv6WithExtensions,
                    L3::Ipv6 { extensions: false } => Layer3Type::Ipv6NoExtensions,
                },
                if self.l3_len <= 0x1ff { self.l3_len } else { 0 },
                match self.l4 {
                    L4::Tcp => Layer4Type::Tcp,
                    L4::Udp => Layer4Type::Udp,
                    L4::Fragment => Layer4Type::IpFragment,
                    L4::Other => Layer4Type::IpNotFragment,
                    L4::Unspecified => Layer4Type::Unspecified,
                },
                self.l4_len,
            ),
        };
        let unit01 = (u16::from(l2) | (l3_len << 7)).to_le_bytes();
        n = NetPacketLayout::from_bytes([
            unit01[0],
            unit01[1],
            l4_len,
            (Layer2Type::Ethernet as u8) | ((l3_type as u8) << 4),
            l4_type as u8,
        ]);
        n
    }
}

/// The Ethernet header and up to two 802.1Q/802.1ad tags: (length, EtherType after the tags,
/// outermost tag).
fn parse_l2(frame: &[u8]) -> Result<(u8, u16, Option<VlanTag>), ParseError> {
    let eth = EthernetFrame::new_checked(frame)?;
    let mut l2_len = EthernetFrame::<&[u8]>::HEADER_LEN;
    let mut ty = eth.ethertype();
    let mut vlan = None;
    for _ in 0..2 {
        if ty != ethertype::VLAN && ty != ethertype::QINQ {
            break;
        }
        // l2_len is 14 or 18 here: no overflow.
        let end = l2_len.wrapping_add(4);
        let Some(&[t0, t1, t2, t3]) = frame.get(l2_len..end) else {
            return Err(ParseError::Truncated {
                layer: "vlan",
                need: end,
                have: frame.len(),
            });
        };
        vlan.get_or_insert(VlanTag::from_tci(u16::from_be_bytes([t0, t1])));
        ty = u16::from_be_bytes([t2, t3]);
        l2_len = end;
    }
    // 14, 18 or 22.
    Ok((l2_len as u8, ty, vlan))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::vec;
    use std::vec::Vec;

    /// Untagged IPv4 over TCP (data offset 5) or UDP, `extra` bytes of payload.
    fn plain(protocol: u8, extra: usize) -> Vec<u8> {
        let mut f = vec![0u8; 14];
        f[12] = 0x08;
        f.extend_from_slice(&[0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, protocol, 0, 0]);
        f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
        let l4 = if protocol == ip_proto::TCP { 20 } else { 8 };
        let mut h = vec![0u8; l4];
        if protocol == ip_proto::TCP {
            h[12] = 0x50;
        }
        f.extend_from_slice(&h);
        f.extend((0..extra).map(|i| i as u8));
        f
    }

    /// The quick parse answers only where the general one parses every header, and then with
    /// the same layout: every value of every header byte it looks at (and of the bytes around
    /// them), at every length a frame can be cut to.
    #[test]
    fn the_quick_parse_agrees_with_the_general_one() {
        let mut answered = 0;
        for base in [
            plain(ip_proto::TCP, 16),
            plain(ip_proto::UDP, 16),
            plain(1, 16),
        ] {
            for at in 0..base.len() {
                for v in 0..=255u8 {
                    let mut f = base.clone();
                    f[at] = v;
                    for cut in [f.len(), 54, 53, 42, 41, 34, 14] {
                        let g = &f[..cut.min(f.len())];
                        if let Some(l) = Layout::parse_plain(g) {
                            answered += 1;
                            assert_eq!((l, None), Layout::parse_general(g), "{g:02x?}");
                        }
                    }
                }
            }
        }
        assert!(answered > 10_000, "{answered}");
        // TCP with options past the cut, a tag, IHL 6, a fragment: the general parse's.
        let mut opts = plain(ip_proto::TCP, 0);
        opts[46] = 0x80;
        assert_eq!(Layout::parse_plain(&opts), None);
        assert_eq!(Layout::parse_plain(&plain(ip_proto::TCP, 0)[..53]), None);
        let mut frag = plain(ip_proto::UDP, 0);
        frag[20] = 0x20;
        assert_eq!(Layout::parse_plain(&frag), None);
        assert!(Layout::parse_prefix(&frag).0.fragmented);
    }
}
