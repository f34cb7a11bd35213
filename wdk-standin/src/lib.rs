//! The items of `wdk-sys` 0.5 and `wdk` 0.5 that virtionet's KMDF glue (`driver/kmdf/`) uses,
//! for building the glue on Linux (`--features glue-host` of the driver crate), where the real
//! crates cannot build (they generate their bindings from the WDK's headers at build time).
//!
//! * Types: shaped after the WDK headers and wdk-sys's binding conventions (module-constant
//!   enums, `Option<unsafe extern "C" fn>` callbacks, structs with `Default`). Their sizes and
//!   offsets are asserted against the real ones in `driver/kmdf/layout.rs`, which the
//!   real-bindings check (`../shared/tools/wdk-linux`) compiles against wdk-sys too.
//! * Functions: every WDF and NT routine the glue calls is a wrapper that calls through a slot
//!   of [`host`], which the test harness's emulated KMDF fills with its implementation (as
//!   `WdfFunctions` is filled when a real driver binds). A slot left empty panics with the
//!   routine's name: the emulation must implement everything the glue calls.
//! * Register access ([`host::read_register`]/[`host::write_register`]): the one seam of the glue
//!   (`driver/kmdf/hal.rs`), where the host routes mapped-BAR accesses to the device.

#![no_std]
#![allow(
    non_camel_case_types,
    non_snake_case,
    non_upper_case_globals,
    missing_docs,
    clippy::missing_safety_doc
)]

use core::ffi::c_void;

/// Declares routines `Name(args) -> ret`: a slot `slot::Name` the host fills and an
/// `unsafe fn Name(args) -> ret` that calls it (what the glue calls).
macro_rules! host_functions {
    ($( $name:ident ( $($arg:ident : $ty:ty),* $(,)? ) $(-> $ret:ty)? ; )*) => {
        /// The host's implementations.
        pub mod slot {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[doc = concat!("`", stringify!($name), "`.")]
                pub static $name: $crate::host::Slot<unsafe extern "C" fn($($ty),*) $(-> $ret)?> =
                    $crate::host::Slot::new(stringify!($name));
            )*
        }
        $(
            #[doc = concat!("`", stringify!($name), "`, through the host's slot.")]
            ///
            /// # Safety
            ///
            /// The routine's contract in the WDK.
            pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
                // SAFETY: the caller upholds the routine's contract; the slot holds the host's
                // implementation of it, with this signature.
                unsafe { (slot::$name.get())($($arg),*) }
            }
        )*
    };
}

pub type NTSTATUS = i32;
pub type ULONG = u32;
pub type USHORT = u16;
pub type UCHAR = u8;
pub type BOOLEAN = u8;
pub type PVOID = *mut c_void;
pub type SIZE_T = u64;
pub type ULONGLONG = u64;
pub type LONGLONG = i64;
pub type PCHAR = *mut i8;
pub type KPROCESSOR_MODE = i8;

pub const STATUS_SUCCESS: NTSTATUS = 0;
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
pub const STATUS_DEVICE_CONFIGURATION_ERROR: NTSTATUS = 0xC000_0182_u32 as i32;

#[must_use]
pub const fn NT_SUCCESS(nt_status: NTSTATUS) -> bool {
    nt_status >= 0
}

macro_rules! handles {
    ($($h:ident / $s:ident;)*) => {$(
        #[repr(C)]
        #[derive(Debug)]
        pub struct $s {
            _unused: [u8; 0],
        }
        pub type $h = *mut $s;
    )*};
}

handles! {
    WDFDEVICE / WDFDEVICE__;
    WDFDRIVER / WDFDRIVER__;
    WDFOBJECT / WDFOBJECT__;
    WDFINTERRUPT / WDFINTERRUPT__;
    WDFDMAENABLER / WDFDMAENABLER__;
    WDFCOMMONBUFFER / WDFCOMMONBUFFER__;
    WDFCMRESLIST / WDFCMRESLIST__;
    WDFSPINLOCK / WDFSPINLOCK__;
    WDFTIMER / WDFTIMER__;
    WDFWORKITEM / WDFWORKITEM__;
    PWDFDEVICE_INIT / WDFDEVICE_INIT;
    PDRIVER_OBJECT / _DRIVER_OBJECT;
}

