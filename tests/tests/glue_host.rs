//! The Windows glue itself (`driver/kmdf/`), loaded by the glue host (`vnet_harness::host`)
//! against QEMU's `virtio-net-pci` — and against the in-process device where a fault must be
//! injected: DriverEntry to unload, traffic both ways byte for byte, NDIS pauses, D0 ↔ D3 with
//! and without RSS, the filters the device holds across power cycles, device faults, surprise
//! removal, every interrupt layout, idling armed, and the stack holding receive buffers. Every
//! scenario ends with an empty ledger and no broken rule.

use std::sync::Arc;
use std::time::{Duration, Instant};

use virtio::Features;
use vnet_harness::frames;
use vnet_harness::host::alloc::{self, HostAllocator};
use vnet_harness::host::bus::QemuBus;
use vnet_harness::host::datapath::Dir;
use vnet_harness::host::inproc::InprocBus;
use vnet_harness::host::netcx::OffloadState;
use vnet_harness::host::{Host, HostConfig, Interrupts, Power, irql};
use vnet_harness::netdev::{DEFAULT_FEATURES, Fault};
use vnet_harness::netns::{NetNs, spawn_in};
use vnet_harness::os_tx::TxFrame;
use vnet_harness::qemu::{Qemu, QemuOptions};

#[global_allocator]
static ALLOCATOR: HostAllocator = HostAllocator;

const GUEST_MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
const PEER_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x99];
/// Directed | Multicast | Broadcast: what the protocol sets first.
const NDIS_FILTER: u32 = 0x1 | 0x2 | 0x8;

fn qemu(props: &str) -> (Arc<Qemu>, Arc<QemuBus>) {
    let q = Arc::new(
        Qemu::start(&QemuOptions {
            device_props: props.into(),
            ..Default::default()
        })
        .expect("QEMU"),
    );
    let bus = Arc::new(QemuBus::new(q.clone()).expect("virtio-net function"));
    (q, bus)
}

fn no_violations(what: &str) {
    let v = irql::take_violations();
    assert!(v.is_empty(), "{what}: {v:#?}");
}

/// DriverEntry, DeviceAdd, start, and the protocol's first packet filter.
fn bring_up(host: &Host) {
    assert_eq!(host.load(), 0, "DriverEntry");
    assert_eq!(host.add_device(), 0, "DeviceAdd");
    assert_eq!(host.start(), 0, "start\n{}", host.diagnostics());
    assert!(host.set_receive_filter(NDIS_FILTER, &[]));
    no_violations("bring-up");
}

/// Orderly removal and unload: nothing may be left.
fn tear_down(host: &Host) {
    host.remove().expect("remove");
    let ledger = host.unload();
    no_violations("unload");
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// A test frame with a sequence number (EtherType 0x88b5, local experimental).
fn frame(dst: [u8; 6], src: [u8; 6], seq: u32, len: usize) -> Vec<u8> {
    let mut payload = vec![0u8; len.saturating_sub(14).max(4)];
    payload[..4].copy_from_slice(&seq.to_le_bytes());
    for (i, b) in payload.iter_mut().enumerate().skip(4) {
        *b = (seq as usize * 31 + i) as u8;
    }
    frames::ethernet(dst, src, 0x88b5, &payload)
}

fn out_len(i: u32) -> usize {
    60 + (i as usize * 37) % 1400
}

fn in_len(i: u32) -> usize {
    60 + (i as usize * 53) % 1400
}

/// Where frames go and come from: QEMU's datagram backend or the in-process device.
trait Peer {
    /// Frames the device sent, in order (taken).
    fn take_sent(&self) -> Vec<Vec<u8>>;
    /// Hands a frame to the device's receive side; false if it cannot take it now.
    fn inject(&self, frame: &[u8]) -> bool;
}

impl Peer for Qemu {
    fn take_sent(&self) -> Vec<Vec<u8>> {
        let _ = self.host.set_nonblocking(true);
        let mut buf = vec![0u8; 70_000];
        let mut out = Vec::new();
        while let Ok(n) = self.host.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
        out
    }
    fn inject(&self, frame: &[u8]) -> bool {
        self.send_to_guest(frame).is_ok()
    }
}

impl Peer for InprocBus {
    fn take_sent(&self) -> Vec<Vec<u8>> {
        self.with_device(|d| std::mem::take(&mut d.sent))
    }
    fn inject(&self, frame: &[u8]) -> bool {
        self.with_device(|d| {
            if d.to_receive.len() > 64 {
                return false;
            }
            d.to_receive.push_back((Default::default(), frame.to_vec()));
            true
        })
    }
}

/// Sends `n` frames out; the peer must get every one, byte for byte, in order.
fn transmit(host: &Host, peer: &dyn Peer, n: u32) {
    let _ = peer.take_sent();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut next = 0;
    while got.len() < n as usize {
        while next < n {
            if !host.send(TxFrame {
                bytes: frame(PEER_MAC, GUEST_MAC, next, out_len(next)),
                ..Default::default()
            }) {
                break;
            }
            next += 1;
        }
        let s = peer.take_sent();
        if s.is_empty() {
            assert!(
                Instant::now() < deadline,
                "sent {next}, {} arrived\n{}",
                got.len(),
                host.diagnostics()
            );
            std::thread::sleep(Duration::from_micros(200));
        }
        got.extend(s);
    }
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            g,
            &frame(PEER_MAC, GUEST_MAC, i as u32, out_len(i as u32)),
            "frame {i}"
        );
    }
    std::thread::sleep(Duration::from_millis(1));
    let late = peer.take_sent();
    assert!(
        late.is_empty(),
        "{} frames more than were sent, first {:02x?}\n{}",
        late.len(),
        late.first().map(|f| &f[..f.len().min(20)]),
        host.diagnostics()
    );
}

/// Sends `n` frames in; the stack must get every one, byte for byte, in order, within `limit`.
fn receive_within(host: &Host, peer: &dyn Peer, n: u32, limit: Duration) {
    let _ = host.take_received(0);
    let deadline = Instant::now() + limit;
    let mut got = Vec::new();
    for i in 0..n {
        let f = frame(GUEST_MAC, PEER_MAC, i, in_len(i));
        while !peer.inject(&f) {
            assert!(Instant::now() < deadline, "the device takes no more frames");
            std::thread::sleep(Duration::from_micros(100));
            got.extend(host.take_received(0));
        }
        got.extend(host.take_received(0));
    }
    while got.len() < n as usize {
        assert!(
            Instant::now() < deadline,
            "received {} of {n} frames\n{}",
            got.len(),
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_micros(200));
        got.extend(host.take_received(0));
    }
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            g.bytes,
            frame(GUEST_MAC, PEER_MAC, i as u32, in_len(i as u32)),
            "frame {i}"
        );
    }
}

fn receive(host: &Host, peer: &dyn Peer, n: u32) {
    receive_within(host, peer, n, Duration::from_secs(10));
}

#[test]
fn bring_up_traffic_both_ways_and_an_orderly_unload_with_an_empty_ledger() {
    let (q, bus) = qemu("");
    let host = Host::new(bus, HostConfig::default());
    bring_up(&host);
    assert!(host.queue(Dir::Tx, 0).is_some() && host.queue(Dir::Rx, 0).is_some());
    transmit(&host, &*q, 300);
    receive(&host, &*q, 300);
    no_violations("traffic");
    tear_down(&host);
}

#[test]
fn pause_restart_and_power_cycles_under_traffic() {
    let (q, bus) = qemu("");
    let host = Host::new(bus, HostConfig::default());
    bring_up(&host);
    for i in 0..20 {
        transmit(&host, &*q, 20);
        host.pause().unwrap_or_else(|e| panic!("pause {i}: {e}"));
        assert!(host.restart(), "restart {i}");
        receive(&host, &*q, 20);
    }
    no_violations("pause/restart");
    for i in 0..10 {
        transmit(&host, &*q, 20);
        host.sleep().unwrap_or_else(|e| panic!("D3 {i}: {e}"));
        assert_eq!(host.wake(), 0, "D0 {i}\n{}", host.diagnostics());
        receive(&host, &*q, 20);
    }
    transmit(&host, &*q, 20);
    no_violations("power cycles");
    tear_down(&host);
}

