//! A minimal split-ring virtio-net device for benchmarks: completes every transmit chain, and
//! fills posted receive buffers with a fixed frame — a few loads and stores per packet, the same
//! for every driver measured. Addresses are translated by a closure (identity for rcore-os
//! `virtio-drivers`, the DMA arena for virtionet).

#![allow(dead_code)]

use std::sync::atomic::{Ordering, fence};

/// One split queue as the device sees it.
pub struct MiniQueue {
    pub desc: *mut u8,
    pub avail: *mut u8,
    pub used: *mut u8,
    pub size: u16,
    pub last_avail: u16,
    pub used_idx: u16,
}

fn rd16(p: *mut u8) -> u16 {
    // SAFETY: callers pass addresses inside live rings.
    unsafe { std::ptr::read_volatile(p.cast::<u16>()) }
}
fn rd32(p: *mut u8) -> u32 {
    // SAFETY: as rd16.
    unsafe { std::ptr::read_volatile(p.cast::<u32>()) }
}
fn rd64(p: *mut u8) -> u64 {
    // SAFETY: as rd16.
    unsafe { std::ptr::read_volatile(p.cast::<u64>()) }
}
fn wr16(p: *mut u8, v: u16) {
    // SAFETY: as rd16.
    unsafe { std::ptr::write_volatile(p.cast::<u16>(), v) }
}
fn wr32(p: *mut u8, v: u32) {
    // SAFETY: as rd16.
    unsafe { std::ptr::write_volatile(p.cast::<u32>(), v) }
}

impl MiniQueue {
    /// Completes every available chain; `fill` gets (buffer CPU pointer, writable length) of the
    /// head descriptor and returns the used length.
    pub fn run(
        &mut self,
        translate: &dyn Fn(u64) -> *mut u8,
        fill: &mut dyn FnMut(*mut u8, u32) -> u32,
    ) -> u32 {
        self.run_at_most(u32::MAX, translate, fill)
    }

    /// Completes at most `max` available chains, in order (a receive device with `max` frames
    /// to deliver: the other buffers stay posted).
    pub fn run_at_most(
        &mut self,
        max: u32,
        translate: &dyn Fn(u64) -> *mut u8,
        fill: &mut dyn FnMut(*mut u8, u32) -> u32,
    ) -> u32 {
        let avail_idx = rd16(self.avail.wrapping_add(2));
        fence(Ordering::Acquire);
        let mut n = 0;
        let size = usize::from(self.size);
        while self.last_avail != avail_idx && n < max {
            let head = rd16(
                self.avail
                    .wrapping_add(4 + 2 * (usize::from(self.last_avail) % size)),
            );
            let d = self.desc.wrapping_add(16 * usize::from(head));
            let (addr, len, flags) = (rd64(d), rd32(d.wrapping_add(8)), rd16(d.wrapping_add(12)));
            let used_len = if flags & 2 != 0 {
                fill(translate(addr), len)
            } else {
                0
            };
            let e = self
                .used
                .wrapping_add(4 + 8 * (usize::from(self.used_idx) % size));
            wr32(e, u32::from(head));
            wr32(e.wrapping_add(4), used_len);
            self.last_avail = self.last_avail.wrapping_add(1);
            self.used_idx = self.used_idx.wrapping_add(1);
            n += 1;
        }
        fence(Ordering::Release);
        wr16(self.used.wrapping_add(2), self.used_idx);
        n
    }
}
