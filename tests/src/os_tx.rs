//! The OS side of a NetAdapterCx TX queue, as the translator behaves (`reference/netadaptercx.md`
//! §2.3): frames posted as packets with contiguous fragments at `EndIndex` (one slot always left
//! free against `OSReserved0`), extensions filled, completed packets reclaimed from
//! `[OSReserved0, BeginIndex)` and zeroed — and after every driver callback, the verifier's checks:
//! the header bytes the driver must not touch, no element of the driver's range changed except
//! Scratch bits, `BeginIndex` moved forward only and never past `EndIndex`.

use netring::{
    Extension, FragmentRing, NetFragment, NetFragmentLogicalAddress, NetFragmentVirtualAddress,
    NetPacket, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q, PacketRing, names,
};
use virtio::hal::{Dma, DmaRegion};
use virtionet::txqueue::TxExtensions;

use crate::dma::DmaArena;
use crate::rings::QueueRings;
use crate::rng::Rng;

/// A frame the OS sent, with its metadata.
#[derive(Debug, Clone, Default)]
pub struct TxFrame {
    /// The frame bytes.
    pub bytes: Vec<u8>,
    /// How to split it into fragments (lengths; the remainder goes into a last fragment).
    pub split: Vec<usize>,
    /// Checksum extension.
    pub checksum: NetPacketChecksum,
    /// GSO extension.
    pub gso: NetPacketGso,
    /// 802.1Q extension.
    pub ieee8021q: NetPacketIeee8021q,
    /// Post it with Ignore set and no fragments.
    pub ignore: bool,
}

/// A TX queue's rings with the OS's behaviour and the verifier's checks.
pub struct OsTx {
    /// The rings.
    pub rings: QueueRings,
    buffers: Vec<Option<DmaRegion>>,
    /// Frames in the OS's private memory (see [`OsTx::set_private`]): the bytes, and the
    /// logical address given for them.
    private: Option<Vec<Option<PrivateFrame>>>,
    /// The next private logical address.
    private_next: u64,
    /// Frames in posting order that the driver has not returned yet.
    pub outstanding: std::collections::VecDeque<u32>,
    /// Packets returned to the OS so far.
    pub returned: u64,
}

/// A frame in the OS's private memory: its bytes and the logical address given for them.
type PrivateFrame = (Box<[u8]>, u64);

/// Where the logical addresses of private frames start: far above any guest RAM or MMIO a
/// harness machine has, so a device that is handed one finds nothing there.
pub const PRIVATE_LOGICAL_BASE: u64 = 0x7f00_0000_0000;

fn violation(rule: &str, detail: String) -> ! {
    panic!("NetAdapterCx verifier: {rule}: {detail}");
}

impl OsTx {
    /// Rings of `packets` and `fragments` elements with the TX extensions, randomly laid out.
    pub fn new(packets: u32, fragments: u32, rng: &mut Rng) -> Self {
        Self::with_extensions(
            packets,
            fragments,
            &[names::CHECKSUM, names::GSO, names::IEEE8021Q],
            &[names::VIRTUAL_ADDRESS, names::LOGICAL_ADDRESS],
            rng,
        )
    }

