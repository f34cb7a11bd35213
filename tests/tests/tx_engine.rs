//! The TX queue engine between the NetAdapterCx OS side (with the verifier's checks) and
//! rust-vmm's virtio-queue as the device: packet-level checks of what reaches the device.

use netring::{
    Ieee8021qTxTagging, NetPacketChecksum, NetPacketGso, NetPacketIeee8021q, TxChecksumAction as A,
};
use virtio::Features;
use virtio::net::{NetHeader, gso, hdr_flags};
use virtio::queue::{Layout, QueueConfig, VirtQueue};
use virtionet::txqueue::{TxQueue, TxSettings};
use vnet_harness::device::SplitDevice;
use vnet_harness::dma::GuestRam;
use vnet_harness::frames;
use vnet_harness::os_tx::{OsTx, TxFrame};
use vnet_harness::rng::Rng;

const TX_FEATURES: Features = Features::VERSION_1
    .union(Features::NET_CSUM)
    .union(Features::NET_HOST_TSO4)
    .union(Features::NET_HOST_TSO6)
    .union(Features::NET_HOST_ECN)
    .union(Features::RING_EVENT_IDX)
    .union(Features::RING_INDIRECT_DESC);

struct Bench {
    ram: GuestRam,
    os: OsTx,
    tx: TxQueue,
    dev: SplitDevice,
    rng: Rng,
}

fn setup(seed: u64, settings: TxSettings, qsize: u16) -> Bench {
    let ram = GuestRam::new(64 << 20);
    let mut rng = Rng::new(seed);
    let mut os = OsTx::new(64, 256, &mut rng);
    let cfg = QueueConfig {
        size: qsize,
        layout: Layout::Split,
        event_idx: true,
        max_indirect: 64,
    };
    let vq = VirtQueue::new(ram.arena(), cfg).unwrap();
    let dev = SplitDevice::new(&ram, qsize, vq.addresses(), true);
    let ext = os.extensions();
    let tx = TxQueue::new(ram.arena(), vq, 64, TX_FEATURES, settings, ext).unwrap();
    Bench {
        ram,
        os,
        tx,
        dev,
        rng,
    }
}

fn eth(dst: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 0x99]);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

fn tcp4(payload: usize, flags: u8) -> Vec<u8> {
    let ip = frames::ipv4_tcp(flags, (0..payload).map(|i| (i * 7) as u8));
    eth([2, 0, 0, 0, 0, 1], 0x0800, &ip)
}

impl Bench {
    /// One OS poll iteration: post what fits, Advance if the driver owns packets, reclaim.
    fn iterate(&mut self, pending: &mut Vec<TxFrame>) -> Vec<u32> {
        while let Some(f) = pending.first() {
            if !self.os.post(self.ram.arena(), f) {
                break;
            }
            pending.remove(0);
        }
        if self.os.driver_owns_packets() {
            let tx = &mut self.tx;
            self.os.callback(|p, f| tx.advance(p, f)).expect("advance");
        }
        self.os.reclaim(self.ram.arena())
    }

