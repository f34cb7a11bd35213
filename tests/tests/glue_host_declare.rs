//! What the Windows glue declares to NetAdapterCx and how it answers NetAdapterCx's calls, with
//! the real glue loaded by the glue host (`vnet_harness::host`): the capability declaration
//! (checksum, LSO/USO, RSC, 802.1Q, RSS, receive filter, datapath) for devices offering various
//! features and for the INF's keywords, receive buffers sized for jumbo frames, the receive
//! filter and offload callbacks, link-state reports, queue configurations, and the extension
//! queries on rings laid out with randomised offsets. The host applies NetAdapterCx's own checks
//! to every call (`tests/src/host/netcx.rs`, `reference/netadaptercx.md` §2.8) and records what
//! was declared; each scenario asserts on that record and, where it is the natural check, on
//! the packets: what reaches the in-process device (its filter, its guest offloads, the frames
//! it sent) or the stack. Mostly the in-process device; the RSS scenarios need several queue
//! pairs with device RSS, which only QEMU (`mq=on,rss=on` behind a multi-queue tap) has.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use netring::{
    Ieee8021qTxTagging, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q,
    RxChecksumEvaluation as Eval, TxChecksumAction as A, names,
};
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtionet::kmdf::netcx::{
    MAPPING_DMA_MAPPED, NET_ADAPTER_LINK_SPEED_UNKNOWN, RSS_HASH_TYPE_TOEPLITZ, RX_MODE_DRIVER,
    STATUS_INVALID_PARAMETER, STATUS_SUCCESS, l3, l4, media_connect_state, packet_filter,
    rss_protocol,
};
use vnet_harness::frames;
use vnet_harness::host::alloc::HostAllocator;
use vnet_harness::host::bus::QemuBus;
use vnet_harness::host::datapath::{Dir, Os};
use vnet_harness::host::inproc::InprocBus;
use vnet_harness::host::netcx::OffloadState;
use vnet_harness::host::{Host, HostConfig, Interrupts, irql};
use vnet_harness::netdev::DEFAULT_FEATURES;
use vnet_harness::netns::{NetNs, spawn_in};
use vnet_harness::os_rx::RxFrame;
use vnet_harness::os_tx::TxFrame;
use vnet_harness::qemu::{Qemu, QemuOptions};

#[global_allocator]
static ALLOCATOR: HostAllocator = HostAllocator;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// Directed | Multicast | Broadcast: what the protocol sets first.
const NDIS_FILTER: u32 =
    packet_filter::DIRECTED | packet_filter::MULTICAST | packet_filter::BROADCAST;
/// Link speed without VIRTIO_NET_F_SPEED_DUPLEX (`config::derive`'s default, 10 Gbit/s).
const DEFAULT_SPEED: u64 = 10_000_000_000;
/// Every bound wait.
const WAIT: Duration = Duration::from_secs(10);

fn no_violations(what: &str) {
    let v = irql::take_violations();
    assert!(v.is_empty(), "{what}: {v:#?}");
}

/// A host over the in-process device `bus` with the adapter's registry `keywords` (the INF's
/// names, REG_SZ values as the INF writes them) and ring-layout seed `seed`.
fn host(bus: &Arc<InprocBus>, keywords: &[(&str, &str)], seed: u64) -> Host {
    let cfg = HostConfig {
        keywords: keywords
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        seed,
        ..Default::default()
    };
    Host::new(bus.clone(), cfg)
}

/// DriverEntry, DeviceAdd, start, and the protocol's first packet filter.
fn bring_up(host: &Host) {
    assert_eq!(host.load(), 0, "DriverEntry");
    assert_eq!(host.add_device(), 0, "DeviceAdd");
    assert_eq!(host.start(), 0, "start\n{}", host.diagnostics());
    assert!(host.set_receive_filter(NDIS_FILTER, &[]));
    no_violations("bring-up");
}

