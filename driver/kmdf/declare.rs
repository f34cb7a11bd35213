//! What the adapter tells NetAdapterCx before `NetAdapterStart`, built from the core's
//! [`Capabilities`]; the queue configurations and extension queries of queue creation; and the
//! reading of what the OS enabled in an offload callback. Portable (compiled on every host, and
//! run on Linux by the glue host, whose NetAdapterCx routines apply the framework's checks,
//! `reference/netadaptercx.md` §2.8): only the WDF objects around it are Windows-only.

use netring::names;
use netring::{Extension, ExtensionSpec, FragmentRing, NetExtension, PacketRing};

use super::netcx::*;
use crate::config::Capabilities;
use crate::rxqueue::RxExtensions;
use crate::txqueue::TxExtensions;

/// The adapter-level callbacks the glue registers.
#[derive(Debug, Clone, Copy)]
pub struct AdapterCallbacks {
    /// `EvtAdapterReturnRxBuffer` (driver-managed RX buffers).
    pub return_rx_buffer: EvtReturnRxBuffer,
    /// TX checksum offload changed.
    pub set_tx_checksum: EvtOffloadSet,
    /// RX checksum offload changed.
    pub set_rx_checksum: EvtOffloadSet,
    /// LSO/USO changed.
    pub set_gso: EvtOffloadSet,
    /// RSC changed.
    pub set_rsc: EvtOffloadSet,
    /// Receive filter changed.
    pub set_receive_filter: EvtSetReceiveFilter,
    /// Receive-side scaling (declared only with device RSS and more than one queue pair).
    pub rss: RssCallbacks,
}

/// The receive-side scaling callbacks.
#[derive(Debug, Clone, Copy)]
pub struct RssCallbacks {
    /// `EvtAdapterReceiveScalingEnable`.
    pub enable: EvtRssEnable,
    /// `EvtAdapterReceiveScalingDisable`.
    pub disable: EvtRssDisable,
    /// `EvtAdapterReceiveScalingSetHashSecretKey`.
    pub set_key: EvtRssSetKey,
    /// `EvtAdapterReceiveScalingSetIndirectionEntries`.
    pub set_entries: EvtRssSetEntries,
}

/// The RSS protocol types to declare for the device's `VIRTIO_NET_RSS_HASH_TYPE_*` bits: a
/// family when the device hashes its addresses (IPv4 options too: the device hashes the
/// addresses of any IPv4 header), TCP and UDP when it hashes their ports.
pub fn rss_protocol_types(virtio: u32) -> u32 {
    use virtio::net::rss_hash as H;
    let mut p = 0;
    if virtio & H::IPV4 != 0 {
        p |= rss_protocol::IPV4 | rss_protocol::IPV4_OPTIONS;
    }
    if virtio & H::IPV6 != 0 {
        p |= rss_protocol::IPV6;
    }
    if virtio & H::IP_EX != 0 {
        p |= rss_protocol::IPV6_EXTENSIONS;
    }
    if virtio & (H::TCPV4 | H::TCPV6) != 0 {
        p |= rss_protocol::TCP;
    }
    if virtio & (H::UDPV4 | H::UDPV6) != 0 {
        p |= rss_protocol::UDP;
    }
    p
}

/// The RSS capabilities: Toeplitz over what the device hashes, `queues` receive queues (a power
/// of two), a 128-entry table (`crate::rss::TABLE_SIZE`), unhashed packets to table entry 0.
pub fn rss_capabilities(
    queues: u16,
    virtio_types: u32,
    cb: &RssCallbacks,
) -> NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES {
    NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES {
        Size: size32::<NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES>(),
        NumberOfQueues: usize::from(queues),
        IndirectionTableSize: crate::rss::TABLE_SIZE,
        UnhashedTargetIndex: 0,
        UnhashedTargetType: RSS_UNHASHED_TARGET_HASH_INDEX,
        ReceiveScalingHashTypes: RSS_HASH_TYPE_TOEPLITZ,
        ReceiveScalingProtocolTypes: rss_protocol_types(virtio_types),
        EncapsulationOuter: 0,
        EncapsulationInner: 0,
        SynchronizeSetIndirectionEntries: 0,
        EvtAdapterReceiveScalingEnable: Some(cb.enable),
        EvtAdapterReceiveScalingDisable: Some(cb.disable),
        EvtAdapterReceiveScalingSetHashSecretKey: Some(cb.set_key),
        EvtAdapterReceiveScalingSetIndirectionEntries: Some(cb.set_entries),
    }
}

