//! Interrupts, the portable part: which MSI-X message means what, and the per-queue gate that
//! lets the DPC notify NetAdapterCx without touching the queue engine (which only the queue's
//! execution context may use).
//!
//! Message layout (the one [`crate::adapter::BringUp`] programs into the device): message 0 is
//! configuration changes, then one per virtqueue in queue-index order (rx0, tx0, rx1, tx1, …),
//! then the control queue. With fewer messages granted than that, the driver uses fewer queue
//! pairs; with fewer than four it falls back to one shared interrupt and the ISR register.

use core::sync::atomic::{AtomicU8, Ordering};

/// Most queue pairs the Windows driver runs. NetAdapterCx spreads receive traffic over several
/// queues only through RSS, which the device steers (VIRTIO_NET_F_RSS); without device RSS the
/// driver runs one pair. The INF's `MessageNumberLimit` is
/// `MsixPlan::messages_for(MAX_QUEUE_PAIRS)` (a test checks it).
pub const MAX_QUEUE_PAIRS: u16 = 8;

/// What raised an interrupt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The device configuration changed (link, announce, NEEDS_RESET).
    Config,
    /// Receive queue of a pair.
    Rx(u16),
    /// Transmit queue of a pair.
    Tx(u16),
    /// The control queue.
    Control,
}

/// The interrupt layout for the messages the PnP manager granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MsixPlan {
    /// Queue pairs that get their own messages.
    pub pairs: u16,
    /// Whether MSI-X messages are used at all (else one line-based or MSI interrupt).
    pub msix: bool,
}

impl MsixPlan {
    /// Messages needed for `pairs` queue pairs: configuration, two per pair, control.
    pub const fn messages_for(pairs: u16) -> u32 {
        2 * pairs as u32 + 2
    }

    /// Chooses the layout: as many of `wanted_pairs` as the `granted` messages allow (at least
    /// one pair), rounded down to a power of two (RSS spreads over a power-of-two number of
    /// queues); `msix` tells whether the granted interrupts are MSI-X messages.
    pub fn new(granted: u32, msix: bool, wanted_pairs: u16) -> Self {
        if !msix || granted < Self::messages_for(1) {
            return Self {
                pairs: 1,
                msix: false,
            };
        }
        let fit = ((granted - 2) / 2).min(u32::from(u16::MAX)) as u16;
        let pairs = wanted_pairs.clamp(1, fit.max(1));
        Self {
            pairs: 1 << (15 - pairs.leading_zeros()),
            msix: true,
        }
    }

    /// Messages this plan uses (interrupt objects to create).
    pub const fn messages(&self) -> u32 {
        if self.msix {
            Self::messages_for(self.pairs)
        } else {
            1
        }
    }

    /// What message `id` signals (`None`: not one of ours, e.g. beyond the plan).
    pub const fn source(&self, id: u32) -> Option<Source> {
        if !self.msix {
            return None;
        }
        let control = Self::messages_for(self.pairs) - 1;
        if id == 0 {
            Some(Source::Config)
        } else if id == control {
            Some(Source::Control)
        } else if id < control {
            let q = id - 1;
            let pair = (q / 2) as u16;
            Some(if q.is_multiple_of(2) {
                Source::Rx(pair)
            } else {
                Source::Tx(pair)
            })
        } else {
            None
        }
    }
}

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
