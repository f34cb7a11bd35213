//! The TCP/UDP pseudo-header uses the final destination (issue 13; RFC 8200 §8.1, RFC 791 §3.1)
//! — in verification, the software checksum, the seed of an offloaded checksum and of LSO, and
//! software segmentation.

mod common;

use common::*;
use netring::{
    NetPacketChecksum, NetPacketGso, RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::segment::{L4Checksum, Segmenter, fill_l4_checksum, verify_l4_checksum};
use offload::tx::{TxAction, TxRequest, prepare};
use offload::{Layout, checksum};

/// IPv6 with a Routing header of `ty` with `addrs` and `segments_left`, then a TCP segment whose
/// checksum smoltcp computed for `final_dst`.
fn routed6(ty: u8, addrs: &[[u8; 16]], segments_left: u8, final_dst: [u8; 16]) -> Vec<u8> {
    let mut seg = tcp(b"routed");
    smol_tcp(&mut seg, v6(SRC6), v6(final_dst));
    let rh_len = 8 + 16 * addrs.len();
    let mut f = eth(&[], 0x86dd);
    f.extend(ipv6(43, rh_len + seg.len()));
    f.extend_from_slice(&[6, (2 * addrs.len()) as u8, ty, segments_left]);
    if ty == 4 {
        // SRH: Last Entry, Flags, Tag.
        f.extend_from_slice(&[(addrs.len() - 1) as u8, 0, 0, 0]);
    } else {
        f.extend_from_slice(&[0; 4]);
    }
    for a in addrs {
        f.extend_from_slice(a);
    }
    f.extend(seg);
    f
}

/// Checks every place the pseudo-header is used: verification, software checksum, the seed of
/// an offloaded checksum and of LSO, and software segmentation.
fn assert_final_destination(f: &[u8], why: &str) {
    let l = Layout::parse(f).unwrap();
    assert_eq!(verify_l4_checksum(f, &l), Some(true), "{why}: verify");
    assert_eq!(meta(f).checksum.rx_layer4(), Some(Eval::Valid), "{why}");
    let field = l.l4_offset() + if l.protocol == 6 { 16 } else { 6 };
    let mut g = f.to_vec();
    g[field] = 0x55;
    fill_l4_checksum(&mut g).unwrap();
    assert_eq!(g, f, "{why}: software checksum");
    for mss in [0u32, 3] {
        let mut gso = NetPacketGso::default();
        gso.set_mss(mss).unwrap();
        let req = TxRequest {
            checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
            gso,
            ..Default::default()
        };
        let mut h = f.to_vec();
        let (_, a) = prepare(&mut h, f.len(), &req, ALL).unwrap();
        let TxAction::Offload(hdr) = a else {
            panic!("{why}: {a:?}")
        };
        let mut c = checksum::Checksum::new();
        c.add_bytes(&h[usize::from(hdr.csum_start)..]);
        let at = usize::from(hdr.csum_start + hdr.csum_offset);
        h[at..at + 2].copy_from_slice(&c.finish().to_be_bytes());
        assert_eq!(h, f, "{why}: seed with MSS {mss}");
    }
    // Software segmentation: every segment verifies for the same final destination.
    let s = Segmenter::new(f, 2).unwrap();
    let mut out = vec![0u8; 1000];
    for i in 0..s.count() {
        let n = s.write(i, &mut out, L4Checksum::Full).unwrap();
        let sl = Layout::parse(&out[..n]).unwrap();
        assert_eq!(
            verify_l4_checksum(&out[..n], &sl),
            Some(true),
            "{why}: seg {i}"
        );
    }
}

#[test]
fn pseudo_header_uses_the_final_destination() {
    // RFC 8200 §8.1: with a Routing header, the final destination — the last address for
    // types 0 (RFC 5095, deprecated but still parsed) and 2 (RFC 6275), Segment List[0] for the
    // Segment Routing Header (type 4, RFC 8754 §2) — while Segments Left > 0.
    let f = routed6(0, &[SEG_A, SEG_B], 2, SEG_B);
    assert_final_destination(&f, "type 0, two addresses");
    let f = routed6(2, &[SEG_B], 1, SEG_B);
    assert_final_destination(&f, "type 2");
    let f = routed6(4, &[SEG_B, SEG_A], 1, SEG_B);
    assert_final_destination(&f, "SRH: Segment List[0]");
    // Segments Left 0: the packet is at its final destination, the header's address.
    let f = routed6(0, &[SEG_A, SEG_B], 0, DST6);
    assert_final_destination(&f, "type 0, Segments Left 0");
    let f = routed6(4, &[SEG_B, SEG_A], 0, DST6);
    assert_final_destination(&f, "SRH, Segments Left 0");
    // IPv4 loose (131) and strict (137) source routes: the last route address while the route
    // is not used up (RFC 791 §3.1: pointer ≤ length).
    for ty in [131u8, 137] {
        let opt = [
            1, ty, 11, 4, HOP4[0], HOP4[1], HOP4[2], HOP4[3], LAST4[0], LAST4[1], LAST4[2],
            LAST4[3],
        ];
        let mut seg = tcp(b"source routed");
        smol_tcp(&mut seg, v4(SRC4), v4(LAST4));
        let mut f = eth(&[], 0x0800);
        f.extend(ipv4(6, &opt, 0x4000, seg.len(), HOP4));
        f.extend(seg);
        assert_final_destination(&f, "IPv4 source route");
        // Route used up (pointer 12 > length 11): the header's destination is the final one.
        let mut done = opt;
        done[3] = 12;
        let mut seg = tcp(b"source routed");
        smol_tcp(&mut seg, v4(SRC4), v4(DST4));
        let mut f = eth(&[], 0x0800);
        f.extend(ipv4(6, &done, 0x4000, seg.len(), DST4));
        f.extend(seg);
        assert_final_destination(&f, "IPv4 source route used up");
    }
    // UDP over a routed IPv6 packet too.
    let mut d = udp(b"udp routed", None);
    smol_udp(&mut d, v6(SRC6), v6(SEG_B));
    let mut f = eth(&[], 0x86dd);
    f.extend(ipv6(43, 24 + d.len()));
    f.extend_from_slice(&[17, 2, 2, 1, 0, 0, 0, 0]);
    f.extend_from_slice(&SEG_B);
    f.extend(d);
    assert_final_destination(&f, "UDP, type 2");
}
