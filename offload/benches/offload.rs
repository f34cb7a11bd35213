//! Offload math, in one run: checksum of 64 B, 1500 B, 9000 B and 64 KiB against the
//! internet-checksum, etherparse and smoltcp crates, with a memcpy of the same size as the
//! memory-bandwidth reference; software segmentation of a 64 KiB TCP payload into 1448-byte
//! segments against a memcpy of 64 KiB (and the fused copy + checksum alone, over 64 KiB and over
//! one 1448-byte payload); Toeplitz hash cost per IPv4/TCP packet.
//!
//! Built for the x86-64 baseline (SSE2), as the driver ships: no `target-cpu=native`.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use offload::segment::{L4Checksum, Segmenter};

#[path = "common/frames.rs"]
mod frames;
use frames::{data, lso_frame};

fn checksums(c: &mut Criterion) {
    let mut g = c.benchmark_group("checksum");
    for len in [64usize, 1500, 9000, 65536] {
        let d = data(len);
        let mut dst = vec![0u8; len];
        g.throughput(Throughput::Bytes(len as u64));
        g.bench_with_input(BenchmarkId::new("virtionet", len), &d, |b, d| {
            b.iter(|| offload::checksum::checksum(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("internet-checksum", len), &d, |b, d| {
            b.iter(|| internet_checksum::checksum(black_box(d)))
        });
        g.bench_with_input(BenchmarkId::new("etherparse", len), &d, |b, d| {
            b.iter(|| {
                etherparse::checksum::Sum16BitWords::new()
                    .add_slice(black_box(d))
                    .ones_complement()
            })
        });
        // smoltcp's data checksum is crate-private: measure its public UDP checksum fill over
        // the same bytes (the 12-byte pseudo-header is the only extra work).
        let mut udp = d.clone();
        udp[4..6].copy_from_slice(&(len.min(65535) as u16).to_be_bytes());
        let (ip_src, ip_dst) = (
            smoltcp::wire::IpAddress::Ipv4([10, 0, 0, 1].into()),
            smoltcp::wire::IpAddress::Ipv4([10, 0, 0, 2].into()),
        );
        g.bench_function(BenchmarkId::new("smoltcp_udp_fill", len), |b| {
            b.iter(|| {
                let mut p = smoltcp::wire::UdpPacket::new_unchecked(black_box(&mut udp[..]));
                p.fill_checksum(&ip_src, &ip_dst);
                black_box(p.checksum())
            })
        });
        g.bench_with_input(BenchmarkId::new("memcpy", len), &d, |b, d| {
            b.iter(|| {
                dst.copy_from_slice(black_box(d));
                black_box(&dst);
            })
        });
    }
    g.finish();
}

fn segmentation(c: &mut Criterion) {
    let f = lso_frame();
    let payload = f.len() - 66;
    let seg = Segmenter::new(&f, 1448).unwrap();
    let mut out = vec![0u8; 1600 * seg.count()];
    let mut g = c.benchmark_group("segment_64k");
    g.throughput(Throughput::Bytes(payload as u64));
    for (name, mode) in [
        ("virtionet_full_csum", L4Checksum::Full),
        ("virtionet_seed", L4Checksum::Seed),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| {
                let mut at = 0;
                for i in 0..seg.count() {
                    at += seg.write(i, &mut out[at..], mode).unwrap();
                }
                black_box(at)
            })
        });
    }
    let src = data(65536);
    let mut dst = vec![0u8; 65536];
    g.bench_function("memcpy_64k", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    // The fused copy + sum alone over the same 64 KiB: the floor of the full-checksum path.
    g.bench_function("copy_and_sum_64k", |b| {
        b.iter(|| offload::checksum::copy_and_sum(&mut dst, black_box(&src)))
    });
    g.finish();
    // One segment's payload, in L1: the fused copy + sum against a memcpy of the same bytes.
    let mut g = c.benchmark_group("copy_and_sum");
    let (src, mut dst) = (data(1448), vec![0u8; 1448]);
    g.throughput(Throughput::Bytes(1448));
    g.bench_function("virtionet/1448", |b| {
        b.iter(|| offload::checksum::copy_and_sum(&mut dst, black_box(&src)))
    });
    g.bench_function("memcpy/1448", |b| {
        b.iter(|| {
            dst.copy_from_slice(black_box(&src));
            black_box(&dst);
        })
    });
    g.finish();
}

fn toeplitz(c: &mut Criterion) {
    let mut t = Box::new(offload::rss::Toeplitz::EMPTY);
    let key: [u8; 40] = core::array::from_fn(|i| (i * 37 + 11) as u8);
    t.set_key(&key);
    let f = lso_frame();
    let l = offload::Layout::parse(&f).unwrap();
    let enabled = netring::HashProtocolType::IPV4 | netring::HashProtocolType::TCP;
    let mut g = c.benchmark_group("toeplitz");
    g.bench_function("ipv4_tcp_packet", |b| {
        b.iter(|| offload::rss::hash_frame(&t, black_box(&f), black_box(&l), enabled))
    });
    g.bench_function("ipv4_tcp_12_bytes_table", |b| {
        b.iter(|| t.hash(black_box(&[10, 0, 0, 1, 10, 0, 0, 2, 4, 210, 0, 80])))
    });
    g.finish();
}

criterion_group!(benches, checksums, segmentation, toeplitz);
criterion_main!(benches);
