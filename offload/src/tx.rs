//! Transmit: from NetAdapterCx's per-packet metadata (layout, checksum and GSO extensions) to a
//! virtio-net header, with the header fix-ups the device needs, or to a software fallback when the
//! device cannot do what the OS asked.
//!
//! The driver copies a packet's headers into its own header buffer (they must be rewritten) and
//! calls [`prepare`] on that copy:
//!
//! * IPv4 header checksum: always computed here — virtio has no IP checksum offload;
//! * TCP/UDP checksum: with VIRTIO_NET_F_CSUM, `NEEDS_CSUM` with `csum_start`/`csum_offset` and
//!   the pseudo-header sum seeded into the checksum field (the Linux kernel drops a TSO frame
//!   whose field lacks it); without, [`TxAction::SoftwareChecksum`];
//! * LSO/USO: `gso_type` TCPV4/TCPV6 (with ECN when the first segment carries CWR) or UDP_L4,
//!   `gso_size` = MSS, `hdr_len`; IP and UDP length fields rewritten for the whole packet (the
//!   OS may leave them zero); when the device lacks the feature, [`TxAction::Segment`].

use netring::{NetPacketChecksum, NetPacketGso, NetPacketLayout, TxChecksumAction};
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};

use crate::wire::{Ipv4Packet, Ipv6Packet, TcpSegment, UdpDatagram, VlanTag, tcp_flags};
use crate::{L3, L4, Layout, OffloadError};

/// The transmit offloads the device accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DeviceTx {
    /// VIRTIO_NET_F_CSUM.
    pub csum: bool,
    /// VIRTIO_NET_F_HOST_TSO4.
    pub tso4: bool,
    /// VIRTIO_NET_F_HOST_TSO6.
    pub tso6: bool,
    /// VIRTIO_NET_F_HOST_ECN.
    pub ecn: bool,
    /// VIRTIO_NET_F_HOST_USO.
    pub uso: bool,
}

impl DeviceTx {
    /// From negotiated features (segmentation offloads require CSUM, §5.1.3.1).
    pub fn from_features(f: Features) -> Self {
        let csum = f.contains(Features::NET_CSUM);
        Self {
            csum,
            tso4: csum && f.contains(Features::NET_HOST_TSO4),
            tso6: csum && f.contains(Features::NET_HOST_TSO6),
            ecn: csum && f.contains(Features::NET_HOST_ECN),
            uso: csum && f.contains(Features::NET_HOST_USO),
        }
    }
}

/// What the OS asked for one packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxRequest {
    /// The packet's layout as the OS filled it.
    pub layout: NetPacketLayout,
    /// The checksum extension (zero if the queue has none).
    pub checksum: NetPacketChecksum,
    /// The GSO extension (zero if the queue has none; MSS 0 = no segmentation).
    pub gso: NetPacketGso,
}

/// What to do with the packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxAction {
    /// Send it with this virtio-net header (the headers in the buffer were fixed up).
    Offload(NetHeader),
    /// Compute the L4 checksum in software over the whole frame
    /// ([`crate::segment::fill_l4_checksum`]), then send with a zero header.
    SoftwareChecksum,
    /// Segment in software ([`crate::segment::Segmenter`]) with this MSS.
    Segment(u32),
}

/// Stores the pseudo-header sum — over the final destination ([`crate::wire::pseudo_header`])
/// and `l4_len`, the bytes the checksum covers — in the TCP/UDP checksum field, as virtio's
/// `NEEDS_CSUM` wants (the device adds the bytes from `csum_start` on); returns
/// (`csum_start`, `csum_offset`).
fn write_seed(headers: &mut [u8], l: &Layout, l4_len: usize) -> Result<(u16, u16), OffloadError> {
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    let ip = headers.get(l3o..l4o).ok_or(OffloadError::LayoutMismatch)?;
    let len = u32::try_from(l4_len).map_err(|_| OffloadError::TooLong(l4_len))?;
    let seed = crate::wire::pseudo_header(ip, l.protocol, len)?.fold();
    let field = match l.l4 {
        L4::Tcp => 16,
        L4::Udp => 6,
        _ => return Err(OffloadError::NoSuchLayer),
    };
    headers
        .get_mut(l4o..)
        .and_then(|t| t.get_mut(field..))
        .and_then(|t| t.first_chunk_mut::<2>())
        .ok_or(OffloadError::LayoutMismatch)?
        .copy_from_slice(&seed.to_be_bytes());
    let start = u16::try_from(l4o).map_err(|_| OffloadError::TooLong(l4o))?;
    Ok((start, field as u16))
}

