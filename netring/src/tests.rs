//! Ring, iterator and extension tests over rings laid out in test memory with non-trivial strides
//! and extension offsets. Miri-clean: all memory comes from `memory::OwnedRing`.

use core::mem::offset_of;

use crate::memory::{ElementLayout, OwnedRing};
use crate::*;

/// SplitMix64: a small deterministic generator for the randomised tests.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn packet_ring(len: u32, stride: u16) -> OwnedRing {
    OwnedRing::new(len, stride).unwrap()
}

#[test]
fn range_count_matches_the_header_examples() {
    let mut mem = packet_ring(8, 12);
    let r = mem.view::<NetPacket>().unwrap();
    assert_eq!(r.range_count(1, 4), Ok(3));
    assert_eq!(r.range_count(4, 1), Ok(5));
    assert_eq!(r.range_count(7, 7), Ok(0));
    assert_eq!(
        r.range_count(8, 1),
        Err(RingError::IndexOutOfRange { index: 8, len: 8 })
    );
    assert_eq!(
        r.range_count(0, u32::MAX),
        Err(RingError::IndexOutOfRange {
            index: u32::MAX,
            len: 8
        })
    );
    assert_eq!(r.advance_index(6, 3), 1);
    assert_eq!(r.advance_index(1, -3), 6);
    assert_eq!(r.advance_index(0, i32::MIN), 0);
    assert_eq!(r.increment_index(7), 0);
    assert_eq!(r.mask(), 7);
    assert_eq!(r.len(), 8);
}

#[test]
fn header_validation_rejects_bad_rings() {
    // Null and misaligned pointers are rejected before anything is read.
    // SAFETY: from_raw accepts null.
    let null = unsafe { PacketRing::from_raw(core::ptr::null_mut()) };
    assert_eq!(null.unwrap_err(), RingError::Null);
    let mut mem = packet_ring(8, 16);
    let skewed = mem.as_ptr().cast::<u8>().wrapping_add(8).cast::<NetRing>();
    // SAFETY: the misalignment is detected before any read.
    let e = unsafe { PacketRing::from_raw(skewed) }.unwrap_err();
    assert!(matches!(e, RingError::Misaligned { .. }));

    let n = offset_of!(NetRing, number_of_elements);
    let m = offset_of!(NetRing, element_index_mask);
    let end = offset_of!(NetRing, end_index);
    mem.poke_header_u32(n, 6).unwrap();
    assert_eq!(
        mem.view::<NetPacket>().unwrap_err(),
        RingError::BadElementCount {
            number_of_elements: 6
        }
    );
    mem.poke_header_u32(n, 1).unwrap();
    assert!(matches!(
        mem.view::<NetPacket>(),
        Err(RingError::BadElementCount { .. })
    ));
    mem.poke_header_u32(n, 8).unwrap();
    mem.poke_header_u32(m, 3).unwrap();
    assert_eq!(
        mem.view::<NetPacket>().unwrap_err(),
        RingError::BadIndexMask {
            mask: 3,
            expected: 7
        }
    );
    mem.poke_header_u32(m, 7).unwrap();
    mem.poke_header_u32(end, 8).unwrap();
    assert_eq!(
        mem.view::<NetPacket>().unwrap_err(),
        RingError::IndexOutOfRange { index: 8, len: 8 }
    );
    mem.poke_header_u32(end, 0).unwrap();
    assert!(mem.view::<NetPacket>().is_ok());
    // A stride of 16 holds a fragment and is 8-aligned; 12 would not be.
    assert!(mem.view::<NetFragment>().is_ok());
    let mut small = packet_ring(4, 8);
    assert!(matches!(
        small.view::<NetPacket>(),
        Err(RingError::BadStride { stride: 8, .. })
    ));
    let mut odd = packet_ring(4, 12);
    assert!(matches!(
        odd.view::<NetFragment>(),
        Err(RingError::BadStride { stride: 12, .. })
    ));
    let mut unaligned = packet_ring(4, 14);
    assert!(matches!(
        unaligned.view::<NetPacket>(),
        Err(RingError::BadStride { .. })
    ));
}

