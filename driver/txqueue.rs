//! The transmit queue engine: what `EvtPacketQueueAdvance` of a NetAdapterCx TX queue does.
//!
//! Post: every packet of `[NextIndex, EndIndex)` becomes one virtqueue chain — a per-packet
//! header slot in driver DMA memory (the virtio-net header, then, when they must change, a copy
//! of the packet's headers), followed by the OS fragments by logical address, without a copy.
//! The headers are copied only when they must be rewritten (checksum/LSO fix-ups, 802.1Q tag
//! insertion); frames under 60 bytes are copied whole and padded. Ignored packets are skipped.
//! One kick at most per Advance.
//!
//! Two direct paths take the common packets without the general path's scratch: a packet with
//! nothing to rewrite has its chain written straight from the fragment ring (header slot, then
//! each fragment by logical address), and a checksum or LSO request the device does, with its
//! headers in the first fragment, has at most 128 header bytes copied to private memory, parsed
//! once and rewritten into its slot. Anything else — short frames, tags, headers across
//! fragments or deeper than that, offloads the device cannot do, any error — goes the general
//! way, which judges and counts it.
//!
//! Drain: completions arrive in any order; they are recorded per packet and handed back in ring
//! order, advancing the fragment ring's `BeginIndex` past each completed packet's fragments.
//!
//! Confidential mode ([`TxSettings::confidential`]): no OS address reaches the device. Each
//! packet is copied — the virtio-net header, the headers as rewritten in private memory (on the
//! stack, never in memory the device can write), then the rest of the frame straight from the
//! OS's fragments — into one driver-owned shared buffer ([`crate::txbounce`]) posted as a
//! one-descriptor chain. With no buffer free, the packet stays in the ring until one is. The
//! packet is completed when the device returns the chain, as in direct mode, not as soon as it
//! is copied: "every packet is back with the OS" must keep meaning "the virtqueue is empty",
//! which NetAdapterCx's stop (it waits for every packet), the Cancel grace period and its stall
//! detection rely on, and without which [`TxQueue::release`] could not hand the virtqueue back
//! without a device reset. Holding the OS's packet costs no shared memory.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::vec::Vec;

use netring::{
    Bound, Extension, ExtensionError, FragmentRange, FragmentRing, NetFragmentLogicalAddress,
    NetFragmentVirtualAddress, NetPacket, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q,
    PacketRing, RingError, RingIterator,
};
use offload::tx::{
    DeviceTx, TxAction, TxRequest, insert_vlan, padding, prepare, prepare_parsed, vlan_tag_for,
};
use offload::{Layout, OffloadError};
use virtio::Features;
use virtio::hal::{Dma, DmaRegion};
use virtio::net::NetHeader;
use virtio::queue::{QueueError, Segment, VirtQueue};

use crate::notify::NotifyGate;
use crate::os_memory::{FrameFragment, copy_out};
pub use crate::rxqueue::Rejected;
use crate::stall::{StallGuard, StallPolicy};
use crate::stats::{TxStats, add, bump};
use crate::txbounce::{BouncePool, BounceStats, Buffer, MAX_LARGE, MAX_SMALL, TakeError};

/// Bytes of driver DMA memory per packet: the virtio-net header plus rewritten headers, or a
/// whole short frame.
pub const HDR_SLOT: usize = 256;
/// Most header bytes copied for rewriting (room for an inserted tag inside the slot).
pub const COPY_MAX: usize = HDR_SLOT - NetHeader::SIZE - 4;
/// Longest chain: the header slot plus OS fragments. The glue declares
/// `MaximumNumberOfFragments = MAX_SEGMENTS − 1` so the OS bounces anything longer.
pub const MAX_SEGMENTS: usize = 64;
const _: () = assert!(
    MAX_SEGMENTS.is_power_of_two(),
    "the plain path masks with it"
);

/// What the user allowed (INF keywords) on top of what the device can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxSettings {
    /// Insert 802.1p priority tags (`*PriorityVLANTag` 1 or 3).
    pub insert_priority: bool,
    /// Insert 802.1Q VLAN tags (`*PriorityVLANTag` 2 or 3).
    pub insert_vlan: bool,
    /// The adapter's VLAN id (`VlanID`), 0 for none.
    pub vlan_id: u16,
    /// Confidential mode (`Capabilities::confidential`): copy every frame into the queue's
    /// shared buffers instead of handing the OS's fragments to the device.
    pub confidential: bool,
}

/// The TX queue's extension handles, validated once at queue creation.
#[derive(Debug, Clone, Copy)]
pub struct TxExtensions {
    /// `ms_packet_checksum`.
    pub checksum: Extension<NetPacketChecksum>,
    /// `ms_packet_gso`.
    pub gso: Extension<NetPacketGso>,
    /// `ms_packet_ieee8021q`.
    pub ieee8021q: Extension<NetPacketIeee8021q>,
    /// `ms_fragment_logicaladdress`.
    pub logical_address: Extension<NetFragmentLogicalAddress>,
    /// `ms_fragment_virtualaddress`.
    pub virtual_address: Extension<NetFragmentVirtualAddress>,
}

/// Why the queue cannot be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxCreateError {
    /// DMA memory for the header slots could not be allocated.
    OutOfMemory,
    /// The packet ring is empty or too large.
    BadRing,
}

/// A failure that stops the queue until the adapter resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TxFault {
    /// The OS's ring broke the contract.
    Ring(RingError),
    /// The device broke the virtio contract.
    Device(QueueError),
    /// A required extension (logical or virtual address) is missing or does not fit the ring.
    Extension(ExtensionError),
}

/// Most header bytes the offload path copies and parses (Ethernet, a tag, IPv4 or IPv6 with
/// options or a few extension headers, TCP with options); deeper headers take the general path.
const OFFLOAD_HEAD: usize = 128;
const _: () = assert!(
    NetHeader::SIZE + OFFLOAD_HEAD <= HDR_SLOT,
    "the copy fits the slot"
);

/// A packet's fragments as [`TxQueue::gather_direct`] found them.
#[derive(Clone, Copy)]
struct Gathered {
    /// `plain[1..n]` holds them.
    n: usize,
    /// Bytes of the frame.
    total: u32,
    /// CPU address and length of the first fragment with data (at least 6 bytes).
    va: *const u8,
    first_len: u32,
    /// Fragment index past the packet's fragments.
    end: u32,
}

/// The packet extensions, bound to this Advance's packet ring (`None`: not enabled).
#[derive(Clone, Copy)]
struct PacketExtensions<'a> {
    checksum: Option<Bound<'a, NetPacketChecksum>>,
    gso: Option<Bound<'a, NetPacketGso>>,
    tags: Option<Bound<'a, NetPacketIeee8021q>>,
}

