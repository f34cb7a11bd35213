//! The OS side of a NetAdapterCx RX queue with driver-managed buffers, as the translator
//! behaves (`reference/netadaptercx.md` §2.4): packets and fragments posted zeroed up to the
//! one-slot gap, Advance every iteration, returned packets indicated and zeroed, and every
//! fragment's buffer handed back through `EvtAdapterReturnRxBuffer` once — later, when the
//! "stack" lets go. After every callback it checks the verifier's RX rules and fails with the
//! rule's name.

use netring::{
    Extension, FragmentRing, NetFragment, NetFragmentLogicalAddress, NetFragmentReturnContext,
    NetFragmentVirtualAddress, NetPacket, NetPacketChecksum, NetPacketIeee8021q, NetPacketRsc,
    PacketRing, names,
};
use virtionet::rxqueue::{RxExtensions, RxQueue};

use crate::rings::QueueRings;
use crate::rng::Rng;

/// A frame the OS received, with its metadata.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RxFrame {
    /// Bytes, gathered from the fragments.
    pub bytes: Vec<u8>,
    /// `NET_PACKET::Layout`.
    pub layout: netring::NetPacketLayout,
    /// Checksum extension.
    pub checksum: NetPacketChecksum,
    /// RSC extension.
    pub rsc: NetPacketRsc,
    /// 802.1Q extension.
    pub ieee8021q: NetPacketIeee8021q,
    /// Hash extension.
    pub hash: netring::NetPacketHash,
    /// Fragments it came in.
    pub fragments: u16,
}

/// An RX queue's rings with the OS's behaviour and the verifier's checks.
pub struct OsRx {
    /// The rings.
    pub rings: QueueRings,
    /// Return contexts of indicated fragments the stack still holds.
    pub held: Vec<usize>,
    /// Frames indicated so far, in order.
    pub frames: Vec<RxFrame>,
    ext: Option<RxExtensions>,
}

fn violation(rule: &str, detail: String) -> ! {
    panic!("NetAdapterCx verifier: {rule}: {detail}");
}

impl OsRx {
    /// Rings with the RX extensions, randomly laid out.
    pub fn new(packets: u32, fragments: u32, rng: &mut Rng) -> Self {
        Self::with_extensions(
            packets,
            fragments,
            &[names::CHECKSUM, names::RSC, names::IEEE8021Q, names::HASH],
            &[
                names::VIRTUAL_ADDRESS,
                names::LOGICAL_ADDRESS,
                names::RETURN_CONTEXT,
            ],
            rng,
        )
    }

    /// Rings with the extensions the framework registered for this queue (the glue host derives
    /// them from what the driver declared); absent extensions read as zero.
    pub fn with_extensions(
        packets: u32,
        fragments: u32,
        packet_specs: &[netring::ExtensionSpec],
        fragment_specs: &[netring::ExtensionSpec],
        rng: &mut Rng,
    ) -> Self {
        let rings =
            QueueRings::new(packets, fragments, packet_specs, fragment_specs, rng).expect("rings");
        Self {
            rings,
            held: Vec::new(),
            frames: Vec::new(),
            ext: None,
        }
    }

    /// The extension handles, validated against the rings.
    pub fn extensions(&mut self) -> RxExtensions {
        let q = &mut self.rings;
        let (c, r, v) = (
            q.query(&names::CHECKSUM),
            q.query(&names::RSC),
            q.query(&names::IEEE8021Q),
        );
        let h = q.query(&names::HASH);
        let (va, la, rc) = (
            q.query(&names::VIRTUAL_ADDRESS),
            q.query(&names::LOGICAL_ADDRESS),
            q.query(&names::RETURN_CONTEXT),
        );
        let p = q.packets.view::<NetPacket>().expect("packet view");
        let (checksum, rsc, ieee8021q) = (
            Extension::new(&c, &p).expect("checksum"),
            Extension::new(&r, &p).expect("rsc"),
            Extension::new(&v, &p).expect("8021q"),
        );
        let hash = Extension::<netring::NetPacketHash>::new(&h, &p).expect("hash");
        let f = q.fragments.view::<NetFragment>().expect("fragment view");
        let ext = RxExtensions {
            checksum,
            rsc,
            ieee8021q,
            hash,
            virtual_address: Extension::<NetFragmentVirtualAddress>::new(&va, &f).expect("va"),
            logical_address: Extension::<NetFragmentLogicalAddress>::new(&la, &f).expect("la"),
            return_context: Extension::<NetFragmentReturnContext>::new(&rc, &f).expect("rc"),
        };
        self.ext = Some(ext);
        ext
    }

