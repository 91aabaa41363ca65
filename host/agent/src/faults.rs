//! Faults armed for the next tool call (the TUI's `/inject`), shared by
//! whoever starts that call: the user's own `!cmd`, or the model's next
//! worker call. One slot for both, so a fault armed once fires once.

use std::sync::{Arc, Mutex, PoisonError};

use bulkhead_faults::FaultSpec;

/// The faults waiting for the next tool call. Cloning shares the slot.
#[derive(Debug, Clone, Default)]
pub struct ArmedFaults(Arc<Mutex<Vec<FaultSpec>>>);

impl ArmedFaults {
    /// Arms `specs` for the next call, replacing what was armed.
    pub fn arm(&self, specs: Vec<FaultSpec>) {
        *self.lock() = specs;
    }

    /// Takes what is armed, leaving nothing: the call that takes it is the
    /// one that runs with it.
    pub fn take(&self) -> Vec<FaultSpec> {
        std::mem::take(&mut *self.lock())
    }

    /// What is armed, without taking it.
    pub fn armed(&self) -> Vec<FaultSpec> {
        self.lock().clone()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<FaultSpec>> {
        // A poisoned lock only means a panic elsewhere held it; the list
        // itself is always whole.
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bulkhead_faults::Fault;

    #[test]
    fn a_fault_armed_once_is_taken_once() {
        let armed = ArmedFaults::default();
        let shared = armed.clone();
        armed.arm(vec![FaultSpec::new(Fault::Exit(3))]);
        assert_eq!(shared.armed().len(), 1);
        assert_eq!(shared.take(), vec![FaultSpec::new(Fault::Exit(3))]);
        assert!(armed.is_empty() && armed.take().is_empty());
    }
}
