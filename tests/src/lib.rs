//! The virtionet test harness: it plays NetAdapterCx and the device so that the driver core can be
//! checked on Linux.
//!
//! * [`rings::QueueRings`] — the OS side of queue creation: a queue's packet and fragment rings
//!   with the extensions a driver registers, laid out as the framework does but with randomised
//!   padding and strides, and extension queries answered as `NetTx/RxQueueGetExtension` do.
//! * [`dma`] — simulated DMA memory: guest RAM shared with rust-vmm, and an arena allocator whose
//!   device address is the guest physical address.
//! * [`device`] — device sides of a virtqueue: rust-vmm's `virtio-queue` for split rings, and a
//!   packed-ring device written from the spec.

//!
//! The harness is Linux-only (QEMU, shared memory, namespaces): on other targets the crate is
//! empty, so a Windows build of the workspace holds only the driver.

#![cfg(target_os = "linux")]
#![deny(missing_docs)]

pub mod device;
pub mod dma;
pub mod frames;
pub mod fuzzing;
pub mod host;
pub mod inf;
pub mod lab;
pub mod netdev;
pub mod netns;
pub mod os_rx;
pub mod os_tx;
pub mod pcap;
pub mod pci_model;
pub mod qemu;
pub mod rings;
pub mod rng;
pub mod sim;
pub mod tcp;
