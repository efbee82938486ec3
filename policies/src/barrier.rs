//! An asymmetric memory barrier: a fence that costs nothing on the side that
//! runs all the time, and a few hundred nanoseconds on the side that runs
//! rarely.
//!
//! # Why
//!
//! The pool's per-thread slots follow Dekker's pattern. The slot's own thread
//! (the *fast* side) marks itself busy, then reads whether a thief is about;
//! a thief (the *slow* side: another thread taking idle values for reuse or
//! for `trim`) announces itself, then reads whether the owner is busy. Each
//! side stores, then loads another location, so each needs a store-load
//! fence between the two, or both may read the other's old value and both go
//! ahead. A `SeqCst` fence on the fast side costs 10 to 30 ns on every get:
//! more than the rest of the get together.
//!
//! Linux's `membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED)` moves that cost to
//! the slow side: it runs a full memory barrier on every CPU that is running
//! a thread of this process at the time of the call (by interrupting them),
//! and orders the caller's own accesses around it. So the fast side needs
//! only a compiler fence (the compiler must not move the load above the
//! store; the CPU may, until the interrupt drains its store buffer), and the
//! slow side calls [`heavy`]. Folly (`AsymmetricMemoryBarrier`), liburcu and
//! the proposed `std::asymmetric_thread_fence_{light,heavy}` (P1202) rest on
//! the same guarantee.
//!
//! # The argument, for one fast-side operation F and one heavy barrier H
//!
//! H acts on the fast side's CPU at some point P of the fast thread's
//! execution, as a full fence would, and it is ordered after everything the
//! thief did before calling it and before everything it does after.
//!
//! - If P comes before F's busy store: the thief's announcement is visible
//!   to the fast thread after P, so F's load sees it, and F backs off.
//! - If P comes after F's busy store: that store is visible to the thief
//!   after H, so the thief's load sees "busy" (or a later store: the end of
//!   F, published with `Release`, after which the thief may go ahead), and
//!   the thief backs off.
//!
//! Either way the two never both go ahead on the same data.
//!
//! # Fallback
//!
//! Where membarrier is missing or refused (another OS, a kernel older than
//! 4.14, a seccomp filter), both sides use a `SeqCst` fence, which makes the
//! same argument hold in the language's own memory model. Windows has the
//! same heavy barrier (`FlushProcessWriteBuffers`), but it is not wired in:
//! the project's machine has no Windows target to build or test it on, and
//! an untested barrier is worse than the fallback, which is correct
//! everywhere and costs the fast side a fence. The choice is made
//! once per process, the first time it is needed; setting the environment
//! variable `MEMPOOL_BARRIER=fence` before that forces the fallback, so that
//! tests can cover both. Under `--cfg loom` the fallback is the only mode,
//! which is what loom can model.
//!
//! The fast side does not test the mode on every operation. A thief's
//! announcement lives in a *steal word* per slot; in fallback mode every steal
//! word carries the bit [`FENCE`] from its creation, so the fast side, which
//! reads its steal word anyway, sees a non-zero word, leaves the fast path,
//! and issues the `SeqCst` fence itself ([`light_fallback`]) before reading
//! the word again. With membarrier, steal words are 0 when no thief is
//! about, and the fast path costs a compiler fence and one load.

use crate::sync::{compiler_fence, fence, Ordering};

/// Steal-word bit: this process has no heavy barrier, so the fast side must
/// issue a `SeqCst` fence before it trusts its steal word.
pub const FENCE: u8 = 1;

/// What every steal word starts as: [`FENCE`] in fallback mode, else 0.
pub fn initial_word() -> u8 {
    if membarrier::available() {
        0
    } else {
        FENCE
    }
}

/// The fast side's half, between its busy store and its steal-word load: a
/// compiler fence only.
#[inline(always)]
pub fn light() {
    compiler_fence(Ordering::SeqCst);
}

/// The fast side's half in fallback mode (its steal word had [`FENCE`] set).
#[inline(never)]
pub fn light_fallback() {
    fence(Ordering::SeqCst);
}

