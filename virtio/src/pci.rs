//! virtio over PCI (virtio 1.2 §4.1): the capability walk, the common configuration, the device
//! status state machine, feature negotiation, queue set-up, MSI-X vectors and notifications.

use core::fmt;

use crate::Features;
use crate::hal::{Bars, PciConfig};
use crate::queue::QueueAddresses;

/// PCI vendor id of virtio devices.
pub const VIRTIO_VENDOR_ID: u16 = 0x1af4;
/// Modern virtio-net device id (0x1040 + 1).
pub const VIRTIO_NET_MODERN_ID: u16 = 0x1041;
/// Transitional virtio-net device id.
pub const VIRTIO_NET_TRANSITIONAL_ID: u16 = 0x1000;

/// `VIRTIO_MSI_NO_VECTOR`.
pub const NO_VECTOR: u16 = 0xffff;

/// Device status bits (§2.1).
pub mod status {
    /// The guest noticed the device.
    pub const ACKNOWLEDGE: u8 = 1;
    /// The guest knows how to drive it.
    pub const DRIVER: u8 = 2;
    /// The driver is ready.
    pub const DRIVER_OK: u8 = 4;
    /// Feature negotiation is complete.
    pub const FEATURES_OK: u8 = 8;
    /// The device hit an error it cannot recover from without a reset.
    pub const DEVICE_NEEDS_RESET: u8 = 64;
    /// The driver gave up on the device.
    pub const FAILED: u8 = 128;
}

/// Common configuration register offsets (§4.1.4.3).
pub mod common {
    /// `device_feature_select` (le32).
    pub const DEVICE_FEATURE_SELECT: u64 = 0;
    /// `device_feature` (le32, read-only).
    pub const DEVICE_FEATURE: u64 = 4;
    /// `driver_feature_select` (le32).
    pub const DRIVER_FEATURE_SELECT: u64 = 8;
    /// `driver_feature` (le32).
    pub const DRIVER_FEATURE: u64 = 12;
    /// `config_msix_vector` (le16).
    pub const CONFIG_MSIX_VECTOR: u64 = 16;
    /// `num_queues` (le16, read-only).
    pub const NUM_QUEUES: u64 = 18;
    /// `device_status` (u8).
    pub const DEVICE_STATUS: u64 = 20;
    /// `config_generation` (u8, read-only).
    pub const CONFIG_GENERATION: u64 = 21;
    /// `queue_select` (le16).
    pub const QUEUE_SELECT: u64 = 22;
    /// `queue_size` (le16).
    pub const QUEUE_SIZE: u64 = 24;
    /// `queue_msix_vector` (le16).
    pub const QUEUE_MSIX_VECTOR: u64 = 26;
    /// `queue_enable` (le16).
    pub const QUEUE_ENABLE: u64 = 28;
    /// `queue_notify_off` (le16, read-only).
    pub const QUEUE_NOTIFY_OFF: u64 = 30;
    /// `queue_desc` (le64).
    pub const QUEUE_DESC: u64 = 32;
    /// `queue_driver` (le64).
    pub const QUEUE_DRIVER: u64 = 40;
    /// `queue_device` (le64).
    pub const QUEUE_DEVICE: u64 = 48;
    /// `queue_notify_data` (le16, virtio 1.2).
    pub const QUEUE_NOTIFY_DATA: u64 = 56;
    /// `queue_reset` (le16, virtio 1.2).
    pub const QUEUE_RESET: u64 = 58;
    /// Minimum length of the structure (through `queue_device`).
    pub const MIN_LEN: u32 = 56;
}

/// `cfg_type` values of virtio vendor capabilities (§4.1.4).
pub mod cfg_type {
    /// Common configuration.
    pub const COMMON: u8 = 1;
    /// Notifications.
    pub const NOTIFY: u8 = 2;
    /// ISR status.
    pub const ISR: u8 = 3;
    /// Device-specific configuration.
    pub const DEVICE: u8 = 4;
    /// PCI configuration access window.
    pub const PCI_CFG: u8 = 5;
}

