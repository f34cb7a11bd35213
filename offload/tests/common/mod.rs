//! Frames built byte by byte for the rule tests (issue 13), with checksums from smoltcp given
//! the addresses a rule names, so a rule is checked against a checksum nobody here wrote.

#![allow(dead_code)]

use netring::{Layer2Type, Layer3Type, Layer4Type, NetPacketLayout};
use offload::checksum;
use offload::rss::Toeplitz;
use offload::rx::{RxOptions, metadata};
use offload::tx::DeviceTx;
use smoltcp::wire::{IpAddress, TcpPacket, UdpPacket};
use virtio::net::NetHeader;

pub const SRC4: [u8; 4] = [192, 0, 2, 1];
pub const DST4: [u8; 4] = [198, 51, 100, 7];
pub const HOP4: [u8; 4] = [203, 0, 113, 9];
pub const LAST4: [u8; 4] = [203, 0, 113, 77];
pub const SRC6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
pub const DST6: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
pub const SEG_A: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xa, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xa];
pub const SEG_B: [u8; 16] = [0x20, 1, 0xd, 0xb8, 0, 0xb, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xb];

pub const SW: RxOptions = RxOptions {
    guest_csum: false,
    rsc_ext: false,
    software_verify: true,
};

pub const ALL: DeviceTx = DeviceTx {
    csum: true,
    tso4: true,
    tso6: true,
    ecn: true,
    uso: true,
};

/// Ethernet header with `tags` (TPIDs; VLAN id 5, 6…) and `ethertype`.
pub fn eth(tags: &[u16], ethertype: u16) -> Vec<u8> {
    let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    for (i, t) in tags.iter().enumerate() {
        f.extend_from_slice(&t.to_be_bytes());
        f.extend_from_slice(&(5 + i as u16).to_be_bytes());
    }
    f.extend_from_slice(&ethertype.to_be_bytes());
    f
}

/// IPv4 header with `options`, protocol, flags/fragment word, for `payload` bytes after it;
/// header checksum filled.
pub fn ipv4(proto: u8, options: &[u8], frag: u16, payload: usize, dst: [u8; 4]) -> Vec<u8> {
    assert_eq!(options.len() % 4, 0);
    let hl = 20 + options.len();
    let mut h = vec![0x40 | (hl / 4) as u8, 0];
    h.extend_from_slice(&((hl + payload) as u16).to_be_bytes());
    h.extend_from_slice(&[0x12, 0x34]);
    h.extend_from_slice(&frag.to_be_bytes());
    h.extend_from_slice(&[64, proto, 0, 0]);
    h.extend_from_slice(&SRC4);
    h.extend_from_slice(&dst);
    h.extend_from_slice(options);
    let c = checksum::checksum(&h);
    h[10..12].copy_from_slice(&c.to_be_bytes());
    h
}

/// IPv6 fixed header for `payload` bytes after it.
pub fn ipv6(next: u8, payload: usize) -> Vec<u8> {
    let mut h = vec![0x60, 0, 0, 0];
    h.extend_from_slice(&(payload as u16).to_be_bytes());
    h.extend_from_slice(&[next, 64]);
    h.extend_from_slice(&SRC6);
    h.extend_from_slice(&DST6);
    h
}

/// A TCP segment (20-byte header, ACK|PSH) with `payload`, checksum zero.
pub fn tcp(payload: &[u8]) -> Vec<u8> {
    let mut t = vec![
        0x30, 0x39, 0x01, 0xbb, 0, 0, 0x10, 0, 0, 0, 0, 1, 0x50, 0x18,
    ];
    t.extend_from_slice(&[0xff, 0xff, 0, 0, 0, 0]);
    t.extend_from_slice(payload);
    t
}

/// A UDP datagram with `payload` and length field `len` (None: the real length), checksum zero.
pub fn udp(payload: &[u8], len: Option<u16>) -> Vec<u8> {
    let mut u = vec![0x30, 0x39, 0x00, 0x35];
    u.extend_from_slice(&len.unwrap_or(8 + payload.len() as u16).to_be_bytes());
    u.extend_from_slice(&[0, 0]);
    u.extend_from_slice(payload);
    u
}

pub fn v4(a: [u8; 4]) -> IpAddress {
    IpAddress::Ipv4(a.into())
}

pub fn v6(a: [u8; 16]) -> IpAddress {
    IpAddress::Ipv6(a.into())
}

/// smoltcp fills the TCP checksum of `seg` for these addresses.
pub fn smol_tcp(seg: &mut [u8], src: IpAddress, dst: IpAddress) {
    TcpPacket::new_unchecked(seg).fill_checksum(&src, &dst);
}

/// smoltcp fills the UDP checksum of `dgram` (over its UDP Length bytes).
pub fn smol_udp(dgram: &mut [u8], src: IpAddress, dst: IpAddress) {
    UdpPacket::new_unchecked(dgram).fill_checksum(&src, &dst);
}

pub fn meta(f: &[u8]) -> offload::rx::RxMetadata {
    metadata(&NetHeader::default(), f, f.len(), SW)
}

/// (L2 type, L2 length, L3 type, L3 length, L4 type, L4 length) of a NetAdapterCx layout.
pub type Lay = (
    Option<Layer2Type>,
    u8,
    Option<Layer3Type>,
    u16,
    Option<Layer4Type>,
    u8,
);

pub fn lay(n: NetPacketLayout) -> Lay {
    (
        n.layer2_type(),
        n.layer2_header_length(),
        n.layer3_type(),
        n.layer3_header_length(),
        n.layer4_type(),
        n.layer4_header_length(),
    )
}

pub const NOTHING: Lay = (
    Some(Layer2Type::Unspecified),
    0,
    Some(Layer3Type::Unspecified),
    0,
    Some(Layer4Type::Unspecified),
    0,
);

pub fn l2_only(len: u8) -> Lay {
    (
        Some(Layer2Type::Ethernet),
        len,
        Some(Layer3Type::Unspecified),
        0,
        Some(Layer4Type::Unspecified),
        0,
    )
}

pub fn l3_only(l2: u8, l3: Layer3Type, l3_len: u16) -> Lay {
    (
        Some(Layer2Type::Ethernet),
        l2,
        Some(l3),
        l3_len,
        Some(Layer4Type::Unspecified),
        0,
    )
}

pub fn key() -> ([u8; 40], Box<Toeplitz>) {
    let key: [u8; 40] = core::array::from_fn(|i| (i * 29 + 3) as u8);
    let mut t = Box::new(Toeplitz::EMPTY);
    t.set_key(&key);
    (key, t)
}

/// A valid IPv4/TCP frame (tags as given) with a smoltcp checksum.
pub fn tcp4_frame(tags: &[u16], payload: &[u8]) -> Vec<u8> {
    let mut seg = tcp(payload);
    smol_tcp(&mut seg, v4(SRC4), v4(DST4));
    let mut f = eth(tags, 0x0800);
    f.extend(ipv4(6, &[], 0x4000, seg.len(), DST4));
    f.extend(seg);
    f
}
