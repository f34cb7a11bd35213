//! The x64 sizes and offsets of the WDF and WDM structures the glue fills and a framework reads
//! (callback tables, configs, attributes, context type descriptions, the bus interface, the
//! interrupt information). One table, compiled into both builds of the glue: on Windows it is
//! checked against the real wdk-sys bindings (bindgen's output of the KMDF 1.33 headers; the
//! `../shared/tools/wdk-linux` check compiles it the same way on Linux), and in the glue-host
//! build against `wdk-standin`, so the structures the host reads are laid out as the real
//! framework's are. The figures are those bindgen asserts for the KMDF 1.33 headers.

use core::mem::{offset_of, size_of};

use wdk_sys::{
    BUS_INTERFACE_STANDARD, UNICODE_STRING, WDF_COMMON_BUFFER_CONFIG, WDF_DMA_ENABLER_CONFIG,
    WDF_DRIVER_CONFIG, WDF_INTERRUPT_CONFIG, WDF_INTERRUPT_INFO, WDF_OBJECT_ATTRIBUTES,
    WDF_OBJECT_CONTEXT_TYPE_INFO, WDF_PNPPOWER_EVENT_CALLBACKS, WDF_TIMER_CONFIG,
    WDF_WORKITEM_CONFIG,
};

/// `(type, size, [(field, offset)…])` assertions.
macro_rules! layout {
    ($($t:ident = $size:literal { $($f:ident @ $off:literal),* $(,)? })*) => {$(
        const _: () = assert!(size_of::<$t>() == $size, concat!("size of ", stringify!($t)));
        $(const _: () = assert!(
            offset_of!($t, $f) == $off,
            concat!("offset of ", stringify!($t), "::", stringify!($f))
        );)*
    )*};
}

layout! {
    WDF_DRIVER_CONFIG = 32 {
        Size @ 0, EvtDriverDeviceAdd @ 8, EvtDriverUnload @ 16, DriverInitFlags @ 24,
        DriverPoolTag @ 28,
    }
    WDF_PNPPOWER_EVENT_CALLBACKS = 144 {
        Size @ 0, EvtDeviceD0Entry @ 8, EvtDeviceD0EntryPostInterruptsEnabled @ 16,
        EvtDeviceD0Exit @ 24, EvtDeviceD0ExitPreInterruptsDisabled @ 32,
        EvtDevicePrepareHardware @ 40, EvtDeviceReleaseHardware @ 48,
        EvtDeviceSurpriseRemoval @ 96, EvtDeviceUsageNotificationEx @ 136,
    }
    WDF_OBJECT_ATTRIBUTES = 56 {
        Size @ 0, EvtCleanupCallback @ 8, EvtDestroyCallback @ 16, ExecutionLevel @ 24,
        SynchronizationScope @ 28, ParentObject @ 32, ContextSizeOverride @ 40,
        ContextTypeInfo @ 48,
    }
    WDF_OBJECT_CONTEXT_TYPE_INFO = 40 {
        Size @ 0, ContextName @ 8, ContextSize @ 16, UniqueType @ 24,
        EvtDriverGetUniqueContextType @ 32,
    }
    WDF_INTERRUPT_CONFIG = 104 {
        Size @ 0, SpinLock @ 8, ShareVector @ 16, FloatingSave @ 20,
        AutomaticSerialization @ 21, EvtInterruptIsr @ 24, EvtInterruptDpc @ 32,
        EvtInterruptEnable @ 40, EvtInterruptDisable @ 48, EvtInterruptWorkItem @ 56,
        InterruptRaw @ 64, InterruptTranslated @ 72, WaitLock @ 80, PassiveHandling @ 88,
        ReportInactiveOnPowerDown @ 92, CanWakeDevice @ 96,
    }
    WDF_INTERRUPT_INFO = 64 {
        Size @ 0, Reserved1 @ 8, TargetProcessorSet @ 16, Reserved2 @ 24, MessageNumber @ 28,
        Vector @ 32, Irql @ 36, Mode @ 40, Polarity @ 44, MessageSignaled @ 48,
        ShareDisposition @ 49, Group @ 56,
    }
    WDF_DMA_ENABLER_CONFIG = 80 {
        Size @ 0, Profile @ 4, MaximumLength @ 8, EvtDmaEnablerFill @ 16,
        AddressWidthOverride @ 64, WdmDmaVersionOverride @ 68, Flags @ 72,
    }
    WDF_COMMON_BUFFER_CONFIG = 8 { Size @ 0, AlignmentRequirement @ 4 }
    WDF_WORKITEM_CONFIG = 24 { Size @ 0, EvtWorkItemFunc @ 8, AutomaticSerialization @ 16 }
    WDF_TIMER_CONFIG = 40 {
        Size @ 0, EvtTimerFunc @ 8, Period @ 16, AutomaticSerialization @ 20,
        TolerableDelay @ 24, UseHighResolutionTimer @ 32,
    }
    BUS_INTERFACE_STANDARD = 64 {
        Size @ 0, Version @ 2, Context @ 8, InterfaceReference @ 16, InterfaceDereference @ 24,
        TranslateBusAddress @ 32, GetDmaAdapter @ 40, SetBusData @ 48, GetBusData @ 56,
    }
    UNICODE_STRING = 16 { Length @ 0, MaximumLength @ 2, Buffer @ 8 }
}
