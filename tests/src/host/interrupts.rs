//! Interrupts and DPCs, as KMDF runs them for a PCI function:
//!
//! * `WdfInterruptCreate` from EvtDevicePrepareHardware takes the resource pair it is given
//!   (KMDF ≥ 1.11: "these members must both be valid"); its `MessageNumber` is its 0-based
//!   creation index (`interruptobject.cpp`, `m_InterruptInfo.MessageNumber =
//!   m_InterruptObjectCount`), and the ISR gets that number as `MessageID`. Interrupts created
//!   there are deleted by the framework right after EvtDeviceReleaseHardware returns
//!   (`FxPkgPnp::PnpReleaseHardware` → `OnPostReleaseHardware`).
//! * Connection: after EvtDeviceD0Entry, in creation order, each then enabled
//!   (`EvtInterruptEnable`), then EvtDeviceD0EntryPostInterruptsEnabled; on the way down
//!   EvtDeviceD0ExitPreInterruptsDisabled, then in reverse order each disabled
//!   (`EvtInterruptDisable`) and disconnected with its DPCs flushed (`KeFlushQueuedDpcs`), then
//!   EvtDeviceD0Exit — as `powerstatemachine.cpp` sequences `NotifyResourceObjectsD0/Dx`. A
//!   message that arrives while no interrupt is connected reaches no ISR (it is counted as
//!   stray), so a driver that starts device work in D0Entry and waits for its interrupt waits
//!   forever.
//! * The source is the device itself: QEMU's MSI-X writes into guest RAM (one word per granted
//!   message), or its INTx line as qtest reports the IOAPIC input. The ISR runs at DIRQL holding
//!   the interrupt's lock (EvtInterruptIsr page); `WdfInterruptAcquireLock` takes the same lock.
//! * DPCs: one per interrupt, run at DISPATCH_LEVEL on its own thread; queuing one that is queued
//!   returns FALSE; once dequeued it can be queued again while it runs (KeInsertQueueDpc
//!   semantics, WdfInterruptQueueDpcForIsr page).

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wdk_standin::host::wdf as wdf_slot;
use wdk_standin::*;

use super::objects::{self, Kind};
use super::wdf::{STATUS_INVALID_DEVICE_STATE, STATUS_INVALID_PARAMETER, api, create_fails};
use super::{alloc, irql, state};

/// One WDFINTERRUPT.
pub struct Interrupt {
    /// Its handle.
    pub handle: usize,
    /// `MessageNumber`: its creation index.
    pub message: u32,
    /// Its resource is a message interrupt.
    pub msi: bool,
    isr: PFN_WDF_INTERRUPT_ISR,
    dpc: PFN_WDF_INTERRUPT_DPC,
    enable: PFN_WDF_INTERRUPT_ENABLE,
    disable: PFN_WDF_INTERRUPT_DISABLE,
    /// Connected (between D0 entry and D0 exit).
    pub connected: AtomicBool,
    lock: Arc<super::sync::SpinLock>,
    queued: Mutex<bool>,
    running: AtomicBool,
    wake: Condvar,
    exit: AtomicBool,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// ISR calls.
    pub isrs: AtomicU64,
    /// ISR calls that claimed the interrupt.
    pub claimed: AtomicU64,
    /// DPC runs.
    pub dpcs: AtomicU64,
}

fn dpc_thread(i: Arc<Interrupt>) {
    loop {
        {
            let mut q = i.queued.lock().unwrap_or_else(|e| e.into_inner());
            while !*q && !i.exit.load(Ordering::Acquire) {
                q = i.wake.wait(q).unwrap_or_else(|e| e.into_inner());
            }
            if i.exit.load(Ordering::Acquire) {
                if *q {
                    // KMDF flushes an interrupt's DPC before it deletes the object: one still
                    // queued now was queued after the flush at disconnection, and the driver's
                    // context it would run with is gone.
                    irql::violation(
                        "DpcAfterDisconnect",
                        format!("interrupt {}: a DPC was queued at its deletion", i.message),
                    );
                }
                return;
            }
            // Dequeued: from here the ISR may queue it again.
            *q = false;
            i.running.store(true, Ordering::Release);
        }
        if let Some(dpc) = i.dpc {
            irql::at(irql::DISPATCH, || {
                // SAFETY: the driver's DPC for its own interrupt object, at DISPATCH_LEVEL.
                alloc::as_driver(|| unsafe {
                    dpc(
                        i.handle as WDFINTERRUPT,
                        state().device_handle() as WDFOBJECT,
                    )
                })
            });
        }
        i.dpcs.fetch_add(1, Ordering::Relaxed);
        {
            // Under the mutex `flush` waits with, for the same reason as in `shut_down`.
            let _q = i.queued.lock().unwrap_or_else(|e| e.into_inner());
            i.running.store(false, Ordering::Release);
        }
        i.wake.notify_all();
    }
}

