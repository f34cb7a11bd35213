//! The receive queue engine, with driver-managed buffers (`reference/netadaptercx.md` §2.4,
//! seed 004): the driver owns a pool of DMA buffers and keeps the RX virtqueue full of them
//! independently of the OS; a filled buffer is attached to an OS fragment (its virtual and
//! logical address and a return context), and comes back through `EvtAdapterReturnRxBuffer`
//! to be posted again. Nothing is copied.
//!
//! Advance: repost returned buffers; reap completions into a pending queue; turn pending frames
//! into packets at the front of the OS's packet ring — one fragment per buffer (several with
//! mergeable RX buffers), the first fragment's Offset skipping the virtio-net header — with
//! layout, checksum verdict, RSC and 802.1Q metadata. When the OS has no packet or fragment to
//! spare, frames wait in the pending queue; no buffer is ever lost.

use alloc::vec::Vec;

use alloc::boxed::Box;

use netring::{
    Extension, FragmentRing, HashProtocolType, NetFragment, NetFragmentLogicalAddress,
    NetFragmentReturnContext, NetFragmentVirtualAddress, NetPacket, NetPacketChecksum,
    NetPacketHash, NetPacketIeee8021q, NetPacketRsc, PacketRing, RingError,
};
use offload::checksum::Checksum;
use offload::filter::RxFilter;
use offload::rss::Toeplitz;
use offload::rx::{RxOptions, checksum_fix, metadata, strip_vlan};
use virtio::Features;
use virtio::hal::Dma;
use virtio::net::NetHeader;
use virtio::queue::{QueueError, Segment, VirtQueue};

use crate::fallible;
use crate::notify::NotifyGate;
use crate::rxpool::RxPool;
use crate::stall::StallGuard;
use crate::stats::RxStats;

/// The RX queue's extension handles, validated once at queue creation.
#[derive(Debug, Clone, Copy)]
pub struct RxExtensions {
    /// `ms_packet_checksum`.
    pub checksum: Extension<NetPacketChecksum>,
    /// `ms_packet_rsc`.
    pub rsc: Extension<NetPacketRsc>,
    /// `ms_packet_ieee8021q`.
    pub ieee8021q: Extension<NetPacketIeee8021q>,
    /// `ms_packet_hash` (registered by the OS when receive-side scaling is on).
    pub hash: Extension<NetPacketHash>,
    /// `ms_fragment_virtualaddress`.
    pub virtual_address: Extension<NetFragmentVirtualAddress>,
    /// `ms_fragment_logicaladdress`.
    pub logical_address: Extension<NetFragmentLogicalAddress>,
    /// `ms_fragment_returncontext`.
    pub return_context: Extension<NetFragmentReturnContext>,
}

/// How the queue receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RxSettings {
    /// Buffers in the pool (`*ReceiveBuffers`).
    pub buffers: u32,
    /// Bytes per buffer, including the 12-byte virtio-net header. Without MRG_RXBUF it must hold
    /// the largest frame.
    pub buffer_size: u32,
    /// Strip 802.1Q tags into the extension (`*PriorityVLANTag` ≠ 0).
    pub strip_vlan: bool,
    /// Verify checksums in software when the device gives no verdict.
    pub software_checksum: bool,
    /// Marks this queue's return contexts (the queue pair), so one `EvtAdapterReturnRxBuffer`
    /// for the whole adapter can tell the queues apart ([`context_pair`]).
    pub context_tag: u16,
}

/// Why the queue cannot be created.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxCreateError {
    /// DMA memory could not be allocated.
    OutOfMemory,
    /// Buffer count or size out of range.
    BadSettings,
}

/// An engine that could not be created, and the virtqueue it was given, back.
#[derive(Debug)]
pub struct Rejected<E> {
    /// Why.
    pub error: E,
    /// The virtqueue, for the next attempt.
    pub vq: VirtQueue,
}

/// A failure that stops the queue until the adapter resets it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RxFault {
    /// The OS's ring broke the contract.
    Ring(RingError),
    /// The device broke the virtio contract.
    Device(QueueError),
    /// The device reported a merged packet of more buffers than it could have filled.
    BadBufferCount(u16),
}

