//! NetAdapterCx 2.2's routines, installed into the glue's function table
//! (`virtionet::kmdf::netcx::mock::TABLE`, what `netadaptercxstub.lib`'s `NetFunctions` is on
//! Windows), with the class extension's checks of each call: the always-on API checks
//! (`netcx/adapter/nxadapterapi.cpp`, `nxqueueapi.cpp`, `nxdeviceapi.cpp`) and the verifier's
//! (`netcx/adapter/verifier.cpp`; `reference/netadaptercx.md` §2.8). A violation is recorded
//! with the verifier's failure name; the class extension would bugcheck
//! (`BUGCODE_NETADAPTER_DRIVER`).
//!
//! Also here: the adapter's configuration (the registry, from the scenario's keywords), link
//! state reports, the receive-filter and offload objects of the OID-driven callbacks, and the
//! class extension's receive-scaling state (`translator/rxscaling.cpp` `RxScaling`,
//! `adapter/rxscaling/nxrxscaling.cpp` `NxRxScaling`).

use std::sync::Arc;
use std::sync::atomic::Ordering;

use netring::{ExtensionType, NetExtension, NetExtensionQuery};
use virtionet::kmdf::netcx::*;
use wdk_standin::WDF_OBJECT_ATTRIBUTES;

use super::datapath::{Dir, Queue};
use super::objects::{self, Kind};
use super::wdf::{api, create_fails};
use super::{irql, state};

fn fail(rule: &str, detail: impl Into<String>) {
    irql::violation(&format!("NetAdapterCx: {rule}"), detail.into());
}

fn check_size<T>(size: u32, what: &str) -> bool {
    let ok = size as usize == std::mem::size_of::<T>();
    if !ok {
        fail(
            "TypeSize",
            format!("{what}.Size {size}, expected {}", std::mem::size_of::<T>()),
        );
    }
    ok
}

/// What the driver declared before NetAdapterStart.
#[derive(Clone, Copy, Default)]
pub struct Declared {
    /// Link layer capabilities.
    pub link: Option<NET_ADAPTER_LINK_LAYER_CAPABILITIES>,
    /// MTU.
    pub mtu: Option<u32>,
    /// Permanent address.
    pub permanent: Option<NET_ADAPTER_LINK_LAYER_ADDRESS>,
    /// Current address.
    pub current: Option<NET_ADAPTER_LINK_LAYER_ADDRESS>,
    /// TX capabilities.
    pub tx: Option<NET_ADAPTER_TX_CAPABILITIES>,
    /// RX capabilities.
    pub rx: Option<NET_ADAPTER_RX_CAPABILITIES>,
    /// The DMA capabilities the TX capabilities point at, copied.
    pub dma: Option<NET_ADAPTER_DMA_CAPABILITIES>,
    /// Receive filter.
    pub filter: Option<NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES>,
    /// TX checksum.
    pub tx_checksum: Option<NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES>,
    /// RX checksum.
    pub rx_checksum: Option<NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES>,
    /// GSO.
    pub gso: Option<NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES>,
    /// RSC.
    pub rsc: Option<NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES>,
    /// 802.1Q flags.
    pub ieee8021q: Option<u32>,
    /// Receive scaling.
    pub rss: Option<NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES>,
}

// SAFETY: plain copies of the driver's structs (the pointers inside are only compared or read
// while the driver keeps them alive, as NetAdapterCx does).
unsafe impl Send for Declared {}

/// The class extension's receive-scaling state: the cached indirection table (queue ids), the
/// key and hash settings, `m_configured` (translator) and `m_enabled` (adapter side).
#[derive(Debug, Clone, Default)]
pub struct RxScaling {
    /// OID_GEN_RECEIVE_SCALE_INITIALIZE was handled.
    pub initialized: bool,
    /// `RxScaling::m_configured`: set by the first Configure, never cleared.
    pub configured: bool,
    /// `NxRxScaling::m_enabled`: never reset on datapath destruction.
    pub enabled: bool,
    /// The translator's `m_enabled`.
    pub translator_enabled: bool,
    /// Queue id per indirection-table index.
    pub table: Vec<u32>,
    /// Entries in use.
    pub entries: usize,
    /// The secret key.
    pub key: Vec<u8>,
    /// Hash type and protocol types last enabled.
    pub hash: (u32, u32),
    /// Queues RSS spreads over.
    pub queues: u32,
    /// (Index, Status) of each entry of the last EvtAdapterReceiveScalingSetIndirectionEntries
    /// call, as the driver left them.
    pub entry_statuses: Vec<(u32, NTSTATUS)>,
}

/// The NETADAPTER's host state.
#[derive(Default)]
pub struct AdapterRecord {
    /// The NETADAPTER (0 before creation).
    pub handle: usize,
    /// The NETADAPTER_INIT was allocated and not freed.
    pub init_live: bool,
    /// The init was used by NetAdapterCreate.
    pub init_used: bool,
    /// Datapath callbacks.
    pub datapath: Option<NET_ADAPTER_DATAPATH_CALLBACKS>,
    /// NetAdapterStart succeeded (and no NetAdapterStop since).
    pub started: bool,
    /// What was declared.
    pub declared: Declared,
    /// The capability routines whose declaration was taken, in call order (a scenario checks
    /// the glue's order against RtEthSample's).
    pub capability_calls: Vec<&'static str>,
    /// Link states reported, in order.
    pub link_states: Vec<NET_ADAPTER_LINK_STATE>,
    /// Receive scaling.
    pub rss: RxScaling,
}

// ---------------------------------------------------------------------------------------------
// Device and adapter objects.

unsafe extern "system" fn net_device_init_config(
    _: *mut NET_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
) -> NTSTATUS {
    api("NetDeviceInitConfig", || {
        if create_fails("NetDeviceInitConfig") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let s = state();
        let mut i = s.device_init.lock().unwrap_or_else(|e| e.into_inner());
        if init as usize != super::DEVICE_INIT || i.consumed {
            fail(
                "InvalidDeviceInit",
                "NetDeviceInitConfig outside EvtDriverDeviceAdd",
            );
            return STATUS_INVALID_PARAMETER;
        }
        i.netcx_configured = true;
        STATUS_SUCCESS
    })
}

unsafe extern "system" fn net_device_init_set_reset_capabilities(
    _: *mut NET_DRIVER_GLOBALS,
    init: PWDFDEVICE_INIT,
    caps: *const NET_DEVICE_RESET_CAPABILITIES,
) {
    api("NetDeviceInitSetResetCapabilities", || {
        let s = state();
        let mut i = s.device_init.lock().unwrap_or_else(|e| e.into_inner());
        if init as usize != super::DEVICE_INIT || i.consumed {
            fail(
                "InvalidDeviceInit",
                "NetDeviceInitSetResetCapabilities outside EvtDriverDeviceAdd",
            );
            return;
        }
        if !i.netcx_configured {
            i.used_before_netcx = true;
        }
        // SAFETY: the driver's capabilities, valid for the call.
        let Some(c) = (unsafe { caps.as_ref() }) else {
            fail("NullParameter", "NetDeviceInitSetResetCapabilities(NULL)");
            return;
        };
        if c.Size as usize != size_of::<NET_DEVICE_RESET_CAPABILITIES>() {
            fail("BadSize", "NET_DEVICE_RESET_CAPABILITIES.Size");
            return;
        }
        i.reset_diagnostics = c.EvtNetDeviceCollectResetDiagnostics;
    })
}

