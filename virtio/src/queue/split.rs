//! The split virtqueue (virtio 1.2 §2.7).
//!
//! One DMA region holds the descriptor table (16 × N, 16-aligned), the available ring
//! (flags, idx, ring[N], used_event) and the used ring (flags, idx, ring[N] of {id, len},
//! avail_event, 4-aligned).

use alloc::vec::Vec;
use core::sync::atomic::{AtomicU16, AtomicU32, AtomicU64, Ordering, fence};

use super::shared::{Shared, need_event};
use super::{
    DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, IndirectTables, QueueAddresses, QueueConfig,
    QueueError, Segment, Slot, Used, new_slots, writable_len,
};
use crate::hal::{Dma, DmaRegion};

/// `VRING_AVAIL_F_NO_INTERRUPT`.
const AVAIL_F_NO_INTERRUPT: u16 = 1;
/// `VRING_USED_F_NO_NOTIFY`.
const USED_F_NO_NOTIFY: u16 = 1;

/// The part of a split queue's state a used entry moves (see `take_used`).
#[derive(Clone, Copy)]
struct Cursor {
    free_head: u16,
    num_free: u16,
    in_flight: u16,
    last_used: u16,
}

/// A split virtqueue.
#[derive(Debug)]
pub struct SplitQueue {
    region: DmaRegion,
    mem: Shared,
    size: u16,
    /// `size − 1`: every ring index is masked with it, which is what keeps the unchecked
    /// accessors below in bounds.
    mask: u16,
    /// Largest chain that goes into an indirect table (0: none).
    indirect_max: u16,
    avail_off: usize,
    used_off: usize,
    event_idx: bool,
    indirect: Option<IndirectTables>,
    /// Shadow of the descriptor `next` links (free list and chains); never read from the device.
    next: Vec<u16>,
    slots: Vec<Slot>,
    free_head: u16,
    num_free: u16,
    in_flight: u16,
    /// Next avail ring slot to fill (free-running).
    avail_idx: u16,
    /// avail.idx as last published.
    published: u16,
    /// Next used entry to consume (free-running).
    last_used: u16,
    /// used.idx as last read (validated): entries before it can be consumed without a re-read.
    used_seen: u16,
    notifications: bool,
    broken: bool,
}

impl SplitQueue {
    /// Builds a split queue (`config.size` a power of two, 1–32768).
    pub fn new(dma: &impl Dma, config: QueueConfig) -> Result<Self, QueueError> {
        let n = config.size;
        if n == 0 || !n.is_power_of_two() || n > 32768 {
            return Err(QueueError::BadConfig);
        }
        let nn = usize::from(n);
        // n ≤ 32768: every size and offset below is under 2^20 and cannot overflow.
        #[allow(clippy::arithmetic_side_effects)]
        let (avail_off, used_off, len) = {
            let avail_off = 16 * nn;
            let used_off = (avail_off + 6 + 2 * nn).next_multiple_of(4);
            (avail_off, used_off, used_off + 6 + 8 * nn)
        };
        // The shadow first: a failure then leaves no DMA memory to give back.
        let next = super::filled(0u16, nn)?;
        let slots = new_slots(n)?;
        let region = dma.alloc(len, 4096).ok_or(QueueError::OutOfMemory)?;
        let indirect = match IndirectTables::new(dma, n, config.max_indirect) {
            Ok(t) => t,
            Err(e) => {
                dma.free(region);
                return Err(e);
            }
        };
        // SAFETY: the allocator returned zeroed memory valid for `len` bytes, 4096-aligned, kept
        // until `free`, after which `mem` is not used.
        let mem = unsafe { Shared::new(region.cpu(), len) };
        let mut q = Self {
            region,
            mem,
            size: n,
            mask: n.wrapping_sub(1), // n ≥ 1 (checked above)
            indirect_max: indirect.as_ref().map_or(0, |t| t.max),
            avail_off,
            used_off,
            event_idx: config.event_idx,
            indirect,
            next,
            slots,
            free_head: 0,
            num_free: n,
            in_flight: 0,
            avail_idx: 0,
            published: 0,
            last_used: 0,
            used_seen: 0,
            notifications: true,
            broken: false,
        };
        q.init_shadow();
        Ok(q)
    }

