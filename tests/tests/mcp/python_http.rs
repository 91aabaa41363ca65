//! The official MCP Python SDK (`mcp`, PyPI) as the client of `bulkhead
//! mcp serve --http`, over its Streamable HTTP transport
//! (`streamable_http_client`), with FastMCP servers behind the gateway
//! over stdio, sandboxed: a call's progress and logging reach the SDK's
//! callbacks; a server's sampling, elicitation and roots requests reach
//! the client whose call caused them, if it offers them, and are refused with
//! the policy's reason if not; and in the namespaced mode, with two
//! sessions at once, each client gets only the requests and the progress
//! its own call caused, and a request that could be either's goes to
//! neither.

use std::process::{Command, Stdio};
use std::time::Duration;

use bulkhead_tests::launchers::{RUN_LIMIT, output_within, test_venv};
use bulkhead_tests::{KillOnDrop, bin, free_port, wait_listening};
use serde_json::{Value, json};

/// How long the gateway may take to listen (it lists the built-in tools
/// first, from a worker).
const LISTEN_BOUND: Duration = Duration::from_secs(60);

/// A FastMCP server (the `fastmcp` package) on stdio; argv[1] is its name,
/// which it puts in everything it sends, so a test sees whose it is.
const SERVER: &str = r#"
import asyncio
import sys

from fastmcp import Context, FastMCP
from mcp import types

NAME = sys.argv[1]
mcp = FastMCP(NAME)

# Calls of ask_together that have arrived, and the event set when two
# have: both callers' requests are then in flight at once.
arrived = 0
both = asyncio.Event()


@mcp.tool
async def work(steps: int, ctx: Context) -> str:
    for i in range(1, steps + 1):
        await ctx.info(f"{NAME}: step {i}")
        await ctx.report_progress(i, steps, f"{NAME}: step {i}")
    return f"{NAME}: {steps} steps done"


async def sample(prompt: str, ctx: Context) -> str:
    text = types.TextContent(type="text", text=f"{NAME}: {prompt}")
    r = await ctx.session.create_message(
        messages=[types.SamplingMessage(role="user", content=text)], max_tokens=20
    )
    return f"{NAME} sampled: {r.content.text}"


@mcp.tool
async def ask_model(prompt: str, ctx: Context) -> str:
    return await sample(prompt, ctx)


async def together() -> None:
    """Returns once two calls have come to it (or after the bound)."""
    global arrived
    arrived += 1
    if arrived >= 2:
        both.set()
    await asyncio.wait_for(both.wait(), 120)


@mcp.tool
async def ask_together(prompt: str, ctx: Context) -> str:
    await together()
    return await sample(prompt, ctx)


@mcp.tool
async def work_together(prompt: str, ctx: Context) -> str:
    await together()
    for i in range(1, 6):
        await ctx.report_progress(i, 5, f"{prompt}: step {i}")
        await asyncio.sleep(0.01)
    return f"{NAME}: {prompt} done"


@mcp.tool
async def wait_cancel(marker: str) -> str:
    """Waits a minute; writes `marker` if it is cancelled meanwhile."""
    try:
        await asyncio.sleep(60)
    except BaseException:
        with open(marker, "w") as f:
            f.write("cancelled")
        raise
    return f"{NAME}: not cancelled"


@mcp.tool
async def flood(count: int, size: int, ctx: Context) -> str:
    pad = "x" * size
    for i in range(count):
        await ctx.info(f"{NAME} {i} {pad}")
    return f"{NAME}: flooded {count}"


@mcp.tool
async def ask_roots(ctx: Context) -> str:
    r = await ctx.session.list_roots()
    return f"{NAME} roots: " + " ".join(str(root.uri) for root in r.roots)


@mcp.tool
async def ask_user(question: str, ctx: Context) -> str:
    r = await ctx.elicit(f"{NAME}: {question}", response_type=str)
    return f"{NAME} elicited: {r.action} {getattr(r, 'data', None)}"


mcp.run(show_banner=False)
"#;

/// The SDK's client: `client.py URL MODE [PREFIX]`; prints what it saw as
/// JSON. Every wait is bounded, so a request routed to the wrong client
/// fails the test instead of hanging it.
const CLIENT: &str = r#"
import json
import sys