/// Where a capability's structure lives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Region {
    /// BAR index.
    pub bar: u8,
    /// Offset in the BAR.
    pub offset: u64,
    /// Length.
    pub length: u32,
}

/// The capabilities of a virtio PCI function, validated against its BARs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Capabilities {
    /// Common configuration.
    pub common: Region,
    /// Notification area.
    pub notify: Region,
    /// `notify_off_multiplier`.
    pub notify_off_multiplier: u32,
    /// ISR status byte.
    pub isr: Region,
    /// Device configuration (absent for devices without one).
    pub device: Option<Region>,
    /// Config-space offset of the PCI configuration access capability, if present.
    pub pci_cfg: Option<u8>,
    /// MSI-X table size (number of vectors), if the function has MSI-X.
    pub msix_vectors: Option<u16>,
}

/// Transport errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransportError {
    /// The function has no capability list.
    NoCapabilityList,
    /// The capability list loops or runs past config space.
    BadCapabilityList,
    /// A required virtio capability (cfg_type) is missing.
    MissingCapability(u8),
    /// A capability's region does not fit its BAR.
    RegionOutsideBar {
        /// cfg_type.
        cfg_type: u8,
        /// BAR.
        bar: u8,
    },
    /// A capability's offset (or `notify_off_multiplier`) breaks the alignment its registers
    /// need (§4.1.4: common and device configuration 4-byte aligned, notify 2-byte aligned with
    /// an even multiplier), which would make register accesses unaligned.
    Misaligned {
        /// cfg_type.
        cfg_type: u8,
    },
    /// A capability's region is too short to hold its registers (ISR: 1 byte, notify: 2).
    RegionTooShort {
        /// cfg_type.
        cfg_type: u8,
    },
    /// Reads return all-ones: the device is gone (surprise removal).
    SurpriseRemoved,
    /// The device did not finish resetting in the allowed polls.
    ResetTimeout,
    /// The device does not offer VIRTIO_F_VERSION_1 (legacy-only device).
    NotModern,
    /// The device did not accept the features (FEATURES_OK not kept).
    FeaturesRejected,
    /// The device asks for a reset (DEVICE_NEEDS_RESET).
    NeedsReset,
    /// Queue index beyond `num_queues`, or the device's maximum size is 0.
    QueueUnavailable(u16),
    /// Queue size larger than the device allows.
    QueueTooLarge {
        /// Requested.
        size: u16,
        /// Device maximum.
        max: u16,
    },
    /// The device could not assign the MSI-X vector (read back NO_VECTOR).
    VectorRejected(u16),
    /// The notify address of a queue lies outside the notify capability.
    NotifyOutsideRegion(u16),
    /// A device configuration read outside the structure.
    ConfigOutOfRange,
    /// The configuration kept changing while being read.
    ConfigUnstable,
}

impl fmt::Display for TransportError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Self::NoCapabilityList => f.write_str("PCI function has no capability list"),
            Self::BadCapabilityList => f.write_str("PCI capability list is malformed"),
            Self::MissingCapability(t) => write!(f, "virtio capability cfg_type {t} missing"),
            Self::RegionOutsideBar { cfg_type, bar } => {
                write!(f, "virtio capability {cfg_type} lies outside BAR {bar}")
            }
            Self::Misaligned { cfg_type } => {
                write!(f, "virtio capability {cfg_type} is misaligned")
            }
            Self::RegionTooShort { cfg_type } => {
                write!(
                    f,
                    "virtio capability {cfg_type} is too short for its registers"
                )
            }
            Self::SurpriseRemoved => f.write_str("device removed (reads return all-ones)"),
            Self::ResetTimeout => f.write_str("device did not complete reset"),
            Self::NotModern => f.write_str("device does not offer VIRTIO_F_VERSION_1"),
            Self::FeaturesRejected => f.write_str("device rejected the negotiated features"),
            Self::NeedsReset => f.write_str("device needs reset"),
            Self::QueueUnavailable(q) => write!(f, "queue {q} is not available"),
            Self::QueueTooLarge { size, max } => {
                write!(f, "queue size {size} exceeds the device maximum {max}")
            }
            Self::VectorRejected(v) => write!(f, "device rejected MSI-X vector {v}"),
            Self::NotifyOutsideRegion(q) => {
                write!(
                    f,
                    "notify address of queue {q} is outside the notify region"
                )
            }
            Self::ConfigOutOfRange => f.write_str("device configuration read out of range"),
            Self::ConfigUnstable => f.write_str("device configuration kept changing"),
        }
    }
}