/// `NetDeviceRequestReset` (`NxDevice`, adapter/nxdevice.cpp, `reference/netadaptercx.md` §9.7):
/// on the first request only, the driver's diagnostics callback runs (it may store one blob with
/// NetDeviceStoreResetDiagnostics), then a platform-level device reset — which this host, like a
/// PCI function without the reset interface, does not have — so the fallback:
/// `WdfDeviceSetFailed(WdfDeviceFailedAttemptRestart)`.
unsafe extern "system" fn net_device_request_reset(_: *mut NET_DRIVER_GLOBALS, device: WDFDEVICE) {
    api("NetDeviceRequestReset", || {
        let s = state();
        let cb = {
            let mut d = s.device.lock().unwrap_or_else(|e| e.into_inner());
            if device as usize != d.handle || d.handle == 0 {
                fail(
                    "InvalidDevice",
                    "NetDeviceRequestReset on a handle that is no device",
                );
                return;
            }
            if std::mem::replace(&mut d.reset_requested, true) {
                return;
            }
            d.reset_diagnostics
        };
        if let Some(cb) = cb {
            s.collecting_diagnostics.store(true, Ordering::Release);
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's diagnostics callback for its own device, at PASSIVE_LEVEL.
                super::alloc::as_driver(|| unsafe { cb(device) })
            });
            s.collecting_diagnostics.store(false, Ordering::Release);
        }
        s.pnp_request(super::PnpRequest::Failed(
            wdk_standin::_WDF_DEVICE_FAILED_ACTION::WdfDeviceFailedAttemptRestart,
        ));
    })
}

unsafe extern "system" fn net_device_store_reset_diagnostics(
    _: *mut NET_DRIVER_GLOBALS,
    device: WDFDEVICE,
    size: usize,
    buffer: *const u8,
) {
    api("NetDeviceStoreResetDiagnostics", || {
        let s = state();
        if !s.collecting_diagnostics.load(Ordering::Acquire) {
            fail(
                "StoreResetDiagnosticsOutsideCollect",
                "NetDeviceStoreResetDiagnostics outside EvtNetDeviceCollectResetDiagnostics",
            );
            return;
        }
        if device as usize != s.device.lock().unwrap_or_else(|e| e.into_inner()).handle
            || buffer.is_null()
            || size == 0
        {
            fail("InvalidParameter", "NetDeviceStoreResetDiagnostics");
            return;
        }
        // SAFETY: `size` bytes at `buffer`, the driver's, valid for the call.
        let blob = unsafe { std::slice::from_raw_parts(buffer, size) }.to_vec();
        s.reset_diagnostics
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(blob);
    })
}

unsafe extern "system" fn net_adapter_init_allocate(
    _: *mut NET_DRIVER_GLOBALS,
    device: WDFDEVICE,
) -> PNETADAPTER_INIT {
    api("NetAdapterInitAllocate", || {
        if create_fails("NetAdapterInitAllocate") {
            return std::ptr::null_mut();
        }
        let s = state();
        if s.device_handle() != device as usize {
            fail("InvalidDevice", "NetAdapterInitAllocate on a stranger");
            return std::ptr::null_mut();
        }
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        a.init_live = true;
        a.init_used = false;
        a.datapath = None;
        super::ADAPTER_INIT as PNETADAPTER_INIT
    })
}

unsafe extern "system" fn net_adapter_init_free(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
) {
    api("NetAdapterInitFree", || {
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        if init as usize != super::ADAPTER_INIT || !a.init_live {
            fail(
                "InvalidAdapterInit",
                "NetAdapterInitFree of an init not allocated",
            );
            return;
        }
        a.init_live = false;
    })
}

unsafe extern "system" fn net_adapter_init_set_datapath_callbacks(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    callbacks: *const NET_ADAPTER_DATAPATH_CALLBACKS,
) {
    api("NetAdapterInitSetDatapathCallbacks", || {
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        if init as usize != super::ADAPTER_INIT || !a.init_live {
            fail("InvalidAdapterInit", "NetAdapterInitSetDatapathCallbacks");
            return;
        }
        // SAFETY: the driver's struct.
        let c = unsafe { *callbacks };
        if check_size::<NET_ADAPTER_DATAPATH_CALLBACKS>(c.Size, "NET_ADAPTER_DATAPATH_CALLBACKS") {
            if c.EvtAdapterCreateTxQueue.is_none() || c.EvtAdapterCreateRxQueue.is_none() {
                fail(
                    "DatapathCallbacks",
                    "both queue-creation callbacks are required",
                );
            }
            a.datapath = Some(c);
        }
    })
}

