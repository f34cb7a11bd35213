//! The user's settings (the INF advanced properties, read from the registry by the glue) and the
//! pure derivation of what the adapter declares to NetAdapterCx from them and from what the
//! device negotiated — so the OS is never promised what the device cannot do.

#![cfg_attr(
    not(test),
    deny(clippy::indexing_slicing, clippy::arithmetic_side_effects)
)]

use virtio::Features;
use virtio::net::NetConfig;

/// A TX/RX pair of the standardized checksum keywords (`0` off, `1` Tx, `2` Rx, `3` both).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Direction {
    /// Transmit side enabled.
    pub tx: bool,
    /// Receive side enabled.
    pub rx: bool,
}

impl Direction {
    /// From the keyword value; out-of-range values give the default (both).
    pub const fn from_keyword(v: u32) -> Self {
        match v {
            0 => Self {
                tx: false,
                rx: false,
            },
            1 => Self {
                tx: true,
                rx: false,
            },
            2 => Self {
                tx: false,
                rx: true,
            },
            _ => Self { tx: true, rx: true },
        }
    }
}

/// `ConfidentialMode` (a custom keyword): whether the datapath keeps the OS's memory away from the
/// device — TX frames copied into driver-owned shared buffers, RX frames bounced into private
/// memory before they are indicated — as a confidential guest (SEV-SNP, TDX) needs, where the
/// device can only reach memory the guest shared with the host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ConfidentialMode {
    /// `0`: never (the OS's buffers are handed to the device by logical address).
    Off,
    /// `1` (default): on exactly when VIRTIO_F_ACCESS_PLATFORM is negotiated — the device says
    /// its DMA goes through the platform (an IOMMU, or the bounce buffers of a confidential
    /// guest), so the driver cannot assume it sees guest memory as the guest does.
    #[default]
    Auto,
    /// `2`: always.
    On,
}

impl ConfidentialMode {
    /// From the keyword value; out-of-range values give the default (`Auto`).
    pub const fn from_keyword(v: u32) -> Self {
        match v {
            0 => Self::Off,
            2 => Self::On,
            _ => Self::Auto,
        }
    }

    /// Whether the datapath runs confidential with the negotiated features `f`.
    pub const fn resolve(self, f: Features) -> bool {
        match self {
            Self::Off => false,
            Self::Auto => f.contains(Features::ACCESS_PLATFORM),
            Self::On => true,
        }
    }
}

/// The advanced properties of `virtionet.inx`, after range checks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UserSettings {
    /// `*JumboPacket`: largest frame without FCS (1514–65500).
    pub jumbo_packet: u32,
    /// `*IPChecksumOffloadIPv4`.
    pub ipv4_checksum: Direction,
    /// `*TCPChecksumOffloadIPv4`.
    pub tcp4_checksum: Direction,
    /// `*TCPChecksumOffloadIPv6`.
    pub tcp6_checksum: Direction,
    /// `*UDPChecksumOffloadIPv4`.
    pub udp4_checksum: Direction,
    /// `*UDPChecksumOffloadIPv6`.
    pub udp6_checksum: Direction,
    /// `*LsoV2IPv4`.
    pub lso_v4: bool,
    /// `*LsoV2IPv6`.
    pub lso_v6: bool,
    /// `*UsoIPv4`.
    pub uso_v4: bool,
    /// `*UsoIPv6`.
    pub uso_v6: bool,
    /// `*RscIPv4`.
    pub rsc_v4: bool,
    /// `*RscIPv6`.
    pub rsc_v6: bool,
    /// `*PriorityVLANTag` (0 off, 1 priority, 2 VLAN, 3 both).
    pub priority_vlan_tag: u8,
    /// `VlanID` (0–4095; 0 = none).
    pub vlan_id: u16,
    /// `NetworkAddress`, if set to a valid unicast address.
    pub network_address: Option<[u8; 6]>,
    /// `*ReceiveBuffers` (64–4096).
    pub receive_buffers: u32,
    /// `*TransmitBuffers` (64–4096).
    pub transmit_buffers: u32,
    /// `ConfidentialMode` (0 Off, 1 Auto, 2 On).
    pub confidential_mode: ConfidentialMode,
}

impl Default for UserSettings {
    fn default() -> Self {
        let both = Direction::from_keyword(3);
        Self {
            jumbo_packet: 1514,
            ipv4_checksum: both,
            tcp4_checksum: both,
            tcp6_checksum: both,
            udp4_checksum: both,
            udp6_checksum: both,
            lso_v4: true,
            lso_v6: true,
            uso_v4: true,
            uso_v6: true,
            rsc_v4: true,
            rsc_v6: true,
            priority_vlan_tag: 3,
            vlan_id: 0,
            network_address: None,
            receive_buffers: 1024,
            transmit_buffers: 1024,
            confidential_mode: ConfidentialMode::Auto,
        }
    }
}

