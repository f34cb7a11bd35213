//! Receive: from the virtio-net header the device wrote to NetAdapterCx's per-packet metadata —
//! layout, checksum evaluation per layer, RSC (coalesced segments) — with software verification
//! where the device gave no verdict, and VLAN tag stripping into the 802.1Q extension.

use netring::{NetPacketChecksum, NetPacketLayout, NetPacketRsc, RxChecksumEvaluation as Eval};
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};

use crate::checksum::Checksum;
use crate::segment::{verify_ipv4_checksum, verify_l4_checksum_with};
use crate::wire::{VlanTag, ethertype};
use crate::{L4, Layout};

/// Receive-side options.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxOptions {
    /// VIRTIO_NET_F_GUEST_CSUM: the device may mark packets DATA_VALID or NEEDS_CSUM.
    pub guest_csum: bool,
    /// VIRTIO_NET_F_RSC_EXT: coalesced packets carry their segment and duplicate-ACK counts.
    pub rsc_ext: bool,
    /// Verify L4 checksums in software when the device did not (OS asked for RX checksum
    /// offload, device cannot).
    pub software_verify: bool,
}

impl RxOptions {
    /// From negotiated features.
    pub fn from_features(f: Features, software_verify: bool) -> Self {
        Self {
            guest_csum: f.contains(Features::NET_GUEST_CSUM),
            rsc_ext: f.contains(Features::NET_RSC_EXT),
            software_verify,
        }
    }
}

/// Metadata of one received packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxMetadata {
    /// The layout for `NET_PACKET::Layout`.
    pub layout: NetPacketLayout,
    /// The checksum extension.
    pub checksum: NetPacketChecksum,
    /// The RSC extension, for a coalesced packet.
    pub rsc: Option<NetPacketRsc>,
    /// The headers that parsed — the deepest prefix of layers ([`Layout::parse_prefix`]) —
    /// or `None` when not even the Ethernet header did.
    pub parsed: Option<Layout>,
}

/// Whether [`metadata`] has anything to give beyond the link layer for the packets of a queue:
/// a transport checksum verdict (the device's `DATA_VALID`/`NEEDS_CSUM` under `guest_csum`, or
/// software verification), a checksum to complete (`NEEDS_CSUM`), or a coalesced packet (RSC:
/// its segment count needs the TCP header), with what depends only on the queue (its options;
/// whether the OS registered the checksum extension — a verdict nobody reads need not be made)
/// decided once, for a loop over packets.
///
/// For a packet it does not want parsed, [`link_layout`] describes it, and the OS parses the
/// network and transport layers itself (`reference/netadaptercx.md` §2.4, "a zero length means
/// unknown") and, with no verdict from the driver, verifies the checksums itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeaderNeed {
    /// Header flags that call for the parse.
    flags: u8,
    /// Every packet is parsed (software verification with the extension registered).
    always: bool,
}

impl HeaderNeed {
    /// For a queue with these options; `checksum_wanted`: the OS registered the checksum
    /// extension.
    pub const fn new(opt: RxOptions, checksum_wanted: bool) -> Self {
        let verdict = checksum_wanted && opt.guest_csum;
        Self {
            flags: hdr_flags::NEEDS_CSUM | if verdict { hdr_flags::DATA_VALID } else { 0 },
            always: checksum_wanted && opt.software_verify,
        }
    }

    /// Also parse every packet (a per-packet feature of the caller's, such as an RSS hash).
    #[must_use]
    pub const fn or_always(self, always: bool) -> Self {
        Self {
            flags: self.flags,
            always: self.always || always,
        }
    }

    /// Whether a packet with this header wants its headers parsed.
    #[inline]
    pub const fn wants(self, hdr: &NetHeader) -> bool {
        self.always || hdr.flags & self.flags != 0 || hdr.gso_type & !gso::ECN != gso::NONE
    }
}

