//! `EvtAdapterCreateRxQueue` and the receive queue callbacks, forwarded to the core's
//! [`RxQueue`](crate::rxqueue::RxQueue) engine of the queue's pair.

use core::ffi::c_void;
use core::sync::atomic::Ordering;

use netring::{FragmentRing, PacketRing};
use wdk_sys::{NT_SUCCESS, WDFOBJECT};

use super::adapter::{Nic, Pair, nic};
use super::context;
use super::declare;
use super::netcx::*;
use crate::rxqueue::{RxQueue, RxSettings};

/// The receive queue's context: the Nic, the queue's pair and rings (stable for its life).
struct RxContext {
    nic: &'static Nic,
    pair: u16,
    rings: *const netring::NetRingCollection,
}

impl RxContext {
    fn pair(&self) -> Option<&'static Pair> {
        self.nic.pair(self.pair)
    }
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

/// `EvtAdapterCreateRxQueue`: queue id `k` is pair `k`.
pub unsafe extern "system" fn evt_create_rx_queue(
    adapter: NETADAPTER,
    init: PNETRXQUEUE_INIT,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: valid init object of this callback.
    let id = unsafe { NetRxQueueInitGetQueueId(init) };
    let Some((k, pair)) = u16::try_from(id)
        .ok()
        .and_then(|k| nic.pair(k).map(|p| (k, p)))
    else {
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
    let st = unsafe { NetRxQueueCreate(init, (&raw mut attrs).cast(), &config, &mut queue) };
    if !NT_SUCCESS(st) {
        return st;
    }
    // SAFETY: the queue was just created.
    let col = unsafe { NetRxQueueGetRingCollection(queue) };
    // A failed create deletes the queue object (its context is still unset).
    let Ok(c) = crate::fallible::boxed(RxContext {
        nic,
        pair: k,
        rings: col,
    }) else {
        return wdk_sys::STATUS_INSUFFICIENT_RESOURCES;
    };
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
    // SAFETY: PASSIVE_LEVEL, and this pair's RX queue is not started yet.
    let slot = unsafe { &mut *pair.rx.get() };
    match slot {
        Some(rx) => rx.set_extensions(ext),
        None => {
            // First queue of this pair since PrepareHardware: build the engine over its
            // virtqueue.
            let Some(dma) = nic.dma.as_ref() else {
                return STATUS_INVALID_PARAMETER;
            };
            let made = nic.with_core(|a| {
                let caps = *a.capabilities();
                let features = a.features();
                a.take_rx(k).map(|s| (s, caps, features))
            });
            let Some(Some((s, caps, features))) = made else {
                return STATUS_INVALID_PARAMETER;
            };
            let settings = RxSettings {
                buffers: caps.rx_buffers,
                buffer_size: caps.rx_buffer_size,
                strip_vlan: nic.user.priority_vlan_tag != 0,
                software_checksum: caps.rx_checksum_in_software,
                bounce: caps.confidential,
                context_tag: k,
            };
            match RxQueue::new(dma, s.vq, features, settings, ext) {
                Ok(rx) => *slot = Some(rx),
                Err(r) => {
                    // The virtqueue goes back to the adapter: the next creation of this pair's
                    // queue can use it.
                    let back = crate::adapter::QueueSlot {
                        vq: r.vq,
                        notifier: s.notifier,
                    };
                    let _ = nic.with_core(|a| a.give_back_rx(k, back));
                    return STATUS_INSUFFICIENT_RESOURCES;
                }
            }
        }
    }
    // The new queue picks up the current filter and RSS key at its first Advance.
    pair.filter_changed.store(true, Ordering::Release);
    pair.rss_changed.store(true, Ordering::Release);
    pair.rx_created.store(queue, Ordering::Release);
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
    if let Some(p) = unsafe { ctx(queue) }.pair() {
        p.rx_queue.start(queue);
    }
}

unsafe extern "system" fn evt_stop(queue: NETPACKETQUEUE) {
    // SAFETY: our queue.
    if let Some(p) = unsafe { ctx(queue) }.pair() {
        p.rx_queue.stop();
    }
}

/// Hands the engine what changed since its last Advance: the software filter, the RSS key and
/// types for its hash extension (re-keying allocates nothing).
fn refresh(nic: &Nic, pair: &Pair, rx: &mut RxQueue) {
    if pair.filter_changed.swap(false, Ordering::AcqRel) {
        nic.lock.acquire();
        // SAFETY: under the lock.
        let f = unsafe { (*nic.pending_filter.get()).clone() };
        nic.lock.release();
        rx.set_filter(f);
    }
    if pair.rss_changed.swap(false, Ordering::AcqRel) {
        nic.lock.acquire();
        // SAFETY: under the lock.
        let software = unsafe { (*nic.rss.get()).software() };
        nic.lock.release();
        rx.set_rss(software.as_ref().map(|(k, t)| (k, *t)));
    }
}

unsafe extern "system" fn evt_advance(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; Advance runs on its execution context.
    let c = unsafe { ctx(queue) };
    let nic = c.nic;
    let Some(pair) = c.pair() else {
        return;
    };
    // SAFETY: on this pair's RX execution context.
    let Some(rx) = (unsafe { pair.rx_engine() }) else {
        return;
    };
    // SAFETY: inside the queue's Advance.
    let Some((mut packets, mut fragments)) = (unsafe { rings(c) }) else {
        return;
    };
    refresh(nic, pair, rx);
    rx.quiet(&pair.rx_gate);
    match rx.advance(&mut packets, &mut fragments) {
        Ok(r) => {
            if r.kicked {
                nic.kick(pair.rx_notifier.as_ref());
            }
            nic.rx_counters(c.pair, rx.stats());
        }
        Err(_) => nic.queue_fault(c.pair, false),
    }
}

unsafe extern "system" fn evt_cancel(queue: NETPACKETQUEUE) {
    // SAFETY: our queue; Cancel runs on its execution context.
    let c = unsafe { ctx(queue) };
    let Some(pair) = c.pair() else {
        return;
    };
    // SAFETY: on this pair's RX execution context.
    let Some(rx) = (unsafe { pair.rx_engine() }) else {
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
    let Some(pair) = c.pair() else {
        return;
    };
    // SAFETY: on this pair's RX execution context.
    let Some(rx) = (unsafe { pair.rx_engine() }) else {
        return;
    };
    if enabled == 0 {
        rx.disarm(&pair.rx_gate);
    } else if rx.arm(&pair.rx_gate) {
        // Frames arrived while arming: no interrupt will come for them.
        // SAFETY: the queue is started.
        unsafe { NetRxQueueNotifyMoreReceivedPacketsAvailable(queue) };
    }
}

unsafe extern "C" fn evt_destroy(object: WDFOBJECT) {
    // SAFETY: our queue's context (set with Box::into_raw); destroy runs once, after stop.
    let c = unsafe { context::take::<RxContext>(object, &context::QUEUE_CONTEXT) };
    if let Some(p) = c.as_ref().and_then(|c| c.pair()) {
        let _ = p.rx_created.compare_exchange(
            object.cast(),
            core::ptr::null_mut(),
            Ordering::AcqRel,
            Ordering::Acquire,
        );
    }
}
