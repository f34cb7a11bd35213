//! The receive queue engine, with driver-managed buffers (`reference/netadaptercx.md` §2.4,
//! seed 004): the driver owns a pool of DMA buffers and keeps the RX virtqueue full of them
//! independently of the OS; a filled buffer is attached to an OS fragment (its virtual and
//! logical address and a return context), and comes back through `EvtAdapterReturnRxBuffer`
//! to be posted again. The payload is not copied.
//!
//! The device is untrusted (issue 16): it may rewrite a buffer it completed at any time, also
//! while the driver looks at it. The engine never forms a slice over device-writable memory and
//! never reads a header byte twice: per packet it copies the virtio-net header and the first
//! frame bytes once, with volatile reads, into a private buffer reserved at creation — the
//! addresses and EtherType ([`HEAD_LINK`]) for every packet, on to the headers (up to
//! [`HEAD_COPY`]) for one whose headers are parsed, each read starting where the last stopped —
//! and takes every decision on that copy. The few writes into the buffer (802.1Q strip, checksum
//! completion) write the copy's values; bytes past the copy are read once, by volatile reads,
//! only to be summed. Every value from the device is bounded before use (`num_buffers`, used
//! lengths, RSC counts, empty continuation buffers): a bad one fails that packet, counted, and
//! the queue goes on. In bounce mode ([`RxSettings::bounce`], confidential mode) the whole frame
//! is copied into private memory before the OS sees it.
//!
//! Advance: repost returned buffers; reap completions into a pending queue; turn pending frames
//! into packets at the front of the OS's packet ring — one fragment per buffer (several with
//! mergeable RX buffers), the first fragment's Offset skipping the virtio-net header — with
//! layout, checksum verdict, RSC and 802.1Q metadata. When the OS has no packet or fragment to
//! spare, frames wait in the pending queue; no buffer is ever lost.
//!
//! The layout the OS gets: the full NET_PACKET_LAYOUT, parsed from the copy, when the driver
//! has something to report that depends on the headers — a checksum verdict (the device's
//! `DATA_VALID`/`NEEDS_CSUM`, or software verification; with the checksum extension
//! registered), a checksum to complete, an RSC packet, the software RSS hash. Otherwise only the
//! link layer ([`offload::rx::link_layout`]: Ethernet, length 14 for an untagged Ethernet II
//! frame, else 0), layers 3 and 4 Unspecified with length 0, and no verdict: NetAdapterCx
//! parses the missing layers itself before it translates the metadata (`NxGetPacketLayout`:
//! "a zero length means unknown", §2.4), and the stack checks the checksums as it does for any
//! packet without a verdict. The same work is done once either way, by whoever needs it.
//!
//! The plain path serves the usual packet — one buffer, no bounce, filter or RSS hash, no tag to
//! strip, no checksum to complete, no RSC, no software verification — straight from the copy
//! (link layout, or the parsed one with the device's verdict); anything else takes the general
//! path, with the same result for the packets both could take.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::vec::Vec;

use alloc::boxed::Box;
use core::ptr::NonNull;

use netring::{
    Bound, Extension, FragmentRing, HashProtocolType, NetFragment, NetFragmentLogicalAddress,
    NetFragmentReturnContext, NetFragmentVirtualAddress, NetPacket, NetPacketChecksum,
    NetPacketHash, NetPacketIeee8021q, NetPacketRsc, PacketRing, RingError,
};
use offload::checksum::Checksum;
use offload::filter::RxFilter;
use offload::rss::Toeplitz;
use offload::rx::{RxMetadata, RxOptions, checksum_fix, metadata_with, strip_vlan};
use virtio::Features;
use virtio::hal::Dma;
use virtio::net::NetHeader;
use virtio::queue::{QueueError, Segment, VirtQueue};

use crate::fallible;
use crate::notify::NotifyGate;
use crate::rxpool::RxPool;
use crate::stall::{StallGuard, StallPolicy};
use crate::stats::{FrameCounters, RxStats, add, bump};

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

/// The extensions, bound to this Advance's rings (`None`: not registered, or not usable).
struct BoundRx<'a> {
    checksum: Option<Bound<'a, NetPacketChecksum>>,
    rsc: Option<Bound<'a, NetPacketRsc>>,
    ieee8021q: Option<Bound<'a, NetPacketIeee8021q>>,
    hash: Option<Bound<'a, NetPacketHash>>,
    virtual_address: Option<Bound<'a, NetFragmentVirtualAddress>>,
    logical_address: Option<Bound<'a, NetFragmentLogicalAddress>>,
    return_context: Option<Bound<'a, NetFragmentReturnContext>>,
}

impl BoundRx<'_> {
    /// Writes fragment `idx`'s address extensions (those registered): the virtual address `va`,
    /// the logical address `la`, and the return context `context` (`context_of`).
    #[inline(always)]
    fn write_addresses(&self, idx: u32, va: *mut u8, la: u64, context: usize) {
        if let Some(e) = &self.virtual_address {
            e.write(
                idx,
                NetFragmentVirtualAddress {
                    virtual_address: va.cast(),
                },
            );
        }
        if let Some(e) = &self.logical_address {
            e.write(
                idx,
                NetFragmentLogicalAddress {
                    logical_address: la,
                },
            );
        }
        if let Some(e) = &self.return_context {
            e.write(
                idx,
                NetFragmentReturnContext {
                    handle: core::ptr::without_provenance_mut(context),
                },
            );
        }
    }
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
    /// Confidential mode (`Capabilities::confidential`): copy every frame out of the shared
    /// buffer into a private one (reserved at creation, as many and as large as the pool's)
    /// before the OS sees it, and give the shared buffer back to the device at once; the OS
    /// never reads memory the device can write. The private buffer is freed when the OS
    /// returns it.
    pub bounce: bool,
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

