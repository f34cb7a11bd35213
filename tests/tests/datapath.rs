//! The whole driver core end to end: the adapter brings the in-process virtio-net device up
//! through the virtio-pci register model; the TX and RX engines run under the NetAdapterCx OS
//! side with the verifier's checks; frames loop through the device.

use netring::{
    NetPacketChecksum, NetPacketGso, RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::filter::{PacketFilter, RxFilter};
use virtio::Features;
use virtionet::adapter::ControlProgress;
use virtionet::config::UserSettings;
use virtionet::events::Event;
use virtionet::rxqueue::RxFault;
use vnet_harness::frames;
use vnet_harness::netdev::{Backend, DEFAULT_FEATURES, Fault};
use vnet_harness::os_tx::TxFrame;
use vnet_harness::sim::{MAC, Machine, PLAN, machine};

fn eth(dst: [u8; 6], payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&0x88b5u16.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn tcp4(payload: usize) -> Vec<u8> {
    frames::tcp4(
        MAC,
        [2, 0, 0, 0, 0, 9],
        0x18,
        (0..payload).map(|i| (i * 13) as u8),
    )
}

#[test]
fn bring_up_negotiates_by_policy_and_derives_capabilities() {
    let m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        1,
    );
    let f = m.adapter.features();
    assert!(f.contains(
        Features::NET_MRG_RXBUF
            | Features::NET_GUEST_TSO4
            | Features::NET_CSUM
            | Features::NET_HOST_TSO4
            | Features::NET_CTRL_VQ
    ));
    assert!(!f.contains(Features::NET_HOST_UFO) && !f.contains(Features::NET_HASH_REPORT));
    let c = m.adapter.capabilities();
    assert_eq!(c.current_address, MAC);
    assert_eq!(c.mtu, 1500, "*JumboPacket 1514 limits the device's 9000");
    assert!(
        c.gso.lso_v4 && c.gso.lso_v6 && !c.gso.uso_v4,
        "no HOST_USO offered: no USO declared"
    );
    assert!(c.rsc_v4 && c.tx_checksum.tcp && !c.rx_checksum_in_software);
    assert_eq!(m.dev.model.with(|s| s.status), 15);
    // Without CSUM nothing that needs it is declared; without MRG_RXBUF no RSC.
    let bare = Features::VERSION_1
        | Features::NET_MAC
        | Features::NET_HOST_TSO4
        | Features::NET_GUEST_TSO4
        | Features::NET_GUEST_CSUM;
    let m2 = machine(
        bare,
        Backend::Loopback,
        &UserSettings {
            jumbo_packet: 9014,
            ..Default::default()
        },
        2,
    );
    let c = m2.adapter.capabilities();
    assert!(
        !m2.adapter.features().contains(Features::NET_HOST_TSO4),
        "TSO without CSUM refused"
    );
    assert!(!c.gso.lso_v4 && !c.tx_checksum.tcp && !c.rsc_v4);
    assert_eq!(c.mtu, 1500, "no MTU feature: Ethernet default");
    assert_eq!(c.rx_buffer_size, 12 + 1500 + 18);
}

#[test]
fn loopback_traffic_end_to_end() {
    loopback(DEFAULT_FEATURES, 3);
}

#[test]
fn loopback_traffic_end_to_end_packed_ring() {
    loopback(DEFAULT_FEATURES | Features::RING_PACKED, 33);
}

#[test]
fn loopback_traffic_without_event_idx_indirect_or_mergeable() {
    let f = DEFAULT_FEATURES.difference(
        Features::RING_EVENT_IDX | Features::RING_INDIRECT_DESC | Features::NET_MRG_RXBUF,
    );
    loopback(f, 34);
}

fn loopback(features: Features, seed: u64) {
    let mut m = machine(features, Backend::Loopback, &UserSettings::default(), seed);
    assert_eq!(
        m.adapter.features().contains(Features::RING_PACKED),
        features.contains(Features::RING_PACKED)
    );
    let mut frames = Vec::new();
    let mut pending = Vec::new();
    for i in 0..2000usize {
        let len = 14 + m.rng.below(1500) as usize;
        let f = eth(
            MAC,
            &(0..len - 14).map(|k| (k + i) as u8).collect::<Vec<_>>(),
        );
        let split = (0..m.rng.below(4))
            .map(|_| 1 + m.rng.below(300) as usize)
            .collect();
        frames.push(f.clone());
        pending.push(TxFrame {
            bytes: f,
            split,
            ..Default::default()
        });
    }
    for _ in 0..20_000 {
        m.round(&mut pending).unwrap();
        if m.os_rx.frames.len() == frames.len() {
            break;
        }
    }
    assert_eq!(m.os_rx.frames.len(), frames.len());
    for (i, (got, want)) in m.os_rx.frames.iter().zip(&frames).enumerate() {
        let mut want = want.clone();
        want.resize(want.len().max(60), 0);
        assert_eq!(got.bytes, want, "frame {i} after the round trip");
    }
    assert_eq!(m.tx.stats().sent.frames(), 2000);
    assert_eq!(m.rx.stats().received.frames(), 2000);
    assert_eq!(m.dev.sent.len(), 2000);
}

#[test]
fn lso_loops_back_as_rsc_and_checksums_hold() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        4,
    );
    let mut gso = NetPacketGso::default();
    gso.set_mss(1448).unwrap();
    let csum = NetPacketChecksum::tx(A::Required, A::Required);
    let big = tcp4(60_000);
    let small = tcp4(500);
    let mut pending = vec![
        TxFrame {
            bytes: big.clone(),
            split: vec![54, 30_000],
            checksum: csum,
            gso,
            ..Default::default()
        },
        TxFrame {
            bytes: small.clone(),
            checksum: csum,
            ..Default::default()
        },
    ];
    for _ in 0..200 {
        m.round(&mut pending).unwrap();
    }
    let f = &m.os_rx.frames;
    assert_eq!(f.len(), 2);
    // The coalesced frame: checksum valid, RSC count estimated from gso_size.
    let l = offload::Layout::parse(&f[0].bytes).unwrap();
    assert_eq!(
        offload::segment::verify_l4_checksum(&f[0].bytes, &l),
        Some(true)
    );
    assert_eq!(f[0].bytes.len(), big.len());
    assert_eq!(
        f[0].rsc.coalesced_segment_count,
        60_000u32.div_ceil(1448) as u16
    );
    assert_eq!(f[0].checksum.rx_layer4(), Some(Eval::Valid));
    assert_eq!(f[1].checksum.rx_layer4(), Some(Eval::Valid));
    assert_eq!(&f[1].bytes[54..], &small[54..]);
}

