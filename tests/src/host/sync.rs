//! WDF spin locks as the host emulates them: a real lock between the host's threads,
//! `WdfSpinLockAcquire` raising the caller to DISPATCH_LEVEL and `WdfSpinLockRelease` restoring
//! the level it had ("For KMDF, the method returns at IRQL = DISPATCH_LEVEL"; "WdfSpinLockRelease
//! also restores the driver's IRQL to the value that it had before", WdfSpinLockAcquire /
//! WdfSpinLockRelease pages), recursion refused (the SpinLock DDI-compliance rule: "Nested calls
//! to acquire or release locks for the same resources violate this rule"), and every hold timed
//! against a budget, as the DPC watchdog would time a DPC that spins.
//!
//! The host's own time inside a hold is not the driver's: a hold's time is the holding thread's
//! CPU time ([`thread_cpu`]: a preempted host thread is not a driver spinning) minus the CPU time
//! spent in the host (emulated framework routines, register accesses over qtest), plus
//! [`REGISTER_COST`] per register access (a real MMIO exit) and [`ROUTINE_COST`] per framework
//! routine called.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::ThreadId;
use std::time::{Duration, Instant};

use super::irql;

/// What one register access costs on real hardware under a hypervisor (an MMIO VM exit).
pub const REGISTER_COST: Duration = Duration::from_micros(5);

/// What one framework routine costs (a generous figure for a WDF/NetAdapterCx call).
pub const ROUTINE_COST: Duration = Duration::from_micros(1);

/// The most a spin lock may be held (DPC-watchdog budget the host holds the driver to; Microsoft
/// asks DPCs to stay under 100 µs, and a spin lock held for milliseconds stalls every waiter at
/// DISPATCH_LEVEL).
pub const HOLD_BUDGET: Duration = Duration::from_millis(10);

/// The calling thread's CPU time. Hold times are CPU time, not wall time: on Windows a thread
/// holding a spin lock runs at DISPATCH_LEVEL and cannot be preempted, so its hold is the
/// processor time it spends; here the scheduler may preempt it (other tests, other builds), and
/// wall time would count that against the driver.
pub fn thread_cpu() -> Duration {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: a valid out pointer; CLOCK_THREAD_CPUTIME_ID exists on Linux.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    if rc != 0 {
        return Duration::ZERO;
    }
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Host time, register accesses and routine calls on one thread (accumulating).
#[derive(Debug, Clone, Copy, Default)]
struct Emulated {
    host: Duration,
    registers: u64,
    routines: u64,
}

thread_local! {
    static EMULATED: Cell<Emulated> = const {
        Cell::new(Emulated { host: Duration::ZERO, registers: 0, routines: 0 })
    };
}

/// Records time the thread spent in the host.
pub fn charge_host(t: Duration) {
    EMULATED.with(|e| {
        let mut x = e.get();
        x.host += t;
        e.set(x);
    });
}

/// Records one register access.
pub fn count_register() {
    EMULATED.with(|e| {
        let mut x = e.get();
        x.registers += 1;
        e.set(x);
    });
}

/// Records one framework routine call.
pub fn count_routine() {
    EMULATED.with(|e| {
        let mut x = e.get();
        x.routines += 1;
        e.set(x);
    });
}

fn emulated() -> Emulated {
    EMULATED.with(Cell::get)
}

/// Who holds a lock: thread, the IRQL to restore, its CPU time then, register time and count
/// then.
type Holder = (ThreadId, u8, Duration, Emulated);

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
            Some((me, old, thread_cpu(), emulated()));
        self.acquisitions.fetch_add(1, Ordering::Relaxed);
    }

    /// Releases, returning the caller to the level it had; the caller must be at `level`.
    pub fn release_at(&self, level: u8) {
        let me = std::thread::current().id();
        let taken = self.owner.lock().unwrap_or_else(|e| e.into_inner()).take();
        let Some((t, old, since, e0)) = taken else {
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
        let e1 = emulated();
        let cpu = thread_cpu().saturating_sub(since);
        let regs = e1.registers - e0.registers;
        let held = cpu.saturating_sub(e1.host.saturating_sub(e0.host))
            + REGISTER_COST * regs as u32
            + ROUTINE_COST * (e1.routines - e0.routines) as u32;
        self.longest_ns
            .fetch_max(held.as_nanos() as u64, Ordering::Relaxed);
        if held > HOLD_BUDGET {
            irql::violation(
                "SpinLockHeldTooLong",
                format!(
                    "spin lock {:#x} held {held:?} ({} register accesses; budget {HOLD_BUDGET:?})",
                    self.handle, regs
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