#[test]
fn iterators_publish_only_when_set() {
    let mut mem = packet_ring(8, 20);
    mem.set_end_index(5);
    {
        let mut r = mem.view::<NetPacket>().unwrap();
        let mut post = r.post().unwrap();
        assert_eq!((post.index(), post.end(), post.count()), (0, 5, 5));
        post.advance();
        post.advance();
        assert_eq!(post.publishes(), RingHeaderField::NextIndex);
        // Not yet set: nothing visible.
        assert_eq!(post.ring().next_index(), 0);
        post.set();
        assert_eq!(post.ring().next_index(), 2);
        post.advance_to_end();
        assert!(!post.has_any());
        assert!(post.current().is_none());
        post.advance(); // at the end: stays
        assert_eq!(post.index(), 5);
        post.set();
        assert_eq!(r.next_index(), 5);
        assert_eq!(r.begin_index(), 0);

        let mut drain = r.drain().unwrap();
        assert_eq!((drain.index(), drain.end(), drain.count()), (0, 5, 5));
        drain.advance();
        drain.advance();
        drain.advance();
        drain.set();
        assert_eq!(r.begin_index(), 3);
        assert_eq!(r.owned_count(), 2);
        let all = r.all();
        assert_eq!((all.index(), all.end(), all.count()), (3, 5, 2));
    }
    assert_eq!(
        (mem.begin_index(), mem.next_index(), mem.end_index()),
        (3, 5, 5)
    );
}

#[test]
fn iterators_wrap_around_the_ring_end() {
    let mut mem = packet_ring(8, 12);
    mem.set_begin_index(6);
    mem.set_next_index(6);
    mem.set_end_index(3);
    let mut r = mem.view::<NetPacket>().unwrap();
    let mut post = r.post().unwrap();
    let mut seen = [0u32; 8];
    let mut k = 0;
    while post.has_any() {
        post.current_mut().unwrap().fragment_index = 100 + post.index();
        seen[k] = post.index();
        k += 1;
        post.advance();
    }
    post.set();
    assert_eq!(&seen[..k], &[6, 7, 0, 1, 2]);
    assert_eq!(r.next_index(), 3);
    assert_eq!(r.get(7).unwrap().fragment_index, 107);
    assert_eq!(r.get(0).unwrap().fragment_index, 100);
    assert_eq!(r.get(3).unwrap().fragment_index, 0);
    assert_eq!(
        r.get(8).unwrap_err(),
        RingError::IndexOutOfRange { index: 8, len: 8 }
    );
}

#[test]
fn index_setters_stay_inside_the_owned_range() {
    let mut mem = packet_ring(8, 12);
    mem.set_begin_index(2);
    mem.set_next_index(2);
    mem.set_end_index(5);
    let mut r = mem.view::<NetPacket>().unwrap();
    assert_eq!(
        r.set_begin_index(6),
        Err(RingError::OutsideOwnedRange {
            index: 6,
            begin: 2,
            end: 5
        })
    );
    assert_eq!(
        r.set_begin_index(1),
        Err(RingError::OutsideOwnedRange {
            index: 1,
            begin: 2,
            end: 5
        })
    );
    assert_eq!(
        r.set_next_index(9),
        Err(RingError::IndexOutOfRange { index: 9, len: 8 })
    );
    r.set_next_index(5).unwrap();
    r.set_begin_index(4).unwrap();
    assert_eq!(r.begin_index(), 4);
    assert!(r.within_owned(5));
    assert!(!r.within_owned(6));
    assert!(r.owns_span(4, 1));
    assert!(!r.owns_span(4, 2));
    let p = core::ptr::without_provenance_mut(0x1234);
    r.set_scratch(p);
    assert_eq!(r.scratch(), p);
    // NextIndex behind BeginIndex (a corrupt ring) is reported by the post and drain iterators.
    mem.set_next_index(1);
    let mut r = mem.view::<NetPacket>().unwrap();
    assert!(matches!(
        r.post(),
        Err(RingError::OutsideOwnedRange { index: 1, .. })
    ));
    assert!(matches!(
        r.drain(),
        Err(RingError::OutsideOwnedRange { index: 1, .. })
    ));
    assert_eq!(r.all().count(), 1);
}

