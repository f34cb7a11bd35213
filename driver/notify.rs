//! One queue's notification state, shared by its execution context and its interrupt path —
//! the one mechanism both the Windows glue and the Linux harness run.
//!
//! NetAdapterCx arms a queue (`EvtPacketQueueSetNotificationEnabled(TRUE)`, never FALSE) when a
//! poll found no work; after that only a Notify call wakes it. The interrupt path (a DPC, on any
//! processor) cannot touch the engine, which only the queue's execution context may use, so the
//! two meet in this gate:
//!
//! * the engine's `arm` ([`crate::rxqueue::RxQueue::arm`], [`crate::txqueue::TxQueue::arm`])
//!   arms it, turns the device's notifications on, and claims the wake-up itself when the
//!   device completed something meanwhile (no interrupt comes for that);
//! * the interrupt path calls [`NotifyGate::fire`]: `true` exactly once per arming → Notify;
//! * the engine's `quiet`, at the start of every Advance, turns the device's notifications off
//!   again once the gate fired (NetAdapterCx never disarms explicitly, and a device without
//!   EVENT_IDX would otherwise interrupt on every completion while polled).

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use core::sync::atomic::{AtomicU8, Ordering};

use virtio::queue::VirtQueue;

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const FIRED: u8 = 2;

/// The per-queue notification gate between `EvtPacketQueueSetNotificationEnabled` (on the
/// queue's execution context) and the queue's interrupt path:
///
/// * [`arm`](Self::arm) when NetAdapterCx arms the queue;
/// * [`fire`](Self::fire) in the DPC: `true` exactly once per arming → call the Notify API;
/// * [`take_fired`](Self::take_fired) at the start of Advance: `true` once after a fire → the
///   engine turns device notifications off again (NetAdapterCx never disarms explicitly, and a
///   device without EVENT_IDX would otherwise interrupt on every completion while polled).
#[derive(Debug, Default)]
pub struct NotifyGate(AtomicU8);

impl NotifyGate {
    /// A gate that is not armed.
    pub const fn new() -> Self {
        Self(AtomicU8::new(IDLE))
    }

    /// The OS armed the queue.
    pub fn arm(&self) {
        self.0.store(ARMED, Ordering::Release);
    }

    /// The interrupt fired: whether to notify the OS (only the first fire after an arm).
    pub fn fire(&self) -> bool {
        self.0
            .compare_exchange(ARMED, FIRED, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Whether the gate fired since the last call (so Advance disables device notifications).
    pub fn take_fired(&self) -> bool {
        self.0
            .compare_exchange(FIRED, IDLE, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    /// Arms the gate and turns `vq`'s device notifications on; whether to notify the OS now
    /// (the device used buffers meanwhile — claimed here, so the interrupt path does not
    /// notify too).
    pub fn arm_over(&self, vq: &mut VirtQueue) -> bool {
        self.arm();
        vq.enable_notifications() && self.fire()
    }

    /// Device notifications off, the gate idle (a FALSE arming, which NetAdapterCx never sends).
    pub fn disarm_over(&self, vq: &mut VirtQueue) {
        vq.disable_notifications();
        let _ = self.fire();
        let _ = self.take_fired();
    }

    /// At the start of an Advance: once the gate fired, `vq`'s device notifications go off.
    pub fn quiet_over(&self, vq: &mut VirtQueue) {
        if self.take_fired() {
            vq.disable_notifications();
        }
    }

    /// Whether the OS is waiting for a notification.
    pub fn is_armed(&self) -> bool {
        self.0.load(Ordering::Acquire) == ARMED
    }
}

#[cfg(test)]
mod tests {
    extern crate std;

    use super::NotifyGate;
    use std::sync::Arc;

    #[test]
    fn notify_gate_notifies_once_per_arming() {
        let g = NotifyGate::new();
        assert!(!g.fire(), "not armed: no notify");
        g.arm();
        assert!(g.is_armed());
        assert!(g.fire());
        assert!(!g.fire(), "second interrupt of the same arming");
        assert!(g.take_fired());
        assert!(!g.take_fired());
        g.arm();
        assert!(
            !g.take_fired(),
            "armed but not fired: Advance keeps notifications on"
        );
        assert!(g.fire());
    }

    /// An arming thread and an interrupt thread: never more notifies than armings, and once both
    /// stop, an armed gate still notifies (no lost wake-up).
    #[test]
    fn a_racing_interrupt_never_notifies_more_than_the_armings() {
        let g = Arc::new(NotifyGate::new());
        let armings = 20_000u32;
        let dpc = {
            let g = g.clone();
            std::thread::spawn(move || {
                let mut n = 0u32;
                for _ in 0..armings * 2 {
                    if g.fire() {
                        n += 1;
                    }
                }
                n
            })
        };
        let mut armed = 0u32;
        for _ in 0..armings {
            let _ = g.take_fired();
            g.arm();
            armed += 1;
        }
        let notified = dpc.join().unwrap();
        assert!(notified <= armed, "{notified} notifies for {armed} armings");
        assert!(
            g.is_armed() || g.take_fired(),
            "the last arming is either pending or was notified"
        );
    }
}
