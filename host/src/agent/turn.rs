//! The loop itself: one prompt, as many turns as the model needs (up to
//! `max_turns`), each a request built from the store's history window.

use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

use crate::ToolHost;
use crate::model::{ChatRequest, ModelClient, ModelError, ModelEvent, ToolCall};
use crate::store::{ItemKind, NewItem, SessionId, Store, StoreError};

use super::config::{AgentSpec, ModelSpec};
use super::dispatch::{Dispatch, Dispatched};
use super::history::{self, AssistantMeta, Budget};
use super::tools::ToolSet;

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
    fn tool_finished(&mut self, call: &ToolCall, done: &Dispatched);
    /// Something the loop decided (a stop at `max_turns`).
    fn notice(&mut self, text: &str);
}

/// Why a run failed.
#[derive(Debug, thiserror::Error)]
pub enum AgentError {
    #[error("model: {0}")]
    Model(#[from] ModelError),
    #[error("session store: {0}")]
    Store(#[from] StoreError),
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
}

/// Everything one run needs.
pub struct Agent {
    pub host: ToolHost,
    pub client: ModelClient,
    pub store: Arc<Mutex<Store>>,
    pub session: SessionId,
    pub agent: AgentSpec,
    pub model: ModelSpec,
    pub tools: ToolSet,
    pub budget: Budget,
    pub cancel: CancellationToken,
}

impl Agent {
    fn store(&self) -> std::sync::MutexGuard<'_, Store> {
        self.store.lock().unwrap_or_else(|p| p.into_inner())
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

    /// Runs `prompt` to an answer, or to `max_turns`.
    pub async fn run(
        &mut self,
        prompt: &str,
        observer: &mut dyn Observer,
    ) -> Result<RunEnd, AgentError> {
        self.store()
            .append(self.session, &NewItem::new(ItemKind::User, prompt))?;
        for turn in 1..=self.agent.max_turns {
            let calls = self.turn(turn, observer).await?;
            if calls.is_empty() {
                return Ok(RunEnd::Answered { turns: turn });
            }
            self.dispatch(calls, observer).await?;
        }
        let notice = format!(
            "stopped: the model still asked for tools after {} turns (agents.{}.max_turns); \
             its last tool results are stored, and a new prompt continues from here",
            self.agent.max_turns, self.agent.name
        );
        self.store().append(
            self.session,
            &NewItem::new(ItemKind::Notice, notice.clone()),
        )?;
        observer.notice(&notice);
        Ok(RunEnd::MaxTurns {
            turns: self.agent.max_turns,
        })
    }

    /// One request and its streamed answer, stored. Returns its tool calls.
    async fn turn(
        &mut self,
        turn: u32,
        observer: &mut dyn Observer,
    ) -> Result<Vec<ToolCall>, AgentError> {
        let (body, items, omitted) = self.build_body()?;
        let body_len = body.len();
        observer.request(turn, body_len, items, omitted);
        let mut stream = self.client.send(body, &self.cancel).await?;
        let mut text = String::new();
        let mut calls: Vec<ToolCall> = Vec::new();
        let mut clipped = false;
        while let Some(event) = stream.next().await {
            match event? {
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
        let mut item = NewItem::new(ItemKind::Assistant, text);
        if !calls.is_empty() {
            let meta = AssistantMeta {
                tool_calls: calls.clone(),
            };
            if let Ok(json) = serde_json::to_string(&meta) {
                item = item.with_meta(json);
            }
        }
        self.store().append(self.session, &item)?;
        Ok(calls)
    }

    /// The request body, from the history window, within the budget. The
    /// window is chosen in SQL; if the serialised body still passes the
    /// budget (escaping, envelopes), fewer items are asked for.
    fn build_body(&self) -> Result<(bytes::Bytes, usize, u64), AgentError> {
        let fixed = serde_json::to_vec(&self.tools.specs).map_or(0, |v| v.len() as u64);
        let mut max_items = self.agent.max_history_items;
        for _ in 0..FIT_ATTEMPTS {
            let spec =
                history::window_spec(&self.agent, max_items, self.budget.window_bytes(fixed));
            let prepared = {
                let store = self.store();
                let window = store.history_window(self.session, &spec)?;
                history::prepare(window, &self.agent, |id, h, t| {
                    store.result_view(id, h, t).ok()
                })
            };
            let req = ChatRequest {
                model: &self.model.model,
                system: prepared.system.as_deref(),
                messages: &prepared.messages,
                tools: &self.tools.specs,
                max_tokens: self.model.max_tokens,
                temperature: None,
            };
            let body = self.client.build_body(&req)?;
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

    /// Runs the calls of one answer in parallel, each recorded as it ends.
    async fn dispatch(
        &mut self,
        calls: Vec<ToolCall>,
        observer: &mut dyn Observer,
    ) -> Result<(), AgentError> {
        let mut prepared = Vec::with_capacity(calls.len());
        for (index, call) in calls.iter().enumerate() {
            observer.tool_started(call);
            let p = self.tools.prepare(&self.agent, &call.name, &call.arguments);
            prepared.push((index, call.clone(), p));
        }
        let mut running = Dispatch::start(&self.host, &self.store, self.session, prepared);
        while let Some(done) = running.next().await {
            let done = done?;
            observer.tool_finished(&calls[done.index], &done);
        }
        Ok(())
    }
}
