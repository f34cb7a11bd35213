//! The core's machine boundary on Windows: memory BARs mapped with `MmMapIoSpaceEx`, PCI
//! configuration reads through `BUS_INTERFACE_STANDARD`, and DMA memory from WDF common buffers
//! of the adapter's DMA v3 enabler.

use core::ffi::c_void;
use core::ptr::NonNull;

use virtio::hal::{Bars, Dma, DmaRegion, PciConfig};
use wdk::wdf::SpinLock;
use wdk_sys::ntddk::{MmMapIoSpaceEx, MmUnmapIoSpace};
use wdk_sys::{
    BUS_INTERFACE_STANDARD, NT_SUCCESS, PHYSICAL_ADDRESS, WDF_COMMON_BUFFER_CONFIG,
    WDF_NO_OBJECT_ATTRIBUTES, WDFCOMMONBUFFER, WDFDMAENABLER, call_unsafe_wdf_function_binding,
};

/// `PAGE_READWRITE` (winnt.h).
const PAGE_READWRITE: u32 = 0x04;
/// `PAGE_NOCACHE` (winnt.h).
const PAGE_NOCACHE: u32 = 0x200;

/// `PCI_WHICHSPACE_CONFIG`.
const PCI_WHICHSPACE_CONFIG: u32 = 0;

/// One mapped memory BAR.
#[derive(Debug, Clone, Copy)]
pub struct MappedBar {
    /// Kernel virtual address of the mapping.
    pub va: NonNull<u8>,
    /// Length in bytes.
    pub len: u64,
}

/// The device's memory BARs, by BAR number. `Copy`: queue contexts keep their own copy to kick
/// the device without taking the adapter's lock (mappings live until ReleaseHardware, after
/// every queue is gone).
#[derive(Debug, Clone, Copy, Default)]
pub struct MappedBars {
    /// BAR 0–5.
    pub bars: [Option<MappedBar>; 6],
}

// SAFETY: the mappings are device registers valid from PrepareHardware to ReleaseHardware;
// register accesses are single volatile reads/writes with no Rust-side state.
unsafe impl Send for MappedBars {}
// SAFETY: as above; concurrent register accesses are what the device expects.
unsafe impl Sync for MappedBars {}

impl MappedBars {
    /// Maps `len` bytes of device memory at physical address `pa` as BAR `bar` (uncached).
    ///
    /// # Safety
    ///
    /// `pa`/`len` must be a translated memory resource of this device, at PASSIVE_LEVEL.
    pub unsafe fn map(&mut self, bar: u8, pa: i64, len: u64) -> bool {
        let Some(slot) = self.bars.get_mut(usize::from(bar)) else {
            return false;
        };
        let mut phys = PHYSICAL_ADDRESS::default();
        phys.QuadPart = pa;
        // SAFETY: the caller guarantees a resource of this device; uncached, read-write.
        let va = unsafe { MmMapIoSpaceEx(phys, len, PAGE_READWRITE | PAGE_NOCACHE) };
        match NonNull::new(va.cast::<u8>()) {
            Some(va) => {
                *slot = Some(MappedBar { va, len });
                true
            }
            None => false,
        }
    }

    /// Unmaps every BAR (ReleaseHardware).
    ///
    /// # Safety
    ///
    /// Nothing may access the registers afterwards (no queue, interrupt or adapter object
    /// holding a copy may run).
    pub unsafe fn unmap(&mut self) {
        for b in self.bars.iter_mut().filter_map(Option::take) {
            // SAFETY: the mapping came from MmMapIoSpaceEx with this length.
            unsafe { MmUnmapIoSpace(b.va.as_ptr().cast(), b.len) };
        }
    }

    /// The address of a `width`-byte register at `offset` in `bar`: inside the mapping and
    /// naturally aligned (an unaligned volatile access is undefined behaviour), else `None` —
    /// the access then reads all-ones and drops writes, as for a missing device. The core
    /// validates capability alignment first (`Capabilities::read`); this is the last line.
    fn at(&self, bar: u8, offset: u64, width: u64) -> Option<*mut u8> {
        let b = self.bars.get(usize::from(bar))?.as_ref()?;
        if width == 0 || !offset.is_multiple_of(width) {
            return None;
        }
        (offset.checked_add(width)? <= b.len).then(|| b.va.as_ptr().wrapping_add(offset as usize))
    }
}

