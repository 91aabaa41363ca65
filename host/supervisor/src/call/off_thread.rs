//! Blocking work of the supervisor, off its async thread, or on it when
//! the OS has no thread to give.
//!
//! tokio's `spawn_blocking` panics when its pool has no idle thread and the
//! OS refuses a new one (EAGAIN). That is the state a fork bomb leaves the
//! machine in under the watchdog, which has no pids cap for root: the
//! supervisor panicked before it killed the bomb, the call ended as
//! "stopped without a report", and its processes lived on. Here a refused
//! thread means the work runs on the calling thread instead: the other tasks
//! of a current-thread runtime wait for it, but it is done.
//!
//! Only for the work that keeps invariant 4 (killing the call's processes,
//! [`run`], on a thread of its own since it is awaited) and the cleanup
//! after it ([`detach`], on tokio's pool, so that a runtime shutting down
//! still waits for the call's cgroups and temp dir to be removed). The
//! cgroup-only steps (`DeferredAttach`, the spare cage) stay on tokio's
//! pool: on those paths the call's pids cgroup keeps a fork bomb from
//! taking the host's threads.
//!
//! Both hand the job over through a [`Slot`] shared with the thread or task
//! that should run it: when no thread comes, the job is still in the slot,
//! and taking it there means it runs exactly once.

use std::sync::{Arc, Mutex};
use std::thread::Builder;

use tokio::sync::oneshot;

/// Runs `f` on a new thread named `name` and waits for its result; runs it
/// here if no thread can be had. `None` only if `f` panicked.
pub(crate) async fn run<T: Send + 'static>(
    name: &str,
    f: impl FnOnce() -> T + Send + 'static,
) -> Option<T> {
    let (tx, rx) = oneshot::channel();
    let job = move || {
        let _ = tx.send(f());
    };
    if let Some(job) = spawn_or_return(Builder::new().name(name.to_owned()), job) {
        job();
    }
    rx.await.ok()
}

/// Like [`run`] without waiting: the result is not wanted. On tokio's
/// blocking pool, so a runtime that shuts down (the CLI's, at exit) still
/// waits for it; only if that pool cannot get a thread does it run here.
/// tokio signals that by panicking (after it queued the task), so the panic
/// is caught, and the job is taken from a slot shared with the queued task,
/// which then finds it gone if it ever runs.
pub(crate) fn detach(f: impl FnOnce() + Send + 'static) {
    let slot = Slot::new(f);
    let theirs = slot.clone();
    let queued = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        tokio::task::spawn_blocking(move || theirs.run())
    }));
    if queued.is_err() {
        tracing::warn!("no blocking thread to be had; cleaning up on the supervisor's thread");
        slot.run();
    }
}

/// Starts `f` on a thread from `builder`, or gives it back if the OS
/// refused one.
fn spawn_or_return<F: FnOnce() + Send + 'static>(builder: Builder, f: F) -> Option<F> {
    let slot = Slot::new(f);
    let theirs = slot.clone();
    match builder.spawn(move || theirs.run()) {
        Ok(_) => None,
        Err(e) => {
            tracing::warn!(error = %e, "no thread to be had; running the work on the supervisor's thread");
            slot.take()
        }
    }
}

/// A job that whoever takes it first runs: the thread or task it was handed
/// to, or, when that never came to be, the caller.
struct Slot<F>(Arc<Mutex<Option<F>>>);

impl<F> Clone for Slot<F> {
    fn clone(&self) -> Self {
        Slot(Arc::clone(&self.0))
    }
}

impl<F: FnOnce()> Slot<F> {
    fn new(f: F) -> Self {
        Slot(Arc::new(Mutex::new(Some(f))))
    }

    fn take(&self) -> Option<F> {
        self.0.lock().ok().and_then(|mut job| job.take())
    }

    fn run(&self) {
        if let Some(job) = self.take() {
            job();
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};

    use super::*;

    #[tokio::test]
    async fn the_work_runs_on_its_own_thread_and_comes_back() {
        let here = std::thread::current().id();
        let there = run("test-off-thread", move || std::thread::current().id())
            .await
            .expect("a result");
        assert_ne!(here, there);
    }

    #[test]
    fn detached_work_runs_and_the_runtime_waits_for_it() {
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let rt = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        rt.block_on(async move {
            detach(move || {
                std::thread::sleep(std::time::Duration::from_millis(50));
                flag.store(true, Ordering::SeqCst);
            })
        });
        drop(rt);
        assert!(
            ran.load(Ordering::SeqCst),
            "shutdown did not wait for the cleanup"
        );
    }

    #[test]
    fn a_refused_thread_hands_the_work_back() {
        // A stack no machine can map: the spawn fails as it does when the
        // OS has no thread left.
        let refused = Builder::new().stack_size(usize::MAX / 2);
        let ran = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&ran);
        let job = spawn_or_return(refused, move || flag.store(true, Ordering::SeqCst))
            .expect("the job comes back when no thread can be had");
        assert!(!ran.load(Ordering::SeqCst));
        job();
        assert!(ran.load(Ordering::SeqCst));
    }
}
