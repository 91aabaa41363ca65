//! `shell`: runs a command with `sh -c`. (Being written by the lead; stub.)
use super::{OutputSink, Tool, ToolContext, ToolEnd, ToolFailure};

pub struct Shell;

impl Tool for Shell {
    fn name(&self) -> &'static str {
        "shell"
    }
    fn description(&self) -> &'static str {
        "Runs a command with sh -c"
    }
    fn schema(&self) -> serde_json::Value {
        serde_json::json!({})
    }
    fn run(&self, _: &str, _: &mut dyn OutputSink, _: &ToolContext<'_>) -> Result<ToolEnd, ToolFailure> {
        Err(ToolFailure::bad_args("stub"))
    }
}