/// How many of the pool's buffers are in each state ([`RxQueue::buffer_counts`]); they add up
/// to the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxBufferCounts {
    /// Ready to be posted.
    pub free: usize,
    /// In the virtqueue.
    pub posted: usize,
    /// Filled by the device, waiting to be indicated.
    pub pending: usize,
    /// Attached to an indicated packet, not yet returned (never in bounce mode).
    pub with_os: usize,
    /// Bounce mode: private buffers with the OS.
    pub private_with_os: usize,
    /// Bounce mode: private buffers free.
    pub private_free: usize,
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
    /// The private copy of the packet being indicated: the virtio-net header and the first
    /// frame bytes, read once from the device's buffer ([`HEAD_COPY`]); every decision about
    /// the packet is made on it.
    head: Box<[u8; HEAD_COPY]>,
    /// The buffers of the packet being indicated: where each one's data lies (a pool buffer,
    /// or in bounce mode a private buffer) and its used length. Capacity: the virtqueue's size.
    segs: Vec<(u32, u32)>,
    /// Bounce mode ([`RxSettings::bounce`]): the private buffers frames are copied to.
    private: Option<PrivatePool>,
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

/// The bytes of a received packet the engine copies out of the device's buffer before looking at
/// it: the virtio-net header and the longest header chain the parser and NET_PACKET_LAYOUT can
/// describe — Ethernet with two tags (22), the longest layer 3 NET_PACKET_LAYOUT's 9-bit length
/// holds (511: IPv4 with options is at most 60, IPv6 with its extension headers up to 511), TCP
/// with options (60) — 605 bytes. A frame whose headers go past it (only an IPv6 chain longer
/// than the layout can report) parses to the layers that fit: a shallower layout, never a
/// wrong one.
pub const HEAD_COPY: usize = NetHeader::SIZE + 22 + 511 + 60;

/// What every packet has copied: the virtio-net header and the first 20 frame bytes — the
/// addresses (the destination decides the counters and the software filter), an 802.1Q tag and
/// the EtherType behind it (the tag strip, the link layout). A packet with nothing to report
/// beyond the link layer ([`offload::rx::HeaderNeed`]) needs no more.
pub const HEAD_LINK: usize = NetHeader::SIZE + 20;

/// What is copied for a packet whose headers are parsed: the virtio-net header and 100 frame
/// bytes (112 in all: whole 8-byte reads), which hold the headers of the usual frames (Ethernet
/// with a tag, IPv4 or IPv6, TCP with timestamps: 18 + 40 + 32 = 90; untagged IPv4 without
/// options, whose headers are at most 14 + 20 + 60 = 94 bytes, always).
/// The copy grows, up to [`HEAD_COPY`], only as far as [`headers_wanted`] says the headers may
/// go (IPv4 or TCP options, two tags, IPv6 extension headers): each byte is still read once —
/// the second read starts where the first stopped.
pub const HEAD_FIRST: usize = NetHeader::SIZE + 100;

/// How many frame bytes the parser may need, judged from `frame` (the first bytes, from the
/// private copy): the link, network and transport headers as far as their lengths can be read
/// there, generously (the largest length when a length field lies past `frame`), and
/// everything (`usize::MAX`) behind an IPv6 next header other than TCP, UDP or ICMPv6.
/// Too small an answer can only make the layout shallower, never wrong: the parse runs on the
/// copy alone.
fn headers_wanted(frame: &[u8]) -> usize {
    let be16 = |i: usize| {
        frame.get(i..i.saturating_add(2)).map(|b| {
            u16::from_be_bytes([
                b.first().copied().unwrap_or(0),
                b.get(1).copied().unwrap_or(0),
            ])
        })
    };
    let byte = |i: usize| frame.get(i).copied();
    // Every position below is at most 14 + 8 + 60 + 60 (or + 40 + 60): the sums saturate only
    // in form, never in fact.
    let mut l2 = 14usize;
    let mut ty = be16(12);
    for _ in 0..2 {
        if matches!(ty, Some(0x8100 | 0x88a8)) {
            ty = be16(l2.saturating_add(2));
            l2 = l2.saturating_add(4);
        }
    }
    // The transport header's length at `at` (TCP: its data offset; UDP and ICMP: 8).
    let l4 = |at: usize, proto: Option<u8>| match proto {
        Some(6) => at.saturating_add(
            byte(at.saturating_add(12)).map_or(60, |b| usize::from(b >> 4).saturating_mul(4)),
        ),
        _ => at.saturating_add(8),
    };
    match ty {
        Some(0x0800) => {
            let ihl = byte(l2).map_or(60, |b| usize::from(b & 0xf).saturating_mul(4));
            l4(l2.saturating_add(ihl), byte(l2.saturating_add(9)))
        }
        Some(0x86dd) => match byte(l2.saturating_add(6)) {
            Some(p @ (6 | 17 | 58)) => l4(l2.saturating_add(40), Some(p)),
            _ => usize::MAX,
        },
        _ => l2,
    }
}

/// Copies `dst.len()` bytes from device-writable memory at `src` into private memory, reading
/// each byte exactly once with volatile reads (8 bytes at a time where aligned): the compiler
/// may neither re-read nor assume the bytes, and the copy is what the caller parses.
///
/// # Safety
///
/// `src` must be valid for reads of `dst.len()` bytes (bytes another agent may write at any
/// time; no reference to them exists).
#[inline(always)]
unsafe fn copy_from_device(dst: &mut [u8], src: *const u8) {
    // The usual first read: HEAD_LINK bytes from the start of a (64-byte aligned) buffer.
    if let Ok(d) = <&mut [u8; HEAD_LINK]>::try_from(&mut *dst)
        && src.addr().is_multiple_of(8)
    {
        const _: () = assert!(HEAD_LINK.is_multiple_of(8));
        let mut p = src;
        for w in d.as_chunks_mut::<8>().0 {
            // SAFETY: `p` is 8-byte aligned and its 8 bytes are inside the range, as `w` is
            // inside `dst`.
            let v = unsafe { core::ptr::read_volatile(p.cast::<u64>()) };
            *w = v.to_ne_bytes();
            p = p.wrapping_add(8);
        }
        return;
    }
    // A 16-byte aligned source (the later stages of a header copy): 16-byte reads, SSE2 (the
    // x86-64 baseline), then what is left as below.
    #[cfg(target_arch = "x86_64")]
    if src.addr().is_multiple_of(16) {
        use core::arch::x86_64::{__m128i, _mm_storeu_si128};
        let (blocks, rest) = dst.as_chunks_mut::<16>();
        let mut p = src;
        for d in blocks {
            // SAFETY: `p` is 16-byte aligned and its 16 bytes are inside the range, as `d` is
            // inside `dst`; one read of each byte.
            let v = unsafe { core::ptr::read_volatile(p.cast::<__m128i>()) };
            // SAFETY: `d` is 16 writable bytes (unaligned store); SSE2 is in the baseline.
            unsafe { _mm_storeu_si128(d.as_mut_ptr().cast(), v) };
            p = p.wrapping_add(16);
        }
        if !rest.is_empty() {
            // SAFETY: `p` is at the same offset in the source as `rest` in `dst`: inside the
            // range.
            unsafe { copy_words(rest, p) };
        }
        return;
    }
    // SAFETY: as this function's.
    unsafe { copy_words(dst, src) };
}

