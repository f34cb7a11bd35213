//! Ring memory laid out as the framework lays it out, for simulators and tests that play the OS.
//!
//! [`ElementLayout`] places extensions after the ring's element the way NetAdapterCx's
//! `NxExtensionLayout` does (each at its own alignment; the stride rounded up to the largest
//! alignment), with optional extra padding so that a simulator can move offsets and strides
//! around and catch a driver that assumes them. [`OwnedRing`] is a heap ring with a 64-aligned
//! header: the OS-side accessors (`EndIndex`, `OSReserved0`, raw element bytes) live here, and
//! [`OwnedRing::view`] hands out the driver's [`Ring`] view over the same memory.

use alloc::alloc::{Layout, alloc_zeroed, dealloc, handle_alloc_error};
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;

use crate::ring::{Element, NET_RING_HEADER_SIZE};
use crate::{ExtensionSpec, NetExtension, NetRing, Ring, RingError};

/// Places extensions inside a ring element.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ElementLayout {
    end: usize,
    align: usize,
}

impl ElementLayout {
    /// A layout that starts with the ring's own element `E`.
    pub const fn for_element<E: Element>() -> Self {
        Self {
            end: size_of::<E>(),
            align: align_of::<E>(),
        }
    }

    /// Places a payload of `size` bytes aligned to `align` after `padding` extra bytes; returns its
    /// offset, or `None` if `align` is not a power of two.
    pub fn place(&mut self, size: usize, align: usize, padding: usize) -> Option<usize> {
        if !align.is_power_of_two() {
            return None;
        }
        let offset = self
            .end
            .checked_add(padding)?
            .checked_next_multiple_of(align)?;
        self.end = offset.checked_add(size)?;
        self.align = self.align.max(align);
        Some(offset)
    }

    /// Places an extension.
    pub fn place_spec(&mut self, spec: &ExtensionSpec, padding: usize) -> Option<usize> {
        self.place(spec.size, spec.align, padding)
    }

    /// The stride: the end rounded up to the largest alignment, plus `padding` alignment units
    /// (so a simulator can make strides larger than needed); `None` if it exceeds `u16`.
    pub fn stride(&self, padding: usize) -> Option<u16> {
        let s = self
            .end
            .checked_next_multiple_of(self.align)?
            .checked_add(padding.checked_mul(self.align)?)?;
        u16::try_from(s).ok()
    }

    /// Sorts extensions the way the framework orders them before placing: by alignment, largest
    /// first (stable, so equal alignments keep their registration order).
    pub fn framework_order(specs: &mut [ExtensionSpec]) {
        // Insertion sort: no allocation, and the lists are a handful long.
        for i in 1..specs.len() {
            let mut j = i;
            while j > 0 && specs[j - 1].align < specs[j].align {
                specs.swap(j - 1, j);
                j -= 1;
            }
        }
    }
}

/// A net ring in heap memory, owned by the OS side of a simulation.
pub struct OwnedRing {
    memory: NonNull<u8>,
    layout: Layout,
    len: u32,
    stride: u16,
}

impl core::fmt::Debug for OwnedRing {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("OwnedRing")
            .field("len", &self.len)
            .field("stride", &self.stride)
            .field("begin", &self.begin_index())
            .field("next", &self.next_index())
            .field("end", &self.end_index())
            .field("os_reserved0", &self.os_reserved0())
            .finish()
    }
}

// SAFETY: OwnedRing owns its allocation exclusively (like a Box<[u8]>); the raw pointer is not
// shared with anything that outlives or aliases it.
unsafe impl Send for OwnedRing {}

impl OwnedRing {
    /// A zeroed ring of `len` elements (a power of two > 1) at `stride` bytes, header filled in.
    pub fn new(len: u32, stride: u16) -> Result<Self, RingError> {
        if len < 2 || !len.is_power_of_two() {
            return Err(RingError::BadElementCount {
                number_of_elements: len,
            });
        }
        let bad_stride = RingError::BadStride {
            stride,
            element_size: 0,
            element_align: 1,
        };
        let size = (len as usize)
            .checked_mul(usize::from(stride))
            .and_then(|n| n.checked_add(NET_RING_HEADER_SIZE))
            .ok_or(bad_stride)?;
        let layout =
            Layout::from_size_align(size, align_of::<NetRing>()).map_err(|_| bad_stride)?;
        // SAFETY: the layout has a non-zero size (at least the 64-byte header).
        let p = unsafe { alloc_zeroed(layout) };
        let memory = NonNull::new(p).unwrap_or_else(|| handle_alloc_error(layout));
        let mut ring = Self {
            memory,
            layout,
            len,
            stride,
        };
        ring.write_u16(offset_of!(NetRing, element_stride), stride);
        ring.write_u32(offset_of!(NetRing, number_of_elements), len);
        ring.write_u32(offset_of!(NetRing, element_index_mask), len - 1);
        Ok(ring)
    }

    /// `NumberOfElements`.
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Always false (a ring has at least two elements).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// `ElementStride`.
    pub const fn stride(&self) -> u16 {
        self.stride
    }

    /// The `NET_RING*` the driver is given.
    pub fn as_ptr(&mut self) -> *mut NetRing {
        self.memory.as_ptr().cast()
    }