import anyio
from mcp import types
from mcp.client.session import ClientSession
from mcp.client.streamable_http import streamable_http_client

URL, MODE = sys.argv[1], sys.argv[2]
PREFIX = sys.argv[3] if len(sys.argv) > 3 else ""


def dump(result):
    return result.model_dump(mode="json", by_alias=True)


def text(result):
    return " ".join(c.text for c in result.content if c.type == "text")


class Client:
    """One session's callbacks, recording what reached them."""

    def __init__(self, wait_for=None):
        self.progress, self.logs, self.sampled, self.elicited = [], [], [], []
        self.called = anyio.Event()
        self.wait_for = wait_for

    async def on_progress(self, progress, total, message):
        self.progress.append([progress, total, message])

    async def on_log(self, params):
        self.logs.append(params.model_dump(mode="json", by_alias=True))

    async def on_sampling(self, ctx, params):
        self.sampled.append(params.messages[0].content.text)
        self.called.set()
        if self.wait_for is not None:
            # Both sessions' requests outstanding at once, or the bound.
            with anyio.move_on_after(60):
                await self.wait_for.called.wait()
        return types.CreateMessageResult(
            role="assistant",
            model="test-model",
            content=types.TextContent(type="text", text="from the client"),
        )

    async def on_elicitation(self, ctx, params):
        self.elicited.append(params.message)
        return types.ElicitResult(action="accept", content={"value": "yes"})

    async def on_roots(self, ctx):
        return types.ListRootsResult(roots=[types.Root(uri="file:///client/root")])

    def session(self, read, write, offers):
        return ClientSession(
            read,
            write,
            logging_callback=self.on_log,
            sampling_callback=self.on_sampling if offers else None,
            elicitation_callback=self.on_elicitation if offers else None,
            list_roots_callback=self.on_roots if offers else None,
        )


async def features():
    out = {}
    c = Client()
    async with streamable_http_client(URL) as (read, write, *_):
        async with c.session(read, write, True) as s:
            await s.initialize()
            out["tools"] = sorted(t.name for t in (await s.list_tools()).tools)
            out["work"] = dump(
                await s.call_tool(PREFIX + "work", {"steps": 5}, progress_callback=c.on_progress)
            )
            out["ask_model"] = dump(await s.call_tool(PREFIX + "ask_model", {"prompt": "hi"}))
            out["ask_user"] = dump(await s.call_tool(PREFIX + "ask_user", {"question": "ok?"}))
            out["ask_roots"] = dump(await s.call_tool(PREFIX + "ask_roots", {}))
    out["progress"], out["logs"] = c.progress, c.logs
    out["sampled"], out["elicited"] = c.sampled, c.elicited
    # A client that offers neither.
    async with streamable_http_client(URL) as (read, write, *_):
        async with Client().session(read, write, False) as s:
            await s.initialize()
            out["bare_ask_model"] = dump(await s.call_tool(PREFIX + "ask_model", {"prompt": "hi"}))
            out["bare_ask_user"] = dump(await s.call_tool(PREFIX + "ask_user", {"question": "ok?"}))
            out["bare_ask_roots"] = dump(await s.call_tool(PREFIX + "ask_roots", {}))
    print(json.dumps(out))


async def two_sessions(calls):
    """Two sessions at once, session i calling calls[i] = (tool, prompt)."""
    first = Client()
    second = Client(wait_for=first)
    first.wait_for = second
    results = [None, None]

    async def run(i, c):
        async with streamable_http_client(URL) as (read, write, *_):
            async with c.session(read, write, True) as s:
                await s.initialize()
                tool, prompt = calls[i]
                # The SDK's progress token is the request's id: the same
                # in both sessions, as both calls are their first.
                result = await s.call_tool(tool, {"prompt": prompt}, progress_callback=c.on_progress)
                results[i] = text(result)

    with anyio.fail_after(240):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run, 0, first)
            tg.start_soon(run, 1, second)
    print(json.dumps({
        "results": results,
        "sampled": [first.sampled, second.sampled],
        "progress": [[p[2] for p in first.progress], [p[2] for p in second.progress]],
    }))


