//! Confidential mode on the RX side (`RxSettings::bounce`): every frame is copied out of the
//! shared buffer into a private one before the OS sees it, and the shared buffer goes straight
//! back to the device. A device rewriting the shared buffers after indication changes nothing
//! the OS reads (and the same check catches direct mode, where it does); the accounting holds:
//! shared buffers are never with the OS, private ones are free or with the OS.

use virtio::Features;
use virtio::net::{NetHeader, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings};
use vnet_harness::device::SplitDevice;
use vnet_harness::dma::GuestRam;
use vnet_harness::os_rx::OsRx;
use vnet_harness::rng::Rng;

const POOL: u32 = 64;

struct Bench {
    ram: GuestRam,
    os: OsRx,
    rx: RxQueue,
    dev: SplitDevice,
    rng: Rng,
    buffer_size: u32,
    mergeable: bool,
    bounce: bool,
    /// Shared buffers the device completed (address, length).
    completed: Vec<(u64, u32)>,
}

fn setup(seed: u64, mergeable: bool, bounce: bool) -> Bench {
    let ram = GuestRam::new(16 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsRx::new(32, 64, &mut rng);
    let vq = VirtQueue::new(
        ram.arena(),
        QueueConfig {
            size: 64,
            layout: Layout::Split,
            event_idx: true,
            max_indirect: 0,
        },
    )
    .unwrap();
    let dev = SplitDevice::new(&ram, 64, vq.addresses(), true);
    let buffer_size = if mergeable { 512 } else { 12 + 1518 };
    let mut features = Features::VERSION_1 | Features::NET_GUEST_CSUM;
    if mergeable {
        features |= Features::NET_MRG_RXBUF;
    }
    let settings = RxSettings {
        buffers: POOL,
        buffer_size,
        strip_vlan: true,
        software_checksum: true,
        bounce,
        context_tag: 3,
    };
    let ext = os.extensions();
    let rx = RxQueue::new(ram.arena(), vq, features, settings, ext).unwrap();
    Bench {
        ram,
        os,
        rx,
        dev,
        rng,
        buffer_size,
        mergeable,
        bounce,
        completed: Vec::new(),
    }
}

impl Bench {
    fn deliver(&mut self, hdr: NetHeader, frame: &[u8]) -> bool {
        let mut bytes = vec![0u8; 12];
        let need = if self.mergeable {
            (12 + frame.len()).div_ceil(self.buffer_size as usize)
        } else {
            1
        };
        let mut h = hdr;
        h.num_buffers = need as u16;
        h.write(&mut bytes).unwrap();
        bytes.extend_from_slice(frame);
        if self.dev.available(&self.ram) < need as u16 {
            return false;
        }
        for chunk in bytes.chunks(self.buffer_size as usize) {
            let c = self.dev.pop(&self.ram).unwrap();
            SplitDevice::fill(&self.ram, &c, chunk);
            self.completed.push(c.writable[0]);
            let _ = self.dev.complete(&self.ram, c.id, chunk.len() as u32);
        }
        true
    }

    /// Advance; then, before the OS reads what was indicated, the device rewrites the shared
    /// buffers it completed; then the OS reads.
    fn iterate(&mut self) {
        if self.rng.below(2) == 0 {
            self.os
                .post(self.rng.below(16) as u32, self.rng.below(40) as u32);
        }
        let rx = &mut self.rx;
        self.os.callback(|p, f| rx.advance(p, f)).expect("advance");
        // Once everything completed is indicated (nothing pending: a frame not yet indicated
        // is the device's to change), the device rewrites it all.
        if self.rx.buffer_counts().pending == 0 {
            for (addr, len) in self.completed.drain(..) {
                assert!(self.ram.arena().write(addr, &vec![0xa5; len as usize]));
            }
        }
        self.os.reclaim();
        let keep = self.rng.below(self.os.held.len() as u64 + 1) as usize;
        for ctx in self.os.held.drain(keep..) {
            self.rx.return_buffer(ctx);
        }
        let c = self.rx.buffer_counts();
        assert_eq!(
            c.free + c.posted + c.pending + c.with_os,
            POOL as usize,
            "{c:?}"
        );
        if self.bounce {
            assert_eq!(c.with_os, 0, "no shared buffer is ever with the OS");
            assert_eq!(c.private_free + c.private_with_os, POOL as usize, "{c:?}");
            assert_eq!(c.private_with_os, self.os.held.len());
        } else {
            assert_eq!(c.with_os, self.os.held.len());
        }
        assert_eq!(self.rx.stats().bad_returns, 0);
    }
}

fn frames(rng: &mut Rng, n: usize) -> Vec<(NetHeader, Vec<u8>, Vec<u8>)> {
    (0..n)
        .map(|i| {
            let len = 20 + rng.below(1400) as usize;
            let payload: Vec<u8> = (0..len).map(|k| (k ^ i) as u8).collect();
            let mut f =
                vnet_harness::frames::tcp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 0x18, payload);
            f[24..26].fill(0);
            let c = offload::checksum::checksum(&f[14..34]);
            f[24..26].copy_from_slice(&c.to_be_bytes());
            offload::segment::fill_l4_checksum(&mut f).unwrap();
            let want = f.clone();
            match i % 3 {
                // A tag the engine strips: the OS sees the frame without it.
                0 => {
                    f.splice(12..12, [0x81, 0x00, 0x00, 0x05]);
                    (NetHeader::default(), f, want)
                }
                // A partial checksum the engine completes: the OS sees the full one.
                1 => {
                    let mut partial = f.clone();
                    let l = offload::Layout::parse(&f).unwrap();
                    let pseudo = offload::checksum::pseudo_header_v4(
                        [10, 0, 0, 1],
                        [10, 0, 0, 2],
                        6,
                        (f.len() - l.l4_offset()) as u32,
                    );
                    let at = l.l4_offset() + 16;
                    partial[at..at + 2].copy_from_slice(&pseudo.fold().to_be_bytes());
                    let h = NetHeader {
                        flags: hdr_flags::NEEDS_CSUM,
                        csum_start: l.l4_offset() as u16,
                        csum_offset: 16,
                        ..Default::default()
                    };
                    (h, partial, want)
                }
                _ => (NetHeader::default(), f, want),
            }
        })
        .collect()
}

