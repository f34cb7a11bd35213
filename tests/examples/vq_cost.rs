//! Runs a fixed number of virtqueue round trips (batches of 256 two-descriptor chains) with
//! either implementation, for instruction counting under `valgrind --tool=callgrind`, which is
//! repeatable where wall-clock benchmarks on this 2-core VM are noisy.
//!
//! `cargo run --release -p vnet-harness --example vq_cost -- virtionet|virtio-drivers [BATCHES]`

use std::hint::black_box;

use virtio::queue::{Layout, QueueConfig, Segment, VirtQueue};
use vnet_harness::dma::GuestRam;

#[path = "../benches/common/vq_peers.rs"]
mod vq_peers;
use vq_peers::{BenchHal, BenchTransport, MiniDevice, SIZE};

fn main() {
    let mut args = std::env::args().skip(1);
    let which = args.next().unwrap_or_else(|| "virtionet".into());
    let batches: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let n = 256;
    match which.as_str() {
        "virtionet" => {
            let ram = GuestRam::new(16 << 20);
            let arena = ram.arena();
            let cfg = QueueConfig {
                size: SIZE as u16,
                layout: Layout::Split,
                event_idx: false,
                max_indirect: 0,
            };
            let mut q = VirtQueue::new(arena, cfg).unwrap();
            let a = q.addresses();
            let mut dev = MiniDevice {
                avail: arena.cpu_ptr(a.driver, 6 + 2 * SIZE).unwrap(),
                used: arena.cpu_ptr(a.device, 6 + 8 * SIZE).unwrap(),
                last_avail: 0,
                used_idx: 0,
            };
            let segs = [
                Segment {
                    addr: 0x80_0000,
                    len: 12,
                },
                Segment {
                    addr: 0x80_1000,
                    len: 1514,
                },
            ];
            for _ in 0..batches {
                for _ in 0..n {
                    black_box(q.add(&segs, &[]).unwrap());
                }
                black_box(q.publish());
                dev.run();
                while let Some(u) = q.pop_used().unwrap() {
                    black_box(u);
                }
            }
        }
        _ => {
            let hdr = [0u8; 12];
            let payload = [0u8; 1514];
            let mut t = BenchTransport::default();
            let mut vq =
                virtio_drivers::queue::VirtQueue::<BenchHal, SIZE>::new(&mut t, 0, false, false)
                    .unwrap();
            let (_d, av, us) = t.rings.unwrap();
            let mut dev = MiniDevice {
                avail: av as *mut u8,
                used: us as *mut u8,
                last_avail: 0,
                used_idx: 0,
            };
            let inputs: [&[u8]; 2] = [&hdr, &payload];
            let mut tokens = Vec::with_capacity(n);
            for _ in 0..batches {
                tokens.clear();
                for _ in 0..n {
                    // SAFETY: the buffers outlive the round trip.
                    tokens.push(unsafe { vq.add(&inputs, &mut []) }.unwrap());
                }
                black_box(vq.should_notify());
                dev.run();
                for &tok in &tokens {
                    // SAFETY: same buffers as added.
                    black_box(unsafe { vq.pop_used(tok, &inputs, &mut []) }.unwrap());
                }
            }
        }
    }
}
