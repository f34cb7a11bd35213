//! Offload settings that change under traffic (issue 13), against QEMU's `virtio-net-pci` with a
//! `vnet_hdr` tap in a network namespace the test creates, the Linux kernel at the other end.
//!
//! * Transmit: NetAdapterCx tells the driver through `EvtAdapterOffloadSet*` and the OS then
//!   stops or starts asking per packet. The guest's TCP stream switches at every batch between
//!   LSO with checksum offload, checksum offload alone, and checksums computed by the OS, with
//!   UDP datagrams offloaded and not in between, and each switch runs the glue's offload
//!   callback path (`Adapter::set_guest_offloads`, a control command) while packets flow. The
//!   receiver is behind a forwarding hop with offloads off that checks every checksum in
//!   software, so a packet that left with a virtio header of another setting (a stale
//!   NEEDS_CSUM over a finished checksum, say) arrives with a bad checksum: the kernel's
//!   checksum-error counters must not move and every byte and datagram must arrive. (Delivered
//!   locally instead, a partial checksum from the tap is trusted, never verified: a stale header
//!   would go unseen — this was checked by making the TX engine skip writing zero headers.)
//! * Receive: RX checksum and RSC are turned off and on again (`Adapter::set_guest_offloads`,
//!   VIRTIO_NET_CTRL_GUEST_OFFLOADS_SET) while the kernel streams to the guest. Packets already
//!   queued under the old setting (partial checksums, coalesced segments) still arrive after the
//!   switch; every checksum the driver says is valid must be a real one, and the stream must
//!   complete.
//!
//! USO cannot be toggled here: QEMU before 8.2 offers no VIRTIO_NET_F_HOST_USO (the test says
//! so when the device does not), so the driver never declares it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use netring::{NetPacketChecksum, TxChecksumAction as A};
use sha2::{Digest, Sha256};
use virtio::Features;
use virtionet::config::UserSettings;
use vnet_harness::lab::QemuMachine;
use vnet_harness::netns::{NetNs, addr, serve_tcp, setup_far, setup_tap, spawn_in};
use vnet_harness::os_tx::TxFrame;
use vnet_harness::qemu::QemuOptions;
use vnet_harness::rng::Rng;
use vnet_harness::tcp::{Ip, TcpFlow, TxMode};

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x57];
const UDP_PORT: u16 = 7200;

fn machine(tag: &str, seed: u64) -> (NetNs, [u8; 6], QemuMachine) {
    let ns = NetNs::new(&format!("vnt{}{tag}", std::process::id() % 100_000)).expect("netns");
    let tap_mac = setup_tap(&ns, "vtap0", MAC).expect("tap");
    let opts = QemuOptions {
        tap: Some(("vtap0".into(), ns.name.clone())),
        ..Default::default()
    };
    let m = QemuMachine::start(&opts, &UserSettings::default(), false, seed)
        .unwrap_or_else(|e| panic!("QEMU with tap: {e}"));
    let f = m.adapter.features();
    assert!(
        f.contains(
            Features::NET_CSUM
                | Features::NET_HOST_TSO4
                | Features::NET_HOST_TSO6
                | Features::NET_GUEST_CSUM
                | Features::NET_GUEST_TSO4
                | Features::NET_GUEST_TSO6
                | Features::NET_CTRL_GUEST_OFFLOADS
        ),
        "the tap offers checksum and segmentation offloads both ways: {f:?}"
    );
    if !f.contains(Features::NET_HOST_USO) {
        eprintln!("{tag}: the device offers no HOST_USO: USO is not toggled");
    }
    (ns, tap_mac, m)
}

/// A UDP datagram from the guest to the far namespace's socket: checksums offloaded (`offload`)
/// or computed here as the OS would.
fn udp_frame(tap_mac: [u8; 6], v6: bool, payload: &[u8], offload: bool) -> TxFrame {
    let mut f = tap_mac.to_vec();
    f.extend_from_slice(&MAC);
    let udp_len = (8 + payload.len()) as u16;
    if v6 {
        f.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
        f.extend_from_slice(&udp_len.to_be_bytes());
        f.extend_from_slice(&[17, 64]);
        f.extend_from_slice(&addr::GUEST6);
        f.extend_from_slice(&addr::FAR6);
    } else {
        f.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
        f.extend_from_slice(&(20 + udp_len).to_be_bytes());
        f.extend_from_slice(&[0, 7, 0x40, 0, 64, 17, 0, 0]);
        f.extend_from_slice(&addr::GUEST4);
        f.extend_from_slice(&addr::FAR4);
    }
    f.extend_from_slice(&5300u16.to_be_bytes());
    f.extend_from_slice(&UDP_PORT.to_be_bytes());
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(payload);
    if offload {
        let l3 = if v6 { A::Passthrough } else { A::Required };
        return TxFrame {
            bytes: f,
            checksum: NetPacketChecksum::tx(l3, A::Required),
            ..Default::default()
        };
    }
    if !v6 {
        let c = offload::checksum::checksum(&f[14..34]);
        f[24..26].copy_from_slice(&c.to_be_bytes());
    }
    offload::segment::fill_l4_checksum(&mut f).expect("our own UDP frame");
    TxFrame {
        bytes: f,
        ..Default::default()
    }
}

