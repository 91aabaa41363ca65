//! `tui`: the interactive app's responsiveness, measured inside its own
//! event loop (headless: ratatui's `TestBackend`, keys as crossterm events,
//! real workers, a real session store).
//!
//! - Keystroke-to-frame latency: from a key's arrival in the UI task to
//!   the end of the frame that shows it, idle and while four workers
//!   stream `yes` at full speed (target: p99 under 33 ms). A real terminal
//!   adds its own write of the frame (80×24: a few KiB).
//! - Frame render time against the size of the output in the pager: a
//!   synthetic output of 1 MiB to 1 TiB, shown from its middle (must be
//!   flat), and the conversation with 10 against 400 entries.
//! - With `BULKHEAD_SOAK=1`: the soak (see `soak.rs`).

mod alloc;
mod harness;
mod soak;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bulkhead_tui::app::pager::{Pager, PagerSource};
use bulkhead_tui::app::state::{App, Overlay};
use bulkhead_tui::app::theme::Theme;
use ratatui::Terminal;
use ratatui::backend::TestBackend;

use crate::{Row, Stats, ms, runtime, size};

const BENCH: &str = "tui";

/// The 99th percentile of key-to-frame latency must stay under this during a flood.
const TARGET_P99: Duration = Duration::from_millis(33);

/// Keys per phase, one every 20 ms: more than one frame interval apart,
/// so each key is its own frame.
const KEYS: usize = 300;
const KEY_GAP: Duration = Duration::from_millis(20);

pub fn run() {
    let rt = runtime();
    rt.block_on(latency());
    render_flat();
    if std::env::var("BULKHEAD_SOAK").is_ok_and(|v| v == "1") {
        rt.block_on(soak::run());
    } else {
        eprintln!("   (soak skipped: set BULKHEAD_SOAK=1, and BULKHEAD_SOAK_SECS for its length)");
    }
}

fn p99(samples: &[Duration]) -> Duration {
    let mut s = samples.to_vec();
    s.sort_unstable();
    s[((0.99 * s.len() as f64).ceil() as usize).clamp(1, s.len()) - 1]
}

async fn type_keys(keys: &harness::Keys) {
    for _ in 0..KEYS {
        keys.char('x').await;
        harness::pause(KEY_GAP).await;
    }
    keys.ctrl('u').await;
}

async fn latency() {
    let mut idle = Vec::new();
    let mut flood = Vec::new();
    let metrics = harness::run(4, |keys, metrics| {
        let (idle, flood) = (&mut idle, &mut flood);
        async move {
            harness::pause(Duration::from_millis(300)).await;
            metrics.lock().map(|mut m| m.key_to_frame.clear()).ok();
            type_keys(&keys).await;
            *idle = std::mem::take(&mut metrics.lock().expect("metrics").key_to_frame);
            keys.line("/limits output=100G timeout=10m").await;
            for _ in 0..4 {
                keys.line("!yes").await;
            }
            // Let the four workers reach full speed.
            harness::pause(Duration::from_secs(1)).await;
            metrics.lock().map(|mut m| m.key_to_frame.clear()).ok();
            type_keys(&keys).await;
            *flood = std::mem::take(&mut metrics.lock().expect("metrics").key_to_frame);
            keys.ctrl('c').await;
            harness::pause(Duration::from_millis(500)).await;
        }
    })
    .await;
    drop(metrics);
    let peak = crate::tui::harness::rss_bytes();
    for (name, samples, target) in [
        ("idle", &idle, None),
        ("4 workers streaming yes", &flood, Some(TARGET_P99)),
    ] {
        let stats = Stats::of(samples);
        let tail = p99(samples);
        Row {
            bench: BENCH,
            name: format!("keystroke → frame, {name}"),
            measured: format!("p50 {} · p99 {}", ms(stats.median), ms(tail)),
            baseline: "—".into(),
            figure: format!("max {} ({} keys)", ms(stats.max), stats.n),
            target: target.map_or("—".into(), |t| format!("p99 < {}", ms(t))),
            met: target.map(|t| tail < t),
            data: serde_json::json!({"stats": stats.json(), "p99_us": tail.as_micros() as u64,
                                     "bench_rss_after_bytes": peak}),
        }
        .emit();
    }
}

