//! Confidential mode of the TX engine (issue 16): every frame is copied into the queue's shared
//! buffers, and the device never gets the address of the OS's memory. Packet-level checks of
//! what reaches the device (rust-vmm's virtio-queue reading the split ring), of back-pressure
//! when the shared buffers are all with the device, and of the mode's resolution from the
//! `ConfidentialMode` keyword and VIRTIO_F_ACCESS_PLATFORM through bring-up.

use netring::{
    Ieee8021qTxTagging, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q, TxChecksumAction as A,
};
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::config::{ConfidentialMode, UserSettings};
use virtionet::txbounce::{LARGE_BUF, MAX_LARGE, MAX_SMALL, SMALL_BUF};
use virtionet::txqueue::{TxQueue, TxSettings};
use vnet_harness::device::{DeviceChain, SplitDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::frames;
use vnet_harness::netdev::{Backend, DEFAULT_FEATURES};
use vnet_harness::os_tx::{OsTx, TxFrame};
use vnet_harness::rng::Rng;
use vnet_harness::sim::{MAC, machine};

const TX_FEATURES: Features = Features::VERSION_1
    .union(Features::NET_CSUM)
    .union(Features::NET_HOST_TSO4)
    .union(Features::NET_HOST_TSO6)
    .union(Features::NET_HOST_ECN)
    .union(Features::RING_EVENT_IDX)
    .union(Features::RING_INDIRECT_DESC);

const CONFIDENTIAL: TxSettings = TxSettings {
    insert_priority: true,
    insert_vlan: true,
    vlan_id: 0,
    confidential: true,
};

struct Bench {
    ram: GuestRam,
    os: OsTx,
    tx: TxQueue,
    dev: SplitDevice,
    rng: Rng,
    /// Every device address range the OS's fragments ever pointed into.
    os_ranges: Vec<(u64, u64)>,
}

fn setup(seed: u64, settings: TxSettings, ring: u32, qsize: u16) -> Bench {
    let ram = GuestRam::new(128 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsTx::new(ring, 4 * ring, &mut rng);
    let cfg = QueueConfig {
        size: qsize,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 64,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let dev = SplitDevice::new(&ram, qsize, vq.addresses(), true);
    let ext = os.extensions();
    let tx = TxQueue::new(ram.arena(), vq, ring, TX_FEATURES, settings, ext).unwrap();
    Bench {
        ram,
        os,
        tx,
        dev,
        rng,
        os_ranges: Vec::new(),
    }
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    frames::ethernet(dst, [2, 0, 0, 0, 0, 0x99], ethertype, payload)
}

fn tcp4(payload: usize, flags: u8) -> Vec<u8> {
    frames::tcp4(
        [2, 0, 0, 0, 0, 1],
        [2, 0, 0, 0, 0, 0x99],
        flags,
        (0..payload).map(|i| (i * 7) as u8),
    )
}

fn lso(mss: u32) -> NetPacketGso {
    let mut g = NetPacketGso::default();
    g.set_mss(mss).unwrap();
    g
}

impl Bench {
    /// One OS poll: post what fits (recording the OS's buffer ranges), Advance if the driver
    /// owns packets, reclaim. Returns the packets returned.
    fn iterate(&mut self, pending: &mut Vec<TxFrame>) -> usize {
        while let Some(f) = pending.first() {
            if !self.os.post(self.ram.arena(), f) {
                break;
            }
            pending.remove(0);
        }
        for r in self.os.held_ranges() {
            if !self.os_ranges.contains(&r) {
                self.os_ranges.push(r);
            }
        }
        if self.os.driver_owns_packets() {
            let tx = &mut self.tx;
            self.os.callback(|p, f| tx.advance(p, f)).expect("advance");
        }
        self.os.reclaim(self.ram.arena()).len()
    }

    /// The chains the device can take now.
    fn device_take(&mut self) -> Vec<DeviceChain> {
        self.dev.pop_all(&self.ram)
    }

    /// Whether any segment of `c` lies (even partly) in memory the OS's fragments pointed into.
    fn touches_os_memory(&self, c: &DeviceChain) -> bool {
        c.readable.iter().chain(&c.writable).any(|&(a, l)| {
            let end = a + u64::from(l);
            self.os_ranges.iter().any(|&(s, e)| a < e && s < end)
        })
    }
}

/// Applies NEEDS_CSUM as a device does and returns the frame.
fn device_checksum(h: &NetHeader, mut frame: Vec<u8>) -> Vec<u8> {
    if h.flags & hdr_flags::NEEDS_CSUM != 0 {
        let mut c = offload::checksum::Checksum::new();
        c.add_bytes(&frame[usize::from(h.csum_start)..]);
        let at = usize::from(h.csum_start + h.csum_offset);
        frame[at..at + 2].copy_from_slice(&c.finish().to_be_bytes());
    }
    frame
}

fn tagged(frame: &[u8], tci: u16) -> Vec<u8> {
    let mut t = frame[..12].to_vec();
    t.extend_from_slice(&[0x81, 0x00]);
    t.extend_from_slice(&tci.to_be_bytes());
    t.extend_from_slice(&frame[12..]);
    t
}

/// What the OS sends and what the device must see for it.
enum Expect {
    /// These bytes, with a zero header.
    Plain(Vec<u8>),
    /// A TCP checksum request: after the device's checksum, this frame with valid checksums.
    Checksum(Vec<u8>),
    /// An LSO request over this frame (the IPv4 length as the OS should have set it).
    Lso(Vec<u8>),
}

/// A random mix: raw frames of every length from 14 to 9000 bytes (short ones padded), tagged
/// frames, TCP checksum requests and LSO packets, each in up to 6 fragments.
fn random_traffic(rng: &mut Rng, n: usize) -> (Vec<TxFrame>, Vec<Expect>) {
    let mut pending = Vec::new();
    let mut expected = Vec::new();
    for i in 0..n {
        let split: Vec<usize> = (0..rng.below(6))
            .map(|_| 1 + rng.below(400) as usize)
            .collect();
        let kind = rng.below(10);
        let (frame, expect) = match kind {
            0..=4 => {
                let len = if rng.below(20) == 0 {
                    1515 + rng.below(7486) as usize
                } else {
                    14 + rng.below(1501) as usize
                };
                let payload: Vec<u8> = (0..len - 14).map(|_| rng.next_u64() as u8).collect();
                let dst = [[2, 0, 0, 0, 0, 1], [0x01, 0, 0x5e, 0, 0, 1], [0xff; 6]][i % 3];
                let bytes = eth(dst, 0x88b5, &payload);
                let mut want = bytes.clone();
                want.resize(want.len().max(60), 0);
                (
                    TxFrame {
                        bytes,
                        split,
                        ..Default::default()
                    },
                    Expect::Plain(want),
                )
            }
            5 | 6 => {
                let bytes = eth(
                    [2, 0, 0, 0, 0, 1],
                    0x88b5,
                    &vec![i as u8; rng.below(1400) as usize],
                );
                let mut tag = NetPacketIeee8021q::default();
                tag.set_priority_code_point(3).unwrap();
                tag.set_vlan_identifier(7).unwrap();
                tag.set_tx_tagging(Ieee8021qTxTagging::all());
                let mut want = tagged(&bytes, (3 << 13) | 7);
                want.resize(want.len().max(60), 0);
                (
                    TxFrame {
                        bytes,
                        split,
                        ieee8021q: tag,
                        ..Default::default()
                    },
                    Expect::Plain(want),
                )
            }
            7 | 8 => {
                let bytes = tcp4(rng.below(1400) as usize, 0x18);
                let mut want = bytes.clone();
                want.resize(want.len().max(60), 0);
                (
                    TxFrame {
                        bytes,
                        split,
                        checksum: NetPacketChecksum::tx(A::Required, A::Required),
                        ..Default::default()
                    },
                    Expect::Checksum(want),
                )
            }
            _ => {
                let want = tcp4(3000 + rng.below(57_000) as usize, 0x18);
                let mut os = want.clone();
                os[16] = 0; // the OS may leave an LSO packet's IPv4 length zero
                os[17] = 0;
                (
                    TxFrame {
                        bytes: os,
                        split: [54].into_iter().chain(split).collect(),
                        checksum: NetPacketChecksum::tx(A::Required, A::Required),
                        gso: lso(1448),
                        ..Default::default()
                    },
                    Expect::Lso(want),
                )
            }
        };
        pending.push(frame);
        expected.push(expect);
    }
    (pending, expected)
}

fn check_on_wire(i: usize, bytes: &[u8], want: &Expect) {
    let h = NetHeader::read(bytes).unwrap();
    let wire = &bytes[NetHeader::SIZE..];
    match want {
        Expect::Plain(w) => {
            assert_eq!(h, NetHeader::default(), "frame {i}: no offload asked");
            assert_eq!(wire, &w[..], "frame {i} on the wire");
        }
        Expect::Checksum(w) => {
            assert_eq!(
                (h.flags, h.gso_type, h.csum_start, h.csum_offset),
                (hdr_flags::NEEDS_CSUM, gso::NONE, 34, 16),
                "frame {i}"
            );
            let f = device_checksum(&h, wire.to_vec());
            let l = offload::Layout::parse(&f).unwrap();
            assert_eq!(offload::segment::verify_l4_checksum(&f, &l), Some(true));
            assert_eq!(offload::segment::verify_ipv4_checksum(&f, &l), Some(true));
            assert_eq!(&f[..24], &w[..24], "frame {i}: headers before the checksum");
            assert_eq!(&f[26..50], &w[26..50], "frame {i}");
            assert_eq!(&f[52..], &w[52..], "frame {i}: the payload");
        }
        Expect::Lso(w) => {
            assert_eq!(h.gso_type, gso::TCPV4, "frame {i}");
            assert_eq!((h.gso_size, h.hdr_len, h.csum_start), (1448, 54, 34));
            assert_eq!(wire.len(), w.len(), "frame {i}");
            assert_eq!(
                &wire[16..18],
                &w[16..18],
                "frame {i}: IPv4 total length restored"
            );
            let f = device_checksum(&h, wire.to_vec());
            let l = offload::Layout::parse(&f).unwrap();
            assert_eq!(offload::segment::verify_l4_checksum(&f, &l), Some(true));
            assert_eq!(&f[54..], &w[54..], "frame {i}: the payload, copied");
        }
    }
}

/// Runs `n` random frames through the engine, the device completing random subsets in random
/// order; checks every chain against the frame it carries. Returns how many chains touched the
/// OS's memory.
fn run_random(b: &mut Bench, n: usize) -> usize {
    let (mut pending, expected) = random_traffic(&mut b.rng, n);
    let (mut seen, mut returned, mut touching) = (0usize, 0usize, 0usize);
    let mut in_device: Vec<u16> = Vec::new();
    for _round in 0..100_000 {
        if returned == n && in_device.is_empty() {
            break;
        }
        returned += b.iterate(&mut pending);
        // What the queue's stop and release rely on: when the OS has every packet back, the
        // device holds no chain.
        if !b.os.driver_owns_packets() {
            assert_eq!(
                b.tx.virtqueue().in_flight(),
                0,
                "the OS has all, the device some"
            );
        }
        // Every shared buffer is free or behind a chain in flight (this test's queue: 64 small,
        // 8 large).
        if let Some((_, small, large)) = b.tx.bounce_buffers() {
            assert_eq!(
                small + large + usize::from(b.tx.virtqueue().in_flight()),
                64 + usize::from(MAX_LARGE),
                "buffer accounting"
            );
        }
        for c in b.device_take() {
            if b.touches_os_memory(&c) {
                touching += 1;
            }
            if b.tx.is_confidential() {
                assert_eq!(
                    (c.readable.len(), c.writable.len()),
                    (1, 0),
                    "one shared buffer per frame"
                );
            }
            let bytes = SplitDevice::gather(&b.ram, &c);
            check_on_wire(seen, &bytes, &expected[seen]);
            seen += 1;
            in_device.push(c.id);
        }
        let k = b.rng.below(in_device.len() as u64 + 1) as usize;
        for _ in 0..k {
            let j = b.rng.below(in_device.len() as u64) as usize;
            let id = in_device.swap_remove(j);
            b.dev.complete(&b.ram, id, 0);
        }
    }
    assert_eq!(
        (seen, returned),
        (n, n),
        "every frame sent once, every packet back"
    );
    let s = b.tx.stats();
    assert_eq!(
        s.bad_packets + s.offload_errors + s.unsegmentable + s.device_faults,
        0
    );
    assert_eq!(s.sent.frames(), n as u64);
    assert_eq!(
        b.os.rings.fragments.begin_index(),
        b.os.rings.fragments.end_index(),
        "all fragments returned"
    );
    touching
}

#[test]
fn confidential_frames_reach_the_device_byte_for_byte_from_shared_buffers_only() {
    let mut b = setup(16, CONFIDENTIAL, 64, 256);
    assert!(b.tx.is_confidential());
    let touching = run_random(&mut b, 3000);
    assert_eq!(touching, 0, "no descriptor points into the OS's memory");
    assert_eq!(b.tx.bounce_stats().copied, 3000);
    // Every shared buffer is back in the pool: 64 small (the ring has 64 packets), 8 large.
    let (bytes, small, large) = b.tx.bounce_buffers().unwrap();
    assert_eq!((small, large), (64, usize::from(MAX_LARGE)));
    assert_eq!(bytes, 64 * SMALL_BUF + usize::from(MAX_LARGE) * LARGE_BUF);
}

/// The same traffic without confidential mode: the descriptors do carry the OS's fragments —
/// so the check above can fail.
#[test]
fn direct_mode_hands_the_os_memory_to_the_device() {
    let settings = TxSettings {
        confidential: false,
        ..CONFIDENTIAL
    };
    let mut b = setup(16, settings, 64, 256);
    assert!(!b.tx.is_confidential() && b.tx.bounce_buffers().is_none());
    let touching = run_random(&mut b, 500);
    assert!(
        touching > 300,
        "{touching} of 500 chains point into OS memory"
    );
}

/// The OS gets its packet back when the device returns the chain of its copy (so "every packet
/// back" still means "the virtqueue is empty", which the queue's stop relies on), and the shared
/// buffer goes back to the pool with it.
#[test]
fn packets_and_buffers_come_back_when_the_device_returns_the_chain() {
    let mut b = setup(2, CONFIDENTIAL, 64, 64);
    let mut pending: Vec<TxFrame> = (0..10)
        .map(|i| TxFrame {
            bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &[i as u8; 300]),
            split: vec![100, 100],
            ..Default::default()
        })
        .collect();
    assert_eq!(b.iterate(&mut pending), 0);
    assert_eq!(b.os.held_buffers(), 10);
    let chains = b.device_take();
    assert_eq!(chains.len(), 10);
    assert_eq!(b.tx.bounce_buffers().unwrap().1, 64 - 10, "ten buffers out");
    for (i, c) in chains.iter().enumerate().take(4) {
        let bytes = SplitDevice::gather(&b.ram, c);
        assert_eq!(&bytes[12 + 14..], &[i as u8; 300][..]);
        b.dev.complete(&b.ram, c.id, 0);
    }
    assert_eq!(b.iterate(&mut pending), 4, "the four returned");
    assert_eq!(b.tx.bounce_buffers().unwrap().1, 64 - 6);
    for c in &chains[4..] {
        b.dev.complete(&b.ram, c.id, 0);
    }
    assert_eq!(b.iterate(&mut pending), 6);
    assert_eq!(b.tx.bounce_buffers().unwrap().1, 64);
    assert!(!b.os.driver_owns_packets());
    // The queue can be released without a reset: nothing is in flight.
    let Bench { ram, tx, .. } = b;
    assert!(tx.release(ram.arena()).is_some());
}

/// Large frames exhaust the 8 large buffers while the virtqueue has room: the rest wait in the
/// ring, in order, unsent and not dropped, through any number of Advances, until the device
/// returns buffers; then every one is sent intact.
#[test]
fn an_exhausted_large_pool_holds_packets_in_the_ring() {
    let mut b = setup(3, CONFIDENTIAL, 64, 64);
    let frames: Vec<Vec<u8>> = (0..20u8)
        .map(|i| {
            let mut f = tcp4(60_000, 0x18);
            f[100] = i;
            f
        })
        .collect();
    let mut pending: Vec<TxFrame> = frames
        .iter()
        .map(|f| TxFrame {
            bytes: f.clone(),
            split: vec![54, 30_000],
            checksum: NetPacketChecksum::tx(A::Required, A::Required),
            gso: lso(1448),
            ..Default::default()
        })
        .collect();
    let mut returned = b.iterate(&mut pending);
    let mut held = b.device_take();
    assert_eq!(
        held.len(),
        usize::from(MAX_LARGE),
        "as many as there are large buffers"
    );
    assert_eq!(returned, 0);
    assert_eq!(b.tx.bounce_buffers().unwrap().2, 0);
    // Advances with nothing returned by the device: nothing posted, nothing dropped, nothing
    // returned; one wait each.
    for k in 0..5 {
        assert_eq!(b.iterate(&mut pending), 0);
        assert!(b.device_take().is_empty(), "Advance {k} posted nothing");
        assert_eq!(b.tx.bounce_stats().waits, 2 + k);
    }
    assert_eq!(
        b.os.held_buffers(),
        20,
        "eight in flight, twelve wait in the ring"
    );
    let mut seen: Vec<Vec<u8>> = held
        .iter()
        .map(|c| SplitDevice::gather(&b.ram, c))
        .collect();
    // The device returns buffers a few at a time; the waiting packets follow.
    for _ in 0..100 {
        for c in held.drain(..held.len().min(3)) {
            b.dev.complete(&b.ram, c.id, 0);
        }
        returned += b.iterate(&mut pending);
        let new = b.device_take();
        seen.extend(new.iter().map(|c| SplitDevice::gather(&b.ram, c)));
        held.extend(new);
        if returned == 20 {
            break;
        }
    }
    assert_eq!(returned, 20);
    assert_eq!(seen.len(), 20, "every packet sent once");
    for (i, bytes) in seen.iter().enumerate() {
        check_on_wire(i, bytes, &Expect::Lso(frames[i].clone()));
    }
    let s = b.tx.stats();
    assert_eq!(s.bad_packets + s.offload_errors + s.unsegmentable, 0);
}

/// Small frames on a virtqueue larger than the small pool: at most 256 in flight, the rest wait.
#[test]
fn an_exhausted_small_pool_holds_packets_in_the_ring() {
    let mut b = setup(4, CONFIDENTIAL, 512, 512);
    let mut pending: Vec<TxFrame> = (0..300u32)
        .map(|i| TxFrame {
            bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &i.to_be_bytes().repeat(50)),
            ..Default::default()
        })
        .collect();
    let mut returned = b.iterate(&mut pending);
    let first = b.device_take();
    assert_eq!(first.len(), usize::from(MAX_SMALL));
    assert_eq!(returned, 0);
    assert_eq!(b.tx.bounce_buffers().unwrap().1, 0);
    assert!(b.tx.virtqueue().num_free() > 200, "the virtqueue had room");
    assert_eq!(b.iterate(&mut pending), 0);
    assert!(b.device_take().is_empty());
    let mut seen: Vec<Vec<u8>> = first
        .iter()
        .map(|c| SplitDevice::gather(&b.ram, c))
        .collect();
    for c in &first {
        b.dev.complete(&b.ram, c.id, 0);
    }
    returned += b.iterate(&mut pending);
    let rest = b.device_take();
    assert_eq!((returned, rest.len()), (256, 44));
    seen.extend(rest.iter().map(|c| SplitDevice::gather(&b.ram, c)));
    for c in &rest {
        b.dev.complete(&b.ram, c.id, 0);
    }
    returned += b.iterate(&mut pending);
    assert_eq!(returned, 300);
    for (i, bytes) in seen.iter().enumerate() {
        assert_eq!(
            &bytes[12 + 14..12 + 18],
            &(i as u32).to_be_bytes(),
            "in order"
        );
    }
}

/// A flushed confidential queue: the chains in flight are abandoned and their buffers go back
/// to the pool; every packet comes back to the OS.
#[test]
fn a_flushed_confidential_queue_returns_buffers_and_packets() {
    let mut b = setup(5, CONFIDENTIAL, 64, 64);
    let mut pending: Vec<TxFrame> = (0..20)
        .map(|_| TxFrame {
            bytes: tcp4(20_000, 0x18),
            checksum: NetPacketChecksum::tx(A::Required, A::Required),
            gso: lso(1448),
            ..Default::default()
        })
        .collect();
    assert_eq!(b.iterate(&mut pending), 0);
    assert_eq!(b.device_take().len(), 8);
    b.tx.flush();
    assert_eq!(b.tx.virtqueue().in_flight(), 0);
    assert_eq!(b.tx.bounce_buffers().unwrap().2, usize::from(MAX_LARGE));
    assert_eq!(b.iterate(&mut pending), 20);
    assert!(b.device_take().is_empty());
    assert_eq!(b.tx.stats().flushed, 20);
    assert!(!b.os.driver_owns_packets());
}

/// A frame no shared buffer can hold (larger than any the OS is allowed to send) is dropped
/// and counted; the next one goes.
#[test]
fn a_frame_larger_than_a_shared_buffer_is_dropped_and_counted() {
    let mut b = setup(6, CONFIDENTIAL, 64, 64);
    let mut pending = vec![
        TxFrame {
            bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &vec![1; LARGE_BUF]),
            split: vec![30_000, 30_000],
            ..Default::default()
        },
        TxFrame {
            bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &[2; 100]),
            ..Default::default()
        },
    ];
    assert_eq!(b.iterate(&mut pending), 1, "the dropped one");
    let got = b.device_take();
    assert_eq!(got.len(), 1);
    assert_eq!(
        &SplitDevice::gather(&b.ram, &got[0])[12 + 14..],
        &[2; 100][..]
    );
    assert_eq!(b.tx.stats().bad_packets, 1);
    b.dev.complete(&b.ram, got[0].id, 0);
    assert_eq!(b.iterate(&mut pending), 1);
}

