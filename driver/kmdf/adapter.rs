//! The per-device state the glue owns (`Nic`), and the adapter-level NetAdapterCx callbacks:
//! offload changes, the receive filter, returned receive buffers, link state.

use core::cell::UnsafeCell;
use core::ffi::c_void;
use core::sync::atomic::{AtomicBool, AtomicPtr, AtomicU8, AtomicU32, AtomicU64, Ordering};

use wdk::wdf::SpinLock;
use wdk_sys::{WDFTIMER, WDFWORKITEM, call_unsafe_wdf_function_binding};

use super::context;
use super::declare::{self, link_state};
use super::hal::{CommonBufferDma, MappedBars, PciBus};
use super::msix::MAX_QUEUE_PAIRS;
use crate::notify::NotifyGate;
use super::netcx::*;
use crate::adapter::{Adapter, BringUp, ControlProgress};
use crate::config::UserSettings;
use crate::events::Event;
use crate::rss::RssState;
use crate::rxqueue::{RxQueue, context_pair};
use crate::stats::{RxStats, TxStats};
use crate::vectors::Vectors;
use crate::trace::EtwSink;
use netring::HashProtocolType;
use virtio::pci::Notifier;

/// What the glue keeps per queue pair.
/// A NETPACKETQUEUE between EvtStart and EvtStop, for the notifiers that run outside its
/// execution context (the interrupt DPCs, the transmit watchdog timer): they may notify it only
/// while it is started, and after EvtStop the framework may delete it. [`StartedQueue::with`]
/// marks a notifier inside before it loads the handle; [`StartedQueue::stop`] clears the handle
/// and then waits until no notifier is inside (all four accesses sequentially consistent: either
/// the notifier sees the cleared handle, or the stop sees the notifier), so no notifier touches
/// the queue after EvtStop returns — a rundown, as `ExWaitForRundownProtectionRelease` gives.
pub struct StartedQueue {
    queue: AtomicPtr<c_void>,
    inside: AtomicU32,
}

impl StartedQueue {
    /// Not started.
    pub const fn new() -> Self {
        Self {
            queue: AtomicPtr::new(core::ptr::null_mut()),
            inside: AtomicU32::new(0),
        }
    }

    /// EvtStart: notifiers may use `queue` from now.
    pub fn start(&self, queue: *mut c_void) {
        self.queue.store(queue, Ordering::SeqCst);
    }

    /// EvtStop (PASSIVE_LEVEL): when this returns, no notifier uses the queue, nor will.
    /// The wait is for notifiers already inside: each runs one Notify call at DISPATCH_LEVEL
    /// (which cannot be preempted on its processor), so it ends within microseconds.
    pub fn stop(&self) {
        self.queue.store(core::ptr::null_mut(), Ordering::SeqCst);
        while self.inside.load(Ordering::SeqCst) != 0 {
            core::hint::spin_loop();
        }
    }

    /// Runs `notify` with the queue if it is started (≤ DISPATCH_LEVEL, any processor).
    pub fn with(&self, notify: impl FnOnce(*mut c_void)) {
        self.inside.fetch_add(1, Ordering::SeqCst);
        let q = self.queue.load(Ordering::SeqCst);
        if !q.is_null() {
            notify(q);
        }
        self.inside.fetch_sub(1, Ordering::SeqCst);
    }
}

pub struct Pair {
    /// The receive engine: it outlives NetAdapterCx's queue objects (its buffers stay posted to
    /// the device while the OS re-creates queues). Used only from this pair's RX execution
    /// context (Advance, Cancel and its ReturnRxBuffer calls are serialized there) and at
    /// PASSIVE_LEVEL when no RX queue exists.
    pub rx: UnsafeCell<Option<RxQueue>>,
    /// Kick register of the receive queue.
    pub rx_notifier: Option<Notifier>,
    /// Kick register of the transmit queue.
    pub tx_notifier: Option<Notifier>,
    /// The RX NETPACKETQUEUE while started, for the notifiers outside its EC.
    pub rx_queue: StartedQueue,
    /// The RX NETPACKETQUEUE from its creation to its destruction (what the OS's indirection
    /// entries name: NetAdapterCx sends them before any queue starts on every datapath
    /// re-creation, `reference/netadaptercx.md` §9.2), else null.
    pub rx_created: AtomicPtr<c_void>,
    /// As `rx_queue`.
    pub tx_queue: StartedQueue,
    /// Notification gates.
    pub rx_gate: NotifyGate,
    /// As `rx_gate`.
    pub tx_gate: NotifyGate,
    /// A new software receive filter (`Nic::pending_filter`) waits for this pair's engine.
    pub filter_changed: AtomicBool,
    /// New RSS key or types (`Nic::rss`) wait for this pair's engine (its hash extension).
    pub rss_changed: AtomicBool,
    /// The TX engine's counters as of its last snapshot (guarded by `Nic::lock`).
    pub tx_snapshot: UnsafeCell<Option<TxStats>>,
    /// Interrupt time (100 ns) of the last TX snapshot and of the last counters event.
    pub last_tx_snapshot: AtomicU64,
    /// As `last_tx_snapshot`.
    pub last_counters: AtomicU64,
}

