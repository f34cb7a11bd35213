//! The receive pool in chunks (`driver/rxpool.rs`): every buffer has its own bytes, in one
//! chunk, at the device address that maps its CPU address; no chunk exceeds 128 KiB unless one
//! buffer does; a pool that cannot be completed gives back what it took.

use std::collections::BTreeSet;

use virtio::hal::Dma;
use virtionet::rxpool::{CHUNK_BYTES, RxPool};
use vnet_harness::dma::GuestRam;

/// The arena, recording the size of every region asked for, failing after `fail_after`.
struct Recording<'a> {
    inner: &'a vnet_harness::dma::DmaArena,
    sizes: std::sync::Mutex<Vec<usize>>,
    fail_after: Option<usize>,
}

// SAFETY: forwards to the arena, which upholds the contract.
unsafe impl Dma for Recording<'_> {
    fn alloc(&self, len: usize, align: usize) -> Option<virtio::hal::DmaRegion> {
        let mut s = self.sizes.lock().unwrap();
        if self.fail_after.is_some_and(|n| s.len() >= n) {
            return None;
        }
        s.push(len);
        self.inner.alloc(len, align)
    }
    fn free(&self, region: virtio::hal::DmaRegion) {
        self.inner.free(region)
    }
}

fn check(buffers: u32, size: u32) {
    let ram = GuestRam::new(64 << 20);
    let dma = Recording {
        inner: ram.arena(),
        sizes: Default::default(),
        fail_after: None,
    };
    let pool = RxPool::new(&dma, buffers, size).expect("pool");
    let sizes = dma.sizes.lock().unwrap().clone();
    let largest = sizes.iter().copied().max().unwrap();
    assert!(
        largest <= CHUNK_BYTES.max(size as usize),
        "{buffers}x{size}: a {largest}-byte chunk"
    );
    assert_eq!(
        sizes.iter().sum::<usize>(),
        buffers as usize * size as usize
    );
    assert_eq!(pool.chunks(), sizes.len());
    let mut starts = BTreeSet::new();
    for b in 0..buffers {
        let dev = pool.device(b);
        let cpu = pool.cpu(b);
        // The device address maps to the CPU address, for the whole buffer.
        assert_eq!(
            ram.arena().cpu_ptr(dev, size as usize),
            Some(cpu),
            "{buffers}x{size}: buffer {b}"
        );
        if size.is_multiple_of(64) {
            assert_eq!(dev % 64, 0, "64-byte aligned");
        }
        starts.insert(dev);
    }
    // Distinct and non-overlapping.
    let v: Vec<u64> = starts.iter().copied().collect();
    assert_eq!(v.len(), buffers as usize);
    for w in v.windows(2) {
        assert!(w[1] - w[0] >= u64::from(size), "{buffers}x{size}: overlap");
    }
    // Out-of-range indices are clamped to the last buffer, never outside the pool.
    assert_eq!(pool.device(buffers + 7), pool.device(buffers - 1));
    pool.free(&dma);
    assert_eq!(ram.arena().outstanding(), 0);
}

#[test]
fn every_buffer_is_its_own_in_chunks_of_at_most_128_kib() {
    check(1024, 2048); // the default: 16 chunks of 64 buffers
    check(1000, 2048); // a last, partial chunk
    check(1024, 1530); // 1,500-byte frames, no mergeable buffers: 64 per chunk
    check(1024, 9030); // jumbo frames: 8 per chunk
    check(64, 65_562); // one buffer larger than a chunk: a chunk each
    check(1, 2048);
}

#[test]
fn a_pool_that_cannot_be_completed_gives_back_what_it_took() {
    let ram = GuestRam::new(16 << 20);
    for fail_after in [0, 1, 5, 15] {
        let dma = Recording {
            inner: ram.arena(),
            sizes: Default::default(),
            fail_after: Some(fail_after),
        };
        assert!(RxPool::new(&dma, 1024, 2048).is_none());
        assert_eq!(ram.arena().outstanding(), 0, "after {fail_after} chunks");
    }
    assert!(RxPool::new(ram.arena(), 0, 2048).is_none());
}