/// Register accesses at an address inside a mapping from `MmMapIoSpaceEx`. This is the one place
/// the Windows and the glue-host builds differ: on Windows it is a volatile access of the mapped
/// device memory; on the glue host, which cannot map a device's BAR into this process, the host's
/// bus routes the access to the device (QEMU over qtest, or a register model).
macro_rules! reg_access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, bar: u8, offset: u64) -> $t {
            let Some(p) = self.at(bar, offset, core::mem::size_of::<$t>() as u64) else {
                return <$t>::MAX;
            };
            #[cfg(windows)]
            // SAFETY: inside a mapped BAR; naturally aligned accesses are the core's rule.
            let v = unsafe { p.cast::<$t>().read_volatile() };
            #[cfg(not(windows))]
            let v = wdk_sys::host::read_register(p as usize, core::mem::size_of::<$t>()) as $t;
            v
        }
        fn $write(&self, bar: u8, offset: u64, value: $t) {
            let Some(p) = self.at(bar, offset, core::mem::size_of::<$t>() as u64) else {
                return;
            };
            #[cfg(windows)]
            // SAFETY: inside a mapped BAR.
            unsafe {
                p.cast::<$t>().write_volatile(value)
            };
            #[cfg(not(windows))]
            wdk_sys::host::write_register(p as usize, core::mem::size_of::<$t>(), value.into());
        }
    };
}

impl Bars for MappedBars {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.bars.get(usize::from(bar))?.as_ref().map(|b| b.len)
    }
    reg_access!(read8, write8, u8);
    reg_access!(read16, write16, u16);
    reg_access!(read32, write32, u32);
}

/// PCI configuration space through the bus driver's `BUS_INTERFACE_STANDARD`.
pub struct PciBus {
    /// The interface (queried with `WdfFdoQueryForInterface`, released in ReleaseHardware).
    pub iface: BUS_INTERFACE_STANDARD,
}

impl PciBus {
    /// Reads `buf.len()` bytes at `offset`; false if the bus driver returned fewer.
    pub fn read(&self, offset: u32, buf: &mut [u8]) -> bool {
        let Some(get) = self.iface.GetBusData else {
            return false;
        };
        // SAFETY: the interface is referenced until ReleaseHardware; the buffer is ours.
        let n = unsafe {
            get(
                self.iface.Context,
                PCI_WHICHSPACE_CONFIG,
                buf.as_mut_ptr().cast::<c_void>(),
                offset,
                buf.len() as u32,
            )
        };
        n as usize == buf.len()
    }

    /// Releases the interface reference.
    pub fn release(&mut self) {
        if let Some(deref) = self.iface.InterfaceDereference.take() {
            // SAFETY: one reference was taken by the query.
            unsafe { deref(self.iface.Context) };
        }
    }
}

impl PciConfig for PciBus {
    fn read8(&self, offset: u16) -> u8 {
        let mut b = [0xFF];
        self.read(u32::from(offset), &mut b);
        b[0]
    }
}

/// Most common buffers one device holds at once (rings, receive-pool chunks, header slots, the
/// control queue, for every pair): the handle table is reserved once, at PASSIVE_LEVEL, so
/// recording a buffer under the spin lock never allocates. The receive pools come in chunks of
/// at most 128 KiB (`rxpool.rs`): 16 per queue by default, 128 with 9,000-byte frames and no
/// mergeable buffers, so 8 pairs and their rings fit with room to spare (64 KiB of handles).
pub const MAX_COMMON_BUFFERS: usize = 4096;

/// Common buffers of one DMA v3 enabler, with the handles kept to free them.
pub struct CommonBufferDma {
    enabler: WDFDMAENABLER,
    lock: SpinLock,
    /// (CPU address, handle) of live buffers; capacity [`MAX_COMMON_BUFFERS`], never grown.
    live: core::cell::UnsafeCell<alloc::vec::Vec<(usize, WDFCOMMONBUFFER)>>,
}

