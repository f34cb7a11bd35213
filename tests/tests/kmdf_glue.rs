//! The portable part of the KMDF glue against a model of NetAdapterCx: the capability
//! declaration goes through the hand-written function table (`kmdf::netcx`) into stand-ins that
//! apply the framework's own checks of those calls (`reference/netadaptercx.md` §2.8: exact
//! sizes, flag rules, mode rules, "not both zero", …) and record what was declared; the
//! extension queries run against rings laid out with randomised offsets; the interrupt plan is
//! checked against the vectors the adapter programs into the device.

#![allow(unsafe_code)]

use std::sync::Mutex;
use std::sync::atomic::Ordering;

use netring::{ExtensionSpec, NetExtension, NetExtensionQuery, Ring, names};
use virtio::Features;
use virtio::net::{Duplex, NetConfig};
use virtionet::config::{Capabilities, UserSettings, derive};
use virtionet::kmdf::declare::{self, AdapterCallbacks};
use virtionet::kmdf::netcx::*;
use vnet_harness::rings::QueueRings;
use vnet_harness::rng::Rng;

/// What the stand-in framework saw.
#[derive(Default)]
struct Seen {
    violations: Vec<String>,
    link: Option<NET_ADAPTER_LINK_LAYER_CAPABILITIES>,
    mtu: Option<u32>,
    permanent: Option<NET_ADAPTER_LINK_LAYER_ADDRESS>,
    current: Option<NET_ADAPTER_LINK_LAYER_ADDRESS>,
    tx: Option<NET_ADAPTER_TX_CAPABILITIES>,
    rx_mode: Option<(u32, u32, usize, usize, bool)>,
    filter: Option<NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES>,
    tx_csum: Option<NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES>,
    rx_csum: bool,
    gso: Option<NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES>,
    rsc: Option<NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES>,
    ieee: Option<u32>,
    rss: Option<NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES>,
    calls: Vec<usize>,
    // Inputs for the read_* tests.
    packet_filter: u32,
    multicast: Vec<NET_ADAPTER_LINK_LAYER_ADDRESS>,
    enabled: u32,
}

// SAFETY: the raw pointers inside are copied values the test only compares, never dereferences
// after the call that passed them.
unsafe impl Send for Seen {}

static SEEN: Mutex<Option<Seen>> = Mutex::new(None);
/// Serialises the tests: the function table is one global.
static TABLE_LOCK: Mutex<()> = Mutex::new(());

fn with_seen(f: impl FnOnce(&mut Seen)) {
    let mut g = SEEN.lock().unwrap_or_else(|e| e.into_inner());
    f(g.get_or_insert_with(Seen::default));
}

fn violation(s: &mut Seen, what: &str) {
    s.violations.push(what.to_string());
}

fn check_size<T>(s: &mut Seen, size: u32, what: &str) {
    if size as usize != core::mem::size_of::<T>() {
        violation(s, &format!("{what}: Size {size}"));
    }
}

unsafe extern "system" fn set_link(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_LINK_LAYER_CAPABILITIES,
) {
    // SAFETY: the glue passes a live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::SET_LINK_LAYER_CAPABILITIES);
        check_size::<NET_ADAPTER_LINK_LAYER_CAPABILITIES>(s, c.Size, "link layer");
        s.link = Some(c);
    });
}

unsafe extern "system" fn set_mtu(_: *mut NET_DRIVER_GLOBALS, _: NETADAPTER, mtu: u32) {
    with_seen(|s| {
        s.calls.push(index::SET_LINK_LAYER_MTU_SIZE);
        if mtu == 0 {
            violation(s, "MTU 0");
        }
        s.mtu = Some(mtu);
    });
}

fn check_address(s: &mut Seen, a: &NET_ADAPTER_LINK_LAYER_ADDRESS) {
    if a.Length > 32 {
        violation(s, "address length > 32");
    }
}

unsafe extern "system" fn set_permanent(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    a: *const NET_ADAPTER_LINK_LAYER_ADDRESS,
) {
    // SAFETY: live struct.
    let a = unsafe { *a };
    with_seen(|s| {
        s.calls.push(index::SET_PERMANENT_ADDRESS);
        check_address(s, &a);
        s.permanent = Some(a);
    });
}

unsafe extern "system" fn set_current(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    a: *const NET_ADAPTER_LINK_LAYER_ADDRESS,
) {
    // SAFETY: live struct.
    let a = unsafe { *a };
    with_seen(|s| {
        s.calls.push(index::SET_CURRENT_ADDRESS);
        check_address(s, &a);
        s.current = Some(a);
    });
}

fn pow2_or_zero(v: u64) -> bool {
    v == 0 || v.is_power_of_two()
}