/// What a host's local sender or GRO gives the guest: partial (`NEEDS_CSUM`) checksums and
/// coalesced packets whose checksum field is stale. The driver must hand the OS real checksums.
#[test]
fn received_partial_and_stale_checksums_are_completed() {
    use virtio::net::{NetHeader, gso, hdr_flags};
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Channel,
        &UserSettings::default(),
        6,
    );
    let with_ip_csum = |mut f: Vec<u8>| {
        let c = offload::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
        f
    };
    let seeded = |mut f: Vec<u8>| {
        let l4_len = (f.len() - 34) as u32;
        let seed = offload::wire::pseudo_header(&f[14..34], 6, l4_len)
            .unwrap()
            .fold();
        f[50..52].copy_from_slice(&seed.to_be_bytes());
        f
    };
    let partial = NetHeader {
        flags: hdr_flags::NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        ..Default::default()
    };
    // 1: a 60 000-byte coalesced packet with a partial checksum (spans many RX buffers).
    let big = seeded(with_ip_csum(tcp4(60_000)));
    m.dev.to_receive.push_back((
        NetHeader {
            gso_type: gso::TCPV4,
            gso_size: 1448,
            ..partial
        },
        big.clone(),
    ));
    // 2: a small packet with a partial checksum, odd length.
    let small = seeded(with_ip_csum(tcp4(501)));
    m.dev.to_receive.push_back((partial, small.clone()));
    // 3: a coalesced packet the device validated, its checksum field stale.
    let mut stale = with_ip_csum(tcp4(20_001));
    stale[50..52].copy_from_slice(&[0x12, 0x34]);
    m.dev.to_receive.push_back((
        NetHeader {
            flags: hdr_flags::DATA_VALID,
            gso_type: gso::TCPV4,
            gso_size: 1000,
            ..Default::default()
        },
        stale.clone(),
    ));
    // 4: NEEDS_CSUM with offsets into the Ethernet header: not trusted, left to the OS.
    m.dev.to_receive.push_back((
        NetHeader {
            csum_start: 2,
            ..partial
        },
        small.clone(),
    ));
    for _ in 0..200 {
        m.round(&mut Vec::new()).unwrap();
        if m.os_rx.frames.len() == 4 {
            break;
        }
    }
    let f = &m.os_rx.frames;
    assert_eq!(f.len(), 4);
    for (i, (frame, sent)) in f.iter().zip([&big, &small, &stale]).enumerate() {
        let l = offload::Layout::parse(&frame.bytes).unwrap();
        assert_eq!(
            offload::segment::verify_l4_checksum(&frame.bytes, &l),
            Some(true),
            "frame {i}: the checksum is complete"
        );
        // Only the checksum field changed.
        assert_eq!(frame.bytes[..50], sent[..50], "frame {i}");
        assert_eq!(frame.bytes[52..], sent[52..], "frame {i}");
        assert_eq!(frame.checksum.rx_layer4(), Some(Eval::Valid), "frame {i}");
        let parsed = etherparse::SlicedPacket::from_ethernet(&frame.bytes).unwrap();
        let Some(etherparse::TransportSlice::Tcp(t)) = parsed.transport else {
            panic!("frame {i}: TCP");
        };
        let etherparse::NetSlice::Ipv4(ip) = parsed.net.unwrap() else {
            panic!("frame {i}: IPv4");
        };
        assert_eq!(
            t.calc_checksum_ipv4(ip.header().source(), ip.header().destination())
                .unwrap(),
            t.checksum(),
            "frame {i}: etherparse agrees"
        );
    }
    assert_eq!(
        f[0].rsc.coalesced_segment_count,
        60_000u32.div_ceil(1448) as u16
    );
    assert_eq!(f[2].rsc.coalesced_segment_count, 21);
    // The untrusted offsets: bytes untouched, the OS verifies the checksum itself.
    assert_eq!(f[3].bytes, small);
    assert_eq!(f[3].checksum.rx_layer4(), Some(Eval::NotChecked));
    let s = m.rx.stats();
    assert_eq!(s.checksums_completed, 3);
    assert_eq!(s.checksum_offsets_bad, 1);
}

