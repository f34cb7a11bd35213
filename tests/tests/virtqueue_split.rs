//! The driver's split virtqueue against rust-vmm's `virtio-queue` as the device.

use std::collections::HashMap;

use virtio::queue::{Layout, QueueConfig, Segment, VirtQueue};
use virtio_queue::QueueT;
use vnet_harness::device::{DeviceChain, SplitDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::rng::Rng;

fn cfg(size: u16, event_idx: bool, max_indirect: u16) -> QueueConfig {
    QueueConfig {
        size,
        layout: Layout::Split,
        event_idx,
        max_indirect,
    }
}

/// Random segments at distinct addresses so the device's view can be checked exactly.
fn segments(rng: &mut Rng, n: usize, base: u64) -> Vec<Segment> {
    (0..n)
        .map(|i| Segment {
            addr: base + i as u64 * 0x100 + rng.below(0x80),
            len: 1 + rng.below(2000) as u32,
        })
        .collect()
}

fn as_pairs(s: &[Segment]) -> Vec<(u64, u32)> {
    s.iter().map(|s| (s.addr, s.len)).collect()
}

struct Posted {
    readable: Vec<Segment>,
    writable: Vec<Segment>,
}

/// Posts random chains until the queue is full, lets rust-vmm consume them, completes them in a
/// random order, and reaps: the device sees exactly the segments posted, the driver gets exactly
/// the ids and lengths completed, and all descriptors come back.
fn exchange(size: u16, event_idx: bool, max_indirect: u16, rounds: usize, seed: u64) {
    let ram = GuestRam::new(8 << 20);
    let mut q = VirtQueue::new(ram.arena(), cfg(size, event_idx, max_indirect)).unwrap();
    let mut dev = SplitDevice::new(&ram, size, q.addresses(), event_idx);
    let mut rng = Rng::new(seed);
    let mut posted: HashMap<u16, Posted> = HashMap::new();
    let mut reaped = 0usize;
    for round in 0..rounds {
        let mut added = 0;
        loop {
            let nr = rng.below(3) as usize + usize::from(rng.below(4) == 0);
            let nw = rng.below(3) as usize;
            let (nr, nw) = match (nr + nw, q.can_add(nr + nw)) {
                (0, _) => continue,
                (_, true) => (nr, nw),
                // Full for this shape: a round always posts at least one single-segment chain.
                (_, false) if added == 0 && q.can_add(1) => {
                    (1 - (nw > 0) as usize, (nw > 0) as usize)
                }
                (_, false) => break,
            };
            let r = segments(&mut rng, nr, 0x10_0000 * (round as u64 % 7 + 1));
            let w = segments(&mut rng, nw, 0x90_0000);
            let id = q.add(&r, &w).unwrap();
            assert!(id < size);
            assert!(
                posted
                    .insert(
                        id,
                        Posted {
                            readable: r,
                            writable: w
                        }
                    )
                    .is_none(),
                "id {id} reused while in flight"
            );
            added += 1;
            if rng.below(8) == 0 {
                break;
            }
        }
        q.publish();
        let mut chains: Vec<DeviceChain> = dev.pop_all(&ram);
        assert_eq!(chains.len(), added, "device sees every published chain");
        for c in &chains {
            let p = &posted[&c.id];
            assert_eq!(
                c.readable,
                as_pairs(&p.readable),
                "readable segments of {}",
                c.id
            );
            assert_eq!(
                c.writable,
                as_pairs(&p.writable),
                "writable segments of {}",
                c.id
            );
        }
        // Out-of-order completion.
        for i in (1..chains.len()).rev() {
            chains.swap(i, rng.below(i as u64 + 1) as usize);
        }
        let mut expected = Vec::new();
        for c in &chains {
            let len = if c.writable_len() == 0 {
                0
            } else {
                rng.below(u64::from(c.writable_len()) + 1) as u32
            };
            dev.complete(&ram, c.id, len);
            expected.push((c.id, len));
        }
        let mut got = Vec::new();
        while let Some(u) = q.pop_used().unwrap() {
            got.push((u.id, u.len));
            posted.remove(&u.id).expect("completed id was in flight");
        }
        assert_eq!(
            got, expected,
            "completions in device order with device lengths"
        );
        reaped += got.len();
        assert_eq!(q.in_flight(), 0);
        assert_eq!(
            q.num_free(),
            size,
            "every descriptor returned to the free list"
        );
    }
    assert!(reaped >= rounds, "traffic flowed");
    q.free(ram.arena());
    assert_eq!(ram.arena().outstanding(), 0, "no DMA memory leaked");
}

#[test]
fn direct_chains_every_queue_size() {
    let mut size = 1u16;
    loop {
        exchange(size, false, 0, 40, u64::from(size));
        if size == 32768 {
            break;
        }
        size *= 2;
    }
}

#[test]
fn indirect_chains() {
    exchange(8, false, 8, 200, 7);
    exchange(256, true, 16, 200, 8);
    // A queue of one descriptor still carries multi-segment chains through indirect tables.
    exchange(1, false, 4, 200, 9);
}

#[test]
fn event_idx_exchange() {
    exchange(64, true, 0, 300, 10);
}

#[test]
fn wrap_around_over_100k_operations() {
    let ram = GuestRam::new(4 << 20);
    for (size, event_idx) in [(4u16, false), (16, true), (256, false)] {
        let mut q = VirtQueue::new(ram.arena(), cfg(size, event_idx, 0)).unwrap();
        let mut dev = SplitDevice::new(&ram, size, q.addresses(), event_idx);
        let mut ops = 0u32;
        let mut next_expected = Vec::new();
        while ops < 100_000 {
            let id = q
                .add(
                    &[Segment {
                        addr: 0x20_0000,
                        len: 64,
                    }],
                    &[Segment {
                        addr: 0x30_0000,
                        len: 128,
                    }],
                )
                .unwrap();
            next_expected.push(id);
            q.publish();
            let c = dev.pop(&ram).expect("chain");
            assert_eq!(c.id, id);
            dev.complete(&ram, c.id, ops % 129);
            let u = q.pop_used().unwrap().expect("used");
            assert_eq!((u.id, u.len), (id, ops % 129));
            ops += 1;
        }
        assert_eq!(
            dev.queue().next_used(),
            (100_000u32 % 65536) as u16,
            "u16 indices wrapped"
        );
        q.free(ram.arena());
    }
    assert_eq!(ram.arena().outstanding(), 0);
}

#[test]
fn kick_suppression_follows_the_device() {
    let ram = GuestRam::new(1 << 20);
    let seg = [Segment {
        addr: 0x2_0000,
        len: 10,
    }];
    // Without EVENT_IDX: the device's NO_NOTIFY flag.
    let mut q = VirtQueue::new(ram.arena(), cfg(16, false, 0)).unwrap();
    let mut dev = SplitDevice::new(&ram, 16, q.addresses(), false);
    q.add(&seg, &[]).unwrap();
    assert!(q.publish(), "kicks by default");
    assert!(!q.publish(), "nothing new: no kick");
    dev.disable_kicks(&ram);
    q.add(&seg, &[]).unwrap();
    assert!(!q.publish(), "device set NO_NOTIFY");
    dev.enable_kicks(&ram);
    q.add(&seg, &[]).unwrap();
    assert!(q.publish());
    q.free(ram.arena());

    // With EVENT_IDX: avail_event, written by rust-vmm when it re-enables notifications.
    let mut q = VirtQueue::new(ram.arena(), cfg(16, true, 0)).unwrap();
    let mut dev = SplitDevice::new(&ram, 16, q.addresses(), true);
    dev.enable_kicks(&ram); // avail_event = 0
    q.add(&seg, &[]).unwrap();
    q.add(&seg, &[]).unwrap();
    assert!(q.publish(), "batch [0,2) passes avail_event 0");
    q.add(&seg, &[]).unwrap();
    assert!(
        !q.publish(),
        "avail_event still 0: the device is already awake"
    );
    // The device drains and re-arms at its next_avail (3).
    assert_eq!(dev.pop_all(&ram).len(), 3);
    dev.enable_kicks(&ram);
    q.add(&seg, &[]).unwrap();
    assert!(q.publish(), "index 3 reached avail_event 3");
    q.free(ram.arena());
}

#[test]
fn interrupt_suppression_is_honoured_by_the_device() {
    let ram = GuestRam::new(1 << 20);
    let seg = [Segment {
        addr: 0x2_0000,
        len: 10,
    }];
    let w = [Segment {
        addr: 0x3_0000,
        len: 10,
    }];
    for event_idx in [false, true] {
        let mut q = VirtQueue::new(ram.arena(), cfg(16, event_idx, 0)).unwrap();
        let mut dev = SplitDevice::new(&ram, 16, q.addresses(), event_idx);
        q.add(&seg, &w).unwrap();
        q.add(&seg, &w).unwrap();
        q.add(&seg, &w).unwrap();
        q.publish();
        let chains = dev.pop_all(&ram);
        q.disable_notifications();
        assert!(
            !dev.complete(&ram, chains[0].id, 1),
            "suppressed (event_idx={event_idx})"
        );
        // Arming again reports the completion that arrived while disarmed (no lost wake-up).
        assert!(q.enable_notifications());
        assert!(q.has_used());
        assert!(q.pop_used().unwrap().is_some());
        assert!(!q.enable_notifications(), "nothing pending after the reap");
        assert!(
            dev.complete(&ram, chains[1].id, 1),
            "armed: interrupt (event_idx={event_idx})"
        );
        assert_eq!(q.pop_used().unwrap().map(|u| u.id), Some(chains[1].id));
        dev.complete(&ram, chains[2].id, 1);
        assert!(q.enable_notifications());
        q.free(ram.arena());
    }
}
