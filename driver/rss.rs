//! Receive-side scaling steered by the device (VIRTIO_NET_F_RSS): the OS's hash settings
//! (NetAdapterCx's protocol types, Toeplitz key, indirection table of queues) in virtio terms,
//! checked against the device's limits before anything is sent.
//!
//! The device hashes each received packet with the key over the enabled types and puts it on the
//! receive queue the indirection table names — the same Toeplitz hash `offload::rss` computes
//! (checked against Microsoft's vectors), so the driver can verify the device's steering.

use alloc::vec::Vec;

use netring::HashProtocolType as P;
use virtio::net::rss_hash as H;

/// What the device should steer by.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssSettings {
    /// `VIRTIO_NET_RSS_HASH_TYPE_*` bits ([`virtio_hash_types`] from the OS's protocol types).
    pub hash_types: u32,
    /// Queue pair per table entry (length a power of two).
    pub table: Vec<u16>,
    /// Queue pair for packets no enabled type applies to.
    pub unclassified: u16,
    /// Toeplitz key.
    pub key: [u8; offload::rss::KEY_LEN],
}

/// Why RSS settings cannot be given to the device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RssError {
    /// VIRTIO_NET_F_RSS was not negotiated.
    NotNegotiated,
    /// The table is empty, not a power of two, or longer than the device takes.
    BadTable {
        /// Entries given.
        len: usize,
        /// The device's `rss_max_indirection_table_length`.
        max: u16,
    },
    /// A table entry names a queue pair the adapter does not run.
    QueueOutOfRange(u16),
    /// The device takes shorter keys than Toeplitz's 40 bytes.
    KeyTooLong {
        /// The device's `rss_max_key_size`.
        max: u8,
    },
    /// None of the requested hash types is one the device supports.
    NoSupportedHashType,
}

/// The virtio hash types for NetAdapterCx's `NET_ADAPTER_RECEIVE_SCALING_PROTOCOL_TYPE` bits:
/// an IP family hashes its addresses, and its ports when TCP or UDP is on; IPv6 extensions add
/// the `_EX` types. IPv4 options need no bit of their own (the device hashes the addresses of
/// any IPv4 header).
pub fn virtio_hash_types(p: P) -> u32 {
    let mut h = 0;
    if p.contains(P::IPV4) {
        h |= H::IPV4;
        if p.contains(P::TCP) {
            h |= H::TCPV4;
        }
        if p.contains(P::UDP) {
            h |= H::UDPV4;
        }
    }
    if p.contains(P::IPV6) {
        h |= H::IPV6;
        if p.contains(P::TCP) {
            h |= H::TCPV6;
        }
        if p.contains(P::UDP) {
            h |= H::UDPV6;
        }
        if p.contains(P::IPV6_EXTENSIONS) {
            h |= H::IP_EX;
            if p.contains(P::TCP) {
                h |= H::TCP_EX;
            }
            if p.contains(P::UDP) {
                h |= H::UDP_EX;
            }
        }
    }
    h
}

/// Checks `s` against the device's limits (`max_table`, `max_key`, `supported` from its
/// configuration) and the `pairs` in use; returns the hash types to send (those the device
/// supports).
pub fn check(
    s: &RssSettings,
    pairs: u16,
    max_table: u16,
    max_key: u8,
    supported: u32,
) -> Result<u32, RssError> {
    let len = s.table.len();
    if len == 0 || !len.is_power_of_two() || len > usize::from(max_table) {
        return Err(RssError::BadTable {
            len,
            max: max_table,
        });
    }
    if let Some(&q) = s
        .table
        .iter()
        .chain(core::iter::once(&s.unclassified))
        .find(|&&q| q >= pairs)
    {
        return Err(RssError::QueueOutOfRange(q));
    }
    if usize::from(max_key) < s.key.len() {
        return Err(RssError::KeyTooLong { max: max_key });
    }
    let h = s.hash_types & supported;
    if h == 0 {
        return Err(RssError::NoSupportedHashType);
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocol_types_map_to_virtio_hash_types() {
        assert_eq!(virtio_hash_types(P::empty()), 0);
        assert_eq!(
            virtio_hash_types(P::TCP),
            0,
            "ports without a family hash nothing"
        );
        assert_eq!(virtio_hash_types(P::IPV4), H::IPV4);
        assert_eq!(
            virtio_hash_types(P::IPV4 | P::IPV4_OPTIONS | P::TCP),
            H::IPV4 | H::TCPV4
        );
        assert_eq!(
            virtio_hash_types(P::IPV4 | P::IPV6 | P::TCP | P::UDP),
            H::IPV4 | H::TCPV4 | H::UDPV4 | H::IPV6 | H::TCPV6 | H::UDPV6
        );
        assert_eq!(
            virtio_hash_types(P::IPV6 | P::IPV6_EXTENSIONS | P::TCP),
            H::IPV6 | H::TCPV6 | H::IP_EX | H::TCP_EX
        );
    }

    #[test]
    fn settings_are_checked_against_the_device() {
        let s = RssSettings {
            hash_types: H::IPV4 | H::TCPV4 | H::IPV6,
            table: (0..128).map(|i| i % 4).collect(),
            unclassified: 1,
            key: [7; 40],
        };
        assert_eq!(
            check(&s, 4, 128, 40, 0x1ff),
            Ok(H::IPV4 | H::TCPV4 | H::IPV6)
        );
        assert_eq!(
            check(&s, 4, 128, 40, H::IPV4),
            Ok(H::IPV4),
            "unsupported types dropped"
        );
        assert_eq!(
            check(&s, 4, 128, 40, H::UDPV6),
            Err(RssError::NoSupportedHashType)
        );
        assert_eq!(
            check(&s, 3, 128, 40, 0x1ff),
            Err(RssError::QueueOutOfRange(3))
        );
        assert_eq!(
            check(&s, 4, 64, 40, 0x1ff),
            Err(RssError::BadTable { len: 128, max: 64 })
        );
        assert_eq!(
            check(&s, 4, 128, 39, 0x1ff),
            Err(RssError::KeyTooLong { max: 39 })
        );
        let stray = RssSettings {
            unclassified: 4,
            ..s.clone()
        };
        assert_eq!(
            check(&stray, 4, 128, 40, 0x1ff),
            Err(RssError::QueueOutOfRange(4))
        );
        let odd = RssSettings {
            table: alloc::vec![0; 96],
            ..s.clone()
        };
        assert!(matches!(
            check(&odd, 4, 128, 40, 0x1ff),
            Err(RssError::BadTable { .. })
        ));
        let empty = RssSettings {
            table: Vec::new(),
            ..s
        };
        assert!(matches!(
            check(&empty, 4, 128, 40, 0x1ff),
            Err(RssError::BadTable { .. })
        ));
    }
}