/// The general part of [`copy_from_device`]: byte reads up to an 8-byte boundary of the source,
/// then aligned 8-byte reads, then the bytes left.
///
/// # Safety
///
/// As for [`copy_from_device`].
#[inline(always)]
unsafe fn copy_words(dst: &mut [u8], src: *const u8) {
    // `p` walks the source in step with the destination.
    let lead = src.align_offset(8).min(dst.len());
    let (head, body) = dst.split_at_mut(lead);
    let mut p = src;
    for d in head {
        // SAFETY: `p` is at the same offset in the source as `d` in `dst`: inside the range.
        *d = unsafe { core::ptr::read_volatile(p) };
        p = p.wrapping_add(1);
    }
    let (words, tail) = body.as_chunks_mut::<8>();
    for d in words {
        // SAFETY: `p` is 8-byte aligned (past `lead`) and the 8 bytes are inside the range, as
        // `d` is inside `dst`.
        let v = unsafe { core::ptr::read_volatile(p.cast::<u64>()) };
        *d = v.to_ne_bytes();
        p = p.wrapping_add(8);
    }
    for d in tail {
        // SAFETY: as for the lead bytes.
        *d = unsafe { core::ptr::read_volatile(p) };
        p = p.wrapping_add(1);
    }
}

/// `c` with the transport checksum "not checked" (the OS verifies it), layer 3 as it was.
fn not_checked_l4(c: NetPacketChecksum) -> NetPacketChecksum {
    NetPacketChecksum::rx(
        c.rx_layer3()
            .unwrap_or(netring::RxChecksumEvaluation::NotChecked),
        netring::RxChecksumEvaluation::NotChecked,
    )
}

/// Writes `src` into device-writable memory at `dst` with volatile writes.
///
/// # Safety
///
/// `dst` must be valid for writes of `src.len()` bytes.
unsafe fn write_to_device(dst: *mut u8, src: &[u8]) {
    for (i, &v) in src.iter().enumerate() {
        // SAFETY: i < src.len(): inside the caller's range.
        unsafe { core::ptr::write_volatile(dst.wrapping_add(i), v) };
    }
}

/// Bounce mode's private buffers: ordinary (non-shared) memory reserved at creation, as many
/// and as large as the DMA pool's; each one is free or with the OS. The global allocator is the
/// WDK's nonpaged pool, which is what an indicated fragment needs: the OS builds its MDL over
/// the virtual address and Capacity (`MmBuildMdlForNonPagedPool`: nonpaged, virtually
/// contiguous) and never uses a logical address for received data — the logical-address
/// extension is registered only with DMA capabilities, and is set to 0 for private fragments.
struct PrivatePool {
    /// `count × buffer_size` bytes, from the global allocator (`fallible`); written only
    /// through raw pointers, the OS reads them by virtual address.
    mem: NonNull<u8>,
    layout: core::alloc::Layout,
    buffer_size: u32,
    with_os: Vec<bool>,
    free: Vec<u32>,
}

// SAFETY: the pool owns its memory (no one else frees it); the engine that owns the pool is
// used from one execution context at a time, as the DMA pool's memory is.
unsafe impl Send for PrivatePool {}

impl PrivatePool {
    fn new(count: u32, buffer_size: u32) -> Result<Self, fallible::OutOfMemory> {
        let bytes = (count as usize)
            .checked_mul(buffer_size as usize)
            .ok_or(fallible::OutOfMemory)?;
        let layout =
            core::alloc::Layout::from_size_align(bytes, 64).map_err(|_| fallible::OutOfMemory)?;
        let with_os = fallible::filled(false, count as usize)?;
        let free = fallible::collect((0..count).rev())?;
        if layout.size() == 0 {
            return Err(fallible::OutOfMemory);
        }
        // SAFETY: the layout's size is not zero.
        let p = unsafe { alloc::alloc::alloc_zeroed(layout) };
        let mem = NonNull::new(p).ok_or(fallible::OutOfMemory)?;
        Ok(Self {
            mem,
            layout,
            buffer_size,
            with_os,
            free,
        })
    }

    /// Buffer `b`'s first byte (`buffer_size` bytes follow; `b` clamped to the pool).
    fn cpu(&self, b: u32) -> *mut u8 {
        let b = (b as usize).min(self.with_os.len().saturating_sub(1));
        self.mem
            .as_ptr()
            // b < count, and count × buffer_size was checked when the pool was made.
            .wrapping_add(b.wrapping_mul(self.buffer_size as usize))
    }

    fn set(&mut self, b: u32, with_os: bool) {
        if let Some(s) = self.with_os.get_mut(b as usize) {
            *s = with_os;
        }
    }