unsafe extern "system" fn set_datapath(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    tx: *const NET_ADAPTER_TX_CAPABILITIES,
    rx: *const NET_ADAPTER_RX_CAPABILITIES,
) {
    // SAFETY: live struct.
    let tx = unsafe { *tx };
    // SAFETY: live struct.
    let rx = unsafe { *rx };
    with_seen(|s| {
        s.calls.push(index::SET_DATAPATH_CAPABILITIES);
        check_size::<NET_ADAPTER_TX_CAPABILITIES>(s, tx.Size, "tx caps");
        check_size::<NET_ADAPTER_RX_CAPABILITIES>(s, rx.Size, "rx caps");
        if tx.MaximumNumberOfQueues == 0 || rx.MaximumNumberOfQueues == 0 {
            violation(s, "MaximumNumberOfQueues 0");
        }
        if !tx.FragmentBufferAlignment.is_power_of_two() {
            violation(s, "tx FragmentBufferAlignment");
        }
        if !pow2_or_zero(u64::from(tx.FragmentRingNumberOfElementsHint))
            || !pow2_or_zero(u64::from(rx.FragmentRingNumberOfElementsHint))
        {
            violation(s, "FragmentRingNumberOfElementsHint not a power of two");
        }
        if tx.MappingRequirement == MAPPING_DMA_MAPPED {
            // SAFETY: the pointer, when set, points at live DMA caps.
            let dma = (!tx.DmaCapabilities.is_null()).then(|| unsafe { *tx.DmaCapabilities });
            match dma {
                Some(d) if !d.DmaEnabler.is_null() => {
                    check_size::<NET_ADAPTER_DMA_CAPABILITIES>(s, d.Size, "dma caps")
                }
                _ => violation(s, "DMA mapping without a DMA enabler"),
            }
        }
        let driver_alloc = rx.AllocationMode == RX_MODE_DRIVER;
        if driver_alloc && rx.AttachmentMode != RX_MODE_DRIVER {
            violation(s, "driver allocation needs driver attachment");
        }
        // SAFETY: in driver mode the union holds the callback.
        let cb = driver_alloc && unsafe { rx.u.EvtAdapterReturnRxBuffer }.is_some();
        if driver_alloc && !cb {
            violation(s, "driver allocation without EvtAdapterReturnRxBuffer");
        }
        s.tx = Some(tx);
        s.rx_mode = Some((
            rx.AllocationMode,
            rx.AttachmentMode,
            rx.MaximumFrameSize,
            rx.FragmentRingNumberOfElementsHint as usize,
            cb,
        ));
    });
}

unsafe extern "system" fn set_filter(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::SET_RECEIVE_FILTER_CAPABILITIES);
        check_size::<NET_ADAPTER_RECEIVE_FILTER_CAPABILITIES>(s, c.Size, "filter caps");
        let known = packet_filter::DIRECTED
            | packet_filter::MULTICAST
            | packet_filter::ALL_MULTICAST
            | packet_filter::BROADCAST
            | packet_filter::PROMISCUOUS;
        if c.SupportedPacketFilters & !known != 0 {
            violation(s, "unknown packet filter flag");
        }
        if c.SupportedPacketFilters != 0 && c.EvtSetReceiveFilter.is_none() {
            violation(s, "filters without EvtSetReceiveFilter");
        }
        if (c.SupportedPacketFilters & packet_filter::MULTICAST != 0)
            != (c.MaximumMulticastAddresses > 0)
        {
            violation(s, "Multicast flag <=> MaximumMulticastAddresses > 0");
        }
        if c.SupportedPacketFilters == 0 && c.MaximumMulticastAddresses == 0 {
            violation(s, "receive filter: both zero");
        }
        s.filter = Some(c);
    });
}

unsafe extern "system" fn set_tx_csum(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::OFFLOAD_SET_TX_CHECKSUM_CAPABILITIES);
        check_size::<NET_ADAPTER_OFFLOAD_TX_CHECKSUM_CAPABILITIES>(s, c.Size, "tx checksum");
        if c.EvtAdapterOffloadSetTxChecksum.is_none() {
            violation(s, "tx checksum without callback");
        }
        if c.Layer4Flags & l4::TCP_WITH_OPTIONS != 0 && c.Layer4Flags & l4::TCP_NO_OPTIONS == 0 {
            violation(s, "TcpWithOptions without TcpNoOptions");
        }
        s.tx_csum = Some(c);
    });
}

