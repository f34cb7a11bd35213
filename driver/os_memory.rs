//! Reading the bytes of OS-owned TX fragments through their virtual addresses.
//!
//! NetAdapterCx hands every TX fragment with a `NET_FRAGMENT_VIRTUAL_ADDRESS` extension; while
//! the driver owns the packet, `VirtualAddress + Offset` is valid for `ValidLength` bytes. This is
//! the one place the core turns such an address into a slice.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

/// One fragment of a TX frame: where its data is for the CPU and for the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameFragment {
    /// CPU address of the first valid byte (`VirtualAddress + Offset`).
    pub va: *const u8,
    /// Device address of the first valid byte (`LogicalAddress + Offset`).
    pub la: u64,
    /// Valid bytes.
    pub len: u32,
}

/// Copies bytes `[from, from + out.len())` of the frame made of `frags` into `out`; returns the
/// number copied (less when the frame is shorter).
///
/// # Safety
///
/// Every fragment's `va` must be valid for reads of `len` bytes for the duration of the call (the
/// NetAdapterCx contract for fragments the driver owns).
pub unsafe fn copy_out(frags: &[FrameFragment], mut from: usize, out: &mut [u8]) -> usize {
    let mut done = 0;
    for f in frags {
        let len = f.len as usize;
        if from >= len {
            from = from.saturating_sub(len);
            continue;
        }
        // from < len and done < out.len() (the loop ends when it is full).
        let n = len.saturating_sub(from).min(out.len().saturating_sub(done));
        let start = f.va.wrapping_add(from);
        // SAFETY: the caller guarantees `va` is readable for `len` bytes; from + n ≤ len.
        let src = unsafe { core::slice::from_raw_parts(start, n) };
        // done + n ≤ out.len() by the min above.
        let Some(dst) = out.get_mut(done..).and_then(|o| o.get_mut(..n)) else {
            break;
        };
        dst.copy_from_slice(src);
        done = done.saturating_add(n);
        from = 0;
        if done == out.len() {
            break;
        }
    }
    done
}

/// Copies bytes `[from, from + len)` of the frame made of `frags` to `dst` (memory the device
/// may share, so no reference to it is made); returns the number copied (less when the frame is
/// shorter).
///
/// # Safety
///
/// Every fragment's `va` must be valid for reads of `len` bytes for the duration of the call, and
/// `dst` valid for writes of `len` bytes, not overlapping any fragment.
pub unsafe fn copy_out_raw(
    frags: &[FrameFragment],
    mut from: usize,
    dst: *mut u8,
    len: usize,
) -> usize {
    let mut done = 0usize;
    for f in frags {
        if done == len {
            break;
        }
        let flen = f.len as usize;
        if from >= flen {
            from = from.saturating_sub(flen);
            continue;
        }
        // from < flen and done < len (checked above).
        let n = flen.saturating_sub(from).min(len.saturating_sub(done));
        // SAFETY: the caller guarantees `va` is readable for `flen` bytes (from + n ≤ flen) and
        // `dst` writable for `len` bytes (done + n ≤ len), without overlap.
        unsafe {
            core::ptr::copy_nonoverlapping(f.va.wrapping_add(from), dst.wrapping_add(done), n)
        };
        done = done.saturating_add(n);
        from = 0;
    }
    done
}
