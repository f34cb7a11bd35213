//! WDF spin locks as the host emulates them: a real lock between the host's threads,
//! `WdfSpinLockAcquire` raising the caller to DISPATCH_LEVEL and `WdfSpinLockRelease` restoring
//! the level it had ("For KMDF, the method returns at IRQL = DISPATCH_LEVEL"; "WdfSpinLockRelease
//! also restores the driver's IRQL to the value that it had before", WdfSpinLockAcquire /
//! WdfSpinLockRelease pages), recursion refused (the SpinLock DDI-compliance rule: "Nested calls
//! to acquire or release locks for the same resources violate this rule"), and every hold timed
//! against a budget, as the DPC watchdog would time a DPC that spins.
//!
//! Register accesses inside a hold are charged at a real MMIO exit's cost, not at qtest's
//! round trip (tens of microseconds): a hold's time is its wall time minus the emulated register
//! time, plus [`REGISTER_COST`] per access.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::irql;

/// What one register access costs on real hardware under a hypervisor (an MMIO VM exit).
pub const REGISTER_COST: Duration = Duration::from_micros(5);

/// The most a spin lock may be held (DPC-watchdog budget the host holds the driver to; Microsoft
/// asks DPCs to stay under 100 µs, and a spin lock held for milliseconds stalls every waiter at
/// DISPATCH_LEVEL).
pub const HOLD_BUDGET: Duration = Duration::from_millis(10);

thread_local! {
    /// Emulated register time and count on this thread (accumulating).
    static REGISTERS: Cell<(Duration, u64)> = const { Cell::new((Duration::ZERO, 0)) };
}

/// Records one emulated register access that took `t`.
pub fn charge_register(t: Duration) {
    REGISTERS.with(|r| {
        let (d, n) = r.get();
        r.set((d + t, n + 1));
    });
}

fn registers() -> (Duration, u64) {
    REGISTERS.with(Cell::get)
}

/// Who holds a lock: thread, the IRQL to restore, since when, register time and count then.
type Holder = (ThreadId, u8, Instant, (Duration, u64));

/// One WDFSPINLOCK.
pub struct SpinLock {
    handle: usize,
    held: AtomicBool,
    owner: std::sync::Mutex<Option<Holder>>,
    /// Longest hold seen, in nanoseconds (adjusted as the module says).
    pub longest_ns: AtomicU64,
    /// Acquisitions.
    pub acquisitions: AtomicU64,
}

impl SpinLock {
    /// A free lock.
    pub fn new(handle: usize) -> Self {
        Self {
            handle,
            held: AtomicBool::new(false),
            owner: std::sync::Mutex::new(None),
            longest_ns: AtomicU64::new(0),
            acquisitions: AtomicU64::new(0),
        }
    }

    /// `WdfSpinLockAcquire`: raises to DISPATCH_LEVEL.
    pub fn acquire(&self) {
        self.acquire_at(irql::DISPATCH);
    }

    /// `WdfSpinLockRelease`: expects DISPATCH_LEVEL.
    pub fn release(&self) {
        self.release_at(irql::DISPATCH);
    }

    /// Acquires, raising the caller to `level` (DISPATCH_LEVEL for a spin lock, DIRQL for an
    /// interrupt's lock).
    pub fn acquire_at(&self, level: u8) {
        let me = std::thread::current().id();
        if let Some((t, ..)) = *self.owner.lock().unwrap_or_else(|e| e.into_inner())
            && t == me
        {
            irql::violation(
                "SpinLockRecursion",
                format!("spin lock {:#x} acquired again by its holder", self.handle),
            );
            return;
        }
        let old = irql::set(level.max(irql::current()));
        let deadline = Instant::now() + Duration::from_secs(20);
        while self
            .held
            .compare_exchange_weak(false, true, Ordering::Acquire, Ordering::Relaxed)
            .is_err()
        {
            if Instant::now() > deadline {
                irql::violation(
                    "SpinLockDeadlock",
                    format!("spin lock {:#x} not acquired in 20 s", self.handle),
                );
                irql::set(old);
                return;
            }
            std::thread::yield_now();
        }
        *self.owner.lock().unwrap_or_else(|e| e.into_inner()) =
            Some((me, old, Instant::now(), registers()));
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Releases, returning the caller to the level it had; the caller must be at `level`.
    pub fn release_at(&self, level: u8) {
        let me = std::thread::current().id();
        let taken = self.owner.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((t, old, since, (reg0, n0))) = taken else {
            irql::violation(
                "SpinLockReleaseNotHeld",
                format!("spin lock {:#x} released while free", self.handle),
            );
            return;
        };
        if t != me {
            irql::violation(
                "SpinLockReleaseNotHeld",
                format!("spin lock {:#x} released by another thread", self.handle),
            );
        }
        if irql::current() != level {
            irql::violation(
                "IrqlKeReleaseSpinLock",
                format!("spin lock released at IRQL {}", irql::current()),
            );
        }
        let (reg1, n1) = registers();
        let wall = since.elapsed();
        let emulated = reg1.saturating_sub(reg0);
        let held = wall.saturating_sub(emulated) + REGISTER_COST * (n1 - n0) as u32;
        self.longest_ns
            .fetch_max(held.as_nanos() as u64, Ordering::Relaxed);
        if held > HOLD_BUDGET {
            irql::violation(
                "SpinLockHeldTooLong",
                format!(
                    "spin lock {:#x} held {held:?} ({} register accesses; budget {HOLD_BUDGET:?})",
                    self.handle,
                    n1 - n0
                ),
            );
        }
        self.held.store(false, Ordering::Release);
        irql::set(old);
    }

    /// The longest hold seen.
    pub fn longest(&self) -> Duration {
        Duration::from_nanos(self.longest_ns.load(Ordering::Relaxed))
    }
}
