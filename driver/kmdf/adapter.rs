//! The per-device state the glue owns (`Nic`), and the adapter-level NetAdapterCx callbacks:
//! offload changes, the receive filter, returned receive buffers, link state.
//! Windows only; not compiled in CI.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU64, Ordering};

use wdk::wdf::SpinLock;
use wdk_sys::{_WDF_DEVICE_FAILED_ACTION, WDFDEVICE, call_unsafe_wdf_function_binding};

use super::context;
use super::declare::{self, link_state};
use super::hal::{CommonBufferDma, MappedBars, PciBus};
use super::msix::{MsixPlan, NotifyGate};
use super::netcx::*;
use crate::adapter::{Adapter, BringUp, ControlProgress};
use crate::config::UserSettings;
use crate::events::Event;
use crate::rxqueue::RxQueue;
use crate::stats::{RxStats, TxStats};
use crate::trace::EtwSink;
use virtio::pci::Notifier;

/// Everything the glue keeps for one device. Created in DeviceAdd, freed when the WDFDEVICE is
/// destroyed; reached from every callback through the device's or the adapter's context.
pub struct Nic {
    /// The WDF device.
    pub device: WDFDEVICE,
    /// The NetAdapterCx adapter.
    pub adapter: NETADAPTER,
    /// Guards `core` (PASSIVE callbacks and the configuration/control DPCs use it).
    pub lock: SpinLock,
    /// The core adapter, from PrepareHardware to ReleaseHardware.
    pub core: UnsafeCell<Option<Adapter<MappedBars>>>,
    /// Mapped BARs.
    pub bars: MappedBars,
    /// PCI configuration access.
    pub pci: Option<PciBus>,
    /// DMA enabler (DMA v3) and its common-buffer allocator.
    pub dma: Option<CommonBufferDma>,
    /// The DMA capabilities given to NetAdapterCx (kept alive with the device).
    pub dma_caps: NET_ADAPTER_DMA_CAPABILITIES,
    /// The enabler handle (for the datapath capabilities).
    pub enabler: wdk_sys::WDFDMAENABLER,
    /// The INF keywords.
    pub user: UserSettings,
    /// How the device was brought up.
    pub plan: BringUp,
    /// Interrupt layout.
    pub msix: MsixPlan,
    /// Receive engine of pair 0: it outlives NetAdapterCx's queue objects (its buffers stay
    /// posted to the device while the OS re-creates queues). Used only from the RX queue's
    /// execution context (Advance, Cancel, ReturnRxBuffer are serialized there) and at
    /// PASSIVE_LEVEL when no queue exists.
    pub rx: UnsafeCell<Option<RxQueue>>,
    /// Kick registers of pair 0.
    pub rx_notifier: Option<Notifier>,
    /// Kick register of the transmit queue.
    pub tx_notifier: Option<Notifier>,
    /// The NETPACKETQUEUEs while started (for the DPCs), else null.
    pub rx_queue: AtomicPtr<c_void>,
    /// As `rx_queue`.
    pub tx_queue: AtomicPtr<c_void>,
    /// Notification gates.
    pub rx_gate: NotifyGate,
    /// As `rx_gate`.
    pub tx_gate: NotifyGate,
    /// The software receive filter waiting for the RX engine (guarded by `lock`), and whether
    /// one is waiting: filter changes arrive at PASSIVE_LEVEL on another thread than the RX
    /// execution context, which picks them up at its next Advance.
    pub pending_filter: UnsafeCell<Option<offload::filter::RxFilter>>,
    /// As `pending_filter`.
    pub filter_changed: AtomicBool,
    /// The device is gone or failed; stop touching it.
    pub dead: AtomicBool,
    /// Where the ISR status register is (bar, offset), for the shared-interrupt ISR.
    pub isr: (u8, u64),
    /// Causes the shared-interrupt ISR read (it acknowledges by reading), for its DPC.
    pub isr_pending: AtomicU8,
    /// The TX engine's counters as of its last snapshot (guarded by `lock`).
    pub tx_snapshot: UnsafeCell<TxStats>,
    /// Interrupt time (100 ns) of the last TX snapshot and of the last counters event.
    pub last_tx_snapshot: AtomicU64,
    /// As `last_tx_snapshot`.
    pub last_counters: AtomicU64,
}