    fn init_shadow(&mut self) {
        for (i, link) in self.next.iter_mut().enumerate() {
            *link = (i as u16).wrapping_add(1);
        }
        self.slots.fill(Slot::default());
        self.free_head = 0;
        self.num_free = self.size;
        self.in_flight = 0;
        self.avail_idx = 0;
        self.published = 0;
        self.last_used = 0;
        self.used_seen = 0;
        self.notifications = true;
        self.broken = false;
    }

    // Hot-path ring accessors. The region is exactly `16·N + (6 + 2·N, rounded to 4) + 6 + 8·N`
    // bytes (`new`), so for a masked index i < N every offset below is inside it and aligned to
    // its width (desc 16, avail 2, used 4).

    #[inline]
    fn write_desc(&self, idx: u16, addr: u64, len: u32, flags: u16, next: u16) {
        let off = usize::from(idx & self.mask).wrapping_mul(16);
        let tail = u64::from(len) | (u64::from(flags) << 32) | (u64::from(next) << 48);
        // SAFETY: see above — descriptor `idx & mask` lies in the table, 16-aligned.
        let lo = unsafe { self.mem.atomic::<AtomicU64>(off) };
        lo.store(addr.to_le(), Ordering::Relaxed);
        // SAFETY: the second half of the same descriptor.
        let hi = unsafe { self.mem.atomic::<AtomicU64>(off.wrapping_add(8)) };
        hi.store(tail.to_le(), Ordering::Relaxed);
    }

    #[inline]
    fn store_avail_slot(&self, i: u16, head: u16) {
        // Offsets into the ring (under 2^20) never wrap; `Shared` bounds-checks them anyway.
        let off = self
            .avail_off
            .wrapping_add(4)
            .wrapping_add(2 * usize::from(i & self.mask));
        // SAFETY: see above — avail.ring[i & mask].
        let a = unsafe { self.mem.atomic::<AtomicU16>(off) };
        a.store(head.to_le(), Ordering::Relaxed);
    }

    #[inline]
    fn load_used_elem(&self, i: u16) -> (u32, u32) {
        let off = self
            .used_off
            .wrapping_add(4)
            .wrapping_add(usize::from(i & self.mask).wrapping_mul(8));
        // SAFETY: see above — used.ring[i & mask].id.
        let id = unsafe { self.mem.atomic::<AtomicU32>(off) };
        // SAFETY: used.ring[i & mask].len.
        let len = unsafe { self.mem.atomic::<AtomicU32>(off.wrapping_add(4)) };
        (
            u32::from_le(id.load(Ordering::Relaxed)),
            u32::from_le(len.load(Ordering::Relaxed)),
        )
    }

    pub(crate) fn free(self, dma: &impl Dma) {
        if let Some(t) = self.indirect {
            dma.free(t.region);
        }
        dma.free(self.region);
    }

    pub(crate) fn addresses(&self) -> QueueAddresses {
        let base = self.region.device();
        QueueAddresses {
            desc: base,
            // Inside the ring's DMA region: never wraps.
            driver: base.wrapping_add(self.avail_off as u64),
            device: base.wrapping_add(self.used_off as u64),
        }
    }

    pub(crate) const fn size(&self) -> u16 {
        self.size
    }

    pub(crate) const fn num_free(&self) -> u16 {
        self.num_free
    }

    pub(crate) const fn in_flight(&self) -> u16 {
        self.in_flight
    }

    pub(crate) const fn is_broken(&self) -> bool {
        self.broken
    }

    /// Ring descriptors a chain of `segments` takes: direct while it is short and the ring has
    /// room (fewer writes, no extra cache line), indirect when it is long or the ring is tight.
    #[inline]
    fn ring_descs(&self, segments: usize) -> Option<usize> {
        let indirect_ok = segments > 1 && segments <= usize::from(self.indirect_max);
        let direct_ok = segments <= usize::from(self.size);
        if indirect_ok
            && (segments > super::DIRECT_MAX || segments > usize::from(self.num_free) || !direct_ok)
        {
            Some(1)
        } else if direct_ok {
            Some(segments)
        } else {
            None
        }
    }

