//! A device that breaks the virtio contract: every violation is a typed error that marks the
//! queue broken; nothing panics, nothing is freed twice, and a reset recovers.

use virtio::queue::{Layout, QueueConfig, QueueError, Segment, VirtQueue};
use vnet_harness::device::{PackedDevice, SplitDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::fuzzing::reap_with_device_writes;
use vnet_harness::rng::Rng;

const R: [Segment; 1] = [Segment {
    addr: 0x2_0000,
    len: 10,
}];
const W: [Segment; 1] = [Segment {
    addr: 0x3_0000,
    len: 100,
}];

fn split(ram: &GuestRam, size: u16) -> VirtQueue {
    VirtQueue::new(
        ram.arena(),
        QueueConfig {
            size,
            layout: Layout::Split,
            event_idx: false,
            max_indirect: 0,
        },
    )
    .unwrap()
}

fn packed(ram: &GuestRam, size: u16) -> VirtQueue {
    VirtQueue::new(
        ram.arena(),
        QueueConfig {
            size,
            layout: Layout::Packed,
            event_idx: false,
            max_indirect: 0,
        },
    )
    .unwrap()
}

/// Writes used element `slot` and then used.idx of a split queue, as a rogue device would.
fn split_used(ram: &GuestRam, q: &VirtQueue, slot: u16, id: u32, len: u32, idx: u16) {
    let used = q.addresses().device;
    let a = ram.arena();
    let e = used + 4 + 8 * u64::from(slot);
    assert!(a.write(e, &id.to_le_bytes()));
    assert!(a.write(e + 4, &len.to_le_bytes()));
    assert!(a.write(used + 2, &idx.to_le_bytes()));
}

fn assert_broken(q: &mut VirtQueue) {
    assert!(q.is_broken());
    assert_eq!(q.pop_used(), Err(QueueError::Broken));
    assert_eq!(q.add(&R, &W), Err(QueueError::Broken));
    assert!(!q.has_used());
}

#[test]
fn split_used_id_out_of_range() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, 8, 0, 1);
    assert_eq!(q.pop_used(), Err(QueueError::DeviceIdOutOfRange { id: 8 }));
    assert_broken(&mut q);
    split_used(&ram, &q, 0, 0x1_0000, 0, 1);
    assert_eq!(q.pop_used(), Err(QueueError::Broken));
}

#[test]
fn split_used_id_not_in_flight_or_not_a_head() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    // A 2-descriptor chain: head 0, second descriptor 1. Id 1 is not a head.
    let id = q.add(&R, &W).unwrap();
    assert_eq!(id, 0);
    q.publish();
    split_used(&ram, &q, 0, 1, 0, 1);
    assert_eq!(q.pop_used(), Err(QueueError::DeviceIdNotInFlight { id: 1 }));
    assert_broken(&mut q);
}

#[test]
fn split_same_id_completed_twice() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    let mut dev = SplitDevice::new(&ram, 8, q.addresses(), false);
    let a = q.add(&R, &W).unwrap();
    q.add(&R, &W).unwrap();
    q.publish();
    dev.pop_all(&ram);
    dev.complete(&ram, a, 5);
    dev.complete(&ram, a, 5); // reuse of an id that is no longer in flight
    assert_eq!(q.pop_used().unwrap().map(|u| u.id), Some(a));
    assert_eq!(
        q.pop_used(),
        Err(QueueError::DeviceIdNotInFlight { id: u32::from(a) })
    );
    assert_broken(&mut q);
    // The free list was not corrupted: after a reset, everything is free exactly once.
    let mut abandoned = Vec::new();
    q.reset(|id| abandoned.push(id));
    assert_eq!(abandoned.len(), 1);
    assert_eq!(q.num_free(), 8);
    assert!(!q.is_broken());
}

#[test]
fn split_used_length_larger_than_posted() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    let id = q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, u32::from(id), 101, 1);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::DeviceLengthTooLarge {
            id,
            len: 101,
            max: 100
        })
    );
    assert_broken(&mut q);
}

#[test]
fn split_used_index_jump() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    q.add(&R, &W).unwrap();
    q.add(&R, &W).unwrap();
    q.publish();
    // Two in flight; the device claims three completions.
    split_used(&ram, &q, 0, 0, 0, 3);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::DeviceIndexJump {
            last: 0,
            published: 3
        })
    );
    assert_broken(&mut q);
    // A jump backwards is a jump by ~65535.
    let mut q = split(&ram, 8);
    q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, 0, 0, 0xffff);
    assert!(matches!(
        q.pop_used(),
        Err(QueueError::DeviceIndexJump { .. })
    ));
}