/// Orderly removal and unload: nothing may be left.
fn tear_down(host: &Host) {
    host.remove().expect("remove");
    let ledger = host.unload();
    no_violations("unload");
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// Polls `done` until it holds, at most [`WAIT`].
fn wait_for(host: &Host, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "{what}: not within {WAIT:?}\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// A test frame with a sequence number (EtherType 0x88b5, local experimental).
fn frame(dst: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut payload = vec![0u8; len.saturating_sub(14).max(4)];
    payload[..4].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in payload.iter_mut().enumerate().skip(4) {
        *b = (seq as usize * 31 + i) as u8;
    }
    frames::ethernet(dst, PEER_MAC, 0x88b5, &payload)
}

/// `frame` with an 802.1Q tag (priority 0) for `vid`.
fn tagged(dst: [u8; 6], seq: u32, vid: u16) -> Vec<u8> {
    let f = frame(dst, seq, 200);
    let mut t = f[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&vid.to_be_bytes());
    t.extend_from_slice(&f[12..]);
    t
}

/// The sequence number of a `frame` the stack received (its tag, if any, stripped).
fn seq_of(f: &RxFrame) -> u32 {
    u32::from_le_bytes(f.bytes[14..18].try_into().unwrap())
}

/// Hands `frame` to the in-process device's receive side with `hdr`.
fn inject(bus: &InprocBus, hdr: NetHeader, frame: Vec<u8>) {
    bus.with_device(|d| d.to_receive.push_back((hdr, frame)));
}

/// Waits for `n` frames on RX queue 0.
fn received(host: &Host, n: usize) -> Vec<RxFrame> {
    let mut got = Vec::new();
    wait_for(host, &format!("{n} frames received"), || {
        got.extend(host.take_received(0));
        got.len() >= n
    });
    got
}

/// Waits for `n` frames the in-process device sent.
fn sent(host: &Host, bus: &InprocBus, n: usize) -> Vec<Vec<u8>> {
    let mut got = Vec::new();
    wait_for(host, &format!("{n} frames sent"), || {
        got.extend(bus.with_device(|d| std::mem::take(&mut d.sent)));
        got.len() >= n
    });
    got
}

/// An IPv4/TCP frame from the peer to the guest carrying `payload` bytes, both checksums zero.
fn tcp_frame(dst: [u8; 6], src: [u8; 6], payload: usize) -> Vec<u8> {
    frames::tcp4(dst, src, 0x18, (0..payload).map(|i| (i * 13) as u8))
}

/// `tcp_frame` with both checksums filled in.
fn tcp_frame_valid(dst: [u8; 6], src: [u8; 6], payload: usize) -> Vec<u8> {
    let mut f = tcp_frame(dst, src, payload);
    let c = offload::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    offload::segment::fill_l4_checksum(&mut f).expect("our own TCP frame");
    f
}

/// Whether both checksums of an IPv4/TCP frame on the wire are right.
fn checksums_valid(f: &[u8]) -> bool {
    let l = offload::Layout::parse(f).expect("a TCP/IPv4 frame");
    offload::segment::verify_ipv4_checksum(f, &l) == Some(true)
        && offload::segment::verify_l4_checksum(f, &l) == Some(true)
}

// ---------------------------------------------------------------------------------------------
// Capability declarations.

/// A device offering what QEMU's virtio-net-pci offers behind a vnet_hdr tap (and USO): every
/// offload is declared, within NetAdapterCx's checks (the host's, no violation), with what
/// NetAdapterStart requires, in RtEthSample's order (link layer first, datapath before the
/// offloads); mergeable buffers make 2 KiB receive buffers; one pair, so no RSS.
#[test]
fn every_offload_a_tap_backed_device_offers_is_declared_within_the_framework_rules() {
    let bus = InprocBus::new(DEFAULT_FEATURES | Features::NET_HOST_USO, GUEST_MAC, 64);
    let host = host(&bus, &[], 1);
    bring_up(&host);
    let d = host.declared();
    let link = d.link.expect("link-layer capabilities");
    assert_eq!(
        (link.MaxTxLinkSpeed, link.MaxRxLinkSpeed),
        (DEFAULT_SPEED, DEFAULT_SPEED)
    );
    assert_eq!(d.mtu, Some(1500));
    assert_eq!(d.permanent.and_then(|a| a.as_ethernet()), Some(GUEST_MAC));
    assert_eq!(d.current.and_then(|a| a.as_ethernet()), Some(GUEST_MAC));
    let tx = d.tx.expect("TX capabilities");
    assert_eq!(tx.MappingRequirement, MAPPING_DMA_MAPPED);
    assert!(
        d.dma.is_some() && host.dma_max_length().is_some(),
        "a DMA v3 enabler"
    );
    assert_eq!(
        tx.MaximumNumberOfFragments,
        virtionet::txqueue::MAX_SEGMENTS - 1
    );
    assert_eq!(tx.FragmentRingNumberOfElementsHint, 1024);
    assert_eq!(tx.MaximumNumberOfQueues, 1);
    let rx = d.rx.expect("RX capabilities");
    assert_eq!(
        (rx.AllocationMode, rx.AttachmentMode),
        (RX_MODE_DRIVER, RX_MODE_DRIVER)
    );
    assert!(
        host.return_rx_buffer().is_some(),
        "EvtAdapterReturnRxBuffer"
    );
    assert_eq!(rx.MaximumFrameSize, 2048, "mergeable buffers are 2 KiB");
    assert_eq!(rx.FragmentRingNumberOfElementsHint, 1024);
    // Checksum both ways, LSO v4/v6 and USO, RSC v4/v6, tagging.
    let t = d.tx_checksum.expect("TX checksum");
    assert_eq!(
        t.Layer4Flags,
        l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS | l4::UDP
    );
    assert_ne!(t.Layer3Flags & l3::IPV6_WITH_EXTENSIONS, 0);
    assert!(t.Layer4HeaderOffsetLimit > t.Layer3HeaderOffsetLimit);
    assert!(d.rx_checksum.is_some(), "RX checksum");
    let g = d.gso.expect("GSO");
    assert_eq!(
        g.Layer4Flags,
        l4::TCP_NO_OPTIONS | l4::TCP_WITH_OPTIONS | l4::UDP
    );
    assert_eq!(g.MaximumOffloadSize, 64_000);
    let r = d.rsc.expect("RSC");
    assert_eq!(r.Layer3Flags, l3::IPV4_NO_OPTIONS | l3::IPV6_NO_EXTENSIONS);
    assert_eq!(d.ieee8021q, Some(3), "priority and VLAN tagging");
    let f = d.filter.expect("receive filter");
    assert_eq!(f.MaximumMulticastAddresses, offload::filter::MAX_MULTICAST);
    assert_eq!(
        f.SupportedPacketFilters,
        NDIS_FILTER | packet_filter::ALL_MULTICAST | packet_filter::PROMISCUOUS
    );
    assert!(d.rss.is_none(), "one pair: nothing to scale");
    // RtEthSample's order: link layer first, datapath before the offloads.
    let calls = host.capability_calls();
    assert_eq!(
        calls.first().copied(),
        Some("NetAdapterSetLinkLayerCapabilities")
    );
    let pos = |api: &str| {
        calls
            .iter()
            .position(|c| *c == api)
            .unwrap_or_else(|| panic!("{api} in {calls:?}"))
    };
    assert!(pos("NetAdapterSetDataPathCapabilities") < pos("NetAdapterOffloadSetGsoCapabilities"));
    tear_down(&host);
}

/// A device with no offload at all: only the IPv4 header checksum (the driver computes it) is
/// offered for transmit, no LSO, USO or RSC; without mergeable buffers one receive buffer holds
/// a whole frame, and a full-size frame arrives in one fragment. No control queue: the device
/// is told nothing about offloads.
#[test]
fn a_device_without_offloads_is_promised_none() {
    let bus = InprocBus::new(Features::VERSION_1 | Features::NET_MAC, GUEST_MAC, 64);
    let host = host(&bus, &[], 2);
    bring_up(&host);
    let d = host.declared();
    let t = d
        .tx_checksum
        .expect("the IPv4 header checksum is still offered");
    assert_eq!(t.Layer4Flags, 0);
    assert_eq!(t.Layer3Flags, l3::IPV4_NO_OPTIONS | l3::IPV4_WITH_OPTIONS);
    assert!(d.gso.is_none(), "no GSO without VIRTIO_NET_F_CSUM/HOST_TSO");
    assert!(d.rsc.is_none(), "no RSC without GUEST_TSO and MRG_RXBUF");
    let max_frame = d.rx.expect("RX capabilities").MaximumFrameSize;
    assert_eq!(
        max_frame,
        12 + 1500 + 14 + 4,
        "one buffer holds a whole frame"
    );
    let full = frame(GUEST_MAC, 7, 1514);
    inject(&bus, NetHeader::default(), full.clone());
    let got = received(&host, 1);
    assert_eq!(got[0].bytes, full);
    assert_eq!(got[0].fragments, 1, "one buffer");
    assert!(bus.with_device(|d| d.filter.guest_offloads.is_none()));
    no_violations("no offloads");
    tear_down(&host);
}

/// The INF's keywords turn LSO, USO, RSC, 802.1Q tagging and TCP transmit checksums off (the
/// OS is not promised them), and `NetworkAddress` overrides the current address only: the
/// device is given it (MAC_ADDR_SET) and filters by it.
#[test]
fn keywords_turn_offloads_off_and_the_network_address_overrides_the_current_address() {
    const NEW_MAC: [u8; 6] = [0x02, 0x11, 0x22, 0x33, 0x44, 0x55];
    let bus = InprocBus::new(DEFAULT_FEATURES | Features::NET_HOST_USO, GUEST_MAC, 64);
    let host = host(
        &bus,
        &[
            ("*LsoV2IPv4", "0"),
            ("*LsoV2IPv6", "0"),
            ("*UsoIPv4", "0"),
            ("*UsoIPv6", "0"),
            ("*RscIPv4", "0"),
            ("*RscIPv6", "0"),
            ("*PriorityVLANTag", "0"),
            ("*TCPChecksumOffloadIPv4", "2"),
            ("*TCPChecksumOffloadIPv6", "2"),
            ("NetworkAddress", "02-11-22-33-44-55"),
        ],
        3,
    );
    bring_up(&host);
    let d = host.declared();
    assert!(d.gso.is_none(), "LSO and USO off");
    assert!(d.rsc.is_none(), "RSC off");
    assert!(d.ieee8021q.is_none(), "no tagging");
    assert_eq!(
        d.tx_checksum.expect("TX checksum").Layer4Flags,
        l4::UDP,
        "TCP TX checksum is off"
    );
    assert_eq!(d.permanent.and_then(|a| a.as_ethernet()), Some(GUEST_MAC));
    assert_eq!(
        d.current.and_then(|a| a.as_ethernet()),
        Some(NEW_MAC),
        "NetworkAddress overrides the current address only"
    );
    wait_for(&host, "the device takes the new MAC", || {
        bus.with_device(|d| d.mac()) == NEW_MAC
    });
    let filtered = bus.with_device(|d| d.filtered);
    inject(&bus, NetHeader::default(), frame(GUEST_MAC, 1, 100));
    inject(&bus, NetHeader::default(), frame(NEW_MAC, 2, 100));
    let got = received(&host, 1);
    assert_eq!(seq_of(&got[0]), 2, "only the frame to the new address");
    assert_eq!(bus.with_device(|d| d.filtered), filtered + 1);
    no_violations("keywords");
    tear_down(&host);
}

/// `*JumboPacket` 9014 on a device with a 9000-byte MTU and no mergeable buffers: MTU 9000,
/// each receive buffer holds a whole jumbo frame (header, MTU, Ethernet header, a tag), and the
/// link speed is the device's (25 Gbit/s, VIRTIO_NET_F_SPEED_DUPLEX). Jumbo frames pass both
/// ways, each received in one fragment.
#[test]
fn jumbo_frames_without_mergeable_buffers_size_the_receive_buffers() {
    let features =
        Features::VERSION_1 | Features::NET_MAC | Features::NET_MTU | Features::NET_SPEED_DUPLEX;
    let bus = InprocBus::new(features, GUEST_MAC, 64);
    bus.model().with(|s| {
        s.device_config[12..16].copy_from_slice(&25_000u32.to_le_bytes());
        s.device_config[16] = 1; // full duplex
    });
    let host = host(&bus, &[("*JumboPacket", "9014")], 4);
    bring_up(&host);
    let d = host.declared();
    assert_eq!(d.mtu, Some(9000));
    assert_eq!(d.link.expect("link layer").MaxRxLinkSpeed, 25_000_000_000);
    assert_eq!(
        d.rx.expect("RX capabilities").MaximumFrameSize,
        12 + 9000 + 14 + 4
    );
    let ls = host.link_states();
    assert_eq!(ls.last().map(|l| l.TxLinkSpeed), Some(25_000_000_000));
    let jumbo = frame(GUEST_MAC, 9, 9014);
    inject(&bus, NetHeader::default(), jumbo.clone());
    let got = received(&host, 1);
    assert_eq!(got[0].bytes, jumbo);
    assert_eq!(got[0].fragments, 1);
    let out = frame(PEER_MAC, 10, 9014);
    assert!(host.send(TxFrame {
        bytes: out.clone(),
        ..Default::default()
    }));
    assert_eq!(sent(&host, &bus, 1), [out]);
    no_violations("jumbo frames");
    tear_down(&host);
}

// ---------------------------------------------------------------------------------------------
// The OID-driven callbacks.

/// EvtSetReceiveFilter reads the packet filter and the whole multicast list: the device gets the
/// list (CTRL_MAC_TABLE_SET) and filters by it. A unicast address in the list: the list is
/// refused and all multicast received instead (none the OS wants is lost).
#[test]
fn the_receive_filter_reaches_the_device_and_a_unicast_in_the_list_means_all_multicast() {
    let bus = InprocBus::new(DEFAULT_FEATURES, GUEST_MAC, 64);
    let host = host(&bus, &[], 5);
    bring_up(&host);
    let groups = [[0x01, 0x00, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]];
    let other = [0x01, 0x00, 0x5e, 0, 0, 2];
    assert!(host.set_receive_filter(NDIS_FILTER, &groups));
    let want: BTreeSet<[u8; 6]> = groups.into_iter().collect();
    wait_for(&host, "the multicast table", || {
        bus.with_device(|d| d.filter.multicast.iter().copied().collect::<BTreeSet<_>>()) == want
    });
    let f = bus.with_device(|d| d.filter.clone());
    assert!(!f.promisc && !f.allmulti && !f.nobcast, "{f:?}");
    let filtered = bus.with_device(|d| d.filtered);
    inject(&bus, NetHeader::default(), frame(other, 1, 100));
    inject(&bus, NetHeader::default(), frame(groups[1], 2, 100));
    let got = received(&host, 1);
    assert_eq!(
        seq_of(&got[0]),
        2,
        "a member group passes, another does not"
    );
    assert_eq!(bus.with_device(|d| d.filtered), filtered + 1);

    let mut with_unicast = groups.to_vec();
    with_unicast.push(GUEST_MAC);
    assert!(host.set_receive_filter(NDIS_FILTER, &with_unicast));
    wait_for(&host, "all multicast", || {
        bus.with_device(|d| d.filter.allmulti && d.filter.multicast.is_empty())
    });
    inject(&bus, NetHeader::default(), frame(other, 3, 100));
    let got = received(&host, 1);
    assert_eq!(seq_of(&got[0]), 3, "any group passes now");
    no_violations("receive filter");
    tear_down(&host);
}

/// `VlanID` 42 on a device without CTRL_VLAN: the receive filter's only VLAN member is 42,
/// filtered in software — a frame tagged 43 is dropped, one tagged 42 arrives with its tag in
/// the 802.1Q extension. Without `VlanID`, every VLAN passes.
#[test]
fn vlan_id_is_the_only_vlan_member_of_the_receive_filter() {
    let features = DEFAULT_FEATURES.difference(Features::NET_CTRL_VLAN);
    let bus = InprocBus::new(features, GUEST_MAC, 64);
    {
        let host = host(&bus, &[("VlanID", "42")], 6);
        bring_up(&host);
        assert!(
            bus.with_device(|d| d.filter.vlans.is_empty()),
            "no CTRL_VLAN"
        );
        inject(&bus, NetHeader::default(), tagged(GUEST_MAC, 1, 43));
        inject(&bus, NetHeader::default(), tagged(GUEST_MAC, 2, 42));
        let got = received(&host, 1);
        assert_eq!(seq_of(&got[0]), 2, "VLAN 42 is the member, 43 is not");
        assert_eq!(got[0].ieee8021q.vlan_identifier(), 42);
        no_violations("VlanID 42");
        tear_down(&host);
    }
    let bus = InprocBus::new(features, GUEST_MAC, 64);
    let host = host(&bus, &[], 6);
    bring_up(&host);
    inject(&bus, NetHeader::default(), tagged(GUEST_MAC, 3, 43));
    let got = received(&host, 1);
    assert_eq!(seq_of(&got[0]), 3, "no VlanID: every VLAN passes");
    assert_eq!(got[0].ieee8021q.vlan_identifier(), 43);
    no_violations("no VlanID");
    tear_down(&host);
}

/// OID_TCP_OFFLOAD_PARAMETERS: the offload callbacks read what the OS enabled from the offload
/// object, and the device is told (VIRTIO_NET_CTRL_GUEST_OFFLOADS) checksum validation when any
/// receive checksum is on, and coalescing when RSC over IPv4 or IPv6 is on as well.
#[test]
fn offload_callbacks_tell_the_device_what_the_os_enabled() {
    let bus = InprocBus::new(DEFAULT_FEATURES, GUEST_MAC, 64);
    let host = host(&bus, &[], 7);
    bring_up(&host);
    let csum = Features::NET_GUEST_CSUM.bits();
    let tso = csum
        | (Features::NET_GUEST_TSO4 | Features::NET_GUEST_TSO6 | Features::NET_GUEST_ECN).bits();
    let off = OffloadState::default();
    // Each case differs from the one before, so every one is a new command to the device.
    let cases = [
        ("nothing", off, 0),
        (
            "RX TCP checksum",
            OffloadState {
                rx_tcp: true,
                ..off
            },
            csum,
        ),
        (
            "RSC over IPv4 without a checksum",
            OffloadState { rsc4: true, ..off },
            0,
        ),
        (
            "RX IPv4 checksum",
            OffloadState {
                rx_ipv4: true,
                ..off
            },
            csum,
        ),
        (
            "RX UDP checksum, RSC over IPv6",
            OffloadState {
                rx_udp: true,
                rsc6: true,
                ..off
            },
            tso,
        ),
        (
            "RX UDP checksum",
            OffloadState {
                rx_udp: true,
                ..off
            },
            csum,
        ),
        (
            "RX TCP checksum, RSC over IPv4",
            OffloadState {
                rx_tcp: true,
                rsc4: true,
                ..off
            },
            tso,
        ),
        (
            "transmit offloads only",
            OffloadState {
                tx_ipv4: true,
                tx_tcp: true,
                tx_udp: true,
                lso4: true,
                lso6: true,
                uso4: true,
                uso6: true,
                ..off
            },
            0,
        ),
        ("everything", OffloadState::ALL, tso),
    ];
    for (what, state, want) in cases {
        host.set_offloads(state);
        wait_for(&host, what, || {
            bus.with_device(|d| d.filter.guest_offloads) == Some(want)
        });
    }
    no_violations("offload callbacks");
    tear_down(&host);
}

/// Link state reports are NET_ADAPTER_LINK_STATE as the `_INIT` macros build them (the host
/// checks Size and every field's range): connected at the link speed and full duplex, or
/// disconnected with unknown speeds. Queue creation uses the 2.2 NET_PACKET_QUEUE_CONFIG
/// (56 bytes) with the framework's execution context.
#[test]
fn link_states_and_queue_configurations_are_the_framework_structs() {
    let bus = InprocBus::new(DEFAULT_FEATURES, GUEST_MAC, 64);
    let host = host(&bus, &[], 8);
    bring_up(&host);
    let up = *host.link_states().last().expect("the initial link state");
    assert_eq!(up.Size, 40);
    assert_eq!(up.MediaConnectState, media_connect_state::CONNECTED);
    assert_eq!(
        (up.TxLinkSpeed, up.RxLinkSpeed),
        (DEFAULT_SPEED, DEFAULT_SPEED)
    );
    assert_eq!(up.MediaDuplexState, 2, "full duplex");
    let n = host.link_states().len();
    bus.with_device(|d| d.set_link(false));
    wait_for(&host, "link down reported", || {
        host.link_states().len() > n
            && host.link_states().last().map(|l| l.MediaConnectState)
                == Some(media_connect_state::DISCONNECTED)
    });
    let down = *host.link_states().last().unwrap();
    assert_eq!(down.Size, 40);
    assert_eq!(
        (down.TxLinkSpeed, down.RxLinkSpeed),
        (
            NET_ADAPTER_LINK_SPEED_UNKNOWN,
            NET_ADAPTER_LINK_SPEED_UNKNOWN
        )
    );
    bus.with_device(|d| d.set_link(true));
    wait_for(&host, "link up reported", || {
        host.link_states().last().map(|l| l.MediaConnectState)
            == Some(media_connect_state::CONNECTED)
    });
    assert_eq!(
        host.link_states().last().unwrap().TxLinkSpeed,
        DEFAULT_SPEED
    );
    for dir in [Dir::Tx, Dir::Rx] {
        let c = host.queue(dir, 0).expect("queue 0").config();
        assert_eq!(c.Size, 56, "{dir:?}: the 2.1+ size the verifier requires");
        assert!(c.ExecutionContext.is_null(), "{dir:?}: the framework's EC");
        assert!(
            c.EvtAdvance.is_some()
                && c.EvtCancel.is_some()
                && c.EvtSetNotificationEnabled.is_some()
                && c.EvtStart.is_some()
                && c.EvtStop.is_some(),
            "{dir:?}"
        );
    }
    no_violations("link states");
    tear_down(&host);
}

// ---------------------------------------------------------------------------------------------
// Extension queries.

/// The offset the host's rings registered `spec` at, on queue `dir` 0.
fn registered_offset(host: &Host, dir: Dir, spec: &netring::ExtensionSpec) -> Option<usize> {
    let q = host.queue(dir, 0)?;
    let os = q.os.lock().unwrap();
    let r = match &*os {
        Os::Tx(t) => t.rings.registered(spec),
        Os::Rx(r) => r.rings.registered(spec),
    };
    r.map(|r| r.offset)
}

/// For several ring layouts (the host places every extension at a random offset and stride per
/// seed), the glue's extension queries find each registered extension where it is: on transmit,
/// the checksum request (the device gets NEEDS_CSUM and the frame leaves with both checksums
/// right), the GSO request (segmented by the device), the 802.1Q request (the tag inserted),
/// the logical and virtual addresses (the bytes are right); on receive, the checksum verdict
/// (the device's DATA_VALID reaches the stack as Valid), the RSC count of a coalesced packet,
/// the 802.1Q tag of a stripped frame, and the return context (every buffer comes back). The
/// hash extension is not registered without RSS, so its query comes back disabled (a write
/// through a wrong handle would land in another extension and break the checks above).
#[test]
fn extensions_are_found_wherever_the_rings_register_them() {
    let mut offsets = BTreeSet::new();
    for seed in 0..6 {
        let bus = InprocBus::new(DEFAULT_FEATURES, GUEST_MAC, 64);
        let host = host(&bus, &[], 100 + seed);
        bring_up(&host);
        assert_eq!(registered_offset(&host, Dir::Rx, &names::HASH), None);
        offsets.insert((
            registered_offset(&host, Dir::Tx, &names::CHECKSUM).expect("TX checksum"),
            registered_offset(&host, Dir::Rx, &names::CHECKSUM).expect("RX checksum"),
        ));

        // Transmit: a checksum request, an LSO request, a tag request.
        let csum = NetPacketChecksum::tx(A::Required, A::Required);
        let small = tcp_frame(PEER_MAC, GUEST_MAC, 300);
        let mut gso = NetPacketGso::default();
        gso.set_mss(1000).unwrap();
        let big = tcp_frame(PEER_MAC, GUEST_MAC, 5000);
        let mut tag = NetPacketIeee8021q::default();
        tag.set_priority_code_point(5).unwrap();
        tag.set_vlan_identifier(42).unwrap();
        tag.set_tx_tagging(Ieee8021qTxTagging::all());
        let plain = frame(PEER_MAC, 1, 200);
        for f in [
            TxFrame {
                bytes: small.clone(),
                split: vec![54, 100],
                checksum: csum,
                ..Default::default()
            },
            TxFrame {
                bytes: big.clone(),
                split: vec![54, 2000],
                checksum: csum,
                gso,
                ..Default::default()
            },
            TxFrame {
                bytes: plain.clone(),
                ieee8021q: tag,
                ..Default::default()
            },
        ] {
            assert!(host.send(f), "seed {seed}");
        }
        let out = sent(&host, &bus, 1 + 5 + 1);
        assert!(checksums_valid(&out[0]), "seed {seed}: checksums completed");
        assert_eq!(out[0][54..], small[54..], "seed {seed}");
        for (i, s) in out[1..6].iter().enumerate() {
            assert!(checksums_valid(s), "seed {seed}: segment {i}");
            assert_eq!(s.len(), 54 + 1000, "seed {seed}: segment {i}");
        }
        let tci = ((5u16 << 13) | 42).to_be_bytes();
        let mut want = plain[..12].to_vec();
        want.extend_from_slice(&[0x81, 0x00, tci[0], tci[1]]);
        want.extend_from_slice(&plain[12..]);
        assert_eq!(out[6], want, "seed {seed}: the tag inserted");

        // Receive: a validated frame, a coalesced one with a stale checksum, a tagged one.
        let valid = tcp_frame_valid(GUEST_MAC, PEER_MAC, 400);
        let mut stale = tcp_frame_valid(GUEST_MAC, PEER_MAC, 5000);
        stale[50..52].copy_from_slice(&[0x12, 0x34]);
        inject(
            &bus,
            NetHeader {
                flags: hdr_flags::DATA_VALID,
                ..Default::default()
            },
            valid.clone(),
        );
        inject(
            &bus,
            NetHeader {
                flags: hdr_flags::DATA_VALID,
                gso_type: gso::TCPV4,
                gso_size: 1000,
                ..Default::default()
            },
            stale,
        );
        inject(&bus, NetHeader::default(), tagged(GUEST_MAC, 2, 7));
        let got = received(&host, 3);
        assert_eq!(got[0].bytes, valid, "seed {seed}");
        assert_eq!(
            got[0].checksum.rx_layer4(),
            Some(Eval::Valid),
            "seed {seed}"
        );
        assert_eq!(got[1].rsc.coalesced_segment_count, 5, "seed {seed}");
        assert_eq!(
            got[1].checksum.rx_layer4(),
            Some(Eval::Valid),
            "seed {seed}"
        );
        assert!(
            checksums_valid(&got[1].bytes),
            "seed {seed}: the stale checksum fixed"
        );
        assert_eq!(got[2].ieee8021q.vlan_identifier(), 7, "seed {seed}");
        assert_eq!(seq_of(&got[2]), 2, "seed {seed}");
        let rx = host.queue(Dir::Rx, 0).unwrap();
        wait_for(&host, "every buffer returned", || {
            rx.stats.returns.load(std::sync::atomic::Ordering::Relaxed) >= 3
        });
        no_violations(&format!("seed {seed}"));
        tear_down(&host);
    }
    assert!(offsets.len() >= 3, "the layouts differ: {offsets:?}");
}

// ---------------------------------------------------------------------------------------------
// Receive-side scaling (QEMU: several queue pairs with device RSS).

/// Microsoft's verification key.
const KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

/// QEMU's virtio-net-pci with `props` behind a tap with `pairs` queues in a new namespace.
fn tap_qemu(tag: char, pairs: u16, props: &str) -> (NetNs, Arc<Qemu>, Arc<QemuBus>) {
    let ns = NetNs::new(&format!("vgd{}{tag}", std::process::id() % 100_000)).expect("netns");
    vnet_harness::netns::setup_tap_with(&ns, "vtap0", GUEST_MAC, pairs > 1).expect("tap");
    let q = Arc::new(
        Qemu::start(&QemuOptions {
            tap: Some(("vtap0".into(), ns.name.clone())),
            tap_queues: pairs,
            device_props: props.to_string(),
            ..Default::default()
        })
        .expect("QEMU"),
    );
    let bus = Arc::new(QemuBus::new(q.clone()).expect("virtio-net function"));
    (ns, q, bus)
}

fn qemu_host(bus: Arc<QemuBus>, interrupts: Interrupts) -> Host {
    Host::new(
        bus,
        HostConfig {
            interrupts,
            ..Default::default()
        },
    )
}

/// RSS is declared only where NetAdapterCx can honour the OS's table: with device RSS and
/// several pairs (4 here: 4 queues, a 128-entry table, Toeplitz over what the device hashes),
/// not with device RSS but messages for one pair only, and not with several pairs but no device
/// RSS (the driver then runs one pair). QEMU 7.2 hashes every type virtio defines, the IPv6
/// `_EX` ones too (`VIRTIO_NET_RSS_SUPPORTED_HASHES`, hw/net/virtio-net.c), so IPv6 extension
/// headers are declared; without `_EX` types they are not (`declare.rs`'s unit tests).
#[test]
fn rss_is_declared_only_with_device_rss_and_several_queues() {
    {
        let (_ns, _q, bus) = tap_qemu('r', 4, "mq=on,rss=on,vectors=10");
        let host = qemu_host(bus, Interrupts::Msix(10));
        bring_up(&host);
        let d = host.declared();
        let r = d.rss.expect("RSS declared");
        assert_eq!((r.NumberOfQueues, r.IndirectionTableSize), (4, 128));
        assert_eq!(
            r.ReceiveScalingProtocolTypes,
            rss_protocol::IPV4
                | rss_protocol::IPV4_OPTIONS
                | rss_protocol::IPV6
                | rss_protocol::IPV6_EXTENSIONS
                | rss_protocol::TCP
                | rss_protocol::UDP,
            "what QEMU hashes"
        );
        assert_eq!(r.ReceiveScalingHashTypes, RSS_HASH_TYPE_TOEPLITZ);
        assert_eq!(d.tx.expect("TX capabilities").MaximumNumberOfQueues, 4);
        host.rss_initialize().expect("RSS initialize");
        assert_eq!(host.queues().iter().filter(|q| q.dir == Dir::Rx).count(), 4);
        no_violations("RSS declared");
        tear_down(&host);
    }

    for (what, tag, props, interrupts) in [
        (
            "device RSS, messages for one pair",
            'o',
            "mq=on,rss=on,vectors=10",
            Interrupts::Msix(4),
        ),
        (
            "several pairs, no device RSS",
            'n',
            "mq=on,vectors=10",
            Interrupts::Msix(10),
        ),
    ] {
        let (_ns, _q, bus) = tap_qemu(tag, 4, props);
        let host = qemu_host(bus, interrupts);
        bring_up(&host);
        let d = host.declared();
        assert!(d.rss.is_none(), "{what}: no RSS");
        assert_eq!(
            d.tx.expect("TX").MaximumNumberOfQueues,
            1,
            "{what}: one pair"
        );
        assert!(
            host.rss_initialize().is_err(),
            "{what}: no RSS to initialize"
        );
        no_violations(what);
        tear_down(&host);
    }
}

/// Source ports (from 20 000 on) of UDP datagrams 10.99.0.1 → 10.99.0.2:7000 whose Toeplitz hash
/// selects each of `indices` of a 128-entry table.
fn ports_for(indices: &[usize]) -> Vec<u16> {
    let all: Vec<u16> = (0..128).collect();
    indices
        .iter()
        .map(|&want| {
            (20_000u16..60_000)
                .find(|&port| {
                    let mut input = [10, 99, 0, 1, 10, 99, 0, 2, 0, 0, 0x1b, 0x58];
                    input[8..10].copy_from_slice(&port.to_be_bytes());
                    let h = offload::rss::toeplitz_bitwise(&KEY, &input);
                    offload::rss::indirection(&all, h) == Some(want as u16)
                })
                .expect("a port for every index")
        })
        .collect()
}

/// Sends `per_port` datagrams (sequence numbers from `first`) from each of `ports` in namespace
/// `ns`, paced: QEMU drops a packet whose RSS queue has no buffer at that moment.
fn send_datagrams(ns: &NetNs, ports: &[u16], first: u16, per_port: u16) {
    let list = ports.to_vec();
    spawn_in(ns, move || {
        for &port in &list {
            let s = std::net::UdpSocket::bind(("10.99.0.1", port)).map_err(|e| e.to_string())?;
            for seq in first..first + per_port {
                let mut p = vec![0u8; 64];
                p[..2].copy_from_slice(&port.to_be_bytes());
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                s.send_to(&p, ("10.99.0.2", 7000))
                    .map_err(|e| e.to_string())?;
                std::thread::sleep(Duration::from_micros(500));
            }
        }
        Ok(())
    })
    .join()
    .unwrap()
    .unwrap();
}

/// The test datagrams RX queues 0–3 indicated so far: (source port, sequence, queue).
fn take_datagrams(host: &Host) -> Vec<(u16, u16, u32)> {
    let mut out = Vec::new();
    for k in 0..4 {
        for rf in host.take_received(k) {
            let Ok(p) = etherparse::SlicedPacket::from_ethernet(&rf.bytes) else {
                continue;
            };
            let Some(etherparse::TransportSlice::Udp(u)) = p.transport else {
                continue; // the kernel's own neighbour traffic
            };
            let d = u.payload();
            if u.destination_port() == 7000 && d.len() >= 4 {
                out.push((
                    u16::from_be_bytes([d[0], d[1]]),
                    u16::from_be_bytes([d[2], d[3]]),
                    k,
                ));
            }
        }
    }
    out
}

/// Probe datagrams' sequence numbers start here.
const PROBE: u16 = 0x8000;

/// Waits (bounded) until a datagram from `port` arrives on `queue`: the device has the new
/// steering (one RSS_CONFIG carries the whole table, so every entry is in effect then).
fn until_steered(host: &Host, ns: &NetNs, port: u16, queue: u32) {
    let deadline = Instant::now() + WAIT;
    for n in 0.. {
        assert!(
            Instant::now() < deadline,
            "port {port} never reached queue {queue}\n{}",
            host.diagnostics()
        );
        send_datagrams(ns, &[port], PROBE + n, 1);
        let until = Instant::now() + Duration::from_millis(100);
        while Instant::now() < until {
            if take_datagrams(host)
                .iter()
                .any(|&(p, seq, k)| p == port && seq >= PROBE && k == queue)
            {
                return;
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }
}

/// Sends `per_port` datagrams from each of `ports` and returns the RX queue each arrived on
/// (every one exactly once; late probes are ignored).
fn queues_of_ports(host: &Host, ns: &NetNs, ports: &[u16], per_port: u16) -> Vec<(u16, u32)> {
    send_datagrams(ns, ports, 0, per_port);
    let total = ports.len() * usize::from(per_port);
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    wait_for(host, "every datagram", || {
        for (port, seq, k) in take_datagrams(host) {
            if seq < PROBE {
                assert!(seen.insert((port, seq)), "no duplicates");
                out.push((port, k));
            }
        }
        seen.len() >= total
    });
    out
}

/// OID_GEN_RSS_SET_INDIRECTION_TABLE_ENTRIES with an entry naming a queue that does not exist:
/// EvtAdapterReceiveScalingSetIndirectionEntries writes each entry's status (success for the
/// two it applied, STATUS_INVALID_PARAMETER for the unknown queue) and fails the call; the two
/// it applied steer, and the entry it refused keeps its queue — the device steers datagrams
/// hashed to each index accordingly.
#[test]
fn indirection_entries_report_each_status_and_steer_what_they_applied() {
    let (ns, _q, bus) = tap_qemu('i', 4, "mq=on,rss=on,vectors=10");
    let host = qemu_host(bus, Interrupts::Msix(10));
    bring_up(&host);
    host.rss_initialize().expect("RSS initialize");
    // Toeplitz over IPv4 with TCP and UDP ports, every entry on queue 2.
    assert_eq!(
        host.rss_parameters(true, Some(&KEY), Some((1, 0x1 | 0x10 | 0x20)), Some(128)),
        STATUS_SUCCESS
    );
    let all: Vec<(usize, u32)> = (0..128).map(|i| (i, 2)).collect();
    assert_eq!(host.rss_set_entries(&all), STATUS_SUCCESS);
    assert!(
        host.rss_state()
            .entry_statuses
            .iter()
            .all(|&(_, st)| st == STATUS_SUCCESS)
    );
    // Index 0 to queue 3, 127 to queue 1, 5 to a queue that does not exist.
    let st = host.rss_set_entries(&[(0, 3), (127, 1), (5, 9)]);
    assert_eq!(st, STATUS_INVALID_PARAMETER, "one entry was refused");
    assert_eq!(
        host.rss_state().entry_statuses,
        [
            (0, STATUS_SUCCESS),
            (127, STATUS_SUCCESS),
            (5, STATUS_INVALID_PARAMETER)
        ],
        "each entry's status"
    );
    no_violations("indirection entries");
    let ports = ports_for(&[0, 127, 5]);
    let want = [3u32, 1, 2];
    until_steered(&host, &ns, ports[0], want[0]);
    for (port, queue) in queues_of_ports(&host, &ns, &ports, 3) {
        let i = ports.iter().position(|&p| p == port).unwrap();
        assert_eq!(
            queue,
            want[i],
            "port {port}: index {} steers to queue {}",
            [0, 127, 5][i],
            want[i]
        );
    }
    no_violations("steering");
    tear_down(&host);
}