/// The key of `EvtAdapterReceiveScalingSetHashSecretKey`.
///
/// # Safety
///
/// `key` must be the callback's argument, read during the callback.
pub unsafe fn read_hash_key<'a>(
    key: *const NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY,
) -> Option<&'a [u8]> {
    if key.is_null() {
        return None;
    }
    // SAFETY: the framework's struct, valid for the callback.
    let k = unsafe { *key };
    if k.Key.is_null() || k.Length > 64 {
        return None;
    }
    // SAFETY: the framework's key buffer of `Length` bytes, valid for the callback.
    Some(unsafe { core::slice::from_raw_parts(k.Key, k.Length) })
}

/// `EvtAdapterReceiveScalingSetIndirectionEntries`: applies each entry to `state`, mapping its
/// queue to a pair with `pair_of`, and writes each entry's Status. Returns success when every
/// entry applied.
///
/// # Safety
///
/// `entries` must be the callback's argument, used during the callback.
pub unsafe fn apply_indirection_entries(
    entries: *mut NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES,
    state: &mut crate::rss::RssState,
    pair_of: impl Fn(NETPACKETQUEUE) -> Option<u16>,
) -> NTSTATUS {
    if entries.is_null() {
        return STATUS_INVALID_PARAMETER;
    }
    // SAFETY: the framework's struct, valid for the callback.
    let e = unsafe { *entries };
    if e.Entries.is_null() {
        return if e.Length == 0 {
            STATUS_SUCCESS
        } else {
            STATUS_INVALID_PARAMETER
        };
    }
    // SAFETY: `Length` entries the driver may write (Status) during the callback.
    let list = unsafe { core::slice::from_raw_parts_mut(e.Entries, e.Length) };
    let mut all = STATUS_SUCCESS;
    for entry in list {
        let ok = pair_of(entry.PacketQueue).is_some_and(|p| state.set_entry(entry.Index, p));
        entry.Status = if ok {
            STATUS_SUCCESS
        } else {
            STATUS_INVALID_PARAMETER
        };
        if !ok {
            all = STATUS_INVALID_PARAMETER;
        }
    }
    all
}

/// Deepest L4 header the TX engine can rewrite: it and a 60-byte TCP header fit the header slot.
pub const L4_OFFSET_LIMIT: u16 = (crate::txqueue::COPY_MAX - 60) as u16;
/// Deepest L3 header: room behind it for a 60-byte IPv4 header (or IPv6's 40 and more).
pub const L3_OFFSET_LIMIT: u16 = L4_OFFSET_LIMIT - 60;

/// The sizes of the NetAdapterCx structs (what the `_INIT` macros put in `Size`).
const fn size32<T>() -> u32 {
    core::mem::size_of::<T>() as u32
}

/// The link state for `NetAdapterSetLinkState`: connected at `speed` bits/s, full duplex, or
/// disconnected (speed unknown), as `NET_ADAPTER_LINK_STATE_INIT(_DISCONNECTED)` build it.
pub const fn link_state(up: bool, speed: u64) -> NET_ADAPTER_LINK_STATE {
    if up {
        NET_ADAPTER_LINK_STATE {
            Size: size32::<NET_ADAPTER_LINK_STATE>(),
            TxLinkSpeed: speed,
            RxLinkSpeed: speed,
            MediaConnectState: media_connect_state::CONNECTED,
            MediaDuplexState: 2,
            SupportedPauseFunctions: 0,
            AutoNegotiationFlags: 0,
        }
    } else {
        NET_ADAPTER_LINK_STATE {
            Size: size32::<NET_ADAPTER_LINK_STATE>(),
            TxLinkSpeed: NET_ADAPTER_LINK_SPEED_UNKNOWN,
            RxLinkSpeed: NET_ADAPTER_LINK_SPEED_UNKNOWN,
            MediaConnectState: media_connect_state::DISCONNECTED,
            MediaDuplexState: 0,
            SupportedPauseFunctions: 0,
            AutoNegotiationFlags: 0,
        }
    }
}

