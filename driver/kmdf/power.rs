//! D0 entry and exit. NetAdapterCx creates the datapath queues after D0 entry and destroys them
//! before D0 exit (`reference/netadaptercx.md` §2.7, §4.1), so here no queue exists: the device
//! is reset on the way down (no DMA in a low-power state) and programmed again on the way up.
//! virtio-net has no wake-up signalling, so no wake is armed.

use core::sync::atomic::Ordering;

use wdk_sys::{
    _WDF_POWER_DEVICE_STATE, NTSTATUS, STATUS_SUCCESS, WDF_POWER_DEVICE_STATE, WDFDEVICE,
};

use super::device::nic_of;

/// `EvtDeviceD0Entry`.
pub extern "C" fn evt_d0_entry(device: WDFDEVICE, previous: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device) };
    // SAFETY: our device; power callbacks are serialized with PnP callbacks and no queue runs.
    let nic = unsafe { &*p };
    if previous == _WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final {
        // First power-up: PrepareHardware brought the device up already.
        return STATUS_SUCCESS;
    }
    // The receive engines keep their virtqueues across power transitions: program them again
    // at the same rings.
    let mut engines: alloc::vec::Vec<(u16, &virtio::queue::VirtQueue)> =
        match crate::fallible::with_capacity(usize::from(nic.pair_count)) {
            Ok(v) => v,
            Err(_) => return wdk_sys::STATUS_INSUFFICIENT_RESOURCES,
        };
    engines.extend((0..nic.pair_count).filter_map(|k| {
            let pair = nic.pair(k)?;
            // SAFETY: no RX queue exists during D0 entry.
            let rx = unsafe { pair.rx_engine() }?;
            Some((virtio::net::rx_queue_index(k), rx.virtqueue()))
        }));
    // The wait for the reset is at PASSIVE_LEVEL, outside the spin lock; `restore` resets
    // again under it, which an acknowledging device finishes at once.
    if !nic.reset_device_at_passive() {
        return wdk_sys::STATUS_DEVICE_CONFIGURATION_ERROR;
    }
    let r = nic.with_core(|a| a.restore(&nic.plan, &engines).map(|()| a.link_up()));
    // The reset dropped the receive filter, the multicast list, the MAC, the VLAN filter, the
    // guest offloads and the steering; `restore` marked all of it unsent, and it is sent again
    // once the interrupts are enabled (`evt_d0_entry_post_interrupts_enabled`).
    match r {
        Some(Ok(up)) => {
            nic.dead.store(false, Ordering::Release);
            nic.quiesced.store(false, Ordering::Release);
            nic.report_link(up);
            STATUS_SUCCESS
        }
        _ => wdk_sys::STATUS_DEVICE_CONFIGURATION_ERROR,
    }
}

/// `EvtDeviceD0EntryPostInterruptsEnabled`: the device's control state goes back to it.
/// NetAdapterCx sends no receive filter, multicast list or offload setting again after D0 (only
/// on the OID, `reference/netadaptercx.md` §9.5), so the core holds what the device should hold;
/// after the reset in D0 entry all of it is unsent. The control queue completes by interrupt
/// (its DPC submits the next command), and a message the device raises before the interrupts
/// are connected reaches no ISR — so the first command goes here, not in D0 entry. This runs
/// before NetAdapterCx creates the datapath (`EvtCxDevicePostD0EntryPostHardwareEnabled`, §9.1).
pub extern "C" fn evt_d0_entry_post_interrupts_enabled(
    device: WDFDEVICE,
    _previous: WDF_POWER_DEVICE_STATE,
) -> NTSTATUS {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device) };
    // SAFETY: as in D0 entry.
    let nic = unsafe { &*p };
    nic.start_control_watchdog();
    nic.pump_control();
    STATUS_SUCCESS
}

/// `EvtDeviceD0Exit`: reset the device (it stops every DMA), give the receive engine's posted
/// buffers back to its pool, report the link as unknown (as RtEthSample does).
pub extern "C" fn evt_d0_exit(device: WDFDEVICE, _target: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
    // SAFETY: our device (DeviceAdd set its context).
    let p = unsafe { nic_of(device) };
    // SAFETY: as in D0 entry.
    let nic = unsafe { &*p };
    // No control tick touches the device from here: the reset ends any pending command.
    nic.stop_control_watchdog();
    // Waited for at PASSIVE_LEVEL, bounded; a device that does not acknowledge may still write
    // into the posted receive buffers, so they stay posted (it is dead: D0 entry fails).
    if nic.reset_device_at_passive() {
        for k in 0..nic.pair_count {
            // SAFETY: no RX queue exists during D0 exit.
            if let Some(rx) = nic.pair(k).and_then(|p| unsafe { p.rx_engine() }) {
                rx.abandon_in_flight();
            }
        }
    }
    let unknown = super::netcx::NET_ADAPTER_LINK_STATE {
        MediaConnectState: super::netcx::media_connect_state::UNKNOWN,
        ..super::declare::link_state(false, 0)
    };
    // SAFETY: the adapter lives as long as the device.
    unsafe { super::netcx::NetAdapterSetLinkState(nic.adapter, &unknown) };
    STATUS_SUCCESS
}
