//! Typed errors for everything the OS (or a simulator playing it) can hand in wrong.

use core::fmt;

/// A value that does not fit the bit-field it was meant for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FieldError {
    /// The field, as the WDK header names it.
    pub field: &'static str,
    /// The value that was offered.
    pub value: u64,
    /// The largest value the field holds.
    pub max: u64,
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} = {} does not fit (maximum {})",
            self.field, self.value, self.max
        )
    }
}

/// A ring header or index that breaks the NET_RING contract.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RingError {
    /// The ring pointer is null.
    Null,
    /// The ring header is not aligned to the 64 bytes `DECLSPEC_CACHEALIGN` promises.
    Misaligned {
        /// The header's address.
        address: usize,
    },
    /// `NumberOfElements` is not a power of two greater than one.
    BadElementCount {
        /// The value read.
        number_of_elements: u32,
    },
    /// `ElementIndexMask` is not `NumberOfElements − 1`.
    BadIndexMask {
        /// The value read.
        mask: u32,
        /// The value it must have.
        expected: u32,
    },
    /// `ElementStride` cannot hold the ring's element, or breaks its alignment.
    BadStride {
        /// The value read.
        stride: u16,
        /// The element's size.
        element_size: usize,
        /// The element's alignment.
        element_align: usize,
    },
    /// An index is not below `NumberOfElements`.
    IndexOutOfRange {
        /// The index.
        index: u32,
        /// `NumberOfElements`.
        len: u32,
    },
    /// Moving an index here would take it outside the driver-owned range `[BeginIndex, EndIndex]`.
    OutsideOwnedRange {
        /// The index that was asked for.
        index: u32,
        /// `BeginIndex` at the time.
        begin: u32,
        /// `EndIndex` at the time.
        end: u32,
    },
    /// A packet refers to more fragments than a ring can hold.
    FragmentCountTooLarge {
        /// `FragmentCount`.
        count: u16,
        /// `NumberOfElements` of the fragment ring.
        len: u32,
    },
}

impl fmt::Display for RingError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Null => f.write_str("ring pointer is null"),
            Self::Misaligned { address } => {
                write!(f, "ring header at {address:#x} is not 64-byte aligned")
            }
            Self::BadElementCount { number_of_elements } => write!(
                f,
                "NumberOfElements {number_of_elements} is not a power of two greater than one"
            ),
            Self::BadIndexMask { mask, expected } => {
                write!(f, "ElementIndexMask {mask:#x} should be {expected:#x}")
            }
            Self::BadStride {
                stride,
                element_size,
                element_align,
            } => write!(
                f,
                "ElementStride {stride} cannot hold a {element_size}-byte element aligned to {element_align}"
            ),
            Self::IndexOutOfRange { index, len } => {
                write!(f, "index {index} is outside a ring of {len} elements")
            }
            Self::OutsideOwnedRange { index, begin, end } => write!(
                f,
                "index {index} is outside the driver-owned range [{begin}, {end}]"
            ),
            Self::FragmentCountTooLarge { count, len } => write!(
                f,
                "FragmentCount {count} does not fit a fragment ring of {len} elements"
            ),
        }
    }
}

/// An extension handle that cannot be used for the access asked of it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExtensionError {
    /// The extension was not registered on this queue (`Enabled` is FALSE).
    Disabled,
    /// The handle's data pointer does not point into element 0 of the ring.
    OutsideElement {
        /// Bytes from the start of the ring's elements to the extension (may be negative).
        offset: isize,
        /// The ring's `ElementStride`.
        stride: usize,
    },
    /// The extension would overlap the ring's own element (packet or fragment).
    OverlapsElement {
        /// The extension's offset inside the element.
        offset: usize,
        /// The size of the ring's element.
        element_size: usize,
    },
    /// The extension's offset breaks the alignment of its payload type.
    Misaligned {
        /// The extension's offset inside the element.
        offset: usize,
        /// The payload's alignment.
        align: usize,
    },
    /// The handle's stride is not the ring's `ElementStride` (a handle of another ring).
    StrideMismatch {
        /// The stride in the handle.
        handle: usize,
        /// The ring's stride.
        ring: usize,
    },
    /// The element index is outside the ring.
    Ring(RingError),
}

impl From<RingError> for ExtensionError {
    fn from(e: RingError) -> Self {
        Self::Ring(e)
    }
}

impl fmt::Display for ExtensionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::Disabled => f.write_str("extension is not enabled on this queue"),
            Self::OutsideElement { offset, stride } => write!(
                f,
                "extension at offset {offset} lies outside an element of stride {stride}"
            ),
            Self::OverlapsElement {
                offset,
                element_size,
            } => write!(
                f,
                "extension at offset {offset} overlaps the {element_size}-byte ring element"
            ),
            Self::Misaligned { offset, align } => {
                write!(
                    f,
                    "extension at offset {offset} is not aligned to {align} bytes"
                )
            }
            Self::StrideMismatch { handle, ring } => write!(
                f,
                "extension handle stride {handle} does not match ring stride {ring}"
            ),
            Self::Ring(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for FieldError {}
impl core::error::Error for RingError {}
impl core::error::Error for ExtensionError {}
