//! `EvtAdapterCreateTxQueue` and the transmit queue callbacks, forwarded to the core's
//! [`TxQueue`](crate::txqueue::TxQueue) engine.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use netring::{FragmentRing, PacketRing};
use wdk_sys::{NT_SUCCESS, WDFOBJECT, WDFTIMER, call_unsafe_wdf_function_binding};

use super::adapter::{Nic, nic};
use super::context;
use super::declare;
use super::netcx::*;
use crate::txqueue::{TxQueue, TxSettings};

/// The transmit queue's context: a fresh engine per NetAdapterCx queue (the framework drains
/// every packet before destroying a queue, so nothing is in flight then).
struct TxContext {
    nic: &'static Nic,
    pair: u16,
    rings: *const netring::NetRingCollection,
    /// Used only on the queue's execution context (callbacks are serialized there).
    engine: UnsafeCell<Option<TxQueue>>,
    /// When Cancel ran with packets in flight (`now()`, 0: not cancelled); on the EC only.
    cancelled_at: UnsafeCell<u64>,
}

/// # Safety
///
/// `queue` must be one of our transmit queues (context set at creation).
unsafe fn ctx(queue: NETPACKETQUEUE) -> &'static TxContext {
    // SAFETY: set in create before the queue could start; freed in destroy, after stop.
    unsafe { context::object::<TxContext>(queue.cast(), &context::QUEUE_CONTEXT) }
}

/// # Safety
///
/// Inside a datapath callback of the queue.
unsafe fn rings(c: &TxContext) -> Option<(PacketRing<'static>, FragmentRing<'static>)> {
    // SAFETY: the caller's contract; `c.rings` is the queue's collection.
    unsafe { context::rings(c.rings) }
}

