//! Issue 16, finding 1, focused: a device that rewrites a header-length field of an RX buffer it
//! has already completed, while the driver parses it. The device completes short IPv4/TCP frames
//! (14 + 20 + 20 bytes, IHL 5, data offset 5) whose virtio-net header asks for the layout to be
//! parsed (DATA_VALID or NEEDS_CSUM, VIRTIO_NET_F_GUEST_CSUM negotiated); a device thread flips
//! the IPv4 IHL nibble of exactly those buffers between 5 and 15 (a 60-byte IP header, which
//! does not fit in the frame) as fast as it can, while `RxQueue::advance` parses them. A parser
//! that checks IHL×4 against the frame and then reads the byte again to use it reports a layer-3
//! length the frame cannot hold. A second pair of tests flips the TCP data offset instead (5 ↔ 15
//! and 5 ↔ 1: a TCP header length under 20 breaks NetAdapterCx's layout rules), non-mergeable
//! and mergeable buffers each.
//!
//! Whatever the device does, every layout indicated must be one that held for one snapshot of
//! the bytes: layer-3 length 0 or ≥ 20, matching the IPv4 type (20 without options, more with),
//! a TCP length 0 or 20–60, and all headers within the frame. Every buffer is accounted for
//! after every Advance, and once the flipping stops, clean traffic flows again, intact.
//!
//! Each test runs for `VNET_DOUBLE_FETCH_MS` (default 600 ms, and at least 2,000 completions),
//! at most 2,000,000 rounds of up to 16 completions; the flipper stops on a flag the test thread
//! sets however it leaves (or 120 s after the budget). `VNET_DOUBLE_FETCH_MS=20000` is the long
//! variant.

use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use netring::{Layer2Type, Layer3Type, Layer4Type};
use virtio::Features;
use virtio::net::{NetHeader, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings};
use vnet_harness::device::{self, DeviceChain, SplitDevice};
use vnet_harness::dma::GuestRam;
use vnet_harness::os_rx::{OsRx, RxFrame, check_rx_accounting};
use vnet_harness::rng::Rng;

const QUEUE: u16 = 64;
const POOL: u32 = 64;
/// Buffer offsets of the fields flipped: the virtio-net header is 12 bytes, then Ethernet (14),
/// then IPv4 (20: the version/IHL byte first), then TCP (the data offset in byte 12).
const IHL_AT: usize = 12 + 14;
const DOFF_AT: usize = 12 + 14 + 20 + 12;
/// The most buffers one round completes (and the flipper targets).
const BATCH: usize = 16;

struct Rig {
    ram: GuestRam,
    os: OsRx,
    rx: RxQueue,
    dev: SplitDevice,
    rng: Rng,
}

/// `plain`: no software verification and no RSS hash, so the DATA_VALID frames take the
/// engine's plain path (parsed from the same private copy) and the NEEDS_CSUM ones the general
/// path; otherwise every frame takes the general path.
fn rig(seed: u64, mergeable: bool, plain: bool) -> Rig {
    let ram = GuestRam::new(8 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsRx::new(32, 64, &mut rng);
    let vq = VirtQueue::new(
        ram.arena(),
        QueueConfig {
            size: QUEUE,
            layout: Layout::Split,
            event_idx: true,
            max_indirect: 0,
        },
    )
    .unwrap();
    let dev = SplitDevice::new(&ram, QUEUE, vq.addresses(), true);
    let mut features = Features::VERSION_1 | Features::NET_GUEST_CSUM;
    if mergeable {
        features |= Features::NET_MRG_RXBUF;
    }
    let settings = RxSettings {
        buffers: POOL,
        buffer_size: if mergeable { 256 } else { 12 + 1518 },
        strip_vlan: true,
        software_checksum: !plain,
        bounce: false,
        context_tag: 0,
    };
    let ext = os.extensions();
    let mut rx = RxQueue::new(ram.arena(), vq, features, settings, ext).unwrap();
    // The software hash parses the layout's headers too.
    if !plain {
        let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        rx.set_rss(Some((&key, netring::HashProtocolType::all())));
    }
    Rig {
        ram,
        os,
        rx,
        dev,
        rng,
    }
}

/// A 54-byte IPv4/TCP frame (IHL 5, data offset 5, no payload) with valid checksums; `tag` in
/// the sequence number tells frames apart.
fn short_frame(tag: u32) -> Vec<u8> {
    let mut f = vnet_harness::frames::tcp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 0x10, []);
    f[38..42].copy_from_slice(&tag.to_be_bytes());
    let c = offload::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    offload::segment::fill_l4_checksum(&mut f).unwrap();
    assert_eq!((f.len(), f[14], f[46]), (54, 0x45, 0x50));
    f
}