/// The DMA capabilities (TX fragments arrive DMA-mapped through `enabler`, a DMA v3 enabler).
pub const fn dma_capabilities(enabler: WDFDMAENABLER) -> NET_ADAPTER_DMA_CAPABILITIES {
    NET_ADAPTER_DMA_CAPABILITIES {
        Size: size32::<NET_ADAPTER_DMA_CAPABILITIES>(),
        DmaEnabler: enabler,
        MaximumPhysicalAddress: 0,
        CacheEnabled: WDF_USE_DEFAULT,
        PreferredNode: MM_ANY_NODE_OK,
    }
}

/// TX: DMA-mapped fragments (logical addresses go straight into descriptors), at most
/// `tx_max_fragments` per packet (the OS bounces longer ones), one queue per pair.
pub fn tx_capabilities(
    caps: &Capabilities,
    queues: u16,
    dma: &NET_ADAPTER_DMA_CAPABILITIES,
) -> NET_ADAPTER_TX_CAPABILITIES {
    NET_ADAPTER_TX_CAPABILITIES {
        Size: size32::<NET_ADAPTER_TX_CAPABILITIES>(),
        MappingRequirement: MAPPING_DMA_MAPPED,
        PayloadBackfill: 0,
        MaximumNumberOfFragments: caps.tx_max_fragments as usize,
        FragmentBufferAlignment: 1,
        FragmentRingNumberOfElementsHint: caps.tx_buffers.next_power_of_two(),
        MaximumNumberOfQueues: usize::from(queues.max(1)),
        DmaCapabilities: dma,
    }
}

/// RX: driver-managed buffers (allocated and attached by the driver, returned through
/// `EvtAdapterReturnRxBuffer`), `rx_max_frame_size` bytes each.
pub fn rx_capabilities(
    caps: &Capabilities,
    queues: u16,
    return_rx_buffer: EvtReturnRxBuffer,
) -> NET_ADAPTER_RX_CAPABILITIES {
    NET_ADAPTER_RX_CAPABILITIES {
        Size: size32::<NET_ADAPTER_RX_CAPABILITIES>(),
        AllocationMode: RX_MODE_DRIVER,
        AttachmentMode: RX_MODE_DRIVER,
        FragmentRingNumberOfElementsHint: caps.rx_buffers.next_power_of_two(),
        MaximumFrameSize: caps.rx_max_frame_size as usize,
        MaximumNumberOfQueues: usize::from(queues.max(1)),
        u: RxBufferUnion {
            EvtAdapterReturnRxBuffer: Some(return_rx_buffer),
        },
    }
}

/// Layer-3/4 flags for checksum offload in one direction.
fn checksum_flags(ipv4: bool, tcp: bool, udp: bool) -> (u32, u32) {
    let mut l3 = 0;
    let mut l4 = 0;
    if ipv4 || tcp || udp {
        l3 = l3::IPV4_NO_OPTIONS | l3::IPV4_WITH_OPTIONS;
    }
    if tcp || udp {
        l3 |= l3::IPV6_NO_EXTENSIONS | l3::IPV6_WITH_EXTENSIONS;
    }
    if tcp {
        l4 |= l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS;
    }
    if udp {
        l4 |= l4::UDP;
    }
    (l3, l4)
}

