//! The rig both `benches/datapath.rs` and `examples/datapath_cost.rs` drive: the frame, the
//! minimal device's view of a virtqueue, and virtio-drivers' transport over nothing.

use virtio::queue::VirtQueue;
use vnet_harness::dma::GuestRam;

use super::mini_net::MiniQueue;
use super::vq_peers::BenchHal;

/// Batch size of every case.
pub const BATCH: usize = 64;
/// Virtqueue size of every case.
pub const QSIZE: u16 = 256;

/// An IPv4/TCP frame of `len` bytes (≥ 54).
pub fn frame(len: usize) -> Vec<u8> {
    let payload = core::iter::repeat_n(0xab, len - 54);
    vnet_harness::frames::tcp4(
        [0x52, 0x54, 0, 0x12, 0x34, 0x56],
        [2, 0, 0, 0, 0, 1],
        0x10,
        payload,
    )
}

/// The device's view of `vq` in `ram`.
pub fn mini(ram: &GuestRam, vq: &VirtQueue) -> MiniQueue {
    let a = vq.addresses();
    let n = usize::from(vq.size());
    MiniQueue {
        desc: ram.arena().cpu_ptr(a.desc, 16 * n).unwrap(),
        avail: ram.arena().cpu_ptr(a.driver, 6 + 2 * n).unwrap(),
        used: ram.arena().cpu_ptr(a.device, 6 + 8 * n).unwrap(),
        size: vq.size(),
        last_avail: 0,
        used_idx: 0,
    }
}

/// The queue addresses virtio-drivers programmed (descriptor, driver, device area).
pub type QueueAddrs = std::rc::Rc<std::cell::Cell<[Option<(u64, u64, u64)>; 2]>>;

/// virtio-drivers' transport over nothing: it records the queue addresses (shared with the
/// bench, which plays the device) and offers VERSION_1, MAC and EVENT_IDX.
#[derive(Default)]
pub struct NetTransport {
    /// What the driver programmed.
    pub queues: QueueAddrs,
}

impl virtio_drivers::transport::Transport for NetTransport {
    fn device_type(&self) -> virtio_drivers::transport::DeviceType {
        virtio_drivers::transport::DeviceType::Network
    }
    fn read_device_features(&mut self) -> u64 {
        (1 << 32) | (1 << 5) | (1 << 29)
    }
    fn write_driver_features(&mut self, _f: u64) {}
    fn max_queue_size(&mut self, _q: u16) -> u32 {
        u32::from(QSIZE)
    }
    fn notify(&mut self, _q: u16) {}
    fn get_status(&self) -> virtio_drivers::transport::DeviceStatus {
        virtio_drivers::transport::DeviceStatus::empty()
    }
    fn set_status(&mut self, _s: virtio_drivers::transport::DeviceStatus) {}
    fn set_guest_page_size(&mut self, _s: u32) {}
    fn requires_legacy_layout(&self) -> bool {
        false
    }
    fn queue_set(&mut self, q: u16, _size: u32, d: u64, a: u64, u: u64) {
        let mut v = self.queues.get();
        v[usize::from(q)] = Some((d, a, u));
        self.queues.set(v);
    }
    fn queue_unset(&mut self, _q: u16) {}
    fn queue_used(&mut self, q: u16) -> bool {
        self.queues.get()[usize::from(q)].is_some()
    }
    fn ack_interrupt(&mut self) -> virtio_drivers::transport::InterruptStatus {
        virtio_drivers::transport::InterruptStatus::empty()
    }
    fn read_config_generation(&self) -> u32 {
        0
    }
    fn read_config_space<T: zerocopy::FromBytes + zerocopy::IntoBytes>(
        &self,
        _o: usize,
    ) -> virtio_drivers::Result<T> {
        Ok(T::new_zeroed())
    }
    fn write_config_space<T: zerocopy::IntoBytes + zerocopy::Immutable>(
        &mut self,
        _o: usize,
        _v: T,
    ) -> virtio_drivers::Result<()> {
        Ok(())
    }
}

/// virtio-drivers' raw network device over [`NetTransport`].
pub type Net =
    virtio_drivers::device::net::VirtIONetRaw<BenchHal, NetTransport, { QSIZE as usize }>;

/// The device's view of virtio-drivers' queue `q`.
pub fn rcore_queue(addrs: &QueueAddrs, q: usize) -> MiniQueue {
    let (d, a, u) = addrs.get()[q].unwrap();
    MiniQueue {
        desc: d as *mut u8,
        avail: a as *mut u8,
        used: u as *mut u8,
        size: QSIZE,
        last_avail: 0,
        used_idx: 0,
    }
}
