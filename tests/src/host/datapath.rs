//! NetAdapterCx's datapath as the class extension sequences it (microsoft/
//! Network-Adapter-Class-Extension, `release_21H2`; `reference/netadaptercx.md` §9): queue
//! creation, one execution context (EC) per queue with its poll loop, start, the stopping poll,
//! stop and destruction, and the OS stack on either side of the rings.
//!
//! The rules played here, each with where the source says it:
//!
//! | rule | source |
//! |---|---|
//! | queues are created at DatapathCreate, after D0 entry: TX0, RX0, then RX1..N-1 if RSS is initialized, then the RSS configuration | `translator/queuecontrol.cpp` `QueueControl::CreateQueues`, `CreateRxScalingQueues` |
//! | only TX0 is created when no TX demux is registered | `translator/nxtranslationapp.cpp` `NxTranslationApp::CreateDatapath` |
//! | EvtStart at NDIS restart, TX before RX; Start/Stop/Cancel are tasks on the queue's EC at PASSIVE_LEVEL | `translator/nxtranslationapp.cpp` `StartDatapath` → `StartQueues`; `adapter/nxqueue.cpp` `InvokeQueueCallback`; `ec/lib/executioncontext.cpp` `RunLockHeld` |
//! | the poll loop: work = RX packets indicated + buffers returned, TX packets posted + completed; no work and unarmed → arm and poll once more; no work and armed → sleep; work while armed → disarm, not forwarded | `ec/lib/executioncontext.cpp` `ExecutionContext::Poll`; `adapter/nxqueue.cpp` `NxQueue::SetArmed` |
//! | RX Advance every pass; TX Advance only while the driver owns packets; TX arming only while it does | `translator/nxrxxlat.cpp` `ReceiveNbls`; `translator/nxtxxlat.cpp` `TransmitNbls`, `YieldToNetAdapter`; `NxQueue::SetArmed` |
//! | notifications are registered after EvtStart and removed before EvtStop; Notify wakes the EC | `adapter/nxqueue.cpp` `NxQueue::Start/Stop`; `ExecutionContext::NotifyCommon` |
//! | the Cx verifier raises every second Advance, and every Cancel, to DISPATCH_LEVEL | `adapter/nxqueueverifier.cpp`, `adapter/nxqueue.cpp` `QueueDispatchVerifying` |
//! | ReturnRxBuffer runs on the RX EC as the stack returns NBLs, once per fragment of an indicated packet, never for ignored or skipped fragments | `translator/nxrxxlat.cpp` `EcReturnBuffers` → `FreeReceivedDataBuffer`, `ReclaimSkippedFragments` |
//! | pause: RX gate closed and every indicated NBL back, TX gate closed, Cancel all TX then all RX, the stopping polls until drained, EvtStop TX first; queue objects kept | `translator/nxtranslationapp.cpp` `StopDatapath`; `translator/queue.cpp` `Queue::Cancel`; `nxtxxlat.cpp` `TransmitNblsStopping`; `nxrxxlat.cpp` `ReceiveNblsStopping` |
//! | destroy: TX queues then RX queues | `QueueControl::DestroyQueues` |
//!
//! Ring sizes are the host's choice (the class extension's are private, `NxPerfTuner`); the
//! fragment-ring hint is honoured when it is a power of two.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use netring::{ExtensionSpec, names};
use virtionet::kmdf::netcx::{NET_PACKET_QUEUE_CONFIG, NETPACKETQUEUE};

use crate::os_rx::{OsRx, RxFrame};
use crate::os_tx::{OsTx, TxFrame};
use crate::rng::Rng;

use super::{alloc, irql, state};

/// Transmit or receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dir {
    /// A transmit queue.
    Tx,
    /// A receive queue.
    Rx,
}