impl core::error::Error for TransportError {}

const PCI_STATUS: u16 = 0x06;
const PCI_STATUS_CAP_LIST: u16 = 1 << 4;
const PCI_CAP_PTR: u16 = 0x34;
const CAP_ID_VENDOR: u8 = 0x09;
const CAP_ID_MSIX: u8 = 0x11;
/// At most 48 capabilities fit in the 192 bytes after the header.
const MAX_CAPS: usize = 48;

/// Size of conventional PCI configuration space.
const CONFIG_SPACE: u16 = 256;

/// The alignment and length a capability's registers need (§4.1.4.3–4.1.4.6), checked before
/// any register is accessed: common and device configuration 4-byte aligned (their 32-bit
/// fields are then naturally aligned); notify 2-byte aligned with an even multiplier (every
/// queue's 16-bit notify register is then aligned) and at least 2 bytes; ISR at least 1 byte.
fn check_region(ty: u8, region: &Region, multiplier: u32) -> Result<(), TransportError> {
    let (align, min_len) = match ty {
        cfg_type::COMMON => (4, common::MIN_LEN),
        cfg_type::DEVICE => (4, 0),
        cfg_type::NOTIFY => (2, 2),
        cfg_type::ISR => (1, 1),
        _ => (1, 0),
    };
    // §4.1.4.4: the multiplier is 0 or an even power of two.
    let multiplier_ok = multiplier == 0 || (multiplier >= 2 && multiplier.is_power_of_two());
    if !region.offset.is_multiple_of(align) || (ty == cfg_type::NOTIFY && !multiplier_ok) {
        return Err(TransportError::Misaligned { cfg_type: ty });
    }
    if region.length < min_len {
        return Err(TransportError::RegionTooShort { cfg_type: ty });
    }
    Ok(())
}

