//! The PCI bus under the host: what the PnP manager, the HAL and the device give a driver —
//! configuration space, MMIO by physical address, guest RAM for DMA, interrupt signals — over
//! QEMU's real `virtio-net-pci` (qtest and shared guest RAM) or the in-process device (a
//! virtio-pci register model and rust-vmm's virtqueues).
//!
//! It also plays the PCI bus driver's part before a start: BARs assigned and decoding and bus
//! mastering on, and, when the host connects interrupts, MSI-X programmed with exactly the
//! messages granted (the others stay masked, as an OS leaves them).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::dma::DmaArena;
use crate::qemu::{Qemu, QemuBars, QemuPci};

/// One memory BAR as the PnP manager reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryBar {
    /// BAR number.
    pub bar: u8,
    /// Assigned physical address.
    pub base: u64,
    /// Size.
    pub len: u64,
}

/// What raised interrupts since the last poll.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Signals {
    /// MSI-X messages written (message numbers).
    pub messages: Vec<u32>,
    /// The INTx line is asserted.
    pub line: bool,
}

/// A PCI function under the host.
pub trait Bus: Send + Sync {
    /// Reads configuration space.
    fn config_read(&self, offset: u16, out: &mut [u8]);
    /// Writes configuration space.
    fn config_write(&self, offset: u16, data: &[u8]);
    /// The memory BARs, assigned and decoding (the PCI bus driver's work before start).
    fn enable(&self) -> Vec<MemoryBar>;
    /// MSI-X table size (0: no MSI-X).
    fn msix_table_size(&self) -> u16;
    /// Programs MSI-X with `granted` messages (the rest masked), or turns MSI-X off (`0`: the
    /// line interrupt is used).
    fn program_interrupts(&self, granted: u16);
    /// Reads `width` bytes of MMIO at physical address `pa` (all-ones once removed).
    fn mmio_read(&self, pa: u64, width: usize) -> u64;
    /// Writes MMIO (dropped once removed).
    fn mmio_write(&self, pa: u64, width: usize, value: u64);
    /// Guest RAM for DMA (device address = guest physical address).
    fn arena(&self) -> &DmaArena;
    /// Interrupts raised since the last poll.
    fn poll_signals(&self) -> Signals;
    /// Runs the device for a while (the in-process device; QEMU runs by itself).
    fn step(&self) {}
    /// The device is pulled out: it stops, reads return all-ones, writes vanish.
    fn surprise_remove(&self);
    /// Whether it was removed.
    fn removed(&self) -> bool;
    /// A split virtqueue's indices as guest RAM shows them (diagnostics only: it selects the
    /// queue through the common configuration, so only call it while the driver is idle).
    fn debug_queue(&self, _index: u16) -> Option<String> {
        None
    }
}

fn ones(width: usize) -> u64 {
    if width >= 8 {
        u64::MAX
    } else {
        (1u64 << (8 * width)) - 1
    }
}

/// QEMU's `virtio-net-pci`, over qtest.
pub struct QemuBus {
    /// QEMU.
    pub qemu: Arc<Qemu>,
    pci: QemuPci,
    bars: std::sync::Mutex<Option<QemuBars>>,
    removed: AtomicBool,
    intx: AtomicBool,
    line: AtomicBool,
}

impl QemuBus {
    /// The first virtio-net function of `qemu`.
    pub fn new(qemu: Arc<Qemu>) -> Result<Self, String> {
        let pci = QemuPci::find(&qemu).map_err(|e| e.to_string())?;
        Ok(Self {
            qemu,
            pci,
            bars: std::sync::Mutex::new(None),
            removed: AtomicBool::new(false),
            intx: AtomicBool::new(false),
            line: AtomicBool::new(false),
        })
    }

    fn bars(&self) -> Option<QemuBars> {
        self.bars.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn msix_cap(&self) -> Option<u16> {
        let mut ptr = (self.pci.read32_checked(0x34).ok()? & 0xfc) as u16;
        for _ in 0..48 {
            if ptr == 0 {
                return None;
            }
            let hdr = self.pci.read32_checked(ptr).ok()?;
            if hdr & 0xff == 0x11 {
                return Some(ptr);
            }
            ptr = ((hdr >> 8) & 0xfc) as u16;
        }
        None
    }
}

impl Bus for QemuBus {
    fn config_read(&self, offset: u16, out: &mut [u8]) {
        for (i, b) in out.iter_mut().enumerate() {
            let off = offset.wrapping_add(i as u16);
            *b = if self.removed() {
                0xff
            } else {
                self.pci
                    .read32_checked(off & !3)
                    .map_or(0xff, |v| (v >> (8 * u32::from(off & 3))) as u8)
            };
        }
    }

    fn config_write(&self, offset: u16, data: &[u8]) {
        if self.removed() {
            return;
        }
        for (i, &b) in data.iter().enumerate() {
            let off = offset.wrapping_add(i as u16);
            let Ok(v) = self.pci.read32_checked(off & !3) else {
                return;
            };
            let shift = 8 * u32::from(off & 3);
            let nv = (v & !(0xff << shift)) | (u32::from(b) << shift);
            let _ = self.pci.write32(off & !3, nv);
        }
    }

