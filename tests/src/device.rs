//! Device sides of a virtqueue, for tests of the driver core.
//!
//! * [`SplitDevice`] is rust-vmm's `virtio-queue` (an implementation nobody here wrote) reading the
//!   driver's split rings in [`GuestRam`].
//! * [`PackedDevice`] is a packed-ring device written from the virtio 1.2 text (§2.8), sharing no
//!   code with the driver's packed queue.

use virtio::queue::QueueAddresses;
use virtio_queue::{Queue, QueueT};
use vm_memory::{Bytes, GuestAddress};

use crate::dma::{DmaArena, GuestRam};

/// A chain as the device sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeviceChain {
    /// Head index (split) or buffer id (packed).
    pub id: u16,
    /// Device-readable segments (address, length).
    pub readable: Vec<(u64, u32)>,
    /// Device-writable segments.
    pub writable: Vec<(u64, u32)>,
    /// Ring descriptors the chain occupied (packed: how far the used position moves).
    pub ring_descs: u16,
}

impl DeviceChain {
    /// Total writable bytes.
    pub fn writable_len(&self) -> u32 {
        self.writable.iter().map(|s| s.1).sum()
    }
}

/// rust-vmm `virtio_queue::Queue` playing the device of one split queue.
#[derive(Debug)]
pub struct SplitDevice {
    queue: Queue,
}

impl SplitDevice {
    /// A ready device queue over the driver's rings.
    pub fn new(ram: &GuestRam, size: u16, addrs: QueueAddresses, event_idx: bool) -> Self {
        let mut queue = Queue::new(size).expect("queue max size");
        queue.try_set_size(size).expect("size");
        queue
            .try_set_desc_table_address(GuestAddress(addrs.desc))
            .expect("desc");
        queue
            .try_set_avail_ring_address(GuestAddress(addrs.driver))
            .expect("avail");
        queue
            .try_set_used_ring_address(GuestAddress(addrs.device))
            .expect("used");
        queue.set_event_idx(event_idx);
        queue.set_ready(true);
        assert!(
            queue.is_valid(ram.memory()),
            "rust-vmm rejects the ring layout"
        );
        Self { queue }
    }

    /// The next available chain, with its segments.
    pub fn pop(&mut self, ram: &GuestRam) -> Option<DeviceChain> {
        let chain = self.queue.pop_descriptor_chain(ram.memory())?;
        let mut out = DeviceChain {
            id: chain.head_index(),
            ring_descs: 1,
            ..Default::default()
        };
        for d in chain {
            let seg = (d.addr().0, d.len());
            if d.is_write_only() {
                out.writable.push(seg);
            } else {
                out.readable.push(seg);
            }
        }
        Some(out)
    }

    /// Chains the driver has made available that the device has not taken yet.
    pub fn available(&self, ram: &GuestRam) -> u16 {
        let idx = self
            .queue
            .avail_idx(ram.memory(), std::sync::atomic::Ordering::Acquire)
            .expect("avail idx");
        idx.0.wrapping_sub(self.queue.next_avail())
    }

    /// All available chains (rust-vmm's iterator).
    pub fn pop_all(&mut self, ram: &GuestRam) -> Vec<DeviceChain> {
        let mut v = Vec::new();
        while let Some(c) = self.pop(ram) {
            v.push(c);
        }
        v
    }

    /// Puts a used element; returns whether the driver wants an interrupt.
    ///
    /// With EVENT_IDX this is rust-vmm's `needs_notification` (used_event). Without it, rust-vmm
    /// always says yes ("VRING_AVAIL_F_NO_INTERRUPT isn't supported yet"), so the harness reads
    /// the driver's avail flags itself (§2.7.7).
    pub fn complete(&mut self, ram: &GuestRam, id: u16, len: u32) -> bool {
        self.queue
            .add_used(ram.memory(), id, len)
            .expect("add_used");
        let by_event = self
            .queue
            .needs_notification(ram.memory())
            .expect("needs_notification");
        if self.queue.event_idx_enabled() {
            by_event
        } else {
            let flags: u16 = ram
                .memory()
                .read_obj(GuestAddress(self.queue.avail_ring()))
                .expect("avail flags");
            flags & 1 == 0
        }
    }

