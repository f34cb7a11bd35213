//! Virtqueues, driver side: the split ring (virtio 1.2 §2.7) and the packed ring (§2.8) behind
//! one API, so the queue engines do not care which layout was negotiated.
//!
//! The driver's own shadow — free list, in-flight chains, their writable lengths — is the source
//! of truth; device-writable memory is read only for what the device reports (used entries,
//! event-suppression hints), and every report is checked against the shadow. A device that
//! breaks the contract gets a typed [`QueueError`], the queue is marked broken, and nothing is
//! freed twice. Nothing here allocates after creation or panics.

use alloc::vec::Vec;
use core::fmt;

use crate::hal::{Dma, DmaRegion};

mod packed;
pub(crate) mod shared;
mod split;

pub use packed::PackedQueue;
pub use split::SplitQueue;

/// Longest chain posted with direct descriptors when the ring has room; longer chains go into an
/// indirect table (when negotiated).
pub const DIRECT_MAX: usize = 3;

/// `VIRTQ_DESC_F_NEXT`.
pub const DESC_F_NEXT: u16 = 1;
/// `VIRTQ_DESC_F_WRITE`: device-writable buffer.
pub const DESC_F_WRITE: u16 = 2;
/// `VIRTQ_DESC_F_INDIRECT`.
pub const DESC_F_INDIRECT: u16 = 4;

/// One buffer of a chain: device address and length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Segment {
    /// Device address.
    pub addr: u64,
    /// Length in bytes.
    pub len: u32,
}

/// A completed buffer: its id (as returned by `add`) and the bytes the device wrote.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Used {
    /// The id `add` returned.
    pub id: u16,
    /// Bytes written into the writable part of the chain.
    pub len: u32,
}

/// Ring layout.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Layout {
    /// Split virtqueue (§2.7).
    Split,
    /// Packed virtqueue (§2.8; VIRTIO_F_RING_PACKED).
    Packed,
}

/// How to build a queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueConfig {
    /// Number of descriptors (split: a power of two ≤ 32768; packed: 1–32768).
    pub size: u16,
    /// Ring layout.
    pub layout: Layout,
    /// VIRTIO_F_RING_EVENT_IDX was negotiated.
    pub event_idx: bool,
    /// Largest chain to put in an indirect table (0: no indirect descriptors; needs
    /// VIRTIO_F_RING_INDIRECT_DESC).
    pub max_indirect: u16,
}

/// Device addresses of the three ring areas, for the transport's queue registers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct QueueAddresses {
    /// Descriptor area (`queue_desc`).
    pub desc: u64,
    /// Driver area (`queue_driver`: split avail ring, packed driver event suppression).
    pub driver: u64,
    /// Device area (`queue_device`: split used ring, packed device event suppression).
    pub device: u64,
}

/// What went wrong. The `Device*` variants are contract violations by the device: they mark the
/// queue broken, and every later call returns [`QueueError::Broken`] until it is reset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueueError {
    /// The configuration cannot be built (size, indirect limit).
    BadConfig,
    /// DMA memory could not be allocated.
    OutOfMemory,
    /// A chain with no segments.
    EmptyChain,
    /// More segments than the queue (or its indirect tables) can hold.
    TooManySegments,
    /// Not enough free descriptors (or ids) now.
    Full,
    /// Used entry names an id outside the queue.
    DeviceIdOutOfRange {
        /// The id.
        id: u32,
    },
    /// Used entry names an id that is not in flight (never posted, already completed, or not the
    /// head of a chain).
    DeviceIdNotInFlight {
        /// The id.
        id: u32,
    },
    /// Used length larger than the writable bytes of the chain.
    DeviceLengthTooLarge {
        /// The id.
        id: u16,
        /// Length reported.
        len: u32,
        /// Writable bytes posted.
        max: u32,
    },
    /// The used index moved by more than the buffers in flight.
    DeviceIndexJump {
        /// Last index the driver consumed.
        last: u16,
        /// Index the device published.
        published: u16,
    },
    /// The queue was marked broken by an earlier violation.
    Broken,
}

impl QueueError {
    /// Whether this error is a device contract violation (the queue is now broken).
    pub const fn is_device_fault(&self) -> bool {
        matches!(
            self,
            Self::DeviceIdOutOfRange { .. }
                | Self::DeviceIdNotInFlight { .. }
                | Self::DeviceLengthTooLarge { .. }
                | Self::DeviceIndexJump { .. }
                | Self::Broken
        )
    }
}