    /// Posts up to `max` packets and fragments (zeroed), keeping the one-slot gap.
    pub fn post(&mut self, max_packets: u32, max_fragments: u32) {
        for (ring, max) in [
            (&mut self.rings.packets, max_packets),
            (&mut self.rings.fragments, max_fragments),
        ] {
            let mask = ring.len() - 1;
            let mut end = ring.end_index();
            let mut n = 0;
            while n < max && (end + 1) & mask != ring.os_reserved0() {
                ring.element_bytes_mut(end).unwrap().fill(0);
                end = (end + 1) & mask;
                n += 1;
            }
            ring.set_end_index(end);
        }
    }

    /// Runs a driver callback and checks the RX rules on what it returned.
    pub fn callback<T>(
        &mut self,
        f: impl FnOnce(&mut PacketRing<'_>, &mut FragmentRing<'_>) -> T,
    ) -> T {
        self.checked(|q| {
            let mut p = q.packets.view::<NetPacket>().expect("packet view");
            let mut fr = q.fragments.view::<NetFragment>().expect("fragment view");
            f(&mut p, &mut fr)
        })
    }

    /// Runs a callback that reaches the rings through the collection the driver was given (the
    /// glue host's driver), with the same checks.
    pub fn callback_external<T>(&mut self, f: impl FnOnce() -> T) -> T {
        self.checked(|_| f())
    }

