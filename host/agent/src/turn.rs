//! The loop itself: one prompt, as many turns as the model needs (up to
//! `max_turns`), each a request built from the store's history window.

use tokio_util::sync::CancellationToken;

use bulkhead_host::ToolHost;
use bulkhead_model::{ModelClient, ModelError, ModelEvent, ToolCall};
use bulkhead_store::{ItemKind, NewItem, SessionId, Store, StoreError};

use super::dispatch::{Dispatch, DispatchEvent, Dispatched, LiveCall};
use super::faults::ArmedFaults;
use super::history::{self, AssistantMeta, Budget};
use super::store_call::{StoreCallError, StoreRun};
use super::tools::ToolSet;
use bulkhead_config::agents::{AgentSpec, ModelSpec};
use bulkhead_store::StoreThread;

/// The most text of one answer the loop keeps. `max_tokens` of 4096 is
/// about 16 KiB; 1 MiB leaves room for any configured answer cap, and
/// bounds what a server that ignores `max_tokens` can make the host hold.
const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Attempts at fitting a request into the budget, each with a quarter
/// fewer items. Four take the window to about a third; beyond that the
/// pinned prompt or one item alone is too big, and the request is refused.
const FIT_ATTEMPTS: u32 = 6;

/// What the user sees of a run (`bulkhead chat` prints it).
pub trait Observer {
    /// A piece of the model's answer.
    fn text(&mut self, delta: &str);
    /// A request went out.
    fn request(&mut self, _turn: u32, _body_bytes: usize, _items: usize, _omitted: u64) {}
    fn tool_started(&mut self, call: &ToolCall);
    /// A tool call's worker started: `live.live` carries its figures
    /// (RSS, CPU, bytes, elapsed; latest wins) until it ends, and
    /// `live.limits` are what it runs under. MCP calls and refused calls
    /// have no worker and no such event. The default ignores it.
    fn tool_live(&mut self, _call: &ToolCall, _live: LiveCall) {}
    fn tool_finished(&mut self, call: &ToolCall, done: &Dispatched);
    /// Something the loop decided (a stop at `max_turns`).
    fn notice(&mut self, text: &str);
    /// Asks the user whether a tool marked `confirm` may run. The default
    /// (headless: nobody to ask) refuses it, telling the model why.
    fn approve<'a>(
        &'a mut self,
        _call: &'a ToolCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + 'a>> {
        Box::pin(std::future::ready(Approval::Headless))
    }
}

/// The user's answer to a tool that needs confirmation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Approval {
    /// Nobody to ask: refused, as `bulkhead chat` does.
    Headless,
    AllowOnce,
    /// Allowed, and the user will not be asked again for this tool in
    /// this session (the asker remembers).
    AllowForSession,
    Deny {
        reason: String,
    },
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("session store: {0}")]
    Store(#[from] StoreCallError),
    #[error(
        "the request does not fit the context budget of {budget_tokens} tokens even with {items} item(s) of history; raise context_tokens or shorten the system prompt"
    )]
    TooBig { budget_tokens: u64, items: usize },
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RunEnd {
    /// The model answered without asking for more tools.
    Answered { turns: u32 },
    /// It still wanted tools after `max_turns` requests.
    MaxTurns { turns: u32 },
    /// The cancel token fired (Ctrl-C) during turn `turn`: the answer so
    /// far and the results of the calls it had started are stored, and a
    /// notice says so.
    Cancelled { turn: u32 },
}

/// Everything one run needs.
pub struct Agent {
    pub host: ToolHost,
    pub client: ModelClient,
    /// The session store, on its own thread.
    pub store: StoreThread,
    pub session: SessionId,
    pub agent: AgentSpec,
    pub model: ModelSpec,
    pub tools: ToolSet,
    pub budget: Budget,
    pub cancel: CancellationToken,
    /// Faults armed for the next worker call the model makes (the TUI's
    /// `/inject`); taken by the first such call of an answer.
    pub armed: ArmedFaults,
}

impl Agent {
    /// Appends an item to the session, on the store's thread.
    async fn append(&self, item: NewItem) -> Result<(), AgentError> {
        let session = self.session;
        self.store.run(move |s| s.append(session, &item)).await?;
        Ok(())
    }

