//! A byte budget: a semaphore of bytes that each queued message is charged
//! to until it has gone, so that what waits for a slow peer is bounded in
//! bytes, not in messages. Used by every such queue of the gateway's: the
//! notifications for a client (`note_queue`), a server's requests for a
//! client (`gateway`), and what waits for a server to read
//! (`session::to_server`).

use std::sync::Arc;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Charges `len` bytes to `budget` (of `capacity` bytes in all), or `None`
/// when they are not free. A message larger than the whole budget is
/// charged all of it, so it goes alone once nothing else waits instead of
/// never; an empty one is charged a byte, so a flood of them is bounded
/// too.
pub(crate) fn try_charge(
    budget: &Arc<Semaphore>,
    capacity: usize,
    len: usize,
) -> Option<OwnedSemaphorePermit> {
    let charge = u32::try_from(len.clamp(1, capacity)).ok()?;
    budget.clone().try_acquire_many_owned(charge).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_message_over_the_whole_budget_goes_alone() {
        let budget = Arc::new(Semaphore::new(100));
        let big = try_charge(&budget, 100, 1_000).expect("alone, it fits");
        assert!(
            try_charge(&budget, 100, 0).is_none(),
            "even an empty one waits"
        );
        drop(big);
        let small = try_charge(&budget, 100, 0).expect("a byte");
        assert_eq!(budget.available_permits(), 99);
        drop(small);
    }
}