pub type DRIVER_OBJECT = _DRIVER_OBJECT;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UNICODE_STRING {
    pub Length: USHORT,
    pub MaximumLength: USHORT,
    pub Buffer: *mut u16,
}
pub type PCUNICODE_STRING = *const UNICODE_STRING;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct GUID {
    pub Data1: u32,
    pub Data2: u16,
    pub Data3: u16,
    pub Data4: [u8; 8],
}

#[repr(C)]
#[derive(Clone, Copy)]
pub union LARGE_INTEGER {
    pub QuadPart: i64,
    pub u: [u32; 2],
}
impl Default for LARGE_INTEGER {
    fn default() -> Self {
        Self { QuadPart: 0 }
    }
}
pub type PHYSICAL_ADDRESS = LARGE_INTEGER;
pub type PLARGE_INTEGER = *mut LARGE_INTEGER;

#[repr(C)]
#[derive(Debug)]
pub struct CM_PARTIAL_RESOURCE_DESCRIPTOR {
    _unused: [u8; 0],
}
pub type PCM_PARTIAL_RESOURCE_DESCRIPTOR = *mut CM_PARTIAL_RESOURCE_DESCRIPTOR;

pub type PINTERFACE_REFERENCE = Option<unsafe extern "C" fn(Context: PVOID)>;
pub type PINTERFACE_DEREFERENCE = Option<unsafe extern "C" fn(Context: PVOID)>;
pub type PGET_SET_DEVICE_DATA = Option<
    unsafe extern "C" fn(
        Context: PVOID,
        DataType: ULONG,
        Buffer: PVOID,
        Offset: ULONG,
        Length: ULONG,
    ) -> ULONG,
>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct INTERFACE {
    pub Size: USHORT,
    pub Version: USHORT,
    pub Context: PVOID,
    pub InterfaceReference: PINTERFACE_REFERENCE,
    pub InterfaceDereference: PINTERFACE_DEREFERENCE,
}
pub type PINTERFACE = *mut INTERFACE;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct BUS_INTERFACE_STANDARD {
    pub Size: USHORT,
    pub Version: USHORT,
    pub Context: PVOID,
    pub InterfaceReference: PINTERFACE_REFERENCE,
    pub InterfaceDereference: PINTERFACE_DEREFERENCE,
    pub TranslateBusAddress: PVOID,
    pub GetDmaAdapter: PVOID,
    pub SetBusData: PGET_SET_DEVICE_DATA,
    pub GetBusData: PGET_SET_DEVICE_DATA,
}

macro_rules! module_enum {
    ($m:ident / $alias:ident { $($v:ident = $n:expr),* $(,)? }) => {
        pub mod $m {
            pub type Type = i32;
            $(pub const $v: Type = $n;)*
        }
        pub type $alias = $m::Type;
    };
}

module_enum!(_WDF_EXECUTION_LEVEL / WDF_EXECUTION_LEVEL {
    WdfExecutionLevelInvalid = 0, WdfExecutionLevelInheritFromParent = 1,
    WdfExecutionLevelPassive = 2, WdfExecutionLevelDispatch = 3,
});
module_enum!(_WDF_SYNCHRONIZATION_SCOPE / WDF_SYNCHRONIZATION_SCOPE {
    WdfSynchronizationScopeInvalid = 0, WdfSynchronizationScopeInheritFromParent = 1,
    WdfSynchronizationScopeDevice = 2, WdfSynchronizationScopeQueue = 3,
    WdfSynchronizationScopeNone = 4,
});
module_enum!(_WDF_TRI_STATE / WDF_TRI_STATE { WdfFalse = 0, WdfTrue = 1, WdfUseDefault = 2 });
module_enum!(_WDF_DMA_PROFILE / WDF_DMA_PROFILE {
    WdfDmaProfileInvalid = 0, WdfDmaProfilePacket = 1, WdfDmaProfileScatterGather = 2,
    WdfDmaProfilePacket64 = 3, WdfDmaProfileScatterGather64 = 4,
});
module_enum!(_WDF_DEVICE_FAILED_ACTION / WDF_DEVICE_FAILED_ACTION {
    WdfDeviceFailedUndefined = 0, WdfDeviceFailedAttemptRestart = 1, WdfDeviceFailedNoRestart = 2,
});
module_enum!(_WDF_POWER_DEVICE_STATE / WDF_POWER_DEVICE_STATE {
    WdfPowerDeviceInvalid = 0, WdfPowerDeviceD0 = 1, WdfPowerDeviceD1 = 2, WdfPowerDeviceD2 = 3,
    WdfPowerDeviceD3 = 4, WdfPowerDeviceD3Final = 5, WdfPowerDevicePrepareForHibernation = 6,
    WdfPowerDeviceMaximum = 7,
});