impl Capabilities {
    /// Walks the capability list of `cfg` and validates every region against `bars`.
    ///
    /// The first usable capability of each cfg_type wins (§4.1.4: "the driver SHOULD use the
    /// first instance of each virtio structure type they can support"); one that cannot be used
    /// — outside its BAR, misaligned, too short — is skipped for a later one of the same type.
    /// Common, notify and ISR are required: without a usable one the walk fails with the first
    /// reason one was refused, or `MissingCapability`.
    pub fn read(cfg: &impl PciConfig, bars: &impl Bars) -> Result<Self, TransportError> {
        if cfg.read16(0) == 0xffff {
            return Err(TransportError::SurpriseRemoved);
        }
        if cfg.read16(PCI_STATUS) & PCI_STATUS_CAP_LIST == 0 {
            return Err(TransportError::NoCapabilityList);
        }
        let mut ptr = cfg.read8(PCI_CAP_PTR) & !3;
        let (mut common, mut notify, mut isr, mut device) = (None, None, None, None);
        let mut multiplier = 0;
        let mut pci_cfg = None;
        let mut msix_vectors = None;
        let mut seen = 0;
        // The first reason a capability of each type (index cfg_type - 1) was refused.
        let mut refused: [Option<TransportError>; 4] = [None; 4];
        while ptr != 0 {
            if ptr < 0x40 || seen == MAX_CAPS {
                return Err(TransportError::BadCapabilityList);
            }
            seen = seen.saturating_add(1);
            let at = u16::from(ptr);
            let id = cfg.read8(at);
            let next = cfg.read8(at.saturating_add(1)) & !3;
            match id {
                CAP_ID_MSIX => {
                    msix_vectors.get_or_insert(
                        (cfg.read16(at.saturating_add(2)) & 0x7ff).saturating_add(1),
                    );
                }
                CAP_ID_VENDOR => {
                    let cap_len = cfg.read8(at.saturating_add(2));
                    // The capability must lie inside conventional config space: its fields are
                    // read only up to `cap_len`, never past 0xff.
                    if at.saturating_add(u16::from(cap_len)) > CONFIG_SPACE {
                        return Err(TransportError::BadCapabilityList);
                    }
                    let ty = cfg.read8(at.saturating_add(3));
                    if cap_len < 16 {
                        // Too short to name a region (every virtio capability has 16 bytes).
                        ptr = next;
                        continue;
                    }
                    let region = Region {
                        bar: cfg.read8(at.saturating_add(4)),
                        offset: u64::from(cfg.read32(at.saturating_add(8))),
                        length: cfg.read32(at.saturating_add(12)),
                    };
                    let slot = match ty {
                        cfg_type::COMMON => &mut common,
                        cfg_type::NOTIFY => &mut notify,
                        cfg_type::ISR => &mut isr,
                        cfg_type::DEVICE => &mut device,
                        cfg_type::PCI_CFG => {
                            pci_cfg.get_or_insert(ptr);
                            ptr = next;
                            continue;
                        }
                        // Unknown types are for future specs: ignore them.
                        _ => {
                            ptr = next;
                            continue;
                        }
                    };
                    let min_len = if ty == cfg_type::NOTIFY { 20 } else { 16 };
                    // The first usable capability of each type wins; a short one is ignored, as is
                    // one naming a BAR the function lacks (§4.1.4: reserved BAR values).
                    if slot.is_none()
                        && cap_len >= min_len
                        && region.bar <= 5
                        && let Some(bar_len) = bars.bar_len(region.bar)
                    {
                        let end = region.offset.checked_add(u64::from(region.length));
                        let this_multiplier = if ty == cfg_type::NOTIFY {
                            cfg.read32(at.saturating_add(16))
                        } else {
                            0
                        };
                        let usable = if end.is_none_or(|end| end > bar_len) {
                            Err(TransportError::RegionOutsideBar {
                                cfg_type: ty,
                                bar: region.bar,
                            })
                        } else {
                            check_region(ty, &region, this_multiplier)
                        };
                        match usable {
                            Ok(()) => {
                                if ty == cfg_type::NOTIFY {
                                    multiplier = this_multiplier;
                                }
                                *slot = Some(region);
                            }
                            Err(e) => {
                                // ty is COMMON..=DEVICE here (1..=4): a slot of `refused`.
                                if let Some(r) = refused.get_mut(usize::from(ty.wrapping_sub(1))) {
                                    r.get_or_insert(e);
                                }
                            }
                        }
                    }
                }
                _ => {}
            }
            ptr = next;
        }
        let missing = |ty: u8| {
            refused
                .get(usize::from(ty.wrapping_sub(1)))
                .copied()
                .flatten()
                .unwrap_or(TransportError::MissingCapability(ty))
        };
        // The device configuration is optional, but one offered and unusable is a broken
        // device, not an absent structure.
        if device.is_none()
            && let Some(e) = refused
                .get(usize::from(cfg_type::DEVICE - 1))
                .copied()
                .flatten()
        {
            return Err(e);
        }
        Ok(Self {
            common: common.ok_or_else(|| missing(cfg_type::COMMON))?,
            notify: notify.ok_or_else(|| missing(cfg_type::NOTIFY))?,
            notify_off_multiplier: multiplier,
            isr: isr.ok_or_else(|| missing(cfg_type::ISR))?,
            device,
            pci_cfg,
            msix_vectors,
        })
    }
}

/// Where to write to notify one queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Notifier {
    bar: u8,
    offset: u64,
    queue: u16,
}

impl Notifier {
    /// BAR and offset of the notify register.
    pub const fn location(&self) -> (u8, u64) {
        (self.bar, self.offset)
    }