/// Where a queue is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    /// Created, not started.
    Created,
    /// Started: polling.
    Started,
    /// Cancelled: the stopping poll runs until the driver gave everything back.
    Stopping,
    /// Stopped (after EvtStop); the object is kept for a restart.
    Stopped,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Task {
    Start,
    Cancel,
    Stop,
    Exit,
}

/// The OS side of the rings.
pub enum Os {
    /// Transmit.
    Tx(OsTx),
    /// Receive.
    Rx(OsRx),
}

impl Os {
    /// The RX packet ring's element count (0 for a TX queue).
    pub fn rx_packet_ring_len(&self) -> u32 {
        match self {
            Self::Rx(r) => r.rings.packets.len(),
            Self::Tx(_) => 0,
        }
    }
}

/// What the stack does with indicated receive buffers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Hold {
    /// Returns each at once (as soon as it is indicated).
    Return,
    /// Keeps them until told to give them back ([`Queue::release_held`]).
    Keep,
}

/// The stack's side of one queue.
pub struct Stack {
    /// TX frames waiting to be posted.
    pub pending: VecDeque<TxFrame>,
    /// TX frames the stack handed in.
    pub sent: u64,
    /// TX frames refused because the datapath was paused.
    pub refused: u64,
    /// RX frames indicated, in order (the scenario takes them).
    pub received: Vec<RxFrame>,
    /// RX return contexts the stack holds.
    pub held: Vec<usize>,
    /// RX packets (NBLs) the stack holds: each keeps one of NetAdapterCx's NBLs, and the OS
    /// posts a packet to the driver only with a free NBL.
    pub held_packets: usize,
    /// RX return contexts released, to be returned on the EC.
    pub to_return: Vec<usize>,
    /// The hold policy.
    pub hold: Hold,
    /// The gate: closed while paused (no new sends).
    pub open: bool,
}

struct Ec {
    phase: Phase,
    tasks: VecDeque<Task>,
    done: u64,
    queued: u64,
    notified: bool,
    armed: bool,
    registered: bool,
    drained: bool,
    advances: u64,
    failed: Option<String>,
    sleeping: bool,
}

/// Counters of a queue's EC (for scenario figures and checks).
#[derive(Debug, Default)]
pub struct QueueStats {
    /// Advance calls.
    pub advances: AtomicU64,
    /// Arm calls (SetNotificationEnabled(TRUE)).
    pub arms: AtomicU64,
    /// Notify calls from the driver.
    pub notifies: AtomicU64,
    /// Notify calls while not registered (before start or after stop).
    pub notifies_unregistered: AtomicU64,
    /// Poll passes.
    pub polls: AtomicU64,
    /// ReturnRxBuffer calls.
    pub returns: AtomicU64,
    /// Packets indicated or completed.
    pub packets: AtomicU64,
}

/// One NETPACKETQUEUE.
pub struct Queue {
    /// Its handle.
    pub handle: usize,
    /// TX or RX.
    pub dir: Dir,
    /// Queue id.
    pub id: u32,
    config: NET_PACKET_QUEUE_CONFIG,
    /// The rings with the OS's behaviour and the verifier's checks.
    pub os: Mutex<Os>,
    collection: *const netring::NetRingCollection,
    ec: Mutex<Ec>,
    wake: Condvar,
    /// The stack's side.
    pub stack: Mutex<Stack>,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Counters.
    pub stats: QueueStats,
    exited: AtomicBool,
}

// SAFETY: `collection` points into the rings this struct owns (boxed, stable); everything else is
// synchronised.
unsafe impl Send for Queue {}
// SAFETY: as above.
unsafe impl Sync for Queue {}

