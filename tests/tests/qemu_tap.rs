//! TCP with the Linux kernel through QEMU's tap backend (`vnet_hdr=on`) in a network namespace
//! the test creates and removes: the OS side hands the driver 64 KiB LSO packets with checksum
//! offload requested; the kernel receives a multi-megabyte stream whose SHA-256 must match, with
//! no checksum errors — delivered locally, and forwarded through a veth with every offload off so
//! the kernel segments in software. And the other way: the kernel's TSO stream reaches the guest
//! as coalesced (RSC) packets whose partial checksums the driver completes. IPv4 and IPv6.

use std::net::SocketAddr;
use std::time::Duration;

use sha2::{Digest, Sha256};
use virtio::Features;
use virtionet::config::UserSettings;
use vnet_harness::lab::QemuMachine;
use vnet_harness::netns::{NetNs, addr, serve_tcp, setup_far, setup_tap};
use vnet_harness::qemu::QemuOptions;
use vnet_harness::rng::Rng;
use vnet_harness::tcp::{Ip, TcpFlow};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// The kernel sends to the guest: its TSO packets reach the driver as coalesced (RSC) packets
/// with partial checksums, which the driver completes; the guest's stream must match.
fn receive(tag: &str, v6: bool) {
    let ns = NetNs::new(&format!("vnet{}{tag}", std::process::id() % 100_000)).expect("netns");
    let tap_mac = setup_tap(&ns, "vtap0", MAC).expect("tap");
    let opts = QemuOptions {
        tap: Some(("vtap0".into(), ns.name.clone())),
        ..Default::default()
    };
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), false, 12)
        .unwrap_or_else(|e| panic!("QEMU with tap: {e}"));
    let f = m.adapter.features();
    assert!(
        f.contains(Features::NET_GUEST_CSUM | Features::NET_GUEST_TSO4 | Features::NET_GUEST_TSO6),
        "guest offloads negotiated: {f:?}"
    );
    assert!(m.adapter.capabilities().rsc_v4 && m.adapter.capabilities().rsc_v6);
    let (ip, at): (Ip, SocketAddr) = if v6 {
        (
            Ip::V6(addr::GUEST6, addr::HOST6),
            "[fd00:99::1]:5002".parse().unwrap(),
        )
    } else {
        (
            Ip::V4(addr::GUEST4, addr::HOST4),
            "10.99.0.1:5002".parse().unwrap(),
        )
    };
    let mut rng = Rng::new(6);
    let data: Vec<u8> = (0..4 << 20).map(|_| rng.next_u64() as u8).collect();
    let (h, ready) = serve_tcp(&ns, at, Some(data.clone()));
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("source ready");
    let mut flow = TcpFlow::new(MAC, tap_mac, ip, 40_001, 5002);
    let got = flow
        .recv_stream(&mut m, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    h.join().expect("source thread").expect("source");
    assert_eq!(got.data.len(), data.len(), "{tag}: bytes received");
    assert_eq!(
        Sha256::digest(&got.data).to_vec(),
        Sha256::digest(&data).to_vec(),
        "{tag}: SHA-256 of the stream"
    );
    assert_eq!(
        got.bad_checksums, 0,
        "{tag}: every indicated checksum is real"
    );
    assert!(
        got.coalesced > 0 && got.largest > 9000,
        "{tag}: the kernel's TSO packets arrived coalesced: {got:?}"
    );
    // RSC metadata: the segment count the kernel's MSS implies (IPv4 1460, IPv6 1440: the
    // guest advertised 1460, the tap's MTU is 1500).
    let mss = if v6 { 1440 } else { 1460 };
    for &(len, count) in &got.rsc {
        assert_eq!(
            usize::from(count),
            len.div_ceil(mss),
            "{tag}: RSC count of a {len}-byte payload"
        );
    }
    let s = m.rx.stats();
    assert!(s.coalesced_packets >= got.coalesced, "{tag}: {s:?}");
    assert!(s.checksums_completed > 0, "{tag}: {s:?}");
    assert_eq!(
        s.device_faults + s.checksum_errors + s.checksum_offsets_bad,
        0,
        "{tag}: {s:?}"
    );
    eprintln!(
        "{tag}: {} frames for {} bytes ({} coalesced, largest {} B, {} out of order)",
        got.frames,
        data.len(),
        got.coalesced,
        got.largest,
        got.out_of_order
    );
}