unsafe extern "system" fn net_adapter_create(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETADAPTER_INIT,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    adapter: *mut NETADAPTER,
) -> NTSTATUS {
    api("NetAdapterCreate", || {
        if create_fails("NetAdapterCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let s = state();
        let attributes = attributes.cast::<WDF_OBJECT_ATTRIBUTES>();
        {
            let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
            if init as usize != super::ADAPTER_INIT || !a.init_live || a.init_used {
                fail(
                    "InvalidAdapterInit",
                    "NetAdapterCreate with an init not allocated or already used",
                );
                return STATUS_INVALID_PARAMETER;
            }
            if a.datapath.is_none() {
                fail(
                    "DatapathCallbacks",
                    "NetAdapterCreate without datapath callbacks",
                );
            }
            a.init_used = true;
        }
        // SAFETY: null or the driver's attributes.
        if unsafe { attributes.as_ref() }.is_some_and(|a| !a.ParentObject.is_null()) {
            fail(
                "ParentObjectNotNull",
                "NetAdapterCreate attributes with a ParentObject",
            );
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: as above.
        let h = match unsafe { objects::create(Kind::Adapter, Some(s.device_handle()), attributes) }
        {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        s.adapter.lock().unwrap_or_else(|e| e.into_inner()).handle = h;
        // SAFETY: the out parameter.
        unsafe { *adapter = h as NETADAPTER };
        STATUS_SUCCESS
    })
}

fn adapter_ok(adapter: NETADAPTER, api: &str) -> bool {
    let ok = state().adapter_handle() == adapter as usize && adapter as usize != 0;
    if !ok {
        fail("InvalidAdapter", format!("{api} on {adapter:p}"));
    }
    ok
}

/// `Verifier_VerifyAdapterNotStarted`: most capability calls only before NetAdapterStart.
fn not_started(api: &str) -> bool {
    let started = state()
        .adapter
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .started;
    if started {
        fail(
            "AdapterAlreadyStarted",
            format!("{api} after NetAdapterStart"),
        );
    }
    !started
}

/// Records that the capability routine `api` took a declaration (in call order).
fn capability_taken(a: &mut AdapterRecord, api: &'static str) {
    a.capability_calls.push(api);
}

unsafe extern "system" fn net_adapter_start(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
) -> NTSTATUS {
    api("NetAdapterStart", || {
        if !adapter_ok(adapter, "NetAdapterStart") {
            return STATUS_INVALID_PARAMETER;
        }
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        if a.started {
            fail("AdapterAlreadyStarted", "NetAdapterStart twice");
            return STATUS_INVALID_PARAMETER;
        }
        // Always on (`nxadapter.cpp` SetGeneralAttributes): datapath caps, link-layer caps and
        // MTU are required, and the two address lengths must agree.
        let d = a.declared;
        if d.tx.is_none() || d.rx.is_none() || d.link.is_none() || d.mtu.is_none() {
            fail(
                "StartWithoutCapabilities",
                "NetAdapterStart without datapath, link-layer capabilities or MTU",
            );
            return STATUS_INVALID_PARAMETER;
        }
        if let (Some(p), Some(c)) = (d.permanent, d.current)
            && p.Length != c.Length
        {
            fail(
                "AddressLength",
                "permanent and current address lengths differ",
            );
            return STATUS_INVALID_PARAMETER;
        }
        a.started = true;
        drop(a);
        // AdapterPnpPower: if the device is already in D0, the datapath comes up now; otherwise
        // after D0 entry.
        s.pnp_request(super::PnpRequest::AdapterStarted);
        STATUS_SUCCESS
    })
}

unsafe extern "system" fn net_adapter_stop(_: *mut NET_DRIVER_GLOBALS, adapter: NETADAPTER) {
    api("NetAdapterStop", || {
        if !adapter_ok(adapter, "NetAdapterStop") {
            return;
        }
        let s = state();
        let was = std::mem::replace(
            &mut s.adapter.lock().unwrap_or_else(|e| e.into_inner()).started,
            false,
        );
        if was {
            // Stops the datapath if it runs (it does not by ReleaseHardware: D0 exit tore it
            // down).
            s.stop_adapter_datapath();
        }
    })
}

macro_rules! declare_fn {
    ($name:ident, $api:literal, $ty:ty, $field:ident, $check:expr) => {
        unsafe extern "system" fn $name(
            _: *mut NET_DRIVER_GLOBALS,
            adapter: NETADAPTER,
            caps: *const $ty,
        ) {
            api($api, || {
                if !adapter_ok(adapter, $api) || !not_started($api) || caps.is_null() {
                    return;
                }
                // SAFETY: the driver's initialised struct.
                let c = unsafe { *caps };
                if !check_size::<$ty>(c.Size, stringify!($ty)) {
                    return;
                }
                #[allow(clippy::redundant_closure_call)]
                ($check)(&c);
                let s = state();
                let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
                a.declared.$field = Some(c);
                capability_taken(&mut a, $api);
            })
        }
    };
}

declare_fn!(
    net_adapter_set_link_layer_capabilities,
    "NetAdapterSetLinkLayerCapabilities",
    NET_ADAPTER_LINK_LAYER_CAPABILITIES,
    link,
    |_c: &NET_ADAPTER_LINK_LAYER_CAPABILITIES| {}
);

unsafe extern "system" fn net_adapter_set_link_layer_mtu_size(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    mtu: u32,
) {
    api("NetAdapterSetLinkLayerMtuSize", || {
        if !adapter_ok(adapter, "NetAdapterSetLinkLayerMtuSize") {
            return;
        }
        if mtu == 0 {
            fail("MtuZero", "NetAdapterSetLinkLayerMtuSize(0)");
            return;
        }
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        a.declared.mtu = Some(mtu);
        capability_taken(&mut a, "NetAdapterSetLinkLayerMtuSize");
    })
}

fn address_ok(a: &NET_ADAPTER_LINK_LAYER_ADDRESS) -> bool {
    let ok = a.Length <= 32;
    if !ok {
        fail(
            "AddressLength",
            format!("link-layer address Length {}", a.Length),
        );
    }
    ok
}

unsafe extern "system" fn net_adapter_set_permanent_link_layer_address(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    address: *const NET_ADAPTER_LINK_LAYER_ADDRESS,
) {
    api("NetAdapterSetPermanentLinkLayerAddress", || {
        if !adapter_ok(adapter, "NetAdapterSetPermanentLinkLayerAddress")
            || !not_started("NetAdapterSetPermanentLinkLayerAddress")
        {
            return;
        }
        // SAFETY: the driver's struct.
        let a = unsafe { *address };
        if address_ok(&a) {
            let s = state();
            let mut r = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
            r.declared.permanent = Some(a);
            capability_taken(&mut r, "NetAdapterSetPermanentLinkLayerAddress");
        }
    })
}

unsafe extern "system" fn net_adapter_set_current_link_layer_address(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    address: *const NET_ADAPTER_LINK_LAYER_ADDRESS,
) {
    api("NetAdapterSetCurrentLinkLayerAddress", || {
        if !adapter_ok(adapter, "NetAdapterSetCurrentLinkLayerAddress") {
            return;
        }
        // SAFETY: the driver's struct.
        let a = unsafe { *address };
        if address_ok(&a) {
            let s = state();
            let mut r = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
            r.declared.current = Some(a);
            capability_taken(&mut r, "NetAdapterSetCurrentLinkLayerAddress");
        }
    })
}

fn pow2_or_zero(v: u64) -> bool {
    v == 0 || v.is_power_of_two()
}

unsafe extern "system" fn net_adapter_set_datapath_capabilities(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    tx: *const NET_ADAPTER_TX_CAPABILITIES,
    rx: *const NET_ADAPTER_RX_CAPABILITIES,
) {
    api("NetAdapterSetDataPathCapabilities", || {
        let name = "NetAdapterSetDataPathCapabilities";
        if !adapter_ok(adapter, name) || !not_started(name) {
            return;
        }
        // SAFETY: the driver's struct.
        let t = unsafe { *tx };
        // SAFETY: as above.
        let r = unsafe { *rx };
        if !check_size::<NET_ADAPTER_TX_CAPABILITIES>(t.Size, "NET_ADAPTER_TX_CAPABILITIES")
            || !check_size::<NET_ADAPTER_RX_CAPABILITIES>(r.Size, "NET_ADAPTER_RX_CAPABILITIES")
        {
            return;
        }
        if t.MaximumNumberOfQueues == 0 || r.MaximumNumberOfQueues == 0 {
            fail("MaximumNumberOfQueues", "0 queues");
        }
        if !t.FragmentBufferAlignment.is_power_of_two() {
            fail("FragmentBufferAlignment", "not 1 or a power of two");
        }
        if !pow2_or_zero(u64::from(t.FragmentRingNumberOfElementsHint))
            || !pow2_or_zero(u64::from(r.FragmentRingNumberOfElementsHint))
        {
            fail(
                "FragmentRingNumberOfElementsHint",
                "not 0 or a power of two",
            );
        }
        let mut dma = None;
        if t.MappingRequirement == MAPPING_DMA_MAPPED {
            // SAFETY: when set, the driver's DMA capabilities (it keeps them alive).
            let d = (!t.DmaCapabilities.is_null()).then(|| unsafe { *t.DmaCapabilities });
            match d {
                Some(d) if !d.DmaEnabler.is_null() => {
                    check_size::<NET_ADAPTER_DMA_CAPABILITIES>(
                        d.Size,
                        "NET_ADAPTER_DMA_CAPABILITIES",
                    );
                    let s = state();
                    let e = s.enablers.lock().unwrap_or_else(|e| e.into_inner());
                    match e.get(&(d.DmaEnabler as usize)) {
                        Some(en) if en.config.WdmDmaVersionOverride == 3 => {}
                        Some(_) => fail(
                            "DmaVersion",
                            "DMA mapping needs a DMA v3 enabler (WdmDmaVersionOverride = 3)",
                        ),
                        None => fail("DmaEnabler", "DmaEnabler is not an enabler of this device"),
                    }
                    dma = Some(d);
                }
                _ => fail("DmaCapabilities", "DMA mapping without a DMA enabler"),
            }
        }
        if r.AllocationMode == RX_MODE_DRIVER {
            if r.AttachmentMode != RX_MODE_DRIVER {
                fail("RxBufferMode", "driver allocation needs driver attachment");
            }
            // SAFETY: in driver mode the union holds the callback.
            if unsafe { r.u.EvtAdapterReturnRxBuffer }.is_none() {
                fail(
                    "RxBufferMode",
                    "driver allocation without EvtAdapterReturnRxBuffer (FailureCode 33)",
                );
            }
        }
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        a.declared.tx = Some(t);
        a.declared.rx = Some(r);
        a.declared.dma = dma;
        capability_taken(&mut a, name);
    })
}

declare_fn!(
    net_adapter_set_receive_filter_capabilities,
    "NetAdapterSetReceiveFilterCapabilities",
    NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES,
    filter,
    |c: &NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES| {
        let known = packet_filter::DIRECTED
            | packet_filter::MULTICAST
            | packet_filter::ALL_MULTICAST
            | packet_filter::BROADCAST
            | packet_filter::PROMISCUOUS;
        if c.SupportedPacketFilters & !known != 0 {
            fail("ReceiveFilterFlags", "a flag outside the five defined ones");
        }
        if c.SupportedPacketFilters != 0 && c.EvtSetReceiveFilter.is_none() {
            fail(
                "ReceiveFilterCallback",
                "filters without EvtSetReceiveFilter",
            );
        }
        if (c.SupportedPacketFilters & packet_filter::MULTICAST != 0)
            != (c.MaximumMulticastAddresses > 0)
        {
            fail(
                "ReceiveFilterMulticast",
                "the Multicast flag and MaximumMulticastAddresses > 0 go together",
            );
        }
        if c.SupportedPacketFilters == 0 && c.MaximumMulticastAddresses == 0 {
            fail("ReceiveFilterEmpty", "both zero");
        }
    }
);

declare_fn!(
    net_adapter_offload_set_tx_checksum_capabilities,
    "NetAdapterOffloadSetTxChecksumCapabilities",
    NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES,
    tx_checksum,
    |c: &NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES| {
        if c.EvtAdapterOffloadSetTxChecksum.is_none() {
            fail("OffloadCallback", "TX checksum without its callback");
        }
        if c.Layer4Flags & l4::TCP_WITH_OPTIONS != 0 && c.Layer4Flags & l4::TCP_NO_OPTIONS == 0 {
            fail(
                "OffloadFlags",
                "TX checksum TcpWithOptions without TcpNoOptions",
            );
        }
    }
);

declare_fn!(
    net_adapter_offload_set_rx_checksum_capabilities,
    "NetAdapterOffloadSetRxChecksumCapabilities",
    NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES,
    rx_checksum,
    |c: &NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES| {
        if c.EvtAdapterOffloadSetRxChecksum.is_none() {
            fail("OffloadCallback", "RX checksum without its callback");
        }
    }
);

declare_fn!(
    net_adapter_offload_set_gso_capabilities,
    "NetAdapterOffloadSetGsoCapabilities",
    NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES,
    gso,
    |c: &NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES| {
        if c.Layer3Flags == 0 || c.Layer4Flags == 0 {
            fail("OffloadFlags", "GSO without L3/L4 flags");
        }
        if c.MaximumOffloadSize == 0 || c.MinimumSegmentCount == 0 {
            fail(
                "OffloadFlags",
                "GSO MaximumOffloadSize or MinimumSegmentCount 0",
            );
        }
        if c.Layer4Flags & l4::TCP_WITH_OPTIONS != 0 && c.Layer4Flags & l4::TCP_NO_OPTIONS == 0 {
            fail("OffloadFlags", "GSO TcpWithOptions without TcpNoOptions");
        }
        if c.EvtAdapterOffloadSetGso.is_none() {
            fail("OffloadCallback", "GSO without its callback");
        }
    }
);

declare_fn!(
    net_adapter_offload_set_rsc_capabilities,
    "NetAdapterOffloadSetRscCapabilities",
    NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES,
    rsc,
    |c: &NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES| {
        if c.Layer3Flags & !(l3::IPV4_NO_OPTIONS | l3::IPV6_NO_EXTENSIONS) != 0 {
            fail("OffloadFlags", "RSC layer-3 flags");
        }
        if c.Layer4Flags & !(l4::TCP_NO_OPTIONS | l4::UDP) != 0 {
            fail("OffloadFlags", "RSC layer-4 flags");
        }
        if c.EvtAdapterOffloadSetRsc.is_none() {
            fail("OffloadCallback", "RSC without its callback");
        }
    }
);

unsafe extern "system" fn net_adapter_offload_set_ieee8021q_tag_capabilities(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    caps: *const NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES,
) {
    api("NetAdapterOffloadSetIeee8021qTagCapabilities", || {
        let name = "NetAdapterOffloadSetIeee8021qTagCapabilities";
        if !adapter_ok(adapter, name) || !not_started(name) {
            return;
        }
        // SAFETY: the driver's struct.
        let c = unsafe { *caps };
        if !check_size::<NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES>(c.Size, "IEEE8021Q") {
            return;
        }
        if c.Flags & !3 != 0 {
            fail("OffloadFlags", "802.1Q flags");
        }
        let s = state();
        let mut a = s.adapter.lock().unwrap_or_else(|e| e.into_inner());
        a.declared.ieee8021q = Some(c.Flags);
        capability_taken(&mut a, name);
    })
}

declare_fn!(
    net_adapter_set_receive_scaling_capabilities,
    "NetAdapterSetReceiveScalingCapabilities",
    NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
    rss,
    |c: &NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES| {
        // Verifier_VerifyReceiveScalingCapabilities: FailureCode_NotPowerOfTwo (26) → 0x19E.
        if !c.NumberOfQueues.is_power_of_two() || !c.IndirectionTableSize.is_power_of_two() {
            fail(
                "NotPowerOfTwo",
                format!(
                    "receive scaling NumberOfQueues {} / IndirectionTableSize {} (bugcheck 0x19E, \
                     code 26)",
                    c.NumberOfQueues, c.IndirectionTableSize
                ),
            );
        }
        // `reference/netadaptercx.md` §4.2: IndirectionTableSize is a power of two of at least
        // 128 (NDIS_RSS_INDIRECTION_TABLE_MAX_SIZE_REVISION_1, what
        // NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES_INIT sets; the translator's indirection
        // entries are 128-entry arrays, `translator/rxscaling.hpp` TranslatedIndirectionEntries).
        // `Verifier_VerifyReceiveScalingCapabilities` checks only the power of two: a documented
        // rule, not one the 21H2 verifier bugchecks on.
        if c.IndirectionTableSize < 128 {
            fail(
                "IndirectionTableSize",
                format!(
                    "receive scaling IndirectionTableSize {} below 128",
                    c.IndirectionTableSize
                ),
            );
        }
        if c.ReceiveScalingHashTypes > 1 || c.UnhashedTargetType > 1 {
            fail(
                "ReceiveScalingTypes",
                "hash or unhashed-target type out of range",
            );
        }
        if c.ReceiveScalingProtocolTypes & !0x3f != 0
            || c.EncapsulationOuter | c.EncapsulationInner > 7
        {
            fail(
                "ReceiveScalingTypes",
                "protocol or encapsulation flags out of range",
            );
        }
        if c.EvtAdapterReceiveScalingEnable.is_none()
            || c.EvtAdapterReceiveScalingDisable.is_none()
            || c.EvtAdapterReceiveScalingSetHashSecretKey.is_none()
            || c.EvtAdapterReceiveScalingSetIndirectionEntries.is_none()
        {
            fail(
                "ReceiveScalingCallbacks",
                "a receive-scaling callback is missing",
            );
        }
    }
);

unsafe extern "system" fn net_adapter_set_link_state(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    link: *const NET_ADAPTER_LINK_STATE,
) {
    api("NetAdapterSetLinkState", || {
        if !adapter_ok(adapter, "NetAdapterSetLinkState") {
            return;
        }
        // SAFETY: the driver's struct.
        let l = unsafe { *link };
        if !check_size::<NET_ADAPTER_LINK_STATE>(l.Size, "NET_ADAPTER_LINK_STATE") {
            return;
        }
        if l.MediaConnectState > 2
            || l.MediaDuplexState > 2
            || l.SupportedPauseFunctions > 4
            || l.AutoNegotiationFlags & !0xf != 0
        {
            fail("LinkState", format!("{l:?}"));
        }
        state()
            .adapter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .link_states
            .push(l);
    })
}

// ---------------------------------------------------------------------------------------------
// Configuration (the registry).

unsafe extern "system" fn net_adapter_open_configuration(
    _: *mut NET_DRIVER_GLOBALS,
    adapter: NETADAPTER,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    configuration: *mut NETCONFIGURATION,
) -> NTSTATUS {
    api("NetAdapterOpenConfiguration", || {
        if !adapter_ok(adapter, "NetAdapterOpenConfiguration") {
            return STATUS_INVALID_PARAMETER;
        }
        if create_fails("NetAdapterOpenConfiguration") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let attributes = attributes.cast::<WDF_OBJECT_ATTRIBUTES>();
        // SAFETY: null or the driver's attributes.
        if unsafe { attributes.as_ref() }.is_some_and(|a| !a.ParentObject.is_null()) {
            fail("ParentObjectNotNull", "NetAdapterOpenConfiguration");
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: as above.
        match unsafe { objects::create(Kind::Configuration, Some(adapter as usize), attributes) } {
            Ok(h) => {
                // SAFETY: the out parameter.
                unsafe { *configuration = h as NETCONFIGURATION };
                STATUS_SUCCESS
            }
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                STATUS_INVALID_PARAMETER
            }
        }
    })
}

fn configuration_ok(c: NETCONFIGURATION, api: &str) -> bool {
    let ok = objects::kind(c as usize) == Some(Kind::Configuration);
    if !ok {
        fail("InvalidConfiguration", format!("{api} on {c:p}"));
    }
    ok
}

unsafe extern "system" fn net_configuration_close(_: *mut NET_DRIVER_GLOBALS, c: NETCONFIGURATION) {
    api("NetConfigurationClose", || {
        if configuration_ok(c, "NetConfigurationClose") {
            super::wdf::delete_object(c as usize);
        }
    })
}

/// `STATUS_OBJECT_NAME_NOT_FOUND`.
const STATUS_OBJECT_NAME_NOT_FOUND: NTSTATUS = 0xC000_0034_u32 as i32;

fn name_of(name: *const UNICODE_STRING) -> String {
    // SAFETY: the driver's counted string.
    let u = unsafe { *name };
    // SAFETY: `Length` bytes of UTF-16 at `Buffer`.
    let w = unsafe { std::slice::from_raw_parts(u.Buffer, usize::from(u.Length) / 2) };
    String::from_utf16_lossy(w)
}

unsafe extern "system" fn net_configuration_query_ulong(
    _: *mut NET_DRIVER_GLOBALS,
    c: NETCONFIGURATION,
    _flags: u32,
    name: *const UNICODE_STRING,
    value: *mut u32,
) -> NTSTATUS {
    api("NetConfigurationQueryUlong", || {
        if !configuration_ok(c, "NetConfigurationQueryUlong") {
            return STATUS_INVALID_PARAMETER;
        }
        let n = name_of(name);
        // Keywords are REG_SZ values: QueryUlong reads them as numbers.
        match state().registry_value(&n) {
            Some(v) => match v.trim().parse::<u32>() {
                Ok(x) => {
                    // SAFETY: the out parameter.
                    unsafe { *value = x };
                    STATUS_SUCCESS
                }
                Err(_) => STATUS_INVALID_PARAMETER,
            },
            None => STATUS_OBJECT_NAME_NOT_FOUND,
        }
    })
}

/// Writes the value into the adapter's registry key, where it stays across restarts of the
/// stack (the software key lives as long as the device is installed); QueryUlong reads it back.
unsafe extern "system" fn net_configuration_assign_ulong(
    _: *mut NET_DRIVER_GLOBALS,
    c: NETCONFIGURATION,
    name: *const UNICODE_STRING,
    value: u32,
) -> NTSTATUS {
    api("NetConfigurationAssignUlong", || {
        if !configuration_ok(c, "NetConfigurationAssignUlong") {
            return STATUS_INVALID_PARAMETER;
        }
        state().registry_assign(&name_of(name), value.to_string());
        STATUS_SUCCESS
    })
}

unsafe extern "system" fn net_configuration_query_link_layer_address(
    _: *mut NET_DRIVER_GLOBALS,
    c: NETCONFIGURATION,
    address: *mut NET_ADAPTER_LINK_LAYER_ADDRESS,
) -> NTSTATUS {
    api("NetConfigurationQueryLinkLayerAddress", || {
        if !configuration_ok(c, "NetConfigurationQueryLinkLayerAddress") {
            return STATUS_INVALID_PARAMETER;
        }
        let Some(v) = state().registry_value("NetworkAddress") else {
            return STATUS_OBJECT_NAME_NOT_FOUND;
        };
        let hex: String = v.chars().filter(|c| !matches!(c, '-' | ':')).collect();
        if hex.len() != 12 {
            return STATUS_INVALID_PARAMETER;
        }
        let mut mac = [0u8; 6];
        for (i, m) in mac.iter_mut().enumerate() {
            match u8::from_str_radix(&hex[2 * i..2 * i + 2], 16) {
                Ok(b) => *m = b,
                Err(_) => return STATUS_INVALID_PARAMETER,
            }
        }
        // SAFETY: the out parameter.
        unsafe { *address = NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(mac) };
        STATUS_SUCCESS
    })
}

// ---------------------------------------------------------------------------------------------
// Queues.

unsafe extern "system" fn net_tx_queue_init_get_queue_id(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETTXQUEUE_INIT,
) -> u32 {
    api("NetTxQueueInitGetQueueId", || {
        state()
            .queue_init(init as usize, Dir::Tx)
            .map_or(0, |i| i.id)
    })
}

unsafe extern "system" fn net_rx_queue_init_get_queue_id(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETRXQUEUE_INIT,
) -> u32 {
    api("NetRxQueueInitGetQueueId", || {
        state()
            .queue_init(init as usize, Dir::Rx)
            .map_or(0, |i| i.id)
    })
}

fn queue_create(
    dir: Dir,
    init: usize,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    config: *const NET_PACKET_QUEUE_CONFIG,
    queue: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    let s = state();
    let Some(i) = s.queue_init(init, dir) else {
        return STATUS_INVALID_PARAMETER;
    };
    if i.used {
        fail("QueueInitUsed", "one queue per init object");
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the driver's config.
    let c = unsafe { *config };
    // Verifier_VerifyNetPacketQueueConfiguration: Size of the client's version (2.2: 56).
    if !check_size::<NET_PACKET_QUEUE_CONFIG>(c.Size, "NET_PACKET_QUEUE_CONFIG") {
        return STATUS_INVALID_PARAMETER;
    }
    if c.ExecutionContext.is_null()
        && (c.EvtAdvance.is_none()
            || c.EvtCancel.is_none()
            || c.EvtSetNotificationEnabled.is_none())
    {
        fail(
            "QueueConfiguration",
            "without an execution context, Advance, Cancel and SetNotificationEnabled are required",
        );
        return STATUS_INVALID_PARAMETER;
    }
    let attributes = attributes.cast::<WDF_OBJECT_ATTRIBUTES>();
    // SAFETY: null or the driver's attributes.
    if unsafe { attributes.as_ref() }.is_some_and(|a| !a.ParentObject.is_null()) {
        fail(
            "ParentObjectNotNull",
            "queue attributes with a ParentObject",
        );
        return STATUS_INVALID_PARAMETER;
    }
    let adapter = s.adapter_handle();
    // SAFETY: as above.
    let h = match unsafe { objects::create(Kind::Queue, Some(adapter), attributes) } {
        Ok(h) => h,
        Err(e) => {
            irql::violation("ObjectAttributes", e);
            return STATUS_INVALID_PARAMETER;
        }
    };
    let (reg, hint) = s.registration(dir);
    let q = Queue::new(h, dir, i.id, c, &reg, hint, &mut s.rng());
    s.add_queue(q);
    s.use_queue_init(init);
    // SAFETY: the out parameter.
    unsafe { *queue = h as NETPACKETQUEUE };
    STATUS_SUCCESS
}

unsafe extern "system" fn net_tx_queue_create(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETTXQUEUE_INIT,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    config: *const NET_PACKET_QUEUE_CONFIG,
    queue: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    api("NetTxQueueCreate", || {
        if create_fails("NetTxQueueCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        queue_create(Dir::Tx, init as usize, attributes, config, queue)
    })
}

unsafe extern "system" fn net_rx_queue_create(
    _: *mut NET_DRIVER_GLOBALS,
    init: PNETRXQUEUE_INIT,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    config: *const NET_PACKET_QUEUE_CONFIG,
    queue: *mut NETPACKETQUEUE,
) -> NTSTATUS {
    api("NetRxQueueCreate", || {
        if create_fails("NetRxQueueCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        queue_create(Dir::Rx, init as usize, attributes, config, queue)
    })
}

fn find_queue(q: NETPACKETQUEUE, api: &str) -> Option<Arc<Queue>> {
    let r = state().queue_by_handle(q as usize);
    if r.is_none() {
        fail("InvalidQueue", format!("{api} on {q:p}"));
    }
    r
}

unsafe extern "system" fn net_tx_queue_get_ring_collection(
    _: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) -> *const netring::NetRingCollection {
    api("NetTxQueueGetRingCollection", || {
        find_queue(q, "NetTxQueueGetRingCollection").map_or(std::ptr::null(), |q| q.collection())
    })
}

unsafe extern "system" fn net_rx_queue_get_ring_collection(
    _: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
) -> *const netring::NetRingCollection {
    api("NetRxQueueGetRingCollection", || {
        find_queue(q, "NetRxQueueGetRingCollection").map_or(std::ptr::null(), |q| q.collection())
    })
}

fn get_extension(q: NETPACKETQUEUE, query: *const NetExtensionQuery, out: *mut NetExtension) {
    let Some(q) = find_queue(q, "NetQueueGetExtension") else {
        return;
    };
    // SAFETY: the driver's query.
    let qr = unsafe { &*query };
    if qr.size as usize != std::mem::size_of::<NetExtensionQuery>() {
        fail("ExtensionQuerySize", format!("{}", qr.size));
    }
    if qr.version == 0 || qr.name.is_null() {
        fail("ExtensionQuery", "empty name or version 0");
    }
    let mut n = 0;
    // SAFETY: the driver's NUL-terminated UTF-16 name (read up to its NUL).
    while unsafe { *qr.name.wrapping_add(n) } != 0 {
        n += 1;
    }
    // SAFETY: as above, `n + 1` elements including the NUL.
    let name = unsafe { std::slice::from_raw_parts(qr.name, n + 1) };
    let ty = match qr.ty {
        1 => ExtensionType::Packet,
        2 => ExtensionType::Fragment,
        _ => {
            fail("ExtensionQuery", format!("type {}", qr.ty));
            return;
        }
    };
    // "zero the whole NET_EXTENSION first" (Queue::GetExtension).
    let e = q.get_extension(name, qr.version, ty);
    // SAFETY: the driver's out struct.
    unsafe { out.write(e) };
}

unsafe extern "system" fn net_tx_queue_get_extension(
    _: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
    query: *const NetExtensionQuery,
    out: *mut NetExtension,
) {
    api("NetTxQueueGetExtension", || get_extension(q, query, out))
}

unsafe extern "system" fn net_rx_queue_get_extension(
    _: *mut NET_DRIVER_GLOBALS,
    q: NETPACKETQUEUE,
    query: *const NetExtensionQuery,
    out: *mut NetExtension,
) {
    api("NetRxQueueGetExtension", || get_extension(q, query, out))
}

unsafe extern "system" fn net_tx_queue_notify(_: *mut NET_DRIVER_GLOBALS, q: NETPACKETQUEUE) {
    api("NetTxQueueNotifyMoreCompletedPacketsAvailable", || {
        if let Some(q) = find_queue(q, "NetTxQueueNotifyMoreCompletedPacketsAvailable") {
            q.notify();
        }
    })
}

unsafe extern "system" fn net_rx_queue_notify(_: *mut NET_DRIVER_GLOBALS, q: NETPACKETQUEUE) {
    api("NetRxQueueNotifyMoreReceivedPacketsAvailable", || {
        if let Some(q) = find_queue(q, "NetRxQueueNotifyMoreReceivedPacketsAvailable") {
            q.notify();
        }
    })
}

// ---------------------------------------------------------------------------------------------
// Receive filter and offload objects (valid only inside their callbacks).

fn filter_ok(f: NETRECEIVEFILTER, api: &str) -> bool {
    let s = state();
    let g = s.receive_filter.lock().unwrap_or_else(|e| e.into_inner());
    let ok = g
        .as_ref()
        .is_some_and(|c| c.handle == f as usize && c.thread == std::thread::current().id());
    if !ok {
        fail(
            "SetReceiveFilterFromWrongThread",
            format!("{api} outside EvtNetAdapterSetReceiveFilter's thread"),
        );
    }
    ok
}

unsafe extern "system" fn net_receive_filter_get_packet_filter(
    _: *mut NET_DRIVER_GLOBALS,
    f: NETRECEIVEFILTER,
) -> u32 {
    api("NetReceiveFilterGetPacketFilter", || {
        if !filter_ok(f, "NetReceiveFilterGetPacketFilter") {
            return 0;
        }
        state()
            .receive_filter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.packet_filter)
    })
}

unsafe extern "system" fn net_receive_filter_get_multicast_address_count(
    _: *mut NET_DRIVER_GLOBALS,
    f: NETRECEIVEFILTER,
) -> usize {
    api("NetReceiveFilterGetMulticastAddressCount", || {
        if !filter_ok(f, "NetReceiveFilterGetMulticastAddressCount") {
            return 0;
        }
        state()
            .receive_filter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(0, |c| c.multicast.len())
    })
}

unsafe extern "system" fn net_receive_filter_get_multicast_address_list(
    _: *mut NET_DRIVER_GLOBALS,
    f: NETRECEIVEFILTER,
) -> *const NET_ADAPTER_LINK_LAYER_ADDRESS {
    api("NetReceiveFilterGetMulticastAddressList", || {
        if !filter_ok(f, "NetReceiveFilterGetMulticastAddressList") {
            return std::ptr::null();
        }
        state()
            .receive_filter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .as_ref()
            .map_or(std::ptr::null(), |c| c.multicast.as_ptr())
    })
}

macro_rules! offload_is {
    ($name:ident, $api:literal, $field:ident) => {
        unsafe extern "system" fn $name(_: *mut NET_DRIVER_GLOBALS, o: NETOFFLOAD) -> BOOLEAN {
            api($api, || {
                let s = state();
                let g = s.offload.lock().unwrap_or_else(|e| e.into_inner());
                match g.as_ref() {
                    Some(c) if c.handle == o as usize => u8::from(c.enabled.$field),
                    _ => {
                        drop(g);
                        fail(
                            "InvalidOffload",
                            concat!($api, " outside an offload callback"),
                        );
                        0
                    }
                }
            })
        }
    };
}

offload_is!(is_tx_ipv4, "NetOffloadIsTxChecksumIPv4Enabled", tx_ipv4);
offload_is!(is_tx_tcp, "NetOffloadIsTxChecksumTcpEnabled", tx_tcp);
offload_is!(is_tx_udp, "NetOffloadIsTxChecksumUdpEnabled", tx_udp);
offload_is!(is_rx_ipv4, "NetOffloadIsRxChecksumIPv4Enabled", rx_ipv4);
offload_is!(is_rx_tcp, "NetOffloadIsRxChecksumTcpEnabled", rx_tcp);
offload_is!(is_rx_udp, "NetOffloadIsRxChecksumUdpEnabled", rx_udp);
offload_is!(is_lso4, "NetOffloadIsLsoIPv4Enabled", lso4);
offload_is!(is_lso6, "NetOffloadIsLsoIPv6Enabled", lso6);
offload_is!(is_uso4, "NetOffloadIsUsoIPv4Enabled", uso4);
offload_is!(is_uso6, "NetOffloadIsUsoIPv6Enabled", uso6);
offload_is!(is_rsc4, "NetOffloadIsTcpRscIPv4Enabled", rsc4);
offload_is!(is_rsc6, "NetOffloadIsTcpRscIPv6Enabled", rsc6);

/// The offloads the OS has enabled (what an OID_TCP_OFFLOAD_PARAMETERS sets).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OffloadState {
    /// TX IPv4 header checksum.
    pub tx_ipv4: bool,
    /// TX TCP checksum.
    pub tx_tcp: bool,
    /// TX UDP checksum.
    pub tx_udp: bool,
    /// RX IPv4 header checksum.
    pub rx_ipv4: bool,
    /// RX TCP checksum.
    pub rx_tcp: bool,
    /// RX UDP checksum.
    pub rx_udp: bool,
    /// LSO IPv4.
    pub lso4: bool,
    /// LSO IPv6.
    pub lso6: bool,
    /// USO IPv4.
    pub uso4: bool,
    /// USO IPv6.
    pub uso6: bool,
    /// RSC IPv4.
    pub rsc4: bool,
    /// RSC IPv6.
    pub rsc6: bool,
}

impl OffloadState {
    /// Everything on.
    pub const ALL: Self = Self {
        tx_ipv4: true,
        tx_tcp: true,
        tx_udp: true,
        rx_ipv4: true,
        rx_tcp: true,
        rx_udp: true,
        lso4: true,
        lso6: true,
        uso4: true,
        uso6: true,
        rsc4: true,
        rsc6: true,
    };
}

/// A NETOFFLOAD during an offload callback.
pub struct OffloadCall {
    /// Its handle.
    pub handle: usize,
    /// What it says.
    pub enabled: OffloadState,
}

/// A NETRECEIVEFILTER during EvtSetReceiveFilter.
pub struct FilterCall {
    /// Its handle.
    pub handle: usize,
    /// The thread running the callback.
    pub thread: std::thread::ThreadId,
    /// `NET_PACKET_FILTER_FLAGS`.
    pub packet_filter: u32,
    /// The whole multicast list.
    pub multicast: Vec<NET_ADAPTER_LINK_LAYER_ADDRESS>,
}

/// Installs `f` at table index `i`, coerced to the glue's own type for that entry (so a host
/// routine whose signature differs from the API's does not compile).
macro_rules! slots {
    ($($i:expr => $pfn:ident = $f:ident;)*) => {$({
        let f: $pfn = $f;
        mock::TABLE[$i].store(f as usize, Ordering::Release);
    })*};
}

/// Installs every NetAdapterCx routine the glue calls.
pub fn install() {
    for e in mock::TABLE.iter() {
        e.store(0, Ordering::Release);
    }
    slots! {
        index::DEVICE_INIT_CONFIG => PFN_NETDEVICEINITCONFIG = net_device_init_config;
        index::ADAPTER_INIT_ALLOCATE => PFN_NETADAPTERINITALLOCATE = net_adapter_init_allocate;
        index::ADAPTER_INIT_FREE => PFN_NETADAPTERINITFREE = net_adapter_init_free;
        index::ADAPTER_INIT_SET_DATAPATH_CALLBACKS =>
            PFN_NETADAPTERINITSETDATAPATHCALLBACKS = net_adapter_init_set_datapath_callbacks;
        index::ADAPTER_CREATE => PFN_NETADAPTERCREATE = net_adapter_create;
        index::ADAPTER_START => PFN_NETADAPTERSTART = net_adapter_start;
        index::ADAPTER_STOP => PFN_NETADAPTERSTOP = net_adapter_stop;
        index::SET_LINK_LAYER_CAPABILITIES =>
            PFN_NETADAPTERSETLINKLAYERCAPABILITIES = net_adapter_set_link_layer_capabilities;
        index::SET_LINK_LAYER_MTU_SIZE =>
            PFN_NETADAPTERSETLINKLAYERMTUSIZE = net_adapter_set_link_layer_mtu_size;
        index::SET_DATAPATH_CAPABILITIES =>
            PFN_NETADAPTERSETDATAPATHCAPABILITIES = net_adapter_set_datapath_capabilities;
        index::SET_LINK_STATE => PFN_NETADAPTERSETLINKSTATE = net_adapter_set_link_state;
        index::ADAPTER_OPEN_CONFIGURATION =>
            PFN_NETADAPTEROPENCONFIGURATION = net_adapter_open_configuration;
        index::SET_PERMANENT_ADDRESS =>
            PFN_NETADAPTERSETPERMANENTLINKLAYERADDRESS = net_adapter_set_permanent_link_layer_address;
        index::SET_CURRENT_ADDRESS =>
            PFN_NETADAPTERSETCURRENTLINKLAYERADDRESS = net_adapter_set_current_link_layer_address;
        index::CONFIGURATION_CLOSE => PFN_NETCONFIGURATIONCLOSE = net_configuration_close;
        index::CONFIGURATION_QUERY_ULONG =>
            PFN_NETCONFIGURATIONQUERYULONG = net_configuration_query_ulong;
        index::CONFIGURATION_QUERY_LINK_LAYER_ADDRESS =>
            PFN_NETCONFIGURATIONQUERYLINKLAYERADDRESS = net_configuration_query_link_layer_address;
        index::CONFIGURATION_ASSIGN_ULONG =>
            PFN_NETCONFIGURATIONASSIGNULONG = net_configuration_assign_ulong;
        index::DEVICE_INIT_SET_RESET_CAPABILITIES =>
            PFN_NETDEVICEINITSETRESETCAPABILITIES = net_device_init_set_reset_capabilities;
        index::DEVICE_STORE_RESET_DIAGNOSTICS =>
            PFN_NETDEVICESTORERESETDIAGNOSTICS = net_device_store_reset_diagnostics;
        index::DEVICE_REQUEST_RESET => PFN_NETDEVICEREQUESTRESET = net_device_request_reset;
        index::SET_RECEIVE_SCALING_CAPABILITIES =>
            PFN_NETADAPTERSETRECEIVESCALINGCAPABILITIES = net_adapter_set_receive_scaling_capabilities;
        index::RX_QUEUE_CREATE => PFN_NETRXQUEUECREATE = net_rx_queue_create;
        index::RX_QUEUE_NOTIFY => PFN_NETRXQUEUENOTIFY = net_rx_queue_notify;
        index::RX_QUEUE_INIT_GET_QUEUE_ID =>
            PFN_NETRXQUEUEINITGETQUEUEID = net_rx_queue_init_get_queue_id;
        index::RX_QUEUE_GET_RING_COLLECTION =>
            PFN_NETRXQUEUEGETRINGCOLLECTION = net_rx_queue_get_ring_collection;
        index::RX_QUEUE_GET_EXTENSION => PFN_NETRXQUEUEGETEXTENSION = net_rx_queue_get_extension;
        index::TX_QUEUE_CREATE => PFN_NETTXQUEUECREATE = net_tx_queue_create;
        index::TX_QUEUE_NOTIFY => PFN_NETTXQUEUENOTIFY = net_tx_queue_notify;
        index::TX_QUEUE_INIT_GET_QUEUE_ID =>
            PFN_NETTXQUEUEINITGETQUEUEID = net_tx_queue_init_get_queue_id;
        index::TX_QUEUE_GET_RING_COLLECTION =>
            PFN_NETTXQUEUEGETRINGCOLLECTION = net_tx_queue_get_ring_collection;
        index::TX_QUEUE_GET_EXTENSION => PFN_NETTXQUEUEGETEXTENSION = net_tx_queue_get_extension;
        index::SET_RECEIVE_FILTER_CAPABILITIES =>
            PFN_NETADAPTERSETRECEIVEFILTERCAPABILITIES = net_adapter_set_receive_filter_capabilities;
        index::RECEIVE_FILTER_GET_PACKET_FILTER =>
            PFN_NETRECEIVEFILTERGETPACKETFILTER = net_receive_filter_get_packet_filter;
        index::RECEIVE_FILTER_GET_MULTICAST_COUNT =>
            PFN_NETRECEIVEFILTERGETMULTICASTADDRESSCOUNT = net_receive_filter_get_multicast_address_count;
        index::RECEIVE_FILTER_GET_MULTICAST_LIST =>
            PFN_NETRECEIVEFILTERGETMULTICASTADDRESSLIST = net_receive_filter_get_multicast_address_list;
        index::OFFLOAD_SET_TX_CHECKSUM_CAPABILITIES =>
            PFN_SETTXCHECKSUMCAPS = net_adapter_offload_set_tx_checksum_capabilities;
        index::IS_TX_CHECKSUM_IPV4 => PFN_ISTXCSUMIPV4 = is_tx_ipv4;
        index::IS_TX_CHECKSUM_TCP => PFN_ISTXCSUMTCP = is_tx_tcp;
        index::IS_TX_CHECKSUM_UDP => PFN_ISTXCSUMUDP = is_tx_udp;
        index::OFFLOAD_SET_RX_CHECKSUM_CAPABILITIES =>
            PFN_SETRXCHECKSUMCAPS = net_adapter_offload_set_rx_checksum_capabilities;
        index::IS_RX_CHECKSUM_IPV4 => PFN_ISRXCSUMIPV4 = is_rx_ipv4;
        index::IS_RX_CHECKSUM_TCP => PFN_ISRXCSUMTCP = is_rx_tcp;
        index::IS_RX_CHECKSUM_UDP => PFN_ISRXCSUMUDP = is_rx_udp;
        index::OFFLOAD_SET_GSO_CAPABILITIES =>
            PFN_SETGSOCAPS = net_adapter_offload_set_gso_capabilities;
        index::IS_LSO_IPV4 => PFN_ISLSOIPV4 = is_lso4;
        index::IS_LSO_IPV6 => PFN_ISLSOIPV6 = is_lso6;
        index::IS_USO_IPV4 => PFN_ISUSOIPV4 = is_uso4;
        index::IS_USO_IPV6 => PFN_ISUSOIPV6 = is_uso6;
        index::OFFLOAD_SET_RSC_CAPABILITIES =>
            PFN_SETRSCCAPS = net_adapter_offload_set_rsc_capabilities;
        index::IS_TCP_RSC_IPV4 => PFN_ISRSCIPV4 = is_rsc4;
        index::IS_TCP_RSC_IPV6 => PFN_ISRSCIPV6 = is_rsc6;
        index::OFFLOAD_SET_IEEE8021Q_CAPABILITIES =>
            PFN_SETIEEE8021QCAPS = net_adapter_offload_set_ieee8021q_tag_capabilities;
    }
}
