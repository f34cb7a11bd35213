//! `NET_FRAGMENT` (net/fragment.h): one 64-bit unit of bit-fields.

use core::mem::{align_of, size_of};

use static_assertions::const_assert_eq;

use crate::{FieldError, bits};

/// `NET_FRAGMENT`: a contiguous piece of a packet's data.
///
/// | bits | field |
/// |---|---|
/// | 0–25 | `ValidLength` : 26 |
/// | 26–51 | `Capacity` : 26 |
/// | 52–61 | `Offset` : 10 |
/// | 62 | `Scratch` : 1 |
/// | 63 | `OsReserved_Bounced` : 1 |
///
/// `Offset` is where valid data starts relative to the fragment's virtual or logical address;
/// `Offset + ValidLength ≤ Capacity` is the driver's promise on RX (see [`NetFragment::is_consistent`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(transparent)]
pub struct NetFragment(u64);

const_assert_eq!(size_of::<NetFragment>(), 8);
const_assert_eq!(align_of::<NetFragment>(), 8);

macro_rules! field {
    ($get:ident, $set:ident, $shift:expr, $width:expr, $name:literal, $doc:literal) => {
        #[doc = concat!("`", $name, "`: ", $doc)]
        pub const fn $get(self) -> u32 {
            bits::get(self.0, $shift, $width) as u32
        }

        #[doc = concat!("Sets `", $name, "`; a value that does not fit its ", stringify!($width), " bits is an error and changes nothing.")]
        pub const fn $set(&mut self, v: u32) -> Result<(), FieldError> {
            match bits::set(self.0, $shift, $width, v as u64, $name) {
                Ok(u) => {
                    self.0 = u;
                    Ok(())
                }
                Err(e) => Err(e),
            }
        }
    };
}

impl NetFragment {
    /// Largest `ValidLength` or `Capacity` (2^26 − 1).
    pub const MAX_LENGTH: u32 = (1 << 26) - 1;
    /// Largest `Offset` (1023).
    pub const MAX_OFFSET: u32 = (1 << 10) - 1;

    /// The raw 64-bit unit.
    pub const fn to_bits(self) -> u64 {
        self.0
    }

    /// A fragment from its raw 64-bit unit.
    pub const fn from_bits(bits: u64) -> Self {
        Self(bits)
    }

    field!(
        valid_length,
        set_valid_length,
        0,
        26,
        "ValidLength",
        "bytes of valid data."
    );
    field!(
        capacity,
        set_capacity,
        26,
        26,
        "Capacity",
        "size of the buffer."
    );
    field!(
        offset,
        set_offset,
        52,
        10,
        "Offset",
        "start of valid data in the buffer."
    );

    /// `Scratch`: the driver's own bit.
    pub const fn scratch(self) -> bool {
        bits::get(self.0, 62, 1) != 0
    }

    /// Sets or clears `Scratch`.
    pub const fn set_scratch(&mut self, v: bool) {
        self.0 = (self.0 & !(1 << 62)) | ((v as u64) << 62);
    }

    /// `OsReserved_Bounced`: set by the OS when it copied the data to a bounce buffer. Read-only
    /// for drivers, so there is no setter.
    pub const fn os_reserved_bounced(self) -> bool {
        bits::get(self.0, 63, 1) != 0
    }

    /// `Offset + ValidLength ≤ Capacity`.
    pub const fn is_consistent(self) -> bool {
        // Two fields of at most 2^32 each: the sum fits u64.
        (self.offset() as u64).wrapping_add(self.valid_length() as u64) <= self.capacity() as u64
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_round_trip_at_their_limits() {
        let mut f = NetFragment::default();
        f.set_valid_length(NetFragment::MAX_LENGTH).unwrap();
        assert_eq!(f.to_bits(), (1 << 26) - 1);
        f.set_capacity(NetFragment::MAX_LENGTH).unwrap();
        f.set_offset(1023).unwrap();
        f.set_scratch(true);
        assert_eq!(f.valid_length(), (1 << 26) - 1);
        assert_eq!(f.capacity(), (1 << 26) - 1);
        assert_eq!(f.offset(), 1023);
        assert!(f.scratch());
        assert!(!f.os_reserved_bounced());
        assert_eq!(f.to_bits(), u64::MAX >> 1);
    }

    #[test]
    fn fields_are_independent() {
        let mut f = NetFragment::from_bits(u64::MAX);
        assert!(f.os_reserved_bounced());
        f.set_valid_length(0).unwrap();
        f.set_offset(0).unwrap();
        assert_eq!(f.capacity(), NetFragment::MAX_LENGTH);
        assert!(f.scratch() && f.os_reserved_bounced());
        f.set_capacity(1514).unwrap();
        assert_eq!(f.to_bits() >> 26 & ((1 << 26) - 1), 1514);
        f.set_scratch(false);
        assert!(
            f.os_reserved_bounced(),
            "Scratch leaves the bounced bit alone"
        );
    }

    #[test]
    fn oversized_values_are_errors_and_change_nothing() {
        let mut f = NetFragment::default();
        f.set_valid_length(100).unwrap();
        let e = f.set_valid_length(1 << 26).unwrap_err();
        assert_eq!(
            (e.field, e.value, e.max),
            ("ValidLength", 1 << 26, (1 << 26) - 1)
        );
        assert_eq!(f.set_offset(1024).unwrap_err().field, "Offset");
        assert_eq!(f.set_capacity(u32::MAX).unwrap_err().field, "Capacity");
        assert_eq!(f.valid_length(), 100);
        assert_eq!(f.to_bits(), 100);
    }

    #[test]
    fn consistency() {
        let mut f = NetFragment::default();
        f.set_capacity(2048).unwrap();
        f.set_offset(12).unwrap();
        f.set_valid_length(2036).unwrap();
        assert!(f.is_consistent());
        f.set_valid_length(2037).unwrap();
        assert!(!f.is_consistent());
    }
}