/// What the device completes for frame `tag`: a virtio-net header that makes the driver parse
/// the layout — the device's checksum verdict (DATA_VALID), or a partial checksum to complete
/// (NEEDS_CSUM, csum_start at the TCP header, the field holding the pseudo-header sum as a local
/// sender leaves it) — and the frame as the device writes it.
fn completion(rng: &mut Rng, tag: u32) -> (NetHeader, Vec<u8>) {
    let mut f = short_frame(tag);
    if rng.below(2) == 0 {
        let h = NetHeader {
            flags: hdr_flags::DATA_VALID,
            num_buffers: 1,
            ..Default::default()
        };
        return (h, f);
    }
    let pseudo = offload::checksum::pseudo_header_v4([10, 0, 0, 1], [10, 0, 0, 2], 6, 20).fold();
    f[50..52].copy_from_slice(&pseudo.to_be_bytes());
    let h = NetHeader {
        flags: hdr_flags::NEEDS_CSUM,
        csum_start: 34,
        csum_offset: 16,
        num_buffers: 1,
        ..Default::default()
    };
    (h, f)
}

/// The buffers the flipper rewrites: CPU addresses of the buffers the device completed in the
/// current round, and how many there are.
struct Targets {
    addr: [AtomicUsize; BATCH],
    count: AtomicUsize,
}

/// Which header-length field the device flips.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Field {
    /// The IPv4 IHL: 5 ↔ 15.
    Ihl,
    /// The TCP data offset: 5 ↔ 15 and 5 ↔ 1 (the IHL stays 5).
    DataOffset,
}

/// Flips `field` of the current targets until `stop` (or, should the test thread never set it,
/// `deadline`). Returns the stores made.
fn flip_loop(t: &Targets, stop: &AtomicBool, field: Field, deadline: Instant) -> u64 {
    let mut writes = 0u64;
    let mut odd = false;
    let mut passes = 0u64;
    while !stop.load(Ordering::Relaxed) {
        passes += 1;
        if passes.is_multiple_of(1024) && Instant::now() > deadline {
            break;
        }
        let n = t.count.load(Ordering::Acquire).min(BATCH);
        if n == 0 {
            std::hint::spin_loop();
            continue;
        }
        for _ in 0..64 {
            odd = !odd;
            for slot in &t.addr[..n] {
                let p = slot.load(Ordering::Relaxed) as *const AtomicU8;
                match field {
                    Field::Ihl => {
                        // SAFETY: `p` is the start of a buffer of the RX pool (at least 256
                        // bytes), in guest RAM that outlives the scope this thread runs in; the
                        // byte is written atomically, as a device's DMA would write it.
                        let ihl = unsafe { &*p.wrapping_add(IHL_AT) };
                        ihl.store(if odd { 0x4f } else { 0x45 }, Ordering::Relaxed);
                        writes += 1;
                    }
                    Field::DataOffset => {
                        // SAFETY: as above.
                        let d = unsafe { &*p.wrapping_add(DOFF_AT) };
                        d.store(if odd { 0xf0 } else { 0x10 }, Ordering::Relaxed);
                        d.store(0x50, Ordering::Relaxed);
                        writes += 2;
                    }
                }
            }
        }
    }
    writes
}