fn tx_toggled(tag: &str, v6: bool) {
    let (ns, tap_mac, mut m) = machine(tag, 21);
    // The receiver sits behind a forwarding hop whose offloads are off, and checks every
    // checksum in software (rx-checksumming off on its veth): a packet delivered locally with a
    // partial checksum (CHECKSUM_PARTIAL from the tap) is never verified, but forwarded, the
    // kernel completes it from csum_start/csum_offset — and a stale header shows as a bad
    // checksum at the far end.
    let far = NetNs::new(&format!("vntf{}{tag}", std::process::id() % 100_000)).expect("netns");
    setup_far(&ns, &far).expect("veth");
    far.exec(&["ethtool", "-K", "vq1", "rx", "off"])
        .expect("rx checksumming off");
    let (ip, at, udp_at): (Ip, SocketAddr, SocketAddr) = if v6 {
        (
            Ip::V6(addr::GUEST6, addr::FAR6),
            "[fd00:98::2]:5011".parse().unwrap(),
            format!("[fd00:98::2]:{UDP_PORT}").parse().unwrap(),
        )
    } else {
        (
            Ip::V4(addr::GUEST4, addr::FAR4),
            "10.99.1.2:5011".parse().unwrap(),
            format!("10.99.1.2:{UDP_PORT}").parse().unwrap(),
        )
    };
    let udp_errors = if v6 {
        "Udp6InCsumErrors"
    } else {
        "UdpInCsumErrors"
    };
    let (tcp_before, udp_before) = (far.counter("TcpInCsumErrors"), far.counter(udp_errors));
    // The UDP socket: collects datagrams until told how many were sent (bounded: 60 s).
    let (count_tx, count_rx) = std::sync::mpsc::channel::<usize>();
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    let receiver = spawn_in(&far, move || {
        let s = std::net::UdpSocket::bind(udp_at).map_err(|e| format!("bind: {e}"))?;
        s.set_read_timeout(Some(Duration::from_millis(100)))
            .map_err(|e| e.to_string())?;
        let _ = ready_tx.send(());
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut got = BTreeSet::new();
        let mut want = None;
        let mut buf = [0u8; 2048];
        while Instant::now() < deadline && want.is_none_or(|w| got.len() < w) {
            if let Ok(n) = s.recv(&mut buf) {
                got.insert(buf[..n].to_vec());
            }
            if let Ok(w) = count_rx.try_recv() {
                want = Some(w);
            }
        }
        Ok(got)
    });
    ready_rx.recv_timeout(Duration::from_secs(10)).unwrap();
    let (h, ready) = serve_tcp(&far, at, None);
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut rng = Rng::new(31);
    let data: Vec<u8> = (0..8 << 20).map(|_| rng.next_u64() as u8).collect();
    let mut flow = TcpFlow::new(MAC, tap_mac, ip, 40_100, 5011);
    let modes = [TxMode::Lso, TxMode::Checksum, TxMode::Software];
    let mut used = [0u64; 3];
    let mut switches = 0u32;
    let mut sent_udp: BTreeSet<Vec<u8>> = BTreeSet::new();
    let mut mode = |m: &mut QemuMachine, n: u64| {
        let k = (n % 3) as usize;
        {
            // What the glue's EvtAdapterOffloadSet* does on every change: the guest offloads
            // go to the device through the control queue, while the queues keep moving.
            assert!(m.adapter.set_guest_offloads(true, true));
            switches += 1;
        }
        if sent_udp.len() < 200 {
            let i = sent_udp.len() as u32;
            let payload: Vec<u8> = (0..100 + i % 300).map(|j| (j * 7 + i) as u8).collect();
            let f = udp_frame(tap_mac, v6, &payload, i.is_multiple_of(2));
            sent_udp.insert(payload);
            let mut one = vec![f];
            while !one.is_empty() {
                m.pump(&mut one).expect("pump");
            }
        }
        used[k] += 1;
        modes[k]
    };
    flow.send_stream_with(&mut m, &data, 1448, Duration::from_secs(60), &mut mode)
        .unwrap_or_else(|e| panic!("{tag}: {e}"));
    let got = h.join().expect("sink thread").expect("sink");
    count_tx.send(sent_udp.len()).unwrap();
    let datagrams = receiver.join().expect("udp thread").expect("udp");
    assert_eq!(got.len(), data.len(), "{tag}: bytes received");
    assert_eq!(
        Sha256::digest(&got).to_vec(),
        Sha256::digest(&data).to_vec(),
        "{tag}: SHA-256 of the stream"
    );
    assert!(
        used.iter().all(|&u| u > 0),
        "{tag}: every mode was used: {used:?}"
    );
    let missing = sent_udp.difference(&datagrams).count();
    assert!(
        missing == 0 && datagrams.len() == sent_udp.len(),
        "{tag}: {missing} of {} datagrams missing or damaged, {} received",
        sent_udp.len(),
        datagrams.len()
    );
    assert_eq!(
        far.counter("TcpInCsumErrors"),
        tcp_before,
        "{tag}: no TCP checksum errors in the kernel"
    );
    assert_eq!(
        far.counter(udp_errors),
        udp_before,
        "{tag}: no UDP checksum errors in the kernel"
    );
    for _ in 0..200 {
        m.pump(&mut Vec::new()).unwrap();
        if m.control_idle {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(m.control_idle && m.control_errors == 0, "{tag}: control");
    let s = m.tx.stats();
    assert_eq!(
        s.offload_errors + s.unsegmentable + s.bad_packets + s.device_faults,
        0,
        "{tag}: {s:?}"
    );
    eprintln!(
        "{tag}: batches per mode (LSO, checksum, software) {used:?}, {switches} offload callbacks, {} datagrams, {} frames sent",
        datagrams.len(),
        s.sent.frames()
    );
}

#[test]
fn tx_offloads_toggled_under_traffic_ipv4() {
    tx_toggled("a", false);
}

#[test]
fn tx_offloads_toggled_under_traffic_ipv6() {
    tx_toggled("b", true);
}

fn rx_toggled(tag: &str, v6: bool) {
    let (ns, tap_mac, mut m) = machine(tag, 22);
    let (ip, at): (Ip, SocketAddr) = if v6 {
        (
            Ip::V6(addr::GUEST6, addr::HOST6),
            "[fd00:99::1]:5012".parse().unwrap(),
        )
    } else {
        (
            Ip::V4(addr::GUEST4, addr::HOST4),
            "10.99.0.1:5012".parse().unwrap(),
        )
    };
    let tcp_before = ns.counter("TcpInCsumErrors");
    let mut rng = Rng::new(32);
    let data: Vec<u8> = (0..8 << 20).map(|_| rng.next_u64() as u8).collect();
    let (h, ready) = serve_tcp(&ns, at, Some(data.clone()));
    ready.recv_timeout(Duration::from_secs(10)).unwrap();
    let mut flow = TcpFlow::new(MAC, tap_mac, ip, 40_200, 5012);
    // (RX checksum, RSC): on, RSC off, both off, and round again.
    let states = [(true, true), (true, false), (false, false)];
    let mut switches = 0u32;
    // Frames and coalesced packets indicated while each setting was the last one asked for.
    let mut per_state = [(0u64, 0u64); 3];
    let mut last = (0u64, 0u64);
    let mut current = 0usize;
    let mut toggle = |m: &mut QemuMachine, n: u64| {
        let s = m.rx.stats();
        let now = (s.received.frames(), s.coalesced_packets);
        per_state[current].0 += now.0 - last.0;
        per_state[current].1 += now.1 - last.1;
        last = now;
        if n % 2 == 1 {
            current = (n / 2 % 3) as usize;
            let (csum, rsc) = states[current];
            assert!(
                m.adapter.set_guest_offloads(csum, rsc),
                "CTRL_GUEST_OFFLOADS"
            );
            switches += 1;
        }
    };
    let got = flow
        .recv_stream_with(&mut m, Duration::from_secs(60), &mut toggle)
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
    assert!(switches >= 9, "{tag}: {switches} switches under traffic");
    assert!(
        per_state.iter().all(|&(frames, _)| frames > 0),
        "{tag}: traffic under every setting: {per_state:?}"
    );
    // Back to everything on, and the control queue drained without a refusal.
    assert!(m.adapter.set_guest_offloads(true, true));
    for _ in 0..200 {
        m.pump(&mut Vec::new()).unwrap();
        if m.control_idle {
            break;
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    assert!(m.control_idle && m.control_errors == 0, "{tag}: control");
    let s = m.rx.stats();
    assert_eq!(
        s.device_faults + s.checksum_errors + s.checksum_offsets_bad,
        0,
        "{tag}: {s:?}"
    );
    assert_eq!(
        ns.counter("TcpInCsumErrors"),
        tcp_before,
        "{tag}: the guest's ACKs checksum right"
    );
    eprintln!(
        "{tag}: {switches} switches; (frames, coalesced) while (csum+RSC, csum, none) was asked {per_state:?}; {} frames ({} coalesced, largest {} B, {} out of order), {} checksums completed",
        got.frames, got.coalesced, got.largest, got.out_of_order, s.checksums_completed
    );
}

#[test]
fn rx_offloads_toggled_under_traffic_ipv4() {
    rx_toggled("c", false);
}

#[test]
fn rx_offloads_toggled_under_traffic_ipv6() {
    rx_toggled("d", true);
}