/// What the framework registers on a queue's rings, from what the driver declared
/// (`adapter/nxadapter.cpp` `RegisterRingExtensions`; reference §1.5–§3).
#[derive(Debug, Clone, Copy, Default)]
pub struct Registration {
    /// TX checksum capabilities were declared.
    pub tx_checksum: bool,
    /// GSO capabilities.
    pub gso: bool,
    /// RX checksum capabilities.
    pub rx_checksum: bool,
    /// RSC capabilities.
    pub rsc: bool,
    /// 802.1Q flags ≠ 0.
    pub ieee8021q: bool,
    /// RSS capabilities (and a client above 2.1): the hash extension.
    pub hash: bool,
    /// DMA capabilities were given: the logical-address extension.
    pub logical_address: bool,
    /// Driver-managed RX: the return-context extension.
    pub return_context: bool,
}

impl Registration {
    fn specs(&self, dir: Dir) -> (Vec<ExtensionSpec>, Vec<ExtensionSpec>) {
        let mut p = Vec::new();
        let mut f = vec![names::VIRTUAL_ADDRESS];
        if self.logical_address {
            f.push(names::LOGICAL_ADDRESS);
        }
        match dir {
            Dir::Tx => {
                if self.tx_checksum {
                    p.push(names::CHECKSUM);
                }
                if self.gso {
                    p.push(names::GSO);
                }
            }
            Dir::Rx => {
                if self.rx_checksum {
                    p.push(names::CHECKSUM);
                }
                if self.rsc {
                    p.push(names::RSC);
                }
                if self.hash {
                    p.push(names::HASH);
                }
                if self.return_context {
                    f.push(names::RETURN_CONTEXT);
                }
            }
        }
        if self.ieee8021q {
            p.push(names::IEEE8021Q);
        }
        (p, f)
    }
}

/// Ring sizes the host gives queues.
pub const TX_PACKETS: u32 = 256;
/// TX fragment ring.
pub const TX_FRAGMENTS: u32 = 1024;
/// RX packet ring.
pub const RX_PACKETS: u32 = 256;
/// RX fragment ring (when the driver's hint is not a power of two).
pub const RX_FRAGMENTS: u32 = 512;

impl Queue {
    /// A queue created by `NetTx/RxQueueCreate` (its EC thread starts idle).
    pub fn new(
        handle: usize,
        dir: Dir,
        id: u32,
        config: NET_PACKET_QUEUE_CONFIG,
        reg: &Registration,
        fragment_hint: u32,
        rng: &mut Rng,
    ) -> Arc<Self> {
        let (p, f) = reg.specs(dir);
        let frags = |d| {
            if fragment_hint.is_power_of_two() && (64..=8192).contains(&fragment_hint) {
                fragment_hint
            } else {
                d
            }
        };
        let os = match dir {
            Dir::Tx => {
                let mut tx = OsTx::with_extensions(TX_PACKETS, frags(TX_FRAGMENTS), &p, &f, rng);
                tx.set_private(state().config.private_os_memory);
                Os::Tx(tx)
            }
            Dir::Rx => Os::Rx(OsRx::with_extensions(
                RX_PACKETS,
                frags(RX_FRAGMENTS),
                &p,
                &f,
                rng,
            )),
        };
        let collection = match &os {
            Os::Tx(t) => t.rings.collection(),
            Os::Rx(r) => r.rings.collection(),
        };
        let q = Arc::new(Self {
            handle,
            dir,
            id,
            config,
            os: Mutex::new(os),
            collection,
            ec: Mutex::new(Ec {
                phase: Phase::Created,
                tasks: VecDeque::new(),
                done: 0,
                queued: 0,
                notified: false,
                armed: false,
                registered: false,
                drained: false,
                advances: 0,
                failed: None,
                sleeping: false,
            }),
            wake: Condvar::new(),
            stack: Mutex::new(Stack {
                pending: VecDeque::new(),
                sent: 0,
                refused: 0,
                received: Vec::new(),
                held: Vec::new(),
                held_packets: 0,
                to_return: Vec::new(),
                hold: Hold::Return,
                open: true,
            }),
            thread: Mutex::new(None),
            stats: QueueStats::default(),
            exited: AtomicBool::new(false),
        });
        let t = {
            let q = q.clone();
            std::thread::Builder::new()
                .name(format!("ec-{:?}{id}", dir).to_lowercase())
                .spawn(move || q.run())
                .ok()
        };
        *q.thread.lock().unwrap_or_else(|e| e.into_inner()) = t;
        q
    }

