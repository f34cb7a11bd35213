//! The OS side of queue creation: ring allocation with the driver's extensions, and extension
//! queries.
//!
//! NetAdapterCx registers the extensions a driver asked for (plus, from the 2100 framework on,
//! the legacy `ms_packet_lso` in every queue), places them after the ring's element ordered by
//! alignment, and answers `NetTx/RxQueueGetExtension` by exact name, a registered version at least
//! the one asked for, and the element type (`shared/reference/netadaptercx.md` §1.5–§1.6). This
//! module does the same, but inserts random padding before each extension and at the end of the
//! stride, so a driver that hard-codes an offset or a stride fails.

use netring::memory::{ElementLayout, OwnedRing};
use netring::{
    Element, ExtensionSpec, ExtensionType, NetExtension, NetFragment, NetPacket, NetRingCollection,
    RingError, names,
};

use crate::rng::Rng;

/// One extension as registered on a ring: its spec and where it landed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Registered {
    /// What was registered.
    pub spec: ExtensionSpec,
    /// Offset inside each element.
    pub offset: usize,
}

/// A queue's packet and fragment rings, laid out with randomised extension offsets and strides.
#[derive(Debug)]
pub struct QueueRings {
    /// The packet ring.
    pub packets: OwnedRing,
    /// The fragment ring.
    pub fragments: OwnedRing,
    packet_extensions: Vec<Registered>,
    fragment_extensions: Vec<Registered>,
    collection: Box<NetRingCollection>,
}

fn lay_out<E: Element>(
    specs: &[ExtensionSpec],
    rng: &mut Rng,
) -> Result<(u16, Vec<Registered>), RingError> {
    let mut ordered = specs.to_vec();
    ElementLayout::framework_order(&mut ordered);
    let mut layout = ElementLayout::for_element::<E>();
    let mut placed = Vec::with_capacity(ordered.len());
    let too_big = RingError::BadStride {
        stride: u16::MAX,
        element_size: core::mem::size_of::<E>(),
        element_align: core::mem::align_of::<E>(),
    };
    for spec in ordered {
        let padding = rng.below(9) as usize;
        let offset = layout.place_spec(&spec, padding).ok_or(too_big)?;
        placed.push(Registered { spec, offset });
    }
    let stride = layout.stride(rng.below(3) as usize).ok_or(too_big)?;
    Ok((stride, placed))
}

fn name_matches(registered: &[u16], asked: &[u16]) -> bool {
    let until_nul = |s: &[u16]| s.iter().position(|&c| c == 0).map_or(s.len(), |n| n);
    registered[..until_nul(registered)] == asked[..until_nul(asked)]
}

impl QueueRings {
    /// Allocates a queue's rings (`packet_len` and `fragment_len` powers of two) with the
    /// extensions the driver registered. The legacy LSO packet extension is always added, as the
    /// framework does.
    pub fn new(
        packet_len: u32,
        fragment_len: u32,
        packet_specs: &[ExtensionSpec],
        fragment_specs: &[ExtensionSpec],
        rng: &mut Rng,
    ) -> Result<Self, RingError> {
        let mut with_lso = packet_specs.to_vec();
        if !with_lso.iter().any(|s| s.name == names::LSO_NAME) {
            with_lso.push(names::LSO);
        }
        let (packet_stride, packet_extensions) = lay_out::<NetPacket>(&with_lso, rng)?;
        let (fragment_stride, fragment_extensions) = lay_out::<NetFragment>(fragment_specs, rng)?;
        let mut packets = OwnedRing::new(packet_len, packet_stride)?;
        let mut fragments = OwnedRing::new(fragment_len, fragment_stride)?;
        let collection = Box::new(NetRingCollection {
            rings: [packets.as_ptr(), fragments.as_ptr(), core::ptr::null_mut()],
        });
        Ok(Self {
            packets,
            fragments,
            packet_extensions,
            fragment_extensions,
            collection,
        })
    }

    /// The `NET_RING_COLLECTION*` the driver is given (stable for the queue's life).
    pub fn collection(&self) -> *const NetRingCollection {
        &raw const *self.collection
    }

    /// Where an extension landed, if it is registered.
    pub fn registered(&self, spec: &ExtensionSpec) -> Option<Registered> {
        self.find(spec.name, spec.version, spec.ty)
    }

    fn find(&self, name: &[u16], version: u32, ty: ExtensionType) -> Option<Registered> {
        let list = match ty {
            ExtensionType::Packet => &self.packet_extensions,
            ExtensionType::Fragment => &self.fragment_extensions,
            ExtensionType::Buffer => return None,
        };
        list.iter()
            .find(|r| name_matches(r.spec.name, name) && r.spec.version >= version)
            .copied()
    }

    /// `NetTx/RxQueueGetExtension`: the handle for an extension, zeroed when it is not registered.
    pub fn get_extension(&mut self, name: &[u16], version: u32, ty: ExtensionType) -> NetExtension {
        match (self.find(name, version, ty), ty) {
            (Some(r), ExtensionType::Packet) => self.packets.extension(r.offset, true),
            (Some(r), ExtensionType::Fragment) => self.fragments.extension(r.offset, true),
            _ => NetExtension::zeroed(),
        }
    }

