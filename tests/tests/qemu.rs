//! The driver core against QEMU's real virtio-net-pci (Debian's qemu-system-x86, installed by the
//! test command). These tests fail — they do not skip — when QEMU cannot start.

use std::time::{Duration, Instant};

use virtio::Features;
use virtionet::config::UserSettings;
use virtionet::events::Event;
use vnet_harness::lab::QemuMachine;
use vnet_harness::os_tx::TxFrame;
use vnet_harness::qemu::QemuOptions;
use vnet_harness::rng::Rng;

const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

fn frame(dst: [u8; 6], i: usize, len: usize) -> Vec<u8> {
    let mut f = dst.to_vec();
    f.extend_from_slice(&[0x02, 0, 0, 0, 0, 0x42, 0x88, 0xb5]);
    f.extend((0..len - 14).map(|k| (k ^ i) as u8));
    f
}

/// Sends `n` frames each way and checks them byte for byte, in order, with counters that agree.
fn traffic(props: &str, msix: bool, n: usize, max_len: usize, user: &UserSettings) -> QemuMachine {
    let opts = QemuOptions {
        device_props: props.into(),
        ..Default::default()
    };
    let mut m =
        QemuMachine::start(&opts, user, msix, 1).unwrap_or_else(|e| panic!("QEMU ({props}): {e}"));
    let mut rng = Rng::new(7);
    // TX: the OS sends, the host socket receives.
    let sent: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            frame(
                [0x02, 0, 0, 0, 0, 0x42],
                i,
                60 + rng.below((max_len - 60) as u64) as usize,
            )
        })
        .collect();
    let mut pending: Vec<TxFrame> = sent
        .iter()
        .map(|f| TxFrame {
            bytes: f.clone(),
            split: vec![1 + rng.below(100) as usize],
            ..Default::default()
        })
        .collect();
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while got.len() < n && Instant::now() < deadline {
        m.pump(&mut pending).unwrap();
        m.host_receive(&mut got);
    }
    assert_eq!(got.len(), n, "{props}: frames at the host");
    for (i, (g, s)) in got.iter().zip(&sent).enumerate() {
        assert_eq!(g, s, "{props}: TX frame {i}");
    }
    while !m.os_tx.outstanding.is_empty() && Instant::now() < deadline {
        m.pump(&mut pending).unwrap();
    }
    assert!(
        m.os_tx.outstanding.is_empty(),
        "{props}: every TX packet completed"
    );
    assert_eq!(m.tx.stats().sent.frames(), n as u64);
    // RX: the host sends, the OS receives.
    let incoming: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            frame(
                MAC,
                i + 1000,
                60 + rng.below((max_len - 60) as u64) as usize,
            )
        })
        .collect();
    let mut k = 0;
    while m.os_rx.frames.len() < n && Instant::now() < deadline {
        for _ in 0..8 {
            if k < n {
                assert!(m.host_send(&incoming[k], deadline), "{props}: host send");
                k += 1;
            }
        }
        m.pump(&mut Vec::new()).unwrap();
    }
    assert_eq!(m.os_rx.frames.len(), n, "{props}: frames indicated");
    for (i, (g, s)) in m.os_rx.frames.iter().zip(&incoming).enumerate() {
        assert_eq!(&g.bytes, s, "{props}: RX frame {i}");
    }
    assert_eq!(m.rx.stats().received.frames(), n as u64);
    assert_eq!(m.rx.stats().device_faults + m.tx.stats().device_faults, 0);
    m
}

#[test]
fn default_device() {
    let m = traffic("", false, 2000, 1514, &UserSettings::default());
    let f = m.adapter.features();
    eprintln!(
        "QEMU pid {} accel {:?}: features {:#x}, bring-up {} qtest commands in {:?}, TX kicks {}",
        m.qemu.pid(),
        m.qemu.accel,
        f.bits(),
        m.bring_up_commands,
        m.bring_up_time,
        m.tx.stats().kicks
    );
    assert!(f.contains(
        Features::VERSION_1
            | Features::NET_MAC
            | Features::NET_MRG_RXBUF
            | Features::RING_EVENT_IDX
    ));
    assert_eq!(m.adapter.capabilities().current_address, MAC);
    assert!(m.adapter.link_up());
}