fn check_os_layout(os: &NetPacketLayout, l: &Layout) -> Result<(), OffloadError> {
    use netring::Layer4Type;
    let mismatch = match os.layer4_type() {
        Some(Layer4Type::Tcp) => l.l4 != L4::Tcp,
        Some(Layer4Type::Udp) => l.l4 != L4::Udp,
        _ => false,
    };
    if mismatch {
        Err(OffloadError::LayoutMismatch)
    } else {
        Ok(())
    }
}

fn ipv4_mut<'a>(
    headers: &'a mut [u8],
    l: &Layout,
) -> Result<Ipv4Packet<&'a mut [u8]>, OffloadError> {
    let ip = headers
        .get_mut(l.l3_offset()..l.l4_offset())
        .ok_or(OffloadError::LayoutMismatch)?;
    Ok(Ipv4Packet::new_checked(ip)?)
}

/// The common request on its own: a TCP checksum offloaded to the device (and the IPv4 header
/// checksum, if asked) for IPv4 without options, not a fragment, whose IP length ends the frame —
/// what the general path below computes, over fixed offsets. `None` (nothing written) for any
/// other packet, the general path's to judge.
fn tcp4_checksum(
    headers: &mut [u8],
    l: &Layout,
    frame_len: usize,
    ip_csum: bool,
    l4_csum: bool,
    dev: DeviceTx,
) -> Option<TxAction> {
    if !l4_csum
        || !dev.csum
        || l.l3 != Some(L3::Ipv4 { options: false })
        || l.fragmented
        || l.l4 != L4::Tcp
    {
        return None;
    }
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    let (ip, tcp) = headers.get_mut(l3o..)?.split_at_mut_checked(20)?;
    let ip: &mut [u8; 20] = ip.try_into().ok()?;
    let total = u16::from_be_bytes([ip[2], ip[3]]);
    // The IP length must cover both headers and end the frame (else: an error, or the software
    // checksum the device cannot do, in the general path).
    let covered = total.checked_sub(20)?;
    if covered < u16::from(l.l4_len) || l3o.checked_add(usize::from(total))? != frame_len {
        return None;
    }
    let seed_at = tcp.get_mut(16..18)?;
    // The pseudo-header (RFC 9293 §3.1) over the destination — without options, the final one.
    let (src, dst) = (ip.get(12..16)?, ip.get(16..20)?);
    let seed = crate::checksum::pseudo_header_v4(
        src.try_into().ok()?,
        dst.try_into().ok()?,
        crate::wire::ip_proto::TCP,
        u32::from(covered),
    )
    .fold();
    seed_at.copy_from_slice(&seed.to_be_bytes());
    if ip_csum {
        ip[10] = 0;
        ip[11] = 0;
        let c = !crate::checksum::ipv4_header_sum(ip);
        ip[10..12].copy_from_slice(&c.to_be_bytes());
    }
    Some(TxAction::Offload(NetHeader {
        flags: hdr_flags::NEEDS_CSUM,
        csum_start: u16::try_from(l4o).ok()?,
        csum_offset: 16,
        ..NetHeader::default()
    }))
}

/// Maps one packet's offload request to a virtio-net header, fixing up its headers.
///
/// `headers` is the driver's copy of the frame's first bytes (at least all headers); `frame_len`
/// is the length of the whole frame as it will be sent. Returns the parsed layout — the deepest
/// prefix of layers that parsed — and the action.
///
/// Each request needs only the layers it acts on: an IPv4 header checksum is computed for a
/// complete IPv4 header whatever follows it; a TCP/UDP checksum or segmentation needs every
/// header to parse. An offloaded checksum covers the bytes the transport defines — TCP to the end
/// of the IP payload, UDP its Length field (RFC 768) — and the device sums from `csum_start` to
/// the end of the frame (virtio 1.2 §5.1.6.2), so a frame with bytes after what the checksum
/// covers is [`TxAction::SoftwareChecksum`].
pub fn prepare(
    headers: &mut [u8],
    frame_len: usize,
    req: &TxRequest,
    dev: DeviceTx,
) -> Result<(Layout, TxAction), OffloadError> {
    let parsed = Layout::parse_prefix(headers);
    prepare_parsed(headers, parsed, frame_len, req, dev)
}

