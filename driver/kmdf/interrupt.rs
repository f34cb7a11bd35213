//! Interrupts: one WDFINTERRUPT per MSI-X message of the plan (configuration, each queue,
//! control), or one shared interrupt read through the ISR status register. The ISR only
//! acknowledges and queues the DPC; the DPC notifies NetAdapterCx through the queue's gate,
//! handles link changes (NetAdapterSetLinkState) and runs the control queue.

use core::sync::atomic::Ordering;

use virtio::hal::Bars;
use wdk_sys::{
    _WDF_TRI_STATE, BOOLEAN, NT_SUCCESS, NTSTATUS, PCM_PARTIAL_RESOURCE_DESCRIPTOR, ULONG,
    WDF_INTERRUPT_CONFIG, WDFDEVICE, WDFINTERRUPT, WDFOBJECT, call_unsafe_wdf_function_binding,
};

use super::adapter::Nic;
use super::context;
use super::msix::{SharedCause, Source};
use super::netcx::{
    NetRxQueueNotifyMoreReceivedPacketsAvailable, NetTxQueueNotifyMoreCompletedPacketsAvailable,
};
use crate::events::Event;

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
    message: u32,
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
    let c = alloc::boxed::Box::into_raw(alloc::boxed::Box::new(IntContext { nic, message }));
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
    if !nic.msix.msix {
        // Shared line: reading the ISR status acknowledges it; all-ones means removed.
        let (bar, off) = nic.isr;
        let Some(cause) = SharedCause::from_isr(nic.bars.read8(bar, off)) else {
            return 0;
        };
        let bits = u8::from(cause.queues) | u8::from(cause.config) << 1;
        nic.isr_pending.fetch_or(bits, Ordering::AcqRel);
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
            return Err(true);
        }
        if a.needs_reset() {
            return Err(false);
        }
        a.config_changed().map_err(|_| false)
    });
    match r {
        Some(Ok(Some(up))) => nic.report_link(up),
        Some(Ok(None)) | None => {}
        Some(Err(removed)) => {
            if removed {
                nic.dead.store(true, Ordering::Release);
            } else {
                nic.fail_and_restart();
            }
        }
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
    if !nic.msix.msix {
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
    match nic.msix.source(c.message) {
        Some(Source::Config) => config_changed(nic),
        Some(Source::Rx(k)) => notify_rx(nic, k),
        Some(Source::Tx(k)) => notify_tx(nic, k),
        Some(Source::Control) => nic.pump_control(),
        None => {}
    }
}

extern "C" fn evt_destroy(object: WDFOBJECT) {
    // SAFETY: our interrupt's context (set with Box::into_raw); destroyed once, after
    // disconnection.
    drop(unsafe { context::take::<IntContext>(object, &context::INTERRUPT_CONTEXT) });
}
