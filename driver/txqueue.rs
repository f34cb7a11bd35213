//! The transmit queue engine: what `EvtPacketQueueAdvance` of a NetAdapterCx TX queue does.
//!
//! Post: every packet of `[NextIndex, EndIndex)` becomes one virtqueue chain — a per-packet
//! header slot in driver DMA memory (the virtio-net header, then, when they must change, a copy
//! of the packet's headers), followed by the OS fragments by logical address, without a copy.
//! The headers are copied only when they must be rewritten (checksum/LSO fix-ups, 802.1Q tag
//! insertion); frames under 60 bytes are copied whole and padded. Ignored packets are skipped.
//! One kick at most per Advance.
//!
//! Drain: completions arrive in any order; they are recorded per packet and handed back in ring
//! order, advancing the fragment ring's `BeginIndex` past each completed packet's fragments.

use alloc::vec::Vec;

use netring::{
    Extension, FragmentRange, FragmentRing, NetFragmentLogicalAddress, NetFragmentVirtualAddress,
    NetPacket, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q, PacketRing, RingError,
};
use offload::tx::{DeviceTx, TxAction, TxRequest, insert_vlan, padding, prepare, vlan_tag_for};
use offload::{Layout, OffloadError};
use virtio::Features;
use virtio::hal::{Dma, DmaRegion};
use virtio::net::NetHeader;
use virtio::queue::{QueueError, Segment, VirtQueue};

use crate::os_memory::{FrameFragment, copy_out};
use crate::stats::TxStats;

/// Bytes of driver DMA memory per packet: the virtio-net header plus rewritten headers, or a
/// whole short frame.
pub const HDR_SLOT: usize = 256;
/// Most header bytes copied for rewriting (room for an inserted tag inside the slot).
pub const COPY_MAX: usize = HDR_SLOT - NetHeader::SIZE - 4;
/// Longest chain: the header slot plus OS fragments. The glue declares
/// `MaximumNumberOfFragments = MAX_SEGMENTS − 1` so the OS bounces anything longer.
pub const MAX_SEGMENTS: usize = 64;

/// What the user allowed (INF keywords) on top of what the device can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxSettings {
    /// Insert 802.1p priority tags (`*PriorityVLANTag` 1 or 3).
    pub insert_priority: bool,
    /// Insert 802.1Q VLAN tags (`*PriorityVLANTag` 2 or 3).
    pub insert_vlan: bool,
    /// The adapter's VLAN id (`VlanID`), 0 for none.
    pub vlan_id: u16,
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
}

/// A NetAdapterCx transmit queue over a virtio-net transmit virtqueue.
pub struct TxQueue {
    vq: VirtQueue,
    slots: DmaRegion,
    packet_len: u32,
    /// Chain id → packet index.
    owner: Vec<u32>,
    /// Packet index → completed (or needs no completion) and not yet returned.
    done: Vec<bool>,
    dev: DeviceTx,
    settings: TxSettings,
    ext: TxExtensions,
    stats: TxStats,
    armed: bool,
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
    /// with the device), allocating one header slot per packet.
    pub fn new(
        dma: &impl Dma,
        vq: VirtQueue,
        packet_len: u32,
        features: Features,
        settings: TxSettings,
        ext: TxExtensions,
    ) -> Result<Self, TxCreateError> {
        if packet_len == 0 || packet_len > 1 << 16 {
            return Err(TxCreateError::BadRing);
        }
        let slots = dma
            .alloc(packet_len as usize * HDR_SLOT, 64)
            .ok_or(TxCreateError::OutOfMemory)?;
        Ok(Self {
            owner: alloc::vec![0; usize::from(vq.size())],
            done: alloc::vec![false; packet_len as usize],
            vq,
            slots,
            packet_len,
            dev: DeviceTx::from_features(features),
            settings,
            ext,
            stats: TxStats::default(),
            armed: false,
        })
    }

    /// Frees the DMA memory (after the device stopped using the queue).
    pub fn free(self, dma: &impl Dma) {
        self.vq.free(dma);
        dma.free(self.slots);
    }

    /// The virtqueue (for its addresses and notifications).
    pub fn virtqueue(&self) -> &VirtQueue {
        &self.vq
    }

