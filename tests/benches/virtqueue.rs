//! Driver-side cost of a virtqueue round trip — post a 2-descriptor chain, publish (with the kick
//! decision), let a minimal device complete it, reap — in batches of 1, 32 and 256 chains, for
//! this crate's split and packed queues and for rcore-os `virtio-drivers` 0.13 `VirtQueue`, in one
//! run. All rings live in ordinary process memory; the same minimal split-ring device (a few
//! loads and stores per chain) completes both split implementations.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use virtio::queue::{Layout, QueueConfig, Segment, VirtQueue};
use vnet_harness::device::PackedDevice;
use vnet_harness::dma::GuestRam;

#[path = "common/vq_peers.rs"]
mod vq_peers;
use vq_peers::{BenchHal, BenchTransport, MiniDevice, SIZE};

fn bench(c: &mut Criterion) {
    let ram = GuestRam::new(16 << 20);
    let arena = ram.arena();
    let hdr = [0u8; 12];
    let payload = [0u8; 1514];
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
    let mut group = c.benchmark_group("virtqueue_2desc");
    for batch in [1usize, 32, 256] {
        group.throughput(Throughput::Elements(batch as u64));

        // This crate, split.
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
        group.bench_with_input(
            BenchmarkId::new("virtionet_split", batch),
            &batch,
            |b, &n| {
                b.iter(|| {
                    for _ in 0..n {
                        black_box(q.add(&segs, &[]).unwrap());
                    }
                    black_box(q.publish());
                    dev.run();
                    while let Some(u) = q.pop_used().unwrap() {
                        black_box(u);
                    }
                });
            },
        );
        q.free(arena);

        // This crate, packed (with the spec-written packed device).
        let cfg = QueueConfig {
            layout: Layout::Packed,
            ..cfg
        };
        let mut q = VirtQueue::new(arena, cfg).unwrap();
        let mut pdev = PackedDevice::new(SIZE as u16, q.addresses(), false);
        group.bench_with_input(
            BenchmarkId::new("virtionet_packed", batch),
            &batch,
            |b, &n| {
                b.iter(|| {
                    for _ in 0..n {
                        black_box(q.add(&segs, &[]).unwrap());
                    }
                    black_box(q.publish());
                    while let Some(chain) = pdev.pop(arena) {
                        pdev.complete(arena, &chain, 0);
                    }
                    while let Some(u) = q.pop_used().unwrap() {
                        black_box(u);
                    }
                });
            },
        );
        q.free(arena);

        // rcore-os virtio-drivers 0.13.
        let mut t = BenchTransport::default();
        let mut vq =
            virtio_drivers::queue::VirtQueue::<BenchHal, SIZE>::new(&mut t, 0, false, false)
                .unwrap();
        let (_d, av, us) = t.rings.unwrap();
        let mut vdev = MiniDevice {
            avail: av as *mut u8,
            used: us as *mut u8,
            last_avail: 0,
            used_idx: 0,
        };
        let inputs: [&[u8]; 2] = [&hdr, &payload];
        let mut tokens = Vec::with_capacity(SIZE);
        group.bench_with_input(
            BenchmarkId::new("virtio_drivers_split", batch),
            &batch,
            |b, &n| {
                b.iter(|| {
                    tokens.clear();
                    for _ in 0..n {
                        // SAFETY: the buffers outlive the round trip and are not touched until popped.
                        tokens.push(unsafe { vq.add(&inputs, &mut []) }.unwrap());
                    }
                    black_box(vq.should_notify());
                    vdev.run();
                    for &t in &tokens {
                        // SAFETY: same buffers as added for this token.
                        black_box(unsafe { vq.pop_used(t, &inputs, &mut []) }.unwrap());
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
