//! `EvtAdapterCreateRxQueue` and the receive queue callbacks, forwarded to the core's
//! [`RxQueue`](crate::rxqueue::RxQueue) engine. Windows only; not compiled in CI.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use netring::{FragmentRing, PacketRing};
use wdk_sys::{NT_SUCCESS, WDFOBJECT};

use super::adapter::{Nic, nic};
use super::context;
use super::declare;
use super::netcx::*;
use crate::rxqueue::{RxQueue, RxSettings};

/// The receive queue's context: the Nic and the queue's rings (stable for the queue's life).
struct RxContext {
    nic: &'static Nic,
    rings: *const netring::NetRingCollection,
}

/// # Safety
///
/// `queue` must be one of our receive queues (context set at creation).
unsafe fn ctx(queue: NETPACKETQUEUE) -> &'static RxContext {
    // SAFETY: set in create before the queue could start; freed in destroy, after stop.
    unsafe { context::object::<RxContext>(queue.cast(), &context::QUEUE_CONTEXT) }
}

/// # Safety
///
/// Inside a datapath callback of the queue.
unsafe fn rings(c: &RxContext) -> Option<(PacketRing<'static>, FragmentRing<'static>)> {
    // SAFETY: the caller's contract; `c.rings` is the queue's collection.
    unsafe { context::rings(c.rings) }
}

/// The engine (pair 0).
///
/// # Safety
///
/// Only from the RX execution context (or at PASSIVE_LEVEL with no RX queue).
#[allow(clippy::mut_from_ref)] // the engine is in an UnsafeCell; exclusivity is the contract
unsafe fn engine(nic: &Nic) -> Option<&mut RxQueue> {
    // SAFETY: the caller's contract serializes every use.
    unsafe { (*nic.rx.get()).as_mut() }
}