    fn checked<T>(&mut self, f: impl FnOnce(&mut QueueRings) -> T) -> T {
        let q = &mut self.rings;
        let (ph, fh) = (q.packets.os_header_bytes(), q.fragments.os_header_bytes());
        let (pb, pe) = (q.packets.begin_index(), q.packets.end_index());
        let (fb, fe) = (q.fragments.begin_index(), q.fragments.end_index());
        let out = f(q);
        if q.packets.os_header_bytes() != ph || q.fragments.os_header_bytes() != fh {
            violation(
                "InvalidRingHeader",
                "driver wrote an OS-owned NET_RING field".into(),
            );
        }
        let (pmask, fmask) = (q.packets.len() - 1, q.fragments.len() - 1);
        let (pb2, fb2) = (q.packets.begin_index(), q.fragments.begin_index());
        if pb2.wrapping_sub(pb) & pmask > pe.wrapping_sub(pb) & pmask {
            violation(
                "InvalidRingBeginIndex",
                format!("packet BeginIndex {pb} -> {pb2} past {pe}"),
            );
        }
        if fb2.wrapping_sub(fb) & fmask > fe.wrapping_sub(fb) & fmask {
            violation(
                "InvalidRingBeginIndex",
                format!("fragment BeginIndex {fb} -> {fb2} past {fe}"),
            );
        }
        // Returned packets reference, in order and without gaps, exactly the returned fragments.
        let mut expect_frag = fb;
        let mut i = pb;
        while i != pb2 {
            let e = q.packets.element_bytes(i).unwrap();
            let p = NetPacket::new(
                u32::from_le_bytes(e[..4].try_into().unwrap()),
                u16::from_le_bytes([e[4], e[5]]),
            );
            let ignore = e[11] & 1 != 0;
            if ignore {
                if p.fragment_count != 0 || p.fragment_index != 0 || e[6..11] != [0; 5] {
                    violation("RxIgnoredPacketModified", format!("packet {i}"));
                }
            } else {
                if p.fragment_count == 0 {
                    violation(
                        "InvalidRingRxPacketFragmentCountZero",
                        format!("packet {i}"),
                    );
                }
                if p.fragment_index != expect_frag {
                    violation(
                        "RxPacketFragmentOrder",
                        format!(
                            "packet {i} starts at {} not {expect_frag}",
                            p.fragment_index
                        ),
                    );
                }
                let layout = netring::NetPacketLayout::from_bytes(e[6..11].try_into().unwrap());
                let (l2, l3, l4) = (
                    layout.layer2_header_length(),
                    layout.layer3_header_length(),
                    layout.layer4_header_length(),
                );
                let tcp_bad = layout.layer4_type() == Some(netring::Layer4Type::Tcp)
                    && l4 != 0
                    && (!(20..=60).contains(&l4) || !l4.is_multiple_of(4));
                let udp_bad =
                    layout.layer4_type() == Some(netring::Layer4Type::Udp) && l4 != 0 && l4 < 8;
                if (l2 != 0 && l2 < 14) || (l3 != 0 && l3 < 20) || tcp_bad || udp_bad {
                    violation("RxPacketLayout", format!("packet {i}: {layout:?}"));
                }
                for k in 0..u32::from(p.fragment_count) {
                    let fi = (p.fragment_index + k) & fmask;
                    let fr = NetFragment::from_bits(u64::from_le_bytes(
                        q.fragments.element_bytes(fi).unwrap()[..8]
                            .try_into()
                            .unwrap(),
                    ));
                    if !fr.is_consistent() || fr.valid_length() == 0 {
                        violation("RxFragmentLength", format!("fragment {fi}: {fr:?}"));
                    }
                    if k > 0 && fr.offset() != 0 {
                        violation(
                            "RxFragmentOffset",
                            format!("fragment {fi} (not first) has Offset {}", fr.offset()),
                        );
                    }
                    if fr.os_reserved_bounced() {
                        violation("RxFragmentBounced", format!("fragment {fi}"));
                    }
                }
                expect_frag = (p.fragment_index + u32::from(p.fragment_count)) & fmask;
            }
            i = (i + 1) & pmask;
        }
        // Fragments may be returned unreferenced (skipped), but every referenced fragment must
        // have been returned in this call.
        if expect_frag.wrapping_sub(fb) & fmask > fb2.wrapping_sub(fb) & fmask {
            violation(
                "RxFragmentBeginIndex",
                format!("fragment BeginIndex {fb2}, packets reference up to {expect_frag}"),
            );
        }
        out
    }

