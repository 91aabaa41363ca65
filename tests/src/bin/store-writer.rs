//! `store-writer`: drives the session store (bulkhead-host's `store`) for
//! the store's tests and benchmark, in its own process so a test can kill
//! it, run three at once, or measure its memory.
//!
//! - `burst PATH SEED`: writes until killed; prints one line per write that
//!   returned (`session S`, `item ID`, `flushed ID BYTES`, `result ID BYTES`).
//! - `append PATH TAG SHARED COUNT`: COUNT items, alternating between session
//!   SHARED and a session of its own, texts `TAG N`; a result every tenth.
//! - `fixture PATH SESSIONS ITEMS PAYLOAD_BYTES`: a store like the report's;
//!   prints `{"largest": ID, "largest_items": N}`.
//! - `window PATH SESSION ITEMS BUDGET`: builds one history window; prints
//!   `{"items": N, "used_bytes": N, "build_us": N, "peak_rss_bytes": N}`
//!   (`build_us`: open and build, no process start).

use std::io::Write;
use std::process::ExitCode;

use bulkhead_ipc::StreamId;
use bulkhead_store::{
    Durability, ItemKind, NewItem, NewSession, ResultEnd, Retention, SessionId, Store,
    StoreOptions, WindowSpec,
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["burst", path, seed] => burst(path, num(seed)),
        ["append", path, tag, shared, count] => append(path, tag, num(shared), num(count)),
        ["fixture", path, sessions, items, bytes] => {
            fixture(path, num(sessions), num(items), num(bytes))
        }
        ["window", path, session, items, budget] => {
            window(path, num(session), num(items), num(budget))
        }
        _ => Err("usage: store-writer burst|append|fixture|window … (see the source)".into()),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("store-writer: {e}");
            ExitCode::FAILURE
        }
    }
}

type Res = Result<(), Box<dyn std::error::Error>>;

fn num(s: &str) -> u64 {
    s.parse()
        .unwrap_or_else(|_| panic!("store-writer: \"{s}\" is not a number"))
}

/// xorshift64*: reproducible sizes from a seed, no dependency.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n.max(1)
    }
}

fn unlimited() -> Retention {
    Retention {
        max_store_bytes: None,
        max_session_bytes: None,
    }
}

fn ack(line: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    // A test that stopped reading has what it needs.
    let _ = out.write_fmt(line);
    let _ = out.write_all(b"\n");
    let _ = out.flush();
}

fn end(bytes: u64) -> ResultEnd {
    ResultEnd {
        status: "completed".into(),
        bytes_seen: bytes,
        lines_seen: bytes / 40,
        ..ResultEnd::default()
    }
}

fn burst(path: &str, seed: u64) -> Res {
    let store = Store::open_with(
        path,
        StoreOptions {
            retention: unlimited(),
            ..StoreOptions::default()
        },
    )?;
    let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1);
    let mut session = store.create_session(&NewSession::default())?;
    ack(format_args!("session {session}"));
    let pattern: Vec<u8> = (0..200_000u32).map(|i| b' ' + (i % 90) as u8).collect();
    loop {
        match rng.below(10) {
            0 => {
                session = store.create_session(&NewSession {
                    title: format!("burst {seed}"),
                    ..NewSession::default()
                })?;
                ack(format_args!("session {session}"));
            }
            1..=5 => {
                let len = rng.below(5000) as usize;
                let text = String::from_utf8_lossy(&pattern[..len]).into_owned();
                let id = store.append(session, &NewItem::new(ItemKind::User, text))?;
                ack(format_args!("item {id}"));
            }
            _ => {
                let mut w = store.begin_result(session, "shell", None, "{}")?;
                ack(format_args!("item {}", w.item()));
                for _ in 0..rng.below(20) {
                    let len = rng.below(pattern.len() as u64) as usize;
                    w.write(&store, StreamId::Stdout, &pattern[..len])?;
                    if rng.below(3) == 0 {
                        w.flush(&store)?;
                        ack(format_args!("flushed {} {}", w.item(), w.written()));
                    }
                }
                let bytes = w.written();
                let id = w.finish(&store, &end(bytes))?;
                ack(format_args!("result {id} {bytes}"));
            }
        }
    }
}

