//! Input: keys to actions. Nothing here waits: a tool call is started
//! and left to its task, a catalogue request is spawned.

use bulkhead_host::Fault;
use bulkhead_store::ItemKind;
use crossterm::event::{Event, KeyCode, KeyEvent, KeyModifiers};

use super::Ctx;
use super::card::Card;
use super::commands::{self, Command, Inject};
use super::events::UiMsg;
use super::pager::Pager;
use super::state::{App, Entry, Overlay};

/// Longest prompt line accepted: a pasted file must not become a card
/// title the size of the file.
const MAX_INPUT_CHARS: usize = 4096;

pub fn handle(app: &mut App, ctx: &Ctx, event: Event) {
    match event {
        Event::Key(key) => key_event(app, ctx, key),
        Event::Paste(text) => {
            for c in text.chars().filter(|c| !c.is_control()) {
                insert(app, c);
            }
        }
        // The next draw resizes the terminal's buffers.
        _ => {}
    }
}

fn key_event(app: &mut App, ctx: &Ctx, key: KeyEvent) {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    if ctrl && key.code == KeyCode::Char('d') {
        app.quit = true;
        return;
    }
    if app.overlay.is_some() {
        overlay_key(app, ctx, key);
        return;
    }
    match key.code {
        KeyCode::Char('c') if ctrl => {
            if app.turn_running
                && let Some(link) = &ctx.agent
            {
                link.cancel();
                app.note("cancelling the running turn");
            }
            let n = app.kill_all();
            if n > 0 {
                app.note(&format!(
                    "cancelled {n} running call{}",
                    if n == 1 { "" } else { "s" }
                ));
            } else {
                app.input.clear();
                app.cursor = 0;
            }
        }
        KeyCode::Char('k') if ctrl => {
            if let Some(id) = app.selected
                && !app.kill(id)
            {
                app.note("the selected call is not running");
            }
        }
        KeyCode::Char('x') if ctrl => inject_selected(app, Fault::Kill),
        KeyCode::Char('o') if ctrl => inject_selected(app, Fault::Oom),
        KeyCode::Char('s') if ctrl => open_sessions(app, ctx),
        KeyCode::Char('u') if ctrl => {
            app.input.clear();
            app.cursor = 0;
        }
        KeyCode::Char('?') if app.input.is_empty() => app.overlay = Some(Overlay::Help),
        KeyCode::F(1) => app.overlay = Some(Overlay::Help),
        KeyCode::Char(c) if !ctrl => insert(app, c),
        KeyCode::Backspace if app.cursor > 0 => {
            app.cursor -= 1;
            remove_at(app, app.cursor);
        }
        KeyCode::Delete if app.cursor < app.input.chars().count() => remove_at(app, app.cursor),
        KeyCode::Left => app.cursor = app.cursor.saturating_sub(1),
        KeyCode::Right => app.cursor = (app.cursor + 1).min(app.input.chars().count()),
        KeyCode::Up => app.select(-1),
        KeyCode::Down => app.select(1),
        KeyCode::PageUp => app.scroll += 10,
        KeyCode::PageDown => app.scroll = app.scroll.saturating_sub(10),
        KeyCode::End => app.scroll = 0,
        KeyCode::Esc => {
            app.input.clear();
            app.cursor = 0;
        }
        KeyCode::Enter if app.input.trim().is_empty() => open_pager(app),
        KeyCode::Enter => {
            let line = std::mem::take(&mut app.input);
            app.cursor = 0;
            app.scroll = 0;
            submit(app, ctx, &line);
        }
        _ => {}
    }
}

/// The kill key (`Fault::Kill`: SIGKILL the worker's tree) and the memory
/// key (`Fault::Oom`: the worker allocates past its cap) on the selected
/// call.
fn inject_selected(app: &mut App, fault: Fault) {
    let Some(id) = app.selected else {
        app.note("no call is selected (`↑` `↓` select one)");
        return;
    };
    if let Err(why) = app.inject_into(id, fault) {
        app.note(&why);
    }
}

fn insert(app: &mut App, c: char) {
    if app.input.chars().count() >= MAX_INPUT_CHARS {
        return;
    }
    let at = byte_index(&app.input, app.cursor);
    app.input.insert(at, c);
    app.cursor += 1;
}

fn remove_at(app: &mut App, char_index: usize) {
    let at = byte_index(&app.input, char_index);
    if at < app.input.len() {
        app.input.remove(at);
    }
}

fn byte_index(s: &str, char_index: usize) -> usize {
    s.char_indices().nth(char_index).map_or(s.len(), |(i, _)| i)
}

fn overlay_key(app: &mut App, ctx: &Ctx, key: KeyEvent) {
    let close = matches!(key.code, KeyCode::Esc | KeyCode::Char('q'));
    match &mut app.overlay {
        Some(Overlay::Help) => app.overlay = None,
        Some(Overlay::Approval(_)) => match key.code {
            KeyCode::Char(c) => super::conversation::approval_key(app, c),
            KeyCode::Esc => super::conversation::approval_key(app, 'n'),
            _ => {}
        },
        Some(Overlay::Pager(p)) => match key.code {
            _ if close => app.overlay = None,
            KeyCode::Down | KeyCode::Char('j') | KeyCode::Enter => p.down(1),
            KeyCode::Up | KeyCode::Char('k') => p.up(1),
            KeyCode::PageDown | KeyCode::Char(' ') => p.page_down(),
            KeyCode::PageUp | KeyCode::Char('b') => p.page_up(),
            KeyCode::Home | KeyCode::Char('g') => p.home(),
            KeyCode::End | KeyCode::Char('G') => p.end(),
            _ => {}
        },
        Some(Overlay::Sessions(s)) => match key.code {
            _ if close => app.overlay = None,
            KeyCode::Down => s.move_by(1),
            KeyCode::Up => s.move_by(-1),
            KeyCode::Enter => {
                let chosen = s.chosen().map(|r| r.id.clone());
                app.overlay = None;
                if let Some(id) = chosen {
                    ctx.open_session(app, &id);
                }
            }
            _ => {}
        },
        None => {}
    }
}

