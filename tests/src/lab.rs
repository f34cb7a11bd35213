//! The driver core on QEMU's real `virtio-net-pci`: the adapter brings the device up through
//! qtest, the TX and RX engines run under the NetAdapterCx OS side (with the verifier's checks),
//! and frames travel through QEMU's unix datagram backend to this process.

use std::sync::Arc;
use std::time::{Duration, Instant};

use virtionet::adapter::{Adapter, BringUp, ControlProgress};
use virtionet::config::UserSettings;
use virtionet::rxqueue::{RxQueue, RxSettings};
use virtionet::stats::{RxStats, TxStats};
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
    /// Queue pairs 1 and up (multi-queue), with their OS sides.
    pub extra: Vec<QueuePair>,
    /// Whether MSI-X vectors are in use (interrupts land in RAM words).
    pub msix: bool,
    /// With `msix` and `count_interrupts`: the polls of queue pair 0 ([`pump`](Self::pump))
    /// that found its RX (index 0) or TX (1) vector fired since the previous poll — a lower
    /// bound on the device's interrupts (several between two polls count once). The harness
    /// polls without arming, so the device's notifications stay on.
    pub interrupts: [u64; 2],
    /// Whether [`pump`](Self::pump) takes (and counts) pair 0's MSI-X words; off by default,
    /// so that callers reading the words themselves ([`take_msix`](Self::take_msix)) see them.
    pub count_interrupts: bool,
    /// Control commands the device refused or failed.
    pub control_errors: u32,
    /// No control command was in flight at the last poll.
    pub control_idle: bool,
    /// qtest commands used by bring-up.
    pub bring_up_commands: u64,
    /// Bring-up time.
    pub bring_up_time: Duration,
}

impl QemuMachine {
    /// Starts QEMU and brings the device up with one queue pair.
    pub fn start(
        opts: &QemuOptions,
        user: &UserSettings,
        msix: bool,
        seed: u64,
    ) -> Result<Self, String> {
        Self::start_with(opts, user, msix, seed, 1)
    }

    /// Starts QEMU and brings the device up asking for `pairs` queue pairs (the device may
    /// offer fewer; [`Adapter::queue_pairs`] says how many). With `msix`, every queue gets its
    /// own vector (queue index + 1) and the configuration vector is 0.
    pub fn start_with(
        opts: &QemuOptions,
        user: &UserSettings,
        msix: bool,
        seed: u64,
        pairs: u16,
    ) -> Result<Self, String> {
        Self::start_with_rule(opts, user, msix, seed, pairs, false)
    }

    /// [`start_with`](Self::start_with), with `BringUp::pairs_need_rss` (the Windows driver's
    /// rule: several pairs only when the device steers by RSS).
    pub fn start_with_rule(
        opts: &QemuOptions,
        user: &UserSettings,
        msix: bool,
        seed: u64,
        pairs: u16,
        pairs_need_rss: bool,
    ) -> Result<Self, String> {
        let t0 = Instant::now();
        let qemu = Arc::new(Qemu::start(opts).map_err(|e| e.to_string())?);
        let pci = QemuPci::find(&qemu).map_err(|e| e.to_string())?;
        let bars = pci.enable().map_err(|e| e.to_string())?;
        let msix_messages = if msix {
            pci.enable_msix(&bars, 2 * pairs + 2)
                .map_err(|e| e.to_string())?
        } else {
            0
        };
        let plan = BringUp {
            reset_polls: 1000,
            max_queue_size: 256,
            queue_pairs: pairs,
            msix_messages,
            random_mac: [2, 0, 0, 0, 0, 1],
            pairs_need_rss,
        };
        let mut adapter = Adapter::start(&pci, bars, qemu.arena(), user, &plan)
            .map_err(|e| format!("bring-up: {e:?}"))?;
        let mut rng = Rng::new(seed);
        let mut all = Vec::new();
        for k in 0..adapter.queue_pairs() {
            all.push(QueuePair::new(&qemu, &mut adapter, user, k, &mut rng)?);
        }
        let first = all.remove(0);
        let bring_up_commands = qemu.qtest(|q| q.commands);
        Ok(Self {
            qemu,
            adapter,
            tx: first.tx,
            rx: first.rx,
            os_tx: first.os_tx,
            os_rx: first.os_rx,
            extra: all,
            msix,
            interrupts: [0; 2],
            count_interrupts: false,
            control_errors: 0,
            control_idle: false,
            bring_up_commands,
            bring_up_time: t0.elapsed(),
        })
    }

    /// One OS poll iteration on queue pair 0 (see [`QemuMachine::pump_pair`]), and the control
    /// queue's progress.
    pub fn pump(&mut self, pending: &mut Vec<TxFrame>) -> Result<(), String> {
        self.poll_control();
        if self.msix && self.count_interrupts {
            // Queue index + 1: RX 0 on vector 1, TX 0 on vector 2.
            for (k, v) in [(0, 1), (1, 2)] {
                if self.take_msix(v) {
                    self.interrupts[k] += 1;
                }
            }
        }
        pump_queues(
            &self.qemu,
            &mut self.adapter,
            0,
            (&mut self.tx, &mut self.os_tx),
            (&mut self.rx, &mut self.os_rx),
            pending,
        )
    }

