//! NetAdapterCx 2.2 FFI, written by hand from `reference/netadaptercx.md` (§4.2 structs, §3 RX
//! capabilities, §5.1 function table). windows-drivers-rs has no NetAdapterCx subset, so these
//! are not generated; every size and offset is asserted at compile time against the reference's
//! x64 figures (this module is compiled and its assertions checked on Linux too: the structs
//! hold only integers and pointers, laid out identically on x86-64 Linux and Windows).
//!
//! Every NetAdapterCx API is a slot of the `NetFunctions` table that `netadaptercxstub.lib`
//! defines and the framework fills at bind time; each takes `NetDriverGlobals` first. On Windows
//! the wrappers here index that table; elsewhere they index [`mock::TABLE`], which the glue host
//! (`vnet_harness::host::netcx`) fills with its NetAdapterCx routines.
//!
//! WDF handle types that NetAdapterCx APIs take (`WDFDEVICE`, `WDFDMAENABLER`, …) are opaque
//! pointers here; the Windows glue casts wdk-sys's handles to them.

#![allow(non_camel_case_types, non_snake_case)]

use core::ffi::c_void;
use core::mem::{offset_of, size_of};

use netring::{NetExtension, NetExtensionQuery, NetRingCollection};
use static_assertions::const_assert_eq;

/// `NTSTATUS`.
pub type NTSTATUS = i32;
/// `STATUS_SUCCESS`.
pub const STATUS_SUCCESS: NTSTATUS = 0;
/// `STATUS_NOT_SUPPORTED` (what a wrapper returns when its table slot is empty).
pub const STATUS_NOT_SUPPORTED: NTSTATUS = 0xC000_00BB_u32 as i32;
/// `STATUS_INSUFFICIENT_RESOURCES`.
pub const STATUS_INSUFFICIENT_RESOURCES: NTSTATUS = 0xC000_009A_u32 as i32;
/// `STATUS_INVALID_PARAMETER`.
pub const STATUS_INVALID_PARAMETER: NTSTATUS = 0xC000_000D_u32 as i32;
/// `STATUS_DEVICE_NOT_CONNECTED`.
pub const STATUS_DEVICE_NOT_CONNECTED: NTSTATUS = 0xC000_009D_u32 as i32;
/// `BOOLEAN`.
pub type BOOLEAN = u8;

macro_rules! handle {
    ($($(#[$m:meta])* $name:ident;)*) => {$(
        $(#[$m])*
        pub type $name = *mut c_void;
    )*};
}

handle! {
    /// `NETADAPTER`.
    NETADAPTER;
    /// `NETADAPTER_INIT*`.
    PNETADAPTER_INIT;
    /// `NETTXQUEUE_INIT*`.
    PNETTXQUEUE_INIT;
    /// `NETRXQUEUE_INIT*`.
    PNETRXQUEUE_INIT;
    /// `NETPACKETQUEUE`.
    NETPACKETQUEUE;
    /// `NETOFFLOAD`.
    NETOFFLOAD;
    /// `NETRECEIVEFILTER`.
    NETRECEIVEFILTER;
    /// `NETCONFIGURATION`.
    NETCONFIGURATION;
    /// `NETEXECUTIONCONTEXT`.
    NETEXECUTIONCONTEXT;
    /// `NET_FRAGMENT_RETURN_CONTEXT_HANDLE`.
    NET_FRAGMENT_RETURN_CONTEXT_HANDLE;
    /// `WDFDEVICE`.
    WDFDEVICE;
    /// `WDFDEVICE_INIT*`.
    PWDFDEVICE_INIT;
    /// `WDFDMAENABLER`.
    WDFDMAENABLER;
    /// `WDF_OBJECT_ATTRIBUTES*` (wdk-sys's struct, passed through).
    PWDF_OBJECT_ATTRIBUTES;
}

/// `NET_DRIVER_GLOBALS` (netadaptercxtypes.h).
#[repr(C)]
#[derive(Debug)]
pub struct NET_DRIVER_GLOBALS {
    /// `Unused`.
    pub Unused: u32,
}

/// `UNICODE_STRING` (for keyword names).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct UNICODE_STRING {
    /// Bytes used, without a terminator.
    pub Length: u16,
    /// Bytes available.
    pub MaximumLength: u16,
    /// UTF-16 text.
    pub Buffer: *const u16,
}
const_assert_eq!(size_of::<UNICODE_STRING>(), 16);

impl UNICODE_STRING {
    /// Over a static UTF-16 string (without NUL in the counted length).
    pub const fn from_static(s: &'static [u16]) -> Self {
        let n = if !s.is_empty() && s[s.len() - 1] == 0 {
            s.len() - 1
        } else {
            s.len()
        };
        Self {
            Length: (n * 2) as u16,
            MaximumLength: (s.len() * 2) as u16,
            Buffer: s.as_ptr(),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Callback types (all NTAPI: `extern "system"`).

/// `EVT_NET_ADAPTER_CREATE_TXQUEUE`.
pub type EvtCreateTxQueue =
    unsafe extern "system" fn(adapter: NETADAPTER, init: PNETTXQUEUE_INIT) -> NTSTATUS;
/// `EVT_NET_ADAPTER_CREATE_RXQUEUE`.
pub type EvtCreateRxQueue =
    unsafe extern "system" fn(adapter: NETADAPTER, init: PNETRXQUEUE_INIT) -> NTSTATUS;
/// `EVT_PACKET_QUEUE_START` / `_STOP` / `_ADVANCE` / `_CANCEL`.
pub type EvtPacketQueue = unsafe extern "system" fn(queue: NETPACKETQUEUE);
/// `EVT_PACKET_QUEUE_SET_NOTIFICATION_ENABLED`.
pub type EvtPacketQueueSetNotificationEnabled =
    unsafe extern "system" fn(queue: NETPACKETQUEUE, enabled: BOOLEAN);
/// `EVT_NET_ADAPTER_RETURN_RX_BUFFER`.
pub type EvtReturnRxBuffer =
    unsafe extern "system" fn(adapter: NETADAPTER, context: NET_FRAGMENT_RETURN_CONTEXT_HANDLE);
/// `EVT_NET_ADAPTER_OFFLOAD_SET_*` (checksum, GSO, RSC).
pub type EvtOffloadSet = unsafe extern "system" fn(adapter: NETADAPTER, offload: NETOFFLOAD);
/// `EVT_NET_ADAPTER_SET_RECEIVE_FILTER`.
pub type EvtSetReceiveFilter =
    unsafe extern "system" fn(adapter: NETADAPTER, filter: NETRECEIVEFILTER);

/// `EVT_NET_DEVICE_COLLECT_RESET_DIAGNOSTICS` (PASSIVE_LEVEL).
pub type EvtCollectResetDiagnostics = unsafe extern "system" fn(device: WDFDEVICE);

// ---------------------------------------------------------------------------------------------
// Structs (§4.2). `Size` fields hold `size_of` of the struct, as the `_INIT` macros set.

/// `GUID`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct GUID {
    /// `Data1`.
    pub Data1: u32,
    /// `Data2`.
    pub Data2: u16,
    /// `Data3`.
    pub Data3: u16,
    /// `Data4`.
    pub Data4: [u8; 8],
}
const_assert_eq!(size_of::<GUID>(), 16);

/// `NET_DEVICE_RESET_CAPABILITIES` (netdevice.h, 2.2).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_DEVICE_RESET_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `ResetDiagnosticsGuid`: names the diagnostics blob in the live dump.
    pub ResetDiagnosticsGuid: GUID,
    /// `EvtNetDeviceCollectResetDiagnostics`.
    pub EvtNetDeviceCollectResetDiagnostics: Option<EvtCollectResetDiagnostics>,
}
const_assert_eq!(size_of::<NET_DEVICE_RESET_CAPABILITIES>(), 32);
const_assert_eq!(
    offset_of!(NET_DEVICE_RESET_CAPABILITIES, ResetDiagnosticsGuid),
    4
);
const_assert_eq!(
    offset_of!(
        NET_DEVICE_RESET_CAPABILITIES,
        EvtNetDeviceCollectResetDiagnostics
    ),
    24
);

/// `NET_ADAPTER_DATAPATH_CALLBACKS`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_DATAPATH_CALLBACKS {
    /// `Size`.
    pub Size: u32,
    /// `EvtAdapterCreateTxQueue`.
    pub EvtAdapterCreateTxQueue: Option<EvtCreateTxQueue>,
    /// `EvtAdapterCreateRxQueue`.
    pub EvtAdapterCreateRxQueue: Option<EvtCreateRxQueue>,
}
const_assert_eq!(size_of::<NET_ADAPTER_DATAPATH_CALLBACKS>(), 24);
const_assert_eq!(
    offset_of!(NET_ADAPTER_DATAPATH_CALLBACKS, EvtAdapterCreateTxQueue),
    8
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_DATAPATH_CALLBACKS, EvtAdapterCreateRxQueue),
    16
);

