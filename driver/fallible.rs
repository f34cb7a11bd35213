//! Allocation that can fail. In the kernel a failed infallible allocation (`Box::new`, `vec!`,
//! `collect`) is a bugcheck: Rust's allocation-error path panics, and the driver's panic handler
//! stops the machine. Everything the driver allocates — only at creation, at PASSIVE_LEVEL — goes
//! through these instead, so a machine short of pool fails that one operation with
//! STATUS_INSUFFICIENT_RESOURCES and unwinds.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use alloc::boxed::Box;
use alloc::vec::Vec;
use core::alloc::Layout;

/// The pool could not supply the memory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct OutOfMemory;

/// `Box::new(value)`, or `Err` when the allocation fails (`value` is dropped).
pub fn boxed<T>(value: T) -> Result<Box<T>, OutOfMemory> {
    let layout = Layout::new::<T>();
    if layout.size() == 0 {
        // A zero-sized value takes no memory: Box::new does not allocate.
        return Ok(Box::new(value));
    }
    // SAFETY: the layout's size is not zero.
    let p = unsafe { alloc::alloc::alloc(layout) }.cast::<T>();
    if p.is_null() {
        return Err(OutOfMemory);
    }
    // SAFETY: `p` is fresh memory of `T`'s size and alignment, valid for a write.
    unsafe { p.write(value) };
    // SAFETY: `p` came from the global allocator with `Layout::new::<T>()` and holds an
    // initialised `T`: what `Box::from_raw` requires.
    Ok(unsafe { Box::from_raw(p) })
}

/// An empty vector with room for exactly `n` elements (pushes up to `n` never allocate).
pub fn with_capacity<T>(n: usize) -> Result<Vec<T>, OutOfMemory> {
    let mut v = Vec::new();
    v.try_reserve_exact(n).map_err(|_| OutOfMemory)?;
    Ok(v)
}

/// `vec![value; n]`, fallibly.
pub fn filled<T: Clone>(value: T, n: usize) -> Result<Vec<T>, OutOfMemory> {
    let mut v = with_capacity(n)?;
    // Within the reserved capacity: no further allocation.
    v.resize(n, value);
    Ok(v)
}

/// The items of `iter` collected into a vector sized once from its length, fallibly.
pub fn collect<T>(iter: impl ExactSizeIterator<Item = T>) -> Result<Vec<T>, OutOfMemory> {
    let mut v = with_capacity(iter.len())?;
    for x in iter {
        // An iterator that yields more than it said would make `push` allocate: stop there.
        if v.len() == v.capacity() {
            break;
        }
        v.push(x);
    }
    Ok(v)
}

/// Pushes `value` within the capacity reserved at creation: never allocates (false, and `value`
/// dropped, when full). The datapath's tables use it so that no growth path — an allocation and
/// a capacity-overflow panic — is left in the code (`nopanic/`).
#[inline]
pub fn push_within<T>(v: &mut Vec<T>, value: T) -> bool {
    if v.len() < v.capacity() {
        v.push(value);
        true
    } else {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_helpers_build_what_the_infallible_forms_build() {
        assert_eq!(*boxed(7u64).unwrap(), 7);
        assert_eq!(*boxed(()).unwrap(), ());
        let v = filled(3u8, 5).unwrap();
        assert_eq!(v, [3, 3, 3, 3, 3]);
        assert_eq!(v.capacity(), 5);
        assert_eq!(collect((0..4u16).rev()).unwrap(), [3, 2, 1, 0]);
        assert!(with_capacity::<u32>(9).unwrap().capacity() >= 9);
    }

    #[test]
    fn an_impossible_size_is_an_error_not_an_abort() {
        assert_eq!(with_capacity::<u64>(usize::MAX / 4), Err(OutOfMemory));
        assert_eq!(filled(0u32, usize::MAX / 2), Err(OutOfMemory));
    }
}
