//! The atomics of the registry's retire/find handshake and of the counters' striped sum
//! (`meter::adder`), taken from `loom` in model checks and from `std` otherwise.
//!
//! Model checks: `RUSTFLAGS="--cfg spectator_loom" cargo test -p spectator --release --lib loom`
//! (see `loom_tests.rs`).

#[cfg(all(spectator_loom, test))]
pub(crate) use loom::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};
#[cfg(not(all(spectator_loom, test)))]
pub(crate) use std::sync::atomic::{fence, AtomicBool, AtomicPtr, AtomicU64, Ordering};

/// Locks `m`, ignoring poisoning: every mutex of this crate guards data that a panic cannot
/// leave half-updated (`()`, whole-value replacements, queues changed by single calls).
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The handshake that keeps a handle from ever writing into a removed meter (see the
/// registry's module docs). Two sides, each a store or an owner-count increment, a `SeqCst`
/// fence, then a load of the other side's variable (Dekker): at least one of them sees the
/// other.
pub(crate) mod retire {
    use super::{fence, AtomicBool, Ordering};

    /// Reader side, after taking a handle (which raised the owner count): whether the handle
    /// may be used. False means the meter is being removed; drop the handle and take the
    /// locked path.
    #[inline]
    pub(crate) fn handle_is_live(retired: &AtomicBool) -> bool {
        fence(Ordering::SeqCst);
        !retired.load(Ordering::Relaxed)
    }

    /// Remover side, with inserts locked out: marks the meter retired and removes it only if
    /// `unowned()` (no handle besides the registry's, and idle) still holds; otherwise clears
    /// the mark. When it returns true, every update made through a handle that has since been
    /// dropped is visible to the caller (the acquire fence pairs with the release of the
    /// handle's drop), so one last measurement takes them all.
    pub(crate) fn try_retire(retired: &AtomicBool, unowned: impl FnOnce() -> bool) -> bool {
        retired.store(true, Ordering::Relaxed);
        fence(Ordering::SeqCst);
        if unowned() {
            fence(Ordering::Acquire);
            true
        } else {
            retired.store(false, Ordering::Relaxed);
            false
        }
    }
}
