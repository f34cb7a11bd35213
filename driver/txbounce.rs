//! Confidential mode's transmit buffers: driver-owned DMA memory, reserved when the queue is
//! created, into which every frame is copied before the device sees it — so that no descriptor
//! ever carries the address of the OS's memory (in a confidential guest, the device can reach only
//! memory the guest shared with the host; Linux bounces through swiotlb for the same reason).
//!
//! Two classes of fixed-size buffers, each one contiguous region, with a free list per class:
//!
//! * [`SMALL_BUF`] (2 KiB): the virtio-net header and a frame up to 2036 bytes — every frame of
//!   the standard MTU, tagged or not; one per virtqueue descriptor up to [`MAX_SMALL`];
//! * [`LARGE_BUF`] (64 KiB): the header and the largest frame the OS may hand in — an LSO/USO
//!   packet of `MaximumOffloadSize` with the most headers declared, or a 65500-byte jumbo
//!   frame, each with an inserted tag; [`MAX_LARGE`] of them.
//!
//! Memory per queue: 256 × 2 KiB + 8 × 64 KiB = 1 MiB at most (a 256-descriptor virtqueue, QEMU's
//! default). 256 small buffers keep a full virtqueue of MTU frames in flight; 8 large ones keep
//! 512 KiB of segmentation work queued for the device, more than a 10 Gbit/s link sends in the
//! time QEMU takes to complete a chain. Frames larger than 2036 bytes always take a large buffer
//! (jumbo MTUs then have 8 frames in flight).
//!
//! The pool neither allocates nor blocks after creation: a buffer is taken from a free list (or
//! there is none, and the packet waits) and put back when the device returns its chain, or when
//! the queue abandons its chains after a device reset.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::vec::Vec;
use core::ptr::NonNull;

use virtio::hal::{Dma, DmaRegion};
use virtio::net::NetHeader;

use crate::config::{MAX_OFFLOAD_HEADERS, MAX_OFFLOAD_SIZE};
use crate::os_memory::{FrameFragment, copy_out_raw};

/// Bytes per small buffer.
pub const SMALL_BUF: usize = 2048;
/// Bytes per large buffer.
pub const LARGE_BUF: usize = 64 * 1024;
/// Most small buffers per queue (more than the virtqueue's descriptors would never be used).
pub const MAX_SMALL: u16 = 256;
/// Large buffers per queue.
pub const MAX_LARGE: u16 = 8;

// The largest frames the OS may send fit a large buffer with the header and an inserted tag: an
// LSO packet (`MaximumOffloadSize` of payload behind the most header bytes declared) and a
// `*JumboPacket` of 65500 bytes.
// (Arithmetic on constants: an overflow is a compile error.)
#[allow(clippy::arithmetic_side_effects)]
const _: () =
    assert!(LARGE_BUF >= NetHeader::SIZE + (MAX_OFFLOAD_HEADERS + MAX_OFFLOAD_SIZE) as usize + 4);
static_assertions::const_assert!(LARGE_BUF >= NetHeader::SIZE + 65_500 + 4);
// A standard-MTU frame with a tag fits a small buffer.
static_assertions::const_assert!(SMALL_BUF >= NetHeader::SIZE + 1514 + 4);

/// Confidential mode's transmit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BounceStats {
    /// Frames copied into a shared buffer and posted.
    pub copied: u64,
    /// Advances that stopped posting because every shared buffer of the size needed was with
    /// the device (the packet waited in the ring).
    pub waits: u64,
}

/// Why no buffer was taken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TakeError {
    /// Every buffer of the size needed is with the device: try again after completions.
    Exhausted,
    /// No buffer is that large.
    TooLarge,
}

/// A buffer taken from the pool: writable by the driver until it is posted (`handle`), then the
/// device's until the chain comes back. Not `Clone`: one owner.
#[derive(Debug)]
pub struct Buffer {
    handle: u32,
    cpu: NonNull<u8>,
    device: u64,
    cap: usize,
}

impl Buffer {
    /// The pool's name for the buffer, to give back with [`BouncePool::release`].
    pub const fn handle(&self) -> u32 {
        self.handle
    }

    /// The device address of its first byte.
    pub const fn device(&self) -> u64 {
        self.device
    }

    /// Its size in bytes.
    pub const fn capacity(&self) -> usize {
        self.cap
    }

    /// Writes `src` at byte `at`; `false` (nothing written) when it does not fit.
    pub fn write(&mut self, at: usize, src: &[u8]) -> bool {
        if at.checked_add(src.len()).is_none_or(|end| end > self.cap) {
            return false;
        }
        let dst = self.cpu.as_ptr().wrapping_add(at);
        // SAFETY: [at, at + len) lies inside the buffer (checked above), which the pool handed
        // out to this owner alone and the device does not read before the chain is published;
        // `src` is private memory, so the ranges do not overlap. No reference to the shared
        // memory is made: a raw copy.
        unsafe { core::ptr::copy_nonoverlapping(src.as_ptr(), dst, src.len()) };
        true
    }

