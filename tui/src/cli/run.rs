//! `bulkhead run`: one call, its output, its one outcome.

use std::io::Write;

use bulkhead_host::{CallEvent, CallReport, CallRequest, HostConfig, Outcome, ToolHost};
use bulkhead_ipc::StreamId;

use crate::cli::policy_args::{Extra, Use, choose};
use crate::cli::sessions::record::Recorder;
use crate::cli::{EXIT_USAGE, RunArgs};

/// Exit codes per outcome, documented in `--help`.
fn exit_code(outcome: &Outcome) -> u8 {
    match outcome {
        Outcome::Completed => 0,
        Outcome::Truncated { .. } => 3,
        Outcome::Killed { .. } => 4,
        Outcome::Failed { .. } => 5,
    }
}

pub async fn run(
    mut args: RunArgs,
    config: Option<&std::path::Path>,
    store: Option<&std::path::Path>,
) -> anyhow::Result<u8> {
    if let Err(e) =
        serde_json::from_str::<serde_json::Map<String, serde_json::Value>>(&args.args_json)
    {
        eprintln!("bulkhead: ARGS_JSON must be a JSON object, e.g. '{{\"command\":\"ls\"}}': {e}");
        return Ok(EXIT_USAGE);
    }
    // A fault that cannot apply to a tool call is refused, with the reason.
    if let Some(why) = args.inject.refused(bulkhead_faults::Target::ToolCall) {
        eprintln!("bulkhead: {why}");
        return Ok(EXIT_USAGE);
    }
    let extra = Extra {
        timeout: args.timeout,
        max_output: args.max_output,
        install_dirs: Vec::new(),
        needs_host: None,
    };
    let chosen = choose(&args.sandbox, extra, Use::Tool, config).and_then(|mut c| {
        c.limits.tail_bytes = args.tail;
        c.limits.validate().map_err(|e| e.to_string()).map(|()| c)
    });
    let chosen = match chosen {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bulkhead: {e}");
            return Ok(EXIT_USAGE);
        }
    };
    // The store is opened before the tool runs: a store that cannot record
    // stops the command while nothing has happened yet.
    let mut recorder = match args.session {
        Some(choice) => Some(Recorder::begin(
            store,
            config,
            choice,
            &args.tool,
            &args.args_json,
            &chosen.limits,
        )?),
        None => None,
    };
    let config = HostConfig {
        memory_mechanism: args.sandbox.memory_mechanism,
        worker_from_config: chosen.worker.clone(),
        ..HostConfig::default()
    };
    let host = ToolHost::new(config)?;
    let mut request = CallRequest::new(&args.tool, &args.args_json);
    if let Some(seed) = args.inject.seed() {
        request = request.inject_seed(seed);
    }
    request.inject = std::mem::take(&mut args.inject.specs);
    let mut call = host.call(
        request
            .limits(chosen.limits)
            .cwd(chosen.cwd)
            .policy(chosen.policy)
            // Text mode prints chunks as they come and needs no copy, unless
            // a tail must be kept for the end; --json needs the whole report.
            .stream_output(!args.json && args.tail == 0),
    );

    let report = if args.json {
        call.wait().await
    } else {
        stream_text(&mut call, recorder.as_mut()).await?
    };
    if let Some(r) = recorder {
        r.finish(&report, args.json);
    }
    let code = exit_code(&report.outcome);
    if args.json {
        // A closed stdout cannot be reported anywhere better; the exit
        // code still says how the call ended.
        let _ = write_json_report(&report);
    } else {
        // A closed stderr must not turn a finished call into a panic.
        let _ = writeln!(std::io::stderr(), "{}", report.status_line());
        // Neither is a refusal: every host the proxy refused is named.
        for line in report.egress_lines() {
            let _ = writeln!(std::io::stderr(), "{line}");
        }
        // Weaker isolation is never silent.
        for m in report.enforcement.not_enforced() {
            let _ = writeln!(
                std::io::stderr(),
                "bulkhead: policy {}: NOT ENFORCED: {}: {}",
                report.enforcement.policy,
                m.mechanism,
                m.detail
            );
        }
    }
    Ok(code)
}

/// Prints output as it arrives: stdout chunks to stdout, stderr to stderr.
/// Returns the report, after printing its cut marker and tail.
async fn stream_text(
    call: &mut bulkhead_host::CallHandle,
    mut recorder: Option<&mut Recorder>,
) -> anyhow::Result<CallReport> {
    let mut stdout = std::io::stdout().lock();
    let mut stderr = std::io::stderr();
    while let Some(event) = call.next_event().await {
        match event {
            CallEvent::Started(_) => {}
            CallEvent::Output { stream, data } => {
                if let Some(r) = recorder.as_deref_mut() {
                    r.output(stream, &data);
                }
                // A closed stdout (`| head`) must not abort the call's
                // report, so write errors are ignored here.
                let _ = match stream {
                    StreamId::Stdout => stdout.write_all(&data),
                    StreamId::Stderr => stderr.write_all(&data),
                };
            }
            CallEvent::Finished(report) => {
                if report.cut_bytes() > 0 {
                    let _ = stdout.write_all(report.cut_marker().as_bytes());
                }
                for seg in report.output.tail() {
                    let _ = match seg.stream {
                        StreamId::Stdout => stdout.write_all(&seg.data),
                        StreamId::Stderr => stderr.write_all(&seg.data),
                    };
                }
                let _ = stdout.flush();
                return Ok(*report);
            }
        }
    }
    // `next_event` yields `Finished` before it ends, always.
    anyhow::bail!("internal error: the call ended without a report")
}