impl Interrupt {
    /// Queues the DPC; false if it was queued already.
    fn queue_dpc(&self) -> bool {
        if !self.connected.load(Ordering::Acquire) {
            // The glue queues this DPC only from its ISR, and no ISR runs once
            // `IoDisconnectInterruptEx` has returned; a DPC queued now runs after the flush at
            // disconnection — in a powered-down device, or after the object is deleted.
            irql::violation(
                "DpcAfterDisconnect",
                format!(
                    "interrupt {}: its DPC was queued while disconnected",
                    self.message
                ),
            );
        }
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        let was = *q;
        *q = true;
        self.wake.notify_all();
        !was
    }

    /// Waits until no DPC of this interrupt is queued or running (`KeFlushQueuedDpcs`).
    pub fn flush(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
        while *q || self.running.load(Ordering::Acquire) {
            if Instant::now() > deadline {
                return false;
            }
            q = self
                .wake
                .wait_timeout(q, Duration::from_millis(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Runs the ISR at DIRQL with the interrupt's lock held.
    fn run_isr(&self) -> bool {
        let Some(isr) = self.isr else {
            return false;
        };
        let claimed = irql::at(irql::DIRQL, || {
            self.lock.acquire_at(irql::DIRQL);
            // Connection is decided under the interrupt's lock, which `disconnect` takes: an
            // ISR either runs before disconnection completes or not at all.
            if !self.connected.load(Ordering::Acquire) {
                self.lock.release_at(irql::DIRQL);
                return false;
            }
            self.isrs.fetch_add(1, Ordering::Relaxed);
            // SAFETY: the driver's ISR for its own interrupt object, at DIRQL, with the
            // interrupt's lock held.
            let r = alloc::as_driver(|| unsafe { isr(self.handle as WDFINTERRUPT, self.message) });
            self.lock.release_at(irql::DIRQL);
            r != 0
        });
        if claimed {
            self.claimed.fetch_add(1, Ordering::Relaxed);
        }
        claimed
    }

    /// Disconnects the interrupt as `IoDisconnectInterruptEx` does: it synchronizes with the
    /// ISR (taking the interrupt's lock), so once it returns no ISR is running and none will run
    /// — the controller may have picked this interrupt for a signal just before; that ISR call
    /// then sees it disconnected. The DPC is flushed by the caller.
    pub fn disconnect(&self) {
        irql::at(irql::DIRQL, || {
            self.lock.acquire_at(irql::DIRQL);
            self.connected.store(false, Ordering::Release);
            self.lock.release_at(irql::DIRQL);
        });
    }

    /// `EvtInterruptEnable` (after connection) or `EvtInterruptDisable` (before disconnection):
    /// at DIRQL holding the interrupt's lock (EvtInterruptEnable page). A failure is returned
    /// (KMDF fails the power-up with it).
    pub fn enable(&self, on: bool) -> NTSTATUS {
        let Some(f) = (if on { self.enable } else { self.disable }) else {
            return 0;
        };
        irql::at(irql::DIRQL, || {
            self.lock.acquire_at(irql::DIRQL);
            // SAFETY: the driver's callback for its own interrupt object, at DIRQL, with the
            // interrupt's lock held.
            let r = alloc::as_driver(|| unsafe {
                f(
                    self.handle as WDFINTERRUPT,
                    state().device_handle() as WDFDEVICE,
                )
            });
            self.lock.release_at(irql::DIRQL);
            r
        })
    }

    /// Stops the DPC thread (the object is being deleted).
    pub fn shut_down(&self) {
        {
            // Under the mutex the DPC thread checks `exit` with: set between its check and
            // its wait, the wake-up would be lost and the join below would never return.
            let _q = self.queued.lock().unwrap_or_else(|e| e.into_inner());
            self.exit.store(true, Ordering::Release);
        }
        self.wake.notify_all();
        if let Some(t) = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let _ = t.join();
        }
    }
}

/// The interrupt controller: polls the device's signals and runs ISRs.
pub struct Controller {
    exit: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    /// Signals seen with no connected interrupt to take them.
    pub stray: Arc<AtomicU32>,
}

impl Controller {
    /// Starts polling.
    pub fn start() -> Self {
        let exit = Arc::new(AtomicBool::new(false));
        let stray = Arc::new(AtomicU32::new(0));
        let (e, st) = (exit.clone(), stray.clone());
        let thread = std::thread::Builder::new()
            .name("interrupt-controller".into())
            .spawn(move || {
                while !e.load(Ordering::Acquire) {
                    let s = state();
                    let signals = s.bus.poll_signals();
                    let ints: Vec<Arc<Interrupt>> = s
                        .interrupts
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .iter()
                        .filter(|i| i.connected.load(Ordering::Acquire))
                        .cloned()
                        .collect();
                    for m in signals.messages {
                        match ints.iter().find(|i| i.msi && i.message == m) {
                            Some(i) => {
                                i.run_isr();
                            }
                            None => {
                                st.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                    }
                    if signals.line {
                        // Level-triggered: the line stays up until an ISR clears the cause.
                        let mut any = false;
                        for i in ints.iter().filter(|i| !i.msi) {
                            any |= i.run_isr();
                        }
                        if !any {
                            st.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                    drop(s);
                    std::thread::sleep(Duration::from_micros(50));
                }
            })
            .ok();
        Self {
            exit,
            thread,
            stray,
        }
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.exit.store(true, Ordering::Release);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

unsafe extern "C" fn wdf_interrupt_create(
    device: WDFDEVICE,
    config: *mut WDF_INTERRUPT_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    interrupt: *mut WDFINTERRUPT,
) -> NTSTATUS {
    api("WdfInterruptCreate", || {
        if create_fails("WdfInterruptCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        let s = state();
        // SAFETY: the driver's initialised config.
        let c = unsafe { *config };
        if c.Size as usize != std::mem::size_of::<WDF_INTERRUPT_CONFIG>() {
            irql::violation(
                "WdfStructSize",
                format!("WDF_INTERRUPT_CONFIG.Size {}", c.Size),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if !s.in_prepare_hardware.load(Ordering::Acquire) {
            irql::violation(
                "InterruptCreateOutsidePrepareHardware",
                "WdfInterruptCreate with resources outside EvtDevicePrepareHardware".into(),
            );
            return STATUS_INVALID_DEVICE_STATE;
        }
        if c.InterruptRaw.is_null() || c.InterruptTranslated.is_null() {
            irql::violation(
                "InterruptResources",
                "from EvtDevicePrepareHardware both InterruptRaw and InterruptTranslated must \
                 be valid (WdfInterruptCreate page)"
                    .into(),
            );
            return STATUS_INVALID_DEVICE_STATE;
        }
        let Some(msi) = s.interrupt_descriptor(c.InterruptTranslated as usize) else {
            irql::violation(
                "InterruptResources",
                "InterruptTranslated is not an interrupt descriptor of this start".into(),
            );
            return STATUS_INVALID_PARAMETER;
        };
        if c.EvtInterruptIsr.is_none() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        let h = match unsafe { objects::create(Kind::Interrupt, Some(device as usize), attributes) }
        {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        let mut list = s.interrupts.lock().unwrap_or_else(|e| e.into_inner());
        let i = Arc::new(Interrupt {
            handle: h,
            message: list.len() as u32,
            msi,
            isr: c.EvtInterruptIsr,
            dpc: c.EvtInterruptDpc,
            enable: c.EvtInterruptEnable,
            disable: c.EvtInterruptDisable,
            connected: AtomicBool::new(false),
            lock: Arc::new(super::sync::SpinLock::new(h)),
            queued: Mutex::new(false),
            running: AtomicBool::new(false),
            wake: Condvar::new(),
            exit: AtomicBool::new(false),
            thread: Mutex::new(None),
            isrs: AtomicU64::new(0),
            claimed: AtomicU64::new(0),
            dpcs: AtomicU64::new(0),
        });
        let t = {
            let i = i.clone();
            std::thread::Builder::new()
                .name(format!("dpc-{}", i.message))
                .spawn(move || dpc_thread(i))
                .ok()
        };
        *i.thread.lock().unwrap_or_else(|e| e.into_inner()) = t;
        list.push(i);
        // SAFETY: the out parameter.
        unsafe { *interrupt = h as WDFINTERRUPT };
        STATUS_SUCCESS
    })
}

fn find(h: WDFINTERRUPT) -> Option<Arc<Interrupt>> {
    state()
        .interrupts
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .iter()
        .find(|i| i.handle == h as usize)
        .cloned()
}

unsafe extern "C" fn wdf_interrupt_queue_dpc_for_isr(interrupt: WDFINTERRUPT) -> BOOLEAN {
    api("WdfInterruptQueueDpcForIsr", || match find(interrupt) {
        Some(i) => u8::from(i.queue_dpc()),
        None => {
            irql::violation("InvalidHandle", "WdfInterruptQueueDpcForIsr".into());
            0
        }
    })
}

unsafe extern "C" fn wdf_interrupt_get_info(interrupt: WDFINTERRUPT, info: PWDF_INTERRUPT_INFO) {
    api("WdfInterruptGetInfo", || {
        let Some(i) = find(interrupt) else {
            irql::violation("InvalidHandle", "WdfInterruptGetInfo".into());
            return;
        };
        // SAFETY: the driver's struct.
        let size = unsafe { (*info).Size };
        if size as usize != std::mem::size_of::<WDF_INTERRUPT_INFO>() {
            irql::violation("WdfStructSize", format!("WDF_INTERRUPT_INFO.Size {size}"));
            return;
        }
        let out = WDF_INTERRUPT_INFO {
            Size: size,
            MessageNumber: i.message,
            Vector: 0x60 + i.message,
            Irql: irql::DIRQL,
            Mode: if i.msi {
                _KINTERRUPT_MODE::Latched
            } else {
                _KINTERRUPT_MODE::LevelSensitive
            },
            MessageSignaled: u8::from(i.msi),
            TargetProcessorSet: 1,
            ..Default::default()
        };
        // SAFETY: as above, a struct of the right size.
        unsafe { info.write(out) };
    })
}

unsafe extern "C" fn wdf_interrupt_acquire_lock(interrupt: WDFINTERRUPT) {
    api("WdfInterruptAcquireLock", || match find(interrupt) {
        Some(i) => {
            if !i.connected.load(Ordering::Acquire) {
                irql::violation(
                    "InterruptLockNotConnected",
                    "WdfInterruptAcquireLock on an interrupt that is not connected".into(),
                );
            }
            i.lock.acquire_at(irql::DIRQL);
        }
        None => irql::violation("InvalidHandle", "WdfInterruptAcquireLock".into()),
    })
}

unsafe extern "C" fn wdf_interrupt_release_lock(interrupt: WDFINTERRUPT) {
    api("WdfInterruptReleaseLock", || match find(interrupt) {
        Some(i) => i.lock.release_at(irql::DIRQL),
        None => irql::violation("InvalidHandle", "WdfInterruptReleaseLock".into()),
    })
}

/// Installs the interrupt routines.
pub fn install() {
    wdf_slot::WdfInterruptCreate.set(wdf_interrupt_create);
    wdf_slot::WdfInterruptQueueDpcForIsr.set(wdf_interrupt_queue_dpc_for_isr);
    wdf_slot::WdfInterruptGetInfo.set(wdf_interrupt_get_info);
    wdf_slot::WdfInterruptAcquireLock.set(wdf_interrupt_acquire_lock);
    wdf_slot::WdfInterruptReleaseLock.set(wdf_interrupt_release_lock);
}