pub type PFN_WDF_OBJECT_CONTEXT_CLEANUP = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_WDF_OBJECT_CONTEXT_DESTROY = Option<unsafe extern "C" fn(Object: WDFOBJECT)>;
pub type PFN_GET_UNIQUE_CONTEXT_TYPE =
    Option<unsafe extern "C" fn() -> PCWDF_OBJECT_CONTEXT_TYPE_INFO>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct _WDF_OBJECT_CONTEXT_TYPE_INFO {
    pub Size: ULONG,
    pub ContextName: PCHAR,
    pub ContextSize: usize,
    pub UniqueType: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
    pub EvtDriverGetUniqueContextType: PFN_GET_UNIQUE_CONTEXT_TYPE,
}
pub type WDF_OBJECT_CONTEXT_TYPE_INFO = _WDF_OBJECT_CONTEXT_TYPE_INFO;
pub type PCWDF_OBJECT_CONTEXT_TYPE_INFO = *const _WDF_OBJECT_CONTEXT_TYPE_INFO;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_OBJECT_ATTRIBUTES {
    pub Size: ULONG,
    pub EvtCleanupCallback: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    pub EvtDestroyCallback: PFN_WDF_OBJECT_CONTEXT_DESTROY,
    pub ExecutionLevel: WDF_EXECUTION_LEVEL,
    pub SynchronizationScope: WDF_SYNCHRONIZATION_SCOPE,
    pub ParentObject: WDFOBJECT,
    pub ContextSizeOverride: usize,
    pub ContextTypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
}
pub type PWDF_OBJECT_ATTRIBUTES = *mut WDF_OBJECT_ATTRIBUTES;
pub const WDF_NO_OBJECT_ATTRIBUTES: PWDF_OBJECT_ATTRIBUTES = core::ptr::null_mut();
pub const WDF_NO_HANDLE: PVOID = core::ptr::null_mut();

pub type PFN_WDF_DRIVER_DEVICE_ADD =
    Option<unsafe extern "C" fn(Driver: WDFDRIVER, DeviceInit: PWDFDEVICE_INIT) -> NTSTATUS>;
pub type PFN_WDF_DRIVER_UNLOAD = Option<unsafe extern "C" fn(Driver: WDFDRIVER)>;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_DRIVER_CONFIG {
    pub Size: ULONG,
    pub EvtDriverDeviceAdd: PFN_WDF_DRIVER_DEVICE_ADD,
    pub EvtDriverUnload: PFN_WDF_DRIVER_UNLOAD,
    pub DriverInitFlags: ULONG,
    pub DriverPoolTag: ULONG,
}

pub type PFN_WDF_DEVICE_D0_ENTRY = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, PreviousState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_D0_EXIT = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, TargetState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, PreviousState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED = Option<
    unsafe extern "C" fn(Device: WDFDEVICE, TargetState: WDF_POWER_DEVICE_STATE) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_PREPARE_HARDWARE = Option<
    unsafe extern "C" fn(
        Device: WDFDEVICE,
        ResourcesRaw: WDFCMRESLIST,
        ResourcesTranslated: WDFCMRESLIST,
    ) -> NTSTATUS,
