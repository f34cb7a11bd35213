//! Interrupts: one WDFINTERRUPT per MSI-X message of the plan (configuration, each queue,
//! control), or one shared interrupt read through the ISR status register. The ISR only
//! acknowledges and queues the DPC; the DPC notifies NetAdapterCx through the queue's gate,
//! handles link changes (NetAdapterSetLinkState) and runs the control queue.

use core::sync::atomic::Ordering;

use virtio::hal::Bars;
use wdk_sys::{
    _WDF_TRI_STATE, BOOLEAN, NT_SUCCESS, NTSTATUS, PCM_PARTIAL_RESOURCE_DESCRIPTOR, ULONG,
    WDF_INTERRUPT_CONFIG, WDF_INTERRUPT_INFO, WDFDEVICE, WDFINTERRUPT, WDFOBJECT, call_unsafe_wdf_function_binding,
};

use super::adapter::{Nic, Recovery};
use super::context;
use super::msix::SharedCause;
use super::netcx::{
    NetRxQueueNotifyMoreReceivedPacketsAvailable, NetTxQueueNotifyMoreCompletedPacketsAvailable,
};
use crate::events::Event;
use crate::vectors::Pairs;

/// An interrupt's context: its Nic and message number.
struct IntContext {
    nic: &'static Nic,
    message: u32,
}

/// Creates the interrupt for one raw/translated resource pair (PrepareHardware; KMDF 1.11+
/// allows creation there when the resources are given).
///
/// # Safety
///
/// PASSIVE_LEVEL inside EvtDevicePrepareHardware; the descriptors come from its resource lists.
pub unsafe fn create(
    device: WDFDEVICE,
    nic: &'static Nic,
    raw: PCM_PARTIAL_RESOURCE_DESCRIPTOR,
    translated: PCM_PARTIAL_RESOURCE_DESCRIPTOR,
) -> Result<WDFINTERRUPT, NTSTATUS> {
    let mut config = WDF_INTERRUPT_CONFIG {
        Size: core::mem::size_of::<WDF_INTERRUPT_CONFIG>() as ULONG,
        ShareVector: _WDF_TRI_STATE::WdfUseDefault,
        EvtInterruptIsr: Some(evt_isr),
        EvtInterruptDpc: Some(evt_dpc),
        InterruptRaw: raw,
        InterruptTranslated: translated,
        ..Default::default()
    };
    let mut attrs = context::attributes(&context::INTERRUPT_CONTEXT, Some(evt_destroy));
    let mut interrupt: WDFINTERRUPT = core::ptr::null_mut();
    // SAFETY: the caller's contract; the config and attributes are initialised.
    let st = unsafe {
        call_unsafe_wdf_function_binding!(
            WdfInterruptCreate,
            device,
            &mut config,
            &mut attrs,
            &mut interrupt
        )
    };
    if !NT_SUCCESS(st) {
        return Err(st);
    }
    // Which message this interrupt is: the framework's word for it, not the resource's place
    // in the list (`WDF_INTERRUPT_INFO.MessageNumber`, as NetKVM reads it).
    let mut info = WDF_INTERRUPT_INFO {
        Size: core::mem::size_of::<WDF_INTERRUPT_INFO>() as ULONG,
        ..Default::default()
    };
    // SAFETY: the interrupt just created; `info` is sized; ≤ DISPATCH_LEVEL.
    unsafe { call_unsafe_wdf_function_binding!(WdfInterruptGetInfo, interrupt, &mut info) };
    let message = info.MessageNumber;
    // The interrupt is the device's child: WDF deletes it (an unset context frees nothing).
    let c = crate::fallible::boxed(IntContext { nic, message })
        .map_err(|_| wdk_sys::STATUS_INSUFFICIENT_RESOURCES)?;
    let c = alloc::boxed::Box::into_raw(c);
    // SAFETY: the interrupt is not connected before D0 entry, so no ISR reads the slot yet.
    unsafe { context::set(interrupt.cast(), &context::INTERRUPT_CONTEXT, c) };
    Ok(interrupt)
}

/// # Safety
///
/// `interrupt` must be one this module created.
unsafe fn ctx(interrupt: WDFINTERRUPT) -> &'static IntContext {
    // SAFETY: set at creation, freed at destruction (after disconnection).
    unsafe { context::object::<IntContext>(interrupt.cast(), &context::INTERRUPT_CONTEXT) }
}

