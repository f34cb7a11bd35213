//! WDFTIMER, as KMDF runs one (wdftimer.h; the WdfTimerCreate, WdfTimerStart and WdfTimerStop
//! pages):
//!
//! * `WdfTimerCreate` needs a parent (`ParentObject` "must not be NULL": a device, a queue, or
//!   an object whose parents lead to one); the timer is deleted with it, stopped first.
//! * The callback runs at DISPATCH_LEVEL (the default execution level), on its own thread here;
//!   a periodic timer (`Period` ms) runs again every period.
//! * `WdfTimerStart(DueTime)`: negative is relative, in 100 ns units; positive is absolute system
//!   time (taken here as relative to now, the host having no wall clock of its own). Starting
//!   a queued timer moves its due time; the return value says whether it was queued
//!   (KeSetTimer).
//! * `WdfTimerStop(Wait)`: dequeues it and says whether it was queued; `Wait` = TRUE waits for
//!   a running callback and is allowed only at PASSIVE_LEVEL (and never from the callback).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use wdk_standin::host::wdf as wdf_slot;
use wdk_standin::*;

use super::objects::{self, Kind};
use super::wdf::{STATUS_INVALID_PARAMETER, api, create_fails};
use super::{alloc, irql, state};

#[derive(Default)]
struct TimerState {
    due: Option<Instant>,
    running: bool,
    exit: bool,
}

/// One WDFTIMER.
pub struct Timer {
    /// Its handle.
    pub handle: usize,
    func: PFN_WDF_TIMER,
    period: Duration,
    state: Mutex<TimerState>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Callback runs.
    pub fires: AtomicU64,
}

impl Timer {
    fn lock(&self) -> std::sync::MutexGuard<'_, TimerState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if st.exit {
                return;
            }
            match st.due {
                Some(d) if Instant::now() >= d => {
                    st.due = (!self.period.is_zero()).then(|| d + self.period);
                    st.running = true;
                    drop(st);
                    if let Some(f) = self.func {
                        irql::at(irql::DISPATCH, || {
                            // SAFETY: the driver's timer callback for its own timer, at
                            // DISPATCH_LEVEL.
                            alloc::as_driver(|| unsafe { f(self.handle as WDFTIMER) })
                        });
                    }
                    self.fires.fetch_add(1, Ordering::Relaxed);
                    st = self.lock();
                    st.running = false;
                    self.wake.notify_all();
                }
                Some(d) => {
                    let wait = d.saturating_duration_since(Instant::now());
                    st = self
                        .wake
                        .wait_timeout(st, wait)
                        .unwrap_or_else(|e| e.into_inner())
                        .0;
                }
                None => {
                    st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                }
            }
        }
    }

    /// Stops the timer and its thread (the object is being deleted): waits for a running
    /// callback, as the framework does before it frees a timer.
    pub fn shut_down(&self) {
        {
            let mut st = self.lock();
            st.due = None;
            st.exit = true;
        }
        self.wake.notify_all();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn timer(h: WDFTIMER) -> Option<Arc<Timer>> {
    state()
        .timers
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(h as usize))
        .cloned()
}

unsafe extern "C" fn wdf_timer_create(
    config: PWDF_TIMER_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    out: *mut WDFTIMER,
) -> NTSTATUS {
    api("WdfTimerCreate", || {
        if config.is_null() || out.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver's config, valid for the call.
        let c = unsafe { *config };
        if c.Size as usize != std::mem::size_of::<WDF_TIMER_CONFIG>() || c.EvtTimerFunc.is_none() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        let has_parent = !attributes.is_null() && !unsafe { (*attributes).ParentObject }.is_null();
        if !has_parent {
            irql::violation(
                "TimerParent",
                "WdfTimerCreate: WDF_OBJECT_ATTRIBUTES.ParentObject must not be NULL \
                 (WdfTimerCreate page)"
                    .into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if create_fails("WdfTimerCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: the driver's attributes.
        let h = match unsafe { objects::create(Kind::Timer, None, attributes) } {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        let t = Arc::new(Timer {
            handle: h,
            func: c.EvtTimerFunc,
            period: Duration::from_millis(u64::from(c.Period)),
            state: Mutex::new(TimerState::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            fires: AtomicU64::new(0),
        });
        let th = {
            let t = t.clone();
            std::thread::Builder::new()
                .name(format!("timer-{h:#x}"))
                .spawn(move || t.run())
                .ok()
        };
        *t.thread.lock().unwrap_or_else(|e| e.into_inner()) = th;
        state()
            .timers
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(h, t);
        // SAFETY: the out parameter.
        unsafe { *out = h as WDFTIMER };
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_timer_start(t: WDFTIMER, due: LONGLONG) -> BOOLEAN {
    api("WdfTimerStart", || {
        let Some(t) = timer(t) else {
            irql::violation(
                "BadHandle",
                "WdfTimerStart on a handle that is no timer".into(),
            );
            return 0;
        };
        let after = Duration::from_nanos(due.unsigned_abs().saturating_mul(100));
        let was = {
            let mut st = t.lock();
            st.due.replace(Instant::now() + after).is_some()
        };
        t.wake.notify_all();
        u8::from(was)
    })
}

unsafe extern "C" fn wdf_timer_stop(t: WDFTIMER, wait: BOOLEAN) -> BOOLEAN {
    api("WdfTimerStop", || {
        if wait != 0 && irql::current() > irql::PASSIVE {
            irql::violation(
                "TimerStopWait",
                format!(
                    "WdfTimerStop(Wait = TRUE) at IRQL {} (PASSIVE_LEVEL only, WdfTimerStop page)",
                    irql::current()
                ),
            );
        }
        let Some(t) = timer(t) else {
            irql::violation(
                "BadHandle",
                "WdfTimerStop on a handle that is no timer".into(),
            );
            return 0;
        };
        let mut st = t.lock();
        let was = st.due.take().is_some();
        if wait != 0 {
            let deadline = Instant::now() + Duration::from_secs(10);
            while st.running && Instant::now() < deadline {
                st = t
                    .wake
                    .wait_timeout(st, Duration::from_millis(5))
                    .unwrap_or_else(|e| e.into_inner())
                    .0;
            }
        }
        u8::from(was)
    })
}

unsafe extern "C" fn wdf_timer_get_parent_object(t: WDFTIMER) -> WDFOBJECT {
    api("WdfTimerGetParentObject", || {
        if timer(t).is_none() {
            irql::violation(
                "BadHandle",
                "WdfTimerGetParentObject on a handle that is no timer".into(),
            );
            return std::ptr::null_mut();
        }
        objects::parent(t as usize).unwrap_or_default() as WDFOBJECT
    })
}

/// Installs the timer routines.
pub fn install() {
    wdf_slot::WdfTimerCreate.set(wdf_timer_create);
    wdf_slot::WdfTimerStart.set(wdf_timer_start);
    wdf_slot::WdfTimerStop.set(wdf_timer_stop);
    wdf_slot::WdfTimerGetParentObject.set(wdf_timer_get_parent_object);
}