    /// Whether the driver asked to be kicked (EVENT_IDX: avail_event; else NO_NOTIFY clear).
    pub fn enable_kicks(&mut self, ram: &GuestRam) -> bool {
        self.queue
            .enable_notification(ram.memory())
            .expect("enable_notification")
    }

    /// Tells the driver not to kick.
    pub fn disable_kicks(&mut self, ram: &GuestRam) {
        self.queue
            .disable_notification(ram.memory())
            .expect("disable_notification");
    }

    /// The underlying rust-vmm queue.
    pub fn queue(&self) -> &Queue {
        &self.queue
    }

    /// Writes `data` into a chain's writable segments in order; returns bytes written.
    pub fn fill(ram: &GuestRam, chain: &DeviceChain, data: &[u8]) -> u32 {
        fill(ram.arena(), chain, data)
    }

    /// Reads a chain's readable bytes.
    pub fn gather(ram: &GuestRam, chain: &DeviceChain) -> Vec<u8> {
        let mut v = Vec::new();
        for &(addr, len) in &chain.readable {
            let mut buf = vec![0u8; len as usize];
            ram.memory()
                .read_slice(&mut buf, GuestAddress(addr))
                .expect("read readable segment");
            v.extend_from_slice(&buf);
        }
        v
    }
}

/// Writes `data` across the chain's writable segments; returns bytes written.
pub fn fill(arena: &DmaArena, chain: &DeviceChain, data: &[u8]) -> u32 {
    let mut done = 0usize;
    for &(addr, len) in &chain.writable {
        if done == data.len() {
            break;
        }
        let n = (len as usize).min(data.len() - done);
        assert!(
            arena.write(addr, &data[done..done + n]),
            "writable segment outside RAM"
        );
        done += n;
    }
    done as u32
}

const F_NEXT: u16 = 1;
const F_WRITE: u16 = 2;
const F_INDIRECT: u16 = 4;
const F_AVAIL: u16 = 1 << 7;
const F_USED: u16 = 1 << 15;

/// A packed-ring device written from the spec.
#[derive(Debug)]
pub struct PackedDevice {
    size: u16,
    addrs: QueueAddresses,
    next_avail: u16,
    avail_wrap: bool,
    next_used: u16,
    used_wrap: bool,
    event_idx: bool,
    /// Used position when the last interrupt decision was made.
    signalled_used: u16,
    signalled_wrap: bool,
}

fn rd16(a: &DmaArena, addr: u64) -> u16 {
    let mut b = [0; 2];
    assert!(a.read(addr, &mut b));
    u16::from_le_bytes(b)
}
fn rd32(a: &DmaArena, addr: u64) -> u32 {
    let mut b = [0; 4];
    assert!(a.read(addr, &mut b));
    u32::from_le_bytes(b)
}
fn rd64(a: &DmaArena, addr: u64) -> u64 {
    let mut b = [0; 8];
    assert!(a.read(addr, &mut b));
    u64::from_le_bytes(b)
}

fn need_event(event: u16, new: u16, old: u16) -> bool {
    new.wrapping_sub(event).wrapping_sub(1) < new.wrapping_sub(old)
}

impl PackedDevice {
    /// A device over the driver's packed ring.
    pub fn new(size: u16, addrs: QueueAddresses, event_idx: bool) -> Self {
        Self {
            size,
            addrs,
            next_avail: 0,
            avail_wrap: true,
            next_used: 0,
            used_wrap: true,
            event_idx,
            signalled_used: 0,
            signalled_wrap: true,
        }
    }

    fn desc_addr(&self, i: u16) -> u64 {
        self.addrs.desc + u64::from(i) * 16
    }

    /// §2.8.1: a descriptor is available when its AVAIL bit equals the device's avail wrap
    /// counter and its USED bit does not.
    fn is_avail(&self, a: &DmaArena, i: u16) -> bool {
        let f = rd16(a, self.desc_addr(i) + 14);
        ((f & F_AVAIL) != 0) == self.avail_wrap && ((f & F_USED) != 0) != self.avail_wrap
    }