/// The layout of `f` is one that held for one snapshot of its bytes.
fn check_layout(f: &RxFrame, what: &str) {
    let l = f.layout;
    let (l2, l3, l4) = (
        usize::from(l.layer2_header_length()),
        usize::from(l.layer3_header_length()),
        usize::from(l.layer4_header_length()),
    );
    let ok2 = match l.layer2_type() {
        Some(Layer2Type::Ethernet) => (14..=22).contains(&l2),
        _ => l2 == 0 && l3 == 0 && l4 == 0,
    };
    // An IPv4 header is 20 bytes without options and 24-60 with; IPv6 at least 40.
    let ok3 = match l.layer3_type() {
        Some(Layer3Type::Ipv4NoOptions) => l3 == 20,
        Some(Layer3Type::Ipv4WithOptions) => (24..=60).contains(&l3) && l3.is_multiple_of(4),
        Some(Layer3Type::Ipv4UnspecifiedOptions) => l3 == 0 || (20..=60).contains(&l3),
        Some(
            Layer3Type::Ipv6NoExtensions
            | Layer3Type::Ipv6WithExtensions
            | Layer3Type::Ipv6UnspecifiedExtensions,
        ) => l3 == 0 || l3 >= 40,
        _ => l3 == 0,
    };
    // A TCP header is 20-60 bytes in steps of 4, UDP's 8 (0: not given).
    let ok4 = match l.layer4_type() {
        Some(Layer4Type::Tcp) => l4 == 0 || ((20..=60).contains(&l4) && l4.is_multiple_of(4)),
        Some(Layer4Type::Udp) => l4 == 0 || l4 == 8,
        _ => l4 == 0,
    };
    assert!(
        ok2 && ok3 && ok4 && l2 + l3 + l4 <= f.bytes.len(),
        "{what}: layout {l:?} (L2 {l2}, L3 {l3}, L4 {l4}) for a {}-byte frame",
        f.bytes.len()
    );
}

impl Rig {
    /// Posts OS packets and fragments, runs Advance (which must not fail), gathers what was
    /// indicated, checks each layout and returns every buffer; then the accounting invariant.
    fn iterate(&mut self, what: &str) {
        self.os.post(32, 64);
        let rx = &mut self.rx;
        let r = self.os.callback(|p, f| rx.advance(p, f));
        assert!(r.is_ok(), "{what}: advance failed: {r:?}");
        let seen = self.os.frames.len();
        self.os.reclaim();
        for f in &self.os.frames[seen..] {
            check_layout(f, what);
        }
        for ctx in self.os.held.drain(..) {
            self.rx.return_buffer(ctx);
        }
        self.check_accounting(what);
    }

    fn check_accounting(&self, what: &str) {
        // Every buffer given back (`iterate` returns them all).
        check_rx_accounting(&self.rx, POOL, 0, what);
    }

    /// The device takes a buffer for each of `frames` (as many as it has), writes the header and
    /// the frame into it, completes them all and returns their chains.
    fn fill(&mut self, frames: &[(NetHeader, Vec<u8>)]) -> Vec<DeviceChain> {
        let mut chains = Vec::new();
        for (h, f) in frames {
            let Some(c) = self.dev.pop(&self.ram) else {
                break;
            };
            let mut bytes = vec![0u8; NetHeader::SIZE];
            h.write(&mut bytes).unwrap();
            bytes.extend_from_slice(f);
            assert_eq!(
                device::fill(self.ram.arena(), &c, &bytes),
                bytes.len() as u32
            );
            chains.push((c, bytes.len() as u32));
        }
        chains
            .into_iter()
            .map(|(c, len)| {
                // Whether to interrupt does not matter: the OS polls.
                let _ = self.dev.complete(&self.ram, c.id, len);
                c
            })
            .collect()
    }
}

/// Sets the stop flag however the test thread leaves the scope (a failed assertion too), and
/// then says how far it got.
struct Guard<'a> {
    stop: &'a AtomicBool,
    rounds: &'a AtomicU64,
    completions: &'a AtomicU64,
    start: Instant,
}

impl Drop for Guard<'_> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if std::thread::panicking() {
            eprintln!(
                "FAILED after {} rounds, {} completions, {:.3} s",
                self.rounds.load(Ordering::Relaxed),
                self.completions.load(Ordering::Relaxed),
                self.start.elapsed().as_secs_f64()
            );
        }
    }
}

