//! The virtio-net control queue against rust-vmm's queue playing the device.

use virtio::Features;
use virtio::ctrl::{Command, ControlQueue, CtrlError, RxMode};
use virtio::queue::{Layout, QueueConfig, QueueError};
use vnet_harness::device::SplitDevice;
use vnet_harness::dma::GuestRam;

fn setup(ram: &GuestRam, features: Features) -> (ControlQueue, SplitDevice) {
    let cfg = QueueConfig {
        size: 16,
        layout: Layout::Split,
        event_idx: false,
        max_indirect: 0,
    };
    let mut cq = ControlQueue::new(ram.arena(), cfg, features).unwrap();
    let dev = SplitDevice::new(ram, 16, cq.queue().addresses(), false);
    (cq, dev)
}

const ALL: Features = Features::all();

#[test]
fn commands_reach_the_device_and_acks_complete_them() {
    let ram = GuestRam::new(1 << 20);
    let (mut cq, mut dev) = setup(&ram, ALL);
    assert!(cq.submit(&Command::VlanAdd(42)).unwrap(), "kick");
    assert!(cq.is_pending());
    assert_eq!(cq.poll(), None, "still running");
    assert_eq!(cq.submit(&Command::AnnounceAck), Err(CtrlError::Busy));
    let c = dev.pop(&ram).unwrap();
    assert_eq!(
        SplitDevice::gather(&ram, &c),
        vec![2, 0, 42, 0],
        "class VLAN, ADD, le16 42"
    );
    assert_eq!(c.writable.len(), 1);
    assert_eq!(c.writable[0].1, 1, "one ack byte");
    assert_eq!(SplitDevice::fill(&ram, &c, &[0]), 1);
    dev.complete(&ram, c.id, 1);
    assert_eq!(cq.poll(), Some(Ok(())));
    assert!(!cq.is_pending());

    cq.submit(&Command::RxMode(RxMode::Promisc, true)).unwrap();
    let c = dev.pop(&ram).unwrap();
    assert_eq!(SplitDevice::gather(&ram, &c), vec![0, 0, 1]);
    SplitDevice::fill(&ram, &c, &[1]);
    dev.complete(&ram, c.id, 1);
    assert_eq!(cq.poll(), Some(Err(CtrlError::Rejected)));
}

#[test]
fn a_completion_without_an_ack_is_caught() {
    let ram = GuestRam::new(1 << 20);
    let (mut cq, mut dev) = setup(&ram, ALL);
    cq.submit(&Command::MqPairsSet(2)).unwrap();
    let c = dev.pop(&ram).unwrap();
    dev.complete(&ram, c.id, 0);
    assert_eq!(cq.poll(), Some(Err(CtrlError::BadAck(0xff))));
    // The next command works.
    cq.submit(&Command::GuestOffloadsSet(3)).unwrap();
    let c = dev.pop(&ram).unwrap();
    SplitDevice::fill(&ram, &c, &[0]);
    dev.complete(&ram, c.id, 1);
    assert_eq!(cq.poll(), Some(Ok(())));
}

#[test]
fn unsupported_and_invalid_commands_never_reach_the_device() {
    let ram = GuestRam::new(1 << 20);
    let (mut cq, mut dev) = setup(&ram, Features::NET_CTRL_VQ | Features::NET_CTRL_RX);
    assert_eq!(
        cq.submit(&Command::VlanAdd(1)),
        Err(CtrlError::Unsupported(Features::NET_CTRL_VLAN))
    );
    assert!(matches!(
        cq.submit(&Command::RxMode(RxMode::NoBcast, true)),
        Err(CtrlError::Unsupported(_))
    ));
    assert!(cq.submit(&Command::RxMode(RxMode::AllMulti, true)).is_ok());
    assert_eq!(dev.pop_all(&ram).len(), 1);
    let (mut cq, mut dev) = setup(&ram, ALL);
    assert!(matches!(
        cq.submit(&Command::VlanDel(5000)),
        Err(CtrlError::InvalidArgument(_))
    ));
    assert!(!cq.is_pending());
    assert!(dev.pop(&ram).is_none());
}

#[test]
fn a_device_fault_is_reported_and_reset_recovers() {
    let ram = GuestRam::new(1 << 20);
    let (mut cq, mut dev) = setup(&ram, ALL);
    cq.submit(&Command::AnnounceAck).unwrap();
    let c = dev.pop(&ram).unwrap();
    dev.complete(&ram, c.id, 64); // longer than the 1-byte ack buffer
    assert!(matches!(
        cq.poll(),
        Some(Err(CtrlError::Queue(QueueError::DeviceLengthTooLarge {
            len: 64,
            max: 1,
            ..
        })))
    ));
    assert!(cq.queue().is_broken());
    cq.reset();
    let mut dev = SplitDevice::new(&ram, 16, cq.queue().addresses(), false);
    cq.submit(&Command::AnnounceAck).unwrap();
    let c = dev.pop(&ram).unwrap();
    SplitDevice::fill(&ram, &c, &[0]);
    dev.complete(&ram, c.id, 1);
    assert_eq!(cq.poll(), Some(Ok(())));
    cq.free(ram.arena());
    assert_eq!(ram.arena().outstanding(), 0);
}
