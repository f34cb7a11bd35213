//! Bring-up against a device that lies: values in or at the edge of the spec's ranges that the
//! driver's arithmetic must survive (issue 16), through `Adapter::start` and `restore` over the
//! virtio-pci register model, which records every queue the driver enables.

use virtio::Features;
use virtionet::adapter::{Adapter, BringUp};
use virtionet::config::UserSettings;
use vnet_harness::dma::GuestRam;
use vnet_harness::pci_model::VirtioPciModel;

const PLAN: BringUp = BringUp {
    reset_polls: 10,
    max_queue_size: 64,
    queue_pairs: 4,
    msix_messages: 0,
    random_mac: [2, 0, 0, 0, 0, 7],
    pairs_need_rss: false,
};

fn net_config(pairs: u16) -> Vec<u8> {
    let mut c = vec![0u8; 24];
    c[0..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    c[6..8].copy_from_slice(&1u16.to_le_bytes());
    c[8..10].copy_from_slice(&pairs.to_le_bytes());
    c[10..12].copy_from_slice(&1500u16.to_le_bytes());
    c
}

fn assert_no_queue_twice(m: &VirtioPciModel) {
    let enabled = m.with(|s| s.enabled.clone());
    let mut seen = std::collections::HashSet::new();
    for q in &enabled {
        assert!(
            seen.insert(*q),
            "queue {q} programmed twice since the last reset: {enabled:?}"
        );
    }
}

#[test]
fn max_virtqueue_pairs_0x8000_does_not_overflow_the_control_queue_index() {
    // 0x8000 is the largest value the spec allows; the control queue would be queue 0x10000,
    // which no u16 queue_select can name.
    let features = Features::VERSION_1
        | Features::NET_MAC
        | Features::NET_STATUS
        | Features::NET_MQ
        | Features::NET_CTRL_VQ;
    let m = VirtioPciModel::new(features.bits(), 9, 256, 0, net_config(0x8000));
    let ram = GuestRam::new(16 << 20);
    let a = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &PLAN)
        .expect("the device is usable without multi-queue");
    assert_no_queue_twice(&m);
    assert_eq!(a.queue_pairs(), 1);
    assert!(
        !a.features()
            .intersects(Features::NET_MQ | Features::NET_RSS),
        "multi-queue is refused: its control queue cannot be addressed"
    );
    assert!(a.features().contains(Features::NET_CTRL_VQ));
    // The control queue is queue 2 (after the one pair), not queue 0 wrapped around.
    assert_eq!(m.with(|s| s.enabled.clone()), vec![0, 1, 2]);
    let desc0 = m.with(|s| s.queues[0].desc);
    let desc2 = m.with(|s| s.queues[2].desc);
    assert_ne!(desc0, desc2);
    a.stop(ram.arena(), 10).unwrap();
    assert_eq!(ram.arena().outstanding(), 0, "every DMA region freed");
}

#[test]
fn the_largest_addressable_pair_count_still_works() {
    // 0x7fff pairs put the control queue at 0xfffe: addressable, so MQ is kept.
    let features =
        Features::VERSION_1 | Features::NET_MAC | Features::NET_MQ | Features::NET_CTRL_VQ;
    let m = VirtioPciModel::new(features.bits(), 0xffff, 256, 16, net_config(0x7fff));
    // All queues share one notify address (the notify area holds 1024 of them).
    m.with(|s| s.queues.iter_mut().for_each(|q| q.notify_off = 0));
    let ram = GuestRam::new(16 << 20);
    let plan = BringUp {
        msix_messages: 16,
        ..PLAN
    };
    let a = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &plan).unwrap();
    assert_no_queue_twice(&m);
    assert!(a.features().contains(Features::NET_MQ));
    assert_eq!(a.queue_pairs(), 4);
    assert_eq!(
        m.with(|s| s.enabled.clone()),
        vec![0, 1, 2, 3, 4, 5, 6, 7, 0xfffe]
    );
    a.stop(ram.arena(), 10).unwrap();
    assert_eq!(ram.arena().outstanding(), 0);
}

mod capabilities {
    use virtio::pci::{Capabilities, Transport, TransportError, cfg_type};
    use vnet_harness::pci_model::VirtioPciModel;

    fn model() -> VirtioPciModel {
        VirtioPciModel::new(
            super::Features::VERSION_1.bits(),
            3,
            256,
            4,
            super::net_config(1),
        )
    }

    /// Capability offsets in the model's config space: common 0x40, notify 0x50, ISR 0x64,
    /// device 0x74.
    fn set32(m: &VirtioPciModel, at: usize, v: u32) {
        m.with(|s| s.config_space[at..at + 4].copy_from_slice(&v.to_le_bytes()));
    }

