//! vnet-lab on Linux (see main.rs).

use std::io::Write as _;
use std::time::{Duration, Instant};

use virtio::Features;
use virtionet::config::{Capabilities, ConfidentialMode, UserSettings};
use virtionet::events::Event;
use virtionet::stats::{RxStats, TxStats};
use vnet_harness::lab::QemuMachine;
use vnet_harness::netdev::{Backend, DEFAULT_FEATURES};
use vnet_harness::os_tx::TxFrame;
use vnet_harness::pcap::PcapWriter;
use vnet_harness::qemu::{Accel, QemuOptions};
use vnet_harness::sim;

struct Args {
    peer: String,
    frames: usize,
    size: usize,
    runs: usize,
    latency: usize,
    props: String,
    accel: Option<Accel>,
    pcap: Option<String>,
    mib: usize,
    confidential: ConfidentialMode,
}

fn usage() -> ! {
    eprintln!(
        "usage: vnet-lab [--peer qemu|tap|inproc] [--frames N] [--size BYTES] [--runs K] [--latency N]\n\
         \x20               [--mib M] [--props virtio-net-pci-properties] [--accel kvm|tcg] [--pcap FILE]\n\
         \x20               [--confidential off|auto|on]"
    );
    std::process::exit(2);
}

fn parse() -> Args {
    let mut a = Args {
        peer: "qemu".into(),
        frames: 20_000,
        size: 1514,
        runs: 3,
        latency: 200,
        props: String::new(),
        accel: None,
        pcap: None,
        mib: 64,
        confidential: ConfidentialMode::Auto,
    };
    let mut it = std::env::args().skip(1);
    while let Some(k) = it.next() {
        let mut v = || it.next().unwrap_or_else(|| usage());
        match k.as_str() {
            "--peer" => a.peer = v(),
            "--frames" => a.frames = v().parse().unwrap_or_else(|_| usage()),
            "--size" => a.size = v().parse().unwrap_or_else(|_| usage()),
            "--runs" => a.runs = v().parse().unwrap_or_else(|_| usage()),
            "--latency" => a.latency = v().parse().unwrap_or_else(|_| usage()),
            "--props" => a.props = v(),
            "--accel" => {
                a.accel = Some(match v().as_str() {
                    "kvm" => Accel::Kvm,
                    "tcg" => Accel::Tcg,
                    _ => usage(),
                })
            }
            "--pcap" => a.pcap = Some(v()),
            "--mib" => a.mib = v().parse().unwrap_or_else(|_| usage()),
            "--confidential" => {
                a.confidential = match v().as_str() {
                    "off" => ConfidentialMode::Off,
                    "auto" => ConfidentialMode::Auto,
                    "on" => ConfidentialMode::On,
                    _ => usage(),
                }
            }
            "-h" | "--help" => usage(),
            _ => usage(),
        }
    }
    if a.size < 60
        || a.size > 65_535
        || a.frames == 0
        || a.runs == 0
        || !(1..=1024).contains(&a.mib)
    {
        usage();
    }
    a
}

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn frame(dst: [u8; 6], i: usize, len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5]);
    f.extend_from_slice(&(i as u64).to_be_bytes());
    f.resize(len, 0x5a);
    f
}

/// The optional pcap file.
struct Pcap(Option<PcapWriter<std::fs::File>>);

impl Pcap {
    fn new(path: Option<&str>) -> Self {
        Self(path.map(|p| {
            let f = std::fs::File::create(p).unwrap_or_else(|e| panic!("{p}: {e}"));
            PcapWriter::new(f).unwrap_or_else(|e| panic!("{p}: {e}"))
        }))
    }

    fn write(&mut self, frame: &[u8]) {
        if let Some(w) = &mut self.0 {
            let _ = w.write(frame);
        }
    }
}

