//! The driver's packed virtqueue against a packed-ring device written from the spec
//! (`vnet_harness::device::PackedDevice`, no code shared with the driver).

use std::collections::HashMap;

use virtio::queue::{Layout, QueueConfig, Segment, VirtQueue};
use vnet_harness::device::{DeviceChain, PackedDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::rng::Rng;

fn cfg(size: u16, event_idx: bool, max_indirect: u16) -> QueueConfig {
    QueueConfig {
        size,
        layout: Layout::Packed,
        event_idx,
        max_indirect,
    }
}

fn segments(rng: &mut Rng, n: usize, base: u64) -> Vec<Segment> {
    (0..n)
        .map(|i| Segment {
            addr: base + i as u64 * 0x100 + rng.below(0x80),
            len: 1 + rng.below(2000) as u32,
        })
        .collect()
}

fn pairs(s: &[Segment]) -> Vec<(u64, u32)> {
    s.iter().map(|s| (s.addr, s.len)).collect()
}

fn exchange(size: u16, event_idx: bool, max_indirect: u16, rounds: usize, seed: u64) {
    let ram = GuestRam::new(8 << 20);
    let a = ram.arena();
    let mut q = VirtQueue::new(a, cfg(size, event_idx, max_indirect)).unwrap();
    let mut dev = PackedDevice::new(size, q.addresses(), event_idx);
    let mut rng = Rng::new(seed);
    let mut posted: HashMap<u16, (Vec<Segment>, Vec<Segment>)> = HashMap::new();
    let mut total = 0usize;
    for _ in 0..rounds {
        let mut added = 0;
        loop {
            let nr = rng.below(3) as usize + usize::from(rng.below(4) == 0);
            let nw = rng.below(3) as usize;
            let (nr, nw) = match (nr + nw, q.can_add(nr + nw)) {
                (0, _) => continue,
                (_, true) => (nr, nw),
                (_, false) if added == 0 && q.can_add(1) => (1, 0),
                (_, false) => break,
            };
            let r = segments(&mut rng, nr, 0x10_0000);
            let w = segments(&mut rng, nw, 0x90_0000);
            let id = q.add(&r, &w).unwrap();
            assert!(id < size);
            assert!(
                posted.insert(id, (r, w)).is_none(),
                "id {id} reused while in flight"
            );
            added += 1;
            if rng.below(8) == 0 {
                break;
            }
        }
        // Nothing is visible before publish: the batch's first head is held back.
        assert!(dev.pop(a).is_none(), "chains visible before publish");
        q.publish();
        // The device may complete while it is still consuming: interleave.
        let mut seen: Vec<DeviceChain> = Vec::new();
        let mut got = Vec::new();
        let mut expected = Vec::new();
        while let Some(c) = dev.pop(a) {
            let (r, w) = &posted[&c.id];
            assert_eq!(c.readable, pairs(r), "readable segments of {}", c.id);
            assert_eq!(c.writable, pairs(w), "writable segments of {}", c.id);
            seen.push(c);
        }
        assert_eq!(seen.len(), added);
        // Packed used descriptors are written in completion order; any order is allowed.
        for i in (1..seen.len()).rev() {
            seen.swap(i, rng.below(i as u64 + 1) as usize);
        }
        for c in &seen {
            let len = rng.below(u64::from(c.writable_len()) + 1) as u32;
            dev.complete(a, c, len);
            expected.push((c.id, len));
            if rng.below(3) == 0 {
                while let Some(u) = q.pop_used().unwrap() {
                    got.push((u.id, u.len));
                }
            }
        }
        while let Some(u) = q.pop_used().unwrap() {
            got.push((u.id, u.len));
        }
        assert_eq!(got, expected);
        for (id, _) in &got {
            posted.remove(id).expect("in flight");
        }
        total += got.len();
        assert_eq!(q.num_free(), size);
        assert_eq!(q.in_flight(), 0);
    }
    assert!(total >= rounds);
    q.free(a);
    assert_eq!(a.outstanding(), 0);
}

#[test]
fn direct_chains_many_sizes() {
    // Packed queues need not be powers of two.
    for size in [1u16, 2, 3, 7, 16, 100, 256, 1000, 32768] {
        exchange(size, false, 0, 60, u64::from(size));
    }
}

#[test]
fn indirect_chains() {
    exchange(1, false, 8, 200, 1);
    exchange(5, true, 8, 200, 2);
    exchange(256, false, 32, 100, 3);
    // A multi-segment chain takes one ring slot when indirect.
    let ram = GuestRam::new(1 << 20);
    let mut q = VirtQueue::new(ram.arena(), cfg(4, false, 8)).unwrap();
    let s = [Segment {
        addr: 0x1_0000,
        len: 8,
    }; 3];
    q.add(&s, &s).unwrap();
    assert_eq!(q.num_free(), 3);
    q.free(ram.arena());
}

#[test]
fn event_idx_exchange() {
    exchange(64, true, 0, 300, 4);
    exchange(13, true, 0, 300, 5);
}

#[test]
fn wrap_around_over_100k_operations() {
    let ram = GuestRam::new(4 << 20);
    let a = ram.arena();
    for (size, nseg) in [(3u16, 2usize), (16, 3), (255, 1)] {
        let mut q = VirtQueue::new(a, cfg(size, false, 0)).unwrap();
        let mut dev = PackedDevice::new(size, q.addresses(), false);
        let segs = vec![
            Segment {
                addr: 0x20_0000,
                len: 64
            };
            nseg
        ];
        for op in 0..100_000u32 {
            let id = q
                .add(
                    &segs,
                    &[Segment {
                        addr: 0x30_0000,
                        len: 128,
                    }],
                )
                .unwrap();
            q.publish();
            let c = dev.pop(a).expect("chain");
            assert_eq!(c.id, id);
            assert_eq!(c.ring_descs as usize, nseg + 1);
            dev.complete(a, &c, op % 129);
            let u = q.pop_used().unwrap().expect("used");
            assert_eq!((u.id, u.len), (id, op % 129));
        }
        q.free(a);
    }
    assert_eq!(a.outstanding(), 0);
}

#[test]
fn kick_suppression_follows_the_device() {
    let ram = GuestRam::new(1 << 20);
    let a = ram.arena();
    let seg = [Segment {
        addr: 0x2_0000,
        len: 10,
    }];
    let mut q = VirtQueue::new(a, cfg(8, true, 0)).unwrap();
    let mut dev = PackedDevice::new(8, q.addresses(), true);
    q.add(&seg, &[]).unwrap();
    assert!(q.publish(), "ENABLE (0) by default: kick");
    dev.set_kick_suppression(a, 1, 0);
    q.add(&seg, &[]).unwrap();
    assert!(!q.publish(), "DISABLE");
    // DESC: kick when the descriptor at index 5 of the first lap is made available.
    dev.set_kick_suppression(a, 2, 5 | 1 << 15);
    q.add(&seg, &[]).unwrap(); // index 2
    assert!(!q.publish());
    q.add(&seg, &[]).unwrap(); // 3
    q.add(&seg, &[]).unwrap(); // 4
    q.add(&seg, &[]).unwrap(); // 5
    assert!(q.publish(), "batch [3, 6) contains event index 5");
    while let Some(c) = dev.pop(a) {
        dev.complete(a, &c, 0);
    }
    while q.pop_used().unwrap().is_some() {}
    // Event in the second lap (wrap bit 0): index 1 after wrapping.
    dev.set_kick_suppression(a, 2, 1);
    q.add(&seg, &[]).unwrap(); // 6
    q.add(&seg, &[]).unwrap(); // 7
    assert!(!q.publish());
    q.add(&seg, &[]).unwrap(); // 0, lap 2
    q.add(&seg, &[]).unwrap(); // 1, lap 2
    assert!(
        q.publish(),
        "wrapped batch reaches event 1 of the second lap"
    );
    q.free(a);
}

#[test]
fn interrupt_suppression_is_honoured_by_the_device() {
    let ram = GuestRam::new(1 << 20);
    let a = ram.arena();
    let r = [Segment {
        addr: 0x2_0000,
        len: 10,
    }];
    let w = [Segment {
        addr: 0x3_0000,
        len: 10,
    }];
    for event_idx in [false, true] {
        let mut q = VirtQueue::new(a, cfg(4, event_idx, 0)).unwrap();
        let mut dev = PackedDevice::new(4, q.addresses(), event_idx);
        for _ in 0..2 {
            q.add(&r, &w).unwrap();
        }
        q.publish();
        let c0 = dev.pop(a).unwrap();
        let c1 = dev.pop(a).unwrap();
        q.disable_notifications();
        dev.complete(a, &c0, 1);
        assert!(!dev.should_interrupt(a), "disabled (event_idx={event_idx})");
        assert!(
            q.enable_notifications(),
            "the re-check after arming finds the completion"
        );
        assert_eq!(q.pop_used().unwrap().map(|u| u.id), Some(c0.id));
        assert!(!q.enable_notifications());
        dev.complete(a, &c1, 1);
        assert!(dev.should_interrupt(a), "armed (event_idx={event_idx})");
        q.free(a);
    }
}
