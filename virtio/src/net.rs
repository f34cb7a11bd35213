//! virtio-net (virtio 1.2 §5.1): the device configuration, the per-packet header, and the
//! control virtqueue commands.

use core::fmt;

use crate::Features;
use crate::hal::Bars;
use crate::pci::{DeviceConfig, Transport, TransportError};

/// Queue index of receive queue `pair` (§5.1.2: receiveq1, transmitq1, … controlq last).
/// Pairs are numbered below `max_virtqueue_pairs` (at most 0x8000), so `pair` < 0x8000 and the
/// index fits; a larger `pair` wraps (never panics) and names no pair's queue.
pub const fn rx_queue_index(pair: u16) -> u16 {
    pair.wrapping_mul(2)
}

/// Queue index of transmit queue `pair` (`pair` < 0x8000, as for [`rx_queue_index`]).
pub const fn tx_queue_index(pair: u16) -> u16 {
    pair.wrapping_mul(2).wrapping_add(1)
}

/// Queue index of the control queue for `max_pairs` queue pairs (2 × pairs; 2 without MQ), or
/// `None` when it does not fit `queue_select`: `max_virtqueue_pairs` = 0x8000, the spec's
/// maximum, puts the control queue at 0x10000, which a driver cannot name.
pub const fn ctrl_queue_index(max_pairs: u16) -> Option<u16> {
    max_pairs.checked_mul(2)
}

/// `VIRTIO_NET_S_LINK_UP`.
pub const STATUS_LINK_UP: u16 = 1;
/// `VIRTIO_NET_S_ANNOUNCE`.
pub const STATUS_ANNOUNCE: u16 = 2;

/// Device configuration field offsets (`struct virtio_net_config`).
pub mod config {
    /// `mac[6]`.
    pub const MAC: u32 = 0;
    /// `status` (le16), with VIRTIO_NET_F_STATUS.
    pub const STATUS: u32 = 6;
    /// `max_virtqueue_pairs` (le16), with VIRTIO_NET_F_MQ or RSS.
    pub const MAX_VIRTQUEUE_PAIRS: u32 = 8;
    /// `mtu` (le16), with VIRTIO_NET_F_MTU.
    pub const MTU: u32 = 10;
    /// `speed` (le32, Mbit/s; 0xffffffff unknown), with VIRTIO_NET_F_SPEED_DUPLEX.
    pub const SPEED: u32 = 12;
    /// `duplex` (u8: 0 half, 1 full, 0xff unknown).
    pub const DUPLEX: u32 = 16;
    /// `rss_max_key_size` (u8), with RSS or HASH_REPORT.
    pub const RSS_MAX_KEY_SIZE: u32 = 17;
    /// `rss_max_indirection_table_length` (le16), with RSS.
    pub const RSS_MAX_INDIRECTION_TABLE_LENGTH: u32 = 18;
    /// `supported_hash_types` (le32), with RSS or HASH_REPORT.
    pub const SUPPORTED_HASH_TYPES: u32 = 20;
}

/// `VIRTIO_NET_RSS_HASH_TYPE_*`: what the device hashes (RSS_CONFIG `hash_types`,
/// `supported_hash_types`).
pub mod rss_hash {
    /// IPv4 addresses.
    pub const IPV4: u32 = 1 << 0;
    /// IPv4 addresses and TCP ports.
    pub const TCPV4: u32 = 1 << 1;
    /// IPv4 addresses and UDP ports.
    pub const UDPV4: u32 = 1 << 2;
    /// IPv6 addresses.
    pub const IPV6: u32 = 1 << 3;
    /// IPv6 addresses and TCP ports.
    pub const TCPV6: u32 = 1 << 4;
    /// IPv6 addresses and UDP ports.
    pub const UDPV6: u32 = 1 << 5;
    /// IPv6 with the home/routing-header addresses (extension headers).
    pub const IP_EX: u32 = 1 << 6;
    /// As `IP_EX`, with TCP ports.
    pub const TCP_EX: u32 = 1 << 7;
    /// As `IP_EX`, with UDP ports.
    pub const UDP_EX: u32 = 1 << 8;
}