extern "C" fn evt_isr(interrupt: WDFINTERRUPT, _message_id: ULONG) -> BOOLEAN {
    // SAFETY: our interrupt.
    let c = unsafe { ctx(interrupt) };
    let nic = c.nic;
    let sources = nic.vectors.sources(c.message);
    if !nic.vectors.msix() || sources.config_shared() {
        // A line (or a message shared with configuration changes): reading the ISR status
        // acknowledges it and says what happened; all-ones means removed. With MSI-X only its
        // configuration bit counts (the device sets it before every configuration
        // notification, virtio 1.2 §4.1.4.5.1).
        let (bar, off) = nic.isr;
        let cause = SharedCause::from_isr(nic.bars.read8(bar, off));
        match cause {
            Some(cause) => {
                let bits = u8::from(cause.queues) | u8::from(cause.config) << 1;
                nic.isr_pending.fetch_or(bits, Ordering::AcqRel);
            }
            // A line-based interrupt with no cause is another device's.
            None if !nic.vectors.msix() => return 0,
            None => {}
        }
    }
    // FALSE means the DPC was already queued: it has not run yet, so it will see this cause too.
    // SAFETY: our interrupt, at DIRQL.
    let _queued =
        unsafe { call_unsafe_wdf_function_binding!(WdfInterruptQueueDpcForIsr, interrupt) };
    1
}

fn notify_rx(nic: &Nic, k: u16) {
    let Some(p) = nic.pair(k) else {
        return;
    };
    if p.rx_gate.fire() {
        p.rx_queue.with(|q| {
            // SAFETY: the queue is between EvtStart and EvtStop (`StartedQueue`).
            unsafe { NetRxQueueNotifyMoreReceivedPacketsAvailable(q) }
        });
    }
}

fn notify_tx(nic: &Nic, k: u16) {
    let Some(p) = nic.pair(k) else {
        return;
    };
    if p.tx_gate.fire() {
        p.tx_queue.with(|q| {
            // SAFETY: as in notify_rx.
            unsafe { NetTxQueueNotifyMoreCompletedPacketsAvailable(q) }
        });
    }
}

fn config_changed(nic: &Nic) {
    let r = nic.with_core(|a| {
        if a.is_removed() {
            a.record(Event::SurpriseRemoved);
            return Err(None);
        }
        if a.needs_reset() {
            return Err(Some(Recovery::NeedsReset));
        }
        a.config_changed()
            .map_err(|_| Some(Recovery::ConfigUnreadable))
    });
    match r {
        Some(Ok(Some(up))) => nic.report_link(up),
        Some(Ok(None)) | None => {}
        Some(Err(None)) => nic.dead.store(true, Ordering::Release),
        Some(Err(Some(why))) => nic.fail_and_restart(why, 0),
    }
    // An ANNOUNCE acknowledgement may have been queued.
    nic.pump_control();
}

extern "C" fn evt_dpc(interrupt: WDFINTERRUPT, _object: WDFOBJECT) {
    // SAFETY: our interrupt.
    let c = unsafe { ctx(interrupt) };
    let nic = c.nic;
    if nic.dead.load(Ordering::Acquire) {
        return;
    }
    if !nic.vectors.msix() {
        let bits = nic.isr_pending.swap(0, Ordering::AcqRel);
        if bits & 1 != 0 {
            for k in 0..nic.pair_count {
                notify_rx(nic, k);
                notify_tx(nic, k);
            }
            nic.pump_control();
        }
        if bits & 2 != 0 {
            config_changed(nic);
        }
        return;
    }
    let sources = nic.vectors.sources(c.message);
    let config = if sources.config_shared() {
        nic.isr_pending.swap(0, Ordering::AcqRel) & 2 != 0
    } else {
        sources.config
    };
    if config {
        config_changed(nic);
    }
    for (pairs, notify) in [
        (sources.rx, notify_rx as fn(&Nic, u16)),
        (sources.tx, notify_tx),
    ] {
        match pairs {
            Pairs::None => {}
            Pairs::One(k) => notify(nic, k),
            Pairs::All => {
                for k in 0..nic.pair_count {
                    notify(nic, k);
                }
            }
        }
    }
    if sources.control {
        nic.pump_control();
    }
}

extern "C" fn evt_destroy(object: WDFOBJECT) {
    // SAFETY: our interrupt's context (set with Box::into_raw); destroyed once, after
    // disconnection.
    drop(unsafe { context::take::<IntContext>(object, &context::INTERRUPT_CONTEXT) });
}