#[test]
fn packed_violations() {
    let ram = GuestRam::new(1 << 20);
    let a = ram.arena();
    // Out of range id.
    let mut q = packed(&ram, 4);
    let mut dev = PackedDevice::new(4, q.addresses(), false);
    q.add(&R, &W).unwrap();
    q.publish();
    let mut c = dev.pop(a).unwrap();
    c.id = 4;
    dev.complete(a, &c, 0);
    assert_eq!(q.pop_used(), Err(QueueError::DeviceIdOutOfRange { id: 4 }));
    assert_broken(&mut q);

    // Not in flight (an id never posted).
    let mut q = packed(&ram, 4);
    let mut dev = PackedDevice::new(4, q.addresses(), false);
    let id = q.add(&R, &W).unwrap();
    q.publish();
    let mut c = dev.pop(a).unwrap();
    c.id = (id + 1) % 4;
    dev.complete(a, &c, 0);
    assert!(matches!(
        q.pop_used(),
        Err(QueueError::DeviceIdNotInFlight { .. })
    ));
    assert_broken(&mut q);

    // Too long.
    let mut q = packed(&ram, 4);
    let mut dev = PackedDevice::new(4, q.addresses(), false);
    let id = q.add(&R, &W).unwrap();
    q.publish();
    let c = dev.pop(a).unwrap();
    dev.complete(a, &c, 1000);
    assert_eq!(
        q.pop_used(),
        Err(QueueError::DeviceLengthTooLarge {
            id,
            len: 1000,
            max: 100
        })
    );
    assert_broken(&mut q);

    // A "used" descriptor with nothing in flight.
    let mut q = packed(&ram, 4);
    let d = q.addresses().desc;
    assert!(a.write(d + 12, &0u16.to_le_bytes()));
    assert!(a.write(d + 14, &0x8080u16.to_le_bytes()));
    assert_eq!(q.pop_used(), Err(QueueError::DeviceIdNotInFlight { id: 0 }));
}

#[test]
fn reset_after_fault_recovers_with_a_fresh_device() {
    let ram = GuestRam::new(1 << 20);
    let mut q = split(&ram, 8);
    for _ in 0..3 {
        q.add(&R, &W).unwrap();
    }
    q.publish();
    split_used(&ram, &q, 0, 99, 0, 1);
    assert!(q.pop_used().is_err());
    let mut abandoned = Vec::new();
    q.reset(|id| abandoned.push(id));
    abandoned.sort_unstable();
    assert_eq!(abandoned, vec![0, 2, 4]);
    // The rings were zeroed; a new device instance works from scratch.
    let mut dev = SplitDevice::new(&ram, 8, q.addresses(), false);
    let id = q.add(&R, &W).unwrap();
    q.publish();
    let c = dev.pop(&ram).unwrap();
    assert_eq!(c.id, id);
    dev.complete(&ram, id, 7);
    assert_eq!(q.pop_used().unwrap().map(|u| (u.id, u.len)), Some((id, 7)));
    q.free(ram.arena());
    assert_eq!(ram.arena().outstanding(), 0);
}

/// Bounded smoke run of the `virtqueue_reap` fuzz target's body on random inputs.
#[test]
fn fuzz_smoke_reap_with_device_writes() {
    let ram = GuestRam::new(2 << 20);
    let mut rng = Rng::new(0xf022);
    let runs = if cfg!(miri) { 20 } else { 3000 };
    for _ in 0..runs {
        let len = rng.below(400) as usize;
        let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
        reap_with_device_writes(&ram, &data);
    }
    assert_eq!(ram.arena().outstanding(), 0);
}