    fn probe_refused(m: &VirtioPciModel, want: TransportError) {
        m.with(|s| s.record_accesses = true);
        let r = Transport::probe(m, m).map(|_| ());
        assert_eq!(r, Err(want));
        assert_eq!(
            m.with(|s| s.accesses.clone()),
            vec![],
            "refused before any register access"
        );
    }

    /// Puts a copy of the capability at `from` at `to`, linked after the last capability
    /// `last` (the model's is the MSI-X capability at 0x98), with its offset set to `offset`.
    fn append_copy(m: &VirtioPciModel, last: usize, from: usize, to: usize, offset: u32) {
        m.with(|s| {
            let len = usize::from(s.config_space[from + 2]);
            let cap: Vec<u8> = s.config_space[from..from + len].to_vec();
            s.config_space[to..to + len].copy_from_slice(&cap);
            s.config_space[to + 1] = 0;
            s.config_space[to + 8..to + 12].copy_from_slice(&offset.to_le_bytes());
            assert_eq!(
                s.config_space[last + 1],
                0,
                "{last:#x} is the last capability"
            );
            s.config_space[last + 1] = to as u8;
        });
    }

    #[test]
    fn an_unusable_capability_gives_way_to_a_later_one_of_its_type() {
        // §4.1.4: the driver should use the first instance of each structure type it can
        // support. The first notify capability has an odd multiplier, the first common one lies
        // outside its BAR; the copies after them, as the device laid them out, are used.
        let good = model();
        let want = Capabilities::read(&good, &&good).expect("the model's own layout");
        let m = model();
        let (notify_at, common_at) = (want.notify.offset as u32, want.common.offset as u32);
        append_copy(&m, 0x98, 0x50, 0xb0, notify_at);
        append_copy(&m, 0xb0, 0x40, 0xc8, common_at);
        set32(&m, 0x50 + 16, 3); // an odd notify_off_multiplier
        set32(&m, 0x40 + 8, 0x00ff_fff0);
        let caps = Capabilities::read(&m, &&m).expect("the later capabilities are usable");
        assert_eq!(caps.notify, want.notify);
        assert_eq!(caps.common, want.common);
        assert_eq!(caps.notify_off_multiplier, want.notify_off_multiplier);
        Transport::probe(&m, &m).expect("probe uses them");
        // Without the later copies the first reason is the error.
        let m = model();
        set32(&m, 0x50 + 16, 3);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::NOTIFY,
            },
        );
    }

    #[test]
    fn an_unaligned_common_configuration_is_refused_before_any_access() {
        let m = model();
        set32(&m, 0x40 + 8, 2);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::COMMON,
            },
        );
    }

    #[test]
    fn an_unaligned_device_configuration_is_refused() {
        let m = model();
        set32(&m, 0x74 + 8, 0x2001);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::DEVICE,
            },
        );
    }

    #[test]
    fn an_odd_notify_offset_or_multiplier_is_refused() {
        let m = model();
        set32(&m, 0x50 + 8, 0x3001);
        set32(&m, 0x50 + 12, 0x800);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::NOTIFY,
            },
        );
        let m = model();
        set32(&m, 0x50 + 16, 3);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::NOTIFY,
            },
        ); // Even, but no power of two (§4.1.4.4: 0 or an even power of two).
        let m = model();
        set32(&m, 0x50 + 16, 6);
        probe_refused(
            &m,
            TransportError::Misaligned {
                cfg_type: cfg_type::NOTIFY,
            },
        );
    }

    #[test]
    fn regions_too_short_for_their_registers_are_refused() {
        // An ISR region of 0 bytes, a notify region of 1: the registers would lie outside them.
        let m = model();
        set32(&m, 0x64 + 12, 0);
        probe_refused(
            &m,
            TransportError::RegionTooShort {
                cfg_type: cfg_type::ISR,
            },
        );
        let m = model();
        set32(&m, 0x50 + 12, 1);
        probe_refused(
            &m,
            TransportError::RegionTooShort {
                cfg_type: cfg_type::NOTIFY,
            },
        );
    }

    #[test]
    fn a_capability_running_past_config_space_is_refused() {
        // The last capability moved to 0xf8 with cap_len 16: its fields would be read at
        // 0x100..0x108, outside the 256 bytes of conventional config space.
        let m = model();
        m.with(|s| {
            let cap: Vec<u8> = s.config_space[0x98..0xa4].to_vec(); // the MSI-X capability
            s.config_space[0x98..0xa4].fill(0);
            s.config_space[0x85] = 0xf0;
            s.config_space[0xf0..0xfc].copy_from_slice(&cap);
            s.config_space[0xf1] = 0xf8;
            s.config_space[0xf8] = 0x09;
            s.config_space[0xf9] = 0;
            s.config_space[0xfa] = 16;
            s.config_space[0xfb] = cfg_type::DEVICE;
        });
        assert_eq!(
            Capabilities::read(&m, &&m),
            Err(TransportError::BadCapabilityList)
        );
    }
}

