//! `EvtAdapterCreateTxQueue` and the transmit queue callbacks, forwarded to the core's
//! [`TxQueue`](crate::txqueue::TxQueue) engine.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::Ordering;

use netring::{FragmentRing, PacketRing};
use wdk_sys::{NT_SUCCESS, WDFOBJECT};

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
    let c = alloc::boxed::Box::new(TxContext {
        nic,
        pair: k,
        rings: col,
        engine: UnsafeCell::new(None),
    });
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
    let made = nic.with_core(|a| a.take_tx(k).map(|s| (s, a.features())));
    let (Some(Some((slot, features))), Some(dma)) = (made, nic.dma.as_ref()) else {
        return STATUS_INVALID_PARAMETER;
    };
    let settings = TxSettings {
        insert_priority: nic.user.priority_vlan_tag & 1 != 0,
        insert_vlan: nic.user.priority_vlan_tag & 2 != 0,
        vlan_id: nic.user.vlan_id,
    };
    match TxQueue::new(dma, slot.vq, packets.len(), features, settings, ext) {
        Ok(tx) => {
            // SAFETY: not yet shared.
            unsafe { *c.engine.get() = Some(tx) };
        }
        Err(_) => return STATUS_INSUFFICIENT_RESOURCES,
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
    if let Some(p) = c.nic.pair(c.pair) {
        p.tx_queue.store(queue, Ordering::Release);
    }
}

unsafe extern "system" fn evt_stop(queue: NETPACKETQUEUE) {
    // SAFETY: our queue.
    let c = unsafe { ctx(queue) };
    if let Some(p) = c.nic.pair(c.pair) {
        p.tx_queue.store(core::ptr::null_mut(), Ordering::Release);
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
    if pair.tx_gate.take_fired() {
        let _ = tx.set_notification_enabled(false);
    }
    match tx.advance(&mut packets, &mut fragments) {
        Ok(r) => {
            if r.kicked {
                nic.kick(pair.tx_notifier.as_ref());
            }
            nic.tx_counters(c.pair, tx.stats());
        }
        Err(_) => nic.queue_fault(c.pair, true),
    }
}

/// Cancel: in-flight packets complete through later Advance calls as the device finishes them
/// (virtio cannot abort a posted chain short of a reset).
unsafe extern "system" fn evt_cancel(_queue: NETPACKETQUEUE) {}

unsafe extern "system" fn evt_set_notification_enabled(queue: NETPACKETQUEUE, enabled: BOOLEAN) {
    // SAFETY: our queue; on its execution context.
    let c = unsafe { ctx(queue) };
    let Some(pair) = c.nic.pair(c.pair) else {
        return;
    };
    if enabled != 0 {
        pair.tx_gate.arm();
    }
    // SAFETY: on the execution context.
    let Some(tx) = (unsafe { (*c.engine.get()).as_mut() }) else {
        return;
    };
    if tx.set_notification_enabled(enabled != 0) && pair.tx_gate.fire() {
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
        None => nic.fail_and_restart(),
    }
}