/// `NET_ADAPTER_LINK_LAYER_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_LINK_LAYER_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `MaxTxLinkSpeed` (bits per second).
    pub MaxTxLinkSpeed: u64,
    /// `MaxRxLinkSpeed`.
    pub MaxRxLinkSpeed: u64,
}
const_assert_eq!(size_of::<NET_ADAPTER_LINK_LAYER_CAPABILITIES>(), 24);
const_assert_eq!(
    offset_of!(NET_ADAPTER_LINK_LAYER_CAPABILITIES, MaxRxLinkSpeed),
    16
);

/// `NET_ADAPTER_LINK_LAYER_ADDRESS`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NET_ADAPTER_LINK_LAYER_ADDRESS {
    /// `Length` (0–32).
    pub Length: u16,
    /// `Address`.
    pub Address: [u8; 32],
}
const_assert_eq!(size_of::<NET_ADAPTER_LINK_LAYER_ADDRESS>(), 34);
const_assert_eq!(core::mem::align_of::<NET_ADAPTER_LINK_LAYER_ADDRESS>(), 2);

impl NET_ADAPTER_LINK_LAYER_ADDRESS {
    /// An Ethernet address (`NET_ADAPTER_LINK_LAYER_ADDRESS_INIT(addr, 6, mac)`).
    pub const fn ethernet(mac: [u8; 6]) -> Self {
        let mut a = [0u8; 32];
        let mut i = 0;
        while i < 6 {
            a[i] = mac[i];
            i += 1;
        }
        Self {
            Length: 6,
            Address: a,
        }
    }

    /// The address as Ethernet, if it is 6 bytes long.
    pub fn as_ethernet(&self) -> Option<[u8; 6]> {
        (self.Length == 6).then(|| {
            let mut m = [0u8; 6];
            m.copy_from_slice(&self.Address[..6]);
            m
        })
    }
}

/// `NET_IF_MEDIA_CONNECT_STATE`.
pub mod media_connect_state {
    /// `MediaConnectStateUnknown`.
    pub const UNKNOWN: u32 = 0;
    /// `MediaConnectStateConnected`.
    pub const CONNECTED: u32 = 1;
    /// `MediaConnectStateDisconnected`.
    pub const DISCONNECTED: u32 = 2;
}

/// `NET_ADAPTER_LINK_SPEED_UNKNOWN`.
pub const NET_ADAPTER_LINK_SPEED_UNKNOWN: u64 = u64::MAX;

/// `NET_ADAPTER_LINK_STATE`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NET_ADAPTER_LINK_STATE {
    /// `Size`.
    pub Size: u32,
    /// `TxLinkSpeed`.
    pub TxLinkSpeed: u64,
    /// `RxLinkSpeed`.
    pub RxLinkSpeed: u64,
    /// `MediaConnectState`.
    pub MediaConnectState: u32,
    /// `MediaDuplexState` (Unknown 0, Half 1, Full 2).
    pub MediaDuplexState: u32,
    /// `SupportedPauseFunctions` (Unsupported 0).
    pub SupportedPauseFunctions: u32,
    /// `AutoNegotiationFlags` (None 0).
    pub AutoNegotiationFlags: u32,
}
const_assert_eq!(size_of::<NET_ADAPTER_LINK_STATE>(), 40);
const_assert_eq!(offset_of!(NET_ADAPTER_LINK_STATE, MediaConnectState), 24);
const_assert_eq!(offset_of!(NET_ADAPTER_LINK_STATE, MediaDuplexState), 28);
const_assert_eq!(
    offset_of!(NET_ADAPTER_LINK_STATE, SupportedPauseFunctions),
    32
);
const_assert_eq!(offset_of!(NET_ADAPTER_LINK_STATE, AutoNegotiationFlags), 36);

/// `WDF_TRI_STATE::WdfUseDefault`.
pub const WDF_USE_DEFAULT: i32 = 2;
/// `MM_ANY_NODE_OK`.
pub const MM_ANY_NODE_OK: u32 = 0x8000_0000;

/// `NET_ADAPTER_DMA_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_DMA_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `DmaEnabler`.
    pub DmaEnabler: WDFDMAENABLER,
    /// `MaximumPhysicalAddress` (0: no limit).
    pub MaximumPhysicalAddress: i64,
    /// `CacheEnabled` (`WDF_TRI_STATE`).
    pub CacheEnabled: i32,
    /// `PreferredNode`.
    pub PreferredNode: u32,
}
const_assert_eq!(size_of::<NET_ADAPTER_DMA_CAPABILITIES>(), 32);
const_assert_eq!(offset_of!(NET_ADAPTER_DMA_CAPABILITIES, DmaEnabler), 8);
const_assert_eq!(
    offset_of!(NET_ADAPTER_DMA_CAPABILITIES, MaximumPhysicalAddress),
    16
);
const_assert_eq!(offset_of!(NET_ADAPTER_DMA_CAPABILITIES, CacheEnabled), 24);
const_assert_eq!(offset_of!(NET_ADAPTER_DMA_CAPABILITIES, PreferredNode), 28);

/// `NET_MEMORY_MAPPING_REQUIREMENT`: `NetMemoryMappingRequirementDmaMapped`.
pub const MAPPING_DMA_MAPPED: u32 = 1;

/// `NET_ADAPTER_TX_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_TX_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `MappingRequirement`.
    pub MappingRequirement: u32,
    /// `PayloadBackfill`.
    pub PayloadBackfill: usize,
    /// `MaximumNumberOfFragments`.
    pub MaximumNumberOfFragments: usize,
    /// `FragmentBufferAlignment`.
    pub FragmentBufferAlignment: usize,
    /// `FragmentRingNumberOfElementsHint`.
    pub FragmentRingNumberOfElementsHint: u32,
    /// `MaximumNumberOfQueues`.
    pub MaximumNumberOfQueues: usize,
    /// `DmaCapabilities`.
    pub DmaCapabilities: *const NET_ADAPTER_DMA_CAPABILITIES,
}
const_assert_eq!(size_of::<NET_ADAPTER_TX_CAPABILITIES>(), 56);
const_assert_eq!(
    offset_of!(NET_ADAPTER_TX_CAPABILITIES, MappingRequirement),
    4
);
const_assert_eq!(offset_of!(NET_ADAPTER_TX_CAPABILITIES, PayloadBackfill), 8);
const_assert_eq!(
    offset_of!(NET_ADAPTER_TX_CAPABILITIES, MaximumNumberOfFragments),
    16
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_TX_CAPABILITIES, FragmentBufferAlignment),
    24
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_TX_CAPABILITIES,
        FragmentRingNumberOfElementsHint
    ),
    32
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_TX_CAPABILITIES, MaximumNumberOfQueues),
    40
);
const_assert_eq!(offset_of!(NET_ADAPTER_TX_CAPABILITIES, DmaCapabilities), 48);