    fn enable(&self) -> Vec<MemoryBar> {
        let Ok(bars) = self.pci.enable() else {
            return Vec::new();
        };
        let out = (0..6u8)
            .filter_map(|b| {
                bars.bar(b)
                    .map(|(base, len)| MemoryBar { bar: b, base, len })
            })
            .collect();
        *self.bars.lock().unwrap_or_else(|e| e.into_inner()) = Some(bars);
        out
    }

    fn msix_table_size(&self) -> u16 {
        self.msix_cap()
            .and_then(|c| self.pci.read32_checked(c).ok())
            .map_or(0, |h| ((h >> 16) & 0x7ff) as u16 + 1)
    }

    fn program_interrupts(&self, granted: u16) {
        let Some(bars) = self.bars() else {
            return;
        };
        // Stale message words from an earlier connection.
        for i in 0..u64::from(self.msix_table_size()) {
            self.qemu.take_ram_u32(self.qemu.msix_target + 4 * i);
        }
        if granted > 0 {
            self.intx.store(false, Ordering::Release);
            let _ = self.pci.enable_msix(&bars, granted);
        } else {
            if let Some(c) = self.msix_cap()
                && let Ok(h) = self.pci.read32_checked(c)
            {
                let _ = self.pci.write16(c + 2, ((h >> 16) as u16) & !0x8000);
            }
            // INTx enabled (command register bit 10 clear) and the IOAPIC input intercepted:
            // qtest then reports the line's level changes.
            if let Ok(cmd) = self.pci.read32_checked(0x04) {
                let _ = self.pci.write16(0x04, (cmd as u16) & !0x0400);
            }
            let _ = self.qemu.qtest(|q| q.cmd("irq_intercept_in ioapic"));
            self.intx.store(true, Ordering::Release);
        }
    }

    fn mmio_read(&self, pa: u64, width: usize) -> u64 {
        if self.removed() {
            return ones(width);
        }
        self.qemu
            .qtest(|q| q.read(width as u8, pa))
            .unwrap_or(ones(width))
    }

    fn mmio_write(&self, pa: u64, width: usize, value: u64) {
        if !self.removed() {
            let _ = self.qemu.qtest(|q| q.write(width as u8, pa, value));
        }
    }

    fn arena(&self) -> &DmaArena {
        self.qemu.arena()
    }

    fn poll_signals(&self) -> Signals {
        let mut s = Signals::default();
        if self.removed() {
            return s;
        }
        if self.intx.load(Ordering::Acquire) {
            // The line's level changes arrive between qtest answers: one round trip collects
            // them.
            let lines = self.qemu.qtest(|q| {
                let _ = q.cmd("endianness");
                std::mem::take(&mut q.irqs)
            });
            let mut level = self.line.load(Ordering::Acquire);
            for l in lines {
                if l.starts_with("IRQ raise") {
                    level = true;
                } else if l.starts_with("IRQ lower") {
                    level = false;
                }
            }
            self.line.store(level, Ordering::Release);
            s.line = level;
        } else {
            for i in 0..u32::from(self.msix_table_size()) {
                if self
                    .qemu
                    .take_ram_u32(self.qemu.msix_target + 4 * u64::from(i))
                    != 0
                {
                    s.messages.push(i);
                }
            }
        }
        s
    }

    fn surprise_remove(&self) {
        self.removed.store(true, Ordering::Release);
        // The device stops: no more DMA, no more interrupts.
        let _ = self.qemu.qmp(r#"{"execute":"stop"}"#);
    }

    fn removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }

    fn debug_queue(&self, index: u16) -> Option<String> {
        let (base, _) = self.bars()?.bar(4)?;
        // QEMU's layout: common configuration at BAR 4 + 0 (queue_select @0x16, queue_size
        // @0x18, queue_desc @0x20, queue_driver @0x28, queue_device @0x30).
        self.mmio_write(base + 0x16, 2, u64::from(index));
        let size = self.mmio_read(base + 0x18, 2);
        let rd64 = |o: u64| self.mmio_read(base + o, 4) | (self.mmio_read(base + o + 4, 4) << 32);
        let (driver, device) = (rd64(0x28), rd64(0x30));
        let mut w = [0u8; 4];
        let ram16 = |gpa: u64, w: &mut [u8; 4]| {
            self.qemu.arena().read(gpa & !3, w);
            let v = u32::from_le_bytes(*w);
            if gpa & 2 == 0 {
                v as u16
            } else {
                (v >> 16) as u16
            }
        };
        let avail_flags = ram16(driver, &mut w);
        let avail_idx = ram16(driver + 2, &mut w);
        let used_event = ram16(driver + 4 + 2 * size, &mut w);
        let used_flags = ram16(device, &mut w);
        let used_idx = ram16(device + 2, &mut w);
        let avail_event = ram16(device + 4 + 8 * size, &mut w);
        Some(format!(
            "vq {index}: size {size} avail idx {avail_idx} flags {avail_flags:#x} used_event \
             {used_event} | used idx {used_idx} flags {used_flags:#x} avail_event {avail_event}"
        ))
    }
}
