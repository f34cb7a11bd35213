//! DriverEntry: the TraceLogging provider, then WdfDriverCreate (NetAdapterCx drivers do not
//! register with NDIS themselves; the class extension binds through WDF before DriverEntry).

use wdk_sys::{
    DRIVER_OBJECT, NT_SUCCESS, NTSTATUS, PCUNICODE_STRING, PDRIVER_OBJECT, WDF_DRIVER_CONFIG,
    WDF_NO_HANDLE, WDF_NO_OBJECT_ATTRIBUTES, WDFDRIVER, call_unsafe_wdf_function_binding,
};

use super::device::evt_device_add;

/// The driver's entry point.
///
/// # Safety
///
/// Called once by the I/O manager with its driver object and registry path.
#[unsafe(export_name = "DriverEntry")]
pub unsafe extern "system" fn driver_entry(
    driver: &mut DRIVER_OBJECT,
    registry_path: PCUNICODE_STRING,
) -> NTSTATUS {
    // SAFETY: unregistered in DriverUnload and on the failure path below.
    unsafe { crate::trace::register() };
    let mut config = WDF_DRIVER_CONFIG {
        Size: core::mem::size_of::<WDF_DRIVER_CONFIG>() as u32,
        EvtDriverDeviceAdd: Some(evt_device_add),
        EvtDriverUnload: Some(evt_driver_unload),
        ..Default::default()
    };
    // SAFETY: the I/O manager's driver object and registry path, at PASSIVE_LEVEL.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDriverCreate,
            driver as PDRIVER_OBJECT,
            registry_path,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut config,
            WDF_NO_HANDLE.cast::<WDFDRIVER>()
        )
    };
    if !NT_SUCCESS(st) {
        crate::trace::unregister();
    }
    st
}

extern "C" fn evt_driver_unload(_driver: WDFDRIVER) {
    crate::trace::unregister();
}