    /// The configuration the driver created the queue with (`NetTx/RxQueueCreate`).
    pub fn config(&self) -> NET_PACKET_QUEUE_CONFIG {
        self.config
    }

    /// The ring collection (`NetTx/RxQueueGetRingCollection`).
    pub fn collection(&self) -> *const netring::NetRingCollection {
        self.collection
    }

    /// `NetTx/RxQueueGetExtension`.
    pub fn get_extension(
        &self,
        name: &[u16],
        version: u32,
        ty: netring::ExtensionType,
    ) -> netring::NetExtension {
        let mut os = self.os.lock().unwrap_or_else(|e| e.into_inner());
        match &mut *os {
            Os::Tx(t) => t.rings.get_extension(name, version, ty),
            Os::Rx(r) => r.rings.get_extension(name, version, ty),
        }
    }

    fn ec(&self) -> std::sync::MutexGuard<'_, Ec> {
        self.ec.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The phase.
    pub fn phase(&self) -> Phase {
        self.ec().phase
    }

    /// Why the EC stopped working, if the verifier or the host failed it.
    pub fn failure(&self) -> Option<String> {
        self.ec().failed.clone()
    }

    /// Queues a task and waits until the EC ran it (bounded); false on timeout.
    fn task(&self, t: Task, timeout: Duration) -> bool {
        let target = {
            let mut ec = self.ec();
            ec.tasks.push_back(t);
            ec.queued += 1;
            ec.queued
        };
        self.wake.notify_all();
        let deadline = Instant::now() + timeout;
        let mut ec = self.ec();
        while ec.done < target {
            if ec.failed.is_some() || self.exited.load(Ordering::Acquire) {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            ec = self
                .wake
                .wait_timeout(ec, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// EvtStart (a task on the EC).
    pub fn start(&self) -> bool {
        self.task(Task::Start, Duration::from_secs(10))
    }

    /// EvtCancel (a task on the EC); the stopping poll follows.
    pub fn cancel(&self) -> bool {
        self.task(Task::Cancel, Duration::from_secs(10))
    }

    /// Waits until the stopping poll drained the queue (bounded); false if it never does.
    pub fn wait_drained(&self, timeout: Duration) -> bool {
        let deadline = Instant::now() + timeout;
        let mut ec = self.ec();
        while !ec.drained {
            if ec.failed.is_some() {
                return false;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            ec = self
                .wake
                .wait_timeout(ec, deadline - now)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// EvtStop (a task on the EC).
    pub fn stop(&self) -> bool {
        self.task(Task::Stop, Duration::from_secs(10))
    }

    /// Ends the EC thread (before the object is deleted).
    pub fn exit(&self) {
        {
            let mut ec = self.ec();
            ec.tasks.push_back(Task::Exit);
        }
        self.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }

    /// The driver's Notify: wakes the EC (ignored outside start..stop, counted).
    pub fn notify(&self) {
        self.stats.notifies.fetch_add(1, Ordering::Relaxed);
        let mut ec = self.ec();
        if !ec.registered {
            self.stats
                .notifies_unregistered
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        ec.notified = true;
        drop(ec);
        self.wake.notify_all();
    }

    /// Wakes the EC because the stack changed something (new TX frames, released RX buffers).
    pub fn kick_stack(&self) {
        let mut ec = self.ec();
        ec.notified = true;
        drop(ec);
        self.wake.notify_all();
    }

    /// The stack lets go of every receive buffer it holds (they are returned on the EC).
    pub fn release_held(&self) {
        {
            let mut s = self.stack.lock().unwrap_or_else(|e| e.into_inner());
            let held = std::mem::take(&mut s.held);
            s.to_return.extend(held);
            s.held_packets = 0;
        }
        self.kick_stack();
    }

    /// Whether the EC is asleep and armed (nothing to do until a notification).
    pub fn idle_and_armed(&self) -> bool {
        let ec = self.ec();
        ec.sleeping && ec.armed
    }

    /// Whether the driver owns any element of this queue's rings.
    pub fn driver_owns_anything(&self) -> bool {
        let os = self.os.lock().unwrap_or_else(|e| e.into_inner());
        let rings = match &*os {
            Os::Tx(t) => &t.rings,
            Os::Rx(r) => &r.rings,
        };
        rings.packets.begin_index() != rings.packets.end_index()
            || rings.fragments.begin_index() != rings.fragments.end_index()
    }

    fn call(&self, cb: Option<virtionet::kmdf::netcx::EvtPacketQueue>, level: u8) {
        if let Some(cb) = cb {
            irql::at(level, || {
                // SAFETY: the driver's callback for its own queue, serialized on this EC.
                alloc::as_driver(|| unsafe { cb(self.handle as NETPACKETQUEUE) })
            });
        }
    }

    fn run(self: Arc<Self>) {
        let r = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| self.run_loop()));
        if let Err(e) = r {
            let msg = e
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| e.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "EC panicked".into());
            let (rule, detail) = msg
                .strip_prefix("NetAdapterCx verifier: ")
                .and_then(|m| m.split_once(": "))
                .map_or(("ExecutionContextFailed", msg.as_str()), |(r, d)| (r, d));
            irql::violation(
                &format!("NetAdapterCx verifier: {rule}"),
                format!("{:?} queue {}: {detail}", self.dir, self.id),
            );
            self.ec().failed = Some(msg);
            self.wake.notify_all();
        }
        self.exited.store(true, Ordering::Release);
        self.wake.notify_all();
    }

    fn run_loop(&self) {
        loop {
            let task = self.ec().tasks.pop_front();
            if let Some(t) = task {
                match t {
                    Task::Exit => {
                        let mut ec = self.ec();
                        ec.done += 1;
                        return;
                    }
                    Task::Start => self.do_start(),
                    Task::Cancel => {
                        // Cx verifier: Cancel at DISPATCH_LEVEL.
                        self.call(self.config.EvtCancel, irql::DISPATCH);
                        let mut ec = self.ec();
                        ec.phase = Phase::Stopping;
                        ec.drained = false;
                        ec.armed = false;
                    }
                    Task::Stop => {
                        self.ec().registered = false;
                        self.call(self.config.EvtStop, irql::PASSIVE);
                        let mut ec = self.ec();
                        ec.phase = Phase::Stopped;
                    }
                }
                {
                    // A task ends the Poll it preempted; the next one starts unarmed.
                    let mut ec = self.ec();
                    ec.done += 1;
                    ec.armed = false;
                }
                self.wake.notify_all();
                continue;
            }
            let phase = self.ec().phase;
            match phase {
                Phase::Created | Phase::Stopped => self.sleep(),
                Phase::Started | Phase::Stopping => {
                    let work = self.poll(phase == Phase::Stopping);
                    if phase == Phase::Stopping && self.is_drained() {
                        let newly = {
                            let mut ec = self.ec();
                            !std::mem::replace(&mut ec.drained, true)
                        };
                        if newly {
                            self.wake.notify_all();
                        }
                        if work == 0 {
                            self.sleep();
                        }
                        continue;
                    }
                    if work > 0 {
                        self.ec().armed = false;
                        continue;
                    }
                    let armed = self.ec().armed;
                    if !armed {
                        self.arm();
                        self.ec().armed = true;
                        continue;
                    }
                    self.sleep();
                }
            }
        }
    }

    /// Sleeps until a task, a notification or stack activity. What follows is a new
    /// `ExecutionContext::Poll`, which starts unarmed (`DisableNotifications(); bool armed =
    /// false;`, `ec/lib/executioncontext.cpp`): after every wake the queue is armed again
    /// (EvtSetNotificationEnabled(TRUE)) before the EC can sleep.
    fn sleep(&self) {
        let mut ec = self.ec();
        ec.sleeping = true;
        while ec.tasks.is_empty() && !ec.notified {
            ec = self.wake.wait(ec).unwrap_or_else(|e| e.into_inner());
        }
        ec.notified = false;
        ec.sleeping = false;
        ec.armed = false;
    }

    fn do_start(&self) {
        // NxQueue::Start: indices zeroed (and the OS's cursor), then EvtStart, then the
        // notification registered.
        {
            let mut os = self.os.lock().unwrap_or_else(|e| e.into_inner());
            let rings = match &mut *os {
                Os::Tx(t) => &mut t.rings,
                Os::Rx(r) => &mut r.rings,
            };
            for r in [&mut rings.packets, &mut rings.fragments] {
                r.set_begin_index(0);
                r.set_next_index(0);
                r.set_end_index(0);
                r.set_os_reserved0(0);
            }
            if let Os::Tx(t) = &mut *os {
                t.outstanding.clear();
            }
        }
        self.call(self.config.EvtStart, irql::PASSIVE);
        let mut ec = self.ec();
        ec.registered = true;
        ec.phase = Phase::Started;
        ec.armed = false;
        ec.drained = false;
    }

    fn arm(&self) {
        let owns = self.dir == Dir::Rx || self.driver_owns_anything();
        if !owns {
            return;
        }
        if let Some(cb) = self.config.EvtSetNotificationEnabled {
            self.stats.arms.fetch_add(1, Ordering::Relaxed);
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's callback for its own queue, on its EC.
                alloc::as_driver(|| unsafe { cb(self.handle as NETPACKETQUEUE, 1) })
            });
        }
    }

    fn advance_level(&self) -> u8 {
        let mut ec = self.ec();
        ec.advances += 1;
        if ec.advances.is_multiple_of(2) {
            irql::DISPATCH
        } else {
            irql::PASSIVE
        }
    }

    fn is_drained(&self) -> bool {
        match &*self.os.lock().unwrap_or_else(|e| e.into_inner()) {
            Os::Tx(t) => {
                t.rings.packets.begin_index() == t.rings.packets.end_index()
                    && t.outstanding.is_empty()
            }
            Os::Rx(r) => {
                r.rings.packets.begin_index() == r.rings.packets.end_index()
                    && r.rings.fragments.begin_index() == r.rings.fragments.end_index()
            }
        }
    }

    /// One pass of the poll loop; returns the work done.
    fn poll(&self, stopping: bool) -> u64 {
        self.stats.polls.fetch_add(1, Ordering::Relaxed);
        match self.dir {
            Dir::Tx => self.poll_tx(stopping),
            Dir::Rx => self.poll_rx(stopping),
        }
    }

    fn poll_tx(&self, stopping: bool) -> u64 {
        let s = state();
        let arena = s.bus.arena();
        let max_len = s.dma_max_length();
        let mut work = 0;
        let mut os = self.os.lock().unwrap_or_else(|e| e.into_inner());
        let Os::Tx(tx) = &mut *os else {
            return 0;
        };
        if !stopping {
            let mut st = self.stack.lock().unwrap_or_else(|e| e.into_inner());
            while let Some(f) = st.pending.front() {
                if max_len.is_some_and(|m| f.bytes.len() > m) {
                    irql::violation(
                        "DmaTransferTooLong",
                        format!(
                            "a {}-byte send cannot be mapped by an enabler of MaximumLength {:?}",
                            f.bytes.len(),
                            max_len
                        ),
                    );
                }
                if !tx.post(arena, f) {
                    break;
                }
                st.pending.pop_front();
                work += 1;
            }
        }
        if tx.driver_owns_packets() {
            let level = self.advance_level();
            self.stats.advances.fetch_add(1, Ordering::Relaxed);
            let handle = self.handle;
            let cb = self.config.EvtAdvance;
            tx.callback_external(|| {
                if let Some(cb) = cb {
                    irql::at(level, || {
                        // SAFETY: the driver's Advance for its own queue, on its EC.
                        alloc::as_driver(|| unsafe { cb(handle as NETPACKETQUEUE) })
                    });
                }
            });
        }
        let done = tx.reclaim(arena).len() as u64;
        self.stats.packets.fetch_add(done, Ordering::Relaxed);
        work + done
    }

    fn poll_rx(&self, stopping: bool) -> u64 {
        let mut work = 0;
        let adapter = state().adapter_handle();
        let ret = state().return_rx_buffer();
        // Buffers the stack let go of go back to the driver on this EC.
        let to_return = std::mem::take(
            &mut self
                .stack
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .to_return,
        );
        if let Some(cb) = ret {
            for c in &to_return {
                let level = if self.ec().advances.is_multiple_of(2) {
                    irql::DISPATCH
                } else {
                    irql::PASSIVE
                };
                irql::at(level, || {
                    // SAFETY: the driver's callback with a return context it attached to a
                    // fragment this queue indicated.
                    alloc::as_driver(|| unsafe {
                        cb(
                            adapter as virtionet::kmdf::netcx::NETADAPTER,
                            *c as virtionet::kmdf::netcx::NET_FRAGMENT_RETURN_CONTEXT_HANDLE,
                        )
                    })
                });
                self.stats.returns.fetch_add(1, Ordering::Relaxed);
            }
        }
        work += to_return.len() as u64;
        let held_packets = self
            .stack
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .held_packets;
        let mut os = self.os.lock().unwrap_or_else(|e| e.into_inner());
        let Os::Rx(rx) = &mut *os else {
            return work;
        };
        if !stopping {
            // `NxRxXlat::EcPrepareBuffersForNetAdapter` (translator/nxrxxlat.cpp) posts a packet
            // only with an NBL from its pool, and an NBL comes back only when NDIS returns it:
            // packets the stack holds keep the ring from refilling. The pool's size is the perf
            // tuner's NumberOfNbls, taken here as the packet ring's element count.
            let ring = &rx.rings.packets;
            let posted = ring.end_index().wrapping_sub(ring.os_reserved0()) & (ring.len() - 1);
            let nbls = (ring.len() as usize).saturating_sub(held_packets + posted as usize);
            rx.post(u32::try_from(nbls).unwrap_or(u32::MAX), u32::MAX);
        }
        let level = self.advance_level();
        self.stats.advances.fetch_add(1, Ordering::Relaxed);
        let handle = self.handle;
        let cb = self.config.EvtAdvance;
        rx.callback_external(|| {
            if let Some(cb) = cb {
                irql::at(level, || {
                    // SAFETY: the driver's Advance for its own queue, on its EC.
                    alloc::as_driver(|| unsafe { cb(handle as NETPACKETQUEUE) })
                });
            }
        });
        rx.reclaim();
        let frames = std::mem::take(&mut rx.frames);
        let contexts = std::mem::take(&mut rx.held);
        drop(os);
        let n = frames.len() as u64;
        self.stats.packets.fetch_add(n, Ordering::Relaxed);
        work += n;
        if n > 0 || !contexts.is_empty() {
            let mut st = self.stack.lock().unwrap_or_else(|e| e.into_inner());
            st.received.extend(frames);
            match st.hold {
                Hold::Return => st.to_return.extend(contexts),
                Hold::Keep => {
                    st.held.extend(contexts);
                    st.held_packets += n as usize;
                }
            }
        }
        work
    }
}
