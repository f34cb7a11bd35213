//! The RX queue engine between rust-vmm's virtio-queue as the device and the NetAdapterCx OS side
//! (driver-managed buffers, with the verifier's RX checks).

use netring::RxChecksumEvaluation as Eval;
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::rxqueue::{RxQueue, RxSettings, context_pair};
use vnet_harness::device::SplitDevice;
use vnet_harness::dma::GuestRam;
use vnet_harness::frames;
use vnet_harness::os_rx::OsRx;
use vnet_harness::rng::Rng;

struct Bench {
    ram: GuestRam,
    os: OsRx,
    rx: RxQueue,
    dev: SplitDevice,
    rng: Rng,
    mergeable: bool,
    buffer_size: u32,
}

fn setup(seed: u64, mergeable: bool, features: Features) -> Bench {
    setup_tagged(seed, mergeable, features, 0)
}

fn setup_tagged(seed: u64, mergeable: bool, features: Features, context_tag: u16) -> Bench {
    setup_with(seed, mergeable, features, context_tag, true, true)
}

fn setup_with(
    seed: u64,
    mergeable: bool,
    features: Features,
    context_tag: u16,
    strip_vlan: bool,
    software_checksum: bool,
) -> Bench {
    let ram = GuestRam::new(32 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsRx::new(64, 128, &mut rng);
    let cfg = QueueConfig {
        size: 128,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 0,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let dev = SplitDevice::new(&ram, 128, vq.addresses(), true);
    let ext = os.extensions();
    let buffer_size = if mergeable { 2048 } else { 12 + 1518 };
    let features = if mergeable {
        features | Features::NET_MRG_RXBUF
    } else {
        features
    };
    let settings = RxSettings {
        buffers: 128,
        buffer_size,
        strip_vlan,
        software_checksum,
        bounce: false,
        context_tag,
    };
    let rx = RxQueue::new(ram.arena(), vq, features, settings, ext).unwrap();
    Bench {
        ram,
        os,
        rx,
        dev,
        rng,
        mergeable,
        buffer_size,
    }
}

impl Bench {
    /// One OS iteration: post (maybe), Advance, indicate, give back some held buffers.
    fn iterate(&mut self, post: bool) {
        // The OS posts in bursts, and sometimes not at all (its NBL pool is busy).
        if post && self.rng.below(3) == 0 {
            let (p, f) = (self.rng.below(20) as u32, self.rng.below(40) as u32);
            self.os.post(p, f);
        }
        let rx = &mut self.rx;
        self.os.callback(|p, f| rx.advance(p, f)).expect("advance");
        self.os.reclaim();
        let keep = self.rng.below(self.os.held.len() as u64 + 1) as usize;
        for ctx in self.os.held.drain(keep..) {
            self.rx.return_buffer(ctx);
        }
    }

    /// The device delivers a frame; `false` if it has no buffer for it now.
    fn deliver(&mut self, hdr: NetHeader, frame: &[u8]) -> bool {
        let mut bytes = vec![0u8; 12];
        let mut h = hdr;
        let need = if self.mergeable {
            (12 + frame.len()).div_ceil(self.buffer_size as usize)
        } else {
            1
        };
        assert!(self.mergeable || 12 + frame.len() <= self.buffer_size as usize);
        h.num_buffers = need as u16;
        h.write(&mut bytes).unwrap();
        bytes.extend_from_slice(frame);
        if self.dev.available(&self.ram) < need as u16 {
            return false;
        }
        for chunk in bytes.chunks(self.buffer_size as usize) {
            let c = self.dev.pop(&self.ram).expect("buffer available");
            assert_eq!(c.writable.len(), 1);
            assert_eq!(c.writable[0].1, self.buffer_size);
            assert_eq!(SplitDevice::fill(&self.ram, &c, chunk), chunk.len() as u32);
            self.dev.complete(&self.ram, c.id, chunk.len() as u32);
        }
        true
    }
}

fn frame(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0x77]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn run_traffic(b: &mut Bench, frames: &[Vec<u8>]) {
    let mut next = 0;
    for _ in 0..200_000 {
        if b.os.frames.len() == frames.len() {
            break;
        }
        b.iterate(true);
        for _ in 0..b.rng.below(6) {
            if next < frames.len() && b.deliver(NetHeader::default(), &frames[next]) {
                next += 1;
            }
        }
    }
    assert_eq!(b.os.frames.len(), frames.len(), "every frame indicated");
    for (i, (got, want)) in b.os.frames.iter().zip(frames).enumerate() {
        assert_eq!(&got.bytes, want, "frame {i}");
    }
    // The stack gives everything back; the pool is whole again.
    for ctx in b.os.held.drain(..) {
        b.rx.return_buffer(ctx);
    }
    b.iterate(false);
    assert_eq!(b.rx.buffers_with_os(), 0);
    assert_eq!(b.rx.stats().bad_returns, 0);
}

#[test]
fn frames_are_indicated_in_order_byte_for_byte() {
    let mut b = setup(1, false, Features::VERSION_1);
    let mut rng = Rng::new(99);
    let frames: Vec<Vec<u8>> = (0..3000)
        .map(|i| {
            let len = 14 + rng.below(1500) as usize;
            let dst = match i % 3 {
                0 => [2, 0, 0, 0, 0, 1],
                1 => [1, 0, 0x5e, 0, 0, 9],
                _ => [0xff; 6],
            };
            frame(
                dst,
                0x88b5,
                &(0..len - 14)
                    .map(|_| rng.next_u64() as u8)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    run_traffic(&mut b, &frames);
    let s = b.rx.stats();
    assert_eq!(s.received.frames(), 3000);
    assert_eq!(
        s.received.bytes(),
        frames.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(
        (
            s.received.unicast_frames,
            s.received.multicast_frames,
            s.received.broadcast_frames
        ),
        (1000, 1000, 1000)
    );
    assert!(
        s.os_ring_exhausted > 0,
        "the OS ran out of packets at times, and nothing was lost"
    );
    assert!(b.os.frames.iter().all(|f| f.fragments == 1));
}

#[test]
fn mergeable_buffers_make_multi_fragment_packets() {
    let mut b = setup(2, true, Features::VERSION_1);
    let mut rng = Rng::new(7);
    let frames: Vec<Vec<u8>> = (0..600)
        .map(|_| {
            let len = 14 + rng.below(9000) as usize;
            frame(
                [2, 0, 0, 0, 0, 1],
                0x88b5,
                &(0..len - 14)
                    .map(|_| rng.next_u64() as u8)
                    .collect::<Vec<_>>(),
            )
        })
        .collect();
    run_traffic(&mut b, &frames);
    for (f, want) in b.os.frames.iter().zip(&frames) {
        assert_eq!(usize::from(f.fragments), (12 + want.len()).div_ceil(2048));
    }
    assert!(b.os.frames.iter().any(|f| f.fragments >= 5));
}

fn tcp4(payload: usize) -> Vec<u8> {
    let mut ip = frames::ipv4_tcp(0x10, (0..payload).map(|i| (i * 3) as u8));
    let c = offload::checksum::checksum(&ip[..20]);
    ip[10..12].copy_from_slice(&c.to_be_bytes());
    let mut f = frame([2, 0, 0, 0, 0, 1], 0x0800, &ip);
    offload::segment::fill_l4_checksum(&mut f).unwrap();
    f
}

#[test]
fn metadata_checksum_rsc_and_vlan() {
    let mut b = setup(
        3,
        true,
        Features::VERSION_1 | Features::NET_GUEST_CSUM | Features::NET_RSC_EXT,
    );
    b.os.post(64, 127);
    b.iterate(false);
    let good = tcp4(1000);
    let mut bad = good.clone();
    let last = bad.len() - 1;
    bad[last] ^= 0xff;
    let mut tagged = good[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, 0x60, 0x2a]); // PCP 3, VID 42
    tagged.extend_from_slice(&good[12..]);
    let coalesced = tcp4(8000);
    assert!(b.deliver(NetHeader::default(), &good));
    assert!(b.deliver(NetHeader::default(), &bad));
    assert!(b.deliver(
        NetHeader {
            flags: hdr_flags::DATA_VALID,
            ..Default::default()
        },
        &bad
    ));
    assert!(b.deliver(NetHeader::default(), &tagged));
    let rsc = NetHeader {
        flags: hdr_flags::DATA_VALID | hdr_flags::RSC_INFO,
        gso_type: gso::TCPV4,
        gso_size: 1448,
        csum_start: 6,
        csum_offset: 2,
        ..Default::default()
    };
    assert!(b.deliver(rsc, &coalesced));
    b.iterate(false);
    let f = &b.os.frames;
    assert_eq!(f.len(), 5);
    let l4 = |i: usize| f[i].checksum.rx_layer4();
    assert_eq!(
        (l4(0), l4(1), l4(2)),
        (Some(Eval::Valid), Some(Eval::Invalid), Some(Eval::Valid))
    );
    assert_eq!(f[0].checksum.rx_layer3(), Some(Eval::Valid));
    assert_eq!(f[0].layout.layer4_type(), Some(netring::Layer4Type::Tcp));
    assert_eq!(
        (
            f[0].layout.layer2_header_length(),
            f[0].layout.layer3_header_length(),
            f[0].layout.layer4_header_length()
        ),
        (14, 20, 20)
    );
    assert_eq!(f[3].bytes, good, "tag stripped");
    assert_eq!(
        (
            f[3].ieee8021q.vlan_identifier(),
            f[3].ieee8021q.priority_code_point()
        ),
        (42, 3)
    );
    assert_eq!(l4(3), Some(Eval::Valid));
    assert_eq!(
        (
            f[4].rsc.coalesced_segment_count,
            f[4].rsc.duplicate_ack_count
        ),
        (6, 2)
    );
    assert_eq!(f[4].bytes, coalesced);
    let s = b.rx.stats();
    assert_eq!(
        (s.checksum_errors, s.vlan_stripped, s.coalesced_packets),
        (1, 1, 1)
    );
}

#[test]
fn runts_are_dropped_and_their_buffers_reused() {
    let mut b = setup(4, false, Features::VERSION_1);
    b.os.post(64, 127);
    b.iterate(false);
    assert!(b.deliver(NetHeader::default(), &[1, 2, 3]));
    assert!(b.deliver(NetHeader::default(), &frame([0xff; 6], 0x0806, &[0; 28])));
    b.iterate(false);
    assert_eq!(b.rx.stats().runts, 1);
    assert_eq!(b.os.frames.len(), 1);
    b.iterate(false);
    assert_eq!(
        b.rx.virtqueue().in_flight(),
        127,
        "the runt's buffer is posted again (128 minus the one with the OS)"
    );
}

#[test]
fn cancel_in_the_middle_of_traffic() {
    let mut b = setup(5, false, Features::VERSION_1);
    b.os.post(10, 10);
    b.iterate(false);
    for i in 0..30u8 {
        assert!(b.deliver(
            NetHeader::default(),
            &frame([2, 0, 0, 0, 0, 1], 0x88b5, &[i; 100])
        ));
    }
    b.iterate(false); // 10 indicated, 20 wait
    assert_eq!(b.os.frames.len(), 10);
    b.os.post(20, 20);
    let rx = &mut b.rx;
    b.os.callback(|p, f| rx.cancel(p, f)).expect("cancel");
    b.os.reclaim();
    assert_eq!(
        b.os.frames.len(),
        10,
        "cancelled packets were returned ignored, without data"
    );
    assert_eq!(
        b.os.rings.packets.begin_index(),
        b.os.rings.packets.end_index()
    );
    assert_eq!(
        b.os.rings.fragments.begin_index(),
        b.os.rings.fragments.end_index()
    );
    assert_eq!(b.rx.stats().cancelled, 20);
    for ctx in b.os.held.drain(..) {
        b.rx.return_buffer(ctx);
    }
    assert_eq!(b.rx.buffers_with_os(), 0);
    // A second return of the same context is caught, not double-freed.
    b.rx.return_buffer(1);
    assert_eq!(b.rx.stats().bad_returns, 1);
}

#[test]
fn rss_hash_is_reported_in_the_extension() {
    let mut b = setup(6, false, Features::VERSION_1 | Features::NET_GUEST_CSUM);
    let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
    let types = netring::HashProtocolType::IPV4 | netring::HashProtocolType::TCP;
    b.rx.set_rss(Some((&key, types)));
    b.os.post(64, 127);
    b.iterate(false);
    let f = tcp4(200);
    assert!(b.deliver(NetHeader::default(), &f));
    assert!(b.deliver(
        NetHeader::default(),
        &frame([2, 0, 0, 0, 0, 1], 0x88b5, &[0; 60])
    ));
    b.iterate(false);
    let got = &b.os.frames;
    assert_eq!(got.len(), 2);
    let input = [10, 0, 0, 1, 10, 0, 0, 2, 0x04, 0xd2, 0x00, 0x50];
    assert_eq!(
        got[0].hash.hash_value,
        offload::rss::toeplitz_bitwise(&key, &input)
    );
    assert_eq!(got[0].hash.protocol(), types);
    assert_eq!(
        got[1].hash,
        netring::NetPacketHash::default(),
        "not IP: no hash"
    );
    b.rx.set_rss(None);
}

/// Several receive queues share one `EvtAdapterReturnRxBuffer`: each queue's return contexts
/// carry its pair, and a context of another queue is refused (counted), never released.
#[test]
fn return_contexts_name_their_queue() {
    let mut b = setup_tagged(7, false, Features::VERSION_1, 5);
    let frames: Vec<Vec<u8>> = (0..40u8)
        .map(|i| frame([2, 0, 0, 0, 0, 1], 0x88b5, &[i; 60]))
        .collect();
    let mut next = 0;
    let mut held = Vec::new();
    for _ in 0..10_000 {
        if b.os.frames.len() == frames.len() {
            break;
        }
        b.os.post(8, 8);
        let rx = &mut b.rx;
        b.os.callback(|p, f| rx.advance(p, f)).expect("advance");
        b.os.reclaim();
        held.append(&mut b.os.held);
        if next < frames.len() && b.deliver(NetHeader::default(), &frames[next]) {
            next += 1;
        }
    }
    assert_eq!(b.os.frames.len(), frames.len());
    assert_eq!(
        held.len(),
        frames.len(),
        "one buffer per frame, all with the stack"
    );
    assert!(
        held.iter().all(|&c| context_pair(c) == 5),
        "contexts name pair 5"
    );
    let foreign = (held[0] & ((1 << 24) - 1)) | (4 << 24);
    b.rx.return_buffer(foreign);
    assert_eq!(
        b.rx.stats().bad_returns,
        1,
        "pair 4's context is not this queue's"
    );
    assert_eq!(b.rx.buffers_with_os(), frames.len(), "and released nothing");
    for c in held {
        b.rx.return_buffer(c);
    }
    assert_eq!(b.rx.buffers_with_os(), 0);
    assert_eq!(b.rx.stats().bad_returns, 1);
}

/// Buffers published without a kick (the device's event index said none) and then nothing. On
/// the split ring without steering the device never needs that kick (QEMU re-checks the ring
/// after asking for kicks), so the engine sends none; under device steering (RSS) the idle
/// queue kicks again on its back-off (a packet may be parked on it, see
/// `packets_parked_by_steering_are_released_by_a_kick_on_their_ingress_queue`).
#[test]
fn unannounced_buffers_are_kicked_again_only_where_the_device_may_need_it() {
    for (features, want) in [
        (Features::VERSION_1, [false; 6]),
        (
            Features::VERSION_1 | Features::NET_RSS,
            [false, true, false, true, false, false],
        ),
    ] {
        let mut b = setup(11, false, features);
        let advance = |b: &mut Bench| {
            b.os.post(16, 16);
            let rx = &mut b.rx;
            let r = b.os.callback(|p, f| rx.advance(p, f)).expect("advance");
            b.os.reclaim();
            r
        };
        let first = advance(&mut b);
        assert!(
            first.posted > 0 && first.kicked,
            "the first buffers are announced"
        );
        // The device takes five buffers, then asks to be kicked when the 6th is made available —
        // long before the driver's next publish.
        for i in 0..5u8 {
            assert!(b.deliver(
                NetHeader::default(),
                &frame([2, 0, 0, 0, 0, 1], 0x88b5, &[i; 60])
            ));
        }
        assert!(b.dev.enable_kicks(&b.ram));
        let r = advance(&mut b);
        assert!(r.indicated == 5 && !r.kicked);
        for c in b.os.held.drain(..) {
            b.rx.return_buffer(c);
        }
        let r = advance(&mut b);
        assert_eq!(
            (r.posted, r.kicked),
            (5, false),
            "suppressed by the device's event index"
        );
        let kicks: Vec<bool> = (0..6).map(|_| advance(&mut b).kicked).collect();
        assert_eq!(kicks, want, "{features:?}");
        let stall = want.iter().filter(|k| **k).count() as u64;
        assert_eq!(b.rx.stats().stall_kicks, stall);
    }
}

/// QEMU 7.2's software RSS (hw/net/virtio-net.c, `virtio_net_receive_rcu` and
/// `virtio_net_process_rss`; net/net.c, `qemu_deliver_packet_iov`) as a two-queue device: every
/// frame arrives on queue 0 (a single-queue back end) and goes to the queue its hash names; when
/// that queue has no buffer the frame is parked on queue 0, which then receives nothing more
/// (`receive_disabled`), and only a kick on queue 0 flushes it (`virtio_net_handle_rx` flushes
/// the kicked queue's own subqueue). Queue 0 has buffers, so its event index stays where the
/// first publish left it: its reposts are suppressed.
struct Steered {
    q: [Bench; 2],
    parked: Option<(usize, Vec<u8>)>,
}

impl Steered {
    fn new(features: Features) -> Self {
        Self {
            q: [
                setup_tagged(21, false, features, 0),
                setup_tagged(22, false, features, 1),
            ],
            parked: None,
        }
    }

    /// A frame from the wire for queue `target`; `false` when the back end is not read (a frame
    /// is parked).
    fn arrive(&mut self, target: usize, frame: Vec<u8>) -> bool {
        if self.parked.is_some() {
            return false;
        }
        self.steer(target, frame);
        true
    }

    fn steer(&mut self, target: usize, frame: Vec<u8>) {
        let q = &mut self.q[target];
        if !q.deliver(NetHeader::default(), &frame) {
            // `virtio_net_has_buffers`: the target queue asks to be kicked…
            q.dev.enable_kicks(&q.ram);
            // …and the frame waits on the queue it came in on.
            self.parked = Some((target, frame));
        }
    }

    /// The device's RX kick handler for queue `k`.
    fn kick(&mut self, k: usize) {
        if k == 0
            && let Some((target, frame)) = self.parked.take()
        {
            self.steer(target, frame);
        }
    }

    /// One Advance of queue `k` (the OS posting and giving back everything when `give_back`).
    fn advance(&mut self, k: usize, give_back: bool) {
        let r = self.q[k].poll(give_back);
        if r.kicked {
            self.kick(k);
        }
    }
}

/// The first frame of a flow to a queue whose buffers are all with the stack is parked on the
/// ingress queue; when the stack gives the buffers back, the target queue's kick does not free
/// it — only a kick on the ingress queue does, and that queue has nothing new to post. Without
/// the engine's repeat kick on an idle queue under steering the frame (and every frame after it)
/// waits forever.
#[test]
fn packets_parked_by_steering_are_released_by_a_kick_on_their_ingress_queue() {
    let mut d = Steered::new(Features::VERSION_1 | Features::NET_RSS);
    d.advance(0, true);
    d.advance(1, false);
    // Queue 1's 128 buffers fill up and stay with the stack (and the engine).
    let f = |q: u8, i: u8| frame([2, 0, 0, 0, 0, 1], 0x88b5, &[q, i, 0, 0]);
    for i in 0..128u8 {
        assert!(d.arrive(1, f(1, i)));
        if i % 16 == 15 {
            d.advance(1, false);
        }
    }
    assert_eq!(d.q[1].dev.available(&d.q[1].ram), 0);
    // A new flow's first frame for queue 1, then traffic for queue 0: all held up.
    assert!(d.arrive(1, f(1, 200)));
    assert!(d.parked.is_some(), "parked on the ingress queue");
    assert!(!d.arrive(0, f(0, 0)), "the ingress queue receives nothing");
    // The stack returns queue 1's buffers: reposted, and kicked (queue 1 asked), but that kick
    // flushes queue 1's own (empty) backlog. NetAdapterCx polls both queues as it does when
    // idle: Advance, arm, Advance — a few rounds.
    let mut pending = vec![(0usize, f(0, 0))];
    for _ in 0..8 {
        d.advance(1, true);
        d.advance(0, true);
        pending.retain(|(t, fr)| !d.arrive(*t, fr.clone()));
    }
    assert!(d.parked.is_none(), "the parked frame was never released");
    assert!(pending.is_empty(), "the ingress queue never received again");
    for _ in 0..4 {
        d.advance(0, true);
        d.advance(1, true);
    }
    let got = |k: usize| {
        d.q[k]
            .os
            .frames
            .iter()
            .map(|x| x.bytes.clone())
            .collect::<Vec<_>>()
    };
    assert!(
        got(1).contains(&f(1, 200)),
        "the parked frame reached queue 1"
    );
    assert!(got(0).contains(&f(0, 0)), "queue 0 receives again");
    assert_eq!(got(1).len(), 129);
    assert!(d.q[0].rx.stats().stall_kicks > 0);
}

/// The same device without steering never parks a frame for another queue, and a queue short of
/// buffers asks for (and gets) the kick itself: no repeat kick is sent.
#[test]
fn without_steering_a_queue_short_of_buffers_is_kicked_once_and_never_again() {
    let mut b = setup(31, false, Features::VERSION_1);
    let f = |i: u8| frame([2, 0, 0, 0, 0, 1], 0x88b5, &[i; 60]);
    let step = |b: &mut Bench, give_back: bool| b.poll(give_back);
    step(&mut b, false);
    let mut sent = 0u8;
    while b.deliver(NetHeader::default(), &f(sent)) {
        sent += 1;
    }
    assert!(b.dev.enable_kicks(&b.ram) || b.dev.available(&b.ram) == 0);
    let kicked: Vec<bool> = (0..8).map(|_| step(&mut b, true).kicked).collect();
    assert_eq!(
        kicked.iter().filter(|k| **k).count(),
        1,
        "the device asked for the reposted buffers, once: {kicked:?}"
    );
    assert_eq!(b.rx.stats().stall_kicks, 0);
    assert!(
        b.deliver(NetHeader::default(), &f(sent)),
        "buffers are there"
    );
}

impl Bench {
    /// One OS poll: post, Advance, reclaim — and give every indicated buffer back when
    /// `give_back`.
    fn poll(&mut self, give_back: bool) -> virtionet::rxqueue::RxAdvance {
        self.os.post(64, 128);
        let rx = &mut self.rx;
        let r = self.os.callback(|p, f| rx.advance(p, f)).expect("advance");
        self.os.reclaim();
        if give_back {
            for c in self.os.held.drain(..) {
                self.rx.return_buffer(c);
            }
        }
        r
    }

    /// The device completes one buffer per entry of `parts`: `bytes` written, `len` claimed.
    fn deliver_raw(&mut self, parts: &[(&[u8], u32)]) {
        for (bytes, len) in parts {
            let c = self.dev.pop(&self.ram).expect("buffer available");
            SplitDevice::fill(&self.ram, &c, bytes);
            self.dev.complete(&self.ram, c.id, *len);
        }
    }

    fn advance_ok(&mut self) {
        let rx = &mut self.rx;
        let r = self.os.callback(|p, f| rx.advance(p, f));
        assert!(r.is_ok(), "advance failed: {r:?}");
        self.os.reclaim();
        let c = self.rx.buffer_counts();
        assert_eq!(
            c.free + c.posted + c.pending + c.with_os,
            128,
            "every buffer in one state: {c:?}"
        );
    }
}

fn with_header(h: NetHeader, frame: &[u8]) -> Vec<u8> {
    let mut b = vec![0u8; 12];
    h.write(&mut b).unwrap();
    b.extend_from_slice(frame);
    b
}

/// A merged packet whose num_buffers can never be satisfied — more than the pool, or more
/// than the OS's fragment ring holds — is dropped and counted; the queue keeps receiving.
/// (Before: more than the pool stopped the queue with `RxFault::BadBufferCount`; more than the
/// fragment ring but within the pool waited forever, everything behind it too.)
#[test]
fn impossible_buffer_counts_are_dropped_not_waited_for() {
    for claimed in [200u16, 128, 65535] {
        let mut b = setup(21, true, Features::VERSION_1);
        b.os.post(64, 127);
        b.advance_ok();
        let bad = with_header(
            NetHeader {
                num_buffers: claimed,
                ..Default::default()
            },
            &frame([2, 0, 0, 0, 0, 1], 0x88b5, &[7; 100]),
        );
        b.deliver_raw(&[(&bad, bad.len() as u32)]);
        b.advance_ok();
        let good = frame([2, 0, 0, 0, 0, 1], 0x88b5, &[9; 100]);
        for _ in 0..3 {
            assert!(b.deliver(NetHeader::default(), &good));
        }
        for _ in 0..3 {
            b.os.post(64, 127);
            b.advance_ok();
        }
        assert_eq!(
            b.os.frames.len(),
            3,
            "num_buffers {claimed}: the queue goes on"
        );
        assert!(b.os.frames.iter().all(|f| f.bytes == good));
        assert_eq!(b.rx.stats().bad_buffer_counts, 1);
    }
}

/// A coalesced packet that says it coalesced zero segments is indicated as a plain packet: no
/// RSC extension values reach the OS.
#[test]
fn rsc_with_zero_segments_is_a_plain_packet() {
    let mut b = setup(
        22,
        true,
        Features::VERSION_1 | Features::NET_GUEST_CSUM | Features::NET_RSC_EXT,
    );
    b.os.post(64, 127);
    b.advance_ok();
    let rsc = NetHeader {
        flags: hdr_flags::DATA_VALID | hdr_flags::RSC_INFO,
        gso_type: gso::TCPV4,
        gso_size: 1448,
        csum_start: 0,  // coalesced segments
        csum_offset: 3, // duplicate ACKs
        ..Default::default()
    };
    let f = tcp4(3000);
    assert!(b.deliver(rsc, &f));
    b.advance_ok();
    assert_eq!(b.os.frames.len(), 1);
    assert_eq!(
        b.os.frames[0].rsc,
        netring::NetPacketRsc::default(),
        "no RSC information"
    );
    assert_eq!(b.os.frames[0].bytes, f);
    let s = b.rx.stats();
    assert_eq!((s.coalesced_packets, s.rsc_zero_segments), (0, 1));
}

/// An empty continuation buffer of a merged packet is taken back, not indicated as a
/// zero-length fragment (which breaks the OS's contract: the verifier's RxFragmentLength).
#[test]
fn empty_continuation_buffers_are_not_indicated() {
    let mut b = setup(23, true, Features::VERSION_1);
    b.os.post(64, 127);
    b.advance_ok();
    let f = frame(
        [2, 0, 0, 0, 0, 1],
        0x88b5,
        &(0..3000).map(|i| i as u8).collect::<Vec<_>>(),
    );
    let whole = with_header(
        NetHeader {
            num_buffers: 4,
            ..Default::default()
        },
        &f,
    );
    let (a, rest) = whole.split_at(2048);
    b.deliver_raw(&[(a, 2048), (&[], 0), (rest, rest.len() as u32), (&[], 0)]);
    b.advance_ok();
    assert_eq!(b.os.frames.len(), 1);
    assert_eq!(b.os.frames[0].bytes, f);
    assert_eq!(b.os.frames[0].fragments, 2);
    assert_eq!(b.rx.stats().empty_fragments, 2);
    assert_eq!(
        b.rx.buffers_with_os(),
        2,
        "the empty buffers are not with the OS"
    );
}

/// A used length past the buffer is the virtqueue's to catch (a device fault: the queue stops
/// until the adapter resets it), before the engine could indicate a fragment longer than its
/// buffer.
#[test]
fn used_length_past_the_buffer_is_a_device_fault() {
    let mut b = setup(24, false, Features::VERSION_1);
    b.os.post(64, 127);
    b.advance_ok();
    let f = with_header(
        NetHeader::default(),
        &frame([2, 0, 0, 0, 0, 1], 0x88b5, &[1; 100]),
    );
    b.deliver_raw(&[(&f, b.buffer_size + 1)]);
    let rx = &mut b.rx;
    let r = b.os.callback(|p, f| rx.advance(p, f));
    assert!(
        matches!(r, Err(virtionet::rxqueue::RxFault::Device(_))),
        "{r:?}"
    );
    b.os.reclaim();
    assert!(b.os.frames.is_empty());
    assert_eq!(b.rx.stats().device_faults, 1);
}

/// The private header copy starts with the first frame bytes (rxqueue::HEAD_FIRST) and grows
/// only when the headers may go further: an IPv6 packet whose Hop-by-Hop options (256 bytes)
/// and TCP header end 350 bytes in still parses to TCP with the whole chain in
/// Layer3HeaderLength, and IPv4 and TCP with 40 option bytes each (134 bytes of headers) to TCP
/// with its full length.
#[test]
fn headers_past_the_first_copy_still_parse_fully() {
    use netring::{Layer3Type, Layer4Type};
    let mut b = setup(31, false, Features::VERSION_1);
    // IPv6: next header 0 (Hop-by-Hop, 256 bytes: Hdr Ext Len 31, PadN filling it), then TCP.
    let mut v6 = vec![0u8; 40];
    v6[0] = 0x60;
    v6[4..6].copy_from_slice(&((256 + 20 + 16) as u16).to_be_bytes());
    v6[6] = 0; // Hop-by-Hop
    v6[7] = 64;
    v6[8..24].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]);
    v6[24..40].copy_from_slice(&[0xfe, 0x80, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2]);
    let mut hbh = vec![0u8; 256];
    hbh[0] = 6; // next: TCP
    hbh[1] = 31; // (31 + 1) * 8 = 256 bytes
    hbh[2] = 1; // PadN
    hbh[3] = 252;
    v6.extend_from_slice(&hbh);
    let mut tcp = vec![0u8; 20];
    tcp[12] = 5 << 4;
    tcp[13] = 0x10;
    v6.extend_from_slice(&tcp);
    v6.extend_from_slice(&[0x5a; 16]);
    // IPv4 with 40 option bytes (IHL 15), TCP with 40 option bytes (data offset 15).
    let mut v4 = vec![0u8; 60];
    v4[0] = 0x4f;
    v4[2..4].copy_from_slice(&((60 + 60 + 16) as u16).to_be_bytes());
    v4[8] = 64;
    v4[9] = 6;
    v4[12..16].copy_from_slice(&[10, 0, 0, 1]);
    v4[16..20].copy_from_slice(&[10, 0, 0, 2]);
    v4[20..60].fill(1); // NOP options
    let mut tcp = vec![0u8; 60];
    tcp[12] = 15 << 4;
    tcp[13] = 0x10;
    tcp[20..60].fill(1); // NOP options
    v4.extend_from_slice(&tcp);
    v4.extend_from_slice(&[0x5a; 16]);
    let frames = vec![
        frame([2, 0, 0, 0, 0, 1], 0x86dd, &v6),
        frame([2, 0, 0, 0, 0, 1], 0x0800, &v4),
    ];
    run_traffic(&mut b, &frames);
    assert_eq!(b.os.frames.len(), 2);
    let l = b.os.frames[0].layout;
    assert_eq!(l.layer3_type(), Some(Layer3Type::Ipv6WithExtensions));
    assert_eq!(l.layer3_header_length(), 40 + 256);
    assert_eq!(l.layer4_type(), Some(Layer4Type::Tcp));
    assert_eq!(l.layer4_header_length(), 20);
    let l = b.os.frames[1].layout;
    assert_eq!(l.layer3_type(), Some(Layer3Type::Ipv4WithOptions));
    assert_eq!(l.layer3_header_length(), 60);
    assert_eq!(l.layer4_type(), Some(Layer4Type::Tcp));
    assert_eq!(l.layer4_header_length(), 60);
    for (got, sent) in b.os.frames.iter().zip(&frames) {
        assert_eq!(&got.bytes, sent);
    }
}

/// What the OS gets when the driver has nothing to report beyond the link layer (the device
/// gave no checksum verdict, none is computed in software, no RSC, no RSS hash): Ethernet with
/// its header length for an untagged Ethernet II frame, 0 ("unknown": the OS parses layer 2 as
/// well) for a tagged or an 802.3 frame, layers 3 and 4 Unspecified with length 0, which
/// NetAdapterCx parses itself, and no checksum verdict. With DATA_VALID the same frame gets the
/// full layout and the verdicts; a stripped tag leaves an untagged frame.
#[test]
fn without_a_verdict_the_os_gets_the_link_layer() {
    for strip_vlan in [false, true] {
        let mut b = setup_with(
            21,
            true,
            Features::VERSION_1 | Features::NET_GUEST_CSUM,
            0,
            strip_vlan,
            false,
        );
        b.os.post(64, 127);
        b.iterate(false);
        let good = tcp4(1000);
        let mut tagged = good[..12].to_vec();
        tagged.extend_from_slice(&[0x81, 0x00, 0x60, 0x2a]); // PCP 3, VID 42
        tagged.extend_from_slice(&good[12..]);
        let llc = frame([0xff; 6], 0x0040, &[0xaa; 64]);
        let mcast = frame([1, 0, 0x5e, 0, 0, 1], 0x0800, &good[14..]);
        let valid = NetHeader {
            flags: hdr_flags::DATA_VALID,
            ..Default::default()
        };
        assert!(b.deliver(NetHeader::default(), &good));
        assert!(b.deliver(valid, &good));
        assert!(b.deliver(NetHeader::default(), &tagged));
        assert!(b.deliver(NetHeader::default(), &llc));
        assert!(b.deliver(NetHeader::default(), &mcast));
        let mut bad_ip = good.clone();
        bad_ip[18] ^= 0x01; // the IPv4 identification: the header checksum no longer holds
        assert!(b.deliver(valid, &bad_ip));
        b.iterate(false);
        let f = &b.os.frames;
        assert_eq!(f.len(), 6);
        let lens = |i: usize| {
            let l = f[i].layout;
            (
                l.layer2_type(),
                l.layer2_header_length(),
                l.layer3_type(),
                l.layer3_header_length(),
                l.layer4_type(),
                l.layer4_header_length(),
            )
        };
        let link = |l2: u8| {
            (
                Some(netring::Layer2Type::Ethernet),
                l2,
                Some(netring::Layer3Type::Unspecified),
                0,
                Some(netring::Layer4Type::Unspecified),
                0,
            )
        };
        let none = (Some(Eval::NotChecked), Some(Eval::NotChecked));
        let verdict = |i: usize| (f[i].checksum.rx_layer3(), f[i].checksum.rx_layer4());
        assert_eq!((lens(0), verdict(0)), (link(14), none));
        assert_eq!(f[0].bytes, good);
        assert_eq!(
            (lens(1), verdict(1)),
            (
                (
                    Some(netring::Layer2Type::Ethernet),
                    14,
                    Some(netring::Layer3Type::Ipv4NoOptions),
                    20,
                    Some(netring::Layer4Type::Tcp),
                    20
                ),
                (Some(Eval::Valid), Some(Eval::Valid))
            )
        );
        if strip_vlan {
            assert_eq!((lens(2), verdict(2)), (link(14), none));
            assert_eq!(f[2].bytes, good, "tag stripped");
            assert_eq!(f[2].ieee8021q.vlan_identifier(), 42);
        } else {
            assert_eq!((lens(2), verdict(2)), (link(0), none));
            assert_eq!(f[2].bytes, tagged);
        }
        assert_eq!((lens(3), verdict(3)), (link(0), none));
        assert_eq!(f[3].bytes, llc);
        assert_eq!((lens(4), verdict(4)), (link(14), none));
        assert_eq!(lens(5), lens(1));
        assert_eq!(verdict(5), (Some(Eval::Invalid), Some(Eval::Valid)));
        let s = b.rx.stats();
        assert_eq!(s.checksum_errors, 1);
        let sum = |v: &[&Vec<u8>]| v.iter().map(|x| x.len() as u64).sum::<u64>();
        let tagged_len = if strip_vlan { good.len() } else { tagged.len() };
        assert_eq!(
            (
                s.received.unicast_frames,
                s.received.unicast_bytes,
                s.received.broadcast_frames,
                s.received.broadcast_bytes,
                s.received.multicast_frames,
                s.received.multicast_bytes,
            ),
            (
                4,
                sum(&[&good, &good, &bad_ip]) + tagged_len as u64,
                1,
                llc.len() as u64,
                1,
                mcast.len() as u64
            )
        );
        assert_eq!(s.vlan_stripped, u64::from(strip_vlan));
    }
}
