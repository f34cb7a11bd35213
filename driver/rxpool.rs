//! The receive buffer pool, in chunks. One physically contiguous common buffer for the whole pool
//! (2 MiB by default, about 9 MiB with 9,000-byte frames and no mergeable buffers) is what a
//! long-running, fragmented guest cannot supply; a chunk of at most [`CHUNK_BYTES`] it almost
//! always can. Each chunk holds a power of two of buffers, so finding a buffer is a shift and a
//! mask, not a division, on the datapath. A buffer larger than a chunk gets a chunk of its own.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::vec::Vec;

use virtio::hal::{Dma, DmaRegion};

use crate::fallible;

/// The largest contiguous allocation the pool asks for (unless one buffer is larger).
pub const CHUNK_BYTES: usize = 128 * 1024;

/// Where one buffer is: its CPU and device addresses, computed once when the pool is made.
#[derive(Debug, Clone, Copy)]
struct BufAddr {
    cpu: *mut u8,
    device: u64,
}

/// Buffers of `buffer_size` bytes in chunks of DMA memory.
pub struct RxPool {
    chunks: Vec<DmaRegion>,
    /// Buffer → addresses: one bounds-checked load per lookup on the datapath instead of the
    /// chunk arithmetic.
    addrs: Vec<BufAddr>,
    /// log2 of the buffers per chunk.
    shift: u32,
    buffer_size: u32,
    buffers: u32,
}

// SAFETY: the address table only points into the pool's own chunks (DmaRegion is Send: plain
// memory its allocator keeps alive until `free`, with no thread affinity); the pool is used from
// one execution context at a time, as its chunks are.
unsafe impl Send for RxPool {}

impl RxPool {
    /// Allocates `buffers` buffers of `buffer_size` bytes (both nonzero), 64-byte aligned; `None`
    /// when the memory is short (what was allocated is given back).
    pub fn new(dma: &impl Dma, buffers: u32, buffer_size: u32) -> Option<Self> {
        if buffers == 0 || buffer_size == 0 {
            return None;
        }
        let per = CHUNK_BYTES
            .checked_div(buffer_size as usize)
            .unwrap_or(1)
            .max(1);
        // The largest power of two that fits: a shift finds the chunk (per >= 1, so
        // leading_zeros < usize::BITS).
        let shift = per.ilog2();
        let per = 1u32 << shift;
        let count = buffers.div_ceil(per) as usize;
        let mut chunks = fallible::with_capacity(count).ok()?;
        let mut addrs = fallible::with_capacity(buffers as usize).ok()?;
        let mut left = buffers;
        while left > 0 {
            let here = left.min(per);
            // Buffer sizes are multiples of the cache line in practice; 64-byte alignment keeps
            // every chunk's first buffer on one.
            // here × buffer_size <= max(CHUNK_BYTES, buffer_size): no overflow (checked anyway).
            let bytes = (here as usize).checked_mul(buffer_size as usize);
            let Some(r) = bytes.and_then(|n| dma.alloc(n, 64)) else {
                for r in chunks {
                    dma.free(r);
                }
                return None;
            };
            // Within the reserved capacity (count chunks): no allocation.
            if chunks.len() == chunks.capacity() {
                dma.free(r);
                for r in chunks {
                    dma.free(r);
                }
                return None;
            }
            chunks.push(r);
            // here <= left.
            left = left.saturating_sub(here);
        }
        let mut pool = Self {
            chunks,
            addrs: Vec::new(),
            shift,
            buffer_size,
            buffers,
        };
        for b in 0..buffers {
            let a = BufAddr {
                cpu: pool.locate(b).map_or(core::ptr::null_mut(), |(c, off)| {
                    c.cpu().as_ptr().wrapping_add(off)
                }),
                // An offset inside the chunk from its device address: no overflow.
                device: pool
                    .locate(b)
                    .map_or(0, |(c, off)| c.device().wrapping_add(off as u64)),
            };
            // Within the capacity reserved above (one per buffer): no allocation.
            if !fallible::push_within(&mut addrs, a) {
                pool.free(dma);
                return None;
            }
        }
        pool.addrs = addrs;
        Some(pool)
    }

    /// Gives the memory back (after the device and the OS are done with every buffer).
    pub fn free(self, dma: &impl Dma) {
        for r in self.chunks {
            dma.free(r);
        }
    }

    /// The chunk and byte offset of buffer `b` (clamped to the pool).
    #[inline]
    fn locate(&self, b: u32) -> Option<(&DmaRegion, usize)> {
        let b = b.min(self.buffers.saturating_sub(1));
        let chunk = self.chunks.get((b >> self.shift) as usize)?;
        // The buffer's index in its chunk, below 2^shift: its offset is inside the chunk's
        // 2^shift × buffer_size bytes (at most max(CHUNK_BYTES, buffer_size)).
        let within = (b & !(u32::MAX << self.shift)) as usize;
        Some((chunk, within.wrapping_mul(self.buffer_size as usize)))
    }

    /// The device address of buffer `b` (clamped to the pool).
    #[inline]
    pub fn device(&self, b: u32) -> u64 {
        self.addr(b).map_or(0, |a| a.device)
    }

    /// The CPU address of buffer `b` (`buffer_size` bytes inside one chunk; clamped to the
    /// pool).
    #[inline]
    pub fn cpu(&self, b: u32) -> *mut u8 {
        self.addr(b).map_or(core::ptr::null_mut(), |a| a.cpu)
    }

    /// Both addresses of buffer `b` (clamped to the pool): (CPU, device).
    #[inline]
    pub fn addresses(&self, b: u32) -> (*mut u8, u64) {
        self.addr(b)
            .map_or((core::ptr::null_mut(), 0), |a| (a.cpu, a.device))
    }

    #[inline]
    fn addr(&self, b: u32) -> Option<&BufAddr> {
        self.addrs
            .get((b as usize).min(self.addrs.len().saturating_sub(1)))
    }

    /// Chunks allocated.
    pub fn chunks(&self) -> usize {
        self.chunks.len()
    }
}