#[test]
fn receive_filter_and_control_commands_reach_the_device() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Channel,
        &UserSettings::default(),
        5,
    );
    let mcast = [0x01, 0, 0x5e, 0, 0, 7];
    let mut filt = RxFilter::new(
        MAC,
        PacketFilter(PacketFilter::DIRECTED | PacketFilter::MULTICAST),
    );
    assert!(filt.set_multicast(&[mcast]));
    assert!(
        m.adapter.set_receive_filter(&filt).is_none(),
        "the device filters everything itself"
    );
    assert!(m.adapter.set_vlan(42, true));
    assert!(m.adapter.set_guest_offloads(true, false));
    let mut progress = ControlProgress::Pending;
    for _ in 0..100 {
        progress = m.adapter.poll_control();
        if progress != ControlProgress::Pending {
            break;
        }
        m.dev.step(&m.ram);
    }
    assert_eq!(progress, ControlProgress::Idle { errors: 0 });
    let fs = m.dev.filter.clone();
    assert!(!fs.promisc && !fs.allmulti && fs.nobcast);
    assert_eq!(fs.multicast, vec![mcast]);
    assert_eq!(fs.vlans, vec![42]);
    assert_eq!(fs.guest_offloads, Some(Features::NET_GUEST_CSUM.bits()));
    // The device now drops broadcast and unknown multicast, delivers ours.
    let d = &mut m.dev;
    for dst in [[0xff; 6], [0x01, 0, 0x5e, 0, 0, 8], mcast, MAC] {
        d.to_receive
            .push_back((Default::default(), eth(dst, &[1; 50])));
    }
    for _ in 0..10 {
        m.round(&mut Vec::new()).unwrap();
    }
    assert_eq!(m.os_rx.frames.len(), 2);
    assert_eq!(m.dev.filtered, 2);
}