    #[inline]
    pub(crate) fn can_add(&self, segments: usize) -> bool {
        !self.broken
            && segments > 0
            && self
                .ring_descs(segments)
                .is_some_and(|d| d <= usize::from(self.num_free))
    }

    #[inline]
    pub(crate) fn add(
        &mut self,
        readable: &[Segment],
        writable: &[Segment],
    ) -> Result<u16, QueueError> {
        // The datapath's chains (a header and a fragment or two, one receive buffer) go the
        // direct way; anything else to the general add.
        match self.try_add_direct(readable, writable) {
            Some(head) => Ok(head),
            None => self.add_any(readable, writable),
        }
    }

    /// `add` for a chain that goes in direct descriptors now (at most DIRECT_MAX segments, the
    /// ring has room, the queue is not broken — what `ring_descs` decides for a short chain the
    /// ring has room for); `None` (nothing written) for any other.
    #[inline(always)]
    pub(crate) fn try_add_direct(
        &mut self,
        readable: &[Segment],
        writable: &[Segment],
    ) -> Option<u16> {
        let total = readable.len().wrapping_add(writable.len()); // two slices: far below usize::MAX
        (!self.broken
            && total != 0
            && total <= super::DIRECT_MAX
            && total <= usize::from(self.num_free))
        .then(|| self.add_direct(readable, writable, total as u16))
    }

    /// Writes a chain of `total` (1..=min(DIRECT_MAX, num_free)) direct descriptors.
    #[inline(always)]
    fn add_direct(&mut self, readable: &[Segment], writable: &[Segment], total: u16) -> u16 {
        let head = self.free_head;
        let (mut idx, mut tail, mut left) = (head, head, total);
        for seg in readable {
            left = left.wrapping_sub(1); // one per segment: ends at 0
            let link = self.next_of(idx);
            let flags = if left != 0 { DESC_F_NEXT } else { 0 };
            self.write_desc(idx, seg.addr, seg.len, flags, link);
            tail = idx;
            idx = link;
        }
        for seg in writable {
            left = left.wrapping_sub(1);
            let link = self.next_of(idx);
            let flags = DESC_F_WRITE | if left != 0 { DESC_F_NEXT } else { 0 };
            self.write_desc(idx, seg.addr, seg.len, flags, link);
            tail = idx;
            idx = link;
        }
        self.free_head = idx;
        // total ≤ num_free (the caller's check); in_flight < size.
        self.num_free = self.num_free.wrapping_sub(total);
        self.in_flight = self.in_flight.wrapping_add(1);
        self.make_available(head, total, tail, writable);
        head
    }

    /// Records the chain `head ..= tail` of `descs` ring descriptors as in flight and puts its
    /// head in the next avail ring slot (published with the next `publish`).
    #[inline(always)]
    fn make_available(&mut self, head: u16, descs: u16, tail: u16, writable: &[Segment]) {
        if let Some(slot) = self.slots.get_mut(usize::from(head & self.mask)) {
            *slot = Slot {
                in_flight: true,
                descs,
                tail,
                writable: if writable.is_empty() {
                    0
                } else {
                    writable_len(writable)
                },
            };
        }
        self.store_avail_slot(self.avail_idx, head);
        self.avail_idx = self.avail_idx.wrapping_add(1);
    }

