//! The WDF and NT routines the glue calls, installed into `wdk_standin::host`'s slots: the driver
//! and device objects, resource lists, the PCI bus interface, BAR mappings and the register seam,
//! the DMA enabler and common buffers, spin locks, object contexts and deletion, and device
//! failure. Interrupts are in `interrupts.rs`.
//!
//! Every routine enters through [`api`]: the IRQL rule of `irql.rs`, the host's own code kept out
//! of the driver's pool ledger, and, for `…Create` routines, the low-resource fault plan.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use virtio::hal::Dma;
use wdk_standin::host::{ntddk as nt_slot, wdf as wdf_slot};
use wdk_standin::*;

use super::objects::{self, Kind};
use super::{alloc, host, irql, state};

/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
/// `STATUS_INVALID_DEVICE_REQUEST`.
pub const STATUS_INVALID_DEVICE_REQUEST: NTSTATUS = 0xC000_0010_u32 as i32;
/// `STATUS_NOT_SUPPORTED`.
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as i32;
/// `STATUS_INVALID_DEVICE_STATE`.
pub const STATUS_INVALID_DEVICE_STATE: NTSTATUS = 0xC000_0184_u32 as i32;

/// Runs a routine's body: checks its IRQL rule, runs it as host code (its allocations are not
/// the driver's), and aborts the process with the routine's name if the host itself panics (a
/// panic may not unwind through the driver's frames).
pub fn api<T>(name: &'static str, f: impl FnOnce() -> T) -> T {
    super::sync::count_routine();
    alloc::as_host(|| {
        irql::check(name);
        super::count_call(name);
        match std::panic::catch_unwind(std::panic::AssertUnwindSafe(f)) {
            Ok(v) => v,
            Err(e) => {
                let msg = e
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_default();
                eprintln!("glue host: {name} panicked: {msg}");
                std::process::abort();
            }
        }
    })
}

/// Whether the fault plan fails this create call (then the routine returns
/// STATUS_INSUFFICIENT_RESOURCES, as on a machine out of memory).
pub fn create_fails(name: &'static str) -> bool {
    let s = state();
    let mut f = s.faults.lock().unwrap_or_else(|e| e.into_inner());
    if let Some((named, skip)) = f.fail_named.as_mut()
        && *named == name
    {
        if *skip == 0 {
            f.fail_named = None;
            f.failed_creates.push(name);
            return true;
        }
        *skip -= 1;
    }
    if let Some(n) = f.fail_create_in.as_mut() {
        if *n == 0 {
            f.fail_create_in = None;
            f.failed_creates.push(name);
            return true;
        }
        *n -= 1;
    }
    false
}

// ---------------------------------------------------------------------------------------------
// Driver and device.

/// What DriverEntry registered.
#[derive(Default)]
pub struct DriverRecord {
    /// The WDFDRIVER.
    pub handle: usize,
    /// `EvtDriverDeviceAdd`.
    pub device_add: PFN_WDF_DRIVER_DEVICE_ADD,
    /// `EvtDriverUnload`.
    pub unload: PFN_WDF_DRIVER_UNLOAD,
}

/// A `WDFDEVICE_INIT` being filled in EvtDriverDeviceAdd.
#[derive(Default)]
pub struct DeviceInit {
    /// NetDeviceInitConfig was called on it (first).
    pub netcx_configured: bool,
    /// Some other routine was called on it before NetDeviceInitConfig.
    pub used_before_netcx: bool,
    /// PnP/power callbacks.
    pub pnp: Option<WDF_PNPPOWER_EVENT_CALLBACKS>,
    /// NetDeviceInitSetResetCapabilities's callback.
    pub reset_diagnostics: Option<virtionet::kmdf::netcx::EvtCollectResetDiagnostics>,
    /// Consumed by WdfDeviceCreate.
    pub consumed: bool,
}

