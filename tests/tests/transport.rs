//! The virtio-pci transport and virtio-net configuration against the register model.

use virtio::Features;
use virtio::hal::Dma;
use virtio::net::{Duplex, NetConfig};
use virtio::pci::{Capabilities, NO_VECTOR, Transport, TransportError, cfg_type, status};
use virtio::queue::QueueAddresses;
use vnet_harness::pci_model::{self, VirtioPciModel};

const OFFER: u64 = Features::VERSION_1.bits()
    | Features::NET_MAC.bits()
    | Features::NET_STATUS.bits()
    | Features::NET_MTU.bits()
    | Features::NET_CSUM.bits()
    | Features::RING_EVENT_IDX.bits()
    | Features::RING_RESET.bits();

fn net_config(mac: [u8; 6], status: u16, pairs: u16, mtu: u16) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[0..6].copy_from_slice(&mac);
    c[6..8].copy_from_slice(&status.to_le_bytes());
    c[8..10].copy_from_slice(&pairs.to_le_bytes());
    c[10..12].copy_from_slice(&mtu.to_le_bytes());
    c[12..16].copy_from_slice(&10_000u32.to_le_bytes());
    c[16] = 1;
    c
}

fn model() -> VirtioPciModel {
    VirtioPciModel::new(
        OFFER,
        3,
        256,
        4,
        net_config([0x52, 0x54, 0, 0x12, 0x34, 0x56], 1, 1, 1500),
    )
}

#[test]
fn capabilities_are_found_and_validated() {
    let m = model();
    let caps = Capabilities::read(&m, &&m).unwrap();
    assert_eq!(
        (caps.common.bar, caps.common.offset, caps.common.length),
        (4, 0, 0x40)
    );
    assert_eq!(
        (caps.notify.offset, caps.notify_off_multiplier),
        (pci_model::NOTIFY, 4)
    );
    assert_eq!(caps.isr.offset, pci_model::ISR);
    assert_eq!(
        caps.device.map(|d| (d.offset, d.length)),
        Some((pci_model::DEVICE, 24))
    );
    assert_eq!(caps.pci_cfg, Some(0x84));
    assert_eq!(caps.msix_vectors, Some(4));
}

#[test]
fn malformed_capability_lists_are_errors() {
    // A region that overruns its BAR.
    let m = model();
    m.with(|s| s.config_space[0x50 + 12..0x50 + 16].copy_from_slice(&0x2000u32.to_le_bytes()));
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::RegionOutsideBar {
            cfg_type: cfg_type::NOTIFY,
            bar: 4
        })
    );
    // A loop in the list.
    let m = model();
    m.with(|s| s.config_space[0x85] = 0x40);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::BadCapabilityList)
    );
    // A pointer into the header.
    let m = model();
    m.with(|s| s.config_space[0x34] = 0x10);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::BadCapabilityList)
    );
    // No notify capability (its type changed to an unknown one).
    let m = model();
    m.with(|s| s.config_space[0x53] = 9);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::MissingCapability(cfg_type::NOTIFY))
    );
    // A capability naming a BAR the function lacks is skipped, not trusted.
    let m = model();
    m.with(|s| s.config_space[0x44] = 2);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::MissingCapability(cfg_type::COMMON))
    );
    // No capability list at all.
    let m = model();
    m.with(|s| s.config_space[6] = 0);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::NoCapabilityList)
    );
    // Removed.
    let m = model();
    m.with(|s| s.misbehave.removed = true);
    assert_eq!(
        Capabilities::read(&m, &&m),
        Err(TransportError::SurpriseRemoved)
    );
}

