//! The end of a call whose worker ran: every process killed, the worker
//! reaped, the outcome decided, the report built.

use tokio::sync::mpsc;

use super::start::Running;
use super::{EXIT_GRACE, Leftovers, Supervisor, off_thread};
use crate::outcome::Outcome;
use crate::report::{CallEvent, CallReport};

/// Ends a call after [`super::supervise::supervise`], in this order:
///
/// 1. withdraws the worker's pid from the handle, since the worker is
///    about to be reaped;
/// 2. waits for the background attach to the kill cgroup, which writes the
///    worker's pid and so must finish before that pid is freed;
/// 3. gives a worker that has reported its end up to [`EXIT_GRACE`] to
///    exit on its own, reaping it if it does;
/// 4. samples the cage a last time, and reads whether its memory cap fired;
/// 5. kills every process of the call ([`crate::enforce::Cage::kill_all`]),
///    unless the cage is known to be empty, then kills and reaps the worker;
/// 6. decides the outcome: the host's `verdict` if it had one, else from
///    the worker's report and exit status;
/// 7. shuts the call's egress proxy down, if it has one, and keeps its log;
/// 8. answers a streamed call's open requests and builds the report.
///
/// The cage and the temp dir are returned for removal after the report is
/// sent.
pub(super) async fn teardown(
    mut sup: Supervisor<'_>,
    run: Running,
    verdict: Option<Outcome>,
    events: &mpsc::UnboundedSender<CallEvent>,
) -> (CallReport, Leftovers) {
    let Running {
        published_pid,
        mut child,
        mut cage,
        kill_attach,
        stderr_tail,
        _permit,
        ..
    } = run;
    // Any wait below may reap the worker, after which its pid can name
    // another process: the handle must not offer it any more.
    drop(published_pid);
    // The background attach writes the worker's pid: it must be done
    // before anything below reaps the worker and frees that pid.
    if let Some(task) = kill_attach {
        match task.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "worker not in its kill cgroup; killing it member by member")
            }
            Err(e) => tracing::warn!(error = %e, "the kill cgroup attach did not finish"),
        }
    }
    // Let a worker that reported exit on its own; kill anything else.
    let status = if verdict.is_none() && sup.validator.ended() {
        tokio::time::timeout(EXIT_GRACE, child.wait())
            .await
            .ok()
            .and_then(Result::ok)
    } else {
        None
    };
    let final_sample = cage.sample();
    sup.observe(
        final_sample.rss_bytes,
        final_sample.peak_rss_bytes,
        final_sample.cpu_ms,
    );
    let memory_hit = cage.memory_limit_hit();
    // Killing may block (it polls until the cgroup is empty), so it runs
    // on a blocking thread; it is awaited, because no process of the call
    // may outlive its report.
    // If the kill panicked, the cage went down with it, and its Drop has
    // killed again; there is nothing left to remove. It runs on a thread of
    // its own even where tokio's pool could not get one (see `off_thread`).
    // A cage known empty (the usual end: the worker exited after its
    // report, and its own teardown killed what it started) skips the hop.
    let cage = if cage.known_empty() {
        Some(cage)
    } else {
        off_thread::run("bulkhead-kill", move || {
            cage.kill_all();
            cage
        })
        .await
    };
    let _ = child.start_kill();
    let status = match status {
        Some(s) => Some(s),
        None => child.wait().await.ok(),
    };
    // A worker that died on its own (EOF with no report) may have been
    // killed by the kernel: the OOM killer on a cgroup, or RLIMIT_CPU.
    let outcome = match verdict {
        Some(o) => o,
        None => sup.outcome_from_worker(status, memory_hit),
    };
    // Every process of the call is dead: nothing can open a connection
    // any more, so the proxy's log is final once it has closed them.
    if let Some(egress) = sup.egress.take() {
        sup.egress_report = Some(egress.finish().await);
    }
    let stderr = stderr_tail.await.unwrap_or_default();
    sup.answer_open_requests(&outcome, events);
    let tmp = sup.tmp.take();
    (sup.finish(outcome, stderr), Leftovers { cage, tmp })
}
