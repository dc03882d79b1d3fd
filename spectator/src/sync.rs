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
/// registry's module docs). Two sides, each a store or an owner-count increment, a full
/// barrier, then a load of the other side's variable (Dekker): at least one of them sees the
/// other. The barrier is asymmetric where the OS allows it ([`barrier`]): the reader, on every
/// lookup, pays only a compiler fence; the remover, once per poll that removes meters, pays a
/// system call that makes every thread of the process pass a full barrier.
pub(crate) mod retire {
    use super::{barrier, fence, AtomicBool, Ordering};

    /// Reader side, after taking a handle (which raised the owner count): whether the handle
    /// may be used. False means the meter is being removed; drop the handle and take the
    /// locked path.
    #[inline]
    pub(crate) fn handle_is_live(retired: &AtomicBool) -> bool {
        barrier::light();
        !retired.load(Ordering::Relaxed)
    }

    /// Remover side, with inserts locked out: marks every candidate retired, passes one
    /// heavy barrier, then keeps the mark (and returns the candidate) only where `unowned`
    /// (no handle besides the registry's, and idle) still holds; elsewhere the mark is
    /// cleared. For a returned candidate, every update made through a handle that has since
    /// been dropped is visible to the caller (the acquire fence pairs with the release of the
    /// handle's drop), so one last measurement takes them all. Returns nothing, marks cleared,
    /// when the barrier cannot be passed (the meters stay; a later poll tries again).
    pub(crate) fn try_retire_all<'a, T>(
        candidates: &[&'a T],
        retired: impl Fn(&T) -> &AtomicBool,
        unowned: impl Fn(&T) -> bool,
    ) -> Vec<&'a T> {
        for c in candidates {
            retired(c).store(true, Ordering::Relaxed);
        }
        let passed = barrier::heavy();
        let mut removed = Vec::new();
        for &c in candidates {
            if passed && unowned(c) {
                removed.push(c);
            } else {
                retired(c).store(false, Ordering::Relaxed);
            }
        }
        if !removed.is_empty() {
            fence(Ordering::Acquire);
        }
        removed
    }
}

/// A full barrier split in two unequal halves (the technique behind Linux RCU and folly's
/// `asymmetric_thread_fence_*`): [`light`] on the frequent side, [`heavy`] on the rare side,
/// and together they order like a `SeqCst` fence on both sides.
///
/// On Linux, `heavy` is `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)`: the kernel makes every
/// running thread of the process execute a full memory barrier before the call returns (a
/// thread not running passes one when it is scheduled), so `light` only has to keep the
/// compiler from reordering. Where the command is not available (another OS, an old kernel,
/// a seccomp filter that refuses it, loom models), both halves are `SeqCst` fences. The
/// choice is made once, by [`init`], before the first registry exists, and never changes.
pub(crate) mod barrier {
    use super::{fence, Ordering};
    #[cfg(not(all(spectator_loom, test)))]
    use std::sync::atomic::AtomicBool;

    /// Whether the halves are asymmetric (set once by `init`, before any reader can run).
    #[cfg(not(all(spectator_loom, test)))]
    static ASYMMETRIC: AtomicBool = AtomicBool::new(false);

    /// Chooses the mode; called by every registry build (the first call decides).
    pub(crate) fn init() {
        #[cfg(not(all(spectator_loom, test)))]
        {
            static ONCE: std::sync::Once = std::sync::Once::new();
            ONCE.call_once(|| ASYMMETRIC.store(os::register(), Ordering::Relaxed));
        }
    }

    /// The frequent half.
    #[inline]
    pub(crate) fn light() {
        #[cfg(not(all(spectator_loom, test)))]
        if ASYMMETRIC.load(Ordering::Relaxed) {
            std::sync::atomic::compiler_fence(Ordering::SeqCst);
            return;
        }
        fence(Ordering::SeqCst);
    }

    /// The rare half; false when it could not be passed (then nothing may rely on it).
    pub(crate) fn heavy() -> bool {
        #[cfg(not(all(spectator_loom, test)))]
        if ASYMMETRIC.load(Ordering::Relaxed) {
            return os::expedited();
        }
        fence(Ordering::SeqCst);
        true
    }

    #[cfg(all(target_os = "linux", not(all(spectator_loom, test))))]
    mod os {
        const PRIVATE_EXPEDITED: libc::c_long = 1 << 3;
        const REGISTER_PRIVATE_EXPEDITED: libc::c_long = 1 << 4;

        fn membarrier(cmd: libc::c_long) -> bool {
            // SAFETY: membarrier takes two integers and touches no memory of ours.
            unsafe { libc::syscall(libc::SYS_membarrier, cmd, 0 as libc::c_long) == 0 }
        }

        /// Registers the process for expedited barriers; false where that is refused.
        pub(super) fn register() -> bool {
            membarrier(REGISTER_PRIVATE_EXPEDITED) && membarrier(PRIVATE_EXPEDITED)
        }

        /// One expedited barrier. A forked child is not registered (registration belongs to
        /// the address space): register again and retry once.
        pub(super) fn expedited() -> bool {
            membarrier(PRIVATE_EXPEDITED) || (register() && membarrier(PRIVATE_EXPEDITED))
        }
    }

    #[cfg(all(not(target_os = "linux"), not(all(spectator_loom, test))))]
    mod os {
        pub(super) fn register() -> bool {
            false
        }
        pub(super) fn expedited() -> bool {
            false
        }
    }

    /// Whether the asymmetric halves are in use (for tests).
    #[cfg(all(test, not(spectator_loom)))]
    pub(crate) fn asymmetric() -> bool {
        ASYMMETRIC.load(Ordering::Relaxed)
    }
}

#[cfg(all(test, not(spectator_loom)))]
mod tests {
    use super::barrier;

    #[test]
    fn barrier_halves_pass() {
        barrier::init();
        barrier::light();
        assert!(barrier::heavy());
        // Linux machines here allow membarrier; elsewhere the fences are symmetric.
        if cfg!(target_os = "linux") && std::env::var_os("SPECTATOR_EXPECT_SYMMETRIC").is_none() {
            assert!(
                barrier::asymmetric(),
                "membarrier refused on this Linux machine"
            );
        }
    }
}
