//! Property tests with etherparse and smoltcp as oracles on random frames: tags, IPv4 options,
//! IPv6 extension headers, TCP options, odd lengths.

use etherparse::{LinkExtSlice, NetSlice, SlicedPacket, TransportSlice};
use netring::{
    NetPacketChecksum, NetPacketGso, RxChecksumEvaluation as Eval, TxChecksumAction as A,
};
use offload::segment::{L4Checksum, Segmenter, fill_l4_checksum, verify_l4_checksum};
use offload::tx::{DeviceTx, TxAction, TxRequest, prepare};
use offload::{L3, L4, Layout, checksum};
use proptest::prelude::*;
use smoltcp::wire::{IpAddress, TcpPacket, UdpPacket};
use virtio::net::{NetHeader, gso, hdr_flags};

#[derive(Debug, Clone)]
struct Spec {
    vlans: usize,
    v6: bool,
    v4_option_words: usize,
    v6_exts: Vec<(u8, usize)>,
    tcp: bool,
    tcp_option_words: usize,
    flags: u8,
    payload: Vec<u8>,
}

fn spec(max_payload: usize) -> impl Strategy<Value = Spec> {
    (
        0usize..3,
        any::<bool>(),
        0usize..11,
        prop::collection::vec(
            (prop_oneof![Just(0u8), Just(43u8), Just(60u8)], 0usize..4),
            0..3,
        ),
        any::<bool>(),
        0usize..11,
        any::<u8>(),
        prop::collection::vec(any::<u8>(), 0..max_payload),
    )
        .prop_map(
            |(vlans, v6, v4_option_words, mut v6_exts, tcp, tcp_option_words, flags, payload)| {
                // Hop-by-hop may only come first.
                for (i, e) in v6_exts.iter_mut().enumerate() {
                    if e.0 == 0 && i > 0 {
                        e.0 = 60;
                    }
                }
                Spec {
                    vlans,
                    v6,
                    v4_option_words,
                    v6_exts,
                    tcp,
                    tcp_option_words,
                    flags,
                    payload,
                }
            },
        )
}

const SRC4: [u8; 4] = [192, 168, 7, 1];
const DST4: [u8; 4] = [10, 9, 8, 7];
const SRC6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
const DST6: [u8; 16] = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];

/// Builds the frame with correct checksums (IPv4 header by hand; L4 by smoltcp).
fn build(s: &Spec) -> Vec<u8> {
    let mut f = vec![0x02, 0, 0, 0, 0, 1, 0x02, 0, 0, 0, 0, 2];
    for i in 0..s.vlans {
        f.extend_from_slice(
            &(if i == 0 && s.vlans == 2 {
                0x88a8u16
            } else {
                0x8100u16
            })
            .to_be_bytes(),
        );
        f.extend_from_slice(&((3u16 << 13) | (100 + i as u16)).to_be_bytes());
    }
    f.extend_from_slice(&(if s.v6 { 0x86ddu16 } else { 0x0800u16 }).to_be_bytes());
    let proto = if s.tcp { 6u8 } else { 17 };
    let l4_hdr = if s.tcp {
        20 + 4 * s.tcp_option_words
    } else {
        8
    };
    let l4_len = l4_hdr + s.payload.len();
    let l3 = f.len();
    if s.v6 {
        let ext_len: usize = s.v6_exts.iter().map(|e| (e.1 + 1) * 8).sum();
        f.extend_from_slice(&[0x60, 0, 0, 0]);
        f.extend_from_slice(&((ext_len + l4_len) as u16).to_be_bytes());
        f.push(s.v6_exts.first().map_or(proto, |e| e.0));
        f.push(64);
        f.extend_from_slice(&SRC6);
        f.extend_from_slice(&DST6);
        for (i, &(_, words)) in s.v6_exts.iter().enumerate() {
            let next = s.v6_exts.get(i + 1).map_or(proto, |e| e.0);
            f.push(next);
            f.push(words as u8);
            f.extend(std::iter::repeat_n(0u8, 6 + 8 * words));
        }
    } else {
        let ihl = 5 + s.v4_option_words;
        f.push(0x40 | ihl as u8);
        f.push(0);
        f.extend_from_slice(&((ihl * 4 + l4_len) as u16).to_be_bytes());
        f.extend_from_slice(&[0x12, 0x34, 0x40, 0, 64, proto, 0, 0]);
        f.extend_from_slice(&SRC4);
        f.extend_from_slice(&DST4);
        f.extend(std::iter::repeat_n(1u8, 4 * s.v4_option_words)); // NOP options
        let c = checksum::checksum(&f[l3..]);
        f[l3 + 10..l3 + 12].copy_from_slice(&c.to_be_bytes());
    }
    let l4 = f.len();
    if s.tcp {
        f.extend_from_slice(&[0x30, 0x39, 0x01, 0xbb, 0, 0, 0x10, 0, 0, 0, 0, 1]);
        f.push(((5 + s.tcp_option_words) as u8) << 4);
        f.push(s.flags);
        f.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
        f.extend(std::iter::repeat_n(1u8, 4 * s.tcp_option_words));
    } else {
        f.extend_from_slice(&[0x30, 0x39, 0x00, 0x35]);
        f.extend_from_slice(&(l4_len as u16).to_be_bytes());
        f.extend_from_slice(&[0, 0]);
    }
    f.extend_from_slice(&s.payload);
    let (src, dst) = addrs(s.v6);
    if s.tcp {
        TcpPacket::new_unchecked(&mut f[l4..]).fill_checksum(&src, &dst);
    } else {
        UdpPacket::new_unchecked(&mut f[l4..]).fill_checksum(&src, &dst);
    }
    f
}