/// The layout of a frame whose upper layers the driver leaves to the OS: Ethernet, with its
/// header length when `frame` (at least its first 14 bytes) shows an untagged Ethernet II header
/// (EtherType ≥ 0x600, not 802.1Q/802.1ad), else 0 ("unknown": the OS parses layer 2 as well,
/// tags and SNAP included); layers 3 and 4 Unspecified with length 0, which the OS parses from
/// the frame. A frame shorter than an Ethernet header is Layer2 Unspecified, as
/// [`Layout::parse_prefix`] would have it.
#[inline]
pub fn link_layout(frame: &[u8]) -> NetPacketLayout {
    let mut n = NetPacketLayout::ZERO;
    let Some(&[t0, t1]) = frame.get(12..14) else {
        return n;
    };
    n.set_layer2_type(netring::Layer2Type::Ethernet);
    let ty = u16::from_be_bytes([t0, t1]);
    if ty >= 0x600 && ty != ethertype::VLAN && ty != ethertype::QINQ {
        // 14 fits the 7-bit field.
        let _ = n.set_layer2_header_length(14);
    }
    n
}

/// Computes the metadata of a packet of `total_len` bytes whose first `frame.len()` bytes are in
/// `frame` (the whole packet when `frame.len() == total_len`; software verification needs that).
///
/// The layout is the deepest prefix of layers that parsed (see [`crate::layout`]); an IPv4
/// header that parsed has its checksum verified whatever follows it. A transport verdict is
/// given only for an unfragmented TCP/UDP layout: NetAdapterCx forwards RX checksum results
/// only when Layer4Type is Tcp or Udp (`reference/netadaptercx.md` §2.4).
pub fn metadata(hdr: &NetHeader, frame: &[u8], total_len: usize, opt: RxOptions) -> RxMetadata {
    metadata_with(hdr, frame, total_len, opt, |_, _| None)
}

/// [`metadata`] of a packet of `total_len` bytes whose first `frame.len()` bytes — a private
/// copy holding at least the headers — are in `frame`, with `tail` summing the rest for software
/// verification: called at most once with the frame positions `[frame.len(), end)` to sum
/// (`None` when it cannot: the transport checksum is then not checked). Every decision is made
/// on `frame`; `tail` contributes bytes to a sum, never a length or an offset.
pub fn metadata_with(
    hdr: &NetHeader,
    frame: &[u8],
    total_len: usize,
    opt: RxOptions,
    tail: impl FnOnce(usize, usize) -> Option<Checksum>,
) -> RxMetadata {
    let (l, _) = Layout::parse_prefix(frame);
    if l.l2_len == 0 {
        return RxMetadata {
            layout: NetPacketLayout::ZERO,
            checksum: NetPacketChecksum::default(),
            rsc: None,
            parsed: None,
        };
    }
    let parsed = Some(l);
    let l3 = match verify_ipv4_checksum(frame, &l) {
        Some(true) => Eval::Valid,
        Some(false) => Eval::Invalid,
        None => Eval::NotChecked,
    };
    let transport = matches!(l.l4, L4::Tcp | L4::Udp) && !l.fragmented;
    let device_ok =
        opt.guest_csum && hdr.flags & (hdr_flags::DATA_VALID | hdr_flags::NEEDS_CSUM) != 0;
    let l4 = if !transport {
        Eval::NotChecked
    } else if device_ok {
        // DATA_VALID: the device checked it. NEEDS_CSUM: it came from a local sender with a
        // partial checksum; the data has not crossed a wire, so it is intact.
        Eval::Valid
    } else if opt.software_verify {
        match verify_l4_checksum_with(frame, &l, total_len, tail) {
            Some(true) => Eval::Valid,
            Some(false) => Eval::Invalid,
            None => Eval::NotChecked,
        }
    } else {
        Eval::NotChecked
    };
    let coalesced = hdr.gso_type & !gso::ECN != gso::NONE && l.l4 == L4::Tcp && hdr.gso_size > 0;
    let rsc = coalesced.then(|| {
        if opt.rsc_ext && hdr.flags & hdr_flags::RSC_INFO != 0 {
            NetPacketRsc {
                coalesced_segment_count: hdr.csum_start,
                duplicate_ack_count: hdr.csum_offset,
            }
        } else {
            let payload = total_len.saturating_sub(l.header_len());
            let n = payload.div_ceil(usize::from(hdr.gso_size)).max(1);
            NetPacketRsc {
                coalesced_segment_count: u16::try_from(n).unwrap_or(u16::MAX),
                duplicate_ack_count: 0,
            }
        }
    });
    RxMetadata {
        layout: l.to_net(),
        checksum: NetPacketChecksum::rx(l3, l4),
        rsc,
        parsed,
    }
}

