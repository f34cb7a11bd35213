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

/// Offload parsing and metadata on arbitrary bytes: the layout parser, checksum verification, RX
/// metadata and VLAN stripping must never panic, and what they report must be consistent.
pub fn offload_parse(data: &[u8]) {
    use offload::Layout;
    let (prefix, stopped) = Layout::parse_prefix(data);
    match Layout::parse(data) {
        Ok(l) => assert!(
            l == prefix && stopped.is_none(),
            "parse is the whole prefix"
        ),
        Err(e) => assert_eq!(Some(e), stopped, "parse fails where the prefix stops"),
    }
    check_layout(data, &prefix);
    if let Ok(l) = Layout::parse(data) {
        assert!(l.header_len() <= data.len(), "layout beyond the buffer");
        let n = l.to_net();
        if l.l3.is_some() {
            assert!(n.layer3_header_length() >= 20);
        }
        let _ = offload::segment::verify_l4_checksum(data, &l);
        let _ = offload::segment::verify_ipv4_checksum(data, &l);
    }
    let hdr = virtio::net::NetHeader::read(data).unwrap_or_default();
    let body = data.get(12..).unwrap_or(&[]);
    let _ = offload::rx::metadata(
        &hdr,
        body,
        body.len(),
        offload::rx::RxOptions {
            guest_csum: true,
            rsc_ext: true,
            software_verify: true,
        },
    );
    let mut copy = data.to_vec();
    if offload::rx::strip_vlan(&mut copy).is_some() {
        assert_eq!(
            &copy[16..],
            &data[16..],
            "stripping moves only the MAC addresses"
        );
    }
}

/// The NET_PACKET_LAYOUT of a prefix obeys the verifier's rules (`reference/netadaptercx.md`
/// §2.4) and says no more than what parsed: no layer above an Unspecified one, Ethernet 14, 18 or
/// 22, IPv4 20–60, IPv6 40–511, TCP 20–60 and a multiple of 4, UDP 8, otherwise 0; a transport
/// verdict only for an unfragmented TCP/UDP layout; the headers inside the buffer.
fn check_layout(data: &[u8], l: &offload::Layout) {
    use netring::{Layer2Type, Layer3Type, Layer4Type};
    use offload::{L3, L4};
    assert!(l.header_len() <= data.len(), "prefix beyond the buffer");
    let n = l.to_net();
    let (l2, l3, l4) = (n.layer2_type(), n.layer3_type(), n.layer4_type());
    if l.l2_len == 0 {
        assert_eq!(
            n,
            netring::NetPacketLayout::ZERO,
            "no layer 2: nothing at all"
        );
        return;
    }
    assert_eq!(l2, Some(Layer2Type::Ethernet));
    assert!(matches!(n.layer2_header_length(), 14 | 18 | 22));
    let len3 = n.layer3_header_length();
    match l.l3 {
        None => {
            assert_eq!((l3, len3), (Some(Layer3Type::Unspecified), 0));
            assert_eq!(
                (l4, n.layer4_header_length()),
                (Some(Layer4Type::Unspecified), 0)
            );
            return;
        }
        Some(L3::Ipv4 { .. }) => assert!((20..=60).contains(&len3) && len3.is_multiple_of(4)),
        Some(L3::Ipv6 { .. }) => assert!((40..=511).contains(&len3) && len3.is_multiple_of(4)),
    }
    let len4 = n.layer4_header_length();
    match l.l4 {
        L4::Tcp => assert!((20..=60).contains(&len4) && len4.is_multiple_of(4)),
        L4::Udp => assert_eq!(len4, 8),
        L4::Fragment => assert!(l.fragmented && len4 == 0),
        L4::Other => assert!(!l.fragmented && len4 == 0),
        L4::Unspecified => assert_eq!(len4, 0),
    }
    if offload::segment::verify_l4_checksum(data, l).is_some() {
        assert!(matches!(l.l4, L4::Tcp | L4::Udp) && !l.fragmented);
    }
    let ip = data
        .get(l.l3_offset()..l.l4_offset())
        .expect("L3 inside the buffer");
    let _ = offload::wire::pseudo_header(ip, l.protocol, 0);
}

