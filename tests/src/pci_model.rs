//! A virtio-pci modern function as registers: configuration space with the virtio vendor
//! capabilities and MSI-X, and a 16 KiB memory BAR 4 holding the common configuration (0x0000),
//! ISR (0x1000), device configuration (0x2000) and notification area (0x3000, multiplier 4) —
//! the layout QEMU's `virtio-net-pci` uses (`shared/reference/qemu-qtest.md`).
//!
//! It implements the core's [`PciConfig`] and [`Bars`] so the transport can be brought up
//! against it, records what the driver did (status writes, queue registers, kicks), and can be
//! told to misbehave (reject features or vectors, never finish a reset, vanish, keep changing its
//! configuration).

use std::sync::Mutex;

use virtio::hal::{Bars, PciConfig};

/// BAR holding the virtio structures.
pub const BAR: u8 = 4;
/// Size of that BAR.
pub const BAR_LEN: u64 = 0x4000;
/// Offsets of the structures in the BAR.
pub const COMMON: u64 = 0x0000;
/// ISR offset.
pub const ISR: u64 = 0x1000;
/// Device configuration offset.
pub const DEVICE: u64 = 0x2000;
/// Notification area offset.
pub const NOTIFY: u64 = 0x3000;
/// `notify_off_multiplier`.
pub const NOTIFY_MULTIPLIER: u32 = 4;

/// Registers of one queue.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct QueueRegs {
    /// Maximum size the device offers.
    pub max_size: u16,
    /// `queue_size` as written.
    pub size: u16,
    /// `queue_msix_vector`.
    pub vector: u16,
    /// `queue_enable`.
    pub enable: u16,
    /// `queue_notify_off`.
    pub notify_off: u16,
    /// `queue_desc`.
    pub desc: u64,
    /// `queue_driver`.
    pub driver: u64,
    /// `queue_device`.
    pub device: u64,
}

/// Ways the model can break the rules on purpose.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Misbehaviour {
    /// Clear FEATURES_OK when the driver sets it.
    pub reject_features: bool,
    /// Vectors at or above this read back as NO_VECTOR.
    pub max_vector: Option<u16>,
    /// Never finish a reset (status stays non-zero).
    pub stuck_reset: bool,
    /// Surprise removal: every read is all-ones, writes vanish.
    pub removed: bool,
    /// Bump `config_generation` on this many device-config reads (then stop).
    pub unstable_config_reads: u32,
    /// `config_msix_vector` reads back as NO_VECTOR whatever is written.
    pub reject_config_vector: bool,
}

/// One register access the driver made to a BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Access {
    /// BAR index.
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u64,
    /// Width in bytes.
    pub size: u8,
    /// A write (else a read).
    pub write: bool,
}

impl Access {
    /// Whether the access lies inside BAR `bar` of `bar_len` bytes (`None`: no such BAR) and is
    /// naturally aligned — what a mapped BAR and the PCI bus require.
    pub fn is_valid(&self, bar_len: Option<u64>) -> bool {
        let inside = bar_len.is_some_and(|len| {
            self.offset
                .checked_add(u64::from(self.size))
                .is_some_and(|end| end <= len)
        });
        inside && self.offset.is_multiple_of(u64::from(self.size.max(1)))
    }
}