/// Link duplex.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Duplex {
    /// Half duplex.
    Half,
    /// Full duplex.
    Full,
    /// Not reported.
    Unknown,
}

/// The device configuration, read consistently (generation-checked) and interpreted by the
/// negotiated features: a field the features do not enable is `None`, never garbage.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetConfig {
    /// MAC address (VIRTIO_NET_F_MAC).
    pub mac: Option<[u8; 6]>,
    /// Link status bits (VIRTIO_NET_F_STATUS); without it the link is always up.
    pub status: Option<u16>,
    /// Maximum queue pairs (MQ or RSS); at least 1 when present.
    pub max_queue_pairs: Option<u16>,
    /// MTU (VIRTIO_NET_F_MTU); at least 68 when present.
    pub mtu: Option<u16>,
    /// Speed in Mbit/s (SPEED_DUPLEX, when not unknown).
    pub speed_mbps: Option<u32>,
    /// Duplex (SPEED_DUPLEX).
    pub duplex: Duplex,
    /// RSS key size limit (RSS or HASH_REPORT).
    pub rss_max_key_size: Option<u8>,
    /// RSS indirection table limit (RSS).
    pub rss_max_indirection_table_length: Option<u16>,
    /// Supported hash types (RSS or HASH_REPORT).
    pub supported_hash_types: Option<u32>,
}

/// Why a configuration is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigError {
    /// Reading it failed.
    Transport(TransportError),
    /// A field holds a value the spec forbids.
    Invalid(&'static str),
}

impl From<TransportError> for ConfigError {
    fn from(e: TransportError) -> Self {
        Self::Transport(e)
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Transport(e) => e.fmt(f),
            Self::Invalid(what) => write!(f, "device configuration: {what}"),
        }
    }
}

impl core::error::Error for ConfigError {}

impl NetConfig {
    /// Reads the configuration for the negotiated `features` (retrying on generation changes).
    pub fn read<B: Bars>(t: &Transport<B>, features: Features) -> Result<Self, ConfigError> {
        let raw = t.read_config(8, |c| Self::read_fields(c, features))?;
        raw.validate()
    }

    fn read_fields<B: Bars>(
        c: &DeviceConfig<'_, B>,
        features: Features,
    ) -> Result<Self, TransportError> {
        let has = |f| features.contains(f);
        let mac = if has(Features::NET_MAC) {
            let mut m = [0; 6];
            for (i, b) in m.iter_mut().enumerate() {
                *b = c.read8(config::MAC + i as u32)?;
            }
            Some(m)
        } else {
            None
        };
        let rss = has(Features::NET_RSS);
        let rss_or_hash = rss || has(Features::NET_HASH_REPORT);
        let (speed_mbps, duplex) = if has(Features::NET_SPEED_DUPLEX) {
            let s = c.read32(config::SPEED)?;
            let d = match c.read8(config::DUPLEX)? {
                0 => Duplex::Half,
                1 => Duplex::Full,
                _ => Duplex::Unknown,
            };
            ((s != u32::MAX).then_some(s), d)
        } else {
            (None, Duplex::Unknown)
        };
        Ok(Self {
            mac,
            status: if has(Features::NET_STATUS) {
                Some(c.read16(config::STATUS)?)
            } else {
                None
            },
            max_queue_pairs: if has(Features::NET_MQ) || rss {
                Some(c.read16(config::MAX_VIRTQUEUE_PAIRS)?)
            } else {
                None
            },
            mtu: if has(Features::NET_MTU) {
                Some(c.read16(config::MTU)?)
            } else {
                None
            },
            speed_mbps,
            duplex,
            rss_max_key_size: if rss_or_hash {
                Some(c.read8(config::RSS_MAX_KEY_SIZE)?)
            } else {
                None
            },
            rss_max_indirection_table_length: if rss {
                Some(c.read16(config::RSS_MAX_INDIRECTION_TABLE_LENGTH)?)
            } else {
                None
            },
            supported_hash_types: if rss_or_hash {
                Some(c.read32(config::SUPPORTED_HASH_TYPES)?)
            } else {
                None
            },
        })
    }

