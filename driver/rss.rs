//! Receive-side scaling steered by the device (VIRTIO_NET_F_RSS): the OS's hash settings
//! (NetAdapterCx's protocol types, Toeplitz key, indirection table of queues) in virtio terms,
//! checked against the device's limits before anything is sent.
//!
//! The device hashes each received packet with the key over the enabled types and puts it on the
//! receive queue the indirection table names — the same Toeplitz hash `offload::rss` computes
//! (checked against Microsoft's vectors), so the driver can verify the device's steering.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use netring::HashProtocolType as P;
use virtio::net::rss_hash as H;

/// What the device should steer by. The table is held inline (no allocation: the settings are
/// built in the OS's RSS callbacks, which may run at DISPATCH_LEVEL).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RssSettings {
    /// `VIRTIO_NET_RSS_HASH_TYPE_*` bits ([`virtio_hash_types`] from the OS's protocol types).
    pub hash_types: u32,
    table: [u16; TABLE_SIZE],
    /// Entries given (may exceed [`TABLE_SIZE`]: [`check`] then refuses them).
    len: usize,
    /// Queue pair for packets no enabled type applies to.
    pub unclassified: u16,
    /// Toeplitz key.
    pub key: [u8; offload::rss::KEY_LEN],
}

impl RssSettings {
    /// Settings with the indirection `table` (queue pair per entry; a power of two long, at most
    /// [`TABLE_SIZE`] entries, or [`check`] refuses it).
    pub fn new(
        hash_types: u32,
        table: &[u16],
        unclassified: u16,
        key: [u8; offload::rss::KEY_LEN],
    ) -> Self {
        let mut t = [0u16; TABLE_SIZE];
        for (d, s) in t.iter_mut().zip(table) {
            *d = *s;
        }
        Self {
            hash_types,
            table: t,
            len: table.len(),
            unclassified,
            key,
        }
    }

    /// The indirection table (the entries held).
    pub fn table(&self) -> &[u16] {
        self.table.get(..self.len).unwrap_or(&self.table)
    }

    /// Entries given.
    pub const fn len(&self) -> usize {
        self.len
    }

    /// Whether the table is empty.
    pub const fn is_empty(&self) -> bool {
        self.len == 0
    }
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
    let len = s.len;
    if len == 0 || !len.is_power_of_two() || len > usize::from(max_table) || len > TABLE_SIZE {
        return Err(RssError::BadTable {
            len,
            max: max_table,
        });
    }
    if let Some(&q) = s
        .table()
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

/// Entries of the indirection table the driver offers the OS (`IndirectionTableSize`; QEMU's
/// device takes 128).
pub const TABLE_SIZE: usize = 128;

/// The OS's RSS state as its callbacks set it (enable with protocol types, disable, secret key,
/// indirection entries), kept whole so the device can be given a complete configuration after
/// each change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RssState {
    pairs: u16,
    enabled: Option<P>,
    key: [u8; offload::rss::KEY_LEN],
    table: [u16; TABLE_SIZE],
}

impl RssState {
    /// For `pairs` queue pairs: disabled, table spread round-robin, key zero until the OS sets one.
    pub fn new(pairs: u16) -> Self {
        let pairs = pairs.max(1);
        let mut table = [0u16; TABLE_SIZE];
        for (i, t) in table.iter_mut().enumerate() {
            // pairs >= 1; the remainder is below pairs, a u16.
            *t = i.checked_rem(usize::from(pairs)).unwrap_or(0) as u16;
        }
        Self {
            pairs,
            enabled: None,
            key: [0; offload::rss::KEY_LEN],
            table,
        }
    }

    /// `EvtAdapterReceiveScalingEnable` with the protocol types to hash.
    pub fn enable(&mut self, types: P) {
        self.enabled = Some(types);
    }

    /// `EvtAdapterReceiveScalingDisable`.
    pub fn disable(&mut self) {
        self.enabled = None;
    }

    /// `EvtAdapterReceiveScalingSetHashSecretKey`: `false` (nothing changed) unless the key is
    /// Toeplitz's 40 bytes.
    pub fn set_key(&mut self, key: &[u8]) -> bool {
        match <[u8; offload::rss::KEY_LEN]>::try_from(key) {
            Ok(k) => {
                self.key = k;
                true
            }
            Err(_) => false,
        }
    }

    /// One indirection entry: table `index` → queue `pair`. `false` (nothing changed) when
    /// either is out of range.
    pub fn set_entry(&mut self, index: u32, pair: u16) -> bool {
        match self.table.get_mut(index as usize) {
            Some(t) if pair < self.pairs => {
                *t = pair;
                true
            }
            _ => false,
        }
    }

    /// What the device should be told: `None` while RSS is disabled.
    pub fn settings(&self) -> Option<RssSettings> {
        self.enabled
            .map(|types| RssSettings::new(virtio_hash_types(types), &self.table, 0, self.key))
    }

    /// The key and types for the receive engines' hash extension (`None` while disabled).
    pub fn software(&self) -> Option<([u8; offload::rss::KEY_LEN], P)> {
        self.enabled.map(|t| (self.key, t))
    }
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
    fn the_os_state_becomes_device_settings() {
        let mut st = RssState::new(4);
        assert_eq!(st.settings(), None, "disabled until the OS enables it");
        assert!(st.set_key(&[9; 40]));
        assert!(!st.set_key(&[9; 16]), "only Toeplitz's 40-byte key");
        assert!(st.set_entry(5, 3));
        assert!(!st.set_entry(5, 4), "pair 4 does not exist");
        assert!(!st.set_entry(128, 0), "index beyond the table");
        st.enable(P::IPV4 | P::TCP);
        let s = st.settings().unwrap();
        assert_eq!(s.hash_types, H::IPV4 | H::TCPV4);
        assert_eq!(s.key, [9; 40]);
        assert_eq!(s.len(), TABLE_SIZE);
        assert_eq!((s.table()[4], s.table()[5], s.table()[6]), (0, 3, 2));
        assert_eq!(check(&s, 4, 128, 40, 0x1ff), Ok(H::IPV4 | H::TCPV4));
        assert_eq!(st.software(), Some(([9; 40], P::IPV4 | P::TCP)));
        st.disable();
        assert_eq!(st.settings(), None);
        assert_eq!(st.software(), None);
    }

    #[test]
    fn settings_are_checked_against_the_device() {
        let table: alloc::vec::Vec<u16> = (0..128).map(|i| i % 4).collect();
        let s = RssSettings::new(H::IPV4 | H::TCPV4 | H::IPV6, &table, 1, [7; 40]);
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
        let stray = RssSettings::new(s.hash_types, &table, 4, s.key);
        assert_eq!(
            check(&stray, 4, 128, 40, 0x1ff),
            Err(RssError::QueueOutOfRange(4))
        );
        let odd = RssSettings::new(s.hash_types, &[0; 96], 1, s.key);
        assert!(matches!(
            check(&odd, 4, 128, 40, 0x1ff),
            Err(RssError::BadTable { .. })
        ));
        let empty = RssSettings::new(s.hash_types, &[], 1, s.key);
        assert!(matches!(
            check(&empty, 4, 128, 40, 0x1ff),
            Err(RssError::BadTable { .. })
        ));
        let long = RssSettings::new(s.hash_types, &[0; 256], 1, s.key);
        assert_eq!(
            check(&long, 4, 512, 40, 0x1ff),
            Err(RssError::BadTable { len: 256, max: 512 }),
            "longer than the settings hold"
        );
    }
}