/// What an Advance did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxAdvance {
    /// Packets indicated to the OS.
    pub indicated: u32,
    /// Buffers posted to the device.
    pub posted: u32,
    /// Whether the device was notified.
    pub kicked: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Buf {
    /// Ready to be posted.
    Free,
    /// In the virtqueue.
    Posted,
    /// Filled by the device, waiting to be indicated.
    Pending,
    /// Attached to an indicated packet; the OS will return it.
    WithOs,
}

/// A NetAdapterCx receive queue over a virtio-net receive virtqueue.
pub struct RxQueue {
    vq: VirtQueue,
    pool: RxPool,
    buffer_size: u32,
    state: Vec<Buf>,
    free: Vec<u32>,
    /// Chain id → buffer.
    chain_buf: Vec<u32>,
    /// Completed buffers in device order: (buffer, bytes written).
    pending: Vec<(u32, u32)>,
    pending_head: usize,
    pending_len: usize,
    mergeable: bool,
    options: RxOptions,
    settings: RxSettings,
    ext: RxExtensions,
    filter: Option<RxFilter>,
    /// RSS: the Toeplitz tables for the current key and the enabled protocol types.
    /// (allocated once at creation, re-keyed in place: no allocation when the OS changes the key).
    rss_table: Box<Toeplitz>,
    rss: Option<HashProtocolType>,
    stats: RxStats,
    /// Buffers were published since the last kick (suppressed).
    unkicked: bool,
    /// Repeats a kick the device may have missed.
    stall: StallGuard,
}

impl core::fmt::Debug for RxQueue {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("RxQueue")
            .field("buffers", &self.settings.buffers)
            .field("pending", &self.pending_len)
            .field("stats", &self.stats)
            .finish()
    }
}

/// Return contexts carry the queue's tag above bit 24 and the buffer index + 1 below it, so a
/// zeroed (never attached) context is never valid and queues never share one.
const CONTEXT_TAG_SHIFT: u32 = 24;

const fn context_of(tag: u16, buf: u32) -> usize {
    ((tag as usize) << CONTEXT_TAG_SHIFT) | (buf as usize + 1)
}

/// The queue pair a return context belongs to (the tag its queue was created with).
pub const fn context_pair(context: usize) -> usize {
    context >> CONTEXT_TAG_SHIFT
}

