//! The layout of a frame as NetAdapterCx defines it (`NET_PACKET_LAYOUT`), plus the offsets the
//! offload math needs.
//!
//! The lengths reported always satisfy the verifier's rules (`reference/netadaptercx.md` §2.4):
//! Ethernet 14, 18 or 22; IPv4 20–60; IPv6 ≥ 40 (with extension headers); TCP 20–60 and a
//! multiple of 4; UDP 8; and 0 ("unknown") for a layer that is not parsed.

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
    /// TCP (unfragmented, or the first fragment).
    Tcp,
    /// UDP (unfragmented, or the first fragment).
    Udp,
    /// An IP fragment that is not the first (no transport header).
    Fragment,
    /// Another protocol, or a transport header that is not in the buffer.
    Other,
}

/// A parsed frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    /// Bytes of link-layer header (14, 18 or 22).
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
        self.l2_len as usize + self.l3_len as usize
    }

    /// Offset of the payload (all headers).
    pub const fn header_len(&self) -> usize {
        self.l4_offset() + self.l4_len as usize
    }

    /// Parses a frame's headers. Only the headers need to be in `frame`; what follows may be
    /// elsewhere. An EtherType that is not IP gives a layout with only layer 2.
    pub fn parse(frame: &[u8]) -> Result<Self, ParseError> {
        let eth = EthernetFrame::new_checked(frame)?;
        let mut l2_len = EthernetFrame::<&[u8]>::HEADER_LEN;
        let mut ty = eth.ethertype();
        let mut vlan = None;
        for _ in 0..2 {
            if ty != ethertype::VLAN && ty != ethertype::QINQ {
                break;
            }
            let tag = frame.get(l2_len..l2_len + 4).ok_or(ParseError::Truncated {
                layer: "vlan",
                need: l2_len + 4,
                have: frame.len(),
            })?;
            vlan.get_or_insert(VlanTag::from_tci(u16::from_be_bytes([tag[0], tag[1]])));
            ty = u16::from_be_bytes([tag[2], tag[3]]);
            l2_len += 4;
        }
        let mut layout = Self {
            l2_len: l2_len as u8,
            vlan,
            l3: None,
            l3_len: 0,
            protocol: 0,
            fragmented: false,
            l4: L4::Other,
            l4_len: 0,
        };
        let ip = &frame[l2_len..];
        let later_fragment;
        match ty {
            ethertype::IPV4 => {
                let v4 = Ipv4Packet::new_checked(ip)?;
                layout.l3 = Some(L3::Ipv4 {
                    options: v4.header_len() > 20,
                });
                layout.l3_len = v4.header_len() as u16;
                layout.protocol = v4.protocol();
                layout.fragmented = v4.more_fragments() || v4.frag_offset() != 0;
                later_fragment = v4.frag_offset() != 0;
            }
            ethertype::IPV6 => {
                let v6 = Ipv6Packet::new_checked(ip)?;
                let ext = v6.extensions()?;
                let len = 40 + ext.len;
                if len > 511 {
                    // NET_PACKET_LAYOUT holds 9 bits of L3 length.
                    return Err(ParseError::BadHeaderLength { layer: "ipv6", len });
                }
                layout.l3 = Some(L3::Ipv6 {
                    extensions: ext.len > 0,
                });
                layout.l3_len = len as u16;
                layout.protocol = ext.protocol;
                layout.fragmented = ext.fragment.is_some();
                later_fragment = ext.fragment.is_some_and(|(off, _)| off != 0);
            }
            _ => return Ok(layout),
        }
        let l4 = &ip[usize::from(layout.l3_len)..];
        if later_fragment {
            layout.l4 = L4::Fragment;
            return Ok(layout);
        }
        match layout.protocol {
            ip_proto::TCP => {
                let t = TcpSegment::new_checked(l4)?;
                layout.l4 = L4::Tcp;
                layout.l4_len = t.header_len() as u8;
            }
            ip_proto::UDP => {
                UdpDatagram::new_checked(l4)?;
                layout.l4 = L4::Udp;
                layout.l4_len = 8;
            }
            _ => {}
        }
        Ok(layout)
    }

    /// The `NET_PACKET_LAYOUT` NetAdapterCx expects for this frame.
    pub fn to_net(&self) -> NetPacketLayout {
        let mut n = NetPacketLayout::ZERO;
        n.set_layer2_type(Layer2Type::Ethernet);
        // Lengths were bounded when parsing (l2 ≤ 22, l3 ≤ 511), so the setters cannot fail.
        let _ = n.set_layer2_header_length(self.l2_len);
        if let Some(l3) = self.l3 {
            n.set_layer3_type(match l3 {
                L3::Ipv4 { options: true } => Layer3Type::Ipv4WithOptions,
                L3::Ipv4 { options: false } => Layer3Type::Ipv4NoOptions,
                L3::Ipv6 { extensions: true } => Layer3Type::Ipv6WithExtensions,
                L3::Ipv6 { extensions: false } => Layer3Type::Ipv6NoExtensions,
            });
            let _ = n.set_layer3_header_length(self.l3_len);
            n.set_layer4_type(match self.l4 {
                L4::Tcp => Layer4Type::Tcp,
                L4::Udp => Layer4Type::Udp,
                L4::Fragment => Layer4Type::IpFragment,
                L4::Other => Layer4Type::IpNotFragment,
            });
            n.set_layer4_header_length(self.l4_len);
        }
        n
    }
}
