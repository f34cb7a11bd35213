//! `NET_EXTENSION`, `NET_EXTENSION_QUERY` (net/extension.h, netadapterpacket.h) and the typed,
//! validated per-queue handle built from them.

use core::ffi::c_void;
use core::marker::PhantomData;
use core::mem::{align_of, offset_of, size_of};

use static_assertions::const_assert_eq;

use crate::ring::{Element, Ring};
use crate::{ExtensionError, Payload};

/// `NET_EXTENSION_TYPE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum ExtensionType {
    /// `NetExtensionTypePacket`.
    Packet = 1,
    /// `NetExtensionTypeFragment`.
    Fragment = 2,
    /// `NetExtensionTypeBuffer` (SDK 22000 and later).
    Buffer = 3,
}

/// The identity and shape of one extension: what a driver queries and what the framework lays out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionSpec {
    /// NUL-terminated UTF-16 name.
    pub name: &'static [u16],
    /// Version.
    pub version: u32,
    /// Packet or fragment extension.
    pub ty: ExtensionType,
    /// Payload size in bytes.
    pub size: usize,
    /// Payload alignment in bytes.
    pub align: usize,
}

impl ExtensionSpec {
    /// The `NET_EXTENSION_QUERY` a driver passes to `NetTx/RxQueueGetExtension` for this extension
    /// (`NET_EXTENSION_QUERY_INIT`). The name points at static data, so the query stays valid.
    pub const fn query(&self) -> NetExtensionQuery {
        NetExtensionQuery {
            size: size_of::<NetExtensionQuery>() as u32,
            name: self.name.as_ptr(),
            version: self.version,
            ty: self.ty as u32,
        }
    }
}

/// `NET_EXTENSION_QUERY` (24 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct NetExtensionQuery {
    /// `Size` = `sizeof(NET_EXTENSION_QUERY)`.
    pub size: u32,
    /// `Name` (PCWSTR).
    pub name: *const u16,
    /// `Version`.
    pub version: u32,
    /// `Type` (`NET_EXTENSION_TYPE`).
    pub ty: u32,
}

const_assert_eq!(size_of::<NetExtensionQuery>(), 24);
const_assert_eq!(offset_of!(NetExtensionQuery, size), 0);
const_assert_eq!(offset_of!(NetExtensionQuery, name), 8);
const_assert_eq!(offset_of!(NetExtensionQuery, version), 16);
const_assert_eq!(offset_of!(NetExtensionQuery, ty), 20);

/// The `Enabled`/`Reserved1` union of `NET_EXTENSION`.
#[derive(Clone, Copy)]
#[repr(C)]
union EnabledUnion {
    enabled: u8,
    reserved1: *mut c_void,
}

/// `NET_EXTENSION`: what `NetTx/RxQueueGetExtension` fills (40 bytes on x64).
///
/// The framework sets `Reserved[0]` to the address of the extension inside element 0
/// (`ring.Buffer + offset`), `Reserved[1]` to the ring's `ElementStride`, and `Enabled` to whether
/// the extension is registered; an unregistered one comes back all zero.
#[derive(Clone, Copy)]
#[repr(C)]
pub struct NetExtension {
    reserved: [*mut c_void; 4],
    enabled: EnabledUnion,
}

const_assert_eq!(size_of::<NetExtension>(), 40);
const_assert_eq!(align_of::<NetExtension>(), 8);
const_assert_eq!(offset_of!(NetExtension, enabled), 32);

impl Default for NetExtension {
    fn default() -> Self {
        Self::zeroed()
    }
}

impl core::fmt::Debug for NetExtension {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("NetExtension")
            .field("data", &self.data())
            .field("stride", &self.stride())
            .field("enabled", &self.enabled())
            .finish()
    }
}

impl NetExtension {
    /// An all-zero handle, as the framework returns for an extension that is not registered.
    pub const fn zeroed() -> Self {
        Self {
            reserved: [core::ptr::null_mut(); 4],
            enabled: EnabledUnion {
                reserved1: core::ptr::null_mut(),
            },
        }
    }