/// Everything the model holds.
#[derive(Debug, Clone)]
pub struct ModelState {
    /// Configuration space.
    pub config_space: [u8; 256],
    /// Offered features.
    pub device_features: u64,
    /// Accepted features as written by the driver.
    pub driver_features: u64,
    device_feature_select: u32,
    driver_feature_select: u32,
    /// `device_status`.
    pub status: u8,
    /// Every value written to `device_status`, in order.
    pub status_writes: Vec<u8>,
    /// Device resets so far (writes of 0 to `device_status`).
    pub resets: u32,
    /// `config_generation`.
    pub generation: u8,
    /// `config_msix_vector`.
    pub config_vector: u16,
    queue_select: u16,
    /// Per-queue registers.
    pub queues: Vec<QueueRegs>,
    /// Device configuration bytes.
    pub device_config: Vec<u8>,
    /// ISR status (read clears).
    pub isr: u8,
    /// Queue indices notified, in order.
    pub kicks: Vec<u16>,
    /// Deliberate misbehaviour.
    pub misbehave: Misbehaviour,
    /// Size of each memory BAR (`None`: absent); BAR 4 holds the registers.
    pub bar_lens: [Option<u64>; 6],
    /// Queue indices enabled (`queue_enable` written non-zero) since the last reset, in order.
    pub enabled: Vec<u16>,
    /// Every BAR access, in order, while `record_accesses` is set.
    pub accesses: Vec<Access>,
    /// Record every access in `accesses` (off by default: long runs make millions).
    pub record_accesses: bool,
    /// Accesses outside a BAR or not naturally aligned (always recorded).
    pub bad_accesses: Vec<Access>,
}

/// The register model.
#[derive(Debug)]
pub struct VirtioPciModel {
    state: Mutex<ModelState>,
}

fn put_cap(cs: &mut [u8; 256], at: usize, next: u8, len: u8, ty: u8, offset: u32, length: u32) {
    cs[at] = 0x09;
    cs[at + 1] = next;
    cs[at + 2] = len;
    cs[at + 3] = ty;
    cs[at + 4] = BAR;
    cs[at + 8..at + 12].copy_from_slice(&offset.to_le_bytes());
    cs[at + 12..at + 16].copy_from_slice(&length.to_le_bytes());
}

impl VirtioPciModel {
    /// A modern virtio-net function (1af4:1041) offering `features`, with `queues` queues of at
    /// most `max_size` entries, `msix` MSI-X vectors and the given device configuration bytes.
    pub fn new(
        features: u64,
        queues: u16,
        max_size: u16,
        msix: u16,
        device_config: Vec<u8>,
    ) -> Self {
        let mut cs = [0u8; 256];
        cs[0..2].copy_from_slice(&0x1af4u16.to_le_bytes());
        cs[2..4].copy_from_slice(&0x1041u16.to_le_bytes());
        cs[6..8].copy_from_slice(&0x0010u16.to_le_bytes()); // capability list
        cs[0x34] = 0x40;
        put_cap(&mut cs, 0x40, 0x50, 16, 1, COMMON as u32, 0x40);
        put_cap(&mut cs, 0x50, 0x64, 20, 2, NOTIFY as u32, 0x1000);
        cs[0x60..0x64].copy_from_slice(&NOTIFY_MULTIPLIER.to_le_bytes());
        put_cap(&mut cs, 0x64, 0x74, 16, 3, ISR as u32, 1);
        put_cap(
            &mut cs,
            0x74,
            0x84,
            16,
            4,
            DEVICE as u32,
            device_config.len() as u32,
        );
        put_cap(&mut cs, 0x84, 0x98, 20, 5, 0, 0);
        cs[0x98] = 0x11;
        cs[0x99] = 0;
        cs[0x9a..0x9c].copy_from_slice(&(msix.saturating_sub(1) & 0x7ff).to_le_bytes());
        let queues = (0..queues)
            .map(|i| QueueRegs {
                max_size,
                notify_off: i,
                vector: 0xffff,
                ..Default::default()
            })
            .collect();
        Self {
            state: Mutex::new(ModelState {
                config_space: cs,
                device_features: features,
                driver_features: 0,
                device_feature_select: 0,
                driver_feature_select: 0,
                status: 0,
                status_writes: Vec::new(),
                resets: 0,
                generation: 0,
                config_vector: 0xffff,
                queue_select: 0,
                queues,
                device_config,
                isr: 0,
                kicks: Vec::new(),
                misbehave: Misbehaviour::default(),
                bar_lens: [None, None, None, None, Some(BAR_LEN), None],
                enabled: Vec::new(),
                accesses: Vec::new(),
                record_accesses: false,
                bad_accesses: Vec::new(),
            }),
        }
    }