/// The slow side's half, between its announcement and its busy load.
pub fn heavy() {
    if !membarrier::issue() {
        fence(Ordering::SeqCst);
    }
}

/// Whether this process uses membarrier (else the `SeqCst` fallback). The
/// answer is fixed once asked.
pub fn uses_membarrier() -> bool {
    membarrier::available()
}

#[cfg(all(target_os = "linux", not(loom)))]
mod membarrier {
    use std::sync::atomic::{AtomicU8, Ordering};

    const CMD_QUERY: libc::c_int = 0;
    const CMD_PRIVATE_EXPEDITED: libc::c_int = 1 << 3;
    const CMD_REGISTER_PRIVATE_EXPEDITED: libc::c_int = 1 << 4;

    fn membarrier(cmd: libc::c_int) -> libc::c_long {
        // SAFETY: membarrier(2) takes a command, flags (which must be 0) and
        // a CPU id (ignored without MEMBARRIER_CMD_FLAG_CPU); it reads and
        // writes no memory of ours, so any argument values are memory-safe.
        // An unknown command or a kernel without the call returns -1.
        unsafe {
            libc::syscall(
                libc::SYS_membarrier,
                cmd,
                0 as libc::c_uint,
                0 as libc::c_int,
            )
        }
    }

    /// Not asked yet; then `YES` or `NO`.
    const UNKNOWN: u8 = 0;
    const YES: u8 = 1;
    const NO: u8 = 2;

    /// Registers the process once; false where the kernel lacks the command,
    /// refuses it, or the user forced the fallback.
    pub(super) fn available() -> bool {
        static AVAILABLE: AtomicU8 = AtomicU8::new(UNKNOWN);
        match AVAILABLE.load(Ordering::Acquire) {
            YES => true,
            NO => false,
            _ => decide(&AVAILABLE),
        }
    }

    /// The first caller's answer, for every caller: two threads that both
    /// find `UNKNOWN` both ask (registering twice is harmless, and the
    /// environment is the same), and the first answer stored is kept.
    #[cold]
    fn decide(available: &AtomicU8) -> bool {
        let forced = std::env::var_os("MEMPOOL_BARRIER").map_or(false, |v| v == "fence");
        let yes = !forced && {
            let supported = membarrier(CMD_QUERY);
            supported >= 0
                && supported & libc::c_long::from(CMD_PRIVATE_EXPEDITED) != 0
                && membarrier(CMD_REGISTER_PRIVATE_EXPEDITED) == 0
        };
        let answer = if yes { YES } else { NO };
        match available.compare_exchange(UNKNOWN, answer, Ordering::AcqRel, Ordering::Acquire) {
            Ok(_) => yes,
            Err(first) => first == YES,
        }
    }

    /// Issues the heavy barrier; false if this process runs the fallback.
    pub(super) fn issue() -> bool {
        if !available() {
            return false;
        }
        // Registered, so it cannot fail with EPERM; it has no other failure
        // for this command. If it ever did fail, every steal word would still
        // carry no FENCE bit, so fail loudly rather than risk a race.
        assert_eq!(
            membarrier(CMD_PRIVATE_EXPEDITED),
            0,
            "membarrier(MEMBARRIER_CMD_PRIVATE_EXPEDITED) failed after registration"
        );
        true
    }
}

#[cfg(not(all(target_os = "linux", not(loom))))]
mod membarrier {
    pub(super) fn available() -> bool {
        false
    }

    pub(super) fn issue() -> bool {
        false
    }
}

#[cfg(all(test, not(loom)))]
mod tests {
    use super::*;

    #[test]
    fn the_mode_is_fixed_and_matches_the_initial_word() {
        let first = uses_membarrier();
        assert_eq!(initial_word() == 0, first);
        heavy();
        assert_eq!(uses_membarrier(), first);
        let forced = std::env::var_os("MEMPOOL_BARRIER").map_or(false, |v| v == "fence");
        if forced || !cfg!(target_os = "linux") {
            assert!(!first, "the fallback was asked for");
        }
    }
}