impl PacketExtensions<'_> {
    /// Packet `idx`'s checksum and GSO requests (zero when the extension is off) and tag.
    #[inline(always)]
    fn read(&self, idx: u32) -> (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>) {
        (
            self.checksum.map(|b| b.read(idx)).unwrap_or_default(),
            self.gso.map(|b| b.read(idx)).unwrap_or_default(),
            self.tags.map(|b| b.read(idx)),
        )
    }
}

/// Whether a packet's requests leave nothing to rewrite: no checksum, no segmentation, no tag.
#[inline(always)]
fn is_plain(
    (checksum, gso, tag): (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>),
) -> bool {
    checksum.to_bits() == 0 && gso.mss() == 0 && tag.is_none_or(|t| t.tx_tagging_raw() == 0)
}

/// Whether a packet asks for a checksum or segmentation offload and no tag.
#[inline(always)]
fn is_offload(
    (checksum, gso, tag): (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>),
) -> bool {
    (checksum.to_bits() != 0 || gso.mss() != 0) && tag.is_none_or(|t| t.tx_tagging_raw() == 0)
}

/// What [`TxQueue::post_run`] did.
#[derive(Default)]
struct PlainRun {
    /// Packets posted.
    posted: u32,
    /// Fragment index past the last one's fragments.
    end: Option<u32>,
    /// The virtqueue is full: stop posting.
    full: bool,
}

/// The driver-owned part of the fragment ring, `[BeginIndex, EndIndex)`, read once per Advance.
#[derive(Clone, Copy)]
struct OwnedSpan {
    begin: u32,
    count: u32,
    mask: u32,
    len: u32,
}

/// The fragment address extensions, bound to this Advance's fragment ring.
#[derive(Clone, Copy)]
struct Addresses<'a> {
    la: Bound<'a, NetFragmentLogicalAddress>,
    va: Bound<'a, NetFragmentVirtualAddress>,
}

/// What an Advance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxAdvance {
    /// Packets handed to the device.
    pub posted: u32,
    /// Packets returned to the OS.
    pub completed: u32,
    /// Whether the device was notified.
    pub kicked: bool,
}

enum Posted {
    /// A chain is in flight for the packet.
    Chain,
    /// The packet needs no chain (ignored or dropped): complete it in order.
    Done,
    /// The virtqueue is full: try again on a later Advance.
    Full,
    /// Confidential mode: every shared buffer of the size needed is with the device.
    NoBuffer,
}

/// A NetAdapterCx transmit queue over a virtio-net transmit virtqueue.
pub struct TxQueue {
    vq: VirtQueue,
    /// The per-packet header slots (none in confidential mode: the header goes into the shared
    /// buffer with the frame).
    slots: Option<DmaRegion>,
    /// Confidential mode's shared buffers.
    bounce: Option<BouncePool>,
    bounce_stats: BounceStats,
    packet_len: u32,
    /// Chain id → packet index.
    owner: Vec<u32>,
    /// Confidential mode: chain id → its shared buffer's handle (empty in direct mode).
    chain_buffer: Vec<u32>,
    /// Packet index → completed (or needs no completion) and not yet returned.
    done: Vec<bool>,
    /// Packet index → fragment index just past its fragments (`u32::MAX`: none), recorded at
    /// post time so the drain does not recompute it.
    fragment_end: Vec<u32>,
    dev: DeviceTx,
    settings: TxSettings,
    ext: TxExtensions,
    stats: TxStats,
    /// The device will complete nothing more (it was reset after a fault, or is gone): every
    /// packet goes straight back to the OS, and the device's rings are not touched.
    flushing: bool,
    /// Repeats a kick the device may have missed.
    stall: StallGuard,
    /// Scratch space reused by every packet (capacity MAX_SEGMENTS, never grown), so the
    /// datapath neither allocates nor zeroes per packet.
    frags: Vec<FrameFragment>,
    segs: Vec<Segment>,
    /// The plain path's chain, written in place.
    plain: [Segment; MAX_SEGMENTS],
}

impl core::fmt::Debug for TxQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TxQueue")
            .field("packet_len", &self.packet_len)
            .field("in_flight", &self.vq.in_flight())
            .field("stats", &self.stats)
            .finish()
    }
}