unsafe extern "system" fn set_rx_csum(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::OFFLOAD_SET_RX_CHECKSUM_CAPABILITIES);
        check_size::<NET_ADAPTER_OFFLOAD_RX_CHECKSUM_CAPABILITIES>(s, c.Size, "rx checksum");
        if c.EvtAdapterOffloadSetRxChecksum.is_none() {
            violation(s, "rx checksum without callback");
        }
        s.rx_csum = true;
    });
}

unsafe extern "system" fn set_gso(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::OFFLOAD_SET_GSO_CAPABILITIES);
        check_size::<NET_ADAPTER_OFFLOAD_GSO_CAPABILITIES>(s, c.Size, "gso");
        if c.Layer3Flags == 0 || c.Layer4Flags == 0 {
            violation(s, "gso without flags");
        }
        if c.MaximumOffloadSize == 0 || c.MinimumSegmentCount == 0 {
            violation(s, "gso MaximumOffloadSize/MinimumSegmentCount 0");
        }
        if c.Layer4Flags & l4::TCP_WITH_OPTIONS != 0 && c.Layer4Flags & l4::TCP_NO_OPTIONS == 0 {
            violation(s, "gso TcpWithOptions without TcpNoOptions");
        }
        s.gso = Some(c);
    });
}

unsafe extern "system" fn set_rsc(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::OFFLOAD_SET_RSC_CAPABILITIES);
        check_size::<NET_ADAPTER_OFFLOAD_RSC_CAPABILITIES>(s, c.Size, "rsc");
        if c.Layer3Flags & !(l3::IPV4_NO_OPTIONS | l3::IPV6_NO_EXTENSIONS) != 0 {
            violation(s, "rsc layer 3 flags");
        }
        if c.Layer4Flags & !(l4::TCP_NO_OPTIONS | l4::UDP) != 0 {
            violation(s, "rsc layer 4 flags");
        }
        s.rsc = Some(c);
    });
}

unsafe extern "system" fn set_ieee(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::OFFLOAD_SET_IEEE8021Q_CAPABILITIES);
        check_size::<NET_ADAPTER_OFFLOAD_IEEE8021Q_TAG_CAPABILITIES>(s, c.Size, "ieee8021q");
        if c.Flags & !3 != 0 {
            violation(s, "ieee8021q flags");
        }
        s.ieee = Some(c.Flags);
    });
}

unsafe extern "system" fn set_rss_caps(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETADAPTER,
    c: *const NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES,
) {
    // SAFETY: live struct.
    let c = unsafe { *c };
    with_seen(|s| {
        s.calls.push(index::SET_RECEIVE_SCALING_CAPABILITIES);
        check_size::<NET_ADAPTER_RECEIVE_SCALING_CAPABILITIES>(s, c.Size, "rss");
        if !c.NumberOfQueues.is_power_of_two() || !c.IndirectionTableSize.is_power_of_two() {
            violation(
                s,
                "rss NumberOfQueues/IndirectionTableSize not powers of two",
            );
        }
        if c.IndirectionTableSize < 128 {
            violation(s, "rss IndirectionTableSize below 128");
        }
        if c.ReceiveScalingHashTypes > 1 || c.UnhashedTargetType > 1 {
            violation(s, "rss hash or unhashed-target type out of range");
        }
        if c.ReceiveScalingProtocolTypes & !0x3f != 0
            || c.EncapsulationOuter | c.EncapsulationInner > 7
        {
            violation(s, "rss protocol or encapsulation flags out of range");
        }
        if c.EvtAdapterReceiveScalingEnable.is_none()
            || c.EvtAdapterReceiveScalingDisable.is_none()
            || c.EvtAdapterReceiveScalingSetHashSecretKey.is_none()
            || c.EvtAdapterReceiveScalingSetIndirectionEntries.is_none()
        {
            violation(s, "rss callbacks missing");
        }
        s.rss = Some(c);
    });
}

unsafe extern "system" fn get_packet_filter(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETRECEIVEFILTER,
) -> u32 {
    let mut v = 0;
    with_seen(|s| v = s.packet_filter);
    v
}

unsafe extern "system" fn get_mc_count(_: *mut NET_DRIVER_GLOBALS, _: NETRECEIVEFILTER) -> usize {
    let mut v = 0;
    with_seen(|s| v = s.multicast.len());
    v
}

unsafe extern "system" fn get_mc_list(
    _: *mut NET_DRIVER_GLOBALS,
    _: NETRECEIVEFILTER,
) -> *const NET_ADAPTER_LINK_LAYER_ADDRESS {
    let mut p = core::ptr::null();
    with_seen(|s| p = s.multicast.as_ptr());
    p
}

