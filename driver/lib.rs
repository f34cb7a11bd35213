//! virtionet — a NetAdapterCx (KMDF) client driver for the virtio-net device of QEMU/KVM.
//!
//! The crate has two halves (see `DESIGN.md` in the shared folder):
//!
//! * the portable core — the queue engines and adapter state that NetAdapterCx's callbacks call,
//!   built from the [`netring`] ABI mirror, the `virtio` transport and the `offload` packet math;
//! * the KMDF glue (`driver/kmdf/`, Windows only) that turns WDF and NetAdapterCx callbacks into
//!   calls to the core.
//!
//! The crate is `no_std` everywhere. On hosts other than Windows it links `std` only so that the
//! `cdylib` artefact has a panic runtime; no code here uses it. On Windows the panic handler and the
//! allocator come from `wdk-panic` and `wdk-alloc`.
//!
//! What exists so far is the NetAdapterCx datapath ABI, re-exported here for the glue; the queue
//! engines and the adapter are built on top of it by the datapath work.

#![no_std]
#![deny(missing_docs)]

#[cfg(not(windows))]
extern crate std;

#[cfg(all(windows, not(test)))]
extern crate wdk_panic;

#[cfg(all(windows, not(test)))]
#[global_allocator]
static GLOBAL_ALLOCATOR: wdk_alloc::WdkAllocator = wdk_alloc::WdkAllocator;

pub use netring;