#[test]
fn fragment_ranges() {
    let mut mem = OwnedRing::new(8, 24).unwrap();
    mem.set_begin_index(5);
    mem.set_end_index(2);
    let r = mem.view::<NetFragment>().unwrap();
    let p = NetPacket::new(6, 3);
    let range = FragmentRange::of(&p, &r).unwrap();
    assert_eq!(range.len(), 3);
    assert_eq!(range.end(), 1);
    let mut got = [0u32; 3];
    for (slot, i) in got.iter_mut().zip(range) {
        *slot = i;
    }
    assert_eq!(got, [6, 7, 0]);
    assert!(range.is_owned_by(&r));
    let fits = NetPacket::new(6, 4);
    assert!(FragmentRange::of(&fits, &r).unwrap().is_owned_by(&r));
    let long = NetPacket::new(6, 5);
    assert!(
        !FragmentRange::of(&long, &r).unwrap().is_owned_by(&r),
        "index 2 is EndIndex, not owned"
    );
    let empty = NetPacket::new(3, 0);
    let e = FragmentRange::of(&empty, &r).unwrap();
    assert_eq!(e.fragment_count(), 0);
    assert_eq!(e.clone().next(), None);
    assert_eq!(
        FragmentRange::of(&NetPacket::new(8, 1), &r),
        Err(RingError::IndexOutOfRange { index: 8, len: 8 })
    );
    assert_eq!(
        FragmentRange::of(&NetPacket::new(0, 8), &r),
        Err(RingError::FragmentCountTooLarge { count: 8, len: 8 })
    );
}

/// Lays out a packet ring with checksum, GSO, 802.1Q and hash extensions after `pad` bytes of
/// extra padding each, as a simulator would.
fn packet_layout(pads: [usize; 4], stride_pad: usize) -> (u16, [usize; 4]) {
    let mut specs = [names::CHECKSUM, names::GSO, names::IEEE8021Q, names::HASH];
    ElementLayout::framework_order(&mut specs);
    assert_eq!(specs[0].align, 4, "largest alignment first");
    assert_eq!(specs[3].align, 1);
    let mut l = ElementLayout::for_element::<NetPacket>();
    let mut offsets = [0; 4];
    for (i, spec) in specs.iter().enumerate() {
        offsets[i] = l.place_spec(spec, pads[i]).unwrap();
    }
    // Report offsets in a fixed order: checksum, gso, 802.1q, hash.
    let find = |name: &[u16]| offsets[specs.iter().position(|s| s.name == name).unwrap()];
    (
        l.stride(stride_pad).unwrap(),
        [
            find(names::CHECKSUM_NAME),
            find(names::GSO_NAME),
            find(names::IEEE8021Q_NAME),
            find(names::HASH_NAME),
        ],
    )
}

#[test]
fn framework_layout_without_padding() {
    let (stride, [csum, gso, q, hash]) = packet_layout([0; 4], 0);
    // GSO (4/4) and hash (8/4) first, then 802.1Q (4/2), then checksum (1/1).
    assert_eq!((gso, hash, q, csum), (12, 16, 24, 28));
    assert_eq!(stride, 32);
}