#[test]
fn link_flap_reaches_the_adapter() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        6,
    );
    assert!(m.adapter.link_up());
    m.dev.set_link(false);
    assert_eq!(m.adapter.config_changed().unwrap(), Some(false));
    assert_eq!(
        m.adapter.config_changed().unwrap(),
        None,
        "no change, no event"
    );
    m.dev.set_link(true);
    assert_eq!(m.adapter.config_changed().unwrap(), Some(true));
    // The trace: bring-up, capabilities, then exactly the two changes.
    let mut ev = Vec::new();
    m.adapter.drain_events(&mut ev);
    assert!(
        matches!(ev[0], Event::BringUp { queue_pairs: 1, msix: false, negotiated, .. }
        if negotiated == m.adapter.features().bits())
    );
    assert_eq!(ev[1], Event::Capabilities(*m.adapter.capabilities()));
    assert_eq!(
        ev[2..],
        [
            Event::LinkChanged { up: false },
            Event::LinkChanged { up: true }
        ]
    );
    m.adapter.drain_events(&mut ev);
    assert_eq!(ev.len(), 4, "drained once");
}

#[test]
fn a_misbehaving_device_is_reset_and_traffic_resumes() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        7,
    );
    let mut pending: Vec<TxFrame> = (0..50)
        .map(|i| TxFrame {
            bytes: eth(MAC, &[i as u8; 100]),
            ..Default::default()
        })
        .collect();
    for _ in 0..5 {
        m.round(&mut pending).unwrap();
    }
    let before = m.os_rx.frames.len();
    assert!(before > 0);
    m.dev.inject_fault(Fault::TxIdOutOfRange);
    pending.extend((0..5).map(|_| TxFrame {
        bytes: eth(MAC, &[0xee; 100]),
        ..Default::default()
    }));
    let mut fault = None;
    for _ in 0..10 {
        if let Err(e) = m.round(&mut pending) {
            fault = Some(e);
            break;
        }
    }
    assert!(
        fault.unwrap().contains("Device(DeviceIdOutOfRange"),
        "the fault is reported"
    );
    assert_eq!(m.tx.stats().device_faults, 1);
    // Recover: engines abandon what the device held, the adapter resets and restores.
    m.adapter.reset_device(&PLAN).expect("reset");
    m.tx.abandon_in_flight();
    m.rx.abandon_in_flight();
    let queues = [(0u16, m.rx.virtqueue()), (1u16, m.tx.virtqueue())];
    m.adapter.restore(&PLAN, &queues).expect("restore");
    let mut ev = Vec::new();
    m.adapter.drain_events(&mut ev);
    assert_eq!(
        ev[ev.len() - 2..],
        [Event::DeviceReset, Event::Restored { ok: true }],
        "the recovery is traced"
    );
    // The device model forgets its queues on reset and rebuilds them on DRIVER_OK.
    pending.extend((0..20).map(|i| TxFrame {
        bytes: eth(MAC, &[0x40 + i as u8; 100]),
        ..Default::default()
    }));
    for _ in 0..200 {
        m.round(&mut pending).unwrap();
    }
    let tail: Vec<u8> = m
        .os_rx
        .frames
        .iter()
        .rev()
        .take(20)
        .map(|f| f.bytes[14])
        .collect();
    assert_eq!(
        tail,
        (0x40..0x54).rev().collect::<Vec<u8>>(),
        "traffic after the reset arrives intact"
    );
    assert_eq!(
        m.os_tx.outstanding.len(),
        0,
        "every TX packet returned to the OS, none twice"
    );
}

#[test]
fn rx_device_fault_is_reported() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Channel,
        &UserSettings::default(),
        8,
    );
    m.round(&mut Vec::new()).unwrap();
    let d = &mut m.dev;
    d.inject_fault(Fault::RxLengthTooLarge);
    d.to_receive
        .push_back((Default::default(), eth(MAC, &[1; 100])));
    d.step(&m.ram);
    let rx = &mut m.rx;
    let r = m.os_rx.callback(|p, f| rx.advance(p, f));
    assert!(matches!(
        r,
        Err(RxFault::Device(
            virtio::queue::QueueError::DeviceLengthTooLarge { .. }
        ))
    ));
}