    /// Indicates returned packets to the "stack": gathers their bytes and metadata, remembers
    /// their return contexts, zeroes the elements.
    pub fn reclaim(&mut self) {
        let q = &mut self.rings;
        let (pmask, fmask) = (q.packets.len() - 1, q.fragments.len() - 1);
        let mut i = q.packets.os_reserved0();
        let end = q.packets.begin_index();
        let off = |q: &QueueRings, s| q.registered(s).map(|r| r.offset);
        let (c_off, r_off, v_off) = (
            off(q, &names::CHECKSUM),
            off(q, &names::RSC),
            off(q, &names::IEEE8021Q),
        );
        let h_off = off(q, &names::HASH);
        let (va_off, rc_off) = (
            off(q, &names::VIRTUAL_ADDRESS).expect("the VA extension is always registered"),
            off(q, &names::RETURN_CONTEXT),
        );
        // An absent extension reads as zero bytes.
        let at = |e: &[u8], o: Option<usize>, n: usize| -> Vec<u8> {
            o.map_or(vec![0; n], |o| e[o..o + n].to_vec())
        };
        while i != end {
            let e = q.packets.element_bytes(i).unwrap().to_vec();
            if e[11] & 1 == 0 {
                let first = u32::from_le_bytes(e[..4].try_into().unwrap());
                let count = u16::from_le_bytes([e[4], e[5]]);
                let mut bytes = Vec::new();
                for k in 0..u32::from(count) {
                    let fe = q.fragments.element_bytes((first + k) & fmask).unwrap();
                    let fr =
                        NetFragment::from_bits(u64::from_le_bytes(fe[..8].try_into().unwrap()));
                    let va = u64::from_le_bytes(fe[va_off..va_off + 8].try_into().unwrap()) as usize
                        as *const u8;
                    let start = va.wrapping_add(fr.offset() as usize);
                    // SAFETY: the driver attached its own buffer (valid for Capacity bytes) to
                    // this fragment; the harness owns the driver and its DMA memory is alive.
                    let data =
                        unsafe { std::slice::from_raw_parts(start, fr.valid_length() as usize) };
                    bytes.extend_from_slice(data);
                    self.held.push(
                        u64::from_le_bytes(at(fe, rc_off, 8)[..8].try_into().unwrap()) as usize,
                    );
                }
                let (v, r, h) = (at(&e, v_off, 4), at(&e, r_off, 4), at(&e, h_off, 8));
                let q8 = u16::from_le_bytes([v[0], v[1]]);
                let mut tag = NetPacketIeee8021q::default();
                let _ = tag.set_priority_code_point((q8 & 7) as u8);
                let _ = tag.set_vlan_identifier(q8 >> 3);
                self.frames.push(RxFrame {
                    bytes,
                    layout: netring::NetPacketLayout::from_bytes(e[6..11].try_into().unwrap()),
                    checksum: NetPacketChecksum::from_bits(at(&e, c_off, 1)[0]),
                    rsc: NetPacketRsc {
                        coalesced_segment_count: u16::from_le_bytes([r[0], r[1]]),
                        duplicate_ack_count: u16::from_le_bytes([r[2], r[3]]),
                    },
                    ieee8021q: tag,
                    hash: netring::NetPacketHash::new(
                        u32::from_le_bytes(h[..4].try_into().unwrap()),
                        netring::HashProtocolType::from_bits_truncate(u16::from_le_bytes([
                            h[4], h[5],
                        ])),
                    ),
                    fragments: count,
                });
            }
            q.packets.element_bytes_mut(i).unwrap().fill(0);
            i = (i + 1) & pmask;
        }
        q.packets.set_os_reserved0(end);
        let fend = q.fragments.begin_index();
        let mut f = q.fragments.os_reserved0();
        while f != fend {
            q.fragments.element_bytes_mut(f).unwrap().fill(0);
            f = (f + 1) & fmask;
        }
        q.fragments.set_os_reserved0(fend);
    }
}

/// The RX engine's buffer accounting after a callback: each of the `pool` buffers in exactly one
/// state, `held` of them (what the OS has not given back) with the OS, the posted ones exactly
/// the virtqueue's chains in flight, no bad return and no state the engine rules out reached.
/// `what` names the case in the messages.
pub fn check_rx_accounting(rx: &RxQueue, pool: u32, held: usize, what: &str) {
    let c = rx.buffer_counts();
    assert_eq!(
        c.free + c.posted + c.pending + c.with_os,
        pool as usize,
        "{what}: every buffer in exactly one state: {c:?}"
    );
    assert_eq!(
        c.with_os, held,
        "{what}: the OS holds what it was given: {c:?}"
    );
    assert_eq!(
        c.posted,
        usize::from(rx.virtqueue().in_flight()),
        "{what}: posted = in the virtqueue"
    );
    assert_eq!(rx.stats().bad_returns, 0, "{what}: no bad return");
    assert_eq!(
        rx.stats().internal_errors,
        0,
        "{what}: no state the engine rules out was reached"
    );
}