/// [`prepare`] for a caller that already parsed these very bytes: `parsed` must be what
/// [`Layout::parse_prefix`] returns for `headers` (or for a longer frame they begin, cut at
/// the layout's header length) — the parse is not repeated.
pub fn prepare_parsed(
    headers: &mut [u8],
    (l, stopped): (Layout, Option<crate::ParseError>),
    frame_len: usize,
    req: &TxRequest,
    dev: DeviceTx,
) -> Result<(Layout, TxAction), OffloadError> {
    let mss = req.gso.mss();
    let l4_csum = req.checksum.tx_layer4() == Some(TxChecksumAction::Required);
    let ip_csum = req.checksum.tx_layer3() == Some(TxChecksumAction::Required);
    if let Some(e) = stopped {
        // Refused only when the request needs the layer that did not parse.
        if mss > 0 || l4_csum || (ip_csum && l.l3.is_none()) {
            return Err(e.into());
        }
    }
    if frame_len < l.header_len() {
        return Err(OffloadError::LayoutMismatch);
    }
    if mss > 0 || l4_csum {
        check_os_layout(&req.layout, &l)?;
    }
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    let action = if mss > 0 {
        if l.l3.is_none() || l.fragmented || !matches!(l.l4, L4::Tcp | L4::Udp) {
            return Err(OffloadError::NotSegmentable);
        }
        let l4_len = frame_len
            .checked_sub(l4o)
            .ok_or(OffloadError::LayoutMismatch)?;
        let gso_size = u16::try_from(mss).map_err(|_| OffloadError::BadMss(mss))?;
        // The OS may leave the length fields of an LSO packet zero: set them for the whole packet.
        let ip_len = frame_len
            .checked_sub(l3o)
            .ok_or(OffloadError::LayoutMismatch)?;
        let l3 = headers
            .get_mut(l3o..l4o)
            .ok_or(OffloadError::LayoutMismatch)?;
        match l.l3 {
            Some(L3::Ipv4 { .. }) => {
                let v = u16::try_from(ip_len).map_err(|_| OffloadError::TooLong(ip_len))?;
                Ipv4Packet::new_checked(l3)?.set_total_len(v);
            }
            _ => {
                let v = ip_len
                    .checked_sub(40)
                    .and_then(|n| u16::try_from(n).ok())
                    .ok_or(OffloadError::TooLong(ip_len))?;
                Ipv6Packet::new_checked(l3)?.set_payload_len(v);
            }
        }
        let v4 = matches!(l.l3, Some(L3::Ipv4 { .. }));
        let l4 = headers.get_mut(l4o..).ok_or(OffloadError::LayoutMismatch)?;
        let (can, gso_type) = match l.l4 {
            L4::Tcp => {
                let cwr = TcpSegment::new_checked(&*l4)?.flags() & tcp_flags::CWR != 0;
                let can = if v4 { dev.tso4 } else { dev.tso6 } && (!cwr || dev.ecn);
                let base = if v4 { gso::TCPV4 } else { gso::TCPV6 };
                (can, base | if cwr { gso::ECN } else { 0 })
            }
            _ => {
                let v = u16::try_from(l4_len).map_err(|_| OffloadError::TooLong(l4_len))?;
                UdpDatagram::new_checked(l4)?.set_len_field(v);
                (dev.uso, gso::UDP_L4)
            }
        };
        if v4 {
            ipv4_mut(headers, &l)?.fill_checksum()?;
        }
        if can {
            let (csum_start, csum_offset) = write_seed(headers, &l, l4_len)?;
            TxAction::Offload(NetHeader {
                flags: hdr_flags::NEEDS_CSUM,
                gso_type,
                hdr_len: l.header_len() as u16,
                gso_size,
                csum_start,
                csum_offset,
                num_buffers: 0,
            })
        } else {
            TxAction::Segment(mss)
        }
    } else if let Some(action) = tcp4_checksum(headers, &l, frame_len, ip_csum, l4_csum, dev) {
        action
    } else {
        if ip_csum && matches!(l.l3, Some(L3::Ipv4 { .. })) {
            ipv4_mut(headers, &l)?.fill_checksum()?;
        }
        if l4_csum {
            if l.l3.is_none() || l.fragmented || !matches!(l.l4, L4::Tcp | L4::Udp) {
                return Err(OffloadError::NoSuchLayer);
            }
            let ip_end = crate::segment::claimed_ip_end(headers, &l)?;
            if ip_end > frame_len {
                return Err(OffloadError::LayoutMismatch);
            }
            let covered = crate::segment::l4_checksum_len(headers, &l, ip_end)?;
            if dev.csum && l4o.checked_add(covered) == Some(frame_len) {
                let (csum_start, csum_offset) = write_seed(headers, &l, covered)?;
                TxAction::Offload(NetHeader {
                    flags: hdr_flags::NEEDS_CSUM,
                    csum_start,
                    csum_offset,
                    ..NetHeader::default()
                })
            } else {
                TxAction::SoftwareChecksum
            }
        } else {
            TxAction::Offload(NetHeader::default())
        }
    };
    Ok((l, action))
}