impl TxQueue {
    /// Creates the engine for a packet ring of `packet_len` elements over `vq` (already set up
    /// with the device), allocating one header slot per packet. On failure `vq` comes back with
    /// the error, so the pair can have a queue again.
    #[allow(
        clippy::result_large_err,
        reason = "the virtqueue comes back by value: boxing it would allocate on the out-of-memory path"
    )]
    pub fn new(
        dma: &impl Dma,
        vq: VirtQueue,
        packet_len: u32,
        features: Features,
        settings: TxSettings,
        ext: TxExtensions,
    ) -> Result<Self, Rejected<TxCreateError>> {
        if packet_len == 0 || packet_len > 1 << 16 {
            return Err(Rejected {
                error: TxCreateError::BadRing,
                vq,
            });
        }
        // The engine's tables first (fallibly: a failed infallible allocation is a bugcheck),
        // then the header slots or the shared buffers, so a failure leaves no DMA memory to
        // give back.
        let confidential = settings.confidential;
        let tables = (|| {
            Ok::<_, crate::fallible::OutOfMemory>((
                crate::fallible::filled(0, usize::from(vq.size()))?,
                crate::fallible::filled(false, packet_len as usize)?,
                crate::fallible::filled(u32::MAX, packet_len as usize)?,
                crate::fallible::with_capacity(MAX_SEGMENTS)?,
                crate::fallible::with_capacity(MAX_SEGMENTS)?,
                if confidential {
                    crate::fallible::filled(u32::MAX, usize::from(vq.size()))?
                } else {
                    Vec::new()
                },
            ))
        })();
        let Ok((owner, done, fragment_end, frags, segs, chain_buffer)) = tables else {
            return Err(Rejected {
                error: TxCreateError::OutOfMemory,
                vq,
            });
        };
        let (slots, bounce) = if confidential {
            // One buffer per descriptor at most: a bounced chain is one descriptor.
            let small = vq.size().min(MAX_SMALL).min(packet_len.min(0xffff) as u16);
            (None, BouncePool::new(dma, small, MAX_LARGE.min(small)))
        } else {
            let bytes = (packet_len as usize).checked_mul(HDR_SLOT);
            (bytes.and_then(|n| dma.alloc(n, 64)), None)
        };
        if slots.is_none() && bounce.is_none() {
            return Err(Rejected {
                error: TxCreateError::OutOfMemory,
                vq,
            });
        }
        Ok(Self {
            owner,
            chain_buffer,
            done,
            fragment_end,
            vq,
            slots,
            bounce,
            bounce_stats: BounceStats::default(),
            packet_len,
            dev: DeviceTx::from_features(features),
            settings,
            ext,
            stats: TxStats::default(),
            flushing: false,
            stall: StallGuard::new(StallPolicy::tx(features)),
            frags,
            segs,
            plain: [Segment { addr: 0, len: 0 }; MAX_SEGMENTS],
        })
    }

    /// Frees the DMA memory (after the device stopped using the queue).
    pub fn free(self, dma: &impl Dma) {
        let Self {
            vq, slots, bounce, ..
        } = self;
        vq.free(dma);
        free_buffers(dma, slots, bounce);
    }

    /// Frees the header slots (or shared buffers) and hands the virtqueue back (to the adapter,
    /// for the next queue NetAdapterCx creates on this pair). With packets still in flight (a
    /// stalled device) the device may still read the rings, header slots and shared buffers:
    /// nothing is freed — the memory is left to the device, and dies with the DMA enabler — and
    /// `None` says the device needs a reset.
    pub fn release(self, dma: &impl Dma) -> Option<VirtQueue> {
        if self.vq.in_flight() != 0 {
            core::mem::forget(self);
            return None;
        }
        let Self {
            vq, slots, bounce, ..
        } = self;
        free_buffers(dma, slots, bounce);
        Some(vq)
    }

    /// The virtqueue (for its addresses and notifications).
    pub fn virtqueue(&self) -> &VirtQueue {
        &self.vq
    }

    /// Counters.
    pub const fn stats(&self) -> &TxStats {
        &self.stats
    }

    /// Whether the queue runs in confidential mode.
    pub const fn is_confidential(&self) -> bool {
        self.bounce.is_some()
    }

    /// Confidential mode's counters (zero in direct mode).
    pub const fn bounce_stats(&self) -> &BounceStats {
        &self.bounce_stats
    }

    /// Confidential mode's shared buffers: (bytes reserved, free small, free large).
    pub fn bounce_buffers(&self) -> Option<(usize, usize, usize)> {
        self.bounce.as_ref().map(|b| {
            let (s, l) = b.available();
            (b.reserved_bytes(), s, l)
        })
    }

    /// Device address of packet `idx`'s header slot (direct mode).
    fn slot_device(&self, idx: u32) -> Option<u64> {
        let s = self.slots.as_ref()?;
        // idx < packet ring size: the slot is inside the allocation (its size checked in `new`).
        Some(
            s.device()
                .wrapping_add((idx as usize).wrapping_mul(HDR_SLOT) as u64),
        )
    }

    /// `EvtPacketQueueAdvance`: posts new packets, reaps completions, returns finished packets in
    /// ring order.
    // A NetAdapterCx callback is reached through a function pointer; keep it out of line in
    // benchmarks too, so what is measured is what runs.
    #[inline(never)]
    pub fn advance(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<TxAdvance, TxFault> {
        let mut out = TxAdvance::default();
        if packets.len() != self.packet_len {
            return Err(TxFault::Ring(RingError::BadElementCount {
                number_of_elements: packets.len(),
            }));
        }
        if self.flushing {
            self.take_all(packets, fragments)?;
            return self.drain(packets, fragments, out);
        }
        // Extensions are checked once per Advance, then read by masked index.
        let checksum = self.ext.checksum.bind(packets).ok();
        let gso = self.ext.gso.bind(packets).ok();
        let tags = self.ext.ieee8021q.bind(packets).ok();
        let addrs = Addresses {
            la: self
                .ext
                .logical_address
                .bind(fragments)
                .map_err(TxFault::Extension)?,
            va: self
                .ext
                .virtual_address
                .bind(fragments)
                .map_err(TxFault::Extension)?,
        };
        // Post [NextIndex, EndIndex).
        let mut reaped = 0u32;
        let mut reaped_for_buffers = false;
        let mut fragment_next = None;
        // The driver-owned fragments, as the OS left them for this Advance (the post changes
        // neither end: NextIndex is set after it).
        let owned = OwnedSpan {
            begin: fragments.begin_index(),
            count: fragments.owned_count(),
            mask: fragments.mask(),
            len: fragments.len(),
        };
        // Packets with nothing to rewrite take the plain path (`post_plain`); a tag the queue
        // inserts on every packet rules it out.
        let direct_queue = self.slots.is_some() && self.settings.vlan_id == 0;
        let exts = PacketExtensions {
            checksum,
            gso,
            tags,
        };
        let mut post = packets.post().map_err(TxFault::Ring)?;
        while let Some(p) = post.current().copied() {
            let idx = post.index();
            let ext = exts.read(idx);
            // A run of plain packets, or of packets whose offloads the device does, in a loop of
            // its own.
            let run = match (direct_queue, is_plain(ext), is_offload(ext)) {
                (true, true, _) => {
                    Some(self.post_run::<false>(&mut post, exts, owned, (fragments, addrs)))
                }
                (true, _, true) => {
                    Some(self.post_run::<true>(&mut post, exts, owned, (fragments, addrs)))
                }
                _ => None,
            };
            if let Some(run) = run {
                out.posted = out.posted.saturating_add(run.posted);
                if run.end.is_some() {
                    fragment_next = run.end;
                }
                if run.full {
                    break;
                }
                if run.posted > 0 {
                    continue;
                }
                // The direct path left this very packet to the general one.
            }
            let mut r = self.post_one(idx, &p, ext, fragments, addrs);
            if matches!(r, Posted::NoBuffer) && !reaped_for_buffers {
                // The shared buffers are all out: take back those the device returned, once
                // per Advance, and try this packet again.
                reaped_for_buffers = true;
                reaped = reaped.saturating_add(self.reap()?);
                r = self.post_one(idx, &p, ext, fragments, addrs);
            }
            match r {
                Posted::Chain => out.posted = out.posted.saturating_add(1),
                Posted::Done => {
                    if let Some(d) = self.done.get_mut(idx as usize) {
                        *d = true;
                    }
                }
                Posted::Full => break,
                Posted::NoBuffer => {
                    bump(&mut self.bounce_stats.waits);
                    break;
                }
            }
            if let Some(end) = self.record_fragment_end(idx, &p, fragments) {
                fragment_next = Some(end);
            }
            post.advance();
        }
        post.set();
        // The fragments of every packet taken are the driver's: NextIndex once per Advance.
        if let Some(end) = fragment_next {
            fragments.set_next_index(end).map_err(TxFault::Ring)?;
        }
        if self.vq.publish() {
            bump(&mut self.stats.kicks);
            out.kicked = true;
        }
        reaped = reaped.saturating_add(self.reap()?);
        self.kick_if_stalled(&mut out, reaped);
        self.drain(packets, fragments, out)
    }

    /// Takes every completion (any order): the packet is done, and in confidential mode its
    /// shared buffer goes back to the pool. Returns how many. Bounded: the
    /// virtqueue returns each chain in flight once, and fails on anything else.
    fn reap(&mut self) -> Result<u32, TxFault> {
        let (owner, done) = (&self.owner, &mut self.done);
        let (bounce, chain_buffer) = (&mut self.bounce, &self.chain_buffer);
        let r = self.vq.drain_used(|u| {
            let idx = owner.get(usize::from(u.id)).copied().unwrap_or(u32::MAX);
            if let Some(d) = done.get_mut(idx as usize) {
                *d = true;
            }
            // Direct mode has no chain buffers: the table is empty, one compare.
            if let Some(&b) = chain_buffer.get(usize::from(u.id))
                && let Some(pool) = bounce.as_mut()
            {
                pool.release(b);
            }
        });
        r.map_err(|e| {
            bump(&mut self.stats.device_faults);
            TxFault::Device(e)
        })
    }

    /// The flushing Advance's post: every packet in [NextIndex, EndIndex) is done without a
    /// chain (its fragments with it).
    fn take_all(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<(), TxFault> {
        let mut fragment_next = None;
        let mut post = packets.post().map_err(TxFault::Ring)?;
        while let Some(p) = post.current().copied() {
            let idx = post.index();
            if let Some(d) = self.done.get_mut(idx as usize) {
                *d = true;
            }
            bump(&mut self.stats.flushed);
            if let Some(end) = self.record_fragment_end(idx, &p, fragments) {
                fragment_next = Some(end);
            }
            post.advance();
        }
        post.set();
        if let Some(end) = fragment_next {
            fragments.set_next_index(end).map_err(TxFault::Ring)?;
        }
        Ok(())
    }

    /// Records where packet `idx`'s fragments end (so the drain need not recompute it); returns
    /// it, for the caller to hand the OS's fragments up to there to the driver (NextIndex).
    fn record_fragment_end(
        &mut self,
        idx: u32,
        p: &NetPacket,
        fragments: &FragmentRing<'_>,
    ) -> Option<u32> {
        let end = if p.fragment_count > 0 {
            FragmentRange::of(p, fragments).map_or(u32::MAX, |r| r.end())
        } else {
            u32::MAX
        };
        if let Some(e) = self.fragment_end.get_mut(idx as usize) {
            *e = end;
        }
        (end != u32::MAX).then_some(end)
    }

    /// Returns finished packets (and their fragments) in ring order.
    fn drain(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
        mut out: TxAdvance,
    ) -> Result<TxAdvance, TxFault> {
        let mut drain = packets.drain().map_err(TxFault::Ring)?;
        let mut fragment_begin = None;
        while drain.has_any() {
            let idx = drain.index() as usize;
            match self.done.get_mut(idx) {
                Some(d) if *d => *d = false,
                _ => break,
            }
            let end = self.fragment_end.get(idx).copied().unwrap_or(u32::MAX);
            if end != u32::MAX {
                fragment_begin = Some(end);
            }
            out.completed = out.completed.wrapping_add(1); // at most the ring's 2^16 per call
            drain.advance();
        }
        drain.set();
        if let Some(b) = fragment_begin {
            fragments.set_begin_index(b).map_err(TxFault::Ring)?;
        }
        Ok(out)
    }

    /// Posts packets from `post` as long as they take one direct path — `OFFLOAD` false: the
    /// plain one (`post_plain`); true: the offload one (`post_offload`) — and stops at the
    /// ring's end, at a packet that is not for that path or that the path leaves to
    /// [`post_one`](Self::post_one) (still current), or when the virtqueue is full. Out of line,
    /// in a loop of its own for each path: few values live across it, so the common packet costs
    /// least.
    #[inline(never)]
    fn post_run<const OFFLOAD: bool>(
        &mut self,
        post: &mut RingIterator<'_, '_, NetPacket>,
        exts: PacketExtensions<'_>,
        owned: OwnedSpan,
        (fragments, addrs): (&FragmentRing<'_>, Addresses<'_>),
    ) -> PlainRun {
        let mut run = PlainRun::default();
        while let Some(p) = post.current().copied() {
            let idx = post.index();
            let (checksum, gso, tag) = exts.read(idx);
            let posted = if OFFLOAD {
                if !is_offload((checksum, gso, tag)) {
                    break;
                }
                let req = TxRequest {
                    layout: p.layout,
                    checksum,
                    gso,
                };
                self.post_offload(idx, &p, &req, owned, (fragments, addrs))
            } else {
                if !is_plain((checksum, gso, tag)) {
                    break;
                }
                self.post_plain(idx, &p, owned, fragments, addrs)
            };
            match posted {
                Some((Posted::Chain, end)) => {
                    if let Some(e) = self.fragment_end.get_mut(idx as usize) {
                        *e = end;
                    }
                    run.end = Some(end);
                    run.posted = run.posted.wrapping_add(1); // at most the ring's 2^16
                    post.advance();
                }
                Some(_) => {
                    run.full = true;
                    break;
                }
                None => break,
            }
        }
        run
    }

    /// The fragments of a packet on a direct path, gathered into `self.plain[1..n]` (device
    /// address and length of their valid bytes; empty fragments left out). `None` leaves the
    /// packet to [`post_one`](Self::post_one), untouched: ignored, outside the driver's
    /// fragments, too many fragments, an address that wraps, or a first fragment under 6 bytes.
    #[inline(always)]
    fn gather_direct(
        &mut self,
        p: &NetPacket,
        owned: OwnedSpan,
        fragments: &FragmentRing<'_>,
        addrs: Addresses<'_>,
    ) -> Option<Gathered> {
        let (first, count) = (p.fragment_index, u32::from(p.fragment_count));
        // The checks of `FragmentRange::of` and `is_owned_by`, against the span read once.
        if p.ignore()
            || count == 0
            || first >= owned.len
            || count as usize >= MAX_SEGMENTS
            || u64::from(first.wrapping_sub(owned.begin) & owned.mask)
                .wrapping_add(u64::from(count))
                > u64::from(owned.count)
        {
            return None;
        }
        let segs = &mut self.plain;
        let (mut n, mut total) = (1usize, 0u32);
        let mut head: Option<(*const u8, u32)> = None;
        for k in 0..count {
            let i = first.wrapping_add(k) & owned.mask;
            let f = fragments.at(i);
            let len = f.valid_length();
            if len == 0 {
                continue;
            }
            let addr = addrs
                .la
                .read(i)
                .logical_address
                .checked_add(u64::from(f.offset()))?;
            if head.is_none() {
                if len < 6 {
                    return None;
                }
                // VirtualAddress + Offset, valid for ValidLength ≥ 6 bytes.
                let va = addrs.va.read(i).virtual_address.cast::<u8>();
                head = Some((va.wrapping_add(f.offset() as usize).cast_const(), len));
            }
            // n ≤ count < MAX_SEGMENTS = segs.len() (the mask only says so to the compiler);
            // lengths below 2^26, at most 63 of them.
            *segs.get_mut(n & (MAX_SEGMENTS - 1))? = Segment { addr, len };
            n = n.wrapping_add(1);
            total = total.wrapping_add(len);
        }
        let (va, first_len) = head?;
        Some(Gathered {
            n,
            total,
            va,
            first_len,
            end: first.wrapping_add(count) & owned.mask,
        })
    }

    /// Adds `self.plain[from..n]` (plain or direct add), counts the frame (`dst`: where its
    /// destination address is readable) and records the chain's owner.
    #[inline(always)]
    fn add_direct(
        &mut self,
        idx: u32,
        (from, n): (usize, usize),
        dst: *const u8,
        wire_len: u32,
    ) -> Option<Posted> {
        let chain = self.plain.get(from..n)?;
        let added = match self.vq.try_add_direct(chain, &[]) {
            Some(id) => Ok(id),
            None => self.vq.add(chain, &[]),
        };
        match added {
            Ok(id) => {
                // SAFETY: `dst` points at 6 readable bytes: the packet's first fragment (the
                // driver's for this Advance; NetAdapterCx keeps VirtualAddress + Offset valid for
                // ValidLength ≥ 6 bytes) or the driver's private copy of its headers.
                let group = unsafe { dst.read() };
                if group & 1 == 0 {
                    // Unicast, the common case.
                    let c = &mut self.stats.sent;
                    bump(&mut c.unicast_frames);
                    add(&mut c.unicast_bytes, u64::from(wire_len));
                } else {
                    // SAFETY: as above, 6 bytes.
                    let dst = unsafe { dst.cast::<[u8; 6]>().read_unaligned() };
                    self.stats.sent.count(&dst, u64::from(wire_len));
                }
                if let Some(o) = self.owner.get_mut(usize::from(id)) {
                    *o = idx;
                }
                Some(Posted::Chain)
            }
            // As in `build_chain`: what the virtqueue cannot take now waits.
            Err(QueueError::Full | QueueError::Broken | QueueError::TooManySegments) => {
                Some(Posted::Full)
            }
            Err(_) => None,
        }
    }

    /// The common packet, in direct mode with nothing to rewrite (no offload asked, no tag):
    /// its chain is the header slot's plain virtio-net header, then the OS's fragments by
    /// logical address, written straight from the fragment ring. `None` leaves the packet to
    /// [`post_one`](Self::post_one), untouched: as [`gather_direct`](Self::gather_direct) says,
    /// or under 60 bytes (copied and padded). Otherwise (what happened, the fragment index past
    /// the packet's fragments); on `Posted::Full` nothing was written but the slot.
    #[inline(always)]
    fn post_plain(
        &mut self,
        idx: u32,
        p: &NetPacket,
        owned: OwnedSpan,
        fragments: &FragmentRing<'_>,
        addrs: Addresses<'_>,
    ) -> Option<(Posted, u32)> {
        let slot_dev = self.slot_device(idx)?;
        let g = self.gather_direct(p, owned, fragments, addrs)?;
        if (g.total as usize) < offload::tx::MIN_FRAME {
            return None;
        }
        let slot = header_slot(&mut self.slots, idx)?;
        // The plain virtio-net header: every field 0 (no offload, num_buffers unused on TX).
        *slot.first_chunk_mut::<{ NetHeader::SIZE }>()? = [0; NetHeader::SIZE];
        *self.plain.first_mut()? = Segment {
            addr: slot_dev,
            len: NetHeader::SIZE as u32,
        };
        let r = self.add_direct(idx, (0, g.n), g.va, g.total)?;
        Some((r, g.end))
    }

    /// A packet that asks for a checksum or segmentation offload the device does (no tag to
    /// insert, direct mode), with its headers in its first fragment: the headers are copied
    /// into private memory (at most `OFFLOAD_HEAD` bytes), parsed once, rewritten into the
    /// header slot with the virtio-net header `prepare_parsed` makes, and the chain is the slot
    /// then the rest of the frame by logical address. `None` leaves the packet to
    /// [`post_one`](Self::post_one) — which rewrites the slot from scratch — for anything else:
    /// a short frame, headers that do not fit the first fragment or `OFFLOAD_HEAD`, an
    /// offload the device cannot do, or any error (counted there).
    #[inline(always)]
    fn post_offload(
        &mut self,
        idx: u32,
        p: &NetPacket,
        req: &TxRequest,
        owned: OwnedSpan,
        (fragments, addrs): (&FragmentRing<'_>, Addresses<'_>),
    ) -> Option<(Posted, u32)> {
        let slot_dev = self.slot_device(idx)?;
        let g = self.gather_direct(p, owned, fragments, addrs)?;
        if (g.total as usize) < offload::tx::MIN_FRAME && req.gso.mss() == 0 {
            return None;
        }
        let mut headers = [0u8; OFFLOAD_HEAD];
        let k = (g.first_len as usize).min(OFFLOAD_HEAD);
        let copy = headers.get_mut(..k)?;
        // SAFETY: the first fragment is the driver's for this Advance, readable for
        // ValidLength ≥ k bytes (as in `gather_direct`); `copy` is private memory.
        unsafe { core::ptr::copy_nonoverlapping(g.va, copy.as_mut_ptr(), k) };
        let parsed = Layout::parse_prefix(copy);
        if parsed.0.l2_len == 0 {
            return None;
        }
        let hlen = parsed.0.header_len();
        let slot = header_slot(&mut self.slots, idx)?;
        // The whole private copy (a fixed size: a few vector moves, no call); the chain takes
        // the first hlen bytes of it, the rest of the slot is unused.
        let room = slot.get_mut(NetHeader::SIZE..)?;
        room.get_mut(..OFFLOAD_HEAD)?.copy_from_slice(&headers);
        let out = room.get_mut(..hlen)?;
        let Ok((_, TxAction::Offload(h))) =
            prepare_parsed(out, parsed, g.total as usize, req, self.dev)
        else {
            return None;
        };
        h.write(slot)?;
        // The slot (virtio-net header, then the rewritten headers), then the first fragment
        // from past them (if anything is left of it), then the other fragments. A frame the
        // private copy holds whole (a TCP acknowledgement, a small datagram) is sent from the
        // slot alone, its payload as copied: a chain of one descriptor.
        let in_slot = if k == g.total as usize { k } else { hlen };
        let head = Segment {
            addr: slot_dev,
            // in_slot ≤ OFFLOAD_HEAD: no overflow.
            len: NetHeader::SIZE.wrapping_add(in_slot) as u32,
        };
        let rest = g.first_len.wrapping_sub(in_slot as u32); // hlen ≤ k ≤ first_len
        let from = if rest == 0 {
            *self.plain.get_mut(1)? = head;
            1
        } else {
            let first = self.plain.get_mut(1)?;
            first.addr = first.addr.checked_add(in_slot as u64)?;
            first.len = rest;
            *self.plain.first_mut()? = head;
            0
        };
        // The destination from the private copy (k ≥ 6).
        let wire_len = g.total.max(offload::tx::MIN_FRAME as u32);
        let r = self.add_direct(idx, (from, g.n), headers.as_ptr(), wire_len)?;
        Some((r, g.end))
    }

    fn post_one(
        &mut self,
        idx: u32,
        p: &NetPacket,
        (checksum, gso, tag_ext): (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>),
        fragments: &FragmentRing<'_>,
        addrs: Addresses<'_>,
    ) -> Posted {
        if p.ignore() || p.fragment_count == 0 {
            bump(&mut self.stats.ignored);
            return Posted::Done;
        }
        let Ok(range) = FragmentRange::of(p, fragments) else {
            bump(&mut self.stats.bad_packets);
            return Posted::Done;
        };
        if !range.is_owned_by(fragments) || range.fragment_count() as usize >= MAX_SEGMENTS {
            bump(&mut self.stats.bad_packets);
            return Posted::Done;
        }
        // Gather the fragments (device and CPU addresses of their valid bytes).
        let mut frags = core::mem::take(&mut self.frags);
        let mut segs = core::mem::take(&mut self.segs);
        frags.clear();
        segs.clear();
        let r = self.build_chain(
            idx,
            p,
            range,
            (checksum, gso, tag_ext),
            (fragments, addrs),
            &mut frags,
            &mut segs,
        );
        self.frags = frags;
        self.segs = segs;
        r
    }

    #[allow(
        clippy::too_many_arguments,
        reason = "one packet's inputs and the reused scratch"
    )]
    fn build_chain(
        &mut self,
        idx: u32,
        p: &NetPacket,
        range: FragmentRange,
        (checksum, gso, tag_ext): (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>),
        (fragments, addrs): (&FragmentRing<'_>, Addresses<'_>),
        frags: &mut Vec<FrameFragment>,
        segs: &mut Vec<Segment>,
    ) -> Posted {
        let wants_offload = checksum.to_bits() != 0 || gso.mss() > 0;
        let tag = if tag_ext.is_some_and(|t| t.tx_tagging_raw() != 0) || self.settings.vlan_id != 0
        {
            vlan_tag_for(
                tag_ext,
                self.settings.vlan_id,
                self.settings.insert_priority,
                self.settings.insert_vlan,
            )
        } else {
            None
        };
        // Nothing to rewrite (direct mode): the chain is the header slot (filled in below),
        // then every fragment by logical address — built in the gathering pass.
        let prebuilt = !wants_offload && tag.is_none() && self.bounce.is_none();
        if prebuilt && !crate::fallible::push_within(segs, Segment { addr: 0, len: 0 }) {
            bump(&mut self.stats.bad_packets);
            return Posted::Done;
        }
        let mut total = 0usize;
        for i in range {
            let Ok(f) = fragments.get(i) else {
                bump(&mut self.stats.bad_packets);
                return Posted::Done;
            };
            let (la, va) = (addrs.la.read(i), addrs.va.read(i));
            if f.valid_length() == 0 {
                continue;
            }
            let frag = FrameFragment {
                va: va
                    .virtual_address
                    .cast::<u8>()
                    .wrapping_add(f.offset() as usize),
                // An OS address that wraps is not a fragment: the packet is dropped.
                la: match la.logical_address.checked_add(u64::from(f.offset())) {
                    Some(a) => a,
                    None => {
                        bump(&mut self.stats.bad_packets);
                        return Posted::Done;
                    }
                },
                len: f.valid_length(),
            };
            // Fewer than MAX_SEGMENTS fragments (post_one), so these always fit.
            let seg = Segment {
                addr: frag.la,
                len: frag.len,
            };
            if !crate::fallible::push_within(frags, frag)
                || (prebuilt && !crate::fallible::push_within(segs, seg))
            {
                bump(&mut self.stats.bad_packets);
                return Posted::Done;
            }
            // At most MAX_SEGMENTS lengths below 2^26: no saturation.
            total = total.saturating_add(f.valid_length() as usize);
        }
        let n = frags.len();
        if total < 14 {
            bump(&mut self.stats.bad_packets);
            return Posted::Done;
        }
        let confidential = self.bounce.is_some();
        let short = total < offload::tx::MIN_FRAME && gso.mss() == 0;
        // A chain that rewrites nothing and counts nothing before `add` needs no check first:
        // `add` says Full the same way.
        if (!prebuilt || short)
            && !self
                .vq
                .can_add(if confidential { 1 } else { n.saturating_add(1) })
        {
            return Posted::Full;
        }
        let req = TxRequest {
            layout: p.layout,
            checksum,
            gso,
        };
        // Confidential mode: the shared buffer first, so that a packet waiting for one has not
        // been counted or rewritten yet; room for the header, the frame, a tag and padding.
        let mut buffer = match self.bounce.as_mut() {
            None => None,
            Some(pool) => {
                match pool.take(
                    total
                        .max(offload::tx::MIN_FRAME)
                        .saturating_add(NetHeader::SIZE + 4),
                ) {
                    Ok(b) => Some(b),
                    Err(TakeError::Exhausted) => return Posted::NoBuffer,
                    Err(TakeError::TooLarge) => {
                        bump(&mut self.stats.bad_packets);
                        return Posted::Done;
                    }
                }
            }
        };
        let slot_dev = self.slot_device(idx);
        let dev = self.dev;
        // Where the header (and any rewritten headers) are made: the packet's header slot, or
        // in confidential mode private memory, copied into the shared buffer when complete.
        // Zeroed only when used (confidential mode): 256 bytes per packet otherwise.
        let mut private;
        let slot: &mut [u8] = match (&buffer, header_slot(&mut self.slots, idx)) {
            (Some(_), _) => {
                private = [0u8; HDR_SLOT];
                &mut private
            }
            (None, Some(s)) => s,
            (None, None) => {
                bump(&mut self.stats.bad_packets);
                return Posted::Done;
            }
        };
        let mut dst = [0u8; 6];
        let (hdr, slot_len, skip) = if short || wants_offload || tag.is_some() {
            // Headers are copied only when they must be rewritten (or the frame is short).
            let mut headers = [0u8; COPY_MAX];
            let copy_len = total.min(COPY_MAX);
            // SAFETY: the fragments are owned by the driver for this Advance; NetAdapterCx keeps
            // VirtualAddress + Offset valid for ValidLength bytes.
            let copied =
                unsafe { copy_out(frags, 0, headers.get_mut(..copy_len).unwrap_or(&mut [])) };
            // copy_len <= COPY_MAX and copied <= copy_len: the slices below are inside
            // `headers`.
            if let Some(d) = headers.first_chunk::<6>() {
                dst = *d;
            }
            let copied = headers.get(..copied).unwrap_or(&[]);
            let stats = &mut self.stats;
            let r = if short {
                short_frame(slot, stats, dev, copied, tag, &req, wants_offload)
            } else {
                rewrite_headers(slot, stats, dev, (copied, total), tag, &req, wants_offload)
            };
            match r {
                Ok(r) => r,
                Err(()) => {
                    give_back(&mut self.bounce, buffer);
                    return Posted::Done;
                }
            }
        } else {
            match frags.first() {
                // SAFETY: the first fragment is readable for `len` ≥ 6 bytes (as above).
                Some(f) if f.len >= 6 => dst = unsafe { f.va.cast::<[u8; 6]>().read_unaligned() },
                // SAFETY: as above; only the destination address is read (for the counters).
                _ => _ = unsafe { copy_out(frags, 0, &mut dst) },
            }
            (NetHeader::default(), NetHeader::SIZE, 0)
        };
        if hdr.write(slot).is_none() {
            give_back(&mut self.bounce, buffer);
            return Posted::Done;
        }
        if let Some(b) = buffer.as_mut() {
            // The header and rewritten headers from private memory, then the rest of the frame
            // straight from the OS's fragments: one descriptor, no OS address.
            let rest = total.saturating_sub(skip);
            let made = slot.get(..slot_len).is_some_and(|h| b.write(0, h))
                // SAFETY: the fragments are readable (as above); the buffer is the pool's.
                && unsafe { b.copy_frame(slot_len, frags, skip, rest) };
            if !made {
                bump(&mut self.stats.bad_packets);
                give_back(&mut self.bounce, buffer);
                return Posted::Done;
            }
            let seg = Segment {
                addr: b.device(),
                // At most the buffer's size (`b.write` and `copy_frame` checked it).
                len: slot_len.saturating_add(rest) as u32,
            };
            if !crate::fallible::push_within(segs, seg) {
                bump(&mut self.stats.bad_packets);
                give_back(&mut self.bounce, buffer);
                return Posted::Done;
            }
        } else {
            let Some(slot_dev) = slot_dev else {
                bump(&mut self.stats.bad_packets);
                return Posted::Done;
            };
            let seg = Segment {
                addr: slot_dev,
                len: slot_len as u32,
            };
            let ready = prebuilt && skip == 0;
            if let (true, Some(s)) = (ready, segs.first_mut()) {
                *s = seg;
            } else {
                // Headers were copied into the slot (or a short frame whole): the fragments'
                // part of the chain starts past them.
                segs.clear();
                if !crate::fallible::push_within(segs, seg) {
                    bump(&mut self.stats.bad_packets);
                    return Posted::Done;
                }
            }
            if !ready && skip < total {
                let mut skip = skip;
                for f in frags.iter() {
                    let len = f.len as usize;
                    if skip >= len {
                        skip = skip.saturating_sub(len);
                        continue;
                    }
                    // An OS address that wraps is not a fragment: the packet is dropped.
                    let Some(addr) = f.la.checked_add(skip as u64) else {
                        bump(&mut self.stats.bad_packets);
                        return Posted::Done;
                    };
                    let seg = Segment {
                        addr,
                        len: len.saturating_sub(skip) as u32,
                    };
                    if !crate::fallible::push_within(segs, seg) {
                        bump(&mut self.stats.bad_packets);
                        return Posted::Done;
                    }
                    skip = 0;
                }
            }
        }
        match self.vq.add(segs, &[]) {
            Ok(id) => {
                let wire_len = total.saturating_add(if tag.is_some() { 4 } else { 0 });
                self.stats
                    .sent
                    .count(&dst, wire_len.max(offload::tx::MIN_FRAME) as u64);
                if let Some(o) = self.owner.get_mut(usize::from(id)) {
                    *o = idx;
                }
                if let (Some(b), Some(c)) = (&buffer, self.chain_buffer.get_mut(usize::from(id))) {
                    bump(&mut self.bounce_stats.copied);
                    *c = b.handle();
                }
                Posted::Chain
            }
            // What `can_add` refuses (skipped for plain chains) waits, as it did: a full or
            // broken virtqueue, a chain it cannot take.
            Err(QueueError::Full | QueueError::Broken | QueueError::TooManySegments) => {
                give_back(&mut self.bounce, buffer);
                Posted::Full
            }
            Err(_) => {
                bump(&mut self.stats.bad_packets);
                give_back(&mut self.bounce, buffer);
                Posted::Done
            }
        }
    }
}

