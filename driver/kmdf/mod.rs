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

/// The Windows-only files: compiled for Windows (not in its unit tests, which link no WDK), and
/// type-checked elsewhere with the `glue-check` feature.
macro_rules! windows_glue {
    ($($m:ident),*) => {$(
        #[cfg(any(all(windows, not(test)), all(not(windows), feature = "glue-check")))]
        mod $m;
    )*};
}

windows_glue!(
    adapter,
    configuration,
    context,
    device,
    driver,
    hal,
    interrupt,
    power,
    rxqueue,
    txqueue
);
