//! The UI task's loop. It only handles input and renders: tool calls run
//! in their own tasks and say that something changed through a bounded
//! channel of small messages. Frames are drawn on demand, at most one per
//! [`FRAME_INTERVAL`]; a key marks the state dirty and the next frame
//! follows within one interval.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crossterm::event::{Event, KeyEventKind};
use ratatui::Terminal;
use ratatui::backend::Backend;
use tokio::sync::mpsc;
use tokio::time::sleep_until;

use super::Ctx;
use super::state::App;

/// Minimum time between frames: about 60 fps. Faster is invisible and
/// would only spend the CPU the host needs for its workers.
pub const FRAME_INTERVAL: Duration = Duration::from_millis(16);

/// Spinner and live-figure refresh while calls run: 10 per second is
/// smooth enough and costs little.
const TICK: Duration = Duration::from_millis(100);

/// The host's own RSS and the worker count are sampled this often.
const STATUS_INTERVAL: Duration = Duration::from_millis(500);

/// Capacity of the wake channel from call tasks. Wakes carry no data, so
/// a full channel loses nothing: the slots hold the newest state.
pub const WAKE_CAPACITY: usize = 64;

/// Capacity of the input channel from the terminal reader. Keys are never
/// dropped: the reader waits when it is full (the UI drains it first).
pub const INPUT_CAPACITY: usize = 256;

/// Messages to the UI task.
pub enum UiMsg {
    /// A call's slot changed.
    Call(u64),
    /// A note to add to the conversation (markdown).
    Note(String),
    /// The streaming answer changed.
    Answer,
    /// An agent tool call's figures changed (its slot has them).
    AgentFigures,
    /// Something from the agent loop.
    Agent(super::model_mode::AgentEvent),
    /// The enforcement summary, once the sandbox probe answered.
    Enforcement(String),
}

/// Latencies measured by the loop, for the bench.
#[derive(Debug, Default)]
pub struct LoopMetrics {
    /// From a key's arrival in the UI task to the end of the frame that
    /// shows its effect.
    pub key_to_frame: Vec<Duration>,
    /// `terminal.draw` time of every frame.
    pub render: Vec<Duration>,
    /// The conversation's entries, its running calls and its outputs held
    /// in memory, as of the latest frame: what a soak checks stays bounded.
    pub entries: usize,
    pub running: usize,
    pub outputs_in_memory: usize,
}

/// Runs until the user quits or the input ends.
pub async fn run_loop<B: Backend>(
    terminal: &mut Terminal<B>,
    app: &mut App,
    ctx: &Ctx,
    input: &mut mpsc::Receiver<Event>,
    wake: &mut mpsc::Receiver<UiMsg>,
    metrics: Option<Arc<Mutex<LoopMetrics>>>,
) -> std::io::Result<()> {
    let mut dirty = true;
    let mut last_frame = Instant::now() - FRAME_INTERVAL;
    let mut next_tick = Instant::now() + TICK;
    let mut next_status = Instant::now();
    // The first key not yet shown on screen.
    let mut key_pending: Option<Instant> = None;
    let mut input_open = true;
    while !app.quit {
        let frame_at = (last_frame + FRAME_INTERVAL).max(Instant::now());
        tokio::select! {
            biased;
            event = input.recv(), if input_open => match event {
                Some(event) => {
                    if let Event::Key(k) = &event {
                        if k.kind != KeyEventKind::Press {
                            continue;
                        }
                        key_pending.get_or_insert_with(Instant::now);
                    }
                    super::keys::handle(app, ctx, event);
                    dirty = true;
                }
                None => input_open = false,
            },
            () = sleep_until(frame_at.into()), if dirty => {
                let started = Instant::now();
                terminal.draw(|f| super::render::draw(app, f))?;
                let done = Instant::now();
                last_frame = done;
                dirty = false;
                if let Some(m) = &metrics
                    && let Ok(mut m) = m.lock()
                {
                    m.render.push(done - started);
                    m.entries = app.entries.len();
                    m.running = app.slots.len();
                    m.outputs_in_memory = app.outputs_in_memory.len();
                    if let Some(k) = key_pending {
                        m.key_to_frame.push(done - k);
                    }
                }
                key_pending = None;
            }
            msg = wake.recv() => {
                if let Some(msg) = msg {
                    apply(app, ctx, msg);
                    // Drain what else is queued, bounded by the capacity.
                    for _ in 0..WAKE_CAPACITY {
                        match wake.try_recv() {
                            Ok(m) => apply(app, ctx, m),
                            Err(_) => break,
                        }
                    }
                    dirty = true;
                }
            }
            () = sleep_until(next_tick.into()), if app.has_running() || app.turn_running => {
                app.tick = app.tick.wrapping_add(1);
                app.refresh_running();
                super::conversation::refresh_agent_figures(app);
                next_tick = Instant::now() + TICK;
                dirty = true;
            }
            () = sleep_until(next_status.into()) => {
                app.status.host_rss = super::status::host_rss();
                app.status.running = ctx.host.running();
                app.status.max_workers = ctx.host.max_workers();
                (app.status.mcp_up, app.status.mcp_failed) = ctx.mcp_counts();
                app.status.mcp_configured = ctx.mcp.len();
                app.status.session = app
                    .session
                    .as_ref()
                    .and_then(|s| s.get())
                    .map(|id| format!("session {id}"));
                next_status = Instant::now() + STATUS_INTERVAL;
                dirty = true;
            }
        }
        if !input_open && !app.has_running() && !app.turn_running {
            // Headless runs end when their script of keys does.
            break;
        }
    }
    Ok(())
}

fn apply(app: &mut App, ctx: &Ctx, msg: UiMsg) {
    match msg {
        UiMsg::Answer => super::conversation::refresh_answer(app, ctx),
        UiMsg::Agent(e) => super::conversation::agent_event(app, ctx, e),
        UiMsg::AgentFigures => super::conversation::refresh_agent_figures(app),
        UiMsg::Call(id) => app.refresh_call(id),
        UiMsg::Note(text) => app.note(&text),
        UiMsg::Enforcement(e) => app.status.enforcement = e,
    }
}