    /// Runs `f` on the state (inspect or change it).
    pub fn with<T>(&self, f: impl FnOnce(&mut ModelState) -> T) -> T {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        f(&mut s)
    }

    /// Changes device configuration bytes the way a device does: bump the generation, set the
    /// config-change ISR bit.
    pub fn change_config(&self, offset: usize, bytes: &[u8]) {
        self.with(|s| {
            s.device_config[offset..offset + bytes.len()].copy_from_slice(bytes);
            s.generation = s.generation.wrapping_add(1);
            s.isr |= 2;
        });
    }

    fn read(&self, bar: u8, off: u64, size: u8) -> u64 {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.note(bar, off, size, false);
        let ones = if size == 8 {
            u64::MAX
        } else {
            (1u64 << (size * 8)) - 1
        };
        if s.misbehave.removed || !s.inside_bar(bar, off, size) {
            return ones;
        }
        match s.decode(bar, off, size) {
            Some((Structure::Common, o)) => s.read_common(o, size),
            Some((Structure::Isr, 0)) => {
                let v = s.isr;
                s.isr = 0;
                u64::from(v)
            }
            Some((Structure::Device, o)) => {
                let i = o as usize;
                if s.misbehave.unstable_config_reads > 0 {
                    s.misbehave.unstable_config_reads -= 1;
                    s.generation = s.generation.wrapping_add(1);
                }
                let mut v = 0u64;
                for k in 0..usize::from(size) {
                    v |= u64::from(s.device_config.get(i + k).copied().unwrap_or(0)) << (8 * k);
                }
                v
            }
            _ => 0,
        }
    }

    fn write(&self, bar: u8, off: u64, size: u8, v: u64) {
        let mut s = self.state.lock().unwrap_or_else(|e| e.into_inner());
        s.note(bar, off, size, true);
        if s.misbehave.removed || !s.inside_bar(bar, off, size) {
            return;
        }
        match s.decode(bar, off, size) {
            Some((Structure::Common, o)) => s.write_common(o, v),
            Some((Structure::Notify, _)) => s.kicks.push(v as u16),
            _ => {}
        }
    }
}

/// The structures a capability can place in a BAR.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Structure {
    Common,
    Notify,
    Isr,
    Device,
}

impl ModelState {
    fn inside_bar(&self, bar: u8, off: u64, size: u8) -> bool {
        let len = self.bar_lens.get(usize::from(bar)).copied().flatten();
        len.is_some_and(|len| {
            off.checked_add(u64::from(size))
                .is_some_and(|end| end <= len)
        })
    }

    /// Which structure an access hits, and the offset in it: the device decodes its registers
    /// where its own capability list says they are (the first capability of each type, as a
    /// driver reads them), so a driver following a rewritten list reaches the registers it
    /// means. Overlapping structures decode in the order common, ISR, device, notify.
    fn decode(&self, bar: u8, off: u64, size: u8) -> Option<(Structure, u64)> {
        let cs = &self.config_space;
        let mut found: [Option<(u8, u64, u64)>; 4] = [None; 4];
        let mut ptr = usize::from(cs[0x34] & !3);
        for _ in 0..48 {
            if ptr < 0x40 || ptr + 16 > cs.len() {
                break;
            }
            if cs[ptr] == 0x09 && cs[ptr + 2] >= 16 {
                let slot = match cs[ptr + 3] {
                    1 => Some(0),
                    3 => Some(1),
                    4 => Some(2),
                    2 => Some(3),
                    _ => None,
                };
                let word = |at: usize| {
                    u64::from(u32::from_le_bytes([
                        cs[at],
                        cs[at + 1],
                        cs[at + 2],
                        cs[at + 3],
                    ]))
                };
                if let Some(i) = slot
                    && found[i].is_none()
                {
                    found[i] = Some((cs[ptr + 4], word(ptr + 8), word(ptr + 12)));
                }
            }
            ptr = usize::from(cs[ptr + 1] & !3);
        }
        let kinds = [
            Structure::Common,
            Structure::Isr,
            Structure::Device,
            Structure::Notify,
        ];
        let end = off + u64::from(size);
        kinds.iter().zip(found).find_map(|(k, f)| {
            let (b, start, len) = f?;
            (b == bar && off >= start && end <= start + len).then(|| (*k, off - start))
        })
    }