#[test]
fn pcap_recording_reads_back_with_pcap_file() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        9,
    );
    m.dev.record_pcap();
    let frames: Vec<Vec<u8>> = (0..5).map(|i| eth(MAC, &[i as u8; 80])).collect();
    let mut pending: Vec<TxFrame> = frames
        .iter()
        .map(|f| TxFrame {
            bytes: f.clone(),
            ..Default::default()
        })
        .collect();
    for _ in 0..20 {
        m.round(&mut pending).unwrap();
    }
    let pcap = m.dev.pcap().unwrap().to_vec();
    let mut r = pcap_file::pcap::PcapReader::new(std::io::Cursor::new(pcap)).unwrap();
    let mut got = Vec::new();
    while let Some(p) = r.next_packet() {
        got.push(p.unwrap().data.to_vec());
    }
    // Each frame is recorded when sent and again when looped back into the receive queue.
    assert_eq!(got.len(), 10);
    for f in &frames {
        assert_eq!(got.iter().filter(|g| *g == f).count(), 2);
    }
}

#[test]
fn surprise_removal_is_detected_and_stop_does_not_hang() {
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        10,
    );
    assert!(!m.adapter.is_removed());
    m.dev.model.with(|s| s.misbehave.removed = true);
    assert!(m.adapter.is_removed());
    assert!(
        !m.adapter.needs_reset(),
        "all-ones is removal, not NEEDS_RESET"
    );
    assert!(
        m.adapter.config_changed().is_err(),
        "config reads fail cleanly"
    );
    // The engines still return what they hold; the adapter stops without waiting on the device.
    let mut pending = vec![TxFrame {
        bytes: eth(MAC, &[1; 100]),
        ..Default::default()
    }];
    let _ = m.round(&mut pending);
    let Machine {
        ram,
        adapter,
        tx,
        rx,
        os_tx,
        ..
    } = m;
    tx.free(ram.arena());
    rx.free(ram.arena());
    assert!(adapter.stop(ram.arena(), 10).is_ok());
    assert_eq!(
        ram.arena().outstanding(),
        os_tx.held_buffers(),
        "only the OS's own frame buffers remain: the driver leaked no DMA memory"
    );
}

#[test]
fn event_log_keeps_the_newest_and_counts_what_it_dropped() {
    use virtionet::events::EventLog;
    let mut log = EventLog::default();
    let n = EventLog::CAPACITY + 5;
    for i in 0..n {
        log.push(Event::QueueFault {
            pair: i as u16,
            transmit: i % 2 == 0,
        });
    }
    assert_eq!((log.len(), log.dropped()), (EventLog::CAPACITY, 5));
    let mut ev = Vec::new();
    log.drain(&mut ev);
    let pairs: Vec<u16> = ev
        .iter()
        .map(|e| match e {
            Event::QueueFault { pair, .. } => *pair,
            _ => u16::MAX,
        })
        .collect();
    assert_eq!(
        pairs,
        (5..n as u16).collect::<Vec<_>>(),
        "oldest dropped, order kept"
    );
    assert!(log.is_empty());
}