macro_rules! enabled_bit {
    ($name:ident, $bit:expr) => {
        unsafe extern "system" fn $name(_: *mut NET_DRIVER_GLOBALS, _: NETOFFLOAD) -> BOOLEAN {
            let mut v = 0;
            with_seen(|s| v = u8::from(s.enabled & (1 << $bit) != 0));
            v
        }
    };
}
enabled_bit!(rx_ipv4_on, 0);
enabled_bit!(rx_tcp_on, 1);
enabled_bit!(rx_udp_on, 2);
enabled_bit!(rsc4_on, 3);
enabled_bit!(rsc6_on, 4);

fn install(i: usize, f: *const ()) {
    TABLE_ACCESS[i].store(f as usize, Ordering::Release);
}

use virtionet::kmdf::netcx::mock::TABLE as TABLE_ACCESS;

/// Installs the stand-in framework and clears what it saw.
fn framework() -> std::sync::MutexGuard<'static, ()> {
    let g = TABLE_LOCK.lock().unwrap_or_else(|e| e.into_inner());
    *SEEN.lock().unwrap_or_else(|e| e.into_inner()) = Some(Seen::default());
    for e in TABLE_ACCESS.iter() {
        e.store(0, Ordering::Release);
    }
    install(index::SET_LINK_LAYER_CAPABILITIES, set_link as *const ());
    install(index::SET_LINK_LAYER_MTU_SIZE, set_mtu as *const ());
    install(index::SET_PERMANENT_ADDRESS, set_permanent as *const ());
    install(index::SET_CURRENT_ADDRESS, set_current as *const ());
    install(index::SET_DATAPATH_CAPABILITIES, set_datapath as *const ());
    install(
        index::SET_RECEIVE_FILTER_CAPABILITIES,
        set_filter as *const (),
    );
    install(
        index::OFFLOAD_SET_TX_CHECKSUM_CAPABILITIES,
        set_tx_csum as *const (),
    );
    install(
        index::OFFLOAD_SET_RX_CHECKSUM_CAPABILITIES,
        set_rx_csum as *const (),
    );
    install(index::OFFLOAD_SET_GSO_CAPABILITIES, set_gso as *const ());
    install(index::OFFLOAD_SET_RSC_CAPABILITIES, set_rsc as *const ());
    install(
        index::OFFLOAD_SET_IEEE8021Q_CAPABILITIES,
        set_ieee as *const (),
    );
    install(
        index::RECEIVE_FILTER_GET_PACKET_FILTER,
        get_packet_filter as *const (),
    );
    install(
        index::RECEIVE_FILTER_GET_MULTICAST_COUNT,
        get_mc_count as *const (),
    );
    install(
        index::RECEIVE_FILTER_GET_MULTICAST_LIST,
        get_mc_list as *const (),
    );
    install(
        index::SET_RECEIVE_SCALING_CAPABILITIES,
        set_rss_caps as *const (),
    );
    install(index::IS_RX_CHECKSUM_IPV4, rx_ipv4_on as *const ());
    install(index::IS_RX_CHECKSUM_TCP, rx_tcp_on as *const ());
    install(index::IS_RX_CHECKSUM_UDP, rx_udp_on as *const ());
    install(index::IS_TCP_RSC_IPV4, rsc4_on as *const ());
    install(index::IS_TCP_RSC_IPV6, rsc6_on as *const ());
    g
}

fn take_seen() -> Seen {
    SEEN.lock()
        .unwrap_or_else(|e| e.into_inner())
        .take()
        .unwrap_or_default()
}

unsafe extern "system" fn nop_offload(_: NETADAPTER, _: NETOFFLOAD) {}
unsafe extern "system" fn nop_filter(_: NETADAPTER, _: NETRECEIVEFILTER) {}
unsafe extern "system" fn nop_return(_: NETADAPTER, _: NET_FRAGMENT_RETURN_CONTEXT_HANDLE) {}
unsafe extern "system" fn nop_rss_enable(_: NETADAPTER, _: u32, _: u32) -> NTSTATUS {
    STATUS_SUCCESS
}
unsafe extern "system" fn nop_rss_disable(_: NETADAPTER) {}
unsafe extern "system" fn nop_rss_key(
    _: NETADAPTER,
    _: *const NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY,
) -> NTSTATUS {
    STATUS_SUCCESS
}
unsafe extern "system" fn nop_rss_entries(
    _: NETADAPTER,
    _: *mut NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES,
) -> NTSTATUS {
    STATUS_SUCCESS
}

const CALLBACKS: AdapterCallbacks = AdapterCallbacks {
    return_rx_buffer: nop_return,
    set_tx_checksum: nop_offload,
    set_rx_checksum: nop_offload,
    set_gso: nop_offload,
    set_rsc: nop_offload,
    set_receive_filter: nop_filter,
    rss: declare::RssCallbacks {
        enable: nop_rss_enable,
        disable: nop_rss_disable,
        set_key: nop_rss_key,
        set_entries: nop_rss_entries,
    },
};

