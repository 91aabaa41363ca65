//! The model's side of the conversation in model mode: the streaming
//! answer, the cards of the agent's tool calls, the end of a turn.

use bulkhead_store::ItemId;

use super::Ctx;
use super::card::Card;
use super::model_mode::AgentEvent;
use super::state::{AgentCall, App, ApprovalPrompt, Entry, Overlay};
use bulkhead_agent::Approval;

/// Agent cards get ids apart from the host's call ids and stored cards'.
const AGENT_CARD_BIT: u64 = 1 << 62;

/// Sends a prompt to the model, if there is one.
pub fn prompt(app: &mut App, ctx: &Ctx, text: &str) {
    let Some(link) = &ctx.agent else {
        app.note(
            "**direct mode**: no model is configured, so text goes nowhere. \
             Run a tool with `!CMD`, `/search`, `/read` or `/ls`; `/help` lists them. \
             A `[models.NAME]` table and `[defaults] model` in the config turn on model mode.",
        );
        return;
    };
    if app.turn_running || !link.send(text) {
        app.note("A turn is running; wait for it, or cancel it with Ctrl-C.");
        return;
    }
    app.turn_running = true;
    app.answer_from = 0;
    app.push(Entry::Streaming(String::new()));
}

/// Copies the part of the streaming answer since the latest tool calls
/// into the streaming entry below their cards, starting one if there is
/// none yet.
pub fn refresh_answer(app: &mut App, ctx: &Ctx) {
    let Some(link) = &ctx.agent else { return };
    let Ok(text) = link.answer.text.lock() else {
        return;
    };
    let part = text.get(app.answer_from..).unwrap_or_default();
    match app
        .entries
        .iter_mut()
        .rev()
        .find(|e| matches!(e, Entry::Streaming(_)))
    {
        Some(Entry::Streaming(shown)) => {
            shown.clear();
            shown.push_str(part);
        }
        _ if !part.is_empty() => {
            let part = part.to_owned();
            drop(text);
            app.push(Entry::Streaming(part));
        }
        _ => {}
    }
}

/// The model called tools after writing `upto` bytes of the answer slot:
/// the part before becomes a finished note where it is, above the cards,
/// and what the model writes next streams into a new entry below them.
fn split_answer(app: &mut App, ctx: &Ctx, upto: usize) {
    let part = ctx.agent.as_ref().and_then(|link| {
        let text = link.answer.text.lock().ok()?;
        Some(
            text.get(app.answer_from..upto)
                .unwrap_or_default()
                .to_owned(),
        )
    });
    let streaming = app
        .entries
        .iter()
        .rposition(|e| matches!(e, Entry::Streaming(_)));
    match (part, streaming) {
        (Some(part), Some(at)) if part.trim().is_empty() => {
            // Nothing was said before the calls: no empty row above them.
            app.entries.remove(at);
        }
        (Some(part), Some(at)) => app.entries[at] = Entry::Streaming(part),
        (Some(part), None) if !part.trim().is_empty() => app.push(Entry::Streaming(part)),
        _ => {}
    }
    finish_streaming(app);
    app.answer_from = upto.max(app.answer_from);
}

