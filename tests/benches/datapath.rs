//! Driver-side cost per packet of the TX and RX paths, batches of 64: virtionet's engines under
//! the NetAdapterCx ring contract against rcore-os `virtio-drivers` 0.13 `VirtIONetRaw`, both on
//! split virtqueues completed by the same minimal in-process device, in one run.
//!
//! `tx_virtionet_confidential*` is virtionet's TX engine in confidential mode (every frame copied
//! into driver-owned shared buffers), against `tx_virtionet*` in the same run;
//! `rx_virtionet_confidential` is the RX engine bouncing every frame out of the shared buffer
//! into private memory (`RxSettings::bounce`), against `rx_virtionet`.
//!
//! Only the driver's work is timed (`iter_custom`): for virtionet the Advance callbacks; for
//! virtio-drivers `transmit_begin`/`poll_transmit`/`transmit_complete` and
//! `poll_receive`/`receive_complete`/`receive_begin`. The OS side (NetAdapterCx's posting and
//! reclaiming) and the device are not timed.

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use netring::{NetPacketChecksum, NetPacketGso, TxChecksumAction as A};
use virtio::Features;
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings};
use virtionet::txqueue::{TxQueue, TxSettings};
use vnet_harness::dma::GuestRam;
use vnet_harness::os_rx::OsRx;
use vnet_harness::os_tx::{OsTx, TxFrame};
use vnet_harness::rng::Rng;

#[path = "common/mini_net.rs"]
mod mini_net;
#[path = "common/net_rig.rs"]
mod net_rig;
#[path = "common/vq_peers.rs"]
mod vq_peers;
use net_rig::{BATCH, Net, NetTransport, QSIZE, frame, mini, rcore_queue};

/// `confidential`: the engine copies every frame into its shared buffers (issue 16) instead of
/// handing the OS's fragments to the device.
fn virtionet_tx(ram: &GuestRam, len: usize, lso: bool, confidential: bool, iters: u64) -> Duration {
    let mut rng = Rng::new(1);
    let mut os = OsTx::new(256, 1024, &mut rng);
    let cfg = QueueConfig {
        size: QSIZE,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 64,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let mut dev = mini(ram, &vq);
    let f = Features::VERSION_1
        | Features::NET_CSUM
        | Features::NET_HOST_TSO4
        | Features::RING_EVENT_IDX;
    let mut tx = TxQueue::new(
        ram.arena(),
        vq,
        256,
        f,
        TxSettings {
            confidential,
            ..TxSettings::default()
        },
        os.extensions(),
    )
    .unwrap();
    let mut gso = NetPacketGso::default();
    if lso {
        gso.set_mss(1448).unwrap();
    }
    let fr = TxFrame {
        bytes: frame(len),
        checksum: if lso {
            NetPacketChecksum::tx(A::Required, A::Required)
        } else {
            NetPacketChecksum::default()
        },
        gso,
        ..Default::default()
    };
    let translate = |a: u64| ram.arena().cpu_ptr(a, 1).unwrap();
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        for _ in 0..BATCH {
            assert!(os.post(ram.arena(), &fr));
        }
        // Advance until the batch is back: two Advances (post, then reap) unless the shared
        // buffers of confidential mode run out first (8 large ones: an LSO batch takes eight
        // rounds). Bounded.
        let mut back = 0;
        for _round in 0..4 * BATCH {
            let mut p = os.rings.packets.view().unwrap();
            let mut fr_ring = os.rings.fragments.view().unwrap();
            let t = Instant::now();
            black_box(tx.advance(&mut p, &mut fr_ring).unwrap());
            total += t.elapsed();
            dev.run(&translate, &mut |_, _| 0);
            back += os.reclaim(ram.arena()).len();
            if back == BATCH {
                break;
            }
        }
        assert_eq!(back, BATCH);
    }
    // Nothing is in flight: the queue's memory goes back to the arena (criterion calls this
    // many times; confidential mode reserves 1 MiB per queue).
    tx.free(ram.arena());
    total
}