/// The system-managed arm of `NET_ADAPTER_RX_CAPABILITIES`' union.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct RxSystemManaged {
    /// `MappingRequirement`.
    pub MappingRequirement: u32,
    /// `FragmentBufferAlignment`.
    pub FragmentBufferAlignment: usize,
    /// `DmaCapabilities`.
    pub DmaCapabilities: *const NET_ADAPTER_DMA_CAPABILITIES,
}

/// The union at offset 32 of `NET_ADAPTER_RX_CAPABILITIES`.
#[repr(C)]
#[derive(Clone, Copy)]
pub union RxBufferUnion {
    /// Driver-managed: `EvtAdapterReturnRxBuffer`.
    pub EvtAdapterReturnRxBuffer: Option<EvtReturnRxBuffer>,
    /// System-managed.
    pub System: RxSystemManaged,
}

/// `NET_RX_FRAGMENT_BUFFER_ALLOCATION_MODE` / `..._ATTACHMENT_MODE`: `Driver`.
pub const RX_MODE_DRIVER: u32 = 1;

/// `NET_ADAPTER_RX_CAPABILITIES` (§3).
#[repr(C)]
#[derive(Clone, Copy)]
pub struct NET_ADAPTER_RX_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `AllocationMode`.
    pub AllocationMode: u32,
    /// `AttachmentMode`.
    pub AttachmentMode: u32,
    /// `FragmentRingNumberOfElementsHint`.
    pub FragmentRingNumberOfElementsHint: u32,
    /// `MaximumFrameSize`.
    pub MaximumFrameSize: usize,
    /// `MaximumNumberOfQueues`.
    pub MaximumNumberOfQueues: usize,
    /// The mode-dependent part.
    pub u: RxBufferUnion,
}
const_assert_eq!(size_of::<NET_ADAPTER_RX_CAPABILITIES>(), 56);
const_assert_eq!(offset_of!(NET_ADAPTER_RX_CAPABILITIES, AttachmentMode), 8);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RX_CAPABILITIES,
        FragmentRingNumberOfElementsHint
    ),
    12
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RX_CAPABILITIES, MaximumFrameSize),
    16
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RX_CAPABILITIES, MaximumNumberOfQueues),
    24
);
const_assert_eq!(offset_of!(NET_ADAPTER_RX_CAPABILITIES, u), 32);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RX_CAPABILITIES, u)
        + offset_of!(RxSystemManaged, FragmentBufferAlignment),
    40
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RX_CAPABILITIES, u) + offset_of!(RxSystemManaged, DmaCapabilities),
    48
);

/// `NET_PACKET_QUEUE_CONFIG` (2.1 and later: 56 bytes; the verifier checks `Size` exactly).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_PACKET_QUEUE_CONFIG {
    /// `Size`.
    pub Size: u32,
    /// `EvtStart`.
    pub EvtStart: Option<EvtPacketQueue>,
    /// `EvtStop`.
    pub EvtStop: Option<EvtPacketQueue>,
    /// `EvtAdvance`.
    pub EvtAdvance: Option<EvtPacketQueue>,
    /// `EvtSetNotificationEnabled`.
    pub EvtSetNotificationEnabled: Option<EvtPacketQueueSetNotificationEnabled>,
    /// `EvtCancel`.
    pub EvtCancel: Option<EvtPacketQueue>,
    /// `ExecutionContext` (null: the framework's own).
    pub ExecutionContext: NETEXECUTIONCONTEXT,
}
const_assert_eq!(size_of::<NET_PACKET_QUEUE_CONFIG>(), 56);
const_assert_eq!(offset_of!(NET_PACKET_QUEUE_CONFIG, EvtStart), 8);
const_assert_eq!(offset_of!(NET_PACKET_QUEUE_CONFIG, EvtStop), 16);
const_assert_eq!(offset_of!(NET_PACKET_QUEUE_CONFIG, EvtAdvance), 24);
const_assert_eq!(
    offset_of!(NET_PACKET_QUEUE_CONFIG, EvtSetNotificationEnabled),
    32
);
const_assert_eq!(offset_of!(NET_PACKET_QUEUE_CONFIG, EvtCancel), 40);
const_assert_eq!(offset_of!(NET_PACKET_QUEUE_CONFIG, ExecutionContext), 48);

/// `NET_ADAPTER_OFFLOAD_LAYER3_FLAGS`.
pub mod l3 {
    /// `IPv4NoOptions`.
    pub const IPV4_NO_OPTIONS: u32 = 1;
    /// `IPv4WithOptions`.
    pub const IPV4_WITH_OPTIONS: u32 = 2;
    /// `IPv6NoExtensions`.
    pub const IPV6_NO_EXTENSIONS: u32 = 4;
    /// `IPv6WithExtensions`.
    pub const IPV6_WITH_EXTENSIONS: u32 = 8;
}

/// `NET_ADAPTER_OFFLOAD_LAYER4_FLAGS`.
pub mod l4 {
    /// `TcpNoOptions`.
    pub const TCP_NO_OPTIONS: u32 = 1;
    /// `TcpWithOptions`.
    pub const TCP_WITH_OPTIONS: u32 = 2;
    /// `Udp`.
    pub const UDP: u32 = 4;
}

/// `NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `Layer3Flags`.
    pub Layer3Flags: u32,
    /// `Layer4Flags`.
    pub Layer4Flags: u32,
    /// `Layer3HeaderOffsetLimit`.
    pub Layer3HeaderOffsetLimit: u16,
    /// `Layer4HeaderOffsetLimit`.
    pub Layer4HeaderOffsetLimit: u16,
    /// `EvtAdapterOffloadSetTxChecksum`.
    pub EvtAdapterOffloadSetTxChecksum: Option<EvtOffloadSet>,
}
const_assert_eq!(
    size_of::<NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES>(),
    24
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES, Layer4Flags),
    8
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES,
        Layer3HeaderOffsetLimit
    ),
    12
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES,
        Layer4HeaderOffsetLimit
    ),
    14
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES,
        EvtAdapterOffloadSetTxChecksum
    ),
    16
);

/// `NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `EvtAdapterOffloadSetRxChecksum`.
    pub EvtAdapterOffloadSetRxChecksum: Option<EvtOffloadSet>,
}
const_assert_eq!(
    size_of::<NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES>(),
    16
);

/// `NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `Layer3Flags`.
    pub Layer3Flags: u32,
    /// `Layer4Flags`.
    pub Layer4Flags: u32,
    /// `Layer4HeaderOffsetLimit`.
    pub Layer4HeaderOffsetLimit: u16,
    /// `MaximumOffloadSize`.
    pub MaximumOffloadSize: usize,
    /// `MinimumSegmentCount`.
    pub MinimumSegmentCount: usize,
    /// `EvtAdapterOffloadSetGso`.
    pub EvtAdapterOffloadSetGso: Option<EvtOffloadSet>,
}
const_assert_eq!(size_of::<NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES>(), 40);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES,
        Layer4HeaderOffsetLimit
    ),
    12
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES, MaximumOffloadSize),
    16
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES, MinimumSegmentCount),
    24
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES,
        EvtAdapterOffloadSetGso
    ),
    32
);