#[test]
fn extensions_read_and_write_at_their_offsets() {
    let (stride, [csum, gso, q, hash]) = packet_layout([3, 0, 5, 2], 2);
    assert_eq!(stride % 4, 0);
    let mut mem = OwnedRing::new(16, stride).unwrap();
    let ext_csum = mem.extension(csum, true);
    let ext_gso = mem.extension(gso, true);
    let ext_q = mem.extension(q, true);
    let ext_hash = mem.extension(hash, true);
    let ext_off = mem.extension(0, false);
    {
        let mut r = mem.view::<NetPacket>().unwrap();
        let h_csum = Extension::<NetPacketChecksum>::new(&ext_csum, &r).unwrap();
        let h_gso = Extension::<NetPacketGso>::new(&ext_gso, &r).unwrap();
        let h_q = Extension::<NetPacketIeee8021q>::new(&ext_q, &r).unwrap();
        let h_hash = Extension::<NetPacketHash>::new(&ext_hash, &r).unwrap();
        let h_off = Extension::<NetPacketRsc>::new(&ext_off, &r).unwrap();
        assert!(!h_off.is_enabled());
        assert_eq!(h_off.get(&r, 0).unwrap_err(), ExtensionError::Disabled);
        assert_eq!(h_gso.offset(), gso);

        *h_csum.get_mut(&mut r, 9).unwrap() =
            NetPacketChecksum::tx(TxChecksumAction::Required, TxChecksumAction::Required);
        h_gso.get_mut(&mut r, 9).unwrap().set_mss(1448).unwrap();
        h_q.get_mut(&mut r, 15)
            .unwrap()
            .set_vlan_identifier(42)
            .unwrap();
        *h_hash.get_mut(&mut r, 0).unwrap() =
            NetPacketHash::new(0x0102_0304, HashProtocolType::IPV6 | HashProtocolType::UDP);
        r.get_mut(9).unwrap().fragment_count = 7;

        assert_eq!(h_gso.get(&r, 9).unwrap().mss(), 1448);
        assert_eq!(h_gso.get(&r, 8).unwrap().mss(), 0);
        assert_eq!(h_q.get(&r, 15).unwrap().vlan_identifier(), 42);
        assert_eq!(
            h_gso.get(&r, 16).unwrap_err(),
            ExtensionError::Ring(RingError::IndexOutOfRange { index: 16, len: 16 })
        );
    }
    // The bytes landed exactly at base + index × stride + offset.
    let e9 = mem.element_bytes(9).unwrap();
    assert_eq!(e9[csum], 0b10_10_00);
    assert_eq!(&e9[gso..gso + 4], &1448u32.to_le_bytes());
    assert_eq!(&e9[4..6], &7u16.to_le_bytes());
    let e15 = mem.element_bytes(15).unwrap();
    assert_eq!(&e15[q..q + 2], &(42u16 << 3).to_le_bytes());
    let e0 = mem.element_bytes(0).unwrap();
    assert_eq!(&e0[hash..hash + 6], &[4, 3, 2, 1, 0x24, 0]);
}

/// A bound handle writes where `get_mut` would, also while a packet of the same ring is
/// borrowed mutably (the payload lies after the packet's bytes), and the index wraps by mask.
#[test]
fn bound_extensions_write_at_their_offsets() {
    let (stride, [csum, _, q, _]) = packet_layout([3, 0, 5, 2], 2);
    let mut mem = OwnedRing::new(16, stride).unwrap();
    let ext_csum = mem.extension(csum, true);
    let ext_q = mem.extension(q, true);
    {
        let mut r = mem.view::<NetPacket>().unwrap();
        let h_csum = Extension::<NetPacketChecksum>::new(&ext_csum, &r).unwrap();
        let h_q = Extension::<NetPacketIeee8021q>::new(&ext_q, &r).unwrap();
        let (b_csum, b_q) = (h_csum.bind(&r).unwrap(), h_q.bind(&r).unwrap());
        let p = r.get_mut(9).unwrap();
        b_csum.write(
            9,
            NetPacketChecksum::tx(TxChecksumAction::Required, TxChecksumAction::Required),
        );
        p.fragment_count = 7;
        let mut tag = b_q.read(15 + 16);
        tag.set_vlan_identifier(42).unwrap();
        b_q.write(15 + 16, tag);
        assert_eq!(h_q.get(&r, 15).unwrap().vlan_identifier(), 42);
        assert_eq!(b_csum.read(9), *h_csum.get(&r, 9).unwrap());
    }
    let e9 = mem.element_bytes(9).unwrap();
    assert_eq!(e9[csum], 0b10_10_00);
    assert_eq!(&e9[4..6], &7u16.to_le_bytes());
    let e15 = mem.element_bytes(15).unwrap();
    assert_eq!(&e15[q..q + 2], &(42u16 << 3).to_le_bytes());
}

