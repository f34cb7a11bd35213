//! The link-time panic check (issue 16): the datapath's entry points, exported from a `no_std`
//! shared object built in release with `panic = "abort"`, whose panic handler (the driver's,
//! feature `no-std-host`) calls a function
//! that is defined nowhere. The optimiser removes the handler's call only if it removes every
//! path to it; one that is left makes the link fail with an undefined reference to
//! `virtionet_nopanic_panic_reached` (`scripts/nopanic.sh`, run by `scripts/test.sh`).
//!
//! Every input comes through the exported functions' arguments (pointers the optimiser cannot
//! see through), as from the OS and the device: nothing is constant-folded away.

#![no_std]
// The exports take Rust types by pointer: the callers are the linker and nobody else.
#![allow(improper_ctypes_definitions, clippy::missing_safety_doc)]

use core::ptr::NonNull;

#[cfg(any(feature = "tx", feature = "rx"))]
use netring::{FragmentRing, NetRing, PacketRing};
use virtio::ctrl::ControlQueue;
use virtio::hal::Bars;
use virtio::queue::{Segment, VirtQueue};
#[cfg(feature = "adapter")]
use virtionet::adapter::Adapter;
use virtionet::notify::NotifyGate;
#[cfg(feature = "rx")]
use virtionet::rxqueue::RxQueue;
#[cfg(feature = "tx")]
use virtionet::txqueue::TxQueue;
use virtionet::vectors::Vectors;

// The panic handler and the failing allocator are the driver's, under its `no-std-host`
// feature (driver/lib.rs): a dependency's cdylib must link too.

/// Register access through a mapped BAR at `base` (what the Windows glue does).
pub struct Mapped {
    base: NonNull<u8>,
    len: u64,
}

macro_rules! access {
    ($read:ident, $write:ident, $t:ty) => {
        fn $read(&self, _bar: u8, offset: u64) -> $t {
            let w = core::mem::size_of::<$t>() as u64;
            if offset.checked_add(w).is_none_or(|e| e > self.len) || !offset.is_multiple_of(w) {
                return <$t>::MAX;
            }
            // SAFETY: inside the mapping and aligned (checked above).
            unsafe { self.base.as_ptr().add(offset as usize).cast::<$t>().read_volatile() }
        }
        fn $write(&self, _bar: u8, offset: u64, v: $t) {
            let w = core::mem::size_of::<$t>() as u64;
            if offset.checked_add(w).is_none_or(|e| e > self.len) || !offset.is_multiple_of(w) {
                return;
            }
            // SAFETY: as in the read.
            unsafe { self.base.as_ptr().add(offset as usize).cast::<$t>().write_volatile(v) }
        }
    };
}

impl Bars for Mapped {
    fn bar_len(&self, _bar: u8) -> Option<u64> {
        Some(self.len)
    }
    access!(read8, write8, u8);
    access!(read16, write16, u16);
    access!(read32, write32, u32);
}

/// `EvtPacketQueueAdvance` of a transmit queue, from the OS's ring pointers.
#[cfg(feature = "tx")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nopanic_tx_advance(
    q: &mut TxQueue,
    packets: *mut NetRing,
    fragments: *mut NetRing,
) -> bool {
    // SAFETY: the caller's (the OS's) ring pointers, as in the glue.
    let (Ok(mut p), Ok(mut f)) = (unsafe { PacketRing::from_raw(packets) }, unsafe {
        FragmentRing::from_raw(fragments)
    }) else {
        return false;
    };
    q.advance(&mut p, &mut f).is_ok()
}

/// Transmit arming, flush, and abandoning after a reset.
#[cfg(feature = "tx")]
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_tx_control(q: &mut TxQueue, gate: &NotifyGate, what: u32) -> bool {
    match what {
        0 => q.arm(gate),
        1 => {
            q.disarm(gate);
            true
        }
        2 => {
            q.flush();
            true
        }
        _ => {
            q.abandon_in_flight();
            true
        }
    }
}

