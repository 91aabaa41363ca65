//! Everything the screen shows, in one struct the UI task owns. Unit tests
//! build it directly (no workers) and render it to a `TestBackend`.

use std::collections::{HashMap, VecDeque};
use std::sync::Arc;

use bulkhead_host::{CallLimits, Fault};
use ratatui::text::Line;

use super::calls::CallSlot;
use super::card::Card;
use super::markdown;
use super::pager::Pager;
use super::store_io::LazySession;
use super::theme::Theme;

/// Entries the conversation keeps in memory. The UI must run for days: a
/// call a second for a day is 86,400 cards, so older entries go (they are
/// in the session store). 400 entries is far more than a screen can
/// scroll back through usefully, and costs well under a megabyte.
pub const MAX_ENTRIES: usize = 400;

/// Finished cards whose output the UI holds in memory for the pager (the
/// bounded capture, about 1 MiB each). Older ones let it go: host memory
/// must not grow with the number of calls.
pub const MAX_OUTPUTS_IN_MEMORY: usize = 8;

/// One item of the conversation.
pub enum Entry {
    /// What the user typed.
    User(String),
    /// Text from bulkhead (help, tool lists, notices), already rendered.
    Note(Vec<Line<'static>>),
    Card(Box<Card>),
    /// The model's answer as it streams: only its end is laid out.
    Streaming(String),
}

/// What covers the conversation, if anything.
pub enum Overlay {
    Help,
    Pager(Pager),
    Sessions(super::sessions::Picker),
    /// A tool marked `confirm` asks before it runs.
    Approval(ApprovalPrompt),
}

/// An open approval question; dropping it unanswered denies the call.
pub struct ApprovalPrompt {
    pub name: String,
    pub args: String,
    pub reply: Option<tokio::sync::oneshot::Sender<bulkhead_agent::Approval>>,
}

/// The status bar's figures.
#[derive(Debug, Clone, Default)]
pub struct StatusInfo {
    pub host_rss: u64,
    pub running: usize,
    pub max_workers: usize,
    /// `None`: direct mode.
    pub model: Option<String>,
    pub session: Option<String>,
    /// E.g. `cgroup-v1 · sandbox 7/8`; "probing…" until the probe answers.
    pub enforcement: String,
    pub mcp_up: usize,
    pub mcp_failed: usize,
    pub mcp_configured: usize,
}

pub struct App {
    pub theme: Theme,
    pub entries: VecDeque<Entry>,
    /// Calls still running, by id.
    pub slots: HashMap<u64, Arc<CallSlot>>,
    /// The selected card's call id.
    pub selected: Option<u64>,
    pub input: String,
    /// Cursor position in `input`, in characters.
    pub cursor: usize,
    pub overlay: Option<Overlay>,
    pub status: StatusInfo,
    /// Rows scrolled up from the bottom of the conversation.
    pub scroll: usize,
    /// Advances the spinners; one per tick while calls run.
    pub tick: usize,
    pub quit: bool,
    /// Cards whose pager output is held in memory, oldest first.
    pub outputs_in_memory: VecDeque<u64>,
    /// The limits of the next call (`/limits` changes them).
    pub limits: CallLimits,
    /// Faults the next direct-mode call runs with (`/inject`); taken by
    /// that call.
    pub armed: bulkhead_agent::ArmedFaults,
    /// The session calls are recorded into; `None` without a store.
    pub session: Option<Arc<LazySession>>,
    /// A model turn is running (model mode).
    pub turn_running: bool,
    /// Card ids of the current answer's tool calls, by their place in it.
    pub agent_cards: Vec<u64>,
    /// Answers with tool calls so far: part of each agent card's id, so ids
    /// stay apart however many entries come and go.
    pub agent_answers: u64,
    /// Where in the answer slot's text the part after the latest tool calls
    /// starts; what comes before is drawn above their cards.
    pub answer_from: usize,
    /// The agent's running worker calls (figures and cancel), by card id.
    pub agent_calls: HashMap<u64, AgentCall>,
    /// Tools the user allowed for the rest of the session.
    pub approved_tools: std::collections::HashSet<String>,
}

/// One of the agent's running worker calls, as the TUI holds it.
pub struct AgentCall {
    /// The newest figures (a task on the agent's runtime keeps them).
    pub figures: Arc<std::sync::Mutex<bulkhead_host::LiveStatus>>,
    /// Kills this call alone (the stop key); the turn goes on.
    pub cancel: bulkhead_agent::CancellationToken,
    /// Faults for its worker (the kill and memory keys).
    pub faults: tokio::sync::mpsc::Sender<Fault>,
}

impl App {
    pub fn new(theme: Theme) -> Self {
        Self {
            theme,
            entries: VecDeque::new(),
            slots: HashMap::new(),
            selected: None,
            input: String::new(),
            cursor: 0,
            overlay: None,
            status: StatusInfo {
                enforcement: "probing…".into(),
                ..StatusInfo::default()
            },
            scroll: 0,
            tick: 0,
            quit: false,
            outputs_in_memory: VecDeque::new(),
            limits: CallLimits::default(),
            armed: bulkhead_agent::ArmedFaults::default(),
            session: None,
            turn_running: false,
            agent_cards: Vec::new(),
            agent_answers: 0,
            answer_from: 0,
            agent_calls: HashMap::new(),
            approved_tools: std::collections::HashSet::new(),
        }
    }