fn virtionet_rx(ram: &GuestRam, len: usize, bounce: bool, iters: u64) -> Duration {
    let mut rng = Rng::new(2);
    let mut os = OsRx::new(256, 512, &mut rng);
    let cfg = QueueConfig {
        size: QSIZE,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 0,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let mut dev = mini(ram, &vq);
    let settings = RxSettings {
        buffers: 256,
        buffer_size: 2048,
        strip_vlan: false,
        software_checksum: false,
        bounce,
        context_tag: 0,
    };
    let f = Features::VERSION_1 | Features::NET_MRG_RXBUF | Features::NET_GUEST_CSUM;
    let mut rx = RxQueue::new(ram.arena(), vq, f, settings, os.extensions()).unwrap();
    let mut bytes = vec![0u8; 12];
    bytes[0] = 2; // DATA_VALID
    bytes[10] = 1; // num_buffers
    bytes.extend(frame(len));
    let translate = |a: u64| ram.arena().cpu_ptr(a, 1).unwrap();
    let mut total = Duration::ZERO;
    // Prime: post all buffers.
    {
        let mut p = os.rings.packets.view().unwrap();
        let mut f = os.rings.fragments.view().unwrap();
        rx.advance(&mut p, &mut f).unwrap();
    }
    for _ in 0..iters {
        os.post(BATCH as u32, BATCH as u32);
        // BATCH frames arrive; the other posted buffers stay with the device (completing
        // them all, empty, made every other iteration indicate nothing and drop 192 runts).
        dev.run_at_most(BATCH as u32, &translate, &mut |p, cap| {
            let n = bytes.len().min(cap as usize);
            // SAFETY: p is a posted buffer of `cap` bytes in the arena.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n) };
            n as u32
        });
        let mut p = os.rings.packets.view().unwrap();
        let mut f = os.rings.fragments.view().unwrap();
        let t = Instant::now();
        let r = rx.advance(&mut p, &mut f).unwrap();
        total += t.elapsed();
        os.reclaim();
        let t = Instant::now();
        for c in os.held.drain(..) {
            rx.return_buffer(c);
        }
        total += t.elapsed();
        black_box(r);
    }
    total
}

fn rcore_tx(len: usize, iters: u64) -> Duration {
    let t = NetTransport::default();
    let addrs = t.queues.clone();
    let mut net: Net = Net::new(t).unwrap();
    let mut dev = rcore_queue(&addrs, 1);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH)
        .map(|_| {
            let mut b = vec![0u8; 12 + len];
            b[12..].copy_from_slice(&frame(len));
            b
        })
        .collect();
    let id = |a: u64| a as *mut u8;
    let mut tokens = [0u16; BATCH];
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        let t = Instant::now();
        for (k, b) in bufs.iter_mut().enumerate() {
            // SAFETY: the buffer is not touched until transmit_complete.
            tokens[k] = unsafe { net.transmit_begin(b) }.unwrap();
        }
        total += t.elapsed();
        dev.run(&id, &mut |_, _| 0);
        let t = Instant::now();
        for (k, b) in bufs.iter().enumerate() {
            assert_eq!(net.poll_transmit(), Some(tokens[k]));
            // SAFETY: same buffer as transmit_begin.
            black_box(unsafe { net.transmit_complete(tokens[k], b) }.unwrap());
        }
        total += t.elapsed();
    }
    total
}

fn rcore_rx(len: usize, iters: u64) -> Duration {
    let t = NetTransport::default();
    let addrs = t.queues.clone();
    let mut net: Net = Net::new(t).unwrap();
    let mut dev = rcore_queue(&addrs, 0);
    let mut bufs: Vec<Vec<u8>> = (0..BATCH).map(|_| vec![0u8; 2048]).collect();
    let mut tokens = [0u16; BATCH];
    for (k, b) in bufs.iter_mut().enumerate() {
        // SAFETY: the buffers live until the end and are only touched after completion.
        tokens[k] = unsafe { net.receive_begin(b) }.unwrap();
    }
    let mut bytes = vec![0u8; 12];
    bytes[10] = 1;
    bytes.extend(frame(len));
    let id = |a: u64| a as *mut u8;
    let mut total = Duration::ZERO;
    for _ in 0..iters {
        dev.run(&id, &mut |p, cap| {
            let n = bytes.len().min(cap as usize);
            // SAFETY: p is a posted buffer of `cap` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n) };
            n as u32
        });
        let t = Instant::now();
        for (k, b) in bufs.iter_mut().enumerate() {
            assert_eq!(net.poll_receive(), Some(tokens[k]));
            // SAFETY: same buffer as receive_begin.
            black_box(unsafe { net.receive_complete(tokens[k], b) }.unwrap());
            // SAFETY: as above; reposted at once.
            tokens[k] = unsafe { net.receive_begin(b) }.unwrap();
        }
        total += t.elapsed();
    }
    total
}

fn bench(c: &mut Criterion) {
    let ram = GuestRam::new(256 << 20);
    let mut g = c.benchmark_group("datapath_per_packet_batch64");
    g.throughput(Throughput::Elements(BATCH as u64));
    for len in [64usize, 1514] {
        g.bench_function(BenchmarkId::new("tx_virtionet", len), |b| {
            b.iter_custom(|n| virtionet_tx(&ram, len, false, false, n))
        });
        g.bench_function(BenchmarkId::new("tx_virtionet_confidential", len), |b| {
            b.iter_custom(|n| virtionet_tx(&ram, len, false, true, n))
        });
        g.bench_function(BenchmarkId::new("tx_virtio_drivers", len), |b| {
            b.iter_custom(|n| rcore_tx(len, n))
        });
        g.bench_function(BenchmarkId::new("rx_virtionet", len), |b| {
            b.iter_custom(|n| virtionet_rx(&ram, len, false, n))
        });
        g.bench_function(BenchmarkId::new("rx_virtionet_confidential", len), |b| {
            b.iter_custom(|n| virtionet_rx(&ram, len, true, n))
        });
        g.bench_function(BenchmarkId::new("rx_virtio_drivers", len), |b| {
            b.iter_custom(|n| rcore_rx(len, n))
        });
    }
    g.bench_function(BenchmarkId::new("tx_virtionet_lso", 65_000), |b| {
        b.iter_custom(|n| virtionet_tx(&ram, 65_000, true, false, n))
    });
    g.bench_function(
        BenchmarkId::new("tx_virtionet_confidential_lso", 65_000),
        |b| b.iter_custom(|n| virtionet_tx(&ram, 65_000, true, true, n)),
    );
    g.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
