//! Fuzz bodies shared by the `cargo fuzz` targets (fuzz/) and the bounded smoke runs in the test
//! suite, so the suite exercises exactly what the fuzzer does.

use std::collections::HashSet;

use virtio::queue::{Layout, QueueConfig, QueueError, Segment, VirtQueue};

use crate::dma::GuestRam;

/// Reaping with arbitrary device writes: the driver posts chains, then the input scribbles over
/// the ring memory the device may write (and more), interleaved with `pop_used`. Whatever the
/// bytes, the queue must not panic, must only ever return ids that are in flight, once each,
/// with lengths within what was posted, must stay broken after a fault, and after a reset must
/// hand back every chain it did not complete, exactly once.
pub fn reap_with_device_writes(ram: &GuestRam, data: &[u8]) {
    let Some((&head, mut rest)) = data.split_first() else {
        return;
    };
    let layout = if head & 1 == 0 {
        Layout::Split
    } else {
        Layout::Packed
    };
    let size = match layout {
        Layout::Split => 1u16 << ((head >> 1) % 9),
        Layout::Packed => u16::from(head >> 1) % 200 + 1,
    };
    let config = QueueConfig {
        size,
        layout,
        event_idx: head & 0x80 != 0,
        max_indirect: if head & 0x40 != 0 { 4 } else { 0 },
    };
    let arena = ram.arena();
    let mut q = VirtQueue::new(arena, config).expect("queue");
    let addrs = q.addresses();
    // Post until full: chains of 1–3 segments, some writable.
    let mut writable = vec![None; usize::from(size)];
    let mut n = 0u32;
    loop {
        let segs = 1 + (n % 3) as usize;
        if !q.can_add(segs) {
            break;
        }
        let w = [Segment {
            addr: 0x40_0000,
            len: 100 + n,
        }; 1];
        let r = [Segment {
            addr: 0x50_0000,
            len: 10,
        }; 2];
        let id = match segs {
            1 => q.add(&[], &w),
            2 => q.add(&r[..1], &w),
            _ => q.add(&r, &w),
        }
        .expect("add fits");
        writable[usize::from(id)] = Some(100 + n);
        n += 1;
    }
    q.publish();
    let ring_len = match layout {
        Layout::Split => (addrs.device - addrs.desc) as usize + 6 + 8 * usize::from(size),
        Layout::Packed => 16 * usize::from(size) + 8,
    };
    let mut done: HashSet<u16> = HashSet::new();
    let mut broken = false;
    while rest.len() >= 4 {
        let (op, tail) = rest.split_at(4);
        rest = tail;
        let off = usize::from(u16::from_le_bytes([op[0], op[1]])) % ring_len.max(1);
        // Mostly target the areas the device owns; sometimes anywhere in the ring.
        let value = [op[2], op[3]];
        let _ = arena.write(addrs.desc + off as u64, &value);
        match q.pop_used() {
            Ok(Some(u)) => {
                assert!(!broken, "a broken queue returned a completion");
                let posted = writable
                    .get(usize::from(u.id))
                    .copied()
                    .flatten()
                    .expect("returned id was posted");
                assert!(u.len <= posted, "length within the writable bytes");
                assert!(done.insert(u.id), "id {} returned twice", u.id);
            }
            Ok(None) => assert!(!broken),
            Err(QueueError::Broken) => assert!(broken, "Broken without an earlier fault"),
            Err(e) => {
                assert!(e.is_device_fault(), "{e:?}");
                assert!(!broken);
                broken = true;
                assert!(q.is_broken());
            }
        }
        assert!(q.num_free() <= size);
        assert!(usize::from(q.in_flight()) + done.len() == n as usize);
    }
    let mut abandoned = HashSet::new();
    q.reset(|id| assert!(abandoned.insert(id), "abandoned twice"));
    assert!(abandoned.is_disjoint(&done));
    assert_eq!(
        abandoned.len() + done.len(),
        n as usize,
        "every chain accounted for"
    );
    assert_eq!(q.num_free(), size);
    assert!(!q.is_broken());
    q.free(arena);
}