/// The TX offload mapping on arbitrary headers and requests: never panics; an offload header
/// always points inside the frame.
pub fn offload_tx(data: &[u8]) {
    use netring::{NetPacketChecksum, NetPacketGso, TxChecksumAction as A};
    use offload::tx::{DeviceTx, TxAction, TxRequest, prepare};
    let Some((&ctl, rest)) = data.split_first() else {
        return;
    };
    let Some((mss_bytes, frame)) = rest.split_at_checked(2) else {
        return;
    };
    let mut gso = NetPacketGso::default();
    let _ = gso.set_mss(u32::from(u16::from_le_bytes([mss_bytes[0], mss_bytes[1]])) % 3000);
    let req = TxRequest {
        layout: Default::default(),
        checksum: NetPacketChecksum::tx(
            if ctl & 1 != 0 {
                A::Required
            } else {
                A::Passthrough
            },
            if ctl & 2 != 0 {
                A::Required
            } else {
                A::Passthrough
            },
        ),
        gso,
    };
    let dev = DeviceTx {
        csum: ctl & 4 != 0,
        tso4: ctl & 8 != 0,
        tso6: ctl & 16 != 0,
        ecn: ctl & 32 != 0,
        uso: ctl & 64 != 0,
    };
    let mut headers = frame.to_vec();
    let frame_len = frame.len() + usize::from(ctl >> 7) * 1000;
    match prepare(&mut headers, frame_len, &req, dev) {
        Ok((l, TxAction::Offload(h))) if h.flags != 0 => {
            assert!(usize::from(h.csum_start) + usize::from(h.csum_offset) + 2 <= l.header_len());
        }
        Ok((l, TxAction::SoftwareChecksum | TxAction::Segment(_))) => {
            assert!(matches!(l.l4, offload::L4::Tcp | offload::L4::Udp) && !l.fragmented);
        }
        _ => {}
    }
    // Whatever the request, the layout prepare works from is the prefix the parser gives.
    check_layout(frame, &offload::Layout::parse_prefix(frame).0);
}

/// Software segmentation of arbitrary frames with arbitrary MSS: never panics; segments re-parse
/// with the same layout, and their payloads concatenate to the original payload.
pub fn offload_segment(data: &[u8]) {
    use offload::segment::{L4Checksum, Segmenter};
    let Some((mss_bytes, frame)) = data.split_at_checked(2) else {
        return;
    };
    let mss = u32::from(u16::from_le_bytes([mss_bytes[0], mss_bytes[1]]));
    let Ok(s) = Segmenter::new(frame, mss) else {
        return;
    };
    let hl = s.layout().header_len();
    let mut out = vec![0u8; hl + mss as usize];
    let mut payload = Vec::new();
    for i in 0..s.count() {
        let n = s
            .write(i, &mut out, L4Checksum::Full)
            .expect("segment fits its computed size");
        let l = offload::Layout::parse(&out[..n]).expect("segment parses");
        assert_eq!(l.header_len(), hl);
        payload.extend_from_slice(&out[hl..n]);
    }
    assert_eq!(payload, frame[hl..]);
}

/// Reads fuzz input as little fields; zeros once it runs out (every input is a device).
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn u8(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }
    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }
    fn u32(&mut self) -> u32 {
        u32::from_le_bytes([self.u8(), self.u8(), self.u8(), self.u8()])
    }
    /// The next `n` bytes (fewer once the input runs out).
    fn take(&mut self, n: usize) -> &[u8] {
        let (a, b) = self.0.split_at(n.min(self.0.len()));
        self.0 = b;
        a
    }
    /// A 16-bit device value, biased to the edges the driver's arithmetic must survive.
    fn edgy16(&mut self) -> u16 {
        match self.u8() % 8 {
            0 => 0,
            1 => 1,
            2 => 0x8000,
            3 => 0x7fff,
            4 => 0xffff,
            5 => u16::from(self.u8()),
            _ => self.u16(),
        }
    }
}

