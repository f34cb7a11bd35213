//! The interrupt layout: which MSI-X message each of the device's interrupt sources uses. One
//! plan, made by the core from the messages the PnP manager granted and the final queue-pair
//! count; the core programs it into the device and the glue's ISR and DPCs decode it, so the two
//! cannot disagree.
//!
//! * Enough messages for every source (`2 × pairs + 2`): message 0 is configuration changes,
//!   then one per virtqueue in queue-index order (rx0, tx0, rx1, tx1, …), then the control
//!   queue.
//! * Fewer (only one pair then): the sources share what was granted — 3 messages: configuration
//!   and control on 0, rx0 on 1, tx0 on 2; 2 messages: configuration and control on 0, both
//!   queues on 1; 1 message: everything on 0. A message that carries configuration changes
//!   next to other sources is told apart by the ISR status register's configuration bit, which
//!   the device sets before every configuration notification, MSI-X or not (virtio 1.2
//!   §4.1.4.5.1).
//! * No MSI-X (a line-based or MSI interrupt): no vectors at all; the ISR status register says
//!   what happened.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use virtio::pci::NO_VECTOR;

/// Sources sharing one message: a queue pair, or every pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Pairs {
    /// No queue.
    None,
    /// This pair's queue.
    One(u16),
    /// Every pair's queue (a shared message).
    All,
}

/// What an interrupt message may mean.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sources {
    /// Configuration changes (link, announce, NEEDS_RESET).
    pub config: bool,
    /// The control queue.
    pub control: bool,
    /// Receive queues.
    pub rx: Pairs,
    /// Transmit queues.
    pub tx: Pairs,
}

impl Sources {
    const NONE: Self = Self {
        config: false,
        control: false,
        rx: Pairs::None,
        tx: Pairs::None,
    };

    /// Whether configuration changes share the message with anything else (then the ISR
    /// status register's configuration bit tells them apart).
    pub const fn config_shared(&self) -> bool {
        self.config
            && (self.control || !matches!(self.rx, Pairs::None) || !matches!(self.tx, Pairs::None))
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// No MSI-X.
    Line,
    /// Configuration, control and queues on message 0.
    One,
    /// Configuration and control on 0, every queue on 1.
    Two,
    /// Configuration and control on 0, rx0 on 1, tx0 on 2.
    Three,
    /// One message per source.
    PerSource,
}

/// The layout (see the module documentation).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Vectors {
    pairs: u16,
    mode: Mode,
}

impl Vectors {
    /// Messages that give `pairs` queue pairs a message per source: configuration, two per
    /// pair, control.
    pub const fn messages_for(pairs: u16) -> u32 {
        // At most 2 × 65,535 + 2: no overflow in u32.
        (pairs as u32).wrapping_mul(2).wrapping_add(2)
    }

    /// The most queue pairs `granted` MSI-X messages carry with a message per source, rounded
    /// down to a power of two (NetAdapterCx's receive scaling requires one); at least 1 (with
    /// fewer than 4 messages, or none, one pair shares them).
    pub const fn pairs_for(granted: u16) -> u16 {
        if (granted as u32) < Self::messages_for(1) {
            return 1;
        }
        // granted >= 4 here, so fit >= 1 and its leading zeros are at most 15.
        let fit = granted.wrapping_sub(2) / 2;
        1 << 15u32.saturating_sub(fit.leading_zeros())
    }

    /// The layout of up to `pairs` queue pairs over `granted` MSI-X messages (0: no MSI-X):
    /// `pairs` lowered to [`pairs_for`](Self::pairs_for)`(granted)` and to a power of two.
    pub const fn new(granted: u16, pairs: u16) -> Self {
        let fit = Self::pairs_for(granted);
        let pairs = if pairs == 0 {
            1
        } else if pairs > fit {
            fit
        } else {
            // pairs >= 1: the largest power of two <= pairs.
            1 << 15u32.saturating_sub(pairs.leading_zeros())
        };
        let mode = match granted {
            0 => Mode::Line,
            1 => Mode::One,
            2 => Mode::Two,
            3 => Mode::Three,
            _ => Mode::PerSource,
        };
        Self { pairs, mode }
    }

    /// Queue pairs the layout serves.
    pub const fn pairs(&self) -> u16 {
        self.pairs
    }

    /// Whether MSI-X messages are used (else the line-based interrupt and the ISR register).
    pub const fn msix(&self) -> bool {
        !matches!(self.mode, Mode::Line)
    }

    /// Interrupt objects to create: the messages in use (1 without MSI-X).
    pub const fn messages(&self) -> u32 {
        match self.mode {
            Mode::Line | Mode::One => 1,
            Mode::Two => 2,
            Mode::Three => 3,
            Mode::PerSource => Self::messages_for(self.pairs),
        }
    }

    /// The configuration-change vector.
    pub const fn config(&self) -> u16 {
        match self.mode {
            Mode::Line => NO_VECTOR,
            _ => 0,
        }
    }

