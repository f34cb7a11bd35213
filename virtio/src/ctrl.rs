//! The virtio-net control virtqueue (virtio 1.2 §5.1.6.5): command encoding, and a queue that
//! runs one command at a time and completes it asynchronously (by interrupt or poll) — the caller
//! bounds the wait; nothing here spins.

use core::fmt;
use core::sync::atomic::Ordering;

use crate::Features;
use crate::hal::{Dma, DmaRegion};
use crate::queue::shared::Shared;
use crate::queue::{QueueConfig, QueueError, Segment, VirtQueue};

/// `VIRTIO_NET_OK`.
pub const ACK_OK: u8 = 0;
/// `VIRTIO_NET_ERR`.
pub const ACK_ERR: u8 = 1;

/// Command classes and codes.
pub mod class {
    /// `VIRTIO_NET_CTRL_RX`.
    pub const RX: u8 = 0;
    /// `VIRTIO_NET_CTRL_MAC`.
    pub const MAC: u8 = 1;
    /// `VIRTIO_NET_CTRL_VLAN`.
    pub const VLAN: u8 = 2;
    /// `VIRTIO_NET_CTRL_ANNOUNCE`.
    pub const ANNOUNCE: u8 = 3;
    /// `VIRTIO_NET_CTRL_MQ`.
    pub const MQ: u8 = 4;
    /// `VIRTIO_NET_CTRL_GUEST_OFFLOADS`.
    pub const GUEST_OFFLOADS: u8 = 5;
    /// `VIRTIO_NET_CTRL_NOTF_COAL`.
    pub const NOTF_COAL: u8 = 6;
}

/// RX mode switches (`VIRTIO_NET_CTRL_RX_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum RxMode {
    /// Promiscuous.
    Promisc = 0,
    /// All multicast.
    AllMulti = 1,
    /// All unicast (CTRL_RX_EXTRA).
    AllUni = 2,
    /// No multicast (CTRL_RX_EXTRA).
    NoMulti = 3,
    /// No unicast (CTRL_RX_EXTRA).
    NoUni = 4,
    /// No broadcast (CTRL_RX_EXTRA).
    NoBcast = 5,
}

/// A control command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command<'a> {
    /// `VIRTIO_NET_CTRL_RX_*`: turn a mode on or off.
    RxMode(RxMode, bool),
    /// `VIRTIO_NET_CTRL_MAC_TABLE_SET`: the unicast and multicast filter tables.
    MacTableSet {
        /// Unicast addresses (besides the primary MAC).
        unicast: &'a [[u8; 6]],
        /// Multicast addresses.
        multicast: &'a [[u8; 6]],
    },
    /// `VIRTIO_NET_CTRL_MAC_ADDR_SET`.
    MacAddrSet([u8; 6]),
    /// `VIRTIO_NET_CTRL_VLAN_ADD`.
    VlanAdd(u16),
    /// `VIRTIO_NET_CTRL_VLAN_DEL`.
    VlanDel(u16),
    /// `VIRTIO_NET_CTRL_ANNOUNCE_ACK`.
    AnnounceAck,
    /// `VIRTIO_NET_CTRL_MQ_VQ_PAIRS_SET`.
    MqPairsSet(u16),
    /// `VIRTIO_NET_CTRL_MQ_RSS_CONFIG`.
    RssConfig {
        /// `VIRTIO_NET_RSS_HASH_TYPE_*` bits.
        hash_types: u32,
        /// Receive queue (pair) per table entry; length a power of two.
        indirection_table: &'a [u16],
        /// Queue for packets that are not hashed.
        unclassified_queue: u16,
        /// Transmit queues the driver uses.
        max_tx_vq: u16,
        /// Toeplitz key.
        key: &'a [u8],
    },
    /// `VIRTIO_NET_CTRL_MQ_HASH_CONFIG` (hash reporting without steering).
    HashConfig {
        /// Hash types.
        hash_types: u32,
        /// Toeplitz key.
        key: &'a [u8],
    },
    /// `VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET`: the guest (RX) offload feature bits to enable.
    GuestOffloadsSet(u64),
    /// `VIRTIO_NET_CTRL_NOTF_COAL_TX_SET`.
    CoalesceTx {
        /// Packets before a notification.
        max_packets: u32,
        /// Microseconds before a notification.
        usecs: u32,
    },
    /// `VIRTIO_NET_CTRL_NOTF_COAL_RX_SET`.
    CoalesceRx {
        /// Packets before a notification.
        max_packets: u32,
        /// Microseconds before a notification.
        usecs: u32,
    },
}