impl UserSettings {
    /// Reads the keywords through `get` (the registry value as a number, `None` when absent) and
    /// `address` (the `NetworkAddress` string), clamping to the INF ranges and falling back to
    /// the defaults for anything absent or malformed.
    pub fn from_keywords(get: impl Fn(&str) -> Option<u32>, address: Option<&str>) -> Self {
        let d = Self::default();
        let dir = |k: &str, def: Direction| get(k).map_or(def, Direction::from_keyword);
        let flag = |k: &str, def: bool| get(k).map_or(def, |v| v != 0);
        Self {
            jumbo_packet: get("*JumboPacket").map_or(d.jumbo_packet, |v| v.clamp(1514, 65500)),
            ipv4_checksum: dir("*IPChecksumOffloadIPv4", d.ipv4_checksum),
            tcp4_checksum: dir("*TCPChecksumOffloadIPv4", d.tcp4_checksum),
            tcp6_checksum: dir("*TCPChecksumOffloadIPv6", d.tcp6_checksum),
            udp4_checksum: dir("*UDPChecksumOffloadIPv4", d.udp4_checksum),
            udp6_checksum: dir("*UDPChecksumOffloadIPv6", d.udp6_checksum),
            lso_v4: flag("*LsoV2IPv4", d.lso_v4),
            lso_v6: flag("*LsoV2IPv6", d.lso_v6),
            uso_v4: flag("*UsoIPv4", d.uso_v4),
            uso_v6: flag("*UsoIPv6", d.uso_v6),
            rsc_v4: flag("*RscIPv4", d.rsc_v4),
            rsc_v6: flag("*RscIPv6", d.rsc_v6),
            priority_vlan_tag: get("*PriorityVLANTag")
                .map_or(d.priority_vlan_tag, |v| v.min(3) as u8),
            vlan_id: get("VlanID").map_or(0, |v| if v > 4095 { 0 } else { v as u16 }),
            network_address: address.and_then(parse_mac),
            receive_buffers: get("*ReceiveBuffers")
                .map_or(d.receive_buffers, |v| v.clamp(64, 4096)),
            transmit_buffers: get("*TransmitBuffers")
                .map_or(d.transmit_buffers, |v| v.clamp(64, 4096)),
            confidential_mode: get("ConfidentialMode")
                .map_or(d.confidential_mode, ConfidentialMode::from_keyword),
        }
    }
}

/// Parses `NetworkAddress`: 12 hex digits (separators `-` or `:` allowed), unicast, not zero.
pub fn parse_mac(s: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut n = 0;
    for c in s.bytes().filter(|c| *c != b'-' && *c != b':') {
        let v = (c as char).to_digit(16)? as u8;
        if n >= 12 {
            return None;
        }
        if let Some(m) = mac.get_mut(n / 2) {
            *m = (*m << 4) | v;
        }
        // n < 12 (checked above).
        n = n.saturating_add(1);
    }
    (n == 12 && mac[0] & 1 == 0 && mac != [0; 6]).then_some(mac)
}

/// Checksum offload in one direction, per layer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ChecksumCaps {
    /// IPv4 header checksum.
    pub ipv4: bool,
    /// TCP (over IPv4 and IPv6 as enabled).
    pub tcp: bool,
    /// UDP.
    pub udp: bool,
}

/// Segmentation offload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct GsoCaps {
    /// LSO over IPv4.
    pub lso_v4: bool,
    /// LSO over IPv6.
    pub lso_v6: bool,
    /// USO over IPv4.
    pub uso_v4: bool,
    /// USO over IPv6.
    pub uso_v6: bool,
    /// `MaximumOffloadSize`.
    pub max_offload_size: u32,
    /// `MinimumSegmentCount`.
    pub min_segment_count: u32,
}