/// Counters go to ETW about once a second (100 ns units).
const COUNTER_PERIOD: u64 = 10_000_000;

fn now() -> u64 {
    // SAFETY: callable at any IRQL.
    unsafe { wdk_sys::ntddk::KeQueryUnbiasedInterruptTime() }
}

/// Whether `period` passed since `last` (and claims the slot if so).
fn due(last: &AtomicU64) -> bool {
    let t = now();
    let prev = last.load(Ordering::Relaxed);
    t.wrapping_sub(prev) >= COUNTER_PERIOD
        && last
            .compare_exchange(prev, t, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
}

// SAFETY: shared state is atomics, the lock-guarded `core`, and `rx` whose use is serialized by
// NetAdapterCx's execution context (see the field).
unsafe impl Sync for Nic {}

impl Nic {
    /// Runs `f` on the core adapter under the lock, then writes its events to ETW.
    pub fn with_core<R>(&self, f: impl FnOnce(&mut Adapter<MappedBars>) -> R) -> Option<R> {
        self.lock.acquire();
        // SAFETY: under the lock.
        let r = unsafe { (*self.core.get()).as_mut() }.map(|a| {
            let r = f(a);
            a.drain_events(&mut EtwSink);
            r
        });
        self.lock.release();
        r
    }

    /// Records an event the glue saw (queue faults, removal) in order with the core's.
    pub fn record(&self, e: Event) {
        if self.with_core(|a| a.record(e)).is_none() {
            crate::trace::write(&e);
        }
    }

    /// Submits the next control command if the queue is free (never waits: completion comes
    /// by the control queue's interrupt, whose DPC calls this again).
    pub fn pump_control(&self) {
        let _ = self.with_core(|a| matches!(a.poll_control(), ControlProgress::Pending));
    }

    /// The device broke its contract or asked for a reset: let WDF tear the stack down and
    /// start it again (ReleaseHardware, PrepareHardware: a fresh bring-up).
    pub fn fail_and_restart(&self) {
        if !self.dead.swap(true, Ordering::AcqRel) {
            // SAFETY: valid device handle; allowed at ≤ DISPATCH_LEVEL.
            unsafe {
                call_unsafe_wdf_function_binding!(
                    WdfDeviceSetFailed,
                    self.device,
                    _WDF_DEVICE_FAILED_ACTION::WdfDeviceFailedAttemptRestart
                )
            };
        }
    }

    /// From the TX Advance: keeps a snapshot of the TX counters for the counters event (the
    /// engine's own counters may only be read on its execution context).
    pub fn tx_counters(&self, stats: &TxStats) {
        if crate::trace::enabled(crate::trace::keyword::COUNTERS) && due(&self.last_tx_snapshot) {
            self.lock.acquire();
            // SAFETY: under the lock.
            unsafe { *self.tx_snapshot.get() = *stats };
            self.lock.release();
        }
    }

    /// From the RX Advance: about once a second, writes the pair's counters (the "timer" of the
    /// counters event is the datapath itself, so no other thread reads the engines' counters).
    pub fn rx_counters(&self, stats: &RxStats) {
        if crate::trace::enabled(crate::trace::keyword::COUNTERS) && due(&self.last_counters) {
            self.lock.acquire();
            // SAFETY: under the lock.
            let tx = unsafe { *self.tx_snapshot.get() };
            self.lock.release();
            crate::trace::write(&Event::QueueCounters {
                pair: 0,
                tx,
                rx: *stats,
            });
        }
    }

    /// Kicks a queue after an Advance that published buffers (the register write needs no lock).
    pub fn kick(&self, notifier: Option<&Notifier>) {
        if !self.dead.load(Ordering::Acquire)
            && let Some(n) = notifier
        {
            let (bar, off) = n.location();
            virtio::hal::Bars::write16(&self.bars, bar, off, n.queue());
        }
    }

    /// A queue engine saw the device (or the OS ring) break its contract: trace it and restart —
    /// unless the device is gone (surprise removal reads all-ones, which looks like a broken
    /// ring): then stop touching it and let PnP remove the stack.
    pub fn queue_fault(&self, transmit: bool) {
        if self.with_core(|a| a.is_removed()).unwrap_or(true) {
            self.record(Event::SurpriseRemoved);
            self.dead.store(true, Ordering::Release);
            return;
        }
        self.record(Event::QueueFault { pair: 0, transmit });
        self.fail_and_restart();
    }

    /// Reports the core's link state to NetAdapterCx (≤ DISPATCH_LEVEL).
    pub fn report_link(&self, up: bool) {
        let speed = self
            .with_core(|a| a.capabilities().link_speed)
            .unwrap_or(NET_ADAPTER_LINK_SPEED_UNKNOWN);
        let s = link_state(up, speed);
        // SAFETY: the adapter lives as long as the device; the struct is initialised.
        unsafe { NetAdapterSetLinkState(self.adapter, &s) };
    }
}

/// The `Nic` of an adapter (stored in the adapter's context at creation).
///
/// # Safety
///
/// `adapter` must be this driver's adapter, between NetAdapterCreate and its destruction.
pub unsafe fn nic(adapter: NETADAPTER) -> &'static Nic {
    // SAFETY: the adapter was created with DEVICE_CONTEXT holding the Nic, which lives until the
    // device (the adapter's parent) is destroyed.
    unsafe { context::object::<Nic>(adapter.cast(), &context::DEVICE_CONTEXT) }
}

