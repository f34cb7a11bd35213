//! The glue host: the driver's Windows glue (`driver/kmdf/`, built with `glue-host`) loaded on
//! Linux under an emulated KMDF + NetAdapterCx, against QEMU's real `virtio-net-pci` or the
//! in-process device. The same DriverEntry, DeviceAdd, PrepareHardware, D0, queue, interrupt
//! and DPC code the `.sys` runs, called the way the frameworks call it:
//!
//! * [`objects`] — WDF objects, contexts, parents, cleanup/destroy order, a ledger;
//! * [`wdf`] — WDF and NT routines: driver, device, resources, bus interface, BAR mappings and
//!   the register seam, DMA enabler and common buffers, spin locks, device failure;
//! * [`interrupts`] — interrupt objects, the ISR at DIRQL from QEMU's MSI-X writes or INTx line,
//!   DPCs at DISPATCH_LEVEL on their own threads;
//! * [`netcx`] — NetAdapterCx's routines with its checks, configuration, link state, OID
//!   objects, receive-scaling state;
//! * [`datapath`] — queues, execution contexts and the class extension's sequences;
//! * [`irql`] — IRQL per thread and each routine's documented maximum; [`alloc`] — the driver's
//!   pool ledger and low-resource injection; [`sync`] — spin locks with a hold budget;
//! * [`bus`] — the PCI function (QEMU or in-process) and the PCI bus driver's part.
//!
//! This module is the PnP manager, the power manager and NDIS: [`Host`] plays DeviceAdd, start
//! (PrepareHardware → D0 entry → interrupts → datapath creation and start), NDIS pause/restart,
//! D0 ↔ D3, orderly and surprise removal, unload, the OIDs (packet filter, multicast, offloads,
//! RSS), and the stack's traffic. What it cannot prove: it encodes this project's reading of KMDF
//! and NetAdapterCx (cited per rule); a Windows run is still the final word.

pub mod alloc;
pub mod bus;
pub mod datapath;
pub mod inproc;
pub mod interrupts;
pub mod irql;
pub mod netcx;
pub mod objects;
pub mod sync;
pub mod timers;
pub mod wdf;
pub mod workitems;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use virtionet::kmdf::netcx::{
    EvtReturnRxBuffer, NET_ADAPTER_LINK_LAYER_ADDRESS, NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY,
    NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES, NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY,
    NETADAPTER, NETOFFLOAD, NETPACKETQUEUE, NETRECEIVEFILTER, NTSTATUS, RX_MODE_DRIVER,
    STATUS_SUCCESS,
};
use wdk_standin::{
    _WDF_DEVICE_FAILED_ACTION, _WDF_POWER_DEVICE_STATE, UNICODE_STRING, WDF_DEVICE_FAILED_ACTION,
    WDF_POWER_DEVICE_STATE, WDFCMRESLIST, WDFDEVICE, WDFDRIVER,
};

use crate::os_rx::RxFrame;
use crate::os_tx::TxFrame;
use crate::rng::Rng;

use self::bus::Bus;
use self::datapath::{Dir, Hold, Phase, Queue, Registration};
use self::netcx::{AdapterRecord, FilterCall, OffloadCall, OffloadState};
use self::objects::Kind;
use self::wdf::{
    CommonBuffer, DeviceInit, DeviceRecord, DriverRecord, Enabler, Mapping, ResourceList,
};

/// The `WDFDEVICE_INIT*` the host hands EvtDriverDeviceAdd (a token, not memory).
pub const DEVICE_INIT: usize = 0xD1_0000;
/// The `NETADAPTER_INIT*` NetAdapterInitAllocate returns (a token).
pub const ADAPTER_INIT: usize = 0xA1_0000;

/// How many interrupts the PnP manager grants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Interrupts {
    /// MSI-X with this many messages (capped by the device's table and the INF's
    /// MessageNumberLimit).
    Msix(u16),
    /// One line-based interrupt (INTx).
    Line,
}

/// The INF's `MessageNumberLimit`.
pub const MESSAGE_NUMBER_LIMIT: u16 = 18;

/// A scenario's machine set-up.
#[derive(Debug, Clone)]
pub struct HostConfig {
    /// The adapter's registry keywords (REG_SZ values, as the INF writes them).
    pub keywords: BTreeMap<String, String>,
    /// Interrupts granted.
    pub interrupts: Interrupts,
    /// Seed for ring layouts.
    pub seed: u64,
    /// The longest physically contiguous common buffer the machine can still supply (a
    /// fragmented, long-running guest); `None`: any.
    pub largest_common_buffer: Option<usize>,
    /// The stack's transmit frames live in private memory the device cannot reach (a
    /// confidential VM; [`crate::os_tx::OsTx::set_private`]).
    pub private_os_memory: bool,
}

impl Default for HostConfig {
    fn default() -> Self {
        Self {
            keywords: BTreeMap::new(),
            interrupts: Interrupts::Msix(MESSAGE_NUMBER_LIMIT),
            seed: 1,
            largest_common_buffer: None,
            private_os_memory: false,
        }
    }
}

/// PnP work the framework does on its own (from a driver call).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PnpRequest {
    /// NetAdapterStart returned.
    AdapterStarted,
    /// WdfDeviceSetFailed.
    Failed(WDF_DEVICE_FAILED_ACTION),
}

/// The low-resource plan.
#[derive(Debug, Default)]
pub struct Faults {
    /// Framework create calls to let through before one fails.
    pub fail_create_in: Option<u64>,
    /// Create calls made to fail.
    pub failed_creates: Vec<&'static str>,
    /// A routine whose call fails after this many more of its calls go through.
    pub fail_named: Option<(&'static str, u64)>,
}

/// A queue-creation init object (valid during its callback, on its thread).
#[derive(Debug, Clone, Copy)]
pub struct QueueInit {
    /// TX or RX.
    pub dir: Dir,
    /// Queue id.
    pub id: u32,
    /// A queue was created from it.
    pub used: bool,
    thread: std::thread::ThreadId,
}

/// The device's power state, as the host drives it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Power {
    /// No device (before DeviceAdd or after removal).
    Absent,
    /// Added, not started.
    Added,
    /// Started and in D0.
    D0,
    /// Started and in D3.
    D3,
}

/// Everything the emulated frameworks hold.
pub struct HostState {
    /// The PCI function.
    pub bus: Arc<dyn Bus>,
    /// Set-up.
    pub config: HostConfig,
    /// When the host started (interrupt time's zero).
    pub epoch: Instant,
    /// The low-resource plan.
    pub faults: Mutex<Faults>,
    /// DriverEntry's registration.
    pub driver: Mutex<DriverRecord>,
    /// The init object of EvtDriverDeviceAdd.
    pub device_init: Mutex<DeviceInit>,
    /// The device.
    pub device: Mutex<DeviceRecord>,
    /// Resource lists of the current PrepareHardware/ReleaseHardware.
    pub resource_lists: Mutex<BTreeMap<usize, ResourceList>>,
    /// Translated memory resources (base, length) the driver may map.
    pub resources_pa: Mutex<Vec<(u64, u64)>>,
    /// BAR mappings by virtual address.
    pub mappings: Mutex<BTreeMap<usize, Mapping>>,
    /// Next mapping address offset.
    pub next_mapping: AtomicUsize,
    /// DMA enablers.
    pub enablers: Mutex<BTreeMap<usize, Enabler>>,
    /// Common buffers.
    pub common_buffers: Mutex<BTreeMap<usize, CommonBuffer>>,
    /// Spin locks.
    pub spin_locks: Mutex<BTreeMap<usize, Arc<sync::SpinLock>>>,
    /// Interrupt objects in creation order.
    pub interrupts: Mutex<Vec<Arc<interrupts::Interrupt>>>,
    /// Timer objects.
    pub timers: Mutex<BTreeMap<usize, Arc<timers::Timer>>>,
    /// Work-item objects.
    pub work_items: Mutex<BTreeMap<usize, Arc<workitems::WorkItem>>>,
    /// What the driver stored with NetDeviceStoreResetDiagnostics, one entry per reset.
    pub reset_diagnostics: Mutex<Vec<Vec<u8>>>,
    /// Inside the driver's EvtNetDeviceCollectResetDiagnostics.
    pub collecting_diagnostics: AtomicBool,
    /// Register (MMIO) reads and writes the driver made.
    pub register_reads: AtomicU64,
    /// As `register_reads`.
    pub register_writes: AtomicU64,
    /// While `Some`: every register write, with the thread that made it (for a scenario that
    /// must explain an unexpected access).
    pub write_log: Mutex<Option<Vec<String>>>,
    /// Inside EvtDevicePrepareHardware.
    pub in_prepare_hardware: AtomicBool,
    /// The adapter.
    pub adapter: Mutex<AdapterRecord>,
    /// The receive filter object of a running EvtSetReceiveFilter.
    pub receive_filter: Mutex<Option<FilterCall>>,
    /// The offload object of a running offload callback.
    pub offload: Mutex<Option<OffloadCall>>,
    /// Queues (TX and RX) that exist.
    pub queues: Mutex<Vec<Arc<Queue>>>,
    queue_inits: Mutex<BTreeMap<usize, QueueInit>>,
    next_token: AtomicUsize,
    registry: Mutex<BTreeMap<String, String>>,
    binary_registry: Mutex<BTreeMap<String, Vec<u8>>>,
    rng: Mutex<Rng>,
    requests: Mutex<Vec<PnpRequest>>,
    request_cv: Condvar,
    /// Calls per routine.
    pub calls: Mutex<BTreeMap<&'static str, u64>>,
    power: Mutex<Power>,
    controller: Mutex<Option<interrupts::Controller>>,
    offloads_initialized: AtomicBool,
    /// Restarts WDF made after WdfDeviceSetFailed(AttemptRestart), with their times.
    pub restarts: Mutex<Vec<Instant>>,
    /// Datapath-stop failures (the stopping poll never drained).
    pub stop_failures: AtomicU64,
    /// The resource lists (raw, translated) from PrepareHardware to ReleaseHardware.
    lists: Mutex<Option<(usize, usize)>>,
    /// Serialises PnP and power operations (the test's and the PnP worker's).
    pnp_lock: Mutex<()>,
    /// The PnP worker is handling a request.
    pnp_busy: AtomicBool,
    /// Guest-RAM regions in use before the driver loaded.
    arena_base: usize,
}