#[test]
fn the_keyword_and_access_platform_resolve_the_mode() {
    let (ap, none) = (Features::ACCESS_PLATFORM, Features::empty());
    let on = |m: ConfidentialMode, f| m.resolve(f);
    assert!(!on(ConfidentialMode::Off, ap) && !on(ConfidentialMode::Off, none));
    assert!(on(ConfidentialMode::Auto, ap) && !on(ConfidentialMode::Auto, none));
    assert!(on(ConfidentialMode::On, ap) && on(ConfidentialMode::On, none));
    let kw = |v| UserSettings::from_keywords(|k| (k == "ConfidentialMode").then_some(v), None);
    assert_eq!(kw(0).confidential_mode, ConfidentialMode::Off);
    assert_eq!(kw(1).confidential_mode, ConfidentialMode::Auto);
    assert_eq!(kw(2).confidential_mode, ConfidentialMode::On);
    assert_eq!(
        kw(7).confidential_mode,
        ConfidentialMode::Auto,
        "out of range: default"
    );
    assert_eq!(
        UserSettings::default().confidential_mode,
        ConfidentialMode::Auto
    );
}

/// Through bring-up: a device offering ACCESS_PLATFORM gets it negotiated and the TX engine
/// runs confidential (unless the keyword says Off); the keyword On turns it on without it.
/// Frames cross the in-process device intact either way.
#[test]
fn bring_up_carries_the_mode_to_the_engine_and_frames_cross_intact() {
    let cases = [
        (Features::ACCESS_PLATFORM, ConfidentialMode::Auto, true),
        (Features::ACCESS_PLATFORM, ConfidentialMode::Off, false),
        (Features::empty(), ConfidentialMode::Auto, false),
        (Features::empty(), ConfidentialMode::On, true),
        (Features::RING_PACKED, ConfidentialMode::On, true),
    ];
    for (k, (extra, mode, want)) in cases.into_iter().enumerate() {
        let user = UserSettings {
            confidential_mode: mode,
            ..Default::default()
        };
        let mut m = machine(
            DEFAULT_FEATURES | extra,
            Backend::Channel,
            &user,
            40 + k as u64,
        );
        assert_eq!(
            m.adapter.features().contains(Features::ACCESS_PLATFORM),
            extra.contains(Features::ACCESS_PLATFORM)
        );
        assert_eq!(m.adapter.capabilities().confidential, want, "case {k}");
        assert_eq!(m.tx.is_confidential(), want, "case {k}");
        let mut frames = Vec::new();
        let mut pending = Vec::new();
        for i in 0..300usize {
            let len = 14 + m.rng.below(1500) as usize;
            let f = frames::ethernet(
                [2, 0, 0, 0, 0, 9],
                MAC,
                0x88b5,
                &(0..len - 14).map(|j| (j + i) as u8).collect::<Vec<_>>(),
            );
            let split = (0..m.rng.below(4))
                .map(|_| 1 + m.rng.below(300) as usize)
                .collect();
            frames.push(f.clone());
            pending.push(TxFrame {
                bytes: f,
                split,
                ..Default::default()
            });
        }
        for _ in 0..10_000 {
            m.round(&mut pending).unwrap();
            if m.dev.sent.len() == frames.len() && !m.os_tx.driver_owns_packets() {
                break;
            }
        }
        assert_eq!(m.dev.sent.len(), frames.len(), "case {k}");
        for (i, (got, want)) in m.dev.sent.iter().zip(&frames).enumerate() {
            let mut want = want.clone();
            want.resize(want.len().max(60), 0);
            assert_eq!(got, &want, "case {k}: frame {i}");
        }
        assert_eq!(
            m.tx.bounce_stats().copied,
            if want { 300 } else { 0 },
            "case {k}"
        );
    }
}