#[test]
fn full_bring_up_sequence() {
    let m = model();
    let t = Transport::probe(&m, &m).unwrap();
    assert_eq!(t.num_queues(), 3);
    t.reset(10).unwrap();
    t.acknowledge();
    let wanted = Features::VERSION_1 | Features::NET_MAC | Features::NET_CSUM | Features::NET_MQ;
    let got = t.negotiate(wanted).unwrap();
    assert_eq!(
        got,
        Features::VERSION_1 | Features::NET_MAC | Features::NET_CSUM,
        "MQ not offered"
    );
    assert_eq!(m.with(|s| s.driver_features), got.bits());
    let addrs = QueueAddresses {
        desc: 0x1_2345_6000,
        driver: 0x1000,
        device: 0xffff_ffff_0000,
    };
    let n0 = t.setup_queue(0, 256, addrs, 1).unwrap();
    let n2 = t.setup_queue(2, 64, addrs, NO_VECTOR).unwrap();
    t.set_config_vector(0).unwrap();
    t.driver_ok();
    assert_eq!(
        t.status(),
        status::ACKNOWLEDGE | status::DRIVER | status::FEATURES_OK | status::DRIVER_OK
    );
    assert_eq!(m.with(|s| s.status_writes.clone()), vec![0, 1, 3, 11, 15]);
    let q0 = m.with(|s| s.queues[0]);
    assert_eq!((q0.size, q0.vector, q0.enable), (256, 1, 1));
    assert_eq!(
        (q0.desc, q0.driver, q0.device),
        (addrs.desc, addrs.driver, addrs.device)
    );
    assert_eq!(m.with(|s| s.queues[2].size), 64);
    assert_eq!(n0.location(), (4, pci_model::NOTIFY));
    assert_eq!(n2.location(), (4, pci_model::NOTIFY + 2 * 4));
    t.notify(&n2);
    t.notify(&n0);
    assert_eq!(m.with(|s| s.kicks.clone()), vec![2, 0]);
    m.with(|s| s.isr = 3);
    assert_eq!(t.read_isr(), 3);
    assert_eq!(t.read_isr(), 0, "read clears");
}

#[test]
fn negotiation_failures() {
    // Legacy-only device.
    let m = VirtioPciModel::new(Features::NET_MAC.bits(), 3, 256, 4, vec![0; 24]);
    let t = Transport::probe(&m, &m).unwrap();
    t.reset(10).unwrap();
    t.acknowledge();
    assert_eq!(t.negotiate(Features::all()), Err(TransportError::NotModern));
    assert_ne!(t.status() & status::FAILED, 0);
    // The device clears FEATURES_OK.
    let m = model();
    m.with(|s| s.misbehave.reject_features = true);
    let t = Transport::probe(&m, &m).unwrap();
    t.reset(10).unwrap();
    t.acknowledge();
    assert_eq!(
        t.negotiate(Features::VERSION_1),
        Err(TransportError::FeaturesRejected)
    );
    assert_ne!(t.status() & status::FAILED, 0);
}

#[test]
fn queue_setup_failures() {
    let m = model();
    m.with(|s| s.misbehave.max_vector = Some(2));
    let t = Transport::probe(&m, &m).unwrap();
    let a = QueueAddresses {
        desc: 0,
        driver: 0,
        device: 0,
    };
    assert_eq!(
        t.setup_queue(0, 512, a, 0),
        Err(TransportError::QueueTooLarge {
            size: 512,
            max: 256
        })
    );
    assert_eq!(
        t.setup_queue(3, 64, a, 0),
        Err(TransportError::QueueUnavailable(3))
    );
    assert_eq!(
        t.setup_queue(0, 64, a, 2),
        Err(TransportError::VectorRejected(2))
    );
    assert_eq!(
        t.set_config_vector(5),
        Err(TransportError::VectorRejected(5))
    );
    assert!(t.setup_queue(0, 64, a, 1).is_ok());
    // A notify offset beyond the notify region.
    m.with(|s| s.queues[1].notify_off = 0x400);
    assert_eq!(
        t.setup_queue(1, 64, a, 1),
        Err(TransportError::NotifyOutsideRegion(1))
    );
}