    fn note(&mut self, bar: u8, offset: u64, size: u8, write: bool) {
        let a = Access {
            bar,
            offset,
            size,
            write,
        };
        let len = self.bar_lens.get(usize::from(bar)).copied().flatten();
        if !a.is_valid(len) {
            self.bad_accesses.push(a);
        }
        if self.record_accesses {
            self.accesses.push(a);
        }
    }

    fn queue(&mut self) -> Option<&mut QueueRegs> {
        let i = usize::from(self.queue_select);
        self.queues.get_mut(i)
    }

    fn read_common(&mut self, off: u64, _size: u8) -> u64 {
        let q = self.queues.get(usize::from(self.queue_select)).copied();
        match off {
            0 => u64::from(self.device_feature_select),
            4 => match self.device_feature_select {
                0 => self.device_features & 0xffff_ffff,
                1 => self.device_features >> 32,
                _ => 0,
            },
            8 => u64::from(self.driver_feature_select),
            12 => match self.driver_feature_select {
                0 => self.driver_features & 0xffff_ffff,
                1 => self.driver_features >> 32,
                _ => 0,
            },
            16 => u64::from(self.config_vector),
            18 => self.queues.len() as u64,
            20 => u64::from(self.status),
            21 => u64::from(self.generation),
            22 => u64::from(self.queue_select),
            24 => q.map_or(0, |q| {
                u64::from(if q.size == 0 { q.max_size } else { q.size })
            }),
            26 => q.map_or(0xffff, |q| u64::from(q.vector)),
            28 => q.map_or(0, |q| u64::from(q.enable)),
            30 => q.map_or(0, |q| u64::from(q.notify_off)),
            32 => q.map_or(0, |q| q.desc & 0xffff_ffff),
            36 => q.map_or(0, |q| q.desc >> 32),
            40 => q.map_or(0, |q| q.driver & 0xffff_ffff),
            44 => q.map_or(0, |q| q.driver >> 32),
            48 => q.map_or(0, |q| q.device & 0xffff_ffff),
            52 => q.map_or(0, |q| q.device >> 32),
            _ => 0,
        }
    }

    fn accept_vector(&self, v: u16) -> u16 {
        match self.misbehave.max_vector {
            Some(max) if v != 0xffff && v >= max => 0xffff,
            _ => v,
        }
    }