fn progress(label: &str, done: usize, total: usize) {
    if total >= 10_000 && (done.is_multiple_of((total / 50).max(1)) || done == total) {
        let w = 40 * done / total;
        eprint!(
            "\r  {label:<4} [{}{}] {done}/{total}",
            "#".repeat(w),
            ".".repeat(40 - w)
        );
        if done == total {
            eprintln!();
        }
        let _ = std::io::stderr().flush();
    }
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn print_caps(c: &Capabilities) {
    println!("capabilities the driver declares to NetAdapterCx:");
    println!(
        "  confidential mode {}",
        if c.confidential {
            "on (TX copied into shared buffers)"
        } else {
            "off"
        }
    );
    println!(
        "  MTU {}  address {:02x?}  link speed {} Gbit/s",
        c.mtu,
        c.current_address,
        c.link_speed / 1_000_000_000
    );
    println!(
        "  TX checksum ipv4/tcp/udp {}/{}/{}  RX checksum ipv4/tcp/udp {}/{}/{}{}",
        c.tx_checksum.ipv4,
        c.tx_checksum.tcp,
        c.tx_checksum.udp,
        c.rx_checksum.ipv4,
        c.rx_checksum.tcp,
        c.rx_checksum.udp,
        if c.rx_checksum_in_software {
            " (software)"
        } else {
            ""
        }
    );
    println!(
        "  LSO v4/v6 {}/{}  USO v4/v6 {}/{}  RSC v4/v6 {}/{}  802.1p/Q {}/{}",
        c.gso.lso_v4,
        c.gso.lso_v6,
        c.gso.uso_v4,
        c.gso.uso_v6,
        c.rsc_v4,
        c.rsc_v6,
        c.priority_tagging,
        c.vlan_tagging
    );
    println!(
        "  RX buffers {} × {} B, TX max fragments {}",
        c.rx_buffers, c.rx_buffer_size, c.tx_max_fragments
    );
}

/// The driver's trace events as the Windows driver writes them to its TraceLogging provider
/// (`driver/trace.rs`; WPA shows the same names and fields). The per-queue counters event is
/// recorded here at the end of the run, as the driver writes it about once a second.
fn print_events(
    adapter: &mut virtionet::adapter::Adapter<impl virtio::hal::Bars>,
    tx: &TxStats,
    rx: &RxStats,
) {
    adapter.record(Event::QueueCounters {
        pair: 0,
        tx: *tx,
        rx: *rx,
    });
    let mut events = Vec::new();
    adapter.drain_events(&mut events);
    println!(
        "trace events (provider {}):",
        virtionet::trace::PROVIDER_NAME
    );
    for e in &events {
        let line = match e {
            Event::BringUp {
                offered,
                negotiated,
                queue_pairs,
                max_queue_pairs,
                msix,
            } => format!(
                "BringUp OfferedFeatures={offered:#x} NegotiatedFeatures={negotiated:#x} \
                 QueuePairs={queue_pairs} MaxQueuePairs={max_queue_pairs} MsiX={msix}"
            ),
            Event::Capabilities(c) => format!(
                "Capabilities Mtu={} LinkSpeed={} RxBufferSize={} RxBuffers={} TxBuffers={}",
                c.mtu, c.link_speed, c.rx_buffer_size, c.rx_buffers, c.tx_buffers
            ),
            Event::LinkChanged { up } => format!("LinkChanged Up={up}"),
            Event::DeviceReset => "DeviceReset".to_string(),
            Event::Restored { ok } => format!("Restored Ok={ok}"),
            Event::ControlTimeout { ticks } => format!("ControlTimeout Ticks={ticks}"),
            Event::ControlCommandsFailed { count } => {
                format!("ControlCommandsFailed Count={count}")
            }
            Event::QueueFault { pair, transmit } => {
                format!("QueueFault Pair={pair} Transmit={transmit}")
            }
            Event::SurpriseRemoved => "SurpriseRemoved".to_string(),
            Event::Quiesced { reset } => format!("Quiesced Reset={reset}"),
            Event::QueueCounters { pair, tx, rx } => format!(
                "QueueCounters Pair={pair} TxFrames={} TxBytes={} RxFrames={} RxBytes={} \
                 RxCoalesced={} RxChecksumsCompleted={} DeviceFaults={}",
                tx.sent.frames(),
                tx.sent.bytes(),
                rx.received.frames(),
                rx.received.bytes(),
                rx.coalesced_packets,
                rx.checksums_completed,
                tx.device_faults + rx.device_faults
            ),
        };
        println!("  {line}");
    }
    if adapter.events_dropped() > 0 {
        println!(
            "  ({} events dropped: the log was full)",
            adapter.events_dropped()
        );
    }
}

fn print_features(f: Features) {
    let names: Vec<&str> = f.iter_names().map(|(n, _)| n).collect();
    println!("negotiated features ({:#x}): {}", f.bits(), names.join(" "));
}

fn print_stats(tx: &TxStats, rx: &RxStats) {
    println!("queue 0 counters:");
    println!(
        "  TX frames {} bytes {} (unicast {} multicast {} broadcast {}) kicks {} (after a stall {}) padded {} vlan-tagged {}",
        tx.sent.frames(),
        tx.sent.bytes(),
        tx.sent.unicast_frames,
        tx.sent.multicast_frames,
        tx.sent.broadcast_frames,
        tx.kicks,
        tx.stall_kicks,
        tx.padded,
        tx.vlan_tagged
    );
    println!(
        "  TX errors: bad packets {} offload {} unsegmentable {} device faults {} ignored {}",
        tx.bad_packets, tx.offload_errors, tx.unsegmentable, tx.device_faults, tx.ignored
    );
    println!(
        "  RX frames {} bytes {} (unicast {} multicast {} broadcast {}) coalesced {} checksums completed {} vlan-stripped {}",
        rx.received.frames(),
        rx.received.bytes(),
        rx.received.unicast_frames,
        rx.received.multicast_frames,
        rx.received.broadcast_frames,
        rx.coalesced_packets,
        rx.checksums_completed,
        rx.vlan_stripped
    );
    println!(
        "  RX errors: runts {} checksum {} bad checksum offsets {} filtered {} device faults {} bad returns {}; OS ring exhausted {} times; kicks after a stall {}",
        rx.runts,
        rx.checksum_errors,
        rx.checksum_offsets_bad,
        rx.filtered,
        rx.device_faults,
        rx.bad_returns,
        rx.os_ring_exhausted,
        rx.stall_kicks
    );
}

fn run_qemu(a: &Args) -> Result<(), String> {
    let opts = QemuOptions {
        accel: a.accel,
        device_props: a.props.clone(),
        mac: MAC,
        ..Default::default()
    };
    let user = UserSettings {
        jumbo_packet: (a.size as u32).max(1514),
        confidential_mode: a.confidential,
        ..Default::default()
    };
    let mut pcap = Pcap::new(a.pcap.as_deref());
    let (mut tx_fps, mut rx_fps) = (Vec::new(), Vec::new());
    let mut lat_tx: Vec<Duration> = Vec::new();
    let mut lat_rx: Vec<Duration> = Vec::new();
    let mut last = None;
    for run in 0..a.runs {
        let mut m = QemuMachine::start(&opts, &user, false, run as u64)?;
        if run == 0 {
            let v = std::process::Command::new("qemu-system-x86_64")
                .arg("--version")
                .output()
                .map(|o| {
                    String::from_utf8_lossy(&o.stdout)
                        .lines()
                        .next()
                        .unwrap_or("")
                        .to_string()
                })
                .unwrap_or_default();
            println!(
                "device: QEMU virtio-net-pci ({v}), accel {:?}, props '{}'",
                m.qemu.accel, a.props
            );
            println!(
                "bring-up: {} qtest commands, {:.1} ms (QEMU start included)",
                m.bring_up_commands,
                m.bring_up_time.as_secs_f64() * 1e3
            );
            print_features(m.adapter.features());
            print_caps(m.adapter.capabilities());
            println!("link {}", if m.adapter.link_up() { "up" } else { "down" });
        }
        // TX throughput.
        let mut pending: Vec<TxFrame> = (0..a.frames)
            .map(|i| TxFrame {
                bytes: frame([2, 0, 0, 0, 0, 0x42], i, a.size),
                ..Default::default()
            })
            .collect();
        let mut got = Vec::new();
        let t = Instant::now();
        let deadline = t + Duration::from_secs(300);
        while got.len() < a.frames && Instant::now() < deadline {
            m.pump(&mut pending)?;
            let before = got.len();
            m.host_receive(&mut got);
            if run == 0 {
                for f in &got[before..] {
                    pcap.write(f);
                }
                progress("TX", got.len(), a.frames);
            }
        }
        let dt = t.elapsed().as_secs_f64();
        if got.len() < a.frames {
            return Err(format!(
                "TX: only {} of {} frames reached the host",
                got.len(),
                a.frames
            ));
        }
        tx_fps.push(a.frames as f64 / dt);
        // RX throughput.
        let before = m.os_rx.frames.len();
        let t = Instant::now();
        let mut k = 0;
        while m.os_rx.frames.len() - before < a.frames && Instant::now() < deadline {
            for _ in 0..32 {
                if k < a.frames {
                    let f = frame(MAC, k, a.size);
                    if run == 0 {
                        pcap.write(&f);
                    }
                    if !m.host_send(&f, deadline) {
                        return Err("RX: host could not send".into());
                    }
                    k += 1;
                }
            }
            m.pump(&mut Vec::new())?;
            m.os_rx.frames.clear();
            if run == 0 && k % 32 == 0 {
                progress("RX", k, a.frames);
            }
            if m.rx.stats().received.frames() as usize >= a.frames {
                break;
            }
        }
        let dt = t.elapsed().as_secs_f64();
        rx_fps.push(m.rx.stats().received.frames() as f64 / dt);
        // Latency: one frame at a time.
        for i in 0..a.latency {
            let mut one = vec![TxFrame {
                bytes: frame([2, 0, 0, 0, 0, 0x42], i, 64),
                ..Default::default()
            }];
            let t = Instant::now();
            let mut got = Vec::new();
            while got.is_empty() && t.elapsed() < Duration::from_secs(5) {
                m.pump(&mut one)?;
                m.host_receive(&mut got);
            }
            lat_tx.push(t.elapsed());
            let n0 = m.rx.stats().received.frames();
            let t = Instant::now();
            m.host_send(&frame(MAC, i, 64), t + Duration::from_secs(5));
            while m.rx.stats().received.frames() == n0 && t.elapsed() < Duration::from_secs(5) {
                m.pump(&mut Vec::new())?;
            }
            lat_rx.push(t.elapsed());
            m.os_rx.frames.clear();
        }
        last = Some((*m.tx.stats(), *m.rx.stats()));
        if run + 1 == a.runs {
            let (tx, rx) = (*m.tx.stats(), *m.rx.stats());
            print_events(&mut m.adapter, &tx, &rx);
        }
    }
    let bits = (a.size * 8) as f64;
    let (mut t, mut r) = (tx_fps.clone(), rx_fps.clone());
    let (tm, rm) = (median(&mut t), median(&mut r));
    println!(
        "throughput ({} frames of {} B each way, median of {} runs):",
        a.frames, a.size, a.runs
    );
    println!(
        "  TX {:>10.0} frames/s  {:>7.3} Gbit/s   (runs: {:?})",
        tm,
        tm * bits / 1e9,
        tx_fps.iter().map(|v| *v as u64).collect::<Vec<_>>()
    );
    println!(
        "  RX {:>10.0} frames/s  {:>7.3} Gbit/s   (runs: {:?})",
        rm,
        rm * bits / 1e9,
        rx_fps.iter().map(|v| *v as u64).collect::<Vec<_>>()
    );
    for (name, v) in [("TX", &mut lat_tx), ("RX", &mut lat_rx)] {
        v.sort();
        if !v.is_empty() {
            println!(
                "  {name} latency (64 B, one at a time): p50 {:?} p90 {:?} p99 {:?} max {:?}",
                percentile(v, 0.5),
                percentile(v, 0.9),
                percentile(v, 0.99),
                v[v.len() - 1]
            );
        }
    }
    if let Some((tx, rx)) = last {
        print_stats(&tx, &rx);
    }
    if let Some(p) = &a.pcap {
        println!("pcap written to {p}");
    }
    Ok(())
}

/// TCP with the Linux kernel through QEMU's tap (`vnet_hdr=on`) in a namespace this run creates:
/// guest→kernel streams in 64 KiB LSO packets, kernel→guest streams arriving as RSC packets.
fn run_tap(a: &Args) -> Result<(), String> {
    use vnet_harness::netns::{NetNs, addr, serve_tcp, setup_tap};
    use vnet_harness::tcp::{Ip, TcpFlow};
    let ns = NetNs::new(&format!("vlab{}", std::process::id() % 100_000))
        .map_err(|e| format!("network namespace (root needed): {e}"))?;
    let tap_mac = setup_tap(&ns, "vtap0", MAC)?;
    let opts = QemuOptions {
        accel: a.accel,
        device_props: a.props.clone(),
        mac: MAC,
        tap: Some(("vtap0".into(), ns.name.clone())),
        ..Default::default()
    };
    // MSI-X, so that the device's interrupts can be counted (one RAM word per vector).
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), true, 1)?;
    m.count_interrupts = true;
    println!(
        "device: QEMU virtio-net-pci with a vnet_hdr tap in namespace {}, accel {:?}, props '{}'",
        ns.name, m.qemu.accel, a.props
    );
    print_features(m.adapter.features());
    print_caps(m.adapter.capabilities());
    if a.pcap.is_some() {
        println!(
            "(--pcap is not supported with --peer tap; capture on vtap0 inside the namespace)"
        );
    }
    let len = a.mib << 20;
    let mut rng = vnet_harness::rng::Rng::new(3);
    let data: Vec<u8> = (0..len).map(|_| rng.next_u64() as u8).collect();
    let (mut tx_gbps, mut rx_gbps) = (Vec::new(), Vec::new());
    let (mut tx_pkts, mut rx_pkts) = (0u64, 0u64);
    // Kicks and interrupts per stream direction, summed over the runs.
    let mut notes = [Notifications::default(); 2];
    let timeout = Duration::from_secs(120);
    for run in 0..a.runs {
        let port = 6000 + run as u16 * 2;
        // Guest → kernel.
        let at = std::net::SocketAddr::from((addr::HOST4, port));
        let (h, ready) = serve_tcp(&ns, at, None);
        ready
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut flow = TcpFlow::new(
            MAC,
            tap_mac,
            Ip::V4(addr::GUEST4, addr::HOST4),
            41_000 + port,
            port,
        );
        let sent0 = m.tx.stats().sent.frames();
        let before = Notifications::of(&m);
        let t = Instant::now();
        flow.send_stream(&mut m, &data, 1448, timeout)?;
        notes[0].add(Notifications::of(&m).since(&before));
        let dt = t.elapsed().as_secs_f64();
        let got = h.join().map_err(|_| "sink thread")??;
        if got != data {
            return Err(format!("TX run {run}: the kernel received different bytes"));
        }
        tx_gbps.push(len as f64 * 8.0 / dt / 1e9);
        tx_pkts = m.tx.stats().sent.frames() - sent0;
        // Kernel → guest.
        let at = std::net::SocketAddr::from((addr::HOST4, port + 1));
        let (h, ready) = serve_tcp(&ns, at, Some(data.clone()));
        ready
            .recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?;
        let mut flow = TcpFlow::new(
            MAC,
            tap_mac,
            Ip::V4(addr::GUEST4, addr::HOST4),
            42_000 + port,
            port + 1,
        );
        let before = Notifications::of(&m);
        let t = Instant::now();
        let r = flow.recv_stream(&mut m, timeout)?;
        notes[1].add(Notifications::of(&m).since(&before));
        let dt = t.elapsed().as_secs_f64();
        h.join().map_err(|_| "source thread")??;
        if r.data != data || r.bad_checksums != 0 {
            return Err(format!(
                "RX run {run}: the guest received different bytes or bad checksums"
            ));
        }
        rx_gbps.push(len as f64 * 8.0 / dt / 1e9);
        rx_pkts = r.frames;
        eprintln!(
            "  run {}/{}: guest→kernel {:.2} Gbit/s, kernel→guest {:.2} Gbit/s",
            run + 1,
            a.runs,
            tx_gbps[run],
            rx_gbps[run]
        );
    }
    let (mut t, mut r) = (tx_gbps.clone(), rx_gbps.clone());
    println!(
        "TCP goodput with the Linux kernel ({} MiB per stream, IPv4, median of {} runs):",
        a.mib, a.runs
    );
    let fmt = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.2}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    println!(
        "  guest→kernel (LSO) {:>6.2} Gbit/s  ({} LSO packets per stream; runs: {})",
        median(&mut t),
        tx_pkts,
        fmt(&tx_gbps)
    );
    println!(
        "  kernel→guest (RSC) {:>6.2} Gbit/s  ({} packets indicated per stream; runs: {})",
        median(&mut r),
        rx_pkts,
        fmt(&rx_gbps)
    );
    let mib = (a.mib * a.runs) as f64;
    println!(
        "notifications per MiB (kicks: driver to device, stall kicks among them; interrupts: \
         polls that found the queue's MSI-X vector fired, the harness polls without arming):"
    );
    for (name, n) in [("guest→kernel", &notes[0]), ("kernel→guest", &notes[1])] {
        println!(
            "  {name}: TX kicks {:.2} (stall {:.2}), RX kicks {:.2} (stall {:.2}), \
             TX interrupts {:.2}, RX interrupts {:.2}",
            n.tx_kicks as f64 / mib,
            n.tx_stall_kicks as f64 / mib,
            n.rx_kicks as f64 / mib,
            n.rx_stall_kicks as f64 / mib,
            n.tx_interrupts as f64 / mib,
            n.rx_interrupts as f64 / mib
        );
    }
    print_stats(m.tx.stats(), m.rx.stats());
    let (tx, rx) = (*m.tx.stats(), *m.rx.stats());
    print_events(&mut m.adapter, &tx, &rx);
    Ok(())
}

