//! Random sequences of OS and device events on the whole driver core, checking the invariants:
//! no verifier violation (the OS side panics with the rule's name), no buffer lost or returned
//! twice, every TX packet completed exactly once and in order, every frame received once and in
//! order, counters consistent. And the arming protocol: an OS that sleeps until an interrupt
//! never misses a frame.

use proptest::prelude::*;
use virtio::Features;
use virtionet::config::UserSettings;
use vnet_harness::netdev::{Backend, DEFAULT_FEATURES};
use vnet_harness::os_tx::TxFrame;
use vnet_harness::sim::{MAC, Machine, machine};

#[derive(Debug, Clone)]
enum Ev {
    Send(u8),
    TxAdvance,
    RxPost(u8, u8),
    RxAdvance,
    Step,
    Return(u8),
    Arm,
    Interrupts,
}

fn ev() -> impl Strategy<Value = Ev> {
    prop_oneof![
        3 => (1u8..8).prop_map(Ev::Send),
        3 => Just(Ev::TxAdvance),
        2 => (0u8..30, 0u8..60).prop_map(|(p, f)| Ev::RxPost(p, f)),
        3 => Just(Ev::RxAdvance),
        3 => Just(Ev::Step),
        2 => (0u8..40).prop_map(Ev::Return),
        1 => Just(Ev::Arm),
        1 => Just(Ev::Interrupts),
    ]
}

fn frame(i: usize, len: usize) -> Vec<u8> {
    let mut f = MAC.to_vec();
    f.extend_from_slice(&[2, 0, 0, 0, 0, 1, 0x88, 0xb5]);
    f.extend((0..len.saturating_sub(14)).map(|k| (k * 7 + i) as u8));
    f
}

fn tx_advance(m: &mut Machine) {
    if m.os_tx.driver_owns_packets() {
        m.tx.quiet(&m.tx_gate);
        let tx = &mut m.tx;
        let r = m
            .os_tx
            .callback(|p, f| tx.advance(p, f))
            .expect("tx advance");
        if r.kicked {
            m.adapter.notify_tx(0);
        }
    }
    m.os_tx.reclaim(m.ram.arena());
}

fn rx_advance(m: &mut Machine) -> u32 {
    m.rx.quiet(&m.rx_gate);
    let rx = &mut m.rx;
    let r = m
        .os_rx
        .callback(|p, f| rx.advance(p, f))
        .expect("rx advance");
    if r.kicked {
        m.adapter.notify_rx(0);
    }
    m.os_rx.reclaim();
    r.indicated
}