    fn write_common(&mut self, off: u64, v: u64) {
        // Keeps the half of a 64-bit register that a 32-bit write does not replace.
        let keep = |x: u64, keep_low: bool| -> u64 {
            if keep_low {
                x & 0xffff_ffff
            } else {
                x & !0xffff_ffff
            }
        };
        match off {
            0 => self.device_feature_select = v as u32,
            8 => self.driver_feature_select = v as u32,
            12 => match self.driver_feature_select {
                0 => self.driver_features = keep(self.driver_features, false) | (v & 0xffff_ffff),
                1 => self.driver_features = keep(self.driver_features, true) | (v << 32),
                _ => {}
            },
            16 => {
                self.config_vector = if self.misbehave.reject_config_vector {
                    0xffff
                } else {
                    self.accept_vector(v as u16)
                }
            }
            20 => {
                let mut v = v as u8;
                self.status_writes.push(v);
                if v == 0 {
                    // Reset.
                    if self.misbehave.stuck_reset {
                        return;
                    }
                    self.resets += 1;
                    self.enabled.clear();
                    self.driver_features = 0;
                    for q in &mut self.queues {
                        *q = QueueRegs {
                            max_size: q.max_size,
                            notify_off: q.notify_off,
                            vector: 0xffff,
                            ..Default::default()
                        };
                    }
                    self.config_vector = 0xffff;
                }
                if v & 8 != 0
                    && (self.misbehave.reject_features
                        || self.driver_features & !self.device_features != 0)
                {
                    v &= !8;
                }
                self.status = v;
            }
            22 => self.queue_select = v as u16,
            24 => {
                if let Some(q) = self.queue() {
                    q.size = v as u16;
                }
            }
            26 => {
                let v = self.accept_vector(v as u16);
                if let Some(q) = self.queue() {
                    q.vector = v;
                }
            }
            28 => {
                let index = self.queue_select;
                if let Some(q) = self.queue() {
                    q.enable = v as u16;
                    if v != 0 {
                        self.enabled.push(index);
                    }
                }
            }
            32 | 36 | 40 | 44 | 48 | 52 => {
                if let Some(q) = self.queue() {
                    let field = match off {
                        32 | 36 => &mut q.desc,
                        40 | 44 => &mut q.driver,
                        _ => &mut q.device,
                    };
                    *field = if off.is_multiple_of(8) {
                        keep(*field, false) | (v & 0xffff_ffff)
                    } else {
                        keep(*field, true) | (v << 32)
                    };
                }
            }
            _ => {}
        }
    }
}

impl PciConfig for VirtioPciModel {
    fn read8(&self, offset: u16) -> u8 {
        self.with(|s| {
            if s.misbehave.removed {
                0xff
            } else {
                s.config_space
                    .get(usize::from(offset))
                    .copied()
                    .unwrap_or(0xff)
            }
        })
    }
}

impl Bars for &VirtioPciModel {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        self.with(|s| s.bar_lens.get(usize::from(bar)).copied().flatten())
    }
    fn read8(&self, bar: u8, offset: u64) -> u8 {
        self.read(bar, offset, 1) as u8
    }
    fn read16(&self, bar: u8, offset: u64) -> u16 {
        self.read(bar, offset, 2) as u16
    }
    fn read32(&self, bar: u8, offset: u64) -> u32 {
        self.read(bar, offset, 4) as u32
    }
    fn write8(&self, bar: u8, offset: u64, value: u8) {
        self.write(bar, offset, 1, u64::from(value));
    }
    fn write16(&self, bar: u8, offset: u64, value: u16) {
        self.write(bar, offset, 2, u64::from(value));
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) {
        self.write(bar, offset, 4, u64::from(value));
    }
}

/// Shared ownership of the registers, so that a device model and the driver under test can
/// both hold them (the model is internally synchronised).
#[derive(Debug, Clone)]
pub struct SharedModel(pub std::sync::Arc<VirtioPciModel>);

impl Bars for SharedModel {
    fn bar_len(&self, bar: u8) -> Option<u64> {
        Bars::bar_len(&&*self.0, bar)
    }
    fn read8(&self, bar: u8, offset: u64) -> u8 {
        Bars::read8(&&*self.0, bar, offset)
    }
    fn read16(&self, bar: u8, offset: u64) -> u16 {
        Bars::read16(&&*self.0, bar, offset)
    }
    fn read32(&self, bar: u8, offset: u64) -> u32 {
        Bars::read32(&&*self.0, bar, offset)
    }
    fn write8(&self, bar: u8, offset: u64, value: u8) {
        Bars::write8(&&*self.0, bar, offset, value);
    }
    fn write16(&self, bar: u8, offset: u64, value: u16) {
        Bars::write16(&&*self.0, bar, offset, value);
    }
    fn write32(&self, bar: u8, offset: u64, value: u32) {
        Bars::write32(&&*self.0, bar, offset, value);
    }
}