    /// A handle as the framework fills it: `data` is the extension's address in element 0.
    /// (For simulators playing the OS side.)
    pub fn new(data: *mut u8, stride: usize, enabled: bool) -> Self {
        let mut e = Self::zeroed();
        e.reserved[0] = data.cast();
        e.reserved[1] = core::ptr::without_provenance_mut(stride);
        e.enabled = EnabledUnion {
            reserved1: core::ptr::null_mut(),
        };
        // Write the BOOLEAN over the zeroed pointer-sized union, as the C code does.
        e.enabled.enabled = u8::from(enabled);
        e
    }

    /// `Enabled` (the BOOLEAN at byte 32).
    pub fn enabled(&self) -> bool {
        // SAFETY: both union members are plain data valid for any bit pattern, and the union is
        // always fully initialised (zeroed() and new() write the pointer-sized member first).
        let b = unsafe { self.enabled.enabled };
        b != 0
    }

    /// `Reserved[0]`: address of the extension in element 0 (`NetExtensionGetData(ext, 0)`).
    pub fn data(&self) -> *mut u8 {
        self.reserved[0].cast()
    }

    /// `Reserved[1]`: the ring's element stride.
    pub fn stride(&self) -> usize {
        self.reserved[1].addr()
    }
}

/// A driver's cached, validated handle to one extension of one queue's ring.
///
/// Built once per queue from the framework's [`NetExtension`] and the ring it belongs to: the
/// handle keeps the extension's offset inside an element (checked to lie after the ring's own
/// element, inside the stride, aligned for `T`), the stride, and whether it is enabled. Accessing
/// it through a [`Ring`] view is then bounds-checked and never assumes an offset.
pub struct Extension<T> {
    offset: usize,
    stride: usize,
    enabled: bool,
    _payload: PhantomData<fn() -> T>,
}

impl<T> Clone for Extension<T> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<T> Copy for Extension<T> {}

impl<T> core::fmt::Debug for Extension<T> {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("Extension")
            .field("offset", &self.offset)
            .field("stride", &self.stride)
            .field("enabled", &self.enabled)
            .finish()
    }
}

impl<T: Payload> Extension<T> {
    /// A handle for an extension the queue does not have.
    pub const fn disabled() -> Self {
        Self {
            offset: 0,
            stride: 0,
            enabled: false,
            _payload: PhantomData,
        }
    }

    /// Validates the framework's handle against the ring it belongs to.
    ///
    /// A disabled extension gives a disabled handle (not an error: optional extensions are
    /// normal). An enabled one must point into element 0 of `ring`, after the ring's own element,
    /// with room for `T` before the next element and `T`'s alignment.
    pub fn new<E: Element>(ext: &NetExtension, ring: &Ring<'_, E>) -> Result<Self, ExtensionError> {
        if !ext.enabled() {
            return Ok(Self::disabled());
        }
        let stride = ring.stride();
        if ext.stride() != stride {
            return Err(ExtensionError::StrideMismatch {
                handle: ext.stride(),
                ring: stride,
            });
        }
        let base = ring.elements_addr();
        let data = ext.data().addr();
        let offset = data.wrapping_sub(base);
        if data < base || offset >= stride {
            return Err(ExtensionError::OutsideElement {
                offset: (data as isize).wrapping_sub(base as isize),
                stride,
            });
        }
        Self::at_offset(offset, stride)
            .and_then(|h| h.check_element::<E>())
            .map(|h| h.with_enabled(true))
    }

    /// A handle at a known offset inside elements of `stride` bytes (for a simulator that laid the
    /// ring out itself). Checks room and alignment for `T`.
    pub fn at_offset(offset: usize, stride: usize) -> Result<Self, ExtensionError> {
        if offset
            .checked_add(size_of::<T>())
            .is_none_or(|end| end > stride)
        {
            return Err(ExtensionError::OutsideElement {
                offset: offset as isize,
                stride,
            });
        }
        if !offset.is_multiple_of(align_of::<T>()) || !stride.is_multiple_of(align_of::<T>()) {
            return Err(ExtensionError::Misaligned {
                offset,
                align: align_of::<T>(),
            });
        }
        Ok(Self {
            offset,
            stride,
            enabled: true,
            _payload: PhantomData,
        })
    }

    fn check_element<E: Element>(self) -> Result<Self, ExtensionError> {
        if self.offset < size_of::<E>() {
            return Err(ExtensionError::OverlapsElement {
                offset: self.offset,
                element_size: size_of::<E>(),
            });
        }
        Ok(self)
    }

    fn with_enabled(mut self, enabled: bool) -> Self {
        self.enabled = enabled;
        self
    }

