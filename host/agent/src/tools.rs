//! The tools an agent offers the model, and how each call is set up: the
//! built-in catalogue (asked of the worker) filtered by the agent's list,
//! plus `read_tool_result`, whose store path and session the host adds.
//!
//! `read_tool_result` is internal to the agent loop, not in the worker's
//! catalogue: its arguments include a store path and a session that only
//! the host owning the session can give, and outside a session (`bulkhead
//! run`, `mcp serve`) it has nothing to read. The model sees a schema
//! without them.

use std::path::{Path, PathBuf};

use serde::Deserialize;
use serde_json::json;

use bulkhead_host::limits::CallLimits;
use bulkhead_host::policy::{CallPolicy, PolicyError, ResolveContext, preset, resolve};
use bulkhead_host::{CallRequest, HostError, ToolHost};
use bulkhead_mcp::ServerSession;
use bulkhead_model::ToolSpec;
use bulkhead_store::SessionId;

use super::mcp_tools::{self, McpCall};
use bulkhead_config::agents::AgentSpec;
use bulkhead_mcp::NAMESPACE_SEPARATOR;

/// The loop's own tool.
pub const READ_TOOL_RESULT: &str = "read_tool_result";

/// Why the tool set could not be built.
#[derive(Debug, thiserror::Error)]
pub enum ToolSetError {
    #[error(transparent)]
    Host(#[from] HostError),
    #[error(transparent)]
    Policy(#[from] PolicyError),
    #[error(
        "agent \"{agent}\": tools lists \"{tool}\", which is not a built-in tool; they are: {known}"
    )]
    UnknownTool {
        agent: String,
        tool: String,
        known: String,
    },
    #[error("agent \"{agent}\": MCP server \"{server}\" did not start: {reason}")]
    McpServer {
        agent: String,
        server: String,
        reason: String,
    },
}

/// The tools of one agent and how their calls run.
#[derive(Clone)]
pub struct ToolSet {
    pub specs: Vec<ToolSpec>,
    /// Policy, limits and working directory of the agent's tool calls.
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: PathBuf,
    store: PathBuf,
    /// `untrusted`, plus reading the store's directory.
    store_policy: CallPolicy,
    session: SessionId,
    /// Largest slice `read_tool_result` returns: the view budget, less the
    /// frame, so the slice is never cut again.
    read_limit: u64,
    /// The agent's MCP servers, whose tools are `server__tool`.
    mcp: Vec<ServerSession>,
}

/// What the model may pass to `read_tool_result`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ReadArgs {
    id: serde_json::Value,
    #[serde(default)]
    offset: u64,
    limit: Option<u64>,
}

/// A call the model asked for, checked: ready to run, or refused with the
/// text the model gets instead.
pub enum Prepared {
    Run(Box<CallRequest>),
    /// A tool of one of the agent's MCP servers.
    Mcp(Box<McpCall>),
    Refused(String),
}

/// What a tool set is built from.
pub struct ToolSetInput<'a> {
    pub agent: &'a AgentSpec,
    pub policy: CallPolicy,
    pub limits: CallLimits,
    pub cwd: PathBuf,
    pub store: &'a Path,
    pub session: SessionId,
    /// Sessions of the agent's `mcp_servers`, started.
    pub mcp: Vec<ServerSession>,
}

impl ToolSet {
    pub async fn new(host: &ToolHost, input: ToolSetInput<'_>) -> Result<Self, ToolSetError> {
        let catalogue = host.list_tools().await?;
        let entries = catalogue.as_array().cloned().unwrap_or_default();
        let names: Vec<String> = entries
            .iter()
            .filter_map(|t| t.get("name")?.as_str().map(str::to_owned))
            .collect();
        if let Some(list) = &input.agent.tools {
            for tool in list {
                if tool != READ_TOOL_RESULT && !names.contains(tool) {
                    return Err(ToolSetError::UnknownTool {
                        agent: input.agent.name.clone(),
                        tool: tool.clone(),
                        known: names.join(", "),
                    });
                }
            }
        }
        let wanted = |name: &str| {
            input
                .agent
                .tools
                .as_ref()
                .is_none_or(|l| l.iter().any(|t| t == name))
        };
        let mut specs: Vec<ToolSpec> = entries
            .iter()
            .filter_map(|t| {
                let name = t.get("name")?.as_str()?;
                wanted(name).then(|| ToolSpec {
                    name: name.to_owned(),
                    description: t
                        .get("description")
                        .and_then(|d| d.as_str())
                        .unwrap_or_default()
                        .to_owned(),
                    input_schema: t
                        .get("schema")
                        .cloned()
                        .unwrap_or_else(|| json!({"type": "object"})),
                })
            })
            .collect();
        let read_limit = input
            .agent
            .budget_for(READ_TOOL_RESULT)
            .saturating_sub(super::view::FRAME_BYTES)
            .max(1);
        specs.push(read_spec(read_limit));
        let mcp_specs = mcp_tools::specs(&input.mcp)
            .await
            .map_err(|(server, reason)| ToolSetError::McpServer {
                agent: input.agent.name.clone(),
                server,
                reason,
            })?;
        specs.extend(mcp_specs);
        let store_dir = input
            .store
            .parent()
            .map(Path::to_path_buf)
            .unwrap_or_else(|| PathBuf::from("."));
        let untrusted = preset("untrusted").ok_or_else(|| PolicyError::Unknown {
            name: "untrusted".into(),
            known: String::new(),
        })?;
        let store_policy = resolve(
            &untrusted,
            &ResolveContext {
                home: std::env::var_os("HOME").map(PathBuf::from),
                workspace: None,
                read: vec![store_dir],
                write: Vec::new(),
                install_dir: None,
                allow_net: Default::default(),
            },
        )?;
        Ok(Self {
            specs,
            policy: input.policy,
            limits: input.limits,
            cwd: input.cwd,
            store: input.store.to_path_buf(),
            store_policy,
            session: input.session,
            read_limit,
            mcp: input.mcp,
        })
    }