    /// The queue index written as the notification value.
    pub const fn queue(&self) -> u16 {
        self.queue
    }
}

/// A modern virtio PCI transport over register access `B`.
#[derive(Debug)]
pub struct Transport<B> {
    bars: B,
    caps: Capabilities,
    num_queues: u16,
}

impl<B: Bars> Transport<B> {
    /// Walks the capabilities and returns the transport (nothing is written to the device).
    pub fn probe(cfg: &impl PciConfig, bars: B) -> Result<Self, TransportError> {
        let caps = Capabilities::read(cfg, &bars)?;
        let mut t = Self {
            bars,
            caps,
            num_queues: 0,
        };
        let n = t.read16(common::NUM_QUEUES);
        if n == 0xffff && t.read8(common::DEVICE_STATUS) == 0xff {
            return Err(TransportError::SurpriseRemoved);
        }
        t.num_queues = n;
        Ok(t)
    }

    /// The capabilities found.
    pub const fn capabilities(&self) -> &Capabilities {
        &self.caps
    }

    /// The register access (for the harness and diagnostics).
    pub const fn bars(&self) -> &B {
        &self.bars
    }

    /// `num_queues` as read at probe time (before feature negotiation; it may grow after it).
    pub const fn num_queues(&self) -> u16 {
        self.num_queues
    }

    /// BAR offset of common-configuration register `off` (the region was checked to lie inside
    /// its BAR; a sum that would overflow saturates to an offset outside every BAR).
    const fn reg(&self, off: u64) -> u64 {
        self.caps.common.offset.saturating_add(off)
    }

    fn read8(&self, off: u64) -> u8 {
        self.bars.read8(self.caps.common.bar, self.reg(off))
    }
    fn read16(&self, off: u64) -> u16 {
        self.bars.read16(self.caps.common.bar, self.reg(off))
    }
    fn read32(&self, off: u64) -> u32 {
        self.bars.read32(self.caps.common.bar, self.reg(off))
    }
    fn write8(&self, off: u64, v: u8) {
        self.bars.write8(self.caps.common.bar, self.reg(off), v);
    }
    fn write16(&self, off: u64, v: u16) {
        self.bars.write16(self.caps.common.bar, self.reg(off), v);
    }
    fn write32(&self, off: u64, v: u32) {
        self.bars.write32(self.caps.common.bar, self.reg(off), v);
    }
    fn write64(&self, off: u64, v: u64) {
        self.write32(off, v as u32);
        self.write32(off.saturating_add(4), (v >> 32) as u32);
    }

    /// `device_status`.
    pub fn status(&self) -> u8 {
        self.read8(common::DEVICE_STATUS)
    }

    /// Whether the device is gone: status and `num_queues` both read all-ones.
    pub fn is_removed(&self) -> bool {
        self.status() == 0xff && self.read16(common::NUM_QUEUES) == 0xffff
    }

    /// Whether the device set DEVICE_NEEDS_RESET.
    pub fn needs_reset(&self) -> bool {
        let s = self.status();
        s != 0xff && s & status::DEVICE_NEEDS_RESET != 0
    }

    fn add_status(&self, bits: u8) {
        let s = self.status();
        self.write8(common::DEVICE_STATUS, s | bits);
    }

    /// Resets the device: writes 0 and polls until status reads 0, at most `max_polls` times.
    pub fn reset(&self, max_polls: u32) -> Result<(), TransportError> {
        self.write8(common::DEVICE_STATUS, 0);
        for _ in 0..max_polls.max(1) {
            match self.status() {
                0 => return Ok(()),
                0xff if self.is_removed() => return Err(TransportError::SurpriseRemoved),
                _ => {}
            }
        }
        Err(TransportError::ResetTimeout)
    }

    /// Sets ACKNOWLEDGE and DRIVER (after a reset).
    pub fn acknowledge(&self) {
        self.add_status(status::ACKNOWLEDGE);
        self.add_status(status::DRIVER);
    }