    /// Counters.
    pub const fn stats(&self) -> &TxStats {
        &self.stats
    }

    fn slot(&mut self, idx: u32) -> &mut [u8] {
        let p = self
            .slots
            .cpu()
            .as_ptr()
            .wrapping_add(idx as usize * HDR_SLOT);
        // SAFETY: the region holds packet_len slots and idx < packet_len (a masked ring index of
        // a ring of packet_len elements); a slot is written only while its packet is not in
        // flight (the device reads it only between the publish and the completion of that
        // packet's chain), and &mut self keeps other users out.
        unsafe { core::slice::from_raw_parts_mut(p, HDR_SLOT) }
    }

    fn slot_device(&self, idx: u32) -> u64 {
        self.slots.device() + (idx as usize * HDR_SLOT) as u64
    }

    /// `EvtPacketQueueAdvance`: posts new packets, reaps completions, returns finished packets in
    /// ring order.
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
        // Post [NextIndex, EndIndex).
        let mut post = packets.post().map_err(TxFault::Ring)?;
        while let Some(p) = post.current().copied() {
            let idx = post.index();
            let ext = (
                self.ext
                    .checksum
                    .get(post.ring(), idx)
                    .copied()
                    .unwrap_or_default(),
                self.ext
                    .gso
                    .get(post.ring(), idx)
                    .copied()
                    .unwrap_or_default(),
                self.ext.ieee8021q.get(post.ring(), idx).ok().copied(),
            );
            match self.post_one(idx, &p, ext, fragments) {
                Posted::Chain => out.posted += 1,
                Posted::Done => {
                    if let Some(d) = self.done.get_mut(idx as usize) {
                        *d = true;
                    }
                }
                Posted::Full => break,
            }
            if p.fragment_count > 0
                && let Ok(r) = FragmentRange::of(&p, fragments)
            {
                fragments.set_next_index(r.end()).map_err(TxFault::Ring)?;
            }
            post.advance();
        }
        post.set();
        if self.vq.publish() {
            self.stats.kicks += 1;
            out.kicked = true;
        }
        // Reap completions (any order).
        loop {
            match self.vq.pop_used() {
                Ok(Some(u)) => {
                    let idx = self
                        .owner
                        .get(usize::from(u.id))
                        .copied()
                        .unwrap_or(u32::MAX);
                    if let Some(d) = self.done.get_mut(idx as usize) {
                        *d = true;
                    }
                }
                Ok(None) => break,
                Err(e) => {
                    self.stats.device_faults += 1;
                    return Err(TxFault::Device(e));
                }
            }
        }
        // Return finished packets in ring order.
        let mut drain = packets.drain().map_err(TxFault::Ring)?;
        let mut fragment_begin = None;
        while let Some(p) = drain.current() {
            let idx = drain.index() as usize;
            if !self.done.get(idx).copied().unwrap_or(false) {
                break;
            }
            self.done[idx] = false;
            if p.fragment_count > 0
                && let Ok(r) = FragmentRange::of(p, fragments)
            {
                fragment_begin = Some(r.end());
            }
            out.completed += 1;
            drain.advance();
        }
        drain.set();
        if let Some(b) = fragment_begin {
            fragments.set_begin_index(b).map_err(TxFault::Ring)?;
        }
        Ok(out)
    }

    fn post_one(
        &mut self,
        idx: u32,
        p: &NetPacket,
        (checksum, gso, tag_ext): (NetPacketChecksum, NetPacketGso, Option<NetPacketIeee8021q>),
        fragments: &FragmentRing<'_>,
    ) -> Posted {
        if p.ignore() || p.fragment_count == 0 {
            self.stats.ignored += 1;
            return Posted::Done;
        }
        let Ok(range) = FragmentRange::of(p, fragments) else {
            self.stats.bad_packets += 1;
            return Posted::Done;
        };
        if !range.is_owned_by(fragments) || range.fragment_count() as usize >= MAX_SEGMENTS {
            self.stats.bad_packets += 1;
            return Posted::Done;
        }
        // Gather the fragments (device and CPU addresses of their valid bytes).
        let mut frags = [FrameFragment {
            va: core::ptr::null(),
            la: 0,
            len: 0,
        }; MAX_SEGMENTS];
        let mut n = 0;
        let mut total = 0usize;
        for i in range {
            let (Ok(f), Ok(la), Ok(va)) = (
                fragments.get(i),
                self.ext.logical_address.get(fragments, i),
                self.ext.virtual_address.get(fragments, i),
            ) else {
                self.stats.bad_packets += 1;
                return Posted::Done;
            };
            if f.valid_length() == 0 {
                continue;
            }
            frags[n] = FrameFragment {
                va: va
                    .virtual_address
                    .cast::<u8>()
                    .wrapping_add(f.offset() as usize),
                la: la.logical_address.wrapping_add(u64::from(f.offset())),
                len: f.valid_length(),
            };
            total += f.valid_length() as usize;
            n += 1;
        }
        let frags = &frags[..n];
        if total < 14 {
            self.stats.bad_packets += 1;
            return Posted::Done;
        }
        if !self.vq.can_add(n + 1) {
            return Posted::Full;
        }
        let mut headers = [0u8; COPY_MAX];
        let copy_len = total.min(COPY_MAX);
        // SAFETY: the fragments are owned by the driver for this Advance; NetAdapterCx keeps
        // VirtualAddress + Offset valid for ValidLength bytes.
        let copied = unsafe { copy_out(frags, 0, &mut headers[..copy_len]) };
        let dst = [
            headers[0], headers[1], headers[2], headers[3], headers[4], headers[5],
        ];
        let req = TxRequest {
            layout: p.layout,
            checksum,
            gso,
        };
        let wants_offload = checksum.to_bits() != 0 || gso.mss() > 0;
        let tag = vlan_tag_for(
            tag_ext,
            self.settings.vlan_id,
            self.settings.insert_priority,
            self.settings.insert_vlan,
        );
        let mut segs = [Segment { addr: 0, len: 0 }; MAX_SEGMENTS];
        let slot_dev = self.slot_device(idx);
        let (hdr, slot_len, skip) = if total < offload::tx::MIN_FRAME && gso.mss() == 0 {
            // Short frame: copy it whole, tag it, fix it up, pad it.
            match self.short_frame(idx, &headers[..copied], tag, &req, wants_offload) {
                Ok(r) => r,
                Err(()) => return Posted::Done,
            }
        } else if wants_offload || tag.is_some() {
            match self.rewrite_headers(idx, &headers[..copied], total, tag, &req, wants_offload) {
                Ok(r) => r,
                Err(()) => return Posted::Done,
            }
        } else {
            (NetHeader::default(), NetHeader::SIZE, 0)
        };
        if hdr.write(self.slot(idx)).is_none() {
            return Posted::Done;
        }
        segs[0] = Segment {
            addr: slot_dev,
            len: slot_len as u32,
        };
        let mut count = 1;
        if skip < total {
            let mut skip = skip;
            for f in frags {
                let len = f.len as usize;
                if skip >= len {
                    skip -= len;
                    continue;
                }
                segs[count] = Segment {
                    addr: f.la + skip as u64,
                    len: (len - skip) as u32,
                };
                skip = 0;
                count += 1;
            }
        }
        match self.vq.add(&segs[..count], &[]) {
            Ok(id) => {
                if let Some(o) = self.owner.get_mut(usize::from(id)) {
                    *o = idx;
                }
                let wire_len = total + if tag.is_some() { 4 } else { 0 };
                self.stats
                    .sent
                    .count(&dst, wire_len.max(offload::tx::MIN_FRAME) as u64);
                Posted::Chain
            }
            Err(QueueError::Full) => Posted::Full,
            Err(_) => {
                self.stats.bad_packets += 1;
                Posted::Done
            }
        }
    }

    /// A frame shorter than 60 bytes, copied whole into the slot: returns (header, slot bytes,
    /// frame bytes consumed).
    fn short_frame(
        &mut self,
        idx: u32,
        frame: &[u8],
        tag: Option<offload::wire::VlanTag>,
        req: &TxRequest,
        wants_offload: bool,
    ) -> Result<(NetHeader, usize, usize), ()> {
        let dev = self.dev;
        let total = frame.len();
        let slot = &mut self.slot(idx)[NetHeader::SIZE..];
        let len = match tag {
            Some(t) => insert_vlan(frame, t, slot).map_err(|_| ())?,
            None => {
                slot[..total].copy_from_slice(frame);
                total
            }
        };
        let mut hdr = NetHeader::default();
        if wants_offload {
            match prepare(&mut slot[..len], len, req, dev) {
                Ok((_, TxAction::Offload(h))) => hdr = h,
                Ok((_, TxAction::SoftwareChecksum)) => {
                    if offload::segment::fill_l4_checksum(&mut slot[..len]).is_err() {
                        self.stats.offload_errors += 1;
                        return Err(());
                    }
                }
                Ok((_, TxAction::Segment(_))) | Err(_) => {
                    self.stats.offload_errors += 1;
                    return Err(());
                }
            }
        }
        let pad = padding(len);
        slot[len..len + pad].fill(0);
        if pad > 0 {
            self.stats.padded += 1;
        }
        if tag.is_some() {
            self.stats.vlan_tagged += 1;
        }
        Ok((hdr, NetHeader::SIZE + len + pad, total))
    }

    /// Copies and rewrites the headers into the slot: returns (header, slot bytes, frame bytes
    /// consumed from the fragments).
    fn rewrite_headers(
        &mut self,
        idx: u32,
        headers: &[u8],
        total: usize,
        tag: Option<offload::wire::VlanTag>,
        req: &TxRequest,
        wants_offload: bool,
    ) -> Result<(NetHeader, usize, usize), ()> {
        let dev = self.dev;
        let hlen = match Layout::parse(headers) {
            Ok(l) => l.header_len(),
            Err(_) if !wants_offload => 14,
            Err(_) => {
                self.stats.offload_errors += 1;
                return Err(());
            }
        };
        let slot = &mut self.slot(idx)[NetHeader::SIZE..];
        let len = match tag {
            Some(t) => insert_vlan(&headers[..hlen], t, slot).map_err(|_| ())?,
            None => {
                slot[..hlen].copy_from_slice(&headers[..hlen]);
                hlen
            }
        };
        let frame_len = total + (len - hlen);
        let mut hdr = NetHeader::default();
        if wants_offload {
            match prepare(&mut slot[..len], frame_len, req, dev) {
                Ok((_, TxAction::Offload(h))) => hdr = h,
                Ok((_, TxAction::Segment(_))) => {
                    self.stats.unsegmentable += 1;
                    return Err(());
                }
                Ok((_, TxAction::SoftwareChecksum)) | Err(OffloadError::Parse(_)) | Err(_) => {
                    self.stats.offload_errors += 1;
                    return Err(());
                }
            }
        }
        if tag.is_some() {
            self.stats.vlan_tagged += 1;
        }
        Ok((hdr, NetHeader::SIZE + len, hlen))
    }

    /// `EvtPacketQueueSetNotificationEnabled`: arms (or disarms) the completion interrupt.
    /// Returns `true` when completions are already pending, so the caller notifies the OS at
    /// once (no lost wake-up).
    pub fn set_notification_enabled(&mut self, enabled: bool) -> bool {
        self.armed = enabled;
        if enabled {
            self.vq.enable_notifications()
        } else {
            self.vq.disable_notifications();
            false
        }
    }

    /// The queue's interrupt fired: returns whether to call
    /// `NetTxQueueNotifyMoreCompletedPacketsAvailable` (only once per arming).
    pub fn interrupt(&mut self) -> bool {
        if core::mem::replace(&mut self.armed, false) {
            self.vq.disable_notifications();
            true
        } else {
            false
        }
    }

    /// After a device reset: every in-flight packet is considered sent (the OS gets it back on
    /// the next Advance, in order), and the virtqueue is cleared for set-up again.
    pub fn abandon_in_flight(&mut self) {
        let (owner, done) = (&self.owner, &mut self.done);
        self.vq.reset(|id| {
            if let Some(d) = owner
                .get(usize::from(id))
                .and_then(|&i| done.get_mut(i as usize))
            {
                *d = true;
            }
        });
    }
}
