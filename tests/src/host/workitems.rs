//! WDFWORKITEM, as KMDF runs one (wdfworkitem.h; the WdfWorkItemCreate, WdfWorkItemEnqueue
//! and WdfWorkItemFlush pages):
//!
//! * `WdfWorkItemCreate` needs a parent (a device or a queue, or an object whose parents lead to
//!   one); the work item is deleted with it, after its callback returned.
//! * The callback runs at PASSIVE_LEVEL on a system worker thread (its own thread here).
//! * `WdfWorkItemEnqueue` (≤ DISPATCH_LEVEL) queues it; enqueuing one that is queued and has not
//!   started does nothing ("the framework does not add it to the queue again"), while one that
//!   is running can be queued again.
//! * `WdfWorkItemFlush` (PASSIVE_LEVEL) waits until it has run.

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
struct ItemState {
    queued: bool,
    running: bool,
    exit: bool,
}

/// One WDFWORKITEM.
pub struct WorkItem {
    /// Its handle.
    pub handle: usize,
    func: PFN_WDF_WORKITEM,
    state: Mutex<ItemState>,
    wake: Condvar,
    thread: Mutex<Option<JoinHandle<()>>>,
    /// Callback runs.
    pub runs: AtomicU64,
}

impl WorkItem {
    fn lock(&self) -> std::sync::MutexGuard<'_, ItemState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn run(self: Arc<Self>) {
        let mut st = self.lock();
        loop {
            if st.exit && !st.queued {
                return;
            }
            if !st.queued {
                st = self.wake.wait(st).unwrap_or_else(|e| e.into_inner());
                continue;
            }
            st.queued = false;
            st.running = true;
            drop(st);
            if let Some(f) = self.func {
                irql::at(irql::PASSIVE, || {
                    // SAFETY: the driver's work-item callback for its own work item, at
                    // PASSIVE_LEVEL.
                    alloc::as_driver(|| unsafe { f(self.handle as WDFWORKITEM) })
                });
            }
            self.runs.fetch_add(1, Ordering::Relaxed);
            st = self.lock();
            st.running = false;
            self.wake.notify_all();
        }
    }

    /// Waits until it is neither queued nor running (bounded).
    fn flush(&self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut st = self.lock();
        while st.queued || st.running {
            if Instant::now() > deadline {
                return false;
            }
            st = self
                .wake
                .wait_timeout(st, Duration::from_millis(5))
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
        true
    }

    /// Runs what is queued, then stops the thread (the object is being deleted).
    pub fn shut_down(&self) {
        let _ = self.flush();
        self.lock().exit = true;
        self.wake.notify_all();
        let t = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = t
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn item(h: WDFWORKITEM) -> Option<Arc<WorkItem>> {
    state()
        .work_items
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(&(h as usize))
        .cloned()
}

unsafe extern "C" fn wdf_work_item_create(
    config: PWDF_WORKITEM_CONFIG,
    attributes: PWDF_OBJECT_ATTRIBUTES,
    out: *mut WDFWORKITEM,
) -> NTSTATUS {
    api("WdfWorkItemCreate", || {
        if config.is_null() || out.is_null() {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: the driver's config, valid for the call.
        let c = unsafe { *config };
        if c.Size as usize != std::mem::size_of::<WDF_WORKITEM_CONFIG>()
            || c.EvtWorkItemFunc.is_none()
        {
            return STATUS_INVALID_PARAMETER;
        }
        // SAFETY: null or the driver's attributes.
        let has_parent = !attributes.is_null() && !unsafe { (*attributes).ParentObject }.is_null();
        if !has_parent {
            irql::violation(
                "WorkItemParent",
                "WdfWorkItemCreate: WDF_OBJECT_ATTRIBUTES.ParentObject must be set \
                 (WdfWorkItemCreate page)"
                    .into(),
            );
            return STATUS_INVALID_PARAMETER;
        }
        if create_fails("WdfWorkItemCreate") {
            return STATUS_INSUFFICIENT_RESOURCES;
        }
        // SAFETY: the driver's attributes.
        let h = match unsafe { objects::create(Kind::WorkItem, None, attributes) } {
            Ok(h) => h,
            Err(e) => {
                irql::violation("ObjectAttributes", e);
                return STATUS_INVALID_PARAMETER;
            }
        };
        let w = Arc::new(WorkItem {
            handle: h,
            func: c.EvtWorkItemFunc,
            state: Mutex::new(ItemState::default()),
            wake: Condvar::new(),
            thread: Mutex::new(None),
            runs: AtomicU64::new(0),
        });
        let th = {
            let w = w.clone();
            std::thread::Builder::new()
                .name(format!("workitem-{h:#x}"))
                .spawn(move || w.run())
                .ok()
        };
        *w.thread.lock().unwrap_or_else(|e| e.into_inner()) = th;
        state()
            .work_items
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(h, w);
        // SAFETY: the out parameter.
        unsafe { *out = h as WDFWORKITEM };
        STATUS_SUCCESS
    })
}

unsafe extern "C" fn wdf_work_item_enqueue(w: WDFWORKITEM) {
    api("WdfWorkItemEnqueue", || {
        let Some(w) = item(w) else {
            irql::violation(
                "BadHandle",
                "WdfWorkItemEnqueue on a handle that is no work item".into(),
            );
            return;
        };
        w.lock().queued = true;
        w.wake.notify_all();
    })
}

unsafe extern "C" fn wdf_work_item_get_parent_object(w: WDFWORKITEM) -> WDFOBJECT {
    api("WdfWorkItemGetParentObject", || {
        if item(w).is_none() {
            irql::violation(
                "BadHandle",
                "WdfWorkItemGetParentObject on a handle that is no work item".into(),
            );
            return std::ptr::null_mut();
        }
        objects::parent(w as usize).unwrap_or_default() as WDFOBJECT
    })
}

unsafe extern "C" fn wdf_work_item_flush(w: WDFWORKITEM) {
    api("WdfWorkItemFlush", || {
        let Some(w) = item(w) else {
            irql::violation(
                "BadHandle",
                "WdfWorkItemFlush on a handle that is no work item".into(),
            );
            return;
        };
        if !w.flush() {
            irql::violation("WorkItemNeverFinished", "a work item ran for 20 s".into());
        }
    })
}

/// Installs the work-item routines.
pub fn install() {
    wdf_slot::WdfWorkItemCreate.set(wdf_work_item_create);
    wdf_slot::WdfWorkItemEnqueue.set(wdf_work_item_enqueue);
    wdf_slot::WdfWorkItemGetParentObject.set(wdf_work_item_get_parent_object);
    wdf_slot::WdfWorkItemFlush.set(wdf_work_item_flush);
}