    /// One OS poll iteration on queue pair `k`: posts what fits from `pending`, TX Advance
    /// (kick), RX post/Advance (kick), indication, and every indicated buffer returned.
    pub fn pump_pair(&mut self, k: u16, pending: &mut Vec<TxFrame>) -> Result<(), String> {
        if k == 0 {
            return self.pump(pending);
        }
        self.poll_control();
        let p = self
            .extra
            .get_mut(usize::from(k) - 1)
            .ok_or("no such queue pair")?;
        pump_queues(
            &self.qemu,
            &mut self.adapter,
            k,
            (&mut p.tx, &mut p.os_tx),
            (&mut p.rx, &mut p.os_rx),
            pending,
        )
    }

    /// Moves the control queue on; counts failed commands in `control_errors`.
    fn poll_control(&mut self) {
        match self.adapter.poll_control() {
            ControlProgress::Idle { errors } => {
                self.control_errors += errors;
                self.control_idle = true;
            }
            ControlProgress::Pending => self.control_idle = false,
        }
    }

    /// The frames queue pair `k` indicated so far (taken).
    pub fn take_received(&mut self, k: u16) -> Vec<crate::os_rx::RxFrame> {
        match k {
            0 => std::mem::take(&mut self.os_rx.frames),
            _ => self
                .extra
                .get_mut(usize::from(k) - 1)
                .map(|p| std::mem::take(&mut p.os_rx.frames))
                .unwrap_or_default(),
        }
    }

    /// Counters of queue pair `k`.
    pub fn pair_stats(&self, k: u16) -> Option<(TxStats, RxStats)> {
        match k {
            0 => Some((*self.tx.stats(), *self.rx.stats())),
            _ => self
                .extra
                .get(usize::from(k) - 1)
                .map(|p| (*p.tx.stats(), *p.rx.stats())),
        }
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

/// One queue pair's engines and their OS sides.
pub struct QueuePair {
    /// TX engine.
    pub tx: TxQueue,
    /// RX engine.
    pub rx: RxQueue,
    /// OS side of TX.
    pub os_tx: OsTx,
    /// OS side of RX.
    pub os_rx: OsRx,
}

impl QueuePair {
    fn new(
        qemu: &Qemu,
        adapter: &mut Adapter<QemuBars>,
        user: &UserSettings,
        k: u16,
        rng: &mut Rng,
    ) -> Result<Self, String> {
        let caps = *adapter.capabilities();
        let mut os_tx = OsTx::new(256, 1024, rng);
        let mut os_rx = OsRx::new(256, 512, rng);
        let txs = adapter.take_tx(k).ok_or("no TX queue")?;
        let rxs = adapter.take_rx(k).ok_or("no RX queue")?;
        let settings = TxSettings {
            insert_priority: caps.priority_tagging,
            insert_vlan: caps.vlan_tagging,
            vlan_id: user.vlan_id,
            confidential: caps.confidential,
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
            bounce: caps.confidential,
            context_tag: k,
        };
        let rx = RxQueue::new(
            qemu.arena(),
            rxs.vq,
            adapter.features(),
            rs,
            os_rx.extensions(),
        )
        .map_err(|e| format!("{e:?}"))?;
        Ok(Self {
            tx,
            rx,
            os_tx,
            os_rx,
        })
    }
}

fn pump_queues(
    qemu: &Qemu,
    adapter: &mut Adapter<QemuBars>,
    k: u16,
    (tx, os_tx): (&mut TxQueue, &mut OsTx),
    (rx, os_rx): (&mut RxQueue, &mut OsRx),
    pending: &mut Vec<TxFrame>,
) -> Result<(), String> {
    while let Some(f) = pending.first() {
        if !os_tx.post(qemu.arena(), f) {
            break;
        }
        pending.remove(0);
    }
    if os_tx.driver_owns_packets() {
        let r = os_tx
            .callback(|p, f| tx.advance(p, f))
            .map_err(|e| format!("tx {k}: {e:?}"))?;
        if r.kicked {
            adapter.notify_tx(k);
        }
    }
    os_tx.reclaim(qemu.arena());
    os_rx.post(256, 512);
    let r = os_rx
        .callback(|p, f| rx.advance(p, f))
        .map_err(|e| format!("rx {k}: {e:?}"))?;
    if r.kicked {
        adapter.notify_rx(k);
    }
    os_rx.reclaim();
    for c in os_rx.held.drain(..) {
        rx.return_buffer(c);
    }
    if adapter.is_removed() {
        return Err("device removed".into());
    }
    Ok(())
}
