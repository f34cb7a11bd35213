//! The driver's pool, as the glue host sees it: a global allocator for the test binaries that
//! load the glue (`#[global_allocator] static A: HostAllocator = HostAllocator;`). Allocations
//! made while the driver's code runs (between the host calling into the glue and the glue
//! calling back into the host) are the driver's: they are recorded in a ledger that must be
//! empty when the driver unloads, one made at DISPATCH_LEVEL or above is a violation (the
//! project's kernel rule: nothing is allocated after start on a DISPATCH path — a failed
//! allocation there is a bugcheck), and a scenario can make the Nth driver allocation fail, as a
//! low-resource machine does.
//!
//! Rust's infallible allocation APIs abort the process on a failed allocation (as they bugcheck a
//! kernel driver), so a low-resource scenario passes only if every allocation the driver makes on
//! that path is fallible.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, AtomicUsize, Ordering};

use super::irql;

thread_local! {
    /// > 0 while the driver's code runs on this thread (nesting: driver → host → driver).
    static DRIVER_DEPTH: Cell<u32> = const { Cell::new(0) };
    /// Set while the host runs on this thread inside a call from the driver.
    static IN_HOST: Cell<u32> = const { Cell::new(0) };
}

/// Whether the driver's code is running on this thread (and not a host routine it called).
pub fn in_driver() -> bool {
    DRIVER_DEPTH.with(Cell::get) > 0 && IN_HOST.with(Cell::get) == 0
}

/// Runs `f` as driver code (the host calling a driver callback).
pub fn as_driver<T>(f: impl FnOnce() -> T) -> T {
    let saved_host = IN_HOST.with(|h| h.replace(0));
    DRIVER_DEPTH.with(|d| d.set(d.get() + 1));
    let r = f();
    DRIVER_DEPTH.with(|d| d.set(d.get() - 1));
    IN_HOST.with(|h| h.set(saved_host));
    r
}

/// Runs `f` as host code (a routine the driver called); its time is the host's, not the
/// driver's (`sync.rs`).
pub fn as_host<T>(f: impl FnOnce() -> T) -> T {
    let outer = IN_HOST.with(|h| {
        h.set(h.get() + 1);
        h.get() == 1
    });
    // CPU time, as the lock holds are measured (`sync::thread_cpu`).
    let t0 = outer.then(super::sync::thread_cpu);
    let r = f();
    if let Some(t0) = t0 {
        super::sync::charge_host(super::sync::thread_cpu().saturating_sub(t0));
    }
    IN_HOST.with(|h| h.set(h.get() - 1));
    r
}

const SLOTS: usize = 1 << 16;
/// Live driver allocations: address (0 = empty, 1 = tombstone) and size, open addressing.
static ADDR: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static SIZE: [AtomicUsize; SLOTS] = [const { AtomicUsize::new(0) }; SLOTS];
static LIVE: AtomicUsize = AtomicUsize::new(0);
static LIVE_BYTES: AtomicUsize = AtomicUsize::new(0);
static TOTAL: AtomicU64 = AtomicU64::new(0);
static OVERFLOW: AtomicBool = AtomicBool::new(false);
/// Driver allocations to let through before one fails (negative: never).
static FAIL_IN: AtomicI64 = AtomicI64::new(-1);
static FAILED: AtomicU64 = AtomicU64::new(0);
/// Whether an allocation at DISPATCH_LEVEL or above is recorded as a violation.
static DISPATCH_RULE: AtomicBool = AtomicBool::new(true);

fn slot_of(addr: usize) -> usize {
    (addr >> 4).wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (usize::BITS - 16)
}

