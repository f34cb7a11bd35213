//! What the driver reports for tracing: the events the KMDF glue writes to its TraceLogging
//! provider (for WPA) and the harness records and asserts on Linux.
//!
//! The core never formats or emits anything itself. The adapter keeps its events in a fixed ring
//! ([`EventLog`], no allocation after bring-up, oldest dropped and counted when full); the glue
//! drains them into an [`EventSink`] from passive level or its DPC, and adds the events only it
//! sees (queue faults reported by the engines, per-queue counters on its timer).

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use crate::config::Capabilities;
use crate::stats::{RxStats, TxStats};

/// One traced event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(
    clippy::large_enum_variant,
    reason = "events live in a fixed ring reserved at bring-up (no allocation after it): boxing \
              the counters would allocate on the timer path; a slot is a few hundred bytes"
)]
pub enum Event {
    /// The device came up (D0 entry or start).
    BringUp {
        /// Features the device offered.
        offered: u64,
        /// Features negotiated.
        negotiated: u64,
        /// Queue pairs in use.
        queue_pairs: u16,
        /// Queue pairs the device supports.
        max_queue_pairs: u16,
        /// MSI-X in use.
        msix: bool,
    },
    /// The capabilities declared to NetAdapterCx.
    Capabilities(Capabilities),
    /// The link changed.
    LinkChanged {
        /// New state.
        up: bool,
    },
    /// The device was reset to recover (device fault, NEEDS_RESET, or on request).
    DeviceReset,
    /// The device came back after a reset (`ok`), or could not (`!ok`: the adapter is unusable).
    Restored {
        /// Whether it succeeded.
        ok: bool,
    },
    /// A control command went unanswered for `ticks` ticks of the control watchdog
    /// ([`crate::adapter::CONTROL_TIMEOUT_TICKS`]): the control queue is broken until a reset.
    ControlTimeout {
        /// Watchdog ticks it waited.
        ticks: u32,
    },
    /// Control commands the device refused or failed.
    ControlCommandsFailed {
        /// How many since the last report.
        count: u32,
    },
    /// A queue engine saw the device break the virtio contract.
    QueueFault {
        /// Queue pair.
        pair: u16,
        /// The transmit queue (else receive).
        transmit: bool,
    },
    /// The device is gone (surprise removal).
    SurpriseRemoved,
    /// The device failed, stalled or is gone: it was stopped for good (`reset`: it acknowledged
    /// a reset, or it is removed; else it did not within the bound), and the transmit queues
    /// give the OS back every packet they held, unsent.
    Quiesced {
        /// Whether the device is known to do no more DMA.
        reset: bool,
    },
    /// A queue pair's counters (the glue emits these on a timer).
    QueueCounters {
        /// Queue pair.
        pair: u16,
        /// Transmit counters.
        tx: TxStats,
        /// Receive counters.
        rx: RxStats,
    },
}

/// Where events go: the TraceLogging provider on Windows, a recorder in the harness.
pub trait EventSink {
    /// Writes one event.
    fn event(&mut self, e: &Event);
}

/// Events waiting to be drained: a fixed ring.
#[derive(Debug, Clone)]
pub struct EventLog {
    ring: [Option<Event>; Self::CAPACITY],
    head: usize,
    len: usize,
    dropped: u64,
}

impl Default for EventLog {
    fn default() -> Self {
        Self {
            ring: [None; Self::CAPACITY],
            head: 0,
            len: 0,
            dropped: 0,
        }
    }
}

impl EventLog {
    /// Events kept between drains.
    pub const CAPACITY: usize = 16;

    /// Adds an event; when full, the oldest is dropped (and counted).
    pub fn push(&mut self, e: Event) {
        // head < CAPACITY and len <= CAPACITY: the sums below are small, the remainders are
        // slots of the ring.
        if self.len == Self::CAPACITY {
            self.head = self.head.wrapping_add(1) % Self::CAPACITY;
            self.len = self.len.saturating_sub(1);
            self.dropped = self.dropped.wrapping_add(1);
        }
        if let Some(slot) = self
            .ring
            .get_mut(self.head.wrapping_add(self.len) % Self::CAPACITY)
        {
            *slot = Some(e);
            self.len = self.len.saturating_add(1);
        }
    }

    /// Hands every waiting event to `sink`, oldest first.
    pub fn drain(&mut self, sink: &mut impl EventSink) {
        while self.len > 0 {
            if let Some(e) = self.ring.get_mut(self.head).and_then(Option::take) {
                sink.event(&e);
            }
            self.head = self.head.wrapping_add(1) % Self::CAPACITY;
            self.len = self.len.saturating_sub(1);
        }
    }

    /// Events dropped because the log was full.
    pub const fn dropped(&self) -> u64 {
        self.dropped
    }

    /// Events waiting.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether none is waiting.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
}

impl EventSink for alloc::vec::Vec<Event> {
    fn event(&mut self, e: &Event) {
        self.push(*e);
    }
}