    /// Frees buffer `b` (with the OS, or taken for a packet that was not indicated); `false` if
    /// it was not taken. The free list has room for every buffer: the push never allocates
    /// (and a full list, which a taken buffer rules out, leaves the buffer taken: `false`).
    fn release(&mut self, b: u32) -> bool {
        match self.with_os.get_mut(b as usize) {
            Some(s) if *s && fallible::push_within(&mut self.free, b) => {
                *s = false;
                true
            }
            _ => false,
        }
    }
}

impl Drop for PrivatePool {
    fn drop(&mut self) {
        // SAFETY: `mem` came from `alloc_zeroed` with `layout`, and is freed only here.
        unsafe { alloc::alloc::dealloc(self.mem.as_ptr(), self.layout) };
    }
}

/// Return contexts carry the queue's tag above bit 24 and the buffer index + 1 below it, so a
/// zeroed (never attached) context is never valid and queues never share one.
const CONTEXT_TAG_SHIFT: u32 = 24;

const fn context_of(tag: u16, buf: u32) -> usize {
    // buf <= 2^16 (`RxQueue::new`): no overflow.
    ((tag as usize) << CONTEXT_TAG_SHIFT) | (buf as usize).wrapping_add(1)
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
        if n == 0
            || n > 1 << 16
            || (settings.buffer_size as usize) < NetHeader::SIZE + 60
            || settings.buffer_size > NetFragment::MAX_LENGTH
        {
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
            let head = fallible::boxed([0u8; HEAD_COPY])?;
            let segs = fallible::with_capacity(usize::from(vq.size()))?;
            let private = if settings.bounce {
                Some(PrivatePool::new(n, settings.buffer_size)?)
            } else {
                None
            };
            Ok::<_, fallible::OutOfMemory>((
                (chain_buf, state, free, pending, rss_table),
                (head, segs, private),
            ))
        })();
        let Ok(((chain_buf, state, free, pending, rss_table), (head, segs, private))) = tables
        else {
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
            head,
            segs,
            private,
            unkicked: false,
            stall: StallGuard::new(StallPolicy::rx(features)),
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

    /// Buffers the OS holds now (in bounce mode, private buffers).
    pub fn buffers_with_os(&self) -> usize {
        match &self.private {
            Some(p) => p.with_os.iter().filter(|s| **s).count(),
            None => self.state.iter().filter(|s| **s == Buf::WithOs).count(),
        }
    }

    /// The pool's buffers by state (walks the state table: for tests and diagnostics, not the
    /// datapath).
    pub fn buffer_counts(&self) -> RxBufferCounts {
        let mut c = RxBufferCounts::default();
        for s in &self.state {
            match s {
                Buf::Free => c.free = c.free.saturating_add(1),
                Buf::Posted => c.posted = c.posted.saturating_add(1),
                Buf::Pending => c.pending = c.pending.saturating_add(1),
                Buf::WithOs => c.with_os = c.with_os.saturating_add(1),
            }
        }
        if let Some(p) = &self.private {
            c.private_with_os = p.with_os.iter().filter(|s| **s).count();
            c.private_free = p.free.len();
        }
        c
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

    fn set_state(&mut self, b: u32, s: Buf) {
        if let Some(x) = self.state.get_mut(b as usize) {
            *x = s;
        }
    }

    fn pending_at(&self, k: usize) -> (u32, u32) {
        let mask = self.pending.len().wrapping_sub(1);
        self.pending
            .get(self.pending_head.wrapping_add(k) & mask)
            .copied()
            .unwrap_or((0, 0))
    }

    fn pop_pending(&mut self, k: usize) {
        // k <= pending_len (the callers'; the min only keeps that so whatever they pass).
        let k = k.min(self.pending_len);
        self.pending_head = self.pending_head.wrapping_add(k) & self.pending.len().wrapping_sub(1);
        self.pending_len = self.pending_len.wrapping_sub(k);
    }

    /// Marks a buffer free. `free` was created with room for every buffer and holds each at most
    /// once, so the push never allocates (a full list is an internal error, counted).
    fn release(&mut self, b: u32) {
        if let Some(s) = self.state.get_mut(b as usize) {
            *s = Buf::Free;
            if !fallible::push_within(&mut self.free, b) {
                bump(&mut self.stats.internal_errors);
            }
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
                    out.posted = out.posted.wrapping_add(1); // at most the pool's buffers
                }
                // `b` was just popped: there is room for it again.
                Err(QueueError::Full) => {
                    add(
                        &mut self.stats.internal_errors,
                        u64::from(!fallible::push_within(&mut self.free, b)),
                    );
                    break;
                }
                Err(e) => {
                    add(
                        &mut self.stats.internal_errors,
                        u64::from(!fallible::push_within(&mut self.free, b)),
                    );
                    bump(&mut self.stats.device_faults);
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
        let (chain_buf, state) = (&self.chain_buf, &mut self.state);
        let (pending, head, len) = (&mut self.pending, self.pending_head, &mut self.pending_len);
        let reaped = self.vq.drain_used(|u| {
            let b = chain_buf.get(usize::from(u.id)).copied().unwrap_or(0);
            if let Some(x) = state.get_mut(b as usize) {
                *x = Buf::Pending;
            }
            // The pending ring holds one entry per buffer, a buffer pending at most once.
            let mask = pending.len().wrapping_sub(1);
            if let Some(slot) = pending.get_mut(head.wrapping_add(*len) & mask) {
                *slot = (b, u.len);
                // At most one entry per buffer: below the ring's size.
                *len = len.wrapping_add(1);
            }
        });
        let reaped = match reaped {
            Ok(n) => n,
            Err(e) => {
                bump(&mut self.stats.device_faults);
                return Err(RxFault::Device(e));
            }
        };
        self.kick_if_stalled(&mut out, reaped);
        if out.kicked {
            bump(&mut self.stats.kicks);
        }
        // 3. Indicate.
        out.indicated = self.indicate(packets, fragments)?;
        Ok(out)
    }

    /// Kicks when the queue is stuck — nothing received and nothing posted, and under the
    /// [`StallPolicy`] the device calls for (packed ring: buffers published under a suppressed
    /// kick since; device steering: any such stretch) — on the [`StallGuard`]'s back-off. A
    /// device waiting for a kick it was not given would otherwise never deliver again.
    fn kick_if_stalled(&mut self, out: &mut RxAdvance, reaped: u32) {
        let idle = reaped == 0 && out.posted == 0;
        if self.stall.advance(idle, self.unkicked) {
            out.kicked = true;
            self.unkicked = false;
            bump(&mut self.stats.stall_kicks);
        }
    }

    /// Where the bytes of buffer `b` of a packet being indicated are: the DMA buffer, or in
    /// bounce mode the private buffer they were copied to.
    fn data_ptr(&self, b: u32) -> *mut u8 {
        match &self.private {
            Some(p) => p.cpu(b),
            None => self.buf_cpu(b),
        }
    }

    /// The one's-complement sum of the frame bytes `[from, to)` of the packet being indicated
    /// (its buffers in `segs`, the frame starting `offset` bytes into the first), read where
    /// they lie — the DMA buffers, or the private copies in bounce mode — each byte once, by
    /// volatile reads. Called only for bytes past the private header copy.
    ///
    /// A device rewriting them meanwhile can only make this packet's verdict or completed
    /// checksum wrong — which the OS, reading the same memory, sees as a bad packet anyway —
    /// never a length or an offset: those all come from the private copy.
    fn sum_frame(&self, offset: usize, from: usize, to: usize) -> Checksum {
        let mut sum = Checksum::new();
        let mut at = 0usize; // frame position of the current buffer's first frame byte
        for (k, &(b, blen)) in self.segs.iter().enumerate() {
            let (start, n) = if k == 0 {
                (offset, (blen as usize).saturating_sub(offset))
            } else {
                (0, blen as usize)
            };
            // Frame positions and lengths are below 2^32 (used lengths): the saturating forms
            // never saturate.
            let end = at.saturating_add(n);
            let (lo, hi) = (from.max(at), to.min(end));
            let p = self.data_ptr(b);
            let mut pos = lo;
            let mut chunk = [0u8; 256];
            while pos < hi {
                let take = hi.saturating_sub(pos).min(chunk.len());
                let piece = chunk.get_mut(..take).unwrap_or(&mut []);
                // SAFETY: `p` is a buffer of `buffer_size` bytes (`data_ptr`), whose used length
                // `blen` is at most `buffer_size` (checked before the packet is assembled), and
                // `start + (pos - at) + take <= start + n = blen`.
                unsafe {
                    copy_from_device(
                        piece,
                        p.wrapping_add(start.saturating_add(pos.saturating_sub(at))),
                    )
                };
                sum.add_bytes(piece);
                pos = pos.saturating_add(take);
            }
            at = end;
            if at >= to {
                break;
            }
        }
        sum
    }

    /// Gives back the first `k` pending buffers (a packet that is not indicated).
    fn drop_pending(&mut self, k: usize) {
        for i in 0..k {
            let (b, _) = self.pending_at(i);
            self.release(b);
        }
        self.pop_pending(k);
    }

    fn indicate(
        &mut self,
        packets: &mut PacketRing<'_>,
        fragments: &mut FragmentRing<'_>,
    ) -> Result<u32, RxFault> {
        // Extensions are checked once per Advance, then written by masked index.
        let ext = BoundRx {
            checksum: self.ext.checksum.bind(packets).ok(),
            rsc: self.ext.rsc.bind(packets).ok(),
            ieee8021q: self.ext.ieee8021q.bind(packets).ok(),
            hash: self.ext.hash.bind(packets).ok(),
            virtual_address: self.ext.virtual_address.bind(fragments).ok(),
            logical_address: self.ext.logical_address.bind(fragments).ok(),
            return_context: self.ext.return_context.bind(fragments).ok(),
        };
        let mut indicated = 0u32;
        // Counted here, added to the queue's statistics once per Advance.
        let mut received = FrameCounters::default();
        // Every fragment's Capacity: the buffer size (<= NetFragment::MAX_LENGTH, `new`).
        let capacity_bits = u64::from(self.buffer_size) << 26;
        let mut pkt = packets.begin_index();
        let mut frag = fragments.begin_index();
        let mut pkt_free = packets.owned_count();
        let mut frag_free = fragments.owned_count();
        // The most buffers a packet can ever have: the pool, the virtqueue and the OS's
        // fragment ring (one slot of which the OS keeps free) bound it.
        let max_count = (self.state.len())
            .min(usize::from(self.vq.size()))
            .min(fragments.len().saturating_sub(1) as usize)
            .max(1);
        // The plain path (below) serves this Advance's packets unless a feature that looks at
        // every packet is on: bounce mode, the software filter or RSS hash.
        let plain_ok = self.private.is_none() && self.filter.is_none() && self.rss.is_none();
        // Which packets have their headers parsed, decided per queue once.
        let need = offload::rx::HeaderNeed::new(self.options, ext.checksum.is_some())
            .or_always(self.rss.is_some());
        while self.pending_len > 0 {
            let (first, len) = self.pending_at(0);
            if len > self.buffer_size {
                // More bytes than the buffer has: nothing of it can be trusted to be a frame.
                bump(&mut self.stats.bad_lengths);
                bump(&mut self.stats.device_faults);
                self.drop_pending(1);
                continue;
            }
            if (len as usize) < NetHeader::SIZE + 14 {
                bump(&mut self.stats.runts);
                self.drop_pending(1);
                continue;
            }
            // The private copy: the virtio-net header and the first frame bytes, read once —
            // HEAD_LINK bytes; for a packet whose headers are parsed, on to HEAD_FIRST, then up
            // to HEAD_COPY if the headers may go further. Each stage starts where the last
            // stopped: no byte is read twice.
            let mut n = (len as usize).min(HEAD_LINK);
            // `first` is a pool buffer (`buf_cpu`) of `buffer_size` bytes and
            // n <= len <= buffer_size.
            let src = self.buf_cpu(first);
            // SAFETY: as above.
            unsafe { copy_from_device(self.head.get_mut(..n).unwrap_or(&mut []), src) };
            // n >= NetHeader::SIZE + 14: the copy holds the header.
            let hdr = NetHeader::read(self.head.get(..NetHeader::SIZE).unwrap_or(&[]))
                .unwrap_or_default();
            let full = need.wants(&hdr);
            // Parsed, but nothing for the general path to do: the device's verdict only.
            let plain_full = hdr.flags & virtio::net::hdr_flags::NEEDS_CSUM == 0
                && hdr.gso_type & !virtio::net::gso::ECN == virtio::net::gso::NONE
                && !self.options.software_verify;
            if full && (len as usize) > n {
                let more = (len as usize).min(HEAD_FIRST);
                if let Some(rest) = self.head.get_mut(n..more) {
                    // SAFETY: n < more <= len <= buffer_size: inside the buffer; the bytes
                    // before `n` are not read again.
                    unsafe { copy_from_device(rest, src.wrapping_add(n)) };
                    n = more;
                }
            }
            // Untagged IPv4 without options: the headers (at most 14 + 20 + 60 bytes) are in
            // the HEAD_FIRST bytes already.
            if full
                && (len as usize) > n
                && !matches!(
                    self.head
                        .get(NetHeader::SIZE..n)
                        .and_then(|f| f.get(12..15)),
                    Some(&[0x08, 0x00, 0x45])
                )
            {
                let frame = self.head.get(NetHeader::SIZE..n).unwrap_or(&[]);
                let wanted = NetHeader::SIZE.saturating_add(headers_wanted(frame));
                let more = (len as usize).min(HEAD_COPY).min(wanted);
                if let Some(rest) = self.head.get_mut(n..more) {
                    // SAFETY: as above.
                    unsafe { copy_from_device(rest, src.wrapping_add(n)) };
                    n = more;
                }
            }
            // The plain path: one buffer, no checksum to complete, no RSC, no software
            // verification, no tag to strip, room in the OS's rings — the packet goes out as it
            // is, with the link layout or (a device verdict to give) the parsed one.
            if plain_ok
                && (!full || plain_full)
                && (!self.mergeable || hdr.num_buffers <= 1)
                && pkt_free > 0
                && frag_free > 0
            {
                let frame = self.head.get(NetHeader::SIZE..n).unwrap_or(&[]);
                let tagged = matches!(frame.get(12..14), Some(&[0x81, 0x00] | &[0x88, 0xa8]));
                if !(self.settings.strip_vlan && tagged) {
                    let mut dst = [0u8; 6];
                    if let Some(d) = frame.first_chunk::<6>() {
                        dst = *d;
                    }
                    let valid = len.wrapping_sub(NetHeader::SIZE as u32); // len >= 12 + 14 (above)
                    let (layout, checksum) = if full {
                        let m = offload::rx::metadata(&hdr, frame, valid as usize, self.options);
                        if m.checksum.rx_layer4() == Some(netring::RxChecksumEvaluation::Invalid)
                            || m.checksum.rx_layer3()
                                == Some(netring::RxChecksumEvaluation::Invalid)
                        {
                            bump(&mut self.stats.checksum_errors);
                        }
                        (m.layout, m.checksum)
                    } else {
                        (
                            offload::rx::link_layout(frame),
                            NetPacketChecksum::default(),
                        )
                    };
                    let (va, la) = self.pool.addresses(first);
                    // len >= NetHeader::SIZE + 14 (checked above) and <= buffer_size <=
                    // MAX_LENGTH; Offset 12: each value fits its field.
                    *fragments.at_mut(frag) = NetFragment::from_bits(
                        capacity_bits | ((NetHeader::SIZE as u64) << 52) | u64::from(valid),
                    );
                    ext.write_addresses(frag, va, la, context_of(self.settings.context_tag, first));
                    self.set_state(first, Buf::WithOs);
                    // `pkt` is a masked index into the packets the OS gave (pkt_free > 0).
                    let p = packets.at_mut(pkt);
                    *p = NetPacket::new(frag, 1);
                    p.layout = layout;
                    if let Some(c) = &ext.checksum {
                        c.write(pkt, checksum);
                    }
                    received.count(&dst, u64::from(valid));
                    self.pop_pending(1);
                    pkt = packets.increment_index(pkt);
                    frag = fragments.increment_index(frag);
                    // Both were > 0 (above); at most one packet per OS packet.
                    pkt_free = pkt_free.wrapping_sub(1);
                    frag_free = frag_free.wrapping_sub(1);
                    indicated = indicated.wrapping_add(1);
                    continue;
                }
            }
            let count = if self.mergeable {
                usize::from(hdr.num_buffers.max(1))
            } else {
                1
            };
            // The device has filled buffers only out of those it was given and has not
            // returned yet: the packet's are pending or still posted. A count past those, or
            // past what can ever be indicated, never completes: the packet is dropped with the
            // buffers that arrived, rather than waiting forever or stopping the queue.
            let posted = usize::from(self.vq.in_flight());
            if count > max_count || count > self.pending_len.saturating_add(posted) {
                bump(&mut self.stats.bad_buffer_counts);
                bump(&mut self.stats.device_faults);
                self.drop_pending(count.min(self.pending_len));
                continue;
            }
            if self.pending_len < count {
                break; // the rest of a merged packet has not arrived yet
            }
            if pkt_free == 0 || (frag_free as usize) < count {
                bump(&mut self.stats.os_ring_exhausted);
                break;
            }
            // len >= NetHeader::SIZE + 14 (checked above); each length below is at most
            // buffer_size < 2^32 and there are at most 2^16 of them: no sum saturates.
            let mut total = (len as usize).saturating_sub(NetHeader::SIZE);
            let mut bad_len = false;
            for k in 1..count {
                let blen = self.pending_at(k).1;
                bad_len |= blen > self.buffer_size;
                total = total.saturating_add(blen.min(self.buffer_size) as usize);
            }
            if bad_len {
                bump(&mut self.stats.bad_lengths);
                bump(&mut self.stats.device_faults);
                self.drop_pending(count);
                continue;
            }
            // Bounce mode: a private buffer for each buffer holding data, or the packet waits.
            if let Some(p) = &self.private {
                let needed = (0..count)
                    .filter(|&k| k == 0 || self.pending_at(k).1 > 0)
                    .count();
                if p.free.len() < needed {
                    bump(&mut self.stats.bounce_waits);
                    break;
                }
            }
            // Where each buffer's data lies from here on: the DMA buffer, or in bounce mode the
            // private buffer it is copied to now (the header bytes from the copy that was
            // parsed, the rest read once from the shared buffer).
            self.segs.clear();
            let mut lost = false;
            for k in 0..count {
                let (b, blen) = self.pending_at(k);
                let data = match &mut self.private {
                    Some(p) if k == 0 || blen > 0 => {
                        let Some(pb) = p.free.pop() else {
                            lost = true; // counted above: cannot happen
                            break;
                        };
                        p.set(pb, true);
                        let (src, dst) = (self.pool.cpu(b), p.cpu(pb));
                        let blen = blen as usize;
                        let skip = if k == 0 { n } else { 0 };
                        if k == 0 {
                            // SAFETY: `dst` is a private buffer of `buffer_size` >= len >= n
                            // bytes; `head` is another allocation.
                            unsafe { core::ptr::copy_nonoverlapping(self.head.as_ptr(), dst, n) };
                        }
                        // SAFETY: `src` and `dst` are buffers of `buffer_size` >= blen bytes;
                        // `dst` is a private buffer just taken from the free list, so no one
                        // else uses it.
                        let rest = unsafe {
                            // skip = n <= len = blen for the first buffer, 0 after.
                            core::slice::from_raw_parts_mut(
                                dst.wrapping_add(skip),
                                blen.saturating_sub(skip),
                            )
                        };
                        // SAFETY: `src` holds `blen` bytes (see above).
                        unsafe { copy_from_device(rest, src.wrapping_add(skip)) };
                        pb
                    }
                    _ => b,
                };
                // Within the capacity reserved at creation (the virtqueue's size >= count).
                if !fallible::push_within(&mut self.segs, (data, blen)) {
                    lost = true;
                    break;
                }
            }
            if lost {
                // Ruled out above (private buffers counted, `segs` sized for the virtqueue):
                // the packet is dropped rather than indicated with buffers missing.
                bump(&mut self.stats.internal_errors);
                self.release_bounced();
                self.drop_pending(count);
                continue;
            }
            if self.private.is_some() {
                bump(&mut self.stats.bounced);
            }
            // Strip the tag in the copy (the MAC addresses move 4 bytes forward) and write the
            // moved addresses, from the copy, where the OS will read the frame.
            let mut offset = NetHeader::SIZE;
            let mut tag = None;
            if self.settings.strip_vlan
                && let Some(t) = self.head.get_mut(NetHeader::SIZE..n).and_then(strip_vlan)
            {
                tag = Some(t);
                offset = NetHeader::SIZE + 4;
                bump(&mut self.stats.vlan_stripped);
                let dst = self.data_ptr(self.segs.first().map_or(first, |s| s.0));
                // SAFETY: the first buffer holds len >= n >= 30 bytes (strip_vlan needs 18
                // frame bytes); bytes 16..28 are inside it.
                unsafe {
                    write_to_device(dst.wrapping_add(16), self.head.get(16..28).unwrap_or(&[]))
                };
            }
            // offset <= NetHeader::SIZE + 4 < len <= total + NetHeader::SIZE.
            let frame_len = total.saturating_sub(offset.saturating_sub(NetHeader::SIZE));
            let first_len = len.saturating_sub(offset as u32);
            let options = self.options;
            let copied = n.saturating_sub(offset);
            let (mut meta, dst, hash, fix) = {
                let bytes = self.head.get(offset..n).unwrap_or(&[]);
                let mut dst = [0u8; 6];
                if let Some(d) = bytes.get(..6) {
                    dst.copy_from_slice(d);
                }
                if full {
                    let sum_tail = |from: usize, to: usize| Some(self.sum_frame(offset, from, to));
                    let meta = metadata_with(&hdr, bytes, frame_len, options, sum_tail);
                    let fix = checksum_fix(&hdr, &meta, bytes, frame_len, tag.is_some(), options);
                    let hash = match (self.rss, meta.parsed) {
                        (Some(types), Some(l)) => {
                            offload::rss::hash_frame(&self.rss_table, bytes, &l, types)
                        }
                        _ => None,
                    };
                    (meta, dst, hash, fix)
                } else {
                    // Nothing to report beyond the link layer: the OS parses the rest and
                    // checks the checksums itself.
                    let meta = RxMetadata {
                        layout: offload::rx::link_layout(bytes),
                        checksum: NetPacketChecksum::default(),
                        rsc: None,
                        parsed: None,
                    };
                    (meta, dst, None, Ok(None))
                }
            };
            if let Some(f) = &self.filter
                && (!f.accepts(&dst) || !f.vlan_accepts(tag.map(|t| t.vid)))
            {
                bump(&mut self.stats.filtered);
                self.release_bounced();
                self.drop_pending(count);
                continue;
            }
            // The transport checksum the OS will be told is valid must be a real one: computed
            // over the copy for the bytes it holds and over the rest where it lies, written
            // from the copy.
            match fix {
                Ok(None) => {}
                Ok(Some(fix)) => {
                    let rest = self.sum_frame(offset, copied, frame_len);
                    let applied = match self.head.get_mut(offset..n) {
                        Some(bytes) => fix.apply(bytes, rest),
                        None => Err(offload::rx::ChecksumFixError::OutsideFrame),
                    };
                    let at = offset.saturating_add(fix.field);
                    let dst = self.data_ptr(self.segs.first().map_or(first, |s| s.0));
                    match (applied, self.head.get(at..).and_then(|h| h.get(..2))) {
                        (Ok(()), Some(field)) => {
                            // SAFETY: `checksum_fix` puts the field inside the copy, which is
                            // a prefix of the first buffer's `len` bytes.
                            unsafe { write_to_device(dst.wrapping_add(at), field) };
                            bump(&mut self.stats.checksums_completed);
                        }
                        // Ruled out by `checksum_fix`: the OS checks the checksum itself.
                        _ => {
                            bump(&mut self.stats.internal_errors);
                            meta.checksum = not_checked_l4(meta.checksum);
                        }
                    }
                }
                Err(_) => {
                    bump(&mut self.stats.checksum_offsets_bad);
                    bump(&mut self.stats.device_faults);
                    meta.checksum = not_checked_l4(meta.checksum);
                }
            }
            if meta.rsc.is_some_and(|r| r.coalesced_segment_count == 0) {
                // Zero coalesced segments is no RSC packet: a plain one.
                meta.rsc = None;
                bump(&mut self.stats.rsc_zero_segments);
                bump(&mut self.stats.device_faults);
            }
            // Fragments: one per buffer that holds data; an empty continuation buffer is taken
            // back (a zero-length fragment breaks the OS's contract).
            let mut frags = 0u32;
            for k in 0..count {
                let (b, blen) = self.pending_at(k);
                if k > 0 && blen == 0 {
                    bump(&mut self.stats.empty_fragments);
                    self.release(b);
                    continue;
                }
                let (off, valid) = if k == 0 {
                    (offset as u32, first_len)
                } else {
                    (0, blen)
                };
                let idx = fragments.advance_index(frag, frags as i32);
                // Offset <= 16 and valid <= buffer_size <= MAX_LENGTH (checked at creation):
                // each value fits its field.
                *fragments.at_mut(idx) = NetFragment::from_bits(
                    capacity_bits | (u64::from(off) << 52) | u64::from(valid),
                );
                let (owner, va, la) = match &self.private {
                    Some(p) => {
                        let pb = self.segs.get(k).map_or(0, |s| s.0);
                        // Private memory has no device address; the OS reads received
                        // fragments by their virtual address.
                        (pb, p.cpu(pb), 0)
                    }
                    None => {
                        let (va, la) = self.pool.addresses(b);
                        (b, va, la)
                    }
                };
                ext.write_addresses(idx, va, la, context_of(self.settings.context_tag, owner));
                if self.private.is_some() {
                    // Copied: the shared buffer goes back to the device on the next Advance.
                    self.release(b);
                } else {
                    self.set_state(b, Buf::WithOs);
                }
                frags = frags.saturating_add(1);
            }
            // `pkt` is a masked index into the packets the OS gave (pkt_free > 0).
            let p = packets.at_mut(pkt);
            *p = NetPacket::new(frag, frags as u16);
            p.layout = meta.layout;
            if let Some(c) = &ext.checksum {
                c.write(pkt, meta.checksum);
            }
            if let Some(rsc) = meta.rsc {
                bump(&mut self.stats.coalesced_packets);
                if let Some(r) = &ext.rsc {
                    r.write(pkt, rsc);
                }
            }
            if let Some(h) = hash
                && let Some(e) = &ext.hash
            {
                e.write(pkt, h);
            }
            if let Some(t) = tag
                && let Some(e) = &ext.ieee8021q
            {
                let mut q = e.read(pkt);
                let _ = q.set_priority_code_point(t.pcp);
                let _ = q.set_vlan_identifier(t.vid);
                e.write(pkt, q);
            }
            if meta.checksum.rx_layer4() == Some(netring::RxChecksumEvaluation::Invalid)
                || meta.checksum.rx_layer3() == Some(netring::RxChecksumEvaluation::Invalid)
            {
                bump(&mut self.stats.checksum_errors);
            }
            received.count(&dst, frame_len as u64);
            self.pop_pending(count);
            pkt = packets.increment_index(pkt);
            frag = fragments.advance_index(frag, frags as i32);
            // A packet and `frags` fragments were free (checked before assembling).
            pkt_free = pkt_free.saturating_sub(1);
            frag_free = frag_free.saturating_sub(frags);
            indicated = indicated.saturating_add(1);
        }
        self.stats.received.merge(&received);
        packets.set_begin_index(pkt).map_err(RxFault::Ring)?;
        fragments.set_begin_index(frag).map_err(RxFault::Ring)?;
        Ok(indicated)
    }

    /// Bounce mode: frees the private buffers a packet that is not indicated was copied to.
    fn release_bounced(&mut self) {
        if let Some(p) = &mut self.private {
            for (k, &(pb, blen)) in self.segs.iter().enumerate() {
                if (k == 0 || blen > 0) && !p.release(pb) {
                    bump(&mut self.stats.internal_errors);
                }
            }
        }
    }

    /// `EvtAdapterReturnRxBuffer`: the OS is done with the buffer behind `context` (called once
    /// per indicated fragment). The buffer is posted again on the next Advance.
    pub fn return_buffer(&mut self, context: usize) {
        if context_pair(context) != usize::from(self.settings.context_tag) {
            bump(&mut self.stats.bad_returns);
            return;
        }
        let b = (context & ((1 << CONTEXT_TAG_SHIFT) - 1)).wrapping_sub(1);
        if let Some(p) = &mut self.private {
            if !u32::try_from(b).is_ok_and(|b| p.release(b)) {
                bump(&mut self.stats.bad_returns);
            }
            return;
        }
        match self.state.get(b) {
            Some(Buf::WithOs) => self.release(b as u32),
            _ => bump(&mut self.stats.bad_returns),
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
            bump(&mut self.stats.cancelled);
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
        let internal_errors = &mut self.stats.internal_errors;
        self.vq.reset(|id| {
            if let Some(&b) = chain_buf.get(usize::from(id))
                && let Some(s) = state.get_mut(b as usize)
            {
                *s = Buf::Free;
                if !fallible::push_within(free, b) {
                    bump(internal_errors);
                }
            }
        });
    }
}