    fn validate(self) -> Result<Self, ConfigError> {
        if let Some(p) = self.max_queue_pairs
            && !(1..=0x8000).contains(&p)
        {
            return Err(ConfigError::Invalid(
                "max_virtqueue_pairs outside 1..=0x8000",
            ));
        }
        if let Some(m) = self.mtu
            && m < 68
        {
            return Err(ConfigError::Invalid("mtu below 68"));
        }
        if let Some(mac) = self.mac
            && mac[0] & 1 != 0
        {
            return Err(ConfigError::Invalid("mac is a multicast address"));
        }
        Ok(self)
    }

    /// Link state: up unless STATUS was negotiated and LINK_UP is clear.
    pub fn link_up(&self) -> bool {
        self.status.is_none_or(|s| s & STATUS_LINK_UP != 0)
    }
}

/// `struct virtio_net_hdr` flags.
pub mod hdr_flags {
    /// `VIRTIO_NET_HDR_F_NEEDS_CSUM`: checksum from csum_start, stored at csum_offset.
    pub const NEEDS_CSUM: u8 = 1;
    /// `VIRTIO_NET_HDR_F_DATA_VALID`: the device validated the checksum (RX).
    pub const DATA_VALID: u8 = 2;
    /// `VIRTIO_NET_HDR_F_RSC_INFO`: csum_start/csum_offset carry RSC counts (RX, RSC_EXT).
    pub const RSC_INFO: u8 = 4;
}

/// `struct virtio_net_hdr` gso_type values.
pub mod gso {
    /// Not a GSO frame.
    pub const NONE: u8 = 0;
    /// TCPv4 segmentation.
    pub const TCPV4: u8 = 1;
    /// UDP fragmentation offload (legacy UFO).
    pub const UDP: u8 = 3;
    /// TCPv6 segmentation.
    pub const TCPV6: u8 = 4;
    /// UDP segmentation (USO).
    pub const UDP_L4: u8 = 5;
    /// ECN bit: the TCP segments carry CWR.
    pub const ECN: u8 = 0x80;
}

/// Hash report types (`hash_report` with VIRTIO_NET_F_HASH_REPORT).
pub mod hash_report {
    /// No hash.
    pub const NONE: u16 = 0;
    /// IPv4.
    pub const IPV4: u16 = 1;
    /// TCPv4.
    pub const TCPV4: u16 = 2;
    /// UDPv4.
    pub const UDPV4: u16 = 3;
    /// IPv6.
    pub const IPV6: u16 = 4;
    /// TCPv6.
    pub const TCPV6: u16 = 5;
    /// UDPv6.
    pub const UDPV6: u16 = 6;
    /// IPv6 with extension headers.
    pub const IPV6_EX: u16 = 7;
    /// TCPv6 with extension headers.
    pub const TCPV6_EX: u16 = 8;
    /// UDPv6 with extension headers.
    pub const UDPV6_EX: u16 = 9;
}

/// `struct virtio_net_hdr` as used with VIRTIO_F_VERSION_1 (12 bytes, little-endian).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct NetHeader {
    /// Flags ([`hdr_flags`]).
    pub flags: u8,
    /// GSO type ([`gso`]).
    pub gso_type: u8,
    /// Length of the headers to replicate per segment.
    pub hdr_len: u16,
    /// Segment payload size.
    pub gso_size: u16,
    /// Checksum start (or, with RSC_INFO on RX, coalesced segment count).
    pub csum_start: u16,
    /// Checksum offset from csum_start (or, with RSC_INFO, duplicate ACK count).
    pub csum_offset: u16,
    /// Buffers this packet spans (RX with MRG_RXBUF; otherwise not written by the device).
    pub num_buffers: u16,
}