/// Removes the outer 802.1Q/802.1ad tag of `frame` in place by moving the MAC addresses 4 bytes
/// forward; returns the tag. The frame then starts 4 bytes later in the buffer.
pub fn strip_vlan(frame: &mut [u8]) -> Option<VlanTag> {
    let tpid = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if (tpid != ethertype::VLAN && tpid != ethertype::QINQ) || frame.len() < 18 {
        return None;
    }
    let tag = VlanTag::from_tci(u16::from_be_bytes([*frame.get(14)?, *frame.get(15)?]));
    // In range: frame.len() >= 18 > 16.
    frame.copy_within(0..12, 4);
    Some(tag)
}

/// A transport checksum the driver must write into a received packet before indicating it.
///
/// The OS is told the checksum is valid, so the field must hold a real checksum: Windows
/// forwards, bridges and captures packets as they are, and the RSC rules ask that a coalesced
/// segment carry recomputed checksums. Two cases need it: `NEEDS_CSUM` (the field holds only the
/// pseudo-header sum a local sender left), and a coalesced packet the device validated
/// (`DATA_VALID`), whose field still holds the first segment's checksum.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChecksumFix {
    /// Where the summed region starts, in frame bytes (the L4 header).
    pub start: usize,
    /// Where the 16-bit field is, in frame bytes.
    pub field: usize,
    /// A pseudo-header sum to store in the field before summing (recomputation), or `None`
    /// when the field already holds it (`NEEDS_CSUM`).
    pub seed: Option<u16>,
    /// UDP: a computed zero goes on the wire as all-ones.
    pub udp: bool,
}

/// Why a checksum could not be completed (the device's offsets are unusable).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChecksumFixError {
    /// `csum_start`/`csum_offset` point outside the first buffer, into the Ethernet header,
    /// or at a field that is neither TCP's nor UDP's.
    BadOffsets {
        /// `csum_start` as the device wrote it.
        start: u16,
        /// `csum_offset` as the device wrote it.
        offset: u16,
    },
    /// [`ChecksumFix::apply`]: the fix's start or field is not inside the bytes it was given
    /// (a fix that did not come from [`checksum_fix`] over those bytes); nothing was written.
    OutsideFrame,
}