fn run(seed: u64, mergeable: bool, bounce: bool) -> (usize, usize) {
    let mut b = setup(seed, mergeable, bounce);
    let mut rng = Rng::new(seed ^ 0xc0);
    let all = frames(&mut rng, 400);
    let mut next = 0;
    for _ in 0..100_000 {
        if b.os.frames.len() == all.len() {
            break;
        }
        for _ in 0..b.rng.below(5) {
            if next < all.len() && b.deliver(all[next].0, &all[next].1) {
                next += 1;
            }
        }
        b.iterate();
    }
    assert_eq!(b.os.frames.len(), all.len(), "every frame indicated");
    let intact =
        b.os.frames
            .iter()
            .zip(&all)
            .filter(|(g, w)| g.bytes == w.2)
            .count();
    let valid =
        b.os.frames
            .iter()
            .filter(|f| f.checksum.rx_layer4() == Some(netring::RxChecksumEvaluation::Valid))
            .count();
    for ctx in b.os.held.drain(..) {
        b.rx.return_buffer(ctx);
    }
    b.iterate();
    assert_eq!(b.rx.buffers_with_os(), 0);
    if bounce {
        assert_eq!(b.rx.stats().bounced, all.len() as u64);
    }
    (intact, valid)
}

#[test]
fn what_the_os_reads_is_private() {
    for mergeable in [false, true] {
        let (intact, valid) = run(1 + u64::from(mergeable), mergeable, true);
        assert_eq!(intact, 400, "mergeable {mergeable}: every frame as sent");
        assert_eq!(
            valid, 400,
            "mergeable {mergeable}: every checksum verified or completed"
        );
    }
}

/// The same check catches direct mode: there the device's rewrite is what the OS reads.
#[test]
fn direct_mode_is_caught_by_the_same_check() {
    let (intact, _) = run(3, false, false);
    eprintln!("direct mode: {intact} of 400 frames intact");
    assert!(
        intact < 200,
        "the OS read the device's rewrite: {intact} of 400 intact"
    );
}