fn append(path: &str, tag: &str, shared: u64, count: u64) -> Res {
    let store = Store::open(path)?;
    let own = store.create_session(&NewSession {
        title: format!("own {tag}"),
        ..NewSession::default()
    })?;
    let shared = SessionId(shared as i64);
    for n in 0..count {
        let session = if n % 2 == 0 { shared } else { own };
        if n % 10 == 9 {
            let mut w = store.begin_result(session, tag, None, "{}")?;
            for _ in 0..3 {
                w.write(&store, StreamId::Stdout, &[b'x'; 70_000])?;
            }
            w.finish(&store, &end(210_000))?;
        } else {
            store.append(session, &NewItem::new(ItemKind::User, format!("{tag} {n}")))?;
        }
    }
    ack(format_args!("done {own}"));
    Ok(())
}

/// Builds a store like the report's. Session 1 (the largest) gets a quarter
/// of the items and of the payload; the rest is spread evenly. Items cycle
/// through user, assistant, tool call, tool result.
fn fixture(path: &str, sessions: u64, items: u64, payload_bytes: u64) -> Res {
    let store = Store::open_with(
        path,
        StoreOptions {
            retention: unlimited(),
            // A fixture is rebuilt when lost; FULL would only slow it.
            durability: Durability::Normal,
            ..StoreOptions::default()
        },
    )?;
    let ids: Vec<SessionId> = (0..sessions)
        .map(|i| {
            store.create_session(&NewSession {
                title: format!("fixture session {i}"),
                model: Some("model-x".into()),
                config_json: Some("{}".into()),
            })
        })
        .collect::<Result<_, _>>()?;
    let largest_items = items / 4;
    let results = (items / 4).max(1);
    let per_result = payload_bytes / results;
    let line: Vec<u8> = (0..64u8).map(|i| b'a' + i % 26).chain([b'\n']).collect();
    let block: Vec<u8> = line.iter().copied().cycle().take(64 << 10).collect();
    let assistant_text = "Here is what I found. ".repeat(20);
    for n in 0..items {
        let session = if n < largest_items || ids.len() == 1 {
            ids[0]
        } else {
            ids[1 + (n as usize % (ids.len() - 1))]
        };
        match n % 4 {
            0 => store.append(
                session,
                &NewItem::new(ItemKind::User, format!("question {n}")),
            )?,
            1 => store.append(session, &NewItem::new(ItemKind::Assistant, &assistant_text))?,
            2 => store.append(
                session,
                &NewItem::new(ItemKind::ToolCall, "shell").with_meta(r#"{"command":"grep -r x"}"#),
            )?,
            _ => {
                let mut w =
                    store.begin_result(session, "shell", None, r#"{"command":"grep -r x"}"#)?;
                let mut left = per_result;
                while left > 0 {
                    let take = left.min(block.len() as u64) as usize;
                    w.write(&store, StreamId::Stdout, &block[..take])?;
                    left -= take as u64;
                }
                w.finish(&store, &end(per_result))?
            }
        };
    }
    ack(format_args!(
        "{}",
        serde_json::json!({"largest": ids[0].0, "largest_items": largest_items.max(1)})
    ));
    Ok(())
}

fn window(path: &str, session: u64, items: u64, budget: u64) -> Res {
    let started = std::time::Instant::now();
    let store = Store::open(path)?;
    let w = store.history_window(
        SessionId(session as i64),
        &WindowSpec {
            max_items: items as u32,
            budget_bytes: budget,
            view_head: 2048,
            view_tail: 2048,
        },
    )?;
    ack(format_args!(
        "{}",
        serde_json::json!({
            "items": w.items.len(),
            "pinned": w.pinned.len(),
            "used_bytes": w.used_bytes,
            "build_us": started.elapsed().as_micros() as u64,
            "peak_rss_bytes": bulkhead_tests::own_peak_rss_bytes(),
        })
    ));
    Ok(())
}
