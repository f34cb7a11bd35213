//! virtionet — a NetAdapterCx (KMDF) client driver for the virtio-net device of QEMU/KVM.
//!
//! The crate has two halves (see `DESIGN.md` in the shared folder):
//!
//! * the portable core — the queue engines and adapter state that NetAdapterCx's callbacks call,
//!   built from the [`netring`] ABI mirror, the [`virtio`] transport and the [`offload`] packet
//!   math;
//! * the KMDF glue (`driver/kmdf/`, Windows only) that turns WDF and NetAdapterCx callbacks into
//!   calls to the core.
//!
//! The crate is `no_std` everywhere. On hosts other than Windows it links `std` only so that the
//! `cdylib` artefact has a panic runtime; no code here uses it. On Windows the panic handler and the
//! allocator come from `wdk-panic` and `wdk-alloc`. Allocation happens only when a queue or the
//! adapter is created, never in a datapath callback, and always fallibly ([`fallible`]): a machine
//! short of pool fails that one operation with STATUS_INSUFFICIENT_RESOURCES, it does not bugcheck.

#![no_std]
#![deny(missing_docs)]

extern crate alloc;
#[cfg(any(test, all(not(windows), not(feature = "no-std-host"))))]
extern crate std;

#[cfg(all(windows, not(test)))]
extern crate wdk_panic;

/// `no-std-host` (only for `nopanic/`, the link-time panic check): the panic handler calls a
/// function defined nowhere, so a panic path the optimiser keeps in an exported entry point
/// fails the link; the allocator always fails (the datapath never allocates).
#[cfg(all(not(windows), not(test), feature = "no-std-host"))]
mod no_std_host {
    use core::alloc::{GlobalAlloc, Layout};

    unsafe extern "C" {
        /// Defined nowhere: referenced only from the panic handler.
        fn virtionet_nopanic_panic_reached() -> !;
    }

    #[panic_handler]
    fn panic(_: &core::panic::PanicInfo<'_>) -> ! {
        // SAFETY: never defined, so never called: a reachable panic fails the link instead.
        unsafe { virtionet_nopanic_panic_reached() }
    }

    struct NoAlloc;

    // SAFETY: returns null (allocation failure) for every request, which GlobalAlloc permits.
    unsafe impl GlobalAlloc for NoAlloc {
        unsafe fn alloc(&self, _: Layout) -> *mut u8 {
            core::ptr::null_mut()
        }
        unsafe fn dealloc(&self, _: *mut u8, _: Layout) {}
    }

    #[global_allocator]
    static ALLOCATOR: NoAlloc = NoAlloc;
}

#[cfg(all(windows, not(test)))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

// The glue on other hosts: wdk-sys and wdk are replaced by a stand-in whose routines the test
// harness's emulated KMDF implements (see the `glue-host` feature).
#[cfg(all(not(windows), feature = "glue-host"))]
extern crate wdk_standin as wdk;
#[cfg(all(not(windows), feature = "glue-host"))]
extern crate wdk_standin as wdk_sys;

pub mod adapter;
pub mod config;
pub mod devstate;
pub mod events;
pub mod fallible;
pub mod kmdf;
pub mod notify;
pub mod os_memory;
pub mod rss;
pub mod rxpool;
pub mod rxqueue;
pub mod stall;
pub mod stats;
pub mod trace;
pub mod txbounce;
pub mod txqueue;
pub mod vectors;

pub use netring;
pub use offload;
pub use virtio;