fn insert(addr: usize, size: usize) {
    let mut i = slot_of(addr);
    for _ in 0..SLOTS {
        let cur = ADDR[i].load(Ordering::Relaxed);
        if (cur == 0 || cur == 1)
            && ADDR[i]
                .compare_exchange(cur, addr, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            SIZE[i].store(size, Ordering::Relaxed);
            LIVE.fetch_add(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_add(size, Ordering::Relaxed);
            return;
        }
        i = (i + 1) % SLOTS;
    }
    OVERFLOW.store(true, Ordering::Relaxed);
}

fn remove(addr: usize) {
    let mut i = slot_of(addr);
    for _ in 0..SLOTS {
        let cur = ADDR[i].load(Ordering::Relaxed);
        if cur == 0 {
            return;
        }
        if cur == addr
            && ADDR[i]
                .compare_exchange(cur, 1, Ordering::AcqRel, Ordering::Relaxed)
                .is_ok()
        {
            LIVE.fetch_sub(1, Ordering::Relaxed);
            LIVE_BYTES.fetch_sub(SIZE[i].load(Ordering::Relaxed), Ordering::Relaxed);
            return;
        }
        i = (i + 1) % SLOTS;
    }
}

/// The global allocator of the glue-host test binaries (see the module documentation).
pub struct HostAllocator;

// SAFETY: every call is forwarded to the system allocator with the same layout and pointer; the
// bookkeeping only reads addresses and never touches the memory.
unsafe impl GlobalAlloc for HostAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if in_driver() {
            TOTAL.fetch_add(1, Ordering::Relaxed);
            if FAIL_IN.load(Ordering::Relaxed) >= 0 && FAIL_IN.fetch_sub(1, Ordering::AcqRel) == 0 {
                FAILED.fetch_add(1, Ordering::Relaxed);
                return std::ptr::null_mut();
            }
            if irql::current() >= irql::DISPATCH && DISPATCH_RULE.load(Ordering::Relaxed) {
                // Recording allocates: do it as the host.
                as_host(|| {
                    let trace = if std::env::var_os("VNET_HOST_BACKTRACE").is_some() {
                        driver_frames()
                    } else {
                        String::new()
                    };
                    irql::violation(
                        "AllocationAtDispatch",
                        format!(
                            "the driver allocated {} bytes at IRQL {} (no allocation on a \
                             DISPATCH path after start){trace}",
                            layout.size(),
                            irql::current()
                        ),
                    )
                });
            }
            // SAFETY: forwarded with the caller's layout.
            let p = unsafe { System.alloc(layout) };
            if !p.is_null() {
                insert(p as usize, layout.size());
            }
            p
        } else {
            // SAFETY: forwarded with the caller's layout.
            unsafe { System.alloc(layout) }
        }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        remove(ptr as usize);
        // SAFETY: `ptr` came from `System.alloc` with this layout (every path above).
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// The driver's frames of the current backtrace (`VNET_HOST_BACKTRACE=1`), for a violation's
/// detail.
pub fn driver_frames() -> String {
    let bt = std::backtrace::Backtrace::force_capture().to_string();
    let frames: Vec<&str> = bt
        .lines()
        .filter(|l| l.contains("virtionet::") || l.contains("virtio::") || l.contains("offload::"))
        .map(str::trim)
        .take(8)
        .collect();
    format!(" at {}", frames.join(" <- "))
}

/// What the driver holds of the pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolLedger {
    /// Live allocations.
    pub live: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Allocations the driver made since start.
    pub total: u64,
    /// Allocations made to fail.
    pub failed: u64,
    /// The ledger overflowed (its numbers are then a lower bound).
    pub overflow: bool,
}

/// The driver's live pool.
pub fn ledger() -> PoolLedger {
    PoolLedger {
        live: LIVE.load(Ordering::Relaxed),
        bytes: LIVE_BYTES.load(Ordering::Relaxed),
        total: TOTAL.load(Ordering::Relaxed),
        failed: FAILED.load(Ordering::Relaxed),
        overflow: OVERFLOW.load(Ordering::Relaxed),
    }
}

/// Makes the driver allocation after the next `n` fail (`None`: stop failing).
pub fn fail_after(n: Option<u64>) {
    FAIL_IN.store(n.map_or(-1, |n| n as i64), Ordering::Release);
}

/// Whether an injected failure is still pending.
pub fn failure_pending() -> bool {
    FAIL_IN.load(Ordering::Acquire) >= 0
}

/// Turns the allocation-at-DISPATCH rule on or off (on by default).
pub fn dispatch_rule(on: bool) {
    DISPATCH_RULE.store(on, Ordering::Relaxed);
}

/// Forgets the ledger (a new driver load).
pub fn reset() {
    for (a, s) in ADDR.iter().zip(&SIZE) {
        a.store(0, Ordering::Relaxed);
        s.store(0, Ordering::Relaxed);
    }
    LIVE.store(0, Ordering::Relaxed);
    LIVE_BYTES.store(0, Ordering::Relaxed);
    TOTAL.store(0, Ordering::Relaxed);
    FAILED.store(0, Ordering::Relaxed);
    OVERFLOW.store(false, Ordering::Relaxed);
    FAIL_IN.store(-1, Ordering::Relaxed);
}
