//! Fragments (issue 13): a first fragment whose transport header is cut is still an IP fragment,
//! with its IPv4 header checksum and its 2-tuple hash; an IPv6 atomic fragment (offset 0, M = 0;
//! RFC 6946) is not a fragment: its transport checksum is verified and computed, and it gets the
//! 4-tuple hash.

mod common;

use common::*;
use netring::{
    HashProtocolType as P, Layer2Type, Layer3Type, Layer4Type, NetPacketChecksum,
    RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::rss::{hash_frame, toeplitz_bitwise};
use offload::segment::fill_l4_checksum;
use offload::tx::{TxAction, TxRequest, prepare};
use virtio::net::hdr_flags;

#[test]
fn first_fragment_with_a_cut_transport_header_is_an_ip_fragment() {
    let (key, t) = key();
    // IPv4: offset 0, MF; only 6 bytes of the TCP header in this fragment.
    let mut f = eth(&[0x8100], 0x0800);
    f.extend(ipv4(6, &[], 0x2000, 8, DST4));
    f.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 0]);
    let m = meta(&f);
    assert_eq!(
        lay(m.layout),
        (
            Some(Layer2Type::Ethernet),
            18,
            Some(Layer3Type::Ipv4NoOptions),
            20,
            Some(Layer4Type::IpFragment),
            0
        )
    );
    assert_eq!(m.checksum.rx_layer3(), Some(Eval::Valid));
    assert_eq!(m.checksum.rx_layer4(), Some(Eval::NotChecked));
    let l = m.parsed.expect("layers 2 and 3 parsed");
    let h = hash_frame(&t, &f, &l, P::IPV4 | P::TCP).expect("2-tuple hash");
    let mut two = SRC4.to_vec();
    two.extend_from_slice(&DST4);
    assert_eq!(
        (h.hash_value, h.protocol()),
        (toeplitz_bitwise(&key, &two), P::IPV4)
    );
    // IPv6: a Fragment header (offset 0, M) then 10 bytes of a UDP... no, of a TCP header.
    let mut s = eth(&[], 0x86dd);
    s.extend(ipv6(44, 8 + 10));
    s.extend_from_slice(&[6, 0, 0, 1, 0, 0, 0, 42]);
    s.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 0, 0, 0, 0, 0]);
    let m = meta(&s);
    assert_eq!(
        lay(m.layout),
        (
            Some(Layer2Type::Ethernet),
            14,
            Some(Layer3Type::Ipv6WithExtensions),
            48,
            Some(Layer4Type::IpFragment),
            0
        )
    );
    let l = m.parsed.expect("layers 2 and 3 parsed");
    let h = hash_frame(&t, &s, &l, P::IPV6 | P::IPV6_EXTENSIONS | P::TCP).expect("hash");
    let mut two = SRC6.to_vec();
    two.extend_from_slice(&DST6);
    assert_eq!(
        (h.hash_value, h.protocol()),
        (toeplitz_bitwise(&key, &two), P::IPV6 | P::IPV6_EXTENSIONS)
    );
    // So is a first fragment of another protocol (it is not "IP, not a fragment").
    let mut icmp = eth(&[], 0x0800);
    icmp.extend(ipv4(1, &[], 0x2000, 8, DST4));
    icmp.extend_from_slice(&[8, 0, 0, 0, 0, 0, 0, 0]);
    assert_eq!(
        meta(&icmp).layout.layer4_type(),
        Some(Layer4Type::IpFragment)
    );
    // A later fragment is an IP fragment too, whatever its first bytes look like.
    let mut later = eth(&[], 0x0800);
    later.extend(ipv4(6, &[], 0x0003, 4, DST4));
    later.extend_from_slice(&[1, 2, 3, 4]);
    assert_eq!(
        meta(&later).layout.layer4_type(),
        Some(Layer4Type::IpFragment)
    );
}

#[test]
fn ipv6_atomic_fragment_is_not_a_fragment() {
    let (key, t) = key();
    // RFC 6946: a Fragment header with offset 0 and M = 0 — the packet is whole.
    let mut seg = tcp(b"atomic");
    smol_tcp(&mut seg, v6(SRC6), v6(DST6));
    let mut f = eth(&[], 0x86dd);
    f.extend(ipv6(44, 8 + seg.len()));
    f.extend_from_slice(&[6, 0, 0, 0, 0xde, 0xad, 0xbe, 0xef]);
    f.extend(seg);
    let m = meta(&f);
    assert_eq!(m.layout.layer4_type(), Some(Layer4Type::Tcp));
    assert_eq!(m.checksum.rx_layer4(), Some(Eval::Valid), "verified");
    let l = m.parsed.unwrap();
    assert!(!l.fragmented);
    let mut bad = f.clone();
    *bad.last_mut().unwrap() ^= 1;
    assert_eq!(meta(&bad).checksum.rx_layer4(), Some(Eval::Invalid));
    // Computed in software: smoltcp's value.
    let mut g = f.clone();
    g[14 + 48 + 16] = 0;
    g[14 + 48 + 17] = 0;
    fill_l4_checksum(&mut g).expect("an atomic fragment has a transport checksum");
    assert_eq!(g, f);
    // And offloaded: NEEDS_CSUM at the TCP header.
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
        ..Default::default()
    };
    let (_, a) = prepare(&mut f.clone(), f.len(), &req, ALL).unwrap();
    let TxAction::Offload(h) = a else {
        panic!("{a:?}")
    };
    assert_eq!(
        (h.flags, h.csum_start, h.csum_offset),
        (hdr_flags::NEEDS_CSUM, 62, 16)
    );
    // The 4-tuple hash.
    let h = hash_frame(&t, &f, &l, P::IPV6 | P::IPV6_EXTENSIONS | P::TCP).unwrap();
    let mut four = SRC6.to_vec();
    four.extend_from_slice(&DST6);
    four.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb]);
    assert_eq!(
        (h.hash_value, h.protocol()),
        (
            toeplitz_bitwise(&key, &four),
            P::IPV6 | P::IPV6_EXTENSIONS | P::TCP
        )
    );
    // With M set it is a first fragment: no transport checksum, 2-tuple.
    let mut first = f.clone();
    first[14 + 40 + 3] = 1;
    let m = meta(&first);
    assert!(m.parsed.unwrap().fragmented);
    assert_eq!(m.checksum.rx_layer4(), Some(Eval::NotChecked));
}