static CURRENT: Mutex<Option<Arc<HostState>>> = Mutex::new(None);
/// Serialises glue-host scenarios: the function tables are globals.
static SERIAL: Mutex<()> = Mutex::new(());

/// The running host's state (every routine reaches it here).
pub fn state() -> Arc<HostState> {
    CURRENT
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .expect("no glue host is running")
}

/// Alias of [`state`].
pub fn host() -> Arc<HostState> {
    state()
}

/// Counts a routine call.
pub fn count_call(name: &'static str) {
    if let Some(s) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone() {
        *s.calls
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(name)
            .or_default() += 1;
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

impl HostState {
    /// The WDFDEVICE (0 if none).
    pub fn device_handle(&self) -> usize {
        lock(&self.device).handle
    }

    /// The NETADAPTER (0 if none).
    pub fn adapter_handle(&self) -> usize {
        lock(&self.adapter).handle
    }

    /// Queues a PnP request for the host's PnP worker.
    pub fn pnp_request(&self, r: PnpRequest) {
        lock(&self.requests).push(r);
        self.request_cv.notify_all();
    }

    /// Whether `descriptor` is an interrupt descriptor of the current resource lists (and
    /// whether it is a message interrupt).
    pub fn interrupt_descriptor(&self, descriptor: usize) -> Option<bool> {
        let lists = lock(&self.resource_lists);
        for l in lists.values() {
            for d in l.descriptors.iter() {
                if d.as_ptr() as usize == descriptor && d[0] == 2 {
                    return Some(u16::from_le_bytes([d[2], d[3]]) & 0x0002 != 0);
                }
            }
        }
        None
    }

    /// The DMA enabler's MaximumLength of the declared DMA capabilities.
    pub fn dma_max_length(&self) -> Option<usize> {
        let d = lock(&self.adapter).declared.dma?;
        lock(&self.enablers)
            .get(&(d.DmaEnabler as usize))
            .map(|e| e.config.MaximumLength)
    }

    /// EvtAdapterReturnRxBuffer, if declared.
    pub fn return_rx_buffer(&self) -> Option<EvtReturnRxBuffer> {
        let rx = lock(&self.adapter).declared.rx?;
        if rx.AllocationMode != RX_MODE_DRIVER {
            return None;
        }
        // SAFETY: in driver mode the union holds the callback.
        unsafe { rx.u.EvtAdapterReturnRxBuffer }
    }

    /// A keyword's registry value.
    pub fn registry_value(&self, name: &str) -> Option<String> {
        lock(&self.registry)
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.clone())
    }

    /// Stores a value in the adapter's registry key (replacing one of the same name).
    pub fn registry_assign(&self, name: &str, value: String) {
        let mut r = lock(&self.registry);
        match r.iter_mut().find(|(k, _)| k.eq_ignore_ascii_case(name)) {
            Some((_, v)) => *v = value,
            None => {
                r.insert(name.to_string(), value);
            }
        }
    }

    /// Stores a binary value in the adapter's registry key.
    pub fn registry_assign_binary(&self, name: &str, value: Vec<u8>) {
        lock(&self.binary_registry).insert(name.to_string(), value);
    }

    /// A binary value of the adapter's registry key.
    pub fn registry_binary(&self, name: &str) -> Option<Vec<u8>> {
        lock(&self.binary_registry).get(name).cloned()
    }

    /// The queue init `h` of direction `dir`, checked against its thread.
    pub fn queue_init(&self, h: usize, dir: Dir) -> Option<QueueInit> {
        let i = lock(&self.queue_inits).get(&h).copied();
        match i {
            Some(i) if i.dir == dir && i.thread == std::thread::current().id() => Some(i),
            Some(i) if i.dir == dir => {
                irql::violation(
                    "NetAdapterCx: QueueInitContext",
                    "a queue init object used on another thread than its creation callback's"
                        .into(),
                );
                None
            }
            _ => {
                irql::violation(
                    "NetAdapterCx: InvalidQueueInit",
                    format!("{dir:?} queue init {h:#x} is not one of a running callback"),
                );
                None
            }
        }
    }

    /// Marks a queue init used.
    pub fn use_queue_init(&self, h: usize) {
        if let Some(i) = lock(&self.queue_inits).get_mut(&h) {
            i.used = true;
        }
    }

    /// What the framework registers on a `dir` queue, and the fragment-ring hint.
    pub fn registration(&self, dir: Dir) -> (Registration, u32) {
        let a = lock(&self.adapter);
        let d = a.declared;
        let reg = Registration {
            tx_checksum: d.tx_checksum.is_some(),
            gso: d.gso.is_some(),
            rx_checksum: d.rx_checksum.is_some(),
            rsc: d.rsc.is_some(),
            ieee8021q: d.ieee8021q.is_some_and(|f| f != 0),
            hash: d.rss.is_some(),
            logical_address: d.dma.is_some(),
            return_context: d.rx.is_some_and(|r| r.AllocationMode == RX_MODE_DRIVER),
        };
        let hint = match dir {
            Dir::Tx => d.tx.map_or(0, |t| t.FragmentRingNumberOfElementsHint),
            Dir::Rx => d.rx.map_or(0, |r| r.FragmentRingNumberOfElementsHint),
        };
        (reg, hint)
    }

    /// The ring-layout generator.
    pub fn rng(&self) -> MutexGuard<'_, Rng> {
        lock(&self.rng)
    }

    /// Adds a created queue.
    pub fn add_queue(&self, q: Arc<Queue>) {
        lock(&self.queues).push(q);
    }

    /// The queue of handle `h`.
    pub fn queue_by_handle(&self, h: usize) -> Option<Arc<Queue>> {
        lock(&self.queues).iter().find(|q| q.handle == h).cloned()
    }

    fn queues_of(&self, dir: Dir) -> Vec<Arc<Queue>> {
        let mut v: Vec<_> = lock(&self.queues)
            .iter()
            .filter(|q| q.dir == dir)
            .cloned()
            .collect();
        v.sort_by_key(|q| q.id);
        v
    }

    /// Frees what the host holds for a deleted object.
    pub fn release_object(&self, h: usize, kind: Kind) {
        match kind {
            Kind::CommonBuffer => {
                if let Some(mut c) = lock(&self.common_buffers).remove(&h)
                    && let Some(r) = c.region.take()
                {
                    virtio::hal::Dma::free(self.bus.arena(), r);
                }
            }
            Kind::SpinLock => {
                lock(&self.spin_locks).remove(&h);
            }
            Kind::Timer => {
                let t = lock(&self.timers).remove(&h);
                if let Some(t) = t {
                    t.shut_down();
                }
            }
            Kind::WorkItem => {
                let w = lock(&self.work_items).remove(&h);
                if let Some(w) = w {
                    w.shut_down();
                }
            }
            Kind::DmaEnabler => {
                lock(&self.enablers).remove(&h);
            }
            Kind::Interrupt => {
                let i = {
                    let mut l = lock(&self.interrupts);
                    l.iter().position(|i| i.handle == h).map(|p| l.remove(p))
                };
                if let Some(i) = i {
                    i.shut_down();
                }
            }
            Kind::Queue => {
                let q = {
                    let mut l = lock(&self.queues);
                    l.iter().position(|q| q.handle == h).map(|p| l.remove(p))
                };
                if let Some(q) = q {
                    q.exit();
                }
            }
            Kind::ResourceList => {
                lock(&self.resource_lists).remove(&h);
            }
            Kind::Adapter => {
                let mut a = lock(&self.adapter);
                a.handle = 0;
                a.started = false;
            }
            Kind::Device => {
                *lock(&self.device) = DeviceRecord::default();
            }
            Kind::Driver => {
                *lock(&self.driver) = DriverRecord::default();
            }
            Kind::Configuration => {}
        }
    }

    /// NetAdapterStop: the datapath goes if it is still up.
    pub fn stop_adapter_datapath(&self) {
        if !lock(&self.queues).is_empty() {
            let _ = self.stop_datapath();
            self.destroy_datapath();
        }
    }

    fn call_create(&self, dir: Dir, id: u32) -> Result<(), NTSTATUS> {
        let Some(cb) = lock(&self.adapter).datapath else {
            return Err(wdf::STATUS_INVALID_DEVICE_REQUEST);
        };
        let token = 0x5000_0000 + self.next_token.fetch_add(0x10, Ordering::Relaxed);
        lock(&self.queue_inits).insert(
            token,
            QueueInit {
                dir,
                id,
                used: false,
                thread: std::thread::current().id(),
            },
        );
        let adapter = self.adapter_handle() as NETADAPTER;
        let st = irql::at(irql::PASSIVE, || {
            alloc::as_driver(|| match dir {
                // SAFETY: the driver's queue-creation callbacks with an init object valid for the
                // call, at PASSIVE_LEVEL.
                Dir::Tx => cb
                    .EvtAdapterCreateTxQueue
                    .map_or(wdf::STATUS_INVALID_DEVICE_REQUEST, |f| unsafe {
                        f(adapter, token as _)
                    }),
                // SAFETY: as above.
                Dir::Rx => cb
                    .EvtAdapterCreateRxQueue
                    .map_or(wdf::STATUS_INVALID_DEVICE_REQUEST, |f| unsafe {
                        f(adapter, token as _)
                    }),
            })
        });
        let used = lock(&self.queue_inits)
            .remove(&token)
            .is_some_and(|i| i.used);
        if st >= 0 && !used {
            irql::violation(
                "NetAdapterCx: QueueNotCreated",
                format!("EvtAdapterCreate{dir:?}Queue({id}) succeeded without creating a queue"),
            );
            return Err(wdf::STATUS_INVALID_DEVICE_STATE);
        }
        if st < 0 {
            // The framework deletes a queue object created before the failure.
            let q = lock(&self.queues)
                .iter()
                .find(|q| q.dir == dir && q.id == id)
                .cloned();
            if let Some(q) = q {
                q.exit();
                wdf::delete_object(q.handle);
            }
            return Err(st);
        }
        Ok(())
    }

    /// DatapathCreate (`QueueControl::CreateQueues`): TX0, RX0, the RSS queues if RSS is
    /// initialized, then the receive-scaling configuration — all before any EvtStart.
    fn create_datapath(&self) -> Result<(), NTSTATUS> {
        self.call_create(Dir::Tx, 0)?;
        self.call_create(Dir::Rx, 0)?;
        let (init, n) = {
            let a = lock(&self.adapter);
            (a.rss.initialized, a.rss.queues)
        };
        if init {
            for id in 1..n {
                self.call_create(Dir::Rx, id)?;
            }
            self.rss_configure()?;
        }
        Ok(())
    }

    /// DatapathStart: TX queues then RX queues.
    fn start_datapath(&self) -> bool {
        let mut ok = true;
        for q in self
            .queues_of(Dir::Tx)
            .into_iter()
            .chain(self.queues_of(Dir::Rx))
        {
            if q.phase() != Phase::Started {
                ok &= q.start();
            }
        }
        ok
    }

    /// DatapathStop (`NxTranslationApp::StopDatapath`).
    fn stop_datapath(&self) -> Result<(), String> {
        let (tx, rx) = (self.queues_of(Dir::Tx), self.queues_of(Dir::Rx));
        // (a) RX gate: every indicated NBL comes back before anything is cancelled.
        for q in &rx {
            q.release_held();
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        for q in &rx {
            loop {
                let pending = {
                    let s = lock(&q.stack);
                    !s.to_return.is_empty() || !s.held.is_empty()
                };
                if !pending || q.phase() != Phase::Started || Instant::now() > deadline {
                    break;
                }
                q.kick_stack();
                std::thread::sleep(Duration::from_millis(1));
            }
        }
        // (b) TX gate: new sends are refused.
        for q in &tx {
            let mut s = lock(&q.stack);
            s.open = false;
            s.refused += s.pending.len() as u64;
            s.pending.clear();
        }
        // (c) Cancel, all TX then all RX; (d) the stopping polls drain them.
        let mut errors = Vec::new();
        for q in tx.iter().chain(&rx) {
            if q.phase() == Phase::Started && !q.cancel() {
                errors.push(format!("{:?}{} Cancel did not run", q.dir, q.id));
            }
        }
        for q in tx.iter().chain(&rx) {
            if q.phase() == Phase::Stopping && !q.wait_drained(Duration::from_secs(5)) {
                errors.push(format!(
                    "{:?}{}: the stopping poll never drained (the driver kept its packets; a \
                     power transition waiting on it bugchecks 0x9F DRIVER_POWER_STATE_FAILURE)",
                    q.dir, q.id
                ));
            }
        }
        // (e) Stop, TX first.
        for q in tx.iter().chain(&rx) {
            if matches!(q.phase(), Phase::Started | Phase::Stopping) && !q.stop() {
                errors.push(format!("{:?}{} Stop did not run", q.dir, q.id));
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            self.stop_failures.fetch_add(1, Ordering::Relaxed);
            for e in &errors {
                irql::violation("StopNeverFinished", e.clone());
            }
            Err(errors.join("; "))
        }
    }

    /// DatapathDestroy (`QueueControl::DestroyQueues`): TX then RX.
    fn destroy_datapath(&self) {
        for q in self
            .queues_of(Dir::Tx)
            .into_iter()
            .chain(self.queues_of(Dir::Rx))
        {
            q.exit();
            wdf::delete_object(q.handle);
        }
        lock(&self.queues).clear();
    }

    // -----------------------------------------------------------------------------------------
    // Receive scaling.

    /// `RxScaling::SetIndirectionEntries` (no-op until configured), with retries when called
    /// from Configure.
    fn rss_send_entries(&self, indices: &[usize], retries: u32) -> NTSTATUS {
        let (configured, table) = {
            let a = lock(&self.adapter);
            (a.rss.configured, a.rss.table.clone())
        };
        if !configured {
            return STATUS_SUCCESS;
        }
        let Some(cb) = lock(&self.adapter)
            .declared
            .rss
            .and_then(|r| r.EvtAdapterReceiveScalingSetIndirectionEntries)
        else {
            return wdf::STATUS_NOT_SUPPORTED;
        };
        let rx = self.queues_of(Dir::Rx);
        let mut todo: Vec<usize> = indices.to_vec();
        let mut status = STATUS_SUCCESS;
        for _ in 0..=retries {
            let mut entries: Vec<NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY> = todo
                .iter()
                .map(|&i| NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRY {
                    PacketQueue: rx
                        .iter()
                        .find(|q| q.id == table.get(i).copied().unwrap_or(0))
                        .map_or(std::ptr::null_mut(), |q| q.handle as NETPACKETQUEUE),
                    Status: STATUS_SUCCESS,
                    Index: i as u32,
                })
                .collect();
            let mut list = NET_ADAPTER_RECEIVE_SCALING_INDIRECTION_ENTRIES {
                Entries: entries.as_mut_ptr(),
                Length: entries.len(),
            };
            let adapter = self.adapter_handle() as NETADAPTER;
            // The OID path delivers it at DISPATCH_LEVEL (`NetClientAdapterNdisOidRequestHandler`,
            // _IRQL_requires_max_(DISPATCH_LEVEL)).
            status = irql::at(irql::DISPATCH, || {
                // SAFETY: the driver's callback with an entries array valid for the call.
                alloc::as_driver(|| unsafe { cb(adapter, &mut list) })
            });
            lock(&self.adapter).rss.entry_statuses =
                entries.iter().map(|e| (e.Index, e.Status)).collect();
            if status >= 0 {
                return status;
            }
            todo = entries
                .iter()
                .filter(|e| e.Status < 0)
                .map(|e| e.Index as usize)
                .collect();
            if todo.is_empty() {
                break;
            }
        }
        status
    }

    fn rss_key(&self) -> NTSTATUS {
        let (cb, key) = {
            let a = lock(&self.adapter);
            (
                a.declared
                    .rss
                    .and_then(|r| r.EvtAdapterReceiveScalingSetHashSecretKey),
                a.rss.key.clone(),
            )
        };
        let Some(cb) = cb else {
            return wdf::STATUS_NOT_SUPPORTED;
        };
        let k = NET_ADAPTER_RECEIVE_SCALING_HASH_SECRET_KEY {
            Key: key.as_ptr(),
            Length: key.len(),
        };
        let adapter = self.adapter_handle() as NETADAPTER;
        irql::at(irql::PASSIVE, || {
            // SAFETY: the driver's callback with a key valid for the call.
            alloc::as_driver(|| unsafe { cb(adapter, &k) })
        })
    }

    /// `NxRxScaling::Enable`: the callback only when not enabled already.
    fn rss_enable(&self) -> NTSTATUS {
        let (cb, enabled, (h, p)) = {
            let a = lock(&self.adapter);
            (
                a.declared
                    .rss
                    .and_then(|r| r.EvtAdapterReceiveScalingEnable),
                a.rss.enabled,
                a.rss.hash,
            )
        };
        if enabled {
            return STATUS_SUCCESS;
        }
        let Some(cb) = cb else {
            return wdf::STATUS_NOT_SUPPORTED;
        };
        let adapter = self.adapter_handle() as NETADAPTER;
        let st = irql::at(irql::PASSIVE, || {
            // SAFETY: the driver's callback.
            alloc::as_driver(|| unsafe { cb(adapter, h, p) })
        });
        if st >= 0 {
            lock(&self.adapter).rss.enabled = true;
        }
        st
    }

    /// `NxRxScaling::Disable`: the callback only when enabled.
    fn rss_disable(&self) {
        let (cb, enabled) = {
            let a = lock(&self.adapter);
            (
                a.declared
                    .rss
                    .and_then(|r| r.EvtAdapterReceiveScalingDisable),
                a.rss.enabled,
            )
        };
        if !enabled {
            return;
        }
        if let Some(cb) = cb {
            let adapter = self.adapter_handle() as NETADAPTER;
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's callback.
                alloc::as_driver(|| unsafe { cb(adapter) })
            });
        }
        lock(&self.adapter).rss.enabled = false;
    }

    /// `RxScaling::Configure`: the whole cached table (retried), then key and Enable if the
    /// translator has RSS enabled; `m_configured` set — so the first Configure sends nothing and
    /// every later one (each datapath re-creation) re-sends the table and key before start.
    fn rss_configure(&self) -> Result<(), NTSTATUS> {
        let n = lock(&self.adapter).rss.table.len();
        let all: Vec<usize> = (0..n).collect();
        let st = self.rss_send_entries(&all, 3);
        if st < 0 {
            return Err(st);
        }
        if lock(&self.adapter).rss.translator_enabled {
            let st = self.rss_key();
            if st < 0 {
                return Err(st);
            }
            let st = self.rss_enable();
            if st < 0 {
                return Err(st);
            }
        }
        lock(&self.adapter).rss.configured = true;
        Ok(())
    }
}

