//! The `egress` benchmark's end-to-end row: `curl` downloading through a
//! sandboxed call's relay and proxy, against the same call under `trusted`.

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::peers::{Serve, Server};
use super::{BENCH, E2E_BYTES, E2E_RUNS, Rate};
use crate::{Row, Stats, ms, sibling};

/// User + sys time of every reaped descendant of this process so far.
fn children_cpu() -> Duration {
    // SAFETY: getrusage fills the struct we pass; a zeroed rusage is valid.
    let mut ru: libc::rusage = unsafe { std::mem::zeroed() };
    // SAFETY: as above; RUSAGE_CHILDREN is always valid.
    let rc = unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut ru) };
    assert_eq!(rc, 0, "getrusage failed");
    let tv = |t: libc::timeval| Duration::new(t.tv_sec as u64, t.tv_usec as u32 * 1000);
    tv(ru.ru_utime) + tv(ru.ru_stime)
}

/// One `bulkhead run shell` of curl.
struct Download {
    /// The whole `bulkhead run`.
    wall: Duration,
    /// curl's `size_download` and `time_total`.
    bytes: u64,
    secs: f64,
    /// CPU of everything: `bulkhead` (and the proxy in it), the worker
    /// (and its relay), curl.
    cpu: Duration,
    /// CPU of the call's process tree (the worker and curl), as the call
    /// reports it (`usage.cpu_ms`).
    tool_cpu: Duration,
}

fn curl_call(url: &str, policy: &[&str]) -> Download {
    let command =
        format!("curl -sS --fail -o /dev/null -w '%{{size_download}} %{{time_total}}\\n' {url}");
    let args = serde_json::json!({ "command": command }).to_string();
    let cpu = children_cpu();
    let started = Instant::now();
    let out = Command::new(sibling("bulkhead"))
        .args(["run", "shell", &args, "--json"])
        .args(policy)
        .stdin(Stdio::null())
        .output()
        .expect("cannot run bulkhead");
    let wall = started.elapsed();
    let cpu = children_cpu().saturating_sub(cpu);
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_default();
    let line = report["output"].as_str().unwrap_or("").trim();
    let mut words = line.split_whitespace();
    let parsed = (
        words.next().and_then(|w| w.parse::<u64>().ok()),
        words.next().and_then(|w| w.parse::<f64>().ok()),
        report["usage"]["cpu_ms"].as_u64(),
    );
    match parsed {
        (Some(bytes), Some(secs), Some(tool_ms))
            if out.status.success() && report["status"] == "completed" =>
        {
            Download {
                wall,
                bytes,
                secs,
                cpu,
                tool_cpu: Duration::from_millis(tool_ms),
            }
        }
        _ => panic!(
            "curl under `bulkhead run {}` failed ({}): stdout {:.1000} stderr {:.1000}",
            policy.join(" "),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    }
}

pub(super) fn end_to_end() {
    let server = Server::start(Serve::Http(E2E_BYTES), false);
    let port = server.port;
    let allow = format!("localhost:{port}");
    let proxied_url = format!("http://localhost:{port}/");
    let direct_url = format!("http://127.0.0.1:{port}/");
    let proxied_policy = ["--policy", "untrusted", "--allow-net", allow.as_str()];
    let trusted_policy = ["--policy", "trusted"];
    eprintln!(
        "   curl, {} MiB, {E2E_RUNS} runs under each policy…",
        E2E_BYTES >> 20
    );
    // Warm-ups: the page cache, the first exec of curl.
    curl_call(&direct_url, &trusted_policy);
    curl_call(&proxied_url, &proxied_policy);
    let (mut p, mut t) = (Vec::new(), Vec::new());
    for _ in 0..E2E_RUNS {
        p.push(curl_call(&proxied_url, &proxied_policy));
        t.push(curl_call(&direct_url, &trusted_policy));
    }
    for d in p.iter().chain(&t) {
        assert_eq!(d.bytes, E2E_BYTES, "curl did not get the whole body");
    }
    let rate = |runs: &[Download]| {
        let secs: Vec<Duration> = runs
            .iter()
            .map(|r| Duration::from_secs_f64(r.secs))
            .collect();
        Rate::of(&secs, E2E_BYTES)
    };
    let stats = |runs: &[Download], f: &dyn Fn(&Download) -> Duration| {
        Stats::of(&runs.iter().map(f).collect::<Vec<_>>())
    };
    let (pr, tr) = (rate(&p), rate(&t));
    let (pw, tw) = (stats(&p, &|d| d.wall), stats(&t, &|d| d.wall));
    // Medians of each part: the host (bulkhead with its proxy) is the
    // whole less the call's tree (the worker with its relay, and curl).
    let host = |runs: &[Download]| stats(runs, &|d| d.cpu.saturating_sub(d.tool_cpu)).median;
    let tool = |runs: &[Download]| stats(runs, &|d| d.tool_cpu).median;
    let ratio = pr.median / tr.median;
    Row {
        bench: BENCH,
        name: format!(
            "egress: end to end, `curl` downloading {} MiB in `bulkhead run shell --policy untrusted --allow-net localhost:PORT` (relay + proxy)",
            E2E_BYTES >> 20
        ),
        measured: format!(
            "{} (curl's own rate); call median {}; CPU: host {}, tool tree {}",
            pr.text(),
            ms(pw.median),
            ms(host(&p)),
            ms(tool(&p))
        ),
        baseline: format!(
            "`--policy trusted` (no proxy): {}; call median {}; CPU: host {}, tool tree {}",
            tr.text(),
            ms(tw.median),
            ms(host(&t)),
            ms(tool(&t))
        ),
        figure: format!("{:.0}% of trusted (medians)", ratio * 100.0),
        target: "—".into(),
        met: None,
        data: serde_json::json!({
            "proxied": pr.json(), "trusted": tr.json(), "ratio": ratio,
            "proxied_wall": pw.json(), "trusted_wall": tw.json(),
            "proxied_host_cpu_ms": host(&p).as_millis() as u64,
            "proxied_tool_cpu_ms": tool(&p).as_millis() as u64,
            "trusted_host_cpu_ms": host(&t).as_millis() as u64,
            "trusted_tool_cpu_ms": tool(&t).as_millis() as u64,
            "bytes": E2E_BYTES, "runs": E2E_RUNS,
        }),
    }
    .emit();
}
