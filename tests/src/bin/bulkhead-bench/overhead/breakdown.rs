//! Where a call's time goes, part by part, each timed on its own:
//!
//! - **worker exec**: `bulkhead-worker --version` spawned and waited for
//!   (loading the binary, no confinement, no protocol).
//! - **worker call without host**: the bench speaks the protocol to a
//!   worker itself (Hello, Invoke, Credit; read to `Done`; wait), with no
//!   cage and no `ToolHost`: the worker's own cost, confinement included.
//! - **cage** parts, per mechanism, on a dummy child (`sleep`): create
//!   (`Enforcer::cage`), `attach`, one `sample`, `kill_all` on the emptied
//!   cage (as at the end of a call, after the worker was reaped), and drop
//!   (removes the cgroups; in a real call this runs after the report).
//! - **one /proc walk**: reading every `/proc/N/stat`, which the worker's
//!   teardown (`tree::descendants`) does twice per call, and the watchdog's
//!   `sample` and `kill_all` do on the host side.
//! - **host + cage**: the call's median minus the worker call's: what
//!   `ToolHost` and the cage add (tokio tasks, the spawner thread's hop, the
//!   stderr pipe, sampling, cgroup writes, the report). The cage parts are
//!   also timed alone, but they overlap the worker's start on a second
//!   core, so they do not add up to it.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_host::enforce::{CageLimits, Enforcer, MemoryMechanism};
use bulkhead_host::{CallLimits, VERSION};
use bulkhead_ipc::transport::HostChannel;
use bulkhead_ipc::{
    AsyncFrameReader, AsyncFrameWriter, DEFAULT_MAX_FRAME_BYTES, HostMessage, Invoke,
    PROTOCOL_VERSION, WorkerMessage,
};

use super::{BENCH, N, WARMUP, repeat, spawn_wait};
use crate::{Row, Stats, ms};

/// Chunks granted up front, as the host does (its `CREDIT_WINDOW`).
const CREDIT: u32 = 16;

/// Call ids of the bench's own cages start here, far above the ids the
/// `ToolHost`s of this process hand out (from 1, a few hundred calls), so
/// cgroup names never collide.
const FIRST_CAGE_ID: u64 = 1_000_000;

pub fn run(
    rt: &tokio::runtime::Runtime,
    worker: &Path,
    file: &Path,
    baseline: &Stats,
    calls: &[(MemoryMechanism, Stats)],
) {
    let exec = Stats::of(&repeat(|| {
        spawn_wait(
            Command::new(worker)
                .arg("--version")
                .stdout(Stdio::null())
                .stdin(Stdio::null()),
        )
    }));
    part(
        "worker exec (`bulkhead-worker --version`)",
        &exec,
        baseline,
        "exec",
    );

    let mut processes = 0;
    let walk = Stats::of(&repeat(|| {
        let (took, n) = proc_walk();
        processes = n;
        took
    }));
    part(
        &format!(
            "one /proc walk ({processes} processes; the worker's teardown does 2 per call when the tool started processes, none otherwise)"
        ),
        &walk,
        baseline,
        "proc-walk",
    );

    let args = super::trivial_request(file).args_json;
    let mut call_id = 0;
    let direct = Stats::of(&repeat(|| {
        call_id += 1;
        rt.block_on(direct_call(worker, &args, call_id))
    }));
    part(
        "worker call without host (no cage, no ToolHost)",
        &direct,
        baseline,
        "direct",
    );

    let mut next_id = FIRST_CAGE_ID;
    for (mechanism, call) in calls {
        let enforcer =
            Enforcer::detect(Some(*mechanism)).expect("the mechanism measured above is available");
        let mut times: [Vec<Duration>; 5] = Default::default();
        for i in 0..WARMUP + N {
            next_id += 1;
            let t = cage_cycle(&enforcer, next_id);
            if i >= WARMUP {
                for (k, d) in t.into_iter().enumerate() {
                    times[k].push(d);
                }
            }
        }
        let stats = times.map(|t| Stats::of(&t));
        let names = [
            "create",
            "attach",
            "sample",
            "kill_all (empty)",
            "drop (remove)",
        ];
        for (name, s) in names.iter().zip(&stats) {
            part(
                &format!("cage {name} ({mechanism})"),
                s,
                baseline,
                &format!("cage-{name}"),
            );
        }
        // The cage parts that run before the report: create, attach, the
        // first tick's sample and the final one, kill_all. Attach overlaps
        // the worker's exec (the worker runs on the other core while the
        // host writes cgroup.procs), so these do not simply add up.
        let cage_before_report =
            stats[0].median + stats[1].median + 2 * stats[2].median + stats[3].median;
        let host = call.median.saturating_sub(direct.median);
        Row {
            bench: BENCH,
            name: format!(
                "overhead breakdown: host + cage on top of the worker call ({mechanism})"
            ),
            measured: ms(host),
            baseline: format!("`/bin/true`: {}", ms(baseline.median)),
            figure: format!(
                "call {} − worker call {}; cage parts before the report sum to {}",
                ms(call.median),
                ms(direct.median),
                ms(cage_before_report)
            ),
            target: "—".into(),
            met: None,
            data: serde_json::json!({
                "what": "host", "mechanism": mechanism,
                "call_median_us": call.median.as_micros() as u64,
                "direct_median_us": direct.median.as_micros() as u64,
                "cage_before_report_us": cage_before_report.as_micros() as u64,
                "host_us": host.as_micros() as u64,
            }),
        }
        .emit();
    }
}

