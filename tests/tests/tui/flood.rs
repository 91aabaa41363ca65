//! Four workers stream at full speed while keys are typed: every key shows
//! on screen, and the TUI's own peak RSS stays under 64 MiB. How fast each
//! key shows is printed here and measured properly by `scripts/bench tui`.

use std::time::{Duration, Instant};

use bulkhead_tests::bin;
use bulkhead_tests::proc_status_bytes;
use bulkhead_tests::tmux::{Tmux, tui_env};

const DEADLINE: Duration = Duration::from_secs(60);

/// The host's RSS must stay under this during a flood.
const MAX_HOST_PEAK_BYTES: u64 = 64 << 20;

#[test]
fn keys_show_during_a_four_worker_flood_and_memory_stays_flat() {
    let dir = tempfile::tempdir().expect("tempdir");
    let bulkhead = bin("bulkhead").display().to_string();
    let env = tui_env(dir.path());
    let t = Tmux::start(
        dir.path(),
        &[bulkhead, "--workers".into(), "4".into()],
        &env,
    );
    t.wait_for("the empty state", DEADLINE, |s| s.contains("direct mode"));
    let pid = t.pid();

    t.line("/limits output=100G timeout=5m");
    t.wait_for("the new limits", DEADLINE, |s| {
        s.contains("output 100.0 GiB")
    });
    for _ in 0..4 {
        t.line("!yes");
    }
    t.wait_for("four workers running", DEADLINE, |s| {
        s.contains("workers 4/4")
    });

    let mut latencies = Vec::new();
    let mut typed = String::new();
    for i in 0..40 {
        let c = char::from(b'a' + (i % 26) as u8);
        typed.push(c);
        let sent = Instant::now();
        t.keys(&["-l", &c.to_string()]);
        let want = format!("> {typed}");
        t.wait_for("the key on screen", DEADLINE, |s| {
            s.lines().any(|l| l.trim_end() == want)
        });
        latencies.push(sent.elapsed());
    }
    let screen = t.screen();
    assert!(
        screen.contains("workers 4/4"),
        "the flood ended early:\n{screen}"
    );
    latencies.sort();
    eprintln!(
        "key to screen through tmux during the flood: p50 {:?}, max {:?} (polling every 50 ms)",
        latencies[latencies.len() / 2],
        latencies[latencies.len() - 1]
    );

    let peak = proc_status_bytes(pid, "VmHWM:").expect("VmHWM of the bulkhead process");
    eprintln!("bulkhead peak RSS during the flood: {} KiB", peak / 1024);
    assert!(
        peak < MAX_HOST_PEAK_BYTES,
        "host peak RSS {peak} bytes is over 64 MiB"
    );

    // Ctrl-C cancels every running call.
    t.keys(&["C-c"]);
    t.wait_for("four killed cards", DEADLINE, |s| {
        s.matches("killed: cancelled").count() == 4 || s.contains("cancelled 4 running calls")
    });
    assert_eq!(t.quit(DEADLINE), 0);
}
