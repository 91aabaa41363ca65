//! A cage built before the call that will use it.
//!
//! A call's cgroups must exist before its worker is spawned (the worker is
//! born in them, see `carry`), so building them sits on the call's
//! critical path: on a hybrid host three `mkdir`s and four limit writes, a
//! sizeable part of what starting a short call costs. A host that makes
//! calls one after another builds the next
//! call's cage while the current call's worker starts (the host only waits
//! for its Hello then), and the next call takes it ready.
//!
//! Nothing about the isolation changes: a spare is a set of new, empty
//! cgroups with the limits of the call that prompted it; the call that
//! takes it is the only one that ever runs in it.
//!
//! # Caveats
//! - Only a spare with exactly the requested limits is taken. Otherwise the
//!   call builds its own cage and the spare waits for a call that matches
//!   (or is replaced by the next prepare).
//! - At most one spare exists per `Enforcer`; concurrent calls beyond the
//!   first build their own.
//! - A spare lives until it is taken or the `Enforcer` is dropped. A host
//!   that dies leaves it behind like any call cgroup; it is named
//!   `h<pid>-<start>-s<n>`, which the next host's stale sweep removes.
//! - Watchdog mode has nothing to build, and prepares nothing.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::{Cage, CageLimits};

/// Numbers the spares' cgroup names (`…-s<n>`), which must differ from
/// every call's (`…-c<id>`) and from each other across every `Enforcer` of
/// the process (tests and embedders run several).
static NEXT_SPARE: AtomicU64 = AtomicU64::new(1);

/// A number for the next spare's name.
pub(crate) fn next_seq() -> u64 {
    NEXT_SPARE.fetch_add(1, Ordering::Relaxed)
}

/// The one spare of an [`super::Enforcer`].
#[derive(Debug, Default)]
pub(crate) struct SpareSlot {
    slot: Mutex<Option<(CageLimits, Cage)>>,
}

impl SpareSlot {
    /// The spare, if one with exactly `limits` is ready.
    pub(crate) fn take(&self, limits: &CageLimits) -> Option<Cage> {
        let mut slot = self.slot.lock().ok()?;
        match slot.as_ref() {
            Some((l, _)) if l == limits => slot.take().map(|(_, cage)| cage),
            _ => None,
        }
    }

    /// True if a spare with `limits` is ready (nothing to prepare).
    pub(crate) fn holds(&self, limits: &CageLimits) -> bool {
        self.slot
            .lock()
            .is_ok_and(|s| s.as_ref().is_some_and(|(l, _)| l == limits))
    }

    /// Stores `cage` as the spare. A spare already there with the same
    /// limits wins (another call prepared it meanwhile) and `cage` is
    /// returned to be dropped; one with other limits is replaced and
    /// returned. Dropping happens at the caller, outside the lock: it
    /// removes cgroups.
    pub(crate) fn offer(&self, limits: CageLimits, cage: Cage) -> Option<Cage> {
        let Ok(mut slot) = self.slot.lock() else {
            return Some(cage);
        };
        match slot.as_ref() {
            Some((l, _)) if *l == limits => Some(cage),
            _ => slot.replace((limits, cage)).map(|(_, old)| old),
        }
    }
}
