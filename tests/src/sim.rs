//! The whole simulated machine for end-to-end tests of the driver core: the in-process virtio-net
//! device brought up by the adapter through the register model, TX and RX engines for one queue
//! pair, and the NetAdapterCx OS side of both queues with the verifier's checks.

use virtio::Features;
use virtionet::adapter::{Adapter, BringUp};
use virtionet::config::UserSettings;
use virtionet::rxqueue::{RxQueue, RxSettings};
use virtionet::txqueue::{TxQueue, TxSettings};

use crate::dma::GuestRam;
use crate::netdev::{Backend, NetDevice};
use crate::os_rx::OsRx;
use crate::os_tx::{OsTx, TxFrame};
use crate::pci_model::SharedModel;
use crate::rng::Rng;

/// The device's MAC address.
pub const MAC: [u8; 6] = [0x52, 0x54, 0, 0x12, 0x34, 0x56];

/// The bring-up plan used (no MSI-X: interrupts are recorded by the device model).
pub const PLAN: BringUp = BringUp {
    reset_polls: 10,
    max_queue_size: 256,
    queue_pairs: 1,
    msix_messages: 0,
    random_mac: [2, 0, 0, 0, 0, 7],
    pairs_need_rss: false,
};

/// Device, adapter, engines and OS side.
pub struct Machine {
    /// Part of the machine.
    pub ram: GuestRam,
    /// Part of the machine.
    pub dev: NetDevice,
    /// Part of the machine.
    pub adapter: Adapter<SharedModel>,
    /// Part of the machine.
    pub tx: TxQueue,
    /// Part of the machine.
    pub rx: RxQueue,
    /// Part of the machine.
    pub os_tx: OsTx,
    /// Part of the machine.
    pub os_rx: OsRx,
    /// Part of the machine.
    pub rng: Rng,
    /// The transmit queue's kick register (what the glue keeps to give the virtqueue back when
    /// NetAdapterCx destroys the queue).
    pub tx_notifier: virtio::pci::Notifier,
    /// The receive queue's notification gate (the glue's, `virtionet::notify`).
    pub rx_gate: virtionet::notify::NotifyGate,
    /// The transmit queue's.
    pub tx_gate: virtionet::notify::NotifyGate,
}

/// A TX engine over `vq` for a packet ring of `packets` elements, tagging as the adapter's
/// capabilities allow.
pub fn tx_engine(
    ram: &GuestRam,
    adapter: &Adapter<SharedModel>,
    vq: virtio::queue::VirtQueue,
    packets: u32,
    ext: virtionet::txqueue::TxExtensions,
    vlan_id: u16,
) -> TxQueue {
    let caps = adapter.capabilities();
    let settings = TxSettings {
        insert_priority: caps.priority_tagging,
        insert_vlan: caps.vlan_tagging,
        vlan_id,
        confidential: caps.confidential,
    };
    TxQueue::new(ram.arena(), vq, packets, adapter.features(), settings, ext).unwrap()
}

/// Builds a machine: a device offering `features`, brought up with `user` settings.
pub fn machine(features: Features, backend: Backend, user: &UserSettings, seed: u64) -> Machine {
    let ram = GuestRam::new(64 << 20);
    let dev = NetDevice::new(features, MAC, 9000, backend);
    let regs = SharedModel(dev.model.clone());
    let mut adapter =
        Adapter::start(&*dev.model, regs, ram.arena(), user, &PLAN).expect("bring-up");
    let caps = *adapter.capabilities();
    let mut rng = Rng::new(seed);
    let mut os_tx = OsTx::new(128, 512, &mut rng);
    let mut os_rx = OsRx::new(128, 256, &mut rng);
    let txs = adapter.take_tx(0).unwrap();
    let tx_notifier = txs.notifier;
    let rxs = adapter.take_rx(0).unwrap();
    let tx = tx_engine(
        &ram,
        &adapter,
        txs.vq,
        128,
        os_tx.extensions(),
        user.vlan_id,
    );
    let rs = RxSettings {
        buffers: 256,
        buffer_size: caps.rx_buffer_size,
        strip_vlan: caps.vlan_tagging,
        software_checksum: caps.rx_checksum_in_software,
        bounce: caps.confidential,
        context_tag: 0,
    };
    let rx = RxQueue::new(
        ram.arena(),
        rxs.vq,
        adapter.features(),
        rs,
        os_rx.extensions(),
    )
    .unwrap();
    Machine {
        ram,
        dev,
        adapter,
        tx,
        rx,
        os_tx,
        os_rx,
        rng,
        tx_notifier,
        rx_gate: virtionet::notify::NotifyGate::new(),
        tx_gate: virtionet::notify::NotifyGate::new(),
    }
}

impl Machine {
    /// One round: OS posts, TX Advance (+kick), device runs, RX Advance, stack returns buffers.
    pub fn round(&mut self, pending: &mut Vec<TxFrame>) -> Result<(), String> {
        while let Some(f) = pending.first() {
            if !self.os_tx.post(self.ram.arena(), f) {
                break;
            }
            pending.remove(0);
        }
        if self.os_tx.driver_owns_packets() {
            let tx = &mut self.tx;
            let r = self
                .os_tx
                .callback(|p, f| tx.advance(p, f))
                .map_err(|e| format!("tx {e:?}"))?;
            if r.kicked {
                self.adapter.notify_tx(0);
            }
        }
        self.os_tx.reclaim(self.ram.arena());
        self.dev.step(&self.ram);
        self.os_rx.post(64, 128);
        let rx = &mut self.rx;
        let r = self
            .os_rx
            .callback(|p, f| rx.advance(p, f))
            .map_err(|e| format!("rx {e:?}"))?;
        if r.kicked {
            self.adapter.notify_rx(0);
        }
        self.os_rx.reclaim();
        let keep = self.rng.below(self.os_rx.held.len() as u64 + 1) as usize;
        for c in self.os_rx.held.drain(keep..) {
            self.rx.return_buffer(c);
        }
        Ok(())
    }
}