    /// [`get_extension`](Self::get_extension) for a spec.
    pub fn query(&mut self, spec: &ExtensionSpec) -> NetExtension {
        self.get_extension(spec.name, spec.version, spec.ty)
    }
}

#[cfg(test)]
mod tests {
    use netring::{
        Extension, NetFragmentLogicalAddress, NetPacketChecksum, NetPacketGso, NetPacketLso,
        NetPacketRsc,
    };

    use super::*;

    const PACKET: [ExtensionSpec; 4] =
        [names::CHECKSUM, names::GSO, names::IEEE8021Q, names::RSC_V2];
    const FRAGMENT: [ExtensionSpec; 2] = [names::VIRTUAL_ADDRESS, names::LOGICAL_ADDRESS];

    #[test]
    fn queries_match_name_version_and_type() {
        let mut q = QueueRings::new(64, 128, &PACKET, &FRAGMENT, &mut Rng::new(1)).unwrap();
        let p = q.query(&names::GSO);
        assert!(p.enabled());
        assert_eq!(p.stride(), usize::from(q.packets.stride()));
        // Version 1 of RSC is satisfied by the registered version 2, not the other way round.
        assert!(q.query(&names::RSC).enabled());
        assert!(q.registered(&names::RSC_V2).is_some());
        // Not registered: hash. Wrong type: a packet name asked as a fragment extension.
        assert!(!q.query(&names::HASH).enabled());
        assert!(
            !q.get_extension(names::GSO_NAME, 1, ExtensionType::Fragment)
                .enabled()
        );
        assert!(
            !q.get_extension(names::GSO_NAME, 2, ExtensionType::Packet)
                .enabled()
        );
        // The framework's legacy LSO registration.
        assert!(q.query(&names::LSO).enabled());
        // A name without its NUL still matches (the comparison stops at the terminator).
        let bare = &names::GSO_NAME[..names::GSO_NAME.len() - 1];
        assert!(q.get_extension(bare, 1, ExtensionType::Packet).enabled());
        assert!(
            !q.get_extension(&bare[..5], 1, ExtensionType::Packet)
                .enabled()
        );
    }

    #[test]
    fn handles_validate_against_the_driver_view_and_do_not_overlap() {
        for seed in 0..200 {
            let mut q = QueueRings::new(16, 32, &PACKET, &FRAGMENT, &mut Rng::new(seed)).unwrap();
            let (csum, gso, lso, rsc) = (
                q.query(&names::CHECKSUM),
                q.query(&names::GSO),
                q.query(&names::LSO),
                q.query(&names::RSC_V2),
            );
            let la = q.query(&names::LOGICAL_ADDRESS);
            let mut ranges = Vec::new();
            {
                let ring = q.packets.view::<NetPacket>().unwrap();
                let h = Extension::<NetPacketChecksum>::new(&csum, &ring).unwrap();
                ranges.push(h.offset()..h.offset() + 1);
                let h = Extension::<NetPacketGso>::new(&gso, &ring).unwrap();
                ranges.push(h.offset()..h.offset() + 4);
                let h = Extension::<NetPacketLso>::new(&lso, &ring).unwrap();
                ranges.push(h.offset()..h.offset() + 4);
                let h = Extension::<NetPacketRsc>::new(&rsc, &ring).unwrap();
                ranges.push(h.offset()..h.offset() + 4);
            }
            for (i, a) in ranges.iter().enumerate() {
                assert!(a.start >= 12 && a.end <= usize::from(q.packets.stride()));
                for b in &ranges[i + 1..] {
                    assert!(
                        a.end <= b.start || b.end <= a.start,
                        "seed {seed}: {a:?} overlaps {b:?}"
                    );
                }
            }
            let ring = q.fragments.view::<NetFragment>().unwrap();
            let h = Extension::<NetFragmentLogicalAddress>::new(&la, &ring).unwrap();
            assert_eq!(h.offset() % 8, 0);
        }
    }

    #[test]
    fn layouts_really_vary_between_seeds() {
        let mut strides = std::collections::BTreeSet::new();
        let mut offsets = std::collections::BTreeSet::new();
        for seed in 0..64 {
            let q = QueueRings::new(8, 8, &PACKET, &FRAGMENT, &mut Rng::new(seed)).unwrap();
            strides.insert(q.packets.stride());
            offsets.insert(q.registered(&names::CHECKSUM).unwrap().offset);
        }
        assert!(strides.len() >= 4, "strides {strides:?}");
        assert!(offsets.len() >= 8, "offsets {offsets:?}");
    }

    #[test]
    fn collection_points_at_the_rings() {
        let mut q = QueueRings::new(8, 16, &PACKET, &FRAGMENT, &mut Rng::new(9)).unwrap();
        let c = q.collection();
        // SAFETY: the collection lives in a Box owned by q, which is alive.
        let c = unsafe { *c };
        assert_eq!(c.packet_ring(), q.packets.as_ptr());
        assert_eq!(c.fragment_ring(), q.fragments.as_ptr());
        assert!(c.data_buffer_ring().is_null());
    }
}