#[test]
fn bad_extension_handles_are_refused() {
    let mut mem = OwnedRing::new(8, 24).unwrap();
    let mut other = OwnedRing::new(8, 24).unwrap();
    let inside = mem.extension(16, true);
    let overlapping = mem.extension(8, true);
    let misaligned = mem.extension(14, true);
    let tail = mem.extension(22, true);
    let foreign = other.extension(16, true);
    let stride_lie = NetExtension::new(inside.data(), 32, true);
    let r = mem.view::<NetPacket>().unwrap();
    assert!(Extension::<NetPacketHash>::new(&inside, &r).is_ok());
    assert_eq!(
        Extension::<NetPacketHash>::new(&overlapping, &r).unwrap_err(),
        ExtensionError::OverlapsElement {
            offset: 8,
            element_size: 12
        }
    );
    assert_eq!(
        Extension::<NetPacketHash>::new(&misaligned, &r).unwrap_err(),
        ExtensionError::Misaligned {
            offset: 14,
            align: 4
        }
    );
    assert_eq!(
        Extension::<NetPacketHash>::new(&tail, &r).unwrap_err(),
        ExtensionError::OutsideElement {
            offset: 22,
            stride: 24
        }
    );
    assert!(matches!(
        Extension::<NetPacketHash>::new(&foreign, &r),
        Err(ExtensionError::OutsideElement { .. })
    ));
    assert_eq!(
        Extension::<NetPacketHash>::new(&stride_lie, &r).unwrap_err(),
        ExtensionError::StrideMismatch {
            handle: 32,
            ring: 24
        }
    );
    // A handle of one ring used on a ring of another stride.
    let h = Extension::<NetPacketHash>::at_offset(16, 24).unwrap();
    let mut wider = OwnedRing::new(8, 32).unwrap();
    let w = wider.view::<NetPacket>().unwrap();
    assert_eq!(
        h.get(&w, 0).unwrap_err(),
        ExtensionError::StrideMismatch {
            handle: 24,
            ring: 32
        }
    );
    // Fragment extensions: a logical address needs 8-byte alignment of offset and stride.
    assert!(Extension::<NetFragmentLogicalAddress>::at_offset(8, 16).is_ok());
    assert!(matches!(
        Extension::<NetFragmentLogicalAddress>::at_offset(8, 20),
        Err(ExtensionError::Misaligned { .. })
    ));
    assert!(matches!(
        Extension::<NetFragmentLogicalAddress>::at_offset(usize::MAX - 2, 16),
        Err(ExtensionError::OutsideElement { .. })
    ));
}

#[test]
fn extension_queries_carry_name_version_and_type() {
    let q = names::RSC_V2.query();
    assert_eq!(q.size, 24);
    assert_eq!(q.version, 2);
    assert_eq!(q.ty, ExtensionType::Packet as u32);
    assert_eq!(q.name, names::RSC_NAME.as_ptr());
    let q = names::LOGICAL_ADDRESS.query();
    assert_eq!(q.ty, 2);
    let z = NetExtension::zeroed();
    assert!(!z.enabled() && z.data().is_null() && z.stride() == 0);
}