/// What the glue declares to NetAdapterCx.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Link-layer MTU (IP packet size).
    pub mtu: u32,
    /// Current link-layer address.
    pub current_address: [u8; 6],
    /// Permanent link-layer address (the device's).
    pub permanent_address: [u8; 6],
    /// Link speed in bits per second.
    pub link_speed: u64,
    /// TX checksum offload.
    pub tx_checksum: ChecksumCaps,
    /// RX checksum offload (device-validated or verified in software).
    pub rx_checksum: ChecksumCaps,
    /// RX checksums are verified in software (the device has no GUEST_CSUM).
    pub rx_checksum_in_software: bool,
    /// Segmentation offload.
    pub gso: GsoCaps,
    /// RSC over IPv4 / IPv6.
    pub rsc_v4: bool,
    /// RSC over IPv6.
    pub rsc_v6: bool,
    /// 802.1p priority tagging.
    pub priority_tagging: bool,
    /// 802.1Q VLAN tagging.
    pub vlan_tagging: bool,
    /// Receive buffer size (bytes, including the virtio-net header) and count.
    pub rx_buffer_size: u32,
    /// Receive buffers.
    pub rx_buffers: u32,
    /// `MaximumFrameSize` for RX (the fragment capacity NetAdapterCx accepts).
    pub rx_max_frame_size: u32,
    /// TX `MaximumNumberOfFragments`.
    pub tx_max_fragments: u32,
    /// TX packet ring size hint.
    pub tx_buffers: u32,
    /// Largest multicast list.
    pub max_multicast: u32,
    /// `VIRTIO_NET_RSS_HASH_TYPE_*` the device can steer by (0: no device RSS).
    pub rss_hash_types: u32,
    /// The resolved `ConfidentialMode`: the TX engines copy into shared buffers
    /// (`TxSettings::confidential`) and the RX engines bounce into private memory.
    pub confidential: bool,
}

/// MTU without `VIRTIO_NET_F_MTU`: the Ethernet default (the host's network may not carry more).
pub const DEFAULT_MTU: u32 = 1500;

/// The largest LSO/USO payload declared to NetAdapterCx (`MaximumOffloadSize`).
pub const MAX_OFFLOAD_SIZE: u32 = 64_000;

/// The most header bytes in front of an offloaded payload: Ethernet with two tags (22), IPv6
/// with extension headers (NetAdapterCx's layout fields allow up to 511 bytes of layer 3) and
/// the largest TCP header (60).
pub const MAX_OFFLOAD_HEADERS: u32 = 22 + 511 + 60;
/// Receive buffer size with mergeable buffers.
pub const MERGEABLE_BUFFER: u32 = 2048;

/// Derives the capabilities. `random_mac` is used when the device has no MAC and the user set
/// none (a locally administered address the glue generates).
pub fn derive(
    f: Features,
    cfg: &NetConfig,
    user: &UserSettings,
    random_mac: [u8; 6],
) -> Capabilities {
    let device_mtu = cfg.mtu.map_or(DEFAULT_MTU, u32::from);
    // jumbo_packet is clamped to 1514..=65500 when read (`from_keywords`).
    let mtu = user.jumbo_packet.saturating_sub(14).min(device_mtu);
    let permanent = cfg.mac.unwrap_or(random_mac);
    let csum = f.contains(Features::NET_CSUM);
    let guest_csum = f.contains(Features::NET_GUEST_CSUM);
    let mrg = f.contains(Features::NET_MRG_RXBUF);
    let tx_checksum = ChecksumCaps {
        ipv4: user.ipv4_checksum.tx,
        tcp: csum && (user.tcp4_checksum.tx || user.tcp6_checksum.tx),
        udp: csum && (user.udp4_checksum.tx || user.udp6_checksum.tx),
    };
    let rx_checksum = ChecksumCaps {
        ipv4: user.ipv4_checksum.rx,
        tcp: user.tcp4_checksum.rx || user.tcp6_checksum.rx,
        udp: user.udp4_checksum.rx || user.udp6_checksum.rx,
    };
    let gso = GsoCaps {
        lso_v4: csum && f.contains(Features::NET_HOST_TSO4) && user.lso_v4 && tx_checksum.tcp,
        lso_v6: csum && f.contains(Features::NET_HOST_TSO6) && user.lso_v6 && tx_checksum.tcp,
        uso_v4: csum && f.contains(Features::NET_HOST_USO) && user.uso_v4 && tx_checksum.udp,
        uso_v6: csum && f.contains(Features::NET_HOST_USO) && user.uso_v6 && tx_checksum.udp,
        max_offload_size: MAX_OFFLOAD_SIZE,
        min_segment_count: 2,
    };
    // Coalesced receives need room (mergeable buffers) and a device checksum verdict.
    let rsc_ok = mrg && guest_csum;
    let rx_buffer_size = if mrg {
        MERGEABLE_BUFFER
    } else {
        // Header, frame and a tag: mtu <= 65486.
        mtu.saturating_add(12 + 14 + 4)
    };
    Capabilities {
        mtu,
        current_address: user.network_address.unwrap_or(permanent),
        permanent_address: permanent,
        link_speed: u64::from(cfg.speed_mbps.unwrap_or(10_000)) * 1_000_000,
        tx_checksum,
        rx_checksum,
        rx_checksum_in_software: !guest_csum,
        gso,
        rsc_v4: rsc_ok && f.contains(Features::NET_GUEST_TSO4) && user.rsc_v4,
        rsc_v6: rsc_ok && f.contains(Features::NET_GUEST_TSO6) && user.rsc_v6,
        priority_tagging: user.priority_vlan_tag & 1 != 0,
        vlan_tagging: user.priority_vlan_tag & 2 != 0,
        rx_buffer_size,
        rx_buffers: user.receive_buffers,
        rx_max_frame_size: rx_buffer_size,
        tx_max_fragments: (crate::txqueue::MAX_SEGMENTS as u32).saturating_sub(1),
        tx_buffers: user.transmit_buffers,
        max_multicast: offload::filter::MAX_MULTICAST as u32,
        rss_hash_types: if f.contains(Features::NET_RSS) {
            cfg.supported_hash_types.unwrap_or(0)
        } else {
            0
        },
        confidential: user.confidential_mode.resolve(f),
    }
}