#[test]
fn reset_timeout_and_surprise_removal() {
    let m = model();
    m.with(|s| {
        s.status = 1;
        s.misbehave.stuck_reset = true;
    });
    let t = Transport::probe(&m, &m).unwrap();
    assert_eq!(t.reset(100), Err(TransportError::ResetTimeout));
    m.with(|s| s.misbehave.removed = true);
    assert!(t.is_removed());
    assert_eq!(t.reset(100), Err(TransportError::SurpriseRemoved));
    assert!(!t.needs_reset(), "all-ones is removal, not NEEDS_RESET");
    let m = model();
    m.with(|s| s.status = status::DEVICE_NEEDS_RESET | 15);
    let t = Transport::probe(&m, &m).unwrap();
    assert!(t.needs_reset());
}

#[test]
fn net_config_is_read_by_features_and_validated() {
    let m = model();
    let t = Transport::probe(&m, &m).unwrap();
    let f = Features::VERSION_1
        | Features::NET_MAC
        | Features::NET_STATUS
        | Features::NET_MTU
        | Features::NET_SPEED_DUPLEX;
    let c = NetConfig::read(&t, f).unwrap();
    assert_eq!(c.mac, Some([0x52, 0x54, 0, 0x12, 0x34, 0x56]));
    assert_eq!(c.status, Some(1));
    assert!(c.link_up());
    assert_eq!(c.mtu, Some(1500));
    assert_eq!(c.max_queue_pairs, None, "MQ not negotiated: field not read");
    assert_eq!((c.speed_mbps, c.duplex), (Some(10_000), Duplex::Full));
    // Without STATUS the link is up; without MAC there is no address.
    let c = NetConfig::read(&t, Features::VERSION_1).unwrap();
    assert!(c.link_up() && c.mac.is_none() && c.mtu.is_none());
    // Link down.
    m.change_config(6, &0u16.to_le_bytes());
    assert!(!NetConfig::read(&t, f).unwrap().link_up());
    // Invalid values.
    m.change_config(10, &60u16.to_le_bytes());
    assert!(NetConfig::read(&t, f).is_err(), "mtu 60");
    m.change_config(10, &9000u16.to_le_bytes());
    m.change_config(0, &[0x01, 0, 0, 0, 0, 1]);
    assert!(NetConfig::read(&t, f).is_err(), "multicast MAC");
    m.change_config(0, &[0x02, 0, 0, 0, 0, 1]);
    m.change_config(8, &0u16.to_le_bytes());
    assert!(
        NetConfig::read(&t, f | Features::NET_MQ).is_err(),
        "zero queue pairs"
    );
    assert_eq!(NetConfig::read(&t, f).unwrap().mtu, Some(9000));
}

#[test]
fn config_reads_retry_on_generation_change() {
    let m = model();
    let t = Transport::probe(&m, &m).unwrap();
    let f = Features::VERSION_1 | Features::NET_MAC | Features::NET_MTU;
    // The generation changes during the first three reads of the structure, then settles.
    m.with(|s| s.misbehave.unstable_config_reads = 3);
    assert_eq!(NetConfig::read(&t, f).unwrap().mtu, Some(1500));
    // A configuration that never settles.
    m.with(|s| s.misbehave.unstable_config_reads = 1_000);
    assert!(matches!(
        NetConfig::read(&t, f),
        Err(virtio::net::ConfigError::Transport(
            TransportError::ConfigUnstable
        ))
    ));
}

#[test]
fn dma_arena_hands_out_aligned_disjoint_regions() {
    // The arena used everywhere hands out aligned, zeroed, disjoint regions and takes them back.
    let ram = vnet_harness::dma::GuestRam::new(1 << 20);
    let a = ram.arena();
    let r1 = a.alloc(100, 4096).unwrap();
    let r2 = a.alloc(100, 64).unwrap();
    assert_eq!(r1.device() % 4096, 0);
    assert_eq!(r2.device() % 64, 0);
    assert!(r2.device() >= r1.device() + 100 || r1.device() >= r2.device() + 100);
    let before = a.free_bytes();
    a.free(r1);
    a.free(r2);
    assert_eq!(a.free_bytes(), before + 200);
    assert_eq!(a.outstanding(), 0);
    assert!(a.alloc(2 << 20, 8).is_none(), "larger than the arena");
}
