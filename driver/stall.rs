//! The back-off both queue engines use to repeat a notification the device may have missed, and
//! where it is armed at all.
//!
//! A kick is a VM exit, so a kick the device did not ask for is pure cost. A device that misses a
//! kick it needed stalls its queue for good, though, and two cases are known:
//!
//! * **The packed ring** ([`Features::RING_PACKED`]): QEMU 7.2's packed ring can report an event
//!   index whose wrap bit disagrees with its position, so event suppression says "no kick" while
//!   the device waits for one. Both directions keep the guard there.
//! * **RX with the device steering** ([`Features::NET_RSS`]): QEMU's software RSS
//!   (`virtio_net_receive_rcu` → `virtio_net_process_rss`, hw/net/virtio-net.c) hands a packet
//!   that arrived on subqueue *i* to its target queue *j*; when *j* has no buffer the packet is
//!   parked on *i*'s incoming queue and *i* stops receiving altogether (`receive_disabled`,
//!   net/net.c), and the only thing that releases it is a flush of *i* — the RX kick handler
//!   `virtio_net_handle_rx` flushes the kicked queue's own subqueue, so the kick that frees the
//!   packet is one on *i*, a queue that has buffers and whose event index is frozen (QEMU writes
//!   `avail_event` only when a queue runs short). Nothing on *i* shows the park but silence, so
//!   an RX queue under steering kicks again after any stretch of Advances with nothing received
//!   and nothing posted — whether or not its last buffers went out under a suppressed kick.
//!
//! Everywhere else — the split ring without steering — no repeat: QEMU re-checks the ring after
//! enabling notifications (`virtio_net_has_buffers` for RX, `virtio_net_tx_bh` for TX), so it
//! never misses a buffer it was told about, and a pause in the stream is just a pause.
//!
//! When the guard is armed and, Advance after Advance, the queue is stuck, the engine kicks on
//! the 2nd, 4th, 8th… stuck Advance in a row: a device that is merely slow, or an idle link,
//! costs a few notifications, not one per poll. NetAdapterCx calls Advance once more after
//! arming, so a stall is broken there too.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use virtio::Features;

/// What makes a queue stuck, given the device (module doc).
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub enum StallPolicy {
    /// Never repeat a kick (the split ring without steering).
    #[default]
    Never,
    /// Repeat when buffers or chains published under a suppressed kick have not moved
    /// (the packed ring's event wrap bit).
    Unannounced,
    /// RX under device steering: repeat after any stretch with nothing received and nothing
    /// posted (a packet for another queue may be parked on this one).
    Idle,
}

impl StallPolicy {
    /// The TX queue's policy for the negotiated `features`.
    pub fn tx(features: Features) -> Self {
        if features.contains(Features::RING_PACKED) {
            Self::Unannounced
        } else {
            Self::Never
        }
    }

    /// The RX queue's policy for the negotiated `features`.
    pub fn rx(features: Features) -> Self {
        if features.contains(Features::NET_RSS) {
            Self::Idle
        } else if features.contains(Features::RING_PACKED) {
            Self::Unannounced
        } else {
            Self::Never
        }
    }
}

/// Consecutive stuck Advances.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StallGuard {
    stuck: u32,
    policy: StallPolicy,
}

impl StallGuard {
    /// A guard for a queue under `policy`.
    pub const fn new(policy: StallPolicy) -> Self {
        Self { stuck: 0, policy }
    }

    /// Records one Advance: `idle` — nothing moved (nothing received or completed, nothing
    /// posted); `unannounced` — something published under a suppressed kick is still
    /// outstanding. Returns whether to kick now.
    pub fn advance(&mut self, idle: bool, unannounced: bool) -> bool {
        let stuck = idle
            && match self.policy {
                StallPolicy::Never => false,
                StallPolicy::Unannounced => unannounced,
                StallPolicy::Idle => true,
            };
        if !stuck {
            self.stuck = 0;
            return false;
        }
        self.stuck = self.stuck.saturating_add(1);
        self.stuck >= 2 && self.stuck.is_power_of_two()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kicks_on_the_2nd_4th_8th_stuck_advance_and_starts_over_when_the_queue_moves() {
        for policy in [StallPolicy::Unannounced, StallPolicy::Idle] {
            let mut g = StallGuard::new(policy);
            let kicks: alloc::vec::Vec<bool> = (0..9).map(|_| g.advance(true, true)).collect();
            assert_eq!(
                kicks,
                [false, true, false, true, false, false, false, true, false]
            );
            assert!(!g.advance(false, true));
            assert!(
                !g.advance(true, true) && g.advance(true, true),
                "the count starts over"
            );
        }
    }

    #[test]
    fn what_counts_as_stuck_depends_on_the_policy() {
        let run = |policy, unannounced| {
            let mut g = StallGuard::new(policy);
            (0..8).filter(|_| g.advance(true, unannounced)).count()
        };
        assert_eq!(run(StallPolicy::Never, true), 0);
        assert_eq!(run(StallPolicy::Unannounced, true), 3);
        assert_eq!(run(StallPolicy::Unannounced, false), 0);
        assert_eq!(run(StallPolicy::Idle, false), 3);
    }

    #[test]
    fn the_policy_follows_the_ring_and_steering() {
        let packed = Features::VERSION_1 | Features::RING_PACKED;
        let split = Features::VERSION_1;
        assert_eq!(StallPolicy::tx(split), StallPolicy::Never);
        assert_eq!(StallPolicy::tx(packed), StallPolicy::Unannounced);
        assert_eq!(
            StallPolicy::tx(split | Features::NET_RSS),
            StallPolicy::Never
        );
        assert_eq!(StallPolicy::rx(split), StallPolicy::Never);
        assert_eq!(StallPolicy::rx(packed), StallPolicy::Unannounced);
        assert_eq!(
            StallPolicy::rx(split | Features::NET_RSS),
            StallPolicy::Idle
        );
        assert_eq!(
            StallPolicy::rx(packed | Features::NET_RSS),
            StallPolicy::Idle
        );
    }
}