/// A TX exchange the way NetAdapterCx and the sample driver do it, over thousands of iterations on
/// a ring with randomised stride and extension offsets: the OS posts packets with 0–3 fragments
/// (0 = ignored), the driver posts them with the post iterators, completes a random prefix with
/// the drain iterators, and returns fragments as packets complete. Checks the contract: the driver
/// never touches the OS's header bytes, BeginIndex never passes EndIndex, every packet completes
/// once and in order, and the fragment ring drains with the packet ring.
#[test]
fn randomised_tx_exchange_keeps_the_ring_contract() {
    let iterations = if cfg!(miri) { 60 } else { 5_000 };
    let mut rng = Rng(0x5eed);
    let pads = [
        rng.below(9) as usize,
        rng.below(9) as usize,
        rng.below(9) as usize,
        rng.below(9) as usize,
    ];
    let (stride, [_, gso_off, ..]) = packet_layout(pads, rng.below(3) as usize);
    let mut packets = OwnedRing::new(16, stride).unwrap();
    let mut frags = OwnedRing::new(32, 16 + 8 * rng.below(2) as u16).unwrap();
    let gso_ext = packets.extension(gso_off, true);
    let mut next_id: u32 = 0; // MSS stamp = packet id, to check order
    let mut completed: u32 = 0;
    for _ in 0..iterations {
        // OS: reclaim [OSReserved0, BeginIndex) and zero those packets; post new ones.
        let (pb, pe) = (packets.begin_index(), packets.end_index());
        let mut cursor = packets.os_reserved0();
        while cursor != pb {
            let bytes = packets.element_bytes_mut(cursor).unwrap();
            bytes.fill(0);
            cursor = (cursor + 1) & 15;
        }
        packets.set_os_reserved0(pb);
        frags.set_os_reserved0(frags.begin_index());
        let mut end = pe;
        let mut fend = frags.end_index();
        let posts = rng.below(6);
        for _ in 0..posts {
            let count = rng.below(4) as u32;
            let room_p = (packets.os_reserved0().wrapping_sub(end).wrapping_sub(1)) & 15;
            let room_f = (frags.begin_index().wrapping_sub(fend).wrapping_sub(1)) & 31;
            if room_p == 0 || room_f < count {
                break;
            }
            let mut pk = NetPacket::new(fend, count as u16);
            pk.set_ignore(count == 0);
            let bytes = packets.element_bytes_mut(end).unwrap();
            bytes[..4].copy_from_slice(&pk.fragment_index.to_le_bytes());
            bytes[4..6].copy_from_slice(&pk.fragment_count.to_le_bytes());
            bytes[11] = pk.flags_raw();
            bytes[gso_off..gso_off + 4].copy_from_slice(&(next_id & 0xfffff).to_le_bytes());
            next_id += 1;
            for k in 0..count {
                let fb = frags.element_bytes_mut((fend + k) & 31).unwrap();
                fb[..8].copy_from_slice(
                    &NetFragment::from_bits(u64::from(next_id))
                        .to_bits()
                        .to_le_bytes(),
                );
            }
            fend = (fend + count) & 31;
            end = (end + 1) & 15;
        }
        packets.set_end_index(end);
        frags.set_end_index(fend);
        let header_p = packets.os_header_bytes();
        let header_f = frags.os_header_bytes();

        // Driver: post, then drain a random number of completions, in ring order.
        {
            let mut pr = packets.view::<NetPacket>().unwrap();
            let mut fr = frags.view::<NetFragment>().unwrap();
            let gso = Extension::<NetPacketGso>::new(&gso_ext, &pr).unwrap();
            let mut post = pr.post().unwrap();
            while let Some(p) = post.current() {
                if !p.ignore() {
                    let range = FragmentRange::of(p, &fr).unwrap();
                    assert!(range.is_owned_by(&fr));
                    fr.set_next_index(range.end()).unwrap();
                }
                post.advance();
            }
            post.set();
            let mut to_complete = rng.below(5);
            let mut drain = pr.drain().unwrap();
            while to_complete > 0 {
                let Some(p) = drain.current() else { break };
                let p = *p;
                let id = gso.get(drain.ring(), drain.index()).unwrap().mss();
                assert_eq!(id, completed & 0xfffff, "completion in ring order");
                if !p.ignore() {
                    let range = FragmentRange::of(&p, &fr).unwrap();
                    fr.set_begin_index(range.end()).unwrap();
                }
                completed += 1;
                drain.advance();
                to_complete -= 1;
            }
            drain.set();
            assert!(pr.owned_count() < 16);
        }
        assert_eq!(
            packets.os_header_bytes(),
            header_p,
            "driver left OS fields alone"
        );
        assert_eq!(frags.os_header_bytes(), header_f);
    }
    assert!(
        completed > iterations as u32 / 2,
        "traffic flowed: {completed}"
    );
    assert!(completed <= next_id);
}