/// An output of any size that costs no memory: line N is computed from
/// its offset (64-byte lines).
struct Synthetic(u64);

impl PagerSource for Synthetic {
    fn len(&self) -> u64 {
        self.0
    }

    fn read(&self, offset: u64, max: usize) -> Result<Vec<u8>, String> {
        let end = (offset + max as u64).min(self.0);
        Ok((offset..end)
            .map(|i| {
                if i % 64 == 63 {
                    b'\n'
                } else {
                    b'a' + (i / 64 % 26) as u8
                }
            })
            .collect())
    }
}

/// Median `draw` time of `frames` frames of `app`.
fn draw_time(app: &mut App, frames: usize) -> Duration {
    let mut terminal = Terminal::new(TestBackend::new(80, 24)).expect("test terminal");
    let mut times = Vec::with_capacity(frames);
    for _ in 0..frames {
        let started = Instant::now();
        terminal
            .draw(|f| bulkhead_tui::app::render::draw(app, f))
            .expect("draw");
        times.push(started.elapsed());
    }
    Stats::of(&times).median
}

fn render_flat() {
    const FRAMES: usize = 300;
    let mut rows = Vec::new();
    for len in [1u64 << 20, 1 << 30, 1 << 40] {
        let mut app = App::new(Theme { color: true });
        let mut pager = Pager::new("synthetic".into(), "".into(), Arc::new(Synthetic(len)));
        pager.seek(len / 2);
        app.overlay = Some(Overlay::Pager(pager));
        rows.push((len, draw_time(&mut app, FRAMES)));
    }
    let base = rows[0].1;
    let worst = rows.iter().map(|r| r.1).max().unwrap_or(base);
    Row {
        bench: BENCH,
        name: "pager frame render vs output size (1 MiB / 1 GiB / 1 TiB)".into(),
        measured: rows
            .iter()
            .map(|(len, t)| format!("{} {}", size(*len), ms(*t)))
            .collect::<Vec<_>>()
            .join(" · "),
        baseline: format!("1 MiB: {}", ms(base)),
        figure: format!("{:.2}× at 1 TiB", worst.as_secs_f64() / base.as_secs_f64()),
        target: "flat (< 2×)".into(),
        met: Some(worst.as_secs_f64() < 2.0 * base.as_secs_f64()),
        data: serde_json::json!(
            rows.iter()
                .map(|(l, t)| serde_json::json!({"bytes": l, "median_us": t.as_micros() as u64}))
                .collect::<Vec<_>>()
        ),
    }
    .emit();

    let mut conv = Vec::new();
    for entries in [10usize, bulkhead_tui::app::state::MAX_ENTRIES] {
        let mut app = App::new(Theme { color: true });
        for i in 0..entries {
            app.push(bulkhead_tui::app::state::Entry::User(format!("!seq 1 {i}")));
        }
        conv.push((entries, draw_time(&mut app, FRAMES)));
    }
    let (a, b) = (conv[0].1, conv[1].1);
    Row {
        bench: BENCH,
        name: "conversation frame render, 10 vs 400 entries".into(),
        measured: format!("{} · {}", ms(a), ms(b)),
        baseline: format!("10 entries: {}", ms(a)),
        figure: format!("{:.2}×", b.as_secs_f64() / a.as_secs_f64()),
        target: "flat (< 2×)".into(),
        met: Some(b.as_secs_f64() < 2.0 * a.as_secs_f64()),
        data: serde_json::json!({"entries_10_us": a.as_micros() as u64, "entries_400_us": b.as_micros() as u64}),
    }
    .emit();
}