/// Puts an unposted shared buffer back.
fn give_back(pool: &mut Option<BouncePool>, buffer: Option<Buffer>) {
    if let (Some(p), Some(b)) = (pool.as_mut(), buffer) {
        p.release(b.handle());
    }
}

/// A frame shorter than 60 bytes, copied whole into `slot` (a header slot: the virtio-net
/// header, then the frame): returns (header, slot bytes, frame bytes consumed).
fn short_frame(
    slot: &mut [u8],
    stats: &mut TxStats,
    dev: DeviceTx,
    frame: &[u8],
    tag: Option<offload::wire::VlanTag>,
    req: &TxRequest,
    wants_offload: bool,
) -> Result<(NetHeader, usize, usize), ()> {
    let total = frame.len();
    let slot = slot.get_mut(NetHeader::SIZE..).ok_or(())?;
    let len = match tag {
        Some(t) => insert_vlan(frame, t, slot).map_err(|_| ())?,
        None => {
            slot.get_mut(..total).ok_or(())?.copy_from_slice(frame);
            total
        }
    };
    let mut hdr = NetHeader::default();
    if wants_offload {
        let body = slot.get_mut(..len).ok_or(())?;
        match prepare(body, len, req, dev) {
            Ok((_, TxAction::Offload(h))) => hdr = h,
            Ok((_, TxAction::SoftwareChecksum)) => {
                if offload::segment::fill_l4_checksum(body).is_err() {
                    bump(&mut stats.offload_errors);
                    return Err(());
                }
            }
            Ok((_, TxAction::Segment(_))) | Err(_) => {
                bump(&mut stats.offload_errors);
                return Err(());
            }
        }
    }
    let pad = padding(len);
    slot.get_mut(len..)
        .and_then(|s| s.get_mut(..pad))
        .ok_or(())?
        .fill(0);
    if pad > 0 {
        bump(&mut stats.padded);
    }
    if tag.is_some() {
        bump(&mut stats.vlan_tagged);
    }
    // len + pad <= slot.len() (the `get_mut` above).
    Ok((
        hdr,
        len.saturating_add(pad).saturating_add(NetHeader::SIZE),
        total,
    ))
}

