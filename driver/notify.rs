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

use core::sync::atomic::{AtomicU8, Ordering};

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

    /// Whether the OS is waiting for a notification.
    pub fn is_armed(&self) -> bool {
        self.0.load(Ordering::Acquire) == ARMED
    }
}
