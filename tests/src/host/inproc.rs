//! The in-process device as a PCI function under the host: the virtio-pci register model behind
//! BAR 4 at an assigned address, rust-vmm's virtqueues over guest RAM, stepped by a device
//! thread, its interrupts turned into MSI-X messages through the vectors the driver programmed
//! (or, without MSI-X, the ISR status bits and a level line). This is the device for scenarios
//! that inject faults (a used ring that breaks the contract, NEEDS_RESET) and for the long
//! property runs, where QEMU would be slow.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::Duration;

use virtio::Features;
use virtio::hal::Bars as _;

use super::bus::{Bus, MemoryBar, Signals};
use crate::dma::{DmaArena, GuestRam};
use crate::netdev::{Backend, NetDevice};
use crate::pci_model::{BAR, BAR_LEN, VirtioPciModel};

/// Where BAR 4 is placed.
pub const BAR4_BASE: u64 = 0xe000_0000;

/// The in-process device on a bus.
pub struct InprocBus {
    /// The device (stepped by the device thread; scenarios reach it to inject frames or faults).
    pub device: Arc<Mutex<NetDevice>>,
    model: Arc<VirtioPciModel>,
    ram: Arc<GuestRam>,
    msix_granted: AtomicU16,
    pending: Arc<Mutex<VecDeque<u16>>>,
    removed: AtomicBool,
    exit: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl InprocBus {
    /// A device offering `features` with MAC `mac`, over `ram_mb` MiB of guest RAM.
    pub fn new(features: Features, mac: [u8; 6], ram_mb: usize) -> Arc<Self> {
        let dev = NetDevice::new(features, mac, 9000, Backend::Channel);
        let model = dev.model.clone();
        let ram = Arc::new(GuestRam::new(ram_mb << 20));
        let device = Arc::new(Mutex::new(dev));
        let pending = Arc::new(Mutex::new(VecDeque::new()));
        let exit = Arc::new(AtomicBool::new(false));
        let bus = Arc::new(Self {
            device: device.clone(),
            model,
            ram: ram.clone(),
            msix_granted: AtomicU16::new(0),
            pending: pending.clone(),
            removed: AtomicBool::new(false),
            exit: exit.clone(),
            thread: Mutex::new(None),
        });
        let t = std::thread::Builder::new()
            .name("inproc-device".into())
            .spawn(move || {
                while !exit.load(Ordering::Acquire) {
                    {
                        let mut d = device.lock().unwrap_or_else(|e| e.into_inner());
                        d.step(&ram);
                        let ints = std::mem::take(&mut d.interrupts);
                        if !ints.is_empty() {
                            pending
                                .lock()
                                .unwrap_or_else(|e| e.into_inner())
                                .extend(ints);
                        }
                    }
                    std::thread::sleep(Duration::from_micros(20));
                }
            })
            .ok();
        *bus.thread.lock().unwrap_or_else(|e| e.into_inner()) = t;
        bus
    }

    /// The register model (to make the device misbehave).
    pub fn model(&self) -> &VirtioPciModel {
        &self.model
    }

    /// Runs `f` on the device (frames to receive, frames sent, faults, link).
    pub fn with_device<T>(&self, f: impl FnOnce(&mut NetDevice) -> T) -> T {
        f(&mut self.device.lock().unwrap_or_else(|e| e.into_inner()))
    }

    fn vector_of(&self, source: u16) -> u16 {
        self.model.with(|s| {
            if source == u16::MAX {
                s.config_vector
            } else {
                s.queues
                    .get(usize::from(source))
                    .map_or(0xffff, |q| q.vector)
            }
        })
    }
}

impl Drop for InprocBus {
    fn drop(&mut self) {
        self.exit.store(true, Ordering::Release);
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

impl Bus for InprocBus {
    fn config_read(&self, offset: u16, out: &mut [u8]) {
        self.model.with(|s| {
            for (i, b) in out.iter_mut().enumerate() {
                *b = if s.misbehave.removed {
                    0xff
                } else {
                    s.config_space
                        .get(usize::from(offset) + i)
                        .copied()
                        .unwrap_or(0xff)
                };
            }
        });
    }

    fn config_write(&self, offset: u16, data: &[u8]) {
        self.model.with(|s| {
            if s.misbehave.removed {
                return;
            }
            for (i, &b) in data.iter().enumerate() {
                let o = usize::from(offset) + i;
                // Only the command register and the BARs are writable here.
                if ((4..6).contains(&o) || (0x10..0x28).contains(&o))
                    && let Some(x) = s.config_space.get_mut(o)
                {
                    *x = b;
                }
            }
        });
    }

    fn enable(&self) -> Vec<MemoryBar> {
        self.model.with(|s| {
            let lo = (BAR4_BASE as u32) | 0x4 | 0x8; // 64-bit prefetchable memory
            s.config_space[0x20..0x24].copy_from_slice(&lo.to_le_bytes());
            s.config_space[0x24..0x28].copy_from_slice(&0u32.to_le_bytes());
            s.config_space[4] |= 0x6;
        });
        vec![MemoryBar {
            bar: BAR,
            base: BAR4_BASE,
            len: BAR_LEN,
        }]
    }

    fn msix_table_size(&self) -> u16 {
        self.model
            .with(|s| u16::from_le_bytes([s.config_space[0x9a], s.config_space[0x9b]]) & 0x7ff)
            + 1
    }

    fn program_interrupts(&self, granted: u16) {
        self.msix_granted.store(granted, Ordering::Release);
        self.pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    fn mmio_read(&self, pa: u64, width: usize) -> u64 {
        let Some(off) = pa.checked_sub(BAR4_BASE).filter(|o| *o < BAR_LEN) else {
            return u64::MAX >> (64 - 8 * width.min(8));
        };
        let m: &VirtioPciModel = &self.model;
        match width {
            1 => u64::from(m.read8(BAR, off)),
            2 => u64::from(m.read16(BAR, off)),
            _ => u64::from(m.read32(BAR, off)),
        }
    }

    fn mmio_write(&self, pa: u64, width: usize, value: u64) {
        let Some(off) = pa.checked_sub(BAR4_BASE).filter(|o| *o < BAR_LEN) else {
            return;
        };
        // Register writes and the device's processing are serialized, as QEMU's big lock
        // serializes MMIO with its device models: a write that resets the device returns only
        // once the device is between steps, so no chain is processed after the reset.
        let _device = self.device.lock().unwrap_or_else(|e| e.into_inner());
        let m: &VirtioPciModel = &self.model;
        match width {
            1 => m.write8(BAR, off, value as u8),
            2 => m.write16(BAR, off, value as u16),
            _ => m.write32(BAR, off, value as u32),
        }
    }

    fn arena(&self) -> &DmaArena {
        self.ram.arena()
    }

    fn poll_signals(&self) -> Signals {
        let mut sig = Signals::default();
        if self.removed() {
            return sig;
        }
        let sources: Vec<u16> = self
            .pending
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..)
            .collect();
        let granted = self.msix_granted.load(Ordering::Acquire);
        for src in sources {
            if granted > 0 {
                let v = self.vector_of(src);
                // A vector outside the granted messages is masked: the signal is lost, as on a
                // real bus.
                if v < granted && !sig.messages.contains(&u32::from(v)) {
                    sig.messages.push(u32::from(v));
                }
            } else {
                self.model
                    .with(|s| s.isr |= if src == u16::MAX { 2 } else { 1 });
            }
        }
        if granted == 0 {
            sig.line = self.model.with(|s| s.isr != 0);
        }
        sig
    }

    fn surprise_remove(&self) {
        self.removed.store(true, Ordering::Release);
        self.model.with(|s| s.misbehave.removed = true);
        self.exit.store(true, Ordering::Release);
    }

    fn removed(&self) -> bool {
        self.removed.load(Ordering::Acquire)
    }
}