impl fmt::Display for QueueError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::BadConfig => f.write_str("invalid queue configuration"),
            Self::OutOfMemory => f.write_str("out of DMA memory"),
            Self::EmptyChain => f.write_str("empty descriptor chain"),
            Self::TooManySegments => f.write_str("chain longer than the queue allows"),
            Self::Full => f.write_str("queue full"),
            Self::DeviceIdOutOfRange { id } => write!(f, "device used id {id} out of range"),
            Self::DeviceIdNotInFlight { id } => write!(f, "device used id {id} not in flight"),
            Self::DeviceLengthTooLarge { id, len, max } => write!(
                f,
                "device used length {len} for id {id} exceeds the {max} writable bytes"
            ),
            Self::DeviceIndexJump { last, published } => {
                write!(f, "device used index jumped from {last} to {published}")
            }
            Self::Broken => f.write_str("queue is broken"),
        }
    }
}

impl core::error::Error for QueueError {}

/// Shadow record of one in-flight chain, indexed by id.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Slot {
    pub(crate) in_flight: bool,
    /// Ring descriptors the chain occupies.
    pub(crate) descs: u16,
    /// Last ring descriptor of the chain (split: for O(1) free-list splicing).
    pub(crate) tail: u16,
    /// Writable bytes posted.
    pub(crate) writable: u32,
}

/// Total writable length of a chain, saturated at `u32::MAX` (the used length is a u32).
pub(crate) fn writable_len(writable: &[Segment]) -> u32 {
    let sum: u64 = writable.iter().map(|s| u64::from(s.len)).sum();
    u32::try_from(sum).unwrap_or(u32::MAX)
}

/// Per-id indirect descriptor tables, allocated once.
#[derive(Debug)]
pub(crate) struct IndirectTables {
    pub(crate) region: DmaRegion,
    pub(crate) mem: shared::Shared,
    pub(crate) max: u16,
}

impl IndirectTables {
    pub(crate) fn new(dma: &impl Dma, ids: u16, max: u16) -> Result<Option<Self>, QueueError> {
        if max <= 1 {
            return Ok(None);
        }
        let len = usize::from(ids)
            .checked_mul(usize::from(max))
            .and_then(|n| n.checked_mul(16))
            .ok_or(QueueError::OutOfMemory)?;
        let region = dma.alloc(len, 16).ok_or(QueueError::OutOfMemory)?;
        // SAFETY: the allocator hands out zeroed, 16-aligned memory valid for `len` bytes until
        // freed, which `VirtQueue::free` does after the last use of `mem`.
        let mem = unsafe { shared::Shared::new(region.cpu(), region.len()) };
        Ok(Some(Self { region, mem, max }))
    }

    /// Writes the chain into the table of `id`; returns (device address, byte length).
    pub(crate) fn fill(
        &self,
        id: u16,
        readable: &[Segment],
        writable: &[Segment],
        chained: bool,
    ) -> (u64, u32) {
        // id < ids and the tables hold ids × max × 16 bytes (checked in `new`): no overflow; the
        // chain has at most `max` segments (the caller's check). `Shared` bounds-checks anyway.
        let base = usize::from(id)
            .wrapping_mul(usize::from(self.max))
            .wrapping_mul(16);
        let total = readable.len().saturating_add(writable.len());
        let all = readable
            .iter()
            .map(|s| (s, 0))
            .chain(writable.iter().map(|s| (s, DESC_F_WRITE)));
        for (i, (seg, write)) in all.enumerate() {
            let off = base.wrapping_add(i.wrapping_mul(16));
            if chained {
                // Split layout: flags then next; NEXT links the table entries in order.
                let next = if i.wrapping_add(1) < total {
                    DESC_F_NEXT
                } else {
                    0
                };
                self.mem.write_desc(
                    off,
                    seg.addr,
                    seg.len,
                    write | next,
                    i.wrapping_add(1) as u16,
                );
            } else {
                // Packed layout: id then flags; entries are sequential, NEXT is not used.
                self.mem.write_desc(off, seg.addr, seg.len, 0, write);
            }
        }
        (
            self.region.device().wrapping_add(base as u64),
            total.wrapping_mul(16) as u32,
        )
    }
}

/// A virtqueue of either layout.
#[derive(Debug)]
pub enum VirtQueue {
    /// Split ring.
    Split(SplitQueue),
    /// Packed ring.
    Packed(PackedQueue),
}

macro_rules! dispatch {
    ($self:ident, $q:ident => $e:expr) => {
        match $self {
            VirtQueue::Split($q) => $e,
            VirtQueue::Packed($q) => $e,
        }
    };
}

impl VirtQueue {
    /// Allocates the rings (and indirect tables) and builds the queue.
    pub fn new(dma: &impl Dma, config: QueueConfig) -> Result<Self, QueueError> {
        match config.layout {
            Layout::Split => SplitQueue::new(dma, config).map(Self::Split),
            Layout::Packed => PackedQueue::new(dma, config).map(Self::Packed),
        }
    }

    /// Frees the DMA memory. Call only after the device no longer uses the queue (reset, or the
    /// queue disabled).
    pub fn free(self, dma: &impl Dma) {
        dispatch!(self, q => q.free(dma))
    }

