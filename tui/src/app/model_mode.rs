//! Model mode: the agent loop (`bulkhead_agent`) behind the
//! conversation. The loop runs on its own thread and runtime, so its model
//! stream and tool dispatch never share the UI's thread. What it shows reaches the UI the same way call figures do: the
//! streaming answer in a shared slot (bounded, latest wins, one wake per
//! frame at most), tool starts and ends as small messages.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bulkhead_agent::dispatch::{Dispatched, LiveCall};
use bulkhead_agent::{Agent, Approval, CancellationToken, Observer, RunEnd};
use bulkhead_faults::Fault;
use bulkhead_host::{CallLimits, LiveStatus};
use bulkhead_model::ToolCall;
use tokio::sync::{mpsc, oneshot, watch};

use super::events::UiMsg;

/// The most of a streaming answer the UI holds: the loop itself keeps at
/// most 1 MiB of an answer, and the screen shows its end.
pub const MAX_ANSWER_BYTES: usize = 1 << 20;

/// Prompts queued for the loop: one runs, one may wait.
const PROMPT_QUEUE: usize = 1;

/// Answer wakes are at most one per frame.
const WAKE_INTERVAL: Duration = Duration::from_millis(16);

/// What the loop reports, besides the answer text.
#[derive(Debug)]
pub enum AgentEvent {
    /// A tool marked `confirm` waits for the user's answer.
    Approve {
        name: String,
        args: String,
        reply: oneshot::Sender<Approval>,
    },
    ToolStarted {
        index: usize,
        name: String,
        args: String,
        /// How much of the answer slot's text the model wrote before this
        /// call: that part is drawn above the call's card, what follows
        /// below it.
        answer_bytes: usize,
    },
    /// A call's worker started: its card shows the figures `figures`
    /// holds (a task on the agent's runtime keeps them current) against
    /// `limits`, and the kill key fires `cancel` (this call alone).
    ToolLive {
        index: usize,
        limits: CallLimits,
        figures: Arc<Mutex<LiveStatus>>,
        cancel: CancellationToken,
        /// Faults for the running call (the kill and memory keys).
        faults: mpsc::Sender<Fault>,
        /// The faults it was started with (`/inject`).
        armed: Vec<String>,
    },
    ToolFinished {
        index: usize,
        item: i64,
        outcome: String,
        /// The injected fault that fired, if one did.
        injected: Option<String>,
    },
    Notice(String),
    /// The run ended: `Ok` with how, or the error.
    Ended(Result<String, String>),
}

/// The answer being streamed.
#[derive(Debug, Default)]
pub struct AnswerSlot {
    pub text: Mutex<String>,
}

/// The UI's end of the loop.
pub struct AgentLink {
    /// `provider:model`, for the status bar.
    pub label: String,
    prompts: mpsc::Sender<String>,
    cancel: Arc<Mutex<CancellationToken>>,
    pub answer: Arc<AnswerSlot>,
}

impl AgentLink {
    /// Starts the loop's thread. Its events go to the UI through `wake`.
    pub fn start(agent: Agent, label: String, wake: mpsc::Sender<UiMsg>) -> std::io::Result<Self> {
        let (prompts, rx) = mpsc::channel(PROMPT_QUEUE);
        let cancel = Arc::new(Mutex::new(CancellationToken::new()));
        let answer = Arc::new(AnswerSlot::default());
        let (c, a) = (cancel.clone(), answer.clone());
        std::thread::Builder::new()
            .name("agent".into())
            .spawn(move || run_thread(agent, rx, c, a, wake))?;
        Ok(Self {
            label,
            prompts,
            cancel,
            answer,
        })
    }

    /// Sends a prompt; `false` when a turn is already running.
    pub fn send(&self, prompt: &str) -> bool {
        if let Ok(mut t) = self.answer.text.lock() {
            t.clear();
        }
        self.prompts.try_send(prompt.to_owned()).is_ok()
    }

    /// Cancels the running turn (its model request and its tool calls).
    pub fn cancel(&self) {
        if let Ok(t) = self.cancel.lock() {
            t.cancel();
        }
    }
}

fn run_thread(
    mut agent: Agent,
    mut prompts: mpsc::Receiver<String>,
    cancel: Arc<Mutex<CancellationToken>>,
    answer: Arc<AnswerSlot>,
    wake: mpsc::Sender<UiMsg>,
) {
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            let _ = wake.try_send(UiMsg::Agent(AgentEvent::Ended(Err(format!(
                "cannot start the agent's runtime: {e}"
            )))));
            return;
        }
    };
    runtime.block_on(async {
        while let Some(prompt) = prompts.recv().await {
            let token = CancellationToken::new();
            if let Ok(mut c) = cancel.lock() {
                *c = token.clone();
            }
            agent.cancel = token;
            let mut observer = UiObserver {
                answer: answer.clone(),
                wake: wake.clone(),
                last_wake: Instant::now() - WAKE_INTERVAL,
                started: 0,
            };
            let end = match agent.run(&prompt, &mut observer).await {
                Ok(RunEnd::Answered { turns }) => Ok(format!("answered in {turns} turn(s)")),
                Ok(RunEnd::MaxTurns { turns }) => Ok(format!("stopped at max_turns ({turns})")),
                Ok(RunEnd::Cancelled { .. }) => Ok("cancelled".to_owned()),
                Err(e) => Err(e.to_string()),
            };
            let _ = wake.send(UiMsg::Answer).await;
            let _ = wake.send(UiMsg::Agent(AgentEvent::Ended(end))).await;
        }
    });
}

