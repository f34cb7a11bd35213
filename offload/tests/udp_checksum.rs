//! UDP checksum rules (issue 13): the checksum covers exactly UDP Length bytes (RFC 768), a
//! longer UDP Length is malformed; IPv4 UDP checksum 0 means "none", over IPv6 it is invalid
//! (RFC 8200 §8.1); a computed UDP checksum of 0x0000 is sent as 0xFFFF, TCP has no such rule.

mod common;

use common::*;
use netring::{NetPacketChecksum, RxChecksumEvaluation as Eval, TxChecksumAction as A};
use offload::segment::{L4Checksum, Segmenter, fill_l4_checksum, verify_l4_checksum};
use offload::tx::{TxAction, TxRequest, prepare};
use offload::{Layout, checksum};

#[test]
fn udp_checksum_covers_exactly_udp_length_bytes() {
    // A datagram of 8 + 10 bytes in an IP payload of 24: six bytes after the datagram are not
    // covered (RFC 768: "Length is the length in octets of this user datagram").
    let mut d = udp(&[7; 16], Some(18));
    smol_udp(&mut d, v4(SRC4), v4(DST4));
    let mut f = eth(&[], 0x0800);
    f.extend(ipv4(17, &[], 0, d.len(), DST4));
    f.extend_from_slice(&d);
    let l = Layout::parse(&f).unwrap();
    assert_eq!(verify_l4_checksum(&f, &l), Some(true));
    assert_eq!(meta(&f).checksum.rx_layer4(), Some(Eval::Valid));
    // The bytes after the datagram may change without the checksum changing.
    let mut tail = f.clone();
    *tail.last_mut().unwrap() ^= 0xff;
    assert_eq!(verify_l4_checksum(&tail, &l), Some(true));
    // Computed in software over the same 18 bytes, and the tail is left alone.
    let mut g = tail.clone();
    g[14 + 20 + 6] = 0;
    g[14 + 20 + 7] = 0;
    fill_l4_checksum(&mut g).unwrap();
    assert_eq!(g, tail);
    // IPv6 the same way.
    let mut d6 = udp(&[3; 9], Some(12));
    smol_udp(&mut d6, v6(SRC6), v6(DST6));
    let mut s = eth(&[], 0x86dd);
    s.extend(ipv6(17, d6.len()));
    s.extend_from_slice(&d6);
    let l6 = Layout::parse(&s).unwrap();
    assert_eq!(verify_l4_checksum(&s, &l6), Some(true));
    // The device sums to the end of the frame: it cannot checksum such a datagram.
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
        ..Default::default()
    };
    let (_, a) = prepare(&mut f.clone(), f.len(), &req, ALL).unwrap();
    assert_eq!(a, TxAction::SoftwareChecksum);
    // A UDP Length longer than the IP payload is malformed: no verdict, no checksum.
    let mut long = f.clone();
    long[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&25u16.to_be_bytes());
    assert_eq!(verify_l4_checksum(&long, &l), None);
    assert_eq!(meta(&long).checksum.rx_layer4(), Some(Eval::NotChecked));
    assert!(fill_l4_checksum(&mut long.clone()).is_err());
    assert!(prepare(&mut long.clone(), long.len(), &req, ALL).is_err());
    // So is a UDP Length under 8.
    let mut short = f.clone();
    short[14 + 20 + 4..14 + 20 + 6].copy_from_slice(&7u16.to_be_bytes());
    assert_eq!(verify_l4_checksum(&short, &l), None);
}

#[test]
fn udp_length_is_the_pseudo_header_length_of_an_offloaded_checksum() {
    // A datagram that fills its IP payload: NEEDS_CSUM with a seed over UDP Length.
    let mut d = udp(&[1; 11], None);
    smol_udp(&mut d, v4(SRC4), v4(DST4));
    let mut f = eth(&[], 0x0800);
    f.extend(ipv4(17, &[], 0, d.len(), DST4));
    f.extend_from_slice(&d);
    let req = TxRequest {
        checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
        ..Default::default()
    };
    let mut h = f.clone();
    let (_, a) = prepare(&mut h, f.len(), &req, ALL).unwrap();
    let TxAction::Offload(hdr) = a else {
        panic!("{a:?}")
    };
    // Finish as the device does; smoltcp's bytes come out.
    let mut c = checksum::Checksum::new();
    c.add_bytes(&h[usize::from(hdr.csum_start)..]);
    let at = usize::from(hdr.csum_start + hdr.csum_offset);
    h[at..at + 2].copy_from_slice(&c.finish().to_be_bytes());
    assert_eq!(h, f);
}

