//! Access to ring memory shared with the device.
//!
//! Every access is an atomic load or store of the field's natural width (plain moves on x86) in
//! little-endian byte order, so concurrent device writes are never a data race and the compiler
//! can neither tear nor elide them. Ordering between fields is made explicit with fences or
//! acquire/release accesses at the call sites.

use core::ptr::NonNull;
use core::sync::atomic::{AtomicU8, AtomicU16, AtomicU32, AtomicU64, Ordering};

/// A window of DMA memory: base pointer and length, with bounds-checked field access.
#[derive(Debug)]
pub(crate) struct Shared {
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the memory is plain DMA memory owned by the queue; access is through atomics only.
unsafe impl Send for Shared {}

impl Shared {
    /// # Safety
    ///
    /// `base` must be valid for reads and writes of `len` bytes, 16-byte aligned, for as long as
    /// this value is used, and accessed by others (the device) only concurrently with atomics or
    /// DMA, never through Rust references.
    pub(crate) const unsafe fn new(base: NonNull<u8>, len: usize) -> Self {
        Self { base, len }
    }

    /// Pointer to a field of `size` bytes (a power of two) at `offset`, if it lies inside. The
    /// offset is rounded down to the field's alignment (every offset the queues compute is
    /// already aligned, so this only makes misalignment impossible rather than checked).
    #[inline]
    fn field(&self, offset: usize, size: usize) -> Option<*mut u8> {
        // `size` is a power of two ≥ 1; `len - offset` only once `offset < len`.
        let offset = offset & !size.wrapping_sub(1);
        (offset < self.len && self.len.wrapping_sub(offset) >= size)
            .then(|| self.base.as_ptr().wrapping_add(offset))
    }

    #[inline]
    pub(crate) fn load8(&self, offset: usize, order: Ordering) -> u8 {
        self.field(offset, 1).map_or(0, |p| {
            // SAFETY: `field` checked bounds; the memory is valid per `new`'s contract and only
            // ever accessed atomically.
            let a = unsafe { AtomicU8::from_ptr(p) };
            a.load(order)
        })
    }

    #[inline]
    pub(crate) fn store8(&self, offset: usize, v: u8, order: Ordering) {
        if let Some(p) = self.field(offset, 1) {
            // SAFETY: as in load8.
            let a = unsafe { AtomicU8::from_ptr(p) };
            a.store(v, order);
        }
    }

    /// Copies `bytes` to `offset` (byte stores; for control-path buffers, not the datapath).
    pub(crate) fn write_bytes(&self, offset: usize, bytes: &[u8]) {
        for (i, b) in bytes.iter().enumerate() {
            // A wrapped offset is outside the region, and `store8` drops it.
            self.store8(offset.wrapping_add(i), *b, Ordering::Relaxed);
        }
    }

    #[inline]
    pub(crate) fn load16(&self, offset: usize, order: Ordering) -> u16 {
        self.field(offset, 2).map_or(0, |p| {
            // SAFETY: `field` checked bounds and aligned the offset to 2 (the base is 16-aligned);
            // the memory is valid per `new`'s contract and only ever accessed atomically.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            u16::from_le(a.load(order))
        })
    }

    #[inline]
    pub(crate) fn store16(&self, offset: usize, v: u16, order: Ordering) {
        if let Some(p) = self.field(offset, 2) {
            // SAFETY: as in load16.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    #[inline]
    pub(crate) fn load32(&self, offset: usize, order: Ordering) -> u32 {
        self.field(offset, 4).map_or(0, |p| {
            // SAFETY: as in load16, for 4 bytes.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            u32::from_le(a.load(order))
        })
    }

    #[inline]
    pub(crate) fn store32(&self, offset: usize, v: u32, order: Ordering) {
        if let Some(p) = self.field(offset, 4) {
            // SAFETY: as in load16, for 4 bytes.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    #[inline]
    pub(crate) fn store64(&self, offset: usize, v: u64, order: Ordering) {
        if let Some(p) = self.field(offset, 8) {
            // SAFETY: as in load16, for 8 bytes.
            let a = unsafe { AtomicU64::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    /// Zeroes the whole window (queue reset).
    ///
    /// Plain (non-atomic) stores: mixing access sizes on atomics is not defined by the memory
    /// model, and at reset nothing else touches the memory. The caller guarantees the device has
    /// been reset (or the queue disabled), so it no longer accesses the window.
    pub(crate) fn zero_after_device_reset(&self) {
        // SAFETY: `base` is valid for `len` bytes (contract of `new`), and after a device reset
        // no other party accesses the memory concurrently, so non-atomic stores cannot race.
        unsafe { core::ptr::write_bytes(self.base.as_ptr(), 0, self.len) }
    }

    /// Writes a 16-byte descriptor (`addr`, `len`, then `a` and `b` — split: flags, next;
    /// packed: id, flags — the caller passes them in memory order) as two 64-bit stores, with one
    /// bounds check for the pair.
    #[inline]
    pub(crate) fn write_desc(&self, offset: usize, addr: u64, len: u32, a: u16, b: u16) {
        let Some(p) = self.field(offset, 16) else {
            return;
        };
        let tail = u64::from(len) | (u64::from(a) << 32) | (u64::from(b) << 48);
        // SAFETY: `field` checked that the 16 bytes lie inside and aligned the offset to 16, so
        // both 8-byte halves are in bounds and 8-aligned; the memory is only accessed atomically.
        let lo = unsafe { AtomicU64::from_ptr(p.cast()) };
        lo.store(addr.to_le(), Ordering::Relaxed);
        // SAFETY: as above, for the second half.
        let hi = unsafe { AtomicU64::from_ptr(p.wrapping_add(8).cast()) };
        hi.store(tail.to_le(), Ordering::Relaxed);
    }
}

impl Shared {
    /// A field pointer without the bounds check, for hot paths whose offsets come from masked
    /// ring indices.
    ///
    /// # Safety
    ///
    /// `offset + size_of::<A>()` must not exceed the window's length and `offset` must be aligned
    /// to `size_of::<A>()`.
    #[inline]
    pub(crate) unsafe fn atomic<A>(&self, offset: usize) -> &A {
        let p = self.base.as_ptr().wrapping_add(offset).cast::<A>();
        // SAFETY: the caller guarantees bounds and alignment; the memory is valid per `new`'s
        // contract and only ever accessed through atomics of one width per field.
        unsafe { &*p }
    }
}

/// `vring_need_event`: whether moving an index from `old` to `new` passed `event`.
#[inline]
pub(crate) const fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