/// The regions of the capabilities the driver accepted: every register access must lie in one.
fn regions(caps: &virtio::pci::Capabilities) -> Vec<virtio::pci::Region> {
    let mut r = vec![caps.common, caps.notify, caps.isr];
    r.extend(caps.device);
    r
}

fn inside(r: &[virtio::pci::Region], a: &crate::pci_model::Access) -> bool {
    r.iter().any(|r| {
        r.bar == a.bar
            && a.offset >= r.offset
            && a.offset.saturating_add(u64::from(a.size)) <= r.offset + u64::from(r.length)
    })
}

/// Checks what the driver did to the registers so far: every access inside a BAR, naturally
/// aligned and inside a capability region the walk accepted (none at all if it refused the
/// capabilities), and no queue enabled twice since the last reset.
fn check_accesses(m: &crate::pci_model::VirtioPciModel, accepted: &[virtio::pci::Region]) {
    m.with(|s| {
        assert!(
            s.bad_accesses.is_empty(),
            "access outside a BAR or unaligned: {:?}",
            s.bad_accesses.first()
        );
        if let Some(a) = s.accesses.iter().find(|a| !inside(accepted, a)) {
            panic!("access outside every accepted capability region: {a:?} ({accepted:?})");
        }
        s.accesses.clear();
        let mut seen = HashSet::new();
        for q in &s.enabled {
            assert!(
                seen.insert(*q),
                "queue {q} programmed twice: {:?}",
                s.enabled
            );
        }
    });
}