/// Offload callbacks: the OS changed what it wants. Transmit offloads need nothing (the OS only
/// asks for enabled ones per packet); receive checksum and RSC are told to the device through
/// VIRTIO_NET_CTRL_GUEST_OFFLOADS so it stops coalescing when RSC is off.
pub unsafe extern "system" fn evt_offload_set(adapter: NETADAPTER, offload: NETOFFLOAD) {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: the callback's own offload object, at PASSIVE_LEVEL.
    let e = unsafe { declare::read_enabled(offload) };
    let _ = nic.with_core(|a| a.set_guest_offloads(e.rx_checksum, e.rsc));
    nic.pump_control();
}

/// `EvtSetReceiveFilter`: device filtering through the control queue; what the device cannot
/// do, the receive engine does in software.
pub unsafe extern "system" fn evt_set_receive_filter(
    adapter: NETADAPTER,
    filter: NETRECEIVEFILTER,
) {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    let mac = nic
        .with_core(|a| a.capabilities().current_address)
        .unwrap_or([0; 6]);
    // SAFETY: inside the callback, on its thread.
    let f = unsafe { declare::read_receive_filter(filter, mac, nic.user.vlan_id) };
    let software = nic.with_core(|a| a.set_receive_filter(&f)).flatten();
    nic.pump_control();
    // The engine belongs to the RX execution context: hand the filter over for its next Advance.
    nic.lock.acquire();
    // SAFETY: under the lock.
    unsafe { *nic.pending_filter.get() = software };
    nic.filter_changed.store(true, Ordering::Release);
    nic.lock.release();
}

/// `EvtAdapterReturnRxBuffer`: the OS is done with a receive buffer (from the RX execution
/// context).
pub unsafe extern "system" fn evt_return_rx_buffer(
    adapter: NETADAPTER,
    context: NET_FRAGMENT_RETURN_CONTEXT_HANDLE,
) {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: called on the RX queue's execution context, serialized with Advance.
    if let Some(rx) = unsafe { (*nic.rx.get()).as_mut() } {
        rx.return_buffer(context as usize);
    }
}

/// The callbacks `declare` registers.
pub const CALLBACKS: declare::AdapterCallbacks = declare::AdapterCallbacks {
    return_rx_buffer: evt_return_rx_buffer,
    set_tx_checksum: evt_offload_set,
    set_rx_checksum: evt_offload_set,
    set_gso: evt_offload_set,
    set_rsc: evt_offload_set,
    set_receive_filter: evt_set_receive_filter,
};
