//! The RX engine against a device that keeps rewriting the buffers it completed while the driver
//! parses them (issue 16): a second thread scribbles the virtio-net header (flags, GSO type and
//! size, checksum offsets, num_buffers) and the frame's header-length fields (IPv4 IHL, flags,
//! total length, TCP data offset, IPv6 next header and extension header lengths, the EtherType)
//! of every recently completed buffer, over and over, while `RxQueue::advance` runs — split and
//! packed rings, mergeable buffers on and off. Nothing may panic (the OS side checks the
//! verifier's RX rules, which catches a layout parsed from two different reads of a length
//! byte), every buffer is in exactly one state after every Advance, and once the device stops
//! scribbling, traffic flows again.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings};
use vnet_harness::device::{self, DeviceChain, PackedDevice, SplitDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::os_rx::{OsRx, check_rx_accounting};
use vnet_harness::rng::Rng;

const QUEUE: u16 = 64;
const POOL: u32 = 64;

enum Dev {
    Split(SplitDevice),
    Packed(PackedDevice),
}

struct Rig {
    ram: GuestRam,
    os: OsRx,
    rx: RxQueue,
    dev: Dev,
    rng: Rng,
    buffer_size: u32,
    mergeable: bool,
}

fn rig(seed: u64, layout: Layout, mergeable: bool) -> Rig {
    let ram = GuestRam::new(16 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsRx::new(32, 64, &mut rng);
    let vq = VirtQueue::new(
        ram.arena(),
        QueueConfig {
            size: QUEUE,
            layout,
            event_idx: true,
            max_indirect: 0,
        },
    )
    .unwrap();
    let dev = match layout {
        Layout::Split => Dev::Split(SplitDevice::new(&ram, QUEUE, vq.addresses(), true)),
        Layout::Packed => Dev::Packed(PackedDevice::new(QUEUE, vq.addresses(), true)),
    };
    // Small buffers with mergeable RX, so that packets span several of them.
    let buffer_size = if mergeable { 256 } else { 12 + 1518 };
    let mut features = Features::VERSION_1 | Features::NET_GUEST_CSUM | Features::NET_RSC_EXT;
    if mergeable {
        features |= Features::NET_MRG_RXBUF;
    }
    let settings = RxSettings {
        buffers: POOL,
        buffer_size,
        strip_vlan: true,
        software_checksum: true,
        bounce: false,
        context_tag: 0,
    };
    let ext = os.extensions();
    let mut rx = RxQueue::new(ram.arena(), vq, features, settings, ext).unwrap();
    let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
    rx.set_rss(Some((&key, netring::HashProtocolType::all())));
    Rig {
        ram,
        os,
        rx,
        dev,
        rng,
        buffer_size,
        mergeable,
    }
}

/// A frame of one of the shapes whose header lengths the scribbler rewrites: IPv4/TCP with a
/// short payload (an IHL of 15 would not fit), IPv4 with options, IPv4/UDP, IPv6 with a
/// destination-options header and TCP, 802.1Q-tagged IPv4/TCP; all with valid checksums.
fn frame(rng: &mut Rng, tag: u32, max_payload: usize) -> Vec<u8> {
    let payload: Vec<u8> = (0..rng.below(max_payload as u64 + 1) as usize)
        .map(|i| (i as u32 ^ tag) as u8)
        .chain(tag.to_be_bytes())
        .collect();
    let dst = [2, 0, 0, 0, 0, 1];
    let src = [2, 0, 0, 0, 0, 2];
    let mut f = match rng.below(5) {
        0 | 4 => vnet_harness::frames::tcp4(dst, src, 0x18, payload.iter().copied()),
        1 => {
            // IPv4 with 8 bytes of options (NOPs), TCP.
            let mut ip = vnet_harness::frames::ipv4_tcp(0x10, payload.iter().copied());
            ip[0] = 0x47;
            ip.splice(20..20, [1u8; 8]);
            let total = ip.len() as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            vnet_harness::frames::ethernet(dst, src, 0x0800, &ip)
        }
        2 => {
            let mut ip = vec![
                0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
            ];
            let ul = (8 + payload.len()) as u16;
            ip.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
            ip.extend_from_slice(&ul.to_be_bytes());
            ip.extend_from_slice(&[0, 0]);
            ip.extend_from_slice(&payload);
            let total = ip.len() as u16;
            ip[2..4].copy_from_slice(&total.to_be_bytes());
            vnet_harness::frames::ethernet(dst, src, 0x0800, &ip)
        }
        _ => {
            // IPv6, destination options (8 bytes), TCP.
            let tcp_len = 20 + payload.len();
            let mut ip = vec![0x60, 0, 0, 0];
            ip.extend_from_slice(&((8 + tcp_len) as u16).to_be_bytes());
            ip.extend_from_slice(&[60, 64]);
            ip.extend_from_slice(&[0xfd; 16]);
            ip.extend_from_slice(&[0xfe; 16]);
            ip.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
            ip.extend_from_slice(&[
                0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
            ]);
            ip.extend_from_slice(&payload);
            vnet_harness::frames::ethernet(dst, src, 0x86dd, &ip)
        }
    };
    if f[12..14] == [0x08, 0x00] {
        let ihl = usize::from(f[14] & 0xf) * 4;
        f[24..26].fill(0);
        let c = offload::checksum::checksum(&f[14..14 + ihl]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    let _ = offload::segment::fill_l4_checksum(&mut f);
    if rng.below(5) == 4 {
        f.splice(12..12, [0x81, 0x00, 0x20, 0x07]);
    }
    f
}

impl Rig {
    fn pop(&mut self) -> Option<DeviceChain> {
        match &mut self.dev {
            Dev::Split(d) => d.pop(&self.ram),
            Dev::Packed(d) => d.pop(self.ram.arena()),
        }
    }

    fn complete(&mut self, c: &DeviceChain, len: u32) {
        match &mut self.dev {
            Dev::Split(d) => {
                // Whether to interrupt does not matter here: the OS polls.
                let _ = d.complete(&self.ram, c.id, len);
            }
            Dev::Packed(d) => d.complete(self.ram.arena(), c, len),
        }
    }

    /// The device receives `frame`: a virtio-net header (honest num_buffers, random offload
    /// bits) and the frame across as many buffers as it needs. `None` when it has too few.
    fn deliver(&mut self, frame: &[u8], hdr: NetHeader, scribble: Option<&Scribbled>) -> bool {
        let need = if self.mergeable {
            (12 + frame.len()).div_ceil(self.buffer_size as usize)
        } else {
            assert!(12 + frame.len() <= self.buffer_size as usize);
            1
        };
        let mut chains = Vec::new();
        for _ in 0..need {
            match self.pop() {
                Some(c) => chains.push(c),
                None => break,
            }
        }
        if chains.len() < need {
            // Not enough buffers: complete what was taken as runts (a device may).
            for c in chains {
                self.complete(&c, 0);
            }
            return false;
        }
        let mut bytes = vec![0u8; 12];
        let mut h = hdr;
        h.num_buffers = need as u16;
        h.write(&mut bytes).unwrap();
        bytes.extend_from_slice(frame);
        for (c, chunk) in chains.iter().zip(bytes.chunks(self.buffer_size as usize)) {
            assert_eq!(device::fill(self.ram.arena(), c, chunk), chunk.len() as u32);
            if let Some(s) = scribble {
                let (addr, len) = c.writable[0];
                let p = self.ram.arena().cpu_ptr(addr, len as usize).unwrap();
                s.push(p.addr());
            }
        }
        for (c, chunk) in chains.iter().zip(bytes.chunks(self.buffer_size as usize)) {
            self.complete(c, chunk.len() as u32);
        }
        true
    }

    /// One OS iteration: post, Advance (which must not fail), indicate, return some buffers;
    /// then the accounting invariant.
    fn iterate(&mut self) {
        if self.rng.below(2) == 0 {
            let (p, f) = (self.rng.below(16) as u32, self.rng.below(40) as u32);
            self.os.post(p, f);
        }
        let rx = &mut self.rx;
        let r = self.os.callback(|p, f| rx.advance(p, f));
        assert!(r.is_ok(), "advance failed: {r:?}");
        let seen = self.os.frames.len();
        self.os.reclaim();
        // Whatever the device did to the bytes, a layout is one that held for one snapshot of
        // them: its headers fit in the frame (a length read twice — checked, then used — makes
        // one that does not).
        for f in &self.os.frames[seen..] {
            let l = f.layout;
            let headers = usize::from(l.layer2_header_length())
                + usize::from(l.layer3_header_length())
                + usize::from(l.layer4_header_length());
            assert!(
                headers <= f.bytes.len(),
                "layout {l:?} claims {headers} header bytes in a {}-byte frame",
                f.bytes.len()
            );
        }
        let keep = self.rng.below(self.os.held.len() as u64 + 1) as usize;
        for ctx in self.os.held.drain(keep..) {
            self.rx.return_buffer(ctx);
        }
        self.check_accounting();
    }

    fn check_accounting(&self) {
        check_rx_accounting(&self.rx, POOL, self.os.held.len(), "hostile device");
    }
}

/// Buffers the device completed recently (CPU addresses), for the scribbler.
#[derive(Default)]
struct Scribbled {
    recent: Mutex<Vec<usize>>,
}

impl Scribbled {
    fn push(&self, p: usize) {
        let mut r = self.recent.lock().unwrap();
        if r.len() >= 2 * POOL as usize {
            r.remove(0);
        }
        r.push(p);
    }
}

/// What the scribbler rewrites: offsets in a buffer (virtio-net header at 0, frame at 12) and
/// the values it alternates with — a valid one and hostile ones.
const TARGETS: &[(usize, &[u8])] = &[
    // IPv4 IHL (frame byte 14): 5, 15, 0, 7; also an IPv6 version nibble.
    (26, &[0x45, 0x4f, 0x40, 0x47, 0x60, 0x41]),
    // TCP data offset behind a 20-byte IPv4 header: 5, 15, 0, 1.
    (58, &[0x50, 0xf0, 0x00, 0x10, 0x40]),
    // ... behind a 28-byte one.
    (66, &[0x50, 0xf0, 0x00, 0x10]),
    // IPv4 flags / fragment offset (MF, DF, offset).
    (32, &[0x40, 0x20, 0x00, 0x3f]),
    // IPv4 total length, high byte.
    (28, &[0x00, 0xff, 0x05, 0x01]),
    // IPv4 protocol.
    (35, &[6, 17, 0, 44]),
    // IPv6 next header (frame byte 20) and the destination options' length (frame byte 55).
    (32, &[60, 6, 0, 43, 44]),
    (67, &[0, 1, 0xff, 0x20]),
    (66, &[6, 60, 0, 51]),
    // EtherType (frame bytes 12-13) and the 802.1Q tag's inner EtherType.
    (24, &[0x08, 0x86, 0x81, 0x88]),
    (25, &[0x00, 0xdd, 0xa8]),
    (28, &[0x08, 0x86, 0x81]),
    // virtio-net header: flags, gso_type, gso_size, csum_start, csum_offset, num_buffers.
    (0, &[0, 1, 2, 3, 4, 0xff]),
    (1, &[0, 1, 3, 4, 5, 0x80]),
    (4, &[0, 1, 0xff]),
    (5, &[0, 0x05, 0xff]),
    (6, &[0, 14, 34, 54, 0xff]),
    (7, &[0, 1, 0xff]),
    (8, &[16, 6, 0, 0xff, 17]),
    (9, &[0, 0xff]),
    (10, &[1, 0, 2, 3, 63, 64, 65, 0xff]),
    (11, &[0, 0, 1, 0xff]),
];

fn scribble_loop(s: &Scribbled, stop: &AtomicBool, writes: &AtomicUsize, seed: u64) {
    let mut rng = Rng::new(seed);
    let mut snapshot = Vec::new();
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        if n.is_multiple_of(64) {
            snapshot.clone_from(&s.recent.lock().unwrap());
        }
        n += 1;
        if snapshot.is_empty() {
            std::thread::yield_now();
            continue;
        }
        let p = snapshot[rng.below(snapshot.len() as u64) as usize];
        if rng.below(2) == 0 {
            // Flip the IPv4 IHL and the TCP data offset back and forth, fast: a parser that
            // reads one of them twice sees two values.
            // SAFETY: as below.
            let ihl = unsafe { &*(p as *const AtomicU8).wrapping_add(26) };
            // SAFETY: as below.
            let doff = unsafe { &*(p as *const AtomicU8).wrapping_add(58) };
            for _ in 0..512 {
                ihl.store(0x4f, Ordering::Relaxed);
                doff.store(0x10, Ordering::Relaxed);
                ihl.store(0x45, Ordering::Relaxed);
                doff.store(0x50, Ordering::Relaxed);
            }
            writes.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        for _ in 0..16 {
            let (off, values) = TARGETS[rng.below(TARGETS.len() as u64) as usize];
            let v = values[rng.below(values.len() as u64) as usize];
            // SAFETY: `p` is a buffer of the RX pool (at least 256 bytes), which lives in
            // guest RAM for the whole scope this thread runs in; the byte is written
            // atomically, as a device's DMA would.
            let a = unsafe { &*(p as *const AtomicU8).wrapping_add(off) };
            a.store(v, Ordering::Relaxed);
        }
        writes.fetch_add(1, Ordering::Relaxed);
    }
}

fn random_header(rng: &mut Rng) -> NetHeader {
    match rng.below(4) {
        0 => NetHeader::default(),
        1 => NetHeader {
            flags: hdr_flags::DATA_VALID,
            ..Default::default()
        },
        2 => NetHeader {
            flags: hdr_flags::NEEDS_CSUM,
            csum_start: 34,
            csum_offset: 16,
            ..Default::default()
        },
        _ => NetHeader {
            flags: hdr_flags::DATA_VALID | hdr_flags::RSC_INFO,
            gso_type: gso::TCPV4,
            gso_size: 100,
            csum_start: 3,
            csum_offset: 0,
            ..Default::default()
        },
    }
}

fn hostile(seed: u64, layout: Layout, mergeable: bool) {
    let mut r = rig(seed, layout, mergeable);
    let max_payload = if mergeable { 900 } else { 1400 };
    let s = Arc::new(Scribbled::default());
    let stop = AtomicBool::new(false);
    let writes = AtomicUsize::new(0);
    let mut tag = 0u32;
    std::thread::scope(|scope| {
        let (s2, stop2, writes2) = (s.clone(), &stop, &writes);
        scope.spawn(move || scribble_loop(&s2, stop2, writes2, seed ^ 0x5eed));
        // The scribbler stops however this thread leaves the scope (a failed assertion too).
        struct Stop<'a>(&'a AtomicBool);
        impl Drop for Stop<'_> {
            fn drop(&mut self) {
                self.0.store(true, Ordering::Relaxed);
            }
        }
        let _stop = Stop(&stop);
        let deadline = Instant::now() + Duration::from_millis(3000);
        let mut rounds = 0u32;
        while Instant::now() < deadline || rounds < 200 {
            rounds += 1;
            for _ in 0..r.rng.below(8) {
                tag += 1;
                // Mostly short frames: an IHL or data offset rewritten upwards runs past them.
                let max = if r.rng.below(4) == 0 { max_payload } else { 24 };
                let f = frame(&mut r.rng, tag, max);
                let h = random_header(&mut r.rng);
                r.deliver(&f, h, Some(&s));
            }
            r.iterate();
            if rounds > 200_000 {
                break;
            }
        }
    });
    assert!(writes.load(Ordering::Relaxed) > 0, "the scribbler ran");
    let scribbled = r.os.frames.len();
    // The device stops scribbling: clean frames flow again. A packet head left over from the
    // scribbling may claim the next buffers as its own (up to the pool), so the last frames
    // delivered are the ones that must arrive intact and in order.
    let clean: Vec<Vec<u8>> = (0..3 * POOL)
        .map(|i| frame(&mut r.rng, 0x8000_0000 | i, 200))
        .collect();
    let mut next = 0;
    let deadline = Instant::now() + Duration::from_secs(20);
    while next < clean.len() && Instant::now() < deadline {
        if r.deliver(&clean[next], NetHeader::default(), None) {
            next += 1;
        }
        r.iterate();
    }
    assert_eq!(next, clean.len(), "the device got buffers again (no wedge)");
    for _ in 0..64 {
        r.os.post(32, 64);
        r.iterate();
    }
    let got: Vec<&Vec<u8>> = r.os.frames[scribbled..].iter().map(|f| &f.bytes).collect();
    let want = &clean[clean.len() - POOL as usize..];
    let tail = &got[got.len().saturating_sub(want.len())..];
    assert_eq!(tail.len(), want.len(), "the last frames arrived");
    for (i, (g, w)) in tail.iter().zip(want).enumerate() {
        // A stripped tag leaves the frame without it.
        let w = if w[12..14] == [0x81, 0x00] {
            [&w[..12], &w[16..]].concat()
        } else {
            w.clone()
        };
        assert_eq!(**g, w, "clean frame {i} intact");
    }
    for ctx in r.os.held.drain(..) {
        r.rx.return_buffer(ctx);
    }
    r.iterate();
    r.check_accounting();
    assert_eq!(r.rx.buffers_with_os(), 0);
    eprintln!(
        "{layout:?} mergeable={mergeable}: {} scribbles, {} frames indicated, stats {:?}",
        writes.load(Ordering::Relaxed),
        r.os.frames.len(),
        r.rx.stats()
    );
}

#[test]
fn split_scribbled_while_parsing() {
    hostile(1, Layout::Split, false);
}

#[test]
fn split_mergeable_scribbled_while_parsing() {
    hostile(2, Layout::Split, true);
}

#[test]
fn packed_scribbled_while_parsing() {
    hostile(3, Layout::Packed, false);
}

#[test]
fn packed_mergeable_scribbled_while_parsing() {
    hostile(4, Layout::Packed, true);
}