/// `NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `Layer3Flags`.
    pub Layer3Flags: u32,
    /// `Layer4Flags`.
    pub Layer4Flags: u32,
    /// `TcpTimestampOption`.
    pub TcpTimestampOption: BOOLEAN,
    /// `EvtAdapterOffloadSetRsc`.
    pub EvtAdapterOffloadSetRsc: Option<EvtOffloadSet>,
}
const_assert_eq!(size_of::<NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES>(), 24);
const_assert_eq!(
    offset_of!(NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES, TcpTimestampOption),
    12
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES,
        EvtAdapterOffloadSetRsc
    ),
    16
);

/// `NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `Flags` (PriorityTagging 1, VlanTagging 2).
    pub Flags: u32,
}
const_assert_eq!(
    size_of::<NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES>(),
    8
);

/// `NET_PACKET_FILTER_FLAGS`.
pub mod packet_filter {
    /// `NetPacketFilterFlagDirected`.
    pub const DIRECTED: u32 = 0x1;
    /// `NetPacketFilterFlagMulticast`.
    pub const MULTICAST: u32 = 0x2;
    /// `NetPacketFilterFlagAllMulticast`.
    pub const ALL_MULTICAST: u32 = 0x4;
    /// `NetPacketFilterFlagBroadcast`.
    pub const BROADCAST: u32 = 0x8;
    /// `NetPacketFilterFlagPromiscuous`.
    pub const PROMISCUOUS: u32 = 0x20;
}

/// `NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `SupportedPacketFilters`.
    pub SupportedPacketFilters: u32,
    /// `MaximumMulticastAddresses`.
    pub MaximumMulticastAddresses: usize,
    /// `EvtSetReceiveFilter`.
    pub EvtSetReceiveFilter: Option<EvtSetReceiveFilter>,
}
const_assert_eq!(size_of::<NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES>(), 24);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES,
        SupportedPacketFilters
    ),
    4
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES,
        MaximumMulticastAddresses
    ),
    8
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES, EvtSetReceiveFilter),
    16
);

/// `NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY {
    /// `Key`.
    pub Key: *const u8,
    /// `Length`.
    pub Length: usize,
}
const_assert_eq!(size_of::<NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY>(), 16);

/// `NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY {
    /// `PacketQueue`: the receive queue for this table index.
    pub PacketQueue: NETPACKETQUEUE,
    /// `Status`: written by the driver.
    pub Status: NTSTATUS,
    /// `Index` into the indirection table.
    pub Index: u32,
}
const_assert_eq!(
    size_of::<NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY>(),
    16
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY, Status),
    8
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY, Index),
    12
);

/// `NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES`.
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES {
    /// `Entries`.
    pub Entries: *mut NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY,
    /// `Length`.
    pub Length: usize,
}
const_assert_eq!(
    size_of::<NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES>(),
    16
);

/// `EVT_NET_ADAPTER_RECEIVE_SCALING_ENABLE`.
pub type EvtRssEnable =
    unsafe extern "system" fn(adapter: NETADAPTER, hash_type: u32, protocol_type: u32) -> NTSTATUS;
/// `EVT_NET_ADAPTER_RECEIVE_SCALING_DISABLE`.
pub type EvtRssDisable = unsafe extern "system" fn(adapter: NETADAPTER);
/// `EVT_NET_ADAPTER_RECEIVE_SCALING_SET_HASH_SECRET_KEY`.
pub type EvtRssSetKey = unsafe extern "system" fn(
    adapter: NETADAPTER,
    key: *const NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY,
) -> NTSTATUS;
/// `EVT_NET_ADAPTER_RECEIVE_SCALING_SET_INDIRECTION_ENTRIES`.
pub type EvtRssSetEntries = unsafe extern "system" fn(
    adapter: NETADAPTER,
    entries: *mut NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES,
) -> NTSTATUS;

/// `NET_ADAPTER_RECEIVE_SCALING_UNHASHED_TARGET_TYPE_HASH_INDEX`.
pub const RSS_UNHASHED_TARGET_HASH_INDEX: u32 = 1;
/// `NetAdapterReceiveScalingHashTypeToeplitz`.
pub const RSS_HASH_TYPE_TOEPLITZ: u32 = 1;

/// `NET_ADAPTER_RECEIVE_SCALING_PROTOCOL_TYPE`.
pub mod rss_protocol {
    /// `IPv4`.
    pub const IPV4: u32 = 0x1;
    /// `IPv4Options`.
    pub const IPV4_OPTIONS: u32 = 0x2;
    /// `IPv6`.
    pub const IPV6: u32 = 0x4;
    /// `IPv6Extensions`.
    pub const IPV6_EXTENSIONS: u32 = 0x8;
    /// `Tcp`.
    pub const TCP: u32 = 0x10;
    /// `Udp`.
    pub const UDP: u32 = 0x20;
}

/// `NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES` (88 bytes).
#[repr(C)]
#[derive(Debug, Clone, Copy)]
pub struct NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES {
    /// `Size`.
    pub Size: u32,
    /// `NumberOfQueues` (a power of two).
    pub NumberOfQueues: usize,
    /// `IndirectionTableSize` (a power of two, at least 128).
    pub IndirectionTableSize: usize,
    /// `UnhashedTargetIndex`.
    pub UnhashedTargetIndex: usize,
    /// `UnhashedTargetType`.
    pub UnhashedTargetType: u32,
    /// `ReceiveScalingHashTypes`.
    pub ReceiveScalingHashTypes: u32,
    /// `ReceiveScalingProtocolTypes`.
    pub ReceiveScalingProtocolTypes: u32,
    /// `ReceiveScalingEncapsulationTypes.Outer`.
    pub EncapsulationOuter: u32,
    /// `ReceiveScalingEncapsulationTypes.Inner`.
    pub EncapsulationInner: u32,
    /// `SynchronizeSetIndirectionEntries`.
    pub SynchronizeSetIndirectionEntries: BOOLEAN,
    /// `EvtAdapterReceiveScalingEnable`.
    pub EvtAdapterReceiveScalingEnable: Option<EvtRssEnable>,
    /// `EvtAdapterReceiveScalingDisable`.
    pub EvtAdapterReceiveScalingDisable: Option<EvtRssDisable>,
    /// `EvtAdapterReceiveScalingSetHashSecretKey`.
    pub EvtAdapterReceiveScalingSetHashSecretKey: Option<EvtRssSetKey>,
    /// `EvtAdapterReceiveScalingSetIndirectionEntries`.
    pub EvtAdapterReceiveScalingSetIndirectionEntries: Option<EvtRssSetEntries>,
}
const_assert_eq!(size_of::<NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES>(), 88);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES, NumberOfQueues),
    8
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        IndirectionTableSize
    ),
    16
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        UnhashedTargetIndex
    ),
    24
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES, UnhashedTargetType),
    32
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        ReceiveScalingHashTypes
    ),
    36
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        ReceiveScalingProtocolTypes
    ),
    40
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES, EncapsulationOuter),
    44
);
const_assert_eq!(
    offset_of!(NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES, EncapsulationInner),
    48
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        SynchronizeSetIndirectionEntries
    ),
    52
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        EvtAdapterReceiveScalingEnable
    ),
    56
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        EvtAdapterReceiveScalingDisable
    ),
    64
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        EvtAdapterReceiveScalingSetHashSecretKey
    ),
    72
);
const_assert_eq!(
    offset_of!(
        NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
        EvtAdapterReceiveScalingSetIndirectionEntries
    ),
    80
);

