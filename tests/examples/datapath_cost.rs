//! Runs the TX and RX engines (or rcore-os `virtio-drivers` 0.13 `VirtIONetRaw`, the peer of
//! `benches/datapath.rs`) for a fixed number of batches of 64 packets against the same minimal
//! in-process device, for instruction counting under `valgrind --tool=callgrind`, which is
//! repeatable where wall-clock benchmarks on this 2-core VM are noisy.
//!
//! Only the driver's work runs inside [`driver`] — for virtionet the Advance callbacks and
//! `EvtAdapterReturnRxBuffer`, for virtio-drivers `transmit_begin`/`poll_transmit`/
//! `transmit_complete` and `poll_receive`/`receive_complete`/`receive_begin`; the OS side
//! (NetAdapterCx's posting and reclaiming) and the device run outside it.
//! `scripts/datapath_cost.sh` collects only inside it (`--toggle-collect`).
//!
//! `cargo run --release -p vnet-harness --example datapath_cost -- CASE LEN [BATCHES]`
//!
//! CASE: `tx` (no offload asked), `tx-csum` (IPv4 and TCP checksum offload asked, negotiated
//! NET_CSUM: the headers are rewritten), `rx` (the device gives no checksum verdict),
//! `rx-csum` (DATA_VALID with GUEST_CSUM), `rcore-tx`, `rcore-rx`. LEN: frame bytes (≥ 54).

use std::hint::black_box;

use netring::{NetPacketChecksum, TxChecksumAction as A};
use virtio::Features;
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings};
use virtionet::txqueue::{TxQueue, TxSettings};
use vnet_harness::dma::GuestRam;
use vnet_harness::os_rx::OsRx;
use vnet_harness::os_tx::{OsTx, TxFrame};
use vnet_harness::rng::Rng;

#[path = "../benches/common/mini_net.rs"]
mod mini_net;
#[path = "../benches/common/net_rig.rs"]
mod net_rig;
#[path = "../benches/common/vq_peers.rs"]
mod vq_peers;
use net_rig::{BATCH, Net, NetTransport, QSIZE, frame, mini, rcore_queue};

/// The driver's work: callgrind collects only inside this function (and what it calls).
#[inline(never)]
fn driver<R>(f: impl FnOnce() -> R) -> R {
    black_box(f())
}

