//! Model-based property tests: random sequences of driver and device events on both ring layouts,
//! checked after every step against a reference model of what must be true.

use std::collections::{HashMap, VecDeque};

use proptest::prelude::*;
use virtio::queue::{Layout, QueueConfig, Segment, VirtQueue};
use vnet_harness::device::{DeviceChain, PackedDevice, SplitDevice};
use vnet_harness::dma::GuestRam;

#[derive(Debug, Clone)]
enum Op {
    Add { readable: u8, writable: u8 },
    Publish,
    DeviceTake(u8),
    DeviceComplete { pick: u8, frac: u8 },
    Reap(u8),
    Arm,
    Disarm,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0u8..4, 0u8..3).prop_map(|(readable, writable)| Op::Add { readable, writable }),
        2 => Just(Op::Publish),
        2 => (1u8..8).prop_map(Op::DeviceTake),
        3 => (any::<u8>(), any::<u8>()).prop_map(|(pick, frac)| Op::DeviceComplete { pick, frac }),
        2 => (1u8..8).prop_map(Op::Reap),
        1 => Just(Op::Arm),
        1 => Just(Op::Disarm),
    ]
}

enum Dev {
    Split(SplitDevice),
    Packed(PackedDevice),
}

/// The model: what the driver posted (by id, with ring descriptors and writable bytes), what the
/// device holds, and the completions in the order the device wrote them.
#[derive(Default)]
struct Model {
    in_flight: HashMap<u16, (u16, u32)>,
    unpublished: usize,
    published: usize,
    held: Vec<DeviceChain>,
    completions: VecDeque<(u16, u32)>,
}

fn run(layout: Layout, size: u16, event_idx: bool, max_indirect: u16, ops: Vec<Op>) {
    let ram = GuestRam::new(2 << 20);
    let a = ram.arena();
    let config = QueueConfig {
        size,
        layout,
        event_idx,
        max_indirect,
    };
    let mut q = VirtQueue::new(a, config).unwrap();
    let mut dev = match layout {
        Layout::Split => Dev::Split(SplitDevice::new(&ram, size, q.addresses(), event_idx)),
        Layout::Packed => Dev::Packed(PackedDevice::new(size, q.addresses(), event_idx)),
    };
    let mut m = Model::default();
    let mut n = 0u32;
    for op in ops {
        match op {
            Op::Add { readable, writable } => {
                let total = usize::from(readable + writable);
                let free: u16 = size - m.in_flight.values().map(|v| v.0).sum::<u16>();
                // The queue's policy: direct while short and there is room, else indirect.
                let indirect_ok =
                    max_indirect > 1 && total > 1 && total <= usize::from(max_indirect);
                let direct_ok = total <= usize::from(size);
                let descs = if indirect_ok
                    && (total > virtio::queue::DIRECT_MAX
                        || total > usize::from(free)
                        || !direct_ok)
                {
                    1
                } else {
                    total
                };
                let fits = total > 0
                    && descs <= usize::from(size)
                    && descs <= usize::from(free)
                    && m.in_flight.len() < usize::from(size);
                assert_eq!(q.can_add(total), fits, "can_add({total}) with {free} free");
                let r: Vec<_> = (0..readable)
                    .map(|i| Segment {
                        addr: 0x1_0000 + u64::from(i),
                        len: 10,
                    })
                    .collect();
                let w: Vec<_> = (0..writable)
                    .map(|i| Segment {
                        addr: 0x2_0000 + u64::from(i) * 64,
                        len: 32 + n,
                    })
                    .collect();
                match q.add(&r, &w) {
                    Ok(id) => {
                        assert!(fits);
                        assert!(
                            m.in_flight
                                .insert(id, (descs as u16, u32::from(writable) * (32 + n)))
                                .is_none()
                        );
                        m.unpublished += 1;
                    }
                    Err(e) => assert!(!fits, "add failed with room: {e:?}"),
                }
                n += 1;
            }
            Op::Publish => {
                q.publish();
                m.published += m.unpublished;
                m.unpublished = 0;
            }
            Op::DeviceTake(k) => {
                for _ in 0..k {
                    let c = match &mut dev {
                        Dev::Split(d) => d.pop(&ram),
                        Dev::Packed(d) => d.pop(a),
                    };
                    match c {
                        Some(c) => {
                            assert!(m.published > 0, "device saw an unpublished chain");
                            m.published -= 1;
                            assert!(m.in_flight.contains_key(&c.id));
                            m.held.push(c);
                        }
                        None => {
                            assert_eq!(m.published, 0, "published chain invisible to the device");
                            break;
                        }
                    }
                }
            }
            Op::DeviceComplete { pick, frac } => {
                if m.held.is_empty() {
                    continue;
                }
                let c = m.held.remove(usize::from(pick) % m.held.len());
                let len = (u64::from(c.writable_len()) * u64::from(frac) / 255) as u32;
                match &mut dev {
                    Dev::Split(d) => {
                        d.complete(&ram, c.id, len);
                    }
                    Dev::Packed(d) => d.complete(a, &c, len),
                }
                m.completions.push_back((c.id, len));
            }
            Op::Reap(k) => {
                for _ in 0..k {
                    let got = q.pop_used().unwrap();
                    let want = m.completions.pop_front();
                    assert_eq!(got.map(|u| (u.id, u.len)), want);
                    if let Some((id, len)) = want {
                        let (_, writable) = m.in_flight.remove(&id).unwrap();
                        assert!(len <= writable);
                    } else {
                        break;
                    }
                }
            }
            Op::Arm => {
                let pending = q.enable_notifications();
                assert_eq!(pending, !m.completions.is_empty(), "arm re-check");
            }
            Op::Disarm => q.disable_notifications(),
        }
        let used: u16 = m.in_flight.values().map(|v| v.0).sum();
        assert_eq!(q.num_free(), size - used);
        assert_eq!(usize::from(q.in_flight()), m.in_flight.len());
        assert_eq!(q.has_used(), !m.completions.is_empty());
        assert!(!q.is_broken());
    }
    q.free(a);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn split_matches_model(size_log in 0u32..6, event_idx: bool, indirect: bool,
                           ops in prop::collection::vec(op(), 1..300)) {
        run(Layout::Split, 1 << size_log, event_idx, if indirect { 4 } else { 0 }, ops);
    }

    #[test]
    fn packed_matches_model(size in 1u16..40, event_idx: bool, indirect: bool,
                            ops in prop::collection::vec(op(), 1..300)) {
        run(Layout::Packed, size, event_idx, if indirect { 4 } else { 0 }, ops);
    }
}