#[test]
fn mergeable_buffers_off() {
    let m = traffic("mrg_rxbuf=off", false, 500, 1514, &UserSettings::default());
    assert!(!m.adapter.features().contains(Features::NET_MRG_RXBUF));
}

#[test]
fn packed_ring() {
    let m = traffic("packed=on", false, 500, 1514, &UserSettings::default());
    assert!(m.adapter.features().contains(Features::RING_PACKED));
}

#[test]
fn indirect_descriptors_off_and_event_idx_off() {
    let m = traffic(
        "indirect_desc=off,event_idx=off",
        false,
        500,
        1514,
        &UserSettings::default(),
    );
    assert!(
        !m.adapter
            .features()
            .intersects(Features::RING_INDIRECT_DESC | Features::RING_EVENT_IDX)
    );
}

#[test]
fn jumbo_frames_with_host_mtu_9000() {
    let user = UserSettings {
        jumbo_packet: 9014,
        ..Default::default()
    };
    let m = traffic("host_mtu=9000", false, 300, 9014, &user);
    assert_eq!(m.adapter.capabilities().mtu, 9000);
}

/// Confidential mode forced on by the keyword (issue 16): every frame is copied into the TX
/// engine's shared buffers, and still crosses to the host byte for byte, both ways.
#[test]
fn confidential_mode_forced_on_by_the_keyword() {
    let user = UserSettings {
        confidential_mode: virtionet::config::ConfidentialMode::On,
        ..Default::default()
    };
    let m = traffic("", false, 1000, 1514, &user);
    assert!(!m.adapter.features().contains(Features::ACCESS_PLATFORM));
    assert!(m.adapter.capabilities().confidential);
    assert!(m.tx.is_confidential());
    assert_eq!(m.tx.bounce_stats().copied, 1000, "every frame copied");
    // RX: every frame the OS received (byte for byte, checked by `traffic`) was copied out of
    // the shared buffer into private memory first.
    assert_eq!(m.rx.stats().bounced, 1000, "every received frame bounced");
    assert_eq!(
        m.rx.buffer_counts().with_os,
        0,
        "no shared buffer with the OS"
    );
}

/// QEMU's `iommu_platform=on` offers VIRTIO_F_ACCESS_PLATFORM: the driver accepts it, and in
/// the default `ConfidentialMode` (Auto) the datapath runs confidential — over the real device.
#[test]
fn access_platform_turns_confidential_mode_on() {
    let m = traffic(
        "iommu_platform=on",
        false,
        500,
        1514,
        &UserSettings::default(),
    );
    assert!(m.adapter.features().contains(Features::ACCESS_PLATFORM));
    assert!(m.tx.is_confidential());
    assert_eq!(m.tx.bounce_stats().copied, 500);
    assert_eq!(m.rx.stats().bounced, 500, "every received frame bounced");
}

#[test]
fn msix_vectors_fire_into_guest_ram() {
    let mut m = traffic("", true, 200, 1514, &UserSettings::default());
    // Arm RX, deliver a frame, and see the RX vector (queue 0 → vector 1) write its word.
    m.take_msix(1);
    let gate = virtionet::notify::NotifyGate::new();
    assert!(!m.rx.arm(&gate), "nothing completed yet");
    let deadline = Instant::now() + Duration::from_secs(10);
    assert!(m.host_send(&frame(MAC, 1, 100), deadline));
    let mut fired = false;
    while !fired && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(1));
        fired = m.take_msix(1);
    }
    assert!(fired, "RX MSI-X message written to guest RAM");
    assert!(gate.fire(), "the gate reports the wake-up once");
    assert!(!gate.fire());
}

