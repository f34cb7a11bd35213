//! PCI on the q35 bus with no firmware: configuration space through ports 0xCF8/0xCFC, the
//! virtio-net function found on bus 0, its BARs sized and assigned, memory decoding and bus
//! mastering enabled, MSI-X pointed at guest RAM words — then [`QemuPci`] and [`QemuBars`]
//! implement the core's [`PciConfig`] and [`Bars`] over qtest.

use std::sync::Arc;

use virtio::hal::{Bars, PciConfig};

use super::launcher::{Qemu, QemuError};

/// Where BAR 4 (the virtio structures, 64-bit) is placed: inside q35's PCI hole.
pub const BAR4_BASE: u64 = 0xe000_0000;
/// Where BAR 1 (the MSI-X table) is placed.
pub const BAR1_BASE: u64 = 0xe100_0000;

/// Configuration space of one function.
#[derive(Debug, Clone)]
pub struct QemuPci {
    qemu: Arc<Qemu>,
    devfn: u32,
}

fn addr(devfn: u32, off: u16) -> u32 {
    0x8000_0000 | (devfn << 8) | u32::from(off & 0xfc)
}

impl QemuPci {
    /// Finds the first virtio-net function (1af4:1041 or 1af4:1000) on bus 0.
    pub fn find(qemu: &Arc<Qemu>) -> Result<Self, QemuError> {
        for dev in 0..32u32 {
            let p = Self {
                qemu: qemu.clone(),
                devfn: dev << 3,
            };
            let id = p.read32_checked(0)?;
            if id & 0xffff == 0x1af4 && matches!(id >> 16, 0x1041 | 0x1000) {
                return Ok(p);
            }
        }
        Err(QemuError::Io("no virtio-net function on bus 0".into()))
    }

    /// Reads the configuration dword at `off` (aligned down to 4).
    pub fn read32_checked(&self, off: u16) -> Result<u32, QemuError> {
        self.qemu
            .qtest(|q| {
                q.out(4, 0xcf8, addr(self.devfn, off))?;
                q.inp(4, 0xcfc)
            })
            .map_err(QemuError::Qtest)
    }

    /// Writes the configuration dword at `off` (aligned down to 4).
    pub fn write32(&self, off: u16, v: u32) -> Result<(), QemuError> {
        self.qemu
            .qtest(|q| {
                q.out(4, 0xcf8, addr(self.devfn, off))?;
                q.out(4, 0xcfc, v)
            })
            .map_err(QemuError::Qtest)
    }

    /// Writes the configuration word at `off` (aligned down to 2).
    pub fn write16(&self, off: u16, v: u16) -> Result<(), QemuError> {
        self.qemu
            .qtest(|q| {
                q.out(4, 0xcf8, addr(self.devfn, off))?;
                q.out(2, 0xcfc + (off & 2), u32::from(v))
            })
            .map_err(QemuError::Qtest)
    }

    /// Sizes a BAR (write all-ones, read back, restore); returns (size, is 64-bit).
    fn size_bar(&self, bar: u16) -> Result<(u64, bool), QemuError> {
        let off = 0x10 + 4 * bar;
        let orig = self.read32_checked(off)?;
        self.write32(off, 0xffff_ffff)?;
        let lo = self.read32_checked(off)?;
        self.write32(off, orig)?;
        let is64 = orig & 1 == 0 && (orig >> 1) & 3 == 2;
        let mut mask = u64::from(lo & !0xf);
        if is64 {
            let hi_off = off + 4;
            let orig_hi = self.read32_checked(hi_off)?;
            self.write32(hi_off, 0xffff_ffff)?;
            let hi = self.read32_checked(hi_off)?;
            self.write32(hi_off, orig_hi)?;
            mask |= u64::from(hi) << 32;
        } else {
            mask |= 0xffff_ffff_0000_0000;
        }
        Ok(if mask == 0 || lo == 0 {
            (0, is64)
        } else {
            ((!mask).wrapping_add(1), is64)
        })
    }

    /// Assigns BAR 4 and BAR 1, enables memory space and bus mastering, and returns the BARs.
    pub fn enable(&self) -> Result<QemuBars, QemuError> {
        let mut bars = [None; 6];
        for (bar, base) in [(4u16, BAR4_BASE), (1, BAR1_BASE)] {
            let (size, is64) = self.size_bar(bar)?;
            if size == 0 {
                continue;
            }
            self.write32(0x10 + 4 * bar, base as u32)?;
            if is64 {
                self.write32(0x14 + 4 * bar, (base >> 32) as u32)?;
            }
            bars[usize::from(bar)] = Some((base, size));
        }
        let cmd = self.read32_checked(0x04)? as u16;
        self.write16(0x04, cmd | 0x6)?;
        Ok(QemuBars {
            qemu: self.qemu.clone(),
            bars,
        })
    }

