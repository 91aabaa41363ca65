//! The interactive TUI (`bulkhead` with no subcommand): ratatui on
//! crossterm, on tokio.
//!
//! # Responsiveness
//!
//! - The UI task ([`events::run_loop`]) only handles input and renders.
//!   Each tool call runs in its own task ([`calls`]) that drives the host's
//!   `CallHandle`, keeps a bounded capture and a 1 KiB preview, and
//!   publishes its newest state in a slot. The UI learns that a slot
//!   changed through a bounded channel; a full channel drops the wake,
//!   which loses nothing because the slot holds the latest figures.
//! - Frames are drawn on demand and at most every 16 ms. A frame lays out
//!   only what is visible ([`render`]); the pager reads only the slices
//!   its rows need ([`pager`]).
//! - Memory: at most [`state::MAX_ENTRIES`] entries and
//!   [`state::MAX_OUTPUTS_IN_MEMORY`] in-memory outputs of about 1 MiB.
//!
//! # Terminal
//!
//! Raw mode and the alternate screen are restored on every exit path,
//! panics included ([`terminal`]). Logs go to a file, never to the screen.

pub mod calls;
pub mod card;
pub mod commands;
pub mod conversation;
pub mod events;
pub mod format;
pub mod keys;
pub mod limits;
pub mod markdown;
pub mod model_mode;
pub mod overlay;
pub mod pager;
pub mod render;
pub mod session_view;
pub mod sessions;
#[cfg(test)]
mod snapshots;
#[cfg(test)]
mod snapshots_resize;
pub mod state;
pub mod status;
pub mod store_io;
#[cfg(test)]
mod stored_limits_tests;
pub mod terminal;
pub mod theme;
pub mod wrap;

use std::path::PathBuf;

use bulkhead_host::{CallLimits, CallPolicy, CallRequest, ToolHost};
use bulkhead_mcp::{ServerSession, ServerState};
use tokio::sync::mpsc;

use events::UiMsg;
use std::sync::Arc;
use store_io::{LazySession, StoreIo};

/// What direct-mode calls run under (the config's tool policy, as
/// `bulkhead run` chooses it); `/limits` changes the limits in the app.
#[derive(Clone)]
pub struct CallSetup {
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: PathBuf,
}

/// What the UI needs to act: the host, how calls run, where to send news.
pub struct Ctx {
    pub host: ToolHost,
    /// The runtime tool calls run on. The UI task has its thread to
    /// itself: a call task handling a flood of chunks never delays a frame.
    /// `None`: the caller's runtime (tests).
    pub calls: Option<tokio::runtime::Handle>,
    pub setup: CallSetup,
    pub wake: mpsc::Sender<UiMsg>,
    /// The configured MCP servers, started with the app.
    pub mcp: Vec<ServerSession>,
    /// The session store; `None` when it could not be opened (the app
    /// says why, and runs without recording).
    pub store: Option<StoreIo>,
    /// The agent loop, in model mode; `None` is direct mode.
    pub agent: Option<model_mode::AgentLink>,
}

impl Ctx {
    /// A direct-mode call: streamed (the call task keeps a bounded
    /// capture, so the policy's output cap may be large without costing
    /// host memory).
    pub fn request(
        &self,
        tool: &str,
        args: &serde_json::Value,
        limits: &CallLimits,
    ) -> CallRequest {
        CallRequest::new(tool, args.to_string())
            .limits(limits.clone())
            .cwd(&self.setup.cwd)
            .policy(self.setup.policy.clone())
            .stream_output(true)
    }

    /// Where a call's output is recorded as it streams.
    pub fn recorder(
        &self,
        session: Option<&Arc<LazySession>>,
        tool: &str,
        args: &serde_json::Value,
        limits: &bulkhead_host::CallLimits,
    ) -> Option<store_io::Recorder> {
        let store = self.store.as_ref()?;
        Some(store.recorder(session?, tool, &args.to_string(), limits))
    }

    pub fn mcp_markdown(&self) -> String {
        if self.mcp.is_empty() {
            return "No MCP servers are configured (`[mcp] servers_file` in the config, \
                    or `bulkhead mcp serve --servers FILE`)."
                .into();
        }
        let mut out = String::from("**MCP servers**:\n\n");
        for m in &self.mcp {
            let s = m.status();
            let state = format!("{:?}", s.state).to_lowercase();
            let mut line = format!(
                "- `{}`: {state}, {} tools, {} restarts, peak {}",
                s.name,
                s.tools.len(),
                s.restarts,
                format::size(s.peak_rss_bytes)
            );
            if let Some(e) = &s.last_error {
                line.push_str(&format!(" — {e}"));
            }
            if !s.not_enforced.is_empty() {
                line.push_str(&format!(" — NOT ENFORCED: {}", s.not_enforced.join(", ")));
            }
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// Servers up and failed, for the status bar.
    pub fn mcp_counts(&self) -> (usize, usize) {
        let states: Vec<ServerState> = self.mcp.iter().map(|m| m.status().state).collect();
        let up = states.iter().filter(|s| **s == ServerState::Ready).count();
        let failed = states.iter().filter(|s| **s == ServerState::Failed).count();
        (up, failed)
    }

    /// Opens the session picker: one page of the newest sessions.
    pub fn list_sessions(&self, app: &mut state::App) {
        let Some(store) = &self.store else {
            app.note("No session store is open, so there are no sessions to list.");
            return;
        };
        match store.read(|s| s.list_sessions(None, session_view::PICKER_ROWS)) {
            Ok(Ok(list)) => {
                let rows = list.iter().map(session_view::row).collect();
                app.overlay = Some(state::Overlay::Sessions(sessions::Picker::new(rows)));
            }
            Ok(Err(e)) => app.note(&format!("cannot list the sessions: {e}")),
            Err(e) => app.note(&format!("cannot list the sessions: {e}")),
        }
    }

    /// Makes session `id` the current one and shows its last items.
    pub fn open_session(&self, app: &mut state::App, id: &str) {
        let Some(store) = &self.store else {
            app.note("No session store is open.");
            return;
        };
        if let Err(e) = session_view::open(app, store, id) {
            app.note(&e);
        }
    }
}

/// Sends the enforcement summary once the worker's sandbox probe answers:
/// the memory mechanism, and how many sandbox mechanisms this kernel
/// offers (as `bulkhead doctor` shows them).
pub fn probe_enforcement(host: &ToolHost, wake: mpsc::Sender<UiMsg>) {
    let host = host.clone();
    tokio::spawn(async move {
        let memory = host.enforcer().mechanism();
        let text = match host.probe_sandbox().await {
            Ok(list) => {
                let rows = list.as_array().map(Vec::as_slice).unwrap_or(&[]);
                let ok = rows
                    .iter()
                    .filter(|r| r["available"].as_bool() == Some(true))
                    .count();
                format!("{memory} sbx {ok}/{}", rows.len())
            }
            Err(e) => {
                tracing::warn!(error = %e, "sandbox probe failed");
                format!("{memory} sbx ?")
            }
        };
        let _ = wake.send(UiMsg::Enforcement(text)).await;
    });
}