impl Pair {
    /// An idle pair.
    pub const fn new() -> Self {
        Self {
            rx: UnsafeCell::new(None),
            rx_notifier: None,
            tx_notifier: None,
            rx_queue: StartedQueue::new(),
            rx_created: AtomicPtr::new(core::ptr::null_mut()),
            tx_queue: StartedQueue::new(),
            rx_gate: NotifyGate::new(),
            tx_gate: NotifyGate::new(),
            filter_changed: AtomicBool::new(false),
            rss_changed: AtomicBool::new(false),
            tx_snapshot: UnsafeCell::new(None),
            last_tx_snapshot: AtomicU64::new(0),
            last_counters: AtomicU64::new(0),
        }
    }

    /// The receive engine.
    ///
    /// # Safety
    ///
    /// Only from this pair's RX execution context, or at PASSIVE_LEVEL with no RX queue.
    #[allow(clippy::mut_from_ref)] // the engine is in an UnsafeCell; exclusivity is the contract
    pub unsafe fn rx_engine(&self) -> Option<&mut RxQueue> {
        // SAFETY: the caller's contract serializes every use.
        unsafe { (*self.rx.get()).as_mut() }
    }
}

/// Everything the glue keeps for one device. Created in DeviceAdd, freed when the WDFDEVICE is
/// destroyed; reached from every callback through the device's or the adapter's context.
pub struct Nic {
    /// The NetAdapterCx adapter.
    pub adapter: NETADAPTER,
    /// Guards `core`, `rss`, `pending_filter` and the TX snapshots (PASSIVE callbacks and the
    /// configuration/control DPCs use them).
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
    /// The interrupt layout the core programmed (from the granted messages and the final pair
    /// count), decoded by the ISR and the DPCs.
    pub vectors: Vectors,
    /// Queue pairs in use (`pairs[..pair_count]`).
    pub pair_count: u16,
    /// Per queue pair.
    pub pairs: [Pair; MAX_QUEUE_PAIRS as usize],
    /// The OS's RSS state (guarded by `lock`).
    pub rss: UnsafeCell<RssState>,
    /// The software receive filter waiting for the RX engines (guarded by `lock`; each pair's
    /// `filter_changed` says its engine has not taken it yet): filter changes arrive at
    /// PASSIVE_LEVEL on another thread than the RX execution contexts, which pick them up at
    /// their next Advance.
    pub pending_filter: UnsafeCell<Option<offload::filter::RxFilter>>,
    /// The device is gone or failed; stop touching it.
    pub dead: AtomicBool,
    /// A dead device was stopped for good ([`Nic::quiesce`]); written under `lock`.
    pub quiesced: AtomicBool,
    /// The work item that asks NetAdapterCx for a device reset at PASSIVE_LEVEL.
    pub reset_work: WDFWORKITEM,
    /// Why, and on which pair, the reset was asked for (`Recovery << 16 | pair`).
    pub recovery: AtomicU32,
    /// The device status register when the reset was asked for (0xff: unreadable): what the
    /// diagnostics report, since the device may be reset (quiesced) before NetAdapterCx
    /// collects them.
    pub recovery_status: AtomicU8,
    /// One-shot timer started by a transmit queue's Cancel while the device holds packets: it
    /// wakes the stopping queues after [`TX_CANCEL_GRACE`], so a device that stalled is found
    /// even though no completion interrupt will ever come (`txqueue::evt_tx_watchdog`).
    pub tx_watchdog: WDFTIMER,
    /// One-shot timer armed every [`CONTROL_TICK`] while a control command is pending
    /// ([`Nic::pump_control`]): it ages the command, so a device that never answers — and so
    /// raises no interrupt to prompt a poll — is caught (`evt_control_watchdog`).
    pub control_watchdog: WDFTIMER,
    /// The control watchdog may be armed: between D0 entry and D0 exit.
    pub control_watch: AtomicBool,
    /// The control watchdog is queued (armed once, however many polls find the command
    /// pending, so a stream of new commands cannot keep postponing its tick).
    pub control_armed: AtomicBool,
    /// Where the ISR status register is (bar, offset), for the shared-interrupt ISR.
    pub isr: (u8, u64),
    /// Causes the shared-interrupt ISR read (it acknowledges by reading), for its DPC.
    pub isr_pending: AtomicU8,
}

