//! A fixed amount of software segmentation and checksum work, for instruction counts under
//! callgrind (repeatable where wall-clock time on a shared machine is not):
//!
//! `valgrind --tool=callgrind target/release/examples/lso_cost [full|seed|sum1500|sum9000] [N]`
//!
//! `full`/`seed`: N times a 64 KiB TCP/IPv4 frame into 1448-byte segments (the `segment_64k`
//! benchmark's frame), with full checksums or pseudo-header seeds; `sumLEN`: N checksums of LEN
//! bytes. Prints a digest so that nothing is optimised away.

use std::hint::black_box;

use offload::segment::{L4Checksum, Segmenter};

#[path = "../benches/common/frames.rs"]
mod frames;
use frames::{data, lso_frame};

fn main() {
    let mut args = std::env::args().skip(1);
    let what = args.next().unwrap_or_else(|| "full".into());
    let n: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100);
    let mut digest = 0u64;
    if let Some(len) = what.strip_prefix("sum") {
        let d = data(len.parse().expect("sumLEN"));
        for _ in 0..n {
            digest = digest.wrapping_add(u64::from(offload::checksum::checksum(black_box(&d))));
        }
    } else {
        let mode = match what.as_str() {
            "seed" => L4Checksum::Seed,
            _ => L4Checksum::Full,
        };
        let f = lso_frame();
        let seg = Segmenter::new(&f, 1448).expect("segmentable");
        let mut out = vec![0u8; 1600 * seg.count()];
        for _ in 0..n {
            let mut at = 0;
            for i in 0..seg.count() {
                at += seg.write(i, &mut out[at..], mode).expect("fits");
            }
            digest = digest
                .wrapping_add(u64::from(out[at - 1]))
                .wrapping_add(at as u64);
        }
    }
    println!("{what} x{n}: digest {digest}");
}