fn addrs(v6: bool) -> (IpAddress, IpAddress) {
    if v6 {
        (IpAddress::Ipv6(SRC6.into()), IpAddress::Ipv6(DST6.into()))
    } else {
        (IpAddress::Ipv4(SRC4.into()), IpAddress::Ipv4(DST4.into()))
    }
}

/// smoltcp's verdict on the L4 checksum of a frame whose L4 starts at `l4`.
/// What the device sends for `NEEDS_CSUM`: `frame` with the driver's `headers` in front, the
/// sum from `csum_start` to the end complemented into the field — a UDP checksum that computes
/// to 0 sent as 0xFFFF (RFC 768; RFC 8200 §8.1), as QEMU's net_checksum_calculate does.
fn device_completes(frame: &[u8], headers: &[u8], h: &NetHeader, tcp: bool) -> Vec<u8> {
    let mut frame = frame.to_vec();
    frame[..headers.len()].copy_from_slice(headers);
    let mut c = checksum::Checksum::new();
    c.add_bytes(&frame[usize::from(h.csum_start)..]);
    let at = usize::from(h.csum_start + h.csum_offset);
    let v = match c.finish() {
        0 if !tcp => 0xffff,
        v => v,
    };
    frame[at..at + 2].copy_from_slice(&v.to_be_bytes());
    frame
}