/// Why the driver asked for a device reset (in its reset diagnostics).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u32)]
pub enum Recovery {
    /// The device set DEVICE_NEEDS_RESET.
    NeedsReset = 1,
    /// The device's configuration could not be read consistently.
    ConfigUnreadable = 2,
    /// A transmit queue saw the device break the virtio contract.
    TxFault = 3,
    /// A receive queue did.
    RxFault = 4,
    /// A cancelled transmit queue's device completed nothing within the grace period.
    TxStalled = 5,
    /// A transmit queue was destroyed with chains still in the device's hands.
    TxMemoryHeld = 6,
    /// A control command went unanswered past the control watchdog's bound
    /// ([`crate::adapter::CONTROL_TIMEOUT_TICKS`] ticks): the control queue is unusable until
    /// the device is reset, and the reset sends the wanted control state again.
    ControlTimeout = 7,
}

/// How long a reset may take at PASSIVE_LEVEL before the device is taken as hung (100 ns
/// units: 1 s). The spec sets no bound; a device that never acknowledges is unusable.
pub const RESET_TIMEOUT: u64 = 10_000_000;

/// Device-status reads a reset polls under the spin lock once the wait at PASSIVE_LEVEL is
/// done (the device acknowledged already; this only bounds a device that changes its mind).
pub const RESET_POLLS_LOCKED: u32 = 100;

/// Sleeps about a millisecond (PASSIVE_LEVEL).
pub fn delay_1ms() {
    let mut interval = wdk_sys::LARGE_INTEGER { QuadPart: -10_000 };
    // SAFETY: PASSIVE_LEVEL (the callers' contract), a relative interval valid for the call;
    // KernelMode (0), not alertable.
    let _ = unsafe { wdk_sys::ntddk::KeDelayExecutionThread(0, 0, &mut interval) };
}

/// Resets the device through `step` and waits for the acknowledgement at PASSIVE_LEVEL, a
/// millisecond at a time, at most [`RESET_TIMEOUT`]. `step(true)` begins the reset, `step(false)`
/// asks whether it is done; each runs with whatever lock the caller needs, which is not held
/// across the sleeps. Whether the device acknowledged.
pub fn reset_at_passive(
    mut step: impl FnMut(bool) -> Option<Result<bool, virtio::pci::TransportError>>,
) -> bool {
    let deadline = now().wrapping_add(RESET_TIMEOUT);
    let mut begin = true;
    loop {
        match step(core::mem::replace(&mut begin, false)) {
            Some(Ok(true)) => return true,
            Some(Ok(false)) => {}
            Some(Err(_)) | None => return false,
        }
        if now() > deadline {
            return false;
        }
        delay_1ms();
    }
}

/// Device-status reads a quiesce waits for a reset to be acknowledged (each one an MMIO exit to
/// the hypervisor, a few microseconds; QEMU acknowledges at once).
pub const QUIESCE_POLLS: u32 = 1000;

/// How long a cancelled transmit queue waits for the device to complete what it holds before
/// it takes the device as stalled (100 ns units: 1 s). NetAdapterCx's stop waits for every
/// packet, and a power transition waiting on it bugchecks after 10 minutes (0x9F).
pub const TX_CANCEL_GRACE: u64 = 10_000_000;

/// The control watchdog's period (`WdfTimerStart` due time: negative is relative, 100 ns
/// units: 10 ms); with [`crate::adapter::CONTROL_TIMEOUT_TICKS`] ticks, an unanswered command
/// times out after at least five seconds.
pub const CONTROL_TICK: i64 = -100_000;

/// Counters go to ETW about once a second (100 ns units).
const COUNTER_PERIOD: u64 = 10_000_000;

