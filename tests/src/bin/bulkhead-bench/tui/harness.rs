//! The TUI's own event loop, headless: a `TestBackend` terminal, keys
//! sent as crossterm events, real workers behind a real `ToolHost`, and a
//! real session store in a scratch directory.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bulkhead_host::{CallLimits, CallPolicy, HostConfig, ToolHost};
use bulkhead_tui::app::events::{self, LoopMetrics, UiMsg};
use bulkhead_tui::app::state::App;
use bulkhead_tui::app::store_io::{LazySession, StoreIo};
use bulkhead_tui::app::theme::Theme;
use bulkhead_tui::app::{CallSetup, Ctx};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};
use ratatui::Terminal;
use ratatui::backend::TestBackend;
use tokio::sync::mpsc;

use crate::{Scratch, sibling};

/// Sends keys to the app.
#[derive(Clone)]
pub struct Keys(mpsc::Sender<Event>);

impl Keys {
    pub async fn key(&self, code: KeyCode, modifiers: KeyModifiers) {
        let _ = self
            .0
            .send(Event::Key(KeyEvent::new(code, modifiers)))
            .await;
    }

    pub async fn char(&self, c: char) {
        self.key(KeyCode::Char(c), KeyModifiers::NONE).await;
    }

    pub async fn ctrl(&self, c: char) {
        self.key(KeyCode::Char(c), KeyModifiers::CONTROL).await;
    }

    /// Types a line and presses Enter.
    pub async fn line(&self, text: &str) {
        for c in text.chars() {
            self.char(c).await;
        }
        self.key(KeyCode::Enter, KeyModifiers::NONE).await;
    }
}

/// Runs the app until `script` returns (then Ctrl-D), with `workers`
/// workers; returns the loop's metrics.
pub async fn run<F, Fut>(workers: usize, script: F) -> Arc<Mutex<LoopMetrics>>
where
    F: FnOnce(Keys, Arc<Mutex<LoopMetrics>>) -> Fut,
    Fut: std::future::Future<Output = ()>,
{
    let scratch = Scratch::new("tui");
    // As `bulkhead` does: calls on their own runtime, the UI loop here.
    let calls_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("calls runtime");
    let on_calls = calls_rt.enter();
    let host = ToolHost::new(HostConfig {
        max_workers: workers,
        worker: Some(sibling("bulkhead-worker")),
        ..HostConfig::default()
    })
    .expect("cannot start the host");
    drop(on_calls);
    let (wake_tx, mut wake_rx) = mpsc::channel::<UiMsg>(events::WAKE_CAPACITY);
    let (input_tx, mut input_rx) = mpsc::channel(events::INPUT_CAPACITY);
    let store = StoreIo::open(
        &scratch.path().join("sessions.db"),
        Default::default(),
        wake_tx.clone(),
    )
    .expect("cannot open the store");
    let ctx = Ctx {
        host,
        calls: Some(calls_rt.handle().clone()),
        setup: CallSetup {
            policy: CallPolicy::default(),
            limits: CallLimits::default(),
            cwd: std::env::current_dir().expect("cwd"),
        },
        wake: wake_tx,
        mcp: Vec::new(),
        store: Some(store),
        agent: None,
    };
    let mut app = App::new(Theme { color: true });
    app.session = Some(Arc::new(LazySession::default()));
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let metrics = Arc::new(Mutex::new(LoopMetrics::default()));
    let keys = Keys(input_tx);
    let driver = {
        let keys = keys.clone();
        let metrics = metrics.clone();
        async move {
            script(keys.clone(), metrics).await;
            keys.ctrl('d').await;
        }
    };
    let ui = events::run_loop(
        &mut terminal,
        &mut app,
        &ctx,
        &mut input_rx,
        &mut wake_rx,
        Some(metrics.clone()),
    );
    let (r, ()) = tokio::join!(ui, driver);
    r.expect("the UI loop failed");
    drop(ctx);
    calls_rt.shutdown_background();
    metrics
}

/// Waits `d` (the app keeps running meanwhile).
pub async fn pause(d: Duration) {
    tokio::time::sleep(d).await;
}

/// This process's resident memory now.
pub fn rss_bytes() -> u64 {
    let text = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |k| k * 1024)
}