#[test]
fn tcp_rsc_ipv4_from_kernel() {
    receive("e", false);
}

#[test]
fn tcp_rsc_ipv6_from_kernel() {
    receive("f", true);
}

fn stream(tag: &str, v6: bool, forwarded: bool) {
    let ns = NetNs::new(&format!("vnet{}{tag}", std::process::id() % 100_000)).expect("netns");
    let tap_mac = setup_tap(&ns, "vtap0", MAC).expect("tap");
    let far = forwarded.then(|| {
        let far =
            NetNs::new(&format!("vnetf{}{tag}", std::process::id() % 100_000)).expect("far netns");
        setup_far(&ns, &far).expect("veth");
        far
    });
    let opts = QemuOptions {
        tap: Some(("vtap0".into(), ns.name.clone())),
        ..Default::default()
    };
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), false, 11)
        .unwrap_or_else(|e| panic!("QEMU with tap: {e}"));
    let f = m.adapter.features();
    assert!(
        f.contains(Features::NET_CSUM | Features::NET_HOST_TSO4 | Features::NET_HOST_TSO6),
        "tap offers TSO: {f:?}"
    );
    assert!(m.adapter.capabilities().gso.lso_v4 && m.adapter.capabilities().gso.lso_v6);
    let receiving = far.as_ref().unwrap_or(&ns);
    let (ip, at): (Ip, SocketAddr) = match (v6, forwarded) {
        (false, false) => (
            Ip::V4(addr::GUEST4, addr::HOST4),
            "10.99.0.1:5001".parse().unwrap(),
        ),
        (false, true) => (
            Ip::V4(addr::GUEST4, addr::FAR4),
            "10.99.1.2:5001".parse().unwrap(),
        ),
        (true, false) => (
            Ip::V6(addr::GUEST6, addr::HOST6),
            "[fd00:99::1]:5001".parse().unwrap(),
        ),
        (true, true) => (
            Ip::V6(addr::GUEST6, addr::FAR6),
            "[fd00:98::2]:5001".parse().unwrap(),
        ),
    };
    let csum_errors = receiving.counter("TcpInCsumErrors");
    let in_segs = receiving.counter("TcpInSegs");
    let (h, ready) = serve_tcp(receiving, at, None);
    ready
        .recv_timeout(Duration::from_secs(10))
        .expect("sink ready");
    let mut rng = Rng::new(5);
    let data: Vec<u8> = (0..4 << 20).map(|_| rng.next_u64() as u8).collect();
    let mut flow = TcpFlow::new(MAC, tap_mac, ip, 40_000, 5001);
    flow.send_stream(&mut m, &data, 1448, Duration::from_secs(60))
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    let got = h.join().expect("sink thread").expect("sink");
    assert_eq!(got.len(), data.len(), "{tag}: bytes received");
    assert_eq!(
        Sha256::digest(&got).to_vec(),
        Sha256::digest(&data).to_vec(),
        "{tag}: SHA-256 of the stream"
    );
    assert_eq!(
        receiving.counter("TcpInCsumErrors"),
        csum_errors,
        "{tag}: no checksum errors in the kernel"
    );
    let segs = receiving.counter("TcpInSegs") - in_segs;
    if forwarded {
        assert!(
            segs as usize >= data.len() / 1448,
            "{tag}: the kernel segmented in software ({segs} segments)"
        );
    }
    assert!(
        m.tx.stats().sent.frames() < (data.len() / 1448) as u64,
        "{tag}: the driver sent LSO packets, not MSS frames"
    );
    assert_eq!(m.tx.stats().offload_errors + m.tx.stats().device_faults, 0);
}

#[test]
fn tcp_lso_ipv4_local() {
    stream("a", false, false);
}

#[test]
fn tcp_lso_ipv6_local() {
    stream("b", true, false);
}

#[test]
fn tcp_lso_ipv4_forwarded_with_offloads_off() {
    stream("c", false, true);
}

#[test]
fn tcp_lso_ipv6_forwarded_with_offloads_off() {
    stream("d", true, true);
}