/// What NetAdapterCx and the KMDF glue do across a power cycle (`driver/kmdf/`): the OS drains
/// and destroys both queues (TX engine released, its virtqueue given back; the RX engine and its
/// buffer pool stay), D0 exit resets the device, D0 entry restores it with the RX engine's
/// virtqueue, and the OS creates new queues over new rings. Traffic must resume intact, with no
/// buffer lost.
#[test]
fn a_power_cycle_as_the_glue_runs_it_keeps_every_buffer_and_traffic_resumes() {
    use virtionet::adapter::QueueSlot;
    use vnet_harness::os_rx::OsRx;
    use vnet_harness::os_tx::OsTx;
    use vnet_harness::sim::tx_engine;

    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Loopback,
        &UserSettings::default(),
        21,
    );
    let mut pending: Vec<TxFrame> = (0..40)
        .map(|i| TxFrame {
            bytes: eth(MAC, &[i as u8; 200]),
            ..Default::default()
        })
        .collect();
    for _ in 0..50 {
        m.round(&mut pending).unwrap();
    }
    assert!(pending.is_empty());
    assert_eq!(m.os_rx.frames.len(), 40);

    // Datapath stop: TX drains (Advance until the driver owns nothing), RX is cancelled and
    // Advance runs until the OS owns every packet and fragment; the stack returns its buffers.
    for _ in 0..50 {
        m.round(&mut Vec::new()).unwrap();
    }
    assert!(!m.os_tx.driver_owns_packets(), "TX drained");
    assert_eq!(m.os_tx.outstanding.len(), 0);
    let rx = &mut m.rx;
    m.os_rx.callback(|p, f| rx.cancel(p, f)).unwrap();
    m.os_rx.reclaim();
    for c in m.os_rx.held.drain(..) {
        m.rx.return_buffer(c);
    }
    assert_eq!(
        m.rx.buffers_with_os(),
        0,
        "the OS returned every receive buffer"
    );

    // Queue destruction: the TX engine gives its virtqueue back (nothing is in flight).
    let Machine {
        ram,
        dev,
        mut adapter,
        tx,
        mut rx,
        mut rng,
        tx_notifier,
        ..
    } = m;
    let vq = tx
        .release(ram.arena())
        .expect("an idle queue releases its virtqueue");
    adapter.give_back_tx(
        0,
        QueueSlot {
            vq,
            notifier: tx_notifier,
        },
    );

    // D0 exit and entry.
    adapter.reset_device(&PLAN).expect("reset");
    rx.abandon_in_flight();
    let rx_index = virtio::net::rx_queue_index(0);
    adapter
        .restore(&PLAN, &[(rx_index, rx.virtqueue())])
        .expect("restore");

    // New queues over new rings (new extension offsets): a new TX engine on the given-back
    // virtqueue, the same RX engine bound to the new RX queue's extensions.
    let mut os_tx = OsTx::new(64, 256, &mut rng);
    let mut os_rx = OsRx::new(128, 256, &mut rng);
    let slot = adapter
        .take_tx(0)
        .expect("the virtqueue is back with the adapter");
    let tx = tx_engine(&ram, &adapter, slot.vq, 64, os_tx.extensions(), 0);
    rx.set_extensions(os_rx.extensions());
    let mut m = Machine {
        ram,
        dev,
        adapter,
        tx,
        rx,
        os_tx,
        os_rx,
        rng,
        tx_notifier: slot.notifier,
        rx_gate: Default::default(),
        tx_gate: Default::default(),
    };
    let mut pending: Vec<TxFrame> = (0..60)
        .map(|i| TxFrame {
            bytes: eth(MAC, &[0x80 + i as u8; 300]),
            ..Default::default()
        })
        .collect();
    for _ in 0..100 {
        m.round(&mut pending).unwrap();
    }
    let got: Vec<(usize, u8)> = m
        .os_rx
        .frames
        .iter()
        .map(|f| (f.bytes.len(), f.bytes[14]))
        .collect();
    let want: Vec<(usize, u8)> = (0..60).map(|i| (314, 0x80 + i as u8)).collect();
    assert_eq!(
        got, want,
        "every frame after the power cycle, in order, intact"
    );
    assert_eq!(m.os_tx.outstanding.len(), 0);
    assert_eq!(m.tx.stats().device_faults + m.rx.stats().device_faults, 0);
    assert_eq!(m.rx.stats().bad_returns, 0);
}

/// A machine whose OS has posted four small frames the driver has not seen yet.
fn with_four_posted(seed: u64) -> Machine {
    with_four_posted_on(DEFAULT_FEATURES, seed)
}

fn with_four_posted_on(features: Features, seed: u64) -> Machine {
    let mut m = machine(features, Backend::Loopback, &UserSettings::default(), seed);
    for i in 0..4u8 {
        assert!(m.os_tx.post(
            m.ram.arena(),
            &TxFrame {
                bytes: eth(MAC, &[i; 100]),
                ..Default::default()
            }
        ));
    }
    m
}

#[test]
fn a_transmit_queue_with_packets_in_flight_is_not_released() {
    let mut m = with_four_posted(22);
    let tx = &mut m.tx;
    let r = m.os_tx.callback(|p, f| tx.advance(p, f)).unwrap();
    assert_eq!(r.posted, 4);
    // The device has not run: the chains are in flight, so the memory must stay with it.
    let Machine { tx, ram, .. } = m;
    assert!(tx.release(ram.arena()).is_none());
}

