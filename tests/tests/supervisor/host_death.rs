//! When the host is SIGKILLed, its workers and their tools die within 1 s.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::{alive, bin, children_of, marker, pids_with_marker};

/// Under `trusted` the printed pid is real; under a sandboxed policy it is
/// a PID-namespace pid, so the tool is found by a marker in its command
/// line instead.
#[test]
fn workers_die_with_the_host() {
    workers_die_with_the_host_under("trusted");
    workers_die_with_the_host_under("workspace");
}

fn workers_die_with_the_host_under(policy: &str) {
    let mark = marker(&format!("host-death-{policy}"));
    // `; true` keeps sh from exec'ing sleep, which would drop the marker.
    let command = format!("sh -c 'sleep 300; true' {mark} & echo pid $!; wait");
    let args = serde_json::json!({ "command": command }).to_string();
    let mut host = Command::new(bin("bulkhead"))
        .args(["run", "shell", &args, "--policy", policy])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let printed: i32 = line.trim().strip_prefix("pid ").unwrap().parse().unwrap();
    let workers = children_of(host.id());
    assert!(!workers.is_empty(), "no worker found under the host");
    let mut tools = pids_with_marker(&mark);
    assert!(
        !tools.is_empty(),
        "no process with the marker under {policy}"
    );
    if policy == "trusted" {
        assert!(tools.contains(&printed), "{printed} not among {tools:?}");
    }

    let killed_at = Instant::now();
    host.kill().unwrap();
    host.wait().unwrap();
    let mut watched: Vec<i32> = workers.clone();
    watched.append(&mut tools);
    while watched.iter().any(|&p| alive(p)) && killed_at.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let survivors: Vec<_> = watched.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "alive 1 s after the host died ({policy}): {survivors:?}"
    );
}

/// The parent-death signal, as a worker gets it: SIGTERM. The worker takes
/// it (on Linux through the reader thread's signalfd), kills its tool's
/// processes and exits 70; the host, still alive, reports the call as failed
/// with that exit, and nothing of the call is left.
#[test]
fn a_worker_sent_sigterm_tears_down_and_exits() {
    a_worker_sent_sigterm_tears_down_under("trusted");
    a_worker_sent_sigterm_tears_down_under("workspace");
}

fn a_worker_sent_sigterm_tears_down_under(policy: &str) {
    let mark = marker(&format!("worker-sigterm-{policy}"));
    let command = format!("sh -c 'sleep 300; true' {mark} & echo started; wait");
    let args = serde_json::json!({ "command": command }).to_string();
    let host = Command::new(bin("bulkhead"))
        .args(["run", "shell", &args, "--policy", policy, "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // The tool is running once its marker shows up in a process other than
    // the host (whose arguments hold the command, marker included).
    let tools_of = |host: u32| -> Vec<i32> {
        pids_with_marker(&mark)
            .into_iter()
            .filter(|&p| p != host as i32)
            .collect()
    };
    let started = Instant::now();
    while tools_of(host.id()).is_empty() && started.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let tools = tools_of(host.id());
    assert!(!tools.is_empty(), "the tool never started ({policy})");
    let workers = children_of(host.id());
    assert_eq!(workers.len(), 1, "one worker under the host: {workers:?}");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(workers[0]),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();

    let out = host.wait_with_output().unwrap();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["status"], "failed", "{report}");
    let reason = report["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains("exit status: 70"),
        "the worker did not exit through its teardown ({policy}): {reason}"
    );
    let survivors: Vec<_> = tools.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "tool processes alive after the worker's teardown ({policy}): {survivors:?}"
    );
}