/// Control path errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CtrlError {
    /// A command is already in flight.
    Busy,
    /// The feature the command needs was not negotiated.
    Unsupported(Features),
    /// A parameter the spec forbids (VLAN id > 4095, table not a power of two, …).
    InvalidArgument(&'static str),
    /// The encoded command does not fit the command buffer.
    TooLarge,
    /// The device answered VIRTIO_NET_ERR.
    Rejected,
    /// The device completed the command without writing the ack byte, or with another value.
    BadAck(u8),
    /// The device completed a chain that was not the pending command.
    UnexpectedCompletion(u16),
    /// The virtqueue failed (possibly a device fault).
    Queue(QueueError),
}

impl From<QueueError> for CtrlError {
    fn from(e: QueueError) -> Self {
        Self::Queue(e)
    }
}

impl fmt::Display for CtrlError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Busy => f.write_str("a control command is already pending"),
            Self::Unsupported(feat) => write!(f, "control command needs {feat:?}"),
            Self::InvalidArgument(what) => write!(f, "invalid control command: {what}"),
            Self::TooLarge => f.write_str("control command too large"),
            Self::Rejected => f.write_str("device rejected the control command"),
            Self::BadAck(v) => write!(f, "device returned ack {v:#x}"),
            Self::UnexpectedCompletion(id) => write!(f, "unexpected control completion {id}"),
            Self::Queue(e) => e.fmt(f),
        }
    }
}

impl core::error::Error for CtrlError {}

struct Writer<'b> {
    out: &'b mut [u8],
    at: usize,
}

impl Writer<'_> {
    fn put(&mut self, bytes: &[u8]) -> Result<(), CtrlError> {
        let end = self
            .at
            .checked_add(bytes.len())
            .ok_or(CtrlError::TooLarge)?;
        self.out
            .get_mut(self.at..end)
            .ok_or(CtrlError::TooLarge)?
            .copy_from_slice(bytes);
        self.at = end;
        Ok(())
    }
}