>;
pub type PFN_WDF_DEVICE_RELEASE_HARDWARE =
    Option<unsafe extern "C" fn(Device: WDFDEVICE, ResourcesTranslated: WDFCMRESLIST) -> NTSTATUS>;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_PNPPOWER_EVENT_CALLBACKS {
    pub Size: ULONG,
    pub EvtDeviceD0Entry: PFN_WDF_DEVICE_D0_ENTRY,
    pub EvtDeviceD0EntryPostInterruptsEnabled: PFN_WDF_DEVICE_D0_ENTRY_POST_INTERRUPTS_ENABLED,
    pub EvtDeviceD0Exit: PFN_WDF_DEVICE_D0_EXIT,
    pub EvtDeviceD0ExitPreInterruptsDisabled: PFN_WDF_DEVICE_D0_EXIT_PRE_INTERRUPTS_DISABLED,
    pub EvtDevicePrepareHardware: PFN_WDF_DEVICE_PREPARE_HARDWARE,
    pub EvtDeviceReleaseHardware: PFN_WDF_DEVICE_RELEASE_HARDWARE,
    pub EvtDeviceSelfManagedIoCleanup: PVOID_DEFAULT,
    pub EvtDeviceSelfManagedIoFlush: PVOID_DEFAULT,
    pub EvtDeviceSelfManagedIoInit: PVOID_DEFAULT,
    pub EvtDeviceSelfManagedIoSuspend: PVOID_DEFAULT,
    pub EvtDeviceSelfManagedIoRestart: PVOID_DEFAULT,
    pub EvtDeviceSurpriseRemoval: PVOID_DEFAULT,
    pub EvtDeviceQueryRemove: PVOID_DEFAULT,
    pub EvtDeviceQueryStop: PVOID_DEFAULT,
    pub EvtDeviceUsageNotification: PVOID_DEFAULT,
    pub EvtDeviceRelationsQuery: PVOID_DEFAULT,
    pub EvtDeviceUsageNotificationEx: PVOID_DEFAULT,
}

/// Callback slots the glue leaves empty (an optional function pointer in the real bindings).
pub type PVOID_DEFAULT = Option<unsafe extern "C" fn()>;

pub type PFN_WDF_INTERRUPT_ISR =
    Option<unsafe extern "C" fn(Interrupt: WDFINTERRUPT, MessageID: ULONG) -> BOOLEAN>;
pub type PFN_WDF_INTERRUPT_ENABLE =
    Option<unsafe extern "C" fn(Interrupt: WDFINTERRUPT, AssociatedDevice: WDFDEVICE) -> NTSTATUS>;
pub type PFN_WDF_INTERRUPT_DISABLE =
    Option<unsafe extern "C" fn(Interrupt: WDFINTERRUPT, AssociatedDevice: WDFDEVICE) -> NTSTATUS>;
pub type PFN_WDF_INTERRUPT_DPC =
    Option<unsafe extern "C" fn(Interrupt: WDFINTERRUPT, AssociatedObject: WDFOBJECT)>;