/// Every capability call NetAdapterCx needs before `NetAdapterStart`, in the order RtEthSample
/// makes them: link layer, MTU, addresses, datapath, receive filter, offloads. Offloads the
/// device cannot do are not declared at all (the OS then does them in software).
///
/// # Safety
///
/// `adapter` must be a NETADAPTER not yet started, at PASSIVE_LEVEL, and `dma.DmaEnabler` a
/// DMA v3 enabler of its device.
pub unsafe fn declare(
    adapter: NETADAPTER,
    caps: &Capabilities,
    queues: u16,
    dma: &NET_ADAPTER_DMA_CAPABILITIES,
    cb: &AdapterCallbacks,
) {
    let link = NET_ADAPTER_LINK_LAYER_CAPABILITIES {
        Size: size32::<NET_ADAPTER_LINK_LAYER_CAPABILITIES>(),
        MaxTxLinkSpeed: caps.link_speed,
        MaxRxLinkSpeed: caps.link_speed,
    };
    let permanent = NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(caps.permanent_address);
    let current = NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(caps.current_address);
    let tx = tx_capabilities(caps, queues, dma);
    let rx = rx_capabilities(caps, queues, cb.return_rx_buffer);
    let filter = NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES {
        Size: size32::<NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES>(),
        SupportedPacketFilters: packet_filter::DIRECTED
            | packet_filter::MULTICAST
            | packet_filter::ALL_MULTICAST
            | packet_filter::BROADCAST
            | packet_filter::PROMISCUOUS,
        MaximumMulticastAddresses: caps.max_multicast as usize,
        EvtSetReceiveFilter: Some(cb.set_receive_filter),
    };
    // SAFETY: the caller gave a NETADAPTER before start at PASSIVE_LEVEL; every struct here is
    // initialised with its exact Size and lives across the call (so for each call below).
    unsafe { NetAdapterSetLinkLayerCapabilities(adapter, &link) };
    // SAFETY: as above.
    unsafe { NetAdapterSetLinkLayerMtuSize(adapter, caps.mtu) };
    // SAFETY: as above.
    unsafe { NetAdapterSetPermanentLinkLayerAddress(adapter, &permanent) };
    // SAFETY: as above.
    unsafe { NetAdapterSetCurrentLinkLayerAddress(adapter, &current) };
    // SAFETY: as above; `dma` outlives the call (the framework copies the capabilities).
    unsafe { NetAdapterSetDataPathCapabilities(adapter, &tx, &rx) };
    // SAFETY: as above.
    unsafe { NetAdapterSetReceiveFilterCapabilities(adapter, &filter) };

    let t = &caps.tx_checksum;
    let (l3, l4) = checksum_flags(t.ipv4, t.tcp, t.udp);
    if l3 | l4 != 0 {
        let c = NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES {
            Size: size32::<NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES>(),
            Layer3Flags: l3,
            Layer4Flags: l4,
            // Headers that need rewriting are copied into the packet's header slot: the L4
            // header (up to 60 bytes) must end inside it. Deeper packets the OS does itself.
            Layer3HeaderOffsetLimit: L3_OFFSET_LIMIT,
            Layer4HeaderOffsetLimit: L4_OFFSET_LIMIT,
            EvtAdapterOffloadSetTxChecksum: Some(cb.set_tx_checksum),
        };
        // SAFETY: as above.
        unsafe { NetAdapterOffloadSetTxChecksumCapabilities(adapter, &c) };
    }
    let r = &caps.rx_checksum;
    if r.ipv4 || r.tcp || r.udp {
        let c = NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES {
            Size: size32::<NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES>(),
            EvtAdapterOffloadSetRxChecksum: Some(cb.set_rx_checksum),
        };
        // SAFETY: as above.
        unsafe { NetAdapterOffloadSetRxChecksumCapabilities(adapter, &c) };
    }
    let g = &caps.gso;
    let mut gl3 = 0;
    let mut gl4 = 0;
    if g.lso_v4 || g.uso_v4 {
        gl3 |= l3::IPV4_NO_OPTIONS | l3::IPV4_WITH_OPTIONS;
    }
    if g.lso_v6 || g.uso_v6 {
        gl3 |= l3::IPV6_NO_EXTENSIONS | l3::IPV6_WITH_EXTENSIONS;
    }
    if g.lso_v4 || g.lso_v6 {
        gl4 |= l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS;
    }
    if g.uso_v4 || g.uso_v6 {
        gl4 |= l4::UDP;
    }
    if gl3 != 0 && gl4 != 0 {
        let c = NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES {
            Size: size32::<NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES>(),
            Layer3Flags: gl3,
            Layer4Flags: gl4,
            Layer4HeaderOffsetLimit: L4_OFFSET_LIMIT,
            MaximumOffloadSize: g.max_offload_size as usize,
            MinimumSegmentCount: g.min_segment_count as usize,
            EvtAdapterOffloadSetGso: Some(cb.set_gso),
        };
        // SAFETY: as above.
        unsafe { NetAdapterOffloadSetGsoCapabilities(adapter, &c) };
    }
    if caps.rsc_v4 || caps.rsc_v6 {
        let mut rl3 = 0;
        if caps.rsc_v4 {
            rl3 |= l3::IPV4_NO_OPTIONS;
        }
        if caps.rsc_v6 {
            rl3 |= l3::IPV6_NO_EXTENSIONS;
        }
        let c = NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES {
            Size: size32::<NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES>(),
            Layer3Flags: rl3,
            Layer4Flags: l4::TCP_NO_OPTIONS,
            // The device coalesces segments carrying timestamps too.
            TcpTimestampOption: 1,
            EvtAdapterOffloadSetRsc: Some(cb.set_rsc),
        };
        // SAFETY: as above.
        unsafe { NetAdapterOffloadSetRscCapabilities(adapter, &c) };
    }
    if queues > 1 && rss_protocol_types(caps.rss_hash_types) != 0 {
        let c = rss_capabilities(queues, caps.rss_hash_types, &cb.rss);
        // SAFETY: as above.
        unsafe { NetAdapterSetReceiveScalingCapabilities(adapter, &c) };
    }
    let flags = u32::from(caps.priority_tagging) | (u32::from(caps.vlan_tagging) << 1);
    if flags != 0 {
        let c = NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES {
            Size: size32::<NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES>(),
            Flags: flags,
        };
        // SAFETY: as above.
        unsafe { NetAdapterOffloadSetIeee8021qTagCapabilities(adapter, &c) };
    }
}