    /// The next available chain.
    pub fn pop(&mut self, a: &DmaArena) -> Option<DeviceChain> {
        if !self.is_avail(a, self.next_avail) {
            return None;
        }
        std::sync::atomic::fence(std::sync::atomic::Ordering::Acquire);
        let mut chain = DeviceChain::default();
        loop {
            let at = self.desc_addr(self.next_avail);
            let (addr, len, id, flags) = (
                rd64(a, at),
                rd32(a, at + 8),
                rd16(a, at + 12),
                rd16(a, at + 14),
            );
            chain.ring_descs += 1;
            chain.id = id;
            self.next_avail += 1;
            if self.next_avail == self.size {
                self.next_avail = 0;
                self.avail_wrap = !self.avail_wrap;
            }
            if flags & F_INDIRECT != 0 {
                for k in 0..u64::from(len / 16) {
                    let e = addr + k * 16;
                    let seg = (rd64(a, e), rd32(a, e + 8));
                    if rd16(a, e + 14) & F_WRITE != 0 {
                        chain.writable.push(seg);
                    } else {
                        chain.readable.push(seg);
                    }
                }
            } else if flags & F_WRITE != 0 {
                chain.writable.push((addr, len));
            } else {
                chain.readable.push((addr, len));
            }
            if flags & F_NEXT == 0 || chain.ring_descs == self.size {
                return Some(chain);
            }
        }
    }

    /// Writes the used descriptor for `chain` (§2.8.5: id, len, then flags with both bits equal
    /// to the used wrap counter) and moves past the chain's descriptors.
    pub fn complete(&mut self, a: &DmaArena, chain: &DeviceChain, len: u32) {
        let at = self.desc_addr(self.next_used);
        assert!(a.write(at + 8, &len.to_le_bytes()));
        assert!(a.write(at + 12, &chain.id.to_le_bytes()));
        let flags = if self.used_wrap { F_AVAIL | F_USED } else { 0 };
        std::sync::atomic::fence(std::sync::atomic::Ordering::Release);
        assert!(a.write(at + 14, &flags.to_le_bytes()));
        let next = u32::from(self.next_used) + u32::from(chain.ring_descs);
        if next >= u32::from(self.size) {
            self.next_used = (next - u32::from(self.size)) as u16;
            self.used_wrap = !self.used_wrap;
        } else {
            self.next_used = next as u16;
        }
    }

    /// Whether the driver wants an interrupt for the completions since the last call (§2.8.10,
    /// driver event suppression).
    pub fn should_interrupt(&mut self, a: &DmaArena) -> bool {
        let off_wrap = rd16(a, self.addrs.driver);
        let flags = rd16(a, self.addrs.driver + 2);
        let (old, new) = (self.signalled_used, self.next_used);
        let old_wrap = self.signalled_wrap;
        self.signalled_used = new;
        self.signalled_wrap = self.used_wrap;
        if old == new && old_wrap == self.used_wrap {
            return false;
        }
        match flags {
            1 => false,
            2 if self.event_idx => {
                let mut event = off_wrap & 0x7fff;
                if (off_wrap >> 15 != 0) != self.used_wrap {
                    event = event.wrapping_sub(self.size);
                }
                // Positions counted in one lap-relative space: unwrap `old` if we wrapped.
                let old = if old_wrap == self.used_wrap {
                    old
                } else {
                    old.wrapping_sub(self.size)
                };
                need_event(event, new, old)
            }
            _ => true,
        }
    }

    /// Sets the device event suppression structure (what the driver reads to decide kicks).
    pub fn set_kick_suppression(&self, a: &DmaArena, flags: u16, off_wrap: u16) {
        assert!(a.write(self.addrs.device, &off_wrap.to_le_bytes()));
        assert!(a.write(self.addrs.device + 2, &flags.to_le_bytes()));
    }

    /// Next position the device will read (for event-index kicks).
    pub fn next_avail(&self) -> (u16, bool) {
        (self.next_avail, self.avail_wrap)
    }
}