    /// Pins the agent's system prompt in a new session.
    pub fn start_session(
        store: &Store,
        session: SessionId,
        agent: &AgentSpec,
    ) -> Result<(), StoreError> {
        store.append(
            session,
            &NewItem::system_prompt(agent.system_prompt.clone()),
        )?;
        Ok(())
    }

    /// Runs `prompt` to an answer, or to `max_turns`, or until `cancel`
    /// fires.
    pub async fn run(
        &mut self,
        prompt: &str,
        observer: &mut dyn Observer,
    ) -> Result<RunEnd, AgentError> {
        self.append(NewItem::new(ItemKind::User, prompt)).await?;
        for turn in 1..=self.agent.max_turns {
            let calls = match self.turn(turn, observer).await {
                Err(AgentError::Model(ModelError::Cancelled)) if self.cancel.is_cancelled() => {
                    return self.cancelled(turn, observer).await;
                }
                other => other?,
            };
            if self.cancel.is_cancelled() {
                return self.cancelled(turn, observer).await;
            }
            if calls.is_empty() {
                return Ok(RunEnd::Answered { turns: turn });
            }
            self.dispatch(calls, observer).await?;
            if self.cancel.is_cancelled() {
                return self.cancelled(turn, observer).await;
            }
        }
        let notice = format!(
            "stopped: the model still asked for tools after {} turns (agents.{}.max_turns); \
             its last tool results are stored, and a new prompt continues from here",
            self.agent.max_turns, self.agent.name
        );
        self.append(NewItem::new(ItemKind::Notice, notice.clone()))
            .await?;
        observer.notice(&notice);
        Ok(RunEnd::MaxTurns {
            turns: self.agent.max_turns,
        })
    }

    /// Records that the run was cancelled, for the user and the session.
    async fn cancelled(
        &self,
        turn: u32,
        observer: &mut dyn Observer,
    ) -> Result<RunEnd, AgentError> {
        let notice = format!(
            "cancelled by the user during turn {turn}: the model's answer so far and the \
             results of the tools it had started are stored; running tools were stopped"
        );
        self.append(NewItem::new(ItemKind::Notice, notice.clone()))
            .await?;
        observer.notice(&notice);
        Ok(RunEnd::Cancelled { turn })
    }

    /// One request and its streamed answer, stored. Returns its tool calls;
    /// none if the run was cancelled mid-answer (the text so far is stored,
    /// the calls are not run).
    async fn turn(
        &mut self,
        turn: u32,
        observer: &mut dyn Observer,
    ) -> Result<Vec<ToolCall>, AgentError> {
        let (body, items, omitted) = self.build_body().await?;
        let body_len = body.len();
        observer.request(turn, body_len, items, omitted);
        let mut stream = self.client.send(body, &self.cancel).await?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut clipped = false;
        let mut cancelled = false;
        while let Some(event) = stream.next().await {
            let event = match event {
                Err(ModelError::Cancelled) if self.cancel.is_cancelled() => {
                    cancelled = true;
                    break;
                }
                other => other?,
            };
            match event {
                ModelEvent::TextDelta(delta) => {
                    observer.text(&delta);
                    if text.len() + delta.len() <= MAX_ANSWER_BYTES {
                        text.push_str(&delta);
                    } else {
                        clipped = true;
                    }
                }
                ModelEvent::ToolCallComplete { call, .. } => calls.push(call),
                ModelEvent::Usage(usage) => self.budget.observe(body_len, usage.input_tokens),
                ModelEvent::ToolCallStarted { .. }
                | ModelEvent::ToolCallArgumentsDelta { .. }
                | ModelEvent::Stop(_)
                | ModelEvent::Done => {}
            }
        }
        if clipped {
            text.push_str("\n[… answer cut by bulkhead at 1 MiB …]");
        }
        if cancelled {
            if !text.is_empty() {
                text.push_str("\n[… answer cut: cancelled by the user …]");
                self.append(NewItem::new(ItemKind::Assistant, text)).await?;
            }
            return Ok(Vec::new());
        }
        let mut item = NewItem::new(ItemKind::Assistant, text);
        if !calls.is_empty() {
            let meta = AssistantMeta {
                tool_calls: calls.clone(),
            };
            if let Ok(json) = serde_json::to_string(&meta) {
                item = item.with_meta(json);
            }
        }
        self.append(item).await?;
        Ok(calls)
    }