/// Kicks and interrupts of queue pair 0 (counters, or a difference of two readings).
#[derive(Debug, Clone, Copy, Default)]
struct Notifications {
    tx_kicks: u64,
    tx_stall_kicks: u64,
    rx_kicks: u64,
    rx_stall_kicks: u64,
    tx_interrupts: u64,
    rx_interrupts: u64,
}

impl Notifications {
    fn of(m: &QemuMachine) -> Self {
        let (tx, rx) = (m.tx.stats(), m.rx.stats());
        Self {
            tx_kicks: tx.kicks,
            tx_stall_kicks: tx.stall_kicks,
            rx_kicks: rx.kicks,
            rx_stall_kicks: rx.stall_kicks,
            rx_interrupts: m.interrupts[0],
            tx_interrupts: m.interrupts[1],
        }
    }

    fn since(&self, b: &Self) -> Self {
        Self {
            tx_kicks: self.tx_kicks - b.tx_kicks,
            tx_stall_kicks: self.tx_stall_kicks - b.tx_stall_kicks,
            rx_kicks: self.rx_kicks - b.rx_kicks,
            rx_stall_kicks: self.rx_stall_kicks - b.rx_stall_kicks,
            tx_interrupts: self.tx_interrupts - b.tx_interrupts,
            rx_interrupts: self.rx_interrupts - b.rx_interrupts,
        }
    }

