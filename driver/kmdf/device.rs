//! EvtDriverDeviceAdd (device and adapter creation) and the hardware callbacks:
//! PrepareHardware (BARs, PCI capabilities, DMA enabler, keywords, interrupts, core bring-up,
//! capabilities, NetAdapterStart) and ReleaseHardware.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicU8, AtomicU32};

use alloc::boxed::Box;
use alloc::vec::Vec;
use wdk::wdf::SpinLock;
use wdk_sys::{
    _WDF_DMA_PROFILE, BUS_INTERFACE_STANDARD, GUID, NT_SUCCESS, NTSTATUS, PINTERFACE,
    PWDFDEVICE_INIT, STATUS_INSUFFICIENT_RESOURCES, STATUS_SUCCESS, WDF_DMA_ENABLER_CONFIG,
    WDF_NO_OBJECT_ATTRIBUTES, WDF_OBJECT_ATTRIBUTES, WDF_PNPPOWER_EVENT_CALLBACKS,
    WDF_TIMER_CONFIG, WDF_WORKITEM_CONFIG, WDFCMRESLIST, WDFDEVICE, WDFDRIVER, WDFOBJECT,
    WDFTIMER, WDFWORKITEM, call_unsafe_wdf_function_binding,
};

use super::adapter::{CALLBACKS, Nic, Pair};
use super::context;
use super::declare;
use super::hal::{CommonBufferDma, MappedBars, PciBus};
use super::netcx::{self, NET_ADAPTER_DATAPATH_CALLBACKS};
use super::{configuration, interrupt, power, rxqueue, txqueue};
use crate::adapter::{Adapter, BringUp};
use crate::config::UserSettings;
use crate::vectors::Vectors;
use crate::rss::RssState;

/// `GUID_BUS_INTERFACE_STANDARD` (wdmguid.h), defined here so no GUID library is linked.
const GUID_BUS_INTERFACE_STANDARD: GUID = GUID {
    Data1: 0x496B_8280,
    Data2: 0x6F25,
    Data3: 0x11D0,
    Data4: [0xBE, 0xAF, 0x08, 0x00, 0x2B, 0xE2, 0x09, 0x2F],
};

/// `CM_PARTIAL_RESOURCE_DESCRIPTOR` is declared under `pshpack4.h`: Type @0, Flags @2, and the
/// union at 4 — memory: Start (PHYSICAL_ADDRESS) @4, Length @12. Read by offset, so the code
/// does not depend on the names bindgen gives the anonymous union members.
mod cm {
    pub const TYPE_INTERRUPT: u8 = 2;
    pub const TYPE_MEMORY: u8 = 3;
    pub const TYPE_MEMORY_LARGE: u8 = 7;
    pub const INTERRUPT_MESSAGE: u16 = 0x0002;
    pub const MEMORY_LARGE_40: u16 = 0x0200;
    pub const MEMORY_LARGE_48: u16 = 0x0400;
    pub const MEMORY_LARGE_64: u16 = 0x0800;
}

struct Descriptor {
    ty: u8,
    flags: u16,
    start: i64,
    length: u64,
}

/// # Safety
///
/// `d` must point at a resource descriptor from the PnP manager.
unsafe fn descriptor(d: *const u8) -> Descriptor {
    // SAFETY: inside the 20-byte descriptor (so for every read below).
    let ty = unsafe { d.read() };
    // SAFETY: as above.
    let flags = unsafe { d.wrapping_add(2).cast::<u16>().read_unaligned() };
    // SAFETY: as above.
    let start = unsafe { d.wrapping_add(4).cast::<i64>().read_unaligned() };
    // SAFETY: as above.
    let len32 = u64::from(unsafe { d.wrapping_add(12).cast::<u32>().read_unaligned() });
    let length = if ty == cm::TYPE_MEMORY_LARGE {
        // Large memory resources scale Length by their granularity.
        match flags & (cm::MEMORY_LARGE_40 | cm::MEMORY_LARGE_48 | cm::MEMORY_LARGE_64) {
            cm::MEMORY_LARGE_40 => len32 << 8,
            cm::MEMORY_LARGE_48 => len32 << 16,
            cm::MEMORY_LARGE_64 => len32 << 32,
            _ => len32,
        }
    } else {
        len32
    };
    Descriptor {
        ty,
        flags,
        start,
        length,
    }
}

