//! `NET_RING` and `NET_RING_COLLECTION` (net/ring.h, net/ringcollection.h), and [`Ring`], the
//! bounds-checked view a driver uses during one datapath callback.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};
use core::ptr::NonNull;

use static_assertions::const_assert_eq;

use crate::iter::RingIterator;
use crate::payload::NetFragmentReturnContext;
use crate::{NetFragment, NetPacket, RingError};

/// The `OSReserved0` / `OSReserved2` union of `NET_RING` (OS only).
#[derive(Clone, Copy)]
#[repr(C)]
pub union NetRingOsReserved {
    /// `OSReserved0`: the framework's trailing cursor (§2.1 of the reference).
    pub os_reserved0: u32,
    /// `OSReserved2`: internal pointers.
    pub os_reserved2: [*mut c_void; 4],
}

/// `NET_RING`: the 64-byte, cache-aligned header; elements follow at `ElementStride`.
#[derive(Clone, Copy)]
#[repr(C, align(64))]
pub struct NetRing {
    /// `OSReserved1` (OS only).
    pub os_reserved1: u16,
    /// `ElementStride`: bytes between consecutive elements.
    pub element_stride: u16,
    /// `NumberOfElements`: a power of two greater than one.
    pub number_of_elements: u32,
    /// `ElementIndexMask` = `NumberOfElements − 1`.
    pub element_index_mask: u32,
    /// `EndIndex`: end of the driver-owned range; written only by the OS.
    pub end_index: u32,
    /// `OSReserved0` / `OSReserved2` (OS only).
    pub os_reserved: NetRingOsReserved,
    /// `BeginIndex`: first driver-owned element; the driver advances it to give elements back.
    pub begin_index: u32,
    /// `NextIndex`: driver-private "posted to hardware up to here".
    pub next_index: u32,
    /// `Scratch`: driver-private.
    pub scratch: *mut c_void,
}

/// Size of the `NET_RING` header; element 0 starts here (`FIELD_OFFSET(NET_RING, Buffer)`).
pub const NET_RING_HEADER_SIZE: usize = 64;

const_assert_eq!(size_of::<NetRing>(), NET_RING_HEADER_SIZE);
const_assert_eq!(align_of::<NetRing>(), 64);
const_assert_eq!(offset_of!(NetRing, os_reserved1), 0);
const_assert_eq!(offset_of!(NetRing, element_stride), 2);
const_assert_eq!(offset_of!(NetRing, number_of_elements), 4);
const_assert_eq!(offset_of!(NetRing, element_index_mask), 8);
const_assert_eq!(offset_of!(NetRing, end_index), 12);
const_assert_eq!(offset_of!(NetRing, os_reserved), 16);
const_assert_eq!(size_of::<NetRingOsReserved>(), 32);
const_assert_eq!(offset_of!(NetRing, begin_index), 48);
const_assert_eq!(offset_of!(NetRing, next_index), 52);
const_assert_eq!(offset_of!(NetRing, scratch), 56);

/// `NET_RING_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum NetRingType {
    /// `NetRingTypePacket`.
    Packet = 0,
    /// `NetRingTypeFragment`.
    Fragment = 1,
    /// `NetRingTypeDataBuffer` (22000+; named FragmentReturnContext in 26100.7705). Null except
    /// for RX queues with system-allocated, driver-attached buffers.
    DataBuffer = 2,
}

/// `NET_RING_COLLECTION`: the queue's ring pointers (22000 and later: three).
#[derive(Debug, Clone, Copy)]
#[repr(C)]
pub struct NetRingCollection {
    /// `Rings[NET_RING_TYPE]`.
    pub rings: [*mut NetRing; 3],
}

const_assert_eq!(size_of::<NetRingCollection>(), 24);