/// The device object's host state.
#[derive(Default)]
pub struct DeviceRecord {
    /// The WDFDEVICE (0 before creation).
    pub handle: usize,
    /// Its PnP/power callbacks.
    pub pnp: Option<WDF_PNPPOWER_EVENT_CALLBACKS>,
    /// WdfDeviceSetFailed was called (with this action).
    pub failed: Option<WDF_DEVICE_FAILED_ACTION>,
    /// The driver's EvtNetDeviceCollectResetDiagnostics.
    pub reset_diagnostics: Option<virtionet::kmdf::netcx::EvtCollectResetDiagnostics>,
    /// NetDeviceRequestReset was called (NetAdapterCx acts on the first call only).
    pub reset_requested: bool,
}

unsafe extern "C" fn wdf_driver_create(
    _object: PDRIVER_OBJECT,
    _path: PCUNICODE_STRING,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    config: *mut WDF_DRIVER_CONFIG,
    driver: *mut WDFDRIVER,
) -> NTSTATUS {
    api("WdfDriverCreate", || {
        if create_fails("WdfDriverCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        if config.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: DriverEntry passes its initialised config.
        let c = unsafe { *config };
        if c.Size as usize != std::mem::size_of::<WDF_DRIVER_CONFIG>() {
            irql::violation(
                "WdfStructSize",
                format!("WDF_DRIVER_CONFIG.Size {}", c.Size),
            );
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        let h = match unsafe { objects::create(Kind::Driver, None, attributes) } {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        let s = state();
        *s.driver.lock().unwrap_or_else(|e| e.into_inner()) = DriverRecord {
            handle: h,
            device_add: c.EvtDriverDeviceAdd,
            unload: c.EvtDriverUnload,
        };
        if !driver.is_null() {
            // SAFETY: the caller's out parameter.
            unsafe { *driver = h as WDFDRIVER };
        }
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_device_init_set_pnp_power_event_callbacks(
    init: PWDFDEVICE_INIT,
    callbacks: *mut WDF_PNPPOWER_EVENT_CALLBACKS,
) {
    api("WdfDeviceInitSetPnpPowerEventCallbacks", || {
        let s = state();
        let mut i = s.device_init.lock().unwrap_or_else(|e| e.into_inner());
        if init as usize != super::DEVICE_INIT || i.consumed {
            irql::violation(
                "InvalidDeviceInit",
                "WdfDeviceInitSetPnpPowerEventCallbacks on an init object not in EvtDriverDeviceAdd"
                    .into(),
            );
            return;
        }
        if !i.netcx_configured {
            i.used_before_netcx = true;
        }
        // SAFETY: the driver's initialised callbacks.
        let c = unsafe { *callbacks };
        if c.Size as usize != std::mem::size_of::<WDF_PNPPOWER_EVENT_CALLBACKS>() {
            irql::violation(
                "WdfStructSize",
                format!("WDF_PNPPOWER_EVENT_CALLBACKS.Size {}", c.Size),
            );
        }
        i.pnp = Some(c);
    })
}

unsafe extern "C" fn wdf_device_create(
    init: *mut PWDFDEVICE_INIT,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    device: *mut WDFDEVICE,
) -> NTSTATUS {
    api("WdfDeviceCreate", || {
        if create_fails("WdfDeviceCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let s = state();
        // SAFETY: the driver passes the address of its init pointer.
        let init_ptr = unsafe { *init };
        let mut i = s.device_init.lock().unwrap_or_else(|e| e.into_inner());
        if init_ptr as usize != super::DEVICE_INIT || i.consumed {
            irql::violation(
                "InvalidDeviceInit",
                "WdfDeviceCreate without the init object".into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if !i.netcx_configured || i.used_before_netcx {
            irql::violation(
                "NetDeviceInitConfigFirst",
                "NetDeviceInitConfig must be the first call on a NetAdapterCx device's init \
                 object (NetDeviceInitConfig page)"
                    .into(),
            );
        }
        let driver = s.driver.lock().unwrap_or_else(|e| e.into_inner()).handle;
        // SAFETY: null or the driver's attributes.
        let attrs = unsafe { attributes.as_ref() };
        if attrs.is_some_and(|a| !a.ParentObject.is_null()) {
            irql::violation(
                "ObjectAttributes",
                "WdfDeviceCreate: ParentObject must be NULL (the parent is the driver)".into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: as above.
        let h = match unsafe { objects::create(Kind::Device, Some(driver), attributes) } {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        i.consumed = true;
        let (pnp, reset_diagnostics) = (i.pnp, i.reset_diagnostics);
        drop(i);
        *s.device.lock().unwrap_or_else(|e| e.into_inner()) = DeviceRecord {
            handle: h,
            pnp,
            failed: None,
            reset_diagnostics,
            reset_requested: false,
        };
        // SAFETY: out parameters of the caller ("After the call the WDFDEVICE_INIT is no longer
        // accessible": the pointer is cleared as WDF does).
        unsafe {
            *device = h as WDFDEVICE;
        }
        // SAFETY: as above.
        unsafe { *init = std::ptr::null_mut() };
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_device_set_failed(device: WDFDEVICE, action: WDF_DEVICE_FAILED_ACTION) {
    api("WdfDeviceSetFailed", || {
        let s = state();
        let mut d = s.device.lock().unwrap_or_else(|e| e.into_inner());
        if d.handle != device as usize {
            irql::violation("InvalidHandle", "WdfDeviceSetFailed on a stranger".into());
            return;
        }
        d.failed = Some(action);
        drop(d);
        // WDF tears the stack down from a work item at PASSIVE_LEVEL
        // (FxPkgPnp::SetDeviceFailedAttemptRestart): the host's PnP worker does.
        s.pnp_request(super::PnpRequest::Failed(action));
    })
}

unsafe extern "C" fn wdf_object_get_typed_context_worker(
    handle: WDFOBJECT,
    info: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
) -> PVOID {
    api("WdfObjectGetTypedContextWorker", || {
        if info.is_null() {
            return std::ptr::null_mut();
        }
        // SAFETY: the driver's static context type description.
        let ti = unsafe { &*info };
        let unique = if ti.UniqueType.is_null() {
            info as usize
        } else {
            ti.UniqueType as usize
        };
        objects::context(handle as usize, unique).cast()
    })
}

unsafe extern "C" fn wdf_object_delete(object: WDFOBJECT) {
    api("WdfObjectDelete", || {
        let h = object as usize;
        let Some(kind) = objects::kind(h) else {
            irql::violation(
                "InvalidHandle",
                format!("WdfObjectDelete on {h:#x}, not a live object"),
            );
            return;
        };
        if !kind.driver_may_delete() {
            irql::violation(
                "ObjectNotDeletable",
                format!(
                    "WdfObjectDelete on a {kind:?}: not allowed (WdfObjectDelete page; WDF \
                     ignores it)"
                ),
            );
            return;
        }
        if kind == Kind::CommonBuffer && irql::current() > irql::PASSIVE {
            irql::violation(
                "IrqlTooHigh",
                "WdfObjectDelete of a common buffer above PASSIVE_LEVEL (WdfObjectDelete page)"
                    .into(),
            );
        }
        delete_object(h);
    })
}

/// Deletes an object tree, releasing what the host holds for each object.
pub fn delete_object(h: usize) {
    let s = state();
    objects::delete(h, &mut |x, kind| s.release_object(x, kind));
}

// ---------------------------------------------------------------------------------------------
// Resources, bus interface, mappings.

/// A resource list: 20-byte `CM_PARTIAL_RESOURCE_DESCRIPTOR`s (pshpack4).
pub struct ResourceList {
    /// The descriptors.
    pub descriptors: Box<[[u8; 20]]>,
}

/// A memory descriptor (CmResourceTypeMemory 3).
pub fn memory_descriptor(start: u64, len: u32) -> [u8; 20] {
    let mut d = [0u8; 20];
    d[0] = 3;
    d[1] = 1; // CmResourceShareDeviceExclusive
    d[4..12].copy_from_slice(&start.to_le_bytes());
    d[12..16].copy_from_slice(&len.to_le_bytes());
    d
}

/// An interrupt descriptor (CmResourceTypeInterrupt 2); `message` sets
/// CM_RESOURCE_INTERRUPT_MESSAGE (and latched), otherwise level-sensitive.
pub fn interrupt_descriptor(message: bool, vector: u32) -> [u8; 20] {
    let mut d = [0u8; 20];
    d[0] = 2;
    d[1] = if message { 1 } else { 3 }; // exclusive / shared
    let flags: u16 = if message { 0x0002 | 0x0001 } else { 0 };
    d[2..4].copy_from_slice(&flags.to_le_bytes());
    // u.Interrupt: Level @4, Vector @8, Affinity @12 (u.MessageInterrupt.Translated likewise).
    d[4..8].copy_from_slice(&5u32.to_le_bytes());
    d[8..12].copy_from_slice(&vector.to_le_bytes());
    d[12..20].copy_from_slice(&1u64.to_le_bytes());
    d
}

unsafe extern "C" fn wdf_cm_resource_list_get_count(list: WDFCMRESLIST) -> ULONG {
    api("WdfCmResourceListGetCount", || {
        let s = state();
        let l = s.resource_lists.lock().unwrap_or_else(|e| e.into_inner());
        match l.get(&(list as usize)) {
            Some(r) => r.descriptors.len() as ULONG,
            None => {
                irql::violation(
                    "InvalidHandle",
                    "WdfCmResourceListGetCount outside PrepareHardware/ReleaseHardware".into(),
                );
                0
            }
        }
    })
}

unsafe extern "C" fn wdf_cm_resource_list_get_descriptor(
    list: WDFCMRESLIST,
    index: ULONG,
) -> PCM_PARTIAL_RESOURCE_DESCRIPTOR {
    api("WdfCmResourceListGetDescriptor", || {
        let s = state();
        let mut l = s.resource_lists.lock().unwrap_or_else(|e| e.into_inner());
        match l.get_mut(&(list as usize)) {
            Some(r) => r
                .descriptors
                .get_mut(index as usize)
                .map_or(std::ptr::null_mut(), |d| d.as_mut_ptr().cast()),
            None => {
                irql::violation(
                    "InvalidHandle",
                    "WdfCmResourceListGetDescriptor outside PrepareHardware/ReleaseHardware".into(),
                );
                std::ptr::null_mut()
            }
        }
    })
}

/// `GUID_BUS_INTERFACE_STANDARD`.
const GUID_BUS_INTERFACE_STANDARD: GUID = GUID {
    Data1: 0x496B_8280,
    Data2: 0x6F25,
    Data3: 0x11D0,
    Data4: [0xBE, 0xAF, 0x08, 0x00, 0x2B, 0xE2, 0x09, 0x2F],
};

/// The bus interface's context: references taken and not yet released.
pub static BUS_INTERFACE_REFERENCES: AtomicU64 = AtomicU64::new(0);

unsafe extern "C" fn bus_reference(_context: PVOID) {
    BUS_INTERFACE_REFERENCES.fetch_add(1, Ordering::AcqRel);
}

unsafe extern "C" fn bus_dereference(_context: PVOID) {
    BUS_INTERFACE_REFERENCES.fetch_sub(1, Ordering::AcqRel);
}

/// `PCI_WHICHSPACE_CONFIG`.
const PCI_WHICHSPACE_CONFIG: ULONG = 0;

unsafe extern "C" fn bus_get_data(
    _context: PVOID,
    space: ULONG,
    buffer: PVOID,
    offset: ULONG,
    length: ULONG,
) -> ULONG {
    alloc::as_host(|| {
        if space != PCI_WHICHSPACE_CONFIG || offset >= 256 {
            return 0;
        }
        let n = length.min(256 - offset) as usize;
        // SAFETY: the driver's buffer of `length` bytes.
        let out = unsafe { std::slice::from_raw_parts_mut(buffer.cast::<u8>(), n) };
        host().bus.config_read(offset as u16, out);
        n as ULONG
    })
}

unsafe extern "C" fn bus_set_data(
    _context: PVOID,
    space: ULONG,
    buffer: PVOID,
    offset: ULONG,
    length: ULONG,
) -> ULONG {
    alloc::as_host(|| {
        if space != PCI_WHICHSPACE_CONFIG || offset >= 256 {
            return 0;
        }
        let n = length.min(256 - offset) as usize;
        // SAFETY: the driver's buffer of `length` bytes.
        let data = unsafe { std::slice::from_raw_parts(buffer.cast::<u8>(), n) };
        host().bus.config_write(offset as u16, data);
        n as ULONG
    })
}

unsafe extern "C" fn wdf_fdo_query_for_interface(
    fdo: WDFDEVICE,
    guid: *const GUID,
    interface: PINTERFACE,
    size: USHORT,
    _version: USHORT,
    _specific: PVOID,
) -> NTSTATUS {
    api("WdfFdoQueryForInterface", || {
        // SAFETY: the driver's GUID.
        let g = unsafe { *guid };
        let is_bus = g.Data1 == GUID_BUS_INTERFACE_STANDARD.Data1
            && g.Data2 == GUID_BUS_INTERFACE_STANDARD.Data2
            && g.Data3 == GUID_BUS_INTERFACE_STANDARD.Data3
            && g.Data4 == GUID_BUS_INTERFACE_STANDARD.Data4;
        if !is_bus {
            return STATUS_NOT_SUPPORTED;
        }
        if state()
            .device
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle
            != fdo as usize
        {
            irql::violation("InvalidHandle", "WdfFdoQueryForInterface".into());
            return STATUS_INVALID_PARAMETER;
        }
        if (size as usize) < std::mem::size_of::<BUS_INTERFACE_STANDARD>() {
            return STATUS_INVALID_PARAMETER;
        }
        let i = BUS_INTERFACE_STANDARD {
            Size: std::mem::size_of::<BUS_INTERFACE_STANDARD>() as USHORT,
            Version: 1,
            Context: std::ptr::null_mut(),
            InterfaceReference: Some(bus_reference),
            InterfaceDereference: Some(bus_dereference),
            TranslateBusAddress: std::ptr::null_mut(),
            GetDmaAdapter: std::ptr::null_mut(),
            SetBusData: Some(bus_set_data),
            GetBusData: Some(bus_get_data),
        };
        // The query returns the interface referenced.
        BUS_INTERFACE_REFERENCES.fetch_add(1, Ordering::AcqRel);
        // SAFETY: the driver's interface struct of at least `size` bytes (checked).
        unsafe { interface.cast::<BUS_INTERFACE_STANDARD>().write(i) };
        STATUS_SUCCESS
    })
}

/// A BAR mapping made with MmMapIoSpaceEx.
#[derive(Debug, Clone, Copy)]
pub struct Mapping {
    /// Physical address.
    pub pa: u64,
    /// Length.
    pub len: u64,
}

/// Mapped virtual addresses are fake: they name a mapping, they cannot be dereferenced.
const MAPPING_BASE: usize = 0x7e00_0000_0000;

unsafe extern "C" fn mm_map_io_space_ex(
    pa: PHYSICAL_ADDRESS,
    len: SIZE_T,
    _protect: ULONG,
) -> PVOID {
    api("MmMapIoSpaceEx", || {
        // SAFETY: every bit pattern of the union is an i64.
        let pa = unsafe { pa.QuadPart } as u64;
        let s = state();
        let ok = s
            .resources_pa
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .any(|&(base, l)| pa >= base && pa + len <= base + l);
        if !ok {
            irql::violation(
                "MapOutsideResources",
                format!("MmMapIoSpaceEx({pa:#x}, {len}) is not a translated memory resource"),
            );
            return std::ptr::null_mut();
        }
        // Never reused: a stale mapping is caught, not aliased.
        let span = (len as usize).next_multiple_of(0x100_0000).max(0x100_0000);
        let va = MAPPING_BASE + s.next_mapping.fetch_add(span, Ordering::AcqRel);
        let mut m = s.mappings.lock().unwrap_or_else(|e| e.into_inner());
        m.insert(va, Mapping { pa, len });
        va as PVOID
    })
}

unsafe extern "C" fn mm_unmap_io_space(va: PVOID, len: SIZE_T) {
    api("MmUnmapIoSpace", || {
        let s = state();
        let mut m = s.mappings.lock().unwrap_or_else(|e| e.into_inner());
        match m.remove(&(va as usize)) {
            Some(x) if x.len == len => {}
            Some(x) => irql::violation(
                "UnmapLength",
                format!("MmUnmapIoSpace length {len}, mapped {}", x.len),
            ),
            None => irql::violation("UnmapUnknown", format!("MmUnmapIoSpace({va:p})")),
        }
    })
}

unsafe extern "C" fn ke_query_unbiased_interrupt_time() -> ULONGLONG {
    api("KeQueryUnbiasedInterruptTime", || {
        (state().epoch.elapsed().as_nanos() / 100) as ULONGLONG
    })
}

unsafe extern "C" fn ke_delay_execution_thread(
    _mode: KPROCESSOR_MODE,
    _alertable: BOOLEAN,
    interval: PLARGE_INTEGER,
) -> NTSTATUS {
    api("KeDelayExecutionThread", || {
        if interval.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the caller's interval, valid for the call.
        let li = unsafe { *interval };
        // SAFETY: every bit pattern is a valid i64.
        let q = unsafe { li.QuadPart };
        // Negative: relative, 100 ns units (absolute times are taken as relative too).
        std::thread::sleep(std::time::Duration::from_nanos(
            q.unsigned_abs().saturating_mul(100),
        ));
        STATUS_SUCCESS
    })
}

fn translate(va: usize, width: usize) -> Option<u64> {
    let s = state();
    let m = s.mappings.lock().unwrap_or_else(|e| e.into_inner());
    let (&base, map) = m.range(..=va).next_back()?;
    let off = (va - base) as u64;
    (off + width as u64 <= map.len).then_some(map.pa + off)
}

fn read_register(va: usize, width: usize) -> u64 {
    alloc::as_host(|| {
        if !va.is_multiple_of(width) {
            irql::violation("UnalignedRegister", format!("read of {width} at {va:#x}"));
        }
        match translate(va, width) {
            Some(pa) => {
                super::sync::count_register();
                host().register_reads.fetch_add(1, Ordering::Relaxed);
                host().bus.mmio_read(pa, width)
            }
            None => {
                irql::violation(
                    "RegisterOutsideMapping",
                    format!("read of {width} bytes at {va:#x}"),
                );
                u64::MAX
            }
        }
    })
}

fn write_register(va: usize, width: usize, value: u64) {
    alloc::as_host(|| {
        if !va.is_multiple_of(width) {
            irql::violation("UnalignedRegister", format!("write of {width} at {va:#x}"));
        }
        match translate(va, width) {
            Some(pa) => {
                super::sync::count_register();
                host().register_writes.fetch_add(1, Ordering::Relaxed);
                if let Some(log) = host()
                    .write_log
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .as_mut()
                {
                    log.push(format!(
                        "{:?}: {width} bytes at {pa:#x} = {value:#x}",
                        std::thread::current().name()
                    ));
                }
                host().bus.mmio_write(pa, width, value);
            }
            None => irql::violation(
                "RegisterOutsideMapping",
                format!("write of {width} bytes at {va:#x}"),
            ),
        }
    })
}

// ---------------------------------------------------------------------------------------------
// DMA.

/// A DMA enabler's configuration.
#[derive(Debug, Clone, Copy)]
pub struct Enabler {
    /// `WDF_DMA_ENABLER_CONFIG`.
    pub config: WDF_DMA_ENABLER_CONFIG,
}

/// A common buffer.
pub struct CommonBuffer {
    /// The region of guest RAM.
    pub region: Option<virtio::hal::DmaRegion>,
    /// Requested length.
    pub len: usize,
}

// SAFETY: the region is guest RAM the host owns; the struct is moved between host threads only.
unsafe impl Send for CommonBuffer {}

unsafe extern "C" fn wdf_dma_enabler_create(
    device: WDFDEVICE,
    config: *mut WDF_DMA_ENABLER_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    enabler: *mut WDFDMAENABLER,
) -> NTSTATUS {
    api("WdfDmaEnablerCreate", || {
        if create_fails("WdfDmaEnablerCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: the driver's initialised config.
        let c = unsafe { *config };
        if c.Size as usize != std::mem::size_of::<WDF_DMA_ENABLER_CONFIG>() {
            irql::violation(
                "WdfStructSize",
                format!("WDF_DMA_ENABLER_CONFIG.Size {}", c.Size),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if c.MaximumLength == 0 {
            // fxdmaenablerapi.cpp: MaximumLength 0 is refused.
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        let h =
            match unsafe { objects::create(Kind::DmaEnabler, Some(device as usize), attributes) } {
                Ok(h) => h,
                Err(e) => {
                    irql::violation("ObjectAttributes", e);
                    return STATUS_INVALID_PARAMETER;
                }
            };
        state()
            .enablers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(h, Enabler { config: c });
        // SAFETY: the out parameter.
        unsafe { *enabler = h as WDFDMAENABLER };
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_common_buffer_create_with_config(
    enabler: WDFDMAENABLER,
    length: usize,
    config: *mut WDF_COMMON_BUFFER_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    buffer: *mut WDFCOMMONBUFFER,
) -> NTSTATUS {
    api("WdfCommonBufferCreateWithConfig", || {
        if create_fails("WdfCommonBufferCreateWithConfig") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let s = state();
        if !s
            .enablers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains_key(&(enabler as usize))
        {
            irql::violation(
                "InvalidHandle",
                "WdfCommonBufferCreateWithConfig enabler".into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if length == 0 {
            return STATUS_INVALID_PARAMETER;
        }
        if s.config
            .largest_common_buffer
            .is_some_and(|max| length > max)
        {
            // A fragmented guest: no physically contiguous run this long is left.
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: the driver's config.
        let c = unsafe { *config };
        let mask = c.AlignmentRequirement as usize;
        if !(mask + 1).is_power_of_two() {
            irql::violation(
                "CommonBufferAlignment",
                format!("AlignmentRequirement {mask:#x} is not (2^n − 1)"),
            );
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        if unsafe { attributes.as_ref() }.is_some_and(|a| !a.ParentObject.is_null()) {
            irql::violation(
                "ObjectAttributes",
                "common buffer: ParentObject not allowed (its parent is the enabler)".into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        let Some(region) = s.bus.arena().alloc(length, (mask + 1).max(8)) else {
            return STATUS_INSUFFICIENT_RESOURCES;
        };
        // SAFETY: as above.
        let h = match unsafe {
            objects::create(Kind::CommonBuffer, Some(enabler as usize), attributes)
        } {
            Ok(h) => h,
            Err(e) => {
                s.bus.arena().free(region);
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        // Common buffers come back with leftover contents, as real ones may (the driver zeroes).
        // SAFETY: the region was just allocated, `length` bytes.
        unsafe { std::ptr::write_bytes(region.cpu().as_ptr(), 0xA5, length) };
        s.common_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(
                h,
                CommonBuffer {
                    region: Some(region),
                    len: length,
                },
            );
        // SAFETY: the out parameter.
        unsafe { *buffer = h as WDFCOMMONBUFFER };
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_common_buffer_get_aligned_virtual_address(b: WDFCOMMONBUFFER) -> PVOID {
    api("WdfCommonBufferGetAlignedVirtualAddress", || {
        state()
            .common_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(b as usize))
            .and_then(|c| c.region.as_ref())
            .map_or(std::ptr::null_mut(), |r| r.cpu().as_ptr().cast())
    })
}

unsafe extern "C" fn wdf_common_buffer_get_aligned_logical_address(
    b: WDFCOMMONBUFFER,
) -> PHYSICAL_ADDRESS {
    api("WdfCommonBufferGetAlignedLogicalAddress", || {
        let la = state()
            .common_buffers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(b as usize))
            .and_then(|c| c.region.as_ref())
            .map_or(0, |r| r.device());
        PHYSICAL_ADDRESS {
            QuadPart: la as i64,
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Spin locks (see sync.rs for the lock itself).

unsafe extern "C" fn wdf_spin_lock_create(
    attributes: PWDF_OBJECT_ATTRIBUTES,
    lock: *mut WDFSPINLOCK,
) -> NTSTATUS {
    api("WdfSpinLockCreate", || {
        if create_fails("WdfSpinLockCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let driver = state()
            .driver
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .handle;
        // The default parent is the driver (WdfSpinLockCreate page).
        // SAFETY: null or the driver's attributes.
        let h = match unsafe { objects::create(Kind::SpinLock, Some(driver), attributes) } {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        state()
            .spin_locks
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(h, Arc::new(super::sync::SpinLock::new(h)));
        // SAFETY: the out parameter.
        unsafe { *lock = h as WDFSPINLOCK };
        STATUS_SUCCESS
    })
}

fn spin_lock(h: WDFSPINLOCK) -> Option<Arc<super::sync::SpinLock>> {
    state()
        .spin_locks
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(h as usize))
        .cloned()
}

unsafe extern "C" fn wdf_spin_lock_acquire(lock: WDFSPINLOCK) {
    api("WdfSpinLockAcquire", || match spin_lock(lock) {
        Some(l) => l.acquire(),
        None => irql::violation("InvalidHandle", "WdfSpinLockAcquire".into()),
    })
}

unsafe extern "C" fn wdf_spin_lock_release(lock: WDFSPINLOCK) {
    api("WdfSpinLockRelease", || match spin_lock(lock) {
        Some(l) => l.release(),
        None => irql::violation("InvalidHandle", "WdfSpinLockRelease".into()),
    })
}

/// Installs every WDF and NT routine of this file (and the register seam).
pub fn install() {
    wdf_slot::WdfDriverCreate.set(wdf_driver_create);
    wdf_slot::WdfDeviceInitSetPnpPowerEventCallbacks
        .set(wdf_device_init_set_pnp_power_event_callbacks);
    wdf_slot::WdfDeviceCreate.set(wdf_device_create);
    wdf_slot::WdfDeviceSetFailed.set(wdf_device_set_failed);
    wdf_slot::WdfObjectGetTypedContextWorker.set(wdf_object_get_typed_context_worker);
    wdf_slot::WdfObjectDelete.set(wdf_object_delete);
    wdf_slot::WdfFdoQueryForInterface.set(wdf_fdo_query_for_interface);
    wdf_slot::WdfCmResourceListGetCount.set(wdf_cm_resource_list_get_count);
    wdf_slot::WdfCmResourceListGetDescriptor.set(wdf_cm_resource_list_get_descriptor);
    wdf_slot::WdfDmaEnablerCreate.set(wdf_dma_enabler_create);
    wdf_slot::WdfCommonBufferCreateWithConfig.set(wdf_common_buffer_create_with_config);
    wdf_slot::WdfCommonBufferGetAlignedVirtualAddress
        .set(wdf_common_buffer_get_aligned_virtual_address);
    wdf_slot::WdfCommonBufferGetAlignedLogicalAddress
        .set(wdf_common_buffer_get_aligned_logical_address);
    wdf_slot::WdfSpinLockCreate.set(wdf_spin_lock_create);
    wdf_slot::WdfSpinLockAcquire.set(wdf_spin_lock_acquire);
    wdf_slot::WdfSpinLockRelease.set(wdf_spin_lock_release);
    nt_slot::MmMapIoSpaceEx.set(mm_map_io_space_ex);
    nt_slot::MmUnmapIoSpace.set(mm_unmap_io_space);
    nt_slot::KeQueryUnbiasedInterruptTime.set(ke_query_unbiased_interrupt_time);
    nt_slot::KeDelayExecutionThread.set(ke_delay_execution_thread);
    wdk_standin::host::READ_REGISTER.set(read_register);
    wdk_standin::host::WRITE_REGISTER.set(write_register);
    super::interrupts::install();
    super::timers::install();
    super::workitems::install();
}

/// Resource-list handles are not objects the driver creates; the host names them.
pub fn new_resource_list(descriptors: Vec<[u8; 20]>) -> usize {
    // SAFETY: no attributes.
    let h =
        unsafe { objects::create(Kind::ResourceList, None, std::ptr::null()) }.unwrap_or_default();
    state()
        .resource_lists
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(
            h,
            ResourceList {
                descriptors: descriptors.into_boxed_slice(),
            },
        );
    h
}