    pub fn push(&mut self, entry: Entry) {
        if self.entries.len() >= MAX_ENTRIES {
            self.entries.pop_front();
        }
        self.entries.push_back(entry);
    }

    /// Adds a note written in markdown.
    pub fn note(&mut self, markdown_text: &str) {
        let lines = markdown::render(markdown_text, self.theme);
        self.push(Entry::Note(lines));
    }

    pub fn cards(&self) -> impl DoubleEndedIterator<Item = &Card> {
        self.entries.iter().filter_map(|e| match e {
            Entry::Card(c) => Some(c.as_ref()),
            _ => None,
        })
    }

    pub fn card_mut(&mut self, call_id: u64) -> Option<&mut Card> {
        self.entries.iter_mut().rev().find_map(|e| match e {
            Entry::Card(c) if c.call_id == call_id => Some(c.as_mut()),
            _ => None,
        })
    }

    pub fn selected_card(&self) -> Option<&Card> {
        let id = self.selected?;
        self.cards().rev().find(|c| c.call_id == id)
    }

    pub fn has_running(&self) -> bool {
        !self.slots.is_empty()
    }

    /// Moves the selection `delta` cards (negative: older).
    pub fn select(&mut self, delta: isize) {
        let ids: Vec<u64> = self.cards().map(|c| c.call_id).collect();
        if ids.is_empty() {
            return;
        }
        let at = self
            .selected
            .and_then(|id| ids.iter().position(|&i| i == id))
            .unwrap_or(ids.len() - 1);
        let next = (at as isize + delta).clamp(0, ids.len() as isize - 1) as usize;
        self.selected = Some(ids[next]);
    }

    /// Copies the newest state of one call into its card.
    pub fn refresh_call(&mut self, call_id: u64) {
        let Some(slot) = self.slots.get(&call_id).cloned() else {
            return;
        };
        let (live, preview, finished) = match slot.snapshot.lock() {
            Ok(mut s) => (s.live.clone(), preview_lines(&s.preview), s.finished.take()),
            Err(_) => return,
        };
        let Some(card) = self.card_mut(call_id) else {
            // Its card scrolled out of memory; keep nothing of it.
            if finished.is_some() {
                self.slots.remove(&call_id);
            }
            return;
        };
        card.live = live;
        card.preview = preview;
        if let Some(f) = finished {
            card.outcome = Some(f.outcome);
            card.final_usage = Some((f.peak_rss, f.cpu_ms, f.wall));
            card.live.bytes_seen = f.bytes_seen;
            card.kept_bytes = f.kept;
            card.injected = f.injected;
            let in_memory = f.source.is_some() && f.source_in_memory;
            card.output = f.source;
            self.slots.remove(&call_id);
            if in_memory {
                self.outputs_in_memory.push_back(call_id);
                while self.outputs_in_memory.len() > MAX_OUTPUTS_IN_MEMORY {
                    if let Some(old) = self.outputs_in_memory.pop_front()
                        && let Some(c) = self.card_mut(old)
                    {
                        c.output = None;
                    }
                }
            }
        }
    }

    pub fn refresh_running(&mut self) {
        let ids: Vec<u64> = self.slots.keys().copied().collect();
        for id in ids {
            self.refresh_call(id);
        }
    }

    /// Kills every running call (Ctrl-C: cancel the running turn).
    pub fn kill_all(&mut self) -> usize {
        let ids: Vec<u64> = self.slots.keys().copied().collect();
        for id in &ids {
            self.kill(*id);
        }
        ids.len()
    }