/// `EvtDriverDeviceAdd`: NetDeviceInitConfig first, PnP/power callbacks, WdfDeviceCreate,
/// then the adapter (NetAdapterInitAllocate → datapath callbacks → NetAdapterCreate →
/// NetAdapterInitFree). Interrupts are created in PrepareHardware, when the number of MSI-X
/// messages granted is known.
pub extern "C" fn evt_device_add(_driver: WDFDRIVER, mut init: PWDFDEVICE_INIT) -> NTSTATUS {
    // SAFETY: the init object of this callback; first call on it, as NetAdapterCx requires.
    let st = unsafe { netcx::NetDeviceInitConfig(init.cast()) };
    if !NT_SUCCESS(st) {
        return st;
    }
    // Recovery through NetAdapterCx's device reset, with the driver's diagnostics in the dump.
    let reset = netcx::NET_DEVICE_RESET_CAPABILITIES {
        Size: core::mem::size_of::<netcx::NET_DEVICE_RESET_CAPABILITIES>() as u32,
        ResetDiagnosticsGuid: RESET_DIAGNOSTICS_GUID,
        EvtNetDeviceCollectResetDiagnostics: Some(evt_collect_reset_diagnostics),
    };
    // SAFETY: the init object of this callback, before WdfDeviceCreate; PASSIVE_LEVEL.
    unsafe { netcx::NetDeviceInitSetResetCapabilities(init.cast(), &reset) };
    let mut pnp = WDF_PNPPOWER_EVENT_CALLBACKS {
        Size: core::mem::size_of::<WDF_PNPPOWER_EVENT_CALLBACKS>() as u32,
        EvtDevicePrepareHardware: Some(evt_prepare_hardware),
        EvtDeviceReleaseHardware: Some(evt_release_hardware),
        EvtDeviceD0Entry: Some(power::evt_d0_entry),
        EvtDeviceD0EntryPostInterruptsEnabled: Some(power::evt_d0_entry_post_interrupts_enabled),
        EvtDeviceD0Exit: Some(power::evt_d0_exit),
        ..Default::default()
    };
    // SAFETY: valid init object.
    unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceInitSetPnpPowerEventCallbacks, init, &mut pnp)
    };
    let mut attrs = context::attributes(&context::DEVICE_CONTEXT, Some(evt_device_destroy));
    let mut device: WDFDEVICE = core::ptr::null_mut();
    // SAFETY: valid init object; WDF consumes it on success.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(WdfDeviceCreate, &mut init, &mut attrs, &mut device)
    };
    if !NT_SUCCESS(st) {
        return st;
    }
    let mut lock_attrs = WDF_OBJECT_ATTRIBUTES {
        ParentObject: device.cast(),
        ..context::plain_attributes()
    };
    let Ok(lock) = SpinLock::create(&mut lock_attrs) else {
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let mut work_config = WDF_WORKITEM_CONFIG {
        Size: core::mem::size_of::<WDF_WORKITEM_CONFIG>() as u32,
        EvtWorkItemFunc: Some(evt_request_reset),
        AutomaticSerialization: 0,
    };
    let mut work_attrs = WDF_OBJECT_ATTRIBUTES {
        ParentObject: device.cast(),
        ..context::plain_attributes()
    };
    let mut reset_work: WDFWORKITEM = core::ptr::null_mut();
    // SAFETY: config, attributes (parent: the device) and out parameter valid for the call.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfWorkItemCreate,
            &mut work_config,
            &mut work_attrs,
            &mut reset_work
        )
    };
    if !NT_SUCCESS(st) {
        return st;
    }
    let tx_watchdog = match one_shot_timer(device, txqueue::evt_tx_watchdog) {
        Ok(t) => t,
        Err(st) => return st,
    };
    let control_watchdog = match one_shot_timer(device, super::adapter::evt_control_watchdog) {
        Ok(t) => t,
        Err(st) => return st,
    };
    let nic = crate::fallible::boxed(Nic {
        adapter: core::ptr::null_mut(),
        lock,
        core: UnsafeCell::new(None),
        bars: MappedBars::default(),
        pci: None,
        dma: None,
        dma_caps: declare::dma_capabilities(core::ptr::null_mut()),
        enabler: core::ptr::null_mut(),
        user: UserSettings::default(),
        plan: BringUp {
            reset_polls: 1_000_000,
            max_queue_size: 1024,
            queue_pairs: super::msix::MAX_QUEUE_PAIRS,
            msix_messages: 0,
            random_mac: [0x02, 0, 0, 0, 0, 0],
            pairs_need_rss: true,
        },
        vectors: Vectors::new(0, 1),
        pair_count: 0,
        pairs: [const { Pair::new() }; super::msix::MAX_QUEUE_PAIRS as usize],
        rss: UnsafeCell::new(RssState::new(1)),
        pending_filter: UnsafeCell::new(None),
        dead: AtomicBool::new(false),
        quiesced: AtomicBool::new(false),
        tx_watchdog,
        control_watchdog,
        control_watch: AtomicBool::new(false),
        control_armed: AtomicBool::new(false),
        reset_work,
        recovery: AtomicU32::new(0),
        recovery_status: AtomicU8::new(0),
        isr: (0, 0),
        isr_pending: AtomicU8::new(0),
    });
    let Ok(nic) = nic else {
        // The timers and the work item are the device's children: WDF deletes them with it.
        return STATUS_INSUFFICIENT_RESOURCES;
    };
    let nic = Box::into_raw(nic);
    // SAFETY: the device carries DEVICE_CONTEXT; nothing reads it before this.
    unsafe { context::set(device.cast(), &context::DEVICE_CONTEXT, nic) };

    // SAFETY: a created device.
    let adapter_init = unsafe { netcx::NetAdapterInitAllocate(device.cast()) };
    if adapter_init.is_null() {
        return STATUS_INSUFFICIENT_RESOURCES;
    }
    let callbacks = NET_ADAPTER_DATAPATH_CALLBACKS {
        Size: core::mem::size_of::<NET_ADAPTER_DATAPATH_CALLBACKS>() as u32,
        EvtAdapterCreateTxQueue: Some(txqueue::evt_create_tx_queue),
        EvtAdapterCreateRxQueue: Some(rxqueue::evt_create_rx_queue),
    };
    // SAFETY: the init object just allocated.
    unsafe { netcx::NetAdapterInitSetDatapathCallbacks(adapter_init, &callbacks) };
    let mut adapter_attrs = context::attributes(&context::DEVICE_CONTEXT, None);
    let mut adapter: netcx::NETADAPTER = core::ptr::null_mut();
    // SAFETY: as above; attributes without a parent, as required.
    let st = unsafe {
        netcx::NetAdapterCreate(adapter_init, (&raw mut adapter_attrs).cast(), &mut adapter)
    };
    // SAFETY: freed whether or not the adapter was created.
    unsafe { netcx::NetAdapterInitFree(adapter_init) };
    if !NT_SUCCESS(st) {
        return st;
    }
    // SAFETY: the adapter carries DEVICE_CONTEXT; the Nic outlives it (the device is its parent).
    unsafe { context::set(adapter.cast(), &context::DEVICE_CONTEXT, nic) };
    // SAFETY: no other callback runs before DeviceAdd returns.
    unsafe { (*nic).adapter = adapter };
    STATUS_SUCCESS
}