    /// Enables MSI-X with `vectors` entries, entry i writing `0x1000 + i` to the RAM word at
    /// `qemu.msix_target + 4 i`; the table's other entries are masked (an OS programs only the
    /// messages it granted). Returns the number of vectors the table has.
    pub fn enable_msix(&self, bars: &QemuBars, vectors: u16) -> Result<u16, QemuError> {
        let mut ptr = (self.read32_checked(0x34)? & 0xfc) as u16;
        while ptr != 0 {
            let hdr = self.read32_checked(ptr)?;
            if hdr & 0xff == 0x11 {
                let table_size = ((hdr >> 16) & 0x7ff) as u16 + 1;
                let table = self.read32_checked(ptr + 4)?;
                let (bir, offset) = ((table & 7) as u8, u64::from(table & !7));
                let n = vectors.min(table_size);
                for i in 0..u64::from(table_size) {
                    let e = offset + 16 * i;
                    if i >= u64::from(n) {
                        bars.write32(bir, e + 12, 1); // masked
                        continue;
                    }
                    let target = self.qemu.msix_target + 4 * i;
                    bars.write32(bir, e, target as u32);
                    bars.write32(bir, e + 4, (target >> 32) as u32);
                    bars.write32(bir, e + 8, 0x1000 + i as u32);
                    bars.write32(bir, e + 12, 0); // unmasked
                }
                let ctrl = (hdr >> 16) as u16;
                self.write16(ptr + 2, ctrl | 0x8000)?;
                return Ok(table_size);
            }
            ptr = ((hdr >> 8) & 0xfc) as u16;
        }
        Err(QemuError::Io("no MSI-X capability".into()))
    }
}

impl PciConfig for QemuPci {
    fn read8(&self, offset: u16) -> u8 {
        self.read32_checked(offset)
            .map_or(0xff, |v| (v >> (8 * u32::from(offset & 3))) as u8)
    }
}

/// The function's memory BARs, accessed through qtest.
#[derive(Debug, Clone)]
pub struct QemuBars {
    qemu: Arc<Qemu>,
    bars: [Option<(u64, u64)>; 6],
}

impl QemuBars {
    /// BAR `i`'s (base address, size), if assigned.
    pub fn bar(&self, i: u8) -> Option<(u64, u64)> {
        self.bars.get(usize::from(i)).copied().flatten()
    }

    fn at(&self, bar: u8, offset: u64, width: u64) -> Option<u64> {
        let (base, len) = self.bars.get(usize::from(bar)).copied().flatten()?;
        (offset.checked_add(width)? <= len).then_some(base + offset)
    }

    fn rd(&self, bar: u8, offset: u64, width: u8) -> u64 {
        let ones = if width == 8 {
            u64::MAX
        } else {
            (1u64 << (8 * width)) - 1
        };
        match self.at(bar, offset, u64::from(width)) {
            Some(a) => self.qemu.qtest(|q| q.read(width, a)).unwrap_or(ones),
            None => ones,
        }
    }

    fn wr(&self, bar: u8, offset: u64, width: u8, v: u64) {
        if let Some(a) = self.at(bar, offset, u64::from(width)) {
            let _ = self.qemu.qtest(|q| q.write(width, a, v));
        }
    }
}

impl Bars for QemuBars {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.bars
            .get(usize::from(bar))
            .copied()
            .flatten()
            .map(|b| b.1)
    }
    fn read8(&self, bar: u8, offset: u64) -> u8 {
        self.rd(bar, offset, 1) as u8
    }
    fn read16(&self, bar: u8, offset: u64) -> u16 {
        self.rd(bar, offset, 2) as u16
    }
    fn read32(&self, bar: u8, offset: u64) -> u32 {
        self.rd(bar, offset, 4) as u32
    }
    fn write8(&self, bar: u8, offset: u64, value: u8) {
        self.wr(bar, offset, 1, u64::from(value));
    }
    fn write16(&self, bar: u8, offset: u64, value: u16) {
        self.wr(bar, offset, 2, u64::from(value));
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) {
        self.wr(bar, offset, 4, u64::from(value));
    }
}
