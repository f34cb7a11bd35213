//! virtio 1.x, driver side, for a virtio-net PCI device: PCI capabilities, common configuration,
//! feature negotiation, split and packed virtqueues, the virtio-net header, device configuration
//! and control queue.
//!
//! The crate reaches hardware only through the small traits of [`hal`] — register access to the
//! BARs, PCI configuration reads, and DMA memory — so the same code runs inside the Windows
//! driver and against the test harness's devices. It treats the device as untrusted: everything
//! read from it is validated, and a violation is a typed error, never a panic.

#![no_std]
#![deny(missing_docs)]
// No panic a device or the OS can reach (issue 16): indexing, unchecked arithmetic, unwrap,
// expect and panic are denied outside tests; each allowed site says why it cannot fire.
#![cfg_attr(
    not(test),
    deny(
        clippy::indexing_slicing,
        clippy::arithmetic_side_effects,
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic
    )
)]

extern crate alloc;

pub mod ctrl;
pub mod features;
pub mod hal;
pub mod net;
pub mod pci;
pub mod queue;

pub use features::Features;
pub use queue::{Layout, QueueAddresses, QueueConfig, QueueError, Segment, Used, VirtQueue};