/// The pool, objects and memory the driver still holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ledger {
    /// Live WDF/NetAdapterCx objects by kind.
    pub objects: BTreeMap<Kind, usize>,
    /// Live common buffers.
    pub common_buffers: usize,
    /// Live BAR mappings.
    pub mappings: usize,
    /// Bus-interface references not released.
    pub bus_interface_references: u64,
    /// The driver's pool.
    pub pool: alloc::PoolLedger,
    /// Guest-RAM regions still allocated (common buffers and TX frames in flight).
    pub arena_regions: usize,
}

impl Ledger {
    /// Whether nothing is held.
    pub fn is_empty(&self) -> bool {
        self.objects.is_empty()
            && self.common_buffers == 0
            && self.mappings == 0
            && self.bus_interface_references == 0
            && self.pool.live == 0
            && !self.pool.overflow
            && self.arena_regions == 0
    }
}

/// A scenario's emulated machine: the frameworks, the PnP manager and the stack.
pub struct Host {
    state: Arc<HostState>,
    _serial: MutexGuard<'static, ()>,
    worker: Option<std::thread::JoinHandle<()>>,
    worker_exit: Arc<AtomicBool>,
}

impl std::ops::Deref for Host {
    type Target = HostState;
    fn deref(&self) -> &HostState {
        &self.state
    }
}