/// Names the driver's reset diagnostics in NetAdapterCx's live dump
/// ({9d1c0a57-4e2b-4f6a-8c3e-7b5a2d1f0e64}).
pub const RESET_DIAGNOSTICS_GUID: netcx::GUID = netcx::GUID {
    Data1: 0x9d1c_0a57,
    Data2: 0x4e2b,
    Data3: 0x4f6a,
    Data4: [0x8c, 0x3e, 0x7b, 0x5a, 0x2d, 0x1f, 0x0e, 0x64],
};

/// The reset work item (PASSIVE_LEVEL): `NetDeviceRequestReset`.
extern "C" fn evt_request_reset(item: WDFWORKITEM) {
    // SAFETY: our work item, whose parent is our device.
    let device = unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemGetParentObject, item) };
    // SAFETY: our device, PASSIVE_LEVEL.
    unsafe { netcx::NetDeviceRequestReset(device.cast()) };
}

/// `EvtNetDeviceCollectResetDiagnostics` (PASSIVE_LEVEL): what the driver knew when it asked
/// for the reset, as one little-endian blob for the live dump — `VNETDIAG`, version 1, the
/// reason (`adapter::Recovery`) and queue pair, the device status register, the negotiated
/// features, the pair count and the MSI-X messages in use.
extern "system" fn evt_collect_reset_diagnostics(device: netcx::WDFDEVICE) {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device.cast()) };
    // SAFETY: the Nic lives as long as the device; only read here.
    let nic = unsafe { &*p };
    let recovery = nic.recovery.load(core::sync::atomic::Ordering::Acquire);
    let features = nic.with_core(|a| a.features().bits()).unwrap_or(0);
    // As it was when the reset was asked for (`fail_and_restart`): the device may have been
    // stopped since.
    let status = nic.recovery_status.load(core::sync::atomic::Ordering::Acquire);
    let mut blob = [0u8; 40];
    let fields: [&[u8]; 8] = [
        b"VNETDIAG",
        &1u32.to_le_bytes(),
        &(recovery >> 16).to_le_bytes(),
        &(recovery & 0xffff).to_le_bytes(),
        &u32::from(status).to_le_bytes(),
        &features.to_le_bytes(),
        &u32::from(nic.pair_count).to_le_bytes(),
        &nic.vectors.messages().to_le_bytes(),
    ];
    let mut at = 0;
    for f in fields {
        if let Some(dst) = blob.get_mut(at..at + f.len()) {
            dst.copy_from_slice(f);
        }
        at += f.len();
    }
    // SAFETY: our device; the blob outlives the call; PASSIVE_LEVEL, inside the callback.
    unsafe { netcx::NetDeviceStoreResetDiagnostics(device, blob.len(), blob.as_ptr()) };
}

