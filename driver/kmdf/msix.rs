//! Interrupts, the portable part: the ISR status register's causes, and the per-queue gate that
//! lets the DPC notify NetAdapterCx without touching the queue engine (which only the queue's
//! execution context may use). Which MSI-X message means what is the core's
//! [`Vectors`](crate::vectors::Vectors), made with the pair count.

use core::sync::atomic::{AtomicU8, Ordering};

/// Most queue pairs the Windows driver runs. NetAdapterCx spreads receive traffic over several
/// queues only through RSS, which the device steers (VIRTIO_NET_F_RSS); without device RSS the
/// driver runs one pair. The INF's `MessageNumberLimit` is
/// `Vectors::messages_for(MAX_QUEUE_PAIRS)` (a test checks it).
pub const MAX_QUEUE_PAIRS: u16 = 8;

/// What the shared (non-MSI-X) interrupt's ISR status byte says. Reading it acknowledges it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SharedCause {
    /// Some virtqueue has used buffers: run every queue's gate.
    pub queues: bool,
    /// The configuration changed.
    pub config: bool,
}

impl SharedCause {
    /// From the ISR status register (bit 0 queue, bit 1 configuration). A removed device reads
    /// all-ones: report nothing, so the ISR does not claim another device's interrupt forever.
    pub const fn from_isr(isr: u8) -> Option<Self> {
        if isr == 0xFF || isr & 3 == 0 {
            return None;
        }
        Some(Self {
            queues: isr & 1 != 0,
            config: isr & 2 != 0,
        })
    }
}

const IDLE: u8 = 0;
const ARMED: u8 = 1;
const FIRED: u8 = 2;

/// The per-queue notification gate between `EvtPacketQueueSetNotificationEnabled` (on the
/// queue's execution context) and the queue's DPC:
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