    /// Device addresses for the transport.
    pub fn addresses(&self) -> QueueAddresses {
        dispatch!(self, q => q.addresses())
    }

    /// Queue size (descriptors).
    #[inline]
    pub fn size(&self) -> u16 {
        dispatch!(self, q => q.size())
    }

    /// Free ring descriptors.
    #[inline]
    pub fn num_free(&self) -> u16 {
        dispatch!(self, q => q.num_free())
    }

    /// Chains in flight.
    #[inline]
    pub fn in_flight(&self) -> u16 {
        dispatch!(self, q => q.in_flight())
    }

    /// Whether `readable` + `writable` could be added now.
    #[inline]
    pub fn can_add(&self, segments: usize) -> bool {
        dispatch!(self, q => q.can_add(segments))
    }

    /// Adds a chain of `readable` then `writable` segments; returns its id (< size). Not visible
    /// to the device until [`publish`](Self::publish).
    #[inline]
    pub fn add(&mut self, readable: &[Segment], writable: &[Segment]) -> Result<u16, QueueError> {
        dispatch!(self, q => q.add(readable, writable))
    }

    /// [`add`](Self::add) for the datapath's short chains, inlined: `Some(id)` when the chain
    /// went into the ring as it would with `add`; `None`, with nothing written, when `add` must
    /// decide (a long chain, a full or broken queue, the packed layout) — call it then.
    #[inline(always)]
    pub fn try_add_direct(&mut self, readable: &[Segment], writable: &[Segment]) -> Option<u16> {
        match self {
            VirtQueue::Split(q) => q.try_add_direct(readable, writable),
            VirtQueue::Packed(_) => None,
        }
    }

    /// Makes every chain added since the last publish visible to the device at once; returns
    /// whether the device wants a notification (kick).
    #[inline]
    pub fn publish(&mut self) -> bool {
        dispatch!(self, q => q.publish())
    }

    /// The next completed chain, if any.
    #[inline]
    pub fn pop_used(&mut self) -> Result<Option<Used>, QueueError> {
        dispatch!(self, q => q.pop_used())
    }

    /// Every completed chain the device has published, in order, handed to `f`: what a loop of
    /// [`pop_used`](Self::pop_used) until `None` does, with the same checks per entry, but the
    /// split ring's used index is read once and its `used_event` written once, at the end.
    /// Returns how many. On a device fault the entries before it have been handed over and the
    /// queue is broken, as with `pop_used`. Bounded: at most the chains in flight.
    #[inline]
    pub fn drain_used(&mut self, mut f: impl FnMut(Used)) -> Result<u32, QueueError> {
        match self {
            VirtQueue::Split(q) => q.drain_used(f),
            VirtQueue::Packed(q) => {
                let mut n = 0u32;
                while let Some(u) = q.pop_used()? {
                    n = n.saturating_add(1);
                    f(u);
                }
                Ok(n)
            }
        }
    }

    /// Asks the device for an interrupt on the next completion; returns `true` if completions
    /// are already pending (the caller must poll again: arm, then re-check).
    #[inline]
    pub fn enable_notifications(&mut self) -> bool {
        dispatch!(self, q => q.enable_notifications())
    }

    /// Asks the device not to interrupt (a hint the device may ignore).
    #[inline]
    pub fn disable_notifications(&mut self) {
        dispatch!(self, q => q.disable_notifications())
    }

    /// Whether a completion is pending, without consuming it.
    #[inline]
    pub fn has_used(&self) -> bool {
        dispatch!(self, q => q.has_used())
    }

    /// Whether a device fault marked the queue broken.
    #[inline]
    pub fn is_broken(&self) -> bool {
        dispatch!(self, q => q.is_broken())
    }

    /// After a device reset: hands every in-flight id to `abandoned`, clears the rings and the
    /// shadow and un-breaks the queue, ready to be set up again.
    pub fn reset(&mut self, abandoned: impl FnMut(u16)) {
        dispatch!(self, q => q.reset(abandoned))
    }
}

/// The shadow of `n` descriptor slots, allocated fallibly (a failed infallible allocation in the
/// kernel is a bugcheck).
pub(crate) fn new_slots(n: u16) -> Result<Vec<Slot>, QueueError> {
    filled(Slot::default(), usize::from(n))
}

/// `vec![value; n]`, or [`QueueError::OutOfMemory`] when the pool is short.
pub(crate) fn filled<T: Clone>(value: T, n: usize) -> Result<Vec<T>, QueueError> {
    let mut v = Vec::new();
    v.try_reserve_exact(n)
        .map_err(|_| QueueError::OutOfMemory)?;
    // Within the reserved capacity: no further allocation.
    v.resize(n, value);
    Ok(v)
}