    /// The driver's view of this ring.
    pub fn view<E: Element>(&mut self) -> Result<Ring<'_, E>, RingError> {
        // SAFETY: the allocation holds the header and len × stride element bytes, lives as long
        // as the borrow of self, and the exclusive borrow keeps every other accessor out.
        unsafe { Ring::from_raw(self.as_ptr()) }
    }

    /// The `NET_EXTENSION` the framework would return for an extension at `offset` in each element.
    pub fn extension(&mut self, offset: usize, enabled: bool) -> NetExtension {
        let data = self
            .memory
            .as_ptr()
            .wrapping_add(NET_RING_HEADER_SIZE + offset);
        NetExtension::new(data, usize::from(self.stride), enabled)
    }

    fn header_bytes_ptr(&self, offset: usize) -> *mut u8 {
        self.memory.as_ptr().wrapping_add(offset)
    }

    fn read_u32(&self, offset: usize) -> u32 {
        // SAFETY: offsets passed are those of u32 fields of the header (in bounds, 4-aligned).
        unsafe { self.header_bytes_ptr(offset).cast::<u32>().read() }
    }

    fn write_u32(&mut self, offset: usize, v: u32) {
        // SAFETY: as in read_u32; &mut self gives exclusive access.
        unsafe { self.header_bytes_ptr(offset).cast::<u32>().write(v) }
    }

    fn write_u16(&mut self, offset: usize, v: u16) {
        // SAFETY: offsets passed are those of u16 fields of the header (in bounds, 2-aligned).
        unsafe { self.header_bytes_ptr(offset).cast::<u16>().write(v) }
    }

    /// `BeginIndex` as stored.
    pub fn begin_index(&self) -> u32 {
        self.read_u32(offset_of!(NetRing, begin_index))
    }

    /// `NextIndex` as stored.
    pub fn next_index(&self) -> u32 {
        self.read_u32(offset_of!(NetRing, next_index))
    }

    /// `EndIndex` as stored.
    pub fn end_index(&self) -> u32 {
        self.read_u32(offset_of!(NetRing, end_index))
    }

    /// `OSReserved0`: the OS's trailing cursor.
    pub fn os_reserved0(&self) -> u32 {
        self.read_u32(offset_of!(NetRing, os_reserved))
    }

    /// Sets `EndIndex` (the OS posts elements).
    pub fn set_end_index(&mut self, v: u32) {
        self.write_u32(offset_of!(NetRing, end_index), v);
    }

    /// Sets `OSReserved0`.
    pub fn set_os_reserved0(&mut self, v: u32) {
        self.write_u32(offset_of!(NetRing, os_reserved), v);
    }

    /// Sets `BeginIndex` directly (queue start, or a test forging a bad driver).
    pub fn set_begin_index(&mut self, v: u32) {
        self.write_u32(offset_of!(NetRing, begin_index), v);
    }

    /// Sets `NextIndex` directly.
    pub fn set_next_index(&mut self, v: u32) {
        self.write_u32(offset_of!(NetRing, next_index), v);
    }

    /// Writes any header `u32` field by offset (for tests that forge a corrupt header).
    pub fn poke_header_u32(&mut self, offset: usize, v: u32) -> Result<(), RingError> {
        if !offset.is_multiple_of(4) || offset + 4 > NET_RING_HEADER_SIZE {
            return Err(RingError::IndexOutOfRange {
                index: offset as u32,
                len: NET_RING_HEADER_SIZE as u32,
            });
        }
        self.write_u32(offset, v);
        Ok(())
    }

    /// The first 48 header bytes: everything the driver must leave alone.
    pub fn os_header_bytes(&self) -> [u8; 48] {
        let mut out = [0u8; 48];
        out.copy_from_slice(&self.bytes()[..48]);
        out
    }

    fn bytes(&self) -> &[u8] {
        // SAFETY: the allocation is layout.size() bytes, initialised (zeroed) at creation and only
        // written through this type; &self keeps writers out for the slice's lifetime.
        unsafe { core::slice::from_raw_parts(self.memory.as_ptr(), self.layout.size()) }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `bytes`; &mut self makes this the only reference.
        unsafe { core::slice::from_raw_parts_mut(self.memory.as_ptr(), self.layout.size()) }
    }

    /// The bytes of element `index` (core element and extensions).
    pub fn element_bytes(&self, index: u32) -> Result<&[u8], RingError> {
        let r = self.element_range(index)?;
        Ok(&self.bytes()[r])
    }

    /// The bytes of element `index`, for writing.
    pub fn element_bytes_mut(&mut self, index: u32) -> Result<&mut [u8], RingError> {
        let r = self.element_range(index)?;
        Ok(&mut self.bytes_mut()[r])
    }

    fn element_range(&self, index: u32) -> Result<core::ops::Range<usize>, RingError> {
        if index >= self.len {
            return Err(RingError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        let start = NET_RING_HEADER_SIZE + index as usize * usize::from(self.stride);
        Ok(start..start + usize::from(self.stride))
    }
}

impl Drop for OwnedRing {
    fn drop(&mut self) {
        // SAFETY: memory was allocated in `new` with exactly this layout and is freed once.
        unsafe { dealloc(self.memory.as_ptr(), self.layout) }
    }
}