fn smoltcp_ok(frame: &[u8], l4: usize, tcp: bool, v6: bool) -> bool {
    let (src, dst) = addrs(v6);
    if tcp {
        TcpPacket::new_checked(&frame[l4..]).is_ok_and(|p| p.verify_checksum(&src, &dst))
    } else {
        UdpPacket::new_checked(&frame[l4..]).is_ok_and(|p| p.verify_checksum(&src, &dst))
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn layout_agrees_with_etherparse(s in spec(300)) {
        let f = build(&s);
        let l = Layout::parse(&f).unwrap();
        let e = SlicedPacket::from_ethernet(&f).unwrap();
        let vlans = e.link_exts.iter().filter(|x| matches!(x, LinkExtSlice::Vlan(_))).count();
        prop_assert_eq!(usize::from(l.l2_len), 14 + 4 * vlans);
        prop_assert_eq!(l.vlan.map(|v| v.vid), (s.vlans > 0).then_some(100));
        let l3_len = match e.net.as_ref().unwrap() {
            NetSlice::Ipv4(v) => { let ok = matches!(l.l3, Some(L3::Ipv4 { options }) if options == (s.v4_option_words > 0)); prop_assert!(ok); v.header().slice().len() }
            NetSlice::Ipv6(v) => { let ok = matches!(l.l3, Some(L3::Ipv6 { extensions }) if extensions != s.v6_exts.is_empty()); prop_assert!(ok); 40 + v.extensions().slice().len() }
            NetSlice::Arp(_) => unreachable!(),
        };
        prop_assert_eq!(usize::from(l.l3_len), l3_len);
        match e.transport.as_ref().unwrap() {
            TransportSlice::Tcp(t) => { prop_assert_eq!(l.l4, L4::Tcp); prop_assert_eq!(usize::from(l.l4_len), t.header_len()); }
            TransportSlice::Udp(_) => { prop_assert_eq!(l.l4, L4::Udp); prop_assert_eq!(l.l4_len, 8); }
            _ => prop_assert!(false),
        }
        // The NetAdapterCx layout obeys the verifier's length rules.
        let n = l.to_net();
        prop_assert!(n.layer3_header_length() >= 20);
        let l4 = n.layer4_header_length();
        let ok = if s.tcp { (20..=60).contains(&l4) && l4.is_multiple_of(4) } else { l4 == 8 };
        prop_assert!(ok);
    }

    #[test]
    fn checksums_agree_with_smoltcp(s in spec(1600), flip in any::<prop::sample::Index>()) {
        let mut f = build(&s);
        let l = Layout::parse(&f).unwrap();
        prop_assert_eq!(verify_l4_checksum(&f, &l), Some(true));
        // Zero the field, refill with ours: same bytes as smoltcp wrote.
        let field = l.l4_offset() + if s.tcp { 16 } else { 6 };
        let want = f.clone();
        f[field] = 0; f[field + 1] = 0;
        fill_l4_checksum(&mut f).unwrap();
        prop_assert_eq!(&f, &want);
        // A corrupted byte is caught by both.
        let i = l.l4_offset() + flip.index(f.len() - l.l4_offset());
        f[i] ^= 0x5a;
        let ours = verify_l4_checksum(&f, &l);
        let theirs = smoltcp_ok(&f, l.l4_offset(), s.tcp, s.v6);
        // smoltcp reads the UDP length field; if we flipped it, both must still reject or agree.
        if ours.is_some() { prop_assert_eq!(ours, Some(theirs)); }
    }

    #[test]
    fn sum_matches_internet_checksum(data in prop::collection::vec(any::<u8>(), 0..3000)) {
        let theirs = internet_checksum::checksum(&data);
        prop_assert_eq!(checksum::checksum(&data).to_be_bytes(), theirs);
    }

    /// A partial (`NEEDS_CSUM`) checksum completed by the receive path, with the frame spread
    /// over buffers at arbitrary (odd) boundaries and an optional tag stripped first, comes out
    /// exactly as smoltcp's full checksum.
    #[test]
    fn rx_partial_checksum_completes_to_smoltcps(
        s in spec(3000),
        cut in any::<prop::sample::Index>(),
        pieces in prop::collection::vec(1usize..700, 0..6),
    ) {
        prop_assume!(s.vlans <= 1);
        let good = build(&s);
        let l = Layout::parse(&good).unwrap();
        let (l3o, l4o) = (l.l3_offset(), l.l4_offset());
        let field = if s.tcp { 16 } else { 6 };
        let seed = offload::wire::pseudo_header(&good[l3o..l4o], l.protocol, (good.len() - l4o) as u32)
            .unwrap()
            .fold();
        let mut wire = good.clone();
        wire[l4o + field..l4o + field + 2].copy_from_slice(&seed.to_be_bytes());
        let hdr = NetHeader {
            flags: hdr_flags::NEEDS_CSUM,
            csum_start: l4o as u16,
            csum_offset: field as u16,
            ..Default::default()
        };
        let (mut frame, mut expect, stripped) = (wire.clone(), good.clone(), false);
        if s.vlans == 1 {
            prop_assert!(offload::rx::strip_vlan(&mut frame).is_some());
            frame.drain(..4);
            expect.drain(12..16);
        }
        let stripped = stripped || s.vlans == 1;
        let opt = offload::rx::RxOptions { guest_csum: true, ..Default::default() };
        let min_first = l4o - if stripped { 4 } else { 0 } + field + 2;
        let k = min_first + cut.index(frame.len() - min_first + 1);
        let (first, tail) = frame.split_at_mut(k);
        let meta = offload::rx::metadata(&hdr, first, first.len() + tail.len(), opt);
        let fix = offload::rx::checksum_fix(&hdr, &meta, first, first.len() + tail.len(), stripped, opt)
            .unwrap()
            .unwrap();
        let mut rest = checksum::Checksum::new();
        let mut at = 0usize;
        for p in pieces.iter().chain(std::iter::once(&usize::MAX)) {
            let end = at.saturating_add(*p).min(tail.len());
            rest.add_bytes(&tail[at..end]);
            at = end;
        }
        prop_assert!(fix.apply(first, rest).is_ok());
        prop_assert_eq!(frame, expect);
    }

    #[test]
    fn segments_reparse_and_reassemble(s in spec(12000), mss in 1u32..3000, seed in any::<bool>()) {
        let f = build(&s);
        let seg = match Segmenter::new(&f, mss) {
            Ok(seg) => seg,
            Err(e) => { prop_assert!(s.payload.is_empty(), "{:?}", e); return Ok(()); }
        };
        prop_assert_eq!(seg.count(), s.payload.len().div_ceil(mss as usize));
        let mut out = vec![0u8; 70_000];
        let mut payload = Vec::new();
        let l = *seg.layout();
        for i in 0..seg.count() {
            let n = seg.write(i, &mut out, if seed { L4Checksum::Seed } else { L4Checksum::Full }).unwrap();
            let frame = &mut out[..n];
            let e = SlicedPacket::from_ethernet(frame).unwrap();

            match e.net.as_ref().unwrap() {
                NetSlice::Ipv4(v) => {
                    let h = v.header();
                    prop_assert_eq!(usize::from(h.total_len()), n - l.l3_offset());
                    prop_assert_eq!(h.identification(), 0x1234u16.wrapping_add(i as u16));
                    prop_assert_eq!(checksum::sum_be(h.slice()), 0xffff);
                }
                NetSlice::Ipv6(v) => prop_assert_eq!(usize::from(v.header().payload_length()), n - l.l3_offset() - 40),
                NetSlice::Arp(_) => unreachable!(),
            }
            match e.transport.as_ref().unwrap() {
                TransportSlice::Tcp(t) => {
                    prop_assert_eq!(t.sequence_number(), 0x1000u32.wrapping_add(i as u32 * mss));
                    let last = i + 1 == seg.count();
                    prop_assert_eq!(t.cwr(), s.flags & 0x80 != 0 && i == 0);
                    prop_assert_eq!(t.fin(), s.flags & 0x01 != 0 && last);
                    prop_assert_eq!(t.psh(), s.flags & 0x08 != 0 && last);
                    payload.extend_from_slice(t.payload());
                }
                TransportSlice::Udp(u) => {
                    prop_assert_eq!(usize::from(u.length()), n - l.l4_offset());
                    payload.extend_from_slice(u.payload());
                }
                _ => prop_assert!(false),
            }
            drop(e);
            if seed {
                // Finish as the device would (NEEDS_CSUM from csum_start), then check.
                let mut c = checksum::Checksum::new();
                c.add_bytes(&frame[l.l4_offset()..]);
                let field = l.l4_offset() + if s.tcp { 16 } else { 6 };
                frame[field..field + 2].copy_from_slice(&c.finish().to_be_bytes());
            }
            prop_assert!(smoltcp_ok(frame, l.l4_offset(), s.tcp, s.v6), "segment {} checksum", i);
        }
        prop_assert_eq!(payload, s.payload);
    }

    #[test]
    fn tx_offload_header_completes_to_a_valid_frame(s in spec(3000), mss in 0u32..2000, l3req: bool) {
        let f = build(&s);
        let l = Layout::parse(&f).unwrap();
        let mut headers = f[..l.header_len()].to_vec();
        // Spoil the fields the driver must own: checksums and (for LSO) lengths.
        let field = l.l4_offset() + if s.tcp { 16 } else { 6 };
        headers[field] = 0xde; headers[field + 1] = 0xad;
        let mut gso_ext = NetPacketGso::default();
        gso_ext.set_mss(mss).unwrap();
        let req = TxRequest {
            layout: l.to_net(),
            checksum: NetPacketChecksum::tx(if l3req { A::Required } else { A::Passthrough }, A::Required),
            gso: gso_ext,
        };
        let dev = DeviceTx { csum: true, tso4: true, tso6: true, ecn: true, uso: true };
        let (_, action) = match prepare(&mut headers, f.len(), &req, dev) {
            Ok(r) => r,
            Err(e) => { prop_assert!(mss > 65535 || l.fragmented, "{:?}", e); return Ok(()); }
        };
        let TxAction::Offload(h) = action else { prop_assert!(false, "{:?}", action); return Ok(()); };
        prop_assert_eq!(h.flags, hdr_flags::NEEDS_CSUM);
        prop_assert_eq!(usize::from(h.csum_start), l.l4_offset());
        prop_assert_eq!(h.csum_offset, if s.tcp { 16 } else { 6 });
        if mss > 0 {
            let base = if !s.tcp { gso::UDP_L4 } else if s.v6 { gso::TCPV6 } else { gso::TCPV4 };
            let ecn = if s.tcp && s.flags & 0x80 != 0 { gso::ECN } else { 0 };
            prop_assert_eq!(h.gso_type, base | ecn);
            prop_assert_eq!(u32::from(h.gso_size), mss);
            prop_assert_eq!(usize::from(h.hdr_len), l.header_len());
        }
        let frame = device_completes(&f, &headers, &h, s.tcp);
        prop_assert!(smoltcp_ok(&frame, l.l4_offset(), s.tcp, s.v6));
        prop_assert_eq!(&frame, &f, "headers restored to the original (lengths and checksums)");
    }

    /// A checksum request alone (no segmentation), the common TX offload: the TCP/UDP seed and,
    /// when asked, the IPv4 header checksum — both spoiled first — complete to the original.
    #[test]
    fn tx_checksum_request_completes_to_a_valid_frame(s in spec(3000), l3req: bool) {
        let f = build(&s);
        let l = Layout::parse(&f).unwrap();
        let mut headers = f[..l.header_len()].to_vec();
        let field = l.l4_offset() + if s.tcp { 16 } else { 6 };
        headers[field] = 0xde; headers[field + 1] = 0xad;
        let v4 = !s.v6;
        if v4 && l3req {
            headers[l.l3_offset() + 10] ^= 0x5a;
        }
        let req = TxRequest {
            layout: l.to_net(),
            checksum: NetPacketChecksum::tx(if l3req { A::Required } else { A::Passthrough }, A::Required),
            gso: NetPacketGso::default(),
        };
        let dev = DeviceTx { csum: true, tso4: true, tso6: true, ecn: true, uso: true };
        let (_, action) = match prepare(&mut headers, f.len(), &req, dev) {
            Ok(r) => r,
            Err(e) => { prop_assert!(l.fragmented, "{:?}", e); return Ok(()); }
        };
        let TxAction::Offload(h) = action else { prop_assert!(false, "{:?}", action); return Ok(()); };
        prop_assert_eq!(h.flags, hdr_flags::NEEDS_CSUM);
        prop_assert_eq!(usize::from(h.csum_start), l.l4_offset());
        prop_assert_eq!(h.csum_offset, if s.tcp { 16 } else { 6 });
        prop_assert_eq!((h.gso_type, h.gso_size), (0, 0));
        let frame = device_completes(&f, &headers, &h, s.tcp);
        prop_assert!(smoltcp_ok(&frame, l.l4_offset(), s.tcp, s.v6));
        prop_assert_eq!(&frame, &f, "headers restored to the original (checksums)");
    }
}

#[test]
fn rx_metadata_checksum_verdicts() {
    use offload::rx::{RxOptions, metadata};
    let s = Spec {
        vlans: 1,
        v6: false,
        v4_option_words: 0,
        v6_exts: vec![],
        tcp: true,
        tcp_option_words: 3,
        flags: 0x18,
        payload: vec![7; 1000],
    };
    let mut f = build(&s);
    let opt = RxOptions {
        guest_csum: true,
        rsc_ext: false,
        software_verify: true,
    };
    let valid = NetHeader {
        flags: hdr_flags::DATA_VALID,
        ..Default::default()
    };
    let m = metadata(&valid, &f, f.len(), opt);
    assert_eq!(
        (m.checksum.rx_layer3(), m.checksum.rx_layer4()),
        (Some(Eval::Valid), Some(Eval::Valid))
    );
    assert_eq!(m.layout.layer2_header_length(), 18);
    let none = NetHeader::default();
    assert_eq!(
        metadata(&none, &f, f.len(), opt).checksum.rx_layer4(),
        Some(Eval::Valid)
    );
    let last = f.len() - 1;
    f[last] ^= 1;
    assert_eq!(
        metadata(&none, &f, f.len(), opt).checksum.rx_layer4(),
        Some(Eval::Invalid)
    );
    assert_eq!(
        metadata(&valid, &f, f.len(), opt).checksum.rx_layer4(),
        Some(Eval::Valid),
        "device verdict wins"
    );
    let no_sw = RxOptions {
        software_verify: false,
        ..opt
    };
    assert_eq!(
        metadata(&none, &f, f.len(), no_sw).checksum.rx_layer4(),
        Some(Eval::NotChecked)
    );
    // A coalesced (GUEST_TSO) packet: RSC from RSC_INFO, else estimated from gso_size.
    let rsc = NetHeader {
        flags: hdr_flags::DATA_VALID | hdr_flags::RSC_INFO,
        gso_type: gso::TCPV4,
        gso_size: 300,
        csum_start: 4,
        csum_offset: 1,
        ..Default::default()
    };
    let ext = RxOptions {
        rsc_ext: true,
        ..opt
    };
    let r = metadata(&rsc, &f, f.len(), ext).rsc.unwrap();
    assert_eq!((r.coalesced_segment_count, r.duplicate_ack_count), (4, 1));
    let r = metadata(&rsc, &f, f.len(), opt).rsc.unwrap();
    assert_eq!(r.coalesced_segment_count, 4, "ceil(1000 / 300)");
    // Broken IPv4 header checksum.
    f[18 + 10] ^= 0xff;
    assert_eq!(
        metadata(&valid, &f, f.len(), opt).checksum.rx_layer3(),
        Some(Eval::Invalid)
    );
}
