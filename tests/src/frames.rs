//! Test frames shared by the tests and benchmarks.

/// An Ethernet II frame: `dst`, `src`, `ethertype`, then `payload`.
pub fn ethernet(dst: [u8; 6], src: [u8; 6], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(14 + payload.len());
    f.extend_from_slice(&dst);
    f.extend_from_slice(&src);
    f.extend_from_slice(&ethertype.to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// An IPv4/TCP packet (no Ethernet header) from 10.0.0.1:1234 to 10.0.0.2:80 — identification
/// 1, DF, TTL 64, sequence 1, no ACK number, window 65 535, TCP `flags` — carrying `payload`.
/// Both checksums are left zero: a test fills them or asks the offload to.
pub fn ipv4_tcp(flags: u8, payload: impl IntoIterator<Item = u8>) -> Vec<u8> {
    let mut p = vec![
        0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 6, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2,
    ];
    p.extend_from_slice(&[
        0x04, 0xd2, 0x00, 0x50, 0, 0, 0, 1, 0, 0, 0, 0, 0x50, flags, 0xff, 0xff, 0, 0, 0, 0,
    ]);
    p.extend(payload);
    let total = p.len() as u16;
    p[2..4].copy_from_slice(&total.to_be_bytes());
    p
}

/// [`ipv4_tcp`] in an Ethernet frame.
pub fn tcp4(
    dst: [u8; 6],
    src: [u8; 6],
    flags: u8,
    payload: impl IntoIterator<Item = u8>,
) -> Vec<u8> {
    ethernet(dst, src, 0x0800, &ipv4_tcp(flags, payload))
}
