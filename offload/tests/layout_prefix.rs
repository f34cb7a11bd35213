//! The layout of a frame that does not parse fully is the deepest prefix of layers that did,
//! never a deeper or a different layer (issue 13; `reference/netadaptercx.md` §1.3/§2.4: a zero
//! length means unknown, Ethernet L2 length 0 or ≥ 14, and the OS re-parses only when Layer2Type
//! is not Unspecified).

mod common;

use common::*;
use netring::{
    Layer3Type, Layer4Type, NetPacketChecksum, RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::checksum;
use offload::tx::{TxAction, TxRequest, prepare};
use virtio::net::NetHeader;

#[test]
fn short_frames_and_cut_tags_have_no_layer2() {
    let f = tcp4_frame(&[0x88a8, 0x8100], &[1, 2, 3]);
    // Shorter than an Ethernet header.
    for cut in 0..14 {
        assert_eq!(lay(meta(&f[..cut]).layout), NOTHING, "{cut} bytes");
    }
    // The outer tag, or the inner tag of a QinQ frame, cut by the end of the frame.
    for cut in 14..22 {
        assert_eq!(lay(meta(&f[..cut]).layout), NOTHING, "{cut} bytes, tag cut");
    }
    // Both tags present, nothing after them: Ethernet with the tagged length.
    assert_eq!(lay(meta(&f[..22]).layout), l2_only(22));
    let single = tcp4_frame(&[0x8100], &[]);
    for cut in 14..18 {
        assert_eq!(lay(meta(&single[..cut]).layout), NOTHING, "{cut} bytes");
    }
    assert_eq!(lay(meta(&single[..18]).layout), l2_only(18));
}

#[test]
fn tagged_frame_with_broken_ip_keeps_its_tagged_layer2() {
    for tags in [
        &[][..],
        &[0x8100][..],
        &[0x88a8, 0x8100][..],
        &[0x8100, 0x8100][..],
    ] {
        let l2 = 14 + 4 * tags.len() as u8;
        let good = tcp4_frame(tags, &[9; 8]);
        let at = usize::from(l2);
        // IPv4 header cut anywhere.
        for cut in at..at + 20 {
            assert_eq!(lay(meta(&good[..cut]).layout), l2_only(l2), "cut {cut}");
        }
        // Options cut, bad IHL, bad version.
        for (byte, why) in [(0x4f, "IHL 15"), (0x44, "IHL 4"), (0x65, "version 6")] {
            let mut bad = good.clone();
            bad[at] = byte;
            assert_eq!(lay(meta(&bad).layout), l2_only(l2), "{why}");
        }
        // IPv6: fixed header cut, an extension header cut.
        let mut six = eth(tags, 0x86dd);
        six.extend(ipv6(60, 8 + 20));
        six.extend_from_slice(&[6, 0, 1, 4, 0, 0, 0, 0]);
        six.extend(tcp(&[]));
        for cut in [at, at + 39, at + 41, at + 47] {
            assert_eq!(lay(meta(&six[..cut]).layout), l2_only(l2), "v6 cut {cut}");
        }
        // An extension header claiming more than the frame holds.
        let mut long = six.clone();
        long[at + 41] = 200;
        assert_eq!(lay(meta(&long).layout), l2_only(l2));
    }
}

#[test]
fn complete_ip_with_a_broken_transport_header_reports_layers_2_and_3() {
    let good = tcp4_frame(&[0x8100], &[5; 30]);
    let l4 = 18 + 20;
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (good[..l4 + 10].to_vec(), "TCP header cut"),
        (
            {
                let mut b = good.clone();
                b[l4 + 12] = 0x40;
                b
            },
            "TCP data offset 4",
        ),
        (
            {
                let mut b = good[..l4 + 24].to_vec();
                b[l4 + 12] = 0x80;
                b
            },
            "TCP options cut",
        ),
    ];
    for (f, why) in &cases {
        let m = meta(f);
        assert_eq!(
            lay(m.layout),
            l3_only(18, Layer3Type::Ipv4NoOptions, 20),
            "{why}"
        );
        // The IPv4 header checksum is still verified.
        assert_eq!(m.checksum.rx_layer3(), Some(Eval::Valid), "{why}");
        assert_eq!(m.checksum.rx_layer4(), Some(Eval::NotChecked), "{why}");
        let mut bad = f.clone();
        bad[18 + 8] ^= 1; // TTL
        assert_eq!(
            meta(&bad).checksum.rx_layer3(),
            Some(Eval::Invalid),
            "{why}"
        );
        // ...and computed on transmit when the OS asks for it (and only for it).
        let mut h = bad.clone();
        h[18 + 10] = 0;
        h[18 + 11] = 0;
        let req = TxRequest {
            checksum: NetPacketChecksum::tx(A::Required, A::Passthrough),
            ..Default::default()
        };
        let n = h.len();
        let (l, action) = prepare(&mut h, n, &req, ALL).unwrap();
        assert_eq!(action, TxAction::Offload(NetHeader::default()), "{why}");
        assert_eq!(lay(l.to_net()), l3_only(18, Layer3Type::Ipv4NoOptions, 20));
        assert_eq!(checksum::sum_be(&h[18..38]), 0xffff, "{why}: IPv4 checksum");
        // An L4 checksum cannot be asked for a transport header that did not parse.
        let req4 = TxRequest {
            checksum: NetPacketChecksum::tx(A::Required, A::Required),
            ..Default::default()
        };
        assert!(
            prepare(&mut f.clone(), f.len(), &req4, ALL).is_err(),
            "{why}"
        );
    }
    // UDP cut; IPv6 with a cut TCP header; IPv4 with options and a cut UDP header.
    let mut u = eth(&[], 0x0800);
    u.extend(ipv4(17, &[], 0, 8, DST4));
    u.extend_from_slice(&[0x30, 0x39, 0, 0x35]);
    assert_eq!(
        lay(meta(&u).layout),
        l3_only(14, Layer3Type::Ipv4NoOptions, 20)
    );
    let mut s = eth(&[], 0x86dd);
    s.extend(ipv6(6, 20));
    s.extend_from_slice(&[0; 12]);
    assert_eq!(
        lay(meta(&s).layout),
        l3_only(14, Layer3Type::Ipv6NoExtensions, 40)
    );
    let mut o = eth(&[0x8100], 0x0800);
    o.extend(ipv4(17, &[1, 1, 1, 0], 0, 8, DST4));
    o.extend_from_slice(&[0x30, 0x39]);
    let m = meta(&o);
    assert_eq!(lay(m.layout), l3_only(18, Layer3Type::Ipv4WithOptions, 24));
    assert_eq!(m.checksum.rx_layer3(), Some(Eval::Valid));
    // Another protocol over complete IP is still "IP, not a fragment" (nothing to parse).
    let mut icmp = eth(&[], 0x0800);
    icmp.extend(ipv4(1, &[], 0, 8, DST4));
    icmp.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        meta(&icmp).layout.layer4_type(),
        Some(Layer4Type::IpNotFragment)
    );
}