async def main():
    with anyio.fail_after(240):
        if MODE == "features":
            await features()
    if MODE == "apart":
        await two_sessions([("a__ask_model", "from session 1"), ("b__ask_model", "from session 2")])
    elif MODE == "same":
        await two_sessions([("a__ask_together", "from session 1"), ("a__ask_together", "from session 2")])
    elif MODE == "progress":
        await two_sessions([("a__work_together", "session 1"), ("a__work_together", "session 2")])


anyio.run(main)
"#;

/// The scripts and a servers file with FastMCP servers `a` and `b`.
pub(crate) struct Setup {
    dir: tempfile::TempDir,
    python: std::path::PathBuf,
}

impl Setup {
    pub(crate) fn new() -> Self {
        let python = test_venv().join("bin/python");
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("server.py"), SERVER).unwrap();
        std::fs::write(dir.path().join("client.py"), CLIENT).unwrap();
        let server =
            |name: &str| json!({"command": python, "args": [dir.path().join("server.py"), name]});
        let doc = json!({"mcpServers": {"a": server("a"), "b": server("b")}});
        std::fs::write(dir.path().join("servers.json"), doc.to_string()).unwrap();
        Self { dir, python }
    }

    /// The servers file naming `a` and `b`.
    pub(crate) fn servers(&self) -> std::path::PathBuf {
        self.dir.path().join("servers.json")
    }

    /// `bulkhead mcp serve --http` over the servers (`--expose a` if
    /// `expose`), and its port.
    pub(crate) fn gateway(&self, expose: bool) -> (KillOnDrop, u16) {
        self.gateway_with(expose, None)
    }

    /// [`Setup::gateway`], with `config` as its `BULKHEAD_CONFIG`.
    pub(crate) fn gateway_with(
        &self,
        expose: bool,
        config: Option<&std::path::Path>,
    ) -> (KillOnDrop, u16) {
        let port = free_port();
        let mut cmd = Command::new(bin("bulkhead"));
        match config {
            Some(config) => cmd.env("BULKHEAD_CONFIG", config),
            None => cmd.env_remove("BULKHEAD_CONFIG"),
        };
        cmd.args(["mcp", "serve", "--servers"])
            .arg(self.servers())
            .args(["--http", &format!("127.0.0.1:{port}")]);
        if expose {
            cmd.args(["--expose", "a"]);
        }
        let child = KillOnDrop(
            cmd.stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .unwrap(),
        );
        wait_listening(port, LISTEN_BOUND);
        (child, port)
    }

    /// Runs the client script; what it printed.
    fn client(&self, args: &[&str]) -> Value {
        let mut py = Command::new(&self.python);
        py.arg(self.dir.path().join("client.py")).args(args);
        // The client reaches the gateway on loopback, never through a
        // proxy the test's environment may name.
        for var in ["HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY"] {
            py.env_remove(var).env_remove(var.to_ascii_lowercase());
        }
        let out = output_within(&mut py, RUN_LIMIT, "the SDK client");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "the SDK client failed: {stderr}");
        serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("{e}: {}\n{stderr}", String::from_utf8_lossy(&out.stdout)))
    }
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}/mcp")
}

fn first_text(result: &Value) -> &str {
    result["content"][0]["text"].as_str().unwrap_or("")
}