/// The `--json` object. Fields borrow from the report, so the kept output
/// is rendered once and written straight out, not copied into a JSON tree.
#[derive(serde::Serialize)]
struct JsonReport<'a> {
    status: &'static str,
    reason: Option<String>,
    #[serde(serialize_with = "serialize_display")]
    output: &'a dyn std::fmt::Display,
    bytes_seen: u64,
    lines_seen: u64,
    output_bytes_kept: u64,
    usage: JsonUsage,
    enforcement: JsonEnforcement<'a>,
    exit: serde_json::Value,
    summary: &'a Option<serde_json::Value>,
    /// What the egress proxy let through and refused (an allow list only).
    #[serde(skip_serializing_if = "Option::is_none")]
    egress: Option<serde_json::Value>,
    /// The injected fault that fired (`--inject` only).
    #[serde(skip_serializing_if = "Option::is_none")]
    injected: Option<serde_json::Value>,
    tool: &'a str,
    call_id: u64,
    host_peak_rss_bytes: u64,
}

#[derive(serde::Serialize)]
struct JsonUsage {
    peak_rss_bytes: u64,
    cpu_ms: u64,
    wall_ms: u64,
}

#[derive(serde::Serialize)]
struct JsonEnforcement<'a> {
    memory: bulkhead_host::enforce::MemoryMechanism,
    kill: &'static str,
    sample_interval_ms: u64,
    worker: std::collections::BTreeMap<&'a str, &'a str>,
    policy: &'a str,
    policy_explained: &'a str,
    sandbox: &'a [bulkhead_ipc::MechanismState],
    /// Mechanisms the policy asked for that were not in force.
    not_enforced: Vec<&'a str>,
}

/// Streams a `Display` into a JSON string without building it first.
fn serialize_display<S: serde::Serializer>(
    value: &&dyn std::fmt::Display,
    s: S,
) -> Result<S::Ok, S::Error> {
    s.collect_str(value)
}

fn write_json_report(r: &CallReport) -> std::io::Result<()> {
    let exit = match r.exit {
        Some(bulkhead_ipc::ToolExit::Code(c)) => serde_json::json!({"code": c}),
        Some(bulkhead_ipc::ToolExit::Signal(s)) => serde_json::json!({"signal": s}),
        Some(bulkhead_ipc::ToolExit::Finished) => serde_json::json!("finished"),
        Some(bulkhead_ipc::ToolExit::Stopped) => serde_json::json!("stopped"),
        None => serde_json::Value::Null,
    };
    let marker = (r.cut_bytes() > 0).then(|| r.cut_marker());
    let output = r.output.display(marker.as_deref());
    let report = JsonReport {
        status: r.outcome.status(),
        reason: r.outcome.reason(),
        output: &output,
        bytes_seen: r.usage.bytes_produced,
        lines_seen: r.lines_seen,
        output_bytes_kept: r.output.kept(),
        usage: JsonUsage {
            peak_rss_bytes: r.usage.peak_rss_bytes,
            cpu_ms: r.usage.cpu_ms,
            wall_ms: r.usage.wall_ms,
        },
        enforcement: JsonEnforcement {
            memory: r.enforcement.memory,
            kill: r.enforcement.kill,
            sample_interval_ms: r.enforcement.sample_interval_ms,
            worker: r
                .enforcement
                .worker
                .iter()
                .map(|(k, v)| (k.as_str(), v.as_str()))
                .collect(),
            policy: &r.enforcement.policy,
            policy_explained: &r.enforcement.policy_explained,
            sandbox: &r.enforcement.sandbox,
            not_enforced: r
                .enforcement
                .not_enforced()
                .map(|m| m.mechanism.as_str())
                .collect(),
        },
        exit,
        summary: &r.summary,
        egress: r.egress_json(),
        injected: r.injected_json(),
        tool: &r.tool,
        call_id: r.call_id,
        host_peak_rss_bytes: host_peak_rss_bytes(),
    };
    let mut out = std::io::stdout().lock();
    serde_json::to_writer(&mut out, &report)?;
    writeln!(out)?;
    out.flush()
}

/// This process's own high-water mark, not its children's: `VmHWM`, the
/// peak resident set of this address space. `ru_maxrss` is not used: Linux
/// carries it across `execve`, so a `bulkhead` started by `posix_spawn` from
/// a 300 MB parent would report the parent's 300 MB.
pub fn host_peak_rss_bytes() -> u64 {
    let Ok(status) = std::fs::read_to_string("/proc/self/status") else {
        return 0;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kib| kib * 1024)
}