extern "C" fn evt_device_destroy(object: WDFOBJECT) {
    // SAFETY: the device's context (set with Box::into_raw in DeviceAdd); destroyed once,
    // after every child object.
    drop(unsafe { context::take::<Nic>(object, &context::DEVICE_CONTEXT) });
}

/// A one-shot, non-periodic timer of `device` (its parent, as a timer needs) that calls `func`;
/// PASSIVE_LEVEL.
fn one_shot_timer(
    device: WDFDEVICE,
    func: unsafe extern "C" fn(WDFTIMER),
) -> Result<WDFTIMER, NTSTATUS> {
    let mut config = WDF_TIMER_CONFIG {
        Size: core::mem::size_of::<WDF_TIMER_CONFIG>() as u32,
        EvtTimerFunc: Some(func),
        Period: 0,
        AutomaticSerialization: 0,
        TolerableDelay: 0,
        ..Default::default()
    };
    let mut attrs = WDF_OBJECT_ATTRIBUTES {
        ParentObject: device.cast(),
        ..context::plain_attributes()
    };
    let mut timer: WDFTIMER = core::ptr::null_mut();
    // SAFETY: config, attributes (parent: the device) and out parameter valid for the call, at
    // PASSIVE_LEVEL (the caller's).
    let st = unsafe {
        call_unsafe_wdf_function_binding!(WdfTimerCreate, &mut config, &mut attrs, &mut timer)
    };
    if NT_SUCCESS(st) { Ok(timer) } else { Err(st) }
}

/// The Nic of a device.
///
/// # Safety
///
/// PnP/power callbacks of our device only; `&mut` only where WDF serializes (prepare/release).
pub unsafe fn nic_of(device: WDFDEVICE) -> *mut Nic {
    // SAFETY: set in DeviceAdd.
    unsafe { context::get::<Nic>(device.cast(), &context::DEVICE_CONTEXT) }
}

/// A locally administered address for a device that has none (and no NetworkAddress), from the
/// interrupt time (distinct per boot and device).
fn random_mac() -> [u8; 6] {
    // SAFETY: callable at any IRQL.
    let t = unsafe { wdk_sys::ntddk::KeQueryUnbiasedInterruptTime() };
    let b = t.wrapping_mul(0x9E37_79B9_7F4A_7C15).to_le_bytes();
    [(b[0] & 0xFC) | 0x02, b[1], b[2], b[3], b[4], b[5]]
}

