//! `agent`: the host's peak RSS in `bulkhead chat` does not grow with the
//! session's length or with the size of a tool's result.
//!
//! Runs the release `bulkhead chat` against the local model server
//! (`bulkhead_tests::model_server`, the real OpenAI wire format):
//!
//! - **Session length:** N turns (10, 100, 1,000), each a model request
//!   whose answer calls `read_file` on a 20 KiB file (so every result is
//!   cut in the 10 KiB view and stored whole), then a final answer. Every
//!   request is built from the store's window of a growing session.
//! - **Result size:** one turn whose answer calls `shell` to print N bytes
//!   (1 KiB, 1 MiB, 100 MiB, 1 GiB) with the agent's output cap raised
//!   to 2 GiB, so every byte crosses the IPC channel into the host and on
//!   to the store's thread (which keeps 64 MiB, its per-result cap, and
//!   counts the rest), then a final answer.
//!
//! The figure is the host's own peak RSS (`VmHWM`, printed by `chat` on its
//! last line); the baseline is the smallest run of the same series.
//!
//! - **Request building:** in this process, a session of N items (100,
//!   1,000, 10,000: user, assistant with a call, a 16 KiB result, in turn)
//!   is written to a store, then one request is built as the loop builds
//!   it (`history::from_store`: the window in SQL and the views, then the
//!   provider's body), [`BUILD_SAMPLES`] times; the median is the figure.

use std::path::Path;
use std::time::{Duration, Instant};

use bulkhead_agent::history::{self, AssistantMeta, Budget};
use bulkhead_agent::{AgentSpec, ModelSpec};
use bulkhead_ipc::StreamId;
use bulkhead_model::{ModelClient, ModelLimits, ProviderKind, ToolCall};
use bulkhead_store::{
    Durability, ItemKind, NewItem, NewSession, ResultEnd, SessionId, Store, StoreOptions,
};
use bulkhead_tests::agent_chat::{ChatSetup, reported_peak, session_id};
use bulkhead_tests::model_server::{ModelServer, Turn};

use crate::{Row, Stats, ms, sibling, size};

const BENCH: &str = "agent";

/// Turns per session measured: 10, 100 and 1,000.
const TURNS: [u32; 3] = [10, 100, 1000];

/// Bytes a tool prints: one chunk's worth, the default output cap, far
/// past the store's 64 MiB per-result cap, and 1 GiB.
const RESULT_SIZES: [u64; 4] = [1 << 10, 1 << 20, 100 << 20, 1 << 30];

/// The file each session-length turn reads: twice the default view budget,
/// so each view is cut and carries the marker.
const FILE_BYTES: usize = 20 << 10;

/// The target for both series: peak RSS varies by at most 4 MiB. That is
/// room for SQLite's page cache (2 MiB by default) filling as the store
/// grows, and the allocator's arenas; growth with N would pass it at once.
const FLAT_BYTES: u64 = 4 << 20;

/// A context that holds the 200-item window of a long session only in
/// part, so the window is cut by bytes, as in a real long session.
const CONTEXT_TOKENS: u64 = 16_000;

struct Run {
    peak: u64,
    wall: Duration,
    requests: usize,
    max_body: usize,
    /// Of the session's tool results: bytes the tools produced, and bytes
    /// the store kept.
    produced: u64,
    stored: u64,
}

