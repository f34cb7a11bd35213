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

    /// Pointer to a field of `size` bytes at `offset`, if it lies inside and is aligned to `size`.
    fn field(&self, offset: usize, size: usize) -> Option<*mut u8> {
        let end = offset.checked_add(size)?;
        (end <= self.len && offset.is_multiple_of(size))
            .then(|| self.base.as_ptr().wrapping_add(offset))
    }

    pub(crate) fn load8(&self, offset: usize, order: Ordering) -> u8 {
        self.field(offset, 1).map_or(0, |p| {
            // SAFETY: `field` checked bounds; the memory is valid per `new`'s contract and only
            // ever accessed atomically.
            let a = unsafe { AtomicU8::from_ptr(p) };
            a.load(order)
        })
    }

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
            self.store8(offset + i, *b, Ordering::Relaxed);
        }
    }

    pub(crate) fn load16(&self, offset: usize, order: Ordering) -> u16 {
        self.field(offset, 2).map_or(0, |p| {
            // SAFETY: `field` checked bounds and 2-byte alignment (the base is 16-aligned); the
            // memory is valid per `new`'s contract and only ever accessed atomically.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            u16::from_le(a.load(order))
        })
    }

    pub(crate) fn store16(&self, offset: usize, v: u16, order: Ordering) {
        if let Some(p) = self.field(offset, 2) {
            // SAFETY: as in load16.
            let a = unsafe { AtomicU16::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    pub(crate) fn load32(&self, offset: usize, order: Ordering) -> u32 {
        self.field(offset, 4).map_or(0, |p| {
            // SAFETY: as in load16, for 4 bytes.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            u32::from_le(a.load(order))
        })
    }

    pub(crate) fn store32(&self, offset: usize, v: u32, order: Ordering) {
        if let Some(p) = self.field(offset, 4) {
            // SAFETY: as in load16, for 4 bytes.
            let a = unsafe { AtomicU32::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    pub(crate) fn store64(&self, offset: usize, v: u64, order: Ordering) {
        if let Some(p) = self.field(offset, 8) {
            // SAFETY: as in load16, for 8 bytes.
            let a = unsafe { AtomicU64::from_ptr(p.cast()) };
            a.store(v.to_le(), order);
        }
    }

    /// Zeroes the whole window (queue reset).
    pub(crate) fn zero(&self) {
        let mut off = 0;
        while off + 8 <= self.len {
            self.store64(off, 0, Ordering::Relaxed);
            off += 8;
        }
        while off + 2 <= self.len {
            self.store16(off, 0, Ordering::Relaxed);
            off += 2;
        }
    }

    /// Writes a 16-byte descriptor (`addr`, `len`, then `a` and `b` — split: flags, next;
    /// packed: id, flags — the caller passes them in memory order).
    pub(crate) fn write_desc(&self, offset: usize, addr: u64, len: u32, a: u16, b: u16) {
        self.store64(offset, addr, Ordering::Relaxed);
        self.store32(offset + 8, len, Ordering::Relaxed);
        self.store16(offset + 12, a, Ordering::Relaxed);
        self.store16(offset + 14, b, Ordering::Relaxed);
    }
}

/// `vring_need_event`: whether moving an index from `old` to `new` passed `event`.
pub(crate) const fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}