/// `drain_used` (the engines' batched reap) refuses what `pop_used` refuses, with the same
/// error, after handing over the good entries before the bad one; the queue is broken after.
#[test]
fn split_drain_used_refuses_every_violation_like_pop_used() {
    let ram = GuestRam::new(1 << 20);
    let mut got = Vec::new();
    // A good completion, then an id out of range.
    let mut q = split(&ram, 8);
    let a = q.add(&R, &W).unwrap();
    q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, u32::from(a), 7, 1);
    split_used(&ram, &q, 1, 8, 0, 2);
    assert_eq!(
        q.drain_used(|u| got.push((u.id, u.len))),
        Err(QueueError::DeviceIdOutOfRange { id: 8 })
    );
    assert_eq!(got, [(a, 7)]);
    assert_broken(&mut q);
    assert_eq!(q.drain_used(|_| ()), Err(QueueError::Broken));
    // The same id twice.
    let mut q = split(&ram, 8);
    let a = q.add(&R, &W).unwrap();
    q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, u32::from(a), 0, 1);
    split_used(&ram, &q, 1, u32::from(a), 0, 2);
    assert_eq!(
        q.drain_used(|_| ()),
        Err(QueueError::DeviceIdNotInFlight { id: u32::from(a) })
    );
    assert_broken(&mut q);
    // More bytes than the chain can take.
    let mut q = split(&ram, 8);
    let a = q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, u32::from(a), 101, 1);
    assert_eq!(
        q.drain_used(|_| ()),
        Err(QueueError::DeviceLengthTooLarge {
            id: a,
            len: 101,
            max: 100
        })
    );
    assert_broken(&mut q);
    // More completions than chains in flight.
    let mut q = split(&ram, 8);
    q.add(&R, &W).unwrap();
    q.publish();
    split_used(&ram, &q, 0, 0, 0, 2);
    assert_eq!(
        q.drain_used(|_| ()),
        Err(QueueError::DeviceIndexJump {
            last: 0,
            published: 2
        })
    );
    assert_broken(&mut q);
}

/// On a well-behaved device `drain_used` returns what `pop_used` would, in order, and leaves
/// the queue as `pop_used` does: every descriptor free again, `used_event` at the last entry.
#[test]
fn split_drain_used_matches_pop_used() {
    let ram = GuestRam::new(1 << 20);
    let mk = || {
        VirtQueue::new(
            ram.arena(),
            QueueConfig {
                size: 16,
                layout: Layout::Split,
                event_idx: true,
                max_indirect: 0,
            },
        )
        .unwrap()
    };
    let (mut p, mut d) = (mk(), mk());
    let mut rng = Rng::new(7);
    for round in 0..50 {
        let n = 1 + rng.below(8) as u16; // two descriptors a chain, 16 in the ring
        let mut heads = [Vec::new(), Vec::new()];
        for (q, h) in [&mut p, &mut d].into_iter().zip(&mut heads) {
            for _ in 0..n {
                h.push(q.add(&R, &W).unwrap());
            }
            q.publish();
        }
        assert_eq!(heads[0], heads[1], "same operations, same ids");
        // The device completes every chain, in a shuffled order, with lengths up to 100.
        let mut ids = heads[0].clone();
        for i in (1..ids.len()).rev() {
            ids.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let lens: Vec<u32> = ids.iter().map(|_| rng.below(101) as u32).collect();
        let mut by_pop = Vec::new();
        let mut by_drain = Vec::new();
        for q in [&p, &d] {
            let used = q.addresses().device;
            let base = u16::from_le_bytes({
                let mut b = [0; 2];
                assert!(ram.arena().read(used + 2, &mut b));
                b
            });
            for (k, (&id, &len)) in ids.iter().zip(&lens).enumerate() {
                let slot = base.wrapping_add(k as u16) % 16;
                split_used(
                    &ram,
                    q,
                    slot,
                    u32::from(id),
                    len,
                    base.wrapping_add(k as u16 + 1),
                );
            }
        }
        while let Some(u) = p.pop_used().unwrap() {
            by_pop.push((u.id, u.len));
        }
        let n_drained = d.drain_used(|u| by_drain.push((u.id, u.len))).unwrap();
        assert_eq!(by_pop, by_drain, "round {round}");
        assert_eq!(n_drained as usize, by_drain.len());
        assert_eq!((p.num_free(), p.in_flight()), (d.num_free(), d.in_flight()));
        assert_eq!(d.drain_used(|_| ()), Ok(0));
        for q in [&p, &d] {
            let a = q.addresses();
            let mut ev = [0; 2];
            assert!(ram.arena().read(a.driver + 4 + 2 * 16, &mut ev));
            let mut idx = [0; 2];
            assert!(ram.arena().read(a.device + 2, &mut idx));
            assert_eq!(ev, idx, "used_event at the last entry");
        }
    }
}
