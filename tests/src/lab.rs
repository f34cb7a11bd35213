//! The driver core on QEMU's real `virtio-net-pci`: the adapter brings the device up through
//! qtest, the TX and RX engines run under the NetAdapterCx OS side (with the verifier's checks),
//! and frames travel through QEMU's unix datagram backend to this process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use virtionet::adapter::{Adapter, BringUp};
use virtionet::config::UserSettings;
use virtionet::rxqueue::{RxQueue, RxSettings};
use virtionet::txqueue::{TxQueue, TxSettings};

use crate::os_rx::OsRx;
use crate::os_tx::{OsTx, TxFrame};
use crate::qemu::{Qemu, QemuBars, QemuOptions, QemuPci};
use crate::rng::Rng;

/// QEMU plus the driver core.
pub struct QemuMachine {
    /// QEMU.
    pub qemu: Arc<Qemu>,
    /// The adapter.
    pub adapter: Adapter<QemuBars>,
    /// TX engine.
    pub tx: TxQueue,
    /// RX engine.
    pub rx: RxQueue,
    /// OS side of TX.
    pub os_tx: OsTx,
    /// OS side of RX.
    pub os_rx: OsRx,
    /// Whether MSI-X vectors are in use (interrupts land in RAM words).
    pub msix: bool,
    /// qtest commands used by bring-up.
    pub bring_up_commands: u64,
    /// Bring-up time.
    pub bring_up_time: Duration,
}

impl QemuMachine {
    /// Starts QEMU and brings the device up.
    pub fn start(
        opts: &QemuOptions,
        user: &UserSettings,
        msix: bool,
        seed: u64,
    ) -> Result<Self, String> {
        let t0 = Instant::now();
        let qemu = Arc::new(Qemu::start(opts).map_err(|e| e.to_string())?);
        let pci = QemuPci::find(&qemu).map_err(|e| e.to_string())?;
        let bars = pci.enable().map_err(|e| e.to_string())?;
        if msix {
            pci.enable_msix(&bars, 8).map_err(|e| e.to_string())?;
        }
        let plan = BringUp {
            reset_polls: 1000,
            max_queue_size: 256,
            queue_pairs: 1,
            msix,
            random_mac: [2, 0, 0, 0, 0, 1],
        };
        let mut adapter = Adapter::start(&pci, bars, qemu.arena(), user, &plan)
            .map_err(|e| format!("bring-up: {e:?}"))?;
        let caps = *adapter.capabilities();
        let mut rng = Rng::new(seed);
        let mut os_tx = OsTx::new(256, 1024, &mut rng);
        let mut os_rx = OsRx::new(256, 512, &mut rng);
        let txs = adapter.take_tx(0).ok_or("no TX queue")?;
        let rxs = adapter.take_rx(0).ok_or("no RX queue")?;
        let settings = TxSettings {
            insert_priority: caps.priority_tagging,
            insert_vlan: caps.vlan_tagging,
            vlan_id: user.vlan_id,
        };
        let tx = TxQueue::new(
            qemu.arena(),
            txs.vq,
            256,
            adapter.features(),
            settings,
            os_tx.extensions(),
        )
        .map_err(|e| format!("{e:?}"))?;
        let rs = RxSettings {
            buffers: 256,
            buffer_size: caps.rx_buffer_size,
            strip_vlan: false,
            software_checksum: caps.rx_checksum_in_software,
        };
        let rx = RxQueue::new(
            qemu.arena(),
            rxs.vq,
            adapter.features(),
            rs,
            os_rx.extensions(),
        )
        .map_err(|e| format!("{e:?}"))?;
        let bring_up_commands = qemu.qtest(|q| q.commands);
        Ok(Self {
            qemu,
            adapter,
            tx,
            rx,
            os_tx,
            os_rx,
            msix,
            bring_up_commands,
            bring_up_time: t0.elapsed(),
        })
    }

    /// One OS poll iteration on both queues: posts what fits from `pending`, TX Advance (kick),
    /// RX post/Advance (kick), indication, and every indicated buffer returned.
    pub fn pump(&mut self, pending: &mut Vec<TxFrame>) -> Result<(), String> {
        while let Some(f) = pending.first() {
            if !self.os_tx.post(self.qemu.arena(), f) {
                break;
            }
            pending.remove(0);
        }
        if self.os_tx.driver_owns_packets() {
            let tx = &mut self.tx;
            let r = self
                .os_tx
                .callback(|p, f| tx.advance(p, f))
                .map_err(|e| format!("tx: {e:?}"))?;
            if r.kicked {
                self.adapter.notify_tx(0);
            }
        }
        self.os_tx.reclaim(self.qemu.arena());
        self.os_rx.post(256, 512);
        let rx = &mut self.rx;
        let r = self
            .os_rx
            .callback(|p, f| rx.advance(p, f))
            .map_err(|e| format!("rx: {e:?}"))?;
        if r.kicked {
            self.adapter.notify_rx(0);
        }
        self.os_rx.reclaim();
        for c in self.os_rx.held.drain(..) {
            self.rx.return_buffer(c);
        }
        if self.adapter.is_removed() {
            return Err("device removed".into());
        }
        Ok(())
    }

    /// Receives every frame waiting on the host end (non-blocking).
    pub fn host_receive(&self, out: &mut Vec<Vec<u8>>) {
        let _ = self.qemu.host.set_nonblocking(true);
        let mut buf = vec![0u8; 70_000];
        while let Ok(n) = self.qemu.host.recv(&mut buf) {
            out.push(buf[..n].to_vec());
        }
    }

    /// Sends a frame into the device from the host end, retrying while QEMU's socket is full
    /// (bounded: `false` after `deadline`).
    pub fn host_send(&mut self, frame: &[u8], deadline: Instant) -> bool {
        let _ = self.qemu.host.set_nonblocking(true);
        loop {
            match self.qemu.send_to_guest(frame) {
                Ok(_) => return true,
                Err(_) if Instant::now() < deadline => {
                    let _ = self.pump(&mut Vec::new());
                    std::thread::sleep(Duration::from_micros(50));
                }
                Err(_) => return false,
            }
        }
    }

    /// Reads and clears the MSI-X word of `vector`: whether it fired.
    pub fn take_msix(&self, vector: u64) -> bool {
        let at = self.qemu.msix_target + 4 * vector;
        let fired = self.qemu.ram_u32(at) != 0;
        self.qemu.set_ram_u32(at, 0);
        fired
    }
}