/// The packet-queue configuration (`NET_PACKET_QUEUE_CONFIG_INIT` plus Start/Stop): the
/// framework's execution context, so SetNotificationEnabled is required.
pub const fn queue_config(
    advance: EvtPacketQueue,
    set_notification_enabled: EvtPacketQueueSetNotificationEnabled,
    cancel: EvtPacketQueue,
    start: EvtPacketQueue,
    stop: EvtPacketQueue,
) -> NET_PACKET_QUEUE_CONFIG {
    NET_PACKET_QUEUE_CONFIG {
        Size: size32::<NET_PACKET_QUEUE_CONFIG>(),
        EvtStart: Some(start),
        EvtStop: Some(stop),
        EvtAdvance: Some(advance),
        EvtSetNotificationEnabled: Some(set_notification_enabled),
        EvtCancel: Some(cancel),
        ExecutionContext: core::ptr::null_mut(),
    }
}

/// Validates the handle `query` returned for `spec` against the queue's packet or fragment ring
/// (an unregistered extension gives a disabled handle).
fn bind_ext<T: netring::Payload>(
    spec: &ExtensionSpec,
    packets: &PacketRing<'_>,
    fragments: &FragmentRing<'_>,
    query: &mut impl FnMut(&netring::NetExtensionQuery) -> NetExtension,
) -> Extension<T> {
    let raw = query(&spec.query());
    let r = match spec.ty {
        netring::ExtensionType::Packet => Extension::new(&raw, packets),
        _ => Extension::new(&raw, fragments),
    };
    r.unwrap_or(Extension::disabled())
}

/// The TX queue's extensions, queried once at creation (`query` wraps `NetTxQueueGetExtension`).
pub fn tx_extensions(
    packets: &PacketRing<'_>,
    fragments: &FragmentRing<'_>,
    mut query: impl FnMut(&netring::NetExtensionQuery) -> NetExtension,
) -> TxExtensions {
    TxExtensions {
        checksum: bind_ext(&names::CHECKSUM, packets, fragments, &mut query),
        gso: bind_ext(&names::GSO, packets, fragments, &mut query),
        ieee8021q: bind_ext(&names::IEEE8021Q, packets, fragments, &mut query),
        logical_address: bind_ext(&names::LOGICAL_ADDRESS, packets, fragments, &mut query),
        virtual_address: bind_ext(&names::VIRTUAL_ADDRESS, packets, fragments, &mut query),
    }
}

