//! The back-off both queue engines use to repeat a notification the device may have missed.
//!
//! A device that misses a kick stalls its queue for good: QEMU 7.2's packed ring can report an
//! event index whose wrap bit disagrees with its position, so event suppression says "no kick"
//! while the device waits for one. When Advance after Advance the queue is stuck — it could be
//! waiting on the device and nothing moved — the engine kicks anyway, on the 2nd, 4th, 8th…
//! stuck Advance in a row: a device that is merely slow, or an idle link, costs a few
//! notifications, not one per poll. NetAdapterCx calls Advance once more after arming, so a
//! stall is broken there too.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

/// Consecutive stuck Advances.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct StallGuard {
    stuck: u32,
}

impl StallGuard {
    /// Records one Advance (`stuck`: the queue may be waiting on the device and nothing moved);
    /// returns whether to kick now.
    pub fn advance(&mut self, stuck: bool) -> bool {
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
        let mut g = StallGuard::default();
        let kicks: alloc::vec::Vec<bool> = (0..9).map(|_| g.advance(true)).collect();
        assert_eq!(
            kicks,
            [false, true, false, true, false, false, false, true, false]
        );
        assert!(!g.advance(false));
        assert!(!g.advance(true) && g.advance(true), "the count starts over");
    }
}