impl RxQueue {
    /// Creates the engine and its buffer pool over `vq` (already set up with the device). On
    /// failure `vq` comes back with the error, so the pair can have a queue again.
    #[allow(
        clippy::result_large_err,
        reason = "the virtqueue comes back by value: boxing it would allocate on the out-of-memory path"
    )]
    pub fn new(
        dma: &impl Dma,
        vq: VirtQueue,
        features: Features,
        settings: RxSettings,
        ext: RxExtensions,
    ) -> Result<Self, Rejected<RxCreateError>> {
        let n = settings.buffers;
        // Buffer indices + 1 stay below the tag bits.
        if n == 0 || n > 1 << 16 || (settings.buffer_size as usize) < NetHeader::SIZE + 60 {
            return Err(Rejected {
                error: RxCreateError::BadSettings,
                vq,
            });
        }
        // The engine's tables first (fallibly: a failed infallible allocation is a bugcheck),
        // then the DMA pool, so a failure leaves nothing to give back.
        let tables = (|| {
            let chain_buf = fallible::filled(0, usize::from(vq.size()))?;
            let state = fallible::filled(Buf::Free, n as usize)?;
            let free = fallible::collect((0..n).rev())?;
            // A power of two, so positions wrap with a mask (no division per packet).
            let pending = fallible::filled((0, 0), (n as usize).next_power_of_two())?;
            let rss_table = fallible::boxed(Toeplitz::EMPTY)?;
            Ok::<_, fallible::OutOfMemory>((chain_buf, state, free, pending, rss_table))
        })();
        let Ok((chain_buf, state, free, pending, rss_table)) = tables else {
            return Err(Rejected {
                error: RxCreateError::OutOfMemory,
                vq,
            });
        };
        let Some(pool) = RxPool::new(dma, n, settings.buffer_size) else {
            return Err(Rejected {
                error: RxCreateError::OutOfMemory,
                vq,
            });
        };
        Ok(Self {
            chain_buf,
            vq,
            pool,
            buffer_size: settings.buffer_size,
            state,
            free,
            pending,
            pending_head: 0,
            pending_len: 0,
            mergeable: features.contains(Features::NET_MRG_RXBUF),
            options: RxOptions::from_features(features, settings.software_checksum),
            settings,
            ext,
            filter: None,
            rss_table,
            rss: None,
            stats: RxStats::default(),
            unkicked: false,
            stall: StallGuard::default(),
        })
    }

    /// Frees the DMA memory (after the device stopped using the queue and the OS returned every
    /// buffer).
    pub fn free(self, dma: &impl Dma) {
        self.vq.free(dma);
        self.pool.free(dma);
    }

    /// The virtqueue (for its addresses and notifications).
    pub fn virtqueue(&self) -> &VirtQueue {
        &self.vq
    }

    /// Binds the engine to a new NetAdapterCx queue's extensions. The engine (its buffer pool
    /// and the buffers posted to the device) outlives NetAdapterCx's queue objects, which come
    /// and go across power transitions and restarts; the framework destroys a receive queue
    /// only after the OS returned every indicated buffer.
    pub fn set_extensions(&mut self, ext: RxExtensions) {
        self.ext = ext;
    }

    /// Counters.
    pub const fn stats(&self) -> &RxStats {
        &self.stats
    }

    /// Buffers the OS holds now.
    pub fn buffers_with_os(&self) -> usize {
        self.state.iter().filter(|s| **s == Buf::WithOs).count()
    }

    /// Installs (or removes) the software receive filter, for filtering the device cannot do.
    pub fn set_filter(&mut self, filter: Option<RxFilter>) {
        self.filter = filter;
    }

    /// Turns the software RSS hash (the `ms_packet_hash` value) on — key and protocol types
    /// from the OS — or off. The tables were allocated with the queue; re-keying them allocates
    /// nothing, so this may run on the queue's execution context.
    pub fn set_rss(&mut self, key: Option<(&[u8; offload::rss::KEY_LEN], HashProtocolType)>) {
        self.rss = key.map(|(k, types)| {
            self.rss_table.set_key(k);
            types
        });
    }

    fn buf_device(&self, b: u32) -> u64 {
        self.pool.device(b)
    }

    fn buf_cpu(&self, b: u32) -> *mut u8 {
        self.pool.cpu(b)
    }

    /// The first `len` bytes of buffer `b` (which the device has filled and no one else uses).
    fn buf_bytes(&mut self, b: u32, len: u32) -> &mut [u8] {
        let len = len.min(self.buffer_size) as usize;
        let p = self.buf_cpu(b.min(self.settings.buffers - 1));
        // SAFETY: b < buffers (clamped), so the buffer's `buffer_size` bytes lie inside one chunk
        // of the pool (`RxPool::cpu`); a Pending buffer is out of the device's hands (completed)
        // and not yet given to the OS, so &mut self is
        // its only user.
        unsafe { core::slice::from_raw_parts_mut(p, len) }
    }

    fn set_state(&mut self, b: u32, s: Buf) {
        if let Some(x) = self.state.get_mut(b as usize) {
            *x = s;
        }
    }

    /// Appends to the pending ring. It holds one entry per buffer, and a buffer is pending at
    /// most once, so it cannot overflow.
    /// Read-only view of a filled buffer (for parsing and hashing).
    fn buf_view(&self, b: u32, len: u32) -> &[u8] {
        let len = len.min(self.buffer_size) as usize;
        let p = self.buf_cpu(b.min(self.settings.buffers - 1));
        // SAFETY: as in `buf_bytes`: the buffer lies inside the pool and is out of the device's
        // hands; &self keeps writers out for the slice's lifetime.
        unsafe { core::slice::from_raw_parts(p, len) }
    }

    fn push_pending(&mut self, b: u32, len: u32) {
        let mask = self.pending.len() - 1;
        if let Some(slot) = self
            .pending
            .get_mut((self.pending_head + self.pending_len) & mask)
        {
            *slot = (b, len);
            self.pending_len += 1;
        }
    }

    fn pending_at(&self, k: usize) -> (u32, u32) {
        let mask = self.pending.len() - 1;
        self.pending
            .get((self.pending_head + k) & mask)
            .copied()
            .unwrap_or((0, 0))
    }

    fn pop_pending(&mut self, k: usize) {
        self.pending_head = (self.pending_head + k) & (self.pending.len() - 1);
        self.pending_len -= k;
    }

    /// Marks a buffer free. `free` was created with room for every buffer and holds each at most
    /// once, so the push never allocates.
    fn release(&mut self, b: u32) {
        if let Some(s) = self.state.get_mut(b as usize) {
            *s = Buf::Free;
            self.free.push(b);
        }
    }

    /// `EvtPacketQueueAdvance`.
    // A NetAdapterCx callback is reached through a function pointer; keep it out of line in
    // benchmarks too, so what is measured is what runs.
    #[inline(never)]
    pub fn advance(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<RxAdvance, RxFault> {
        let mut out = RxAdvance::default();
        // 1. Keep the virtqueue full.
        while let Some(b) = self.free.pop() {
            let seg = [Segment {
                addr: self.buf_device(b),
                len: self.buffer_size,
            }];
            match self.vq.add(&[], &seg) {
                Ok(id) => {
                    if let Some(c) = self.chain_buf.get_mut(usize::from(id)) {
                        *c = b;
                    }
                    self.set_state(b, Buf::Posted);
                    out.posted += 1;
                }
                Err(QueueError::Full) => {
                    self.free.push(b);
                    break;
                }
                Err(e) => {
                    self.free.push(b);
                    self.stats.device_faults += 1;
                    return Err(RxFault::Device(e));
                }
            }
        }
        out.kicked = self.vq.publish();
        if out.kicked {
            self.unkicked = false;
        } else if out.posted > 0 {
            self.unkicked = true;
        }
        // 2. Reap.
        let mut reaped = 0u32;
        loop {
            match self.vq.pop_used() {
                Ok(Some(u)) => {
                    reaped += 1;
                    let b = self.chain_buf.get(usize::from(u.id)).copied().unwrap_or(0);
                    self.set_state(b, Buf::Pending);
                    self.push_pending(b, u.len);
                }
                Ok(None) => break,
                Err(e) => {
                    self.stats.device_faults += 1;
                    return Err(RxFault::Device(e));
                }
            }
        }
        self.kick_if_stalled(&mut out, reaped);
        // 3. Indicate.
        out.indicated = self.indicate(packets, fragments)?;
        Ok(out)
    }

    /// Kicks when the queue is stuck — buffers published under a suppressed kick, and since then
    /// nothing received and nothing posted — on the [`StallGuard`]'s back-off. A device waiting
    /// for buffers it was not told about would otherwise never deliver again.
    fn kick_if_stalled(&mut self, out: &mut RxAdvance, reaped: u32) {
        let stuck = self.unkicked && reaped == 0 && out.posted == 0;
        if self.stall.advance(stuck) {
            out.kicked = true;
            self.unkicked = false;
            self.stats.stall_kicks += 1;
        }
    }

    fn indicate(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<u32, RxFault> {
        let mut indicated = 0;
        let mut pkt = packets.begin_index();
        let mut frag = fragments.begin_index();
        let mut pkt_free = packets.owned_count();
        let mut frag_free = fragments.owned_count();
        while self.pending_len > 0 {
            let (first, len) = self.pending_at(0);
            if (len as usize) < NetHeader::SIZE + 14 {
                self.stats.runts += 1;
                self.pop_pending(1);
                self.release(first);
                continue;
            }
            let hdr =
                NetHeader::read(self.buf_bytes(first, NetHeader::SIZE as u32)).unwrap_or_default();
            let count = if self.mergeable {
                usize::from(hdr.num_buffers.max(1))
            } else {
                1
            };
            if count > self.state.len() {
                self.stats.device_faults += 1;
                return Err(RxFault::BadBufferCount(hdr.num_buffers));
            }
            if self.pending_len < count {
                break; // the rest of a merged packet has not arrived yet
            }
            if pkt_free == 0 || (frag_free as usize) < count {
                self.stats.os_ring_exhausted += 1;
                break;
            }
            let total: usize = (0..count)
                .map(|k| self.pending_at(k).1 as usize)
                .sum::<usize>()
                - NetHeader::SIZE;
            // Strip the tag in place (the MAC addresses move 4 bytes forward).
            let mut offset = NetHeader::SIZE as u32;
            let mut tag = None;
            if self.settings.strip_vlan {
                let b = self.buf_bytes(first, len);
                if let Some(t) = strip_vlan(&mut b[NetHeader::SIZE..]) {
                    tag = Some(t);
                    offset += 4;
                    self.stats.vlan_stripped += 1;
                }
            }
            let frame_len = total - (offset as usize - NetHeader::SIZE);
            let first_len = len - offset;
            let options = self.options;
            let (mut meta, dst, hash, fix) = {
                let bytes = self
                    .buf_view(first, len)
                    .get(offset as usize..)
                    .unwrap_or(&[]);
                let meta = metadata(&hdr, bytes, frame_len, options);
                let fix = checksum_fix(&hdr, &meta, bytes, frame_len, tag.is_some(), options);
                let dst = [bytes[0], bytes[1], bytes[2], bytes[3], bytes[4], bytes[5]];
                let hash = match (self.rss, meta.parsed) {
                    (Some(types), Some(l)) => {
                        offload::rss::hash_frame(&self.rss_table, bytes, &l, types)
                    }
                    _ => None,
                };
                (meta, dst, hash, fix)
            };
            if let Some(f) = &self.filter
                && (!f.accepts(&dst) || !f.vlan_accepts(tag.map(|t| t.vid)))
            {
                self.stats.filtered += 1;
                for k in 0..count {
                    let (b, _) = self.pending_at(k);
                    self.release(b);
                }
                self.pop_pending(count);
                continue;
            }
            // The transport checksum the OS will be told is valid must be a real one.
            match fix {
                Ok(None) => {}
                Ok(Some(fix)) => {
                    let mut rest = Checksum::new();
                    for k in 1..count {
                        let (b, blen) = self.pending_at(k);
                        rest.add_bytes(self.buf_view(b, blen));
                    }
                    if let Some(bytes) = self.buf_bytes(first, len).get_mut(offset as usize..) {
                        fix.apply(bytes, rest);
                    }
                    self.stats.checksums_completed += 1;
                }
                Err(_) => {
                    self.stats.checksum_offsets_bad += 1;
                    self.stats.device_faults += 1;
                    meta.checksum = NetPacketChecksum::rx(
                        meta.checksum
                            .rx_layer3()
                            .unwrap_or(netring::RxChecksumEvaluation::NotChecked),
                        netring::RxChecksumEvaluation::NotChecked,
                    );
                }
            }
            // Fragments: one per buffer.
            for k in 0..count {
                let (b, blen) = self.pending_at(k);
                let (off, valid) = if k == 0 {
                    (offset, first_len)
                } else {
                    (0, blen)
                };
                let idx = fragments.advance_index(frag, k as i32);
                let mut f = NetFragment::default();
                // Offset ≤ 16 and lengths ≤ buffer_size < 2^26: the setters cannot fail.
                let _ = f.set_capacity(self.buffer_size);
                let _ = f.set_offset(off);
                let _ = f.set_valid_length(valid);
                *fragments.get_mut(idx).map_err(RxFault::Ring)? = f;
                let va = self.buf_cpu(b);
                let la = self.buf_device(b);
                if let Ok(e) = self.ext.virtual_address.get_mut(fragments, idx) {
                    e.virtual_address = va.cast();
                }
                if let Ok(e) = self.ext.logical_address.get_mut(fragments, idx) {
                    e.logical_address = la;
                }
                if let Ok(e) = self.ext.return_context.get_mut(fragments, idx) {
                    e.handle =
                        core::ptr::without_provenance_mut(context_of(self.settings.context_tag, b));
                }
                self.set_state(b, Buf::WithOs);
            }
            let p = packets.get_mut(pkt).map_err(RxFault::Ring)?;
            *p = NetPacket::new(frag, count as u16);
            p.layout = meta.layout;
            if let Ok(c) = self.ext.checksum.get_mut(packets, pkt) {
                *c = meta.checksum;
            }
            if let Some(rsc) = meta.rsc {
                self.stats.coalesced_packets += 1;
                if let Ok(r) = self.ext.rsc.get_mut(packets, pkt) {
                    *r = rsc;
                }
            }
            if let Some(h) = hash
                && let Ok(e) = self.ext.hash.get_mut(packets, pkt)
            {
                *e = h;
            }
            if let Some(t) = tag
                && let Ok(q) = self.ext.ieee8021q.get_mut(packets, pkt)
            {
                let _ = q.set_priority_code_point(t.pcp);
                let _ = q.set_vlan_identifier(t.vid);
            }
            if meta.checksum.rx_layer4() == Some(netring::RxChecksumEvaluation::Invalid)
                || meta.checksum.rx_layer3() == Some(netring::RxChecksumEvaluation::Invalid)
            {
                self.stats.checksum_errors += 1;
            }
            self.stats.received.count(&dst, frame_len as u64);
            self.pop_pending(count);
            pkt = packets.increment_index(pkt);
            frag = fragments.advance_index(frag, count as i32);
            pkt_free -= 1;
            frag_free -= count as u32;
            indicated += 1;
        }
        packets.set_begin_index(pkt).map_err(RxFault::Ring)?;
        fragments.set_begin_index(frag).map_err(RxFault::Ring)?;
        Ok(indicated)
    }

    /// `EvtAdapterReturnRxBuffer`: the OS is done with the buffer behind `context` (called once
    /// per indicated fragment). The buffer is posted again on the next Advance.
    pub fn return_buffer(&mut self, context: usize) {
        if context_pair(context) != usize::from(self.settings.context_tag) {
            self.stats.bad_returns += 1;
            return;
        }
        let b = (context & ((1 << CONTEXT_TAG_SHIFT) - 1)).wrapping_sub(1);
        match self.state.get(b) {
            Some(Buf::WithOs) => self.release(b as u32),
            _ => self.stats.bad_returns += 1,
        }
    }

    /// `EvtPacketQueueCancel`: gives every packet and fragment the driver holds back to the OS
    /// (packets marked Ignore, nothing attached), and drops frames waiting to be indicated.
    pub fn cancel(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<(), RxFault> {
        while self.pending_len > 0 {
            let (b, _) = self.pending_at(0);
            self.pop_pending(1);
            self.release(b);
            self.stats.cancelled += 1;
        }
        let mut all = packets.all();
        while let Some(p) = all.current_mut() {
            p.set_ignore(true);
            all.advance();
        }
        all.set();
        let end = fragments.end_index();
        fragments.set_begin_index(end).map_err(RxFault::Ring)?;
        Ok(())
    }

    /// `EvtPacketQueueSetNotificationEnabled(TRUE)`: arms `gate` and turns the device's
    /// notifications on. Returns whether to notify the OS now: the device completed buffers
    /// since the last Advance (no interrupt comes for those), claimed through the gate so the
    /// interrupt path does not notify too. Frames the engine holds but cannot indicate — the
    /// OS's packet ring is full (its NBLs are all with the stack), or the rest of a merged
    /// packet has not arrived — are no reason: the OS's returned buffers wake the queue, and
    /// the device's next completion interrupts (arming on them would spin the queue).
    pub fn arm(&mut self, gate: &NotifyGate) -> bool {
        gate.arm_over(&mut self.vq)
    }

    /// `EvtPacketQueueSetNotificationEnabled(FALSE)` (NetAdapterCx never sends it): device
    /// notifications off, the gate idle.
    pub fn disarm(&mut self, gate: &NotifyGate) {
        gate.disarm_over(&mut self.vq);
    }

    /// At the start of every Advance: once `gate` fired (the OS polls now), the device's
    /// notifications go off again.
    pub fn quiet(&mut self, gate: &NotifyGate) {
        gate.quiet_over(&mut self.vq);
    }

    /// After a device reset: buffers the device held are free again (posted anew on the next
    /// Advance); buffers with the OS stay with the OS.
    pub fn abandon_in_flight(&mut self) {
        let (chain_buf, state, free) = (&self.chain_buf, &mut self.state, &mut self.free);
        self.vq.reset(|id| {
            if let Some(&b) = chain_buf.get(usize::from(id))
                && let Some(s) = state.get_mut(b as usize)
            {
                *s = Buf::Free;
                free.push(b);
            }
        });
    }
}
