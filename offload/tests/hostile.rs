//! Bad input: truncated headers, lying lengths, bad IHL/data offsets, extension-header loops,
//! MSS 0 or too large, buffers too small — typed errors, never a panic. Plus the VLAN, filter
//! and RSS paths.

use netring::{HashProtocolType as P, NetPacketChecksum, NetPacketGso, TxChecksumAction as A};
use offload::filter::{PacketFilter, RxFilter};
use offload::rss::{Toeplitz, hash_frame, toeplitz_bitwise};
use offload::segment::{L4Checksum, Segmenter, verify_l4_checksum};
use offload::tx::{DeviceTx, TxAction, TxRequest, insert_vlan, padding, prepare, vlan_tag_for};
use offload::wire::VlanTag;
use offload::{Layout, OffloadError, ParseError};
use proptest::prelude::*;
use virtio::net::NetHeader;

/// A valid Ethernet + IPv4 + TCP frame with `payload` bytes.
fn tcp4(payload: usize) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
    let total = 20 + 20 + payload;
    f.extend_from_slice(&[
        0x45,
        0,
        (total >> 8) as u8,
        total as u8,
        0,
        1,
        0x40,
        0,
        64,
        6,
        0,
        0,
    ]);
    f.extend_from_slice(&[10, 0, 0, 1, 10, 0, 0, 2]);
    f.extend_from_slice(&[
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x18, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    f.extend((0..payload).map(|i| i as u8));
    f
}

fn req(mss: u32) -> TxRequest {
    let mut gso = NetPacketGso::default();
    gso.set_mss(mss).unwrap();
    TxRequest {
        layout: Default::default(),
        checksum: NetPacketChecksum::tx(A::Required, A::Required),
        gso,
    }
}

const ALL: DeviceTx = DeviceTx {
    csum: true,
    tso4: true,
    tso6: true,
    ecn: true,
    uso: true,
};

#[test]
fn truncated_and_malformed_headers() {
    let f = tcp4(10);
    for cut in 0..54 {
        assert!(
            matches!(Layout::parse(&f[..cut]), Err(ParseError::Truncated { .. })),
            "cut {cut}"
        );
    }
    let mut bad = f.clone();
    bad[14] = 0x44; // IHL 4
    assert_eq!(
        Layout::parse(&bad),
        Err(ParseError::BadHeaderLength {
            layer: "ipv4",
            len: 16
        })
    );
    bad[14] = 0x55; // version 5
    assert_eq!(Layout::parse(&bad), Err(ParseError::BadVersion(5)));
    bad[14] = 0x4f; // IHL 15: options run past the buffer's TCP
    assert!(Layout::parse(&bad[..40]).is_err());
    let mut bad = f.clone();
    bad[14 + 20 + 12] = 0x40; // TCP data offset 4
    assert_eq!(
        Layout::parse(&bad),
        Err(ParseError::BadHeaderLength {
            layer: "tcp",
            len: 16
        })
    );
    bad[14 + 20 + 12] = 0xf0; // 60 bytes of TCP header, not present
    assert!(matches!(
        Layout::parse(&bad),
        Err(ParseError::Truncated { .. })
    ));
}

#[test]
fn lying_ip_lengths_are_not_trusted() {
    let mut f = tcp4(100);
    let l = Layout::parse(&f).unwrap();
    assert_eq!(
        verify_l4_checksum(&f, &l),
        Some(false),
        "checksum was never filled"
    );
    f[16] = 0xff; // total length 65280: beyond the buffer
    assert_eq!(verify_l4_checksum(&f, &l), None);
    f[16] = 0;
    f[17] = 30; // shorter than the headers
    assert_eq!(verify_l4_checksum(&f, &l), None);
}

#[test]
fn ipv6_extension_loops_and_chains() {
    let mut f = vec![
        2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x86, 0xdd, 0x60, 0, 0, 0, 0, 0, 60, 64,
    ];
    f.extend_from_slice(&[0; 32]);
    // Twenty destination-options headers, each pointing at another.
    for _ in 0..20 {
        f.extend_from_slice(&[60, 0, 0, 0, 0, 0, 0, 0]);
    }
    assert_eq!(Layout::parse(&f), Err(ParseError::BadExtensionChain));
    // A hop-by-hop header that is not first.
    let mut g = f[..54].to_vec();
    g[20] = 60;
    g.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 0, 6, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(Layout::parse(&g), Err(ParseError::BadExtensionChain));
    // An extension header whose length runs past the buffer.
    let mut h = f[..54].to_vec();
    h.extend_from_slice(&[6, 200, 0, 0, 0, 0, 0, 0]);
    assert!(matches!(
        Layout::parse(&h),
        Err(ParseError::Truncated { .. })
    ));
}

#[test]
fn segmentation_refusals() {
    let f = tcp4(1000);
    assert_eq!(Segmenter::new(&f, 0).unwrap_err(), OffloadError::BadMss(0));
    assert_eq!(
        Segmenter::new(&f, 65500).unwrap_err(),
        OffloadError::BadMss(65500)
    );
    assert_eq!(
        Segmenter::new(&tcp4(0), 100).unwrap_err(),
        OffloadError::NotSegmentable
    );
    let s = Segmenter::new(&f, 1448).unwrap();
    assert_eq!(s.count(), 1, "a payload under the MSS is one segment");
    let s = Segmenter::new(&f, 300).unwrap();
    assert_eq!(s.count(), 4);
    let mut small = [0u8; 100];
    assert_eq!(
        s.write(0, &mut small, L4Checksum::Full),
        Err(OffloadError::BufferTooSmall {
            need: 354,
            have: 100
        })
    );
    assert_eq!(
        s.write(4, &mut [0u8; 2000], L4Checksum::Full),
        Err(OffloadError::NoSuchSegment(4))
    );
    let mut arp = tcp4(0);
    arp[12..14].copy_from_slice(&[0x08, 0x06]);
    assert_eq!(
        Segmenter::new(&arp, 100).unwrap_err(),
        OffloadError::NotSegmentable
    );
}

#[test]
fn tx_fallbacks_when_the_device_cannot() {
    let f = tcp4(4000);
    let hl = 54;
    // No TSO: software segmentation.
    let mut h = f[..hl].to_vec();
    let (_, a) = prepare(
        &mut h,
        f.len(),
        &req(1448),
        DeviceTx {
            csum: true,
            ..Default::default()
        },
    )
    .unwrap();
    assert_eq!(a, TxAction::Segment(1448));
    // CWR set but no HOST_ECN: software segmentation.
    let mut h = f[..hl].to_vec();
    h[14 + 20 + 13] |= 0x80;
    let (_, a) = prepare(&mut h, f.len(), &req(1448), DeviceTx { ecn: false, ..ALL }).unwrap();
    assert_eq!(a, TxAction::Segment(1448));
    // No CSUM: software checksum.
    let mut h = f[..hl].to_vec();
    let (_, a) = prepare(&mut h, f.len(), &req(0), DeviceTx::default()).unwrap();
    assert_eq!(a, TxAction::SoftwareChecksum);
    // An MSS that does not fit gso_size.
    let mut h = f[..hl].to_vec();
    assert_eq!(
        prepare(&mut h, f.len(), &req(70000), ALL).unwrap_err(),
        OffloadError::BadMss(70000)
    );
    // A frame shorter than its headers.
    let mut h = f[..hl].to_vec();
    assert_eq!(
        prepare(&mut h, 40, &req(0), ALL).unwrap_err(),
        OffloadError::LayoutMismatch
    );
    // An LSO packet longer than an IP packet can be.
    let mut h = f[..hl].to_vec();
    assert_eq!(
        prepare(&mut h, 70_000, &req(1448), ALL).unwrap_err(),
        OffloadError::TooLong(69_986)
    );
    // The OS says UDP, the bytes say TCP.
    let mut h = f[..hl].to_vec();
    let mut r = req(0);
    r.layout.set_layer4_type(netring::Layer4Type::Udp);
    assert_eq!(
        prepare(&mut h, f.len(), &r, ALL).unwrap_err(),
        OffloadError::LayoutMismatch
    );
    // Nothing asked: a zero header, headers untouched.
    let mut h = f[..hl].to_vec();
    let none = TxRequest::default();
    let (_, a) = prepare(&mut h, f.len(), &none, ALL).unwrap();
    assert_eq!(a, TxAction::Offload(NetHeader::default()));
    assert_eq!(h, f[..hl]);
}

#[test]
fn vlan_insert_strip_round_trip_and_padding() {
    let f = tcp4(0);
    let tag = VlanTag {
        pcp: 5,
        dei: false,
        vid: 42,
    };
    let mut out = vec![0u8; f.len() + 4];
    assert_eq!(insert_vlan(&f, tag, &mut out), Ok(f.len() + 4));
    let l = Layout::parse(&out).unwrap();
    assert_eq!((l.l2_len, l.vlan), (18, Some(tag)));
    let stripped = offload::rx::strip_vlan(&mut out).unwrap();
    assert_eq!(stripped, tag);
    assert_eq!(&out[4..], &f[..]);
    assert!(offload::rx::strip_vlan(&mut f.clone()).is_none());
    assert!(insert_vlan(&f, tag, &mut [0u8; 20]).is_err());
    assert_eq!((padding(42), padding(60), padding(1514)), (18, 0, 0));
    // Tag choice: extension flags, adapter VLAN id, and *PriorityVLANTag limits.
    let mut ext = netring::NetPacketIeee8021q::default();
    ext.set_priority_code_point(6).unwrap();
    ext.set_tx_tagging(netring::Ieee8021qTxTagging::PRIORITY_REQUIRED);
    assert_eq!(
        vlan_tag_for(Some(ext), 7, true, true),
        Some(VlanTag {
            pcp: 6,
            dei: false,
            vid: 7
        })
    );
    assert_eq!(
        vlan_tag_for(Some(ext), 7, false, true),
        Some(VlanTag {
            pcp: 0,
            dei: false,
            vid: 7
        })
    );
    assert_eq!(vlan_tag_for(Some(ext), 0, false, false), None);
    assert_eq!(vlan_tag_for(None, 0, true, true), None);
}

#[test]
fn receive_filter_decisions() {
    let mac = [2, 0, 0, 0, 0, 1];
    let mcast = [0x01, 0, 0x5e, 0, 0, 1];
    let other_mcast = [0x01, 0, 0x5e, 0, 0, 2];
    let mut f = RxFilter::new(mac, PacketFilter(PacketFilter::DIRECTED));
    assert!(f.accepts(&mac));
    assert!(!f.accepts(&[2, 0, 0, 0, 0, 9]));
    assert!(!f.accepts(&[0xff; 6]));
    assert!(!f.accepts(&mcast));
    f.filter =
        PacketFilter(PacketFilter::DIRECTED | PacketFilter::MULTICAST | PacketFilter::BROADCAST);
    assert!(f.set_multicast(&[mcast]));
    assert!(f.accepts(&mcast) && !f.accepts(&other_mcast) && f.accepts(&[0xff; 6]));
    assert!(!f.set_multicast(&[mac]), "unicast in the multicast list");
    assert!(!f.set_multicast(&[mcast; 33]), "too long");
    assert_eq!(f.multicast(), &[mcast]);
    f.filter = PacketFilter(PacketFilter::ALL_MULTICAST);
    assert!(f.accepts(&other_mcast) && !f.accepts(&mac));
    f.filter = PacketFilter(PacketFilter::PROMISCUOUS);
    assert!(f.accepts(&[2, 0, 0, 0, 0, 9]));
    assert!(
        f.vlan_accepts(Some(5)),
        "no membership configured: all VLANs"
    );
    f.set_vlan(5, true);
    assert!(
        f.vlan_accepts(Some(5))
            && !f.vlan_accepts(Some(6))
            && f.vlan_accepts(None)
            && f.vlan_accepts(Some(0))
    );
    f.set_vlan(5, false);
    assert!(f.vlan_accepts(Some(6)));
}

#[test]
fn rss_over_frames() {
    let mut t = Box::new(Toeplitz::EMPTY);
    let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
    t.set_key(&key);
    let f = tcp4(10);
    let l = Layout::parse(&f).unwrap();
    let mut input = vec![10, 0, 0, 1, 10, 0, 0, 2];
    let two = toeplitz_bitwise(&key, &input);
    input.extend_from_slice(&[0x04, 0xd2, 0x00, 0x50]);
    let four = toeplitz_bitwise(&key, &input);
    let h = hash_frame(&t, &f, &l, P::IPV4 | P::TCP).unwrap();
    assert_eq!((h.hash_value, h.protocol()), (four, P::IPV4 | P::TCP));
    let h = hash_frame(&t, &f, &l, P::IPV4).unwrap();
    assert_eq!((h.hash_value, h.protocol()), (two, P::IPV4));
    assert!(hash_frame(&t, &f, &l, P::IPV6 | P::TCP).is_none());
    assert!(
        hash_frame(&t, &f, &l, P::TCP).is_none(),
        "TCP without its IP family"
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// Arbitrary bytes (and arbitrary mutations of a valid frame) never panic anywhere.
    #[test]
    fn arbitrary_bytes_never_panic(mut data in prop::collection::vec(any::<u8>(), 0..200),
                                   mutate in any::<bool>(), at in any::<prop::sample::Index>(), v: u8,
                                   mss in 0u32..2000) {
        if mutate {
            let mut f = tcp4(60);
            let i = at.index(f.len());
            f[i] = v;
            data = f;
        }
        offload_fuzz_body(&data, mss);
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    /// The receive checksum completion with whatever offsets, flags and GSO fields a device
    /// writes, over any bytes split anywhere: no panic, and nothing outside the field changes.
    #[test]
    fn rx_checksum_fix_survives_any_header(
        data in prop::collection::vec(any::<u8>(), 0..300), valid_frame: bool,
        flags: u8, gso_type: u8, gso_size: u16, csum_start: u16, csum_offset: u16,
        cut in any::<prop::sample::Index>(), extra in 0usize..40, stripped: bool,
    ) {
        let frame = if valid_frame { tcp4(data.len()) } else { data };
        let total = frame.len() + extra;
        let k = cut.index(frame.len() + 1);
        let hdr = NetHeader { flags, gso_type, gso_size, csum_start, csum_offset, ..Default::default() };
        let opt = offload::rx::RxOptions { guest_csum: true, rsc_ext: flags & 1 != 0, software_verify: true };
        let mut first = frame[..k].to_vec();
        let meta = offload::rx::metadata(&hdr, &first, total, opt);
        if let Ok(Some(fix)) = offload::rx::checksum_fix(&hdr, &meta, &first, total, stripped, opt) {
            prop_assert!(fix.field + 2 <= first.len());
            let mut rest = offload::checksum::Checksum::new();
            rest.add_bytes(&frame[k..]);
            prop_assert!(fix.apply(&mut first, rest).is_ok());
            prop_assert_eq!(&first[..fix.field], &frame[..fix.field]);
            prop_assert_eq!(&first[fix.field + 2..], &frame[fix.field + 2..k]);
        }
    }
}

/// The same calls the fuzz targets make.
fn offload_fuzz_body(data: &[u8], mss: u32) {
    if let Ok(l) = Layout::parse(data) {
        let _ = l.to_net();
        let _ = verify_l4_checksum(data, &l);
        let _ = offload::segment::verify_ipv4_checksum(data, &l);
    }
    let mut h = data.to_vec();
    let _ = prepare(&mut h, data.len(), &req(mss.min(0xfffff)), ALL);
    if let Ok(s) = Segmenter::new(data, mss) {
        let mut out = vec![0u8; 70_000];
        for i in 0..s.count().min(8) {
            let n = s.write(i, &mut out, L4Checksum::Full).unwrap();
            assert!(n <= out.len());
        }
    }
    let _ = offload::rx::metadata(&NetHeader::default(), data, data.len(), Default::default());
    let _ = offload::rx::strip_vlan(&mut data.to_vec());
}
