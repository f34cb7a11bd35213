//! QEMU's real `virtio-net-pci`, driven from this process with no guest OS
//! (`shared/reference/qemu-qtest.md`): QEMU runs with a halted vCPU (`-bios halt.bin`), guest RAM
//! is a shared memory-backend file mapped here, and register access goes through the qtest text
//! protocol. The driver core brings the device up through the same [`virtio::hal`] traits as on
//! Windows: [`QemuPci`] for configuration space, [`QemuBars`] for MMIO, a [`DmaArena`] over the
//! shared RAM for DMA.

mod launcher;
mod pci;
mod qtest;

pub use launcher::{Accel, Qemu, QemuError, QemuOptions};
pub use pci::{QemuBars, QemuPci};
pub use qtest::Qtest;