fn virtionet_tx(len: usize, csum: bool, batches: usize) {
    let ram = GuestRam::new(64 << 20);
    let mut rng = Rng::new(1);
    let mut os = OsTx::new(256, 1024, &mut rng);
    let cfg = QueueConfig {
        size: QSIZE,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 64,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let mut dev = mini(&ram, &vq);
    let f = Features::VERSION_1
        | Features::NET_CSUM
        | Features::NET_HOST_TSO4
        | Features::RING_EVENT_IDX;
    let mut tx = TxQueue::new(
        ram.arena(),
        vq,
        256,
        f,
        TxSettings::default(),
        os.extensions(),
    )
    .unwrap();
    let fr = TxFrame {
        bytes: frame(len),
        checksum: if csum {
            NetPacketChecksum::tx(A::Required, A::Required)
        } else {
            NetPacketChecksum::default()
        },
        ..Default::default()
    };
    let translate = |a: u64| ram.arena().cpu_ptr(a, 1).unwrap();
    for _ in 0..batches {
        for _ in 0..BATCH {
            assert!(os.post(ram.arena(), &fr));
        }
        let mut back = 0;
        // Post, then reap: two Advances. Bounded.
        for _round in 0..4 {
            let mut p = os.rings.packets.view().unwrap();
            let mut fr_ring = os.rings.fragments.view().unwrap();
            driver(|| tx.advance(&mut p, &mut fr_ring).unwrap());
            dev.run(&translate, &mut |_, _| 0);
            back += os.reclaim(ram.arena()).len();
            if back == BATCH {
                break;
            }
        }
        assert_eq!(back, BATCH);
    }
    let s = tx.stats();
    eprintln!(
        "tx: {} packets, {} kicks, {} bad",
        s.sent.frames(),
        s.kicks,
        s.bad_packets
    );
    assert_eq!(s.sent.frames(), (batches * BATCH) as u64);
}

fn virtionet_rx(len: usize, csum: bool, batches: usize) {
    let ram = GuestRam::new(64 << 20);
    let mut rng = Rng::new(2);
    let mut os = OsRx::new(256, 512, &mut rng);
    let cfg = QueueConfig {
        size: QSIZE,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 0,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let mut dev = mini(&ram, &vq);
    let settings = RxSettings {
        buffers: 256,
        buffer_size: 2048,
        strip_vlan: false,
        software_checksum: false,
        bounce: false,
        context_tag: 0,
    };
    let f = Features::VERSION_1 | Features::NET_MRG_RXBUF | Features::NET_GUEST_CSUM;
    let mut rx = RxQueue::new(ram.arena(), vq, f, settings, os.extensions()).unwrap();
    let mut bytes = vec![0u8; 12];
    if csum {
        bytes[0] = 2; // DATA_VALID
    }
    bytes[10] = 1; // num_buffers
    bytes.extend(frame(len));
    let translate = |a: u64| ram.arena().cpu_ptr(a, 1).unwrap();
    {
        let mut p = os.rings.packets.view().unwrap();
        let mut f = os.rings.fragments.view().unwrap();
        rx.advance(&mut p, &mut f).unwrap();
    }
    let mut indicated = 0u64;
    for _ in 0..batches {
        os.post(BATCH as u32, BATCH as u32);
        // BATCH frames arrive; the other posted buffers stay with the device.
        dev.run_at_most(BATCH as u32, &translate, &mut |p, cap| {
            let n = bytes.len().min(cap as usize);
            // SAFETY: p is a posted buffer of `cap` bytes in the arena.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n) };
            n as u32
        });
        let mut p = os.rings.packets.view().unwrap();
        let mut f = os.rings.fragments.view().unwrap();
        let r = driver(|| rx.advance(&mut p, &mut f).unwrap());
        indicated += u64::from(r.indicated);
        os.reclaim();
        let held = std::mem::take(&mut os.held);
        driver(|| {
            for &c in &held {
                rx.return_buffer(c);
            }
        });
        os.held = held;
        os.held.clear();
    }
    let s = rx.stats();
    eprintln!(
        "rx: {} indicated, {} received, {} stall kicks",
        indicated,
        s.received.frames(),
        s.stall_kicks
    );
    assert_eq!(indicated, (batches * BATCH) as u64);
}

fn rcore_tx(len: usize, batches: usize) {
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
    for _ in 0..batches {
        driver(|| {
            for (k, b) in bufs.iter_mut().enumerate() {
                // SAFETY: the buffer is not touched until transmit_complete.
                tokens[k] = unsafe { net.transmit_begin(b) }.unwrap();
            }
        });
        dev.run(&id, &mut |_, _| 0);
        driver(|| {
            for (k, b) in bufs.iter().enumerate() {
                assert_eq!(net.poll_transmit(), Some(tokens[k]));
                // SAFETY: same buffer as transmit_begin.
                black_box(unsafe { net.transmit_complete(tokens[k], b) }.unwrap());
            }
        });
    }
}

fn rcore_rx(len: usize, batches: usize) {
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
    for _ in 0..batches {
        dev.run(&id, &mut |p, cap| {
            let n = bytes.len().min(cap as usize);
            // SAFETY: p is a posted buffer of `cap` bytes.
            unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), p, n) };
            n as u32
        });
        driver(|| {
            for (k, b) in bufs.iter_mut().enumerate() {
                assert_eq!(net.poll_receive(), Some(tokens[k]));
                // SAFETY: same buffer as receive_begin.
                black_box(unsafe { net.receive_complete(tokens[k], b) }.unwrap());
                // SAFETY: as above; reposted at once.
                tokens[k] = unsafe { net.receive_begin(b) }.unwrap();
            }
        });
    }
}

fn main() {
    let mut args = std::env::args().skip(1);
    let case = args.next().unwrap_or_else(|| "tx".into());
    let len: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(64);
    let batches: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    assert!((54..=1514).contains(&len), "LEN in 54..=1514");
    match case.as_str() {
        "tx" => virtionet_tx(len, false, batches),
        "tx-csum" => virtionet_tx(len, true, batches),
        "rx" => virtionet_rx(len, false, batches),
        "rx-csum" => virtionet_rx(len, true, batches),
        "rcore-tx" => rcore_tx(len, batches),
        "rcore-rx" => rcore_rx(len, batches),
        other => panic!("unknown case {other}"),
    }
}