    /// Rings with the extensions the framework registered for this queue (the glue host derives
    /// them from what the driver declared); absent extensions are not filled in.
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
            buffers: (0..packets).map(|_| None).collect(),
            private: None,
            private_next: PRIVATE_LOGICAL_BASE,
            outstanding: Default::default(),
            returned: 0,
        }
    }

    /// Frames posted from now on live in the OS's private memory, as in a confidential VM
    /// (SEV-SNP, TDX): the host (QEMU) cannot read it. Their fragments' virtual addresses point
    /// into process memory outside guest RAM, and their logical addresses into an unmapped range
    /// from [`PRIVATE_LOGICAL_BASE`], so a driver that hands one to the device breaks the
    /// device's DMA (QEMU marks the device broken) instead of quietly working.
    pub fn set_private(&mut self, on: bool) {
        self.private = on.then(|| (0..self.rings.packets.len()).map(|_| None).collect());
    }

    /// The extension handles a driver would get at queue creation, validated against the rings.
    pub fn extensions(&mut self) -> TxExtensions {
        let q = &mut self.rings;
        let (c, g, v) = (
            q.query(&names::CHECKSUM),
            q.query(&names::GSO),
            q.query(&names::IEEE8021Q),
        );
        let (va, la) = (
            q.query(&names::VIRTUAL_ADDRESS),
            q.query(&names::LOGICAL_ADDRESS),
        );
        let p = q.packets.view::<NetPacket>().expect("packet view");
        let (checksum, gso, ieee8021q) = (
            Extension::new(&c, &p).expect("checksum"),
            Extension::new(&g, &p).expect("gso"),
            Extension::new(&v, &p).expect("8021q"),
        );
        let f = q.fragments.view::<NetFragment>().expect("fragment view");
        TxExtensions {
            checksum,
            gso,
            ieee8021q,
            virtual_address: Extension::<NetFragmentVirtualAddress>::new(&va, &f).expect("va"),
            logical_address: Extension::<NetFragmentLogicalAddress>::new(&la, &f).expect("la"),
        }
    }

    fn room(&self) -> (u32, u32) {
        let p = &self.rings.packets;
        let f = &self.rings.fragments;
        let pr = p.os_reserved0().wrapping_sub(p.end_index()).wrapping_sub(1) & (p.len() - 1);
        let fr = f.begin_index().wrapping_sub(f.end_index()).wrapping_sub(1) & (f.len() - 1);
        (pr, fr)
    }

    /// Posts a frame if there is room; returns whether it was posted.
    pub fn post(&mut self, arena: &DmaArena, frame: &TxFrame) -> bool {
        let mut lens: Vec<usize> = Vec::new();
        if !frame.ignore {
            let mut left = frame.bytes.len();
            for &s in &frame.split {
                let s = s.min(left);
                if s > 0 {
                    lens.push(s);
                    left -= s;
                }
            }
            if left > 0 {
                lens.push(left);
            }
        }
        let (proom, froom) = self.room();
        if proom == 0 || (froom as usize) < lens.len() {
            return false;
        }
        let p_idx = self.rings.packets.end_index();
        let f_first = self.rings.fragments.end_index();
        let fmask = self.rings.fragments.len() - 1;
        // The frame's buffer in DMA memory (one region; fragments are pieces of it).
        let private = match &self.private {
            Some(_) if !frame.bytes.is_empty() => {
                let la = self.private_next;
                self.private_next += (frame.bytes.len() as u64).next_multiple_of(64);
                Some((frame.bytes.clone().into_boxed_slice(), la))
            }
            _ => None,
        };
        let region = if frame.bytes.is_empty() || private.is_some() {
            None
        } else {
            let r = arena
                .alloc(frame.bytes.len(), 8)
                .expect("arena space for a frame");
            assert!(arena.write(r.device(), &frame.bytes));
            Some(r)
        };
        let off = |s| self.rings.registered(s).map(|r| r.offset);
        let (va_off, la_off) = (off(&names::VIRTUAL_ADDRESS), off(&names::LOGICAL_ADDRESS));
        let (c_off, g_off, q_off) = (
            off(&names::CHECKSUM),
            off(&names::GSO),
            off(&names::IEEE8021Q),
        );
        let mut at = 0usize;
        for (k, &len) in lens.iter().enumerate() {
            let i = (f_first + k as u32) & fmask;
            let (base_va, base_la) = match (&private, &region) {
                (Some((b, la)), _) => (b.as_ptr() as usize as u64, *la),
                (None, Some(r)) => (r.cpu().as_ptr() as usize as u64, r.device()),
                (None, None) => unreachable!("a fragment without a buffer"),
            };
            let mut frag = NetFragment::default();
            frag.set_valid_length(len as u32).unwrap();
            frag.set_capacity(len as u32).unwrap();
            let e = self.rings.fragments.element_bytes_mut(i).unwrap();
            e.fill(0);
            e[..8].copy_from_slice(&frag.to_bits().to_le_bytes());
            let va = base_va + at as u64;
            if let Some(o) = va_off {
                e[o..o + 8].copy_from_slice(&va.to_le_bytes());
            }
            if let Some(o) = la_off {
                e[o..o + 8].copy_from_slice(&(base_la + at as u64).to_le_bytes());
            }
            at += len;
        }
        let mut pk = NetPacket::new(if lens.is_empty() { 0 } else { f_first }, lens.len() as u16);
        pk.set_ignore(frame.ignore);
        if let Ok(l) = offload::Layout::parse(&frame.bytes) {
            pk.layout = l.to_net();
        }
        let e = self.rings.packets.element_bytes_mut(p_idx).unwrap();
        e.fill(0);
        e[..4].copy_from_slice(&pk.fragment_index.to_le_bytes());
        e[4..6].copy_from_slice(&pk.fragment_count.to_le_bytes());
        e[6..11].copy_from_slice(&pk.layout.to_bytes());
        e[11] = pk.flags_raw();
        if let Some(o) = c_off {
            e[o] = frame.checksum.to_bits();
        }
        if let Some(o) = g_off {
            e[o..o + 4].copy_from_slice(&frame.gso.to_bits().to_le_bytes());
        }
        let q = frame.ieee8021q;
        let tag = u16::from(q.priority_code_point()) | (q.vlan_identifier() << 3);
        if let Some(o) = q_off {
            e[o..o + 2].copy_from_slice(&tag.to_le_bytes());
            e[o + 2] = q.tx_tagging_raw();
        }
        self.buffers[p_idx as usize] = region;
        if let Some(slots) = &mut self.private {
            slots[p_idx as usize] = private;
        }
        self.rings
            .packets
            .set_end_index((p_idx + 1) & (self.rings.packets.len() - 1));
        self.rings
            .fragments
            .set_end_index((f_first + lens.len() as u32) & fmask);
        self.outstanding.push_back(p_idx);
        true
    }

    /// Frame buffers the OS still holds (posted and not yet completed).
    pub fn held_buffers(&self) -> usize {
        self.buffers.iter().filter(|b| b.is_some()).count()
            + self
                .private
                .iter()
                .flatten()
                .filter(|b| b.is_some())
                .count()
    }

    /// Device address ranges `[start, end)` of the frame buffers the OS still holds — the memory
    /// its fragments' logical addresses point into.
    pub fn held_ranges(&self) -> Vec<(u64, u64)> {
        self.buffers
            .iter()
            .flatten()
            .map(|r| (r.device(), r.device() + r.len() as u64))
            .chain(
                self.private
                    .iter()
                    .flatten()
                    .flatten()
                    .map(|(b, la)| (*la, la + b.len() as u64)),
            )
            .collect()
    }

    /// Whether the driver owns packets (NetAdapterCx calls TX Advance only then).
    pub fn driver_owns_packets(&self) -> bool {
        self.rings.packets.begin_index() != self.rings.packets.end_index()
    }

    /// Runs a driver callback with the verifier's checks around it.
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
        let (pb, pe, fb) = (
            q.packets.begin_index(),
            q.packets.end_index(),
            q.fragments.begin_index(),
        );
        let snapshot = |r: &netring::memory::OwnedRing, from: u32| -> Vec<Vec<u8>> {
            let n = r.end_index().wrapping_sub(from) & (r.len() - 1);
            (0..n)
                .map(|k| {
                    r.element_bytes((from + k) & (r.len() - 1))
                        .unwrap()
                        .to_vec()
                })
                .collect()
        };
        let (p_before, f_before) = (snapshot(&q.packets, pb), snapshot(&q.fragments, fb));
        let out = f(q);
        if q.packets.os_header_bytes() != ph || q.fragments.os_header_bytes() != fh {
            violation(
                "InvalidRingHeader",
                "driver wrote an OS-owned NET_RING field".into(),
            );
        }
        let moved = q.packets.begin_index().wrapping_sub(pb) & (q.packets.len() - 1);
        if moved > pe.wrapping_sub(pb) & (q.packets.len() - 1) {
            violation(
                "InvalidRingBeginIndex",
                format!(
                    "BeginIndex {pb} -> {} past EndIndex {pe}",
                    q.packets.begin_index()
                ),
            );
        }
        for (k, before) in p_before.iter().enumerate() {
            let after = q
                .packets
                .element_bytes((pb + k as u32) & (q.packets.len() - 1))
                .unwrap();
            let mut a = after.to_vec();
            let mut b = before.clone();
            a[11] &= !2; // Scratch
            b[11] &= !2;
            if a != b {
                violation(
                    "TxPacketModified",
                    format!("packet {} changed", pb + k as u32),
                );
            }
        }
        for (k, before) in f_before.iter().enumerate() {
            let after = q
                .fragments
                .element_bytes((fb + k as u32) & (q.fragments.len() - 1))
                .unwrap();
            let mut a = after.to_vec();
            let mut b = before.clone();
            a[7] &= !0x40; // Scratch bit 62
            b[7] &= !0x40;
            if a != b {
                violation(
                    "TxFragmentModified",
                    format!("fragment {} changed", fb + k as u32),
                );
            }
        }
        out
    }

    /// The OS's post-callback work: packets in `[OSReserved0, BeginIndex)` are completed, their
    /// buffers freed and the elements zeroed. Returns the packet indices completed, in order.
    pub fn reclaim(&mut self, arena: &DmaArena) -> Vec<u32> {
        let q = &mut self.rings;
        let mask = q.packets.len() - 1;
        let mut done = Vec::new();
        let mut c = q.packets.os_reserved0();
        while c != q.packets.begin_index() {
            let front = self.outstanding.pop_front();
            if front != Some(c) {
                violation(
                    "TxCompletionOrder",
                    format!("returned {c}, expected {front:?}"),
                );
            }
            if let Some(r) = self.buffers[c as usize].take() {
                arena.free(r);
            }
            if let Some(slots) = &mut self.private {
                slots[c as usize] = None;
            }
            q.packets.element_bytes_mut(c).unwrap().fill(0);
            done.push(c);
            c = (c + 1) & mask;
        }
        q.packets.set_os_reserved0(c);
        self.returned += done.len() as u64;
        done
    }
}