/// Copies and rewrites the headers into `slot`: returns (header, slot bytes, frame bytes
/// consumed from the fragments).
fn rewrite_headers(
    slot: &mut [u8],
    stats: &mut TxStats,
    dev: DeviceTx,
    (headers, total): (&[u8], usize),
    tag: Option<offload::wire::VlanTag>,
    req: &TxRequest,
    wants_offload: bool,
) -> Result<(NetHeader, usize, usize), ()> {
    // The headers that parsed, as deep as they go: `prepare` decides whether the request
    // needs more (an IPv4 header checksum does not need the TCP header to parse).
    let layout = Layout::parse_prefix(headers);
    let hlen = match layout {
        (l, _) if l.l2_len != 0 => l.header_len(),
        _ if !wants_offload => 14,
        _ => {
            bump(&mut stats.offload_errors);
            return Err(());
        }
    };
    let slot = slot.get_mut(NetHeader::SIZE..).ok_or(())?;
    let parsed = headers.get(..hlen).ok_or(())?;
    let len = match tag {
        Some(t) => insert_vlan(parsed, t, slot).map_err(|_| ())?,
        None => {
            slot.get_mut(..hlen).ok_or(())?.copy_from_slice(parsed);
            hlen
        }
    };
    // len = hlen, or hlen + 4 with a tag.
    let frame_len = total.saturating_add(len.saturating_sub(hlen));
    let mut hdr = NetHeader::default();
    if wants_offload {
        let out = slot.get_mut(..len).ok_or(())?;
        // Untagged, the slot holds the very header bytes parsed above (cut at their length):
        // no second parse. A tag moved them: parse the slot.
        let prepared = match tag {
            None if layout.0.l2_len != 0 => prepare_parsed(out, layout, frame_len, req, dev),
            _ => prepare(out, frame_len, req, dev),
        };
        match prepared {
            Ok((_, TxAction::Offload(h))) => hdr = h,
            Ok((_, TxAction::Segment(_))) => {
                bump(&mut stats.unsegmentable);
                return Err(());
            }
            Ok((_, TxAction::SoftwareChecksum)) | Err(OffloadError::Parse(_)) | Err(_) => {
                bump(&mut stats.offload_errors);
                return Err(());
            }
        }
    }
    if tag.is_some() {
        bump(&mut stats.vlan_tagged);
    }
    Ok((hdr, len.saturating_add(NetHeader::SIZE), hlen))
}