    /// The vector of virtqueue `index` (rx of pair k is 2k, tx 2k + 1); NO_VECTOR for a queue
    /// outside the layout.
    pub const fn queue(&self, index: u16) -> u16 {
        // pairs <= 2^14 (`pairs_for`): 2 × pairs and 1 + index (< 2 × pairs) fit a u16.
        if index >= self.pairs.wrapping_mul(2) {
            return NO_VECTOR;
        }
        match self.mode {
            Mode::Line => NO_VECTOR,
            Mode::One => 0,
            Mode::Two => 1,
            Mode::Three | Mode::PerSource => index.wrapping_add(1),
        }
    }

    /// The control queue's vector.
    pub const fn control(&self) -> u16 {
        match self.mode {
            Mode::Line => NO_VECTOR,
            Mode::One | Mode::Two | Mode::Three => 0,
            // pairs <= 2^14: no overflow.
            Mode::PerSource => self.pairs.wrapping_mul(2).wrapping_add(1),
        }
    }

    /// What message `message` may mean (nothing for a message outside the layout, or without
    /// MSI-X, where the ISR status register says).
    pub const fn sources(&self, message: u32) -> Sources {
        let all = Sources {
            config: true,
            control: true,
            rx: Pairs::All,
            tx: Pairs::All,
        };
        let config_control = Sources {
            config: true,
            control: true,
            ..Sources::NONE
        };
        match (self.mode, message) {
            (Mode::Line, _) => Sources::NONE,
            (Mode::One, 0) => all,
            (Mode::Two | Mode::Three, 0) => config_control,
            (Mode::Two, 1) => Sources {
                rx: Pairs::All,
                tx: Pairs::All,
                ..Sources::NONE
            },
            (Mode::Three, 1) => Sources {
                rx: Pairs::One(0),
                ..Sources::NONE
            },
            (Mode::Three, 2) => Sources {
                tx: Pairs::One(0),
                ..Sources::NONE
            },
            (Mode::PerSource, 0) => Sources {
                config: true,
                ..Sources::NONE
            },
            (Mode::PerSource, m) => {
                // At least 4 messages: the last one is the control queue's.
                let control = Self::messages_for(self.pairs).wrapping_sub(1);
                if m == control {
                    Sources {
                        control: true,
                        ..Sources::NONE
                    }
                } else if m < control {
                    // m >= 1 (0 is matched above).
                    let q = m.wrapping_sub(1);
                    let pair = (q / 2) as u16;
                    if q % 2 == 0 {
                        Sources {
                            rx: Pairs::One(pair),
                            ..Sources::NONE
                        }
                    } else {
                        Sources {
                            tx: Pairs::One(pair),
                            ..Sources::NONE
                        }
                    }
                } else {
                    Sources::NONE
                }
            }
            _ => Sources::NONE,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every vector the device is given is decoded back to its source, for every grant.
    #[test]
    fn programmed_vectors_decode_to_their_sources() {
        for granted in 0..=40u16 {
            for wanted in 1..=16u16 {
                let v = Vectors::new(granted, wanted);
                let p = v.pairs();
                assert!(
                    p.is_power_of_two() && p <= wanted.max(1),
                    "{granted} {wanted}"
                );
                if !v.msix() {
                    assert_eq!(v.config(), NO_VECTOR);
                    assert_eq!(v.control(), NO_VECTOR);
                    continue;
                }
                assert!(v.messages() <= u32::from(granted));
                let s = v.sources(u32::from(v.config()));
                assert!(s.config);
                assert!(v.sources(u32::from(v.control())).control);
                for k in 0..p {
                    let rx = v.sources(u32::from(v.queue(2 * k))).rx;
                    let tx = v.sources(u32::from(v.queue(2 * k + 1))).tx;
                    assert!(matches!(rx, Pairs::All) || rx == Pairs::One(k));
                    assert!(matches!(tx, Pairs::All) || tx == Pairs::One(k));
                    assert!(u32::from(v.queue(2 * k)) < v.messages());
                }
                assert_eq!(v.queue(2 * p), NO_VECTOR, "no vector past the pairs");
                assert_eq!(v.sources(v.messages()), Sources::NONE);
            }
        }
    }

    #[test]
    fn pairs_follow_the_grant_as_a_power_of_two() {
        assert_eq!(Vectors::pairs_for(0), 1);
        assert_eq!(Vectors::pairs_for(3), 1);
        assert_eq!(Vectors::pairs_for(4), 1);
        assert_eq!(Vectors::pairs_for(6), 2);
        assert_eq!(
            Vectors::pairs_for(8),
            2,
            "3 pairs fit, 2 is the power of two"
        );
        assert_eq!(Vectors::pairs_for(10), 4);
        assert_eq!(Vectors::pairs_for(18), 8);
        assert_eq!(Vectors::new(18, 3).pairs(), 2, "a power of two");
        assert_eq!(Vectors::new(18, 4).pairs(), 4);
        assert_eq!(Vectors::new(2, 4).pairs(), 1);
    }

    #[test]
    fn shared_messages_say_so() {
        assert!(Vectors::new(1, 1).sources(0).config_shared());
        assert!(Vectors::new(3, 1).sources(0).config_shared());
        assert!(!Vectors::new(4, 1).sources(0).config_shared());
        assert_eq!(Vectors::new(2, 1).sources(1).rx, Pairs::All);
    }
}