const MAC: [u8; 6] = [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];

fn caps(features: Features, user: &UserSettings) -> Capabilities {
    let cfg = NetConfig {
        mac: Some(MAC),
        status: Some(1),
        max_queue_pairs: None,
        mtu: None,
        speed_mbps: None,
        duplex: Duplex::Unknown,
        rss_max_key_size: None,
        rss_max_indirection_table_length: None,
        supported_hash_types: None,
    };
    derive(features, &cfg, user, [0x02, 0, 0, 0, 0, 1])
}

/// What QEMU's virtio-net-pci offers with a tap backend (vnet_hdr on).
fn qemu_features() -> Features {
    Features::VERSION_1
        | Features::NET_CSUM
        | Features::NET_GUEST_CSUM
        | Features::NET_HOST_TSO4
        | Features::NET_HOST_TSO6
        | Features::NET_HOST_USO
        | Features::NET_GUEST_TSO4
        | Features::NET_GUEST_TSO6
        | Features::NET_MRG_RXBUF
        | Features::NET_MAC
        | Features::NET_STATUS
        | Features::NET_CTRL_VQ
        | Features::NET_CTRL_RX
        | Features::NET_CTRL_GUEST_OFFLOADS
}

fn declare_and_see(c: &Capabilities) -> Seen {
    declare_queues(c, 1)
}

fn declare_queues(c: &Capabilities, queues: u16) -> Seen {
    let enabler = 0x1000 as WDFDMAENABLER;
    let dma = declare::dma_capabilities(enabler);
    let adapter = 0x2000 as NETADAPTER;
    // SAFETY: the stand-in framework accepts any handle; every struct is built by the glue.
    unsafe { declare::declare(adapter, c, queues, &dma, &CALLBACKS) };
    take_seen()
}

#[test]
fn full_offload_declaration_passes_the_framework_checks() {
    let _g = framework();
    let c = caps(qemu_features(), &UserSettings::default());
    let s = declare_and_see(&c);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    // The three calls NetAdapterStart requires, and the addresses (same length).
    let link = s.link.expect("link layer capabilities");
    assert_eq!(link.MaxTxLinkSpeed, c.link_speed);
    assert_eq!(s.mtu, Some(1500));
    assert_eq!(s.permanent.and_then(|a| a.as_ethernet()), Some(MAC));
    assert_eq!(s.current.and_then(|a| a.as_ethernet()), Some(MAC));
    let tx = s.tx.expect("datapath capabilities");
    assert_eq!(tx.MappingRequirement, MAPPING_DMA_MAPPED);
    assert_eq!(tx.MaximumNumberOfFragments, c.tx_max_fragments as usize);
    assert_eq!(tx.FragmentRingNumberOfElementsHint, 1024);
    let (alloc, attach, max_frame, rx_hint, cb) = s.rx_mode.expect("rx capabilities");
    assert_eq!((alloc, attach, cb), (RX_MODE_DRIVER, RX_MODE_DRIVER, true));
    assert_eq!(max_frame, 2048, "mergeable buffers are 2 KiB");
    assert_eq!(rx_hint, 1024);
    // Offloads: checksum both ways, LSO v4/v6 and USO, RSC v4/v6, tagging.
    let t = s.tx_csum.expect("tx checksum");
    assert_eq!(
        t.Layer4Flags,
        l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS | l4::UDP
    );
    assert_ne!(t.Layer3Flags & l3::IPV6_WITH_EXTENSIONS, 0);
    assert!(t.Layer4HeaderOffsetLimit > t.Layer3HeaderOffsetLimit);
    assert!(s.rx_csum);
    let g = s.gso.expect("gso");
    assert_eq!(
        g.Layer4Flags,
        l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS | l4::UDP
    );
    assert_eq!(g.MaximumOffloadSize, 64_000);
    let r = s.rsc.expect("rsc");
    assert_eq!(r.Layer3Flags, l3::IPV4_NO_OPTIONS | l3::IPV6_NO_EXTENSIONS);
    assert_eq!(s.ieee, Some(3));
    let f = s.filter.expect("filter");
    assert_eq!(f.MaximumMulticastAddresses, 32);
    // RtEthSample's order: link layer first, datapath before offloads.
    assert_eq!(s.calls[0], index::SET_LINK_LAYER_CAPABILITIES);
    let pos = |i| s.calls.iter().position(|&c| c == i).unwrap();
    assert!(pos(index::SET_DATAPATH_CAPABILITIES) < pos(index::OFFLOAD_SET_GSO_CAPABILITIES));
}