#[test]
fn link_down_and_up_through_qmp() {
    let opts = QemuOptions::default();
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), false, 2).unwrap();
    assert!(m.adapter.features().contains(Features::NET_STATUS));
    let r = m
        .qemu
        .qmp(r#"{"execute":"set_link","arguments":{"name":"n0","up":false}}"#)
        .unwrap();
    assert!(r.contains("return"), "{r}");
    assert_eq!(m.adapter.config_changed().unwrap(), Some(false));
    m.qemu
        .qmp(r#"{"execute":"set_link","arguments":{"name":"n0","up":true}}"#)
        .unwrap();
    assert_eq!(m.adapter.config_changed().unwrap(), Some(true));
    let _ = m.pump(&mut Vec::new());
    let mut ev = Vec::new();
    m.adapter.drain_events(&mut ev);
    assert!(
        matches!(ev[0], Event::BringUp { offered, negotiated, .. }
            if negotiated == m.adapter.features().bits() && offered & negotiated == negotiated),
        "{:?}",
        ev[0]
    );
    assert_eq!(
        ev[2..],
        [
            Event::LinkChanged { up: false },
            Event::LinkChanged { up: true }
        ]
    );
}

#[test]
fn qemu_killed_during_traffic_gives_a_clean_error() {
    let opts = QemuOptions::default();
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), false, 3).unwrap();
    let mut pending: Vec<TxFrame> = (0..100)
        .map(|i| TxFrame {
            bytes: frame([2, 0, 0, 0, 0, 0x42], i, 500),
            ..Default::default()
        })
        .collect();
    m.pump(&mut pending).unwrap();
    let pid = m.qemu.pid();
    // SAFETY: sending SIGKILL to the QEMU this test started.
    unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    std::thread::sleep(Duration::from_millis(100));
    let t = Instant::now();
    let mut err = None;
    for _ in 0..20 {
        if let Err(e) = m.pump(&mut pending) {
            err = Some(e);
            break;
        }
    }
    assert!(err.is_some(), "the dead device is noticed");
    assert!(t.elapsed() < Duration::from_secs(5), "no hang");
}

#[test]
fn device_reset_during_traffic_recovers() {
    let opts = QemuOptions::default();
    let mut m = QemuMachine::start(&opts, &UserSettings::default(), false, 4).unwrap();
    let mut pending: Vec<TxFrame> = (0..300)
        .map(|i| TxFrame {
            bytes: frame([2, 0, 0, 0, 0, 0x42], i, 700),
            ..Default::default()
        })
        .collect();
    let mut got = Vec::new();
    for _ in 0..3 {
        m.pump(&mut pending).unwrap();
        m.host_receive(&mut got);
    }
    // Reset the device with packets in flight (as on D0 exit/entry or NEEDS_RESET), restore.
    let plan = virtionet::adapter::BringUp {
        reset_polls: 1000,
        max_queue_size: 256,
        queue_pairs: 1,
        msix_messages: 0,
        random_mac: [2, 0, 0, 0, 0, 1],
        pairs_need_rss: false,
    };
    m.adapter.reset_device(&plan).expect("reset");
    m.tx.abandon_in_flight();
    m.rx.abandon_in_flight();
    let queues = [(0u16, m.rx.virtqueue()), (1u16, m.tx.virtqueue())];
    m.adapter
        .restore(&plan, &queues)
        .expect("restore after reset");
    assert_eq!(m.adapter.transport().status(), 15, "DRIVER_OK again");
    let mut ev = Vec::new();
    m.adapter.drain_events(&mut ev);
    assert_eq!(
        ev[ev.len() - 2..],
        [Event::DeviceReset, Event::Restored { ok: true }]
    );
    // Everything posted after the reset arrives; every packet is returned to the OS once.
    let after: Vec<Vec<u8>> = (0..200)
        .map(|i| frame([2, 0, 0, 0, 0, 0x43], i, 900))
        .collect();
    pending.extend(after.iter().map(|f| TxFrame {
        bytes: f.clone(),
        ..Default::default()
    }));
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen_after = Vec::new();
    while seen_after.len() < after.len() && Instant::now() < deadline {
        m.pump(&mut pending).unwrap();
        let mut g = Vec::new();
        m.host_receive(&mut g);
        seen_after.extend(g.into_iter().filter(|f| f[5] == 0x43));
    }
    assert_eq!(
        seen_after, after,
        "frames after the reset, in order and intact"
    );
    while !m.os_tx.outstanding.is_empty() && Instant::now() < deadline {
        m.pump(&mut pending).unwrap();
    }
    assert!(m.os_tx.outstanding.is_empty());
    // Receive works after the reset too.
    let f = frame(MAC, 9, 300);
    assert!(m.host_send(&f, deadline));
    while m.os_rx.frames.iter().all(|g| g.bytes != f) && Instant::now() < deadline {
        m.pump(&mut Vec::new()).unwrap();
    }
    assert!(m.os_rx.frames.iter().any(|g| g.bytes == f));
}