    /// Kills one running call: a direct-mode call through its slot, an
    /// agent tool call through its own cancel (the turn goes on).
    pub fn kill(&mut self, call_id: u64) -> bool {
        if let Some(slot) = self.slots.get(&call_id) {
            slot.kill();
        } else if let Some(call) = self.agent_calls.get(&call_id) {
            call.cancel.cancel();
        } else {
            return false;
        }
        if let Some(c) = self.card_mut(call_id) {
            c.kill_requested = true;
        }
        true
    }
}

impl App {
    /// Sends `fault` to one running call's worker (the kill and memory
    /// keys), the user's own or the model's (through the agent's task,
    /// which holds its handle); the card notes it, and its outcome
    /// follows. `Err` says why not: a call that is not running, or faults
    /// still on their way.
    pub fn inject_into(&mut self, call_id: u64, fault: Fault) -> Result<(), String> {
        let name = fault.name();
        if let Some(slot) = self.slots.get(&call_id) {
            slot.inject(fault)?;
        } else if let Some(call) = self.agent_calls.get(&call_id) {
            call.faults.try_send(fault).map_err(|e| match e {
                tokio::sync::mpsc::error::TrySendError::Full(_) => {
                    "faults sent to this call are still on their way; try again".to_owned()
                }
                tokio::sync::mpsc::error::TrySendError::Closed(_) => {
                    "the call has ended".to_owned()
                }
            })?;
        } else {
            return Err("the selected call is not running".into());
        }
        if let Some(c) = self.card_mut(call_id) {
            c.faults.push(format!("{name} (key)"));
        }
        Ok(())
    }
}

/// The last lines of a preview buffer (lossy UTF-8, control bytes shown
/// as spaces so a tool cannot move the cursor).
fn preview_lines(bytes: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(bytes);
    text.lines()
        .rev()
        .filter(|l| !l.trim().is_empty())
        .take(super::card::PREVIEW_LINES)
        .map(|l| {
            l.chars()
                .map(|c| if c.is_control() { ' ' } else { c })
                .collect()
        })
        .collect::<Vec<String>>()
        .into_iter()
        .rev()
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kill and memory keys on a card that cannot take them say why,
    /// and the card is left as it was; on a model's running call they
    /// reach the agent's task for that call.
    #[test]
    fn a_fault_key_on_a_call_that_cannot_take_it_says_why() {
        let mut app = App::new(Theme { color: false });
        app.push(Entry::Card(Box::new(Card::new(
            1,
            "shell",
            "true",
            CallLimits::default(),
        ))));
        let why = app.inject_into(1, Fault::Kill).expect_err("not running");
        assert!(why.contains("not running"), "{why}");
        assert!(app.cards().all(|c| c.faults.is_empty()));

        let agent = 1 << 62;
        app.push(Entry::Card(Box::new(Card::new(
            agent,
            "shell",
            "sleep 30",
            CallLimits::default(),
        ))));
        let (faults, mut taken) = tokio::sync::mpsc::channel(2);
        app.agent_calls.insert(
            agent,
            AgentCall {
                figures: Arc::default(),
                cancel: bulkhead_agent::CancellationToken::new(),
                faults,
            },
        );
        app.inject_into(agent, Fault::Oom)
            .expect("a model's running call");
        assert_eq!(taken.try_recv().ok(), Some(Fault::Oom));
        drop(taken);
        let why = app
            .inject_into(agent, Fault::Kill)
            .expect_err("the agent's task is gone");
        assert!(why.contains("ended"), "{why}");
    }

    /// A running direct-mode call takes the fault through its slot, and its
    /// card notes it; once the call's task is gone, the key says so.
    #[test]
    fn a_fault_key_on_a_running_call_reaches_its_task() {
        let mut app = App::new(Theme { color: false });
        let (faults, mut taken) = tokio::sync::mpsc::channel(2);
        app.slots.insert(
            9,
            Arc::new(CallSlot {
                call_id: 9,
                snapshot: std::sync::Mutex::default(),
                cancel: tokio_util::sync::CancellationToken::new(),
                faults,
            }),
        );
        app.push(Entry::Card(Box::new(Card::new(
            9,
            "shell",
            "sleep 30",
            CallLimits::default(),
        ))));
        app.inject_into(9, Fault::Kill).expect("sent");
        assert_eq!(taken.try_recv().ok(), Some(Fault::Kill));
        assert_eq!(
            app.cards().next().map(|c| c.faults.clone()),
            Some(vec!["kill (key)".to_owned()])
        );
        taken.close();
        let why = app.inject_into(9, Fault::Oom).expect_err("ended");
        assert!(why.contains("ended"), "{why}");
    }
}