    /// The request body, from the history window, within the budget. The
    /// window is chosen in SQL; if the serialised body still passes the
    /// budget (escaping, envelopes), fewer items are asked for.
    async fn build_body(&self) -> Result<(bytes::Bytes, usize, u64), AgentError> {
        let fixed = serde_json::to_vec(&self.tools.specs).map_or(0, |v| v.len() as u64);
        let mut max_items = self.agent.max_history_items;
        for _ in 0..FIT_ATTEMPTS {
            let spec =
                history::window_spec(&self.agent, max_items, self.budget.window_bytes(fixed));
            let (session, agent) = (self.session, self.agent.clone());
            let prepared = self
                .store
                .run(move |store| history::from_store(store, session, &agent, &spec))
                .await?;
            let body = self
                .client
                .build_body(&prepared.request(&self.model, &self.tools.specs))?;
            if body.len() as u64 <= self.budget.max_body_bytes() {
                return Ok((body, prepared.used_items, prepared.omitted));
            }
            tracing::debug!(
                bytes = body.len(),
                max_items,
                "request over budget; fewer items"
            );
            max_items = (prepared.used_items as u32 * 3 / 4).max(1);
        }
        Err(AgentError::TooBig {
            budget_tokens: self.budget.context_tokens,
            items: max_items as usize,
        })
    }

    /// Asks the user about a `confirm` tool, and records the answer (and a
    /// denial's reason) in the session as a notice.
    async fn confirm(
        &mut self,
        call: &ToolCall,
        observer: &mut dyn Observer,
    ) -> Result<super::tools::Prepared, AgentError> {
        let answer = observer.approve(call).await;
        let name = &call.name;
        let (notice, allowed) = match &answer {
            Approval::Headless => {
                return Ok(self.tools.prepare(&self.agent, name, &call.arguments));
            }
            Approval::AllowOnce => (
                format!("approval: \"{name}\" allowed once by the user"),
                true,
            ),
            Approval::AllowForSession => (
                format!("approval: \"{name}\" allowed by the user for the rest of the session"),
                true,
            ),
            Approval::Deny { reason } => (
                format!("approval: \"{name}\" denied by the user: {reason}"),
                false,
            ),
        };
        self.append(NewItem::new(ItemKind::Notice, notice.clone()))
            .await?;
        Ok(if allowed {
            self.tools
                .prepare_approved(&self.agent, name, &call.arguments)
        } else {
            super::tools::Prepared::Refused(format!("[failed: {notice}; it was not run]"))
        })
    }

    /// Runs the calls of one answer in parallel, each recorded as it ends.
    async fn dispatch(
        &mut self,
        calls: Vec<ToolCall>,
        observer: &mut dyn Observer,
    ) -> Result<(), AgentError> {
        let mut prepared = Vec::with_capacity(calls.len());
        for (index, call) in calls.iter().enumerate() {
            observer.tool_started(call);
            let mut p = if self.tools.needs_confirm(&self.agent, &call.name) {
                self.confirm(call, observer).await?
            } else {
                self.tools.prepare(&self.agent, &call.name, &call.arguments)
            };
            // Armed faults go to the first call that runs in a worker; an
            // MCP call or a refusal leaves them armed.
            if let super::tools::Prepared::Run(req) = &mut p {
                for spec in self.armed.take() {
                    req.inject.push(spec);
                }
            }
            prepared.push((index, call.clone(), p));
        }
        let mut running = Dispatch::start(
            &self.host,
            &self.store,
            self.session,
            prepared,
            &self.cancel,
        );
        while let Some(event) = running.next().await {
            match event {
                DispatchEvent::Live(live) => observer.tool_live(&calls[live.index], live),
                DispatchEvent::Ended(done) => {
                    let done = done?;
                    observer.tool_finished(&calls[done.index], &done);
                }
            }
        }
        Ok(())
    }
}