pub fn run() {
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime for the model server");
    let bin_dir = sibling("bulkhead")
        .parent()
        .expect("binaries live in a directory")
        .to_path_buf();

    let mut peaks = Vec::new();
    for n in TURNS {
        eprintln!("   a session of {n} turns…");
        let r = runtime.block_on(session_length(&bin_dir, n));
        assert_eq!(
            r.requests,
            n as usize + 1,
            "one request per turn, plus the answer"
        );
        let baseline = peaks.first().copied().unwrap_or(r.peak);
        Row {
            bench: BENCH,
            name: format!("agent: host peak, session of {n} turns (a cut read_file result each)"),
            measured: size(r.peak),
            baseline: format!("10 turns: {}", size(baseline)),
            figure: format!(
                "wall {} ({} per turn), largest request {}, {} stored",
                ms(r.wall),
                ms(r.wall / (n + 1)),
                size(r.max_body as u64),
                size(r.stored)
            ),
            target: "see spread row".into(),
            met: None,
            data: serde_json::json!({
                "turns": n, "peak": r.peak, "wall_ms": r.wall.as_millis() as u64,
                "max_body": r.max_body, "stored": r.stored,
            }),
        }
        .emit();
        peaks.push(r.peak);
    }
    spread_row("session of 10 … 1,000 turns", &peaks);

    let mut peaks = Vec::new();
    for n in RESULT_SIZES {
        eprintln!("   a tool result of {}…", size(n));
        let r = runtime.block_on(result_size(&bin_dir, n));
        assert_eq!(r.requests, 2, "the call's turn, then the answer");
        assert_eq!(r.produced, n, "every byte reached the host");
        let baseline = peaks.first().copied().unwrap_or(r.peak);
        Row {
            bench: BENCH,
            name: format!("agent: host peak, one tool result of {} produced", size(n)),
            measured: size(r.peak),
            baseline: format!("1 KiB: {}", size(baseline)),
            figure: format!(
                "wall {} ({:.2} GB/s), {} stored, 10 KiB viewed",
                ms(r.wall),
                n as f64 / r.wall.as_secs_f64() / 1e9,
                size(r.stored)
            ),
            target: "see spread row".into(),
            met: None,
            data: serde_json::json!({
                "bytes": n, "peak": r.peak, "wall_ms": r.wall.as_millis() as u64,
                "stored": r.stored,
            }),
        }
        .emit();
        peaks.push(r.peak);
    }
    spread_row("tool result of 1 KiB … 1 GiB", &peaks);

    request_building();
}

fn spread_row(what: &str, peaks: &[u64]) {
    let min = peaks.iter().copied().min().unwrap_or(0);
    let max = peaks.iter().copied().max().unwrap_or(0);
    Row {
        bench: BENCH,
        name: format!("agent: host peak spread, {what}"),
        measured: format!("max − min = {}", size(max - min)),
        baseline: format!(
            "smallest run: {}",
            size(peaks.first().copied().unwrap_or(0))
        ),
        figure: format!("{} … {}", size(min), size(max)),
        target: format!("≤ {}", size(FLAT_BYTES)),
        met: Some(max - min <= FLAT_BYTES),
        data: serde_json::json!({ "spread": max - min, "peaks": peaks }),
    }
    .emit();
}

/// The model server, and a chat config whose `[agents.a]` is `agent_toml`.
async fn start(agent_toml: &str) -> (ModelServer, ChatSetup) {
    let server = ModelServer::start().await;
    let setup = ChatSetup::new(&server.base_url(), "openai", CONTEXT_TOKENS, agent_toml);
    (server, setup)
}

/// Items in the stored session for the request-building series.
const HISTORY_ITEMS: [u32; 3] = [100, 1_000, 10_000];
/// Output of each stored result: past the 10 KiB view, so every view is a
/// cut head and tail read from the chunks.
const STORED_RESULT_BYTES: usize = 16 << 10;
/// Requests built per size: enough for a stable median of a millisecond.
const BUILD_SAMPLES: usize = 30;

fn request_building() {
    let mut medians = Vec::new();
    for n in HISTORY_ITEMS {
        eprintln!("   building requests from a {n}-item session…");
        let dir = tempfile::tempdir().expect("tempdir");
        let options = StoreOptions {
            // A fixture: a power loss would only lose the benchmark.
            durability: Durability::Normal,
            ..StoreOptions::default()
        };
        let store = Store::open_with(dir.path().join("s.db"), options).expect("open the store");
        let session = fill_session(&store, n);
        let agent = AgentSpec::builtin();
        let model = ModelSpec::from_flags(
            ProviderKind::OpenAi,
            "m".into(),
            Some("http://127.0.0.1:9/v1".into()),
        );
        let client = ModelClient::new(model.client_config(ModelLimits::default())).expect("client");
        let spec = history::window_spec(
            &agent,
            agent.max_history_items,
            Budget::new(&model).window_bytes(0),
        );
        let mut samples = Vec::with_capacity(BUILD_SAMPLES);
        let mut body_bytes = 0;
        let mut items = 0;
        for _ in 0..BUILD_SAMPLES {
            let start = Instant::now();
            let prepared = history::from_store(&store, session, &agent, &spec).expect("the window");
            let body = client
                .build_body(&prepared.request(&model, &[]))
                .expect("the body");
            samples.push(start.elapsed());
            body_bytes = body.len();
            items = prepared.used_items;
        }
        let stats = Stats::of(&samples);
        let baseline = medians.first().copied().unwrap_or(stats.median);
        Row {
            bench: BENCH,
            name: format!("agent: request building, session of {n} items"),
            measured: format!("median {}, p90 {}", ms(stats.median), ms(stats.p90)),
            baseline: format!("100 items: {}", ms(baseline)),
            figure: format!(
                "{:.2}× the 100-item build; {items} items in the window, body {}",
                stats.median.as_secs_f64() / baseline.as_secs_f64(),
                size(body_bytes as u64)
            ),
            target: "—".into(),
            met: None,
            data: serde_json::json!({
                "items": n, "stats": stats.json(), "body_bytes": body_bytes,
                "window_items": items,
            }),
        }
        .emit();
        medians.push(stats.median);
    }
}