/// Bring-up over the virtio-pci register model with the device's every value taken from the
/// input: the capability list (bytes rewritten anywhere in config space: odd and unaligned
/// offsets and lengths, BARs, the notify multiplier), BAR sizes, num_queues, each queue's
/// maximum size and notify offset, the device configuration (max_virtqueue_pairs with 0x8000
/// likely, RSS limits, MTU, MAC), offered features, rejected vectors or features, a reset that
/// never finishes, a configuration that keeps changing, status and generation changes between
/// steps; then `Adapter::start`, a configuration change, control polling, `reset_device` and
/// `restore`, and `stop`. Nothing may panic, every register access must be inside a BAR,
/// aligned and inside an accepted capability region, no queue index may be programmed twice
/// between resets, and every DMA region must be freed whatever failed. Returns whether
/// `Adapter::start` succeeded (for the smoke run's reach).
pub fn bringup(ram: &GuestRam, data: &[u8]) -> bool {
    use crate::pci_model::{BAR_LEN, VirtioPciModel};
    use virtio::Features;
    use virtionet::adapter::{Adapter, BringUp};
    use virtionet::config::UserSettings;

    let arena = ram.arena();
    let before = arena.outstanding();
    let mut inp = Input(data);
    // Features: mostly the interesting virtio-net set, sometimes anything.
    let mut features = if inp.u8() & 1 == 0 {
        u64::from(inp.u32()) | (u64::from(inp.u32()) << 32)
    } else {
        let menu = [
            Features::NET_MAC,
            Features::NET_STATUS,
            Features::NET_MQ,
            Features::NET_RSS,
            Features::NET_CTRL_VQ,
            Features::NET_CTRL_RX,
            Features::NET_MTU,
            Features::RING_PACKED,
            Features::RING_EVENT_IDX,
            Features::RING_INDIRECT_DESC,
            Features::NET_HASH_REPORT,
            Features::NET_CTRL_VLAN,
            Features::NET_CSUM,
            Features::NET_MRG_RXBUF,
            Features::NET_SPEED_DUPLEX,
            Features::NET_CTRL_GUEST_OFFLOADS,
        ];
        let pick = inp.u16();
        menu.iter()
            .enumerate()
            .filter(|(i, _)| pick & (1 << i) != 0)
            .fold(Features::VERSION_1.bits(), |f, (_, b)| f | b.bits())
    };
    if inp.u8() & 7 == 0 {
        features &= !Features::VERSION_1.bits();
    }
    let num_queues = match inp.u8() {
        0xff => 0xffff,
        0xfe => 0xfffe,
        n => u16::from(n % 20),
    };
    let msix = u16::from(inp.u8() % 20);
    let mut config = vec![0u8; usize::from(inp.u8() % 40)];
    for b in config.iter_mut() {
        *b = inp.u8();
    }
    // max_virtqueue_pairs (bytes 8–9) biased to the spec's edges.
    if config.len() >= 10 {
        config[8..10].copy_from_slice(&inp.edgy16().to_le_bytes());
    }
    let default_size = inp.edgy16();
    let m = VirtioPciModel::new(features, num_queues, default_size, msix, config);
    m.with(|s| {
        s.record_accesses = true;
        // Per-queue maximum sizes and notify offsets for the first few queues.
        for i in 0..12 {
            if inp.u8() & 1 != 0 {
                let (max_size, notify_off) = (inp.edgy16(), inp.edgy16());
                if let Some(q) = s.queues.get_mut(i) {
                    q.max_size = max_size;
                    q.notify_off = notify_off;
                }
            }
        }
        // BARs: sometimes other sizes, sometimes extra BARs.
        for bar in 0..6 {
            match inp.u8() % 8 {
                0 => s.bar_lens[bar] = None,
                1 => s.bar_lens[bar] = Some(u64::from(inp.u32())),
                2 => s.bar_lens[bar] = Some(BAR_LEN),
                _ => {}
            }
        }
        // Rewrites of config space (the capability list): single bytes or 32-bit fields.
        for _ in 0..inp.u8() % 16 {
            let at = usize::from(inp.u8());
            if inp.u8() & 1 == 0 {
                s.config_space[at] = inp.u8();
            } else {
                let v = inp.u32().to_le_bytes();
                for (k, b) in v.iter().enumerate() {
                    if let Some(c) = s.config_space.get_mut(at + k) {
                        *c = *b;
                    }
                }
            }
        }
        let mis = inp.u8();
        s.misbehave.reject_features = mis & 1 != 0 && mis & 0x80 != 0;
        s.misbehave.stuck_reset = mis & 2 != 0 && mis & 0x40 != 0;
        s.misbehave.max_vector = (mis & 4 != 0).then(|| u16::from(inp.u8() % 8));
        s.misbehave.unstable_config_reads = u32::from(mis >> 3 & 3) * 4;
        s.misbehave.reject_config_vector = mis & 0x21 == 0x20;
    });
    let plan = BringUp {
        reset_polls: 1 + u32::from(inp.u8() % 4),
        max_queue_size: inp.edgy16().min(1024),
        queue_pairs: u16::from(inp.u8() % 17),
        msix_messages: u16::from(inp.u8() % 20),
        random_mac: [2, 0, 0, 0, 0, 7],
        pairs_need_rss: inp.u8() & 1 != 0,
    };
    let user = UserSettings::default();
    let accepted = match virtio::pci::Capabilities::read(&m, &&m) {
        Ok(c) => regions(&c),
        Err(_) => Vec::new(),
    };
    let started = Adapter::start(&m, &m, arena, &user, &plan);
    check_accesses(&m, &accepted);
    let mut a = match started {
        Ok(a) => a,
        Err(_) => {
            assert_eq!(
                arena.outstanding(),
                before,
                "a failed start freed every DMA region"
            );
            return false;
        }
    };
    assert!(a.queue_pairs() >= 1);
    // The device changes things between steps: status, generation, configuration, ISR.
    for _ in 0..inp.u8() % 4 {
        let what = inp.u8();
        m.with(|s| match what % 5 {
            0 => s.status |= 64,
            1 => s.generation = s.generation.wrapping_add(1),
            2 => {
                let i = usize::from(inp.u8());
                let v = inp.u8();
                if let Some(b) = s.device_config.get_mut(i % 40) {
                    *b = v;
                }
            }
            3 => s.isr = inp.u8(),
            _ => s.misbehave.removed = inp.u8() & 1 != 0,
        });
        let _ = a.config_changed();
        for _ in 0..4 {
            let _ = a.poll_control();
        }
        let _ = a.transport().read_isr();
        let _ = a.needs_reset();
        check_accesses(&m, &accepted);
    }
    // Reset and restore (the adapter still holds every queue: no engines took them).
    if a.reset_device(&plan).is_ok() {
        let _ = a.restore(&plan, &[]);
        check_accesses(&m, &accepted);
        for _ in 0..4 {
            let _ = a.poll_control();
        }
        check_accesses(&m, &accepted);
    }
    let _ = a.stop(arena, plan.reset_polls);
    check_accesses(&m, &accepted);
    assert_eq!(arena.outstanding(), before, "stop freed every DMA region");
    true
}

