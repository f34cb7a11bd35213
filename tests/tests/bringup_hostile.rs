//! Bring-up against a device that lies: values in or at the edge of the spec's ranges that the
//! driver's arithmetic must survive (issue 16), through `Adapter::start` and `restore` over the
//! virtio-pci register model, which records every queue the driver enables.

use virtio::Features;
use virtionet::adapter::{Adapter, BringUp};
use virtionet::config::UserSettings;
use vnet_harness::dma::GuestRam;
use vnet_harness::pci_model::VirtioPciModel;

const PLAN: BringUp = BringUp {
    reset_polls: 10,
    max_queue_size: 64,
    queue_pairs: 4,
    msix_messages: 0,
    random_mac: [2, 0, 0, 0, 0, 7],
    pairs_need_rss: false,
};

fn net_config(pairs: u16) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[0..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    c[6..8].copy_from_slice(&1u16.to_le_bytes());
    c[8..10].copy_from_slice(&pairs.to_le_bytes());
    c[10..12].copy_from_slice(&1500u16.to_le_bytes());
    c
}

fn assert_no_queue_twice(m: &VirtioPciModel) {
    let enabled = m.with(|s| s.enabled.clone());
    let mut seen = std::collections::HashSet::new();
    for q in &enabled {
        assert!(
            seen.insert(*q),
            "queue {q} programmed twice since the last reset: {enabled:?}"
        );
    }
}

#[test]
fn max_virtqueue_pairs_0x8000_does_not_overflow_the_control_queue_index() {
    // 0x8000 is the largest value the spec allows; the control queue would be queue 0x10000,
    // which no u16 queue_select can name.
    let features = Features::VERSION_1
        | Features::NET_MAC
        | Features::NET_STATUS
        | Features::NET_MQ
        | Features::NET_CTRL_VQ;
    let m = VirtioPciModel::new(features.bits(), 9, 256, 0, net_config(0x8000));
    let ram = GuestRam::new(16 << 20);
    let a = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &PLAN)
        .expect("the device is usable without multi-queue");
    assert_no_queue_twice(&m);
    assert_eq!(a.queue_pairs(), 1);
    assert!(
        !a.features()
            .intersects(Features::NET_MQ | Features::NET_RSS),
        "multi-queue is refused: its control queue cannot be addressed"
    );
    assert!(a.features().contains(Features::NET_CTRL_VQ));
    // The control queue is queue 2 (after the one pair), not queue 0 wrapped around.
    assert_eq!(m.with(|s| s.enabled.clone()), vec![0, 1, 2]);
    let desc0 = m.with(|s| s.queues[0].desc);
    let desc2 = m.with(|s| s.queues[2].desc);
    assert_ne!(desc0, desc2);
    a.stop(ram.arena(), 10).unwrap();
    assert_eq!(ram.arena().outstanding(), 0, "every DMA region freed");
}

#[test]
fn the_largest_addressable_pair_count_still_works() {
    // 0x7fff pairs put the control queue at 0xfffe: addressable, so MQ is kept.
    let features =
        Features::VERSION_1 | Features::NET_MAC | Features::NET_MQ | Features::NET_CTRL_VQ;
    let m = VirtioPciModel::new(features.bits(), 0xffff, 256, 16, net_config(0x7fff));
    // All queues share one notify address (the notify area holds 1024 of them).
    m.with(|s| s.queues.iter_mut().for_each(|q| q.notify_off = 0));
    let ram = GuestRam::new(16 << 20);
    let plan = BringUp {
        msix_messages: 16,
        ..PLAN
    };
    let a = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &plan).unwrap();
    assert_no_queue_twice(&m);
    assert!(a.features().contains(Features::NET_MQ));
    assert_eq!(a.queue_pairs(), 4);
    assert_eq!(
        m.with(|s| s.enabled.clone()),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 0xfffe]
    );
    a.stop(ram.arena(), 10).unwrap();
    assert_eq!(ram.arena().outstanding(), 0);
}
