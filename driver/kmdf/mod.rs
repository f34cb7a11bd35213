//! The KMDF/NetAdapterCx glue, organised as RtEthSample is: one file per concern.
//!
//! Portable (compiled and tested on every host): [`netcx`] — the hand-written NetAdapterCx FFI;
//! [`declare`] — capabilities, queue configurations and extension queries built from the core;
//! [`msix`] — the interrupt layout and the notification gate.
//!
//! Windows only (need wdk-sys, which builds only on a Windows host with the WDK; **never
//! compiled in this repository's CI**): `driver` (DriverEntry), `device` (DeviceAdd, prepare and
//! release hardware), `hal` (BARs, PCI configuration, common-buffer DMA), `power` (D0 entry and
//! exit), `adapter` (per-device state, offload, filter and returned-buffer callbacks), `context`
//! (WDF object contexts), `txqueue`,
//! `rxqueue`, `interrupt`, `configuration` (registry keywords).

pub mod declare;
pub mod msix;
pub mod netcx;

#[cfg(all(windows, not(test)))]
mod adapter;
#[cfg(all(windows, not(test)))]
mod configuration;
#[cfg(all(windows, not(test)))]
mod context;
#[cfg(all(windows, not(test)))]
mod device;
#[cfg(all(windows, not(test)))]
mod driver;
#[cfg(all(windows, not(test)))]
mod hal;
#[cfg(all(windows, not(test)))]
mod interrupt;
#[cfg(all(windows, not(test)))]
mod power;
#[cfg(all(windows, not(test)))]
mod rxqueue;
#[cfg(all(windows, not(test)))]
mod txqueue;
