//! virtio 1.x, driver side, for a virtio-net PCI device: PCI capabilities, common configuration,
//! feature negotiation, split and packed virtqueues, the virtio-net header, device configuration
//! and control queue.
//!
//! The crate reaches hardware only through small register-access, config-space and DMA-memory
//! traits, so the same code runs inside the Windows driver and against the test harness's devices.
//! Its contents arrive with the virtio work; until then it is an empty `no_std` crate.

#![no_std]
#![deny(missing_docs)]