/// The unbiased interrupt time (100 ns units; any IRQL).
pub fn now() -> u64 {
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

// SAFETY: shared state is atomics, what `lock` guards, and the engines whose use is serialized by
// NetAdapterCx's execution contexts (see `Pair::rx`).
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
    /// by the control queue's interrupt, whose DPC calls this again). While a command is
    /// pending the control watchdog is armed.
    pub fn pump_control(&self) {
        if self.dead.load(Ordering::Acquire) {
            return; // failed or gone: nothing more is sent to it
        }
        let pending = self.with_core(|a| matches!(a.poll_control(), ControlProgress::Pending));
        if pending == Some(true) {
            self.arm_control_watchdog();
        }
    }

    /// Queues the control watchdog for one tick, unless it is queued or the device is not in
    /// D0. ≤ DISPATCH_LEVEL.
    fn arm_control_watchdog(&self) {
        if self.control_watch.load(Ordering::Acquire)
            && !self.control_armed.swap(true, Ordering::AcqRel)
        {
            // SAFETY: the device's timer (created in DeviceAdd, deleted with the device);
            // ≤ DISPATCH_LEVEL.
            let _ = unsafe {
                call_unsafe_wdf_function_binding!(WdfTimerStart, self.control_watchdog, CONTROL_TICK)
            };
        }
    }

    /// Stops the control watchdog for D0 exit and waits for a tick in progress (PASSIVE_LEVEL).
    /// A tick that raced with this finds `control_watch` clear and does nothing.
    pub fn stop_control_watchdog(&self) {
        self.control_watch.store(false, Ordering::Release);
        // SAFETY: the device's timer; Wait = TRUE at PASSIVE_LEVEL (D0 exit), not from its
        // own callback.
        let _ = unsafe {
            call_unsafe_wdf_function_binding!(WdfTimerStop, self.control_watchdog, 1)
        };
        self.control_armed.store(false, Ordering::Release);
    }

    /// Lets the control watchdog run again (D0 entry, before the first command is sent).
    pub fn start_control_watchdog(&self) {
        self.control_watch.store(true, Ordering::Release);
    }

    /// The device broke its contract, stalled or asked for a reset (`why`, on queue pair
    /// `pair`): ask NetAdapterCx for a device reset — once — from a work item, as
    /// `NetDeviceRequestReset` runs only at PASSIVE_LEVEL and this is called from DPCs and
    /// Advance. NetAdapterCx collects the driver's diagnostics (`evt_collect_reset_diagnostics`)
    /// into the live dump it takes, then resets the function at platform level or, where that
    /// is not available, fails the device for WDF to restart (`reference/netadaptercx.md` §9.7).
    pub fn fail_and_restart(&self, why: Recovery, pair: u16) {
        // Read before `dead` is set: from then on the next Advance quiesces the device (a reset
        // clears the status register). A second caller reads it for nothing.
        let status = self
            .with_core(|a| a.transport().status())
            .unwrap_or(0xff);
        if !self.dead.swap(true, Ordering::AcqRel) {
            self.recovery_status.store(status, Ordering::Release);
            self.recovery
                .store((why as u32) << 16 | u32::from(pair), Ordering::Release);
            // SAFETY: the device's work item (created in DeviceAdd, deleted with the device);
            // ≤ DISPATCH_LEVEL.
            unsafe { call_unsafe_wdf_function_binding!(WdfWorkItemEnqueue, self.reset_work) };
        }
    }

    /// Resets the device and waits for it at PASSIVE_LEVEL, the spin lock held only for each
    /// register access (see [`reset_at_passive`]). Whether it acknowledged; if not, the device is
    /// dead.
    pub fn reset_device_at_passive(&self) -> bool {
        let ok = reset_at_passive(|begin| {
            self.with_core(|a| if begin { a.begin_reset() } else { a.reset_done() })
        });
        if !ok {
            self.dead.store(true, Ordering::Release);
        }
        ok
    }

    /// Whether the device is gone (its registers read all-ones): NetAdapterCx tears the
    /// datapath down on a surprise removal before the client hears of it
    /// (`EvtCxDevicePreSurpriseRemoval`, `reference/netadaptercx.md` §9.8), so a Cancel asks the
    /// device itself. Marks the device dead if so.
    pub fn gone(&self) -> bool {
        let removed = self.with_core(|a| a.is_removed()).unwrap_or(false);
        if removed && !self.dead.swap(true, Ordering::AcqRel) {
            self.record(Event::SurpriseRemoved);
        }
        removed
    }

    /// The device failed, stalled or is gone, and the transmit queues must give the OS back
    /// what it holds (NetAdapterCx's stopping poll waits for every packet): first make sure the
    /// device does no more DMA — once, whichever queue asks first (the others wait on the lock
    /// and find it done). A removed device does none; a live one is reset, polled at most
    /// [`QUIESCE_POLLS`] times (this runs at DISPATCH_LEVEL).
    pub fn quiesce(&self) {
        if self.quiesced.load(Ordering::Acquire) {
            return;
        }
        let done = self.with_core(|a| {
            if !self.quiesced.load(Ordering::Acquire) {
                let reset = a.is_removed() || a.transport().reset(QUIESCE_POLLS).is_ok();
                a.record(Event::Quiesced { reset });
                self.quiesced.store(true, Ordering::Release);
            }
        });
        if done.is_none() {
            // No core: the device was never brought up or is released; nothing runs on it.
            self.quiesced.store(true, Ordering::Release);
        }
    }

    /// Pair `k` if it is in use.
    pub fn pair(&self, k: u16) -> Option<&Pair> {
        self.pairs.get(usize::from(k)).filter(|_| k < self.pair_count)
    }

    /// From pair `k`'s TX Advance: keeps a snapshot of its counters for the counters event (the
    /// engine's own counters may only be read on its execution context).
    pub fn tx_counters(&self, k: u16, stats: &TxStats) {
        let Some(p) = self.pair(k) else {
            return;
        };
        if crate::trace::enabled(crate::trace::keyword::COUNTERS) && due(&p.last_tx_snapshot) {
            self.lock.acquire();
            // SAFETY: under the lock.
            unsafe { *p.tx_snapshot.get() = Some(*stats) };
            self.lock.release();
        }
    }

    /// From pair `k`'s RX Advance: about once a second, writes the pair's counters (the "timer"
    /// of the counters event is the datapath itself, so no other thread reads the engines').
    pub fn rx_counters(&self, k: u16, stats: &RxStats) {
        let Some(p) = self.pair(k) else {
            return;
        };
        if crate::trace::enabled(crate::trace::keyword::COUNTERS) && due(&p.last_counters) {
            self.lock.acquire();
            // SAFETY: under the lock.
            let tx = unsafe { *p.tx_snapshot.get() }.unwrap_or_default();
            self.lock.release();
            crate::trace::write(&Event::QueueCounters {
                pair: k,
                tx,
                rx: *stats,
            });
        }
    }

    /// Gives the device the OS's current RSS state (or turns device RSS off), and marks every
    /// receive engine to refresh its hash extension. `false` if the device refused it.
    pub fn push_rss(&self) -> bool {
        self.lock.acquire();
        // SAFETY: under the lock.
        let settings = unsafe { (*self.rss.get()).settings() };
        self.lock.release();
        let ok = self
            .with_core(|a| a.set_rss(settings.as_ref()).is_ok())
            .unwrap_or(false);
        self.pump_control();
        for p in &self.pairs {
            p.rss_changed.store(true, Ordering::Release);
        }
        ok
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
    pub fn queue_fault(&self, pair: u16, transmit: bool) {
        if self.with_core(|a| a.is_removed()).unwrap_or(true) {
            self.record(Event::SurpriseRemoved);
            self.dead.store(true, Ordering::Release);
            return;
        }
        self.record(Event::QueueFault { pair, transmit });
        self.fail_and_restart(
            if transmit {
                Recovery::TxFault
            } else {
                Recovery::RxFault
            },
            pair,
        );
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
    // The engines belong to their RX execution contexts: hand the filter over for their next
    // Advance.
    nic.lock.acquire();
    // SAFETY: under the lock.
    unsafe { *nic.pending_filter.get() = software };
    for p in &nic.pairs {
        p.filter_changed.store(true, Ordering::Release);
    }
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
    let context = context as usize;
    let Some(p) = u16::try_from(context_pair(context))
        .ok()
        .and_then(|k| nic.pair(k))
    else {
        return; // not one of ours: nothing to release
    };
    // SAFETY: called on the execution context of the RX queue that indicated the buffer (the
    // context names its pair), serialized with that queue's Advance.
    if let Some(rx) = unsafe { p.rx_engine() } {
        rx.return_buffer(context);
    }
}

/// `EvtAdapterReceiveScalingEnable`.
unsafe extern "system" fn evt_rss_enable(
    adapter: NETADAPTER,
    _hash_type: u32,
    protocol_type: u32,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    nic.lock.acquire();
    // SAFETY: under the lock.
    unsafe { (*nic.rss.get()).enable(HashProtocolType::from_bits_truncate(protocol_type as u16)) };
    nic.lock.release();
    if nic.push_rss() {
        STATUS_SUCCESS
    } else {
        STATUS_INVALID_PARAMETER
    }
}

/// `EvtAdapterReceiveScalingDisable`.
unsafe extern "system" fn evt_rss_disable(adapter: NETADAPTER) {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    nic.lock.acquire();
    // SAFETY: under the lock.
    unsafe { (*nic.rss.get()).disable() };
    nic.lock.release();
    let _ = nic.push_rss();
}

/// `EvtAdapterReceiveScalingSetHashSecretKey`.
unsafe extern "system" fn evt_rss_set_key(
    adapter: NETADAPTER,
    key: *const NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    // SAFETY: the callback's own argument.
    let Some(key) = (unsafe { declare::read_hash_key(key) }) else {
        return STATUS_INVALID_PARAMETER;
    };
    nic.lock.acquire();
    // SAFETY: under the lock.
    let ok = unsafe { (*nic.rss.get()).set_key(key) };
    nic.lock.release();
    if ok && nic.push_rss() {
        STATUS_SUCCESS
    } else {
        STATUS_INVALID_PARAMETER
    }
}

/// `EvtAdapterReceiveScalingSetIndirectionEntries`: each entry names an RX queue, which the
/// glue maps back to its pair.
unsafe extern "system" fn evt_rss_set_entries(
    adapter: NETADAPTER,
    entries: *mut NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES,
) -> NTSTATUS {
    // SAFETY: NetAdapterCx passes our adapter.
    let nic = unsafe { nic(adapter) };
    let pair_of = |q: NETPACKETQUEUE| {
        (0..nic.pair_count).find(|&k| {
            nic.pair(k)
                .is_some_and(|p| !q.is_null() && p.rx_created.load(Ordering::Acquire) == q)
        })
    };
    nic.lock.acquire();
    // SAFETY: under the lock.
    let state = unsafe { &mut *nic.rss.get() };
    // SAFETY: the entries are the callback's own argument.
    let st = unsafe { declare::apply_indirection_entries(entries, state, pair_of) };
    nic.lock.release();
    if !nic.push_rss() {
        return STATUS_INVALID_PARAMETER;
    }
    st
}

/// The callbacks `declare` registers.
pub const CALLBACKS: declare::AdapterCallbacks = declare::AdapterCallbacks {
    return_rx_buffer: evt_return_rx_buffer,
    set_tx_checksum: evt_offload_set,
    set_rx_checksum: evt_offload_set,
    set_gso: evt_offload_set,
    set_rsc: evt_offload_set,
    set_receive_filter: evt_set_receive_filter,
    rss: declare::RssCallbacks {
        enable: evt_rss_enable,
        disable: evt_rss_disable,
        set_key: evt_rss_set_key,
        set_entries: evt_rss_set_entries,
    },
};

/// The control watchdog's tick (DISPATCH_LEVEL): completes the pending command if the device
/// answered and ages it if not; a command that timed out breaks the control queue until a
/// reset, which is asked for here — the reset is what gives the queue back, and the restore
/// after it sends the wanted control state again.
pub extern "C" fn evt_control_watchdog(timer: WDFTIMER) {
    // SAFETY: our timer, whose parent is our device.
    let device = unsafe { call_unsafe_wdf_function_binding!(WdfTimerGetParentObject, timer) };
    // SAFETY: our device: only `pump_control`, after DeviceAdd set the device's context,
    // starts the timer, and the timer, a child of the device, is deleted before the device's
    // context is destroyed.
    let p = unsafe { super::device::nic_of(device.cast()) };
    // SAFETY: as above: the device's Nic, alive while the device is.
    let nic = unsafe { &*p };
    nic.control_armed.store(false, Ordering::Release);
    if nic.dead.load(Ordering::Acquire) || !nic.control_watch.load(Ordering::Acquire) {
        return;
    }
    let r = nic.with_core(|a| {
        if a.is_removed() {
            return None;
        }
        let pending = matches!(a.control_tick(), ControlProgress::Pending);
        Some((pending, a.control_broken()))
    });
    match r {
        // Gone (its registers read all-ones): no command will ever be answered, and a reset of
        // a device that is not there helps no one; PnP removes the stack.
        Some(None) => {
            nic.record(Event::SurpriseRemoved);
            nic.dead.store(true, Ordering::Release);
        }
        Some(Some((true, _))) => nic.arm_control_watchdog(),
        Some(Some((false, true))) => nic.fail_and_restart(Recovery::ControlTimeout, 0),
        _ => {}
    }
}
