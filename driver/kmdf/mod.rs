//! The KMDF/NetAdapterCx glue, organised as RtEthSample is: one file per concern.
//!
//! Portable (compiled and tested on every host): [`netcx`] — the hand-written NetAdapterCx FFI;
//! [`declare`] — capabilities, queue configurations and extension queries built from the core;
//! [`msix`] — the interrupt layout and the notification gate.
//!
//! The rest needs wdk-sys: `driver` (DriverEntry), `device` (DeviceAdd, prepare and release
//! hardware), `hal` (BARs, PCI configuration, common-buffer DMA), `power` (D0 entry and exit),
//! `adapter` (per-device state, offload, filter and returned-buffer callbacks), `context` (WDF
//! object contexts), `txqueue`, `rxqueue`, `interrupt`, `configuration` (registry keywords). It is
//! built for Windows against the real bindings, and on other hosts with the `glue-host` feature
//! over `wdk-standin`, where the test harness loads it under an emulated KMDF + NetAdapterCx. The
//! only difference between the two builds is register access (`hal.rs`).

pub mod declare;
pub mod msix;
pub mod netcx;

/// The files that need wdk-sys: compiled for Windows (not in its unit tests, which link no WDK),
/// and elsewhere with the `glue-host` feature.
macro_rules! windows_glue {
    ($($m:ident),*) => {$(
        #[cfg(any(all(windows, not(test)), all(not(windows), feature = "glue-host")))]
        mod $m;
    )*};
}

/// The driver's entry point (what the I/O manager calls, and the glue host).
#[cfg(any(all(windows, not(test)), all(not(windows), feature = "glue-host")))]
pub use driver::driver_entry;

windows_glue!(
    adapter,
    configuration,
    context,
    device,
    driver,
    hal,
    interrupt,
    layout,
    power,
    rxqueue,
    txqueue
);