#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct WDF_INTERRUPT_CONFIG {
    pub Size: ULONG,
    pub SpinLock: WDFSPINLOCK,
    pub ShareVector: WDF_TRI_STATE,
    pub FloatingSave: BOOLEAN,
    pub AutomaticSerialization: BOOLEAN,
    pub EvtInterruptIsr: PFN_WDF_INTERRUPT_ISR,
    pub EvtInterruptDpc: PFN_WDF_INTERRUPT_DPC,
    pub EvtInterruptEnable: PFN_WDF_INTERRUPT_ENABLE,
    pub EvtInterruptDisable: PFN_WDF_INTERRUPT_DISABLE,
    pub EvtInterruptWorkItem: PVOID_DEFAULT,
    pub InterruptRaw: PCM_PARTIAL_RESOURCE_DESCRIPTOR,
    pub InterruptTranslated: PCM_PARTIAL_RESOURCE_DESCRIPTOR,
    pub WaitLock: PVOID,
    pub PassiveHandling: BOOLEAN,
    pub ReportInactiveOnPowerDown: WDF_TRI_STATE,
    pub CanWakeDevice: BOOLEAN,
}
impl Default for WDF_INTERRUPT_CONFIG {
    fn default() -> Self {
        Self {
            Size: 0,
            SpinLock: core::ptr::null_mut(),
            ShareVector: 0,
            FloatingSave: 0,
            AutomaticSerialization: 0,
            EvtInterruptIsr: None,
            EvtInterruptDpc: None,
            EvtInterruptEnable: None,
            EvtInterruptDisable: None,
            EvtInterruptWorkItem: None,
            InterruptRaw: core::ptr::null_mut(),
            InterruptTranslated: core::ptr::null_mut(),
            WaitLock: core::ptr::null_mut(),
            PassiveHandling: 0,
            ReportInactiveOnPowerDown: 0,
            CanWakeDevice: 0,
        }
    }
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_DMA_ENABLER_CONFIG {
    pub Size: ULONG,
    pub Profile: WDF_DMA_PROFILE,
    pub MaximumLength: usize,
    pub EvtDmaEnablerFill: PVOID_DEFAULT,
    pub EvtDmaEnablerFlush: PVOID_DEFAULT,
    pub EvtDmaEnablerDisable: PVOID_DEFAULT,
    pub EvtDmaEnablerEnable: PVOID_DEFAULT,
    pub EvtDmaEnablerSelfManagedIoStart: PVOID_DEFAULT,
    pub EvtDmaEnablerSelfManagedIoStop: PVOID_DEFAULT,
    pub AddressWidthOverride: ULONG,
    pub WdmDmaVersionOverride: ULONG,
    pub Flags: ULONG,
}

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_COMMON_BUFFER_CONFIG {
    pub Size: ULONG,
    pub AlignmentRequirement: ULONG,
}

module_enum!(_KINTERRUPT_MODE / KINTERRUPT_MODE { LevelSensitive = 0, Latched = 1 });
module_enum!(_WDF_INTERRUPT_POLARITY / WDF_INTERRUPT_POLARITY {
    WdfInterruptPolarityUnknown = 0, WdfInterruptActiveHigh = 1, WdfInterruptActiveLow = 2,
});
pub type KAFFINITY = u64;
pub type KIRQL = UCHAR;
pub type ULONG64 = u64;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_INTERRUPT_INFO {
    pub Size: ULONG,
    pub Reserved1: ULONG64,
    pub TargetProcessorSet: KAFFINITY,
    pub Reserved2: ULONG,
    pub MessageNumber: ULONG,
    pub Vector: ULONG,
    pub Irql: KIRQL,
    pub Mode: KINTERRUPT_MODE,
    pub Polarity: WDF_INTERRUPT_POLARITY,
    pub MessageSignaled: BOOLEAN,
    pub ShareDisposition: UCHAR,
    /// `Group` is `DECLSPEC_ALIGN(8)` in wdfinterrupt.h (bindgen pads before it the same way).
    pub __bindgen_padding_0: [u8; 6],
    pub Group: USHORT,
}
pub type PWDF_INTERRUPT_INFO = *mut WDF_INTERRUPT_INFO;

pub type PFN_WDF_TIMER = Option<unsafe extern "C" fn(Timer: WDFTIMER)>;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_TIMER_CONFIG {
    pub Size: ULONG,
    pub EvtTimerFunc: PFN_WDF_TIMER,
    pub Period: ULONG,
    pub AutomaticSerialization: BOOLEAN,
    pub TolerableDelay: ULONG,
    /// bindgen pads before `UseHighResolutionTimer` (offset 32 in the KMDF 1.33 headers).
    pub __bindgen_padding_0: [u8; 4],
    pub UseHighResolutionTimer: BOOLEAN,
}
pub type PWDF_TIMER_CONFIG = *mut WDF_TIMER_CONFIG;

pub type PFN_WDF_WORKITEM = Option<unsafe extern "C" fn(WorkItem: WDFWORKITEM)>;

#[repr(C)]
#[derive(Debug, Clone, Copy, Default)]
pub struct WDF_WORKITEM_CONFIG {
    pub Size: ULONG,
    pub EvtWorkItemFunc: PFN_WDF_WORKITEM,
    pub AutomaticSerialization: BOOLEAN,
}
pub type PWDF_WORKITEM_CONFIG = *mut WDF_WORKITEM_CONFIG;

/// The WDF functions the glue calls (without the implicit WdfDriverGlobals argument).
pub mod wdf {
    use super::*;