// ---------------------------------------------------------------------------------------------
// The function table (§5.1, NETFUNCENUM; indices 0–121 are the same in 2.1, 2.2 and 2.3).

/// Entries of the NetAdapterCx 2.2 function table (`NetFunctionTableNumEntries`).
pub const NET_FUNCTION_TABLE_COUNT: usize = 124;
/// The NetAdapterCx version this driver binds to (major, minor).
pub const NETADAPTER_VERSION: (u32, u32) = (2, 2);

/// `NETFUNCENUM` indices of the APIs the glue calls.
pub mod index {
    /// `NetAdapterInitAllocateTableIndex`.
    pub const ADAPTER_INIT_ALLOCATE: usize = 0;
    /// `NetAdapterInitFreeTableIndex`.
    pub const ADAPTER_INIT_FREE: usize = 1;
    /// `NetAdapterInitSetDatapathCallbacksTableIndex`.
    pub const ADAPTER_INIT_SET_DATAPATH_CALLBACKS: usize = 2;
    /// `NetAdapterCreateTableIndex`.
    pub const ADAPTER_CREATE: usize = 3;
    /// `NetAdapterStartTableIndex`.
    pub const ADAPTER_START: usize = 4;
    /// `NetAdapterStopTableIndex`.
    pub const ADAPTER_STOP: usize = 5;
    /// `NetAdapterSetLinkLayerCapabilitiesTableIndex`.
    pub const SET_LINK_LAYER_CAPABILITIES: usize = 6;
    /// `NetAdapterSetLinkLayerMtuSizeTableIndex`.
    pub const SET_LINK_LAYER_MTU_SIZE: usize = 7;
    /// `NetAdapterSetDataPathCapabilitiesTableIndex`.
    pub const SET_DATAPATH_CAPABILITIES: usize = 14;
    /// `NetAdapterSetLinkStateTableIndex`.
    pub const SET_LINK_STATE: usize = 15;
    /// `NetAdapterOpenConfigurationTableIndex`.
    pub const ADAPTER_OPEN_CONFIGURATION: usize = 17;
    /// `NetAdapterSetPermanentLinkLayerAddressTableIndex`.
    pub const SET_PERMANENT_ADDRESS: usize = 18;
    /// `NetAdapterSetCurrentLinkLayerAddressTableIndex`.
    pub const SET_CURRENT_ADDRESS: usize = 19;
    /// `NetConfigurationCloseTableIndex`.
    pub const CONFIGURATION_CLOSE: usize = 35;
    /// `NetConfigurationQueryUlongTableIndex`.
    pub const CONFIGURATION_QUERY_ULONG: usize = 37;
    /// `NetConfigurationQueryLinkLayerAddressTableIndex`.
    pub const CONFIGURATION_QUERY_LINK_LAYER_ADDRESS: usize = 41;
    /// `NetConfigurationAssignUlongTableIndex`.
    pub const CONFIGURATION_ASSIGN_ULONG: usize = 42;
    /// `NetDeviceInitConfigTableIndex`.
    pub const DEVICE_INIT_CONFIG: usize = 46;
    /// `NetAdapterSetReceiveScalingCapabilitiesTableIndex`.
    pub const SET_RECEIVE_SCALING_CAPABILITIES: usize = 57;
    /// `NetRxQueueCreateTableIndex`.
    pub const RX_QUEUE_CREATE: usize = 58;
    /// `NetRxQueueNotifyMoreReceivedPacketsAvailableTableIndex`.
    pub const RX_QUEUE_NOTIFY: usize = 59;
    /// `NetRxQueueInitGetQueueIdTableIndex`.
    pub const RX_QUEUE_INIT_GET_QUEUE_ID: usize = 60;
    /// `NetRxQueueGetRingCollectionTableIndex`.
    pub const RX_QUEUE_GET_RING_COLLECTION: usize = 61;
    /// `NetRxQueueGetExtensionTableIndex`.
    pub const RX_QUEUE_GET_EXTENSION: usize = 62;
    /// `NetTxQueueCreateTableIndex`.
    pub const TX_QUEUE_CREATE: usize = 63;
    /// `NetTxQueueNotifyMoreCompletedPacketsAvailableTableIndex`.
    pub const TX_QUEUE_NOTIFY: usize = 64;
    /// `NetTxQueueInitGetQueueIdTableIndex`.
    pub const TX_QUEUE_INIT_GET_QUEUE_ID: usize = 65;
    /// `NetTxQueueGetRingCollectionTableIndex`.
    pub const TX_QUEUE_GET_RING_COLLECTION: usize = 66;
    /// `NetTxQueueGetExtensionTableIndex`.
    pub const TX_QUEUE_GET_EXTENSION: usize = 67;
    /// `NetAdapterSetReceiveFilterCapabilitiesTableIndex`.
    pub const SET_RECEIVE_FILTER_CAPABILITIES: usize = 76;
    /// `NetReceiveFilterGetPacketFilterTableIndex`.
    pub const RECEIVE_FILTER_GET_PACKET_FILTER: usize = 77;
    /// `NetReceiveFilterGetMulticastAddressCountTableIndex`.
    pub const RECEIVE_FILTER_GET_MULTICAST_COUNT: usize = 78;
    /// `NetReceiveFilterGetMulticastAddressListTableIndex`.
    pub const RECEIVE_FILTER_GET_MULTICAST_LIST: usize = 79;
    /// `NetAdapterOffloadSetTxChecksumCapabilitiesTableIndex`.
    pub const OFFLOAD_SET_TX_CHECKSUM_CAPABILITIES: usize = 89;
    /// `NetOffloadIsTxChecksumIPv4EnabledTableIndex`.
    pub const IS_TX_CHECKSUM_IPV4: usize = 90;
    /// `NetOffloadIsTxChecksumTcpEnabledTableIndex`.
    pub const IS_TX_CHECKSUM_TCP: usize = 91;
    /// `NetOffloadIsTxChecksumUdpEnabledTableIndex`.
    pub const IS_TX_CHECKSUM_UDP: usize = 92;
    /// `NetAdapterOffloadSetRxChecksumCapabilitiesTableIndex`.
    pub const OFFLOAD_SET_RX_CHECKSUM_CAPABILITIES: usize = 93;
    /// `NetOffloadIsRxChecksumIPv4EnabledTableIndex`.
    pub const IS_RX_CHECKSUM_IPV4: usize = 94;
    /// `NetOffloadIsRxChecksumTcpEnabledTableIndex`.
    pub const IS_RX_CHECKSUM_TCP: usize = 95;
    /// `NetOffloadIsRxChecksumUdpEnabledTableIndex`.
    pub const IS_RX_CHECKSUM_UDP: usize = 96;
    /// `NetAdapterOffloadSetGsoCapabilitiesTableIndex`.
    pub const OFFLOAD_SET_GSO_CAPABILITIES: usize = 97;
    /// `NetOffloadIsLsoIPv4EnabledTableIndex`.
    pub const IS_LSO_IPV4: usize = 98;
    /// `NetOffloadIsLsoIPv6EnabledTableIndex`.
    pub const IS_LSO_IPV6: usize = 99;
    /// `NetOffloadIsUsoIPv4EnabledTableIndex`.
    pub const IS_USO_IPV4: usize = 100;
    /// `NetOffloadIsUsoIPv6EnabledTableIndex`.
    pub const IS_USO_IPV6: usize = 101;
    /// `NetAdapterOffloadSetRscCapabilitiesTableIndex`.
    pub const OFFLOAD_SET_RSC_CAPABILITIES: usize = 102;
    /// `NetOffloadIsTcpRscIPv4EnabledTableIndex`.
    pub const IS_TCP_RSC_IPV4: usize = 103;
    /// `NetOffloadIsTcpRscIPv6EnabledTableIndex`.
    pub const IS_TCP_RSC_IPV6: usize = 104;
    /// `NetAdapterOffloadSetIeee8021qTagCapabilitiesTableIndex`.
    pub const OFFLOAD_SET_IEEE8021Q_CAPABILITIES: usize = 106;
    /// `NetDeviceInitSetResetCapabilitiesTableIndex`.
    pub const DEVICE_INIT_SET_RESET_CAPABILITIES: usize = 112;
    /// `NetDeviceStoreResetDiagnosticsTableIndex`.
    pub const DEVICE_STORE_RESET_DIAGNOSTICS: usize = 113;
    /// `NetDeviceRequestResetTableIndex`.
    pub const DEVICE_REQUEST_RESET: usize = 114;
}

