//! WDF objects: handles, typed contexts, parents and children, and deletion in the framework's
//! order.
//!
//! * A handle is never reused while the host lives, so a stale handle is caught, not aliased.
//! * Contexts come from the object attributes' `ContextTypeInfo` (size `ContextSize`, or
//!   `ContextSizeOverride`), zeroed, found again by `UniqueType` in
//!   `WdfObjectGetTypedContextWorker`.
//! * Deletion ("Framework Object Life Cycle", and `EVT_WDF_OBJECT_CONTEXT_DESTROY`): "The
//!   framework calls the child objects' EvtCleanupCallback callback functions before calling the
//!   parent object's EvtCleanupCallback callback function. Next, if the child's reference count is
//!   zero, the framework calls the child object's EvtDestroyCallback callback function. Finally,
//!   if the parent's reference count is zero, the framework calls the parent object's
//!   EvtDestroyCallback" — children first, cleanups before destroys; deletion "starts from the
//!   object farthest from the parent". The callbacks run as driver code at PASSIVE_LEVEL (the
//!   host deletes only from PnP and power paths).
//! * Objects a driver may not delete (`WdfObjectDelete` page; WDF's `IsNoDeleteDDI`,
//!   `shared/object/fxobjectapi.cpp`): the device, the driver, interrupts, resource lists — the
//!   call is refused and recorded.

use std::collections::BTreeMap;
use std::sync::Mutex;

use wdk_standin::{PFN_WDF_OBJECT_CONTEXT_CLEANUP, WDF_OBJECT_ATTRIBUTES, WDFOBJECT};

use super::alloc;
use super::irql;

/// What an object is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    /// WDFDRIVER.
    Driver,
    /// WDFDEVICE.
    Device,
    /// WDFSPINLOCK.
    SpinLock,
    /// WDFDMAENABLER.
    DmaEnabler,
    /// WDFCOMMONBUFFER.
    CommonBuffer,
    /// WDFINTERRUPT.
    Interrupt,
    /// WDFWORKITEM.
    WorkItem,
    /// WDFCMRESLIST.
    ResourceList,
    /// NETADAPTER.
    Adapter,
    /// NETPACKETQUEUE.
    Queue,
    /// NETCONFIGURATION.
    Configuration,
    /// WDFTIMER.
    Timer,
}

impl Kind {
    /// Whether `WdfObjectDelete` may delete it.
    pub fn driver_may_delete(self) -> bool {
        !matches!(
            self,
            Self::Driver | Self::Device | Self::Interrupt | Self::ResourceList
        )
    }
}

struct Object {
    kind: Kind,
    parent: Option<usize>,
    children: Vec<usize>,
    /// (UniqueType, context memory).
    contexts: Vec<(usize, Box<[u64]>)>,
    cleanup: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    destroy: PFN_WDF_OBJECT_CONTEXT_CLEANUP,
    /// Cleanup has run (deletion under way).
    deleting: bool,
}

struct Table {
    next: usize,
    objects: BTreeMap<usize, Object>,
    created: BTreeMap<Kind, u64>,
}

static TABLE: Mutex<Table> = Mutex::new(Table {
    next: 0x1000,
    objects: BTreeMap::new(),
    created: BTreeMap::new(),
});

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Creates an object of `kind` under `parent` with `attributes` (may be null); returns its
/// handle, or `Err` with the reason the attributes are refused.
///
/// # Safety
///
/// `attributes` is null or points at initialised attributes whose `ContextTypeInfo` (if set)
/// points at a context type description.
pub unsafe fn create(
    kind: Kind,
    parent: Option<usize>,
    attributes: *const WDF_OBJECT_ATTRIBUTES,
) -> Result<usize, String> {
    let mut contexts = Vec::new();
    let (mut cleanup, mut destroy) = (None, None);
    let mut parent = parent;
    if !attributes.is_null() {
        // SAFETY: the caller's contract.
        let a = unsafe { &*attributes };
        if a.Size as usize != std::mem::size_of::<WDF_OBJECT_ATTRIBUTES>() {
            return Err(format!("WDF_OBJECT_ATTRIBUTES.Size {}", a.Size));
        }
        cleanup = a.EvtCleanupCallback;
        destroy = a.EvtDestroyCallback;
        if !a.ContextTypeInfo.is_null() {
            // SAFETY: the caller's contract.
            let ti = unsafe { &*a.ContextTypeInfo };
            let size = if a.ContextSizeOverride != 0 {
                a.ContextSizeOverride
            } else {
                ti.ContextSize
            };
            let unique = if ti.UniqueType.is_null() {
                a.ContextTypeInfo as usize
            } else {
                ti.UniqueType as usize
            };
            contexts.push((
                unique,
                vec![0u64; size.div_ceil(8).max(1)].into_boxed_slice(),
            ));
        }
        if !a.ParentObject.is_null() {
            parent = Some(a.ParentObject as usize);
        }
    }
    let mut t = table();
    if let Some(p) = parent
        && !t.objects.contains_key(&p)
    {
        return Err(format!("parent {p:#x} is not a live object"));
    }
    let h = t.next;
    t.next += 0x10;
    t.objects.insert(
        h,
        Object {
            kind,
            parent,
            children: Vec::new(),
            contexts,
            cleanup,
            destroy,
            deleting: false,
        },
    );
    if let Some(p) = parent
        && let Some(po) = t.objects.get_mut(&p)
    {
        po.children.push(h);
    }
    *t.created.entry(kind).or_default() += 1;
    Ok(h)
}