impl Command<'_> {
    /// (class, command) codes.
    pub const fn codes(&self) -> (u8, u8) {
        match self {
            Self::RxMode(m, _) => (class::RX, *m as u8),
            Self::MacTableSet { .. } => (class::MAC, 0),
            Self::MacAddrSet(_) => (class::MAC, 1),
            Self::VlanAdd(_) => (class::VLAN, 0),
            Self::VlanDel(_) => (class::VLAN, 1),
            Self::AnnounceAck => (class::ANNOUNCE, 0),
            Self::MqPairsSet(_) => (class::MQ, 0),
            Self::RssConfig { .. } => (class::MQ, 1),
            Self::HashConfig { .. } => (class::MQ, 2),
            Self::GuestOffloadsSet(_) => (class::GUEST_OFFLOADS, 0),
            Self::CoalesceTx { .. } => (class::NOTF_COAL, 0),
            Self::CoalesceRx { .. } => (class::NOTF_COAL, 1),
        }
    }

    /// The features the device must have accepted for this command.
    pub const fn required_features(&self) -> Features {
        let f = match self {
            Self::RxMode(RxMode::Promisc | RxMode::AllMulti, _) => Features::NET_CTRL_RX,
            Self::RxMode(..) => Features::NET_CTRL_RX_EXTRA,
            Self::MacTableSet { .. } => Features::NET_CTRL_RX,
            Self::MacAddrSet(_) => Features::NET_CTRL_MAC_ADDR,
            Self::VlanAdd(_) | Self::VlanDel(_) => Features::NET_CTRL_VLAN,
            Self::AnnounceAck => Features::NET_GUEST_ANNOUNCE,
            Self::MqPairsSet(_) => Features::NET_MQ,
            Self::RssConfig { .. } => Features::NET_RSS,
            Self::HashConfig { .. } => Features::NET_HASH_REPORT,
            Self::GuestOffloadsSet(_) => Features::NET_CTRL_GUEST_OFFLOADS,
            Self::CoalesceTx { .. } | Self::CoalesceRx { .. } => Features::NET_NOTF_COAL,
        };
        f.union(Features::NET_CTRL_VQ)
    }

    /// Encodes header and payload (`struct virtio_net_ctrl` then the command data) into `out`;
    /// returns the length.
    pub fn encode(&self, out: &mut [u8]) -> Result<usize, CtrlError> {
        let (class, cmd) = self.codes();
        let mut w = Writer { out, at: 0 };
        w.put(&[class, cmd])?;
        match *self {
            Self::RxMode(_, on) => w.put(&[u8::from(on)])?,
            Self::MacTableSet { unicast, multicast } => {
                for table in [unicast, multicast] {
                    let n = u32::try_from(table.len())
                        .map_err(|_| CtrlError::InvalidArgument("MAC table too long"))?;
                    w.put(&n.to_le_bytes())?;
                    for mac in table {
                        w.put(mac)?;
                    }
                }
            }
            Self::MacAddrSet(mac) => w.put(&mac)?,
            Self::VlanAdd(vid) | Self::VlanDel(vid) => {
                if vid > 4095 {
                    return Err(CtrlError::InvalidArgument("VLAN id above 4095"));
                }
                w.put(&vid.to_le_bytes())?;
            }
            Self::AnnounceAck => {}
            Self::MqPairsSet(n) => {
                if !(1..=0x8000).contains(&n) {
                    return Err(CtrlError::InvalidArgument("queue pairs outside 1..=0x8000"));
                }
                w.put(&n.to_le_bytes())?;
            }
            Self::RssConfig {
                hash_types,
                indirection_table,
                unclassified_queue,
                max_tx_vq,
                key,
            } => {
                let len = indirection_table.len();
                if len == 0 || !len.is_power_of_two() || len > 0x8000 {
                    return Err(CtrlError::InvalidArgument(
                        "indirection table length not a power of two",
                    ));
                }
                let key_len = u8::try_from(key.len())
                    .map_err(|_| CtrlError::InvalidArgument("hash key longer than 255"))?;
                if max_tx_vq == 0 {
                    return Err(CtrlError::InvalidArgument("max_tx_vq is 0"));
                }
                w.put(&hash_types.to_le_bytes())?;
                w.put(&(len.saturating_sub(1) as u16).to_le_bytes())?;
                w.put(&unclassified_queue.to_le_bytes())?;
                for q in indirection_table {
                    w.put(&q.to_le_bytes())?;
                }
                w.put(&max_tx_vq.to_le_bytes())?;
                w.put(&[key_len])?;
                w.put(key)?;
            }
            Self::HashConfig { hash_types, key } => {
                let key_len = u8::try_from(key.len())
                    .map_err(|_| CtrlError::InvalidArgument("hash key longer than 255"))?;
                w.put(&hash_types.to_le_bytes())?;
                w.put(&[0; 8])?;
                w.put(&[key_len])?;
                w.put(key)?;
            }
            Self::GuestOffloadsSet(bits) => w.put(&bits.to_le_bytes())?,
            Self::CoalesceTx { max_packets, usecs } | Self::CoalesceRx { max_packets, usecs } => {
                w.put(&max_packets.to_le_bytes())?;
                w.put(&usecs.to_le_bytes())?;
            }
        }
        Ok(w.at)
    }
}