/// Smallest Ethernet frame without FCS: shorter frames are padded with zeros.
pub const MIN_FRAME: usize = 60;

/// Bytes of padding a frame of `len` bytes needs.
pub const fn padding(len: usize) -> usize {
    MIN_FRAME.saturating_sub(len)
}

/// Copies `headers` (starting with an untagged Ethernet header) into `out` with an 802.1Q tag
/// inserted after the MAC addresses; returns the bytes written (`headers.len() + 4`).
pub fn insert_vlan(headers: &[u8], tag: VlanTag, out: &mut [u8]) -> Result<usize, OffloadError> {
    if headers.len() < 14 {
        return Err(OffloadError::BufferTooSmall {
            need: 14,
            have: headers.len(),
        });
    }
    let need = headers.len().saturating_add(4);
    let have = out.len();
    let too_small = OffloadError::BufferTooSmall { need, have };
    let out = out.get_mut(..need).ok_or(too_small)?;
    // headers.len() >= 14 and out.len() = headers.len() + 4.
    let (Some((macs, rest)), Some((out_head, out_rest))) = (
        headers.split_first_chunk::<12>(),
        out.split_first_chunk_mut::<16>(),
    ) else {
        return Err(too_small);
    };
    out_head[..12].copy_from_slice(macs);
    out_head[12..14].copy_from_slice(&crate::wire::ethertype::VLAN.to_be_bytes());
    out_head[14..16].copy_from_slice(&tag.tci().to_be_bytes());
    if out_rest.len() != rest.len() {
        return Err(too_small);
    }
    out_rest.copy_from_slice(rest);
    Ok(need)
}

/// The tag to insert for a packet: its 802.1Q extension (priority and/or VLAN, as its TxTagging
/// flags say) combined with the adapter's VLAN id, limited by what `*PriorityVLANTag` allows.
pub fn vlan_tag_for(
    ext: Option<netring::NetPacketIeee8021q>,
    adapter_vlan: u16,
    allow_priority: bool,
    allow_vlan: bool,
) -> Option<VlanTag> {
    use netring::Ieee8021qTxTagging as T;
    let (mut pcp, mut vid) = (0u8, 0u16);
    if let Some(e) = ext {
        let t = e.tx_tagging();
        if t.contains(T::PRIORITY_REQUIRED) && allow_priority {
            pcp = e.priority_code_point();
        }
        if t.contains(T::VLAN_REQUIRED) && allow_vlan {
            vid = e.vlan_identifier();
        }
    }
    if vid == 0 && allow_vlan {
        vid = adapter_vlan & 0xfff;
    }
    (pcp != 0 || vid != 0).then_some(VlanTag {
        pcp,
        dei: false,
        vid,
    })
}