impl NetHeader {
    /// Size with VERSION_1.
    pub const SIZE: usize = 12;
    /// Size with VIRTIO_NET_F_HASH_REPORT (hash_value le32, hash_report le16, padding le16).
    pub const SIZE_WITH_HASH: usize = 20;

    /// Encodes into the first 12 bytes of `out`; `None` if `out` is shorter.
    pub fn write(&self, out: &mut [u8]) -> Option<()> {
        let out: &mut [u8; Self::SIZE] = out.get_mut(..Self::SIZE)?.try_into().ok()?;
        out[0] = self.flags;
        out[1] = self.gso_type;
        out[2..4].copy_from_slice(&self.hdr_len.to_le_bytes());
        out[4..6].copy_from_slice(&self.gso_size.to_le_bytes());
        out[6..8].copy_from_slice(&self.csum_start.to_le_bytes());
        out[8..10].copy_from_slice(&self.csum_offset.to_le_bytes());
        out[10..12].copy_from_slice(&self.num_buffers.to_le_bytes());
        Some(())
    }

    /// Decodes from the first 12 bytes of `b`; `None` if `b` is shorter.
    pub fn read(b: &[u8]) -> Option<Self> {
        let b: &[u8; Self::SIZE] = b.get(..Self::SIZE)?.try_into().ok()?;
        Some(Self {
            flags: b[0],
            gso_type: b[1],
            hdr_len: u16::from_le_bytes([b[2], b[3]]),
            gso_size: u16::from_le_bytes([b[4], b[5]]),
            csum_start: u16::from_le_bytes([b[6], b[7]]),
            csum_offset: u16::from_le_bytes([b[8], b[9]]),
            num_buffers: u16::from_le_bytes([b[10], b[11]]),
        })
    }

    /// The hash-report fields (value, type) that follow the header, from a 20-byte header.
    pub fn read_hash(b: &[u8]) -> Option<(u32, u16)> {
        let b: &[u8; 8] = b.get(Self::SIZE..Self::SIZE_WITH_HASH)?.try_into().ok()?;
        Some((
            u32::from_le_bytes([b[0], b[1], b[2], b[3]]),
            u16::from_le_bytes([b[4], b[5]]),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trip_and_layout() {
        let h = NetHeader {
            flags: hdr_flags::NEEDS_CSUM,
            gso_type: gso::TCPV4 | gso::ECN,
            hdr_len: 54,
            gso_size: 1448,
            csum_start: 34,
            csum_offset: 16,
            num_buffers: 0,
        };
        let mut b = [0u8; 12];
        h.write(&mut b).unwrap();
        assert_eq!(b, [1, 0x81, 54, 0, 0xa8, 0x05, 34, 0, 16, 0, 0, 0]);
        assert_eq!(NetHeader::read(&b), Some(h));
        assert_eq!(NetHeader::read(&b[..11]), None);
        assert!(h.write(&mut [0u8; 11]).is_none());
        let mut with_hash = [0u8; 20];
        with_hash[12..18].copy_from_slice(&[0x78, 0x56, 0x34, 0x12, 2, 0]);
        assert_eq!(
            NetHeader::read_hash(&with_hash),
            Some((0x1234_5678, hash_report::TCPV4))
        );
        assert_eq!(NetHeader::read_hash(&b), None);
    }

    #[test]
    fn queue_indices() {
        assert_eq!((rx_queue_index(0), tx_queue_index(0)), (0, 1));
        assert_eq!((rx_queue_index(3), tx_queue_index(3)), (6, 7));
        assert_eq!(ctrl_queue_index(1), Some(2));
        assert_eq!(ctrl_queue_index(4), Some(8));
        assert_eq!(ctrl_queue_index(0x7fff), Some(0xfffe));
        assert_eq!(ctrl_queue_index(0x8000), None);
    }
}