/// Progress, logging, sampling, elicitation and roots through the
/// gateway, for a client that offers them and one that does not.
fn check_features(out: &Value) {
    assert_eq!(first_text(&out["work"]), "a: 5 steps done", "{out}");
    let progress = out["progress"].as_array().expect("progress");
    assert_eq!(progress.len(), 5, "every progress notification: {out}");
    for (i, p) in progress.iter().enumerate() {
        let n = i as f64 + 1.0;
        assert_eq!(p, &json!([n, 5.0, format!("a: step {}", i + 1)]), "{out}");
    }
    let logs: Vec<&Value> = out["logs"]
        .as_array()
        .expect("logs")
        .iter()
        .filter(|l| l.to_string().contains("a: step"))
        .collect();
    assert_eq!(logs.len(), 5, "every log message: {out}");
    assert!(logs.iter().all(|l| l["level"] == "info"), "{out}");

    assert_eq!(
        first_text(&out["ask_model"]),
        "a sampled: from the client",
        "{out}"
    );
    assert_eq!(out["sampled"], json!(["a: hi"]), "{out}");
    assert_eq!(
        first_text(&out["ask_user"]),
        "a elicited: accept yes",
        "{out}"
    );
    assert_eq!(out["elicited"], json!(["a: ok?"]), "{out}");
    assert_eq!(
        first_text(&out["ask_roots"]),
        "a roots: file:///client/root",
        "{out}"
    );

    // The policy's refusal, named, reaches the server (which reports it
    // as its tool's error).
    for (key, cap, method) in [
        ("bare_ask_model", "sampling", "sampling/createMessage"),
        ("bare_ask_user", "elicitation", "elicitation/create"),
        ("bare_ask_roots", "roots", "roots/list"),
    ] {
        let result = &out[key];
        assert_eq!(result["isError"], true, "{out}");
        let text = first_text(result);
        assert!(
            text.contains(&format!(
                "did not declare the \"{cap}\" capability, so {method} cannot reach it"
            )),
            "{key}: {text}"
        );
    }
}

#[test]
fn the_python_sdk_over_http_gets_progress_logging_sampling_elicitation_and_roots() {
    let setup = Setup::new();
    // Namespaced: the servers' tools as `a__work`, beside the built-in ones.
    let (_gw, port) = setup.gateway(false);
    let out = setup.client(&[&url(port), "features", "a__"]);
    let tools = out["tools"].as_array().expect("tools");
    for name in ["a__work", "a__ask_model", "b__ask_user", "read_file"] {
        assert!(tools.contains(&json!(name)), "{name} missing: {out}");
    }
    check_features(&out);
    drop(_gw);

    // `--expose a`: the same, with the server's own names.
    let (_gw, port) = setup.gateway(true);
    let out = setup.client(&[&url(port), "features"]);
    assert_eq!(
        out["tools"],
        json!([
            "ask_model",
            "ask_roots",
            "ask_together",
            "ask_user",
            "flood",
            "wait_cancel",
            "work",
            "work_together"
        ]),
        "{out}"
    );
    check_features(&out);
}

/// Namespaced, two sessions at once, each calling another server's tool
/// that samples: each session's callback gets its own server's request
/// and nothing else, while both are outstanding.
#[test]
fn each_http_session_gets_only_the_requests_its_call_caused() {
    let setup = Setup::new();
    let (_gw, port) = setup.gateway(false);
    let out = setup.client(&[&url(port), "apart"]);
    assert_eq!(
        out["sampled"],
        json!([["a: from session 1"], ["b: from session 2"]]),
        "{out}"
    );
    assert_eq!(
        out["results"],
        json!(["a sampled: from the client", "b sampled: from the client"]),
        "{out}"
    );
}

/// Two sessions' calls in flight to the same server at once: nothing in
/// the server's sampling request says whose call it serves, so neither
/// client is asked and the server is told why.
#[test]
fn a_request_no_one_session_owns_reaches_no_client() {
    let setup = Setup::new();
    let (_gw, port) = setup.gateway(false);
    let out = setup.client(&[&url(port), "same"]);
    assert_eq!(out["sampled"], json!([[], []]), "{out}");
    for result in out["results"].as_array().expect("results") {
        let text = result.as_str().unwrap_or("");
        assert!(
            text.contains("calls of more than one client session are in flight to this server"),
            "{out}"
        );
    }
}

/// Two sessions' calls in flight to one server at once, each with the
/// same progress token (the SDK's request id): each session gets its own
/// call's five progress notifications, and none of the other's.
#[test]
fn progress_reaches_its_own_session_though_the_tokens_are_the_same() {
    let setup = Setup::new();
    let (_gw, port) = setup.gateway(false);
    let out = setup.client(&[&url(port), "progress"]);
    let steps =
        |who: &str| -> Value { (1..=5).map(|i| json!(format!("{who}: step {i}"))).collect() };
    assert_eq!(
        out["progress"],
        json!([steps("session 1"), steps("session 2")]),
        "{out}"
    );
    assert_eq!(
        out["results"],
        json!(["a: session 1 done", "a: session 2 done"]),
        "{out}"
    );
}
