//! Bounded smoke runs of the offload fuzz targets' bodies on random and mutated-valid inputs.

use vnet_harness::fuzzing::{offload_parse, offload_segment, offload_tx};
use vnet_harness::rng::Rng;

/// A valid Ethernet/IPv4/TCP frame to mutate (mutations reach deeper than random bytes).
fn seed_frame(rng: &mut Rng) -> Vec<u8> {
    let payload = rng.below(3000) as usize;
    let bytes: Vec<u8> = (0..payload).map(|_| rng.next_u64() as u8).collect();
    vnet_harness::frames::tcp4([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2], 0x18, bytes)
}

/// Half random bytes, half `prefix` control bytes followed by a mutated valid frame.
fn inputs(seed: u64, n: usize, prefix: usize, mut f: impl FnMut(&[u8])) {
    let mut rng = Rng::new(seed);
    for i in 0..n {
        let data: Vec<u8> = if i % 2 == 0 {
            (0..rng.below(200)).map(|_| rng.next_u64() as u8).collect()
        } else {
            let mut head: Vec<u8> = (0..prefix).map(|_| rng.next_u64() as u8).collect();
            let mut frame = seed_frame(&mut rng);
            for _ in 0..rng.below(4) {
                let at = rng.below(frame.len() as u64) as usize;
                frame[at] = rng.next_u64() as u8;
            }
            head.append(&mut frame);
            head
        };
        f(&data);
    }
}

#[test]
fn offload_parse_smoke() {
    inputs(1, 4000, 0, offload_parse);
}

#[test]
fn offload_tx_smoke() {
    inputs(2, 4000, 3, offload_tx);
}

#[test]
fn offload_segment_smoke() {
    // Mostly small MSS values so that frames split into many segments.
    let mut segmented = 0;
    inputs(3, 1500, 2, |d| {
        let mut d = d.to_vec();
        if d.len() > 2 {
            d[1] = 0;
            segmented += usize::from(offload::Layout::parse(&d[2..]).is_ok());
        }
        offload_segment(&d);
    });
    assert!(
        segmented > 300,
        "the smoke run reached the segmenter: {segmented}"
    );
}

/// An input `fuzzing::bringup` reads as a well-formed device: the feature menu, 3–8 queues,
/// MSI-X, a 24-byte configuration (unicast MAC, link up, 1–4 pairs, MTU 1500), queues of 256,
/// the model's capability list untouched, no misbehaviour; random plan and later steps.
fn well_formed_device(rng: &mut Rng) -> Vec<u8> {
    let pick = rng.next_u64() as u16;
    let mut d = vec![1, pick as u8, (pick >> 8) as u8, 1, 3 + rng.below(6) as u8];
    d.push(rng.below(20) as u8); // MSI-X
    d.push(24);
    let mut cfg = [0u8; 24];
    cfg[0..6].copy_from_slice(&[0x52, 0x54, 0, 0x12, 0x34, 0x56]);
    cfg[6] = 1;
    cfg[10..12].copy_from_slice(&1500u16.to_le_bytes());
    cfg[17] = 40;
    cfg[18] = 128;
    cfg[20] = 0xff;
    d.extend_from_slice(&cfg);
    d.extend_from_slice(&[6, 1 + rng.below(4) as u8, 0]); // max_virtqueue_pairs (edgy16: raw)
    d.extend_from_slice(&[6, 0, 1]); // default queue size 256
    d.extend_from_slice(&[0; 12]); // no per-queue overrides
    d.extend_from_slice(&[7; 6]); // BARs as they are
    d.push(0); // no config-space rewrites
    d.push(0); // no misbehaviour
    d.extend((0..24).map(|_| rng.next_u64() as u8)); // plan and later steps
    d
}

#[test]
fn bringup_smoke() {
    // Random devices, and mutations of a well-formed one (the first bytes pick the feature menu
    // and a usable layout, so that many inputs get through Adapter::start).
    let ram = vnet_harness::dma::GuestRam::new(32 << 20);
    let mut rng = Rng::new(16);
    let start = std::time::Instant::now();
    let (mut runs, mut started) = (0u32, 0u32);
    while runs < 3000 && start.elapsed() < std::time::Duration::from_secs(8) {
        let n = rng.below(160) as usize;
        let mut d: Vec<u8> = (0..n).map(|_| rng.next_u64() as u8).collect();
        if runs % 2 == 1 {
            d = well_formed_device(&mut rng);
            for _ in 0..rng.below(3) {
                let at = rng.below(d.len() as u64) as usize;
                d[at] = rng.next_u64() as u8;
            }
        }
        started += u32::from(vnet_harness::fuzzing::bringup(&ram, &d));
        runs += 1;
    }
    assert!(runs >= 200, "only {runs} runs in the time bound");
    assert!(
        started * 20 >= runs,
        "the smoke run reached a started adapter: {started} of {runs}"
    );
}

/// Inputs the bring-up fuzzer found, kept as regressions.
#[test]
fn bringup_regressions() {
    let ram = vnet_harness::dma::GuestRam::new(32 << 20);
    // The common configuration moved to offset 4 of the BAR: the register model decoded its
    // registers at their old place (the driver's queue_size write looked like queue 0's
    // queue_enable), "queue 0 programmed twice: [0, 0, 0]". The model now decodes where its
    // own capabilities say.
    let moved_common: &[u8] = &[
        0x13, 0x10, 0x05, 0x5d, 0x1a, 0x00, 0x00, 0x02, 0x00, 0x02, 0x00, 0x02, 0x00, 0x47, 0x47,
        0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x57, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47,
        0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47,
        0x7a, 0x47, 0x47, 0x47, 0x47, 0x04, 0x3b, 0x47, 0x47, 0x47, 0x10, 0x00, 0x47, 0x47, 0x47,
        0x47, 0x47, 0x47, 0x47, 0x47, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
        0xff, 0xff, 0xff, 0xff, 0x00, 0x10, 0x00, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47, 0x47,
        0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff, 0xff, 0xff, 0x00,
        0x00, 0x0a,
    ];
    let _ = vnet_harness::fuzzing::bringup(&ram, moved_common);
}

/// Bounded smoke run of the `rx_engine` fuzz target's body: random inputs, and inputs whose
/// completions carry a virtio-net header and a valid (then mutated) frame.
#[test]
fn rx_engine_smoke() {
    let ram = vnet_harness::dma::GuestRam::new(8 << 20);
    let mut rng = Rng::new(0x16a);
    let start = std::time::Instant::now();
    for i in 0..3000 {
        if start.elapsed() > std::time::Duration::from_secs(8) {
            break;
        }
        let mut data: Vec<u8> = (0..6).map(|_| rng.next_u64() as u8).collect();
        for _ in 0..rng.below(24) {
            let op = rng.below(6) as u8;
            data.push(op);
            match op {
                2 if i % 2 == 1 => {
                    data.push(rng.next_u64() as u8);
                    let mut bytes = vec![0u8; 12];
                    bytes[10] = rng.below(3) as u8; // num_buffers
                    bytes[0] = rng.below(4) as u8;
                    bytes.extend(seed_frame(&mut rng).into_iter().take(1500));
                    for _ in 0..rng.below(4) {
                        let at = rng.below(bytes.len() as u64) as usize;
                        bytes[at] = rng.next_u64() as u8;
                    }
                    data.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
                    data.extend_from_slice(&bytes);
                    data.push(2 + rng.below(6) as u8);
                }
                _ => data.extend((0..3).map(|_| rng.next_u64() as u8)),
            }
        }
        vnet_harness::fuzzing::rx_engine_with_device_completions(&ram, &data);
    }
}