/// Decides whether the packet needs its checksum written, and where. `first` is the part of the
/// frame in the first buffer (after any VLAN strip), `total_len` the whole frame's length,
/// `stripped` whether a 4-byte tag was removed (the device's offsets count it).
pub fn checksum_fix(
    hdr: &NetHeader,
    meta: &RxMetadata,
    first: &[u8],
    total_len: usize,
    stripped: bool,
    opt: RxOptions,
) -> Result<Option<ChecksumFix>, ChecksumFixError> {
    if !opt.guest_csum {
        return Ok(None);
    }
    if hdr.flags & hdr_flags::NEEDS_CSUM != 0 {
        let bad = ChecksumFixError::BadOffsets {
            start: hdr.csum_start,
            offset: hdr.csum_offset,
        };
        let shift = if stripped { 4 } else { 0 };
        let start = usize::from(hdr.csum_start)
            .checked_sub(shift)
            .filter(|&s| s >= 14 && s <= total_len)
            .ok_or(bad)?;
        let udp = match hdr.csum_offset {
            16 => false,
            6 => true,
            _ => return Err(bad),
        };
        // start <= total_len (a usize) and csum_offset <= 16: no overflow in practice, and
        // checked anyway.
        let field = start.checked_add(usize::from(hdr.csum_offset)).ok_or(bad)?;
        let end = field.checked_add(2).ok_or(bad)?;
        if end > first.len() || end > total_len {
            return Err(bad);
        }
        return Ok(Some(ChecksumFix {
            start,
            field,
            seed: None,
            udp,
        }));
    }
    // A coalesced TCP packet with the device's DATA_VALID: recompute from the pseudo-header.
    let (Some(_), Some(l)) = (meta.rsc, meta.parsed) else {
        return Ok(None);
    };
    if hdr.flags & hdr_flags::DATA_VALID == 0 || l.l4 != L4::Tcp {
        return Ok(None);
    }
    let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
    // Layout offsets are at most 22 + 511 (no overflow); the TCP header is in `first`.
    let (Some(l3), Some(l4_len)) = (
        first.get(l3o..l4o),
        total_len
            .checked_sub(l4o)
            .filter(|_| first.len() >= l4o.saturating_add(20)),
    ) else {
        return Ok(None);
    };
    let Ok(pseudo) = crate::wire::pseudo_header(l3, 6, l4_len as u32) else {
        return Ok(None);
    };
    Ok(Some(ChecksumFix {
        start: l4o,
        field: l4o.saturating_add(16),
        seed: Some(pseudo.fold()),
        udp: false,
    }))
}

/// The two bytes at `at` of `b`, if they are inside it.
fn field_mut(b: &mut [u8], at: usize) -> Option<&mut [u8; 2]> {
    b.get_mut(at..)?.first_chunk_mut::<2>()
}

impl ChecksumFix {
    /// Writes the checksum: `first` is the frame's part in the first buffer (holding the field),
    /// `rest` the sum of the frame's bytes in the following buffers, in order.
    pub fn apply(self, first: &mut [u8], rest: Checksum) -> Result<(), ChecksumFixError> {
        let bad = ChecksumFixError::OutsideFrame;
        // The field and the start of the sum must lie in `first` (`checksum_fix` puts them
        // there; a fix made by hand may not): else nothing is written.
        if self.start > first.len() {
            return Err(bad);
        }
        let Some(f) = field_mut(first, self.field) else {
            return Err(bad);
        };
        if let Some(seed) = self.seed {
            *f = seed.to_be_bytes();
        }
        let mut sum = Checksum::new();
        sum.add_bytes(first.get(self.start..).unwrap_or(&[]));
        sum.add_sum(rest);
        let c = sum.finish();
        let c = if self.udp && c == 0 { 0xffff } else { c };
        if let Some(f) = field_mut(first, self.field) {
            *f = c.to_be_bytes();
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The per-queue form decides as the definition does, for every flag byte, GSO type,
    /// option and registration.
    #[test]
    fn header_need_is_its_definition() {
        for bits in 0..16u8 {
            let opt = RxOptions {
                guest_csum: bits & 1 != 0,
                rsc_ext: bits & 2 != 0,
                software_verify: bits & 4 != 0,
            };
            let wanted = bits & 8 != 0;
            let need = HeaderNeed::new(opt, wanted);
            for flags in 0..=255u8 {
                for gso_type in [
                    gso::NONE,
                    gso::TCPV4,
                    gso::ECN,
                    gso::TCPV6 | gso::ECN,
                    gso::UDP,
                ] {
                    let hdr = NetHeader {
                        flags,
                        gso_type,
                        ..Default::default()
                    };
                    let device = opt.guest_csum
                        && flags & (hdr_flags::DATA_VALID | hdr_flags::NEEDS_CSUM) != 0;
                    let def = flags & hdr_flags::NEEDS_CSUM != 0
                        || gso_type & !gso::ECN != gso::NONE
                        || (wanted && (device || opt.software_verify));
                    assert_eq!(need.wants(&hdr), def, "{opt:?} {wanted} {flags} {gso_type}");
                    assert!(need.or_always(true).wants(&hdr));
                }
            }
        }
    }
}
