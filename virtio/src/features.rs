//! Feature bits: the transport's (virtio 1.2 §6) and virtio-net's (§5.1.3).

use bitflags::bitflags;

bitflags! {
    /// The 64 feature bits a device offers and a driver accepts.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
    pub struct Features: u64 {
        // --- virtio-net (§5.1.3) ---
        /// Device handles packets with partial checksum (TX checksum offload).
        const NET_CSUM = 1 << 0;
        /// Driver handles packets with partial checksum (RX checksum validation by the device).
        const NET_GUEST_CSUM = 1 << 1;
        /// Control channel offloads reconfiguration.
        const NET_CTRL_GUEST_OFFLOADS = 1 << 2;
        /// Device maximum MTU reporting.
        const NET_MTU = 1 << 3;
        /// Device has a given MAC address.
        const NET_MAC = 1 << 5;
        /// Driver can receive TSOv4 (RSC for IPv4).
        const NET_GUEST_TSO4 = 1 << 7;
        /// Driver can receive TSOv6.
        const NET_GUEST_TSO6 = 1 << 8;
        /// Driver can receive TSO with ECN.
        const NET_GUEST_ECN = 1 << 9;
        /// Driver can receive UFO.
        const NET_GUEST_UFO = 1 << 10;
        /// Device can receive TSOv4 (LSO for IPv4).
        const NET_HOST_TSO4 = 1 << 11;
        /// Device can receive TSOv6.
        const NET_HOST_TSO6 = 1 << 12;
        /// Device can receive TSO with ECN.
        const NET_HOST_ECN = 1 << 13;
        /// Device can receive UFO.
        const NET_HOST_UFO = 1 << 14;
        /// Driver can merge receive buffers.
        const NET_MRG_RXBUF = 1 << 15;
        /// Configuration status field is available.
        const NET_STATUS = 1 << 16;
        /// Control channel is available.
        const NET_CTRL_VQ = 1 << 17;
        /// Control channel RX mode support.
        const NET_CTRL_RX = 1 << 18;
        /// Control channel VLAN filtering.
        const NET_CTRL_VLAN = 1 << 19;
        /// Extra RX mode control support.
        const NET_CTRL_RX_EXTRA = 1 << 20;
        /// Driver can send gratuitous packets.
        const NET_GUEST_ANNOUNCE = 1 << 21;
        /// Device supports multiqueue with automatic receive steering.
        const NET_MQ = 1 << 22;
        /// Set MAC address through control channel.
        const NET_CTRL_MAC_ADDR = 1 << 23;
        /// Device supports notification coalescing (control commands NOTF_COAL_*).
        const NET_NOTF_COAL = 1 << 53;
        /// Driver can receive USO packets.
        const NET_GUEST_USO4 = 1 << 54;
        /// Driver can receive USOv6 packets.
        const NET_GUEST_USO6 = 1 << 55;
        /// Device can receive USO packets.
        const NET_HOST_USO = 1 << 56;
        /// Device can report per-packet hash value and type.
        const NET_HASH_REPORT = 1 << 57;
        /// Driver can provide the exact hdr_len value.
        const NET_GUEST_HDRLEN = 1 << 59;
        /// Device supports RSS with Toeplitz hash and configurable hash parameters.
        const NET_RSS = 1 << 60;
        /// Device can process duplicated ACKs and report coalesced segments and duplicated ACKs.
        const NET_RSC_EXT = 1 << 61;
        /// Device may act as a standby for a primary device with the same MAC address.
        const NET_STANDBY = 1 << 62;
        /// Device reports speed and duplex.
        const NET_SPEED_DUPLEX = 1 << 63;

        // --- transport (§6) ---
        /// Driver can use descriptors with the INDIRECT flag.
        const RING_INDIRECT_DESC = 1 << 28;
        /// Enables the used_event and avail_event fields.
        const RING_EVENT_IDX = 1 << 29;
        /// Compliance with virtio 1.x (modern interface).
        const VERSION_1 = 1 << 32;
        /// The device is behind an IOMMU / uses platform DMA translation.
        const ACCESS_PLATFORM = 1 << 33;
        /// Packed virtqueue layout.
        const RING_PACKED = 1 << 34;
        /// Buffers are used in the order they are made available.
        const IN_ORDER = 1 << 35;
        /// Memory accesses must be ordered as the platform orders them (real hardware).
        const ORDER_PLATFORM = 1 << 36;
        /// Single root I/O virtualization.
        const SR_IOV = 1 << 37;
        /// The driver passes extra data in its device notifications.
        const NOTIFICATION_DATA = 1 << 38;
        /// The driver uses the data provided by the device as a virtqueue identifier.
        const NOTIF_CONFIG_DATA = 1 << 39;
        /// Individual virtqueues can be reset.
        const RING_RESET = 1 << 40;
    }
}

impl Features {
    /// Low 32 bits (feature select 0).
    pub const fn low(self) -> u32 {
        self.bits() as u32
    }

    /// High 32 bits (feature select 1).
    pub const fn high(self) -> u32 {
        (self.bits() >> 32) as u32
    }

    /// From the two 32-bit words, keeping unknown bits (a device may offer bits this crate does
    /// not name; they are never accepted because the driver only asks for named ones).
    pub const fn from_words(low: u32, high: u32) -> Self {
        Self::from_bits_retain(((high as u64) << 32) | low as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_round_trip() {
        let f = Features::from_words(0x30bf_8024, 0x0000_0101);
        assert_eq!(f.bits(), 0x0000_0101_30bf_8024);
        assert!(f.contains(Features::VERSION_1 | Features::RING_RESET | Features::NET_MAC));
        assert!(!f.contains(Features::NET_CSUM));
        assert_eq!(f.low(), 0x30bf_8024);
        assert_eq!(f.high(), 0x101);
    }

    #[test]
    fn qemu_tap_offer_decodes() {
        // Observed from QEMU 7.2 with a vnet_hdr tap (reference/qemu-qtest.md).
        let f = Features::from_bits_retain(0x0000_0101_30bf_ffa7);
        for want in [
            Features::NET_CSUM,
            Features::NET_GUEST_CSUM,
            Features::NET_GUEST_TSO4,
            Features::NET_GUEST_TSO6,
            Features::NET_HOST_TSO4,
            Features::NET_HOST_TSO6,
            Features::NET_MRG_RXBUF,
            Features::NET_CTRL_VQ,
            Features::RING_EVENT_IDX,
            Features::RING_INDIRECT_DESC,
        ] {
            assert!(f.contains(want), "{want:?}");
        }
    }
}