extern "C" fn evt_prepare_hardware(
    device: WDFDEVICE,
    raw: WDFCMRESLIST,
    translated: WDFCMRESLIST,
) -> NTSTATUS {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device) };
    // SAFETY: WDF serializes PrepareHardware with every other PnP callback; no queue or
    // interrupt exists yet, so this is the only reference.
    let nic = unsafe { &mut *p };
    match prepare(nic, device, raw, translated) {
        Ok(()) => STATUS_SUCCESS,
        Err(st) => st,
    }
}

/// The DMA enabler's `MaximumLength`: the longest transfer the driver maps, an LSO packet —
/// the largest payload it declares plus every header that may precede it (64 KiB sat
/// 1,000 bytes above that payload; 128 KiB leaves room for any header chain).
const DMA_MAXIMUM_LENGTH: usize = 0x2_0000;
const _: () = assert!(
    DMA_MAXIMUM_LENGTH
        >= (crate::config::MAX_OFFLOAD_SIZE + crate::config::MAX_OFFLOAD_HEADERS) as usize
);

fn prepare(
    nic: &mut Nic,
    device: WDFDEVICE,
    raw: WDFCMRESLIST,
    translated: WDFCMRESLIST,
) -> Result<(), NTSTATUS> {
    use core::sync::atomic::Ordering;
    nic.dead.store(false, Ordering::Release);
    nic.quiesced.store(false, Ordering::Release);
    // SAFETY: the resource lists of this callback.
    let count = unsafe { call_unsafe_wdf_function_binding!(WdfCmResourceListGetCount, translated) };
    // Room for every descriptor up front: the pushes below never allocate. Before the bus
    // interface is referenced, so a failure has nothing to give back.
    let mut interrupts: Vec<(*mut c_void, *mut c_void)> =
        crate::fallible::with_capacity(count as usize).map_err(|_| STATUS_INSUFFICIENT_RESOURCES)?;
    // PCI configuration space through the bus interface.
    // SAFETY: zeroed is a valid starting state for the interface struct the query fills.
    let mut iface: BUS_INTERFACE_STANDARD = unsafe { core::mem::zeroed() };
    // SAFETY: PASSIVE_LEVEL; the struct is ours and large enough.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfFdoQueryForInterface,
            device,
            &GUID_BUS_INTERFACE_STANDARD,
            (&raw mut iface).cast::<wdk_sys::INTERFACE>() as PINTERFACE,
            core::mem::size_of::<BUS_INTERFACE_STANDARD>() as u16,
            1,
            core::ptr::null_mut()
        )
    };
    if !NT_SUCCESS(st) {
        return Err(st);
    }
    let pci = PciBus { iface };
    // The BAR registers, to tell which memory resource is which BAR.
    let mut bar_regs = [0u32; 6];
    for (i, r) in bar_regs.iter_mut().enumerate() {
        let mut b = [0u8; 4];
        if pci.read(0x10 + 4 * i as u32, &mut b) {
            *r = u32::from_le_bytes(b);
        }
    }
    let bar_base = |i: usize| -> Option<i64> {
        let lo = *bar_regs.get(i)?;
        if lo & 1 != 0 {
            return None; // I/O BAR
        }
        let base = u64::from(lo & !0xF);
        if (lo >> 1) & 3 == 2 {
            Some((base | u64::from(*bar_regs.get(i + 1)?) << 32) as i64)
        } else {
            Some(base as i64)
        }
    };
    let mut message_interrupts = false;
    for i in 0..count {
        // SAFETY: i < count.
        let t = unsafe {
            call_unsafe_wdf_function_binding!(WdfCmResourceListGetDescriptor, translated, i)
        };
        // SAFETY: as above; the raw list has the same entries in the same order.
        let r =
            unsafe { call_unsafe_wdf_function_binding!(WdfCmResourceListGetDescriptor, raw, i) };
        if t.is_null() || r.is_null() {
            continue;
        }
        // SAFETY: a descriptor from the PnP manager.
        let td = unsafe { descriptor(t.cast()) };
        // SAFETY: as above.
        let rd = unsafe { descriptor(r.cast()) };
        match td.ty {
            cm::TYPE_MEMORY | cm::TYPE_MEMORY_LARGE => {
                if let Some(bar) = (0..6).find(|&b| bar_base(b) == Some(rd.start)) {
                    // SAFETY: a translated memory resource of this device.
                    unsafe { nic.bars.map(bar as u8, td.start, td.length) };
                }
            }
            cm::TYPE_INTERRUPT => {
                message_interrupts |= rd.flags & cm::INTERRUPT_MESSAGE != 0;
                interrupts.push((r.cast(), t.cast()));
            }
            _ => {}
        }
    }
    nic.pci = Some(pci);

    // DMA v3 enabler (required for NetAdapterCx's DMA mapping and buffer management).
    let mut dma_config = WDF_DMA_ENABLER_CONFIG {
        Size: core::mem::size_of::<WDF_DMA_ENABLER_CONFIG>() as u32,
        Profile: _WDF_DMA_PROFILE::WdfDmaProfileScatterGather64,
        MaximumLength: DMA_MAXIMUM_LENGTH,
        WdmDmaVersionOverride: 3,
        ..Default::default()
    };
    let mut enabler = core::ptr::null_mut();
    // SAFETY: PASSIVE_LEVEL; the config is initialised.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfDmaEnablerCreate,
            device,
            &mut dma_config,
            WDF_NO_OBJECT_ATTRIBUTES,
            &mut enabler
        )
    };
    if !NT_SUCCESS(st) {
        return Err(st);
    }
    nic.enabler = enabler;
    nic.dma_caps = declare::dma_capabilities(enabler.cast());
    // The allocator's lock is a child of the enabler: both go in ReleaseHardware.
    let mut lock_attrs = WDF_OBJECT_ATTRIBUTES {
        ParentObject: enabler.cast(),
        ..context::plain_attributes()
    };
    let lock = SpinLock::create(&mut lock_attrs)?;
    nic.dma = Some(CommonBufferDma::new(enabler, lock).ok_or(STATUS_INSUFFICIENT_RESOURCES)?);

    // SAFETY: a created adapter, PASSIVE_LEVEL.
    nic.user = unsafe { configuration::read(nic.adapter) };
    // The core makes the interrupt layout from the messages granted and the pair count it
    // settles on (`Vectors`): one plan for the device's vectors and the DPCs' decoding.
    nic.plan.queue_pairs = super::msix::MAX_QUEUE_PAIRS;
    nic.plan.msix_messages = if message_interrupts {
        u16::try_from(interrupts.len()).unwrap_or(u16::MAX)
    } else {
        0
    };
    // SAFETY: a created adapter, PASSIVE_LEVEL.
    nic.plan.random_mac =
        unsafe { configuration::persistent_random_address(nic.adapter, random_mac()) };

    let (Some(pci), Some(dma)) = (nic.pci.as_ref(), nic.dma.as_ref()) else {
        return Err(STATUS_INSUFFICIENT_RESOURCES);
    };
    let mut core = Adapter::start(pci, nic.bars, dma, &nic.user, &nic.plan).map_err(|e| {
        use crate::adapter::AdapterError as E;
        use virtio::ctrl::CtrlError;
        use virtio::queue::QueueError::OutOfMemory;
        match e {
            E::OutOfMemory | E::Queue(OutOfMemory) | E::Control(CtrlError::Queue(OutOfMemory)) => {
                STATUS_INSUFFICIENT_RESOURCES
            }
            _ => wdk_sys::STATUS_DEVICE_CONFIGURATION_ERROR,
        }
    })?;
    nic.isr = core.transport().isr_location();
    nic.vectors = core.vectors();
    // From here on a reset waits at PASSIVE_LEVEL first (`reset_at_passive`); what polls under
    // the spin lock is bounded short.
    nic.plan.reset_polls = super::adapter::RESET_POLLS_LOCKED;
    nic.pair_count = core.queue_pairs().min(super::msix::MAX_QUEUE_PAIRS);
    // SAFETY: no other reference to the RSS state exists yet.
    unsafe { *nic.rss.get() = RssState::new(nic.pair_count) };
    // Each queue's kick register, kept beside the engines so the datapath never takes the lock.
    for (k, pair) in (0..nic.pair_count).zip(nic.pairs.iter_mut()) {
        if let Some(s) = core.take_rx(k) {
            pair.rx_notifier = Some(s.notifier);
            core.give_back_rx(k, s);
        }
        if let Some(s) = core.take_tx(k) {
            pair.tx_notifier = Some(s.notifier);
            core.give_back_tx(k, s);
        }
    }
    // The adapter's VLAN (`VlanID`) to the device's VLAN filter when it has one (CTRL_VLAN);
    // otherwise the receive engine filters (Adapter::set_receive_filter says so).
    if nic.user.vlan_id != 0 {
        let _ = core.set_vlan(nic.user.vlan_id, true);
        let _ = core.poll_control();
    }
    let caps = *core.capabilities();
    let link_up = core.link_up();
    core.drain_events(&mut crate::trace::EtwSink);
    // SAFETY: no other reference to the core exists yet.
    unsafe { *nic.core.get() = Some(core) };

    // Interrupts: as many as the plan uses. From here on the Nic is only read (interrupt and
    // queue contexts share it); WDF deletes interrupts created here after ReleaseHardware.
    let nic: &'static Nic = {
        // SAFETY: the Nic lives until the device is destroyed, after its interrupts and queues;
        // it is not written through the `&mut` again in this callback.
        unsafe { &*(nic as *const Nic) }
    };
    for &(r, t) in interrupts.iter().take(nic.vectors.messages() as usize) {
        // SAFETY: PASSIVE_LEVEL in PrepareHardware; descriptors of this callback.
        unsafe { interrupt::create(device, nic, r.cast(), t.cast()) }?;
    }

    // Capabilities, the initial link state, start.
    // SAFETY: adapter not started; the DMA caps live in the Nic.
    unsafe {
        declare::declare(
            nic.adapter,
            &caps,
            nic.pair_count,
            &nic.dma_caps,
            &CALLBACKS,
        )
    };
    let ls = declare::link_state(link_up, caps.link_speed);
    // SAFETY: a created adapter.
    unsafe { netcx::NetAdapterSetLinkState(nic.adapter, &ls) };
    // SAFETY: as above, capabilities set.
    let st = unsafe { netcx::NetAdapterStart(nic.adapter) };
    if NT_SUCCESS(st) { Ok(()) } else { Err(st) }
}