fn part(name: &str, s: &Stats, baseline: &Stats, what: &str) {
    let ratio = s.median.as_secs_f64() / baseline.median.as_secs_f64();
    Row {
        bench: BENCH,
        name: format!("overhead breakdown: {name}"),
        measured: format!("median {}, p90 {}", ms(s.median), ms(s.p90)),
        baseline: format!("`/bin/true`: {}", ms(baseline.median)),
        figure: format!("{ratio:.2}× `/bin/true`"),
        target: "—".into(),
        met: None,
        data: serde_json::json!({ "what": what, "stats": s.json(), "ratio": ratio }),
    }
    .emit();
}

/// One cage's life on a dummy child: [create, attach, sample, kill_all, drop].
fn cage_cycle(enforcer: &Enforcer, call_id: u64) -> [Duration; 5] {
    let limits = CallLimits::default();
    let limits = CageLimits {
        memory_bytes: Some(limits.memory_bytes),
        pids: Some(limits.pids),
    };
    let mut dummy = Command::new("sleep")
        .arg("30")
        .stdin(Stdio::null())
        .spawn()
        .expect("cannot spawn sleep");
    let t = Instant::now();
    let mut cage = enforcer
        .cage(call_id, &limits)
        .expect("cannot create a cage");
    let create = t.elapsed();
    let t = Instant::now();
    cage.attach(dummy.id())
        .expect("cannot attach the dummy child");
    let attach = t.elapsed();
    let t = Instant::now();
    let sample = cage.sample();
    let sampled = t.elapsed();
    assert_eq!(
        sample.processes, 1,
        "the dummy child is the cage's one process"
    );
    // As at the end of a call: the worker has exited and been reaped.
    dummy.kill().expect("cannot kill the dummy child");
    dummy.wait().expect("cannot reap the dummy child");
    let t = Instant::now();
    let killed = cage.kill_all();
    let kill = t.elapsed();
    assert_eq!(killed.survivors, 0);
    let t = Instant::now();
    drop(cage);
    [create, attach, sampled, kill, t.elapsed()]
}

/// One trivial call spoken to a worker directly: spawn, Hello,
/// Invoke, Credit, frames to `Done`, wait.
async fn direct_call(worker: &Path, args_json: &str, call_id: u64) -> Duration {
    let started = Instant::now();
    let channel = HostChannel::new().expect("cannot create the ipc pipes");
    let mut child = tokio::process::Command::new(worker)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("BULKHEAD_HOST_PID", std::process::id().to_string())
        .stdin(Stdio::from(channel.worker_stdin))
        .stdout(Stdio::from(channel.worker_stdout))
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot spawn bulkhead-worker");
    let mut writer = AsyncFrameWriter::new(channel.to_worker, DEFAULT_MAX_FRAME_BYTES);
    let opening = [
        HostMessage::Hello {
            protocol: PROTOCOL_VERSION,
            host_version: VERSION.to_owned(),
        },
        HostMessage::Invoke(Box::new(Invoke {
            call_id,
            tool: super::TRIVIAL_TOOL.into(),
            args_json: args_json.to_owned(),
            // No RLIMIT_DATA backstop: cgroup modes set none either.
            limits: CallLimits::default().for_worker(None),
            sandbox: None,
            start_faults: Vec::new(),
        })),
        HostMessage::Credit { chunks: CREDIT },
    ];
    for msg in &opening {
        writer.write(msg).await.expect("cannot write to the worker");
    }
    let mut reader = AsyncFrameReader::new(channel.from_worker, DEFAULT_MAX_FRAME_BYTES);
    loop {
        match reader
            .read_worker_message()
            .await
            .expect("bad frame from the worker")
        {
            Some(WorkerMessage::Done(_)) => break,
            Some(WorkerMessage::Error(e)) => panic!("worker error: {}", e.message),
            Some(_) => {}
            None => panic!("the worker closed its pipe before Done"),
        }
    }
    let status = child.wait().await.expect("cannot reap the worker");
    assert!(status.success(), "worker exited with {status}");
    started.elapsed()
}

/// Reads every `/proc/N/stat`, as the worker's `tree::descendants` does
/// (twice per call, in its teardown) and the watchdog's tree walk does.
/// Returns the time and the number of processes read.
fn proc_walk() -> (Duration, usize) {
    let started = Instant::now();
    let mut n = 0;
    for entry in std::fs::read_dir("/proc")
        .expect("cannot list /proc")
        .flatten()
    {
        let is_pid = entry
            .file_name()
            .to_str()
            .is_some_and(|s| s.bytes().all(|b| b.is_ascii_digit()));
        if is_pid && std::fs::read_to_string(entry.path().join("stat")).is_ok() {
            n += 1;
        }
    }
    (started.elapsed(), n)
}