    /// The device consumes every available chain: returns (head id, bytes) per chain.
    fn device_take(&mut self) -> Vec<(u16, Vec<u8>)> {
        self.dev
            .pop_all(&self.ram)
            .into_iter()
            .map(|c| (c.id, SplitDevice::gather(&self.ram, &c)))
            .collect()
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

#[test]
fn frames_reach_the_device_byte_for_byte_and_return_in_order() {
    let mut b = setup(1, TxSettings::default(), 256);
    let mut pending: Vec<TxFrame> = Vec::new();
    let mut expected: Vec<Vec<u8>> = Vec::new();
    for i in 0..3000usize {
        let len = 60 + (b.rng.below(1455) as usize);
        let dst = match i % 3 {
            0 => [2, 0, 0, 0, 0, 1],
            1 => [0x01, 0, 0x5e, 0, 0, 1],
            _ => [0xff; 6],
        };
        let payload: Vec<u8> = (0..len - 14).map(|_| b.rng.next_u64() as u8).collect();
        let bytes = eth(dst, 0x88b5, &payload);
        let split: Vec<usize> = (0..b.rng.below(6))
            .map(|_| 1 + b.rng.below(400) as usize)
            .collect();
        expected.push(bytes.clone());
        pending.push(TxFrame {
            bytes,
            split,
            ..Default::default()
        });
    }
    let total = expected.len();
    let mut seen = 0usize;
    let mut returned = 0usize;
    let mut in_device: Vec<(u16, Vec<u8>)> = Vec::new();
    for _round in 0..100_000 {
        if returned == total {
            break;
        }
        returned += b.iterate(&mut pending).len();
        for (id, bytes) in b.device_take() {
            let hdr = NetHeader::read(&bytes).unwrap();
            assert_eq!(hdr, NetHeader::default(), "no offload asked: zero header");
            assert_eq!(
                &bytes[12..],
                &expected[seen][..],
                "frame {seen} on the wire"
            );
            seen += 1;
            in_device.push((id, bytes));
        }
        // Complete a random subset in random order.
        let n = b.rng.below(in_device.len() as u64 + 1) as usize;
        for _ in 0..n {
            let k = b.rng.below(in_device.len() as u64) as usize;
            let (id, _) = in_device.swap_remove(k);
            b.dev.complete(&b.ram, id, 0);
        }
    }
    assert_eq!((seen, returned), (total, total));
    let s = b.tx.stats();
    assert_eq!(s.sent.frames(), total as u64);
    assert_eq!(
        (
            s.sent.unicast_frames,
            s.sent.multicast_frames,
            s.sent.broadcast_frames
        ),
        (1000, 1000, 1000)
    );
    assert_eq!(
        s.sent.unicast_bytes + s.sent.multicast_bytes + s.sent.broadcast_bytes,
        expected.iter().map(|f| f.len() as u64).sum::<u64>()
    );
    assert_eq!(s.bad_packets + s.offload_errors + s.device_faults, 0);
    assert!(s.kicks > 0 && s.kicks <= 100_000);
    assert_eq!(
        b.os.rings.fragments.begin_index(),
        b.os.rings.fragments.end_index(),
        "all fragments returned"
    );
}

#[test]
fn short_frames_are_padded_and_vlan_tags_inserted() {
    let settings = TxSettings {
        insert_priority: true,
        insert_vlan: true,
        vlan_id: 0,
        confidential: false,
    };
    let mut b = setup(2, settings, 64);
    let short = eth([2, 0, 0, 0, 0, 1], 0x0806, &[1, 2, 3, 4]);
    let mut tag = NetPacketIeee8021q::default();
    tag.set_priority_code_point(5).unwrap();
    tag.set_vlan_identifier(42).unwrap();
    tag.set_tx_tagging(Ieee8021qTxTagging::all());
    let long = eth([2, 0, 0, 0, 0, 1], 0x88b5, &[9u8; 500]);
    let mut pending = vec![
        TxFrame {
            bytes: short.clone(),
            split: vec![5],
            ..Default::default()
        },
        TxFrame {
            bytes: long.clone(),
            split: vec![7, 100],
            ieee8021q: tag,
            ..Default::default()
        },
        TxFrame {
            bytes: short.clone(),
            ieee8021q: tag,
            ..Default::default()
        },
        TxFrame {
            ignore: true,
            ..Default::default()
        },
    ];
    b.iterate(&mut pending);
    let got = b.device_take();
    assert_eq!(got.len(), 3, "the ignored packet has no chain");
    let mut padded = short.clone();
    padded.resize(60, 0);
    assert_eq!(&got[0].1[12..], &padded[..]);
    let tci = ((5u16 << 13) | 42).to_be_bytes();
    let mut tagged = long[..12].to_vec();
    tagged.extend_from_slice(&[0x81, 0x00, tci[0], tci[1]]);
    tagged.extend_from_slice(&long[12..]);
    assert_eq!(&got[1].1[12..], &tagged[..]);
    let mut short_tagged = short[..12].to_vec();
    short_tagged.extend_from_slice(&[0x81, 0x00, tci[0], tci[1]]);
    short_tagged.extend_from_slice(&short[12..]);
    short_tagged.resize(60, 0);
    assert_eq!(&got[2].1[12..], &short_tagged[..]);
    for (id, _) in &got {
        b.dev.complete(&b.ram, *id, 0);
    }
    let returned = b.iterate(&mut Vec::new());
    assert_eq!(returned.len(), 4, "all four, the ignored one in its place");
    let s = b.tx.stats();
    assert_eq!((s.padded, s.vlan_tagged, s.ignored), (2, 2, 1));
}

#[test]
fn checksum_and_lso_requests_become_virtio_headers() {
    let mut b = setup(3, TxSettings::default(), 128);
    let csum = NetPacketChecksum::tx(A::Required, A::Required);
    let mut lso = NetPacketGso::default();
    lso.set_mss(1448).unwrap();
    let small = tcp4(100, 0x18);
    let big = tcp4(60_000, 0x98); // with CWR
    // The OS may leave the IP length of an LSO packet zero: the driver must fix it.
    let mut big_os = big.clone();
    big_os[16] = 0;
    big_os[17] = 0;
    let mut pending = vec![
        TxFrame {
            bytes: small.clone(),
            split: vec![30, 30],
            checksum: csum,
            ..Default::default()
        },
        TxFrame {
            bytes: big_os,
            split: vec![54, 10_000, 20_000],
            checksum: csum,
            gso: lso,
            ..Default::default()
        },
    ];
    b.iterate(&mut pending);
    let got = b.device_take();
    assert_eq!(got.len(), 2);
    let h = NetHeader::read(&got[0].1).unwrap();
    assert_eq!(
        (h.flags, h.gso_type, h.csum_start, h.csum_offset),
        (hdr_flags::NEEDS_CSUM, gso::NONE, 34, 16)
    );
    let frame = device_checksum(&h, got[0].1[12..].to_vec());
    let l = offload::Layout::parse(&frame).unwrap();
    assert_eq!(offload::segment::verify_l4_checksum(&frame, &l), Some(true));
    assert_eq!(
        offload::segment::verify_ipv4_checksum(&frame, &l),
        Some(true)
    );
    let h = NetHeader::read(&got[1].1).unwrap();
    assert_eq!(h.gso_type, gso::TCPV4 | gso::ECN);
    assert_eq!((h.gso_size, h.hdr_len, h.csum_start), (1448, 54, 34));
    let wire = &got[1].1[12..];
    assert_eq!(wire.len(), big.len());
    assert_eq!(&wire[16..18], &big[16..18], "IPv4 total length restored");
    let frame = device_checksum(&h, wire.to_vec());
    let l = offload::Layout::parse(&frame).unwrap();
    assert_eq!(
        offload::segment::verify_l4_checksum(&frame, &l),
        Some(true),
        "seed completes to a valid checksum"
    );
    assert_eq!(&frame[54..], &big[54..], "payload untouched, by reference");
}

#[test]
fn checksum_requests_take_the_chain_their_layout_allows() {
    // One fragment holding a small frame whole (the private header copy holds it all): one
    // descriptor, from the header slot. Headers alone in the first fragment: the slot, then the
    // rest by address. A longer frame in one fragment: the slot, then the first fragment from
    // past the headers. Each arrives with checksums that complete to valid ones.
    let mut b = setup(12, TxSettings::default(), 128);
    let csum = NetPacketChecksum::tx(A::Required, A::Required);
    let ack = tcp4(0, 0x10);
    let small = tcp4(40, 0x18);
    let long = tcp4(1400, 0x18);
    let frames = [
        (ack.clone(), vec![], 1u16),
        (small.clone(), vec![], 1),
        (small.clone(), vec![54], 2),
        (long.clone(), vec![], 2),
        (long.clone(), vec![54, 600], 3),
    ];
    let mut pending: Vec<TxFrame> = frames
        .iter()
        .map(|(bytes, split, _)| TxFrame {
            bytes: bytes.clone(),
            split: split.clone(),
            checksum: csum,
            ..Default::default()
        })
        .collect();
    b.iterate(&mut pending);
    let chains = b.dev.pop_all(&b.ram);
    assert_eq!(chains.len(), frames.len());
    for (c, (bytes, split, descs)) in chains.iter().zip(&frames) {
        assert_eq!(
            c.readable.len() as u16,
            *descs,
            "{} bytes split {split:?}",
            bytes.len()
        );
        let got = SplitDevice::gather(&b.ram, c);
        let h = NetHeader::read(&got).unwrap();
        assert_eq!(
            (h.flags, h.csum_start, h.csum_offset),
            (hdr_flags::NEEDS_CSUM, 34, 16)
        );
        let frame = device_checksum(&h, got[12..].to_vec());
        // The 54-byte acknowledgement is padded to 60 (the general path's short frame).
        assert_eq!(frame.len(), bytes.len().max(60));
        let l = offload::Layout::parse(&frame).unwrap();
        assert_eq!(offload::segment::verify_l4_checksum(&frame, &l), Some(true));
        assert_eq!(
            offload::segment::verify_ipv4_checksum(&frame, &l),
            Some(true)
        );
        assert_eq!(
            &frame[54..bytes.len()],
            &bytes[54..],
            "payload as the OS gave it"
        );
    }
}

#[test]
fn a_full_virtqueue_defers_posting_without_losing_packets() {
    let mut b = setup(4, TxSettings::default(), 8);
    let mut pending: Vec<TxFrame> = (0..40)
        .map(|i| TxFrame {
            bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &[i as u8; 200]),
            split: vec![50, 50],
            ..Default::default()
        })
        .collect();
    let mut returned = 0;
    let mut seen = Vec::new();
    for _ in 0..200 {
        returned += b.iterate(&mut pending).len();
        for (id, bytes) in b.device_take() {
            seen.push(bytes[12 + 14]);
            b.dev.complete(&b.ram, id, 0);
        }
        if returned == 40 {
            break;
        }
    }
    assert_eq!(returned, 40);
    assert_eq!(
        seen,
        (0..40).collect::<Vec<u8>>(),
        "every frame once, in order"
    );
}

/// The OS asks for the IPv4 header checksum of a packet whose TCP header does not parse (data
/// offset 4): the IPv4 header is complete, so its checksum is computed and the packet is sent —
/// not dropped for the broken layer above it (issue 13: layers 2 and 3 of such a frame are
/// reported, and the IPv4 header checksum "can still be verified and computed for it"). An L4
/// checksum request on the same frame is refused and counted.
#[test]
fn ipv4_checksum_of_a_frame_whose_tcp_header_is_broken() {
    let mut b = setup(5, TxSettings::default(), 64);
    let mut frame = tcp4(300, 0x18);
    frame[14 + 20 + 12] = 0x40; // TCP data offset 4: the TCP header does not parse
    let mut want = frame.clone();
    let c = offload::checksum::checksum(&want[14..34]);
    want[24..26].copy_from_slice(&c.to_be_bytes());
    let mut pending = vec![
        TxFrame {
            bytes: frame.clone(),
            split: vec![40, 100],
            checksum: NetPacketChecksum::tx(A::Required, A::Passthrough),
            ..Default::default()
        },
        TxFrame {
            bytes: frame.clone(),
            split: vec![40, 100],
            checksum: NetPacketChecksum::tx(A::Required, A::Required),
            ..Default::default()
        },
    ];
    let mut returned = 0;
    let mut got = Vec::new();
    for _ in 0..10 {
        returned += b.iterate(&mut pending).len();
        for (id, bytes) in b.device_take() {
            b.dev.complete(&b.ram, id, 0);
            got.push(bytes);
        }
        if returned == 2 {
            break;
        }
    }
    assert_eq!(returned, 2, "both packets returned to the OS");
    assert_eq!(
        got.len(),
        1,
        "only the IPv4-checksum request reaches the device"
    );
    assert_eq!(NetHeader::read(&got[0]).unwrap(), NetHeader::default());
    assert_eq!(
        &got[0][12..],
        &want[..],
        "IPv4 checksum filled, nothing else changed"
    );
    assert_eq!(offload::checksum::sum_be(&got[0][12 + 14..12 + 34]), 0xffff);
    assert_eq!(
        b.tx.stats().offload_errors,
        1,
        "the L4 request on a broken TCP header"
    );
}

/// `flush` (the device failed, stalled or is gone and was stopped): the chains in flight are
/// abandoned, and every packet — in flight, handed in but not yet posted, and handed in later —
/// goes back to the OS in ring order, with nothing more published to the device.
#[test]
fn a_flushed_queue_returns_every_packet_and_posts_nothing() {
    let mut b = setup(5, TxSettings::default(), 8);
    let frame = |i: u8| TxFrame {
        bytes: eth([2, 0, 0, 0, 0, 1], 0x88b5, &[i; 300]),
        split: vec![100, 100],
        ..Default::default()
    };
    // 20 handed in: 8 fit the virtqueue (in flight, never completed), 12 wait.
    let mut pending: Vec<TxFrame> = (0..20).map(frame).collect();
    let returned = b.iterate(&mut pending).len();
    assert_eq!(
        returned, 0,
        "nothing completes while the device holds the chains"
    );
    assert_eq!(b.tx.virtqueue().in_flight(), 8);
    assert_eq!(b.device_take().len(), 8, "the device saw the first 8");
    b.tx.flush();
    assert!(b.tx.is_flushing());
    assert_eq!(b.tx.virtqueue().in_flight(), 0, "the chains were abandoned");
    let mut back = b.iterate(&mut pending);
    pending.extend((20..30).map(frame));
    back.extend(b.iterate(&mut pending));
    assert!(pending.is_empty());
    assert_eq!(back.len(), 30, "every packet came back");
    assert!(!b.os.driver_owns_packets(), "the driver holds nothing");
    assert!(
        b.device_take().is_empty(),
        "nothing more reached the device"
    );
    assert_eq!(b.tx.stats().flushed, 30);
}

#[test]
fn empty_fragments_are_left_out_of_the_chain_first_or_between() {
    // Nothing to rewrite: the chain is the header and the fragments with data, in order; an
    // empty fragment (first or between) gives no descriptor, and the counters see the frame the
    // device gets.
    for zeroed in [0usize, 1] {
        let mut b = setup(11, TxSettings::default(), 128);
        let bytes = eth([2, 0, 0, 0, 0, 1], 0x88b5, &(0..86).collect::<Vec<u8>>());
        let frame = TxFrame {
            bytes: bytes.clone(),
            split: vec![30, 40],
            ..Default::default()
        };
        assert!(b.os.post(b.ram.arena(), &frame));
        let frags = &mut b.os.rings.fragments;
        let i = frags.end_index().wrapping_sub(3 - zeroed as u32) & (frags.len() - 1);
        let e = frags.element_bytes_mut(i).unwrap();
        let mut f = netring::NetFragment::from_bits(u64::from_le_bytes(e[..8].try_into().unwrap()));
        f.set_valid_length(0).unwrap();
        e[..8].copy_from_slice(&f.to_bits().to_le_bytes());
        let tx = &mut b.tx;
        b.os.callback(|p, f| tx.advance(p, f)).expect("advance");
        let chains = b.device_take();
        assert_eq!(chains.len(), 1, "one chain");
        let kept: Vec<u8> = match zeroed {
            0 => bytes[30..].to_vec(),
            _ => [&bytes[..30], &bytes[70..]].concat(),
        };
        assert_eq!(&chains[0].1[..NetHeader::SIZE], &[0u8; NetHeader::SIZE]);
        assert_eq!(
            &chains[0].1[NetHeader::SIZE..],
            &kept[..],
            "empty fragment {zeroed}"
        );
        assert_eq!(b.tx.stats().bad_packets, 0);
        assert_eq!(b.tx.stats().sent.bytes(), kept.len() as u64);
        let dst_unicast = kept[0] & 1 == 0;
        assert_eq!(b.tx.stats().sent.unicast_frames, u64::from(dst_unicast));
    }
}

/// Posts `frame` as one fragment whose logical address is `la` (and Offset at least
/// `min_offset`), runs one Advance, and checks that the packet came back to the OS without
/// reaching the device, counted as a bad packet.
fn a_wrapping_address_is_dropped(frame: TxFrame, la: u64, min_offset: u32) {
    let mut b = setup(9, TxSettings::default(), 128);
    assert!(b.os.post(b.ram.arena(), &frame));
    let la_off =
        b.os.rings
            .registered(&netring::names::LOGICAL_ADDRESS)
            .expect("logical address extension")
            .offset;
    let frags = &mut b.os.rings.fragments;
    let i = frags.end_index().wrapping_sub(1) & (frags.len() - 1);
    let bytes = frags.element_bytes_mut(i).unwrap();
    let mut f = netring::NetFragment::from_bits(u64::from_le_bytes(bytes[..8].try_into().unwrap()));
    f.set_offset(f.offset().max(min_offset)).unwrap();
    bytes[..8].copy_from_slice(&f.to_bits().to_le_bytes());
    bytes[la_off..la_off + 8].copy_from_slice(&la.to_le_bytes());
    let tx = &mut b.tx;
    b.os.callback(|p, f| tx.advance(p, f)).expect("advance");
    assert!(b.device_take().is_empty(), "nothing reached the device");
    assert_eq!(
        b.os.reclaim(b.ram.arena()).len(),
        1,
        "the packet is back with the OS"
    );
    assert_eq!(b.tx.stats().bad_packets, 1);
    assert_eq!(b.tx.virtqueue().in_flight(), 0);
}

#[test]
fn a_plain_fragment_whose_logical_address_wraps_is_dropped_not_posted() {
    // Nothing to rewrite: the fragment is posted by logical address + Offset as it stands. An
    // OS address that wraps there is not a fragment: before, it was posted wrapped.
    let frame = TxFrame {
        bytes: tcp4(100, 0x18),
        ..Default::default()
    };
    a_wrapping_address_is_dropped(frame, u64::MAX, 1);
}

#[test]
fn a_fragment_whose_logical_address_wraps_is_dropped_not_posted() {
    // Headers rewritten for a checksum request: the rest of the frame is posted by logical
    // address from past the copied headers (skip = 54 bytes into the fragment). An OS address
    // that wraps there is not a fragment: before, `la + skip` overflowed (a panic in debug, a
    // wrapped device address in release).
    let frame = TxFrame {
        bytes: tcp4(100, 0x18),
        checksum: NetPacketChecksum::tx(A::Required, A::Required),
        ..Default::default()
    };
    a_wrapping_address_is_dropped(frame, u64::MAX - 8, 0);
}
