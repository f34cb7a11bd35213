//! The portability boundary: how the core reaches the device's registers, its PCI configuration
//! space and DMA memory. The Windows glue implements these over mapped BARs,
//! `BUS_INTERFACE_STANDARD` and common buffers; the harness implements them over an in-process
//! register model or QEMU's real device through qtest.

use core::ptr::NonNull;

/// Register access to the device's memory BARs.
///
/// Offsets are relative to the start of the BAR. Implementations must perform exactly one access
/// of the stated width per call (MMIO side effects depend on it) and must not panic; an access
/// outside a BAR reads all-ones and drops writes, as PCI does for a missing device.
pub trait Bars {
    /// Size in bytes of memory BAR `bar` (0–5), or `None` if it is absent or not memory.
    fn bar_len(&self, bar: u8) -> Option<u64>;
    /// 8-bit read.
    fn read8(&self, bar: u8, offset: u64) -> u8;
    /// 16-bit read.
    fn read16(&self, bar: u8, offset: u64) -> u16;
    /// 32-bit read.
    fn read32(&self, bar: u8, offset: u64) -> u32;
    /// 8-bit write.
    fn write8(&self, bar: u8, offset: u64, value: u8);
    /// 16-bit write.
    fn write16(&self, bar: u8, offset: u64, value: u16);
    /// 32-bit write.
    fn write32(&self, bar: u8, offset: u64, value: u32);
}

/// Reads of the device's PCI configuration space (the capability walk needs nothing else).
pub trait PciConfig {
    /// 8-bit read at `offset` (0–255 for conventional space).
    fn read8(&self, offset: u16) -> u8;
    /// 16-bit read.
    fn read16(&self, offset: u16) -> u16 {
        u16::from_le_bytes([self.read8(offset), self.read8(offset.wrapping_add(1))])
    }
    /// 32-bit read.
    fn read32(&self, offset: u16) -> u32 {
        u32::from_le_bytes([
            self.read8(offset),
            self.read8(offset.wrapping_add(1)),
            self.read8(offset.wrapping_add(2)),
            self.read8(offset.wrapping_add(3)),
        ])
    }
}

/// A region of DMA-coherent memory: a CPU pointer and the address the device uses for it.
#[derive(Debug)]
pub struct DmaRegion {
    cpu: NonNull<u8>,
    device: u64,
    len: usize,
}

// SAFETY: a DmaRegion is a handle to memory that its allocator keeps alive until `free`; it has no
// thread affinity (the Windows common buffer and the harness arena are both plain memory).
unsafe impl Send for DmaRegion {}
// SAFETY: shared references only expose the addresses, never the memory itself.
unsafe impl Sync for DmaRegion {}

impl DmaRegion {
    /// Wraps an allocation.
    ///
    /// # Safety
    ///
    /// `cpu` must be valid for reads and writes of `len` bytes until the region is freed, aligned
    /// as it was requested, not used by anything but the owner of this region (and the device at
    /// `device`), and `device` must be the address the device uses for `cpu`.
    pub const unsafe fn new(cpu: NonNull<u8>, device: u64, len: usize) -> Self {
        Self { cpu, device, len }
    }

    /// CPU address of the start.
    pub const fn cpu(&self) -> NonNull<u8> {
        self.cpu
    }

    /// Device (bus) address of the start.
    pub const fn device(&self) -> u64 {
        self.device
    }

    /// Length in bytes.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the region has no bytes.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Allocation of DMA-coherent memory (only at queue or adapter creation, never in the datapath).
///
/// # Safety
///
/// Implementations must return regions that satisfy [`DmaRegion::new`]'s contract, zeroed, and
/// keep them valid until [`Dma::free`] is called with them.
pub unsafe trait Dma {
    /// Allocates `len` zeroed bytes aligned to `align` (a power of two), or `None`.
    fn alloc(&self, len: usize, align: usize) -> Option<DmaRegion>;
    /// Frees a region this allocator returned.
    fn free(&self, region: DmaRegion);
}