/// `EvtAdapterCreateTxQueue`.
pub unsafe extern "system" fn evt_create_tx_queue(
    adapter: NETADAPTER,
    init: PNETTXQUEUE_INIT,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: valid init object of this callback.
    let id = unsafe { NetTxQueueInitGetQueueId(init) };
    let Some(k) = u16::try_from(id).ok().filter(|&k| nic.pair(k).is_some()) else {
        return STATUS_INVALID_PARAMETER;
    };
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
    let st = unsafe { NetTxQueueCreate(init, (&raw mut attrs).cast(), &config, &mut queue) };
    if !NT_SUCCESS(st) {
        return st;
    }
    // SAFETY: the queue was just created.
    let col = unsafe { NetTxQueueGetRingCollection(queue) };
    // A failed create deletes the queue object (its context is still unset).
    let Ok(c) = crate::fallible::boxed(TxContext {
        nic,
        pair: k,
        rings: col,
        engine: UnsafeCell::new(None),
        cancelled_at: UnsafeCell::new(0),
    }) else {
        return wdk_sys::STATUS_INSUFFICIENT_RESOURCES;
    };
    // SAFETY: the new queue's rings; no callback runs yet.
    let Some((packets, fragments)) = (unsafe { rings(&c) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    let ext = declare::tx_extensions(&packets, &fragments, |q| {
        let mut e = netring::NetExtension::zeroed();
        // SAFETY: the query points at static names; `e` is ours.
        unsafe { NetTxQueueGetExtension(queue, q, &mut e) };
        e
    });
    let Some(dma) = nic.dma.as_ref() else {
        return STATUS_INVALID_PARAMETER;
    };
    let made = nic.with_core(|a| a.take_tx(k).map(|s| (s, a.features())));
    let Some(Some((slot, features))) = made else {
        return STATUS_INVALID_PARAMETER;
    };
    let settings = TxSettings {
        insert_priority: nic.user.priority_vlan_tag & 1 != 0,
        insert_vlan: nic.user.priority_vlan_tag & 2 != 0,
        vlan_id: nic.user.vlan_id,
        confidential: nic.user.confidential_mode.resolve(features),
    };
    match TxQueue::new(dma, slot.vq, packets.len(), features, settings, ext) {
        Ok(tx) => {
            // SAFETY: not yet shared.
            unsafe { *c.engine.get() = Some(tx) };
        }
        Err(r) => {
            // The virtqueue goes back to the adapter for the next creation of this queue.
            let back = crate::adapter::QueueSlot {
                vq: r.vq,
                notifier: slot.notifier,
            };
            let _ = nic.with_core(|a| a.give_back_tx(k, back));
            return STATUS_INSUFFICIENT_RESOURCES;
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
    // SAFETY: Start runs on the queue's EC.
    unsafe { *c.cancelled_at.get() = 0 };
    if let Some(p) = c.nic.pair(c.pair) {
        p.tx_queue.start(queue);
    }
}

unsafe extern "system" fn evt_stop(queue: NETPACKETQUEUE) {
    // SAFETY: our queue.
    let c = unsafe { ctx(queue) };
    if let Some(p) = c.nic.pair(c.pair) {
        p.tx_queue.stop();
    }
}

unsafe extern "system" fn evt_advance(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; on its execution context.
    let c = unsafe { ctx(queue) };
    let nic = c.nic;
    // SAFETY: the engine is used only on this execution context.
    let Some(tx) = (unsafe { (*c.engine.get()).as_mut() }) else {
        return;
    };
    // SAFETY: inside the queue's Advance.
    let Some((mut packets, mut fragments)) = (unsafe { rings(c) }) else {
        return;
    };
    let Some(pair) = nic.pair(c.pair) else {
        return;
    };
    tx.quiet(&pair.tx_gate);
    // SAFETY: on this queue's EC.
    let cancelled_at = unsafe { *c.cancelled_at.get() };
    if cancelled_at != 0
        && !tx.is_flushing()
        && tx.virtqueue().in_flight() != 0
        && super::adapter::now().wrapping_sub(cancelled_at) > super::adapter::TX_CANCEL_GRACE
    {
        // Stopping, and the device has not completed what it holds within the grace period: it
        // is stalled. Recover it (WDF restarts the stack), and let the stop finish.
        nic.record(crate::events::Event::QueueFault {
            pair: c.pair,
            transmit: true,
        });
        nic.fail_and_restart(super::adapter::Recovery::TxStalled, c.pair);
    }
    if nic.dead.load(Ordering::Acquire) && !tx.is_flushing() {
        // The device will complete nothing more: stop it for good, then give the OS back
        // everything, now and on every later Advance.
        nic.quiesce();
        tx.flush();
    }
    match tx.advance(&mut packets, &mut fragments) {
        Ok(r) => {
            if r.kicked {
                nic.kick(pair.tx_notifier.as_ref());
            }
            nic.tx_counters(c.pair, tx.stats());
        }
        Err(_) => {
            // The device broke its contract (or the rings are unusable): the completions it
            // left can no longer be trusted. Recover, and return what this queue holds at once.
            nic.queue_fault(c.pair, true);
            nic.quiesce();
            tx.flush();
            let _ = tx.advance(&mut packets, &mut fragments);
        }
    }
}

/// Cancel: a live device completes what it holds, and the stopping poll's Advance calls return
/// it (virtio cannot abort a posted chain short of a reset). A dead one never will: it is
/// stopped for good and everything goes back now. A live one that stalls is recovered after
/// [`TX_CANCEL_GRACE`](super::adapter::TX_CANCEL_GRACE) (see Advance).
unsafe extern "system" fn evt_cancel(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; Cancel runs on its execution context.
    let c = unsafe { ctx(queue) };
    // SAFETY: on this queue's EC.
    let Some(tx) = (unsafe { (*c.engine.get()).as_mut() }) else {
        return;
    };
    if c.nic.dead.load(Ordering::Acquire) || c.nic.gone() {
        c.nic.quiesce();
        tx.flush();
    } else {
        // SAFETY: on this queue's EC. `| 1`: never 0, which means not cancelled.
        unsafe { *c.cancelled_at.get() = super::adapter::now() | 1 };
        if tx.virtqueue().in_flight() != 0 {
            // The stopping poll sleeps until a completion interrupt: if none comes, the
            // watchdog wakes it after the grace period (a little after, so Advance finds it
            // passed). Negative: relative, 100 ns units.
            let due = -((super::adapter::TX_CANCEL_GRACE + 10_000) as i64);
            // SAFETY: the device's timer (created in DeviceAdd, deleted with the device);
            // ≤ DISPATCH_LEVEL.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(WdfTimerStart, c.nic.tx_watchdog, due)
            };
        }
    }
}

/// The transmit watchdog (DISPATCH_LEVEL): wakes every started transmit queue, so that a
/// cancelled one whose device has not completed within the grace period runs its Advance and
/// finds the stall (a live queue just polls once more).
pub extern "C" fn evt_tx_watchdog(timer: WDFTIMER) {
    // SAFETY: our timer, whose parent is our device.
    let device = unsafe { call_unsafe_wdf_function_binding!(WdfTimerGetParentObject, timer) };
    // SAFETY: our device: only a transmit queue's Cancel starts the timer, long after DeviceAdd
    // set the device's context, and the timer, a child of the device, is deleted before the
    // device's context is destroyed.
    let p = unsafe { super::device::nic_of(device.cast()) };
    // SAFETY: as above: the device's Nic, alive while the device is.
    let nic = unsafe { &*p };
    for k in 0..nic.pair_count {
        if let Some(p) = nic.pair(k) {
            p.tx_queue.with(|q| {
                // SAFETY: the queue is between EvtStart and EvtStop (`StartedQueue`).
                unsafe { NetTxQueueNotifyMoreCompletedPacketsAvailable(q) }
            });
        }
    }
}

unsafe extern "system" fn evt_set_notification_enabled(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    // SAFETY: our queue; on its execution context.
    let c = unsafe { ctx(queue) };
    let Some(pair) = c.nic.pair(c.pair) else {
        return;
    };
    // SAFETY: on the execution context.
    let Some(tx) = (unsafe { (*c.engine.get()).as_mut() }) else {
        return;
    };
    if enabled == 0 {
        tx.disarm(&pair.tx_gate);
    } else if tx.arm(&pair.tx_gate) {
        // Completions arrived while arming: no interrupt will come for them.
        // SAFETY: the queue is started.
        unsafe { NetTxQueueNotifyMoreCompletedPacketsAvailable(queue) };
    }
}

unsafe extern "C" fn evt_destroy(object: WDFOBJECT) {
    // SAFETY: our queue's context (set with Box::into_raw); destroy runs once, after stop.
    let Some(c) = (unsafe { context::take::<TxContext>(object, &context::QUEUE_CONTEXT) }) else {
        return;
    };
    let nic = c.nic;
    let k = c.pair;
    let Some(tx) = c.engine.into_inner() else {
        return;
    };
    let Some(dma) = nic.dma.as_ref() else {
        return;
    };
    match tx.release(dma) {
        Some(vq) => {
            let notifier = nic.pair(k).and_then(|p| p.tx_notifier);
            let _ = nic.with_core(|a| {
                if let Some(notifier) = notifier {
                    a.give_back_tx(k, crate::adapter::QueueSlot { vq, notifier });
                }
            });
        }
        // Packets still in flight (the device stalled): the engine left its memory to the
        // device; restart it (ReleaseHardware resets it, and the enabler's buffers go with it).
        None => nic.fail_and_restart(super::adapter::Recovery::TxMemoryHeld, k),
    }
}