impl NetRingCollection {
    /// `NetRingCollectionGetPacketRing`.
    pub const fn packet_ring(&self) -> *mut NetRing {
        // A constant index into a fixed array of NetRingTypeMax (3) entries: checked at compile
        // time.
        #[allow(clippy::indexing_slicing)]
        let r = self.rings[NetRingType::Packet as usize];
        r
    }

    /// `NetRingCollectionGetFragmentRing`.
    pub const fn fragment_ring(&self) -> *mut NetRing {
        // A constant index into a fixed array of NetRingTypeMax (3) entries: checked at compile
        // time.
        #[allow(clippy::indexing_slicing)]
        let r = self.rings[NetRingType::Fragment as usize];
        r
    }

    /// `NetRingCollectionGetDataBufferRing` / `...FragmentReturnContextRing` (may be null).
    pub const fn data_buffer_ring(&self) -> *mut NetRing {
        // A constant index into a fixed array of NetRingTypeMax (3) entries: checked at compile
        // time.
        #[allow(clippy::indexing_slicing)]
        let r = self.rings[NetRingType::DataBuffer as usize];
        r
    }
}

/// An element type of a net ring: the ring's own record before any extension.
///
/// # Safety
///
/// Implementors must be `#[repr(C)]`/`#[repr(transparent)]` plain data valid for every bit pattern
/// of their size, with an alignment of at most 64.
pub unsafe trait Element: Copy + 'static {}

// SAFETY: NetPacket is repr(C) over u32, u16, [u8; 5] and u8; any bits are a valid value.
unsafe impl Element for NetPacket {}
// SAFETY: NetFragment is repr(transparent) over u64.
unsafe impl Element for NetFragment {}
// SAFETY: NetFragmentReturnContext is repr(C) over one raw pointer.
unsafe impl Element for NetFragmentReturnContext {}

/// Which ring index an iterator publishes when it is `set`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingHeaderField {
    /// `BeginIndex` (drain and "all" iterators).
    BeginIndex,
    /// `NextIndex` (post iterators).
    NextIndex,
}

/// A driver's view of one net ring for the duration of one datapath callback.
///
/// Created from the framework's pointer by [`Ring::from_raw`], which checks the header (element
/// count, mask, stride, alignment, indices). While the view lives it is the only accessor of the
/// ring's memory, as the framework guarantees during `EvtPacketQueueAdvance` and its siblings, so
/// the indices it read stay valid; a new view is made per callback. Every element access is
/// bounds-checked or masked; the driver can write only `BeginIndex`, `NextIndex` and `Scratch` of
/// the header, and only within the driver-owned range.
pub struct Ring<'a, E> {
    header: NonNull<NetRing>,
    len: u32,
    mask: u32,
    stride: usize,
    _memory: PhantomData<(&'a mut NetRing, E)>,
}

/// A ring of [`NetPacket`]s.
pub type PacketRing<'a> = Ring<'a, NetPacket>;
/// A ring of [`NetFragment`]s.
pub type FragmentRing<'a> = Ring<'a, NetFragment>;
/// The third ring of a collection when it holds return contexts.
pub type ReturnContextRing<'a> = Ring<'a, NetFragmentReturnContext>;

impl<E: Element> core::fmt::Debug for Ring<'_, E> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Ring")
            .field("len", &self.len)
            .field("stride", &self.stride)
            .field("begin", &self.begin_index())
            .field("next", &self.next_index())
            .field("end", &self.end_index())
            .finish()
    }
}