fn unicode(s: &'static [u16]) -> UNICODE_STRING {
    UNICODE_STRING {
        Length: ((s.len() - 1) * 2) as u16,
        MaximumLength: (s.len() * 2) as u16,
        Buffer: s.as_ptr().cast_mut(),
    }
}

const REGISTRY_PATH: &[u16] = &[
    b'\\' as u16,
    b'R' as u16,
    b'E' as u16,
    b'G' as u16,
    b'\\' as u16,
    b'v' as u16,
    b'n' as u16,
    b'e' as u16,
    b't' as u16,
    0,
];

impl Host {
    /// A host over `bus` (waits for any other scenario of this process to finish first).
    pub fn new(bus: Arc<dyn Bus>, config: HostConfig) -> Self {
        let serial = SERIAL.lock().unwrap_or_else(|e| e.into_inner());
        objects::reset();
        alloc::reset();
        let _ = irql::take_violations();
        wdf::BUS_INTERFACE_REFERENCES.store(0, Ordering::Relaxed);
        let registry = config.keywords.clone();
        let seed = config.seed;
        let arena_base = bus.arena().outstanding();
        let state = Arc::new(HostState {
            bus,
            config,
            epoch: Instant::now(),
            faults: Mutex::new(Faults::default()),
            driver: Mutex::new(DriverRecord::default()),
            device_init: Mutex::new(DeviceInit::default()),
            device: Mutex::new(DeviceRecord::default()),
            resource_lists: Mutex::new(BTreeMap::new()),
            resources_pa: Mutex::new(Vec::new()),
            mappings: Mutex::new(BTreeMap::new()),
            next_mapping: AtomicUsize::new(0),
            enablers: Mutex::new(BTreeMap::new()),
            common_buffers: Mutex::new(BTreeMap::new()),
            spin_locks: Mutex::new(BTreeMap::new()),
            interrupts: Mutex::new(Vec::new()),
            timers: Mutex::new(BTreeMap::new()),
            work_items: Mutex::new(BTreeMap::new()),
            reset_diagnostics: Mutex::new(Vec::new()),
            collecting_diagnostics: AtomicBool::new(false),
            register_reads: AtomicU64::new(0),
            register_writes: AtomicU64::new(0),
            write_log: Mutex::new(None),
            in_prepare_hardware: AtomicBool::new(false),
            adapter: Mutex::new(AdapterRecord::default()),
            receive_filter: Mutex::new(None),
            offload: Mutex::new(None),
            queues: Mutex::new(Vec::new()),
            queue_inits: Mutex::new(BTreeMap::new()),
            next_token: AtomicUsize::new(0),
            registry: Mutex::new(registry),
            binary_registry: Mutex::new(BTreeMap::new()),
            rng: Mutex::new(Rng::new(seed)),
            requests: Mutex::new(Vec::new()),
            request_cv: Condvar::new(),
            calls: Mutex::new(BTreeMap::new()),
            power: Mutex::new(Power::Absent),
            controller: Mutex::new(None),
            offloads_initialized: AtomicBool::new(false),
            restarts: Mutex::new(Vec::new()),
            stop_failures: AtomicU64::new(0),
            lists: Mutex::new(None),
            pnp_lock: Mutex::new(()),
            pnp_busy: AtomicBool::new(false),
            arena_base,
        });
        *lock(&CURRENT) = Some(state.clone());
        wdf::install();
        netcx::install();
        let exit = Arc::new(AtomicBool::new(false));
        let mut h = Self {
            state,
            _serial: serial,
            worker: None,
            worker_exit: exit.clone(),
        };
        h.worker = std::thread::Builder::new()
            .name("pnp-worker".into())
            .spawn(move || pnp_worker(exit))
            .ok();
        h
    }

    /// The frameworks' state.
    pub fn state(&self) -> &Arc<HostState> {
        &self.state
    }
}