#[cfg(windows)]
unsafe extern "C" {
    /// The table `netadaptercxstub.lib` defines; NetAdapterCx fills it when the driver binds.
    static NetFunctions: [usize; NET_FUNCTION_TABLE_COUNT];
    /// The globals pointer the framework stores at bind time.
    static NetDriverGlobals: *mut NET_DRIVER_GLOBALS;
}

/// A stand-in function table for hosts other than Windows, which tests fill with their own
/// implementations of the APIs (a model of the framework's checks).
#[cfg(not(windows))]
pub mod mock {
    use core::sync::atomic::AtomicUsize;

    use super::NET_FUNCTION_TABLE_COUNT;

    /// Entry `i` is the address of the stand-in for API `i` (0: absent).
    pub static TABLE: [AtomicUsize; NET_FUNCTION_TABLE_COUNT] =
        [const { AtomicUsize::new(0) }; NET_FUNCTION_TABLE_COUNT];
}

/// Address of table entry `i` (0 when absent or out of range).
fn entry(i: usize) -> usize {
    #[cfg(windows)]
    {
        // SAFETY: `NetFunctions` is a static array of NET_FUNCTION_TABLE_COUNT pointers in the
        // stub library; the framework writes it once, at bind time, before DriverEntry runs.
        let t = unsafe { &*core::ptr::addr_of!(NetFunctions) };
        t.get(i).copied().unwrap_or(0)
    }
    #[cfg(not(windows))]
    {
        mock::TABLE
            .get(i)
            .map_or(0, |a| a.load(core::sync::atomic::Ordering::Acquire))
    }
}

fn globals() -> *mut NET_DRIVER_GLOBALS {
    #[cfg(windows)]
    {
        // SAFETY: written once by the framework at bind time, before DriverEntry.
        unsafe { *core::ptr::addr_of!(NetDriverGlobals) }
    }
    #[cfg(not(windows))]
    {
        core::ptr::null_mut()
    }
}

/// What a wrapper returns when its table entry is absent (never on a bound Windows driver).
pub trait Absent {
    /// The value.
    fn absent() -> Self;
}
impl Absent for () {
    fn absent() -> Self {}
}
impl Absent for NTSTATUS {
    fn absent() -> Self {
        STATUS_NOT_SUPPORTED
    }
}
impl Absent for BOOLEAN {
    fn absent() -> Self {
        0
    }
}
impl Absent for u32 {
    fn absent() -> Self {
        0
    }
}
impl Absent for usize {
    fn absent() -> Self {
        0
    }
}
impl<T> Absent for *mut T {
    fn absent() -> Self {
        core::ptr::null_mut()
    }
}
impl<T> Absent for *const T {
    fn absent() -> Self {
        core::ptr::null()
    }
}

