//! Assembling tool calls whose arguments arrive in pieces, shared by both
//! decoders.

use std::collections::VecDeque;

use super::{ModelError, ModelEvent, ToolCall};

/// Most tool calls one answer may make. Indexes come from the server, and
/// a wild one must not make us allocate; models make a handful at once.
const MAX_TOOL_CALLS: usize = 128;

#[derive(Debug, Default)]
struct Partial {
    id: String,
    name: String,
    arguments: String,
    /// `ToolCallStarted` went out (it waits for the name).
    started: bool,
    complete: bool,
}

/// The tool calls of one answer, by index.
#[derive(Debug, Default)]
pub(super) struct ToolCalls {
    calls: Vec<Partial>,
}

impl ToolCalls {
    pub(super) fn len(&self) -> usize {
        self.calls.len()
    }

    fn slot(&mut self, index: usize) -> Result<&mut Partial, ModelError> {
        if index >= MAX_TOOL_CALLS {
            return Err(ModelError::Protocol(format!(
                "tool call index {index} (at most {MAX_TOOL_CALLS} calls per answer)"
            )));
        }
        if index >= self.calls.len() {
            self.calls.resize_with(index + 1, Partial::default);
        }
        Ok(&mut self.calls[index])
    }

    /// A piece of call `index`: its id, name and arguments as far as this
    /// event gives them. Emits `ToolCallStarted` once the name is known,
    /// then the arguments as deltas.
    pub(super) fn update(
        &mut self,
        index: usize,
        id: Option<&str>,
        name: Option<&str>,
        arguments: Option<&str>,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<(), ModelError> {
        let call = self.slot(index)?;
        if call.complete {
            return Err(ModelError::Protocol(format!(
                "tool call {index} continued after it was complete"
            )));
        }
        if let Some(id) = id.filter(|s| !s.is_empty()) {
            call.id = id.to_owned();
        }
        // Some servers repeat the name on every piece: the first counts.
        if let Some(name) = name.filter(|s| !s.is_empty())
            && call.name.is_empty()
        {
            call.name = name.to_owned();
        }
        let arguments = arguments.unwrap_or("");
        call.arguments.push_str(arguments);
        if !call.started && !call.name.is_empty() {
            call.started = true;
            if call.id.is_empty() {
                // Some local servers send no id; the result must quote one.
                call.id = format!("call_{index}");
            }
            out.push_back(ModelEvent::ToolCallStarted {
                index,
                id: call.id.clone(),
                name: call.name.clone(),
            });
            // Arguments that came before the name go out now, in one piece.
            if !call.arguments.is_empty() {
                out.push_back(ModelEvent::ToolCallArgumentsDelta {
                    index,
                    delta: call.arguments.clone(),
                });
            }
        } else if call.started && !arguments.is_empty() {
            out.push_back(ModelEvent::ToolCallArgumentsDelta {
                index,
                delta: arguments.to_owned(),
            });
        }
        Ok(())
    }

    /// Call `index` is whole: `ToolCallComplete` with its arguments.
    pub(super) fn complete(
        &mut self,
        index: usize,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<(), ModelError> {
        let call = self.slot(index)?;
        if call.complete {
            return Ok(());
        }
        if !call.started {
            return Err(ModelError::Protocol(format!(
                "tool call {index} ended without a name"
            )));
        }
        call.complete = true;
        let mut arguments = std::mem::take(&mut call.arguments);
        if arguments.trim().is_empty() {
            arguments = "{}".to_owned();
        }
        out.push_back(ModelEvent::ToolCallComplete {
            index,
            call: ToolCall {
                id: call.id.clone(),
                name: call.name.clone(),
                arguments,
            },
        });
        Ok(())
    }

    /// Completes every call still open, in index order. Index gaps (a
    /// server numbering from 1) are skipped.
    pub(super) fn complete_all(
        &mut self,
        out: &mut VecDeque<ModelEvent>,
    ) -> Result<(), ModelError> {
        for index in 0..self.calls.len() {
            let gap = {
                let c = &self.calls[index];
                !c.started && c.id.is_empty() && c.arguments.is_empty()
            };
            if !gap {
                self.complete(index, out)?;
            }
        }
        Ok(())
    }
}