    /// Any chain: direct or through an indirect table (`ring_descs`), or the error.
    #[inline(never)]
    fn add_any(&mut self, readable: &[Segment], writable: &[Segment]) -> Result<u16, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let total = readable.len().saturating_add(writable.len());
        if total == 0 {
            return Err(QueueError::EmptyChain);
        }
        let descs = self.ring_descs(total).ok_or(QueueError::TooManySegments)?;
        if descs > usize::from(self.num_free) {
            return Err(QueueError::Full);
        }
        let head = self.free_head;
        let mut idx = head;
        let mut tail = head;
        if descs == 1 && total > 1 {
            if let Some(t) = &self.indirect {
                let (addr, len) = t.fill(head, readable, writable, true);
                self.write_desc(idx, addr, len, DESC_F_INDIRECT, 0);
                idx = self.next_of(idx);
            }
        } else {
            let mut remaining = total;
            for (segs, write) in [(readable, 0), (writable, DESC_F_WRITE)] {
                for seg in segs {
                    remaining = remaining.saturating_sub(1);
                    let link = self.next_of(idx);
                    let flags = write | if remaining > 0 { DESC_F_NEXT } else { 0 };
                    self.write_desc(idx, seg.addr, seg.len, flags, link);
                    tail = idx;
                    idx = link;
                }
            }
        }
        self.free_head = idx;
        // descs ≤ num_free (checked above); in_flight < size.
        self.num_free = self.num_free.saturating_sub(descs as u16);
        self.in_flight = self.in_flight.saturating_add(1);
        self.make_available(head, descs as u16, tail, writable);
        Ok(head)
    }

    #[inline]
    fn next_of(&self, idx: u16) -> u16 {
        self.next
            .get(usize::from(idx & self.mask))
            .copied()
            .unwrap_or(0)
    }

    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        if self.avail_idx == self.published {
            return false;
        }
        // Descriptors and ring slots before the index (§2.7.13: memory barrier before idx).
        self.mem.store16(
            self.avail_off.wrapping_add(2),
            self.avail_idx,
            Ordering::Release,
        );
        // The index store before reading the device's suppression state (§2.7.13 step 4).
        fence(Ordering::SeqCst);
        let old = self.published;
        self.published = self.avail_idx;
        if self.event_idx {
            let avail_event = self.mem.load16(
                self.used_off
                    .wrapping_add(4)
                    .wrapping_add(8 * usize::from(self.size)),
                Ordering::Relaxed,
            );
            need_event(avail_event, self.avail_idx, old)
        } else {
            self.mem.load16(self.used_off, Ordering::Relaxed) & USED_F_NO_NOTIFY == 0
        }
    }

    #[inline]
    pub(crate) fn has_used(&self) -> bool {
        !self.broken
            && self
                .mem
                .load16(self.used_off.wrapping_add(2), Ordering::Acquire)
                != self.last_used
    }

    #[inline]
    fn fault(&mut self, e: QueueError) -> Result<Option<Used>, QueueError> {
        self.broken = true;
        Err(e)
    }

    #[inline]
    pub(crate) fn pop_used(&mut self) -> Result<Option<Used>, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        if self.used_seen == self.last_used {
            let published = self
                .mem
                .load16(self.used_off.wrapping_add(2), Ordering::Acquire);
            if published == self.last_used {
                return Ok(None);
            }
            if published.wrapping_sub(self.last_used) > self.in_flight {
                return self.fault(QueueError::DeviceIndexJump {
                    last: self.last_used,
                    published,
                });
            }
            self.used_seen = published;
        }
        let mut c = self.cursor();
        let u = self.take_used(&mut c);
        self.set_cursor(c);
        let u = u?;
        if self.event_idx && self.notifications {
            self.write_used_event(self.last_used);
        }
        Ok(Some(u))
    }

    /// Takes the used entry at `c.last_used`, which the device has published: checked (an id
    /// in range and in flight, a length within what the chain let the device write), its chain
    /// spliced back onto the free list. A bad entry breaks the queue. The ring cursor `c` is the
    /// caller's copy of the queue's (kept in registers across a batch, written back after it).
    #[inline]
    fn take_used(&mut self, c: &mut Cursor) -> Result<Used, QueueError> {
        let (id, len) = self.load_used_elem(c.last_used);
        let Some(slot) = usize::try_from(id).ok().and_then(|i| self.slots.get_mut(i)) else {
            self.broken = true;
            return Err(QueueError::DeviceIdOutOfRange { id });
        };
        let id16 = id as u16;
        if !slot.in_flight {
            self.broken = true;
            return Err(QueueError::DeviceIdNotInFlight { id });
        }
        if len > slot.writable {
            let max = slot.writable;
            self.broken = true;
            return Err(QueueError::DeviceLengthTooLarge { id: id16, len, max });
        }
        slot.in_flight = false;
        let (tail, descs) = (slot.tail, slot.descs);
        // Splice the chain [id .. tail] back onto the free list.
        if let Some(link) = self.next.get_mut(usize::from(tail)) {
            *link = c.free_head;
        }
        c.free_head = id16;
        // The chain was in flight: its descriptors return (num_free + descs ≤ size), and
        // in_flight ≥ 1 — neither wraps.
        c.num_free = c.num_free.wrapping_add(descs);
        c.in_flight = c.in_flight.wrapping_sub(1);
        c.last_used = c.last_used.wrapping_add(1);
        Ok(Used { id: id16, len })
    }

    const fn cursor(&self) -> Cursor {
        Cursor {
            free_head: self.free_head,
            num_free: self.num_free,
            in_flight: self.in_flight,
            last_used: self.last_used,
        }
    }

    const fn set_cursor(&mut self, c: Cursor) {
        self.free_head = c.free_head;
        self.num_free = c.num_free;
        self.in_flight = c.in_flight;
        self.last_used = c.last_used;
    }

    /// See `VirtQueue::drain_used`.
    #[inline]
    pub(crate) fn drain_used(&mut self, mut f: impl FnMut(Used)) -> Result<u32, QueueError> {
        if self.broken {
            return Err(QueueError::Broken);
        }
        let published = self
            .mem
            .load16(self.used_off.wrapping_add(2), Ordering::Acquire);
        let count = published.wrapping_sub(self.last_used);
        if count == 0 {
            return Ok(0);
        }
        if count > self.in_flight {
            self.broken = true;
            return Err(QueueError::DeviceIndexJump {
                last: self.last_used,
                published,
            });
        }
        self.used_seen = published;
        // count <= in_flight <= size: bounded.
        let mut c = self.cursor();
        for _ in 0..count {
            match self.take_used(&mut c) {
                Ok(u) => f(u),
                Err(e) => {
                    self.set_cursor(c);
                    return Err(e);
                }
            }
        }
        self.set_cursor(c);
        if self.event_idx && self.notifications {
            self.write_used_event(self.last_used);
        }
        // Every entry was handed over (a bad one returned above).
        Ok(u32::from(count))
    }

    #[inline]
    fn write_used_event(&self, v: u16) {
        self.mem.store16(
            self.avail_off
                .wrapping_add(4)
                .wrapping_add(2 * usize::from(self.size)),
            v,
            Ordering::Relaxed,
        );
    }

    pub(crate) fn enable_notifications(&mut self) -> bool {
        self.notifications = true;
        if self.event_idx {
            self.write_used_event(self.last_used);
        } else {
            self.mem.store16(self.avail_off, 0, Ordering::Relaxed);
        }
        // The arm must be visible before the re-check of the used index.
        fence(Ordering::SeqCst);
        self.has_used()
    }

    pub(crate) fn disable_notifications(&mut self) {
        self.notifications = false;
        if self.event_idx {
            // §2.7.10: flags stay 0 with EVENT_IDX; an event index just behind what the driver
            // consumed is one the device has already passed, so it will not interrupt.
            self.write_used_event(self.last_used.wrapping_sub(1));
        } else {
            self.mem
                .store16(self.avail_off, AVAIL_F_NO_INTERRUPT, Ordering::Relaxed);
        }
    }

    pub(crate) fn reset(&mut self, mut abandoned: impl FnMut(u16)) {
        for (id, slot) in self.slots.iter().enumerate() {
            if slot.in_flight {
                abandoned(id as u16);
            }
        }
        self.mem.zero_after_device_reset();
        if let Some(t) = &self.indirect {
            t.mem.zero_after_device_reset();
        }
        self.init_shadow();
    }
}