fn run(features: Features, seed: u64, events: Vec<Ev>) {
    let mut m = machine(features, Backend::Loopback, &UserSettings::default(), seed);
    let mut pending: Vec<TxFrame> = Vec::new();
    let mut expected: Vec<Vec<u8>> = Vec::new();
    let mut posted = 0usize;
    for e in events {
        match e {
            Ev::Send(n) => {
                for _ in 0..n {
                    let i = expected.len();
                    let len = 14 + m.rng.below(1500) as usize;
                    let f = frame(i, len);
                    let split = (0..m.rng.below(5))
                        .map(|_| 1 + m.rng.below(200) as usize)
                        .collect();
                    let mut wire = f.clone();
                    wire.resize(wire.len().max(60), 0);
                    expected.push(wire);
                    pending.push(TxFrame {
                        bytes: f,
                        split,
                        ..Default::default()
                    });
                }
                while let Some(f) = pending.first() {
                    if !m.os_tx.post(m.ram.arena(), f) {
                        break;
                    }
                    pending.remove(0);
                    posted += 1;
                }
            }
            Ev::TxAdvance => tx_advance(&mut m),
            Ev::RxPost(p, f) => m.os_rx.post(u32::from(p), u32::from(f)),
            Ev::RxAdvance => {
                rx_advance(&mut m);
            }
            Ev::Step => {
                m.dev.step(&m.ram);
            }
            Ev::Return(k) => {
                let k = usize::from(k).min(m.os_rx.held.len());
                for c in m.os_rx.held.drain(..k) {
                    m.rx.return_buffer(c);
                }
            }
            Ev::Arm => {
                m.tx.arm(&m.tx_gate);
                m.rx.arm(&m.rx_gate);
            }
            Ev::Interrupts => {
                for q in std::mem::take(&mut m.dev.interrupts) {
                    match q {
                        0 => {
                            m.rx_gate.fire();
                        }
                        1 => {
                            m.tx_gate.fire();
                        }
                        _ => {}
                    }
                }
            }
        }
    }
    // Drain: the OS keeps polling and returning until everything has come round.
    for _ in 0..5000 {
        let before = (m.os_rx.frames.len(), m.os_tx.returned);
        m.round(&mut pending).expect("round");
        posted = posted.max(m.os_tx.returned as usize);
        for c in m.os_rx.held.drain(..) {
            m.rx.return_buffer(c);
        }
        if m.os_rx.frames.len() == expected.len()
            && pending.is_empty()
            && m.os_tx.outstanding.is_empty()
            && before == (m.os_rx.frames.len(), m.os_tx.returned)
        {
            break;
        }
    }
    assert!(pending.is_empty());
    assert!(m.os_tx.outstanding.is_empty(), "every TX packet came back");
    assert_eq!(
        m.os_tx.returned as usize,
        expected.len(),
        "each exactly once"
    );
    assert_eq!(m.os_rx.frames.len(), expected.len(), "every frame received");
    for (i, (got, want)) in m.os_rx.frames.iter().zip(&expected).enumerate() {
        assert_eq!(&got.bytes, want, "frame {i}");
    }
    m.round(&mut Vec::new()).expect("final round");
    assert_eq!(m.rx.buffers_with_os(), 0, "no buffer lost");
    assert_eq!(m.rx.stats().bad_returns, 0, "no buffer returned twice");
    let n = expected.len() as u64;
    assert_eq!(
        (
            m.tx.stats().sent.frames(),
            m.rx.stats().received.frames(),
            m.dev.sent.len() as u64
        ),
        (n, n, n)
    );
    assert_eq!(
        m.tx.stats().bad_packets + m.tx.stats().device_faults + m.rx.stats().device_faults,
        0
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    #[test]
    fn random_event_sequences_keep_every_invariant(
        packed: bool, mergeable: bool, seed: u64,
        events in prop::collection::vec(ev(), 1..250),
    ) {
        let mut f = DEFAULT_FEATURES;
        if packed { f |= Features::RING_PACKED; }
        if !mergeable { f.remove(Features::NET_MRG_RXBUF); }
        run(f, seed, events);
    }
}

/// An OS that polls while there is work, arms when idle, and then sleeps until an interrupt:
/// frames arriving at any moment are all indicated (arm, then re-check — no lost wake-up).
#[test]
fn arming_protocol_never_loses_a_wake_up() {
    for seed in 0..20 {
        let mut m = machine(
            DEFAULT_FEATURES,
            Backend::Channel,
            &UserSettings::default(),
            seed,
        );
        let total = 300;
        let mut injected = 0;
        let mut awake = true;
        let mut sleeps = 0;
        for _ in 0..200_000 {
            if injected < total && m.rng.below(4) == 0 {
                m.dev
                    .to_receive
                    .push_back((Default::default(), frame(injected, 100)));
                injected += 1;
            }
            m.dev.step(&m.ram);
            for q in std::mem::take(&mut m.dev.interrupts) {
                if q == 0 && m.rx_gate.fire() {
                    awake = true;
                }
            }
            if awake {
                m.os_rx.post(64, 128);
                let n = rx_advance(&mut m);
                for c in m.os_rx.held.drain(..) {
                    m.rx.return_buffer(c);
                }
                if n == 0 {
                    // The race: a frame may land after the poll and before the arm.
                    if injected < total && m.rng.below(2) == 0 {
                        m.dev
                            .to_receive
                            .push_back((Default::default(), frame(injected, 100)));
                        injected += 1;
                        m.dev.step(&m.ram);
                    }
                    // Arm, and sleep unless the re-check says work is already there.
                    if !m.rx.arm(&m.rx_gate) {
                        awake = false;
                        sleeps += 1;
                    }
                }
            }
            if injected == total && m.os_rx.frames.len() == total {
                break;
            }
        }
        assert_eq!(
            m.os_rx.frames.len(),
            total,
            "seed {seed}: a frame was stranded while the OS slept"
        );
        assert!(sleeps > 10, "the OS really slept ({sleeps} times)");
    }
}