/// Size of the command buffer (the largest command: RSS with a 0x8000-entry table does not fit;
/// devices limit the table far below that — QEMU to 128 entries).
pub const COMMAND_BUFFER: usize = 2048;

/// The control virtqueue with its command buffer; one command in flight at a time.
#[derive(Debug)]
pub struct ControlQueue {
    queue: VirtQueue,
    buffer: DmaRegion,
    mem: Shared,
    pending: Option<u16>,
    features: Features,
}

impl ControlQueue {
    /// Builds the queue and its DMA command buffer (command, then the ack byte).
    pub fn new(dma: &impl Dma, config: QueueConfig, features: Features) -> Result<Self, CtrlError> {
        let queue = VirtQueue::new(dma, config)?;
        let Some(buffer) = dma.alloc(COMMAND_BUFFER + 16, 16) else {
            queue.free(dma);
            return Err(CtrlError::Queue(QueueError::OutOfMemory));
        };
        // SAFETY: zeroed DMA memory valid for its length, 16-aligned, freed only in `free`.
        let mem = unsafe { Shared::new(buffer.cpu(), buffer.len()) };
        Ok(Self {
            queue,
            buffer,
            mem,
            pending: None,
            features,
        })
    }

    /// Frees the queue and buffer (after the device stopped using them).
    pub fn free(self, dma: &impl Dma) {
        self.queue.free(dma);
        dma.free(self.buffer);
    }

    /// The virtqueue (for its addresses and for notification control).
    pub fn queue(&mut self) -> &mut VirtQueue {
        &mut self.queue
    }

    /// Whether a command is waiting for the device.
    pub const fn is_pending(&self) -> bool {
        self.pending.is_some()
    }

    /// Encodes `cmd` into the DMA buffer and posts it; returns whether the device wants a kick.
    pub fn submit(&mut self, cmd: &Command<'_>) -> Result<bool, CtrlError> {
        if self.pending.is_some() {
            return Err(CtrlError::Busy);
        }
        let needs = cmd.required_features();
        if !self.features.contains(needs) {
            return Err(CtrlError::Unsupported(needs.difference(self.features)));
        }
        let mut staging = [0u8; COMMAND_BUFFER];
        let len = cmd.encode(&mut staging)?;
        self.mem.write_bytes(0, staging.get(..len).unwrap_or(&[]));
        // Poison the ack so a completion without a write is caught.
        self.mem.store8(COMMAND_BUFFER, 0xff, Ordering::Relaxed);
        let base = self.buffer.device();
        let id = self.queue.add(
            &[Segment {
                addr: base,
                len: len as u32,
            }],
            &[Segment {
                // Inside the buffer (COMMAND_BUFFER + 16 bytes): never wraps.
                addr: base.wrapping_add(COMMAND_BUFFER as u64),
                len: 1,
            }],
        )?;
        self.pending = Some(id);
        Ok(self.queue.publish())
    }

    /// Checks for the pending command's completion: `None` while it is still running.
    pub fn poll(&mut self) -> Option<Result<(), CtrlError>> {
        let used = match self.queue.pop_used() {
            Ok(Some(u)) => u,
            Ok(None) => return None,
            Err(e) => {
                self.pending = None;
                return Some(Err(e.into()));
            }
        };
        if self.pending != Some(used.id) {
            return Some(Err(CtrlError::UnexpectedCompletion(used.id)));
        }
        self.pending = None;
        let ack = self.mem.load8(COMMAND_BUFFER, Ordering::Acquire);
        Some(match (used.len, ack) {
            (1, ACK_OK) => Ok(()),
            (1, ACK_ERR) => Err(CtrlError::Rejected),
            (_, v) => Err(CtrlError::BadAck(v)),
        })
    }