/// The kind of a live object.
pub fn kind(h: usize) -> Option<Kind> {
    table().objects.get(&h).map(|o| o.kind)
}

/// The parent of a live object.
pub fn parent(h: usize) -> Option<usize> {
    table().objects.get(&h).and_then(|o| o.parent)
}

/// The context of type `unique` of object `h` (null if it has none).
pub fn context(h: usize, unique: usize) -> *mut u8 {
    let mut t = table();
    let Some(o) = t.objects.get_mut(&h) else {
        drop(t);
        irql::violation(
            "InvalidHandle",
            format!("WdfObjectGetTypedContextWorker on {h:#x}, which is not a live object"),
        );
        return std::ptr::null_mut();
    };
    match o.contexts.iter_mut().find(|(u, _)| *u == unique) {
        Some((_, c)) => c.as_mut_ptr().cast(),
        None => {
            drop(t);
            irql::violation(
                "ContextTypeMismatch",
                format!("object {h:#x} has no context of type {unique:#x}"),
            );
            std::ptr::null_mut()
        }
    }
}

/// Deletes `h` and everything under it in the framework's order (cleanups children first, then
/// destroys children first), calling the driver's callbacks at PASSIVE_LEVEL; `on_delete` runs
/// for each object after its destroy callback (the host frees what the object held).
pub fn delete(h: usize, on_delete: &mut dyn FnMut(usize, Kind)) {
    // Post-order: children before parents.
    let order = {
        let mut t = table();
        if !t.objects.contains_key(&h) {
            return;
        }
        fn walk(t: &Table, h: usize, out: &mut Vec<usize>) {
            if let Some(o) = t.objects.get(&h) {
                for &c in o.children.iter().rev() {
                    walk(t, c, out);
                }
                out.push(h);
            }
        }
        let mut order = Vec::new();
        walk(&t, h, &mut order);
        for x in &order {
            if let Some(o) = t.objects.get_mut(x) {
                o.deleting = true;
            }
        }
        order
    };
    for &x in &order {
        let cb = table().objects.get(&x).and_then(|o| o.cleanup);
        if let Some(cb) = cb {
            irql::at(irql::PASSIVE, || {
                // SAFETY: the driver's cleanup callback for its own object, which is still live.
                alloc::as_driver(|| unsafe { cb(x as WDFOBJECT) })
            });
        }
    }
    for &x in &order {
        let cb = table().objects.get(&x).and_then(|o| o.destroy);
        if let Some(cb) = cb {
            irql::at(irql::PASSIVE, || {
                // SAFETY: as above, its destroy callback (its context is still readable).
                alloc::as_driver(|| unsafe { cb(x as WDFOBJECT) })
            });
        }
        let kind = {
            let mut t = table();
            let o = t.objects.remove(&x);
            if let Some(p) = o.as_ref().and_then(|o| o.parent)
                && let Some(po) = t.objects.get_mut(&p)
            {
                po.children.retain(|&c| c != x);
            }
            o.map(|o| o.kind)
        };
        if let Some(k) = kind {
            on_delete(x, k);
        }
    }
}

/// Live objects by kind (the ledger).
pub fn live() -> BTreeMap<Kind, usize> {
    let mut m = BTreeMap::new();
    for o in table().objects.values() {
        *m.entry(o.kind).or_default() += 1;
    }
    m
}

/// Objects created by kind since the last [`reset`].
pub fn created() -> BTreeMap<Kind, u64> {
    table().created.clone()
}

/// The live children of `h` of `kind`.
pub fn children(h: usize, kind: Kind) -> Vec<usize> {
    let t = table();
    t.objects
        .get(&h)
        .map(|o| {
            o.children
                .iter()
                .copied()
                .filter(|c| t.objects.get(c).is_some_and(|x| x.kind == kind))
                .collect()
        })
        .unwrap_or_default()
}

/// Forgets every object (a new driver load; handles keep growing).
pub fn reset() {
    let mut t = table();
    t.objects.clear();
    t.created.clear();
}