/// `EvtPacketQueueAdvance` of a receive queue.
#[cfg(feature = "rx")]
#[unsafe(no_mangle)]
pub unsafe extern "C" fn nopanic_rx_advance(
    q: &mut RxQueue,
    packets: *mut NetRing,
    fragments: *mut NetRing,
) -> bool {
    // SAFETY: as for transmit.
    let (Ok(mut p), Ok(mut f)) = (unsafe { PacketRing::from_raw(packets) }, unsafe {
        FragmentRing::from_raw(fragments)
    }) else {
        return false;
    };
    q.advance(&mut p, &mut f).is_ok()
}

/// `EvtReturnRxBuffer`, and the receive queue's arming.
#[cfg(feature = "rx")]
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_rx_return(q: &mut RxQueue, gate: &NotifyGate, context: usize) -> bool {
    q.return_buffer(context);
    q.arm(gate)
}

/// The virtqueue operations (split and packed behind one type): add, publish, reap, reset,
/// notification control.
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_virtqueue(
    q: &mut VirtQueue,
    readable: *const Segment,
    nr: usize,
    writable: *const Segment,
    nw: usize,
    what: u32,
) -> u32 {
    // SAFETY: the caller's segment lists.
    let (r, w) = unsafe {
        (
            core::slice::from_raw_parts(readable, nr),
            core::slice::from_raw_parts(writable, nw),
        )
    };
    match what {
        0 => q.add(r, w).map_or(u32::MAX, u32::from),
        1 => u32::from(q.publish()),
        2 => match q.pop_used() {
            Ok(Some(u)) => u.len,
            Ok(None) => 0,
            Err(_) => u32::MAX,
        },
        3 => u32::from(q.enable_notifications()),
        4 => {
            q.disable_notifications();
            u32::from(q.has_used())
        }
        _ => {
            let mut n = 0u32;
            q.reset(|_| n = n.wrapping_add(1));
            n
        }
    }
}

/// The interrupt path: the ISR's read of the status register and the gates, the DPC's decoding
/// of a message, the arming over a virtqueue.
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_interrupt(
    bars: &Mapped,
    isr: u64,
    vectors: &Vectors,
    message: u32,
    gate: &NotifyGate,
    q: &mut VirtQueue,
) -> u32 {
    let status = bars.read8(0, isr);
    let fired = gate.fire();
    let s = vectors.sources(message);
    let armed = gate.arm_over(q);
    u32::from(status)
        | u32::from(fired) << 8
        | u32::from(s.control) << 9
        | u32::from(s.config) << 10
        | u32::from(armed) << 11
        | u32::from(gate.take_fired()) << 12
}

/// Control-queue completion (the virtio crate's).
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_control(ctrl: &mut ControlQueue) -> u32 {
    match ctrl.poll() {
        None => 0,
        Some(Ok(())) => 1,
        Some(Err(_)) => 2,
    }
}

/// Control completion through the adapter, which then submits the next command and kicks.
#[cfg(feature = "adapter")]
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_adapter_control(adapter: &mut Adapter<Mapped>) -> u32 {
    u32::from(matches!(
        adapter.poll_control(),
        virtionet::adapter::ControlProgress::Pending
    ))
}

/// The control watchdog's tick (a WDF timer at DISPATCH_LEVEL): the pending command aged.
#[cfg(feature = "adapter")]
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_adapter_control_tick(adapter: &mut Adapter<Mapped>) -> u32 {
    u32::from(matches!(
        adapter.control_tick(),
        virtionet::adapter::ControlProgress::Pending
    ))
}

/// The configuration-change interrupt: the device configuration read again.
#[cfg(feature = "adapter")]
#[unsafe(no_mangle)]
pub extern "C" fn nopanic_config_changed(adapter: &mut Adapter<Mapped>) -> u32 {
    match adapter.config_changed() {
        Ok(Some(up)) => u32::from(up),
        Ok(None) => 2,
        Err(_) => 3,
    }
}