/// `VlanID` on a device without VLAN filtering (no VIRTIO_NET_F_CTRL_VLAN): the adapter hands the
/// filter to the receive engine, which drops other VLANs and keeps untagged frames and its own.
#[test]
fn the_adapters_vlan_is_filtered_in_software_when_the_device_cannot() {
    let mut m = machine(
        DEFAULT_FEATURES.difference(Features::NET_CTRL_VLAN),
        Backend::Channel,
        &UserSettings::default(),
        23,
    );
    let mut filt = RxFilter::new(
        MAC,
        PacketFilter(PacketFilter::DIRECTED | PacketFilter::BROADCAST),
    );
    filt.set_vlan(42, true);
    assert!(
        !m.adapter.set_vlan(42, true),
        "no CTRL_VLAN: the device cannot filter"
    );
    let software = m.adapter.set_receive_filter(&filt);
    assert_eq!(
        software.as_ref(),
        Some(&filt),
        "VLAN membership is left to the engine"
    );
    m.rx.set_filter(software);
    let tagged = |vid: u16, marker: u8| {
        let mut f = MAC.to_vec();
        f.extend_from_slice(&[2, 0, 0, 0, 0, 9]);
        f.extend_from_slice(&0x8100u16.to_be_bytes());
        f.extend_from_slice(&vid.to_be_bytes());
        f.extend_from_slice(&0x88b5u16.to_be_bytes());
        f.extend_from_slice(&[marker; 60]);
        f
    };
    for f in [
        tagged(42, 1),
        tagged(43, 2),
        eth(MAC, &[3; 60]),
        tagged(42, 4),
    ] {
        m.dev.to_receive.push_back((Default::default(), f));
    }
    for _ in 0..10 {
        m.round(&mut Vec::new()).unwrap();
    }
    let got: Vec<(u8, Option<u16>)> = m
        .os_rx
        .frames
        .iter()
        .map(|f| {
            let vid = (f.ieee8021q.vlan_identifier() != 0).then(|| f.ieee8021q.vlan_identifier());
            (*f.bytes.last().unwrap(), vid)
        })
        .collect();
    assert_eq!(got, vec![(1, Some(42)), (3, None), (4, Some(42))]);
    assert_eq!(m.rx.stats().filtered, 1);

    // With CTRL_VLAN the device filters VLANs, and nothing is left to software.
    let mut m = machine(
        DEFAULT_FEATURES,
        Backend::Channel,
        &UserSettings::default(),
        24,
    );
    assert!(m.adapter.set_vlan(42, true));
    assert!(m.adapter.set_receive_filter(&filt).is_none());
}

/// A device that misses its notification must not stall transmission for good: on the packed
/// ring (QEMU 7.2's event wrap bit, `tests/qemu.rs` packed_ring stalled about one run in five
/// before the guard), Advances that move nothing while chains are in flight kick anyway, on the
/// 2nd, 4th, 8th…; on the split ring, where QEMU never misses a kick it asked for, they do not.
#[test]
fn a_stalled_transmit_queue_kicks_again_with_backoff_on_the_packed_ring_only() {
    for (features, want, stall) in [
        (
            DEFAULT_FEATURES | Features::RING_PACKED,
            [true, false, true, false, true, false, false, false, true],
            3,
        ),
        (
            DEFAULT_FEATURES,
            [true, false, false, false, false, false, false, false, false],
            0,
        ),
    ] {
        let mut m = with_four_posted_on(features, 25);
        let mut kicks = Vec::new();
        for _ in 0..9 {
            // The device never runs: nothing completes.
            let tx = &mut m.tx;
            let r = m.os_tx.callback(|p, f| tx.advance(p, f)).unwrap();
            kicks.push(r.kicked);
        }
        assert_eq!(
            kicks, want,
            "the publishing kick, then on the packed ring 2, 4 and 8"
        );
        assert_eq!(m.tx.stats().stall_kicks, stall);
        // Once the device runs, the queue moves and the back-off starts over.
        for _ in 0..20 {
            m.round(&mut Vec::new()).unwrap();
        }
        assert_eq!(m.os_tx.outstanding.len(), 0);
        assert_eq!(
            m.tx.stats().stall_kicks,
            stall,
            "no stall kick while the queue moves"
        );
    }
}