// ---------------------------------------------------------------------------------------------
// RSS on a 4-queue tap (`mq=on,rss=on`): the device steers by what the driver gave it.

/// Microsoft's verification key.
const KEY: [u8; 40] = [
    0x6d, 0x5a, 0x56, 0xda, 0x25, 0x5b, 0x0e, 0xc2, 0x41, 0x67, 0x25, 0x3d, 0x43, 0xa3, 0x8f, 0xb0,
    0xd0, 0xca, 0x2b, 0xcb, 0xae, 0x7b, 0x30, 0xb4, 0x77, 0xcb, 0x2d, 0xa3, 0x80, 0x30, 0xf2, 0x0c,
    0x6a, 0x42, 0xb7, 0x3b, 0xbe, 0xac, 0x01, 0xfa,
];

fn tap_qemu(tag: char, pairs: u16, props: &str) -> (NetNs, Arc<Qemu>, Arc<QemuBus>) {
    let ns = NetNs::new(&format!("vgh{}{tag}", std::process::id() % 100_000)).expect("netns");
    vnet_harness::netns::setup_tap_with(&ns, "vtap0", GUEST_MAC, pairs > 1).expect("tap");
    let q = Arc::new(
        Qemu::start(&QemuOptions {
            tap: Some(("vtap0".into(), ns.name.clone())),
            tap_queues: pairs,
            device_props: if props.contains("vectors=") {
                props.to_string()
            } else if props.is_empty() {
                format!("vectors={}", 2 * pairs + 2)
            } else {
                format!("{props},vectors={}", 2 * pairs + 2)
            },
            ..Default::default()
        })
        .expect("QEMU"),
    );
    let bus = Arc::new(QemuBus::new(q.clone()).expect("virtio-net function"));
    (ns, q, bus)
}

/// Waits (≤ 5 s) until `pairs` receive queues exist and each has run its first Advance — its
/// buffers posted and kicked — and armed. QEMU drops a datagram whose RSS queue has no buffer
/// at that moment (as any NIC drops frames before its driver posts buffers), so a test that
/// sends right after the datapath was (re)created must wait for this, not for a fixed time.
fn wait_receive_ready(host: &Host, pairs: u16) {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let rx: Vec<_> = host
            .queues()
            .into_iter()
            .filter(|q| q.dir == Dir::Rx)
            .collect();
        if rx.len() == usize::from(pairs) && rx.iter().all(|q| q.idle_and_armed()) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "the receive queues never became ready\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(1));
    }
}