    host_functions! {
        WdfDriverCreate(
            DriverObject: PDRIVER_OBJECT,
            RegistryPath: PCUNICODE_STRING,
            DriverAttributes: PWDF_OBJECT_ATTRIBUTES,
            DriverConfig: *mut WDF_DRIVER_CONFIG,
            Driver: *mut WDFDRIVER,
        ) -> NTSTATUS;
        WdfDeviceInitSetPnpPowerEventCallbacks(
            DeviceInit: PWDFDEVICE_INIT,
            PnpPowerEventCallbacks: *mut WDF_PNPPOWER_EVENT_CALLBACKS,
        );
        WdfDeviceCreate(
            DeviceInit: *mut PWDFDEVICE_INIT,
            DeviceAttributes: PWDF_OBJECT_ATTRIBUTES,
            Device: *mut WDFDEVICE,
        ) -> NTSTATUS;
        WdfDeviceSetFailed(Device: WDFDEVICE, FailedAction: WDF_DEVICE_FAILED_ACTION);
        WdfObjectGetTypedContextWorker(
            Handle: WDFOBJECT,
            TypeInfo: PCWDF_OBJECT_CONTEXT_TYPE_INFO,
        ) -> PVOID;
        WdfObjectDelete(Object: WDFOBJECT);
        WdfFdoQueryForInterface(
            Fdo: WDFDEVICE,
            InterfaceType: *const GUID,
            Interface: PINTERFACE,
            Size: USHORT,
            Version: USHORT,
            InterfaceSpecificData: PVOID,
        ) -> NTSTATUS;
        WdfCmResourceListGetCount(List: WDFCMRESLIST) -> ULONG;
        WdfCmResourceListGetDescriptor(
            List: WDFCMRESLIST,
            Index: ULONG,
        ) -> PCM_PARTIAL_RESOURCE_DESCRIPTOR;
        WdfDmaEnablerCreate(
            Device: WDFDEVICE,
            Config: *mut WDF_DMA_ENABLER_CONFIG,
            Attributes: PWDF_OBJECT_ATTRIBUTES,
            DmaEnablerHandle: *mut WDFDMAENABLER,
        ) -> NTSTATUS;
        WdfCommonBufferCreateWithConfig(
            DmaEnabler: WDFDMAENABLER,
            Length: usize,
            Config: *mut WDF_COMMON_BUFFER_CONFIG,
            Attributes: PWDF_OBJECT_ATTRIBUTES,
            CommonBuffer: *mut WDFCOMMONBUFFER,
        ) -> NTSTATUS;
        WdfCommonBufferGetAlignedVirtualAddress(CommonBuffer: WDFCOMMONBUFFER) -> PVOID;
        WdfCommonBufferGetAlignedLogicalAddress(CommonBuffer: WDFCOMMONBUFFER) -> PHYSICAL_ADDRESS;
        WdfInterruptCreate(
            Device: WDFDEVICE,
            Configuration: *mut WDF_INTERRUPT_CONFIG,
            Attributes: PWDF_OBJECT_ATTRIBUTES,
            Interrupt: *mut WDFINTERRUPT,
        ) -> NTSTATUS;
        WdfInterruptQueueDpcForIsr(Interrupt: WDFINTERRUPT) -> BOOLEAN;
        WdfInterruptGetInfo(Interrupt: WDFINTERRUPT, Info: PWDF_INTERRUPT_INFO);
        WdfInterruptAcquireLock(Interrupt: WDFINTERRUPT);
        WdfInterruptReleaseLock(Interrupt: WDFINTERRUPT);
        WdfSpinLockCreate(
            SpinLockAttributes: PWDF_OBJECT_ATTRIBUTES,
            SpinLock: *mut WDFSPINLOCK,
        ) -> NTSTATUS;
        WdfTimerCreate(
            Config: PWDF_TIMER_CONFIG,
            Attributes: PWDF_OBJECT_ATTRIBUTES,
            Timer: *mut WDFTIMER,
        ) -> NTSTATUS;
        WdfTimerStart(Timer: WDFTIMER, DueTime: LONGLONG) -> BOOLEAN;
        WdfTimerStop(Timer: WDFTIMER, Wait: BOOLEAN) -> BOOLEAN;
        WdfTimerGetParentObject(Timer: WDFTIMER) -> WDFOBJECT;
        WdfWorkItemCreate(
            Config: PWDF_WORKITEM_CONFIG,
            Attributes: PWDF_OBJECT_ATTRIBUTES,
            WorkItem: *mut WDFWORKITEM,
        ) -> NTSTATUS;
        WdfWorkItemEnqueue(WorkItem: WDFWORKITEM);
        WdfWorkItemGetParentObject(WorkItem: WDFWORKITEM) -> WDFOBJECT;
        WdfWorkItemFlush(WorkItem: WDFWORKITEM);
        WdfSpinLockAcquire(SpinLock: WDFSPINLOCK);
        WdfSpinLockRelease(SpinLock: WDFSPINLOCK);
    }

    /// `wdk::wdf::SpinLock` (the glue imports it from `wdk`; the stand-in is aliased as both).
    #[derive(Debug)]
    pub struct SpinLock {
        handle: WDFSPINLOCK,
    }

    // SAFETY: a WDF handle; the lock it names is what serialises its users.
    unsafe impl Send for SpinLock {}
    // SAFETY: as above.
    unsafe impl Sync for SpinLock {}