    /// After a device reset: forgets the pending command and resets the ring.
    pub fn reset(&mut self) {
        self.pending = None;
        self.queue.reset(|_| {});
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(c: Command<'_>) -> ([u8; 512], usize) {
        let mut b = [0u8; 512];
        let n = c.encode(&mut b).unwrap();
        (b, n)
    }

    #[test]
    fn encodings_match_the_spec_layouts() {
        let (b, n) = enc(Command::RxMode(RxMode::Promisc, true));
        assert_eq!(&b[..n], &[0, 0, 1]);
        let (b, n) = enc(Command::RxMode(RxMode::NoBcast, false));
        assert_eq!(&b[..n], &[0, 5, 0]);
        let (b, n) = enc(Command::VlanAdd(100));
        assert_eq!(&b[..n], &[2, 0, 100, 0]);
        let (b, n) = enc(Command::MqPairsSet(4));
        assert_eq!(&b[..n], &[4, 0, 4, 0]);
        let (b, n) = enc(Command::GuestOffloadsSet(0x83));
        assert_eq!(&b[..n], &[5, 0, 0x83, 0, 0, 0, 0, 0, 0, 0]);
        let (b, n) = enc(Command::CoalesceRx {
            max_packets: 32,
            usecs: 50,
        });
        assert_eq!(&b[..n], &[6, 1, 32, 0, 0, 0, 50, 0, 0, 0]);
        let (b, n) = enc(Command::AnnounceAck);
        assert_eq!(&b[..n], &[3, 0]);
        let m1 = [0x01, 0, 0x5e, 0, 0, 1];
        let (b, n) = enc(Command::MacTableSet {
            unicast: &[],
            multicast: &[m1],
        });
        assert_eq!(
            &b[..n],
            &[1, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0x5e, 0, 0, 1]
        );
        let (b, n) = enc(Command::RssConfig {
            hash_types: 0x3f,
            indirection_table: &[0, 1, 0, 1],
            unclassified_queue: 0,
            max_tx_vq: 2,
            key: &[0xaa, 0xbb],
        });
        assert_eq!(
            &b[..n],
            &[
                4, 1, 0x3f, 0, 0, 0, 3, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1, 0, 2, 0, 2, 0xaa, 0xbb
            ]
        );
        let (b, n) = enc(Command::HashConfig {
            hash_types: 1,
            key: &[7],
        });
        assert_eq!(&b[..n], &[4, 2, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 7]);
    }

    #[test]
    fn invalid_commands_are_refused() {
        let mut b = [0u8; 64];
        assert!(matches!(
            Command::VlanAdd(4096).encode(&mut b),
            Err(CtrlError::InvalidArgument(_))
        ));
        assert!(matches!(
            Command::MqPairsSet(0).encode(&mut b),
            Err(CtrlError::InvalidArgument(_))
        ));
        let bad = Command::RssConfig {
            hash_types: 1,
            indirection_table: &[0, 1, 2],
            unclassified_queue: 0,
            max_tx_vq: 1,
            key: &[],
        };
        assert!(matches!(
            bad.encode(&mut b),
            Err(CtrlError::InvalidArgument(_))
        ));
        let big = [[0u8; 6]; 20];
        assert_eq!(
            Command::MacTableSet {
                unicast: &big,
                multicast: &[]
            }
            .encode(&mut b),
            Err(CtrlError::TooLarge)
        );
        assert_eq!(
            Command::AnnounceAck.encode(&mut [0u8; 1]),
            Err(CtrlError::TooLarge)
        );
    }

    #[test]
    fn feature_requirements() {
        assert!(
            Command::RxMode(RxMode::AllUni, true)
                .required_features()
                .contains(Features::NET_CTRL_RX_EXTRA | Features::NET_CTRL_VQ)
        );
        assert!(
            Command::VlanDel(1)
                .required_features()
                .contains(Features::NET_CTRL_VLAN)
        );
    }
}