/// Sends `flows` × `per_flow` UDP datagrams from the kernel (10.99.0.1:20000+flow →
/// 10.99.0.2:7000); returns (RX queue, flow, Toeplitz input) of each, every one exactly once.
fn flows_by_queue(
    host: &Host,
    ns: &NetNs,
    queues: u32,
    flows: u16,
    per_flow: u16,
) -> Vec<(u32, u16, [u8; 12])> {
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
                // Paced: QEMU drops a packet whose RSS queue has no buffer at that moment.
                std::thread::sleep(Duration::from_micros(200));
            }
        }
        Ok(())
    });
    let total = usize::from(flows) * usize::from(per_flow);
    let mut seen = std::collections::BTreeSet::new();
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while seen.len() < total && Instant::now() < deadline {
        for k in 0..queues {
            for rf in host.take_received(k) {
                let Ok(p) = etherparse::SlicedPacket::from_ethernet(&rf.bytes) else {
                    continue;
                };
                let (
                    Some(etherparse::NetSlice::Ipv4(ip)),
                    Some(etherparse::TransportSlice::Udp(u)),
                ) = (p.net, p.transport)
                else {
                    continue; // the kernel's own neighbour traffic
                };
                let d = u.payload();
                let flow = u16::from_be_bytes([d[0], d[1]]);
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
        std::thread::sleep(Duration::from_millis(1));
    }
    sender.join().unwrap().unwrap();
    let missing: Vec<(u16, u16)> = (0..flows)
        .flat_map(|f| (0..per_flow).map(move |q| (f, q)))
        .filter(|k| !seen.contains(k))
        .collect();
    assert!(
        missing.is_empty(),
        "every datagram arrived once: missing (flow, seq) {missing:?}\n{}",
        host.diagnostics()
    );
    out
}

/// Every flow on the queue the table names for its Toeplitz hash (the project's hash, checked
/// against Microsoft's vectors); returns datagrams per queue.
fn check_steering(got: &[(u32, u16, [u8; 12])], table: &[u16]) -> Vec<usize> {
    let mut per_queue = vec![0usize; 8];
    for (k, flow, input) in got {
        let h = offload::rss::toeplitz_bitwise(&KEY, input);
        let want = u32::from(offload::rss::indirection(table, h).unwrap());
        assert_eq!(*k, want, "flow {flow}: hash {h:#010x} names queue {want}");
        per_queue[*k as usize] += 1;
    }
    per_queue
}

#[test]
fn rss_steering_survives_pause_restart_and_power_cycles() {
    const PAIRS: u16 = 4;
    let (ns, _q, bus) = tap_qemu('r', PAIRS, "mq=on,rss=on");
    let host = Host::new(
        bus,
        HostConfig {
            interrupts: Interrupts::Msix(2 * PAIRS + 2),
            ..Default::default()
        },
    );
    bring_up(&host);
    host.rss_initialize().expect("RSS initialize");
    assert_eq!(
        host.queues().iter().filter(|q| q.dir == Dir::Rx).count(),
        usize::from(PAIRS)
    );
    // Toeplitz over IPv4 with TCP and UDP ports.
    assert_eq!(
        host.rss_parameters(true, Some(&KEY), Some((1, 0x1 | 0x10 | 0x20)), Some(128)),
        0
    );
    let table: Vec<u16> = (0..128u16).map(|i| (i * 3 + 1) % PAIRS).collect();
    let entries: Vec<(usize, u32)> = table
        .iter()
        .enumerate()
        .map(|(i, &q)| (i, u32::from(q)))
        .collect();
    assert_eq!(host.rss_set_entries(&entries), 0, "indirection entries");
    std::thread::sleep(Duration::from_millis(50));
    let per = check_steering(&flows_by_queue(&host, &ns, 4, 64, 2), &table);
    eprintln!("RSS: datagrams per queue {per:?}");
    assert!(per.iter().filter(|&&n| n > 0).count() > 1, "{per:?}");
    no_violations("RSS on");
    for i in 0..20 {
        host.pause().unwrap_or_else(|e| panic!("pause {i}: {e}"));
        assert!(host.restart(), "restart {i}");
    }
    wait_receive_ready(&host, PAIRS);
    check_steering(&flows_by_queue(&host, &ns, 4, 32, 1), &table);
    for i in 0..10 {
        host.sleep().unwrap_or_else(|e| panic!("D3 {i}: {e}"));
        assert_eq!(host.wake(), 0, "D0 {i}\n{}", host.diagnostics());
        wait_receive_ready(&host, PAIRS);
        check_steering(&flows_by_queue(&host, &ns, 4, 16, 1), &table);
    }
    no_violations("cycles");
    tear_down(&host);
}

/// QMP `query-rx-filter` of the (only) NIC: the filter state inside QEMU's device.
fn rx_filter(q: &Qemu) -> String {
    q.qmp(r#"{"execute":"query-rx-filter"}"#)
        .expect("query-rx-filter")
}

/// The tap's offload features as the kernel sees them (QEMU sets them from the guest offloads
/// the driver enabled, TUNSETOFFLOAD).
fn tap_offloads(ns: &NetNs) -> String {
    ns.output(&["ethtool", "-k", "vtap0"]).expect("ethtool")
}

/// The line of `ethtool -k` that says whether the tap segments for the guest (GUEST_TSO*).
fn tap_tso(ns: &NetNs) -> String {
    tap_offloads(ns)
        .lines()
        .find(|l| l.starts_with("tcp-segmentation-offload"))
        .unwrap_or_default()
        .to_string()
}

/// What the device holds for the driver after D0 → D3 → D0 is what it held before: the receive
/// filter (packet filter, multicast list), the VLAN filter (`VlanID`), the MAC override
/// (`NetworkAddress`) — checked inside QEMU with QMP `query-rx-filter` — and the guest offloads
/// (RSC off: the tap stops coalescing for the guest, as `ethtool -k` shows). NetAdapterCx sends
/// none of them again after D0 (it re-sends only on the OID).
#[test]
fn filters_vlan_mac_and_offloads_survive_power_cycles() {
    let (ns, q, bus) = tap_qemu('f', 1, "");
    let mut cfg = HostConfig::default();
    cfg.keywords.insert("VlanID".into(), "5".into());
    cfg.keywords
        .insert("NetworkAddress".into(), "021122334455".into());
    let host = Host::new(bus, cfg);
    bring_up(&host);
    let multicast = [[1, 0, 0x5e, 0, 0, 1], [0x33, 0x33, 0, 0, 0, 1]];
    assert!(host.set_receive_filter(NDIS_FILTER, &multicast));
    host.set_offloads(OffloadState {
        rsc4: false,
        rsc6: false,
        ..OffloadState::ALL
    });
    let settle = || std::thread::sleep(Duration::from_millis(100));
    settle();
    let (filter, tso) = (rx_filter(&q), tap_tso(&ns));
    for want in [
        r#""main-mac": "02:11:22:33:44:55""#,
        r#""vlan-table": [5]"#,
        r#""promiscuous": false"#,
        r#""multicast-table": ["33:33:00:00:00:01", "01:00:5e:00:00:01"]"#,
    ] {
        assert!(filter.contains(want), "{want} in {filter}");
    }
    assert!(
        tso.ends_with("off"),
        "RSC off: the tap no longer coalesces: {tso}"
    );
    for i in 0..3 {
        host.sleep().unwrap_or_else(|e| panic!("D3 {i}: {e}"));
        assert_eq!(host.wake(), 0, "D0 {i}");
        settle();
        assert_eq!(rx_filter(&q), filter, "after D3 -> D0 {i}");
        assert_eq!(tap_tso(&ns), tso, "after D3 -> D0 {i}");
    }
    host.pause().unwrap();
    assert!(host.restart());
    settle();
    assert_eq!(rx_filter(&q), filter, "after a pause");
    no_violations("power cycles");
    tear_down(&host);
}

/// The in-process device on the host (for scenarios that break the device on purpose).
fn inproc() -> Arc<InprocBus> {
    InprocBus::new(DEFAULT_FEATURES, GUEST_MAC, 64)
}

/// Sends `n` frames the device will not take (it holds its transmit queue): they stay in
/// flight, owned by the driver. Returns how many the stack handed in.
fn sends_in_flight(host: &Host, n: u32) -> u64 {
    for i in 0..n {
        assert!(
            host.send(TxFrame {
                bytes: frame(PEER_MAC, GUEST_MAC, i, out_len(i)),
                ..Default::default()
            }),
            "send {i}"
        );
    }
    let q = host.queue(Dir::Tx, 0).expect("TX queue");
    let deadline = Instant::now() + Duration::from_secs(5);
    while !q.driver_owns_anything() || !lock_stack_empty(&q) {
        assert!(
            Instant::now() < deadline,
            "the sends never reached the driver"
        );
        std::thread::sleep(Duration::from_millis(1));
    }
    u64::from(n)
}

fn lock_stack_empty(q: &vnet_harness::host::datapath::Queue) -> bool {
    q.stack.lock().unwrap().pending.is_empty()
}

/// Waits for the restart WDF makes after WdfDeviceSetFailed(AttemptRestart) and checks that
/// the stack came back.
fn restarted(host: &Host, want: usize) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while host.restarts() < want {
        assert!(
            Instant::now() < deadline,
            "no restart\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    assert!(
        host.settle(Duration::from_secs(20)),
        "the restart never finished"
    );
    assert!(
        host.queue(Dir::Tx, 0).is_some(),
        "no datapath after the restart\n{}",
        host.diagnostics()
    );
}

/// The device sets NEEDS_RESET while it holds 100 sends: the driver asks WDF for a restart,
/// the datapath stops (so its Cancel must give every in-flight send back — the device will
/// never complete them), the stack comes back and carries traffic both ways. Before the fix the
/// stopping poll never drained (a power transition hung: 0x9F).
#[test]
fn needs_reset_with_sends_in_flight_restarts_and_returns_every_send() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    transmit(&host, &*bus, 20);
    let sent = fault_with_sends_in_flight(&host, &bus, Fault::NeedsReset, 100);
    no_violations("NEEDS_RESET with sends in flight");
    let d = reset_diagnostics(&host);
    assert_eq!((d.reason, d.pair), (1, 0), "NEEDS_RESET on pair 0");
    assert_ne!(
        d.status & 0x40,
        0,
        "the status register said DEVICE_NEEDS_RESET"
    );
    assert!(
        sent.is_empty(),
        "the held sends were given back unsent, not sent after the reset"
    );
    transmit(&host, &*bus, 50);
    receive(&host, &*bus, 50);
    tear_down(&host);
}

const PROMISCUOUS: u32 = 0x20;

/// A brought-up stack over the in-process device, which swallows the control command that the
/// protocol's promiscuous packet filter makes: taken, never answered, no interrupt.
fn an_unanswered_promiscuous_filter() -> (Arc<InprocBus>, Host) {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    assert_eq!(host.restarts(), 0);
    bus.with_device(|d| d.swallow_control = 1);
    assert!(host.set_receive_filter(NDIS_FILTER | PROMISCUOUS, &[]));
    (bus, host)
}

/// A device that takes a control command and never answers it (no used entry, no interrupt):
/// the driver's control watchdog times the command out without any interrupt to prompt it and
/// asks for a device reset (reason 7, the control queue), as the reset is what gives a control
/// queue back; WDF restarts the stack, the protocol sets its filter again, and this time it
/// reaches the device.
#[test]
fn a_control_command_the_device_never_answers_times_out_and_the_device_is_restarted() {
    let (bus, host) = an_unanswered_promiscuous_filter();
    let asked = Instant::now();
    let deadline = asked + Duration::from_secs(20);
    while host.reset_diagnostics.lock().unwrap().is_empty() {
        assert!(
            Instant::now() < deadline,
            "the unanswered command never timed out (no reset asked for in 20 s)\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let took = asked.elapsed();
    let d = reset_diagnostics(&host);
    assert_eq!(d.reason, 7, "the reset names the control queue");
    assert!(
        took >= Duration::from_millis(4900),
        "timed out after {took:?}: before the watchdog's bound (500 ticks of 10 ms)"
    );
    assert_eq!(
        bus.with_device(|d| d.swallow_control),
        0,
        "the device took the command"
    );
    assert!(
        !bus.with_device(|d| d.filter.promisc),
        "it was never answered"
    );
    restarted(&host, 1);
    assert!(host.set_receive_filter(NDIS_FILTER | PROMISCUOUS, &[]));
    let deadline = Instant::now() + Duration::from_secs(10);
    while !bus.with_device(|d| d.filter.promisc) {
        assert!(
            Instant::now() < deadline,
            "promiscuous mode never reached the device after the restart\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    no_violations("a control command that timed out");
    transmit(&host, &*bus, 20);
    receive(&host, &*bus, 20);
    tear_down(&host);
}

/// As above, but the device vanishes (its registers read all-ones) with the command unanswered:
/// the watchdog sees it gone and stops — no device reset, no live dump of a device that is not
/// there — and PnP's surprise removal then finishes at once.
#[test]
fn a_control_command_unanswered_by_a_device_that_vanished_asks_for_no_reset() {
    let (bus, host) = an_unanswered_promiscuous_filter();
    std::thread::sleep(Duration::from_millis(50));
    bus.model().with(|s| s.misbehave.removed = true);
    // Past the watchdog's bound (5 s) with a margin.
    std::thread::sleep(Duration::from_millis(6500));
    assert!(
        host.reset_diagnostics.lock().unwrap().is_empty(),
        "a reset was asked for a device that is gone"
    );
    let took = host.surprise_remove().expect("surprise removal");
    assert!(
        took < Duration::from_millis(500),
        "surprise removal took {took:?}"
    );
    no_violations("a control command unanswered by a vanished device");
    let ledger = host.unload();
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// The driver's reset diagnostics, as NetAdapterCx would put them in the live dump.
struct Diagnostics {
    reason: u32,
    pair: u32,
    status: u32,
    features: u64,
}

/// The one diagnostics blob the driver stored for the one reset it asked for.
fn reset_diagnostics(host: &Host) -> Diagnostics {
    let all = host.reset_diagnostics.lock().unwrap().clone();
    assert_eq!(all.len(), 1, "one reset asked for, one blob");
    let b = &all[0];
    assert_eq!(b.len(), 40);
    assert_eq!(&b[..8], b"VNETDIAG");
    let u32_at = |i: usize| u32::from_le_bytes(b[i..i + 4].try_into().unwrap());
    assert_eq!(u32_at(8), 1, "version");
    let d = Diagnostics {
        reason: u32_at(12),
        pair: u32_at(16),
        status: u32_at(20),
        features: u64::from_le_bytes(b[24..32].try_into().unwrap()),
    };
    assert_ne!(
        d.features & (1 << 32),
        0,
        "VERSION_1 among the negotiated features"
    );
    d
}

/// The device, holding `sends` sends, breaks with `fault`; WDF restarts the stack (the stop
/// having given every send back) and the new stack gets its packet filter. Returns what reached
/// the wire meanwhile.
fn fault_with_sends_in_flight(
    host: &Host,
    bus: &InprocBus,
    fault: Fault,
    sends: u32,
) -> Vec<Vec<u8>> {
    let before = host.restarts();
    bus.with_device(|d| d.tx_hold = true);
    sends_in_flight(host, sends);
    bus.with_device(|d| {
        d.inject_fault(fault);
        d.tx_hold = false;
    });
    restarted(host, before + 1);
    let sent = bus.take_sent();
    assert!(host.set_receive_filter(NDIS_FILTER, &[]));
    sent
}

/// The device completes a send with a descriptor id it was never given while it holds 50
/// more: the TX engine reports a queue fault, the completions it left are not trusted, and the
/// stop that follows finishes with every send given back.
#[test]
fn a_transmit_fault_with_sends_in_flight_restarts_and_returns_every_send() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    transmit(&host, &*bus, 20);
    let sent = fault_with_sends_in_flight(&host, &bus, Fault::TxIdOutOfRange, 50);
    no_violations("TX fault with sends in flight");
    let d = reset_diagnostics(&host);
    assert_eq!((d.reason, d.pair), (3, 0), "a transmit fault on pair 0");
    assert!(sent.is_empty(), "the device that broke sent nothing more");
    transmit(&host, &*bus, 50);
    receive(&host, &*bus, 50);
    tear_down(&host);
}

/// Surprise removal while the device holds 100 sends: the stack is torn down (no NDIS pause:
/// NetAdapterCx destroys the datapath) without waiting on a device that is gone.
#[test]
fn surprise_removal_with_sends_in_flight_finishes_at_once() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    bus.with_device(|d| d.tx_hold = true);
    sends_in_flight(&host, 100);
    let took = host.surprise_remove().expect("surprise removal");
    assert!(
        took < Duration::from_millis(500),
        "surprise removal took {took:?}"
    );
    no_violations("surprise removal");
    let ledger = host.unload();
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// A plain NDIS pause while the device — alive, not failed — holds 100 sends it never
/// completes (a backend that stopped draining): NetAdapterCx's stop waits for every send, so
/// the driver gives the device `TX_CANCEL_GRACE` (1 s), then takes it as stalled, recovers it
/// (WDF restarts the stack) and returns the sends: the pause finishes in bounded time.
#[test]
fn a_pause_while_the_device_stalls_finishes_after_the_grace_period() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    bus.with_device(|d| d.tx_hold = true);
    sends_in_flight(&host, 100);
    let t0 = Instant::now();
    host.pause().expect("pause");
    let took = t0.elapsed();
    assert!(
        (Duration::from_millis(900)..Duration::from_secs(4)).contains(&took),
        "the pause took {took:?}"
    );
    bus.with_device(|d| d.tx_hold = false);
    restarted(&host, 1);
    no_violations("pause over a stalled device");
    assert!(
        bus.take_sent().is_empty(),
        "the held sends were given back unsent"
    );
    assert!(host.set_receive_filter(NDIS_FILTER, &[]));
    transmit(&host, &*bus, 50);
    receive(&host, &*bus, 50);
    tear_down(&host);
}

/// The device claims a received frame longer than the buffer it was given: the RX engine
/// reports a queue fault (it never reads past the buffer), WDF restarts the stack, and the
/// new one carries traffic both ways.
#[test]
fn a_receive_fault_restarts_and_the_stack_comes_back() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    receive(&host, &*bus, 10);
    bus.with_device(|d| d.inject_fault(Fault::RxLengthTooLarge));
    assert!(bus.inject(&frame(GUEST_MAC, PEER_MAC, 0, 200)));
    restarted(&host, 1);
    no_violations("RX fault");
    assert!(host.set_receive_filter(NDIS_FILTER, &[]));
    let _ = bus.take_sent();
    transmit(&host, &*bus, 50);
    receive(&host, &*bus, 50);
    tear_down(&host);
}

/// Brings the stack up with `interrupts` over `q`, sets a multicast list, and checks inside
/// QEMU that the control commands (receive modes, MAC table: one after another, each sent from
/// the previous one's completion interrupt) reached the device, then traffic both ways when
/// `peer` is given.
fn layout_works(what: &str, q: &Qemu, bus: Arc<QemuBus>, interrupts: Interrupts, peer: bool) {
    let cfg = HostConfig {
        interrupts,
        ..Default::default()
    };
    let host = Host::new(bus, cfg);
    bring_up(&host);
    let multicast = [[1, 0, 0x5e, 0, 0, 7]];
    assert!(host.set_receive_filter(NDIS_FILTER, &multicast), "{what}");
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let f = rx_filter(q);
        if f.contains(r#""multicast-table": ["01:00:5e:00:00:07"]"#)
            && f.contains(r#""promiscuous": false"#)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{what}: the control commands never reached the device: {f}\n{}",
            host.diagnostics()
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    if peer {
        transmit(&host, q, 100);
        receive(&host, q, 100);
    }
    no_violations(what);
    tear_down(&host);
}

/// Every interrupt layout the PnP manager can grant: one line-based interrupt, and MSI-X with
/// 1, 2, 3 and 4 messages (QEMU's table sized to match): traffic both ways and the control
/// queue's commands complete. Before the fix, 1–3 messages meant no interrupt at all (the core
/// wrote NO_VECTOR everywhere while the OS had MSI-X on).
#[test]
fn every_interrupt_layout_of_one_pair_carries_traffic_and_control_commands() {
    for (what, vectors, interrupts) in [
        ("line-based", 4, Interrupts::Line),
        ("MSI-X 1", 1, Interrupts::Msix(1)),
        ("MSI-X 2", 2, Interrupts::Msix(2)),
        ("MSI-X 3", 3, Interrupts::Msix(3)),
        ("MSI-X 4", 4, Interrupts::Msix(4)),
    ] {
        let (q, bus) = qemu(&format!("vectors={vectors}"));
        layout_works(what, &q, bus, interrupts, true);
    }
}

/// `mq=on` without `rss=on`: the Windows driver runs one pair (NetAdapterCx spreads only
/// through device RSS), but the control queue sits after every pair the device has. Its vector
/// and the DPC's decoding must agree: before the fix they came from two pair counts and the
/// control commands stalled.
#[test]
fn multiqueue_without_rss_runs_one_pair_and_its_control_queue_works() {
    for (what, interrupts) in [
        ("mq=on, MSI-X 10", Interrupts::Msix(10)),
        ("mq=on, MSI-X 4", Interrupts::Msix(4)),
        ("mq=on, line-based", Interrupts::Line),
    ] {
        let (_ns, q, bus) = tap_qemu('q', 4, "mq=on");
        layout_works(what, &q, bus, interrupts, false);
    }
}

/// A device with three queue pairs and RSS, and messages enough for four: NetAdapterCx
/// bugchecks (0x19E, code 26) on a receive-scaling capability whose queue count is not a power
/// of two, so the driver uses two.
#[test]
fn three_device_pairs_with_rss_declare_a_power_of_two() {
    let (ns, q, bus) = tap_qemu('t', 3, "mq=on,rss=on,vectors=10");
    let host = Host::new(
        bus,
        HostConfig {
            interrupts: Interrupts::Msix(10),
            ..Default::default()
        },
    );
    bring_up(&host);
    host.rss_initialize().expect("RSS initialize");
    no_violations("three device pairs");
    assert_eq!(
        host.queues().iter().filter(|q| q.dir == Dir::Rx).count(),
        2,
        "two RX queues"
    );
    let _ = (ns, q);
    tear_down(&host);
}

/// The stack holds every receive buffer while frames keep arriving: NetAdapterCx posts no more
/// packets once its NBLs are all out, so the driver has frames it cannot indicate. That is no
/// reason to notify: the queue must sleep until the stack returns buffers — not spin through
/// arm, notify, Advance (a DPC-watchdog risk when the EC runs at DISPATCH). Then every frame
/// arrives, in order.
#[test]
fn frames_the_os_cannot_take_do_not_spin_the_receive_queue() {
    use vnet_harness::host::datapath::Hold;
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    host.set_rx_hold(Hold::Keep);
    let rx = host.queue(Dir::Rx, 0).expect("RX queue");
    let ring = rx.os.lock().unwrap().rx_packet_ring_len();
    let n = ring + 200;
    let mut sent = 0u32;
    let deadline = Instant::now() + Duration::from_secs(10);
    while sent < n {
        if bus.inject(&frame(GUEST_MAC, PEER_MAC, sent, in_len(sent))) {
            sent += 1;
        } else {
            assert!(Instant::now() < deadline, "the device took {sent} of {n}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    // Let the device and the queue settle, then watch an idle half second.
    std::thread::sleep(Duration::from_millis(300));
    let arms = || rx.stats.arms.load(std::sync::atomic::Ordering::Relaxed);
    let polls = || rx.stats.polls.load(std::sync::atomic::Ordering::Relaxed);
    let (a0, p0) = (arms(), polls());
    std::thread::sleep(Duration::from_millis(500));
    let (a1, p1) = (arms() - a0, polls() - p0);
    eprintln!("held: {a1} arms and {p1} polls in 500 ms (ring {ring})");
    assert!(
        a1 <= 2 && p1 <= 4,
        "the queue spun with nothing it could do: {a1} arms, {p1} polls in 500 ms\n{}",
        host.diagnostics()
    );
    host.set_rx_hold(Hold::Return);
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n as usize {
        assert!(
            Instant::now() < deadline,
            "{} of {n} after the release\n{}",
            got.len(),
            host.diagnostics()
        );
        got.extend(host.take_received(0));
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            g.bytes,
            frame(GUEST_MAC, PEER_MAC, i as u32, in_len(i as u32)),
            "frame {i}"
        );
    }
    no_violations("held receive buffers");
    tear_down(&host);
}

/// OID_GEN_RECEIVE_SCALE_INITIALIZE while contiguous DMA memory is short: the receive pool of
/// pair 2's engine cannot be allocated, the OID fails (NetAdapterCx destroys the queues it made
/// and forgets the attempt), and the protocol's next INITIALIZE creates every queue — the
/// failed engine gave its virtqueue back. Before the fix the virtqueue was dropped with the
/// engine and the pair could never have a queue again until a PnP restart.
#[test]
fn a_receive_queue_that_could_not_be_created_can_be_created_again() {
    const PAIRS: u16 = 4;
    let (ns, _q, bus) = tap_qemu('c', PAIRS, "mq=on,rss=on");
    let host = Host::new(
        bus,
        HostConfig {
            interrupts: Interrupts::Msix(2 * PAIRS + 2),
            ..Default::default()
        },
    );
    bring_up(&host);
    // RX1's pool goes first, then RX2's: fail RX2's.
    host.fail_next("WdfCommonBufferCreateWithConfig", 1);
    assert!(host.rss_initialize().is_err(), "the OID fails");
    assert_eq!(host.failed_creates(), ["WdfCommonBufferCreateWithConfig"]);
    assert_eq!(
        host.queues().iter().filter(|q| q.dir == Dir::Rx).count(),
        1,
        "the queues made for it were destroyed"
    );
    host.rss_initialize()
        .unwrap_or_else(|st| panic!("the second INITIALIZE: {st:#x}\n{}", host.diagnostics()));
    assert_eq!(
        host.queues().iter().filter(|q| q.dir == Dir::Rx).count(),
        usize::from(PAIRS)
    );
    assert_eq!(
        host.rss_parameters(true, Some(&KEY), Some((1, 0x1 | 0x10 | 0x20)), Some(128)),
        0
    );
    let table: Vec<u16> = (0..128u16).map(|i| (i * 3 + 1) % PAIRS).collect();
    let entries: Vec<(usize, u32)> = table
        .iter()
        .enumerate()
        .map(|(i, &q)| (i, u32::from(q)))
        .collect();
    assert_eq!(host.rss_set_entries(&entries), 0);
    std::thread::sleep(Duration::from_millis(50));
    let per = check_steering(&flows_by_queue(&host, &ns, 4, 32, 1), &table);
    assert!(per.iter().filter(|&&n| n > 0).count() > 2, "{per:?}");
    no_violations("RSS after a failed INITIALIZE");
    tear_down(&host);
}

/// D3 → D0 while contiguous DMA memory is short: the transmit queue's header slots cannot be
/// allocated, NetAdapterCx discards the datapath and fails the device without a restart
/// (`WdfDeviceFailedNoRestart`), and the stack is torn down with nothing left behind.
#[test]
fn a_datapath_that_cannot_be_created_at_d0_fails_the_device_cleanly() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    transmit(&host, &*bus, 10);
    host.sleep().expect("D3");
    host.fail_next("WdfCommonBufferCreateWithConfig", 0);
    assert_eq!(host.wake(), 0, "the power-up itself succeeds");
    assert!(
        host.settle(Duration::from_secs(20)),
        "the teardown never finished"
    );
    assert_eq!(host.failed_creates(), ["WdfCommonBufferCreateWithConfig"]);
    assert_eq!(host.restarts(), 0, "no restart");
    assert!(host.queues().is_empty(), "no datapath");
    no_violations("failed datapath creation");
    let ledger = host.unload();
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// A device that never finishes a reset (its status never reads 0): D0 exit must not spin
/// under the adapter's spin lock waiting for it (the reset polled up to 1,000,000 times there,
/// seconds at DISPATCH_LEVEL). The wait is at PASSIVE_LEVEL, bounded in time; D0 entry then
/// reports the device unusable, and the stack is torn down with nothing left behind.
#[test]
fn a_device_that_never_resets_is_waited_for_at_passive_level_within_a_bound() {
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    transmit(&host, &*bus, 10);
    bus.model().with(|s| s.misbehave.stuck_reset = true);
    let t0 = Instant::now();
    host.sleep().expect("D3");
    let took = t0.elapsed();
    assert!(took < Duration::from_secs(3), "D0 exit took {took:?}");
    no_violations("D0 exit over a device that never resets");
    assert_ne!(host.wake(), 0, "D0 entry cannot bring it back");
    let _ = irql::take_violations();
    let ledger = host.unload();
    assert!(ledger.is_empty(), "{ledger:#?}");
}

/// Idle for 2 s with both queues armed: the driver touches no register (no polling, no repeat
/// kick) and its execution contexts sleep; then traffic both ways resumes at once — the first
/// frame each way within a poll of the device.
#[test]
fn two_idle_seconds_armed_then_traffic_both_ways_at_once() {
    use std::sync::atomic::Ordering::Relaxed;
    let (q, bus) = qemu("");
    let host = Host::new(bus, HostConfig::default());
    bring_up(&host);
    transmit(&host, &*q, 50);
    receive(&host, &*q, 50);
    let (tx, rx) = (
        host.queue(Dir::Tx, 0).unwrap(),
        host.queue(Dir::Rx, 0).unwrap(),
    );
    let s = &*host;
    // Idle: both queues armed with nothing to do, and the driver's last register access a
    // quarter of a second ago (the control commands of bring-up may still be completing, one
    // DPC and one kick each).
    let deadline = Instant::now() + Duration::from_secs(5);
    let accesses = || s.register_reads.load(Relaxed) + s.register_writes.load(Relaxed);
    loop {
        let before = accesses();
        std::thread::sleep(Duration::from_millis(250));
        if accesses() == before
            && rx.idle_and_armed()
            && (tx.idle_and_armed() || !tx.driver_owns_anything())
        {
            break;
        }
        assert!(Instant::now() < deadline, "the driver never went idle");
    }
    let (r0, w0) = (
        s.register_reads.load(Relaxed),
        s.register_writes.load(Relaxed),
    );
    let (tp0, rp0) = (tx.stats.polls.load(Relaxed), rx.stats.polls.load(Relaxed));
    *s.write_log.lock().unwrap() = Some(Vec::new());
    std::thread::sleep(Duration::from_secs(2));
    let log = s.write_log.lock().unwrap().take().unwrap_or_default();
    let reads = s.register_reads.load(Relaxed) - r0;
    let writes = s.register_writes.load(Relaxed) - w0;
    let polls = tx.stats.polls.load(Relaxed) - tp0 + rx.stats.polls.load(Relaxed) - rp0;
    eprintln!("idle 2 s: {reads} register reads, {writes} writes, {polls} polls");
    assert_eq!(
        (reads, writes, polls),
        (0, 0, 0),
        "idle means idle; writes: {log:#?}\n{}",
        host.diagnostics()
    );
    let t0 = Instant::now();
    receive_within(&host, &*q, 1, Duration::from_secs(2));
    transmit(&host, &*q, 1);
    eprintln!("first frame in and out after the idle: {:?}", t0.elapsed());
    transmit(&host, &*q, 100);
    receive(&host, &*q, 100);
    no_violations("idle");
    tear_down(&host);
}

/// The stack holds every indicated receive buffer until the receive queue has nothing left to
/// indicate and is armed, then returns them all at once: reception resumes, every frame in
/// order. Returned NBLs reach an idle queue through `NxRxXlat::QueueReturnedNetBufferLists`
/// (translator/nxrxxlat.cpp), which notifies the execution context; the driver reposts the
/// buffers in the Advance that follows.
#[test]
fn buffers_held_until_the_queue_is_armed_then_returned_resume_reception() {
    use vnet_harness::host::datapath::Hold;
    let (q, bus) = qemu("");
    let host = Host::new(bus, HostConfig::default());
    bring_up(&host);
    host.set_rx_hold(Hold::Keep);
    let rx = host.queue(Dir::Rx, 0).unwrap();
    // More than the packet ring holds: the rest waits in QEMU (it queues for a full ring).
    let n = rx.os.lock().unwrap().rx_packet_ring_len() + 100;
    let deadline = Instant::now() + Duration::from_secs(10);
    for i in 0..n {
        let f = frame(GUEST_MAC, PEER_MAC, i, in_len(i));
        while !q.inject(&f) {
            assert!(Instant::now() < deadline, "QEMU took {i} of {n}");
            std::thread::sleep(Duration::from_micros(100));
        }
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while !rx.idle_and_armed() {
        assert!(Instant::now() < deadline, "the receive queue never armed");
        std::thread::sleep(Duration::from_millis(2));
    }
    let mut got = host.take_received(0);
    let held = got.len();
    assert!(held > 0 && held < n as usize, "held {held} of {n}");
    host.set_rx_hold(Hold::Return);
    let deadline = Instant::now() + Duration::from_secs(10);
    while got.len() < n as usize {
        assert!(
            Instant::now() < deadline,
            "{} of {n} after the return\n{}",
            got.len(),
            host.diagnostics()
        );
        got.extend(host.take_received(0));
        std::thread::sleep(Duration::from_millis(1));
    }
    for (i, g) in got.iter().enumerate() {
        assert_eq!(
            g.bytes,
            frame(GUEST_MAC, PEER_MAC, i as u32, in_len(i as u32)),
            "frame {i} (held {held})"
        );
    }
    no_violations("held until armed");
    tear_down(&host);
}

/// Eight pairs with RSS over 18 MSI-X messages (the INF's MessageNumberLimit): a message per
/// source, the control queue's commands complete.
#[test]
fn eight_pairs_over_eighteen_messages() {
    let (_ns, q, bus) = tap_qemu('8', 8, "mq=on,rss=on");
    layout_works("8 pairs, MSI-X 18", &q, bus, Interrupts::Msix(18), false);
}

/// One step of a random life.
#[derive(Debug, Clone, Copy)]
enum Step {
    Traffic(u32),
    PauseRestart,
    PowerCycle,
    Filter(u8),
    Offloads(u8),
    HoldThenReturn(u32),
    NeedsReset,
    TransmitFault,
    /// D3 → D0 on a machine short of memory: the Nth allocation (`true`) or framework create
    /// call of the power-up fails.
    ShortPowerCycle(u64, bool),
}

fn random_steps(rng: &mut vnet_harness::rng::Rng, faults: bool) -> Vec<Step> {
    let n = 3 + rng.below(6) as usize;
    let mut out = Vec::with_capacity(n);
    let mut fault_budget = 2;
    for _ in 0..n {
        let kinds = if faults && fault_budget > 0 { 9 } else { 6 };
        let s = match rng.below(kinds) {
            0 => Step::Traffic(1 + rng.below(40) as u32),
            1 => Step::PauseRestart,
            2 => Step::PowerCycle,
            3 => Step::Filter(rng.below(6) as u8),
            4 => Step::Offloads(rng.below(16) as u8),
            5 => Step::HoldThenReturn(1 + rng.below(60) as u32),
            6 => Step::NeedsReset,
            7 => Step::TransmitFault,
            _ => Step::ShortPowerCycle(rng.below(12), rng.below(2) == 0),
        };
        if matches!(
            s,
            Step::NeedsReset | Step::TransmitFault | Step::ShortPowerCycle(..)
        ) {
            fault_budget -= 1;
        }
        out.push(s);
    }
    out
}

/// Plays `steps` on a host over `peer`; after every step traffic flows both ways and no rule
/// is broken; the life ends with an orderly removal (empty ledger) or, if `surprise`, a surprise
/// removal followed by unload (empty ledger too).
fn live(
    what: &str,
    host: &Host,
    peer: &dyn Peer,
    inproc: Option<&InprocBus>,
    steps: &[Step],
    surprise: bool,
) {
    use vnet_harness::host::datapath::Hold;
    bring_up(host);
    for (i, s) in steps.iter().enumerate() {
        let at = format!("{what}: step {i} {s:?}");
        match *s {
            Step::Traffic(n) => {
                transmit(host, peer, n);
                receive(host, peer, n);
            }
            Step::PauseRestart => {
                host.pause().unwrap_or_else(|e| panic!("{at}: {e}"));
                assert!(host.restart(), "{at}");
            }
            Step::PowerCycle => {
                host.sleep().unwrap_or_else(|e| panic!("{at}: {e}"));
                assert_eq!(host.wake(), 0, "{at}\n{}", host.diagnostics());
            }
            Step::Filter(k) => {
                let list: Vec<[u8; 6]> = (0..k).map(|j| [1, 0, 0x5e, 0, 1, j]).collect();
                assert!(host.set_receive_filter(NDIS_FILTER, &list), "{at}");
            }
            Step::Offloads(bits) => host.set_offloads(OffloadState {
                rsc4: bits & 1 != 0,
                rsc6: bits & 2 != 0,
                ..if bits & 4 != 0 {
                    OffloadState::ALL
                } else {
                    host.default_offloads()
                }
            }),
            Step::HoldThenReturn(n) => {
                host.set_rx_hold(Hold::Keep);
                let _ = host.take_received(0);
                for j in 0..n {
                    let f = frame(GUEST_MAC, PEER_MAC, j, in_len(j));
                    let deadline = Instant::now() + Duration::from_secs(5);
                    while !peer.inject(&f) {
                        assert!(Instant::now() < deadline, "{at}: the device takes no more");
                        std::thread::sleep(Duration::from_micros(100));
                    }
                }
                std::thread::sleep(Duration::from_millis(5));
                host.set_rx_hold(Hold::Return);
                let mut got = Vec::new();
                let deadline = Instant::now() + Duration::from_secs(10);
                while got.len() < n as usize {
                    assert!(
                        Instant::now() < deadline,
                        "{at}: {} of {n}\n{}",
                        got.len(),
                        host.diagnostics()
                    );
                    got.extend(host.take_received(0));
                    std::thread::sleep(Duration::from_micros(200));
                }
                for (j, g) in got.iter().enumerate() {
                    assert_eq!(
                        g.bytes,
                        frame(GUEST_MAC, PEER_MAC, j as u32, in_len(j as u32))
                    );
                }
            }
            Step::NeedsReset | Step::TransmitFault => {
                let Some(bus) = inproc else { continue };
                let fault = if matches!(s, Step::NeedsReset) {
                    Fault::NeedsReset
                } else {
                    Fault::TxIdOutOfRange
                };
                let sent = fault_with_sends_in_flight(host, bus, fault, 10);
                assert!(
                    sent.is_empty(),
                    "{at}: {} frames sent after the fault (steps {steps:?})",
                    sent.len()
                );
            }
            Step::ShortPowerCycle(n, allocation) => {
                host.sleep().unwrap_or_else(|e| panic!("{at}: {e}"));
                if allocation {
                    alloc::fail_after(Some(n));
                } else {
                    host.fail_create_after(Some(n));
                }
                let st = host.wake();
                assert!(host.settle(Duration::from_secs(10)), "{at}: PnP hung");
                alloc::fail_after(None);
                host.fail_create_after(None);
                if host.power() != Power::D0 || st != 0 {
                    // The power-up failed and the device with it: the life ends here, and
                    // nothing may be left behind.
                    assert!(st >= 0 || st as u32 == 0xC000_009A, "{at}: {st:#x}");
                    if host.power() != Power::Absent {
                        host.remove()
                            .unwrap_or_else(|e| panic!("{at}: remove: {e}"));
                    }
                    let ledger = host.unload();
                    no_violations(&at);
                    assert!(ledger.is_empty(), "{at}: {ledger:#?}");
                    return;
                }
            }
        }
        no_violations(&at);
        transmit(host, peer, 3);
        receive(host, peer, 3);
    }
    if surprise {
        host.surprise_remove()
            .unwrap_or_else(|e| panic!("{what}: surprise removal: {e}"));
        no_violations(what);
        let ledger = host.unload();
        assert!(ledger.is_empty(), "{what}: {ledger:#?}");
    } else {
        tear_down(host);
    }
}

/// Seeded random lives against the in-process device (faults included): `VNET_PROP_SEEDS`
/// of them (default 1,000), each ending with an empty ledger. A failure names its seed;
/// `VNET_PROP_SEED=n` replays one.
#[test]
fn random_lives_against_the_in_process_device() {
    let (first, count) = prop_seeds(1000);
    for seed in first..first + count {
        let mut rng = vnet_harness::rng::Rng::new(seed);
        let steps = random_steps(&mut rng, true);
        let surprise = rng.below(4) == 0;
        let bus = inproc();
        let host = Host::new(
            bus.clone(),
            HostConfig {
                seed,
                ..Default::default()
            },
        );
        live(
            &format!("seed {seed}"),
            &host,
            &*bus,
            Some(&bus),
            &steps,
            surprise,
        );
    }
}

/// As above against QEMU's virtio-net-pci (no injected faults): 20 lives by default.
#[test]
fn random_lives_against_qemu() {
    let (first, count) = prop_seeds(20);
    for seed in first..first + count {
        let mut rng = vnet_harness::rng::Rng::new(seed ^ 0x5eed);
        let steps = random_steps(&mut rng, false);
        let surprise = rng.below(4) == 0;
        let (q, bus) = qemu("");
        let host = Host::new(
            bus,
            HostConfig {
                seed,
                ..Default::default()
            },
        );
        live(
            &format!("QEMU seed {seed}"),
            &host,
            &*q,
            None,
            &steps,
            surprise,
        );
    }
}

/// (first seed, how many): `VNET_PROP_SEED` replays one seed, `VNET_PROP_SEEDS` sets the count.
fn prop_seeds(default: u64) -> (u64, u64) {
    if let Some(s) = std::env::var("VNET_PROP_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
    {
        return (s, 1);
    }
    let n = std::env::var("VNET_PROP_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    (0, n)
}

/// A device that offers no MAC address (no VIRTIO_NET_F_MAC): the driver makes a random,
/// locally administered one — once. It is the adapter's permanent address, so it must survive
/// a recovery (WDF restarts the stack: a new DeviceAdd and PrepareHardware), or every
/// neighbour's ARP/ND cache goes stale; the driver keeps it in the adapter's registry key.
#[test]
fn a_random_permanent_address_survives_a_restart() {
    let bus = InprocBus::new(
        DEFAULT_FEATURES.difference(Features::NET_MAC),
        GUEST_MAC,
        64,
    );
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    let first = host.permanent_address().expect("a permanent address");
    assert_eq!(
        first[0] & 3,
        2,
        "locally administered unicast: {first:02x?}"
    );
    assert_ne!(first, GUEST_MAC, "the device's MAC is not offered");
    bus.with_device(|d| d.inject_fault(Fault::NeedsReset));
    restarted(&host, 1);
    assert_eq!(
        host.permanent_address(),
        Some(first),
        "the same address after the restart"
    );
    no_violations("random permanent address");
    tear_down(&host);
}

/// Which low-resource failure a bring-up meets.
#[derive(Debug, Clone, Copy)]
enum Shortage {
    /// The driver's Nth heap allocation fails (the pool returns NULL).
    Allocation,
    /// The Nth framework create call fails with STATUS_INSUFFICIENT_RESOURCES.
    Create,
}

/// A machine short of memory at every point of bring-up in turn: the Nth driver allocation (or
/// framework create call) fails, for N = 0, 1, 2, … until bring-up no longer meets one. Each
/// time the glue fails that step with an NTSTATUS — never an abort, which in the kernel is a
/// bugcheck — and unwinds: after the removal nothing is left in the ledger, and on the next
/// load, with memory back, the device comes up and carries traffic. Then the same for D0 entry
/// after D3.
#[test]
fn a_failure_at_every_allocation_and_create_of_bring_up_unwinds_cleanly() {
    for kind in [Shortage::Allocation, Shortage::Create] {
        let (mut failed_at, mut failed_steps) = (0, 0);
        for n in 0..2_000u64 {
            let bus = inproc();
            let host = Host::new(bus.clone(), HostConfig::default());
            match kind {
                Shortage::Allocation => alloc::fail_after(Some(n)),
                Shortage::Create => host.fail_create_after(Some(n)),
            }
            let mut st = host.load();
            if st >= 0 {
                st = host.add_device();
            }
            if st >= 0 {
                st = host.start();
            }
            if st >= 0 {
                // Queue creation (which a failure may turn into a failed device, torn down by
                // the PnP worker) and the first OID are part of bring-up too.
                assert!(
                    host.settle(Duration::from_secs(10)),
                    "{kind:?} {n}: PnP hung"
                );
                if host.power() == Power::D0 {
                    let _ = host.set_receive_filter(NDIS_FILTER, &[]);
                }
                assert!(
                    host.settle(Duration::from_secs(10)),
                    "{kind:?} {n}: PnP hung"
                );
            }
            let hit = match kind {
                Shortage::Allocation => !alloc::failure_pending(),
                Shortage::Create => !host.failed_creates().is_empty(),
            };
            alloc::fail_after(None);
            host.fail_create_after(None);
            if hit && st < 0 {
                // The step that met the failure says why, as a driver on a machine short of
                // memory must: not a configuration error, not a crash.
                assert_eq!(
                    st as u32, 0xC000_009A,
                    "{kind:?} failing at {n}: STATUS_INSUFFICIENT_RESOURCES, not {st:#x}"
                );
                failed_steps += 1;
            }
            if !hit {
                assert!(st >= 0, "{kind:?}: no failure injected, yet {st:#x}");
                tear_down(&host);
                failed_at = n;
                break;
            }
            if st >= 0 {
                // The failure hit something the driver tolerates or retries (an optional
                // feature, a queue the class extension creates again): it still unloads clean.
                if host.power() != Power::Absent {
                    host.remove()
                        .unwrap_or_else(|e| panic!("{kind:?} {n}: remove: {e}"));
                }
            }
            let ledger = host.unload();
            no_violations(&format!("{kind:?} failing at {n}"));
            assert!(ledger.is_empty(), "{kind:?} failing at {n}: {ledger:#?}");
        }
        assert!(
            failed_at > 0,
            "{kind:?}: bring-up never met an injected failure"
        );
        eprintln!(
            "{kind:?}: {failed_at} failure points of bring-up unwound; {failed_steps} failed \
             DriverEntry, DeviceAdd or the start, the rest a queue or an OID"
        );
    }
    // The same at D0 entry after D3 (the datapath made again, the engines' queues restored).
    for kind in [Shortage::Allocation, Shortage::Create] {
        let mut points = 0;
        for n in 0..2_000u64 {
            let bus = inproc();
            let host = Host::new(bus.clone(), HostConfig::default());
            bring_up(&host);
            transmit(&host, &*bus, 4);
            host.sleep().expect("D3");
            match kind {
                Shortage::Allocation => alloc::fail_after(Some(n)),
                Shortage::Create => host.fail_create_after(Some(n)),
            }
            let st = host.wake();
            assert!(
                host.settle(Duration::from_secs(10)),
                "{kind:?} {n}: PnP hung"
            );
            let hit = match kind {
                Shortage::Allocation => !alloc::failure_pending(),
                Shortage::Create => !host.failed_creates().is_empty(),
            };
            alloc::fail_after(None);
            host.fail_create_after(None);
            if !hit {
                assert_eq!(st, 0, "{kind:?}: no failure injected");
                transmit(&host, &*bus, 4);
                tear_down(&host);
                points = n;
                break;
            }
            if host.power() != Power::Absent {
                host.remove()
                    .unwrap_or_else(|e| panic!("{kind:?} {n}: remove: {e}"));
            }
            let ledger = host.unload();
            no_violations(&format!("{kind:?} failing at {n} of D0 entry"));
            assert!(
                ledger.is_empty(),
                "{kind:?} failing at {n} of D0 entry: {ledger:#?}"
            );
        }
        assert!(
            points > 0,
            "{kind:?}: D0 entry never met an injected failure"
        );
        eprintln!("{kind:?}: {points} failure points of D0 entry unwound");
    }
    // Memory is back: the device comes up and carries traffic.
    let bus = inproc();
    let host = Host::new(bus.clone(), HostConfig::default());
    bring_up(&host);
    transmit(&host, &*bus, 20);
    tear_down(&host);
}

/// A long-running guest whose memory is fragmented: no physically contiguous run above 512 KiB
/// is left. The receive pool (1,024 buffers of 2 KiB: 2 MiB) must not need one; it comes in
/// chunks, and the device comes up, carries traffic both ways and goes through D3 → D0. Before,
/// the pool was one 2 MiB common buffer: the receive queue could not be created.
#[test]
fn a_fragmented_guest_without_a_large_contiguous_run_still_receives() {
    let (q, bus) = qemu("");
    let host = Host::new(
        bus,
        HostConfig {
            largest_common_buffer: Some(512 * 1024),
            ..Default::default()
        },
    );
    bring_up(&host);
    assert!(
        host.queue(Dir::Rx, 0).is_some(),
        "no receive queue\n{}",
        host.diagnostics()
    );
    transmit(&host, &*q, 100);
    receive(&host, &*q, 100);
    host.sleep().expect("D3");
    assert_eq!(host.wake(), 0, "D0\n{}", host.diagnostics());
    receive(&host, &*q, 100);
    no_violations("fragmented guest");
    tear_down(&host);
}

// ---------------------------------------------------------------------------------------------
// Confidential mode through the glue (README "Confidential mode").

/// A host whose stack keeps its transmit frames in private memory QEMU cannot reach, as a
/// confidential VM's (HostConfig::private_os_memory), with the `ConfidentialMode` keyword.
fn confidential_host(props: &str, mode: Option<&str>) -> (Arc<Qemu>, Host) {
    let (q, bus) = qemu(props);
    let mut config = HostConfig {
        private_os_memory: true,
        ..HostConfig::default()
    };
    if let Some(m) = mode {
        config.keywords.insert("ConfidentialMode".into(), m.into());
    }
    (q, Host::new(bus, config))
}

/// `ConfidentialMode` = 2 (On): every frame goes out of shared buffers the driver reserved,
/// never from the stack's (private) memory — QEMU gets every frame byte for byte, in order —
/// and reception works, across NDIS pause/restart and D3 -> D0 cycles, ending with an empty
/// ledger. The negative control is
/// `without_confidential_mode_a_device_cannot_send_from_private_memory`.
#[test]
fn confidential_mode_sends_only_from_shared_buffers_across_power_cycles() {
    let (q, host) = confidential_host("", Some("2"));
    bring_up(&host);
    transmit(&host, &*q, 300);
    receive(&host, &*q, 300);
    for i in 0..3 {
        host.pause().unwrap_or_else(|e| panic!("pause {i}: {e}"));
        assert!(host.restart(), "restart {i}");
        transmit(&host, &*q, 50);
        host.sleep().unwrap_or_else(|e| panic!("D3 {i}: {e}"));
        assert_eq!(host.wake(), 0, "D0 {i}\n{}", host.diagnostics());
        receive(&host, &*q, 50);
        transmit(&host, &*q, 50);
    }
    assert_eq!(host.restarts(), 0, "no recovery was needed");
    no_violations("confidential");
    tear_down(&host);
}

/// QEMU's `iommu_platform=on` (VIRTIO_F_ACCESS_PLATFORM) with the keyword left at its default
/// (Auto): the glue resolves confidential mode on, and the stack's private frames go out.
#[test]
fn access_platform_makes_the_default_mode_confidential() {
    let (q, host) = confidential_host("iommu_platform=on", None);
    bring_up(&host);
    transmit(&host, &*q, 200);
    receive(&host, &*q, 200);
    no_violations("access platform");
    tear_down(&host);
}

/// The negative control of the two scenarios above: with `ConfidentialMode` = 0 (Off) the
/// driver hands the stack's fragments to the device by logical address, and private memory is
/// out of the device's reach — QEMU reads zeros from the unmapped range, so what it puts on the
/// wire is not the frame. This is what makes the scenarios above a check of where the device
/// reads from.
#[test]
fn without_confidential_mode_a_device_cannot_send_from_private_memory() {
    let (q, host) = confidential_host("", Some("0"));
    bring_up(&host);
    let _ = q.take_sent();
    for i in 0..5 {
        assert!(host.send(TxFrame {
            bytes: frame(PEER_MAC, GUEST_MAC, i, out_len(i)),
            ..Default::default()
        }));
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = Vec::new();
    while got.len() < 5 && Instant::now() < deadline {
        got.extend(q.take_sent());
        std::thread::sleep(Duration::from_millis(1));
    }
    assert_eq!(got.len(), 5, "the device sent what it was given");
    for (i, g) in got.iter().enumerate() {
        assert_eq!(g.len(), out_len(i as u32), "frame {i}");
        assert!(
            g.iter().all(|&b| b == 0),
            "frame {i}: QEMU read the stack's private memory: {:02x?}",
            &g[..g.len().min(20)]
        );
    }
    let _ = host.unload();
}