/// A UDP datagram whose checksum over these addresses comes out as 0x0000: the last payload
/// word (at an even offset) is chosen to bring the one's-complement sum to 0xffff.
fn zero_sum_udp(v6: bool) -> Vec<u8> {
    let mut d = udp(&[0x11, 0x22, 0x33, 0x44, 0, 0], None);
    let len = d.len() as u32;
    let mut c = if v6 {
        checksum::pseudo_header_v6(SRC6, DST6, 17, len)
    } else {
        checksum::pseudo_header_v4(SRC4, DST4, 17, len)
    };
    c.add_bytes(&d);
    let w = !c.fold();
    d[12..14].copy_from_slice(&w.to_be_bytes());
    d
}

#[test]
fn udp_zero_checksum_rules() {
    for v6 in [false, true] {
        let mut d = zero_sum_udp(v6);
        // The checksum really is 0x0000: on the wire it is all-ones (RFC 768; RFC 8200 §8.1).
        let (src, dst) = if v6 {
            (self::v6(SRC6), self::v6(DST6))
        } else {
            (v4(SRC4), v4(DST4))
        };
        smol_udp(&mut d, src, dst);
        assert_eq!(&d[6..8], &[0xff, 0xff], "smoltcp agrees the sum is zero");
        let mut f = if v6 {
            let mut f = eth(&[], 0x86dd);
            f.extend(ipv6(17, d.len()));
            f
        } else {
            let mut f = eth(&[], 0x0800);
            f.extend(ipv4(17, &[], 0, d.len(), DST4));
            f
        };
        let l4 = f.len();
        f.extend_from_slice(&d);
        let mut g = f.clone();
        g[l4 + 6] = 0x12;
        fill_l4_checksum(&mut g).unwrap();
        assert_eq!(
            &g[l4 + 6..l4 + 8],
            &[0xff, 0xff],
            "v6 {v6}: computed zero sent as 0xFFFF"
        );
        let s = Segmenter::new(&f, 3).unwrap();
        let mut out = vec![0u8; 200];
        let mut any_zero = false;
        for i in 0..s.count() {
            let n = s.write(i, &mut out, L4Checksum::Full).unwrap();
            assert_ne!(&out[l4 + 6..l4 + 8], &[0, 0], "segment {i}");
            let sl = Layout::parse(&out[..n]).unwrap();
            any_zero |= verify_l4_checksum(&out[..n], &sl) == Some(true);
        }
        assert!(any_zero, "segments verify");
        assert_eq!(meta(&f).checksum.rx_layer4(), Some(Eval::Valid));
        // A zero field: over IPv4 "no checksum" (not checked); over IPv6 invalid — even though
        // this datagram's true checksum is the other zero.
        let mut z = f.clone();
        z[l4 + 6] = 0;
        z[l4 + 7] = 0;
        let l = Layout::parse(&z).unwrap();
        let (verdict, eval) = if v6 {
            (Some(false), Eval::Invalid)
        } else {
            (None, Eval::NotChecked)
        };
        assert_eq!(verify_l4_checksum(&z, &l), verdict, "v6 {v6}");
        assert_eq!(meta(&z).checksum.rx_layer4(), Some(eval), "v6 {v6}");
    }
    // TCP has no such rule: a computed 0x0000 stays 0x0000.
    let mut seg = tcp(&[0, 0]);
    let len = seg.len() as u32;
    let mut c = checksum::pseudo_header_v4(SRC4, DST4, 6, len);
    c.add_bytes(&seg);
    let rest = !c.fold();
    seg[20] = (rest >> 8) as u8;
    seg[21] = rest as u8;
    let mut f = eth(&[], 0x0800);
    f.extend(ipv4(6, &[], 0, seg.len(), DST4));
    f.extend(seg);
    let mut g = f.clone();
    g[14 + 20 + 16] = 0x77;
    fill_l4_checksum(&mut g).unwrap();
    assert_eq!(&g[14 + 20 + 16..14 + 20 + 18], &[0, 0], "TCP keeps 0x0000");
    let l = Layout::parse(&g).unwrap();
    assert_eq!(verify_l4_checksum(&g, &l), Some(true));
}