struct UiObserver {
    answer: Arc<AnswerSlot>,
    wake: mpsc::Sender<UiMsg>,
    last_wake: Instant,
    /// Tool calls started in the current answer.
    started: usize,
}

impl UiObserver {
    /// Tool and notice events are few per turn; a full channel means the
    /// UI is far behind, and the card or note is logged instead of shown.
    fn event(&self, e: AgentEvent) {
        if let Err(e) = self.wake.try_send(UiMsg::Agent(e)) {
            tracing::warn!(event = ?e, "the UI channel is full; an agent event is not shown");
        }
    }
}

impl Observer for UiObserver {
    fn text(&mut self, delta: &str) {
        if let Ok(mut t) = self.answer.text.lock() {
            let room = MAX_ANSWER_BYTES.saturating_sub(t.len());
            let mut end = delta.len().min(room);
            while !delta.is_char_boundary(end) {
                end -= 1;
            }
            t.push_str(&delta[..end]);
        }
        if self.last_wake.elapsed() >= WAKE_INTERVAL {
            self.last_wake = Instant::now();
            let _ = self.wake.try_send(UiMsg::Answer);
        }
    }

    fn tool_started(&mut self, call: &ToolCall) {
        // The dispatcher numbers calls by their place in the answer; the
        // observer sees them in that order.
        let index = self.started;
        self.started += 1;
        // Taken here, on the thread that writes the text, so the split
        // falls exactly where the call came, however late the UI reads it.
        let answer_bytes = self.answer.text.lock().map_or(0, |t| t.len());
        self.event(AgentEvent::ToolStarted {
            index,
            name: call.name.clone(),
            args: call.arguments.clone(),
            answer_bytes,
        });
    }

    fn tool_live(&mut self, _call: &ToolCall, live: LiveCall) {
        let figures = Arc::new(Mutex::new(live.live.borrow().clone()));
        // The observer runs inside the agent runtime's `block_on`, which
        // also drives the tasks it spawns.
        tokio::spawn(follow_figures(
            live.live,
            figures.clone(),
            self.wake.clone(),
        ));
        self.event(AgentEvent::ToolLive {
            index: live.index,
            limits: live.limits,
            figures,
            cancel: live.cancel,
            faults: live.faults,
            armed: live.armed,
        });
    }

    fn tool_finished(&mut self, _call: &ToolCall, done: &Dispatched) {
        self.event(AgentEvent::ToolFinished {
            index: done.index,
            item: done.item.0,
            outcome: done.outcome_line.clone(),
            injected: done.injected.clone(),
        });
    }

    fn notice(&mut self, text: &str) {
        self.event(AgentEvent::Notice(text.to_owned()));
    }

    fn approve<'a>(
        &'a mut self,
        call: &'a ToolCall,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Approval> + 'a>> {
        Box::pin(async move {
            let (reply, answer) = oneshot::channel();
            let ask = AgentEvent::Approve {
                name: call.name.clone(),
                args: call.arguments.clone(),
                reply,
            };
            // This one must not be dropped: wait for room.
            if self.wake.send(UiMsg::Agent(ask)).await.is_err() {
                return Approval::Deny {
                    reason: "the app was closing".into(),
                };
            }
            answer.await.unwrap_or(Approval::Deny {
                reason: "the app closed before the user answered".into(),
            })
        })
    }

    fn request(&mut self, _turn: u32, _body_bytes: usize, _items: usize, _omitted: u64) {
        // A new request: the next answer's tool calls count from 0.
        self.started = 0;
    }
}

/// Copies a call's newest figures into `figures` until its worker ends,
/// waking the UI at most once per frame. A full channel drops the wake:
/// the slot holds the latest figures, and the queued wake (or the next
/// tick) shows them.
async fn follow_figures(
    mut live: watch::Receiver<LiveStatus>,
    figures: Arc<Mutex<LiveStatus>>,
    wake: mpsc::Sender<UiMsg>,
) {
    let mut last_wake = Instant::now() - WAKE_INTERVAL;
    while live.changed().await.is_ok() {
        let newest = live.borrow_and_update().clone();
        if let Ok(mut f) = figures.lock() {
            *f = newest;
        }
        if last_wake.elapsed() >= WAKE_INTERVAL {
            last_wake = Instant::now();
            let _ = wake.try_send(UiMsg::AgentFigures);
        }
    }
}