fn budget() -> Duration {
    let ms = std::env::var("VNET_DOUBLE_FETCH_MS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(600u64);
    Duration::from_millis(ms)
}

fn double_fetch(seed: u64, mergeable: bool, field: Field) {
    double_fetch_on(seed, mergeable, field, false);
}

fn double_fetch_on(seed: u64, mergeable: bool, field: Field, plain: bool) {
    let what = format!("{field:?} mergeable={mergeable} plain={plain}");
    let mut r = rig(seed, mergeable, plain);
    let targets = Targets {
        addr: core::array::from_fn(|_| AtomicUsize::new(0)),
        count: AtomicUsize::new(0),
    };
    let stop = AtomicBool::new(false);
    let (rounds, completions) = (AtomicU64::new(0), AtomicU64::new(0));
    let budget = budget();
    let mut tag = 0u32;
    let mut parsed = 0u64;
    let writes = std::thread::scope(|scope| {
        let flip_deadline = Instant::now() + budget + Duration::from_secs(120);
        let (t, st) = (&targets, &stop);
        let flipper = scope.spawn(move || flip_loop(t, st, field, flip_deadline));
        let guard = Guard {
            stop: &stop,
            rounds: &rounds,
            completions: &completions,
            start: Instant::now(),
        };
        let min_completions = 2_000;
        let max_rounds = 2_000_000u64;
        let mut round = 0u64;
        while round < max_rounds
            && (guard.start.elapsed() < budget
                || completions.load(Ordering::Relaxed) < min_completions)
        {
            round += 1;
            rounds.store(round, Ordering::Relaxed);
            let batch: Vec<(NetHeader, Vec<u8>)> = (0..1 + r.rng.below(BATCH as u64))
                .map(|_| {
                    tag += 1;
                    completion(&mut r.rng, tag)
                })
                .collect();
            // The flipper leaves the previous round's buffers (the device may refill them).
            targets.count.store(0, Ordering::Release);
            let chains = r.fill(&batch);
            for (slot, c) in targets.addr.iter().zip(&chains) {
                let (addr, len) = c.writable[0];
                let p = r.ram.arena().cpu_ptr(addr, len as usize).unwrap();
                slot.store(p.addr(), Ordering::Relaxed);
            }
            targets.count.store(chains.len(), Ordering::Release);
            completions.fetch_add(chains.len() as u64, Ordering::Relaxed);
            let before = r.os.frames.len();
            r.iterate(&what);
            parsed += (r.os.frames.len() - before) as u64;
        }
        drop(guard);
        flipper.join().unwrap()
    });
    assert!(writes > 0, "the flipper ran");
    let hostile_frames = r.os.frames.len();
    // The device stops flipping: clean frames flow again, intact, with the whole layout.
    let mut next = 0u32;
    let clean = 4 * POOL;
    let deadline = Instant::now() + Duration::from_secs(20);
    while next < clean && Instant::now() < deadline {
        let batch: Vec<(NetHeader, Vec<u8>)> = (0..8)
            .map(|i| completion(&mut r.rng, 0x8000_0000 | (next + i)))
            .take((clean - next) as usize)
            .collect();
        next += r.fill(&batch).len() as u32;
        r.iterate(&what);
    }
    r.iterate(&what);
    assert_eq!(
        next, clean,
        "{what}: the device got buffers again (no wedge)"
    );
    let got = &r.os.frames[hostile_frames..];
    assert_eq!(
        got.len(),
        clean as usize,
        "{what}: every clean frame arrived"
    );
    for (i, f) in got.iter().enumerate() {
        // NEEDS_CSUM ones too: the driver completed their TCP checksum.
        let want = short_frame(0x8000_0000 | i as u32);
        assert_eq!(f.bytes, want, "{what}: clean frame {i} intact");
        let l = f.layout;
        assert_eq!(
            (
                l.layer2_header_length(),
                l.layer3_type(),
                l.layer3_header_length(),
                l.layer4_type(),
                l.layer4_header_length()
            ),
            (
                14,
                Some(Layer3Type::Ipv4NoOptions),
                20,
                Some(Layer4Type::Tcp),
                20
            ),
            "{what}: clean frame {i} layout"
        );
    }
    r.check_accounting(&what);
    eprintln!(
        "{what}: {} rounds, {} completions, {parsed} indicated under flipping, {writes} flips, \
         stats {:?}",
        rounds.load(Ordering::Relaxed),
        completions.load(Ordering::Relaxed),
        r.rx.stats()
    );
}

#[test]
fn ihl_flipped_while_parsing() {
    double_fetch(0x16_01, false, Field::Ihl);
}

#[test]
fn ihl_flipped_while_parsing_mergeable() {
    double_fetch(0x16_02, true, Field::Ihl);
}

#[test]
fn data_offset_flipped_while_parsing() {
    double_fetch(0x16_03, false, Field::DataOffset);
}

#[test]
fn data_offset_flipped_while_parsing_mergeable() {
    double_fetch(0x16_04, true, Field::DataOffset);
}

#[test]
fn ihl_flipped_while_parsing_on_the_plain_path() {
    double_fetch_on(0x16_05, false, Field::Ihl, true);
}

#[test]
fn data_offset_flipped_while_parsing_on_the_plain_path_mergeable() {
    double_fetch_on(0x16_06, true, Field::DataOffset, true);
}
