//! When the host is SIGKILLed, its workers and their tools die within 1 s.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bulkhead_tests::{alive, bin, children_of};

#[test]
fn workers_die_with_the_host() {
    let mut host = Command::new(bin("bulkhead"))
        .args([
            "run",
            "shell",
            r#"{"command":"sleep 300 & echo pid $!; wait"}"#,
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(host.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let tool_pid: i32 = line.trim().strip_prefix("pid ").unwrap().parse().unwrap();
    let workers = children_of(host.id());
    assert!(!workers.is_empty(), "no worker found under the host");
    assert!(alive(tool_pid));

    let killed_at = Instant::now();
    host.kill().unwrap();
    host.wait().unwrap();
    let mut watched: Vec<i32> = workers.clone();
    watched.push(tool_pid);
    while watched.iter().any(|&p| alive(p)) && killed_at.elapsed() < Duration::from_secs(1) {
        std::thread::sleep(Duration::from_millis(10));
    }
    let survivors: Vec<_> = watched.iter().copied().filter(|&p| alive(p)).collect();
    assert!(
        survivors.is_empty(),
        "alive 1 s after the host died: {survivors:?}"
    );
}
