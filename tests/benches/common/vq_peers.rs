//! Shared plumbing of the virtqueue benchmark and the instruction-count example: a minimal
//! split-ring device, and the DMA/transport layers rcore-os `virtio-drivers` needs.

#![allow(dead_code)]

use std::alloc::{Layout as AllocLayout, alloc_zeroed, dealloc};
use std::ptr::NonNull;

use virtio_drivers::transport::{DeviceStatus, DeviceType, InterruptStatus, Transport};
use virtio_drivers::{BufferDirection, Hal, PhysAddr};

pub const SIZE: usize = 512;

/// A split-ring device that completes every available chain with length 0.
pub struct MiniDevice {
    pub avail: *mut u8,
    pub used: *mut u8,
    pub last_avail: u16,
    pub used_idx: u16,
}

impl MiniDevice {
    fn rd16(p: *mut u8) -> u16 {
        // SAFETY: callers pass addresses inside the live rings of a queue of SIZE entries.
        unsafe { std::ptr::read_volatile(p.cast::<u16>()) }
    }

    fn wr16(p: *mut u8, v: u16) {
        // SAFETY: as in rd16.
        unsafe { std::ptr::write_volatile(p.cast::<u16>(), v) }
    }

    fn wr32(p: *mut u8, v: u32) {
        // SAFETY: as in rd16.
        unsafe { std::ptr::write_volatile(p.cast::<u32>(), v) }
    }

    /// Completes every available chain with length 0 (used element = head id).
    pub fn run(&mut self) {
        let avail_idx = Self::rd16(self.avail.wrapping_add(2));
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        while self.last_avail != avail_idx {
            let slot = usize::from(self.last_avail) % SIZE;
            let head = Self::rd16(self.avail.wrapping_add(4 + 2 * slot));
            let e = self
                .used
                .wrapping_add(4 + 8 * (usize::from(self.used_idx) % SIZE));
            Self::wr32(e, u32::from(head));
            Self::wr32(e.wrapping_add(4), 0);
            self.last_avail = self.last_avail.wrapping_add(1);
            self.used_idx = self.used_idx.wrapping_add(1);
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        Self::wr16(self.used.wrapping_add(2), self.used_idx);
    }
}

/// virtio-drivers' DMA layer: heap pages, physical address = virtual address.
pub struct BenchHal;

// SAFETY: allocations are page-aligned, zeroed and live until dealloc; identity mapping.
unsafe impl Hal for BenchHal {
    fn dma_alloc(pages: usize, _d: BufferDirection) -> (PhysAddr, NonNull<u8>) {
        let layout = AllocLayout::from_size_align(pages * 4096, 4096).unwrap();
        // SAFETY: non-zero size.
        let p = NonNull::new(unsafe { alloc_zeroed(layout) }).unwrap();
        (p.as_ptr() as PhysAddr, p)
    }
    unsafe fn dma_dealloc(_paddr: PhysAddr, vaddr: NonNull<u8>, pages: usize) -> i32 {
        let layout = AllocLayout::from_size_align(pages * 4096, 4096).unwrap();
        // SAFETY: allocated by dma_alloc with this layout.
        unsafe { dealloc(vaddr.as_ptr(), layout) };
        0
    }
    unsafe fn mmio_phys_to_virt(paddr: PhysAddr, _size: usize) -> NonNull<u8> {
        NonNull::new(paddr as *mut u8).unwrap()
    }
    unsafe fn share(buffer: NonNull<[u8]>, _d: BufferDirection) -> PhysAddr {
        buffer.as_ptr().cast::<u8>() as PhysAddr
    }
    unsafe fn unshare(_paddr: PhysAddr, _buffer: NonNull<[u8]>, _d: BufferDirection) {}
}

/// Just enough transport for `VirtQueue::new`: records the ring addresses.
#[derive(Default)]
pub struct BenchTransport {
    pub rings: Option<(PhysAddr, PhysAddr, PhysAddr)>,
}

impl Transport for BenchTransport {
    fn device_type(&self) -> DeviceType {
        DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        0
    }
    fn write_driver_features(&mut self, _f: u64) {}
    fn max_queue_size(&mut self, _q: u16) -> u32 {
        SIZE as u32
    }
    fn notify(&mut self, _q: u16) {}
    fn get_status(&self) -> DeviceStatus {
        DeviceStatus::empty()
    }
    fn set_status(&mut self, _s: DeviceStatus) {}
    fn set_guest_page_size(&mut self, _s: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, _q: u16, _size: u32, d: PhysAddr, a: PhysAddr, u: PhysAddr) {
        self.rings = Some((d, a, u));
    }
    fn queue_unset(&mut self, _q: u16) {}
    fn queue_used(&mut self, _q: u16) -> bool {
        self.rings.is_some()
    }
    fn ack_interrupt(&mut self) -> InterruptStatus {
        InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        _o: usize,
    ) -> virtio_drivers::Result<T> {
        Err(virtio_drivers::Error::Unsupported)
    }
    fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        _o: usize,
        _v: T,
    ) -> virtio_drivers::Result<()> {
        Err(virtio_drivers::Error::Unsupported)
    }
}