impl HostState {
    /// [`Self::add_device_locked`] under the PnP lock.
    pub fn add_device(&self) -> NTSTATUS {
        let _pnp = lock(&self.pnp_lock);
        self.add_device_locked()
    }
    /// [`Self::start_locked`] under the PnP lock.
    pub fn start(&self) -> NTSTATUS {
        let _pnp = lock(&self.pnp_lock);
        self.start_locked()
    }
    /// [`Self::pause_locked`] under the PnP lock.
    pub fn pause(&self) -> Result<(), String> {
        let _pnp = lock(&self.pnp_lock);
        self.pause_locked()
    }
    /// [`Self::restart_locked`] under the PnP lock.
    pub fn restart(&self) -> bool {
        let _pnp = lock(&self.pnp_lock);
        self.restart_locked()
    }
    /// [`Self::sleep_locked`] under the PnP lock.
    pub fn sleep(&self) -> Result<(), String> {
        let _pnp = lock(&self.pnp_lock);
        self.sleep_locked()
    }
    /// [`Self::wake_locked`] under the PnP lock.
    pub fn wake(&self) -> NTSTATUS {
        let _pnp = lock(&self.pnp_lock);
        self.wake_locked()
    }
    /// [`Self::remove_locked`] under the PnP lock.
    pub fn remove(&self) -> Result<(), String> {
        let _pnp = lock(&self.pnp_lock);
        self.remove_locked()
    }
    /// [`Self::surprise_remove_locked`] under the PnP lock.
    pub fn surprise_remove(&self) -> Result<Duration, String> {
        let _pnp = lock(&self.pnp_lock);
        self.surprise_remove_locked()
    }
    /// [`Self::unload_locked`] under the PnP lock.
    pub fn unload(&self) -> Ledger {
        let _pnp = lock(&self.pnp_lock);
        self.unload_locked()
    }

    /// WdfDeviceSetFailed, as the PnP worker plays it: the stack torn down (NDIS halts the
    /// miniport: the datapath stopped and destroyed, D0 exit to D3Final, ReleaseHardware, the
    /// device removed), then, for AttemptRestart within the restart limits, enumerated again
    /// (DeviceAdd, start).
    pub fn device_failed(&self, restart: bool) {
        let _pnp = lock(&self.pnp_lock);
        if self.power() == Power::Absent {
            return;
        }
        if self.power() == Power::D0
            && let Err(e) = self.power_down(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final)
        {
            irql::violation(
                "PowerTransitionHung",
                format!("tearing down a failed device: {e}"),
            );
        }
        self.finish_removal();
        if restart && self.add_device_locked() >= 0 {
            let _ = self.start_locked();
        }
    }

    /// Makes the create routine `name` fail once, after `skip` more of its calls went through
    /// (then it returns STATUS_INSUFFICIENT_RESOURCES, as on a machine short of memory).
    pub fn fail_next(&self, name: &'static str, skip: u64) {
        lock(&self.faults).fail_named = Some((name, skip));
    }