impl TxQueue {
    /// Kicks when the queue is stuck — chains in flight, none posted, none completed — on the
    /// [`StallGuard`]'s back-off, where the device calls for it ([`StallPolicy::tx`]: the packed
    /// ring only).
    fn kick_if_stalled(&mut self, out: &mut TxAdvance, reaped: u32) {
        let idle = reaped == 0 && out.posted == 0;
        if self.stall.advance(idle, self.vq.in_flight() > 0) && !out.kicked {
            out.kicked = true;
            bump(&mut self.stats.kicks);
            bump(&mut self.stats.stall_kicks);
        }
    }

    /// `EvtPacketQueueSetNotificationEnabled(TRUE)` (NetAdapterCx sends it only while the
    /// driver owns packets): arms `gate` and turns the completion interrupt on. Returns whether
    /// to notify the OS now: completions arrived since the last Advance (no interrupt comes for
    /// those), claimed through the gate so the interrupt path does not notify too.
    pub fn arm(&mut self, gate: &NotifyGate) -> bool {
        gate.arm_over(&mut self.vq)
    }

    /// `EvtPacketQueueSetNotificationEnabled(FALSE)` (never sent by NetAdapterCx).
    pub fn disarm(&mut self, gate: &NotifyGate) {
        gate.disarm_over(&mut self.vq);
    }