/// The RX engine fed by a device whose completions the input chooses: which of the buffers it
/// took it completes (in any order), how many bytes it says it wrote (zero, more than the
/// buffer), the virtio-net header and frame bytes it wrote; with the ring layout, queue and
/// pool sizes, mergeable buffers, VLAN strip, software checksums, the device's checksum and RSC
/// features, bounce mode, and the OS's ring sizes, posts and returns chosen too. Whatever the
/// bytes: nothing panics (the OS side checks the verifier's RX rules), Advance never fails, a
/// reported layout fits in its frame, and after every step each buffer is in exactly one state
/// — pending + posted + with the OS + free equals the pool, posted equals the virtqueue's
/// chains in flight, the OS holds exactly the buffers the engine says it does.
pub fn rx_engine_with_device_completions(ram: &GuestRam, data: &[u8]) {
    use crate::device::{DeviceChain, PackedDevice, SplitDevice};
    use crate::os_rx::OsRx;
    use virtio::Features;
    use virtionet::rxqueue::{RxQueue, RxSettings};

    enum Dev {
        Split(SplitDevice),
        Packed(PackedDevice),
    }

    let mut inp = Input(data);
    let (h0, h1) = (inp.u8(), inp.u8());
    let layout = if h0 & 1 == 0 {
        Layout::Split
    } else {
        Layout::Packed
    };
    let size = match layout {
        Layout::Split => 1u16 << (2 + (h0 >> 1) % 5),
        Layout::Packed => u16::from(h0 >> 1) % 60 + 2,
    };
    let mergeable = h0 & 0x40 != 0;
    let buffers = u32::from(h1 % 48) + 1;
    let buffer_size = if mergeable {
        72 + u32::from(h1 >> 6) * 61
    } else {
        12 + 1518
    };
    let h2 = inp.u8();
    let mut features = Features::VERSION_1;
    if mergeable {
        features |= Features::NET_MRG_RXBUF;
    }
    if h2 & 1 != 0 {
        features |= Features::NET_GUEST_CSUM;
    }
    if h2 & 2 != 0 {
        features |= Features::NET_RSC_EXT;
    }
    let settings = RxSettings {
        buffers,
        buffer_size,
        strip_vlan: h2 & 4 != 0,
        software_checksum: h2 & 8 != 0,
        bounce: h2 & 16 != 0,
        context_tag: 0,
    };
    let mut rng = crate::rng::Rng::new(u64::from(inp.u16()));
    let h3 = inp.u8();
    let mut os = OsRx::new(1 << (1 + h3 % 6), 1 << (1 + (h3 >> 3) % 7), &mut rng);
    let arena = ram.arena();
    let Ok(vq) = VirtQueue::new(
        arena,
        QueueConfig {
            size,
            layout,
            event_idx: h2 & 32 != 0,
            max_indirect: 0,
        },
    ) else {
        return;
    };
    let addrs = vq.addresses();
    let mut dev = match layout {
        Layout::Split => Dev::Split(SplitDevice::new(ram, size, addrs, h2 & 32 != 0)),
        Layout::Packed => Dev::Packed(PackedDevice::new(size, addrs, h2 & 32 != 0)),
    };
    let ext = os.extensions();
    let mut rx = match RxQueue::new(arena, vq, features, settings, ext) {
        Ok(rx) => rx,
        Err(r) => {
            r.vq.free(arena);
            return;
        }
    };
    if h2 & 64 != 0 {
        let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
        rx.set_rss(Some((&key, netring::HashProtocolType::all())));
    }
    let check = |rx: &RxQueue, os: &OsRx| {
        let c = rx.buffer_counts();
        assert_eq!(
            c.free + c.posted + c.pending + c.with_os,
            buffers as usize,
            "each buffer in exactly one state: {c:?}"
        );
        assert_eq!(c.posted, usize::from(rx.virtqueue().in_flight()), "{c:?}");
        if settings.bounce {
            assert_eq!(c.with_os, 0);
            assert_eq!(c.private_free + c.private_with_os, buffers as usize);
            assert_eq!(c.private_with_os, os.held.len());
        } else {
            assert_eq!(c.with_os, os.held.len());
        }
        assert_eq!(rx.stats().bad_returns, 0);
    };
    let mut taken: Vec<DeviceChain> = Vec::new();
    // A used length past what the chain holds breaks the virtqueue (its own check, a device
    // fault the adapter recovers from by a reset): from then on the run only checks accounting.
    let mut broken = false;
    let advance = |rx: &mut RxQueue, os: &mut OsRx, broken: &mut bool| {
        let r = os.callback(|p, f| rx.advance(p, f));
        match r {
            Ok(_) => {}
            Err(virtionet::rxqueue::RxFault::Device(_)) => *broken = true,
            Err(e) => panic!("advance: {e:?}"),
        }
        let seen = os.frames.len();
        os.reclaim();
        for f in &os.frames[seen..] {
            let l = f.layout;
            let headers = usize::from(l.layer2_header_length())
                + usize::from(l.layer3_header_length())
                + usize::from(l.layer4_header_length());
            assert!(headers <= f.bytes.len(), "{l:?} in {} bytes", f.bytes.len());
        }
        os.frames.clear();
    };
    for _ in 0..64 {
        if inp.0.is_empty() {
            break;
        }
        match inp.u8() % 6 {
            0 | 1 => {
                // The device takes buffers.
                for _ in 0..=inp.u8() % 4 {
                    let c = match &mut dev {
                        Dev::Split(d) => d.pop(ram),
                        Dev::Packed(d) => d.pop(arena),
                    };
                    match c {
                        Some(c) => taken.push(c),
                        None => break,
                    }
                }
            }
            2 => {
                // The device completes one it took: bytes, then the length it claims.
                if taken.is_empty() {
                    continue;
                }
                let i = usize::from(inp.u8()) % taken.len();
                let c = taken.remove(i);
                let n = usize::from(inp.u16()) % (buffer_size as usize + 1);
                let bytes = inp.take(n).to_vec();
                crate::device::fill(arena, &c, &bytes);
                let len = match inp.u8() % 16 {
                    0 => u32::from(inp.u16()),
                    1 => 0,
                    _ => bytes.len() as u32,
                };
                match &mut dev {
                    Dev::Split(d) => {
                        let _ = d.complete(ram, c.id, len);
                    }
                    Dev::Packed(d) => d.complete(arena, &c, len),
                }
            }
            3 => {
                let (p, f) = (u32::from(inp.u8() % 16), u32::from(inp.u8() % 32));
                os.post(p, f);
            }
            4 => {
                if !broken {
                    advance(&mut rx, &mut os, &mut broken);
                }
                check(&rx, &os);
            }
            _ => {
                let keep = usize::from(inp.u8()) % (os.held.len() + 1);
                for ctx in os.held.drain(keep..) {
                    rx.return_buffer(ctx);
                }
                check(&rx, &os);
            }
        }
    }
    // The OS gives everything back; the engine holds nothing for it.
    if !broken {
        advance(&mut rx, &mut os, &mut broken);
    }
    for ctx in os.held.drain(..) {
        rx.return_buffer(ctx);
    }
    check(&rx, &os);
    assert_eq!(rx.buffers_with_os(), 0);
    rx.free(arena);
    assert_eq!(arena.outstanding(), 0, "every DMA region given back");
}
