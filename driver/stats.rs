//! Per-queue statistics, as NDIS reports them (`NDIS_STATISTICS_INFO` counters) plus the drops
//! and errors by reason that a user needs to tell what went wrong.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

/// Adds `n` to a counter. Counters wrap, as NDIS's 64-bit statistics do, rather than panic or
/// saturate: at 10^9 a second a u64 wraps after 584 years.
#[inline]
pub fn add(counter: &mut u64, n: u64) {
    *counter = counter.wrapping_add(n);
}

/// Adds one to a counter ([`add`]).
#[inline]
pub fn bump(counter: &mut u64) {
    add(counter, 1);
}

/// Frames and bytes by destination kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct FrameCounters {
    /// Unicast frames.
    pub unicast_frames: u64,
    /// Unicast bytes.
    pub unicast_bytes: u64,
    /// Multicast frames.
    pub multicast_frames: u64,
    /// Multicast bytes.
    pub multicast_bytes: u64,
    /// Broadcast frames.
    pub broadcast_frames: u64,
    /// Broadcast bytes.
    pub broadcast_bytes: u64,
}

impl FrameCounters {
    /// Counts one frame by its destination address.
    pub fn count(&mut self, dst: &[u8; 6], bytes: u64) {
        // Unicast first: one bit decides the common case.
        let (frames, total) = if dst[0] & 1 == 0 {
            (&mut self.unicast_frames, &mut self.unicast_bytes)
        } else if *dst == [0xff; 6] {
            (&mut self.broadcast_frames, &mut self.broadcast_bytes)
        } else {
            (&mut self.multicast_frames, &mut self.multicast_bytes)
        };
        bump(frames);
        add(total, bytes);
    }

    /// Adds `other`'s counts (a batch counted apart) to these.
    #[inline]
    pub fn merge(&mut self, other: &Self) {
        add(&mut self.unicast_frames, other.unicast_frames);
        add(&mut self.unicast_bytes, other.unicast_bytes);
        add(&mut self.multicast_frames, other.multicast_frames);
        add(&mut self.multicast_bytes, other.multicast_bytes);
        add(&mut self.broadcast_frames, other.broadcast_frames);
        add(&mut self.broadcast_bytes, other.broadcast_bytes);
    }

    /// All frames.
    pub const fn frames(&self) -> u64 {
        self.unicast_frames
            .wrapping_add(self.multicast_frames)
            .wrapping_add(self.broadcast_frames)
    }

    /// All bytes.
    pub const fn bytes(&self) -> u64 {
        self.unicast_bytes
            .wrapping_add(self.multicast_bytes)
            .wrapping_add(self.broadcast_bytes)
    }
}

/// Transmit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxStats {
    /// Frames sent, by destination.
    pub sent: FrameCounters,
    /// Packets the OS marked Ignore.
    pub ignored: u64,
    /// Packets dropped: fragments outside the owned range, or unreadable metadata.
    pub bad_packets: u64,
    /// Packets dropped: the offload request could not be carried out.
    pub offload_errors: u64,
    /// Packets dropped: the device cannot segment this packet and software segmentation is not
    /// available on this queue.
    pub unsegmentable: u64,
    /// Frames shorter than 60 bytes that were padded.
    pub padded: u64,
    /// Frames that got an 802.1Q tag inserted.
    pub vlan_tagged: u64,
    /// Device contract violations seen on this queue.
    pub device_faults: u64,
    /// Notifications (kicks) sent to the device.
    pub kicks: u64,
    /// Of `kicks`, those sent although event suppression said none, because the queue stopped
    /// moving (see `TxQueue`'s stall handling).
    pub stall_kicks: u64,
    /// Packets returned to the OS unsent because the device could no longer send them (in
    /// flight at a reset after a fault, or handed in after it: `TxQueue::flush`).
    pub flushed: u64,
}

/// Receive counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct RxStats {
    /// Frames indicated, by destination.
    pub received: FrameCounters,
    /// Frames with a checksum the device or the driver found invalid (indicated, flagged).
    pub checksum_errors: u64,
    /// Coalesced (RSC) packets indicated.
    pub coalesced_packets: u64,
    /// Transport checksums the driver wrote before indicating: `NEEDS_CSUM` completed, or a
    /// coalesced packet's checksum recomputed.
    pub checksums_completed: u64,
    /// `NEEDS_CSUM` packets whose offsets were unusable: indicated with the transport checksum
    /// "not checked", so the OS verifies it (counted also as a device fault).
    pub checksum_offsets_bad: u64,
    /// Frames dropped: shorter than the virtio-net header plus an Ethernet header.
    pub runts: u64,
    /// Frames dropped by the software receive filter (address or VLAN).
    pub filtered: u64,
    /// Frames dropped while the queue was being cancelled.
    pub cancelled: u64,
    /// VLAN tags stripped into the 802.1Q extension.
    pub vlan_stripped: u64,
    /// Device contract violations seen on this queue.
    pub device_faults: u64,
    /// Buffers the OS returned that were not with the OS (ignored, counted).
    pub bad_returns: u64,
    /// Advance calls that had completed frames waiting but no OS packet or fragment to carry
    /// them (the frames wait; nothing is lost).
    pub os_ring_exhausted: u64,
    /// Merged packets whose `num_buffers` could never be satisfied — more than the pool, the
    /// virtqueue or the OS's fragment ring can hold, or than the device holds buffers for
    /// (pending + posted) — dropped with the buffers that had arrived (counted also as a device
    /// fault).
    pub bad_buffer_counts: u64,
    /// Packets dropped because the device reported more bytes in a buffer than it has (counted
    /// also as a device fault).
    pub bad_lengths: u64,
    /// Coalesced packets that claimed zero segments: indicated as plain packets, no RSC
    /// (counted also as a device fault).
    pub rsc_zero_segments: u64,
    /// Empty continuation buffers of merged packets: taken back, never indicated as zero-length
    /// fragments.
    pub empty_fragments: u64,
    /// Frames copied out of the shared buffers into private memory before indication
    /// (`RxSettings::bounce`).
    pub bounced: u64,
    /// Advance calls in bounce mode that had a frame waiting but too few free private buffers
    /// (the OS held them): the frame waits, as for an exhausted OS ring.
    pub bounce_waits: u64,
    /// Kicks sent although event suppression said none, because buffers were published
    /// unannounced and nothing arrived since (see `RxQueue`'s stall handling).
    pub stall_kicks: u64,
    /// States the engine's own bookkeeping rules out, caught instead of panicking — a table
    /// sized for every buffer found full (a buffer freed twice): the buffer is not listed
    /// again, or the packet is dropped. Always 0 unless the engine has a bug.
    pub internal_errors: u64,
    /// Notifications (kicks) sent to the device, `stall_kicks` included.
    pub kicks: u64,
}