    /// The create calls made to fail so far.
    pub fn failed_creates(&self) -> Vec<&'static str> {
        lock(&self.faults).failed_creates.clone()
    }

    /// Makes the framework create call after the next `n` fail (`None`: none).
    pub fn fail_create_after(&self, n: Option<u64>) {
        lock(&self.faults).fail_create_in = n;
    }

    /// DriverEntry.
    pub fn load(&self) -> NTSTATUS {
        let mut object = [0u64; 64];
        let path = unicode(REGISTRY_PATH);
        // SAFETY: the driver object is opaque to the glue (a zero-sized struct in the stand-in);
        // any aligned, live memory stands for it.
        let driver = unsafe { &mut *object.as_mut_ptr().cast::<wdk_standin::DRIVER_OBJECT>() };
        irql::at(irql::PASSIVE, || {
            alloc::as_driver(|| {
                // SAFETY: a driver object and a registry path valid for the call, at
                // PASSIVE_LEVEL, once.
                unsafe { virtionet::kmdf::driver_entry(driver, &path) }
            })
        })
    }

    /// EvtDriverDeviceAdd. On failure WDF deletes what was created.
    fn add_device_locked(&self) -> NTSTATUS {
        let s = self;
        *lock(&s.device_init) = DeviceInit::default();
        let (driver, add) = {
            let d = lock(&s.driver);
            (d.handle, d.device_add)
        };
        let Some(add) = add else {
            return wdf::STATUS_INVALID_DEVICE_REQUEST;
        };
        let st = irql::at(irql::PASSIVE, || {
            // SAFETY: the driver's DeviceAdd with its driver handle and an init token, at
            // PASSIVE_LEVEL.
            alloc::as_driver(|| unsafe { add(driver as WDFDRIVER, DEVICE_INIT as _) })
        });
        if st < 0 {
            let d = s.device_handle();
            if d != 0 {
                wdf::delete_object(d);
            }
            return st;
        }
        if lock(&s.adapter).init_live {
            irql::violation(
                "NetAdapterCx: InitNotFreed",
                "NetAdapterInitFree must be called whatever NetAdapterCreate returned".into(),
            );
        }
        *lock(&s.power) = Power::Added;
        st
    }

    fn pnp(&self) -> Option<wdk_standin::WDF_PNPPOWER_EVENT_CALLBACKS> {
        lock(&self.device).pnp
    }

    /// Grants interrupts for a start: (descriptors, message-based).
    fn interrupt_resources(&self) -> (usize, bool) {
        match self.config.interrupts {
            Interrupts::Line => (1, false),
            Interrupts::Msix(n) => {
                let table = self.bus.msix_table_size();
                let n = n.min(table).min(MESSAGE_NUMBER_LIMIT);
                if n == 0 {
                    (1, false)
                } else {
                    (usize::from(n), true)
                }
            }
        }
    }

    /// Starts the device: PrepareHardware with the resources the PnP manager assigned, D0 entry,
    /// interrupts connected, then (NetAdapterStart having been called) the datapath: created,
    /// the initial offload settings, started. On failure the stack is torn down as WDF does.
    fn start_locked(&self) -> NTSTATUS {
        let s = self;
        let Some(pnp) = self.pnp() else {
            return wdf::STATUS_INVALID_DEVICE_STATE;
        };
        let bars = s.bus.enable();
        let mut raw = Vec::new();
        let mut pa = Vec::new();
        for b in &bars {
            raw.push(wdf::memory_descriptor(b.base, b.len as u32));
            pa.push((b.base, b.len));
        }
        let (n, msi) = self.interrupt_resources();
        for i in 0..n {
            raw.push(wdf::interrupt_descriptor(msi, 0x60 + i as u32));
        }
        let translated = raw.clone();
        *lock(&s.resources_pa) = pa;
        let raw_h = wdf::new_resource_list(raw);
        let tr_h = wdf::new_resource_list(translated);
        let device = s.device_handle() as WDFDEVICE;
        s.in_prepare_hardware.store(true, Ordering::Release);
        let st = pnp.EvtDevicePrepareHardware.map_or(STATUS_SUCCESS, |f| {
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's PrepareHardware with resource lists valid for the call.
                alloc::as_driver(|| unsafe {
                    f(device, raw_h as WDFCMRESLIST, tr_h as WDFCMRESLIST)
                })
            })
        });
        s.in_prepare_hardware.store(false, Ordering::Release);
        if st < 0 {
            // WDF calls ReleaseHardware after a failed PrepareHardware (NetDeviceInitConfig sets
            // the release-on-failure order) and deletes the interrupts created there.
            self.release_hardware(tr_h);
            wdf::delete_object(raw_h);
            wdf::delete_object(tr_h);
            return st;
        }
        *lock(&s.lists) = Some((raw_h, tr_h));
        let st = self.power_up(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final);
        if st < 0 {
            self.teardown_after_failed_start();
        }
        st
    }

    fn teardown_after_failed_start(&self) {
        self.disconnect_interrupts(None);
        if let Some((raw, tr)) = lock(&self.lists).take() {
            self.release_hardware(tr);
            wdf::delete_object(raw);
            wdf::delete_object(tr);
        }
        let d = self.device_handle();
        if d != 0 {
            wdf::delete_object(d);
        }
        *lock(&self.power) = Power::Absent;
    }

    /// EvtDeviceReleaseHardware, then the framework deletes the interrupts created in
    /// PrepareHardware (`FxPkgPnp::PnpReleaseHardware` → `OnPostReleaseHardware`).
    fn release_hardware(&self, translated: usize) -> NTSTATUS {
        let s = self;
        let device = s.device_handle() as WDFDEVICE;
        let st = self
            .pnp()
            .and_then(|p| p.EvtDeviceReleaseHardware)
            .map_or(STATUS_SUCCESS, |f| {
                irql::at(irql::PASSIVE, || {
                    // SAFETY: the driver's ReleaseHardware with the start's translated list.
                    alloc::as_driver(|| unsafe { f(device, translated as WDFCMRESLIST) })
                })
            });
        let ints: Vec<usize> = lock(&s.interrupts).iter().map(|i| i.handle).collect();
        for h in ints.into_iter().rev() {
            wdf::delete_object(h);
        }
        lock(&s.resources_pa).clear();
        st
    }

    /// Connects and enables every interrupt, then EvtDeviceD0EntryPostInterruptsEnabled.
    fn connect_interrupts(&self, previous: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
        let s = self;
        let (n, msi) = self.interrupt_resources();
        s.bus.program_interrupts(if msi { n as u16 } else { 0 });
        {
            let mut c = lock(&s.controller);
            if c.is_none() {
                *c = Some(interrupts::Controller::start());
            }
        }
        let ints: Vec<_> = lock(&s.interrupts).iter().cloned().collect();
        for i in ints {
            i.connected.store(true, Ordering::Release);
            let st = i.enable(true);
            if st < 0 {
                return st;
            }
        }
        let device = s.device_handle() as WDFDEVICE;
        self.pnp()
            .and_then(|p| p.EvtDeviceD0EntryPostInterruptsEnabled)
            .map_or(STATUS_SUCCESS, |f| {
                irql::at(irql::PASSIVE, || {
                    // SAFETY: the driver's callback, at PASSIVE_LEVEL.
                    alloc::as_driver(|| unsafe { f(device, previous) })
                })
            })
    }

    /// EvtDeviceD0ExitPreInterruptsDisabled (on a power-down to `target`; not after a failed
    /// power-up), then every connected interrupt disabled and disconnected.
    fn disconnect_interrupts(&self, target: Option<WDF_POWER_DEVICE_STATE>) {
        let s = self;
        let device = s.device_handle() as WDFDEVICE;
        if let Some((f, target)) = self
            .pnp()
            .and_then(|p| p.EvtDeviceD0ExitPreInterruptsDisabled)
            .zip(target)
        {
            let st = irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's callback, at PASSIVE_LEVEL.
                alloc::as_driver(|| unsafe { f(device, target) })
            });
            if st < 0 {
                irql::violation(
                    "PowerDownFailed",
                    format!("EvtDeviceD0ExitPreInterruptsDisabled returned {st:#x}"),
                );
            }
        }
        let ints: Vec<_> = lock(&s.interrupts).iter().rev().cloned().collect();
        for i in ints {
            if i.connected.load(Ordering::Acquire) {
                let _ = i.enable(false);
            }
            i.disconnect();
            if !i.flush() {
                irql::violation(
                    "DpcNeverFinished",
                    format!("interrupt {} DPC still running after 10 s", i.message),
                );
            }
        }
        *lock(&s.controller) = None;
    }

    /// D0 entry from `previous`: EvtDeviceD0Entry, interrupts connected, then the datapath if
    /// the adapter is started (AdapterPnpPower `StartIoD0`): created (with the receive-scaling
    /// configuration), the initial offload settings on the first power-up
    /// (`NxTaskOffload::Initialize`, whose callbacks are powered), started.
    fn power_up(&self, previous: WDF_POWER_DEVICE_STATE) -> NTSTATUS {
        let s = self;
        let device = s.device_handle() as WDFDEVICE;
        let st = self
            .pnp()
            .and_then(|p| p.EvtDeviceD0Entry)
            .map_or(STATUS_SUCCESS, |f| {
                irql::at(irql::PASSIVE, || {
                    // SAFETY: the driver's D0Entry.
                    alloc::as_driver(|| unsafe { f(device, previous) })
                })
            });
        if st < 0 {
            return st;
        }
        let st = self.connect_interrupts(previous);
        if st < 0 {
            return st;
        }
        *lock(&s.power) = Power::D0;
        if !lock(&s.adapter).started {
            return STATUS_SUCCESS;
        }
        if !s.offloads_initialized.swap(true, Ordering::AcqRel) {
            self.set_offloads(self.default_offloads());
        }
        if s.create_datapath().is_err() {
            // `QueueControl::CreateQueues` discards what it made; `NetClientAdapterCreateDatapath`
            // fails the device (`WdfDeviceSetFailed(WdfDeviceFailedNoRestart)`), and the power-up
            // itself succeeds (`EvtCxDevicePostD0EntryPostHardwareEnabled` returns success).
            s.destroy_datapath();
            s.pnp_request(PnpRequest::Failed(
                _WDF_DEVICE_FAILED_ACTION::WdfDeviceFailedNoRestart,
            ));
            return STATUS_SUCCESS;
        }
        if !s.start_datapath() {
            return wdf::STATUS_INVALID_DEVICE_STATE;
        }
        STATUS_SUCCESS
    }

    /// D0 exit to `target`: the datapath stopped and destroyed first (AdapterPnpPower
    /// `StopIoD3`), interrupts disabled and disconnected, then EvtDeviceD0Exit.
    fn power_down(&self, target: WDF_POWER_DEVICE_STATE) -> Result<(), String> {
        let s = self;
        let mut r = Ok(());
        if !lock(&s.queues).is_empty() {
            r = s.stop_datapath();
            s.destroy_datapath();
        }
        self.disconnect_interrupts(Some(target));
        let device = s.device_handle() as WDFDEVICE;
        let st = self
            .pnp()
            .and_then(|p| p.EvtDeviceD0Exit)
            .map_or(STATUS_SUCCESS, |f| {
                irql::at(irql::PASSIVE, || {
                    // SAFETY: the driver's D0Exit.
                    alloc::as_driver(|| unsafe { f(device, target) })
                })
            });
        *lock(&s.power) = Power::D3;
        if st < 0 {
            return Err(format!("D0Exit returned {st:#x}"));
        }
        r
    }

    /// The device's power state.
    pub fn power(&self) -> Power {
        *lock(&self.power)
    }

    /// NDIS pause: the datapath stopped, queue objects kept.
    fn pause_locked(&self) -> Result<(), String> {
        self.stop_datapath()
    }

    /// NDIS restart: the queues started again.
    fn restart_locked(&self) -> bool {
        for q in lock(&self.queues).iter() {
            lock(&q.stack).open = true;
        }
        self.start_datapath()
    }

    /// D0 → D3 (the datapath goes first).
    fn sleep_locked(&self) -> Result<(), String> {
        self.power_down(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3)
    }

    /// D3 → D0 (the datapath comes back after).
    fn wake_locked(&self) -> NTSTATUS {
        self.power_up(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3)
    }

    /// Orderly removal: D0 exit to D3Final, ReleaseHardware, the device deleted.
    fn remove_locked(&self) -> Result<(), String> {
        let r = if self.power() == Power::D0 {
            self.power_down(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final)
        } else {
            Ok(())
        };
        self.finish_removal();
        r
    }

    fn finish_removal(&self) {
        let s = self;
        if let Some((raw, tr)) = lock(&s.lists).take() {
            self.release_hardware(tr);
            wdf::delete_object(raw);
            wdf::delete_object(tr);
        }
        let d = s.device_handle();
        if d != 0 {
            wdf::delete_object(d);
        }
        *lock(&s.power) = Power::Absent;
    }

    /// Surprise removal: the device vanishes (reads all-ones, no DMA); NetAdapterCx destroys the
    /// datapath without an NDIS pause (`EvtCxDevicePreSurpriseRemoval` → `StopIoD3Final`), then
    /// D0 exit, ReleaseHardware, the device deleted. Returns how long the driver took.
    fn surprise_remove_locked(&self) -> Result<Duration, String> {
        let t0 = Instant::now();
        self.bus.surprise_remove();
        let r = if self.power() == Power::D0 {
            self.power_down(_WDF_POWER_DEVICE_STATE::WdfPowerDeviceD3Final)
        } else {
            Ok(())
        };
        self.finish_removal();
        r.map(|()| t0.elapsed())
    }

    /// EvtDriverUnload, the driver object deleted; returns what is left.
    fn unload_locked(&self) -> Ledger {
        let s = self;
        if self.power() != Power::Absent {
            let _ = self.remove_locked();
        }
        let (driver, unload) = {
            let d = lock(&s.driver);
            (d.handle, d.unload)
        };
        if let Some(f) = unload {
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's unload routine.
                alloc::as_driver(|| unsafe { f(driver as WDFDRIVER) })
            });
        }
        if driver != 0 {
            wdf::delete_object(driver);
        }
        self.ledger()
    }

    /// What the driver holds now.
    pub fn ledger(&self) -> Ledger {
        let s = self;
        Ledger {
            objects: objects::live(),
            common_buffers: lock(&s.common_buffers).len(),
            mappings: lock(&s.mappings).len(),
            bus_interface_references: wdf::BUS_INTERFACE_REFERENCES.load(Ordering::Acquire),
            pool: alloc::ledger(),
            arena_regions: s.bus.arena().outstanding().saturating_sub(self.arena_base),
        }
    }

    // -----------------------------------------------------------------------------------------
    // The stack's traffic.

    /// The queue `dir`/`id`, if it exists.
    pub fn queue(&self, dir: Dir, id: u32) -> Option<Arc<Queue>> {
        lock(&self.queues)
            .iter()
            .find(|q| q.dir == dir && q.id == id)
            .cloned()
    }

    /// Queues that exist.
    pub fn queues(&self) -> Vec<Arc<Queue>> {
        lock(&self.queues).clone()
    }

    /// Sends a frame on TX queue 0 (the only TX queue without a TX demux); false if the gate is
    /// closed or there is no datapath.
    pub fn send(&self, frame: TxFrame) -> bool {
        let Some(q) = self.queue(Dir::Tx, 0) else {
            return false;
        };
        {
            let mut st = lock(&q.stack);
            if !st.open || q.phase() != Phase::Started {
                st.refused += 1;
                return false;
            }
            st.pending.push_back(frame);
            st.sent += 1;
        }
        q.kick_stack();
        true
    }

    /// Takes the frames RX queue `id` indicated so far.
    pub fn take_received(&self, id: u32) -> Vec<RxFrame> {
        self.queue(Dir::Rx, id)
            .map(|q| std::mem::take(&mut lock(&q.stack).received))
            .unwrap_or_default()
    }

    /// Frames waiting in RX queue `id`'s stack.
    pub fn received_count(&self, id: u32) -> usize {
        self.queue(Dir::Rx, id)
            .map_or(0, |q| lock(&q.stack).received.len())
    }

    /// Sets what the stack does with indicated buffers on every RX queue.
    pub fn set_rx_hold(&self, hold: Hold) {
        for q in self.queues_of(Dir::Rx) {
            lock(&q.stack).hold = hold;
            if hold == Hold::Return {
                q.release_held();
            }
        }
    }

    /// The stack returns every RX buffer it holds.
    pub fn release_rx(&self) {
        for q in self.queues_of(Dir::Rx) {
            q.release_held();
        }
    }

    // -----------------------------------------------------------------------------------------
    // OIDs.

    /// The permanent address the driver declared at its last start (Ethernet), if any.
    pub fn permanent_address(&self) -> Option<[u8; 6]> {
        lock(&self.adapter)
            .declared
            .permanent
            .and_then(|a| a.as_ethernet())
    }

    fn adapter_callbacks(&self) -> netcx::Declared {
        lock(&self.adapter).declared
    }

    /// What the driver declared before NetAdapterStart (as the capability routines took it).
    pub fn declared(&self) -> netcx::Declared {
        lock(&self.adapter).declared
    }

    /// The capability routines that took a declaration, in call order.
    pub fn capability_calls(&self) -> Vec<&'static str> {
        lock(&self.adapter).capability_calls.clone()
    }

    /// OID_GEN_CURRENT_PACKET_FILTER / OID_802_3_MULTICAST_LIST: EvtSetReceiveFilter with the
    /// filter and the whole list (`NxTranslationApp::SetPacketFilter`/`SetMulticastList`,
    /// `InvokePoweredCallback`). False if the adapter declared no receive filter.
    pub fn set_receive_filter(&self, packet_filter: u32, multicast: &[[u8; 6]]) -> bool {
        let s = self;
        let Some(cb) = self
            .adapter_callbacks()
            .filter
            .and_then(|f| f.EvtSetReceiveFilter)
        else {
            return false;
        };
        if self.power() != Power::D0 {
            irql::violation(
                "PoweredCallback",
                "a powered callback is only made in D0 (InvokePoweredCallback)".into(),
            );
            return false;
        }
        let handle = 0x6000_0000 + s.next_token.fetch_add(0x10, Ordering::Relaxed);
        *lock(&s.receive_filter) = Some(FilterCall {
            handle,
            thread: std::thread::current().id(),
            packet_filter,
            multicast: multicast
                .iter()
                .map(|m| NET_ADAPTER_LINK_LAYER_ADDRESS::ethernet(*m))
                .collect(),
        });
        let adapter = s.adapter_handle() as NETADAPTER;
        irql::at(irql::PASSIVE, || {
            // SAFETY: the driver's callback with a filter object valid for the call.
            alloc::as_driver(|| unsafe { cb(adapter, handle as NETRECEIVEFILTER) })
        });
        *lock(&s.receive_filter) = None;
        true
    }

    /// The offloads the OS enables by default: what the driver declared, as the keywords allow
    /// (NetAdapterCx reads the standard keywords itself).
    pub fn default_offloads(&self) -> OffloadState {
        let d = self.adapter_callbacks();
        let kw = |k: &str| {
            self.registry_value(k)
                .and_then(|v| v.trim().parse::<u32>().ok())
        };
        let csum = |k: &str| kw(k).unwrap_or(3);
        let on = |k: &str| kw(k).unwrap_or(1) != 0;
        let tx = d.tx_checksum.is_some();
        let rx = d.rx_checksum.is_some();
        let gso = d.gso;
        let g = |f: u32| gso.is_some_and(|g| g.Layer4Flags & f != 0);
        let rsc = d.rsc.is_some();
        OffloadState {
            tx_ipv4: tx && csum("*IPChecksumOffloadIPv4") & 1 != 0,
            tx_tcp: tx && csum("*TCPChecksumOffloadIPv4") & 1 != 0,
            tx_udp: tx && csum("*UDPChecksumOffloadIPv4") & 1 != 0,
            rx_ipv4: rx && csum("*IPChecksumOffloadIPv4") & 2 != 0,
            rx_tcp: rx && csum("*TCPChecksumOffloadIPv4") & 2 != 0,
            rx_udp: rx && csum("*UDPChecksumOffloadIPv4") & 2 != 0,
            lso4: g(virtionet::kmdf::netcx::l4::TCP_NO_OPTIONS) && on("*LsoV2IPv4"),
            lso6: g(virtionet::kmdf::netcx::l4::TCP_NO_OPTIONS) && on("*LsoV2IPv6"),
            uso4: g(virtionet::kmdf::netcx::l4::UDP) && on("*UsoIPv4"),
            uso6: g(virtionet::kmdf::netcx::l4::UDP) && on("*UsoIPv6"),
            rsc4: rsc && on("*RscIPv4"),
            rsc6: rsc && on("*RscIPv6"),
        }
    }

    /// OID_TCP_OFFLOAD_PARAMETERS: the TX checksum, RX checksum, GSO and RSC callbacks with an
    /// offload object saying what is enabled.
    pub fn set_offloads(&self, enabled: OffloadState) {
        let s = self;
        let d = self.adapter_callbacks();
        let cbs = [
            d.tx_checksum.and_then(|c| c.EvtAdapterOffloadSetTxChecksum),
            d.rx_checksum.and_then(|c| c.EvtAdapterOffloadSetRxChecksum),
            d.gso.and_then(|c| c.EvtAdapterOffloadSetGso),
            d.rsc.and_then(|c| c.EvtAdapterOffloadSetRsc),
        ];
        let adapter = s.adapter_handle() as NETADAPTER;
        for cb in cbs.into_iter().flatten() {
            let handle = 0x7000_0000 + s.next_token.fetch_add(0x10, Ordering::Relaxed);
            *lock(&s.offload) = Some(OffloadCall { handle, enabled });
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's callback with an offload object valid for the call.
                alloc::as_driver(|| unsafe { cb(adapter, handle as NETOFFLOAD) })
            });
            *lock(&s.offload) = None;
        }
    }

    /// OID_GEN_RECEIVE_SCALE_INITIALIZE (`NxTranslationApp::ReceiveScalingInitialize`): the RSS
    /// queues RX1..N-1 created, the first Configure (it sends nothing), and the new queues
    /// started if the datapath runs. N = the declared NumberOfQueues, capped by `*NumRssQueues`.
    pub fn rss_initialize(&self) -> Result<(), NTSTATUS> {
        let s = self;
        let Some(caps) = self.adapter_callbacks().rss else {
            return Err(wdf::STATUS_NOT_SUPPORTED);
        };
        if s.registry_value("*RSS").is_some_and(|v| v.trim() == "0") {
            return Err(wdf::STATUS_NOT_SUPPORTED);
        }
        let cap = s
            .registry_value("*NumRssQueues")
            .and_then(|v| v.trim().parse::<usize>().ok())
            .unwrap_or(16);
        let n = caps.NumberOfQueues.min(cap).max(1) as u32;
        {
            let mut a = lock(&s.adapter);
            if a.rss.initialized {
                return Ok(());
            }
            a.rss.initialized = true;
            a.rss.queues = n;
            a.rss.table = vec![0; caps.IndirectionTableSize];
            a.rss.entries = caps.IndirectionTableSize;
            a.rss.key = vec![0; 40];
        }
        let running = self
            .queue(Dir::Rx, 0)
            .is_some_and(|q| q.phase() == Phase::Started);
        if self.queue(Dir::Rx, 0).is_some() {
            // `QueueControl::CreateRxScalingQueues` keeps the new queues only if all were
            // created; otherwise it destroys them, `ReceiveScalingInitialize` resets its
            // receive-scaling object and fails the OID, and a later OID tries again
            // (translator/queuecontrol.cpp, nxtranslationapp.cpp).
            for id in 1..n {
                if let Err(st) = s.call_create(Dir::Rx, id) {
                    let made: Vec<_> = self
                        .queues_of(Dir::Rx)
                        .into_iter()
                        .filter(|q| q.id >= 1)
                        .collect();
                    for q in made {
                        q.exit();
                        wdf::delete_object(q.handle);
                        lock(&s.queues).retain(|x| x.handle != q.handle);
                    }
                    lock(&s.adapter).rss.initialized = false;
                    return Err(st);
                }
            }
            s.rss_configure()?;
            if running && !s.start_datapath() {
                return Err(wdf::STATUS_INVALID_DEVICE_STATE);
            }
        }
        Ok(())
    }

    /// OID_GEN_RECEIVE_SCALE_PARAMETERS_V2 (`RxScaling::SetParameters`; a no-op until
    /// configured): a new entry count, disable, a new key, new hash settings (Disable + Enable),
    /// enable — in that order.
    pub fn rss_parameters(
        &self,
        enable: bool,
        key: Option<&[u8]>,
        hash: Option<(u32, u32)>,
        entries: Option<usize>,
    ) -> NTSTATUS {
        let s = self;
        if !lock(&s.adapter).rss.configured {
            return STATUS_SUCCESS;
        }
        if let Some(n) = entries {
            let all: Vec<usize> = (0..n).collect();
            let st = s.rss_send_entries(&all, 0);
            if st < 0 {
                return st;
            }
            lock(&s.adapter).rss.entries = n;
        }
        if !enable {
            lock(&s.adapter).rss.translator_enabled = false;
            s.rss_disable();
            return STATUS_SUCCESS;
        }
        if let Some(k) = key {
            lock(&s.adapter).rss.key = k.to_vec();
            let st = s.rss_key();
            if st < 0 {
                return st;
            }
        }
        if let Some(h) = hash {
            // NxRxScaling::SetHashInfo: Disable, then Enable with the new types (a failure to
            // re-enable bugchecks).
            s.rss_disable();
            let old = std::mem::replace(&mut lock(&s.adapter).rss.hash, h);
            let st = s.rss_enable();
            if st < 0 {
                lock(&s.adapter).rss.hash = old;
                irql::violation(
                    "NetAdapterCx: RssReEnableFailed",
                    format!("EvtAdapterReceiveScalingEnable failed ({st:#x}) after new hash info"),
                );
                return st;
            }
        }
        lock(&s.adapter).rss.translator_enabled = true;
        s.rss_enable()
    }

    /// OID_GEN_RSS_SET_INDIRECTION_TABLE_ENTRIES: (index, RX queue id) pairs (the translator
    /// maps processors to queues; here the scenario names the queue). The cache keeps an entry
    /// only if the driver took it.
    pub fn rss_set_entries(&self, entries: &[(usize, u32)]) -> NTSTATUS {
        let s = self;
        let restore: Vec<(usize, u32)> = {
            let mut a = lock(&s.adapter);
            let n = a.rss.table.len();
            entries
                .iter()
                .filter(|(i, _)| *i < n)
                .map(|&(i, q)| {
                    let old = a.rss.table[i];
                    a.rss.table[i] = q;
                    (i, old)
                })
                .collect()
        };
        let idx: Vec<usize> = restore.iter().map(|(i, _)| *i).collect();
        let st = s.rss_send_entries(&idx, 0);
        if st < 0 {
            let mut a = lock(&s.adapter);
            for (i, old) in restore {
                a.rss.table[i] = old;
            }
        }
        st
    }

    /// The receive-scaling state.
    pub fn rss_state(&self) -> netcx::RxScaling {
        lock(&self.adapter).rss.clone()
    }

    /// A summary of the queues and interrupts, for a failing scenario's message.
    pub fn diagnostics(&self) -> String {
        let mut out = String::new();
        for q in self.queues() {
            let st = &q.stats;
            let stack = lock(&q.stack);
            out.push_str(&format!(
                "{:?}{} {:?}: polls {} advances {} arms {} notifies {} (unregistered {}) \
                 packets {} returns {} | stack pending {} held {} to_return {} | driver owns {} \
                 idle+armed {}\n",
                q.dir,
                q.id,
                q.phase(),
                st.polls.load(Ordering::Relaxed),
                st.advances.load(Ordering::Relaxed),
                st.arms.load(Ordering::Relaxed),
                st.notifies.load(Ordering::Relaxed),
                st.notifies_unregistered.load(Ordering::Relaxed),
                st.packets.load(Ordering::Relaxed),
                st.returns.load(Ordering::Relaxed),
                stack.pending.len(),
                stack.held.len(),
                stack.to_return.len(),
                q.driver_owns_anything(),
                q.idle_and_armed(),
            ));
        }
        for i in lock(&self.interrupts).iter() {
            out.push_str(&format!(
                "interrupt {} (msi {}): connected {} isrs {} claimed {} dpcs {}\n",
                i.message,
                i.msi,
                i.connected.load(Ordering::Relaxed),
                i.isrs.load(Ordering::Relaxed),
                i.claimed.load(Ordering::Relaxed),
                i.dpcs.load(Ordering::Relaxed),
            ));
        }
        if let Some(c) = lock(&self.controller).as_ref() {
            out.push_str(&format!(
                "stray signals {}\n",
                c.stray.load(Ordering::Relaxed)
            ));
        }
        let vqs = 2 * lock(&self.queues)
            .iter()
            .filter(|q| q.dir == datapath::Dir::Rx)
            .count()
            .max(1)
            + 1;
        for i in 0..vqs as u16 {
            if let Some(d) = self.bus.debug_queue(i) {
                out.push_str(&d);
                out.push('\n');
            }
        }
        out.push_str(&format!(
            "device failed: {:?}; restarts {}; power {:?}\n",
            lock(&self.device).failed,
            lock(&self.restarts).len(),
            self.power()
        ));
        out
    }

    /// Link states the driver reported.
    pub fn link_states(&self) -> Vec<virtionet::kmdf::netcx::NET_ADAPTER_LINK_STATE> {
        lock(&self.adapter).link_states.clone()
    }

    /// Restarts WDF made after WdfDeviceSetFailed.
    pub fn restarts(&self) -> usize {
        lock(&self.restarts).len()
    }

    /// Waits until the PnP worker is idle (no request pending or being handled), bounded.
    pub fn settle(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if lock(&self.requests).is_empty() && !self.pnp_busy.load(Ordering::Acquire) {
                return true;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        false
    }
}

