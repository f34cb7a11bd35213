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
use vnet_harness::netns::{NetNs, addr, serve_tcp, setup_far, setup_tap, spawn_in};
use vnet_harness::os_tx::TxFrame;
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
    stream_with(tag, v6, forwarded, &UserSettings::default());
}

/// A 4 MiB TCP stream from the guest's TCP sender to the Linux kernel in a network namespace,
/// with LSO; `forwarded`: through a second namespace (the kernel segments in software).
fn stream_with(tag: &str, v6: bool, forwarded: bool, user: &UserSettings) {
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
    let mut m =
        QemuMachine::start(&opts, user, false, 11).unwrap_or_else(|e| panic!("QEMU with tap: {e}"));
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
    let confidential = user.confidential_mode == virtionet::config::ConfidentialMode::On;
    assert_eq!(m.tx.is_confidential(), confidential, "{tag}");
    if confidential {
        assert_eq!(
            m.tx.bounce_stats().copied,
            m.tx.stats().sent.frames(),
            "{tag}: every packet sent from a shared buffer"
        );
    }
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

/// Confidential mode forced on by the keyword (issue 16): the LSO packets are copied into the
/// TX engine's shared buffers, and the stream still reaches the Linux kernel intact.
#[test]
fn tcp_lso_ipv4_local_in_confidential_mode() {
    let user = UserSettings {
        confidential_mode: virtionet::config::ConfidentialMode::On,
        ..Default::default()
    };
    stream_with("g", false, false, &user);
}

/// Builds an IPv4/UDP frame (IP header checksum filled; the UDP checksum left to the offload).
fn udp4(dst_mac: [u8; 6], src: ([u8; 4], u16), dst: ([u8; 4], u16), payload: &[u8]) -> Vec<u8> {
    let mut f = dst_mac.to_vec();
    f.extend_from_slice(&MAC);
    f.extend_from_slice(&[0x08, 0x00]);
    let total = (28 + payload.len()) as u16;
    f.extend_from_slice(&[0x45, 0]);
    f.extend_from_slice(&total.to_be_bytes());
    f.extend_from_slice(&[0, 1, 0x40, 0, 64, 17, 0, 0]);
    f.extend_from_slice(&src.0);
    f.extend_from_slice(&dst.0);
    let c = offload::checksum::checksum(&f[14..34]);
    f[24..26].copy_from_slice(&c.to_be_bytes());
    f.extend_from_slice(&src.1.to_be_bytes());
    f.extend_from_slice(&dst.1.to_be_bytes());
    f.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    f
}

/// `mq=on` with a multi-queue tap: four queue pairs, each queue on its own MSI-X vector. The
/// kernel spreads 64 flows over the tap's queues (so over the guest's RX queues); each TX queue
/// sends datagrams the kernel delivers to a socket. Every payload is checked.
#[test]
fn multi_queue_with_per_queue_vectors() {
    const PAIRS: u16 = 4;
    let (ns, tap_mac, mut m) = mq_machine('g', PAIRS, "mq=on", 13, false);
    assert!(m.adapter.features().contains(Features::NET_MQ));
    assert_eq!(m.adapter.queue_pairs(), PAIRS);
    // VQ_PAIRS_SET must complete before the device uses the other pairs.
    settle_control(&mut m);
    for v in 0..u64::from(2 * PAIRS + 2) {
        m.take_msix(v);
    }
    // Kernel → guest: 64 flows of 8 datagrams each.
    let got = flows_by_queue(&mut m, &ns, PAIRS, 64, 8);
    let mut indicated = got.indicated.clone();
    let mut per_queue = [0usize; PAIRS as usize];
    for (k, ..) in &got.datagrams {
        per_queue[usize::from(*k)] += 1;
    }
    assert!(
        per_queue.iter().all(|&n| n > 0),
        "the flows spread over every RX queue: {per_queue:?}"
    );
    // Guest → kernel: 16 datagrams from each TX queue.
    send_from_every_pair(&mut m, &ns, tap_mac, PAIRS, 16);
    for k in 0..PAIRS {
        // Frames indicated while TX ran (the kernel's own neighbour traffic) count too.
        indicated[usize::from(k)] += m.take_received(k).len();
        let (tx, rx) = m.pair_stats(k).unwrap();
        assert_eq!(tx.sent.frames(), 16, "pair {k} TX");
        assert_eq!(
            rx.received.frames() as usize,
            indicated[usize::from(k)],
            "pair {k} RX"
        );
        assert_eq!(tx.device_faults + rx.device_faults, 0);
    }
    // Per-queue vectors: every RX queue interrupted on its own vector (queue index + 1)...
    let fired: Vec<bool> = (0..PAIRS)
        .map(|k| m.take_msix(u64::from(2 * k) + 1))
        .collect();
    eprintln!("RX per queue {per_queue:?}, RX vectors fired {fired:?}");
    assert!(fired.iter().all(|&f| f), "RX vectors fired: {fired:?}");
    // ...and one flow's datagrams raise only the vector of the queue they land on.
    for v in 0..u64::from(2 * PAIRS + 2) {
        m.take_msix(v);
    }
    spawn_in(&ns, || {
        let s = std::net::UdpSocket::bind(("10.99.0.1", 20_000)).map_err(|e| e.to_string())?;
        for _ in 0..3 {
            s.send_to(&[0u8; 200], ("10.99.0.2", 7000))
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    })
    .join()
    .unwrap()
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let fired: Vec<bool> = (0..PAIRS)
        .map(|k| m.take_msix(u64::from(2 * k) + 1))
        .collect();
    let mut landed = vec![false; usize::from(PAIRS)];
    let mut any = vec![false; usize::from(PAIRS)];
    for _ in 0..10 {
        for k in 0..PAIRS {
            m.pump_pair(k, &mut Vec::new()).unwrap();
            let frames = m.take_received(k);
            any[usize::from(k)] |= !frames.is_empty();
            landed[usize::from(k)] |= frames.iter().any(|f| {
                matches!(
                    etherparse::SlicedPacket::from_ethernet(&f.bytes).map(|p| p.transport),
                    Ok(Some(etherparse::TransportSlice::Udp(_)))
                )
            });
        }
    }
    assert_eq!(
        landed.iter().filter(|&&l| l).count(),
        1,
        "one flow, one queue: {landed:?}"
    );
    // (The kernel's own IPv6 neighbour traffic may land on another queue meanwhile.)
    assert!(
        fired.iter().zip(&any).all(|(f, a)| !f || *a),
        "a vector fired only for a queue that received: {fired:?} {any:?}"
    );
    assert!(
        landed.iter().zip(&fired).all(|(l, f)| !l || *f),
        "the flow's queue interrupted on its vector"
    );
}

/// What [`flows_by_queue`] collected.
struct Collected {
    /// (pair, flow, Toeplitz input: the datagram's addresses and ports), one per datagram.
    datagrams: Vec<(u16, u16, [u8; 12])>,
    /// Frames indicated per pair (datagrams and the kernel's own neighbour traffic).
    indicated: Vec<usize>,
}

/// Sends `flows` × `per_flow` datagrams from the kernel (10.99.0.1, ports 20000 + flow) to the
/// guest (10.99.0.2:7000), then collects them from every pair. Every datagram must arrive
/// exactly once, with the payload of its flow.
fn flows_by_queue(
    m: &mut QemuMachine,
    ns: &NetNs,
    pairs: u16,
    flows: u16,
    per_flow: u16,
) -> Collected {
    // Stock every receive queue first: QEMU's RSS reads a packet from the tap queue the kernel
    // chose and drops it if the queue RSS names has no buffer at that moment (the driver keeps
    // its virtqueues full for the same reason).
    for _ in 0..3 {
        for k in 0..pairs {
            m.pump_pair(k, &mut Vec::new()).unwrap();
        }
    }
    let sender = spawn_in(ns, move || {
        for flow in 0..flows {
            let s = std::net::UdpSocket::bind(("10.99.0.1", 20_000 + flow))
                .map_err(|e| e.to_string())?;
            for seq in 0..per_flow {
                let mut p = vec![0u8; 100];
                p[..2].copy_from_slice(&flow.to_be_bytes());
                p[2..4].copy_from_slice(&seq.to_be_bytes());
                s.send_to(&p, ("10.99.0.2", 7000))
                    .map_err(|e| e.to_string())?;
            }
        }
        Ok(())
    });
    let total = usize::from(flows) * usize::from(per_flow);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let mut indicated = vec![0usize; usize::from(pairs)];
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while seen.len() < total && std::time::Instant::now() < deadline {
        for k in 0..pairs {
            m.pump_pair(k, &mut Vec::new()).unwrap();
            for rf in m.take_received(k) {
                indicated[usize::from(k)] += 1;
                let p = etherparse::SlicedPacket::from_ethernet(&rf.bytes).unwrap();
                let (
                    Some(etherparse::NetSlice::Ipv4(ip)),
                    Some(etherparse::TransportSlice::Udp(u)),
                ) = (p.net, p.transport)
                else {
                    continue; // the kernel's own IPv6 neighbour traffic
                };
                let d = u.payload();
                let flow = u16::from_be_bytes([d[0], d[1]]);
                assert_eq!(u.source_port(), 20_000 + flow, "payload matches its flow");
                assert!(
                    seen.insert((flow, u16::from_be_bytes([d[2], d[3]]))),
                    "no duplicates"
                );
                let mut input = [0u8; 12];
                input[..4].copy_from_slice(&ip.header().source());
                input[4..8].copy_from_slice(&ip.header().destination());
                input[8..10].copy_from_slice(&u.source_port().to_be_bytes());
                input[10..].copy_from_slice(&u.destination_port().to_be_bytes());
                out.push((k, flow, input));
            }
        }
    }
    sender.join().unwrap().unwrap();
    assert_eq!(seen.len(), total, "every datagram arrived once");
    Collected {
        datagrams: out,
        indicated,
    }
}

/// Sends `per_pair` UDP datagrams from each pair's TX queue to a socket in the namespace
/// (10.99.0.1:7100) with the UDP checksum offloaded; the kernel must receive every one.
fn send_from_every_pair(
    m: &mut QemuMachine,
    ns: &NetNs,
    tap_mac: [u8; 6],
    pairs: u16,
    per_pair: u8,
) {
    use netring::{NetPacketChecksum, TxChecksumAction as A};
    let total = usize::from(pairs) * usize::from(per_pair);
    let (ready_tx, ready) = std::sync::mpsc::channel();
    let receiver = spawn_in(ns, move || {
        let s = std::net::UdpSocket::bind(("10.99.0.1", 7100)).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let mut got = Vec::new();
        let mut buf = [0u8; 2048];
        while got.len() < total {
            let (n, _) = s.recv_from(&mut buf).map_err(|e| format!("recv: {e}"))?;
            got.push(buf[..n].to_vec());
        }
        Ok(got)
    });
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let before: Vec<u64> = (0..pairs)
        .map(|k| m.pair_stats(k).unwrap().0.sent.frames())
        .collect();
    let mut pending: Vec<Vec<TxFrame>> = (0..pairs)
        .map(|k| {
            (0..per_pair)
                .map(|i| TxFrame {
                    bytes: udp4(
                        tap_mac,
                        (addr::GUEST4, 5000 + k),
                        (addr::HOST4, 7100),
                        &[k as u8, i, 0xab, 0xcd, 7],
                    ),
                    checksum: NetPacketChecksum::tx(A::Passthrough, A::Required),
                    ..Default::default()
                })
                .collect()
        })
        .collect();
    for _ in 0..2000 {
        for k in 0..pairs {
            m.pump_pair(k, &mut pending[usize::from(k)]).unwrap();
        }
        let sent = |k: u16| m.pair_stats(k).unwrap().0.sent.frames() - before[usize::from(k)];
        if pending.iter().all(Vec::is_empty) && (0..pairs).all(|k| sent(k) == u64::from(per_pair)) {
            break;
        }
        std::thread::sleep(Duration::from_micros(200));
    }
    let mut got = receiver.join().unwrap().unwrap();
    let mut want: Vec<Vec<u8>> = (0..pairs)
        .flat_map(|k| (0..per_pair).map(move |i| vec![k as u8, i, 0xab, 0xcd, 7]))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(
        got, want,
        "the kernel received every datagram, checksums completed"
    );
}

/// QEMU with a `pairs`-queue tap in a new namespace (`tag` names it), `props` on the device plus
/// a vector per queue, brought up with per-queue MSI-X; `pairs_need_rss` as
/// `BringUp::pairs_need_rss`. Returns the namespace, the tap's MAC and the machine.
fn mq_machine(
    tag: char,
    pairs: u16,
    props: &str,
    seed: u64,
    pairs_need_rss: bool,
) -> (NetNs, [u8; 6], QemuMachine) {
    let ns = NetNs::new(&format!("vnet{}{tag}", std::process::id() % 100_000)).expect("netns");
    let tap_mac =
        vnet_harness::netns::setup_tap_with(&ns, "vtap0", MAC, true).expect("multi-queue tap");
    let opts = QemuOptions {
        tap: Some(("vtap0".into(), ns.name.clone())),
        tap_queues: pairs,
        device_props: format!("{props},vectors={}", 2 * pairs + 2),
        ..Default::default()
    };
    let m = QemuMachine::start_with_rule(
        &opts,
        &UserSettings::default(),
        true,
        seed,
        pairs,
        pairs_need_rss,
    )
    .unwrap_or_else(|e| panic!("QEMU ({props}): {e}"));
    (ns, tap_mac, m)
}

/// Runs the control queue until every queued command completed; asserts none failed.
fn settle_control(m: &mut QemuMachine) {
    for _ in 0..1000 {
        m.pump(&mut Vec::new()).unwrap();
        if m.control_idle {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(
        m.control_idle && m.control_errors == 0,
        "control commands accepted"
    );
}

/// `rss=on`: QEMU's virtio-net steers by the driver's RSS configuration. Every datagram of 64
/// UDP flows must land on the queue the indirection table names for the Toeplitz hash of its
/// addresses and ports — computed here by `offload::rss` (checked against Microsoft's vectors);
/// hashing addresses only puts every flow on one queue; before RSS is on and after it is turned
/// off, everything arrives on pair 0 (the Windows driver's rule).
#[test]
fn rss_steers_every_flow_to_the_queue_the_table_names() {
    use virtio::net::rss_hash as H;
    use virtionet::rss::RssSettings;
    const PAIRS: u16 = 4;
    // Microsoft's verification key.
    const KEY: [u8; 40] = [
        0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f,
        0xb0, 0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30,
        0xf2, 0x0c, 0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
    ];
    // The Windows driver's rule (several pairs only with device RSS) keeps all four here.
    let (ns, tap_mac, mut m) = mq_machine('r', PAIRS, "mq=on,rss=on", 17, true);
    assert_eq!(m.adapter.queue_pairs(), PAIRS);
    assert!(
        m.adapter.features().contains(Features::NET_RSS),
        "RSS negotiated"
    );
    let cfg = *m.adapter.config();
    eprintln!(
        "device RSS limits: key {:?} B, table {:?}, hash types {:#x?}",
        cfg.rss_max_key_size, cfg.rss_max_indirection_table_length, cfg.supported_hash_types
    );
    settle_control(&mut m);

    // 0. Before the OS enables RSS: every transmit queue live, everything received on pair 0
    //    (the OS may not have opened the other receive queues).
    let got = flows_by_queue(&mut m, &ns, PAIRS, 64, 2).datagrams;
    assert!(
        got.iter().all(|(k, ..)| *k == 0),
        "all on pair 0 until RSS is on"
    );
    // ...while every pair's transmit queue is live (`max_tx_vq`).
    send_from_every_pair(&mut m, &ns, tap_mac, PAIRS, 4);

    // 1. Addresses and ports: each flow to table[hash & 127], a table no flow spreading of the
    //    device's own would produce.
    let table: Vec<u16> = (0..128u16).map(|i| (i * 3 + 1) % PAIRS).collect();
    let settings = RssSettings::new(H::IPV4 | H::UDPV4, &table, 0, KEY);
    m.adapter
        .set_rss(Some(&settings))
        .expect("settings within the device's limits");
    settle_control(&mut m);
    let got = flows_by_queue(&mut m, &ns, PAIRS, 64, 4).datagrams;
    let mut per_queue = [0usize; PAIRS as usize];
    for (k, flow, input) in &got {
        let h = offload::rss::toeplitz_bitwise(&KEY, input);
        let want = offload::rss::indirection(&table, h).unwrap();
        assert_eq!(*k, want, "flow {flow}: hash {h:#010x} names queue {want}");
        per_queue[usize::from(*k)] += 1;
    }
    eprintln!("RSS on addresses and ports: per queue {per_queue:?}");
    assert!(
        per_queue.iter().filter(|&&n| n > 0).count() > 1,
        "{per_queue:?}"
    );

    // 2. Addresses only: one hash for every flow, so one queue.
    let ip_only = RssSettings::new(H::IPV4, &table, 0, KEY);
    m.adapter.set_rss(Some(&ip_only)).unwrap();
    settle_control(&mut m);
    let got = flows_by_queue(&mut m, &ns, PAIRS, 64, 2).datagrams;
    let want =
        offload::rss::indirection(&table, offload::rss::toeplitz_bitwise(&KEY, &got[0].2[..8]))
            .unwrap();
    assert!(
        got.iter().all(|(k, ..)| *k == want),
        "every flow on queue {want}: {:?}",
        got.iter()
            .map(|g| g.0)
            .collect::<std::collections::BTreeSet<_>>()
    );

    // 3. Limits are enforced before anything reaches the device.
    let too_long = RssSettings::new(settings.hash_types, &[0; 256], 0, KEY);
    assert!(m.adapter.set_rss(Some(&too_long)).is_err());

    // 4. Off: back to pair 0 for everything.
    m.adapter.set_rss(None).unwrap();
    settle_control(&mut m);
    let got = flows_by_queue(&mut m, &ns, PAIRS, 64, 2).datagrams;
    assert!(
        got.iter().all(|(k, ..)| *k == 0),
        "RSS off: all on pair 0 again"
    );

    // 5. A device reset (D0 exit/entry) with every pair in use: restore programs all the queues
    //    and the control queue again, and every transmit queue carries traffic.
    let plan = virtionet::adapter::BringUp {
        reset_polls: 1000,
        max_queue_size: 256,
        queue_pairs: PAIRS,
        msix_messages: 2 * PAIRS + 2,
        random_mac: [2, 0, 0, 0, 0, 1],
        pairs_need_rss: true,
    };
    m.adapter.reset_device(&plan).expect("reset");
    m.tx.abandon_in_flight();
    m.rx.abandon_in_flight();
    for p in &mut m.extra {
        p.tx.abandon_in_flight();
        p.rx.abandon_in_flight();
    }
    let mut queues = vec![(0u16, m.rx.virtqueue()), (1u16, m.tx.virtqueue())];
    for (k, p) in (1u16..).zip(&m.extra) {
        queues.push((2 * k, p.rx.virtqueue()));
        queues.push((2 * k + 1, p.tx.virtqueue()));
    }
    m.adapter.restore(&plan, &queues).expect("restore");
    settle_control(&mut m);
    send_from_every_pair(&mut m, &ns, tap_mac, PAIRS, 4);
    for k in 0..PAIRS {
        let (tx, rx) = m.pair_stats(k).unwrap();
        assert_eq!(tx.device_faults + rx.device_faults, 0);
    }
}

/// The Windows driver's rule: `mq=on` without `rss=on` gives it one pair (NetAdapterCx would
/// never open the others, and the device must not fill queues nobody drains); all traffic then
/// arrives on pair 0.
#[test]
fn without_device_rss_the_windows_rule_runs_one_pair() {
    let (ns, _, mut m) = mq_machine('w', 4, "mq=on", 19, true);
    assert!(m.adapter.features().contains(Features::NET_MQ));
    assert!(!m.adapter.features().contains(Features::NET_RSS));
    assert_eq!(m.adapter.queue_pairs(), 1);
    settle_control(&mut m);
    let got = flows_by_queue(&mut m, &ns, 1, 64, 2);
    assert!(got.datagrams.iter().all(|(k, ..)| *k == 0));
}
