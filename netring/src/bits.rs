//! Bit-field helpers for the MSVC layouts of the WDK headers (LSB-first allocation).

use crate::FieldError;

/// Mask of `width` low bits (`width` ≤ 63 everywhere in this crate).
pub(crate) const fn mask(width: u32) -> u64 {
    // width ≤ 63: the shift is defined and the result ≥ 1.
    (1u64 << width).wrapping_sub(1)
}

/// Reads `width` bits starting at bit `shift`.
pub(crate) const fn get(unit: u64, shift: u32, width: u32) -> u64 {
    (unit >> shift) & mask(width)
}

/// Returns `unit` with `width` bits at `shift` replaced by `value`, or an error naming `field`
/// when `value` does not fit.
pub(crate) const fn set(
    unit: u64,
    shift: u32,
    width: u32,
    value: u64,
    field: &'static str,
) -> Result<u64, FieldError> {
    if value > mask(width) {
        return Err(FieldError {
            field,
            value,
            max: mask(width),
        });
    }
    Ok((unit & !(mask(width) << shift)) | (value << shift))
}