fn open_pager(app: &mut App) {
    let Some(card) = app.selected_card() else {
        return;
    };
    let Some(source) = card.output.clone() else {
        let why = if card.running() {
            "the call is still running; its output opens when it ends"
        } else if card.kept_bytes == 0 && card.live.bytes_seen == 0 {
            "the call produced no output"
        } else {
            "this output is no longer held in memory (only the newest calls' are)"
        };
        app.note(why);
        return;
    };
    let note = format!(
        "{} kept of {} produced",
        super::format::size(source.len()),
        super::format::size(card.live.bytes_seen)
    );
    let title = format!(
        "{} {}",
        card.tool,
        super::format::clip(&card.short_args, 40)
    );
    app.overlay = Some(Overlay::Pager(Pager::new(title, note, source)));
}

fn submit(app: &mut App, ctx: &Ctx, line: &str) {
    let command = commands::parse(line);
    if !matches!(command, Command::Help | Command::Quit) {
        app.push(Entry::User(line.trim().to_owned()));
        // The agent loop records the prompts it is given itself.
        let recorded_by_agent = matches!(command, Command::Prompt(_)) && ctx.agent.is_some();
        if let (Some(store), Some(session), false) = (&ctx.store, &app.session, recorded_by_agent) {
            store.append(session, ItemKind::User, line.trim());
        }
    }
    match command {
        Command::Tool { tool, args, short } => start_call(app, ctx, tool, args, &short),
        Command::Help => app.overlay = Some(Overlay::Help),
        Command::Quit => app.quit = true,
        Command::Tools => {
            let host = ctx.host.clone();
            let wake = ctx.wake.clone();
            tokio::spawn(async move {
                let text = match host.list_tools().await {
                    Ok(list) => tools_markdown(&list),
                    Err(e) => format!("cannot list the tools: {e}"),
                };
                let _ = wake.send(UiMsg::Note(text)).await;
            });
        }
        Command::Mcp => app.note(&ctx.mcp_markdown()),
        Command::Limits(pairs) => {
            let text = match super::limits::apply(&mut app.limits, &pairs) {
                Ok(()) => super::limits::describe(&app.limits),
                Err(e) => e,
            };
            app.note(&text);
        }
        Command::Inject(what) => inject_command(app, ctx, what),
        Command::Sessions => open_sessions(app, ctx),
        Command::Prompt(text) => super::conversation::prompt(app, ctx, &text),
        Command::Invalid(why) => app.note(&why),
    }
}

fn start_call(app: &mut App, ctx: &Ctx, tool: &str, args: serde_json::Value, short: &str) {
    let mut req = ctx.request(tool, &args, &app.limits);
    // The armed faults go with this call alone.
    let armed = app.armed.take();
    let faults: Vec<String> = armed.iter().map(ToString::to_string).collect();
    for spec in armed {
        req = req.inject(spec);
    }
    let limits = req.limits.clone();
    let recorder = ctx.recorder(app.session.as_ref(), tool, &args, &limits);
    let slot = super::calls::start(ctx, req, recorder);
    let id = slot.call_id;
    app.slots.insert(id, slot);
    let mut card = Card::new(id, tool, short, limits);
    card.faults = faults;
    app.push(Entry::Card(Box::new(card)));
    app.selected = Some(id);
}

/// `/inject`: arms faults for the next direct-mode call, shows them, or
/// disarms them.
fn inject_command(app: &mut App, ctx: &Ctx, what: Inject) {
    let listed = |specs: &[bulkhead_host::FaultSpec]| {
        specs
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let text = match what {
        Inject::Show if app.armed.is_empty() => {
            "No faults are armed. `/inject FAULT[:ARG][@TRIGGER]…` arms some for the next \
             tool call (e.g. `/inject kill@200ms`, `/inject oom`, `/inject exit:3`)."
                .to_owned()
        }
        Inject::Show => format!(
            "Armed for the next tool call: {}. `/inject off` disarms.",
            listed(&app.armed.armed())
        ),
        Inject::Off if app.armed.is_empty() => "Nothing was armed.".to_owned(),
        Inject::Off => format!("Disarmed: {}.", listed(&app.armed.take())),
        Inject::Arm(specs) => {
            let which = if ctx.agent.is_some() {
                "the next tool call (yours: `!`, `/search`, `/read`, `/ls`; or the model's next \
                 call that runs in a worker)"
            } else {
                "the next tool call (`!`, `/search`, `/read`, `/ls`)"
            };
            let text = format!(
                "Armed for {which}: {}. Its card says which fault fired.",
                listed(&specs)
            );
            app.armed.arm(specs);
            text
        }
    };
    app.note(&text);
}

fn open_sessions(app: &mut App, ctx: &Ctx) {
    ctx.list_sessions(app);
}

fn tools_markdown(list: &serde_json::Value) -> String {
    let mut out = String::from("**Built-in tools** (each call runs in a capped worker):\n\n");
    for t in list.as_array().into_iter().flatten() {
        let name = t["name"].as_str().unwrap_or("?");
        let desc = t["description"].as_str().unwrap_or("");
        let first = desc.lines().next().unwrap_or("");
        out.push_str(&format!("- `{name}`: {first}\n"));
    }
    out
}