/// `EvtAdapterCreateRxQueue`.
pub unsafe extern "system" fn evt_create_rx_queue(
    adapter: NETADAPTER,
    init: PNETRXQUEUE_INIT,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: valid init object of this callback.
    let id = unsafe { NetRxQueueInitGetQueueId(init) };
    if id != 0 {
        return STATUS_INVALID_PARAMETER;
    }
    let config = declare::queue_config(
        evt_advance,
        evt_set_notification_enabled,
        evt_cancel,
        evt_start,
        evt_stop,
    );
    let mut attrs = context::attributes(&context::QUEUE_CONTEXT, Some(evt_destroy));
    let mut queue: NETPACKETQUEUE = core::ptr::null_mut();
    // SAFETY: on the callback's thread, no ParentObject, exact config size.
    let st = unsafe { NetRxQueueCreate(init, (&raw mut attrs).cast(), &config, &mut queue) };
    if !NT_SUCCESS(st) {
        return st;
    }
    // SAFETY: the queue was just created.
    let col = unsafe { NetRxQueueGetRingCollection(queue) };
    let c = alloc::boxed::Box::new(RxContext { nic, rings: col });
    // SAFETY: the rings are the new queue's; no callback runs before this returns.
    let Some((packets, fragments)) = (unsafe { rings(&c) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    let ext = declare::rx_extensions(&packets, &fragments, |q| {
        let mut e = netring::NetExtension::zeroed();
        // SAFETY: the query points at static names; `e` is ours.
        unsafe { NetRxQueueGetExtension(queue, q, &mut e) };
        e
    });
    // SAFETY: PASSIVE_LEVEL, no RX queue is running (this one is not started yet).
    let slot = unsafe { &mut *nic.rx.get() };
    match slot {
        Some(rx) => rx.set_extensions(ext),
        None => {
            // First queue since PrepareHardware: build the engine over pair 0's virtqueue.
            let made = nic.with_core(|a| {
                let caps = *a.capabilities();
                let features = a.features();
                a.take_rx(0).map(|s| (s, caps, features))
            });
            let Some(Some((s, caps, features))) = made else {
                return STATUS_INVALID_PARAMETER;
            };
            let Some(dma) = nic.dma.as_ref() else {
                return STATUS_INVALID_PARAMETER;
            };
            let settings = RxSettings {
                buffers: caps.rx_buffers,
                buffer_size: caps.rx_buffer_size,
                strip_vlan: nic.user.priority_vlan_tag != 0,
                software_checksum: caps.rx_checksum_in_software,
                context_tag: 0,
            };
            match RxQueue::new(dma, s.vq, features, settings, ext) {
                Ok(rx) => *slot = Some(rx),
                // The virtqueue stays with the engine that failed: give the pair up (the
                // adapter start fails and WDF retries the stack).
                Err(_) => return STATUS_INSUFFICIENT_RESOURCES,
            }
        }
    }
    // SAFETY: the queue carries QUEUE_CONTEXT; no callback has run yet.
    unsafe {
        context::set(
            queue.cast::<c_void>() as WDFOBJECT,
            &context::QUEUE_CONTEXT,
            alloc::boxed::Box::into_raw(c),
        )
    };
    STATUS_SUCCESS
}

unsafe extern "system" fn evt_start(queue: NETPACKETQUEUE) {
    // SAFETY: our queue.
    let c = unsafe { ctx(queue) };
    c.nic.rx_queue.store(queue, Ordering::Release);
}

unsafe extern "system" fn evt_stop(queue: NETPACKETQUEUE) {
    // SAFETY: our queue.
    let c = unsafe { ctx(queue) };
    c.nic
        .rx_queue
        .store(core::ptr::null_mut(), Ordering::Release);
}

unsafe extern "system" fn evt_advance(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; Advance runs on its execution context.
    let c = unsafe { ctx(queue) };
    let nic = c.nic;
    // SAFETY: on the RX execution context.
    let Some(rx) = (unsafe { engine(nic) }) else {
        return;
    };
    // SAFETY: inside the queue's Advance.
    let Some((mut packets, mut fragments)) = (unsafe { rings(c) }) else {
        return;
    };
    if nic.filter_changed.swap(false, Ordering::AcqRel) {
        nic.lock.acquire();
        // SAFETY: under the lock.
        let f = unsafe { (*nic.pending_filter.get()).take() };
        nic.lock.release();
        rx.set_filter(f);
    }
    if nic.rx_gate.take_fired() {
        let _ = rx.set_notification_enabled(false);
    }
    match rx.advance(&mut packets, &mut fragments) {
        Ok(r) => {
            if r.kicked {
                nic.kick(nic.rx_notifier.as_ref());
            }
            nic.rx_counters(rx.stats());
        }
        Err(_) => nic.queue_fault(false),
    }
}

unsafe extern "system" fn evt_cancel(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; Cancel runs on its execution context.
    let c = unsafe { ctx(queue) };
    // SAFETY: on the RX execution context.
    let Some(rx) = (unsafe { engine(c.nic) }) else {
        return;
    };
    // SAFETY: inside the queue's Cancel.
    if let Some((mut p, mut f)) = unsafe { rings(c) } {
        let _ = rx.cancel(&mut p, &mut f);
    }
}

unsafe extern "system" fn evt_set_notification_enabled(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    // SAFETY: our queue; on its execution context.
    let c = unsafe { ctx(queue) };
    let nic = c.nic;
    if enabled != 0 {
        nic.rx_gate.arm();
    }
    // SAFETY: on the RX execution context.
    let Some(rx) = (unsafe { engine(nic) }) else {
        return;
    };
    if rx.set_notification_enabled(enabled != 0) && nic.rx_gate.fire() {
        // Frames arrived while arming: no interrupt will come for them.
        // SAFETY: the queue is started.
        unsafe { NetRxQueueNotifyMoreReceivedPacketsAvailable(queue) };
    }
}

unsafe extern "C" fn evt_destroy(object: WDFOBJECT) {
    // SAFETY: our queue's context (set with Box::into_raw); destroy runs once, after stop.
    drop(unsafe { context::take::<RxContext>(object, &context::QUEUE_CONTEXT) });
}