    /// Checks a call and builds its request. A tool the agent does not
    /// offer, arguments that are not a JSON object, and a tool that needs
    /// confirmation (headless: nobody to ask) are refused with a reason.
    pub fn prepare(&self, agent: &AgentSpec, name: &str, args: &str) -> Prepared {
        self.prepare_with(agent, name, args, false)
    }

    /// Whether `name` is offered and must be confirmed by the user first.
    pub fn needs_confirm(&self, agent: &AgentSpec, name: &str) -> bool {
        self.specs.iter().any(|s| s.name == name) && agent.confirm.iter().any(|c| c == name)
    }

    /// As [`prepare`](Self::prepare), for a call the user has approved.
    pub fn prepare_approved(&self, agent: &AgentSpec, name: &str, args: &str) -> Prepared {
        self.prepare_with(agent, name, args, true)
    }

    fn prepare_with(&self, agent: &AgentSpec, name: &str, args: &str, approved: bool) -> Prepared {
        if !self.specs.iter().any(|s| s.name == name) {
            let known: Vec<&str> = self.specs.iter().map(|s| s.name.as_str()).collect();
            return Prepared::Refused(format!(
                "[failed: there is no tool \"{name}\"; the tools are: {}]",
                known.join(", ")
            ));
        }
        if !approved && agent.confirm.iter().any(|c| c == name) {
            return Prepared::Refused(format!(
                "[failed: \"{name}\" needs the user's confirmation (agents.{}.confirm), and this \
                 session runs headless with nobody to ask; it was not run]",
                agent.name
            ));
        }
        let args = if args.trim().is_empty() { "{}" } else { args };
        if name == READ_TOOL_RESULT {
            return match self.read_request(args) {
                Ok(req) => Prepared::Run(Box::new(req)),
                Err(e) => Prepared::Refused(format!("[failed: bad arguments: {e}]")),
            };
        }
        if !args.trim_start().starts_with('{') {
            return Prepared::Refused("[failed: the arguments must be a JSON object]".into());
        }
        if let Some(call) = self.mcp_call(name, args) {
            return call;
        }
        Prepared::Run(Box::new(
            CallRequest::new(name, args)
                .limits(self.limits.clone())
                .cwd(&self.cwd)
                .policy(self.policy.clone())
                .stream_output(true),
        ))
    }

    /// A call for `server__tool` of one of the agent's servers, if `name`
    /// is one.
    fn mcp_call(&self, name: &str, args: &str) -> Option<Prepared> {
        let (server, tool) = name.split_once(NAMESPACE_SEPARATOR)?;
        let session = self.mcp.iter().find(|s| s.name() == server)?;
        Some(match serde_json::from_str::<serde_json::Value>(args) {
            Ok(arguments) => Prepared::Mcp(Box::new(McpCall {
                session: session.clone(),
                tool: tool.to_owned(),
                arguments,
            })),
            Err(e) => Prepared::Refused(format!("[failed: bad arguments: {e}]")),
        })
    }

    /// `read_tool_result` as the worker runs it: the model's id, offset
    /// and limit (capped at the view budget), and the host's store and
    /// session, under `untrusted` plus reading the store.
    fn read_request(&self, args: &str) -> Result<CallRequest, String> {
        let parsed: ReadArgs = serde_json::from_str(args).map_err(|e| e.to_string())?;
        let limit = parsed
            .limit
            .unwrap_or(self.read_limit)
            .clamp(1, self.read_limit);
        let full = json!({
            "store": self.store,
            "session": self.session.0,
            "id": parsed.id,
            "offset": parsed.offset,
            "limit": limit,
        });
        Ok(CallRequest::new(READ_TOOL_RESULT, full.to_string())
            .limits(self.limits.clone())
            .policy(self.store_policy.clone())
            .stream_output(true))
    }
}

/// The schema the model sees: no store, no session.
fn read_spec(max_limit: u64) -> ToolSpec {
    ToolSpec {
        name: READ_TOOL_RESULT.to_owned(),
        description: "Reads part of a stored tool result that was cut in your view: give the id \
                      from the cut marker (like r42), a byte offset, and how many bytes."
            .to_owned(),
        input_schema: json!({
            "type": "object",
            "properties": {
                "id": {"type": "string", "description": "The result's id, as the marker gives it (r42)."},
                "offset": {"type": "integer", "minimum": 0, "description": "First byte, from 0."},
                "limit": {"type": "integer", "minimum": 1, "maximum": max_limit,
                          "description": format!("Bytes to read, at most {max_limit}.")}
            },
            "required": ["id"],
            "additionalProperties": false
        }),
    }
}
