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