    /// Whether the queue has this extension.
    pub const fn is_enabled(&self) -> bool {
        self.enabled
    }

    /// The extension's offset inside an element.
    pub const fn offset(&self) -> usize {
        self.offset
    }

    fn check<E: Element>(&self, ring: &Ring<'_, E>) -> Result<(), ExtensionError> {
        if !self.enabled {
            return Err(ExtensionError::Disabled);
        }
        if self.stride != ring.stride() {
            return Err(ExtensionError::StrideMismatch {
                handle: self.stride,
                ring: ring.stride(),
            });
        }
        self.check_element::<E>().map(|_| ())
    }

    /// Binds the handle to a ring for the duration of a callback: the checks (enabled, stride,
    /// placement) are made once, and [`Bound::read`] is then a masked index computation and a
    /// copy. The bound handle reads by value through the ring's memory (lifetime `'a`), so it
    /// can be used while the ring view is borrowed by an iterator.
    pub fn bind<'a, E: Element>(&self, ring: &Ring<'a, E>) -> Result<Bound<'a, T>, ExtensionError> {
        self.check(ring)?;
        let base = ring.elements_ptr().wrapping_add(self.offset);
        Ok(Bound {
            base,
            stride: self.stride,
            mask: ring.mask(),
            _memory: PhantomData,
        })
    }

    /// The payload of element `index` (`NetExtensionGetData(ext, index)`).
    pub fn get<'r, E: Element>(
        &self,
        ring: &'r Ring<'_, E>,
        index: u32,
    ) -> Result<&'r T, ExtensionError> {
        self.check(ring)?;
        let p = ring.element_ptr(index)?;
        let payload = p.as_ptr().wrapping_add(self.offset).cast::<T>();
        // SAFETY: `check` and `at_offset` established offset + size_of::<T>() ≤ stride and that
        // both offset and stride are multiples of T's alignment; element_ptr gave element
        // `index` of the ring's memory (elements start 64-aligned at a multiple of the stride),
        // so the payload is in bounds of the element and aligned. T: Payload is valid for any
        // bit pattern, and the ring view borrows the memory for 'r.
        let payload = unsafe { &*payload };
        Ok(payload)
    }

    /// The payload of element `index`, for writing.
    pub fn get_mut<'r, E: Element>(
        &self,
        ring: &'r mut Ring<'_, E>,
        index: u32,
    ) -> Result<&'r mut T, ExtensionError> {
        self.check(ring)?;
        let p = ring.element_ptr(index)?;
        let payload = p.as_ptr().wrapping_add(self.offset).cast::<T>();
        // SAFETY: as in `get`; the exclusive borrow of the ring view makes this the only
        // reference into the element's memory for 'r.
        let payload = unsafe { &mut *payload };
        Ok(payload)
    }
}

/// An [`Extension`] bound to one ring's memory: reads are a masked index computation and a copy.
#[derive(Debug, Clone, Copy)]
pub struct Bound<'a, T> {
    base: *mut u8,
    stride: usize,
    mask: u32,
    _memory: PhantomData<&'a T>,
}

impl<T: Payload> Bound<'_, T> {
    /// A copy of the payload of element `index & mask`.
    #[inline]
    pub fn read(&self, index: u32) -> T {
        let p = self
            .base
            .wrapping_add(((index & self.mask) as usize).wrapping_mul(self.stride))
            .cast::<T>();
        // SAFETY: `bind` checked the handle against the ring (enabled, same stride, offset and
        // stride multiples of T's alignment, payload inside the element after the ring's own
        // element); the masked index is inside the ring, whose memory lives for 'a. The read
        // creates no reference, and T is valid for any bits.
        unsafe { p.read() }
    }

    /// Writes `value` as the payload of element `index & mask` — for the driver's own elements
    /// (those it owns in this callback), as [`Extension::get_mut`] would, without its per-call
    /// checks.
    #[inline]
    pub fn write(&self, index: u32, value: T) {
        let p = self
            .base
            .wrapping_add(((index & self.mask) as usize).wrapping_mul(self.stride))
            .cast::<T>();
        // SAFETY: as in `read` — the payload is in bounds and aligned; the write creates no
        // reference, and the payload bytes lie after the ring's own element, where no
        // reference the ring view hands out (to a packet or a fragment) reaches.
        unsafe { p.write(value) }
    }
}
