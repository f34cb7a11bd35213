//! The packed virtqueue (virtio 1.2 §2.8).
//!
//! One DMA region holds the descriptor ring (16 × N, 16-aligned) followed by the driver and the
//! device event suppression structures (`{ le16 desc_event_off_wrap; le16 desc_event_flags; }`).
//! Each chain carries a buffer id (< N) in its descriptors; the device writes one used descriptor
//! per chain at the driver's next used position, and the driver skips as many ring slots as the
//! chain occupied (from its shadow, never from device memory).

use alloc::vec::Vec;
use core::sync::atomic::{Ordering, fence};

use super::shared::{Shared, need_event};
use super::{
    DESC_F_INDIRECT, DESC_F_NEXT, DESC_F_WRITE, IndirectTables, QueueAddresses, QueueConfig,
    QueueError, Segment, Slot, Used, new_slots, writable_len,
};
use crate::hal::{Dma, DmaRegion};

/// `VIRTQ_DESC_F_AVAIL`.
pub const DESC_F_AVAIL: u16 = 1 << 7;
/// `VIRTQ_DESC_F_USED`.
pub const DESC_F_USED: u16 = 1 << 15;
/// `RING_EVENT_FLAGS_ENABLE`.
pub const EVENT_FLAGS_ENABLE: u16 = 0;
/// `RING_EVENT_FLAGS_DISABLE`.
pub const EVENT_FLAGS_DISABLE: u16 = 1;
/// `RING_EVENT_FLAGS_DESC` (needs VIRTIO_F_RING_EVENT_IDX).
pub const EVENT_FLAGS_DESC: u16 = 2;

/// A packed virtqueue.
#[derive(Debug)]
pub struct PackedQueue {
    region: DmaRegion,
    mem: Shared,
    size: u16,
    driver_off: usize,
    device_off: usize,
    event_idx: bool,
    indirect: Option<IndirectTables>,
    slots: Vec<Slot>,
    /// Free buffer ids (a stack; the shadow, not device memory, says which are free).
    /// Free buffer ids: a stack of `free_len` entries in a table of `size` reserved at creation
    /// (pushing never grows it: no allocation, no capacity panic on the datapath).
    free_ids: Vec<u16>,
    free_len: usize,
    num_free: u16,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    /// The first head of the unpublished batch and the flags it will get.
    pending_head: Option<(u16, u16)>,
    /// Chains added since the last publish.
    added: u16,
    notifications: bool,
    broken: bool,
}

impl PackedQueue {
    /// Builds a packed queue (`config.size` 1–32768).
    pub fn new(dma: &impl Dma, config: QueueConfig) -> Result<Self, QueueError> {
        let n = config.size;
        if n == 0 || n > 32768 {
            return Err(QueueError::BadConfig);
        }
        let driver_off = 16 * usize::from(n);
        // size ≤ 32768: the ring is under 2^20 bytes.
        let device_off = driver_off.wrapping_add(4);
        let len = device_off.wrapping_add(4);
        // The shadow first: a failure then leaves no DMA memory to give back.
        let slots = new_slots(n)?;
        let free_ids = super::filled(0u16, usize::from(n))?;
        let region = dma.alloc(len, 4096).ok_or(QueueError::OutOfMemory)?;
        let indirect = match IndirectTables::new(dma, n, config.max_indirect) {
            Ok(t) => t,
            Err(e) => {
                dma.free(region);
                return Err(e);
            }
        };
        // SAFETY: zeroed memory valid for `len` bytes, 4096-aligned, kept until `free`.
        let mem = unsafe { Shared::new(region.cpu(), len) };
        let mut q = Self {
            region,
            mem,
            size: n,
            driver_off,
            device_off,
            event_idx: config.event_idx,
            indirect,
            slots,
            free_ids,
            free_len: 0,
            num_free: n,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            pending_head: None,
            added: 0,
            notifications: true,
            broken: false,
        };
        q.init_shadow();
        Ok(q)
    }