/// The PnP worker: what WDF and the PnP manager do on their own after a driver call.
/// WdfDeviceSetFailed(AttemptRestart) tears the stack down and builds it again
/// (`FxPkgPnp::SetDeviceFailedAttemptRestart`: at most 5 restarts within 60 s,
/// `PnpIncrementRestartCountLogic`); NoRestart removes the device.
fn pnp_worker(exit: Arc<AtomicBool>) {
    while !exit.load(Ordering::Acquire) {
        let Some(s) = CURRENT.lock().unwrap_or_else(|e| e.into_inner()).clone() else {
            return;
        };
        let req = {
            let mut r = lock(&s.requests);
            if r.is_empty() {
                let (g, _) = s
                    .request_cv
                    .wait_timeout(r, Duration::from_millis(20))
                    .unwrap_or_else(|e| e.into_inner());
                r = g;
            }
            if r.is_empty() {
                None
            } else {
                s.pnp_busy.store(true, Ordering::Release);
                Some(r.remove(0))
            }
        };
        let Some(req) = req else {
            continue;
        };
        if let PnpRequest::Failed(action) = req {
            let restart = action == _WDF_DEVICE_FAILED_ACTION::WdfDeviceFailedAttemptRestart && {
                let mut r = lock(&s.restarts);
                let now = Instant::now();
                r.retain(|t| now.duration_since(*t) < Duration::from_secs(60));
                r.push(now);
                r.len() <= 5
            };
            s.device_failed(restart);
        }
        s.pnp_busy.store(false, Ordering::Release);
    }
}

impl Drop for Host {
    fn drop(&mut self) {
        self.worker_exit.store(true, Ordering::Release);
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
        // A scenario that failed midway: end the threads the host started.
        for q in self.queues() {
            q.exit();
        }
        *lock(&self.state.controller) = None;
        // Not under the list's mutex: a DPC still running may look its interrupt up.
        let ints: Vec<_> = lock(&self.state.interrupts).iter().cloned().collect();
        for i in ints {
            i.disconnect();
            let _ = i.flush();
            i.shut_down();
        }
        *lock(&CURRENT) = None;
    }
}