impl<'a, E: Element> Ring<'a, E> {
    /// Checks the ring header at `ptr` and makes a view of it.
    ///
    /// # Safety
    ///
    /// `ptr` must be null or point to a `NET_RING` header followed by its elements, valid for
    /// reads and writes of `64 + NumberOfElements × ElementStride` bytes (as read from the header)
    /// for `'a`, and nothing else may access that memory while the view lives (NetAdapterCx
    /// guarantees this inside a queue's datapath callbacks).
    pub unsafe fn from_raw(ptr: *mut NetRing) -> Result<Self, RingError> {
        let header = NonNull::new(ptr).ok_or(RingError::Null)?;
        if !header.as_ptr().addr().is_multiple_of(align_of::<NetRing>()) {
            return Err(RingError::Misaligned {
                address: header.as_ptr().addr(),
            });
        }
        // SAFETY: the caller guarantees at least the 64-byte header is readable; it is aligned.
        let h = unsafe { header.as_ptr().read() };
        let len = h.number_of_elements;
        if len < 2 || !len.is_power_of_two() {
            return Err(RingError::BadElementCount {
                number_of_elements: len,
            });
        }
        // len ≥ 2 (checked above).
        if h.element_index_mask != len.wrapping_sub(1) {
            return Err(RingError::BadIndexMask {
                mask: h.element_index_mask,
                expected: len.wrapping_sub(1),
            });
        }
        let stride = usize::from(h.element_stride);
        if stride < size_of::<E>()
            || !stride.is_multiple_of(align_of::<E>())
            || (len as usize).checked_mul(stride).is_none()
        {
            return Err(RingError::BadStride {
                stride: h.element_stride,
                element_size: size_of::<E>(),
                element_align: align_of::<E>(),
            });
        }
        for index in [h.begin_index, h.next_index, h.end_index] {
            if index >= len {
                return Err(RingError::IndexOutOfRange { index, len });
            }
        }
        Ok(Self {
            header,
            len,
            mask: len.wrapping_sub(1),
            stride,
            _memory: PhantomData,
        })
    }

    /// `NumberOfElements`.
    pub const fn len(&self) -> u32 {
        self.len
    }

    /// Always false: a valid ring has at least two elements (here for API symmetry with `len`).
    pub const fn is_empty(&self) -> bool {
        false
    }

    /// `ElementIndexMask`.
    pub const fn mask(&self) -> u32 {
        self.mask
    }

    /// `ElementStride`.
    pub const fn stride(&self) -> usize {
        self.stride
    }

    fn field_ptr<T>(&self, offset: usize) -> *mut T {
        self.header
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(offset)
            .cast()
    }

    fn read(&self, offset: usize) -> u32 {
        // SAFETY: `offset` is one of NetRing's u32 field offsets (callers use offset_of!), so the
        // pointer is in bounds of the header the view owns and 4-aligned.
        unsafe { self.field_ptr::<u32>(offset).read() }
    }

    fn write(&mut self, offset: usize, value: u32) {
        // SAFETY: as in `read`; the view has exclusive access for 'a.
        unsafe { self.field_ptr::<u32>(offset).write(value) }
    }

    /// `BeginIndex`.
    pub fn begin_index(&self) -> u32 {
        self.read(offset_of!(NetRing, begin_index)) & self.mask
    }

    /// `NextIndex`.
    pub fn next_index(&self) -> u32 {
        self.read(offset_of!(NetRing, next_index)) & self.mask
    }

    /// `EndIndex`.
    pub fn end_index(&self) -> u32 {
        self.read(offset_of!(NetRing, end_index)) & self.mask
    }

    /// The ring's `Scratch` pointer (driver-private).
    pub fn scratch(&self) -> *mut c_void {
        // SAFETY: in bounds of the header, 8-aligned (offset 56 of a 64-aligned header).
        unsafe {
            self.field_ptr::<*mut c_void>(offset_of!(NetRing, scratch))
                .read()
        }
    }