    fn init_shadow(&mut self) {
        self.slots.fill(Slot::default());
        for (slot, id) in self.free_ids.iter_mut().zip((0..self.size).rev()) {
            *slot = id;
        }
        self.free_len = self.free_ids.len();
        self.num_free = self.size;
        self.next_avail = 0;
        self.avail_wrap = true;
        self.next_used = 0;
        self.used_wrap = true;
        self.pending_head = None;
        self.added = 0;
        self.notifications = true;
        self.broken = false;
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
            driver: base.wrapping_add(self.driver_off as u64),
            device: base.wrapping_add(self.device_off as u64),
        }
    }

    pub(crate) const fn size(&self) -> u16 {
        self.size
    }

    pub(crate) const fn num_free(&self) -> u16 {
        self.num_free
    }

    pub(crate) fn in_flight(&self) -> u16 {
        self.size.saturating_sub(self.free_len as u16)
    }

    pub(crate) const fn is_broken(&self) -> bool {
        self.broken
    }

    #[inline]
    /// Ring descriptors a chain of `segments` takes (as for the split ring: direct while short
    /// and there is room, else indirect).
    fn ring_descs(&self, segments: usize) -> Option<usize> {
        let max = self.indirect.as_ref().map_or(0, |t| usize::from(t.max));
        let indirect_ok = segments > 1 && segments <= max;
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
            && self.free_len != 0
            && self
                .ring_descs(segments)
                .is_some_and(|d| d <= usize::from(self.num_free))
    }

    /// AVAIL/USED bits that make a descriptor available in the current lap.
    #[inline]
    const fn avail_bits(wrap: bool) -> u16 {
        if wrap { DESC_F_AVAIL } else { DESC_F_USED }
    }

    #[inline]
    fn advance_avail(&mut self) {
        self.next_avail = self.next_avail.wrapping_add(1); // < size, reset below
        if self.next_avail == self.size {
            self.next_avail = 0;
            self.avail_wrap = !self.avail_wrap;
        }
    }

    #[inline]
    pub(crate) fn add(
        &mut self,
        readable: &[Segment],
        writable: &[Segment],
    ) -> Result<u16, QueueError> {
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
        let top = self.free_len.checked_sub(1).ok_or(QueueError::Full)?;
        let id = *self.free_ids.get(top).ok_or(QueueError::Full)?;
        self.free_len = top;
        let head = self.next_avail;
        let mut head_flags = 0;
        if descs == 1 && total > 1 {
            if let Some(t) = &self.indirect {
                let (addr, len) = t.fill(id, readable, writable, false);
                head_flags = DESC_F_INDIRECT | Self::avail_bits(self.avail_wrap);
                // Everything but the flags; the flags are the publication.
                self.write_body(head, addr, len, id);
                self.advance_avail();
            }
        } else {
            let all = readable
                .iter()
                .map(|s| (s, 0))
                .chain(writable.iter().map(|s| (s, DESC_F_WRITE)));
            for (i, (seg, write)) in all.enumerate() {
                let idx = self.next_avail;
                let flags = write
                    | if i.wrapping_add(1) < total {
                        DESC_F_NEXT
                    } else {
                        0
                    }
                    | Self::avail_bits(self.avail_wrap);
                self.write_body(idx, seg.addr, seg.len, id);
                if i == 0 {
                    head_flags = flags;
                } else {
                    // Not yet reachable: the device stops at the unpublished head.
                    self.mem.store16(flags_off(idx), flags, Ordering::Relaxed);
                }
                self.advance_avail();
            }
        }
        match self.pending_head {
            // The batch's first head stays unpublished until `publish`, so the whole batch
            // becomes visible at once.
            None => self.pending_head = Some((head, head_flags)),
            // Later heads: everything before them is written; the device cannot reach them
            // before the batch's first head is published.
            Some(_) => self
                .mem
                .store16(flags_off(head), head_flags, Ordering::Release),
        }
        self.num_free = self.num_free.saturating_sub(descs as u16); // descs ≤ num_free, checked
        self.added = self.added.wrapping_add(descs as u16);
        if let Some(slot) = self.slots.get_mut(usize::from(id)) {
            *slot = Slot {
                in_flight: true,
                descs: descs as u16,
                tail: 0,
                writable: writable_len(writable),
            };
        }
        Ok(id)
    }

    #[inline]
    fn write_body(&self, idx: u16, addr: u64, len: u32, id: u16) {
        let off = usize::from(idx) * 16;
        self.mem.store64(off, addr, Ordering::Relaxed);
        self.mem
            .store32(off.wrapping_add(8), len, Ordering::Relaxed);
        self.mem
            .store16(off.wrapping_add(12), id, Ordering::Relaxed);
    }

    #[inline]
    pub(crate) fn publish(&mut self) -> bool {
        let Some((head, flags)) = self.pending_head.take() else {
            return false;
        };
        // Release: every descriptor of the batch is visible before the head flags (§2.8.21).
        self.mem.store16(flags_off(head), flags, Ordering::Release);
        // The publication before reading the device's suppression state.
        fence(Ordering::SeqCst);
        let added = core::mem::replace(&mut self.added, 0);
        let off_wrap = self.mem.load16(self.device_off, Ordering::Relaxed);
        let event_flags = self
            .mem
            .load16(self.device_off.wrapping_add(2), Ordering::Relaxed);
        match event_flags {
            EVENT_FLAGS_DISABLE => false,
            EVENT_FLAGS_DESC if self.event_idx => {
                let new = self.next_avail;
                let old = new.wrapping_sub(added);
                let mut event = off_wrap & 0x7fff;
                if (off_wrap >> 15 != 0) != self.avail_wrap {
                    event = event.wrapping_sub(self.size);
                }
                need_event(event, new, old)
            }
            // ENABLE, or a value this driver did not ask for: notify, the safe choice.
            _ => true,
        }
    }

    #[inline]
    fn used_at_next(&self, order: Ordering) -> bool {
        let flags = self.mem.load16(flags_off(self.next_used), order);
        let avail = flags & DESC_F_AVAIL != 0;
        let used = flags & DESC_F_USED != 0;
        avail == used && used == self.used_wrap
    }

    #[inline]
    pub(crate) fn has_used(&self) -> bool {
        !self.broken && self.in_flight() > 0 && self.used_at_next(Ordering::Acquire)
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
        if !self.used_at_next(Ordering::Acquire) {
            return Ok(None);
        }
        let off = usize::from(self.next_used) * 16;
        let id = self.mem.load16(off.wrapping_add(12), Ordering::Relaxed);
        let len = self.mem.load32(off.wrapping_add(8), Ordering::Relaxed);
        let Some(slot) = self.slots.get(usize::from(id)).copied() else {
            return self.fault(QueueError::DeviceIdOutOfRange { id: u32::from(id) });
        };
        if !slot.in_flight {
            return self.fault(QueueError::DeviceIdNotInFlight { id: u32::from(id) });
        }
        if len > slot.writable {
            return self.fault(QueueError::DeviceLengthTooLarge {
                id,
                len,
                max: slot.writable,
            });
        }
        // next_used < size and descs ≤ size: the sum is under 2^17.
        let next = u32::from(self.next_used).wrapping_add(u32::from(slot.descs));
        if next >= u32::from(self.size) {
            self.next_used = next.wrapping_sub(u32::from(self.size)) as u16;
            self.used_wrap = !self.used_wrap;
        } else {
            self.next_used = next as u16;
        }
        self.num_free = self.num_free.saturating_add(slot.descs);
        if let Some(s) = self.slots.get_mut(usize::from(id)) {
            s.in_flight = false;
        }
        // At most `size` ids are ever free (the id was in flight), so the slot exists.
        if let Some(slot) = self.free_ids.get_mut(self.free_len) {
            *slot = id;
            self.free_len = self.free_len.wrapping_add(1);
        }
        if self.event_idx && self.notifications {
            self.write_driver_event(EVENT_FLAGS_DESC);
        }
        Ok(Some(Used { id, len }))
    }

    #[inline]
    fn write_driver_event(&self, flags: u16) {
        if flags == EVENT_FLAGS_DESC {
            let off_wrap = self.next_used | (u16::from(self.used_wrap) << 15);
            self.mem
                .store16(self.driver_off, off_wrap, Ordering::Relaxed);
        }
        self.mem
            .store16(self.driver_off.wrapping_add(2), flags, Ordering::Release);
    }

    pub(crate) fn enable_notifications(&mut self) -> bool {
        self.notifications = true;
        self.write_driver_event(if self.event_idx {
            EVENT_FLAGS_DESC
        } else {
            EVENT_FLAGS_ENABLE
        });
        fence(Ordering::SeqCst);
        self.has_used()
    }

    pub(crate) fn disable_notifications(&mut self) {
        self.notifications = false;
        self.write_driver_event(EVENT_FLAGS_DISABLE);
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

/// Offset of descriptor `idx`'s flags (16 bytes a descriptor, flags at 14); `idx` < 32768, so
/// it never wraps (and `Shared` bounds-checks every offset).
#[inline]
const fn flags_off(idx: u16) -> usize {
    (idx as usize).wrapping_mul(16).wrapping_add(14)
}