    /// Copies bytes `[from, from + len)` of the frame made of `frags` to byte `at`; returns
    /// whether all `len` bytes were there and fit.
    ///
    /// # Safety
    ///
    /// Every fragment's `va` must be readable for `len` bytes (the NetAdapterCx contract for
    /// fragments the driver owns).
    pub unsafe fn copy_frame(
        &mut self,
        at: usize,
        frags: &[FrameFragment],
        from: usize,
        len: usize,
    ) -> bool {
        if at.checked_add(len).is_none_or(|end| end > self.cap) {
            return false;
        }
        let dst = self.cpu.as_ptr().wrapping_add(at);
        // SAFETY: the fragments are readable (the caller's contract); `dst` is writable for `len`
        // bytes (checked above; the buffer is this owner's alone), and the OS's memory is not
        // the pool's.
        let copied = unsafe { copy_out_raw(frags, from, dst, len) };
        copied == len
    }
}

/// The queue's shared transmit buffers.
pub struct BouncePool {
    small: DmaRegion,
    large: DmaRegion,
    small_count: u16,
    large_count: u16,
    /// Free buffers by handle (small: `0..small_count`, large: after them); capacity fixed at
    /// creation, never exceeded (a handle is pushed only when `in_use` says it was taken).
    free_small: Vec<u32>,
    free_large: Vec<u32>,
    in_use: Vec<bool>,
}

impl core::fmt::Debug for BouncePool {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BouncePool")
            .field("small", &(self.free_small.len(), self.small_count))
            .field("large", &(self.free_large.len(), self.large_count))
            .finish()
    }
}

impl BouncePool {
    /// Reserves `small` small and `large` large buffers (at least one of each), or `None` when
    /// the memory cannot be had.
    pub fn new(dma: &impl Dma, small: u16, large: u16) -> Option<Self> {
        let (small, large) = (small.max(1), large.max(1));
        // Two u16 values: no overflow in u32.
        let total = u32::from(small).wrapping_add(u32::from(large));
        // The tables first, fallibly (a failed infallible allocation is a bugcheck): a failure
        // then leaves no DMA memory to give back.
        let free_small = crate::fallible::collect((0..u32::from(small)).rev()).ok()?;
        let free_large = crate::fallible::collect((u32::from(small)..total).rev()).ok()?;
        let in_use = crate::fallible::filled(false, total as usize).ok()?;
        let s = dma.alloc(usize::from(small).checked_mul(SMALL_BUF)?, 64)?;
        let Some(l) = usize::from(large)
            .checked_mul(LARGE_BUF)
            .and_then(|n| dma.alloc(n, 64))
        else {
            dma.free(s);
            return None;
        };
        Some(Self {
            small: s,
            large: l,
            small_count: small,
            large_count: large,
            // Taken from the end: the lowest handles first.
            free_small,
            free_large,
            in_use,
        })
    }

    /// Frees the memory (after the device stopped using every buffer).
    pub fn free(self, dma: &impl Dma) {
        dma.free(self.small);
        dma.free(self.large);
    }

    /// Bytes reserved.
    pub const fn reserved_bytes(&self) -> usize {
        // The two allocations' sizes, which `new` made (checked there).
        (self.small_count as usize)
            .saturating_mul(SMALL_BUF)
            .saturating_add((self.large_count as usize).saturating_mul(LARGE_BUF))
    }

    /// Free buffers (small, large).
    pub fn available(&self) -> (usize, usize) {
        (self.free_small.len(), self.free_large.len())
    }

    /// Takes a buffer of at least `need` bytes: a small one if it fits, else a large one.
    pub fn take(&mut self, need: usize) -> Result<Buffer, TakeError> {
        let (list, region, size, base) = if need <= SMALL_BUF {
            (&mut self.free_small, &self.small, SMALL_BUF, 0)
        } else if need <= LARGE_BUF {
            (
                &mut self.free_large,
                &self.large,
                LARGE_BUF,
                u32::from(self.small_count),
            )
        } else {
            return Err(TakeError::TooLarge);
        };
        let handle = list.pop().ok_or(TakeError::Exhausted)?;
        let k = handle.wrapping_sub(base) as usize;
        let offset = k.saturating_mul(size);
        if offset.saturating_add(size) > region.len() {
            // Not reachable (the lists hold only handles of their class); refuse all the same.
            return Err(TakeError::Exhausted);
        }
        if let Some(u) = self.in_use.get_mut(handle as usize) {
            *u = true;
        }
        Ok(Buffer {
            handle,
            cpu: NonNull::new(region.cpu().as_ptr().wrapping_add(offset)).unwrap_or(region.cpu()),
            device: region.device().wrapping_add(offset as u64),
            cap: size,
        })
    }

    /// Puts back a buffer taken with [`take`](Self::take) (its chain came back, was abandoned, or
    /// was never posted). A handle that is not out is ignored: `false`.
    pub fn release(&mut self, handle: u32) -> bool {
        let Some(u) = self.in_use.get_mut(handle as usize) else {
            return false;
        };
        if !*u {
            return false;
        }
        *u = false;
        let list = if handle < u32::from(self.small_count) {
            &mut self.free_small
        } else {
            &mut self.free_large
        };
        // Within capacity: every handle is in its list at most once (in_use).
        if list.len() < list.capacity() {
            list.push(handle);
        }
        true
    }
}