/// The features the driver asks for, given what the device offers and the user's settings:
///
/// * always: VERSION_1 (modern only), ACCESS_PLATFORM (addresses are DMA logical addresses, so
///   an IOMMU is fine), EVENT_IDX and INDIRECT_DESC (fewer notifications, fewer descriptors),
///   RING_PACKED when offered, MAC, STATUS, MTU, SPEED_DUPLEX, the control queue and its RX,
///   RX_EXTRA, VLAN, MAC_ADDR, GUEST_OFFLOADS and GUEST_ANNOUNCE commands, MQ, RSS (the device
///   steers received packets by the OS's key and indirection table, [`crate::rss`]);
/// * TX offloads (CSUM, HOST_TSO4/6, HOST_ECN, HOST_USO) and RX ones (GUEST_CSUM, MRG_RXBUF,
///   GUEST_TSO4/6, GUEST_ECN, RSC_EXT) — the OS is only promised those the user enabled;
/// * never: the deprecated UFO bits, HASH_REPORT (not implemented), STANDBY,
///   NOTF_COAL, IN_ORDER, NOTIFICATION_DATA.
pub fn wanted_features(offered: Features, user: &UserSettings) -> Features {
    let mut w = Features::VERSION_1
        | Features::ACCESS_PLATFORM
        | Features::RING_EVENT_IDX
        | Features::RING_INDIRECT_DESC
        | Features::RING_PACKED
        | Features::NET_MAC
        | Features::NET_STATUS
        | Features::NET_MTU
        | Features::NET_SPEED_DUPLEX
        | Features::NET_CTRL_VQ
        | Features::NET_CTRL_RX
        | Features::NET_CTRL_RX_EXTRA
        | Features::NET_CTRL_VLAN
        | Features::NET_CTRL_MAC_ADDR
        | Features::NET_CTRL_GUEST_OFFLOADS
        | Features::NET_GUEST_ANNOUNCE
        | Features::NET_MQ
        | Features::NET_RSS
        | Features::NET_CSUM
        | Features::NET_HOST_TSO4
        | Features::NET_HOST_TSO6
        | Features::NET_HOST_ECN
        | Features::NET_HOST_USO
        | Features::NET_GUEST_CSUM
        | Features::NET_MRG_RXBUF;
    if user.rsc_v4 || user.rsc_v6 {
        w |= Features::NET_GUEST_TSO4
            | Features::NET_GUEST_TSO6
            | Features::NET_GUEST_ECN
            | Features::NET_RSC_EXT;
    }
    let mut f = Features::from_bits_truncate(offered.bits() & w.bits());
    // Dependencies (§5.1.3.1): drop what the device offers without its prerequisites.
    if !f.contains(Features::NET_CSUM) {
        f.remove(
            Features::NET_HOST_TSO4
                | Features::NET_HOST_TSO6
                | Features::NET_HOST_ECN
                | Features::NET_HOST_USO,
        );
    }
    if !f.contains(Features::NET_GUEST_CSUM) || !f.contains(Features::NET_MRG_RXBUF) {
        // Coalesced packets up to 64 KiB only fit mergeable buffers.
        f.remove(
            Features::NET_GUEST_TSO4
                | Features::NET_GUEST_TSO6
                | Features::NET_GUEST_ECN
                | Features::NET_RSC_EXT,
        );
    }
    if !f.contains(Features::NET_CTRL_VQ) {
        f.remove(
            Features::NET_CTRL_RX
                | Features::NET_CTRL_RX_EXTRA
                | Features::NET_CTRL_VLAN
                | Features::NET_CTRL_MAC_ADDR
                | Features::NET_CTRL_GUEST_OFFLOADS
                | Features::NET_GUEST_ANNOUNCE
                | Features::NET_MQ
                | Features::NET_RSS,
        );
    }
    if !f.contains(Features::NET_CTRL_RX) {
        f.remove(Features::NET_CTRL_RX_EXTRA);
    }
    f
}