mod control_timeout {
    use super::*;
    use offload::filter::{PacketFilter, RxFilter};
    use virtionet::adapter::ControlProgress;

    /// A device that takes control commands and never completes them (nothing serves the
    /// register model's queues).
    fn silent_device() -> VirtioPciModel {
        let features = Features::VERSION_1
            | Features::NET_MAC
            | Features::NET_CTRL_VQ
            | Features::NET_CTRL_RX
            | Features::NET_CTRL_RX_EXTRA;
        VirtioPciModel::new(features.bits(), 3, 256, 0, net_config(1))
    }

    /// Ticks the control watchdog until the control queue is idle, at most `bound` times.
    fn tick_until_idle(
        a: &mut Adapter<&VirtioPciModel>,
        bound: u32,
    ) -> Option<(u32, ControlProgress)> {
        (1..=bound).find_map(|n| match a.control_tick() {
            ControlProgress::Pending => None,
            p => Some((n, p)),
        })
    }

    #[test]
    fn a_command_the_device_never_completes_times_out() {
        let m = silent_device();
        let ram = GuestRam::new(16 << 20);
        let mut a = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &PLAN).unwrap();
        let mac = [0x52, 0x54, 0, 0x12, 0x34, 0x56];
        let filter = RxFilter::new(
            mac,
            PacketFilter(PacketFilter::DIRECTED | PacketFilter::PROMISCUOUS),
        );
        let _ = a.set_receive_filter(&filter);
        // Interrupt-driven polls complete commands but do not age them: however many there
        // are, they are no measure of time.
        for _ in 0..10_000 {
            assert_eq!(a.poll_control(), ControlProgress::Pending);
        }
        assert!(!a.control_broken());
        let r = tick_until_idle(&mut a, 100_000);
        let Some((ticks, progress)) = r else {
            panic!("control queue still Pending after 100000 watchdog ticks of a silent device");
        };
        assert_eq!(
            ticks,
            virtionet::adapter::CONTROL_TIMEOUT_TICKS,
            "timed out after {ticks} ticks"
        );
        assert!(
            matches!(progress, ControlProgress::Idle { errors } if errors >= 1),
            "{progress:?}"
        );
        assert_eq!(a.control_timeouts(), 1, "counted once");
        assert!(
            a.control_broken(),
            "the command's buffer is still the device's"
        );
        assert!(!a.control_busy(), "nothing more will run until a reset");
        // Marked broken: nothing more reaches the device, and later polls return at once.
        let kicks = m.with(|s| s.kicks.len());
        let _ = a.set_receive_filter(&RxFilter::new(mac, PacketFilter(PacketFilter::DIRECTED)));
        assert!(matches!(a.poll_control(), ControlProgress::Idle { .. }));
        assert_eq!(m.with(|s| s.kicks.len()), kicks);
        let mut ev: Vec<virtionet::events::Event> = Vec::new();
        a.drain_events(&mut ev);
        assert!(
            ev.iter()
                .any(|e| matches!(e, virtionet::events::Event::ControlTimeout { .. })),
            "{ev:?}"
        );
        // A reset and restore make the queue usable again: the wanted state is sent anew.
        a.reset_device(&PLAN).unwrap();
        a.restore(&PLAN, &[]).unwrap();
        assert!(!a.control_broken());
        assert!(a.control_busy(), "the filter is sent again after the reset");
        assert_eq!(a.poll_control(), ControlProgress::Pending);
        a.stop(ram.arena(), 10).unwrap();
        assert_eq!(ram.arena().outstanding(), 0);
    }
}

#[test]
fn a_failed_start_frees_every_dma_region() {
    // The device takes every queue and then refuses the configuration vector: the last step
    // of Adapter::start fails after the queues (and the control queue's buffer) exist.
    let features = Features::VERSION_1 | Features::NET_MAC | Features::NET_CTRL_VQ;
    let m = VirtioPciModel::new(features.bits(), 3, 256, 4, net_config(1));
    m.with(|s| s.misbehave.reject_config_vector = true);
    let ram = GuestRam::new(16 << 20);
    let plan = BringUp {
        msix_messages: 4,
        ..PLAN
    };
    let r = Adapter::start(&m, &m, ram.arena(), &UserSettings::default(), &plan);
    assert!(r.is_err(), "the vector was refused");
    assert_eq!(
        ram.arena().outstanding(),
        0,
        "{} regions leaked",
        ram.arena().outstanding()
    );
    // The device was told the driver gave up.
    assert_ne!(m.with(|s| s.status) & virtio::pci::status::FAILED, 0);
}