    /// The 64 feature bits the device offers.
    pub fn device_features(&self) -> Features {
        self.write32(common::DEVICE_FEATURE_SELECT, 0);
        let low = self.read32(common::DEVICE_FEATURE);
        self.write32(common::DEVICE_FEATURE_SELECT, 1);
        let high = self.read32(common::DEVICE_FEATURE);
        Features::from_words(low, high)
    }

    /// Negotiates: accepts `wanted ∩ offered`, sets FEATURES_OK and checks that the device kept
    /// it. VERSION_1 is required. On rejection the device is marked FAILED.
    pub fn negotiate(&self, wanted: Features) -> Result<Features, TransportError> {
        let offered = self.device_features();
        if offered.bits() == u64::MAX && self.is_removed() {
            return Err(TransportError::SurpriseRemoved);
        }
        if !offered.contains(Features::VERSION_1) {
            self.fail();
            return Err(TransportError::NotModern);
        }
        let accepted =
            Features::from_bits_truncate(offered.bits() & wanted.bits()) | Features::VERSION_1;
        self.write32(common::DRIVER_FEATURE_SELECT, 0);
        self.write32(common::DRIVER_FEATURE, accepted.low());
        self.write32(common::DRIVER_FEATURE_SELECT, 1);
        self.write32(common::DRIVER_FEATURE, accepted.high());
        self.add_status(status::FEATURES_OK);
        let s = self.status();
        if s == 0xff || s & status::FEATURES_OK == 0 {
            self.fail();
            return Err(TransportError::FeaturesRejected);
        }
        Ok(accepted)
    }

    /// Sets FAILED.
    pub fn fail(&self) {
        self.add_status(status::FAILED);
    }

    /// Sets DRIVER_OK: the device may start.
    pub fn driver_ok(&self) {
        self.add_status(status::DRIVER_OK);
    }

    /// The maximum size of queue `index` (0 if it does not exist). `num_queues` is read again
    /// each time: a device may add queues when features are negotiated (QEMU's virtio-net
    /// realizes one queue pair and adds the others when MQ is accepted). `num_queues` = 0xffff
    /// is a real count (0x7fff pairs and a control queue); a removed device is told by its
    /// `queue_size` reading all-ones (above the spec's 0x8000), which is reported as 0.
    pub fn queue_max_size(&self, index: u16) -> u16 {
        let n = self.read16(common::NUM_QUEUES);
        if index >= n {
            return 0;
        }
        self.write16(common::QUEUE_SELECT, index);
        match self.read16(common::QUEUE_SIZE) {
            0xffff => 0,
            max => max,
        }
    }

    /// Programs queue `index` (size, ring addresses, MSI-X vector, read back) and enables it;
    /// returns where to notify it.
    pub fn setup_queue(
        &self,
        index: u16,
        size: u16,
        addresses: QueueAddresses,
        vector: u16,
    ) -> Result<Notifier, TransportError> {
        let max = self.queue_max_size(index);
        if max == 0 || max == 0xffff {
            return Err(TransportError::QueueUnavailable(index));
        }
        if size > max || size == 0 {
            return Err(TransportError::QueueTooLarge { size, max });
        }
        self.write16(common::QUEUE_SELECT, index);
        self.write16(common::QUEUE_SIZE, size);
        self.write64(common::QUEUE_DESC, addresses.desc);
        self.write64(common::QUEUE_DRIVER, addresses.driver);
        self.write64(common::QUEUE_DEVICE, addresses.device);
        self.write16(common::QUEUE_MSIX_VECTOR, vector);
        if vector != NO_VECTOR && self.read16(common::QUEUE_MSIX_VECTOR) != vector {
            return Err(TransportError::VectorRejected(vector));
        }
        // u16 × u32 fits u64; the offset is even (the multiplier is, `check_region`).
        let off = u64::from(self.read16(common::QUEUE_NOTIFY_OFF))
            .saturating_mul(u64::from(self.caps.notify_off_multiplier));
        if off.saturating_add(2) > u64::from(self.caps.notify.length) {
            return Err(TransportError::NotifyOutsideRegion(index));
        }
        self.write16(common::QUEUE_ENABLE, 1);
        Ok(Notifier {
            bar: self.caps.notify.bar,
            offset: self.caps.notify.offset.saturating_add(off),
            queue: index,
        })
    }