    /// Sets the ring's `Scratch` pointer.
    #[allow(
        clippy::not_unsafe_ptr_arg_deref,
        reason = "the pointer value is stored, never dereferenced"
    )]
    pub fn set_scratch(&mut self, v: *mut c_void) {
        // SAFETY: as in `scratch`; exclusive access for 'a.
        unsafe {
            self.field_ptr::<*mut c_void>(offset_of!(NetRing, scratch))
                .write(v)
        }
    }

    /// `NetRingAdvanceIndex`: `(index + distance) & mask`.
    pub const fn advance_index(&self, index: u32, distance: i32) -> u32 {
        index.wrapping_add_signed(distance) & self.mask
    }

    /// `NetRingIncrementIndex`.
    pub const fn increment_index(&self, index: u32) -> u32 {
        self.advance_index(index, 1)
    }

    /// `NetRingGetRangeCount`: elements in `[start, end)`; both must be inside the ring.
    pub const fn range_count(&self, start: u32, end: u32) -> Result<u32, RingError> {
        if start >= self.len {
            return Err(RingError::IndexOutOfRange {
                index: start,
                len: self.len,
            });
        }
        if end >= self.len {
            return Err(RingError::IndexOutOfRange {
                index: end,
                len: self.len,
            });
        }
        Ok(end.wrapping_sub(start) & self.mask)
    }

    /// Elements the driver owns: `[BeginIndex, EndIndex)`.
    pub fn owned_count(&self) -> u32 {
        self.end_index().wrapping_sub(self.begin_index()) & self.mask
    }

    /// Whether `index` lies in `[BeginIndex, EndIndex]` (the places an owned-range index may take).
    pub fn within_owned(&self, index: u32) -> bool {
        index < self.len
            && (index.wrapping_sub(self.begin_index()) & self.mask) <= self.owned_count()
    }

    /// Whether the `count` elements from `first` all lie in `[BeginIndex, EndIndex)`.
    pub fn owns_span(&self, first: u32, count: u32) -> bool {
        first < self.len
            && u64::from(first.wrapping_sub(self.begin_index()) & self.mask)
                .wrapping_add(u64::from(count)) // two u32: fits u64
                <= u64::from(self.owned_count())
    }

    fn checked_set(&mut self, field: usize, index: u32) -> Result<(), RingError> {
        if index >= self.len {
            return Err(RingError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        if !self.within_owned(index) {
            return Err(RingError::OutsideOwnedRange {
                index,
                begin: self.begin_index(),
                end: self.end_index(),
            });
        }
        self.write(field, index);
        Ok(())
    }

    /// Sets `BeginIndex` (returns elements to the OS); it may not pass `EndIndex`.
    ///
    /// Moving `BeginIndex` past `NextIndex` leaves `NextIndex` behind it; the caller keeps them
    /// consistent (the iterators do).
    pub fn set_begin_index(&mut self, index: u32) -> Result<(), RingError> {
        self.checked_set(offset_of!(NetRing, begin_index), index)
    }

    /// Sets `NextIndex`; it must lie in `[BeginIndex, EndIndex]`.
    pub fn set_next_index(&mut self, index: u32) -> Result<(), RingError> {
        self.checked_set(offset_of!(NetRing, next_index), index)
    }

    pub(crate) fn publish(&mut self, field: RingHeaderField, index: u32) {
        let offset = match field {
            RingHeaderField::BeginIndex => offset_of!(NetRing, begin_index),
            RingHeaderField::NextIndex => offset_of!(NetRing, next_index),
        };
        self.write(offset, index & self.mask);
    }

    /// Pointer to element 0 (`Buffer`), with the ring's provenance.
    pub(crate) fn elements_ptr(&self) -> *mut u8 {
        self.header
            .as_ptr()
            .cast::<u8>()
            .wrapping_add(NET_RING_HEADER_SIZE)
    }

    /// Address of element 0 (`Buffer`).
    pub(crate) fn elements_addr(&self) -> usize {
        // The ring's memory follows its header: the address cannot wrap.
        self.header
            .as_ptr()
            .addr()
            .wrapping_add(NET_RING_HEADER_SIZE)
    }

    /// Pointer to element `index`, which must be inside the ring.
    pub(crate) fn element_ptr(&self, index: u32) -> Result<NonNull<u8>, RingError> {
        if index >= self.len {
            return Err(RingError::IndexOutOfRange {
                index,
                len: self.len,
            });
        }
        Ok(self.masked_element_ptr(index))
    }

    fn masked_element_ptr(&self, index: u32) -> NonNull<u8> {
        // Inside the ring (see below): no overflow.
        let offset = NET_RING_HEADER_SIZE
            .wrapping_add(((index & self.mask) as usize).wrapping_mul(self.stride));
        // SAFETY: the masked index is below NumberOfElements, so the offset is inside the
        // 64 + len × stride bytes the caller of `from_raw` vouched for (whose product was checked
        // not to overflow).
        unsafe { self.header.cast::<u8>().add(offset) }
    }

    /// `NetRingGetElementAtIndex`, typed.
    pub fn get(&self, index: u32) -> Result<&E, RingError> {
        let p = self.element_ptr(index)?;
        // SAFETY: element `index` lies inside the memory the caller of from_raw vouched for; it
        // is aligned (64-aligned start, stride a multiple of E's alignment); E is valid for any
        // bits; the shared borrow of the view keeps writers out.
        Ok(unsafe { p.cast::<E>().as_ref() })
    }

    /// `NetRingGetElementAtIndex`, typed, for writing.
    pub fn get_mut(&mut self, index: u32) -> Result<&mut E, RingError> {
        let p = self.element_ptr(index)?;
        // SAFETY: as in `get`; the exclusive borrow of the view makes this the only reference.
        Ok(unsafe { p.cast::<E>().as_mut() })
    }

    /// Element `index & ElementIndexMask`: never out of range, so no error to check (for loops
    /// over indices already masked, such as a packet's fragments).
    #[inline]
    pub fn at(&self, index: u32) -> &E {
        let p = self.masked_element_ptr(index);
        // SAFETY: as in `get`; masking keeps the index inside the ring.
        unsafe { p.cast::<E>().as_ref() }
    }

    /// Element `index & ElementIndexMask`, for writing: never out of range, so no error to
    /// check (for the driver's own elements at indices it computed from the ring's).
    #[inline]
    pub fn at_mut(&mut self, index: u32) -> &mut E {
        let p = self.masked_element_ptr(index);
        // SAFETY: as in `get_mut`; masking keeps the index inside the ring.
        unsafe { p.cast::<E>().as_mut() }
    }

    /// Post iterator (`NetRingGetPostPackets/Fragments`): `[NextIndex, EndIndex)`, publishes
    /// `NextIndex`. Fails if `NextIndex` is outside `[BeginIndex, EndIndex]`.
    pub fn post(&mut self) -> Result<RingIterator<'_, 'a, E>, RingError> {
        let (next, end) = (self.next_index(), self.end_index());
        self.check_next(next)?;
        Ok(RingIterator::new(
            self,
            RingHeaderField::NextIndex,
            next,
            end,
        ))
    }

    /// Drain iterator (`NetRingGetDrainPackets/Fragments`): `[BeginIndex, NextIndex)`, publishes
    /// `BeginIndex`. Fails if `NextIndex` is outside `[BeginIndex, EndIndex]`.
    pub fn drain(&mut self) -> Result<RingIterator<'_, 'a, E>, RingError> {
        let (begin, next) = (self.begin_index(), self.next_index());
        self.check_next(next)?;
        Ok(RingIterator::new(
            self,
            RingHeaderField::BeginIndex,
            begin,
            next,
        ))
    }

    /// "All" iterator (`NetRingGetAllPackets/Fragments`): `[BeginIndex, EndIndex)`, publishes
    /// `BeginIndex`.
    pub fn all(&mut self) -> RingIterator<'_, 'a, E> {
        let (begin, end) = (self.begin_index(), self.end_index());
        RingIterator::new(self, RingHeaderField::BeginIndex, begin, end)
    }

    fn check_next(&self, next: u32) -> Result<(), RingError> {
        if self.within_owned(next) {
            Ok(())
        } else {
            Err(RingError::OutsideOwnedRange {
                index: next,
                begin: self.begin_index(),
                end: self.end_index(),
            })
        }
    }
}