#[test]
fn a_device_without_offloads_is_promised_none() {
    let _g = framework();
    let c = caps(
        Features::VERSION_1 | Features::NET_MAC,
        &UserSettings::default(),
    );
    let s = declare_and_see(&c);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    // IPv4 header checksums the driver computes itself; no transport checksum, LSO, USO or RSC.
    let t = s.tx_csum.expect("IPv4 header checksum is still offered");
    assert_eq!(t.Layer4Flags, 0);
    assert!(s.gso.is_none(), "no GSO without VIRTIO_NET_F_CSUM/HOST_TSO");
    assert!(s.rsc.is_none(), "no RSC without GUEST_TSO and MRG_RXBUF");
    let (_, _, max_frame, _, _) = s.rx_mode.unwrap();
    assert_eq!(
        max_frame,
        12 + 1500 + 14 + 4,
        "one buffer holds a whole frame"
    );
}

#[test]
fn user_keywords_turn_offloads_off() {
    let _g = framework();
    let user = UserSettings::from_keywords(
        |k| match k {
            "*LsoV2IPv4" | "*LsoV2IPv6" | "*UsoIPv4" | "*UsoIPv6" => Some(0),
            "*RscIPv4" | "*RscIPv6" => Some(0),
            "*PriorityVLANTag" => Some(0),
            "*TCPChecksumOffloadIPv4" | "*TCPChecksumOffloadIPv6" => Some(2),
            _ => None,
        },
        Some("02-11-22-33-44-55"),
    );
    let c = caps(qemu_features(), &user);
    let s = declare_and_see(&c);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert!(s.gso.is_none());
    assert!(s.rsc.is_none());
    assert!(s.ieee.is_none());
    assert_eq!(
        s.tx_csum.unwrap().Layer4Flags,
        l4::UDP,
        "TCP TX checksum is off"
    );
    assert_eq!(s.permanent.and_then(|a| a.as_ethernet()), Some(MAC));
    assert_eq!(
        s.current.and_then(|a| a.as_ethernet()),
        Some([0x02, 0x11, 0x22, 0x33, 0x44, 0x55]),
        "NetworkAddress overrides the current address only"
    );
}

#[test]
fn jumbo_frames_without_mergeable_buffers_size_the_receive_buffers() {
    let _g = framework();
    let user = UserSettings::from_keywords(|k| (k == "*JumboPacket").then_some(9014), None);
    let cfg_mtu = |mtu| NetConfig {
        mac: Some(MAC),
        status: None,
        max_queue_pairs: None,
        mtu: Some(mtu),
        speed_mbps: Some(25_000),
        duplex: Duplex::Full,
        rss_max_key_size: None,
        rss_max_indirection_table_length: None,
        supported_hash_types: None,
    };
    let c = derive(
        Features::VERSION_1 | Features::NET_MTU,
        &cfg_mtu(9000),
        &user,
        MAC,
    );
    let s = declare_and_see(&c);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    assert_eq!(s.mtu, Some(9000));
    assert_eq!(s.link.unwrap().MaxRxLinkSpeed, 25_000_000_000);
    assert_eq!(s.rx_mode.unwrap().2, 12 + 9000 + 14 + 4);
}

#[test]
fn receive_filter_is_read_as_the_core_filter() {
    let _g = framework();
    let groups = [[0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]];
    with_seen(|s| {
        s.packet_filter =
            packet_filter::DIRECTED | packet_filter::MULTICAST | packet_filter::BROADCAST;
        s.multicast = groups
            .iter()
            .map(|m| NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(*m))
            .collect();
    });
    // SAFETY: the stand-in accepts any handle.
    let f = unsafe { declare::read_receive_filter(0x10 as NETRECEIVEFILTER, MAC, 0) };
    assert!(!f.has_vlans(), "no VlanID: every VLAN passes");
    assert_eq!(
        f.filter.0,
        packet_filter::DIRECTED | packet_filter::MULTICAST | packet_filter::BROADCAST
    );
    assert_eq!(f.multicast(), &groups);
    assert!(f.accepts(&groups[1]));
    assert!(!f.accepts(&[0x01, 0x00, 0x5e, 0, 0, 2]));

    // A unicast address in the list: the core refuses the list; multicast is not lost.
    with_seen(|s| {
        s.multicast
            .push(NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(MAC))
    });
    // SAFETY: as above.
    let f = unsafe { declare::read_receive_filter(0x10 as NETRECEIVEFILTER, MAC, 42) };
    assert!(f.multicast().is_empty());
    assert!(
        f.vlan_accepts(Some(42)) && !f.vlan_accepts(Some(43)),
        "VlanID 42 is the member"
    );
    assert_ne!(f.filter.0 & packet_filter::ALL_MULTICAST, 0);
    assert!(f.accepts(&[0x01, 0x00, 0x5e, 0, 0, 2]));
}