// SAFETY: `live` is only touched under `lock`.
unsafe impl Sync for CommonBufferDma {}
// SAFETY: WDF handles have no thread affinity.
unsafe impl Send for CommonBufferDma {}

impl CommonBufferDma {
    /// Over `enabler` (created with `WdmDmaVersionOverride = 3`); `None` if the handle table
    /// cannot be reserved (PASSIVE_LEVEL, PrepareHardware).
    pub fn new(enabler: WDFDMAENABLER, lock: SpinLock) -> Option<Self> {
        let mut live = alloc::vec::Vec::new();
        live.try_reserve_exact(MAX_COMMON_BUFFERS).ok()?;
        Some(Self {
            enabler,
            lock,
            live: core::cell::UnsafeCell::new(live),
        })
    }
}

// SAFETY: regions are common buffers: nonpaged, cache-coherent for the device, valid until
// WdfObjectDelete in `free`; they are zeroed before being handed out; the logical address is
// the one the device uses (the enabler's DMA adapter, so an IOMMU is honoured).
unsafe impl Dma for CommonBufferDma {
    fn alloc(&self, len: usize, align: usize) -> Option<DmaRegion> {
        let mut config = WDF_COMMON_BUFFER_CONFIG {
            Size: core::mem::size_of::<WDF_COMMON_BUFFER_CONFIG>() as u32,
            // FILE_xxx_ALIGNMENT style: the alignment minus one.
            AlignmentRequirement: (align.max(1) - 1) as u32,
        };
        let mut cb: WDFCOMMONBUFFER = core::ptr::null_mut();
        // SAFETY: PASSIVE_LEVEL (allocation happens only at queue or adapter creation); the
        // enabler lives as long as the device.
        let st = unsafe {
            call_unsafe_wdf_function_binding!(
                WdfCommonBufferCreateWithConfig,
                self.enabler,
                len,
                &mut config,
                WDF_NO_OBJECT_ATTRIBUTES,
                &mut cb
            )
        };
        if !NT_SUCCESS(st) {
            return None;
        }
        // SAFETY: `cb` is the buffer just created.
        let va = unsafe {
            call_unsafe_wdf_function_binding!(WdfCommonBufferGetAlignedVirtualAddress, cb)
        };
        // SAFETY: as above.
        let la = unsafe {
            call_unsafe_wdf_function_binding!(WdfCommonBufferGetAlignedLogicalAddress, cb)
        };
        let Some(cpu) = NonNull::new(va.cast::<u8>()) else {
            // SAFETY: the buffer is ours and unused.
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, cb.cast()) };
            return None;
        };
        // SAFETY: the buffer is `len` bytes and not yet shared with the device.
        unsafe { core::ptr::write_bytes(cpu.as_ptr(), 0, len) };
        self.lock.acquire();
        // SAFETY: under the lock.
        let live = unsafe { &mut *self.live.get() };
        // Within the reserved capacity a push never allocates.
        let recorded = live.len() < live.capacity();
        if recorded {
            live.push((cpu.as_ptr() as usize, cb));
        }
        self.lock.release();
        if !recorded {
            // SAFETY: the buffer is ours and unused.
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, cb.cast()) };
            return None;
        }
        // SAFETY: every bit pattern of the LARGE_INTEGER union is a valid i64.
        let device = unsafe { la.QuadPart } as u64;
        // SAFETY: see the impl's contract.
        Some(unsafe { DmaRegion::new(cpu, device, len) })
    }

    fn free(&self, region: DmaRegion) {
        let key = region.cpu().as_ptr() as usize;
        self.lock.acquire();
        // SAFETY: under the lock.
        let live = unsafe { &mut *self.live.get() };
        let found = live
            .iter()
            .position(|&(va, _)| va == key)
            .map(|i| live.swap_remove(i));
        self.lock.release();
        if let Some((_, cb)) = found {
            // SAFETY: the device no longer uses the region (the core frees only after a reset or
            // once the queue is idle).
            unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, cb.cast()) };
        }
    }
}