/// The RX queue's extensions, queried once at creation (`query` wraps `NetRxQueueGetExtension`).
pub fn rx_extensions(
    packets: &PacketRing<'_>,
    fragments: &FragmentRing<'_>,
    mut query: impl FnMut(&netring::NetExtensionQuery) -> NetExtension,
) -> RxExtensions {
    RxExtensions {
        checksum: bind_ext(&names::CHECKSUM, packets, fragments, &mut query),
        rsc: bind_ext(&names::RSC, packets, fragments, &mut query),
        ieee8021q: bind_ext(&names::IEEE8021Q, packets, fragments, &mut query),
        hash: bind_ext(&names::HASH, packets, fragments, &mut query),
        virtual_address: bind_ext(&names::VIRTUAL_ADDRESS, packets, fragments, &mut query),
        logical_address: bind_ext(&names::LOGICAL_ADDRESS, packets, fragments, &mut query),
        return_context: bind_ext(&names::RETURN_CONTEXT, packets, fragments, &mut query),
    }
}

/// What the OS has enabled of the offloads (read in the offload callbacks).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Enabled {
    /// Any RX checksum offload.
    pub rx_checksum: bool,
    /// RSC over IPv4 or IPv6.
    pub rsc: bool,
}

/// Reads what an offload callback's `offload` has enabled on the receive side (what the device
/// must be told through VIRTIO_NET_CTRL_GUEST_OFFLOADS).
///
/// # Safety
///
/// `offload` must be the NETOFFLOAD of a running `EvtAdapterOffloadSet*` callback.
pub unsafe fn read_enabled(offload: NETOFFLOAD) -> Enabled {
    let on = |f: unsafe fn(NETOFFLOAD) -> BOOLEAN| {
        // SAFETY: the caller passes the callback's own NETOFFLOAD, at PASSIVE_LEVEL.
        unsafe { f(offload) != 0 }
    };
    Enabled {
        rx_checksum: on(NetOffloadIsRxChecksumIPv4Enabled)
            || on(NetOffloadIsRxChecksumTcpEnabled)
            || on(NetOffloadIsRxChecksumUdpEnabled),
        rsc: on(NetOffloadIsTcpRscIPv4Enabled) || on(NetOffloadIsTcpRscIPv6Enabled),
    }
}

/// The receive filter the OS asks for, in the core's terms, with the adapter's VLAN (`VlanID`,
/// 0 for none) as the only VLAN member.
///
/// # Safety
///
/// `filter` must be the NETRECEIVEFILTER of a running `EvtSetReceiveFilter` callback.
pub unsafe fn read_receive_filter(
    filter: NETRECEIVEFILTER,
    mac: [u8; 6],
    vlan_id: u16,
) -> offload::filter::RxFilter {
    // SAFETY: the caller passes the callback's own NETRECEIVEFILTER on the callback's thread.
    let flags = unsafe { NetReceiveFilterGetPacketFilter(filter) };
    // SAFETY: as above.
    let count = unsafe { NetReceiveFilterGetMulticastAddressCount(filter) };
    // SAFETY: as above.
    let list = unsafe { NetReceiveFilterGetMulticastAddressList(filter) };
    let mut f = offload::filter::RxFilter::new(mac, offload::filter::PacketFilter(flags));
    let mut macs = [[0u8; 6]; offload::filter::MAX_MULTICAST];
    let mut n = 0;
    if !list.is_null() {
        // We declared MaximumMulticastAddresses = MAX_MULTICAST, so the OS sends no more.
        let count = count.min(offload::filter::MAX_MULTICAST);
        // SAFETY: the framework's list holds `count` addresses for the callback's duration.
        let addrs = unsafe { core::slice::from_raw_parts(list, count) };
        for m in addrs
            .iter()
            .filter_map(NET_ADAPTER_LINK_LAYER_ADDRESS::as_ethernet)
        {
            if let Some(slot) = macs.get_mut(n) {
                *slot = m;
                n += 1;
            }
        }
    }
    // A list the core refuses (a unicast address in it) must not lose multicast traffic the OS
    // wants: receive all multicast instead and let the stack filter.
    if !f.set_multicast(macs.get(..n).unwrap_or(&[])) {
        f.filter.0 |= offload::filter::PacketFilter::ALL_MULTICAST;
    }
    if vlan_id != 0 {
        f.set_vlan(vlan_id, true);
    }
    f
}