    impl SpinLock {
        /// `WdfSpinLockCreate`.
        pub fn create(attributes: &mut WDF_OBJECT_ATTRIBUTES) -> Result<Self, NTSTATUS> {
            let mut handle = core::ptr::null_mut();
            // SAFETY: the attributes and the handle are valid for the call.
            let st = unsafe { WdfSpinLockCreate(attributes, &mut handle) };
            if NT_SUCCESS(st) {
                Ok(Self { handle })
            } else {
                Err(st)
            }
        }

        /// `WdfSpinLockAcquire`.
        pub fn acquire(&self) {
            // SAFETY: a lock created by `create`.
            unsafe { WdfSpinLockAcquire(self.handle) };
        }

        /// `WdfSpinLockRelease`.
        pub fn release(&self) {
            // SAFETY: as above, held by the caller.
            unsafe { WdfSpinLockRelease(self.handle) };
        }
    }
}

/// `call_unsafe_wdf_function_binding!(Name, args…)`: the real macro indexes WdfFunctions; this
/// one calls the declaration of the same name, so arguments are type-checked the same way.
#[macro_export]
macro_rules! call_unsafe_wdf_function_binding {
    ($name:ident $(, $arg:expr)* $(,)?) => {
        $crate::wdf::$name($($arg),*)
    };
}

/// The ntddk functions the glue calls.
pub mod ntddk {
    use super::*;

    host_functions! {
        MmMapIoSpaceEx(PhysicalAddress: PHYSICAL_ADDRESS, NumberOfBytes: SIZE_T, Protect: ULONG) -> PVOID;
        MmUnmapIoSpace(BaseAddress: PVOID, NumberOfBytes: SIZE_T);
        KeQueryUnbiasedInterruptTime() -> ULONGLONG;
        KeDelayExecutionThread(
            WaitMode: KPROCESSOR_MODE,
            Alertable: BOOLEAN,
            Interval: PLARGE_INTEGER,
        ) -> NTSTATUS;
    }
}

/// What the host fills: one slot per routine (`host::<module>::<Name>`), and the register seam.
pub mod host {
    use core::marker::PhantomData;
    use core::sync::atomic::{AtomicUsize, Ordering};

    /// A slot holding the host's implementation of one routine (a function pointer of type `F`).
    pub struct Slot<F> {
        name: &'static str,
        f: AtomicUsize,
        _f: PhantomData<F>,
    }

    // SAFETY: the slot holds a plain address; `F` is a function-pointer type (Sync).
    unsafe impl<F> Sync for Slot<F> {}

    impl<F: Copy> Slot<F> {
        /// An empty slot for routine `name`.
        pub const fn new(name: &'static str) -> Self {
            Self {
                name,
                f: AtomicUsize::new(0),
                _f: PhantomData,
            }
        }

        /// Installs the implementation.
        pub fn set(&self, f: F) {
            assert_eq!(core::mem::size_of::<F>(), core::mem::size_of::<usize>());
            // SAFETY: F is a function-pointer type (pointer-sized, checked), read as its address.
            let a = unsafe { core::mem::transmute_copy::<F, usize>(&f) };
            self.f.store(a, Ordering::Release);
        }

        /// Empties the slot.
        pub fn clear(&self) {
            self.f.store(0, Ordering::Release);
        }

        /// The implementation; panics with the routine's name when the host has none.
        pub fn get(&self) -> F {
            let a = self.f.load(Ordering::Acquire);
            assert!(a != 0, "the KMDF host does not implement {}", self.name);
            // SAFETY: a non-zero address was stored by `set` from an `F`.
            unsafe { core::mem::transmute_copy::<usize, F>(&a) }
        }

        /// The routine's name.
        pub const fn name(&self) -> &'static str {
            self.name
        }
    }

    /// Mapped-register read: (address, width in bytes) → value.
    pub static READ_REGISTER: Slot<fn(usize, usize) -> u64> = Slot::new("register read");
    /// Mapped-register write: (address, width in bytes, value).
    pub static WRITE_REGISTER: Slot<fn(usize, usize, u64)> = Slot::new("register write");

    /// Reads `width` bytes of device register at `address` (a mapping from `MmMapIoSpaceEx`).
    pub fn read_register(address: usize, width: usize) -> u64 {
        READ_REGISTER.get()(address, width)
    }

    /// Writes `width` bytes of device register at `address`.
    pub fn write_register(address: usize, width: usize, value: u64) {
        WRITE_REGISTER.get()(address, width, value)
    }

    pub use super::ntddk::slot as ntddk;
    pub use super::wdf::slot as wdf;
}