#[test]
fn offload_callbacks_read_what_the_os_enabled() {
    let _g = framework();
    for (bits, rx_checksum, rsc) in [
        (0b00000, false, false),
        (0b00010, true, false),
        (0b01000, false, true),
        (0b10101, true, true),
    ] {
        with_seen(|s| s.enabled = bits);
        // SAFETY: the stand-in accepts any handle.
        let e = unsafe { declare::read_enabled(0x20 as NETOFFLOAD) };
        assert_eq!(
            (e.rx_checksum, e.rsc),
            (rx_checksum, rsc),
            "bits {bits:05b}"
        );
    }
}

#[test]
fn link_state_structs() {
    let up = declare::link_state(true, 10_000_000_000);
    assert_eq!(up.Size, 40);
    assert_eq!(up.MediaConnectState, media_connect_state::CONNECTED);
    assert_eq!(up.TxLinkSpeed, 10_000_000_000);
    let down = declare::link_state(false, 10_000_000_000);
    assert_eq!(down.MediaConnectState, media_connect_state::DISCONNECTED);
    assert_eq!(down.RxLinkSpeed, NET_ADAPTER_LINK_SPEED_UNKNOWN);
    let q = declare::queue_config(nop_queue, nop_notif, nop_queue, nop_queue, nop_queue);
    assert_eq!(q.Size, 56, "the 2.1+ size the verifier requires");
    assert!(q.ExecutionContext.is_null() && q.EvtSetNotificationEnabled.is_some());
}

unsafe extern "system" fn nop_queue(_: NETPACKETQUEUE) {}
unsafe extern "system" fn nop_notif(_: NETPACKETQUEUE, _: BOOLEAN) {}

/// The packet and fragment ring views of `rings`.
fn views(rings: &mut QueueRings) -> (netring::PacketRing<'static>, netring::FragmentRing<'static>) {
    let (pp, fp) = (rings.packets.as_ptr(), rings.fragments.as_ptr());
    // SAFETY: the rings live for the test; nothing else touches them meanwhile.
    let p = unsafe { Ring::from_raw(pp) }.unwrap();
    // SAFETY: as above.
    let f = unsafe { Ring::from_raw(fp) }.unwrap();
    (p, f)
}

fn query_on(rings: &mut QueueRings, q: &NetExtensionQuery) -> NetExtension {
    assert_eq!(q.size, 24);
    let mut n = 0;
    // SAFETY: the glue's queries point at NUL-terminated static names; we stop at the NUL.
    while unsafe { q.name.wrapping_add(n).read() } != 0 {
        n += 1;
    }
    // SAFETY: as above, n + 1 elements including the NUL.
    let name = unsafe { core::slice::from_raw_parts(q.name, n + 1) };
    let ty = match q.ty {
        1 => netring::ExtensionType::Packet,
        2 => netring::ExtensionType::Fragment,
        _ => netring::ExtensionType::Buffer,
    };
    rings.get_extension(name, q.version, ty)
}

#[test]
fn extension_queries_find_every_registered_extension() {
    for seed in 0..32 {
        let mut rng = Rng::new(seed);
        let tx_packet = [names::CHECKSUM, names::GSO, names::IEEE8021Q];
        let tx_frag = [names::VIRTUAL_ADDRESS, names::LOGICAL_ADDRESS];
        let mut rings = QueueRings::new(64, 128, &tx_packet, &tx_frag, &mut rng).unwrap();
        let (packets, fragments) = views(&mut rings);
        let ext = declare::tx_extensions(&packets, &fragments, |q| query_on(&mut rings, q));
        let off = |spec: &ExtensionSpec| rings.registered(spec).unwrap().offset;
        assert_eq!(ext.checksum.offset(), off(&names::CHECKSUM));
        assert_eq!(ext.gso.offset(), off(&names::GSO));
        assert_eq!(ext.ieee8021q.offset(), off(&names::IEEE8021Q));
        assert_eq!(ext.logical_address.offset(), off(&names::LOGICAL_ADDRESS));
        assert_eq!(ext.virtual_address.offset(), off(&names::VIRTUAL_ADDRESS));
        assert!(ext.checksum.is_enabled() && ext.logical_address.is_enabled());

        // RX without RSS: the hash extension is not registered and comes back disabled.
        let rx_packet = [names::CHECKSUM, names::RSC, names::IEEE8021Q];
        let rx_frag = [names::VIRTUAL_ADDRESS, names::RETURN_CONTEXT];
        let mut rings = QueueRings::new(64, 128, &rx_packet, &rx_frag, &mut rng).unwrap();
        let (packets, fragments) = views(&mut rings);
        let ext = declare::rx_extensions(&packets, &fragments, |q| query_on(&mut rings, q));
        assert!(!ext.hash.is_enabled());
        assert!(!ext.logical_address.is_enabled());
        assert_eq!(
            ext.return_context.offset(),
            rings.registered(&names::RETURN_CONTEXT).unwrap().offset
        );
        assert_eq!(
            ext.rsc.offset(),
            rings.registered(&names::RSC).unwrap().offset
        );
    }
}