    /// Sets the configuration-change MSI-X vector and checks the device accepted it.
    pub fn set_config_vector(&self, vector: u16) -> Result<(), TransportError> {
        self.write16(common::CONFIG_MSIX_VECTOR, vector);
        if vector != NO_VECTOR && self.read16(common::CONFIG_MSIX_VECTOR) != vector {
            return Err(TransportError::VectorRejected(vector));
        }
        Ok(())
    }

    /// Notifies a queue (a kick).
    pub fn notify(&self, n: &Notifier) {
        self.bars.write16(n.bar, n.offset, n.queue);
    }

    /// Where the ISR status register is (BAR, offset): an interrupt service routine reads it
    /// directly, without the lock that guards the transport.
    pub const fn isr_location(&self) -> (u8, u64) {
        (self.caps.isr.bar, self.caps.isr.offset)
    }

    /// Reads (and so clears) the ISR status: bit 0 queue interrupt, bit 1 configuration change.
    pub fn read_isr(&self) -> u8 {
        self.bars.read8(self.caps.isr.bar, self.caps.isr.offset)
    }

    /// `config_generation`.
    pub fn config_generation(&self) -> u8 {
        self.read8(common::CONFIG_GENERATION)
    }

    /// Reads device configuration with `read`, retrying (up to `tries` times) until
    /// `config_generation` is the same before and after, so that multi-field reads are consistent.
    pub fn read_config<T>(
        &self,
        tries: u32,
        mut read: impl FnMut(&DeviceConfig<'_, B>) -> Result<T, TransportError>,
    ) -> Result<T, TransportError> {
        let cfg = DeviceConfig {
            bars: &self.bars,
            region: self
                .caps
                .device
                .ok_or(TransportError::MissingCapability(cfg_type::DEVICE))?,
        };
        for _ in 0..tries.max(1) {
            let before = self.config_generation();
            let value = read(&cfg)?;
            if self.config_generation() == before {
                return Ok(value);
            }
        }
        Err(TransportError::ConfigUnstable)
    }
}

/// Bounds-checked reads of the device configuration structure.
#[derive(Debug)]
pub struct DeviceConfig<'a, B> {
    bars: &'a B,
    region: Region,
}

impl<B: Bars> DeviceConfig<'_, B> {
    /// Where field `offset` of `size` bytes is in the BAR: inside the structure and naturally
    /// aligned (the structure is 4-byte aligned, `Capabilities::read`), else an error.
    fn at(&self, offset: u32, size: u32) -> Result<u64, TransportError> {
        if offset
            .checked_add(size)
            .is_none_or(|end| end > self.region.length)
            || !offset.is_multiple_of(size.max(1))
        {
            return Err(TransportError::ConfigOutOfRange);
        }
        Ok(self.region.offset.saturating_add(u64::from(offset)))
    }

    /// Length of the structure.
    pub const fn len(&self) -> u32 {
        self.region.length
    }

    /// Whether the structure is empty.
    pub const fn is_empty(&self) -> bool {
        self.region.length == 0
    }

    /// 8-bit field.
    pub fn read8(&self, offset: u32) -> Result<u8, TransportError> {
        Ok(self.bars.read8(self.region.bar, self.at(offset, 1)?))
    }

    /// 16-bit field.
    pub fn read16(&self, offset: u32) -> Result<u16, TransportError> {
        Ok(self.bars.read16(self.region.bar, self.at(offset, 2)?))
    }

    /// 32-bit field.
    pub fn read32(&self, offset: u32) -> Result<u32, TransportError> {
        Ok(self.bars.read32(self.region.bar, self.at(offset, 4)?))
    }
}