extern "C" fn evt_release_hardware(device: WDFDEVICE, _translated: WDFCMRESLIST) -> NTSTATUS {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device) };
    // SAFETY: serialized with the other PnP callbacks; the queues and interrupts are gone.
    let nic = unsafe { &mut *p };
    // SAFETY: a created adapter (no-op if it was never started).
    unsafe { netcx::NetAdapterStop(nic.adapter) };
    // SAFETY: no other reference (see above).
    let core = unsafe { (*nic.core.get()).take() };
    if let Some(dma) = nic.dma.as_ref()
        && let Some(mut core) = core
    {
        // The device must stop DMA before any ring or buffer is freed: wait for it at
        // PASSIVE_LEVEL, bounded (the core is out of the Nic: no lock to drop).
        let _ = super::adapter::reset_at_passive(|begin| {
            Some(if begin {
                core.begin_reset()
            } else {
                core.reset_done()
            })
        });
        for pair in &mut nic.pairs {
            if let Some(mut rx) = pair.rx.get_mut().take() {
                rx.abandon_in_flight();
                rx.free(dma);
            }
            *pair = Pair::new();
        }
        core.drain_events(&mut crate::trace::EtwSink);
        let _ = core.stop(dma, nic.plan.reset_polls);
    }
    nic.pair_count = 0;

    nic.dma = None;
    if !nic.enabler.is_null() {
        // SAFETY: every common buffer of the enabler was freed above.
        unsafe { call_unsafe_wdf_function_binding!(WdfObjectDelete, nic.enabler.cast()) };
        nic.enabler = core::ptr::null_mut();
    }
    // SAFETY: nothing uses the registers any more.
    unsafe { nic.bars.unmap() };
    if let Some(mut pci) = nic.pci.take() {
        pci.release();
    }
    STATUS_SUCCESS
}