#[test]
fn rss_is_declared_only_with_device_rss_and_several_queues() {
    use virtio::net::rss_hash as H;
    let _g = framework();
    let cfg = NetConfig {
        mac: Some(MAC),
        status: Some(1),
        max_queue_pairs: Some(4),
        mtu: None,
        speed_mbps: None,
        duplex: Duplex::Unknown,
        rss_max_key_size: Some(40),
        rss_max_indirection_table_length: Some(128),
        supported_hash_types: Some(H::IPV4 | H::TCPV4 | H::UDPV4 | H::IPV6 | H::TCPV6 | H::UDPV6),
    };
    let features = qemu_features() | Features::NET_MQ | Features::NET_RSS;
    let rss = derive(features, &cfg, &UserSettings::default(), MAC);
    let s = declare_queues(&rss, 4);
    assert!(s.violations.is_empty(), "{:?}", s.violations);
    let r = s.rss.expect("RSS declared");
    assert_eq!((r.NumberOfQueues, r.IndirectionTableSize), (4, 128));
    assert_eq!(
        r.ReceiveScalingProtocolTypes,
        rss_protocol::IPV4
            | rss_protocol::IPV4_OPTIONS
            | rss_protocol::IPV6
            | rss_protocol::TCP
            | rss_protocol::UDP,
        "no IPv6 extensions: the device does not hash them"
    );
    assert_eq!(r.ReceiveScalingHashTypes, RSS_HASH_TYPE_TOEPLITZ);
    assert_eq!(s.tx.unwrap().MaximumNumberOfQueues, 4);

    drop(_g);
    let _g = framework();
    assert!(
        declare_queues(&rss, 1).rss.is_none(),
        "one queue: nothing to scale"
    );
    drop(_g);
    let _g = framework();
    let no_rss = derive(
        qemu_features() | Features::NET_MQ,
        &cfg,
        &UserSettings::default(),
        MAC,
    );
    assert!(
        declare_queues(&no_rss, 4).rss.is_none(),
        "no device RSS: the OS's table could not be honoured"
    );
}

#[test]
fn indirection_entries_apply_and_report_each_status() {
    use virtionet::rss::RssState;
    let mut st = RssState::new(4);
    let q = |k: usize| (0x100 + k * 0x10) as NETPACKETQUEUE;
    let mut list = [(q(3), 0u32), (q(1), 127), (q(9), 5), (q(2), 128)].map(|(queue, index)| {
        NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY {
            PacketQueue: queue,
            Status: 12345,
            Index: index,
        }
    });
    let mut entries = NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES {
        Entries: list.as_mut_ptr(),
        Length: list.len(),
    };
    let pair_of = |p: NETPACKETQUEUE| (0..4u16).find(|&k| q(usize::from(k)) == p);
    // SAFETY: the entries live for the call.
    let all = unsafe { declare::apply_indirection_entries(&mut entries, &mut st, pair_of) };
    assert_eq!(all, STATUS_INVALID_PARAMETER, "two entries were refused");
    let status: Vec<NTSTATUS> = list.iter().map(|e| e.Status).collect();
    assert_eq!(
        status,
        [
            STATUS_SUCCESS,
            STATUS_SUCCESS,
            STATUS_INVALID_PARAMETER,
            STATUS_INVALID_PARAMETER
        ],
        "an unknown queue and an index beyond the table are refused"
    );
    st.enable(netring::HashProtocolType::IPV4);
    let t = st.settings().unwrap().table().to_vec();
    assert_eq!(
        (t[0], t[127], t[5]),
        (3, 1, 1),
        "applied entries, untouched defaults"
    );
    let key = [7u8; 40];
    let k = NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY {
        Key: key.as_ptr(),
        Length: 40,
    };
    // SAFETY: the key lives for the call.
    assert_eq!(unsafe { declare::read_hash_key(&k) }, Some(&key[..]));
    // SAFETY: a null key is refused, not read.
    assert_eq!(unsafe { declare::read_hash_key(core::ptr::null()) }, None);
}