pub fn agent_event(app: &mut App, ctx: &Ctx, event: AgentEvent) {
    match event {
        AgentEvent::ToolStarted {
            index,
            name,
            args,
            answer_bytes,
        } => {
            if index == 0 {
                app.agent_cards.clear();
                app.agent_answers += 1;
                split_answer(app, ctx, answer_bytes);
            }
            let id = AGENT_CARD_BIT | (app.agent_answers << 16) | index as u64;
            let mut card = Card::new(
                id,
                &name,
                &super::format::clip(&args, 200),
                app.limits.clone(),
            );
            card.live.state = bulkhead_host::CallState::Running;
            app.agent_cards.push(id);
            app.push(Entry::Card(Box::new(card)));
            app.selected = Some(id);
        }
        AgentEvent::ToolLive {
            index,
            limits,
            figures,
            cancel,
            faults,
            armed,
        } => {
            let Some(&id) = app.agent_cards.get(index) else {
                return;
            };
            if let Some(card) = app.card_mut(id) {
                card.limits = limits;
                card.faults = armed;
                app.agent_calls.insert(
                    id,
                    AgentCall {
                        figures,
                        cancel,
                        faults,
                    },
                );
                refresh_agent_figures(app);
            }
        }
        AgentEvent::ToolFinished {
            index,
            item,
            outcome,
            injected,
        } => {
            let Some(&id) = app.agent_cards.get(index) else {
                return;
            };
            app.agent_calls.remove(&id);
            let stored = ctx
                .store
                .as_ref()
                .and_then(|s| super::session_view::stored_card_by_id(s, ItemId(item)));
            if let Some(card) = app.card_mut(id) {
                // The stored card has no faults: those are the user's
                // view of this run, kept across the swap.
                let faults = std::mem::take(&mut card.faults);
                match stored {
                    Some(mut c) => {
                        c.call_id = id;
                        *card = c;
                    }
                    None => {
                        card.outcome = Some(super::card::CardOutcome::Failed { error: outcome })
                    }
                }
                card.faults = faults;
                card.injected = injected;
            }
        }
        AgentEvent::Notice(text) => app.note(&text),
        AgentEvent::Approve { name, args, reply } => {
            if app.approved_tools.contains(&name) {
                let _ = reply.send(Approval::AllowForSession);
                return;
            }
            app.overlay = Some(Overlay::Approval(ApprovalPrompt {
                name,
                args,
                reply: Some(reply),
            }));
        }
        AgentEvent::Ended(end) => {
            app.turn_running = false;
            app.agent_calls.clear();
            // The last words may have come after the last wake.
            refresh_answer(app, ctx);
            finish_streaming(app);
            match end {
                Ok(how) => tracing::info!(how, "turn ended"),
                Err(e) => app.note(&format!("**the turn failed**: {e}")),
            }
        }
    }
}

/// Copies the newest figures of the agent's running calls into their
/// cards (a card that scrolled out of memory lets its figures go).
pub fn refresh_agent_figures(app: &mut App) {
    let ids: Vec<u64> = app.agent_calls.keys().copied().collect();
    for id in ids {
        let figures = app
            .agent_calls
            .get(&id)
            .and_then(|c| c.figures.lock().ok().map(|f| f.clone()));
        match (figures, app.card_mut(id)) {
            (Some(figures), Some(card)) if card.running() => card.live = figures,
            _ => {
                app.agent_calls.remove(&id);
            }
        }
    }
}

/// The streamed answer becomes a note (rendered once, not per frame).
fn finish_streaming(app: &mut App) {
    let theme = app.theme;
    for e in app.entries.iter_mut() {
        if let Entry::Streaming(text) = e {
            *e = if text.trim().is_empty() {
                Entry::Note(Vec::new())
            } else {
                Entry::Note(super::markdown::render(text, theme))
            };
        }
    }
}

/// The user's answer to an approval prompt (`y` once, `a` for the
/// session, `n` deny); other keys are ignored.
pub fn approval_key(app: &mut App, c: char) {
    let answer = match c {
        'y' | 'o' => Approval::AllowOnce,
        'a' | 's' => Approval::AllowForSession,
        'n' | 'd' => Approval::Deny {
            reason: "the user said no".into(),
        },
        _ => return,
    };
    if let Some(Overlay::Approval(mut prompt)) = app.overlay.take() {
        if answer == Approval::AllowForSession {
            app.approved_tools.insert(prompt.name.clone());
        }
        let verdict = match &answer {
            Approval::AllowOnce => "allowed once",
            Approval::AllowForSession => "allowed for this session",
            _ => "denied",
        };
        app.note(&format!("`{}`: {verdict}", prompt.name));
        if let Some(reply) = prompt.reply.take() {
            let _ = reply.send(answer);
        }
    }
}
