//! Interrupts, the portable part: the ISR status register's causes. Which MSI-X message means
//! what is the core's [`Vectors`](crate::vectors::Vectors), made with the pair count; the
//! per-queue notification state is the core's [`NotifyGate`](crate::notify::NotifyGate).

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

#[cfg(test)]
mod tests {
    use super::SharedCause;

    #[test]
    fn shared_interrupt_causes_from_the_isr_register() {
        assert_eq!(SharedCause::from_isr(0), None);
        assert_eq!(
            SharedCause::from_isr(0xFF),
            None,
            "a removed device is not our interrupt"
        );
        assert_eq!(
            SharedCause::from_isr(3),
            Some(SharedCause {
                queues: true,
                config: true
            })
        );
        assert_eq!(
            SharedCause::from_isr(2),
            Some(SharedCause {
                queues: false,
                config: true
            })
        );
        assert_eq!(
            SharedCause::from_isr(1),
            Some(SharedCause {
                queues: true,
                config: false
            })
        );
        assert_eq!(SharedCause::from_isr(4), None, "no cause bit set");
    }
}