macro_rules! net_api {
    ($(
        $(#[$m:meta])*
        $name:ident / $pfn:ident = $idx:path : fn($($arg:ident : $ty:ty),*) $(-> $ret:ty)?;
    )*) => {$(
        /// The table entry's type: the API with `NetDriverGlobals` first.
        pub type $pfn = unsafe extern "system" fn(*mut NET_DRIVER_GLOBALS $(, $ty)*) $(-> $ret)?;

        $(#[$m])*
        ///
        /// # Safety
        ///
        /// The arguments must satisfy the API's contract in the WDK (valid handles of the right
        /// kind, pointers to initialised structs with `Size` set, the documented IRQL).
        pub unsafe fn $name($($arg: $ty),*) $(-> $ret)? {
            let f = entry($idx);
            if f == 0 {
                return Absent::absent();
            }
            // SAFETY: a non-zero entry at this index is the framework's implementation of this
            // API (or a test's stand-in with the same signature); fn pointers are pointer-sized.
            let f: $pfn = unsafe { core::mem::transmute::<usize, $pfn>(f) };
            // SAFETY: the caller upholds the API's contract.
            unsafe { f(globals() $(, $arg)*) }
        }
    )*};
}

net_api! {
    /// `NetDeviceInitSetResetCapabilities` (PASSIVE_LEVEL, before WdfDeviceCreate).
    NetDeviceInitSetResetCapabilities / PFN_NETDEVICEINITSETRESETCAPABILITIES =
        index::DEVICE_INIT_SET_RESET_CAPABILITIES:
        fn(init: PWDFDEVICE_INIT, capabilities: *const NET_DEVICE_RESET_CAPABILITIES);
    /// `NetDeviceStoreResetDiagnostics` (PASSIVE_LEVEL, from the collect callback).
    NetDeviceStoreResetDiagnostics / PFN_NETDEVICESTORERESETDIAGNOSTICS =
        index::DEVICE_STORE_RESET_DIAGNOSTICS:
        fn(device: WDFDEVICE, size: usize, buffer: *const u8);
    /// `NetDeviceRequestReset` (PASSIVE_LEVEL).
    NetDeviceRequestReset / PFN_NETDEVICEREQUESTRESET = index::DEVICE_REQUEST_RESET:
        fn(device: WDFDEVICE);
    /// `NetDeviceInitConfig`: must be the first call on a `WDFDEVICE_INIT` of a NetAdapterCx device.
    NetDeviceInitConfig / PFN_NETDEVICEINITCONFIG = index::DEVICE_INIT_CONFIG:
        fn(init: PWDFDEVICE_INIT) -> NTSTATUS;
    /// `NetAdapterInitAllocate`.
    NetAdapterInitAllocate / PFN_NETADAPTERINITALLOCATE = index::ADAPTER_INIT_ALLOCATE:
        fn(device: WDFDEVICE) -> PNETADAPTER_INIT;
    /// `NetAdapterInitFree`.
    NetAdapterInitFree / PFN_NETADAPTERINITFREE = index::ADAPTER_INIT_FREE:
        fn(init: PNETADAPTER_INIT);
    /// `NetAdapterInitSetDatapathCallbacks`.
    NetAdapterInitSetDatapathCallbacks / PFN_NETADAPTERINITSETDATAPATHCALLBACKS =
        index::ADAPTER_INIT_SET_DATAPATH_CALLBACKS:
        fn(init: PNETADAPTER_INIT, callbacks: *const NET_ADAPTER_DATAPATH_CALLBACKS);
    /// `NetAdapterCreate`.
    NetAdapterCreate / PFN_NETADAPTERCREATE = index::ADAPTER_CREATE:
        fn(init: PNETADAPTER_INIT, attributes: PWDF_OBJECT_ATTRIBUTES, adapter: *mut NETADAPTER)
            -> NTSTATUS;
    /// `NetAdapterStart`.
    NetAdapterStart / PFN_NETADAPTERSTART = index::ADAPTER_START:
        fn(adapter: NETADAPTER) -> NTSTATUS;
    /// `NetAdapterStop`.
    NetAdapterStop / PFN_NETADAPTERSTOP = index::ADAPTER_STOP: fn(adapter: NETADAPTER);
    /// `NetAdapterSetLinkLayerCapabilities`.
    NetAdapterSetLinkLayerCapabilities / PFN_NETADAPTERSETLINKLAYERCAPABILITIES =
        index::SET_LINK_LAYER_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_LINK_LAYER_CAPABILITIES);
    /// `NetAdapterSetLinkLayerMtuSize`.
    NetAdapterSetLinkLayerMtuSize / PFN_NETADAPTERSETLINKLAYERMTUSIZE =
        index::SET_LINK_LAYER_MTU_SIZE: fn(adapter: NETADAPTER, mtu: u32);
    /// `NetAdapterSetDataPathCapabilities`.
    NetAdapterSetDataPathCapabilities / PFN_NETADAPTERSETDATAPATHCAPABILITIES =
        index::SET_DATAPATH_CAPABILITIES:
        fn(adapter: NETADAPTER, tx: *const NET_ADAPTER_TX_CAPABILITIES,
           rx: *const NET_ADAPTER_RX_CAPABILITIES);
    /// `NetAdapterSetLinkState` (≤ DISPATCH_LEVEL).
    NetAdapterSetLinkState / PFN_NETADAPTERSETLINKSTATE = index::SET_LINK_STATE:
        fn(adapter: NETADAPTER, state: *const NET_ADAPTER_LINK_STATE);
    /// `NetAdapterOpenConfiguration`.
    NetAdapterOpenConfiguration / PFN_NETADAPTEROPENCONFIGURATION =
        index::ADAPTER_OPEN_CONFIGURATION:
        fn(adapter: NETADAPTER, attributes: PWDF_OBJECT_ATTRIBUTES,
           configuration: *mut NETCONFIGURATION) -> NTSTATUS;
    /// `NetAdapterSetPermanentLinkLayerAddress`.
    NetAdapterSetPermanentLinkLayerAddress / PFN_NETADAPTERSETPERMANENTLINKLAYERADDRESS =
        index::SET_PERMANENT_ADDRESS:
        fn(adapter: NETADAPTER, address: *const NET_ADAPTER_LINK_LAYER_ADDRESS);
    /// `NetAdapterSetCurrentLinkLayerAddress`.
    NetAdapterSetCurrentLinkLayerAddress / PFN_NETADAPTERSETCURRENTLINKLAYERADDRESS =
        index::SET_CURRENT_ADDRESS:
        fn(adapter: NETADAPTER, address: *const NET_ADAPTER_LINK_LAYER_ADDRESS);
    /// `NetConfigurationClose`.
    NetConfigurationClose / PFN_NETCONFIGURATIONCLOSE = index::CONFIGURATION_CLOSE:
        fn(configuration: NETCONFIGURATION);
    /// `NetConfigurationQueryUlong` (flags: `NET_CONFIGURATION_QUERY_ULONG_NO_FLAGS` = 0).
    NetConfigurationQueryUlong / PFN_NETCONFIGURATIONQUERYULONG =
        index::CONFIGURATION_QUERY_ULONG:
        fn(configuration: NETCONFIGURATION, flags: u32, name: *const UNICODE_STRING,
           value: *mut u32) -> NTSTATUS;
    /// `NetConfigurationAssignUlong` (writes a REG_DWORD value, PASSIVE_LEVEL).
    NetConfigurationAssignUlong / PFN_NETCONFIGURATIONASSIGNULONG =
        index::CONFIGURATION_ASSIGN_ULONG:
        fn(configuration: NETCONFIGURATION, name: *const UNICODE_STRING, value: u32)
            -> NTSTATUS;
    /// `NetConfigurationQueryLinkLayerAddress` (reads `NetworkAddress`).
    NetConfigurationQueryLinkLayerAddress / PFN_NETCONFIGURATIONQUERYLINKLAYERADDRESS =
        index::CONFIGURATION_QUERY_LINK_LAYER_ADDRESS:
        fn(configuration: NETCONFIGURATION, address: *mut NET_ADAPTER_LINK_LAYER_ADDRESS)
            -> NTSTATUS;
    /// `NetTxQueueCreate`.
    NetTxQueueCreate / PFN_NETTXQUEUECREATE = index::TX_QUEUE_CREATE:
        fn(init: PNETTXQUEUE_INIT, attributes: PWDF_OBJECT_ATTRIBUTES,
           config: *const NET_PACKET_QUEUE_CONFIG, queue: *mut NETPACKETQUEUE) -> NTSTATUS;
    /// `NetTxQueueInitGetQueueId`.
    NetTxQueueInitGetQueueId / PFN_NETTXQUEUEINITGETQUEUEID = index::TX_QUEUE_INIT_GET_QUEUE_ID:
        fn(init: PNETTXQUEUE_INIT) -> u32;
    /// `NetTxQueueGetRingCollection`.
    NetTxQueueGetRingCollection / PFN_NETTXQUEUEGETRINGCOLLECTION =
        index::TX_QUEUE_GET_RING_COLLECTION:
        fn(queue: NETPACKETQUEUE) -> *const NetRingCollection;
    /// `NetTxQueueGetExtension`.
    NetTxQueueGetExtension / PFN_NETTXQUEUEGETEXTENSION = index::TX_QUEUE_GET_EXTENSION:
        fn(queue: NETPACKETQUEUE, query: *const NetExtensionQuery, ext: *mut NetExtension);
    /// `NetTxQueueNotifyMoreCompletedPacketsAvailable` (any IRQL).
    NetTxQueueNotifyMoreCompletedPacketsAvailable / PFN_NETTXQUEUENOTIFY = index::TX_QUEUE_NOTIFY:
        fn(queue: NETPACKETQUEUE);
    /// `NetRxQueueCreate`.
    NetRxQueueCreate / PFN_NETRXQUEUECREATE = index::RX_QUEUE_CREATE:
        fn(init: PNETRXQUEUE_INIT, attributes: PWDF_OBJECT_ATTRIBUTES,
           config: *const NET_PACKET_QUEUE_CONFIG, queue: *mut NETPACKETQUEUE) -> NTSTATUS;
    /// `NetRxQueueInitGetQueueId`.
    NetRxQueueInitGetQueueId / PFN_NETRXQUEUEINITGETQUEUEID = index::RX_QUEUE_INIT_GET_QUEUE_ID:
        fn(init: PNETRXQUEUE_INIT) -> u32;
    /// `NetRxQueueGetRingCollection`.
    NetRxQueueGetRingCollection / PFN_NETRXQUEUEGETRINGCOLLECTION =
        index::RX_QUEUE_GET_RING_COLLECTION:
        fn(queue: NETPACKETQUEUE) -> *const NetRingCollection;
    /// `NetRxQueueGetExtension`.
    NetRxQueueGetExtension / PFN_NETRXQUEUEGETEXTENSION = index::RX_QUEUE_GET_EXTENSION:
        fn(queue: NETPACKETQUEUE, query: *const NetExtensionQuery, ext: *mut NetExtension);
    /// `NetRxQueueNotifyMoreReceivedPacketsAvailable` (any IRQL).
    NetRxQueueNotifyMoreReceivedPacketsAvailable / PFN_NETRXQUEUENOTIFY = index::RX_QUEUE_NOTIFY:
        fn(queue: NETPACKETQUEUE);
    /// `NetAdapterSetReceiveScalingCapabilities`.
    NetAdapterSetReceiveScalingCapabilities / PFN_NETADAPTERSETRECEIVESCALINGCAPABILITIES =
        index::SET_RECEIVE_SCALING_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES);
    /// `NetAdapterSetReceiveFilterCapabilities`.
    NetAdapterSetReceiveFilterCapabilities / PFN_NETADAPTERSETRECEIVEFILTERCAPABILITIES =
        index::SET_RECEIVE_FILTER_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES);
    /// `NetReceiveFilterGetPacketFilter`.
    NetReceiveFilterGetPacketFilter / PFN_NETRECEIVEFILTERGETPACKETFILTER =
        index::RECEIVE_FILTER_GET_PACKET_FILTER: fn(filter: NETRECEIVEFILTER) -> u32;
    /// `NetReceiveFilterGetMulticastAddressCount`.
    NetReceiveFilterGetMulticastAddressCount / PFN_NETRECEIVEFILTERGETMULTICASTADDRESSCOUNT =
        index::RECEIVE_FILTER_GET_MULTICAST_COUNT: fn(filter: NETRECEIVEFILTER) -> usize;
    /// `NetReceiveFilterGetMulticastAddressList`.
    NetReceiveFilterGetMulticastAddressList / PFN_NETRECEIVEFILTERGETMULTICASTADDRESSLIST =
        index::RECEIVE_FILTER_GET_MULTICAST_LIST:
        fn(filter: NETRECEIVEFILTER) -> *const NET_ADAPTER_LINK_LAYER_ADDRESS;
    /// `NetAdapterOffloadSetTxChecksumCapabilities`.
    NetAdapterOffloadSetTxChecksumCapabilities / PFN_SETTXCHECKSUMCAPS =
        index::OFFLOAD_SET_TX_CHECKSUM_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES);
    /// `NetOffloadIsTxChecksumIPv4Enabled`.
    NetOffloadIsTxChecksumIPv4Enabled / PFN_ISTXCSUMIPV4 = index::IS_TX_CHECKSUM_IPV4:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsTxChecksumTcpEnabled`.
    NetOffloadIsTxChecksumTcpEnabled / PFN_ISTXCSUMTCP = index::IS_TX_CHECKSUM_TCP:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsTxChecksumUdpEnabled`.
    NetOffloadIsTxChecksumUdpEnabled / PFN_ISTXCSUMUDP = index::IS_TX_CHECKSUM_UDP:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetAdapterOffloadSetRxChecksumCapabilities`.
    NetAdapterOffloadSetRxChecksumCapabilities / PFN_SETRXCHECKSUMCAPS =
        index::OFFLOAD_SET_RX_CHECKSUM_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES);
    /// `NetOffloadIsRxChecksumIPv4Enabled`.
    NetOffloadIsRxChecksumIPv4Enabled / PFN_ISRXCSUMIPV4 = index::IS_RX_CHECKSUM_IPV4:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsRxChecksumTcpEnabled`.
    NetOffloadIsRxChecksumTcpEnabled / PFN_ISRXCSUMTCP = index::IS_RX_CHECKSUM_TCP:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsRxChecksumUdpEnabled`.
    NetOffloadIsRxChecksumUdpEnabled / PFN_ISRXCSUMUDP = index::IS_RX_CHECKSUM_UDP:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetAdapterOffloadSetGsoCapabilities`.
    NetAdapterOffloadSetGsoCapabilities / PFN_SETGSOCAPS = index::OFFLOAD_SET_GSO_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES);
    /// `NetOffloadIsLsoIPv4Enabled`.
    NetOffloadIsLsoIPv4Enabled / PFN_ISLSOIPV4 = index::IS_LSO_IPV4:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsLsoIPv6Enabled`.
    NetOffloadIsLsoIPv6Enabled / PFN_ISLSOIPV6 = index::IS_LSO_IPV6:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsUsoIPv4Enabled`.
    NetOffloadIsUsoIPv4Enabled / PFN_ISUSOIPV4 = index::IS_USO_IPV4:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsUsoIPv6Enabled`.
    NetOffloadIsUsoIPv6Enabled / PFN_ISUSOIPV6 = index::IS_USO_IPV6:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetAdapterOffloadSetRscCapabilities`.
    NetAdapterOffloadSetRscCapabilities / PFN_SETRSCCAPS = index::OFFLOAD_SET_RSC_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES);
    /// `NetOffloadIsTcpRscIPv4Enabled`.
    NetOffloadIsTcpRscIPv4Enabled / PFN_ISRSCIPV4 = index::IS_TCP_RSC_IPV4:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetOffloadIsTcpRscIPv6Enabled`.
    NetOffloadIsTcpRscIPv6Enabled / PFN_ISRSCIPV6 = index::IS_TCP_RSC_IPV6:
        fn(offload: NETOFFLOAD) -> BOOLEAN;
    /// `NetAdapterOffloadSetIeee8021qTagCapabilities`.
    NetAdapterOffloadSetIeee8021qTagCapabilities / PFN_SETIEEE8021QCAPS =
        index::OFFLOAD_SET_IEEE8021Q_CAPABILITIES:
        fn(adapter: NETADAPTER, caps: *const NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES);
}

/// Calls made before NetAdapterCx bound the table (on Windows it binds before DriverEntry, so
/// only the stand-in table can be empty when the glue calls): every wrapper returns its
/// [`Absent`] value instead of calling through an empty slot.
#[cfg(all(test, not(windows)))]
mod tests {
    use core::sync::atomic::Ordering;

    use super::*;

    #[test]
    fn an_unbound_table_fails_safely() {
        // Nothing in this crate's unit tests binds the table (the glue host lives in
        // vnet-harness): every slot is empty.
        assert!(mock::TABLE.iter().all(|e| e.load(Ordering::Acquire) == 0));
        let adapter = 0x1 as NETADAPTER;
        // SAFETY: an empty slot: the wrapper returns without calling anything.
        let st = unsafe { NetAdapterStart(adapter) };
        assert_eq!(st, STATUS_NOT_SUPPORTED);
        // SAFETY: as above.
        let init = unsafe { NetAdapterInitAllocate(0x1 as WDFDEVICE) };
        assert!(init.is_null());
        // SAFETY: as above.
        unsafe { NetAdapterStop(adapter) };
        // SAFETY: as above.
        let rsc = unsafe { NetOffloadIsTcpRscIPv4Enabled(0x2 as NETOFFLOAD) };
        assert_eq!(rsc, 0);
        let filter = 0x3 as NETRECEIVEFILTER;
        // SAFETY: as above.
        let flags = unsafe { NetReceiveFilterGetPacketFilter(filter) };
        assert_eq!(flags, 0);
        // SAFETY: as above.
        let count = unsafe { NetReceiveFilterGetMulticastAddressCount(filter) };
        assert_eq!(count, 0);
        // SAFETY: as above.
        let list = unsafe { NetReceiveFilterGetMulticastAddressList(filter) };
        assert!(list.is_null());
    }
}
