//! Simulated DMA memory: one arena whose device address is its offset from a base.
//!
//! [`GuestRam`] is guest RAM as rust-vmm's `vm-memory` sees it (so a `virtio-queue` device reads
//! and writes the very bytes the driver core wrote), with a [`DmaArena`] over it implementing the
//! core's [`Dma`] trait: device address = guest physical address.

use std::ptr::NonNull;
use std::sync::Mutex;

use virtio::hal::{Dma, DmaRegion};
use vm_memory::{GuestAddress, GuestMemoryBackend, GuestMemoryMmap};

/// A first-fit allocator over one block of memory.
#[derive(Debug)]
pub struct DmaArena {
    base: NonNull<u8>,
    len: usize,
    device_base: u64,
    state: Mutex<ArenaState>,
}

#[derive(Debug, Default)]
struct ArenaState {
    /// Free ranges (offset, len), sorted by offset.
    free: Vec<(usize, usize)>,
    outstanding: usize,
}

// SAFETY: the arena hands out disjoint regions; its own state is behind a mutex.
unsafe impl Send for DmaArena {}
// SAFETY: as above.
unsafe impl Sync for DmaArena {}

impl DmaArena {
    /// An arena over `len` bytes at `base`, whose device addresses start at `device_base`.
    ///
    /// # Safety
    ///
    /// `base` must be valid for reads and writes of `len` bytes for the arena's lifetime, and
    /// nothing else may use that memory except through regions the arena hands out.
    pub unsafe fn new(base: NonNull<u8>, len: usize, device_base: u64) -> Self {
        Self {
            base,
            len,
            device_base,
            state: Mutex::new(ArenaState {
                free: vec![(0, len)],
                outstanding: 0,
            }),
        }
    }

    /// Regions handed out and not yet freed.
    pub fn outstanding(&self) -> usize {
        self.state.lock().map_or(0, |s| s.outstanding)
    }

    /// Free bytes.
    pub fn free_bytes(&self) -> usize {
        self.state
            .lock()
            .map_or(0, |s| s.free.iter().map(|r| r.1).sum())
    }

    /// CPU pointer for a device address range, if it lies inside the arena.
    pub fn cpu_ptr(&self, device: u64, len: usize) -> Option<*mut u8> {
        let off = usize::try_from(device.checked_sub(self.device_base)?).ok()?;
        (off.checked_add(len)? <= self.len).then(|| self.base.as_ptr().wrapping_add(off))
    }

    /// Copies `out.len()` bytes from device address `device`; `false` if out of the arena.
    pub fn read(&self, device: u64, out: &mut [u8]) -> bool {
        let Some(p) = self.cpu_ptr(device, out.len()) else {
            return false;
        };
        // SAFETY: cpu_ptr checked the range lies inside the arena's memory.
        unsafe { std::ptr::copy_nonoverlapping(p, out.as_mut_ptr(), out.len()) };
        true
    }

    /// Copies `data` to device address `device`; `false` if out of the arena.
    pub fn write(&self, device: u64, data: &[u8]) -> bool {
        let Some(p) = self.cpu_ptr(device, data.len()) else {
            return false;
        };
        // SAFETY: cpu_ptr checked the range lies inside the arena's memory.
        unsafe { std::ptr::copy_nonoverlapping(data.as_ptr(), p, data.len()) };
        true
    }
}

// SAFETY: regions are disjoint ranges of the arena's memory (first-fit over a free list), zeroed
// at allocation, aligned as asked relative to the arena base (which is page-aligned wherever it
// comes from here), and stay valid until freed.
unsafe impl Dma for DmaArena {
    fn alloc(&self, len: usize, align: usize) -> Option<DmaRegion> {
        if len == 0 || !align.is_power_of_two() {
            return None;
        }
        let mut s = self.state.lock().ok()?;
        let (i, start) = s.free.iter().enumerate().find_map(|(i, &(off, flen))| {
            let start = off.checked_next_multiple_of(align)?;
            (start.checked_add(len)? <= off + flen).then_some((i, start))
        })?;
        let (off, flen) = s.free[i];
        s.free.remove(i);
        if start + len < off + flen {
            s.free.insert(i, (start + len, off + flen - start - len));
        }
        if start > off {
            s.free.insert(i, (off, start - off));
        }
        s.outstanding += 1;
        let p = self.base.as_ptr().wrapping_add(start);
        // SAFETY: [start, start+len) lies inside the arena and was free.
        unsafe { std::ptr::write_bytes(p, 0, len) };
        let cpu = NonNull::new(p)?;
        // SAFETY: see the impl's comment: a disjoint, zeroed, aligned range of valid memory, and
        // the device address is the arena's for that range.
        Some(unsafe { DmaRegion::new(cpu, self.device_base + start as u64, len) })
    }

    fn free(&self, region: DmaRegion) {
        let Ok(mut s) = self.state.lock() else { return };
        let off = region.cpu().as_ptr().addr() - self.base.as_ptr().addr();
        let pos = s.free.partition_point(|r| r.0 < off);
        s.free.insert(pos, (off, region.len()));
        // Merge neighbours.
        let mut merged: Vec<(usize, usize)> = Vec::with_capacity(s.free.len());
        for &(o, l) in &s.free {
            match merged.last_mut() {
                Some(last) if last.0 + last.1 == o => last.1 += l,
                _ => merged.push((o, l)),
            }
        }
        s.free = merged;
        s.outstanding = s.outstanding.saturating_sub(1);
    }
}

/// Guest RAM shared by the driver core (through [`DmaArena`]) and a rust-vmm device.
#[derive(Debug)]
pub struct GuestRam {
    mem: GuestMemoryMmap<()>,
    arena: DmaArena,
}

impl GuestRam {
    /// `size` bytes of guest RAM at guest physical address 0; the arena covers all of it except
    /// the first page (so that no DMA address is 0).
    pub fn new(size: usize) -> Self {
        let mem = GuestMemoryMmap::<()>::from_ranges(&[(GuestAddress(0), size)])
            .unwrap_or_else(|e| panic!("guest memory of {size} bytes: {e}"));
        let base = mem
            .get_host_address(GuestAddress(0x1000))
            .ok()
            .and_then(NonNull::new)
            .unwrap_or_else(|| panic!("no host address for guest RAM"));
        // SAFETY: the mapping is valid for `size` bytes from guest address 0 and lives as long as
        // `mem`, which this struct owns alongside the arena; only arena regions are handed out.
        let arena = unsafe { DmaArena::new(base, size - 0x1000, 0x1000) };
        Self { mem, arena }
    }

    /// The memory, for a rust-vmm device.
    pub fn memory(&self) -> &GuestMemoryMmap<()> {
        &self.mem
    }

    /// The DMA allocator for the driver core.
    pub fn arena(&self) -> &DmaArena {
        &self.arena
    }
}