/// What NetAdapterCx never passes, so the glue host cannot play it: an indirection index beyond
/// the table (the class extension's cache is `IndirectionTableSize` entries long and it sends
/// only its own indices, `translator/rxscaling.cpp`), a null entry list and a null or oversized
/// key. The callbacks must still refuse them rather than read or write out of bounds.
#[cfg(test)]
mod tests {
    use super::*;
    use crate::rss::RssState;

    fn queue(k: usize) -> NETPACKETQUEUE {
        (0x100 + k * 0x10) as NETPACKETQUEUE
    }

    #[test]
    fn an_indirection_index_beyond_the_table_is_refused_and_the_others_apply() {
        let mut st = RssState::new(4);
        let mut list = [(3, 0u32), (1, 127), (2, 128)].map(|(k, index)| {
            NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY {
                PacketQueue: queue(k),
                Status: 12345,
                Index: index,
            }
        });
        let mut entries = NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES {
            Entries: list.as_mut_ptr(),
            Length: list.len(),
        };
        let pair_of = |p: NETPACKETQUEUE| (0..4u16).find(|&k| queue(usize::from(k)) == p);
        // SAFETY: the entries live for the call.
        let all = unsafe { apply_indirection_entries(&mut entries, &mut st, pair_of) };
        assert_eq!(all, STATUS_INVALID_PARAMETER);
        let status: [NTSTATUS; 3] = list.map(|e| e.Status);
        assert_eq!(
            status,
            [STATUS_SUCCESS, STATUS_SUCCESS, STATUS_INVALID_PARAMETER]
        );
        st.enable(netring::HashProtocolType::IPV4);
        let t = st.settings().unwrap().table().to_vec();
        assert_eq!(
            (t[0], t[127], t[5]),
            (3, 1, 1),
            "applied entries, untouched defaults"
        );

        // SAFETY: a null list is refused, not read.
        let null = unsafe { apply_indirection_entries(core::ptr::null_mut(), &mut st, pair_of) };
        assert_eq!(null, STATUS_INVALID_PARAMETER);
        let mut empty = NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES {
            Entries: core::ptr::null_mut(),
            Length: 0,
        };
        // SAFETY: no entry to read.
        let none = unsafe { apply_indirection_entries(&mut empty, &mut st, pair_of) };
        assert_eq!(none, STATUS_SUCCESS);
    }

    /// The protocol types declared for the device's hash types: IPv4 options come with IPv4,
    /// IPv6 extension headers only when the device hashes the `_EX` types.
    #[test]
    fn rss_protocol_types_follow_what_the_device_hashes() {
        use virtio::net::rss_hash as H;
        let plain = H::IPV4 | H::TCPV4 | H::UDPV4 | H::IPV6 | H::TCPV6 | H::UDPV6;
        assert_eq!(
            rss_protocol_types(plain),
            rss_protocol::IPV4
                | rss_protocol::IPV4_OPTIONS
                | rss_protocol::IPV6
                | rss_protocol::TCP
                | rss_protocol::UDP,
            "no IPv6 extensions: the device does not hash them"
        );
        assert_eq!(
            rss_protocol_types(plain | H::IP_EX) & rss_protocol::IPV6_EXTENSIONS,
            rss_protocol::IPV6_EXTENSIONS
        );
        assert_eq!(
            rss_protocol_types(H::IPV4),
            rss_protocol::IPV4 | rss_protocol::IPV4_OPTIONS
        );
        assert_eq!(
            rss_protocol_types(0),
            0,
            "no device RSS: nothing to declare"
        );
    }

    #[test]
    fn a_null_or_oversized_hash_key_is_refused() {
        let key = [7u8; 40];
        let k = NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY {
            Key: key.as_ptr(),
            Length: 40,
        };
        // SAFETY: the key lives for the call.
        assert_eq!(unsafe { read_hash_key(&k) }, Some(&key[..]));
        // SAFETY: a null key is refused, not read.
        assert_eq!(unsafe { read_hash_key(core::ptr::null()) }, None);
        let long = NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY {
            Key: key.as_ptr(),
            Length: 65,
        };
        // SAFETY: refused by its length before the buffer is read.
        assert_eq!(unsafe { read_hash_key(&long) }, None);
    }
}