    fn add(&mut self, d: Self) {
        self.tx_kicks += d.tx_kicks;
        self.tx_stall_kicks += d.tx_stall_kicks;
        self.rx_kicks += d.rx_kicks;
        self.rx_stall_kicks += d.rx_stall_kicks;
        self.tx_interrupts += d.tx_interrupts;
        self.rx_interrupts += d.rx_interrupts;
    }
}

fn run_inproc(a: &Args) -> Result<(), String> {
    let user = UserSettings {
        jumbo_packet: (a.size as u32).max(1514),
        confidential_mode: a.confidential,
        ..Default::default()
    };
    let mut m = sim::machine(DEFAULT_FEATURES, Backend::Loopback, &user, 1);
    if a.pcap.is_some() {
        m.dev.record_pcap();
    }
    println!("device: in-process virtio-net (rust-vmm virtio-queue), loopback");
    print_features(m.adapter.features());
    print_caps(m.adapter.capabilities());
    let mut pending: Vec<TxFrame> = (0..a.frames)
        .map(|i| TxFrame {
            bytes: frame(MAC, i, a.size),
            ..Default::default()
        })
        .collect();
    let t = Instant::now();
    while (m.rx.stats().received.frames() as usize) < a.frames
        && t.elapsed() < Duration::from_secs(300)
    {
        m.round(&mut pending)?;
        progress("LOOP", m.rx.stats().received.frames() as usize, a.frames);
        m.os_rx.frames.clear();
    }
    let dt = t.elapsed().as_secs_f64();
    let fps = a.frames as f64 / dt;
    println!(
        "loopback: {:.0} frames/s  {:.3} Gbit/s ({} frames of {} B)",
        fps,
        fps * (a.size * 8) as f64 / 1e9,
        a.frames,
        a.size
    );
    print_stats(m.tx.stats(), m.rx.stats());
    if let (Some(p), Some(bytes)) = (&a.pcap, m.dev.pcap()) {
        std::fs::write(p, bytes).map_err(|e| e.to_string())?;
        println!("pcap written to {p}");
    }
    Ok(())
}

pub fn main() {
    let a = parse();
    let r = match a.peer.as_str() {
        "qemu" => run_qemu(&a),
        "inproc" => run_inproc(&a),
        "tap" => run_tap(&a),
        _ => usage(),
    };
    if let Err(e) = r {
        eprintln!("vnet-lab: {e}");
        std::process::exit(1);
    }
}