    /// At the start of every Advance: once `gate` fired, the completion interrupt goes off
    /// again while the OS polls.
    pub fn quiet(&mut self, gate: &NotifyGate) {
        gate.quiet_over(&mut self.vq);
    }

    /// The device was reset (after a fault, NEEDS_RESET, or a stall) or is gone, and will not
    /// be set up again while this queue lives: the in-flight chains are abandoned, and from now
    /// on every Advance returns every packet the OS hands in, in order, without a chain, so a
    /// stop can finish (NetAdapterCx's stopping poll waits for all of them). Call it only after
    /// the reset: until then the device may still read the chains' memory.
    pub fn flush(&mut self) {
        if !self.flushing {
            self.flushing = true;
            add(&mut self.stats.flushed, u64::from(self.vq.in_flight()));
            self.abandon_in_flight();
        }
    }

    /// Whether [`flush`](Self::flush) was called.
    pub const fn is_flushing(&self) -> bool {
        self.flushing
    }

    /// After a device reset: every in-flight packet is considered sent (the OS gets it back on
    /// the next Advance, in order; in confidential mode their shared buffers go back to the
    /// pool), and the virtqueue is cleared for set-up again.
    pub fn abandon_in_flight(&mut self) {
        let (owner, done) = (&self.owner, &mut self.done);
        let (bounce, chain_buffer) = (&mut self.bounce, &self.chain_buffer);
        self.vq.reset(|id| {
            if let Some(d) = owner
                .get(usize::from(id))
                .and_then(|&i| done.get_mut(i as usize))
            {
                *d = true;
            }
            if let (Some(pool), Some(&b)) = (bounce.as_mut(), chain_buffer.get(usize::from(id))) {
                pool.release(b);
            }
        });
    }
}

fn free_buffers(dma: &impl Dma, slots: Option<DmaRegion>, bounce: Option<BouncePool>) {
    if let Some(s) = slots {
        dma.free(s);
    }
    if let Some(b) = bounce {
        b.free(dma);
    }
}

/// Packet `idx`'s header slot (direct mode), `None` if there are no slots or `idx` is outside.
fn header_slot(slots: &mut Option<DmaRegion>, idx: u32) -> Option<&mut [u8]> {
    let s = slots.as_mut()?;
    let start = (idx as usize).checked_mul(HDR_SLOT)?;
    if start.checked_add(HDR_SLOT)? > s.len() {
        return None;
    }
    let p = s.cpu().as_ptr().wrapping_add(start);
    // SAFETY: [start, start + HDR_SLOT) lies inside the region (checked above); a slot is written
    // only while its packet is not in flight (the device reads it only between the publish and
    // the completion of that packet's chain), and the `&mut` borrow of the region keeps other
    // users out.
    Some(unsafe { core::slice::from_raw_parts_mut(p, HDR_SLOT) })
}