/// A session of `n` items after its system prompt: a user message, an
/// assistant message calling a tool, and that call's result, in turn.
fn fill_session(store: &Store, n: u32) -> SessionId {
    let session = store
        .create_session(&NewSession::default())
        .expect("a session");
    store
        .append(session, &NewItem::system_prompt("You are a test agent."))
        .expect("system prompt");
    let output = "a line of tool output in a long session\n".repeat(STORED_RESULT_BYTES / 40);
    for i in 0..n {
        match i % 3 {
            0 => store
                .append(
                    session,
                    &NewItem::new(ItemKind::User, format!("question {i}")),
                )
                .map(drop),
            1 => {
                let meta = AssistantMeta {
                    tool_calls: vec![ToolCall {
                        id: format!("call_{i}"),
                        name: "shell".into(),
                        arguments: "{}".into(),
                    }],
                };
                let text = serde_json::to_string(&meta).expect("meta");
                store
                    .append(
                        session,
                        &NewItem::new(ItemKind::Assistant, "Let me look.").with_meta(text),
                    )
                    .map(drop)
            }
            _ => store
                .begin_result(session, "shell", Some(&format!("call_{}", i - 1)), "{}")
                .and_then(|mut w| {
                    w.write(store, StreamId::Stdout, output.as_bytes())?;
                    w.finish(
                        store,
                        &ResultEnd {
                            status: "completed".into(),
                            bytes_seen: output.len() as u64,
                            ..ResultEnd::default()
                        },
                    )
                })
                .map(drop),
        }
        .expect("write the session");
    }
    session
}

async fn session_length(bin_dir: &Path, turns: u32) -> Run {
    let p = ProviderKind::OpenAi;
    let toml = format!("tools = [\"read_file\"]\nmax_turns = {}\n", turns + 1);
    let (server, setup) = start(&toml).await;
    let file = setup.dir.path().join("notes.txt");
    let line = "a line of notes the model reads again and again\n";
    std::fs::write(&file, line.repeat(FILE_BYTES / line.len())).expect("write the file");
    let args = serde_json::json!({ "path": file }).to_string();
    for i in 0..turns {
        server.push(
            Turn::new()
                .text(&["Reading it once more."])
                .call(&format!("call_{i}"), "read_file", &[&args])
                .usage(3000, 20)
                .reply(p),
        );
    }
    server.push(Turn::new().text(&["Done."]).reply(p));
    chat(&setup, &server, bin_dir).await
}

async fn result_size(bin_dir: &Path, bytes: u64) -> Run {
    let p = ProviderKind::OpenAi;
    let (server, setup) =
        start("tools = [\"shell\"]\n[agents.a.limits]\noutput = \"2GiB\"\ntimeout = \"10m\"\n")
            .await;
    let command = format!("head -c {bytes} /dev/zero");
    let args = serde_json::json!({ "command": command }).to_string();
    server.push(Turn::new().call("call_big", "shell", &[&args]).reply(p));
    server.push(Turn::new().text(&["Done."]).reply(p));
    chat(&setup, &server, bin_dir).await
}

/// Runs `bulkhead chat` off the runtime's threads (the model server must
/// keep answering) and checks it answered.
async fn chat(setup: &ChatSetup, server: &ModelServer, bin_dir: &Path) -> Run {
    let mut cmd = setup.command_in(bin_dir, &["go"]);
    let start = Instant::now();
    let out = tokio::task::spawn_blocking(move || cmd.output().expect("run bulkhead chat"))
        .await
        .expect("join");
    let wall = start.elapsed();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "bulkhead chat failed:\n{stderr}"
    );
    let requests = server.requests();
    let results: Vec<_> = setup
        .items(&session_id(&stderr))
        .into_iter()
        .filter(|i| i.kind == ItemKind::ToolResult)
        .collect();
    Run {
        peak: reported_peak(&stderr),
        wall,
        requests: requests.len(),
        max_body: requests.iter().map(|r| r.body.len()).max().unwrap_or(0),
        produced: results
            .iter()
            .filter_map(|i| Some(i.result.as_ref()?.bytes_seen))
            .sum(),
        stored: results.iter().map(|i| i.payload_bytes).sum(),
    }
}
