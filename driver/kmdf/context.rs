//! WDF object contexts: each holds one pointer to a Rust object the glue owns (created with the
//! WDF object, freed in its destroy callback), so no Rust state lives in WDF's raw memory.

use core::ffi::c_void;

use wdk_sys::{
    _WDF_EXECUTION_LEVEL, _WDF_SYNCHRONIZATION_SCOPE, PFN_WDF_OBJECT_CONTEXT_DESTROY,
    WDF_OBJECT_ATTRIBUTES, WDF_OBJECT_CONTEXT_TYPE_INFO, WDFOBJECT,
    call_unsafe_wdf_function_binding,
};

/// A context type: `WDF_DECLARE_CONTEXT_TYPE` by hand. The context is one pointer.
#[repr(transparent)]
pub struct ContextType(pub WDF_OBJECT_CONTEXT_TYPE_INFO);

// SAFETY: the type info is immutable static data (a name and sizes) that WDF only reads.
unsafe impl Sync for ContextType {}

/// Declares a context type named `$name` holding a `*mut c_void`.
macro_rules! context_type {
    ($name:ident, $text:literal) => {
        pub static $name: $crate::kmdf::context::ContextType =
            $crate::kmdf::context::ContextType(wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO {
                Size: core::mem::size_of::<wdk_sys::WDF_OBJECT_CONTEXT_TYPE_INFO>() as u32,
                ContextName: $text.as_ptr().cast_mut(),
                ContextSize: core::mem::size_of::<*mut core::ffi::c_void>(),
                UniqueType: &raw const $name.0,
                EvtDriverGetUniqueContextType: None,
            });
    };
}

context_type!(DEVICE_CONTEXT, c"VirtionetDevice");
context_type!(QUEUE_CONTEXT, c"VirtionetQueue");
context_type!(INTERRUPT_CONTEXT, c"VirtionetInterrupt");

/// `WDF_OBJECT_ATTRIBUTES_INIT_CONTEXT_TYPE`, with an optional destroy callback.
pub fn attributes(
    ty: &'static ContextType,
    destroy: PFN_WDF_OBJECT_CONTEXT_DESTROY,
) -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: core::mem::size_of::<WDF_OBJECT_ATTRIBUTES>() as u32,
        EvtCleanupCallback: None,
        EvtDestroyCallback: destroy,
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ParentObject: core::ptr::null_mut(),
        ContextSizeOverride: 0,
        ContextTypeInfo: &raw const ty.0,
    }
}

/// `WDF_OBJECT_ATTRIBUTES_INIT`: no context.
pub fn plain_attributes() -> WDF_OBJECT_ATTRIBUTES {
    WDF_OBJECT_ATTRIBUTES {
        Size: core::mem::size_of::<WDF_OBJECT_ATTRIBUTES>() as u32,
        EvtCleanupCallback: None,
        EvtDestroyCallback: None,
        ExecutionLevel: _WDF_EXECUTION_LEVEL::WdfExecutionLevelInheritFromParent,
        SynchronizationScope: _WDF_SYNCHRONIZATION_SCOPE::WdfSynchronizationScopeInheritFromParent,
        ParentObject: core::ptr::null_mut(),
        ContextSizeOverride: 0,
        ContextTypeInfo: core::ptr::null(),
    }
}

/// The context slot of `object` (a pointer-sized cell).
///
/// # Safety
///
/// `object` must be a live WDF object created with attributes of type `ty`.
pub unsafe fn slot(object: WDFOBJECT, ty: &'static ContextType) -> *mut *mut c_void {
    // SAFETY: the caller guarantees the object carries this context type.
    unsafe {
        call_unsafe_wdf_function_binding!(WdfObjectGetTypedContextWorker, object, &raw const ty.0)
    }
    .cast()
}

/// Stores `value` in the context of `object`.
///
/// # Safety
///
/// As [`slot`]; no other thread may read the slot meanwhile.
pub unsafe fn set<T>(object: WDFOBJECT, ty: &'static ContextType, value: *mut T) {
    // SAFETY: the caller's contract.
    let s = unsafe { slot(object, ty) };
    // SAFETY: the slot is pointer-sized and aligned (WDF contexts are
    // MEMORY_ALLOCATION_ALIGNMENT-aligned) and nobody else reads it meanwhile.
    unsafe { s.write(value.cast()) };
}

/// The pointer stored in the context of `object` (null before [`set`]).
///
/// # Safety
///
/// As [`slot`].
pub unsafe fn get<T>(object: WDFOBJECT, ty: &'static ContextType) -> *mut T {
    // SAFETY: the caller's contract.
    let s = unsafe { slot(object, ty) };
    // SAFETY: WDF zeroes contexts, so an unset slot reads null.
    unsafe { s.read() }.cast()
}

/// The Rust object a context of type `ty` points at.
///
/// # Safety
///
/// `object` must carry a context of type `ty` set with [`set`] to a `T` that lives as long as
/// the object (freed in its destroy callback with [`take`]).
pub unsafe fn object<T>(object: WDFOBJECT, ty: &'static ContextType) -> &'static T {
    // SAFETY: the caller's contract.
    let p = unsafe { get::<T>(object, ty) };
    // SAFETY: set at creation to a live T, freed only in the destroy callback.
    unsafe { &*p }
}

/// Takes back the boxed object a context points at (destroy callbacks), if one was set.
///
/// # Safety
///
/// As [`get`]; the slot, if set, holds a `Box<T>` made with `Box::into_raw`, taken only once.
pub unsafe fn take<T>(object: WDFOBJECT, ty: &'static ContextType) -> Option<alloc::boxed::Box<T>> {
    // SAFETY: the caller's contract.
    let p = unsafe { get::<T>(object, ty) };
    // SAFETY: made by Box::into_raw and taken once (the destroy callback runs once).
    (!p.is_null()).then(|| unsafe { alloc::boxed::Box::from_raw(p) })
}

/// A queue's packet and fragment rings as the core's views.
///
/// # Safety
///
/// `rings` must be the queue's ring collection, used inside one of its datapath callbacks (the
/// framework hands the rings to the driver for the callback's duration).
pub unsafe fn rings(
    rings: *const netring::NetRingCollection,
) -> Option<(netring::PacketRing<'static>, netring::FragmentRing<'static>)> {
    // SAFETY: the collection is valid for the queue's life.
    let col = unsafe { &*rings };
    // SAFETY: the queue's packet ring, ours during the callback.
    let p = unsafe { netring::Ring::from_raw(col.packet_ring()) }.ok()?;
    // SAFETY: as above, the fragment ring.
    let f = unsafe { netring::Ring::from_raw(col.fragment_ring()) }.ok()?;
    Some((p, f))
}
