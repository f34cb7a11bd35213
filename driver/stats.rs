//! Per-queue statistics, as NDIS reports them (`NDIS_STATISTICS_INFO` counters) plus the drops
//! and errors by reason that a user needs to tell what went wrong.

/// Transmit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TxStats {
    /// Unicast frames sent.
    pub unicast_frames: u64,
    /// Unicast bytes sent.
    pub unicast_bytes: u64,
    /// Multicast frames sent.
    pub multicast_frames: u64,
    /// Multicast bytes sent.
    pub multicast_bytes: u64,
    /// Broadcast frames sent.
    pub broadcast_frames: u64,
    /// Broadcast bytes sent.
    pub broadcast_bytes: u64,
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
}

impl TxStats {
    /// Counts one sent frame by its destination address.
    pub fn count_frame(&mut self, dst: &[u8; 6], bytes: u64) {
        if *dst == [0xff; 6] {
            self.broadcast_frames += 1;
            self.broadcast_bytes += bytes;
        } else if dst[0] & 1 != 0 {
            self.multicast_frames += 1;
            self.multicast_bytes += bytes;
        } else {
            self.unicast_frames += 1;
            self.unicast_bytes += bytes;
        }
    }

    /// All frames sent.
    pub const fn frames(&self) -> u64 {
        self.unicast_frames + self.multicast_frames + self.broadcast_frames
    }
}
